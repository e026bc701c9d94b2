"""The options desk: the engine's handler for short option positions (put writing).

The bar engine (:mod:`tradewarden.engine.engine`) trades a fixed set of spot
instruments, long only, and fills against bars. Options differ on each count: the
position is short, the contracts are chosen from each day's chain (they appear and
expire), and fills price against quotes, not bars. The desk handles them on the same
ports as the bar engine: the strategy's rules (:mod:`tradewarden.strategy.put_writer`)
propose, the risk rules for short options (:mod:`tradewarden.risk.options`) size or
refuse, the governor (:class:`~tradewarden.engine.ports.Governor`) authorises, the
broker port (:class:`~tradewarden.execution.base.Broker`: the simulated
:class:`~tradewarden.execution.sim_options.SimOptionsBroker` in replay, the IBKR
adapter in paper and live) fills, and every decision, order, fill, trade, equity mark
and fill snapshot goes to the ledger. Replay, paper and live run this same class.

One :meth:`OptionsDesk.step` per chain snapshot (end of day in replay; the daily
decision time in paper and live), in this order:

1. the venue's news since the last step (fills of orders still open) is applied;
2. every short put held is managed (:func:`~tradewarden.strategy.put_writer.manage_short_put`):
   expiry (worthless, assigned, or cash-settled), loss limit, profit target, days to
   expiry, else held; buy-backs are authorised by the governor and sent;
3. new puts are chosen (:func:`~tradewarden.strategy.put_writer.select_puts`), each
   sized by its margin and its loss at the loss limit
   (:func:`~tradewarden.risk.options.size_short_put`: margin utilisation of net
   liquidation capped, 40 % by default), authorised, and sold at the bid;
4. the book is marked (short puts at the snapshot's mid, shares at the underlying's
   price) and everything is committed in one transaction.

Units and bookkeeping
---------------------
- Orders sent to the venue count contracts; the ledger's quantities (orders, fills,
  trades) count shares of the deliverable (contracts x multiplier, 100), so every
  amount in the ledger is quantity x price in USD, as for spot instruments, and a
  trade's ``return_pct`` is its PnL over the credit received.
- A short put's trade has side ``short``: entry price the credit (USD per share), exit
  price what closing cost, PnL ``(entry - exit) x shares - fees``.
- Expiry: out of the money, the put closes at 0 (``expired``). In the money, a
  physically settled put (American-style equity options) is assigned: it closes at its
  intrinsic value ``strike - underlying`` and the shares are bought at the underlying's
  price (together: the strike, as the venue delivers them), recorded as an
  ``assigned`` exit and an entry of the shares with reason ``assignment``. A
  cash-settled put (European-style index options, SPX) closes at its intrinsic value
  in cash. Style decides: ``european`` → cash, otherwise shares. No commission on
  expiry or assignment is modelled.
- The fill snapshot (greeks, implied volatility, bid, ask, the underlying's price) is
  stored with every option fill in ``option_fill_snapshots``: in replay the chain row
  the fill priced from, live what the venue streamed at the fill
  (``broker.drain_option_snapshots()`` when the adapter has it).

Nothing here reads the wall clock: times come from the snapshot (``ts``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from typing import Any, Protocol

import pandas as pd

from tradewarden.domain import (
    Bar,
    ExitReason,
    Fill,
    Order,
    OrderRole,
    OrderStatus,
    OrderType,
    Side,
    Verdict,
)
from tradewarden.domain.instrument import to_decimal
from tradewarden.domain.options import OptionFillSnapshot, option_tick
from tradewarden.execution.base import OrderEvent, OrderEventKind, make_order_id
from tradewarden.risk.options import OptionRiskConfig, short_put_margin, size_short_put
from tradewarden.strategy.put_writer import (
    PutWriterParams,
    ShortPut,
    manage_short_put,
    select_puts,
)

__all__ = ["DeskCounts", "OptionsDesk", "StepReport"]

_ZERO = Decimal(0)

#: How each buy-back kind of the put writer ends the trade.
_EXIT_REASONS = {"expired_worthless": ExitReason.EXPIRED, "assigned": ExitReason.ASSIGNED,
                 "cash_settled": ExitReason.ASSIGNED, "loss_limit": ExitReason.LOSS_LIMIT,
                 "profit_target": ExitReason.PROFIT_TARGET,
                 "days_to_expiry": ExitReason.DAYS_TO_EXPIRY}


class _GovernorLike(Protocol):
    def authorize(self, symbol: str, action: str, detail: dict) -> Any: ...


@dataclass
class _Short:
    """A short put the desk holds (USD per share; ``contracts`` > 0)."""

    occ: str
    underlying: str
    strike: Decimal
    expiration: date
    contracts: int
    credit: Decimal
    entry_ts: int
    entry_order_id: str
    entry_fee: Decimal
    settlement: str                     # physical | cash
    multiplier: int = 100
    last_mark: Decimal | None = None    # the last mid, USD per share

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, (Decimal, date)) else v)
                for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> _Short:
        dec = {"strike", "credit", "entry_fee", "last_mark"}
        kw = {k: (None if v is None else Decimal(v)) if k in dec else v for k, v in d.items()}
        kw["expiration"] = date.fromisoformat(d["expiration"])
        return cls(**kw)


@dataclass
class _Stock:
    """Shares the desk holds (from assignment), USD per share."""

    symbol: str
    shares: Decimal
    price: Decimal
    entry_ts: int
    entry_order_id: str
    last: Decimal

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> _Stock:
        return cls(d["symbol"], Decimal(d["shares"]), Decimal(d["price"]), d["entry_ts"],
                   d["entry_order_id"], Decimal(d["last"]))


@dataclass
class DeskCounts:
    """What the desk has done (counts since the run started)."""

    steps: int = 0
    decisions: int = 0
    orders: int = 0
    fills: int = 0
    trades_opened: int = 0
    trades_closed: int = 0
    assignments: int = 0


@dataclass
class StepReport:
    """What one :meth:`OptionsDesk.step` decided (for logs and tests).

    Attributes
    ----------
    decisions : list of dict
        The decision rows written (``symbol``, ``action``, ``reason``, ``detail``).
    equity : Decimal
        Net liquidation after the step, USD.
    margin : Decimal
        Margin requirement of the short puts held, USD.
    """

    decisions: list[dict[str, Any]] = field(default_factory=list)
    equity: Decimal = _ZERO
    margin: Decimal = _ZERO


class OptionsDesk:
    """Write puts and manage them, one chain snapshot at a time (see the module notes).

    Parameters
    ----------
    run_id : str
    params : PutWriterParams
    risk : OptionRiskConfig
    broker : Broker
        Takes option orders in contracts (OCC symbols), prices USD per share.
    ledger : Ledger
        Needs ``write_columns``, ``write_rows``, ``write_orders``, ``update_orders``,
        ``write_fills``, ``write_trades``, ``write_events``, ``commit``.
    capital : Decimal
        Starting cash, USD.
    governor : Governor, optional
        Asked before every order (actions ``enter_short`` and ``exit``); ``None``:
        execute (replay).
    source : str
        Where the quotes come from, recorded with each fill snapshot (``chain:<file>``
        in replay, the adapter's own source live).
    fee_per_contract : Decimal
        Commission per contract each way, for sizing the loss at the stop (USD; the
        venue charges what it charges).
    save_state : callable, optional
        ``save_state(snapshot)`` writes the desk's state into the current ledger batch
        (paper and live: an ``engine_state`` row). Called before every commit that
        precedes sending an order and at the end of every step, so a restart knows every
        order it may have sent (:meth:`recover` settles them with the venue).
    """

    def __init__(self, *, run_id: str, params: PutWriterParams, risk: OptionRiskConfig,
                 broker: Any, ledger: Any, capital: Decimal,
                 governor: _GovernorLike | None = None, source: str = "chain",
                 fee_per_contract: Decimal = Decimal("0.65"), multiplier: int = 100,
                 save_state: Any = None) -> None:
        if capital <= 0:
            raise ValueError(f"capital {capital} must be positive")
        self.run_id = run_id
        self.params = params
        self.risk = risk
        self.broker = broker
        self.ledger = ledger
        self.governor = governor
        self.source = source
        self.fee_per_contract = fee_per_contract
        self.multiplier = multiplier
        self.capital = capital
        self.cash = capital
        self.shorts: dict[str, _Short] = {}
        self.stock: dict[str, _Stock] = {}
        self.counts = DeskCounts()
        self._seq = 0                  # decision sequence
        self._fill_seq = 0
        self._event_seq = 0
        self._equity_seq = 0
        self._open: dict[str, tuple[Order, int, dict[str, Any]]] = {}   # cid -> order, seq, why
        self._rows: list[dict[str, Any]] = []
        self._snapshots: dict[str, OptionFillSnapshot] = {}             # cid -> at the fill
        self._order_run: dict[str, str] = {}    # an order journaled by an earlier run
        self._booked: dict[str, Decimal] = {}    # contracts booked of each open order
        self.save_state = save_state
        self.last_equity = capital

    # ------------------------------------------------------------------ state
    def snapshot(self) -> dict[str, Any]:
        """Return the desk's state as JSON-ready values (stored with every commit in
        paper and live; :meth:`restore` reloads it after a restart)."""
        return {"cash": str(self.cash), "capital": str(self.capital),
                "shorts": [s.to_dict() for s in self.shorts.values()],
                "stock": [s.to_dict() for s in self.stock.values()],
                "seq": self._seq, "fill_seq": self._fill_seq, "event_seq": self._event_seq,
                "equity_seq": self._equity_seq, "counts": dict(self.counts.__dict__),
                "open": {c: {"order": _order_dict(o), "seq": q, "why": w,
                             "run_id": self._order_run.get(c, self.run_id),
                             "booked": str(self._booked.get(c, _ZERO))}
                         for c, (o, q, w) in self._open.items()},
                "last_equity": str(self.last_equity)}

    def restore(self, state: dict[str, Any]) -> None:
        """Reload a :meth:`snapshot`."""
        self.cash = Decimal(state["cash"])
        self.shorts = {d["occ"]: _Short.from_dict(d) for d in state["shorts"]}
        self.stock = {d["symbol"]: _Stock.from_dict(d) for d in state["stock"]}
        self._seq, self._fill_seq = state["seq"], state["fill_seq"]
        self._event_seq, self._equity_seq = state["event_seq"], state["equity_seq"]
        self.counts = DeskCounts(**state["counts"])
        self._open = {c: (_order_from(v["order"]), v["seq"], v["why"])
                      for c, v in state["open"].items()}
        self._order_run = {c: v.get("run_id", self.run_id) for c, v in state["open"].items()}
        self._booked = {c: Decimal(v.get("booked", "0")) for c, v in state["open"].items()}
        self.last_equity = Decimal(state["last_equity"])

    # ------------------------------------------------------------------ stepping
    def step(self, ts: int, chain: pd.DataFrame, *, quote_date: date,
             underlying_price: Decimal, style: str | None = None) -> StepReport:
        """Decide on one chain snapshot and commit everything it did.

        Parameters
        ----------
        ts : int
            The snapshot's time, UTC epoch seconds (decisions, orders and fills carry it).
        chain : pandas.DataFrame
            The snapshot's rows (an :class:`~tradewarden.data.options.OptionChain`
            frame; rows of other dates or underlyings are ignored).
        quote_date : datetime.date
        underlying_price : Decimal
            The underlying's price at the snapshot, USD (its close in end-of-day data):
            marks the shares and settles expiries.
        style : {"american", "european"}, optional
            Exercise style of the underlying's options (default: the chain's ``style``
            column; ``european`` settles in cash).

        Returns
        -------
        StepReport
        """
        p = self.params
        rows = _rows_of(chain, quote_date, p.underlying)
        if style is None:
            styles = chain["style"].dropna().unique() if "style" in chain else []
            style = str(styles[0]) if len(styles) else "american"
        quotes = {occ: (_dec_or_none(r["bid"]), _dec_or_none(r["ask"])) for occ, r in rows.items()}
        if hasattr(self.broker, "set_quotes"):
            from tradewarden.execution.sim_options import OptionQuoteSnapshot
            self.broker.set_quotes(ts, {o: OptionQuoteSnapshot(*q) for o, q in quotes.items()})
        report = StepReport()
        self._mark(rows, underlying_price)      # today's marks before sizing anything
        for cid in sorted(self._open):          # what did not fill since: decided afresh
            self._apply(self.broker.cancel(cid, ts, "a new snapshot: decided afresh"), rows, ts)
        self._apply(self._news(ts, float(underlying_price)), rows, ts)
        for st in self.stock.values():
            if st.symbol == p.underlying:
                st.last = underlying_price
        # 2. manage what is held
        for occ in sorted(self.shorts):
            self._manage(self.shorts[occ], rows.get(occ), quote_date, ts, underlying_price,
                         report)
        # 3. write new puts
        held = frozenset(self.shorts) | {o.symbol for o, _, _ in self._open.values()}
        candidates = select_puts(chain, p, quote_date=quote_date, held=set(held),
                                 multiplier=self.multiplier)
        if not candidates:
            room = p.max_positions - len(held)
            self._decide(report, ts, p.underlying, "hold",
                         "max_positions" if room <= 0 else "no_candidate", float(underlying_price),
                         {"held": sorted(held), "underlying_price": str(underlying_price)})
        for c in candidates:
            self._enter(c, rows[c.occ_symbol], ts, style, report)
        # 4. mark and commit
        equity, margin = self._mark(rows, underlying_price)
        report.equity, report.margin = equity, margin
        for d in report.decisions:
            d.setdefault("equity", float(equity))
        self._flush(ts, equity)
        self.counts.steps += 1
        return report

    def recover(self, ts: int) -> list[str]:
        """Settle the orders a restored state still holds open with the venue.

        After a restart the desk may have journaled orders whose outcome it never saw
        (killed after sending, or before the fill came back). Each is looked up by its
        client order id: one the venue never received is recorded ``rejected`` (not
        sent before the restart: nothing to undo), one it has is brought up to date from
        its fills (booked as they would have been) and, if still working, followed from
        then on (``broker.adopt``). Commits.

        Parameters
        ----------
        ts : int
            Now, UTC epoch seconds.

        Returns
        -------
        list of str
            One line per order settled, for the log.
        """
        out: list[str] = []
        filled: dict[str, Decimal] = {}
        for cid in sorted(self._open):
            order, _seq, _why = self._open[cid]
            venue = self.broker.lookup(cid)
            if venue is None:
                events = [OrderEvent(order, OrderEventKind.REJECTED, ts,
                                     "not sent before the restart")]
                out.append(f"{cid}: never reached the venue; recorded rejected")
            else:
                skip = self._booked.get(cid, _ZERO)     # the earliest fills, booked already
                new = []
                for f in venue.fills:
                    if skip >= f.quantity:
                        skip -= f.quantity
                    else:
                        new.append(f)
                events = [OrderEvent(order, OrderEventKind.PARTIALLY_FILLED, f.ts, fill=f)
                          for f in new]
                if events and venue.status is OrderStatus.FILLED:
                    events[-1] = OrderEvent(order, OrderEventKind.FILLED, events[-1].ts,
                                            fill=events[-1].fill)
                elif not venue.status.is_open:
                    kind = {OrderStatus.CANCELLED: OrderEventKind.CANCELLED,
                            OrderStatus.EXPIRED: OrderEventKind.EXPIRED}.get(
                                venue.status, OrderEventKind.REJECTED)
                    events.append(OrderEvent(order, kind, ts, venue.reason))
                filled[cid] = venue.filled
                out.append(f"{cid}: {venue.status.value} at the venue, {venue.filled} filled")
            self._apply(events, {}, ts)
        if self._open and hasattr(self.broker, "adopt"):
            self.broker.adopt({c: o for c, (o, _q, _w) in self._open.items()},
                              {c: filled.get(c, _ZERO) for c in self._open})
        if self.save_state is not None:
            self.save_state(self.snapshot())
        self.ledger.commit()
        return out

    def _news(self, ts: int, px: float) -> list[OrderEvent]:
        """Return what the venue reported since the last call for the underlying and
        every symbol with an order open (``Broker.process`` answers per symbol)."""
        out: list[OrderEvent] = []
        for sym in sorted({self.params.underlying} | {o.symbol for o, _q, _w in
                                                      self._open.values()}):
            out += self.broker.process(Bar(sym, ts, px, px, px, px, 0.0, ts + 1))
        return out

    def poll(self, ts: int) -> int:
        """Apply what the venue reported since the last call (fills of orders still open)
        and commit it; return how many orders are still open.

        Parameters
        ----------
        ts : int
            Now, UTC epoch seconds (the mode's clock).
        """
        self._apply(self._news(ts, float(self._underlying_last or 0) or 1.0), {}, ts)
        if self.save_state is not None:         # the fills and the state they make: one commit
            self.save_state(self.snapshot())
        self.ledger.commit()
        return len(self._open)

    def close_all(self, ts: int, chain: pd.DataFrame, *, quote_date: date,
                  underlying_price: Decimal) -> StepReport:
        """Close every position at the snapshot (end of data): buy back each short put
        at its ask (held at its last mark when it has no quote) and sell the shares at
        ``underlying_price``, then commit."""
        rows = _rows_of(chain, quote_date, self.params.underlying)
        report = StepReport()
        for occ in sorted(self.shorts):
            s = self.shorts[occ]
            row = rows.get(occ)
            ask = None if row is None else _dec_or_none(row["ask"])
            price = ask if ask is not None else (s.last_mark or s.credit)
            self._buy_back(s, price, ExitReason.END_OF_DATA, "end_of_data", ts, row, report,
                           send=ask is not None)
        for sym in sorted(self.stock):
            st = self.stock.pop(sym)
            seq = self._decide(report, ts, sym, "exit", "end_of_data", float(underlying_price),
                               {"shares": str(st.shares)})
            cid = make_order_id(self.run_id, sym, seq, OrderRole.EXIT)
            order = Order(cid, sym, Side.SELL, OrderType.MARKET, st.shares, OrderRole.EXIT, ts,
                          decision_seq=seq, status=OrderStatus.FILLED, updated_ts=ts)
            fill = Fill(cid, sym, Side.SELL, st.shares, underlying_price, _ZERO, "taker", ts,
                        underlying_price, OrderRole.EXIT)
            self.cash += st.shares * underlying_price
            self._book_order(order, [fill])
            pnl = (underlying_price - st.price) * st.shares
            self._trade(st.entry_order_id, sym, "long", st.shares, st.entry_ts, st.price, ts,
                        underlying_price, _ZERO, pnl, ExitReason.END_OF_DATA, cid)
        equity, margin = self._mark(rows, underlying_price)
        report.equity, report.margin = equity, margin
        for d in report.decisions:
            d.setdefault("equity", float(equity))
        self._flush(ts, equity)
        return report

    # ------------------------------------------------------------------ managing
    def _manage(self, s: _Short, row: dict[str, Any] | None, quote_date: date, ts: int,
                underlying_price: Decimal, report: StepReport) -> None:
        ask = None if row is None else _dec_or_none(row["ask"])
        position = ShortPut(s.occ, s.strike, s.expiration, s.credit, s.contracts, s.multiplier)
        verdict = manage_short_put(position, quote_date=quote_date, ask=ask,
                                   underlying_close=underlying_price, params=self.params)
        if verdict is None:
            self._decide(report, ts, s.occ, "hold", "held", _mid(row), {
                "ask": _text(ask), "credit": str(s.credit)})
            return
        if verdict.kind == "expired_worthless":
            self._settle(s, _ZERO, ExitReason.EXPIRED, "expired_worthless", ts, underlying_price,
                         row, report)
        elif verdict.kind == "assigned":
            intrinsic = max(_ZERO, s.strike - underlying_price)
            kind = "cash_settled" if s.settlement == "cash" else "assigned"
            self._settle(s, intrinsic, ExitReason.ASSIGNED, kind, ts, underlying_price, row,
                         report)
        else:
            self._buy_back(s, verdict.price, _EXIT_REASONS[verdict.kind], verdict.kind, ts, row,
                           report, send=True)

    def _settle(self, s: _Short, price: Decimal, reason: ExitReason, why: str, ts: int,
                underlying_price: Decimal, row: dict[str, Any] | None, report: StepReport) -> None:
        """Book an expiry: worthless, cash-settled, or assigned (shares delivered)."""
        shares = Decimal(s.contracts * s.multiplier)
        seq = self._decide(report, ts, s.occ, "exit", why, float(price), {
            "strike": str(s.strike), "underlying_price": str(underlying_price),
            "intrinsic": str(price), "credit": str(s.credit)})
        cid = make_order_id(self.run_id, _compact(s.occ), seq, OrderRole.EXIT)
        order = Order(cid, s.occ, Side.BUY, OrderType.MARKET, shares, OrderRole.EXIT, ts,
                      decision_seq=seq, status=OrderStatus.FILLED, updated_ts=ts,
                      status_reason=why)
        fill = Fill(cid, s.occ, Side.BUY, shares, price, _ZERO, "expiry", ts, price,
                    OrderRole.EXIT)
        self.cash -= shares * price
        self._book_order(order, [fill], row=row)
        self._close_short(s, price, _ZERO, ts, reason, cid)
        if why == "assigned":
            self.counts.assignments += 1
            sym = s.underlying
            aseq = self._decide(report, ts, sym, "enter_long", "assignment", float(underlying_price),
                                {"from": s.occ, "strike": str(s.strike), "shares": str(shares)})
            acid = make_order_id(self.run_id, sym, aseq, OrderRole.ENTRY)
            aorder = Order(acid, sym, Side.BUY, OrderType.MARKET, shares, OrderRole.ENTRY, ts,
                           decision_seq=aseq, status=OrderStatus.FILLED, updated_ts=ts,
                           status_reason="assignment")
            afill = Fill(acid, sym, Side.BUY, shares, underlying_price, _ZERO, "assigned", ts,
                         s.strike, OrderRole.ENTRY)
            self.cash -= shares * underlying_price
            self._book_order(aorder, [afill])
            held = self.stock.get(sym)
            if held is None:
                self.stock[sym] = _Stock(sym, shares, underlying_price, ts, acid, underlying_price)
            else:
                total = held.shares + shares
                held.price = (held.price * held.shares + underlying_price * shares) / total
                held.shares = total
            self.counts.trades_opened += 1

    def _buy_back(self, s: _Short, price: Decimal, reason: ExitReason, why: str, ts: int,
                  row: dict[str, Any] | None, report: StepReport, *, send: bool) -> None:
        detail = {"ask": str(price), "credit": str(s.credit), "contracts": s.contracts}
        if self.governor is not None:
            auth = self.governor.authorize(s.occ, "exit", dict(detail, reason=why))
            if auth.verdict is not Verdict.EXECUTE:
                self._decide(report, ts, s.occ, "queued" if auth.verdict is Verdict.QUEUE
                             else "blocked", f"governor_{auth.verdict.value}", float(price),
                             dict(detail, governor=auth.reason))
                return
        seq = self._decide(report, ts, s.occ, "exit", why, float(price), detail)
        if not send:        # no quote to trade against: close at the mark, recorded as such
            cid = make_order_id(self.run_id, _compact(s.occ), seq, OrderRole.EXIT)
            shares = Decimal(s.contracts * s.multiplier)
            order = Order(cid, s.occ, Side.BUY, OrderType.MARKET, shares, OrderRole.EXIT, ts,
                          decision_seq=seq, status=OrderStatus.FILLED, updated_ts=ts,
                          status_reason="closed at the last mark: no quote")
            fill = Fill(cid, s.occ, Side.BUY, shares, price, _ZERO, "mark", ts, price,
                        OrderRole.EXIT)
            self.cash -= shares * price
            self._book_order(order, [fill], row=row)
            self._close_short(s, price, _ZERO, ts, reason, cid)
            return
        cid = make_order_id(self.run_id, _compact(s.occ), seq, OrderRole.EXIT)
        order = Order(cid, s.occ, Side.BUY, OrderType.LIMIT, Decimal(s.contracts), OrderRole.EXIT,
                      ts, price=price, decision_seq=seq)
        self._send(order, seq, {"kind": "exit", "reason": reason.value}, row, ts)

    def _close_short(self, s: _Short, price: Decimal, fee: Decimal, ts: int, reason: ExitReason,
                     exit_cid: str) -> None:
        shares = Decimal(s.contracts * s.multiplier)
        fees = s.entry_fee + fee
        pnl = (s.credit - price) * shares - fees
        # MAE / MFE are left out: the ledger's excursion columns follow the long
        # convention (adverse = the lowest price); a short's would read inverted
        self._trade(s.entry_order_id, s.occ, "short", shares, s.entry_ts, s.credit, ts, price,
                    fees, pnl, reason, exit_cid)
        del self.shorts[s.occ]

    # ------------------------------------------------------------------ entering
    def _enter(self, c: Any, row: dict[str, Any], ts: int, style: str, report: StepReport) -> None:
        equity, margin = self._mark_now()
        sizing = size_short_put(net_liquidation=equity, margin_in_use=margin,
                                margin_per_contract=c.margin, credit=c.bid,
                                loss_multiple=to_decimal(self.params.loss_multiple),
                                config=self.risk, multiplier=self.multiplier,
                                fee_per_contract=self.fee_per_contract)
        detail = {"strike": str(c.strike), "expiration": c.expiration.isoformat(), "dte": c.dte,
                  "bid": str(c.bid), "ask": str(c.ask), "delta": c.delta, "iv": c.iv,
                  "annual_return_on_margin": round(c.annual_return_on_margin, 6),
                  "sizing": sizing.detail}
        if not sizing.approved:
            self._decide(report, ts, c.occ_symbol, "rejected", sizing.reason, float(c.bid), detail)
            return
        detail["contracts"] = sizing.contracts
        if self.governor is not None:
            auth = self.governor.authorize(c.occ_symbol, "enter_short", dict(detail))
            if auth.verdict is not Verdict.EXECUTE:
                self._decide(report, ts, c.occ_symbol, "queued" if auth.verdict is Verdict.QUEUE
                             else "blocked", f"governor_{auth.verdict.value}", float(c.bid),
                             dict(detail, governor=auth.reason))
                return
        seq = self._decide(report, ts, c.occ_symbol, "enter_short", "put_candidate", float(c.bid),
                           detail)
        cid = make_order_id(self.run_id, _compact(c.occ_symbol), seq, OrderRole.ENTRY)
        price = _floor_tick(c.bid)
        order = Order(cid, c.occ_symbol, Side.SELL, OrderType.LIMIT, Decimal(sizing.contracts),
                      OrderRole.ENTRY, ts, price=price, decision_seq=seq)
        self._send(order, seq, {"kind": "entry", "underlying": self.params.underlying,
                                "strike": str(c.strike), "expiration": c.expiration.isoformat(),
                                "settlement": "cash" if style == "european" else "physical"},
                   row, ts)

    # ------------------------------------------------------------------ the venue
    def _send(self, order: Order, seq: int, why: dict[str, Any], row: dict[str, Any] | None,
              ts: int) -> None:
        """Journal the order, send it, and apply what the venue answered."""
        self._open[order.client_order_id] = (order, seq, why)
        self.ledger.write_orders(self.run_id, [self._ledger_order(order)])
        if self.save_state is not None:
            self.save_state(self.snapshot())
        self.ledger.commit()            # journaled, with the state knowing it, before it is sent
        self.counts.orders += 1
        events = self.broker.submit(order)
        self._apply(events, {order.symbol: row} if row is not None else {}, ts)

    def _apply(self, events: list[OrderEvent], rows: dict[str, Any], ts: int) -> None:
        """Apply order events: status changes, and fills to the book."""
        live = {}
        if hasattr(self.broker, "drain_option_snapshots"):
            for cid, _exec_id, snap in self.broker.drain_option_snapshots():
                live[cid] = snap
        self._snapshots.update(live)
        for e in events:
            cid = e.order.client_order_id
            if cid not in self._open:
                continue
            order, seq, why = self._open[cid]
            order.status = e.status
            order.status_reason = e.reason
            order.updated_ts = e.ts
            self.ledger.update_orders(self._order_run.get(cid, self.run_id),
                                      [(cid, e.status.value, e.reason, e.ts)])
            if e.fill is not None:
                self._filled(order, e.fill, why, rows.get(order.symbol))
            if not order.status.is_open:
                del self._open[cid]
                self._order_run.pop(cid, None)
                self._booked.pop(cid, None)

    def _filled(self, order: Order, fill: Fill, why: dict[str, Any],
                row: dict[str, Any] | None) -> None:
        m = self.multiplier
        if order.status.is_open:
            self._booked[order.client_order_id] = (self._booked.get(order.client_order_id, _ZERO)
                                                   + fill.quantity)
        shares = fill.quantity * m
        book = fill._replace(quantity=shares)
        self._fill_seq += 1
        self.ledger.write_fills(self.run_id, [(self._fill_seq, book)])
        self.counts.fills += 1
        snap = self._snapshots.pop(order.client_order_id, None)
        if snap is None and row is not None:
            snap = OptionFillSnapshot(order.symbol, fill.ts, _dec_or_none(row["bid"]),
                                      _dec_or_none(row["ask"]),
                                      _dec_or_none(row["underlying_price"]),
                                      float(row["iv"]), float(row["delta"]), float(row["gamma"]),
                                      float(row["theta"]), float(row["vega"]),
                                      f"chain:{self.source}")
        if snap is not None:
            r = snap.to_row()
            self.ledger.write_rows("option_fill_snapshots", {
                "run_id": [self.run_id], "fill_seq": [self._fill_seq],
                **{k: [v] for k, v in r.items()}})
        if order.side is Side.SELL:             # a short put opened (or added to)
            self.cash += shares * fill.price - fill.fee
            held = self.shorts.get(order.symbol)
            if held is None:
                exp = date.fromisoformat(why["expiration"])
                self.shorts[order.symbol] = _Short(
                    order.symbol, why["underlying"], Decimal(why["strike"]), exp,
                    int(fill.quantity), fill.price, fill.ts, order.client_order_id, fill.fee,
                    why["settlement"], m, last_mark=fill.reference_price)
                self.counts.trades_opened += 1
            else:
                total = held.contracts + int(fill.quantity)
                held.credit = (held.credit * held.contracts + fill.price * fill.quantity) / total
                held.contracts, held.entry_fee = total, held.entry_fee + fill.fee
        else:                                   # a buy-back
            self.cash -= shares * fill.price + fill.fee
            held = self.shorts.get(order.symbol)
            if held is None:
                return
            bought = int(fill.quantity)
            if bought >= held.contracts:
                self._close_short(held, fill.price, fill.fee, fill.ts,
                                  ExitReason(why.get("reason", "signal")), order.client_order_id)
            else:                               # partly bought back: the rest stays short
                held.contracts -= bought
                held.entry_fee += fill.fee

    # ------------------------------------------------------------------ records
    def _ledger_order(self, order: Order) -> Order:
        return replace(order, quantity=order.quantity * self.multiplier)

    def _book_order(self, order: Order, fills: list[Fill],
                    row: dict[str, Any] | None = None) -> None:
        """Record an order the desk booked without a venue (expiry, assignment, the end
        of data) and its fills (quantities already in shares)."""
        self.ledger.write_orders(self.run_id, [order])
        for f in fills:
            self._fill_seq += 1
            self.ledger.write_fills(self.run_id, [(self._fill_seq, f)])
            self.counts.fills += 1

    def _trade(self, trade_id: str, symbol: str, side: str, qty: Decimal, entry_ts: int,
               entry: Decimal, exit_ts: int, exit_: Decimal, fees: Decimal, pnl: Decimal,
               reason: ExitReason, exit_cid: str, *, mae: Decimal | None = None,
               mfe: Decimal | None = None) -> None:
        from tradewarden.domain import Trade
        self.ledger.write_trades(self.run_id, [Trade(trade_id, symbol, side, qty, entry_ts, entry,
                                                     exit_ts, exit_, fees, pnl, reason, trade_id,
                                                     exit_cid, mae, mfe)])
        self.counts.trades_closed += 1

    def _decide(self, report: StepReport, ts: int, symbol: str, action: str, reason: str,
                close: float | None, detail: dict[str, Any]) -> int:
        seq = self._seq
        self._seq += 1
        row = {"seq": seq, "ts": ts, "symbol": symbol, "action": action, "reason": reason,
               "state": "open" if symbol in self.shorts or symbol in self.stock else "flat",
               "close": close, "detail": detail}
        self._rows.append(row)
        report.decisions.append(row)
        self.counts.decisions += 1
        return seq

    def _mark_now(self) -> tuple[Decimal, Decimal]:
        """Return net liquidation and the short puts' margin from the last marks (USD)."""
        liab = sum((s.last_mark or s.credit) * s.contracts * s.multiplier
                   for s in self.shorts.values())
        shares = sum(st.shares * st.last for st in self.stock.values())
        margin = sum((s.contracts * short_put_margin(s.strike, self._underlying_last or s.strike,
                                                     s.last_mark or s.credit, s.multiplier)
                      for s in self.shorts.values()), _ZERO)
        return self.cash - liab + shares, margin

    #: The underlying's price at the latest snapshot (USD), for margin.
    _underlying_last: Decimal | None = None

    def _mark(self, rows: dict[str, dict[str, Any]], underlying_price: Decimal
              ) -> tuple[Decimal, Decimal]:
        self._underlying_last = underlying_price
        for s in self.shorts.values():
            row = rows.get(s.occ)
            if row is not None:
                bid, ask = _dec_or_none(row["bid"]), _dec_or_none(row["ask"])
                if bid is not None and ask is not None:
                    s.last_mark = (bid + ask) / 2
                elif ask is not None:
                    s.last_mark = ask
        equity, margin = self._mark_now()
        self.last_equity = equity
        return equity, margin

    def _flush(self, ts: int, equity: Decimal) -> None:
        if self._rows:
            n = len(self._rows)
            self.ledger.write_columns("decisions", {
                "run_id": [self.run_id] * n, "seq": [r["seq"] for r in self._rows],
                "ts": [r["ts"] for r in self._rows], "symbol": [r["symbol"] for r in self._rows],
                "action": [r["action"] for r in self._rows],
                "reason": [r["reason"][:64] for r in self._rows],
                "state": [r["state"] for r in self._rows],
                "close": [r["close"] for r in self._rows],
                "equity": [r.get("equity", float(equity)) for r in self._rows],
                "x1": [None] * n, "x2": [None] * n, "x3": [None] * n, "x4": [None] * n,
                "detail": [json.dumps(r["detail"], sort_keys=True, default=str)
                           for r in self._rows]})
            self._rows = []
        self._equity_seq += 1
        if self.save_state is not None:
            self.save_state(self.snapshot())
        self.ledger.write_columns("equity", {
            "run_id": [self.run_id], "seq": [self._equity_seq], "account": ["portfolio"],
            "ts": [ts], "cash": [float(self.cash)], "equity": [float(equity)]})
        self.ledger.commit()


def _rows_of(chain: pd.DataFrame, quote_date: date, underlying: str) -> dict[str, dict[str, Any]]:
    """Return the snapshot's rows of ``underlying`` by OCC symbol."""
    if chain.empty:
        return {}
    day = pd.Timestamp(quote_date)
    f = chain[(chain["quote_date"] == day) & (chain["underlying"] == underlying)]
    cols = ["occ_symbol", "bid", "ask", "underlying_price", "iv", "delta", "gamma", "theta",
            "vega", "strike", "expiration"]
    return {r["occ_symbol"]: r for r in f[cols].to_dict("records")}


def _dec_or_none(x: Any) -> Decimal | None:
    if x is None:
        return None
    if isinstance(x, Decimal):
        return x
    f = float(x)
    return None if f != f else to_decimal(f)


def _text(x: Decimal | None) -> str | None:
    return None if x is None else str(x)


def _mid(row: dict[str, Any] | None) -> float | None:
    if row is None:
        return None
    return (float(row["bid"]) + float(row["ask"])) / 2


def _compact(occ: str) -> str:
    """Return an OCC symbol without its padding spaces (for client order ids)."""
    return occ.replace(" ", "")


def _floor_tick(price: Decimal) -> Decimal:
    """Round a sell limit down to the option tick (never asks more than the bid)."""
    tick = option_tick(price)
    return (price / tick).to_integral_value(rounding="ROUND_FLOOR") * tick


def _order_dict(o: Order) -> dict[str, Any]:
    return {"client_order_id": o.client_order_id, "symbol": o.symbol, "side": o.side.value,
            "type": o.type.value, "quantity": str(o.quantity), "role": o.role.value,
            "created_ts": o.created_ts, "price": _text(o.price), "decision_seq": o.decision_seq,
            "status": o.status.value}


def _order_from(d: dict[str, Any]) -> Order:
    return Order(d["client_order_id"], d["symbol"], Side(d["side"]), OrderType(d["type"]),
                 Decimal(d["quantity"]), OrderRole(d["role"]), d["created_ts"],
                 price=None if d["price"] is None else Decimal(d["price"]),
                 decision_seq=d["decision_seq"], status=OrderStatus(d["status"]))
