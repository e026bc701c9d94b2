"""`warden runs / report / trades / compare` and the ledger's faults, end to end.

Killed and terminated replays, files that are not ledgers, locked and full databases,
read-only commands that never create anything, `%` in paths, masked passwords,
atomic report files, and tables that stay readable at 80 columns."""

from __future__ import annotations

import errno
import json
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tradewarden.cli import app

runner = CliRunner()
HERE = Path(__file__).parent
SMALL = ["--symbols", "BTC-USD,ETH-USD", "--start", "2025-01-01", "--end", "2025-03-01"]


def invoke(*args: str, env: dict | None = None):
    return runner.invoke(app, list(args), env=env, catch_exceptions=False)


def _one_error_line(res, *needles: str) -> str:
    """Assert a one-line ``error:`` exit 2 without a traceback; return the output."""
    out = res.output.strip()
    assert res.exit_code == 2, out
    assert "Traceback" not in out and out.count("\n") == 0 and out.startswith("error: "), out
    for n in needles:
        assert n in out, (n, out)
    return out


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> tuple[Path, list[str]]:
    """A ledger with two completed runs (entry_window 20 and 55), built once."""
    root = tmp_path_factory.mktemp("ledger")
    ids = []
    for window in ("20", "55"):
        res = invoke("replay", *SMALL, "-p", f"entry_window={window}", "--db", str(root / "l.db"),
                     "--out", str(root / "r"), "--report-format", "json")
        assert res.exit_code == 0, res.output
        ids.append(json.loads(res.stdout)["run_id"])
    return root / "l.db", ids


@pytest.fixture
def ledger_copy(two_runs, tmp_path) -> tuple[Path, list[str]]:
    db, ids = two_runs
    shutil.copy(db, tmp_path / "l.db")
    return tmp_path / "l.db", ids


def _query(db: Path, sql: str, *args):
    with sqlite3.connect(db) as c:
        return c.execute(sql, args).fetchall()


# --------------------------------------------------------------------------- kill -9 / SIGTERM

CHUNK = 300
PAUSE_AFTER = 3


