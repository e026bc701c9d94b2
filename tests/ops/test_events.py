"""The daemon's events: the dispatcher (retries, leases, two workers), the producers
(fills, positions, stale data, a watched folder) and their dedupe keys, on a simulated clock."""

from __future__ import annotations

import shutil
import sys
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tradewarden.engine.clock import WallClock
from tradewarden.ledger import Ledger, LedgerError
from tradewarden.ops import events as ev
from tradewarden.ops.events import (
    Dispatcher,
    EventProducer,
    FolderWatch,
    PositionWatch,
    StaleData,
    WatchedPosition,
    effect_key,
)
from tradewarden.ops.schedule import market_calendar

sys.path.insert(0, str(Path(__file__).parent))
from paper_support import SimTime

T0 = 1_764_000_000.0                 # 2025-11-24T16:00:00Z, a Monday, NYSE open


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.fixture(scope="module")
def blank_ledger(tmp_path_factory):
    path = tmp_path_factory.mktemp("blank") / "ledger.db"
    Ledger(path).close()
    return path


@pytest.fixture
def db(blank_ledger, tmp_path):
    path = tmp_path / "ledger.db"
    shutil.copy(blank_ledger, path)
    return path


@pytest.fixture
def world(db):
    """A ledger and a simulated clock."""
    sim = SimTime(T0)
    led = Ledger(db)
    yield led, sim, WallClock(sim.time, sim.sleep)
    led.close()


def test_the_kinds_are_the_issues_fourteen():
    assert len(set(ev.EVENT_KINDS)) == 14
    assert {"market_open", "market_close", "pre_market", "order_filled", "stop_approaching",
            "significant_move", "new_data_file", "end_of_day", "weekly_learning",
            "broker_disconnected", "broker_reconnected", "stale_data", "experiment_result",
            "anomaly_detected"} == set(ev.EVENT_KINDS)


def test_a_failing_handler_is_retried_with_backoff_then_failed_while_others_go_on(world):
    led, sim, clock = world
    bad = led.enqueue_event("anomaly_detected", {"anomaly": "x"}, due_at=T0)
    errors, done = [], []
    d = Dispatcher(led, clock, "w:1", max_attempts=3, retry_seconds=10,
                   on_error=lambda event, exc: errors.append((event.id, event.attempts, str(exc))))

    def boom(event):
        raise RuntimeError(f"boom {event.attempts}")

    d.register("anomaly_detected", boom)
    d.register("order_filled", lambda event: done.append(event.id))
    fills = [led.enqueue_event("order_filled", {"n": k}, due_at=T0) for k in range(2)]
    with capture_logs() as logs:
        assert d.run_pending() == 3                 # the bad one, then both fills
        assert done == fills
        row = led.events()[0]
        assert (row["status"], row["attempts"], row["due_at"], row["error"]) == (
            "pending", 1, T0 + 10, "RuntimeError: boom 1")
        assert d.run_pending() == 0                 # not due before its backoff
        sim.t = T0 + 10
        assert d.run_pending() == 1                 # attempt 2, next after 20 s
        assert led.events()[0]["due_at"] == T0 + 30
        sim.t = T0 + 30
        assert d.run_pending() == 1                 # attempt 3 = max_attempts: failed
    row = led.events()[0]
    assert (row["id"], row["status"], row["attempts"], row["error"]) == (
        bad, "failed", 3, "RuntimeError: boom 3")
    assert errors == [(bad, 1, "boom 1"), (bad, 2, "boom 2"), (bad, 3, "boom 3")]
    failures = [x for x in logs if x["event"] == "event_handler_failed"]
    assert [x["final"] for x in failures] == [False, False, True]
    assert "Traceback" in failures[0]["traceback"] and "in boom" in failures[0]["traceback"]
    sim.t = T0 + 9999
    assert d.run_pending() == 0                     # nothing left, nothing raised


def test_a_broken_on_error_hook_and_an_unknown_kind_do_not_stop_the_dispatcher(world):
    led, _, clock = world
    d = Dispatcher(led, clock, "w:1", max_attempts=1)
    d.on_error = lambda event, exc: 1 / 0
    d.register("stale_data", lambda event: int("x"))
    a = led.enqueue_event("stale_data", {}, due_at=T0)
    b = led.enqueue_event("no_such_kind", {}, due_at=T0)
    assert d.run_pending() == 2
    rows = {r["id"]: r for r in led.events()}
    assert rows[a]["status"] == "failed" and rows[a]["error"].startswith("ValueError")
    assert (rows[b]["status"], rows[b]["error"]) == ("failed", "no handler for 'no_such_kind'")


