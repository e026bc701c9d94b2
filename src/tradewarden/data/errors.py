"""The one exception the data layer raises for bad or missing market data.

Callers (CLI, replay runner, daemon) catch :class:`DataError` and fail closed: the
message is a single line that says which file is at fault and, where it applies,
which row and which field, so a person can open the file and go straight to it.
"""

from __future__ import annotations

import os

__all__ = ["DataError"]


def _one_line(text: object) -> str:
    """Collapse any line breaks so a message always fits on one line."""
    s = str(text)
    return " ".join(s.split()) if ("\n" in s or "\r" in s) else s


class DataError(Exception):
    """Market data that cannot be used: missing, unreadable, malformed or out of order.

    The message always starts with the file (or data source) and, where relevant,
    the row number and the field, e.g.::

        data/btc.csv row 17 field 'close': missing or NaN price

    Row numbers are **1-based data rows with the header excluded**: row 1 is the first
    line after the header, so row ``r`` is line ``r + 1`` of a CSV file when counted
    from 1 in a text editor. For Parquet files, row ``r`` is the ``r``-th record. In
    files holding several symbols, the number is the row's position in the whole
    file, not within one symbol.

    Parameters
    ----------
    source : str or os.PathLike
        The file (or a description of the data source, such as the bundled data
        directory) the problem was found in.
    problem : str
        What is wrong, in a few words (``"missing or NaN price"``).
    row : int, optional
        1-based data row number (header excluded), when the problem is in one row.
    field : str, optional
        Column name, when the problem is in one field.

    Attributes
    ----------
    source : str
    problem : str
    row : int or None
    field : str or None
    """

    def __init__(self, source: str | os.PathLike[str], problem: str, *,
                 row: int | None = None, field: str | None = None) -> None:
        self.source = _one_line(os.fspath(source) if isinstance(source, os.PathLike) else source)
        self.problem = _one_line(problem)
        self.row = None if row is None else int(row)
        self.field = None if field is None else _one_line(field)
        super().__init__(self._format())

    def _format(self) -> str:
        where = self.source
        if self.row is not None:
            where += f" row {self.row}"
        if self.field is not None:
            where += f" field '{self.field}'"
        return f"{where}: {self.problem}"

    def __reduce__(self):  # keep the exception picklable (multiprocessing, logging queues)
        return (_rebuild, (self.source, self.problem, self.row, self.field))


def _rebuild(source: str, problem: str, row: int | None, field: str | None) -> DataError:
    return DataError(source, problem, row=row, field=field)
