"""A long-lived deployment's loop: live closed candles, the inbox between bars, SIGTERM.

``warden paper`` comes here (``warden live`` will too, with a venue adapter as the
broker). :func:`open_paper` records a run for this start of the deployment and
assembles the kernel (which restores the deployment's last committed state and
reconciles with the venue); :func:`run_deployment` then loops until SIGINT / SIGTERM:

1. while the next candle is not due, carry out the commands people queued
   (``warden approvals approve``, ``warden pause``, ... through the ``commands`` table)
   every ``inbox_seconds`` of clock time;
2. at the candle's close (plus the feed's poll delay) poll the feed: every closed candle
   since the last one processed comes back, in order, none twice; a stalled feed blocks
   entries (an event says why) until it delivers again;
3. for each new bar, in time order (ties in symbol order): expire the approvals of its
   symbol still pending from an earlier bar, run the commands queued, then
   ``engine.on_bar`` and a flush (the journal commits each decision and its orders
   before they are sent).

A stop request finishes the bar in progress, flushes, and marks the run ``stopped`` and
the deployment ``stopped``; starting the same deployment again resumes it. Time comes
only from the clock (a test shares a controllable one with its fake venue).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from tradewarden.domain import Bar, BarSeries, Instrument, iso
from tradewarden.engine.clock import Clock
from tradewarden.engine.config import RunConfig
from tradewarden.engine.inbox import FEED_STALLED
from tradewarden.execution.base import Broker
from tradewarden.ledger.lifecycle import RunInterrupted, StopSignals
from tradewarden.ledger.store import Ledger
from tradewarden.ops.kernel import MARKET_TIME_BASIS, Kernel, assemble
from tradewarden.ops.replay import git_sha
from tradewarden.strategy import Strategy

#: Clock seconds between two looks at the command inbox while waiting for a candle.
DEFAULT_INBOX_SECONDS = 5
#: The block code while the primary ledger database is unreachable (a spooling ledger).
LEDGER_UNREACHABLE = "ledger_unreachable"


class LiveFeed(Protocol):
    """A live candle feed (:class:`tradewarden.data.live_feed.LiveCandleFeed`)."""

    def warmup(self, bars: int, *, after: int | None = None) -> dict[str, BarSeries]:
        """Return up to ``bars`` closed candles per symbol ending at ``after`` (or now)."""

    def next_due(self) -> float:
        """Return the clock time the next poll is due (UTC epoch seconds)."""

    def poll(self) -> Any:
        """Return a ``FeedPoll`` (:class:`tradewarden.data.live_feed.FeedPoll`): the
        closed candles not delivered yet, and why the feed is stalled if it is."""


@dataclass(slots=True)
class Deployment:
    """One start of a deployment: its ledger rows and the assembled kernel."""

    name: str
    deployment_id: str
    run_id: str
    kernel: Kernel
    ledger: Ledger
    resumed: bool
    differences: list[dict[str, Any]] = field(default_factory=list)

    @property
    def clock(self) -> Clock:
        """The mode's clock."""
        return self.kernel.handlers.clock


def default_deployment_name(config: RunConfig) -> str:
    """``paper-<strategy>-<symbols>`` in the characters a deployment name allows."""
    import re
    raw = f"{config.mode}-{config.strategy}-{'-'.join(config.symbols)}".lower()
    name = re.sub(r"[^a-z0-9_.-]+", "-", raw).strip("-")
    return name[:64]


