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
    """Base for frozen, typed strategy parameters with a stable hash."""

    model_config = ConfigDict(frozen=True, extra="forbid")

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

    def __len__(self) -> int:
        return int(self.enter.shape[0])

    def slice(self, start: int) -> "SignalFrame":
        """Return the frame from bar ``start`` on (drop warm-up history)."""
        return SignalFrame(self.enter[start:], self.exit[start:], self.flat_reason[start:],
                           self.reasons, self.stop_loss[start:], self.take_profit[start:],
                           {k: v[start:] for k, v in self.inputs.items()},
                           self.entry_reason, self.exit_reason, self.hold_reason)


class Strategy(ABC):
    """Base class of every strategy.

    Subclasses set :attr:`name`, :attr:`Params` (a :class:`StrategyParams` subclass)
    and :attr:`input_names` (at most four, recorded with every decision), and
    implement :meth:`warmup` and :meth:`prepare`.
    """

    name: ClassVar[str] = ""
    Params: ClassVar[type[StrategyParams]] = StrategyParams
    input_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, params: StrategyParams | None = None) -> None:
        self.params = params if params is not None else self.Params()

    @property
    @abstractmethod
    def warmup(self) -> int:
        """Bars of history the indicators need before signals are valid."""

    @abstractmethod
    def prepare(self, bars: BarSeries) -> SignalFrame:
        """Compute indicators and per-bar intent over ``bars`` (causal, vectorised)."""

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
        inputs = {k: float(v[t]) for k, v in frame.inputs.items()}
        if in_position:
            if frame.exit[t]:
                return Signal(Action.EXIT, frame.exit_reason, inputs)
            return Signal(Action.HOLD, frame.hold_reason, inputs)
        if frame.enter[t]:
            sl = float(frame.stop_loss[t])
            tp = float(frame.take_profit[t])
            return Signal(Action.ENTER_LONG, frame.entry_reason, inputs,
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
