"""The ``/api`` routes (see :func:`tradewarden.web.app.create_app`).

Handlers are plain functions (FastAPI runs them on its thread pool); each reads the
ledger through the app's shared :class:`~tradewarden.ops.oversight.Oversight` and
answers with the models of :mod:`tradewarden.web.models`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, FastAPI

from tradewarden.ops.daemon import HEARTBEAT_SECONDS
from tradewarden.web import models as m

__all__ = ["install"]


def install(app: FastAPI, state: Any, *, auth: Callable[..., None]) -> None:
    """Add every ``/api`` route to ``app``, each behind the ``auth`` dependency.

    Parameters
    ----------
    app : fastapi.FastAPI
    state : tradewarden.web.app.ApiState
    auth : callable
        The dependency raising 401 without the right bearer token.
    """
    router = APIRouter(prefix="/api", dependencies=[Depends(auth)])

    @router.get("/status", response_model=m.StatusOut, summary="Daemon health and what waits")
    def status() -> m.StatusOut:
        """Whether a daemon runs on the ledger, its heartbeat and its age, what it is doing,
        the autonomy levels, and per deployment: paused, kill switch, breakers, positions,
        pending approvals and commands, open anomalies, its last decision."""
        return _status(state)

    app.include_router(router)


def _status(state: Any) -> m.StatusOut:
    o = state.oversight()
    st = o.status()
    age = st["heartbeat_age_seconds"]
    if not st["running"]:
        health = "down"
    elif age is None or age > STALE_AFTER:
        health = "stale"
    else:
        health = "ok"
    deps = []
    for name, d in st["by_deployment"].items():
        last = d["last_decision"]
        deps.append(m.DeploymentStatus(
            name=name, deployment_id=d["deployment_id"], mode=d["mode"], status=d["status"],
            paused=d["paused"], kill_switch=d["kill_switch"], halts=d["halts"],
            autonomy_level=d["autonomy_level"], autonomy=d["autonomy"], last_bar=d["last_bar"],
            quote=d["quote"], positions=len(d["positions"]),
            pending_approvals=len(d["pending_approvals"]),
            pending_commands=d["pending_commands"], open_anomalies=len(d["open_anomalies"]),
            last_decision=None if last is None else m.DecisionOut(deployment=name, **last)))
    beat = st["heartbeat"]
    levels = [d.autonomy_level for d in deps]
    return m.StatusOut(
        now=st["now"], time=_iso(st["now"]), health=health, running=st["running"],
        pid=st["pid"], since=st["since"], heartbeat=beat, heartbeat_age_seconds=age,
        activity=beat.get("activity") if beat else None,
        autonomy_level=min(levels) if levels else None,
        paused=bool(deps) and all(d.paused for d in deps),
        queue_depth=sum(d.pending_approvals for d in deps),
        queued_events=st["queued_events"], deployments=deps)


#: Seconds after which a running daemon's heartbeat is ``stale``.
STALE_AFTER = 3 * HEARTBEAT_SECONDS


def _iso(ts: float) -> str:
    from tradewarden.domain import iso
    return iso(int(ts))
