"""Kill a paper deployment with SIGKILL at each step of the tick path, start it again,
and check the ledger against an uninterrupted run.

Steps (see ``_paper_worker.py``): after the journal's commit, inside ``submit``, after
the venue's acknowledgement, after a fill applied in memory, inside a ledger commit. The
deployment restarts from its last committed state (warmed up from the bars before it,
as the paper feed does), and must then have: every bar decided exactly once, each
client order id recorded once and filled once, and the same fills, trades and decisions
as the run that was never killed.

The simulated venue lives in the process, so what it had received dies with it; an
order the journal committed but the venue never kept is sent again, under its id.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = str(Path(__file__).with_name("_paper_worker.py"))
BARS = 300


def run(db, *crash):
    return subprocess.run([sys.executable, WORKER, str(db), "dep", str(BARS), *map(str, crash)],
                          capture_output=True, text=True, timeout=120)


def ledger_view(db):
    with sqlite3.connect(db) as c:
        fills = c.execute("select ts, side, quantity, price, fee, role from fills order by ts, role").fetchall()
        trades = c.execute("select entry_ts, exit_ts, quantity, entry_price, exit_price, pnl, exit_reason "
                           "from trades order by entry_ts").fetchall()
        decisions = c.execute("select ts, action, reason, state, equity from decisions "
                              "where reason != 'end_of_data' order by ts").fetchall()
        per_order = c.execute("select client_order_id, count(*) from orders group by client_order_id "
                              "having count(*) > 1").fetchall()
        fills_per_order = c.execute("select client_order_id, count(*) from fills group by client_order_id "
                                    "having count(*) > 1").fetchall()
    return fills, trades, decisions, per_order, fills_per_order


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    db = tmp_path_factory.mktemp("whole") / "l.db"
    out = run(db)
    assert out.returncode == 0, out.stderr
    return ledger_view(db)


@pytest.mark.parametrize("step, nth", [("after_journal", 1), ("after_journal", 4), ("in_submit", 2),
                                       ("after_ack", 3), ("after_fill", 3), ("in_commit", 120)])
def test_killed_at_a_step_the_deployment_resumes_as_if_never_killed(tmp_path, uninterrupted, step, nth):
    db = tmp_path / "l.db"
    killed = run(db, step, nth)
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr[-2000:])
    resumed = run(db)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    fills, trades, decisions, dup_orders, dup_fills = ledger_view(db)
    w_fills, w_trades, w_decisions, _, _ = uninterrupted
    assert dup_orders == [] and dup_fills == []               # nothing sent or filled twice
    assert [d[0] for d in decisions] == [d[0] for d in w_decisions]   # each bar decided once
    assert len(decisions) == BARS and len(w_trades) >= 3
    assert decisions == w_decisions
    assert fills == w_fills and trades == w_trades
