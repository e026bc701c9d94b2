"""``[ml]``: the ML pipeline (training, registry, conversion to orders, drift).

Kept in a module of its own, importing only pydantic, so reading the configuration
stays fast.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["MlSettings"]


class MlSettings(BaseModel):
    """``[ml]``: what the pipeline trains, where models live, how scores become orders.

    Days are NYSE sessions (bars of the daily panel), not calendar days, except
    ``train_years`` (calendar years of 365.25 days).

    Parameters
    ----------
    model_name : str
        Registered model name in the registry (default ``equity_rank``).
    registry_uri : str or None
        MLflow tracking/registry URI (``http://host:5000``, ``sqlite:///path.db``).
        ``None``: a local SQLite store ``mlflow.db`` in the ledger's directory (artifacts
        in ``mlartifacts/`` beside it); for a server ledger, ``warden-out/mlflow.db``.
    algorithm : {"ridge", "lightgbm"}
        ``ridge`` (default): scikit-learn ``Ridge`` on standardised features. Chosen
        because the bundled universe gives about 2,500 training rows (5 symbols x 2
        years) of noisy labels: a linear model overfits less, is exactly reproducible
        and trains in milliseconds; ``lightgbm`` (``LGBMRegressor``, fixed seed,
        ``n_jobs=1``) for larger universes. README gives both on the bundled data.
    ridge_alpha : float
        L2 penalty of the ridge model (default 10.0), > 0.
    n_estimators : int
        LightGBM boosting rounds (default 200).
    horizon_days : int
        Label horizon ``h``: the label at ``t`` is ``close[t+h] / close[t] - 1``
        (sessions, default 5).
    train_years : float
        Training window ending at the training date, calendar years (default 2.0).
    purge_days : int
        Sessions dropped from training before each test window; at least
        ``horizon_days`` so no training label overlaps the test window (default: the
        horizon).
    embargo_days : int
        Sessions after each test window kept out of training (default 5).
    n_splits : int
        Walk-forward validation splits (default 5).
    retrain_every_days : int
        Sessions between retrainings in backtests and the daemon (default 5: weekly).
    universe : tuple of str
        Tickers to use; empty (default) = every symbol in the data.
    data : str or None
        A user's universe file (daily OHLCV, long format with ``symbol``); ``None``
        = the bundled AlphaVantage panel (AAPL, JPM, MSFT, NVDA, XOM, 2012-2015).
    conversion : {"rank", "threshold", "zscore"}
        Scores to targets: top ``top_n``, score above ``threshold``, or cross-sectional
        z-score above ``zscore`` (default ``rank``).
    top_n : int
        Positions held under ``rank`` (default 2).
    threshold : float
        Score cut under ``threshold`` (default 0.0; the score is a predicted
        ``horizon_days`` return, a fraction).
    zscore : float
        Z-score cut under ``zscore`` (default 1.0).
    weighting : {"equal", "score"}
        Target weights (default ``equal``).
    max_positions : int
        At most this many positions (default 3).
    max_fraction : float
        At most this fraction of equity per position (default 0.4), in (0, 1].
    min_order_value : float
        Smallest order sent, quote currency (default 100.0 USD).
    psi_warning, psi_drift : float
        Population stability index per feature at or above which a feature warns (0.1)
        or has drifted (0.25), when its KS p value is also below ``ks_pvalue``.
    ks_pvalue : float
        Two-sample Kolmogorov-Smirnov p value (calibrated on the training period's own
        windows, :mod:`tradewarden.ml.drift`) below which a feature's shift is unusual
        (0.01).
    ic_floor : float
        Rolling information coefficient below which performance has decayed: drift (0.0).
    hit_rate_floor : float
        Rolling hit rate below which performance warns (0.5).
    drift_persist_days : int
        Consecutive drift reports (sessions) of the production version before a
        rollback is due (default 3).
    auto_rollback : bool
        Roll back automatically when due (default ``False``: alert only).
    daemon : bool
        Run the ML jobs in ``warden daemon`` (default ``False``): after each close the
        prediction job and the drift report, each week a retraining (registered, not
        promoted); needs ``[daemon] calendar`` (e.g. ``XNYS``). See
        :mod:`tradewarden.ml.jobs`.

    Raises
    ------
    pydantic.ValidationError
        A value out of range, ``purge_days`` below ``horizon_days``, or an unknown key.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
    model_name: str = Field("equity_rank", min_length=1, max_length=64,
                            pattern=r"^[A-Za-z0-9_.-]+$")
    registry_uri: str | None = None
    algorithm: Literal["ridge", "lightgbm"] = "ridge"
    ridge_alpha: float = Field(10.0, gt=0)
    n_estimators: int = Field(200, ge=1, le=10_000)
    horizon_days: int = Field(5, ge=1, le=252)
    train_years: float = Field(2.0, gt=0, le=50)
    purge_days: int = Field(5, ge=0)
    embargo_days: int = Field(5, ge=0)
    n_splits: int = Field(5, ge=2, le=50)
    retrain_every_days: int = Field(5, ge=1)
    universe: tuple[str, ...] = ()
    data: str | None = None
    conversion: Literal["rank", "threshold", "zscore"] = "rank"
    top_n: int = Field(2, ge=1)
    threshold: float = 0.0
    zscore: float = 1.0
    weighting: Literal["equal", "score"] = "equal"
    max_positions: int = Field(3, ge=1)
    max_fraction: float = Field(0.4, gt=0, le=1)
    min_order_value: float = Field(100.0, ge=0)
    psi_warning: float = Field(0.1, ge=0)
    psi_drift: float = Field(0.25, ge=0)
    ks_pvalue: float = Field(0.01, gt=0, lt=1)
    ic_floor: float = Field(0.0, ge=-1, le=1)
    hit_rate_floor: float = Field(0.5, ge=0, le=1)
    drift_persist_days: int = Field(3, ge=1)
    auto_rollback: bool = False
    daemon: bool = False

    @model_validator(mode="before")
    @classmethod
    def _purge_defaults_to_horizon(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("purge_days") is None:
            data = {**data, "purge_days": data.get("horizon_days", 5)}
        return data

    @model_validator(mode="after")
    def _check(self) -> "MlSettings":
        if self.purge_days < self.horizon_days:
            raise ValueError(f"purge_days ({self.purge_days}) must be at least horizon_days "
                             f"({self.horizon_days}), or training labels overlap the test window")
        if self.psi_drift < self.psi_warning:
            raise ValueError(f"psi_drift ({self.psi_drift}) must be at least psi_warning "
                             f"({self.psi_warning})")
        return self
