"""A live IBKR deployment over real daily bars, one bar at a time, that can SIGKILL itself.

    child([DB, NAME, BARS, [STEP, N], --port PORT, --client-id ID], err_path, clock,
          walks, walked)

The venue is :class:`tradewarden.execution.ibkr.IbkrBroker`: the real ``ib_async``
client talking the TWS API socket protocol to a :class:`fake_tws.FakeTws` that runs in
the TEST process and outlives this one (orders, executions, positions and cash live in
the fake, as in a real gateway). ``clock`` is a shared ``multiprocessing`` double (UTC
epoch seconds) that the fake reads as its time too; it carries on across restarts.

Runs the bundled AAPL daily bars ``OFFSET .. OFFSET+BARS-1`` (AlphaVantage panel, raw
prices) through a live deployment ``NAME`` (order journal, state saved with every
commit, reconciled with the venue when it starts: :func:`tradewarden.ops.kernel.assemble`),
resuming after the last bar whose state the ledger holds, warmed up from the bars before
it. For each bar the clock moves to 16:00 UTC of its session and the test process walks
the fake's price through it (open, towards the resting stops, the other extreme, close:
the worker puts the bar's time on ``walks`` and waits for it on ``walked``; the test's
walker ignores a bar it walked already), then ``engine.on_bar`` at the bar's close
(midnight UTC: decide after the close, order for the next open), the adapter's alerts
recorded as events, and the commit. The strategy (``_live_worker.Scripted``) enters with
a bracket 1 % either side of the close at :data:`ENTRIES`: the first ends at its
take-profit at IBKR, the second by signal at :data:`EXITS` (the bracket cancelled, a
market sell), the third at its stop-loss at IBKR.

With ``STEP`` and ``N`` it kills itself with SIGKILL at the N-th time the run reaches
that step:

    after_journal  the decision and its orders are committed, nothing sent yet
    in_submit      inside ``broker.submit``, before the first ``placeOrder`` (nothing sent)
    after_place    inside ``broker.submit``, right after the ``placeOrder`` that transmits
                   (the whole group is at IBKR, nothing read back, nothing committed)
    after_ack      ``broker.submit`` returned IBKR's acknowledgement, nothing after it
                   committed
    after_fill     a fill was applied in memory, not yet committed
    after_cancel   ``broker.cancel_all`` cancelled orders at IBKR (a signal exit cancels
                   the bracket before its exit is journaled), nothing committed
    before_bar     this run is about to walk its N-th bar, everything before it durable
                   (the process idle between bars: a bracket resting at IBKR)
    in_commit      the ledger commit after the N-th ``broker.submit`` has started (IBKR's
                   answer to that order is never committed)
    after_lost     the N-th ``broker.submit`` that returned with the session down (the test
                   makes the fake drop the connection right after accepting an order:
                   ``drop_on_next_order(after_accept=True)``): IBKR has the order, this
                   process never heard of it

Without STEP it runs to the last bar and closes every position (end of data).
"""

from __future__ import annotations

import argparse
import os
import queue
import traceback
from decimal import Decimal
from pathlib import Path
from typing import Any

from _live_worker import Scripted, _Counter, _die, arm_engine, loopback_only

from tradewarden.data.equities import load_equity_panel
from tradewarden.domain import BarSeries, ExitReason
from tradewarden.execution.ibkr import IbkrBroker
from tradewarden.ledger import Ledger
from tradewarden.ops.kernel import assemble

SYM = "AAPL"
ACCOUNT = "U7654321"                  # a live account: this is a live deployment
CAPITAL = Decimal(10000)
#: The first bar of the window (index into the bundled AAPL daily series: 2015-04-10).
OFFSET = 821
#: Entries (bar indices of the window): the first ends at its take-profit the next
#: session, the second by the signal exit at EXITS (its bracket cancelled), the third at
#: its stop-loss two sessions later.
ENTRIES = (0, 2, 6)
EXITS = (4,)
#: Seconds after a session's 00:00 UTC label at which its bar is walked (16:00 UTC).
MID = 16 * 3600
STEPS = ("after_journal", "in_submit", "after_place", "after_ack", "after_fill",
         "after_cancel", "before_bar", "in_commit", "after_lost")


def window(bars: int) -> tuple[BarSeries, BarSeries]:
    """Return the bundled AAPL daily series and the window of ``bars`` bars from
    :data:`OFFSET`."""
    full = load_equity_panel(symbols=[SYM])[SYM].series
    return full, full.slice(OFFSET, OFFSET + bars)


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse the worker's arguments (see the module notes)."""
    p = argparse.ArgumentParser(prog="_ibkr_worker.py")
    p.add_argument("db")
    p.add_argument("name")
    p.add_argument("bars", type=int)
    p.add_argument("crash", nargs="*", metavar="STEP N")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--client-id", type=int, default=1)
    args = p.parse_args(argv)
    if len(args.crash) not in (0, 2):
        p.error("give STEP and N together")
    if args.crash and args.crash[0] not in STEPS:
        p.error(f"unknown step {args.crash[0]!r}; known: {', '.join(STEPS)}")
    return args


