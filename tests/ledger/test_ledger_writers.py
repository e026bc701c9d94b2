"""Several writers of one SQLite ledger in one process (the daemon: every deployment's
ledger and its own connection): ``Ledger(bulk=False)`` keeps them all on Python's copy
of SQLite, so they wait for each other's locks; a batch still commits whole or not at
all."""

from __future__ import annotations

import sqlite3
import threading
from decimal import Decimal

from tradewarden.ledger import Ledger


def _run_row(run_id: str) -> dict:
    return {"run_id": run_id, "mode": "paper", "capital_mode": "independent",
            "market_time_basis": "t", "data_integrity": "ok", "config_hash": "h", "config": "{}",
            "strategy": "donchian", "symbols": '["BTC-USD"]', "timeframe": "1h",
            "initial_capital": Decimal("10000.00")}


def _events(run_id: str, first: int, n: int) -> dict:
    return {"run_id": [run_id] * n, "seq": list(range(first, first + n)), "ts": [1] * n,
            "kind": ["info"] * n, "symbol": [None] * n, "message": ["m"] * n}


def test_deployment_ledgers_and_the_daemons_write_one_file_at_once_without_harm(tmp_path):
    db = tmp_path / "l.db"
    daemon = Ledger(db)
    writers = [Ledger(db, background=True, bulk=False) for _ in range(3)]
    assert all(w._adbc is None and w._bulk_path is None for w in writers)
    for i, w in enumerate(writers):
        w.create_run(_run_row(f"r{i}"))
    errors = []

    def deployment(i: int, w: Ledger) -> None:
        try:
            for batch in range(40):
                w.write_rows("events", _events(f"r{i}", batch * 25, 25))
                w.commit()
            w.drain()
        except Exception as exc:            # noqa: BLE001 - reported below
            errors.append(exc)

    def own_writes() -> None:
        try:
            for k in range(60):
                daemon.enqueue_event("market_open", {"k": k}, due_at=1.0, dedupe_key=f"k{k}")
                daemon.daemon_heartbeat("d1", status="running", deployments=["a", "b", "c"])
        except Exception as exc:            # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=deployment, args=(i, w)) for i, w in enumerate(writers)]
    threads.append(threading.Thread(target=own_writes))
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    for w in writers:
        w.close()
    daemon.close()
    with sqlite3.connect(db) as c:
        assert c.execute("pragma integrity_check").fetchone() == ("ok",)
        assert c.execute("select run_id, count(*) from events group by run_id order by run_id"
                         ).fetchall() == [("r0", 1000), ("r1", 1000), ("r2", 1000)]
        assert c.execute("select count(*) from daemon_events").fetchone() == (60,)
        assert c.execute("select count(*) from daemon_heartbeats").fetchone() == (60,)


def test_without_bulk_a_batch_rolled_back_leaves_nothing(tmp_path):
    db = tmp_path / "l.db"
    led = Ledger(db, bulk=False)
    led.create_run(_run_row("r1"))
    led.write_rows("events", _events("r1", 0, 5))
    led.commit()
    led.write_rows("events", _events("r1", 5, 5))
    led._discard_uncommitted()                  # a chunk cut short: rolled back whole
    led.close()
    with sqlite3.connect(db) as c:
        assert c.execute("select count(*) from events").fetchone() == (5,)
