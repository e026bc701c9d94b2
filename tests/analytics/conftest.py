"""Fixtures: small hand-built ledgers in tmp SQLite files (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine

from tradewarden.ledger import schema

from _analytics_ledger import D, H, HAND_TRADES, T0, Ledger


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    path = tmp_path / "ledger.db"
    engine = create_engine(f"sqlite:///{path}")
    schema.metadata.create_all(engine)
    yield Ledger(engine=engine, path=path)
    engine.dispose()


@pytest.fixture
def hand_run(ledger: Ledger) -> Ledger:
    """Run 'r-hand': independent mode, BTC-USD + ETH-USD, 10000 each, six trades.

    Equity marks (BTC / ETH accounts), a step function per account:
      T0+6h BTC 10107.88 | T0+1d+4h BTC 9973.80 | T0+2d+2h BTC 9911.95
      T0+2d+8h ETH 10000 | T0+3d+10h ETH 9943.85 | T0+5d ETH 10237.55
    Total (sum of forward-filled accounts, ETH at 10000 before its first mark):
      T0 20000 | T0+6h 20107.88 (peak) | T0+1d+4h 19973.80 | T0+2d+2h 19911.95
      | T0+2d+8h 19911.95 | T0+3d+10h 19855.80 (trough) | T0+5d 20149.50 (final)
    Max drawdown: 20107.88 - 19855.80 = 252.08, 252.08 / 20107.88 = 1.253633...%.
    """
    dq = {"BTC-USD": {"rows": 120, "gaps": 0, "missing_bars": 0, "zero_volume_bars": 0,
                      "rows_skipped": 0, "status": "ok"},
          "ETH-USD": {"rows": 120, "gaps": 1, "missing_bars": 2, "zero_volume_bars": 3,
                      "rows_skipped": 0, "status": "ok", "first_ts": T0}}
    ledger.add_run("r-hand", symbols=["BTC-USD", "ETH-USD"], trades_opened=6, trades_closed=6,
                   data_quality=dq, bars_processed=240, decisions=240)
    ledger.add_trades("r-hand", HAND_TRADES)
    ledger.add_equity("r-hand", [
        ("BTC-USD", T0 + 6 * H, 10107.88),
        ("BTC-USD", T0 + D + 4 * H, 9973.80),
        ("BTC-USD", T0 + 2 * D + 2 * H, 9911.95),
        ("ETH-USD", T0 + 2 * D + 8 * H, 10000.00),
        ("ETH-USD", T0 + 3 * D + 10 * H, 9943.85),
        ("ETH-USD", T0 + 5 * D, 10237.55),
    ])
    rows = []
    for i in range(120):
        ts = T0 + i * H
        rows.append((ts, "BTC-USD", "hold", "no_signal", 60000.0 + 10 * i))
        rows.append((ts, "ETH-USD", "hold", "no_signal", 3000.0 + i))
    rows[0] = (T0, "BTC-USD", "enter_long", "sma_cross_up", 60000.0)
    rows[3] = (T0 + H, "ETH-USD", "blocked", "stale_data", 3001.0)
    ledger.add_decisions("r-hand", rows)
    return ledger