def open_paper(config: RunConfig, strategy: Strategy, instruments: dict[str, Instrument],
               ledger: Ledger, *, name: str | None = None, clock: Clock,
               fee_bps: float | None = None, maker_fee_bps: float | None = None,
               created_by: str = "unknown", venue: str | None = None,
               broker: Broker | None = None) -> Deployment:
    """Open (or resume) a paper or live deployment and record this start as a run.

    Parameters
    ----------
    config : RunConfig
        Resolved (``resolve_config``); ``mode`` is ``paper`` or ``live``. The deployment
        keeps the configuration it was created with (a changed one is refused by name).
    strategy : Strategy
    instruments : dict of str to Instrument
        The venue's specs (increments, minimum notional) per symbol.
    ledger : Ledger
    name : str, optional
        Deployment name (default :func:`default_deployment_name`).
    clock : Clock
        A ``WallClock`` (a test passes one it controls).
    fee_bps, maker_fee_bps : float, optional
        The venue's taker and maker fees in bps (default: the config's).
    created_by : str
    venue : str, optional
        The venue's name, recorded in the run's notes.
    broker : Broker, optional
        Live: the venue adapter (paper simulates fills with ``SimBroker``).

    Returns
    -------
    Deployment

    Raises
    ------
    tradewarden.ledger.LedgerError
        A bad name, or a deployment of that name with another mode or configuration.
    """
    name = name or default_deployment_name(config)
    dep = ledger.open_deployment(name, mode=config.mode, config=config.canonical_json(),
                                 config_hash=config.config_hash(),
                                 strategy_source=config.strategy_source)
    dep_id = dep["deployment_id"]
    resumed = ledger.latest_engine_state(dep_id) is not None
    run_id = uuid.uuid4().hex[:12]
    import json
    ledger.create_run({
        "run_id": run_id, "mode": config.mode, "capital_mode": config.capital_mode,
        "market_time_basis": MARKET_TIME_BASIS, "data_integrity": "ok",
        "created_by": created_by, "git_sha": git_sha(), "config_hash": config.config_hash(),
        "config": config.canonical_json(), "strategy": strategy.name,
        "input_names": json.dumps(list(strategy.input_names)),
        "symbols": json.dumps(list(config.symbols)), "timeframe": config.timeframe,
        "initial_capital": config.capital,
        "notes": f"deployment {name} ({dep_id})" + (f" on {venue}" if venue else "")
                 + ("; resumed" if resumed else ""),
    })
    kernel = assemble(config.mode, run_id=run_id, strategy=strategy, instruments=instruments,
                      ledger=ledger, capital=config.capital, capital_mode=config.capital_mode,
                      risk=config.risk, governor=config.governor,
                      fee_bps=config.fee_bps if fee_bps is None else fee_bps,
                      maker_fee_bps=config.maker_fee_bps if maker_fee_bps is None else maker_fee_bps,
                      slippage_bps=config.slippage_bps, clock=clock, deployment_id=dep_id,
                      broker=broker)
    differences = ledger.reconciliations(deployment_id=dep_id, status="open")
    ledger.set_deployment_status(dep_id, "running", run_id=run_id)
    return Deployment(name, dep_id, run_id, kernel, ledger, resumed, differences)


class LoopStats(NamedTuple):
    """What :func:`run_deployment` did: bars, commands and polls, and how it ended."""

    bars: int
    commands: int
    polls: int
    stalls: int
    status: str


