"""The Coinbase Advanced Trade fake, driven through the official SDK (``coinbase-advanced-py``).

Every request here is the real ``coinbase.rest.RESTClient`` over TLS to the loopback fake,
signed with a CDP-style EC key; nothing in the SDK is patched.
"""

from __future__ import annotations

import time
from decimal import Decimal

import jwt
import pytest
import requests
from fake_coinbase import make_cdp_key

D = Decimal
BRACKET = {"trigger_bracket_gtc": {"limit_price": "55000", "stop_trigger_price": "48000"}}


def _entry(client, cid: str = "entry-1", size: str = "0.1", bracket=BRACKET):
    return client.market_order_buy(cid, "BTC-USD", base_size=size,
                                   attached_order_configuration=bracket)


# -- authentication -----------------------------------------------------------------------


def test_the_sdk_signs_requests_the_fake_accepts_and_forged_or_expired_tokens_get_401(
        coinbase, rest_client, cdp_key):
    client = rest_client()
    perms = client.get_api_key_permissions()
    assert (perms.can_view, perms.can_trade, perms.can_transfer) == (True, True, False)
    assert coinbase.auth_failures == []

    # a key the fake does not know: refused with Coinbase's plain-text 401
    stranger = make_cdp_key(cdp_key.name)              # same name, another private key
    with pytest.raises(requests.HTTPError) as err:
        rest_client(key=stranger).get_accounts()
    assert err.value.response.status_code == 401
    assert err.value.response.text == "Unauthorized"
    assert "bad token" in coinbase.auth_failures[-1]

    url = f"https://{coinbase.host}/api/v3/brokerage/accounts"

    def token(**claims):
        now = int(time.time())
        body = {"sub": cdp_key.name, "iss": "cdp", "nbf": now, "exp": now + 120,
                "uri": f"GET {coinbase.host}/api/v3/brokerage/accounts", **claims}
        return jwt.encode(body, cdp_key.private_pem.encode(), algorithm="ES256",
                          headers={"kid": cdp_key.name, "nonce": "abc"})

    def status(tok):
        return requests.get(url, headers={"Authorization": f"Bearer {tok}"}, timeout=5).status_code

    assert status(token()) == 200                                         # a good hand-made one
    assert status(token(nbf=int(time.time()) - 300, exp=int(time.time()) - 180)) == 401
    assert coinbase.auth_failures[-1] == "token expired (exp)"
    assert status(token(uri=f"GET {coinbase.host}/api/v3/brokerage/orders")) == 401
    assert status(token(iss="coinbase-cloud")) == 401
    assert requests.get(url, timeout=5).status_code == 401               # no token at all


def test_a_cdp_key_file_works_and_a_view_only_key_cannot_trade(make_coinbase, cdp_key, tmp_path):
    from coinbase.rest import RESTClient

    fake = make_coinbase(permissions={"can_view": True, "can_trade": False})
    fake.set_price("BTC-USD", D("50000"))
    client = RESTClient(key_file=str(cdp_key.file_path(tmp_path)), base_url=fake.host, timeout=5)
    assert client.get_api_key_permissions().can_trade is False
    with pytest.raises(requests.HTTPError, match="Missing Required Scopes"):
        client.market_order_buy("c1", "BTC-USD", base_size="0.01")
    assert fake.orders == {}


# -- products, accounts, time ---------------------------------------------------------------


def test_products_accounts_and_time_have_coinbase_fields(coinbase, rest_client, clock):
    client = rest_client()
    p = client.get_product("BTC-USD")
    assert (p.base_increment, p.quote_increment, p.price_increment) == ("0.00000001", "0.01",
                                                                        "0.01")
    assert (p.base_min_size, p.quote_min_size, p.price, p.status) == ("0.00000001", "1",
                                                                      "50000", "online")
    assert not any((p.trading_disabled, p.cancel_only, p.limit_only, p.post_only))
    coinbase.set_product("BTC-USD", limit_only=True)
    assert client.get_product("BTC-USD").limit_only is True
    rejected = client.market_order_buy("m1", "BTC-USD", base_size="0.01")
    assert rejected.success is False
    assert rejected.error_response["preview_failure_reason"] == "PREVIEW_NOT_ALLOWED_BY_MARKET_STATE"
    assert [x.product_id for x in client.get_products().products] == ["BTC-USD", "ETH-USD"]

    t = client.get_unix_time()
    assert t.epoch_seconds == str(int(clock()))

    page1 = client.get_accounts(limit=2)
    assert page1.has_next is True and len(page1.accounts) == 2
    page2 = client.get_accounts(limit=2, cursor=page1.cursor)
    assert page2.has_next is False and page2.cursor == ""
    usd = {a.currency: a for a in page1.accounts + page2.accounts}["USD"]
    assert usd.available_balance == {"value": "10000", "currency": "USD"}
    assert usd.hold == {"value": "0", "currency": "USD"}


