"""Strategy registry: built-in names, ``--strategy`` specs, ``--param key=value`` parsing.

:func:`build_strategy` accepts a built-in name, ``path/to/file.py:ClassName``,
``package.module:ClassName`` or the name of an entry point of the
``tradewarden.strategies`` group (see :mod:`tradewarden.strategy.loader`).
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any

from annotated_types import Ge, Gt, Le, Lt
from pydantic import ValidationError
from pydantic_core import PydanticUndefined

from tradewarden.strategy.base import Strategy
from tradewarden.strategy.donchian import DonchianBreakout
from tradewarden.strategy.ema_rsi import EmaRsiVolume
from tradewarden.strategy.errors import StrategyConfigError
from tradewarden.strategy.loader import load_strategy_class
from tradewarden.strategy.rank import RankStrategy

STRATEGIES: dict[str, type[Strategy]] = {
    DonchianBreakout.name: DonchianBreakout,
    EmaRsiVolume.name: EmaRsiVolume,
    RankStrategy.name: RankStrategy,
}


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


def resolve_strategy(spec: str, params: dict[str, Any] | None = None) -> tuple[Strategy, str]:
    """Load the strategy ``spec`` names, validate ``params``, and say where its code came from.

    Parameters
    ----------
    spec : str
        Built-in name, ``path/to/file.py:ClassName``, ``package.module:ClassName`` or
        entry-point name.
    params : dict, optional
        Parameter values (strings from ``--param`` are coerced by the ``Params`` model).

    Returns
    -------
    strategy : Strategy
    source : str
        Provenance for ``RunConfig.strategy_source`` (``builtin:tradewarden==0.1.0``,
        ``file:/abs/path.py#sha256=...``, ``module:...``, ``entrypoint:...``).

    Raises
    ------
    StrategyLoadError
        The spec cannot be loaded (see :func:`~tradewarden.strategy.loader.load_strategy_class`).
    StrategyConfigError
        A parameter that does not exist or fails validation (the message names it and
        lists the valid ones), or a strategy class declared wrongly (e.g. more than
        four recorded columns).
    """
    loaded = load_strategy_class(spec, STRATEGIES)
    cls = loaded.cls
    label = spec.strip() if loaded.kind != "builtin" else cls.name
    try:
        p = cls.Params(**(params or {}))
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err.get("loc", ())) or "params"
        known = ", ".join(cls.Params.model_fields) or "none"
        raise StrategyConfigError(
            f"strategy {label!r} param {loc!r}: {err['msg']} (params: {known})") from None
    try:
        strategy = cls(p)
    except StrategyConfigError:
        raise
    except Exception as exc:
        raise StrategyConfigError(
            f"strategy {label!r}: constructing it failed: {type(exc).__name__}: {exc}") from None
    return strategy, loaded.source


def build_strategy(name: str, params: dict[str, Any] | None = None) -> Strategy:
    """Instantiate a strategy from a ``--strategy`` spec with validated parameters.

    Parameters
    ----------
    name : str
        Built-in name, ``path/to/file.py:ClassName``, ``package.module:ClassName`` or
        entry-point name.
    params : dict, optional

    Returns
    -------
    Strategy

    Raises
    ------
    StrategyConfigError
        Unknown name (the message lists the known ones), a spec that cannot be
        loaded (:class:`StrategyLoadError`), or a parameter that does not exist or
        fails validation (the message names the parameter).
    """
    return resolve_strategy(name, params)[0]


@dataclass(frozen=True, slots=True)
class ParamInfo:
    """One strategy parameter as ``warden strategies list`` shows it.

    Parameters
    ----------
    name : str
    type : str
        ``int``, ``float``, ``bool``, ``str``, ...
    default : str
        The default as text (``required`` when there is none).
    bounds : str
        ``2..1000``, ``> 0``, ... (empty when unbounded).
    description : str
    """

    name: str
    type: str
    default: str
    bounds: str
    description: str


def describe_params(cls: type[Strategy]) -> list[ParamInfo]:
    """List the parameters of a strategy class with type, default, bounds and description.

    Parameters
    ----------
    cls : type of Strategy

    Returns
    -------
    list of ParamInfo
        In declaration order.
    """
    out = []
    for name, field in cls.Params.model_fields.items():
        lo = hi = ""
        for m in field.metadata:
            if isinstance(m, Ge):
                lo = f">= {m.ge}"
            elif isinstance(m, Gt):
                lo = f"> {m.gt}"
            elif isinstance(m, Le):
                hi = f"<= {m.le}"
            elif isinstance(m, Lt):
                hi = f"< {m.lt}"
        if lo.startswith(">= ") and hi.startswith("<= "):
            bounds = f"{lo[3:]}..{hi[3:]}"
        else:
            bounds = ", ".join(x for x in (lo, hi) if x)
        if field.default is PydanticUndefined and field.default_factory is None:
            default = "required"
        elif field.default is PydanticUndefined:
            default = repr(field.default_factory())            # type: ignore[misc, call-arg]
        else:
            default = _text(field.default)
        out.append(ParamInfo(name, _type_name(field.annotation), default, bounds,
                             field.description or ""))
    return out


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _type_name(tp: Any) -> str:
    if tp is None:
        return "any"
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin is not None:
        return str(tp).replace("typing.", "")
    if tp is type(None):
        return "none"
    return getattr(tp, "__name__", str(tp))
