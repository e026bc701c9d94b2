"""The reasoning protocol: DecisionOutput's checks and the RulesReasoner's table."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tradewarden.agent.reasoning import (
    Action,
    DecisionOutput,
    ReasoningContext,
    ReasoningEngine,
    ReasoningEvent,
    RulesReasoner,
)

T0 = 1_767_225_600


def test_decision_output_is_frozen_and_refuses_bad_fields():
    out = DecisionOutput(action="EXECUTE_TRADES", confidence=1.0)
    assert out.action is Action.EXECUTE_TRADES and out.target_symbols == ()
    with pytest.raises(ValidationError):
        out.confidence = 0.5                                   # frozen
    for bad in ({"action": "BUY_EVERYTHING", "confidence": 1.0},
                {"action": "MONITOR_ONLY", "confidence": 1.01},
                {"action": "MONITOR_ONLY", "confidence": -0.1},
                {"action": "MONITOR_ONLY", "confidence": 0.5, "mood": "good"},
                {"action": "MONITOR_ONLY", "confidence": 0.5, "escalation_urgency": "soon"},
                {"action": "REQUEST_HUMAN_REVIEW", "confidence": 0.5},
                {"action": "PROPOSE_EXPERIMENT", "confidence": 0.5}):
        with pytest.raises(ValidationError):
            DecisionOutput(**bad)
    assert DecisionOutput(action="PROPOSE_EXPERIMENT", confidence=0.5,
                          experiment={"lookback": 30}).experiment == {"lookback": 30}


def test_context_checks_the_level():
    assert ReasoningContext().autonomy_level == 1
    with pytest.raises(ValidationError):
        ReasoningContext(autonomy_level=5)
    with pytest.raises(ValidationError):
        ReasoningEvent(kind="", ts=T0)


@pytest.mark.parametrize("kind, action, urgency", [
    ("entry_signal", Action.EXECUTE_TRADES, None),
    ("exit_signal", Action.CLOSE_POSITION, None),
    ("anomaly_detected", Action.REQUEST_HUMAN_REVIEW, "high"),
    ("broker_disconnected", Action.REQUEST_HUMAN_REVIEW, "high"),
    ("stop_approaching", Action.REQUEST_HUMAN_REVIEW, "medium"),
    ("stale_market_data", Action.MONITOR_ONLY, None),
    ("significant_move", Action.MONITOR_ONLY, None),
    ("market_open", Action.MONITOR_ONLY, None),
])
def test_rules_reasoner_table(kind, action, urgency):
    rules = RulesReasoner()
    assert isinstance(rules, ReasoningEngine) and rules.name == "rules"
    event = ReasoningEvent(kind=kind, ts=T0, symbol="BTC-USD", payload={"signal": "breakout"})
    out = rules.decide(event, ReasoningContext())
    assert out.action is action and out.escalation_urgency == urgency
    assert out.confidence == 1.0 and out.target_symbols == ("BTC-USD",)
    assert "signal: breakout" in out.key_factors
    assert rules.decide(event, ReasoningContext()) == out          # deterministic


def test_confidence_halves_per_open_anomaly_that_concerns_the_event():
    rules = RulesReasoner()
    event = ReasoningEvent(kind="entry_signal", ts=T0, symbol="BTC-USD")
    ctx = ReasoningContext(anomalies=[{"kind": "data_gap", "symbol": "BTC-USD"},
                                      {"kind": "vix_spike", "symbol": None},
                                      {"kind": "data_gap", "symbol": "ETH-USD"}])
    out = rules.decide(event, ctx)
    assert out.confidence == 0.25                      # two concern BTC-USD, ETH-USD's does not
    assert "open anomalies: data_gap, vix_spike" in out.key_factors


def test_exit_targets_the_symbols_positions():
    ctx = ReasoningContext(positions=[{"symbol": "BTC-USD", "position_id": "p7"},
                                      {"symbol": "ETH-USD", "position_id": "p8"}])
    out = RulesReasoner().decide(ReasoningEvent(kind="exit_signal", ts=T0, symbol="BTC-USD"), ctx)
    assert out.target_position_ids == ("p7",)
