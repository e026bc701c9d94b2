"""The HTML report: Plotly figures from the ledger, candles from the run's bars (checked
against the ledger's closes), exact trade markers, halts, and a self-contained page.

The page is read back the way plotly.js gets it: the arguments of each
``Plotly.newPlot(id, data, layout, config)`` call, typed arrays decoded.
"""

from __future__ import annotations

import re
from dataclasses import replace
from html import unescape
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tradewarden.analytics import build_report, write_html
from tradewarden.analytics.charts import downsample
from tradewarden.analytics.pagedata import (
    aggregate,
    candles_for,
    display_bucket,
    halt_periods,
    read_symbol_series,
)

from _analytics_ledger import D, H, T0, Ledger
from _page import arr, figures


def trace(traces: list[dict], name: str) -> dict:
    found = [t for t in traces if t.get("name") == name]
    assert len(found) == 1, [t.get("name") for t in traces]
    return found[0]


def outside_plotlyjs(html: str) -> str:
    """The page without the inlined plotly.js bundle (whose source holds URL strings)."""
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs()
    assert html.count(js) == 1
    return html.replace(js, "")


# --------------------------------------------------------------------------- real run

@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """Two months of bundled BTC-USD 1h bars (1,416) through the default Donchian, with a
    loss-streak halt after 3 losses (lifted after its cool-down) and a 4 % drawdown halt
    (never lifted)."""
    import tradewarden

    db = tmp_path_factory.mktemp("html") / "ledger.db"
    run = tradewarden.replay(db=str(db), symbols="BTC-USD", start="2025-01-01",
                             end="2025-03-01",
                             risk={"max_consecutive_losses": 3, "max_drawdown_halt": 0.04})
    return run


def _page(run, tmp_path: Path, bars=None, name: str = "r.html") -> str:
    """The page of ``run``, HTML entities decoded."""
    engine = run.engine()
    report = build_report(engine, run.run_id)
    return unescape(write_html(report, engine, tmp_path / name, bars).read_text("utf-8"))


@pytest.fixture(scope="module")
def real_page(real_run, tmp_path_factory) -> str:
    """The real run's page with its bars read again from the bundled sample."""
    from tradewarden.ops.report_bars import run_bars

    bars = run_bars(real_run.engine(), real_run.run_id)
    return _page(real_run, tmp_path_factory.mktemp("page"), bars)


def halt_shapes(layout: dict) -> list[dict]:
    return [s for s in layout.get("shapes", []) if "label" in s]


