"""A live Kraken deployment over real bars, one bar at a time, that can SIGKILL itself.

    child([DB, NAME, BARS, [STEP, N], --api-url URL, --ca-bundle PATH], err_path, cell)

The venue is :class:`tradewarden.execution.ccxt_broker.CcxtBroker` over the real ccxt
``kraken`` client (made by ``CcxtBroker.connect``, i.e.
:func:`tradewarden.data.download.create_venue_client` with ``api_url`` and the key),
signing every private request to a :class:`fake_kraken.FakeKraken` that runs in the TEST
process over TLS (``REQUESTS_CA_BUNDLE`` names its test CA) and outlives this one.
``cell`` is a shared ``multiprocessing`` double, UTC epoch seconds: the deployment's
clock and the fake's ``now``, so both live on one simulated time that carries on across
restarts.

Runs the bundled BTC-USD 1 h bars ``OFFSET .. OFFSET+BARS-1`` through the live deployment
``NAME`` (order journal, state saved with every commit, restored and reconciled with the
venue when it starts: :func:`tradewarden.ops.kernel.assemble`), resuming after the last
bar whose state the ledger holds, warmed up from the bars before it. Before each bar the
clock moves to the middle of the bar and the fake walks its price through the bar
(``POST /_test/step``, the fake's test-control hook; the test walks each bar once, so a
bar a killed run walked is not walked again). Then ``engine.on_bar`` at the bar's close,
the adapter's alerts recorded as events (as ``warden live`` does), and the commit. At the
last bar the deployment reconciles once more (as the live loop does every 15 minutes) and
leaves any difference open in the ledger.

The strategy (:class:`Scripted`) enters at :data:`ENTRIES` with a bracket 1 % either side
of the close; on Kraken the stop-loss rests at the venue and the take-profit is held by
the adapter (sold at market when a bar closes at or above it). On these bars the first
entry ends at its take-profit one bar later, the second at its stop-loss (filled at
Kraken), the third by the signal exit at :data:`EXITS` (the stop cancelled, a market
sell). The AddOrder requests, in order: entry 1, stop 1, take-profit 1's sale, entry 2,
stop 2, entry 3, stop 3, the exit.

With ``STEP`` and ``N`` it kills itself with SIGKILL at the N-th time the run reaches
that step:

    after_journal   the decision and its orders are committed, nothing sent yet
    in_submit       the adapter is about to send an AddOrder (it never leaves)
    after_response  an AddOrder was answered; the adapter has read nothing back and
                    nothing is committed
    after_ack       ``broker.submit`` returned (an entry: accepted and filled), nothing
                    after it committed
    after_fill      a fill was applied in memory, not yet committed
    in_commit       the ledger commit after the N-th ``broker.submit`` has started (the
                    batch is written, never committed)
    after_lost      an AddOrder got no answer (the test makes the fake lose it:
                    ``fail_next("AddOrder", "lose_response")``): killed the moment the
                    client gives up, before the adapter looks the order up

Without STEP it runs to the last bar.
"""

from __future__ import annotations

import argparse
import base64
import os
import signal
import socket
import traceback
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import requests

from tradewarden.data import load_market_data
from tradewarden.domain import BarSeries
from tradewarden.engine.clock import WallClock
from tradewarden.execution.ccxt_broker import CcxtBroker
from tradewarden.ledger import Ledger
from tradewarden.ops.kernel import assemble
from tradewarden.strategy.base import SignalFrame, Strategy, StrategyParams

SYM = "BTC-USD"
CAPITAL = Decimal(10000)
KEY = "tw-kill-suite-key"
SECRET = base64.b64encode(b"kraken secret of the SIGKILL suite, 64 bytes long ..............").decode()
#: The first bundled bar of the window (index into the BTC-USD 1 h series).
OFFSET = 10
#: Entries (bar indices of the window): the first ends at its take-profit on the next
#: bar (its close is above the level), the second at its stop-loss 7 bars later (the
#: low reaches it at Kraken), the third by the signal exit at EXITS.
ENTRIES = (2, 4, 13)
EXITS = (16,)
BARS = 19
BRACKET = 0.01          # take-profit and stop-loss this fraction above / below the close
STEPS = ("after_journal", "in_submit", "after_response", "after_ack", "after_fill",
         "in_commit", "after_lost")
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
               "all_proxy", "CURL_CA_BUNDLE")


