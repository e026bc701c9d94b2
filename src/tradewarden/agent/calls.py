"""Every reasoning-model call, in full (``reasoning_calls``, migration 0008), with its cost.

:func:`record_call` writes one call (what was sent, what came back, what parsed, how
long it took, its tokens) and its ``reasoning_costs`` row in one transaction, committed
before it returns; :func:`set_call_outcome` notes later what was done with the answer;
:func:`calls` reads them back for the audit, the thought log and the costs.

Validation, JSON and transactions as in :mod:`tradewarden.agent.records`: bad arguments
and database errors are raised as :class:`~tradewarden.ledger.LedgerError` naming the
field or the record. Times named ``ts`` are UTC epoch seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select, update

from tradewarden.agent.costs import Usage, price_call
from tradewarden.agent.records import (
    _choice,
    _count,
    _json,
    _level,
    _parse,
    _read,
    _rows,
    _text,
    _ts,
    _write,
)
from tradewarden.ledger import Ledger, LedgerError, schema
from tradewarden.ledger.store import utcnow_iso

__all__ = ["CALL_STATUSES", "calls", "decision_calls", "first_thought", "record_call",
           "response_blocks", "set_call_outcome", "thought_log"]

#: ``reasoning_calls.status``: ok (parsed and valid), invalid (did not validate),
#: refused (the model declined), error (the API failed), timeout, capped (the daily
#: cost cap stopped it before sending).
CALL_STATUSES = ("ok", "invalid", "refused", "error", "timeout", "capped")


def _mapping(what: str, value: Any, *, optional: bool) -> str | None:
    if value is None:
        if optional:
            return None
        raise LedgerError(f"{what}: give a mapping (a JSON object)")
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    if not isinstance(value, Mapping):
        raise LedgerError(f"{what} {value!r}: give a mapping (a JSON object)")
    return _json(what, dict(value))


def record_call(ledger: Ledger, *, ts: Any, cycle: str, call_type: str, attempt: int,
                provider: str, model: str, status: str, request: Mapping[str, Any],
                response: Mapping[str, Any] | None, parsed: Any, error: str | None,
                latency_ms: int | None, usage: Usage | None, prices: Mapping[str, Any],
                deployment_id: str | None = None, agent_decision_id: int | None = None,
                event_id: int | None = None, autonomy_level: int | None = None,
                outcome: str | None = None) -> int:
    """Record one reasoning-model call and its cost, in one transaction.

    Writes the ``reasoning_calls`` row and a ``reasoning_costs`` row pointing at it
    (``call_id``), committed before this returns.

    Parameters
    ----------
    ledger : Ledger
    ts : int
        When the call was made, UTC epoch seconds (the engine's clock).
    cycle : str
        The calls of one decision or reflection (``event:<id>``,
        ``reflection:<deployment>:<YYYY-MM-DD>``), 1-96 characters.
    call_type : str
        ``decide``, ``reflect``, ... (1-32 characters).
    attempt : int
        1 for the first call of the cycle, 2 for the retry with the validation error, ...
    provider, model : str
        1-32 and 1-64 characters; ``model`` must be in ``prices`` unless the call is
        ``capped``.
    status : {"ok", "invalid", "refused", "error", "timeout", "capped"}
    request : mapping
        Everything sent (system prompt, messages, the serialised context, model and
        limits), stored as JSON.
    response : mapping or None
        Everything that came back (text and reasoning blocks included); ``None`` when
        nothing did. A ``capped`` call has none.
    parsed : DecisionOutput, mapping or None
        The validated answer when it parsed.
    error : str or None
        What went wrong (validation error, API error, timeout), if anything.
    latency_ms : int or None
        Round-trip time, milliseconds (>= 0).
    usage : Usage or None
        Tokens; ``None`` counts as none (a call that got no answer).
    prices : mapping of str to ModelPrice
        ``[reasoning].prices``: the call's ``cost_usd`` is
        :func:`~tradewarden.agent.costs.price_call` of it; a ``capped`` call costs 0.
    deployment_id : str, optional
    agent_decision_id : int, optional
        The ``agent_decisions`` row it served, if already recorded (else see
        :func:`set_call_outcome`).
    event_id : int, optional
        The ``daemon_events`` row that asked.
    autonomy_level : int, optional
        The level in force, 1-4.
    outcome : str, optional
        What was done with the answer (executed, queued, monitor_only, fallback_rules,
        ...), 1-32 characters.

    Returns
    -------
    int
        The new ``reasoning_calls.id``.

    Raises
    ------
    LedgerError
        A bad argument (the message names it) or rows that cannot be written (neither
        is then written).
    UnknownModelPrice
        ``model`` has no price (a ``KeyError``); nothing is written.
    """
    when = _ts("call ts", ts)
    _text("call cycle", cycle, 96)
    _text("call type", call_type, 32)
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise LedgerError(f"call attempt {attempt!r}: give a whole number >= 1")
    _text("provider", provider, 32)
    _text("model", model, 64)
    _choice("call status", status, CALL_STATUSES)
    _level("call autonomy level", autonomy_level, optional=True)
    _text("call outcome", outcome, 32, optional=True)
    if error is not None and not isinstance(error, str):
        raise LedgerError(f"call error {error!r}: give a text or None")
    if latency_ms is not None:
        _count("latency_ms", latency_ms)
    if usage is None:
        usage = Usage(0, 0)
    elif not isinstance(usage, Usage):
        raise LedgerError(f"call usage {usage!r}: give a Usage")
    if status == "capped":
        if response is not None:
            raise LedgerError("a capped call was never sent: give response=None")
        cost = 0.0
    else:
        cost = price_call(prices, model, usage)
    tokens = {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
              "cache_read_tokens": usage.cache_read_tokens,
              "cache_write_tokens": usage.cache_write_tokens}
    created = utcnow_iso()
    values = {"ts": when, "created_at": created, "deployment_id": deployment_id,
              "agent_decision_id": agent_decision_id, "event_id": event_id, "cycle": cycle,
              "call_type": call_type, "attempt": attempt, "provider": provider, "model": model,
              "autonomy_level": autonomy_level, "status": status,
              "request": _mapping("call request", request, optional=False),
              "response": _mapping("call response", response, optional=True),
              "parsed": _mapping("call parsed answer", parsed, optional=True),
              "error": error, "outcome": outcome, "latency_ms": latency_ms,
              "cost_usd": cost, **tokens}
    cost_values = {"ts": when, "created_at": created, "deployment_id": deployment_id,
                   "agent_decision_id": agent_decision_id, "provider": provider,
                   "model": model, "call_type": call_type, "cost_usd": cost, **tokens}

    def work(conn: Any) -> int:
        call_id = int(conn.execute(schema.reasoning_calls.insert().values(**values))
                      .inserted_primary_key[0])
        conn.execute(schema.reasoning_costs.insert().values(call_id=call_id, **cost_values))
        return call_id

    return _write(ledger, "a reasoning call", work)


def set_call_outcome(ledger: Ledger, call_id: int, *, outcome: str,
                     agent_decision_id: int | None = None) -> bool:
    """Note what was done with a call's answer, and the decision it served.

    Parameters
    ----------
    ledger : Ledger
    call_id : int
        The ``reasoning_calls`` row.
    outcome : str
        executed, queued, monitor_only, refused, fallback_rules, ... (1-32 characters).
    agent_decision_id : int, optional
        Also link the call (and its ``reasoning_costs`` row) to this decision.

    Returns
    -------
    bool
        ``True`` if the call exists (and was updated).

    Raises
    ------
    LedgerError
        A bad outcome or rows that cannot be written.
    """
    _text("call outcome", outcome, 32)
    values: dict[str, Any] = {"outcome": outcome}
    if agent_decision_id is not None:
        values["agent_decision_id"] = agent_decision_id
    c, k = schema.reasoning_calls, schema.reasoning_costs

    def work(conn: Any) -> bool:
        found = conn.execute(update(c).where(c.c.id == call_id).values(**values)).rowcount > 0
        if found and agent_decision_id is not None:
            conn.execute(update(k).where(k.c.call_id == call_id)
                         .values(agent_decision_id=agent_decision_id))
        return found

    return _write(ledger, f"reasoning call {call_id} outcome", work)


def _reads(ledger: Ledger, q: Any) -> list[dict[str, Any]]:
    """Run a ``reasoning_calls`` query; parse each row's JSON columns."""
    rows = _read(ledger, "reasoning calls", lambda conn: _rows(conn, q))
    for r in rows:
        for col in ("request", "response", "parsed"):
            r[col] = _parse(f"reasoning call {r['id']}: {col}", r[col], None)
    return rows


def calls(ledger: Ledger, *, since_ts: Any = None, until_ts: Any = None,
          cycle: str | None = None, agent_decision_id: int | None = None,
          deployment_id: str | None = None) -> list[dict[str, Any]]:
    """Return recorded model calls, oldest first (by ``ts``, then id).

    Parameters
    ----------
    ledger : Ledger
    since_ts, until_ts : int, optional
        Only calls with ``since_ts <= ts < until_ts`` (UTC epoch seconds).
    cycle : str, optional
        Only this cycle's.
    agent_decision_id : int, optional
        Only the calls linked to this decision.
    deployment_id : str, optional
        Only this deployment's.

    Returns
    -------
    list of dict
        ``reasoning_calls`` rows with ``request``, ``response`` and ``parsed`` parsed
        from JSON (``None`` when absent).

    Raises
    ------
    LedgerError
        A bad time, stored JSON that does not parse, or a ledger that cannot be read.
    """
    t = schema.reasoning_calls
    q = select(t).order_by(t.c.ts, t.c.id)
    if since_ts is not None:
        q = q.where(t.c.ts >= _ts("since_ts", since_ts))
    if until_ts is not None:
        q = q.where(t.c.ts < _ts("until_ts", until_ts))
    if cycle is not None:
        q = q.where(t.c.cycle == cycle)
    if agent_decision_id is not None:
        q = q.where(t.c.agent_decision_id == agent_decision_id)
    if deployment_id is not None:
        q = q.where(t.c.deployment_id == deployment_id)
    return _reads(ledger, q)


def decision_calls(ledger: Ledger, decision_id: int, *,
                   event_id: int | None = None) -> list[dict[str, Any]]:
    """Return every model call of one agent decision, oldest first.

    The calls linked to it (``agent_decision_id``) and, when ``event_id`` is given, the
    calls of its cycle (``event:<event_id>``) not linked to any decision yet (an
    attempt that failed before the decision was recorded).

    Raises
    ------
    LedgerError
        Stored JSON that does not parse, or a ledger that cannot be read.
    """
    t = schema.reasoning_calls
    cond = t.c.agent_decision_id == decision_id
    if event_id is not None:
        cond = cond | ((t.c.cycle == f"event:{event_id}") & t.c.agent_decision_id.is_(None))
    return _reads(ledger, select(t).where(cond).order_by(t.c.ts, t.c.id))


def _first_line(text: Any, longest: int) -> str | None:
    if not isinstance(text, str):
        return None
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= longest else line[:longest - 3] + "..."
    return None


def response_blocks(response: Any) -> list[Mapping[str, Any]]:
    """Return the content blocks (``thinking``, ``text``, ...) of a recorded response.

    A Messages API body has them in ``content``; the Anthropic reasoner records the body
    under ``body`` beside its HTTP attempts. Anything else has none (``[]``).
    """
    if not isinstance(response, Mapping):
        return []
    blocks = response.get("content")
    if blocks is None and isinstance(response.get("body"), Mapping):
        blocks = response["body"].get("content")
    return [b for b in blocks if isinstance(b, Mapping)] if isinstance(blocks, list) else []


def first_thought(call: Mapping[str, Any], longest: int = 160) -> str:
    """Return the first line of a call's reasoning, for a list.

    The parsed answer's ``reasoning`` (a ``DecisionOutput``'s) when it parsed; else the
    first thinking or text block of the response (:func:`response_blocks`); else the
    error; ``""`` when there is none. Cut to ``longest`` characters.
    """
    parsed = call.get("parsed")
    if isinstance(parsed, Mapping):
        for key in ("reasoning", "summary", "text"):
            line = _first_line(parsed.get(key), longest)
            if line:
                return line
    blocks = response_blocks(call.get("response"))
    for kind in ("thinking", "text"):
        for b in blocks:
            if b.get("type") == kind:
                line = _first_line(b.get(kind), longest)
                if line:
                    return line
    return _first_line(call.get("error"), longest) or ""


def _day(value: Any) -> date:
    if isinstance(value, datetime):
        return value.astimezone(UTC).date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise LedgerError(f"day {value!r}: give a date as YYYY-MM-DD") from None


def thought_log(ledger: Ledger, *, day: Any,
                deployment: str | None = None) -> list[dict[str, Any]]:
    """Return the thought log of one UTC day: every model call, grouped by cycle.

    Cycles come in the order of their first call, each cycle's calls by attempt.

    Parameters
    ----------
    ledger : Ledger
    day : datetime.date or str
        The UTC day (``YYYY-MM-DD``).
    deployment : str, optional
        Only this deployment's calls: its name, or its id.

    Returns
    -------
    list of dict
        Per call: ``id``, ``ts`` (UTC epoch s), ``time`` (ISO UTC), ``cycle``,
        ``attempt``, ``deployment_id``, ``deployment`` (its name, else ``None``),
        ``call_type``, ``provider``, ``model``, ``status``, ``action`` (the parsed
        answer's, else ``None``), ``outcome``, ``autonomy_level``, ``agent_decision_id``,
        the four token counts, ``cost_usd`` (US dollars), ``latency_ms`` and
        ``thought`` (:func:`first_thought`).

    Raises
    ------
    LedgerError
        A bad day, an unknown deployment, or a ledger that cannot be read.
    """
    start = int(datetime.combine(_day(day), datetime.min.time(), UTC).timestamp())
    names = {d["deployment_id"]: d["name"] for d in ledger.deployments()}
    dep_id = None
    if deployment is not None:
        dep_id = deployment if deployment in names else next(
            (i for i, n in names.items() if n == deployment), None)
        if dep_id is None:
            raise LedgerError(f"deployment {deployment!r}: no such deployment in {ledger.url}")
    rows = calls(ledger, since_ts=start, until_ts=start + 86_400, deployment_id=dep_id)
    first: dict[str, tuple[int, int]] = {}
    for r in rows:
        first.setdefault(r["cycle"], (r["ts"], r["id"]))
    rows.sort(key=lambda r: (first[r["cycle"]], r["attempt"], r["id"]))
    out = []
    for r in rows:
        parsed = r["parsed"] if isinstance(r["parsed"], Mapping) else {}
        out.append({
            "id": r["id"], "ts": r["ts"],
            "time": datetime.fromtimestamp(r["ts"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "cycle": r["cycle"], "attempt": r["attempt"], "deployment_id": r["deployment_id"],
            "deployment": names.get(r["deployment_id"]), "call_type": r["call_type"],
            "provider": r["provider"], "model": r["model"], "status": r["status"],
            "action": parsed.get("action"), "outcome": r["outcome"],
            "autonomy_level": r["autonomy_level"], "agent_decision_id": r["agent_decision_id"],
            "input_tokens": r["input_tokens"], "output_tokens": r["output_tokens"],
            "cache_read_tokens": r["cache_read_tokens"],
            "cache_write_tokens": r["cache_write_tokens"], "cost_usd": r["cost_usd"],
            "latency_ms": r["latency_ms"], "thought": first_thought(r)})
    return out