def test_candles_are_the_source_bars_aggregated_and_markers_exact(real_run, real_page) -> None:
    from tradewarden.ops.report_bars import run_bars

    engine = real_run.engine()
    btc = run_bars(engine, real_run.run_id)["BTC-USD"]
    html = real_page
    figs = figures(html)
    assert set(figs) == {"chart-equity", "chart-pnl", "chart-monthly", "chart-symbol-0"}
    traces, layout = figs["chart-symbol-0"]
    assert "Candles not shown" not in html

    # 1,416 hourly bars > 1,200: drawn as 2-hour candles, OHLCV as pandas resamples them
    candle = next(t for t in traces if t["type"] == "candlestick")
    assert "2-hour candles aggregated from 1,416 bars" in layout["title"]["text"]
    frame = pd.DataFrame({"open": btc.open, "high": btc.high, "low": btc.low,
                          "close": btc.close, "volume": btc.volume},
                         index=pd.to_datetime(btc.ts, unit="s", utc=True))
    frame = frame["2025-01-01":"2025-02-28 23:00"]
    want = frame.resample("2h").agg({"open": "first", "high": "max", "low": "min",
                                     "close": "last", "volume": "sum"})
    assert len(arr(candle["x"])) == len(want) == 708
    np.testing.assert_array_equal(arr(candle["x"]), want.index.as_unit("ms").asi8)
    for col in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(arr(candle[col]), want[col].to_numpy())
    volume = next(t for t in traces if t["type"] == "bar")
    np.testing.assert_allclose(arr(volume["y"]), want["volume"].to_numpy(), rtol=1e-12)

    # every trade's entry and exit at its exact fill time and price
    trades = pd.read_sql("select * from trades", engine)
    assert len(trades) > 5
    entry = trace(traces, "entry")
    got = sorted(zip(arr(entry["x"]).tolist(), entry["customdata"]))
    want_entries = sorted(zip((trades["entry_ts"] * 1000).tolist(), trades["entry_price"]))
    assert [(x, c[2]) for x, c in got] == [(x, str(p)) for x, p in want_entries]
    assert {c[3] for _, c in got} == {"breakout"}             # the entry decision's reason
    exits = [t for t in traces if str(t.get("name", "")).startswith("exit: ")]
    assert sum(len(t["customdata"]) for t in exits) == len(trades)
    stop = trace(traces, "exit: stop_loss")
    row = trades[trades["exit_reason"] == "stop_loss"].sort_values("exit_ts").iloc[0]
    k = int(np.flatnonzero(arr(stop["x"]) == row["exit_ts"] * 1000)[0])
    assert stop["customdata"][k][1] == str(row["exit_price"])
    assert stop["customdata"][k][2] == f"{float(row['pnl']):,.2f}"
    assert stop["customdata"][k][3] == f"{row['return_pct']:+.2f}%"

    # the Donchian channel over the price, the ATR in a row of its own
    assert {"upper", "lower", "atr"} <= {t.get("name") for t in traces}
    assert trace(traces, "upper")["yaxis"] == "y" and trace(traces, "atr")["yaxis"] == "y3"
    # price, volume and ATR rows share one x axis (zoom and pan move them together)
    assert layout["xaxis"]["matches"] == layout["xaxis2"]["matches"] == "x3"
    assert layout["xaxis"]["rangeslider"]["visible"] is False


def test_halts_are_shaded_with_their_reason(real_run, real_page) -> None:
    engine = real_run.engine()
    halts = halt_periods(engine, real_run.run_id)
    streaks = [h for h in halts if h.kind == "consecutive_losses"]
    drawdown = [h for h in halts if h.kind == "max_drawdown"]
    assert streaks and all(h.end is not None and h.end > h.start for h in streaks)
    assert len(drawdown) == 1 and drawdown[0].end is None       # never lifted
    _, layout = figures(real_page)["chart-symbol-0"]
    shapes = halt_shapes(layout)
    assert len(shapes) == len(halts)
    labels = [s["label"]["text"] for s in shapes]
    assert "loss-streak halt (3 losses in a row)" in labels
    assert any(re.fullmatch(r"drawdown halt \(\d+\.\d% below peak\)", t) for t in labels)
    last = max(s["x1"] for s in shapes)
    assert last == int(pd.read_sql("select max(ts) as t from decisions", engine)["t"][0]) * 1000
    assert sum(bool(s["showlegend"]) for s in shapes) == 2      # one legend entry per kind


def test_bars_that_differ_from_the_ledger_are_not_drawn(real_run, tmp_path) -> None:
    from tradewarden.ops.report_bars import run_bars

    btc = run_bars(real_run.engine(), real_run.run_id)["BTC-USD"]
    close = btc.close.copy()
    k = int(np.searchsorted(btc.ts, 1738000800))                # 2025-01-27 18:00
    close[k] *= 1.01
    html = _page(real_run, tmp_path, {"BTC-USD": replace(btc, close=close)})
    assert ("Candles not shown: bundled:coinbase_spot_BTC-USD_1h.csv.gz differs from the "
            "ledger's closes at 1 of 1,416 bars (first: 2025-01-27 18:00 UTC") in html
    traces, _ = figures(html)["chart-symbol-0"]
    assert not any(t["type"] == "candlestick" for t in traces)
    line = trace(traces, "close")
    assert len(arr(line["x"])) == 1416                          # below 2,000: every bar

    gone = _page(real_run, tmp_path, "the run's bars could not be read again: gone.csv: "
                                     "no such file")
    assert "Candles not shown: the run's bars could not be read again: gone.csv" in gone


