"""The daemon's service loop: several deployments, one thread, events between bars.

``warden daemon start`` builds a :class:`DaemonService` from the config (one
deployment, or several under ``[[deployments]]``) and calls :meth:`DaemonService.run`.
Each deployment is a :class:`~tradewarden.ops.paper.DeploymentLoop`; the service steps
each one when its wake-up time comes, so no deployment has to wait for another's
candle, and between steps it

1. restarts a deployment that failed (its venue down, an exception in a bar) every
   ``[daemon] reconnect_seconds``: opening it again restores its committed state and
   reconciles with the venue before it trades again ("resume after reconciliation");
   the failure is logged with its traceback, raised as an alert and as a
   ``broker_disconnected`` event, the return as ``broker_reconnected``; the other
   deployments carry on meanwhile;
2. runs the event producers (calendar schedule, positions near a stop or far from
   their entry, stale market data, new files in a watched folder) and processes the
   durable events due (:mod:`tradewarden.ops.events`);
3. writes a heartbeat row at least every :data:`~tradewarden.ops.daemon.HEARTBEAT_SECONDS`
   of clock time (and tells systemd's watchdog), with the autonomy level and the
   active anomalies;

then waits on the clock until the earliest wake-up. It runs in one thread on the
mode's clock, so a test drives a simulated day in seconds.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tradewarden.ops.daemon import HEARTBEAT_SECONDS


@dataclass
class Slot:
    """One deployment the daemon runs.

    Attributes
    ----------
    name : str or None
        From ``[[deployments]]`` or ``--deployment`` (``None``: the default name).
    loaded : tradewarden.settings.LoadedSettings
    opened : tradewarden.cli_paper.Opened or None
        While it runs.
    loop : tradewarden.ops.paper.DeploymentLoop or None
    wake : float
        Clock time of its next step (UTC epoch seconds).
    retry_at : float
        While down: when to try opening it again.
    failures : int
        Consecutive failures to open or step.
    error : str or None
        The last failure.
    """

    name: str | None
    loaded: Any
    opened: Any = None
    loop: Any = None
    wake: float = 0.0
    retry_at: float = 0.0
    failures: int = 0
    error: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The deployment's name once open, else its configured name."""
        if self.opened is not None:
            return self.opened.dep.name
        return self.name or "(default)"


