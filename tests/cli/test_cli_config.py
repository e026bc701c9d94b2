"""`warden replay --config`, `--set`, `warden config show/init`, and flags checked before a run."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tradewarden.cli import app

runner = CliRunner()
TEXTBOOK = Path(__file__).resolve().parents[1] / "fixtures" / "textbook.toml"
SMALL = ["--symbols", "BTC-USD", "--start", "2025-01-01", "--end", "2025-03-01"]


@pytest.fixture(autouse=True)
def _in_tmp(monkeypatch, tmp_path):
    """Relative paths (warden-out/...) land in the test's directory."""
    monkeypatch.chdir(tmp_path)


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def replay(tmp_path: Path, *extra: str) -> dict:
    res = invoke("replay", *SMALL, "--db", str(tmp_path / "l.db"), "--out", str(tmp_path / "r"),
                 "--report-format", "json", *extra)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def recorded_config(tmp_path: Path, run_id: str) -> dict:
    with sqlite3.connect(tmp_path / "l.db") as c:
        return json.loads(c.execute("select config from runs where run_id=?", (run_id,)).fetchone()[0])


def test_textbook_config_runs_with_breakers_off_and_flags_override_the_file(tmp_path):
    doc = replay(tmp_path, "--config", str(TEXTBOOK))
    cfg = recorded_config(tmp_path, doc["run_id"])
    assert cfg["risk"]["sizing"] == {"kind": "fixed", "value": 1.0}
    assert cfg["risk"]["max_drawdown_halt"] == 1.0 and cfg["params"]["use_bracket"] is False
    assert doc["report"]["events"].get("halt", 0) == 0
    assert doc["report"]["trades"]["closed_trades"] > 5
    assert cfg["mode"] == "replay" and cfg["timeframe"] == "1h"

    again = replay(tmp_path, "--config", str(TEXTBOOK), "--fee-bps", "0", "--set", "slippage_bps=1")
    cfg2 = recorded_config(tmp_path, again["run_id"])
    assert (cfg2["fee_bps"], cfg2["slippage_bps"]) == (0.0, 1.0)
    assert again["report"]["trades"]["fees"] < doc["report"]["trades"]["fees"]


def test_default_breakers_halt_where_the_config_switches_them_off(tmp_path):
    """The same textbook rule with the default breakers is stopped by a halt."""
    args = ["-p", "use_bracket=false", "--sizing", "fixed:1", "--capital", "200000",
            "--set", "risk.max_consecutive_losses=2"]
    halted = replay(tmp_path, *args)
    assert halted["report"]["events"].get("halt", 0) > 0
    off = replay(tmp_path, *args, "--set", "risk.max_consecutive_losses=off")
    assert off["report"]["events"].get("halt", 0) == 0
    assert off["report"]["trades"]["closed_trades"] > halted["report"]["trades"]["closed_trades"]


def test_environment_sits_between_the_file_and_the_flags(tmp_path, monkeypatch):
    monkeypatch.setenv("TRADEWARDEN_FEE_BPS", "3")
    doc = replay(tmp_path, "--config", str(TEXTBOOK))
    assert recorded_config(tmp_path, doc["run_id"])["fee_bps"] == 3.0
    doc = replay(tmp_path, "--config", str(TEXTBOOK), "--fee-bps", "4")
    assert recorded_config(tmp_path, doc["run_id"])["fee_bps"] == 4.0


@pytest.mark.parametrize("flags, says", [
    (["--fee-bps", "nan"], "--fee-bps nan: input should be a finite number"),
    (["--slippage-bps", "inf"], "--slippage-bps inf: input should be a finite number"),
    (["--capital", "1e400"], "--capital 1e400: capital 1E+400 is above the largest supported amount"),
    (["--capital", "ten"], "--capital ten: input should be a valid decimal"),
    (["--sizing", "fixed:1e999"], "--sizing fixed:1e999: fixed quantity must be positive and at most"),
    (["--symbols", "BTC-USD,btc_usd"], "--symbols BTC-USD,btc_usd: duplicate symbol"),
    (["--min-profit-factor", "nan"], "--min-profit-factor nan: input should be a finite number"),
    (["--set", "risk.daily_loss_limit=2"], "--set risk.daily_loss_limit 2: input should be less than"),
    (["--set", "nonsense"], "--set 'nonsense': expected KEY=VALUE"),
    (["-p", "stop_atr=inf"], "param 'stop_atr': Input should be a finite number"),
    (["-p", "entry_window=nan"], "param 'entry_window'"),
    (["--set", "risk.bogus=1"], "--set risk.bogus: unknown setting 'risk.bogus'"),
])
def test_bad_numbers_fail_in_one_line_before_any_run_row(tmp_path, flags, says):
    res = runner.invoke(app, ["replay", *SMALL, "--db", str(tmp_path / "l.db"), *flags])
    assert res.exit_code == 2, res.output
    assert says in " ".join(res.stderr.split()), res.stderr
    assert "Traceback" not in res.output
    assert not (tmp_path / "l.db").exists()          # no ledger, so no run row, was created


