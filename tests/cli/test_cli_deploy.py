"""``warden pause / resume / kill / flatten / reconcile / commands``: commands for a
deployment, queued in its inbox through the ledger."""

from __future__ import annotations

import json
import sqlite3

import pytest
from typer.testing import CliRunner

from tradewarden.cli import app
from tradewarden.ledger import Ledger

runner = CliRunner()


def _ledger(tmp_path) -> tuple[str, str]:
    """A ledger with deployment alpha (trading BTC-USD and ETH-USD, never started)."""
    db = str(tmp_path / "l.db")
    led = Ledger(db)
    dep = led.open_deployment("alpha", mode="paper", config='{"symbols": ["BTC-USD", "ETH-USD"]}',
                              config_hash="h")["deployment_id"]
    led.close()
    return db, dep


def _commands(db: str) -> list[tuple]:
    with sqlite3.connect(db) as c:
        return c.execute("select id, kind, target, reason, actor, status from commands "
                         "order by id").fetchall()


def _invoke(*args: str):
    return runner.invoke(app, list(args), terminal_width=200)


def test_pause_resume_kill_and_flatten_queue_their_commands(tmp_path):
    db, _ = _ledger(tmp_path)
    base = ["--deployment", "alpha", "--db", db, "--by", "ana"]
    outputs = [_invoke("pause", *base, "--reason", "FOMC at 18:00"), _invoke("kill", *base),
               _invoke("flatten", *base, "--symbol", "ETH-USD"), _invoke("flatten", *base),
               _invoke("resume", *base)]
    assert [r.exit_code for r in outputs] == [0] * 5, [r.output for r in outputs]
    assert outputs[0].stdout.strip() == (
        "command 1 queued: pause (reason: FOMC at 18:00) for deployment alpha by ana; the "
        "deployment is created, not running: it acts when the deployment next starts")
    assert outputs[1].stdout.startswith("command 2 queued: kill switch for deployment alpha by ana;")
    assert outputs[2].stdout.startswith("command 3 queued: close the ETH-USD position for ")
    assert outputs[3].stdout.startswith("command 4 queued: close every position for ")
    assert _commands(db) == [(1, "pause", None, "FOMC at 18:00", "ana", "pending"),
                             (2, "kill", None, None, "ana", "pending"),
                             (3, "close", "ETH-USD", None, "ana", "pending"),
                             (4, "flatten", None, None, "ana", "pending"),
                             (5, "resume", None, None, "ana", "pending")]


@pytest.mark.parametrize("args, message", [
    (["pause", "--deployment", "beta"], "--deployment beta: no such deployment in "),
    (["resume", "--deployment", "beta"], "--deployment beta: no such deployment in "),
    (["kill", "--deployment", "beta"], "--deployment beta: no such deployment in "),
    (["flatten", "--deployment", "beta"], "--deployment beta: no such deployment in "),
    (["reconcile", "--deployment", "beta"], "--deployment beta: no such deployment in "),
    (["commands", "--deployment", "beta"], "--deployment beta: no such deployment in "),
    (["flatten", "--deployment", "alpha", "--symbol", "XRP-USD"],
     "--symbol XRP-USD: deployment alpha trades BTC-USD, ETH-USD"),
    (["kill", "--deployment", "alpha", "--by", "x" * 65], "give 1-64 characters"),
    (["reconcile", "--deployment", "alpha", "--accept"],
     "--accept: deployment alpha has no open differences to accept"),
    (["commands", "--deployment", "alpha", "--status", "maybe"],
     "--status maybe: use one of pending, done, refused, all"),
    (["pause"], "Missing option '--deployment'"),
])
def test_deployment_commands_refuse_clearly_and_queue_nothing(tmp_path, args, message):
    db, _ = _ledger(tmp_path)
    res = _invoke(*args, "--db", db)
    assert res.exit_code == 2 and message in res.output, res.output
    assert "Traceback" not in res.output
    assert _commands(db) == []


def test_a_missing_ledger_is_named_and_not_created(tmp_path):
    res = _invoke("pause", "--deployment", "alpha", "--db", str(tmp_path / "none.db"))
    assert res.exit_code == 2 and "no ledger at" in res.output
    assert not (tmp_path / "none.db").exists()


def _differences(db: str, dep: str) -> None:
    led = Ledger(db)
    led.write_reconciliations("r1", [
        {"seq": 0, "deployment_id": dep, "ts": 1_767_225_600, "kind": "position",
         "symbol": "BTC-USD", "ours": "0.0123", "venue": "0", "status": "open"},
        {"seq": 1, "deployment_id": dep, "ts": 1_767_225_600, "kind": "order_unknown",
         "symbol": "ETH-USD", "ours": None, "venue": "cb-77", "status": "open"},
        {"seq": 2, "deployment_id": dep, "ts": 1_767_000_000, "kind": "balance", "symbol": None,
         "ours": "100", "venue": "100", "status": "accepted", "resolved_by": "bo",
         "resolved_at": "2025-12-29T00:00:00Z"}])
    led.commit()
    led.close()


