"""The broker port: what the engine needs from a venue, simulated or real.

The engine talks to every venue through :class:`Broker`: four commands (submit,
cancel, cancel all, close position), a stream of :class:`OrderEvent` values, and the
venue's :class:`BrokerCapabilities`. The simulated broker (:mod:`.sim`) and every
exchange adapter implement it; nothing above this layer knows which one it has.

Order lifecycle (:class:`~tradewarden.domain.OrderStatus`)::

    submitted ─▶ accepted ─▶ working ─▶ partially_filled ─▶ filled
        │            │          │              │
        └────────────┴──────────┴──────────────┴──▶ cancelled | rejected | expired
    unknown: the venue cannot say; any later event settles it

Events carry the venue's time of the change (UTC epoch seconds). The engine applies
them in the order received and sets the order's status from them. (Venues repeat
events after a reconnect; recognising a repeat is the order journal's job, which
records each event as it arrives.)
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import NamedTuple, Protocol, runtime_checkable

from tradewarden.domain import Bar, Fill, Order, OrderRole, OrderStatus


class OrderEventKind(str, Enum):
    """What happened to an order (one event on the broker's stream)."""

    ACCEPTED = "accepted"                  # the venue acknowledged it
    WORKING = "working"                    # live at the venue (a bracket leg once its entry filled)
    TRIGGERED = "triggered"                # a stop's trigger was reached; a fill follows
    PARTIALLY_FILLED = "partially_filled"  # a fill for part of the quantity (``fill`` set)
    FILLED = "filled"                      # the last fill (``fill`` set)
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"


#: The status an order has after each kind of event.
STATUS_AFTER: dict[OrderEventKind, OrderStatus] = {
    OrderEventKind.ACCEPTED: OrderStatus.ACCEPTED,
    OrderEventKind.WORKING: OrderStatus.WORKING,
    OrderEventKind.TRIGGERED: OrderStatus.WORKING,
    OrderEventKind.PARTIALLY_FILLED: OrderStatus.PARTIALLY_FILLED,
    OrderEventKind.FILLED: OrderStatus.FILLED,
    OrderEventKind.CANCELLED: OrderStatus.CANCELLED,
    OrderEventKind.REJECTED: OrderStatus.REJECTED,
    OrderEventKind.EXPIRED: OrderStatus.EXPIRED,
}

_OPEN_STATES = (OrderStatus.SUBMITTED, OrderStatus.ACCEPTED, OrderStatus.WORKING,
                OrderStatus.PARTIALLY_FILLED, OrderStatus.UNKNOWN)
_ENDS = frozenset({OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED,
                   OrderStatus.EXPIRED})

#: Allowed status changes: ``TRANSITIONS[old]`` is the set of statuses ``old`` may become.
#: Terminal states (filled, cancelled, rejected, expired) have none.
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.SUBMITTED: frozenset({OrderStatus.ACCEPTED, OrderStatus.WORKING,
                                      OrderStatus.PARTIALLY_FILLED, OrderStatus.UNKNOWN} | _ENDS),
    OrderStatus.ACCEPTED: frozenset({OrderStatus.WORKING, OrderStatus.PARTIALLY_FILLED,
                                     OrderStatus.UNKNOWN} | _ENDS),
    OrderStatus.WORKING: frozenset({OrderStatus.PARTIALLY_FILLED, OrderStatus.UNKNOWN} | _ENDS),
    OrderStatus.PARTIALLY_FILLED: frozenset({OrderStatus.PARTIALLY_FILLED, OrderStatus.UNKNOWN,
                                             OrderStatus.FILLED, OrderStatus.CANCELLED,
                                             OrderStatus.EXPIRED}),
    OrderStatus.UNKNOWN: frozenset(_OPEN_STATES) | _ENDS,
    OrderStatus.FILLED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
    OrderStatus.REJECTED: frozenset(),
    OrderStatus.EXPIRED: frozenset(),
}


class IllegalTransition(ValueError):
    """An order event that its order's current status does not allow."""


