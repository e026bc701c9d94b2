"""`warden` end to end: replay, runs, report, trades; errors are one line, exit 2, nothing completed."""

from __future__ import annotations

import csv
import gzip
import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tradewarden.cli import app
from tradewarden.data import bundled_path

runner = CliRunner()

SMALL = ["--symbols", "BTC-USD,ETH-USD", "--start", "2025-01-01", "--end", "2025-04-01"]


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def replay_json(tmp_path: Path, *extra: str) -> dict:
    res = invoke("replay", *SMALL, "--db", str(tmp_path / "l.db"), "--out", str(tmp_path / "r"),
                 "--report-format", "json", *extra)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_replay_json_prints_run_id_paths_and_report(tmp_path):
    doc = replay_json(tmp_path)
    run_id = doc["run_id"]
    assert Path(doc["paths"]["json"]).exists()
    assert doc["ledger"].endswith("l.db")
    rep = doc["report"]
    assert rep["run"]["run_id"] == run_id and rep["run"]["status"] == "completed"
    assert rep["run"]["symbols"] == ["BTC-USD", "ETH-USD"]
    assert rep["trades"]["closed_trades"] > 10
    with sqlite3.connect(tmp_path / "l.db") as c:
        n_trades = c.execute("select count(*) from trades where run_id=?", (run_id,)).fetchone()[0]
        first, last = c.execute("select min(ts), max(ts) from decisions").fetchone()
    assert rep["trades"]["closed_trades"] == n_trades
    assert first == 1735689600 and last < 1743465600            # 2025-01-01 .. before 2025-04-01


def test_reference_path_flag_gives_the_same_report_and_rows(tmp_path):
    """``--reference-path`` runs every bar through ``TradingEngine.on_bar``: the report
    and the decision rows equal the batch path's."""
    batch = replay_json(tmp_path / "batch")
    ref = replay_json(tmp_path / "ref", "--reference-path")
    for key in ("trades", "risk", "per_symbol", "verdict"):
        assert ref["report"][key] == batch["report"][key], key
    rows = []
    for d, doc in (("batch", batch), ("ref", ref)):
        with sqlite3.connect(tmp_path / d / "l.db") as c:
            got = c.execute("select seq, ts, symbol, action, reason, state, close, equity, x1, x2, "
                            "detail from decisions order by seq").fetchall()
        # the client order ids in the details carry each run's own id
        rows.append([r[:-1] + ((r[-1] or "").replace(doc["run_id"], "RUN"),) for r in got])
    assert rows[0] == rows[1] and len(rows[0]) > 4000


def test_report_rebuilds_from_the_ledger_alone(tmp_path):
    doc = replay_json(tmp_path)
    res = invoke("report", doc["run_id"], "--db", str(tmp_path / "l.db"), "--report-format", "json",
                 "--out", str(tmp_path / "again"))
    assert res.exit_code == 0
    again = json.loads(res.stdout)["report"]
    for key in ("trades", "risk", "per_symbol", "data_quality", "gates", "verdict"):
        assert again[key] == doc["report"][key], key


def test_runs_lists_and_trades_exports_csv(tmp_path):
    doc = replay_json(tmp_path)
    res = invoke("runs", "--db", str(tmp_path / "l.db"))
    assert res.exit_code == 0 and doc["run_id"] in res.stdout and "completed" in res.stdout
    out = tmp_path / "trades.csv"
    res = invoke("trades", doc["run_id"], "--csv", str(out), "--db", str(tmp_path / "l.db"))
    assert res.exit_code == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == doc["report"]["trades"]["closed_trades"]
    assert {"entry_time", "exit_time", "side", "quantity", "entry_price", "exit_price", "fees", "pnl",
            "exit_reason"} <= set(rows[0])
    assert rows[0]["side"] == "long" and rows[0]["entry_time"].endswith("Z")


def test_gate_flag_sets_the_exit_code(tmp_path):
    args = ["replay", *SMALL, "--db", str(tmp_path / "l.db"), "--out", str(tmp_path / "r"),
            "--report-format", "console", "--gate"]
    failing = invoke(*args, "--min-trades", "100000")
    assert failing.exit_code == 3 and "FAIL" in failing.stdout
    passing = invoke(*args, "--min-trades", "1", "--min-profit-factor", "0", "--max-drawdown-pct", "100")
    assert passing.exit_code == 0 and "PASS" in passing.stdout


def test_html_report_is_written_and_self_contained(tmp_path):
    res = invoke("replay", *SMALL, "--db", str(tmp_path / "l.db"), "--out", str(tmp_path / "r"),
                 "--report-format", "html")
    assert res.exit_code == 0
    html_files = list((tmp_path / "r").glob("*.html"))
    assert len(html_files) == 1
    from plotly.offline import get_plotlyjs

    text = html_files[0].read_text()
    assert text.count(get_plotlyjs()) == 1                     # plotly.js inline, once
    rest = text.replace(get_plotlyjs(), "")                    # its source names URLs
    assert "http://" not in rest and "https://" not in rest
    assert 'id="chart-symbol-1"' in rest and "Candles not shown" not in rest


