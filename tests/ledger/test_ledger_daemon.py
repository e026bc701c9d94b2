"""The daemon's ledger side (migration 0005): heartbeats, and the durable event queue
with leases (claimed once, taken over when the worker dies, de-duplicated)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from decimal import Decimal

import pytest

from tradewarden.ledger import Ledger, LedgerError, open_engine
from tradewarden.ledger.lifecycle import this_process

T0 = 1_767_225_600.0          # 2026-01-01T00:00:00Z


def test_heartbeats_are_numbered_per_daemon_committed_at_once_and_read_back(ledger_db, query):
    db = ledger_db
    led = Ledger(db)
    assert led.latest_daemon_heartbeat() is None and led.latest_daemon_heartbeat("d1") is None
    assert led.daemon_heartbeat("d1", status="starting") == 1
    assert led.daemon_heartbeat("d1", status="running", activity="waiting for market_open",
                                queue_depth=3, autonomy_level=2,
                                anomalies=[{"kind": "stale_data", "symbol": "SPY"}],
                                deployments=("alpha", "beta")) == 2
    assert led.daemon_heartbeat("d2", status="paused", deployments={"zeta", "eta"}) == 1
    rows = query(db, "select daemon_id, seq, pid, host, process_start, status, queue_depth, "
                     "anomalies, deployments from daemon_heartbeats "
                     "order by daemon_id, seq")               # another connection sees them at once
    me = this_process()
    assert rows == [("d1", 1, os.getpid(), me.host, me.start, "starting", 0, "[]", "[]"),
                    ("d1", 2, os.getpid(), me.host, me.start, "running", 3,
                     '[{"kind": "stale_data", "symbol": "SPY"}]', '["alpha", "beta"]'),
                    ("d2", 1, os.getpid(), me.host, me.start, "paused", 0, "[]",
                     '["eta", "zeta"]')]
    beat = led.latest_daemon_heartbeat("d1")
    assert (beat["seq"], beat["status"], beat["activity"], beat["autonomy_level"]) == (
        2, "running", "waiting for market_open", 2)
    assert beat["anomalies"] == [{"kind": "stale_data", "symbol": "SPY"}]
    assert beat["deployments"] == ["alpha", "beta"]
    assert len(beat["ts"]) == 20 and beat["ts"].endswith("Z")
    newest = led.latest_daemon_heartbeat()               # of any daemon: the latest ts
    assert newest["ts"] >= beat["ts"] and newest["daemon_id"] in {"d1", "d2"}
    led.close()
    again = Ledger(db)                                   # numbering carries on after a restart
    assert again.daemon_heartbeat("d1", status="shutdown") == 3
    assert again.latest_daemon_heartbeat("d1")["status"] == "shutdown"
    again.close()


@pytest.mark.parametrize("kwargs, message", [
    ({"daemon_id": "", "status": "running"}, "daemon id '': use 1-32 letters"),
    ({"daemon_id": "a b", "status": "running"}, "daemon id 'a b'"),
    ({"daemon_id": "d" * 33, "status": "running"}, "use 1-32"),
    ({"daemon_id": "d1", "status": "asleep"}, "daemon status 'asleep': use one of starting"),
    ({"daemon_id": "d1", "status": "running", "queue_depth": -1}, "queue depth -1"),
    ({"daemon_id": "d1", "status": "running", "queue_depth": 1.5}, "queue depth 1.5"),
    ({"daemon_id": "d1", "status": "running", "autonomy_level": 5}, "autonomy level 5"),
    ({"daemon_id": "d1", "status": "running", "autonomy_level": True}, "autonomy level True"),
    ({"daemon_id": "d1", "status": "running", "anomalies": "stale"}, "anomalies 'stale': give a list"),
    ({"daemon_id": "d1", "status": "running", "deployments": [1]}, r"deployments \[1\]"),
    ({"daemon_id": "d1", "status": "running", "activity": 7}, "daemon activity 7"),
])
@pytest.mark.parametrize("ledger_db", ["sqlite"], indirect=True)   # checks before SQL
def test_a_bad_heartbeat_is_refused_and_nothing_is_written(ledger_db, kwargs, message):
    led = Ledger(ledger_db)
    kwargs = dict(kwargs)                                # the parameter is shared by both runs
    daemon_id = kwargs.pop("daemon_id")
    with pytest.raises(LedgerError, match=message):
        led.daemon_heartbeat(daemon_id, **kwargs)
    assert led.latest_daemon_heartbeat() is None
    led.close()


def test_events_are_queued_deduplicated_and_listed(ledger_db, query):
    db = ledger_db
    led = Ledger(db)
    first = led.enqueue_event("market_open", {"market": "XNYS", "session": "2026-01-02"},
                              due_at=T0 + 60, dedupe_key="market_open:XNYS:2026-01-02")
    second = led.enqueue_event("order_filled", {"client_order_id": "d1-7",
                                                "price": Decimal("64845.57")}, due_at=T0)
    assert first is not None and second is not None and first < second
    # the same key again, even with another payload, is not added
    assert led.enqueue_event("market_open", {"market": "XNYS"}, due_at=T0 + 99,
                             dedupe_key="market_open:XNYS:2026-01-02") is None
    assert query(db, "select count(*), min(status), max(attempts) from daemon_events"
                 ) == [(2, "pending", 0)]                 # committed at once
    rows = led.events()
    assert [r["id"] for r in rows] == [first, second]
    assert rows[1]["payload"] == {"client_order_id": "d1-7", "price": "64845.57"}  # exact, as text
    assert (rows[0]["kind"], rows[0]["due_at"], rows[0]["dedupe_key"], rows[0]["lease_owner"]) == (
        "market_open", T0 + 60, "market_open:XNYS:2026-01-02", None)
    assert rows[0]["created_at"].endswith("Z") and rows[0]["finished_at"] is None
    assert [r["id"] for r in led.events(limit=1)] == [second]          # the newest one
    assert led.events(status="done") == []
    assert led.event_queue_depth(T0) == 1                # the market open is not due yet
    assert led.event_queue_depth(T0 + 60) == 2
    # a key stays taken after its event is finished: an event is added once, ever
    got = led.claim_event("w1", T0 + 60, 30)
    assert got["id"] == second
    assert led.finish_event(second, "w1", status="done")
    assert led.enqueue_event("order_filled", {}, due_at=T0, dedupe_key="fill:d1-7") is not None
    assert led.enqueue_event("order_filled", {}, due_at=T0, dedupe_key="fill:d1-7") is None
    led.close()


@pytest.mark.parametrize("call, message", [
    (lambda led: led.enqueue_event("", {}, due_at=T0), "event kind '': use 1-32"),
    (lambda led: led.enqueue_event("k" * 33, {}, due_at=T0), "event kind 'kkk"),
    (lambda led: led.enqueue_event("tick", [1], due_at=T0), r"event payload \[1\]: give a mapping"),
    (lambda led: led.enqueue_event("tick", {}, due_at=float("nan")), "event due_at nan"),
    (lambda led: led.enqueue_event("tick", {}, due_at="soon"), "event due_at 'soon'"),
    (lambda led: led.enqueue_event("tick", {}, due_at=T0, dedupe_key=""), "dedupe key ''"),
    (lambda led: led.enqueue_event("tick", {}, due_at=T0, dedupe_key="k" * 129), "1-128"),
    (lambda led: led.claim_event("", T0, 30), "event lease owner ''"),
    (lambda led: led.claim_event("w1", T0, 0), "lease seconds 0: give more than 0"),
    (lambda led: led.claim_event("w1", float("inf"), 30), "claim time inf"),
    (lambda led: led.finish_event(1, "w1", status="ok"), "event status 'ok': use one of done"),
    (lambda led: led.finish_event(99, "w1", status="done"), "no daemon event 99 in this ledger"),
    (lambda led: led.finish_event("1", "w1", status="done"), "daemon event id '1'"),
    (lambda led: led.events(status="lost"), "event status 'lost': use one of pending"),
    (lambda led: led.events(limit=0), "event limit 0"),
    (lambda led: led.event_queue_depth(None), "queue time None"),
])
@pytest.mark.parametrize("ledger_db", ["sqlite"], indirect=True)   # checks before SQL
def test_bad_event_calls_are_refused_naming_the_value(ledger_db, call, message):
    led = Ledger(ledger_db)
    with pytest.raises(LedgerError, match=message):
        call(led)
    assert led.events() == []
    led.close()


def test_claim_takes_the_oldest_due_event_and_finish_needs_the_lease(ledger_db):
    led = Ledger(ledger_db)
    late = led.enqueue_event("eod_reflection", {}, due_at=T0 + 3600)
    b = led.enqueue_event("significant_move", {"symbol": "ETH-USD"}, due_at=T0 + 10)
    a = led.enqueue_event("stop_approaching", {"symbol": "BTC-USD"}, due_at=T0 + 5)
    assert led.claim_event("w1", T0, 30) is None          # nothing due yet
    got = led.claim_event("w1", T0 + 20, 30)
    assert (got["id"], got["status"], got["lease_owner"], got["lease_until"], got["attempts"]) == (
        a, "processing", "w1", T0 + 50, 1)
    assert got["payload"] == {"symbol": "BTC-USD"}
    assert led.claim_event("w1", T0 + 20, 30)["id"] == b   # the next one, not a again
    assert led.claim_event("w1", T0 + 20, 30) is None      # the late one is not due
    assert led.event_queue_depth(T0 + 20) == 2             # two processing
    assert not led.finish_event(a, "w2", status="done")    # not w2's lease
    assert led.finish_event(a, "w1", status="done")
    assert not led.finish_event(a, "w1", status="failed")  # already finished
    assert led.finish_event(b, "w1", status="failed", error="ValueError: no price")
    rows = {r["id"]: r for r in led.events()}
    assert (rows[a]["status"], rows[a]["error"], rows[a]["lease_owner"]) == ("done", None, "w1")
    assert rows[a]["finished_at"].endswith("Z")
    assert (rows[b]["status"], rows[b]["error"]) == ("failed", "ValueError: no price")
    assert rows[late]["status"] == "pending"
    assert [r["id"] for r in led.events(status="pending")] == [late]
    assert led.event_queue_depth(T0 + 3600) == 1
    led.close()


def test_an_event_whose_worker_died_is_taken_over_after_its_lease(ledger_db):
    """A separate process claims the event and dies (os._exit) without finishing it."""
    db = ledger_db
    led = Ledger(db)
    eid = led.enqueue_event("order_filled", {"client_order_id": "d1-3"}, due_at=T0)
    child = ("import os, sys\n"
             "from tradewarden.ledger import Ledger\n"
             "row = Ledger(sys.argv[1]).claim_event('dead:1', float(sys.argv[2]), 30.0)\n"
             "print(row['id'], row['attempts'], flush=True)\n"
             "os._exit(0)\n")
    out = subprocess.run([sys.executable, "-c", child, str(db), str(T0 + 1)], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    assert out.split() == [str(eid), "1"]
    assert led.event_queue_depth(T0 + 2) == 1              # still processing, leased to the dead
    assert led.claim_event("w2", T0 + 31, 30) is None      # its lease runs to T0 + 31
    got = led.claim_event("w2", T0 + 31.5, 30)
    assert (got["id"], got["attempts"], got["lease_owner"], got["lease_until"]) == (
        eid, 2, "w2", T0 + 61.5)
    assert not led.finish_event(eid, "dead:1", status="done")   # the old owner lost it
    assert led.finish_event(eid, "w2", status="done")
    assert led.events()[0]["status"] == "done" and led.claim_event("w3", T0 + 999, 30) is None
    led.close()


def test_two_claimers_on_one_database_never_get_the_same_event(ledger_db):
    db = ledger_db
    led = Ledger(db)
    ids = [led.enqueue_event("tick", {"n": k}, due_at=T0 + k % 7) for k in range(60)]
    led.close()
    got: dict[str, list[int]] = {"w1": [], "w2": []}
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def work(owner: str) -> None:
        mine = Ledger(db)
        try:
            start.wait()
            while (row := mine.claim_event(owner, T0 + 10, 600)) is not None:
                got[owner].append(row["id"])
                assert mine.finish_event(row["id"], owner, status="done")
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            mine.close()

    threads = [threading.Thread(target=work, args=(o,)) for o in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert not set(got["w1"]) & set(got["w2"])
    assert sorted(got["w1"] + got["w2"]) == ids
    check = Ledger(db)
    rows = check.events()
    assert {r["status"] for r in rows} == {"done"} and {r["attempts"] for r in rows} == {1}
    assert {r["id"]: r["lease_owner"] for r in rows} == {
        i: o for o, claimed in got.items() for i in claimed}
    check.close()


def test_a_ledger_made_at_revision_0004_gets_the_daemon_tables_keeping_its_rows(tmp_path):
    from alembic import command

    from tradewarden.ledger.migrate import HEAD_REVISION, alembic_config

    path = tmp_path / "old.db"
    engine = open_engine(path)                           # take it back to revision 0004
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0004")
    engine.dispose()
    with sqlite3.connect(path) as c:
        tables = {n for (n,) in c.execute("select name from sqlite_master where type='table'")}
        assert "commands" in tables and not {"daemon_heartbeats", "daemon_events"} & tables
        assert c.execute("select version_num from alembic_version").fetchone() == ("0004",)
        c.execute("insert into deployments values ('d1', 'alpha', 'paper', '2026-01-01T00:00:00Z',"
                  " '{}', 'h', null, 'stopped', 5, 'r1')")
        c.execute("insert into commands (deployment_id, kind, actor, created_at, status) values "
                  "('d1', 'pause', 'ana', '2026-01-01T00:00:00Z', 'pending')")
    led = Ledger(path)
    with led.engine.connect() as conn:
        assert conn.exec_driver_sql("select version_num from alembic_version").scalar_one() \
            == HEAD_REVISION == "0011"
    assert led.deployment("alpha")["next_order_seq"] == 5
    assert [(r["kind"], r["actor"]) for r in led.pending_commands("d1")] == [("pause", "ana")]
    eid = led.enqueue_event("market_open", {}, due_at=T0, dedupe_key="open:1")
    assert led.claim_event("w1", T0, 30)["id"] == eid
    assert led.daemon_heartbeat("d", status="running", deployments=["alpha"]) == 1
    led.close()


def test_a_claimed_event_can_go_back_for_a_retry_and_its_lease_can_be_renewed(ledger_db):
    led = Ledger(ledger_db)
    eid = led.enqueue_event("stale_data", {"symbol": "SPY"}, due_at=T0)
    assert led.claim_event("w1", T0, 30)["lease_until"] == T0 + 30
    assert not led.renew_event(eid, "w2", T0 + 10, 30)                 # not w2's lease
    assert led.renew_event(eid, "w1", T0 + 10, 60)
    assert led.claim_event("w2", T0 + 45, 30) is None                  # renewed to T0 + 70
    assert led.finish_event(eid, "w1", status="pending", retry_at=T0 + 100,
                            error="RuntimeError: later")
    row = led.events()[0]
    assert (row["status"], row["attempts"], row["due_at"], row["error"], row["finished_at"]) == (
        "pending", 1, T0 + 100, "RuntimeError: later", None)
    assert not led.renew_event(eid, "w1", T0 + 50, 30)                 # no longer claimed
    assert led.claim_event("w2", T0 + 99, 30) is None
    assert led.claim_event("w2", T0 + 100, 30)["attempts"] == 2
    with pytest.raises(LedgerError, match="retry_at None with status 'pending'"):
        led.finish_event(eid, "w2", status="pending")
    assert led.finish_event(eid, "w2", status="done")
    led.close()


def test_a_restarted_scheduler_finds_its_last_fire_in_the_ledger(ledger_db):
    """ops.schedule reads the newest ``sched:<market>:<kind>:`` event on either backend."""
    from tradewarden.ops.schedule import Scheduler

    led = Ledger(ledger_db)
    mon_open = 1_763_994_600.0                       # 2025-11-24T14:30Z, NYSE open
    first = Scheduler(led, "XNYS")
    assert first.tick(mon_open - 60) == []           # never fired: starts at now
    assert len(first.tick(mon_open)) == 1            # the open (pre-market was before it)
    again = Scheduler(led, "XNYS")                   # a restart 25 hours later (Tue 15:30Z)
    ids = again.tick(mon_open + 25 * 3600)
    rows = {r["id"]: r for r in led.events()}
    # Monday's close and end of day never fired: they count from the market's last fire
    assert [(rows[i]["kind"], rows[i]["payload"]["session"], rows[i]["payload"]["missed"])
            for i in ids] == [("market_close", "2025-11-24", True),
                              ("end_of_day", "2025-11-24", True),     # 18.25 h > 12 h grace
                              ("pre_market", "2025-11-25", True),
                              ("market_open", "2025-11-25", True)]
    assert Scheduler(led, "XNYS").tick(mon_open + 25 * 3600) == []   # and never twice
    led.close()
