"""Daily US equities, SPY and VIX: loaders into :class:`~tradewarden.domain.BarSeries`.

Four file layouts are read (all gzip CSV with a header row, long format with a
``symbol`` column, sorted by date; see ``bundled/PROVENANCE-equities.md``):

============================  ============================================================
loader                        columns
============================  ============================================================
:func:`load_equity_panel`     timestamp, symbol, open, high, low, close, adj_close, volume,
                              dividend, split_coefficient (AlphaVantage daily adjusted:
                              OHLC **raw**, adj_close split- and dividend-adjusted)
:func:`load_yahoo_daily`,     timestamp, symbol, open, high, low, close, adj_close, volume
:func:`load_spy_daily`        (Yahoo Finance: OHLC **split-adjusted**, adj_close also
                              dividend-adjusted)
:func:`load_adj_close_panel`  timestamp, symbol, adj_close (no OHLCV; a wide DataFrame)
:func:`load_vix_daily`        timestamp, symbol, open, high, low, close (an index: no
                              volume)
============================  ============================================================

Conventions
-----------
- **Daily timestamps are date labels.** ``BarSeries.ts`` holds the NYSE session date at
  00:00 UTC in epoch seconds (``days since 1970-01-01 * 86400``); it does *not* mean
  the bar opened at midnight UTC (the session is the regular NYSE/CBOE session in
  America/New_York). ``timeframe`` is ``"1d"``. A timestamp that is not at
  00:00:00 UTC is a bad row.
- **Prices** are US dollars per share (index points for VIX); **volume** is shares.
- **Date ranges** (``start``, ``end``) are dates, **both inclusive**, applied after
  adjustment, so the adjustment of a bar never depends on the range asked for.
- **Quality** (:class:`DailyQuality`) describes the symbol's rows in the file (before
  ``start``/``end``): :func:`~tradewarden.data.validate_frame`'s report with gaps
  measured against the NYSE (XNYS) session calendar, so holidays are not gaps; rows on
  non-session days; rows with ``open == high == low == close``; skipped rows; and
  ``data.split_suspects``, the overnight moves of the series *as adjusted* that match a
  stock split ratio (:func:`~tradewarden.data.quality.find_unadjusted_splits`): the raw
  AlphaVantage AAPL series has one on 2014-06-09, which marks it ``"degraded"``.
- **Bad rows** raise :class:`~tradewarden.data.DataError` naming the file, the 1-based
  data row (header excluded; the row's position in the whole file) and the field,
  unless ``bad_rows="skip"``: then they are dropped and listed in the quality report.

Adjustment
----------
``adjustment`` chooses the price basis explicitly. Every choice keeps each bar's
dollar volume (``close * volume``) unchanged: prices divided by a factor, volume
multiplied by it.

``"none"``
    Prices as the file holds them. For the AlphaVantage panel these are the traded
    (unadjusted) prices, which jump at splits (AAPL closed at 645.57 on 2014-06-06 and
    93.70 on 2014-06-09, its 7:1 split). For Yahoo files they are Yahoo's OHLC, which
    Yahoo has **already split-adjusted** (the file carries no split events, so this
    cannot be undone); for SPY, which has never split, they equal the traded prices.
``"split"``
    Back-adjusted for splits only. For the AlphaVantage panel, bar ``t`` is divided by
    ``F_t``, the product of ``split_coefficient`` over the symbol's rows **after**
    ``t`` in the file (the cumulative product of future splits), so prices are on the
    share basis of the symbol's last row in the file; volume is multiplied by ``F_t``.
    For Yahoo files this equals ``"none"``.
``"split_dividend"``
    Scaled to the vendor's adjusted close: every OHLC price of bar ``t`` is multiplied
    by ``adj_close_t / close_t`` and volume divided by it, so the adjusted close equals
    the vendor's ``adj_close`` (set exactly, not recomputed) and open/high/low keep
    their proportions to it. The basis is the vendor's: AlphaVantage adjusted to its
    download date (2021-04-21), so a file cut before 2020-08-31 still reflects AAPL's
    later 4:1 split; Yahoo adjusted to its export date.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from tradewarden.data._columns import fold_columns
from tradewarden.data.calendars import SessionGaps, as_date, session_gaps
from tradewarden.data.errors import DataError
from tradewarden.data.quality import (
    MAX_SKIPPED_DETAILS,
    DataQuality,
    find_unadjusted_splits,
    validate_frame,
)
from tradewarden.domain.instrument import Instrument
from tradewarden.domain.values import BarSeries

__all__ = [
    "ADJUSTMENTS",
    "BUNDLED_EQUITY_FILES",
    "BUNDLED_EQUITY_TICKERS",
    "EQUITY_SPEC_SOURCE",
    "SPLIT_COLUMNS",
    "AdjClosePanel",
    "Adjustment",
    "DailyBars",
    "DailyQuality",
    "bundled_equity_names",
    "bundled_equity_path",
    "daily_file_columns",
    "equity_instrument",
    "load_adj_close_panel",
    "load_daily_file",
    "load_equity_panel",
    "load_spy_daily",
    "load_vix_daily",
    "load_yahoo_daily",
]

Adjustment = Literal["none", "split", "split_dividend"]
ADJUSTMENTS: tuple[str, ...] = ("none", "split", "split_dividend")
BadRows = Literal["raise", "skip"]
NonSession = Literal["keep", "drop"]

#: Short name -> file name of the real samples bundled with the package (see
#: ``bundled/PROVENANCE-equities.md`` for the exact cuts, sources and checksums).
BUNDLED_EQUITY_FILES: dict[str, str] = {
    "equities": "us_equities_daily_alphavantage_AAPL-JPM-MSFT-NVDA-XOM_2012-2015.csv.gz",
    "spy": "SPY_daily_yahoo_2008-2010.csv.gz",
    "adj_close": "adj_close_panel_yahoo_AAPL-AMZN-GOOG-META-SPY_2020-2022.csv.gz",
    "vix": "vix_daily_cboe_2004.csv.gz",
    "aapl_options": "aapl_option_chain_ivolatility_2014-08-07.csv.gz",
    "spx_puts": "spx_puts_ivolatility_2011-01-03_07.csv.gz",
}

#: Tradable tickers of the bundled daily samples -> the sample holding them: the
#: AlphaVantage panel (AAPL, JPM, MSFT, NVDA, XOM, 2012-2015) and SPY (Yahoo, 2008-2010).
#: VIX (an index) and the option chain are not bars to trade; ``adj_close`` has no OHLCV.
BUNDLED_EQUITY_TICKERS: dict[str, str] = {
    "AAPL": "equities", "JPM": "equities", "MSFT": "equities", "NVDA": "equities",
    "XOM": "equities", "SPY": "spy",
}

#: Accepted names (case-insensitive) of a daily file's split column, first match wins:
#: AlphaVantage's ``split_coefficient`` (1.0 on days without a split) and yfinance's
#: ``Stock Splits`` (0 on days without a split, read as 1.0). The value on a row is the
#: ratio effective that day: 7 for AAPL's 7:1 split of 2014-06-09, 0.1 for a 1:10
#: reverse split.
SPLIT_COLUMNS: tuple[str, ...] = ("split_coefficient", "stock splits", "stock_splits")
#: Accepted names of the vendor's split- and dividend-adjusted close.
_ADJ_CLOSE_COLUMNS: tuple[str, ...] = ("adj_close", "adj close", "adjusted_close",
                                       "adjusted close")
_TIME_COLUMNS: tuple[str, ...] = ("timestamp", "date", "datetime")
#: ``Instrument.source`` of :func:`equity_instrument` specs.
EQUITY_SPEC_SOURCE = "US equity: Reg NMS Rule 612 tick, whole shares"

_DAY = 86_400
_PRICE_FIELDS = ("open", "high", "low", "close")
_PANEL_COLUMNS = ("timestamp", "symbol", "open", "high", "low", "close", "adj_close", "volume",
                  "dividend", "split_coefficient")
_YAHOO_COLUMNS = ("timestamp", "symbol", "open", "high", "low", "close", "adj_close", "volume")
_ADJ_COLUMNS = ("timestamp", "symbol", "adj_close")
_VIX_COLUMNS = ("timestamp", "open", "high", "low", "close")
_DETAIL_ROW = re.compile(r"^row (\d+) ")


# ---------------------------------------------------------------------------------------
# bundled samples


def _bundled_dir() -> Path:
    return Path(os.fspath(resources.files("tradewarden.data").joinpath("bundled")))


def bundled_equity_names() -> list[str]:
    """Return the short names of the bundled equity, VIX and option samples, sorted."""
    return sorted(BUNDLED_EQUITY_FILES)


def bundled_equity_path(name: str) -> Path:
    """Return the path of a bundled equity, SPY, adjusted-close, VIX or option sample.

    Parameters
    ----------
    name : str
        A short name (``"equities"``, ``"spy"``, ``"adj_close"``, ``"vix"``,
        ``"aapl_options"``) or the file name itself.

    Returns
    -------
    pathlib.Path
        Location inside the installed package (found with :mod:`importlib.resources`).

    Raises
    ------
    DataError
        If no such sample is bundled (the message lists the names), or its file is
        missing from the installation.
    """
    file_name = BUNDLED_EQUITY_FILES.get(name)
    if file_name is None and name in BUNDLED_EQUITY_FILES.values():
        file_name = name
    where = f"bundled data ({_bundled_dir()})"
    if file_name is None:
        raise DataError(where, f"no bundled equity sample {name!r}; bundled: "
                               f"{', '.join(bundled_equity_names())}")
    path = _bundled_dir() / file_name
    if not path.is_file():
        raise DataError(where, f"bundled file {file_name} is missing from the installation")
    return path


def _resolve(path: str | os.PathLike[str] | None, name: str) -> tuple[Path, str]:
    """Path to read and the source label used in messages and reports."""
    if path is None:
        found = bundled_equity_path(name)
        return found, f"bundled:{found.name}"
    return Path(path), os.fspath(path)


# ---------------------------------------------------------------------------------------
# reading and row checks


def _read_table(path: Path, source: str, required: tuple[str, ...],
                dtype: Any = None, keep_default_na: bool = True) -> pd.DataFrame:
    """Read a CSV (optionally gzip) or Parquet file; index ``row`` = 1-based data row.

    Column names are matched case-insensitively and renamed to ``required``'s spelling;
    other columns are kept. A trailing blank line is ignored.

    Raises
    ------
    DataError
        File missing, unreadable, of an unsupported type, or lacking a required column
        (all missing ones are named).
    """
    if not path.exists():
        raise DataError(source, "file not found")
    if path.is_dir():
        raise DataError(source, "is a directory, expected a CSV or Parquet file")
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            raw = pd.read_parquet(path)
        elif name.endswith((".csv", ".csv.gz")):
            raw = pd.read_csv(path, skip_blank_lines=False, low_memory=False, dtype=dtype,
                              keep_default_na=keep_default_na)
            n = len(raw)        # trailing blank lines are an editor artefact, not rows
            while n and all(pd.isna(v) or (isinstance(v, str) and not v.strip())
                            for v in raw.iloc[n - 1]):
                n -= 1
            raw = raw.iloc[:n]
        else:
            raise DataError(source, "unsupported file type: expected .csv, .csv.gz or .parquet")
    except DataError:
        raise
    except Exception as exc:  # any reader failure means the file cannot be used
        raise DataError(source, f"cannot read file ({type(exc).__name__}: {exc})") from exc
    raw = raw.reset_index(drop=True)
    raw.index = pd.RangeIndex(1, len(raw) + 1, name="row")
    lower = fold_columns(raw.columns, source)
    missing = [c for c in required if c not in lower]
    if missing:
        raise DataError(source, f"missing required column(s): {', '.join(missing)} (columns "
                                f"found: {', '.join(str(c) for c in raw.columns) or 'none'})")
    return raw.rename(columns={lower[c]: c for c in required})


def _symbols(frame: pd.DataFrame, source: str) -> pd.Series:
    """The ``symbol`` column, stripped and upper-cased; a blank symbol is a DataError."""
    sym = frame["symbol"]
    blank = (sym.isna() | sym.astype("str").str.strip().eq("")).to_numpy(dtype=bool)
    if blank.any():
        raise DataError(source, "missing symbol", row=int(frame.index[np.flatnonzero(blank)[0]]),
                        field="symbol")
    return sym.astype("str").str.strip().str.upper()


@dataclass
class _RowCheck:
    """Rows failing one check (``mask``) and how to describe a failing position."""

    field: str
    mask: np.ndarray
    describe: Callable[[int], str]


def _first_bad(checks: list[_RowCheck], n: int) -> tuple[int, _RowCheck] | None:
    """Lowest failing position and the first check (in list order) it fails."""
    bad = np.zeros(n, dtype=bool)
    for chk in checks:
        bad |= chk.mask
    if not bad.any():
        return None
    i = int(np.flatnonzero(bad)[0])
    return i, next(chk for chk in checks if chk.mask[i])


def _cell(series: pd.Series, i: int) -> str:
    value = series.iloc[i]
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value.strip() if isinstance(value, str) else value)


def _number_checks(frame: pd.DataFrame, name: str, *, minimum: float | None = None,
                   strict: bool = False, allow_missing: bool = False
                   ) -> tuple[np.ndarray, list[_RowCheck]]:
    """Checks that column ``name`` holds finite numbers (``> minimum`` when ``strict``,
    else ``>= minimum``); NaN allowed only when ``allow_missing``. Returns float64 values
    (NaN where missing or not a number) and the checks, in reporting order."""
    raw = frame[name]
    missing = raw.isna().to_numpy(dtype=bool)
    if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        num = raw.to_numpy(dtype=np.float64, na_value=np.nan)
        nonnum = np.zeros_like(missing)
    else:
        num = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        if pd.api.types.is_bool_dtype(raw.dtype):
            num = np.full(len(raw), np.nan)
        nonnum = ~missing & np.isnan(num)
    inf = np.isinf(num)
    checks = []
    if not allow_missing:
        checks.append(_RowCheck(name, missing, lambda i: "missing or NaN value"))
    checks += [_RowCheck(name, nonnum, lambda i: f"not a number: {_cell(raw, i)}"),
               _RowCheck(name, inf, lambda i: f"non-finite value {float(num[i])!r}")]
    if minimum is not None:
        with np.errstate(invalid="ignore"):
            low = ~np.isnan(num) & ~inf & ((num <= minimum) if strict else (num < minimum))
        word = "above" if strict else "at least"
        checks.append(_RowCheck(name, low, lambda i: f"{float(num[i])!r} is not {word} "
                                                     f"{minimum:g}"))
    return num, checks


def _date_label_checks(frame: pd.DataFrame) -> tuple[np.ndarray, list[_RowCheck]]:
    """Parse ``timestamp`` (ISO 8601 text) to epoch seconds; flag rows that are not
    00:00:00 UTC date labels. Unparseable rows get ``-1`` and are left to
    :func:`validate_frame` to describe (it reports them with the same row)."""
    raw = frame["timestamp"]
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        parsed = pd.to_datetime(raw, utc=True)
    else:
        text = raw.astype("str").where(raw.notna())
        parsed = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    ok = parsed.notna().to_numpy(dtype=bool)
    ns = parsed.to_numpy(dtype="datetime64[ns]").view(np.int64)
    secs = np.where(ok, ns // 1_000_000_000, -1)
    off = ok & ((ns % (_DAY * 1_000_000_000)) != 0)
    unreadable = ~ok
    checks = [
        _RowCheck("timestamp", unreadable,
                  lambda i: (f"unparseable date {_cell(raw, i)}" if pd.notna(raw.iloc[i])
                             else "missing timestamp")),
        _RowCheck("timestamp", off, lambda i: f"{_cell(raw, i)} is not a daily date label "
                                              "(expected 00:00:00 UTC)"),
    ]
    return secs, checks


# ---------------------------------------------------------------------------------------
# reports and results


@dataclass(frozen=True)
class DailyQuality:
    """What validation found in one daily series (the symbol's rows in the file).

    Parameters
    ----------
    data : DataQuality
        :func:`~tradewarden.data.validate_frame`'s report, with ``gaps``,
        ``missing_bars`` and ``largest_gap_seconds`` measured against NYSE sessions:
        ``gaps`` = runs of missing sessions, ``missing_bars`` = missing sessions,
        ``largest_gap_seconds`` = ``sessions.largest_gap_days * 86400``;
        ``timeframe_seconds`` is 86400. ``rows_skipped``/``skipped_details`` count
        every dropped row, whichever check it failed.
    sessions : SessionGaps
        The kept rows' dates against the XNYS calendar, from the symbol's first to last
        row: missing sessions (holidays excluded) and rows on non-session days.
    skipped_dates : tuple of datetime.date
        Dates of the rows dropped with ``bad_rows="skip"`` (rows whose date could not be
        read are counted in ``data.rows_skipped`` only).
    flat_bars : tuple of datetime.date
        Kept rows with ``open == high == low == close`` (for VIX: the close-only years
        1990-1991 and 2004-06-11).
    non_session_rows_dropped : bool
        ``True`` when rows on non-session days were removed from the series
        (``non_session="drop"``); they are still listed in ``sessions``.
    notes : tuple of str
        Facts about how the file was read (e.g. VIX volume set to 0).
    """

    data: DataQuality
    sessions: SessionGaps
    skipped_dates: tuple[date, ...] = ()
    flat_bars: tuple[date, ...] = ()
    non_session_rows_dropped: bool = False
    notes: tuple[str, ...] = ()

    @property
    def missing_sessions(self) -> tuple[date, ...]:
        """NYSE sessions between the first and last row with no row."""
        return self.sessions.missing_sessions

    @property
    def non_session_days(self) -> tuple[date, ...]:
        """Dates of rows that fall on weekends, holidays or closures."""
        return self.sessions.non_session_days

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (dates as ISO text)."""
        return {
            "data": self.data.to_dict(), "sessions": self.sessions.to_dict(),
            "skipped_dates": [d.isoformat() for d in self.skipped_dates],
            "flat_bars": [d.isoformat() for d in self.flat_bars],
            "non_session_rows_dropped": self.non_session_rows_dropped,
            "notes": list(self.notes),
        }


@dataclass
class DailyBars:
    """One symbol's daily bars with the vendor's extra columns and a quality report.

    Parameters
    ----------
    series : BarSeries
        ``timeframe="1d"``; ``ts`` = session date at 00:00 UTC (epoch seconds);
        prices per the chosen ``adjustment``; ``source`` = file path as given, or
        ``bundled:<file name>``.
    quality : DailyQuality
    adjustment : {"none", "split", "split_dividend"}
        The price basis of ``series`` (see the module docstring).
    adj_close : numpy.ndarray of float64 or None
        The vendor's adjusted close for each bar, as in the file; ``None`` for VIX.
    dividend : numpy.ndarray of float64 or None
        Cash dividend per share with ex-date on the bar, dollars, as the vendor gave it
        (not adjusted); AlphaVantage panel only.
    split_coefficient : numpy.ndarray of float64 or None
        Split ratio effective on the bar (``7.000007`` on AAPL 2014-06-09, vendor
        rounding kept), 1.0 otherwise; AlphaVantage panel only.
    """

    series: BarSeries
    quality: DailyQuality
    adjustment: str
    adj_close: np.ndarray | None = None
    dividend: np.ndarray | None = None
    split_coefficient: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.series)

    @property
    def dates(self) -> pd.DatetimeIndex:
        """Session dates of the bars (tz-naive, 00:00), named ``"date"``."""
        return pd.DatetimeIndex(self.series.ts.astype("datetime64[s]").astype("datetime64[ns]"),
                                name="date")

    def to_frame(self) -> pd.DataFrame:
        """Return the bars (and any vendor columns) as a DataFrame indexed by date."""
        s = self.series
        cols: dict[str, np.ndarray] = {"open": s.open, "high": s.high, "low": s.low,
                                       "close": s.close, "volume": s.volume}
        for name in ("adj_close", "dividend", "split_coefficient"):
            value = getattr(self, name)
            if value is not None:
                cols[name] = value
        return pd.DataFrame(cols, index=self.dates)


