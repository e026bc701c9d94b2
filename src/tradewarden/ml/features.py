"""The universe panel, causal features, forward-return labels and the feature-row hash.

Conventions
-----------
- **Time.** ``ts`` is the NYSE session *date label* of :mod:`tradewarden.data.equities`:
  the session date at 00:00 UTC in epoch seconds (``days since 1970-01-01 * 86400``).
  The bar it labels closes at 16:00 America/New_York that day; features "as of ``ts``"
  use that session's close and earlier ones. (The ledger's ``ml_predictions.as_of_ts``
  holds the session's close instead; :func:`tradewarden.ml.predict.session_label`
  converts.)
- **Days are sessions.** Windows and the label horizon count bars of the panel (NYSE
  sessions), not calendar days.
- **Prices** are split- and dividend-adjusted US dollars per share (the vendor's
  adjusted close; :func:`~tradewarden.data.equities.load_equity_panel` with
  ``adjustment="split_dividend"``), so a split or a dividend is not a return; volume is
  shares on the same basis (dollar volume unchanged).
- **Causality.** The feature row at ``ts`` is a function of the bars at or before
  ``ts`` only (backward windows, TA-Lib's causal recursions). The recursive
  indicators (RSI, ATR, MACD) depend ever more weakly on all earlier history, so a
  panel cut at a different *start* gives slightly different values early on; bars
  *after* ``ts`` never change them (``tests/ml/test_features.py`` replaces them with
  noise).
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from tradewarden.data.errors import DataError
from tradewarden.strategy import indicators as ind

__all__ = ["FEATURES", "PANEL_COLUMNS", "compute_features", "data_hash", "feature_hash",
           "forward_returns", "load_universe", "panel_from_bars"]

#: Columns of the long OHLCV panel :func:`load_universe` returns, in order.
PANEL_COLUMNS: tuple[str, ...] = ("ts", "symbol", "open", "high", "low", "close", "volume")

#: Feature names, in the column order of :func:`compute_features` (and of the bytes
#: :func:`feature_hash` reads). Windows in sessions:
#:
#: ``ret_1``, ``ret_5``, ``ret_20``, ``ret_60``
#:     ``close[t] / close[t-w] - 1``.
#: ``vol_20``, ``vol_60``
#:     sample standard deviation (ddof 1) of daily log returns over the last ``w``
#:     sessions (daily, not annualised).
#: ``mom_120_20``
#:     momentum skipping the last month: ``close[t-20] / close[t-120] - 1``
#:     (Jegadeesh and Titman, J. Finance 48(1), 1993, with a 6-month look-back).
#: ``volume_ratio_20``
#:     ``volume[t]`` / mean volume of the previous 20 sessions
#:     (:func:`~tradewarden.strategy.indicators.volume_ratio`).
#: ``dist_sma_20``, ``dist_sma_50``
#:     ``close[t] / SMA_w(close)[t] - 1``.
#: ``rsi_14``
#:     Wilder's RSI over 14 sessions, 0-100 (TA-Lib).
#: ``atr_14_rel``
#:     Wilder's ATR(14) / close (TA-Lib), a fraction of the price.
#: ``macd_hist_rel``
#:     MACD(12, 26, 9) histogram / close (TA-Lib; Appel 1979).
FEATURES: tuple[str, ...] = ("ret_1", "ret_5", "ret_20", "ret_60", "vol_20", "vol_60",
                             "mom_120_20", "volume_ratio_20", "dist_sma_20", "dist_sma_50",
                             "rsi_14", "atr_14_rel", "macd_hist_rel")

#: Sessions of history before every feature is defined (``mom_120_20`` needs 120
#: earlier closes).
WARMUP_SESSIONS = 120

_DAY = 86_400


def panel_from_bars(bars: Mapping[str, Any]) -> pd.DataFrame:
    """Return the long OHLCV panel of daily bars keyed by symbol.

    Parameters
    ----------
    bars : mapping of str to DailyBars or BarSeries
        Anything with ``.series`` (a :class:`~tradewarden.domain.BarSeries`) or the
        series itself; ``ts`` date labels (00:00 UTC, epoch seconds).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`PANEL_COLUMNS` (``ts`` int64, ``symbol`` str, prices float64 USD
        per share, volume float64 shares), sorted by ``ts`` then ``symbol``, with a
        fresh RangeIndex.
    """
    frames = []
    for symbol, item in bars.items():
        s = getattr(item, "series", item)
        frames.append(pd.DataFrame({
            "ts": np.asarray(s.ts, dtype=np.int64), "symbol": str(symbol),
            "open": np.asarray(s.open, dtype=np.float64),
            "high": np.asarray(s.high, dtype=np.float64),
            "low": np.asarray(s.low, dtype=np.float64),
            "close": np.asarray(s.close, dtype=np.float64),
            "volume": np.asarray(s.volume, dtype=np.float64)}))
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=np.int64 if c == "ts" else
                                          (object if c == "symbol" else np.float64))
                             for c in PANEL_COLUMNS})
    panel = pd.concat(frames, ignore_index=True)
    return panel.sort_values(["ts", "symbol"], kind="stable").reset_index(drop=True)


def load_universe(settings: Any) -> pd.DataFrame:
    """Load the universe the ML pipeline trains and predicts on, as a long OHLCV panel.

    Parameters
    ----------
    settings : MlSettings
        ``data``: ``None`` for the bundled AlphaVantage panel (AAPL, JPM, MSFT, NVDA,
        XOM, 2012-2015, split- and dividend-adjusted), else a user's daily file
        (``.csv``, ``.csv.gz``, ``.parquet``; long format with a ``symbol`` column).
        A file with a split column (``split_coefficient``, ``Stock Splits``) is read
        as raw prices and adjusted like the bundled panel (to the adjusted close when
        it has one, else for splits); a file without one is taken as already adjusted
        (a high or low that misses the open or close by rounding, at most
        :data:`ROUNDING_TOLERANCE` relative, is snapped to it).
        ``universe``: tickers to keep (empty: every symbol of the data). The bundled
        adjusted-close panel (2020-2022) is not offered: it has no open, high, low or
        volume, which ``atr_14_rel`` and ``volume_ratio_20`` need.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`PANEL_COLUMNS`: ``ts`` the session date label (00:00 UTC, epoch
        seconds), prices USD per share, volume shares; sorted by ``ts``, ``symbol``.

    Raises
    ------
    DataError
        The file is missing or unreadable, lacks a column, has a bad row (file, row,
        field), a timestamp that is not a date, or lacks a requested symbol.
    """
    from tradewarden.data import equities

    wanted = [s.strip().upper() for s in settings.universe] or None
    if settings.data is None:
        return panel_from_bars(equities.load_equity_panel(
            None, wanted, adjustment="split_dividend"))
    columns = equities.daily_file_columns(settings.data)
    if "split" in columns:
        adjustment = "split_dividend" if "adj_close" in columns else "split"
        return panel_from_bars(equities.load_daily_file(settings.data, wanted,
                                                        adjustment=adjustment))
    return _adjusted_file(settings.data, wanted)


def _adjusted_file(path: str, wanted: list[str] | None) -> pd.DataFrame:
    """A daily OHLCV file without a split column: prices taken as already adjusted."""
    from tradewarden.data import read_ohlcv_file, validate_frame

    raw = read_ohlcv_file(path)
    if "symbol" not in raw.columns:
        from pathlib import Path
        raw = raw.assign(symbol=Path(path).name.split(".")[0].upper())
    sym = raw["symbol"].astype(str).str.strip().str.upper()
    held = list(dict.fromkeys(sym.tolist()))
    missing = [s for s in (wanted or []) if s not in held]
    if missing:
        raise DataError(path, f"no rows for symbol(s) {', '.join(missing)} (file holds "
                              f"{', '.join(held[:30])})")
    out = {}
    for symbol in wanted or held:
        rows = _snap_rounding(raw[(sym == symbol).to_numpy()])
        clean, _quality = validate_frame(rows, path, _DAY, symbol=symbol)
        ts = clean["ts"].to_numpy(dtype=np.int64)
        off = np.flatnonzero(ts % _DAY != 0)
        if off.size:
            raise DataError(path, "timestamp is not a date (00:00 UTC): daily bars carry "
                                  "session dates", row=int(rows.index[off[0]]),
                            field="timestamp")
        out[symbol] = pd.DataFrame({"ts": ts, "symbol": symbol,
                                    **{c: clean[c].to_numpy(dtype=np.float64)
                                       for c in ("open", "high", "low", "close", "volume")}})
    panel = pd.concat(list(out.values()), ignore_index=True)
    return panel.sort_values(["ts", "symbol"], kind="stable").reset_index(drop=True)


#: Relative gap below which an adjusted bar's high (low) under its open or close is
#: floating-point rounding of the adjustment (``62.98547571419999`` against
#: ``62.9854757142``), not a bad row.
ROUNDING_TOLERANCE = 1e-9


def _snap_rounding(rows: pd.DataFrame) -> pd.DataFrame:
    """Raise ``high`` to ``max(open, close)`` and lower ``low`` to ``min(open, close)``
    where they miss it by at most :data:`ROUNDING_TOLERANCE` (relative); anything else
    is left for validation to report with its row and field."""
    num = {c: pd.to_numeric(rows[c], errors="coerce") for c in ("open", "high", "low", "close")}
    top = np.fmax(num["open"].to_numpy(dtype=np.float64), num["close"].to_numpy(dtype=np.float64))
    bottom = np.fmin(num["open"].to_numpy(dtype=np.float64),
                     num["close"].to_numpy(dtype=np.float64))
    high = num["high"].to_numpy(dtype=np.float64)
    low = num["low"].to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        lift = (high < top) & (top - high <= ROUNDING_TOLERANCE * np.abs(top))
        drop = (low > bottom) & (low - bottom <= ROUNDING_TOLERANCE * np.abs(bottom))
    if not (lift.any() or drop.any()):
        return rows
    rows = rows.copy()
    if lift.any():
        rows["high"] = rows["high"].where(~lift, pd.Series(top, index=rows.index))
    if drop.any():
        rows["low"] = rows["low"].where(~drop, pd.Series(bottom, index=rows.index))
    return rows


def _check_panel(panel: pd.DataFrame) -> pd.DataFrame:
    """The panel sorted by symbol then ts; ValueError naming a missing column or a
    duplicate (ts, symbol)."""
    missing = [c for c in PANEL_COLUMNS if c not in panel.columns]
    if missing:
        raise ValueError(f"panel lacks column(s) {', '.join(missing)}; expected "
                         f"{', '.join(PANEL_COLUMNS)}")
    frame = panel.loc[:, list(PANEL_COLUMNS)].sort_values(["symbol", "ts"], kind="stable")
    dup = frame.duplicated(["symbol", "ts"])
    if dup.any():
        row = frame[dup].iloc[0]
        raise ValueError(f"panel has two rows for {row['symbol']} at ts {int(row['ts'])}")
    return frame


def _symbol_features(g: pd.DataFrame) -> dict[str, np.ndarray]:
    close = g["close"].to_numpy(dtype=np.float64)
    high = g["high"].to_numpy(dtype=np.float64)
    low = g["low"].to_numpy(dtype=np.float64)
    volume = g["volume"].to_numpy(dtype=np.float64)
    c = pd.Series(close)
    logret = np.log(c).diff()
    out: dict[str, np.ndarray] = {}
    for w in (1, 5, 20, 60):
        out[f"ret_{w}"] = (c / c.shift(w) - 1.0).to_numpy()
    for w in (20, 60):
        out[f"vol_{w}"] = logret.rolling(w, min_periods=w).std(ddof=1).to_numpy()
    out["mom_120_20"] = (c.shift(20) / c.shift(120) - 1.0).to_numpy()
    out["volume_ratio_20"] = ind.volume_ratio(volume, 20)
    for w in (20, 50):
        out[f"dist_sma_{w}"] = close / ind.sma(close, w) - 1.0
    n = close.shape[0]
    nan = np.full(n, np.nan)
    out["rsi_14"] = ind.rsi(close, 14) if n > 14 else nan
    out["atr_14_rel"] = ind.atr(high, low, close, 14) / close if n > 14 else nan
    out["macd_hist_rel"] = ind.macd(close)[2] / close if n > 33 else nan
    return out


def compute_features(panel: pd.DataFrame) -> pd.DataFrame:
    """Compute the causal features of every (ts, symbol) row of a panel.

    Parameters
    ----------
    panel : pandas.DataFrame
        Long OHLCV panel, columns :data:`PANEL_COLUMNS` (as :func:`load_universe`
        returns); any row order.

    Returns
    -------
    pandas.DataFrame
        Shape (rows of ``panel``, ``len(FEATURES)``), columns :data:`FEATURES` (float64,
        units in :data:`FEATURES`' notes), indexed by the MultiIndex (``ts``,
        ``symbol``) sorted by ``ts`` then ``symbol``. NaN during each feature's warm-up
        (up to :data:`WARMUP_SESSIONS` sessions of a symbol's history) and where an
        input is zero (e.g. no volume in the previous 20 sessions). Infinite values
        are returned as NaN.

    Raises
    ------
    ValueError
        A missing column or two rows for one (ts, symbol).

    Notes
    -----
    The row at ``ts`` uses bars at or before ``ts`` only; see the module notes.
    """
    frame = _check_panel(panel)
    parts = []
    for symbol, g in frame.groupby("symbol", sort=True):
        feats = pd.DataFrame(_symbol_features(g), columns=list(FEATURES))
        feats.insert(0, "symbol", symbol)
        feats.insert(0, "ts", g["ts"].to_numpy(dtype=np.int64))
        parts.append(feats)
    if not parts:
        empty = pd.DataFrame(columns=list(FEATURES), dtype=np.float64)
        empty.index = pd.MultiIndex.from_arrays([[], []], names=["ts", "symbol"])
        return empty
    out = pd.concat(parts, ignore_index=True).sort_values(["ts", "symbol"], kind="stable")
    out = out.set_index(["ts", "symbol"])
    values = out.to_numpy(dtype=np.float64, copy=True)
    values[~np.isfinite(values)] = np.nan
    return pd.DataFrame(values, index=out.index, columns=list(FEATURES))


def forward_returns(panel: pd.DataFrame, horizon_days: int) -> pd.Series:
    """Return the label: each symbol's return over the next ``horizon_days`` sessions.

    Parameters
    ----------
    panel : pandas.DataFrame
        Long OHLCV panel, columns :data:`PANEL_COLUMNS`.
    horizon_days : int
        ``h``, sessions (bars of the symbol), >= 1.

    Returns
    -------
    pandas.Series
        ``close[t+h] / close[t] - 1`` (a fraction; adjusted closes, so dividends are
        included), named ``fwd_ret_<h>``, indexed by (``ts``, ``symbol``) like
        :func:`compute_features`; NaN for the last ``h`` bars of each symbol, whose
        future is not in the panel.

    Raises
    ------
    ValueError
        ``horizon_days`` below 1, a missing column, or duplicate rows.
    """
    if isinstance(horizon_days, bool) or not isinstance(horizon_days, (int, np.integer)) \
            or horizon_days < 1:
        raise ValueError(f"horizon_days {horizon_days!r}: give a whole number of sessions >= 1")
    frame = _check_panel(panel)
    close = frame["close"].astype(np.float64)
    future = close.groupby(frame["symbol"].to_numpy(), sort=False).shift(-int(horizon_days))
    label = pd.Series((future / close - 1.0).to_numpy(),
                      index=pd.MultiIndex.from_arrays([frame["ts"].to_numpy(dtype=np.int64),
                                                       frame["symbol"].to_numpy()],
                                                      names=["ts", "symbol"]),
                      name=f"fwd_ret_{int(horizon_days)}")
    return label.sort_index(level=["ts", "symbol"], sort_remaining=False)


def _canonical(value: Any) -> float:
    x = float(value)
    if math.isnan(x):
        return math.nan      # one NaN bit pattern (0x7ff8000000000000)
    return 0.0 if x == 0.0 else x   # -0.0 and 0.0 hash alike


def feature_hash(values: Iterable[Any] | Mapping[str, Any] | pd.Series) -> str:
    """Return the SHA-256 of one row's feature values, stable across runs and machines.

    Parameters
    ----------
    values : iterable of float, mapping or pandas.Series
        The row's values in :data:`FEATURES` order. A mapping (or a Series indexed by
        name) whose keys are :data:`FEATURES` is read in that order; other keys are
        an error.

    Returns
    -------
    str
        64 lowercase hex digits: SHA-256 of the byte string ``b"tw-ml-features-v1\\n"``
        followed by each value as an IEEE 754 binary64, big-endian (``struct`` format
        ``">d"``), in order. NaN is written as the one pattern ``0x7ff8000000000000``
        and -0.0 as 0.0, so equal rows always hash alike. Names are not hashed: the
        order is the contract.

    Raises
    ------
    ValueError
        A value that is not a number, or a mapping whose keys are not :data:`FEATURES`.
    """
    if isinstance(values, pd.Series) and not isinstance(values.index, pd.RangeIndex):
        values = values.to_dict()
    if isinstance(values, Mapping):
        if set(values) != set(FEATURES):
            extra = sorted(set(values) - set(FEATURES))
            lack = [f for f in FEATURES if f not in values]
            raise ValueError(f"feature row keys differ from FEATURES (missing: "
                             f"{', '.join(lack) or 'none'}; unknown: {', '.join(extra) or 'none'})")
        values = [values[f] for f in FEATURES]
    try:
        row = [_canonical(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(f"feature values must be numbers, got {values!r}") from None
    digest = hashlib.sha256(b"tw-ml-features-v1\n")
    digest.update(struct.pack(f">{len(row)}d", *row))
    return digest.hexdigest()


def data_hash(panel: pd.DataFrame) -> str:
    """Return the SHA-256 of a panel's bars: the fingerprint of the data a model saw.

    Parameters
    ----------
    panel : pandas.DataFrame
        Long OHLCV panel, columns :data:`PANEL_COLUMNS`.

    Returns
    -------
    str
        64 hex digits: SHA-256 of ``b"tw-ml-panel-v2\n"`` then, for each symbol in
        sorted order, its UTF-8 name, a newline and its row count as a big-endian
        int64, then its rows in ``ts`` order, each ``ts`` as a big-endian int64 and
        open, high, low, close, volume as big-endian binary64 (NaN canonical, -0.0 as
        0.0). Independent of row order and of other columns.

    Raises
    ------
    ValueError
        A missing column or duplicate rows.
    """
    frame = _check_panel(panel)
    digest = hashlib.sha256(b"tw-ml-panel-v2\n")
    row = np.dtype([("ts", ">i8"), ("open", ">f8"), ("high", ">f8"), ("low", ">f8"),
                    ("close", ">f8"), ("volume", ">f8")])
    for symbol, g in frame.groupby("symbol", sort=True):
        block = np.empty(len(g), dtype=row)
        block["ts"] = g["ts"].to_numpy(dtype=np.int64)
        for col in ("open", "high", "low", "close", "volume"):
            x = g[col].to_numpy(dtype=np.float64)
            block[col] = np.where(np.isnan(x), np.nan, x) + 0.0   # canonical NaN, -0.0 -> 0.0
        digest.update(str(symbol).encode("utf-8") + b"\n" + struct.pack(">q", len(g)))
        digest.update(block.tobytes())
    return digest.hexdigest()
