"""The strategy contract.

A strategy never talks to a venue. It turns bars into intent in two steps:

1. :meth:`Strategy.prepare` — vectorised and causal: indicators over a
   :class:`~tradewarden.domain.BarSeries` and, from them, per-bar entry and exit
   conditions, the reason for holding when flat, and protective levels. The result
   is a :class:`SignalFrame`.
2. :meth:`Strategy.decide` — the per-bar decision: given the frame, a bar index and
   whether a position is open, return a :class:`~tradewarden.domain.Signal` with its
   reason and the input values it used.

The engine reads the frame on every bar and calls :meth:`decide` for every
actionable bar; :meth:`decide` must agree with the frame (a test checks this for the
built-ins on every bar).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from hashlib import sha256
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from tradewarden.domain import Action, BarSeries, Signal

#: Reason codes shared by every strategy for holds decided by the frame.
WARMUP = "warmup"


class StrategyParams(BaseModel):
    """Base for frozen, typed strategy parameters with a stable hash.

    Unknown keys, NaN and infinities are rejected (``-p stop_atr=inf`` fails naming
    ``stop_atr``). Give each field a ``Field(default, description=...)``: ``warden
    strategies list`` shows the description, type, bounds and default.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    def stable_hash(self) -> str:
        """Return a SHA-256 hex digest of the parameters as canonical JSON."""
        return sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


@dataclass(slots=True)
class SignalFrame:
    """Vectorised per-bar intent for one symbol.

    Parameters
    ----------
    enter : ndarray of bool, shape (n,)
        Entry condition at bar ``t`` (acted on when flat).
    exit : ndarray of bool, shape (n,)
        Exit condition at bar ``t`` (acted on when a position is open).
    flat_reason : ndarray of int8, shape (n,)
        Index into ``reasons`` explaining a hold while flat (``warmup``,
        ``no_breakout``, ...), or the entry reason where ``enter`` is True.
    reasons : tuple of str
        Reason labels for ``flat_reason``.
    stop_loss, take_profit : ndarray of float64, shape (n,)
        Protective levels in quote currency for an entry at bar ``t`` (NaN: none).
    inputs : dict of str to ndarray of float64
        The values decisions use, in the order of :attr:`Strategy.input_names`.
    entry_reason, exit_reason, hold_reason : str
        Reasons recorded for an entry, an exit and a hold while a position is open.
    entry_codes, exit_codes : ndarray of int16, shape (n,), optional
        Per-bar reasons instead of ``entry_reason`` / ``exit_reason``: indices into
        ``reasons``, read where ``enter`` (``exit``) is True.
    """

    enter: np.ndarray
    exit: np.ndarray
    flat_reason: np.ndarray
    reasons: tuple[str, ...]
    stop_loss: np.ndarray
    take_profit: np.ndarray
    inputs: dict[str, np.ndarray]
    entry_reason: str = "entry"
    exit_reason: str = "exit"
    hold_reason: str = "holding"
    entry_codes: np.ndarray | None = None
    exit_codes: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.enter.shape[0])

    def slice(self, start: int) -> SignalFrame:
        """Return the frame from bar ``start`` on (drop warm-up history)."""
        return SignalFrame(self.enter[start:], self.exit[start:], self.flat_reason[start:],
                           self.reasons, self.stop_loss[start:], self.take_profit[start:],
                           {k: v[start:] for k, v in self.inputs.items()},
                           self.entry_reason, self.exit_reason, self.hold_reason,
                           None if self.entry_codes is None else self.entry_codes[start:],
                           None if self.exit_codes is None else self.exit_codes[start:])


class Strategy(ABC):
    """Base class of every strategy (the NumPy contract).

    Subclasses set :attr:`name`, :attr:`Params` (a :class:`StrategyParams` subclass)
    and :attr:`input_names` (at most four, recorded with every decision), and
    implement :meth:`warmup` and :meth:`prepare`. A subclass that does not set
    ``name`` in its own body is named after its class (``SmaCross``); the name is
    what ``runs.strategy`` records, while ``runs.config`` keeps the ``--strategy``
    spec and the code's source. For a pandas interface see
    :class:`tradewarden.strategy.DataFrameStrategy`.
    """

    name: ClassVar[str] = ""
    Params: ClassVar[type[StrategyParams]] = StrategyParams
    input_names: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("name"):
            cls.name = cls.__name__

    def __init__(self, params: StrategyParams | None = None) -> None:
        self.params = params if params is not None else self.Params()

    @property
    @abstractmethod
    def warmup(self) -> int:
        """Bars of history the engine gives :meth:`prepare` before each chunk.

        Window indicators need their window; recursive ones (EMA, RSI, ATR, ADX)
        about 40 time constants, so that where a chunk starts changes no value
        (``warden check-lookahead`` checks this too).
        """

    @abstractmethod
    def prepare(self, bars: BarSeries) -> SignalFrame:
        """Compute indicators and per-bar intent over ``bars`` (causal, vectorised).

        Parameters
        ----------
        bars : BarSeries
            ``n`` bars of one symbol: the chunk plus up to :attr:`warmup` bars before it.

        Returns
        -------
        SignalFrame
            Arrays of length ``n``; the value at bar ``t`` may use bars ``<= t`` only.
        """

    def decide(self, frame: SignalFrame, t: int, in_position: bool) -> Signal:
        """Return the decision for bar ``t``.

        Parameters
        ----------
        frame : SignalFrame
            Output of :meth:`prepare` over bars that include ``t``.
        t : int
            Bar index into ``frame``.
        in_position : bool
            Whether a long position is open (or pending) for this symbol.
        """
        inputs = {k: float(v.item(t)) for k, v in frame.inputs.items()}
        if in_position:
            if frame.exit[t]:
                why = (frame.exit_reason if frame.exit_codes is None
                       else frame.reasons[int(frame.exit_codes[t])])
                return Signal(Action.EXIT, why, inputs)
            return Signal(Action.HOLD, frame.hold_reason, inputs)
        if frame.enter[t]:
            sl = float(frame.stop_loss.item(t))
            tp = float(frame.take_profit.item(t))
            why = (frame.entry_reason if frame.entry_codes is None
                   else frame.reasons[int(frame.entry_codes[t])])
            return Signal(Action.ENTER_LONG, why, inputs,
                          stop_loss=None if sl != sl else sl,          # NaN: no level
                          take_profit=None if tp != tp else tp)
        return Signal(Action.HOLD, frame.reasons[int(frame.flat_reason[t])], inputs)

    def describe(self) -> dict[str, Any]:
        """Return name, parameters and parameter hash, for the run record."""
        return {"name": self.name, "params": self.params.model_dump(mode="json"),
                "params_hash": self.params.stable_hash()}


def reason_codes(reasons: tuple[str, ...], n: int, **masks: np.ndarray) -> np.ndarray:
    """Build a ``flat_reason`` array: later keyword masks override earlier ones.

    Parameters
    ----------
    reasons : tuple of str
        Labels; index 0 is the default.
    n : int
        Number of bars.
    **masks : ndarray of bool
        ``label=mask`` pairs, applied in order.
    """
    out = np.zeros(n, dtype=np.int8)
    for label, mask in masks.items():
        out[mask] = reasons.index(label)
    return out
