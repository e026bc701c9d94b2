"""Loading OHLCV bars from the bundled samples, CSV/Parquet files or a directory of files.

:func:`load_market_data` is the one entry point the engine and CLI use: it finds the
file for each symbol, reads and validates it, resamples to the requested timeframe,
applies the date range and attaches an :class:`~tradewarden.domain.Instrument`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from tradewarden.data._columns import canonical_symbol, normalize_columns
from tradewarden.data.errors import DataError
from tradewarden.data.quality import (
    DataQuality,
    infer_timeframe_seconds,
    validate_frame,
)
from tradewarden.data.resample import resample, timeframe_label, timeframe_seconds
from tradewarden.domain.instrument import Instrument, infer_instrument, known_instrument
from tradewarden.domain.values import BarSeries, iso

__all__ = ["LoadedData", "bundled_path", "bundled_symbols", "load_market_data",
           "read_ohlcv_file"]

_BUNDLED_PACKAGE = "tradewarden.data"
_BUNDLED_DIR = "bundled"
_BUNDLED_NAME = re.compile(
    r"^coinbase_spot_(?P<symbol>[A-Z0-9.]+-[A-Z0-9.]+)_(?P<tf>\w+)\.csv\.gz$")
_CSV_SUFFIXES = (".csv", ".csv.gz")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_ALNUM = "A-Za-z0-9"


@dataclass
class LoadedData:
    """Bars, quality reports and instrument specs for the requested symbols.

    Parameters
    ----------
    series : dict of str to BarSeries
        Canonical symbol -> bars in the requested timeframe and date range.
    quality : dict of str to DataQuality
        Canonical symbol -> report on the **source file's** rows (before resampling
        and before the date range is applied).
    instruments : dict of str to Instrument
        Canonical symbol -> static venue spec, or one inferred from the prices.
    warnings : list of str
        One line each: inferred instrument specs, skipped rows.
    """

    series: dict[str, BarSeries] = field(default_factory=dict)
    quality: dict[str, DataQuality] = field(default_factory=dict)
    instruments: dict[str, Instrument] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------
# bundled samples


def _bundled_dir() -> Path:
    return Path(os.fspath(resources.files(_BUNDLED_PACKAGE).joinpath(_BUNDLED_DIR)))


def _bundled_index() -> dict[tuple[str, str], Path]:
    index: dict[tuple[str, str], Path] = {}
    for entry in sorted(_bundled_dir().iterdir()):
        match = _BUNDLED_NAME.match(entry.name)
        if match and entry.is_file():
            index[(match["symbol"], match["tf"])] = entry
    return index


def bundled_symbols() -> list[str]:
    """Return the symbols shipped with the package, sorted.

    Returns
    -------
    list of str
        ``["BTC-USD", "ETH-USD", "SOL-USD"]`` for this release.
    """
    return sorted({symbol for symbol, _ in _bundled_index()})


def bundled_path(symbol: str, timeframe: str = "1h") -> Path:
    """Return the path of a bundled sample file.

    Parameters
    ----------
    symbol : str
        Symbol in any accepted spelling (``BTC-USD``, ``btc_usd``).
    timeframe : str, default "1h"
        Bar length of the file (the bundled samples are 1h bars).

    Returns
    -------
    pathlib.Path
        Location inside the installed package (found with :mod:`importlib.resources`).

    Raises
    ------
    DataError
        If there is no bundled file for that symbol and timeframe; the message lists
        what is bundled.
    ValueError
        If ``timeframe`` is not a valid label.
    """
    label = timeframe_label(timeframe_seconds(timeframe))
    canonical = canonical_symbol(symbol)
    index = _bundled_index()
    if (canonical, label) in index:
        return index[(canonical, label)]
    available = ", ".join(f"{s} ({tf})" for s, tf in sorted(index)) or "none"
    raise DataError(f"bundled data ({_bundled_dir()})",
                    f"no bundled {label} file for symbol {canonical!r}; bundled: {available}")


def _bundled_source(path: Path) -> str:
    """Stable, machine-independent label for a bundled file (used in reports and the ledger)."""
    return f"bundled:{path.name}"


# ---------------------------------------------------------------------------------------
# reading one file


def read_ohlcv_file(path: str | os.PathLike[str], symbol: str | None = None) -> pd.DataFrame:
    """Read a CSV (optionally gzip-compressed) or Parquet file of OHLCV bars.

    Nothing is parsed or validated beyond the column names: pass the result to
    :func:`~tradewarden.data.validate_frame`.

    Parameters
    ----------
    path : str or os.PathLike
        ``.csv``, ``.csv.gz`` or ``.parquet``/``.pq``.
        Column names are matched case-insensitively; the time column may be called
        ``timestamp``, ``datetime``, ``date`` or ``time`` and may hold ISO 8601 text
        (with or without ``Z``/offset; text without an offset is UTC) or epoch
        seconds or milliseconds (told apart by magnitude during validation).
    symbol : str, optional
        When the file has a ``symbol`` column, keep only this symbol's rows (matched
        in canonical form: ``btc_usd`` matches ``BTC-USD``). Ignored when the file
        has no ``symbol`` column (the whole file is taken to be this symbol's).

    Returns
    -------
    pandas.DataFrame
        Columns ``timestamp, open, high, low, close, volume`` as read (not yet
        typed), plus ``symbol`` (canonical spelling) when the file has one. The index,
        named ``"row"``, holds each row's 1-based data row number in the file (header
        excluded), so messages point at the right line even after filtering. CSV
        blank lines count as rows (and fail validation) except at the end of the file.

    Raises
    ------
    DataError
        If the file does not exist, has an unsupported extension, cannot be read
        (corrupt, truncated, not CSV/Parquet), lacks required columns (all missing
        ones are named), has a row with an empty ``symbol``, or has no rows for the
        requested ``symbol`` (the message lists the symbols it does hold).
    """
    source = os.fspath(path)
    return _read_ohlcv(Path(path), symbol, source)


def _read_ohlcv(path: Path, symbol: str | None, source: str) -> pd.DataFrame:
    if not path.exists():
        raise DataError(source, "file not found")
    if path.is_dir():
        raise DataError(source, "is a directory, expected a CSV or Parquet file")
    name = path.name.lower()
    try:
        if name.endswith(_PARQUET_SUFFIXES):
            raw = pd.read_parquet(path)
        elif name.endswith(_CSV_SUFFIXES):
            raw = pd.read_csv(path, skip_blank_lines=False, low_memory=False)
            # A trailing blank line is an editor artefact, not a bad row.
            empty = raw.isna().all(axis=1).to_numpy()
            if empty.shape[0] and empty[-1]:
                last_real = np.flatnonzero(~empty)
                raw = raw.iloc[: (int(last_real[-1]) + 1 if last_real.shape[0] else 0)]
        else:
            raise DataError(source, "unsupported file type: expected .csv, .csv.gz or .parquet")
    except DataError:
        raise
    except Exception as exc:  # any reader failure means the file cannot be used
        raise DataError(source, f"cannot read file ({type(exc).__name__}: {exc})") from exc

    if not isinstance(raw.index, pd.RangeIndex):
        raw = raw.reset_index()        # e.g. Parquet written with the timestamp as its index
    raw = raw.reset_index(drop=True)
    raw.index = pd.RangeIndex(1, len(raw) + 1, name="row")
    frame = normalize_columns(raw, source)
    if "symbol" not in frame.columns:
        return frame

    sym = frame["symbol"]
    blank = sym.isna() | sym.astype("str").str.strip().eq("")
    if blank.any():
        row = int(frame.index[np.flatnonzero(blank.to_numpy(dtype=bool))[0]])
        raise DataError(source, "missing symbol", row=row, field="symbol")
    frame["symbol"] = (sym.astype("str").str.strip().str.upper()
                       .str.replace("_", "-", regex=False).str.replace("/", "-", regex=False))
    if symbol is None:
        return frame
    wanted = canonical_symbol(symbol)
    selected = frame[frame["symbol"] == wanted]
    if selected.empty:
        held = list(dict.fromkeys(frame["symbol"].tolist()))
        raise DataError(source, f"no rows for symbol {wanted!r}; symbols in file: {_listing(held)}")
    return selected


# ---------------------------------------------------------------------------------------
# finding files


def _listing(names: list[str], limit: int = 30) -> str:
    shown = ", ".join(names[:limit])
    return (shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")) or "none"


def _symbol_pattern(symbol: str) -> re.Pattern[str]:
    parts = [re.escape(p) for p in re.split(r"[-_/]", symbol) if p]
    body = "[-_]".join(parts)
    return re.compile(rf"(?<![{_ALNUM}]){body}(?![{_ALNUM}])", re.IGNORECASE)


def _find_in_directory(directory: Path, symbol: str, timeframe: str) -> Path:
    """Pick the one data file in ``directory`` whose name holds ``symbol``."""
    pattern = _symbol_pattern(symbol)
    candidates = [
        entry for entry in sorted(directory.iterdir())
        if entry.is_file() and not entry.name.startswith(".")
        and entry.name.lower().endswith(_CSV_SUFFIXES + _PARQUET_SUFFIXES)
        and pattern.search(entry.name)
    ]
    base, _, quote = symbol.partition("-")
    looked_for = (f"a .csv, .csv.gz or .parquet file whose name contains {base}-{quote} or "
                  f"{base}_{quote}" if quote else
                  f"a .csv, .csv.gz or .parquet file whose name contains {base}")
    if not candidates:
        raise DataError(directory, f"no data file for {symbol}: looked for {looked_for}")
    if len(candidates) == 1:
        return candidates[0]
    # Tie-break: one candidate names the requested timeframe as a token (BTC-USD_1h.csv).
    tf_token = re.compile(rf"(?<![{_ALNUM}]){re.escape(timeframe)}(?![{_ALNUM}])")
    named = [c for c in candidates if tf_token.search(c.name)]
    if len(named) == 1:
        return named[0]
    raise DataError(directory, f"ambiguous data files for {symbol} ({looked_for}): "
                               f"{', '.join(c.name for c in candidates)}; pass one file as the "
                               "data path or remove the others")


# ---------------------------------------------------------------------------------------
# loading


def parse_bound(value: str | datetime | None, flag: str) -> int | None:
    """Parse a ``--start``/``--end`` value (UTC date or datetime) to epoch seconds.

    Raises
    ------
    ValueError
        Naming the flag and the value when it does not parse.
    """
    return _parse_bound(value, flag)


def _parse_bound(value: str | datetime | None, flag: str) -> int | None:
    """Parse a ``start``/``end`` bound to UTC epoch seconds (naive values are UTC)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(value.strip())   # 3.11+: dates, "Z", offsets
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"invalid {flag} {value!r}: expected an ISO 8601 UTC date or "
                             "datetime, e.g. 2024-05-01 or 2024-05-01T12:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp())