class DeploymentLoop:
    """One deployment's loop, a step at a time (the daemon interleaves several).

    :func:`run_deployment` drives one of these to the end; ``warden daemon`` steps
    several in one thread, each when its wake-up time comes. A step never sleeps: it
    returns the clock time it wants to run again.

    Parameters
    ----------
    dep : Deployment
    feed : LiveFeed
    inbox_seconds, reconcile_seconds, on_bar, on_command, on_tick
        As :func:`run_deployment`.
    stop_requested : callable () -> bool, optional
        Checked after each bar: a stop request ends the step after the bar in progress.

    Attributes
    ----------
    bars, commands, polls, stalls : int
        Counts of this run.
    """

    def __init__(self, dep: Deployment, feed: LiveFeed, *,
                 inbox_seconds: float = DEFAULT_INBOX_SECONDS,
                 reconcile_seconds: float | None = None,
                 on_bar: Callable[[Bar, Any], None] | None = None,
                 on_command: Callable[[tuple[int, str, str]], None] | None = None,
                 on_tick: Callable[[str], None] | None = None,
                 stop_requested: Callable[[], bool] | None = None) -> None:
        self.dep, self.feed = dep, feed
        self.inbox_seconds = inbox_seconds
        self.reconcile_seconds = reconcile_seconds
        self.on_bar, self.on_command, self.on_tick = on_bar, on_command, on_tick
        self.stop_requested = stop_requested
        self.bars = self.commands = self.polls = self.stalls = 0
        engine = dep.kernel.engine
        self.broker = engine.broker
        self.venue_blocks = getattr(self.broker, "entry_blocks", None)
        self.reread = getattr(self.broker, "instruments_from_products", None)  # product flags
        self.maintain = getattr(self.broker, "maintain", None)  # a venue session to keep up
        self.next_check: float | None = None

    def begin(self) -> None:
        """Warm the strategy up on the venue's history after the last bar decided, carry
        out the commands queued while the deployment was down, and set the venue's
        blocks."""
        engine, clock = self.dep.kernel.engine, self.dep.clock
        warm = self.feed.warmup(engine.strategy.warmup + 1, after=engine.last_bar_ts)
        engine.warm_up(warm)
        self.next_check = clock.now() + self.reconcile_seconds if self.reconcile_seconds else None
        if self.venue_blocks is not None:
            engine.set_venue_blocks(self.venue_blocks(), clock.now())
        self.inbox()

    def inbox(self) -> None:
        """Carry out the commands people queued (the ``commands`` table)."""
        dep, engine, ledger = self.dep, self.dep.kernel.engine, self.dep.ledger
        pending = ledger.pending_commands(dep.deployment_id)
        if not pending:
            return
        approvals = {a["id"]: a for a in ledger.approvals(deployment_id=dep.deployment_id)}
        diffs = ledger.reconciliations(deployment_id=dep.deployment_id, status="open")
        for result in engine.handle_commands(pending, dep.clock.now(), approvals=approvals,
                                             differences=diffs):
            self.commands += 1
            if self.on_command is not None:
                self.on_command(result)

    def recheck(self) -> None:
        """Live: reconcile with the venue again when ``reconcile_seconds`` have passed.

        An adapter with a session to keep up (``maintain(now) -> bool``: Interactive
        Brokers' socket) is asked every time: while it is down its ``entry_blocks()``
        block entries (each change an event); the call that reconnects returns ``True``
        and the deployment reconciles with the venue at once, before anything else
        trades, then takes the adapter's blocks again (lifted when all is well). While
        the session is down (``connected`` false) nothing is reconciled: the venue
        cannot be asked, and the reconnect reconciles.
        """
        dep, engine, clock = self.dep, self.dep.kernel.engine, self.dep.clock
        if self.maintain is not None:
            if self.maintain(clock.now()):
                self.next_check = clock.now()           # reconnected: reconcile now
            elif self.venue_blocks is not None:
                self.refresh_blocks()
            if getattr(self.broker, "connected", True) is False:
                return
        if self.next_check is not None and clock.now() >= self.next_check:
            engine.reconcile(clock.now(), name=dep.name, previous=dep.ledger.reconciliations(
                deployment_id=dep.deployment_id, status="open"))
            if self.venue_blocks is not None:
                if self.reread is not None:
                    self.reread(list(engine.by_name))
                engine.set_venue_blocks(self.venue_blocks(), clock.now())
            self.alerts()
            engine.flush()
            self.next_check = clock.now() + self.reconcile_seconds if self.reconcile_seconds else None

    def refresh_blocks(self) -> None:
        """Take the adapter's ``entry_blocks()`` when they changed (a venue session lost
        or back), recording and committing the change."""
        engine, clock = self.dep.kernel.engine, self.dep.clock
        if self.venue_blocks is None:
            return
        blocks = self.venue_blocks()
        if blocks != engine.venue_blocks:
            engine.set_venue_blocks(blocks, clock.now())
            self.alerts()
            engine.flush()

    def alerts(self) -> None:
        """Record what the venue adapter raised an alarm about (a bracket not in place,
        ...) as ``alert`` events."""
        pending = getattr(self.broker, "alerts", None)
        engine, clock = self.dep.kernel.engine, self.dep.clock
        while pending:
            engine.event(clock.now(), "alert", None, str(pending.pop(0)))

    def degraded(self) -> bool:
        """Whether the ledger is a spooling one whose primary database is unreachable
        (:class:`tradewarden.ledger.spool.SpoolingLedger`): then entries are blocked,
        the ledger's reads are skipped (commands wait in the database), every batch goes
        to the spool, and each step tries to recover; on recovery the spool is replayed,
        the block lifted and the venue reconciled before anything else."""
        dep, engine, ledger, clock = (self.dep, self.dep.kernel.engine, self.dep.ledger,
                                      self.dep.clock)
        if not getattr(ledger, "degraded", False):
            return False
        if ledger.try_recover():
            engine.unblock_entries(LEDGER_UNREACHABLE, "the ledger database answers again; "
                                   "the spool was replayed", clock.now())
            engine.reconcile(clock.now(), name=dep.name, previous=ledger.reconciliations(
                deployment_id=dep.deployment_id, status="open"))
            engine.flush()
            return False
        if not engine.blocks.get(LEDGER_UNREACHABLE):
            engine.block_entries(LEDGER_UNREACHABLE, "the ledger database is unreachable ("
                                 f"{getattr(ledger, 'last_error', '')}): decisions are "
                                 "spooled, nothing is traded", clock.now())
            engine.flush()
        return True

    def _guarded(self, *work: Callable[[], Any]) -> bool:
        """Run the ledger reads and inbox work between bars; ``False`` when the ledger's
        database went away meanwhile (a spooling ledger turned degraded: the outage is
        entered, entries blocked), instead of failing the deployment. Any other
        failure raises."""
        from tradewarden.ledger import LedgerError
        try:
            for fn in work:
                fn()
        except LedgerError:
            if not getattr(self.dep.ledger, "degraded", False):
                raise
            self.degraded()
            return False
        return True

    def step(self) -> float:
        """Do what is due now and return when to step again (clock time, UTC epoch s).

        Before the next candle is due: the inbox and (live) the periodic
        reconciliation, then wake at the due time or after ``inbox_seconds``. At or
        after it: poll the feed and decide every new bar in time order (approvals of
        the bar's symbol expired, the inbox read, ``engine.on_bar``, a flush, the run's
        heartbeat), stopping after a bar when a stop is requested. While the ledger's
        database is unreachable (:meth:`degraded`) only the bars are decided, entries
        blocked, into the spool.
        """
        dep, engine, ledger, clock, feed = (self.dep, self.dep.kernel.engine, self.dep.ledger,
                                            self.dep.clock, self.feed)
        down = self.degraded()
        due = feed.next_due()
        now = clock.now()
        if now < due:
            if self.on_tick is not None:
                self.on_tick(f"waiting for the candles due at {iso(int(due))}"
                             + (" (ledger database unreachable)" if down else ""))
            if not down:
                down = not self._guarded(self.inbox, self.recheck)
            return int(min(due, now + self.inbox_seconds)) or now + 1
        got = feed.poll()
        self.polls += 1
        if got.stalled:
            self.stalls += 1
            engine.block_entries(FEED_STALLED, got.stalled, clock.now())
            engine.flush()
        elif engine.blocks.get(FEED_STALLED):
            engine.unblock_entries(FEED_STALLED, "the feed delivers again", clock.now())
        for line in getattr(got, "gaps", ()):
            engine.event(clock.now(), "data", None, f"venue gap: {line}")
        new = _in_time_order(got.bars, list(engine.by_name))
        for bar in new:
            down = self.degraded()
            if not down:
                def expire(bar: Bar = bar) -> None:
                    pending = ledger.approvals(deployment_id=dep.deployment_id, status="pending")
                    if engine.expire_approvals(pending, bar.ts, bar.symbol):
                        engine.flush()
                down = not self._guarded(expire, self.inbox)
            if self.on_tick is not None:
                self.on_tick(f"deciding {bar.symbol} {iso(bar.ts)}")
            if self.maintain is not None:
                self.refresh_blocks()           # a session lost since the last look
            decision = engine.on_bar(bar)
            self.alerts()
            engine.flush()
            self.bars += 1
            if not down:
                ledger.heartbeat(dep.run_id, bars_processed=engine.counts.bars,
                                 decisions=engine.counts.decisions,
                                 trades_closed=engine.counts.trades_closed)
            if self.on_bar is not None:
                self.on_bar(bar, decision)
            if self.stop_requested is not None and self.stop_requested():
                return clock.now()      # this bar is finished and committed; stop now
        if not new and feed.next_due() <= clock.now():
            return clock.now() + max(1, int(self.inbox_seconds))      # stalled: retry later
        return clock.now()

    def finish(self, status: str, *, error: str | None = None, signalled: bool = False) -> LoopStats:
        """Flush and record the end: the run ``completed`` (``until``), ``interrupted``
        (a stop request) or ``failed``; the deployment ``stopped`` or ``failed``.

        Parameters
        ----------
        status : {"stopped", "failed"}
        error : str, optional
            Why it failed (recorded on the run).
        signalled : bool
            Ended by a stop request rather than by ``until``.
        """
        if status == "failed":
            _finish(self.dep, "failed", (error or "failed")[:2000], "failed")
        else:
            self.dep.kernel.engine.flush()
            _finish(self.dep, status, None, "interrupted" if signalled else "completed")
        return LoopStats(self.bars, self.commands, self.polls, self.stalls, status)