# -- the bracket ----------------------------------------------------------------------------


def test_a_market_entry_with_a_bracket_fills_and_the_take_profit_ends_the_stop(
        coinbase, rest_client, clock):
    client = rest_client()
    r = _entry(client)
    assert r.success is True and r.failure_reason == "UNKNOWN_FAILURE_REASON"
    entry_id, bracket_id = r.success_response["order_id"], r.success_response["attached_order_id"]
    assert r.order_id == entry_id
    entry = client.get_order(entry_id).order
    assert (entry.status, entry.filled_size, entry.average_filled_price) == ("FILLED", "0.1",
                                                                             "50000")
    assert entry.attached_order_id == bracket_id
    leg = client.get_order(bracket_id).order
    assert (leg.status, leg.trigger_status, leg.side, leg.order_type) == (
        "OPEN", "STOP_PENDING", "SELL", "BRACKET")
    assert leg.originating_order_id == entry_id
    assert leg.order_configuration.trigger_bracket_gtc.base_size == "0.1"
    assert client.get_accounts().accounts[0].hold == {"value": "0.1", "currency": "BTC"}

    coinbase.set_price("BTC-USD", D("54000"), clock.advance(60))          # not yet
    assert client.get_order(bracket_id).order.status == "OPEN"
    coinbase.set_price("BTC-USD", D("56000"), clock.advance(60))          # through 55000
    leg = client.get_order(bracket_id).order
    assert (leg.status, leg.trigger_status, leg.average_filled_price) == (
        "FILLED", "STOP_PENDING", "55000")
    coinbase.set_price("BTC-USD", D("40000"), clock.advance(60))          # the stop is gone
    fills = client.get_fills(order_ids=[bracket_id]).fills
    assert [(f.price, f.size, f.liquidity_indicator, f.side) for f in fills] == [
        ("55000", "0.1", "MAKER", "SELL")]
    assert coinbase.orders[bracket_id].exit_leg == "take_profit"


def test_the_stop_fills_as_a_stop_limit_and_a_gap_below_its_limit_leaves_it_resting(
        coinbase, rest_client, clock):
    client = rest_client()
    bracket_id = _entry(client).success_response["attached_order_id"]
    assert coinbase.stop_limit_for("BTC-USD", "SELL", D("48000")) == D("45600")

    coinbase.set_price("BTC-USD", D("47000"), clock.advance(60))          # trades through 48000
    leg = client.get_order(bracket_id).order
    assert (leg.status, leg.trigger_status, leg.average_filled_price) == (
        "FILLED", "STOP_TRIGGERED", "48000")

    # a second entry, then a gap from 50000 to 45000: the stop triggers, its limit 45600
    # is above the market, so it rests unfilled (the position is unprotected below it)
    coinbase.set_price("BTC-USD", D("50000"), clock.advance(60))
    bracket2 = _entry(client, "entry-2").success_response["attached_order_id"]
    coinbase.set_price("BTC-USD", D("45000"), clock.advance(60), gap=True)
    leg = client.get_order(bracket2).order
    assert (leg.status, leg.trigger_status, leg.filled_size) == ("OPEN", "STOP_TRIGGERED", "0")
    coinbase.set_price("BTC-USD", D("45700"), clock.advance(60))          # back up through 45600
    leg = client.get_order(bracket2).order
    assert (leg.status, leg.average_filled_price) == ("FILLED", "45600")