class DaemonService:
    """Run the configured deployments until a stop request.

    Parameters
    ----------
    specs : list of (str or None, LoadedSettings)
        From :func:`tradewarden.settings.deployment_settings`.
    daemon_id : str
        This daemon's id (heartbeat rows).
    clock : tradewarden.engine.clock.Clock
        Shared by every deployment.
    stop : callable () -> bool
        True once SIGTERM / SIGINT (or ``warden daemon stop``) asked to stop.
    log : structlog logger
    ledger : tradewarden.ledger.Ledger
        The daemon's own connection (heartbeats, events, oversight records).
    connect_for : callable, optional
        ``connect_for(loaded) -> (connect, before_start)`` for a live deployment
        (:func:`tradewarden.cli_live.venue_hooks`); ``None`` for paper only.
    on_open : callable, optional
        ``on_open(slot)`` after a deployment opened (the daemon installs its governor).
    on_bar : callable, optional
        ``on_bar(slot, bar, decision)`` after each decided bar.
    on_failure : callable, optional
        ``on_failure(slot, exc, where)`` after a deployment failed (``where``: "open" or
        "step"); the service has already logged it.
    on_turn : callable, optional
        ``on_turn(now) -> float or None``: the events' part of each turn (producers,
        then the durable queue); returns when it wants the next turn, if sooner.
    heartbeat : callable, optional
        ``heartbeat(status, activity)`` at least every ``HEARTBEAT_SECONDS`` of clock time.
    wrap_ledger : callable, optional
        Passed to ``open_mode`` (the database-loss spool).
    open_mode : callable
        ``open_mode(loaded, *, deployment, clock, connect, before_start, wrap_ledger,
        quiet, bulk) -> Opened`` (``bulk=False``: every writer in the process on one copy
        of SQLite) (:func:`tradewarden.cli_paper.open_mode`: the interface layer
        knows the venue clients and their test hooks).
    """

    def __init__(self, specs: list[tuple[str | None, Any]], *, daemon_id: str, clock: Any,
                 stop: Callable[[], bool], log: Any, ledger: Any,
                 connect_for: Callable[[Any], tuple[Any, Any]] | None = None,
                 on_open: Callable[[Slot], None] | None = None,
                 on_bar: Callable[[Slot, Any, Any], None] | None = None,
                 on_failure: Callable[[Slot, BaseException, str], None] | None = None,
                 on_turn: Callable[[int], float | None] | None = None,
                 heartbeat: Callable[[str, str], None] | None = None,
                 wrap_ledger: Callable[[Any], Any] | None = None,
                 open_mode: Callable[..., Any]) -> None:
        self.open_mode = open_mode
        self.slots = [Slot(name, loaded) for name, loaded in specs]
        self.daemon_id = daemon_id
        self.clock = clock
        self.stop = stop
        self.log = log
        self.ledger = ledger
        self.connect_for = connect_for
        self.on_open, self.on_bar, self.on_failure = on_open, on_bar, on_failure
        self.on_turn = on_turn
        self.heartbeat = heartbeat
        self.wrap_ledger = wrap_ledger
        first = specs[0][1]
        self.settings = first.daemon
        self.activity = "starting"
        self._last_beat: float | None = None

    # ----------------------------------------------------------------- deployments

    def _open(self, slot: Slot) -> None:
        """Open (or reopen) a deployment: restore, reconcile, warm up, inbox."""
        from tradewarden.ops.paper import DeploymentLoop

        connect = before = None
        if slot.loaded.run_config().mode == "live":
            if self.connect_for is None:
                raise RuntimeError("a live deployment needs --live")
            connect, before = self.connect_for(slot.loaded)
        self.activity = f"opening deployment {slot.label}"
        opened = self.open_mode(slot.loaded, deployment=slot.name, clock=self.clock,
                           connect=connect, before_start=before, wrap_ledger=self.wrap_ledger,
                           quiet=True, bulk=False)
        slot.opened = opened
        slot.loop = DeploymentLoop(opened.dep, opened.feed,
                                   inbox_seconds=self.settings.inbox_seconds,
                                   reconcile_seconds=opened.reconcile_seconds,
                                   on_bar=(lambda bar, d, s=slot: self._bar(s, bar, d)),
                                   on_tick=self._tick, stop_requested=self.stop)
        if self.on_open is not None:
            self.on_open(slot)
        slot.loop.begin()           # a failure here finishes the run as failed (_fail)
        slot.wake = self.clock.now()
        recovered = slot.failures > 0
        slot.failures, slot.error = 0, None
        self.log.info("deployment_opened", deployment=opened.dep.name, run_id=opened.dep.run_id,
                      mode=opened.dep.kernel.handlers.mode, recovered=recovered)

    def _bar(self, slot: Slot, bar: Any, decision: Any) -> None:
        self.log.info("bar_decided", deployment=slot.label, symbol=bar.symbol, ts=bar.ts,
                      close=bar.close, action=decision.action, reason=decision.reason)
        if self.on_bar is not None:
            self.on_bar(slot, bar, decision)

    def _tick(self, activity: str) -> None:
        self.activity = activity

    def _fail(self, slot: Slot, exc: BaseException, where: str) -> None:
        """Record a deployment's failure, close what it held, and schedule the retry."""
        now = self.clock.now()
        slot.failures += 1
        slot.error = f"{type(exc).__name__}: {exc}"
        self.log.error("deployment_failed", deployment=slot.label, where=where,
                       error=slot.error, failures=slot.failures,
                       traceback="".join(traceback.format_exception(exc)))
        if slot.loop is not None:
            try:
                slot.loop.finish("failed", error=slot.error)
            except Exception as again:     # the ledger may be what failed
                self.log.warning("finish_failed", deployment=slot.label, error=str(again))
        self._close(slot)
        slot.retry_at = now + self.settings.reconnect_seconds
        if self.on_failure is not None:
            try:
                self.on_failure(slot, exc, where)
            except Exception as hook:
                self.log.error("failure_hook_failed", deployment=slot.label, error=str(hook),
                               traceback=traceback.format_exc())

    def _close(self, slot: Slot) -> None:
        if slot.opened is not None:
            try:
                slot.opened.ledger.close()
            except Exception as exc:
                self.log.warning("ledger_close_failed", deployment=slot.label, error=str(exc))
        slot.opened, slot.loop = None, None

    # ----------------------------------------------------------------- the loop

    def run(self) -> str:
        """Run until a stop request; return ``"shutdown"``.

        Every deployment is stepped when due; one that raises is finished as failed,
        and opened again ``reconnect_seconds`` later; the exception never ends the
        daemon (a ``KeyboardInterrupt`` other than the stop request does).
        """
        clock = self.clock
        self._beat("running", "started")
        for slot in self.slots:
            if self.stop():
                break
            self._try_open(slot)
        while not self.stop():
            now = clock.now()
            wakes = []
            for slot in self.slots:
                if self.stop():
                    break
                if slot.loop is None:
                    if now >= slot.retry_at:
                        self._try_open(slot)
                    wakes.append(slot.retry_at if slot.loop is None else clock.now())
                    continue
                if clock.now() >= slot.wake:
                    try:
                        slot.wake = slot.loop.step()
                    except (KeyboardInterrupt, SystemExit):
                        raise
                    except BaseException as exc:
                        self._fail(slot, exc, "step")
                        wakes.append(slot.retry_at)
                        continue
                wakes.append(slot.wake)
            if self.stop():
                break
            turn = None
            if self.on_turn is not None:
                turn = self.on_turn(clock.now())
            now = clock.now()
            if self._last_beat is None or now - self._last_beat >= HEARTBEAT_SECONDS:
                self._beat("running", self.activity)
            nxt = min([*wakes, now + self.settings.inbox_seconds,
                       (self._last_beat or now) + HEARTBEAT_SECONDS,
                       *([turn] if turn is not None else [])])
            if nxt > now:
                clock.wait_until(int(nxt) if int(nxt) > now else now + 1)
        self.shutdown()
        return "shutdown"

    def _try_open(self, slot: Slot) -> None:
        """Open a deployment; a failure is recorded and retried later, never raised
        (a ``KeyboardInterrupt`` or ``SystemExit`` is)."""
        try:
            self._open(slot)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            self._fail(slot, exc, "open")

    def _beat(self, status: str, activity: str) -> None:
        self._last_beat = self.clock.now()
        if self.heartbeat is not None:
            self.heartbeat(status, activity)

    def shutdown(self) -> None:
        """Finish every running deployment (its bar done, the run ``interrupted``)."""
        for slot in self.slots:
            if slot.loop is not None:
                try:
                    slot.loop.finish("stopped", signalled=True)
                except Exception as exc:
                    self.log.error("finish_failed", deployment=slot.label, error=str(exc),
                                   traceback=traceback.format_exc())
            self._close(slot)

    # ----------------------------------------------------------------- views

    def running(self) -> list[Slot]:
        """The deployments open now."""
        return [s for s in self.slots if s.loop is not None]

    def names(self) -> list[str]:
        """Every deployment's name (configured names for those never opened)."""
        return [s.label for s in self.slots]


__all__ = ["DaemonService", "Slot"]
