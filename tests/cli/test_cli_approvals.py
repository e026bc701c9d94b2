"""``warden approvals list``: the queued intents from the ledger."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tradewarden.cli import app
from tradewarden.engine import RunConfig
from tradewarden.ledger import Ledger
from tradewarden.ops.kernel import run_replay

runner = CliRunner()


def test_approvals_list_shows_the_pending_intents(tmp_path):
    db = str(tmp_path / "l.db")
    led = Ledger(db)
    run_replay(RunConfig(symbols=("ETH-USD",), end="2024-06-30", governor="approval"), led, run_id="qq")
    n = len(led.approvals(status="pending"))
    led.close()
    res = runner.invoke(app, ["approvals", "list", "--db", db, "--json"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(rows) == n > 0 and {r["status"] for r in rows} == {"pending"}
    assert rows[0]["intent"]["account"]["name"] == "ETH-USD"
    res = runner.invoke(app, ["approvals", "list", "--db", db])
    assert res.exit_code == 0 and f"{n} approval(s), pending" in res.stdout and "enter_long" in res.stdout
    res = runner.invoke(app, ["approvals", "list", "--db", db, "--status", "approved", "--json"])
    assert res.exit_code == 0 and res.stdout.strip() == ""


def test_approvals_list_names_a_bad_flag(tmp_path):
    db = str(tmp_path / "l.db")
    Ledger(db).close()
    res = runner.invoke(app, ["approvals", "list", "--db", db, "--status", "maybe"])
    assert res.exit_code == 2 and "--status maybe" in res.output
    res = runner.invoke(app, ["approvals", "list", "--db", db, "--deployment", "nope"])
    assert res.exit_code == 2 and "--deployment nope: no such deployment" in res.output


# --------------------------------------------------------------------------- approve, reject

def _ledger_with_approvals(tmp_path) -> tuple[str, str]:
    """A ledger with deployments alpha (two pending approvals, ids 1 and 2; an approved
    one, 3) and beta (one pending, 4), and a replay run's approval (5); returns the
    path and alpha's deployment id."""
    db = str(tmp_path / "l.db")
    led = Ledger(db)
    alpha = led.open_deployment("alpha", mode="paper", config='{"symbols": ["BTC-USD"]}',
                                config_hash="h")["deployment_id"]
    beta = led.open_deployment("beta", mode="paper", config="{}", config_hash="h")["deployment_id"]

    def row(dep, ts, symbol="BTC-USD"):
        return {"deployment_id": dep, "decision_seq": ts // 3600, "ts": ts, "symbol": symbol,
                "action": "enter_long", "intent": '{"quantity": "0.1", "price": "64000.5"}'}

    led.write_approvals("ra", [row(alpha, 3600), row(alpha, 7200, "ETH-USD"), row(alpha, 10800)])
    led.write_approvals("rb", [row(beta, 3600)])
    led.write_approvals("qq", [row(None, 3600)])
    led.commit()
    led.update_approvals([(3, "approved", "ana", "2026-01-02T03:04:05Z", None)])
    led.commit()
    led.close()
    return db, alpha


def _commands(db: str) -> list[tuple]:
    import sqlite3
    with sqlite3.connect(db) as c:
        return c.execute("select id, deployment_id, kind, target, reason, actor, status "
                         "from commands order by id").fetchall()


def test_approve_and_reject_queue_commands_for_the_deployment(tmp_path):
    db, alpha = _ledger_with_approvals(tmp_path)
    res = runner.invoke(app, ["approvals", "approve", "1", "--deployment", "alpha", "--db", db,
                              "--by", "ana"])
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == (
        "command 1 queued: approve approval 1 (enter_long BTC-USD) for deployment alpha by ana; "
        "the deployment is created, not running: it acts when the deployment next starts")
    res = runner.invoke(app, ["approvals", "reject", "2", "--deployment", "alpha", "--db", db,
                              "--reason", "  too close to the news ", "--by", "bo"])
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("command 2 queued: reject approval 2 (enter_long ETH-USD) "
                                 "(reason: too close to the news) for deployment alpha by bo;")
    assert _commands(db) == [(1, alpha, "approve", "1", None, "ana", "pending"),
                             (2, alpha, "reject", "2", "too close to the news", "bo", "pending")]


