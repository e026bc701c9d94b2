"""``warden ml predict`` and ``warden ml backtest``: what they print, what they record,
and the one ``error:`` line (exit status 2, no traceback) for bad input."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from sqlalchemy import create_engine, func, select
from typer.testing import CliRunner

from tradewarden.cli import app
from tradewarden.ledger import Ledger, schema
from tradewarden.ml.features import data_hash
from tradewarden.ml.registry import ModelRegistry
from tradewarden.ml.settings import MlSettings
from tradewarden.ml.train import fit, model_params, training_rows

TRAIN_END = 1_420_070_400                   # 2015-01-01


def run(*args: str):
    return CliRunner().invoke(app, ["ml", *args])


def error_line(result) -> str:
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture(scope="module")
def store(tmp_path_factory, _mlflow_template, bundled_panel):
    """A ledger directory with a production ridge version in mlflow.db beside it."""
    root = tmp_path_factory.mktemp("cli-predict")
    shutil.copyfile(_mlflow_template, root / "mlflow.db")
    settings = MlSettings(train_years=1.0)
    x, y = training_rows(bundled_panel, settings.horizon_days, end_ts=TRAIN_END,
                         train_years=settings.train_years)
    times = x.index.get_level_values("ts")
    registry = ModelRegistry(f"sqlite:///{root / 'mlflow.db'}")
    version = registry.register(fit(x, y, settings), name=settings.model_name,
                                features=tuple(x.columns), params=model_params(settings),
                                training_window=(int(times.min()), int(times.max())),
                                validation={"splits": [], "mean": {}},
                                data_hash=data_hash(bundled_panel), train_sample=x)
    led = Ledger(root / "ledger.db")
    registry.promote(settings.model_name, version, reason="test", actor="test", ledger=led,
                     ts=TRAIN_END)
    led.close()
    return root


def _count(db, table) -> int:
    with create_engine(f"sqlite:///{db}").connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar()


def test_predict_prints_the_scores_records_them_once_and_writes_the_scores_file(store):
    db = store / "ledger.db"
    scores = store / "scores.csv"
    first = run("predict", "--as-of", "2015-06-01", "--db", str(db), "--scores", str(scores))
    assert first.exit_code == 0, first.output
    assert "equity_rank version 1 as of 2015-06-01 close (20:00 UTC)" in first.output
    assert "recorded 5 predictions" in first.output
    assert 'strategy = "rank"' in first.output and "score_column = 'target'" in first.output
    assert _count(db, schema.ml_predictions) == 5
    frame = pd.read_csv(scores)
    assert set(frame["timestamp"]) == {"2015-06-01"} and (frame["target"] > 0).sum() == 2
    again = run("predict", "--as-of", "2015-06-01", "--db", str(db))
    assert again.exit_code == 0, again.output
    assert "already recorded for 2015-06-01 by version 1: nothing new written" in again.output
    assert _count(db, schema.ml_predictions) == 5


def test_predict_json_gives_every_row_with_its_target_weight(store):
    res = run("predict", "--as-of", "2015-06-02", "--db", str(store / "ledger.db"), "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["version"] == "1" and data["as_of"] == "2015-06-02" and data["written"] == 5
    preds = data["predictions"]
    assert [p["rank"] for p in preds] == [1, 2, 3, 4, 5]
    assert [p["target_weight"] for p in preds] == [0.4, 0.4, 0.0, 0.0, 0.0]   # top 2, capped
    assert all(len(p["feature_hash"]) == 64 for p in preds)


@pytest.mark.parametrize(("args", "want"), [
    (["--as-of", "2015-06-06"], "error: as-of date 2015-06-06 (Saturday) is not an NYSE session"),
    (["--as-of", "2016-01-04"], ("error: bundled:us_equities_daily_alphavantage_AAPL-JPM-MSFT-"
                                 "NVDA-XOM_2012-2015.csv.gz: AAPL does not reach the as-of date "
                                 "2016-01-04 (its last date is 2015-12-31)")),
    (["--as-of", "someday"], "error: invalid as-of date 'someday'"),
    (["--as-of", "2015-06-01", "--data", "/nonexistent/u.csv"], "error: /nonexistent/u.csv"),
])
def test_predict_refuses_bad_input_in_one_line(store, args, want):
    before = _count(store / "ledger.db", schema.ml_predictions)
    assert error_line(run("predict", "--db", str(store / "ledger.db"), *args)).startswith(want)
    assert _count(store / "ledger.db", schema.ml_predictions) == before


def test_predict_without_a_production_version_says_how_to_get_one(tmp_path, mlflow_db):
    mlflow_db(tmp_path)
    line = error_line(run("predict", "--as-of", "2015-06-01", "--db", str(tmp_path / "l.db")))
    assert "has no production version" in line and "warden ml promote" in line


def test_a_bad_ml_setting_is_named_with_its_file(tmp_path):
    cfg = tmp_path / "ml.toml"
    cfg.write_text("[ml]\ntop_n = 0\n")
    line = error_line(run("predict", "--as-of", "2015-06-01", "--config", str(cfg),
                          "--db", str(tmp_path / "l.db")))
    assert "ml.top_n" in line and str(cfg) in line


@pytest.fixture(scope="module")
def small_universe(tmp_path_factory, bundled_panel):
    """Three bundled symbols, 2012-01-03 .. 2012-12-31, as a user's file."""
    path = tmp_path_factory.mktemp("universe") / "small.csv"
    p = bundled_panel[bundled_panel["symbol"].isin(["AAPL", "JPM", "XOM"])
                      & (bundled_panel["ts"] <= 1_356_912_000)]
    p = p.assign(high=p[["open", "high", "close"]].max(axis=1),
                 low=p[["open", "low", "close"]].min(axis=1),
                 timestamp=pd.to_datetime(p["ts"], unit="s").dt.strftime("%Y-%m-%d"))
    p[["timestamp", "symbol", "open", "high", "low", "close", "volume"]].to_csv(path, index=False)
    return path


