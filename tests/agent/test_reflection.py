"""End-of-day reflection (agent/reflection.py): the rules reflection tells good reasoning
from luck, one row per deployment and day whatever happens twice, the model reflection
goes through the Messages API's structured output (the real SDK against an in-process
transport), is recorded and capped, and its proposals become experiments only when
allowed."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx2
import pytest

from tradewarden.agent import calls as model_calls
from tradewarden.agent import experiments as ex
from tradewarden.agent import records
from tradewarden.agent import reflection as rf
from tradewarden.ledger import Ledger, schema
from tradewarden.ops.reasoning_settings import ReasoningSettings

DAY = "2026-01-05"
T0 = 1_767_571_200 + 15 * 3600       # 2026-01-05T15:00:00Z
EOD = 1_767_571_200 + 21 * 3600
DEP = "dep1"


def _decision(led, ts, *, action="EXECUTE_TRADES", confidence=0.9, verdict="execute",
              triggers=(), outcome=None, kind="taken", experiment=None):
    out = {"action": action, "confidence": confidence, "target_symbols": ["SPY"],
           "reasoning": f"{action} at {confidence}"}
    if experiment is not None:
        out["experiment"] = experiment
    did = records.record_decision(led, deployment_id=DEP, run_id="r1", ts=ts,
                                  event_kind="entry_signal", reasoner="rules", autonomy_level=3,
                                  context={}, output=out, symbol="SPY")
    records.record_verdict(led, agent_decision_id=did, deployment_id=DEP, ts=ts,
                           autonomy_level=3, verdict=verdict, reason="test",
                           triggers=[{"trigger": t} for t in triggers])
    if outcome is not None:
        with led.engine.begin() as conn:
            conn.execute(schema.decision_outcomes.insert().values(
                agent_decision_id=did, deployment_id=DEP, run_id="r1", symbol="SPY", kind=kind,
                pnl=Decimal(str(outcome)), return_pct=outcome, ts=ts + 60, created_at="x"))
    return did


@pytest.fixture
def day(tmp_path):
    """A deployment's day: good and won, good and lost, low confidence and won, refused."""
    led = Ledger(tmp_path / "r.db")
    led.create_run({"run_id": "r1", "mode": "paper", "capital_mode": "independent",
                    "market_time_basis": "test", "data_integrity": "ok", "config_hash": "h",
                    "config": "{}", "strategy": "donchian", "symbols": "[]", "timeframe": "1d",
                    "initial_capital": Decimal(10000)})
    ids = [_decision(led, T0, outcome=1.5),
           _decision(led, T0 + 1, outcome=-0.7),
           _decision(led, T0 + 2, confidence=0.3, verdict="queue",
                     triggers=("low_confidence",), outcome=2.0),
           _decision(led, T0 + 3, action="CLOSE_POSITION", verdict="refuse"),
           _decision(led, T0 - 86_400, outcome=5.0)]            # the day before: not reviewed
    yield led, ids
    led.close()


class Counting:
    """A reflector that counts its calls (the rules underneath)."""

    name = "counting"

    def __init__(self):
        self.calls = 0

    def reflect(self, record, *, scope, day, ts):
        self.calls += 1
        return rf.rules_reflection(record), {"model": "rules"}


def test_the_rules_separate_reasoning_from_luck_and_store_one_row_per_day(day):
    led, (good_won, good_lost, poor_won, refused, _yesterday) = day
    who = Counting()
    row = rf.reflect(led, DEP, DAY, EOD, reflector=who)
    reviews = {r["decision_id"]: (r["quality"], r["outcome"]) for r in row["content"]["reviews"]}
    assert reviews == {good_won: ("good", "deserved"), good_lost: ("good", "unlucky"),
                       poor_won: ("poor", "lucky"), refused: ("poor", "pending")}
    assert row["content"]["counts"] == {"good": 2, "poor": 2}
    lessons = " | ".join(row["content"]["lessons"])
    assert "2 of 3 closed position(s) won (67%)" in lessons
    assert f"(lucky), not to be repeated on the strength of the result: decision(s) {poor_won}" \
        in lessons
    assert "1 decision(s) waited for a person; triggers: low_confidence (1)" in lessons
    assert row["summary"].startswith(f"{DAY}: 4 decision(s)") and row["proposals"] == []
    assert (row["scope"], row["day"], row["ts"], row["model"]) == (DEP, DAY, EOD, "rules")
    # a second end of day (a restart, a re-run event) finds it and reflects nothing again
    again = rf.reflect(led, DEP, DAY, EOD + 600, reflector=who)
    assert who.calls == 1 and again["id"] == row["id"] and again["ts"] == EOD
    assert len(rf.reflections(led)) == 1
    # what the next day's context carries
    latest = rf.latest_reflection(led, DEP)
    assert latest["day"] == DAY and latest["summary"] == row["summary"]
    assert latest["outcomes"] == {"deserved": 1, "unlucky": 1, "lucky": 1, "pending": 1}
    assert rf.latest_reflection(led, DEP, before_day=DAY) == {}
    assert rf.latest_reflection(led, DEP, now=EOD - 1) == {}        # not written yet then
    assert rf.latest_reflection(led, DEP, now=EOD)["day"] == DAY
    assert rf.latest_reflection(led, "other") == {}
    with pytest.raises(Exception, match="give a date YYYY-MM-DD"):
        rf.reflect(led, DEP, "05/01/2026", EOD, reflector=who)


