"""The graduated-autonomy governor: level x situation -> verdict, every mandatory trigger,
decisions recorded before the verdict, promotion and demotion from the ledger."""

from __future__ import annotations

import math
import sqlite3
import time
from decimal import Decimal

import numpy as np
import pytest
from pydantic import ValidationError

from tradewarden.agent import records
from tradewarden.agent.autonomy import AutonomyGovernor, AutonomySettings
from tradewarden.agent.reasoning import Action, DecisionOutput
from tradewarden.data import load_market_data
from tradewarden.domain import Verdict
from tradewarden.engine import ReplayClock
from tradewarden.ledger import Ledger, schema

T0 = 1_767_225_600          # 2026-01-01T00:00:00Z (a Thursday)
DAY = 86_400
DEP = "dep1"
SYM, OTHER = "BTC-USD", "ETH-USD"


@pytest.fixture(scope="module")
def btc():
    return load_market_data(None).series[SYM]


def put(led, table, rows):
    with led.engine.begin() as conn:
        conn.execute(schema.metadata.tables[table].insert(), rows)


def new_run(led, run_id, strategy="donchian", timeframe="1h"):
    led.create_run({"run_id": run_id, "mode": "paper", "capital_mode": "independent",
                    "market_time_basis": "test", "data_integrity": "ok", "config_hash": "x",
                    "config": "{}", "strategy": strategy, "symbols": "[]", "timeframe": timeframe,
                    "initial_capital": Decimal(10000)})


class Env:
    """A ledger with the deployment's run ``r1``, a replay clock and row writers."""

    def __init__(self, tmp_path, price):
        self.db = tmp_path / "l.db"
        self.led = Ledger(self.db)
        new_run(self.led, "r1")
        self.clock = ReplayClock(T0)
        self.price = price
        self._n = {"fills": 0, "trades": 0, "orders": 0}

    def governor(self, level=None, **kw):
        settings = kw.pop("settings", {})
        gov = AutonomyGovernor(self.led, DEP, "r1", self.clock,
                               AutonomySettings(cache_seconds=0, **settings), **kw)
        if level is not None:
            gov.set_level(level, "alice", "test setup", self.clock.now())
        return gov

    def entry_fill(self, symbol=SYM, qty="0.1", price=None, ts=T0 - DAY):
        n = self._n["fills"] = self._n["fills"] + 1
        put(self.led, "fills", [{"run_id": "r1", "fill_seq": n, "client_order_id": f"e{n}",
                                 "symbol": symbol, "side": "buy", "role": "entry",
                                 "quantity": Decimal(qty), "price": Decimal(str(price or self.price)),
                                 "reference_price": Decimal(str(price or self.price)),
                                 "fee": Decimal(0), "liquidity": "taker", "ts": ts + n,
                                 "time": "x"}])

    def trade(self, pnl, symbol=SYM, exit_ts=None):
        n = self._n["trades"] = self._n["trades"] + 1
        ts = exit_ts if exit_ts is not None else T0 + n
        put(self.led, "trades", [{"run_id": "r1", "trade_id": f"t{n}", "symbol": symbol,
                                  "side": "long", "quantity": Decimal("0.1"), "entry_ts": ts - 60,
                                  "entry_time": "x", "entry_price": Decimal(1), "exit_ts": ts,
                                  "exit_time": "x", "exit_price": Decimal(1), "fees": Decimal(0),
                                  "pnl": Decimal(str(pnl)), "return_pct": 0.0,
                                  "exit_reason": "signal", "entry_order_id": f"o{n}",
                                  "exit_order_id": f"x{n}", "holding_seconds": 60}])

    def order(self, status, role="entry"):
        n = self._n["orders"] = self._n["orders"] + 1
        put(self.led, "orders", [{"run_id": "r1", "client_order_id": f"ord{n:03d}", "symbol": SYM,
                                  "side": "buy", "type": "market", "role": role,
                                  "quantity": Decimal("0.1"), "status": status,
                                  "created_ts": T0 + n, "created_time": "x"}])

    def detail(self, ratio=1.0):
        return {"quantity": str(Decimal("0.1") * Decimal(str(ratio))), "price": self.price,
                "equity": 10000.0}

    def verdicts(self):
        with sqlite3.connect(self.db) as c:
            return c.execute("select verdict, triggers, autonomy_level from governor_verdicts "
                             "order by id").fetchall()