def test_unwritable_out_fails_before_the_run(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    res = runner.invoke(app, ["replay", *SMALL, "--db", str(tmp_path / "l.db"),
                              "--out", str(blocker / "reports")])
    assert res.exit_code == 2 and "--out" in res.stderr and "cannot create the directory" in res.stderr
    assert not (tmp_path / "l.db").exists()


def test_config_show_says_where_each_value_came_from_and_hides_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("TRADEWARDEN_VENUE__API_SECRET", "do-not-print-me")
    monkeypatch.setenv("TRADEWARDEN_RISK__CASH_BUFFER", "0.1")
    res = invoke("config", "show", "--config", str(TEXTBOOK), "--set", "fee_bps=3", "--json")
    assert res.exit_code == 0, res.output
    assert "do-not-print-me" not in res.output
    rows = {r["key"]: r for r in json.loads(res.stdout)}
    assert rows["fee_bps"] == {"key": "fee_bps", "value": "3.0", "source": "--set fee_bps"}
    assert rows["risk.sizing"]["value"] == "fixed:1" and rows["risk.sizing"]["source"] == f"file {TEXTBOOK}"
    assert rows["risk.cash_buffer"]["source"] == "env TRADEWARDEN_RISK__CASH_BUFFER"
    assert rows["venue.api_secret"]["value"] == "******** (set)"
    assert rows["capital_mode"]["source"] == "default"
    table = runner.invoke(app, ["config", "show", "--config", str(TEXTBOOK)], terminal_width=80)
    assert table.exit_code == 0 and "…" not in table.stdout
    assert all(len(line) <= 80 for line in table.stdout.splitlines())
    assert "risk.max_consecutive_losses" in table.stdout and "1000000000" in table.stdout


def test_config_show_rejects_a_secret_in_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[venue]\napi_key = "abc123"\n')
    res = runner.invoke(app, ["config", "show", "--config", str(bad)])
    assert res.exit_code == 2 and "abc123" not in res.output
    assert "TRADEWARDEN_VENUE__API_KEY" in " ".join(res.stderr.split())


def test_config_init_writes_a_starter_that_replay_accepts(tmp_path):
    res = invoke("config", "init", str(tmp_path / "w.toml"))
    assert res.exit_code == 0 and (tmp_path / "w.toml").exists()
    assert invoke("config", "init", str(tmp_path / "w.toml")).exit_code == 2     # no overwrite
    assert invoke("config", "init", str(tmp_path / "w.toml"), "--force").exit_code == 0
    doc = replay(tmp_path, "--config", str(tmp_path / "w.toml"))
    assert doc["report"]["run"]["strategy"] == "donchian"


def test_version_and_short_help():
    from importlib.metadata import version
    res = invoke("--version")
    assert res.exit_code == 0 and res.stdout.strip() == f"tradewarden {version('tradewarden')}"
    res = invoke("replay", "-h")
    assert res.exit_code == 0 and "--config" in res.stdout and "1m, 5m" in res.stdout


def test_boolean_options_are_plain_flags():
    res = runner.invoke(app, ["replay", "--help"], terminal_width=200)
    for flag in ("--skip-bad-rows", "--offline", "--gate"):
        assert flag in res.stdout
        assert "--no-" + flag[2:] not in res.stdout


@pytest.mark.parametrize("command", [[], ["replay"], ["config", "show"], ["config", "init"], ["runs"],
                                     ["report"], ["trades"], ["compare"], ["bench"], ["data", "download"],
                                     ["data", "list"], ["data", "check"], ["strategies", "list"],
                                     ["check-lookahead"]])
def test_help_fits_80_columns_without_cutting_words(command):
    res = runner.invoke(app, [*command, "--help"], terminal_width=80, env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    assert "…" not in res.stdout
    assert all(len(line) <= 80 for line in res.stdout.splitlines())


def test_replay_help_keeps_the_bracketed_default_texts():
    """Rich markup used to swallow "[default: ...]" texts; plain help keeps them."""
    res = runner.invoke(app, ["replay", "--help"], terminal_width=80)
    text = " ".join(res.stdout.split())
    assert "[default: 10, or the venue's with --exchange]" in text
    assert "[default: the data's own bar length with --data, else 1h]" in text


def test_reading_commands_find_the_ledger_and_gates_through_the_config_and_env(tmp_path, monkeypatch):
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'symbols = ["BTC-USD"]\nstart = "2025-01-01"\nend = "2025-03-01"\n'
                   f'[ledger]\ndb = "{tmp_path / "research.db"}"\n[gates]\nmin_closed_trades = 1\n'
                   f'min_profit_factor = 0\nmax_drawdown_pct = 100\n')
    res = invoke("replay", "--config", str(cfg), "--report-format", "json", "--out", str(tmp_path / "r"))
    assert res.exit_code == 0, res.output
    run_id = json.loads(res.stdout)["run_id"]
    assert (tmp_path / "research.db").exists() and not (tmp_path / "warden-out").exists()
    assert run_id in invoke("runs", "--config", str(cfg)).stdout
    rep = invoke("report", run_id, "--config", str(cfg), "--report-format", "json", "--gate")
    assert rep.exit_code == 0 and json.loads(rep.stdout)["report"]["verdict"] == "PASS"
    strict = runner.invoke(app, ["report", run_id, "--config", str(cfg), "--gate",
                                 "--min-trades", "100000"])
    assert strict.exit_code == 3                           # the flag wins over the file
    monkeypatch.setenv("TRADEWARDEN_LEDGER__DB", str(tmp_path / "research.db"))
    assert run_id in invoke("runs").stdout                 # the environment names the ledger
    out = tmp_path / "t.csv"
    assert invoke("trades", run_id, "--csv", str(out)).exit_code == 0 and out.exists()
    monkeypatch.setenv("TRADEWARDEN_LEDGER__DB", str(tmp_path / "elsewhere.db"))
    missing = runner.invoke(app, ["runs"])
    assert missing.exit_code == 2 and "no ledger at" in missing.stderr
    assert not (tmp_path / "elsewhere.db").exists()
