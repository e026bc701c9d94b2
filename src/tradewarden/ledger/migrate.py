"""Alembic migrations for the ledger, run programmatically (no alembic.ini needed).

Alembic keeps its options in a :class:`configparser.ConfigParser`, whose
interpolation treats ``%`` as special; every value set here is escaped (``%`` ->
``%%``), so a database path or URL containing ``%`` works. The migrations run on the
connection handed over in ``Config.attributes``; the URL option is informational.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection, Engine

MIGRATIONS = Path(__file__).with_name("migrations")
#: The table Alembic records the schema revision in.
VERSION_TABLE = "alembic_version"


def _escape(value: str) -> str:
    """Escape ``%`` for Alembic's ConfigParser-backed options."""
    return value.replace("%", "%%")


def alembic_config(engine: Engine | None = None) -> Config:
    """Return an Alembic config whose scripts live inside the package.

    Parameters
    ----------
    engine : sqlalchemy.engine.Engine, optional
        Recorded as ``sqlalchemy.url`` with the password hidden (the migrations use
        the connection passed in ``attributes``, never this option).
    """
    cfg = Config()
    cfg.set_main_option("script_location", _escape(str(MIGRATIONS)))
    if engine is not None:
        cfg.set_main_option("sqlalchemy.url",
                            _escape(engine.url.render_as_string(hide_password=True)))
    return cfg


@cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """Return the latest schema revision this version of tradewarden writes."""
    head = _script().get_current_head()
    assert head is not None, "the ledger migrations have no head"
    return head


def known_revisions() -> frozenset[str]:
    """Return every schema revision this version of tradewarden knows."""
    return frozenset(s.revision for s in _script().walk_revisions())


def current_revision(conn: Connection) -> str | None:
    """Return the revision recorded in the database, or ``None`` without a version table.

    Raises
    ------
    sqlalchemy.exc.DBAPIError
        If the database cannot be read.
    """
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    rows = conn.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}").scalars().all()
    return rows[0] if len(rows) == 1 else ",".join(sorted(rows)) or None


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the ledger schema to ``revision`` (default: the latest).

    Raises
    ------
    sqlalchemy.exc.DBAPIError
        If the database cannot be read or written.
    """
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
