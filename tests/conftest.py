"""Suite-wide settings.

No test reaches the internet: every socket connection that is not to the loopback
interface is refused (:func:`loopback_only`), and proxy variables are removed so clients
connect to the loopback fakes directly.

Hypothesis runs derandomized by default, so that the suite CI gates landing on gives
the same verdict every time. ``HYPOTHESIS_PROFILE=explore pytest`` searches with fresh
random examples (and more of them); add what it finds as an ``@example``.
"""

from __future__ import annotations

import os
import socket
from typing import Any

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


_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
               "all_proxy", "CURL_CA_BUNDLE")


def _loopback(address: Any) -> bool:
    host = address[0] if isinstance(address, tuple) else address
    return host in ("127.0.0.1", "::1", "localhost")


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse every IP connection that is not to 127.0.0.1 / ::1 / localhost, in every test."""
    real_connect = socket.socket.connect
    real_create = socket.create_connection

    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address):
            raise OSError(f"test network guard: refused connection to {address!r}")
        return real_connect(self, address)

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        if not _loopback(address):
            raise OSError(f"test network guard: refused connection to {address!r}")
        return real_create(address, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    for name in _PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
