"""Parquet cache of exchange candles, partitioned by venue, symbol and timeframe.

Layout under the cache root (default ``~/.cache/tradewarden``, or ``$TRADEWARDEN_CACHE``,
or the ``root`` argument)::

    <root>/ohlcv/<venue>/<SYMBOL>/<timeframe>/meta.json
    <root>/ohlcv/<venue>/<SYMBOL>/<timeframe>/part-000001.parquet
    <root>/ohlcv/<venue>/<SYMBOL>/<timeframe>/part-000002.parquet ...

Each write adds one Parquet part (columns ``ts`` int64 UTC epoch seconds = bar open time,
``open high low close volume`` float64); :meth:`OhlcvCache.compact` merges the parts of a
series into one. ``meta.json`` is the commit record: only the parts it lists are read,
and its ``covered`` list says which ranges ``[start, end)`` were requested from the
venue and answered, **including ranges answered with no candles** (real gaps in the
venue's history, not missing data). A range that is not covered has not been asked for.

Crash safety: every file is written to a temporary name in the same directory, flushed
to disk and moved into place with :func:`os.replace`; the part is written before the
metadata that lists it. An interrupt at any point leaves either the old or the new state
(at worst an unlisted part file, ignored on read and removed by the next compaction),
and covered ranges never claim rows that are not on disk.

Duplicates: a candle written again with identical values is dropped; one written again
with different values replaces the older one (the newest fetch wins) and is counted in
the metadata as ``conflicts``. One writer per series at a time is assumed; on POSIX an
advisory lock (``.lock``) serialises writers in different processes.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tradewarden.data.errors import DataError
from tradewarden.data.quality import validate_frame
from tradewarden.data.resample import timeframe_label, timeframe_seconds
from tradewarden.domain.values import BarSeries, iso

try:  # POSIX advisory locks; on other platforms writers are not serialised
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["CacheEntry", "OhlcvCache", "WriteResult", "default_cache_root", "merge_ranges",
           "subtract_ranges"]

ENV_VAR = "TRADEWARDEN_CACHE"
META_NAME = "meta.json"
FORMAT_VERSION = 1
COLUMNS = ("ts", "open", "high", "low", "close", "volume")
VALUES = COLUMNS[1:]
#: Parts a series may accumulate before a write compacts it.
AUTO_COMPACT_PARTS = 64
_SCHEMA = pa.schema([("ts", pa.int64())] + [(c, pa.float64()) for c in VALUES])
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def default_cache_root() -> Path:
    """Return ``$TRADEWARDEN_CACHE`` if set and non-empty, else ``~/.cache/tradewarden``."""
    env = os.environ.get(ENV_VAR, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tradewarden"


def _utc_now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ---------------------------------------------------------------------------------------
# ranges: lists of half-open [start, end) intervals in epoch seconds


def merge_ranges(ranges: Iterable[Sequence[int]]) -> list[tuple[int, int]]:
    """Sort and merge half-open ranges; touching ranges join, empty ones are dropped.

    Parameters
    ----------
    ranges : iterable of (start, end)
        UTC epoch seconds, ``start`` inclusive, ``end`` exclusive.

    Returns
    -------
    list of (int, int)
    """
    items = sorted((int(a), int(b)) for a, b in ranges if int(b) > int(a))
    out: list[tuple[int, int]] = []
    for a, b in items:
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def subtract_ranges(start: int, end: int,
                    covered: Iterable[Sequence[int]]) -> list[tuple[int, int]]:
    """Return the parts of ``[start, end)`` not inside any ``covered`` range."""
    out: list[tuple[int, int]] = []
    cursor = int(start)
    for a, b in merge_ranges(covered):
        if b <= cursor:
            continue
        if a >= end:
            break
        if a > cursor:
            out.append((cursor, min(a, end)))
        cursor = max(cursor, b)
        if cursor >= end:
            break
    if cursor < end:
        out.append((cursor, int(end)))
    return out


def _range_text(a: int, b: int) -> str:
    return f"[{iso(a)}, {iso(b)})"


# ---------------------------------------------------------------------------------------
# atomic file helpers


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _atomic_write_bytes(path: Path, writer) -> None:
    """Write via ``writer(file_object)`` to a temp file in ``path``'s directory, then
    flush, fsync and :func:`os.replace` it onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            writer(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def _atomic_write_json(path: Path, data: Mapping[str, Any]) -> None:
    text = json.dumps(data, indent=1, sort_keys=True).encode()
    _atomic_write_bytes(path, lambda fh: fh.write(text))


def _atomic_write_parquet(path: Path, frame: pd.DataFrame) -> None:
    table = pa.Table.from_pandas(frame[list(COLUMNS)], schema=_SCHEMA, preserve_index=False)
    _atomic_write_bytes(path, lambda fh: pq.write_table(table, fh, compression="zstd"))


class _Lock:
    """Advisory exclusive lock on ``<series dir>/.lock`` (no-op without fcntl)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / ".lock"
        self.fd: int | None = None

    def __enter__(self) -> _Lock:
        if fcntl is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


# ---------------------------------------------------------------------------------------
# results


@dataclass
class WriteResult:
    """What one :meth:`OhlcvCache.write` did.

    Attributes
    ----------
    new_rows : int
        Candles at timestamps the cache did not hold.
    conflicts : int
        Candles at cached timestamps with different values: the new ones replaced them.
    duplicates : int
        Candles identical to cached ones (dropped).
    covered : list of (int, int)
        The series' covered ranges after the write, merged.
    """

    new_rows: int
    conflicts: int
    duplicates: int
    covered: list[tuple[int, int]]


@dataclass
class CacheEntry:
    """One cached series, as :meth:`OhlcvCache.list` reports it.

    Attributes
    ----------
    venue, symbol, timeframe : str
    path : pathlib.Path
        The series directory.
    rows : int
    first_ts, last_ts : int or None
        Open times of the first and last cached bar, UTC epoch seconds.
    gaps : int
        Holes between consecutive cached bars (spacing above one bar length).
    missing_bars : int
        Bars those holes skip.
    zero_volume_bars : int
    covered : list of (int, int)
        Ranges requested from the venue and answered, ``[start, end)`` epoch seconds.
    conflicts : int
        Cached candles replaced by a newer fetch with different values, in all.
    fetched_at : str or None
        UTC ISO time of the latest write.
    venue_symbol : dict or None
        The :class:`~tradewarden.data.venues.VenueSymbol` used, as a dict.
    source : dict or None
        ``venue``, ``ccxt_version``, ``endpoint``, ``api`` of the latest write.
    """

    venue: str
    symbol: str
    timeframe: str
    path: Path
    rows: int
    first_ts: int | None
    last_ts: int | None
    gaps: int
    missing_bars: int
    zero_volume_bars: int
    covered: list[tuple[int, int]] = field(default_factory=list)
    conflicts: int = 0
    fetched_at: str | None = None
    venue_symbol: dict[str, Any] | None = None
    source: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form with ISO times next to the epoch seconds."""
        return {
            "venue": self.venue, "symbol": self.symbol, "timeframe": self.timeframe,
            "path": str(self.path), "rows": self.rows, "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "first_time": None if self.first_ts is None else iso(self.first_ts),
            "last_time": None if self.last_ts is None else iso(self.last_ts),
            "gaps": self.gaps, "missing_bars": self.missing_bars,
            "zero_volume_bars": self.zero_volume_bars,
            "covered": [list(r) for r in self.covered], "conflicts": self.conflicts,
            "fetched_at": self.fetched_at, "venue_symbol": self.venue_symbol,
            "source": self.source,
        }


def _empty_frame() -> pd.DataFrame:
    return pd.DataFrame({"ts": np.empty(0, np.int64),
                         **{c: np.empty(0, np.float64) for c in VALUES}})


# ---------------------------------------------------------------------------------------
# the cache


class OhlcvCache:
    """Parquet cache of OHLCV candles per venue, symbol and timeframe.

    Parameters
    ----------
    root : str or os.PathLike, optional
        Cache root; ``None`` means :func:`default_cache_root` (``$TRADEWARDEN_CACHE`` or
        ``~/.cache/tradewarden``). Candles live under ``<root>/ohlcv``.

    Notes
    -----
    ``venue`` is a ccxt exchange id (``coinbase``), ``symbol`` a canonical pair
    (``BTC-USD``; the downloader stores the pair actually traded, see
    :attr:`~tradewarden.data.venues.VenueSymbol.pair`), ``timeframe`` a label such as
    ``1h`` (normalised: ``60m`` and ``1h`` are the same series). Times are UTC epoch
    seconds; ranges are half-open ``[start, end)`` over bar open times.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_root()

    def __repr__(self) -> str:
        return f"OhlcvCache({str(self.root)!r})"

    # -- paths and metadata --------------------------------------------------------------

    @staticmethod
    def _key(venue: str, symbol: str, timeframe: str) -> tuple[str, str, str, int]:
        v = str(venue).strip().lower()
        s = str(symbol).strip().upper().replace("/", "-").replace("_", "-")
        tf = timeframe_seconds(timeframe)
        label = timeframe_label(tf)
        for what, value in (("venue", v), ("symbol", s)):
            if not _SAFE.match(value) or value in (".", ".."):
                raise ValueError(f"invalid cache {what} {value!r}: letters, digits, '.', '_' "
                                 "and '-' only")
        return v, s, label, tf

    def series_dir(self, venue: str, symbol: str, timeframe: str) -> Path:
        """Directory of one series: ``<root>/ohlcv/<venue>/<SYMBOL>/<timeframe>``."""
        v, s, label, _ = self._key(venue, symbol, timeframe)
        return self.root / "ohlcv" / v / s / label

    def _load_meta(self, directory: Path) -> dict[str, Any] | None:
        path = directory / META_NAME
        if not path.exists():
            return None
        try:
            meta = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(path, f"unreadable cache metadata ({type(exc).__name__}: {exc}); "
                                  "delete the series directory to rebuild it") from exc
        if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
            raise DataError(path, f"unsupported cache metadata format "
                                  f"{meta.get('format') if isinstance(meta, dict) else None!r}; "
                                  f"expected {FORMAT_VERSION}")
        return meta

    def metadata(self, venue: str, symbol: str, timeframe: str) -> dict[str, Any] | None:
        """Return the parsed ``meta.json`` of a series, or ``None`` if it is not cached.

        Raises
        ------
        DataError
            If the metadata file is unreadable or of an unknown format.
        """
        return self._load_meta(self.series_dir(venue, symbol, timeframe))

    def covered(self, venue: str, symbol: str, timeframe: str) -> list[tuple[int, int]]:
        """Covered ranges of a series, merged (empty if not cached)."""
        meta = self.metadata(venue, symbol, timeframe)
        return merge_ranges(meta["covered"]) if meta else []

    # -- reading -------------------------------------------------------------------------

    def _read_parts(self, directory: Path, meta: Mapping[str, Any] | None,
                    start: int | None = None, end: int | None = None) -> pd.DataFrame:
        if not meta or not meta.get("parts"):
            return _empty_frame()
        frames = []
        for part in meta["parts"]:   # listed in write order: later parts win duplicates
            if start is not None and part["max_ts"] < start:
                continue
            if end is not None and part["min_ts"] >= end:
                continue
            path = directory / part["file"]
            try:
                table = pq.read_table(path, columns=list(COLUMNS))
            except Exception as exc:  # a listed part must be readable
                raise DataError(path, f"cannot read cached candles ({type(exc).__name__}: "
                                      f"{exc}); delete the series directory to rebuild it") from exc
            frames.append(pd.DataFrame({c: table.column(c).to_numpy() for c in COLUMNS},
                                       copy=False))
        if not frames:
            return _empty_frame()
        frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        if len(frames) > 1:
            frame = frame.drop_duplicates("ts", keep="last")
        ts = frame["ts"].to_numpy()
        if ts.shape[0] > 1 and not np.all(ts[1:] > ts[:-1]):
            frame = frame.sort_values("ts", kind="stable")
        if start is not None or end is not None:
            ts = frame["ts"].to_numpy()
            lo = 0 if start is None else int(np.searchsorted(ts, start, side="left"))
            hi = ts.shape[0] if end is None else int(np.searchsorted(ts, end, side="left"))
            frame = frame.iloc[lo:max(lo, hi)]
        return frame.reset_index(drop=True).astype(
            {"ts": np.int64, **{c: np.float64 for c in VALUES}})

    def read(self, venue: str, symbol: str, timeframe: str, start: int | None = None,
             end: int | None = None) -> pd.DataFrame:
        """Return cached candles with open time in ``[start, end)``.

        Parameters
        ----------
        venue, symbol, timeframe : str
        start, end : int, optional
            UTC epoch seconds; ``None`` for unbounded.

        Returns
        -------
        pandas.DataFrame
            Columns ``ts`` (int64, bar open time, epoch seconds) and ``open, high, low,
            close, volume`` (float64), sorted, unique ``ts``, ``RangeIndex``. Empty when
            nothing is cached there (check :meth:`missing_ranges` to tell "not fetched"
            from "venue has no candles").

        Raises
        ------
        DataError
            If the metadata or a listed Parquet part cannot be read.
        """
        directory = self.series_dir(venue, symbol, timeframe)
        return self._read_parts(directory, self._load_meta(directory), start, end)

    def missing_ranges(self, venue: str, symbol: str, timeframe: str, start: int,
                       end: int) -> list[tuple[int, int]]:
        """Ranges of ``[start, end)`` never requested from the venue, aligned to bars.

        ``start`` is floored and ``end`` ceiled to the timeframe grid (epoch-aligned), so
        the result covers every bar whose open time is in ``[start, end)``.

        Returns
        -------
        list of (int, int)
            Half-open ranges in UTC epoch seconds, ascending; empty when fully covered.

        Raises
        ------
        ValueError
            If ``start >= end`` or the timeframe is invalid.
        """
        _, _, _, tf = self._key(venue, symbol, timeframe)
        if int(start) >= int(end):
            raise ValueError(f"start {start} must be before end {end}")
        lo = int(start) // tf * tf
        hi = -(-int(end) // tf) * tf
        return subtract_ranges(lo, hi, self.covered(venue, symbol, timeframe))

    def series(self, venue: str, symbol: str, timeframe: str, start: int | None = None,
               end: int | None = None, *, require_complete: bool = True) -> BarSeries:
        """Return cached candles as a validated :class:`~tradewarden.domain.values.BarSeries`.

        Parameters
        ----------
        venue, symbol, timeframe : str
        start, end : int, optional
            UTC epoch seconds, ``[start, end)``; both needed for ``require_complete``.
        require_complete : bool, default True
            Raise when part of ``[start, end)`` was never fetched (gaps the venue
            answered with no candles are fine: they are covered).

        Returns
        -------
        BarSeries
            ``source`` is ``cache:<venue>/<SYMBOL>/<timeframe>``.

        Raises
        ------
        DataError
            Missing ranges (each named as ISO UTC ``[start, end)``), no cached candles,
            or cached rows that fail :func:`~tradewarden.data.validate_frame`.
        """
        v, s, label, tf = self._key(venue, symbol, timeframe)
        source = f"cache:{v}/{s}/{label}"
        if require_complete and start is not None and end is not None:
            missing = self.missing_ranges(v, s, label, start, end)
            if missing:
                text = ", ".join(_range_text(a, b) for a, b in missing)
                raise DataError(source, f"not cached: {text}; download them first "
                                        f"(warden data download --exchange {v} --symbols {s} "
                                        f"--timeframe {label})")
        frame = self.read(v, s, label, start, end)
        if frame.empty:
            raise DataError(source, "no cached candles in the requested range")
        raw = frame.rename(columns={"ts": "timestamp"})
        clean, _ = validate_frame(raw, source, tf, symbol=s)
        return BarSeries(s, label, *(np.array(clean[c].to_numpy(), copy=True, order="C")
                                     for c in COLUMNS), source=source)

    # -- writing -------------------------------------------------------------------------

    def _check_rows(self, rows: pd.DataFrame, tf: int, source: str) -> pd.DataFrame:
        missing = [c for c in COLUMNS if c not in rows.columns]
        if missing:
            raise DataError(source, f"candles to cache lack column(s) {', '.join(missing)}")
        frame = pd.DataFrame({c: rows[c].to_numpy() for c in COLUMNS}, copy=True)
        if frame.empty:
            return _empty_frame()
        try:
            frame = frame.astype({"ts": np.int64, **{c: np.float64 for c in VALUES}})
        except (TypeError, ValueError) as exc:
            raise DataError(source, f"candles to cache are not numeric ({exc})") from exc
        off = np.flatnonzero(frame["ts"].to_numpy() % tf)
        if off.shape[0]:
            t = int(frame["ts"].iloc[int(off[0])])
            raise DataError(source, f"candle at epoch {t} ({iso(t)}) is not aligned to the "
                                    f"{timeframe_label(tf)} grid")
        # Within one write the last occurrence of a timestamp wins (stable sort).
        frame = frame.sort_values("ts", kind="stable").drop_duplicates("ts", keep="last")
        frame = frame.reset_index(drop=True)
        validate_frame(frame.rename(columns={"ts": "timestamp"}), source, tf)
        return frame

    def write(self, venue: str, symbol: str, timeframe: str, rows: pd.DataFrame, *,
              covered: Iterable[Sequence[int]] = (), source: Mapping[str, Any] | None = None,
              venue_symbol: Any = None, fetched_at: str | None = None) -> WriteResult:
        """Merge candles into the cache and record the ranges they answer.

        Parameters
        ----------
        venue, symbol, timeframe : str
        rows : pandas.DataFrame
            Columns ``ts`` (UTC epoch seconds, bar open time, on the timeframe grid) and
            ``open, high, low, close, volume``; any order; may be empty (a range the
            venue answered with no candles). Repeated ``ts`` within ``rows``: the last
            one is kept.
        covered : iterable of (start, end)
            Ranges (epoch seconds, half-open) requested from the venue and fully
            answered by this fetch; merged into the series' covered list.
        source : mapping, optional
            Provenance of this fetch: ``venue``, ``ccxt_version``, ``endpoint``, ``api``.
        venue_symbol : VenueSymbol or mapping, optional
            The venue symbol used; stored in the metadata.
        fetched_at : str, optional
            UTC ISO time of the fetch; default now.

        Returns
        -------
        WriteResult

        Raises
        ------
        DataError
            Rows with missing columns, non-numeric values, timestamps off the
            timeframe grid, or values that fail
            :func:`~tradewarden.data.validate_frame` (NaN or non-positive prices,
            inconsistent OHLC, negative volume). Nothing is written then.
        """
        v, s, label, tf = self._key(venue, symbol, timeframe)
        directory = self.series_dir(v, s, label)
        where = f"{v} {s} {label} candles"
        new = self._check_rows(rows, tf, where)
        new_cov = merge_ranges(covered)
        for a, b in new_cov:
            if a % tf or b % tf:
                raise ValueError(f"covered range {_range_text(a, b)} is not aligned to the "
                                 f"{label} grid")
        stamp = fetched_at or _utc_now_iso()
        if hasattr(venue_symbol, "to_dict"):
            venue_symbol = venue_symbol.to_dict()

        with _Lock(directory):
            meta = self._load_meta(directory) or {
                "format": FORMAT_VERSION, "venue": v, "symbol": s, "timeframe": label,
                "timeframe_seconds": tf, "covered": [], "parts": [], "next_part": 1,
                "conflicts": 0, "rows": 0, "first_fetched_at": stamp,
            }
            conflicts = duplicates = 0
            if not new.empty:
                lo, hi = int(new["ts"].iloc[0]), int(new["ts"].iloc[-1]) + 1
                old = self._read_parts(directory, meta, lo, hi)
                if not old.empty:
                    joined = new.merge(old, on="ts", how="left", suffixes=("", "_old"),
                                       indicator=True)
                    both = (joined["_merge"] == "both").to_numpy()
                    same = both.copy()
                    for c in VALUES:
                        a = joined[c].to_numpy()
                        b = joined[f"{c}_old"].to_numpy()
                        same &= (a == b) | (np.isnan(a) & np.isnan(b))
                    duplicates = int(same.sum())
                    conflicts = int(both.sum()) - duplicates
                    new = new.loc[~same].reset_index(drop=True)
            new_rows = len(new) - conflicts

            if not new.empty:
                seq = int(meta["next_part"])
                name = f"part-{seq:06d}.parquet"
                _atomic_write_parquet(directory / name, new)       # 1. the data
                meta["parts"].append({"file": name, "rows": len(new),
                                      "min_ts": int(new["ts"].iloc[0]),
                                      "max_ts": int(new["ts"].iloc[-1]), "fetched_at": stamp})
                meta["next_part"] = seq + 1
            meta["covered"] = [list(r) for r in merge_ranges(
                [tuple(r) for r in meta["covered"]] + new_cov)]
            meta["conflicts"] = int(meta.get("conflicts", 0)) + conflicts
            meta["rows"] = int(meta.get("rows", 0)) + new_rows
            meta["fetched_at"] = stamp
            if source is not None:
                meta["source"] = dict(source)
            if venue_symbol is not None:
                meta["venue_symbol"] = dict(venue_symbol)
            _atomic_write_json(directory / META_NAME, meta)        # 2. the commit record
            if len(meta["parts"]) > AUTO_COMPACT_PARTS:
                self._compact_locked(directory, meta)
        return WriteResult(new_rows, conflicts, duplicates,
                           [tuple(r) for r in meta["covered"]])

    def compact(self, venue: str, symbol: str, timeframe: str) -> int:
        """Merge a series' parts into one file and delete unlisted leftovers.

        Returns
        -------
        int
            Rows in the compacted series (0 if nothing is cached).
        """
        directory = self.series_dir(venue, symbol, timeframe)
        if not (directory / META_NAME).exists():
            return 0
        with _Lock(directory):
            meta = self._load_meta(directory)
            assert meta is not None
            return self._compact_locked(directory, meta)

    def _compact_locked(self, directory: Path, meta: dict[str, Any]) -> int:
        listed = {p["file"] for p in meta["parts"]}
        if len(meta["parts"]) > 1:
            frame = self._read_parts(directory, meta)
            seq = int(meta["next_part"])
            name = f"part-{seq:06d}.parquet"
            _atomic_write_parquet(directory / name, frame)
            meta["parts"] = [{"file": name, "rows": len(frame),
                              "min_ts": int(frame["ts"].iloc[0]),
                              "max_ts": int(frame["ts"].iloc[-1]),
                              "fetched_at": meta.get("fetched_at")}]
            meta["next_part"] = seq + 1
            meta["rows"] = len(frame)
            _atomic_write_json(directory / META_NAME, meta)
            listed = {name}
        for entry in directory.iterdir():     # superseded or orphaned parts, stale temps
            if entry.name.startswith(("part-", ".part-")) and entry.name not in listed:
                try:
                    entry.unlink()
                except OSError:  # pragma: no cover
                    pass
        return int(meta.get("rows", 0))

    # -- catalogue -----------------------------------------------------------------------

    def _series_dirs(self) -> Iterator[Path]:
        base = self.root / "ohlcv"
        if not base.is_dir():
            return
        for meta_path in sorted(base.glob(f"*/*/*/{META_NAME}")):
            yield meta_path.parent

    def list(self) -> list[CacheEntry]:
        """Describe every cached series: range, rows, gaps and zero-volume counts.

        Returns
        -------
        list of CacheEntry
            Sorted by venue, symbol, timeframe. Gaps are holes between consecutive
            cached bars; a gap inside a covered range is the venue's own (it answered
            with no candles there).

        Raises
        ------
        DataError
            If a series' metadata or data cannot be read.
        """
        entries: list[CacheEntry] = []
        for directory in self._series_dirs():
            meta = self._load_meta(directory)
            if meta is None:
                continue
            frame = self._read_parts(directory, meta)
            tf = int(meta["timeframe_seconds"])
            ts = frame["ts"].to_numpy()
            gaps = missing = 0
            if ts.shape[0] >= 2:
                diffs = np.diff(ts)
                holes = diffs[diffs > tf]
                gaps = int(holes.shape[0])
                missing = int(((holes + tf - 1) // tf - 1).sum()) if gaps else 0
            entries.append(CacheEntry(
                venue=meta["venue"], symbol=meta["symbol"], timeframe=meta["timeframe"],
                path=directory, rows=int(ts.shape[0]),
                first_ts=int(ts[0]) if ts.shape[0] else None,
                last_ts=int(ts[-1]) if ts.shape[0] else None,
                gaps=gaps, missing_bars=missing,
                zero_volume_bars=int(np.count_nonzero(frame["volume"].to_numpy() == 0)),
                covered=merge_ranges(meta["covered"]), conflicts=int(meta.get("conflicts", 0)),
                fetched_at=meta.get("fetched_at"), venue_symbol=meta.get("venue_symbol"),
                source=meta.get("source")))
        return entries
