"""``warden ml``: the ML pipeline's commands (issue 16).

``warden ml train`` trains a model version on the universe (``[ml]`` in the config),
validates it walk-forward with a purge and an embargo, and registers it;
``warden ml models`` lists the versions with their training window, validation and
which one is in production; ``warden ml promote VERSION`` and ``warden ml rollback``
move the production alias, each recorded in the ledger's ``ml_model_events`` with its
reason. ``warden ml predict --as-of DATE`` scores a session's close with the production
version (``ml_predictions``, optionally the rank strategy's scores file);
``warden ml backtest`` walks forward over history and replays the targets through the
engine. ``warden ml drift [--as-of DATE]`` checks the production version
for drift, records the report and applies the rollback policy (exit status 3 on
drift). Every command takes ``--config`` and ``--db``; bad input prints one
``error: ...`` line and exits with status 2.
"""

from __future__ import annotations

import json
import math
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from tradewarden.cli_common import CONFIG_OPT, DB_OPT, _fail, _known_errors

ml_app = typer.Typer(no_args_is_help=True, add_completion=False,
                     help="ML pipeline: train, list, promote and roll back model versions; "
                          "predict a session, backtest walk-forward, check drift.")

BY_OPT = typer.Option(None, "--by", help="Who gives the command, recorded with the event. "
                                         "[default: the OS user]")
JSON_OPT = typer.Option(False, "--json", help="Print JSON instead of a table.")
DATA_OPT = typer.Option(None, "--data", help="Universe file (daily OHLCV with a symbol column). "
                        "[default: [ml] data, else the bundled AAPL/JPM/MSFT/NVDA/XOM 2012-2015]")
_DAY = 86_400


def load_ml(config: Path | None, db: str | None, **flags: tuple[Any, str]) -> Any:
    """Load the settings a ``warden ml`` command needs, with its flags on top.

    Parameters
    ----------
    config : pathlib.Path or None
        ``--config``.
    db : str or None
        ``--db``.
    **flags : tuple of (value, flag)
        ``ml`` keys set by flags, e.g. ``algorithm=("lightgbm", "--algorithm")``;
        a ``None`` value is not set.

    Returns
    -------
    LoadedSettings
        ``.settings.ml`` the :class:`~tradewarden.ml.settings.MlSettings`.

    Raises
    ------
    typer.Exit
        Status 2 with one line naming the bad value and its source.
    """
    from tradewarden.settings import load_settings
    given = {"ledger.db": (db, "--db"), **{f"ml.{k}": v for k, v in flags.items()}}
    try:
        return load_settings(config, {k: v for k, v in given.items() if v[0] is not None})
    except ValueError as exc:
        raise _fail(str(exc)) from None


def registry_for(loaded: Any) -> Any:
    """Return the :class:`~tradewarden.ml.registry.ModelRegistry` of loaded settings:
    ``[ml] registry_uri``, else ``mlflow.db`` beside the ledger."""
    from tradewarden.ml.registry import ModelRegistry, default_registry_uri
    return ModelRegistry(default_registry_uri(loaded.settings.ml.registry_uri,
                                              loaded.ledger.db))


def parse_day(value: str | None, flag: str) -> int | None:
    """Return a date given on the command line as its session label (00:00 UTC, epoch
    seconds), or ``None``.

    Raises
    ------
    typer.Exit
        Status 2 naming the flag when the value is not an ISO date.
    """
    if value is None:
        return None
    from tradewarden.data.calendars import as_date
    try:
        d = as_date(value, flag)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    return (d - datetime(1970, 1, 1).date()).days * _DAY


