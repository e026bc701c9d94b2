"""A fake venue whose state outlives the process: the SIGKILL suite's exchange.

:class:`FileVenue` implements the broker port (:class:`tradewarden.execution.base.Broker`)
with the fill RULES of :class:`~tradewarden.execution.sim.SimBroker` (so a run on it
fills like a run on the simulator), but keeps everything a venue knows in one JSON
file instead of the process:

* every order by client order id: what was sent, the venue's own status, the filled
  quantity, each fill, why it ended;
* positions (base units, from this venue's fills) and one quote balance per quote
  currency (quote currency; optional);
* the log of every submit attempt (``submit``, bracket legs, ``close_position``),
  duplicates and refusals included, so a test can count what was SENT per client id;
* the open time of the last bar processed per symbol (a venue's clock only moves
  forward: a bar fed again after a restart reports nothing, its events were reported
  the first time).

Every operation that changes the state rewrites the whole file atomically: the new
content goes to ``PATH.tmp``, is flushed and ``fsync``'d, then ``os.replace`` puts it in
place and the directory is ``fsync``'d. A SIGKILL at any instruction therefore leaves
either the state before the operation or the state after it, never a mix; a stale
``PATH.tmp`` is ignored and overwritten. Decimals are stored as their exact text.
One process uses the file at a time (the tests run the deployment in one process, kill
it, then start the next).

Order objects. The engine passes its :class:`~tradewarden.domain.Order` objects to
``submit`` and expects its own objects back in :class:`OrderEvent` values. A restarted
engine has new objects for the same ids, so :meth:`FileVenue.adopt` links the venue's
records to them (``TradingEngine.restore`` calls a venue's ``adopt`` with the orders
it restored, before reconciling; ``tests/engine/fake_venue.py`` has the same method). An order the process
has no object for (never adopted) is reported through a stand-in ``Order`` rebuilt
from the venue's record (same id, symbol, side, type, quantity, role, prices;
``decision_seq`` -1), as a real venue adapter would have to. The venue never writes
an engine object's ``status``: the engine sets it from the events, and the venue keeps
its own status, checked against :data:`~tradewarden.execution.base.TRANSITIONS`.

Fill rules (those of ``SimBroker``, see ``src/tradewarden/execution/sim.py``):

* a market order fills at the open of the first bar that opens after its
  ``created_ts`` (the bar after the one it was decided on); taker fee, slippage
  against the trader;
* resting orders (limits, stops, live bracket legs) in the order they became live:
  gap fills at the open first, then stops, then limits touched inside the bar; a
  limit fills at its level (maker, no slippage), a stop at its trigger (taker,
  slippage); a stop reports ``triggered`` right before its fill;
* native brackets: the legs are ``accepted`` with the entry and go ``working``
  (``bracket leg live``) when it fills; legs that go live inside a bar (an entry that
  was itself a resting order) are checked against the bar's range without a gap fill,
  stop-loss first; a filled leg cancels its sibling (``oco: other leg filled``);
* prices are rounded against the trader to the instrument's price increment (buys
  up, sells down); fee = ``price * quantity * bps / 10_000`` rounded half-even to
  1e-8 quote currency;
* a buy costing more than the quote balance is rejected (``insufficient_funds``, its
  pending legs cancelled ``entry rejected``); a sell of more than the position is
  rejected (``insufficient_balance``, a spot venue); ``close_position`` fills at once
  at the reference price (taker fee, slippage) and is never refused;
* every fill is whole (no partial fills).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

from tradewarden.domain import (
    Bar,
    Fill,
    Instrument,
    Order,
    OrderRole,
    OrderStatus,
    OrderType,
    Side,
    to_decimal,
)
from tradewarden.execution.base import (
    TRANSITIONS,
    BrokerCapabilities,
    IllegalTransition,
    OrderEvent,
    OrderEventKind,
    VenueAccount,
    VenueOrder,
)

K = OrderEventKind
_BPS = Decimal(10_000)
_ZERO = Decimal(0)
_FEE_Q = Decimal("0.00000001")
_OPEN = ("accepted", "working", "partially_filled", "unknown")
_LEG_LIVE = "bracket leg live"
_OCO = "oco: other leg filled"
VERSION = 1


class FileVenue:
    """A venue for the fault-injection tests whose whole state lives in a JSON file.

    Parameters
    ----------
    path : str or Path
        The state file. Loaded if it exists (a new process sees what a killed one's
        venue did), created otherwise.
    instruments : dict of str to Instrument
        Specs by symbol (price increment for rounding fills, quote currency).
    taker_bps, maker_bps, slippage_bps : float
        Taker fee, maker fee and adverse slippage, basis points of notional, each in
        ``[0, 10000)`` (the same meaning as ``SimBroker``'s).
    cash : Decimal, optional
        The quote balance a NEW file starts with, quote currency, for every quote
        currency of ``instruments``; ``None``: the venue keeps no balance (buys are never
        refused for funds and :meth:`account` reports ``balances=None``). Ignored when
        the file exists (its balance is the venue's).
    native_brackets : bool
        Take bracket legs with the entry (``native_bracket=True, native_oco=True``), or
        refuse them so the engine emulates brackets (both False).

    Attributes
    ----------
    capabilities : BrokerCapabilities
        Stop orders and client order ids; no partial fills; brackets as above.
    before_replace : callable or None
        Called during every save after the new state is written and ``fsync``'d to
        ``PATH.tmp`` and before ``os.replace`` puts it in place (the kill tests'
        "the venue has not recorded it yet" point).

    Raises
    ------
    ValueError
        A fee or slippage outside ``[0, 10000)``, a file that is not this venue's state
        (unreadable JSON, another version), or one written with other fees, slippage
        or bracket mode than these.
    """

    def __init__(self, path: str | Path, instruments: dict[str, Instrument], *,
                 taker_bps: float = 10.0, maker_bps: float = 5.0, slippage_bps: float = 2.0,
                 cash: Decimal | None = None, native_brackets: bool = True) -> None:
        for name, v in (("taker_bps", taker_bps), ("maker_bps", maker_bps),
                        ("slippage_bps", slippage_bps)):
            if not 0 <= v < 10_000:
                raise ValueError(f"{name} must be in [0, 10000) bps, got {v}")
        self.path = Path(path)
        self.instruments = instruments
        self.taker = to_decimal(taker_bps) / _BPS
        self.maker = to_decimal(maker_bps) / _BPS
        self.slip = to_decimal(slippage_bps) / _BPS
        native = bool(native_brackets)
        self.capabilities = BrokerCapabilities(native_bracket=native, native_oco=native,
                                               stop_orders=True, client_order_ids=True,
                                               partial_fills=False)
        self.before_replace: Callable[[], None] | None = None
        self._objects: dict[str, Order] = {}     # the engine's Order objects, this process
        config = {"taker_bps": str(to_decimal(taker_bps)), "maker_bps": str(to_decimal(maker_bps)),
                  "slippage_bps": str(to_decimal(slippage_bps)), "native_brackets": native}
        if self.path.exists():
            self._state = self._load()
            if self._state["config"] != config:
                raise ValueError(f"{self.path}: written with {self._state['config']}, "
                                 f"opened with {config}")
        else:
            quotes = sorted({inst.quote for inst in instruments.values()})
            self._state = {
                "version": VERSION, "config": config,
                "balances": None if cash is None else {q: str(Decimal(cash)) for q in quotes},
                "positions": {}, "orders": {}, "fills": [], "submits": [], "last_bar": {},
                "rest_seq": 0,
            }
            self._save()

    # -- persistence -----------------------------------------------------------------------
    def _load(self) -> dict[str, Any]:
        try:
            state = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{self.path}: not a FileVenue state ({exc})") from None
        if not isinstance(state, dict) or state.get("version") != VERSION:
            raise ValueError(f"{self.path}: FileVenue state version "
                             f"{state.get('version') if isinstance(state, dict) else None!r}, "
                             f"this venue reads {VERSION}")
        return state

    def _save(self) -> None:
        """Replace the file with the state in memory, atomically (see the module notes).

        On failure the state in memory is reloaded from the file (what the venue did is
        what the file says) and the error propagates.
        """
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(json.dumps(self._state, separators=(",", ":")))
                f.flush()
                os.fsync(f.fileno())
            if self.before_replace is not None:
                self.before_replace()
            os.replace(tmp, self.path)
            fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException:
            if self.path.exists():
                self._state = self._load()
            raise

    # -- helpers ---------------------------------------------------------------------------
    def _set(self, cid: str, new: str, reason: str | None = None) -> None:
        """Change the venue's status of ``cid``, refusing a change outside the lifecycle."""
        rec = self._state["orders"][cid]
        old = OrderStatus(rec["status"])
        if OrderStatus(new) is not old and OrderStatus(new) not in TRANSITIONS[old]:
            raise IllegalTransition(f"venue order {cid}: {old.value} -> {new}")
        rec["status"] = new
        if reason is not None:
            rec["reason"] = reason

    def _obj(self, cid: str) -> Order:
        """The engine's Order for ``cid``, or a stand-in rebuilt from the venue's record."""
        o = self._objects.get(cid)
        if o is None:
            r = self._state["orders"][cid]
            o = Order(cid, r["symbol"], Side(r["side"]), OrderType(r["type"]), Decimal(r["quantity"]),
                      OrderRole(r["role"]), int(r["created_ts"]),
                      price=None if r["price"] is None else Decimal(r["price"]),
                      stop_price=None if r["stop_price"] is None else Decimal(r["stop_price"]),
                      parent_id=r["parent_id"], status=OrderStatus(r["status"]))
            self._objects[cid] = o
        return o

    def _event(self, cid: str, kind: OrderEventKind, ts: int, reason: str = "",
               fill: Fill | None = None) -> OrderEvent:
        return OrderEvent(self._obj(cid), kind, ts, reason, fill)

    def _log(self, cid: str, kind: str, ts: int, result: str) -> None:
        self._state["submits"].append({"client_order_id": cid, "kind": kind, "ts": ts,
                                       "result": result})

    def _record(self, o: Order, status: str, group: str | None, live: bool) -> None:
        self._state["orders"][o.client_order_id] = {
            "symbol": o.symbol, "side": o.side.value, "type": o.type.value,
            "quantity": str(o.quantity), "role": o.role.value, "created_ts": o.created_ts,
            "price": None if o.price is None else str(o.price),
            "stop_price": None if o.stop_price is None else str(o.stop_price),
            "parent_id": o.parent_id, "status": status, "reason": "", "filled": "0",
            "group": group, "live": live, "rest": None,
        }
        self._objects[o.client_order_id] = o

    def _rest(self, cid: str) -> None:
        """Make ``cid`` a live resting order (its place in the arrival order of resting)."""
        rec = self._state["orders"][cid]
        self._set(cid, "working")
        rec["live"] = True
        rec["rest"] = self._state["rest_seq"]
        self._state["rest_seq"] += 1

    def _pending_legs(self, entry: str) -> list[str]:
        return [c for c, r in self._state["orders"].items()
                if r["group"] == entry and not r["live"] and r["status"] in _OPEN]

    def _resting(self, symbol: str) -> list[str]:
        rows = [(r["rest"], c) for c, r in self._state["orders"].items()
                if r["symbol"] == symbol and r["status"] == "working" and r["live"]]
        return [c for _, c in sorted(rows)]

    def _market(self, symbol: str) -> list[str]:
        return [c for c, r in self._state["orders"].items()
                if r["symbol"] == symbol and r["type"] == "market" and r["status"] == "accepted"]

    def _check(self, o: Order, entry: Order, taken: set[str]) -> str | None:
        """Why the venue refuses ``o`` (a ``ValueError`` text), or ``None``."""
        cid = o.client_order_id
        if cid in self._state["orders"] or cid in taken:
            return f"duplicate client order id {cid!r}"
        if o.symbol not in self.instruments:
            return f"unknown symbol {o.symbol!r}"
        if o.symbol != entry.symbol:
            return f"order {cid}: bracket leg for {o.symbol!r} on an entry for {entry.symbol!r}"
        if o.quantity <= 0:
            return f"order {cid}: quantity must be positive"
        if o.type is OrderType.LIMIT and o.price is None:
            return f"order {cid}: limit order needs a price"
        if o.type is OrderType.STOP and o.stop_price is None:
            return f"order {cid}: stop order needs a stop price"
        return None

    # -- commands --------------------------------------------------------------------------
    def submit(self, order: Order, legs: tuple[Order, ...] = ()) -> list[OrderEvent]:
        """Accept an order and, for a native bracket, its take-profit and stop-loss legs.

        Every attempt is logged per client order id (the entry, then each leg), refused
        ones included; the log and the new orders are written in one save.

        Parameters
        ----------
        order : Order
            Market, limit (``price`` set) or stop (``stop_price`` set) order; quantity in
            base units, prices in quote currency.
        legs : tuple of Order
            Bracket legs (sell limit take-profit, sell stop stop-loss); live as one OCO
            group when ``order`` fills.

        Returns
        -------
        list of OrderEvent
            ``accepted`` for a market order, ``working`` for a limit or stop order, then
            ``accepted`` for each leg; ``ts`` is each order's ``created_ts``.

        Raises
        ------
        ValueError
            Duplicate client order id (the venue already has it), unknown symbol,
            non-positive quantity, a limit/stop without its price, a leg for another
            symbol, or legs to a venue without native brackets. Nothing but the log
            entries is recorded then.
        """
        why = None
        if legs and not self.capabilities.native_bracket:
            why = (f"order {order.client_order_id}: FileVenue(native_brackets=False) does not "
                   "take bracket legs")
        taken: set[str] = set()
        for o in (order, *legs):
            why = why or self._check(o, order, taken)
            taken.add(o.client_order_id)
        if why is not None:
            for o in (order, *legs):
                self._log(o.client_order_id, "leg" if o is not order else "submit", o.created_ts,
                          "refused: " + why)
            self._save()
            raise ValueError(why)
        out: list[OrderEvent] = []
        cid = order.client_order_id
        self._log(cid, "submit", order.created_ts, "accepted")
        if order.type is OrderType.MARKET:
            self._record(order, "accepted", None, True)
            out.append(self._event(cid, K.ACCEPTED, order.created_ts))
        else:
            self._record(order, "submitted", None, False)
            self._rest(cid)
            out.append(self._event(cid, K.WORKING, order.created_ts))
        for leg in legs:
            self._log(leg.client_order_id, "leg", leg.created_ts, "accepted")
            self._record(leg, "accepted", cid, False)
            out.append(self._event(leg.client_order_id, K.ACCEPTED, leg.created_ts))
        self._save()
        return out

    def cancel(self, client_order_id: str, ts: int, reason: str) -> list[OrderEvent]:
        """Cancel one open order (and, for an entry not yet filled, its pending legs).

        Parameters
        ----------
        client_order_id : str
        ts : int
            UTC epoch seconds, stamped on the events.
        reason : str

        Returns
        -------
        list of OrderEvent
            ``cancelled`` for the order, then its pending legs; empty for an unknown id
            or an order that already ended.
        """
        rec = self._state["orders"].get(client_order_id)
        if rec is None or rec["status"] not in _OPEN:
            return []
        out = self._cancelled([client_order_id], ts, reason)
        self._save()
        return out

    def cancel_all(self, symbol: str, ts: int, reason: str) -> list[OrderEvent]:
        """Cancel every open order of ``symbol``: resting orders (in the order they became
        live), then accepted market orders, then the pending bracket legs of any of them.

        Returns
        -------
        list of OrderEvent
            ``cancelled`` events; empty if nothing of ``symbol`` is open.
        """
        cids = self._resting(symbol) + self._market(symbol)
        if not cids:
            return []
        out = self._cancelled(cids, ts, reason)
        self._save()
        return out

    def _cancelled(self, cids: list[str], ts: int, reason: str) -> list[OrderEvent]:
        out: list[OrderEvent] = []
        legs_out: list[OrderEvent] = []
        for cid in cids:
            self._set(cid, "cancelled", reason)
            out.append(self._event(cid, K.CANCELLED, ts, reason))
            for leg in self._pending_legs(cid):
                self._set(leg, "cancelled", reason)
                legs_out.append(self._event(leg, K.CANCELLED, ts, reason))
        return out + legs_out

    def close_position(self, order: Order, reference_price: Decimal, ts: int) -> list[OrderEvent]:
        """Fill the market ``order`` at once at ``reference_price`` (end of data, emergency stop).

        Price: ``reference_price`` moved by the slippage against the trader and rounded
        against the trader to the price increment; taker fee; never refused for funds
        or balance (``SimBroker.close_position``'s rule). Logged as a submit attempt.

        Parameters
        ----------
        order : Order
            A market order, base units.
        reference_price : Decimal
            The engine's last price, quote currency per base unit.
        ts : int
            Fill time, UTC epoch seconds.

        Returns
        -------
        list of OrderEvent
            One ``filled`` event.

        Raises
        ------
        ValueError
            Duplicate client order id, unknown symbol, non-positive quantity, not a
            market order, or a reference price that is not a positive finite Decimal.
        """
        cid = order.client_order_id
        why = self._check(order, order, set())
        if why is None and order.type is not OrderType.MARKET:
            why = f"order {cid}: close_position takes a market order, got {order.type.value}"
        ref = reference_price
        if why is None and not (isinstance(ref, Decimal) and ref.is_finite() and ref > 0):
            why = f"order {cid}: reference price must be a positive finite Decimal, got {ref!r}"
        if why is not None:
            self._log(cid, "close", ts, "refused: " + why)
            self._save()
            raise ValueError(why)
        self._log(cid, "close", ts, "accepted")
        self._record(order, "accepted", None, True)
        out: list[OrderEvent] = []
        self._execute(cid, ref, ts, True, out, never_refuse=True)
        self._save()
        return out

    def adopt(self, orders: Mapping[str, Order], filled: Mapping[str, Decimal] | None = None) -> int:
        """Link the venue's records to a (restarted) engine's Order objects by client id.

        Events for these orders then carry the engine's own objects. Ids the venue
        never received are ignored (an engine's held emulated legs, unsent orders).

        Parameters
        ----------
        orders : mapping of str to Order
            The engine's open orders by client order id.
        filled : mapping of str to Decimal, optional
            Base units the engine has booked per order; unused: this venue reports a
            fill only from the ``process`` call in which it happens.

        Returns
        -------
        int
            How many were linked.

        Raises
        ------
        ValueError
            An order whose symbol, side, type or quantity differs from the venue's record
            of the same id.
        """
        n = 0
        for cid, o in orders.items():
            r = self._state["orders"].get(cid)
            if r is None:
                continue
            if (r["symbol"], r["side"], r["type"], Decimal(r["quantity"])) != (
                    o.symbol, o.side.value, o.type.value, o.quantity):
                raise ValueError(f"order {cid}: the engine's {o.side.value} {o.quantity} "
                                 f"{o.symbol} {o.type.value} is not the venue's {r['side']} "
                                 f"{r['quantity']} {r['symbol']} {r['type']}")
            self._objects[cid] = o
            n += 1
        return n

    # -- queries ---------------------------------------------------------------------------
    def open_orders(self, symbol: str) -> list[Order]:
        """Return the open orders of ``symbol``: accepted market orders, then resting ones
        (live bracket legs included, pending ones not), as Order objects."""
        return [self._obj(c) for c in self._market(symbol) + self._resting(symbol)]

    def lookup(self, client_order_id: str) -> VenueOrder | None:
        """Return the venue's record of an order (status, filled base units, every fill,
        why it ended), or ``None`` if it never received that id."""
        r = self._state["orders"].get(client_order_id)
        if r is None:
            return None
        return VenueOrder(client_order_id, OrderStatus(r["status"]), Decimal(r["filled"]),
                          tuple(f for f in self.fills() if f.client_order_id == client_order_id),
                          r["reason"])

    def account(self, symbols: list[str]) -> VenueAccount:
        """Return positions (base units, every symbol asked, 0 if none), the client ids of
        every open order of ``symbols`` (pending bracket legs included) in arrival order,
        and the quote balances (``None`` when the venue keeps none)."""
        pos = self._state["positions"]
        cids = tuple(c for c, r in self._state["orders"].items()
                     if r["symbol"] in symbols and r["status"] in _OPEN)
        bal = self._state["balances"]
        return VenueAccount({s: Decimal(pos.get(s, "0")) for s in symbols}, cids,
                            None if bal is None else {q: Decimal(v) for q, v in bal.items()})

    def fills(self) -> list[Fill]:
        """Every fill this venue made, in execution order (quantities in base units,
        prices and fees in quote currency)."""
        return [Fill(f["client_order_id"], f["symbol"], Side(f["side"]), Decimal(f["quantity"]),
                     Decimal(f["price"]), Decimal(f["fee"]), f["liquidity"], int(f["ts"]),
                     Decimal(f["reference_price"]), OrderRole(f["role"]))
                for f in self._state["fills"]]

    def submit_counts(self) -> Counter[str]:
        """Return how many times each client order id was sent (the submit log)."""
        return Counter(e["client_order_id"] for e in self._state["submits"])

    def submit_log(self) -> list[dict[str, Any]]:
        """Return the submit log: ``client_order_id``, ``kind`` (submit, leg, close),
        ``ts`` (UTC epoch seconds) and ``result`` (accepted, or ``refused: why``)."""
        return [dict(e) for e in self._state["submits"]]

    def position(self, symbol: str) -> Decimal:
        """Return the base units held in ``symbol`` (0 if none)."""
        return Decimal(self._state["positions"].get(symbol, "0"))

    def balance(self, quote: str) -> Decimal | None:
        """Return the balance of currency ``quote`` (quote currency), ``None`` if kept none."""
        bal = self._state["balances"]
        return None if bal is None else Decimal(bal.get(quote, "0"))

    def status(self, client_order_id: str) -> OrderStatus:
        """Return the venue's status of an order it received.

        Raises
        ------
        KeyError
            The venue never received ``client_order_id``.
        """
        return OrderStatus(self._state["orders"][client_order_id]["status"])

    # -- the bar ---------------------------------------------------------------------------
    def process(self, bar: Bar) -> list[OrderEvent]:
        """Return the events of ``bar``: market orders decided before it filled at its open,
        then the resting orders it trades through (see the module notes for the order).

        A bar at or before the last one processed for its symbol returns no events (the
        venue's time has passed it; its events were reported when it was processed).
        The state is saved when anything changed.

        Parameters
        ----------
        bar : Bar
            Open time UTC epoch seconds (stamped on events and fills), prices in quote
            currency per base unit.

        Returns
        -------
        list of OrderEvent
            In execution order, as ``SimBroker.fill_bar``.
        """
        sym, ts = bar.symbol, bar.ts
        last = self._state["last_bar"].get(sym)
        if sym not in self.instruments or (last is not None and ts <= last):
            return []
        self._state["last_bar"][sym] = ts
        out: list[OrderEvent] = []
        open_ref = to_decimal(bar.open)
        orders = self._state["orders"]
        for cid in self._market(sym):
            if orders[cid]["created_ts"] < ts:
                self._execute(cid, open_ref, ts, True, out)
        new_live: list[str] = []
        if self._resting(sym):
            self._process_resting(sym, bar, open_ref, out, None, new_live)
        if out:
            self._save()
        return out

    def _process_resting(self, sym: str, bar: Bar, open_ref: Decimal, out: list[OrderEvent],
                         only: list[str] | None, new_live: list[str]) -> None:
        """Fill resting orders the bar trades through; ``only``: legs that went live inside
        the bar (no gap fill, checked against the bar's range, stops first)."""
        o, h, low = bar.open, bar.high, bar.low
        orders = self._state["orders"]
        gaps: list[str] = []
        stops: list[str] = []
        limits: list[str] = []
        for cid in (self._resting(sym) if only is None else only):
            r = orders[cid]
            stop = r["type"] == "stop"
            level = float(r["stop_price"] if stop else r["price"])
            on_low = stop == (r["side"] == "sell")      # sell stop, buy limit: touched from above
            if on_low:
                if only is None and o <= level:
                    gaps.append(cid)
                elif low <= level:
                    (stops if stop else limits).append(cid)
            else:
                if only is None and o >= level:
                    gaps.append(cid)
                elif h >= level:
                    (stops if stop else limits).append(cid)
        n_gaps = len(gaps)
        before = len(new_live)
        for i, cid in enumerate(gaps + stops + limits):
            r = orders[cid]
            if r["status"] != "working":            # the other leg of a filled OCO pair
                continue
            stop = r["type"] == "stop"
            ref = open_ref if i < n_gaps else to_decimal(float(r["stop_price"] if stop else r["price"]))
            if stop:
                out.append(self._event(cid, K.TRIGGERED, bar.ts))
            self._execute(cid, ref, bar.ts, stop, out, new_live=new_live)
            group = r["group"]
            if group is not None and r["status"] == "filled" and self.capabilities.native_oco:
                for other in self._resting(sym):
                    if orders[other]["group"] == group:
                        self._set(other, "cancelled", _OCO)
                        out.append(self._event(other, K.CANCELLED, bar.ts, _OCO))
        if len(new_live) > before:                 # an entry filled inside the bar
            legs = new_live[before:]
            del new_live[before:]
            self._process_resting(sym, bar, open_ref, out, legs, new_live)

    def _execute(self, cid: str, ref: Decimal, ts: int, taker: bool, out: list[OrderEvent], *,
                 never_refuse: bool = False, new_live: list[str] | None = None) -> None:
        """Fill ``cid`` whole at reference price ``ref`` (or reject it: funds, balance)."""
        r = self._state["orders"][cid]
        sym = r["symbol"]
        inst = self.instruments[sym]
        buy = r["side"] == "buy"
        raw = ref * ((1 + self.slip) if buy else (1 - self.slip)) if taker else ref
        price = inst.ceil_price(raw) if buy else inst.floor_price(raw)
        qty = Decimal(r["quantity"])
        notional = price * qty
        fee = (notional * (self.taker if taker else self.maker)).quantize(_FEE_Q, ROUND_HALF_EVEN)
        balances = self._state["balances"]
        held = Decimal(self._state["positions"].get(sym, "0"))
        if not never_refuse:
            if buy and balances is not None and notional + fee > Decimal(balances.get(inst.quote, "0")):
                self._set(cid, "rejected", "insufficient_funds")
                out.append(self._event(cid, K.REJECTED, ts, "insufficient_funds"))
                for leg in self._pending_legs(cid):
                    self._set(leg, "cancelled", "entry rejected")
                    out.append(self._event(leg, K.CANCELLED, ts, "entry rejected"))
                return
            if not buy and qty > held:
                self._set(cid, "rejected", "insufficient_balance")
                out.append(self._event(cid, K.REJECTED, ts, "insufficient_balance"))
                return
        self._state["positions"][sym] = str(held + qty if buy else held - qty)
        if balances is not None:
            bal = Decimal(balances.get(inst.quote, "0"))
            balances[inst.quote] = str(bal - notional - fee if buy else bal + notional - fee)
        liquidity = "taker" if taker else "maker"
        self._state["fills"].append({
            "client_order_id": cid, "symbol": sym, "side": r["side"], "quantity": str(qty),
            "price": str(price), "fee": str(fee), "liquidity": liquidity, "ts": ts,
            "reference_price": str(ref), "role": r["role"]})
        r["filled"] = str(qty)
        self._set(cid, "filled")
        fill = Fill(cid, sym, Side(r["side"]), qty, price, fee, liquidity, ts, ref, OrderRole(r["role"]))
        out.append(self._event(cid, K.FILLED, ts, "", fill))
        for leg in self._pending_legs(cid):
            self._rest(leg)
            out.append(self._event(leg, K.WORKING, ts, _LEG_LIVE))
            if new_live is not None:
                new_live.append(leg)
