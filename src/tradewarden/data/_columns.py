"""Column-name and symbol normalisation shared by the loaders and the validator."""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from tradewarden.data.errors import DataError

#: Accepted names for the bar-open-time column, in order of preference.
TIMESTAMP_ALIASES: tuple[str, ...] = ("timestamp", "datetime", "date", "time")
PRICE_FIELDS: tuple[str, ...] = ("open", "high", "low", "close")
VALUE_FIELDS: tuple[str, ...] = PRICE_FIELDS + ("volume",)
CANONICAL_COLUMNS: tuple[str, ...] = ("timestamp",) + VALUE_FIELDS


def canonical_symbol(symbol: str) -> str:
    """Return the canonical ``BASE-QUOTE`` spelling of a symbol.

    Upper-cases and turns ``_`` and ``/`` separators into ``-`` (``btc_usd`` and
    ``BTC/USD`` both become ``BTC-USD``); bare tickers (``AAPL``) are upper-cased.

    Raises
    ------
    ValueError
        If the symbol is empty or not a string.
    """
    if not isinstance(symbol, str) or not symbol.strip():
        raise ValueError(f"invalid symbol {symbol!r}: expected a non-empty string such as "
                         "'BTC-USD'")
    return symbol.strip().upper().replace("_", "-").replace("/", "-")


def _listing(names: list[str], limit: int = 20) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def resolve_columns(df: pd.DataFrame, source: str) -> dict[str, object]:
    """Map canonical OHLCV names to the frame's own column labels (no data is copied).

    See :func:`resolve_names`, which this applies to ``df.columns``.

    Raises
    ------
    DataError
        As :func:`resolve_names`.
    """
    return resolve_names(list(df.columns), source)


def resolve_names(columns: Sequence[object], source: str) -> dict[str, object]:
    """Map canonical OHLCV names to a table's own column labels.

    Column names are matched case-insensitively, ignoring surrounding spaces. The time
    column may be called ``timestamp``, ``datetime``, ``date`` or ``time`` (first match
    in that order; ``date`` together with ``time`` is refused as ambiguous). A
    ``symbol`` column is included when present; other columns are ignored.

    Parameters
    ----------
    columns : sequence
        Column labels as read from a file (a CSV header, a Parquet schema).
    source : str
        File name used in error messages.

    Returns
    -------
    dict
        ``{"timestamp": label, "open": label, ..., "volume": label}`` plus
        ``"symbol"`` when there is one.

    Raises
    ------
    DataError
        If two columns have the same name once case-folded, if the time column is
        ambiguous, or if required columns are missing (all missing ones are named).
    """
    by_lower = fold_columns(columns, source)

    ts_col: object | None = None
    if "timestamp" in by_lower:
        ts_col = by_lower["timestamp"]
    elif "datetime" in by_lower:
        ts_col = by_lower["datetime"]
    elif "date" in by_lower and "time" in by_lower:
        raise DataError(source, "both 'date' and 'time' columns present and no 'timestamp' or "
                                "'datetime' column: cannot tell which holds the bar open time")
    elif "date" in by_lower:
        ts_col = by_lower["date"]
    elif "time" in by_lower:
        ts_col = by_lower["time"]

    missing: list[str] = []
    if ts_col is None:
        missing.append("timestamp (or time/date/datetime)")
    missing += [f for f in VALUE_FIELDS if f not in by_lower]
    if missing:
        found = [str(c) for c in columns]
        raise DataError(source, f"missing required column(s): {', '.join(missing)} "
                                f"(columns found: {_listing(found) or 'none'})")

    selected: dict[str, object] = {"timestamp": ts_col, **{f: by_lower[f] for f in VALUE_FIELDS}}
    if "symbol" in by_lower:
        selected["symbol"] = by_lower["symbol"]
    return selected


def normalize_columns(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Return a frame holding only the OHLCV (and ``symbol``) columns, renamed canonically.

    See :func:`resolve_columns` for the matching rules and errors. The index is kept.
    The columns are not copied (pandas copy-on-write protects the caller's frame).

    Raises
    ------
    DataError
        As :func:`resolve_columns`.
    """
    selected = resolve_columns(df, source)
    return pd.DataFrame({name: df[label] for name, label in selected.items()},
                        index=df.index, copy=False)


def fold_columns(columns, source: str) -> dict[str, object]:
    """Map each column name, stripped and lower-cased, to its original label.

    Raises
    ------
    DataError
        If two columns have the same name once case-folded (naming both).
    """
    by_lower: dict[str, object] = {}
    for col in columns:
        key = str(col).strip().lower()
        if key in by_lower:
            raise DataError(source, f"columns {str(by_lower[key])!r} and {str(col)!r} have the "
                                    "same name when case is ignored")
        by_lower[key] = col
    return by_lower
