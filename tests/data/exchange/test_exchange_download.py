"""download_ohlcv against a loopback fake of each venue, driven by the real ccxt client."""

from __future__ import annotations

import json
from datetime import datetime

import ccxt
import numpy as np
import pytest
from fake_exchange_server import HOUR, NOW, ts_of

from tradewarden.data.cache import OhlcvCache
from tradewarden.data.download import (
    DownloadInterrupted,
    _retry_after_seconds,
    download_ohlcv,
    retry_delay,
)
from tradewarden.data.errors import DataError

COLS = ("ts", "open", "high", "low", "close", "volume")
# A stretch of the bundled data without gaps (the first gap is on 2025-10-25).
T0 = ts_of("2024-05-01T00:00:00")
NOW_FN = lambda: NOW


def expected_rows(src: dict, lo: int, hi: int, drop: set[int] = frozenset()) -> dict:
    keep = (src["ts"] >= lo) & (src["ts"] < hi)
    if drop:
        keep &= ~np.isin(src["ts"], sorted(drop))
    return {c: src[c][keep] for c in COLS}


def assert_cached_equals_source(cache: OhlcvCache, venue: str, pair: str, src: dict, lo: int,
                                hi: int, drop: set[int] = frozenset()) -> None:
    got = cache.read(venue, pair, "1h", lo, hi)
    want = expected_rows(src, lo, hi, drop)
    assert len(got) == len(want["ts"])
    assert got["ts"].dtype == np.int64
    for c in COLS:
        np.testing.assert_array_equal(got[c].to_numpy(), want[c], err_msg=c)


def run(venue, exchange, cache, lo, hi, symbols=("BTC-USD",), **kw):
    return download_ohlcv(venue, list(symbols), "1h", lo, hi, cache=cache, exchange=exchange,
                          now=NOW_FN, **kw)


# ---------------------------------------------------------------------------------------
# pagination


