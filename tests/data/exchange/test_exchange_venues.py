"""Canonical BASE-QUOTE symbols mapped to each venue; per-venue request limits."""

from __future__ import annotations

import ccxt
import pytest

from tradewarden.data.errors import DataError
from tradewarden.data.venues import max_candles_per_request, resolve_symbol, venue_spec


def test_coinbase_mapping():
    vs = resolve_symbol("coinbase", "btc_usd")
    assert (vs.canonical, vs.unified, vs.venue_id, vs.quote_used) == (
        "BTC-USD", "BTC/USD", "BTC-USD", "USD")
    assert vs.note == "" and vs.pair == "BTC-USD" and not vs.quote_substituted


def test_kraken_mapping_static_and_from_markets():
    vs = resolve_symbol("kraken", "BTC/USD")
    assert (vs.unified, vs.venue_id) == ("BTC/USD", "XBTUSD")
    assert "XBT" in vs.note
    markets = {"BTC/USD": {"id": "XXBTZUSD", "altname": "XBTUSD", "symbol": "BTC/USD"}}
    vs = resolve_symbol("kraken", "BTC-USD", markets)
    assert vs.venue_id == "XXBTZUSD" and "XBTUSD" in vs.note
    assert resolve_symbol("kraken", "ETH-USD").venue_id == "ETHUSD"


def test_binance_usd_is_usdt_and_the_mapping_says_so():
    vs = resolve_symbol("binance", "BTC-USD")
    assert (vs.unified, vs.venue_id, vs.quote_used) == ("BTC/USDT", "BTCUSDT", "USDT")
    assert vs.quote_substituted and vs.pair == "BTC-USDT"
    assert "USDT" in vs.note and "not USD" in vs.note
    assert vs.to_dict()["pair"] == "BTC-USDT"
    same = resolve_symbol("binance", "BTC-USDT")
    assert same.unified == "BTC/USDT" and same.note == "" and not same.quote_substituted


def test_generic_ccxt_venue():
    vs = resolve_symbol("bitstamp", "ETH-EUR")
    assert (vs.unified, vs.venue_id, vs.quote_used) == ("ETH/EUR", None, "EUR")
    spec = venue_spec("bitstamp", ccxt.bitstamp())
    assert spec.max_candles == 1000 and not spec.supports_until and spec.history_limit is None
    assert venue_spec("nosuchvenue").max_candles == 500


def test_documented_request_limits():
    assert max_candles_per_request("coinbase") == 300
    assert max_candles_per_request("kraken") == 720
    assert max_candles_per_request("binance") == 1000
    assert venue_spec("kraken").history_limit == 720
    assert all(venue_spec(v).source for v in ("coinbase", "kraken", "binance"))
    # the figures agree with the installed ccxt's own per-request caps
    for venue in ("coinbase", "kraken", "binance"):
        ex = getattr(ccxt, venue)()
        assert ex.features["spot"]["fetchOHLCV"]["limit"] == max_candles_per_request(venue)


def test_unknown_market_and_bad_symbols():
    with pytest.raises(DataError, match="binance markets: no spot market DOGE/USDT for DOGE-USD"):
        resolve_symbol("binance", "DOGE-USD", {"BTC/USDT": {"id": "BTCUSDT"}})
    for bad in ("BTC", "", "A-B-C"):
        with pytest.raises(ValueError):
            resolve_symbol("coinbase", bad)


def test_network_guard_is_installed():
    import socket

    # the autouse fixture in conftest.py wraps connect; nothing here opens a connection
    assert socket.socket.connect.__module__ == "conftest"
    assert socket.create_connection.__module__ == "conftest"
