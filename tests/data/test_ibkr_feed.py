"""IbkrBarFeed: daily bars on the NYSE calendar from reqHistoricalData.

The bars are the bundled SPY file's (Yahoo, 2008-2010) around Christmas 2008: Wednesday
2008-12-24 was an early close (13:00 New York), Thursday 12-25 a holiday. A small
stand-in for ``ib_async.IB`` serves them the way TWS does: every session up to the
current one, the session in progress included (its bar is not final), and records each
request; the feed must deliver each session once, only after its bar closed (the next
midnight UTC), never wait for the holiday, and name a session TWS skipped.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from tradewarden.data.equities import bundled_equity_path, load_yahoo_daily
from tradewarden.data.errors import DataError
from tradewarden.data.ibkr_feed import DAY, IbkrBarFeed
from tradewarden.data.live_feed import FeedPoll


def _ts(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


_EPOCH = date(1970, 1, 1).toordinal()
SPY = load_yahoo_daily(bundled_equity_path("spy"), start="2008-11-01", end="2009-01-31").series


class Clock:
    def __init__(self, t: int) -> None:
        self.t = t

    def now(self) -> int:
        return self.t

    def wait_until(self, ts: int) -> None:
        self.t = max(self.t, ts)


class _Event:
    def __init__(self) -> None:
        self.handlers: list = []

    def __iadd__(self, fn):
        self.handlers.append(fn)
        return self

    def __isub__(self, fn):
        self.handlers.remove(fn)
        return self

    def emit(self, *args) -> None:
        for fn in list(self.handlers):
            fn(*args)


class _Bar:
    def __init__(self, d: date, o: float, h: float, lo: float, c: float, v: float) -> None:
        self.date, self.open, self.high, self.low, self.close, self.volume = d, o, h, lo, c, v


class _Bars(list):
    reqId = 0


class StandInIB:
    """Serves SPY's daily bars up to the clock's date (the day in progress included, with
    a made-up unfinished close), like TWS's reqHistoricalData with endDateTime=''."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.errorEvent = _Event()
        self.connected = True
        self.requests: list[tuple] = []
        self.withhold: set[int] = set()       # session labels TWS does not serve
        self._req = 0

    def isConnected(self) -> bool:
        return self.connected

    def reqHistoricalData(self, contract, end, duration, bar_size, what, rth, fmt, keep, opts, timeout):
        if not self.connected:
            raise ConnectionError("Not connected")
        self._req += 1
        self.requests.append((contract.symbol, end, duration, bar_size, what, rth))
        out = _Bars()
        out.reqId = self._req
        today = self.clock.now() // DAY * DAY
        days = int(duration.split()[0])
        for i in range(len(SPY)):
            ts = int(SPY.ts[i])
            if ts > today or ts < today - (days - 1) * DAY or ts in self.withhold:
                continue
            close = float(SPY.close[i]) if ts < today else 1.0     # in progress: not final
            out.append(_Bar(date.fromordinal(_EPOCH + ts // DAY), float(SPY.open[i]),
                            float(SPY.high[i]), float(SPY.low[i]), close, float(SPY.volume[i])))
        return out


def _labels(series) -> list[str]:
    return [datetime.fromtimestamp(int(t), UTC).date().isoformat() for t in series.ts]


def test_warmup_then_one_poll_per_closed_session_over_an_early_close_and_a_holiday() -> None:
    clock = Clock(_ts("2008-12-22T15:00:00"))      # Monday, during the session
    ib = StandInIB(clock)
    feed = IbkrBarFeed(ib, ["SPY"], clock, poll_delay=60)
    warm = feed.warmup(5)
    assert _labels(warm["SPY"]) == ["2008-12-15", "2008-12-16", "2008-12-17", "2008-12-18",
                                    "2008-12-19"]                # Monday's bar is in progress
    i = list(SPY.ts).index(_ts("2008-12-19T00:00:00"))
    assert warm["SPY"].close[-1] == pytest.approx(SPY.close[i])
    assert ib.requests[0][1:] == ("", ib.requests[0][2], "1 day", "TRADES", True)
    assert feed.next_due() == _ts("2008-12-23T00:00:00") + 60

    clock.t = _ts("2008-12-22T21:30:00")           # after the close, before midnight UTC
    early = feed.poll()
    assert early.bars == {} and early.stalled is None

    delivered: list[str] = []
    due_times: list[int] = []
    for _ in range(4):
        clock.t = int(feed.next_due())
        due_times.append(clock.t)
        got = feed.poll()
        assert got.stalled is None and got.gaps == ()
        delivered += _labels(got.bars["SPY"])
    assert delivered == ["2008-12-22", "2008-12-23", "2008-12-24", "2008-12-26"]
    # the half day 12-24 is due at the next midnight like any session; the holiday 12-25
    # is skipped: Friday's bar is the next one due, then Monday's after the weekend
    assert due_times == [_ts(d) + 60 for d in ("2008-12-23T00:00:00", "2008-12-24T00:00:00",
                                               "2008-12-25T00:00:00", "2008-12-27T00:00:00")]
    assert feed.next_due() == _ts("2008-12-30T00:00:00") + 60

    clock.t = _ts("2008-12-26T12:00:00")           # during the holiday's day after: nothing due
    assert feed.poll() == FeedPoll({}, None, ())


def test_warmup_after_the_last_decided_session_then_catch_up_in_order() -> None:
    clock = Clock(_ts("2008-12-30T01:00:00"))
    ib = StandInIB(clock)
    feed = IbkrBarFeed(ib, ["SPY"], clock, adjusted=True)
    warm = feed.warmup(3, after=_ts("2008-12-23T00:00:00"))
    assert _labels(warm["SPY"]) == ["2008-12-19", "2008-12-22", "2008-12-23"]
    assert {r[4] for r in ib.requests} == {"ADJUSTED_LAST"}
    assert feed.next_due() <= clock.t               # behind: poll now
    got = feed.poll()
    assert _labels(got.bars["SPY"]) == ["2008-12-24", "2008-12-26", "2008-12-29"]
    assert feed.poll().bars == {}                   # none twice
    with pytest.raises(ValueError, match="not an NYSE session"):
        feed.warmup(3, after=_ts("2008-12-25T00:00:00"))
    with pytest.raises(ValueError, match="not closed"):
        feed.warmup(3, after=_ts("2008-12-30T00:00:00"))


def test_a_session_tws_skips_is_a_gap_a_missing_newest_one_a_stall() -> None:
    clock = Clock(_ts("2008-12-19T12:00:00"))
    ib = StandInIB(clock)
    feed = IbkrBarFeed(ib, ["SPY"], clock, stall_after=3600, retry_every=300)
    feed.warmup(2)
    ib.withhold = {_ts("2008-12-22T00:00:00")}     # TWS serves the 23rd but not the 22nd
    clock.t = _ts("2008-12-24T00:05:00")
    got = feed.poll()
    assert _labels(got.bars["SPY"]) == ["2008-12-19", "2008-12-23"]
    assert len(got.gaps) == 1 and "2008-12-22" in got.gaps[0]
    ib.withhold = {_ts("2008-12-24T00:00:00")}     # the newest session missing: wait, then stall
    clock.t = _ts("2008-12-25T00:30:00")
    first = feed.poll()
    assert first.bars == {} and first.stalled is None
    assert feed.next_due() == clock.t + 300
    clock.t = _ts("2008-12-25T01:30:00")
    late = feed.poll()
    assert late.stalled is not None and "SPY: no closed daily bar since 2008-12-23" in late.stalled


def test_tws_unreachable_is_a_stall_reason_and_a_data_error_at_warmup() -> None:
    clock = Clock(_ts("2008-12-22T15:00:00"))
    ib = StandInIB(clock)
    ib.connected = False
    with pytest.raises(DataError, match="ibkr SPY 1 day TRADES"):
        IbkrBarFeed(ib, ["SPY"], clock).warmup(5)
    ib.connected = True
    feed = IbkrBarFeed(ib, ["SPY"], clock)
    feed.warmup(5)
    ib.connected = False
    clock.t = _ts("2008-12-23T00:05:00")
    got = feed.poll()
    assert got.bars == {} and got.stalled.startswith("ibkr unreachable: ibkr SPY")
    ib.connected = True
    clock.t = int(feed.next_due())
    assert _labels(feed.poll().bars["SPY"]) == ["2008-12-22"]


def test_the_real_client_against_the_fake_tws_over_christmas_2008() -> None:
    """The same walk with ib_async talking to the loopback fake TWS (tests/execution/ibkr)."""
    import sys
    from pathlib import Path

    from ib_async import IB

    sys.path.insert(0, str(Path(__file__).parents[1] / "execution" / "ibkr"))
    from fake_tws import FakeTws

    clock = Clock(_ts("2008-12-22T15:00:00"))
    tws = FakeTws(clock=clock.now)
    tws.set_bars("SPY", [(date.fromordinal(_EPOCH + int(t) // DAY), o, h, lo, c, v) for t, o, h, lo, c, v
                         in zip(SPY.ts, SPY.open, SPY.high, SPY.low, SPY.close, SPY.volume)])
    tws.start()
    ib = IB()
    try:
        ib.connect("127.0.0.1", tws.port, clientId=3, timeout=3)
        feed = IbkrBarFeed(ib, ["SPY"], clock)
        warm = feed.warmup(3)
        assert _labels(warm["SPY"]) == ["2008-12-17", "2008-12-18", "2008-12-19"]
        delivered = []
        for _ in range(3):
            clock.t = int(feed.next_due())
            got = feed.poll()
            assert got.stalled is None and got.gaps == ()
            delivered += _labels(got.bars["SPY"])
        assert delivered == ["2008-12-22", "2008-12-23", "2008-12-24"]
        assert feed.next_due() == _ts("2008-12-27T00:00:00") + 60    # 12-25 is no session
        with pytest.raises(DataError, match="ibkr NOPE 1 day TRADES: error 200: No security"):
            IbkrBarFeed(ib, ["NOPE"], clock).warmup(2)
    finally:
        ib.disconnect()
        tws.stop()
    assert tws.protocol_errors == []
