"""The agent's ledger records (migration 0006): decisions, verdicts, autonomy, anomalies, costs.

Accessors for the oversight tables of :mod:`tradewarden.ledger.schema`:
``agent_decisions`` (what a reasoning engine decided, with the context it saw),
``governor_verdicts`` (what the autonomy governor let it do, recorded apart),
``autonomy_changes`` (every level a deployment had), ``anomalies`` (flags that hand
the decision to a person) and ``reasoning_costs`` (tokens and price of every model
call).

Every writer waits for the ledger's earlier batches (:meth:`Ledger.drain`), so rows the
background writer still holds go in first, then inserts or updates in a transaction of
its own, committed before it returns: a decision is durable before anything acts on
it. JSON columns are written with the ledger's :func:`~tradewarden.ledger.dumps`
(Decimal as text, sorted keys, non-finite floats as null). Times named ``ts`` are UTC
epoch seconds (integers); ``created_at`` is the wall clock (UTC ISO text, bookkeeping).
Database errors are raised as :class:`~tradewarden.ledger.LedgerError` naming the
record and the database.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update

from tradewarden.ledger import Ledger, LedgerError, dumps, schema
from tradewarden.ledger.store import utcnow_iso

#: What the governor may answer (``governor_verdicts.verdict``).
VERDICTS = ("execute", "queue", "monitor", "refuse")
#: How an autonomy level came about (``autonomy_changes.kind``).
CHANGE_KINDS = ("initial", "promotion", "demotion", "command")
#: The autonomy levels: 1 recommend only, 2 supervised, 3 semi-autonomous, 4 autonomous.
LEVELS = (1, 2, 3, 4)
#: ``anomalies.status`` values.
ANOMALY_STATUSES = ("open", "cleared")
#: Ids per ``IN (...)`` list when verdicts are read for many decisions (below every
#: backend's bound-parameter limit).
_IN_CHUNK = 500


# -- checks ---------------------------------------------------------------------------
def _ts(what: str, value: Any) -> int:
    """Return ``value`` as integer UTC epoch seconds, or raise naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)) \
            or not math.isfinite(float(value)):
        raise LedgerError(f"{what} {value!r}: give UTC epoch seconds (a finite number)")
    return int(value)


def _level(what: str, value: Any, *, optional: bool = False) -> int | None:
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value not in LEVELS:
        raise LedgerError(f"{what} {value!r}: give an autonomy level 1-4")
    return value


