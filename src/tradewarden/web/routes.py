"""The ``/api`` routes (see :func:`tradewarden.web.app.create_app`).

Handlers are plain functions (FastAPI runs them on its thread pool); each reads the
ledger through the app's shared :class:`~tradewarden.ops.oversight.Oversight` and
answers with the models of :mod:`tradewarden.web.models`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, HTTPException, Path, Query

from tradewarden.ops.daemon import HEARTBEAT_SECONDS
from tradewarden.ops.oversight import (
    OversightConflict,
    OversightError,
    OversightNotFound,
)
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

    @router.get("/positions", response_model=m.PositionsOut,
                summary="Open positions with a traffic light")
    def positions() -> m.PositionsOut:
        """Every watched deployment's open positions (from its latest engine state), each
        with a traffic light: **red** when the mark is at or past its stop, its account's
        daily loss limit is reached, a risk breaker of its account has tripped or the
        kill switch is on; **amber** when the mark is within ``[daemon]
        stop_approach_fraction`` of the stop (distance ``(mark - stop) / stop`` for a
        long, ``(stop - mark) / stop`` for a short: the daemon's ``stop_approaching``
        rule) or the day's loss has used more than ``1 - stop_approach_fraction`` of the
        daily loss limit; **green** otherwise. ``risk_reasons`` says which."""
        return _positions(state)

    @router.get("/decisions", response_model=m.DecisionsOut,
                summary="Recent agent decisions with their reasoning")
    def decisions(
            deployment: Annotated[str | None, Query(description="Deployment name.")] = None,
            symbol: Annotated[str | None, Query(description="e.g. BTC-USD.")] = None,
            action: Annotated[str | None, Query(description="e.g. EXECUTE_TRADES.")] = None,
            since: Annotated[int | None, Query(description="From, UTC epoch s (inclusive).")] = None,
            until: Annotated[int | None, Query(description="To, UTC epoch s (exclusive).")] = None,
            limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> m.DecisionsOut:
        """Agent decisions, newest first: what, the reasoning and key factors, the
        governor's verdicts and what became of each."""
        with _answers():
            rows = state.oversight().decisions(deployment=deployment, symbol=symbol,
                                               action=action, since_ts=since, until_ts=until,
                                               limit=limit)
        return m.DecisionsOut(decisions=[m.DecisionOut(**r) for r in rows])

    @router.get("/decisions/{decision_id}", response_model=m.AuditOut,
                responses={404: {"model": m.ErrorOut}}, summary="One decision's full audit")
    def decision(decision_id: Annotated[int, Path(description="agent_decisions.id")]
                 ) -> m.AuditOut:
        """The full audit of one agent decision, as ``warden daemon audit --decision-id``:
        the context sent to the reasoner, its output, the verdicts, the approvals it led
        to and the commands that acted on them, and every model call it made."""
        from tradewarden.agent.calls import decision_calls
        with _answers():
            o = state.oversight()
            full = o.audit(decision_id=decision_id)
            d = full["decision"]
            full["calls"] = decision_calls(o.ledger, d["id"], event_id=d.get("event_id"))
        return _audit(full)

    @router.get("/queue", response_model=m.QueueOut, summary="Approvals waiting for a person")
    def queue() -> m.QueueOut:
        """The pending approvals, oldest first. Each item's ``id`` (the approval id) is
        the ``{id}`` that ``POST /api/decisions/{id}/approve`` and ``/reject`` take;
        ``decision_id`` links the agent decision that queued it, when there is one."""
        with _answers():
            rows = state.oversight().queue()
        return m.QueueOut(approvals=[m.ApprovalOut(**r) for r in rows])

    write = Depends(_rate_limit(state))
    acted = {404: {"model": m.ErrorOut}, 409: {"model": m.ErrorOut},
             429: {"model": m.ErrorOut, "description": "Too many writes this minute."}}

    @router.post("/decisions/{approval_id}/approve", response_model=m.ActionOut,
                 dependencies=[write], responses=acted, summary="Approve a pending approval")
    def approve(approval_id: Annotated[int, Path(
            description="The approval id: the `id` of an item of GET /api/queue.")]
            ) -> m.ActionOut:
        """Queue ``approve`` in the approval's deployment inbox, recorded as
        ``api:<token_name>``; the engine checks risk again before its next bar and
        submits the order, or refuses (see ``warden commands``). Of several approve /
        reject calls on one approval at once exactly one is queued; the others get 409."""
        ids: list[int] = []
        with _answers():
            message = state.oversight().approve(approval_id, state.actor, ids=ids)
        return _acted(state, message, ids)

    @router.post("/decisions/{approval_id}/reject", response_model=m.ActionOut,
                 dependencies=[write], responses=acted, summary="Reject a pending approval")
    def reject(approval_id: Annotated[int, Path(
            description="The approval id: the `id` of an item of GET /api/queue.")],
            body: Annotated[m.RejectIn, Body()]) -> m.ActionOut:
        """Queue ``reject`` with the reason (required: 422 without one), as approve."""
        ids: list[int] = []
        with _answers():
            message = state.oversight().reject(approval_id, body.reason, state.actor, ids=ids)
        return _acted(state, message, ids)

    @router.post("/daemon/pause", response_model=m.ActionOut, dependencies=[write],
                 responses=acted, summary="Pause every deployment")
    def pause(body: Annotated[m.PauseIn, Body()]) -> m.ActionOut:
        """Queue ``pause`` (with the reason) in every watched deployment's inbox: no new
        entries until resumed; exits and protective orders go on."""
        ids: list[int] = []
        with _answers():
            message = state.oversight().pause(body.reason, state.actor, ids=ids)
        return _acted(state, message, ids)

    @router.post("/daemon/resume", response_model=m.ActionOut, dependencies=[write],
                 responses=acted, summary="Resume every deployment")
    def resume() -> m.ActionOut:
        """Queue ``resume`` in every watched deployment's inbox (lifts a pause and the
        kill switch)."""
        ids: list[int] = []
        with _answers():
            message = state.oversight().resume(state.actor, ids=ids)
        return _acted(state, message, ids)

    @router.get("/costs", response_model=m.CostsOut, summary="Reasoning-model costs")
    def costs(days: Annotated[float, Query(gt=0, le=3660, description="Days back.")] = 7
              ) -> m.CostsOut:
        """Calls, tokens and US dollars of the reasoning model per UTC day, model and call
        type, by model and in total."""
        with _answers():
            return m.CostsOut(**state.oversight().costs(days=days))

    @router.get("/thoughts", response_model=m.ThoughtsOut,
                responses={400: {"model": m.ErrorOut}, 404: {"model": m.ErrorOut}},
                summary="The thought log: a day's model calls")
    def thoughts(day: Annotated[str | None, Query(description="The UTC day, YYYY-MM-DD "
                                                  "(default: today).")] = None,
                 deployment: Annotated[str | None, Query(description="Deployment name.")] = None
                 ) -> m.ThoughtsOut:
        """Every reasoning-model call of one UTC day, by cycle (a decision's or a
        reflection's calls together), as ``warden daemon thoughts``: time, deployment,
        call type, model, status, action, tokens, cost and the first line of the
        reasoning."""
        from datetime import date

        from tradewarden.agent.calls import thought_log
        o = state.oversight()
        if day is not None:
            try:
                date.fromisoformat(day)
            except ValueError:
                raise HTTPException(400, f"day {day!r}: give a date as YYYY-MM-DD") from None
        if deployment is not None and deployment not in {
                d["name"] for d in o.ledger.deployments()}:
            raise HTTPException(404, f"deployment {deployment}: no such deployment")
        day = day or _iso(o.now())[:10]
        rows = thought_log(o.ledger, day=day, deployment=deployment)
        return m.ThoughtsOut(day=day, calls=[m.ThoughtOut(**r) for r in rows],
                             cost_usd=sum((Decimal(repr(float(r["cost_usd"]))) for r in rows),
                                          Decimal(0)))

    @router.get("/runs", response_model=m.RunsOut, summary="Runs, newest first")
    def runs(limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> m.RunsOut:
        """The ledger's runs (replay, paper, live) as ``warden runs`` lists them."""
        from tradewarden.analytics.report import list_runs
        rows = list_runs(state.oversight().ledger.engine, limit, figures=True)
        return m.RunsOut(runs=[m.RunOut(**r) for r in rows])

    @router.get("/runs/{run_id}", response_model=dict[str, Any],
                responses={404: {"model": m.ErrorOut}}, summary="A run's report")
    def run_report(run_id: str) -> dict[str, Any]:
        """The run's report as ``warden report RUN_ID --report-format json`` writes it
        (figures, gates, per symbol, data quality, warnings, notes), built from the
        ledger on each call, in a worker process of the server (about a second for a
        54,000-bar replay)."""
        with _answers():
            return state.report(run_id)

    @router.get("/runs/{run_id}/trades", response_model=m.TradesOut,
                responses={404: {"model": m.ErrorOut}}, summary="A run's closed round trips")
    def run_trades(run_id: str) -> m.TradesOut:
        """The run's closed round trips by entry time."""
        with _answers():
            rows = _trades(state.oversight().ledger, run_id)
        return m.TradesOut(run_id=run_id, trades=[m.TradeOut(**r) for r in rows])

    @router.get("/equity", response_model=m.EquityOut, responses={404: {"model": m.ErrorOut}},
                summary="Equity curve of a deployment or a run")
    def equity(deployment: Annotated[str | None, Query(description="Deployment name.")] = None,
               run_id: Annotated[str | None, Query(description="Run id.")] = None,
               max_points: Annotated[int, Query(ge=10, le=100_000)] = 2000) -> m.EquityOut:
        """Each account's equity at every bar close (``decisions.equity``), of one run or
        of every run of a deployment in order, with its maximum drawdown; with several
        accounts also ``total`` (their sum, each account's latest value). Longer curves
        are thinned to ``max_points`` (the last point of each of ``max_points`` equal
        slices); the drawdown is of the full curve."""
        if (deployment is None) == (run_id is None):
            raise HTTPException(400, "give deployment=NAME or run_id=ID (one of them)")
        with _answers():
            return _equity(state.oversight(), deployment, run_id, max_points)

    app.include_router(router)


@contextmanager
def _answers() -> Iterator[None]:
    """Turn the oversight's refusals into 404 / 409 / 400 answers, and an unknown run
    (``LookupError``) into 404."""
    try:
        yield
    except OversightNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except OversightConflict as exc:
        raise HTTPException(409, str(exc)) from None
    except OversightError as exc:
        raise HTTPException(400, str(exc)) from None
    except LookupError as exc:
        raise HTTPException(404, str(exc).strip("'\"")) from None
    except (TimeoutError, RuntimeError) as exc:
        raise HTTPException(503, f"the report could not be built: {exc}") from None


def _rate_limit(state: Any) -> Callable[[], None]:
    def limited() -> None:
        wait = state.writes.acquire()
        if wait is not None:
            raise HTTPException(
                429, f"too many changes: at most {state.writes.limit} per minute "
                     f"([api] write_limit_per_minute); try again in {max(1, round(wait))} s",
                headers={"Retry-After": str(max(1, round(wait)))})
    return limited


def _acted(state: Any, message: str, ids: list[int]) -> m.ActionOut:
    return m.ActionOut(message=message, actor=state.actor, at=_iso(state.clock()),
                       commands=ids)


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


def _positions(state: Any) -> m.PositionsOut:
    o = state.oversight()
    f = Decimal(str(state.stop_approach_fraction))
    books = o.positions()
    risk = o.risk()
    out = []
    for name, rows in books.items():
        r = risk.get(name) or {}
        daily = {dl["account"]: dl for dl in r.get("daily_loss", [])}
        halts = r.get("halts") or {}
        for p in rows:
            red, amber = [], []
            qty, stop, mark = p["quantity"], p["stop_loss"], p["mark"]
            distance = None
            if stop is not None and mark is not None and stop > 0:
                distance = ((mark - stop) if qty > 0 else (stop - mark)) / stop
                if distance <= 0:
                    red.append(f"mark {mark} is past the stop {stop}")
                elif distance <= f:
                    amber.append(f"mark {mark} is within {float(distance) * 100:.2f}% of the "
                                 f"stop {stop}")
            used = (daily.get(p["account"]) or {}).get("limit_used_pct")
            if used is not None:
                if used >= 100:
                    red.append(f"daily loss limit reached ({used:.0f}% used)")
                elif used >= float(1 - f) * 100:
                    amber.append(f"daily loss at {used:.0f}% of its limit")
            for h in halts.get(p["account"], []) if p["account"] else []:
                red.append(f"risk breaker {h} tripped")
            if r.get("kill_switch") and not any("kill_switch" in x for x in red):
                red.append("kill switch on")
            light = "red" if red else "amber" if amber else "green"
            out.append(m.PositionOut(
                deployment=name, **{k: v for k, v in p.items() if k != "stop_distance_pct"},
                stop_distance_pct=None if distance is None else float(distance * 100),
                daily_loss_used_pct=used, risk=light, risk_reasons=red + amber,
                quote=r.get("quote", "quote")))
    return m.PositionsOut(stop_approach_fraction=float(f), positions=out)


def _audit(full: dict[str, Any]) -> m.AuditOut:
    approvals = [m.ApprovalOut(**a, time=_iso(int(a["ts"]))) for a in full["approvals"]]
    return m.AuditOut(decision=full["decision"], approvals=approvals,
                      commands=[m.CommandOut(**c) for c in full["commands"]],
                      outcome=full["outcome"], calls=full.get("calls", []))


def _trades(ledger: Any, run_id: str) -> list[dict[str, Any]]:
    """A run's trades by entry time; ``LookupError`` for an unknown run."""
    from sqlalchemy import select

    from tradewarden.ledger import schema
    t, r = schema.trades, schema.runs
    with ledger.engine.connect() as conn:
        if conn.execute(select(r.c.run_id).where(r.c.run_id == run_id)).first() is None:
            raise LookupError(f"run {run_id}: no such run in {ledger.url}")
        rows = conn.execute(select(t).where(t.c.run_id == run_id)
                            .order_by(t.c.entry_ts, t.c.trade_id)).mappings().all()
    return [dict(x) for x in rows]


def _equity(o: Any, deployment: str | None, run_id: str | None, max_points: int) -> m.EquityOut:
    """Equity points per account from ``decisions.equity`` (see the route)."""
    from sqlalchemy import select

    from tradewarden.ledger import schema
    ledger = o.ledger
    r, d, es = schema.runs, schema.decisions, schema.engine_state
    with ledger.engine.connect() as conn:
        if run_id is not None:
            found = conn.execute(select(r.c.run_id, r.c.capital_mode, r.c.symbols)
                                 .where(r.c.run_id == run_id)).mappings().all()
            if not found:
                raise LookupError(f"run {run_id}: no such run in {ledger.url}")
        else:
            dep = ledger.deployment(deployment)
            if dep is None:
                raise OversightNotFound(f"deployment {deployment}: no such deployment in "
                                        f"{ledger.url}")
            ids = {x for (x,) in conn.execute(select(es.c.run_id).distinct()
                                              .where(es.c.deployment_id == dep["deployment_id"]))}
            if dep.get("run_id"):
                ids.add(dep["run_id"])
            found = conn.execute(select(r.c.run_id, r.c.capital_mode, r.c.symbols)
                                 .where(r.c.run_id.in_(ids))
                                 .order_by(r.c.started_at, r.c.run_id)).mappings().all()
        curves: dict[str, list[tuple[int, float]]] = {}
        symbols: list[str] = []
        for run in found:
            portfolio = run["capital_mode"] == "portfolio"
            try:
                symbols += [s for s in json.loads(run["symbols"] or "[]") if s not in symbols]
            except ValueError:
                pass
            q = (select(d.c.ts, d.c.symbol, d.c.equity)
                 .where(d.c.run_id == run["run_id"], d.c.equity.is_not(None)).order_by(d.c.seq))
            for ts, sym, eq in conn.execute(q):
                account = "portfolio" if portfolio else sym
                pts = curves.setdefault(account, [])
                if pts and pts[-1][0] == ts:
                    pts[-1] = (ts, eq)
                elif not pts or ts > pts[-1][0]:
                    pts.append((ts, eq))
    if len(curves) > 1:
        curves["total"] = _total(curves)
    from tradewarden.ops.oversight import _quote_of  # the quote of the symbols
    return m.EquityOut(deployment=deployment, run_id=run_id, runs=[x["run_id"] for x in found],
                       quote=_quote_of(symbols),
                       series=[m.EquitySeries(account=a, points=_thin(p, max_points),
                                              max_drawdown_pct=_max_drawdown(p))
                               for a, p in curves.items()])


def _total(curves: dict[str, list[tuple[int, float]]]) -> list[tuple[int, float]]:
    """The sum of every account's latest equity at each time all of them have one."""
    events = sorted((ts, a, eq) for a, pts in curves.items() for ts, eq in pts)
    last: dict[str, float] = {}
    out: list[tuple[int, float]] = []
    for i, (ts, a, eq) in enumerate(events):
        last[a] = eq
        if len(last) == len(curves) and (i + 1 == len(events) or events[i + 1][0] != ts):
            out.append((ts, sum(last.values())))
    return out


def _thin(points: list[tuple[int, float]], n: int) -> list[m.EquityPoint]:
    """At most ``n`` points: the last of each of ``n`` equal slices (the last point kept)."""
    if len(points) > n:
        step = len(points) / n
        points = [points[min(len(points) - 1, int((i + 1) * step) - 1)] for i in range(n)]
    return [m.EquityPoint(ts=ts, equity=Decimal(repr(eq))) for ts, eq in points]


def _max_drawdown(points: list[tuple[int, float]]) -> float | None:
    """Deepest (peak - trough) / peak of the points, percent (``None`` without points)."""
    if not points:
        return None
    peak, worst = points[0][1], 0.0
    for _, eq in points:
        peak = max(peak, eq)
        if peak > 0:
            worst = max(worst, (peak - eq) / peak * 100)
    return worst


#: Seconds after which a running daemon's heartbeat is ``stale``.
STALE_AFTER = 3 * HEARTBEAT_SECONDS


def _iso(ts: float) -> str:
    from tradewarden.domain import iso
    return iso(int(ts))
