"""``[reasoning]``: which model reasons for the agent, its limits, its prices and the daily cap.

Kept in a module of its own, importing only pydantic, so reading the configuration
stays fast. The API key is not a setting: the Anthropic SDK reads ``ANTHROPIC_API_KEY``
(and honours ``ANTHROPIC_BASE_URL``) from the environment itself.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["DEFAULT_PRICES", "ModelPrice", "ReasoningSettings"]


class ModelPrice(BaseModel):
    """One model's published price, in US dollars per million tokens.

    Parameters
    ----------
    input_per_mtok, output_per_mtok : float
        Base input and output tokens, USD per million tokens (>= 0).
    cache_read_per_mtok : float
        Prompt-cache hits and refreshes, USD per million tokens (>= 0).
    cache_write_per_mtok : float
        Prompt-cache writes with the default 5-minute lifetime, USD per million tokens
        (>= 0).
    read_on : datetime.date
        When the price was read from ``source``.
    source : str
        The URL of the published price page.
    long_prompt_tokens : int or None
        For a model priced by prompt length (Claude Haiku 5.5): a request whose prompt
        (input + cache read + cache write tokens) is longer than this pays every rate,
        output included, times ``long_prompt_factor``. ``None`` (the default): one price
        whatever the length.
    long_prompt_factor : float
        The multiplier above ``long_prompt_tokens`` (default 1).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    input_per_mtok: float = Field(ge=0, allow_inf_nan=False)
    output_per_mtok: float = Field(ge=0, allow_inf_nan=False)
    cache_read_per_mtok: float = Field(ge=0, allow_inf_nan=False)
    cache_write_per_mtok: float = Field(ge=0, allow_inf_nan=False)
    read_on: date
    source: str = Field(min_length=1)
    long_prompt_tokens: int | None = Field(None, ge=1)
    long_prompt_factor: float = Field(1.0, ge=1, allow_inf_nan=False)


_READ_ON = date(2026, 11, 29)
#: The published prices of the current Claude models (Opus 5.5, Sonnet 5.5, Haiku 5.5),
#: USD per million tokens, as read on 2026-11-29 from each model's overview page on
#: platform.claude.com. Haiku 5.5's cache rates and its long-prompt tier (5x above
#: 100,000 prompt tokens) were read from reports of its pricing page, its overview
#: giving only "from $0.10 / $0.50". Check https://platform.claude.com/docs/en/about-claude/pricing
#: before relying on them and override any in ``[reasoning.prices."<model>"]``.
DEFAULT_PRICES: dict[str, ModelPrice] = {
    "claude-opus-5-5": ModelPrice(
        input_per_mtok=4.0, output_per_mtok=20.0, cache_read_per_mtok=0.20,
        cache_write_per_mtok=5.0, read_on=_READ_ON,
        source="https://platform.claude.com/docs/en/models/opus-5-5/overview"),
    "claude-sonnet-5-5": ModelPrice(
        input_per_mtok=2.0, output_per_mtok=10.0, cache_read_per_mtok=0.20,
        cache_write_per_mtok=2.50, read_on=_READ_ON,
        source="https://platform.claude.com/docs/en/models/sonnet-5-5/overview"),
    "claude-haiku-5-5": ModelPrice(
        input_per_mtok=0.10, output_per_mtok=0.50, cache_read_per_mtok=0.01,
        cache_write_per_mtok=0.125, read_on=_READ_ON,
        source="https://platform.claude.com/docs/en/about-claude/pricing",
        long_prompt_tokens=100_000, long_prompt_factor=5.0),
}


class ReasoningSettings(BaseModel):
    """``[reasoning]``: the reasoning engine, its model, limits, prices and daily cost cap.

    Parameters
    ----------
    provider : {"rules", "anthropic"}
        ``rules`` (the default): the deterministic rules reasoner, no model calls.
        ``anthropic``: Claude through the Messages API; the key comes from
        ``ANTHROPIC_API_KEY``.
    model : str
        The model that decides (default ``claude-sonnet-5-5``); must have a price in
        ``prices`` unless ``provider`` is ``rules``.
    reflection_model : str
        The cheaper model of the daily reflection (default ``claude-haiku-5-5``); must
        have a price too.
    max_tokens : int
        Output tokens per call, reasoning included (default 2048).
    daily_cost_cap_usd : float
        Model spend allowed per UTC day, US dollars (default 5). Once the day's spend
        reaches it no model is called until 00:00 UTC; decisions fall to recommend-only.
    alert_fraction : float
        Share of the cap (0-1, default 0.8) at which one warning alert is sent per day.
    timeout_seconds : float
        Per HTTP request, seconds (default 10).
    max_retries : int
        The SDK's own retries of a failed request (0-5, default 1).
    deadline_seconds : float
        The whole decision, retries included, seconds (default 15: the daemon steps every
        deployment in one thread, so this is the longest a hung provider delays the others).
    prices : dict of str to ModelPrice
        Price per model id; entries given in the config are added to (or replace those
        of) :data:`DEFAULT_PRICES`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    provider: Literal["rules", "anthropic"] = "rules"
    model: str = Field("claude-sonnet-5-5", min_length=1, max_length=64)
    reflection_model: str = Field("claude-haiku-5-5", min_length=1, max_length=64)
    max_tokens: int = Field(2048, ge=1, le=128_000)
    daily_cost_cap_usd: float = Field(5.0, ge=0, allow_inf_nan=False)
    alert_fraction: float = Field(0.8, gt=0, le=1)
    timeout_seconds: float = Field(10.0, gt=0, allow_inf_nan=False)
    max_retries: int = Field(1, ge=0, le=5)
    deadline_seconds: float = Field(15.0, gt=0, allow_inf_nan=False)
    prices: dict[str, ModelPrice] = Field(default_factory=lambda: dict(DEFAULT_PRICES))

    @field_validator("prices", mode="before")
    @classmethod
    def _over_defaults(cls, value: Any) -> Any:
        return {**DEFAULT_PRICES, **value} if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _priced(self) -> ReasoningSettings:
        if self.provider != "rules":
            for key in ("model", "reflection_model"):
                name = getattr(self, key)
                if name not in self.prices:
                    raise ValueError(
                        f"reasoning.{key} {name!r} has no price in reasoning.prices; add "
                        f"[reasoning.prices.\"{name}\"] (USD per million tokens, read_on, "
                        f"source) or use one of {', '.join(sorted(self.prices))}")
        if self.deadline_seconds < self.timeout_seconds:
            raise ValueError(f"reasoning.deadline_seconds {self.deadline_seconds} is less than "
                             f"reasoning.timeout_seconds {self.timeout_seconds}")
        return self
