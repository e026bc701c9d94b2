"""Coinbase Advanced Trade: the broker port over the official ``coinbase-advanced-py`` SDK.

:class:`CoinbaseBroker` implements :class:`~tradewarden.execution.base.Broker` with the
SDK's :class:`coinbase.rest.RESTClient` (REST is the truth; no websocket). Every call
goes through one wrapper that turns the SDK's errors into
:class:`~tradewarden.execution.venue.VenueError` /
:class:`~tradewarden.execution.venue.VenueUnavailable` with the venue's own words, waits
out a 429 for as long as its ``Retry-After`` asks (through the clock, never the wall
clock), and retries reads after a timeout or a 5xx. A create-order request is never
retried blindly: after a timeout, a dropped connection or a 5xx the order is looked up
by its client order id first, and sent again only when Coinbase says it does not have it.
(A request still in flight when the lookup runs can still be placed; Coinbase then keeps
one order per client order id: "If the ID provided is not unique, the order will not be
created and the order corresponding with that ID will be returned instead", Create
Order reference, ``client_order_id``, as quoted in the test fake; unconfirmed live.)

Venue rules and their sources
-----------------------------
* **Wire shapes** (create / get / list orders, fills, ``batch_cancel``, products,
  accounts, ``key_permissions``): the SDK's ``coinbase/rest/*.py`` and
  ``rest/types/*.py`` (1.8.4) and Coinbase's API reference
  (docs.cdp.coinbase.com/api-reference/advanced-trade-api/rest-api), as summarised in
  ``/work/shared/CLIENT-FACTS.md``.
* **Bracket entry**: one create-order request, the entry as ``market_market_ioc`` (or
  ``limit_limit_gtc``) sized in ``base_size``, with ``attached_order_configuration =
  {"trigger_bracket_gtc": {"limit_price": TP, "stop_trigger_price": SL}}``. "Only
  TriggerBracketGtc is eligible. Size field must be omitted as the size of the attached
  order is the same as that of the parent order" (API reference, Preview Orders,
  ``attached_order_configuration``). Both prices are required, so an entry with only one
  leg is refused (``ValueError``) before anything is sent.
* **Stop-limit buffer**: "When triggered, a stop limit order is automatically placed
  with a limit price 5% higher for BUYS and 5% lower for SELLS" (the text of
  ``stop_trigger_price`` as the generated SDKs reproduce Coinbase's reference: rCoinbase
  ``cb_trig_gtc_order``, the Rust, Kotlin and C# clients; not seen on Coinbase's page
  itself and unconfirmed on a live account). The buffer is a constructor parameter;
  :meth:`CoinbaseBroker.worst_stop_fill` gives the worst fill risk sizing must count.
* **Rejections** arrive as HTTP 200 with ``success: false`` and an ``error_response``
  (``error``, ``message``, ``error_details``, ``preview_failure_reason``,
  ``new_order_failure_reason``); the rejected event carries those words.
* **Rounding** (the trader's disfavour, never the venue's): sizes DOWN to the product's
  ``base_increment`` (never buy more than risk sized); the take-profit (a sell limit)
  DOWN to ``price_increment`` (``quote_increment`` when absent): the exit never asks
  more than the strategy's level, so the gain booked by the plan is not overstated; the
  stop trigger UP to ``price_increment``: the stop fires no later than the strategy's
  level, so the loss risk sizing counted is not exceeded by the rounding. The engine's
  own rounding (take-profit up, stop down, to its instrument) uses the same increment
  when the instruments come from :meth:`CoinbaseBroker.instruments_from_products`, and
  then these roundings change nothing.
* **Product flags** ``trading_disabled``, ``is_disabled``, ``cancel_only``,
  ``limit_only`` (a market entry is refused), ``post_only`` (likewise) and a ``status``
  other than ``online`` block entries (Products, Get Product); the reason is returned
  by :meth:`CoinbaseBroker.entry_blocks` and carried by the rejected event.
* **Statuses** (``Order.status``: PENDING, QUEUED, OPEN, FILLED, CANCELLED,
  CANCEL_QUEUED, EXPIRED, FAILED, UNKNOWN_ORDER_STATUS) map to the port's lifecycle in
  :data:`STATUS_MAP`; ``trigger_status`` STOP_TRIGGERED on an attached bracket is the
  stop-loss leg's ``triggered``.

The attached bracket and the engine's two legs
----------------------------------------------
Coinbase keeps a bracket's take-profit and stop-loss as ONE attached order (its
``originating_order_id`` is the entry's order id; the entry's ``attached_order_id``
names it) whose configuration is ``trigger_bracket_gtc``. The engine has two leg orders.
The adapter maps them:

* entry open -> both legs ``accepted``; entry filled and the attached order open -> both
  ``working`` (``bracket leg live``);
* a fill of the attached order belongs to the **stop-loss** when the attached order's
  ``trigger_status`` is ``STOP_TRIGGERED`` (the stop fired and replaced the take-profit
  limit with a stop-limit), otherwise to the **take-profit**; when the trigger status is
  missing or unknown, a fill at or above the take-profit's ``limit_price`` is the
  take-profit's and any other the stop-loss's. The other leg is ``cancelled``
  (``oco: other leg filled``) when the filled leg is complete: the venue ends the
  bracket as one order;
* the attached order ended without an exit: cancelled (by this adapter, or by a person
  at Coinbase: an alert says the position is held without protection) -> both legs
  ``cancelled``; failed or expired while the position is held -> the protection is lost:
  the adapter sells the position at market (client order id ``{entry}-flatten``) and
  reports that sale as the stop-loss leg's fill, the take-profit ``cancelled``, both with
  the reason ``protection lost: ...``. The same holds after a restart: what the entry
  bought is then the venue's ``filled_size`` (the fills were booked by the earlier
  process), and a bracket that ended while no process watched is sold when
  :meth:`CoinbaseBroker.lookup` first reads its legs. One sale per entry: a sale under
  ``{entry}-flatten`` that Coinbase already has (a process killed after making it) is
  taken, not made again.

Never an unprotected position by accident
-----------------------------------------
After a bracket entry is placed the adapter reads it back: the entry must name an
attached order, that order must not have failed or ended, and its ``limit_price`` and
``stop_trigger_price`` must be those sent. The same check runs in :meth:`process`
before the first fill of a bracket entry is reported (again when a resting entry
fills: its attached order waits as PENDING until then). When it fails the entry (and
what exists of the attached order) is cancelled, any quantity the entry already bought
is sold at market, and the entry and its legs are reported ``cancelled`` with the
reason ``protection not in place: ...`` (which says what was bought and sold); the text
is also appended to :attr:`CoinbaseBroker.alerts`. The engine's books then stay flat
while the venue's quote balance carries the round trip's cost, so reconciliation
reports the balance difference and blocks entries until a person looks.

Following orders across restarts
--------------------------------
The engine looks up every order it holds open (:meth:`CoinbaseBroker.lookup`), then
hands them over with what it booked on each (:meth:`CoinbaseBroker.adopt`). A lookup in
a new process finds an entry or exit by its client order id (List Orders over the
adapter's products) and a bracket leg through its entry, named by the engine's
convention (``{prefix}-take_profit`` / ``{prefix}-stop_loss`` belong to
``{prefix}-entry``) until :meth:`~CoinbaseBroker.adopt` names the parent.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import (
    ROUND_CEILING,
    ROUND_DOWN,
    ROUND_FLOOR,
    ROUND_HALF_EVEN,
    Decimal,
    InvalidOperation,
)
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests

from tradewarden.domain import (
    Bar,
    Fill,
    Instrument,
    Order,
    OrderRole,
    OrderStatus,
    OrderType,
    Side,
    iso,
)
from tradewarden.execution.base import (
    BrokerCapabilities,
    OrderEvent,
    OrderEventKind,
    VenueAccount,
    VenueOrder,
    report_step,
)
from tradewarden.execution.venue import Preflight, VenueError, VenueUnavailable


class Clock(Protocol):
    """The time this adapter needs (``tradewarden.engine.clock.Clock``'s shape; the engine
    is a higher layer than execution, so it is not imported)."""

    def now(self) -> int:
        """Return the current time, UTC epoch seconds."""

    def wait_until(self, ts: int) -> None:
        """Return once :meth:`now` is at least ``ts`` (UTC epoch seconds)."""

VENUE = "coinbase"
K = OrderEventKind
_ZERO = Decimal(0)

#: Coinbase order status -> the port's status (``Order.status`` of Get Order / List Orders).
#: CANCEL_QUEUED is still open at the venue (the cancel is not done); PENDING and QUEUED
#: are acknowledged but not yet on the book.
STATUS_MAP: dict[str, OrderStatus] = {
    "PENDING": OrderStatus.ACCEPTED,
    "QUEUED": OrderStatus.ACCEPTED,
    "OPEN": OrderStatus.WORKING,
    "CANCEL_QUEUED": OrderStatus.WORKING,
    "EDIT_QUEUED": OrderStatus.WORKING,
    "FILLED": OrderStatus.FILLED,
    "CANCELLED": OrderStatus.CANCELLED,
    "EXPIRED": OrderStatus.EXPIRED,
    "FAILED": OrderStatus.REJECTED,
    "UNKNOWN_ORDER_STATUS": OrderStatus.UNKNOWN,
}
_ENDED = {"CANCELLED": K.CANCELLED, "EXPIRED": K.EXPIRED, "FAILED": K.REJECTED}
_OPEN_VENUE = frozenset({"PENDING", "QUEUED", "OPEN", "CANCEL_QUEUED", "EDIT_QUEUED"})
_LEG_LIVE = "bracket leg live"
_OCO = "oco: other leg filled"
#: Longest wait for a market close's fill (:meth:`CoinbaseBroker.close_position`), seconds.
CLOSE_WAIT = 30
#: Pages read of one paginated listing before giving up (orders and fills, 250 a page).
MAX_PAGES = 40
_PAGE = 250


class _Uncertain(Exception):
    """A request whose outcome is unknown (timeout, dropped connection, 5xx)."""


@dataclass(eq=False)
class _Bracket:
    """An entry's legs and what the venue's attached order did with them."""

    tp: Order | None
    sl: Order | None
    attached_id: str | None = None
    live: bool = False            # legs reported working
    checked: bool = False         # the attached order was seen in place
    triggered: bool = False       # the stop-loss's ``triggered`` reported
    trades: set[str] = field(default_factory=set)             # attached fills reported whole
    skip: dict[str, Decimal] = field(default_factory=dict)    # trade id -> base units booked of it
    filled: dict[str, Decimal] = field(default_factory=dict)  # leg cid -> reported base units
    booked: dict[str, Decimal] | None = None   # adopted: leg cid -> booked, to seed at the next poll
    lost: tuple[Decimal, list[Fill], str] | None = None   # the protection-lost sale: size, fills, why

    def legs(self) -> list[Order]:
        return [x for x in (self.tp, self.sl) if x is not None]


@dataclass(eq=False)
class _Track:
    """One order the adapter sent (or adopted): the engine's object and the venue's id."""

    order: Order
    venue_id: str | None = None
    bracket: _Bracket | None = None
    trades: set[str] = field(default_factory=set)             # fills reported whole (trade ids)
    skip: dict[str, Decimal] = field(default_factory=dict)    # trade id -> base units booked of it
    filled: Decimal = _ZERO          # base units reported to the engine
    booked: Decimal | None = None    # adopted: booked base units, to seed at the next poll


def _tid(f: dict[str, Any]) -> str:
    return _text(f.get("trade_id")) or _text(f.get("entry_id"))


def _parent_of(cid: str) -> str | None:
    """The entry's client order id of a bracket leg's, by the engine's naming
    (``{prefix}-take_profit`` / ``{prefix}-stop_loss`` belong to ``{prefix}-entry``,
    :meth:`tradewarden.engine.TradingEngine._entry_orders`); None for other ids."""
    for suffix in ("-take_profit", "-stop_loss"):
        if cid.endswith(suffix):
            return cid[: -len(suffix)] + "-entry"
    return None


def _dec(value: Any, default: Decimal = _ZERO) -> Decimal:
    """A venue number (string, number, ``""`` or None) as a Decimal."""
    if value is None or value == "":
        return default
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        return default
    return d if d.is_finite() else default


def _epoch(text: Any, default: int) -> int:
    """An RFC 3339 time of the venue (``2024-01-15T10:30:00.123Z``) as UTC epoch seconds."""
    if not text:
        return default
    try:
        return int(datetime.fromisoformat(str(text)).timestamp())
    except ValueError:
        return default


def _round(value: Decimal, step: Decimal, mode: str) -> Decimal:
    steps = (value / step).to_integral_value(rounding=mode)
    return (steps * step).quantize(step)


def _plain(obj: Any) -> dict[str, Any]:
    """An SDK response (``BaseResponse``) or a dict as a plain dict."""
    if isinstance(obj, dict):
        return obj
    to_dict = getattr(obj, "to_dict", None)
    return to_dict() if to_dict is not None else dict(vars(obj))


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _http_words(exc: requests.HTTPError) -> str:
    """The venue's words from an HTTP error: status, then ``error``/``message``/``details``."""
    resp = exc.response
    if resp is None:
        return str(exc)
    body = resp.text or ""
    words = body.strip()
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        parts = [_text(data.get(k)) for k in ("error", "message", "error_details") if data.get(k)]
        details = data.get("details")
        if details:
            parts.append(json.dumps(details) if not isinstance(details, str) else details)
        words = ": ".join(dict.fromkeys(parts)) or words
    words = " ".join(words.split())[:300]
    return f"HTTP {resp.status_code} {resp.reason or ''}".rstrip() + (f": {words}" if words else "")


