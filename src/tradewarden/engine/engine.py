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

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Protocol

import numpy as np
import pyarrow as pa

from tradewarden.domain import (Action, BarSeries, ExitReason, Fill, Instrument, Order, OrderRole,
                                OrderStatus, OrderType, Position, PositionState, Side, Signal, Trade,
                                to_decimal)
from tradewarden.engine.clock import ReplayClock
from tradewarden.execution import OrderUpdate, SimBroker, make_order_id
from tradewarden.risk import RiskManager
from tradewarden.strategy import SignalFrame, Strategy

# Packed decision code: (reason_id << 8) | (state << 4) | action
HOLD, ENTER, EXIT, REJECTED, BLOCKED, QUEUED, MONITORED = range(7)
ACTIONS = ("hold", "enter_long", "exit", "rejected", "blocked", "queued", "monitored")
FLAT, ENTRY_PENDING, OPEN, EXIT_PENDING = range(4)
STATES = tuple(s.value for s in (PositionState.FLAT, PositionState.ENTRY_PENDING,
                                 PositionState.OPEN, PositionState.EXIT_PENDING))


class LedgerSink(Protocol):
    """What the engine writes to (``tradewarden.ledger.Ledger`` implements it)."""

    def write_columns(self, table: str, columns: dict[str, Any]) -> None: ...
    def write_orders(self, run_id: str, orders: list[Order]) -> None: ...
    def update_orders(self, run_id: str, updates: list[tuple[str, str, str, int]]) -> None: ...
    def write_fills(self, run_id: str, fills: list[tuple[int, Fill]]) -> None: ...
    def write_trades(self, run_id: str, trades: list[Trade]) -> None: ...
    def write_events(self, run_id: str, events: list[tuple[int, int | None, str, str | None, str]]) -> None: ...


class Governor(Protocol):
    """Graduated-autonomy gate (see ``tradewarden.agent.governor``)."""

    def authorize(self, symbol: str, action: str, detail: dict) -> Any: ...


