"""The model registry: versions on MLflow, the ``production`` alias, promotion and rollback.

Every version of a registered model is an MLflow model version (MLflow 3 model
registry) whose run holds:

- params: the estimator's parameters (:func:`tradewarden.ml.train.model_params`);
- metrics: the validation means (``val_ic``, ``val_hit_rate``, ``val_spread``) and the
  per-split figures (``split_ic``, ``split_hit_rate``, ``split_spread`` at step = the
  split's number);
- tags: ``data_hash``, ``training_start``/``training_end`` (UTC epoch seconds),
  ``features`` (JSON list);
- artifacts under ``model/``: ``model.joblib`` (the fitted estimator, written with
  :func:`joblib.dump`), ``meta.json`` (features, params, training window, data hash,
  validation) and ``train_sample.parquet`` (the training feature rows, the reference
  distribution for drift).

Which version is in production is the registered model's alias ``production``
(MLflow 3 aliases; the deprecated stages are not used). The registered model's tag
``production_history`` (a JSON list of versions, oldest first) remembers earlier
production versions so :meth:`ModelRegistry.rollback` can return to the one before.
Every promotion and rollback (and, when a ledger is given, every registration) is
recorded in the ledger's ``ml_model_events`` with its reason and actor.

Storage: by default a local SQLite store ``mlflow.db`` beside the ledger with
artifacts in ``mlartifacts/`` beside it (:func:`default_registry_uri`); a tracking
server when ``[ml] registry_uri`` names one. Loading a version reads local artifacts
(or the tracking server's): nothing is fetched from the internet. ``model.joblib`` is
a pickle: load versions only from a registry you trust (your own).

MLflow is imported inside the functions that need it, so ``warden`` starts fast, and
its INFO logging (and alembic's, when it creates the SQLite tables) and its download
progress bars are silenced; MLflow's usage telemetry is switched off
(``MLFLOW_DISABLE_TELEMETRY``) unless the environment says otherwise.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["ALIAS", "ModelRegistry", "ModelVersion", "RegistryError", "default_registry_uri",
           "model_events", "record_model_event"]

#: The alias marking the production version of a registered model.
ALIAS = "production"
#: ``ml_model_events.kind`` values.
EVENT_KINDS = ("register", "promote", "rollback")
_HISTORY_TAG = "production_history"
_ARTIFACT_DIR = "model"
_TAG_LIMIT = 5_000
#: MLflow's error code for a model or version that does not exist.
_MISSING = "RESOURCE_DOES_NOT_EXIST"


class RegistryError(ValueError):
    """The registry cannot do what was asked: an unknown model or version, nothing to
    roll back to, or a store that cannot be opened (the message says which)."""


def default_registry_uri(registry_uri: str | None, ledger_db: str | None) -> str:
    """Return the MLflow tracking/registry URI to use.

    Parameters
    ----------
    registry_uri : str or None
        ``[ml] registry_uri``; returned as it is when set.
    ledger_db : str or None
        The ledger (SQLite path, ``sqlite:///`` URL or a server URL).

    Returns
    -------
    str
        ``sqlite:///<ledger directory>/mlflow.db`` for an SQLite file ledger; for a
        server ledger, an in-memory SQLite ledger or none, ``sqlite:///<abs
        path>/warden-out/mlflow.db`` (relative to the working directory).
    """
    if registry_uri:
        return registry_uri
    path: Path | None = None
    if ledger_db:
        db = str(ledger_db)
        if db.startswith("sqlite:///"):
            db = db[len("sqlite:///"):]
        if "://" not in db and db not in ("", ":memory:"):
            path = Path(db).expanduser().resolve().parent
    if path is None:
        path = Path("warden-out").resolve()
    return f"sqlite:///{path / 'mlflow.db'}"


def _quiet_mlflow() -> None:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # an unreachable tracking server fails in seconds, not after minutes of retries
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    for name in ("mlflow", "alembic", "alembic.runtime.migration"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _finite(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


@dataclass
class ModelVersion:
    """One registered version, with its lineage; the estimator loads on first use.

    Attributes
    ----------
    name : str
        Registered model name.
    version : str
        MLflow version number, as text (``"3"``).
    run_id : str
        The MLflow run that holds its parameters, metrics and artifacts.
    source : str
        Artifact URI of the ``model/`` directory.
    features : tuple of str
        Feature names in the order :meth:`predict` reads them.
    params : dict
        Estimator parameters (:func:`tradewarden.ml.train.model_params`).
    validation : dict
        The training run's validation (:class:`tradewarden.ml.train.TrainResult`).
    training_window : tuple of int
        First and last training session, UTC epoch seconds (date labels).
    data_hash : str
        SHA-256 of the training data (:func:`tradewarden.ml.features.data_hash`).
    created_ms : int
        Registration time, UTC epoch milliseconds (MLflow's clock).
    is_production : bool
        Whether the ``production`` alias pointed here when this was read.
    """

    name: str
    version: str
    run_id: str
    source: str
    features: tuple[str, ...]
    params: dict[str, Any]
    validation: dict[str, Any]
    training_window: tuple[int, int]
    data_hash: str
    created_ms: int = 0
    is_production: bool = False
    _registry: "ModelRegistry | None" = field(default=None, repr=False, compare=False)
    _estimator: Any = field(default=None, repr=False, compare=False)
    _sample: pd.DataFrame | None = field(default=None, repr=False, compare=False)

    def _load(self) -> None:
        if self._estimator is not None:
            return
        if self._registry is None:
            raise RegistryError(f"model {self.name} version {self.version} is not attached "
                                "to a registry")
        self._estimator, self._sample = self._registry._load_artifacts(self)

    @property
    def estimator(self) -> Any:
        """The fitted estimator (loaded from the artifacts on first use)."""
        self._load()
        return self._estimator

    @property
    def train_sample(self) -> pd.DataFrame:
        """The training feature rows, shape (n, len(features)), indexed by (``ts``,
        ``symbol``): the reference distribution for drift."""
        self._load()
        assert self._sample is not None
        return self._sample

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Predict forward returns for feature rows.

        Parameters
        ----------
        frame : pandas.DataFrame
            Shape (m, k) with every column of :attr:`features` (others ignored).

        Returns
        -------
        numpy.ndarray of float64, shape (m,)
            Predicted ``horizon_days`` forward returns (fractions), in row order; NaN
            for a row with a missing feature.

        Raises
        ------
        ValueError
            A feature column is missing.
        """
        missing = [f for f in self.features if f not in frame.columns]
        if missing:
            raise ValueError(f"model {self.name} v{self.version} needs feature column(s) "
                             f"{', '.join(missing)}")
        x = np.ascontiguousarray(frame.loc[:, list(self.features)].to_numpy(dtype=np.float64))
        out = np.full(x.shape[0], np.nan)
        ok = np.isfinite(x).all(axis=1)
        if ok.any():
            # C-ordered rows, as in training: the same rows give the same bits
            out[ok] = np.asarray(self.estimator.predict(np.ascontiguousarray(x[ok])),
                                 dtype=np.float64)
        return out


class ModelRegistry:
    """Registered models on an MLflow tracking/registry store.

    Parameters
    ----------
    uri : str
        MLflow tracking URI: ``sqlite:///path/mlflow.db`` (created on first use, with
        artifacts in ``mlartifacts/`` beside the file) or ``http(s)://host:port`` (a
        tracking server, which stores the artifacts).
    artifact_root : str or os.PathLike, optional
        Where a new experiment stores artifacts (default as above; ignored for an
        existing experiment).

    Raises
    ------
    RegistryError
        From the methods, when the store cannot be opened or written.
    """

    def __init__(self, uri: str, *, artifact_root: str | os.PathLike[str] | None = None) -> None:
        self.uri = str(uri)
        if artifact_root is None and self.uri.startswith("sqlite:///"):
            artifact_root = Path(self.uri[len("sqlite:///"):]).parent / "mlartifacts"
        self.artifact_root = None if artifact_root is None else Path(artifact_root).resolve()
        self._client_obj: Any = None
        # downloaded artifacts; removed when the registry object is garbage-collected
        self._tmp = tempfile.TemporaryDirectory(prefix="tw-mlreg-")
        self._cache = Path(self._tmp.name)

    # -- plumbing ---------------------------------------------------------------------
    def _client(self) -> Any:
        if self._client_obj is None:
            _quiet_mlflow()
            try:
                from mlflow import MlflowClient
                if self.uri.startswith("sqlite:///"):
                    Path(self.uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
                self._client_obj = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
            except Exception as exc:   # any failure to open the store
                raise RegistryError(f"cannot open the model registry {self.uri}: {exc}") from None
        return self._client_obj

    def _experiment_id(self, name: str) -> str:
        client = self._client()
        exp_name = f"tradewarden/{name}"
        exp = client.get_experiment_by_name(exp_name)
        if exp is not None:
            return str(exp.experiment_id)
        where = None
        if self.artifact_root is not None:
            self.artifact_root.mkdir(parents=True, exist_ok=True)
            where = (self.artifact_root / name).as_uri()
        return str(client.create_experiment(exp_name, artifact_location=where))

    def _registered(self, name: str) -> Any | None:
        from mlflow.exceptions import MlflowException
        try:
            return self._client().get_registered_model(name)
        except MlflowException as exc:
            if exc.error_code == _MISSING:
                return None
            raise RegistryError(f"cannot read model {name} in {self.uri}: "
                                f"{exc.message}") from None

    def _history(self, name: str) -> list[str]:
        model = self._registered(name)
        raw = (model.tags or {}).get(_HISTORY_TAG) if model is not None else None
        try:
            hist = json.loads(raw) if raw else []
        except ValueError:
            hist = []
        return [str(v) for v in hist if isinstance(v, (str, int))]

    def _production_version(self, name: str) -> str | None:
        model = self._registered(name)
        if model is None:
            return None
        aliases = getattr(model, "aliases", None) or {}
        version = aliases.get(ALIAS)
        return None if version is None else str(version)

    def _summary(self, mv: Any, production: str | None) -> ModelVersion:
        tags = mv.tags or {}
        try:
            meta = json.loads(tags.get("meta", "{}"))
        except ValueError:
            meta = {}
        if meta.get("truncated"):
            meta = self._meta_file(mv.name, str(mv.version), mv.run_id)
        window = meta.get("training_window") or [0, 0]
        return ModelVersion(
            name=mv.name, version=str(mv.version), run_id=mv.run_id or "", source=mv.source,
            features=tuple(meta.get("features", ())), params=dict(meta.get("params", {})),
            validation=dict(meta.get("validation", {})),
            training_window=(int(window[0]), int(window[1])),
            data_hash=str(meta.get("data_hash", "")), created_ms=int(mv.creation_timestamp or 0),
            is_production=str(mv.version) == production, _registry=self)

    def _meta_file(self, name: str, version: str, run_id: str) -> dict[str, Any]:
        from mlflow.artifacts import download_artifacts
        dst = self._cache / f"{name}-{version}-meta"
        try:
            if not (dst / "meta.json").exists():
                dst.mkdir(parents=True, exist_ok=True)
                download_artifacts(run_id=run_id, artifact_path=f"{_ARTIFACT_DIR}/meta.json",
                                   dst_path=str(dst), tracking_uri=self.uri)
            return json.loads((dst / "meta.json").read_text(encoding="utf-8"))
        except Exception as exc:   # missing or unreadable artifact
            raise RegistryError(f"cannot read the lineage of model {name} version {version}: "
                                f"{exc}") from None

    def _load_artifacts(self, mv: ModelVersion) -> tuple[Any, pd.DataFrame]:
        import joblib

        from mlflow.artifacts import download_artifacts
        dst = self._cache / f"{mv.name}-{mv.version}"
        try:
            if not (dst / _ARTIFACT_DIR / "model.joblib").exists():
                dst.mkdir(parents=True, exist_ok=True)
                download_artifacts(run_id=mv.run_id, artifact_path=_ARTIFACT_DIR,
                                   dst_path=str(dst), tracking_uri=self.uri)
            estimator = joblib.load(dst / _ARTIFACT_DIR / "model.joblib")
            sample = pd.read_parquet(dst / _ARTIFACT_DIR / "train_sample.parquet")
        except Exception as exc:   # missing or unreadable artifacts
            raise RegistryError(f"cannot load model {mv.name} version {mv.version} from "
                                f"{mv.source}: {exc}") from None
        if {"ts", "symbol"} <= set(sample.columns):
            sample = sample.set_index(["ts", "symbol"])
        return estimator, sample

    # -- public -----------------------------------------------------------------------
    def register(self, estimator: Any, *, name: str, features: tuple[str, ...] | list[str],
                 params: dict[str, Any], training_window: tuple[int, int],
                 validation: dict[str, Any], data_hash: str, train_sample: pd.DataFrame,
                 ledger: Any = None, actor: str = "cli", ts: int | None = None) -> str:
        """Register a fitted estimator as a new version of ``name`` (not promoted).

        Parameters
        ----------
        estimator : object
            Fitted, with ``predict(x)`` for x of shape (m, len(features)).
        name : str
            Registered model name (created on first use).
        features : sequence of str
            Feature names in the order the estimator reads them.
        params : dict
            Estimator parameters, logged as MLflow params (values as text).
        training_window : tuple of int
            First and last training session, UTC epoch seconds.
        validation : dict
            ``{"splits": [...], "mean": {...}, ...}`` as
            :class:`~tradewarden.ml.train.TrainResult` holds it; logged as metrics and
            stored whole.
        data_hash : str
            SHA-256 of the training data.
        train_sample : pandas.DataFrame
            Training feature rows (indexed by ``ts``, ``symbol`` or not), stored as
            Parquet for drift checks.
        ledger : Ledger, optional
            When given, a ``register`` event is recorded in ``ml_model_events``.
        actor : str, default "cli"
            Who registered it (for the event).
        ts : int, optional
            Event time, UTC epoch seconds (required with ``ledger``).

        Returns
        -------
        str
            The new version number (``"1"``, ``"2"``, ...).

        Raises
        ------
        RegistryError
            The store cannot be written.
        LedgerError
            The event cannot be recorded (the version is registered already).
        """
        import joblib

        from mlflow.exceptions import MlflowException
        client = self._client()
        feats = [str(f) for f in features]
        meta = {"features": feats, "params": params,
                "training_window": [int(training_window[0]), int(training_window[1])],
                "data_hash": str(data_hash), "validation": validation}
        meta_text = json.dumps(meta, sort_keys=True, default=str, allow_nan=True)
        # Model version tags hold at most 5,000 characters: a long validation (many
        # splits) is kept whole in meta.json only, and read from there.
        tag_text = meta_text if len(meta_text) <= _TAG_LIMIT else json.dumps(
            {**meta, "validation": {k: v for k, v in validation.items() if k != "splits"},
             "truncated": True}, sort_keys=True, default=str, allow_nan=True)
        try:
            exp_id = self._experiment_id(name)
            run = client.create_run(exp_id, run_name=f"{name}-train", tags={
                "data_hash": str(data_hash), "features": json.dumps(feats),
                "training_start": str(int(training_window[0])),
                "training_end": str(int(training_window[1]))})
            run_id = run.info.run_id
            for key, value in params.items():
                client.log_param(run_id, key, str(value))
            for key, value in (validation.get("mean") or {}).items():
                if _finite(value) is not None:
                    client.log_metric(run_id, f"val_{key}", float(value))
            for step, split in enumerate(validation.get("splits") or [], start=1):
                for key in ("ic", "hit_rate", "spread"):
                    if _finite(split.get(key)) is not None:
                        client.log_metric(run_id, f"split_{key}", float(split[key]), step=step)
            with tempfile.TemporaryDirectory(prefix="tw-mlreg-") as tmp:
                folder = Path(tmp) / _ARTIFACT_DIR
                folder.mkdir()
                joblib.dump(estimator, folder / "model.joblib")
                (folder / "meta.json").write_text(meta_text, encoding="utf-8")
                sample = train_sample.reset_index() if isinstance(
                    train_sample.index, pd.MultiIndex) else train_sample
                sample.to_parquet(folder / "train_sample.parquet", index=False)
                client.log_artifacts(run_id, str(folder), _ARTIFACT_DIR)
            client.set_terminated(run_id)
            if self._registered(name) is None:
                client.create_registered_model(name, description="tradewarden ML model")
            source = f"{run.info.artifact_uri}/{_ARTIFACT_DIR}"
            mv = client.create_model_version(name, source, run_id=run_id,
                                             tags={"meta": tag_text,
                                                   "data_hash": str(data_hash)})
        except MlflowException as exc:
            raise RegistryError(f"cannot register model {name} in {self.uri}: "
                                f"{exc.message}") from None
        version = str(mv.version)
        if ledger is not None:
            record_model_event(ledger, name=name, kind="register", from_version=None,
                               to_version=version, reason="trained and registered",
                               actor=actor, ts=ts,
                               detail={"data_hash": data_hash, "run_id": run_id,
                                       "training_window": list(training_window),
                                       "validation": validation.get("mean")})
        return version

    def production(self, name: str) -> ModelVersion | None:
        """Return the production version of ``name``, or ``None`` when none is marked.

        Raises
        ------
        RegistryError
            The store cannot be read.
        """
        prod = self._production_version(name)
        return None if prod is None else self.version(name, prod)

    def version(self, name: str, version: str | int) -> ModelVersion:
        """Return one version of ``name``.

        Raises
        ------
        RegistryError
            No such model or version (the message lists the versions there are).
        """
        from mlflow.exceptions import MlflowException

        def missing() -> RegistryError:
            have = [v.version for v in self.versions(name)]
            return RegistryError(f"model {name} has no version {version} (versions: "
                                 f"{', '.join(have) or 'none'})")
        if not str(version).strip().isdigit():
            raise missing()
        try:
            mv = self._client().get_model_version(name, str(version).strip())
        except MlflowException as exc:
            if exc.error_code == _MISSING:
                raise missing() from None
            raise RegistryError(f"cannot read model {name} version {version} in {self.uri}: "
                                f"{exc.message}") from None
        return self._summary(mv, self._production_version(name))

    def versions(self, name: str) -> list[ModelVersion]:
        """Return every version of ``name``, oldest first.

        Returns
        -------
        list of ModelVersion
            Empty when the model has none; the estimators and training samples are
            not loaded until used.

        Raises
        ------
        RegistryError
            The store cannot be read.
        """
        from mlflow.exceptions import MlflowException
        try:
            found = self._client().search_model_versions(f"name = '{name}'")
        except MlflowException as exc:
            raise RegistryError(f"cannot list versions of {name} in {self.uri}: "
                                f"{exc.message}") from None
        prod = self._production_version(name)
        return sorted((self._summary(mv, prod) for mv in found), key=lambda v: int(v.version))

    def _set_production(self, name: str, version: str, history: list[str]) -> None:
        from mlflow.exceptions import MlflowException
        client = self._client()
        try:
            client.set_registered_model_alias(name, ALIAS, version)
            client.set_registered_model_tag(name, _HISTORY_TAG, json.dumps(history[-100:]))
        except MlflowException as exc:
            raise RegistryError(f"cannot mark version {version} of {name} production in "
                                f"{self.uri}: {exc.message}") from None

    def promote(self, name: str, version: str | int, *, reason: str, actor: str, ledger: Any,
                ts: int) -> str | None:
        """Make ``version`` the production version of ``name`` and record why.

        Parameters
        ----------
        name : str
        version : str or int
            An existing version.
        reason : str
            Why (recorded; not empty).
        actor : str
            A person's name, ``cli`` or ``daemon``.
        ledger : Ledger
            Where the ``promote`` event is recorded.
        ts : int
            Event time, UTC epoch seconds.

        Returns
        -------
        str or None
            The version that was production before (``None`` if none was).

        Raises
        ------
        RegistryError
            No such version, or the store cannot be written.
        LedgerError
            The event cannot be recorded.
        """
        target = self.version(name, version).version
        before = self._production_version(name)
        history = [v for v in self._history(name)]
        if before is not None and (not history or history[-1] != before):
            history.append(before)
        if not history or history[-1] != target:
            history.append(target)
        self._set_production(name, target, history)
        record_model_event(ledger, name=name, kind="promote", from_version=before,
                           to_version=target, reason=reason, actor=actor, ts=ts)
        return before

    def rollback(self, name: str, *, reason: str, actor: str, ledger: Any, ts: int) -> str:
        """Return ``name``'s production alias to the version that was production before.

        Parameters
        ----------
        name : str
        reason : str
            Why (recorded; not empty).
        actor : str
            A person's name, ``cli`` or ``daemon``.
        ledger : Ledger
            Where the ``rollback`` event is recorded.
        ts : int
            Event time, UTC epoch seconds.

        Returns
        -------
        str
            The version now in production (the previous one).

        Raises
        ------
        RegistryError
            No production version, or no earlier production version that still exists.
        LedgerError
            The event cannot be recorded.
        """
        current = self._production_version(name)
        if current is None:
            raise RegistryError(f"model {name} has no production version to roll back")
        history = self._history(name)
        while history and history[-1] == current:
            history.pop()
        existing = {v.version for v in self.versions(name)}
        while history and history[-1] not in existing:
            history.pop()
        if not history:
            raise RegistryError(f"model {name}: no earlier production version to roll back "
                                f"to from version {current}")
        target = history[-1]
        self._set_production(name, target, history)
        record_model_event(ledger, name=name, kind="rollback", from_version=current,
                           to_version=target, reason=reason, actor=actor, ts=ts)
        return target


def record_model_event(ledger: Any, *, name: str, kind: str, from_version: str | None,
                       to_version: str | None, reason: str, actor: str, ts: Any,
                       detail: dict[str, Any] | None = None) -> int:
    """Record a registration, promotion or rollback in ``ml_model_events``.

    Waits for the ledger's queued batches, then inserts in a transaction of its own,
    committed before it returns (as :mod:`tradewarden.agent.records` does).

    Parameters
    ----------
    ledger : Ledger
    name : str
        Registered model name (1-64 characters).
    kind : {"register", "promote", "rollback"}
    from_version, to_version : str or None
        Production version before and after (the new version for ``register``).
    reason : str
        Why, in words (not empty).
    actor : str
        A person, ``cli`` or ``daemon`` (1-64 characters).
    ts : int
        Event time, UTC epoch seconds.
    detail : dict, optional
        Stored as JSON (the ledger's :func:`~tradewarden.ledger.dumps`).

    Returns
    -------
    int
        The new ``ml_model_events.id``.

    Raises
    ------
    LedgerError
        A bad argument or a row that cannot be written.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from tradewarden.ledger import LedgerError, dumps, schema
    from tradewarden.ledger.store import utcnow_iso
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(float(ts)):
        raise LedgerError(f"model event ts {ts!r}: give UTC epoch seconds (a finite number)")
    if kind not in EVENT_KINDS:
        raise LedgerError(f"model event kind {kind!r}: use one of {', '.join(EVENT_KINDS)}")
    for what, value in (("model name", name), ("actor", actor)):
        if not isinstance(value, str) or not 1 <= len(value) <= 64:
            raise LedgerError(f"model event {what} {value!r}: give 1-64 characters")
    if not isinstance(reason, str) or not reason.strip():
        raise LedgerError(f"model event reason {reason!r}: give a non-empty text")
    values = {"ts": int(ts), "created_at": utcnow_iso(), "model_name": name, "kind": kind,
              "from_version": from_version, "to_version": to_version, "reason": reason,
              "actor": actor, "detail": None if detail is None else dumps(detail)}
    ledger.drain()
    try:
        with ledger.engine.begin() as conn:
            result = conn.execute(schema.ml_model_events.insert().values(**values))
            return int(result.inserted_primary_key[0])
    except SQLAlchemyError as exc:
        raise LedgerError(f"cannot record a model {kind} event: {ledger.describe(exc)}") from None


def model_events(ledger: Any, name: str | None = None) -> list[dict[str, Any]]:
    """Return ``ml_model_events`` rows, oldest first, of one model or all.

    Returns
    -------
    list of dict
        Columns of ``ml_model_events``; ``detail`` parsed from JSON (``None`` if empty).

    Raises
    ------
    LedgerError
        The ledger cannot be read.
    """
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from tradewarden.ledger import LedgerError, schema
    t = schema.ml_model_events
    query = select(t).order_by(t.c.id)
    if name is not None:
        query = query.where(t.c.model_name == name)
    ledger.drain()
    try:
        with ledger.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
    except SQLAlchemyError as exc:
        raise LedgerError(f"cannot read model events: {ledger.describe(exc)}") from None
    for row in rows:
        row["detail"] = json.loads(row["detail"]) if row.get("detail") else None
    return rows
