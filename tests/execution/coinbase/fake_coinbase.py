"""A loopback fake of Coinbase Advanced Trade (REST API v3, ``/api/v3/brokerage``).

The official SDK (``coinbase-advanced-py``, ``coinbase.rest.RESTClient``) runs against it
unmodified: ``RESTClient(api_key=key.name, api_secret=key.private_pem,
base_url=fake.host)`` with ``REQUESTS_CA_BUNDLE=fake.ca_bundle`` in the environment.

Wire facts it follows, each read from the SDK 1.8.4 source or Coinbase's API reference
(docs.cdp.coinbase.com/api-reference/advanced-trade-api/rest-api/...; facts, no code):

* TLS only: the SDK always requests ``https://{base_url}{path}`` (rest_base.py
  ``send_request``). The certificate comes from a throw-away ``trustme`` CA whose
  certificate is written to :attr:`FakeCoinbase.ca_bundle`.
* Authentication (jwt_generator.py ``build_jwt``): ``Authorization: Bearer <JWT>``, ES256
  with the CDP key's EC P-256 private key (EdDSA with an Ed25519 key), header ``kid`` =
  key name and a ``nonce``, claims ``sub`` = key name, ``iss`` = ``"cdp"``, ``nbf`` = now,
  ``exp`` = now + 120 s, ``uri`` = ``"METHOD host:port/path"`` (no query string). A missing,
  forged, expired or mismatched token gets ``401`` with the plain-text body
  ``Unauthorized`` (observed on the real service, CLIENT-FACTS.md).
* Permissions: a view-only key gets ``403`` with ``"error_details":"Missing required
  scopes"`` on trading endpoints (the exact text the SDK's ``handle_exception`` looks for).
* Order rejections are HTTP ``200`` with ``success: false`` and ``error_response``
  ``{error, message, error_details, preview_failure_reason, new_order_failure_reason}``,
  top-level ``failure_reason`` ``UNKNOWN_FAILURE_REASON`` and ``order_id`` ``""``
  (captured responses quoted in several client test suites, e.g. INSUFFICIENT_FUND with
  "Insufficient balance in source account" and preview reason PREVIEW_INSUFFICIENT_FUND;
  "Too many decimals in order amount" / "... order price" for precision).
* A duplicate ``client_order_id`` does not create a second order: Create Order reference,
  ``client_order_id``: "If the ID provided is not unique, the order will not be created
  and the order corresponding with that ID will be returned instead." The enum
  ``NewOrderFailureReason`` also lists ``DUPLICATE_CLIENT_ORDER_ID``; set
  ``duplicate_client_order_id="reject"`` to get that answer instead.
* Every other 4xx/5xx body is JSON ``{error, code, message, details}`` (gRPC-gateway
  style; the SDK raises ``requests.HTTPError`` with the text).

The matching model (a fake, not a market): each product has one price, moved by the
test with :meth:`FakeCoinbase.set_price` / :meth:`FakeCoinbase.step`. A market order
fills at once at the current price (buy at price + spread/2, sell at price - spread/2).
A resting limit fills at its limit price when the price reaches it (maker). A move from
p0 to p1 trades through every price between, nearest level first, so a stop triggers at
its trigger price and its stop-limit fills there (taker). ``set_price(..., gap=True)``
jumps instead: orders crossed by the jump act at the new price, and a triggered stop-limit
whose limit the new price is beyond rests unfilled.

Attached brackets: ``attached_order_configuration.trigger_bracket_gtc`` ``{limit_price,
stop_trigger_price}`` (no size: the preview-orders page, "Size field must be omitted as
the size of the attached order is the same as that of the parent order"; parent market or
limit in ``base_size``) creates a second order at once, returned as ``attached_order_id``:
order type ``BRACKET``, the opposite side, ``originating_order_id`` the parent, status
``PENDING`` until the parent fills, then ``OPEN`` with ``trigger_status`` ``STOP_PENDING``.
Its take-profit rests as a limit at ``limit_price``; its stop triggers at
``stop_trigger_price`` (``trigger_status`` ``STOP_TRIGGERED``) and becomes a stop-limit
whose limit is :attr:`FakeCoinbase.stop_limit_buffer` (5 %) beyond the trigger, rounded to
the price increment away from the market (the ``stop_trigger_price`` text of Coinbase's
API reference as several generated SDKs reproduce it; unconfirmed on a live account). It
is one order, so one exit ends the other (OCO). Cancelling an unfilled parent cancels it;
cancelling a partly filled one leaves the bracket working on the filled size. The
statuses of the attached order before and after its parent fills, its own client order
id and the partly-filled case are this fake's model, not observed on the real service:
Coinbase's reference documents ``attached_order_id`` and ``originating_order_id`` but not
that life cycle.

Fees: taker 60 bps, maker 40 bps by default (Coinbase's published lowest-volume
Advanced Trade tier, also served as GET /transaction_summary ``fee_tier``), commission in
quote currency on every fill; a limit that is marketable when it arrives pays taker
(Coinbase's help page "Coinbase Advanced fees"). Balances move with
fills; open orders hold funds (a buy limit: size x limit x (1 + taker rate); a sell or
a bracket: its base size).

Endpoints (all under ``/api/v3/brokerage``): GET key_permissions, accounts (paginated),
accounts/{uuid}, products, products/{id}, market/products[/{id}] (public), time (public),
best_bid_ask, transaction_summary, orders/historical/{id}, orders/historical/batch,
orders/historical/fills; POST orders, orders/preview, orders/batch_cancel. Anything else
is 404. The list endpoints refuse query parameters Coinbase does not have (400): List
Orders has no client order id filter, so a client finds an order by its client order id
by listing (product, time window) and matching, or by sending the create again.

Test hooks: :attr:`~FakeCoinbase.orders`, :attr:`~FakeCoinbase.submits`,
:attr:`~FakeCoinbase.fills`, :attr:`~FakeCoinbase.requests`,
:meth:`~FakeCoinbase.fail_next` (faults: ``lose_response``, ``drop``, ``status``,
``slow``), :meth:`~FakeCoinbase.set_product` (status flags),
:meth:`~FakeCoinbase.fill_partially`, :attr:`~FakeCoinbase.now`, and
:attr:`~FakeCoinbase.control` (TEST CONTROL, not Coinbase's API: ``POST /_test/<name>``
calls a function the test registered, so another process can drive the fake).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import ssl
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

PREFIX = "/api/v3/brokerage"

#: Product specs in Coinbase's format for the products the tests use (representative
#: figures as Coinbase publishes them for these pairs; any other id gets ``_GENERIC``).
_SPECS: dict[str, dict[str, str]] = {
    "BTC-USD": {"base_increment": "0.00000001", "quote_increment": "0.01",
                "price_increment": "0.01", "base_min_size": "0.00000001",
                "base_max_size": "3400", "quote_min_size": "1", "quote_max_size": "150000000",
                "base_name": "Bitcoin", "quote_name": "US Dollar"},
    "ETH-USD": {"base_increment": "0.00000001", "quote_increment": "0.01",
                "price_increment": "0.01", "base_min_size": "0.00000001",
                "base_max_size": "38000", "quote_min_size": "1", "quote_max_size": "150000000",
                "base_name": "Ethereum", "quote_name": "US Dollar"},
}
_GENERIC = {"base_increment": "0.00000001", "quote_increment": "0.01", "price_increment": "0.01",
            "base_min_size": "0.00000001", "base_max_size": "1000000", "quote_min_size": "1",
            "quote_max_size": "150000000", "base_name": "", "quote_name": ""}
_FLAGS = ("trading_disabled", "cancel_only", "limit_only", "post_only")

#: Query parameters each list endpoint takes (SDK 1.8.4 signatures and Coinbase's
#: reference); anything else is refused with 400 so a client relying on a filter that
#: Coinbase does not have finds out here, not in production.
_LIST_ORDER_PARAMS = {"order_ids", "product_ids", "product_type", "order_status", "limit",
                      "start_date", "end_date", "user_native_currency", "order_types",
                      "order_side", "cursor", "order_placement_source", "contract_expiry_type",
                      "asset_filters", "retail_portfolio_id", "time_in_forces", "sort_by"}
_FILL_PARAMS = {"order_ids", "trade_ids", "product_ids", "start_sequence_timestamp",
                "end_sequence_timestamp", "retail_portfolio_id", "limit", "cursor", "sort_by",
                "order_id", "product_id"}
_ORDER_STATUSES = {"PENDING", "OPEN", "FILLED", "CANCELLED", "EXPIRED", "FAILED",
                   "UNKNOWN_ORDER_STATUS", "QUEUED", "CANCEL_QUEUED"}
_GRPC_CODE = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 429: 8, 500: 13, 501: 12, 503: 14,
              504: 4}
_GRPC_NAME = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
              404: "NOT_FOUND", 409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED",
              500: "INTERNAL", 501: "UNIMPLEMENTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}

ZERO = Decimal(0)


# -- keys --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CdpKey:
    """A CDP API key as Coinbase issues it: a name and a private key.

    Attributes
    ----------
    name : str
        ``organizations/{org_id}/apiKeys/{key_id}`` for an EC key (a UUID for an Ed25519
        one): the JWT ``sub`` and ``kid``, the SDK's ``api_key``.
    private_pem : str
        The SDK's ``api_secret``: for ``ES256`` the SEC1 ``-----BEGIN EC PRIVATE
        KEY-----`` PEM, for ``EdDSA`` the base64 of the 64-byte Ed25519 key (seed and
        public key), the two forms jwt_generator.py ``_load_private_key`` reads.
    algorithm : {"ES256", "EdDSA"}
        The JWT algorithm the key signs with.
    """

    name: str
    private_pem: str
    algorithm: str = "ES256"

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey:
        """Return the public half (what the fake verifies tokens with)."""
        if self.algorithm == "EdDSA":
            raw = base64.b64decode(self.private_pem)
            return ed25519.Ed25519PrivateKey.from_private_bytes(raw[:32]).public_key()
        key = serialization.load_pem_private_key(self.private_pem.encode(), password=None)
        return key.public_key()  # type: ignore[return-value]

    @property
    def public_pem(self) -> str:
        """Return the public key as SubjectPublicKeyInfo PEM text."""
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def file_path(self, directory: Path | str) -> Path:
        """Write the key as the JSON key file the CDP portal downloads and return its path.

        Parameters
        ----------
        directory : Path or str
            An existing directory (a test's ``tmp_path``).

        Returns
        -------
        Path
            ``directory / "cdp_api_key.json"`` holding ``{"name": ..., "privateKey": ...}``
            (``{"id": ..., "privateKey": ...}`` for an Ed25519 key): the fields the SDK's
            ``key_file`` reader takes (api_base.py: ``name`` or ``id``, ``privateKey``).
        """
        path = Path(directory) / "cdp_api_key.json"
        label = "id" if self.algorithm == "EdDSA" else "name"
        path.write_text(json.dumps({label: self.name, "privateKey": self.private_pem}))
        return path


def make_cdp_key(name: str | None = None, algorithm: str = "ES256") -> CdpKey:
    """Make a fresh CDP-style key with a CDP-style name.

    Parameters
    ----------
    name : str, optional
        The key name; default ``organizations/<uuid>/apiKeys/<uuid>`` (a UUID for EdDSA).
    algorithm : {"ES256", "EdDSA"}
        An EC P-256 key (SEC1 PEM) or an Ed25519 key (base64 of its 64 bytes).

    Returns
    -------
    CdpKey

    Raises
    ------
    ValueError
        For another algorithm.
    """
    if algorithm == "EdDSA":
        key = ed25519.Ed25519PrivateKey.generate()
        raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
        pub = key.public_key().public_bytes(serialization.Encoding.Raw,
                                            serialization.PublicFormat.Raw)
        return CdpKey(name or str(uuid.uuid4()), base64.b64encode(raw + pub).decode(), "EdDSA")
    if algorithm != "ES256":
        raise ValueError(f"algorithm must be 'ES256' or 'EdDSA', got {algorithm!r}")
    ec_key = ec.generate_private_key(ec.SECP256R1())
    pem = ec_key.private_bytes(serialization.Encoding.PEM,
                               serialization.PrivateFormat.TraditionalOpenSSL,
                               serialization.NoEncryption()).decode()
    return CdpKey(name or f"organizations/{uuid.uuid4()}/apiKeys/{uuid.uuid4()}", pem)


def _public_key(value: Any) -> Any:
    if isinstance(value, CdpKey):
        return value.public_key
    if isinstance(value, (ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey)):
        return value
    if isinstance(value, (ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)):
        return value.public_key()
    text = value.encode() if isinstance(value, str) else bytes(value)
    if b"PRIVATE KEY" in text:
        return serialization.load_pem_private_key(text, password=None).public_key()
    return serialization.load_pem_public_key(text)


# -- numbers and times --------------------------------------------------------------------


def fmt(value: Decimal | None) -> str:
    """Return a Decimal as plain text (no exponent, no trailing zeros); None -> ``""``."""
    if value is None:
        return ""
    if value == 0:
        return "0"
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def iso(ts: float) -> str:
    """Return UTC epoch seconds as RFC 3339 text with microseconds and ``Z``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: str) -> float:
    """Return RFC 3339 text (``Z`` or an offset; naive means UTC) as UTC epoch seconds."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _BadRequest(400, f"invalid timestamp {text!r} (RFC 3339 expected)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _on_increment(value: Decimal, increment: Decimal) -> bool:
    return (value % increment) == 0


class _BadRequest(Exception):
    """A request refused before it is processed (HTTP status and message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Rejected(Exception):
    """An order refused as Coinbase refuses it: HTTP 200, ``success: false``."""

    def __init__(self, error: str, message: str, preview: str | None = None,
                 new_order: str = "UNKNOWN_FAILURE_REASON") -> None:
        super().__init__(message)
        self.error = error
        self.message = message
        self.preview = preview or (f"PREVIEW_{error}" if error != "UNKNOWN_FAILURE_REASON"
                                   else "UNKNOWN_PREVIEW_FAILURE_REASON")
        self.new_order = new_order


# -- orders -------------------------------------------------------------------------------


@dataclass
class FakeOrder:
    """One order as the fake keeps it (what GET /orders/historical/{id} reports).

    Sizes are base units, prices and money quote currency, times UTC epoch seconds.
    ``filled`` is the filled base size; ``fills`` the fill records (the wire dicts).
    For a bracket (``order_type == "BRACKET"``), ``limit_price`` is the take-profit,
    ``stop_price`` the stop trigger and ``stop_limit_price`` the limit the stop becomes;
    ``exit_leg`` says which leg filled (``"take_profit"`` / ``"stop_loss"``).
    """

    order_id: str
    client_order_id: str
    product_id: str
    side: str
    order_type: str
    configuration: dict[str, Any]
    time_in_force: str
    created: float
    base_size: Decimal | None = None
    quote_size: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    stop_direction: str | None = None
    stop_limit_price: Decimal | None = None
    post_only: bool = False
    status: str = "OPEN"
    trigger_status: str = "INVALID_ORDER_TYPE"
    triggered: bool = False
    attached_order_id: str = ""
    originating_order_id: str = ""
    attached_configuration: dict[str, Any] | None = None
    filled: Decimal = ZERO
    filled_value: Decimal = ZERO
    fees: Decimal = ZERO
    hold: Decimal = ZERO
    hold_currency: str = ""
    fills: list[dict[str, Any]] = field(default_factory=list)
    last_fill: float | None = None
    cancel_message: str = ""
    exit_leg: str = ""
    seq: int = 0

    @property
    def is_open(self) -> bool:
        """Return True while the order can still fill (OPEN, or a PENDING bracket)."""
        return self.status in ("OPEN", "PENDING")

    @property
    def remaining(self) -> Decimal:
        """Return the unfilled base size (0 for a quote-sized market order once done)."""
        return (self.base_size or ZERO) - self.filled

    def wire(self) -> dict[str, Any]:
        """Return the order in the shape of GET /orders/historical/{order_id} ``order``."""
        size = self.base_size or ZERO
        avg = self.filled_value / self.filled if self.filled else ZERO
        pct = (self.filled / size * 100) if size else (Decimal(100) if self.status == "FILLED"
                                                        else ZERO)
        total_after = (self.filled_value + self.fees if self.side == "BUY"
                       else self.filled_value - self.fees)
        out: dict[str, Any] = {
            "order_id": self.order_id,
            "product_id": self.product_id,
            "user_id": FakeCoinbase.USER_ID,
            "order_configuration": self.configuration,
            "side": self.side,
            "client_order_id": self.client_order_id,
            "status": self.status,
            "time_in_force": self.time_in_force,
            "created_time": iso(self.created),
            "completion_percentage": fmt(pct.quantize(Decimal("0.01")) if pct else ZERO),
            "filled_size": fmt(self.filled),
            "average_filled_price": fmt(avg),
            "fee": "",
            "number_of_fills": str(len(self.fills)),
            "filled_value": fmt(self.filled_value),
            "pending_cancel": False,
            "size_in_quote": self.quote_size is not None and self.base_size is None,
            "total_fees": fmt(self.fees),
            "size_inclusive_of_fees": False,
            "total_value_after_fees": fmt(total_after),
            "trigger_status": self.trigger_status,
            "order_type": self.order_type,
            "reject_reason": "REJECT_REASON_UNSPECIFIED",
            "settled": self.status == "FILLED",
            "product_type": "SPOT",
            "reject_message": "",
            "cancel_message": self.cancel_message,
            "order_placement_source": "RETAIL_ADVANCED",
            "outstanding_hold_amount": fmt(self.hold),
            "is_liquidation": False,
            "last_fill_time": iso(self.last_fill) if self.last_fill is not None else None,
            "edit_history": [],
            "leverage": "",
            "margin_type": "UNKNOWN_MARGIN_TYPE",
            "retail_portfolio_id": FakeCoinbase.PORTFOLIO_ID,
            "originating_order_id": self.originating_order_id,
            "attached_order_id": self.attached_order_id,
        }
        if self.attached_configuration is not None:
            out["attached_order_configuration"] = self.attached_configuration
        return out


@dataclass
class _Fault:
    route: str
    mode: str
    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    seconds: float = 0.0


# -- the fake -----------------------------------------------------------------------------


class FakeCoinbase:
    """Coinbase Advanced Trade's brokerage REST API on 127.0.0.1 over TLS, in a thread.

    Parameters
    ----------
    keys : mapping of str to key
        Key name -> its public key (PEM text or bytes, a cryptography key object, or a
        :class:`CdpKey`). Tokens signed by any other key are refused.
    permissions : mapping, optional
        ``can_view``, ``can_trade``, ``can_transfer`` (bool), as GET /key_permissions
        reports them; default view and trade, no transfer. Without ``can_trade`` order
        creation and cancels get 403; without ``can_view`` every private GET does.
    balances : mapping of str to Decimal, optional
        Currency -> total balance; default ``{"USD": 10000}``. Currencies of the products
        are added with 0.
    products : iterable of str or mapping of str to dict, optional
        Product ids (default ``["BTC-USD", "ETH-USD"]``), or id -> overrides of the
        product's fields (increments, sizes, flags, ``price``).
    taker_bps, maker_bps : Decimal
        Fee rates in basis points of the fill's quote value (default 60 and 40: Coinbase's
        published lowest Advanced Trade tier).
    stop_limit_buffer : Decimal
        How far beyond its trigger a bracket's stop-limit limit sits, as a fraction
        (default 0.05: "5 % below the trigger for a sell").
    spread : Decimal
        Quote currency between the price a market buy and a market sell fill at (default 0).
    duplicate_client_order_id : {"existing", "reject"}
        What a create-order with a client order id already used gets: the existing order
        (Coinbase's documented behaviour) or ``success: false``, DUPLICATE_CLIENT_ORDER_ID.
    now : callable () -> float, optional
        The exchange's clock (UTC epoch seconds) for created and fill times; default
        ``time.time``. Token times (nbf, exp) are checked against ``jwt_clock`` instead,
        because the SDK signs them with the wall clock.
    jwt_clock : callable () -> float
        The clock tokens are checked against (default ``time.time``).
    jwt_leeway : float
        Seconds of clock skew tolerated on ``nbf`` and ``exp`` (default 5).
    page_limit : int
        Default page size of the list endpoints (orders and fills 100, accounts 49 as
        Coinbase documents; this overrides all three when given).
    rate_limit : int, optional
        Private requests allowed per wall-clock second (Coinbase documents 30 for private
        endpoints); beyond it the answer is 429 like a fault of that status. Responses to
        private requests then carry ``x-ratelimit-limit``, ``-remaining`` and ``-reset``
        (the headers the SDK's ``rate_limit_headers`` option reads). Off by default.

    Attributes
    ----------
    host : str
        ``"127.0.0.1:PORT"``, the SDK's ``base_url``.
    ca_bundle : str
        The test CA's certificate (PEM file) for ``REQUESTS_CA_BUNDLE``.
    orders : dict of str to FakeOrder
        Every accepted order by order id, oldest first (attached brackets included).
    submits : list of dict
        Every create-order body received, in order (duplicates and rejections too);
        :meth:`submit_count` counts one client order id's.
    fills : list of dict
        Every fill, oldest first, as GET /orders/historical/fills returns them.
    requests : list of dict
        Every request: ``method``, ``path``, ``query`` and the answered ``status`` (None
        when the connection was closed without an answer).
    faults : list
        Faults queued by :meth:`fail_next`, taken first-match in order.
    balances : dict of str to Decimal
        Total balance per currency (holds are derived from the open orders).
    prices : dict of str to Decimal
        The current price per product (set with :meth:`set_price` / :meth:`step`).
    now : callable () -> float
        The exchange's clock; assign another callable to change it.
    auth_failures : list of str
        Why each refused token was refused.

    Raises
    ------
    ValueError
        On an unknown ``duplicate_client_order_id`` mode.
    """

    USER_ID = "fake-user-0000-0000-000000000000"
    PORTFOLIO_ID = "fake-portfolio-0000-0000-000000000000"

    def __init__(self, keys: Mapping[str, Any], *, permissions: Mapping[str, bool] | None = None,
                 balances: Mapping[str, Decimal | str | int] | None = None,
                 products: Iterable[str] | Mapping[str, Mapping[str, Any]] | None = None,
                 taker_bps: Decimal | str | int = Decimal(60),
                 maker_bps: Decimal | str | int = Decimal(40),
                 stop_limit_buffer: Decimal | str = Decimal("0.05"),
                 spread: Decimal | str | int = ZERO,
                 duplicate_client_order_id: str = "existing",
                 now: Callable[[], float] | None = None,
                 jwt_clock: Callable[[], float] = time.time, jwt_leeway: float = 5.0,
                 page_limit: int | None = None, rate_limit: int | None = None) -> None:
        if duplicate_client_order_id not in ("existing", "reject"):
            raise ValueError("duplicate_client_order_id must be 'existing' or 'reject'")
        self.keys = {name: _public_key(k) for name, k in keys.items()}
        self.permissions = {"can_view": True, "can_trade": True, "can_transfer": False,
                            **dict(permissions or {})}
        self.taker_rate = Decimal(taker_bps) / Decimal(10000)
        self.maker_rate = Decimal(maker_bps) / Decimal(10000)
        self.stop_limit_buffer = Decimal(stop_limit_buffer)
        self.spread = Decimal(spread)
        self.duplicate_client_order_id = duplicate_client_order_id
        self.now: Callable[[], float] = now or time.time
        self.jwt_clock = jwt_clock
        self.jwt_leeway = jwt_leeway
        self.page_limit = page_limit
        self.rate_limit = rate_limit
        self._window: list[float] = []

        self.products: dict[str, dict[str, Any]] = {}
        items = (products.items() if isinstance(products, Mapping)
                 else ((p, {}) for p in (products or ["BTC-USD", "ETH-USD"])))
        for pid, overrides in items:
            base, quote = pid.split("-")
            spec: dict[str, Any] = {**_SPECS.get(pid, _GENERIC), "status": "online",
                                    **{f: False for f in _FLAGS}}
            spec.update(overrides)
            spec["base_currency_id"], spec["quote_currency_id"] = base, quote
            self.products[pid] = spec
        self.balances: dict[str, Decimal] = {k: Decimal(v) for k, v in
                                             (balances or {"USD": Decimal(10000)}).items()}
        for spec in self.products.values():
            for cur in (spec["base_currency_id"], spec["quote_currency_id"]):
                self.balances.setdefault(cur, ZERO)
        self.account_ids = {cur: str(uuid.uuid5(uuid.NAMESPACE_URL, f"fake-coinbase/{cur}"))
                            for cur in self.balances}
        self.prices: dict[str, Decimal] = {pid: Decimal(str(spec.pop("price")))
                                           for pid, spec in self.products.items()
                                           if spec.get("price") is not None}

        #: order_id -> :class:`FakeOrder`, in creation order.
        self.orders: dict[str, FakeOrder] = {}
        #: Every create-order request body received, in order (duplicates and rejected ones too).
        self.submits: list[dict[str, Any]] = []
        #: Every fill, in order (the wire dicts of GET /orders/historical/fills).
        self.fills: list[dict[str, Any]] = []
        #: Every request: ``{"method", "path", "query", "status"}`` (status None if dropped).
        self.requests: list[dict[str, Any]] = []
        #: Why tokens were refused, one line each.
        self.auth_failures: list[str] = []
        #: Exceptions the fake itself raised while answering (answered 500).
        self.errors: list[str] = []
        #: Faults still to happen, in order (see :meth:`fail_next`).
        self.faults: list[_Fault] = []
        #: TEST CONTROL, not part of Coinbase's API: ``POST /_test/<name>`` with a JSON
        #: object body (no token checked, not counted in :attr:`requests`) answers
        #: ``{"result": control[name](body)}``; a name not registered gets 404. Lets a
        #: test drive the fake from another process (the SIGKILL suite's deployment
        #: walks the price through each bar). Empty unless a test fills it.
        self.control: dict[str, Callable[[dict[str, Any]], Any]] = {}

        self._by_client_id: dict[str, str] = {}
        self._seq = 0
        self._lock = threading.RLock()
        self._tmp = tempfile.mkdtemp(prefix="fake-coinbase-")
        self.ca_bundle = os.path.join(self._tmp, "ca.pem")
        import trustme

        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        ca.cert_pem.write_to_path(self.ca_bundle)
        handler = type("Handler", (_Handler,), {"fake": self})
        self.httpd = _Server(("127.0.0.1", 0), handler)
        self.httpd.ssl_context = context
        self._thread = threading.Thread(target=self.httpd.serve_forever,
                                        kwargs={"poll_interval": 0.02}, daemon=True)

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def host(self) -> str:
        """Return ``"127.0.0.1:PORT"``, what ``RESTClient(base_url=...)`` takes."""
        host, port = self.httpd.server_address[:2]
        return f"{host}:{port}"

    def start(self) -> FakeCoinbase:
        """Start serving in a daemon thread and return self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the socket and remove the CA file."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test hooks -----------------------------------------------------------------------

    def fail_next(self, route: str, mode: str = "status", *, status: int = 503,
                  headers: Mapping[str, str] | None = None, body: Any = None,
                  seconds: float = 0.0, times: int = 1) -> None:
        """Queue a fault for the next request(s) matching ``route``.

        Parameters
        ----------
        route : str
            ``"METHOD /path"``, e.g. ``"POST /api/v3/brokerage/orders"``; a trailing ``*``
            matches any path with that prefix.
        mode : {"status", "lose_response", "drop", "slow"}
            ``status``: answer ``status`` with ``headers`` and a JSON error body (``body``
            if given) without processing the request. ``lose_response``: process it (the
            order is accepted) and close the connection without answering. ``drop``:
            close the connection without processing. ``slow``: wait ``seconds``, then
            process and answer (a client that timed out meanwhile still placed the order).
        status : int
            The HTTP status for ``mode="status"`` (e.g. 429, 503).
        headers : mapping, optional
            Extra response headers, e.g. ``{"Retry-After": "1"}``.
        body : optional
            A body to send instead of the JSON error.
        seconds : float
            The delay for ``mode="slow"``.
        times : int
            How many consecutive matching requests get this fault.

        Raises
        ------
        ValueError
            On an unknown mode or a route without a method.
        """
        if mode not in ("status", "lose_response", "drop", "slow"):
            raise ValueError(f"unknown fault mode {mode!r}")
        if " " not in route:
            raise ValueError(f"route must be 'METHOD /path', got {route!r}")
        with self._lock:
            for _ in range(times):
                self.faults.append(_Fault(route, mode, status, dict(headers or {}), body,
                                          seconds))

    def set_product(self, product_id: str, **fields: Any) -> None:
        """Change a product's fields, e.g. ``trading_disabled=True`` or ``status="offline"``.

        Raises
        ------
        KeyError
            For an unknown product or field.
        """
        with self._lock:
            spec = self.products[product_id]
            for name, value in fields.items():
                if name not in spec:
                    raise KeyError(f"product field {name!r} unknown")
                spec[name] = value

    def submit_count(self, client_order_id: str) -> int:
        """Return how many create-order requests carried ``client_order_id``."""
        with self._lock:
            return sum(1 for b in self.submits if b.get("client_order_id") == client_order_id)

    def order_by_client_id(self, client_order_id: str) -> FakeOrder | None:
        """Return the order created under ``client_order_id``, if any."""
        with self._lock:
            oid = self._by_client_id.get(client_order_id)
            return self.orders.get(oid) if oid else None

    def balance(self, currency: str) -> tuple[Decimal, Decimal]:
        """Return ``(total, hold)`` of a currency (available = total - hold)."""
        with self._lock:
            return self.balances.get(currency, ZERO), self._hold(currency)

    def open_orders(self, product_id: str | None = None) -> list[FakeOrder]:
        """Return the orders still able to fill (OPEN or PENDING), oldest first."""
        with self._lock:
            return [o for o in self.orders.values()
                    if o.is_open and (product_id is None or o.product_id == product_id)]

    # -- the price path -------------------------------------------------------------------

    def set_price(self, product_id: str, price: Decimal | str | int, ts: float | None = None,
                  *, gap: bool = False) -> list[dict[str, Any]]:
        """Move a product's price; resting orders on the way fill or trigger.

        Parameters
        ----------
        product_id : str
        price : Decimal
            The new price, quote currency.
        ts : float, optional
            UTC epoch seconds of the move (the fills' trade time); default ``now()``.
        gap : bool
            False: the price passes every level between the old and the new price,
            nearest first (limits fill at their limit as maker, a stop triggers at its
            trigger and its stop-limit fills there as taker). True: it jumps; orders the
            jump crossed act at the new price (a limit still fills at its limit; a
            triggered stop-limit fills at the new price if its limit allows, else rests).

        Returns
        -------
        list of dict
            The fills the move made (wire dicts).

        Raises
        ------
        KeyError
            For an unknown product.
        """
        price = Decimal(str(price))
        if price <= 0:
            raise ValueError(f"price must be positive, got {price}")
        with self._lock:
            if product_id not in self.products:
                raise KeyError(product_id)
            ts = self.now() if ts is None else ts
            before = len(self.fills)
            if product_id not in self.prices:
                self.prices[product_id] = price
            else:
                self._move(product_id, price, ts, gap)
            return self.fills[before:]

    def step(self, *bar: Any, product_id: str | None = None, ts: float | None = None,
             gap_open: bool = False) -> list[dict[str, Any]]:
        """Walk a candle: open, then the extreme towards the resting stops, the other, close.

        Call as ``step(open, high, low, close[, ts])`` or ``step(product_id, open, high,
        low, close[, ts])``; without a product id the fake's only product is used (or the
        only one with open orders). Pessimistic: when sell stops rest (protecting a long),
        the low comes before the high; when buy stops rest, the high first; with neither,
        the extreme nearer the open first. So a bar whose range covers both legs of a
        bracket fills its stop.

        Parameters
        ----------
        *bar : Decimal
            ``[product_id,] open, high, low, close[, ts]``: prices in quote currency, ts UTC
            epoch seconds for every fill of the bar (default ``now()``).
        product_id : str, optional
            The product, as a keyword.
        ts : float, optional
            The bar's time, as a keyword.
        gap_open : bool
            Jump to the open (``gap=True``) instead of trading through to it.

        Returns
        -------
        list of dict
            The fills the bar made.

        Raises
        ------
        TypeError
            Without four prices.
        ValueError
            When the product is ambiguous or high/low do not bound open and close.
        """
        if bar and isinstance(bar[0], str) and bar[0] in self.products:
            product_id, bar = bar[0], bar[1:]
        if len(bar) == 5:
            ts, bar = bar[4], bar[:4]
        if len(bar) != 4:
            raise TypeError("step takes open, high, low, close [, ts]")
        o, h, lo, c = (Decimal(str(x)) for x in bar)
        if not (lo <= min(o, c) and h >= max(o, c)):
            raise ValueError(f"bar high {h} / low {lo} do not bound open {o} and close {c}")
        with self._lock:
            if product_id is None:
                cands = list(self.products) if len(self.products) == 1 else sorted(
                    {x.product_id for x in self.open_orders()})
                if len(cands) != 1:
                    raise ValueError("step: name the product (step(product_id, o, h, l, c))")
                product_id = cands[0]
            ts = self.now() if ts is None else ts
            fills = self.set_price(product_id, o, ts, gap=gap_open)
            resting = self.open_orders(product_id)
            sell_stops = any(self._has_stop(x, "SELL") for x in resting)
            buy_stops = any(self._has_stop(x, "BUY") for x in resting)
            if sell_stops != buy_stops:
                low_first = sell_stops
            else:
                low_first = (o - lo) <= (h - o)
            for p in ((lo, h) if low_first else (h, lo)) + (c,):
                fills += self.set_price(product_id, p, ts)
            return fills

    # -- matching -------------------------------------------------------------------------

    @staticmethod
    def _has_stop(o: FakeOrder, side: str) -> bool:
        return o.side == side and o.stop_price is not None and not o.triggered

    def _spec(self, pid: str, name: str) -> Decimal:
        return Decimal(str(self.products[pid][name]))

    def _hold(self, currency: str) -> Decimal:
        return sum((o.hold for o in self.orders.values()
                    if o.is_open and o.hold_currency == currency), ZERO)

    def _available(self, currency: str) -> Decimal:
        return self.balances.get(currency, ZERO) - self._hold(currency)

    def _set_hold(self, o: FakeOrder) -> None:
        base, quote = o.product_id.split("-")
        if not o.is_open or o.status == "PENDING" and o.order_type == "BRACKET":
            o.hold = ZERO
            return
        rem = o.remaining
        if o.side == "SELL":
            o.hold, o.hold_currency = rem, base
        else:
            o.hold, o.hold_currency = rem * self._buy_price(o) * (1 + self.taker_rate), quote

    @staticmethod
    def _buy_price(o: FakeOrder) -> Decimal:
        """The most a resting buy can pay a unit: its limit, or a bracket's higher leg."""
        if o.order_type == "BRACKET":
            return max(p for p in (o.limit_price, o.stop_limit_price) if p is not None)
        return o.limit_price or ZERO

    def _conditions(self, o: FakeOrder) -> list[tuple[str, str, Decimal]]:
        """What makes a resting order act: (kind, ">=" or "<=", level)."""
        out: list[tuple[str, str, Decimal]] = []
        if o.status != "OPEN":
            return out
        sell = o.side == "SELL"
        if o.order_type in ("LIMIT",) and o.limit_price is not None:
            out.append(("limit", ">=" if sell else "<=", o.limit_price))
        elif o.order_type == "STOP_LIMIT":
            if o.triggered:
                out.append(("limit", ">=" if sell else "<=", o.limit_price))  # type: ignore[arg-type]
            else:
                up = o.stop_direction == "STOP_DIRECTION_STOP_UP"
                out.append(("stop", ">=" if up else "<=", o.stop_price))  # type: ignore[arg-type]
        elif o.order_type == "BRACKET":
            if o.triggered:
                out.append(("limit", ">=" if sell else "<=", o.stop_limit_price))  # type: ignore[arg-type]
            else:
                out.append(("take_profit", ">=" if sell else "<=", o.limit_price))  # type: ignore[arg-type]
                out.append(("stop", "<=" if sell else ">=", o.stop_price))  # type: ignore[arg-type]
        return out

    def _next_event(self, pid: str, cur: Decimal, target: Decimal,
                    only: set[str] | None = None) -> tuple[Decimal, FakeOrder, str] | None:
        """The first thing to happen on the way from ``cur`` to ``target``.

        Returns ``(price where it happens, order, kind)``; kind is ``limit``,
        ``take_profit`` or ``stop``. Nearest first; a tie goes to a stop (pessimistic),
        then to the older order.
        """
        best: tuple[Decimal, int, int, Decimal, FakeOrder, str] | None = None
        for o in self.orders.values():
            if o.product_id != pid or (only is not None and o.order_id not in only):
                continue
            for kind, op, level in self._conditions(o):
                if op == ">=":
                    at = cur if cur >= level else level if target >= level else None
                else:
                    at = cur if cur <= level else level if target <= level else None
                if at is None:
                    continue
                key = (abs(at - cur), 0 if kind == "stop" else 1, o.seq, at, o, kind)
                if best is None or key[:3] < best[:3]:
                    best = key
        return None if best is None else (best[3], best[4], best[5])

    def _move(self, pid: str, target: Decimal, ts: float, gap: bool) -> None:
        cur = self.prices[pid]
        if gap:
            # the orders resting before the jump act on what it crossed, at the new price
            before = {o.order_id for o in self.orders.values()
                      if o.product_id == pid and o.status == "OPEN"}
            while (ev := self._next_event(pid, cur, target, only=before)) is not None:
                _, o, kind = ev
                before.discard(o.order_id)
                self._act(o, kind, target, ts)
            cur = self.prices[pid] = target
        # trade through every level between, nearest first (after a gap: what the new
        # price makes act at once, e.g. a bracket its parent's fill just activated)
        for _ in range(100000):
            ev = self._next_event(pid, cur, target)
            if ev is None:
                break
            at, o, kind = ev
            cur = self.prices[pid] = at
            self._act(o, kind, at, ts)
        self.prices[pid] = target

    def _act(self, o: FakeOrder, kind: str, market: Decimal, ts: float) -> None:
        """Fill a limit reached, or trigger a stop and fill its stop-limit if marketable."""
        if kind in ("limit", "take_profit"):
            limit = (o.stop_limit_price if o.order_type == "BRACKET" and o.triggered
                     else o.limit_price)
            assert limit is not None
            if kind == "take_profit":
                o.exit_leg = "take_profit"
            self._fill(o, limit, o.remaining, "MAKER", ts)
            return
        o.triggered = True
        o.trigger_status = "STOP_TRIGGERED"
        if o.order_type == "BRACKET":
            o.exit_leg = "stop_loss"
        limit = o.stop_limit_price if o.order_type == "BRACKET" else o.limit_price
        assert limit is not None
        if (market >= limit) if o.side == "SELL" else (market <= limit):
            self._fill(o, market, o.remaining, "TAKER", ts)
        else:
            self._set_hold(o)

    def _fill(self, o: FakeOrder, price: Decimal, size: Decimal, liquidity: str,
              ts: float) -> dict[str, Any]:
        base, quote = o.product_id.split("-")
        value = price * size
        rate = self.maker_rate if liquidity == "MAKER" else self.taker_rate
        commission = value * rate
        if o.side == "BUY":
            self.balances[quote] -= value + commission
            self.balances[base] += size
        else:
            self.balances[base] -= size
            self.balances[quote] += value - commission
        o.filled += size
        o.filled_value += value
        o.fees += commission
        o.last_fill = ts
        if o.base_size is None or o.remaining <= 0:
            o.status = "FILLED"
        self._set_hold(o)
        record = {
            "entry_id": str(uuid.uuid4()),
            "trade_id": str(uuid.uuid4()),
            "order_id": o.order_id,
            "trade_time": iso(ts),
            "trade_type": "FILL",
            "price": fmt(price),
            "size": fmt(size),
            "commission": fmt(commission),
            "product_id": o.product_id,
            "sequence_timestamp": iso(ts),
            "liquidity_indicator": liquidity,
            "size_in_quote": False,
            "user_id": self.USER_ID,
            "side": o.side,
            "retail_portfolio_id": self.PORTFOLIO_ID,
        }
        o.fills.append(record)
        self.fills.append(record)
        if o.status == "FILLED" and o.attached_order_id:
            child = self.orders.get(o.attached_order_id)
            if child is not None and child.status == "PENDING":
                self._activate(child, o.filled)
        return record

    def _activate(self, child: FakeOrder, size: Decimal) -> None:
        """Put an attached bracket to work for ``size`` (its parent's filled size)."""
        child.base_size = size
        child.configuration["trigger_bracket_gtc"]["base_size"] = fmt(size)
        child.status = "OPEN"
        child.trigger_status = "STOP_PENDING"
        self._set_hold(child)

    def fill_partially(self, order_id: str, size: Decimal | str, price: Decimal | str | None = None,
                       ts: float | None = None) -> dict[str, Any]:
        """Fill part of a resting limit order (a test hook: the price path fills whole orders).

        Parameters
        ----------
        order_id : str
        size : Decimal
            Base units, at most what remains.
        price : Decimal, optional
            Quote currency; default the order's limit (a maker fill).
        ts : float, optional
            UTC epoch seconds; default ``now()``.

        Returns
        -------
        dict
            The fill (wire dict). Filling what remains makes the order FILLED and starts
            its attached bracket.

        Raises
        ------
        ValueError
            If the order is not an open limit order or the size is not in (0, remaining].
        """
        size = Decimal(str(size))
        with self._lock:
            o = self.orders[order_id]
            if o.status != "OPEN" or o.limit_price is None or o.order_type != "LIMIT":
                raise ValueError(f"order {order_id} is not an open limit order")
            if not 0 < size <= o.remaining:
                raise ValueError(f"size {size} is not in (0, {o.remaining}]")
            px = o.limit_price if price is None else Decimal(str(price))
            return self._fill(o, px, size, "MAKER", self.now() if ts is None else ts)

    # -- order creation -------------------------------------------------------------------

    def _decimal(self, cfg: Mapping[str, Any], name: str, required: bool = True
                 ) -> Decimal | None:
        value = cfg.get(name)
        if value is None or value == "":
            if required:
                raise _Rejected("INVALID_REQUEST" if name != "base_size" else
                                "UNSUPPORTED_ORDER_CONFIGURATION",
                                f"{name} is required", "PREVIEW_INVALID_ORDER_CONFIG")
            return None
        if not isinstance(value, str):
            raise _BadRequest(400, f"invalid value for string field {name}: {value!r} "
                              "(sizes and prices are decimal strings)")
        try:
            d = Decimal(value)
        except InvalidOperation:
            raise _Rejected("INVALID_REQUEST", f"{name} {value!r} is not a number",
                            "PREVIEW_NON_NUMERIC_ORDER_SIZE") from None
        if not d.is_finite() or d <= 0:
            raise _Rejected("INVALID_REQUEST", f"{name} must be positive",
                            "PREVIEW_INVALID_ORDER_CONFIG")
        return d

    def _check_size(self, pid: str, base: Decimal | None, quote: Decimal | None) -> None:
        if base is not None:
            if not _on_increment(base, self._spec(pid, "base_increment")):
                raise _Rejected("INVALID_SIZE_PRECISION", "Too many decimals in order amount",
                                "PREVIEW_INVALID_SIZE_PRECISION")
            if base < self._spec(pid, "base_min_size"):
                raise _Rejected("UNKNOWN_FAILURE_REASON", "Order size is too small",
                                "PREVIEW_INVALID_BASE_SIZE_TOO_SMALL")
            if base > self._spec(pid, "base_max_size"):
                raise _Rejected("UNKNOWN_FAILURE_REASON", "Order size is too large",
                                "PREVIEW_INVALID_BASE_SIZE_TOO_LARGE")
        if quote is not None:
            if not _on_increment(quote, self._spec(pid, "quote_increment")):
                raise _Rejected("INVALID_SIZE_PRECISION", "Too many decimals in order amount",
                                "PREVIEW_INVALID_QUOTE_SIZE_PRECISION")
            if quote < self._spec(pid, "quote_min_size"):
                raise _Rejected("UNKNOWN_FAILURE_REASON", "Order size is too small",
                                "PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL")
            if quote > self._spec(pid, "quote_max_size"):
                raise _Rejected("UNKNOWN_FAILURE_REASON", "Order size is too large",
                                "PREVIEW_INVALID_QUOTE_SIZE_TOO_LARGE")

    def _check_price(self, pid: str, price: Decimal, what: str = "price",
                     preview: str = "PREVIEW_INVALID_PRICE_PRECISION") -> None:
        if not _on_increment(price, self._spec(pid, "price_increment")):
            raise _Rejected("INVALID_PRICE_PRECISION", f"Too many decimals in order {what}",
                            preview)

    def stop_limit_for(self, product_id: str, side: str, trigger: Decimal) -> Decimal:
        """Return the limit a bracket's stop becomes when it triggers.

        ``trigger x (1 - buffer)`` for a sell, ``trigger x (1 + buffer)`` for a buy,
        rounded to the product's price increment away from the market (down for a sell,
        up for a buy), so the buffer is at least :attr:`stop_limit_buffer`.
        """
        inc = self._spec(product_id, "price_increment")
        if side == "SELL":
            raw = trigger * (1 - self.stop_limit_buffer)
            return (raw / inc).to_integral_value(ROUND_FLOOR) * inc
        raw = trigger * (1 + self.stop_limit_buffer)
        return (raw / inc).to_integral_value(ROUND_CEILING) * inc

    def _create(self, body: Mapping[str, Any], preview: bool = False) -> dict[str, Any]:
        """Process a create-order body (or preview one); return the response (HTTP 200).

        Raises
        ------
        _Rejected
            What Coinbase answers with ``success: false`` (``errs`` for a preview).
        _BadRequest
            A body Coinbase would refuse with 400.
        """
        cid = "preview" if preview else body.get("client_order_id")
        if not isinstance(cid, str) or not cid:
            raise _BadRequest(400, "client_order_id is required")
        if not preview and cid in self._by_client_id:
            existing = self.orders[self._by_client_id[cid]]
            if self.duplicate_client_order_id == "reject":
                raise _Rejected("UNKNOWN_FAILURE_REASON", "duplicate client order id",
                                "UNKNOWN_PREVIEW_FAILURE_REASON", "DUPLICATE_CLIENT_ORDER_ID")
            return self._success(existing)
        pid = body.get("product_id")
        if pid not in self.products:
            raise _Rejected("INVALID_PRODUCT_ID", f"product {pid!r} does not exist",
                            "PREVIEW_INVALID_PRODUCT_ID", "INVALID_PRODUCT_ID")
        side = body.get("side")
        if side not in ("BUY", "SELL"):
            raise _Rejected("INVALID_SIDE", f"side {side!r} is not BUY or SELL",
                            "PREVIEW_INVALID_SIDE")
        config = body.get("order_configuration")
        if not isinstance(config, Mapping) or len(config) != 1:
            raise _Rejected("UNSUPPORTED_ORDER_CONFIGURATION",
                            "exactly one order configuration is required",
                            "PREVIEW_INVALID_ORDER_CONFIG")
        (kind, cfg), = config.items()
        if not isinstance(cfg, Mapping):
            raise _BadRequest(400, f"order_configuration.{kind} must be an object")
        spec = self.products[pid]
        if spec["status"] != "online":
            raise _Rejected("UNTRADABLE_PRODUCT", f"{pid} is not online",
                            "PREVIEW_UNTRADABLE_PRODUCT")
        if spec["trading_disabled"] or spec["cancel_only"]:
            raise _Rejected("TRADING_DISABLED", f"trading is disabled for {pid}",
                            "PREVIEW_TRADING_DISABLED")
        price = self.prices.get(pid)
        o = FakeOrder(order_id=str(uuid.uuid4()), client_order_id=cid, product_id=pid,
                      side=side, order_type="", configuration={kind: dict(cfg)},
                      time_in_force="GOOD_UNTIL_CANCELLED", created=self.now())
        if kind == "market_market_ioc":
            if spec["limit_only"] or spec["post_only"]:
                raise _Rejected("UNKNOWN_FAILURE_REASON",
                                f"{pid} takes limit orders only at the moment",
                                "PREVIEW_NOT_ALLOWED_BY_MARKET_STATE")
            o.order_type, o.time_in_force = "MARKET", "IMMEDIATE_OR_CANCEL"
            o.base_size = self._decimal(cfg, "base_size", required=False)
            o.quote_size = self._decimal(cfg, "quote_size", required=False)
            if (o.base_size is None) == (o.quote_size is None):
                raise _Rejected("UNKNOWN_FAILURE_REASON",
                                "Market orders take exactly one of base_size and quote_size",
                                "PREVIEW_INVALID_ORDER_CONFIG")
            self._check_size(pid, o.base_size, o.quote_size)
        elif kind == "limit_limit_gtc":
            o.order_type = "LIMIT"
            o.base_size = self._decimal(cfg, "base_size")
            o.limit_price = self._decimal(cfg, "limit_price")
            o.post_only = bool(cfg.get("post_only", False))
            self._check_size(pid, o.base_size, None)
            self._check_price(pid, o.limit_price)  # type: ignore[arg-type]
            if spec["post_only"] and not o.post_only:
                raise _Rejected("UNKNOWN_FAILURE_REASON", f"{pid} takes post-only orders only",
                                "PREVIEW_NOT_ALLOWED_BY_MARKET_STATE")
        elif kind == "stop_limit_stop_limit_gtc":
            o.order_type = "STOP_LIMIT"
            o.base_size = self._decimal(cfg, "base_size")
            o.limit_price = self._decimal(cfg, "limit_price")
            o.stop_price = self._decimal(cfg, "stop_price")
            o.stop_direction = cfg.get("stop_direction")
            if o.stop_direction not in ("STOP_DIRECTION_STOP_UP", "STOP_DIRECTION_STOP_DOWN"):
                raise _Rejected("UNSUPPORTED_ORDER_CONFIGURATION",
                                "stop_direction must be STOP_DIRECTION_STOP_UP or _DOWN",
                                "PREVIEW_INVALID_ORDER_CONFIG")
            self._check_size(pid, o.base_size, None)
            self._check_price(pid, o.limit_price)  # type: ignore[arg-type]
            self._check_price(pid, o.stop_price, "stop price",  # type: ignore[arg-type]
                              "PREVIEW_INVALID_STOP_PRICE_PRECISION")
            o.trigger_status = "STOP_PENDING"
            if price is not None:
                up = o.stop_direction == "STOP_DIRECTION_STOP_UP"
                if (up and o.stop_price <= price) or (not up and o.stop_price >= price):  # type: ignore[operator]
                    raise _Rejected("INVALID_REQUEST", "stop price already reached",
                                    "PREVIEW_STOP_PRICE_BELOW_LAST_TRADE_PRICE" if up else
                                    "PREVIEW_STOP_PRICE_ABOVE_LAST_TRADE_PRICE")
        elif kind == "trigger_bracket_gtc":
            o.order_type = "BRACKET"
            o.base_size = self._decimal(cfg, "base_size")
            o.limit_price = self._decimal(cfg, "limit_price")
            o.stop_price = self._decimal(cfg, "stop_trigger_price")
            self._check_size(pid, o.base_size, None)
            self._check_price(pid, o.limit_price, preview="PREVIEW_INVALID_LIMIT_PRICE_PRECISION")  # type: ignore[arg-type]
            self._check_price(pid, o.stop_price, "stop trigger price",  # type: ignore[arg-type]
                              "PREVIEW_INVALID_STOP_TRIGGER_PRICE_PRECISION")
            o.stop_limit_price = self.stop_limit_for(pid, side, o.stop_price)  # type: ignore[arg-type]
            o.trigger_status = "STOP_PENDING"
            self._check_bracket_prices(side, price, o.limit_price, o.stop_price, attached=False)  # type: ignore[arg-type]
        else:
            raise _Rejected("UNSUPPORTED_ORDER_CONFIGURATION",
                            f"order configuration {kind!r} is not supported by this fake",
                            "PREVIEW_INVALID_ORDER_CONFIG")

        child: FakeOrder | None = None
        attached = body.get("attached_order_configuration")
        if attached is not None:
            child = self._attached(o, attached, price)

        # funds (Coinbase previews every order against the available balance)
        base, quote = pid.split("-")
        if o.order_type == "MARKET":
            if price is None:
                raise _Rejected("INVALID_NO_LIQUIDITY", f"no market for {pid}",
                                "PREVIEW_INVALID_NO_LIQUIDITY")
            fill_px = price + self.spread / 2 if side == "BUY" else price - self.spread / 2
            if o.base_size is None:           # quote-sized
                assert o.quote_size is not None
                inc = self._spec(pid, "base_increment")
                if side == "BUY":
                    raw = o.quote_size / (fill_px * (1 + self.taker_rate))
                else:
                    raw = o.quote_size / fill_px
                size = (raw / inc).to_integral_value(ROUND_DOWN) * inc
            else:
                size = o.base_size
            need = size * fill_px * (1 + self.taker_rate) if side == "BUY" else size
            if need > self._available(quote if side == "BUY" else base):
                raise _Rejected("INSUFFICIENT_FUND", "Insufficient balance in source account",
                                "PREVIEW_INSUFFICIENT_FUND")
        elif side == "BUY":
            px = self._buy_price(o)
            if o.base_size * px * (1 + self.taker_rate) > self._available(quote):  # type: ignore[operator]
                raise _Rejected("INSUFFICIENT_FUND", "Insufficient balance in source account",
                                "PREVIEW_INSUFFICIENT_FUND")
        else:
            if o.base_size > self._available(base):  # type: ignore[operator]
                raise _Rejected("INSUFFICIENT_FUND", "Insufficient balance in source account",
                                "PREVIEW_INSUFFICIENT_FUND")
        if o.order_type == "LIMIT" and o.post_only and price is not None:
            crosses = o.limit_price >= price if side == "BUY" else o.limit_price <= price  # type: ignore[operator]
            if crosses:
                raise _Rejected("INVALID_LIMIT_PRICE_POST_ONLY",
                                "Limit price would cross the spread for a post-only order",
                                "PREVIEW_INVALID_LIMIT_PRICE_POST_ONLY")

        if preview:
            if o.order_type == "MARKET":
                px = fill_px
            else:
                px, size = o.limit_price or ZERO, o.base_size or ZERO
            value = size * px
            fee = value * self.taker_rate
            total = value + fee if side == "BUY" else value - fee
            return {"order_total": fmt(total), "commission_total": fmt(fee), "errs": [],
                    "warning": [], "quote_size": fmt(value), "base_size": fmt(size),
                    "best_bid": fmt(price - self.spread / 2) if price is not None else "",
                    "best_ask": fmt(price + self.spread / 2) if price is not None else "",
                    "is_max": False, "preview_id": str(uuid.uuid4()), "slippage": "0"}

        # accepted
        self._seq += 1
        o.seq = self._seq
        self.orders[o.order_id] = o
        self._by_client_id[cid] = o.order_id
        if child is not None:
            self._seq += 1
            child.seq = self._seq
            self.orders[child.order_id] = child
            o.attached_order_id = child.order_id
        ts = o.created
        if o.order_type == "MARKET":
            self._fill(o, fill_px, size, "TAKER", ts)
        elif o.order_type == "LIMIT" and price is not None and (
                (side == "BUY" and o.limit_price >= price)  # type: ignore[operator]
                or (side == "SELL" and o.limit_price <= price)):  # type: ignore[operator]
            self._fill(o, price, o.base_size, "TAKER", ts)  # type: ignore[arg-type]
        else:
            self._set_hold(o)
        return self._success(o)

    def _check_bracket_prices(self, side: str, ref: Decimal | None, take_profit: Decimal,
                              stop: Decimal, attached: bool) -> None:
        pre = "ATTACHED_" if attached else ""
        # an exit bracket (standalone) sells: take-profit above, stop below the market;
        # an attached one exits the parent's position, the opposite side of the parent
        exit_sells = side == "BUY" if attached else side == "SELL"
        if exit_sells:
            if take_profit <= stop:
                raise _Rejected("INVALID_BRACKET_PRICES",
                                "take-profit price must be above the stop trigger price",
                                "PREVIEW_INVALID_BRACKET_PRICES")
            if ref is not None and take_profit <= ref:
                raise _Rejected(f"{pre}TAKE_PROFIT_PRICE_TOO_LOW",
                                "take-profit price must be above the entry price")
            if ref is not None and stop >= ref:
                raise _Rejected(f"{pre}STOP_LOSS_PRICE_TOO_HIGH",
                                "stop trigger price must be below the entry price")
        else:
            if take_profit >= stop:
                raise _Rejected("INVALID_BRACKET_PRICES",
                                "take-profit price must be below the stop trigger price",
                                "PREVIEW_INVALID_BRACKET_PRICES")
            if ref is not None and take_profit >= ref:
                raise _Rejected(f"{pre}TAKE_PROFIT_PRICE_TOO_HIGH",
                                "take-profit price must be below the entry price")
            if ref is not None and stop <= ref:
                raise _Rejected(f"{pre}STOP_LOSS_PRICE_TOO_LOW",
                                "stop trigger price must be above the entry price")

    def _attached(self, parent: FakeOrder, attached: Any, price: Decimal | None) -> FakeOrder:
        if not isinstance(attached, Mapping) or len(attached) != 1:
            raise _Rejected("INVALID_ORDER_TYPE_FOR_ATTACHED",
                            "attached_order_configuration takes one trigger_bracket_gtc",
                            "PREVIEW_INVALID_ORDER_TYPE_FOR_ATTACHED")
        (kind, cfg), = attached.items()
        if kind != "trigger_bracket_gtc" or not isinstance(cfg, Mapping):
            raise _Rejected("INVALID_ORDER_TYPE_FOR_ATTACHED",
                            f"attached order type {kind!r} is not allowed; only "
                            "trigger_bracket_gtc is eligible",
                            "PREVIEW_INVALID_ORDER_TYPE_FOR_ATTACHED")
        if parent.order_type not in ("MARKET", "LIMIT"):
            raise _Rejected("ATTACHED_ORDERS_ONLY_ALLOWED_ON_MARKET_LIMIT",
                            "attached orders are only allowed on market and limit orders")
        if parent.base_size is None:
            raise _Rejected("QUOTE_SIZE_NOT_ALLOWED_FOR_BRACKET",
                            "an order with an attached bracket must be sized in base_size")
        if cfg.get("base_size") not in (None, "") or cfg.get("quote_size") not in (None, ""):
            raise _Rejected("ATTACHED_ORDER_SIZE_MUST_BE_NIL",
                            "Size field must be omitted as the size of the attached order is "
                            "the same as that of the parent order")
        if cfg.get("limit_price") in (None, "") or cfg.get("stop_trigger_price") in (None, ""):
            raise _Rejected("SINGLE_LEGGED_TPSL_NOT_ALLOWED",
                            "an attached bracket needs both limit_price and stop_trigger_price")
        tp = self._decimal(cfg, "limit_price")
        sl = self._decimal(cfg, "stop_trigger_price")
        pid = parent.product_id
        try:
            self._check_price(pid, tp, "take profit price")  # type: ignore[arg-type]
        except _Rejected:
            raise _Rejected("INVALID_ATTACHED_TAKE_PROFIT_PRICE_PRECISION",
                            "Too many decimals in attached take profit price") from None
        try:
            self._check_price(pid, sl, "stop loss price")  # type: ignore[arg-type]
        except _Rejected:
            raise _Rejected("INVALID_ATTACHED_STOP_LOSS_PRICE_PRECISION",
                            "Too many decimals in attached stop loss price") from None
        ref = parent.limit_price if parent.order_type == "LIMIT" else price
        self._check_bracket_prices(parent.side, ref, tp, sl, attached=True)  # type: ignore[arg-type]
        side = "SELL" if parent.side == "BUY" else "BUY"
        parent.attached_configuration = {kind: dict(cfg)}
        return FakeOrder(
            # Coinbase creates the attached order itself; its client order id is its own
            order_id=str(uuid.uuid4()), client_order_id=str(uuid.uuid4()),
            product_id=pid, side=side, order_type="BRACKET",
            configuration={"trigger_bracket_gtc": {"base_size": fmt(parent.base_size),
                                                   "limit_price": cfg["limit_price"],
                                                   "stop_trigger_price": cfg["stop_trigger_price"]}},
            time_in_force="GOOD_UNTIL_CANCELLED", created=parent.created,
            base_size=parent.base_size, limit_price=tp, stop_price=sl,
            stop_limit_price=self.stop_limit_for(pid, side, sl),  # type: ignore[arg-type]
            status="PENDING", trigger_status="STOP_PENDING",
            originating_order_id=parent.order_id)

    def _success(self, o: FakeOrder) -> dict[str, Any]:
        resp: dict[str, Any] = {"order_id": o.order_id, "product_id": o.product_id,
                                "side": o.side, "client_order_id": o.client_order_id}
        if o.attached_order_id:
            resp["attached_order_id"] = o.attached_order_id
        return {"success": True, "failure_reason": "UNKNOWN_FAILURE_REASON",
                "order_id": o.order_id, "success_response": resp,
                "order_configuration": o.configuration}

    def _cancel(self, order_ids: list[Any]) -> dict[str, Any]:
        results = []
        for oid in order_ids:
            o = self.orders.get(oid) if isinstance(oid, str) else None
            if o is None:
                results.append({"success": False, "failure_reason": "UNKNOWN_CANCEL_ORDER",
                                "order_id": oid})
                continue
            if not o.is_open:
                reason = ("ORDER_IS_FULLY_FILLED" if o.status == "FILLED"
                          else "INVALID_CANCEL_REQUEST")
                results.append({"success": False, "failure_reason": reason, "order_id": oid})
                continue
            self._cancel_one(o, "User requested cancel")
            child = self.orders.get(o.attached_order_id) if o.attached_order_id else None
            if child is not None and child.status == "PENDING":
                if o.filled > 0:        # assumption: the bracket protects what was bought
                    self._activate(child, o.filled)
                else:
                    self._cancel_one(child, "Originating order cancelled")
            results.append({"success": True, "failure_reason": "UNKNOWN_CANCEL_FAILURE_REASON",
                            "order_id": oid})
        return {"results": results}

    def _cancel_one(self, o: FakeOrder, message: str) -> None:
        o.status = "CANCELLED"
        o.cancel_message = message
        self._set_hold(o)

    # -- reads ----------------------------------------------------------------------------

    def _account(self, cur: str) -> dict[str, Any]:
        hold = self._hold(cur)
        total = self.balances[cur]
        return {
            "uuid": self.account_ids[cur], "name": f"{cur} Wallet", "currency": cur,
            "available_balance": {"value": fmt(total - hold), "currency": cur},
            "default": True, "active": True,
            "created_at": "2024-01-01T00:00:00Z", "updated_at": iso(self.now()),
            "deleted_at": None, "type": "ACCOUNT_TYPE_FIAT" if cur in ("USD", "EUR", "GBP")
            else "ACCOUNT_TYPE_CRYPTO", "ready": True,
            "hold": {"value": fmt(hold), "currency": cur},
            "retail_portfolio_id": self.PORTFOLIO_ID, "platform": "ACCOUNT_PLATFORM_CONSUMER",
        }

    def _product(self, pid: str) -> dict[str, Any]:
        spec = self.products[pid]
        price = self.prices.get(pid)
        return {
            "product_id": pid, "price": fmt(price) if price is not None else "",
            "price_percentage_change_24h": "0", "volume_24h": "0",
            "volume_percentage_change_24h": "0",
            "base_increment": spec["base_increment"], "quote_increment": spec["quote_increment"],
            "quote_min_size": spec["quote_min_size"], "quote_max_size": spec["quote_max_size"],
            "base_min_size": spec["base_min_size"], "base_max_size": spec["base_max_size"],
            "base_name": spec["base_name"], "quote_name": spec["quote_name"],
            "watched": False, "is_disabled": False, "new": False, "status": spec["status"],
            "cancel_only": spec["cancel_only"], "limit_only": spec["limit_only"],
            "post_only": spec["post_only"], "trading_disabled": spec["trading_disabled"],
            "auction_mode": False, "product_type": "SPOT",
            "quote_currency_id": spec["quote_currency_id"],
            "base_currency_id": spec["base_currency_id"],
            "fcm_trading_session_details": None, "mid_market_price": "", "alias": "",
            "alias_to": [], "base_display_symbol": spec["base_currency_id"],
            "quote_display_symbol": spec["quote_currency_id"], "view_only": False,
            "price_increment": spec["price_increment"], "display_name": pid,
            "product_venue": "CBE",
        }

    # -- request handling -----------------------------------------------------------------

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            for i, f in enumerate(self.faults):
                m, _, p = f.route.partition(" ")
                if m.upper() != method:
                    continue
                if p == path or (p.endswith("*") and path.startswith(p[:-1])):
                    return self.faults.pop(i)
        return None

    def _authenticate(self, method: str, path: str, header: str | None) -> str | None:
        """Return None if the bearer token is good, else why not."""
        if not header or not header.startswith("Bearer "):
            return "no bearer token"
        token = header[len("Bearer "):].strip()
        try:
            head = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            return f"malformed token: {exc}"
        kid = head.get("kid")
        if kid not in self.keys:
            return f"unknown key {kid!r}"
        if not head.get("nonce"):
            return "no nonce in the token header"
        key = self.keys[kid]
        alg = "EdDSA" if isinstance(key, ed25519.Ed25519PublicKey) else "ES256"
        if head.get("alg") != alg:
            return f"algorithm {head.get('alg')!r}, expected {alg}"
        try:
            claims = jwt.decode(token, key, algorithms=[alg],
                                options={"verify_exp": False, "verify_nbf": False,
                                         "verify_aud": False, "verify_iat": False,
                                         "require": ["sub", "iss", "nbf", "exp"]})
        except jwt.PyJWTError as exc:
            return f"bad token: {exc}"
        now = self.jwt_clock()
        if claims.get("sub") != kid:
            return f"sub {claims.get('sub')!r} is not the key name"
        if claims.get("iss") != "cdp":
            return f"iss {claims.get('iss')!r}, expected 'cdp'"
        if claims["nbf"] > now + self.jwt_leeway:
            return "token not valid yet (nbf)"
        if claims["exp"] <= now - self.jwt_leeway:
            return "token expired (exp)"
        expected = f"{method} {self.host}{path}"
        if claims.get("uri") != expected:
            return f"uri {claims.get('uri')!r}, expected {expected!r}"
        return None

    def handle(self, method: str, path: str, query: dict[str, list[str]],
               body: Any) -> tuple[int, Any, dict[str, str]]:
        """Answer one authenticated request: ``(status, body, headers)``."""
        with self._lock:
            try:
                return self._route(method, path, query, body)
            except _BadRequest as exc:
                return exc.status, self.error_body(exc.status, exc.message), {}
            except Exception as exc:  # noqa: BLE001 (a bug in the fake: say so, do not hang up)
                self.errors.append(f"{method} {path}: {exc!r}")
                return 500, self.error_body(500, f"fake_coinbase error: {exc!r}"), {}

    @staticmethod
    def error_body(status: int, message: str, details: str | None = None) -> dict[str, Any]:
        """Return a JSON error body ``{error, code, message, details}`` for a status."""
        return {"error": _GRPC_NAME.get(status, "UNKNOWN"), "code": _GRPC_CODE.get(status, 2),
                "message": message, "details": [], "error_details": details or message}

    @staticmethod
    def fault_body(status: int) -> Any:
        """Return the body an injected fault of ``status`` answers with by default.

        429: an HTML page, as the real service was seen answering rate-limited order
        submissions (coinbase-samples/advanced-trade-sdk-go issue 18, "Coinbase Advanced
        Trade REST 429 Response Returns HTML"), so a client must not expect JSON there.
        401: the plain-text ``Unauthorized`` (valid tokens are sometimes refused so:
        coinbase/coinbase-advanced-py issues 60 and 132). Others: the JSON error body.
        """
        if status == 429:
            return ("<html>\n  <head>\n    <title>Coinbase</title>\n    <meta name=\"robots\" "
                    "content=\"noindex\">\n  </head>\n  <body>Too Many Requests</body>\n</html>\n")
        if status == 401:
            return "Unauthorized"
        return FakeCoinbase.error_body(status, {503: "Service Unavailable",
                                                500: "Internal Server Error"}
                                       .get(status, "injected fault"))

    def _rate(self) -> tuple[bool, dict[str, str]]:
        """Count a private request: (allowed, the rate-limit headers to send)."""
        if self.rate_limit is None:
            return True, {}
        with self._lock:
            now = time.monotonic()
            self._window = [t for t in self._window if now - t < 1.0]
            allowed = len(self._window) < self.rate_limit
            if allowed:
                self._window.append(now)
            reset = int(time.time()) + 1
            return allowed, {"x-ratelimit-limit": str(self.rate_limit),
                             "x-ratelimit-remaining": str(self.rate_limit - len(self._window)),
                             "x-ratelimit-reset": str(reset)}

    def _need(self, permission: str) -> None:
        if not self.permissions.get(permission):
            raise _BadRequest(403, "Missing required scopes")

    def _route(self, method: str, path: str, query: dict[str, list[str]],
               body: Any) -> tuple[int, Any, dict[str, str]]:
        p = path[len(PREFIX):]
        one = {k: v[-1] for k, v in query.items()}
        if method == "GET":
            if p == "/time":
                t = self.now()
                return 200, {"iso": iso(t), "epochSeconds": str(int(t)),
                             "epochMillis": str(int(t * 1000))}, {}
            if p.startswith("/market/products"):
                return self._products(p[len("/market"):], query, one)
            self._need("can_view")
            if p == "/key_permissions":
                return 200, {k: bool(self.permissions.get(k)) for k in
                             ("can_view", "can_trade", "can_transfer")} | {
                    "portfolio_uuid": self.PORTFOLIO_ID, "portfolio_type": "DEFAULT"}, {}
            if p == "/accounts":
                return 200, self._accounts(one), {}
            if p.startswith("/accounts/"):
                uid = p[len("/accounts/"):]
                for cur, a in self.account_ids.items():
                    if a == uid:
                        return 200, {"account": self._account(cur)}, {}
                raise _BadRequest(404, "account not found")
            if p.startswith("/products"):
                return self._products(p, query, one)
            if p == "/transaction_summary":
                volume = sum((Decimal(f["price"]) * Decimal(f["size"]) for f in self.fills), ZERO)
                fees = sum((Decimal(f["commission"]) for f in self.fills), ZERO)
                return 200, {
                    "total_volume": float(volume), "total_fees": float(fees),
                    "fee_tier": {"pricing_tier": "Advanced 1", "usd_from": "0",
                                 "usd_to": "10000", "taker_fee_rate": fmt(self.taker_rate),
                                 "maker_fee_rate": fmt(self.maker_rate), "aop_from": "",
                                 "aop_to": ""},
                    "margin_rate": None, "goods_and_services_tax": None,
                    "advanced_trade_only_volume": float(volume),
                    "advanced_trade_only_fees": float(fees), "coinbase_pro_volume": 0,
                    "coinbase_pro_fees": 0, "total_balance": "", "has_promo_fee": False}, {}
            if p == "/best_bid_ask":
                books = []
                for pid in query.get("product_ids") or list(self.products):
                    if pid in self.prices:
                        px = self.prices[pid]
                        books.append({"product_id": pid, "time": iso(self.now()),
                                      "bids": [{"price": fmt(px - self.spread / 2), "size": "1"}],
                                      "asks": [{"price": fmt(px + self.spread / 2), "size": "1"}]})
                return 200, {"pricebooks": books}, {}
            if p == "/orders/historical/batch":
                return 200, self._list_orders(query, one), {}
            if p == "/orders/historical/fills":
                return 200, self._list_fills(query, one), {}
            if p.startswith("/orders/historical/"):
                oid = p[len("/orders/historical/"):]
                o = self.orders.get(oid)
                if o is None:
                    raise _BadRequest(404, "order with this orderID was not found")  # as ccxt quotes it
                return 200, {"order": o.wire()}, {}
        elif method == "POST":
            if not isinstance(body, Mapping):
                raise _BadRequest(400, "the request body must be a JSON object")
            if p == "/orders":
                self._need("can_trade")
                self.submits.append(json.loads(json.dumps(body)))
                try:
                    return 200, self._create(body), {}
                except _Rejected as r:
                    return 200, {"success": False, "failure_reason": "UNKNOWN_FAILURE_REASON",
                                 "order_id": "",
                                 "error_response": {"error": r.error, "message": r.message,
                                                    "error_details": r.message,
                                                    "preview_failure_reason": r.preview,
                                                    "new_order_failure_reason": r.new_order},
                                 "order_configuration": body.get("order_configuration") or {}}, {}
            if p == "/orders/preview":
                self._need("can_view")
                try:
                    return 200, self._create(body, preview=True), {}
                except _Rejected as r:
                    return 200, {"order_total": "0", "commission_total": "0",
                                 "errs": [r.preview], "warning": [], "quote_size": "0",
                                 "base_size": "0", "best_bid": "", "best_ask": "",
                                 "is_max": False, "preview_id": ""}, {}
            if p == "/orders/batch_cancel":
                self._need("can_trade")
                ids = body.get("order_ids")
                if not isinstance(ids, list) or not ids:
                    raise _BadRequest(400, "order_ids is required")
                if len(ids) > 100:
                    raise _BadRequest(400, "at most 100 order_ids per request")
                return 200, self._cancel(ids), {}
        raise _BadRequest(404, f"{method} {path} is not an endpoint of this fake")

    def _products(self, p: str, query: dict[str, list[str]], one: dict[str, str]
                  ) -> tuple[int, Any, dict[str, str]]:
        if p == "/products":
            ids = query.get("product_ids") or list(self.products)
            prods = [self._product(i) for i in ids if i in self.products]
            return 200, {"products": prods, "num_products": len(prods)}, {}
        pid = p[len("/products/"):]
        if pid not in self.products:
            raise _BadRequest(404, f"ProductID {pid} could not be found")
        return 200, self._product(pid), {}

    def _page(self, items: list[Any], one: dict[str, str], default: int, maximum: int
              ) -> tuple[list[Any], bool, str]:
        try:
            limit = int(one.get("limit") or self.page_limit or default)
            start = int(one.get("cursor") or 0)
        except ValueError:
            raise _BadRequest(400, "limit and cursor must be integers") from None
        if limit < 1 or limit > maximum:
            raise _BadRequest(400, f"limit must be between 1 and {maximum}")
        page = items[start:start + limit]
        has_next = start + limit < len(items)
        return page, has_next, str(start + limit) if has_next else ""

    def _accounts(self, one: dict[str, str]) -> dict[str, Any]:
        accounts = [self._account(cur) for cur in sorted(self.balances)]
        page, has_next, cursor = self._page(accounts, one, 49, 250)
        return {"accounts": page, "has_next": has_next, "cursor": cursor, "size": len(page)}

    def _list_orders(self, query: dict[str, list[str]], one: dict[str, str]) -> dict[str, Any]:
        unknown = set(query) - _LIST_ORDER_PARAMS
        if unknown:
            raise _BadRequest(400, f"unknown query parameter(s) {sorted(unknown)} "
                              "(List Orders filters: order_ids, product_ids, order_status, ...)")
        statuses = set(query.get("order_status", []))
        if statuses - _ORDER_STATUSES:
            raise _BadRequest(400, f"invalid order_status {sorted(statuses - _ORDER_STATUSES)}")
        if "OPEN" in statuses and len(statuses) > 1:
            # documented: "OPEN" cannot be combined with other statuses
            raise _BadRequest(400, "order_status OPEN cannot be combined with other statuses")
        ids = set(query.get("order_ids", []))
        pids = set(query.get("product_ids", []))
        types = set(query.get("order_types", []))
        side = one.get("order_side")
        start = _parse_time(one["start_date"]) if one.get("start_date") else None
        end = _parse_time(one["end_date"]) if one.get("end_date") else None
        out = []
        for o in sorted(self.orders.values(), key=lambda x: -x.seq):     # newest first
            if ids and o.order_id not in ids:
                continue
            if pids and o.product_id not in pids:
                continue
            if statuses:
                # a resting bracket waiting for its parent is reported with the open ones
                st = "OPEN" if o.status == "PENDING" and "OPEN" in statuses else o.status
                if st not in statuses:
                    continue
            if types and o.order_type not in types:
                continue
            if side and o.side != side:
                continue
            # documented: start_date and end_date do not apply to open orders
            if start is not None and o.created < start and not o.is_open:
                continue
            if end is not None and o.created > end and not o.is_open:
                continue
            out.append(o.wire())
        page, has_next, cursor = self._page(out, one, 100, 1000)
        return {"orders": page, "sequence": "0", "has_next": has_next, "cursor": cursor}

    def _list_fills(self, query: dict[str, list[str]], one: dict[str, str]) -> dict[str, Any]:
        unknown = set(query) - _FILL_PARAMS
        if unknown:
            raise _BadRequest(400, f"unknown query parameter(s) {sorted(unknown)}")
        ids = set(query.get("order_ids", []) + query.get("order_id", []))
        trades = set(query.get("trade_ids", []))
        pids = set(query.get("product_ids", []) + query.get("product_id", []))
        start = (_parse_time(one["start_sequence_timestamp"])
                 if one.get("start_sequence_timestamp") else None)
        end = (_parse_time(one["end_sequence_timestamp"])
               if one.get("end_sequence_timestamp") else None)
        out = []
        for f in reversed(self.fills):                                    # newest first
            if ids and f["order_id"] not in ids:
                continue
            if trades and f["trade_id"] not in trades:
                continue
            if pids and f["product_id"] not in pids:
                continue
            t = _parse_time(f["sequence_timestamp"])
            if start is not None and t < start:
                continue
            if end is not None and t > end:
                continue
            out.append(f)
        page, _, cursor = self._page(out, one, 100, 1000)
        return {"fills": page, "cursor": cursor}


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer doing each TLS handshake in the connection's own thread."""

    daemon_threads = True
    ssl_context: ssl.SSLContext | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
        assert self.ssl_context is not None
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except OSError:                     # the client does not trust the test CA
            return None
        try:
            return super().finish_request(tls, client_address)
        finally:
            try:
                tls.close()
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    fake: FakeCoinbase
    protocol_version = "HTTP/1.1"
    # headers and body go out in two writes; without TCP_NODELAY the second waits for the
    # client's delayed ACK (~40 ms a response on loopback)
    disable_nagle_algorithm = True

    def log_message(self, *args: Any) -> None:   # keep test output clean
        pass

    def _send(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        if isinstance(body, str):
            ctype = "text/html; charset=utf-8" if body.startswith("<html") else \
                "text/plain; charset=utf-8"
            data = body.encode()
        else:
            # compact separators: the SDK looks for '"error_details":"Missing required
            # scopes"' byte for byte in a 403 body
            data, ctype = json.dumps(body, separators=(",", ":")).encode(), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _abort(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _serve(self, method: str) -> None:
        fake = self.fake
        parts = urlsplit(self.path)
        path = parts.path
        query = parse_qs(parts.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if path.startswith("/_test/"):              # TEST CONTROL (FakeCoinbase.control)
            self._control(method, path[len("/_test/"):], raw)
            return
        record: dict[str, Any] = {"method": method, "path": path,
                                  "query": {k: list(v) for k, v in query.items()}, "status": None}
        with fake._lock:
            fake.requests.append(record)
        fault = fake._take_fault(method, path)
        if fault is not None and fault.mode == "drop":
            self._abort()
            return
        if fault is not None and fault.mode == "status":
            body = fault.body if fault.body is not None else fake.fault_body(fault.status)
            record["status"] = fault.status
            self._send(fault.status, body, fault.headers)
            return
        if fault is not None and fault.mode == "slow":
            time.sleep(fault.seconds)
        if not path.startswith(PREFIX):
            record["status"] = 404
            self._send(404, fake.error_body(404, "Not Found"))
            return
        public = path == f"{PREFIX}/time" or path.startswith(f"{PREFIX}/market/")
        if not public:
            why = fake._authenticate(method, path, self.headers.get("Authorization"))
            if why is not None:
                with fake._lock:
                    fake.auth_failures.append(why)
                record["status"] = 401
                self._send(401, "Unauthorized")
                return
            allowed, limit_headers = fake._rate()
            if not allowed:
                record["status"] = 429
                self._send(429, fake.fault_body(429), limit_headers)
                return
        else:
            limit_headers = {}
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            record["status"] = 400
            self._send(400, fake.error_body(400, "the request body is not JSON"))
            return
        status, answer, headers = fake.handle(method, path, query, body)
        headers = {**limit_headers, **headers}
        record["status"] = status
        if fault is not None and fault.mode == "lose_response":
            self._abort()
            return
        try:
            self._send(status, answer, headers)
        except OSError:                       # the client gave up (a slow fault)
            self.close_connection = True

    def _control(self, method: str, name: str, raw: bytes) -> None:
        """Answer a TEST CONTROL request (see :attr:`FakeCoinbase.control`)."""
        fake = self.fake
        hook = fake.control.get(name)
        if method != "POST" or hook is None:
            self._send(404, fake.error_body(404, f"no test control {method} /_test/{name}"))
            return
        try:
            body = json.loads(raw) if raw.strip() else {}
            if not isinstance(body, dict):
                raise TypeError("the body must be a JSON object")
            result = hook(body)
        except Exception as exc:  # noqa: BLE001 (the test's hook failed: say so, and fail it)
            with fake._lock:
                fake.errors.append(f"test control {name}: {exc!r}")
            self._send(500, fake.error_body(500, f"test control {name}: {exc!r}"))
            return
        self._send(200, {"result": result})

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")