def check_transition(order: Order, new: OrderStatus) -> None:
    """Raise unless ``order`` may go from its status to ``new``.

    Raises
    ------
    IllegalTransition
        The change is not in :data:`TRANSITIONS` (for example ``filled`` → ``cancelled``).
    """
    old = order.status
    if new is not old and new not in TRANSITIONS[old]:
        raise IllegalTransition(f"order {order.client_order_id}: {old.value} -> {new.value} "
                                "is not a lifecycle transition")


def report_step(reported: dict[str, OrderStatus], order: Order, kind: OrderEventKind,
                fill: Fill | None = None, *, triggers_pass: bool = False) -> bool:
    """Decide whether a venue event is news for the engine, and remember what it was told.

    A polling adapter sees the same order state again and again; only a lifecycle step
    from the status the engine was last told (:data:`TRANSITIONS`), or a further fill
    in the same status, becomes an :class:`OrderEvent`.

    Parameters
    ----------
    reported : dict of str to OrderStatus
        The status each order was last reported in, by client order id (absent:
        ``submitted``); updated in place when the event is reported.
    order : Order
    kind : OrderEventKind
    fill : Fill or None
        The execution the event carries (a repeat of a status with a new fill is news).
    triggers_pass : bool
        Report a ``triggered`` event whatever the status, without changing it (a venue
        that says "the stop triggered" once, between ``working`` and the fill).

    Returns
    -------
    bool
        Whether to report the event. Never after an end (filled, cancelled, ...).
    """
    cid = order.client_order_id
    old = reported.get(cid, OrderStatus.SUBMITTED)
    if not old.is_open:
        return False
    new = STATUS_AFTER[kind]
    if triggers_pass and kind is OrderEventKind.TRIGGERED:
        return True
    if new is old and fill is None or new is not old and new not in TRANSITIONS[old]:
        return False
    reported[cid] = new
    return True


@dataclass(slots=True)
class OrderEvent:
    """One change of one order, as the venue reported it.

    Parameters
    ----------
    order : Order
        The engine's order object (the broker looks it up by client order id).
    kind : OrderEventKind
    ts : int
        When it happened at the venue, UTC epoch seconds (the bar's open time in replay).
    reason : str
        Why, for cancels, rejects and expiries (``insufficient_funds``, ``oco: other leg
        filled``, ...); empty otherwise.
    fill : Fill or None
        The execution, for ``partially_filled`` and ``filled`` (quantity of this fill only).
    """

    order: Order
    kind: OrderEventKind
    ts: int
    reason: str = ""
    fill: Fill | None = None

    @property
    def status(self) -> OrderStatus:
        """The order's status after this event."""
        return STATUS_AFTER[self.kind]


@dataclass(frozen=True, slots=True)
class BrokerCapabilities:
    """What a venue can do natively; the engine emulates what it cannot.

    Parameters
    ----------
    native_bracket : bool
        An entry can carry its take-profit and stop-loss in one request; the venue
        arms them when the entry fills (Coinbase attached orders, IBKR ``bracketOrder``).
        Without it the engine submits the legs itself once the entry has filled.
    native_oco : bool
        A filled leg cancels its sibling at the venue. Without it the engine cancels
        the sibling when it sees the fill.
    stop_orders : bool
        Resting stop (stop-market) orders are accepted.
    client_order_ids : bool
        The venue stores the engine's client order id and can find an order by it.
    partial_fills : bool
        Orders may fill in several parts.
    """

    native_bracket: bool = False
    native_oco: bool = False
    stop_orders: bool = True
    client_order_ids: bool = True
    partial_fills: bool = True


class VenueOrder(NamedTuple):
    """What a venue says about one order, found by its client order id.

    Parameters
    ----------
    client_order_id : str
    status : OrderStatus
        The venue's status now.
    filled : Decimal
        Base units filled so far.
    fills : tuple of Fill
        Every execution of the order, oldest first (their quantities add up to
        ``filled``); the engine applies those beyond the quantity it has booked.
    reason : str
        Why it ended, for cancels, rejects and expiries.
    """

    client_order_id: str
    status: OrderStatus
    filled: Decimal
    fills: tuple[Fill, ...] = ()
    reason: str = ""


