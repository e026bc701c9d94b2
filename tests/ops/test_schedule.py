"""Calendar-aware scheduled events on a simulated clock: an NYSE Thanksgiving week, a
restart after two days down, and a 24/7 crypto market."""

from __future__ import annotations

import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from apscheduler.triggers.base import BaseTrigger

from tradewarden.engine.clock import WallClock
from tradewarden.ledger import Ledger
from tradewarden.ops.events import Dispatcher
from tradewarden.ops.schedule import (
    MarketCalendar,
    Scheduler,
    SessionTrigger,
    market_calendar,
)

sys.path.insert(0, str(Path(__file__).parent))
from paper_support import SimTime

KINDS = ("pre_market", "market_open", "market_close", "end_of_day", "weekly_learning")


def ts(text: str) -> float:
    """UTC epoch seconds of an ISO time written in UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.fixture(scope="module")
def blank_ledger(tmp_path_factory):
    path = tmp_path_factory.mktemp("blank") / "ledger.db"
    Ledger(path).close()
    return path


@pytest.fixture
def ledger(blank_ledger, tmp_path):
    path = tmp_path / "ledger.db"
    shutil.copy(blank_ledger, path)
    led = Ledger(path)
    yield led
    led.close()


class Daemon:
    """The daemon's loop in miniature: tick the scheduler, dispatch, sleep on the clock
    until the next fire time (at most ``step`` seconds)."""

    def __init__(self, ledger, sim, scheduler, step=6 * 3600):
        self.sim, self.scheduler, self.step = sim, scheduler, step
        self.clock = WallClock(sim.time, sim.sleep)
        self.seen = []
        self.dispatcher = Dispatcher(ledger, self.clock, "w:1")
        for kind in KINDS:
            self.dispatcher.register(kind, self.handle)

    def handle(self, event):
        p = event.payload
        self.seen.append((event.kind, p.get("session") or p.get("week"), self.clock.now(),
                          p["scheduled_at"]))

    def run_until(self, end):
        while self.clock.now() < end:
            now = self.clock.now()
            self.scheduler.tick(now)
            self.dispatcher.run_pending()
            nxt = self.scheduler.next_fire_time(now)
            self.clock.wait_until(min(end, now + self.step, nxt if nxt is not None else end))
        self.scheduler.tick(self.clock.now())
        self.dispatcher.run_pending()


def expected_nyse_week():
    out = []
    for day, close in (("2025-11-24", "21:00"), ("2025-11-25", "21:00"),
                       ("2025-11-26", "21:00"), ("2025-11-28", "18:00")):   # 27th: Thanksgiving
        eod = "21:15" if close == "21:00" else "18:15"
        out += [("pre_market", day, ts(f"{day}T14:00")), ("market_open", day, ts(f"{day}T14:30")),
                ("market_close", day, ts(f"{day}T{close}")), ("end_of_day", day, ts(f"{day}T{eod}"))]
    out.append(("weekly_learning", "2025-W48", ts("2025-11-28T19:00")))  # after the early close
    return out


def test_an_nyse_thanksgiving_week_fires_each_event_once_in_order_on_a_simulated_clock(ledger):
    sim = SimTime(ts("2025-11-23T00:00"))
    d = Daemon(ledger, sim, Scheduler(ledger, "XNYS"))
    d.run_until(ts("2025-12-01T00:00"))
    assert [(k, label, at) for k, label, at, _ in d.seen] == expected_nyse_week()
    # each handled when due: the loop sleeps until the next fire time, not past it
    assert all(now == at for _, _, now, at in d.seen)
    rows = ledger.events()
    assert {r["status"] for r in rows} == {"done"} and len(rows) == len(d.seen)
    fri = next(r["payload"] for r in rows if r["payload"].get("session") == "2025-11-28"
           and r["kind"] == "market_close")
    assert fri["early_close"] is True and fri["close"] == ts("2025-11-28T18:00")
    assert not any("2025-11-27" in (r["dedupe_key"]) for r in rows)
    # ticking again, or a second scheduler on the same ledger, adds nothing
    assert Scheduler(ledger, "XNYS").tick(sim.t) == [] and d.scheduler.tick(sim.t) == []


def test_a_restart_after_two_days_down_fires_nothing_twice_and_records_misfires(ledger):
    sim = SimTime(ts("2025-11-24T00:00"))
    first = Daemon(ledger, sim, Scheduler(ledger, "XNYS"))
    first.run_until(ts("2025-11-24T22:00"))                  # Monday done, then it dies
    assert [k for k, *_ in first.seen] == ["pre_market", "market_open", "market_close",
                                           "end_of_day"]
    sim.t = ts("2025-11-26T22:00")                            # two days later, a new process
    again = Daemon(ledger, sim, Scheduler(ledger, "XNYS"))
    ids = again.scheduler.tick(sim.t)
    rows = {r["id"]: r for r in ledger.events()}
    got = [(rows[i]["kind"], rows[i]["payload"]["session"], rows[i]["payload"]["missed"])
           for i in ids]
    # Tuesday's four and Wednesday's open and close are beyond their grace: recorded as
    # missed; Wednesday's end of day (21:15, 45 min ago, grace 12 h) fires late
    assert got == [("pre_market", "2025-11-25", True), ("market_open", "2025-11-25", True),
                   ("market_close", "2025-11-25", True), ("end_of_day", "2025-11-25", True),
                   ("pre_market", "2025-11-26", True), ("market_open", "2025-11-26", True),
                   ("market_close", "2025-11-26", True), ("end_of_day", "2025-11-26", False)]
    again.run_until(ts("2025-12-01T00:00"))
    assert [(k, label) for k, label, *_ in again.seen] == [
        ("end_of_day", "2025-11-26"), ("pre_market", "2025-11-28"), ("market_open", "2025-11-28"),
        ("market_close", "2025-11-28"), ("end_of_day", "2025-11-28"),
        ("weekly_learning", "2025-W48")]
    late = again.seen[0]
    assert late[2] - late[3] == 45 * 60                     # handled 45 min after its time
    rows = ledger.events()
    keys = [r["dedupe_key"] for r in rows]
    assert len(keys) == len(set(keys)) == 4 + 8 + 5          # every fire time once, ever
    missed = [r for r in rows if r["payload"]["missed"]]
    assert len(missed) == 7 and all(r["status"] == "done" and r["error"].startswith("missed")
                                    for r in missed)


def test_coalesce_fires_only_the_latest_fire_time_within_the_grace(ledger):
    policy = {"market_open": (3 * 86400, True), "pre_market": (3 * 86400, False)}
    for kind, at in (("market_open", "14:30"), ("pre_market", "14:00")):   # last fired Friday
        ledger.enqueue_event(kind, {}, due_at=ts(f"2025-11-21T{at}"),
                             dedupe_key=f"sched:XNYS:{kind}:2025-11-21")
    ids = Scheduler(ledger, "XNYS", misfire=policy).tick(ts("2025-11-26T15:00"))
    rows = {r["id"]: r for r in ledger.events()}
    got = [(rows[i]["kind"], rows[i]["payload"]["session"], rows[i]["payload"]["missed"])
           for i in ids if rows[i]["kind"] in policy]
    assert got == [("pre_market", "2025-11-24", False), ("market_open", "2025-11-24", True),
                   ("pre_market", "2025-11-25", False), ("market_open", "2025-11-25", True),
                   ("pre_market", "2025-11-26", False), ("market_open", "2025-11-26", False)]


def test_a_24_7_market_has_no_sessions_but_an_end_of_day_and_a_weekly_learning(ledger):
    sim = SimTime(ts("2025-11-23T12:00"))
    d = Daemon(ledger, sim, Scheduler(ledger, "24/7", end_of_day_utc="00:05"))
    d.run_until(ts("2025-12-02T12:00"))
    assert {k for k, *_ in d.seen} == {"end_of_day", "weekly_learning"}
    eods = [(label, at) for k, label, at, _ in d.seen if k == "end_of_day"]
    assert eods == [(f"2025-11-{day}", ts(f"2025-11-{day + 1}T00:05")) for day in range(23, 30)] + [
        ("2025-11-30", ts("2025-12-01T00:05")), ("2025-12-01", ts("2025-12-02T00:05"))]
    assert [(label, at) for k, label, at, _ in d.seen if k == "weekly_learning"] == [
        ("2025-W47", ts("2025-11-24T00:30")),                 # Mondays after the weeks end
        ("2025-W48", ts("2025-12-01T00:30"))]


def test_the_market_calendar_knows_holidays_early_closes_and_24_7():
    nyse = market_calendar("XNYS")
    assert market_calendar("XNYS") is nyse
    assert nyse.is_open(ts("2025-11-28T17:59")) and not nyse.is_open(ts("2025-11-28T18:00"))
    assert not nyse.is_open(ts("2025-11-27T16:00"))                      # Thanksgiving
    assert nyse.is_open(ts("2025-11-26T14:30")) and not nyse.is_open(ts("2025-11-26T14:29"))
    assert nyse.open_since(ts("2025-11-26T16:00")) == ts("2025-11-26T14:30")
    assert nyse.open_since(ts("2025-11-26T22:00")) is None
    crypto = MarketCalendar("crypto")
    assert crypto.name == "24/7" and crypto.is_open(ts("2025-11-27T03:00"))
    assert crypto.open_since(ts("2025-11-27T03:00")) is None
    with pytest.raises(ValueError, match="market calendar 'XNOPE': not an exchange_calendars"):
        MarketCalendar("XNOPE")
    with pytest.raises(ValueError, match="has no sessions"):
        SessionTrigger(crypto, "open")


def test_the_session_trigger_keeps_apschedulers_trigger_contract():
    trig = SessionTrigger(market_calendar("XNYS"), "close", week_last=True)
    assert isinstance(trig, BaseTrigger)
    wed = datetime(2025, 11, 26, 12, tzinfo=UTC)
    first = trig.get_next_fire_time(None, wed)
    assert first == datetime(2025, 11, 28, 18, tzinfo=UTC)               # the week's last close
    assert trig.get_next_fire_time(None, first) == first                # at or after now
    assert trig.get_next_fire_time(first, first) == datetime(2025, 12, 5, 21, tzinfo=UTC)
    assert Scheduler(None, "XNYS").next_fire(ts("2025-11-27T12:00")) == (
        "pre_market", ts("2025-11-28T14:00"))                           # Thanksgiving: Friday's
    with pytest.raises(ValueError, match="pre_market_minutes"):
        Scheduler(None, "XNYS", pre_market_minutes=0)
    with pytest.raises(ValueError, match="end_of_day_utc '25:00'"):
        Scheduler(None, "24/7", end_of_day_utc="25:00")
