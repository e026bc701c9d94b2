"""The API's request and response bodies (Pydantic models; the OpenAPI schema is built
from them).

Conventions, for every model here:

* money (quote currency, the quote of the deployment's symbols) and quantities (base
  units) are JSON **strings** holding exact decimals (Pydantic serialises ``Decimal``
  so): ``"64012.5"``; ``null`` when unknown;
* times are UTC epoch seconds (``ts``-like fields, integers) with ISO 8601 text beside
  them (``time``-like fields, ``...Z``); wall-clock bookkeeping (``created_at``,
  heartbeats) is ISO text as the ledger stores it;
* percentages are floats in percent (``12.5`` is 12.5 %).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ActionOut",
    "ApprovalOut",
    "AuditOut",
    "CommandOut",
    "CostRow",
    "CostsOut",
    "DecisionOut",
    "DecisionsOut",
    "DeploymentStatus",
    "EquityOut",
    "EquityPoint",
    "EquitySeries",
    "ErrorOut",
    "HeartbeatOut",
    "PauseIn",
    "PositionOut",
    "PositionsOut",
    "QueueOut",
    "RejectIn",
    "RunOut",
    "RunsOut",
    "StatusOut",
    "ThoughtOut",
    "ThoughtsOut",
    "TradeOut",
    "TradesOut",
    "VerdictOut",
]


class _Out(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ErrorOut(_Out):
    """Every error answer: one line a person can act on."""

    error: str = Field(description="What went wrong and what to do about it.")


# ---------------------------------------------------------------- status


class HeartbeatOut(_Out):
    """The daemon's latest ``daemon_heartbeats`` row."""

    daemon_id: str
    seq: int
    ts: str = Field(description="Wall-clock time of the beat, ISO 8601 UTC.")
    status: str = Field(description="starting, running, paused, error or shutdown.")
    activity: str | None = None
    queue_depth: int = Field(description="Daemon events due or in hand at the beat.")
    autonomy_level: int | None = None
    anomalies: list[Any] = []
    deployments: list[str] = []


class VerdictOut(_Out):
    """A governor verdict on an agent decision."""

    verdict: str = Field(description="execute, queue or monitor.")
    reason: str | None = None
    triggers: list[Any] = []
    approval_id: int | None = None


class DecisionOut(_Out):
    """An agent decision in short: what, why, and what became of it."""

    id: int = Field(description="agent_decisions.id (the {id} of GET /api/decisions/{id}).")
    deployment: str | None = None
    ts: int
    time: str
    event_kind: str
    symbol: str | None = None
    action: str
    confidence: float | None = None
    autonomy_level: int
    reasoner: str
    reasoning: str | None = None
    key_factors: list[Any] = []
    verdicts: list[VerdictOut] = []
    outcome: str


class DeploymentStatus(_Out):
    """One deployment as the status bar shows it."""

    name: str
    deployment_id: str
    mode: str
    status: str
    paused: bool
    kill_switch: bool
    halts: dict[str, list[str]] = Field(description="Account -> tripped risk breakers.")
    autonomy_level: int = Field(description="1-4: L1 recommend only ... L4 autonomous.")
    autonomy: str
    last_bar: str | None = Field(description="Open time of the last bar decided, ISO UTC.")
    quote: str
    positions: int = Field(description="Open positions.")
    pending_approvals: int
    pending_commands: int
    open_anomalies: int
    last_decision: DecisionOut | None = None


class StatusOut(_Out):
    """``GET /api/status``: is it alive, how it runs, what waits."""

    now: int = Field(description="Server clock, UTC epoch seconds.")
    time: str
    health: Literal["ok", "stale", "down"] = Field(
        description="ok: a daemon holds the ledger's lock and its last heartbeat is at most "
                    "3 heartbeat intervals (180 s) old; stale: it holds the lock but the "
                    "heartbeat is older (or missing); down: no daemon runs on this ledger.")
    running: bool
    pid: int | None = None
    since: str | None = None
    heartbeat: HeartbeatOut | None = None
    heartbeat_age_seconds: float | None = None
    activity: str | None = Field(None, description="What the daemon said it was doing.")
    autonomy_level: int | None = Field(
        None, description="The lowest autonomy level of the deployments (the strictest).")
    paused: bool = Field(description="Every deployment is paused (and there is at least one).")
    queue_depth: int = Field(description="Pending approvals waiting for a person (GET /api/queue).")
    queued_events: int = Field(description="Daemon events due or in hand.")
    deployments: list[DeploymentStatus]