def _no_completed_runs(db: Path) -> bool:
    if not db.exists():
        return True
    with sqlite3.connect(db) as c:
        return c.execute("select count(*) from runs where status='completed'").fetchone()[0] == 0


@pytest.mark.parametrize("args, message", [
    (["--symbols", "DOGE-USD"], "DOGE-USD"),
    (["--strategy", "martingale"], "unknown strategy 'martingale'"),
    (["--param", "entry_window=abc"], "param 'entry_window'"),
    (["--param", "nonsense=1"], "param 'nonsense'"),
    (["--param", "novalue"], "--param 'novalue'"),
    (["--sizing", "kelly:0.5"], "--sizing kelly:0.5: expected risk:FRACTION"),
    (["--capital", "lots"], "--capital lots: input should be a valid decimal"),
    (["--timeframe", "7x"], "timeframe '7x'"),
    (["--timeframe", "15m"], "15m"),
    (["--start", "not-a-date"], "not-a-date"),
    (["--start", "2031-01-01"], "no 1h bars"),
])
def test_bad_input_is_one_line_exit_2_no_run_completed(tmp_path, args, message):
    db = tmp_path / "l.db"
    res = runner.invoke(app, ["replay", "--db", str(db), "--report-format", "console", *args])
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert "Traceback" not in res.output
    assert res.output.strip().count("error:") == 1
    assert _no_completed_runs(db)


def _write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("timestamp,open,high,low,close,volume\n" + "\n".join(rows) + "\n")
    return path


def _real_rows(n: int) -> list[str]:
    with gzip.open(bundled_path("BTC-USD"), "rt") as fh:
        lines = fh.read().splitlines()[1:n + 1]
    return lines


def test_malformed_file_names_file_row_and_field(tmp_path):
    rows = _real_rows(60)
    ts, o, h, low, _close, v = rows[41].split(",")
    rows[41] = ",".join([ts, o, h, low, "-5", v])                 # negative close
    data = _write_csv(tmp_path / "BTC-USD.csv", rows)
    res = runner.invoke(app, ["replay", "--symbols", "BTC-USD", "--data", str(data),
                              "--db", str(tmp_path / "l.db"), "--report-format", "console"])
    assert res.exit_code == 2
    assert "BTC-USD.csv" in res.output and "row 42" in res.output and "close" in res.output
    assert _no_completed_runs(tmp_path / "l.db")


def test_unsorted_file_is_refused(tmp_path):
    rows = _real_rows(60)
    rows[10], rows[11] = rows[11], rows[10]
    data = _write_csv(tmp_path / "BTC-USD.csv", rows)
    res = runner.invoke(app, ["replay", "--symbols", "BTC-USD", "--data", str(data),
                              "--db", str(tmp_path / "l.db")])
    assert res.exit_code == 2 and "row 12" in res.output and "Traceback" not in res.output


def test_skip_bad_rows_runs_degraded_and_counts_them(tmp_path):
    rows = _real_rows(400)
    ts, o, h, low, _close, v = rows[200].split(",")
    rows[200] = ",".join([ts, o, h, low, "nan", v])
    data = _write_csv(tmp_path / "BTC-USD.csv", rows)
    res = runner.invoke(app, ["replay", "--symbols", "BTC-USD", "--data", str(data), "--skip-bad-rows",
                              "--db", str(tmp_path / "l.db"), "--report-format", "json",
                              "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["report"]["run"]["data_integrity"] == "degraded"
    with sqlite3.connect(tmp_path / "l.db") as c:
        (quality,) = c.execute("select data_quality from runs").fetchone()
        bars = c.execute("select count(*) from decisions").fetchone()[0]
    assert json.loads(quality)["BTC-USD"]["rows_skipped"] == 1
    assert bars == 399


def test_user_file_with_unknown_symbol_gets_inferred_spec_and_warning(tmp_path):
    rows = _real_rows(300)
    lines = ["timestamp,symbol,open,high,low,close,volume"]
    lines += [f"{r.split(',')[0]},XYZ-USD,{','.join(r.split(',')[1:])}" for r in rows]
    data = tmp_path / "panel.csv"
    data.write_text("\n".join(lines) + "\n")
    res = runner.invoke(app, ["replay", "--symbols", "XYZ-USD", "--data", str(data),
                              "--db", str(tmp_path / "l.db"), "--report-format", "console"])
    assert res.exit_code == 0, res.output
    assert "warning" in res.output and "XYZ-USD" in res.output and "inferred" in res.output


def test_help_texts_describe_every_flag():
    res = invoke("replay", "--help")
    for flag in ("--symbols", "--start", "--end", "--timeframe", "--data", "--strategy", "--param",
                 "--capital", "--capital-mode", "--sizing", "--fee-bps", "--slippage-bps", "--db",
                 "--report-format", "--gate"):
        assert flag in res.stdout
