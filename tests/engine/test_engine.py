"""The tick path on real bars: fill timing, state machine, brackets, halts, chunking, capital modes."""

from __future__ import annotations

import sqlite3
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import numpy as np
import pytest

from tradewarden.domain import ExitReason
from tradewarden.risk import RiskConfig



def q(db, sql, *args):
    with sqlite3.connect(db) as c:
        return c.execute(sql, args).fetchall()


def run_all(engine, bars_by_symbol, chunk=None):
    if chunk is None:
        engine.process_chunk(bars_by_symbol)
    else:
        n = max(len(b) for b in bars_by_symbol.values())
        for lo in range(0, n, chunk):
            engine.process_chunk({s: b.slice(lo, lo + chunk) for s, b in bars_by_symbol.items()})
    engine.close_all(ExitReason.END_OF_DATA)
    engine.ledger.drain()


def ceil2(x: Decimal) -> Decimal:
    return x.quantize(Decimal("0.01"), ROUND_CEILING)


def floor2(x: Decimal) -> Decimal:
    return x.quantize(Decimal("0.01"), ROUND_FLOOR)


def test_market_entry_and_exit_fill_at_next_bar_open(tmp_path, real_bars, scripted, make_engine):
    btc = real_bars["BTC-USD"].slice(0, 200)
    strat = scripted(enter_ts=[btc.ts[100]], exit_ts=[btc.ts[110]])
    engine, ledger = make_engine(tmp_path, strat)
    run_all(engine, {"BTC-USD": btc})
    db = tmp_path / "ledger.db"
    fills = q(db, "select role, side, price, reference_price, fee, quantity, ts from fills order by fill_seq")
    assert [f[0] for f in fills] == ["entry", "exit"]
    entry, exit_ = fills
    open_101 = Decimal(repr(float(btc.open[101])))
    open_111 = Decimal(repr(float(btc.open[111])))
    assert Decimal(entry[3]) == open_101 and entry[6] == int(btc.ts[101])
    assert Decimal(entry[2]) == ceil2(open_101 * Decimal("1.0002"))      # 2 bps against a buy
    assert Decimal(exit_[2]) == floor2(open_111 * Decimal("0.9998"))     # 2 bps against a sell
    qty = Decimal(entry[5])
    # no stop-loss: sized by the 95 % position cap at the decision bar's close
    assert qty == (Decimal(9500) / Decimal(repr(float(btc.close[100])))).quantize(Decimal("1e-8"), ROUND_FLOOR)
    assert Decimal(entry[4]) == (Decimal(entry[2]) * qty * Decimal("0.001")).quantize(Decimal("1e-8"))
    (pnl, fees, reason, entry_ts, exit_ts), = q(db, "select pnl, fees, exit_reason, entry_ts, exit_ts from trades")
    assert reason == "signal" and entry_ts == btc.ts[101] and exit_ts == btc.ts[111]
    assert Decimal(pnl) == (Decimal(exit_[2]) - Decimal(entry[2])) * qty - Decimal(entry[4]) - Decimal(exit_[4])
    assert Decimal(fees) == Decimal(entry[4]) + Decimal(exit_[4])
    # state machine as recorded, bar by bar
    rows = q(db, "select ts, action, reason, state from decisions where ts in (?,?,?,?,?) order by ts",
             *(int(btc.ts[i]) for i in (100, 101, 110, 111, 112)))
    assert [(a, r, s) for _, a, r, s in rows] == [
        ("enter_long", "scripted_entry", "flat"), ("hold", "holding", "open"),
        ("exit", "scripted_exit", "open"), ("hold", "idle", "flat"), ("hold", "idle", "flat")]
    assert q(db, "select count(*) from decisions")[0][0] == len(btc)
    # final equity recorded = capital + pnl
    last_eq = q(db, "select equity from decisions order by seq desc limit 1")[0][0]
    assert last_eq == pytest.approx(10000 + float(pnl), abs=1e-6)