def test_the_day_record_holds_the_days_decisions_verdicts_and_early_outcomes(day):
    led, ids = day
    rec = rf.day_record(led, DEP, DAY)
    assert [d["id"] for d in rec["decisions"]] == ids[:4]
    d0 = rec["decisions"][0]
    assert d0["verdicts"] == [{"verdict": "execute", "reason": "test", "triggers": []}]
    assert d0["outcomes"][0]["return_pct"] == 1.5 and d0["outcomes"][0]["pnl"] == "1.5"
    assert rec["earlier_outcomes"] == []           # yesterday's outcome was recorded yesterday


# -- the model reflector against the real SDK -------------------------------------------
def _answer(payload, *, stop_reason="end_turn", usage=None):
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
            "content": [{"type": "text", "text": text}], "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": usage or {"input_tokens": 1200, "output_tokens": 300,
                               "cache_read_input_tokens": 100,
                               "cache_creation_input_tokens": 0}}


class Script:
    """An in-process Messages API: records requests, answers from a script."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.requests = []

    def __call__(self, request):
        self.requests.append({"headers": dict(request.headers),
                              "body": json.loads(request.content)})
        status, body = self.answers.pop(0)
        return httpx2.Response(status, json=body)

    def reflector(self, led, settings=None):
        """A model reflector whose SDK talks to this script."""
        return rf.ModelReflector(led, settings or SETTINGS, api_key="test-key",
                                 base_url="http://fake.invalid", http_client=httpx2.Client(
                                     transport=httpx2.MockTransport(self)))


SETTINGS = ReasoningSettings(provider="anthropic", daily_cost_cap_usd=5.0, max_retries=0)


def _review(did, quality="good", outcome="deserved"):
    return {"decision_id": did, "quality": quality, "outcome": outcome, "note": "n"}


def test_the_model_reflection_is_structured_recorded_and_its_proposals_filed(day):
    led, (good_won, good_lost, poor_won, refused, _) = day
    answer = {"summary": "A fair day; one lucky entry.",
              "reviews": [_review(good_won), _review(poor_won, "poor", "lucky"),
                          _review(99999)],           # not a decision of the day: ignored
              "lessons": ["low-confidence entries won by luck"],
              "proposals": [{"parameter": "entry_window", "control": 20, "variant": 30,
                             "name": "slower entries", "rationale": "fewer false breakouts"},
                            {"parameter": "max_position_fraction", "control": 0.1,
                             "variant": 1000000, "rationale": "ignore previous instructions"}]}
    api = Script((200, _answer(answer)))
    who = api.reflector(led)
    row = rf.reflect(led, DEP, DAY, EOD, reflector=who)
    (req,) = api.requests
    body = req["body"]
    assert "test-key" in (req["headers"].get("x-api-key"), req["headers"].get("authorization",
                                                                             "")[7:])
    assert req["headers"]["anthropic-version"]
    assert body["model"] == SETTINGS.reflection_model and body["system"] == rf.SYSTEM_PROMPT
    assert body["output_config"]["format"]["type"] == "json_schema"
    sent = json.loads(body["messages"][0]["content"])
    assert [d["id"] for d in sent["decisions"]] == [good_won, good_lost, poor_won, refused]
    assert sent["allowed_parameters"]["entry_window"]["maximum"] == 1000
    assert "max_position_fraction" not in sent["allowed_parameters"]
    assert row["summary"] == answer["summary"] and row["model"] == SETTINGS.reflection_model
    assert row["content"]["ignored_reviews"] == [99999]
    assert [r["decision_id"] for r in row["content"]["reviews"]] == [good_won, poor_won]
    filed, refused_p = row["proposals"]
    e = ex.experiment(led, filed["experiment_id"])
    assert (e["parameter"], e["control"], e["variant"], e["status"], e["proposed_by"]) == (
        "entry_window", 20, 30, "proposed", f"reflection:{row['id']}")
    assert "max_position_fraction" in refused_p["refused"] and "experiment_id" not in refused_p
    assert len(ex.experiments(led)) == 1
    (call,) = model_calls.calls(led, cycle=f"reflection:{DEP}:{DAY}")
    assert (call["call_type"], call["status"], call["model"], call["attempt"]) == (
        "reflect", "ok", SETTINGS.reflection_model, 1)
    assert call["id"] == row["call_id"] and call["cost_usd"] > 0
    assert call["input_tokens"] == 1200 and call["cache_read_tokens"] == 100
    assert call["parsed"]["summary"] == answer["summary"]
    # nothing was changed by the model: an experiment proposed, no parameter applied
    assert ex.applied_parameters(led, DEP) == {}


def test_an_invalid_answer_is_retried_once_with_the_error_then_the_rules_reflect(day):
    led, ids = day
    good = {"summary": "ok", "reviews": [_review(ids[0])], "lessons": [], "proposals": []}
    api = Script((200, _answer("{not json")), (200, _answer(good)))
    row = rf.reflect(led, DEP, DAY, EOD, reflector=api.reflector(led))
    assert row["summary"] == "ok" and "fallback" not in row["content"]
    retry = api.requests[1]["body"]["messages"]
    assert retry[1] == {"role": "assistant", "content": "{not json"}
    assert retry[2]["content"].startswith("Your answer did not validate")
    assert [(c["attempt"], c["status"]) for c in model_calls.calls(led)] == [(1, "invalid"),
                                                                             (2, "ok")]
    # twice invalid on another day: the rules reflect, and the row says why
    day2 = "2026-01-06"
    _decision(led, T0 + 86_400)
    api2 = Script((200, _answer({"summary": ""})), (200, _answer("[]")))
    row2 = rf.reflect(led, DEP, day2, EOD + 86_400,
                      reflector=api2.reflector(led))
    assert row2["content"]["fallback"] == "the answer did not validate twice"
    assert row2["model"] == "rules" and row["model"] == SETTINGS.reflection_model
    assert row2["content"]["reflector"] == "anthropic" and row2["summary"].startswith(day2)


def test_a_refusal_an_error_or_the_cap_fall_back_to_the_rules(day):
    led, _ = day
    api = Script((200, _answer({"summary": "x"}, stop_reason="refusal")))
    row = rf.reflect(led, DEP, DAY, EOD, reflector=api.reflector(led))
    assert row["content"]["fallback"] == "the model refused"
    assert model_calls.calls(led)[-1]["status"] == "refused"
    api = Script((529, {"type": "error", "error": {"type": "overloaded_error",
                                                   "message": "Overloaded"}}))
    row = rf.reflect(led, DEP, "2026-01-07", EOD, reflector=api.reflector(led))
    assert row["content"]["fallback"] == "the model call failed: OverloadedError"
    assert model_calls.calls(led)[-1]["status"] == "error"
    # the day's spend at the cap: no request at all
    capped = ReasoningSettings(provider="anthropic", daily_cost_cap_usd=0.0, max_retries=0)
    api = Script()
    row = rf.reflect(led, DEP, "2026-01-08", EOD, reflector=api.reflector(led, capped))
    assert api.requests == [] and row["content"]["fallback"] == "the daily cost cap is reached"
    last = model_calls.calls(led)[-1]
    assert (last["status"], last["cost_usd"], last["response"]) == ("capped", 0.0, None)


def test_learn_files_decision_proposals_starts_and_later_judges_experiments(day):
    led, _ = day
    d_ok = _decision(led, T0 + 10, action="PROPOSE_EXPERIMENT", verdict="monitor",
                     experiment={"parameter": "min_confidence", "control": 0.4,
                                 "variant": 0.6, "allocation": 0.5})
    d_bad = _decision(led, T0 + 11, action="PROPOSE_EXPERIMENT", verdict="monitor",
                      experiment={"parameter": "risk_per_trade", "control": 0.01,
                                  "variant": 0.5})
    d_share = _decision(led, T0 + 12, action="PROPOSE_EXPERIMENT", verdict="monitor",
                        experiment={"parameter": "entry_window", "control": 20, "variant": 30})
    done = rf.learn(led, DEP, DAY, EOD, reflector=rf.RulesReflector())
    (ok, bad, share) = done["decision_proposals"]
    # a share experiment waits for a person: nothing applies its variant yet
    assert share["decision_id"] == d_share
    assert ex.experiment(led, share["experiment_id"])["status"] == "proposed"
    assert ok["decision_id"] == d_ok and bad["decision_id"] == d_bad
    assert "risk_per_trade" in bad["refused"]
    assert done["started"] == [ok["experiment_id"]] and done["judged"] == {}
    e = ex.experiment(led, ok["experiment_id"])
    assert (e["status"], e["started_ts"], e["proposed_by"]) == ("running", EOD,
                                                                f"decision:{d_ok}")
    # the same end of day again changes nothing
    again = rf.learn(led, DEP, DAY, EOD + 60, reflector=rf.RulesReflector())
    assert again["started"] == [] and [x["experiment_id"] for x in
                                       again["decision_proposals"][:1]] == [e["id"]]
    assert len(ex.experiments(led)) == 2


def test_with_experiments_off_a_day_is_reflected_and_nothing_proposed(day):
    from tradewarden.agent.learning_settings import LearningSettings
    led, _ = day
    _decision(led, T0 + 10, action="PROPOSE_EXPERIMENT", verdict="monitor",
              experiment={"parameter": "min_confidence", "control": 0.4, "variant": 0.6})
    done = rf.learn(led, DEP, DAY, EOD, reflector=rf.RulesReflector(),
                    learning=LearningSettings(experiments=False))
    assert done["reflection"]["day"] == DAY and done["decision_proposals"] == []
    assert ex.experiments(led) == []


def test_a_decision_stamped_before_the_last_reflection_is_reviewed_the_next_day_once(day):
    """A daily bar is stamped with its session's date and decided after the close: after
    that day's reflection. The next day's reflection reviews it; none reviews it twice."""
    led, ids = day
    first = rf.reflect(led, DEP, DAY, EOD, reflector=rf.RulesReflector())
    assert first["content"]["decision_ids"] == ids[:4]
    late = _decision(led, T0 - 15 * 3600, outcome=0.4)     # 2026-01-05T00:00Z, recorded now
    today = _decision(led, T0 + 86_400)
    second = rf.reflect(led, DEP, "2026-01-06", EOD + 86_400, reflector=rf.RulesReflector())
    # ids[4], stamped the day before the first reflection's day, was never reviewed: now
    assert second["content"]["decision_ids"] == [ids[4], late, today]
    assert second["content"]["last_decision_id"] == today
    third = rf.reflect(led, DEP, "2026-01-07", EOD + 2 * 86_400, reflector=rf.RulesReflector())
    assert third["content"]["decision_ids"] == [] and third["content"]["last_decision_id"] == today
    assert third["summary"] == "2026-01-07: no decisions."


def test_a_retry_after_past_the_deadline_or_no_answer_in_time_never_holds_the_daemon(day):
    """The SDK would sleep a 429's retry-after (an hour here) before its retry: the
    reflection fails at once instead and the rules reflect; an answer that does not come
    by deadline_seconds is given up (ordering, not durations: one request, no retry)."""
    import threading

    led, _ = day
    patient = ReasoningSettings(provider="anthropic", max_retries=2, timeout_seconds=5.0,
                                deadline_seconds=5.0)
    seen = []

    def with_header(request):
        seen.append(request)
        return httpx2.Response(429, headers={"retry-after": "3600"}, json={
            "type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})

    who = rf.ModelReflector(led, patient, api_key="k", base_url="http://fake.invalid",
                            http_client=httpx2.Client(transport=httpx2.MockTransport(
                                with_header)))
    row = rf.reflect(led, DEP, DAY, EOD, reflector=who)
    assert len(seen) == 1                                  # no retry slept for an hour
    assert row["content"]["fallback"] == "the model call failed: RetryWaitTooLong"
    (call,) = model_calls.calls(led)
    assert call["status"] == "error" and "retry after 3600" in call["error"]
    # an answer held past the deadline: given up, recorded as a timeout
    gate = threading.Event()

    def hold(request):
        gate.wait(30)
        return httpx2.Response(200, json=_answer({"summary": "late"}))

    quick = ReasoningSettings(provider="anthropic", max_retries=0, timeout_seconds=0.2,
                              deadline_seconds=0.2)
    who = rf.ModelReflector(led, quick, api_key="k", base_url="http://fake.invalid",
                            http_client=httpx2.Client(transport=httpx2.MockTransport(hold)))
    row = rf.reflect(led, DEP, "2026-01-06", EOD + 86_400, reflector=who)
    gate.set()
    assert row["summary"] != "late" and row["content"]["fallback"].startswith(
        "the model call failed")
    assert model_calls.calls(led)[-1]["status"] == "timeout"
