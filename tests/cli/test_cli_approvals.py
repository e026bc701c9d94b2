"""``warden approvals list``: the queued intents from the ledger."""

from __future__ import annotations

import json

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