def main(argv: list[str], cell: Any, walks: Any, walked: Any) -> None:
    """Run (or resume) the deployment; see the module notes. ``cell`` is the shared clock
    (``.value``: UTC epoch seconds); ``walks`` / ``walked`` the queues to the test's
    walker."""
    args = parse(argv)
    loopback_only()
    step, nth = (args.crash[0], int(args.crash[1])) if args.crash else (None, 0)
    full, bars = window(args.bars)

    clock = SharedClock(cell)
    broker = IbkrBroker.connect("127.0.0.1", args.port, args.client_id, ACCOUNT, [SYM], clock,
                                timeout=5, attempts=5)
    strategy = Scripted([int(bars.ts[i]) for i in ENTRIES if i < len(bars)],
                        [int(bars.ts[i]) for i in EXITS if i < len(bars)])
    ledger = Ledger(args.db, background=True)
    dep = ledger.open_deployment(args.name, mode="live", config="{}", config_hash="fault-test")
    run_id = f"run{os.getpid()}"
    ledger.create_run({"run_id": run_id, "mode": "live", "capital_mode": "independent",
                       "market_time_basis": "test", "data_integrity": "ok", "config_hash": "x",
                       "config": "{}", "strategy": strategy.name, "symbols": f'["{SYM}"]',
                       "timeframe": "1d", "initial_capital": CAPITAL})
    state = ledger.latest_engine_state(dep["deployment_id"])
    if step is not None:
        arm_venue(broker, step, nth)
    engine = assemble("live", run_id=run_id, strategy=strategy, instruments=broker.instruments,
                      ledger=ledger, capital=CAPITAL, deployment_id=dep["deployment_id"],
                      clock=clock, broker=broker).engine       # restored and reconciled
    start = 0
    if state is not None and state.get("ts") is not None:   # resume after the last committed bar
        start = int((bars.ts <= state["ts"]).sum())
    at = OFFSET + start
    engine.warm_up({SYM: full.slice(max(0, at - strategy.warmup - 1), at)})
    if step == "after_lost":
        arm_lost(broker, nth)
    elif step is not None:
        arm_engine(engine, ledger, step, nth)
    for n, i in enumerate(range(start, len(bars)), 1):
        if step == "before_bar" and n == nth:
            ledger.drain()                               # idle: everything before is durable
            _die()
        b = bars.bar(i)
        clock.wait_until(b.ts + MID)                     # the session trades at IBKR
        walk(walks, walked, b.ts)
        broker.ib.reqCurrentTime()                       # what the walk sent has arrived
        engine.on_bar(b)                                 # waits for the bar's close
        while broker.alerts:
            engine.event(clock.now(), "alert", None, broker.alerts.pop(0))
        engine.flush()
    engine.close_all(ExitReason.END_OF_DATA)
    ledger.close()
    broker.disconnect()


class SharedClock:
    """The shared simulated clock: a wait jumps to its time at once (daily bars would
    cost a wall clock's one-second slices by the million)."""

    def __init__(self, cell: Any) -> None:
        self.cell = cell

    def now(self) -> int:
        """Return the shared time, whole UTC epoch seconds."""
        return int(self.cell.value)

    def wait_until(self, ts: int) -> None:
        """Move the shared time to ``ts`` if it is later."""
        if ts > self.cell.value:
            self.cell.value = float(ts)


def walk(walks: Any, walked: Any, ts: int) -> None:
    """Ask the test's walker to walk the bar of session ``ts`` and wait until it has (a
    stale answer left by a killed run is skipped)."""
    walks.put(int(ts))
    while True:
        try:
            done = walked.get(timeout=30)
        except queue.Empty:
            raise RuntimeError(f"the test's walker did not walk the bar of {ts}") from None
        if done == int(ts):
            return


def child(argv: list[str], err_path: str, cell: Any, walks: Any, walked: Any) -> None:
    """Run :func:`main` in a forked test process; a failure's traceback also goes to
    ``err_path`` (the forked process's stderr is not the test's)."""
    try:
        main(argv, cell, walks, walked)
    except BaseException:
        Path(err_path).write_text(traceback.format_exc())
        raise


def arm_venue(broker: IbkrBroker, step: str, nth: int) -> None:
    """Install the steps that sit inside ``broker.submit`` around ib_async's ``placeOrder``
    (before the engine exists: reconciliation may already send)."""
    if step not in ("in_submit", "after_place"):
        return
    count = _Counter(nth)
    armed = [False]
    submit = broker.submit
    place = broker.ib.placeOrder

    def submitting(order: Any, legs: tuple = ()) -> Any:
        armed[0] = count.hit()
        try:
            return submit(order, legs)
        finally:
            armed[0] = False

    def placing(contract: Any, order: Any) -> Any:
        if armed[0] and step == "in_submit":
            _die()
        trade = place(contract, order)
        if armed[0] and step == "after_place" and order.transmit:
            _die()
        return trade
    broker.submit = submitting              # type: ignore[method-assign]
    broker.ib.placeOrder = placing


def arm_lost(broker: IbkrBroker, nth: int) -> None:
    """Kill at the ``nth`` ``broker.submit`` that returns with the session down (the
    order's outcome unknown to this process)."""
    count = _Counter(nth)
    submit = broker.submit

    def submitted(order: Any, legs: tuple = ()) -> Any:
        out = submit(order, legs)
        if not broker.connected and count.hit():
            _die()
        return out
    broker.submit = submitted              # type: ignore[method-assign]