@pytest.fixture
def env(tmp_path, btc):
    e = Env(tmp_path, float(btc.close[0]))
    for _ in range(4):                    # BTC-USD traded before: 4 entries of 0.1 (the average)
        e.entry_fill()
    yield e
    e.led.close()


class Fixed:
    """A reasoner that always answers ``output``."""

    name = "fixed"

    def __init__(self, action, confidence=1.0, **kw):
        self.output = DecisionOutput(action=action, confidence=confidence, **kw)

    def decide(self, event, context):
        return self.output


# ---------------------------------------------------------------- level x situation
SITUATIONS = {
    # situation: (intent, size as a multiple of the recent average)
    "entry at the average": ("enter_long", 1.0),
    "entry at 1.5x": ("enter_long", 1.5),
    "entry at 2.5x": ("enter_long", 2.5),
    "exit": ("exit", None),
}
EXPECTED = {   # level -> verdict per situation, in SITUATIONS' order
    1: ("queue", "queue", "queue", "queue"),
    2: ("execute", "queue", "queue", "queue"),
    3: ("execute", "execute", "queue", "execute"),
    4: ("execute", "execute", "execute", "execute"),
}


@pytest.mark.parametrize("level", [1, 2, 3, 4])
def test_level_and_situation_give_the_verdict(env, level):
    gov = env.governor(level)
    for situation, want in zip(SITUATIONS, EXPECTED[level]):
        intent, ratio = SITUATIONS[situation]
        detail = env.detail(ratio) if intent == "enter_long" else {}
        auth = gov.authorize(SYM, intent, detail)
        assert auth.verdict == Verdict(want), (situation, auth.reason)
        verdict, triggers, recorded_level = env.verdicts()[-1]
        assert (verdict, triggers, recorded_level) == (want, "[]", level)   # no mandatory trigger
        assert isinstance(detail["agent_decision_id"], int)


def test_a_new_symbol_is_queued_at_l2(env):
    gov = env.governor(2)
    auth = gov.authorize(OTHER, "enter_long", env.detail())
    assert auth.verdict == Verdict.QUEUE and "first_trade" in auth.reason


# ---------------------------------------------------------------- mandatory triggers
def triggered(env):
    import json
    return [t["trigger"] for t in json.loads(env.verdicts()[-1][1])]


def test_first_trade_in_a_symbol_needs_a_person_at_l4(env):
    gov = env.governor(4)
    assert gov.authorize(OTHER, "enter_long", env.detail()).verdict == Verdict.QUEUE
    assert triggered(env) == ["first_trade"]
    assert gov.authorize(SYM, "enter_long", env.detail()).verdict == Verdict.EXECUTE


def test_three_times_the_average_needs_a_person(env):
    gov = env.governor(4)
    assert gov.authorize(SYM, "enter_long", env.detail(2.9)).verdict == Verdict.EXECUTE
    assert gov.authorize(SYM, "enter_long", env.detail(3.0)).verdict == Verdict.QUEUE
    assert triggered(env) == ["size"]


def test_the_price_comes_from_the_stop_and_the_risk_per_unit(env):
    gov = env.governor(4)
    detail = {"quantity": "0.3", "stop_loss": env.price - 500.0, "risk_per_unit": 500.0}
    assert gov.authorize(SYM, "enter_long", detail).verdict == Verdict.QUEUE
    assert triggered(env) == ["size"]
    row = records.agent_decision(env.led, detail["agent_decision_id"])
    assert float(row["context"]["event"]["payload"]["notional"]) == pytest.approx(0.3 * env.price)


