"""The kernel: the one place that assembles a mode from its parts and runs it.

As LEAN swaps handlers per environment, a mode here is a set of :class:`Handlers`
(clock, broker, ledger, risk, governor) plus a feed of bars; the
:class:`~tradewarden.engine.TradingEngine` in the middle is the same for every mode:

========  =============================  ==================================  ===========================
mode      clock                          feed                                broker
========  =============================  ==================================  ===========================
replay    ``ReplayClock`` (bar times)    files / bundled / cached history    ``SimBroker``
paper     ``WallClock``                  live bars (any iterable of chunks)  ``SimBroker``
live      ``WallClock``                  live bars                           a venue adapter (the port)
========  =============================  ==================================  ===========================

The CLI (``warden replay``), the Python API, ``warden bench`` and the tests assemble
engines through :func:`assemble` (or :func:`run_replay` for a recorded replay run).
Paper and live run every bar through the reference path (:meth:`TradingEngine.on_bar`)
with the order journal on (each decision and its orders committed before
``broker.submit``, every venue event recorded in ``order_events``) and write the ledger
after every bar; replay may take the batch path and does not journal.
"""

from __future__ import annotations

import getpass
import json
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from tradewarden.agent.governor import GOVERNORS
from tradewarden.domain import BarSeries, ExitReason, Instrument, iso
from tradewarden.ops import replay as _replay
from tradewarden.engine.clock import Clock, ReplayClock, WallClock
from tradewarden.engine.config import RunConfig
from tradewarden.engine.engine import EngineCounts, Shortcuts, TradingEngine
from tradewarden.engine.order_ids import DeploymentOrderIds
from tradewarden.engine.ports import Governor
from tradewarden.ops.replay import ReplayInputs, batch_gc, git_sha, load_inputs
from tradewarden.execution import Broker, SimBroker
from tradewarden.ledger.lifecycle import RunInterrupted, StopSignals
from tradewarden.ledger.store import Ledger, LedgerError, dumps
from tradewarden.risk import RiskConfig, RiskManager
from tradewarden.strategy import Strategy

MODES = ("replay", "paper", "live")
MARKET_TIME_BASIS = "bar open time, UTC; market orders fill at the next bar's open"
#: Seconds after a bar's close beyond which paper and live block entries on it.
DEFAULT_STALE_AFTER = 120


@dataclass(slots=True)
class Handlers:
    """The parts one mode swaps in around the engine.

    Parameters
    ----------
    mode : {"replay", "paper", "live"}
    clock : Clock
    broker : Broker
    ledger : Ledger
    risk : RiskManager
    governor : Governor
    """

    mode: str
    clock: Clock
    broker: Broker
    ledger: Ledger
    risk: RiskManager
    governor: Governor


@dataclass(slots=True)
class ReplayFeed:
    """Historical bars in time windows of about ``chunk_bars`` timestamps (see
    :func:`tradewarden.ops.replay.chunked`)."""

    series: dict[str, BarSeries]
    chunk_bars: int = 2000

    def __iter__(self) -> Iterator[dict[str, BarSeries]]:
        return _replay.chunked(self.series, self.chunk_bars)   # looked up at call time (tests patch it)

    @property
    def total_bars(self) -> int:
        """Bars over all symbols."""
        return sum(len(s) for s in self.series.values())

    @property
    def start(self) -> int:
        """The first bar's open time, UTC epoch seconds."""
        return min(int(s.ts[0]) for s in self.series.values())


@dataclass(slots=True)
class Kernel:
    """One assembled mode: its handlers and the engine built from them."""

    handlers: Handlers
    engine: TradingEngine
    warnings: list[str] = field(default_factory=list)

    def run(self, feed: Iterable[dict[str, BarSeries]], *,
            progress: Callable[[int, int], None] | None = None, total: int = 0,
            stop: StopSignals | None = None, heartbeat: bool = True,
            close: ExitReason | None = ExitReason.END_OF_DATA) -> EngineCounts:
        """Run the engine over ``feed`` (chunks of new bars per symbol) and close out.

        Parameters
        ----------
        feed : iterable of dict of str to BarSeries
            A replay feed's chunks, or one-bar chunks as live bars close.
        progress : callable, optional
            ``progress(bars_done, total)`` after every chunk.
        stop : StopSignals, optional
            Checked after every chunk (SIGTERM / Ctrl-C stop at a chunk boundary).
        heartbeat : bool
            Update the run's heartbeat row after every chunk.
        close : ExitReason or None
            Flatten every position at the end (``end_of_data`` in replay); ``None``
            leaves positions open.

        Returns
        -------
        EngineCounts
        """
        engine, ledger = self.engine, self.handlers.ledger
        done = 0
        for chunk in feed:
            done += engine.process_chunk(chunk)
            if progress is not None:
                progress(done, total)
            if heartbeat:
                ledger.heartbeat(engine.run_id, bars_processed=done, decisions=engine.counts.decisions,
                                 trades_closed=engine.counts.trades_closed)
            if stop is not None:
                stop.check()
        if close is not None:
            engine.close_all(close)
        else:
            engine.flush()
        return engine.counts


