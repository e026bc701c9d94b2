"""Replay of the bundled daily US equities: AAPL and MSFT 2012-2015 in portfolio mode.

The default adjustment (split) keeps AAPL's 7:1 split of 2014-06-09 from becoming a
trade; ``adjust="raw"`` reproduces the fake 86 % stop-loss the issue describes, and says
so (a warning, the run's data marked degraded). The headline figures of the default run
are pinned in ``golden_equities_replay.json``: regenerate with ``UPDATE_GOLDEN=1``.
"""

from __future__ import annotations

import json
import os
import sqlite3
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from tradewarden.engine.config import RunConfig
from tradewarden.ledger import Ledger
from tradewarden.ops.kernel import run_replay
from tradewarden.ops.replay import EQUITY_FEE_BPS, config_from_json

GOLDEN = Path(__file__).with_name("golden_equities_replay.json")
SPLIT_DAY = int(pd.Timestamp("2014-06-09").timestamp())
CONFIG = RunConfig(symbols=("AAPL", "MSFT"), capital_mode="portfolio")


def q(db, sql, *args):
    with sqlite3.connect(db) as c:
        return c.execute(sql, args).fetchall()


def _replay(tmp_path_factory, name: str, config: RunConfig):
    db = tmp_path_factory.mktemp(name) / "ledger.db"
    ledger = Ledger(db, background=True)
    result = run_replay(config, ledger, run_id=name)
    ledger.close()
    return db, result


@pytest.fixture(scope="module")
def split_run(tmp_path_factory):
    return _replay(tmp_path_factory, "equities", CONFIG)


@pytest.fixture(scope="module")
def raw_run(tmp_path_factory):
    return _replay(tmp_path_factory, "raw", CONFIG.model_copy(update={"adjust": "raw"}))


def headline(db, run_id: str) -> dict:
    """Per symbol: closed trades, win rate, profit factor, net PnL; and the account's end."""
    out: dict = {}
    for (sym,) in q(db, "select distinct symbol from trades where run_id=? order by symbol", run_id):
        pnl = [Decimal(p) for (p,) in q(db, "select pnl from trades where run_id=? and symbol=?",
                                        run_id, sym)]
        wins = [p for p in pnl if p > 0]
        losses = [p for p in pnl if p < 0]
        out[sym] = {"closed_trades": len(pnl), "win_rate": round(len(wins) / len(pnl), 6),
                    "profit_factor": round(float(sum(wins) / -sum(losses)), 6),
                    "net_pnl": str(sum(pnl))}
    (final,), = q(db, "select equity from decisions where run_id=? order by seq desc limit 1", run_id)
    out["portfolio"] = {"final_equity": round(final, 6),
                        "bars": q(db, "select bars_processed from runs where run_id=?", run_id)[0][0]}
    return out


def test_aapl_msft_daily_replay_matches_golden_statistics(split_run):
    """Any change to these figures must be deliberate: regenerate with UPDATE_GOLDEN=1."""
    db, _ = split_run
    stats = headline(db, "equities")
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(stats, indent=2, sort_keys=True) + "\n")
    assert stats == json.loads(GOLDEN.read_text())
    assert stats["portfolio"]["bars"] == 2 * 1006


def test_the_run_records_its_adjustment_fees_and_clean_nyse_data(split_run):
    db, result = split_run
    (status, integrity, quality, cfg_json, timeframe, capital_mode), = q(
        db, "select status, data_integrity, data_quality, config, timeframe, capital_mode "
            "from runs")
    assert (status, integrity, timeframe, capital_mode) == ("completed", "ok", "1d", "portfolio")
    config = config_from_json(cfg_json)
    assert config.adjust == "split"                          # the default, recorded
    assert config.fee_bps == config.maker_fee_bps == EQUITY_FEE_BPS
    for sym, info in json.loads(quality).items():            # holidays are not gaps
        assert (info["rows"], info["gaps"], info["missing_bars"]) == (1006, 0, 0), sym
        assert info["split_suspects"] == [] and info["status"] == "ok"
    assert not any("split" in w for w in result.warnings)
    assert any("US equity default" in w for w in result.warnings)
    # whole shares, prices in cents
    for qty, price in q(db, "select quantity, price from fills"):
        assert Decimal(qty) == Decimal(qty).to_integral_value() and Decimal(qty) > 0
        assert Decimal(price).as_tuple().exponent >= -2


def test_trades_are_sane_across_aapls_split(split_run):
    """No trade loses more than a normal stop-loss; the one open across 2014-06-09 is flat."""
    db, _ = split_run
    trades = q(db, "select symbol, entry_ts, exit_ts, entry_price, exit_price, pnl from trades "
                   "where run_id='equities'")
    assert len(trades) > 40
    for sym, entry_ts, exit_ts, entry, exit_, pnl in trades:
        move = float(Decimal(exit_) / Decimal(entry) - 1)
        assert -0.15 < move < 0.25, (sym, entry_ts, entry, exit_)
        assert Decimal(pnl) > -400                           # about 1 % risk of 10,000, plus a gap
    across = [t for t in trades if t[0] == "AAPL" and t[1] < SPLIT_DAY <= t[2]]
    assert len(across) == 1
    _, _, _, entry, exit_, _ = across[0]
    assert abs(float(Decimal(exit_) / Decimal(entry)) - 1) < 0.05


def test_raw_prices_show_the_split_warning_and_the_fake_crash(raw_run):
    db, result = raw_run
    warning = next(w for w in result.warnings if "unadjusted split" in w)
    assert "2014-06-09" in warning and "7:1" in warning and "--adjust raw" in warning
    assert result.data_integrity == "degraded"
    (integrity, cfg_json, quality), = q(db, "select data_integrity, config, data_quality from runs")
    assert integrity == "degraded" and config_from_json(cfg_json).adjust == "raw"
    assert json.loads(quality)["AAPL"]["split_suspects"][0].startswith("2014-06-09")
    # what the warning is about: a stop-loss "trade" of about -86 % on the split day
    crash = q(db, "select entry_price, exit_price, exit_reason from trades where symbol='AAPL' "
                  "and exit_ts=?", SPLIT_DAY)
    assert len(crash) == 1 and crash[0][2] == "stop_loss"
    assert float(Decimal(crash[0][1]) / Decimal(crash[0][0])) < 0.15