def test_three_consecutive_losses_in_a_sector_need_a_person(env):
    gov = env.governor(4, settings={"sectors": {SYM: "crypto", OTHER: "crypto"}})
    env.entry_fill(OTHER)
    env.trade(-5, OTHER)
    env.trade(-5, OTHER)
    assert gov.authorize(SYM, "enter_long", env.detail()).verdict == Verdict.EXECUTE
    env.trade(-1, OTHER)                                 # the third loss in the sector
    assert gov.authorize(SYM, "enter_long", env.detail()).verdict == Verdict.QUEUE
    assert triggered(env) == ["sector_losses"]
    # without the mapping each symbol is its own sector: BTC-USD has no losses
    assert env.governor(4).authorize(SYM, "enter_long", env.detail()).verdict == Verdict.EXECUTE


@pytest.mark.parametrize("vix, want", [(25.9, Verdict.EXECUTE), (26.0, Verdict.QUEUE)])
def test_vix_up_30_percent_intraday_needs_a_person(env, vix, want):
    gov = env.governor(4, market=lambda: {"vix": vix, "vix_open": 20.0})
    assert gov.authorize(SYM, "enter_long", env.detail()).verdict == want
    assert triggered(env) == ([] if want == Verdict.EXECUTE else ["vix_spike"])


def test_a_data_gap_in_market_hours_needs_a_person(env):
    now = env.clock.now()
    gov = env.governor(4, market=lambda: {"last_data_ts": now - 1800})
    assert gov.authorize(SYM, "exit", {}).verdict == Verdict.QUEUE
    assert triggered(env) == ["data_gap"]
    fresh = env.governor(4, market=lambda: {"last_data_ts": now - 1799})
    assert fresh.authorize(SYM, "exit", {}).verdict == Verdict.EXECUTE
    # NYSE: 2026-01-01 is a holiday, the market is closed: a gap is no trigger
    nyse = env.governor(4, market=lambda: {"last_data_ts": now - 7200},
                        settings={"calendar": "XNYS"})
    assert nyse.authorize(SYM, "exit", {}).verdict == Verdict.EXECUTE


def _closes(led, run_id, ts, closes, symbol=SYM):
    put(led, "decisions", [{"run_id": run_id, "seq": i, "ts": int(t), "symbol": symbol,
                            "action": "hold", "reason": "x", "state": "flat", "close": float(c),
                            "equity": 10000.0} for i, (t, c) in enumerate(zip(ts, closes))])


def test_a_regime_never_seen_in_the_strategys_history_needs_a_person(env, btc):
    # the strategy's history: a replay of 2000 real hourly bars of the same strategy and timeframe
    new_run(env.led, "replay1")
    _closes(env.led, "replay1", btc.ts[:2000], btc.close[:2000])
    new_run(env.led, "other-strategy", strategy="ema_rsi")
    gov = env.governor(4)
    # this run's last 21 bars: real bars after the history -> within its range
    ts = btc.ts[2000:2021]
    _closes(env.led, "r1", ts, btc.close[2000:2021])
    assert gov.authorize(SYM, "enter_long", env.detail()).verdict == Verdict.EXECUTE
    # the same bars swinging 8 % up and down every hour: a volatility never seen
    new_run(env.led, "r2")
    wild = AutonomyGovernor(env.led, DEP, "r2", env.clock, AutonomySettings(cache_seconds=0))
    swings = btc.close[2000] * np.where(np.arange(21) % 2 == 0, 1.0, 1.08)
    _closes(env.led, "r2", ts, swings)
    assert wild.authorize(SYM, "enter_long", env.detail()).verdict == Verdict.QUEUE
    assert triggered(env) == ["regime_unseen"]


