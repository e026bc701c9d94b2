"""End-of-day option chains: the bundled real AAPL chain of 2014-08-07, and bad rows."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from _equity_samples import sample_lines, shared_file

from tradewarden.data import DataError
from tradewarden.data.options import FRAME_COLUMNS, load_option_chain
from tradewarden.domain.options import OptionQuote, format_occ_symbol, parse_occ_symbol


@pytest.fixture(scope="module")
def chain():
    return load_option_chain()


@pytest.fixture(scope="module")
def quotes(chain):
    return chain.quotes()


def test_counts_and_ranges(chain):
    f = chain.frame
    assert len(chain) == 1822 and list(f.columns) == list(FRAME_COLUMNS)
    assert f["right"].value_counts().to_dict() == {"C": 911, "P": 911}
    assert chain.quote_dates == [date(2014, 8, 7)]
    assert len(chain.expirations) == 13
    assert chain.expirations[0] == date(2014, 8, 8) and chain.expirations[-1] == date(2016, 1, 15)
    assert f["strike"].min() == 27.86 and f["strike"].max() == 150.0
    assert (f["underlying"] == "AAPL").all() and (f["underlying_price"] == 94.48).all()
    assert int((f["bid"] == 0).sum()) == 182 and int(f["iv_interpolated"].sum()) == 571
    assert f["last"].isna().all() and f["forward_price"].isna().all()
    assert f.index.name == "row" and f.index[0] == 1 and f.index[-1] == 1822
    assert chain.source == "bundled:aapl_option_chain_ivolatility_2014-08-07.csv.gz"


def test_every_call_has_its_put(chain):
    f = chain.frame
    calls = f[f["right"] == "C"].set_index(["expiration", "strike"]).index
    puts = f[f["right"] == "P"].set_index(["expiration", "strike"]).index
    assert calls.sort_values().equals(puts.sort_values())


def test_bid_never_above_ask(chain, quotes):
    f = chain.frame
    assert (f["bid"] <= f["ask"]).all() and (f["bid"] >= 0).all()
    assert ((f["mid"] >= f["bid"]) & (f["mid"] <= f["ask"])).all()
    assert all(q.bid <= q.mid <= q.ask for q in quotes)


def test_occ_round_trip_on_every_real_symbol(chain):
    source = [line.split(",")[3] for line in sample_lines("aapl_options")[1:]]
    assert len(source) == len(chain)
    for text, row in zip(source, chain.frame.itertuples()):
        parsed = parse_occ_symbol(text)
        assert parsed.root == row.root and parsed.right == row.right
        assert parsed.expiration == row.expiration.date()
        assert parsed.strike == Decimal(repr(row.strike))
        canonical = format_occ_symbol(*parsed)
        assert canonical == row.occ_symbol and len(canonical) == 21
        assert " ".join(canonical.split()) == text                   # source minus padding
        assert parse_occ_symbol(canonical, strict=True) == parsed


def test_hand_checked_contract(quotes):
    # Data row 757: AAPL 2014-09-20 95 call on 2014-08-07.
    matches = [q for q in quotes if q.contract.occ_symbol == "AAPL  140920C00095000"]
    assert len(matches) == 1
    q = matches[0]
    assert isinstance(q, OptionQuote)
    c = q.contract
    assert (c.underlying, c.root, c.right, c.style, c.multiplier) == ("AAPL", "AAPL", "C",
                                                                     "american", 100)
    assert c.expiration == date(2014, 9, 20) and c.strike == Decimal(95)
    assert q.quote_date == date(2014, 8, 7) and q.days_to_expiration == 44
    assert (q.bid, q.ask, q.mid) == (Decimal("3.15"), Decimal("3.25"), Decimal("3.2"))
    assert q.last is None and q.forward_price is None
    assert (q.volume, q.open_interest) == (29430, 51834)
    assert q.iv == 0.265624 and q.delta == 0.495082 and q.theta == -0.040167
    assert q.underlying_price == Decimal("94.48")
    # Put-call parity near the money: C - P ~ S - K (rates ~0 in 2014, 44 days).
    put = next(p for p in quotes if p.contract.occ_symbol == "AAPL  140920P00095000")
    assert put.mid == Decimal("3.7") and put.delta == -0.50515
    assert float(q.mid - put.mid) == pytest.approx(94.48 - 95, abs=0.1)


def test_split_adjusted_strike_keeps_its_decimals(quotes):
    odd = [q for q in quotes if q.contract.strike == Decimal("27.86")]
    assert odd and all(q.contract.occ_symbol.endswith("00027860") for q in odd)


def test_filters(chain):
    assert len(chain.filter(right="C")) == 911
    assert len(chain.filter(right="p")) == 911
    near = chain.filter(expiration="2014-09-20", strike_min=90, strike_max=100)
    assert len(near) == 10
    assert set(near.frame["strike"]) == {90.0, 92.5, 95.0, 97.5, 100.0}
    assert len(chain.filter(expiration=("2014-08-01", "2014-08-31"))) == \
        int((chain.frame["expiration"] < pd.Timestamp("2014-09-01")).sum())
    assert len(chain.filter(quote_date="2014-08-08")) == 0
    assert len(chain.filter(underlying="aapl")) == 1822
    direct = load_option_chain(right="P", strike_max=50)
    assert len(direct) > 0 and (direct.frame["strike"] <= 50).all()
    assert (direct.frame["right"] == "P").all()
    with pytest.raises(ValueError, match="right"):
        chain.filter(right="call")
    with pytest.raises(ValueError, match="strike_min"):
        chain.filter(strike_min=100, strike_max=90)


@pytest.mark.parametrize("edits, row, field, text", [
    ({(5, "bid"): "-0.05"}, 5, "bid", "not at least 0"),
    ({(7, "bid"): "45.0"}, 7, "bid", "above the ask"),
    ({(3, "expiration"): "2014-08-01"}, 3, "expiration", "before the quote date"),
    ({(9, "strike"): "NaN"}, 9, "strike", "not a number"),
    ({(9, "strike"): ""}, 9, "strike", "missing"),
    ({(4, "right"): "X"}, 4, "right", "not one of C, P"),
    ({(5, "option_symbol"): "AAPL 140808C00099000"}, 5, "option_symbol", "different strike"),
    ({(6, "option_symbol"): "AAPL 140808C00065000"}, 6, "option_symbol", "different right"),
    ({(2, "option_symbol"): "AAPL 140808"}, 2, "option_symbol", "not an OCC option symbol"),
    ({(8, "volume"): "1.5"}, 8, "volume", "not a whole number"),
    ({(10, "quote_date"): "2014-13-07"}, 10, "quote_date", "unparseable"),
    ({(11, "mid"): "100"}, 11, "mid", "outside [bid, ask]"),
    ({(13, "delta"): "-0.3"}, 13, "delta", "[0, 1] for a call"),      # row 13: a call
    ({(12, "delta"): "0.3"}, 12, "delta", "[-1, 0] for a put"),        # row 12: a put
    ({(3, "iv"): "-0.2"}, 3, "iv", "negative"),
    ({(5, "style"): "asian"}, 5, "style", "not one of"),
])
def test_bad_rows_name_file_row_and_field(edited, edits, row, field, text):
    path = edited("aapl_options", 15, edits)
    with pytest.raises(DataError) as err:
        load_option_chain(path)
    assert (err.value.row, err.value.field) == (row, field)
    assert text in err.value.problem
    assert str(err.value).startswith(f"{path} row {row} field '{field}'")


def test_lowest_bad_row_wins_and_duplicates_are_refused(edited):
    path = edited("aapl_options", 15, {(12, "bid"): "-1", (4, "ask"): "oops"})
    with pytest.raises(DataError) as err:
        load_option_chain(path)
    assert (err.value.row, err.value.field) == (4, "ask")
    lines = sample_lines("aapl_options", 6)
    dup = edited("aapl_options", 6, {})
    dup.write_text("\n".join(lines + [lines[3]]) + "\n")
    with pytest.raises(DataError, match=r"duplicate contract .* \(same as row 3\)") as err:
        load_option_chain(dup)
    assert (err.value.row, err.value.field) == (7, "option_symbol")


def test_missing_column(tmp_path):
    path = tmp_path / "chain.csv"
    path.write_text("quote_date,underlying,strike\n2014-08-07,AAPL,95\n")
    with pytest.raises(DataError, match="missing required column.*bid, ask"):
        load_option_chain(path)


def test_iv_sentinel_becomes_nan(edited):
    path = edited("aapl_options", 4, {(2, "iv"): "-1.0", (2, "delta"): "0.0"})
    chain = load_option_chain(path)
    row = chain.frame.loc[2]
    assert np.isnan(row["iv"]) and np.isnan(row["delta"]) and np.isnan(row["vega"])
    assert not np.isnan(chain.frame.loc[1, "iv"])
    assert np.isnan(chain.quotes()[1].iv)


# --------------------------------------------------------------------------- staged files


def test_staged_two_day_file_repeats_aapl_as_spy():
    # Why only 2014-08-07 is bundled: the staged file's 2014-08-08 rows are the AAPL rows
    # relabelled SPY (same prices and greeks), not real SPY quotes.
    chain = load_option_chain(shared_file("options/aapl_option_chain_ivolatility_2014-08-07_08.csv.gz"))
    a = chain.filter(quote_date="2014-08-07").frame.reset_index(drop=True)
    b = chain.filter(quote_date="2014-08-08").frame.reset_index(drop=True)
    assert set(b["underlying"]) == {"SPY"} and set(b["underlying_price"]) == {94.48}
    for name in ("strike", "bid", "ask", "iv", "delta", "gamma", "open_interest"):
        np.testing.assert_array_equal(a[name].to_numpy(), b[name].to_numpy())
    assert int((a["mid"] != b["mid"]).sum()) == 1


def test_staged_spx_chain_loads_with_saturday_symbols_and_iv_sentinels():
    chain = load_option_chain(shared_file("options/spx_option_chain_ivolatility_2011-01-03_07.csv.gz"))
    f = chain.frame
    assert len(chain) == 9832 and (f["style"] == "european").all()
    assert f.groupby("right").size().to_dict() == {"C": 4916, "P": 4916}
    spx = f[f["root"] == "SPX"]
    assert (spx["expiration"].dt.day_name() == "Friday").all()
    symbol_dates = spx["occ_symbol"].map(lambda s: parse_occ_symbol(s).expiration)
    assert (pd.to_datetime(symbol_dates) - spx["expiration"] == pd.Timedelta(days=1)).all()
    assert int(f["iv"].isna().sum()) == 216 and set(f[f["iv"].isna()]["root"]) == {"SPXPM"}
    assert len(chain.filter(quote_date="2011-01-07")) == 2006
