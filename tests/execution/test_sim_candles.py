"""Candle-table tests of SimBroker's fill rules (see the docstring of execution/sim.py).

Each case is data: the orders submitted (after the decision bar), then a sequence of
bars; for every bar the exact order events (kind and reason, in execution order), the
fills (price, fee, liquidity, role, reference price) and the status of every order
afterwards. Every event must also be a lifecycle transition allowed by
``execution.base.TRANSITIONS`` from the order's previous status.

Bars are real Coinbase BTC-USD 1h candles (the first rows of the bundled file,
2024-04-18T18:00Z on), except a few synthetic gap bars marked ``GAP_*``. Expected
prices and fees are worked out by hand below (Decimal strings), never by the code
under test. Defaults: taker 10 bps, maker 5 bps, slippage 2 bps, BTC-USD spec
(price increment 0.01, quantity increment 1e-8).

Hand arithmetic used by the table (slippage 2 bps = x 1.0002 for buys, x 0.9998 for sells):

    62835.28 * 1.0002 = 62847.847056 -> ceil  62847.85   (B2 open, market buy)
    62835.28 * 0.9998 = 62822.712944 -> floor 62822.71   (B2 open, market sell / gapped stop)
    63149.44 * 1.0002 = 63162.069888 -> ceil  63162.07   (B3 open, market buy)
    62742.02 * 1.0002 = 62754.568404 -> ceil  62754.57   (B9 open, market buy)
    62500.00 * 0.9998 = 62487.50     -> floor 62487.50   (sell stop 62500)
    62500.01 * 0.9998 = 62487.509998 -> floor 62487.50   (sell stop 62500.01)
    63200.00 * 1.0002 = 63212.64     -> ceil  63212.64   (buy stop 63200)
    63200.01 * 1.0002 = 63212.650002 -> ceil  63212.66   (buy stop 63200.01)
    63000.00 * 0.9998 = 62987.40                          (sell stop 63000)
    61000.00 * 0.9998 = 60987.80                          (sell stop 61000)
    61900.00 * 0.9998 = 61887.62                          (sell stop gapped, open 61900)
    fee(taker, 0.01 BTC) = price * 0.01 * 0.0010;  fee(maker, 0.01 BTC) = price * 0.01 * 0.0005
    62847.85 * 0.12345678 = 7758.9931909230 -> taker fee 7.758993190923 -> 7.75899319
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import pytest

from tradewarden.domain import (
    COINBASE_SPECS,
    Order,
    OrderRole,
    OrderStatus,
    OrderType,
    Side,
)
from tradewarden.execution import (
    OrderEvent,
    OrderEventKind,
    SimBroker,
    check_transition,
)

BTC = COINBASE_SPECS["BTC-USD"]
SYM = "BTC-USD"

# Real bars: (ts, open, high, low, close), rows 2.. of coinbase_spot_BTC-USD_1h.csv.gz.
B2 = (1713463200, "62835.28", "63259.15", "62358.0", "63149.42")
B3 = (1713466800, "63149.44", "63644.22", "63138.75", "63550.01")
B4 = (1713470400, "63552.66", "63686.62", "63300.01", "63528.71")
B5 = (1713474000, "63534.67", "63863.6", "63340.51", "63498.47")
B6 = (1713477600, "63490.71", "63692.96", "63200.0", "63531.18")
B7 = (1713481200, "63531.2", "63707.15", "63415.29", "63513.85")
B8 = (1713484800, "63514.84", "63519.1", "62681.13", "62737.68")
B9 = (1713488400, "62742.02", "62797.83", "60628.38", "61029.87")
B10 = (1713492000, "61027.88", "61387.87", "59573.32", "61367.18")
# Synthetic gap bars at B3's time (what a weekend gap / flash move looks like).
GAP_DOWN = (1713466800, "61900.00", "62100.00", "61800.00", "62050.00")
GAP_UP = (1713466800, "64100.00", "64300.00", "64050.00", "64200.00")
GAP_UP_THEN_CRASH = (1713466800, "64100.00", "64300.00", "61800.00", "62050.00")


@dataclass(frozen=True)
class Ord:
    """An order to submit; ``tp``/``sl`` make it a bracket entry with legs ``{id}.tp``/``{id}.sl``."""

    id: str
    side: str
    type: str
    qty: str = "0.01"
    level: str | None = None
    role: str = "entry"
    tp: str | None = None
    sl: str | None = None
    created: int = 1713459600      # when it was sent (the decision bar's open by default)


@dataclass(frozen=True)
class Fx:
    """An expected fill."""

    id: str
    price: str
    fee: str
    liquidity: str
    role: str
    ref: str


@dataclass(frozen=True)
class Step:
    """One bar and everything it must produce.

    ``updates``: ``"id event-kind [reason]"`` in execution order. ``status``: ``"id:status ..."``
    for every order after the bar.
    """

    bar: tuple[int, str, str, str, str]
    updates: tuple[str, ...]
    fills: tuple[Fx, ...]
    status: str


@dataclass(frozen=True)
class Case:
    id: str
    orders: tuple[Ord, ...]
    steps: tuple[Step, ...]
    broker: dict = field(default_factory=dict)
    funds: str | None = None


LIVE = "bracket leg live"
OCO = "oco: other leg filled"

CASES = [
    # ---------------------------------------------------------------- market orders
    Case("market-buy-next-open-slippage-up-ceil",
         (Ord("e", "buy", "market"),),
         (Step(B2, ("e filled",), (Fx("e", "62847.85", "0.62847850", "taker", "entry", "62835.28"),),
               "e:filled"),)),
    # sent between bars (an approval 10 minutes into B2): B2 opened before it, so the
    # next open (B3) fills it; one sent at B2's open exactly fills at that open
    Case("market-buy-sent-after-the-bar-opened-fills-at-the-next-open",
         (Ord("e", "buy", "market", created=B2[0] + 600),),
         (Step(B2, (), (), "e:accepted"),
          Step(B3, ("e filled",), (Fx("e", "63162.07", "0.63162070", "taker", "entry", "63149.44"),),
               "e:filled"))),
    Case("market-buy-sent-at-the-bar-open-fills-at-that-open",
         (Ord("e", "buy", "market", created=B2[0]),),
         (Step(B2, ("e filled",), (Fx("e", "62847.85", "0.62847850", "taker", "entry", "62835.28"),),
               "e:filled"),)),
    Case("market-sell-next-open-slippage-down-floor",
         (Ord("x", "sell", "market", role="exit"),),
         (Step(B2, ("x filled",), (Fx("x", "62822.71", "0.62822710", "taker", "exit", "62835.28"),),
               "x:filled"),)),
    Case("market-buy-fee-quantized-to-1e-8",
         (Ord("e", "buy", "market", qty="0.12345678"),),
         (Step(B2, ("e filled",), (Fx("e", "62847.85", "7.75899319", "taker", "entry", "62835.28"),),
               "e:filled"),)),
    Case("market-buy-no-slippage-no-fee",
         (Ord("e", "buy", "market"),),
         (Step(B2, ("e filled",), (Fx("e", "62835.28", "0E-8", "taker", "entry", "62835.28"),),
               "e:filled"),),
         broker={"slippage_bps": 0, "taker_fee_bps": 0}),
    Case("market-buy-custom-fee-and-slippage",
         # 62835.28 * 1.0010 = 62898.115280 -> 62898.12; fee 628.9812 * 0.0025 = 1.572453
         (Ord("e", "buy", "market"),),
         (Step(B2, ("e filled",), (Fx("e", "62898.12", "1.57245300", "taker", "entry", "62835.28"),),
               "e:filled"),),
         broker={"slippage_bps": 10, "taker_fee_bps": 25}),
    Case("two-market-orders-fill-in-submission-order",
         (Ord("a", "buy", "market"), Ord("b", "sell", "market", role="exit")),
         (Step(B2, ("a filled", "b filled"),
               (Fx("a", "62847.85", "0.62847850", "taker", "entry", "62835.28"),
                Fx("b", "62822.71", "0.62822710", "taker", "exit", "62835.28")),
               "a:filled b:filled"),)),
    # ---------------------------------------------------------------- limit orders
    Case("limit-buy-traded-through-fills-at-level-maker",
         (Ord("e", "buy", "limit", level="62500.00"),),
         (Step(B2, ("e filled",), (Fx("e", "62500.00", "0.31250000", "maker", "entry", "62500.00"),),
               "e:filled"),)),
    Case("limit-buy-touching-low-exactly-fills",
         (Ord("e", "buy", "limit", level="62358.00"),),
         (Step(B2, ("e filled",), (Fx("e", "62358.00", "0.31179000", "maker", "entry", "62358.00"),),
               "e:filled"),)),
    Case("limit-buy-one-tick-below-low-rests",
         (Ord("e", "buy", "limit", level="62357.99"),),
         (Step(B2, (), (), "e:working"),
          Step(B3, (), (), "e:working"))),
    Case("limit-buy-gap-below-fills-at-open",
         (Ord("e", "buy", "limit", level="63000.00"),),
         (Step(B2, ("e filled",), (Fx("e", "62835.28", "0.31417640", "maker", "entry", "62835.28"),),
               "e:filled"),)),
    Case("limit-sell-traded-through-fills-at-level-maker",
         (Ord("x", "sell", "limit", level="63200.00", role="exit"),),
         (Step(B2, ("x filled",), (Fx("x", "63200.00", "0.31600000", "maker", "exit", "63200.00"),),
               "x:filled"),)),
    Case("limit-sell-gap-above-fills-at-open",
         (Ord("x", "sell", "limit", level="62700.00", role="exit"),),
         (Step(B2, ("x filled",), (Fx("x", "62835.28", "0.31417640", "maker", "exit", "62835.28"),),
               "x:filled"),)),
    Case("limit-sell-above-high-rests-then-fills-later",
         (Ord("x", "sell", "limit", level="63600.00", role="exit"),),
         (Step(B2, (), (), "x:working"),
          Step(B3, ("x filled",), (Fx("x", "63600.00", "0.31800000", "maker", "exit", "63600.00"),),
               "x:filled"))),
    # ---------------------------------------------------------------- stop orders
    Case("stop-sell-traded-through-fills-at-level-minus-slippage",
         (Ord("s", "sell", "stop", level="62500.00", role="exit"),),
         (Step(B2, ("s triggered", "s filled"),
               (Fx("s", "62487.50", "0.62487500", "taker", "exit", "62500.00"),),
               "s:filled"),)),
    Case("stop-sell-price-floored-against-trader",
         (Ord("s", "sell", "stop", level="62500.01", role="exit"),),
         (Step(B2, ("s triggered", "s filled"),
               (Fx("s", "62487.50", "0.62487500", "taker", "exit", "62500.01"),),
               "s:filled"),)),
    Case("stop-sell-gap-below-fills-at-open-minus-slippage",
         (Ord("s", "sell", "stop", level="63000.00", role="exit"),),
         (Step(B2, ("s triggered", "s filled"),
               (Fx("s", "62822.71", "0.62822710", "taker", "exit", "62835.28"),),
               "s:filled"),)),
    Case("stop-sell-one-tick-below-low-rests",
         (Ord("s", "sell", "stop", level="62357.99", role="exit"),),
         (Step(B2, (), (), "s:working"),)),
    Case("stop-buy-traded-through-fills-at-level-plus-slippage",
         (Ord("s", "buy", "stop", level="63200.00"),),
         (Step(B2, ("s triggered", "s filled"),
               (Fx("s", "63212.64", "0.63212640", "taker", "entry", "63200.00"),),
               "s:filled"),)),
    Case("stop-buy-price-ceiled-against-trader",
         (Ord("s", "buy", "stop", level="63200.01"),),
         (Step(B2, ("s triggered", "s filled"),
               (Fx("s", "63212.66", "0.63212660", "taker", "entry", "63200.01"),),
               "s:filled"),)),
    Case("stop-buy-gap-above-fills-at-open-plus-slippage",
         (Ord("s", "buy", "stop", level="62800.00"),),
         (Step(B2, ("s triggered", "s filled"),
               (Fx("s", "62847.85", "0.62847850", "taker", "entry", "62835.28"),),
               "s:filled"),)),
    # ---------------------------------------------------------------- brackets / OCO
    Case("bracket-legs-live-on-entry-bar-tp-fills-same-bar-sl-cancelled",
         (Ord("e", "buy", "market", tp="63500.00", sl="62000.00"),),
         (Step(B3, ("e filled", f"e.tp working {LIVE}", f"e.sl working {LIVE}", "e.tp filled",
                    f"e.sl cancelled {OCO}"),
               (Fx("e", "63162.07", "0.63162070", "taker", "entry", "63149.44"),
                Fx("e.tp", "63500.00", "0.31750000", "maker", "take_profit", "63500.00")),
               "e:filled e.tp:filled e.sl:cancelled"),)),
    Case("bracket-quiet-bars-then-stop-loss-intrabar",
         (Ord("e", "buy", "market", tp="64000.00", sl="63000.00"),),
         (Step(B3, ("e filled", f"e.tp working {LIVE}", f"e.sl working {LIVE}"),
               (Fx("e", "63162.07", "0.63162070", "taker", "entry", "63149.44"),),
               "e:filled e.tp:working e.sl:working"),
          Step(B4, (), (), "e:filled e.tp:working e.sl:working"),
          Step(B5, (), (), "e:filled e.tp:working e.sl:working"),
          Step(B6, (), (), "e:filled e.tp:working e.sl:working"),
          Step(B7, (), (), "e:filled e.tp:working e.sl:working"),
          Step(B8, ("e.sl triggered", "e.sl filled", f"e.tp cancelled {OCO}"),
               (Fx("e.sl", "62987.40", "0.62987400", "taker", "stop_loss", "63000.00"),),
               "e:filled e.tp:cancelled e.sl:filled"),
          Step(B9, (), (), "e:filled e.tp:cancelled e.sl:filled"))),
    Case("bracket-both-levels-inside-one-bar-stop-loss-wins",
         (Ord("e", "buy", "market", tp="62780.00", sl="61000.00"),),
         (Step(B9, ("e filled", f"e.tp working {LIVE}", f"e.sl working {LIVE}", "e.sl triggered",
                    "e.sl filled", f"e.tp cancelled {OCO}"),
               (Fx("e", "62754.57", "0.62754570", "taker", "entry", "62742.02"),
                Fx("e.sl", "60987.80", "0.60987800", "taker", "stop_loss", "61000.00")),
               "e:filled e.tp:cancelled e.sl:filled"),
          Step(B10, (), (), "e:filled e.tp:cancelled e.sl:filled"))),
    Case("bracket-gap-below-stop-fills-at-open",
         (Ord("e", "buy", "market", tp="64000.00", sl="62000.00"),),
         (Step(B2, ("e filled", f"e.tp working {LIVE}", f"e.sl working {LIVE}"),
               (Fx("e", "62847.85", "0.62847850", "taker", "entry", "62835.28"),),
               "e:filled e.tp:working e.sl:working"),
          Step(GAP_DOWN, ("e.sl triggered", "e.sl filled", f"e.tp cancelled {OCO}"),
               (Fx("e.sl", "61887.62", "0.61887620", "taker", "stop_loss", "61900.00"),),
               "e:filled e.tp:cancelled e.sl:filled"))),
    Case("bracket-gap-above-take-profit-fills-at-open-maker",
         (Ord("e", "buy", "market", tp="64000.00", sl="62000.00"),),
         (Step(B2, ("e filled", f"e.tp working {LIVE}", f"e.sl working {LIVE}"),
               (Fx("e", "62847.85", "0.62847850", "taker", "entry", "62835.28"),),
               "e:filled e.tp:working e.sl:working"),
          Step(GAP_UP, ("e.tp filled", f"e.sl cancelled {OCO}"),
               (Fx("e.tp", "64100.00", "0.32050000", "maker", "take_profit", "64100.00"),),
               "e:filled e.tp:filled e.sl:cancelled"))),
    Case("bracket-gap-fill-at-open-precedes-intrabar-stop",
         (Ord("e", "buy", "market", tp="64000.00", sl="62000.00"),),
         (Step(B2, ("e filled", f"e.tp working {LIVE}", f"e.sl working {LIVE}"),
               (Fx("e", "62847.85", "0.62847850", "taker", "entry", "62835.28"),),
               "e:filled e.tp:working e.sl:working"),
          Step(GAP_UP_THEN_CRASH, ("e.tp filled", f"e.sl cancelled {OCO}"),
               (Fx("e.tp", "64100.00", "0.32050000", "maker", "take_profit", "64100.00"),),
               "e:filled e.tp:filled e.sl:cancelled"))),
    Case("two-brackets-oco-groups-are-independent",
         (Ord("a", "buy", "market", tp="63500.00", sl="62000.00"),
          Ord("b", "buy", "market", tp="64000.00", sl="61000.00")),
         (Step(B3, ("a filled", f"a.tp working {LIVE}", f"a.sl working {LIVE}",
                    "b filled", f"b.tp working {LIVE}", f"b.sl working {LIVE}",
                    "a.tp filled", f"a.sl cancelled {OCO}"),
               (Fx("a", "63162.07", "0.63162070", "taker", "entry", "63149.44"),
                Fx("b", "63162.07", "0.63162070", "taker", "entry", "63149.44"),
                Fx("a.tp", "63500.00", "0.31750000", "maker", "take_profit", "63500.00")),
               "a:filled a.tp:filled a.sl:cancelled b:filled b.tp:working b.sl:working"),
          Step(B8, (), (),
               "a:filled a.tp:filled a.sl:cancelled b:filled b.tp:working b.sl:working"),
          Step(B9, ("b.sl triggered", "b.sl filled", f"b.tp cancelled {OCO}"),
               (Fx("b.sl", "60987.80", "0.60987800", "taker", "stop_loss", "61000.00"),),
               "a:filled a.tp:filled a.sl:cancelled b:filled b.tp:cancelled b.sl:filled"))),
    Case("independent-resting-orders-are-not-oco-stop-before-limit",
         (Ord("s", "sell", "stop", level="62500.00", role="exit"),
          Ord("l", "sell", "limit", level="63200.00", role="exit")),
         (Step(B2, ("s triggered", "s filled", "l filled"),
               (Fx("s", "62487.50", "0.62487500", "taker", "exit", "62500.00"),
                Fx("l", "63200.00", "0.31600000", "maker", "exit", "63200.00")),
               "s:filled l:filled"),)),
    Case("market-fill-reported-before-resting-fills",
         (Ord("l", "buy", "limit", level="62500.00"), Ord("m", "buy", "market")),
         (Step(B2, ("m filled", "l filled"),
               (Fx("m", "62847.85", "0.62847850", "taker", "entry", "62835.28"),
                Fx("l", "62500.00", "0.31250000", "maker", "entry", "62500.00")),
               "l:filled m:filled"),)),
    # ---------------------------------------------------------------- funds
    Case("insufficient-funds-rejects-entry-and-cancels-legs",
         # cost 628.4785 + 0.6284785 = 629.1069785 > 600
         (Ord("e", "buy", "market", tp="63500.00", sl="62000.00"),),
         (Step(B2, ("e rejected insufficient_funds", "e.tp cancelled entry rejected",
                    "e.sl cancelled entry rejected"), (),
               "e:rejected e.tp:cancelled e.sl:cancelled"),
          Step(B3, (), (), "e:rejected e.tp:cancelled e.sl:cancelled")),
         funds="600"),
    Case("funds-exactly-equal-to-cost-fill",
         (Ord("e", "buy", "market"),),
         (Step(B2, ("e filled",), (Fx("e", "62847.85", "0.62847850", "taker", "entry", "62835.28"),),
               "e:filled"),),
         funds="629.1069785"),
    Case("funds-below-cost-rejects",
         (Ord("e", "buy", "market"),),
         (Step(B2, ("e rejected insufficient_funds",), (), "e:rejected"),),
         funds="629.09"),
    Case("limit-buy-checked-against-funds-at-fill",
         # cost 625.00 + 0.3125 = 625.3125 > 625
         (Ord("e", "buy", "limit", level="62500.00"),),
         (Step(B2, ("e rejected insufficient_funds",), (), "e:rejected"),),
         funds="625"),
    Case("stop-buy-triggered-then-rejected-for-funds",
         # cost 632.1264 + 0.6321264 > 600: the trigger is reported, then the reject
         (Ord("s", "buy", "stop", level="63200.00"),),
         (Step(B2, ("s triggered", "s rejected insufficient_funds"), (), "s:rejected"),),
         funds="600"),
    Case("sells-are-not-limited-by-funds",
         (Ord("x", "sell", "market", role="exit"),),
         (Step(B2, ("x filled",), (Fx("x", "62822.71", "0.62822710", "taker", "exit", "62835.28"),),
               "x:filled"),),
         funds="0"),
]


def _status_map(text: str) -> dict[str, str]:
    return dict(item.split(":", 1) for item in text.split())


def _update_tuple(text: str) -> tuple[str, str, str]:
    parts = text.split(" ", 2)
    return (parts[0], parts[1], parts[2] if len(parts) > 2 else "")


def _check_lifecycle(events: list[OrderEvent], before: dict[str, OrderStatus], where: str) -> None:
    """Replay ``events`` on the statuses ``before`` (updated in place), each a legal transition."""
    for ev in events:
        cid = ev.order.client_order_id
        shadow = Order(cid, SYM, Side.BUY, OrderType.MARKET, Decimal(1), OrderRole.ENTRY, 0,
                       status=before[cid])
        check_transition(shadow, ev.status)      # raises IllegalTransition
        before[cid] = ev.status


def _submit_case(case: Case) -> tuple[SimBroker, dict[str, Order], list[str]]:
    calls: list[str] = []

    def funds(symbol: str) -> float:
        calls.append(symbol)
        return float(case.funds)

    broker = SimBroker({SYM: BTC}, funds=funds if case.funds is not None else None, **case.broker)
    orders: dict[str, Order] = {}
    for spec in case.orders:
        level = Decimal(spec.level) if spec.level is not None else None
        entry = Order(spec.id, SYM, Side(spec.side), OrderType(spec.type), Decimal(spec.qty),
                      OrderRole(spec.role), spec.created,
                      price=level if spec.type == "limit" else None,
                      stop_price=level if spec.type == "stop" else None)
        legs: list[Order] = []
        if spec.tp is not None:
            legs.append(Order(f"{spec.id}.tp", SYM, Side.SELL, OrderType.LIMIT, Decimal(spec.qty),
                              OrderRole.TAKE_PROFIT, 1713459600, price=Decimal(spec.tp),
                              parent_id=spec.id))
        if spec.sl is not None:
            legs.append(Order(f"{spec.id}.sl", SYM, Side.SELL, OrderType.STOP, Decimal(spec.qty),
                              OrderRole.STOP_LOSS, 1713459600, stop_price=Decimal(spec.sl),
                              parent_id=spec.id))
        events = broker.submit(entry, tuple(legs))
        assert [e.order for e in events] == [entry, *legs]
        _check_lifecycle(events, {o.client_order_id: OrderStatus.SUBMITTED for o in (entry, *legs)},
                         "submit")
        assert all(e.status is e.order.status for e in events)
        orders[entry.client_order_id] = entry
        orders.update((leg.client_order_id, leg) for leg in legs)
    return broker, orders, calls


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_candle_table(case: Case) -> None:
    broker, orders, calls = _submit_case(case)
    statuses = {oid: o_.status for oid, o_ in orders.items()}
    for n, step in enumerate(case.steps):
        ts, o, h, low, c = step.bar
        ups = broker.fill_bar(SYM, ts, float(o), float(h), float(low), float(c))
        where = f"bar {n} (ts {ts})"
        got = [(u.order.client_order_id, u.kind.value, u.reason) for u in ups]
        assert got == [_update_tuple(t) for t in step.updates], where
        assert all(u.ts == ts for u in ups), where
        assert all(type(u) is OrderEvent for u in ups), where
        # A fill exactly with FILLED (SimBroker never fills in part).
        for u in ups:
            assert (u.fill is not None) == (u.kind is OrderEventKind.FILLED), where
        _check_lifecycle(ups, statuses, where)
        assert statuses == {oid: o_.status for oid, o_ in orders.items()}, where
        fills = [u.fill for u in ups if u.fill is not None]
        assert len(fills) == len(step.fills), where
        for f, want in zip(fills, step.fills):
            order = orders[want.id]
            assert f.client_order_id == want.id, where
            assert f.symbol == SYM
            assert f.side is order.side
            assert f.quantity == order.quantity
            assert f.price == Decimal(want.price), (where, want.id, f.price)
            assert f.price == f.price.quantize(BTC.price_increment), "price off the tick grid"
            assert f.fee == Decimal(want.fee), (where, want.id, f.fee)
            assert f.fee.as_tuple().exponent == -8, f"fee not quantized to 1e-8: {f.fee!r}"
            assert f.liquidity == want.liquidity, where
            assert f.role is OrderRole(want.role), where
            assert f.reference_price == Decimal(want.ref), where
            assert f.ts == ts
        status = {oid: o_.status.value for oid, o_ in orders.items()}
        assert status == _status_map(step.status), where
    if case.funds is not None:
        # Free cash is consulted, per symbol, for buys only.
        buys = any(o.side == "buy" for o in case.orders)
        assert (set(calls) == {SYM}) if buys else (calls == [])


def test_cases_have_unique_ids_and_cover_every_rule() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    liquidity = {(f.liquidity, f.role) for c in CASES for s in c.steps for f in s.fills}
    assert {("taker", "entry"), ("maker", "entry"), ("taker", "stop_loss"),
            ("maker", "take_profit"), ("taker", "exit"), ("maker", "exit")} <= liquidity


# ---------------------------------------------------------------------- submit states
def test_statuses_right_after_submit() -> None:
    case = Case("submit", (Ord("m", "buy", "market", tp="64000.00", sl="62000.00"),
                           Ord("l", "buy", "limit", level="62000.00"),
                           Ord("s", "sell", "stop", level="61000.00", role="exit")), ())
    broker, orders, _ = _submit_case(case)
    assert {k: v.status for k, v in orders.items()} == {
        "m": OrderStatus.ACCEPTED, "m.tp": OrderStatus.ACCEPTED, "m.sl": OrderStatus.ACCEPTED,
        "l": OrderStatus.WORKING, "s": OrderStatus.WORKING}
    # Legs are not live before the entry fills: only the entry and the two resting orders.
    assert [o.client_order_id for o in broker.open_orders(SYM)] == ["m", "l", "s"]
    assert broker.has_orders(SYM)
    assert not broker.has_orders("ETH-USD")


def test_market_order_does_not_fill_before_a_bar_is_processed() -> None:
    broker, orders, _ = _submit_case(Case("m", (Ord("m", "buy", "market"),), ()))
    assert broker.fill_bar("ETH-USD", B2[0], 1.0, 1.0, 1.0, 1.0) == []   # other symbol
    assert orders["m"].status is OrderStatus.ACCEPTED
    (u,) = broker.fill_bar(SYM, *[float(x) if i else x for i, x in enumerate(B2)])
    assert u.fill is not None and u.fill.ts == B2[0]
    assert not broker.has_orders(SYM)
