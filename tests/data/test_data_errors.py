"""DataError: one-line messages naming file, row and field."""

from __future__ import annotations

import pickle
from pathlib import Path

from tradewarden.data import DataError


def test_message_names_file_row_and_field() -> None:
    err = DataError("data/btc.csv", "missing or NaN price", row=17, field="close")
    assert str(err) == "data/btc.csv row 17 field 'close': missing or NaN price"
    assert (err.source, err.row, err.field, err.problem) == (
        "data/btc.csv", 17, "close", "missing or NaN price")


def test_message_without_row_or_field_still_names_the_file() -> None:
    assert str(DataError(Path("data") / "btc.csv", "file not found")) == "data/btc.csv: file not found"
    assert str(DataError("x.csv", "missing symbol", row=3)) == "x.csv row 3: missing symbol"
    assert str(DataError("x.csv", "bad", field="volume")) == "x.csv field 'volume': bad"


def test_message_is_always_one_line() -> None:
    err = DataError("a\nb.csv", "cannot read file (ParserError: line 1\nline 2)", row=2, field="o\nc")
    assert "\n" not in str(err) and "\r" not in str(err)
    assert str(err) == "a b.csv row 2 field 'o c': cannot read file (ParserError: line 1 line 2)"


def test_is_an_exception_and_survives_pickling() -> None:
    err = DataError("f.csv", "duplicate timestamp", row=5, field="timestamp")
    assert isinstance(err, Exception)
    back = pickle.loads(pickle.dumps(err))
    assert isinstance(back, DataError)
    assert str(back) == str(err) and back.row == 5 and back.field == "timestamp"