def test_a_regime_is_not_judged_without_enough_history(env, btc):
    gov = env.governor(4)
    swings = btc.close[0] * np.where(np.arange(21) % 2 == 0, 1.0, 1.08)
    _closes(env.led, "r1", btc.ts[:21], swings)            # no earlier window anywhere
    assert gov.authorize(SYM, "enter_long", env.detail()).verdict == Verdict.EXECUTE


@pytest.mark.parametrize("margin, want", [(0.40, Verdict.EXECUTE), (0.41, Verdict.QUEUE)])
def test_margin_utilisation_above_40_percent_needs_a_person(env, margin, want):
    gov = env.governor(4, context=lambda: {"account": {"margin_utilisation": margin}})
    assert gov.authorize(SYM, "enter_long", env.detail()).verdict == want


@pytest.mark.parametrize("confidence, want", [(0.4, Verdict.EXECUTE), (0.39, Verdict.QUEUE)])
def test_confidence_below_0_4_needs_a_person(env, confidence, want):
    gov = env.governor(4, reasoner=Fixed(Action.EXECUTE_TRADES, confidence))
    assert gov.authorize(SYM, "enter_long", env.detail()).verdict == want
    assert triggered(env) == ([] if want == Verdict.EXECUTE else ["low_confidence"])


def test_three_consecutive_fill_failures_need_a_person(env):
    gov = env.governor(4)
    env.order("rejected")
    env.order("filled", role="exit")
    env.order("rejected")
    env.order("rejected")
    env.order("cancelled", role="take_profit")            # a leg: not a fill failure
    assert gov.authorize(SYM, "exit", {}).verdict == Verdict.EXECUTE      # 2 since the fill
    env.order("rejected")
    assert gov.authorize(SYM, "exit", {}).verdict == Verdict.QUEUE
    assert triggered(env) == ["fill_failures"]


def test_an_open_anomaly_needs_a_person_and_only_monitor_or_review_pass(env):
    records.open_anomaly(env.led, deployment_id=DEP, kind="data_gap", ts=T0, symbol=OTHER)
    gov = env.governor(4)
    env.clock.advance(T0 + 1)
    gov.set_level(4, "alice", "again, after the anomaly's demotion", env.clock.now())
    assert gov.authorize(SYM, "enter_long", env.detail()).verdict == Verdict.QUEUE
    assert triggered(env) == ["anomaly_flag"]
    watch = env.governor(reasoner=Fixed(Action.MONITOR_ONLY))
    assert watch.authorize(SYM, "enter_long", env.detail()).verdict == Verdict.MONITOR
    review = env.governor(reasoner=Fixed(Action.REQUEST_HUMAN_REVIEW, escalation_reason="why"))
    assert review.authorize(SYM, "enter_long", env.detail()).verdict == Verdict.QUEUE
    assert env.verdicts()[-1][0] == "queue" and triggered(env) == ["anomaly_flag"]


def test_a_decision_that_does_not_match_the_intent_is_refused(env):
    gov = env.governor(4, reasoner=Fixed(Action.CLOSE_POSITION))
    assert gov.authorize(SYM, "enter_long", env.detail()).verdict == Verdict.MONITOR
    assert env.verdicts()[-1][0] == "refuse"


def test_a_failing_reasoner_hands_over_to_a_person(env):
    class Broken:
        name = "broken"

        def decide(self, event, context):
            raise RuntimeError("provider down")

    gov = env.governor(4, reasoner=Broken())
    assert gov.authorize(SYM, "enter_long", env.detail()).verdict == Verdict.QUEUE
    row = records.agent_decisions(env.led)[-1]
    assert row["action"] == "REQUEST_HUMAN_REVIEW" and "provider down" in row["output"]["reasoning"]