def day_text(ts: int | None) -> str:
    """Return a date label (UTC epoch seconds) as ``YYYY-MM-DD`` (``-`` for ``None``)."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(int(ts), tz=timezone.utc).strftime("%Y-%m-%d")


def _num(value: Any, fmt: str = "{:+.3f}") -> str:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return "-"
    return fmt.format(x) if math.isfinite(x) else "-"


def _ledger(loaded: Any) -> Any:
    from tradewarden.ledger import Ledger
    return Ledger(loaded.ledger.url())


def _plain(value: Any) -> Any:
    """``value`` with non-finite floats as ``None`` (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _dump(obj: Any) -> str:
    return json.dumps(_plain(obj), sort_keys=True, default=str, allow_nan=False)


def _errors() -> tuple[type[BaseException], ...]:
    from tradewarden.ml.registry import RegistryError
    return (RegistryError, *_known_errors())


def _by(by: str | None) -> str:
    from tradewarden.cli_approvals import actor_name
    return actor_name(by)


def _console() -> Console:
    """A console that does not squeeze the tables into 80 columns when piped."""
    console = Console()
    return console if console.is_terminal else Console(width=160)


def _split_table(validation: dict[str, Any], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("split", "train to", "test window", "train rows", "test rows", "IC",
                "hit rate", "spread"):
        table.add_column(col, justify="left" if col in ("train to", "test window") else "right")
    for k, s in enumerate(validation.get("splits") or [], start=1):
        table.add_row(str(k), day_text(s.get("train_end")),
                      f"{day_text(s.get('test_start'))} .. {day_text(s.get('test_end'))}",
                      str(s.get("n_train", "-")), str(s.get("n_test", "-")), _num(s.get("ic")),
                      _num(s.get("hit_rate"), "{:.3f}"), _num(s.get("spread"), "{:+.4f}"))
    mean = validation.get("mean") or {}
    table.add_row("mean", "", "", "", "", _num(mean.get("ic")),
                  _num(mean.get("hit_rate"), "{:.3f}"), _num(mean.get("spread"), "{:+.4f}"))
    return table


@ml_app.command("train")
def train_cmd(config: Optional[Path] = CONFIG_OPT, db: Optional[str] = DB_OPT,
              as_of: Optional[str] = typer.Option(
                  None, "--as-of", help="Train as of this date (YYYY-MM-DD): no bar after it "
                                        "is read. [default: the data's last session]"),
              algorithm: Optional[str] = typer.Option(
                  None, help="ridge or lightgbm. [default: the config's [ml] algorithm, "
                             "else ridge]"),
              data: Optional[str] = DATA_OPT,
              promote: bool = typer.Option(False, "--promote",
                                           help="Make the new version production."),
              reason: str = typer.Option("trained with warden ml train", "--reason",
                                         help="Why, recorded with the promotion."),
              by: Optional[str] = BY_OPT, as_json: bool = JSON_OPT) -> None:
    """Train a model version, validate it walk-forward (purge, embargo) and register it.

    Prints the information coefficient, hit rate and top-minus-bottom spread of each
    validation split. The version is not in production until promoted (--promote
    here, or `warden ml promote VERSION`).
    """
    loaded = load_ml(config, db, algorithm=(algorithm, "--algorithm"), data=(data, "--data"))
    ml = loaded.settings.ml
    end_ts = parse_day(as_of, "--as-of")
    actor = _by(by)
    from tradewarden.ml.features import load_universe
    from tradewarden.ml.train import train
    try:
        panel = load_universe(ml)
        result = train(panel, ml, end_ts=end_ts)
        registry = registry_for(loaded)
        led = _ledger(loaded)
        try:
            now = int(time.time())
            version = registry.register(
                result.estimator, name=ml.model_name, features=result.features,
                params=result.params, training_window=result.training_window,
                validation=result.validation, data_hash=result.data_hash,
                train_sample=result.train_sample, ledger=led, actor=actor, ts=now)
            before = None
            if promote:
                before = registry.promote(ml.model_name, version, reason=reason, actor=actor,
                                          ledger=led, ts=now)
        finally:
            led.close()
    except _errors() as exc:
        raise _fail(str(exc)) from None
    symbols = sorted(panel["symbol"].unique())
    if as_json:
        typer.echo(_dump({"model": ml.model_name, "version": version,
                          "promoted": promote, "previous_production": before,
                          "training_window": list(result.training_window),
                          "end_ts": result.end_ts, "rows": result.n_rows,
                          "symbols": symbols, "params": result.params,
                          "data_hash": result.data_hash,
                          "validation": result.validation}))
        return
    console = _console()
    console.print(_split_table(result.validation, f"{ml.model_name}: walk-forward validation "
                               f"({ml.algorithm}, horizon {ml.horizon_days} sessions, purge "
                               f"{ml.purge_days}, embargo {ml.embargo_days})"))
    console.print(f"registered {ml.model_name} version {version}: {result.n_rows} rows, "
                  f"{', '.join(symbols)}, window {day_text(result.training_window[0])} .. "
                  f"{day_text(result.training_window[1])}, data {result.data_hash[:12]}",
                  highlight=False)
    if promote:
        console.print(f"production: version {version} (was {before or 'none'})",
                      highlight=False)
    else:
        console.print(f"not in production; `warden ml promote {version}` makes it so",
                      highlight=False)


@ml_app.command("models")
def models_cmd(config: Optional[Path] = CONFIG_OPT, db: Optional[str] = DB_OPT,
               as_json: bool = JSON_OPT) -> None:
    """List the model's versions: training window, validation IC / hit rate / spread, and
    which is production."""
    loaded = load_ml(config, db)
    name = loaded.settings.ml.model_name
    try:
        registry = registry_for(loaded)
        found = registry.versions(name)
    except _errors() as exc:
        raise _fail(str(exc)) from None
    if as_json:
        for v in found:
            typer.echo(_dump({"name": v.name, "version": v.version,
                              "production": v.is_production,
                              "training_window": list(v.training_window),
                              "params": v.params, "data_hash": v.data_hash,
                              "validation": v.validation.get("mean"),
                              "created_ms": v.created_ms}))
        return
    console = _console()
    if not found:
        console.print(f"no versions of {name} in {registry.uri}; train one with "
                      "`warden ml train`", highlight=False)
        return
    table = Table(title=f"{name} ({registry.uri})", title_justify="left")
    for col in ("version", "", "algorithm", "training window", "IC", "hit rate", "spread",
                "data"):
        table.add_column(col, justify="right" if col in ("IC", "hit rate", "spread",
                                                         "version") else "left")
    for v in found:
        mean = v.validation.get("mean") or {}
        table.add_row(v.version, "production" if v.is_production else "",
                      str(v.params.get("algorithm", "-")),
                      f"{day_text(v.training_window[0])} .. {day_text(v.training_window[1])}",
                      _num(mean.get("ic")), _num(mean.get("hit_rate"), "{:.3f}"),
                      _num(mean.get("spread"), "{:+.4f}"), v.data_hash[:12])
    console.print(table)


@ml_app.command("promote")
def promote_cmd(version: str = typer.Argument(..., help="The version to put in production."),
                config: Optional[Path] = CONFIG_OPT, db: Optional[str] = DB_OPT,
                reason: str = typer.Option("promoted with warden ml promote", "--reason",
                                           help="Why, recorded in the ledger."),
                by: Optional[str] = BY_OPT) -> None:
    """Make VERSION the production version (also undoes a rollback); recorded with its
    reason in the ledger."""
    if not reason.strip():
        raise _fail("--reason: give a non-empty reason")
    loaded = load_ml(config, db)
    name = loaded.settings.ml.model_name
    actor = _by(by)
    try:
        registry = registry_for(loaded)
        led = _ledger(loaded)
        try:
            before = registry.promote(name, version, reason=reason, actor=actor, ledger=led,
                                      ts=int(time.time()))
        finally:
            led.close()
    except _errors() as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"{name}: production is version {version} (was {before or 'none'})")


@ml_app.command("rollback")
def rollback_cmd(config: Optional[Path] = CONFIG_OPT, db: Optional[str] = DB_OPT,
                 reason: str = typer.Option("rolled back with warden ml rollback", "--reason",
                                            help="Why, recorded in the ledger."),
                 by: Optional[str] = BY_OPT) -> None:
    """Return production to the version that was production before; recorded with its
    reason in the ledger (`warden ml promote VERSION` undoes it)."""
    if not reason.strip():
        raise _fail("--reason: give a non-empty reason")
    loaded = load_ml(config, db)
    name = loaded.settings.ml.model_name
    actor = _by(by)
    try:
        registry = registry_for(loaded)
        current = registry.production(name)
        led = _ledger(loaded)
        try:
            target = registry.rollback(name, reason=reason, actor=actor, ledger=led,
                                       ts=int(time.time()))
        finally:
            led.close()
    except _errors() as exc:
        raise _fail(str(exc)) from None
    was = current.version if current is not None else "none"
    typer.echo(f"{name}: production is version {target} (rolled back from {was})")


def _pct(value: Any) -> str:
    return _num(value, "{:+.2%}")


@ml_app.command("predict")
def predict_cmd(as_of: str = typer.Option(..., "--as-of",
                                          help="The NYSE session (YYYY-MM-DD) whose close the "
                                               "features are as of."),
                config: Optional[Path] = CONFIG_OPT, db: Optional[str] = DB_OPT,
                data: Optional[str] = DATA_OPT,
                scores: Optional[Path] = typer.Option(
                    None, "--scores", dir_okay=False,
                    help="Also write the rank strategy's scores file here, from every "
                         "session the ledger holds predictions of this model for, for a "
                         "replay or deployment with strategy = \"rank\" (the parameters to "
                         "use are printed)."),
                as_json: bool = JSON_OPT) -> None:
    """Score the universe with the production model as of a session's close.

    The predictions (score, rank, the feature row's hash, the model version and the
    close in UTC epoch seconds) go to the ledger's ml_predictions; running it again for
    the same session and version writes nothing and says so. Refused in one line when
    there is no production version or the data does not reach the date.
    """
    loaded = load_ml(config, db, data=(data, "--data"))
    ml = loaded.settings.ml
    from tradewarden.ml.predict import predict, update_scores_file
    from tradewarden.ml.targets import rank_params, target_weights
    try:
        led = _ledger(loaded)
        try:
            out = predict(ml, led, as_of=as_of)
            written_file = None
            if scores is not None:
                written_file = update_scores_file(ml, led, scores)
        finally:
            led.close()
    except _errors() as exc:
        raise _fail(str(exc)) from None
    weights = target_weights(dict(zip(out["symbol"], out["score"])), ml)
    version, close_ts, day = out["model_version"][0], int(out["as_of_ts"][0]), out["as_of"][0]
    if as_json:
        typer.echo(_dump({"model": ml.model_name, "version": version, "as_of": day,
                          "as_of_ts": close_ts, "written": out.attrs["written"],
                          "scores_file": str(written_file) if written_file else None,
                          "predictions": [{**{k: r[k] for k in ("symbol", "score", "rank",
                                                                "feature_hash")},
                                           "target_weight": weights.get(r["symbol"], 0.0)}
                                          for r in out.to_dict("records")]}))
        return
    console = _console()
    close = datetime.fromtimestamp(close_ts, tz=timezone.utc).strftime("%H:%M")
    table = Table(title=f"{ml.model_name} version {version} as of {day} close ({close} UTC): "
                        f"{ml.conversion} targets, {ml.weighting} weights", title_justify="left")
    for col in ("rank", "symbol", "score", "target weight", "features (SHA-256)"):
        table.add_column(col, justify="left" if col in ("symbol", "features (SHA-256)")
                         else "right")
    for r in out.to_dict("records"):
        w = weights.get(r["symbol"])
        table.add_row(str(r["rank"]), r["symbol"], _num(r["score"], "{:+.5f}"),
                      f"{w:.1%}" if w else "-", r["feature_hash"][:16])
    console.print(table)
    if out.attrs["written"]:
        console.print(f"recorded {out.attrs['written']} predictions in {loaded.ledger.url()}",
                      highlight=False, soft_wrap=True)
    else:
        console.print(f"already recorded for {day} by version {version}: nothing new written",
                      highlight=False)
    if written_file is not None:
        p = rank_params(ml, written_file)
        console.print(f"scores file {written_file}: trade it with strategy = \"rank\" and "
                      + ", ".join(f"{k} = {v!r}" for k, v in p.items() if k != "scores"),
                      highlight=False, soft_wrap=True)


@ml_app.command("backtest")
def backtest_cmd(config: Optional[Path] = CONFIG_OPT, db: Optional[str] = DB_OPT,
                 start: Optional[str] = typer.Option(
                     None, "--start", help="First session to predict (YYYY-MM-DD). "
                                           "[default: train_years after the data starts]"),
                 end: Optional[str] = typer.Option(
                     None, "--end", help="Last session to predict (YYYY-MM-DD, inclusive). "
                                         "[default: the data's last]"),
                 data: Optional[str] = DATA_OPT,
                 algorithm: Optional[str] = typer.Option(
                     None, help="ridge or lightgbm. [default: the config's [ml] algorithm, "
                                "else ridge]"),
                 out: Path = typer.Option(Path("warden-out/ml"), "--out", file_okay=False,
                                          help="Directory for the scores file "
                                               "backtest-ID.csv."),
                 as_json: bool = JSON_OPT) -> None:
    """Walk forward over history: what the pipeline would have done.

    Retrains every [ml] retrain_every_days sessions on bars strictly before the
    retraining day (labels that need a later close left out), predicts each session's
    close (recorded in ml_predictions with job backtest), converts the scores to targets
    and replays them through the engine with the rank strategy (the same risk manager,
    governor and ledger as warden replay; capital, fees and [risk] from the config).
    Prints the out-of-sample IC and hit rate and the run's return against the
    equal-weight universe; `warden report RUN_ID` shows the run.
    """
    loaded = load_ml(config, db, data=(data, "--data"), algorithm=(algorithm, "--algorithm"))
    ml = loaded.settings.ml
    from tradewarden.cli_common import _progress
    from tradewarden.ml.backtest import backtest
    console = _console()
    try:
        run_config = loaded.run_config()
        with _progress(Console(stderr=True), "retrain", "models") as bar:
            res = backtest(ml, loaded.ledger.url(), run_config=run_config, start=start, end=end,
                           out_dir=out, progress=None if as_json else bar)
    except _errors() as exc:
        raise _fail(str(exc)) from None
    m = res.metrics
    if as_json:
        typer.echo(_dump({"backtest_id": res.backtest_id, "run_id": res.run_id,
                          "ledger": res.ledger, "scores_file": str(res.scores_path),
                          "start": res.start.isoformat(), "end": res.end.isoformat(),
                          "sessions": res.sessions, "retrains": res.retrains,
                          "predictions_written": res.written, "skipped_rows": res.skipped,
                          "metrics": m, "run_return": res.run_return,
                          "equal_weight_return": res.equal_weight_return,
                          "warnings": res.warnings}))
        return
    console.print(f"{ml.model_name} walk-forward backtest {res.backtest_id}: {res.start} .. "
                  f"{res.end}, {ml.algorithm}, {ml.conversion} targets, {ml.weighting} weights",
                  highlight=False, soft_wrap=True)
    table = Table()
    table.add_column("")
    table.add_column("value", justify="right")
    rows = [("sessions predicted", f"{res.sessions}"),
            ("models (retrained every)", f"{res.retrains} ({ml.retrain_every_days} sessions)"),
            (f"IC (mean daily Spearman, {ml.horizon_days}-session returns)", _num(m["ic"])),
            ("IC standard deviation", _num(m["ic_std"], "{:.3f}")),
            ("hit rate (sign)", _num(m["hit_rate"], "{:.3f}")),
            ("top minus bottom spread", _num(m["spread"], "{:+.4f}")),
            ("run return", _pct(res.run_return)),
            ("equal-weight universe, buy and hold", _pct(res.equal_weight_return))]
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)
    for w in res.warnings:
        console.print(f"warning: {w}", highlight=False, style="yellow", soft_wrap=True)
    kept = "recorded" if res.written else "already recorded (same backtest id)"
    console.print(f"predictions: {kept}, job backtest, versions bt-{res.backtest_id}-YYYYMMDD; "
                  f"scores file {res.scores_path}", highlight=False, soft_wrap=True)
    console.print(f"run {res.run_id} in {res.ledger}: `warden report {res.run_id}` and "
                  f"`warden trades {res.run_id}` show it", highlight=False, soft_wrap=True)


