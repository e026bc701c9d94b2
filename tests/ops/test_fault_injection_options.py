"""Kill the put writer's IBKR deployment with SIGKILL around its order, start it again,
and check IBKR (the fake, in this process) and the ledger against each other.

Each case kills a worker process (``_options_worker.py``: the real ``IbkrBroker`` over
the real ``ib_async`` client) at one point of writing a put: after the order is
journaled (nothing sent), after IBKR filled it (the desk never heard), after the fill
was booked (the state after it not saved). The next run resumes the saved state and
settles the order by its client order id (``orderRef``). Afterwards, at IBKR: every
client order id sent at most once, one short put position; in the ledger: IBKR's
executions fill for fill, the desk's book equal to IBKR's positions, cash equal to
capital plus the premium less the commission.
"""

from __future__ import annotations

import json
import multiprocessing
import signal
import sqlite3
import sys
from decimal import Decimal
from pathlib import Path

import _options_worker as worker
import pytest
from _preload import FORKSERVER_PRELOAD

sys.path.insert(0, str(Path(__file__).parents[1] / "execution" / "ibkr"))
from fake_tws import FakeTws  # noqa: E402

_CTX = multiprocessing.get_context("forkserver")
_CTX.set_forkserver_preload(FORKSERVER_PRELOAD)
CLIENT_ID = 31


def run(fake: FakeTws, db: Path, kill_at: str | None) -> tuple[int | None, dict | None]:
    fake.wait_for(lambda f: CLIENT_ID not in f.client_ids(), timeout=10)
    result = db.with_suffix(".json")
    result.unlink(missing_ok=True)
    p = _CTX.Process(target=worker.child, args=(str(db), fake.port, CLIENT_ID, kill_at,
                                                str(result)))
    p.start()
    p.join(120)
    if p.exitcode is None:
        p.kill()
        p.join()
    return p.exitcode, json.loads(result.read_text()) if result.exists() else None


@pytest.mark.parametrize("kill_at", ["after_journal", "after_submit", "after_fill"])
def test_a_killed_put_writer_settles_its_order_with_ibkr_on_restart(tmp_path, kill_at):
    fake = FakeTws(clock=lambda: float(worker.NOW))
    fake.start()
    try:
        fake.set_quote("AAPL", "189.99", "190.01", "190.00")
        fake.add_option_chain("AAPL", [worker.EXPIRY], [175, 180, 185], rights="P", iv=0.30)
        for k, (bid, ask) in {175: ("0.90", "0.95"), 180: ("1.60", "1.70"),
                              185: ("2.90", "3.00")}.items():
            fake.set_option_quote("AAPL", worker.EXPIRY, k, "P", bid=bid, ask=ask)
        db = tmp_path / "l.db"
        code, _ = run(fake, db, kill_at)
        assert code == -signal.SIGKILL
        code, seen = run(fake, db, None)
        assert code == 0 and seen is not None
        assert seen["recovered"] and seen["diffs"] == []
        refs = [o.order_ref for o in fake.orders()]
        assert len(refs) == len(set(refs)) == 1             # one order, sent once
        (ex,) = fake.executions()
        ref = ex.order.order_ref
        with sqlite3.connect(db) as c:
            fills = c.execute("select client_order_id, quantity, price, fee from fills").fetchall()
            status = c.execute("select status from orders where client_order_id = ?",
                               (ref,)).fetchone()[0]
            killed = c.execute("select count(*) from orders where status = 'rejected'"
                               ).fetchone()[0]
        assert [(c, Decimal(q), Decimal(p), Decimal(f)) for c, q, p, f in fills] == [
            (ref, ex.shares * 100, ex.price, ex.commission)]
        assert status == "filled" and killed == (1 if kill_at == "after_journal" else 0)
        (occ, contracts), = seen["shorts"].items()
        assert fake.positions()[occ] == -contracts == -int(ex.shares)
        assert Decimal(seen["cash"]) == Decimal("100000") + ex.price * ex.shares * 100 \
            - ex.commission
        assert not fake.protocol_errors, fake.protocol_errors
    finally:
        fake.stop()
