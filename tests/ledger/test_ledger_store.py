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
    """Both ways of building a ledger: the migrations from nothing, and a new ledger
    (created from the schema module and stamped at the head) give the schema module."""
    from sqlalchemy import create_engine

    from tradewarden.ledger.migrate import HEAD_REVISION, REVISIONS, script_directory, upgrade
    migrated = create_engine(f"sqlite:///{tmp_path / 'migrated.db'}")
    upgrade(migrated)
    for engine in (migrated, open_engine(tmp_path / "l.db")):
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), schema.metadata)
            version = conn.exec_driver_sql("select version_num from alembic_version").scalar_one()
        assert diff == []
        assert version == HEAD_REVISION
    # the constants that spare a current ledger the Alembic import are the scripts' own
    scripts = script_directory()
    assert scripts.get_current_head() == HEAD_REVISION
    assert tuple(reversed([s.revision for s in scripts.walk_revisions()])) == REVISIONS
    engine = open_engine(tmp_path / "l.db")
    names = set(inspect(engine).get_table_names())
    assert {"runs", "decisions", "orders", "fills", "trades", "equity", "events"} <= names
    with sqlite3.connect(tmp_path / "l.db") as c:
        assert c.execute("pragma journal_mode").fetchone()[0] == "wal"
    # every run table's primary key starts with run_id; deployments span runs, approvals and
    # commands are numbered, the daemon's heartbeats and events are its own
    assert set(schema.ALL_TABLES) - set(schema.RUN_TABLES) == {
        schema.deployments, schema.approvals, schema.commands, schema.daemon_heartbeats,
        schema.daemon_events, schema.agent_decisions, schema.governor_verdicts,
        schema.autonomy_changes, schema.anomalies, schema.alerts, schema.reasoning_costs,
        schema.reasoning_calls, schema.agent_memory, schema.memory_embeddings,
        schema.decision_outcomes, schema.reflections, schema.experiments,
        schema.experiment_observations, schema.ml_predictions, schema.ml_model_events,
        schema.ml_drift_reports}
    for table in schema.RUN_TABLES:
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


# -- typed batch writers ---------------------------------------------------------------
def _domain_rows(run_id: str):
    from tradewarden.domain import (
        ExitReason,
        Fill,
        Order,
        OrderRole,
        OrderStatus,
        OrderType,
        Side,
        Trade,
    )

    entry = Order(f"{run_id}-BTC-USD-1-entry", "BTC-USD", Side.BUY, OrderType.MARKET,
                  Decimal("0.08658073"), OrderRole.ENTRY, 1713625200, decision_seq=1,
                  status=OrderStatus.FILLED, updated_ts=1713628800)
    stop = Order(f"{run_id}-BTC-USD-1-stop_loss", "BTC-USD", Side.SELL, OrderType.STOP,
                 Decimal("0.08658073"), OrderRole.STOP_LOSS, 1713625200,
                 stop_price=Decimal("63690.56"), parent_id=entry.client_order_id, decision_seq=1,
                 status=OrderStatus.CANCELLED, status_reason="signal exit")
    fill = Fill(entry.client_order_id, "BTC-USD", Side.BUY, Decimal("0.08658073"),
                Decimal("64845.57"), Decimal("5.61428930"), "taker", 1713628800,
                Decimal("64832.61"), OrderRole.ENTRY)
    trade = Trade(f"{run_id}-BTC-USD-1", "BTC-USD", "long", Decimal("0.08658073"), 1713628800,
                  Decimal("64845.57"), 1713715200, Decimal("66001.10"), Decimal("11.3"),
                  Decimal("88.7200000001"), ExitReason.SIGNAL, entry.client_order_id,
                  f"{run_id}-BTC-USD-9-exit")
    return [entry, stop], [(0, fill)], [trade]


def _write_domain_rows(led: Ledger, run_id: str) -> None:
    orders, fills, trades = _domain_rows(run_id)
    led.create_run(_run_row(run_id))
    led.write_orders(run_id, orders)
    led.write_fills(run_id, fills)
    led.write_trades(run_id, trades)
    led.write_events(run_id, [(0, None, "info", None, "hello"), (1, 1713628800, "halt", "BTC-USD", "x")])
    led.commit()


_DUMP = {
    "orders": "select * from orders order by client_order_id",
    "fills": "select * from fills order by fill_seq",
    "trades": "select * from trades order by trade_id",
    "events": "select * from events order by seq",
}


