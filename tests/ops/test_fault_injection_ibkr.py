"""Kill a live IBKR deployment with SIGKILL at each step around a bracket entry, start it
again, and check IBKR (the fake) and the ledger against each other.

The venue is the loopback fake TWS (``tests/execution/ibkr/fake_tws.py``) running in this
test's process, so its orders, executions, positions and cash outlive the deployment's
process, like a real gateway; the deployment (see ``_ibkr_worker.py``) runs the real
``IbkrBroker`` over the real ``ib_async`` client in a process of its own, forked from a
server that imported everything once (``multiprocessing``'s forkserver), so a kill is a
real SIGKILL (the socket closes as when a machine dies) while a run costs only its bars.
Both share one simulated clock; before each bar the worker asks this process to walk
the fake's price through that session (a queue), and each session is walked once (a
venue's time only moves forward), so a bar a killed run had walked is not walked again.

After the last run, at IBKR: every client order id (``orderRef``) sent exactly once, one
entry with one native bracket per entry decision (the parent and both legs, the legs one
OCA group, the stop-loss transmitting the group), nothing else. In the ledger: IBKR's
executions row for row (order, time, price, shares, commission), its position and cash,
every order ended as IBKR ended it, every bar decided exactly once, no reconciliation
difference; and decisions, fills and trades equal to a run that was never killed.
"""

from __future__ import annotations

import json
import multiprocessing
import queue
import signal
import sqlite3
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import _ibkr_worker as worker
import pytest
from _preload import FORKSERVER_PRELOAD

sys.path.insert(0, str(Path(__file__).parents[1] / "execution" / "ibkr"))
from fake_tws import FakeTws

SYM = worker.SYM
BARS = 10
KILLED = -signal.SIGKILL
CLIENT_ID = 1

_CTX = multiprocessing.get_context("forkserver")
# One forkserver serves the whole session and the last call before it starts wins: in a
# full run that is test_fault_injection_kraken.py's (collected after this module), whose
# list lacks ib_async (each worker then imports it, about 0.5 s); run alone, this list:
# the other suites' plus what this suite's worker imports.
_CTX.set_forkserver_preload(FORKSERVER_PRELOAD)


def d(x: float) -> Decimal:
    return Decimal(repr(float(x)))


@dataclass
class Scene:
    """One deployment's world: the fake, the shared clock, the ledger file, the walker."""

    fake: FakeTws
    cell: object
    db: Path
    walked_bars: list[int] = field(default_factory=list)
    #: After walking this bar of the window, the fake drops the connection right after
    #: accepting the next order (the client never hears of it).
    drop_after_bar: int | None = None

    def walk(self, ts: int) -> None:
        """Walk the session ``ts`` once (fills stamped at 16:00 UTC of it)."""
        if self.walked_bars and ts <= self.walked_bars[-1]:
            return
        self.walked_bars.append(ts)
        i = int((self.bars.ts == ts).argmax())
        b = self.bars
        self.fake.step(SYM, d(b.open[i]), d(b.high[i]), d(b.low[i]), d(b.close[i]), volume=0,
                       ts=ts + worker.MID)
        if i == self.drop_after_bar:
            self.fake.drop_on_next_order(after_accept=True)

    @property
    def bars(self):
        return worker.window(BARS)[1]

    def run(self, *crash: object) -> tuple[int | None, str]:
        """Run the worker once; return its exit code (``-9``: killed) and its traceback."""
        self.fake.wait_for(lambda f: CLIENT_ID not in f.client_ids(), timeout=10)
        argv = [str(self.db), "dep", str(BARS), *map(str, crash), "--port", str(self.fake.port),
                "--client-id", str(CLIENT_ID)]
        err = Path(f"{self.db}.err")
        err.unlink(missing_ok=True)
        walks, walked = _CTX.Queue(), _CTX.Queue()
        stop = threading.Event()

        def walker() -> None:
            while not stop.is_set():
                try:
                    ts = walks.get(timeout=0.05)
                except queue.Empty:
                    continue
                self.walk(ts)
                walked.put(ts)
        thread = threading.Thread(target=walker, daemon=True)
        thread.start()
        p = _CTX.Process(target=worker.child, args=(argv, str(err), self.cell, walks, walked))
        p.start()
        p.join(120)
        if p.exitcode is None:
            p.kill()
            p.join()
        stop.set()
        thread.join()
        return p.exitcode, err.read_text() if err.exists() else ""


def make_scene(directory: Path) -> Scene:
    """A started fake (a live account holding USD = the deployment's capital, AAPL at the
    close before the window) on a clock shared with the worker."""
    full, bars = worker.window(BARS)
    cell = _CTX.RawValue("d", float(bars.ts[0]))
    fake = FakeTws(clock=lambda: cell.value, accounts=(worker.ACCOUNT,), cash=worker.CAPITAL)
    fake.start()
    last = d(full.close[worker.OFFSET - 1])
    fake.set_quote(SYM, last, last, last)
    return Scene(fake, cell, directory / "l.db")


