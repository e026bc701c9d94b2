"""A paper deployment over real bars, one bar at a time, that can SIGKILL itself.

    python _paper_worker.py DB NAME BARS [STEP N] [--venue file:PATH] [--brackets emulated]

Runs the bundled BTC-USD 1 h bars ``0..BARS-1`` through a paper deployment ``NAME`` (the
order journal, state saved with every commit), resuming after the last bar whose state
the ledger holds, warmed up from the bars before it. The venue is the in-process
``SimBroker`` (whose books are restored from the ledger), or with ``--venue file:PATH``
a :class:`file_venue.FileVenue` whose state lives in the file ``PATH`` and outlives the
process (its quote balance starts at the deployment's capital; ``--brackets emulated``
makes the engine hold bracket legs itself). With ``STEP`` and ``N`` it kills itself
with SIGKILL at the N-th time the run reaches that step:

    after_journal  the decision and its orders are committed, nothing sent yet
    in_submit      the order is in the broker's hands, not yet recorded by the venue
                   (SimBroker: before the call; FileVenue: its new state is written
                   to PATH.tmp, not yet put in place)
    after_ack      the broker accepted the order, nothing after it committed
    after_fill     a fill was applied in memory, not yet committed
    in_commit      a ledger commit has started (the transaction is rolled back)
    in_process     FileVenue only: a bar filled something and the venue is saving it
                   (written to PATH.tmp, not in place): the venue never did it

Without STEP it runs to the last bar and closes every position (end of data).

:func:`main` takes the same arguments as a list, so a test can run it in a forked
process (see ``test_fault_injection.py``).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
from decimal import Decimal
from pathlib import Path

from tradewarden.data import load_market_data
from tradewarden.domain import COINBASE_SPECS, ExitReason
from tradewarden.engine import ReplayClock
from tradewarden.ledger import Ledger
from tradewarden.ops.kernel import assemble
from tradewarden.strategy import build_strategy

SYM = "BTC-USD"
CAPITAL = Decimal(10000)
STEPS = ("after_journal", "in_submit", "after_ack", "after_fill", "in_commit", "in_process")


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse the worker's arguments (see the module notes)."""
    p = argparse.ArgumentParser(prog="_paper_worker.py")
    p.add_argument("db")
    p.add_argument("name")
    p.add_argument("bars", type=int)
    p.add_argument("crash", nargs="*", metavar="STEP N")
    p.add_argument("--venue", default="sim", help="sim (default) or file:PATH")
    p.add_argument("--brackets", choices=("native", "emulated"), default="native")
    args = p.parse_args(argv)
    if len(args.crash) not in (0, 2):
        p.error("give STEP and N together")
    if args.crash and args.crash[0] not in STEPS:
        p.error(f"unknown step {args.crash[0]!r}; known: {', '.join(STEPS)}")
    if args.venue != "sim" and not args.venue.startswith("file:"):
        p.error(f"--venue: sim or file:PATH, got {args.venue!r}")
    if args.venue == "sim" and (args.brackets != "native" or args.crash[:1] == ["in_process"]):
        p.error("--brackets emulated and in_process need --venue file:PATH")
    return args


def main(argv: list[str] | None = None) -> None:
    """Run (or resume) the deployment; see the module notes."""
    args = parse(sys.argv[1:] if argv is None else argv)
    step, nth = (args.crash[0], int(args.crash[1])) if args.crash else (None, 0)
    bars = load_market_data([SYM]).series[SYM].slice(0, args.bars)
    instruments = {SYM: COINBASE_SPECS[SYM]}
    strategy = build_strategy("donchian", {"entry_window": 10, "exit_window": 5})
    venue = None
    if args.venue.startswith("file:"):
        from file_venue import FileVenue  # next to this file
        venue = FileVenue(Path(args.venue[5:]), instruments, taker_bps=10.0, maker_bps=5.0,
                          slippage_bps=2.0, cash=CAPITAL,
                          native_brackets=args.brackets == "native")
    ledger = Ledger(args.db, background=True)
    dep = ledger.open_deployment(args.name, mode="paper", config="{}", config_hash="fault-test")
    run_id = f"run{os.getpid()}"
    ledger.create_run({"run_id": run_id, "mode": "paper", "capital_mode": "independent",
                       "market_time_basis": "test", "data_integrity": "ok", "config_hash": "x",
                       "config": "{}", "strategy": strategy.name, "symbols": "[]",
                       "timeframe": "1h", "initial_capital": CAPITAL})
    state = ledger.latest_engine_state(dep["deployment_id"])
    engine = assemble("paper", run_id=run_id, strategy=strategy, instruments=instruments,
                      ledger=ledger, capital=CAPITAL, deployment_id=dep["deployment_id"],
                      clock=ReplayClock(int(bars.ts[0])), broker=venue).engine
    start = 0
    if state is not None and state.get("ts") is not None:   # resume after the last committed bar
        start = int((bars.ts <= state["ts"]).sum())
        engine.prepare({SYM: bars.slice(max(0, start - strategy.warmup), start)})  # warm-up
    if step is not None:
        arm(engine, ledger, venue, step, nth)
    for i in range(start, args.bars):
        engine.process_chunk({SYM: bars.slice(i, i + 1)})
    engine.close_all(ExitReason.END_OF_DATA)
    ledger.close()


def child(argv: list[str], err_path: str) -> None:
    """Run :func:`main` in a forked test process; a failure's traceback also goes to
    ``err_path`` (the forked process's stderr is not the test's), and the process exits
    with 1 (2 for bad arguments)."""
    try:
        main(argv)
    except BaseException:
        Path(err_path).write_text(traceback.format_exc())
        raise


def arm(engine, ledger, venue, step: str, nth: int) -> None:
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
    elif step == "in_submit" and venue is not None:
        submit = venue.submit                   # die while the venue writes the submit

        def wrapped(order, legs=()):
            venue.before_replace = lambda: die() if hit() else None
            try:
                return submit(order, legs)
            finally:
                venue.before_replace = None
        venue.submit = wrapped
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
    elif step == "in_process":
        process = venue.process                 # die while the venue writes a bar's fills

        def wrapped(bar):
            venue.before_replace = lambda: die() if hit() else None
            try:
                return process(bar)
            finally:
                venue.before_replace = None
        venue.process = wrapped
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
