"""A paper deployment over real bars, one bar at a time, that can SIGKILL itself.

    python _paper_worker.py DB NAME BARS [STEP N]

Runs the bundled BTC-USD 1 h bars ``0..BARS-1`` through a paper deployment ``NAME``
(``SimBroker``, the order journal, state saved with every commit), resuming after the
last bar whose state the ledger holds, warmed up from the bars before it. With ``STEP``
and ``N`` it kills itself with SIGKILL at the N-th time the run reaches that step:

    after_journal  the decision and its orders are committed, nothing sent yet
    in_submit      the order is in the broker's hands (the call has not returned)
    after_ack      the broker accepted the order, nothing after it committed
    after_fill     a fill was applied in memory, not yet committed
    in_commit      a ledger commit has started (the transaction is rolled back)

Without STEP it runs to the last bar and closes every position (end of data).
"""

from __future__ import annotations

import os
import signal
import sys
from decimal import Decimal

from tradewarden.data import load_market_data
from tradewarden.domain import COINBASE_SPECS, ExitReason
from tradewarden.engine import ReplayClock
from tradewarden.ledger import Ledger
from tradewarden.ops.kernel import assemble
from tradewarden.strategy import build_strategy

SYM = "BTC-USD"


def main() -> None:
    db, name, n_bars = sys.argv[1], sys.argv[2], int(sys.argv[3])
    step, nth = (sys.argv[4], int(sys.argv[5])) if len(sys.argv) > 5 else (None, 0)
    bars = load_market_data([SYM]).series[SYM].slice(0, n_bars)
    strategy = build_strategy("donchian", {"entry_window": 10, "exit_window": 5})
    ledger = Ledger(db, background=True)
    dep = ledger.open_deployment(name, mode="paper", config="{}", config_hash="fault-test")
    run_id = f"run{os.getpid()}"
    ledger.create_run({"run_id": run_id, "mode": "paper", "capital_mode": "independent",
                       "market_time_basis": "test", "data_integrity": "ok", "config_hash": "x",
                       "config": "{}", "strategy": strategy.name, "symbols": "[]",
                       "timeframe": "1h", "initial_capital": Decimal(10000)})
    state = ledger.latest_engine_state(dep["deployment_id"])
    engine = assemble("paper", run_id=run_id, strategy=strategy, instruments={SYM: COINBASE_SPECS[SYM]},
                      ledger=ledger, capital=Decimal(10000), deployment_id=dep["deployment_id"],
                      clock=ReplayClock(int(bars.ts[0]))).engine
    start = 0
    if state is not None:       # resume after the last bar whose state was committed
        start = int((bars.ts <= state["ts"]).sum())
        engine.prepare({SYM: bars.slice(max(0, start - strategy.warmup), start)})  # warm-up
    if step is not None:
        arm(engine, ledger, step, nth)
    for i in range(start, n_bars):
        engine.process_chunk({SYM: bars.slice(i, i + 1)})
    engine.close_all(ExitReason.END_OF_DATA)
    ledger.close()


def arm(engine, ledger, step: str, nth: int) -> None:
    """Install the kill at the ``nth`` time the run reaches ``step``."""
    seen = [0]

    def hit() -> bool:
        seen[0] += 1
        return seen[0] == nth

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    if step == "after_journal":
        commit_intent = engine._commit_intent

        def wrapped(k, code):
            out = commit_intent(k, code)
            if hit():
                die()
            return out
        engine._commit_intent = wrapped
    elif step in ("in_submit", "after_ack"):
        submit = engine.broker.submit

        def wrapped(order, legs=()):
            if step == "in_submit" and hit():
                die()
            out = submit(order, legs)
            if step == "after_ack" and hit():
                die()
            return out
        engine.broker.submit = wrapped
    elif step == "after_fill":
        apply = engine._apply

        def wrapped(s, events, k, close):
            apply(s, events, k, close)
            if any(e.fill is not None for e in events) and hit():
                die()
        engine._apply = wrapped
    elif step == "in_commit":
        commit = ledger.commit

        def wrapped():
            if hit():                                   # the batch is written, not committed
                die()
            commit()
        ledger.commit = wrapped
    else:
        raise SystemExit(f"unknown step {step!r}")


if __name__ == "__main__":
    main()
