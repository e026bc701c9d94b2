"""What the daemon adds around its deployments: heartbeat, governor, events, alerts.

:class:`Supervisor` is the set of hooks :class:`~tradewarden.ops.service.DaemonService`
calls. It owns the daemon's own ledger connection and

* writes the heartbeat row (status running, paused, error; current activity; queue
  depth: events due or in hand plus commands waiting; the lowest autonomy level of
  the deployments; the open anomalies) and tells systemd's watchdog;
* records a deployment's failure as a ``broker_disconnected`` event and its return
  (opened again, reconciled) as ``broker_reconnected``.
"""

from __future__ import annotations

from typing import Any

from tradewarden.ops.daemon import HEARTBEAT_SECONDS


class Supervisor:
    """The daemon's hooks around its deployments (see the module docstring).

    Parameters
    ----------
    ledger : tradewarden.ledger.Ledger
        The daemon's own connection.
    loaded : tradewarden.settings.LoadedSettings
        The config file's settings (``[daemon]``, ``[autonomy]``, ``[alerts]``).
    daemon_id : str
    clock : tradewarden.engine.clock.Clock
    log : structlog logger
    """

    def __init__(self, ledger: Any, loaded: Any, *, daemon_id: str, clock: Any, log: Any) -> None:
        self.ledger = ledger
        self.loaded = loaded
        self.daemon_id = daemon_id
        self.clock = clock
        self.log = log
        self.service: Any = None

    # ------------------------------------------------------------- deployments

    def wrap_ledger(self, ledger: Any) -> Any:
        """Return the ledger a deployment writes through."""
        return ledger

    def on_open(self, slot: Any) -> None:
        """A deployment opened: after a failure, record ``broker_reconnected``."""
        if slot.failures:
            dep = slot.opened.dep
            self.ledger.enqueue_event(
                "broker_reconnected", {"deployment": dep.name, "deployment_id": dep.deployment_id,
                                       "run_id": dep.run_id, "after_failures": slot.failures},
                due_at=self.clock.now(), dedupe_key=f"reconnected:{dep.run_id}")

    def on_bar(self, slot: Any, bar: Any, decision: Any) -> None:
        """A bar was decided."""

    def on_failure(self, slot: Any, exc: BaseException, where: str) -> None:
        """A deployment failed: record ``broker_disconnected`` (once per failure run)."""
        now = self.clock.now()
        if slot.failures == 1:
            self.ledger.enqueue_event(
                "broker_disconnected", {"deployment": slot.label, "where": where,
                                        "error": slot.error,
                                        "retry_seconds": self.loaded.daemon.reconnect_seconds},
                due_at=now, dedupe_key=f"disconnected:{slot.label}:{now}")

    def on_turn(self, now: int) -> float | None:
        """Between steps: nothing to do yet."""
        return None

    # ------------------------------------------------------------- heartbeat

    def heartbeat(self, status: str, activity: str) -> None:
        """Write a heartbeat row: status (``paused`` when every running deployment is,
        ``error`` while one is down), activity, queue depth, autonomy, anomalies."""
        service = self.service
        running = service.running() if service is not None else []
        down = [s for s in (service.slots if service is not None else []) if s.loop is None and s.error]
        if status == "running":
            if down:
                status = "error"
            elif running and all(s.opened.dep.kernel.engine.paused for s in running):
                status = "paused"
            if down:
                activity = (f"{activity}; down: "
                            + ", ".join(f"{s.label} ({s.error})" for s in down))[:2000]
        now = self.clock.now()
        depth = self.ledger.event_queue_depth(now)
        for s in running:
            depth += len(self.ledger.pending_commands(s.opened.dep.deployment_id))
        self.ledger.daemon_heartbeat(self.daemon_id, status=status, activity=activity,
                                     queue_depth=depth,
                                     deployments=service.names() if service is not None else [])
        self.log.debug("heartbeat", status=status, activity=activity, queue_depth=depth)

    def close(self) -> None:
        """Stop what the supervisor started."""


__all__ = ["HEARTBEAT_SECONDS", "Supervisor"]
