"""Clocks: where the engine gets time. Engine, strategy, risk and broker never read the
wall clock; the mode supplies a :class:`Clock`."""

from __future__ import annotations

from typing import Protocol


class Clock(Protocol):
    """Source of the current time, UTC epoch seconds."""

    def now(self) -> int:
        """Return the current time, UTC epoch seconds."""


class ReplayClock:
    """Replay time: the open time of the bar being processed (no wall clock).

    The engine advances it to each bar's timestamp before anything time-dependent
    (fills, risk checks, orders) happens on that bar.
    """

    def __init__(self, start: int = 0) -> None:
        self._ts = int(start)

    def now(self) -> int:
        """Return the current bar's open time, UTC epoch seconds."""
        return self._ts

    def advance(self, ts: int) -> None:
        """Move to ``ts``; time never goes backwards.

        Raises
        ------
        ValueError
            If ``ts`` is earlier than the current time.
        """
        if ts < self._ts:
            raise ValueError(f"replay clock cannot go back from {self._ts} to {ts}")
        self._ts = int(ts)
