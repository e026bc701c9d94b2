"""Fixtures for the web tests (see ``api_support``): the shared read-only desk and a
token-protected client over it, and a fresh desk for the tests that act."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from api_support import Desk, make_client


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The desk played to bar 8 (read-only tests share it)."""
    desk = Desk(tmp_path_factory.mktemp("desk")).build()
    yield desk
    desk.ledger.close()


@pytest.fixture(scope="module")
def reader(built):
    """A token-protected client over the shared desk."""
    with make_client(built) as client:
        yield client


@pytest.fixture
def desk(tmp_path):
    """A fresh desk for the tests that act on it."""
    d = Desk(tmp_path).build()
    yield d
    d.ledger.close()