class VenueAccount(NamedTuple):
    """What a venue says the account holds, for reconciliation.

    Parameters
    ----------
    positions : dict of str to Decimal or None
        Base units held per symbol (a symbol the account does not hold may be absent);
        ``None`` when the venue keeps no positions of its own (a simulated venue
        whose book is the engine's, persisted with it).
    open_orders : tuple of str
        Client order ids of every order open at the venue for these symbols.
    balances : dict of str to Decimal or None
        Total balance per currency (quote currency included), or ``None`` when the
        venue keeps no cash (a simulated venue).
    """

    positions: dict[str, Decimal] | None
    open_orders: tuple[str, ...] = ()
    balances: dict[str, Decimal] | None = None


@runtime_checkable
class Broker(Protocol):
    """The port every venue implements (``SimBroker``, exchange adapters, test fakes).

    Commands return the events the venue answered synchronously (an acknowledgement,
    a reject, a cancel confirmation, an immediate fill); everything later arrives from
    :meth:`process`.
    """

    capabilities: BrokerCapabilities

    def submit(self, order: Order, legs: tuple[Order, ...] = ()) -> list[OrderEvent]:
        """Send ``order``; with ``legs`` (take-profit and/or stop-loss), as a native bracket.

        Raises
        ------
        ValueError
            A duplicate client order id, an unknown symbol, a non-positive quantity, a
            missing limit or stop price, or ``legs`` to a venue without
            ``native_bracket``. Nothing is sent then.
        """

    def cancel(self, client_order_id: str, ts: int, reason: str) -> list[OrderEvent]:
        """Cancel one open order; an unknown or finished id yields no event."""

    def cancel_all(self, symbol: str, ts: int, reason: str) -> list[OrderEvent]:
        """Cancel every open order of ``symbol`` (bracket legs included)."""

    def close_position(self, order: Order, reference_price: Decimal, ts: int) -> list[OrderEvent]:
        """Flatten a position now with the market ``order`` (end of data, emergency stop).

        ``reference_price`` is the last price the engine saw (quote currency); a
        simulated venue fills at it with its taker fee and slippage, a real venue
        fills at its market.
        """

    def process(self, bar: Bar) -> list[OrderEvent]:
        """Return the events up to the end of ``bar``: fills it traded through (simulated),
        or what the venue reported since the last call (real)."""

    def open_orders(self, symbol: str) -> list[Order]:
        """Return the open orders of ``symbol`` in submission order."""

    def lookup(self, client_order_id: str) -> VenueOrder | None:
        """Return what the venue knows of an order, or ``None`` if it never received it
        (reconciliation after a restart: an order journaled but never sent is sent again
        under the same id; one the venue knows is brought up to date from its fills)."""

    def account(self, symbols: list[str]) -> VenueAccount:
        """Return the venue's positions, open orders and balances for ``symbols``.

        Notes
        -----
        After every reconciliation (at start, and periodically in live trading) the
        engine hands a venue adapter that has an ``adopt(orders, filled)`` method the
        orders it holds open (its :class:`~tradewarden.domain.Order` objects by client
        order id: after a restart they are new objects) and the base units it has booked
        on each. The adapter then tracks exactly those orders, and treats their earliest
        fills adding up to ``filled[id]`` as reported: :meth:`process` reports only what
        comes after, so a fill the engine caught up through :meth:`lookup` is never
        booked twice. ``SimBroker`` gets its orders through ``restore`` instead.
        """


def make_order_id(run_id: str, symbol: str, seq: int, role: str | OrderRole) -> str:
    """Return the deterministic client order id ``tw-{run_id}-{symbol}-{seq}-{role}``.

    The same run, symbol, decision sequence and role always give the same id, so a
    retry is recognised by the venue instead of doubling a position.

    Parameters
    ----------
    run_id : str
    symbol : str
    seq : int
        Sequence number of the decision that produced the order.
    role : str or OrderRole
        An :class:`~tradewarden.domain.OrderRole` (its value is used, ``"stop_loss"``)
        or the same text.
    """
    return f"tw-{run_id}-{symbol}-{seq}-{role if type(role) is str else role.value}"


__all__ = ["STATUS_AFTER", "TRANSITIONS", "Broker", "BrokerCapabilities", "IllegalTransition",
           "OrderEvent", "OrderEventKind", "VenueAccount", "VenueOrder", "check_transition",
           "make_order_id", "report_step"]