def test_a_bar_through_both_legs_fills_the_stop_first(coinbase, rest_client, clock):
    client = rest_client()
    bracket_id = _entry(client).success_response["attached_order_id"]
    fills = coinbase.step("BTC-USD", "50000", "56000", "47000", "55500", clock.advance(3600))
    assert [(f["price"], f["side"]) for f in fills] == [("48000", "SELL")]
    assert client.get_order(bracket_id).order.trigger_status == "STOP_TRIGGERED"
    assert coinbase.orders[bracket_id].exit_leg == "stop_loss"
    assert coinbase.balance("BTC") == (D("0"), D("0"))


def test_a_limit_entry_cancelled_before_it_fills_takes_its_bracket_with_it(coinbase,
                                                                          rest_client):
    client = rest_client()
    r = client.limit_order_gtc_buy("lim-1", "BTC-USD", base_size="0.1", limit_price="49000",
                                   attached_order_configuration={"trigger_bracket_gtc": {
                                       "limit_price": "52000", "stop_trigger_price": "47000"}})
    entry_id, bracket_id = r.success_response["order_id"], r.success_response["attached_order_id"]
    assert client.get_order(bracket_id).order.status == "PENDING"
    usd = {a.currency: a for a in client.get_accounts().accounts}["USD"]
    assert usd.hold["value"] == "4929.4"                    # 0.1 x 49000 x 1.006
    result = client.cancel_orders([entry_id, "no-such-order"]).results
    assert [(x.success, x.failure_reason) for x in result] == [
        (True, "UNKNOWN_CANCEL_FAILURE_REASON"), (False, "UNKNOWN_CANCEL_ORDER")]
    assert client.get_order(bracket_id).order.status == "CANCELLED"
    assert coinbase.balance("USD") == (D("10000"), D("0"))


# -- rejections -----------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "error", "preview"), [
    ({"base_size": "0.000000001"}, "INVALID_SIZE_PRECISION", "PREVIEW_INVALID_SIZE_PRECISION"),
    ({"base_size": "1"}, "INSUFFICIENT_FUND", "PREVIEW_INSUFFICIENT_FUND"),
])
def test_a_market_rejection_arrives_as_http_200_with_success_false(rest_client, coinbase,
                                                                   kwargs, error, preview):
    r = rest_client().market_order_buy("rej-1", "BTC-USD", **kwargs)
    assert (r.success, r.order_id, r.failure_reason) == (False, "", "UNKNOWN_FAILURE_REASON")
    assert r.error_response["error"] == error
    assert r.error_response["preview_failure_reason"] == preview
    assert coinbase.orders == {}


@pytest.mark.parametrize(("bracket", "error"), [
    ({"trigger_bracket_gtc": {"limit_price": "55000.001", "stop_trigger_price": "48000"}},
     "INVALID_ATTACHED_TAKE_PROFIT_PRICE_PRECISION"),
    ({"trigger_bracket_gtc": {"limit_price": "55000", "stop_trigger_price": "48000",
                              "base_size": "0.1"}}, "ATTACHED_ORDER_SIZE_MUST_BE_NIL"),
    ({"trigger_bracket_gtc": {"limit_price": "55000"}}, "SINGLE_LEGGED_TPSL_NOT_ALLOWED"),
    ({"trigger_bracket_gtc": {"limit_price": "49000", "stop_trigger_price": "48000"}},
     "ATTACHED_TAKE_PROFIT_PRICE_TOO_LOW"),
    ({"stop_limit_stop_limit_gtc": {"limit_price": "1", "stop_price": "2"}},
     "INVALID_ORDER_TYPE_FOR_ATTACHED"),
])
def test_a_bad_attached_bracket_is_rejected(rest_client, coinbase, bracket, error):
    r = _entry(rest_client(), bracket=bracket)
    assert r.success is False and r.error_response["error"] == error
    assert coinbase.orders == {}


def test_an_attached_bracket_needs_a_base_sized_market_or_limit_parent(rest_client, coinbase):
    client = rest_client()
    r = client.market_order_buy("q1", "BTC-USD", quote_size="100",
                                attached_order_configuration=BRACKET)
    assert r.error_response["error"] == "QUOTE_SIZE_NOT_ALLOWED_FOR_BRACKET"
    r = client.stop_limit_order_gtc_buy("s1", "BTC-USD", base_size="0.01", limit_price="52000",
                                        stop_price="51000",
                                        stop_direction="STOP_DIRECTION_STOP_UP",
                                        attached_order_configuration=BRACKET)
    assert r.error_response["error"] == "ATTACHED_ORDERS_ONLY_ALLOWED_ON_MARKET_LIMIT"


