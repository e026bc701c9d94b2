"""A loopback HTTP server that speaks the public REST wire formats ccxt calls.

It serves, for one venue at a time, the endpoints ccxt 4.5's ``load_markets()`` and
``fetch_ohlcv()`` request, in the venue's documented response format, with candles cut
from the REAL bundled Coinbase data (``tradewarden.data`` BTC-USD / ETH-USD 1h):

coinbase (ccxt ``coinbase``, Advanced Trade API)
    GET /v2/currencies, /v2/currencies/crypto, /v2/exchange-rates   (fetch_currencies)
    GET /api/v3/brokerage/market/products[?product_type=FUTURE]    (fetch_markets v3)
    GET /api/v3/brokerage/market/products/{id}/candles?granularity=ONE_HOUR&start=&end=
        -> {"candles": [{"start","low","high","open","close","volume"}]} newest first,
        candles with start <= t < end; more than 350 in the span is rejected (400).
kraken
    GET /0/public/Assets, /0/public/AssetPairs
    GET /0/public/OHLC?pair=&interval=60&since=
        -> {"error": [], "result": {pair: [[time, o, h, l, c, vwap, volume, count]],
        "last": t}}: only the latest 720 entries (the one in progress at ``now`` last),
        those with time > since.
binance
    GET /api/v3/exchangeInfo
    GET /api/v3/klines?symbol=&interval=1h&startTime=&endTime=&limit=
        -> [[openTime, o, h, l, c, v, closeTime, quoteVolume, trades, takerBase,
        takerQuote, "0"]], startTime <= openTime <= endTime, first ``limit`` (max 1000,
        more is a 400 with code -1130).

Market metadata values are representative figures in each venue's documented format
(tick sizes, minimums, Kraken's first fee tier); the binance pairs are USDT-quoted and
serve the Coinbase USD candles (it is a fake: only the wire format is Binance's).

Test hooks: ``faults`` (candle-request number -> (status, headers, body)), ``fail_from``
(every candle request from that number on answers 500), ``transform`` (rewrites the
rows of a page: shuffle, repeat, empty), ``drop`` (timestamps removed from the data of
every pair, or ``(pair id, timestamp)`` removed from one pair's),
``outage`` (``(from_ts, to_ts)`` in the venue's time: every candle request while
``from_ts <= now < to_ts`` answers 503 Service Unavailable), and ``candle_log`` (every
candle request: monotonic time, venue time, path, query).

Time: the venue's "now" (``FakeVenue.now``, UTC epoch seconds) is a fixed number or a
callable (a test's controllable clock), so candles appear as simulated time passes. A
candle whose hour has not begun at ``now`` is never served; the candle in progress at
``now`` is served as the venues serve it (Coinbase's candles endpoint and Kraken's last
OHLC entry do), built from the bundled candle of that hour as far as it has got: with
``f = (now - open time) / 3600``, open = the bundled open, close = ``open + f x (close -
open)``, high/low = the larger/smaller of those two, volume = ``f x volume``. Only after
the hour has closed does the bundled candle itself appear.

TLS: ``FakeVenue(..., tls=True)`` serves HTTPS on 127.0.0.1 with a server certificate
(for ``127.0.0.1`` and ``localhost``) issued by a throw-away test CA (``trustme``); the
CA's certificate is written to :attr:`FakeVenue.ca_bundle`, a PEM file a test names in
``REQUESTS_CA_BUNDLE`` so the real client verifies the server. TLS handshakes that fail
(a client that does not trust the CA) are counted in ``tls_failures``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np

from tradewarden.data import load_market_data

Row = tuple[int, float, float, float, float, float]

HOUR = 3600
#: The fake venues' "now": half past the last bundled bar's open, so the bundled
#: 2026-05-08T16:00Z bar is the one in progress and everything before it is closed.
NOW = int(datetime(2026, 5, 8, 16, 30, tzinfo=UTC).timestamp())


def ts_of(text: str) -> int:
    """UTC epoch seconds of an ISO time (naive = UTC)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())

_GRANULARITY = {"ONE_MINUTE": 60, "FIVE_MINUTE": 300, "FIFTEEN_MINUTE": 900,
                "THIRTY_MINUTE": 1800, "ONE_HOUR": 3600, "TWO_HOUR": 7200,
                "SIX_HOUR": 21600, "ONE_DAY": 86400}
_BINANCE_INTERVAL = {"1m": 60, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600, "4h": 14400,
                     "1d": 86400}

_SOURCE_CACHE: dict[str, dict[str, np.ndarray]] = {}


