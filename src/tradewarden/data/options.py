"""End-of-day option chains (iVolatility EOD layout) as a tidy DataFrame and OptionQuote values.

File layout
-----------
Gzip CSV (or plain CSV / Parquet) with a header row and these columns, one row per
contract per quote date (see ``bundled/PROVENANCE-equities.md``)::

    quote_date, underlying, underlying_price, option_symbol, root, expiration, strike,
    right, style, bid, ask, last, mid, volume, open_interest, iv, delta, gamma, vega,
    theta, rho, forward_price, iv_interpolated_flag

- ``quote_date``, ``expiration``: ISO dates (``2014-08-07``). Before 2015 the OCC
  symbol of a monthly option carries the Saturday after the third Friday; the
  ``expiration`` column gives that Saturday (AAPL file) or the Friday before it (SPX
  root in the SPX file). Both are accepted and kept as given: ``expiration`` and
  ``dte`` follow the column, ``occ_symbol`` keeps the symbol's own date (see
  :func:`~tradewarden.domain.options.occ_expiration_matches`).
- ``option_symbol``: OCC (OSI) symbol, root padding optional (``AAPL 140920C00095000``).
- ``strike``, ``bid``, ``ask``, ``mid``, ``last``, ``underlying_price``,
  ``forward_price``: dollars per share (index points for SPX); ``last`` and
  ``forward_price`` may be empty.
- ``volume``, ``open_interest``: contracts. ``iv`` and greeks: see
  :mod:`tradewarden.domain.options` for units. iVolatility writes ``iv = -1`` with
  every greek 0 where it solved no IV; those rows get NaN for ``iv`` and all five
  greeks (0 would be a false delta). ``iv_interpolated_flag``: ``*`` when the vendor
  interpolated the IV, else empty.
- The file has no contract multiplier; every contract gets the standard 100.

Every bad row raises :class:`~tradewarden.data.DataError` naming the file, the 1-based
data row (header excluded) and the field.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tradewarden.data.calendars import as_date
from tradewarden.data.equities import (
    _cell,
    _first_bad,
    _number_checks,
    _read_table,
    _resolve,
    _RowCheck,
)
from tradewarden.data.errors import DataError
from tradewarden.domain.instrument import to_decimal
from tradewarden.domain.options import (
    OptionContract,
    OptionFieldError,
    OptionQuote,
    format_occ_symbol,
    occ_expiration_matches,
    parse_occ_symbol,
)

__all__ = ["CHAIN_COLUMNS", "FRAME_COLUMNS", "OptionChain", "filter_option_chain",
           "load_option_chain"]

#: Columns of the iVolatility EOD chain layout, in file order.
CHAIN_COLUMNS: tuple[str, ...] = (
    "quote_date", "underlying", "underlying_price", "option_symbol", "root", "expiration",
    "strike", "right", "style", "bid", "ask", "last", "mid", "volume", "open_interest", "iv",
    "delta", "gamma", "vega", "theta", "rho", "forward_price", "iv_interpolated_flag",
)
#: Columns of :attr:`OptionChain.frame`, in order (index: ``row``, the source data row).
FRAME_COLUMNS: tuple[str, ...] = (
    "quote_date", "underlying", "root", "occ_symbol", "expiration", "dte", "strike", "right",
    "style", "bid", "ask", "mid", "last", "volume", "open_interest", "iv", "delta", "gamma",
    "vega", "theta", "rho", "underlying_price", "forward_price", "iv_interpolated",
)
_MULTIPLIER = 100
# iVolatility writes iv = -1 (with every greek 0) where it solved no implied volatility,
# e.g. 216 SPXPM rows of the 2011 SPX sample; read as "not available".
_NO_IV = -1.0


def _text(frame: pd.DataFrame, name: str) -> pd.Series:
    """A text column stripped, with missing cells as ``""``."""
    return frame[name].fillna("").astype("str").str.strip()


def _blank_to_nan(col: pd.Series) -> pd.Series:
    text = col.astype("str").str.strip()
    return col.where(col.notna() & text.ne(""))


def _dates(frame: pd.DataFrame, name: str) -> tuple[np.ndarray, list[_RowCheck]]:
    """Parse an ISO date column to ``datetime64[D]``; NaT where unusable."""
    text = _text(frame, name)
    parsed = pd.to_datetime(text.where(text.ne("")), format="ISO8601", errors="coerce")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    values = parsed.to_numpy(dtype="datetime64[ns]")
    missing = text.eq("").to_numpy(dtype=bool)
    bad = ~missing & np.isnat(values)
    timed = ~np.isnat(values) & (values != values.astype("datetime64[D]"))
    checks = [
        _RowCheck(name, missing, lambda i: "missing date"),
        _RowCheck(name, bad, lambda i: f"unparseable date {_cell(text, i)}"),
        _RowCheck(name, timed, lambda i: f"{_cell(text, i)} has a time of day; expected a date"),
    ]
    return values.astype("datetime64[D]"), checks


def _occ_parts(symbols: pd.Series) -> tuple[list[Any], np.ndarray, dict[int, str]]:
    """Parse every OCC symbol; returns parsed tuples (``None`` where bad) and the errors."""
    parsed: list[Any] = []
    errors: dict[int, str] = {}
    for i, text in enumerate(symbols.tolist()):
        try:
            parsed.append(parse_occ_symbol(text))
        except OptionFieldError as exc:
            parsed.append(None)
            errors[i] = exc.problem
    bad = np.zeros(len(parsed), dtype=bool)
    bad[list(errors)] = True
    return parsed, bad, errors


def _read_chain(path: Path, source: str) -> pd.DataFrame:
    raw = _read_table(path, source, CHAIN_COLUMNS, dtype=str, keep_default_na=False)
    n = len(raw)
    checks: list[_RowCheck] = []
    num: dict[str, np.ndarray] = {}

    def numbers(name: str, minimum: float | None = None, strict: bool = False,
                allow_missing: bool = False) -> None:
        frame = pd.DataFrame({name: _blank_to_nan(raw[name])}, index=raw.index)
        num[name], more = _number_checks(frame, name, minimum=minimum, strict=strict,
                                         allow_missing=allow_missing)
        checks.extend(more)

    def whole(name: str) -> None:
        numbers(name, 0.0)
        v = num[name]
        with np.errstate(invalid="ignore"):
            frac = np.isfinite(v) & (v != np.floor(v))
        checks.append(_RowCheck(name, frac, lambda i: f"{v[i]!r} is not a whole number"))

    def text_check(name: str, allowed: tuple[str, ...] | None = None) -> pd.Series:
        col = _text(raw, name)
        checks.append(_RowCheck(name, col.eq("").to_numpy(dtype=bool),
                                lambda i: f"missing {name}"))
        if allowed is not None:
            bad = col.ne("").to_numpy(dtype=bool) & ~col.isin(allowed).to_numpy(dtype=bool)
            checks.append(_RowCheck(name, bad, lambda i: f"{_cell(col, i)} is not one of "
                                                         f"{', '.join(allowed)}"))
        return col

    quote_date, more = _dates(raw, "quote_date")
    checks += more
    underlying = text_check("underlying")
    numbers("underlying_price", 0.0, strict=True)
    occ_text = text_check("option_symbol")
    occ, occ_bad, occ_errors = _occ_parts(occ_text)
    checks.append(_RowCheck("option_symbol", occ_bad & occ_text.ne("").to_numpy(dtype=bool),
                            lambda i: occ_errors[i]))
    root = text_check("root")
    expiration, more = _dates(raw, "expiration")
    checks += more
    numbers("strike", 0.0, strict=True)
    strike = num["strike"]
    with np.errstate(invalid="ignore"):
        thousandths = np.round(strike * 1000)
        fine = np.isfinite(strike) & (strike > 0) & (
            (np.abs(strike * 1000 - thousandths) > 1e-6) | (thousandths > 99_999_999))
    checks.append(_RowCheck("strike", fine, lambda i: f"{strike[i]!r} cannot be written in an "
                                                      "OCC symbol (at most 3 decimals, below "
                                                      "100000)"))
    right = text_check("right", ("C", "P"))
    style = text_check("style", ("american", "european"))
    for name in ("bid", "ask", "mid"):
        numbers(name, 0.0)
    numbers("last", 0.0, allow_missing=True)
    whole("volume")
    whole("open_interest")
    numbers("iv", allow_missing=True)
    iv = num["iv"]
    no_iv = iv == _NO_IV                    # vendor sentinel: no IV solved, greeks 0
    with np.errstate(invalid="ignore"):
        negative_iv = ~no_iv & (iv < 0)
    checks.append(_RowCheck("iv", negative_iv, lambda i: f"{iv[i]!r} is negative (only "
                                                         f"{_NO_IV!r}, 'not computed', is "
                                                         "allowed)"))
    for name in ("delta", "theta", "rho"):
        numbers(name, allow_missing=True)
    for name in ("gamma", "vega"):
        numbers(name, 0.0, allow_missing=True)
    for name in ("iv", "delta", "gamma", "vega", "theta", "rho"):
        num[name] = np.where(no_iv, np.nan, num[name])
    numbers("forward_price", 0.0, strict=True, allow_missing=True)
    flag = _text(raw, "iv_interpolated_flag")
    checks.append(_RowCheck("iv_interpolated_flag", ~flag.isin(("", "*")).to_numpy(dtype=bool),
                            lambda i: f"{_cell(flag, i)} is not '*' or empty"))

    # Cross-field checks, after every single-field check of the same row.
    with np.errstate(invalid="ignore"):
        early = ~np.isnat(expiration) & ~np.isnat(quote_date) & (expiration < quote_date)
        bid, ask, mid = num["bid"], num["ask"], num["mid"]
        crossed = bid > ask
        outside = ~crossed & ((mid < bid) | (mid > ask))
        delta = num["delta"]
        is_call = right.eq("C").to_numpy(dtype=bool)
        is_put = right.eq("P").to_numpy(dtype=bool)
        bad_delta = (is_call & ((delta < 0) | (delta > 1))) | (is_put & ((delta < -1) | (delta > 0)))
    checks += [
        _RowCheck("expiration", early, lambda i: f"{expiration[i]} is before the quote date "
                                                 f"{quote_date[i]}"),
        _RowCheck("bid", crossed, lambda i: f"bid {bid[i]!r} is above the ask {ask[i]!r}"),
        _RowCheck("mid", outside, lambda i: f"{mid[i]!r} is outside [bid, ask] = "
                                            f"[{bid[i]!r}, {ask[i]!r}]"),
        _RowCheck("delta", bad_delta, lambda i: f"{delta[i]!r} outside "
                                                f"{'[0, 1] for a call' if is_call[i] else '[-1, 0] for a put'}"),
    ]
    mismatch = np.zeros(n, dtype=bool)
    why: dict[int, str] = {}
    roots, rights, exp_list = root.tolist(), right.tolist(), expiration.tolist()
    for i, parts in enumerate(occ):
        if parts is None:
            continue
        for name, have, want in (
                ("root", parts.root, roots[i]), ("right", parts.right, rights[i]),
                ("expiration", parts.expiration, exp_list[i]),
                ("strike", round(parts.strike * 1000),
                 int(thousandths[i]) if np.isfinite(thousandths[i]) else None)):
            if want in ("", None) or have == want or (
                    name == "expiration" and occ_expiration_matches(have, want)):
                continue
            shown = f"{want / 1000:g}" if name == "strike" else want
            mismatch[i] = True
            why[i] = f"{occ_text.iloc[i]!r} has a different {name} than the row's {shown}"
            break
    checks.append(_RowCheck("option_symbol", mismatch, lambda i: why[i]))
    keys = pd.Series(quote_date.astype("datetime64[D]").astype("str")) + "|" + pd.Series(
        [("" if p is None else format_occ_symbol(*p)) for p in occ])
    dup = keys.duplicated().to_numpy() & ~occ_bad
    first_seen = {k: raw.index[j] for j, k in reversed(list(enumerate(keys.tolist())))}
    checks.append(_RowCheck("option_symbol", dup, lambda i: f"duplicate contract "
                                                            f"{occ_text.iloc[i]!r} on "
                                                            f"{quote_date[i]} (same as row "
                                                            f"{first_seen[keys.iloc[i]]})"))

    first = _first_bad(checks, n)
    if first is not None:
        i, chk = first
        raise DataError(source, chk.describe(i), row=int(raw.index[i]), field=chk.field)

    frame = pd.DataFrame({
        "quote_date": quote_date.astype("datetime64[ns]"),
        "underlying": underlying.to_numpy(dtype=object),
        "root": root.to_numpy(dtype=object),
        "occ_symbol": [format_occ_symbol(*p) for p in occ],
        "expiration": expiration.astype("datetime64[ns]"),
        "dte": (expiration - quote_date).astype(np.int64),
        "strike": strike,
        "right": right.to_numpy(dtype=object),
        "style": style.to_numpy(dtype=object),
        **{k: num[k] for k in ("bid", "ask", "mid", "last")},
        "volume": num["volume"].astype(np.int64),
        "open_interest": num["open_interest"].astype(np.int64),
        **{k: num[k] for k in ("iv", "delta", "gamma", "vega", "theta", "rho",
                               "underlying_price", "forward_price")},
        "iv_interpolated": flag.eq("*").to_numpy(dtype=bool),
    }, index=raw.index)
    for name in ("underlying", "root", "occ_symbol", "right", "style"):
        frame[name] = frame[name].astype("str")
    return frame


def _date_range(value: object, name: str) -> tuple[date, date] | None:
    if value is None:
        return None
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be a date or a (first, last) pair, got {value!r}")
        first, last = as_date(value[0], name), as_date(value[1], name)
        if first > last:
            raise ValueError(f"{name} range {first}..{last} is empty: first is after last")
        return first, last
    d = as_date(value, name)
    return d, d


def filter_option_chain(frame: pd.DataFrame, *, quote_date: object = None,
                        expiration: object = None, right: str | None = None,
                        strike_min: float | None = None, strike_max: float | None = None,
                        underlying: str | None = None) -> pd.DataFrame:
    """Select rows of a tidy chain frame (as :attr:`OptionChain.frame`).

    Parameters
    ----------
    frame : pandas.DataFrame
        Columns as :data:`FRAME_COLUMNS`.
    quote_date, expiration : date, str or (first, last) pair, optional
        One date, or an inclusive range.
    right : {"C", "P"}, optional
        Calls or puts (case-insensitive).
    strike_min, strike_max : float, optional
        Inclusive strike bounds, dollars.
    underlying : str, optional
        Underlying ticker (case-insensitive).

    Returns
    -------
    pandas.DataFrame
        The matching rows, same columns and ``row`` index.

    Raises
    ------
    ValueError
        Unparseable dates, an empty range, ``right`` not C/P, ``strike_min`` above
        ``strike_max``.
    """
    keep = np.ones(len(frame), dtype=bool)
    for name, value in (("quote_date", quote_date), ("expiration", expiration)):
        bounds = _date_range(value, name)
        if bounds is not None:
            col = frame[name].to_numpy(dtype="datetime64[D]")
            keep &= (col >= np.datetime64(bounds[0])) & (col <= np.datetime64(bounds[1]))
    if right is not None:
        wanted = str(right).strip().upper()
        if wanted not in ("C", "P"):
            raise ValueError(f"invalid right {right!r}: expected 'C' or 'P'")
        keep &= frame["right"].to_numpy() == wanted
    if strike_min is not None and strike_max is not None and strike_min > strike_max:
        raise ValueError(f"strike_min {strike_min} is above strike_max {strike_max}")
    if strike_min is not None:
        keep &= frame["strike"].to_numpy() >= float(strike_min)
    if strike_max is not None:
        keep &= frame["strike"].to_numpy() <= float(strike_max)
    if underlying is not None:
        keep &= frame["underlying"].str.upper().to_numpy() == underlying.strip().upper()
    return frame[keep]


def _decimal_or_none(x: float) -> Any:
    return None if np.isnan(x) else to_decimal(float(x))


@dataclass
class OptionChain:
    """An end-of-day option chain: a validated tidy frame, convertible to OptionQuote values.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per contract and quote date, columns :data:`FRAME_COLUMNS`, index ``row``
        (the 1-based data row in the source file). ``quote_date``/``expiration`` are
        ``datetime64`` dates; ``dte`` = calendar days to expiration; ``occ_symbol`` is the
        21-character OCC key; prices are float64 dollars per share; ``last`` and
        ``forward_price`` are NaN when empty in the file.
    source : str
        File path as given, or ``bundled:<file name>``.
    """

    frame: pd.DataFrame
    source: str

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def quote_dates(self) -> list[date]:
        """Distinct quote dates, ascending."""
        return [pd.Timestamp(d).date() for d in np.unique(self.frame["quote_date"].to_numpy())]

    @property
    def expirations(self) -> list[date]:
        """Distinct expirations, ascending."""
        return [pd.Timestamp(d).date() for d in np.unique(self.frame["expiration"].to_numpy())]

    def filter(self, **criteria: Any) -> OptionChain:
        """Return the rows matching ``criteria``; see :func:`filter_option_chain`."""
        return OptionChain(filter_option_chain(self.frame, **criteria), self.source)

    def quotes(self) -> list[OptionQuote]:
        """Convert every row to an :class:`~tradewarden.domain.options.OptionQuote`.

        Prices become ``Decimal`` through their shortest float repr (``27.86`` ->
        ``Decimal('27.86')``); ``last``/``forward_price`` NaN -> ``None``; multiplier 100.

        Raises
        ------
        DataError
            If a row breaks an OptionContract/OptionQuote invariant the file checks
            did not cover (names the row and field).
        """
        out: list[OptionQuote] = []
        f = self.frame
        cols = {name: f[name].tolist() for name in f.columns}
        for k, row in enumerate(f.index.tolist()):
            try:
                contract = OptionContract(
                    underlying=cols["underlying"][k], expiration=cols["expiration"][k].date(),
                    strike=to_decimal(cols["strike"][k]), right=cols["right"][k],
                    style=cols["style"][k], occ_symbol=cols["occ_symbol"][k],
                    root=cols["root"][k], multiplier=_MULTIPLIER)
                out.append(OptionQuote(
                    contract=contract, quote_date=cols["quote_date"][k].date(),
                    bid=to_decimal(cols["bid"][k]), ask=to_decimal(cols["ask"][k]),
                    mid=to_decimal(cols["mid"][k]), last=_decimal_or_none(cols["last"][k]),
                    volume=int(cols["volume"][k]), open_interest=int(cols["open_interest"][k]),
                    iv=cols["iv"][k], delta=cols["delta"][k], gamma=cols["gamma"][k],
                    vega=cols["vega"][k], theta=cols["theta"][k], rho=cols["rho"][k],
                    underlying_price=to_decimal(cols["underlying_price"][k]),
                    forward_price=_decimal_or_none(cols["forward_price"][k]),
                    iv_interpolated=bool(cols["iv_interpolated"][k])))
            except OptionFieldError as exc:
                raise DataError(self.source, exc.problem, row=int(row), field=exc.field) from None
        return out


def load_option_chain(path: str | os.PathLike[str] | None = None, *, quote_date: object = None,
                      expiration: object = None, right: str | None = None,
                      strike_min: float | None = None, strike_max: float | None = None,
                      underlying: str | None = None) -> OptionChain:
    """Load and validate an iVolatility-layout EOD option chain.

    Parameters
    ----------
    path : str or os.PathLike, optional
        ``None``: the bundled AAPL chain of 2014-08-07. Otherwise a ``.csv``,
        ``.csv.gz`` or ``.parquet`` file with :data:`CHAIN_COLUMNS`.
    quote_date, expiration, right, strike_min, strike_max, underlying
        Filters applied after the whole file is validated; see
        :func:`filter_option_chain`.

    Returns
    -------
    OptionChain

    Raises
    ------
    DataError
        Missing/unreadable file or column, or the lowest bad row, naming the row and
        field: missing or unparseable dates; an expiration before the quote date
        (field ``'expiration'``); a missing, NaN, non-positive or unencodable strike;
        ``right`` not C/P; ``style`` not american/european; a negative, NaN or
        non-numeric bid/ask/mid; ``bid > ask`` (field ``'bid'``); mid outside
        ``[bid, ask]``; negative or fractional volume/open interest; negative IV,
        gamma or vega; delta outside ``[0, 1]`` (calls) or ``[-1, 0]`` (puts); an
        OCC symbol that is malformed, disagrees with root/expiration/right/strike, or
        repeats a contract on the same quote date (field ``'option_symbol'``).
    ValueError
        Invalid filter values.
    """
    file_path, source = _resolve(path, "aapl_options")
    chain = OptionChain(_read_chain(file_path, source), source)
    criteria = {"quote_date": quote_date, "expiration": expiration, "right": right,
                "strike_min": strike_min, "strike_max": strike_max, "underlying": underlying}
    if any(v is not None for v in criteria.values()):
        chain = chain.filter(**criteria)
    return chain