# ---------------------------------------------------------------- positions


class PositionOut(_Out):
    """An open position with its traffic light."""

    deployment: str
    symbol: str
    state: str = Field(description="entry_pending, open or exit_pending.")
    account: str | None = None
    quantity: Decimal = Field(description="Base units; negative for a short.")
    entry_price: Decimal | None = None
    entry_ts: int | None = None
    entry_time: str | None = None
    mark: Decimal | None = Field(None, description="The last close the engine saw.")
    market_value: Decimal | None = None
    unrealized_pnl: Decimal | None = None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    stop_distance_pct: float | None = Field(
        None, description="(mark - stop) / stop * 100 for a long, (stop - mark) / stop * 100 "
                          "for a short; at or below 0: the mark is past the stop.")
    daily_loss_used_pct: float | None = Field(
        None, description="The account's loss today as a percent of its daily loss limit.")
    risk: Literal["green", "amber", "red"]
    risk_reasons: list[str] = Field(description="Why amber or red (empty when green).")
    quote: str


class PositionsOut(_Out):
    """``GET /api/positions``."""

    stop_approach_fraction: float = Field(
        description="[daemon] stop_approach_fraction: the amber band (0.05 = 5 %).")
    positions: list[PositionOut]


# ---------------------------------------------------------------- decisions


class DecisionsOut(_Out):
    """``GET /api/decisions``: newest first."""

    decisions: list[DecisionOut]


class ApprovalOut(_Out):
    """An ``approvals`` row (an intent the governor queued for a person)."""

    id: int = Field(description="approvals.id: the {id} of POST /api/decisions/{id}/approve "
                                "and /reject.")
    deployment: str | None = None
    run_id: str
    decision_seq: int
    ts: int
    time: str | None = None
    symbol: str
    action: str
    intent: dict[str, Any]
    status: str = Field(description="pending, approved, rejected or expired.")
    acted_by: str | None = None
    acted_at: str | None = None
    reason: str | None = None
    decision_id: int | None = Field(
        None, description="The agent decision that queued it (GET /api/decisions/{id}), if any.")
    reasoning: str | None = None
    command_pending: str | None = Field(
        None, description="approve or reject: a person's command waits for the engine.")


class CommandOut(_Out):
    """A ``commands`` row (the deployment's inbox)."""

    id: int
    deployment_id: str
    kind: str
    target: str | None = None
    reason: str | None = None
    actor: str
    created_at: str
    status: str
    result: str | None = None
    processed_at: str | None = None


class AuditOut(_Out):
    """``GET /api/decisions/{id}``: the full audit of one agent decision."""

    decision: dict[str, Any] = Field(description="The agent_decisions row: context sent, "
                                                 "output (reasoning, key factors, risks), "
                                                 "verdicts.")
    approvals: list[ApprovalOut]
    commands: list[CommandOut]
    outcome: str
    calls: list[dict[str, Any]] = Field(
        default_factory=list, description="Every reasoning-model call of the decision "
        "(reasoning_calls rows, oldest first): request (the full context sent), response "
        "(reasoning included), parsed, status, error, outcome, autonomy_level, tokens, "
        "cost_usd (US dollars).")


class QueueOut(_Out):
    """``GET /api/queue``: approvals waiting for a person, oldest first."""

    approvals: list[ApprovalOut]


class RejectIn(BaseModel):
    """Body of ``POST /api/decisions/{id}/reject``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    reason: str = Field(min_length=1, max_length=500, description="Why (recorded).")


class PauseIn(BaseModel):
    """Body of ``POST /api/daemon/pause``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    reason: str = Field(min_length=1, max_length=500, description="Why (recorded).")


