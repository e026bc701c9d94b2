"""``[reasoning]`` (ops/reasoning_settings.py): defaults, the price table, clear errors."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from tradewarden.ops.reasoning_settings import (
    DEFAULT_PRICES,
    ModelPrice,
    ReasoningSettings,
)
from tradewarden.settings import ConfigError, load_settings


def test_defaults_are_the_rules_reasoner_and_priced_claude_models():
    s = ReasoningSettings()
    assert (s.provider, s.daily_cost_cap_usd, s.alert_fraction, s.max_retries) == \
        ("rules", 5.0, 0.8, 1)
    assert s.model in s.prices and s.reflection_model in s.prices
    assert s.prices[s.reflection_model].input_per_mtok < s.prices[s.model].input_per_mtok
    for name, price in DEFAULT_PRICES.items():
        assert name.startswith("claude-") and price.source.startswith("https://")
        assert price.cache_read_per_mtok < price.input_per_mtok < price.cache_write_per_mtok


def test_a_config_file_sets_the_section_and_adds_prices(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[reasoning]\nprovider = "anthropic"\nmodel = "claude-x"\n'
                   'daily_cost_cap_usd = 2.5\n'
                   '[reasoning.prices."claude-x"]\ninput_per_mtok = 1\noutput_per_mtok = 2\n'
                   'cache_read_per_mtok = 0.1\ncache_write_per_mtok = 1.25\n'
                   'read_on = 2026-11-29\nsource = "https://example.invalid"\n')
    s = load_settings(cfg).settings.reasoning
    assert (s.provider, s.model, s.daily_cost_cap_usd) == ("anthropic", "claude-x", 2.5)
    assert s.prices["claude-x"].read_on == date(2026, 11, 29)
    assert "claude-haiku-5-5" in s.prices          # the defaults are kept


def test_an_unpriced_model_is_a_config_error_naming_the_key(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[reasoning]\nprovider = "anthropic"\nreflection_model = "claude-nope"\n')
    with pytest.raises(ConfigError, match=r"reasoning\.reflection_model 'claude-nope' has no "
                                          r"price in reasoning\.prices"):
        load_settings(cfg)
    # the rules reasoner calls no model: no price needed
    assert ReasoningSettings(model="anything").model == "anything"


@pytest.mark.parametrize("kwargs, field", [
    ({"provider": "openai"}, "provider"), ({"alert_fraction": 1.5}, "alert_fraction"),
    ({"daily_cost_cap_usd": -1}, "daily_cost_cap_usd"), ({"max_retries": 9}, "max_retries"),
    ({"timeout_seconds": 60, "deadline_seconds": 30}, "deadline_seconds"),
    ({"api_key": "sk"}, "api_key"),
])
def test_bad_values_are_refused(kwargs, field):
    with pytest.raises(ValidationError, match=field):
        ReasoningSettings(**kwargs)


def test_a_price_must_be_non_negative_with_its_date_and_source():
    with pytest.raises(ValidationError, match="input_per_mtok"):
        ModelPrice(input_per_mtok=-1, output_per_mtok=1, cache_read_per_mtok=0,
                   cache_write_per_mtok=0, read_on=date(2026, 1, 1), source="https://x")
    with pytest.raises(ValidationError, match="source"):
        ModelPrice(input_per_mtok=1, output_per_mtok=1, cache_read_per_mtok=0,
                   cache_write_per_mtok=0, read_on=date(2026, 1, 1))