def test_equity_buy_and_hold_monthly_and_pnl_charts(real_run, real_page) -> None:
    engine = real_run.engine()
    report = build_report(engine, real_run.run_id)
    figs = figures(real_page)
    traces, _ = figs["chart-equity"]
    strategy, bh, dd = (trace(traces, n) for n in ("strategy", "buy and hold", "drawdown"))
    assert arr(strategy["y"])[-1] == pytest.approx(report.risk.final_equity)
    assert arr(dd["y"]).min() == pytest.approx(-report.risk.max_drawdown_pct)
    closes = pd.read_sql("select ts, close from decisions order by ts, seq", engine)
    first, last = closes["close"].iloc[0], closes["close"].iloc[-1]
    assert arr(bh["y"])[-1] == pytest.approx(10000 * last / first)
    assert arr(bh["y"])[-1] == pytest.approx(report.performance.buy_hold_final_equity)

    heat, _ = figs["chart-monthly"]
    z = np.array(heat[0]["z"], dtype=float)
    months = {(m.year, m.month): m.return_pct for m in report.performance.monthly_returns}
    assert z.shape == (1, 12) and heat[0]["y"][0].startswith("2025  (")
    assert z[0, 0] == pytest.approx(months[(2025, 1)]) and z[0, 1] == pytest.approx(
        months[(2025, 2)])
    assert np.isnan(z[0, 2:]).all()

    pnl, _ = figs["chart-pnl"]
    assert [t["name"] for t in pnl] == ["BTC-USD"]
    assert len(arr(pnl[0]["x"])) == report.trades.closed_trades


# --------------------------------------------------------------------------- hand ledgers

def test_page_is_self_contained(hand_run: Ledger, tmp_path) -> None:
    from plotly.offline import get_plotlyjs

    rep = build_report(hand_run.engine, "r-hand")
    html = write_html(rep, hand_run.engine, tmp_path / "report.html").read_text("utf-8")
    assert html.startswith("<!DOCTYPE html>") and "r-hand" in html
    assert f'<script type="text/javascript">{get_plotlyjs()}</script>' in html
    rest = outside_plotlyjs(html)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", rest, re.I)
    assert "<link" not in rest.lower() and "@import" not in rest and "url(" not in rest
    assert "cdn" not in rest.lower() and "mathjax" not in rest.lower()
    assert set(figures(html)) == {"chart-equity", "chart-pnl", "chart-monthly",
                                  "chart-symbol-0", "chart-symbol-1"}
    assert 'class="verdict FAIL"' in html and "Performance" in html


def test_hand_trades_without_bars(hand_run: Ledger, tmp_path) -> None:
    rep = build_report(hand_run.engine, "r-hand")
    html = write_html(rep, hand_run.engine, tmp_path / "report.html").read_text("utf-8")
    assert html.count("Candles not shown: the run&#x27;s bars were not read again.") == 2
    traces, _ = figures(html)["chart-symbol-0"]                  # BTC-USD
    line = trace(traces, "close")
    np.testing.assert_array_equal(arr(line["x"]), (T0 + np.arange(120) * H) * 1000)
    assert arr(line["y"])[5] == 60050.0
    entry = trace(traces, "entry")
    np.testing.assert_array_equal(arr(entry["x"]), np.array([T0, T0 + D, T0 + 2 * D]) * 1000)
    assert [c[2] for c in entry["customdata"]] == ["60000.00", "61000.00", "59500.00"]
    stops = trace(traces, "exit: stop_loss")
    assert [c[1:] for c in stops["customdata"]] == [["59780.00", "-134.08", "-2.20%"],
                                                   ["59000.00", "-61.85", "-1.04%"]]
    assert "PnL %{customdata[2]}" in stops["hovertemplate"]
    assert "reason stop_loss" in stops["hovertemplate"]
    assert trace(traces, "exit: take_profit")["customdata"][0][2] == "107.88"


