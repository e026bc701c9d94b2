"""What reasoning-model calls cost, and the daily cap that stops them.

:class:`Usage` holds one call's token counts (as the Anthropic SDK's ``usage`` reports
them), :func:`price_call` prices them from the ``[reasoning]`` price table (USD per
million tokens), and :class:`CostGuard` sums the UTC day's spend from the ledger's
``reasoning_costs`` and says whether another call may be made, alerting once a day at
the warning share of the cap and once at the cap itself.

Times are UTC epoch seconds given by the caller (the engine's clock); nothing here reads
the wall clock.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from tradewarden.agent.records import _read, _ts
from tradewarden.ledger import Ledger, LedgerError, schema

__all__ = ["CostGuard", "UnknownModelPrice", "Usage", "price_call"]

log = logging.getLogger(__name__)

_DAY = 86_400
_MILLION = Decimal(1_000_000)


class UnknownModelPrice(KeyError):
    """A model with no entry in the ``[reasoning]`` price table."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown model price"


@dataclass(frozen=True)
class Usage:
    """One model call's token counts.

    Parameters
    ----------
    input_tokens : int
        Uncached input tokens (>= 0).
    output_tokens : int
        Output tokens, reasoning included (>= 0).
    cache_read_tokens : int
        Input tokens read from the prompt cache (>= 0).
    cache_write_tokens : int
        Input tokens written to the prompt cache (>= 0).

    Raises
    ------
    ValueError
        A count that is not a whole number >= 0 (the message names it).
    """

    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    def __post_init__(self) -> None:
        for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"usage {name} {value!r}: give a whole number >= 0")

    @classmethod
    def from_anthropic(cls, usage: Any) -> Usage:
        """Read the SDK's ``Message.usage`` (or a mapping of the same fields).

        Reads ``input_tokens``, ``output_tokens``, ``cache_read_input_tokens`` and
        ``cache_creation_input_tokens`` (the Messages API's usage object); a missing or
        ``None`` field counts as 0.

        Raises
        ------
        ValueError
            A count that is not a whole number >= 0.
        """
        def get(name: str) -> int:
            value = usage.get(name) if isinstance(usage, Mapping) else getattr(usage, name, None)
            return 0 if value is None else value

        return cls(input_tokens=get("input_tokens"), output_tokens=get("output_tokens"),
                   cache_read_tokens=get("cache_read_input_tokens"),
                   cache_write_tokens=get("cache_creation_input_tokens"))

    @property
    def prompt_tokens(self) -> int:
        """The whole prompt: input, cache read and cache write tokens."""
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens


def price_call(prices: Mapping[str, Any], model: str, usage: Usage) -> float:
    """Return what one call cost, in US dollars.

    ``cost = (input * input_per_mtok + output * output_per_mtok + cache_read *
    cache_read_per_mtok + cache_write * cache_write_per_mtok) / 1e6``, every rate times
    ``long_prompt_factor`` when the prompt (input + cache read + cache write tokens) is
    longer than the price's ``long_prompt_tokens`` (Anthropic's published pricing:
    https://platform.claude.com/docs/en/about-claude/pricing). Summed in Decimal.

    Parameters
    ----------
    prices : mapping of str to ModelPrice
        ``[reasoning].prices``.
    model : str
        The model id called.
    usage : Usage

    Returns
    -------
    float
        USD, >= 0.

    Raises
    ------
    UnknownModelPrice
        A ``KeyError``: ``model`` has no price (the message names it and the priced
        models).
    """
    price = prices.get(model)
    if price is None:
        raise UnknownModelPrice(
            f"model {model!r} has no price in reasoning.prices (priced: "
            f"{', '.join(sorted(prices)) or 'none'})")
    factor = Decimal(1)
    if price.long_prompt_tokens is not None and usage.prompt_tokens > price.long_prompt_tokens:
        factor = Decimal(str(price.long_prompt_factor))
    total = sum((Decimal(count) * Decimal(str(rate)) for count, rate in (
        (usage.input_tokens, price.input_per_mtok),
        (usage.output_tokens, price.output_per_mtok),
        (usage.cache_read_tokens, price.cache_read_per_mtok),
        (usage.cache_write_tokens, price.cache_write_per_mtok))), Decimal(0))
    return float(total * factor / _MILLION)


