"""Outcome feedback: what became of each agent decision, and what the record shows.

:func:`record_outcomes` links a deployment's closed positions to the agent decisions
that opened them and scores the candidates it skipped, in ``decision_outcomes``
(migration 0008), once per decision (the table's unique key ``(agent_decision_id,
kind, symbol)``): callable at any time, as often as wanted (the daemon's end of day,
after fills).

* **taken**: a ``trades`` row of one of the deployment's runs. Its entry order
  (``trades.entry_order_id``, an ``orders`` row of those runs) carries the engine
  decision it came from (``orders.decision_seq``), and the governor recorded the agent
  decision of that bar with the same ``run_id`` and ``decision_seq``
  (:mod:`tradewarden.agent.autonomy`). When no decision carries that number (an order
  approved in a later run), the deployment's latest ``EXECUTE_TRADES`` decision about
  the symbol at or before the entry, not linked yet, is taken. The outcome holds the
  trade's ``pnl`` (quote currency) and ``return_pct`` (pnl / entry notional x 100).
* **skipped**: an entry candidate (an ``entry_signal`` decision, or an
  ``EXECUTE_TRADES`` / ``STAGE_CANDIDATES`` decision about a symbol) that opened
  nothing, for good: its verdict was ``monitor`` or ``refuse``, or it was queued and
  its approval was ``rejected`` or ``expired``. It is scored against what the price did
  over ``horizon_s``: ``return_pct = (p1 / p0 - 1) x 100``, ``p0`` the close of the
  decision's bar (``decisions.close`` of its ``run_id`` and ``decision_seq``, else the
  symbol's latest recorded close at or before the decision), ``p1`` the symbol's first
  recorded close at least ``horizon_s`` later in the deployment's runs. Until such a
  close exists it is not scored (a later call does it).

Each outcome also lands in the ``outcome`` of the decision's ``memory_embeddings`` row,
so semantic recall returns it with the past context.

:func:`recent_decisions`, :func:`performance` and :func:`patterns` read the record
for the reasoning context (:func:`tradewarden.agent.memory.build_context_extras`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from decimal import Decimal
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from tradewarden.agent import records
from tradewarden.ledger import Ledger, LedgerError, schema
from tradewarden.ledger.store import utcnow_iso

#: The default horizon a skipped candidate is scored over: one day, in seconds.
DEFAULT_HORIZON_S = 86_400
#: Actions that ask for an entry (besides every ``entry_signal`` decision).
ENTRY_ACTIONS = ("EXECUTE_TRADES", "STAGE_CANDIDATES")
#: VIX bands (lower bound, name), highest first: the common reading of the index
#: (below 20 calm, 20-25 elevated, 25-30 high, 30 and over very high); the bounds are
#: ours, chosen for recall and patterns, not an exchange rule.
VIX_BANDS = ((30.0, "very high"), (25.0, "high"), (20.0, "elevated"), (-math.inf, "calm"))


def vix_band(vix: Any) -> str | None:
    """Return the band of a VIX level (``calm``, ``elevated``, ``high``, ``very high``;
    see :data:`VIX_BANDS`), or ``None`` when it is not a finite number."""
    try:
        v = float(vix)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(v):
        return None
    return next(name for bound, name in VIX_BANDS if v >= bound)


def market_state(market: Any) -> str:
    """Return the market state a decision saw: ``vix_<band>`` from its context's
    ``market.vix`` (``vix_calm``, ``vix_elevated``, ``vix_high``, ``vix_very_high``),
    or ``unknown``."""
    band = vix_band(market.get("vix")) if isinstance(market, dict) else None
    return f"vix_{band.replace(' ', '_')}" if band else "unknown"


def deployment_runs(conn: Any, deployment_id: str) -> list[str]:
    """Return a deployment's runs (sorted): its current run and every run that saved its
    engine state or recorded its approvals or agent decisions.

    Parameters
    ----------
    conn : sqlalchemy.engine.Connection
    deployment_id : str
    """
    found: set[str] = set()
    for t in (schema.engine_state, schema.approvals, schema.agent_decisions):
        found.update(r for (r,) in conn.execute(
            select(t.c.run_id).where(t.c.deployment_id == deployment_id).distinct())
            if r is not None)
    d = schema.deployments
    current = conn.execute(select(d.c.run_id).where(d.c.deployment_id == deployment_id)).scalar()
    if current:
        found.add(current)
    return sorted(found)


def _final_verdict(decision: dict[str, Any]) -> str | None:
    return decision["verdicts"][-1]["verdict"] if decision["verdicts"] else None


def _candidates(conn: Any, deployment_id: str) -> list[dict[str, Any]]:
    """The deployment's entry candidates (an ``entry_signal`` decision, or an entry
    action about a symbol) without an outcome yet, oldest first, each with its
    ``verdicts`` (``verdict`` only) and its context still as JSON text (parsed only for
    the outcomes written): the cost follows the decisions still open, not the history."""
    ad, o, v = schema.agent_decisions, schema.decision_outcomes, schema.governor_verdicts
    resolved = select(o.c.agent_decision_id).where(o.c.deployment_id == deployment_id)
    q = (select(ad.c.id, ad.c.run_id, ad.c.ts, ad.c.symbol, ad.c.decision_seq, ad.c.action,
                ad.c.event_kind, ad.c.context)
         .where(ad.c.deployment_id == deployment_id, ad.c.symbol.is_not(None),
                or_(ad.c.event_kind == "entry_signal", ad.c.action.in_(ENTRY_ACTIONS)),
                ad.c.id.not_in(resolved))
         .order_by(ad.c.ts, ad.c.id))
    rows = records._rows(conn, q)
    by_id = {r["id"]: r for r in rows}
    for r in rows:
        r["verdicts"] = []
    ids = list(by_id)
    for i in range(0, len(ids), 500):
        for did, verdict in conn.execute(select(v.c.agent_decision_id, v.c.verdict)
                                         .where(v.c.agent_decision_id.in_(ids[i:i + 500]))
                                         .order_by(v.c.id)):
            by_id[did]["verdicts"].append({"verdict": verdict})
    return rows


def _market(decision: dict[str, Any]) -> Any:
    """The ``market`` of a candidate's context (parsed here, once)."""
    ctx = records._parse(f"agent decision {decision['id']}: context", decision["context"], {})
    return ctx.get("market") if isinstance(ctx, dict) else None