def window(bars: int = BARS) -> tuple[BarSeries, BarSeries]:
    """Return the bundled BTC-USD 1 h series and its ``bars`` bars from :data:`OFFSET`."""
    full = load_market_data([SYM]).series[SYM]
    return full, full.slice(OFFSET, OFFSET + bars)


class Scripted(Strategy):
    """Enter at given bar times with a bracket ``frac`` below (stop-loss) and above
    (take-profit) the close; leave by signal at other given times (UTC epoch seconds,
    bar open times)."""

    name = "scripted_brackets"
    Params = StrategyParams
    input_names = ("flag",)

    def __init__(self, enter_ts: list[int], exit_ts: list[int], frac: float = BRACKET) -> None:
        super().__init__(StrategyParams())
        self.enter_ts, self.exit_ts, self.frac = list(enter_ts), list(exit_ts), frac

    @property
    def warmup(self) -> int:
        """One bar (nothing is computed from history)."""
        return 1

    def prepare(self, bars: BarSeries) -> SignalFrame:
        """Flag the scripted bars; levels ``frac`` either side of each close."""
        enter = np.isin(bars.ts, self.enter_ts)
        leave = np.isin(bars.ts, self.exit_ts)
        return SignalFrame(enter, leave, enter.astype(np.int8), ("idle", "scripted"),
                           bars.close * (1 - self.frac), bars.close * (1 + self.frac),
                           {"flag": enter.astype(float)}, entry_reason="scripted",
                           exit_reason="scripted_exit")


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse the worker's arguments (see the module notes)."""
    p = argparse.ArgumentParser(prog="_kraken_worker.py")
    p.add_argument("db")
    p.add_argument("name")
    p.add_argument("bars", type=int)
    p.add_argument("crash", nargs="*", metavar="STEP N")
    p.add_argument("--api-url", required=True)
    p.add_argument("--ca-bundle", required=True)
    args = p.parse_args(argv)
    if len(args.crash) not in (0, 2):
        p.error("give STEP and N together")
    if args.crash and args.crash[0] not in STEPS:
        p.error(f"unknown step {args.crash[0]!r}; known: {', '.join(STEPS)}")
    return args


def loopback_only() -> None:
    """Refuse every connection that is not to the loopback interface (this process talks
    to the test's fake only) and drop proxy settings."""
    real = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else address
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in ("127.0.0.1", "::1",
                                                                              "localhost"):
            raise OSError(f"test network guard: refused connection to {address!r}")
        return real(self, address)
    socket.socket.connect = connect  # type: ignore[method-assign]
    for name in _PROXY_VARS:
        os.environ.pop(name, None)