def _error_words(err: dict[str, Any] | None) -> str:
    """The words of a create-order ``error_response``."""
    if not err:
        return "rejected (no error_response)"
    parts = [_text(err.get(k)) for k in ("error", "message", "error_details") if err.get(k)]
    for k in ("preview_failure_reason", "new_order_failure_reason"):
        v = _text(err.get(k))
        if v and not v.startswith("UNKNOWN"):
            parts.append(f"{k}={v}")
    return ": ".join(dict.fromkeys(parts)) or "rejected"


def base_url_of(api_url: str) -> str:
    """Return the SDK's ``base_url`` (``host[:port]``, no scheme) for a ``[venue] api_url``.

    ``https://127.0.0.1:8443``, ``127.0.0.1:8443`` and ``https://api.coinbase.com/`` give
    ``127.0.0.1:8443``, ``127.0.0.1:8443`` and ``api.coinbase.com``: the SDK always sends
    ``https://{base_url}{path}`` (``rest_base.py``, ``send_request``).

    Raises
    ------
    ValueError
        A scheme other than ``https`` (the SDK cannot speak plain HTTP) or no host.
    """
    text = api_url.strip()
    parts = urlsplit(text if "//" in text else f"https://{text}")
    if parts.scheme != "https":
        raise ValueError(f"[venue] api_url {api_url!r}: the Coinbase SDK speaks https only")
    if not parts.netloc:
        raise ValueError(f"[venue] api_url {api_url!r}: no host")
    return parts.netloc


