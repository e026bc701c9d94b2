"""The graduated-autonomy governor: a deployment acts only within the autonomy it has earned.

:class:`AutonomyGovernor` is the engine's governor (``authorize(symbol, action, detail)``,
see :mod:`tradewarden.agent.governor`). For every risk-approved entry or exit it builds a
:class:`~tradewarden.agent.reasoning.ReasoningEvent` and a
:class:`~tradewarden.agent.reasoning.ReasoningContext`, asks its reasoner, records the
decision with that context (committed before anything else happens), applies the level
rules and the mandatory-human triggers (:func:`gate`), records the verdict apart from the
reasoning, and answers execute, queue (a person decides through the approvals inbox) or
monitor.

The levels (issue 12, "Deciding, and the gates")
-----------------------------------------------
==  ==================  ======================================================
L1  recommend only      everything queued for a person
L2  supervised          queue entries over 1x the recent average notional, new
                        symbols, all exits
L3  semi-autonomous     queue entries over 2x the recent average notional and
                        decisions about an anomaly event
L4  autonomous          only anomaly flags (a mandatory trigger at every level)
==  ==================  ======================================================

The *recent average notional* is the mean quote-currency notional (filled quantity x
fill price, summed per order) of the deployment's last ``recent_window`` entry orders.

Mandatory human triggers (any level)
------------------------------------
While one is active only ``MONITOR_ONLY`` (verdict monitor) or ``REQUEST_HUMAN_REVIEW``
(verdict queue) pass; any other action is queued for a person.

=====================  ==========  ==================================================
trigger                applies to  active when
=====================  ==========  ==================================================
``first_trade``        entries     the deployment never filled an entry in the symbol
``size``               entries     notional >= ``human_size_multiple`` (3) x the
                                   recent average
``sector_losses``      entries     the last ``sector_losses`` (3) closed trades in the
                                   symbol's sector (``sectors``; default: the symbol
                                   itself) all lost (``pnl < 0``)
``margin``             entries     the context's ``account.margin_utilisation`` (0-1)
                                   > ``margin_limit`` (0.40)
``anomaly_flag``       both        an anomaly of the deployment (or of no
                                   deployment) is open
``vix_spike``          both        market ``vix`` / ``vix_open`` - 1 >= ``vix_jump``
                                   (0.30): VIX up 30 % since the session's open
``data_gap``           both        in market hours, now - market ``last_data_ts``
                                   >= ``data_gap_seconds`` (1800)
``regime_unseen``      both        see below
``low_confidence``     both        the decision's confidence < ``min_confidence`` (0.4)
``fill_failures``      both        the deployment's last ``fill_failures`` (3) settled
                                   entry/exit orders were all rejected
=====================  ==========  ==================================================

*Regime never seen*: the realised volatility of the symbol (sample standard deviation
of the log returns of its last ``regime_window`` (20) recorded closes in this run) lies
outside ``[min, max]`` of the same statistic over every earlier ``regime_window``-bar
window of that symbol in the ledger's runs of the same strategy and timeframe (replays
included: the strategy's history). Not judged (inactive) with fewer than
``regime_min_windows`` (30) earlier windows or an incomplete current window: a new
symbol is covered by ``first_trade``.

``vix_spike`` and ``data_gap`` need the ``market`` callable (the daemon supplies VIX and
the last data time); ``margin`` needs the context's account figure.

Promotion and demotion
----------------------
:meth:`AutonomyGovernor.review` (the daemon calls it, e.g. daily): L1 -> L2 after
``promote_l2_days`` (30) trading days since the last level change and the last manual
override, with at least ``promote_min_trades`` (10) trades closed since the change and a
win rate (``pnl > 0``) >= ``promote_l2_win_rate`` (0.70); L2 -> L3 after
``promote_l3_days`` (60) more trading days with the annualised Sharpe ratio of the
daily equity returns since the change > ``promote_l3_sharpe`` (1.5; empyrical's
definition, computed by :func:`tradewarden.analytics.ratios.sharpe_ratio`); L4 only by
:meth:`~AutonomyGovernor.set_level`. Trading days: whole calendar days (24/7 markets),
or the sessions of ``calendar`` (an exchange-calendars code such as ``XNYS``).
Demotion by one level, at once (checked before each bar's first decision, and by
``review``): a manual override (a person's
``reject``, ``close``, ``flatten`` or ``kill`` command, actor not a system actor),
``demote_losses`` (3) losses among the last ``demote_loss_window`` (5) trades closed
since the level changed, or an anomaly opened since the level changed.

The level is read from the ledger (``autonomy_changes``) on every decision, so ``warden
daemon set-autonomy`` from another process takes effect at the next decision.

Actions and verdicts (:func:`gate`)
-----------------------------------
With a trigger active, anything but ``MONITOR_ONLY`` / ``REQUEST_HUMAN_REVIEW`` is
queued. Otherwise ``MONITOR_ONLY``, ``SKIP_SESSION``, ``STAGE_CANDIDATES`` and
``PROPOSE_EXPERIMENT`` are monitored (they trade nothing now); ``REQUEST_HUMAN_REVIEW``
and ``EMERGENCY_HALT`` are queued (a person decides); an action that does not match the
engine's intent (``CLOSE_POSITION`` for an entry, ``EXECUTE_TRADES`` for an exit) is
refused (recorded ``refuse``, answered monitor); ``EXECUTE_TRADES`` for an entry and
``CLOSE_POSITION`` for an exit meet the level rules. A reasoner that raises is recorded
as a ``REQUEST_HUMAN_REVIEW`` of confidence 0.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

import numpy as np
from sqlalchemy import and_, bindparam, func, or_, select

from tradewarden.agent import records
from tradewarden.agent.autonomy_settings import AutonomySettings
from tradewarden.agent.governor import Authorization
from tradewarden.agent.reasoning import (
    SAFE_ACTIONS,
    Action,
    DecisionOutput,
    ReasoningContext,
    ReasoningEngine,
    ReasoningEvent,
    RulesReasoner,
)
from tradewarden.domain import Verdict
from tradewarden.ledger import Ledger, LedgerError, schema

DAY = 86_400
#: The actor recorded for the governor's own level changes.
GOVERNOR_ACTOR = "governor"
_VERDICT = {"execute": Verdict.EXECUTE, "queue": Verdict.QUEUE, "monitor": Verdict.MONITOR,
            "refuse": Verdict.MONITOR}


class Trigger(NamedTuple):
    """An active mandatory-human trigger: its name and the figures that raised it."""

    name: str
    detail: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """Return ``{"trigger": name, **detail}`` (how verdicts record it)."""
        return {"trigger": self.name, **self.detail}


def gate(level: int, intent: str, decision: DecisionOutput, triggers: list[Trigger], *,
         notional: float | None, average: float | None, new_symbol: bool,
         anomaly_event: bool, settings: AutonomySettings) -> tuple[str, str]:
    """Apply the mandatory triggers and the level rules to a decision.

    Parameters
    ----------
    level : int
        The autonomy level, 1-4.
    intent : {"enter_long", "exit"}
        What the engine asks to do.
    decision : DecisionOutput
        The reasoner's decision.
    triggers : list of Trigger
        The active mandatory-human triggers.
    notional : float or None
        The entry's notional, quote currency (``None`` for exits or when unknown).
    average : float or None
        The recent average entry notional, quote currency (``None``: no entries yet).
    new_symbol : bool
        The deployment never traded the symbol.
    anomaly_event : bool
        The decision is about an anomaly event.
    settings : AutonomySettings

    Returns
    -------
    tuple of (str, str)
        The verdict (``execute``, ``queue``, ``monitor`` or ``refuse``) and its reason.
    """
    action = decision.action
    if triggers and action not in SAFE_ACTIONS:
        return "queue", "a person must decide: " + ", ".join(t.name for t in triggers)
    if action == Action.MONITOR_ONLY:
        return "monitor", "the decision is to monitor only"
    if action in (Action.REQUEST_HUMAN_REVIEW, Action.EMERGENCY_HALT):
        return "queue", f"{action.value}: {decision.escalation_reason or decision.reasoning}"
    expected = Action.EXECUTE_TRADES if intent == "enter_long" else Action.CLOSE_POSITION
    if action in (Action.SKIP_SESSION, Action.STAGE_CANDIDATES, Action.PROPOSE_EXPERIMENT):
        return "monitor", f"{action.value} trades nothing now"
    if action != expected:
        return "refuse", f"{action.value} does not match the engine's {intent}"
    ratio = (notional / average if notional is not None and average is not None and average > 0
             else None)
    if level == 1:
        return "queue", "L1 recommend only: a person decides"
    if level in (2, 3) and intent == "enter_long" and notional is None and average is not None:
        return "queue", f"L{level}: the entry's size is unknown (no price), a person decides"
    if level == 2:
        if intent == "exit":
            return "queue", "L2 supervised: exits need a person"
        if new_symbol:
            return "queue", "L2 supervised: a new symbol"
        if ratio is not None and ratio > settings.l2_size_multiple:
            return "queue", (f"L2 supervised: {ratio:.2f}x the recent average size "
                             f"(over {settings.l2_size_multiple:g}x)")
    if level == 3:
        if anomaly_event:
            return "queue", "L3 semi-autonomous: an anomaly-triggered decision"
        if intent == "enter_long" and ratio is not None and ratio > settings.l3_size_multiple:
            return "queue", (f"L3 semi-autonomous: {ratio:.2f}x the recent average size "
                             f"(over {settings.l3_size_multiple:g}x)")
    return "execute", f"L{level}: within the autonomy earned"


def _decimal(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() else None


def _epoch(iso: str | None) -> int | None:
    if not iso:
        return None
    return int(datetime.fromisoformat(iso).timestamp())


_calendars: dict[str, Any] = {}


@contextmanager
def _quiet_calendar() -> Iterator[None]:
    """Hide exchange_calendars' pandas-3 notice about tz-aware ``.values`` (the values it
    reads are still UTC; as in :mod:`tradewarden.data.calendars`)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*\.values returning an ndarray")
        yield


