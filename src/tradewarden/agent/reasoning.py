"""The reasoning protocol: an event and its context in, a typed decision out.

A :class:`ReasoningEngine` gets a :class:`ReasoningEvent` (what happened: a strategy's
entry or exit signal, a stop approaching, a broker disconnect, ...) and a
:class:`ReasoningContext` (positions, account, market context, candidates, recent
decisions, strategy state, autonomy level, open anomalies) and returns a
:class:`DecisionOutput`. The decision is recorded with the context it saw
(:func:`tradewarden.agent.records.record_decision`) before anything acts on it; the
autonomy governor (:mod:`tradewarden.agent.autonomy`) then decides what it may do. A
reasoner informs a decision and never replaces that gate.

:class:`RulesReasoner` is the deterministic default: it turns the strategy's signals
into decisions by a fixed table (see its docstring). A model-backed reasoner plugs in
through the same protocol.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Action(str, Enum):
    """What a decision asks for."""

    EXECUTE_TRADES = "EXECUTE_TRADES"            # trade the target symbols now
    STAGE_CANDIDATES = "STAGE_CANDIDATES"        # prepare candidates, trade nothing yet
    CLOSE_POSITION = "CLOSE_POSITION"            # close the target positions
    MONITOR_ONLY = "MONITOR_ONLY"                # watch, act on nothing
    SKIP_SESSION = "SKIP_SESSION"                # no new trades this session
    PROPOSE_EXPERIMENT = "PROPOSE_EXPERIMENT"    # suggest a change to try (``experiment``)
    REQUEST_HUMAN_REVIEW = "REQUEST_HUMAN_REVIEW"  # a person must look (``escalation_*``)
    EMERGENCY_HALT = "EMERGENCY_HALT"            # stop trading and flatten


#: Actions allowed while a mandatory-human trigger is active.
SAFE_ACTIONS = frozenset({Action.MONITOR_ONLY, Action.REQUEST_HUMAN_REVIEW})


class DecisionOutput(BaseModel):
    """A reasoning engine's decision (immutable; unknown fields are refused).

    Parameters
    ----------
    action : Action
    target_symbols : tuple of str
        The symbols the action concerns.
    target_position_ids : tuple of str
        The positions it concerns (``CLOSE_POSITION``): the engine's ids, or the
        symbol where positions are one per symbol.
    confidence : float
        0 to 1. The governor escalates below its ``min_confidence`` (0.4).
    reasoning : str
        Why, in words.
    key_factors, risks_considered : tuple of str
        What weighed in, and which risks were looked at.
    experiment : dict, optional
        The proposed experiment (required with ``PROPOSE_EXPERIMENT``).
    escalation_reason : str, optional
        Why a person must look (required with ``REQUEST_HUMAN_REVIEW``).
    escalation_urgency : {"low", "medium", "high", "critical"}, optional

    Raises
    ------
    pydantic.ValidationError
        An unknown action or field, a confidence outside 0-1, or a review request or
        experiment proposal without its reason or experiment.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: Action
    target_symbols: tuple[str, ...] = ()
    target_position_ids: tuple[str, ...] = ()
    confidence: float = Field(ge=0.0, le=1.0)
    reasoning: str = ""
    key_factors: tuple[str, ...] = ()
    risks_considered: tuple[str, ...] = ()
    experiment: dict[str, Any] | None = None
    escalation_reason: str | None = None
    escalation_urgency: Literal["low", "medium", "high", "critical"] | None = None

    @model_validator(mode="after")
    def _complete(self) -> DecisionOutput:
        if self.action == Action.REQUEST_HUMAN_REVIEW and not self.escalation_reason:
            raise ValueError("REQUEST_HUMAN_REVIEW needs an escalation_reason")
        if self.action == Action.PROPOSE_EXPERIMENT and not self.experiment:
            raise ValueError("PROPOSE_EXPERIMENT needs an experiment")
        return self


class ReasoningEvent(BaseModel):
    """What happened, to be decided about (immutable).

    Parameters
    ----------
    kind : str
        ``entry_signal``, ``exit_signal``, ``stop_approaching``, ``significant_move``,
        ``broker_disconnected``, ``stale_market_data``, ``anomaly_detected``,
        ``market_open``, ... (1-32 characters; the daemon's event types).
    ts : int
        When, UTC epoch seconds (the clock's time).
    symbol : str, optional
    payload : dict
        The event's data (an entry signal: the risk manager's sizing ``quantity``,
        ``notional`` in quote currency, ``stop_loss``; an anomaly: its ``kind``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str = Field(min_length=1, max_length=32)
    ts: int
    symbol: str | None = None
    payload: dict[str, Any] = Field(default_factory=dict)


class ReasoningContext(BaseModel):
    """What a reasoner sees besides the event (immutable; recorded with the decision).

    Parameters
    ----------
    positions : list of dict
        Open positions (``symbol``, ``quantity`` in base units, ``entry_price`` in quote
        currency, ...).
    account : dict
        Cash, equity (quote currency), margin utilisation (0-1), ...
    market : dict
        Market context: VIX, its session open, the last data time (UTC epoch seconds), ...
    candidates : list of dict
        Symbols the strategy flags now.
    recent_decisions : list of dict
        The deployment's latest agent decisions (action, symbol, verdict).
    strategy_state : dict
        The strategy's name, parameters, warm-up, ...
    autonomy_level : int
        1 recommend only, 2 supervised, 3 semi-autonomous, 4 autonomous.
    anomalies : list of dict
        Open anomaly flags (``kind``, ``symbol``).
    similar_past : list of dict
        The closest past contexts from semantic recall, each with its decision and
        outcome (``summary``, ``action``, ``outcome``, ``similarity``).
    patterns : list of dict
        Regularities drawn from the record (for example the hit rate of an action in
        a market state).
    experiments : list of dict
        Active experiments and the arm this decision falls in.
    reflection : dict
        The latest end-of-day reflection (``day``, ``summary``, lessons).
    performance : dict
        The performance window (return, drawdown, win rate over recent trades).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    positions: list[dict[str, Any]] = Field(default_factory=list)
    account: dict[str, Any] = Field(default_factory=dict)
    market: dict[str, Any] = Field(default_factory=dict)
    candidates: list[dict[str, Any]] = Field(default_factory=list)
    recent_decisions: list[dict[str, Any]] = Field(default_factory=list)
    strategy_state: dict[str, Any] = Field(default_factory=dict)
    autonomy_level: int = Field(default=1, ge=1, le=4)
    anomalies: list[dict[str, Any]] = Field(default_factory=list)
    similar_past: list[dict[str, Any]] = Field(default_factory=list)
    patterns: list[dict[str, Any]] = Field(default_factory=list)
    experiments: list[dict[str, Any]] = Field(default_factory=list)
    reflection: dict[str, Any] = Field(default_factory=dict)
    performance: dict[str, Any] = Field(default_factory=dict)


