"""Instrument specs and fees parsed from each fake venue's market metadata via ccxt."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from fake_exchange_server import NOW

from tradewarden.data.errors import DataError
from tradewarden.data.markets import (
    DECIMAL_PLACES,
    fees_from_market,
    instrument_from_market,
    load_market_specs,
    markets_cache_path,
    read_markets_cache,
)

NOW_FN = lambda: NOW


def test_coinbase_specs_and_fees(venue_server, make_exchange, tmp_path):
    server = venue_server("coinbase")
    exchange = make_exchange(server)
    specs = load_market_specs("coinbase", ["BTC-USD", "ETH-USD"], exchange=exchange,
                              root=tmp_path, now=NOW_FN)
    btc = specs["BTC-USD"]
    inst = btc.instrument
    assert (inst.symbol, inst.base, inst.quote) == ("BTC-USD", "BTC", "USD")
    assert inst.price_increment == Decimal("0.01")
    assert inst.quantity_increment == Decimal("0.00000001")
    assert inst.min_notional == Decimal(1)
    assert inst.max_notional == Decimal(150000000)
    assert inst.min_quantity == Decimal("0.00000001")
    assert inst.source == "ccxt coinbase markets 2026-05-08"
    # no credentials: the fees are ccxt's published coinbase tier, and say so
    trading = exchange.fees["trading"]
    assert btc.maker_bps == Decimal(repr(trading["maker"])) * 10000
    assert btc.taker_bps == Decimal(repr(trading["taker"])) * 10000
    assert btc.fee_basis == "published"
    assert btc.read_at == "2026-05-08T16:30:00Z"
    assert inst.floor_price(64123.456) == Decimal("64123.45")
    assert specs["ETH-USD"].instrument.check_order_size(Decimal("0.0001"), Decimal(3000)) \
        == "notional 0.30 below minimum 1 USD"


def test_kraken_specs_and_first_tier_fees(venue_server, make_exchange, tmp_path):
    server = venue_server("kraken")
    specs = load_market_specs("kraken", "BTC-USD,ETH-USD", exchange=make_exchange(server),
                              root=tmp_path, now=NOW_FN)
    btc = specs["BTC-USD"]
    assert btc.venue_symbol.venue_id == "XXBTZUSD"
    assert btc.instrument.price_increment == Decimal("0.1")        # pair_decimals 1
    assert btc.instrument.quantity_increment == Decimal("1E-8")    # lot_decimals 8
    assert btc.instrument.min_notional == Decimal("0.5")           # costmin
    assert btc.instrument.min_quantity == Decimal("0.00005")       # ordermin
    assert btc.instrument.max_notional is None
    assert (btc.maker_bps, btc.taker_bps) == (Decimal(25), Decimal(40))   # 0.25 % / 0.40 %
    assert specs["ETH-USD"].instrument.price_increment == Decimal("0.01")


def test_binance_specs_are_for_the_usdt_market(venue_server, make_exchange, tmp_path):
    server = venue_server("binance")
    specs = load_market_specs("binance", ["BTC-USD"], exchange=make_exchange(server),
                              root=tmp_path, now=NOW_FN)
    btc = specs["BTC-USD"]
    assert btc.venue_symbol.quote_used == "USDT"
    assert btc.instrument.symbol == "BTC-USDT" and btc.instrument.quote == "USDT"
    assert btc.instrument.price_increment == Decimal("0.01")       # PRICE_FILTER tickSize
    assert btc.instrument.quantity_increment == Decimal("0.00001")  # LOT_SIZE stepSize
    assert btc.instrument.min_notional == Decimal(5)             # NOTIONAL minNotional
    assert btc.instrument.max_notional == Decimal(9000000)
    assert (btc.maker_bps, btc.taker_bps) == (Decimal(10), Decimal(10))


def test_markets_are_cached_with_the_date_and_reused(venue_server, make_exchange, tmp_path):
    server = venue_server("kraken")
    load_market_specs("kraken", ["BTC-USD"], exchange=make_exchange(server), root=tmp_path,
                      now=NOW_FN)
    calls = len(server.other_log)
    data = read_markets_cache("kraken", tmp_path)
    assert data["read_on"] == "2026-05-08" and data["read_at"] == "2026-05-08T16:30:00Z"
    assert set(data["markets"]) == {"BTC/USD", "ETH/USD"}
    assert "info" not in data["markets"]["BTC/USD"]
    assert json.loads(markets_cache_path("kraken", tmp_path).read_text())["venue"] == "kraken"
    # within a day: served from the file, no exchange needed, no request
    again = load_market_specs("kraken", ["ETH-USD"], root=tmp_path, now=lambda: NOW + 3600)
    assert again["ETH-USD"].instrument.source == "ccxt kraken markets 2026-05-08"
    assert len(server.other_log) == calls
    # two days later: read again from the venue, with the new date
    later = load_market_specs("kraken", ["ETH-USD"], exchange=make_exchange(server),
                              root=tmp_path, now=lambda: NOW + 2 * 86400)
    assert len(server.other_log) > calls
    assert later["ETH-USD"].instrument.source == "ccxt kraken markets 2026-05-10"


def test_unknown_pair_is_a_data_error(venue_server, make_exchange, tmp_path):
    server = venue_server("coinbase")
    with pytest.raises(DataError, match="no spot market SOL/USD"):
        load_market_specs("coinbase", ["SOL-USD"], exchange=make_exchange(server),
                          root=tmp_path, now=NOW_FN)


def test_instrument_from_market_rules():
    market = {"symbol": "ABC/USD", "base": "ABC", "quote": "USD",
              "precision": {"price": 4, "amount": 2},
              "limits": {"cost": {"min": 10, "max": None}, "amount": {"min": None}},
              "maker": 0.0015, "taker": 0.0025}
    with pytest.raises(ValueError, match="venue"):
        instrument_from_market(market)
    inst = instrument_from_market(market, venue="somevenue", read_on="2026-01-02",
                                  precision_mode=DECIMAL_PLACES)
    assert inst.price_increment == Decimal("0.0001")
    assert inst.quantity_increment == Decimal("0.01")
    assert inst.min_notional == Decimal(10) and inst.min_quantity == Decimal("0.01")
    assert inst.source == "ccxt somevenue markets 2026-01-02"
    assert fees_from_market(market) == (Decimal(15), Decimal(25))
    with pytest.raises(DataError, match="significant_digits"):
        instrument_from_market(market, venue="v", read_on="d", precision_mode=3)
    with pytest.raises(DataError, match="no taker fee"):
        fees_from_market({**market, "taker": None})
    with pytest.raises(DataError, match="no price precision"):
        instrument_from_market({**market, "precision": {"amount": 0.01}}, venue="v",
                               read_on="d")