def test_reconcile_shows_open_differences_and_exits_1_while_any_is_open(tmp_path):
    db, dep = _ledger(tmp_path)
    res = _invoke("reconcile", "--deployment", "alpha", "--db", db)
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == ("no open differences: the ledger agrees with the venue as of "
                                  "the last reconciliation")
    _differences(db, dep)
    res = _invoke("reconcile", "--deployment", "alpha", "--db", db)
    assert res.exit_code == 1, res.output
    assert "2 open difference(s)" in res.stdout
    lines = [ln for ln in res.stdout.splitlines() if "2026-01-01 00:00:00" in ln]
    assert len(lines) == 2 and "0.0123" in lines[0] and "cb-77" in lines[1]
    assert "balance" not in res.stdout                     # accepted: not open
    res = _invoke("reconcile", "--deployment", "alpha", "--db", db, "--json")
    rows = [json.loads(ln) for ln in res.stdout.splitlines()]
    assert res.exit_code == 1
    assert [(r["kind"], r["symbol"], r["ours"], r["venue"], r["time"]) for r in rows] == [
        ("position", "BTC-USD", "0.0123", "0", "2026-01-01T00:00:00Z"),
        ("order_unknown", "ETH-USD", None, "cb-77", "2026-01-01T00:00:00Z")]
    assert _commands(db) == []                             # reading queues nothing


def test_reconcile_accept_queues_one_accept_command(tmp_path):
    db, dep = _ledger(tmp_path)
    _differences(db, dep)
    res = _invoke("reconcile", "--deployment", "alpha", "--db", db, "--accept", "--by", "ana")
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == (
        "command 1 queued: deployment alpha adopts the venue's view of 2 open difference(s), "
        "recorded as accepted by ana; the deployment is created, not running: it does so when "
        "the deployment next starts")
    res = _invoke("reconcile", "--deployment", "alpha", "--db", db, "--accept")
    assert res.exit_code == 2 and "--accept: command 1 (accept by ana) is already pending" in res.output
    assert _commands(db) == [(1, "accept", None, None, "ana", "pending")]


def test_commands_lists_the_history_with_results(tmp_path):
    db, _ = _ledger(tmp_path)
    for kind in ("pause", "kill", "resume"):
        assert _invoke(kind, "--deployment", "alpha", "--db", db, "--by", "ana").exit_code == 0
    led = Ledger(db)
    led.finish_commands("r9", [(1, "done", "entries paused", "2026-01-01T00:00:00Z"),
                               (2, "refused", "already halted", "2026-01-01T00:00:00Z")])
    led.commit()
    led.close()
    res = _invoke("commands", "--deployment", "alpha", "--db", db)
    assert res.exit_code == 0, res.output
    assert "3 command(s), all" in res.stdout
    body = [ln for ln in res.stdout.splitlines() if " ana " in ln]
    assert [("pause" in b, "entries paused" in b) for b in body] == [(True, True), (False, False),
                                                                     (False, False)]
    assert "refused" in body[1] and "already halted" in body[1] and "pending" in body[2]
    res = _invoke("commands", "--deployment", "alpha", "--db", db, "--json", "--status", "done")
    rows = [json.loads(ln) for ln in res.stdout.splitlines()]
    assert [(r["id"], r["kind"], r["result"], r["run_id"]) for r in rows] == [
        (1, "pause", "entries paused", "r9")]
    res = _invoke("commands", "--deployment", "alpha", "--db", db, "--json", "--limit", "1")
    assert [json.loads(ln)["kind"] for ln in res.stdout.splitlines()] == ["resume"]


@pytest.mark.parametrize("command", [["pause"], ["resume"], ["kill"], ["flatten"], ["reconcile"],
                                     ["commands"], ["approvals"], ["approvals", "list"],
                                     ["approvals", "approve"], ["approvals", "reject"]])
def test_help_fits_80_columns_without_cutting_words(command):
    res = runner.invoke(app, [*command, "--help"], terminal_width=80, env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    assert "…" not in res.stdout
    assert command == ["approvals"] or "--deployment" in res.stdout
    assert all(len(line) <= 80 for line in res.stdout.splitlines())


def test_kill_flatten_needs_a_confirmation_then_queues_both(tmp_path):
    db, _ = _ledger(tmp_path)
    base = ["--deployment", "alpha", "--db", db, "--by", "ana"]
    r = _invoke("kill", *base, "--flatten")                  # no terminal, no --yes
    assert r.exit_code == 2 and "kill --flatten closes every position at market: pass --yes" in r.output
    assert _commands(db) == []
    r = _invoke("kill", *base, "--flatten", "--yes", "--reason", "venue incident")
    assert r.exit_code == 0, r.output
    assert _commands(db) == [(1, "kill", None, "venue incident", "ana", "pending"),
                             (2, "flatten", None, "venue incident", "ana", "pending")]
    assert "command 2 queued: close every position (reason: venue incident)" in r.stdout