class CoinbaseBroker:
    """Coinbase Advanced Trade through the official SDK; implements the ``Broker`` port.

    Parameters
    ----------
    client : coinbase.rest.RESTClient
        An authenticated client (:meth:`connect` builds one).
    instruments : dict of str to Instrument
        Specs per product id (``BTC-USD``), normally :meth:`instruments_from_products`.
    clock : Clock
        The only source of time: ``now()`` stamps events, ``wait_until()`` waits out a
        429's ``Retry-After``, the backoff between read retries and a market close.
    stop_limit_buffer : Decimal
        Fraction below the stop trigger where Coinbase puts the stop-limit's limit for
        a sell (0.05: "5% lower for SELLS", see the module notes); used by
        :meth:`worst_stop_fill`, in ``[0, 1)``.
    max_retries : int
        Retries of one call after a 429 or, for reads and cancels, a timeout or 5xx
        (waits 1, 2, 4 ... s between the latter); a create-order request is sent again
        at most this many times, and only after Coinbase says it does not have it.

    Attributes
    ----------
    capabilities : BrokerCapabilities
        Native bracket and OCO (the attached ``trigger_bracket_gtc``), client order ids,
        partial fills; ``stop_orders=False``: Coinbase spot has no stop-market order (only
        stop-limit), so a standalone stop order is refused; protective stops go with
        the entry as the attached bracket.
    alerts : list of str
        What a person must read: a protection not in place or lost and what was done
        about it, a bracket cancelled at Coinbase by someone else, a refused cancel, an
        order Coinbase does not list, reads that failed during :meth:`process` (done
        again at the next call). The caller drains it.

    Raises
    ------
    ValueError
        ``stop_limit_buffer`` outside ``[0, 1)`` or ``max_retries`` negative.
    """

    capabilities = BrokerCapabilities(native_bracket=True, native_oco=True, stop_orders=False,
                                      client_order_ids=True, partial_fills=True)

    def __init__(self, client: Any, instruments: dict[str, Instrument], *, clock: Clock,
                 stop_limit_buffer: Decimal = Decimal("0.05"), max_retries: int = 3) -> None:
        buf = Decimal(str(stop_limit_buffer))
        if not Decimal(0) <= buf < 1:
            raise ValueError(f"stop_limit_buffer must be in [0, 1), got {stop_limit_buffer}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        self.client = client
        self.instruments = dict(instruments)
        self.clock = clock
        self.stop_limit_buffer = buf
        self.max_retries = int(max_retries)
        self.alerts: list[str] = []
        self._blocks: dict[str, str] = {}
        self._products: dict[str, dict[str, Any]] = {}
        self._tracks: dict[str, _Track] = {}       # client order id -> sent order (entries, exits)
        self._leg_of: dict[str, str] = {}          # leg client order id -> its entry's
        self._reported: dict[str, OrderStatus] = {}  # client order id -> status told to the engine

    # -- construction --------------------------------------------------------------------
    @classmethod
    def connect(cls, *, api_key: str | None = None, api_secret: str | None = None,
                key_file: str | None = None, api_url: str | None = None, symbols: Iterable[str],
                clock: Clock, timeout: float = 10, stop_limit_buffer: Decimal = Decimal("0.05"),
                max_retries: int = 3,
                client_factory: Callable[..., Any] | None = None) -> CoinbaseBroker:
        """Build the SDK client and load the products of ``symbols``.

        Parameters
        ----------
        api_key, api_secret : str, optional
            The CDP key's name (``organizations/.../apiKeys/...``) and its private key
            (PEM EC or base64 Ed25519). Never printed or stored.
        key_file : str, optional
            The CDP key file (JSON with ``name`` and ``privateKey``) instead of the two.
        api_url : str, optional
            Another host for the SDK (``https://127.0.0.1:8443``, a loopback fake); see
            :func:`base_url_of`. Default Coinbase's ``api.coinbase.com``.
        symbols : iterable of str
            Product ids to trade (``BTC-USD``).
        clock : Clock
        timeout : float
            Seconds per HTTP request (the SDK's ``timeout``).
        stop_limit_buffer : Decimal
        max_retries : int
        client_factory : callable, optional
            ``RESTClient`` by default (a test may wrap it).

        Returns
        -------
        CoinbaseBroker

        Raises
        ------
        ValueError
            Both or neither of the key and the key file, a key file that cannot be
            read, a bad ``api_url`` (one line naming it).
        VenueError
            A product that does not exist or cannot be read.
        VenueUnavailable
            Coinbase did not answer.
        """
        if key_file is not None and (api_key is not None or api_secret is not None):
            raise ValueError("[venue] give either key_file or api_key and api_secret, not both")
        if key_file is None and (not api_key or not api_secret):
            raise ValueError("[venue] Coinbase needs credentials: TRADEWARDEN_VENUE__API_KEY and "
                             "TRADEWARDEN_VENUE__API_SECRET, or [venue] key_file (the CDP key file)")
        if client_factory is None:
            from coinbase.rest import RESTClient
            client_factory = RESTClient
        kwargs: dict[str, Any] = {"api_key": api_key, "api_secret": api_secret,
                                  "key_file": key_file, "timeout": timeout}
        if api_url:
            kwargs["base_url"] = base_url_of(api_url)
        try:
            client = client_factory(**kwargs)
        except OSError as exc:
            raise ValueError(f"[venue] key_file {key_file}: {exc.strerror or exc}") from None
        except Exception as exc:  # noqa: BLE001 - the SDK raises a bare Exception for a bad key file
            where = f"key_file {key_file}" if key_file else "api_key/api_secret"
            raise ValueError(f"[venue] {where}: {str(exc).splitlines()[0]}") from None
        broker = cls(client, {}, clock=clock, stop_limit_buffer=stop_limit_buffer,
                     max_retries=max_retries)
        broker.instruments = broker.instruments_from_products(list(symbols))
        return broker

    def instruments_from_products(self, symbols: list[str]) -> dict[str, Instrument]:
        """Read each product (``GET /api/v3/brokerage/products/{id}``) and return its spec.

        ``price_increment`` (``quote_increment`` when absent) is the price step,
        ``base_increment`` the size step, ``base_min_size`` the smallest size,
        ``quote_min_size`` the smallest order value and ``quote_max_size`` the largest
        (quote currency). The product's flags are kept: :meth:`entry_blocks`.

        Parameters
        ----------
        symbols : list of str
            Product ids.

        Returns
        -------
        dict of str to Instrument
            In ``symbols`` order; ``source`` names the endpoint.

        Raises
        ------
        VenueError
            An unknown product (HTTP 404 with Coinbase's words) or a spec without
            increments.
        VenueUnavailable
            Coinbase did not answer.
        """
        out: dict[str, Instrument] = {}
        for sym in symbols:
            p = _plain(self._call(f"get product {sym}", self.client.get_product, sym))
            base_inc = _dec(p.get("base_increment"))
            price_inc = _dec(p.get("price_increment")) or _dec(p.get("quote_increment"))
            if base_inc <= 0 or price_inc <= 0:
                raise VenueError(VENUE, f"product {sym}: no base_increment/price_increment in "
                                 "GET /products (cannot round sizes and prices)")
            base_id, _, quote_id = sym.partition("-")
            max_q = _dec(p.get("quote_max_size"))
            out[sym] = Instrument(
                sym, _text(p.get("base_currency_id")) or base_id,
                _text(p.get("quote_currency_id")) or quote_id, price_inc, base_inc,
                min_notional=_dec(p.get("quote_min_size")),
                max_notional=max_q if max_q > 0 else None,
                min_quantity=max(_dec(p.get("base_min_size")), base_inc),
                source=f"coinbase GET /api/v3/brokerage/products/{sym}")
            self._products[sym] = p
            why = self._product_block(p)
            if why:
                self._blocks[sym] = why
            else:
                self._blocks.pop(sym, None)
        return out

    @staticmethod
    def _product_block(p: dict[str, Any]) -> str:
        flags = [name for name in ("trading_disabled", "is_disabled", "cancel_only", "limit_only",
                                   "post_only", "view_only") if p.get(name) is True]
        status = _text(p.get("status"))
        if status and status.lower() != "online":
            flags.append(f"status {status}")
        return ", ".join(flags)

    def entry_blocks(self) -> dict[str, str]:
        """Return ``symbol -> reason`` for products whose flags block new entries.

        From the last :meth:`instruments_from_products`: ``trading_disabled``,
        ``is_disabled``, ``cancel_only``, ``limit_only`` and ``post_only`` (this adapter
        enters with market orders), ``view_only``, and a ``status`` other than
        ``online``. A submitted entry for such a product is answered ``rejected`` with
        the reason, without a request.
        """
        return {s: f"coinbase product {s}: {why}" for s, why in self._blocks.items()}

    def worst_stop_fill(self, stop_trigger: Decimal, symbol: str) -> Decimal:
        """Return the lowest price a sell stop-loss triggered at ``stop_trigger`` may fill at.

        ``stop_trigger * (1 - stop_limit_buffer)`` rounded DOWN to the product's price
        increment (quote currency per base unit): the limit of the stop-limit Coinbase
        places when the attached bracket's stop triggers (module notes). Risk sizing
        that counts this price counts the buffer.

        Raises
        ------
        KeyError
            An unknown symbol.
        """
        inst = self.instruments[symbol]
        return _round(stop_trigger * (1 - self.stop_limit_buffer), inst.price_increment, ROUND_FLOOR)

    # -- the call wrapper ----------------------------------------------------------------
    def _wait(self, seconds: float) -> None:
        self.clock.wait_until(self.clock.now() + max(1, math.ceil(seconds)))

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, safe: bool = True,
              **kwargs: Any) -> Any:
        """Call the SDK once or more: 429 waits ``Retry-After`` and retries; a timeout,
        dropped connection or 5xx retries when ``safe`` (reads, cancels), else raises
        :class:`_Uncertain`. Other HTTP errors raise :class:`VenueError` with the venue's words."""
        attempt = 0
        while True:
            try:
                return fn(*args, **kwargs)
            except requests.HTTPError as exc:
                resp = exc.response
                code = resp.status_code if resp is not None else 0
                words = _http_words(exc)
                if code == 429:
                    if attempt >= self.max_retries:
                        raise VenueUnavailable(VENUE, f"{what}: rate limited {attempt + 1} times: "
                                               f"{words}") from None
                    self._wait(_dec(resp.headers.get("Retry-After"), Decimal(1)))
                elif code >= 500:
                    if not safe:
                        raise _Uncertain(words) from None
                    if attempt >= self.max_retries:
                        raise VenueUnavailable(VENUE, f"{what}: {words}") from None
                    self._wait(2 ** attempt)
                else:
                    raise VenueError(VENUE, f"{what}: {words}") from None
            except (requests.Timeout, requests.ConnectionError) as exc:
                words = f"{type(exc).__name__}: {str(exc)[:200]}"
                if not safe:
                    raise _Uncertain(words) from None
                if attempt >= self.max_retries:
                    raise VenueUnavailable(VENUE, f"{what}: {words}") from None
                self._wait(2 ** attempt)
            except requests.RequestException as exc:
                raise VenueError(VENUE, f"{what}: {type(exc).__name__}: {exc}") from None
            except (VenueError, _Uncertain):
                raise
            except Exception as exc:  # noqa: BLE001 - the SDK raises bare Exceptions for key problems
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise VenueError(VENUE, f"{what}: {first}") from None
            attempt += 1

    # -- venue reads ---------------------------------------------------------------------
    def _get_order(self, order_id: str) -> dict[str, Any]:
        resp = _plain(self._call(f"get order {order_id}", self.client.get_order, order_id))
        return _plain(resp.get("order") or {})

    def _fills(self, order_id: str) -> list[dict[str, Any]]:
        """Every fill of one venue order (``GET /orders/historical/fills``), oldest first."""
        out: list[dict[str, Any]] = []
        cursor = None
        for _ in range(MAX_PAGES):
            resp = _plain(self._call(f"list fills of {order_id}", self.client.get_fills,
                                     order_ids=[order_id], limit=_PAGE, cursor=cursor))
            page = [_plain(f) for f in resp.get("fills") or []]
            out += [f for f in page if _text(f.get("order_id")) in ("", order_id)]
            cursor = resp.get("cursor")
            if not cursor or not page:
                break
        seen: set[str] = set()
        uniq = []
        for f in out:
            tid = _text(f.get("trade_id")) or _text(f.get("entry_id"))
            if tid not in seen:
                seen.add(tid)
                uniq.append(f)
        uniq.sort(key=lambda f: (_epoch(f.get("trade_time"), 0), _text(f.get("sequence_timestamp"))))
        return uniq

    def _list_orders(self, **filters: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        cursor = None
        for _ in range(MAX_PAGES):
            resp = _plain(self._call("list orders", self.client.list_orders, limit=_PAGE,
                                     cursor=cursor, **filters))
            out += [_plain(o) for o in resp.get("orders") or []]
            cursor = resp.get("cursor")
            if not resp.get("has_next") or not cursor:
                break
        return out

    def _find(self, cid: str, symbol: str | None, since: int | None) -> dict[str, Any] | None:
        """The venue's order with client order id ``cid`` (List Orders, filtered by product
        and start date, matched on ``client_order_id``), or None if it has none."""
        filters: dict[str, Any] = {}
        if symbol:
            filters["product_ids"] = [symbol]
        if since is not None:
            filters["start_date"] = iso(since - 86_400)
        for o in self._list_orders(**filters):
            if _text(o.get("client_order_id")) == cid:
                return o
        return None

    def _fill_of(self, f: dict[str, Any], order: Order, inst: Instrument) -> Fill:
        price = _dec(f.get("price"))
        size = _dec(f.get("size"))
        if f.get("size_in_quote") is True and price > 0:    # size given in quote currency
            size = _round(size / price, inst.quantity_increment, ROUND_DOWN)
        liq = _text(f.get("liquidity_indicator")).upper()
        return Fill(order.client_order_id, order.symbol, order.side, size, price,
                    _dec(f.get("commission")), {"MAKER": "maker", "TAKER": "taker"}.get(liq, "unknown"),
                    _epoch(f.get("trade_time"), self.clock.now()), price, order.role)

    # -- event bookkeeping ---------------------------------------------------------------
    def _emit(self, out: list[OrderEvent], order: Order, kind: OrderEventKind, ts: int,
              reason: str = "", fill: Fill | None = None) -> bool:
        """Append an event if it is a lifecycle step from what the engine was told."""
        if not report_step(self._reported, order, kind, fill, triggers_pass=True):
            return False
        out.append(OrderEvent(order, kind, ts, reason, fill))
        return True

    def _is_open(self, cid: str) -> bool:
        return self._reported.get(cid, OrderStatus.SUBMITTED).is_open

    # -- commands ------------------------------------------------------------------------
    def submit(self, order: Order, legs: tuple[Order, ...] = ()) -> list[OrderEvent]:
        """Send ``order`` (with ``legs``: one request carrying the attached bracket).

        The entry is a ``market_market_ioc`` order (``limit_limit_gtc`` for a limit
        order) with ``base_size`` = ``order.quantity`` rounded down to the product's
        ``base_increment``; legs become ``attached_order_configuration.trigger_bracket_gtc``
        (take-profit ``limit_price`` rounded down, stop-loss ``stop_trigger_price``
        rounded up to the price increment; module notes). ``client_order_id`` is the
        order's.

        Never retried blindly: after a timeout, a dropped connection or a 5xx the order
        is looked up by its client order id; found, it counts as placed; not found, it
        is sent again (at most ``max_retries`` times). A 429 waits ``Retry-After`` and
        sends again (nothing was accepted). When Coinbase cannot say, nothing is
        returned: the order stays ``submitted`` and :meth:`process` settles it.

        A placed bracket entry is read back and its attached order checked; when the
        protection is not in place the entry is cancelled and any bought quantity sold
        at market (module notes).

        Parameters
        ----------
        order : Order
            Market or limit order.
        legs : tuple of Order
            Both or none: a take-profit (sell limit, ``price``) and a stop-loss (sell
            stop, ``stop_price``) for the same symbol.

        Returns
        -------
        list of OrderEvent
            ``accepted`` for the order and each leg; or ``rejected`` for all of them
            with Coinbase's words (a size below ``base_min_size``, a product flag, an
            ``error_response``, a refused request); or, when the protection is not in
            place, ``accepted`` then ``cancelled`` for all; or nothing (unknown outcome).

        Raises
        ------
        ValueError
            A duplicate client order id, an unknown symbol, a non-positive quantity, a
            limit order without a price, a stop order (no stop-market at Coinbase), or
            legs that are not exactly one take-profit and one stop-loss of the symbol.
        VenueError
            Coinbase refused the credentials (HTTP 401/403): nothing was placed.
        """
        cid = order.client_order_id
        old = self._tracks.get(cid)
        if (old is not None and old.venue_id is None
                and self._reported.get(cid, OrderStatus.SUBMITTED) is OrderStatus.SUBMITTED):
            self._forget(old)     # never confirmed, and a lookup found nothing: send it again
        self._check_submit(order, legs)
        inst = self.instruments[order.symbol]
        ts = self.clock.now()
        size = inst.round_quantity(order.quantity)
        bracket = None
        if legs:
            tp = next(x for x in legs if x.role is OrderRole.TAKE_PROFIT)
            sl = next(x for x in legs if x.role is OrderRole.STOP_LOSS)
            bracket = _Bracket(tp, sl)
        track = _Track(order, bracket=bracket)
        self._tracks[cid] = track
        for leg in legs:
            self._leg_of[leg.client_order_id] = cid
        min_q = inst.min_quantity or inst.quantity_increment
        why = None
        if size < min_q:
            why = (f"size {size} {inst.base} (from {order.quantity}, rounded down to "
                   f"base_increment {inst.quantity_increment}) is below base_min_size {min_q}")
        elif order.side is Side.BUY and order.symbol in self._blocks:
            why = self.entry_blocks()[order.symbol]
        if why is not None:
            return self._reject_all(track, ts, f"not sent: {why}")
        config = self._configuration(order, size, inst)
        extra: dict[str, Any] = {}
        if bracket is not None:
            extra["attached_order_configuration"] = {"trigger_bracket_gtc": {
                "limit_price": str(inst.floor_price(bracket.tp.price)),
                "stop_trigger_price": str(_round(bracket.sl.stop_price, inst.price_increment,
                                                 ROUND_CEILING)),
            }}
        return self._place(track, config, extra, ts)

    def _forget(self, t: _Track) -> None:
        self._tracks.pop(t.order.client_order_id, None)
        for leg in t.bracket.legs() if t.bracket else ():
            self._leg_of.pop(leg.client_order_id, None)

    def _check_submit(self, order: Order, legs: tuple[Order, ...]) -> None:
        cid = order.client_order_id
        ids = [cid, *(x.client_order_id for x in legs)]
        if len(set(ids)) != len(ids):
            raise ValueError(f"order {cid}: duplicate client order id among the order and its legs")
        for i in ids:
            if i in self._tracks or i in self._leg_of:
                raise ValueError(f"duplicate client order id {i!r}")
        if order.symbol not in self.instruments:
            raise ValueError(f"unknown symbol {order.symbol!r} (coinbase products loaded: "
                             f"{', '.join(self.instruments) or 'none'})")
        if order.quantity <= 0:
            raise ValueError(f"order {cid}: quantity must be positive")
        if order.type is OrderType.STOP:
            raise ValueError(f"order {cid}: Coinbase spot has no stop-market order; a protective "
                             "stop goes with its entry as the attached bracket")
        if order.type is OrderType.LIMIT and order.price is None:
            raise ValueError(f"order {cid}: limit order needs a price")
        if not legs:
            return
        roles = sorted(x.role.value for x in legs)
        if roles != ["stop_loss", "take_profit"]:
            raise ValueError(f"order {cid}: a Coinbase attached bracket needs exactly one take-profit "
                             f"and one stop-loss (trigger_bracket_gtc takes both prices), got {roles}")
        for leg in legs:
            if leg.symbol != order.symbol or leg.side is not Side.SELL or order.side is not Side.BUY:
                raise ValueError(f"order {leg.client_order_id}: a bracket leg must sell the "
                                 f"entry's symbol {order.symbol}")
            if leg.role is OrderRole.TAKE_PROFIT and leg.price is None:
                raise ValueError(f"order {leg.client_order_id}: take-profit needs a price")
            if leg.role is OrderRole.STOP_LOSS and leg.stop_price is None:
                raise ValueError(f"order {leg.client_order_id}: stop-loss needs a stop price")

    @staticmethod
    def _configuration(order: Order, size: Decimal, inst: Instrument) -> dict[str, Any]:
        if order.type is OrderType.LIMIT:
            price = inst.floor_price(order.price) if order.side is Side.BUY else inst.ceil_price(order.price)
            return {"limit_limit_gtc": {"base_size": str(size), "limit_price": str(price),
                                        "post_only": False}}
        return {"market_market_ioc": {"base_size": str(size)}}

    def _reject_all(self, track: _Track, ts: int, reason: str) -> list[OrderEvent]:
        out: list[OrderEvent] = []
        self._emit(out, track.order, K.REJECTED, ts, reason)
        for leg in track.bracket.legs() if track.bracket else ():
            self._emit(out, leg, K.REJECTED, ts, f"entry rejected: {reason}")
        return out

    def _place(self, track: _Track, config: dict[str, Any], extra: dict[str, Any],
               ts: int) -> list[OrderEvent]:
        """Send the create-order request (see :meth:`submit` for the retry rules)."""
        order = track.order
        cid = order.client_order_id
        attempt = 0
        resp: dict[str, Any] | None = None
        while resp is None:
            try:
                resp = _plain(self._call(
                    f"create order {cid}", self.client.create_order, safe=False,
                    client_order_id=cid, product_id=order.symbol, side=order.side.value.upper(),
                    order_configuration=config, **extra))
            except _Uncertain as exc:
                try:
                    found = self._find(cid, order.symbol, order.created_ts)
                except VenueError as lost:
                    self.alerts.append(f"{cid}: create order outcome unknown ({exc}); lookup "
                                       f"failed ({lost}); settled at the next poll")
                    return []
                if found is not None:
                    resp = {"success": True, "success_response": {
                        "order_id": found.get("order_id"), "client_order_id": cid,
                        "attached_order_id": found.get("attached_order_id")}}
                    break
                attempt += 1
                if attempt > self.max_retries:
                    self.alerts.append(f"{cid}: coinbase did not take it after {attempt} attempts "
                                       f"({exc}); settled at the next poll")
                    return []
            except VenueUnavailable as exc:      # 429 after every retry: nothing accepted
                return self._reject_all(track, ts, f"not placed: {exc}")
            except VenueError as exc:
                text = str(exc)
                if " HTTP 401" in text or " HTTP 403" in text:
                    raise
                return self._reject_all(track, ts, text)
        if not resp.get("success"):
            return self._reject_all(track, ts, f"coinbase: {_error_words(resp.get('error_response'))}")
        ok = _plain(resp.get("success_response") or {})
        track.venue_id = _text(ok.get("order_id") or resp.get("order_id")) or None
        if track.bracket is not None:
            track.bracket.attached_id = _text(ok.get("attached_order_id")) or None
        out: list[OrderEvent] = []
        self._emit(out, order, K.ACCEPTED, ts)
        for leg in track.bracket.legs() if track.bracket else ():
            self._emit(out, leg, K.ACCEPTED, ts)
        return out + self._verify(track, ts)

    # -- protection ----------------------------------------------------------------------
    def _verify(self, track: _Track, ts: int) -> list[OrderEvent]:
        """Read a placed order back; for a bracket, check its attached order (module notes)."""
        if track.venue_id is None:
            return []
        try:
            o = self._get_order(track.venue_id)
        except VenueError as exc:
            self.alerts.append(f"{track.order.client_order_id}: placed, not read back ({exc}); "
                               "checked at the next poll")
            return []
        out: list[OrderEvent] = []
        if _text(o.get("status")) == "FAILED":
            return self._end_all(track, K.REJECTED, ts, self._reason(o, "failed at coinbase"))
        if track.bracket is not None:
            why = self._protection_problem(track, o)
            if why is not None:
                return self._unprotected(track, why, ts)
        return out

    def _protection_problem(self, track: _Track, o: dict[str, Any]) -> str | None:
        """Why the entry's attached bracket is not in place, or None when it is."""
        b = track.bracket
        att = _text(o.get("attached_order_id")) or b.attached_id
        if not att:
            return "coinbase names no attached_order_id for the entry"
        b.attached_id = att
        try:
            a = self._get_order(att)
        except VenueError as exc:
            if "HTTP 404" in str(exc):
                return f"attached order {att} not found at coinbase"
            raise
        status = _text(a.get("status"))
        if status in ("FAILED", "CANCELLED", "EXPIRED") and _dec(a.get("filled_size")) <= 0:
            return f"attached order {att} is {status}" + (f" ({self._reason(a, '')})" if self._reason(a, "") else "")
        cfg = _plain(_plain(a.get("order_configuration") or {}).get("trigger_bracket_gtc") or {})
        inst = self.instruments[track.order.symbol]
        want_tp = inst.floor_price(b.tp.price)
        want_sl = _round(b.sl.stop_price, inst.price_increment, ROUND_CEILING)
        got_tp, got_sl = _dec(cfg.get("limit_price"), None), _dec(cfg.get("stop_trigger_price"), None)
        if got_tp != want_tp or got_sl != want_sl:
            return (f"attached order {att} has limit_price {got_tp} / stop_trigger_price {got_sl}, "
                    f"sent {want_tp} / {want_sl}")
        b.checked = _text(o.get("status")) == "FILLED"   # a resting entry: again at its fill
        return None

    def _unprotected(self, track: _Track, why: str, ts: int) -> list[OrderEvent]:
        """Cancel the entry and its attached order, sell what was bought, report both."""
        order = track.order
        cid = order.client_order_id
        ids = [i for i in (track.venue_id, track.bracket.attached_id if track.bracket else None) if i]
        note = ""
        try:
            if ids:
                self._call(f"cancel {cid}", self.client.cancel_orders, order_ids=ids)
            bought = _dec(self._get_order(track.venue_id).get("filled_size")) if track.venue_id else _ZERO
            if bought > 0:
                inst = self.instruments[order.symbol]
                qty = inst.round_quantity(bought)
                flat_id = f"{cid}-flatten"
                sold = self._market_sell(flat_id, order.symbol, qty)
                note = (f"; {bought:f} {inst.base} bought, {qty.normalize():f} sold at market by the adapter "
                        f"(client order id {flat_id}: {sold})")
        except VenueError as exc:
            note = f"; the cancel or the closing sale failed: {exc}; CHECK THE ACCOUNT"
        reason = f"protection not in place: {why}{note}"
        self.alerts.append(f"{cid}: {reason}")
        return self._end_all(track, K.CANCELLED, ts, reason)

    def _market_sell(self, cid: str, symbol: str, qty: Decimal) -> str:
        """Sell ``qty`` at market now and wait (clock) up to :data:`CLOSE_WAIT` s for its fill."""
        resp = _plain(self._call(f"create order {cid}", self.client.create_order, safe=True,
                                 client_order_id=cid, product_id=symbol, side="SELL",
                                 order_configuration={"market_market_ioc": {"base_size": str(qty)}}))
        if not resp.get("success"):
            return f"rejected: {_error_words(resp.get('error_response'))}"
        oid = _text(_plain(resp.get("success_response") or {}).get("order_id") or resp.get("order_id"))
        deadline = self.clock.now() + CLOSE_WAIT
        while True:
            o = self._get_order(oid)
            if _text(o.get("status")) not in _OPEN_VENUE or self.clock.now() >= deadline:
                return (f"{_text(o.get('status')).lower()} {o.get('filled_size')} at "
                        f"{o.get('average_filled_price')}")
            self._wait(1)

    def _end_all(self, track: _Track, kind: OrderEventKind, ts: int, reason: str) -> list[OrderEvent]:
        out: list[OrderEvent] = []
        self._emit(out, track.order, kind, ts, reason)
        for leg in track.bracket.legs() if track.bracket else ():
            self._emit(out, leg, kind, ts, reason)
        return out

    @staticmethod
    def _reason(o: dict[str, Any], default: str) -> str:
        for k in ("reject_message", "cancel_message", "reject_reason"):
            v = _text(o.get(k))
            if v and not v.startswith("UNKNOWN") and v != "REJECT_REASON_UNSPECIFIED":
                return f"coinbase: {v}"
        return default

    def cancel(self, client_order_id: str, ts: int, reason: str) -> list[OrderEvent]:
        """Cancel one open order (``POST /orders/batch_cancel``).

        A bracket leg is part of the one attached order, so cancelling either leg
        cancels both; cancelling an entry cancels its attached order too.

        Parameters
        ----------
        client_order_id : str
        ts : int
            UTC epoch seconds stamped on the events.
        reason : str

        Returns
        -------
        list of OrderEvent
            ``cancelled`` for each order Coinbase confirmed (``results[].success``);
            nothing for an unknown or finished id, or one Coinbase refused to cancel
            (its ``failure_reason`` goes to :attr:`alerts`; :meth:`process` reports what
            really happened).

        Raises
        ------
        VenueUnavailable
            Coinbase did not answer after the retries.
        """
        entry_id = self._leg_of.get(client_order_id, client_order_id)
        track = self._tracks.get(entry_id)
        if track is None:
            return []
        return self._cancel_tracks([track], ts, reason,
                                   only_legs=client_order_id != entry_id)

    def cancel_all(self, symbol: str, ts: int, reason: str) -> list[OrderEvent]:
        """Cancel every open order this adapter placed for ``symbol`` (legs included), in
        one ``batch_cancel``; orders placed outside tradewarden are left alone.

        Returns
        -------
        list of OrderEvent
            ``cancelled`` for each confirmed order, in submission order.
        """
        tracks = [t for t in self._tracks.values() if t.order.symbol == symbol and self._open_track(t)]
        return self._cancel_tracks(tracks, ts, reason) if tracks else []

    def _open_track(self, t: _Track) -> bool:
        if self._is_open(t.order.client_order_id):
            return True
        return t.bracket is not None and any(self._is_open(x.client_order_id) for x in t.bracket.legs())

    def _cancel_tracks(self, tracks: list[_Track], ts: int, reason: str, *,
                       only_legs: bool = False) -> list[OrderEvent]:
        targets: dict[str, tuple[_Track, bool]] = {}     # venue id -> (track, is attached)
        for t in tracks:
            if t.venue_id is None:
                self._resolve_id(t)
            if not only_legs and t.venue_id and self._is_open(t.order.client_order_id):
                targets[t.venue_id] = (t, False)
            b = t.bracket
            if b is not None and any(self._is_open(x.client_order_id) for x in b.legs()):
                if b.attached_id is None and t.venue_id:
                    b.attached_id = _text(self._get_order(t.venue_id).get("attached_order_id")) or None
                if b.attached_id:
                    targets[b.attached_id] = (t, True)
        if not targets:
            return []
        resp = _plain(self._call("batch_cancel", self.client.cancel_orders, order_ids=list(targets)))
        done: set[str] = set()
        for r in resp.get("results") or []:
            r = _plain(r)
            oid = _text(r.get("order_id"))
            if r.get("success"):
                done.add(oid)
            elif oid in targets:
                self.alerts.append(f"cancel {oid}: coinbase refused: {_text(r.get('failure_reason'))}")
        out: list[OrderEvent] = []
        for oid, (t, attached) in targets.items():
            if oid not in done:
                continue
            if attached:
                for leg in t.bracket.legs():
                    self._emit(out, leg, K.CANCELLED, ts, reason)
            else:
                self._emit(out, t.order, K.CANCELLED, ts, reason)
                b = t.bracket
                if b is not None and not b.live:     # legs awaiting an entry that will not fill
                    for leg in b.legs():
                        self._emit(out, leg, K.CANCELLED, ts, reason)
        return out

    def close_position(self, order: Order, reference_price: Decimal, ts: int) -> list[OrderEvent]:
        """Sell ``order.quantity`` at market now and wait for the fill.

        Places ``order`` (a market sell, see :meth:`submit`), then polls it through the
        clock every second for up to :data:`CLOSE_WAIT` (30) s. ``reference_price`` is
        not sent (Coinbase fills at its market); fills carry their own price.

        Returns
        -------
        list of OrderEvent
            ``accepted`` then its fills (``partially_filled`` / ``filled``), or a
            ``rejected``; whatever is still open after the wait arrives from
            :meth:`process`.

        Raises
        ------
        ValueError
            As :meth:`submit`.
        """
        out = self.submit(order)
        track = self._tracks[order.client_order_id]
        if not self._is_open(order.client_order_id) or track.venue_id is None:
            return out
        deadline = self.clock.now() + CLOSE_WAIT
        while True:
            try:
                out += self._poll(track)
            except VenueError as exc:
                self.alerts.append(f"{order.client_order_id}: close not read ({exc}); polled again later")
            if not self._is_open(order.client_order_id) or self.clock.now() >= deadline:
                return out
            self._wait(1)

    # -- polling -------------------------------------------------------------------------
    def process(self, bar: Bar) -> list[OrderEvent]:
        """Poll every open order of ``bar.symbol`` and return what changed since the last call.

        For each order: Get Order and, when its filled size grew or it ended, its fills
        (each reported once, by ``trade_id``), then its status; for a bracket entry the
        attached order likewise (module notes for the legs). A read that fails is noted
        in :attr:`alerts` and done again at the next call.

        Returns
        -------
        list of OrderEvent
            ``working`` / ``triggered`` / ``partially_filled`` / ``filled`` /
            ``cancelled`` / ``expired`` / ``rejected``, each order's in venue order;
            fills stamped with their ``trade_time`` (UTC epoch seconds), other events
            with the clock's time.
        """
        out: list[OrderEvent] = []
        for t in list(self._tracks.values()):
            if t.order.symbol != bar.symbol or not self._open_track(t):
                continue
            try:
                out += self._poll(t)
            except VenueError as exc:
                self.alerts.append(f"{t.order.client_order_id}: not polled ({exc}); again at the next bar")
        return out

    def _resolve_id(self, t: _Track) -> dict[str, Any] | None:
        found = self._find(t.order.client_order_id, t.order.symbol, t.order.created_ts)
        if found is not None:
            t.venue_id = _text(found.get("order_id")) or None
            if t.bracket is not None and not t.bracket.attached_id:
                t.bracket.attached_id = _text(found.get("attached_order_id")) or None
        return found

    def _poll(self, t: _Track) -> list[OrderEvent]:
        order = t.order
        cid = order.client_order_id
        ts = self.clock.now()
        out: list[OrderEvent] = []
        if t.venue_id is None:
            found = self._resolve_id(t)
            if found is None:
                if self._reported.get(cid, OrderStatus.SUBMITTED) is OrderStatus.SUBMITTED:
                    return self._reject_all(t, ts, "coinbase never received it (the request failed "
                                            "and the order is not listed); not sent again")
                self.alerts.append(f"{cid}: {self._reported[cid].value} here, not found at coinbase")
                return []
        if t.booked is not None:
            self._seed_track(t)
        b = t.bracket
        if self._is_open(cid):
            o = self._get_order(t.venue_id)
            status = _text(o.get("status"))
            self._emit(out, order, K.ACCEPTED, ts)
            filled = _dec(o.get("filled_size"))
            if b is not None and not b.checked and (filled > 0 or status == "FILLED"):
                why = self._protection_problem(t, o)
                if why is not None:
                    return out + self._unprotected(t, why, ts)
            fresh = filled > t.filled or status in _ENDED or status == "FILLED"
            inst = self.instruments[order.symbol]
            for f in self._new_fills(t.venue_id, t.trades) if fresh else ():
                fill = self._take(f, order, inst, t.skip)
                if fill is None:
                    continue
                t.filled += fill.quantity
                done = status == "FILLED" and t.filled >= filled
                self._emit(out, order, K.FILLED if done else K.PARTIALLY_FILLED, fill.ts, "", fill)
            if status == "FILLED" and t.filled >= filled:
                self._emit(out, order, K.FILLED, ts)     # every fill reported: the status alone
            elif status in _ENDED:
                self._emit(out, order, _ENDED[status], ts,
                           self._reason(o, f"{status.lower()} at coinbase"))
                if b is not None and not b.live:
                    for leg in b.legs():
                        self._emit(out, leg, K.CANCELLED, ts, f"entry {status.lower()}")
            elif status == "OPEN" and order.type is OrderType.LIMIT:
                self._emit(out, order, K.WORKING, ts)
        if b is not None and self._reported.get(cid) is OrderStatus.FILLED:
            out += self._poll_bracket(t, ts)
        return out

    def _take(self, f: dict[str, Any], order: Order, inst: Instrument,
              skip: dict[str, Decimal]) -> Fill | None:
        """A venue fill as the engine's, less what the engine booked of it already (fee
        pro rata, rounded half-even to 1e-8 quote currency); None if nothing is left."""
        fill = self._fill_of(f, order, inst)
        done = skip.pop(_tid(f), None)
        if done:
            rest = fill.quantity - done
            if rest <= 0:
                return None
            fee = (fill.fee * rest / fill.quantity).quantize(Decimal("0.00000001"), ROUND_HALF_EVEN)
            fill = fill._replace(quantity=rest, fee=fee)
        return fill

    def _seed_track(self, t: _Track) -> None:
        """Take an adopted order's earliest fills adding up to what the engine booked as
        reported (``Broker.account`` notes)."""
        booked, cum = t.booked or _ZERO, _ZERO
        inst = self.instruments[t.order.symbol]
        t.trades, t.skip = set(), {}
        for f in self._fills(t.venue_id) if booked > 0 else ():
            if cum >= booked:
                break
            size = self._fill_of(f, t.order, inst).quantity
            if cum + size <= booked:
                t.trades.add(_tid(f))
            else:
                t.skip[_tid(f)] = booked - cum
            cum += size
        t.filled, t.booked = booked, None

    def _seed_bracket(self, b: _Bracket, a: dict[str, Any], inst: Instrument) -> None:
        """:meth:`_seed_track` for the legs: the attached order's fills, mapped to legs."""
        booked = b.booked or {}
        cum: dict[str, Decimal] = {}
        b.trades, b.skip = set(), {}
        for f in self._fills(b.attached_id) if any(v > 0 for v in booked.values()) else ():
            leg = self._leg_for(b, a, _dec(f.get("price")))
            c, want = cum.get(leg.client_order_id, _ZERO), booked.get(leg.client_order_id, _ZERO)
            if c >= want:
                continue
            size = self._fill_of(f, leg, inst).quantity
            if c + size <= want:
                b.trades.add(_tid(f))
            else:
                b.skip[_tid(f)] = want - c
            cum[leg.client_order_id] = c + size
        b.filled, b.booked = dict(booked), None

    def _new_fills(self, venue_id: str, seen: set[str]) -> list[dict[str, Any]]:
        new = []
        for f in self._fills(venue_id):
            tid = _text(f.get("trade_id")) or _text(f.get("entry_id"))
            if tid in seen:
                continue
            seen.add(tid)
            new.append(f)
        return new

    def _leg_for(self, b: _Bracket, a: dict[str, Any], price: Decimal) -> Order:
        if b.tp is None or b.sl is None:
            return b.tp or b.sl
        trig = _text(a.get("trigger_status"))
        if trig == "STOP_TRIGGERED":
            return b.sl
        if trig == "STOP_PENDING":
            return b.tp
        cfg = _plain(_plain(a.get("order_configuration") or {}).get("trigger_bracket_gtc") or {})
        limit = _dec(cfg.get("limit_price"), b.tp.price)
        return b.tp if price >= limit else b.sl

    def _poll_bracket(self, t: _Track, ts: int) -> list[OrderEvent]:
        """The legs after their entry filled: live, triggered, filled, OCO, ended."""
        b = t.bracket
        out: list[OrderEvent] = []
        if not any(self._is_open(x.client_order_id) for x in b.legs()):
            return out
        if not b.checked:
            why = self._protection_problem(t, self._get_order(t.venue_id))
            if why is not None:
                return self._unprotected(t, why, ts)
        if not b.attached_id:
            b.attached_id = _text(self._get_order(t.venue_id).get("attached_order_id")) or None
            if not b.attached_id:
                self.alerts.append(f"{t.order.client_order_id}: coinbase names no attached order; "
                                   "its legs cannot be followed")
                return out
        a = self._get_order(b.attached_id)
        status = _text(a.get("status"))
        inst = self.instruments[t.order.symbol]
        if b.booked is not None:
            self._seed_bracket(b, a, inst)
        if not b.live:
            b.live = True
            for leg in b.legs():
                self._emit(out, leg, K.WORKING, ts, _LEG_LIVE)
        if _text(a.get("trigger_status")) == "STOP_TRIGGERED" and not b.triggered:
            b.triggered = True
            self._emit(out, b.sl, K.TRIGGERED, ts)
        venue_filled = _dec(a.get("filled_size"))
        reported = sum(b.filled.values(), _ZERO)
        if venue_filled > reported or status in _ENDED or status == "FILLED":
            for f in self._new_fills(b.attached_id, b.trades):
                price = _dec(f.get("price"))
                leg = self._leg_for(b, a, price)
                fill = self._take(f, leg, inst, b.skip)
                if fill is None:
                    continue
                b.filled[leg.client_order_id] = b.filled.get(leg.client_order_id, _ZERO) + fill.quantity
                reported += fill.quantity
                done = status == "FILLED" and reported >= venue_filled
                self._emit(out, leg, K.FILLED if done else K.PARTIALLY_FILLED, fill.ts, "", fill)
        if status == "FILLED" and reported >= venue_filled:
            winner = max(b.legs(), key=lambda x: b.filled.get(x.client_order_id, _ZERO))
            self._emit(out, winner, K.FILLED, ts)
            for leg in b.legs():
                if leg is not winner:
                    self._emit(out, leg, K.CANCELLED, ts, _OCO)
        elif status in _ENDED:
            why = self._reason(a, f"attached bracket {status.lower()} at coinbase")
            held = self._bought(t) - reported
            if status != "CANCELLED" and held > 0:       # protection lost, not cancelled by a person
                return out + self._protection_lost(t, held, why, ts)
            if status == "CANCELLED" and held > 0:
                self.alerts.append(f"{t.order.client_order_id}: its bracket was cancelled at "
                                   f"coinbase ({why}); {held} {inst.base} held without protection")
            for leg in b.legs():
                self._emit(out, leg, _ENDED[status], ts, why)
        return out

    def _protection_lost(self, t: _Track, held: Decimal, why: str, ts: int) -> list[OrderEvent]:
        """The attached bracket failed or expired with the position held: sell it at market
        and report the sale as the stop-loss leg's fill (the protective exit, done by the
        adapter), the take-profit cancelled."""
        b = t.bracket
        qty, sold, reason = self._sell_lost(t, held, why)
        out: list[OrderEvent] = []
        total = _ZERO
        for fill in sold:
            total += fill.quantity
            self._emit(out, b.sl, K.FILLED if total >= qty else K.PARTIALLY_FILLED, fill.ts,
                       reason, fill)
        for leg in b.legs():
            self._emit(out, leg, K.CANCELLED, ts, reason)
        return out

    def _sell_lost(self, t: _Track, held: Decimal, why: str) -> tuple[Decimal, list[Fill], str]:
        """Sell ``held`` base units at market for a bracket the venue ended, once: under
        the client order id ``{entry}-flatten``, and a sale already made under it (by a
        process killed after making it) is taken, not made again. Returns the size sold,
        the sale's fills as the stop-loss leg's, and why (also an alert)."""
        b = t.bracket
        if b.lost is not None:
            return b.lost
        cid = t.order.client_order_id
        inst = self.instruments[t.order.symbol]
        qty = inst.round_quantity(held)
        flat_id = f"{cid}-flatten"
        reason = f"protection lost: {why}; {qty} {inst.base} sold at market by the adapter ({flat_id})"
        try:
            found = self._find(flat_id, t.order.symbol, t.order.created_ts)
            if found is None:
                self._market_sell(flat_id, t.order.symbol, qty)
                found = self._find(flat_id, t.order.symbol, t.order.created_ts)
            raw = self._fills(_text(found.get("order_id"))) if found is not None else []
        except VenueError as exc:
            raw = []
            reason += f"; the sale failed: {exc}; CHECK THE ACCOUNT"
        self.alerts.append(f"{cid}: {reason}")
        b.lost = (qty, [self._fill_of(f, b.sl, inst) for f in raw], reason)
        return b.lost

    def _bought(self, t: _Track) -> Decimal:
        """Base units the entry bought: as this process reported them, or the venue's
        ``filled_size`` for an entry whose fills an earlier process booked (a track
        rebuilt after a restart has reported none)."""
        if t.filled > 0 or t.venue_id is None:
            return t.filled
        return _dec(self._get_order(t.venue_id).get("filled_size"))

    # -- views ---------------------------------------------------------------------------
    def open_orders(self, symbol: str) -> list[Order]:
        """Return the engine's orders of ``symbol`` that are open as last reported (entries,
        exits and bracket legs), in submission order. No request is made."""
        out: list[Order] = []
        for t in self._tracks.values():
            if t.order.symbol != symbol:
                continue
            if self._is_open(t.order.client_order_id):
                out.append(t.order)
            for leg in t.bracket.legs() if t.bracket else ():
                if self._is_open(leg.client_order_id):
                    out.append(leg)
        return out

    def lookup(self, client_order_id: str) -> VenueOrder | None:
        """Return what Coinbase knows of an order, by client order id, or ``None``.

        An entry or exit is found through its venue id (List Orders, matched on
        ``client_order_id``, when this process never placed it: after a restart the
        engine looks its orders up before it hands them over with :meth:`adopt`); its
        fills come from the fills endpoint. A bracket leg is answered from its entry
        (the engine's naming, ``{prefix}-take_profit`` / ``-stop_loss`` of
        ``{prefix}-entry``, until :meth:`adopt` names the parent) and the attached order
        (module notes): ``accepted`` while the entry has not filled, ``working`` once it
        has, the fills mapped to it. An attached order that failed or expired with the
        position held is the protection lost (module notes): the position is sold at
        market here, once, and the stop-loss answered ``filled`` with that sale's fills,
        the take-profit ``cancelled``. The answer is taken as applied by the engine:
        later :meth:`process` calls report only what changes after it.

        Returns
        -------
        VenueOrder or None
            ``None`` when Coinbase has no order with that client order id (for a leg:
            no entry, or an entry without an attached bracket).

        Raises
        ------
        VenueUnavailable
            Coinbase did not answer.
        """
        parent = self._leg_of.get(client_order_id) or _parent_of(client_order_id)
        if parent is not None:
            t = self._track_for(parent)
            if t is None or t.bracket is None or client_order_id not in {
                    x.client_order_id for x in t.bracket.legs()}:
                return None
            return self._lookup_leg(client_order_id, t)
        t = self._track_for(client_order_id)
        if t is None:
            return None
        o = self._get_order(t.venue_id)
        status = self._port_status(o)
        inst = self.instruments[t.order.symbol]
        raw = self._fills(t.venue_id)
        fills = [self._fill_of(f, t.order, inst) for f in raw]
        t.trades, t.skip, t.booked = {_tid(f) for f in raw}, {}, None
        t.filled = sum((f.quantity for f in fills), _ZERO)
        self._reported[client_order_id] = status
        if t.bracket is not None and not t.bracket.attached_id:
            t.bracket.attached_id = _text(o.get("attached_order_id")) or None
        return VenueOrder(client_order_id, status, t.filled, tuple(fills),
                          self._reason(o, "") if not status.is_open else "")

    def _track_for(self, cid: str) -> _Track | None:
        """The track of the venue order placed under ``cid`` (an entry or exit): this
        process's, or one rebuilt from Coinbase's record (with its bracket's legs named by
        the engine's convention) after a restart; None if Coinbase has no such order."""
        t = self._tracks.get(cid)
        if t is not None:
            return t if t.venue_id is not None or self._resolve_id(t) is not None else None
        products = list(self.instruments)
        found = self._find(cid, None, None) if not products else next(
            (o for o in self._list_orders(product_ids=products)
             if _text(o.get("client_order_id")) == cid), None)
        if found is None or _text(found.get("product_id")) not in self.instruments:
            return None
        sym = _text(found.get("product_id"))
        side = Side.SELL if _text(found.get("side")).upper() == "SELL" else Side.BUY
        kind, body = next(iter(_plain(found.get("order_configuration") or {}).items()), ("", {}))
        body = _plain(body)
        limit = kind.startswith("limit")
        size = _dec(body.get("base_size")) or _dec(found.get("filled_size"))
        role = (OrderRole.EXIT if cid.endswith("-exit") or side is Side.SELL else OrderRole.ENTRY)
        order = Order(cid, sym, side, OrderType.LIMIT if limit else OrderType.MARKET, size, role,
                      _epoch(found.get("created_time"), self.clock.now()),
                      price=_dec(body.get("limit_price"), None) if limit else None)
        t = self._tracks[cid] = _Track(order, venue_id=_text(found.get("order_id")) or None)
        self._reported[cid] = self._port_status(found)
        att = _text(found.get("attached_order_id"))
        if att and cid.endswith("-entry"):
            cfg = _plain(_plain(found.get("attached_order_configuration") or {})
                         .get("trigger_bracket_gtc") or {})
            if not cfg:
                cfg = _plain(_plain(self._get_order(att).get("order_configuration") or {})
                             .get("trigger_bracket_gtc") or {})
            stem = cid[: -len("-entry")]
            tp = Order(f"{stem}-take_profit", sym, Side.SELL, OrderType.LIMIT, size,
                       OrderRole.TAKE_PROFIT, order.created_ts,
                       price=_dec(cfg.get("limit_price"), None), parent_id=cid)
            sl = Order(f"{stem}-stop_loss", sym, Side.SELL, OrderType.STOP, size,
                       OrderRole.STOP_LOSS, order.created_ts,
                       stop_price=_dec(cfg.get("stop_trigger_price"), None), parent_id=cid)
            t.bracket = _Bracket(tp, sl, attached_id=att)
            for leg in (tp, sl):
                self._leg_of[leg.client_order_id] = cid
        return t

    @staticmethod
    def _port_status(o: dict[str, Any]) -> OrderStatus:
        status = STATUS_MAP.get(_text(o.get("status")), OrderStatus.UNKNOWN)
        if status is OrderStatus.WORKING and _dec(o.get("filled_size")) > 0:
            return OrderStatus.PARTIALLY_FILLED
        if status is OrderStatus.WORKING and "market_market_ioc" in _plain(o.get("order_configuration") or {}):
            return OrderStatus.ACCEPTED
        return status

    def _lookup_leg(self, cid: str, t: _Track) -> VenueOrder:
        b = t.bracket
        leg = next(x for x in b.legs() if x.client_order_id == cid)
        parent = self._get_order(t.venue_id)
        if not b.attached_id:
            b.attached_id = _text(parent.get("attached_order_id")) or None
        p_status = _text(parent.get("status"))
        if p_status != "FILLED" or not b.attached_id:
            ended = _ENDED.get(p_status)
            status = (OrderStatus.CANCELLED if ended is not None or p_status == "FILLED"
                      else OrderStatus.ACCEPTED)
            why = f"entry {p_status.lower()}" if status is OrderStatus.CANCELLED else ""
            self._reported[cid] = status
            return VenueOrder(cid, status, _ZERO, (), why)
        a = self._get_order(b.attached_id)
        inst = self.instruments[leg.symbol]
        raw = self._fills(b.attached_id)
        mine: list[Fill] = []
        totals: dict[str, Decimal] = {}
        for f in raw:
            owner = self._leg_for(b, a, _dec(f.get("price")))
            fill = self._fill_of(f, owner, inst)
            totals[owner.client_order_id] = totals.get(owner.client_order_id, _ZERO) + fill.quantity
            if owner is leg:
                mine.append(fill)
        b.trades, b.skip, b.booked, b.filled = {_tid(f) for f in raw}, {}, None, totals
        b.live = b.checked = True
        b.triggered = _text(a.get("trigger_status")) == "STOP_TRIGGERED"
        a_status = _text(a.get("status"))
        filled = sum((f.quantity for f in mine), _ZERO)
        reason = ""
        if a_status == "FILLED":
            winner = max(b.legs(), key=lambda x: totals.get(x.client_order_id, _ZERO))
            status = OrderStatus.FILLED if winner is leg else OrderStatus.CANCELLED
            reason = "" if winner is leg else _OCO
        elif a_status in _ENDED:
            status = STATUS_MAP[a_status]
            reason = self._reason(a, f"attached bracket {a_status.lower()} at coinbase")
            held = _dec(parent.get("filled_size")) - sum(totals.values(), _ZERO)
            if a_status != "CANCELLED" and held > 0:    # the protection was lost while away:
                qty, sold, reason = self._sell_lost(t, held, reason)    # as _protection_lost
                status = OrderStatus.CANCELLED
                if leg is b.sl and sold:
                    mine += sold
                    filled += sum((f.quantity for f in sold), _ZERO)
                    if sum((f.quantity for f in sold), _ZERO) >= qty:
                        status = OrderStatus.FILLED
        else:
            status = OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.WORKING
        self._reported[cid] = status
        return VenueOrder(cid, status, filled, tuple(mine), reason)

    def account(self, symbols: list[str]) -> VenueAccount:
        """Return the account's balances, positions and open orders for ``symbols``.

        Balances: List Accounts, ``available_balance + hold`` per currency (quote
        included). Positions: the base currency's total per symbol (all of it: coins
        held before tradewarden count too). Open orders: List Orders with status OPEN
        for the products; an entry or attached bracket this adapter placed is named by
        the client order ids of the engine's orders (the legs for the attached order),
        anything else by its own ``client_order_id`` (or ``coinbase:<order_id>``).

        Raises
        ------
        VenueUnavailable
            Coinbase did not answer.
        """
        balances = self._balances()
        positions = {s: balances.get(self.instruments[s].base if s in self.instruments
                                     else s.partition("-")[0], _ZERO) for s in symbols}
        ours: dict[str, list[str]] = {}      # venue order id or client order id -> engine ids
        legs_of: dict[str, list[str]] = {}   # entry venue id -> its legs' ids
        for t in self._tracks.values():
            if t.order.symbol not in symbols:
                continue
            b = t.bracket
            legs = [x.client_order_id for x in b.legs()] if b is not None else []
            pending = legs if b is not None and not b.live else []
            ours[t.venue_id or t.order.client_order_id] = [t.order.client_order_id, *pending]
            if t.venue_id and legs:
                legs_of[t.venue_id] = legs
            if b is not None and b.attached_id:
                ours[b.attached_id] = legs
        cids: list[str] = []
        orders = self._list_orders(product_ids=list(symbols), order_status=["OPEN"]) if symbols else []
        for o in orders:
            if _text(o.get("status")) not in _OPEN_VENUE:
                continue
            oid = _text(o.get("order_id"))
            mine = ours.get(oid) or ours.get(_text(o.get("client_order_id")))
            origin = _text(o.get("originating_order_id"))
            if mine is not None:
                cids += mine
            elif origin and origin in legs_of:     # an attached order not yet named
                cids += legs_of[origin]
            else:
                cids.append(_text(o.get("client_order_id")) or f"coinbase:{oid}")
        return VenueAccount(positions, tuple(dict.fromkeys(cids)), balances)

    def _balances(self) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        cursor = None
        for _ in range(MAX_PAGES):
            resp = _plain(self._call("list accounts", self.client.get_accounts, limit=_PAGE,
                                     cursor=cursor))
            for acct in resp.get("accounts") or []:
                acct = _plain(acct)
                cur = _text(acct.get("currency"))
                avail = _dec(_plain(acct.get("available_balance") or {}).get("value"))
                hold = _dec(_plain(acct.get("hold") or {}).get("value"))
                out[cur] = out.get(cur, _ZERO) + avail + hold
            cursor = resp.get("cursor")
            if not resp.get("has_next") or not cursor:
                break
        return out

    def adopt(self, orders: dict[str, Order], filled: dict[str, Decimal] | None = None) -> None:
        """Follow exactly the engine's open orders, with what it booked on each.

        Called by the engine after every reconciliation (``Broker.account`` notes): the
        Order objects replace this adapter's (after a restart they are new objects);
        ``filled[id]`` base units (default 0) of each order's earliest fills count as
        reported, so :meth:`process` reports only later ones (seeded at the next poll
        when they differ from what this adapter reported). Legs join their entry
        (``parent_id``); an entry that is not open any more (it filled) is followed as
        filled, for its attached bracket. Orders this adapter followed that the engine
        does not hold open any more are no longer polled.

        Parameters
        ----------
        orders : dict of str to Order
            The engine's open orders by client order id.
        filled : dict of str to Decimal, optional
            Base units booked per client order id.
        """
        booked = dict(filled or {})
        keep: set[str] = set()
        for cid, o in orders.items():
            if o.parent_id is not None:
                continue
            t = self._tracks.get(cid)
            want = booked.get(cid, _ZERO)
            if t is None:
                t = self._tracks[cid] = _Track(o, booked=want)
            else:
                t.order = o
                if t.filled != want:
                    t.booked = want
            self._reported[cid] = o.status
            keep.add(cid)
        reseed: set[str] = set()
        for cid, o in orders.items():
            pid = o.parent_id
            if pid is None:
                continue
            t = self._tracks.get(pid)
            if t is None:      # its entry filled before: follow the attached bracket
                parent = Order(pid, o.symbol, Side.BUY, OrderType.MARKET, o.quantity,
                               OrderRole.ENTRY, o.created_ts, decision_seq=o.decision_seq,
                               status=OrderStatus.FILLED)
                t = self._tracks[pid] = _Track(parent)
                self._reported[pid] = OrderStatus.FILLED
            if t.bracket is None:
                t.bracket = _Bracket(None, None)
            b = t.bracket
            old = b.tp if o.role is OrderRole.TAKE_PROFIT else b.sl
            if o.role is OrderRole.TAKE_PROFIT:
                b.tp = o
            else:
                b.sl = o
            if old is None or b.filled.get(cid, _ZERO) != booked.get(cid, _ZERO):
                reseed.add(pid)
            if o.status in (OrderStatus.WORKING, OrderStatus.PARTIALLY_FILLED):
                b.live = b.checked = True     # placed and seen in place before
            self._leg_of[cid] = pid
            self._reported[cid] = o.status
            keep.add(pid)
        for pid in reseed:
            b = self._tracks[pid].bracket
            b.booked = {x.client_order_id: booked.get(x.client_order_id, _ZERO) for x in b.legs()}
        for cid in [c for c in self._tracks if c not in keep]:
            self._forget(self._tracks[cid])

    # -- pre-flight ----------------------------------------------------------------------
    def preflight(self) -> Preflight:
        """Check the key and the account with read-only calls.

        ``GET /key_permissions`` (``can_trade``, ``can_transfer`` -> ``can_withdraw``,
        ``portfolio_uuid``, ``portfolio_type``), the balances (List Accounts), and the
        products' flags. Problems are reported, not raised
        (:meth:`~tradewarden.execution.venue.Preflight.problems`): the CLI decides.

        Returns
        -------
        Preflight
            ``account`` is ``portfolio <type> <uuid>``; ``notes`` name the entry blocks,
            the stop-limit buffer and the key's view permission.

        Raises
        ------
        VenueError
            Coinbase refused the key (HTTP 401: its words).
        VenueUnavailable
            Coinbase did not answer.
        """
        perms = _plain(self._call("key permissions", self.client.get_api_key_permissions))
        balances = {c: v for c, v in self._balances().items() if v != 0}
        notes = [f"{why}: new entries blocked" for why in self.entry_blocks().values()]
        if perms.get("can_view") is False:
            notes.append("coinbase: the key has no view permission; reconciliation needs it")
        notes.append(f"a triggered stop-loss becomes a stop-limit {self.stop_limit_buffer * 100}% "
                     "below its trigger (Coinbase's stop_trigger_price text; unconfirmed): "
                     "a gap through it leaves the stop unfilled")
        account = " ".join(x for x in ("portfolio", _text(perms.get("portfolio_type")),
                                       _text(perms.get("portfolio_uuid"))) if x)
        return Preflight(VENUE, account, bool(perms.get("can_trade")),
                         bool(perms.get("can_transfer")), balances, notes)


__all__ = ["CLOSE_WAIT", "STATUS_MAP", "Clock", "CoinbaseBroker", "base_url_of"]