@dataclass
class AdjClosePanel:
    """Adjusted closes of several symbols on one date index.

    Parameters
    ----------
    prices : pandas.DataFrame
        Wide: index = session dates (tz-naive ``DatetimeIndex`` named ``"date"``, the
        union of all symbols' dates), one float64 column per symbol in request order,
        NaN where a symbol has no row (before its listing, or a missing session).
    quality : dict of str to SessionGaps
        Per symbol, its rows against the XNYS calendar from its first to last row.
    source : str
        File path as given, or ``bundled:<file name>``.
    """

    prices: pd.DataFrame
    quality: dict[str, SessionGaps] = field(default_factory=dict)
    source: str = ""

    @property
    def symbols(self) -> list[str]:
        """Column order of :attr:`prices`."""
        return [str(c) for c in self.prices.columns]


# ---------------------------------------------------------------------------------------
# the shared daily pipeline


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"invalid {name} {value!r}: expected one of "
                         f"{', '.join(repr(a) for a in allowed)}")


def _bounds(start: object, end: object) -> tuple[int | None, int | None]:
    lo = None if start is None else _epoch_day(as_date(start, "start"))
    hi = None if end is None else _epoch_day(as_date(end, "end"))
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"start {start!r} is after end {end!r}")
    return lo, hi


