"""Ledger faults: a full disk, a locked database, files that are not (our) ledgers, old
schemas, `%` in paths and passwords in URLs. Each is one clear LedgerError, and what
was committed before is intact."""

from __future__ import annotations

import sqlite3
from decimal import Decimal

import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import OperationalError

from tradewarden.ledger import Ledger, LedgerError, display_db, open_engine
from tradewarden.ledger.migrate import upgrade
from tradewarden.ledger.store import describe_db_error


def _run_row(run_id: str) -> dict:
    return {"run_id": run_id, "mode": "replay", "capital_mode": "independent",
            "market_time_basis": "t", "data_integrity": "ok", "config_hash": "h", "config": "{}",
            "strategy": "donchian", "symbols": '["BTC-USD"]', "timeframe": "1h",
            "initial_capital": Decimal("10000.00")}


def _events(first: int, n: int, text: str = "x" * 200) -> dict:
    return {"run_id": ["r1"] * n, "seq": list(range(first, first + n)), "ts": [1] * n,
            "kind": ["info"] * n, "symbol": [None] * n, "message": [text] * n}


def _fill_the_disk(led: Ledger) -> None:
    """Cap the bulk connection's database at its current size: SQLite then fails the
    next write that needs a new page with SQLITE_FULL, "database or disk is full"
    (the error a full file system gives)."""
    cur = led._adbc.cursor()
    cur.execute("PRAGMA page_count")
    pages = cur.fetchall()[0][0]
    cur.execute(f"PRAGMA max_page_count={pages}")
    cur.fetchall()
    cur.close()


@pytest.mark.parametrize("background", [True, False])
def test_disk_full_in_finish_run_names_the_cause_and_keeps_committed_chunks(tmp_path, background):
    db = tmp_path / "l.db"
    led = Ledger(db, background=background)
    led.create_run(_run_row("r1"))
    for k in range(3):                                   # three committed chunks
        led.write_rows("events", _events(k * 100, 100))
        led.commit()
    led.drain()
    _fill_the_disk(led)
    with pytest.raises(LedgerError) as err:
        led.write_rows("events", _events(300, 2000))     # the last chunk needs new pages
        led.commit()
        led.finish_run("r1", status="completed")
    message = str(err.value)
    assert "disk full" in message and "database or disk is full" in message
    assert "cannot rollback" not in message and "no transaction is active" not in message
    assert led.run_status("r1") == "running"             # never marked completed
    led.finish_run("r1", status="failed", error=message)
    led.close()
    with sqlite3.connect(db) as c:
        assert c.execute("pragma integrity_check").fetchone() == ("ok",)
        seqs = [s for (s,) in c.execute("select seq from events order by seq")]
        status, decisions, error = c.execute("select status, decisions, error from runs").fetchone()
    assert seqs == list(range(300))                      # the three chunks, whole; nothing of the 4th
    assert status == "failed" and "disk full" in error and decisions == 0


def test_a_failed_write_never_commits_the_rest_of_its_chunk(tmp_path):
    """Batches queued behind a failed one (same chunk) are skipped, not committed by
    the clean-up that follows the failure."""
    led = Ledger(tmp_path / "l.db", background=True)
    led.create_run(_run_row("r1"))
    led.write_rows("events", _events(0, 10))
    led.commit()
    led.write_rows("events", _events(10, 5))
    led.write_rows("events", _events(10, 5))             # duplicate key: fails
    led.write_rows("events", _events(20, 5))             # queued behind the failure
    with pytest.raises(LedgerError, match="UNIQUE"):
        led.drain()
    with pytest.raises(LedgerError):                     # still failed until the run is closed
        led.write_rows("events", _events(30, 5))
    row = led.finish_run("r1", status="failed", error="dup")
    led.close()
    with sqlite3.connect(tmp_path / "l.db") as c:
        seqs = [s for (s,) in c.execute("select seq from events order by seq")]
    assert seqs == list(range(10))
    assert row["status"] == "failed"


def test_locked_database_is_one_clear_error_after_the_busy_timeout(tmp_path, monkeypatch):
    db = tmp_path / "l.db"
    Ledger(db).close()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")                    # another process is writing
    holder.execute("create table if not exists t(x)")
    try:
        monkeypatch.setenv("TRADEWARDEN_BUSY_TIMEOUT", "0.1")
        led = Ledger(db)
        with pytest.raises(LedgerError, match=r"locked by another process \(waited 0.1 s; set "
                                              r"TRADEWARDEN_BUSY_TIMEOUT"):
            led.create_run(_run_row("r1"))
        led.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_busy_timeout_variable_must_be_a_number(monkeypatch, tmp_path):
    monkeypatch.setenv("TRADEWARDEN_BUSY_TIMEOUT", "soon")
    with pytest.raises(LedgerError, match="TRADEWARDEN_BUSY_TIMEOUT='soon'"):
        open_engine(tmp_path / "l.db")


@pytest.mark.parametrize("content, message", [
    (b"timestamp,open,high,low,close\n1,2,3,4,5\n" * 100, "not an SQLite database"),
    (b"SQLite format 3\x00" + b"\x10\x00\x02\x02" + b"\xff" * 4000, "not an SQLite database"),
])
def test_a_file_that_is_not_a_database(tmp_path, content, message):
    path = tmp_path / "data.csv"
    path.write_bytes(content)
    for create in (True, False):
        with pytest.raises(LedgerError, match=message) as err:
            open_engine(path, create=create)
        assert str(err.value).startswith(f"--db {path}:")
    assert path.read_bytes() == content                  # left as it was