def _insert(conn: Any, values: dict[str, Any]) -> bool:
    """Insert one outcome unless its (decision, kind, symbol) is there; whether it was."""
    o = schema.decision_outcomes
    if conn.execute(select(o.c.id).where(
            o.c.agent_decision_id == values["agent_decision_id"], o.c.kind == values["kind"],
            (o.c.symbol == values["symbol"]) if values["symbol"] is not None
            else o.c.symbol.is_(None))).first():
        return False
    try:
        with conn.begin_nested():
            conn.execute(o.insert().values(**values))
    except IntegrityError:          # another process recorded it in the meantime
        return False
    return True


def _plain(value: Any) -> str | None:
    """A Decimal as plain text without trailing zeros (``6.000`` -> ``6``; PostgreSQL
    returns the column's scale)."""
    if value is None:
        return None
    d = Decimal(value).normalize()
    return format(d, "f")


def _outcome_view(row: dict[str, Any]) -> dict[str, Any]:
    """What recall and the context show of an outcome."""
    return {"kind": row["kind"], "pnl": _plain(row.get("pnl")),
            "return_pct": row.get("return_pct"), "trade_id": row.get("trade_id"),
            "horizon_s": row.get("horizon_s"), "closed_ts": row.get("closed_ts")}


def record_outcomes(ledger: Ledger, deployment_id: str, *, now: Any,
                    horizon_s: int = DEFAULT_HORIZON_S) -> dict[str, int]:
    """Record the outcomes of a deployment's decisions that have one now (see the module
    docstring); the ones recorded before are left as they are.

    Parameters
    ----------
    ledger : Ledger
    deployment_id : str
    now : int
        The clock's time, UTC epoch seconds (the rows' ``ts``).
    horizon_s : int
        Seconds after a skipped decision its underlying's move is measured (> 0).

    Returns
    -------
    dict
        ``taken`` and ``skipped``: how many outcomes this call recorded.

    Raises
    ------
    LedgerError
        A bad ``now`` or ``horizon_s``, stored JSON that does not parse, or a ledger
        that cannot be read or written (what was committed before stays).
    """
    when = records._ts("outcome ts", now)
    if isinstance(horizon_s, bool) or not isinstance(horizon_s, int) or horizon_s <= 0:
        raise LedgerError(f"outcome horizon {horizon_s!r}: give whole seconds > 0")
    decisions = records._read(ledger, "the decisions without an outcome",
                              lambda conn: _candidates(conn, deployment_id))
    if not decisions:
        return {"taken": 0, "skipped": 0}
    o, tr, od, d, ap = (schema.decision_outcomes, schema.trades, schema.orders, schema.decisions,
                        schema.approvals)

    def gather(conn: Any) -> dict[str, Any]:
        runs = deployment_runs(conn, deployment_id)
        done = {(r.agent_decision_id, r.kind) for r in conn.execute(
            select(o.c.agent_decision_id, o.c.kind).where(o.c.deployment_id == deployment_id))}
        linked_trades = {r for (r,) in conn.execute(
            select(o.c.trade_id).where(o.c.deployment_id == deployment_id,
                                       o.c.kind == "taken"))}
        trades = [dict(r) for r in conn.execute(
            select(tr.c.run_id, tr.c.trade_id, tr.c.symbol, tr.c.entry_ts, tr.c.exit_ts,
                   tr.c.pnl, tr.c.return_pct, tr.c.entry_price, tr.c.exit_price, tr.c.quantity,
                   tr.c.exit_reason, tr.c.entry_order_id, tr.c.holding_seconds)
            .where(tr.c.run_id.in_(runs)).order_by(tr.c.exit_ts, tr.c.trade_id)).mappings()]
        entry_seq = {(r.run_id, r.client_order_id): r.decision_seq for r in conn.execute(
            select(od.c.run_id, od.c.client_order_id, od.c.decision_seq)
            .where(od.c.run_id.in_(runs), od.c.role == "entry"))}
        approvals = {(r.run_id, r.decision_seq): r.status for r in conn.execute(
            select(ap.c.run_id, ap.c.decision_seq, ap.c.status)
            .where(ap.c.deployment_id == deployment_id, ap.c.action == "enter_long"))}
        return {"runs": runs, "done": done, "linked": linked_trades, "trades": trades,
                "entry_seq": entry_seq, "approvals": approvals}

    seen = records._read(ledger, "the deployment's trades and orders", gather)
    by_seq = {(x["run_id"], x["decision_seq"]): x for x in decisions
              if x["decision_seq"] is not None}
    taken_ids = {i for i, kind in seen["done"] if kind == "taken"}
    opened_seqs = set(seen["entry_seq"].items())
    new_taken: list[dict[str, Any]] = []
    for trade in seen["trades"]:
        if trade["trade_id"] in seen["linked"]:
            continue
        dec = None
        for (run_id, coid), seq in seen["entry_seq"].items():
            if coid == trade["entry_order_id"] and (run_id, seq) in by_seq:
                dec = by_seq[(run_id, seq)]
                break
        if dec is None:             # approved in a later run, or no decision_seq recorded
            dec = next((x for x in reversed(decisions)
                        if x["symbol"] == trade["symbol"] and x["action"] == "EXECUTE_TRADES"
                        and x["ts"] <= trade["entry_ts"] and x["id"] not in taken_ids), None)
        if dec is None or dec["id"] in taken_ids:
            continue
        taken_ids.add(dec["id"])
        new_taken.append({
            "agent_decision_id": dec["id"], "deployment_id": deployment_id,
            "run_id": trade["run_id"], "symbol": trade["symbol"], "kind": "taken",
            "trade_id": trade["trade_id"], "opened_ts": trade["entry_ts"],
            "closed_ts": trade["exit_ts"], "horizon_s": None, "pnl": trade["pnl"],
            "return_pct": trade["return_pct"],
            "detail": records._json("outcome detail", {
                "action": dec["action"], "event_kind": dec["event_kind"],
                "verdict": _final_verdict(dec),
                "market_state": market_state(_market(dec)),
                "exit_reason": trade["exit_reason"], "entry_price": trade["entry_price"],
                "exit_price": trade["exit_price"], "quantity": trade["quantity"],
                "holding_seconds": trade["holding_seconds"]}),
            "ts": when, "created_at": utcnow_iso()})
    # skipped candidates: final, and no entry order from their bar
    ordered = {(run_id, seq) for (run_id, _coid), seq in opened_seqs}
    pending: list[tuple[dict[str, Any], str]] = []
    for dec in decisions:
        if not dec["symbol"] or dec["id"] in taken_ids or (dec["id"], "skipped") in seen["done"]:
            continue
        if dec["event_kind"] != "entry_signal" and dec["action"] not in ENTRY_ACTIONS:
            continue
        if (dec["run_id"], dec["decision_seq"]) in ordered:
            continue
        if dec["ts"] + horizon_s > when:
            continue                # its horizon has not passed on the clock yet
        verdict = _final_verdict(dec)
        if verdict in ("monitor", "refuse"):
            pending.append((dec, verdict))
        elif verdict == "queue":
            status = seen["approvals"].get((dec["run_id"], dec["decision_seq"]))
            if status in ("rejected", "expired"):
                pending.append((dec, f"queue, {status}"))

    def price_path(conn: Any, dec: dict[str, Any]) -> tuple[Any, Any] | None:
        p0 = None
        if dec["decision_seq"] is not None:
            p0 = conn.execute(select(d.c.ts, d.c.close).where(
                d.c.run_id == dec["run_id"], d.c.seq == dec["decision_seq"])).first()
        if p0 is None or p0.close is None:
            p0 = conn.execute(select(d.c.ts, d.c.close).where(
                d.c.run_id.in_(seen["runs"]), d.c.symbol == dec["symbol"],
                d.c.ts <= dec["ts"], d.c.close.is_not(None))
                .order_by(d.c.ts.desc()).limit(1)).first()
        if p0 is None or not p0.close:
            return None
        p1 = conn.execute(select(d.c.ts, d.c.close).where(
            d.c.run_id.in_(seen["runs"]), d.c.symbol == dec["symbol"],
            d.c.ts >= int(p0.ts) + horizon_s, d.c.close.is_not(None))
            .order_by(d.c.ts).limit(1)).first()
        return None if p1 is None else (p0, p1)

    def write(conn: Any) -> dict[str, int]:
        counts = {"taken": 0, "skipped": 0}
        written: list[dict[str, Any]] = []
        for values in new_taken:
            if _insert(conn, values):
                counts["taken"] += 1
                written.append(values)
        for dec, why in pending:
            path = price_path(conn, dec)
            if path is None:
                continue
            p0, p1 = path
            ret = (float(p1.close) / float(p0.close) - 1.0) * 100.0
            values = {
                "agent_decision_id": dec["id"], "deployment_id": deployment_id,
                "run_id": dec["run_id"], "symbol": dec["symbol"], "kind": "skipped",
                "trade_id": None, "opened_ts": int(p0.ts), "closed_ts": int(p1.ts),
                "horizon_s": horizon_s, "pnl": None, "return_pct": ret,
                "detail": records._json("outcome detail", {
                    "action": dec["action"], "event_kind": dec["event_kind"], "verdict": why,
                    "market_state": market_state(_market(dec)),
                    "p0": float(p0.close), "p1": float(p1.close)}),
                "ts": when, "created_at": utcnow_iso()}
            if _insert(conn, values):
                counts["skipped"] += 1
                written.append(values)
        e = schema.memory_embeddings
        for values in written:
            conn.execute(update(e).where(e.c.agent_decision_id == values["agent_decision_id"],
                                         e.c.kind == "decision")
                         .values(outcome=records._json("embedding outcome",
                                                       _outcome_view(values))))
        return counts

    return records._write(ledger, f"the outcomes of {deployment_id}", write)