@runtime_checkable
class ReasoningEngine(Protocol):
    """Decide about an event in its context (the default :class:`RulesReasoner`; a
    model-backed reasoner later)."""

    name: str

    def decide(self, event: ReasoningEvent, context: ReasoningContext) -> DecisionOutput:
        """Return the decision about ``event`` given ``context``."""
        ...


#: Event kinds the rules hand to a person: (urgency, why).
_REVIEW = {
    "anomaly_detected": ("high", "an anomaly was flagged"),
    "broker_disconnected": ("high", ("the broker is disconnected: open positions cannot be "
                                     "managed until it reconnects and reconciles")),
    "stop_approaching": ("medium", ("the price is within reach of a stop: the rules do not move "
                                    "stops, a person may")),
}
#: Event kinds the rules only watch, and why.
_WATCH = {
    "stale_market_data": "market data is stale: monitor only until fresh data arrives",
    "significant_move": "a significant move since entry: the strategy's exit rules decide",
    "broker_reconnected": "the broker is back: trading resumes after reconciliation",
}


class RulesReasoner:
    """Turn the strategy's signals into decisions by a fixed table (the default reasoner).

    ==========================  ======================  ============================
    event kind                  action                  escalation
    ==========================  ======================  ============================
    ``entry_signal``            ``EXECUTE_TRADES``      --
    ``exit_signal``             ``CLOSE_POSITION``      --
    ``anomaly_detected``        ``REQUEST_HUMAN_REVIEW`` high
    ``broker_disconnected``     ``REQUEST_HUMAN_REVIEW`` high
    ``stop_approaching``        ``REQUEST_HUMAN_REVIEW`` medium
    ``stale_market_data``       ``MONITOR_ONLY``        --
    anything else               ``MONITOR_ONLY``        --
    ==========================  ======================  ============================

    Confidence is ``0.5 ** n``, where ``n`` counts the open anomalies in the context
    that concern the event (those of the event's symbol and those of no symbol): 1.0
    for a rule signal on a clean slate, 0.5 with one such anomaly, 0.25 (below the
    governor's 0.4) with two. Deterministic: the same event and context always give the
    same decision.
    """

    name = "rules"

    def decide(self, event: ReasoningEvent, context: ReasoningContext) -> DecisionOutput:
        """Return the table's decision for ``event`` (see the class docstring).

        Parameters
        ----------
        event : ReasoningEvent
        context : ReasoningContext

        Returns
        -------
        DecisionOutput
        """
        sym = event.symbol
        concerning = [a for a in context.anomalies
                      if a.get("symbol") is None or a.get("symbol") == sym]
        confidence = 0.5 ** len(concerning)
        factors = [f"event: {event.kind}"]
        signal = event.payload.get("signal")
        if signal:
            factors.append(f"signal: {signal}")
        if concerning:
            factors.append("open anomalies: " + ", ".join(
                sorted(str(a.get("kind")) for a in concerning)))
        risks = [f"{k}: {event.payload[k]}" for k in ("stop_loss", "take_profit", "quantity",
                                                       "notional") if event.payload.get(k)
                 is not None]
        targets = (sym,) if sym else ()
        common = {"target_symbols": targets, "confidence": confidence,
                  "key_factors": tuple(factors), "risks_considered": tuple(risks)}
        if event.kind == "entry_signal":
            return DecisionOutput(action=Action.EXECUTE_TRADES,
                                  reasoning=f"the strategy signals an entry in {sym}", **common)
        if event.kind == "exit_signal":
            ids = tuple(str(p.get("position_id", p.get("symbol"))) for p in context.positions
                        if p.get("symbol") == sym)
            return DecisionOutput(action=Action.CLOSE_POSITION, target_position_ids=ids or targets,
                                  reasoning=f"the strategy signals an exit from {sym}", **common)
        if event.kind in _REVIEW:
            urgency, why = _REVIEW[event.kind]
            detail = event.payload.get("kind") or event.payload.get("detail")
            reason = f"{why} ({detail})" if detail else why
            return DecisionOutput(action=Action.REQUEST_HUMAN_REVIEW, reasoning=reason,
                                  escalation_reason=reason, escalation_urgency=urgency, **common)
        why = _WATCH.get(event.kind, f"no rule acts on {event.kind}")
        return DecisionOutput(action=Action.MONITOR_ONLY, reasoning=why, **common)