def test_an_event_whose_worker_died_is_processed_again_after_the_lease(world):
    led, sim, clock = world
    eid = led.enqueue_event("order_filled", {"client_order_id": "d1-1"}, due_at=T0)
    assert led.claim_event("dead:7", T0, 60)["id"] == eid          # claimed, then the worker died
    seen = []
    d = Dispatcher(led, clock, "w:2", lease_seconds=60)
    d.register("order_filled", lambda event: seen.append((event.id, event.attempts,
                                                          effect_key(event, "entry"))))
    sim.t = T0 + 60
    assert d.run_pending() == 0                                     # lease still held
    sim.t = T0 + 61
    assert d.run_pending() == 1
    assert seen == [(eid, 2, f"ev{eid}-entry")]
    row = led.events()[0]
    assert (row["status"], row["lease_owner"]) == ("done", "w:2")


def test_an_event_that_kills_its_worker_every_time_is_given_up_after_max_attempts(world):
    led, sim, clock = world
    eid = led.enqueue_event("new_data_file", {}, due_at=T0)
    for k in range(3):                               # three workers died on it
        assert led.claim_event(f"dead:{k}", T0 + 100 * k, 60)["id"] == eid
    ran = []
    d = Dispatcher(led, clock, "w:9", max_attempts=3)
    d.register("new_data_file", ran.append)
    sim.t = T0 + 400
    assert d.run_once() is True
    row = led.events()[0]
    assert ran == [] and (row["status"], row["attempts"]) == ("failed", 4)
    assert row["error"] == "gave up after 3 attempts (worker died or lease expired)"


def test_a_long_handler_renews_its_lease_so_nobody_takes_the_event_over(world):
    led, sim, clock = world
    eid = led.enqueue_event("weekly_learning", {}, due_at=T0)
    other = Dispatcher(led, clock, "w:other", lease_seconds=30)
    other.register("weekly_learning", lambda event: pytest.fail("taken over"))
    outcome = []

    def long_job(event):
        for _ in range(4):
            sim.t += 20                               # work that outlasts one lease
            assert event.renew_lease()
            assert other.run_once() is False          # still ours
        outcome.append(event.id)

    d = Dispatcher(led, clock, "w:long", lease_seconds=30)
    d.register("weekly_learning", long_job)
    assert d.run_once() and outcome == [eid]
    assert led.events()[0]["status"] == "done"
    assert not led.renew_event(eid, "w:long", sim.t, 30)        # finished: nothing to renew


def test_missed_schedule_events_are_finished_without_their_handler_unless_asked(world):
    led, _, clock = world
    a = led.enqueue_event("market_open", {"missed": True, "late_seconds": 7200}, due_at=T0)
    b = led.enqueue_event("end_of_day", {"missed": True, "late_seconds": 50000}, due_at=T0)
    ran = []
    d = Dispatcher(led, clock, "w:1")
    d.register("market_open", ran.append)
    d.register("end_of_day", ran.append, run_missed=True)
    assert d.run_pending() == 2
    rows = {r["id"]: r for r in led.events()}
    assert [e.id for e in ran] == [b]
    assert rows[a]["status"] == "done" and rows[a]["error"].startswith("missed: fired 7200 s")
    assert (rows[b]["status"], rows[b]["error"]) == ("done", None)