def test_bracket_stop_loss_ends_trade_through_finalize_exit(tmp_path, real_bars, scripted, make_engine):
    btc = real_bars["BTC-USD"]
    # enter, with a 1 % stop and a 50 % take-profit: the stop must be the one that fills
    strat = scripted(enter_ts=[btc.ts[300]], stop_frac=0.01, tp_frac=0.5)
    engine, ledger = make_engine(tmp_path, strat)
    run_all(engine, {"BTC-USD": btc.slice(0, 2000)})
    db = tmp_path / "ledger.db"
    trades = q(db, "select exit_reason, exit_price, exit_ts from trades")
    assert len(trades) == 1 and trades[0][0] == "stop_loss"
    sl_price = Decimal(q(db, "select stop_price from orders where role='stop_loss'")[0][0])
    statuses = dict(q(db, "select role, status from orders"))
    assert statuses == {"entry": "filled", "stop_loss": "filled", "take_profit": "cancelled"}
    i = int(np.searchsorted(btc.ts, trades[0][2]))
    opened = Decimal(repr(float(btc.open[i])))
    # pessimistic rule: fill at the stop (or the open if the bar gapped below it), minus slippage
    ref = min(sl_price, opened)
    assert Decimal(trades[0][1]) == floor2(ref * Decimal("0.9998"))
    assert float(btc.low[i]) <= float(sl_price)
    assert q(db, "select count(*) from decisions where action='enter_long'")[0][0] == 1


def test_halted_account_blocks_entries_but_exits_pass(tmp_path, real_bars, scripted, make_engine):
    btc = real_bars["BTC-USD"].slice(0, 400)
    strat = scripted(enter_ts=[btc.ts[50], btc.ts[150]], exit_ts=[btc.ts[100]])
    engine, ledger = make_engine(tmp_path, strat)
    run_all_until = engine.process_chunk({"BTC-USD": btc.slice(0, 60)})
    assert run_all_until == 60
    engine.risk.halt("BTC-USD", int(btc.ts[59]), "kill_switch")
    engine.process_chunk({"BTC-USD": btc.slice(60, 400)})
    engine.close_all()
    engine.ledger.drain()
    db = tmp_path / "ledger.db"
    assert q(db, "select action, reason from decisions where ts=?", int(btc.ts[100])) == [("exit", "scripted_exit")]
    assert q(db, "select action, reason from decisions where ts=?", int(btc.ts[150])) == [("blocked", "halted:kill_switch")]
    assert q(db, "select kind, message from events where kind='halt'") == [("halt", "kill_switch")]
    assert q(db, "select count(*) from trades")[0][0] == 1


def test_end_of_data_liquidates_open_positions_with_a_recorded_decision(tmp_path, real_bars, scripted, make_engine):
    btc = real_bars["BTC-USD"].slice(0, 120)
    engine, ledger = make_engine(tmp_path, scripted(enter_ts=[btc.ts[10]]))
    run_all(engine, {"BTC-USD": btc})
    db = tmp_path / "ledger.db"
    (reason, exit_price, exit_ts), = q(db, "select exit_reason, exit_price, exit_ts from trades")
    assert reason == "end_of_data" and exit_ts == btc.ts[-1]
    assert Decimal(exit_price) == floor2(Decimal(repr(float(btc.close[-1]))) * Decimal("0.9998"))
    rows = q(db, "select action, reason, seq from decisions order by seq desc limit 1")
    assert rows[0][:2] == ("exit", "end_of_data")
    assert q(db, "select decision_seq from orders where role='exit'")[0][0] == rows[0][2]
    assert q(db, "select count(*) from decisions")[0][0] == len(btc) + 1


def test_chunk_size_does_not_change_results_for_window_indicators(tmp_path, real_bars, scripted, make_engine):
    from tradewarden.strategy import build_strategy
    bars = {s: real_bars[s].slice(0, 3000) for s in ("BTC-USD", "ETH-USD")}
    out = []
    for k, chunk in enumerate((None, 257)):
        strat = build_strategy("donchian", {"use_bracket": False})
        engine, ledger = make_engine(tmp_path, strat, symbols=tuple(bars), db=tmp_path / f"l{k}.db")
        run_all(engine, bars, chunk)
        db = tmp_path / f"l{k}.db"
        out.append((q(db, "select seq, ts, symbol, action, reason, state, close, equity, x1, x2 from decisions order by seq"),
                    q(db, "select * from trades order by trade_id"),
                    q(db, "select * from fills order by fill_seq")))
    assert out[0] == out[1]
    assert len(out[0][1]) > 20