@pytest.mark.parametrize("venue,page", [("coinbase", 300), ("binance", 1000)])
@pytest.mark.parametrize("extra,pages", [(0, 2), (1, 3)])
def test_pagination_exactly_at_limit_and_one_over(venue, page, extra, pages, venue_server,
                                                  make_exchange, cache, btc, sleeps):
    server = venue_server(venue)
    lo, hi = T0, T0 + (2 * page + extra) * HOUR
    report = run(venue, make_exchange(server), cache, lo, hi, sleep=sleeps)
    rep = report.symbols["BTC-USD"]
    assert rep.requests == pages == len(server.candle_log)
    assert rep.fetched_rows == 2 * page + extra
    assert rep.ranges_fetched == [(lo, hi)]
    assert sleeps.calls == []
    # consecutive, non-overlapping windows starting exactly where the previous one ended
    if venue == "coinbase":
        starts = [int(r["query"]["start"]) for r in server.candle_log]
        ends = [int(r["query"]["end"]) for r in server.candle_log]
    else:
        starts = [int(r["query"]["startTime"]) // 1000 for r in server.candle_log]
        ends = [int(r["query"]["endTime"]) // 1000 for r in server.candle_log]
    assert starts == [lo + k * page * HOUR for k in range(pages)]
    assert all(e < s + page * HOUR + 1 for s, e in zip(starts, ends))
    pair = "BTC-USDT" if venue == "binance" else "BTC-USD"
    assert_cached_equals_source(cache, venue, pair, btc, lo, hi)
    assert cache.missing_ranges(venue, pair, "1h", lo, hi) == []


def test_multiple_symbols_each_equal_their_source(venue_server, make_exchange, cache, btc):
    from fake_exchange_server import source_rows

    server = venue_server("coinbase")
    lo, hi = T0, T0 + 400 * HOUR
    report = run("coinbase", make_exchange(server), cache, lo, hi, ("BTC-USD", "eth_usd"))
    assert list(report.symbols) == ["BTC-USD", "ETH-USD"]
    assert report.requests == 4
    assert_cached_equals_source(cache, "coinbase", "BTC-USD", btc, lo, hi)
    assert_cached_equals_source(cache, "coinbase", "ETH-USD", source_rows("ETH-USD"), lo, hi)


def test_progress_reports_every_page_up_to_the_expected_total(venue_server, make_exchange,
                                                              cache):
    server = venue_server("coinbase")
    calls: list[tuple[int, int]] = []
    run("coinbase", make_exchange(server), cache, T0, T0 + 700 * HOUR,
        progress=lambda done, total: calls.append((done, total)))
    assert calls[0] == (0, 700)
    assert calls[-1] == (700, 700)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert len(calls) == 1 + 3            # the start, then one per page


# ---------------------------------------------------------------------------------------
# retries and the rate limiter


def test_429_with_retry_after_waits_at_least_that_long_and_keeps_rate_limiter(
        venue_server, make_exchange, cache, btc, sleeps):
    server = venue_server("coinbase")
    server.faults[2] = (429, {"Retry-After": "7"},
                        json.dumps({"errors": [{"id": "rate_limit_exceeded",
                                                "message": "Too many requests"}]}))
    exchange = make_exchange(server, rate_limit_ms=20)   # coinbase candle cost 3 -> 60 ms
    lo, hi = T0, T0 + 900 * HOUR
    report = run("coinbase", exchange, cache, lo, hi, sleep=sleeps)
    rep = report.symbols["BTC-USD"]
    assert rep.retries == 1
    assert rep.requests == 3 and len(server.candle_log) == 4
    assert len(sleeps.calls) == 1 and sleeps.calls[0] >= 7.0
    assert exchange.enableRateLimit is True
    # ccxt's own limiter kept spacing the requests (rateLimit x cost = 60 ms)
    times = [r["t"] for r in server.candle_log]
    assert min(np.diff(times)) >= 0.045
    # the retried request asked for the same window again
    assert server.candle_log[1]["query"] == server.candle_log[2]["query"]
    assert_cached_equals_source(cache, "coinbase", "BTC-USD", btc, lo, hi)


def test_binance_429_retry_after_and_exponential_backoff(venue_server, make_exchange, cache,
                                                         btc, sleeps):
    server = venue_server("binance")
    body = json.dumps({"code": -1003, "msg": "Too many requests; current limit is 6000."})
    server.faults[1] = (429, {"Retry-After": "30"}, body)
    server.faults[2] = (503, {}, "Service Unavailable")
    server.faults[3] = (503, {}, "Service Unavailable")
    lo, hi = T0, T0 + 500 * HOUR
    report = run("binance", make_exchange(server), cache, lo, hi, sleep=sleeps)
    assert sleeps.calls == [30.0, 2.0, 4.0]          # max(1, 30), then 2 ** attempt
    assert report.symbols["BTC-USD"].retries == 3
    assert_cached_equals_source(cache, "binance", "BTC-USDT", btc, lo, hi)


def test_rate_limiter_is_switched_back_on(venue_server, make_exchange, cache):
    server = venue_server("kraken")
    exchange = make_exchange(server)
    exchange.enableRateLimit = False
    run("kraken", exchange, cache, NOW - 100 * HOUR, NOW - 50 * HOUR)
    assert exchange.enableRateLimit is True


@pytest.mark.parametrize("venue,status,body", [
    ("binance", 500, "Internal Server Error"),                          # ExchangeNotAvailable
    ("coinbase", 500, json.dumps({"errors": [{"id": "internal_server_error",
                                              "message": "Internal server error"}]})),
    ("kraken", 502, "Bad Gateway"),
])
def test_500_then_success(venue, status, body, venue_server, make_exchange, cache, btc,
                          sleeps):
    server = venue_server(venue)
    server.faults[1] = (status, {}, body)
    lo, hi = (NOW - 300 * HOUR, NOW - 20 * HOUR) if venue == "kraken" else (T0, T0 + 250 * HOUR)
    lo, hi = lo // HOUR * HOUR, hi // HOUR * HOUR
    report = run(venue, make_exchange(server), cache, lo, hi, sleep=sleeps)
    rep = report.symbols["BTC-USD"]
    assert rep.retries == 1 and sleeps.calls == [1.0]
    assert rep.requests == 1 and len(server.candle_log) == 2
    pair = {"binance": "BTC-USDT"}.get(venue, "BTC-USD")
    assert_cached_equals_source(cache, venue, pair, btc, lo, hi)


def test_kraken_rate_limit_error_in_body_is_retried(venue_server, make_exchange, cache, btc,
                                                    sleeps):
    server = venue_server("kraken")
    server.faults[1] = (200, {}, json.dumps({"error": ["EAPI:Rate limit exceeded"]}))
    lo, hi = NOW // HOUR * HOUR - 200 * HOUR, NOW // HOUR * HOUR - 100 * HOUR
    report = run("kraken", make_exchange(server), cache, lo, hi, sleep=sleeps)
    assert report.symbols["BTC-USD"].retries == 1 and sleeps.calls == [1.0]
    assert_cached_equals_source(cache, "kraken", "BTC-USD", btc, lo, hi)


def test_gives_up_after_max_retries(venue_server, make_exchange, cache, sleeps):
    server = venue_server("binance")
    server.fail_from = 1
    with pytest.raises(DownloadInterrupted) as info:
        run("binance", make_exchange(server), cache, T0, T0 + 10 * HOUR, sleep=sleeps,
            max_retries=3)
    assert len(server.candle_log) == 4
    assert sleeps.calls == [1.0, 2.0, 4.0]
    assert isinstance(info.value.cause, ccxt.ExchangeNotAvailable)
    assert isinstance(info.value, DataError) and "2024-05-01T00:00:00Z" in str(info.value)


def test_non_transient_error_is_not_retried(venue_server, make_exchange, cache, sleeps):
    server = venue_server("binance")
    server.faults[1] = (400, {}, json.dumps({"code": -1121, "msg": "Invalid symbol."}))
    with pytest.raises(DownloadInterrupted):
        run("binance", make_exchange(server), cache, T0, T0 + 10 * HOUR, sleep=sleeps)
    assert len(server.candle_log) == 1 and sleeps.calls == []


def test_unknown_pair_names_the_venue_markets(venue_server, make_exchange, cache):
    server = venue_server("coinbase")
    with pytest.raises(DataError, match=r"coinbase markets: no spot market DOGE/USD"):
        run("coinbase", make_exchange(server), cache, T0, T0 + 10 * HOUR, ("DOGE-USD",))
    assert server.candle_log == []


def test_retry_after_http_date_and_delay_rule():
    class Ex:
        last_response_headers = {"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}

    at = datetime.fromisoformat("2015-10-21T07:28:00+00:00").timestamp()
    assert _retry_after_seconds(Ex(), at) == pytest.approx(10.0)
    Ex.last_response_headers = {"Retry-After": "12"}
    assert _retry_after_seconds(Ex(), at) == 12.0
    Ex.last_response_headers = {}
    assert _retry_after_seconds(Ex(), at) is None
    assert [retry_delay(k) for k in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert retry_delay(0, 90.0) == 90.0 and retry_delay(5, 3.0) == 32.0


# ---------------------------------------------------------------------------------------
# awkward pages


def test_empty_page_is_skipped_and_recorded_as_covered(venue_server, make_exchange, cache,
                                                       btc):
    server = venue_server("coinbase")
    lo, hi = T0, T0 + 1200 * HOUR
    server.drop = {lo + k * HOUR for k in range(300, 700)}   # window 2 has no candles at all
    report = run("coinbase", make_exchange(server), cache, lo, hi)
    rep = report.symbols["BTC-USD"]
    assert rep.requests == 4                                  # 4 windows, no endless loop
    assert rep.fetched_rows == 800
    assert rep.ranges_fetched == [(lo, hi)]
    assert_cached_equals_source(cache, "coinbase", "BTC-USD", btc, lo, hi, server.drop)
    assert cache.read("coinbase", "BTC-USD", "1h", lo + 300 * HOUR, lo + 700 * HOUR).empty
    assert cache.missing_ranges("coinbase", "BTC-USD", "1h", lo, hi) == []
    before = len(server.candle_log)
    again = run("coinbase", make_exchange(server), cache, lo, hi)
    assert again.requests == 0 and len(server.candle_log) == before


def test_gap_at_the_end_of_a_window_is_probed_then_covered(venue_server, make_exchange, cache,
                                                           btc):
    server = venue_server("coinbase")
    lo, hi = T0, T0 + 600 * HOUR
    server.drop = {lo + k * HOUR for k in range(290, 300)}
    report = run("coinbase", make_exchange(server), cache, lo, hi)
    starts = [int(r["query"]["start"]) for r in server.candle_log]
    assert starts == [lo, lo + 290 * HOUR, lo + 590 * HOUR]   # short page -> probe the rest
    assert len(set(starts)) == len(starts)
    assert report.symbols["BTC-USD"].ranges_fetched == [(lo, hi)]
    assert_cached_equals_source(cache, "coinbase", "BTC-USD", btc, lo, hi, server.drop)


def test_candles_repeated_across_pages_are_deduplicated(venue_server, make_exchange, cache,
                                                        btc):
    server = venue_server("binance")
    previous: list = []

    def repeat(n, rows):
        out = previous[-5:] + rows + rows[:3]          # last page's tail, and own head twice
        previous[:] = rows
        return out

    server.transform = repeat
    lo, hi = T0, T0 + 2500 * HOUR
    report = run("binance", make_exchange(server), cache, lo, hi)
    assert report.symbols["BTC-USD"].fetched_rows == 2500
    assert cache.metadata("binance", "BTC-USDT", "1h")["conflicts"] == 0
    assert_cached_equals_source(cache, "binance", "BTC-USDT", btc, lo, hi)


@pytest.mark.parametrize("venue", ["coinbase", "binance"])
def test_pages_out_of_order(venue, venue_server, make_exchange, cache, btc):
    from fake_exchange_server import shuffle_page

    server = venue_server(venue)
    server.transform = shuffle_page()
    lo, hi = T0, T0 + 1300 * HOUR
    run(venue, make_exchange(server), cache, lo, hi)
    pair = "BTC-USDT" if venue == "binance" else "BTC-USD"
    assert_cached_equals_source(cache, venue, pair, btc, lo, hi)


@pytest.mark.parametrize("venue", ["coinbase", "binance"])
def test_real_gap_in_the_data_stays_a_gap(venue, venue_server, make_exchange, cache, btc):
    server = venue_server(venue)
    # the bundled data really lacks 2025-10-25 16:00..20:00 (a 6 h step, 5 missing bars)
    lo, hi = ts_of("2025-10-20T00:00:00"), ts_of("2025-10-30T00:00:00")
    run(venue, make_exchange(server), cache, lo, hi)
    pair = "BTC-USDT" if venue == "binance" else "BTC-USD"
    got = cache.read(venue, pair, "1h", lo, hi)
    assert len(got) == 240 - 5
    assert_cached_equals_source(cache, venue, pair, btc, lo, hi)
    assert cache.covered(venue, pair, "1h") == [(lo, hi)]
    assert cache.missing_ranges(venue, pair, "1h", lo, hi) == []
    (entry,) = cache.list()
    assert (entry.gaps, entry.missing_bars, entry.zero_volume_bars) == (1, 5, 0)


# ---------------------------------------------------------------------------------------
# interruption and incremental downloads


def test_interrupted_download_keeps_pages_and_resumes(venue_server, make_exchange, cache, btc,
                                                      sleeps):
    server = venue_server("coinbase")
    server.fail_from = 3                                   # pages 1-2 answer, then 500s
    lo, hi = T0, T0 + 1500 * HOUR
    with pytest.raises(DownloadInterrupted) as info:
        run("coinbase", make_exchange(server), cache, lo, hi, sleep=sleeps, max_retries=2)
    partial = info.value.report.symbols["BTC-USD"]
    assert partial.requests == 2 and partial.retries == 2
    assert partial.ranges_fetched == [(lo, lo + 600 * HOUR)]
    assert_cached_equals_source(cache, "coinbase", "BTC-USD", btc, lo, lo + 600 * HOUR)
    assert cache.missing_ranges("coinbase", "BTC-USD", "1h", lo, hi) == [(lo + 600 * HOUR, hi)]

    server.fail_from = None
    first_new = len(server.candle_log)
    report = run("coinbase", make_exchange(server), cache, lo, hi)
    resumed = server.candle_log[first_new:]
    assert report.symbols["BTC-USD"].requests == 3 == len(resumed)
    assert int(resumed[0]["query"]["start"]) == lo + 600 * HOUR
    assert report.symbols["BTC-USD"].missing_before == [(lo + 600 * HOUR, hi)]
    assert_cached_equals_source(cache, "coinbase", "BTC-USD", btc, lo, hi)


def test_keyboard_interrupt_between_pages_leaves_a_consistent_cache(venue_server,
                                                                    make_exchange, cache, btc):
    server = venue_server("binance")

    def progress(done, total):
        if done >= 2000:
            raise KeyboardInterrupt

    lo, hi = T0, T0 + 3000 * HOUR
    with pytest.raises(KeyboardInterrupt):
        run("binance", make_exchange(server), cache, lo, hi, progress=progress)
    assert_cached_equals_source(cache, "binance", "BTC-USDT", btc, lo, lo + 2000 * HOUR)
    assert cache.missing_ranges("binance", "BTC-USDT", "1h", lo, hi) == [(lo + 2000 * HOUR, hi)]
    report = run("binance", make_exchange(server), cache, lo, hi)
    assert report.requests == 1
    assert_cached_equals_source(cache, "binance", "BTC-USDT", btc, lo, hi)


def test_second_download_of_a_cached_range_makes_no_request(venue_server, make_exchange,
                                                            cache):
    server = venue_server("coinbase")
    lo, hi = T0, T0 + 650 * HOUR
    run("coinbase", make_exchange(server), cache, lo, hi)
    candles, markets = len(server.candle_log), len(server.other_log)
    # no exchange given: none is created, nothing is loaded, no socket is opened
    report = download_ohlcv("coinbase", ["BTC-USD"], "1h", lo, hi, cache=cache, now=NOW_FN)
    assert report.requests == 0 and report.market_loads == 0 and report.fetched_rows == 0
    assert (len(server.candle_log), len(server.other_log)) == (candles, markets)
    # extending the range fetches only the new part
    report = run("coinbase", make_exchange(server), cache, lo - 10 * HOUR, hi + 100 * HOUR)
    new = server.candle_log[candles:]
    assert [int(r["query"]["start"]) for r in new] == [lo - 10 * HOUR, hi]
    assert report.symbols["BTC-USD"].fetched_rows == 110


def test_cache_metadata_records_provenance(venue_server, make_exchange, cache):
    server = venue_server("binance")
    run("binance", make_exchange(server), cache, T0, T0 + 30 * HOUR)
    meta = cache.metadata("binance", "BTC-USDT", "1h")
    assert meta["source"]["venue"] == "binance"
    assert meta["source"]["ccxt_version"] == ccxt.__version__
    assert meta["source"]["endpoint"] == "GET /api/v3/klines"
    assert meta["source"]["api"].startswith(server.base_url)
    assert meta["venue_symbol"]["unified"] == "BTC/USDT"
    assert meta["venue_symbol"]["venue_id"] == "BTCUSDT"
    assert datetime.fromisoformat(meta["fetched_at"].replace("Z", "+00:00")).year >= 2024
    assert meta["covered"] == [[T0, T0 + 30 * HOUR]]


# ---------------------------------------------------------------------------------------
# venue specifics


def test_kraken_720_candle_limit_is_reported_with_the_exact_range(venue_server, make_exchange,
                                                                  cache, btc):
    server = venue_server("kraken")
    open_bar = NOW // HOUR * HOUR                  # 2026-05-08T16:00Z, still in progress
    earliest = open_bar - 719 * HOUR               # oldest candle Kraken still serves
    lo, hi = open_bar - 1000 * HOUR, open_bar - 100 * HOUR
    report = run("kraken", make_exchange(server), cache, lo, hi)
    rep = report.symbols["BTC-USD"]
    (bad,) = rep.unavailable
    assert (bad.start, bad.end) == (lo, earliest)
    assert "720" in bad.reason and "kraken" in bad.reason and "BTC/USD" in bad.reason
    assert any("2026-04-08T17:00:00Z" in w and "720" in w for w in report.warnings)
    assert rep.requests == 1 and int(server.candle_log[0]["query"]["since"]) < earliest
    assert rep.ranges_fetched == [(earliest, hi)]
    assert_cached_equals_source(cache, "kraken", "BTC-USD", btc, earliest, hi)
    assert cache.read("kraken", "BTC-USD", "1h", lo, earliest).empty
    # not pretended: the old part is still missing, and strict callers get a DataError
    assert cache.missing_ranges("kraken", "BTC-USD", "1h", lo, hi) == [(lo, earliest)]
    with pytest.raises(DataError, match=r"BTC-USD \[2026-03-28T00:00:00Z, 2026-04-08T17:00:00Z\)"):
        report.raise_for_unavailable()


def test_kraken_missing_start_of_its_window_is_not_claimed(venue_server, make_exchange,
                                                           cache, btc):
    server = venue_server("kraken")
    earliest = NOW // HOUR * HOUR - 719 * HOUR
    server.drop = {earliest + k * HOUR for k in range(3)}     # venue skips its first 3 bars
    lo, hi = earliest, earliest + 100 * HOUR
    report = run("kraken", make_exchange(server), cache, lo, hi)
    (skipped,) = report.symbols["BTC-USD"].unavailable
    assert (skipped.start, skipped.end) == (earliest, earliest + 3 * HOUR)
    assert "not recorded as fetched" in skipped.reason
    assert cache.missing_ranges("kraken", "BTC-USD", "1h", lo, hi) == [(lo, lo + 3 * HOUR)]
    assert_cached_equals_source(cache, "kraken", "BTC-USD", btc, lo, hi, server.drop)


def test_kraken_open_bar_is_not_fetched(venue_server, make_exchange, cache, btc):
    server = venue_server("kraken")
    open_bar = NOW // HOUR * HOUR
    lo, hi = open_bar - 30 * HOUR, open_bar + 3 * HOUR
    report = run("kraken", make_exchange(server), cache, lo, hi)
    (future,) = report.symbols["BTC-USD"].unavailable
    assert (future.start, future.end) == (open_bar, hi) and "not closed" in future.reason
    # the bundled data lacks 2026-05-08 02:00..06:00: a real gap inside the fetched range
    assert_cached_equals_source(cache, "kraken", "BTC-USD", btc, lo, open_bar)
    assert len(cache.read("kraken", "BTC-USD", "1h")) == 30 - 5
    assert cache.read("kraken", "BTC-USD", "1h")["ts"].max() == open_bar - HOUR


def test_kraken_uses_its_own_pair_id(venue_server, make_exchange, cache):
    server = venue_server("kraken")
    report = run("kraken", make_exchange(server), cache, NOW - 20 * HOUR, NOW - 10 * HOUR)
    vs = report.symbols["BTC-USD"].venue_symbol
    assert (vs.unified, vs.venue_id) == ("BTC/USD", "XXBTZUSD")
    assert "XBTUSD" in vs.note
    assert server.candle_log[0]["query"]["pair"] == "XXBTZUSD"
    assert server.candle_log[0]["query"]["interval"] == "60"


def test_binance_usd_is_mapped_to_usdt_and_says_so(venue_server, make_exchange, cache):
    server = venue_server("binance")
    report = run("binance", make_exchange(server), cache, T0, T0 + 5 * HOUR)
    rep = report.symbols["BTC-USD"]
    assert rep.venue_symbol.unified == "BTC/USDT"
    assert rep.venue_symbol.quote_used == "USDT"
    assert rep.venue_symbol.venue_id == "BTCUSDT"
    assert rep.cache_symbol == "BTC-USDT"
    assert "USDT" in rep.venue_symbol.note
    assert any("BTC/USDT" in w and "not USD" in w for w in report.warnings)
    assert server.candle_log[0]["query"]["symbol"] == "BTCUSDT"
    assert cache.series_dir("binance", "BTC-USDT", "1h").is_dir()
    assert not cache.series_dir("binance", "BTC-USD", "1h").exists()
    # binance is asked for spot markets only
    assert server.other_log == ["/api/v3/exchangeInfo"]


def test_timeframe_the_venue_does_not_offer(venue_server, make_exchange, cache):
    server = venue_server("coinbase")
    with pytest.raises(ValueError, match="does not offer 3h"):
        download_ohlcv("coinbase", ["BTC-USD"], "3h", T0, T0 + 30 * HOUR, cache=cache,
                       exchange=make_exchange(server), now=NOW_FN)


def test_bad_arguments():
    cache = OhlcvCache("/nonexistent-never-written")
    with pytest.raises(ValueError):
        download_ohlcv("coinbase", [], "1h", T0, T0 + HOUR, cache=cache)
    with pytest.raises(ValueError):
        download_ohlcv("coinbase", ["BTC-USD"], "1h", T0, T0, cache=cache)
    with pytest.raises(ValueError):
        download_ohlcv("coinbase", ["BTC-USD"], "1h", "yesterday", T0, cache=cache)
