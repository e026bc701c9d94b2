"""The broker port's lifecycle table (TRANSITIONS, check_transition, STATUS_AFTER),
OrderEvent, BrokerCapabilities and make_order_id."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from tradewarden.domain import Order, OrderRole, OrderStatus, OrderType, Side
from tradewarden.execution import (
    TRANSITIONS,
    BrokerCapabilities,
    IllegalTransition,
    OrderEvent,
    OrderEventKind,
    check_transition,
    make_order_id,
)
from tradewarden.execution.base import STATUS_AFTER

S = OrderStatus
TERMINAL = {S.FILLED, S.CANCELLED, S.REJECTED, S.EXPIRED}


def order(status: OrderStatus = S.SUBMITTED) -> Order:
    return Order("tw-r-BTC-USD-1-entry", "BTC-USD", Side.BUY, OrderType.MARKET, Decimal("0.01"),
                 OrderRole.ENTRY, 1713459600, status=status)


def test_every_status_has_a_row_and_terminal_states_allow_nothing() -> None:
    assert set(TRANSITIONS) == set(OrderStatus)
    for status in OrderStatus:
        assert (TRANSITIONS[status] == frozenset()) == (status in TERMINAL), status
        assert status.is_open == (status not in TERMINAL), status
        # Only an order the venue cannot account for may turn out never to have arrived.
        assert (S.SUBMITTED in TRANSITIONS[status]) == (status is S.UNKNOWN), status


@pytest.mark.parametrize("old, new, ok", [
    (S.SUBMITTED, S.ACCEPTED, True),
    (S.SUBMITTED, S.WORKING, True),
    (S.SUBMITTED, S.REJECTED, True),
    (S.ACCEPTED, S.WORKING, True),
    (S.ACCEPTED, S.FILLED, True),
    (S.WORKING, S.PARTIALLY_FILLED, True),
    (S.PARTIALLY_FILLED, S.PARTIALLY_FILLED, True),
    (S.PARTIALLY_FILLED, S.FILLED, True),
    (S.PARTIALLY_FILLED, S.CANCELLED, True),
    (S.UNKNOWN, S.WORKING, True),
    (S.UNKNOWN, S.FILLED, True),
    (S.WORKING, S.UNKNOWN, True),
    (S.WORKING, S.WORKING, True),                 # a repeated event (a trigger) is no change
    (S.FILLED, S.FILLED, True),                   # a venue repeating itself after a reconnect
    (S.FILLED, S.CANCELLED, False),
    (S.CANCELLED, S.FILLED, False),
    (S.REJECTED, S.ACCEPTED, False),
    (S.EXPIRED, S.WORKING, False),
    (S.PARTIALLY_FILLED, S.REJECTED, False),      # a venue that filled part cannot reject it
    (S.PARTIALLY_FILLED, S.WORKING, False),
    (S.WORKING, S.ACCEPTED, False),
    (S.ACCEPTED, S.SUBMITTED, False),
])
def test_check_transition(old: OrderStatus, new: OrderStatus, ok: bool) -> None:
    o = order(old)
    if ok:
        check_transition(o, new)
    else:
        with pytest.raises(IllegalTransition, match=f"{old.value} -> {new.value}"):
            check_transition(o, new)
        with pytest.raises(ValueError):               # an IllegalTransition is a ValueError
            check_transition(o, new)
    assert o.status is old                            # checking changes nothing


def test_every_event_kind_maps_to_a_status_reachable_from_submitted() -> None:
    assert set(STATUS_AFTER) == set(OrderEventKind)
    reachable, frontier = {S.SUBMITTED}, [S.SUBMITTED]
    while frontier:
        for nxt in TRANSITIONS[frontier.pop()]:
            if nxt not in reachable:
                reachable.add(nxt)
                frontier.append(nxt)
    assert reachable == set(OrderStatus)
    for kind, status in STATUS_AFTER.items():
        assert status in reachable, kind
        assert status in TRANSITIONS[S.SUBMITTED] or status is S.WORKING, kind
    # Kinds named like a status land on that status; a trigger leaves a stop working.
    assert {k for k in OrderEventKind if k.value != STATUS_AFTER[k].value} == {
        OrderEventKind.TRIGGERED}
    assert STATUS_AFTER[OrderEventKind.TRIGGERED] is S.WORKING


def test_order_event_status_and_defaults() -> None:
    o = order()
    ev = OrderEvent(o, OrderEventKind.PARTIALLY_FILLED, 1713463200)
    assert (ev.reason, ev.fill, ev.status) == ("", None, S.PARTIALLY_FILLED)
    assert OrderEvent(o, OrderEventKind.EXPIRED, 1).status is S.EXPIRED


def test_capabilities_are_frozen_with_conservative_defaults() -> None:
    caps = BrokerCapabilities()
    assert (caps.native_bracket, caps.native_oco, caps.stop_orders, caps.client_order_ids,
            caps.partial_fills) == (False, False, True, True, True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        caps.native_bracket = True  # type: ignore[misc]


def test_make_order_id_is_deterministic_and_distinct() -> None:
    a = make_order_id("run7", "BTC-USD", 42, OrderRole.ENTRY)
    assert a == "tw-run7-BTC-USD-42-entry"
    assert make_order_id("run7", "BTC-USD", 42, OrderRole.ENTRY) == a
    assert make_order_id("run7", "BTC-USD", 42, "entry") == a        # a role given as text
    ids = {make_order_id(r, s, q, role) for r in ("run7", "run8") for s in ("BTC-USD", "ETH-USD")
           for q in (1, 42) for role in OrderRole}
    assert len(ids) == 2 * 2 * 2 * len(OrderRole)
    assert make_order_id("r", "SOL-USD", 3, OrderRole.STOP_LOSS) == "tw-r-SOL-USD-3-stop_loss"
    assert make_order_id("r", "SOL-USD", 3, OrderRole.TAKE_PROFIT) == "tw-r-SOL-USD-3-take_profit"