@pytest.fixture
def scene(tmp_path):
    s = make_scene(tmp_path)
    yield s
    s.fake.stop()
    assert not s.fake.protocol_errors, s.fake.protocol_errors


def q(db: Path, sql: str, *args) -> list[tuple]:
    with sqlite3.connect(db) as c:
        return c.execute(sql, args).fetchall()


def ledger_view(db: Path) -> tuple[list, list, list]:
    """Decisions (bars only), fills and trades, in the ledger's order (client order ids
    differ between deployments and between the id blocks of restarted runs)."""
    decisions = q(db, "select ts, action, reason, state, equity from decisions "
                      "where reason != 'end_of_data' order by ts")
    fills = q(db, "select ts, side, quantity, price, fee, role from fills order by ts, role")
    trades = q(db, "select entry_ts, exit_ts, quantity, entry_price, exit_price, pnl, exit_reason "
                   "from trades order by entry_ts")
    return decisions, fills, trades


def venue_fill_rows(fake: FakeTws) -> list[tuple]:
    """IBKR's executions, oldest first: (time, price, shares, commission)."""
    return [(int(x.time), x.price, x.shares, x.commission) for x in fake.executions()]


def ledger_fill_rows(db: Path) -> list[tuple]:
    """The ledger's fills as :func:`venue_fill_rows` gives IBKR's, in time order."""
    return [(int(t), Decimal(p), Decimal(n), Decimal(f)) for t, p, n, f in
            q(db, "select ts, price, quantity, fee from fills order by ts, role")]