def test_long_series_is_thinned_and_unfinished_run_flagged(ledger: Ledger, tmp_path) -> None:
    ledger.add_run("r-long", status="running", completed_at=None)
    n = 5000
    ledger.add_decisions("r-long", [(T0 + i * 60, "BTC-USD", "hold", "no_signal",
                                     60000.0 + (i % 500) - (3000.0 if i == 3777 else 0.0))
                                    for i in range(n)])
    rep = build_report(ledger.engine, "r-long")
    html = write_html(rep, ledger.engine, tmp_path / "long.html").read_text("utf-8")
    assert "RUN NOT COMPLETED" in html and 'class="verdict FAIL"' in html
    line = trace(figures(html)["chart-symbol-0"][0], "close")
    y = arr(line["y"])
    assert 100 < len(y) <= 2000 and y.min() == 57277.0          # the spike survives
    assert len(outside_plotlyjs(html)) < 400_000


def test_empty_run_renders(ledger: Ledger, tmp_path) -> None:
    ledger.add_run("r-empty", capital_mode="portfolio", symbols=["BTC-USD", "ETH-USD"],
                   initial_capital="25000.00", data_quality=None)
    rep = build_report(ledger.engine, "r-empty")
    html = write_html(rep, ledger.engine, tmp_path / "e.html").read_text("utf-8")
    assert "No equity curve in the ledger." in html and "No closed trades." in html
    assert html.count("the ledger holds no close for this symbol") == 2
    assert set(figures(html)) == {"chart-symbol-0", "chart-symbol-1"}


def test_portfolio_halts_shade_the_equity_chart(ledger: Ledger, tmp_path) -> None:
    from sqlalchemy import insert

    from tradewarden.ledger import schema

    ledger.add_run("r-pf", capital_mode="portfolio", symbols=["BTC-USD", "ETH-USD"],
                   initial_capital="20000", trades_closed=1)
    ledger.add_decisions("r-pf", [(T0 + i * H, s, "hold", "no_signal", p + i)
                                  for i in range(48) for s, p in (("BTC-USD", 60000.0),
                                                                  ("ETH-USD", 3000.0))])
    ledger.add_trades("r-pf", [dict(symbol="ETH-USD", quantity="2.0", entry_ts=T0 + 5 * H,
                                    exit_ts=T0 + 30 * H, entry_price="3005.00",
                                    exit_price="3030.00", fees="12.07", pnl="37.93",
                                    exit_reason="signal")])
    ledger.add_equity("r-pf", [("portfolio", T0 + 5 * H, 19994.0),
                               ("portfolio", T0 + 30 * H, 20037.93)])
    with ledger.engine.begin() as conn:
        conn.execute(insert(schema.events), [
            dict(run_id="r-pf", seq=0, ts=T0 + 10 * H, kind="halt", symbol="portfolio",
                 message="daily_loss:512.25"),
            dict(run_id="r-pf", seq=1, ts=T0 + 24 * H, kind="reset", symbol="portfolio",
                 message="new UTC day (was: daily_loss:512.25)"),
            dict(run_id="r-pf", seq=2, ts=T0 + 40 * H, kind="halt", symbol="portfolio",
                 message="kill_switch:ana")])
    rep = build_report(ledger.engine, "r-pf")
    figs = figures(write_html(rep, ledger.engine, tmp_path / "pf.html").read_text("utf-8"))
    for chart in ("chart-equity", "chart-symbol-0", "chart-symbol-1"):
        shapes = halt_shapes(figs[chart][1])
        assert [(s["x0"], s["x1"], s["label"]["text"]) for s in shapes] == [
            ((T0 + 10 * H) * 1000, (T0 + 24 * H) * 1000, "daily loss halt (lost 512.25 today)"),
            ((T0 + 40 * H) * 1000, (T0 + 47 * H) * 1000, "kill switch (ana)")]
    assert [t["name"] for t in figs["chart-symbol-0"][0]] == ["close"]   # BTC: no trades
    assert trace(figs["chart-symbol-1"][0], "exit: signal")["customdata"][0][2] == "37.93"


