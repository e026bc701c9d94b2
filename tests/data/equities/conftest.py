"""Fixtures for the equity, VIX and option-chain tests: edited copies of bundled samples."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from _equity_samples import sample_lines


@pytest.fixture
def edited(tmp_path: Path) -> Callable[..., Path]:
    """``edited(name, rows, {(row, column): text})``: a CSV copy of the first ``rows`` data
    rows of bundled sample ``name`` with cells replaced (row is 1-based, header excluded)."""

    def make(name: str, rows: int | None, edits: dict[tuple[int, str], str],
             file_name: str = "edited.csv") -> Path:
        lines = sample_lines(name, rows)
        header = lines[0].split(",")
        for (row, column), text in edits.items():
            cells = lines[row].split(",")
            cells[header.index(column)] = text
            lines[row] = ",".join(cells)
        path = tmp_path / file_name
        path.write_text("\n".join(lines) + "\n")
        return path

    return make
