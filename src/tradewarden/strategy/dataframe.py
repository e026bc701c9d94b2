"""A pandas-friendly strategy base class, for the habits Freqtrade users bring.

Write one method, :meth:`DataFrameStrategy.populate`: it receives the bars as a
DataFrame and returns it with signal columns added. :meth:`~DataFrameStrategy.prepare`
converts that result into the vectorised :class:`~tradewarden.strategy.SignalFrame`
the engine runs on, checking every column on the way, so a strategy written this way
runs through the same engine path, ledger and reports as the built-ins.

The frame ``populate`` receives
    Index: a UTC :class:`pandas.DatetimeIndex` named ``time`` (bar open times).
    Columns: ``open``, ``high``, ``low``, ``close`` (quote currency) and ``volume``
    (base units), float64. ``df.attrs`` holds ``symbol`` and ``timeframe``. It covers
    the engine's chunk plus :attr:`~DataFrameStrategy.warmup_bars` bars of history.

The frame ``populate`` returns: the same rows and index, plus
    ``enter_long`` (bool, required)
        Enter a long position at this bar's close when flat (market order, filled at
        the next bar's open).
    ``exit_long`` (bool, required)
        Close the position when one is open.
    ``stop_loss``, ``take_profit`` (float, optional)
        Protective levels in quote currency sent with an entry at this bar (NaN: none).
    ``enter_reason``, ``exit_reason`` (str, optional)
        Per-bar reason labels recorded with the decision (default ``enter_long`` /
        ``exit_long``); at most 100 distinct labels per column.
    the columns named in :attr:`~DataFrameStrategy.record` (numeric)
        Recorded with every decision in the ledger's ``x1..x4``.

Holds while flat are recorded as ``warmup`` while any recorded column is NaN, else
``no_entry``; holds while a position is open as ``holding``.
"""

from __future__ import annotations

import inspect
import traceback
from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from tradewarden.domain import BarSeries
from tradewarden.strategy.base import WARMUP, SignalFrame, Strategy, StrategyParams
from tradewarden.strategy.errors import StrategyConfigError, StrategyOutputError

#: Columns of the frame ``populate()`` receives, in order.
OHLCV = ("open", "high", "low", "close", "volume")
#: Signal columns ``populate()`` must add (bool).
REQUIRED = ("enter_long", "exit_long")
#: Optional price-level columns (float, quote currency).
LEVELS = ("stop_loss", "take_profit")
#: Optional reason columns (str) and the label used where they are empty.
REASONS = {"enter_reason": "enter_long", "exit_reason": "exit_long"}
#: Hold reason while flat after the warm-up.
NO_ENTRY = "no_entry"
MAX_RECORDED = 4
MAX_REASON_LABELS = 100


