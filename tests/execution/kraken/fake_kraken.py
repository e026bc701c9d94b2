"""A loopback fake of Kraken's spot REST API, public and private, for the real ccxt client.

It extends the public fake (``tests/data/exchange/fake_exchange_server.py``: ``Assets``,
``AssetPairs`` and ``OHLC`` from the real bundled candles, TLS from a throw-away
``trustme`` CA, a movable ``now``) with the private endpoints ccxt 4.5's ``kraken``
client calls, in Kraken's documented wire format. Facts, each from Kraken's docs
(docs.kraken.com; no code copied) or ccxt 4.5.90's ``kraken.py``:

* **Authentication** (Spot REST Authentication guide): ``POST /0/private/<Method>``,
  form-encoded body with a ``nonce``; header ``API-Key`` (the public key) and ``API-Sign``
  = base64(HMAC-SHA512(base64-decoded secret, URI path + SHA256(nonce + POST data))), the
  path being the part from ``/0/private``. The nonce is "always increasing": one not above
  the last accepted for the key is refused. Answers: ``EAPI:Invalid key``,
  ``EAPI:Invalid signature``, ``EAPI:Invalid nonce`` (Spot Error Messages page).
* **Errors** are HTTP 200 with ``{"error": ["<Category>:<text>"], "result": {}}`` (the
  errors guide); a non-empty ``error`` array means the request failed.
* **Balances**: ``Balance`` (asset -> total), ``BalanceEx`` (``balance`` and
  ``hold_trade``; "available balance = balance + credit - credit_used - hold_trade",
  "held amounts only include spot non margin orders": open orders hold funds),
  ``TradeBalance``.
* **Orders**: ``AddOrder`` (``pair``, ``type``, ``ordertype`` market / limit / stop-loss /
  take-profit, ``volume``, ``price``, ``cl_ord_id``, ``userref``, ``oflags``,
  ``timeinforce``, ``close[ordertype]`` / ``close[price]`` (the conditional close: a
  second, opposite order placed when this one fills; one close order only, never both a
  profit target and a stop: Kraken support, "Conditional Close"), ``validate`` (inputs
  checked, nothing placed)) answers ``{"descr": {"order": ...}, "txid": [...]}``;
  ``QueryOrders``, ``OpenOrders``, ``ClosedOrders`` (50 a page, most recent first),
  ``TradesHistory`` (50 a page, most recent first, ``start`` exclusive), ``QueryTrades``,
  ``CancelOrder`` (by ``txid`` or ``cl_ord_id``; ``EOrder:Unknown order`` otherwise),
  ``CancelAll``, ``TradeVolume`` (the account's fee tier per pair, percent), and
  ``GetApiKeyInfo`` (the key's name and ``permissions``, e.g. ``query-funds``,
  ``withdraw-funds``, ``query-open-trades``, ``modify-trades``: Get API Key Info page).
* **cl_ord_id** (Spot Client Order Identifiers guide): a long UUID (36 characters), a short
  UUID (32 hex digits) or free text of at most 18 characters; unique among the client's
  OPEN orders only (a filled order's id may be used again).
* Order statuses ``pending``, ``open``, ``closed``, ``canceled`` (``reason`` "User
  requested"), ``expired``; a triggered stop has ``misc`` ``stopped``, a take-profit
  ``touched`` (Kraken's trading glossary).

Unconfirmed details, chosen here and named so a test can see them: the error text for a
``cl_ord_id`` already open (``EGeneral:Invalid arguments``, Kraken documents the
uniqueness, not its error), and that untriggered stop-loss / take-profit orders hold
funds like any open order (``hold_trigger_orders``, default True).

The matching model (a fake, not a market): each pair has one last price, moved by the
test with :meth:`FakeKraken.set_price` / :meth:`FakeKraken.step`. A market order fills at
once at the last price (taker). A limit order at or through the last price fills at once
at the last price (taker); otherwise it rests and fills at its limit price when the price
reaches it (maker). A stop-loss (sell: price falls to it) or take-profit (sell: price
rises to it) triggers when the price reaches its level and fills there as a market order
(taker); a price that jumps over a level (the open of :meth:`step`, or ``set_price(...,
gap=True)``) fills at the new price instead. A fill the account cannot pay for cancels the
order (reason ``Insufficient funds``). Fees: the account's tier (``fees`` percent, taker
0.40 / maker 0.25 by default: Kraken's lowest-volume spot tier), charged in the quote
currency (``oflags`` ``fciq``, Kraken's default for these pairs), rounded half-even to the
quote asset's decimals.

Faults (:meth:`FakeKraken.fail_next`): ``lose_response`` (processed, connection dropped
without an answer), ``rate_limit`` (``EAPI:Rate limit exceeded``, not processed), ``429``
(HTTP 429 with ``Retry-After``, not processed), ``5xx`` (HTTP status, not processed),
``5xx_after`` (processed, then HTTP 502), ``slow`` (processed, answered ``delay`` seconds
late), ``unavailable`` (``EService:Unavailable``, not processed).

Test-facing API: ``FakeKraken(key, secret_b64, balances=..., pairs=[...], now=...)``,
``.start()``, ``.base_url``, ``.ca_bundle``, ``.set_price``, ``.step``, ``.orders``,
``.trades``, ``.submits`` (every authenticated AddOrder body), ``.submit_count(cl_ord_id)``
(orders placed under it), ``.fail_next``, ``.requests``, ``.balance(asset)``, ``.stop()``,
and ``.control`` (TEST CONTROL, not Kraken's API: ``POST /_test/<name>`` runs a function
the test registered, so another process can drive the fake).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

sys.path.insert(0, str(Path(__file__).parents[2] / "data" / "exchange"))

from fake_exchange_server import NOW, FakeVenue, _Handler

D = Decimal
ZERO = D(0)
#: Kraken's asset names and decimals, as the public fake's ``Assets`` serves them.
ASSETS = {"BTC": ("XXBT", 10), "ETH": ("XETH", 10), "USD": ("ZUSD", 4)}
#: Pairs the public fake lists: canonical -> (pair id, altname, base, quote, pair decimals,
#: lot decimals, ordermin).
PAIRS = {"BTC-USD": ("XXBTZUSD", "XBTUSD", "BTC", "USD", 1, 8, D("0.00005")),
         "ETH-USD": ("XETHZUSD", "ETHUSD", "ETH", "USD", 2, 8, D("0.002"))}
#: The permissions a trading key gets by default (GetApiKeyInfo names; the example on
#: Kraken's page lists query-funds, withdraw-funds, query-open-trades, modify-trades).
TRADE_PERMISSIONS = ("query-funds", "query-open-trades", "query-closed-trades",
                     "modify-trades", "cancel-trades")
#: Which permission each private method needs (Kraken's "API key permissions" guide).
_NEEDS = {"Balance": "query-funds", "BalanceEx": "query-funds", "TradeBalance": "query-funds",
          "OpenOrders": "query-open-trades", "QueryOrders": "query-open-trades",
          "TradesHistory": "query-open-trades", "QueryTrades": "query-open-trades",
          "ClosedOrders": "query-closed-trades", "AddOrder": "modify-trades",
          "CancelOrder": "cancel-trades", "CancelAll": "cancel-trades",
          "TradeVolume": "query-funds", "GetApiKeyInfo": None}
#: The error for a cl_ord_id already used by an open order (wording unconfirmed).
DUPLICATE_CL_ORD_ID = "EGeneral:Invalid arguments"
_UUID_LONG = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_UUID_SHORT = re.compile(r"[0-9a-fA-F]{32}")
_FAULTS = ("lose_response", "rate_limit", "429", "5xx", "5xx_after", "slow", "unavailable")


def sign(path: str, body: str, nonce: str, secret_b64: str) -> str:
    """Return Kraken's ``API-Sign`` for a private request.

    ``base64(HMAC-SHA512(key=base64decode(secret), msg=path + SHA256(nonce + body)))``,
    the path from ``/0/private`` (Kraken, Spot REST Authentication).
    """
    digest = hashlib.sha256((nonce + body).encode()).digest()
    mac = hmac.new(base64.b64decode(secret_b64), path.encode() + digest, hashlib.sha512)
    return base64.b64encode(mac.digest()).decode()


def _fmt(value: Decimal, places: int) -> str:
    return format(value.quantize(D(1).scaleb(-places), ROUND_HALF_EVEN), "f")


def _flag(value: str | None) -> bool:
    return str(value).lower() in ("true", "1", "yes")


@dataclass
class KOrder:
    """One order as the fake holds it (Kraken's fields are built from it on demand)."""

    txid: str
    pair: str                     # canonical symbol, BTC-USD
    side: str                     # buy / sell
    ordertype: str                # market, limit, stop-loss, take-profit
    volume: Decimal
    price: Decimal | None         # limit price, or the trigger of stop-loss / take-profit
    opentm: float
    seq: int
    cl_ord_id: str | None = None
    userref: int | None = None
    oflags: str = "fciq"
    timeinforce: str = "GTC"
    close: dict[str, str] | None = None
    refid: str | None = None
    status: str = "open"
    reason: str | None = None
    closetm: float | None = None
    vol_exec: Decimal = ZERO
    cost: Decimal = ZERO
    fee: Decimal = ZERO
    misc: str = ""
    trades: list[str] = field(default_factory=list)

    @property
    def remaining(self) -> Decimal:
        return self.volume - self.vol_exec

    @property
    def is_open(self) -> bool:
        return self.status in ("pending", "open")


@dataclass
class Fault:
    """A misbehaviour queued for the next request to one method."""

    mode: str
    status: int = 503
    retry_after: float | None = None
    delay: float = 1.0


class FakeKraken(FakeVenue):
    """Kraken's REST API (public and private) on 127.0.0.1 over TLS, in a daemon thread.

    Parameters
    ----------
    key : str
        The API key (``API-Key`` header) the fake accepts.
    secret_b64 : str
        Its secret, base64 (as Kraken hands it out).
    balances : mapping of str to Decimal, optional
        Starting totals by currency code (``USD``, ``BTC``, ``ETH``); default USD 10000.
    pairs : iterable of str
        Canonical pairs open for trading (``BTC-USD``, ``ETH-USD``).
    now : int or callable () -> float
        The venue's time, UTC epoch seconds (order, trade and candle times).
    fees : mapping of str to (Decimal, Decimal), optional
        Canonical pair -> (maker %, taker %) of this account's tier; default (0.25, 0.40).
    permissions : iterable of str
        What the key may do (``GetApiKeyInfo`` names); default :data:`TRADE_PERMISSIONS`.
    key_name : str
        The key's name (``GetApiKeyInfo`` ``apiKeyName``).
    hold_trigger_orders : bool
        Untriggered stop-loss / take-profit orders hold funds like other open orders.
    tls : bool
        HTTPS from a test CA (default); its certificate is :attr:`ca_bundle`.
    """

    def __init__(self, key: str, secret_b64: str, *,
                 balances: Mapping[str, Decimal | str | int] | None = None,
                 pairs: Iterable[str] = ("BTC-USD", "ETH-USD"),
                 now: int | Callable[[], float] = NOW,
                 fees: Mapping[str, tuple[Decimal, Decimal]] | None = None,
                 permissions: Iterable[str] = TRADE_PERMISSIONS, key_name: str = "tradewarden-test",
                 hold_trigger_orders: bool = True, tls: bool = True) -> None:
        super().__init__("kraken", now, tls=tls)
        self.httpd.RequestHandlerClass = type("KrakenHandler", (_PrivateHandler,),
                                              {"venue_server": self})
        self.key, self.secret = key, secret_b64
        base64.b64decode(secret_b64, validate=True)        # a Kraken secret is base64
        self.key_name = key_name
        self.permissions = list(permissions)
        self.hold_trigger_orders = hold_trigger_orders
        self.pairs = [p for p in pairs]
        unknown = [p for p in self.pairs if p not in PAIRS]
        if unknown:
            raise ValueError(f"the fake knows {sorted(PAIRS)}, not {unknown}")
        self._balances: dict[str, Decimal] = {c: ZERO for c in ASSETS}
        for code, amount in (balances if balances is not None else {"USD": D(10000)}).items():
            if code not in ASSETS:
                raise ValueError(f"unknown currency {code!r}; the fake knows {sorted(ASSETS)}")
            self._balances[code] = D(str(amount))
        self.fees = {p: (D("0.25"), D("0.40")) for p in PAIRS}
        for p, (maker, taker) in (fees or {}).items():
            self.fees[p] = (D(str(maker)), D(str(taker)))
        self.prices: dict[str, Decimal] = {}
        self.orders: dict[str, KOrder] = {}
        self.trades: dict[str, dict[str, Any]] = {}
        #: Every authenticated AddOrder body (form fields), in arrival order, with
        #: ``_outcome``: ``placed:<txid>``, ``validated``, or the error text.
        self.submits: list[dict[str, str]] = []
        #: Every request: (method name, form fields, error or "").
        self.requests: list[tuple[str, dict[str, str], str]] = []
        self.faults: dict[str, list[Fault]] = {}
        #: TEST CONTROL, not part of Kraken's API: ``POST /_test/<name>`` with a JSON object
        #: body (no key checked, not recorded in :attr:`requests`) answers ``{"error": [],
        #: "result": control[name](body)}``, 404 for a name not registered, 500 naming the
        #: exception when the function fails. Lets a test drive the fake from another
        #: process (the SIGKILL suite's deployment walks the price through each bar).
        self.control: dict[str, Callable[[dict[str, Any]], Any]] = {}
        self.last_nonce: int = 0
        self._seq = 0
        self._trade_no = 0
        self._rng = random.Random(20260508)
        self.lock = threading.RLock()

    # -- test API --------------------------------------------------------------------------
    def start(self) -> FakeKraken:
        """Serve in a daemon thread; return self."""
        super().start()
        return self

    def balance(self, code: str) -> Decimal:
        """The account's total of ``code`` (``USD``, ``BTC``)."""
        with self.lock:
            return self._balances[code]

    def held(self, code: str) -> Decimal:
        """What open orders hold of ``code`` (``BalanceEx`` ``hold_trade``)."""
        with self.lock:
            return self._hold(code)

    def submit_count(self, cl_ord_id: str) -> int:
        """How many orders were placed under ``cl_ord_id`` (validate-only ones not counted)."""
        with self.lock:
            return sum(1 for o in self.orders.values() if o.cl_ord_id == cl_ord_id)

    def fail_next(self, method: str, mode: str = "5xx", *, status: int = 503,
                  retry_after: float | None = None, delay: float = 1.0, times: int = 1) -> None:
        """Make the next ``times`` requests to ``method`` (``AddOrder`` or ``/0/private/AddOrder``)
        misbehave.

        Parameters
        ----------
        mode : {"lose_response", "rate_limit", "429", "5xx", "5xx_after", "slow", "unavailable"}
            See the module notes.
        status : int
            HTTP status of ``5xx`` (``5xx_after`` answers 502).
        retry_after : float, optional
            ``Retry-After`` seconds of ``429``.
        delay : float
            Real seconds ``slow`` waits before answering.
        """
        if mode not in _FAULTS:
            raise ValueError(f"mode must be one of {', '.join(_FAULTS)}, got {mode!r}")
        name = method.rsplit("/", 1)[-1]
        with self.lock:
            self.faults.setdefault(name, []).extend(
                Fault(mode, status, retry_after, delay) for _ in range(times))

    def set_price(self, pair: str, price: Decimal | str | float, *, gap: bool = False) -> None:
        """Move ``pair``'s last price to ``price`` (rounded to the pair's tick), filling the
        resting orders it trades through (at their levels; at the new price with ``gap``)."""
        with self.lock:
            self._move(pair, D(str(price)), gap=gap)

    def step(self, pair: str, open_: Any, high: Any, low: Any, close: Any) -> None:
        """Walk one bar: a gap to ``open_``, then through the extremes to ``close`` (low
        first on a rising bar, high first on a falling one), filling what each move crosses."""
        o, h, lo, c = (D(str(x)) for x in (open_, high, low, close))
        with self.lock:
            self._move(pair, o, gap=pair in self.prices)
            for p in ((lo, h, c) if c >= o else (h, lo, c)):
                self._move(pair, p, gap=False)

    # -- time, ids -------------------------------------------------------------------------
    def _t(self) -> float:
        raw = self._now() if callable(self._now) else self._now
        return float(raw)

    def _id(self, head: str) -> str:
        abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
        parts = ["".join(self._rng.choice(abc) for _ in range(n)) for n in (5, 5, 6)]
        return f"{head}{parts[0]}-{parts[1]}-{parts[2]}"

    # -- funds -----------------------------------------------------------------------------
    def _hold(self, code: str) -> Decimal:
        held = ZERO
        for o in self.orders.values():
            if not o.is_open or (o.ordertype != "limit" and not self.hold_trigger_orders):
                continue
            _, _, _, base, quote, _, _, _ = self._pair(o.pair)
            if o.side == "sell" and base == code:
                held += o.remaining
            elif o.side == "buy" and quote == code:
                price = o.price if o.price is not None else self.prices.get(o.pair, ZERO)
                held += o.remaining * price * (1 + self.fees[o.pair][1] / 100)
        return held

    def _available(self, code: str) -> Decimal:
        return self._balances[code] - self._hold(code)

    def _pair(self, pair: str) -> tuple[str, str, str, str, str, int, int, Decimal]:
        pid, alt, base, quote, pdec, ldec, omin = PAIRS[pair]
        return pair, pid, alt, base, quote, pdec, ldec, omin

    def _by_kraken_pair(self, name: str) -> str | None:
        for p in self.pairs:
            pid, alt = PAIRS[p][0], PAIRS[p][1]
            if name in (pid, alt, f"{PAIRS[p][2]}/{PAIRS[p][3]}"):
                return p
        return None

    # -- matching --------------------------------------------------------------------------
    def _tick(self, pair: str) -> Decimal:
        return D(1).scaleb(-PAIRS[pair][4])

    def _move(self, pair: str, price: Decimal, *, gap: bool) -> None:
        if pair not in PAIRS:
            raise ValueError(f"unknown pair {pair!r}")
        price = price.quantize(self._tick(pair), ROUND_HALF_EVEN)
        before = self.prices.get(pair, price)
        self.prices[pair] = price
        lo, hi = min(before, price), max(before, price)
        while True:
            crossed = [o for o in self.orders.values()
                       if o.pair == pair and o.is_open and o.ordertype != "market"
                       and o.price is not None and self._triggered(o, price)
                       and (gap or lo <= o.price <= hi)]
            if not crossed:
                return
            # nearest level first along the path
            crossed.sort(key=lambda o: (abs(o.price - before), o.seq))
            o = crossed[0]
            at = price if gap else o.price
            if o.ordertype == "limit":
                at = o.price if not gap else (min(at, o.price) if o.side == "buy" else max(at, o.price))
                self._fill(o, at, maker=True)
            else:
                o.misc = "stopped" if o.ordertype == "stop-loss" else "touched"
                self._fill(o, at, maker=False)

    @staticmethod
    def _triggered(o: KOrder, price: Decimal) -> bool:
        up = (o.ordertype == "limit" and o.side == "sell") or \
             (o.ordertype == "stop-loss" and o.side == "buy") or \
             (o.ordertype == "take-profit" and o.side == "sell")
        return price >= o.price if up else price <= o.price

    def _fill(self, o: KOrder, price: Decimal, *, maker: bool) -> None:
        """Fill the rest of ``o`` at ``price``: balances, fee, a trade; then its close order."""
        _, pid, _, base, quote, pdec, _, _ = self._pair(o.pair)
        vol = o.remaining
        cost = price * vol
        rate = self.fees[o.pair][0 if maker else 1] / 100
        fee = (cost * rate).quantize(D(1).scaleb(-ASSETS[quote][1]), ROUND_HALF_EVEN)
        if o.side == "buy":
            if self._balances[quote] - (self._hold(quote) - self._own_hold(o, quote)) < cost + fee:
                return self._end(o, "canceled", "Insufficient funds")
            self._balances[quote] -= cost + fee
            self._balances[base] += vol
        else:
            if self._balances[base] - (self._hold(base) - self._own_hold(o, base)) < vol:
                return self._end(o, "canceled", "Insufficient funds")
            self._balances[base] -= vol
            self._balances[quote] += cost - fee
        self._trade_no += 1
        tid = self._id("T")
        t = self._t()
        self.trades[tid] = {"ordertxid": o.txid, "postxid": self._id("P"), "pair": pid,
                            "time": t, "type": o.side, "ordertype": o.ordertype,
                            "price": _fmt(price, pdec), "cost": format(cost, "f"), "fee": format(fee, "f"),
                            "vol": _fmt(vol, 8), "margin": "0.00000", "leverage": "0",
                            "misc": "", "trade_id": self._trade_no, "maker": maker,
                            "_seq": self._trade_no}
        o.trades.append(tid)
        o.vol_exec += vol
        o.cost += cost
        o.fee += fee
        self._end(o, "closed", None)
        if o.close:
            self._place_close(o)

    def _own_hold(self, o: KOrder, code: str) -> Decimal:
        """What ``o`` itself holds of ``code`` (it may use its own hold to fill)."""
        if not o.is_open or (o.ordertype != "limit" and not self.hold_trigger_orders):
            return ZERO
        _, _, _, base, quote, _, _, _ = self._pair(o.pair)
        if o.side == "sell" and code == base:
            return o.remaining
        if o.side == "buy" and code == quote:
            price = o.price if o.price is not None else self.prices.get(o.pair, ZERO)
            return o.remaining * price * (1 + self.fees[o.pair][1] / 100)
        return ZERO

    def _end(self, o: KOrder, status: str, reason: str | None) -> None:
        o.status, o.reason, o.closetm = status, reason, self._t()

    def _place_close(self, parent: KOrder) -> None:
        c = parent.close or {}
        self._seq += 1
        child = KOrder(self._id("O"), parent.pair, "sell" if parent.side == "buy" else "buy",
                       c["ordertype"], parent.vol_exec, D(c["price"]) if c.get("price") else None,
                       self._t(), self._seq, refid=parent.txid, oflags=parent.oflags)
        self.orders[child.txid] = child
        price = self.prices.get(child.pair)
        if price is not None and child.price is not None and self._triggered(child, price):
            self._move(child.pair, price, gap=True)

    # -- Kraken's representation -----------------------------------------------------------
    def descr(self, o: KOrder) -> dict[str, str]:
        _, _, alt, _, _, pdec, _, _ = self._pair(o.pair)
        px = "0" if o.price is None else _fmt(o.price, pdec)
        words = {"market": "market", "limit": f"limit {px}", "stop-loss": f"stop loss {px}",
                 "take-profit": f"take profit {px}"}[o.ordertype]
        close = ""
        if o.close:
            kind = o.close["ordertype"].replace("-", " ")
            close = f"close position @ {kind} {o.close.get('price', '')}".strip()
        return {"pair": alt, "type": o.side, "ordertype": o.ordertype, "price": px,
                "price2": "0", "leverage": "none",
                "order": f"{o.side} {_fmt(o.volume, 8)} {alt} @ {words}", "close": close}

    def info(self, o: KOrder, trades: bool = False) -> dict[str, Any]:
        """The order as QueryOrders / OpenOrders / ClosedOrders return it."""
        _, _, _, _, _, pdec, _, _ = self._pair(o.pair)
        avg = o.cost / o.vol_exec if o.vol_exec else ZERO
        out: dict[str, Any] = {
            "refid": o.refid, "userref": o.userref, "cl_ord_id": o.cl_ord_id,
            "status": o.status, "reason": o.reason, "opentm": o.opentm, "starttm": 0,
            "expiretm": 0, "descr": self.descr(o), "vol": _fmt(o.volume, 8),
            "vol_exec": _fmt(o.vol_exec, 8), "cost": format(o.cost, "f"), "fee": format(o.fee, "f"),
            "price": _fmt(avg, pdec + 4) if o.vol_exec else "0.00000",
            "stopprice": "0.00000", "limitprice": "0.00000", "misc": o.misc, "oflags": o.oflags}
        if o.closetm is not None:
            out["closetm"] = o.closetm
        if trades:
            out["trades"] = list(o.trades)
        return out

    @staticmethod
    def trade_info(trade: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in trade.items() if not k.startswith("_")}

    # -- private methods -------------------------------------------------------------------
    def call(self, method: str, form: dict[str, str]) -> dict[str, Any]:
        """Run one authenticated private method; return its ``result`` or raise
        :class:`KrakenError` with Kraken's error text."""
        need = _NEEDS.get(method, "")
        if need == "":
            raise KrakenError("EGeneral:Unknown method")
        if need is not None and need not in self.permissions:
            raise KrakenError("EGeneral:Permission denied")
        return getattr(self, f"_m_{method}")(form)

    def _m_Balance(self, form: dict[str, str]) -> dict[str, Any]:
        return {ASSETS[c][0]: _fmt(v, ASSETS[c][1]) for c, v in self._balances.items()}

    def _m_BalanceEx(self, form: dict[str, str]) -> dict[str, Any]:
        return {ASSETS[c][0]: {"balance": _fmt(v, ASSETS[c][1]),
                               "hold_trade": _fmt(self._hold(c), ASSETS[c][1])}
                for c, v in self._balances.items()}

    def _m_TradeBalance(self, form: dict[str, str]) -> dict[str, Any]:
        eb = self._balances["USD"] + sum(self._balances[b] * self.prices.get(p, ZERO)
                                         for p, (_, _, b, *_rest) in PAIRS.items())
        z = "0.0000"
        return {"eb": _fmt(eb, 4), "tb": _fmt(eb, 4), "m": z, "uv": z, "n": z, "c": z,
                "v": z, "e": _fmt(eb, 4), "mf": _fmt(eb, 4)}

    def _m_GetApiKeyInfo(self, form: dict[str, str]) -> dict[str, Any]:
        return {"apiKeyName": self.key_name, "apiKey": self.key, "nonce": str(self.last_nonce),
                "nonceWindow": 0, "permissions": list(self.permissions), "iban": "",
                "validUntil": "0", "queryFrom": "0", "queryTo": "0",
                "createdTime": str(int(self._t()) - 86400), "modifiedTime": str(int(self._t()) - 86400),
                "ipAllowlist": [], "lastUsed": str(int(self._t()))}

    def _m_TradeVolume(self, form: dict[str, str]) -> dict[str, Any]:
        out: dict[str, Any] = {"currency": "ZUSD", "volume": "0.0000"}
        pairs = [p for p in form.get("pair", "").split(",") if p]
        if pairs:
            taker, maker = {}, {}
            for name in pairs:
                p = self._by_kraken_pair(name)
                if p is None:
                    raise KrakenError("EQuery:Unknown asset pair")
                m, t = self.fees[p]
                row = {"minfee": "0.1000", "tiervolume": "0.0000", "nextvolume": "10000.0000"}
                taker[PAIRS[p][0]] = {"fee": _fmt(t, 4), "maxfee": "0.4000", "nextfee": "0.3500", **row}
                maker[PAIRS[p][0]] = {"fee": _fmt(m, 4), "maxfee": "0.2500", "nextfee": "0.2000",
                                      **row, "minfee": "0.0000"}
            out["fees"], out["fees_maker"] = taker, maker
        return out

    def _m_AddOrder(self, form: dict[str, str]) -> dict[str, Any]:
        record = dict(form)
        self.submits.append(record)
        try:
            result = self._add_order(form)
        except KrakenError as exc:
            record["_outcome"] = str(exc)
            raise
        record["_outcome"] = f"placed:{result['txid'][0]}" if "txid" in result else "validated"
        return result

    def _add_order(self, form: dict[str, str]) -> dict[str, Any]:
        pair = self._by_kraken_pair(form.get("pair", ""))
        if pair is None:
            raise KrakenError("EQuery:Unknown asset pair")
        _, _, _, base, quote, pdec, ldec, omin = self._pair(pair)
        side, otype = form.get("type"), form.get("ordertype")
        if side not in ("buy", "sell") or otype not in ("market", "limit", "stop-loss", "take-profit"):
            raise KrakenError("EGeneral:Invalid arguments")
        try:
            volume = D(form["volume"])
            price = D(form["price"]) if form.get("price") else None
        except (KeyError, ArithmeticError):
            raise KrakenError("EGeneral:Invalid arguments") from None
        if volume.as_tuple().exponent < -ldec or volume <= 0:
            raise KrakenError("EGeneral:Invalid arguments:volume")
        if otype != "market" and price is None:
            raise KrakenError("EGeneral:Invalid arguments:price")
        if price is not None and (price <= 0 or price.as_tuple().exponent < -pdec):
            raise KrakenError("EGeneral:Invalid arguments:price")
        if volume < omin:
            raise KrakenError("EOrder:Order minimum not met")
        cl = form.get("cl_ord_id")
        if cl is not None:
            if not (_UUID_LONG.fullmatch(cl) or _UUID_SHORT.fullmatch(cl)
                    or (len(cl) <= 18 and cl.isascii() and cl.isprintable())):
                raise KrakenError("EGeneral:Invalid arguments")
            if any(o.is_open and o.cl_ord_id == cl for o in self.orders.values()):
                raise KrakenError(DUPLICATE_CL_ORD_ID)
        close = None
        if form.get("close[ordertype]"):
            close = {"ordertype": form["close[ordertype]"]}
            if form.get("close[price]"):
                close["price"] = form["close[price]"]
            if close["ordertype"] not in ("limit", "stop-loss", "take-profit") or "price" not in close:
                raise KrakenError("EGeneral:Invalid arguments")
        self._seq += 1
        o = KOrder("", pair, side, otype, volume, price, self._t(), self._seq, cl_ord_id=cl,
                   userref=int(form["userref"]) if form.get("userref") else None,
                   oflags=form.get("oflags") or "fciq",
                   timeinforce=(form.get("timeinforce") or "GTC").upper(), close=close)
        descr = {"order": self.descr(o)["order"]}
        if close:
            descr["close"] = self.descr(o)["close"]
        if _flag(form.get("validate")):
            return {"descr": descr}
        last = self.prices.get(pair)
        if last is None:
            raise KrakenError("EService:Unavailable")
        if side == "buy":
            ref = price if otype == "limit" else last
            if volume * ref * (1 + self.fees[pair][1] / 100) > self._available(quote):
                raise KrakenError("EOrder:Insufficient funds")
        elif volume > self._available(base):
            raise KrakenError("EOrder:Insufficient funds")
        o.txid = self._id("O")
        self.orders[o.txid] = o
        if otype == "market" or (otype == "limit" and self._triggered(o, last)):
            self._fill(o, last, maker=False)
        elif otype != "limit" and self._triggered(o, last):
            o.misc = "stopped" if otype == "stop-loss" else "touched"
            self._fill(o, last, maker=False)
        elif o.timeinforce == "IOC":
            self._end(o, "canceled", "IOC order not filled")
        return {"descr": descr, "txid": [o.txid]}

    def _select(self, form: dict[str, str]) -> list[KOrder]:
        out = list(self.orders.values())
        if form.get("cl_ord_id"):
            out = [o for o in out if o.cl_ord_id == form["cl_ord_id"]]
        if form.get("userref"):
            out = [o for o in out if o.userref == int(form["userref"])]
        return out

    def _m_OpenOrders(self, form: dict[str, str]) -> dict[str, Any]:
        trades = _flag(form.get("trades"))
        return {"open": {o.txid: self.info(o, trades) for o in self._select(form) if o.is_open}}

    def _m_ClosedOrders(self, form: dict[str, str]) -> dict[str, Any]:
        trades = _flag(form.get("trades"))
        rows = [o for o in self._select(form) if not o.is_open]
        if form.get("start"):
            rows = [o for o in rows if (o.closetm or 0) > float(form["start"])]
        if form.get("end"):
            rows = [o for o in rows if (o.closetm or 0) <= float(form["end"])]
        rows.sort(key=lambda o: (o.closetm or 0, o.seq), reverse=True)
        ofs = int(form.get("ofs") or 0)
        return {"closed": {o.txid: self.info(o, trades) for o in rows[ofs:ofs + 50]},
                "count": len(rows)}

    def _m_QueryOrders(self, form: dict[str, str]) -> dict[str, Any]:
        ids = [t for t in form.get("txid", "").split(",") if t]
        if not ids or len(ids) > 50:
            raise KrakenError("EGeneral:Invalid arguments")
        out = {}
        for t in ids:
            o = self.orders.get(t)
            if o is None:
                raise KrakenError("EOrder:Invalid order")
            out[t] = self.info(o, _flag(form.get("trades")))
        return out

    def _m_TradesHistory(self, form: dict[str, str]) -> dict[str, Any]:
        rows = sorted(self.trades.items(), key=lambda kv: kv[1]["_seq"], reverse=True)
        if form.get("start"):
            rows = [(k, v) for k, v in rows if v["time"] > float(form["start"])]
        if form.get("end"):
            rows = [(k, v) for k, v in rows if v["time"] <= float(form["end"])]
        ofs = int(form.get("ofs") or 0)
        return {"trades": {k: self.trade_info(v) for k, v in rows[ofs:ofs + 50]}, "count": len(rows)}

    def _m_QueryTrades(self, form: dict[str, str]) -> dict[str, Any]:
        ids = [t for t in form.get("txid", "").split(",") if t]
        missing = [t for t in ids if t not in self.trades]
        if not ids or missing:
            raise KrakenError("EGeneral:Invalid arguments")
        return {t: self.trade_info(self.trades[t]) for t in ids}

    def _m_CancelOrder(self, form: dict[str, str]) -> dict[str, Any]:
        if form.get("cl_ord_id"):
            hits = [o for o in self.orders.values() if o.cl_ord_id == form["cl_ord_id"] and o.is_open]
        else:
            ref = form.get("txid", "")
            hits = [o for o in self.orders.values() if o.is_open and
                    (o.txid == ref or (ref.lstrip("-").isdigit() and o.userref == int(ref)))]
        if not hits:
            raise KrakenError("EOrder:Unknown order")
        for o in hits:
            self._end(o, "canceled", "User requested")
        return {"count": len(hits)}

    def _m_CancelAll(self, form: dict[str, str]) -> dict[str, Any]:
        hits = [o for o in self.orders.values() if o.is_open]
        for o in hits:
            self._end(o, "canceled", "User requested")
        return {"count": len(hits)}

    # -- authentication --------------------------------------------------------------------
    def authenticate(self, path: str, headers: Mapping[str, str], raw: str,
                     form: dict[str, str]) -> None:
        """Check ``API-Key``, ``API-Sign`` and the nonce as Kraken does; raise
        :class:`KrakenError` otherwise. An accepted nonce becomes the key's last."""
        if headers.get("API-Key") != self.key:
            raise KrakenError("EAPI:Invalid key")
        nonce = form.get("nonce", "")
        if not nonce.isdigit():
            raise KrakenError("EAPI:Invalid nonce")
        expected = sign(path, raw, nonce, self.secret)
        if not hmac.compare_digest(expected, headers.get("API-Sign", "")):
            raise KrakenError("EAPI:Invalid signature")
        if int(nonce) <= self.last_nonce:
            raise KrakenError("EAPI:Invalid nonce")
        self.last_nonce = int(nonce)


class KrakenError(Exception):
    """A Kraken error string (``EOrder:Insufficient funds``), answered as HTTP 200."""


class _PrivateHandler(_Handler):
    """The public fake's handler plus ``POST /0/private/<Method>``."""

    venue_server: FakeKraken

    def do_POST(self) -> None:
        server = self.venue_server
        path = urlparse(self.path).path
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        if path.startswith("/_test/"):              # TEST CONTROL (FakeKraken.control)
            return self._control(path[len("/_test/"):], raw)
        if not path.startswith("/0/private/"):
            return self.send(404, {"error": ["EGeneral:Unknown method"]})
        method = path.rsplit("/", 1)[-1]
        if self.headers.get("Content-Type", "").startswith("application/json"):
            form = {k: str(v) for k, v in json.loads(raw or "{}").items()}
        else:
            form = {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        with server.lock:
            queue = server.faults.get(method)
            fault = queue.pop(0) if queue else None
        if fault is not None and fault.mode in ("rate_limit", "429", "5xx", "unavailable"):
            server.requests.append((method, form, f"fault {fault.mode}"))
            if fault.mode == "rate_limit":
                return self.send(200, {"error": ["EAPI:Rate limit exceeded"]})
            if fault.mode == "unavailable":
                return self.send(200, {"error": ["EService:Unavailable"]})
            if fault.mode == "429":
                extra = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
                return self.send(429, "Too Many Requests", extra)
            return self.send(fault.status, "Service Unavailable")
        with server.lock:
            try:
                server.authenticate(path, self.headers, raw, form)
                result = server.call(method, form)
                body: dict[str, Any] = {"error": [], "result": result}
                server.requests.append((method, form, ""))
            except KrakenError as exc:
                body = {"error": [str(exc)], "result": {}}
                server.requests.append((method, form, str(exc)))
        if fault is not None and fault.mode == "lose_response":
            self.close_connection = True          # processed; the answer never leaves
            return None
        if fault is not None and fault.mode == "5xx_after":
            return self.send(502, "Bad Gateway")
        if fault is not None and fault.mode == "slow":
            time.sleep(fault.delay)
            try:
                return self.send(200, body)
            except OSError:               # the client gave up waiting: nobody reads it
                self.close_connection = True
                return None
        return self.send(200, body)

    def _control(self, name: str, raw: str) -> None:
        """Answer a TEST CONTROL request (see :attr:`FakeKraken.control`)."""
        hook = self.venue_server.control.get(name)
        if hook is None:
            return self.send(404, {"error": [f"no test control /_test/{name}"], "result": {}})
        try:
            body = json.loads(raw or "{}")
            if not isinstance(body, dict):
                raise TypeError("the body must be a JSON object")
            result = hook(body)
        except Exception as exc:  # noqa: BLE001 - the test's function failed: say which
            return self.send(500, {"error": [f"test control {name}: {exc!r}"], "result": {}})
        return self.send(200, {"error": [], "result": result})


__all__ = ["DUPLICATE_CL_ORD_ID", "PAIRS", "TRADE_PERMISSIONS", "FakeKraken", "KOrder",
           "KrakenError", "sign"]