def main(argv: list[str], cell: Any) -> None:
    """Run (or resume) the deployment; see the module notes. ``cell.value`` is the shared
    clock, UTC epoch seconds."""
    args = parse(argv)
    loopback_only()
    os.environ["REQUESTS_CA_BUNDLE"] = args.ca_bundle
    step, nth = (args.crash[0], int(args.crash[1])) if args.crash else (None, 0)
    full, bars = window(args.bars)

    def sleep(seconds: float) -> None:
        cell.value += seconds

    clock = WallClock(lambda: cell.value, sleep)
    broker = CcxtBroker.connect("kraken", api_key=KEY, api_secret=SECRET, symbols=[SYM],
                                clock=clock, api_url=args.api_url,
                                config={"rateLimit": 1, "timeout": 5000})
    strategy = Scripted([int(bars.ts[i]) for i in ENTRIES if i < len(bars)],
                        [int(bars.ts[i]) for i in EXITS if i < len(bars)])
    ledger = Ledger(args.db, background=True)
    dep = ledger.open_deployment(args.name, mode="live", config="{}", config_hash="fault-test")
    run_id = f"run{os.getpid()}"
    ledger.create_run({"run_id": run_id, "mode": "live", "capital_mode": "independent",
                       "market_time_basis": "test", "data_integrity": "ok", "config_hash": "x",
                       "config": "{}", "strategy": strategy.name, "symbols": f'["{SYM}"]',
                       "timeframe": "1h", "initial_capital": CAPITAL})
    state = ledger.latest_engine_state(dep["deployment_id"])
    if step is not None:
        arm_venue(broker, step, nth)          # before the engine: reconciliation may send
    engine = assemble("live", run_id=run_id, strategy=strategy, instruments=broker.instruments,
                      ledger=ledger, capital=CAPITAL, deployment_id=dep["deployment_id"],
                      clock=clock, broker=broker).engine       # restored and reconciled

    def alerts() -> None:
        while broker.alerts:
            engine.event(clock.now(), "alert", None, broker.alerts.pop(0))

    alerts()
    start = 0
    if state is not None and state.get("ts") is not None:   # resume after the last committed bar
        start = int((bars.ts <= state["ts"]).sum())
    at = OFFSET + start
    engine.warm_up({SYM: full.slice(max(0, at - strategy.warmup - 1), at)})
    if step is not None:
        arm_engine(engine, ledger, step, nth)
    venue = requests.Session()
    for i in range(start, len(bars)):
        b = bars.bar(i)
        clock.wait_until(b.ts + 1800)                    # the middle of the bar: the venue trades it
        r = venue.post(f"{args.api_url}/_test/step", timeout=10, verify=args.ca_bundle,
                       json={"ts": b.ts, **{k: repr(getattr(b, k))
                                            for k in ("open", "high", "low", "close")}})
        r.raise_for_status()
        engine.on_bar(b)                                 # waits for the bar's close
        alerts()
        engine.flush()
    engine.reconcile(clock.now(), name=args.name, previous=ledger.reconciliations(
        deployment_id=dep["deployment_id"], status="open"))
    alerts()
    engine.flush()
    ledger.close()


def child(argv: list[str], err_path: str, cell: Any) -> None:
    """Run :func:`main` in a forked test process; a failure's traceback also goes to
    ``err_path`` (the forked process's stderr is not the test's)."""
    try:
        main(argv, cell)
    except BaseException:
        Path(err_path).write_text(traceback.format_exc())
        raise


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class _Counter:
    """Counts the times a step is reached; ``hit()`` is true at the ``nth``."""

    def __init__(self, nth: int) -> None:
        self.seen, self.nth = 0, nth

    def hit(self) -> bool:
        self.seen += 1
        return self.seen == self.nth


def arm_venue(broker: CcxtBroker, step: str, nth: int) -> None:
    """Install the steps that sit on ccxt's ``create_order`` (Kraken's AddOrder)."""
    if step not in ("in_submit", "after_response", "after_lost"):
        return
    import ccxt

    count = _Counter(nth)
    create = broker.exchange.create_order

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if step == "in_submit" and count.hit():
            _die()
        try:
            out = create(*args, **kwargs)
        except ccxt.NetworkError:
            if step == "after_lost" and count.hit():
                _die()
            raise
        if step == "after_response" and count.hit():
            _die()
        return out
    broker.exchange.create_order = wrapped


def arm_engine(engine: Any, ledger: Ledger, step: str, nth: int) -> None:
    """Install the kill at the ``nth`` time the run reaches ``step`` (engine side)."""
    count = _Counter(nth)
    if step == "after_journal":
        commit_intent = engine._commit_intent

        def journaled(k: int, code: int) -> int:
            out = commit_intent(k, code)
            if count.hit():
                _die()
            return out
        engine._commit_intent = journaled
    elif step in ("after_ack", "in_commit"):
        submit = engine.broker.submit
        commit = ledger.commit
        armed = [False]

        def submitted(order: Any, legs: tuple = ()) -> Any:
            out = submit(order, legs)
            if count.hit():
                if step == "after_ack":
                    _die()
                armed[0] = True
            return out

        def committing() -> None:
            if armed[0]:                         # the batch is written, not committed
                _die()
            commit()
        engine.broker.submit = submitted
        ledger.commit = committing
    elif step == "after_fill":
        apply = engine._apply

        def applied(s: Any, events: list, k: int, close: float) -> None:
            apply(s, events, k, close)
            if any(e.fill is not None for e in events) and count.hit():
                _die()
        engine._apply = applied
