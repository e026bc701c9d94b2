"""Loading OHLCV bars from the bundled samples, CSV/Parquet files or a directory of files.

:func:`load_market_data` is the one entry point the engine and CLI use: it finds the
file for each symbol, streams and validates it block by block (pyarrow's CSV reader,
Parquet row batches), resamples to the requested timeframe, applies the date range and
attaches an :class:`~tradewarden.domain.Instrument`. Peak memory is the clean columns
plus one block, whatever the file's size.
"""

from __future__ import annotations

import os
import queue
import re
import threading
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tradewarden.data._columns import (
    VALUE_FIELDS,
    canonical_symbol,
    normalize_columns,
    resolve_names,
)
from tradewarden.data.equities import (
    SPLIT_COLUMNS,
    daily_file_columns,
    equity_instrument,
    load_daily_file,
)
from tradewarden.data.errors import DataError
from tradewarden.data.quality import BlockValidator, DataQuality, find_unadjusted_splits
from tradewarden.data.resample import resample, timeframe_label, timeframe_seconds
from tradewarden.domain.instrument import Instrument, infer_instrument, known_instrument
from tradewarden.domain.values import BarSeries, iso

__all__ = ["ADJUST_CHOICES", "DEFAULT_EQUITY_ADJUST", "LoadedData", "bundled_path",
           "bundled_symbols", "check_file", "load_market_data", "read_ohlcv_file"]

_BUNDLED_PACKAGE = "tradewarden.data"
_BUNDLED_DIR = "bundled"
_BUNDLED_NAME = re.compile(
    r"^coinbase_spot_(?P<symbol>[A-Z0-9.]+-[A-Z0-9.]+)_(?P<tf>\w+)\.csv\.gz$")
_CSV_SUFFIXES = (".csv", ".csv.gz")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_ALNUM = "A-Za-z0-9"
_DAY = 86_400

