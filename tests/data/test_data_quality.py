"""validate_frame and DataQuality: every check, skip mode, ordering, gaps, speed."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tradewarden.data import (MAX_SKIPPED_DETAILS, DataError, DataQuality, read_ohlcv_file,
                              validate_frame)

COLUMNS = ["timestamp", "open", "high", "low", "close", "volume"]
H = 3600
FIRST_TS = 1713459600                      # 2024-04-18T17:00:00Z, first bundled BTC bar


def _validate(path, skip: bool = False):
    return validate_frame(read_ohlcv_file(path), str(path), H, skip, symbol="BTC-USD")


def test_clean_fixture_validates_to_typed_frame(first50_path) -> None:
    clean, q = _validate(first50_path)
    assert list(clean.columns) == ["ts", "open", "high", "low", "close", "volume"]
    assert clean["ts"].dtype == np.int64 and clean["close"].dtype == np.float64
    assert clean["ts"].iloc[0] == FIRST_TS and clean["ts"].iloc[-1] == FIRST_TS + 49 * H
    assert clean["open"].iloc[0] == 63582.07 and clean["volume"].iloc[1] == 990.82456888
    assert (q.symbol, q.rows, q.first_ts, q.last_ts) == ("BTC-USD", 50, FIRST_TS, FIRST_TS + 49 * H)
    assert (q.gaps, q.missing_bars, q.largest_gap_seconds, q.zero_volume_bars) == (0, 0, 0, 0)
    assert (q.rows_skipped, q.skipped_details, q.status) == (0, [], "ok")


# (row, field, cell text written, field named in the error, problem text)
BAD_CELLS = [
    (17, "close", "NaN", "close", "missing or NaN price"),
    (17, "close", "", "close", "missing or NaN price"),
    (5, "open", "abc", "open", "not a number: 'abc'"),
    (9, "low", "-3", "low", "non-positive price -3.0"),
    (9, "close", "0", "close", "non-positive price 0.0"),
    (4, "high", "inf", "high", "non-finite price inf"),
    (2, "high", "1000.5", "high", "high 1000.5 is below low 62358.0"),
    (2, "high", "63000", "high", "high 63000.0 is below max(open, close) 63149.42"),
    (2, "low", "62900", "low", "low 62900.0 is above min(open, close) 62835.28"),
    (30, "volume", "-1", "volume", "negative volume -1.0"),
    (30, "volume", "NaN", "volume", "missing or NaN volume"),
    (30, "volume", "lots", "volume", "not a number: 'lots'"),
    (8, "timestamp", "yesterday", "timestamp", "unparseable timestamp 'yesterday'"),
    (8, "timestamp", "", "timestamp", "missing timestamp"),
    (8, "timestamp", "2024-04-19T00:00:00.250Z", "timestamp",
     "timestamp '2024-04-19T00:00:00.250Z' is not a whole number of seconds"),
]


@pytest.mark.parametrize("row, field, text, named, problem", BAD_CELLS,
                         ids=[f"{c[1]}={c[2] or 'empty'}" for c in BAD_CELLS])
def test_bad_cell_raises_naming_file_row_field(corrupt, row, field, text, named, problem) -> None:
    path = corrupt({(row, field): text})
    with pytest.raises(DataError) as info:
        _validate(path)
    err = info.value
    assert str(err) == f"{path} row {row} field '{named}': {problem}"
    assert (err.row, err.field) == (row, named)
    # Row convention: data row r is line r + 1 of the file (header is line 1).
    line = path.read_text().splitlines()[row]            # 0-based list index r == line r + 1
    assert line.split(",")[COLUMNS.index(field)] == text


def test_row_number_is_line_number_minus_one(corrupt) -> None:
    path = corrupt({(17, "close"): "NaN"})
    with pytest.raises(DataError) as info:
        _validate(path)
    line_no = info.value.row + 1                          # 1-based line in the file
    assert path.read_text().splitlines()[line_no - 1].split(",")[4] == "NaN"


def test_first_bad_row_in_file_order_is_reported(corrupt) -> None:
    path = corrupt({(30, "close"): "NaN", (10, "volume"): "-5", (20, "open"): "x"})
    with pytest.raises(DataError, match=r"row 10 field 'volume': negative volume -5.0$"):
        _validate(path)


def test_skip_mode_drops_counts_and_degrades(corrupt) -> None:
    path = corrupt({(10, "close"): "NaN", (11, "volume"): "-5", (40, "timestamp"): "garbage"})
    clean, q = _validate(path, skip=True)
    assert q.rows == 47 and len(clean) == 47
    assert q.rows_skipped == 3 and q.status == "degraded" and q.degraded
    assert q.skipped_details == [
        "row 10 field 'close': missing or NaN price",
        "row 11 field 'volume': negative volume -5.0",
        "row 40 field 'timestamp': unparseable timestamp 'garbage'",
    ]
    dropped = {FIRST_TS + 9 * H, FIRST_TS + 10 * H, FIRST_TS + 39 * H}
    assert dropped.isdisjoint(set(clean["ts"].tolist()))
    # The dropped rows leave holes, which the gap report sees: 2 holes, 3 missing bars.
    assert (q.gaps, q.missing_bars, q.largest_gap_seconds) == (2, 3, 3 * H)
    assert np.isfinite(clean[["open", "high", "low", "close", "volume"]].to_numpy()).all()


def test_skip_details_are_capped(corrupt) -> None:
    path = corrupt({(r, "close"): "NaN" for r in range(1, 26)})
    clean, q = _validate(path, skip=True)
    assert q.rows_skipped == 25 and q.rows == 25
    assert len(q.skipped_details) == MAX_SKIPPED_DETAILS == 20
    assert q.skipped_details[-1] == "row 20 field 'close': missing or NaN price"


def test_all_problems_in_a_row_count_it_once(corrupt) -> None:
    path = corrupt({(5, "close"): "NaN", (5, "volume"): "-1", (5, "open"): "-2"})
    _, q = _validate(path, skip=True)
    assert q.rows_skipped == 1
    assert q.skipped_details == ["row 5 field 'open': non-positive price -2.0"]


@pytest.mark.parametrize("skip", [False, True])
def test_unsorted_rows_are_an_error_even_in_skip_mode(first50_lines, write_lines, skip) -> None:
    lines = list(first50_lines)
    lines[10], lines[11] = lines[11], lines[10]
    path = write_lines(lines)
    with pytest.raises(DataError) as info:
        _validate(path, skip=skip)
    assert str(info.value) == (
        f"{path} row 11 field 'timestamp': timestamp 2024-04-19T02:00:00Z is earlier than row 10's "
        "2024-04-19T03:00:00Z; rows must be in ascending time order")


@pytest.mark.parametrize("skip", [False, True])
def test_duplicate_timestamp_is_an_error_even_in_skip_mode(first50_lines, write_lines, skip) -> None:
    lines = list(first50_lines)
    lines.insert(21, lines[20])                     # rows 20 and 21 now identical
    path = write_lines(lines)
    with pytest.raises(DataError) as info:
        _validate(path, skip=skip)
    assert info.value.row == 21 and info.value.field == "timestamp"
    assert "duplicate timestamp 2024-04-19T12:00:00Z (same as row 20)" in str(info.value)


def test_non_adjacent_repeat_is_reported_at_first_backwards_step(first50_lines, write_lines) -> None:
    lines = list(first50_lines) + [first50_lines[3]]    # row 51 repeats row 3's time
    path = write_lines(lines)
    with pytest.raises(DataError, match=r"row 51 field 'timestamp': timestamp 2024-04-18T19:00:00Z "
                                        r"is earlier than row 50's"):
        _validate(path)


def test_ordering_error_wins_over_a_later_bad_value(first50_lines, write_lines) -> None:
    lines = list(first50_lines)
    lines[5], lines[6] = lines[6], lines[5]
    cells = lines[30].split(",")
    cells[4] = "NaN"
    lines[30] = ",".join(cells)
    with pytest.raises(DataError, match=r"row 6 field 'timestamp'"):
        _validate(write_lines(lines))


def test_gaps_are_counted_but_do_not_degrade(gap_path) -> None:
    clean, q = _validate(gap_path)
    assert q.rows == 40 and q.status == "ok" and q.rows_skipped == 0
    assert (q.gaps, q.missing_bars, q.largest_gap_seconds) == (1, 5, 6 * H)
    assert q.timeframe_seconds == H
    # Inferred timeframe (median spacing) gives the same report.
    _, inferred = validate_frame(read_ohlcv_file(gap_path), str(gap_path), None)
    assert (inferred.timeframe_seconds, inferred.gaps, inferred.missing_bars) == (H, 1, 5)


def test_zero_volume_bars_are_counted_but_do_not_degrade(corrupt) -> None:
    _, q = _validate(corrupt({(3, "volume"): "0", (4, "volume"): "0.0"}))
    assert q.zero_volume_bars == 2 and q.status == "ok" and q.rows == 50


def test_uneven_gap_counts_a_partial_hole_as_missing_bar() -> None:
    df = pd.DataFrame({"timestamp": [0, H, 2 * H + H // 2, 5 * H], "open": 1.0, "high": 1.0,
                       "low": 1.0, "close": 1.0, "volume": 1.0})
    _, q = validate_frame(df, "irregular.csv", H)
    # spacings 1.5h and 2.5h: ceil(1.5)-1 + ceil(2.5)-1 = 1 + 2
    assert (q.gaps, q.missing_bars, q.largest_gap_seconds) == (2, 3, int(2.5 * H))


def test_timestamp_forms_all_parse_to_the_same_epoch_seconds() -> None:
    expected = np.array([FIRST_TS, FIRST_TS + H, FIRST_TS + 2 * H], dtype=np.int64)
    forms = [
        ["2024-04-18T17:00:00Z", "2024-04-18T18:00:00Z", "2024-04-18T19:00:00Z"],
        ["2024-04-18T17:00:00", "2024-04-18 18:00:00", "2024-04-18T21:00:00+02:00"],
        expected.copy(),
        expected * 1000,
        [str(v * 1000) for v in expected],
        pd.to_datetime(expected, unit="s", utc=True),
        pd.to_datetime(expected, unit="s").as_unit("ns"),
    ]
    for form in forms:
        df = pd.DataFrame({"TimeStamp": form, "Open": 1.0, "HIGH": 2.0, "low": 0.5, "close": 1.5,
                           "volume": 3.0})
        clean, _ = validate_frame(df, "forms.csv", H)
        np.testing.assert_array_equal(clean["ts"].to_numpy(), expected, err_msg=str(form))


def test_rows_numbered_by_position_without_row_index() -> None:
    df = pd.DataFrame({"timestamp": [0, H, 2 * H], "open": [1.0, 1.0, 1.0],
                       "high": [2.0, 2.0, 2.0], "low": [0.5, 0.5, 0.5],
                       "close": [1.5, np.nan, 1.5], "volume": [1.0, 1.0, 1.0]}, index=[7, 8, 9])
    with pytest.raises(DataError, match=r"^frame row 2 field 'close'"):
        validate_frame(df, "frame", H)


def test_missing_columns_are_all_named() -> None:
    df = pd.DataFrame({"time": [0], "open": [1.0], "high": [1.0], "low": [1.0]})
    with pytest.raises(DataError) as info:
        validate_frame(df, "x.csv", H)
    assert str(info.value).startswith("x.csv: missing required column(s): close, volume")


def test_bad_timeframe_argument() -> None:
    df = pd.DataFrame({"timestamp": [0], "open": [1.0], "high": [1.0], "low": [1.0],
                       "close": [1.0], "volume": [1.0]})
    with pytest.raises(ValueError, match="positive integer"):
        validate_frame(df, "x.csv", 0)


def test_empty_frame_gives_empty_report() -> None:
    df = pd.DataFrame({c: [] for c in ["timestamp", "open", "high", "low", "close", "volume"]})
    clean, q = validate_frame(df, "empty.csv", H)
    assert len(clean) == 0 and q.rows == 0 and q.first_ts is None and q.status == "ok"


def test_quality_to_dict_is_json_ready(corrupt) -> None:
    _, q = _validate(corrupt({(10, "close"): "NaN"}), skip=True)
    data = json.loads(json.dumps(q.to_dict()))
    assert data["first_time"] == "2024-04-18T17:00:00Z"
    assert data["last_time"] == "2024-04-20T18:00:00Z"
    assert data["status"] == "degraded" and data["rows_skipped"] == 1
    assert data["skipped_details"] == ["row 10 field 'close': missing or NaN price"]
    assert set(data) >= {"symbol", "source", "rows", "first_ts", "last_ts", "gaps", "missing_bars",
                         "largest_gap_seconds", "zero_volume_bars", "status"}


def test_quality_status_is_restricted() -> None:
    with pytest.raises(ValueError, match="status"):
        DataQuality("X", "f", 0, None, None, 0, 0, 0, 0, status="fine")


def test_bench_million_rows_validate(benchmark) -> None:
    """Benchmark (run with --benchmark-only): validating 1M ISO-timestamped rows."""
    n = 1_000_000
    rng = np.random.default_rng(7)
    ts = FIRST_TS + np.arange(n, dtype=np.int64) * H
    close = 100.0 + rng.random(n)
    iso_text = np.char.add(np.datetime_as_string(ts.astype("datetime64[s]"), unit="s"), "Z")
    df = pd.DataFrame({"timestamp": iso_text.astype(object), "open": close, "high": close + 1.0,
                       "low": close - 1.0, "close": close, "volume": rng.random(n)})
    df.loc[::1000, "close"] = np.nan                     # 1000 bad rows to skip
    clean, q = benchmark.pedantic(validate_frame, args=(df, "big.csv", H),
                                  kwargs={"skip_bad_rows": True}, rounds=2, iterations=1)
    assert q.rows == n - 1000 and q.rows_skipped == 1000 and q.gaps == 999   # row 1 is not a hole
