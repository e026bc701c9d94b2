"""The chunked report figures (scan_run, equity_chart, price_series, decision_stats) against
the straightforward whole-curve computation, on ledgers built to stress the chunking:
several accounts, both capital modes, marks at equal timestamps, NULL equity, an account
only the decisions name, decisions whose seq order is not time order, tiny chunks."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import create_engine, func, insert, select

import tradewarden.analytics.metrics as metrics
from tradewarden.analytics import build_report, risk_stats
from tradewarden.analytics.charts import downsample
from tradewarden.analytics.metrics import (chart_series, decision_stats, equity_chart,
                                           load_equity_curve,
                                           load_run, load_trades, price_series, scan_run,
                                           summarize_risk)
from tradewarden.ledger import schema

from _analytics_ledger import D, H, HAND_TRADES, T0, Ledger

SYMBOLS = ["BTC-USD", "ETH-USD", "SOL-USD"]


def _fill(led: Ledger, run_id: str, *, mode: str, seed: int, stray: str | None = None,
          unsorted: bool = False) -> None:
    """A run of ~60 bar times over 20 days (with whole days missing), decisions for a
    random subset of symbols per bar (a fifth without equity), and equity snapshots,
    several at one ts, some at the ts of a decision mark."""
    rng = np.random.default_rng(seed)
    capital = "10000" if mode == "independent" else "30000"
    led.add_run(run_id, capital_mode=mode, symbols=SYMBOLS, initial_capital=capital)
    times = T0 + np.sort(rng.choice(np.arange(0, 20 * D, H), size=60, replace=False))
    rows = []
    for ts in times.tolist():
        for sym in SYMBOLS:
            if rng.random() < 0.75:
                eq = None if rng.random() < 0.2 else float(np.round(rng.normal(1e4, 400), 2))
                rows.append(dict(ts=ts, symbol=sym, action="hold" if rng.random() < 0.8
                                 else rng.choice(["enter_long", "exit", "blocked"]),
                                 reason=rng.choice(["no_signal", "warmup", "stale_data"]),
                                 close=float(np.round(rng.normal(100, 5), 2)), equity=eq))
        if stray and rng.random() < 0.2:
            rows.append(dict(ts=ts, symbol=stray, action="hold", reason="no_signal",
                             close=1.0, equity=float(rng.normal(1e4, 100))))
    seqs = np.arange(len(rows))
    if unsorted:                                   # two rows recorded out of time order
        seqs[[5, 40]] = seqs[[40, 5]]
    with led.engine.begin() as conn:
        conn.execute(insert(schema.decisions), [
            dict(run_id=run_id, seq=int(q), state="flat", **r) for q, r in zip(seqs, rows)])
    accounts = SYMBOLS + ["XRP-USD"] if mode == "independent" else ["portfolio", "BTC-USD"]
    snaps = []
    for ts in rng.choice(times, size=25).tolist():
        for _ in range(int(rng.integers(1, 3))):   # one or two snapshots at this ts
            snaps.append((str(rng.choice(accounts)), int(ts) + int(rng.choice([0, 0, 1800])),
                          float(np.round(rng.normal(1e4 if mode == "independent" else 3e4,
                                                    300), 2))))
    led.add_equity(run_id, snaps)
    led.add_trades(run_id, [dict(t, trade_id=f"{run_id}-{t['trade_id']}") for t in HAND_TRADES])


@pytest.fixture(scope="module")
def mixed_ledger(tmp_path_factory) -> Ledger:
    path = tmp_path_factory.mktemp("mixed") / "ledger.db"
    engine = create_engine(f"sqlite:///{path}")
    schema.metadata.create_all(engine)
    led = Ledger(engine=engine, path=path)
    _fill(led, "ind", mode="independent", seed=1)
    _fill(led, "ind-stray", mode="independent", seed=2, stray="DOGE-USD")
    _fill(led, "ind-unsorted", mode="independent", seed=3, unsorted=True)
    _fill(led, "port", mode="portfolio", seed=4)
    _fill(led, "port-unsorted", mode="portfolio", seed=5, unsorted=True)
    yield led
    engine.dispose()


@pytest.fixture
def mixed(mixed_ledger: Ledger, monkeypatch) -> Ledger:
    monkeypatch.setattr(metrics, "STREAM_BATCH_ROWS", 11)  # chunks split timestamps
    return mixed_ledger


RUNS = ["ind", "ind-stray", "ind-unsorted", "port", "port-unsorted"]


def _reference_counts(led: Ledger, run_id: str) -> dict[tuple[str, str, str], int]:
    d = schema.decisions.c
    with led.engine.connect() as conn:
        rows = conn.execute(select(d.symbol, d.action, d.reason, func.count())
                            .where(d.run_id == run_id).group_by(d.symbol, d.action, d.reason))
        return {(s, a, r): n for s, a, r, n in rows}


def _reference_prices(led: Ledger, run_id: str, symbol: str):
    d = schema.decisions.c
    with led.engine.connect() as conn:
        rows = conn.execute(select(d.ts, d.close).where(d.run_id == run_id, d.symbol == symbol)
                            .order_by(d.seq)).all()
    ts = np.array([r[0] for r in rows], dtype=np.int64)
    close = np.array([r[1] for r in rows], dtype=float)
    order = np.argsort(ts, kind="stable")
    ts, close = ts[order], close[order]
    last = np.r_[ts[1:] != ts[:-1], True]
    return ts[last], close[last]


# Every run through ADBC (SQLite files); two through SQLAlchemy (other databases): the
# readers differ, the folding is the same.
CASES = [(r, "adbc") for r in RUNS] + [("ind-stray", "sqlalchemy"), ("port-unsorted", "sqlalchemy")]


@pytest.mark.parametrize("run_id, reader", CASES)
def test_chunked_figures_equal_the_whole_curve(mixed: Ledger, monkeypatch, run_id, reader) -> None:
    if reader == "sqlalchemy":
        monkeypatch.setattr(metrics, "_sqlite_file", lambda conn: None)
    engine = mixed.engine
    run = load_run(engine, run_id)
    trades = load_trades(engine, run_id)
    curve = load_equity_curve(engine, run_id, run)
    scan = scan_run(engine, run_id, run)

    assert scan.risk(trades) == summarize_risk(curve, trades)        # exact, every field
    assert risk_stats(engine, run_id) == summarize_risk(curve, trades)
    assert (scan.points, scan.start_ts, scan.end_ts) == (len(curve.total), curve.start_ts,
                                                         curve.end_ts)
    assert scan.initial == curve.initial and scan.warnings == curve.warnings
    assert scan.risk(trades).max_drawdown_pct > 0 and scan.risk(trades).daily_returns > 10

    counts = _reference_counts(mixed, run_id)
    assert scan.decisions == decision_stats(engine, run_id)
    assert scan.decisions.total == sum(counts.values())
    for (sym, act, _), _n in counts.items():
        assert scan.decisions.by_symbol[sym][act] == sum(
            n for (s, a, _r), n in counts.items() if (s, a) == (sym, act))

    chart = equity_chart(engine, run_id, run, max_points=40)
    ts = curve.total.index.to_numpy(dtype=np.int64)
    want_t, want_v = downsample(ts, curve.total.to_numpy(dtype=float), 40)
    np.testing.assert_array_equal(chart.ts, want_t)
    np.testing.assert_array_equal(chart.total, want_v)
    dd = metrics.drawdown(curve.total, curve.initial_total, curve.start_ts).series_pct
    want_t, want_v = downsample(ts, dd.to_numpy(dtype=float), 40)
    np.testing.assert_array_equal(chart.drawdown_ts, want_t)
    np.testing.assert_array_equal(chart.drawdown_pct, want_v)
    assert len(chart.ts) < len(curve.total) and chart.initial_total == curve.initial_total

    prices = price_series(engine, run_id, SYMBOLS + ["ADA-USD"], max_points=20)
    for sym in SYMBOLS:
        want_t, want_v = downsample(*_reference_prices(mixed, run_id, sym), 20)
        np.testing.assert_array_equal(prices[sym][0], want_t)
        np.testing.assert_array_equal(prices[sym][1], want_v)
    assert len(prices["ADA-USD"][0]) == 0

    # The HTML page reads both in the same two passes.
    chart20, prices20 = chart_series(engine, run_id, SYMBOLS, run, max_points=20)
    alone = equity_chart(engine, run_id, run, max_points=20)
    for name in ("ts", "total", "drawdown_ts", "drawdown_pct"):
        np.testing.assert_array_equal(getattr(chart20, name), getattr(alone, name))
    for sym in SYMBOLS:
        np.testing.assert_array_equal(prices20[sym][0], prices[sym][0])
        np.testing.assert_array_equal(prices20[sym][1], prices[sym][1])


def test_stray_and_foreign_accounts_are_handled_like_the_whole_curve(mixed: Ledger) -> None:
    stray = scan_run(mixed.engine, "ind-stray")
    assert list(stray.initial) == SYMBOLS + ["DOGE-USD", "XRP-USD"]
    port = scan_run(mixed.engine, "port")
    assert list(port.initial) == ["portfolio"]
    assert any("unexpected accounts ['BTC-USD']" in w for w in port.warnings)


def test_report_from_chunks_and_html_page(mixed: Ledger, tmp_path) -> None:
    from tradewarden.analytics import write_html

    report = build_report(mixed.engine, "ind")
    curve = load_equity_curve(mixed.engine, "ind")
    assert report.risk == summarize_risk(curve, load_trades(mixed.engine, "ind"))
    assert report.decisions.total == sum(_reference_counts(mixed, "ind").values())
    page = write_html(report, mixed.engine, tmp_path / "r.html").read_text()
    charts = ["chart-equity", "chart-pnl", "chart-monthly",
              *[f"chart-symbol-{i}" for i in range(len(SYMBOLS))]]
    assert [c for c in charts if f'<div id="{c}" class="plotly-graph-div"' in page] == charts
    assert "the ledger holds no close" not in page


def test_empty_run_scans_to_an_empty_curve(ledger: Ledger) -> None:
    ledger.add_run("r-empty")
    scan = scan_run(ledger.engine, "r-empty")
    assert scan.empty and scan.points == 0 and scan.decisions.total == 0
    risk = scan.risk(load_trades(ledger.engine, "r-empty"))
    assert risk == summarize_risk(load_equity_curve(ledger.engine, "r-empty"),
                                  load_trades(ledger.engine, "r-empty"))
    assert equity_chart(ledger.engine, "r-empty").empty


def test_flat_trough_and_peak_report_their_first_and_last_bars(ledger: Ledger,
                                                                monkeypatch) -> None:
    """Equal drawdowns in different chunks: the first is the trough (as argmax gives);
    the peak is the last bar at the running peak before it."""
    monkeypatch.setattr(metrics, "STREAM_BATCH_ROWS", 2)
    ledger.add_run("r-flat-trough", capital_mode="portfolio", initial_capital="10000")
    values = [10000.0, 10200.0, 10200.0, 9000.0, 9000.0, 9000.0, 9500.0, 9000.0, 10100.0]
    with ledger.engine.begin() as conn:
        conn.execute(insert(schema.decisions), [
            dict(run_id="r-flat-trough", seq=i, ts=T0 + i * H, symbol="BTC-USD", action="hold",
                 reason="x", state="flat", close=1.0, equity=v) for i, v in enumerate(values)])
    risk = scan_run(ledger.engine, "r-flat-trough").risk(load_trades(ledger.engine,
                                                                     "r-flat-trough"))
    assert (risk.drawdown_peak_ts, risk.drawdown_trough_ts) == (T0 + 2 * H, T0 + 3 * H)
    assert risk.max_drawdown == pytest.approx(1200.0)
    assert risk == summarize_risk(load_equity_curve(ledger.engine, "r-flat-trough"),
                                  load_trades(ledger.engine, "r-flat-trough"))


def test_report_and_trades_accept_what_replay_returns(hand_run: Ledger) -> None:
    from dataclasses import dataclass

    from tradewarden.analytics import GateConfig

    @dataclass
    class Result:                        # the shape of tradewarden.replay()'s ReplayRun
        run_id: str
        gates: GateConfig

        def engine(self):
            return hand_run.engine

    result = Result("r-hand", GateConfig(min_closed_trades=3))
    report = build_report(result)
    assert report.run.run_id == "r-hand" and report.gate_config.min_closed_trades == 3
    assert report == build_report(hand_run.engine, "r-hand", GateConfig(min_closed_trades=3))
    assert load_trades(result)["trade_id"].tolist() == load_trades(hand_run.engine, "r-hand")[
        "trade_id"].tolist()
    with pytest.raises(TypeError, match="run_id is required"):
        build_report(hand_run.engine)
