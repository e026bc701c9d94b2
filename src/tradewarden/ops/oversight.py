"""What a person sees of the daemon and the orders they give it, from the ledger alone.

:class:`Oversight` is the read model behind ``warden daemon status | context | audit |
costs | set-autonomy | override`` and the Telegram bot. It reads the ledger only (the
daemon's lock file says whether a daemon runs), so every view works while the daemon is
down; it acts only by adding rows the daemon acts on:

* a command in a deployment's inbox (``commands``, :meth:`Ledger.enqueue_command`):
  ``pause``, ``resume``, ``approve`` / ``reject`` of a queued approval, and the
  ``kill`` + ``flatten`` pair of an emergency stop (what ``warden kill --flatten``
  queues). The engine carries them out before its next bar
  (:meth:`tradewarden.engine.inbox.Operations.handle_commands`); a deployment that is
  not running acts on them when it next starts. Nothing here starts a deployment.
* an autonomy change (``autonomy_changes``, kind ``command``): the governor reads the
  latest level of a deployment before each decision.

Figures come from the deployment's latest committed engine state (``engine_state``:
positions, cash, bracket levels, risk breakers, the last close of each symbol) and its
closed round trips (``trades`` of the deployment's runs). Money is quote currency
(the quote of the deployment's symbols, ``BTC-USD`` → ``USD``) as :class:`~decimal.Decimal`;
quantities are base units; times are UTC epoch seconds with ISO text beside them.
Marks are the last close the engine saw (a float in the state, taken as its shortest
decimal text), so unrealised figures are as of the deployment's last bar.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Self

from sqlalchemy import or_, select

from tradewarden.agent import records
from tradewarden.domain import iso
from tradewarden.engine.portfolio import Holding
from tradewarden.ledger import Ledger, schema
from tradewarden.ops.daemon import lock_path, running_daemon
from tradewarden.risk import RiskConfig

#: Seconds in a day (UTC days: ``ts // DAY``).
DAY = 86_400
#: What each autonomy level allows (issue 12, "Deciding, and the gates").
LEVEL_NAMES = {1: "recommend only", 2: "supervised", 3: "semi-autonomous", 4: "autonomous"}
#: A deployment's level when none was ever recorded: L1, everything waits for a person.
DEFAULT_AUTONOMY = 1
#: How many recent alerts and agent decisions the status and the context show.
RECENT = 5
#: Position states of the engine (``engine.engine.FLAT`` ... in that order).
_STATES = ("flat", "entry_pending", "open", "exit_pending")
_ZERO = Decimal(0)


class OversightError(ValueError):
    """A request the oversight cannot carry out; the message is one line saying why."""


class OversightNotFound(OversightError):
    """The request names something the ledger does not hold (an approval, a decision)."""


class OversightConflict(OversightError):
    """The request conflicts with the state: an approval no longer pending, one another
    person's approve / reject already waits on, or one of a deployment not watched."""


def _now_fn(clock: Any) -> Callable[[], float]:
    """``clock`` as a function returning UTC epoch seconds (an engine ``Clock`` with
    ``now()``, a callable, or ``None`` for the wall clock)."""
    if clock is None:
        return time.time
    now = getattr(clock, "now", None)
    if callable(now):
        return now
    if callable(clock):
        return clock
    raise OversightError(f"clock {clock!r}: give an object with now() or a function")


def _dec(value: Any) -> Decimal | None:
    """A float or text as an exact Decimal (a float by its shortest text), or ``None``."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return value
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))


def _money(value: Decimal | None, quote: str, sign: bool = False) -> str:
    """Quote-currency text with two decimals (``+12.30 USD``), ``-`` when unknown."""
    if value is None:
        return "-"
    return f"{value:{'+' if sign else ''},.2f} {quote}".strip()


def _qty(value: Decimal) -> str:
    """A quantity without trailing zeros, never in exponent form."""
    return format(value.normalize(), "f")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 2 * DAY:
        return f"{seconds // 3600} h"
    return f"{seconds // DAY} d"


def _epoch(text: str | None) -> float | None:
    """Epoch seconds of a wall-clock ISO text (``...Z`` or with an offset)."""
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _quote_of(symbols: list[str]) -> str:
    """The quote currency of a deployment's symbols (``BTC-USD`` → ``USD``)."""
    from tradewarden.data.venues import split_symbol
    quotes = set()
    for s in symbols:
        try:
            quotes.add(split_symbol(s)[1])
        except ValueError:
            continue
    return quotes.pop() if len(quotes) == 1 else "quote"


def _short(text: Any, n: int = 300) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


