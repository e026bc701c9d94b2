"""Calendar-aware scheduled events, fired on the mode's clock into the durable queue.

The fire times come from APScheduler trigger objects: :class:`SessionTrigger` (a
:class:`apscheduler.triggers.base.BaseTrigger` over the sessions of an
:mod:`exchange_calendars` market calendar: holidays fire nothing, early closes fire at
their early close) and :class:`apscheduler.triggers.cron.CronTrigger` (UTC times for a
24/7 market). APScheduler's own scheduler loop is not used: it runs on the wall clock,
and the daemon runs on its mode's :class:`~tradewarden.engine.clock.Clock` (simulated in
tests, where a trading week takes a fraction of a second). Instead the daemon calls
:meth:`Scheduler.tick` with its clock's ``now`` (and may sleep until
:meth:`Scheduler.next_fire_time`); ``tick`` enqueues every fire time up to ``now`` into
the ledger's queue (``daemon_events``) with the dedupe key
``sched:<market>:<kind>:<session or week>``, so a fire time is enqueued once, ever,
whatever restarts happen.

Jobs (defaults)
---------------
=============== ============================================ ================ ========
kind            fires                                        misfire grace    coalesce
=============== ============================================ ================ ========
pre_market      30 min before each session's open            15 min           yes
market_open     each session's open                          15 min           yes
market_close    each session's close (early closes included) 15 min           yes
end_of_day      15 min after each close; 24/7: daily 00:05   12 h             yes
                UTC, keyed by the UTC day it closes
weekly_learning 60 min after the close of each ISO week's    3 days           yes
                last session; 24/7: Monday 00:30 UTC, keyed
                by the ISO week that ended
=============== ============================================ ================ ========

A 24/7 market (crypto) has no pre_market, market_open or market_close.

Misfire policy
--------------
As APScheduler's ``misfire_grace_time`` and ``coalesce``: at each tick, a fire time no
more than its job's grace before ``now`` fires (late); with ``coalesce`` only the latest
of several such fire times fires. Every other passed fire time (beyond the grace, or
coalesced away) is *recorded as missed*: enqueued under its own key with
``missed: true`` in the payload, which :class:`tradewarden.ops.events.Dispatcher`
finishes ``done`` with the note ``missed ...`` without running the handler (unless the
handler asked for missed ones). So the ledger shows every fire time exactly once, and a
restart after downtime neither fires stale events nor fires anything twice. Missed fire
times are those after the job's last fire time recorded in the ledger (its newest
``sched:<market>:<kind>:`` event), or, for a job that never fired, after the newest
fire of any job of the market (the scheduler was running then); a scheduler that has
never fired in this ledger starts at ``now``, as APScheduler does for a new job (a first
start at 09:31 New York time does not fire that day's 09:30 open).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import exchange_calendars as xcals
import numpy as np
import pandas as pd
import structlog
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import func, select

from tradewarden.ledger import schema
from tradewarden.ops.events import (
    END_OF_DAY,
    MARKET_CLOSE,
    MARKET_OPEN,
    PRE_MARKET,
    WEEKLY_LEARNING,
)

if TYPE_CHECKING:
    from tradewarden.ledger import Ledger

__all__ = ["ALWAYS_OPEN", "DEFAULT_MISFIRE", "MarketCalendar", "ScheduledJob", "Scheduler",
           "SessionTrigger", "market_calendar"]

#: The name of a market that never closes (24/7 crypto).
ALWAYS_OPEN = "24/7"
_ALWAYS_OPEN_NAMES = {ALWAYS_OPEN, "crypto", "24x7", "always"}

#: Misfire policy per job: (misfire grace time in seconds, coalesce).
DEFAULT_MISFIRE: dict[str, tuple[float, bool]] = {
    PRE_MARKET: (15 * 60, True),
    MARKET_OPEN: (15 * 60, True),
    MARKET_CLOSE: (15 * 60, True),
    END_OF_DAY: (12 * 3600, True),
    WEEKLY_LEARNING: (3 * 86400, True),
}

_EPOCH = pd.Timestamp(0, tz="UTC")
_lock = threading.Lock()
_calendars: dict[str, MarketCalendar] = {}


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class MarketCalendar:
    """A market's sessions (from :mod:`exchange_calendars`), or a market that never closes.

    Parameters
    ----------
    name : str
        An exchange-calendars name (ISO 10383 MIC such as ``"XNYS"``, ``"XLON"``), or
        ``"24/7"`` (also ``"crypto"``) for a market that is always open.
    first, last : str, default "2000-01-01", "2035-12-31"
        The span of sessions loaded (dates).

    Raises
    ------
    ValueError
        An unknown calendar name (the message names it).

    Notes
    -----
    Sessions are open from their open to their close; lunch breaks (``break_start`` /
    ``break_end`` of some Asian calendars) are counted as open.
    """

    def __init__(self, name: str, *, first: str = "2000-01-01", last: str = "2035-12-31") -> None:
        self.always_open = name in _ALWAYS_OPEN_NAMES
        self.name = ALWAYS_OPEN if self.always_open else name
        if self.always_open:
            self.labels: list[str] = []
            self.opens = self.closes = np.empty(0)
            self.early = np.empty(0, dtype=bool)
            return
        try:
            with warnings.catch_warnings():
                # exchange_calendars 4.13 reads tz-aware Series.values, which pandas 3
                # deprecates; the values are still correct (UTC).
                warnings.filterwarnings("ignore", message=r"Series\.values returning an ndarray")
                cal = xcals.get_calendar(name, start=pd.Timestamp(first), end=pd.Timestamp(last))
        except xcals.errors.InvalidCalendarName:
            raise ValueError(f"market calendar {name!r}: not an exchange_calendars name "
                             "(e.g. XNYS) nor 24/7") from None
        sched = cal.schedule
        #: Session dates, ``YYYY-MM-DD`` (the venue's local date).
        self.labels = [d.strftime("%Y-%m-%d") for d in sched.index]
        #: Session opens and closes, UTC epoch seconds (float arrays).
        self.opens = (sched["open"] - _EPOCH).dt.total_seconds().to_numpy(dtype=float)
        self.closes = (sched["close"] - _EPOCH).dt.total_seconds().to_numpy(dtype=float)
        #: Whether each session closes early.
        self.early = sched.index.isin(cal.early_closes)

    def _session_at(self, ts: float) -> int:
        return int(np.searchsorted(self.opens, ts, side="right")) - 1

    def is_open(self, ts: float) -> bool:
        """Return ``True`` when the market is in a session at ``ts`` (UTC epoch seconds),
        open inclusive, close exclusive; always ``True`` for 24/7."""
        if self.always_open:
            return True
        i = self._session_at(ts)
        return i >= 0 and ts < self.closes[i]

    def open_since(self, ts: float) -> float | None:
        """Return the open (UTC epoch seconds) of the session in progress at ``ts``, or
        ``None`` when closed or 24/7."""
        if self.always_open or not self.is_open(ts):
            return None
        return float(self.opens[self._session_at(ts)])


def market_calendar(name: str) -> MarketCalendar:
    """Return the (cached, shared) :class:`MarketCalendar` of ``name``.

    Raises
    ------
    ValueError
        An unknown calendar name.
    """
    with _lock:
        if name not in _calendars:
            _calendars[name] = MarketCalendar(name)
        return _calendars[name]


class SessionTrigger(BaseTrigger):
    """Fire at each session's open or close of a market calendar, plus an offset.

    Parameters
    ----------
    market : MarketCalendar
        Not 24/7.
    anchor : {"open", "close"}
    offset_seconds : float, default 0
        Added to the anchor (``-1800``: 30 minutes before).
    week_last : bool, default False
        Only the last session of each ISO week (the calendar's very last session is
        skipped: its week may go on past the loaded span).

    Raises
    ------
    ValueError
        A 24/7 market or an unknown anchor.
    """

    __slots__ = ("anchor", "index", "market", "offset_seconds", "times", "week_last")

    def __init__(self, market: MarketCalendar, anchor: str, offset_seconds: float = 0, *,
                 week_last: bool = False) -> None:
        if market.always_open:
            raise ValueError(f"market {market.name}: has no sessions to trigger on")
        if anchor not in ("open", "close"):
            raise ValueError(f"session anchor {anchor!r}: use open or close")
        self.market = market
        self.anchor = anchor
        self.offset_seconds = float(offset_seconds)
        self.week_last = week_last
        base = market.opens if anchor == "open" else market.closes
        index = np.arange(base.shape[0])
        if week_last:
            # Monday of each session's ISO week, in days since 1970-01-01 (a Thursday)
            days = np.array(market.labels, dtype="datetime64[D]").astype(np.int64)
            monday = days - (days + 3) % 7
            index = index[np.append(monday[1:] != monday[:-1], False)]
        #: Fire times, UTC epoch seconds (ascending), and their session indices.
        self.times = base[index] + self.offset_seconds
        self.index = index

    def get_next_fire_time(self, previous_fire_time: datetime | None,
                           now: datetime) -> datetime | None:
        """Return the first fire time after ``previous_fire_time`` (when given) or at or
        after ``now`` (when not), as an aware UTC datetime; ``None`` past the calendar."""
        if previous_fire_time is not None:
            i = int(np.searchsorted(self.times, previous_fire_time.timestamp(), side="right"))
        else:
            i = int(np.searchsorted(self.times, now.timestamp(), side="left"))
        return _utc(float(self.times[i])) if i < self.times.shape[0] else None

    def session(self, fire_ts: float) -> int:
        """Return the session index (into the market's arrays) of the fire time ``fire_ts``.

        Raises
        ------
        KeyError
            When ``fire_ts`` is not one of this trigger's fire times.
        """
        i = int(np.searchsorted(self.times, fire_ts, side="left"))
        if i >= self.times.shape[0] or self.times[i] != fire_ts:
            raise KeyError(f"{fire_ts} is not a fire time of this trigger")
        return int(self.index[i])

    def __str__(self) -> str:
        return f"session[{self.market.name} {self.anchor}{self.offset_seconds:+g}s]"


@dataclass(frozen=True)
class ScheduledJob:
    """One scheduled event kind: its trigger, its key label and payload, its misfire policy.

    Parameters
    ----------
    kind : str
        The event kind it enqueues.
    trigger : BaseTrigger
        Gives the fire times (APScheduler's contract).
    describe : callable (float) -> (str, dict)
        For a fire time (UTC epoch seconds): the label in the dedupe key (a session
        date, an ISO week) and the payload's facts.
    misfire_grace_time : float
        Seconds late a fire time may still fire.
    coalesce : bool
        Fire only the latest of several passed fire times within the grace.
    """

    kind: str
    trigger: BaseTrigger
    describe: Callable[[float], tuple[str, dict[str, Any]]]
    misfire_grace_time: float
    coalesce: bool

    def next_after(self, ts: float) -> float | None:
        """Return the first fire time strictly after ``ts``, UTC epoch seconds, or ``None``."""
        nxt = self.trigger.get_next_fire_time(None, _utc(ts) + timedelta(microseconds=1))
        return None if nxt is None else nxt.timestamp()


def _hhmm(text: str, name: str) -> tuple[int, int]:
    try:
        h, m = (int(x) for x in text.split(":"))
    except ValueError:
        h = m = -1
    if not (0 <= h < 24 and 0 <= m < 60):
        raise ValueError(f"{name} {text!r}: give HH:MM (UTC)")
    return h, m


class Scheduler:
    """Enqueue a market's scheduled events up to the clock's now, once each.

    Parameters
    ----------
    ledger : Ledger
        Holds the queue; its scheduled events say what already fired.
    market : MarketCalendar or str
        The venue's market (``"XNYS"``, ``"24/7"``).
    pre_market_minutes : float, default 30
        How long before the open ``pre_market`` fires, minutes.
    end_of_day_minutes : float, default 15
        How long after the close ``end_of_day`` fires, minutes.
    weekly_learning_minutes : float, default 60
        How long after the close of the week's last session ``weekly_learning`` fires.
    end_of_day_utc : str, default "00:05"
        24/7 markets: the UTC time (``HH:MM``) of ``end_of_day``; its ``session`` is the
        UTC day it closes (the day before for a time before 12:00).
    weekly_learning_utc : str, default "mon 00:30"
        24/7 markets: the day (``mon`` ... ``sun``) and UTC time of ``weekly_learning``.
    misfire : mapping kind -> (float, bool), optional
        Per job (grace seconds, coalesce), overriding :data:`DEFAULT_MISFIRE`.
    log : structlog logger, optional

    Raises
    ------
    ValueError
        An unknown market, a bad time or offset.
    """

    def __init__(self, ledger: Ledger, market: MarketCalendar | str, *,
                 pre_market_minutes: float = 30, end_of_day_minutes: float = 15,
                 weekly_learning_minutes: float = 60, end_of_day_utc: str = "00:05",
                 weekly_learning_utc: str = "mon 00:30",
                 misfire: Mapping[str, tuple[float, bool]] | None = None,
                 log: Any = None) -> None:
        self.ledger = ledger
        self.market = market_calendar(market) if isinstance(market, str) else market
        self.log = log if log is not None else structlog.get_logger("tradewarden.schedule")
        policy = {**DEFAULT_MISFIRE, **(misfire or {})}
        for kind, (grace, _) in policy.items():
            if not grace >= 0:
                raise ValueError(f"misfire grace of {kind} {grace!r}: give seconds >= 0")
        m = self.market
        name = m.name
        jobs: list[ScheduledJob] = []
        if m.always_open:
            h, mi = _hhmm(end_of_day_utc, "end_of_day_utc")
            day, _, hm = weekly_learning_utc.partition(" ")
            wh, wm = _hhmm(hm, "weekly_learning_utc")
            try:
                weekly = CronTrigger(day_of_week=day, hour=wh, minute=wm, timezone=UTC)
            except ValueError:
                raise ValueError(f"weekly_learning_utc {weekly_learning_utc!r}: give "
                                 "'<mon..sun> HH:MM'") from None

            def eod(ts: float) -> tuple[str, dict[str, Any]]:
                # The UTC day it closes: the fire's date, or the day before for a fire
                # before 12:00 UTC (00:05 closes the previous day).
                day_label = (_utc(ts) - timedelta(hours=12)).strftime("%Y-%m-%d")
                return day_label, {"market": name, "session": day_label}

            def week(ts: float) -> tuple[str, dict[str, Any]]:
                y, w, _ = (_utc(ts) - timedelta(days=1)).isocalendar()
                return f"{y}-W{w:02d}", {"market": name, "week": f"{y}-W{w:02d}"}

            jobs.append(ScheduledJob(END_OF_DAY, CronTrigger(hour=h, minute=mi, timezone=UTC),
                                     eod, *policy[END_OF_DAY]))
            jobs.append(ScheduledJob(WEEKLY_LEARNING, weekly, week, *policy[WEEKLY_LEARNING]))
        else:
            if not pre_market_minutes > 0 or end_of_day_minutes < 0 \
                    or weekly_learning_minutes < 0:
                raise ValueError("pre_market_minutes must be > 0, end_of_day_minutes and "
                                 "weekly_learning_minutes >= 0")

            def sessional(trigger: SessionTrigger,
                          extra: dict[str, Any]) -> Callable[[float], tuple[str, dict[str, Any]]]:
                def describe(ts: float) -> tuple[str, dict[str, Any]]:
                    i = trigger.session(ts)
                    return m.labels[i], {"market": name, "session": m.labels[i],
                                         "open": float(m.opens[i]), "close": float(m.closes[i]),
                                         "early_close": bool(m.early[i]), **extra}
                return describe

            specs = [(PRE_MARKET, SessionTrigger(m, "open", -60 * pre_market_minutes),
                      {"minutes_before_open": pre_market_minutes}),
                     (MARKET_OPEN, SessionTrigger(m, "open"), {}),
                     (MARKET_CLOSE, SessionTrigger(m, "close"), {}),
                     (END_OF_DAY, SessionTrigger(m, "close", 60 * end_of_day_minutes), {})]
            for kind, trig, extra in specs:
                jobs.append(ScheduledJob(kind, trig, sessional(trig, extra), *policy[kind]))
            wtrig = SessionTrigger(m, "close", 60 * weekly_learning_minutes, week_last=True)

            def weekly_describe(ts: float) -> tuple[str, dict[str, Any]]:
                i = wtrig.session(ts)
                y, w, _ = pd.Timestamp(m.labels[i]).isocalendar()
                return f"{y}-W{w:02d}", {"market": name, "week": f"{y}-W{w:02d}",
                                         "last_session": m.labels[i]}

            jobs.append(ScheduledJob(WEEKLY_LEARNING, wtrig, weekly_describe,
                                     *policy[WEEKLY_LEARNING]))
        #: The jobs, in the order their events are enqueued at one fire time.
        self.jobs: tuple[ScheduledJob, ...] = tuple(jobs)
        self._cursor: dict[str, float] = {}

    def key(self, kind: str, label: str) -> str:
        """Return the dedupe key of a fire: ``sched:<market>:<kind>:<label>``."""
        return f"sched:{self.market.name}:{kind}:{label}"

    def _last_fired(self, kind: str | None) -> float | None:
        """The newest fire time of job ``kind`` (``None``: of any job of this market)
        recorded in the ledger, UTC epoch seconds."""
        e = schema.daemon_events
        prefix = self.key(kind, "") if kind is not None else f"sched:{self.market.name}:"
        where = [e.c.dedupe_key.startswith(prefix, autoescape=True)]
        if kind is not None:
            where.append(e.c.kind == kind)
        with self.ledger.engine.connect() as conn:
            got = conn.execute(select(func.max(e.c.due_at)).where(*where)).scalar()
        return None if got is None else float(got)

    def tick(self, now: float) -> list[int]:
        """Enqueue every fire time up to ``now`` not handled yet, by the misfire policy.

        The first call for a job starts after its last fire recorded in the ledger (a
        restart), else after the market's last fire of any job, else at ``now``. Events are enqueued in
        fire-time order with ``due_at`` = the fire time; payloads add
        ``scheduled_at``, ``fired_at`` (= ``now``), ``late_seconds`` and ``missed``.

        Parameters
        ----------
        now : float
            The mode's clock, UTC epoch seconds.

        Returns
        -------
        list of int
            Ids of the events enqueued (missed ones included); a fire already in the
            ledger adds nothing.

        Raises
        ------
        LedgerError
            The queue cannot be read or written.
        """
        fires: list[tuple[float, int, ScheduledJob, bool]] = []
        market_last: list[float | None] = []
        for order, job in enumerate(self.jobs):
            cursor = self._cursor.get(job.kind)
            if cursor is None:
                cursor = self._last_fired(job.kind)
                if cursor is None:
                    if not market_last:
                        market_last.append(self._last_fired(None))
                    cursor = market_last[0] if market_last[0] is not None else now
            due: list[float] = []
            t = job.next_after(cursor)
            while t is not None and t <= now:
                due.append(t)
                t = job.next_after(t)
            if due:
                self._cursor[job.kind] = due[-1]
            else:
                self._cursor[job.kind] = cursor
            within = [f for f in due if now - f <= job.misfire_grace_time]
            if job.coalesce and len(within) > 1:
                within = within[-1:]
            keep = set(within)
            fires.extend((f, order, job, f not in keep) for f in due)
        out: list[int] = []
        for fire, _, job, missed in sorted(fires, key=lambda x: (x[0], x[1])):
            label, facts = job.describe(fire)
            payload = {**facts, "scheduled_at": fire, "fired_at": now,
                       "late_seconds": now - fire, "missed": missed}
            eid = self.ledger.enqueue_event(job.kind, payload, due_at=fire,
                                            dedupe_key=self.key(job.kind, label))
            if eid is None:
                continue
            out.append(eid)
            if missed:
                self.log.warning("schedule_missed", kind=job.kind, label=label,
                                 late_seconds=now - fire, grace=job.misfire_grace_time)
            else:
                self.log.info("schedule_fired", kind=job.kind, label=label,
                              late_seconds=now - fire)
        return out

    def next_fire(self, now: float) -> tuple[str, float] | None:
        """Return the next job to fire after ``now`` and its fire time.

        Call :meth:`tick` first, so nothing before ``now`` is pending.

        Parameters
        ----------
        now : float
            UTC epoch seconds.

        Returns
        -------
        tuple of (str, float) or None
            The event kind (for a heartbeat's ``"waiting for market_open"``) and its fire
            time, UTC epoch seconds; ``None`` past the calendar's loaded span.
        """
        times = [(t, job.kind) for job in self.jobs
                 if (t := job.next_after(max(now, self._cursor.get(job.kind, now)))) is not None]
        if not times:
            return None
        t, kind = min(times)
        return kind, t

    def next_fire_time(self, now: float) -> float | None:
        """Return the next fire time after ``now`` of any job, UTC epoch seconds (``None``
        past the calendar); call :meth:`tick` first so nothing before ``now`` is pending."""
        nxt = self.next_fire(now)
        return None if nxt is None else nxt[1]