# --------------------------------------------------------------------------- units

def test_display_bucket_and_aggregate() -> None:
    assert display_bucket(3600, T0, T0 + 999 * H, 1000) == 3600          # few: as they are
    assert display_bucket(3600, T0, T0 + 17989 * H, 17990) == 86400      # 750 daily candles
    assert display_bucket(60, T0, T0 + 3_000_000 * 60, 3_000_001) == 2 * 86400
    ts = T0 + np.arange(10, dtype=np.int64) * H
    starts, cols = aggregate(ts, 4 * H, first={"o": np.arange(10.0)},
                             high={"h": np.arange(10.0) + 1}, low={"l": np.arange(10.0) - 1},
                             last={"c": np.array([1, 2, 3, 4, 5, 6, 7, 8, np.nan, np.nan])},
                             total={"v": np.ones(10)})
    np.testing.assert_array_equal(starts, [T0, T0 + 4 * H, T0 + 8 * H])
    np.testing.assert_array_equal(cols["o"], [0, 4, 8])
    np.testing.assert_array_equal(cols["h"], [4, 8, 10])
    np.testing.assert_array_equal(cols["l"], [-1, 3, 7])
    np.testing.assert_array_equal(cols["c"], [4, 8, np.nan])
    np.testing.assert_array_equal(cols["v"], [4, 4, 2])


def test_candles_need_every_ledger_bar(hand_run: Ledger) -> None:
    from tradewarden.domain.values import BarSeries

    s = read_symbol_series(hand_run.engine, "r-hand", ["BTC-USD"], ["fast", "slow"])["BTC-USD"]
    assert len(s) == 120 and set(s.inputs) == {"fast", "slow"}
    ts = np.concatenate([[T0 - H], s.ts, [s.ts[-1] + H]])
    close = np.concatenate([[1.0], s.close, [2.0]])
    bars = BarSeries("BTC-USD", "1h", ts, close, close, close, close, np.ones(len(ts)), "f.csv")
    ok = candles_for(s, bars)
    assert ok.note == "" and len(ok.bars) == 120 and ok.bars.ts[0] == T0  # cut to the run
    short = candles_for(s, bars.slice(0, 60))
    assert short.bars is None and short.note == (
        "f.csv no longer holds 61 of the 120 bars the ledger recorded (first: "
        "2024-01-03 11:00 UTC)")


def test_downsample_keeps_extremes_and_bounds_size() -> None:
    ts = np.arange(100_000, dtype=np.int64) * 60 + T0
    vals = 60000 + np.sin(np.arange(100_000) / 500.0) * 1000
    vals[54321] = 50000.0
    vals[123] = 70000.0
    t2, v2 = downsample(ts, vals, 2000)
    assert len(v2) <= 2000 and v2.min() == 50000.0 and v2.max() == 70000.0
    assert t2[0] == ts[0] and t2[-1] == ts[-1] and np.all(np.diff(t2) > 0)


def test_series_keep_the_last_decision_of_each_bar_in_time_order(ledger: Ledger) -> None:
    ledger.add_run("r-dup", symbols=["BTC-USD", "ETH-USD"])
    ledger.add_decisions("r-dup", [(T0 + H, "BTC-USD", "exit", "signal", 2.0),
                                   (T0, "BTC-USD", "hold", "x", 1.0),
                                   (T0 + H, "ETH-USD", "hold", "x", 9.0),
                                   (T0 + H, "BTC-USD", "enter_long", "breakout", 3.0)])
    got = read_symbol_series(ledger.engine, "r-dup", ["BTC-USD", "ETH-USD", "SOL-USD"], [])
    assert got["BTC-USD"].ts.tolist() == [T0, T0 + H] and got["BTC-USD"].close.tolist() == [
        1.0, 3.0]
    assert got["ETH-USD"].close.tolist() == [9.0] and len(got["SOL-USD"]) == 0
