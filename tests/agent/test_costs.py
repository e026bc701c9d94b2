"""Pricing model calls and the daily cost cap (agent/costs.py), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace

import pytest

from tradewarden.agent import records
from tradewarden.agent.costs import CostGuard, UnknownModelPrice, Usage, price_call
from tradewarden.ledger import Ledger, LedgerError
from tradewarden.ops.reasoning_settings import ModelPrice, ReasoningSettings

T0 = 1_767_225_600          # 2026-01-01T00:00:00Z
PRICES = {"m": ModelPrice(input_per_mtok=3, output_per_mtok=15, cache_read_per_mtok=0.3,
                          cache_write_per_mtok=3.75, read_on=date(2026, 11, 29),
                          source="https://example.invalid/pricing"),
          "tiered": ModelPrice(input_per_mtok=0.1, output_per_mtok=0.5, cache_read_per_mtok=0.01,
                               cache_write_per_mtok=0.125, read_on=date(2026, 11, 29),
                               source="https://example.invalid/pricing",
                               long_prompt_tokens=100_000, long_prompt_factor=5)}


class Alerts:
    def __init__(self):
        self.sent = []

    def alert(self, level, trigger, subject, body=None, *, dedupe_key=None, once=False):
        self.sent.append((level, trigger, dedupe_key, once))
        return len(self.sent)


def test_usage_reads_the_sdk_usage_object_with_none_as_zero():
    sdk = SimpleNamespace(input_tokens=1000, output_tokens=200, cache_read_input_tokens=None,
                          cache_creation_input_tokens=50)
    assert Usage.from_anthropic(sdk) == Usage(1000, 200, 0, 50)
    assert Usage.from_anthropic({"input_tokens": 3, "output_tokens": 4,
                                 "cache_read_input_tokens": 5}) == Usage(3, 4, 5, 0)
    with pytest.raises(ValueError, match="usage output_tokens -1"):
        Usage(1, -1)


def test_a_call_is_priced_per_million_tokens_of_each_kind():
    # 1e6 input * $3 + 2e5 output * $15 + 1e5 cache read * $0.3 + 4e4 cache write * $3.75
    cost = price_call(PRICES, "m", Usage(1_000_000, 200_000, 100_000, 40_000))
    assert cost == pytest.approx(3 + 3 + 0.03 + 0.15)
    assert price_call(PRICES, "m", Usage(0, 0)) == 0.0


def test_a_long_prompt_pays_every_rate_times_the_factor():
    short = price_call(PRICES, "tiered", Usage(100_000, 1_000))
    long_ = price_call(PRICES, "tiered", Usage(90_000, 1_000, cache_read_tokens=10_001))
    assert short == pytest.approx(0.01 + 0.0005)
    assert long_ == pytest.approx(5 * (0.009 + 0.0005 + 10_001 * 0.01 / 1e6))


def test_an_unknown_model_is_a_key_error_naming_it():
    with pytest.raises(KeyError) as err:
        price_call(PRICES, "claude-none", Usage(1, 1))
    assert isinstance(err.value, UnknownModelPrice)
    assert "model 'claude-none' has no price in reasoning.prices (priced: m, tiered)" == str(err.value)


def test_the_guard_sums_the_utc_day_and_alerts_once_at_the_warning_and_the_cap(ledger_db):
    led = Ledger(ledger_db)
    alerts = Alerts()
    guard = CostGuard(led, ReasoningSettings(daily_cost_cap_usd=1.0, alert_fraction=0.8),
                      alerter=alerts)
    def spend(ts, usd):
        records.record_cost(led, ts=ts, provider="anthropic", model="m", call_type="decide",
                            input_tokens=1, output_tokens=1, cost_usd=usd)
    spend(T0 - 1, 5.0)                    # yesterday: not counted today
    spend(T0 + 10, 0.5)
    assert guard.spent(T0 + 100) == pytest.approx(0.5)
    assert guard.allow(T0 + 100) and alerts.sent == []
    spend(T0 + 200, 0.3)                  # 0.8: the warning share
    assert guard.allow(T0 + 300) and guard.allow(T0 + 301)
    assert alerts.sent == [("warning", "cost_cap", "reasoning-cost-warn:2026-01-01", True)]
    spend(T0 + 400, 0.2)                  # 1.0: the cap
    assert not guard.allow(T0 + 500) and not guard.allow(T0 + 501)
    assert alerts.sent[1:] == [("critical", "cost_cap", "reasoning-cost-cap:2026-01-01",
                                True)]
    # the next UTC day starts from nothing
    assert guard.spent(T0 + 86_400) == 0.0 and guard.allow(T0 + 86_400)
    assert guard.spent(T0 - 1) == pytest.approx(5.0) and not guard.allow(T0 - 1)
    assert alerts.sent[-1][2] == "reasoning-cost-cap:2025-12-31"
    led.close()


def test_a_zero_cap_allows_nothing_and_a_bad_time_is_named(tmp_path):
    led = Ledger(tmp_path / "l.db")
    guard = CostGuard(led, ReasoningSettings(daily_cost_cap_usd=0))
    assert guard.allow(T0) is False
    with pytest.raises(LedgerError, match="now_ts 'noon'"):
        guard.spent("noon")
    led.close()