def _exchange_calendar(code: str) -> Any:
    """The exchange-calendars calendar ``code``, built once per process."""
    cal = _calendars.get(code)
    if cal is None:
        import exchange_calendars as xcals
        with _quiet_calendar():
            cal = _calendars[code] = xcals.get_calendar(code)
    return cal


def _rolling_vol(closes: np.ndarray, window: int) -> np.ndarray:
    """Sample std (ddof=1) of log returns over each run of ``window`` returns in
    ``closes`` (shape (n,)); shape (max(n - window, 0),)."""
    if closes.shape[0] <= window:
        return np.empty(0)
    r = np.diff(np.log(closes))
    windows = np.lib.stride_tricks.sliding_window_view(r, window)
    return windows.std(axis=1, ddof=1)


class _Bar(NamedTuple):
    """The deployment's figures read from the ledger once per bar."""

    at: float
    entries: list[tuple[str, Decimal]]   # (symbol, quote notional) of the last entry orders, newest last
    traded: frozenset[str]
    trades: list[tuple[str, float]]      # (symbol, pnl) of the latest closed trades, newest first
    fill_failures: int
    recent: list[dict[str, Any]]


def engine_context(engine: Any) -> dict[str, Any]:
    """Return what a reasoner should see of a running engine: its open positions and
    accounts (the ``context`` callable of :class:`AutonomyGovernor`).

    Parameters
    ----------
    engine : tradewarden.engine.TradingEngine

    Returns
    -------
    dict
        ``positions``: one dict per open position (``symbol``, ``position_id`` (the
        symbol: one position per symbol), ``quantity`` in base units, ``entry_price``,
        ``stop_loss``, ``take_profit`` in quote currency, ``entry_ts`` UTC epoch
        seconds; Decimal values); ``account``: ``cash`` and ``equity`` per account name
        (quote currency), ``open_positions``, ``paused``.
    """
    positions = []
    for sym in engine.syms:
        pos = sym.position
        if pos is not None:
            positions.append({"symbol": pos.symbol, "position_id": pos.symbol,
                              "quantity": pos.quantity, "entry_price": pos.entry_price,
                              "entry_ts": pos.entry_ts, "stop_loss": pos.stop_loss,
                              "take_profit": pos.take_profit})
    accounts = {a.name: {"cash": a.cash, "equity": engine.equity(i)}
                for i, a in enumerate(engine.accounts)}
    return {"positions": positions,
            "account": {"accounts": accounts, "open_positions": engine.open_positions(),
                        "paused": engine.paused}}


