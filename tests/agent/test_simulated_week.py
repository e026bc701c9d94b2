"""A simulated trading week (issue 14, "Tested without the internet"): the daemon's
service loop (``DaemonService`` with the ``Supervisor``'s hooks, as ``warden daemon
start`` wires them) runs a paper deployment of BTC-USD and ETH-USD on the bundled hourly
candles for five days of simulated time, with ``[reasoning] provider = "anthropic"``
pointed at the loopback fake of the Messages API (tests/agent/fake_anthropic.py), which
answers the decisions and the end-of-day reflections. A person approves what waits for
them.

The record must show: a reflection stored for each day (the model's, and on the day the
cap is reached the rules' fallback); an experiment proposed by the first reflection,
started, observed and judged with Welch's test; every model call priced and summed per
UTC day; on day 4 (the model's answers get long) a warning alert at 80 % of the daily
cap, then the cap: no more requests that day, the decisions monitor-only, and the next
day calls again.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
from fake_anthropic import decision
from scipy import stats

from tradewarden.agent import experiments as ex
from tradewarden.agent import reflection as rf
from tradewarden.cli_paper import Opened
from tradewarden.data import load_market_data
from tradewarden.data.live_feed import FeedPoll
from tradewarden.domain import COINBASE_SPECS
from tradewarden.engine.clock import WallClock
from tradewarden.ledger import Ledger
from tradewarden.ops import logs
from tradewarden.ops.paper import open_paper
from tradewarden.ops.replay import resolve_config
from tradewarden.ops.service import DaemonService
from tradewarden.ops.supervision import Supervisor
from tradewarden.settings import deployment_settings, load_settings

HOUR, DAY = 3600, 86_400
START = int(datetime(2026, 4, 6, tzinfo=UTC).timestamp())        # a Monday, 00:00 UTC
DAYS = [datetime.fromtimestamp(START + i * DAY, UTC).date().isoformat() for i in range(5)]
SYMBOLS = ("BTC-USD", "ETH-USD")
CAP = 1.0                   # USD per UTC day
BIG_DAY = 3                 # day 4 (0-based 3): a decision's answer costs 0.20 USD
SERIES = load_market_data(None).series


class SimTime:
    """Simulated UTC epoch seconds; ``sleep`` moves them and calls the hook."""

    def __init__(self, t: float, hook) -> None:
        self.t, self.hook = float(t), hook

    def time(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(float(seconds), 0.0)
        self.hook(self.t)


class BundledFeed:
    """The hourly candles of the bundled data, delivered as they close on the clock
    (the interface of :class:`~tradewarden.data.live_feed.LiveCandleFeed`)."""

    tf = HOUR

    def __init__(self, symbols, clock) -> None:
        self.symbols, self.clock = list(symbols), clock
        self.last: int | None = None

    def _upto(self, symbol, lo, hi):
        s = SERIES[symbol]
        i, j = np.searchsorted(s.ts, lo), np.searchsorted(s.ts, hi, side="right")
        return s.slice(int(i), int(j))

    def warmup(self, bars, *, after=None):
        last = int(self.clock.now()) // HOUR * HOUR - HOUR if after is None else int(after)
        self.last = last
        return {sym: self._upto(sym, last - (bars - 1) * HOUR, last) for sym in self.symbols}

    def next_due(self):
        return float(self.last + 2 * HOUR)

    def poll(self):
        closed = int(self.clock.now()) // HOUR * HOUR - HOUR
        if closed <= self.last:
            return FeedPoll({}, None)
        out = {sym: self._upto(sym, self.last + HOUR, closed) for sym in self.symbols}
        self.last = closed
        return FeedPoll(out, None)


def _open_mode(loaded, *, deployment, clock, connect=None, before_start=None,
               wrap_ledger=None, quiet=False, bulk=True):
    """``open_mode`` of the daemon for this test: the paper deployment on the bundled
    candles (instead of a venue's market data)."""
    cfg, strategy = resolve_config(loaded.run_config())
    ledger = Ledger(loaded.ledger.url(), background=True, bulk=False)
    dep = open_paper(cfg, strategy, {s: COINBASE_SPECS[s] for s in cfg.symbols}, ledger,
                     name=deployment, clock=clock, created_by="test", venue="coinbase")
    return Opened(dep, BundledFeed(cfg.symbols, clock), ledger, None)


def _day(t: float) -> int:
    return int((t - START) // DAY)


def _responder(sim: SimTime):
    """The fake model: decisions by the event, reflections proposing one experiment on
    the first day; on day 4 every answer is long (and dear)."""
    def answer(rec) -> Any:
        day = _day(sim.t)
        usage = ({"input_tokens": 50_000, "output_tokens": 10_000} if day == BIG_DAY
                 else {"input_tokens": 3_000, "output_tokens": 300})
        schema = rec.body["output_config"]["format"]["schema"]
        if "reviews" in schema.get("properties", {}):          # a reflection
            record = json.loads(rec.body["messages"][0]["content"])
            reviews = [{"decision_id": d["id"],
                        "quality": "good" if (d["confidence"] or 0) >= 0.6 else "poor",
                        "outcome": "pending", "note": "judged on the confidence"}
                       for d in record["decisions"]]
            proposals = [] if day else [{
                "parameter": "min_confidence", "control": 0.4, "variant": 0.6,
                "name": "stricter entries", "rationale": "the 0.5-confidence entries look weak"}]
            return decision({"summary": f"reflection of day {day + 1}", "reviews": reviews,
                             "lessons": ["one day is little evidence"],
                             "proposals": proposals}, usage=usage, label="reflection")
        doc = json.loads(re.search(r"<decision_request>(.*)</decision_request>",
                                   rec.user_text, re.DOTALL).group(1))
        event = doc["event"]
        sym = event.get("symbol")
        if event["kind"] == "entry_signal":
            out = {"action": "EXECUTE_TRADES", "target_symbols": [sym],
                   "confidence": 0.9 if sym == "BTC-USD" else 0.5,
                   "reasoning": f"breakout in {sym}"}
        elif event["kind"] == "exit_signal":
            out = {"action": "CLOSE_POSITION", "target_symbols": [sym],
                   "target_position_ids": [sym], "confidence": 0.8,
                   "reasoning": f"the breakout in {sym} failed"}
        else:
            out = {"action": "MONITOR_ONLY", "confidence": 0.7,
                   "reasoning": f"{event['kind']}: nothing to do"}
        return decision(out, usage=usage)
    return answer


def test_a_week_reflections_an_experiment_judged_and_the_cost_cap(anthropic_env, tmp_path,
                                                                  monkeypatch):
    fake = anthropic_env
    # the service turns at least every heartbeat (60 s); hourly here, so a simulated week
    # is a few hundred turns (the heartbeat's own tests are in tests/ops)
    monkeypatch.setattr("tradewarden.ops.service.HEARTBEAT_SECONDS", HOUR)
    db = tmp_path / "week.db"
    cfg = tmp_path / "week.toml"
    cfg.write_text(f"""
mode = "paper"
symbols = ["BTC-USD", "ETH-USD"]
strategy = "donchian"
timeframe = "1h"
governor = "autonomous"
[params]
entry_window = 6
exit_window = 3
[ledger]
db = "{db}"
[venue]
name = "coinbase"
[daemon]
end_of_day_utc = "23:30"
inbox_seconds = 3600
stop_approach_fraction = 0.001
significant_move_fraction = 0.5
[autonomy]
calendar = "24/7"
[reasoning]
provider = "anthropic"
daily_cost_cap_usd = {CAP}
alert_fraction = 0.8
timeout_seconds = 5.0
deadline_seconds = 10.0
max_retries = 0
[learning]
min_samples = 5
min_effect = 0.05
""")
    stop_at = START + 5 * DAY + HOUR
    approved: set[int] = set()
    state: dict[str, Any] = {}

    def person(t: float) -> None:
        """Approves whatever waits, at most every 10 minutes."""
        led = state.get("ledger")
        if led is None or t - state.get("looked", 0) < 600:
            return
        state["looked"] = t
        for a in led.approvals(status="pending"):
            if a["id"] not in approved:
                approved.add(a["id"])
                led.enqueue_command(a["deployment_id"], "approve", actor="ana",
                                    target=str(a["id"]), reason="looks fine")

    sim = SimTime(START, person)
    clock = WallClock(sim.time, sim.sleep)
    fake.default = _responder(sim)
    loaded = load_settings(cfg, {})
    log = logs.configure(json=True, path=tmp_path / "week.log")
    led = state["ledger"] = Ledger(loaded.ledger.url())
    sup = Supervisor(led, loaded, daemon_id="week", clock=clock, log=log)
    service = DaemonService(
        deployment_settings(loaded), daemon_id="week", clock=clock,
        stop=lambda: sim.t >= stop_at, log=log, ledger=led, on_open=sup.on_open,
        on_bar=sup.on_bar, on_failure=sup.on_failure, on_turn=sup.on_turn,
        heartbeat=sup.heartbeat, wrap_ledger=sup.wrap_ledger, open_mode=_open_mode)
    sup.service = service
    try:
        assert service.run() in ("shutdown", "stopped")
    finally:
        sup.close()
    lines = [json.loads(x) for x in (tmp_path / "week.log").read_text().splitlines()]
    assert not [x for x in lines if x["event"] in ("deployment_failed", "event_failed",
                                                  "learning_failed")]
    (dep_id,) = {r["deployment_id"] for r in led.approvals()}

    # a reflection for every day, the model's but on the capped day
    rows = rf.reflections(led, dep_id)
    assert [r["day"] for r in rows] == DAYS
    assert [r["model"] for r in rows] == ["claude-haiku-5-5"] * 3 + ["rules", "claude-haiku-5-5"]
    fallbacks = [r["content"].get("fallback") for r in rows]
    assert fallbacks == [None, None, None, "the daily cost cap is reached", None]
    assert rows[0]["summary"] == "reflection of day 1" and rows[4]["summary"].startswith(
        "reflection of day 5")
    assert all(r["content"]["reviews"] for r in rows)

    # the experiment: proposed by the first reflection, run on paper, judged
    (e,) = ex.experiments(led, scope=dep_id)
    assert e["proposed_by"] == f"reflection:{rows[0]['id']}" and e["mode"] == "paper"
    assert (e["parameter"], e["control"], e["variant"]) == ("min_confidence", 0.4, 0.6)
    assert e["started_ts"] == START + 23 * HOUR + 1800             # the first end of day
    assert e["status"] in ("accepted", "rejected")
    obs = ex.observations(led, e["id"])
    assert min(len(obs["control"]), len(obs["variant"])) >= 5
    p = stats.ttest_ind(obs["variant"], obs["control"], equal_var=False,
                        alternative="greater").pvalue
    assert e["result"]["p_value"] == (1.0 if np.isnan(p) else p)
    accepted = e["result"]["p_value"] < 0.05 and e["result"]["effect"] >= 0.05
    assert e["status"] == ("accepted" if accepted else "rejected")
    assert (ex.applied_parameters(led, dep_id) != {}) == accepted
    # the next day's decisions saw the reflection and the running experiment
    docs = [json.loads(m.group(1)) for m in (
        re.search(r"<decision_request>(.*)</decision_request>", r.user_text, re.DOTALL)
        for r in fake.requests if r.body and "reviews" not in json.dumps(
            r.body["output_config"]["format"]["schema"].get("properties", {})))
        if m is not None]
    # (the daemon's events; the governor's entry and exit questions do not carry the
    # memory's parts yet)
    day2 = [d["context"] for d in docs if _day(d["event"]["ts"]) == 1
            and d["event"]["kind"] not in ("entry_signal", "exit_signal")]
    assert day2 and all(c["reflection"]["day"] == DAYS[0] for c in day2)
    assert all([x["id"] for x in c["experiments"]] == [e["id"]] for c in day2)
    kinds = [k for (k,) in _q(led, "select kind from daemon_events order by id")]
    assert kinds.count("end_of_day") == 5 and kinds.count("experiment_result") == 1

    # costs: every call priced; the cap reached on day 4 only, after the 80 % alert
    from tradewarden.agent import calls as model_calls
    calls = model_calls.calls(led)
    per_day: dict[int, float] = {}
    for c in calls:
        per_day[_day(c["ts"])] = per_day.get(_day(c["ts"]), 0.0) + c["cost_usd"]
    assert all(v < 0.8 * CAP for d, v in per_day.items() if d != BIG_DAY)
    assert per_day[BIG_DAY] >= CAP
    capped = [c for c in calls if c["status"] == "capped"]
    assert capped and {_day(c["ts"]) for c in capped} == {BIG_DAY}
    assert all(c["cost_usd"] == 0 and c["response"] is None for c in capped)
    first_capped = min(c["ts"] for c in capped)
    assert not [c for c in calls if c["status"] != "capped" and _day(c["ts"]) == BIG_DAY
                and c["ts"] > first_capped]          # no request once capped that day
    assert len(fake.requests) == len(calls) - len(capped)       # every request recorded
    assert any(_day(c["ts"]) == BIG_DAY + 1 and c["status"] == "ok" for c in calls)
    alerts = _q(led, "select level, trigger, subject, ts from alerts where trigger = 'cost_cap' "
                     "and status != 'suppressed' order by id")   # once a day each, the
    # second guard's (the reflection's) critical alert recorded as a suppressed duplicate
    assert [(a[0], a[1]) for a in alerts] == [("warning", "cost_cap"), ("critical", "cost_cap")]
    assert "at 80% of the daily cap" in alerts[0][2] and "cap reached" in alerts[1][2]
    assert all(_day(a[3]) == BIG_DAY for a in alerts) and alerts[0][3] <= alerts[1][3]
    # decisions while capped are monitor-only
    capped_decisions = _q(led, "select a.action from agent_decisions a join reasoning_calls c "
                               "on c.agent_decision_id = a.id where c.status = 'capped'")
    assert capped_decisions and {a for (a,) in capped_decisions} == {"MONITOR_ONLY"}
    total = sum(c["cost_usd"] for c in calls)
    ((costs,),) = _q(led, "select sum(cost_usd) from reasoning_costs")
    assert abs(costs - total) < 1e-9 and Decimal(str(total)) > 0
    led.close()



def _q(led, sql):
    with led.engine.connect() as conn:
        return conn.exec_driver_sql(sql).all()
