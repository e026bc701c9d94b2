"""The agent tests' ledgers: an SQLite file, or a database on the session's PostgreSQL
server, reusing the fixtures of ``tests/ledger/conftest.py`` (loaded by path: the test
directories are not packages)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "_tw_ledger_conftest", Path(__file__).resolve().parents[1] / "ledger" / "conftest.py")
_ledger_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_ledger_conftest)

postgres_url = _ledger_conftest.postgres_url
ledger_db = _ledger_conftest.ledger_db
query = _ledger_conftest.query
