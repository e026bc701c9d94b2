"""The agent tests' ledgers: an SQLite file, or a database on the session's PostgreSQL
server, reusing the fixtures of ``tests/ledger/conftest.py`` (loaded by path: the test
directories are not packages)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "_tw_ledger_conftest", Path(__file__).resolve().parents[1] / "ledger" / "conftest.py")
_ledger_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_ledger_conftest)

postgres_url = _ledger_conftest.postgres_url
ledger_db = _ledger_conftest.ledger_db
query = _ledger_conftest.query


# -- the loopback Messages API (tests/agent/fake_anthropic.py) ---------------------------
sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_anthropic import FakeAnthropic


@pytest.fixture
def fake_anthropic():
    """A started :class:`FakeAnthropic` (held answers released and the server stopped
    at the end)."""
    fake = FakeAnthropic().start()
    yield fake
    fake.stop()


@pytest.fixture
def anthropic_env(fake_anthropic, monkeypatch):
    """The SDK's own environment pointed at the fake: ``ANTHROPIC_BASE_URL`` and a key."""
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_anthropic.base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-fake")
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    return fake_anthropic


# the deployment fixtures of tests/ops/conftest.py (the loopback TLS fake of Coinbase on
# simulated time, a paper config pointing at it), for the daemon end to end
_ops_spec = importlib.util.spec_from_file_location(
    "_tw_ops_conftest", Path(__file__).resolve().parents[1] / "ops" / "conftest.py")
_ops_conftest = importlib.util.module_from_spec(_ops_spec)
_ops_spec.loader.exec_module(_ops_conftest)
paper_venue = _ops_conftest.paper_venue