def _epoch_day(d: date) -> int:
    return (d - date(1970, 1, 1)).days * _DAY


def _to_date(sec: int) -> date:
    return date.fromordinal(date(1970, 1, 1).toordinal() + int(sec) // _DAY)


@dataclass
class _Clean:
    """Validated rows of one symbol: ``validate_frame``'s frame plus extra columns."""

    frame: pd.DataFrame                 # ts, open, high, low, close, volume (+ extras)
    quality: DataQuality
    skipped_dates: tuple[date, ...]


def _validated(rows: pd.DataFrame, source: str, symbol: str,
               extra: Callable[[pd.DataFrame], tuple[dict[str, np.ndarray], list[_RowCheck]]],
               bad_rows: str) -> _Clean:
    """Validate one symbol's rows: date labels and extra columns here, OHLCV through
    :func:`validate_frame`. The lowest bad row is reported first (raise mode)."""
    secs, checks = _date_label_checks(rows)
    extra_values, extra_checks = extra(rows)
    checks += extra_checks
    n = len(rows)
    row_numbers = rows.index.to_numpy(dtype=np.int64)
    first = _first_bad(checks, n)

    if bad_rows == "raise":
        if first is not None:
            i, chk = first
            if i > 0:       # an earlier OHLCV or ordering problem is reported first
                validate_frame(rows.iloc[:i], source, _DAY, symbol=symbol)
            raise DataError(source, chk.describe(i), row=int(row_numbers[i]), field=chk.field)
        clean, quality = validate_frame(rows, source, _DAY, symbol=symbol)
        kept = np.ones(n, dtype=bool)
        extra_details: list[tuple[int, str]] = []
        skipped_dates: tuple[date, ...] = ()
    else:
        bad = np.zeros(n, dtype=bool)
        for chk in checks:
            bad |= chk.mask
        extra_details = []
        for i in np.flatnonzero(bad):
            chk = next(c for c in checks if c.mask[i])
            text = f"row {row_numbers[i]} field '{chk.field}': {chk.describe(int(i))}"
            extra_details.append((int(row_numbers[i]), text))
        clean, quality = validate_frame(rows[~bad], source, _DAY, skip_bad_rows=True,
                                        symbol=symbol)
        # Rows reaching validate_frame all have readable, unique (it raises on
        # duplicates), increasing timestamps, so its clean ts identify the kept rows.
        kept = ~bad & np.isin(secs, clean["ts"].to_numpy())
        if int(kept.sum()) != len(clean):     # pragma: no cover - guarded invariant
            raise DataError(source, f"internal error matching validated rows for {symbol}")
        dropped = ~kept
        skipped_dates = tuple(_to_date(s) for s in secs[dropped & (secs >= 0)])
        if extra_details:
            details = sorted(
                extra_details + [(int(m.group(1)), d) for d in quality.skipped_details
                                 if (m := _DETAIL_ROW.match(d))])
            quality = replace(quality, rows_skipped=quality.rows_skipped + len(extra_details),
                              skipped_details=[d for _, d in details[:MAX_SKIPPED_DETAILS]],
                              status="degraded")
    frame = clean.copy()
    for name, values in extra_values.items():
        frame[name] = values[kept]
    return _Clean(frame, quality, skipped_dates)


def _split_factor(coefficients: np.ndarray) -> np.ndarray:
    """``F[t] = prod(coefficients[t+1:])``: the cumulative product of future splits."""
    if coefficients.shape[0] == 0:
        return coefficients.copy()
    after = np.cumprod(coefficients[::-1])[::-1]       # prod(coefficients[t:])
    return np.append(after[1:], 1.0)


def _daily(clean: _Clean, source: str, symbol: str, *, adjustment: str, non_session: str,
           lo: int | None, hi: int | None, vendor_split: bool,
           notes: tuple[str, ...] = ()) -> DailyBars:
    """Quality on the file's rows, then non-session handling, adjustment and range."""
    f = clean.frame
    ts = f["ts"].to_numpy()
    gaps = session_gaps(ts)
    o, h, low, c = (f[k].to_numpy() for k in _PRICE_FIELDS)
    flat = (o == h) & (h == low) & (low == c)
    quality = DailyQuality(
        data=replace(clean.quality, gaps=gaps.gaps, missing_bars=len(gaps.missing_sessions),
                     largest_gap_seconds=gaps.largest_gap_days * _DAY, timeframe_seconds=_DAY),
        sessions=gaps, skipped_dates=clean.skipped_dates,
        flat_bars=tuple(_to_date(s) for s in ts[flat]),
        non_session_rows_dropped=non_session == "drop" and bool(gaps.non_session_days),
        notes=notes,
    )

    vol = f["volume"].to_numpy()
    if adjustment == "split" and vendor_split:
        factor = _split_factor(f["split_coefficient"].to_numpy())
        prices = {k: f[k].to_numpy() / factor for k in _PRICE_FIELDS}
        vol = vol * factor
    elif adjustment == "split_dividend":
        ratio = f["adj_close"].to_numpy() / c
        prices = {k: f[k].to_numpy() * ratio for k in ("open", "high", "low")}
        prices["close"] = f["adj_close"].to_numpy().copy()
        vol = vol / ratio
    else:
        prices = {k: f[k].to_numpy() for k in _PRICE_FIELDS}

    suspects = find_unadjusted_splits(ts, prices["open"], prices["close"])
    if suspects:
        coefficient = f["split_coefficient"].to_numpy() if "split_coefficient" in f else None
        lines = []
        for sus in suspects:
            line = sus.describe()
            if coefficient is not None:
                i = int(np.searchsorted(ts, sus.ts))
                if coefficient[i] != 1.0:
                    line += f" (the file's split_coefficient is {coefficient[i]:g} that day)"
            lines.append(line)
        quality = replace(quality, data=replace(quality.data, split_suspects=lines,
                                                status="degraded"))

    keep = np.ones(ts.shape[0], dtype=bool)
    if non_session == "drop" and gaps.non_session_days:
        keep &= ~np.isin(ts, [_epoch_day(d) for d in gaps.non_session_days])
    if lo is not None:
        keep &= ts >= lo
    if hi is not None:
        keep &= ts <= hi

    def owned(a: np.ndarray, dtype: type = np.float64) -> np.ndarray:
        return np.array(a[keep], dtype=dtype, copy=True, order="C")

    series = BarSeries(symbol, "1d", owned(ts, np.int64), owned(prices["open"]),
                       owned(prices["high"]), owned(prices["low"]), owned(prices["close"]),
                       owned(vol), source=source)
    extras = {name: owned(f[name].to_numpy()) if name in f.columns else None
              for name in ("adj_close", "dividend", "split_coefficient")}
    return DailyBars(series, quality, adjustment, **extras)


def _wanted(symbols: list[str] | str | None, held: list[str], source: str) -> list[str]:
    if symbols is None:
        return held
    if isinstance(symbols, str):
        symbols = [symbols]
    wanted = list(dict.fromkeys(s.strip().upper() for s in symbols))
    if not wanted:
        raise ValueError("no symbols requested: pass at least one symbol, or None for all")
    for sym in wanted:
        if sym not in held:
            raise DataError(source, f"no rows for symbol {sym!r}; symbols in file: "
                                    f"{', '.join(held) or 'none'}")
    return wanted


def _extra_numbers(spec: tuple[tuple[str, float, bool], ...]
                   ) -> Callable[[pd.DataFrame], tuple[dict[str, np.ndarray], list[_RowCheck]]]:
    """Extra-column checker for ``(column, minimum, strict)`` triples."""

    def run(rows: pd.DataFrame) -> tuple[dict[str, np.ndarray], list[_RowCheck]]:
        values: dict[str, np.ndarray] = {}
        checks: list[_RowCheck] = []
        for name, minimum, strict in spec:
            values[name], more = _number_checks(rows, name, minimum=minimum, strict=strict)
            checks += more
        return values, checks

    return run


# ---------------------------------------------------------------------------------------
# public loaders


def load_equity_panel(path: str | os.PathLike[str] | None = None,
                      symbols: list[str] | str | None = None, *,
                      adjustment: Adjustment = "none", start: object = None, end: object = None,
                      bad_rows: BadRows = "raise", non_session: NonSession = "keep"
                      ) -> dict[str, DailyBars]:
    """Load the AlphaVantage daily-adjusted panel (56 US large caps) into daily bars.

    Parameters
    ----------
    path : str or os.PathLike, optional
        ``None``: the bundled sample (AAPL, JPM, MSFT, NVDA, XOM, 2012-2015). Otherwise a
        file with columns ``timestamp, symbol, open, high, low, close, adj_close, volume,
        dividend, split_coefficient`` (e.g. ``us_equities_daily_alphavantage_1999-2021``),
        where OHLC are raw traded prices.
    symbols : list of str or str, optional
        Tickers to load (case-insensitive); ``None`` loads every symbol, in file order.
    adjustment : {"none", "split", "split_dividend"}, default "none"
        Price basis, see the module docstring: raw prices, split back-adjusted with
        ``split_coefficient``, or scaled by ``adj_close / close``.
    start, end : date or str, optional
        First and last date to return, both inclusive.
    bad_rows : {"raise", "skip"}, default "raise"
        Raise on the first bad row, or drop bad rows and list them in the report.
    non_session : {"keep", "drop"}, default "keep"
        Rows dated on NYSE non-session days are always reported; ``"drop"`` also removes
        them from the series.

    Returns
    -------
    dict of str to DailyBars
        Keyed by ticker in request order; ``adj_close``, ``dividend`` and
        ``split_coefficient`` are filled in.

    Raises
    ------
    DataError
        Missing/unreadable file, missing column, unknown symbol, bad row (unless skipped):
        timestamp not an ISO date at 00:00 UTC, bad OHLCV (see
        :func:`~tradewarden.data.validate_frame`), ``adj_close`` or ``split_coefficient``
        not a positive finite number, ``dividend`` negative or not finite; unsorted or
        duplicate dates for a symbol (always).
    ValueError
        Invalid ``adjustment``, ``bad_rows``, ``non_session``, ``start``/``end``.
    """
    _check_choice("adjustment", adjustment, ADJUSTMENTS)
    _check_choice("bad_rows", bad_rows, ("raise", "skip"))
    _check_choice("non_session", non_session, ("keep", "drop"))
    lo, hi = _bounds(start, end)
    file_path, source = _resolve(path, "equities")
    raw = _read_table(file_path, source, _PANEL_COLUMNS)
    sym = _symbols(raw, source)
    held = list(dict.fromkeys(sym.tolist()))
    extra = _extra_numbers((("adj_close", 0.0, True), ("dividend", 0.0, False),
                            ("split_coefficient", 0.0, True)))
    out: dict[str, DailyBars] = {}
    for symbol in _wanted(symbols, held, source):
        rows = raw[(sym == symbol).to_numpy()]
        clean = _validated(rows, source, symbol, extra, bad_rows)
        out[symbol] = _daily(clean, source, symbol, adjustment=adjustment,
                             non_session=non_session, lo=lo, hi=hi, vendor_split=True)
    return out


def load_yahoo_daily(path: str | os.PathLike[str], symbol: str | None = None, *,
                     adjustment: Adjustment = "none", start: object = None, end: object = None,
                     bad_rows: BadRows = "raise", non_session: NonSession = "keep"
                     ) -> DailyBars:
    """Load one symbol from a Yahoo Finance daily export.

    Parameters
    ----------
    path : str or os.PathLike
        Columns ``timestamp, symbol, open, high, low, close, adj_close, volume``. Yahoo's
        OHLC and volume are **split-adjusted**; ``adj_close`` is split- and
        dividend-adjusted.
    symbol : str, optional
        Required when the file holds several symbols.
    adjustment : {"none", "split", "split_dividend"}, default "none"
        ``"none"`` and ``"split"`` both return Yahoo's OHLC unchanged (already
        split-adjusted; the file has no split events, so raw prices cannot be recovered
        for a symbol that split). ``"split_dividend"`` scales OHLC by
        ``adj_close / close`` (close becomes ``adj_close``) and volume by its inverse.
    start, end, bad_rows, non_session
        As :func:`load_equity_panel`.

    Returns
    -------
    DailyBars
        With ``adj_close``; ``dividend``/``split_coefficient`` are ``None``.

    Raises
    ------
    DataError
        As :func:`load_equity_panel`; also a file with several symbols and no
        ``symbol`` given.
    ValueError
        Invalid choices or dates.
    """
    _check_choice("adjustment", adjustment, ADJUSTMENTS)
    _check_choice("bad_rows", bad_rows, ("raise", "skip"))
    _check_choice("non_session", non_session, ("keep", "drop"))
    lo, hi = _bounds(start, end)
    file_path, source = Path(path), os.fspath(path)
    return _yahoo(file_path, source, symbol, adjustment, lo, hi, bad_rows, non_session)


def _yahoo(file_path: Path, source: str, symbol: str | None, adjustment: str, lo: int | None,
           hi: int | None, bad_rows: str, non_session: str) -> DailyBars:
    raw = _read_table(file_path, source, _YAHOO_COLUMNS)
    sym = _symbols(raw, source)
    held = list(dict.fromkeys(sym.tolist()))
    if symbol is None:
        if len(held) != 1:
            raise DataError(source, f"file holds {len(held)} symbols ({', '.join(held)}): "
                                    "pass one symbol")
        symbol = held[0]
    (symbol,) = _wanted([symbol], held, source)
    rows = raw[(sym == symbol).to_numpy()]
    clean = _validated(rows, source, symbol, _extra_numbers((("adj_close", 0.0, True),)),
                       bad_rows)
    note = ("Yahoo OHLC and volume are split-adjusted by Yahoo; adjustment 'none' and "
            "'split' return them unchanged")
    return _daily(clean, source, symbol, adjustment=adjustment, non_session=non_session,
                  lo=lo, hi=hi, vendor_split=False, notes=(note,))


def load_spy_daily(path: str | os.PathLike[str] | None = None, *,
                   adjustment: Adjustment = "none", start: object = None, end: object = None,
                   bad_rows: BadRows = "raise", non_session: NonSession = "keep"
                   ) -> DailyBars:
    """Load SPY daily bars (Yahoo Finance export), by default the bundled 2008-2010 sample.

    SPY has never split, so Yahoo's split-adjusted OHLC (``adjustment="none"`` or
    ``"split"``) are the traded prices; ``"split_dividend"`` gives the
    dividend-adjusted series whose close is Yahoo's ``adj_close``. See
    :func:`load_yahoo_daily` for the parameters and errors.
    """
    _check_choice("adjustment", adjustment, ADJUSTMENTS)
    _check_choice("bad_rows", bad_rows, ("raise", "skip"))
    _check_choice("non_session", non_session, ("keep", "drop"))
    lo, hi = _bounds(start, end)
    file_path, source = _resolve(path, "spy")
    return _yahoo(file_path, source, "SPY", adjustment, lo, hi, bad_rows, non_session)


def load_adj_close_panel(path: str | os.PathLike[str] | None = None,
                         symbols: list[str] | str | None = None, *, start: object = None,
                         end: object = None) -> AdjClosePanel:
    """Load a long-format panel of adjusted closes into a wide DataFrame.

    The file holds adjusted closes only (no open/high/low/volume), so the result is a
    price panel, not bars: use it for returns, universes and portfolio tests.

    Parameters
    ----------
    path : str or os.PathLike, optional
        ``None``: the bundled sample (AAPL, AMZN, GOOG, META, SPY, 2020-2022). Otherwise a
        file with columns ``timestamp, symbol, adj_close`` (Yahoo adjusted closes:
        continuous across splits and dividends, on Yahoo's export basis).
    symbols : list of str or str, optional
        Tickers (case-insensitive); ``None`` for all, in file order.
    start, end : date or str, optional
        Dates to keep, both inclusive (quality is measured on all of a symbol's rows).

    Returns
    -------
    AdjClosePanel

    Raises
    ------
    DataError
        Missing/unreadable file or column, unknown symbol, a row whose timestamp is not
        an ISO date at 00:00 UTC, whose ``adj_close`` is missing, not a number,
        infinite or not positive (field ``'adj_close'``), or unsorted/duplicate dates
        for a symbol.
    ValueError
        Invalid ``start``/``end``.
    """
    lo, hi = _bounds(start, end)
    file_path, source = _resolve(path, "adj_close")
    raw = _read_table(file_path, source, _ADJ_COLUMNS)
    sym = _symbols(raw, source)
    held = list(dict.fromkeys(sym.tolist()))
    columns: dict[str, pd.Series] = {}
    quality: dict[str, SessionGaps] = {}
    for symbol in _wanted(symbols, held, source):
        rows = raw[(sym == symbol).to_numpy()]
        adj, checks = _number_checks(rows, "adj_close", minimum=0.0, strict=True)
        # validate_frame checks dates and ordering; adj_close stands in for OHLC (its
        # own problems were named above under 'adj_close').
        shaped = pd.DataFrame({"timestamp": rows["timestamp"], "open": adj, "high": adj,
                               "low": adj, "close": adj, "volume": 0.0}, index=rows.index)
        clean = _validated(shaped, source, symbol, lambda _r, c=checks: ({}, c), "raise")
        ts = clean.frame["ts"].to_numpy()
        quality[symbol] = session_gaps(ts)
        keep = np.ones(ts.shape[0], dtype=bool)
        if lo is not None:
            keep &= ts >= lo
        if hi is not None:
            keep &= ts <= hi
        index = pd.DatetimeIndex(ts[keep].astype("datetime64[s]").astype("datetime64[ns]"))
        columns[symbol] = pd.Series(clean.frame["close"].to_numpy()[keep], index=index)
    prices = pd.DataFrame(columns)
    prices = prices.sort_index()
    prices.index.name = "date"
    return AdjClosePanel(prices.astype(np.float64), quality, source)


def load_vix_daily(path: str | os.PathLike[str] | None = None, *, start: object = None,
                   end: object = None, bad_rows: BadRows = "skip",
                   non_session: NonSession = "keep") -> DailyBars:
    """Load the CBOE VIX index daily OHLC, by default the bundled 2004 sample.

    VIX is an index: it has no volume. A missing ``volume`` column, or NaN volumes,
    become 0.0 (so ``quality.data.zero_volume_bars`` counts every such bar); a note
    in the report says so. ``adjustment`` does not apply.

    The CBOE file has known oddities, all reported in :class:`DailyQuality`:

    - rows where ``open == high == low == close`` (``flat_bars``): 1990-1991, where CBOE
      gives only a close, and 2004-06-11;
    - 33 rows on NYSE non-session days (``sessions.non_session_days``; e.g. 2004-06-11,
      the NYSE closure for President Reagan's funeral, and US holidays since 2022), kept
      unless ``non_session="drop"``;
    - 47 rows (1992-2006) whose open lies outside ``[low, high]`` (e.g. 2004-11-08, open
      2.58 with low 13.68). They fail the OHLC consistency check, so by default
      (``bad_rows="skip"``) they are dropped and listed in ``skipped_dates`` and
      ``data.skipped_details``; the sessions they leave empty show as missing.

    Parameters
    ----------
    path : str or os.PathLike, optional
        Columns ``timestamp, open, high, low, close`` (``symbol`` and ``volume``
        optional).
    start, end : date or str, optional
        Dates to return, both inclusive.
    bad_rows : {"raise", "skip"}, default "skip"
    non_session : {"keep", "drop"}, default "keep"

    Returns
    -------
    DailyBars
        Symbol ``"VIX"`` (or the file's symbol); ``adjustment`` is ``"none"``.

    Raises
    ------
    DataError
        Missing/unreadable file or column, several symbols in the file, a bad row with
        ``bad_rows="raise"``, unsorted or duplicate dates.
    ValueError
        Invalid choices or dates.
    """
    _check_choice("bad_rows", bad_rows, ("raise", "skip"))
    _check_choice("non_session", non_session, ("keep", "drop"))
    lo, hi = _bounds(start, end)
    file_path, source = _resolve(path, "vix")
    raw = _read_table(file_path, source, _VIX_COLUMNS)
    symbol = "VIX"
    if "symbol" in raw.columns:
        held = list(dict.fromkeys(_symbols(raw, source).tolist()))
        if len(held) != 1:
            raise DataError(source, f"expected one symbol, found {len(held)}: {', '.join(held)}")
        symbol = held[0]
    notes: list[str] = []
    if "volume" not in raw.columns:
        raw = raw.assign(volume=0.0)
        notes.append("no volume column (VIX is an index): volume set to 0.0")
    else:
        nan_volume = int(raw["volume"].isna().sum())
        if nan_volume:
            raw = raw.assign(volume=raw["volume"].where(raw["volume"].notna(), 0.0))
            notes.append(f"{nan_volume} missing volume value(s) set to 0.0 (VIX is an index)")
    clean = _validated(raw, source, symbol, lambda _r: ({}, []), bad_rows)
    return _daily(clean, source, symbol, adjustment="none", non_session=non_session,
                  lo=lo, hi=hi, vendor_split=False, notes=tuple(notes))


# ---------------------------------------------------------------------------------------
# equities for replay: instrument spec, user daily files with a split column


def equity_instrument(symbol: str, min_price: float | None = None) -> Instrument:
    """Return the instrument spec of a US-listed stock or ETF: USD, cents, whole shares.

    Parameters
    ----------
    symbol : str
        The ticker (``AAPL``); base and symbol are the ticker, quote ``USD``.
    min_price : float, optional
        The lowest price in the data, USD per share. Below 1.00 the price increment is
        0.0001 (a split-adjusted history can go that low), else 0.01.

    Returns
    -------
    Instrument
        ``price_increment`` 0.01 USD (0.0001 when ``min_price < 1``): SEC Regulation
        NMS Rule 612 (the sub-penny rule) forbids quotes in smaller increments than
        0.01 USD at or above 1.00 USD and 0.0001 below it. ``quantity_increment`` and
        ``min_quantity`` one share (whole shares, as most brokers route orders; IBKR's
        fractional shares are not modelled). ``min_notional`` 0.01 USD (no venue
        minimum besides one share), no maximum.

    Raises
    ------
    ValueError
        If ``symbol`` is empty.
    """
    ticker = symbol.strip().upper()
    if not ticker:
        raise ValueError("invalid symbol '': expected a ticker such as 'AAPL'")
    tick = Decimal("0.0001") if min_price is not None and min_price < 1 else Decimal("0.01")
    return Instrument(ticker, ticker, "USD", tick, Decimal(1), Decimal("0.01"), None,
                      Decimal(1), source=EQUITY_SPEC_SOURCE)


def _first_of(lower: dict[str, object], names: tuple[str, ...]) -> object | None:
    return next((lower[n] for n in names if n in lower), None)


def _header(path: Path, source: str) -> list[str]:
    """Column names of a CSV (optionally gzip) or Parquet file, from its header alone."""
    import csv
    import gzip

    if not path.exists():
        raise DataError(source, "file not found")
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            import pyarrow.parquet as pq
            return list(pq.read_schema(path).names)
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "rt", newline="", encoding="utf-8-sig") as fh:
            return next(csv.reader(fh), [])
    except Exception as exc:  # any reader failure means the file cannot be used
        raise DataError(source, f"cannot read file ({type(exc).__name__}: {exc})") from exc