def assemble(mode: str, *, run_id: str, strategy: Strategy, instruments: dict[str, Instrument],
             ledger: Ledger, capital: Decimal, capital_mode: str = "independent",
             risk: RiskConfig | None = None, governor: str | Governor = "autonomous",
             fee_bps: float = 10.0, maker_fee_bps: float = 5.0, slippage_bps: float = 2.0,
             clock: Clock | None = None, broker: Broker | None = None, start: int = 0,
             stale_after: int | None = None, reference: bool = False,
             shortcuts: Shortcuts | None = None, deployment_id: str | None = None) -> Kernel:
    """Assemble the engine of one mode.

    Parameters
    ----------
    mode : {"replay", "paper", "live"}
    run_id : str
    strategy : Strategy
    instruments : dict of str to Instrument
        One per symbol, in tie-break order.
    ledger : Ledger
    capital : Decimal
        Starting cash, quote currency (per symbol in ``independent`` capital mode).
    capital_mode : {"independent", "portfolio"}
    risk : RiskConfig, optional
        Defaults to ``RiskConfig()``.
    governor : str or Governor
        A name from :data:`tradewarden.agent.governor.GOVERNORS` or a governor object.
    fee_bps, maker_fee_bps, slippage_bps : float
        The simulated broker's taker fee, maker fee and slippage, basis points.
    clock : Clock, optional
        Defaults to ``ReplayClock(start)`` in replay and ``WallClock()`` otherwise (a
        test passes its own controllable clock).
    broker : Broker, optional
        Required in live mode (a venue adapter); replay and paper default to a
        :class:`SimBroker` with the fees above.
    start : int
        Replay: the first bar's open time (UTC epoch seconds) the clock starts at.
    stale_after : int, optional
        Seconds after a bar's close beyond which entries on it are blocked; replay
        never checks, paper and live default to :data:`DEFAULT_STALE_AFTER`.
    reference : bool
        Replay only: run every bar through ``on_bar`` instead of the batch path
        (paper and live always do).
    shortcuts : Shortcuts, optional
        The batch path's shortcuts.
    deployment_id : str, optional
        Paper and live: the deployment (``Ledger.open_deployment``) whose persisted
        sequence issues the client order ids (``tw-{deployment_id}-{n}-{role}``); the
        engine saves its state with every commit and resumes from the latest saved
        state when the deployment starts again (positions, cash, open orders, bracket
        legs, risk halts), then reconciles with the venue
        (:meth:`~tradewarden.engine.TradingEngine.reconcile`) before anything else.

    Returns
    -------
    Kernel

    Raises
    ------
    ValueError
        An unknown mode or governor, or live mode without a venue adapter.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if isinstance(governor, str):
        if governor not in GOVERNORS:
            raise ValueError(f"unknown governor {governor!r}; known: {', '.join(GOVERNORS)}")
        governor = GOVERNORS[governor]()
    if broker is None:
        if mode == "live":
            raise ValueError("live mode needs a venue adapter (a Broker); the simulated broker "
                             "is for replay and paper")
        broker = SimBroker(instruments, taker_fee_bps=fee_bps, maker_fee_bps=maker_fee_bps,
                           slippage_bps=slippage_bps)
    if clock is None:
        clock = ReplayClock(start) if mode == "replay" else WallClock()
    if mode == "replay":
        stale_after = None
    elif stale_after is None:
        stale_after = DEFAULT_STALE_AFTER
    order_ids = None
    if deployment_id is not None:
        if mode == "replay":
            raise ValueError("a replay has no deployment: its order ids come from the run id")
        order_ids = DeploymentOrderIds(deployment_id,
                                       lambda n: ledger.reserve_order_seq(deployment_id, n))
    accounts = list(instruments) if capital_mode == "independent" else ["portfolio"]
    risk_manager = RiskManager(risk or RiskConfig(), accounts)
    handlers = Handlers(mode, clock, broker, ledger, risk_manager, governor)
    engine = TradingEngine(run_id=run_id, strategy=strategy, risk=risk_manager, broker=broker,
                           governor=governor, ledger=ledger, instruments=instruments,
                           capital=capital, capital_mode=capital_mode, clock=clock,
                           stale_after=stale_after, reference=reference or mode != "replay",
                           shortcuts=shortcuts, journal=mode != "replay", order_ids=order_ids,
                           deployment_id=deployment_id)
    if deployment_id is not None:      # resume where the deployment's last commit left it,
        state = ledger.latest_engine_state(deployment_id)     # then agree with the venue
        if state is not None:
            engine.restore(state)
        engine.reconcile(int(clock.now()),
                         previous=ledger.reconciliations(deployment_id=deployment_id, status="open"))
    return Kernel(handlers, engine)


@dataclass(slots=True)
class ReplayResult:
    """What a finished replay produced."""

    run_id: str
    counts: EngineCounts
    ledger_url: str
    data_integrity: str
    warnings: list[str] = field(default_factory=list)


def run_replay(config: RunConfig, ledger: Ledger, *,
               progress: Callable[[int, int], None] | None = None,
               created_by: str | None = None, run_id: str | None = None,
               inputs: ReplayInputs | None = None, reference: bool = False) -> ReplayResult:
    """Replay historical bars through the engine and record everything in ``ledger``.

    Parameters
    ----------
    config : RunConfig
    ledger : Ledger
    progress : callable, optional
        ``progress(bars_done, bars_total)`` after every chunk.
    created_by : str, optional
        Who started the run (defaults to the OS user).
    run_id : str, optional
        Defaults to 12 random hex digits.
    inputs : ReplayInputs, optional
        Already loaded by :func:`~tradewarden.ops.replay.load_inputs` (the CLI
        loads before showing progress).
    reference : bool
        Run every bar through ``TradingEngine.on_bar`` (``warden replay
        --reference-path``); the ledger rows are the same as the batch path's.

    Returns
    -------
    ReplayResult

    Raises
    ------
    tradewarden.data.DataError
        Unreadable, malformed or missing data (no run row is written).
    tradewarden.strategy.StrategyConfigError
        Unknown strategy or bad parameter (no run row is written).
    Exception
        Anything failing once the run has started: the run is marked ``failed`` with
        the error before the exception propagates.
    tradewarden.ledger.RunInterrupted
        SIGTERM or SIGINT (Ctrl-C) during the chunk loop: the replay stops after the
        chunk in progress (a second signal stops at once and that chunk is rolled
        back), the run is marked ``interrupted`` with the counts the ledger holds, and
        this is raised (its ``exit_code`` is 143 or 130).

    Notes
    -----
    The run row records this process (pid, host, start time) and a heartbeat, updated
    with the progress at most every few seconds (wall clock, bookkeeping only), so a
    later command can mark the run ``crashed`` if this process dies without closing it.
    """
    inputs = inputs or load_inputs(config)
    config, strategy, loaded = inputs.config, inputs.strategy, inputs.loaded
    series = {s: loaded.series[s] for s in config.symbols}
    quality = {s: loaded.quality[s].to_dict() for s in config.symbols}
    integrity = "degraded" if any(q.get("status") == "degraded" for q in quality.values()) else "ok"
    run_id = run_id or uuid.uuid4().hex[:12]
    feed = ReplayFeed(series, config.chunk_bars)
    first = feed.start
    last = max(int(s.ts[-1]) for s in series.values())
    ledger.create_run({
        "run_id": run_id, "mode": config.mode, "capital_mode": config.capital_mode,
        "market_time_basis": MARKET_TIME_BASIS, "data_integrity": integrity,
        "data_quality": dumps(quality), "created_by": created_by or _user(),
        "git_sha": git_sha(), "config_hash": config.config_hash(),
        "config": config.canonical_json(), "strategy": strategy.name,
        "input_names": json.dumps(list(strategy.input_names)),
        "symbols": json.dumps(list(config.symbols)), "timeframe": config.timeframe,
        "range_start": iso(first), "range_end": iso(last), "initial_capital": config.capital,
        "notes": "; ".join(loaded.warnings) or None,
    })
    try:
        kernel = assemble("replay", run_id=run_id, strategy=strategy,
                          instruments={s: loaded.instruments[s] for s in config.symbols},
                          ledger=ledger, capital=config.capital, capital_mode=config.capital_mode,
                          risk=config.risk, governor=config.governor, fee_bps=config.fee_bps,
                          maker_fee_bps=config.maker_fee_bps, slippage_bps=config.slippage_bps,
                          start=first, reference=reference)
        engine = kernel.engine
        for w in loaded.warnings:
            engine.event(first, "data", None, w)
        for sym, q in quality.items():
            if q.get("rows_skipped"):
                engine.event(first, "data", sym, f"{q['rows_skipped']} bad rows skipped")
        with StopSignals(run_id) as stop, batch_gc():
            c = kernel.run(feed, progress=progress, total=feed.total_bars, stop=stop)
            stop.check()
        ledger.finish_run(run_id, status="completed", completed_at=_utcnow(),
                          bars_processed=c.bars, decisions=c.decisions,
                          trades_opened=c.trades_opened, trades_closed=c.trades_closed)
    except BaseException as exc:
        try:    # the uncommitted part of a chunk is rolled back; counts are what is recorded
            row = ledger.finish_run(
                run_id, status="interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
                completed_at=_utcnow(), error=f"{type(exc).__name__}: {exc}"[:2000])
        except LedgerError:     # e.g. the disk is full: report the cause; a later command
            pass                # marks the run crashed once this process is gone
        else:
            if isinstance(exc, RunInterrupted):
                exc.bars_processed, exc.decisions = row["bars_processed"], row["decisions"]
        raise
    return ReplayResult(run_id, c, ledger.url, integrity, list(loaded.warnings))


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


def _utcnow() -> str:
    from tradewarden.ledger.store import utcnow_iso
    return utcnow_iso()


__all__ = [
    "DEFAULT_STALE_AFTER",
    "MARKET_TIME_BASIS",
    "MODES",
    "Handlers",
    "Kernel",
    "ReplayFeed",
    "ReplayResult",
    "assemble",
    "run_replay",
]
