"""Suite-wide settings.

Hypothesis runs derandomized by default, so that the suite CI gates landing on gives
the same verdict every time. ``HYPOTHESIS_PROFILE=explore pytest`` searches with fresh
random examples (and more of them); add what it finds as an ``@example``.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore", max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True, scope="session")
def _no_settings_from_outside(tmp_path_factory):
    """Give the suite a clean configuration: no ``TRADEWARDEN_*`` variable from the shell
    that runs it (a ``TRADEWARDEN_CONFIG`` there would change every replay), and a secrets
    directory that does not exist. Session-wide, so module fixtures see it too; tests set
    what they need with ``monkeypatch``."""
    patch = pytest.MonkeyPatch()
    for name in list(os.environ):
        if name.startswith("TRADEWARDEN_"):
            patch.delenv(name)
    patch.setenv("TRADEWARDEN_SECRETS_DIR", str(tmp_path_factory.getbasetemp() / "no-secrets"))
    yield
    patch.undo()
