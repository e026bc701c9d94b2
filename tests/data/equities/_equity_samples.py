"""Helpers for the equity, VIX and option-chain tests: lines of the bundled samples and
the staged full data files (tests using those are skipped when they are absent)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from tradewarden.data.equities import bundled_equity_path

SHARED = Path("/work/shared/data")


def sample_lines(name: str, rows: int | None = None) -> list[str]:
    """Header plus the first ``rows`` data lines of a bundled sample (all when None)."""
    with gzip.open(bundled_equity_path(name), "rt", newline="") as f:
        lines = f.read().splitlines()
    return lines if rows is None else lines[: rows + 1]


def shared_file(relative: str) -> Path:
    """A file of the staged full data set; the calling test is skipped when it is absent."""
    path = SHARED / relative
    if not path.is_file():
        pytest.skip(f"staged data file {path} not available")
    return path