class DataFrameStrategy(Strategy):
    """Base class for strategies written as one pandas method, :meth:`populate`.

    Set these class attributes:

    ``Params``
        A :class:`StrategyParams` subclass (pydantic); ``self.params`` holds the
        validated values, ``-p key=value`` sets them.
    ``record``
        Up to four numeric columns of the populated frame recorded with every
        decision (the ledger's ``x1..x4``, named in ``runs.input_names``).
    ``warmup_bars``
        Bars of history the engine gives ``populate`` before each chunk (default
        1000): at least the longest window, and about 40 times the longest
        recursive period (EMA, RSI, ATR; twice that for ADX) so that where a chunk
        starts changes no value. Override the :attr:`warmup` property instead when
        it depends on parameters.
    ``name``
        Optional; defaults to the class name.

    Notes
    -----
    The engine calls :meth:`prepare`, which calls :meth:`populate` once per chunk and
    converts the result with :meth:`to_signal_frame`. ``warden check-lookahead``
    checks every returned column for look-ahead. The NumPy contract
    (:class:`Strategy`) stays available and is faster.
    """

    record: ClassVar[tuple[str, ...]] = ()
    warmup_bars: ClassVar[int] = 1000
    Params: ClassVar[type[StrategyParams]] = StrategyParams

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        rec = cls.__dict__.get("record")
        if isinstance(rec, str):
            rec = (rec,)
        if isinstance(rec, (list, tuple)):
            cls.record = tuple(rec)
        cls.input_names = tuple(cls.record) if isinstance(cls.record, tuple) else ()

    def __init__(self, params: StrategyParams | None = None) -> None:
        super().__init__(params)
        self._check_class()

    def _check_class(self) -> None:
        rec = type(self).record
        if not isinstance(rec, tuple) or not all(isinstance(c, str) and c for c in rec):
            raise StrategyConfigError(
                f"strategy {self.name!r}: record must be a tuple of column names, got {rec!r}")
        if len(rec) > MAX_RECORDED:
            raise StrategyConfigError(
                f"strategy {self.name!r}: record names {len(rec)} columns ({', '.join(rec)}); "
                f"at most {MAX_RECORDED} are recorded with each decision (the ledger's x1..x4)")
        if len(set(rec)) != len(rec):
            raise StrategyConfigError(f"strategy {self.name!r}: record names a column twice: {', '.join(rec)}")
        bad = [c for c in rec if c in REQUIRED or c in REASONS]
        if bad:
            raise StrategyConfigError(
                f"strategy {self.name!r}: record column {bad[0]!r} is a signal or reason column; "
                "record numeric indicator columns")
        w = self.warmup
        if isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 0:
            raise StrategyConfigError(
                f"strategy {self.name!r}: warmup must be a whole number of bars >= 0, got {w!r}")

    @property
    def warmup(self) -> int:
        """Bars of history before each chunk: :attr:`warmup_bars` unless overridden."""
        return type(self).warmup_bars

    @abstractmethod
    def populate(self, df: pd.DataFrame) -> pd.DataFrame:
        """Add indicator and signal columns to the bars and return the frame.

        Parameters
        ----------
        df : pandas.DataFrame, shape (n, 5)
            ``open``, ``high``, ``low``, ``close`` (quote currency), ``volume`` (base
            units), float64, indexed by bar open time (UTC ``DatetimeIndex`` named
            ``time``). A fresh copy: modify it in place or return a new frame.

        Returns
        -------
        pandas.DataFrame, shape (n, k)
            The same index, with bool ``enter_long`` and ``exit_long``, optional float
            ``stop_loss`` / ``take_profit`` (quote currency), optional str
            ``enter_reason`` / ``exit_reason``, and the :attr:`record` columns. The
            value at bar ``t`` may use rows ``<= t`` only (no ``shift(-1)``, no
            whole-column statistics).
        """

    # ------------------------------------------------------------------ conversion
    def bars_frame(self, bars: BarSeries) -> pd.DataFrame:
        """Return the OHLCV DataFrame :meth:`populate` receives for ``bars``.

        Parameters
        ----------
        bars : BarSeries
            One symbol's bars.

        Returns
        -------
        pandas.DataFrame, shape (len(bars), 5)
        """
        index = pd.DatetimeIndex(pd.to_datetime(bars.ts, unit="s", utc=True), name="time")
        df = pd.DataFrame({c: np.array(getattr(bars, c), dtype=np.float64) for c in OHLCV}, index=index)
        df.attrs.update(symbol=bars.symbol, timeframe=bars.timeframe)
        return df

    def populated(self, bars: BarSeries) -> pd.DataFrame:
        """Run :meth:`populate` on ``bars`` and check the shape of its result.

        Parameters
        ----------
        bars : BarSeries

        Returns
        -------
        pandas.DataFrame
            What :meth:`populate` returned: same length and index as ``bars``.

        Raises
        ------
        StrategyOutputError
            ``populate`` raised (the message names the exception and the line in the
            strategy's file), did not return a DataFrame, or changed the rows.
        """
        df = self.bars_frame(bars)
        index = df.index
        try:
            out = self.populate(df)
        except StrategyConfigError:
            raise
        except Exception as exc:
            raise StrategyOutputError(
                f"strategy {self.name!r}: populate() raised {type(exc).__name__}: {exc}"
                f"{self._where(exc)}") from exc
        if not isinstance(out, pd.DataFrame):
            raise StrategyOutputError(
                f"strategy {self.name!r}: populate() returned {type(out).__name__}, expected the "
                "DataFrame it was given with signal columns added")
        if len(out) != len(index):
            raise StrategyOutputError(
                f"strategy {self.name!r}: populate() returned {len(out)} rows for {len(index)} bars; "
                "return every row it was given (no dropna, filtering or resampling)")
        if not out.index.equals(index):
            raise StrategyOutputError(
                f"strategy {self.name!r}: populate() changed the index (the bar open times); "
                "keep the index it was given (no reset_index, sorting or re-indexing)")
        if not out.columns.is_unique:
            dup = out.columns[out.columns.duplicated()][0]
            raise StrategyOutputError(f"strategy {self.name!r}: populate() returned column {dup!r} twice")
        return out

    def _where(self, exc: BaseException) -> str:
        try:
            path = inspect.getsourcefile(type(self))
        except TypeError:
            return ""
        line = None
        for fr in traceback.extract_tb(exc.__traceback__):
            if fr.filename == path:
                line = fr.lineno
        return f" ({path} line {line})" if line is not None else ""

    def to_signal_frame(self, out: pd.DataFrame) -> SignalFrame:
        """Convert a populated frame into the engine's :class:`SignalFrame`.

        Parameters
        ----------
        out : pandas.DataFrame
            Result of :meth:`populated`.

        Returns
        -------
        SignalFrame

        Raises
        ------
        StrategyOutputError
            A required column is missing; ``enter_long``/``exit_long`` not bool or
            with missing values; ``stop_loss``/``take_profit`` or a recorded column
            not numeric, or infinite; a reason column that is not text or has more
            than 100 distinct labels. The message names the strategy and the column.
        """
        n = len(out)
        enter = self._bool(out, "enter_long")
        exit_ = self._bool(out, "exit_long")
        levels = {c: self._float(out, c, required=False) for c in LEVELS}
        inputs = {c: self._float(out, c, required=True, recorded=True) for c in self.record}
        reasons: list[str] = [WARMUP, NO_ENTRY]
        codes = {}
        for col, default in REASONS.items():
            mask = enter if col == "enter_reason" else exit_
            codes[col] = self._reason_codes(out, col, default, mask, reasons)
        if len(reasons) > np.iinfo(np.int8).max:
            raise StrategyOutputError(
                f"strategy {self.name!r}: {len(reasons) - 2} distinct reason labels; at most "
                f"{np.iinfo(np.int8).max - 2} (record numbers in record columns, not in reasons)")
        warm = np.zeros(n, dtype=bool)
        for v in inputs.values():
            warm |= np.isnan(v)
        flat = np.where(warm, 0, 1).astype(np.int8)
        flat[enter] = codes["enter_reason"][enter]
        return SignalFrame(enter, exit_, flat, tuple(reasons),
                           levels["stop_loss"], levels["take_profit"], inputs,
                           entry_reason=REASONS["enter_reason"], exit_reason=REASONS["exit_reason"],
                           hold_reason="holding", entry_codes=codes["enter_reason"],
                           exit_codes=codes["exit_reason"])

    def prepare(self, bars: BarSeries) -> SignalFrame:
        """Run :meth:`populate` on ``bars`` and convert the result (see the class notes).

        Parameters
        ----------
        bars : BarSeries

        Returns
        -------
        SignalFrame

        Raises
        ------
        StrategyOutputError
            See :meth:`populated` and :meth:`to_signal_frame`.
        """
        return self.to_signal_frame(self.populated(bars))

    # ------------------------------------------------------------------ column checks
    def _column(self, out: pd.DataFrame, col: str, what: str) -> pd.Series:
        if col not in out.columns:
            raise StrategyOutputError(
                f"strategy {self.name!r}: populate() returned no {col!r} column ({what})")
        return out[col]

    def _bool(self, out: pd.DataFrame, col: str) -> np.ndarray:
        s = self._column(out, col, "required: enter_long and exit_long, bool")
        if pd.api.types.is_bool_dtype(s.dtype):
            if s.isna().any():
                raise StrategyOutputError(
                    f"strategy {self.name!r}: column {col!r} has missing values at "
                    f"{_first_time(out, s.isna().to_numpy())}; fill them (e.g. .fillna(False))")
            return s.to_numpy(dtype=bool, copy=True)
        raise StrategyOutputError(
            f"strategy {self.name!r}: column {col!r} has dtype {s.dtype}, expected bool; assign a "
            f"condition (df[{col!r}] = df['close'] > df['sma']), not df.loc[cond, {col!r}] = 1")

    def _float(self, out: pd.DataFrame, col: str, *, required: bool, recorded: bool = False) -> np.ndarray:
        if col not in out.columns and not required:
            return np.full(len(out), np.nan)
        s = self._column(out, col, "named in record" if recorded else "")
        if not (pd.api.types.is_numeric_dtype(s.dtype)
                and (recorded or not pd.api.types.is_bool_dtype(s.dtype))):
            kind = "recorded column" if recorded else "column"
            raise StrategyOutputError(
                f"strategy {self.name!r}: {kind} {col!r} has dtype {s.dtype}, expected numbers")
        v = s.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
        if np.isinf(v).any():
            raise StrategyOutputError(
                f"strategy {self.name!r}: column {col!r} is infinite at {_first_time(out, np.isinf(v))}")
        return v

    def _reason_codes(self, out: pd.DataFrame, col: str, default: str, mask: np.ndarray,
                      reasons: list[str]) -> np.ndarray:
        """Reason index per bar (read where ``mask``); new labels are appended to ``reasons``.

        Only the signal bars' values are read, so a reason column costs little however
        long the frame is.
        """
        if default not in reasons:
            reasons.append(default)
        codes = np.full(len(out), reasons.index(default), dtype=np.int16)
        if col not in out.columns or not mask.any():
            return codes
        idx = np.flatnonzero(mask)
        vals = out[col].iloc[idx].to_numpy(dtype=object)
        missing = pd.isna(vals)
        text = np.fromiter((isinstance(v, str) for v in vals), bool, len(vals))
        bad = ~missing & ~text
        if bad.any():
            i = int(np.argmax(bad))
            raise StrategyOutputError(
                f"strategy {self.name!r}: column {col!r} holds {type(vals[i]).__name__} {vals[i]!r} "
                f"at {out.index[idx[i]]}; reasons are text labels")
        use = text & np.fromiter((isinstance(v, str) and v != "" for v in vals), bool, len(vals))
        if not use.any():
            return codes
        found, labels = pd.factorize(vals[use])
        if len(labels) > MAX_REASON_LABELS:
            raise StrategyOutputError(
                f"strategy {self.name!r}: column {col!r} has {len(labels)} distinct labels at signal "
                f"bars; at most {MAX_REASON_LABELS} (put numbers in record columns, not in reasons)")
        for label in labels:
            if label not in reasons:
                reasons.append(label)
        lut = np.array([reasons.index(label) for label in labels], dtype=np.int16)
        codes[idx[use]] = lut[found]
        return codes


def _first_time(out: pd.DataFrame, bad: np.ndarray) -> str:
    i = int(np.argmax(bad))
    return f"bar {i} ({out.index[i]})"