@dataclass(slots=True)
class _Account:
    name: str
    cash: Decimal
    peak: float
    symbols: list["_Sym"] = field(default_factory=list)
    cash_f: float = 0.0

    def add_cash(self, amount: Decimal) -> None:
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
    entry_order: Order | None = None
    tail: BarSeries | None = None
    bars_seen: int = 0


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
        self._last_ts: int | None = None
        self._marked_initial = False
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
        self._eq_k: list[int] = []
        self._eq_a: list[int] = []
        self._eq_cash: list[float] = []
        self._eq_val: list[float] = []
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

    def _mark(self, k: int, acct: int, cash: float, value: float) -> None:
        self._eq_k.append(k)
        self._eq_a.append(acct)
        self._eq_cash.append(cash)
        self._eq_val.append(value)
        if value > self.accounts[acct].peak:
            self.accounts[acct].peak = value

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
        strat = self.strategy
        lens = [len(b) for _, b, _ in prepared]
        ts_cat = np.concatenate([b.ts for _, b, _ in prepared])
        pos_cat = np.concatenate([np.full(n, j, dtype=np.int64) for j, n in enumerate(lens)])
        loc_cat = np.concatenate([np.arange(n, dtype=np.int64) for n in lens])
        order = np.lexsort((pos_cat, ts_cat))
        opos = pos_cat[order].tolist()
        oloc = loc_cat[order].tolist()
        m = len(opos)

        # Per-symbol plain lists for the loop.
        S = [p[0] for p in prepared]
        F = [p[2] for p in prepared]
        TS = [b.ts.tolist() for _, b, _ in prepared]
        O = [b.open.tolist() for _, b, _ in prepared]
        H = [b.high.tolist() for _, b, _ in prepared]
        L = [b.low.tolist() for _, b, _ in prepared]
        C = [b.close.tolist() for _, b, _ in prepared]
        EN = [f.enter.tolist() for f in F]
        EX = [f.exit.tolist() for f in F]
        HF = []
        for f in F:
            lut = np.array([self._code(HOLD, r, FLAT) for r in f.reasons], dtype=np.int64)
            HF.append(lut[f.flat_reason.astype(np.int64)].tolist())
        hold_open = self._code(HOLD, F[0].hold_reason, OPEN)
        hold_entry_pending = self._code(HOLD, "entry_pending", ENTRY_PENDING)
        hold_exit_pending = self._code(HOLD, "exit_pending", EXIT_PENDING)
        pending_code = (0, hold_entry_pending, 0, hold_exit_pending)

        if not self._marked_initial:
            for a_i, a in enumerate(self.accounts):
                self._mark(0, a_i, float(a.cash), float(a.cash))
            self._marked_initial = True

        codes = self._codes
        app = codes.append
        eq_k, eq_a, eq_c, eq_v = (self._eq_k.append, self._eq_a.append, self._eq_cash.append,
                                  self._eq_val.append)
        accounts = self.accounts
        broker_process = self.broker.process
        portfolio = self.capital_mode == "portfolio"
        k0 = len(codes)
        for k in range(m):
            j = opos[k]
            i = oloc[k]
            s = S[j]
            if s.active:
                ups = broker_process(s.name, TS[j][i], O[j][i], H[j][i], L[j][i], C[j][i])
                if ups:
                    self._apply(s, ups, k0 + k, C[j][i])
                s.active = self.broker.has_orders(s.name)
            st = s.state
            if st == FLAT:
                if EN[j][i]:
                    app(self._enter(s, F[j], i, TS[j][i], C[j][i], k0 + k))
                else:
                    app(HF[j][i])
            elif st == OPEN:
                c = C[j][i]
                s.last_close = c
                a = accounts[s.acct]
                cash = a.cash_f
                if portfolio:
                    v = cash
                    for o in a.symbols:
                        if o.qty:
                            v += o.qty * o.last_close
                else:
                    v = cash + s.qty * c
                eq_k(k0 + k)
                eq_a(s.acct)
                eq_c(cash)
                eq_v(v)
                if v > a.peak:
                    a.peak = v
                if EX[j][i]:
                    app(self._exit(s, F[j], i, TS[j][i], c, k0 + k))
                else:
                    app(hold_open)
            else:
                app(pending_code[st])
        for s, n in zip(S, lens):
            s.bars_seen += n
        self._flush(prepared, order, k0, m)
        self.counts.bars += m
        return m

    # -- slow paths: entries, exits, fills -------------------------------------------
    def _enter(self, s: _Sym, frame: SignalFrame, i: int, ts: int, close: float, k: int) -> int:
        self.clock.advance(ts)
        sig = self.strategy.decide(frame, i, False)
        seq = self._seq + k
        detail: dict[str, Any] = {"inputs": dict(sig.inputs), "close": close}
        if sig.stop_loss is not None:
            detail["stop_loss"] = sig.stop_loss
        if sig.take_profit is not None:
            detail["take_profit"] = sig.take_profit
        acct = self.accounts[s.acct]
        # 0. fail closed
        block = None
        if self.paused:
            block = "paused"
        elif self.stale_after is not None and self.clock.now() - ts > self.stale_after:
            block = "stale_data"
        else:
            why = self.risk.halted(acct.name, ts)
            if why is not None:
                block = f"halted:{why.split(':')[0]}"
                detail["halt"] = why
        self._drain_risk_events()
        if block is not None:
            self.counts.blocked += 1
            self._details[k] = _dumps({**detail, "signal": sig.reason})
            return self._code(BLOCKED, block, FLAT)
        # 3. risk
        s.last_close = close
        verdict = self.risk.evaluate_entry(
            account=acct.name, instrument=s.inst, ts=ts, price=close, signal=sig,
            equity=self.equity(s.acct), peak_equity=acct.peak, cash=float(acct.cash),
            open_positions=self.open_positions())
        self._drain_risk_events()
        detail["risk"] = verdict.detail
        if not verdict.approved:
            self.counts.rejected += 1
            self._details[k] = _dumps({**detail, "signal": sig.reason})
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
        detail["orders"] = [entry.client_order_id] + [o.client_order_id for o in legs]
        detail["quantity"] = str(qty)
        self._details[k] = _dumps(detail)
        self.broker.submit(entry, tuple(legs))
        self._orders.append(entry)
        self._orders.extend(legs)
        self.counts.orders += 1 + len(legs)
        s.state = ENTRY_PENDING
        s.entry_order = entry
        s.active = True
        return self._code(ENTER, sig.reason, FLAT)

    def _exit(self, s: _Sym, frame: SignalFrame, i: int, ts: int, close: float, k: int) -> int:
        self.clock.advance(ts)
        sig = self.strategy.decide(frame, i, True)
        seq = self._seq + k
        detail: dict[str, Any] = {"inputs": dict(sig.inputs), "close": close}
        auth = self.governor.authorize(s.name, "exit", detail)
        if auth.verdict != "execute":
            self._details[k] = _dumps({**detail, "governor": auth.verdict})
            return self._code(QUEUED if auth.verdict == "queue" else MONITORED, auth.reason, OPEN)
        for u in self.broker.cancel_all(s.name, ts, "signal exit"):
            self._order_updates.append((u.order.client_order_id, u.status.value, u.reason, ts))
        pos = s.position
        order = Order(make_order_id(self.run_id, s.name, seq, OrderRole.EXIT), s.name, Side.SELL,
                      OrderType.MARKET, pos.quantity, OrderRole.EXIT, ts, decision_seq=seq)
        detail["orders"] = [order.client_order_id]
        self._details[k] = _dumps(detail)
        self.broker.submit(order)
        self._orders.append(order)
        self.counts.orders += 1
        s.state = EXIT_PENDING
        s.active = True
        return self._code(EXIT, sig.reason, OPEN)

    def _apply(self, s: _Sym, updates: list[OrderUpdate], k: int, close: float) -> None:
        """Apply broker updates for symbol ``s`` on event ``k`` (bar close ``close``)."""
        acct = self.accounts[s.acct]
        for u in updates:
            self.clock.advance(u.ts)
            self._order_updates.append((u.order.client_order_id, u.status.value, u.reason, u.ts))
            f = u.fill
            if u.status is OrderStatus.REJECTED and u.order.role is OrderRole.ENTRY:
                s.state = FLAT
                s.entry_order = None
                self.event(u.ts, "order_rejected", s.name, f"{u.order.client_order_id}: {u.reason}")
                continue
            if f is None:
                continue
            self._fills.append((self._fill_seq, f))
            self._fill_seq += 1
            self.counts.fills += 1
            if f.side is Side.BUY:
                acct.add_cash(-(f.price * f.quantity + f.fee))
                legs = {o.role: o for o in self.broker.open_orders(s.name)}
                s.position = Position(s.name, f.quantity, f.price, f.ts, f.fee, f.client_order_id,
                                      legs[OrderRole.STOP_LOSS].stop_price if OrderRole.STOP_LOSS in legs else None,
                                      legs[OrderRole.TAKE_PROFIT].price if OrderRole.TAKE_PROFIT in legs else None)
                s.qty = float(f.quantity)
                s.state = OPEN
                self.counts.trades_opened += 1
            else:
                reason = {OrderRole.STOP_LOSS: ExitReason.STOP_LOSS,
                          OrderRole.TAKE_PROFIT: ExitReason.TAKE_PROFIT}.get(f.role, ExitReason.SIGNAL)
                self.finalize_exit(s, f, reason, k)
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
        trade = Trade(f"{pos.entry_order_id}", s.name, "long", fill.quantity, pos.entry_ts,
                      pos.entry_price, fill.ts, fill.price, fees, pnl, reason, pos.entry_order_id,
                      fill.client_order_id)
        self._trades.append(trade)
        self.counts.trades_closed += 1
        s.position = None
        s.qty = 0.0
        s.state = FLAT
        s.entry_order = None
        eq = self.equity(s.acct)
        self._mark(k, s.acct, float(acct.cash), eq)
        self.risk.on_trade_closed(acct.name, fill.ts, float(pnl), eq)
        self._drain_risk_events()
        return trade

    def close_all(self, reason: ExitReason = ExitReason.END_OF_DATA) -> int:
        """Liquidate every open position at its last close and cancel pending orders.

        Used at the end of a replay (``end_of_data``) and by an emergency stop. Each
        exit is a recorded market order and fill (taker fee and slippage applied)
        that goes through :meth:`finalize_exit`. Returns the number of trades closed.
        """
        closed = 0
        k = len(self._codes) - 1
        for s in self.syms:
            if s.tail is None or not len(s.tail):
                continue
            ts = int(s.tail.ts[-1])
            close = float(s.tail.close[-1])
            for u in self.broker.cancel_all(s.name, ts, reason.value):
                self._order_updates.append((u.order.client_order_id, u.status.value, u.reason, ts))
            if s.position is None:
                s.state = FLAT
                continue
            seq = self._seq + max(k, 0)
            order = Order(make_order_id(self.run_id, s.name, seq, OrderRole.EXIT) + f"-{reason.value}",
                          s.name, Side.SELL, OrderType.MARKET, s.position.quantity, OrderRole.EXIT, ts,
                          decision_seq=seq)
            self._orders.append(order)
            self.counts.orders += 1
            fill = _liquidation_fill(self.broker, s.inst, order, close, ts)
            order.status = OrderStatus.FILLED
            self._order_updates.append((order.client_order_id, "filled", reason.value, ts))
            self._fills.append((self._fill_seq, fill))
            self._fill_seq += 1
            self.counts.fills += 1
            self.finalize_exit(s, fill, reason, max(k, 0))
            self.event(ts, "info", s.name, f"position closed at last close ({reason.value})")
            closed += 1
        self._flush_rows()
        return closed

    def _drain_risk_events(self) -> None:
        if self.risk.events:
            for ts, kind, account, msg in self.risk.events:
                self.event(ts, kind, None if account == "portfolio" else account, msg)
            self.risk.events.clear()

    # -- batch write -----------------------------------------------------------------
    def _flush(self, prepared: list[tuple[_Sym, BarSeries, SignalFrame]], order: np.ndarray,
               k0: int, m: int) -> None:
        codes = np.asarray(self._codes[k0:k0 + m], dtype=np.int64)
        pos_idx = np.concatenate([np.full(len(b), j, dtype=np.int32) for j, (_, b, _) in enumerate(prepared)])[order]
        ts = np.concatenate([b.ts for _, b, _ in prepared])[order]
        close = np.concatenate([b.close for _, b, _ in prepared])[order]
        sym_names = [s.name for s, _, _ in prepared]
        inputs = []
        for name in self.strategy.input_names:
            inputs.append(np.concatenate([f.inputs[name] for _, _, f in prepared])[order])
        reasons = pa.array(self._reasons, pa.string())
        cols: dict[str, Any] = {
            "run_id": pa.DictionaryArray.from_arrays(np.zeros(m, dtype=np.int8),
                                                     pa.array([self.run_id])).cast(pa.string()),
            "seq": np.arange(self._seq, self._seq + m, dtype=np.int64),
            "ts": ts.astype(np.int64),
            "symbol": pa.DictionaryArray.from_arrays(pos_idx, pa.array(sym_names)).cast(pa.string()),
            "action": pa.DictionaryArray.from_arrays((codes & 15).astype(np.int8),
                                                     pa.array(ACTIONS)).cast(pa.string()),
            "reason": pa.DictionaryArray.from_arrays((codes >> 8).astype(np.int32), reasons).cast(pa.string()),
            "state": pa.DictionaryArray.from_arrays(((codes >> 4) & 15).astype(np.int8),
                                                    pa.array(STATES)).cast(pa.string()),
            "close": close,
        }
        for n in range(4):
            cols[f"x{n + 1}"] = (pa.array(inputs[n], from_pandas=True) if n < len(inputs)
                                 else pa.nulls(m, pa.float64()))
        detail = [None] * m
        for kk, text in self._details.items():
            detail[kk - k0] = text
        cols["detail"] = pa.array(detail, pa.string())
        self.ledger.write_columns("decisions", cols)
        # equity marks: event index -> timestamp
        if self._eq_k:
            ek = np.asarray(self._eq_k, dtype=np.int64) - k0
            ek = np.clip(ek, 0, m - 1)
            acct_names = [a.name for a in self.accounts]
            n_eq = len(ek)
            self.ledger.write_columns("equity", {
                "run_id": pa.DictionaryArray.from_arrays(np.zeros(n_eq, dtype=np.int8),
                                                         pa.array([self.run_id])).cast(pa.string()),
                "seq": np.arange(self._eq_seq, self._eq_seq + n_eq, dtype=np.int64),
                "account": pa.DictionaryArray.from_arrays(np.asarray(self._eq_a, dtype=np.int32),
                                                          pa.array(acct_names)).cast(pa.string()),
                "ts": ts[ek].astype(np.int64),
                "cash": np.asarray(self._eq_cash, dtype=np.float64),
                "equity": np.asarray(self._eq_val, dtype=np.float64),
            })
            self._eq_seq += n_eq
        self._seq += m
        self.counts.decisions += m
        self._last_ts = int(ts[-1])
        self._codes = []
        self._details = {}
        self._eq_k, self._eq_a, self._eq_cash, self._eq_val = [], [], [], []
        self._flush_rows()

    def _flush_rows(self) -> None:
        if self._eq_k:  # marks made outside a chunk (close_all)
            ts = self._last_ts or 0
            n_eq = len(self._eq_k)
            self.ledger.write_columns("equity", {
                "run_id": [self.run_id] * n_eq,
                "seq": np.arange(self._eq_seq, self._eq_seq + n_eq, dtype=np.int64),
                "account": [self.accounts[a].name for a in self._eq_a],
                "ts": np.full(n_eq, ts, dtype=np.int64),
                "cash": np.asarray(self._eq_cash, dtype=np.float64),
                "equity": np.asarray(self._eq_val, dtype=np.float64),
            })
            self._eq_seq += n_eq
            self._eq_k, self._eq_a, self._eq_cash, self._eq_val = [], [], [], []
        self.ledger.write_orders(self.run_id, self._orders)
        self.ledger.update_orders(self.run_id, self._order_updates)
        self.ledger.write_fills(self.run_id, self._fills)
        self.ledger.write_trades(self.run_id, self._trades)
        self.ledger.write_events(self.run_id, self._events)
        self._orders, self._order_updates, self._fills, self._trades, self._events = [], [], [], [], []


def _dumps(obj: dict[str, Any]) -> str:
    from tradewarden.ledger.store import dumps
    return dumps(obj)


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