def run_deployment(dep: Deployment, feed: LiveFeed, *, stop: StopSignals | None = None,
                   inbox_seconds: float = DEFAULT_INBOX_SECONDS,
                   until: int | None = None, reconcile_seconds: float | None = None,
                   on_bar: Callable[[Bar, Any], None] | None = None,
                   on_command: Callable[[tuple[int, str, str]], None] | None = None,
                   on_tick: Callable[[str], None] | None = None) -> LoopStats:
    """Run a deployment on a live feed until a stop request (or ``until``).

    Parameters
    ----------
    dep : Deployment
        From :func:`open_paper`.
    feed : LiveFeed
    stop : StopSignals, optional
        SIGINT / SIGTERM: the loop finishes the bar in progress, flushes and returns.
    inbox_seconds : float
        Clock seconds between looks at the command inbox while waiting.
    until : int, optional
        Stop once the clock passes this time (UTC epoch seconds; tests and
        ``warden paper --until``).
    reconcile_seconds : float, optional
        Live: reconcile with the venue again every this many clock seconds, between
        bars (open orders, fills, positions, balance); a difference blocks entries.
    on_bar, on_command : callable, optional
        Called with each bar and its decision, and with each command's result.
    on_tick : callable, optional
        Called with what the loop is doing (``waiting for the candle closing at ...``,
        ``deciding BTC-USD 2026-05-01T10:00:00Z``) at every turn.

    Returns
    -------
    LoopStats

    Notes
    -----
    The run is finished in the ledger as ``completed`` (``until``), ``interrupted`` (a
    stop request) or ``failed`` (an exception, which propagates); the deployment as
    ``stopped`` or ``failed``. Venue gaps the feed reports are recorded as events.
    The loop is :class:`DeploymentLoop` stepped until the stop.
    """
    clock = dep.clock
    loop = DeploymentLoop(dep, feed, inbox_seconds=inbox_seconds,
                          reconcile_seconds=reconcile_seconds, on_bar=on_bar,
                          on_command=on_command, on_tick=on_tick,
                          stop_requested=lambda: stop is not None and stop.signum is not None)

    def stopping() -> bool:
        if stop is not None:
            stop.check()            # a stop request: RunInterrupted, handled below
        return until is not None and clock.now() >= until

    try:
        loop.begin()
        while not stopping():
            wake = loop.step()
            if wake > clock.now():
                clock.wait_until(int(wake))
    except RunInterrupted:
        pass
    except BaseException as exc:
        loop.finish("failed", error=f"{type(exc).__name__}: {exc}")
        raise
    return loop.finish("stopped", signalled=stop is not None and stop.signum is not None)