# -- never doubled, never lost ----------------------------------------------------------------


def test_a_duplicate_client_order_id_returns_the_existing_order(rest_client, coinbase):
    client = rest_client()
    first = _entry(client, "dup-1")
    again = _entry(client, "dup-1", size="0.2")
    assert again.success is True
    assert again.success_response == first.success_response
    assert again.order_configuration.market_market_ioc.base_size == "0.1"
    assert coinbase.submit_count("dup-1") == 2
    assert len(coinbase.orders) == 2                       # the entry and its bracket, once


def test_a_lost_response_leaves_the_order_at_the_venue(rest_client, coinbase):
    client = rest_client()
    coinbase.fail_next("POST /api/v3/brokerage/orders", mode="lose_response")
    with pytest.raises(requests.ConnectionError):
        _entry(client, "lost-1")
    placed = coinbase.order_by_client_id("lost-1")
    assert placed is not None and placed.status == "FILLED"
    listed = client.list_orders(product_ids=["BTC-USD"], order_status=["FILLED"]).orders
    assert [o.order_id for o in listed if o.client_order_id == "lost-1"] == [placed.order_id]
    # the documented recovery: the same client order id again returns it, places nothing
    again = _entry(client, "lost-1")
    assert again.success_response["order_id"] == placed.order_id
    assert coinbase.balance("BTC")[0] == D("0.1")


def test_429_with_retry_after_and_503_are_http_errors_without_side_effects(rest_client,
                                                                           coinbase):
    client = rest_client()
    coinbase.fail_next("POST /api/v3/brokerage/orders", status=429,
                       headers={"Retry-After": "1"})
    coinbase.fail_next("POST /api/v3/brokerage/orders", status=503)
    with pytest.raises(requests.HTTPError) as err:
        _entry(client, "rl-1")
    assert err.value.response.status_code == 429
    assert err.value.response.headers["Retry-After"] == "1"
    assert err.value.response.text.startswith("<html>")      # as Coinbase: not JSON
    with pytest.raises(requests.HTTPError, match="503 Server Error") as err:
        _entry(client, "rl-1")
    assert err.value.response.json()["error"] == "UNAVAILABLE"
    assert coinbase.orders == {}
    assert _entry(client, "rl-1").success is True
    assert [r["status"] for r in coinbase.requests] == [429, 503, 200]


def test_the_rate_limit_answers_429_with_the_sdk_rate_limit_headers(make_coinbase, rest_client):
    fake = make_coinbase(rate_limit=3)
    client = rest_client(fake, rate_limit_headers=True)
    first = client.get_api_key_permissions()
    assert (first.rate_limit_limit, first.rate_limit_remaining) == ("3", "2")
    client.get_api_key_permissions()
    client.get_api_key_permissions()
    with pytest.raises(requests.HTTPError, match="429"):
        client.get_api_key_permissions()


def test_a_slow_answer_times_the_client_out_but_the_order_is_placed(rest_client, coinbase):
    client = rest_client(timeout=(5, 0.2))          # connect 5 s, read 0.2 s (requests)
    coinbase.fail_next("POST /api/v3/brokerage/orders", mode="slow", seconds=0.5)
    with pytest.raises(requests.Timeout):
        _entry(client, "slow-1")
    deadline = time.monotonic() + 5
    while coinbase.order_by_client_id("slow-1") is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert coinbase.order_by_client_id("slow-1") is not None


# -- money ------------------------------------------------------------------------------------