def source_rows(symbol: str = "BTC-USD") -> dict[str, np.ndarray]:
    """The bundled 1h candles of a symbol as arrays ``ts, open, high, low, close, volume``."""
    if symbol not in _SOURCE_CACHE:
        s = load_market_data([symbol]).series[symbol]
        _SOURCE_CACHE[symbol] = {k: np.asarray(getattr(s, k)).copy()
                                 for k in ("ts", "open", "high", "low", "close", "volume")}
    return _SOURCE_CACHE[symbol]


def num(x: float) -> str:
    """A float as the shortest text that parses back to the same float."""
    return repr(float(x))


# per-venue pair ids for the two bundled symbols
PAIRS = {
    "coinbase": {"BTC-USD": "BTC-USD", "ETH-USD": "ETH-USD"},
    "kraken": {"BTC-USD": "XXBTZUSD", "ETH-USD": "XETHZUSD"},
    "binance": {"BTC-USD": "BTCUSDT", "ETH-USD": "ETHUSDT"},
}


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that, given an SSL context, does each TLS handshake in the
    connection's own thread (a client that stalls or fails it holds up nobody else)."""

    ssl_context: ssl.SSLContext | None = None
    tls_failures = 0

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.ssl_context is None:
            return super().finish_request(request, client_address)
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except OSError:                   # handshake refused: the client does not trust us
            self.tls_failures += 1
            return None
        try:
            return super().finish_request(tls, client_address)
        finally:
            tls.close()


class FakeVenue:
    """One venue's public API on 127.0.0.1 (random free port), in a daemon thread.

    Parameters
    ----------
    venue : str
        ``coinbase``, ``kraken`` or ``binance``.
    now : int or callable () -> float
        The venue's current time, UTC epoch seconds, or a callable read on every request.
    tls : bool, default False
        Serve HTTPS with a certificate from a test CA (see :attr:`ca_bundle`).
    outage : (int, int), optional
        ``(from_ts, to_ts)``, venue time: candle requests in ``[from_ts, to_ts)`` get 503.
    """

    def __init__(self, venue: str, now: int | Callable[[], float], *, tls: bool = False,
                 outage: tuple[int, int] | None = None) -> None:
        self.venue = venue
        self.now = now
        self.data = {pid: source_rows(sym) for sym, pid in PAIRS[venue].items()}
        self.faults: dict[int, tuple[int, dict[str, str], str]] = {}
        self.fail_from: int | None = None
        self.transform: Callable[[int, list[Row]], list[Row]] | None = None
        self.drop: set[int | tuple[str, int]] = set()
        self.outage = outage
        self.candle_log: list[dict[str, Any]] = []
        self.other_log: list[str] = []
        self._lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"venue_server": self})
        self.httpd = _Server(("127.0.0.1", 0), handler)
        self.ca_bundle: str | None = None
        self._tmp: str | None = None
        if tls:
            import trustme

            ca = trustme.CA()
            cert = ca.issue_cert("127.0.0.1", "localhost")
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            cert.configure_cert(context)
            self.httpd.ssl_context = context
            self._tmp = tempfile.mkdtemp(prefix="fake-venue-ca-")
            self.ca_bundle = os.path.join(self._tmp, "ca.pem")
            ca.cert_pem.write_to_path(self.ca_bundle)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)

    # -- time ----------------------------------------------------------------------------

    @property
    def now(self) -> int:
        """The venue's current time, whole UTC epoch seconds."""
        return int(self._now()) if callable(self._now) else int(self._now)

    @now.setter
    def now(self, value: int | Callable[[], float]) -> None:
        self._now = value if callable(value) else int(value)

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        scheme = "https" if self.httpd.ssl_context is not None else "http"
        return f"{scheme}://{host}:{port}"

    @property
    def tls_failures(self) -> int:
        """TLS handshakes the server refused or that failed (untrusted certificate)."""
        return self.httpd.tls_failures

    def start(self) -> FakeVenue:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def point(self, exchange: Any) -> Any:
        """Point every ``exchange.urls['api']`` entry at this server, keeping the paths."""
        api = exchange.urls["api"]
        items = api.items() if isinstance(api, dict) else [("rest", api)]
        new = {}
        for key, url in items:
            parsed = urlparse(url)
            new[key] = self.base_url + parsed.path
        exchange.urls["api"] = new
        return exchange

    # -- data ----------------------------------------------------------------------------

    def rows(self, pair_id: str, lo: int, hi: int, now: int | None = None) -> list[Row]:
        """Candles with lo <= ts < hi and ts <= now, ascending, minus ``drop``.

        The candle in progress at ``now`` (default :attr:`now`) is the partial one
        described in the module docstring; candles not begun yet are left out.
        """
        now = self.now if now is None else now
        d = self.data[pair_id]
        i = int(np.searchsorted(d["ts"], lo, side="left"))
        j = int(np.searchsorted(d["ts"], min(hi, now + 1), side="left"))
        out = []
        for k in range(i, j):
            t = int(d["ts"][k])
            if t in self.drop or (pair_id, t) in self.drop:
                continue
            o, h, lo_, c, v = (float(d["open"][k]), float(d["high"][k]), float(d["low"][k]),
                               float(d["close"][k]), float(d["volume"][k]))
            if t + HOUR > now:                      # in progress: as far as it has got
                f = (now - t) / HOUR
                c = o + f * (c - o)
                h, lo_, v = max(o, c), min(o, c), f * v
            out.append((t, o, h, lo_, c, v))
        return out

    def candle_request(self, path: str, query: dict[str, str]
                       ) -> tuple[int, tuple[int, dict[str, str], str] | None]:
        """Log a candle request; return its number and a fault to answer with, if any."""
        now = self.now
        with self._lock:
            self.candle_log.append({"t": time.monotonic(), "now": now, "path": path,
                                    "query": dict(query)})
            n = len(self.candle_log)
        if n in self.faults:
            return n, self.faults[n]
        if self.fail_from is not None and n >= self.fail_from:
            return n, (500, {}, "Internal Server Error")
        if self.outage is not None and self.outage[0] <= now < self.outage[1]:
            return n, (503, {}, "Service Unavailable")
        return n, None

    def shape(self, n: int, rows: list[Row]) -> list[Row]:
        return self.transform(n, rows) if self.transform is not None else rows