def test_typed_writers_store_enum_values_exact_decimals_and_iso_times(tmp_path):
    led = Ledger(tmp_path / "l.db")
    _write_domain_rows(led, "r1")
    led.close()
    with sqlite3.connect(tmp_path / "l.db") as c:
        entry, stop = c.execute(_DUMP["orders"]).fetchall()
        fill, = c.execute(_DUMP["fills"]).fetchall()
        trade, = c.execute(_DUMP["trades"]).fetchall()
        events = c.execute(_DUMP["events"]).fetchall()
        types = c.execute("select typeof(quantity), typeof(price), typeof(stop_price), "
                          "typeof(created_ts) from orders order by client_order_id").fetchall()
    assert entry == ("r1", "r1-BTC-USD-1-entry", 1, "BTC-USD", "buy", "market", "entry", "0.08658073",
                     None, None, None, "filled", "", 1713625200, "2024-04-20T15:00:00Z", 1713628800)
    assert stop == ("r1", "r1-BTC-USD-1-stop_loss", 1, "BTC-USD", "sell", "stop", "stop_loss",
                    "0.08658073", None, "63690.56", "r1-BTC-USD-1-entry", "cancelled", "signal exit",
                    1713625200, "2024-04-20T15:00:00Z", 1713625200)          # updated_ts falls back
    assert types == [("text", "null", "null", "integer"), ("text", "null", "text", "integer")]
    assert fill == ("r1", 0, "r1-BTC-USD-1-entry", "BTC-USD", "buy", "entry", "0.08658073", "64845.57",
                    "64832.61", "5.61428930", "taker", 1713628800, "2024-04-20T16:00:00Z")
    expected_pct = float(Decimal("88.7200000001") / (Decimal("64845.57") * Decimal("0.08658073")) * 100)
    assert trade == ("r1", "r1-BTC-USD-1", "BTC-USD", "long", "0.08658073", 1713628800,
                     "2024-04-20T16:00:00Z", "64845.57", 1713715200, "2024-04-21T16:00:00Z",
                     "66001.10", "11.3", "88.7200000001", expected_pct, "signal",
                     "r1-BTC-USD-1-entry", "r1-BTC-USD-9-exit", 86400,
                     None, None, None, None)     # excursions not tracked on this trade
    assert events == [("r1", 0, None, "info", None, "hello"), ("r1", 1, 1713628800, "halt", "BTC-USD", "x")]


def test_bulk_and_executemany_paths_write_the_same_rows(tmp_path):
    bulk = Ledger(tmp_path / "bulk.db")                    # Arrow bulk ingest
    _write_domain_rows(bulk, "r1")
    bulk.close()
    plain = Ledger("sqlite://")                            # in-memory: SQLAlchemy executemany
    _write_domain_rows(plain, "r1")
    with plain.engine.connect() as conn:
        via_executemany = {t: [tuple(r) for r in conn.exec_driver_sql(q)] for t, q in _DUMP.items()}
    plain.close()
    with sqlite3.connect(tmp_path / "bulk.db") as c:
        via_bulk = {t: c.execute(q).fetchall() for t, q in _DUMP.items()}
    assert via_bulk == via_executemany


def test_iso_array_matches_iso_list():
    import numpy as np
    import pyarrow as pa

    from tradewarden.ledger.store import iso_array, iso_list

    rng = np.random.default_rng(7)
    ts = rng.integers(0, 253_402_300_800, 20_000).tolist()
    ts += [0, 59, 86_399, 86_400, 951_782_400, 951_868_800, 4_107_542_400, 253_402_300_799]
    assert iso_array(pa.array(ts, pa.int64())).to_pylist() == iso_list(ts)
    assert iso_array(pa.array(ts, pa.int64())[5:9]).to_pylist() == iso_list(ts[5:9])   # sliced
    for outside in ([-1, 0], [-86_400 * 400], [253_402_300_800], [1, None]):   # fallback path
        assert iso_array(pa.array(outside, pa.int64())).to_pylist() == iso_list(outside)
    assert iso_array(pa.array([], pa.int64())).to_pylist() == []


def test_write_rows_accepts_arrow_columns_on_both_paths(tmp_path):
    import pyarrow as pa

    for db in (tmp_path / "l.db", "sqlite://"):
        led = Ledger(db)
        led.create_run(_run_row("r1"))
        led.write_rows("events", {"run_id": pa.array(["r1", "r1"]), "seq": pa.array([0, 1], pa.int32()),
                                  "ts": [5, None], "kind": ["info", "info"], "message": ["a", "b"]})
        led.commit()
        with led.engine.connect() as conn:
            rows = [tuple(r) for r in conn.exec_driver_sql(_DUMP["events"])]
        led.close()
        assert rows == [("r1", 0, 5, "info", None, "a"), ("r1", 1, None, "info", None, "b")]


def test_trade_excursions_are_written_exact_with_their_percentages(tmp_path):
    """``mae_price`` / ``mfe_price`` keep their digits; the percentages are of the entry price."""
    led = Ledger(tmp_path / "l.db")
    led.create_run(_run_row("r1"))
    _, _, (trade,) = _domain_rows("r1")
    led.write_trades("r1", [trade._replace(mae_price=Decimal("63000.10"),
                                           mfe_price=Decimal("66500"))])
    led.commit()
    led.close()
    with sqlite3.connect(tmp_path / "l.db") as c:
        row = c.execute("select mae_price, mfe_price, mae_pct, mfe_pct from trades").fetchone()
    assert row[:2] == ("63000.10", "66500")
    assert row[2] == pytest.approx((63000.10 / 64845.57 - 1) * 100, rel=1e-12) and row[2] < 0
    assert row[3] == pytest.approx((66500 / 64845.57 - 1) * 100, rel=1e-12) and row[3] > 0
