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
from tradewarden.ops.sdnotify import notify


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
        self._ready = False

    # ------------------------------------------------------------- deployments

    def wrap_ledger(self, ledger: Any) -> Any:
        """Return the ledger a deployment writes through."""
        return ledger

    def on_open(self, slot: Any) -> None:
        """A deployment opened: put it under the autonomy governor (unless its config
        says ``governor = "monitor"``: record only), and after a failure record
        ``broker_reconnected``."""
        from tradewarden.agent.autonomy import AutonomyGovernor
        dep = slot.opened.dep
        engine = dep.kernel.engine
        if slot.loaded.run_config().governor != "monitor":
            gov = AutonomyGovernor(dep.ledger, dep.deployment_id, dep.run_id, dep.clock,
                                   settings=self.loaded.settings.autonomy,
                                   context=lambda d=dep: deployment_context(d),
                                   market=lambda s=slot: self.market(s))
            engine.governor = gov
            slot.extras["governor"] = gov
        if slot.failures:
            dep = slot.opened.dep
            self.ledger.enqueue_event(
                "broker_reconnected", {"deployment": dep.name, "deployment_id": dep.deployment_id,
                                       "run_id": dep.run_id, "after_failures": slot.failures},
                due_at=self.clock.now(), dedupe_key=f"reconnected:{dep.run_id}")

    def on_bar(self, slot: Any, bar: Any, decision: Any) -> None:
        """A bar was decided."""

    def market(self, slot: Any) -> dict[str, Any]:
        """What the governor knows of the market: ``last_data_ts``, the close of the
        newest bar the deployment has (UTC epoch seconds; the bar being decided)."""
        if slot.opened is None:
            return {}
        engine = slot.opened.dep.kernel.engine
        last = engine.last_bar_ts
        if last is None:
            return {}
        return {"last_data_ts": int(last) + max(s.bar_seconds for s in engine.syms)}

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
        """Between steps: tell systemd's watchdog the loop turns."""
        notify("WATCHDOG=1")
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
        from tradewarden.agent import records
        now = self.clock.now()
        depth = self.ledger.event_queue_depth(now)
        for s in running:
            depth += len(self.ledger.pending_commands(s.opened.dep.deployment_id))
        levels = [s.extras["governor"].level() for s in running if "governor" in s.extras]
        ids = {s.opened.dep.deployment_id: s.label for s in running}
        flags = [f"{a['kind']}" + (f" {a['symbol']}" if a.get("symbol") else "")
                 + (f" ({ids.get(a['deployment_id'], a['deployment_id'])})"
                    if a.get("deployment_id") else "")
                 for a in records.anomalies(self.ledger)
                 if a.get("deployment_id") is None or a["deployment_id"] in ids]
        self.ledger.daemon_heartbeat(self.daemon_id, status=status, activity=activity,
                                     queue_depth=depth,
                                     autonomy_level=min(levels) if levels else None,
                                     anomalies=flags,
                                     deployments=service.names() if service is not None else [])
        self.log.debug("heartbeat", status=status, activity=activity, queue_depth=depth,
                       autonomy_level=min(levels) if levels else None, anomalies=flags)
        if not self._ready:              # systemd (Type=notify): up and beating
            self._ready = notify("READY=1") or True
        notify("WATCHDOG=1")
        notify(f"STATUS={status}: {activity}"[:200])

    def close(self) -> None:
        """Stop what the supervisor started; tell systemd the daemon is stopping."""
        notify("STOPPING=1")


def deployment_context(dep: Any) -> dict[str, Any]:
    """What a reasoner sees of a running deployment: positions and accounts.

    Parameters
    ----------
    dep : tradewarden.ops.paper.Deployment

    Returns
    -------
    dict
        ``positions``: one dict per open position (``symbol``, ``quantity`` base units,
        ``entry_price``, ``stop_loss``, ``take_profit``, ``last_close`` quote currency
        per base unit, as text or float); ``account``: ``cash`` and ``equity`` (quote
        currency) of the first account, ``accounts``: all of them; ``strategy_state``:
        ``paused``, ``blocks``.
    """
    engine = dep.kernel.engine
    positions = []
    for s in engine.syms:
        pos = s.position
        if pos is None:
            continue
        positions.append({"symbol": s.name, "quantity": str(pos.quantity),
                          "entry_price": str(pos.entry_price),
                          "stop_loss": None if pos.stop_loss is None else str(pos.stop_loss),
                          "take_profit": None if pos.take_profit is None else str(pos.take_profit),
                          "last_close": s.last_close})
    accounts = [{"name": a.name, "cash": str(a.cash), "equity": engine.equity(i)}
                for i, a in enumerate(engine.accounts)]
    return {"positions": positions, "account": accounts[0] if accounts else {},
            "accounts": accounts,
            "strategy_state": {"paused": engine.paused, "blocks": dict(engine.blocks)}}


__all__ = ["HEARTBEAT_SECONDS", "Supervisor", "deployment_context"]