def daily_file_columns(path: str | os.PathLike[str]) -> dict[str, str]:
    """Find the split and adjusted-close columns of a daily OHLCV file from its header.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.csv``, ``.csv.gz`` or ``.parquet`` file (only the header is read).

    Returns
    -------
    dict of str to str
        ``"split"`` -> the split column's name as written (one of
        :data:`SPLIT_COLUMNS`, case-insensitive) and ``"adj_close"`` -> the adjusted
        close's (``adj_close``, ``Adj Close``, ``adjusted_close``), each only when
        present.

    Raises
    ------
    DataError
        If the file is missing or its header cannot be read.
    """
    source = os.fspath(path)
    lower = {str(c).strip().lower(): str(c) for c in _header(Path(path), source)}
    found: dict[str, str] = {}
    for key, names in (("split", SPLIT_COLUMNS), ("adj_close", _ADJ_CLOSE_COLUMNS)):
        hit = _first_of(lower, names)  # type: ignore[arg-type]
        if hit is not None:
            found[key] = str(hit)
    return found


def load_daily_file(path: str | os.PathLike[str], symbols: list[str] | str | None = None, *,
                    adjustment: Adjustment = "none", start: object = None, end: object = None,
                    bad_rows: BadRows = "raise", non_session: NonSession = "keep"
                    ) -> dict[str, DailyBars]:
    """Load a user's daily equity file whose prices are raw, with a split column.

    The file is a daily OHLCV table (``timestamp``/``date``/``datetime``, ``open``,
    ``high``, ``low``, ``close``, ``volume``, optionally ``symbol``) with a split
    column (:data:`SPLIT_COLUMNS`: AlphaVantage's ``split_coefficient``, 1.0 on days
    without a split, or yfinance's ``Stock Splits``, 0 on such days) and optionally an
    adjusted close (``adj_close``, ``Adj Close``, ``adjusted_close``) and ``dividend``.
    It is adjusted exactly like :func:`load_equity_panel`: a copy of the bundled panel
    gives the same bars.

    Parameters
    ----------
    path : str or os.PathLike
        ``.csv``, ``.csv.gz`` or ``.parquet``; read whole (daily files are small).
    symbols : list of str or str, optional
        Tickers to load; ``None`` for every symbol of the ``symbol`` column. A file
        without a ``symbol`` column holds one symbol: the one requested, else the file
        name's stem (``AAPL`` for ``AAPL.csv``).
    adjustment : {"none", "split", "split_dividend"}, default "none"
        As :func:`load_equity_panel`; ``"split_dividend"`` needs the adjusted close.
    start, end, bad_rows, non_session
        As :func:`load_equity_panel` (dates, both inclusive).

    Returns
    -------
    dict of str to DailyBars
        Keyed by ticker, in request (or file) order; ``split_coefficient`` holds the
        split column (yfinance's 0 read as 1.0).

    Raises
    ------
    DataError
        Missing/unreadable file; a missing OHLCV column; no split column, or
        ``"split_dividend"`` without an adjusted close (the message lists the columns
        found); a timestamp that is not a date (00:00 UTC); a bad price, volume or
        split value (file, row, field); unsorted or duplicate dates; an unknown symbol.
    ValueError
        Invalid ``adjustment``, ``bad_rows``, ``non_session``, ``start``/``end``, or
        several symbols requested from a file without a ``symbol`` column.
    """
    _check_choice("adjustment", adjustment, ADJUSTMENTS)
    _check_choice("bad_rows", bad_rows, ("raise", "skip"))
    _check_choice("non_session", non_session, ("keep", "drop"))
    lo, hi = _bounds(start, end)
    file_path, source = Path(path), os.fspath(path)
    raw = _read_table(file_path, source, ())
    lower = fold_columns(raw.columns, source)
    found = ", ".join(str(c) for c in raw.columns) or "none"
    time_col = _first_of(lower, _TIME_COLUMNS)
    missing = ([] if time_col is not None else ["timestamp (or date/datetime)"]) + \
        [c for c in ("open", "high", "low", "close", "volume") if c not in lower]
    if missing:
        raise DataError(source, f"missing required column(s): {', '.join(missing)} "
                                f"(columns found: {found})")
    split_col = _first_of(lower, SPLIT_COLUMNS)
    if split_col is None:
        raise DataError(source, f"no split column ({', '.join(SPLIT_COLUMNS)}) to adjust with "
                                f"(columns found: {found})")
    adj_col = _first_of(lower, _ADJ_CLOSE_COLUMNS)
    if adjustment == "split_dividend" and adj_col is None:
        raise DataError(source, "adjustment 'split_dividend' needs an adjusted close column "
                                f"({', '.join(_ADJ_CLOSE_COLUMNS)}) (columns found: {found})")
    renames: dict[object, str] = {time_col: "timestamp", split_col: "split_coefficient"}
    renames.update({lower[c]: c for c in ("open", "high", "low", "close", "volume")})
    if adj_col is not None:
        renames[adj_col] = "adj_close"
    if "symbol" in lower:
        renames[lower["symbol"]] = "symbol"
    frame = raw[list(renames)].rename(columns=renames)
    if str(split_col).strip().lower() != "split_coefficient":      # yfinance: 0 = no split
        value = pd.to_numeric(frame["split_coefficient"], errors="coerce")
        frame["split_coefficient"] = frame["split_coefficient"].where(value != 0, 1.0)

    extras = [("split_coefficient", 0.0, True)] + ([("adj_close", 0.0, True)]
                                                   if adj_col is not None else [])
    check = _extra_numbers(tuple(extras))
    out: dict[str, DailyBars] = {}
    if "symbol" in frame.columns:
        sym = _symbols(frame, source)
        held = list(dict.fromkeys(sym.tolist()))
        for symbol in _wanted(symbols, held, source):
            rows = frame[(sym == symbol).to_numpy()]
            clean = _validated(rows, source, symbol, check, bad_rows)
            out[symbol] = _daily(clean, source, symbol, adjustment=adjustment,
                                 non_session=non_session, lo=lo, hi=hi, vendor_split=True)
        return out
    wanted = [symbols] if isinstance(symbols, str) else list(symbols or [])
    if len(wanted) > 1:
        raise ValueError(f"{source} has no 'symbol' column, so it holds one symbol's bars; "
                         f"{len(wanted)} symbols requested ({', '.join(wanted)})")
    symbol = wanted[0].strip().upper() if wanted else file_path.name.split(".")[0].upper()
    clean = _validated(frame, source, symbol, check, bad_rows)
    out[symbol] = _daily(clean, source, symbol, adjustment=adjustment, non_session=non_session,
                         lo=lo, hi=hi, vendor_split=True)
    return out
