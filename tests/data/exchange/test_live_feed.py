"""LiveCandleFeed against the loopback HTTPS fake venue, through the real ccxt client.

Simulated time: one controllable clock (``SimTime``) is shared by the feed (as a
``WallClock(time_fn, sleep_fn)``, so its retry backoff moves simulated time) and by the
fake venue (its ``now``), so candles appear as simulated time passes and a simulated day
takes a fraction of a second. Every connection is to 127.0.0.1 (the conftest's guard
refuses others); the client verifies the fake's certificate through REQUESTS_CA_BUNDLE.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import ccxt
import certifi
import numpy as np
import pytest
import requests
from fake_exchange_server import HOUR, FakeVenue, source_rows, ts_of

from tradewarden.data.download import create_venue_client
from tradewarden.data.errors import DataError
from tradewarden.data.live_feed import FeedPoll, LiveCandleFeed
from tradewarden.domain.values import iso
from tradewarden.engine.clock import WallClock

SYMBOLS = ["BTC-USD", "ETH-USD"]
COLS = ("ts", "open", "high", "low", "close", "volume")
VENUES = ["coinbase", "kraken"]
_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
               "all_proxy")


class SimTime:
    """A controllable clock: ``time()`` reads it, ``sleep(s)`` moves it forward."""

    def __init__(self, start: float) -> None:
        self.t = float(start)
        self.slept: list[float] = []

    def time(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


class Live:
    """A started TLS fake venue, a real ccxt client trusting it, and the shared clock."""

    def __init__(self, server: FakeVenue, sim: SimTime, exchange) -> None:
        self.server, self.sim, self.exchange = server, sim, exchange
        self.clock = WallClock(sim.time, sim.sleep)

    def feed(self, **kw) -> LiveCandleFeed:
        return LiveCandleFeed(self.exchange, kw.pop("symbols", SYMBOLS), kw.pop("timeframe", "1h"),
                              self.clock, venue=self.server.venue, **kw)

    def wait_due(self, feed: LiveCandleFeed) -> None:
        self.clock.wait_until(int(math.ceil(feed.next_due())))


@pytest.fixture
def live(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Live]]:
    """``live("coinbase", "2026-05-01T10:30:00", outage=...)`` -> a :class:`Live`."""
    started: list[FakeVenue] = []
    for name in _PROXY_VARS:                  # requests_trust_env also reads proxy variables
        monkeypatch.delenv(name, raising=False)

    def start(venue: str, at: str, **kw) -> Live:
        sim = SimTime(ts_of(at))
        server = FakeVenue(venue, sim.time, tls=True, **kw).start()
        started.append(server)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", server.ca_bundle)
        exchange = create_venue_client(venue, api_url=server.base_url,
                                       config={"timeout": 5000, "rateLimit": 1})
        return Live(server, sim, exchange)

    yield start
    for server in started:
        server.stop()


def bundled(symbol: str, lo: int, hi: int) -> dict[str, np.ndarray]:
    """The bundled candles of ``symbol`` with ``lo <= ts < hi``."""
    src = source_rows(symbol)
    keep = (src["ts"] >= lo) & (src["ts"] < hi)
    return {c: src[c][keep] for c in COLS}


def assert_series_equals_bundled(series, symbol: str, lo: int, hi: int) -> None:
    want = bundled(symbol, lo, hi)
    assert series.symbol == symbol and series.timeframe == "1h"
    np.testing.assert_array_equal(series.ts, want["ts"])
    for c in COLS[1:]:
        np.testing.assert_array_equal(getattr(series, c), want[c], err_msg=c)


def concat(polls: list[FeedPoll], symbol: str) -> dict[str, np.ndarray]:
    parts = [p.bars[symbol] for p in polls if symbol in p.bars]
    return {c: np.concatenate([getattr(s, c) for s in parts]) for c in COLS}


# ---------------------------------------------------------------------------------------
# the client factory


def test_create_venue_client_points_every_api_group_and_trusts_the_environment():
    coinbase = create_venue_client("Coinbase", api_url="https://127.0.0.1:8443/")
    assert coinbase.urls["api"] == {"rest": "https://127.0.0.1:8443"}
    assert coinbase.session.trust_env is True and coinbase.enableRateLimit is True
    kraken = create_venue_client("kraken", api_url="https://127.0.0.1:9000")
    assert kraken.urls["api"]["public"] == kraken.urls["api"]["private"] == "https://127.0.0.1:9000"
    binance = create_venue_client("binance", api_url="http://127.0.0.1:1/proxy")
    assert binance.urls["api"]["public"] == "http://127.0.0.1:1/proxy/api/v3"
    assert binance.urls["api"]["sapi"] == "http://127.0.0.1:1/proxy/sapi/v1"
    assert all(v.startswith("http://127.0.0.1:1/proxy/") for v in binance.urls["api"].values())
    untouched = create_venue_client("kraken")
    assert untouched.urls["api"]["public"] == "https://api.kraken.com"


def test_create_venue_client_refuses_a_bad_name_or_url():
    with pytest.raises(ValueError, match=r"unknown venue 'coinbasepro': not a ccxt exchange id "
                                         r"\(ccxt ids are lower-case names such as coinbase"):
        create_venue_client("coinbasepro")
    with pytest.raises(ValueError, match=r"invalid api_url 'ftp://127.0.0.1'"):
        create_venue_client("kraken", api_url="ftp://127.0.0.1")


# ---------------------------------------------------------------------------------------
# TLS


def test_the_real_client_verifies_the_fakes_certificate_through_requests_ca_bundle(
        live, monkeypatch):
    lv = live("coinbase", "2026-05-01T10:30:00")
    assert lv.server.base_url.startswith("https://127.0.0.1:")
    markets = lv.exchange.load_markets()
    assert {"BTC/USD", "ETH/USD"} <= set(markets)
    assert lv.server.tls_failures == 0

    # without trusting the test CA (the public roots only) the handshake is refused
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    stranger = create_venue_client("coinbase", api_url=lv.server.base_url,
                                   config={"timeout": 5000})
    with pytest.raises(ccxt.NetworkError) as refused:
        stranger.load_markets()
    assert isinstance(refused.value.__cause__, requests.exceptions.SSLError)
    assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value.__cause__)
    # ccxt's default (trust_env off) ignores REQUESTS_CA_BUNDLE even when it names the CA
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", lv.server.ca_bundle)
    deaf = create_venue_client("coinbase", api_url=lv.server.base_url,
                               config={"timeout": 5000, "requests_trust_env": False})
    with pytest.raises(ccxt.NetworkError) as refused:
        deaf.load_markets()
    assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value.__cause__)
    # the feed, on an untrusting client, says why in its one line
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    feed = LiveCandleFeed(create_venue_client("coinbase", api_url=lv.server.base_url),
                          SYMBOLS, "1h", lv.clock, venue="coinbase")
    with pytest.raises(DataError, match=r"^coinbase 1h warm-up: coinbase unreachable: NetworkError: "
                                        r"coinbase GET https://127\.0\.0\.1:\d+/v2/currencies "
                                        r"\(SSLError: .*CERTIFICATE_VERIFY_FAILED"):
        feed.warmup(3)


# ---------------------------------------------------------------------------------------
# warm-up and closed candles


@pytest.mark.parametrize("venue", VENUES)
def test_warmup_returns_the_last_closed_candles_never_the_one_in_progress(live, venue):
    lv = live(venue, "2026-05-01T10:30:00")
    t10 = ts_of("2026-05-01T10:00:00")
    # the venue does serve the 10:00 candle, half-way: its close is not the bundled one
    served = lv.exchange.fetch_ohlcv("BTC/USD", "1h", (t10 - 2 * HOUR) * 1000, 3,
                                     {"until": (t10 + HOUR) * 1000} if venue == "coinbase" else {})
    partial = [c for c in served if c[0] == t10 * 1000]
    final = bundled("BTC-USD", t10, t10 + HOUR)
    assert len(partial) == 1 and partial[0][4] != final["close"][0]
    assert partial[0][1] == final["open"][0] and partial[0][5] == pytest.approx(final["volume"][0] / 2)

    feed = lv.feed()
    history = feed.warmup(48)
    for sym in SYMBOLS:
        assert len(history[sym]) == 48
        assert_series_equals_bundled(history[sym], sym, t10 - 48 * HOUR, t10)
        assert history[sym].source == f"live:{venue}/{sym}/1h"
    assert feed.next_due() == t10 + HOUR + 2.0          # 10:00 closes at 11:00, + poll_delay

    lv.sim.t = t10 + HOUR - 1                          # 10:59:59: still in progress
    assert feed.poll() == FeedPoll({}, None, ())
    lv.wait_due(feed)                                  # 11:00:02
    got = feed.poll()
    assert got.stalled is None and got.gaps == ()
    for sym in SYMBOLS:
        assert_series_equals_bundled(got.bars[sym], sym, t10, t10 + HOUR)   # final values
    assert feed.poll().bars == {}                     # none twice
    assert feed.next_due() == t10 + 2 * HOUR + 2.0


@pytest.mark.parametrize("venue", VENUES)
def test_warmup_after_a_processed_bar_then_poll_returns_everything_after_it(live, venue):
    lv = live(venue, "2026-05-01T10:30:00")
    t10 = ts_of("2026-05-01T10:00:00")
    after = t10 - 400 * HOUR                          # the deployment stopped 400 bars ago
    feed = lv.feed()
    history = feed.warmup(24, after=after)
    for sym in SYMBOLS:
        assert_series_equals_bundled(history[sym], sym, after - 23 * HOUR, after + HOUR)
    assert feed.next_due() == after + 2 * HOUR + 2.0   # in the past: poll at once
    got = feed.poll()
    assert got.stalled is None and got.gaps == ()
    for sym in SYMBOLS:
        assert len(got.bars[sym]) == 399               # every closed bar after it, paginated
        assert_series_equals_bundled(got.bars[sym], sym, after + HOUR, t10)
    assert feed.poll().bars == {}
    assert feed.next_due() == t10 + HOUR + 2.0
    if venue == "coinbase":                            # 300-candle pages
        assert len(lv.server.candle_log) == 2 * 2


def test_warmup_refuses_an_after_that_is_off_grid_or_not_closed(live):
    lv = live("coinbase", "2026-05-01T10:30:00")
    feed = lv.feed()
    with pytest.raises(ValueError, match=r"after=.*is not a 1h bar open time"):
        feed.warmup(5, after=ts_of("2026-05-01T08:30:00"))
    with pytest.raises(ValueError, match=r"that 1h bar is not closed at 2026-05-01T10:30:00Z"):
        feed.warmup(5, after=ts_of("2026-05-01T10:00:00"))
    with pytest.raises(RuntimeError, match="call warmup"):
        feed.poll()
    with pytest.raises(ValueError, match="kraken does not offer 7m candles"):
        LiveCandleFeed(create_venue_client("kraken"), SYMBOLS, "7m", lv.clock, venue="kraken")


def test_kraken_serves_only_its_latest_720_candles_and_the_gap_says_so(live):
    lv = live("kraken", "2026-05-01T10:30:00")
    t10 = ts_of("2026-05-01T10:00:00")
    feed = lv.feed(symbols=["BTC-USD"])
    history = feed.warmup(10, after=t10 - 800 * HOUR)
    assert len(history["BTC-USD"]) == 0                # older than Kraken's OHLC window
    got = feed.poll()
    first = t10 - 719 * HOUR                           # the oldest of the latest 720 entries
    assert_series_equals_bundled(got.bars["BTC-USD"], "BTC-USD", first, t10)
    assert got.gaps == (
        f"BTC-USD: kraken has no 1h candle from {iso(t10 - 799 * HOUR)} to "
        f"{iso(t10 - 720 * HOUR)} (80 slots) although it serves later ones; skipped, not "
        "waited for (older than the venue's latest 720 candles)",)
    assert iso(t10 - 799 * HOUR) == "2026-03-29T03:00:00Z"


# ---------------------------------------------------------------------------------------
# a simulated day


@pytest.mark.parametrize("venue", VENUES)
def test_a_simulated_day_delivers_every_candle_once_at_its_close(live, venue):
    lv = live(venue, "2026-05-01T00:00:20")
    start = ts_of("2026-05-01T00:00:00")
    feed = lv.feed()
    feed.warmup(10)
    polls, due_times = [], []
    while lv.sim.t < start + 24 * HOUR:
        lv.wait_due(feed)
        due_times.append(lv.clock.now())
        polls.append(feed.poll())
    assert len(polls) == 24                            # one poll per candle, none wasted
    assert due_times == [start + k * HOUR + 2 for k in range(1, 25)]
    assert all(p.stalled is None and p.gaps == () for p in polls)
    assert all(len(p.bars[s]) == 1 for p in polls for s in SYMBOLS)
    for sym in SYMBOLS:
        got = concat(polls, sym)
        want = bundled(sym, start, start + 24 * HOUR)
        assert len(got["ts"]) == 24 == len(np.unique(got["ts"]))
        for c in COLS:
            np.testing.assert_array_equal(got[c], want[c], err_msg=c)
    # BTC-USD's 2026-05-01T12:00Z candle, as bundled
    noon = polls[12].bars["BTC-USD"]
    assert noon.ts[0] == ts_of("2026-05-01T12:00:00") and noon.close[0] == bundled(
        "BTC-USD", noon.ts[0], noon.ts[0] + HOUR)["close"][0]
    assert lv.sim.t == start + 24 * HOUR + 2          # time moved only through the clock


# ---------------------------------------------------------------------------------------
# gaps, stalls, outages


def test_a_missing_candle_with_a_later_one_served_is_a_gap_not_a_stall(live):
    lv = live("coinbase", "2026-05-01T10:30:00")
    t10 = ts_of("2026-05-01T10:00:00")
    lv.server.drop = {t10}                             # no trades from 10:00 to 11:00
    feed = lv.feed()
    feed.warmup(5)
    lv.wait_due(feed)                                  # 11:00:02: 10:00 absent, 11:00 served
    first = feed.poll()
    assert first == FeedPoll({}, None, ())
    assert feed.next_due() == t10 + 2 * HOUR + 2.0     # not re-polled: nothing to wait for
    lv.wait_due(feed)
    second = feed.poll()
    for sym in SYMBOLS:
        assert_series_equals_bundled(second.bars[sym], sym, t10 + HOUR, t10 + 2 * HOUR)
    assert second.stalled is None
    assert second.gaps == tuple(
        f"{s}: coinbase has no 1h candle from 2026-05-01T10:00:00Z to 2026-05-01T10:00:00Z "
        "(1 slot) although it serves later ones; skipped, not waited for" for s in SYMBOLS)


def test_a_late_candle_is_repolled_then_reported_stalled_then_delivered(live):
    lv = live("coinbase", "2026-05-01T11:30:00")
    t11 = ts_of("2026-05-01T11:00:00")
    feed = lv.feed(retry_every=64)
    feed.warmup(3)                                     # through 10:00
    lv.server.drop = {t11, t11 + HOUR}                 # 11:00 not published; 12:00 neither
    lv.wait_due(feed)                                  # 12:00:02
    assert feed.poll() == FeedPoll({}, None, ())       # 2 s late: not stalled yet
    assert feed.next_due() == t11 + HOUR + 2 + 64
    lv.wait_due(feed)                                  # 12:01:06: 66 s
    assert feed.poll().stalled is None
    lv.wait_due(feed)                                  # 12:02:10: 130 s > 120 s
    late = feed.poll()
    assert late.bars == {}
    assert late.stalled == ("BTC-USD: no closed 1h candle since 2026-05-01T10:00:00Z, 130 s "
                            "past due; ETH-USD: no closed 1h candle since "
                            "2026-05-01T10:00:00Z, 130 s past due")
    lv.server.drop = set()                             # the venue publishes it
    lv.wait_due(feed)
    back = feed.poll()
    assert back.stalled is None
    for sym in SYMBOLS:
        assert_series_equals_bundled(back.bars[sym], sym, t11, t11 + HOUR)


def test_a_symbol_is_held_back_until_every_symbol_has_that_candle(live):
    lv = live("coinbase", "2026-05-01T11:30:00")
    t11 = ts_of("2026-05-01T11:00:00")
    feed = lv.feed(retry_every=30)
    feed.warmup(3)                                     # through 10:00
    lv.server.drop = {("ETH-USD", t11), ("ETH-USD", t11 + HOUR)}   # ETH's 11:00 is late
    lv.wait_due(feed)                                  # 12:00:02
    held = feed.poll()
    assert held == FeedPoll({}, None, ())              # BTC's 11:00 waits for ETH's
    assert feed.next_due() == t11 + HOUR + 2 + 30
    lv.server.drop = set()
    lv.wait_due(feed)
    both = feed.poll()
    for sym in SYMBOLS:                                # BTC's 11:00 once, with ETH's
        assert_series_equals_bundled(both.bars[sym], sym, t11, t11 + HOUR)
    # ETH's 12:00 never comes, but its 13:00 does: BTC's 12:00 is not held for a gap
    lv.server.drop = {("ETH-USD", t11 + HOUR)}
    lv.wait_due(feed)                                  # 13:00:02
    gap = feed.poll()
    assert set(gap.bars) == {"BTC-USD"} and gap.stalled is None
    assert_series_equals_bundled(gap.bars["BTC-USD"], "BTC-USD", t11 + HOUR, t11 + 2 * HOUR)


@pytest.mark.parametrize("venue", VENUES)
def test_an_outage_is_reported_stalled_then_every_missed_candle_arrives_once(live, venue):
    t10 = ts_of("2026-05-01T10:00:00")
    lv = live(venue, "2026-05-01T09:00:30", outage=(t10, t10 + 3 * HOUR + 1800))
    feed = lv.feed(retry_every=900)
    feed.warmup(5)                                     # through 08:00
    polls = []
    while lv.sim.t < t10 + 6 * HOUR:
        lv.wait_due(feed)
        polls.append((lv.clock.now(), feed.poll()))
    # 10:00:02: the candle request fails 1 + 3 retries, backing off 1, 2, 4 s on the clock
    at, first_failure = next((t, p) for t, p in polls if p.stalled)
    assert at == t10 + 2
    assert first_failure.stalled.startswith(f"{venue} unreachable: ExchangeNotAvailable: ")
    assert "\n" not in first_failure.stalled and first_failure.bars == {}
    failed = [t for t, p in polls if p.stalled]
    assert failed[1] == at + 7 + 900                   # retried retry_every after that poll
    assert all(t10 <= t < t10 + 3 * HOUR + 1800 for t in failed)
    # the first poll after the outage delivers 09:00 to 12:00, in order, then one a bar
    recovered = [(t, p) for t, p in polls if t >= t10 + 3 * HOUR + 1800]
    assert recovered[0][1].stalled is None
    assert list(recovered[0][1].bars["BTC-USD"].ts) == [t10 + k * HOUR for k in range(-1, 3)]
    for sym in SYMBOLS:
        got = concat([p for _, p in polls], sym)
        want = bundled(sym, t10 - HOUR, t10 + 6 * HOUR)
        assert len(got["ts"]) == 7 == len(np.unique(got["ts"]))   # no gap, no duplicate
        for c in COLS:
            np.testing.assert_array_equal(got[c], want[c], err_msg=c)


def test_the_bundled_venue_gap_is_a_stall_until_a_later_candle_appears(live):
    # The bundled data has no candle from 2026-05-08T02:00Z to 06:00Z (a Coinbase outage):
    # nothing, not even a candle in progress, says the venue moved on until 07:00.
    lv = live("coinbase", "2026-05-08T00:30:00")
    t1 = ts_of("2026-05-08T01:00:00")
    feed = lv.feed(retry_every=1800)
    feed.warmup(4)
    polls = []
    while lv.sim.t < ts_of("2026-05-08T09:00:00"):
        lv.wait_due(feed)
        polls.append((lv.clock.now(), feed.poll()))
    stalls = [(t, p.stalled) for t, p in polls if p.stalled]
    assert stalls[0] == (ts_of("2026-05-08T03:30:02"),
                         "BTC-USD: no closed 1h candle since 2026-05-08T01:00:00Z, 1802 s past "
                         "due; ETH-USD: no closed 1h candle since 2026-05-08T01:00:00Z, 1802 s "
                         "past due")
    assert all(t < ts_of("2026-05-08T07:00:00") for t, _ in stalls)
    delivered = concat([p for _, p in polls], "BTC-USD")["ts"].tolist()
    assert delivered == [t1 - HOUR, t1, ts_of("2026-05-08T07:00:00"),
                         ts_of("2026-05-08T08:00:00")]
    gap_poll = next(p for _, p in polls if p.gaps)
    assert gap_poll.gaps[0] == ("BTC-USD: coinbase has no 1h candle from 2026-05-08T02:00:00Z "
                                "to 2026-05-08T06:00:00Z (5 slots) although it serves later "
                                "ones; skipped, not waited for")


def test_warmup_with_the_venue_down_fails_with_one_line(live):
    lv = live("kraken", "2026-05-01T10:30:00", outage=(0, 2**40))
    feed = lv.feed(max_retries=1)
    with pytest.raises(DataError) as info:
        feed.warmup(5)
    text = str(info.value)
    assert text.startswith("kraken 1h warm-up: kraken unreachable: ExchangeNotAvailable: ")
    assert "\n" not in text
    assert lv.sim.slept == [1.0]                       # one retry, one second, on the clock
