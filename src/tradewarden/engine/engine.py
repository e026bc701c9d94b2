"""The TradingEngine: the one tick path shared by replay, paper and live.

For every bar of every symbol, in timestamp order (ties by symbol order):

0. fail closed: an entry while halted, paused or on stale data is ``blocked``;
1. ``broker.process(bar)``: fills, bracket take-profit / stop-loss triggers;
2. the strategy's decision for the bar (``hold`` / ``enter_long`` / ``exit``);
3. ``risk.evaluate_entry``: sized order or rejection;
4. ``governor.authorize``: execute, queue for approval, or monitor only;
5. the decision is recorded (always, before acting);
6. ``broker.submit`` and the order recorded;
7. fills update the accounts; round trips end in :meth:`TradingEngine.finalize_exit`.

Bars arrive in chunks (a whole file in replay, one bar in live). Strategies compute
their vectorised frame over ``warmup`` bars of history plus the chunk. The per-bar
loop works on plain Python lists and appends one packed integer per decision; the
chunk's decisions, equity marks, orders, fills and trades go to the ledger in one
batch per chunk, never one statement per bar.

Position state per symbol: flat → entry_pending → open → exit_pending → flat.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from decimal import Decimal
from heapq import heappop, heappush
from typing import Any, Protocol

import numpy as np
import orjson
import pyarrow as pa

from tradewarden.domain import (
    BarSeries,
    ExitReason,
    Fill,
    Instrument,
    Order,
    OrderRole,
    OrderStatus,
    OrderType,
    Position,
    PositionState,
    Side,
    Trade,
    to_decimal,
)
from tradewarden.engine.clock import ReplayClock
from tradewarden.execution import OrderUpdate, SimBroker, make_order_id
from tradewarden.risk import RiskManager
from tradewarden.strategy import SignalFrame, Strategy

_EXIT_REASON = {OrderRole.STOP_LOSS: ExitReason.STOP_LOSS, OrderRole.TAKE_PROFIT: ExitReason.TAKE_PROFIT}

# Packed decision code: (reason_id << 8) | (state << 4) | action
HOLD, ENTER, EXIT, REJECTED, BLOCKED, QUEUED, MONITORED = range(7)
ACTIONS = ("hold", "enter_long", "exit", "rejected", "blocked", "queued", "monitored")
FLAT, ENTRY_PENDING, OPEN, EXIT_PENDING = range(4)
STATES = tuple(s.value for s in (PositionState.FLAT, PositionState.ENTRY_PENDING,
                                 PositionState.OPEN, PositionState.EXIT_PENDING))


class LedgerSink(Protocol):
    """What the engine writes to (``tradewarden.ledger.Ledger`` implements it)."""

    def write_columns(self, table: str, columns: dict[str, Any]) -> None:
        """Append a columnar batch (Arrow or NumPy arrays) to ``decisions`` or ``equity``."""

    def write_orders(self, run_id: str, orders: list[Order]) -> None:
        """Insert orders in their current state."""

    def update_orders(self, run_id: str, updates: list[tuple[str, str, str, int]]) -> None:
        """Apply ``(client_order_id, status, reason, ts)`` changes to orders written earlier."""

    def write_fills(self, run_id: str, fills: list[tuple[int, Fill]]) -> None:
        """Insert ``(fill_seq, Fill)`` pairs."""

    def write_trades(self, run_id: str, trades: list[Trade]) -> None:
        """Insert closed round trips."""

    def write_events(self, run_id: str, events: list[tuple[int, int | None, str, str | None, str]]) -> None:
        """Insert ``(seq, ts, kind, symbol, message)`` events."""

    def commit(self) -> None:
        """Make the batches written since the last commit durable, as one transaction."""


class Governor(Protocol):
    """Graduated-autonomy gate (see ``tradewarden.agent.governor``)."""

    def authorize(self, symbol: str, action: str, detail: dict) -> Any:
        """Return an authorization whose ``verdict`` is ``execute``, ``queue`` or ``monitor``."""


@dataclass(slots=True)
class _Account:
    name: str
    cash: Decimal
    peak: float
    symbols: list["_Sym"] = field(default_factory=list)
    cash_f: float = 0.0

    def add_cash(self, amount: Decimal) -> None:
        """Add ``amount`` (quote currency, negative to debit) and refresh the float mirror."""
        self.cash += amount
        self.cash_f = float(self.cash)


@dataclass(slots=True)
class _Sym:
    idx: int
    name: str
    inst: Instrument
    acct: int
    state: int = FLAT
    active: bool = False
    qty: float = 0.0
    last_close: float = 0.0
    position: Position | None = None
    tail: BarSeries | None = None
    levels: tuple[Decimal | None, Decimal | None] = (None, None)  # bracket (stop-loss, take-profit)
    band_lo: float = float("inf")    # broker's quiet band: bars inside it fill nothing
    band_hi: float = float("-inf")


@dataclass(slots=True)
class EngineCounts:
    """Running totals of one engine (bars, decisions, trades, orders, fills)."""

    bars: int = 0
    decisions: int = 0
    trades_opened: int = 0
    trades_closed: int = 0
    orders: int = 0
    fills: int = 0
    rejected: int = 0
    blocked: int = 0


class TradingEngine:
    """Run a strategy through risk, governor and broker, recording every decision.

    Parameters
    ----------
    run_id : str
    strategy : Strategy
    risk : RiskManager
    broker : SimBroker or another Broker
    governor : Governor
    ledger : LedgerSink
    instruments : dict of str to Instrument
        One per symbol, in the order symbols are tie-broken within a timestamp.
    capital : Decimal
        Starting cash in quote currency: per symbol in ``independent`` mode, in total
        in ``portfolio`` mode.
    capital_mode : {"independent", "portfolio"}
    clock : Clock, optional
        Defaults to a :class:`ReplayClock`.
    stale_after : int, optional
        Seconds after which a bar is stale relative to the clock; entries on stale
        bars are blocked. ``None`` disables the check (replay).
    """

    #: Record the quiet bars of an open position (independent mode) as holds without
    #: visiting each one. An optimisation only: the ledger is identical either way
    #: (``tests/engine/test_engine.py`` compares both).
    skip_quiet_open: bool = True

    def __init__(self, *, run_id: str, strategy: Strategy, risk: RiskManager, broker: SimBroker,
                 governor: Governor, ledger: LedgerSink, instruments: dict[str, Instrument],
                 capital: Decimal, capital_mode: str = "independent", clock: ReplayClock | None = None,
                 stale_after: int | None = None) -> None:
        if capital_mode not in ("independent", "portfolio"):
            raise ValueError(f"capital mode must be independent or portfolio, got {capital_mode!r}")
        if len(strategy.input_names) > 4:
            raise ValueError(f"strategy {strategy.name!r} declares more than 4 decision inputs")
        self.run_id = run_id
        self.strategy = strategy
        self.risk = risk
        self.broker = broker
        self.governor = governor
        self.ledger = ledger
        self.clock = clock or ReplayClock()
        self.capital_mode = capital_mode
        self.stale_after = stale_after
        self.paused = False
        self.counts = EngineCounts()
        names = list(instruments)
        if capital_mode == "independent":
            self.accounts = [_Account(n, capital, float(capital)) for n in names]
            self.syms = [_Sym(i, n, instruments[n], i) for i, n in enumerate(names)]
        else:
            self.accounts = [_Account("portfolio", capital, float(capital))]
            self.syms = [_Sym(i, n, instruments[n], 0) for i, n in enumerate(names)]
        for s in self.syms:
            self.accounts[s.acct].symbols.append(s)
        for a in self.accounts:
            a.cash_f = float(a.cash)
        self.by_name = {s.name: s for s in self.syms}
        if isinstance(broker, SimBroker) and broker.funds is None:
            broker.funds = lambda sym: self.accounts[self.by_name[sym].acct].cash_f
        self._reasons: list[str] = []
        self._reason_id: dict[str, int] = {}
        self._seq = 0
        self._fill_seq = 0
        self._event_seq = 0
        self._eq_seq = 0
        self._marked_initial = False
        self._blocked_detail: dict[tuple[str, str | None], str] = {}
        self._reset_buffers()

    # -- helpers ---------------------------------------------------------------------
    def _rid(self, reason: str) -> int:
        r = self._reason_id.get(reason)
        if r is None:
            r = self._reason_id[reason] = len(self._reasons)
            self._reasons.append(reason)
        return r

    def _code(self, action: int, reason: str, state: int) -> int:
        return (self._rid(reason) << 8) | (state << 4) | action

    def _reset_buffers(self) -> None:
        self._codes: list[int] = []
        self._details: dict[int, str] = {}
        # Cash/position changes in this chunk: (event k, account, cash after, symbol, qty after)
        self._changes: list[tuple[int, int, float, int, float]] = []
        # Equity rows made outside a chunk (initial capital, end-of-data liquidation)
        self._marks: list[tuple[int, int, float, float]] = []
        self._orders: list[Order] = []
        self._order_updates: list[tuple[str, str, str, int]] = []
        self._fills: list[tuple[int, Fill]] = []
        self._trades: list[Trade] = []
        self._events: list[tuple[int, int | None, str, str | None, str]] = []

    def equity(self, acct: int) -> float:
        """Mark-to-market equity of account ``acct`` at the last closes seen (quote currency)."""
        a = self.accounts[acct]
        return a.cash_f + sum(s.qty * s.last_close for s in a.symbols if s.qty)

    def open_positions(self) -> int:
        """Positions open or pending across every account."""
        return sum(1 for s in self.syms if s.state != FLAT)

    def event(self, ts: int | None, kind: str, symbol: str | None, message: str) -> None:
        """Record an engine event (halt, reset, data problem, info)."""
        self._events.append((self._event_seq, ts, kind, symbol, message))
        self._event_seq += 1

    def _sync_band(self, s: _Sym) -> None:
        s.active = self.broker.has_orders(s.name)
        s.band_lo, s.band_hi = self.broker.quiet_band(s.name) if s.active else (float("inf"), float("-inf"))

    def _order_changed(self, order: Order, reason: str, ts: int) -> None:
        """Record a status change: in place if the order is still in this batch.

        Orders decided since the last flush (``decision_seq`` at or after the batch's
        first sequence number) are still buffered and are written in their final state.
        """
        order.updated_ts = ts
        if order.decision_seq >= self._seq:
            order.status_reason = reason
        else:
            self._order_updates.append((order.client_order_id, order.status.value, reason, ts))

    def _submit_record(self, orders: list[Order]) -> None:
        self._orders.extend(orders)
        self.counts.orders += len(orders)

    # -- the tick path ---------------------------------------------------------------
    def process_chunk(self, chunk: dict[str, BarSeries]) -> int:
        """Run every bar of ``chunk`` through the tick path and write the batch.

        Parameters
        ----------
        chunk : dict of str to BarSeries
            New bars per symbol, each strictly after that symbol's previous chunk.

        Returns
        -------
        int
            Number of bars processed.

        Raises
        ------
        ValueError
            Unknown symbol or bars not after the previous chunk.
        """
        warm = self.strategy.warmup
        prepared: list[tuple[_Sym, BarSeries, SignalFrame]] = []
        for name, bars in chunk.items():
            s = self.by_name.get(name)
            if s is None:
                raise ValueError(f"bars for unknown symbol {name!r}")
            if len(bars) == 0:
                continue
            if s.tail is not None and len(s.tail) and bars.ts[0] <= s.tail.ts[-1]:
                raise ValueError(f"{name}: chunk starts at {bars.ts[0]}, not after {s.tail.ts[-1]}")
            full = _concat(s.tail, bars) if s.tail is not None and len(s.tail) else bars
            frame = self.strategy.prepare(full)
            off = len(full) - len(bars)
            if off:
                frame = frame.slice(off)
            s.tail = full.slice(max(0, len(full) - warm), len(full))
            prepared.append((s, bars, frame))
        if not prepared:
            return 0
        return self._run(prepared)

    def _run(self, prepared: list[tuple[_Sym, BarSeries, SignalFrame]]) -> int:
        lens = [len(b) for _, b, _ in prepared]
        ts_cat = np.concatenate([b.ts for _, b, _ in prepared])
        pos_cat = np.concatenate([np.full(n, j, dtype=np.int64) for j, n in enumerate(lens)])
        order = np.lexsort((pos_cat, ts_cat))
        m = int(order.shape[0])
        S = [p[0] for p in prepared]
        F = [p[2] for p in prepared]

        hold_open = self._code(HOLD, F[0].hold_reason, OPEN)
        flat_codes = []
        for f in F:
            lut = np.array([self._code(HOLD, r, FLAT) for r in f.reasons], dtype=np.int64)
            flat_codes.append(np.where(f.enter, -1, lut[f.flat_reason.astype(np.int64)]))
        # Per-symbol plain lists indexed by the symbol's local bar: no numpy scalars in
        # the loop. Decision codes are one list in event (timestamp) order.
        TS = [b.ts.tolist() for _, b, _ in prepared]
        O = [b.open.tolist() for _, b, _ in prepared]
        H = [b.high.tolist() for _, b, _ in prepared]
        L = [b.low.tolist() for _, b, _ in prepared]
        C = [b.close.tolist() for _, b, _ in prepared]
        X = [f.exit.tolist() for f in F]
        pending_code = (0, self._code(HOLD, "entry_pending", ENTRY_PENDING), 0,
                        self._code(HOLD, "exit_pending", EXIT_PENDING))

        if not self._marked_initial:
            t0 = int(ts_cat.min())
            for a_i, a in enumerate(self.accounts):
                self._marks.append((t0, a_i, a.cash_f, a.cash_f))
            self._marked_initial = True
        start_state = ([a.cash_f for a in self.accounts], [s.qty for s in self.syms],
                       [s.last_close for s in self.syms])

        # Every event starts as the frame's hold-when-flat code. The loop visits only
        # events where something can happen. A flat symbol with no orders cannot change
        # state until its next entry signal, so its bars in between stay holds. In
        # independent mode an open position whose bars neither touch its bracket's
        # quiet band nor carry an exit signal only holds: those bars are recorded as
        # holds without a visit, and the account's running peak takes their highest
        # close (cash + qty * close is monotonic in the close).
        codes = np.concatenate(flat_codes)[order].tolist()
        self._codes = codes
        pos_ev = pos_cat[order]
        ev_of = [np.flatnonzero(pos_ev == j).tolist() for j in range(len(S))]
        sig_of = [np.flatnonzero(f.enter).tolist() for f in F]
        heap: list[tuple[int, int, int]] = []
        accounts = self.accounts
        broker = self.broker
        portfolio = self.capital_mode == "portfolio"
        skip_open = self.skip_quiet_open and not portfolio
        inf = float("inf")

        def schedule(j: int, i: int) -> None:
            """Queue symbol j's next event to visit at or after its local bar i."""
            s = S[j]
            st = s.state
            if st == FLAT and not s.active:
                sig = sig_of[j]
                p = bisect_left(sig, i)
                if p == len(sig):
                    return
                i = sig[p]
            elif st == OPEN and skip_open:
                lo, hi = (s.band_lo, s.band_hi) if s.active else (-inf, inf)
                lw, hg, xs = L[j], H[j], X[j]
                n, q = lens[j], i
                while q < n and not xs[q] and lw[q] > lo and hg[q] < hi:
                    q += 1
                if q > i:
                    for kk in ev_of[j][i:q]:
                        codes[kk] = hold_open
                    cl = C[j]
                    s.last_close = cl[q - 1]
                    a = accounts[s.acct]
                    v = a.cash_f + s.qty * max(cl[i:q])
                    if v > a.peak:
                        a.peak = v
                    i = q
            if i < lens[j]:
                heappush(heap, (ev_of[j][i], j, i))

        for j in range(len(S)):
            schedule(j, 0)
        while heap:
            k, j, i = heappop(heap)
            s = S[j]
            if s.active and (L[j][i] <= s.band_lo or H[j][i] >= s.band_hi):
                ups = broker.process(s.name, TS[j][i], O[j][i], H[j][i], L[j][i], C[j][i])
                if ups:
                    self._apply(s, ups, k, C[j][i])
                    self._sync_band(s)
            st = s.state
            if st == FLAT:
                if codes[k] < 0:
                    codes[k] = self._enter(s, F[j], i, TS[j][i], C[j][i], k)
            elif st == OPEN:
                c = C[j][i]
                s.last_close = c
                a = accounts[s.acct]
                # running peak for the drawdown halt (the ledger's equity column is
                # computed vectorised at flush)
                if portfolio:
                    v = a.cash_f
                    for o in a.symbols:
                        if o.qty:
                            v += o.qty * o.last_close
                else:
                    v = a.cash_f + s.qty * c
                if v > a.peak:
                    a.peak = v
                codes[k] = self._exit(s, F[j], i, TS[j][i], c, k) if X[j][i] else hold_open
            else:
                codes[k] = pending_code[st]
            schedule(j, i + 1)
        self._flush(prepared, order, m, start_state)
        self.counts.bars += m
        return m

    # -- slow paths: entries, exits, fills -------------------------------------------
    def _enter(self, s: _Sym, frame: SignalFrame, i: int, ts: int, close: float, k: int) -> int:
        self.clock.advance(ts)
        seq = self._seq + k
        acct = self.accounts[s.acct]
        # 0. fail closed: no new entries while paused, halted or on stale data
        block = why = None
        if self.paused:
            block = "paused"
        elif self.stale_after is not None and self.clock.now() - ts > self.stale_after:
            block = "stale_data"
        else:
            why = self.risk.halted(acct.name, ts)
            if why is not None:
                block = f"halted:{why.split(':')[0]}"
        if self.risk.events:
            self._drain_risk_events()
        if block is not None:
            self.counts.blocked += 1
            key = (frame.entry_reason, why)
            text = self._blocked_detail.get(key)
            if text is None:
                text = self._blocked_detail[key] = _dumps({"signal": frame.entry_reason, "halt": why})
            self._details[k] = text
            return self._code(BLOCKED, block, FLAT)
        # 2. the strategy's decision for this bar (inputs are in the decision's columns)
        sig = self.strategy.decide(frame, i, False)
        detail: dict[str, Any] = {}
        if sig.stop_loss is not None:
            detail["stop_loss"] = sig.stop_loss
        if sig.take_profit is not None:
            detail["take_profit"] = sig.take_profit
        # 3. risk
        s.last_close = close
        verdict = self.risk.evaluate_entry(
            account=acct.name, instrument=s.inst, ts=ts, price=close, signal=sig,
            equity=self.equity(s.acct), peak_equity=acct.peak, cash=acct.cash_f,
            open_positions=self.open_positions())
        self._drain_risk_events()
        detail.update(verdict.detail)
        if not verdict.approved:
            self.counts.rejected += 1
            detail["signal"] = sig.reason
            self._details[k] = _dumps(detail)
            action = BLOCKED if verdict.reason.startswith("halted") else REJECTED
            return self._code(action, verdict.reason, FLAT)
        # 4. governor
        auth = self.governor.authorize(s.name, "enter_long", detail)
        detail["governor"] = auth.verdict
        if auth.verdict != "execute":
            self._details[k] = _dumps(detail)
            return self._code(QUEUED if auth.verdict == "queue" else MONITORED, auth.reason, FLAT)
        # 5 + 6. decision recorded (this buffer row precedes the order's), then submit
        qty = verdict.quantity
        entry = Order(make_order_id(self.run_id, s.name, seq, OrderRole.ENTRY), s.name, Side.BUY,
                      OrderType.MARKET, qty, OrderRole.ENTRY, ts, decision_seq=seq)
        legs: list[Order] = []
        if sig.take_profit is not None:
            legs.append(Order(make_order_id(self.run_id, s.name, seq, OrderRole.TAKE_PROFIT),
                              s.name, Side.SELL, OrderType.LIMIT, qty, OrderRole.TAKE_PROFIT, ts,
                              price=s.inst.ceil_price(sig.take_profit),
                              parent_id=entry.client_order_id, decision_seq=seq))
        if sig.stop_loss is not None:
            legs.append(Order(make_order_id(self.run_id, s.name, seq, OrderRole.STOP_LOSS),
                              s.name, Side.SELL, OrderType.STOP, qty, OrderRole.STOP_LOSS, ts,
                              stop_price=s.inst.floor_price(sig.stop_loss),
                              parent_id=entry.client_order_id, decision_seq=seq))
        s.levels = (legs[-1].stop_price if sig.stop_loss is not None else None,
                    legs[0].price if sig.take_profit is not None else None)
        detail["orders"] = [entry.client_order_id] + [o.client_order_id for o in legs]
        self._details[k] = _dumps(detail)
        self.broker.submit(entry, tuple(legs))
        self._submit_record([entry, *legs])
        s.state = ENTRY_PENDING
        self._sync_band(s)
        return self._code(ENTER, sig.reason, FLAT)

    def _exit(self, s: _Sym, frame: SignalFrame, i: int, ts: int, close: float, k: int) -> int:
        self.clock.advance(ts)
        sig = self.strategy.decide(frame, i, True)
        seq = self._seq + k
        detail: dict[str, Any] = {}
        auth = self.governor.authorize(s.name, "exit", detail)
        if auth.verdict != "execute":
            self._details[k] = _dumps({**detail, "governor": auth.verdict})
            return self._code(QUEUED if auth.verdict == "queue" else MONITORED, auth.reason, OPEN)
        for u in self.broker.cancel_all(s.name, ts, "signal exit"):
            self._order_changed(u.order, u.reason, ts)
        pos = s.position
        order = Order(make_order_id(self.run_id, s.name, seq, OrderRole.EXIT), s.name, Side.SELL,
                      OrderType.MARKET, pos.quantity, OrderRole.EXIT, ts, decision_seq=seq)
        detail["orders"] = [order.client_order_id]
        self._details[k] = _dumps(detail)
        self.broker.submit(order)
        self._submit_record([order])
        s.state = EXIT_PENDING
        self._sync_band(s)
        return self._code(EXIT, sig.reason, OPEN)

    def _apply(self, s: _Sym, updates: list[OrderUpdate], k: int, close: float) -> None:
        """Apply broker updates for symbol ``s`` on event ``k`` (bar close ``close``)."""
        acct = self.accounts[s.acct]
        for u in updates:
            self.clock.advance(u.ts)
            self._order_changed(u.order, u.reason, u.ts)
            f = u.fill
            if u.status is OrderStatus.REJECTED and u.order.role is OrderRole.ENTRY:
                s.state = FLAT
                self.event(u.ts, "order_rejected", s.name, f"{u.order.client_order_id}: {u.reason}")
                continue
            if f is None:
                continue
            self._fills.append((self._fill_seq, f))
            self._fill_seq += 1
            self.counts.fills += 1
            if f.side is Side.BUY:
                acct.add_cash(-(f.price * f.quantity + f.fee))
                s.position = Position(s.name, f.quantity, f.price, f.ts, f.fee, f.client_order_id,
                                      *s.levels)
                s.qty = float(f.quantity)
                s.state = OPEN
                self.counts.trades_opened += 1
                self._changes.append((k, s.acct, acct.cash_f, s.idx, s.qty))
            else:
                self.finalize_exit(s, f, _EXIT_REASON.get(f.role, ExitReason.SIGNAL), k)
        s.last_close = close

    def finalize_exit(self, s: _Sym, fill: Fill, reason: ExitReason, k: int) -> Trade:
        """End a round trip: the one exit path for signal, stop-loss, take-profit,
        end of data, manual and emergency exits.

        Credits the sale to the account, writes the trade, marks equity, informs risk.
        """
        pos = s.position
        if pos is None:
            raise RuntimeError(f"{s.name}: exit fill {fill.client_order_id} with no open position")
        acct = self.accounts[s.acct]
        acct.add_cash(fill.price * fill.quantity - fill.fee)
        fees = pos.entry_fee + fill.fee
        pnl = (fill.price - pos.entry_price) * fill.quantity - fees
        trade = Trade(pos.entry_order_id, s.name, "long", fill.quantity, pos.entry_ts,
                      pos.entry_price, fill.ts, fill.price, fees, pnl, reason, pos.entry_order_id,
                      fill.client_order_id)
        self._trades.append(trade)
        self.counts.trades_closed += 1
        s.position = None
        s.qty = 0.0
        s.state = FLAT
        eq = self.equity(s.acct)
        if k >= 0:
            self._changes.append((k, s.acct, acct.cash_f, s.idx, 0.0))
        else:
            self._marks.append((fill.ts, s.acct, acct.cash_f, eq))
        self.risk.on_trade_closed(acct.name, fill.ts, float(pnl), eq)
        self._drain_risk_events()
        return trade

    def close_all(self, reason: ExitReason = ExitReason.END_OF_DATA) -> int:
        """Liquidate every open position at its last close and cancel pending orders.

        Used at the end of a replay (``end_of_data``) and by an emergency stop. Each
        liquidation is a recorded decision (action ``exit``), a market order and a
        fill at the last close (taker fee and slippage applied), and ends in
        :meth:`finalize_exit`. Returns the number of trades closed.
        """
        closed = 0
        rows: list[dict[str, Any]] = []
        for s in self.syms:
            if s.tail is None or not len(s.tail):
                continue
            ts = int(s.tail.ts[-1])
            close = float(s.tail.close[-1])
            self.clock.advance(max(ts, self.clock.now()))
            for u in self.broker.cancel_all(s.name, ts, reason.value):
                self._order_changed(u.order, u.reason, ts)
            if s.position is None:
                s.state = FLAT
                self._sync_band(s)
                continue
            seq = self._seq + len(rows)
            order = Order(make_order_id(self.run_id, s.name, seq, OrderRole.EXIT), s.name, Side.SELL,
                          OrderType.MARKET, s.position.quantity, OrderRole.EXIT, ts, decision_seq=seq)
            rows.append({"run_id": self.run_id, "seq": seq, "ts": ts, "symbol": s.name,
                         "action": "exit", "reason": reason.value, "state": "open", "close": close,
                         "detail": _dumps({"orders": [order.client_order_id], "close": close})})
            self._submit_record([order])
            fill = _liquidation_fill(self.broker, s.inst, order, close, ts)
            order.status = OrderStatus.FILLED
            self._order_changed(order, reason.value, ts)
            self._fills.append((self._fill_seq, fill))
            self._fill_seq += 1
            self.counts.fills += 1
            s.last_close = close
            self.finalize_exit(s, fill, reason, -1)
            rows[-1]["equity"] = self.equity(s.acct)
            self.event(ts, "info", s.name, f"position closed at last close ({reason.value})")
            self._sync_band(s)
            closed += 1
        if rows:
            cols = {c: [r.get(c) for r in rows] for c in
                    ("run_id", "seq", "ts", "symbol", "action", "reason", "state", "close", "equity",
                     "x1", "x2", "x3", "x4", "detail")}
            cols["x1"] = cols["x2"] = cols["x3"] = cols["x4"] = pa.nulls(len(rows), pa.float64())
            self.ledger.write_columns("decisions", cols)
            self._seq += len(rows)
            self.counts.decisions += len(rows)
        self._flush_rows()
        return closed

    def _drain_risk_events(self) -> None:
        if self.risk.events:
            for ts, kind, account, msg in self.risk.events:
                self.event(ts, kind, None if account == "portfolio" else account, msg)
            self.risk.events.clear()

    # -- batch write -----------------------------------------------------------------
    def _equity_column(self, ev_pos: np.ndarray, close: np.ndarray, S: list[_Sym],
                       start_state: tuple[list[float], list[float], list[float]]) -> np.ndarray:
        """Mark-to-market equity of each event's account at its bar close, vectorised.

        Cash and quantities are step functions that change only at the recorded
        changes; each symbol's price is its last close so far (forward-filled over
        the merged timeline). In independent mode an account holds only its own
        symbol, so its equity is needed only at that symbol's events, where the price
        is the event's own close.
        """
        m = ev_pos.shape[0]
        cash0, qty0, lc0 = start_state
        ch = self._changes
        ch_k = np.asarray([c[0] for c in ch], dtype=np.int64)
        ch_a = np.asarray([c[1] for c in ch], dtype=np.int64)
        ch_cash = np.asarray([c[2] for c in ch], dtype=np.float64)
        ch_s = np.asarray([c[3] for c in ch], dtype=np.int64)
        ch_q = np.asarray([c[4] for c in ch], dtype=np.float64)

        def step(mask: np.ndarray, values: np.ndarray, initial: float, at_events: np.ndarray) -> np.ndarray:
            ks, vs = ch_k[mask], values[mask]
            if ks.size == 0:
                return np.full(at_events.shape[0], initial)
            at = np.searchsorted(ks, at_events, side="right") - 1
            return np.where(at >= 0, vs[np.maximum(at, 0)], initial)

        if self.capital_mode == "independent":
            out = np.empty(m)
            for j, s in enumerate(S):
                at_ev = np.flatnonzero(ev_pos == j)
                cash = step(ch_a == s.acct, ch_cash, cash0[s.acct], at_ev)
                qty = step(ch_s == s.idx, ch_q, qty0[s.idx], at_ev)
                out[at_ev] = cash + qty * close[at_ev]
            return out
        # portfolio: one account, every event is its
        ar = np.arange(m)
        ev_sym = np.asarray([s.idx for s in S], dtype=np.int64)[ev_pos]
        out = step(ch_a == 0, ch_cash, cash0[0], ar)
        for s in self.accounts[0].symbols:
            qty = step(ch_s == s.idx, ch_q, qty0[s.idx], ar)
            if not qty.any():
                continue
            last = np.maximum.accumulate(np.where(ev_sym == s.idx, ar, -1))
            px = np.where(last >= 0, close[np.maximum(last, 0)], lc0[s.idx])
            out = out + qty * np.nan_to_num(px)
        return out

    def _flush(self, prepared: list[tuple[_Sym, BarSeries, SignalFrame]], order: np.ndarray,
               m: int, start_state: tuple[list[float], list[float], list[float]]) -> None:
        codes = np.asarray(self._codes, dtype=np.int64)
        if m and codes.min() < 0:      # an entry signal the loop never decided: a bug
            bad = int(np.flatnonzero(codes < 0)[0])
            raise RuntimeError(f"decision {self._seq + bad} was never decided")
        S = [p[0] for p in prepared]
        ev_pos = np.concatenate([np.full(len(b), j, dtype=np.int32) for j, (_, b, _) in enumerate(prepared)])[order]
        ts = np.concatenate([b.ts for _, b, _ in prepared])[order].astype(np.int64)
        close = np.concatenate([b.close for _, b, _ in prepared])[order]
        equity = self._equity_column(ev_pos, close, S, start_state)
        run = _labels(np.zeros(m, dtype=np.int8), [self.run_id])
        cols: dict[str, Any] = {
            "run_id": run,
            "seq": np.arange(self._seq, self._seq + m, dtype=np.int64),
            "ts": ts,
            "symbol": _labels(ev_pos, [s.name for s in S]),
            "action": _labels((codes & 15).astype(np.int8), ACTIONS),
            "reason": _labels((codes >> 8).astype(np.int32), self._reasons),
            "state": _labels(((codes >> 4) & 15).astype(np.int8), STATES),
            "close": close,
            "equity": equity,
        }
        names = self.strategy.input_names
        for n in range(4):
            if n < len(names):
                x = np.concatenate([f.inputs[names[n]] for _, _, f in prepared])[order]
                cols[f"x{n + 1}"] = pa.array(x, from_pandas=True)
            else:
                cols[f"x{n + 1}"] = pa.nulls(m, pa.float64())
        idx = np.full(m, -1, dtype=np.int32)
        idx[list(self._details)] = np.arange(len(self._details), dtype=np.int32)
        cols["detail"] = pa.DictionaryArray.from_arrays(
            pa.array(idx, mask=idx < 0), pa.array(list(self._details.values()), pa.string()))
        self.ledger.write_columns("decisions", cols)
        for k, a_i, cash, _s, _q in self._changes:
            self._marks.append((int(ts[k]), a_i, cash, float(equity[k])))   # k is an event of a_i
        self._seq += m
        self.counts.decisions += m
        self._codes = []
        self._details = {}
        self._changes = []
        self._flush_rows()

    def _flush_rows(self) -> None:
        if self._marks:
            n = len(self._marks)
            self.ledger.write_columns("equity", {
                "run_id": [self.run_id] * n,
                "seq": np.arange(self._eq_seq, self._eq_seq + n, dtype=np.int64),
                "account": [self.accounts[a].name for _, a, _, _ in self._marks],
                "ts": np.asarray([t for t, _, _, _ in self._marks], dtype=np.int64),
                "cash": np.asarray([c for _, _, c, _ in self._marks], dtype=np.float64),
                "equity": np.asarray([e for _, _, _, e in self._marks], dtype=np.float64),
            })
            self._eq_seq += n
            self._marks = []
        self.ledger.write_orders(self.run_id, self._orders)
        self.ledger.update_orders(self.run_id, self._order_updates)
        self.ledger.write_fills(self.run_id, self._fills)
        self.ledger.write_trades(self.run_id, self._trades)
        self.ledger.write_events(self.run_id, self._events)
        self.ledger.commit()
        self._orders, self._order_updates, self._fills, self._trades, self._events = [], [], [], [], []


