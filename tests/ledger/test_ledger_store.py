"""Ledger: migrations match the schema, exact decimals, writer errors, bad --db values."""

from __future__ import annotations

import os
import sqlite3
from decimal import Decimal

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select

from tradewarden.ledger import Ledger, LedgerError, open_engine, resolve_url, schema


def test_migrations_create_exactly_the_schema(tmp_path):
    engine = open_engine(tmp_path / "l.db")
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), schema.metadata)
        version = conn.exec_driver_sql("select version_num from alembic_version").scalar_one()
    assert diff == []
    assert version == "0001"
    names = set(inspect(engine).get_table_names())
    assert {"runs", "decisions", "orders", "fills", "trades", "equity", "events"} <= names
    with sqlite3.connect(tmp_path / "l.db") as c:
        assert c.execute("pragma journal_mode").fetchone()[0] == "wal"
    # every table's primary key starts with run_id
    for table in schema.ALL_TABLES:
        assert list(table.primary_key.columns)[0].name == "run_id"


def test_reopening_an_existing_ledger_keeps_its_rows(tmp_path):
    led = Ledger(tmp_path / "l.db")
    led.create_run(_run_row("r1"))
    led.close()
    led = Ledger(tmp_path / "l.db")
    assert led.run_status("r1") == "running"
    led.close()


def _run_row(run_id: str) -> dict:
    return {"run_id": run_id, "mode": "replay", "capital_mode": "independent",
            "market_time_basis": "t", "data_integrity": "ok", "config_hash": "h", "config": "{}",
            "strategy": "donchian", "symbols": '["BTC-USD"]', "timeframe": "1h",
            "initial_capital": Decimal("10000.00")}


def test_decimal_columns_round_trip_exactly(tmp_path):
    led = Ledger(tmp_path / "l.db")
    led.create_run(_run_row("r1"))
    led.write_rows("fills", {"run_id": ["r1"], "fill_seq": [0], "client_order_id": ["c"],
                             "symbol": ["BTC-USD"], "side": ["buy"], "role": ["entry"],
                             "quantity": [Decimal("0.08658073")], "price": [Decimal("64845.57")],
                             "reference_price": [Decimal("64832.61")],
                             "fee": [Decimal("5.61428930")], "liquidity": ["taker"],
                             "ts": [1713625200], "time": ["2024-04-20T15:00:00Z"]})
    with sqlite3.connect(tmp_path / "l.db") as c:      # not visible before the commit
        assert c.execute("select count(*) from fills").fetchone() == (0,)
    led.commit()
    with led.engine.connect() as conn:
        row = conn.execute(select(schema.fills)).one()
    assert row.quantity == Decimal("0.08658073") and row.fee == Decimal("5.61428930")
    with sqlite3.connect(tmp_path / "l.db") as c:
        assert c.execute("select typeof(price), price from fills").fetchone() == ("text", "64845.57")
    led.close()


def _event(seq: int, msg: str) -> dict:
    return {"run_id": ["r1"], "seq": [seq], "ts": [1], "kind": ["info"], "symbol": [None], "message": [msg]}


def test_background_writer_failure_is_raised_and_run_can_still_be_failed(tmp_path):
    led = Ledger(tmp_path / "l.db", background=True)
    led.create_run(_run_row("r1"))
    led.write_rows("events", _event(0, "first chunk"))
    led.commit()
    led.write_rows("events", _event(1, "second chunk"))
    led.write_rows("events", _event(0, "duplicate"))      # duplicate primary key
    led.commit()
    with pytest.raises(LedgerError, match="ledger write failed"):
        led.drain()
    led.finish_run("r1", status="failed", error="duplicate event")
    assert led.run_status("r1") == "failed"
    led.close()
    with sqlite3.connect(tmp_path / "l.db") as c:       # the failed chunk is rolled back whole
        assert c.execute("select seq, message from events").fetchall() == [(0, "first chunk")]


def test_completed_status_is_refused_while_a_write_failed(tmp_path):
    led = Ledger(tmp_path / "l.db", background=True)
    led.create_run(_run_row("r1"))
    row = {"run_id": ["r1"], "seq": [0], "ts": [1], "kind": ["info"], "symbol": [None], "message": ["a"]}
    led.write_rows("events", row)
    led.write_rows("events", row)
    with pytest.raises(LedgerError):
        led.finish_run("r1", status="completed")
    assert led.run_status("r1") == "running"
    led.close()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_directory_is_a_clear_error(tmp_path):  # pragma: no cover - root in CI
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(LedgerError, match="not writable"):
        Ledger(ro / "l.db")


def test_db_path_that_cannot_be_a_directory_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(LedgerError, match=r"--db .*cannot create directory"):
        Ledger(blocker / "sub" / "l.db")


def test_resolve_url_accepts_paths_and_urls_and_rejects_garbage(tmp_path):
    assert resolve_url(tmp_path / "a.db") == f"sqlite:///{tmp_path / 'a.db'}"
    assert resolve_url("postgresql+psycopg://u@h/db").startswith("postgresql")
    with pytest.raises(LedgerError, match="--db nonsense://x: cannot open"):
        open_engine("nonsense://x")