def uninterrupted(directory: Path) -> tuple:
    """Run a deployment that is never killed: its ledger view and IBKR's executions."""
    s = make_scene(directory)
    try:
        code, err = s.run()
        assert code == 0, err[-3000:]
        assert not s.fake.protocol_errors, s.fake.protocol_errors
        return ledger_view(s.db), venue_fill_rows(s.fake)
    finally:
        s.fake.stop()


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The run that was never killed."""
    return uninterrupted(tmp_path_factory.mktemp("whole"))


def test_the_uninterrupted_run_enters_with_brackets_that_end_at_ibkr(whole):
    (decisions, fills, trades), venue = whole
    assert [x[1] for x in decisions].count("enter_long") == len(worker.ENTRIES)
    assert [t[6] for t in trades] == ["take_profit", "signal", "stop_loss"]
    assert len(decisions) == BARS and len(fills) == len(venue) == 6


def check_scene(step: str, s: Scene) -> None:
    """The first kill landed where its step says (the state the restart must repair)."""
    rows = q(s.db, "select client_order_id, status, role from orders")
    journaled = [c for c, st, role in rows if st == "submitted" and role not in
                 ("take_profit", "stop_loss")]
    sent = [c for c in journaled if s.fake.order_by_ref(c) is not None]
    if step in ("after_journal", "in_submit"):          # journaled, never received
        assert journaled and not sent, journaled
    elif step in ("after_place", "after_ack", "in_commit", "after_lost"):
        assert sent, journaled                          # at IBKR, not acknowledged here
    elif step == "after_fill":                          # filled at IBKR, not booked here
        assert len(s.fake.executions()) > len(ledger_fill_rows(s.db))
    elif step == "after_cancel":                        # cancelled at IBKR, working here
        working = [c for c, st, _ in rows if st == "working"]
        assert working and all(s.fake.order_by_ref(c).status == "Cancelled" for c in working)
    booked = ledger_fill_rows(s.db)                     # the ledger is never ahead of IBKR
    assert booked == venue_fill_rows(s.fake)[:len(booked)]


CASES = [
    [("after_journal", 1)],           # entry 1 and its legs committed, never sent
    [("in_submit", 2)],               # entry 2's placeOrder about to leave
    [("after_place", 1)],             # entry 1's bracket transmitted, nothing read back
    [("after_ack", 3)],               # entry 3 acknowledged, nothing committed
    [("after_fill", 2)],              # the take-profit's fill (the bracket ended at IBKR)
    [("in_commit", 2)],               # the commit recording entry 2's acknowledgement
    [("after_cancel", 1)],            # the signal exit cancelled the bracket, nothing committed
    [("before_bar", 8)],              # idle with entry 3's bracket resting at IBKR
    [("after_fill", 1), ("after_ack", 2)],   # killed again after the restart
]


def _case_id(case) -> str:
    return "+".join(f"{a}{n}" for a, n in case)


@pytest.mark.parametrize("kills", CASES, ids=[_case_id(c) for c in CASES])
def test_killed_at_a_step_ibkr_holds_one_bracketed_entry_per_decision_and_equals_the_ledger(
        scene, whole, kills):
    for n, (step, nth) in enumerate(kills):
        code, err = scene.run(step, nth)
        assert code == KILLED, (step, nth, code, err[-3000:])
        if n == 0:
            check_scene(step, scene)
    code, err = scene.run()
    assert code == 0, err[-3000:]
    check_final(scene, whole)


def test_an_order_whose_answer_was_lost_then_a_kill_is_found_by_orderref_and_not_sent_again(
        scene, whole):
    scene.drop_after_bar = worker.EXITS[0]   # the signal exit: accepted and filled, unheard
    code, err = scene.run("after_lost", 1)
    assert code == KILLED, (code, err[-3000:])
    check_scene("after_lost", scene)
    (cid,) = [c for (c,) in q(scene.db, "select client_order_id from orders where status = "
                                        "'submitted' and role = 'exit'")]
    assert scene.fake.order_by_ref(cid).status == "Filled"
    code, err = scene.run()
    assert code == 0, err[-3000:]
    assert q(scene.db, "select status from orders where client_order_id = ?", cid) == [("filled",)]
    check_final(scene, whole)                # (its placeOrder received once: check_agree)


def check_final(s: Scene, whole) -> None:
    """IBKR and the ledger agree (:func:`check_agree`) and equal the run never killed."""
    decisions, fills, trades = check_agree(s)
    (w_decisions, w_fills, w_trades), w_venue = whole
    assert venue_fill_rows(s.fake) == w_venue
    assert decisions == w_decisions
    assert fills == w_fills and trades == w_trades


STATUS = {"Filled": "filled", "Cancelled": "cancelled", "Inactive": "rejected"}


def check_agree(s: Scene) -> tuple[list, list, list]:
    """At IBKR: each orderRef sent once; one entry with one native bracket per entry
    decision, and no other order but the signal exits. The ledger: IBKR's executions row
    for row, each on its order; IBKR's position and cash; each order ended as IBKR ended
    it; each bar decided once; no reconciliation difference, no block. Returns
    :func:`ledger_view`."""
    fake, db = s.fake, s.db
    orders = fake.orders()
    sent = Counter(o.order_ref for o in orders)
    assert sent and {c: k for c, k in sent.items() if k != 1} == {}
    placed = Counter(ref for _, f in fake.received if f[0] == "3" for ref in sent if ref in f)
    assert placed == Counter(sent)                   # one placeOrder message per orderRef
    decided = [json.loads(x)["orders"][0] for (x,) in
               q(db, "select detail from decisions where action = 'enter_long' order by ts")]
    entries = [o for o in orders if o.order_ref.endswith("-entry")]
    assert [o.order_ref for o in entries] == decided and len(entries) == len(worker.ENTRIES)
    legs = []
    for e in entries:
        pair = sorted((o for o in orders if o.parent_id == e.order_id), key=lambda o: o.order_type)
        assert [(o.order_type, o.action, o.order_ref) for o in pair] == [
            ("LMT", "SELL", e.order_ref.replace("-entry", "-take_profit")),
            ("STP", "SELL", e.order_ref.replace("-entry", "-stop_loss"))]
        assert (e.transmit, pair[0].transmit, pair[1].transmit) == (False, False, True)
        assert pair[0].oca_group == pair[1].oca_group != ""
        legs += pair
    others = [o for o in orders if o not in entries and o not in legs]
    assert [(o.order_type, o.action) for o in others] == [("MKT", "SELL")] * len(worker.EXITS)
    # IBKR's executions are the ledger's fills, row for row, each on its order
    assert ledger_fill_rows(db) == venue_fill_rows(fake)
    assert sorted((x.order.order_ref, x.shares, x.price) for x in fake.executions()) == sorted(
        (c, Decimal(n), Decimal(p)) for c, n, p in
        q(db, "select client_order_id, quantity, price from fills"))
    # IBKR's position and cash are the ledger's
    held = sum((Decimal(n) if side == "buy" else -Decimal(n))
               for side, n in q(db, "select side, quantity from fills"))
    assert fake.positions().get(SYM, Decimal(0)) == held == 0
    (state,), = q(db, "select state from engine_state order by ts desc, seq desc limit 1")
    assert Decimal(json.loads(state)["accounts"][0]["cash"]) == fake.cash()
    # each order one row, ended as IBKR ended it; nothing open anywhere
    rows = q(db, "select client_order_id, status from orders")
    assert len(rows) == len(dict(rows))
    assert dict(rows) == {o.order_ref: STATUS.get(o.status, o.status) for o in orders}
    assert [o for o in orders if o.status not in ("Filled", "Cancelled")] == []
    # every bar decided exactly once; nothing differed, nothing was blocked
    decisions, fills, trades = ledger_view(db)
    assert [x[0] for x in decisions] == [int(t) for t in worker.window(BARS)[1].ts]
    assert q(db, "select kind, ours, venue, status from reconciliations") == []
    assert q(db, "select message from events where kind = 'block'") == []
    return decisions, fills, trades
