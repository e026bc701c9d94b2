"""The ledger schema (SQLAlchemy Core). Alembic migrations create exactly this.

Conventions
-----------
* Every row carries ``run_id``; every table's primary key starts with it, so rows of
  one run are found through the key's index.
* ``ts`` columns are bar open times in UTC epoch seconds (INTEGER); tables a person
  reads row by row (orders, fills, trades) also carry ISO 8601 text times.
* Money and quantities are exact decimals: TEXT on SQLite, NUMERIC on PostgreSQL
  (:class:`DecimalText`). High-volume mark-to-market numbers (decision ``close`` and
  inputs, equity snapshots) are REAL.
* ``runs`` records the process running each run (``pid``, ``host``,
  ``process_start``) and its ``heartbeat_at``, so a later command can tell a run
  whose process died (``crashed``) from one still running; ``summary`` caches the
  report's headline figures (JSON) for ``warden runs`` and ``warden compare``.
* ``decisions`` holds one row per bar per symbol, holds and blocks included, with
  the bar ``close`` and ``equity``: the mark-to-market equity of the decision's
  account (the symbol in ``independent`` mode, ``portfolio`` otherwise) at that
  bar's close, after the bar's fills. It is the per-bar equity curve. The
  strategy's input values are in ``x1``..``x4``; their names are in
  ``runs.input_names`` (JSON list). Non-hold decisions also carry ``detail`` JSON
  (all inputs by name, sizing, order ids, rejection reason).
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

import tradewarden.ledger.pgvector  # noqa: F401,E402 - registers pgvector's type for reflection


class DecimalText(TypeDecorator):
    """Exact decimal column: TEXT on SQLite (no precision loss), NUMERIC elsewhere."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect):  # noqa: D102
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(64))
        return dialect.type_descriptor(Numeric(38, 18))

    def process_bind_param(self, value, dialect):  # noqa: D102
        if value is None:
            return None
        if dialect.name == "sqlite":
            return str(value)
        return Decimal(value)

    def process_result_value(self, value, dialect):  # noqa: D102
        if value is None:
            return None
        return Decimal(str(value))


metadata = MetaData()

runs = Table(
    "runs", metadata,
    Column("run_id", String(32), primary_key=True),
    Column("mode", String(16), nullable=False),            # replay | paper | live
    Column("capital_mode", String(16), nullable=False),    # independent | portfolio
    Column("market_time_basis", String(64), nullable=False),
    Column("data_integrity", String(16), nullable=False, default="unknown"),  # ok | degraded
    Column("data_quality", Text),                         # JSON per symbol
    Column("created_by", String(64)),
    Column("git_sha", String(40)),
    Column("config_hash", String(64), nullable=False),
    Column("config", Text, nullable=False),               # JSON of the frozen run config
    Column("strategy", String(64), nullable=False),
    Column("input_names", Text),                          # JSON list naming decisions.x1..x4
    Column("symbols", Text, nullable=False),              # JSON list
    Column("timeframe", String(8), nullable=False),
    Column("range_start", String(32)),
    Column("range_end", String(32)),
    Column("initial_capital", DecimalText, nullable=False),  # per symbol (independent) or total
    Column("started_at", String(32), nullable=False),
    Column("completed_at", String(32)),
    # running | completed | failed | interrupted (stopped by a signal, what was
    # processed is committed) | crashed (its process is gone; found by a later command)
    Column("status", String(16), nullable=False),
    Column("error", Text),
    Column("bars_processed", Integer, default=0),
    Column("decisions", Integer, default=0),
    Column("trades_opened", Integer, default=0),
    Column("trades_closed", Integer, default=0),
    Column("notes", Text),
    # Liveness (migration 0002): the process running the run and when it last reported.
    Column("pid", Integer),
    Column("host", String(255)),
    Column("process_start", String(64)),  # boot id and start time of pid: tells pid reuse apart
    Column("heartbeat_at", String(32)),   # UTC ISO, wall clock (bookkeeping)
    Column("summary", Text),              # JSON: the report's headline figures
)
Index("ix_runs_started_at", runs.c.started_at)

