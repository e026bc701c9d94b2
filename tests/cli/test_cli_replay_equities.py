"""`warden replay` of the bundled US equities, `--adjust`, and `warden data list/check` for them.

Bad flags and unknown tickers are one line on stderr, exit 2, no traceback, no run.
"""

from __future__ import annotations

import json
import sqlite3

import pandas as pd
import pytest
from typer.testing import CliRunner

from tradewarden.cli import app
from tradewarden.data.equities import bundled_equity_path

runner = CliRunner()
EQUITIES = ["--symbols", "AAPL,MSFT", "--start", "2014-01-01", "--end", "2015-01-01"]


def invoke(*args: str, width: int = 200):
    return runner.invoke(app, list(args), catch_exceptions=False, terminal_width=width,
                         env={"COLUMNS": str(width)})


def one_line_error(res, *needles: str) -> str:
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and res.stdout == ""
    text = " ".join(res.stderr.split())
    assert text.startswith("error: ") and text.count("error: ") == 1, text
    for needle in needles:
        assert needle in text, text
    return text


def test_replay_of_aapl_msft_daily_in_portfolio_mode_records_the_adjustment(tmp_path):
    db = tmp_path / "l.db"
    res = invoke("replay", *EQUITIES, "--timeframe", "1d", "--capital-mode", "portfolio",
                 "--db", str(db), "--out", str(tmp_path / "r"), "--report-format", "json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["report"]["run"]["symbols"] == ["AAPL", "MSFT"]
    assert "US equity default" in res.stderr and "split" not in res.stderr.lower()
    with sqlite3.connect(db) as c:
        (cfg, integrity, timeframe), = c.execute(
            "select config, data_integrity, timeframe from runs").fetchall()
        assert c.execute("select count(distinct ts) from decisions").fetchone()[0] == 252
    cfg = json.loads(cfg)
    assert (cfg["adjust"], cfg["capital_mode"], cfg["fee_bps"], timeframe, integrity) == \
        ("split", "portfolio", 1.0, "1d", "ok")


def test_adjust_raw_warns_about_the_split_and_an_explicit_fee_is_kept(tmp_path):
    db = tmp_path / "l.db"
    res = invoke("replay", "--symbols", "AAPL", "--start", "2014-05-01", "--end", "2014-07-01",
                 "--adjust", "raw", "--fee-bps", "3", "--db", str(db), "--out", str(tmp_path / "r"),
                 "--report-format", "json")
    assert res.exit_code == 0, res.output
    err = " ".join(res.stderr.split())
    assert "warning: AAPL: possible unadjusted split" in err and "2014-06-09" in err and "7:1" in err
    assert "US equity default" not in err
    with sqlite3.connect(db) as c:
        (cfg, integrity), = c.execute("select config, data_integrity from runs").fetchall()
    cfg = json.loads(cfg)
    assert (cfg["adjust"], cfg["fee_bps"], integrity) == ("raw", 3.0, "degraded")


@pytest.mark.parametrize(("flags", "needles"), [
    (["--symbols", "AAPL", "--adjust", "bogus"],
     ["--adjust bogus", "'raw', 'split' or 'split_dividend'"]),
    (["--symbols", "TSLA"], ["'TSLA'", "AAPL, JPM, MSFT, NVDA, XOM, SPY", "BTC-USD (1h)"]),
    (["--symbols", "VIX", "--timeframe", "1d"], ["VIX is the CBOE volatility index", "not tradable"]),
    (["--symbols", "AAPL", "--timeframe", "1h"], ["finer than the data's 1d bars for AAPL"]),
    (["--symbols", "AAPL", "--set", "adjust=both"], ["--set adjust", "'raw', 'split'"]),
])
def test_bad_flags_and_unknown_tickers_are_one_line_and_no_run(tmp_path, flags, needles):
    db = tmp_path / "l.db"
    res = invoke("replay", *flags, "--db", str(db), "--out", str(tmp_path / "r"))
    one_line_error(res, *needles)
    if db.exists():
        with sqlite3.connect(db) as c:
            assert c.execute("select count(*) from runs").fetchone()[0] == 0


def test_a_user_csv_with_split_coefficients_and_a_plain_one(tmp_path):
    rows = pd.read_csv(bundled_equity_path("equities"), dtype=str, keep_default_na=False)
    aapl = rows[rows["symbol"] == "AAPL"].drop(columns=["symbol"])
    aapl.to_csv(tmp_path / "AAPL.csv", index=False)
    res = invoke("replay", "--data", str(tmp_path / "AAPL.csv"), "--symbols", "AAPL",
                 "--adjust", "split", "--db", str(tmp_path / "l.db"), "--out", str(tmp_path / "r"),
                 "--report-format", "json")
    assert res.exit_code == 0, res.output
    assert "unadjusted split" not in res.stderr
    plain = aapl[["timestamp", "open", "high", "low", "close", "volume"]]
    plain.to_csv(tmp_path / "plain.csv", index=False)
    res = invoke("replay", "--data", str(tmp_path / "plain.csv"), "--symbols", "AAPL",
                 "--adjust", "split", "--db", str(tmp_path / "l.db"))
    one_line_error(res, "plain.csv", "--adjust split needs a split column")


def test_data_check_warns_about_an_unadjusted_split_naming_file_date_and_ratio(tmp_path):
    rows = pd.read_csv(bundled_equity_path("equities"), dtype=str, keep_default_na=False)
    raw = rows[rows["symbol"] == "AAPL"][["timestamp", "open", "high", "low", "close", "volume"]]
    path = tmp_path / "AAPL.csv"
    raw.to_csv(path, index=False)
    res = invoke("data", "check", str(path))
    assert res.exit_code == 0, res.output
    text = " ".join(res.stdout.split())
    assert "status degraded" in text and "status ok" not in text
    assert f"warning: {path}: AAPL: 2014-06-09" in text and "7:1 split" in text
    assert "XNYS: 0 missing sessions in 0 gaps" in text            # holidays are not gaps
    ok = " ".join(invoke("data", "check", "AAPL").stdout.split())     # bundled, split-adjusted
    assert "status ok" in ok and "warning" not in ok
    raw_bundled = " ".join(invoke("data", "check", "AAPL", "--adjust", "raw").stdout.split())
    assert "status degraded" in raw_bundled and "2014-06-09" in raw_bundled


def test_data_list_shows_what_replay_can_use_and_how_to_use_the_rest():
    res = invoke("data", "list", width=80)
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines)
    usable, _, other = res.stdout.partition("bundled for other uses")
    for sym in ("BTC-USD", "AAPL", "JPM", "MSFT", "NVDA", "XOM", "SPY"):
        assert f" {sym} " in usable
    assert "VIX" not in usable and "--symbols AAPL,MSFT" in " ".join(usable.split())
    flat = " ".join(other.split())
    assert "VIX, the CBOE volatility index" in flat and "not tradable" in flat
    assert "put writer" in flat and "no OHLCV" in flat


def test_replay_help_says_the_adjust_default_and_why():
    text = " ".join(invoke("replay", "--help").stdout.split())
    assert "--adjust raw|split|split_dividend" in text
    assert "[default: split: raw prices turn a split into a fake crash" in text
