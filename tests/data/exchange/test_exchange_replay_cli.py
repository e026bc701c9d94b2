"""`warden data` and `warden replay --exchange` against the loopback fake venue."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
from typer.testing import CliRunner

from tradewarden.cli import app
from tradewarden.data import download as download_mod
from tradewarden.data.cache import OhlcvCache

runner = CliRunner()
START, END = "2024-06-01", "2024-08-01"          # 1,464 hourly candles
N_BARS = (61 * 24)


@pytest.fixture
def fake_coinbase(venue_server, make_exchange, monkeypatch):
    """Make every ccxt client the CLI creates talk to the loopback fake Coinbase."""
    server = venue_server("coinbase")
    monkeypatch.setattr(download_mod, "create_exchange", lambda *a, **k: make_exchange(server))
    return server


def test_download_then_offline_replay_from_the_cache(tmp_path, fake_coinbase):
    cache_dir = tmp_path / "cache"
    res = runner.invoke(app, ["data", "download", "--exchange", "coinbase", "--symbols", "BTC-USD,ETH-USD",
                              "--start", START, "--end", END, "--cache-dir", str(cache_dir)])
    assert res.exit_code == 0, res.output
    assert "BTC-USD" in res.output and "1,464" in res.output
    requests = len(fake_coinbase.candle_log)
    assert requests == 2 * 5                     # 1,464 candles in pages of 300, per symbol
    # second download: everything cached, no candle request
    res = runner.invoke(app, ["data", "download", "--exchange", "coinbase", "--symbols", "BTC-USD",
                              "--start", START, "--end", END, "--cache-dir", str(cache_dir)])
    assert res.exit_code == 0 and len(fake_coinbase.candle_log) == requests
    db = tmp_path / "l.db"
    res = runner.invoke(app, ["replay", "--exchange", "coinbase", "--offline", "--cache-dir", str(cache_dir),
                              "--symbols", "BTC-USD,ETH-USD", "--start", START, "--end", END,
                              "--db", str(db), "--report-format", "json", "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["report"]["run"]["status"] == "completed"
    # fees and instrument specs came from the venue's cached market metadata
    from tradewarden.data.markets import load_market_specs
    spec = load_market_specs("coinbase", ["BTC-USD"], root=cache_dir, max_age_seconds=None)["BTC-USD"]
    with sqlite3.connect(db) as c:
        cfg = json.loads(c.execute("select config from runs").fetchone()[0])
        notes = c.execute("select notes from runs").fetchone()[0]
    assert cfg["fee_bps"] == float(spec.taker_bps) and cfg["maker_fee_bps"] == float(spec.maker_bps)
    assert cfg["timeframe"] == "1h"            # no --timeframe: the cache's default bar length
    assert "fees from coinbase market metadata" in notes
    with sqlite3.connect(db) as c:
        bars = c.execute("select count(*) from decisions where action != 'exit' or reason != 'end_of_data'").fetchone()[0]
        closes = np.array([r[0] for r in c.execute(
            "select close from decisions where symbol='BTC-USD' and reason != 'end_of_data' order by ts")])
    assert bars == 2 * N_BARS
    cached = OhlcvCache(cache_dir).read("coinbase", "BTC-USD", "1h")
    assert np.array_equal(closes, cached["close"].to_numpy())
    assert len(fake_coinbase.candle_log) == requests          # offline: no request


def test_replay_downloads_missing_ranges_unless_offline(tmp_path, fake_coinbase):
    cache_dir = tmp_path / "cache"
    args = ["replay", "--exchange", "coinbase", "--cache-dir", str(cache_dir), "--symbols", "BTC-USD",
            "--start", START, "--end", END, "--db", str(tmp_path / "l.db"), "--report-format", "console"]
    res = runner.invoke(app, args + ["--offline"])
    assert res.exit_code == 2
    assert "offline and not cached" in res.output
    assert "BTC-USD: [2024-06-01T00:00:00Z, 2024-08-01T00:00:00Z)" in res.output
    assert fake_coinbase.candle_log == []
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert len(fake_coinbase.candle_log) == 5
    assert OhlcvCache(cache_dir).missing_ranges("coinbase", "BTC-USD", "1h",
                                                1717200000, 1722470400) == []


def test_replay_without_network_names_the_missing_ranges(tmp_path, monkeypatch, sleeps):
    """No venue reachable (the network guard refuses the real host): the error names what is missing."""
    import functools
    monkeypatch.setattr(download_mod, "download_ohlcv",
                        functools.partial(download_mod.download_ohlcv, sleep=sleeps))
    res = runner.invoke(app, ["replay", "--exchange", "kraken", "--cache-dir", str(tmp_path / "c"),
                              "--symbols", "ETH-USD", "--start", "2024-07-01", "--end", "2024-07-02",
                              "--db", str(tmp_path / "l.db"), "--report-format", "console"])
    assert res.exit_code == 2
    assert "not cached: ETH-USD: [2024-07-01T00:00:00Z, 2024-07-02T00:00:00Z)" in res.output
    assert "download failed" in res.output and "Traceback" not in res.output
    assert len(sleeps.calls) == 6                      # retried with backoff, then gave up


def test_exchange_needs_a_range_and_excludes_data(tmp_path):
    res = runner.invoke(app, ["replay", "--exchange", "coinbase", "--offline", "--db", str(tmp_path / "l.db")])
    assert res.exit_code == 2 and "--start and --end" in res.output
    res = runner.invoke(app, ["replay", "--exchange", "coinbase", "--data", str(tmp_path), "--start", START,
                              "--end", END, "--db", str(tmp_path / "l.db")])
    assert res.exit_code == 2 and "exclusive" in res.output


def test_data_list_and_check_show_cached_series_and_gaps(tmp_path, fake_coinbase):
    cache_dir = tmp_path / "cache"
    # a range across the real 2025-10-25 gap in the bundled data (6 h missing)
    res = runner.invoke(app, ["data", "download", "--exchange", "coinbase", "--symbols", "BTC-USD",
                              "--start", "2025-10-20", "--end", "2025-10-30", "--cache-dir", str(cache_dir)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["data", "list", "--cache-dir", str(cache_dir)], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    assert "cache:coinbase" in res.output and "bundled" in res.output
    spy = next(ln for ln in res.output.splitlines() if ln.startswith("spy"))
    assert "757" in spy and spy.split()[-3:] == ["0", "0", "0"]     # NYSE: no gaps in 2008-2010
    line = next(ln for ln in res.output.splitlines() if "cache:coinbase" in ln)
    assert "235" in line                          # 240 hourly slots less the 5 missing bars
    res = runner.invoke(app, ["data", "check", "BTC-USD", "--exchange", "coinbase", "--cache-dir",
                              str(cache_dir)], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    assert "gaps 1, missing bars 5" in res.output
    assert "2025-10-25T15:00:00Z" in res.output and "5 bars" in res.output


def test_check_user_file_and_calendar(tmp_path):
    from tradewarden.data.equities import bundled_equity_path
    res = runner.invoke(app, ["data", "check", str(bundled_equity_path("spy")), "--calendar", "XNYS"],
                        env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "XNYS: 0 missing sessions in 0 gaps, 0 rows on non-session days" in res.output
    assert "757 rows" in res.output