# ---------------------------------------------------------------- recorded first
def test_the_decision_is_committed_with_its_context_before_the_verdict(env, monkeypatch):
    gov = env.governor(2, context=lambda: {"positions": [{"symbol": OTHER, "quantity": "1"}],
                                           "account": {"cash": "900"}})
    seen = []
    real = records.record_verdict

    def spy(ledger, **kw):
        with sqlite3.connect(env.db) as c:             # another connection: committed?
            seen.append(c.execute("select id, action, context from agent_decisions").fetchall())
            seen.append(c.execute("select count(*) from governor_verdicts").fetchone()[0])
        return real(ledger, **kw)

    monkeypatch.setattr(records, "record_verdict", spy)
    detail = env.detail(1.5)
    auth = gov.authorize(SYM, "enter_long", detail)
    (did, action, context), = seen[0]
    assert seen[1] == 0 and action == "EXECUTE_TRADES" and detail["agent_decision_id"] == did
    import json
    ctx = json.loads(context)
    assert ctx["positions"] == [{"symbol": OTHER, "quantity": "1"}]
    assert ctx["account"] == {"cash": "900"} and ctx["autonomy_level"] == 2
    assert float(ctx["event"]["payload"]["notional"]) == pytest.approx(0.15 * env.price)
    assert float(ctx["event"]["payload"]["average_notional"]) == pytest.approx(0.1 * env.price)
    row = records.agent_decision(env.led, did)
    assert [(v["verdict"], v["reason"]) for v in row["verdicts"]] == [("queue", auth.reason)]


def test_the_level_set_by_another_process_applies_at_the_next_decision(env):
    gov = env.governor()
    assert gov.authorize(SYM, "enter_long", env.detail()).verdict == Verdict.QUEUE   # L1
    records.record_autonomy_change(env.led, deployment_id=DEP, ts=T0, from_level=1, to_level=4,
                                   kind="command", reason="set-autonomy", actor="bob")
    assert gov.authorize(SYM, "enter_long", env.detail()).verdict == Verdict.EXECUTE
    assert [c["kind"] for c in records.autonomy_changes(env.led, DEP)] == ["initial", "command"]


def test_settings_are_checked():
    with pytest.raises(ValidationError):
        AutonomySettings(initial_level=4)                     # L4 only by command
    with pytest.raises(ValidationError):
        AutonomySettings(demote_losses=6)
    with pytest.raises(ValidationError):
        AutonomySettings(vix_jmp=0.2)
    assert AutonomySettings().sector("X") == "X"