decisions = Table(
    "decisions", metadata,
    Column("run_id", String(32), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("ts", Integer, nullable=False),
    Column("symbol", String(32), nullable=False),
    Column("action", String(16), nullable=False),   # hold|enter_long|exit|rejected|blocked|queued
    Column("reason", String(64), nullable=False),
    Column("state", String(16), nullable=False),    # position state when deciding
    Column("close", Float),
    Column("equity", Float),                        # account equity at the bar close
    Column("x1", Float),
    Column("x2", Float),
    Column("x3", Float),
    Column("x4", Float),
    Column("detail", Text),
    sqlite_with_rowid=False,
)

orders = Table(
    "orders", metadata,
    Column("run_id", String(32), primary_key=True),
    Column("client_order_id", String(96), primary_key=True),
    Column("decision_seq", Integer),
    Column("symbol", String(32), nullable=False),
    Column("side", String(8), nullable=False),
    Column("type", String(8), nullable=False),
    Column("role", String(16), nullable=False),
    Column("quantity", DecimalText, nullable=False),
    Column("price", DecimalText),
    Column("stop_price", DecimalText),
    Column("parent_id", String(96)),
    Column("status", String(16), nullable=False),
    Column("status_reason", Text),
    Column("created_ts", Integer, nullable=False),
    Column("created_time", String(32), nullable=False),
    Column("updated_ts", Integer),
)
Index("ix_orders_run_symbol", orders.c.run_id, orders.c.symbol)

fills = Table(
    "fills", metadata,
    Column("run_id", String(32), primary_key=True),
    Column("fill_seq", Integer, primary_key=True, autoincrement=False),
    Column("client_order_id", String(96), nullable=False),
    Column("symbol", String(32), nullable=False),
    Column("side", String(8), nullable=False),
    Column("role", String(16), nullable=False),
    Column("quantity", DecimalText, nullable=False),
    Column("price", DecimalText, nullable=False),
    Column("reference_price", DecimalText, nullable=False),
    Column("fee", DecimalText, nullable=False),
    Column("liquidity", String(8), nullable=False),
    Column("ts", Integer, nullable=False),
    Column("time", String(32), nullable=False),
)
Index("ix_fills_run_order", fills.c.run_id, fills.c.client_order_id)

trades = Table(
    "trades", metadata,
    Column("run_id", String(32), primary_key=True),
    Column("trade_id", String(96), primary_key=True),
    Column("symbol", String(32), nullable=False),
    Column("side", String(8), nullable=False),
    Column("quantity", DecimalText, nullable=False),
    Column("entry_ts", Integer, nullable=False),
    Column("entry_time", String(32), nullable=False),
    Column("entry_price", DecimalText, nullable=False),
    Column("exit_ts", Integer, nullable=False),
    Column("exit_time", String(32), nullable=False),
    Column("exit_price", DecimalText, nullable=False),
    Column("fees", DecimalText, nullable=False),
    Column("pnl", DecimalText, nullable=False),
    Column("return_pct", Float),
    Column("exit_reason", String(16), nullable=False),
    Column("entry_order_id", String(96), nullable=False),
    Column("exit_order_id", String(96), nullable=False),
    Column("holding_seconds", Integer, nullable=False),
    # maximum adverse / favourable excursion (revision 0007; NULL for older trades): the
    # lowest and highest price the long position lived through, and each as a
    # percentage of the entry price (<= 0 and >= 0)
    Column("mae_price", DecimalText),
    Column("mfe_price", DecimalText),
    Column("mae_pct", Float),
    Column("mfe_pct", Float),
)
Index("ix_trades_run_symbol", trades.c.run_id, trades.c.symbol, trades.c.exit_ts)

# Equity snapshots: one row per account at the start and after every fill that
# changes its cash (entry, exit, liquidation), marked at that bar's close. The
# per-bar curve is decisions.equity.
equity = Table(
    "equity", metadata,
    Column("run_id", String(32), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("account", String(32), nullable=False),   # symbol (independent) or "portfolio"
    Column("ts", Integer, nullable=False),
    Column("cash", Float, nullable=False),
    Column("equity", Float, nullable=False),
    sqlite_with_rowid=False,
)

# Risk and engine events: halts, resets, data problems, failures.
events = Table(
    "events", metadata,
    Column("run_id", String(32), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("ts", Integer),
    Column("kind", String(32), nullable=False),      # halt | data | error | info
    Column("symbol", String(32)),
    Column("message", Text, nullable=False),
)

#: The order journal: every venue acknowledgement and order event, in the order the
#: engine received it (paper and live; replay does not journal). ``fill_seq`` links a
#: fill event to its ``fills`` row.
order_events = Table(
    "order_events", metadata,
    Column("run_id", String(32), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("ts", Integer, nullable=False),                   # venue time, UTC epoch seconds
    Column("client_order_id", String(96), nullable=False),
    Column("kind", String(24), nullable=False),              # accepted | working | triggered | ...
    Column("status", String(24), nullable=False),            # the order's status after it
    Column("reason", Text),
    Column("fill_seq", Integer),
)

#: A deployment's engine state after each ledger commit (paper and live): accounts,
#: holdings, position states, open orders, bracket legs, risk halts, the simulated
#: venue's books, as JSON. A restart of the deployment reloads the latest one.
engine_state = Table(
    "engine_state", metadata,
    Column("run_id", String(32), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("deployment_id", String(32), nullable=False),
    Column("ts", Integer, nullable=False),                   # the last bar's open time
    Column("state", Text, nullable=False),
)

#: Paper and live deployments: a named, long-lived run with its own id, configuration
#: and strategy version. Client order ids come from ``deployment_id`` and
#: ``next_order_seq``, reserved in blocks and never handed out twice.
deployments = Table(
    "deployments", metadata,
    Column("deployment_id", String(32), primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("mode", String(16), nullable=False),              # paper | live
    Column("created_at", String(32), nullable=False),
    Column("config", Text, nullable=False),
    Column("config_hash", String(64), nullable=False),
    Column("strategy_source", Text),
    Column("status", String(16), nullable=False),            # created|running|stopped|failed
    Column("next_order_seq", Integer, nullable=False),
    Column("run_id", String(32)),                            # its current run
)

#: Intents the governor queued for a person's approval, with the risk figures they were
#: checked against. ``status``: pending, approved, rejected or expired.
approvals = Table(
    "approvals", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), nullable=False),
    Column("deployment_id", String(32)),
    Column("decision_seq", Integer, nullable=False),
    Column("ts", Integer, nullable=False),                   # the decision's bar, UTC epoch s
    Column("symbol", String(32), nullable=False),
    Column("action", String(16), nullable=False),            # enter_long | exit
    Column("intent", Text, nullable=False),                  # JSON: levels, sizing, risk snapshot
    Column("status", String(16), nullable=False),            # pending | approved | rejected | expired
    Column("acted_by", String(64)),
    Column("acted_at", String(32)),
    Column("reason", Text),
)

#: The command inbox (migration 0004): what people asked a deployment to do, written by
#: the CLI (``warden approvals approve``, ``warden pause``, ...) and processed by the
#: engine between bars. ``kind``: approve, reject, pause, resume, kill, flatten, close,
#: accept; ``target``: the approval id (approve, reject) or the symbol (close);
#: ``status``: pending, then done or refused with ``result`` saying what happened.
commands = Table(
    "commands", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("deployment_id", String(32), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("target", String(64)),
    Column("reason", Text),
    Column("actor", String(64), nullable=False),             # who gave it
    Column("created_at", String(32), nullable=False),        # UTC ISO, wall clock
    Column("status", String(16), nullable=False),            # pending | done | refused
    Column("result", Text),                                  # what the engine did, or why not
    Column("processed_at", String(32)),
    Column("run_id", String(32)),                            # the run that processed it
)
Index("ix_commands_deployment_status", commands.c.deployment_id, commands.c.status)

#: Differences between the ledger and the venue found when a deployment reconciles
#: (migration 0004). ``kind``: position, order_unknown (the venue has an order the
#: ledger does not), order_missing (the reverse), balance; ``ours`` and ``venue`` are
#: short texts (a quantity such as ``0.0123``, an order id). New entries stay blocked
#: while one is ``open``; ``accepted`` when a person adopted the venue's view;
#: ``resolved`` when a later reconciliation superseded it (found again or gone).
reconciliations = Table(
    "reconciliations", metadata,
    Column("run_id", String(32), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("deployment_id", String(32), nullable=False),
    Column("ts", Integer, nullable=False),                   # clock time, UTC epoch seconds
    Column("kind", String(24), nullable=False),
    Column("symbol", String(32)),
    Column("ours", Text),
    Column("venue", Text),
    Column("status", String(16), nullable=False),            # open | accepted | resolved
    Column("resolved_by", String(64)),
    Column("resolved_at", String(32)),
)
Index("ix_reconciliations_deployment", reconciliations.c.deployment_id, reconciliations.c.status)

#: The daemon's heartbeats (migration 0005): one row per beat (about every 60 s), by
#: daemon and sequence number. ``ts`` is the wall clock (UTC ISO, bookkeeping);
#: ``pid``, ``host`` and ``process_start`` identify the process as on ``runs``;
#: ``status``: starting, running, paused, error, shutdown; ``activity`` says what it is
#: doing; ``queue_depth`` counts the events due or being processed; ``anomalies`` and
#: ``deployments`` are JSON lists (active anomaly flags, deployment names).
daemon_heartbeats = Table(
    "daemon_heartbeats", metadata,
    Column("daemon_id", String(32), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("ts", String(32), nullable=False),                # UTC ISO, wall clock
    Column("pid", Integer, nullable=False),
    Column("host", String(255), nullable=False),
    Column("process_start", String(64)),
    Column("status", String(16), nullable=False),  # starting|running|paused|error|shutdown
    Column("activity", Text),
    Column("queue_depth", Integer, nullable=False),
    Column("autonomy_level", Integer),                       # 1-4
    Column("anomalies", Text),                               # JSON list
    Column("deployments", Text),                             # JSON list of deployment names
)
Index("ix_daemon_heartbeats_ts", daemon_heartbeats.c.ts)

#: The daemon's durable event queue (migration 0005). An event is ``pending`` until a
#: worker claims it (``processing``, with ``lease_owner`` and ``lease_until``); a worker
#: that dies leaves its lease to expire, and the event is claimed again (``attempts``
#: counts the claims); then ``done`` or ``failed`` (``error``). ``due_at`` and
#: ``lease_until`` are UTC epoch seconds; ``payload`` is JSON; an event whose
#: ``dedupe_key`` is already in the table is not added again.
daemon_events = Table(
    "daemon_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("payload", Text, nullable=False),                 # JSON object
    Column("dedupe_key", String(128)),
    Column("status", String(16), nullable=False),            # pending|processing|done|failed
    Column("attempts", Integer, nullable=False),
    Column("lease_owner", String(64)),
    Column("lease_until", Float),                            # UTC epoch seconds
    Column("due_at", Float, nullable=False),                 # UTC epoch seconds
    Column("created_at", String(32), nullable=False),        # UTC ISO, wall clock
    Column("finished_at", String(32)),
    Column("error", Text),
    UniqueConstraint("dedupe_key", name="uq_daemon_events_dedupe_key"),
)
Index("ix_daemon_events_status_due", daemon_events.c.status, daemon_events.c.due_at)

#: What a reasoning engine decided about an event (migration 0006), recorded with the
#: full context it saw before anything is done. ``ts``: the event's clock time (UTC
#: epoch seconds); ``decision_seq`` links a bar's engine decision; ``context`` and
#: ``output`` (a ``DecisionOutput``) are JSON; ``action`` and ``confidence`` repeat
#: the output's for queries.
agent_decisions = Table(
    "agent_decisions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("deployment_id", String(32)),
    Column("run_id", String(32)),
    Column("ts", Integer, nullable=False),
    Column("created_at", String(32), nullable=False),        # UTC ISO, wall clock
    Column("event_id", Integer),                             # daemon_events.id
    Column("event_kind", String(32), nullable=False),
    Column("symbol", String(32)),
    Column("decision_seq", Integer),
    Column("reasoner", String(32), nullable=False),
    Column("autonomy_level", Integer, nullable=False),       # 1-4
    Column("action", String(32), nullable=False),
    Column("confidence", Float),                             # 0-1
    Column("context", Text, nullable=False),                 # JSON
    Column("output", Text, nullable=False),                  # JSON DecisionOutput
)
Index("ix_agent_decisions_deployment_ts", agent_decisions.c.deployment_id, agent_decisions.c.ts)

#: What the autonomy governor let a decision do (migration 0006), apart from the
#: reasoning: ``verdict`` execute, queue (for a person), monitor or refuse;
#: ``triggers``: JSON list of the mandatory-human triggers that were active;
#: ``approval_id`` the queued approval.
governor_verdicts = Table(
    "governor_verdicts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agent_decision_id", Integer),
    Column("deployment_id", String(32)),
    Column("ts", Integer, nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("autonomy_level", Integer, nullable=False),
    Column("verdict", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("triggers", Text),                                # JSON list
    Column("approval_id", Integer),
)
Index("ix_governor_verdicts_decision", governor_verdicts.c.agent_decision_id)

#: Every autonomy level a deployment had (migration 0006): ``kind`` initial,
#: promotion, demotion or command; ``actor`` the person or ``governor``.
autonomy_changes = Table(
    "autonomy_changes", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("deployment_id", String(32), nullable=False),
    Column("ts", Integer, nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("from_level", Integer),
    Column("to_level", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("actor", String(64), nullable=False),
)
Index("ix_autonomy_changes_deployment", autonomy_changes.c.deployment_id, autonomy_changes.c.id)

#: Anomaly flags (migration 0006): while one is ``open`` a person must decide (only
#: monitor-only or a review request pass the governor); ``cleared`` with
#: ``cleared_ts`` when the condition ends or a person clears it. ``detail`` is JSON.
anomalies = Table(
    "anomalies", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("deployment_id", String(32)),
    Column("kind", String(32), nullable=False),
    Column("symbol", String(32)),
    Column("opened_ts", Integer, nullable=False),
    Column("cleared_ts", Integer),
    Column("status", String(16), nullable=False),            # open | cleared
    Column("detail", Text),
    Column("created_at", String(32), nullable=False),
)
Index("ix_anomalies_deployment_status", anomalies.c.deployment_id, anomalies.c.status)

#: Every alert raised (migration 0006): ``level`` info, warning or critical;
#: ``trigger`` what raised it; ``status`` queued, sent, partial, failed, logged (no
#: channel takes its level), suppressed (rate limit or duplicate), or late (raised while
#: the ledger could not be written: recorded when it could again); ``channels``: JSON of what each
#: channel did (``{"email": "sent", "slack": "failed: ..."}``).
alerts = Table(
    "alerts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Integer, nullable=False),                   # clock, UTC epoch seconds
    Column("created_at", String(32), nullable=False),
    Column("level", String(16), nullable=False),
    Column("trigger", String(32), nullable=False),
    Column("dedupe_key", String(128)),
    Column("deployment_id", String(32)),
    Column("subject", Text, nullable=False),
    Column("body", Text),
    Column("status", String(16), nullable=False),
    Column("channels", Text),
)
Index("ix_alerts_ts", alerts.c.ts)

#: Tokens and price of every reasoning-model call (migration 0006); ``cost_usd`` from
#: the configured price table.
reasoning_costs = Table(
    "reasoning_costs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Integer, nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("deployment_id", String(32)),
    Column("agent_decision_id", Integer),
    Column("provider", String(32), nullable=False),
    Column("model", String(64), nullable=False),
    Column("call_type", String(32), nullable=False),
    Column("input_tokens", Integer, nullable=False),
    Column("output_tokens", Integer, nullable=False),
    Column("cache_read_tokens", Integer, nullable=False),
    Column("cache_write_tokens", Integer, nullable=False),
    Column("cost_usd", Float, nullable=False),
    Column("call_id", Integer),                              # reasoning_calls.id (0008)
)
Index("ix_reasoning_costs_ts", reasoning_costs.c.ts)

# --- The reasoning layer's record (migration 0008) -------------------------------------

#: Every reasoning-model call (migration 0008), in full: ``request`` is the JSON of
#: what was sent (system prompt, messages, the serialised context, model and limits),
#: ``response`` the JSON of what came back (text and reasoning blocks included) or
#: NULL; ``parsed`` the validated ``DecisionOutput`` (or reflection) JSON when it
#: parsed. ``status``: ok, invalid (did not validate), refused, error, timeout, capped
#: (the daily cost cap stopped it before sending). ``cycle`` groups the calls of one
#: decision or reflection (``event:<id>``, ``reflection:<deployment>:<YYYY-MM-DD>``);
#: ``attempt`` counts from 1 (2 is the retry with the validation error); ``outcome``
#: what was done with the answer (executed, queued, monitor_only, fallback_rules, ...).
reasoning_calls = Table(
    "reasoning_calls", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Integer, nullable=False),                   # clock, UTC epoch seconds
    Column("created_at", String(32), nullable=False),        # UTC ISO, wall clock
    Column("deployment_id", String(32)),
    Column("agent_decision_id", Integer),
    Column("event_id", Integer),
    Column("cycle", String(96), nullable=False),
    Column("call_type", String(32), nullable=False),         # decide | reflect | ...
    Column("attempt", Integer, nullable=False),
    Column("provider", String(32), nullable=False),
    Column("model", String(64), nullable=False),
    Column("autonomy_level", Integer),
    Column("status", String(16), nullable=False),
    Column("request", Text, nullable=False),                 # JSON
    Column("response", Text),                                # JSON
    Column("parsed", Text),                                  # JSON
    Column("error", Text),
    Column("outcome", String(32)),
    Column("latency_ms", Integer),
    Column("input_tokens", Integer, nullable=False),
    Column("output_tokens", Integer, nullable=False),
    Column("cache_read_tokens", Integer, nullable=False),
    Column("cache_write_tokens", Integer, nullable=False),
    Column("cost_usd", Float, nullable=False),
)
Index("ix_reasoning_calls_ts", reasoning_calls.c.ts)
Index("ix_reasoning_calls_decision", reasoning_calls.c.agent_decision_id)

#: The reasoning layer's working memory (migration 0008): one JSON value per
#: ``(scope, key)``; ``scope`` is a deployment id or ``*`` for the whole daemon. Keys
#: such as ``strategy_state``, ``open_experiments``, ``recent_decisions``,
#: ``market_context``, ``performance_window``, ``anomalies``, ``autonomy_metrics``.
agent_memory = Table(
    "agent_memory", metadata,
    Column("scope", String(32), primary_key=True),
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),                   # JSON
    Column("ts", Integer, nullable=False),
    Column("updated_at", String(32), nullable=False),
)

#: Semantic recall (migration 0008): each decision's summary, its embedding and, once
#: known, its outcome. ``vector`` is little-endian float32, ``dim`` values; ``model``
#: names the embedding model (vectors of different models are never compared).
memory_embeddings = Table(
    "memory_embeddings", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agent_decision_id", Integer),
    Column("deployment_id", String(32)),
    Column("symbol", String(32)),
    Column("ts", Integer, nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("kind", String(32), nullable=False),              # decision | reflection | ...
    Column("summary", Text, nullable=False),
    Column("model", String(64), nullable=False),
    Column("dim", Integer, nullable=False),
    Column("vector", LargeBinary, nullable=False),
    Column("outcome", Text),                                 # JSON, when known
)
Index("ix_memory_embeddings_model", memory_embeddings.c.model, memory_embeddings.c.deployment_id)

#: What became of a decision (migration 0008): ``kind`` taken (a position it opened,
#: closed: ``pnl`` in quote currency, ``return_pct``) or skipped (a candidate not
#: taken, scored against the move that followed: ``return_pct`` of the underlying
#: over ``horizon_s``). ``detail`` JSON.
decision_outcomes = Table(
    "decision_outcomes", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agent_decision_id", Integer, nullable=False),
    Column("deployment_id", String(32)),
    Column("run_id", String(32)),
    Column("symbol", String(32)),
    Column("kind", String(16), nullable=False),              # taken | skipped
    Column("trade_id", String(96)),
    Column("opened_ts", Integer),
    Column("closed_ts", Integer),
    Column("horizon_s", Integer),
    Column("pnl", DecimalText),
    Column("return_pct", Float),
    Column("detail", Text),
    Column("ts", Integer, nullable=False),
    Column("created_at", String(32), nullable=False),
    UniqueConstraint("agent_decision_id", "kind", "symbol", name="uq_decision_outcomes_decision"),
)

#: End-of-day reflections (migration 0008), one per scope and trading day
#: (``day`` YYYY-MM-DD, the exchange calendar's session): ``content`` JSON (what was
#: good reasoning, what was luck, lessons), ``proposals`` JSON list of proposed
#: experiments; ``call_id`` the model call that wrote it.
reflections = Table(
    "reflections", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scope", String(32), nullable=False),
    Column("day", String(10), nullable=False),
    Column("ts", Integer, nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("model", String(64), nullable=False),
    Column("summary", Text, nullable=False),
    Column("content", Text, nullable=False),                 # JSON
    Column("proposals", Text),                               # JSON list
    Column("call_id", Integer),
    UniqueConstraint("scope", "day", name="uq_reflections_scope_day"),
)

#: A/B experiments (migration 0008): a proposed change of one ``parameter`` (or
#: filter) from ``control`` to ``variant`` (JSON values), run on ``mode`` paper or a
#: ``share`` of decisions (``allocation``, 0-1, for the variant). ``status`` proposed,
#: running, accepted, rejected, abandoned; judged by ``test`` with ``alpha`` and a
#: minimum effect ``min_effect``; ``result`` JSON (n per arm, means, effect, p value).
experiments = Table(
    "experiments", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scope", String(32), nullable=False),
    Column("name", String(96), nullable=False),
    Column("parameter", String(64), nullable=False),
    Column("control", Text, nullable=False),                 # JSON
    Column("variant", Text, nullable=False),                 # JSON
    Column("mode", String(16), nullable=False),              # paper | share
    Column("allocation", Float, nullable=False),
    Column("metric", String(32), nullable=False),
    Column("test", String(32), nullable=False),
    Column("alpha", Float, nullable=False),
    Column("min_effect", Float, nullable=False),
    Column("min_samples", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("proposed_by", String(64), nullable=False),       # reflection:<id> | a person
    Column("rationale", Text),
    Column("created_ts", Integer, nullable=False),
    Column("started_ts", Integer),
    Column("ended_ts", Integer),
    Column("result", Text),                                  # JSON
    Column("created_at", String(32), nullable=False),
)
Index("ix_experiments_scope_status", experiments.c.scope, experiments.c.status)

#: One observation of an experiment arm (migration 0008): ``value`` the metric (for
#: example a closed position's return, percent) for the decision it came from.
experiment_observations = Table(
    "experiment_observations", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("experiment_id", Integer, nullable=False),
    Column("arm", String(16), nullable=False),               # control | variant
    Column("agent_decision_id", Integer),
    Column("ts", Integer, nullable=False),
    Column("value", Float),
    Column("created_at", String(32), nullable=False),
)
Index("ix_experiment_observations_exp", experiment_observations.c.experiment_id)

# --- The ML pipeline's record (migration 0009) -----------------------------------------

#: Predictions of a model version (migration 0009): one row per symbol and as-of
#: close (``as_of_ts`` UTC epoch seconds of the session close the features are as of);
#: ``feature_hash`` the SHA-256 of that row's feature values; ``rank`` 1 = best.
ml_predictions = Table(
    "ml_predictions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_name", String(64), nullable=False),
    Column("model_version", String(32), nullable=False),
    Column("as_of_ts", Integer, nullable=False),
    Column("symbol", String(32), nullable=False),
    Column("score", Float, nullable=False),
    Column("rank", Integer),
    Column("feature_hash", String(64), nullable=False),
    Column("job", String(32), nullable=False),               # predict | backtest
    Column("created_at", String(32), nullable=False),
    UniqueConstraint("model_name", "model_version", "as_of_ts", "symbol", "job",
                     name="uq_ml_predictions_row"),
)
Index("ix_ml_predictions_asof", ml_predictions.c.model_name, ml_predictions.c.as_of_ts)

#: Every change of a model's production version (migration 0009): ``kind`` register,
#: promote, rollback; ``actor`` a person, ``daemon`` or ``cli``; ``detail`` JSON.
ml_model_events = Table(
    "ml_model_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Integer, nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("model_name", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("from_version", String(32)),
    Column("to_version", String(32)),
    Column("reason", Text, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("detail", Text),
)
Index("ix_ml_model_events_model", ml_model_events.c.model_name, ml_model_events.c.id)

#: Drift reports (migration 0009): ``status`` ok, warning or drift; ``features`` JSON
#: per feature (PSI, KS statistic and p value), ``predictions`` and ``performance``
#: JSON (rolling IC and hit rate against validation), ``breaches`` JSON list.
ml_drift_reports = Table(
    "ml_drift_reports", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Integer, nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("model_name", String(64), nullable=False),
    Column("model_version", String(32), nullable=False),
    Column("as_of_ts", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("features", Text, nullable=False),
    Column("predictions", Text),
    Column("performance", Text),
    Column("breaches", Text),
)
Index("ix_ml_drift_reports_model", ml_drift_reports.c.model_name, ml_drift_reports.c.as_of_ts)

# --- Options (migration 0010) ----------------------------------------------------------

#: The market of an option when one of its orders filled (migration 0010), keyed like
#: the fill it belongs to: greeks, implied volatility, bid/ask and the underlying's
#: price (USD per share, exact text) read at ``captured_ts`` (UTC epoch seconds);
#: ``source`` ``ibkr:model_greeks`` live, ``chain:<file>`` in replay.
option_fill_snapshots = Table(
    "option_fill_snapshots", metadata,
    Column("run_id", String(32), primary_key=True),
    Column("fill_seq", Integer, primary_key=True, autoincrement=False),
    Column("occ_symbol", String(32), nullable=False),
    Column("captured_ts", Integer, nullable=False),
    Column("bid", DecimalText),
    Column("ask", DecimalText),
    Column("underlying_price", DecimalText),
    Column("iv", Float),
    Column("delta", Float),
    Column("gamma", Float),
    Column("theta", Float),
    Column("vega", Float),
    Column("source", String(64), nullable=False),
)

#: Tables whose rows belong to one run (primary key starting with ``run_id``).
RUN_TABLES = (runs, decisions, orders, fills, trades, equity, events, order_events, engine_state,
              reconciliations, option_fill_snapshots)
#: Every table: the run tables and the ones whose rows span runs (the deployments
#: registry, approvals, the command inbox, numbered by the ledger, and the daemon's
#: heartbeats and event queue).
ALL_TABLES = (*RUN_TABLES, deployments, approvals, commands, daemon_heartbeats, daemon_events,
              agent_decisions, governor_verdicts, autonomy_changes, anomalies, alerts,
              reasoning_costs, reasoning_calls, agent_memory, memory_embeddings,
              decision_outcomes, reflections, experiments, experiment_observations,
              ml_predictions, ml_model_events, ml_drift_reports)