def test_balances_fills_and_fees_add_up(rest_client, coinbase, clock):
    client = rest_client()
    _entry(client, "a")                                            # buy 0.1 at 50000, taker
    coinbase.set_price("BTC-USD", D("56000"), clock.advance(60))   # take-profit 55000, maker
    fills = client.get_fills(product_ids=["BTC-USD"], limit=1)
    assert len(fills.fills) == 1 and fills.cursor
    rest = client.get_fills(product_ids=["BTC-USD"], cursor=fills.cursor)
    everything = fills.fills + rest.fills
    assert rest.cursor == ""
    assert [(f.side, f.price, f.commission) for f in reversed(everything)] == [
        ("BUY", "50000", "30"), ("SELL", "55000", "22")]           # 60 and 40 bps
    usd = 10000 - 5000 - 30 + 5500 - 22
    accounts = {a.currency: a for a in client.get_accounts().accounts}
    assert accounts["USD"].available_balance["value"] == str(usd)
    assert accounts["BTC"].available_balance["value"] == "0"
    entry = client.list_orders(order_status=["FILLED"], order_side="BUY").orders[0]
    assert (entry.total_fees, entry.filled_value) == ("30", "5000")
    with pytest.raises(requests.HTTPError, match="unknown query parameter"):
        client.list_orders(client_order_id="a")


# -- more of the surface ------------------------------------------------------------------------


def test_an_ed25519_cdp_key_file_is_accepted(make_coinbase, tmp_path):
    from coinbase.rest import RESTClient

    key = make_cdp_key(algorithm="EdDSA")
    fake = make_coinbase(keys={key.name: key.public_pem})
    client = RESTClient(key_file=str(key.file_path(tmp_path)), base_url=fake.host, timeout=5)
    assert client.get_api_key_permissions().can_view is True
    assert fake.auth_failures == []


def test_preview_says_what_create_would_without_placing_anything(rest_client, coinbase):
    client = rest_client()
    ok = client.preview_market_order_buy("BTC-USD", base_size="0.1")
    assert (ok.errs, ok.order_total, ok.commission_total) == ([], "5030", "30")
    bad = client.preview_limit_order_gtc_buy("BTC-USD", base_size="0.1", limit_price="49000.005")
    assert bad.errs == ["PREVIEW_INVALID_PRICE_PRECISION"]
    assert coinbase.orders == {} and coinbase.submits == []


def test_open_orders_list_alone_and_a_filled_bracket_can_be_cancelled_no_more(rest_client,
                                                                               coinbase, clock):
    client = rest_client()
    bracket_id = _entry(client).success_response["attached_order_id"]
    client.limit_order_gtc_buy("rest-1", "ETH-USD", base_size="0.5", limit_price="2900",
                               post_only=True)
    open_now = client.list_orders(order_status=["OPEN"]).orders
    assert sorted(o.order_type for o in open_now) == ["BRACKET", "LIMIT"]
    with pytest.raises(requests.HTTPError, match="400"):
        client.list_orders(order_status=["OPEN", "FILLED"])
    crossing = client.limit_order_gtc_buy("po-1", "ETH-USD", base_size="0.5",
                                          limit_price="3100", post_only=True)
    assert crossing.error_response["error"] == "INVALID_LIMIT_PRICE_POST_ONLY"

    assert client.cancel_orders([bracket_id]).results[0].success is True
    assert coinbase.balance("BTC") == (D("0.1"), D("0"))            # the hold is released
    coinbase.set_price("BTC-USD", D("40000"), clock.advance(60))
    assert client.get_order(bracket_id).order.status == "CANCELLED"
    again = client.cancel_orders([bracket_id]).results[0]
    assert (again.success, again.failure_reason) == (False, "INVALID_CANCEL_REQUEST")


def test_a_standalone_stop_limit_triggers_on_its_direction(rest_client, coinbase, clock):
    client = rest_client()
    client.market_order_buy("b1", "BTC-USD", base_size="0.1")
    r = client.stop_limit_order_gtc_sell("sl-1", "BTC-USD", base_size="0.1",
                                         limit_price="47900", stop_price="48000",
                                         stop_direction="STOP_DIRECTION_STOP_DOWN")
    oid = r.success_response["order_id"]
    assert client.get_order(oid).order.trigger_status == "STOP_PENDING"
    coinbase.set_price("BTC-USD", D("49000"), clock.advance(60))
    assert client.get_order(oid).order.status == "OPEN"
    coinbase.set_price("BTC-USD", D("47000"), clock.advance(60))
    order = client.get_order(oid).order
    assert (order.status, order.trigger_status, order.average_filled_price) == (
        "FILLED", "STOP_TRIGGERED", "48000")


