"""Per-trade maximum adverse and favourable excursion (``trades.mae_price`` / ``mfe_price``).

The engine widens a holding's price extremes with the range of every bar at whose end
the position is held; the trade carries them. Checked against a brute force over the
real bars (both paths), on long holds whose quiet bars the batch path skips, and
through the holding's snapshot (a paper deployment's restart).
"""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal

import numpy as np
import pytest

from tradewarden.domain import ExitReason, Fill, OrderRole, Side
from tradewarden.engine import NO_SHORTCUTS
from tradewarden.engine.portfolio import Holding


def _fill(side: Side, qty: str, price: str, ts: int, cid: str) -> Fill:
    role = OrderRole.ENTRY if side is Side.BUY else OrderRole.EXIT
    return Fill(cid, "BTC-USD", side, Decimal(qty), Decimal(price), Decimal("0"), "taker", ts,
                Decimal(price), role)


def test_holding_extremes_cover_fills_and_the_bars_the_engine_adds():
    h = Holding("BTC-USD")
    h.apply(_fill(Side.BUY, "1", "100.00", 0, "b1"))
    assert (h.low, h.high) == (100.0, 100.0)
    h.low, h.high = min(h.low, 97.5), max(h.high, 104.25)      # a bar held at its close
    h.apply(_fill(Side.BUY, "1", "96.10", 10, "b2"))             # a lower fill widens it
    t = h.apply(_fill(Side.SELL, "2", "105.00", 20, "s1"), ExitReason.SIGNAL)
    assert (t.mae_price, t.mfe_price) == (Decimal("96.1"), Decimal("105.0"))
    assert (h.low, h.high) == (float("inf"), float("-inf"))     # flat again


def test_holding_snapshot_keeps_the_extremes_and_reads_older_snapshots():
    h = Holding("BTC-USD")
    h.apply(_fill(Side.BUY, "1", "100.00", 0, "b1"))
    h.low, h.high = 90.5, 111.25
    snap = json.loads(json.dumps(h.to_dict()))
    assert (snap["low"], snap["high"]) == (90.5, 111.25)
    again = Holding.from_dict(snap)
    assert again == h
    older = {k: v for k, v in snap.items() if k not in ("low", "high")}
    restored = Holding.from_dict(older)           # written before excursions were tracked
    trade = restored.apply(_fill(Side.SELL, "1", "101.00", 5, "s1"))
    assert (trade.mae_price, trade.mfe_price) == (Decimal("101.0"), Decimal("101.0"))
    with pytest.raises(ValueError, match="field 'low'"):
        Holding.from_dict({**snap, "low": "cheap"})


def _bars_by_ts(real_bars, symbol):
    b = real_bars[symbol]
    return {int(t): (float(lo), float(hi)) for t, lo, hi in zip(b.ts, b.low, b.high)}


def _brute_force(db, real_bars):
    """Each trade's (mae, mfe) from the ledger and the bars alone: its fill prices and
    the range of every bar of its symbol between entry and exit at whose decision the
    position was held."""
    with sqlite3.connect(db) as c:
        trades = c.execute("select symbol, entry_ts, exit_ts, entry_price, exit_price, mae_price, "
                           "mfe_price, mae_pct, mfe_pct from trades order by exit_ts, trade_id"
                           ).fetchall()
        held = {}
        for sym, ts in c.execute("select symbol, ts from decisions where state in "
                                 "('open', 'exit_pending') group by symbol, ts"):
            held.setdefault(sym, []).append(ts)
    out = []
    for sym, t0, t1, entry, exit_, mae, mfe, mae_pct, mfe_pct in trades:
        bars = _bars_by_ts(real_bars, sym)
        ts = np.array(held[sym])
        inside = ts[(ts >= t0) & (ts <= t1)]
        lo = min([float(entry), float(exit_), *(bars[int(t)][0] for t in inside)])
        hi = max([float(entry), float(exit_), *(bars[int(t)][1] for t in inside)])
        out.append((sym, len(inside), Decimal(repr(lo)), Decimal(repr(hi)), Decimal(mae),
                    Decimal(mfe), mae_pct, mfe_pct, Decimal(entry), Decimal(exit_)))
    return out


@pytest.mark.parametrize("variant", ["reference", "batch", "bare"])
def test_excursions_are_the_extremes_of_the_bars_held(tmp_path, real_bars, make_engine, scripted,
                                                      variant):
    """Scripted long holds on real BTC-USD and SOL-USD bars with a wide bracket (the batch
    path skips most held bars): every trade's MAE / MFE equals the brute force, on the
    reference path, the batch path and the batch path without shortcuts."""
    symbols = ("BTC-USD", "SOL-USD")
    bars = {s: real_bars[s].slice(2000, 2900) for s in symbols}
    ts = bars["BTC-USD"].ts
    enters = [ts[i] for i in (5, 150, 400, 640)]
    exits = [ts[i] for i in (120, 390, 600)]
    strategy = scripted(enters, exits, stop_frac=0.15, tp_frac=0.12)
    engine, ledger = make_engine(tmp_path, strategy, symbols, reference=variant == "reference",
                                 shortcuts=NO_SHORTCUTS if variant == "bare" else None)
    for lo in range(0, 900, 250):
        engine.process_chunk({s: b.slice(lo, lo + 250) for s, b in bars.items()})
    engine.close_all(ExitReason.END_OF_DATA)
    ledger.close()
    rows = _brute_force(tmp_path / "ledger.db", real_bars)
    assert len(rows) >= 6 and sum(n for _, n, *_ in rows) > 1000
    # the bars, not just the fills, set the extremes of most trades
    assert sum(mae < min(e, x) or mfe > max(e, x) for *_, mae, mfe, _, _, e, x in rows) >= 4
    for sym, n, lo, hi, mae, mfe, mae_pct, mfe_pct, entry, _ in rows:
        assert (mae, mfe) == (lo, hi), (sym, n)
        assert mae <= entry <= mfe
        assert mae_pct == pytest.approx(float((mae / entry - 1) * 100), rel=1e-12) and mae_pct <= 0
        assert mfe_pct == pytest.approx(float((mfe / entry - 1) * 100), rel=1e-12) and mfe_pct >= 0