def _finish(dep: Deployment, status: str, error: str | None, run_status: str) -> None:
    """Mark the run (``completed`` at ``until``, ``interrupted`` by a signal, ``failed``)
    and the deployment (``stopped`` or ``failed``) finished; best effort on failure."""
    from tradewarden.ledger.store import LedgerError, utcnow_iso
    engine = dep.kernel.engine
    try:
        dep.ledger.finish_run(dep.run_id, status=run_status,
                              completed_at=utcnow_iso(), error=error,
                              bars_processed=engine.counts.bars, decisions=engine.counts.decisions,
                              trades_opened=engine.counts.trades_opened,
                              trades_closed=engine.counts.trades_closed)
        dep.ledger.set_deployment_status(dep.deployment_id, status)
    except LedgerError:
        if error is None:
            raise


def _in_time_order(chunk: dict[str, BarSeries], order: list[str]) -> list[Bar]:
    """The bars of ``chunk`` by open time, ties in the deployment's symbol order."""
    rank = {n: i for i, n in enumerate(order)}
    out = [(int(s.ts[i]), rank.get(name, len(rank)), s.bar(i))
           for name, s in chunk.items() for i in range(len(s))]
    out.sort(key=lambda t: (t[0], t[1]))
    return [b for _, _, b in out]


def describe(dep: Deployment) -> str:
    """One line for the terminal: deployment, run, state resumed or new, differences."""
    engine = dep.kernel.engine
    held = [f"{s.name} {s.holding.quantity}" for s in engine.syms if not s.holding.is_flat]
    return (f"deployment {dep.name} ({dep.deployment_id}), run {dep.run_id}: "
            + ("resumed" if dep.resumed else "new")
            + (f", holding {', '.join(held)}" if held else ", flat")
            + (f", {len(dep.differences)} reconciliation difference(s): entries blocked"
               if dep.differences else "")
            + (f", last bar {iso(engine.last_bar_ts)}" if engine.last_bar_ts else ""))


__all__ = ["DEFAULT_INBOX_SECONDS", "LEDGER_UNREACHABLE", "Deployment", "DeploymentLoop", "LiveFeed", "LoopStats",
           "default_deployment_name", "describe", "open_paper", "run_deployment"]

