"""A paper deployment resumes after a restart from the state it saved with its last
commit: a halt is never lifted by a restart, and a run cut in two (while bracket legs
rest at the simulated venue) trades exactly as an uninterrupted one."""

from __future__ import annotations

import sqlite3

import pytest

from tradewarden.domain import ExitReason
from tradewarden.engine import ReplayClock
from tradewarden.ledger import Ledger

SYM = "BTC-USD"


def start(tmp_path, make_engine, strategy, bars, name, run_id, db):
    led = Ledger(db)
    dep = led.open_deployment(name, mode="paper", config="{}", config_hash="h")["deployment_id"]
    led.close()
    return make_engine(tmp_path, strategy, mode="paper", db=db, run_id=run_id, deployment_id=dep,
                       clock=ReplayClock(int(bars.ts[0])))


def feed(engine, bars, lo, hi):
    for i in range(lo, hi):
        engine.process_chunk({SYM: bars.slice(i, i + 1)})


def test_a_kill_switch_survives_a_restart(tmp_path, make_engine, scripted, real_bars):
    bars = real_bars[SYM].slice(0, 30)
    db = tmp_path / "l.db"
    strategy = scripted(enter_ts=[bars.ts[15]])
    engine, ledger = start(tmp_path, make_engine, strategy, bars, "ks", "run1", db)
    feed(engine, bars, 0, 10)
    engine.risk.halt(SYM, int(bars.ts[9]), "kill_switch")
    feed(engine, bars, 10, 12)                  # the halt is saved with these commits
    ledger.close()
    engine, ledger = start(tmp_path, make_engine, strategy, bars, "ks", "run2", db)
    assert engine.risk.halted(SYM, int(bars.ts[12])) == "kill_switch"
    feed(engine, bars, 12, 20)
    ledger.close()
    with sqlite3.connect(db) as c:
        row = c.execute("select run_id, action, reason from decisions where ts=?",
                        (int(bars.ts[15]),)).fetchone()
    assert row == ("run2", "blocked", "halted:kill_switch")


@pytest.mark.parametrize("cut", [8, 27, 31])
def test_a_run_cut_in_two_trades_like_an_uninterrupted_one(tmp_path, make_engine, scripted,
                                                           real_bars, cut):
    """Cut before the first entry, while the second entry's market order is pending, and
    while its bracket legs rest at the venue."""
    bars = real_bars[SYM].slice(0, 70)
    strategy = lambda: scripted(enter_ts=[bars.ts[5], bars.ts[26]], exit_ts=[bars.ts[60]],
                                stop_frac=0.01, tp_frac=0.015)
    results = []
    for name, cuts in (("whole", []), ("cut", [cut])):
        db = tmp_path / f"{name}.db"
        bounds = [0, *cuts, 70]
        for n, (lo, hi) in enumerate(zip(bounds, bounds[1:])):
            engine, ledger = start(tmp_path, make_engine, strategy(), bars, name, f"r{n}", db)
            feed(engine, bars, lo, hi)
            if hi == 70:
                engine.close_all(ExitReason.END_OF_DATA)
            ledger.close()
        with sqlite3.connect(db) as c:
            fills = c.execute("select ts, side, quantity, price, fee, role from fills "
                              "order by ts, role").fetchall()
            trades = c.execute("select entry_ts, exit_ts, quantity, entry_price, exit_price, pnl, "
                               "exit_reason from trades order by entry_ts").fetchall()
            decisions = c.execute("select ts, action, reason, equity from decisions "
                                  "order by ts, seq").fetchall()
        results.append((fills, trades, decisions))
    (f1, t1, d1), (f2, t2, d2) = results
    assert len(t1) >= 2 and f1 == f2 and t1 == t2
    assert d1 == d2                                   # every bar decided once, the same way


class Crash(Exception):
    """The process 'dies' here."""


@pytest.mark.parametrize("when", ["before_submit", "after_submit"])
def test_a_crash_around_submit_neither_loses_nor_doubles_the_order(tmp_path, make_engine, scripted,
                                                                   real_bars, when):
    """The process dies right after the journal committed the entry (before the venue got
    it), or right after the venue accepted it (before anything else was committed). After
    the restart the order is at the venue exactly once and the run trades like an
    uninterrupted one."""
    bars = real_bars[SYM].slice(0, 50)
    strategy = lambda: scripted(enter_ts=[bars.ts[10]], exit_ts=[bars.ts[40]], stop_frac=0.01,
                                tp_frac=0.015)
    results = []
    for name in ("whole", "crash"):
        db = tmp_path / f"{name}.db"
        engine, ledger = start(tmp_path, make_engine, strategy(), bars, name, "r0", db)
        if name == "crash":
            real_submit = engine.broker.submit

            def dying_submit(order, legs=()):
                if when == "after_submit":
                    real_submit(order, legs)
                raise Crash(order.client_order_id)
            engine.broker.submit = dying_submit
            with pytest.raises(Crash):
                feed(engine, bars, 0, 50)
            ledger.close()                  # nothing after the journal's commit is kept
            engine, ledger = start(tmp_path, make_engine, strategy(), bars, name, "r1", db)
            sent = [c for c in engine.broker._ids if c.endswith("-entry")]
            assert len(sent) == 1           # at the venue once, whichever side of submit
            feed(engine, bars, 11, 50)
        else:
            feed(engine, bars, 0, 50)
        engine.close_all(ExitReason.END_OF_DATA)
        ledger.close()
        with sqlite3.connect(db) as c:
            fills = c.execute("select ts, side, quantity, price, fee, role from fills "
                              "order by ts, role").fetchall()
            n_entry = c.execute("select count(*) from orders where role='entry'").fetchone()[0]
            decided = c.execute("select count(distinct ts) from decisions where reason != 'end_of_data'"
                                ).fetchone()[0]
        results.append((fills, n_entry, decided))
    assert results[0][0] and results[0] == results[1]
