"""Strategy registry: name → class, and ``--param key=value`` parsing."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from tradewarden.strategy.base import Strategy
from tradewarden.strategy.donchian import DonchianBreakout
from tradewarden.strategy.ema_rsi import EmaRsiVolume

STRATEGIES: dict[str, type[Strategy]] = {
    DonchianBreakout.name: DonchianBreakout,
    EmaRsiVolume.name: EmaRsiVolume,
}


class StrategyConfigError(ValueError):
    """An unknown strategy name or a bad parameter; the message names which."""


def parse_params(pairs: list[str] | None) -> dict[str, str]:
    """Parse ``["key=value", ...]`` into a dict.

    Raises
    ------
    StrategyConfigError
        For an item without ``=`` or with an empty key.
    """
    out: dict[str, str] = {}
    for item in pairs or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise StrategyConfigError(f"--param {item!r}: expected key=value")
        out[key.strip()] = value.strip()
    return out


def build_strategy(name: str, params: dict[str, Any] | None = None) -> Strategy:
    """Instantiate a registered strategy with validated parameters.

    Raises
    ------
    StrategyConfigError
        Unknown name (the message lists the known ones) or a parameter that does not
        exist or fails validation (the message names the parameter).
    """
    cls = STRATEGIES.get(name)
    if cls is None:
        raise StrategyConfigError(
            f"unknown strategy {name!r}; available: {', '.join(sorted(STRATEGIES))}")
    try:
        p = cls.Params(**(params or {}))
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err.get("loc", ())) or "params"
        known = ", ".join(cls.Params.model_fields)
        raise StrategyConfigError(
            f"strategy {name!r} param {loc!r}: {err['msg']} (params: {known})") from None
    return cls(p)