class AutonomyGovernor:
    """Gate a deployment's entries and exits by its earned autonomy level (see the module
    docstring for the levels, the mandatory triggers and promotion).

    Parameters
    ----------
    ledger : Ledger
        The deployment's ledger: levels, anomalies, fills, trades, orders and commands
        are read from it; decisions, verdicts and level changes written to it.
    deployment_id : str
    run_id : str
        The current run (its decisions give the regime's recent closes).
    clock : Clock
        ``now()`` in UTC epoch seconds (the engine's clock).
    settings : AutonomySettings, optional
    reasoner : ReasoningEngine, optional
        Default :class:`~tradewarden.agent.reasoning.RulesReasoner`.
    context : callable, optional
        ``context() -> mapping`` with any of ``positions``, ``account``,
        ``candidates``, ``strategy_state`` (what the reasoner should see).
    market : callable, optional
        ``market() -> mapping`` with any of ``vix``, ``vix_open`` (VIX now and at the
        session's open), ``last_data_ts`` (UTC epoch seconds of the newest market data),
        ``market_open`` (bool; default from ``settings.calendar``).

    Raises
    ------
    tradewarden.ledger.LedgerError
        If the ledger cannot be read or the initial level cannot be recorded.

    Notes
    -----
    Per decision: the level and the open anomalies (two indexed queries on one
    connection) and two committed inserts (the decision, then the verdict). Once per bar
    (reused for ``settings.cache_seconds`` of clock time): a due demotion, the recent
    entries, traded symbols, latest trades, latest order outcomes and agent decisions
    (one connection), and per symbol its recent closes; the strategy's volatility
    history once per symbol and UTC day. The SQL is built once, at construction, as are
    the deployment's runs (a new run gets a new governor). The engine buffers its own
    rows until it flushes, so the :meth:`Ledger.drain` before each write commits nothing
    of a bar in progress.
    """

    name = "autonomy"
    #: Ask the engine for the bar's close (``price``), open time (``ts``) and decision
    #: number (``decision_seq``) in ``detail``, and for an exit's signal and quantity.
    bar_context = True

    def __init__(self, ledger: Ledger, deployment_id: str, run_id: str, clock: Any,
                 settings: AutonomySettings | None = None, reasoner: ReasoningEngine | None = None,
                 context: Callable[[], Mapping[str, Any]] | None = None,
                 market: Callable[[], Mapping[str, Any]] | None = None) -> None:
        self.ledger = ledger
        self.deployment_id = deployment_id
        self.run_id = run_id
        self.clock = clock
        self.settings = settings or AutonomySettings()
        self.reasoner = reasoner or RulesReasoner()
        self._context = context
        self._market = market
        self._bar: _Bar | None = None
        self._floors: tuple[int, int, int] | None = None   # (change id, command id, anomaly id)
        self._regime_history: dict[str, tuple[int, tuple[np.ndarray, np.ndarray]]] = {}
        run = records._read(ledger, "the run", lambda conn: conn.execute(
            select(schema.runs.c.strategy, schema.runs.c.timeframe, schema.runs.c.capital_mode,
                   schema.runs.c.initial_capital).where(schema.runs.c.run_id == run_id))
            .mappings().first())
        self._run = dict(run) if run is not None else None
        self._runs = self._deployment_runs()
        self._q = self._statements()
        self._regime_cache: dict[str, Trigger | None] = {}
        if not records.autonomy_changes(ledger, deployment_id):
            records.record_autonomy_change(
                ledger, deployment_id=deployment_id, ts=clock.now(), from_level=None,
                to_level=self.settings.initial_level, kind="initial",
                reason="the deployment's first decision under the autonomy governor",
                actor=GOVERNOR_ACTOR)

    # -- ledger reads -------------------------------------------------------------------
    def _deployment_runs(self) -> list[str]:
        """The deployment's runs: those that saved its engine state or recorded its
        approvals or agent decisions, and the current one."""
        dep = self.deployment_id

        def work(conn: Any) -> list[str]:
            found = {self.run_id}
            for t in (schema.engine_state, schema.approvals, schema.agent_decisions):
                found.update(r for (r,) in conn.execute(
                    select(t.c.run_id).where(t.c.deployment_id == dep).distinct())
                    if r is not None)
            return sorted(found)

        return records._read(self.ledger, "the deployment's runs", work)

    def _statements(self) -> dict[str, Any]:
        """Build the per-decision and per-bar queries once (values that change are bound
        parameters), so a decision does not pay for building SQL expressions."""
        s, dep, runs = self.settings, self.deployment_id, self._runs
        ch, c, a = schema.autonomy_changes, schema.commands, schema.anomalies
        f, tr, o, ad, d = (schema.fills, schema.trades, schema.orders, schema.agent_decisions,
                           schema.decisions)
        overrides = and_(c.c.deployment_id == dep, c.c.kind.in_(s.override_commands),
                         c.c.actor.not_in(s.system_actors))
        flagged = or_(a.c.deployment_id == dep, a.c.deployment_id.is_(None))
        return {
            "change": select(ch).where(ch.c.deployment_id == dep).order_by(ch.c.id.desc()).limit(1),
            "anomalies": select(a.c.id, a.c.kind, a.c.symbol, a.c.opened_ts)
            .where(flagged, a.c.status == "open").order_by(a.c.id),
            "cmd_upto": select(func.max(c.c.id)).where(overrides,
                                                       c.c.created_at <= bindparam("upto")),
            "anom_upto": select(func.max(a.c.id)).where(flagged,
                                                        a.c.created_at <= bindparam("upto")),
            "cmd_max": select(func.max(c.c.id)).where(overrides),
            "anom_max": select(func.max(a.c.id)).where(flagged),
            "override_after": select(c.c.id, c.c.kind, c.c.actor, c.c.created_at)
            .where(overrides, c.c.id > bindparam("floor")).order_by(c.c.id.desc()).limit(1),
            "anomaly_after": select(a.c.id, a.c.kind, a.c.symbol, a.c.opened_ts)
            .where(flagged, a.c.id > bindparam("floor")).order_by(a.c.id.desc()).limit(1),
            "pnls_after": select(tr.c.pnl).where(tr.c.run_id.in_(runs),
                                                 tr.c.exit_ts > bindparam("since"))
            .order_by(tr.c.exit_ts.desc()).limit(s.demote_loss_window),
            "all_pnls_after": select(tr.c.pnl).where(tr.c.run_id.in_(runs),
                                                     tr.c.exit_ts > bindparam("since")),
            "entries": select(f.c.client_order_id, f.c.symbol, f.c.quantity, f.c.price)
            .where(f.c.run_id.in_(runs), f.c.role == "entry")
            .order_by(f.c.ts.desc(), f.c.fill_seq.desc()).limit(4 * s.recent_window),
            "traded": select(f.c.symbol).where(f.c.run_id.in_(runs), f.c.role == "entry")
            .distinct(),
            "trades": select(tr.c.symbol, tr.c.pnl).where(tr.c.run_id.in_(runs))
            .order_by(tr.c.exit_ts.desc()).limit(200),
            "statuses": select(o.c.status).where(
                o.c.run_id.in_(runs), o.c.role.in_(("entry", "exit")),
                o.c.status.in_(("filled", "partially_filled", "rejected")))
            .order_by(o.c.created_ts.desc(), o.c.client_order_id.desc()).limit(s.fill_failures),
            "recent": select(ad.c.id, ad.c.ts, ad.c.event_kind, ad.c.symbol, ad.c.action,
                             ad.c.confidence).where(ad.c.deployment_id == dep)
            .order_by(ad.c.id.desc()).limit(max(s.recent_decisions, 1)),
            "closes": select(d.c.ts, d.c.close)
            .where(d.c.run_id == self.run_id, d.c.symbol == bindparam("symbol"))
            .order_by(d.c.seq.desc()).limit(s.regime_window + 3),
        }

    def _latest_change(self, conn: Any) -> dict[str, Any]:
        row = conn.execute(self._q["change"]).mappings().first()
        if row is None:
            return {"id": 0, "to_level": self.settings.initial_level, "ts": 0, "created_at": None}
        return dict(row)

    def _floors_for(self, conn: Any, change: dict[str, Any]) -> tuple[int, int, int]:
        """The highest override command id and anomaly id a level change already
        accounts for: remembered for the governor's own changes, else (a change made by
        another process, or before a restart) those created up to the change's wall time."""
        if self._floors is not None and self._floors[0] == change["id"]:
            return self._floors
        upto = {"upto": change["created_at"] or ""}
        cmd = conn.execute(self._q["cmd_upto"], upto).scalar() or 0
        anom = conn.execute(self._q["anom_upto"], upto).scalar() or 0
        self._floors = (change["id"], int(cmd), int(anom))
        return self._floors

    def _bar_figures(self, now: float) -> _Bar:
        """The deployment's per-bar figures, read at most once per ``cache_seconds`` (one
        connection); a demotion that is due is recorded first."""
        bar = self._bar
        if bar is not None and 0 <= now - bar.at < self.settings.cache_seconds:
            return bar
        s, q = self.settings, self._q

        def work(conn: Any) -> tuple[_Bar, dict[str, Any], str | None]:
            change = self._latest_change(conn)
            why = self._demotion_due(conn, change)[0]
            per_order: dict[str, list[Any]] = {}
            for oid, sym, qty, price in conn.execute(q["entries"]):
                item = per_order.setdefault(oid, [sym, Decimal(0)])
                item[1] += Decimal(qty) * Decimal(price)
            entries = [(sym, n) for sym, n in list(per_order.values())[:s.recent_window]][::-1]
            traded = frozenset(sym for (sym,) in conn.execute(q["traded"]))
            trades = [(sym, float(pnl)) for sym, pnl in conn.execute(q["trades"])]
            failures = 0
            for (st,) in conn.execute(q["statuses"]):
                if st != "rejected":
                    break
                failures += 1
            recent = [] if not s.recent_decisions else [
                dict(r) for r in conn.execute(q["recent"]).mappings()][::-1]
            return _Bar(now, entries, traded, trades, failures, recent), change, why

        bar, change, why = records._read(self.ledger, "the deployment's recent trading", work)
        level = int(change["to_level"])
        if why is not None and level > 1:
            self._change(level, level - 1, "demotion", why, GOVERNOR_ACTOR, now)
        self._bar = bar
        self._regime_cache = {}
        return bar

    def _level_and_anomalies(self) -> tuple[int, list[dict[str, Any]]]:
        """The level in force and the open anomalies (one connection, read per decision:
        another process may have changed either)."""
        def work(conn: Any) -> tuple[int, list[dict[str, Any]]]:
            level = int(self._latest_change(conn)["to_level"])
            return level, [dict(r) for r in conn.execute(self._q["anomalies"]).mappings()]

        return records._read(self.ledger, "the autonomy level and open anomalies", work)

    # -- the regime -----------------------------------------------------------------------
    def _recent_closes(self, symbol: str) -> tuple[np.ndarray, np.ndarray]:
        """This run's last ``regime_window + 1`` recorded bars of ``symbol``, oldest
        first (one per bar): their open times (UTC epoch seconds) and closes."""
        n = self.settings.regime_window + 1
        rows = records._read(self.ledger, "recent closes", lambda conn: conn.execute(
            self._q["closes"], {"symbol": symbol}).all())
        seen: dict[int, float] = {}
        for ts, close in rows:                 # newest first: keep a bar's last row
            if ts not in seen and close is not None and close > 0:
                seen[ts] = float(close)
        times = sorted(seen)[-n:]
        return (np.array(times, dtype=np.int64), np.array([seen[t] for t in times], dtype=float))

    def _history_vols(self, symbol: str, before_ts: int) -> np.ndarray:
        """Realised volatilities of every earlier window of ``symbol`` in runs of this
        strategy and timeframe, windows ending before ``before_ts``; cached per UTC day."""
        day = int(self.clock.now()) // DAY
        cached = self._regime_history.get(symbol)
        if cached is not None and cached[0] == day:
            vols, ends = cached[1]
            return vols[ends < before_ts]
        if self._run is None:
            return np.empty(0)
        d, r = schema.decisions, schema.runs
        q = (select(d.c.run_id, d.c.ts, d.c.close).join(r, r.c.run_id == d.c.run_id)
             .where(r.c.strategy == self._run["strategy"], r.c.timeframe == self._run["timeframe"],
                    d.c.symbol == symbol).order_by(d.c.run_id, d.c.seq))
        rows = records._read(self.ledger, "the strategy's history", lambda conn: conn.execute(q).all())
        w = self.settings.regime_window
        vols, ends = [], []
        i = 0
        while i < len(rows):
            j = i
            while j < len(rows) and rows[j][0] == rows[i][0]:
                j += 1
            per_ts: dict[int, float] = {}
            for _run, ts, close in rows[i:j]:
                if close is not None and close > 0:
                    per_ts[ts] = float(close)
            ts_sorted = sorted(per_ts)
            closes = np.array([per_ts[t] for t in ts_sorted], dtype=float)
            v = _rolling_vol(closes, w)
            if v.shape[0]:
                vols.append(v)
                ends.append(np.array(ts_sorted[w:w + v.shape[0]], dtype=np.int64))
            i = j
        all_vols = np.concatenate(vols) if vols else np.empty(0)
        all_ends = np.concatenate(ends) if ends else np.empty(0, dtype=np.int64)
        self._regime_history[symbol] = (day, (all_vols, all_ends))
        return all_vols[all_ends < before_ts]

    def _regime(self, symbol: str) -> Trigger | None:
        """The ``regime_unseen`` trigger for ``symbol``, or ``None`` (in range, or not
        enough data to judge); judged once per bar."""
        if symbol not in self._regime_cache:
            self._regime_cache[symbol] = self._judge_regime(symbol)
        return self._regime_cache[symbol]

    def _judge_regime(self, symbol: str) -> Trigger | None:
        w = self.settings.regime_window
        times, closes = self._recent_closes(symbol)
        now_vol = _rolling_vol(closes, w)
        if now_vol.shape[0] != 1:
            return None
        hist = self._history_vols(symbol, int(times[0]))   # windows ending before this one
        if hist.shape[0] < self.settings.regime_min_windows:
            return None
        lo, hi, v = float(hist.min()), float(hist.max()), float(now_vol[0])
        if lo <= v <= hi:
            return None
        return Trigger("regime_unseen", {"volatility": round(v, 8), "history_min": round(lo, 8),
                                         "history_max": round(hi, 8), "windows": int(hist.shape[0])})

    # -- market hours ---------------------------------------------------------------------
    def _market_open(self, now: float, market: Mapping[str, Any]) -> bool:
        if "market_open" in market:
            return bool(market["market_open"])
        if self.settings.calendar == "24/7":
            return True
        import pandas as pd
        with _quiet_calendar():
            return bool(_exchange_calendar(self.settings.calendar).is_open_on_minute(
                pd.Timestamp(int(now), unit="s", tz="UTC")))

    # -- deciding -------------------------------------------------------------------------
    def _triggers(self, intent: str, symbol: str, now: float, bar: _Bar, notional: float | None,
                  average: float | None, anomalies: list[dict[str, Any]], account: Mapping[str, Any],
                  market: Mapping[str, Any]) -> list[Trigger]:
        s = self.settings
        out: list[Trigger] = []
        if intent == "enter_long":
            if symbol not in bar.traded:
                out.append(Trigger("first_trade", {"symbol": symbol}))
            if notional is not None and average and notional >= s.human_size_multiple * average:
                out.append(Trigger("size", {"notional": round(notional, 8),
                                            "average": round(average, 8),
                                            "multiple": round(notional / average, 4)}))
            sector = s.sector(symbol)
            streak = 0
            for sym, pnl in bar.trades:
                if s.sector(sym) != sector:
                    continue
                if pnl >= 0:
                    break
                streak += 1
                if streak >= s.sector_losses:
                    break
            if streak >= s.sector_losses:
                out.append(Trigger("sector_losses", {"sector": sector, "losses": streak}))
            margin = account.get("margin_utilisation")
            if margin is not None and float(margin) > s.margin_limit:
                out.append(Trigger("margin", {"utilisation": float(margin),
                                              "limit": s.margin_limit}))
        if anomalies:
            out.append(Trigger("anomaly_flag", {"anomalies": [
                {"id": a["id"], "kind": a["kind"], "symbol": a["symbol"]} for a in anomalies]}))
        vix, vix_open = market.get("vix"), market.get("vix_open")
        if vix is not None and vix_open:
            jump = float(vix) / float(vix_open) - 1.0
            if jump >= s.vix_jump:
                out.append(Trigger("vix_spike", {"vix": float(vix), "vix_open": float(vix_open),
                                                 "change": round(jump, 4)}))
        last = market.get("last_data_ts")
        if last is not None and now - float(last) >= s.data_gap_seconds \
                and self._market_open(now, market):
            out.append(Trigger("data_gap", {"seconds": int(now - float(last))}))
        regime = self._regime(symbol)
        if regime is not None:
            out.append(regime)
        if bar.fill_failures >= s.fill_failures:
            out.append(Trigger("fill_failures", {"consecutive": bar.fill_failures}))
        return out

    def authorize(self, symbol: str, action: str, detail: dict) -> Authorization:
        """Decide whether a risk-approved entry or exit may be sent.

        Records the reasoner's decision with its context (committed), then the verdict
        with the active triggers, and adds ``agent_decision_id`` to ``detail`` (the
        engine records ``detail`` with its decision).

        Parameters
        ----------
        symbol : str
        action : {"enter_long", "exit"}
        detail : dict
            The engine's decision detail; for entries the risk manager's sizing
            (``quantity`` in base units as text, ``equity``, ``stop_loss``,
            ``risk_per_unit`` in quote currency; ``price`` when the engine gives it).

        Returns
        -------
        Authorization
            ``execute``, ``queue`` (an approval for a person) or ``monitor``.

        Raises
        ------
        tradewarden.ledger.LedgerError
            If the ledger cannot be read or written: nothing is authorized without the
            decision recorded.
        """
        now = self.clock.now()
        try:
            bar = self._bar_figures(now)
            level, anomalies = self._level_and_anomalies()
        except LedgerError:
            if not getattr(self.ledger, "degraded", False):
                raise
            # the ledger's database is away (a spooling ledger): nothing is authorized
            # without the decision recorded; entries are blocked already, exits wait
            # (the reason is the decision's, at most 64 characters in the ledger)
            return Authorization(Verdict.MONITOR, "ledger_unreachable")
        given = dict(self._context()) if self._context is not None else {}
        market = dict(self._market()) if self._market is not None else {}
        account = dict(given.get("account") or {})
        notional, price = None, None
        payload: dict[str, Any] = {k: detail[k] for k in ("signal", "stop_loss", "take_profit",
                                                          "quantity", "equity") if k in detail}
        for k in ("stop_loss", "take_profit", "quantity", "equity"):
            number = _decimal(payload.get(k))     # the risk manager's text, exact; recorded
            if number is not None:                # as text, shown to a model as a number
                payload[k] = number
        if action == "enter_long":
            qty = _decimal(detail.get("quantity"))
            price = _decimal(detail.get("price"))
            stop, per_unit = _decimal(detail.get("stop_loss")), _decimal(detail.get("risk_per_unit"))
            if price is None and stop is not None and per_unit is not None:
                price = stop + per_unit          # the risk manager's risk_per_unit = price - stop
            if price is None:
                closes = self._recent_closes(symbol)[1]
                price = _decimal(closes[-1]) if closes.shape[0] else None
            if qty is not None and price is not None:
                payload["price"] = price                 # quote currency, exact (JSON text)
                payload["notional"] = qty * price
                notional = float(payload["notional"])
        sizes = [n for _sym, n in bar.entries]
        average = None
        if sizes:
            payload["average_notional"] = sum(sizes, Decimal(0)) / len(sizes)
            average = float(payload["average_notional"])
        ts = int(detail.get("ts", now))
        event = ReasoningEvent(kind="entry_signal" if action == "enter_long" else "exit_signal",
                               ts=ts, symbol=symbol, payload=payload)
        memory = {k: given[k] for k in ("similar_past", "patterns", "experiments", "reflection",
                                        "performance") if given.get(k)}
        context = ReasoningContext(
            positions=list(given.get("positions") or []), account=account, market=market,
            candidates=list(given.get("candidates") or []),
            recent_decisions=list(given.get("recent_decisions") or bar.recent),
            strategy_state=dict(given.get("strategy_state") or {}), autonomy_level=level,
            anomalies=[{"id": a["id"], "kind": a["kind"], "symbol": a["symbol"]}
                       for a in anomalies], **memory)
        try:
            decision = self.reasoner.decide(event, context)
        except Exception as exc:        # noqa: BLE001 - a failing reasoner hands over to a person
            why = f"reasoner {self.reasoner.name} failed: {type(exc).__name__}: {exc}"
            decision = DecisionOutput(action=Action.REQUEST_HUMAN_REVIEW, target_symbols=(symbol,),
                                      confidence=0.0, reasoning=why, escalation_reason=why,
                                      escalation_urgency="high")
        decision_id = records.record_decision(
            self.ledger, deployment_id=self.deployment_id, run_id=self.run_id, ts=ts,
            event_kind=event.kind, reasoner=self.reasoner.name, autonomy_level=level,
            context={"event": event.model_dump(mode="json"), **context.model_dump(mode="json")},
            output=decision, symbol=symbol, decision_seq=detail.get("decision_seq"))
        detail["agent_decision_id"] = decision_id
        triggers = self._triggers(action, symbol, now, bar, notional, average, anomalies, account,
                                  market)
        floor = self.min_confidence()
        if decision.confidence < floor:
            triggers.append(Trigger("low_confidence", {"confidence": decision.confidence,
                                                       "minimum": floor}))
        verdict, reason = gate(level, action, decision, triggers, notional=notional,
                               average=average, new_symbol=symbol not in bar.traded,
                               anomaly_event=event.kind == "anomaly_detected",
                               settings=self.settings)
        records.record_verdict(self.ledger, agent_decision_id=decision_id,
                               deployment_id=self.deployment_id, ts=ts, autonomy_level=level,
                               verdict=verdict, reason=reason,
                               triggers=[t.as_dict() for t in triggers])
        settle = getattr(self.reasoner, "settle", None)
        if settle is not None:          # a model reasoner links its calls to the decision
            settle(decision_id, verdict)
        return Authorization(_VERDICT[verdict], reason)

    def min_confidence(self) -> float:
        """Return the confidence below which a person must decide: ``[autonomy]
        min_confidence``, or higher where an accepted experiment raised it for this
        deployment (:func:`tradewarden.agent.experiments.applied_parameters`; an
        experiment can only make the floor stricter)."""
        from tradewarden.agent.experiments import applied_parameters
        applied = applied_parameters(self.ledger, self.deployment_id).get("min_confidence")
        value = applied.get("value") if isinstance(applied, dict) else None
        base = self.settings.min_confidence
        return max(base, float(value)) if isinstance(value, (int, float)) else base

    # -- levels ---------------------------------------------------------------------------
    def level(self) -> int:
        """Return the deployment's current autonomy level (from the ledger), 1-4."""
        return records.autonomy_level(self.ledger, self.deployment_id, self.settings.initial_level)

    def _change(self, from_level: int, to_level: int, kind: str, reason: str, actor: str,
                ts: Any) -> dict[str, Any]:
        cid = records.record_autonomy_change(
            self.ledger, deployment_id=self.deployment_id, ts=ts, from_level=from_level,
            to_level=to_level, kind=kind, reason=reason, actor=actor)

        def floors(conn: Any) -> tuple[int, int, int]:
            cmd = conn.execute(self._q["cmd_max"]).scalar()
            anom = conn.execute(self._q["anom_max"]).scalar()
            return cid, int(cmd or 0), int(anom or 0)

        self._floors = records._read(self.ledger, "the latest overrides", floors)
        self._bar = None
        return next(r for r in records.autonomy_changes(self.ledger, self.deployment_id)
                    if r["id"] == cid)

    def demote(self, reason: str, ts: Any) -> dict[str, Any] | None:
        """Lower the level by one at ``ts`` (UTC epoch seconds), recording why.

        Returns
        -------
        dict or None
            The ``autonomy_changes`` row, or ``None`` at L1 (nothing lower).

        Raises
        ------
        tradewarden.ledger.LedgerError
            An empty reason, or a ledger that cannot be read or written.
        """
        level = self.level()
        if level <= 1:
            return None
        return self._change(level, level - 1, "demotion", reason, GOVERNOR_ACTOR, ts)

    def set_level(self, level: int, actor: str, reason: str, ts: Any) -> dict[str, Any]:
        """Set the level by a person's command (the only way to L4).

        Parameters
        ----------
        level : int
            1-4.
        actor : str
            Who (1-64 characters).
        reason : str
        ts : int
            UTC epoch seconds.

        Returns
        -------
        dict
            The ``autonomy_changes`` row (kind ``command``).

        Raises
        ------
        tradewarden.ledger.LedgerError
            A level outside 1-4, an empty actor or reason, or a ledger that cannot be
            written.
        """
        return self._change(self.level(), level, "command", reason, actor, ts)

    def _demotion_due(self, conn: Any, change: dict[str, Any]) -> tuple[str | None, int | None]:
        """Why a demotion is due since ``change`` (or ``None``), and when the override or
        anomaly that makes it due happened (UTC epoch seconds; ``None`` for losses): at
        L1, where nothing is lower, it restarts the count of days towards promotion."""
        s, q = self.settings, self._q
        _cid, cmd_floor, anom_floor = self._floors_for(conn, change)
        override = conn.execute(q["override_after"], {"floor": cmd_floor}).first()
        if override is not None:
            why = f"manual override: command {override.id} ({override.kind} by {override.actor})"
            return why, _epoch(override.created_at)
        pnls = [float(p) for (p,) in conn.execute(q["pnls_after"], {"since": int(change["ts"])})]
        losses = sum(p < 0 for p in pnls)
        if losses >= s.demote_losses:
            return f"{losses} losses in the last {len(pnls)} trades", None
        anomaly = conn.execute(q["anomaly_after"], {"floor": anom_floor}).first()
        if anomaly is not None:
            where = f" ({anomaly.symbol})" if anomaly.symbol else ""
            return (f"anomaly flagged: {anomaly.kind}{where} (anomaly {anomaly.id})",
                    int(anomaly.opened_ts))
        return None, None

    def trading_days(self, start: Any, end: Any) -> int:
        """Return the trading days from ``start`` to ``end`` (UTC epoch seconds).

        ``24/7``: whole days elapsed, ``(end - start) // 86400``. An exchange calendar
        (``XNYS``, ...): its sessions after ``start``'s UTC date up to ``end``'s,
        inclusive.

        Raises
        ------
        exchange_calendars.errors.DateOutOfBounds
            A date outside the calendar's bounds (about 20 years back to 1 year ahead).
        """
        start, end = int(start), int(end)
        if end <= start:
            return 0
        if self.settings.calendar == "24/7":
            return (end - start) // DAY
        import pandas as pd
        first = pd.Timestamp(start // DAY * DAY + DAY, unit="s")
        last = pd.Timestamp(end // DAY * DAY, unit="s")
        if first > last:
            return 0
        with _quiet_calendar():
            return len(_exchange_calendar(self.settings.calendar).sessions_in_range(first, last))

    def _daily_sharpe(self, since_ts: int) -> float:
        """Annualised Sharpe ratio of the deployment's daily equity returns after
        ``since_ts``.

        The total equity per bar (``decisions.equity``: summed over the symbols'
        accounts in independent mode, the portfolio's otherwise) is closed per UTC day
        (the day's last mark; days without one are skipped: markets closed); the
        returns are the changes between consecutive closes, and the ratio is
        :func:`tradewarden.analytics.ratios.sharpe_ratio` (empyrical's definition,
        mean / std(ddof=1) x sqrt(A), risk-free 0; A = 365 for 24/7, 252 for XNYS).
        NaN with fewer than two daily returns.
        """
        import pandas as pd

        from tradewarden.analytics.ratios import sharpe_ratio
        d = schema.decisions
        q = (select(d.c.ts, d.c.symbol, d.c.equity)
             .where(d.c.run_id.in_(self._runs), d.c.ts > since_ts).order_by(d.c.ts, d.c.seq))
        rows = records._read(self.ledger, "the equity curve", lambda conn: conn.execute(q).all())
        if not rows:
            return math.nan
        df = pd.DataFrame(rows, columns=["ts", "symbol", "equity"]).dropna()
        if self._run is not None and self._run["capital_mode"] == "portfolio":
            total = df.groupby("ts")["equity"].last()
        else:
            total = (df.pivot_table(index="ts", columns="symbol", values="equity", aggfunc="last")
                     .ffill().dropna().sum(axis=1))
        if total.empty:
            return math.nan
        closes = pd.Series(total.to_numpy(dtype=float),
                           index=pd.to_datetime(total.index.to_numpy(dtype=np.int64), unit="s",
                                                utc=True)).resample("1D").last().dropna()
        returns = closes.pct_change().dropna()
        return sharpe_ratio(returns.to_numpy(), 365 if self.settings.calendar == "24/7" else 252)

    def demote_if_due(self, now: Any) -> dict[str, Any] | None:
        """Demote one level now if a demotion is due (a manual override, losses, an
        anomaly since the level changed); promotions wait for :meth:`review`.

        The daemon calls this between bars, so a person's override demotes at once
        rather than at the next decision or the end of the day.

        Parameters
        ----------
        now : int
            UTC epoch seconds.

        Returns
        -------
        dict or None
            The ``autonomy_changes`` row recorded, or ``None`` (nothing due, or L1).

        Raises
        ------
        tradewarden.ledger.LedgerError
            If the ledger cannot be read or written.
        """
        change, why, _ = self._due()
        level = int(change["to_level"])
        if why is None or level <= 1:
            return None
        return self._change(level, level - 1, "demotion", why, GOVERNOR_ACTOR, now)

    def _due(self) -> tuple[dict[str, Any], str | None, int | None]:
        """The latest level change, why a demotion is due (or ``None``) and since when."""
        def work(conn: Any) -> tuple[dict[str, Any], str | None, int | None]:
            change = self._latest_change(conn)
            return (change, *self._demotion_due(conn, change))

        return records._read(self.ledger, "the autonomy record", work)

    def review(self, now: Any) -> dict[str, Any] | None:
        """Promote or demote the deployment by the ledger's record (see the module
        docstring); at most one change.

        Parameters
        ----------
        now : int
            UTC epoch seconds.

        Returns
        -------
        dict or None
            The ``autonomy_changes`` row recorded, or ``None``.

        Raises
        ------
        tradewarden.ledger.LedgerError
            If the ledger cannot be read or written.
        """
        s = self.settings
        change, why, since = self._due()
        level = int(change["to_level"])
        if why is not None and level > 1:
            return self._change(level, level - 1, "demotion", why, GOVERNOR_ACTOR, now)
        start = max(int(change["ts"]), since or 0)
        days = self.trading_days(start, now)
        if level == 1 and days >= s.promote_l2_days:
            pnls = [float(p) for (p,) in records._read(
                self.ledger, "trades", lambda conn: conn.execute(
                    self._q["all_pnls_after"], {"since": int(change["ts"])}).all())]
            if len(pnls) >= s.promote_min_trades:
                rate = sum(p > 0 for p in pnls) / len(pnls)
                if rate >= s.promote_l2_win_rate:
                    return self._change(1, 2, "promotion",
                                        f"{days} trading days without a manual override, win rate "
                                        f"{rate:.2f} over {len(pnls)} trades", GOVERNOR_ACTOR, now)
        if level == 2 and days >= s.promote_l3_days:
            sharpe = self._daily_sharpe(int(change["ts"]))
            if math.isfinite(sharpe) and sharpe > s.promote_l3_sharpe:
                return self._change(2, 3, "promotion",
                                    f"{days} trading days at L2, Sharpe {sharpe:.2f}",
                                    GOVERNOR_ACTOR, now)
        return None