def _committed(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as c:
            return c.execute("select count(*) from decisions").fetchone()[0]
    except sqlite3.Error:          # not created or not migrated yet
        return 0


def _start_paused_replay(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    """Start a real `warden replay` that pauses after PAUSE_AFTER chunks."""
    db = tmp_path / "l.db"
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "_paused_replay.py"), str(PAUSE_AFTER), str(CHUNK), "replay",
         "--symbols", "BTC-USD", "--start", "2025-01-01", "--end", "2025-04-01", "--db", str(db),
         "--out", str(tmp_path / "r"), "--report-format", "console"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, db


def _wait_until_paused(proc: subprocess.Popen, db: Path) -> None:
    """Wait until the run row exists and PAUSE_AFTER whole chunks are committed."""
    deadline = time.monotonic() + 120
    while _committed(db) < PAUSE_AFTER * CHUNK:
        if proc.poll() is not None:
            pytest.fail(f"replay ended before it was stopped: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("replay made no progress")
        time.sleep(0.02)
    assert _query(db, "select status, pid from runs") == [("running", proc.pid)]


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """Two real replays, run side by side: one killed with SIGKILL, one sent SIGTERM, each
    after PAUSE_AFTER committed chunks. ``{signal: (process, stdout, stderr, db)}``."""
    started = {sig: _start_paused_replay(tmp_path_factory.mktemp(sig.name))
               for sig in (signal.SIGKILL, signal.SIGTERM)}
    out = {}
    try:
        for sig, (proc, db) in started.items():
            _wait_until_paused(proc, db)
            proc.send_signal(sig)
        for sig, (proc, db) in started.items():
            stdout, stderr = proc.communicate(timeout=120)
            out[sig] = (proc, stdout, stderr, db)
    finally:
        for proc, _db in started.values():
            if proc.poll() is None:
                proc.kill()
    return out


def test_kill_9_leaves_a_run_that_the_next_command_marks_crashed(stopped):
    proc, _out, _err, db = stopped[signal.SIGKILL]
    assert proc.returncode == -signal.SIGKILL
    assert _query(db, "select status from runs") == [("running",)]        # as the kill left it
    (beat,) = _query(db, "select heartbeat_at from runs")[0]
    res = invoke("runs", "--db", str(db))
    assert res.exit_code == 0, res.output
    assert "crashed" in res.output and f"process {proc.pid}" in res.output
    assert f"last seen {beat}" in " ".join(res.output.split())
    status, decisions, bars = _query(db, "select status, decisions, bars_processed from runs")[0]
    assert status == "crashed"
    assert decisions == bars == PAUSE_AFTER * CHUNK == _committed(db)   # whole chunks only


def test_sigterm_marks_the_run_interrupted_after_flushing_whole_chunks(stopped):
    proc, _out, err, db = stopped[signal.SIGTERM]
    assert proc.returncode != 0 and "Traceback" not in err, err
    status, decisions, error = _query(db, "select status, decisions, error from runs")[0]
    assert status == "interrupted" and "SIGTERM" in error
    # the chunk in progress when the signal came is finished and committed, nothing more
    assert decisions == _committed(db) == (PAUSE_AFTER + 1) * CHUNK
    assert _query(db, "select count(*) from trades") == _query(
        db, "select trades_closed from runs")
    res = invoke("runs", "--db", str(db))
    assert "interrupted" in res.output and "crashed" not in res.output


def test_sigterm_exits_143_with_one_line(stopped):
    proc, _out, err, _db = stopped[signal.SIGTERM]
    assert proc.returncode == 143
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("interrupted:") and "SIGTERM" in lines[0], err


# --------------------------------------------------------------------------- bad databases

def test_read_only_commands_never_create_a_ledger(tmp_path):
    db = tmp_path / "sub" / "l.db"
    for args in (["runs"], ["report", "abc"], ["trades", "abc", "--csv", str(tmp_path / "t.csv")],
                 ["compare", "a", "b"]):
        _one_error_line(invoke(*args, "--db", str(db)), f"error: no ledger at {db}")
    assert not (tmp_path / "sub").exists() and not (tmp_path / "t.csv").exists()


@pytest.mark.parametrize("command", [["runs"], ["report", "abc"], ["compare", "abc"],
                                     ["trades", "abc", "--csv", "t.csv"]])
def test_not_a_database_and_corrupted_database_are_one_line(tmp_path, command, two_runs):
    csv_file = tmp_path / "prices.csv"
    csv_file.write_text("timestamp,open,high,low,close,volume\n1,2,3,1,2,5\n" * 50)
    _one_error_line(invoke(*command, "--db", str(csv_file)), f"--db {csv_file}",
                    "not an SQLite database")
    corrupt = tmp_path / "corrupt.db"
    data = bytearray(two_runs[0].read_bytes())
    data[4096 * 2:] = b"\xa5" * (len(data) - 4096 * 2)       # keep the header, wreck the pages
    corrupt.write_bytes(bytes(data))
    _one_error_line(invoke(*command, "--db", str(corrupt)), f"--db {corrupt}")


def test_replay_on_a_non_sqlite_file_is_one_line_and_leaves_it_alone(tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("my notes\n" * 200)
    res = invoke("replay", *SMALL, "--db", str(target), "--report-format", "console")
    _one_error_line(res, "not an SQLite database")
    assert target.read_text() == "my notes\n" * 200


@pytest.mark.parametrize("damage, message", [
    ("drop table trades", "missing table(s) trades"),
    ("alter table runs drop column notes", "table runs lacks column(s) notes"),
    ("update runs set initial_capital = 'lots'", "has malformed ledger data"),
    ("update runs set data_quality = '{\"BTC-USD\": [1, 2'", ""),
    ("delete from alembic_version", "not a tradewarden ledger"),
])
def test_report_on_a_malformed_ledger_is_one_line(ledger_copy, damage, message):
    db, ids = ledger_copy
    with sqlite3.connect(db) as c:
        c.execute(damage)
    res = invoke("report", ids[0], "--db", str(db), "--report-format", "json")
    if res.exit_code == 0:        # damage the report can live with: it must still be valid
        assert not message
        assert json.loads(res.stdout)["run_id"] == ids[0]
    else:
        _one_error_line(res, f"--db {db}", message)


def test_locked_database_is_one_line_after_the_busy_timeout(ledger_copy, tmp_path):
    db, ids = ledger_copy
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("pragma locking_mode=exclusive")
    holder.execute("begin exclusive")
    holder.execute("insert into events (run_id, seq, kind, message) values ('x', 0, 'info', 'x')")
    env = {"TRADEWARDEN_BUSY_TIMEOUT": "0.2"}
    try:
        for args in (["runs"], ["report", ids[0]], ["replay", *SMALL, "--report-format", "console"]):
            _one_error_line(invoke(*args, "--db", str(db), env=env),
                            "locked by another process (waited 0.2 s")
    finally:
        holder.execute("rollback")
        holder.close()
    assert invoke("runs", "--db", str(db)).exit_code == 0


def test_disk_full_during_a_replay_is_one_line_naming_the_cause(tmp_path, monkeypatch):
    import tradewarden.ledger.store as store

    real_connect = store._adbc_connect

    def full_disk_connect(path, busy_timeout):       # the bulk connection finds the disk full
        conn = real_connect(path, busy_timeout)
        cur = conn.cursor()
        cur.execute("pragma page_count")
        pages = cur.fetchall()[0][0]
        cur.execute(f"pragma max_page_count={pages}")
        cur.fetchall()
        cur.close()
        return conn

    monkeypatch.setattr(store, "_adbc_connect", full_disk_connect)
    db = tmp_path / "l.db"
    res = invoke("replay", *SMALL, "--db", str(db), "--report-format", "console")
    out = _one_error_line(res, "disk full", "database or disk is full")
    assert "cannot rollback" not in out
    status, error = _query(db, "select status, error from runs")[0]
    assert status == "failed" and "disk full" in error
    assert _query(db, "pragma integrity_check") == [("ok",)]


def test_password_never_appears_in_output(tmp_path):
    url = "postgresql+psycopg://trader:Sup3rS3cret@127.0.0.1:1/ledger"
    for args in (["runs"], ["report", "abc"], ["compare", "a", "b"],
                 ["trades", "abc", "--csv", str(tmp_path / "t.csv")],
                 ["replay", *SMALL, "--report-format", "console"]):
        res = invoke(*args, "--db", url)
        assert res.exit_code == 2 and "Sup3rS3cret" not in res.output, res.output
        assert "trader:***@127.0.0.1" in res.output and "Traceback" not in res.output


def test_percent_in_the_ledger_path_works_end_to_end(tmp_path):
    root = tmp_path / "50% off"
    res = invoke("replay", *SMALL, "--db", str(root / "l%d.db"), "--out", str(root / "r%s"),
                 "--report-format", "json")
    assert res.exit_code == 0, res.output
    run_id = json.loads(res.stdout)["run_id"]
    assert (root / "l%d.db").exists() and (root / "r%s" / f"{run_id}.json").exists()
    assert run_id in invoke("runs", "--db", str(root / "l%d.db")).output
    res = invoke("trades", run_id, "--csv", str(root / "t%.csv"), "--db", str(root / "l%d.db"))
    assert res.exit_code == 0 and (root / "t%.csv").read_text().startswith("entry_time,")


# --------------------------------------------------------------------------- atomic files

def _fail_fsync(monkeypatch):
    import tradewarden._io as io_module

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io_module.os, "fsync", no_space)


def test_a_failed_csv_write_leaves_no_partial_file(ledger_copy, tmp_path, monkeypatch):
    db, ids = ledger_copy
    out = tmp_path / "exports" / "trades.csv"
    out.parent.mkdir()
    out.write_text("previous export\n")
    _fail_fsync(monkeypatch)
    res = invoke("trades", ids[0], "--csv", str(out), "--db", str(db))
    _one_error_line(res, f"cannot write {out}", "No space left on device")
    assert out.read_text() == "previous export\n"                   # untouched
    assert sorted(p.name for p in out.parent.iterdir()) == ["trades.csv"]   # no temp file left


def test_a_failed_report_write_leaves_no_truncated_json_or_html(ledger_copy, tmp_path, monkeypatch):
    db, ids = ledger_copy
    _fail_fsync(monkeypatch)
    out = tmp_path / "reports"
    res = invoke("report", ids[0], "--db", str(db), "--out", str(out), "--report-format", "all")
    _one_error_line(res, "cannot write", "No space left on device")
    assert not out.exists() or list(out.iterdir()) == []          # no partial file, no temp file
    monkeypatch.undo()
    res = invoke("report", ids[0], "--db", str(db), "--out", str(out), "--report-format", "all")
    assert res.exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{ids[0]}.html", f"{ids[0]}.json"])
    assert json.loads((out / f"{ids[0]}.json").read_text())["run"]["run_id"] == ids[0]


# --------------------------------------------------------------------------- runs / compare / 80 columns

def _readable(text: str, width: int = 80) -> None:
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= width, text


def test_runs_shows_figures_strategy_and_parameters_at_80_columns(ledger_copy):
    db, ids = ledger_copy
    res = invoke("runs", "--db", str(db))
    assert res.exit_code == 0
    _readable(res.output)
    lines = res.output.splitlines()
    header = next(ln for ln in lines if ln.startswith("run "))
    assert header.split() == ["run", "status", "return", "PF", "trades", "max", "DD", "gate"]
    for rid in ids:
        (row,) = [ln for ln in lines if ln.startswith(rid)]
        cells = row.split()
        summary = json.loads(_query(db, "select summary from runs where run_id=?", rid)[0][0])
        assert cells[1] == "completed" and cells[-1] == summary["verdict"]
        assert cells[2] == f"{summary['return_pct']:,.2f}%"
        assert cells[3] == f"{summary['profit_factor']:,.2f}"
        assert cells[4] == f"{summary['closed_trades']:,}"
        assert cells[5] == f"{summary['max_drawdown_pct']:,.2f}%"
    text = " ".join(res.output.split())
    assert "donchian atr_period=14 entry_window=55" in text and "entry_window=20" in text


def test_runs_computes_and_stores_missing_summaries(ledger_copy):
    db, ids = ledger_copy
    stored = dict(_query(db, "select run_id, summary from runs"))
    with sqlite3.connect(db) as c:
        c.execute("update runs set summary = null")
    res = invoke("runs", "--db", str(db))
    assert res.exit_code == 0
    again = dict(_query(db, "select run_id, summary from runs"))
    assert {k: json.loads(v) for k, v in again.items()} == {k: json.loads(v) for k, v in stored.items()}


def test_compare_puts_runs_side_by_side_with_config_differences(ledger_copy):
    db, ids = ledger_copy
    res = invoke("compare", *ids, "--db", str(db))
    assert res.exit_code == 0, res.output
    _readable(res.output)
    rows = {ln.split("  ")[0].strip(): ln for ln in res.output.splitlines() if ln.strip()}
    header = next(ln for ln in res.output.splitlines() if ids[0] in ln)
    assert header.index(ids[0]) < header.index(ids[1])
    for label in ("return", "profit factor", "closed trades", "max drawdown", "Sharpe",
                  "gate verdict"):
        assert label in rows
    diff = rows["params.entry_window"].split()
    assert diff[1:] == ["20", "55"]
    doc = json.loads(invoke("compare", *ids, "--db", str(db), "--json").stdout)
    assert [r["run_id"] for r in doc["runs"]] == ids
    assert doc["config_differences"] == {"params.entry_window": [20, 55]}
    _one_error_line(invoke("compare", ids[0], "nope", "--db", str(db)), "no run 'nope'")


def test_console_report_is_readable_at_80_columns(tmp_path):
    """Large amounts (1e9 capital) make the per-symbol table too wide for one table."""
    res = invoke("replay", *SMALL, "--capital", "1000000000", "--db", str(tmp_path / "l.db"),
                 "--out", str(tmp_path / "r"), "--report-format", "console", env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    _readable(res.stdout)
    assert "1,000,000,000.00" in res.stdout and "Per symbol" in res.stdout

    from io import StringIO

    from rich.console import Console

    from tradewarden.analytics import build_report, render_console
    from tradewarden.ledger import open_engine
    engine = open_engine(tmp_path / "l.db", create=False)
    run_id = _query(tmp_path / "l.db", "select run_id from runs")[0][0]
    for width in (80, 60):
        buf = StringIO()
        render_console(build_report(engine, run_id), Console(file=buf, width=width))
        _readable(buf.getvalue(), width)
        assert "BTC-USD" in buf.getvalue() and "ETH-USD" in buf.getvalue()
    engine.dispose()


def test_replay_stores_the_report_summary(ledger_copy):
    db, ids = ledger_copy
    for rid in ids:
        summary = json.loads(_query(db, "select summary from runs where run_id=?", rid)[0][0])
        doc = json.loads(invoke("report", rid, "--db", str(db), "--report-format", "json").stdout)
        rep = doc["report"]
        assert summary["closed_trades"] == rep["trades"]["closed_trades"]
        assert summary["verdict"] == rep["verdict"] and summary["status"] == "completed"
        assert summary["return_pct"] == pytest.approx(rep["risk"]["total_return_pct"])
        assert "Sup3r" not in doc["ledger"] and doc["ledger"].startswith("sqlite:///")


def test_runs_handles_pipes_and_narrow_terminals(ledger_copy):
    db, ids = ledger_copy
    res = invoke("runs", "--db", str(db), env={"COLUMNS": "60"})     # not a terminal: a pipe
    assert res.exit_code == 0
    _readable(res.stdout, 60)
    assert all(rid in res.stdout for rid in ids)
    assert "entry_window=55" in " ".join(res.stdout.split())


def test_interrupted_helper_prints_one_line_with_the_signal_exit_status():
    """What cli.py's `replay` does with a RunInterrupted."""
    import typer

    from tradewarden.cli_common import _interrupted
    from tradewarden.ledger import RunInterrupted

    mini = typer.Typer()

    @mini.command()
    def go(sig: int) -> None:
        exc = RunInterrupted(sig, "r1")
        exc.bars_processed, exc.decisions = 1200, 1200
        try:
            raise exc
        except KeyboardInterrupt as caught:
            raise _interrupted(caught) from None

    for sig, code in ((signal.SIGTERM, 143), (signal.SIGINT, 130)):
        res = runner.invoke(mini, [str(int(sig))])
        assert res.exit_code == code
        assert res.output.strip() == (f"interrupted: run r1 stopped by {sig.name} after 1,200 bars "
                                      "(1,200 decisions committed); recorded as 'interrupted'")


# --------------------------------------------------------------------------- trades

def test_trades_csv_to_stdout_has_reasons_durations_excursions_and_fixed_decimals(ledger_copy):
    """`warden trades RUN --csv -`: the CSV on standard output and nothing else."""
    import csv as csv_module
    from decimal import Decimal
    from io import StringIO

    from tradewarden.analytics import CSV_COLUMNS

    db, ids = ledger_copy
    res = invoke("trades", ids[0], "--csv", "-", "--db", str(db))
    assert res.exit_code == 0, res.output
    rows = list(csv_module.DictReader(StringIO(res.stdout)))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == _query(db, "select count(*) from trades where run_id=?", ids[0])[0][0] > 10
    for r in rows:
        assert r["entry_reason"] == "breakout" and r["exit_reason"] in {"signal", "stop_loss",
                                                                      "take_profit", "end_of_data"}
        for price in ("entry_price", "exit_price", "mae_price", "mfe_price", "fees", "pnl"):
            assert len(r[price].split(".")[1]) == 2, (price, r[price])     # the USD price grid
        assert len(r["quantity"].split(".")[1]) == 8                        # the base grid
        for pct in ("return_pct", "mae_pct", "mfe_pct"):
            assert re.fullmatch(r"-?\d+\.\d\d", r[pct]), (pct, r[pct])
        assert Decimal(r["mae_price"]) <= min(Decimal(r["entry_price"]), Decimal(r["exit_price"]))
        assert Decimal(r["mfe_price"]) >= max(Decimal(r["entry_price"]), Decimal(r["exit_price"]))
        assert float(r["mae_pct"]) <= 0 <= float(r["mfe_pct"])
        hours = int(r["holding_seconds"]) // 3600
        assert r["duration"] == (f"{hours // 24}d {hours % 24:02d}h" if hours >= 24
                                 else f"{hours}h 00m" if hours else "0m")   # 0m: in one bar
    # the same rows as the file export
    out = Path(db).parent / "t.csv"
    assert invoke("trades", ids[0], "--csv", str(out), "--db", str(db)).exit_code == 0
    assert out.read_text() == res.stdout.replace("\r\n", "\n")
    _one_error_line(invoke("trades", "nope", "--csv", "-", "--db", str(db)), "no run 'nope'")


def test_trades_listed_on_screen_fit_80_columns(ledger_copy):
    db, ids = ledger_copy
    res = invoke("trades", ids[0], "--db", str(db), env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    _readable(res.stdout)
    first = _query(db, "select entry_time, symbol, entry_price from trades where run_id=? "
                       "order by entry_ts, trade_id limit 1", ids[0])[0]
    line = next(ln for ln in res.stdout.splitlines()
                if ln.startswith(first[0].replace("T", " ")[:16] + " " + first[1]))
    assert f"{float(first[2]):.2f}" in line and "breakout" in line
    for head in ("entry reason", "exit reason", "MAE %", "MFE %", "held"):
        assert head in res.stdout