#: Price bases of ``adjust`` (``warden replay --adjust``) for stocks and ETFs: ``raw``
#: traded prices, ``split`` back-adjusted for splits, ``split_dividend`` scaled to the
#: vendor's split- and dividend-adjusted close.
ADJUST_CHOICES: tuple[str, ...] = ("raw", "split", "split_dividend")
#: The default for equities: split-adjusted. Raw prices turn a split into a fake crash
#: (AAPL 7:1 on 2014-06-09 reads as -86 %); ``split_dividend`` rewrites every earlier
#: price by dividends paid later (and, for the vendor's basis, by later splits too), so
#: the strategy would see price levels nobody saw at the time. Split adjustment only
#: rescales the share count, which keeps every return and level ratio a trader saw.
DEFAULT_EQUITY_ADJUST = "split"
_EQUITY_ADJUSTMENT = {"raw": "none", "split": "split", "split_dividend": "split_dividend"}


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
    timeframe : str or None
        Bar length of every series (canonical label such as ``"1m"``, ``"1h"``): the
        requested timeframe, or the data's own when none was requested.
    adjust : str or None
        The price basis applied to the series that carry split information (the
        bundled equities, a file with a split column): one of :data:`ADJUST_CHOICES`;
        ``None`` when no series had any (crypto, a plain OHLCV file).
    """

    series: dict[str, BarSeries] = field(default_factory=dict)
    quality: dict[str, DataQuality] = field(default_factory=dict)
    instruments: dict[str, Instrument] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    timeframe: str | None = None
    adjust: str | None = None


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
    from tradewarden.data.equities import BUNDLED_EQUITY_TICKERS

    label = timeframe_label(timeframe_seconds(timeframe))
    canonical = canonical_symbol(symbol)
    index = _bundled_index()
    if (canonical, label) in index:
        return index[(canonical, label)]
    available = ", ".join(f"{s} ({tf})" for s, tf in sorted(index)) or "none"
    tickers = ", ".join(BUNDLED_EQUITY_TICKERS)
    why = (" (VIX is the CBOE volatility index, bundled as context: an index is not "
           "tradable)" if canonical == "VIX" else "")
    raise DataError(f"bundled data ({_bundled_dir()})",
                    f"no bundled {label} file for symbol {canonical!r}{why}; bundled: "
                    f"{available}; daily US equities (--timeframe 1d): {tickers}")


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
        seconds, milliseconds, microseconds or nanoseconds (told apart by magnitude
        during validation). This reads the whole file with pandas;
        :func:`load_market_data` streams it instead.
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


def _find_in_directory(directory: Path, symbol: str, timeframe: str | None) -> Path:
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
    if timeframe is not None:
        tf_token = re.compile(rf"(?<![{_ALNUM}]){re.escape(timeframe)}(?![{_ALNUM}])")
        named = [c for c in candidates if tf_token.search(c.name)]
        if len(named) == 1:
            return named[0]
    hint = "" if timeframe is not None else ", or name a timeframe that one of them carries"
    raise DataError(directory, f"ambiguous data files for {symbol} ({looked_for}): "
                               f"{', '.join(c.name for c in candidates)}; pass one file as the "
                               f"data path or remove the others{hint}")


# ---------------------------------------------------------------------------------------
# streaming a file block by block

#: Bytes of CSV text parsed per block: with the clean columns, one block's columns are
#: all the memory a file takes while it loads.
_CSV_BLOCK_BYTES = 4 << 20
#: Rows per Parquet batch.
_PARQUET_BATCH_ROWS = 1 << 17
#: Cells read as missing: pandas.read_csv's defaults, so both readers agree.
_NA_TOKENS = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
              "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]
#: Every CSV column is read as text; the validator converts each block (typed in C++,
#: through pandas only for a block with a cell Arrow cannot read).
_TEXT_COLUMNS = {f"f{i}": pa.string() for i in range(4096)}
_PARSE_ERROR = re.compile(r"Row #(\d+): Expected (\d+) columns, got (\d+)")


@dataclass
class _Table:
    """An opened data file: its canonical column map and its blocks in file order.

    ``blocks`` yields ``(table, rows)``: a :class:`pyarrow.Table` holding the mapped
    columns under their canonical names, and the 1-based data row number of each of
    its rows. ``rows_hint`` estimates the file's data rows (0 when unknown).
    """

    columns: dict[str, object]
    blocks: Iterator[tuple[pa.Table, np.ndarray]]
    rows_hint: int


def _cannot_read(source: str, exc: BaseException) -> DataError:
    return DataError(source, f"cannot read file ({type(exc).__name__}: {exc})")


def _open_table(path: Path, source: str) -> _Table:
    if not path.exists():
        raise DataError(source, "file not found")
    if path.is_dir():
        raise DataError(source, "is a directory, expected a CSV or Parquet file")
    name = path.name.lower()
    if name.endswith(_PARQUET_SUFFIXES):
        return _open_parquet(path, source)
    if name.endswith(_CSV_SUFFIXES):
        return _open_csv(path, source)
    raise DataError(source, "unsupported file type: expected .csv, .csv.gz or .parquet")


def _header_names(cells: list[object]) -> list[str]:
    """Column names as pandas.read_csv gives them: empty -> ``Unnamed: i``, repeats -> ``x.1``."""
    names: list[str] = []
    seen: set[str] = set()
    for i, cell in enumerate(cells):
        base = f"Unnamed: {i}" if cell is None or str(cell) == "" else str(cell)
        name, k = base, 0
        while name in seen:
            k += 1
            name = f"{base}.{k}"
        seen.add(name)
        names.append(name)
    return names


def _csv_options(names: list[str], include: list[str], typed: dict[str, pa.DataType],
                 threads: bool) -> dict[str, Any]:
    import pyarrow.csv as pacsv

    return dict(
        read_options=pacsv.ReadOptions(use_threads=threads, column_names=names),
        parse_options=pacsv.ParseOptions(ignore_empty_lines=False),
        convert_options=pacsv.ConvertOptions(
            include_columns=include, column_types={c: typed.get(c, pa.string()) for c in include},
            null_values=_NA_TOKENS, strings_can_be_null=True))


def _csv_parse(data: bytes, names: list[str], include: list[str],
               typed: dict[str, pa.DataType], first_row: int, source: str) -> pa.Table:
    """Parse one block of whole CSV lines.

    The value columns are typed in C++ when every cell converts; otherwise (a cell that
    is not a number, or text that reads as NaN) the block is parsed again with every
    column as text, and the validator names the cell. A line with the wrong number of
    fields is a DataError naming its row (found by a single-threaded parse, which
    counts rows)."""
    import pyarrow.csv as pacsv

    def parse(types: dict[str, pa.DataType], threads: bool) -> pa.Table:
        return pacsv.read_csv(pa.py_buffer(data), **_csv_options(names, include, types, threads))

    try:
        table = parse(typed, True)
        for c in typed:
            col = table.column(c)
            if col.null_count < len(col) and pc.any(pc.is_nan(col)).as_py():
                return parse({}, True)
        return table
    except pa.ArrowInvalid as exc:
        if "columns, got" not in str(exc):
            try:
                return parse({}, True)
            except pa.ArrowInvalid as again:
                exc = again
        try:
            parse({}, False)
        except pa.ArrowInvalid as serial:
            found = _PARSE_ERROR.search(str(serial))
            if found:
                row, expected, got = (int(g) for g in found.groups())
                raise DataError(source, f"{got} fields where the header has {expected}",
                                row=first_row + row - 1) from None
        raise _cannot_read(source, exc) from None


def _prefetched(items: Iterator[Any]) -> Iterator[Any]:
    """Run ``items`` one step ahead on a helper thread (an exception is re-raised here).

    At most one finished item waits, so memory grows by one block; if the consumer
    stops early, the helper is told to stop and joined.
    """
    slot: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        slot.put((True, item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            final: tuple[bool, Any] = (True, done)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            final = (False, exc)
        while not stop.is_set():
            try:
                slot.put(final, timeout=0.1)
                return
            except queue.Full:
                continue

    helper = threading.Thread(target=produce, daemon=True, name="tradewarden-csv-reader")
    helper.start()
    try:
        while True:
            ok, item = slot.get()
            if not ok:
                raise item
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while not slot.empty():
            slot.get_nowait()
        helper.join()


def _csv_rows_hint(path: Path, block_rows: int, block_bytes: int) -> int:
    """Estimate a CSV's data rows from its size and the first block's rows per byte."""
    size = path.stat().st_size
    if path.name.lower().endswith(".gz") and size >= 18:
        with path.open("rb") as fh:            # gzip trailer: uncompressed size mod 2**32
            fh.seek(-4, os.SEEK_END)
            isize = int.from_bytes(fh.read(4), "little")
        size = isize if isize >= size else size * 4
    if block_rows <= 0 or block_bytes <= 0:
        return 0
    return int(size / block_bytes * block_rows * 1.05) + 1024


def _open_csv(path: Path, source: str) -> _Table:
    """Open a CSV (gzip by extension) and read its header; blocks are parsed as read.

    The file is read in blocks of :data:`_CSV_BLOCK_BYTES`, each cut after its last
    line break and parsed on its own (pyarrow, threads within the block), so no more
    than one block of text and its columns are in memory at once.
    """
    import pyarrow.csv as pacsv

    compression = "gzip" if path.name.lower().endswith(".gz") else None

    def read(stream: Any, n: int) -> bytes:
        try:
            return stream.read(n)
        except (pa.ArrowException, OSError, EOFError, ValueError) as exc:
            raise _cannot_read(source, exc) from None

    try:
        stream = pa.input_stream(os.fspath(path), compression=compression)
    except (pa.ArrowException, OSError) as exc:
        raise _cannot_read(source, exc) from None
    head = read(stream, _CSV_BLOCK_BYTES)
    while b"\n" not in head:                        # a header longer than a block
        more = read(stream, _CSV_BLOCK_BYTES)
        if not more:
            break
        head += more
    line_end = head.find(b"\n") + 1 or len(head)
    try:
        header = pacsv.read_csv(
            pa.py_buffer(head[:line_end]),
            read_options=pacsv.ReadOptions(autogenerate_column_names=True),
            convert_options=pacsv.ConvertOptions(column_types=_TEXT_COLUMNS,
                                                 strings_can_be_null=True))
    except pa.ArrowInvalid as exc:
        raise _cannot_read(source, exc) from None
    names = _header_names([header.column(i)[0].as_py() if header.num_rows else None
                           for i in range(header.num_columns)])
    columns = resolve_names(names, source)
    physical = [f"f{i}" for i in range(len(names))]
    field_of = {canon: physical[names.index(str(label))] for canon, label in columns.items()}
    include = list(dict.fromkeys(field_of.values()))
    typed = {field_of[c]: pa.float64() for c in VALUE_FIELDS}
    rows_hint = _csv_rows_hint(path, head.count(b"\n", line_end), len(head) - line_end)

    def parsed() -> Iterator[pa.Table]:
        """Whole-line blocks of the file, parsed; one row per line (blank ones too)."""
        data = head[line_end:]
        start = 1                        # data row number of the next block's first row
        at_end = fresh = False           # the first block is what the header came with
        while not at_end:
            if fresh:
                chunk = read(stream, _CSV_BLOCK_BYTES)
                at_end = not chunk
                data += chunk
            fresh = True
            cut = len(data) if at_end else data.rfind(b"\n") + 1
            if cut == 0:
                continue                 # no whole line yet
            block, data = data[:cut], data[cut:]
            if not block:
                continue
            table = _csv_parse(block, physical, include, typed, start, source)
            del block
            start += table.num_rows
            yield table

    def blocks() -> Iterator[tuple[pa.Table, np.ndarray]]:
        start = 1                        # data row number of the next table's first row
        pending: pa.Table | None = None  # blank rows at the end of the previous block
        # The next block is read and parsed (pyarrow, without the GIL) while this one
        # is validated.
        for table in _prefetched(parsed()):
            if pending is not None:
                start -= pending.num_rows
                if pending.schema != table.schema:      # typed vs text: all null anyway
                    pending = pending.cast(table.schema)
                table = pa.concat_tables([pending, table])
                pending = None
            n = table.num_rows
            if n == 0:
                continue
            # A blank line at the end of the file is an editor artefact, not a row.
            blank = table.column(0).is_null()
            for col in table.columns[1:]:
                blank = pc.and_(blank, col.is_null())
            blank_np = blank.to_numpy(zero_copy_only=False)
            if blank_np[-1]:
                real = np.flatnonzero(~blank_np)
                keep = int(real[-1]) + 1 if real.shape[0] else 0
                pending, table = table.slice(keep), table.slice(0, keep)
            rows = np.arange(start, start + table.num_rows, dtype=np.int64)
            start += n
            if table.num_rows:
                yield pa.table({c: table.column(f) for c, f in field_of.items()}), rows

    return _Table(columns, blocks(), rows_hint)


def _open_parquet(path: Path, source: str) -> _Table:
    import pyarrow.parquet as pq

    try:
        pfile = pq.ParquetFile(path)
        names = list(pfile.schema_arrow.names)
    except Exception as exc:  # any reader failure means the file cannot be used
        raise _cannot_read(source, exc) from None
    columns = resolve_names(names, source)
    wanted = list(dict.fromkeys(columns.values()))

    def blocks() -> Iterator[tuple[pa.Table, np.ndarray]]:
        start = 1
        try:
            batches = pfile.iter_batches(batch_size=_PARQUET_BATCH_ROWS, columns=wanted,
                                         use_pandas_metadata=False)
            for batch in batches:
                table = pa.table({c: batch.column(batch.schema.get_field_index(label))
                                  for c, label in columns.items()})
                yield table, np.arange(start, start + batch.num_rows, dtype=np.int64)
                start += batch.num_rows
        except DataError:
            raise
        except Exception as exc:  # corrupt page, truncated file
            raise _cannot_read(source, exc) from None

    return _Table(columns, blocks(), int(pfile.metadata.num_rows))


def _canonical_symbols(col: pa.ChunkedArray) -> pa.Array:
    arr = col.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = arr.cast(pa.string())
    arr = pc.utf8_upper(pc.utf8_trim_whitespace(arr))
    for sep in ("_", "/"):
        arr = pc.replace_substring(arr, sep, "-")
    return arr


@dataclass
class _Read:
    """What streaming one file gave, per symbol: clean columns and quality, or the error."""

    results: dict[str, tuple[dict[str, np.ndarray], DataQuality]]
    errors: dict[str, DataError]
    held: list[str]                   # symbols of a symbol column, in order of appearance
    has_symbol_column: bool


def _read_file(path: Path, source: str, wanted: list[str] | None, skip_bad_rows: bool,
               *, single: str | None = None) -> _Read:
    """Stream one file through the validators.

    Without a ``symbol`` column the whole file is ``single``'s (which must be given).
    With one, rows go to one
    validator per symbol in ``wanted`` (``None``: every symbol in the file); errors of
    a symbol are kept for the caller, which reports them in request order, as loading
    the symbols one after another would.
    """
    table = _open_table(path, source)
    return _stream(table, source, wanted, skip_bad_rows, single)


def _stream(table: _Table, source: str, wanted: list[str] | None, skip_bad_rows: bool,
            single: str | None) -> _Read:
    try:
        return _stream_blocks(table, source, wanted, skip_bad_rows, single)
    finally:
        close = getattr(table.blocks, "close", None)
        if close is not None:            # stop the reader thread at once on an error
            close()


def _stream_blocks(table: _Table, source: str, wanted: list[str] | None, skip_bad_rows: bool,
                   single: str | None) -> _Read:
    if "symbol" not in table.columns:
        assert single is not None
        validator = BlockValidator(source, single, skip_bad_rows, capacity=table.rows_hint)
        for block, rows in table.blocks:
            validator.feed({c: block.column(c) for c in block.column_names}, rows)
        return _Read({single: validator.finish()}, {}, [], False)

    targets = None if wanted is None else set(wanted)
    held: list[str] = []
    held_set: set[str] = set()
    validators: dict[str, BlockValidator] = {}
    errors: dict[str, DataError] = {}
    value_names = [c for c in table.columns if c != "symbol"]
    for block, rows in table.blocks:
        sym = _canonical_symbols(block.column("symbol"))
        blank = pc.fill_null(pc.equal(sym, ""), True).to_numpy(zero_copy_only=False)
        if blank.any():
            row = int(rows[int(np.flatnonzero(blank)[0])])
            raise DataError(source, "missing symbol", row=row, field="symbol")
        encoded = pc.dictionary_encode(sym)
        names = encoded.dictionary.to_pylist()
        codes = encoded.indices.to_numpy(zero_copy_only=False)
        order = np.argsort(codes, kind="stable") if len(names) > 1 else None
        bounds = np.concatenate(([0], np.cumsum(np.bincount(codes, minlength=len(names)))))
        for k, name in enumerate(names):
            if name not in held_set:
                held_set.add(name)
                held.append(name)
            if (targets is not None and name not in targets) or name in errors:
                continue
            validator = validators.get(name)
            if validator is None:
                share = (bounds[k + 1] - bounds[k]) / max(len(codes), 1)
                validator = validators[name] = BlockValidator(
                    source, name, skip_bad_rows, capacity=int(table.rows_hint * share * 1.1))
            if order is None:
                part, part_rows = {c: block.column(c) for c in value_names}, rows
            else:
                idx = order[bounds[k]:bounds[k + 1]]
                taken = pa.array(idx)
                part = {c: block.column(c).take(taken) for c in value_names}
                part_rows = rows[idx]
            try:
                validator.feed(part, part_rows)
            except DataError as exc:
                errors[name] = exc
                del validators[name]       # its rows so far are no longer needed
    results = {name: v.finish() for name, v in validators.items()}
    return _Read(results, errors, held, True)


def check_file(path: str | os.PathLike[str]) -> list[tuple[str, np.ndarray, DataQuality]]:
    """Stream one CSV/Parquet file through the validations, symbol by symbol.

    Memory is one block plus the timestamps, as in :func:`load_market_data`.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.csv``, ``.csv.gz`` or ``.parquet`` file of OHLCV bars.

    Returns
    -------
    list of (symbol, timestamps, DataQuality)
        One entry per symbol of the file's ``symbol`` column, sorted; without that
        column one entry named after the file (``BTC-USD`` for ``BTC-USD.csv``).
        Timestamps are int64 UTC epoch seconds, shape (rows,). The quality lists the
        overnight moves that match a stock split (``split_suspects``, status
        ``"degraded"``: the file's prices as they are, not adjusted), and a daily series
        on NYSE session dates has its gaps counted in NYSE sessions, as
        :func:`load_market_data` does.

    Raises
    ------
    DataError
        As :func:`load_market_data`: the first bad row (file, row, field), unsorted
        timestamps, missing columns, an unreadable file.
    """
    p = Path(path)
    source = os.fspath(path)
    if not p.exists():
        raise DataError(source, "file not found")
    read = _read_file(p, source, None, False, single=p.name.split(".")[0])
    for name in read.held:
        if name in read.errors:
            raise read.errors[name]
    out = []
    for sym, (cols, q) in sorted(read.results.items()):
        if q.timeframe_seconds == _DAY:
            q = _nyse_gaps(cols["ts"], q) or q
        suspects = find_unadjusted_splits(cols["ts"], cols["open"], cols["close"])
        if suspects:
            q = replace(q, split_suspects=[x.describe() for x in suspects], status="degraded")
        out.append((sym, cols["ts"], q))
    return out


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


def _nyse_gaps(ts: np.ndarray, quality: DataQuality) -> DataQuality | None:
    """Count a daily series' gaps in NYSE sessions when it looks like one.

    A series of date labels (00:00 UTC) with no row on a weekend or an NYSE holiday is
    taken to follow the NYSE calendar: its gaps are runs of missing sessions, so
    holidays and weekends are not gaps (as for the bundled equities). Returns ``None``
    for any other daily series (crypto trades every day), which keeps the plain count.
    """
    from tradewarden.data.calendars import follows_nyse

    sessions = follows_nyse(ts)
    if sessions is None:
        return None
    return replace(quality, gaps=sessions.gaps, missing_bars=len(sessions.missing_sessions),
                   largest_gap_seconds=sessions.largest_gap_days * _DAY)


def _load_one(symbol: str, cols: dict[str, np.ndarray], quality: DataQuality, source: str,
              target_seconds: int | None, start: int | None, end: int | None,
              out: LoadedData, instrument: Instrument | None = None,
              adjust: str | None = None) -> None:
    if quality.rows == 0:
        skipped = f" ({quality.rows_skipped} skipped)" if quality.rows_skipped else ""
        raise DataError(source, f"no usable rows for {symbol}{skipped}")
    source_seconds = quality.timeframe_seconds
    if source_seconds is None:
        raise DataError(source, f"only one bar for {symbol}: cannot infer the bar length")
    source_label = timeframe_label(source_seconds)
    if target_seconds is None:
        target_seconds = source_seconds
    target_label = timeframe_label(target_seconds)
    if target_seconds < source_seconds:
        raise DataError(source, f"requested timeframe {target_label} is finer than the data's "
                                f"{source_label} bars for {symbol}; ask for {source_label} or "
                                "a multiple of it")
    if target_seconds % source_seconds:
        raise DataError(source, f"requested timeframe {target_label} is not a whole multiple of "
                                f"the data's {source_label} bars for {symbol}")

    # The validator's columns are owned and C-contiguous: the series takes them as they are.
    series = BarSeries(symbol, source_label, cols["ts"], cols["open"], cols["high"], cols["low"],
                       cols["close"], cols["volume"], source=source)
    if target_seconds != source_seconds:
        try:
            series = resample(series, target_label)
        except ValueError as exc:
            raise DataError(source, str(exc)) from None

    if start is not None or end is not None:
        lo = 0 if start is None else int(np.searchsorted(series.ts, start, side="left"))
        hi = len(series) if end is None else int(np.searchsorted(series.ts, end, side="left"))
        if (lo, hi) != (0, len(series)):
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

    nyse = None
    if adjust is None and source_seconds == _DAY:
        nyse = _nyse_gaps(cols["ts"], quality)
        quality = nyse or quality
    if adjust is None and not quality.split_suspects:
        suspects = find_unadjusted_splits(cols["ts"], cols["open"], cols["close"])
        if suspects:
            quality = replace(quality, split_suspects=[s.describe() for s in suspects],
                              status="degraded")
    if quality.split_suspects:
        more = (f" (and {len(quality.split_suspects) - 1} more)"
                if len(quality.split_suspects) > 1 else "")
        fix = ("prices are raw (--adjust raw); --adjust split adjusts them" if adjust == "raw"
               else "adjust the prices, or add a split_coefficient column and pass --adjust "
                    "split")
        out.warnings.append(f"{symbol}: possible unadjusted split in {source}: "
                            f"{quality.split_suspects[0]}{more}; {fix}; data degraded")

    instrument = instrument or known_instrument(symbol)
    if instrument is None and nyse is not None and "-" not in symbol:
        # a plain ticker on NYSE session dates: a US stock or ETF
        instrument = equity_instrument(symbol, float(cols["low"].min()))
        out.warnings.append(f"{symbol}: daily bars on NYSE sessions in {source}: traded as a "
                            f"US equity (USD, price increment {instrument.price_increment}, "
                            "whole shares)")
    if instrument is None:
        sample = np.concatenate([cols[k][:1250] for k in ("open", "high", "low", "close")])
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
                     timeframe: str | None = "1h", start: str | None = None,
                     end: str | None = None, skip_bad_rows: bool = False,
                     adjust: str | None = None) -> LoadedData:
    """Load, validate and shape OHLCV bars for a set of symbols.

    Files are streamed: a CSV (plain or gzip) through pyarrow's streaming CSV reader
    in blocks of a few MiB, a Parquet file by row batches, each block validated as it
    arrives (the checks and messages of :func:`~tradewarden.data.validate_frame`) and
    its clean rows appended to the symbol's numpy columns. Peak memory is those
    columns plus one block.

    Parameters
    ----------
    symbols : list of str, optional
        Symbols to load, in any accepted spelling (``btc_usd``); results are keyed by
        the canonical ``BASE-QUOTE`` form, in request order, duplicates removed; a
        plain ticker (``AAPL``) stays as it is. ``None`` means every bundled crypto
        symbol (BTC-USD, ETH-USD, SOL-USD), except when ``data_path`` is a file with a
        ``symbol`` column: then every symbol in it. Without ``data_path`` a ticker of
        the bundled daily US equities (AAPL, JPM, MSFT, NVDA, XOM 2012-2015 from
        AlphaVantage; SPY 2008-2010 from Yahoo) loads that sample: 1d bars dated by
        NYSE session (00:00 UTC of the session date), gaps counted in NYSE sessions
        (holidays and early closes are not gaps), instrument
        :func:`~tradewarden.data.equities.equity_instrument` (USD, 0.01, whole shares).
    data_path : pathlib.Path or str, optional
        ``None``: the bundled 1h samples. A directory: one file per symbol, found by
        name: a ``.csv``, ``.csv.gz`` or ``.parquet`` file whose name contains the
        symbol with ``-`` or ``_`` between base and quote, not inside a longer word
        (``BTC-USD.csv``, ``BTC_USD_1h.csv``, ``coinbase_spot_BTC-USD_1h.csv.gz``;
        not ``BTC-USDT.csv``). When several match and exactly one also names the
        requested ``timeframe`` (``..._1h...``), that one is used. A file: with a
        ``symbol`` column, the requested symbols are selected from it; without one,
        it is the data of the single requested symbol. Time column: ISO 8601 text
        (with or without ``Z``/offset; without one it is UTC) or epoch seconds,
        milliseconds, microseconds or nanoseconds (the unit from the median
        magnitude of the first block).
    timeframe : str or None, default "1h"
        Bar length wanted. The source bar length is inferred per symbol as the median
        timestamp spacing; a coarser ``timeframe`` (a whole multiple) is resampled
        with epoch-aligned buckets and the incomplete last bucket dropped (see
        :func:`~tradewarden.data.resample`). ``None``: each symbol keeps the data's
        own bar length (no resampling); they must all have the same one.
    start, end : str, optional
        ISO 8601 date or datetime, UTC when no offset is given (``2024-05-01``,
        ``2024-05-01T12:00:00Z``). Bars whose open time ``t`` satisfies
        ``start <= t < end`` are kept; applied after resampling so buckets stay aligned.
    skip_bad_rows : bool, default False
        Drop bad rows instead of raising (see :func:`~tradewarden.data.validate_frame`);
        affected symbols are reported ``"degraded"`` and get a warning.
    adjust : {"raw", "split", "split_dividend"}, optional
        Price basis of equities: the bundled ones and any file with a split column
        (:data:`~tradewarden.data.equities.SPLIT_COLUMNS`; such a file is read whole by
        :func:`~tradewarden.data.equities.load_daily_file`). ``None`` means
        :data:`DEFAULT_EQUITY_ADJUST` (``"split"``). Ignored for the bundled crypto;
        ``"split"``/``"split_dividend"`` for a file without a split column is an
        error. Every series (whatever ``adjust``) is checked for overnight moves that
        match a split ratio (:func:`~tradewarden.data.quality.find_unadjusted_splits`):
        each is listed in ``quality.split_suspects``, marks the series ``"degraded"``
        and adds a warning.

    Returns
    -------
    LoadedData
        Bars (owned C-contiguous int64/float64 arrays; ``source`` is the file path as
        given, or ``bundled:<file name>`` for bundled data), quality reports on the
        source rows, instruments, warnings, and ``timeframe``, the bars' label.

    Raises
    ------
    DataError
        Unknown bundled symbol (lists the bundled ones); no or several matching files
        in a directory; unreadable file, missing columns, a malformed line (names its
        row), bad row (unless skipped), unsorted or duplicate timestamps; a file
        without a ``symbol`` column asked for no symbol or several; requested
        timeframe finer than, or not a multiple of, the data's; with
        ``timeframe=None``, symbols whose bar lengths differ (names each); a date
        range that leaves no bars (names symbol and range); ``adjust`` ``"split"`` or
        ``"split_dividend"`` for a file without a split column, ``"split_dividend"``
        for one without an adjusted close.
    ValueError
        Invalid ``timeframe`` label, ``start``/``end`` that are not ISO dates (the
        message quotes the value), ``start`` not before ``end``, an empty symbol list,
        an ``adjust`` not in :data:`ADJUST_CHOICES` (naming ``--adjust``).
    """
    if adjust is not None and adjust not in ADJUST_CHOICES:
        raise ValueError(f"invalid --adjust {adjust!r}: expected one of "
                         f"{', '.join(ADJUST_CHOICES)}")
    target_seconds = None if timeframe is None else timeframe_seconds(timeframe)
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
    tf_label = None if target_seconds is None else timeframe_label(target_seconds)

    def load(symbol: str, got: _Read, source: str) -> None:
        if symbol in got.errors:
            raise got.errors[symbol]
        cols, quality = got.results[symbol]
        _load_one(symbol, cols, quality, source, target_seconds, lo, hi, out)

    equity_adjust = adjust or DEFAULT_EQUITY_ADJUST

    def daily(bars: Any, symbol: str, source: str) -> None:
        """One symbol's DailyBars (equities) through the same range/instrument step."""
        s = bars.series
        cols = {"ts": s.ts, "open": s.open, "high": s.high, "low": s.low, "close": s.close,
                "volume": s.volume}
        low = float(s.low.min()) if len(s) else None
        _load_one(symbol, cols, bars.quality.data, source, target_seconds, lo, hi, out,
                  instrument=equity_instrument(symbol, low), adjust=equity_adjust)
        out.adjust = equity_adjust

    def split_file(path: Path, source: str, symbols_: list[str] | None) -> bool:
        """Load ``path`` as a daily equity file when it has a split column; else False."""
        found = daily_file_columns(path)
        if "split" not in found:
            if adjust in ("split", "split_dividend"):
                raise DataError(source, f"--adjust {adjust} needs a split column "
                                        f"({', '.join(SPLIT_COLUMNS)}) in the file; it has "
                                        "none (pass --adjust raw for prices that need no "
                                        "adjustment)")
            return False
        if equity_adjust == "split_dividend" and "adj_close" not in found:
            raise DataError(source, "--adjust split_dividend needs an adjusted close column "
                                    "(adj_close, Adj Close, adjusted_close) in the file; it "
                                    "has none")
        loaded = load_daily_file(path, symbols_, adjustment=_EQUITY_ADJUSTMENT[equity_adjust],
                                 bad_rows="skip" if skip_bad_rows else "raise")
        for symbol, bars in loaded.items():
            daily(bars, symbol, source)
        return True

    def one_symbol_file(path: Path, symbol: str, source: str) -> None:
        if split_file(path, source, [symbol]):
            return
        got = _read_file(path, source, [symbol], skip_bad_rows, single=symbol)
        if got.has_symbol_column and symbol not in got.held:
            raise DataError(source, f"no rows for symbol {symbol!r}; symbols in file: "
                                    f"{_listing(got.held)}")
        load(symbol, got, source)

    if data_path is None:
        where = "bundled data"
        equities = _bundled_equities(wanted or [], _EQUITY_ADJUSTMENT[equity_adjust],
                                     skip_bad_rows)
        for symbol in wanted or bundled_symbols():
            if symbol in equities:
                daily(equities[symbol], symbol, equities[symbol].series.source)
                continue
            path = bundled_path(symbol)
            one_symbol_file(path, symbol, _bundled_source(path))
    else:
        root = Path(data_path)
        where = os.fspath(data_path)
        if not root.exists():
            raise DataError(where, "no such file or directory")
        if root.is_dir():
            for symbol in wanted or bundled_symbols():
                path = _find_in_directory(root, symbol, tf_label)
                one_symbol_file(path, symbol, os.fspath(path))
        elif split_file(root, where, wanted):
            pass
        else:
            table = _open_table(root, where)
            if "symbol" not in table.columns and (wanted is None or len(wanted) != 1):
                asked = ("no symbol" if wanted is None
                         else f"{len(wanted)} symbols ({', '.join(wanted)})")
                raise DataError(where, f"file has no 'symbol' column, so it holds one symbol's "
                                       f"bars; {asked} requested: pass exactly one symbol")
            got = _stream(table, where, wanted, skip_bad_rows,
                          None if wanted is None else wanted[0])
            for symbol in (wanted or got.held) if got.has_symbol_column else wanted:
                if got.has_symbol_column and symbol not in got.held:
                    raise DataError(where, f"no rows for symbol {symbol!r}; "
                                           f"symbols in file: {_listing(got.held)}")
                load(symbol, got, where)

    labels = {s: bars.timeframe for s, bars in out.series.items()}
    if target_seconds is None and len(set(labels.values())) > 1:
        listing = ", ".join(f"{s} {tf}" for s, tf in labels.items())
        raise DataError(where, f"the symbols' bars have different lengths ({listing}); pass a "
                               "timeframe that is a whole multiple of each")
    out.timeframe = tf_label if tf_label is not None else next(iter(labels.values()), None)
    _release_free_memory()
    return out


def _bundled_equities(wanted: list[str], adjustment: str, skip_bad_rows: bool) -> dict[str, Any]:
    """The requested tickers of the bundled daily equity samples, as DailyBars."""
    from tradewarden.data.equities import (
        BUNDLED_EQUITY_TICKERS,
        load_equity_panel,
        load_spy_daily,
    )

    bad_rows = "skip" if skip_bad_rows else "raise"
    panel = [s for s in wanted if BUNDLED_EQUITY_TICKERS.get(s) == "equities"]
    out: dict[str, Any] = {}
    if panel:
        out.update(load_equity_panel(symbols=panel, adjustment=adjustment,  # type: ignore[arg-type]
                                     bad_rows=bad_rows))  # type: ignore[arg-type]
    if "SPY" in wanted:
        out["SPY"] = load_spy_daily(adjustment=adjustment, bad_rows=bad_rows)  # type: ignore[arg-type]
    return out


def _release_free_memory() -> None:
    """Hand the blocks' freed memory back to the operating system.

    Streaming a large file frees a block's text and columns every few MiB; the
    allocators keep such memory for reuse (pyarrow's pool, glibc's arenas, one per
    reader thread), which for a 200 MB CSV is about 50 MB of resident memory that the
    replay would never use. Best effort: where ``malloc_trim`` does not exist (not
    glibc) only pyarrow's pool is released.
    """
    pa.default_memory_pool().release_unused()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