def _series_from(clean: pd.DataFrame, symbol: str, label: str, source: str) -> BarSeries:
    def owned(name: str, dtype: type) -> np.ndarray:
        return np.array(clean[name].to_numpy(), dtype=dtype, copy=True, order="C")

    return BarSeries(symbol, label, owned("ts", np.int64), owned("open", np.float64),
                     owned("high", np.float64), owned("low", np.float64),
                     owned("close", np.float64), owned("volume", np.float64), source=source)


def _load_one(symbol: str, frame: pd.DataFrame, source: str, target_seconds: int,
              start: int | None, end: int | None, skip_bad_rows: bool,
              out: LoadedData) -> None:
    clean, quality = validate_frame(frame, source, None, skip_bad_rows, symbol=symbol)
    if quality.rows == 0:
        skipped = f" ({quality.rows_skipped} skipped)" if quality.rows_skipped else ""
        raise DataError(source, f"no usable rows for {symbol}{skipped}")
    source_seconds = infer_timeframe_seconds(clean["ts"].to_numpy())
    if source_seconds is None:
        raise DataError(source, f"only one bar for {symbol}: cannot infer the bar length")
    source_label = timeframe_label(source_seconds)
    target_label = timeframe_label(target_seconds)
    if target_seconds < source_seconds:
        raise DataError(source, f"requested timeframe {target_label} is finer than the data's "
                                f"{source_label} bars for {symbol}; ask for {source_label} or "
                                "a multiple of it")
    if target_seconds % source_seconds:
        raise DataError(source, f"requested timeframe {target_label} is not a whole multiple of "
                                f"the data's {source_label} bars for {symbol}")

    series = _series_from(clean, symbol, source_label, source)
    if target_seconds != source_seconds:
        try:
            series = resample(series, target_label)
        except ValueError as exc:
            raise DataError(source, str(exc)) from None

    if start is not None or end is not None:
        lo = 0 if start is None else int(np.searchsorted(series.ts, start, side="left"))
        hi = len(series) if end is None else int(np.searchsorted(series.ts, end, side="left"))
        series = BarSeries(series.symbol, series.timeframe,
                           *(np.array(getattr(series, k)[lo:max(lo, hi)], copy=True)
                             for k in ("ts", "open", "high", "low", "close", "volume")),
                           source=series.source)
    if len(series) == 0 and start is None and end is None:
        raise DataError(source, f"no complete {target_label} bars for {symbol}: the data covers "
                                f"only {iso(quality.first_ts)} to {iso(quality.last_ts)}")
    if len(series) == 0:
        lo_text = "the beginning" if start is None else iso(start)
        hi_text = "the end" if end is None else iso(end)
        raise DataError(source, f"no {target_label} bars for {symbol} from {lo_text} (inclusive) "
                                f"to {hi_text} (exclusive); the data covers "
                                f"{iso(quality.first_ts)} to {iso(quality.last_ts)}")

    instrument = known_instrument(symbol)
    if instrument is None:
        sample = np.concatenate([clean[k].to_numpy()[:1250]
                                 for k in ("open", "high", "low", "close")])
        instrument = infer_instrument(symbol, sample.tolist())
        out.warnings.append(
            f"{symbol}: no known instrument spec; inferred price increment "
            f"{instrument.price_increment:f} and quantity increment "
            f"{instrument.quantity_increment:f} "
            f"from {source}; check them against the venue before trading")
    if quality.rows_skipped:
        out.warnings.append(f"{symbol}: skipped {quality.rows_skipped} bad row(s) in {source}, "
                            f"data degraded; first: {quality.skipped_details[0]}")

    out.series[symbol] = series
    out.quality[symbol] = quality
    out.instruments[symbol] = instrument