def test_backtest_prints_the_figures_and_records_the_run_and_predictions(tmp_path,
                                                                         small_universe):
    cfg = tmp_path / "bt.toml"
    cfg.write_text('capital = "50000"\n[ml]\nretrain_every_days = 20\ntrain_years = 1.0\n'
                   "top_n = 1\n")
    db = tmp_path / "ledger.db"
    res = run("backtest", "--config", str(cfg), "--db", str(db), "--data", str(small_universe),
              "--start", "2012-11-01", "--out", str(tmp_path / "ml"))
    assert res.exit_code == 0, res.output
    for text in ("walk-forward backtest", "2012-11-01 .. 2012-12-31", "sessions predicted",
                 "IC (mean daily Spearman, 5-session returns)", "hit rate",
                 "equal-weight universe, buy and hold", "run return", "warden report"):
        assert text in res.output, text
    assert _count(db, schema.runs) == 1 and _count(db, schema.ml_predictions) == 3 * 41
    with create_engine(f"sqlite:///{db}").connect() as conn:
        strategy, capital = conn.execute(select(schema.runs.c.strategy,
                                                schema.runs.c.initial_capital)).one()
        jobs = {j for (j,) in conn.execute(select(schema.ml_predictions.c.job))}
    assert strategy == "rank" and str(capital) == "50000" and jobs == {"backtest"}
    assert len(list((tmp_path / "ml").glob("backtest-*.csv"))) == 1


def test_backtest_outside_the_data_is_refused_in_one_line(tmp_path, small_universe):
    line = error_line(run("backtest", "--db", str(tmp_path / "l.db"), "--data",
                          str(small_universe), "--start", "2014-01-01"))
    assert line == (f"error: {small_universe}: fewer than two sessions to predict in "
                    "2014-01-01 .. 2012-12-31 (the data runs 2012-01-03 .. 2012-12-31)")
    assert not (tmp_path / "l.db").exists()