#: Exit status of ``warden ml drift`` when the report's status is ``drift``.
EXIT_DRIFT = 3


@ml_app.command("drift")
def drift_cmd(config: Optional[Path] = CONFIG_OPT, db: Optional[str] = DB_OPT,
              as_of: Optional[str] = typer.Option(
                  None, "--as-of", help="The NYSE session (YYYY-MM-DD) to check as of. "
                                        "[default: the data's last session]"),
              data: Optional[str] = DATA_OPT,
              by: Optional[str] = BY_OPT, as_json: bool = JSON_OPT) -> None:
    """Check the production model for drift as of a session; record the report.

    Per feature of the model: the population stability index and a two-sample
    Kolmogorov-Smirnov test of the last 20 sessions against the training sample (the p
    value calibrated on the training period's own 20-session windows); the same for
    the model's scores; the rolling IC and hit rate of matured predictions against the
    validation figures and the [ml] floors. The report is recorded once per version and
    session (ml_drift_reports); when drift persists for [ml] drift_persist_days reports
    the production version is rolled back only with [ml] auto_rollback = true (undo with
    `warden ml promote VERSION`), else the report says what would be done.

    Exit status: 0 when the status is ok or warning, 3 when it is drift, 2 on bad input.
    """
    loaded = load_ml(config, db, data=(data, "--data"))
    ml = loaded.settings.ml
    from tradewarden.ml.drift import drift_report
    from tradewarden.ml.features import load_universe
    try:
        panel = load_universe(ml)
        day = as_of if as_of is not None else day_text(int(panel["ts"].max()))
        led = _ledger(loaded)
        try:
            report = drift_report(ml, led, as_of=day, now=int(time.time()), panel=panel,
                                  registry=registry_for(loaded), actor=_by(by))
        finally:
            led.close()
    except _errors() as exc:
        raise _fail(str(exc)) from None
    if as_json:
        typer.echo(_dump({"id": report.id, "model": report.model_name,
                          "version": report.model_version, "as_of": day,
                          "as_of_ts": report.as_of_ts, "status": report.status,
                          "recorded": report.recorded, "window": report.window,
                          "features": [s.as_dict() for s in report.features],
                          "predictions": report.predictions.as_dict()
                          if report.predictions else None,
                          "performance": report.performance.as_dict(),
                          "breaches": [b.as_dict() for b in report.breaches],
                          "policy": report.policy.as_dict()}))
    else:
        _print_drift(report, day)
    if report.status == "drift":
        raise typer.Exit(EXIT_DRIFT)


