"""Clocks: where the engine gets time.

The mode supplies a :class:`Clock`: :class:`ReplayClock` for replay (time is whatever
the driver advanced it to; it never sleeps), :class:`WallClock` for paper and live.

This module is the ONLY place in ``engine``, ``strategy``, ``risk`` and ``execution``
that may touch the wall clock (``time.time``, ``time.sleep``, ``datetime.now`` ...), and
only inside :class:`WallClock`'s defaults. Everything else asks its clock.
``tests/test_wall_clock.py`` enforces this with a scan of the source.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "ReplayClock", "WallClock"]

#: Longest single sleep of :meth:`WallClock.wait_until`, seconds: a stop request is
#: noticed within this long.
MAX_SLEEP_SLICE = 1.0


@runtime_checkable
class Clock(Protocol):
    """What the engine needs of time: the current time, and waiting until a time."""

    def now(self) -> int:
        """Return the current time, UTC epoch seconds."""

    def wait_until(self, ts: int) -> None:
        """Block until :meth:`now` is at least ``ts`` (UTC epoch seconds); return at once if it is."""


class ReplayClock:
    """Replay time: the time the replay driver last advanced it to; no wall clock, no sleeping.

    The driver (engine or feed) advances it before anything time-dependent (fills, risk
    checks, orders, staleness) happens on a bar.

    Parameters
    ----------
    start : int, default 0
        Initial time, UTC epoch seconds.
    """

    def __init__(self, start: int = 0) -> None:
        self._ts = int(start)

    def now(self) -> int:
        """Return the replay time, UTC epoch seconds."""
        return self._ts

    def advance(self, ts: int) -> None:
        """Move to ``ts`` (UTC epoch seconds); time never goes backwards.

        Raises
        ------
        ValueError
            If ``ts`` is earlier than the current time.
        """
        if ts < self._ts:
            raise ValueError(f"replay clock cannot go back from {self._ts} to {ts}")
        self._ts = int(ts)

    def wait_until(self, ts: int) -> None:
        """Jump to ``ts`` (UTC epoch seconds) if it is later; return at once (replay never sleeps).

        An earlier ``ts`` leaves the time unchanged (the wait is already over), unlike
        :meth:`advance`, which refuses it.
        """
        if ts > self._ts:
            self._ts = int(ts)


class WallClock:
    """Real time for paper and live trading.

    Parameters
    ----------
    time_fn : callable () -> float, default :func:`time.time`
        Current time, UTC epoch seconds (float).
    sleep_fn : callable (float) -> None, default :func:`time.sleep`
        Sleep for the given number of seconds.
    stop : callable () -> bool, optional
        Checked before every sleep slice (e.g. ``threading.Event().is_set``); when it
        returns True, :meth:`wait_until` returns early, before the target time.

    Notes
    -----
    Tests inject ``time_fn`` and ``sleep_fn`` (a fake clock that moves when "slept"), so
    nothing real sleeps.
    """

    def __init__(self, time_fn: Callable[[], float] = time.time,
                 sleep_fn: Callable[[float], None] = time.sleep,
                 stop: Callable[[], bool] | None = None) -> None:
        self._time = time_fn
        self._sleep = sleep_fn
        self._stop = stop

    def now(self) -> int:
        """Return the current time, whole UTC epoch seconds (rounded down)."""
        return int(self._time())

    def wait_until(self, ts: int) -> None:
        """Sleep until the time is at least ``ts`` (UTC epoch seconds).

        Sleeps in slices of at most :data:`MAX_SLEEP_SLICE` (1 s), rechecking the time
        after each (a sleep may end early or late) and the ``stop`` callable before
        each, so a stop request is noticed within a second. Returns at once when
        ``ts`` has already passed.
        """
        while True:
            remaining = ts - self._time()
            if remaining <= 0 or (self._stop is not None and self._stop()):
                return
            self._sleep(min(MAX_SLEEP_SLICE, remaining))