def test_a_product_with_trading_disabled_refuses_entries(rest_client, coinbase):
    coinbase.set_product("ETH-USD", trading_disabled=True)
    r = rest_client().market_order_buy("e1", "ETH-USD", base_size="0.1")
    assert r.error_response["preview_failure_reason"] == "PREVIEW_TRADING_DISABLED"
    with pytest.raises(KeyError):
        coinbase.set_product("ETH-USD", no_such_flag=True)


def test_a_partly_filled_limit_entry_cancelled_leaves_its_bracket_on_what_was_bought(
        rest_client, coinbase, clock):
    client = rest_client()
    r = client.limit_order_gtc_buy("part-1", "BTC-USD", base_size="0.1", limit_price="49000",
                                   attached_order_configuration={"trigger_bracket_gtc": {
                                       "limit_price": "52000", "stop_trigger_price": "47000"}})
    entry_id, bracket_id = r.success_response["order_id"], r.success_response["attached_order_id"]
    coinbase.fill_partially(entry_id, "0.04", ts=clock.advance(60))
    entry = client.get_order(entry_id).order
    assert (entry.status, entry.filled_size, entry.number_of_fills) == ("OPEN", "0.04", "1")
    assert coinbase.balance("USD")[1] == D("0.06") * 49000 * D("1.006")   # hold on the rest
    client.cancel_orders([entry_id])
    leg = client.get_order(bracket_id).order
    assert (leg.status, leg.order_configuration.trigger_bracket_gtc.base_size) == ("OPEN", "0.04")
    coinbase.set_price("BTC-USD", D("46000"), clock.advance(60))
    assert [f.size for f in client.get_fills(order_ids=[bracket_id]).fills] == ["0.04"]
    assert coinbase.balance("BTC") == (D("0"), D("0"))


def test_the_transaction_summary_names_the_fee_tier_the_fills_pay(rest_client, coinbase):
    client = rest_client()
    client.market_order_buy("t1", "BTC-USD", base_size="0.1")
    summary = client.get_transaction_summary()
    assert (summary.fee_tier["taker_fee_rate"], summary.fee_tier["maker_fee_rate"]) == (
        "0.006", "0.004")
    assert (summary.total_volume, summary.total_fees) == (5000.0, 30.0)


def test_a_standalone_sell_bracket_protects_held_coins(rest_client, coinbase, clock):
    client = rest_client()
    client.market_order_buy("hold-1", "BTC-USD", base_size="0.1")
    r = client.trigger_bracket_order_gtc_sell("br-1", "BTC-USD", base_size="0.1",
                                              limit_price="53000", stop_trigger_price="49000")
    oid = r.success_response["order_id"]
    assert coinbase.balance("BTC") == (D("0.1"), D("0.1"))
    coinbase.set_price("BTC-USD", D("53500"), clock.advance(60))
    order = client.get_order(oid).order
    assert (order.status, order.average_filled_price, order.order_type) == (
        "FILLED", "53000", "BRACKET")
    wrong = client.trigger_bracket_order_gtc_sell("br-2", "BTC-USD", base_size="0.1",
                                                  limit_price="49000", stop_trigger_price="53000")
    assert wrong.error_response["error"] == "INVALID_BRACKET_PRICES"


def test_a_gap_fills_a_triggered_stop_at_the_new_price_and_a_take_profit_at_its_limit(
        rest_client, coinbase, clock):
    client = rest_client()
    first = _entry(client, "g1").success_response["attached_order_id"]
    coinbase.set_price("BTC-USD", D("46000"), clock.advance(60), gap=True)   # above 45600
    fill = client.get_fills(order_ids=[first]).fills[0]
    assert (fill.price, fill.liquidity_indicator) == ("46000", "TAKER")
    coinbase.set_price("BTC-USD", D("50000"), clock.advance(60))
    second = _entry(client, "g2").success_response["attached_order_id"]
    coinbase.set_price("BTC-USD", D("60000"), clock.advance(60), gap=True)
    fill = client.get_fills(order_ids=[second]).fills[0]
    assert (fill.price, fill.liquidity_indicator) == ("55000", "MAKER")