def _labels(codes: np.ndarray, labels: Any) -> pa.Array:
    """Strings from integer codes as an Arrow dictionary array (no per-row Python; the
    ledger's bulk ingest resolves the dictionary in C)."""
    return pa.DictionaryArray.from_arrays(codes, pa.array(list(labels), pa.string()))


def _dumps(obj: dict[str, Any]) -> str:
    """Compact JSON of plain values (floats, ints, str, lists, dicts), via orjson.

    Floats are written in their shortest round-trip form (as ``json`` does); a
    non-finite float becomes ``null``; NumPy scalars are plain numbers and a
    ``Decimal`` is its exact text.
    """
    return orjson.dumps(obj, default=_exact_text, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def _exact_text(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _concat(a: BarSeries, b: BarSeries) -> BarSeries:
    return BarSeries(b.symbol, b.timeframe, np.concatenate((a.ts, b.ts)),
                     np.concatenate((a.open, b.open)), np.concatenate((a.high, b.high)),
                     np.concatenate((a.low, b.low)), np.concatenate((a.close, b.close)),
                     np.concatenate((a.volume, b.volume)), b.source)


def _liquidation_fill(broker: Any, inst: Instrument, order: Order, close: float, ts: int) -> Fill:
    """Fill a market sell at ``close`` with the broker's taker fee and slippage."""
    from decimal import ROUND_HALF_EVEN
    slip = getattr(broker, "slip", Decimal(0))
    taker = getattr(broker, "taker", Decimal(0))
    ref = to_decimal(close)
    price = inst.floor_price(ref * (1 - slip))
    fee = (price * order.quantity * taker).quantize(Decimal("0.00000001"), ROUND_HALF_EVEN)
    return Fill(order.client_order_id, order.symbol, Side.SELL, order.quantity, price, fee, "taker",
                ts, ref, OrderRole.EXIT)