class ActionOut(_Out):
    """What an action queued."""

    message: str = Field(description="One line: the commands queued and when they act.")
    actor: str = Field(description="Who it is recorded as (api:<token_name>).")
    at: str = Field(description="When it was accepted, ISO UTC (the commands' created_at).")
    commands: list[int] = Field(description="The commands.id rows written.")


# ---------------------------------------------------------------- costs


class CostRow(_Out):
    """Reasoning calls of one UTC day, model and call type."""

    day: str
    provider: str
    model: str
    call_type: str
    calls: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: Decimal


class CostsOut(_Out):
    """``GET /api/costs``: reasoning-model costs, US dollars."""

    since: int
    days: float
    rows: list[CostRow]
    by_model: dict[str, dict[str, Any]]
    total: dict[str, Any]


# ---------------------------------------------------------------- thought log


class ThoughtOut(_Out):
    """One reasoning-model call in the thought log."""

    id: int = Field(description="reasoning_calls.id")
    ts: int
    time: str
    cycle: str = Field(description="The calls of one decision or reflection: event:<id>, "
                                   "reflection:<deployment>:<day>.")
    attempt: int
    deployment_id: str | None = None
    deployment: str | None = Field(None, description="The deployment's name.")
    call_type: str
    provider: str
    model: str
    status: Literal["ok", "invalid", "refused", "error", "timeout", "capped"]
    action: str | None = Field(None, description="The parsed answer's action.")
    outcome: str | None = Field(None, description="What was done with the answer.")
    autonomy_level: int | None = None
    agent_decision_id: int | None = None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: Decimal = Field(description="US dollars.")
    latency_ms: int | None = None
    thought: str = Field(description="The first line of its reasoning.")


class ThoughtsOut(_Out):
    """``GET /api/thoughts``: every reasoning-model call of one UTC day, by cycle."""

    day: str = Field(description="The UTC day, YYYY-MM-DD.")
    calls: list[ThoughtOut]
    cost_usd: Decimal = Field(description="The calls' total, US dollars.")


# ---------------------------------------------------------------- runs


class RunOut(_Out):
    """A run as ``warden runs`` lists it."""

    run_id: str
    started_at: str | None = None
    completed_at: str | None = None
    status: str
    mode: str
    strategy: str | None = None
    symbols: list[str]
    timeframe: str | None = None
    trades_closed: int
    bars_processed: int
    decisions: int | None = None
    error: str | None = None
    params: dict[str, Any] = {}
    summary: dict[str, Any] | None = Field(None, description="The report's headline figures "
                                                             "once a report was built.")


class RunsOut(_Out):
    """``GET /api/runs``: newest first."""

    runs: list[RunOut]


class TradeOut(_Out):
    """A closed round trip."""

    trade_id: str
    symbol: str
    side: str | None = None
    quantity: Decimal
    entry_ts: int
    entry_time: str
    entry_price: Decimal
    exit_ts: int
    exit_time: str
    exit_price: Decimal
    fees: Decimal | None = None
    pnl: Decimal
    return_pct: float | None = None
    exit_reason: str | None = None
    holding_seconds: int | None = None
    mae_pct: float | None = Field(None, description="Maximum adverse excursion, percent of "
                                                    "the entry price (when recorded).")
    mfe_pct: float | None = Field(None, description="Maximum favourable excursion, percent of "
                                                    "the entry price (when recorded).")


class TradesOut(_Out):
    """``GET /api/runs/{id}/trades``: by entry time."""

    run_id: str
    trades: list[TradeOut]


class EquityPoint(_Out):
    """One mark of an account's equity."""

    ts: int
    equity: Decimal


class EquitySeries(_Out):
    """An account's equity curve and its drawdown."""

    account: str
    points: list[EquityPoint]
    max_drawdown_pct: float | None = Field(
        None, description="Deepest (peak - trough) / peak over these points, percent.")


class EquityOut(_Out):
    """``GET /api/equity``: per account, by bar."""

    deployment: str | None = None
    run_id: str | None = None
    runs: list[str] = Field(description="The runs the points come from, oldest first.")
    quote: str
    series: list[EquitySeries]
