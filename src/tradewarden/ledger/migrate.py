"""Alembic migrations for the ledger, run programmatically (no alembic.ini needed).

A new ledger is created from the schema module and stamped with the head revision
(Alembic's recipe for building an up-to-date database from scratch); an older one is
upgraded by the migrations. :data:`HEAD_REVISION` and :data:`REVISIONS` name the
migrations without importing Alembic, so opening a current ledger costs no Alembic
import (about 0.1 s); ``tests/ledger`` checks them against the migration scripts and
checks that both ways of building a ledger give the same schema.

Alembic keeps its options in a :class:`configparser.ConfigParser`, whose
interpolation treats ``%`` as special; every value set here is escaped (``%`` ->
``%%``), so a database path or URL containing ``%`` works. The migrations run on the
connection handed over in ``Config.attributes``; the URL option is informational.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from typing import TYPE_CHECKING

from sqlalchemy import inspect
from sqlalchemy.engine import Connection, Engine

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).with_name("migrations")
#: The table Alembic records the schema revision in.
VERSION_TABLE = "alembic_version"
#: Every migration's revision, oldest first (the ``revision`` of each script in
#: ``migrations/versions``); the last is the head this version of tradewarden writes.
REVISIONS: tuple[str, ...] = ("0001", "0002", "0003", "0004", "0005", "0006", "0007",
                              "0008", "0009", "0010", "0011")
HEAD_REVISION = REVISIONS[-1]


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
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", _escape(str(MIGRATIONS)))
    if engine is not None:
        cfg.set_main_option("sqlalchemy.url",
                            _escape(engine.url.render_as_string(hide_password=True)))
    return cfg


@cache
def script_directory() -> ScriptDirectory:
    """Return Alembic's view of the migration scripts (imports Alembic)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """Return the latest schema revision this version of tradewarden writes."""
    return HEAD_REVISION


def known_revisions() -> frozenset[str]:
    """Return every schema revision this version of tradewarden knows."""
    return frozenset(REVISIONS)


def create_at_head(engine: Engine) -> None:
    """Create every ledger table of an empty database and stamp it at the head revision.

    The schema module is what the migrations build (a test compares the two), so this
    is Alembic's "create_all, then stamp head" recipe, with the stamp written directly.

    Raises
    ------
    sqlalchemy.exc.DBAPIError
        If the database cannot be written.
    """
    from sqlalchemy import Column, MetaData, String, Table

    from tradewarden.ledger.schema import metadata

    version = Table(VERSION_TABLE, MetaData(),
                    Column("version_num", String(32), primary_key=True, nullable=False))
    from tradewarden.ledger.pgvector import add_embedding_column

    with engine.begin() as conn:
        metadata.create_all(conn)
        add_embedding_column(conn)          # PostgreSQL with pgvector only (migration 0011)
        version.create(conn)
        conn.execute(version.insert().values(version_num=HEAD_REVISION))


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
    from alembic import command

    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
