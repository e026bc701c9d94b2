"""Shared fixtures for the data-layer tests: real rows cut from the bundled BTC-USD file."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
FIRST50 = FIXTURES / "btc_usd_1h_first50.csv"   # rows 1-50 of coinbase_spot_BTC-USD_1h
GAP40 = FIXTURES / "btc_usd_1h_gap.csv"         # rows 13301-13340: one 6h gap (5 missing bars)
COLUMNS = ["timestamp", "open", "high", "low", "close", "volume"]


@pytest.fixture
def first50_path() -> Path:
    return FIRST50


@pytest.fixture
def gap_path() -> Path:
    return GAP40


@pytest.fixture
def first50_lines() -> list[str]:
    """Header plus 50 data lines; ``lines[r]`` is data row ``r`` (1-based, header excluded)."""
    return FIRST50.read_text().splitlines()


@pytest.fixture
def write_lines(tmp_path: Path) -> Callable[..., Path]:
    """Write CSV lines to ``tmp_path/name`` and return the path."""

    def write(lines: list[str], name: str = "btc.csv") -> Path:
        path = tmp_path / name
        path.write_text("\n".join(lines) + "\n")
        return path

    return write


@pytest.fixture
def corrupt(first50_lines: list[str], write_lines) -> Callable[..., Path]:
    """Copy the 50-row fixture with some cells replaced: ``corrupt({(row, field): text})``."""

    def make(edits: dict[tuple[int, str], str], name: str = "btc.csv") -> Path:
        lines = list(first50_lines)
        for (row, field), text in edits.items():
            cells = lines[row].split(",")
            cells[COLUMNS.index(field)] = text
            lines[row] = ",".join(cells)
        return write_lines(lines, name)

    return make
