"""``warden ml train|models|promote|rollback`` end to end on the bundled equities: a
version registered beside the ledger, promoted, rolled back, every change in the
ledger's ml_model_events, and bad input as one ``error:`` line with status 2."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tradewarden.cli import app
from tradewarden.ledger import Ledger
from tradewarden.ml.registry import model_events

runner = CliRunner()
CONFIG = """
[ml]
model_name = "cli_model"
n_splits = 2
train_years = 1.0
"""


@pytest.fixture
def workdir(tmp_path, mlflow_db):
    mlflow_db(tmp_path)                        # an empty store where the default puts it
    (tmp_path / "warden.toml").write_text(CONFIG)
    return tmp_path


def _ml(workdir, *args: str):
    return runner.invoke(app, ["ml", *args, "--config", str(workdir / "warden.toml"),
                               "--db", str(workdir / "ledger.db")])


def test_train_models_promote_rollback(workdir) -> None:
    res = _ml(workdir, "train", "--as-of", "2014-12-31", "--json", "--by", "ana")
    assert res.exit_code == 0, res.output
    first = json.loads(res.output)
    assert first["version"] == "1" and not first["promoted"]
    assert first["symbols"] == ["AAPL", "JPM", "MSFT", "NVDA", "XOM"]
    assert first["end_ts"] == 1_419_984_000 and len(first["validation"]["splits"]) == 2

    res = _ml(workdir, "train", "--as-of", "2015-06-30", "--promote", "--reason", "weekly",
              "--by", "ana")
    assert res.exit_code == 0, res.output
    assert "walk-forward validation" in res.output and "registered cli_model version 2" in res.output
    assert "production: version 2 (was none)" in res.output

    res = _ml(workdir, "models", "--json")
    rows = [json.loads(line) for line in res.output.splitlines()]
    assert [(r["version"], r["production"]) for r in rows] == [("1", False), ("2", True)]
    assert rows[0]["training_window"][1] < rows[1]["training_window"][1]
    assert set(rows[1]["validation"]) == {"ic", "hit_rate", "spread"}
    table = _ml(workdir, "models").output
    assert "production" in table and "2014-" in table

    res = _ml(workdir, "promote", "1", "--reason", "older is steadier", "--by", "bo")
    assert res.exit_code == 0 and "production is version 1 (was 2)" in res.output
    res = _ml(workdir, "rollback", "--reason", "back to the weekly one", "--by", "bo")
    assert res.exit_code == 0 and "production is version 2 (rolled back from 1)" in res.output

    led = Ledger(workdir / "ledger.db")
    events = [(e["kind"], e["from_version"], e["to_version"], e["reason"], e["actor"])
              for e in model_events(led, "cli_model")]
    led.close()
    assert events == [("register", None, "1", "trained and registered", "ana"),
                      ("register", None, "2", "trained and registered", "ana"),
                      ("promote", None, "2", "weekly", "ana"),
                      ("promote", "2", "1", "older is steadier", "bo"),
                      ("rollback", "1", "2", "back to the weekly one", "bo")]
    assert (workdir / "mlflow.db").exists() and (workdir / "mlartifacts").is_dir()

    # nothing earlier to roll back to, an unknown version: one line, status 2
    res = _ml(workdir, "rollback")
    assert res.exit_code == 2 and res.output.startswith("error: ")
    assert "no earlier production version" in res.output and "Traceback" not in res.output
    res = _ml(workdir, "promote", "9")
    assert res.exit_code == 2 and "has no version 9 (versions: 1, 2)" in res.output


@pytest.mark.parametrize(("args", "message"), [
    (["train", "--algorithm", "svm"], "--algorithm"),
    (["train", "--as-of", "2014-13-01"], "--as-of"),
    (["train", "--as-of", "2012-02-01"], "complete training rows"),
    (["train", "--data", "missing.csv"], "missing.csv: file not found"),
    (["promote", "1", "--reason", " "], "--reason"),
])
def test_bad_input_is_one_line_with_status_2(workdir, args, message) -> None:
    res = _ml(workdir, *args)
    assert res.exit_code == 2, res.output
    assert res.output.startswith("error: ") and message in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_a_bad_config_value_names_its_source(workdir) -> None:
    (workdir / "warden.toml").write_text("[ml]\nhorizon_days = 10\npurge_days = 3\n")
    res = _ml(workdir, "models")
    assert res.exit_code == 2 and "purge_days" in res.output and "warden.toml" in res.output


def test_models_without_versions(workdir) -> None:
    res = _ml(workdir, "models")
    assert res.exit_code == 0 and "no versions of cli_model" in res.output