def test_two_dispatchers_on_one_ledger_never_process_the_same_event(db):
    setup = Ledger(db)
    ids = [setup.enqueue_event("order_filled", {"n": k}, due_at=T0) for k in range(40)]
    setup.close()
    calls: list[tuple[str, int]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(2)
    problems = []

    def work(owner):
        led = Ledger(db)
        d = Dispatcher(led, WallClock(lambda: T0 + 1, lambda s: None), owner)

        def handle(event):
            with lock:
                calls.append((owner, event.id))

        d.register("order_filled", handle)
        try:
            barrier.wait()
            d.run_pending()
        except BaseException as exc:  # noqa: BLE001 - checked below
            problems.append(exc)
        finally:
            led.close()

    threads = [threading.Thread(target=work, args=(o,)) for o in ("w:a", "w:b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert problems == []
    assert sorted(eid for _, eid in calls) == ids                  # each exactly once
    check = Ledger(db)
    assert {r["status"] for r in check.events()} == {"done"}
    check.close()


def test_the_ledger_refuses_a_retry_without_a_time_and_a_time_without_a_retry(world):
    led, _, _ = world
    eid = led.enqueue_event("stale_data", {}, due_at=T0)
    led.claim_event("w:1", T0, 30)
    with pytest.raises(LedgerError, match="give retry_at with status 'pending' only"):
        led.finish_event(eid, "w:1", status="pending")
    with pytest.raises(LedgerError, match="retry_at 5.0 with status 'done'"):
        led.finish_event(eid, "w:1", status="done", retry_at=5.0)
    with pytest.raises(LedgerError, match="lease seconds 0"):
        led.renew_event(eid, "w:1", T0, 0)
    assert not led.renew_event(eid, "w:2", T0, 30)                 # not w:2's
    assert led.renew_event(eid, "w:1", T0 + 10, 30)
    assert led.events()[0]["lease_until"] == T0 + 40
    assert led.finish_event(eid, "w:1", status="pending", retry_at=T0 + 99, error="later")
    assert led.claim_event("w:2", T0 + 98, 30) is None and led.claim_event("w:2", T0 + 99, 30)


def test_fills_and_the_thin_producers_enqueue_once_per_fact(world):
    led, sim, clock = world
    p = EventProducer(led, clock, deployment_id="alpha")
    fill = {"fill_id": "T-91", "client_order_id": "alpha-3", "symbol": "SPY", "side": "buy",
            "quantity": Decimal(10), "price": Decimal("601.25"), "fee": Decimal("0.35")}
    first = p.fill(**fill)
    sim.t += 5
    assert first is not None and p.fill(**fill) is None             # same fill: nothing added
    assert p.fill(**{**fill, "fill_id": None}) is not None          # keyed by order, qty, price
    assert p.fill(**{**fill, "fill_id": None}) is None
    assert p.broker_disconnected("coinbase", since=T0, reason="timeout") is not None
    assert p.broker_disconnected("coinbase", since=T0, reason="again") is None
    assert p.broker_reconnected("coinbase", since=T0) is not None
    assert p.anomaly("vix_spike", anomaly_id=12) is not None and p.anomaly("x", anomaly_id=12) is None
    assert p.experiment_result("exp-1", "completed", {"sharpe": "1.2"}) is not None
    assert p.experiment_result("exp-1", "completed") is None
    rows = led.events()
    assert [r["kind"] for r in rows] == ["order_filled", "order_filled", "broker_disconnected",
                                         "broker_reconnected", "anomaly_detected",
                                         "experiment_result"]
    assert rows[0]["payload"] == {"fill_id": "T-91", "client_order_id": "alpha-3",
                                  "deployment_id": "alpha", "symbol": "SPY", "side": "buy",
                                  "quantity": "10", "price": "601.25", "fee": "0.35", "ts": T0}
    assert rows[3]["payload"]["down_seconds"] == 5
    with pytest.raises(ValueError, match="fill side 'long'"):
        p.fill(**{**fill, "side": "long"})


def test_position_watch_fires_once_per_crossing_and_re_arms(world):
    led, sim, clock = world
    watch = PositionWatch(led, clock)
    long_ = WatchedPosition("SPY", Decimal(10), Decimal(100), Decimal(95), key="p1")
    short = WatchedPosition("QQQ", Decimal(-5), Decimal(400), Decimal(440), key="p2")

    def see(spy, qqq):
        sim.t += 60
        got = watch.observe([long_, short], {"SPY": Decimal(spy), "QQQ": Decimal(qqq)})
        return [(r["kind"], r["payload"]["position"]) for r in led.events() if r["id"] in got]

    assert see("99.9", "401") == []                     # 5.2 % above the stop, 0.1 % move
    assert see("99.7", "401") == [("stop_approaching", "p1")]   # (99.7-95)/95 = 4.9 %
    assert see("98", "401") == []                       # still near: once per crossing
    assert see("96.9", "401") == [("significant_move", "p1")]   # 3.1 % down from entry
    assert see("96", "401") == []
    assert see("101", "401") == []                      # back: both re-armed
    assert see("99", "401") == [("stop_approaching", "p1")]     # a new crossing
    assert see("103.5", "401") == [("significant_move", "p1")]  # up 3.5 %: a flip counts
    assert see("103.5", "401") == []                    # same prices again: nothing
    assert see("103.5", "412.5") == [("significant_move", "p2")]  # short: up 3.1 %, stop 6.3 %
    assert see("103.5", "420") == [("stop_approaching", "p2")]     # (440-420)/440 = 4.5 %
    p = next(r for r in led.events() if r["kind"] == "stop_approaching")["payload"]
    assert (p["stop_price"], p["price"], p["threshold"]) == ("95", "99.7", "0.05")
    assert Decimal(p["distance"]).quantize(Decimal("0.0001")) == Decimal("0.0495")
    assert [r["payload"]["position"] for r in led.events()
            if r["kind"] == "stop_approaching"] == ["p1", "p1", "p2"]


def test_stale_data_only_counts_market_hours_and_clears_when_data_returns(world):
    led, sim, clock = world
    sim.t = ts("2025-11-26T20:50")                       # NYSE, 10 min before the close
    stale = StaleData(led, clock, market_calendar("XNYS"))
    stale.watch("SPY")
    sim.t += 300
    assert stale.check() == []                           # exactly 5 min: not yet
    sim.t += 1
    first = stale.check()
    assert len(first) == 1 and stale.stale == {"SPY"}
    assert stale.check() == []                           # once per silence
    sim.t = ts("2025-11-26T22:00")                       # closed, then Thanksgiving: no alarm
    stale.update("SPY", ts("2025-11-26T21:00"))
    assert [r["payload"]["state"] for r in led.events()] == ["stale", "fresh"]
    sim.t = ts("2025-11-27T18:00")
    assert stale.check() == []
    sim.t = ts("2025-11-28T14:34")                       # Friday: counted from the open
    assert stale.check() == []
    sim.t = ts("2025-11-28T14:35:01")
    got = stale.check()
    assert len(got) == 1
    row = next(r for r in led.events() if r["id"] == got[0])["payload"]
    assert (row["stale_since"], row["seconds"], row["market"]) == (
        ts("2025-11-28T14:30"), 301, "XNYS")
    crypto = StaleData(led, clock, market_calendar("24/7"), threshold_seconds=60)
    sim.t = ts("2025-11-29T03:00")                       # a Saturday night: crypto trades
    crypto.watch("BTC-USD")
    sim.t += 61
    assert len(crypto.check()) == 1
    assert crypto.update("BTC-USD") is not None and crypto.stale == frozenset()


def _poll_until(watch, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = watch.poll()
        if got:
            return got
        time.sleep(0.02)
    return []


def test_folder_watch_sees_files_made_while_running_and_while_down(world, tmp_path):
    led, _, clock = world
    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "before.csv").write_text("a,b\n1,2\n")
    watch = FolderWatch(led, clock, folder, suffixes=(".csv",))
    try:
        first = watch.start()                            # the startup scan
        assert [led.events()[0]["payload"]["name"]] == ["before.csv"] and len(first) == 1
        (folder / "notes.txt").write_text("ignored")
        tmp = folder / "live.csv.part"
        tmp.write_text("a,b\n3,4\n")
        tmp.rename(folder / "live.csv")                  # write, then rename into place
        got = _poll_until(watch)
        assert [r["payload"]["name"] for r in led.events() if r["id"] in got] == ["live.csv"]
        assert watch.scan() == []                        # nothing new: same path, size, mtime
    finally:
        watch.stop()
    (folder / "while_down.csv").write_text("x\n")
    again = FolderWatch(led, clock, folder, suffixes=(".csv",))
    try:
        found = again.start()
        assert [r["payload"]["name"] for r in led.events() if r["id"] in found] == [
            "while_down.csv"]
        p = led.events()[-1]["payload"]
        assert p["size"] == 2 and p["path"] == str((folder / "while_down.csv").resolve())
    finally:
        again.stop()
    with pytest.raises(ValueError, match="not a directory"):
        FolderWatch(led, clock, tmp_path / "missing")


def test_folder_watch_waits_for_a_file_seen_only_created_to_stop_changing(world, tmp_path):
    """Without close events (macOS, the polling observer) a file counts once two polls in a
    row see the same size and mtime."""
    led, _, clock = world
    (tmp_path / "drop").mkdir()
    watch = FolderWatch(led, clock, tmp_path / "drop")      # not started: events fed by hand
    path = tmp_path / "drop" / "growing.csv"
    path.write_text("a\n")
    watch._noted.put((str(path), False))                    # what on_created notes
    assert watch.poll() == []                               # first sight
    with path.open("a") as f:
        f.write("b\n")
    watch._noted.put((str(path), False))                    # on_modified
    assert watch.poll() == []                               # changed since: still settling
    got = watch.poll()                                      # unchanged: complete
    assert len(got) == 1 and led.events()[0]["payload"]["size"] == 4
    assert watch.poll() == [] and watch.scan() == []        # once