class _Handler(BaseHTTPRequestHandler):
    venue_server: FakeVenue
    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes; without TCP_NODELAY the second waits for the
    # client's delayed ACK (~40 ms a response on Linux loopback).
    disable_nagle_algorithm = True

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        text = body if isinstance(body, str) else json.dumps(body)
        data = text.encode()
        self.send_response(status)
        ctype = "application/json" if not isinstance(body, str) or text[:1] in "{[" else "text/plain"
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        server = self.venue_server
        route = getattr(self, f"_{server.venue}")
        try:
            route(url.path, query)
        except Exception as exc:  # a bug in the fake: make it visible as a 599
            self.send(599, f"fake server error: {type(exc).__name__}: {exc}")

    # -- coinbase (Advanced Trade) -------------------------------------------------------

    def _coinbase(self, path: str, q: dict[str, str]) -> None:
        s = self.venue_server
        if path == "/v2/currencies":
            s.other_log.append(path)
            return self.send(200, {"data": [{"id": "USD", "name": "US Dollar", "min_size": "0.01"}]})
        if path == "/v2/currencies/crypto":
            s.other_log.append(path)
            return self.send(200, {"data": [
                {"asset_id": "5b71fc48-3dd3-540c-809b-f8c94d0e68b5", "code": "BTC",
                 "name": "Bitcoin", "color": "#F7931A", "sort_index": 100, "exponent": 8,
                 "type": "crypto", "address_regex": "^([13][a-km-zA-HJ-NP-Z1-9]{25,34})$"},
                {"asset_id": "d85dce9b-5b73-5c3c-8978-522ce1d1c1b4", "code": "ETH",
                 "name": "Ethereum", "color": "#627EEA", "sort_index": 102, "exponent": 8,
                 "type": "crypto", "address_regex": "^(?:0x)?[0-9a-fA-F]{40}$"}]})
        if path == "/v2/exchange-rates":
            s.other_log.append(path)
            return self.send(200, {"data": {"currency": "USD",
                                            "rates": {"BTC": "0.0000101", "ETH": "0.00033"}}})
        if path == "/api/v3/brokerage/market/products":
            s.other_log.append(path + ("?" + q["product_type"] if "product_type" in q else ""))
            if q.get("product_type") == "FUTURE":
                return self.send(200, {"products": [], "num_products": 0})
            return self.send(200, {"products": [
                _coinbase_product("BTC-USD", "BTC", "Bitcoin", "0.00000001", "0.01",
                                  "0.00000001", "3400"),
                _coinbase_product("ETH-USD", "ETH", "Ethereum", "0.00000001", "0.01",
                                  "0.00000001", "38000")], "num_products": 2})
        prefix = "/api/v3/brokerage/market/products/"
        if path.startswith(prefix) and path.endswith("/candles"):
            product = path[len(prefix):-len("/candles")]
            n, fault = s.candle_request(path, q)
            if fault:
                return self.send(fault[0], fault[2], fault[1])
            if product not in s.data:
                return self.send(404, {"error": "NOT_FOUND", "error_details": "product not found",
                                       "message": "product not found"})
            gran = _GRANULARITY.get(q.get("granularity", ""))
            if gran is None or "start" not in q or "end" not in q:
                return self.send(400, {"error": "INVALID_ARGUMENT",
                                       "error_details": "start, end and granularity required",
                                       "message": "invalid argument"})
            lo, hi = int(q["start"]), int(q["end"])
            if (hi - lo) // gran > 350:
                return self.send(400, {"error": "INVALID_ARGUMENT", "error_details":
                                       "start and end argument is invalid - number of candles "
                                       "requested should be less than 350",
                                       "message": "invalid argument"})
            newest_first = sorted(s.rows(product, lo, hi), key=lambda r: -r[0])
            rows = s.shape(n, newest_first)
            return self.send(200, {"candles": [
                {"start": str(t), "low": num(lo_), "high": num(h), "open": num(o),
                 "close": num(c), "volume": num(v)} for t, o, h, lo_, c, v in rows]})
        return self.send(404, {"error": "NOT_FOUND", "message": f"no route {path}"})

    # -- kraken --------------------------------------------------------------------------

    def _kraken(self, path: str, q: dict[str, str]) -> None:
        s = self.venue_server
        if path == "/0/public/Assets":
            s.other_log.append(path)
            return self.send(200, {"error": [], "result": {
                "XXBT": {"aclass": "currency", "altname": "XBT", "decimals": 10,
                         "display_decimals": 5, "collateral_value": 1.0, "status": "enabled"},
                "XETH": {"aclass": "currency", "altname": "ETH", "decimals": 10,
                         "display_decimals": 5, "collateral_value": 1.0, "status": "enabled"},
                "ZUSD": {"aclass": "currency", "altname": "USD", "decimals": 4,
                         "display_decimals": 2, "collateral_value": 1.0, "status": "enabled"}}})
        if path == "/0/public/AssetPairs":
            s.other_log.append(path)
            return self.send(200, {"error": [], "result": {
                "XXBTZUSD": _kraken_pair("XBTUSD", "XBT/USD", "XXBT", 1, "0.00005", "0.5", "0.1"),
                "XETHZUSD": _kraken_pair("ETHUSD", "ETH/USD", "XETH", 2, "0.002", "0.5", "0.01")}})
        if path == "/0/public/OHLC":
            n, fault = s.candle_request(path, q)
            if fault:
                return self.send(fault[0], fault[2], fault[1])
            pair = q.get("pair", "")
            if pair not in s.data:
                return self.send(200, {"error": ["EQuery:Unknown asset pair"]})
            tf = int(q.get("interval", "1")) * 60
            now = s.now
            open_bar = now // tf * tf                         # the entry in progress
            first = open_bar - 719 * tf                       # latest 720 entries only
            since = int(q["since"]) if "since" in q else -1
            rows = [r for r in s.rows(pair, first, open_bar + tf, now) if r[0] > since]
            rows = s.shape(n, rows)
            entries = [[t, num(o), num(h), num(lo), num(c), num((h + lo + c) / 3), num(v),
                        max(1, int(v))] for t, o, h, lo, c, v in rows]
            committed = [e[0] for e in entries if e[0] < open_bar]
            last = committed[-1] if committed else (since if since > 0 else first)
            return self.send(200, {"error": [], "result": {pair: entries, "last": last}})
        return self.send(404, {"error": ["EGeneral:Unknown method"]})

    # -- binance -------------------------------------------------------------------------

    def _binance(self, path: str, q: dict[str, str]) -> None:
        s = self.venue_server
        if path == "/api/v3/exchangeInfo":
            s.other_log.append(path)
            return self.send(200, {
                "timezone": "UTC", "serverTime": s.now * 1000,
                "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE",
                                "intervalNum": 1, "limit": 6000}],
                "exchangeFilters": [],
                "symbols": [_binance_symbol("BTCUSDT", "BTC", "0.01", "0.00001", "5"),
                            _binance_symbol("ETHUSDT", "ETH", "0.01", "0.0001", "5")]})
        if path == "/api/v3/klines":
            n, fault = s.candle_request(path, q)
            if fault:
                return self.send(fault[0], fault[2], fault[1])
            symbol = q.get("symbol", "")
            if symbol not in s.data:
                return self.send(400, {"code": -1121, "msg": "Invalid symbol."})
            tf = _BINANCE_INTERVAL.get(q.get("interval", ""))
            limit = int(q.get("limit", "500"))
            if tf is None:
                return self.send(400, {"code": -1120, "msg": "Invalid interval."})
            if not 1 <= limit <= 1000:
                return self.send(400, {"code": -1130,
                                       "msg": "Data sent for parameter 'limit' is not valid."})
            lo = -(-int(q.get("startTime", "0")) // 1000)
            now = s.now
            hi = int(q["endTime"]) // 1000 + 1 if "endTime" in q else now
            rows = s.rows(symbol, lo, hi, now)[:limit]
            rows = s.shape(n, rows)
            return self.send(200, [
                [t * 1000, num(o), num(h), num(lo_), num(c), num(v), t * 1000 + tf * 1000 - 1,
                 num(v * c), max(1, int(v)), num(v / 2), num(v * c / 2), "0"]
                for t, o, h, lo_, c, v in rows])
        return self.send(404, {"code": -1, "msg": f"no route {path}"})


def _coinbase_product(pid: str, base: str, name: str, base_inc: str, price_inc: str,
                      base_min: str, base_max: str) -> dict[str, Any]:
    return {"product_id": pid, "price": "60000", "price_percentage_change_24h": "0",
            "volume_24h": "1000", "volume_percentage_change_24h": "0",
            "base_increment": base_inc, "quote_increment": price_inc, "quote_min_size": "1",
            "quote_max_size": "150000000", "base_min_size": base_min, "base_max_size": base_max,
            "base_name": name, "quote_name": "US Dollar", "watched": False, "is_disabled": False,
            "new": False, "status": "online", "cancel_only": False, "limit_only": False,
            "post_only": False, "trading_disabled": False, "auction_mode": False,
            "product_type": "SPOT", "quote_currency_id": "USD", "base_currency_id": base,
            "fcm_trading_session_details": None, "mid_market_price": "", "alias": "",
            "alias_to": [], "base_display_symbol": base, "quote_display_symbol": "USD",
            "view_only": False, "price_increment": price_inc, "display_name": pid,
            "product_venue": "CBE"}


def _kraken_pair(altname: str, wsname: str, base: str, pair_decimals: int, ordermin: str,
                 costmin: str, tick: str) -> dict[str, Any]:
    return {"altname": altname, "wsname": wsname, "aclass_base": "currency", "base": base,
            "aclass_quote": "currency", "quote": "ZUSD", "lot": "unit", "cost_decimals": 5,
            "pair_decimals": pair_decimals, "lot_decimals": 8, "lot_multiplier": 1,
            "leverage_buy": [2, 3, 4, 5], "leverage_sell": [2, 3, 4, 5],
            "fees": [[0, 0.4], [10000, 0.35], [50000, 0.24]],
            "fees_maker": [[0, 0.25], [10000, 0.2], [50000, 0.14]],
            "fee_volume_currency": "ZUSD", "margin_call": 80, "margin_stop": 40,
            "ordermin": ordermin, "costmin": costmin, "tick_size": tick, "status": "online"}


def _binance_symbol(symbol: str, base: str, tick: str, step: str, min_notional: str
                    ) -> dict[str, Any]:
    return {"symbol": symbol, "status": "TRADING", "baseAsset": base, "baseAssetPrecision": 8,
            "quoteAsset": "USDT", "quotePrecision": 8, "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT",
                           "TAKE_PROFIT_LIMIT"],
            "icebergAllowed": True, "ocoAllowed": True, "otoAllowed": True,
            "quoteOrderQtyMarketAllowed": True, "allowTrailingStop": True,
            "cancelReplaceAllowed": True, "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": True,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "1000000.00",
                 "tickSize": tick},
                {"filterType": "LOT_SIZE", "minQty": step, "maxQty": "9000.00000000",
                 "stepSize": step},
                {"filterType": "NOTIONAL", "minNotional": min_notional,
                 "applyMinToMarket": True, "maxNotional": "9000000.00000000",
                 "applyMaxToMarket": False, "avgPriceMins": 5}],
            "permissions": [], "permissionSets": [["SPOT", "MARGIN"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"]}


def shuffle_page(seed: int = 7) -> Callable[[int, list[Row]], list[Row]]:
    """A transform that returns every page's candles in a random order."""
    rng = random.Random(seed)

    def transform(n: int, rows: list[Row]) -> list[Row]:
        rows = list(rows)
        rng.shuffle(rows)
        return rows

    return transform
