"""Position accounting from fills: one symbol's long spot holding, right under partial fills.

A :class:`Holding` is built from :class:`~tradewarden.domain.Fill` events, one at a time,
in any split the venue reports (one fill per order, or many partial fills per order).
It keeps round-trip totals in ``Decimal`` (quote currency for money, base units for
quantities) and returns the closed :class:`~tradewarden.domain.Trade` on the fill that
makes the position flat, never earlier.

The average-cost rule
---------------------
The entry price of a round trip is its **average cost basis**: the quantity-weighted
mean of its buy fill prices, ``sum(price_i * qty_i) / sum(qty_i)`` over the buy fills.
This is the weighted average cost formula of IAS 2 (paragraph 27) applied to one
position, and the "average entry price" brokers and trading platforms report for a
position built from several fills (e.g. NautilusTrader's ``Position.avg_px_open``, the
average price of Interactive Brokers' position reports). The exit price is the same
rule over the sell fills. Fees are not folded into either price: they are kept apart
(``fees``, ``entry_fee``) and subtracted once in the realised PnL, as the
:class:`~tradewarden.domain.Trade` formula has it.

The realised PnL of a round trip is its net cash flow,
``proceeds - cost - fees`` (quote currency), summed exactly from the fills; it does
not go through the (possibly rounded) average prices. For one buy fill and one sell
fill of the same quantity it is, digit for digit, the engine's
``(exit_price - entry_price) * quantity - (entry_fee + exit_fee)``.

Arithmetic
----------
Sums and products are exact: they are done in a 28-digit context that traps
:class:`decimal.Inexact`, and an amount needing more than 28 significant digits is
refused with a ``ValueError`` rather than rounded silently (real instruments need about
20: a price with 2 decimals times a quantity with 8). Only the average prices divide;
they use a fixed context of 28 significant digits, ``ROUND_HALF_EVEN`` (Python's default
decimal context, fixed here so a caller's ``localcontext`` cannot change the result),
and are returned undivided, the price itself, when every fill on that side had one price
(in particular when there was a single fill).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import (
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
)
from typing import Any

from tradewarden.domain.instrument import to_decimal
from tradewarden.domain.values import ExitReason, Fill, Position, Side, Trade

__all__ = ["SNAPSHOT_VERSION", "Holding"]

#: Version of the :meth:`Holding.to_dict` layout; :meth:`Holding.from_dict` refuses others.
SNAPSHOT_VERSION = 1

#: Exact arithmetic: 28 significant digits, and rounding is an error, not a result.
_EXACT = Context(prec=28, rounding=ROUND_HALF_EVEN,
                 traps=[Inexact, InvalidOperation, Overflow, DivisionByZero])
#: Average prices: Python's default decimal context (28 significant digits, half-even).
_AVERAGE = Context(prec=28, rounding=ROUND_HALF_EVEN,
                   traps=[InvalidOperation, Overflow, DivisionByZero])
_MUL, _ADD, _SUB = _EXACT.multiply, _EXACT.add, _EXACT.subtract
_BUY_SIDE = Side.BUY

_ZERO = Decimal(0)
_INF = Decimal("Infinity")
_INF_F = float("inf")
_DECIMAL_FIELDS = ("quantity", "bought", "cost", "sold", "proceeds", "fees", "entry_fee")


@dataclass(slots=True)
class Holding:
    """One symbol's long spot position, accounted from its fills.

    Create it flat, feed it every fill of the symbol with :meth:`apply`; it returns the
    closed :class:`~tradewarden.domain.Trade` when a sell brings the quantity to exactly
    zero, and starts the next round trip flat. All totals cover the current round trip.

    Parameters
    ----------
    symbol : str
        Canonical symbol (``BASE-QUOTE``); fills of any other symbol are refused.

    Attributes
    ----------
    quantity : Decimal
        Base units held now, ``bought - sold``; never negative.
    bought, sold : Decimal
        Base units bought / sold this round trip.
    cost : Decimal
        Quote currency paid for the buys, ``sum(price * quantity)``, fees excluded.
    proceeds : Decimal
        Quote currency received for the sells, ``sum(price * quantity)``, fees excluded.
    fees : Decimal
        Every fee of the round trip (buys and sells), quote currency.
    entry_fee : Decimal
        Fees of the buy fills, quote currency.
    entry_ts : int or None
        UTC epoch seconds of the first buy fill; ``None`` when flat.
    entry_order_id : str or None
        Client order id of the first buy fill (the round trip's trade id); ``None`` when flat.
    last_exit_order_id : str or None
        Client order id of the latest sell fill this round trip, if any.
    fills : int
        Number of fills applied this round trip.
    low, high : float
        The round trip's price extremes so far, quote currency per base unit: every
        fill price of the round trip, widened by the engine with the low and the high
        of each bar at whose end the position is still open (the entry bar included,
        since an entry fills at or after its open; the exit bar only through its fill
        price, since the bar's range after the fill is not the position's).
        ``inf`` / ``-inf`` when flat. The closing :class:`~tradewarden.domain.Trade`
        carries them as ``mae_price`` / ``mfe_price`` (maximum adverse and favourable
        excursion of a long position, J. Sweeney, *Maximum Adverse Excursion*, 1997).

    Examples
    --------
    >>> from decimal import Decimal as D
    >>> from tradewarden.domain import Fill, OrderRole, Side
    >>> h = Holding("BTC-USD")
    >>> h.apply(Fill("e1", "BTC-USD", Side.BUY, D("0.5"), D("100.00"), D("0.05"), "taker",
    ...              0, D("100.00"), OrderRole.ENTRY)) is None
    True
    >>> t = h.apply(Fill("x1", "BTC-USD", Side.SELL, D("0.5"), D("110.00"), D("0.06"),
    ...                  "taker", 3600, D("110.00"), OrderRole.EXIT))
    >>> t.pnl, h.is_flat
    (Decimal('4.890'), True)
    """

    symbol: str
    quantity: Decimal = field(default=_ZERO, init=False)
    bought: Decimal = field(default=_ZERO, init=False)
    cost: Decimal = field(default=_ZERO, init=False)
    sold: Decimal = field(default=_ZERO, init=False)
    proceeds: Decimal = field(default=_ZERO, init=False)
    fees: Decimal = field(default=_ZERO, init=False)
    entry_fee: Decimal = field(default=_ZERO, init=False)
    entry_ts: int | None = field(default=None, init=False)
    entry_order_id: str | None = field(default=None, init=False)
    last_exit_order_id: str | None = field(default=None, init=False)
    fills: int = field(default=0, init=False)
    low: float = field(default=_INF_F, init=False)
    high: float = field(default=-_INF_F, init=False)
    # The price every buy (sell) fill of the round trip had, or None when they differed
    # or there was none: the average is then that price itself, undivided.
    _buy_price: Decimal | None = field(default=None, init=False, repr=False)
    _sell_price: Decimal | None = field(default=None, init=False, repr=False)

    # -- state -------------------------------------------------------------------------
    @property
    def is_flat(self) -> bool:
        """Whether nothing is held (``quantity == 0``)."""
        return self.quantity == 0

    @property
    def entry_price(self) -> Decimal | None:
        """Return the average buy price of the round trip, quote currency per base unit.

        ``cost / bought`` (average cost basis, see the module notes). When every buy fill
        had one price (in particular a single buy fill) it is that price itself,
        undivided, so it equals the fill price exactly; otherwise the quotient to 28
        significant digits, ``ROUND_HALF_EVEN``. ``None`` when flat.
        """
        if self.bought == 0:
            return None
        if self._buy_price is not None:
            return self._buy_price
        return _AVERAGE.divide(self.cost, self.bought)

    @property
    def exit_price(self) -> Decimal | None:
        """Return the average sell price so far this round trip, quote currency per base unit.

        ``proceeds / sold``, with the same rule as :attr:`entry_price` (the price itself
        when every sell fill had one price). ``None`` before the first sell fill.
        """
        if self.sold == 0:
            return None
        if self._sell_price is not None:
            return self._sell_price
        return _AVERAGE.divide(self.proceeds, self.sold)

    def position(self, stop_loss: Decimal | None = None,
                 take_profit: Decimal | None = None) -> Position | None:
        """Return the open position as a :class:`~tradewarden.domain.Position` snapshot.

        Parameters
        ----------
        stop_loss, take_profit : Decimal or None
            Protective levels to attach, quote currency per base unit.

        Returns
        -------
        Position or None
            ``quantity`` is what is held now (base units), ``entry_price`` the average
            buy price (:attr:`entry_price`), ``entry_fee`` the fees of every buy fill of
            the round trip (quote currency, including those of units already sold),
            ``entry_ts`` and ``entry_order_id`` those of the first buy. ``None`` when flat.
        """
        if self.is_flat:
            return None
        return Position(self.symbol, self.quantity, self.entry_price, self.entry_ts,
                        self.entry_fee, self.entry_order_id, stop_loss, take_profit)

    # -- fills -------------------------------------------------------------------------
    def _refuse(self, fill: Fill) -> Side:
        """Raise the one-line error for what is wrong with ``fill``; return its side if
        only the side's type was unusual (a plain ``"buy"`` / ``"sell"`` string)."""
        where = f"{self.symbol}: fill {fill.client_order_id}"
        if fill.symbol != self.symbol:
            raise ValueError(f"{where}: fill is for symbol {fill.symbol!r}")
        try:
            side = Side(fill.side)
        except ValueError:
            raise ValueError(f"{where}: side {fill.side!r} is not buy or sell") from None
        qty, price, fee = fill.quantity, fill.price, fill.fee
        for name, value in (("quantity", qty), ("price", price), ("fee", fee)):
            if not isinstance(value, Decimal) or not value.is_finite():
                raise ValueError(f"{where}: {name} {value!r} is not a finite Decimal")
        if qty <= 0:
            raise ValueError(f"{where}: quantity {qty} is not positive")
        if price <= 0:
            raise ValueError(f"{where}: price {price} is not positive")
        if fee < 0:
            raise ValueError(f"{where}: fee {fee} is negative")
        return side

    def apply(self, fill: Fill, reason: ExitReason | None = None) -> Trade | None:
        """Account one fill (or partial fill); return the trade it closes, if any.

        A buy adds its quantity, its notional ``price * quantity`` to :attr:`cost` and
        its fee to :attr:`fees` and :attr:`entry_fee`. A sell takes its quantity off,
        adds its notional to :attr:`proceeds` and its fee to :attr:`fees`. When a sell
        leaves exactly zero, the round trip's :class:`~tradewarden.domain.Trade` is
        returned and the holding is reset to flat for the next one. The fill is checked
        in full before anything changes: a refused fill leaves the holding as it was.

        Parameters
        ----------
        fill : Fill
            The execution: ``quantity`` (base units, > 0), ``price`` (quote currency per
            base unit, > 0) and ``fee`` (quote currency, >= 0), all finite ``Decimal``.
        reason : ExitReason, optional
            How the round trip ends, used only when this fill closes it; default
            ``ExitReason.SIGNAL``.

        Returns
        -------
        Trade or None
            On the fill that makes the position flat: ``trade_id`` and
            ``entry_order_id`` = the first buy's client order id, ``side`` ``"long"``,
            ``quantity`` = :attr:`bought` (base units), ``entry_ts`` of the first buy,
            ``entry_price`` = :attr:`entry_price`, ``exit_ts`` and ``exit_order_id`` of
            this (last) sell, ``exit_price`` = the average sell price (the price itself
            for one sell fill), ``fees`` = every fee of the round trip, and
            ``pnl = proceeds - cost - fees`` (quote currency, exact), and ``mae_price``
            / ``mfe_price`` = :attr:`low` / :attr:`high` with this fill's price (their
            shortest decimal repr). Otherwise ``None``.

        Raises
        ------
        ValueError
            One line naming the symbol and the fill's client order id, when the fill is
            of another symbol, its side is not buy/sell, its quantity, price or fee is not
            a finite Decimal, its quantity or price is not positive, its fee is negative,
            it sells more than is held (oversell), an amount needs more than 28
            significant digits, or ``reason`` is not an :class:`ExitReason`.
        """
        cid = fill.client_order_id
        qty, price, fee = fill.quantity, fill.price, fill.fee
        side = fill.side
        # The common case is checked with identity and type tests only; the messages
        # are built when something is wrong.
        # (a NaN or infinite Decimal fails the range tests: comparisons with NaN raise
        # InvalidOperation, caught here, and infinities are excluded by the bounds)
        try:
            ok = (fill.symbol == self.symbol and (side is _BUY_SIDE or side is Side.SELL)
                  and type(qty) is Decimal and type(price) is Decimal and type(fee) is Decimal
                  and _ZERO < qty < _INF and _ZERO < price < _INF and _ZERO <= fee < _INF)
        except InvalidOperation:
            ok = False
        if not ok:
            side = self._refuse(fill)
        if reason is None:
            close_reason = ExitReason.SIGNAL
        elif type(reason) is ExitReason:
            close_reason = reason
        else:
            try:
                close_reason = ExitReason(reason)
            except ValueError:
                raise ValueError(f"{self.symbol}: fill {cid}: exit reason {reason!r} is not an "
                                 "ExitReason") from None
        if side is Side.SELL and qty > self.quantity:
            raise ValueError(f"{self.symbol}: fill {cid}: oversell: selling {qty} with "
                             f"{self.quantity} held")

        # The two common cases, exactly as the general path below computes them: the
        # first buy of a round trip, and one sell that closes a position it opened.
        try:
            if side is _BUY_SIDE:
                if self.fills == 0:
                    notional = _MUL(price, qty)
                    self.quantity = self.bought = qty
                    self.cost = notional
                    self.fees = self.entry_fee = fee
                    self._buy_price = price
                    self.entry_ts, self.entry_order_id = fill.ts, cid
                    self.fills = 1
                    self.low = self.high = float(price)
                    return None
            elif self.sold == 0 and qty == self.quantity:
                proceeds = _MUL(price, qty)
                fees = _ADD(self.fees, fee)
                pnl = _SUB(_SUB(proceeds, self.cost), fees)
                p = float(price)
                trade = Trade(self.entry_order_id, self.symbol, "long", self.bought, self.entry_ts,
                              self.entry_price, fill.ts, price, fees, pnl, close_reason,
                              self.entry_order_id, cid, to_decimal(min(self.low, p)),
                              to_decimal(max(self.high, p)))
                self._reset()
                return trade
        except (Inexact, Overflow):
            raise ValueError(f"{self.symbol}: fill {cid}: amounts need more than 28 significant "
                             "digits; refusing to round them") from None

        # New totals first (exact, or refused); then assign, so a refusal changes nothing.
        # The first amount of a round trip is taken as is rather than added to zero, so
        # its exponent (its printed digits) is the fill's own.
        first = self.fills == 0
        try:
            notional = _EXACT.multiply(price, qty)
            fees = fee if first else _EXACT.add(self.fees, fee)
            if side is Side.BUY:
                start = self.bought == 0
                bought = qty if start else _EXACT.add(self.bought, qty)
                cost = notional if start else _EXACT.add(self.cost, notional)
                entry_fee = fee if start else _EXACT.add(self.entry_fee, fee)
                quantity = qty if first else _EXACT.add(self.quantity, qty)
            else:
                start = self.sold == 0
                sold = qty if start else _EXACT.add(self.sold, qty)
                proceeds = notional if start else _EXACT.add(self.proceeds, notional)
                quantity = _EXACT.subtract(self.quantity, qty)
                pnl = (_EXACT.subtract(_EXACT.subtract(proceeds, self.cost), fees)
                       if quantity == 0 else None)
        except (Inexact, Overflow):
            raise ValueError(f"{self.symbol}: fill {cid}: amounts need more than 28 significant digits; "
                             "refusing to round them") from None

        self.fills += 1
        self.fees = fees
        self.quantity = quantity
        p = float(price)
        if first:
            self.low = self.high = p
        else:
            self.low, self.high = min(self.low, p), max(self.high, p)
        if side is Side.BUY:
            if start:
                self._buy_price = price
            elif self._buy_price is not None and price != self._buy_price:
                self._buy_price = None
            if first:
                self.entry_ts = fill.ts
                self.entry_order_id = cid
            self.bought, self.cost, self.entry_fee = bought, cost, entry_fee
            return None
        if start:
            self._sell_price = price
        elif self._sell_price is not None and price != self._sell_price:
            self._sell_price = None
        self.sold, self.proceeds = sold, proceeds
        self.last_exit_order_id = cid
        if pnl is None:
            return None
        trade = Trade(self.entry_order_id, self.symbol, "long", self.bought, self.entry_ts,
                      self.entry_price, fill.ts, self.exit_price, self.fees, pnl, close_reason,
                      self.entry_order_id, cid, to_decimal(self.low), to_decimal(self.high))
        self._reset()
        return trade

    def _reset(self) -> None:
        """Make the holding flat, ready for the next round trip."""
        self.quantity = self.bought = self.cost = _ZERO
        self.sold = self.proceeds = self.fees = self.entry_fee = _ZERO
        self.entry_ts = self.entry_order_id = self.last_exit_order_id = None
        self.fills = 0
        self._buy_price = self._sell_price = None
        self.low, self.high = _INF_F, -_INF_F

    # -- persistence -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe snapshot that :meth:`from_dict` restores exactly.

        Returns
        -------
        dict
            ``version`` (int, :data:`SNAPSHOT_VERSION`), ``symbol``, the Decimal totals
            (``quantity``, ``bought``, ``sold``: base units; ``cost``, ``proceeds``,
            ``fees``, ``entry_fee``: quote currency) as strings that keep their exact
            digits, ``entry_ts`` (UTC epoch seconds or None), ``entry_order_id`` and
            ``last_exit_order_id`` (str or None), ``fills`` (int), ``buy_price`` /
            ``sell_price`` (str or None: the single price every buy / sell fill had), and
            ``low`` / ``high`` (float, or None when flat: the excursion extremes).
        """
        d: dict[str, Any] = {"version": SNAPSHOT_VERSION, "symbol": self.symbol}
        for name in _DECIMAL_FIELDS:
            d[name] = str(getattr(self, name))
        d.update(entry_ts=self.entry_ts, entry_order_id=self.entry_order_id,
                 last_exit_order_id=self.last_exit_order_id, fills=self.fills,
                 buy_price=None if self._buy_price is None else str(self._buy_price),
                 sell_price=None if self._sell_price is None else str(self._sell_price),
                 low=None if self.low == _INF_F else self.low,
                 high=None if self.high == -_INF_F else self.high)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Holding:
        """Restore a holding from a :meth:`to_dict` snapshot.

        Parameters
        ----------
        d : Mapping
            The snapshot, as :meth:`to_dict` returned it (after a JSON round trip).

        Returns
        -------
        Holding
            Equal to the one snapshotted, field for field and digit for digit.

        Raises
        ------
        ValueError
            One line naming the symbol and the field, when a field is missing or of the
            wrong type, an amount is not a finite non-negative number, the version is
            not :data:`SNAPSHOT_VERSION`, or the fields contradict each other
            (``quantity != bought - sold``, an open holding without entry, a flat one
            with fills).
        """
        if not isinstance(d, Mapping):
            # ValueError, not TypeError: a bad snapshot is bad input, one error type for callers
            raise ValueError(f"holding snapshot: expected a mapping, got {type(d).__name__}")  # noqa: TRY004
        symbol = d.get("symbol")
        if not isinstance(symbol, str) or not symbol:
            raise ValueError(f"holding snapshot: field 'symbol' is {symbol!r}, not a symbol")
        where = f"{symbol}: holding snapshot"
        if d.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"{where}: field 'version' is {d.get('version')!r}, "
                             f"expected {SNAPSHOT_VERSION}")
        h = cls(symbol)

        def amount(name: str, optional: bool = False) -> Decimal | None:
            raw = d.get(name)
            if raw is None and optional:
                return None
            if not isinstance(raw, str):
                raise ValueError(f"{where}: field {name!r} is {raw!r}, not a decimal string")  # noqa: TRY004
            try:
                value = Decimal(raw)
            except InvalidOperation:
                raise ValueError(f"{where}: field {name!r} is {raw!r}, not a number") from None
            if not value.is_finite() or value < 0:
                raise ValueError(f"{where}: field {name!r} is {raw!r}, not a finite "
                                 "non-negative number")
            return value

        def nullable(name: str, kind: type) -> Any:
            raw = d.get(name)
            if raw is not None and (not isinstance(raw, kind) or isinstance(raw, bool)):
                raise ValueError(f"{where}: field {name!r} is {raw!r}, not {kind.__name__} "
                                 "or null")
            return raw

        for name in _DECIMAL_FIELDS:
            setattr(h, name, amount(name))
        h.entry_ts = nullable("entry_ts", int)
        h.entry_order_id = nullable("entry_order_id", str)
        h.last_exit_order_id = nullable("last_exit_order_id", str)
        fills = d.get("fills")
        if not isinstance(fills, int) or isinstance(fills, bool) or fills < 0:
            raise ValueError(f"{where}: field 'fills' is {fills!r}, not a count")
        h.fills = fills
        h._buy_price = amount("buy_price", optional=True)
        h._sell_price = amount("sell_price", optional=True)
        # excursion extremes: absent from snapshots written before they were tracked
        for name, missing in (("low", _INF_F), ("high", -_INF_F)):
            raw = d.get(name)
            if raw is None:
                setattr(h, name, missing)
            elif isinstance(raw, (int, float)) and not isinstance(raw, bool) and 0 < raw < _INF_F:
                setattr(h, name, float(raw))
            else:
                raise ValueError(f"{where}: field {name!r} is {raw!r}, not a positive price or null")

        if h.quantity != h.bought - h.sold:
            raise ValueError(f"{where}: quantity {h.quantity} is not bought {h.bought} "
                             f"- sold {h.sold}")
        if h.is_flat and (h.fills or h.bought):
            raise ValueError(f"{where}: flat but {h.fills} fills recorded")
        if not h.is_flat and (h.entry_ts is None or h.entry_order_id is None or not h.fills):
            raise ValueError(f"{where}: holds {h.quantity} but has no entry "
                             "(entry_ts, entry_order_id, fills)")
        return h