def test_another_applications_database_is_refused_untouched(tmp_path):
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as c:
        c.execute("create table customers(id integer primary key, name text)")
    with pytest.raises(LedgerError, match=r"not a tradewarden ledger \(it holds customers"):
        open_engine(path)
    with sqlite3.connect(path) as c:
        assert [n for (n,) in c.execute("select name from sqlite_master")] == ["customers"]
        assert c.execute("pragma journal_mode").fetchone() == ("delete",)


def test_a_newer_schema_revision_is_refused(tmp_path):
    path = tmp_path / "l.db"
    Ledger(path).close()
    with sqlite3.connect(path) as c:
        c.execute("update alembic_version set version_num = '0099'")
    with pytest.raises(LedgerError, match=r"revision '0099' is unknown to this tradewarden"):
        open_engine(path, create=False)


def test_missing_tables_and_columns_are_named(tmp_path):
    path = tmp_path / "l.db"
    Ledger(path).close()
    with sqlite3.connect(path) as c:
        c.execute("alter table runs drop column notes")
    with pytest.raises(LedgerError, match="malformed ledger: table runs lacks column.s. notes"):
        open_engine(path, create=False)
    with sqlite3.connect(path) as c:
        c.execute("drop table trades")
    with pytest.raises(LedgerError, match=r"malformed ledger: missing table\(s\) trades"):
        open_engine(path, create=False)


def test_reading_never_creates_a_database_or_directory(tmp_path):
    missing = tmp_path / "nowhere" / "l.db"
    with pytest.raises(LedgerError, match=f"^no ledger at {missing}$"):
        open_engine(missing, create=False)
    assert not missing.parent.exists()
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(LedgerError, match="no ledger at .*empty.db .the database is empty"):
        Ledger(empty, create=False)
    assert empty.stat().st_size == 0


def test_an_older_ledger_is_migrated_in_place_keeping_its_runs(tmp_path):
    path = tmp_path / "old.db"
    engine = open_engine(path)                           # then take it back to revision 0001
    from tradewarden.ledger.migrate import alembic_config
    from alembic import command
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
    with sqlite3.connect(path) as c:
        c.execute("insert into runs (run_id, mode, capital_mode, market_time_basis, data_integrity,"
                  " config_hash, config, strategy, symbols, timeframe, initial_capital, started_at,"
                  " status) values ('old', 'replay', 'independent', 't', 'ok', 'h', '{}', 'donchian',"
                  " '[]', '1h', '1', '2025-01-01T00:00:00Z', 'running')")
        assert "pid" not in [r[1] for r in c.execute("pragma table_info(runs)")]
    engine.dispose()
    reader = open_engine(path, create=False)
    with reader.connect() as conn:
        version = conn.exec_driver_sql("select version_num from alembic_version").scalar_one()
        status = conn.exec_driver_sql("select status from runs where run_id='old'").scalar_one()
    from tradewarden.ledger.migrate import HEAD_REVISION
    assert version == HEAD_REVISION == "0011"
    assert {"pid", "host", "process_start", "heartbeat_at", "summary"} <= {
        c["name"] for c in inspect(reader).get_columns("runs")}
    assert "order_events" in inspect(reader).get_table_names()        # 0003: the order journal
    assert {"commands", "reconciliations"} <= set(inspect(reader).get_table_names())   # 0004
    assert {"daemon_heartbeats", "daemon_events"} <= set(inspect(reader).get_table_names())  # 0005
    assert status == "running"          # no pid recorded: not ours to judge, left alone
    upgrade(reader)                     # idempotent
    reader.dispose()


def test_percent_and_question_mark_in_the_path(tmp_path):
    path = tmp_path / "100% real?v=1" / "l.db"
    led = Ledger(path)
    led.create_run(_run_row("r1"))
    led.write_rows("events", _events(0, 3))
    led.close()
    assert path.exists()
    with sqlite3.connect(path) as c:
        assert c.execute("select count(*) from events").fetchone() == (3,)
    reader = Ledger(path, create=False)
    assert reader.run_status("r1") == "running"         # this process is alive
    reader.close()


def test_password_is_masked_in_every_message():
    url = "postgresql+psycopg://trader:s3cr%40t!@db.example:5432/ledger"
    assert display_db(url) == "postgresql+psycopg://trader:***@db.example:5432/ledger"
    assert display_db("not a url://u:pw@x") == "not a url://u:***@x"
    with pytest.raises(LedgerError) as err:
        open_engine(url, create=False)                   # no driver / no server: the error path
    assert "s3cr" not in str(err.value) and "trader:***@db.example" in str(err.value)
    # a driver that echoes the DSN (and the password, plain or URL-encoded) in its message
    exc = OperationalError("connect", {}, Exception(
        'connection to "postgresql://trader:s3cr@t!@db.example" failed: password s3cr@t! '
        "(s3cr%40t%21) rejected"))
    text = describe_db_error(exc, url)
    assert "s3cr" not in text and text.startswith("--db postgresql+psycopg://trader:***@db.example")