def test_portfolio_mode_shares_cash_and_totals_balance(tmp_path, real_bars, scripted, make_engine):
    from tradewarden.strategy import build_strategy
    bars = {s: real_bars[s].slice(0, 4000) for s in ("BTC-USD", "ETH-USD", "SOL-USD")}
    engine, ledger = make_engine(tmp_path, build_strategy("donchian"), symbols=tuple(bars),
                                 capital="30000", capital_mode="portfolio",
                                 risk=RiskConfig(max_drawdown_halt=1.0))
    run_all(engine, bars)
    db = tmp_path / "ledger.db"
    pnl = sum(Decimal(p) for (p,) in q(db, "select pnl from trades"))
    assert q(db, "select distinct account from equity") == [("portfolio",)]
    final_cash = q(db, "select cash from equity order by seq desc limit 1")[0][0]
    assert final_cash == pytest.approx(float(Decimal(30000) + pnl), abs=1e-6)
    assert engine.accounts[0].cash == Decimal(30000) + pnl          # exact in Decimal
    # at some bar two symbols were open at once, sharing the one account
    overlaps = q(db, """select count(*) from trades a join trades b on a.symbol < b.symbol
                        and a.entry_ts < b.exit_ts and b.entry_ts < a.exit_ts""")[0][0]
    assert overlaps > 0


def test_unknown_symbol_and_out_of_order_chunk_are_refused(tmp_path, real_bars, scripted, make_engine):
    btc = real_bars["BTC-USD"]
    engine, ledger = make_engine(tmp_path, scripted())
    with pytest.raises(ValueError, match="unknown symbol 'ETH-USD'"):
        engine.process_chunk({"ETH-USD": real_bars["ETH-USD"].slice(0, 5)})
    engine.process_chunk({"BTC-USD": btc.slice(10, 20)})
    with pytest.raises(ValueError, match="not after"):
        engine.process_chunk({"BTC-USD": btc.slice(5, 15)})


@pytest.mark.parametrize("capital_mode", ["independent", "portfolio"])
def test_decision_equity_is_cash_plus_position_at_every_close(tmp_path, real_bars, make_engine, capital_mode):
    """The vectorised equity column equals a bar-by-bar replay of the recorded fills:
    cash (initial, minus buys with fees, plus sells less fees) plus quantity held times
    the close, for the decision's account."""
    from tradewarden.strategy import build_strategy

    symbols = ("BTC-USD", "SOL-USD")
    engine, ledger = make_engine(tmp_path, build_strategy("donchian"), symbols, capital_mode=capital_mode,
                                 capital="10000")
    for lo in range(0, 4000, 1000):
        engine.process_chunk({s: real_bars[s].slice(lo, lo + 1000) for s in symbols})
    engine.close_all()
    ledger.close()
    db = tmp_path / "ledger.db"
    fills = q(db, "select ts, symbol, side, cast(quantity as real), cast(price as real), cast(fee as real) "
                  "from fills order by fill_seq")
    decisions = q(db, "select ts, symbol, close, equity from decisions order by seq")
    assert len(fills) > 20
    account = {s: (s if capital_mode == "independent" else "portfolio") for s in symbols}
    cash = {a: 10000.0 for a in account.values()}
    qty = {s: 0.0 for s in symbols}
    last = {s: 0.0 for s in symbols}
    f = 0
    for ts, sym, close, equity in decisions:
        while f < len(fills) and fills[f][0] <= ts and (fills[f][0] < ts or fills[f][1] == sym):
            fts, fsym, side, fq, fp, fee = fills[f]
            sign = 1 if side == "buy" else -1
            cash[account[fsym]] -= sign * fq * fp + fee
            qty[fsym] += sign * fq
            f += 1
        last[sym] = close
        a = account[sym]
        expected = cash[a] + sum(qty[s] * last[s] for s in symbols if account[s] == a)
        assert equity == pytest.approx(expected, rel=1e-9, abs=1e-6), (ts, sym)