class Oversight:
    """The daemon's deployments as a person sees and steers them, from the ledger.

    Parameters
    ----------
    ledger_url : str
        The ledger: an SQLite file path or an SQLAlchemy URL (as ``--db`` takes it).
    deployments : list of str, optional
        The deployments to watch and command, by name. Default: those of the daemon's
        latest heartbeat; without one, every paper and live deployment in the ledger
        (looked up again on each call, so a deployment started later is seen).
    clock : object with ``now()`` or callable, optional
        UTC epoch seconds now (default the wall clock): stamps autonomy changes, ages
        and the day of the report; a test passes a simulated one.
    default_autonomy : int
        A deployment's level when none was ever recorded (1-4; default 1).

    Raises
    ------
    tradewarden.ledger.LedgerError
        ``no ledger at ...`` when the ledger does not exist (it is never created here),
        or one that cannot be opened.
    OversightError
        A named deployment that is not in the ledger, or a bad ``default_autonomy``.
    """

    def __init__(self, ledger_url: str, *, deployments: list[str] | None = None,
                 clock: Any = None, default_autonomy: int = DEFAULT_AUTONOMY) -> None:
        if default_autonomy not in LEVEL_NAMES or isinstance(default_autonomy, bool):
            raise OversightError(f"default autonomy {default_autonomy!r}: give a level 1-4")
        self._now = _now_fn(clock)
        self.default_autonomy = default_autonomy
        self.ledger = Ledger(str(ledger_url), create=False)
        #: The ledger's URL, password masked (safe to print).
        self.url = self.ledger.url
        #: The daemon's lock file for this ledger.
        self.lock = lock_path(str(ledger_url))
        self._names = None if deployments is None else [str(n) for n in deployments]
        if self._names is not None:
            known = {d["name"] for d in self.ledger.deployments()}
            missing = [n for n in self._names if n not in known]
            if missing:
                self.ledger.close()
                raise OversightError(f"deployment {', '.join(missing)}: no such deployment in "
                                     f"{self.url}")

    # -- life ----------------------------------------------------------------------------
    def close(self) -> None:
        """Close the ledger."""
        self.ledger.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def now(self) -> int:
        """Return the clock's time, whole UTC epoch seconds."""
        return int(self._now())

    # -- what there is -------------------------------------------------------------------
    def deployments(self) -> list[dict[str, Any]]:
        """Return the watched ``deployments`` rows, in the order named (see the class).

        Raises
        ------
        tradewarden.ledger.LedgerError
            If the ledger cannot be read.
        """
        rows = {d["name"]: d for d in self.ledger.deployments()}
        if self._names is not None:
            names = self._names
        else:
            beat = self.ledger.latest_daemon_heartbeat()
            names = list(beat["deployments"]) if beat and beat.get("deployments") else \
                [n for n, d in rows.items() if d["mode"] in ("paper", "live")]
        return [rows[n] for n in names if n in rows]

    def _targets(self, deployment: str | None = None) -> list[dict[str, Any]]:
        """The deployments an action or a view concerns; refuse when there are none."""
        deps = self.deployments()
        if deployment is not None:
            deps = [d for d in deps if d["name"] == deployment]
            if not deps:
                watched = ", ".join(d["name"] for d in self.deployments()) or "none"
                raise OversightError(f"deployment {deployment}: not one of the daemon's "
                                     f"deployments ({watched})")
        if not deps:
            raise OversightError(f"no paper or live deployment in {self.url}: start one with "
                                 "`warden daemon start --config FILE`")
        return deps

    def autonomy(self, dep: dict[str, Any]) -> int:
        """Return a deployment's autonomy level (1-4): the latest recorded, else the default."""
        return records.autonomy_level(self.ledger, dep["deployment_id"], self.default_autonomy)

    # -- per deployment figures ---------------------------------------------------------
    def _book(self, dep: dict[str, Any]) -> dict[str, Any]:
        """Positions, accounts and breakers of a deployment from its latest engine state."""
        state = self.ledger.latest_engine_state(dep["deployment_id"]) or {}
        try:
            config = json.loads(dep["config"] or "{}")
        except ValueError:
            config = {}
        syms = state.get("symbols", [])
        symbols = [s["name"] for s in syms] or list(config.get("symbols") or [])
        quote = _quote_of(symbols)
        accounts = {a["name"]: {"name": a["name"], "cash": Decimal(a["cash"]),
                                "market_value": _ZERO} for a in state.get("accounts", [])}
        positions = []
        for s in syms:
            holding = Holding.from_dict(s["holding"])
            acct = s["name"] if s["name"] in accounts else next(iter(accounts), None)
            mark = _dec(s.get("last_close")) or _dec(s.get("mark")) or None
            if mark is not None and mark <= 0:
                mark = None
            if holding.quantity == 0:
                continue
            stop, take = (None if v is None else Decimal(v) for v in s.get("levels", [None, None]))
            value = None if mark is None else mark * holding.quantity
            unreal = None if value is None else value + holding.proceeds - holding.cost - holding.fees
            if acct is not None and value is not None:
                accounts[acct]["market_value"] += value
            positions.append({
                "symbol": s["name"], "state": _STATES[int(s.get("state", 0))],
                "account": acct, "quantity": holding.quantity,
                "entry_price": holding.entry_price,
                "entry_ts": holding.entry_ts,
                "entry_time": iso(holding.entry_ts) if holding.entry_ts is not None else None,
                "mark": mark, "market_value": value, "unrealized_pnl": unreal,
                "stop_loss": stop, "take_profit": take,
                "stop_distance_pct": (float((mark - stop) / mark * 100)
                                      if stop is not None and mark is not None else None)})
        for a in accounts.values():
            a["equity"] = a["cash"] + a["market_value"]
        risk = state.get("risk") or {}
        halts = {a: sorted(r.get("halts") or {}) for a, r in risk.items()}
        return {"state": state, "config": config, "quote": quote, "symbols": symbols,
                "positions": positions, "accounts": list(accounts.values()), "risk": risk,
                "halts": halts, "paused": bool(state.get("paused")),
                "kill_switch": any("kill_switch" in h for h in halts.values()),
                "last_bar": iso(state["ts"]) if state.get("ts") is not None else None,
                "strategy_symbols": syms}

    def _select(self, query: Any, what: str) -> list[dict[str, Any]]:
        """Rows of a SELECT on the ledger as dicts; a database error as :class:`LedgerError`."""
        return self.ledger.read(what, lambda conn: [dict(r) for r in
                                                    conn.execute(query).mappings()])

    def _trades(self, dep: dict[str, Any]) -> list[dict[str, Any]]:
        """Closed round trips of every run of a deployment, by exit time."""
        t, es = schema.trades, schema.engine_state
        runs = select(es.c.run_id).where(es.c.deployment_id == dep["deployment_id"]).distinct()
        cond = t.c.run_id.in_(runs)
        if dep.get("run_id"):
            cond = or_(cond, t.c.run_id == dep["run_id"])
        return self._select(select(t).where(cond).order_by(t.c.exit_ts, t.c.trade_id),
                            f"the trades of deployment {dep['name']}")

    def _when_it_acts(self, dep: dict[str, Any]) -> str:
        """When a command queued now for ``dep`` takes effect (from its status)."""
        status = dep["status"]
        if status == "running" and dep.get("run_id"):
            run_status = self.ledger.run_status(dep["run_id"])
            if run_status not in (None, "running"):
                status = "not running"
        if status == "running":
            return "acts before its next bar"
        return "acts when it next starts"

    def _last_decision(self, dep: dict[str, Any]) -> dict[str, Any] | None:
        rows = records.agent_decisions(self.ledger, deployment_id=dep["deployment_id"], limit=1)
        return self._decision_view(rows[0]) if rows else None

    def _decision_view(self, d: dict[str, Any]) -> dict[str, Any]:
        """The short form of an agent decision: what, why and what became of it."""
        out = d.get("output") or {}
        return {"id": d["id"], "ts": d["ts"], "time": iso(d["ts"]), "event_kind": d["event_kind"],
                "symbol": d.get("symbol"), "action": d["action"], "confidence": d.get("confidence"),
                "autonomy_level": d["autonomy_level"], "reasoner": d["reasoner"],
                "reasoning": out.get("reasoning"), "key_factors": out.get("key_factors") or [],
                "verdicts": [{"verdict": v["verdict"], "reason": v["reason"],
                              "triggers": v["triggers"], "approval_id": v["approval_id"]}
                             for v in d.get("verdicts", [])],
                "outcome": self._outcome(d)}

    def _outcome(self, d: dict[str, Any]) -> str:
        """What became of a decision: its verdict and, for a queued one, its approval."""
        if not d.get("verdicts"):
            return "no verdict recorded"
        parts = []
        for v in d["verdicts"]:
            if v["verdict"] == "queue":
                row = self._approvals_of(d)
                if row:
                    a = row[-1]
                    who = f" by {a['acted_by']}" if a.get("acted_by") else ""
                    parts.append(f"queued as approval {a['id']}: {a['status']}{who}")
                    continue
            parts.append(f"{v['verdict']}: {v['reason']}")
        return "; ".join(parts)

    def _approvals_of(self, d: dict[str, Any]) -> list[dict[str, Any]]:
        """The approvals a decision led to: named by its verdicts, carrying its id in their
        intent (``agent_decision_id``), or queued by its engine decision (run and seq)."""
        found: dict[int, dict[str, Any]] = {}
        for v in d.get("verdicts", []):
            if v.get("approval_id") is not None:
                row = self.ledger.approval(int(v["approval_id"]))
                if row is not None:
                    found[row["id"]] = row
        a = schema.approvals
        q = select(a)
        if d.get("deployment_id") is not None:
            q = q.where(a.c.deployment_id == d["deployment_id"])
        cond = a.c.intent.like(f'%"agent_decision_id":%{d["id"]}%')
        if d.get("run_id") and d.get("decision_seq") is not None:
            cond = or_(cond, (a.c.run_id == d["run_id"]) & (a.c.decision_seq == d["decision_seq"]))
        for row in self._select(q.where(cond).order_by(a.c.id),
                                f"the approvals of agent decision {d['id']}"):
            if row["id"] in found:
                continue
            same_run = (row["run_id"] == d.get("run_id")
                        and row["decision_seq"] == d.get("decision_seq"))
            try:
                carried = json.loads(row["intent"]).get("agent_decision_id")
            except (ValueError, AttributeError):
                carried = None
            if same_run or (carried is not None and str(carried) == str(d["id"])):
                found[row["id"]] = row
        return [found[k] for k in sorted(found)]

    def _alerts(self, since_ts: int | None = None, limit: int | None = None
                ) -> list[dict[str, Any]]:
        """Alerts raised (:func:`tradewarden.ops.alerts.alerts`), oldest first: the newest
        ``limit`` from ``since_ts`` (UTC epoch seconds) on."""
        from tradewarden.ops.alerts import alerts
        return alerts(self.ledger, since_ts=since_ts, limit=limit)[::-1]

    # -- views (dicts) -------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Return the daemon's status and each deployment's, as a person needs it.

        Returns
        -------
        dict
            ``now`` (UTC epoch s); ``running``, ``pid``, ``since``, ``lock`` (the daemon's
            lock: running means a process holds it now); ``heartbeat`` (the latest
            ``daemon_heartbeats`` row or ``None``) and ``heartbeat_age_seconds`` (clock
            now minus its wall-clock time); ``queued_events`` (due or in hand);
            ``deployments``: name, mode, status of each; ``by_deployment``: name -> dict
            with ``deployment_id``, ``mode``, ``status``, ``paused``, ``kill_switch``,
            ``halts`` (account -> breaker names), ``autonomy_level``, ``autonomy``
            (its name), ``last_bar``, ``quote``, ``positions`` (see :meth:`positions`),
            ``pending_approvals`` (``approvals`` rows, intent parsed),
            ``pending_commands``, ``open_anomalies`` (``anomalies`` rows),
            ``last_decision`` (id, time, action, symbol, confidence, reasoning,
            verdicts, outcome; ``None`` if none); ``recent_alerts``: the newest
            :data:`RECENT` ``alerts`` rows.

        Raises
        ------
        tradewarden.ledger.LedgerError
            If the ledger cannot be read.
        """
        now = self.now()
        holder = running_daemon(self.lock)
        beat = self.ledger.latest_daemon_heartbeat()
        at = _epoch(beat["ts"]) if beat else None
        deps = self.deployments()
        by: dict[str, Any] = {}
        for d in deps:
            book = self._book(d)
            level = self.autonomy(d)
            pending = self.ledger.approvals(deployment_id=d["deployment_id"], status="pending")
            for p in pending:
                p["intent"] = json.loads(p["intent"])
            by[d["name"]] = {
                "deployment_id": d["deployment_id"], "mode": d["mode"], "status": d["status"],
                "paused": book["paused"], "kill_switch": book["kill_switch"],
                "halts": book["halts"], "autonomy_level": level, "autonomy": LEVEL_NAMES[level],
                "last_bar": book["last_bar"], "quote": book["quote"],
                "positions": book["positions"], "pending_approvals": pending,
                "pending_commands": len(self.ledger.pending_commands(d["deployment_id"])),
                "open_anomalies": records.anomalies(self.ledger, deployment_id=d["deployment_id"]),
                "last_decision": self._last_decision(d)}
        return {"now": now, "running": holder is not None,
                "pid": holder.get("pid") if holder else None,
                "since": holder.get("since") if holder else None, "lock": str(self.lock),
                "heartbeat": beat,
                "heartbeat_age_seconds": None if at is None else round(now - at, 1),
                "queued_events": self.ledger.event_queue_depth(now),
                "deployments": [{"name": d["name"], "mode": d["mode"], "status": d["status"]}
                                for d in deps],
                "by_deployment": by, "recent_alerts": self._alerts(limit=RECENT)}

    def positions(self) -> dict[str, list[dict[str, Any]]]:
        """Return each deployment's open positions, from its latest engine state.

        Returns
        -------
        dict of str to list of dict
            Deployment name -> positions: ``symbol``, ``state`` (entry_pending, open,
            exit_pending), ``account``, ``quantity`` (base units), ``entry_price``,
            ``mark`` (the last close seen), ``market_value`` (``mark * quantity``),
            ``unrealized_pnl`` (``market_value + proceeds - cost - fees`` of the round
            trip so far, the fees paid so far included), ``stop_loss``,
            ``take_profit`` (quote currency, Decimal or ``None``), ``entry_ts`` /
            ``entry_time`` and ``stop_distance_pct`` (``(mark - stop) / mark * 100``).
        """
        return {d["name"]: self._book(d)["positions"] for d in self.deployments()}

    def pnl(self) -> dict[str, dict[str, Any]]:
        """Return each deployment's profit and loss, quote currency.

        Returns
        -------
        dict of str to dict
            Deployment name -> ``quote``; ``realized`` (sum of the closed round trips'
            ``pnl``, net of both fees, over every run of the deployment);
            ``realized_today`` (those closed since 00:00 UTC of the clock's day);
            ``trades`` and ``trades_today`` (counts), ``wins``; ``unrealized`` (sum of
            the open positions' ``unrealized_pnl``; marks unknown count as zero);
            ``total`` (realized + unrealized); ``cash``, ``equity`` (cash + positions
            at their marks, every account).
        """
        day0 = self.now() // DAY * DAY
        out = {}
        for d in self.deployments():
            book = self._book(d)
            trades = self._trades(d)
            realized = sum((Decimal(t["pnl"]) for t in trades), _ZERO)
            today = [t for t in trades if int(t["exit_ts"]) >= day0]
            unreal = sum((p["unrealized_pnl"] for p in book["positions"]
                          if p["unrealized_pnl"] is not None), _ZERO)
            out[d["name"]] = {
                "quote": book["quote"], "realized": realized,
                "realized_today": sum((Decimal(t["pnl"]) for t in today), _ZERO),
                "trades": len(trades), "trades_today": len(today),
                "wins": sum(1 for t in trades if Decimal(t["pnl"]) > 0),
                "unrealized": unreal, "total": realized + unreal,
                "cash": sum((a["cash"] for a in book["accounts"]), _ZERO),
                "equity": sum((a["equity"] for a in book["accounts"]), _ZERO)}
        return out

    def risk(self) -> dict[str, dict[str, Any]]:
        """Return each deployment's exposure, stops, daily loss and open anomalies.

        Returns
        -------
        dict of str to dict
            Deployment name -> ``quote``; ``equity`` and ``exposure`` (sum of the
            positions' market values), ``exposure_pct`` (of equity, percent);
            ``positions``: symbol, market value, ``pct_of_equity``, stop, mark,
            ``stop_distance_pct`` where the state knows a stop; ``daily_loss``: per
            account the UTC day's starting equity, realised PnL, change of equity since
            the day started, the limit (fraction of the day's starting equity, from
            the deployment's ``risk.daily_loss_limit``; ``None`` when off) and
            ``limit_used_pct`` (today's loss as a percent of the limit's amount);
            ``halts``; ``paused``; ``kill_switch``; ``open_anomalies``.
        """
        out = {}
        for d in self.deployments():
            book = self._book(d)
            equity = sum((a["equity"] for a in book["accounts"]), _ZERO)
            exposure = sum((p["market_value"] for p in book["positions"]
                            if p["market_value"] is not None), _ZERO)
            limit = (book["config"].get("risk") or {}).get("daily_loss_limit",
                                                          RiskConfig().daily_loss_limit)
            if isinstance(limit, str) or (limit is not None and float(limit) >= 1.0):
                limit = None                    # "off", false, or a limit that never trips
            daily = []
            eq_of = {a["name"]: a["equity"] for a in book["accounts"]}
            for name, r in book["risk"].items():
                start = _dec(r.get("day_start_equity")) or _ZERO
                change = eq_of.get(name, start) - start if start else None
                amount = None if limit is None or not start else start * _dec(float(limit))
                loss = max(_ZERO, -change) if change is not None else None
                daily.append({"account": name, "day": iso(int(r.get("day", 0)) * DAY)[:10],
                              "day_start_equity": start,
                              "realized": _dec(r.get("day_realized")), "change": change,
                              "limit_fraction": limit, "limit_amount": amount,
                              "limit_used_pct": (float(loss / amount * 100)
                                                 if amount and loss is not None else None)})
            out[d["name"]] = {
                "quote": book["quote"], "equity": equity, "exposure": exposure,
                "exposure_pct": float(exposure / equity * 100) if equity else None,
                "positions": [{"symbol": p["symbol"], "market_value": p["market_value"],
                               "pct_of_equity": (float(p["market_value"] / equity * 100)
                                                 if equity and p["market_value"] is not None
                                                 else None),
                               "mark": p["mark"], "stop_loss": p["stop_loss"],
                               "stop_distance_pct": p["stop_distance_pct"]}
                              for p in book["positions"]],
                "daily_loss": daily, "halts": book["halts"], "paused": book["paused"],
                "kill_switch": book["kill_switch"],
                "open_anomalies": records.anomalies(self.ledger, deployment_id=d["deployment_id"])}
        return out

    def context(self, deployment: str | None = None) -> dict[str, Any]:
        """Return what a reasoner would see now, per deployment.

        Parameters
        ----------
        deployment : str, optional
            Only this one (a name among the watched deployments).

        Returns
        -------
        dict
            ``now`` and ``deployments``: a list of dicts with ``deployment``,
            ``deployment_id``, ``mode``, ``status``, ``autonomy_level``, ``autonomy``
            (its name) and ``autonomy_changes``; ``positions`` (as :meth:`positions`);
            ``account`` (``quote``, ``accounts``: name, cash, market value, equity);
            ``recent_decisions`` (the newest :data:`RECENT` agent decisions with their
            verdicts and outcomes); ``strategy_state`` (strategy, params, timeframe,
            per symbol its position state, last close and bracket levels, paused,
            halts, blocks, last bar); ``pending_approvals``; ``anomalies`` (open).

        Raises
        ------
        OversightError
            ``deployment`` is not a watched deployment, or there is none.
        """
        out = []
        for d in self._targets(deployment):
            book = self._book(d)
            level = self.autonomy(d)
            decisions = records.agent_decisions(self.ledger, deployment_id=d["deployment_id"],
                                                limit=RECENT)
            cfg = book["config"]
            out.append({
                "deployment": d["name"], "deployment_id": d["deployment_id"], "mode": d["mode"],
                "status": d["status"], "autonomy_level": level, "autonomy": LEVEL_NAMES[level],
                "autonomy_changes": records.autonomy_changes(self.ledger, d["deployment_id"]),
                "positions": book["positions"],
                "account": {"quote": book["quote"], "accounts": book["accounts"]},
                "recent_decisions": [self._decision_view(x) for x in decisions],
                "strategy_state": {
                    "strategy": cfg.get("strategy"), "params": cfg.get("params"),
                    "timeframe": cfg.get("timeframe"), "last_bar": book["last_bar"],
                    "paused": book["paused"], "halts": book["halts"],
                    "symbols": [{"symbol": s["name"], "state": _STATES[int(s.get("state", 0))],
                                 "last_close": s.get("last_close"),
                                 "stop_loss": (s.get("levels") or [None, None])[0],
                                 "take_profit": (s.get("levels") or [None, None])[1]}
                                for s in book["strategy_symbols"]]},
                "pending_approvals": [
                    {**a, "intent": json.loads(a["intent"])} for a in
                    self.ledger.approvals(deployment_id=d["deployment_id"], status="pending")],
                "anomalies": records.anomalies(self.ledger, deployment_id=d["deployment_id"])})
        return {"now": self.now(), "deployments": out}

    def decisions(self, *, deployment: str | None = None, symbol: str | None = None,
                  action: str | None = None, since_ts: int | None = None,
                  until_ts: int | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Return recent agent decisions with their reasoning, newest first.

        Parameters
        ----------
        deployment : str, optional
            Only this deployment's (any deployment of the ledger, by name).
        symbol : str, optional
            Only decisions about this symbol.
        action : str, optional
            Only this action (``EXECUTE_TRADES``, ``HOLD``, ...; any letter case).
        since_ts, until_ts : int, optional
            Only decisions with ``since_ts <= ts < until_ts`` (UTC epoch seconds).
        limit : int
            At most this many (1-1000; default 50).

        Returns
        -------
        list of dict
            As the status's ``last_decision`` (id, ts, time, event kind, symbol, action,
            confidence, autonomy level, reasoner, reasoning, key factors, verdicts,
            outcome) plus ``deployment`` (its name, ``None`` for a decision of no
            deployment).

        Raises
        ------
        OversightNotFound
            An unknown deployment.
        OversightError
            A ``limit`` outside 1-1000, or ``until_ts`` not after ``since_ts``.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise OversightError(f"limit {limit!r}: give 1-1000")
        if since_ts is not None and until_ts is not None and until_ts <= since_ts:
            raise OversightError(f"until {until_ts} is not after since {since_ts}")
        names = {d["deployment_id"]: d["name"] for d in self.ledger.deployments()}
        dep_id = None
        if deployment is not None:
            dep_id = next((i for i, n in names.items() if n == deployment), None)
            if dep_id is None:
                raise OversightNotFound(f"deployment {deployment}: no such deployment in "
                                        f"{self.url}")
        filtered = symbol is not None or action is not None or until_ts is not None
        rows = records.agent_decisions(self.ledger, deployment_id=dep_id, since_ts=since_ts,
                                       limit=None if filtered else limit)
        out = []
        for d in reversed(rows):
            if symbol is not None and d.get("symbol") != symbol:
                continue
            if action is not None and str(d["action"]).upper() != action.upper():
                continue
            if until_ts is not None and int(d["ts"]) >= until_ts:
                continue
            out.append({**self._decision_view(d), "deployment": names.get(d["deployment_id"])})
            if len(out) >= limit:
                break
        return out

    def queue(self) -> list[dict[str, Any]]:
        """Return the approvals waiting for a person, oldest first, each with what led to it.

        Returns
        -------
        list of dict
            The watched deployments' ``pending`` ``approvals`` rows (``id`` is what
            :meth:`approve` and :meth:`reject` take), ``intent`` parsed, plus
            ``deployment`` (name), ``time`` (ISO of ``ts``), ``decision_id`` and
            ``reasoning`` of the agent decision that queued it (named by a verdict's
            ``approval_id``, else the same run and ``decision_seq``; ``None`` without
            one), and ``command_pending`` (``approve`` / ``reject`` when a person's
            command already waits for the engine, else ``None``).

        Raises
        ------
        tradewarden.ledger.LedgerError
            If the ledger cannot be read.
        """
        out = []
        ad, gv = schema.agent_decisions, schema.governor_verdicts
        for dep in self.deployments():
            pending = self.ledger.approvals(deployment_id=dep["deployment_id"], status="pending")
            if not pending:
                continue
            waiting = {c["target"]: c["kind"] for c in
                       self.ledger.pending_commands(dep["deployment_id"])
                       if c["kind"] in ("approve", "reject")}
            ids = [a["id"] for a in pending]
            by_verdict = {r["approval_id"]: r["agent_decision_id"] for r in self._select(
                select(gv.c.approval_id, gv.c.agent_decision_id)
                .where(gv.c.approval_id.in_(ids), gv.c.agent_decision_id.is_not(None))
                .order_by(gv.c.id), "the verdicts of the pending approvals")}
            seqs = [a["decision_seq"] for a in pending]
            by_seq = {(r["run_id"], r["decision_seq"]): r["id"] for r in self._select(
                select(ad.c.id, ad.c.run_id, ad.c.decision_seq)
                .where(ad.c.deployment_id == dep["deployment_id"],
                       ad.c.decision_seq.in_(seqs)).order_by(ad.c.id),
                "the decisions of the pending approvals")}
            for a in pending:
                did = by_verdict.get(a["id"]) or by_seq.get((a["run_id"], a["decision_seq"]))
                reasoning = None
                if did is not None:
                    d = records.agent_decision(self.ledger, int(did))
                    reasoning = (d.get("output") or {}).get("reasoning") if d else None
                out.append({**a, "intent": json.loads(a["intent"]), "deployment": dep["name"],
                            "time": iso(int(a["ts"])), "decision_id": did,
                            "reasoning": reasoning, "command_pending": waiting.get(str(a["id"]))})
        return sorted(out, key=lambda a: a["id"])

    def audit(self, days: float | None = None, decision_id: int | None = None) -> dict[str, Any]:
        """Return the full reasoning of agent decisions: context sent, output, verdicts.

        Parameters
        ----------
        days : float, optional
            The decisions of the last ``days`` days of the watched deployments (by their
            ``ts``, clock time); default 1 when ``decision_id`` is not given.
        decision_id : int, optional
            One decision (any deployment's), with the approvals it led to and the
            commands that acted on them.

        Returns
        -------
        dict
            ``decision_id`` given: ``decision`` (the ``agent_decisions`` row, ``context``
            and ``output`` parsed, ``verdicts``), ``approvals`` (rows, intent parsed),
            ``commands`` (inbox rows targeting them), ``outcome``. Otherwise ``since``
            (UTC epoch s), ``days`` and ``decisions`` (each as above), oldest first.

        Raises
        ------
        OversightError
            Both given, a non-positive ``days``, or an unknown ``decision_id``.
        """
        if days is not None and decision_id is not None:
            raise OversightError("give days or a decision id, not both")
        if decision_id is not None:
            d = records.agent_decision(self.ledger, int(decision_id))
            if d is None:
                raise OversightNotFound(f"decision {decision_id}: no such agent decision in {self.url}")
            return self._full(d)
        days = 1 if days is None else days
        if not days > 0:
            raise OversightError(f"days {days!r}: give a number of days above 0")
        since = self.now() - int(float(days) * DAY)
        ids = {d["deployment_id"] for d in self.deployments()}
        rows = [r for r in records.agent_decisions(self.ledger, since_ts=since)
                if r["deployment_id"] is None or r["deployment_id"] in ids]
        return {"since": since, "days": days, "decisions": [self._full(r) for r in rows]}

    def _full(self, d: dict[str, Any]) -> dict[str, Any]:
        approvals = self._approvals_of(d)
        cmds = []
        if approvals and d.get("deployment_id"):
            targets = {str(a["id"]) for a in approvals}
            cmds = [c for c in self.ledger.commands(deployment_id=d["deployment_id"])
                    if c["kind"] in ("approve", "reject") and c["target"] in targets]
        return {"decision": {**d, "time": iso(d["ts"])},
                "approvals": [{**a, "intent": json.loads(a["intent"])} for a in approvals],
                "commands": cmds, "outcome": self._outcome(d)}

    def costs(self, days: float = 7) -> dict[str, Any]:
        """Return the reasoning-model costs of the last ``days`` days.

        Parameters
        ----------
        days : float
            Days back from the clock's now (by each call's ``ts``); above 0.

        Returns
        -------
        dict
            ``since`` (UTC epoch s), ``days``; ``rows``: per UTC day, model and call
            type (sorted so), ``day`` (``YYYY-MM-DD``), ``provider``, ``model``,
            ``call_type``, ``calls``, ``input_tokens``, ``output_tokens``,
            ``cache_read_tokens``, ``cache_write_tokens``, ``cost_usd`` (Decimal US
            dollars, from the prices recorded with each call); ``by_model``: model ->
            calls and cost; ``total``: calls, every token count and ``cost_usd``.

        Raises
        ------
        OversightError
            A non-positive ``days``.
        """
        if not days > 0:
            raise OversightError(f"days {days!r}: give a number of days above 0")
        since = self.now() - int(float(days) * DAY)
        counts = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
        groups: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        total: dict[str, Any] = {"calls": 0, **{c: 0 for c in counts}, "cost_usd": _ZERO}
        models: dict[str, dict[str, Any]] = defaultdict(lambda: {"calls": 0, "cost_usd": _ZERO})
        for r in records.costs(self.ledger, since_ts=since):
            key = (iso(int(r["ts"]))[:10], r["model"], r["call_type"], r["provider"])
            g = groups.setdefault(key, {"day": key[0], "provider": key[3], "model": key[1],
                                        "call_type": key[2], "calls": 0,
                                        **{c: 0 for c in counts}, "cost_usd": _ZERO})
            cost = _dec(float(r["cost_usd"]))
            for target in (g, total):
                target["calls"] += 1
                for c in counts:
                    target[c] += int(r[c] or 0)
                target["cost_usd"] += cost
            models[r["model"]]["calls"] += 1
            models[r["model"]]["cost_usd"] += cost
        return {"since": since, "days": days, "rows": [groups[k] for k in sorted(groups)],
                "by_model": dict(models), "total": total}

    # -- text for a phone and the terminal ----------------------------------------------
    def text_status(self) -> str:
        """Return :meth:`status` as a few short lines (a phone screen, the terminal)."""
        st = self.status()
        lines = []
        if st["running"]:
            lines.append(f"daemon running (pid {st['pid']}, since {st['since']})")
        else:
            lines.append("daemon NOT running")
        beat = st["heartbeat"]
        if beat:
            lines.append(f"last heartbeat {_age(st['heartbeat_age_seconds'])} ago: {beat['status']}"
                         + (f", {_short(beat['activity'], 80)}" if beat.get("activity") else ""))
        else:
            lines.append("no heartbeat recorded")
        lines.append(f"queued events: {st['queued_events']}")
        if not st["deployments"]:
            lines.append("no deployments")
        for name, d in st["by_deployment"].items():
            flags = [f for f, on in (("PAUSED", d["paused"]), ("KILL SWITCH", d["kill_switch"]))
                     if on]
            halts = sorted({h for hs in d["halts"].values() for h in hs} - {"kill_switch"})
            if halts:
                flags.append("halted: " + ", ".join(halts))
            lines.append(f"{name} ({d['mode']}): {d['status']}, L{d['autonomy_level']} "
                         f"{d['autonomy']}" + (f", {', '.join(flags)}" if flags else "")
                         + f"; last bar {d['last_bar'] or '-'}")
            lines.extend("  " + self._position_line(p, d["quote"]) for p in d["positions"])
            if not d["positions"]:
                lines.append("  flat")
            for a in d["pending_approvals"]:
                lines.append(f"  approval {a['id']} pending: {a['action']} {a['symbol']} "
                             f"qty {a['intent'].get('quantity', '?')}")
            if d["pending_commands"]:
                lines.append(f"  {d['pending_commands']} command(s) pending")
            for an in d["open_anomalies"]:
                lines.append(f"  ANOMALY {an['kind']}" + (f" {an['symbol']}" if an["symbol"] else "")
                             + f" since {iso(an['opened_ts'])}")
            last = d["last_decision"]
            if last:
                conf = f" ({last['confidence']:.2f})" if last["confidence"] is not None else ""
                lines.append(f"  last decision {last['id']} {last['time']}: {last['action']}"
                             + (f" {last['symbol']}" if last["symbol"] else "") + conf
                             + f": {_short(last['reasoning'], 200)} [{last['outcome']}]")
        for a in st["recent_alerts"]:
            lines.append(f"alert {iso(a['ts'])} [{a['level']}] {_short(a['subject'], 120)}")
        return "\n".join(lines)

    @staticmethod
    def _position_line(p: dict[str, Any], quote: str) -> str:
        entry = "?" if p["entry_price"] is None else _money(p["entry_price"], quote).rsplit(" ", 1)[0]
        mark = "?" if p["mark"] is None else _money(p["mark"], quote).rsplit(" ", 1)[0]
        stop = ("" if p["stop_loss"] is None else
                f", stop {_money(p['stop_loss'], quote).rsplit(' ', 1)[0]}"
                + (f" ({p['stop_distance_pct']:.1f}% away)"
                   if p["stop_distance_pct"] is not None else ""))
        state = "" if p["state"] == "open" else f" [{p['state']}]"
        return (f"{p['symbol']} {_qty(p['quantity'])} @ {entry} -> {mark}: "
                f"{_money(p['unrealized_pnl'], quote, sign=True)}{stop}{state}")

    def text_positions(self) -> str:
        """Return every open position, one line each, by deployment."""
        lines = []
        for d in self.deployments():
            book = self._book(d)
            lines.append(f"{d['name']}: " + (f"{len(book['positions'])} position(s)"
                                             if book["positions"] else "flat"))
            lines.extend("  " + self._position_line(p, book["quote"]) for p in book["positions"])
        return "\n".join(lines) or "no deployments"

    def text_pnl(self) -> str:
        """Return each deployment's realised, unrealised and today's PnL, and equity."""
        lines = []
        for name, p in self.pnl().items():
            q = p["quote"]
            win = f", {p['wins']}/{p['trades']} won" if p["trades"] else ""
            lines.append(f"{name}: realised {_money(p['realized'], q, True)} ({p['trades']} "
                         f"trade(s){win}), unrealised {_money(p['unrealized'], q, True)}, total "
                         f"{_money(p['total'], q, True)}")
            lines.append(f"  today: {_money(p['realized_today'], q, True)} realised in "
                         f"{p['trades_today']} trade(s); equity {_money(p['equity'], q)}, cash "
                         f"{_money(p['cash'], q)}")
        return "\n".join(lines) or "no deployments"

    def text_risk(self) -> str:
        """Return exposure, distance to stops, the day's loss against its limit and
        anomalies, by deployment."""
        lines = []
        for name, r in self.risk().items():
            q = r["quote"]
            pct = f" ({r['exposure_pct']:.1f}% of equity)" if r["exposure_pct"] is not None else ""
            lines.append(f"{name}: exposure {_money(r['exposure'], q)}{pct}, equity "
                         f"{_money(r['equity'], q)}")
            for p in r["positions"]:
                share = f" {p['pct_of_equity']:.1f}%" if p["pct_of_equity"] is not None else ""
                stop = (f", stop {p['stop_distance_pct']:.1f}% below" if p["stop_distance_pct"]
                        is not None else ", no stop known")
                lines.append(f"  {p['symbol']}{share}{stop}")
            for dl in r["daily_loss"]:
                if dl["limit_amount"] is None:
                    lines.append(f"  {dl['account']}: day {dl['day']}, change "
                                 f"{_money(dl['change'], q, True)}; no daily loss limit")
                else:
                    lines.append(f"  {dl['account']}: day {dl['day']}, change "
                                 f"{_money(dl['change'], q, True)}; daily loss limit "
                                 f"{_money(dl['limit_amount'], q)}, "
                                 f"{dl['limit_used_pct'] or 0:.0f}% used")
            halts = sorted({h for hs in r["halts"].values() for h in hs})
            if halts or r["paused"]:
                lines.append("  " + ", ".join((["paused"] if r["paused"] else [])
                                              + [f"halt {h}" for h in halts]))
            for an in r["open_anomalies"]:
                lines.append(f"  ANOMALY {an['kind']}" + (f" {an['symbol']}" if an["symbol"] else ""))
        return "\n".join(lines) or "no deployments"

    def text_report(self) -> str:
        """Return an end-of-day summary for the clock's UTC day: trades closed and PnL,
        open positions, decisions by action and verdict, approvals, anomalies, alerts
        and reasoning costs of the day."""
        now = self.now()
        day0 = now // DAY * DAY
        lines = [f"report {iso(day0)[:10]} (UTC, to {iso(now)[11:16]})"]
        pnl = self.pnl()
        for d in self.deployments():
            p, book = pnl[d["name"]], self._book(d)
            q = p["quote"]
            lines.append(f"{d['name']} ({d['mode']}, {d['status']}, L{self.autonomy(d)}): "
                         f"{p['trades_today']} trade(s) closed today, "
                         f"{_money(p['realized_today'], q, True)}; unrealised "
                         f"{_money(p['unrealized'], q, True)}; equity {_money(p['equity'], q)}")
            lines.extend("  " + self._position_line(x, q) for x in book["positions"])
            decisions = records.agent_decisions(self.ledger, deployment_id=d["deployment_id"],
                                                since_ts=day0)
            if decisions:
                acts = Counter(x["action"] for x in decisions)
                verdicts = Counter(v["verdict"] for x in decisions for v in x["verdicts"])
                lines.append(f"  {len(decisions)} decision(s): "
                             + ", ".join(f"{k} {n}" for k, n in sorted(acts.items()))
                             + ("; verdicts " + ", ".join(f"{k} {n}" for k, n in
                                                          sorted(verdicts.items()))
                                if verdicts else ""))
            today = [a for a in self.ledger.approvals(deployment_id=d["deployment_id"])
                     if int(a["ts"]) >= day0 or a["status"] == "pending"]
            if today:
                by_status = Counter(a["status"] for a in today)
                lines.append("  approvals: " + ", ".join(f"{k} {n}" for k, n in
                                                         sorted(by_status.items())))
            opened = [a for a in records.anomalies(self.ledger, deployment_id=d["deployment_id"],
                                                   status=None)
                      if a["status"] == "open" or int(a["opened_ts"]) >= day0]
            for an in opened:
                lines.append(f"  anomaly {an['kind']}" + (f" {an['symbol']}" if an["symbol"] else "")
                             + f": {an['status']}")
        alerts = self._alerts(since_ts=day0)
        if alerts:
            lines.append(f"alerts today: {len(alerts)} ("
                         + ", ".join(f"{k} {n}" for k, n in
                                     sorted(Counter(a["level"] for a in alerts).items())) + ")")
        cost = self.costs(days=(now - day0) / DAY or 1 / DAY)["total"]
        if cost["calls"]:
            lines.append(f"reasoning: {cost['calls']} call(s), {cost['cost_usd']:.4f} USD")
        return "\n".join(lines)

    # -- actions -------------------------------------------------------------------------
    @staticmethod
    def _actor(by: str) -> str:
        if not isinstance(by, str) or not by.strip() or len(by.strip()) > 64:
            raise OversightError(f"by {by!r}: say who gives the order (1-64 characters)")
        return by.strip()

    def _enqueue(self, dep: dict[str, Any], kind: str, actor: str, *, target: str | None = None,
                 reason: str | None = None) -> int:
        return self.ledger.enqueue_command(dep["deployment_id"], kind, actor=actor, target=target,
                                           reason=reason)

    def _each(self, kind: str, actor: str, reason: str | None,
              ids: list[int] | None = None) -> str:
        parts = []
        for dep in self._targets():
            cid = self._enqueue(dep, kind, actor, reason=reason)
            if ids is not None:
                ids.append(cid)
            parts.append(f"{dep['name']} (command {cid}, {self._when_it_acts(dep)})")
        return "; ".join(parts)

    def pause(self, reason: str, by: str, *, ids: list[int] | None = None) -> str:
        """Pause every watched deployment: no new entries until :meth:`resume`.

        Queues a ``pause`` command (with ``reason``, by ``by``) in each deployment's
        inbox; exits and protective orders go on. ``ids``, when given, receives the
        commands' ids (``commands.id``).

        Returns
        -------
        str
            One line: the commands queued and when they act.

        Raises
        ------
        OversightError
            An empty reason or ``by``, or no deployment.
        tradewarden.ledger.LedgerError
            The command cannot be written.
        """
        actor = self._actor(by)
        if not isinstance(reason, str) or not reason.strip():
            raise OversightError("pause: say why (a reason is recorded with the pause)")
        return f"pause queued by {actor} ({reason.strip()}): " + self._each("pause", actor,
                                                                          reason.strip(), ids)

    def resume(self, by: str, *, ids: list[int] | None = None) -> str:
        """Resume every watched deployment: lift a pause and the kill switch (``ids``, when
        given, receives the commands' ids).

        Returns
        -------
        str
            One line: the ``resume`` commands queued and when they act.

        Raises
        ------
        OversightError
            An empty ``by``, or no deployment.
        """
        actor = self._actor(by)
        return f"resume queued by {actor}: " + self._each("resume", actor, None, ids)

    def emergency_stop(self, by: str) -> str:
        """Halt every watched deployment and close every position through the broker.

        For each deployment, as ``warden kill --flatten`` does: a ``kill`` command (the
        kill switch: no new entries until resume) and then a ``flatten`` command
        (every open order cancelled, every position closed at market), both with the
        reason ``emergency stop``. Nothing is started: a deployment that is not
        running acts on them when it next starts (``warden daemon emergency-stop
        --config`` starts one just long enough).

        Returns
        -------
        str
            One line naming the commands and when they act.

        Raises
        ------
        OversightError
            An empty ``by``, or no deployment.
        """
        actor = self._actor(by)
        parts = []
        for dep in self._targets():
            kill = self._enqueue(dep, "kill", actor, reason="emergency stop")
            flat = self._enqueue(dep, "flatten", actor, reason="emergency stop")
            parts.append(f"{dep['name']} (kill switch: command {kill}, close every position: "
                         f"command {flat}; {self._when_it_acts(dep)})")
        return f"EMERGENCY STOP queued by {actor}: " + "; ".join(parts)

    def _deployment_of(self, approval: dict[str, Any]) -> dict[str, Any]:
        deps = {d["deployment_id"]: d for d in self.deployments()}
        dep = deps.get(approval["deployment_id"])
        if dep is None:
            if approval["deployment_id"] is None:
                raise OversightError(f"approval {approval['id']} was queued by run "
                                     f"{approval['run_id']}, not by a deployment")
            names = {d["deployment_id"]: d["name"] for d in self.ledger.deployments()}
            raise OversightConflict(f"approval {approval['id']} belongs to deployment "
                                 f"{names.get(approval['deployment_id'], approval['deployment_id'])}, "
                                 "not one the daemon runs")
        return dep

    def _decide(self, approval_id: Any, kind: str, actor: str, reason: str | None,
                ids: list[int] | None = None) -> str:
        """Queue ``approve`` or ``reject`` of an approval that can be acted on now.

        The claim is atomic in the ledger (:meth:`Ledger.claim_approval`): of several
        people acting on one approval at once exactly one gets a command; the others
        get :class:`OversightConflict` saying what is already pending or done.
        """
        try:
            aid = int(approval_id)
        except (TypeError, ValueError):
            raise OversightError(f"approval id {approval_id!r}: give a number") from None
        row = self.ledger.approval(aid)
        if row is None:
            raise OversightNotFound(f"approval {aid}: no such approval in {self.url}")
        dep = self._deployment_of(row)
        cid = self.ledger.claim_approval(dep["deployment_id"], aid, kind, actor=actor,
                                         reason=reason)
        if cid is None:
            row = self.ledger.approval(aid) or row
            if row["status"] != "pending":
                who = f" by {row['acted_by']}" if row["acted_by"] else ""
                why = f" ({row['reason']})" if row["reason"] else ""
                raise OversightConflict(f"approval {aid} is {row['status']}{who}{why}, not pending")
            for cmd in self.ledger.pending_commands(dep["deployment_id"]):
                if cmd["kind"] in ("approve", "reject") and cmd["target"] == str(aid):
                    raise OversightConflict(
                        f"approval {aid} already has command {cmd['id']} pending "
                        f"({cmd['kind']} by {cmd['actor']}): it is being decided")
            raise OversightConflict(f"approval {aid} could not be claimed; look again")
        if ids is not None:
            ids.append(cid)
        because = f" ({reason})" if reason else ""
        return (f"{kind} approval {aid} ({row['action']} {row['symbol']}) queued by {actor}"
                f"{because}: {dep['name']} command {cid}, {self._when_it_acts(dep)}")

    def approve(self, approval_id: int, by: str, *, ids: list[int] | None = None) -> str:
        """Approve a pending approval: queue ``approve`` in its deployment's inbox.

        The engine checks risk again with the figures of then and submits the order,
        or refuses (the command's result says which). ``ids``, when given, receives
        the command's id.

        Returns
        -------
        str
            One line: what is approved, the command and when it acts.

        Raises
        ------
        OversightNotFound
            An unknown approval.
        OversightConflict
            One of a deployment the daemon does not run, one no longer pending or with
            an approve/reject already pending (also when another caller's claim won a
            race).
        OversightError
            A non-numeric id or an empty ``by``.
        """
        return self._decide(approval_id, "approve", self._actor(by), None, ids)

    def reject(self, approval_id: int, reason: str, by: str, *,
               ids: list[int] | None = None) -> str:
        """Reject a pending approval, with a reason: queue ``reject`` in its inbox.

        Raises
        ------
        OversightError
            An empty reason, and as :meth:`approve`.
        """
        actor = self._actor(by)
        if not isinstance(reason, str) or not reason.strip():
            raise OversightError(f"reject approval {approval_id}: say why (a reason is required)")
        return self._decide(approval_id, "reject", actor, reason.strip(), ids)

    def set_autonomy(self, level: int, by: str, reason: str) -> str:
        """Set every watched deployment's autonomy level (an ``autonomy_changes`` row of
        kind ``command`` by ``by``, stamped with the clock's time).

        L1 recommend only, L2 supervised, L3 semi-autonomous, L4 autonomous (only anomaly
        flags and the always-a-person triggers stop it). A deployment already at
        ``level`` is left as it is.

        Returns
        -------
        str
            One line: each deployment's change.

        Raises
        ------
        OversightError
            A level other than 1-4, an empty reason or ``by``, or no deployment.
        """
        actor = self._actor(by)
        if isinstance(level, bool) or level not in LEVEL_NAMES:
            raise OversightError(f"autonomy level {level!r}: give 1, 2, 3 or 4")
        if not isinstance(reason, str) or not reason.strip():
            raise OversightError("set autonomy: say why (a reason is recorded with the change)")
        parts = []
        for dep in self._targets():
            before = self.autonomy(dep)
            if before == level:
                parts.append(f"{dep['name']} already L{level}")
                continue
            records.record_autonomy_change(
                self.ledger, deployment_id=dep["deployment_id"], ts=self.now(),
                from_level=before, to_level=int(level), kind="command", reason=reason.strip(),
                actor=actor)
            parts.append(f"{dep['name']} L{before} -> L{level}")
        return (f"autonomy L{level} ({LEVEL_NAMES[level]}) set by {actor} ({reason.strip()}): "
                + "; ".join(parts))

    def override(self, decision_id: int, approve: bool, reason: str | None, by: str) -> str:
        """Approve or reject what an agent decision left waiting for a person.

        The decision's pending approval is found through its governor verdicts
        (``approval_id``), an approval whose intent carries its ``agent_decision_id``,
        or the approval queued by its engine decision (same run and ``decision_seq``);
        then queued as :meth:`approve` / :meth:`reject` do, the reason recorded as
        ``override of agent decision ID: REASON``.

        Parameters
        ----------
        decision_id : int
            ``agent_decisions.id``.
        approve : bool
            ``True`` approves, ``False`` rejects.
        reason : str or None
            Why; required to reject.
        by : str
            Who.

        Returns
        -------
        str
            One line: the command queued and when it acts.

        Raises
        ------
        OversightError
            An unknown decision, one with nothing pending, a reject without a reason, or
            as :meth:`approve`.
        """
        actor = self._actor(by)
        reason = reason.strip() if isinstance(reason, str) and reason.strip() else None
        if not approve and reason is None:
            raise OversightError(f"override {decision_id} --reject: say why (a reason is required)")
        try:
            did = int(decision_id)
        except (TypeError, ValueError):
            raise OversightError(f"decision id {decision_id!r}: give a number") from None
        d = records.agent_decision(self.ledger, did)
        if d is None:
            raise OversightNotFound(f"decision {did}: no such agent decision in {self.url}")
        linked = self._approvals_of(d)
        pending = [a for a in linked if a["status"] == "pending"]
        if not pending:
            if linked:
                a = linked[-1]
                who = f" by {a['acted_by']}" if a.get("acted_by") else ""
                raise OversightError(f"decision {did}: nothing pending to override (its approval "
                                     f"{a['id']} is {a['status']}{who})")
            raise OversightError(f"decision {did}: nothing pending to override "
                                 f"({self._outcome(d)})")
        why = f"override of agent decision {did}" + (f": {reason}" if reason else "")
        return self._decide(pending[-1]["id"], "approve" if approve else "reject", actor, why)


__all__ = ["DAY", "DEFAULT_AUTONOMY", "LEVEL_NAMES", "Oversight", "OversightConflict",
           "OversightError", "OversightNotFound"]