def _print_drift(report: Any, day: str) -> None:
    console = _console()
    colour = {"ok": "green", "warning": "yellow", "drift": "red"}
    w = report.window
    table = Table(title=f"{report.model_name} version {report.model_version}: drift as of "
                        f"{day} (recent window {day_text(w.get('first_ts'))} .. "
                        f"{day_text(w.get('last_ts'))}, {w.get('sessions')} sessions, "
                        f"{w.get('rows')} rows)", title_justify="left")
    for col in ("feature", "PSI", "KS", "p", "p (iid)", "status"):
        table.add_column(col, justify="left" if col in ("feature", "status") else "right")
    shifts = list(report.features) + ([report.predictions] if report.predictions else [])
    for s in shifts:
        name = "score (predictions)" if s is report.predictions else s.name
        table.add_row(name, _num(s.psi, "{:.3f}"), _num(s.ks_statistic, "{:.3f}"),
                      _num(s.ks_pvalue, "{:.3g}"), _num(s.ks_pvalue_iid, "{:.2g}"),
                      f"[{colour[s.status]}]{s.status}[/]")
    console.print(table)
    p = report.performance
    if p.judged:
        console.print(f"performance: IC {_num(p.ic)} (validation {_num(p.validation_ic)}, "
                      f"floor {p.ic_floor:g}), hit rate {_num(p.hit_rate, '{:.3f}')} "
                      f"(validation {_num(p.validation_hit_rate, '{:.3f}')}, floor "
                      f"{p.hit_rate_floor:g}) over {p.dates} matured sessions "
                      f"({p.predictions} predictions): [{colour[p.status]}]{p.status}[/]",
                      highlight=False, soft_wrap=True)
    else:
        console.print(f"performance: not judged, {p.dates} matured sessions of predictions "
                      f"(at least 10 needed; `warden ml predict` records them)",
                      highlight=False, soft_wrap=True)
    for b in report.breaches:
        console.print(f"  breach: {b.text()}", highlight=False, soft_wrap=True)
    state = "recorded" if report.recorded else "recorded before"
    console.print(f"status: [{colour[report.status]}]{report.status}[/] (report {report.id}, "
                  f"{state})", highlight=False)
    if report.policy.message:
        console.print(f"policy: {report.policy.action}: {report.policy.message}",
                      highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``warden ml`` to the CLI."""
    app.add_typer(ml_app, name="ml")


__all__ = ["day_text", "load_ml", "ml_app", "parse_day", "register", "registry_for"]
