"""Working memory that survives a crash, and the context parts drawn from the record.

:class:`WorkingMemory` keeps a small set of JSON values per scope (a deployment id, or
``*`` for the whole daemon) in the ledger's ``agent_memory`` table (migration 0008):

=======================  ==============================================================
key                      what it holds
=======================  ==============================================================
``strategy_state``       the strategy's name, parameters, timeframe and symbols
``open_experiments``     the experiments running for the scope (L3's ``experiments``)
``recent_decisions``     the latest agent decisions with their verdict and outcome
``market_context``       the last market picture a decision saw (VIX, its open, ...)
``performance_window``   return, drawdown and win rate over the latest closed trades
``anomalies``            the open anomaly flags
``autonomy_metrics``     the level, when and why it last changed, how many changes
=======================  ==============================================================

Every change is written through at once, one transaction per :meth:`WorkingMemory.set`
or :meth:`WorkingMemory.update` (the update reads the stored value inside that
transaction), so a process killed between two updates leaves exactly the updates it
committed. :meth:`WorkingMemory.load` reads the scope's rows back; when the scope has no
rows but the ledger holds its history (agent decisions, trades of its runs, anomalies,
autonomy changes), the memory is rebuilt from that history and written before it is
returned: it never starts empty when history exists.

:func:`build_context_extras` assembles what a
:class:`~tradewarden.agent.reasoning.ReasoningContext` takes from the record:
``recent_decisions`` (with outcomes), ``similar_past`` (semantic recall,
:mod:`tradewarden.agent.recall`), ``patterns`` and ``performance``
(:mod:`tradewarden.agent.outcomes`), and ``experiments`` and ``reflection`` through
the hooks given to it; it writes what it computed to the deployment's working memory.

Times named ``ts`` are UTC epoch seconds; ``updated_at`` is the wall clock (UTC ISO
text, bookkeeping). Database errors are raised as
:class:`~tradewarden.ledger.LedgerError` naming the memory key and the database.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import func, select, update

from tradewarden.agent import records
from tradewarden.ledger import Ledger, LedgerError, dumps, schema
from tradewarden.ledger.store import utcnow_iso

#: The working-memory keys (``agent_memory.key``).
MEMORY_KEYS = ("strategy_state", "open_experiments", "recent_decisions", "market_context",
               "performance_window", "anomalies", "autonomy_metrics")
#: The daemon-wide scope.
GLOBAL_SCOPE = "*"
#: Decisions kept under ``recent_decisions``.
RECENT_DECISIONS = 20
#: Closed trades in the ``performance_window``.
PERFORMANCE_TRADES = 20


def _check_scope(scope: Any) -> str:
    if not isinstance(scope, str) or not 1 <= len(scope) <= 32:
        raise LedgerError(f"memory scope {scope!r}: give a deployment id or '*' (1-32 characters)")
    return scope


def _check_key(key: Any) -> str:
    if key not in MEMORY_KEYS:
        raise LedgerError(f"memory key {key!r}: use one of {', '.join(MEMORY_KEYS)}")
    return key


def _roundtrip(key: str, value: Any) -> tuple[str, Any]:
    """The JSON text of ``value`` (the ledger's :func:`dumps`) and the value as read back."""
    try:
        text = dumps(value)
    except (TypeError, ValueError) as exc:
        raise LedgerError(f"memory {key}: not JSON-serialisable ({exc})") from None
    return text, json.loads(text)


class WorkingMemory:
    """Keep the reasoning layer's working memory of one scope, written through to the ledger.

    Build it with :meth:`load` (which rebuilds an empty memory from the record); the
    constructor alone starts from nothing and reads nothing.

    Parameters
    ----------
    ledger : Ledger
    scope : str
        A deployment id, or ``*`` for the whole daemon (1-32 characters).

    Raises
    ------
    LedgerError
        A bad scope.
    """

    def __init__(self, ledger: Ledger, scope: str) -> None:
        self.ledger = ledger
        self.scope = _check_scope(scope)
        self._values: dict[str, Any] = {}
        self._ts: dict[str, int] = {}
        #: Whether :meth:`load` rebuilt the memory from the ledger's history.
        self.rebuilt = False

    # -- reading ------------------------------------------------------------------------
    @classmethod
    def load(cls, ledger: Ledger, scope: str, *, now: Any) -> WorkingMemory:
        """Read a scope's memory from the ledger; rebuild it from history when empty.

        Parameters
        ----------
        ledger : Ledger
        scope : str
            A deployment id or ``*``.
        now : int
            The clock's time, UTC epoch seconds: the ``ts`` of rebuilt values.

        Returns
        -------
        WorkingMemory
            With every stored key of :data:`MEMORY_KEYS` (other keys of the scope, such
            as the experiments' ``parameters``, are their writers'); ``rebuilt`` is true
            when the scope had none of them and was rebuilt from its agent decisions,
            trades, anomalies and autonomy changes (then every key is written, in one
            transaction). A scope without them or history stays empty.

        Raises
        ------
        LedgerError
            A bad scope or ``now``, stored JSON that does not parse, or a ledger that
            cannot be read or written.
        """
        mem = cls(ledger, scope)
        when = records._ts("memory ts", now)
        t = schema.agent_memory
        rows = records._read(ledger, f"working memory {scope}", lambda conn: conn.execute(
            select(t.c.key, t.c.value, t.c.ts).where(t.c.scope == scope,
                                                    t.c.key.in_(MEMORY_KEYS))).all())
        for key, value, ts in rows:
            mem._values[key] = records._parse(f"working memory {scope}/{key}", value, None)
            mem._ts[key] = int(ts)
        if not rows and has_history(ledger, scope):
            mem._write_all(rebuild_values(ledger, scope), when)
            mem.rebuilt = True
        return mem

    def get(self, key: str, default: Any = None) -> Any:
        """Return a copy of the value under ``key`` (``default`` when unset).

        Raises
        ------
        LedgerError
            An unknown key.
        """
        _check_key(key)
        return copy.deepcopy(self._values[key]) if key in self._values else default

    def as_dict(self) -> dict[str, Any]:
        """Return a copy of every key's value (only the keys that are set)."""
        return copy.deepcopy(self._values)

    def updated_ts(self, key: str) -> int | None:
        """Return when ``key`` was last written (UTC epoch seconds), or ``None``."""
        return self._ts.get(_check_key(key))

    # -- writing ------------------------------------------------------------------------
    @staticmethod
    def _upsert(conn: Any, scope: str, key: str, text: str, when: int) -> None:
        t = schema.agent_memory
        values = {"value": text, "ts": when, "updated_at": utcnow_iso()}
        if conn.execute(update(t).where(t.c.scope == scope, t.c.key == key)
                        .values(**values)).rowcount == 0:
            conn.execute(t.insert().values(scope=scope, key=key, **values))

    def set(self, key: str, value: Any, *, ts: Any) -> Any:
        """Store ``value`` under ``key``, committed before this returns.

        Parameters
        ----------
        key : str
            One of :data:`MEMORY_KEYS`.
        value : JSON-serialisable
            Decimal is stored as text, non-finite floats as null (the ledger's
            :func:`~tradewarden.ledger.dumps`).
        ts : int
            The clock's time, UTC epoch seconds.

        Returns
        -------
        object
            The value as stored (as :meth:`get` and a later :meth:`load` return it).

        Raises
        ------
        LedgerError
            An unknown key, a value that is not JSON, a bad ``ts``, or a row that
            cannot be written (the memory in this process is unchanged then).
        """
        _check_key(key)
        when = records._ts("memory ts", ts)
        text, stored = _roundtrip(key, value)
        records._write(self.ledger, f"working memory {self.scope}/{key}",
                       lambda conn: self._upsert(conn, self.scope, key, text, when))
        self._values[key], self._ts[key] = stored, when
        return copy.deepcopy(stored)

    def update(self, key: str, change: Mapping[str, Any] | Callable[[Any], Any], *,
               ts: Any) -> Any:
        """Change the value under ``key`` in one transaction, and return the new value.

        Parameters
        ----------
        key : str
            One of :data:`MEMORY_KEYS`.
        change : mapping or callable
            A mapping is merged into the stored object (``{}`` when unset; a stored
            value that is not an object is refused); a callable gets the stored value
            (``None`` when unset; a copy) and returns the new one. The stored value is
            read inside the transaction that writes the new one, so another process's
            committed change is not lost.
        ts : int
            The clock's time, UTC epoch seconds.

        Returns
        -------
        object
            The new value as stored.

        Raises
        ------
        LedgerError
            An unknown key, a mapping merged into a non-object value, a new value that
            is not JSON, a bad ``ts``, or a ledger that cannot be read or written.
        """
        _check_key(key)
        when = records._ts("memory ts", ts)
        t = schema.agent_memory
        label = f"working memory {self.scope}/{key}"

        def work(conn: Any) -> Any:
            q = select(t.c.value).where(t.c.scope == self.scope, t.c.key == key)
            if conn.dialect.name == "postgresql":
                q = q.with_for_update()
            row = conn.execute(q).first()
            old = records._parse(label, row[0] if row else None, None)
            if callable(change):
                new = change(old)
            elif isinstance(change, Mapping):
                if old is not None and not isinstance(old, dict):
                    raise LedgerError(f"{label}: cannot merge a mapping into {type(old).__name__}")
                new = {**(old or {}), **change}
            else:
                raise LedgerError(f"{label}: give a mapping or a callable, not {change!r}")
            text, stored = _roundtrip(key, new)
            self._upsert(conn, self.scope, key, text, when)
            return stored

        stored = records._write(self.ledger, label, work)
        self._values[key], self._ts[key] = stored, when
        return copy.deepcopy(stored)

    def _write_all(self, values: Mapping[str, Any], when: int) -> None:
        texts = {k: _roundtrip(k, v) for k, v in values.items()}

        def work(conn: Any) -> None:
            for k, (text, _stored) in texts.items():
                self._upsert(conn, self.scope, k, text, when)

        records._write(self.ledger, f"working memory {self.scope}", work)
        for k, (_text, stored) in texts.items():
            self._values[k], self._ts[k] = stored, when

    def refresh(self, values: Mapping[str, Any], *, ts: Any) -> list[str]:
        """Write the keys of ``values`` whose value differs from the stored one (one
        transaction for all of them).

        Parameters
        ----------
        values : mapping
            Key (one of :data:`MEMORY_KEYS`) to value.
        ts : int
            UTC epoch seconds.

        Returns
        -------
        list of str
            The keys written.

        Raises
        ------
        LedgerError
            An unknown key, a value that is not JSON, or a ledger that cannot be
            written.
        """
        when = records._ts("memory ts", ts)
        changed = {}
        for k, v in values.items():
            _check_key(k)
            _text, stored = _roundtrip(k, v)
            if k not in self._values or self._values[k] != stored:
                changed[k] = v
        if changed:
            self._write_all(changed, when)
        return sorted(changed)


# -- rebuilding from history --------------------------------------------------------------
def has_history(ledger: Ledger, scope: str) -> bool:
    """Return whether the ledger holds a scope's history: agent decisions, trades of its
    runs, anomalies or autonomy changes (any deployment's for ``*``).

    Raises
    ------
    LedgerError
        If the ledger cannot be read.
    """
    from tradewarden.agent.outcomes import deployment_runs
    ad, an, ch, tr = (schema.agent_decisions, schema.anomalies, schema.autonomy_changes,
                      schema.trades)

    def work(conn: Any) -> bool:
        mine = (lambda col: col.is_not(None)) if scope == GLOBAL_SCOPE else (
            lambda col: col == scope)
        for t in (ad, an, ch):
            if conn.execute(select(t.c.id).where(mine(t.c.deployment_id)).limit(1)).first():
                return True
        if scope == GLOBAL_SCOPE:
            return False
        runs = deployment_runs(conn, scope)
        return bool(runs) and conn.execute(
            select(func.count()).select_from(tr).where(tr.c.run_id.in_(runs))).scalar() > 0

    return records._read(ledger, f"the history of {scope}", work)


def _strategy_state(ledger: Ledger, scope: str) -> dict[str, Any]:
    """The latest run of the deployment: strategy, parameters, timeframe, symbols."""
    from tradewarden.agent.outcomes import deployment_runs
    r = schema.runs

    def work(conn: Any) -> dict[str, Any]:
        runs = deployment_runs(conn, scope) if scope != GLOBAL_SCOPE else []
        if not runs:
            return {}
        row = conn.execute(select(r.c.run_id, r.c.strategy, r.c.timeframe, r.c.symbols, r.c.config)
                           .where(r.c.run_id.in_(runs)).order_by(r.c.started_at.desc())
                           .limit(1)).mappings().first()
        if row is None:
            return {}
        config = records._parse(f"run {row['run_id']}: config", row["config"], {})
        return {"strategy": row["strategy"], "timeframe": row["timeframe"],
                "symbols": records._parse(f"run {row['run_id']}: symbols", row["symbols"], []),
                "params": (config.get("params") or {}) if isinstance(config, dict) else {},
                "run_id": row["run_id"]}

    return records._read(ledger, "the deployment's strategy", work)


def _open_experiments(ledger: Ledger, scope: str) -> list[dict[str, Any]]:
    e = schema.experiments
    q = (select(e.c.id, e.c.name, e.c.parameter, e.c.control, e.c.variant, e.c.mode,
                e.c.allocation, e.c.status, e.c.started_ts)
         .where(e.c.scope.in_((scope, GLOBAL_SCOPE)), e.c.status.in_(("proposed", "running")))
         .order_by(e.c.id))
    rows = records._read(ledger, "the open experiments", lambda conn: records._rows(conn, q))
    for row in rows:
        for k in ("control", "variant"):
            row[k] = records._parse(f"experiment {row['id']}: {k}", row[k], None)
    return rows


def _autonomy_metrics(ledger: Ledger, scope: str) -> dict[str, Any]:
    if scope == GLOBAL_SCOPE:
        return {}
    changes = records.autonomy_changes(ledger, scope)
    if not changes:
        return {}
    last = changes[-1]
    return {"level": last["to_level"], "changes": len(changes),
            "promotions": sum(c["kind"] == "promotion" for c in changes),
            "demotions": sum(c["kind"] == "demotion" for c in changes),
            "last_change": {"kind": last["kind"], "ts": last["ts"], "reason": last["reason"],
                            "actor": last["actor"], "from_level": last["from_level"]}}


def rebuild_values(ledger: Ledger, scope: str, *, recent: int = RECENT_DECISIONS,
                   trades: int = PERFORMANCE_TRADES) -> dict[str, Any]:
    """Return every working-memory key of a scope as the ledger's history gives it.

    Parameters
    ----------
    ledger : Ledger
    scope : str
        A deployment id or ``*``.
    recent : int
        Decisions under ``recent_decisions``.
    trades : int
        Closed trades in ``performance_window``.

    Returns
    -------
    dict
        ``strategy_state`` (the latest run's strategy, parameters, timeframe,
        symbols), ``open_experiments`` (proposed or running experiments of the scope
        or ``*``), ``recent_decisions`` (:func:`tradewarden.agent.outcomes.recent_decisions`),
        ``market_context`` (the latest decision's ``market``), ``performance_window``
        (:func:`tradewarden.agent.outcomes.performance`), ``anomalies`` (open flags),
        ``autonomy_metrics`` (level and its changes).

    Raises
    ------
    LedgerError
        Stored JSON that does not parse, or a ledger that cannot be read.
    """
    from tradewarden.agent import outcomes
    dep = None if scope == GLOBAL_SCOPE else scope
    decisions = outcomes.recent_decisions(ledger, dep, limit=recent)
    market: dict[str, Any] = {}
    last = records.agent_decisions(ledger, deployment_id=dep, limit=1)
    if last:
        market = dict(last[-1]["context"].get("market") or {})
    flags = [{"id": a["id"], "kind": a["kind"], "symbol": a["symbol"],
              "opened_ts": a["opened_ts"], "deployment_id": a["deployment_id"]}
             for a in records.anomalies(ledger, deployment_id=dep)]
    return {"strategy_state": _strategy_state(ledger, scope),
            "open_experiments": _open_experiments(ledger, scope),
            "recent_decisions": decisions,
            "market_context": market,
            "performance_window": (outcomes.performance(ledger, dep, last_n=trades)
                                   if dep is not None else {}),
            "anomalies": flags,
            "autonomy_metrics": _autonomy_metrics(ledger, scope)}


# -- the context --------------------------------------------------------------------------
def build_context_extras(ledger: Ledger, deployment_id: str, *, query: str | None, k: int = 5,
                         now: Any, symbol: str | None = None, recall: Any = None,
                         memory: WorkingMemory | None = None,
                         experiments: Callable[..., Any] | None = None,
                         reflection: Callable[..., Any] | None = None,
                         market: Mapping[str, Any] | None = None,
                         recent: int = RECENT_DECISIONS,
                         trades: int = PERFORMANCE_TRADES,
                         persist: bool = True) -> dict[str, Any]:
    """Return the parts of a reasoning context drawn from the record, and write them to
    the deployment's working memory.

    Parameters
    ----------
    ledger : Ledger
    deployment_id : str
    query : str or None
        What to recall similar past contexts for (an event's description); ``None``
        or empty: no recall.
    k : int
        Similar past contexts to return (>= 1).
    now : int
        The clock's time, UTC epoch seconds.
    symbol : str, optional
        Recall only this symbol's past decisions.
    recall : tradewarden.agent.recall.SemanticRecall, optional
        The recall to search (default: one over ``ledger`` with the default embedder,
        built once per process).
    memory : WorkingMemory, optional
        The deployment's working memory to write through (default: loaded here).
    experiments : callable, optional
        ``experiments(ledger, deployment_id, now=now, symbol=symbol) -> list of dict``:
        the active experiments and the arm this decision falls in (L3's
        :mod:`tradewarden.agent.experiments`); default: none.
    reflection : callable, optional
        ``reflection(ledger, deployment_id, now=now) -> dict``: the latest end-of-day
        reflection (L3's :mod:`tradewarden.agent.reflection`); default: none.
    market : mapping, optional
        The market picture of the moment, kept as the memory's ``market_context``.
    recent, trades : int
        Decisions in ``recent_decisions``; closed trades in ``performance``.
    persist : bool
        Record what is due first (the deployment's new outcomes,
        :func:`~tradewarden.agent.outcomes.record_outcomes`, and the embeddings of
        decisions not embedded yet) and write the memory's ``recent_decisions``,
        ``performance_window``, ``anomalies``, ``autonomy_metrics`` and
        ``market_context`` (only the keys that changed, one transaction). ``False``
        (a reading command): read only.

    Returns
    -------
    dict
        ``recent_decisions`` (newest last, each with ``verdict`` and ``outcome``),
        ``similar_past`` (each with ``summary``, ``action``, ``outcome``,
        ``similarity``), ``patterns`` (per action and market state: ``n``, ``hit_rate``,
        ``mean_return_pct``), ``performance`` (``return_pct``, ``max_drawdown_pct``,
        ``win_rate`` over the last ``trades`` trades), ``experiments``, ``reflection``:
        the keyword arguments of :class:`~tradewarden.agent.reasoning.ReasoningContext`.

    Raises
    ------
    LedgerError
        A bad argument, or a ledger that cannot be read or written.
    """
    from tradewarden.agent import outcomes
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise LedgerError(f"recall k {k!r}: give at least 1")
    when = records._ts("context ts", now)
    if persist:
        outcomes.record_outcomes(ledger, deployment_id, now=when)
    decisions = outcomes.recent_decisions(ledger, deployment_id, limit=recent)
    perf = outcomes.performance(ledger, deployment_id, last_n=trades)
    pats = outcomes.patterns(ledger, deployment_id)
    similar: list[dict[str, Any]] = []
    if query:
        if recall is None:
            from tradewarden.agent.recall import SemanticRecall
            recall = SemanticRecall(ledger)
        if persist:
            recall.index(deployment_id=deployment_id)
        similar = recall.retrieve_similar_context(query, k, deployment_id=deployment_id,
                                                  symbol=symbol)
    active = list(experiments(ledger, deployment_id, now=when, symbol=symbol)) if experiments \
        else []
    latest = dict(reflection(ledger, deployment_id, now=when) or {}) if reflection else {}
    if persist:
        mem = memory if memory is not None else WorkingMemory.load(ledger, deployment_id,
                                                                   now=when)
        values = {"recent_decisions": decisions, "performance_window": perf,
                  "anomalies": [{"id": a["id"], "kind": a["kind"], "symbol": a["symbol"],
                                 "opened_ts": a["opened_ts"],
                                 "deployment_id": a["deployment_id"]}
                                for a in records.anomalies(ledger, deployment_id=deployment_id)],
                  "autonomy_metrics": _autonomy_metrics(ledger, deployment_id)}
        if market is not None:
            values["market_context"] = dict(market)
        mem.refresh(values, ts=when)
    return {"recent_decisions": decisions, "similar_past": similar, "patterns": pats,
            "performance": perf, "experiments": active, "reflection": latest}


__all__ = ["GLOBAL_SCOPE", "MEMORY_KEYS", "PERFORMANCE_TRADES", "RECENT_DECISIONS",
           "WorkingMemory", "build_context_extras", "has_history", "rebuild_values"]