# ---------------------------------------------------------------- promotion and demotion
@pytest.fixture
def wall(tmp_path, btc):
    """An Env whose clock starts 80 days before the wall clock (commands carry wall time)."""
    e = Env(tmp_path, float(btc.close[0]))
    start = (int(time.time()) // DAY - 80) * DAY
    e.clock = ReplayClock(start)
    e.start = start
    yield e
    e.led.close()


def test_promotion_to_l2_after_30_days_and_a_70_percent_win_rate_not_before(wall):
    gov = wall.governor()
    for i in range(10):                                   # 7 wins, 3 losses: 70 %
        wall.trade(-3 if i in (1, 4, 8) else 5, exit_ts=wall.start + (i + 1) * DAY)
    assert gov.review(wall.start + 29 * DAY + 86_399) is None       # 29 whole days
    change = gov.review(wall.start + 30 * DAY)
    assert (change["from_level"], change["to_level"], change["kind"]) == (1, 2, "promotion")
    assert "win rate 0.70 over 10 trades" in change["reason"]
    assert gov.level() == 2
    assert gov.review(wall.start + 31 * DAY) is None        # the clock restarts at L2


def test_no_promotion_below_the_win_rate_or_the_trade_count(wall):
    gov = wall.governor()
    for i in range(10):                                   # 6 wins: 60 %
        wall.trade(-3 if i in (1, 4, 6, 8) else 5, exit_ts=wall.start + (i + 1) * DAY)
    assert gov.review(wall.start + 40 * DAY) is None
    few = wall.governor(settings={"promote_min_trades": 11, "demote_losses": 5})
    assert few.review(wall.start + 40 * DAY) is None


def test_a_manual_override_restarts_the_count_at_l1(wall):
    dep = wall.led.open_deployment("d", mode="paper", config="{}", config_hash="h")
    gov = AutonomyGovernor(wall.led, dep["deployment_id"], "r1", wall.clock,
                           AutonomySettings(cache_seconds=0, promote_min_trades=1))
    wall.led.enqueue_command(dep["deployment_id"], "reject", actor="alice", target="1")
    assert gov.review(wall.start + 79 * DAY) is None         # the reject was given just now


def test_promotion_to_l3_needs_60_days_and_a_sharpe_above_1_5(wall, btc):
    gov = wall.governor(2)
    days = 61
    rng_returns = np.diff(np.log(btc.close[::24][:days + 1]))    # real daily BTC returns
    good = 10000 * np.cumprod(1 + 0.01 + 0.2 * rng_returns)     # a steady climb with noise
    bad = 10000 * np.cumprod(1 + rng_returns)
    for run_id, curve in (("r1", good),):
        _closes(wall.led, run_id, [wall.start + (i + 1) * DAY for i in range(days)], curve)
        with wall.led.engine.begin() as conn:
            for i, eq in enumerate(curve):
                conn.execute(schema.decisions.update().where(
                    schema.decisions.c.run_id == run_id, schema.decisions.c.seq == i)
                    .values(equity=float(eq)))
    assert gov.review(wall.start + 59 * DAY) is None
    sharpe = gov._daily_sharpe(wall.start)
    assert sharpe > 1.5
    change = gov.review(wall.start + 62 * DAY)
    assert (change["from_level"], change["to_level"]) == (2, 3)
    # a curve with the plain BTC returns does not earn it
    new_run(wall.led, "r9")
    plain = AutonomyGovernor(wall.led, "dep9", "r9", wall.clock, AutonomySettings(cache_seconds=0))
    plain.set_level(2, "alice", "test", wall.start)
    put(wall.led, "decisions", [{"run_id": "r9", "seq": i, "ts": wall.start + (i + 1) * DAY,
                                 "symbol": SYM, "action": "hold", "reason": "x", "state": "flat",
                                 "close": 1.0, "equity": float(eq)} for i, eq in enumerate(bad)])
    assert not plain._daily_sharpe(wall.start) > 1.5
    assert plain.review(wall.start + 62 * DAY) is None


def test_the_sharpe_ratio_agrees_with_empyrical(wall, btc):
    import empyrical
    import pandas as pd
    gov = wall.governor()
    curve = 10000 * btc.close[::24][:90] / btc.close[0]
    put(wall.led, "decisions", [{"run_id": "r1", "seq": i, "ts": wall.start + (i + 1) * DAY,
                                 "symbol": SYM, "action": "hold", "reason": "x", "state": "flat",
                                 "close": 1.0, "equity": float(eq)} for i, eq in enumerate(curve)])
    returns = pd.Series(curve).pct_change().dropna()
    want = empyrical.sharpe_ratio(returns, annualization=365)
    assert gov._daily_sharpe(wall.start) == pytest.approx(want, rel=1e-9)
    assert math.isfinite(want)


def test_demotion_on_a_manual_override_once_and_at_the_next_decision(wall):
    dep = wall.led.open_deployment("d", mode="paper", config="{}", config_hash="h")
    dep_id = dep["deployment_id"]
    gov = AutonomyGovernor(wall.led, dep_id, "r1", wall.clock, AutonomySettings(cache_seconds=0))
    gov.set_level(3, "alice", "trusted", wall.start)
    wall.entry_fill()
    wall.led.enqueue_command(dep_id, "pause", actor="alice")              # not an override
    wall.led.enqueue_command(dep_id, "reject", actor="system", target="1")  # not a person
    assert gov.review(wall.start + 1) is None
    wall.led.enqueue_command(dep_id, "flatten", actor="alice")
    auth = gov.authorize(SYM, "enter_long", wall.detail())     # the demotion comes first
    assert gov.level() == 2 and auth.verdict == Verdict.EXECUTE
    last = records.autonomy_changes(wall.led, dep_id)[-1]
    assert (last["kind"], last["from_level"], last["to_level"], last["actor"]) == (
        "demotion", 3, 2, "governor")
    assert "manual override" in last["reason"] and "flatten by alice" in last["reason"]
    assert gov.review(wall.start + 2) is None                  # the same override counts once
    restarted = AutonomyGovernor(wall.led, dep_id, "r1", wall.clock, AutonomySettings())
    assert restarted.review(wall.start + 3) is None            # also after a restart


def test_demotion_on_3_losses_in_5_trades(wall):
    gov = wall.governor(3)
    for pnl in (5, -1, 4, -2):
        wall.trade(pnl, exit_ts=wall.start + 10 + len(str(pnl)) + abs(pnl))
    assert gov.review(wall.start + DAY) is None               # 2 losses
    wall.trade(-7, exit_ts=wall.start + 100)
    change = gov.review(wall.start + DAY)
    assert (change["from_level"], change["to_level"]) == (3, 2)
    assert change["reason"] == "3 losses in the last 5 trades"
    assert gov.review(wall.start + DAY + 1) is None             # trades before the change


def test_demotion_on_an_anomaly_flag(wall):
    gov = wall.governor(2)
    assert gov.review(wall.start + 1) is None
    records.open_anomaly(wall.led, deployment_id=DEP, kind="vix_spike", ts=wall.start + 5)
    change = gov.review(wall.start + 10)
    assert (change["to_level"], change["kind"]) == (1, "demotion")
    assert "anomaly flagged: vix_spike" in change["reason"]
    assert gov.demote("by hand", wall.start + 11) is None          # nothing below L1
    assert gov.set_level(4, "alice", "only by command", wall.start + 12)["to_level"] == 4
    assert gov.review(wall.start + 13) is None                     # the same flag counts once


def test_the_governor_on_sqlite_and_postgresql(ledger_db, query, btc):
    led = Ledger(ledger_db)
    new_run(led, "r1")
    clock = ReplayClock(T0)
    dep = led.open_deployment("d", mode="paper", config="{}", config_hash="h")["deployment_id"]
    price = Decimal(str(btc.close[0]))
    put(led, "fills", [{"run_id": "r1", "fill_seq": i, "client_order_id": f"e{i}", "symbol": SYM,
                        "side": "buy", "role": "entry", "quantity": Decimal("0.1"), "price": price,
                        "reference_price": price, "fee": Decimal(0), "liquidity": "taker",
                        "ts": T0 - 100 + i, "time": "x"} for i in range(3)])
    gov = AutonomyGovernor(led, dep, "r1", clock, AutonomySettings(cache_seconds=0))
    gov.set_level(2, "alice", "test", T0)
    detail = {"quantity": "0.1", "price": float(price)}
    assert gov.authorize(SYM, "enter_long", detail).verdict == Verdict.EXECUTE
    assert gov.authorize(SYM, "exit", {}).verdict == Verdict.QUEUE
    assert gov.authorize(OTHER, "enter_long", dict(detail)).verdict == Verdict.QUEUE
    assert query(ledger_db, "select verdict from governor_verdicts order by id") == [
        ("execute",), ("queue",), ("queue",)]
    led.enqueue_command(dep, "kill", actor="alice")
    assert gov.review(T0 + 10)["to_level"] == 1
    assert gov.review(T0 + 11) is None
    assert query(ledger_db, "select kind, to_level from autonomy_changes order by id") == [
        ("initial", 1), ("command", 2), ("demotion", 1)]
    led.close()


def test_trading_days_are_calendar_days_on_24_7_and_sessions_on_an_exchange(env):
    crypto = env.governor()
    nyse = env.governor(settings={"calendar": "XNYS"})
    # 2026-01-01 (Thursday, a holiday) to 2026-01-12 (Monday): 11 whole days; sessions
    # Jan 2, 5-9 and 12 -> 7
    assert crypto.trading_days(T0, T0 + 11 * DAY) == 11
    assert nyse.trading_days(T0, T0 + 11 * DAY) == 7
    assert nyse.trading_days(T0, T0 + 2 * DAY) == 1            # Friday Jan 2 only
    assert crypto.trading_days(T0 + 5, T0) == 0
    with pytest.raises(ValidationError, match="calendar 'NOPE'"):
        AutonomySettings(calendar="NOPE")


def test_an_entry_of_unknown_size_is_queued_at_l2_and_l3(env):
    for level in (2, 3):
        gov = env.governor(level)
        auth = gov.authorize(SYM, "enter_long", {"quantity": "0.1"})   # no price, no closes
        assert auth.verdict == Verdict.QUEUE and "size is unknown" in auth.reason
    assert env.governor(4).authorize(SYM, "enter_long", {"quantity": "0.1"}).verdict == \
        Verdict.EXECUTE


def test_the_reasoner_sees_the_memory_the_context_hook_gives(env):
    """Entries and exits decided through the governor see what the daemon's events see:
    similar past decisions, patterns, experiments, the latest reflection, performance and
    recent decisions with their outcomes."""
    seen = []

    class Capture(Fixed):
        def decide(self, event, context):
            seen.append(context)
            return self.output

    memory = {"similar_past": [{"summary": "put on NVDA, VIX high", "similarity": 0.9}],
              "patterns": [{"action": "EXECUTE_TRADES", "hit_rate": 0.6}],
              "experiments": [{"id": 1, "arm": "control"}],
              "reflection": {"day": "2026-01-05", "summary": "patient"},
              "performance": {"win_rate": 0.55},
              "recent_decisions": [{"id": 7, "action": "MONITOR_ONLY", "outcome": None}]}
    gov = env.governor(level=4, reasoner=Capture(Action.EXECUTE_TRADES),
                       context=lambda: {"positions": [], **memory})
    gov.authorize(SYM, "enter_long", env.detail())
    (ctx,) = seen
    assert ctx.similar_past == memory["similar_past"] and ctx.patterns == memory["patterns"]
    assert ctx.experiments == memory["experiments"] and ctx.reflection == memory["reflection"]
    assert ctx.performance == memory["performance"]
    assert ctx.recent_decisions == memory["recent_decisions"]


def test_an_accepted_experiment_can_raise_the_confidence_floor_never_lower_it(env):
    import json

    from tradewarden.agent.experiments import PARAMETERS_KEY
    gov = env.governor(level=4, reasoner=Fixed(Action.EXECUTE_TRADES, confidence=0.6))
    assert gov.min_confidence() == AutonomySettings().min_confidence == 0.4
    assert gov.authorize(SYM, "enter_long", env.detail()).verdict.value == "execute"

    def applied(value):
        with env.led.engine.begin() as conn:
            conn.execute(schema.agent_memory.delete())
            conn.execute(schema.agent_memory.insert(), [{
                "scope": DEP, "key": PARAMETERS_KEY, "ts": T0, "updated_at": "x",
                "value": json.dumps({"min_confidence": {"value": value, "actor": "experiment:1"}})}])
    applied(0.8)                    # accepted: decisions below 0.8 go to a person
    assert gov.min_confidence() == 0.8
    assert gov.authorize(SYM, "enter_long", env.detail()).verdict.value == "queue"
    assert "low_confidence" in env.verdicts()[-1][1]
    applied(0.1)                    # an experiment cannot loosen the configured floor
    assert gov.min_confidence() == 0.4