def test_approve_says_when_a_running_deployment_acts(tmp_path):
    import sqlite3
    db, alpha = _ledger_with_approvals(tmp_path)
    led = Ledger(db)
    led.create_run({"run_id": "live1", "mode": "paper", "capital_mode": "independent",
                    "market_time_basis": "t", "config_hash": "h", "config": "{}",
                    "strategy": "donchian", "symbols": '["BTC-USD"]', "timeframe": "1h",
                    "initial_capital": "1000"})             # this process: alive
    led.set_deployment_status(alpha, "running", run_id="live1")
    led.close()
    res = runner.invoke(app, ["approvals", "approve", "1", "--deployment", "alpha", "--db", db,
                              "--by", "ana"])
    assert res.exit_code == 0 and res.stdout.strip().endswith("; it acts before its next bar")
    with sqlite3.connect(db) as c:                      # its process died since
        c.execute("update runs set status = 'crashed' where run_id = 'live1'")
    res = runner.invoke(app, ["approvals", "reject", "2", "--deployment", "alpha", "--db", db,
                              "--reason", "no"])
    assert res.exit_code == 0 and res.stdout.strip().endswith(
        "the deployment is not running (its run live1 is crashed): it acts when the deployment "
        "next starts")


def test_by_defaults_to_the_os_user(tmp_path, monkeypatch):
    import getpass
    db, _ = _ledger_with_approvals(tmp_path)
    monkeypatch.setattr(getpass, "getuser", lambda: "tester")
    assert runner.invoke(app, ["approvals", "approve", "1", "--deployment", "alpha",
                               "--db", db]).exit_code == 0

    def no_user():
        raise OSError("no user name")
    monkeypatch.setattr(getpass, "getuser", no_user)
    assert runner.invoke(app, ["approvals", "reject", "2", "--deployment", "alpha", "--db", db,
                               "--reason", "r"]).exit_code == 0
    assert [c[5] for c in _commands(db)] == ["tester", "unknown"]


@pytest.mark.parametrize("args, message", [
    (["approve", "1", "--deployment", "gamma"], "--deployment gamma: no such deployment in "),
    (["approve", "99", "--deployment", "alpha"], "approval 99: no such approval in "),
    (["approve", "4", "--deployment", "alpha"], "approval 4 belongs to deployment beta, not alpha"),
    (["approve", "5", "--deployment", "alpha"],
     "approval 5 was queued by run qq, not by a deployment; deployment alpha cannot act on it"),
    (["reject", "3", "--deployment", "alpha", "--reason", "x"],
     "approval 3 is approved by ana at 2026-01-02T03:04:05Z, not pending"),
    (["reject", "1", "--deployment", "alpha", "--reason", "  "], "--reason: say why"),
    (["approve", "1", "--deployment", "alpha", "--by", ""], "--by '': give 1-64 characters"),
    (["reject", "1", "--deployment", "alpha"], "Missing option '--reason'"),
    (["approve", "one", "--deployment", "alpha"], "Invalid value for 'ID'"),
])
def test_approve_and_reject_refuse_clearly_and_queue_nothing(tmp_path, args, message):
    db, _ = _ledger_with_approvals(tmp_path)
    res = runner.invoke(app, ["approvals", *args, "--db", db])
    assert res.exit_code == 2 and message in " ".join(res.output.split()), res.output
    assert "Traceback" not in res.output
    assert _commands(db) == []


def test_a_second_decision_on_the_same_approval_is_refused_while_one_is_pending(tmp_path):
    db, _ = _ledger_with_approvals(tmp_path)
    assert runner.invoke(app, ["approvals", "approve", "1", "--deployment", "alpha", "--db", db,
                               "--by", "ana"]).exit_code == 0
    res = runner.invoke(app, ["approvals", "reject", "1", "--deployment", "alpha", "--db", db,
                              "--reason", "changed my mind"])
    assert res.exit_code == 2
    assert "approval 1 already has command 1 pending (approve by ana)" in res.output
    assert len(_commands(db)) == 1


def test_someone_acting_between_the_checks_and_the_claim_wins_and_nothing_is_doubled(
        tmp_path, monkeypatch):
    db, alpha = _ledger_with_approvals(tmp_path)
    claim = Ledger.claim_approval

    def other_person_first(self, deployment_id, approval_id, kind, **kw):
        # bo rejects approval 1 after ana's checks passed, before ana's claim runs
        assert claim(self, deployment_id, approval_id, "reject", actor="bo",
                     reason="news") is not None
        return claim(self, deployment_id, approval_id, kind, **kw)

    monkeypatch.setattr(Ledger, "claim_approval", other_person_first)
    res = runner.invoke(app, ["approvals", "approve", "1", "--deployment", "alpha", "--db", db,
                              "--by", "ana"])
    assert res.exit_code == 2
    assert "approval 1 was acted on by someone else just now" in res.output
    assert _commands(db) == [(1, alpha, "reject", "1", "news", "bo", "pending")]


def test_approve_needs_an_existing_ledger(tmp_path):
    res = runner.invoke(app, ["approvals", "approve", "1", "--deployment", "alpha",
                              "--db", str(tmp_path / "none.db")])
    assert res.exit_code == 2 and "no ledger at" in res.output
    assert not (tmp_path / "none.db").exists()