def outcomes_by_decision(ledger: Ledger, decision_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Return the outcome of each decision that has one (``taken`` before ``skipped``),
    as :func:`recent_decisions` shows it.

    Raises
    ------
    LedgerError
        If the ledger cannot be read.
    """
    if not decision_ids:
        return {}
    o = schema.decision_outcomes
    out: dict[int, dict[str, Any]] = {}

    def work(conn: Any) -> None:
        for i in range(0, len(decision_ids), 500):
            q = (select(o).where(o.c.agent_decision_id.in_(decision_ids[i:i + 500]))
                 .order_by(o.c.kind.desc(), o.c.id))
            for r in records._rows(conn, q):
                out.setdefault(r["agent_decision_id"], _outcome_view(r))

    records._read(ledger, "decision outcomes", work)
    return out


def _first_sentence(text: Any) -> str:
    text = str(text or "").strip()
    for stop in (". ", "\n"):
        if stop in text:
            text = text.split(stop, 1)[0]
    return text.rstrip(".")


def recent_decisions(ledger: Ledger, deployment_id: str | None, *,
                     limit: int = 20) -> list[dict[str, Any]]:
    """Return a deployment's latest agent decisions, newest last, each with its verdict
    and its outcome.

    Parameters
    ----------
    ledger : Ledger
    deployment_id : str or None
        ``None``: every deployment's.
    limit : int
        How many (>= 1).

    Returns
    -------
    list of dict
        ``id``, ``ts`` (UTC epoch seconds), ``symbol``, ``event_kind``, ``action``,
        ``confidence``, ``reasoning`` (its first sentence), ``verdict`` (the governor's
        latest, or ``None``), ``outcome`` (``kind``, ``pnl`` in quote currency as text,
        ``return_pct``, ``trade_id``, ``horizon_s``, ``closed_ts``; ``None`` until
        known).

    Raises
    ------
    LedgerError
        A bad limit, or a ledger that cannot be read.
    """
    rows = records.agent_decisions(ledger, deployment_id=deployment_id, limit=limit)
    found = outcomes_by_decision(ledger, [r["id"] for r in rows])
    return [{"id": r["id"], "ts": r["ts"], "symbol": r["symbol"], "event_kind": r["event_kind"],
             "action": r["action"], "confidence": r["confidence"],
             "reasoning": _first_sentence(r["output"].get("reasoning")),
             "verdict": _final_verdict(r), "outcome": found.get(r["id"])} for r in rows]


def performance(ledger: Ledger, deployment_id: str, *, last_n: int = 20) -> dict[str, Any]:
    """Return the performance window: the deployment's last ``last_n`` closed trades.

    Parameters
    ----------
    ledger : Ledger
    deployment_id : str
    last_n : int
        Trades in the window (>= 1).

    Returns
    -------
    dict
        ``trades`` (how many), ``wins`` (``pnl > 0``), ``win_rate`` (0-1, ``None``
        without trades), ``pnl`` (quote currency, Decimal sum as text),
        ``mean_return_pct`` (mean of the trades' ``return_pct``), ``return_pct`` and
        ``max_drawdown_pct`` of the deployment's equity (``decisions.equity``, summed
        over the symbols' accounts per bar, each carried forward) from the window's
        first entry to its last bar (percent; drawdown <= 0), ``since_ts`` (UTC epoch
        seconds). Empty (``{"trades": 0}``) without trades.

    Raises
    ------
    LedgerError
        A bad ``last_n``, or a ledger that cannot be read.
    """
    if isinstance(last_n, bool) or not isinstance(last_n, int) or last_n < 1:
        raise LedgerError(f"performance window {last_n!r}: give at least 1 trade")
    tr, d = schema.trades, schema.decisions

    def work(conn: Any) -> dict[str, Any]:
        runs = deployment_runs(conn, deployment_id)
        if not runs:
            return {"trades": 0}
        rows = conn.execute(select(tr.c.pnl, tr.c.return_pct, tr.c.entry_ts, tr.c.exit_ts)
                            .where(tr.c.run_id.in_(runs))
                            .order_by(tr.c.exit_ts.desc(), tr.c.trade_id.desc())
                            .limit(last_n)).all()
        if not rows:
            return {"trades": 0}
        pnls = [Decimal(r.pnl) for r in rows]
        rets = [float(r.return_pct) for r in rows if r.return_pct is not None]
        since = min(int(r.entry_ts) for r in rows)
        curve = conn.execute(select(d.c.ts, d.c.symbol, d.c.equity)
                             .where(d.c.run_id.in_(runs), d.c.ts >= since,
                                    d.c.equity.is_not(None))
                             .order_by(d.c.ts, d.c.run_id, d.c.seq)).all()
        wins = sum(p > 0 for p in pnls)
        out: dict[str, Any] = {
            "trades": len(rows), "wins": wins, "win_rate": wins / len(rows),
            "pnl": _plain(sum(pnls, Decimal(0))),
            "mean_return_pct": sum(rets) / len(rets) if rets else None,
            "since_ts": since, "return_pct": None, "max_drawdown_pct": None}
        totals: list[float] = []
        last: dict[str, float] = {}
        prev_ts = None
        for ts, symbol, equity in curve:
            if prev_ts is not None and ts != prev_ts:
                totals.append(sum(last.values()))
            last[symbol] = float(equity)
            prev_ts = ts
        if last:
            totals.append(sum(last.values()))
        if len(totals) >= 2 and totals[0] > 0:
            peak, worst = totals[0], 0.0
            for v in totals:
                peak = max(peak, v)
                worst = min(worst, v / peak - 1.0)
            out["return_pct"] = (totals[-1] / totals[0] - 1.0) * 100.0
            out["max_drawdown_pct"] = worst * 100.0
        return out

    return records._read(ledger, "the performance window", work)


def patterns(ledger: Ledger, deployment_id: str | None, *, min_n: int = 1) -> list[dict[str, Any]]:
    """Return what the recorded outcomes show per outcome kind, action and market state.

    Parameters
    ----------
    ledger : Ledger
    deployment_id : str or None
        ``None``: every deployment's outcomes.
    min_n : int
        Leave out groups with fewer outcomes.

    Returns
    -------
    list of dict
        One per (``kind``, ``action``, ``market_state``), most outcomes first: ``n``,
        ``hit_rate`` (0-1: the share with ``return_pct > 0``; for ``taken`` a
        winning trade, for ``skipped`` a candidate that would have gained over the
        horizon), ``mean_return_pct``.

    Raises
    ------
    LedgerError
        Stored JSON that does not parse, or a ledger that cannot be read.
    """
    o = schema.decision_outcomes
    q = select(o.c.id, o.c.kind, o.c.return_pct, o.c.detail)
    if deployment_id is not None:
        q = q.where(o.c.deployment_id == deployment_id)
    rows = records._read(ledger, "decision outcomes", lambda conn: conn.execute(q).all())
    groups: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for r in rows:
        if r.return_pct is None:
            continue
        detail = records._parse(f"decision outcome {r.id}: detail", r.detail, {}) or {}
        groups[(r.kind, str(detail.get("action")), str(detail.get("market_state", "unknown")))
               ].append(float(r.return_pct))
    out = [{"kind": kind, "action": action, "market_state": state, "n": len(rets),
            "hit_rate": sum(x > 0 for x in rets) / len(rets),
            "mean_return_pct": sum(rets) / len(rets)}
           for (kind, action, state), rets in groups.items() if len(rets) >= min_n]
    out.sort(key=lambda p: (-p["n"], p["kind"], p["action"], p["market_state"]))
    return out


__all__ = [
    "DEFAULT_HORIZON_S",
    "ENTRY_ACTIONS",
    "VIX_BANDS",
    "deployment_runs",
    "market_state",
    "outcomes_by_decision",
    "patterns",
    "performance",
    "recent_decisions",
    "record_outcomes",
    "vix_band",
]
