"""Shared fixtures of the ML tests: the bundled universe and an empty MLflow store.

Creating an MLflow SQLite store runs its schema migrations (a few seconds), so it is
done once per session and copied into each test that needs a fresh registry.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from tradewarden.ml.features import load_universe
from tradewarden.ml.settings import MlSettings


@pytest.fixture(scope="session")
def bundled_panel() -> pd.DataFrame:
    """The bundled AAPL/JPM/MSFT/NVDA/XOM panel 2012-2015, adjusted (read once)."""
    return load_universe(MlSettings())


@pytest.fixture(scope="session")
def _mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tradewarden.ml.registry import ModelRegistry
    folder = tmp_path_factory.mktemp("mlflow-template")
    registry = ModelRegistry(f"sqlite:///{folder / 'mlflow.db'}")
    assert registry.versions("nothing") == []          # creates the tables
    return folder / "mlflow.db"


@pytest.fixture
def mlflow_db(tmp_path: Path, _mlflow_template: Path):
    """Return a function ``(directory) -> path``: an empty MLflow store copied there."""
    def place(directory: Path = tmp_path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / "mlflow.db"
        shutil.copyfile(_mlflow_template, target)
        return target
    return place
