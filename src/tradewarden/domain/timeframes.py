"""Bar-length labels: ``"15m"``, ``"1h"``, ``"4h"``, ``"1d"`` to seconds and back.

They live in the domain layer because :class:`~tradewarden.domain.values.BarSeries` needs
a bar's length to give its close time, and the domain imports nothing else of
tradewarden; :mod:`tradewarden.data.resample` re-exports both functions unchanged.
"""

from __future__ import annotations

import re

__all__ = ["timeframe_label", "timeframe_seconds"]

_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
_LABEL = re.compile(r"^\s*(\d+)\s*(s|min|m|h|d)\s*$")


def timeframe_seconds(label: str) -> int:
    """Parse a bar-length label into seconds.

    Parameters
    ----------
    label : str
        A positive integer followed by a lower-case unit: ``s`` (seconds), ``m`` or
        ``min`` (minutes), ``h`` (hours), ``d`` (days), e.g. ``"1m"``, ``"15m"``,
        ``"1h"``, ``"4h"``, ``"1d"``. Upper-case units are refused (``"1M"`` could
        mean a month).

    Returns
    -------
    int
        Bar length in seconds.

    Raises
    ------
    ValueError
        If the label is not a string of that form or the number is zero.
    """
    match = _LABEL.match(label) if isinstance(label, str) else None
    if match is None or int(match.group(1)) == 0:
        raise ValueError(f"invalid timeframe {label!r}: expected a positive number followed by "
                         "s, m, h or d, such as '15m', '1h', '4h' or '1d'")
    return int(match.group(1)) * _UNITS[match.group(2)]


def timeframe_label(seconds: int) -> str:
    """Return the canonical label for a bar length: the largest unit that divides it.

    Parameters
    ----------
    seconds : int
        Bar length in seconds, > 0.

    Returns
    -------
    str
        ``86400 -> "1d"``, ``14400 -> "4h"``, ``900 -> "15m"``, ``90 -> "90s"``.

    Raises
    ------
    ValueError
        If ``seconds`` is not a positive integer.
    """
    if int(seconds) != seconds or seconds <= 0:
        raise ValueError(f"bar length must be a positive whole number of seconds, got {seconds!r}")
    seconds = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
