"""The Kraken fake speaks Kraken's documented wire format to the real ccxt client.

Signatures are checked as Kraken documents them (its published worked example is
reproduced), a forged or replayed request is refused with Kraken's error strings, open
orders hold funds, the price path fills and triggers resting orders, the conditional
close places its order when the entry fills, and each fault does what it says.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from decimal import Decimal as D
from urllib.parse import urlencode

import ccxt
import pytest
import requests
from conftest import KEY, SECRET
from fake_kraken import DUPLICATE_CL_ORD_ID, sign

LONG_ID = "6d1b345e-2821-40e2-ad83-4ecb18a06876"


def raw_post(fake, method: str, fields: dict, *, key=KEY, secret=SECRET, nonce=None):
    """One private request built by hand (not through ccxt)."""
    path = f"/0/private/{method}"
    nonce = nonce or str(int(time.time() * 1000) + 10_000_000)
    body = urlencode({"nonce": nonce, **fields})
    headers = {"API-Key": key, "API-Sign": sign(path, body, nonce, secret),
               "Content-Type": "application/x-www-form-urlencoded"}
    r = requests.post(fake.base_url + path, data=body, headers=headers, verify=fake.ca_bundle,
                      timeout=5)
    return r.status_code, r.json(), (path, body, headers)


def test_sign_reproduces_krakens_published_example():
    # Kraken, Spot REST Authentication: the worked example (a limit buy of 1.25 XBTUSD at 37500)
    secret = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
    body = "nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"
    assert sign("/0/private/AddOrder", body, "1616492376594", secret) == (
        "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ==")


def test_ccxt_signs_and_the_fake_accepts_it_a_forged_or_replayed_request_is_refused(kraken, client):
    ex = client()
    assert ex.fetch_balance()["total"]["USD"] == 10000.0
    assert kraken.requests[-1][0] == "BalanceEx" and kraken.requests[-1][2] == ""

    status, body, (path, raw, headers) = raw_post(kraken, "Balance", {})
    assert status == 200 and body["error"] == [] and body["result"]["ZUSD"] == "10000.0000"
    # the same request again: same nonce, valid signature -> the nonce is refused
    again = requests.post(kraken.base_url + path, data=raw, headers=headers,
                          verify=kraken.ca_bundle, timeout=5).json()
    assert again["error"] == ["EAPI:Invalid nonce"]

    forged = base64.b64encode(b"not the secret, but a well formed base64 one........").decode()
    assert raw_post(kraken, "Balance", {}, secret=forged)[1]["error"] == ["EAPI:Invalid signature"]
    assert raw_post(kraken, "Balance", {}, key="someone-else")[1]["error"] == ["EAPI:Invalid key"]
    # a body changed after signing
    nonce = str(int(time.time() * 1000) + 20_000_000)
    signed = urlencode({"nonce": nonce, "pair": "XXBTZUSD"})
    digest = hashlib.sha256((nonce + signed).encode()).digest()
    sig = base64.b64encode(hmac.new(base64.b64decode(SECRET), path.encode() + digest,
                                    hashlib.sha512).digest()).decode()
    tampered = requests.post(kraken.base_url + "/0/private/Balance",
                             data=urlencode({"nonce": nonce, "pair": "XETHZUSD"}),
                             headers={"API-Key": KEY, "API-Sign": sig}, verify=kraken.ca_bundle,
                             timeout=5).json()
    assert tampered["error"] == ["EAPI:Invalid signature"]
    with pytest.raises(ccxt.AuthenticationError):
        client(apiKey="someone-else").fetch_balance()


def test_open_orders_hold_funds_and_the_price_path_fills_them(kraken, client):
    ex = client()
    buy = ex.create_order("BTC/USD", "market", "buy", 0.1, None,
                          {"clientOrderId": LONG_ID, "oflags": "fciq"})
    o = kraken.orders[buy["id"]]
    assert o.status == "closed" and o.cl_ord_id == LONG_ID
    # 0.1 x 60000 = 6000, taker 0.40 % = 24 USD, in the quote currency
    assert kraken.balance("USD") == D(3976) and kraken.balance("BTC") == D("0.1")
    stop = ex.create_order("BTC/USD", "market", "sell", 0.1, None, {"stopLossPrice": 58000})
    assert kraken.orders[stop["id"]].ordertype == "stop-loss"
    assert ex.fetch_balance()["BTC"]["used"] == 0.1          # BalanceEx hold_trade
    with pytest.raises(ccxt.InsufficientFunds, match="EOrder:Insufficient funds"):
        ex.create_order("BTC/USD", "limit", "sell", 0.1, 66000)
    kraken.step("BTC-USD", 59500, 59800, 57000, 57200)        # falls through the stop
    s = kraken.orders[stop["id"]]
    assert (s.status, s.misc, s.cost) == ("closed", "stopped", D("5800.0"))
    trade = kraken.trades[s.trades[0]]
    assert (trade["price"], trade["fee"], trade["maker"]) == ("58000.0", "23.2000", False)
    assert kraken.balance("BTC") == 0 and kraken.balance("USD") == D(3976) + D(5800) - D("23.2")
    mine = ex.fetch_my_trades(None, (int(kraken._t()) - 60) * 1000)
    assert sorted(t["order"] for t in mine) == sorted([buy["id"], stop["id"]])
    closed = ex.fetch_closed_orders(None, None, None, {"clientOrderId": LONG_ID})
    assert [c["id"] for c in closed] == [buy["id"]]


def test_a_resting_limit_fills_at_its_price_as_maker_and_a_gap_fills_at_the_open(kraken, client):
    ex = client()
    lim = ex.create_order("BTC/USD", "limit", "buy", 0.01, 59000)
    assert kraken.orders[lim["id"]].status == "open"
    assert ex.fetch_balance()["USD"]["used"] == pytest.approx(0.01 * 59000 * 1.004)
    kraken.step("BTC-USD", 59900, 60100, 58800, 59500)
    trade = kraken.trades[kraken.orders[lim["id"]].trades[0]]
    assert (trade["price"], trade["maker"], trade["fee"]) == ("59000.0", True, "1.4750")
    stop = ex.create_order("BTC/USD", "market", "sell", 0.01, None, {"stopLossPrice": 58000})
    kraken.step("BTC-USD", 55000, 55500, 54000, 55200)        # gaps below the stop at the open
    assert kraken.trades[kraken.orders[stop["id"]].trades[0]]["price"] == "55000.0"


def test_conditional_close_places_its_order_when_the_entry_fills(kraken, client):
    ex = client()
    entry = ex.create_order("BTC/USD", "limit", "buy", 0.02, 59000,
                            {"close": {"ordertype": "stop-loss", "price": 57000}})
    body = kraken.submits[-1]
    assert (body["close[ordertype]"], body["close[price]"]) == ("stop-loss", "57000")
    assert len(kraken.orders) == 1
    kraken.set_price("BTC-USD", 58900)
    child = [o for o in kraken.orders.values() if o.refid == entry["id"]]
    assert len(child) == 1
    assert (child[0].ordertype, child[0].side, child[0].volume, child[0].status) == (
        "stop-loss", "sell", D("0.02"), "open")
    assert kraken.info(kraken.orders[entry["id"]])["descr"]["close"] == \
        "close position @ stop loss 57000"


def test_client_order_ids_follow_krakens_rules(kraken, client):
    ex = client()
    with pytest.raises(ccxt.BadRequest, match="EGeneral:Invalid arguments"):
        ex.create_order("BTC/USD", "market", "buy", 0.001, None,
                        {"clientOrderId": "tw-desk-12-take_profit"})     # 22 characters
    ex.create_order("BTC/USD", "limit", "buy", 0.001, 50000, {"clientOrderId": LONG_ID})
    with pytest.raises(ccxt.BaseError, match=DUPLICATE_CL_ORD_ID):
        ex.create_order("BTC/USD", "limit", "buy", 0.001, 50000, {"clientOrderId": LONG_ID})
    ex.cancel_order(None, "BTC/USD", {"clientOrderId": LONG_ID})
    # unique among OPEN orders only: a closed order's id may be used again
    ex.create_order("BTC/USD", "market", "buy", 0.001, None, {"clientOrderId": LONG_ID})
    assert kraken.submit_count(LONG_ID) == 2
    assert ex.fetch_open_orders(None, None, None, {"clientOrderId": LONG_ID}) == []
    assert ex.create_order("BTC/USD", "market", "buy", 0.001, None, {"clientOrderId": "free-text-18-chars"})


def test_faults(kraken, client, sim):
    ex = client()
    kraken.fail_next("AddOrder", "rate_limit")
    with pytest.raises(ccxt.DDoSProtection, match="EAPI:Rate limit exceeded"):
        ex.create_order("BTC/USD", "market", "buy", 0.001)
    kraken.fail_next("AddOrder", "429", retry_after=7)
    with pytest.raises(ccxt.RateLimitExceeded):
        ex.create_order("BTC/USD", "market", "buy", 0.001)
    assert ex.last_response_headers["Retry-After"] == "7"
    kraken.fail_next("AddOrder", "5xx", status=503)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        ex.create_order("BTC/USD", "market", "buy", 0.001)
    assert kraken.orders == {}                          # none of those was processed
    kraken.fail_next("AddOrder", "lose_response")
    with pytest.raises(ccxt.NetworkError):
        ex.create_order("BTC/USD", "market", "buy", 0.001, None, {"clientOrderId": LONG_ID})
    assert kraken.submit_count(LONG_ID) == 1            # processed; the answer was lost
    kraken.fail_next("Balance", "unavailable")
    with pytest.raises(ccxt.ExchangeNotAvailable, match="EService:Unavailable"):
        ex.privatePostBalance()


def test_fees_key_info_and_permissions(make_kraken, client):
    fake = make_kraken(fees={"BTC-USD": (D("0.20"), D("0.35"))},
                       permissions=["query-funds", "query-open-trades", "withdraw-funds"],
                       key_name="read-only")
    ex = client(fake)
    fee = ex.fetch_trading_fee("BTC/USD")
    assert (fee["maker"], fee["taker"]) == (0.002, 0.0035)
    info = ex.privatePostGetApiKeyInfo()["result"]
    assert info["apiKeyName"] == "read-only" and "withdraw-funds" in info["permissions"]
    with pytest.raises(ccxt.PermissionDenied, match="EGeneral:Permission denied"):
        ex.create_order("BTC/USD", "market", "buy", 0.001)
    assert fake.submits == []
