"""Helpers and hand-computed data for the analytics tests (imported by conftest and tests)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from sqlalchemy import insert
from sqlalchemy.engine import Engine

from tradewarden.domain import iso
from tradewarden.ledger import schema

T0 = 1704067200  # 2024-01-01T00:00:00Z
H = 3600
D = 86400


@dataclass
class Ledger:
    """A tmp SQLite ledger with helpers that insert hand-written rows."""

    engine: Engine
    path: Path

    def add_run(self, run_id: str, **over) -> None:
        row = dict(
            run_id=run_id, mode="replay", capital_mode="independent",
            market_time_basis="bar_open_utc", data_integrity="ok",
            data_quality=json.dumps({"BTC-USD": {"rows": 120, "gaps": 0, "missing_bars": 0,
                                                 "zero_volume_bars": 0, "rows_skipped": 0,
                                                 "status": "ok"}}),
            created_by="test", git_sha="0123456789abcdef0123456789abcdef01234567",
            config_hash="f" * 64, config="{}", strategy="sma_cross",
            input_names=json.dumps(["fast", "slow"]), symbols=json.dumps(["BTC-USD"]),
            timeframe="1h", range_start="2024-01-01T00:00:00Z",
            range_end="2024-01-10T00:00:00Z", initial_capital=Decimal("10000"),
            started_at="2024-06-01T12:00:00Z", completed_at="2024-06-01T12:00:05Z",
            status="completed", error=None, bars_processed=120, decisions=120,
            trades_opened=0, trades_closed=0, notes=None)
        if "symbols" in over and isinstance(over["symbols"], list):
            over["symbols"] = json.dumps(over["symbols"])
        if "data_quality" in over and isinstance(over["data_quality"], dict):
            over["data_quality"] = json.dumps(over["data_quality"])
        row.update(over)
        with self.engine.begin() as conn:
            conn.execute(insert(schema.runs), [row])

    def add_trades(self, run_id: str, rows: list[dict]) -> None:
        out = []
        for i, t in enumerate(rows):
            r = dict(run_id=run_id, trade_id=t.get("trade_id", f"{run_id}-t{i:03d}"),
                     side="long", entry_order_id=f"e{i}", exit_order_id=f"x{i}")
            r.update(t)
            r.setdefault("entry_time", iso(r["entry_ts"]))
            r.setdefault("exit_time", iso(r["exit_ts"]))
            r.setdefault("holding_seconds", r["exit_ts"] - r["entry_ts"])
            for k in ("quantity", "entry_price", "exit_price", "fees", "pnl"):
                r[k] = Decimal(r[k])
            out.append(r)
        with self.engine.begin() as conn:
            conn.execute(insert(schema.trades), out)

    def add_equity(self, run_id: str, rows: list[tuple], start_seq: int = 0) -> None:
        """rows: (account, ts, equity) or (seq, account, ts, equity)."""
        out = []
        for i, row in enumerate(rows):
            seq, acc, ts, eq = row if len(row) == 4 else (start_seq + i, *row)
            out.append(dict(run_id=run_id, seq=seq, account=acc, ts=ts, cash=eq, equity=eq))
        with self.engine.begin() as conn:
            conn.execute(insert(schema.equity), out)

    def add_decisions(self, run_id: str, rows: list[tuple], start_seq: int = 0) -> None:
        """rows: (ts, symbol, action, reason, close)."""
        out = [dict(run_id=run_id, seq=start_seq + i, ts=ts, symbol=sym, action=action,
                    reason=reason, state="flat", close=close)
               for i, (ts, sym, action, reason, close) in enumerate(rows)]
        with self.engine.begin() as conn:
            conn.execute(insert(schema.decisions), out)

    def add_event(self, run_id: str, seq: int, kind: str, message: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(schema.events), [dict(run_id=run_id, seq=seq, ts=T0, kind=kind,
                                                      symbol=None, message=message)])


# Six hand-computed round trips (BTC near 60000, ETH near 3000), listed in exit order.
#   pnl: +107.88, -134.08, -61.85, 0.00, -56.15, +293.70
HAND_TRADES = [
    dict(trade_id="t1", symbol="BTC-USD", quantity="0.10000000", entry_ts=T0, exit_ts=T0 + 6 * H,
         entry_price="60000.00", exit_price="61200.00", fees="12.12", pnl="107.88",
         return_pct=0.1798, exit_reason="take_profit"),
    dict(trade_id="t2", symbol="BTC-USD", quantity="0.10000000", entry_ts=T0 + D,
         exit_ts=T0 + D + 4 * H, entry_price="61000.00", exit_price="59780.00", fees="12.08",
         pnl="-134.08", return_pct=-2.198, exit_reason="stop_loss"),
    dict(trade_id="t3", symbol="BTC-USD", quantity="0.10000000", entry_ts=T0 + 2 * D,
         exit_ts=T0 + 2 * D + 2 * H, entry_price="59500.00", exit_price="59000.00",
         fees="11.85", pnl="-61.85", return_pct=-1.0395, exit_reason="stop_loss"),
    dict(trade_id="t4", symbol="ETH-USD", quantity="1.0000", entry_ts=T0 + 2 * D + 4 * H,
         exit_ts=T0 + 2 * D + 8 * H, entry_price="3000.00", exit_price="3006.00", fees="6.00",
         pnl="0.00", return_pct=0.0, exit_reason="signal"),
    dict(trade_id="t5", symbol="ETH-USD", quantity="1.0000", entry_ts=T0 + 3 * D,
         exit_ts=T0 + 3 * D + 10 * H, entry_price="3100.00", exit_price="3050.00", fees="6.15",
         pnl="-56.15", return_pct=-1.8113, exit_reason="stop_loss"),
    dict(trade_id="t6", symbol="ETH-USD", quantity="1.0000", entry_ts=T0 + 4 * D,
         exit_ts=T0 + 5 * D, entry_price="3000.00", exit_price="3300.00", fees="6.30",
         pnl="293.70", return_pct=9.79, exit_reason="signal"),
]