def load_market_data(symbols: list[str] | None = None, data_path: Path | str | None = None,
                     timeframe: str = "1h", start: str | None = None, end: str | None = None,
                     skip_bad_rows: bool = False) -> LoadedData:
    """Load, validate and shape OHLCV bars for a set of symbols.

    Parameters
    ----------
    symbols : list of str, optional
        Symbols to load, in any accepted spelling (``btc_usd``); results are keyed by
        the canonical ``BASE-QUOTE`` form, in request order, duplicates removed.
        ``None`` means every bundled symbol (BTC-USD, ETH-USD, SOL-USD), except when
        ``data_path`` is a file with a ``symbol`` column: then every symbol in it.
    data_path : pathlib.Path or str, optional
        ``None``: the bundled 1h samples. A directory: one file per symbol, found by
        name: a ``.csv``, ``.csv.gz`` or ``.parquet`` file whose name contains the
        symbol with ``-`` or ``_`` between base and quote, not inside a longer word
        (``BTC-USD.csv``, ``BTC_USD_1h.csv``, ``coinbase_spot_BTC-USD_1h.csv.gz``;
        not ``BTC-USDT.csv``). When several match and exactly one also names the
        requested ``timeframe`` (``..._1h...``), that one is used. A file: with a
        ``symbol`` column, the requested symbols are selected from it; without one,
        it is the data of the single requested symbol.
    timeframe : str, default "1h"
        Bar length wanted. The source bar length is inferred per symbol as the median
        timestamp spacing; a coarser ``timeframe`` (a whole multiple) is resampled
        with epoch-aligned buckets and the incomplete last bucket dropped (see
        :func:`~tradewarden.data.resample`).
    start, end : str, optional
        ISO 8601 date or datetime, UTC when no offset is given (``2024-05-01``,
        ``2024-05-01T12:00:00Z``). Bars whose open time ``t`` satisfies
        ``start <= t < end`` are kept; applied after resampling so buckets stay aligned.
    skip_bad_rows : bool, default False
        Drop bad rows instead of raising (see :func:`~tradewarden.data.validate_frame`);
        affected symbols are reported ``"degraded"`` and get a warning.

    Returns
    -------
    LoadedData
        Bars (owned C-contiguous int64/float64 arrays; ``source`` is the file path as
        given, or ``bundled:<file name>`` for bundled data), quality reports on the
        source rows, instruments and warnings.

    Raises
    ------
    DataError
        Unknown bundled symbol (lists the bundled ones); no or several matching files
        in a directory; unreadable file, missing columns, bad row (unless skipped),
        unsorted or duplicate timestamps; a file without a ``symbol`` column asked
        for no symbol or several; requested timeframe finer than, or not a multiple
        of, the data's; a date range that leaves no bars (names symbol and range).
    ValueError
        Invalid ``timeframe`` label, ``start``/``end`` that are not ISO dates (the
        message quotes the value), ``start`` not before ``end``, an empty symbol list.
    """
    target_seconds = timeframe_seconds(timeframe)
    lo = _parse_bound(start, "start")
    hi = _parse_bound(end, "end")
    if lo is not None and hi is not None and lo >= hi:
        raise ValueError(f"start {start!r} must be before end {end!r}")
    wanted: list[str] | None = None
    if symbols is not None:
        if isinstance(symbols, str):
            symbols = [symbols]
        wanted = list(dict.fromkeys(canonical_symbol(s) for s in symbols))
        if not wanted:
            raise ValueError("no symbols requested: pass at least one symbol, or None for all")

    out = LoadedData()
    tf_label = timeframe_label(target_seconds)

    def load(symbol: str, frame: pd.DataFrame, source: str) -> None:
        _load_one(symbol, frame, source, target_seconds, lo, hi, skip_bad_rows, out)

    if data_path is None:
        for symbol in wanted or bundled_symbols():
            path = bundled_path(symbol)
            source = _bundled_source(path)
            load(symbol, _read_ohlcv(path, symbol, source), source)
        return out

    root = Path(data_path)
    if not root.exists():
        raise DataError(os.fspath(data_path), "no such file or directory")
    if root.is_dir():
        for symbol in wanted or bundled_symbols():
            path = _find_in_directory(root, symbol, tf_label)
            load(symbol, read_ohlcv_file(path, symbol), os.fspath(path))
        return out

    source = os.fspath(data_path)
    frame = read_ohlcv_file(root)
    if "symbol" in frame.columns:
        held = list(dict.fromkeys(frame["symbol"].tolist()))
        for symbol in wanted or held:
            if symbol not in held:
                raise DataError(source, f"no rows for symbol {symbol!r}; "
                                        f"symbols in file: {_listing(held)}")
            load(symbol, frame[frame["symbol"] == symbol], source)
        return out
    if wanted is None or len(wanted) != 1:
        asked = "no symbol" if wanted is None else f"{len(wanted)} symbols ({', '.join(wanted)})"
        raise DataError(source, f"file has no 'symbol' column, so it holds one symbol's bars; "
                                f"{asked} requested: pass exactly one symbol")
    load(wanted[0], frame, source)
    return out