def _day_start(ts: int) -> int:
    return ts - ts % _DAY


class CostGuard:
    """The daily cost cap of reasoning-model calls.

    Parameters
    ----------
    ledger : Ledger
        Where ``reasoning_costs`` are recorded (by :func:`~tradewarden.agent.calls.record_call`
        or :func:`~tradewarden.agent.records.record_cost`).
    settings : ReasoningSettings
        ``daily_cost_cap_usd`` and ``alert_fraction``.
    alerter : Alerter, optional
        Sent one ``warning`` per UTC day once the spend reaches ``alert_fraction`` of the
        cap and one ``critical`` per UTC day once it reaches the cap (trigger
        ``cost_cap``; dedupe keys carry the UTC date, sent with ``once=True`` so a
        restarted daemon does not repeat them).
    """

    TRIGGER = "cost_cap"

    def __init__(self, ledger: Ledger, settings: Any, *, alerter: Any = None) -> None:
        self.ledger = ledger
        self.settings = settings
        self.alerter = alerter
        self._sent: set[str] = set()

    def spent(self, now_ts: Any) -> float:
        """Return the USD spent on model calls in ``now_ts``'s UTC day.

        Sums ``reasoning_costs.cost_usd`` with ``ts`` from 00:00 UTC of that day up to
        (not including) the next day's start.

        Parameters
        ----------
        now_ts : int
            UTC epoch seconds.

        Raises
        ------
        LedgerError
            A bad ``now_ts`` or a ledger that cannot be read.
        """
        start = _day_start(_ts("now_ts", now_ts))
        t = schema.reasoning_costs
        q = select(func.coalesce(func.sum(t.c.cost_usd), 0.0)).where(
            t.c.ts >= start, t.c.ts < start + _DAY)
        return float(_read(self.ledger, "the day's reasoning costs",
                           lambda conn: conn.execute(q).scalar()))

    def allow(self, now_ts: Any) -> bool:
        """Say whether another model call may be made at ``now_ts``.

        Parameters
        ----------
        now_ts : int
            UTC epoch seconds.

        Returns
        -------
        bool
            ``False`` once the UTC day's spend has reached ``daily_cost_cap_usd`` (a cap
            of 0 allows no call); ``True`` otherwise.

        Raises
        ------
        LedgerError
            A bad ``now_ts`` or a ledger that cannot be read (the caller treats that as
            "no": a decision without a known budget falls to recommend-only).
        """
        spent = self.spent(now_ts)
        cap = float(self.settings.daily_cost_cap_usd)
        day = datetime.fromtimestamp(_ts("now_ts", now_ts), tz=UTC).date().isoformat()
        if spent >= cap:
            self._alert("critical", f"reasoning-cost-cap:{day}",
                        f"reasoning cost cap reached: ${spent:.4f} of ${cap:.2f} on {day}",
                        "No model is called until 00:00 UTC; decisions fall to "
                        "recommend-only. Raise [reasoning] daily_cost_cap_usd to resume.")
            return False
        if spent >= cap * float(self.settings.alert_fraction):
            self._alert("warning", f"reasoning-cost-warn:{day}",
                        f"reasoning cost at {spent / cap:.0%} of the daily cap: "
                        f"${spent:.4f} of ${cap:.2f} on {day}",
                        "At the cap no model is called until 00:00 UTC.")
        return True

    def _alert(self, level: str, key: str, subject: str, body: str) -> None:
        if self.alerter is None or key in self._sent:
            return
        self._sent.add(key)
        try:
            self.alerter.alert(level, self.TRIGGER, subject, body, dedupe_key=key, once=True)
        except LedgerError as exc:  # the alerter has logged and sent it; only its row is lost
            log.warning("reasoning cost alert %s not recorded: %s", key, exc)