def _choice(what: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise LedgerError(f"{what} {value!r}: use one of {', '.join(allowed)}")
    return value


def _text(what: str, value: Any, longest: int, *, optional: bool = False) -> str | None:
    if optional and value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= longest:
        raise LedgerError(f"{what} {value!r}: give 1-{longest} characters")
    return value


def _count(what: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise LedgerError(f"{what} {value!r}: give a whole number >= 0")
    return value


def _json(what: str, value: Any) -> str:
    try:
        return dumps(value)
    except (TypeError, ValueError) as exc:
        raise LedgerError(f"{what}: not JSON-serialisable ({exc})") from None


def _parse(what: str, text: str | None, empty: Any) -> Any:
    if text is None:
        return empty
    try:
        return json.loads(text)
    except ValueError as exc:
        raise LedgerError(f"{what} is not JSON ({exc})") from None


# -- transactions -----------------------------------------------------------------------
def _write(ledger: Ledger, what: str, work: Callable[[Any], Any]) -> Any:
    """``ledger.write(what, work)``: a transaction of its own, :class:`LedgerError` naming
    ``what``."""
    return ledger.write(what, work)


def _read(ledger: Ledger, what: str, work: Callable[[Any], Any]) -> Any:
    """``ledger.read(what, work)``: :class:`LedgerError` naming ``what``."""
    return ledger.read(what, work)


def _rows(conn: Any, query: Any) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(query).mappings()]


# -- decisions and verdicts -------------------------------------------------------------
def _output_dict(output: Any) -> dict[str, Any]:
    """A ``DecisionOutput`` (anything with pydantic's ``model_dump``) or a mapping, as a
    JSON-ready dict with an ``action``."""
    if hasattr(output, "model_dump"):
        out = output.model_dump(mode="json")
    elif isinstance(output, Mapping):
        out = dict(output)
    else:
        raise LedgerError(f"decision output {output!r}: give a DecisionOutput or a mapping")
    action = out.get("action")
    if hasattr(action, "value"):
        out["action"] = action = action.value
    _text("decision action", action, 32)
    conf = out.get("confidence")
    if conf is not None and (isinstance(conf, bool) or not isinstance(conf, (int, float, Decimal))
                             or not 0 <= float(conf) <= 1):
        raise LedgerError(f"decision confidence {conf!r}: give a number from 0 to 1")
    return out


def record_decision(ledger: Ledger, *, deployment_id: str | None, run_id: str | None, ts: Any,
                    event_kind: str, reasoner: str, autonomy_level: int,
                    context: Mapping[str, Any], output: Any, event_id: int | None = None,
                    symbol: str | None = None, decision_seq: int | None = None) -> int:
    """Record what a reasoning engine decided, with the full context it saw.

    Committed before this returns, so the decision is in the ledger before the
    governor's verdict or anything that acts on it.

    Parameters
    ----------
    ledger : Ledger
    deployment_id, run_id : str or None
        The deployment and the run that asked.
    ts : int
        The event's clock time, UTC epoch seconds.
    event_kind : str
        What was decided about (``entry_signal``, ``exit_signal``, ``anomaly``, ...),
        1-32 characters.
    reasoner : str
        The reasoning engine's name, 1-32 characters.
    autonomy_level : int
        The level in force, 1-4.
    context : mapping
        What the reasoner saw (positions, account, market, anomalies, ...), stored as
        JSON.
    output : DecisionOutput or mapping
        The decision; its ``action`` and ``confidence`` (0-1) are also written to their
        own columns.
    event_id : int, optional
        The ``daemon_events`` row it answers.
    symbol : str, optional
    decision_seq : int, optional
        The engine decision (``decisions.seq`` of ``run_id``) of the bar.

    Returns
    -------
    int
        The new ``agent_decisions.id``.

    Raises
    ------
    LedgerError
        A bad argument (the message names it) or a row that cannot be written.
    """
    when = _ts("decision ts", ts)
    _text("event kind", event_kind, 32)
    _text("reasoner", reasoner, 32)
    _level("decision autonomy level", autonomy_level)
    _text("symbol", symbol, 32, optional=True)
    if not isinstance(context, Mapping):
        raise LedgerError(f"decision context {context!r}: give a mapping (a JSON object)")
    out = _output_dict(output)
    values = {"deployment_id": deployment_id, "run_id": run_id, "ts": when,
              "created_at": utcnow_iso(), "event_id": event_id, "event_kind": event_kind,
              "symbol": symbol, "decision_seq": decision_seq, "reasoner": reasoner,
              "autonomy_level": autonomy_level, "action": out["action"],
              "confidence": None if out.get("confidence") is None else float(out["confidence"]),
              "context": _json("decision context", dict(context)),
              "output": _json("decision output", out)}
    t = schema.agent_decisions
    return _write(ledger, "an agent decision",
                  lambda conn: int(conn.execute(t.insert().values(**values))
                                   .inserted_primary_key[0]))


def record_verdict(ledger: Ledger, *, agent_decision_id: int | None, deployment_id: str | None,
                   ts: Any, autonomy_level: int, verdict: str, reason: str,
                   triggers: Iterable[Any] = (), approval_id: int | None = None) -> int:
    """Record what the autonomy governor let a decision do, apart from its reasoning.

    Parameters
    ----------
    ledger : Ledger
    agent_decision_id : int or None
        The ``agent_decisions`` row judged.
    deployment_id : str or None
    ts : int
        Clock time, UTC epoch seconds.
    autonomy_level : int
        The level in force, 1-4.
    verdict : {"execute", "queue", "monitor", "refuse"}
    reason : str
        Why, in words (not empty).
    triggers : iterable
        The mandatory-human triggers that were active (names or small dicts), stored
        as a JSON list.
    approval_id : int, optional
        The queued ``approvals`` row, once known.

    Returns
    -------
    int
        The new ``governor_verdicts.id``.

    Raises
    ------
    LedgerError
        A bad argument or a row that cannot be written.
    """
    when = _ts("verdict ts", ts)
    _level("verdict autonomy level", autonomy_level)
    _choice("verdict", verdict, VERDICTS)
    if not isinstance(reason, str) or not reason:
        raise LedgerError(f"verdict reason {reason!r}: give a non-empty text")
    if isinstance(triggers, (str, bytes, Mapping)):
        raise LedgerError(f"verdict triggers {triggers!r}: give a list")
    values = {"agent_decision_id": agent_decision_id, "deployment_id": deployment_id,
              "ts": when, "created_at": utcnow_iso(), "autonomy_level": autonomy_level,
              "verdict": verdict, "reason": reason,
              "triggers": _json("verdict triggers", list(triggers)), "approval_id": approval_id}
    t = schema.governor_verdicts
    return _write(ledger, "a governor verdict",
                  lambda conn: int(conn.execute(t.insert().values(**values))
                                   .inserted_primary_key[0]))


def _decision_rows(conn: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Parse the JSON of ``agent_decisions`` rows and attach each one's verdicts."""
    v = schema.governor_verdicts
    by_id: dict[int, dict[str, Any]] = {}
    for r in rows:
        r["context"] = _parse(f"agent decision {r['id']}: context", r["context"], {})
        r["output"] = _parse(f"agent decision {r['id']}: output", r["output"], {})
        r["verdicts"] = []
        by_id[r["id"]] = r
    ids = list(by_id)
    for i in range(0, len(ids), _IN_CHUNK):
        part = ids[i:i + _IN_CHUNK]
        for vr in _rows(conn, select(v).where(v.c.agent_decision_id.in_(part)).order_by(v.c.id)):
            vr["triggers"] = _parse(f"governor verdict {vr['id']}: triggers", vr["triggers"], [])
            by_id[vr["agent_decision_id"]]["verdicts"].append(vr)
    return rows


def agent_decisions(ledger: Ledger, *, deployment_id: str | None = None,
                    since_ts: Any = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Return recorded agent decisions, oldest first (newest last), with their verdicts.

    Parameters
    ----------
    ledger : Ledger
    deployment_id : str, optional
        Only this deployment's.
    since_ts : int, optional
        Only decisions with ``ts >= since_ts`` (UTC epoch seconds).
    limit : int, optional
        Only the newest ``limit`` (still returned oldest first).

    Returns
    -------
    list of dict
        ``agent_decisions`` rows with ``context`` and ``output`` parsed, and
        ``verdicts``: that decision's ``governor_verdicts`` rows (``triggers`` parsed),
        oldest first.

    Raises
    ------
    LedgerError
        A ``limit`` below 1, a bad ``since_ts``, stored JSON that does not parse, or a
        ledger that cannot be read.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise LedgerError(f"decision limit {limit!r}: give at least 1")
    t = schema.agent_decisions
    q = select(t).order_by(t.c.ts.desc(), t.c.id.desc())
    if deployment_id is not None:
        q = q.where(t.c.deployment_id == deployment_id)
    if since_ts is not None:
        q = q.where(t.c.ts >= _ts("since_ts", since_ts))
    if limit is not None:
        q = q.limit(limit)
    return _read(ledger, "agent decisions",
                 lambda conn: _decision_rows(conn, _rows(conn, q)[::-1]))


def agent_decision(ledger: Ledger, decision_id: int) -> dict[str, Any] | None:
    """Return one agent decision (as :func:`agent_decisions` does), or ``None``.

    Raises
    ------
    LedgerError
        Stored JSON that does not parse, or a ledger that cannot be read.
    """
    t = schema.agent_decisions

    def work(conn: Any) -> dict[str, Any] | None:
        rows = _rows(conn, select(t).where(t.c.id == decision_id))
        return _decision_rows(conn, rows)[0] if rows else None

    return _read(ledger, f"agent decision {decision_id}", work)


def event_decision(ledger: Ledger, *, event_id: int,
                   deployment_id: str | None) -> dict[str, Any] | None:
    """Return the decision already recorded about a daemon event for a deployment (as
    :func:`agent_decisions` does, with its ``verdicts``), or ``None``: a handler run
    again after a crash reuses it instead of deciding twice.

    Raises
    ------
    LedgerError
        Stored JSON that does not parse, or a ledger that cannot be read.
    """
    t = schema.agent_decisions

    def work(conn: Any) -> dict[str, Any] | None:
        rows = _rows(conn, select(t).where(t.c.event_id == int(event_id),
                                           _same_deployment(t.c.deployment_id, deployment_id))
                     .order_by(t.c.id).limit(1))
        return _decision_rows(conn, rows)[0] if rows else None

    return _read(ledger, f"the decision about event {event_id}", work)


# -- autonomy levels --------------------------------------------------------------------
def record_autonomy_change(ledger: Ledger, *, deployment_id: str, ts: Any, from_level: int | None,
                           to_level: int, kind: str, reason: str, actor: str) -> int:
    """Record a deployment's new autonomy level.

    Parameters
    ----------
    ledger : Ledger
    deployment_id : str
    ts : int
        Clock time of the change, UTC epoch seconds.
    from_level : int or None
        The level before (``None`` for the initial one), 1-4.
    to_level : int
        The new level, 1-4.
    kind : {"initial", "promotion", "demotion", "command"}
    reason : str
        Why (not empty).
    actor : str
        Who: a person, or ``governor``; 1-64 characters.

    Returns
    -------
    int
        The new ``autonomy_changes.id``.

    Raises
    ------
    LedgerError
        A level outside 1-4, an unknown kind, an empty reason or actor, or a row that
        cannot be written.
    """
    _text("deployment id", deployment_id, 32)
    when = _ts("autonomy change ts", ts)
    _level("from level", from_level, optional=True)
    _level("to level", to_level)
    _choice("autonomy change kind", kind, CHANGE_KINDS)
    if not isinstance(reason, str) or not reason:
        raise LedgerError(f"autonomy change reason {reason!r}: give a non-empty text")
    _text("autonomy change actor", actor, 64)
    t = schema.autonomy_changes
    values = {"deployment_id": deployment_id, "ts": when, "created_at": utcnow_iso(),
              "from_level": from_level, "to_level": to_level, "kind": kind, "reason": reason,
              "actor": actor}
    return _write(ledger, "an autonomy change",
                  lambda conn: int(conn.execute(t.insert().values(**values))
                                   .inserted_primary_key[0]))


def autonomy_level(ledger: Ledger, deployment_id: str, default: int) -> int:
    """Return a deployment's autonomy level: the latest change's ``to_level``, else
    ``default``.

    One indexed query (``ix_autonomy_changes_deployment``); a level another process
    recorded (``warden daemon set-autonomy``) is seen at once.

    Raises
    ------
    LedgerError
        ``default`` outside 1-4, or a ledger that cannot be read.
    """
    _level("default autonomy level", default)
    t = schema.autonomy_changes
    q = (select(t.c.to_level).where(t.c.deployment_id == deployment_id)
         .order_by(t.c.id.desc()).limit(1))
    level = _read(ledger, "the autonomy level", lambda conn: conn.execute(q).scalar())
    return default if level is None else int(level)


def autonomy_changes(ledger: Ledger, deployment_id: str) -> list[dict[str, Any]]:
    """Return a deployment's autonomy changes, oldest first.

    Raises
    ------
    LedgerError
        If the ledger cannot be read.
    """
    t = schema.autonomy_changes
    q = select(t).where(t.c.deployment_id == deployment_id).order_by(t.c.id)
    return _read(ledger, "autonomy changes", lambda conn: _rows(conn, q))


# -- anomalies --------------------------------------------------------------------------
def _same_symbol(col: Any, symbol: str | None) -> Any:
    return col.is_(None) if symbol is None else col == symbol


def _same_deployment(col: Any, deployment_id: str | None) -> Any:
    return col.is_(None) if deployment_id is None else col == deployment_id


def open_anomaly(ledger: Ledger, *, deployment_id: str | None, kind: str, ts: Any,
                 symbol: str | None = None, detail: Mapping[str, Any] | None = None
                 ) -> int | None:
    """Raise an anomaly flag: while it is open a person must decide.

    Parameters
    ----------
    ledger : Ledger
    deployment_id : str or None
        The deployment concerned (``None``: all of them).
    kind : str
        What (``data_gap``, ``vix_spike``, ``fill_failures``, ...), 1-32 characters.
    ts : int
        When it was found, UTC epoch seconds.
    symbol : str, optional
    detail : mapping, optional
        The figures that raised it, stored as JSON.

    Returns
    -------
    int or None
        The new ``anomalies.id``; ``None`` when the same kind and symbol is already
        open for the deployment (nothing is written).

    Raises
    ------
    LedgerError
        A bad argument or a row that cannot be written.
    """
    _text("anomaly kind", kind, 32)
    when = _ts("anomaly ts", ts)
    _text("anomaly symbol", symbol, 32, optional=True)
    if detail is not None and not isinstance(detail, Mapping):
        raise LedgerError(f"anomaly detail {detail!r}: give a mapping (a JSON object)")
    text = None if detail is None else _json("anomaly detail", dict(detail))
    t = schema.anomalies

    def work(conn: Any) -> int | None:
        if conn.execute(select(t.c.id).where(
                _same_deployment(t.c.deployment_id, deployment_id), t.c.status == "open",
                t.c.kind == kind, _same_symbol(t.c.symbol, symbol)).limit(1)).first():
            return None
        return int(conn.execute(t.insert().values(
            deployment_id=deployment_id, kind=kind, symbol=symbol, opened_ts=when,
            status="open", detail=text, created_at=utcnow_iso())).inserted_primary_key[0])

    return _write(ledger, f"anomaly {kind}", work)


def clear_anomaly(ledger: Ledger, anomaly_id: int, *, ts: Any, by: str | None = None,
                  reason: str | None = None) -> bool:
    """Clear one open anomaly at ``ts`` (UTC epoch seconds).

    Parameters
    ----------
    ledger : Ledger
    anomaly_id : int
    ts : int
        UTC epoch seconds.
    by, reason : str, optional
        Who cleared it and why (a person's clearing); kept in the row's ``detail`` JSON
        as ``cleared_by`` and ``cleared_reason``.

    Returns
    -------
    bool
        ``True`` if it was open and is now cleared; ``False`` if it is unknown or was
        already cleared.

    Raises
    ------
    LedgerError
        A bad ``ts`` or a row that cannot be written.
    """
    when = _ts("anomaly cleared ts", ts)
    t = schema.anomalies

    def work(conn: Any) -> bool:
        values: dict[str, Any] = {"status": "cleared", "cleared_ts": when}
        if by is not None or reason is not None:
            row = conn.execute(select(t.c.detail).where(t.c.id == anomaly_id)).first()
            detail = _parse("anomaly detail", row[0] if row else None, {})
            detail = detail if isinstance(detail, dict) else {"detail": detail}
            detail.update({k: v for k, v in (("cleared_by", by), ("cleared_reason", reason))
                           if v is not None})
            values["detail"] = _json("anomaly detail", detail)
        return conn.execute(update(t).where(t.c.id == anomaly_id, t.c.status == "open")
                            .values(**values)).rowcount > 0

    return _write(ledger, f"anomaly {anomaly_id} cleared", work)


def clear_anomalies(ledger: Ledger, *, deployment_id: str | None, kind: str,
                    symbol: str | None = None, ts: Any) -> int:
    """Clear a deployment's open anomalies of one kind (the condition has ended).

    Parameters
    ----------
    ledger : Ledger
    deployment_id : str or None
    kind : str
    symbol : str, optional
        Only this symbol's; ``None`` clears every open anomaly of ``kind`` of the
        deployment, whatever its symbol.
    ts : int
        UTC epoch seconds.

    Returns
    -------
    int
        How many were cleared.

    Raises
    ------
    LedgerError
        A bad ``ts`` or rows that cannot be written.
    """
    when = _ts("anomaly cleared ts", ts)
    t = schema.anomalies
    stmt = update(t).where(_same_deployment(t.c.deployment_id, deployment_id),
                           t.c.kind == kind, t.c.status == "open")
    if symbol is not None:
        stmt = stmt.where(t.c.symbol == symbol)
    stmt = stmt.values(status="cleared", cleared_ts=when)
    return _write(ledger, f"anomalies {kind} cleared", lambda conn: int(conn.execute(stmt).rowcount))


def anomalies(ledger: Ledger, *, deployment_id: str | None = None,
              status: str | None = "open") -> list[dict[str, Any]]:
    """Return anomalies, oldest first (by id).

    Parameters
    ----------
    ledger : Ledger
    deployment_id : str, optional
        Only this deployment's (default: every deployment's, and the global ones).
    status : {"open", "cleared"} or None
        ``None`` for both.

    Returns
    -------
    list of dict
        ``anomalies`` rows with ``detail`` parsed (``None`` when absent).

    Raises
    ------
    LedgerError
        An unknown status, stored JSON that does not parse, or a ledger that cannot be
        read.
    """
    t = schema.anomalies
    q = select(t).order_by(t.c.id)
    if deployment_id is not None:
        q = q.where(t.c.deployment_id == deployment_id)
    if status is not None:
        q = q.where(t.c.status == _choice("anomaly status", status, ANOMALY_STATUSES))
    rows = _read(ledger, "anomalies", lambda conn: _rows(conn, q))
    for r in rows:
        r["detail"] = _parse(f"anomaly {r['id']}: detail", r["detail"], None)
    return rows


# -- reasoning costs --------------------------------------------------------------------
def record_cost(ledger: Ledger, *, ts: Any, provider: str, model: str, call_type: str,
                input_tokens: int, output_tokens: int, cost_usd: Any,
                cache_read_tokens: int = 0, cache_write_tokens: int = 0,
                deployment_id: str | None = None, agent_decision_id: int | None = None) -> int:
    """Record the tokens and price of one reasoning-model call.

    Parameters
    ----------
    ledger : Ledger
    ts : int
        When, UTC epoch seconds.
    provider, model, call_type : str
        1-32, 1-64 and 1-32 characters.
    input_tokens, output_tokens, cache_read_tokens, cache_write_tokens : int
        Token counts, >= 0.
    cost_usd : float or Decimal
        The call's price in US dollars (>= 0), from the configured price table.
    deployment_id : str, optional
    agent_decision_id : int, optional
        The decision the call served.

    Returns
    -------
    int
        The new ``reasoning_costs.id``.

    Raises
    ------
    LedgerError
        A bad argument or a row that cannot be written.
    """
    when = _ts("cost ts", ts)
    _text("provider", provider, 32)
    _text("model", model, 64)
    _text("call type", call_type, 32)
    counts = {name: _count(name.replace("_", " "), value) for name, value in (
        ("input_tokens", input_tokens), ("output_tokens", output_tokens),
        ("cache_read_tokens", cache_read_tokens), ("cache_write_tokens", cache_write_tokens))}
    if isinstance(cost_usd, bool) or not isinstance(cost_usd, (int, float, Decimal)) \
            or not math.isfinite(float(cost_usd)) or cost_usd < 0:
        raise LedgerError(f"cost_usd {cost_usd!r}: give a finite number of US dollars >= 0")
    t = schema.reasoning_costs
    values = {"ts": when, "created_at": utcnow_iso(), "deployment_id": deployment_id,
              "agent_decision_id": agent_decision_id, "provider": provider, "model": model,
              "call_type": call_type, "cost_usd": float(cost_usd), **counts}
    return _write(ledger, "a reasoning cost",
                  lambda conn: int(conn.execute(t.insert().values(**values))
                                   .inserted_primary_key[0]))


def costs(ledger: Ledger, *, since_ts: Any = None) -> list[dict[str, Any]]:
    """Return reasoning costs, oldest first (by ``ts``, then id), from ``since_ts`` (UTC
    epoch seconds, inclusive) on.

    Raises
    ------
    LedgerError
        A bad ``since_ts`` or a ledger that cannot be read.
    """
    t = schema.reasoning_costs
    q = select(t).order_by(t.c.ts, t.c.id)
    if since_ts is not None:
        q = q.where(t.c.ts >= _ts("since_ts", since_ts))
    return _read(ledger, "reasoning costs", lambda conn: _rows(conn, q))
