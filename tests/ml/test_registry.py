"""The model registry (ml/registry.py) on a local MLflow store: register, promote, roll
back, every change recorded in ml_model_events, and a version reloaded from disk in a
new process predicting exactly what it predicted when trained."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tradewarden.ledger import Ledger, LedgerError
from tradewarden.ml.features import FEATURES, compute_features
from tradewarden.ml.registry import (
    ModelRegistry,
    RegistryError,
    default_registry_uri,
    model_events,
    record_model_event,
)
from tradewarden.ml.settings import MlSettings
from tradewarden.ml.train import train

END = 1_420_070_400                         # 2015-01-01
SETTINGS = MlSettings(n_splits=2, train_years=1.0)


@pytest.fixture(scope="module")
def trained(bundled_panel):
    return train(bundled_panel, SETTINGS, end_ts=END)


def _register(registry: ModelRegistry, result, name: str = "equity_rank", **kw) -> str:
    return registry.register(result.estimator, name=name, features=result.features,
                             params=result.params, training_window=result.training_window,
                             validation=result.validation, data_hash=result.data_hash,
                             train_sample=result.train_sample, **kw)


def test_register_promote_rollback_and_the_events(tmp_path, mlflow_db, trained,
                                                  bundled_panel) -> None:
    registry = ModelRegistry(f"sqlite:///{mlflow_db(tmp_path)}")
    led = Ledger(tmp_path / "ledger.db")
    assert registry.production("equity_rank") is None and registry.versions("equity_rank") == []
    v1 = _register(registry, trained, ledger=led, actor="ana", ts=100)
    v2 = _register(registry, trained)
    assert (v1, v2) == ("1", "2")
    assert registry.production("equity_rank") is None          # registering does not promote
    with pytest.raises(RegistryError, match="no production version to roll back"):
        registry.rollback("equity_rank", reason="x", actor="cli", ledger=led, ts=101)

    assert registry.promote("equity_rank", v1, reason="first", actor="ana", ledger=led,
                            ts=102) is None
    assert registry.promote("equity_rank", 2, reason="newer", actor="ana", ledger=led,
                            ts=103) == "1"
    prod = registry.production("equity_rank")
    assert prod.version == "2" and prod.is_production
    assert prod.features == FEATURES and prod.data_hash == trained.data_hash
    assert prod.training_window == trained.training_window
    assert prod.params == trained.params
    assert prod.validation["mean"] == pytest.approx(trained.validation["mean"])
    assert [s["test_start"] for s in prod.validation["splits"]] == \
        [s["test_start"] for s in trained.validation["splits"]]

    assert registry.rollback("equity_rank", reason="drift persisted", actor="daemon",
                             ledger=led, ts=104) == "1"
    assert [(v.version, v.is_production) for v in registry.versions("equity_rank")] == \
        [("1", True), ("2", False)]
    with pytest.raises(RegistryError, match="no earlier production version"):
        registry.rollback("equity_rank", reason="again", actor="cli", ledger=led, ts=105)
    assert registry.promote("equity_rank", "2", reason="undo the rollback", actor="ana",
                            ledger=led, ts=106) == "1"
    with pytest.raises(RegistryError, match=r"no version 7 \(versions: 1, 2\)"):
        registry.promote("equity_rank", "7", reason="x", actor="ana", ledger=led, ts=107)

    events = [(e["kind"], e["from_version"], e["to_version"], e["reason"], e["actor"], e["ts"])
              for e in model_events(led, "equity_rank")]
    assert events == [("register", None, "1", "trained and registered", "ana", 100),
                      ("promote", None, "1", "first", "ana", 102),
                      ("promote", "1", "2", "newer", "ana", 103),
                      ("rollback", "2", "1", "drift persisted", "daemon", 104),
                      ("promote", "1", "2", "undo the rollback", "ana", 106)]
    assert model_events(led)[0]["detail"]["data_hash"] == trained.data_hash

    # the stored version predicts what the trained estimator does, NaN where a feature is
    rows = compute_features(bundled_panel).dropna().tail(20)
    got = registry.production("equity_rank").predict(rows)
    expected = trained.estimator.predict(np.ascontiguousarray(rows.to_numpy()))
    np.testing.assert_array_equal(got, expected)
    holed = rows.copy()
    holed.iloc[0, 0] = np.nan
    assert np.isnan(registry.production("equity_rank").predict(holed)[0])
    sample = registry.production("equity_rank").train_sample
    assert sample.shape == trained.train_sample.shape
    assert sample.index.names == ["ts", "symbol"]
    led.close()


def test_a_version_reloads_in_a_new_process(tmp_path, mlflow_db, trained, bundled_panel) -> None:
    uri = f"sqlite:///{mlflow_db(tmp_path)}"
    registry = ModelRegistry(uri)
    led = Ledger(tmp_path / "ledger.db")
    version = _register(registry, trained, name="reload_me")
    registry.promote("reload_me", version, reason="test", actor="cli", ledger=led, ts=1)
    led.close()
    rows = compute_features(bundled_panel).dropna().tail(10)
    rows.to_parquet(tmp_path / "rows.parquet")
    script = (
        "import json, sys, pandas as pd\n"
        "from tradewarden.ml.registry import ModelRegistry\n"
        f"mv = ModelRegistry({uri!r}).production('reload_me')\n"
        f"rows = pd.read_parquet({str(tmp_path / 'rows.parquet')!r})\n"
        "print(json.dumps({'version': mv.version, 'hash': mv.data_hash,\n"
        "                  'pred': mv.predict(rows).tolist(), 'n': len(mv.train_sample)}))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["version"] == version and out["hash"] == trained.data_hash
    assert out["n"] == len(trained.train_sample)
    expected = trained.estimator.predict(np.ascontiguousarray(rows.to_numpy()))
    np.testing.assert_array_equal(np.array(out["pred"]), expected)
    assert "INFO" not in done.stderr                 # MLflow's logging is silenced


def test_default_registry_uri_sits_beside_the_ledger(tmp_path) -> None:
    assert default_registry_uri("http://mlflow:5000", "x.db") == "http://mlflow:5000"
    assert default_registry_uri(None, str(tmp_path / "a" / "ledger.db")) == \
        f"sqlite:///{tmp_path / 'a' / 'mlflow.db'}"
    assert default_registry_uri(None, f"sqlite:///{tmp_path}/l.db") == \
        f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert default_registry_uri(None, "postgresql+psycopg://u@h/db").endswith(
        "/warden-out/mlflow.db")


def test_model_events_refuse_bad_arguments(tmp_path) -> None:
    led = Ledger(tmp_path / "ledger.db")
    with pytest.raises(LedgerError, match="kind 'demote'"):
        record_model_event(led, name="m", kind="demote", from_version=None, to_version="1",
                           reason="x", actor="cli", ts=1)
    with pytest.raises(LedgerError, match="reason"):
        record_model_event(led, name="m", kind="promote", from_version=None, to_version="1",
                           reason=" ", actor="cli", ts=1)
    with pytest.raises(LedgerError, match="ts"):
        record_model_event(led, name="m", kind="promote", from_version=None, to_version="1",
                           reason="x", actor="cli", ts=float("nan"))
    assert model_events(led) == []
    led.close()
