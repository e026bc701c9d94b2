"""The TradingEngine: the one tick path shared by replay, paper and live.

:meth:`TradingEngine.on_bar` is the reference path. For one bar of one symbol it runs
the steps of the map in ``ARCHITECTURE.md``:

0. the bar has closed (``clock.wait_until``); an entry while halted, paused or on
   stale data (measured from the bar's close) is ``blocked``;
1. ``broker.process(bar)``: the order events up to the bar's close (fills, bracket
   take-profit / stop-loss triggers) update positions and cash;
2. the strategy's decision for the bar (``hold`` / ``enter_long`` / ``exit``);
3. ``risk.evaluate_entry``: sized order or rejection;
4. ``governor.authorize``: execute, queue for approval, or monitor only;
5. the decision is recorded (always, before acting);
6. ``broker.submit`` and the order recorded;
7. fills update the accounts; round trips end in :meth:`TradingEngine.finalize_exit`.

Strategies are vectorised: :meth:`TradingEngine.prepare` computes a symbol's frame over
``warmup`` bars of history plus the new bars (a whole file chunk in replay, one bar in
paper and live), and ``on_bar`` reads the bar's row.

Replay may take the **batch path** (:meth:`TradingEngine.process_chunk`): the same step
methods (``_apply``, ``_enter``, ``_exit``) for the bars where something can happen,
with three shortcuts (:class:`Shortcuts`) that each can be switched off, packed
decision codes and Arrow assembly of the rows. Both paths write identical ledger rows
(``tests/engine/test_paths.py`` proves it, shortcut by shortcut). The batch path needs
a bar-simulating broker (``SimBroker``: ``fill_bar`` and its quiet band); with any
other broker ``process_chunk`` runs the reference path.

Decisions, equity marks, orders, fills and trades are buffered and written by
:meth:`TradingEngine.flush` (per chunk in replay; the kernel flushes after every bar
in paper and live).

Position state per symbol: flat → entry_pending → open → exit_pending → flat.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from decimal import Decimal
from heapq import heappop, heappush
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from tradewarden.domain import (
    Action,
    Bar,
    BarSeries,
    Decision,
    ExitReason,
    Instrument,
    Order,
    OrderRole,
    OrderStatus,
    OrderType,
    Position,
    PositionState,
    Side,
    Signal,
    Trade,
    Verdict,
    to_decimal,
)
from tradewarden.domain.timeframes import timeframe_label, timeframe_seconds
from tradewarden.engine.clock import Clock
from tradewarden.engine.inbox import Operations
from tradewarden.engine.order_ids import DuplicateOrderId, OrderIds, RunOrderIds
from tradewarden.engine.portfolio import Holding
from tradewarden.engine.ports import Governor, LedgerSink, RiskGate
from tradewarden.execution.base import STATUS_AFTER, Broker, OrderEvent, OrderEventKind
from tradewarden.strategy import SignalFrame, Strategy

_EXIT_REASON = {OrderRole.STOP_LOSS: ExitReason.STOP_LOSS, OrderRole.TAKE_PROFIT: ExitReason.TAKE_PROFIT}
_BUY = Side.BUY
_FILLED, _TRIGGERED = OrderEventKind.FILLED, OrderEventKind.TRIGGERED
_ACCEPTED, _WORKING = OrderEventKind.ACCEPTED, OrderEventKind.WORKING
_REJECTED = OrderEventKind.REJECTED
_ENDED = frozenset({OrderEventKind.CANCELLED, OrderEventKind.REJECTED, OrderEventKind.EXPIRED})
_EMULATED = "held by the engine until the entry fills (emulated bracket)"
_INF, _NEG_INF = float("inf"), float("-inf")
_ZERO = Decimal(0)
_EXECUTE, _QUEUE = Verdict.EXECUTE, Verdict.QUEUE

# Packed decision code: (reason_id << 8) | (state << 4) | action
HOLD, ENTER, EXIT, REJECTED, BLOCKED, QUEUED, MONITORED, REBALANCE = range(8)
ACTIONS = ("hold", "enter_long", "exit", "rejected", "blocked", "queued", "monitored",
           "rebalance")
#: A resize the risk manager finds too small to trade: the bar is a plain hold.
_DUST = frozenset({"no_change", "below_min_notional", "below_min_quantity"})
FLAT, ENTRY_PENDING, OPEN, EXIT_PENDING = range(4)
_STATE_ENUMS = (PositionState.FLAT, PositionState.ENTRY_PENDING, PositionState.OPEN,
                PositionState.EXIT_PENDING)
STATES = tuple(s.value for s in _STATE_ENUMS)
_DECISION_COLUMNS = ("run_id", "seq", "ts", "symbol", "action", "reason", "state", "close", "equity",
                     "x1", "x2", "x3", "x4", "detail")


@dataclass(frozen=True, slots=True)
class Shortcuts:
    """The batch path's shortcuts; each only skips work, never changes a ledger row.

    Parameters
    ----------
    skip_flat : bool
        A flat symbol with no open orders cannot change state before its next entry
        signal: its bars in between are recorded as the frame's holds without a visit.
    skip_quiet_band : bool
        A bar inside the simulated broker's quiet band (it touches no resting level and
        no market order is pending) is not passed to the broker.
    skip_quiet_open : bool
        Independent capital only: the bars of an open position that neither touch its
        bracket's quiet band nor carry an exit signal are recorded as holds without a
        visit (the account's running peak takes their highest close).
    """

    skip_flat: bool = True
    skip_quiet_band: bool = True
    skip_quiet_open: bool = True


#: Every shortcut off: the batch path visits every bar (for the equivalence tests).
NO_SHORTCUTS = Shortcuts(False, False, False)


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
    holding: Holding
    state: int = FLAT
    active: bool = False
    qty: float = 0.0
    last_close: float = 0.0
    mark: float = 0.0                # the latest close seen (reference path's equity rows)
    tail: BarSeries | None = None
    levels: tuple[Decimal | None, Decimal | None] = (None, None)  # bracket (stop-loss, take-profit)
    band_lo: float = float("inf")    # broker's quiet band: bars inside it fill nothing
    band_hi: float = float("-inf")
    bar_seconds: int = 0
    timeframe: str = ""
    bars: BarSeries | None = None    # the prepared bars and their frame (reference path)
    frame: SignalFrame | None = None
    cursor: int = 0
    exit_reason: ExitReason | None = None    # set while close_all flattens the symbol
    exit_owed: str | None = None     # an exit signal the venue could not take yet (retried)
    rebalancing: str | None = None   # the client order id of a resize still working

    @property
    def position(self) -> Position | None:
        """The open position (average entry price, bracket levels), ``None`` when flat."""
        return self.holding.position(*self.levels)


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


class TradingEngine(Operations):
    """Run a strategy through risk, governor and broker, recording every decision.

    Parameters
    ----------
    run_id : str
    strategy : Strategy
    risk : RiskGate
        Usually :class:`tradewarden.risk.RiskManager`.
    broker : Broker
        Any implementation of the port in :mod:`tradewarden.execution.base`.
    governor : Governor
    ledger : LedgerSink
    instruments : dict of str to Instrument
        One per symbol, in the order symbols are tie-broken within a timestamp.
    capital : Decimal
        Starting cash in quote currency: per symbol in ``independent`` mode, in total
        in ``portfolio`` mode.
    clock : Clock
        The mode's clock (``ReplayClock`` in replay, ``WallClock`` in paper and live).
    capital_mode : {"independent", "portfolio"}
    stale_after : int, optional
        Seconds after a bar's close beyond which it is stale (clock time); entries on
        stale bars are blocked. ``None`` disables the check (replay).
    reference : bool
        Run :meth:`process_chunk` bar by bar through :meth:`on_bar` instead of the
        batch path.
    shortcuts : Shortcuts, optional
        The batch path's shortcuts (all on by default).
    order_ids : OrderIds, optional
        Where client order ids come from: replay's deterministic ``RunOrderIds`` by
        default, a deployment's persisted sequence in paper and live.
    deployment_id : str, optional
        Journal mode: save the engine's state (:meth:`snapshot`) with every commit, for
        the deployment's next start to :meth:`restore`.
    journal : bool
        Paper and live: commit each decision and its orders to the ledger before
        ``broker.submit`` (the order journal), and record every venue event in
        ``order_events``. Implies the reference path.

    Raises
    ------
    ValueError
        An unknown capital mode, or a strategy with more than four decision inputs.
    """

    def __init__(self, *, run_id: str, strategy: Strategy, risk: RiskGate, broker: Broker,
                 governor: Governor, ledger: LedgerSink, instruments: dict[str, Instrument],
                 capital: Decimal, clock: Clock, capital_mode: str = "independent",
                 stale_after: int | None = None, reference: bool = False,
                 shortcuts: Shortcuts | None = None, journal: bool = False,
                 order_ids: OrderIds | None = None, deployment_id: str | None = None) -> None:
        if capital_mode not in ("independent", "portfolio"):
            raise ValueError(f"capital mode must be independent or portfolio, got {capital_mode!r}")
        if len(strategy.input_names) > 4:
            raise ValueError(f"strategy {strategy.name!r} declares more than 4 decision inputs")
        self.run_id = run_id
        self.strategy = strategy
        #: The strategy's resize hook (``rebalance(frame, t, weight_now) -> target or
        #: None``: the rank strategy), asked on every open bar without an exit.
        self._rebalance_hook = getattr(strategy, "rebalance", None)
        self.risk = risk
        self.broker = broker
        self.governor = governor
        self.ledger = ledger
        self.clock = clock
        self.capital_mode = capital_mode
        self.stale_after = stale_after
        self.shortcuts = shortcuts or Shortcuts()
        self.journal = journal
        self.order_ids = order_ids or RunOrderIds(run_id)
        self._issued: set[str] = set()
        self.deployment_id = deployment_id
        self._open: dict[str, Order] = {}      # journal mode: the orders not yet ended
        self._state_seq = 0
        self._last_ts: int | None = None
        self._bar_ctx: tuple[_Sym, Bar, SignalFrame, int] | None = None
        self._journaled: tuple[int, str | None] | None = None
        self._oev_seq = 0
        # The batch path drives a bar simulator directly (SimBroker's fill_bar and quiet band).
        self.simulated = all(hasattr(broker, a) for a in ("fill_bar", "active_band"))
        self.reference = reference or not self.simulated or journal
        caps = broker.capabilities
        self.native_bracket = caps.native_bracket
        self.native_oco = caps.native_oco
        self.paused = False
        #: Entry blocks from outside the tick path: decision reason -> message (a stalled
        #: feed, a reconciliation difference; see :mod:`tradewarden.engine.inbox`).
        self.blocks: dict[str, str] = {}
        self._command_results: list[tuple[int, str, str, str]] = []
        self._approval_updates: list[tuple[int, str, str | None, str | None, str | None]] = []
        self._recon_rows: list[dict[str, Any]] = []
        self._recon_updates: list[tuple[str, int, str, str, str]] = []
        self._recon_seq = 0
        self._filled: dict[str, Decimal] = {}    # journal mode: base units booked per open order
        self._unwritten: set[str] = set()        # journal mode: orders buffered, not yet written
        self._order_run: dict[str, str] = {}     # orders written by an earlier run of the deployment
        self._accepted_unknown: set[str] = set()
        self._state_dirty = False
        self._reconciling = False
        #: Symbols whose venue status blocks entries (``cancel_only``, ...): symbol -> why.
        self.venue_blocks: dict[str, str] = {}
        #: The venue's symbols that cannot take an exit now (an IBKR session down):
        #: ``broker.exit_blocks() -> {symbol: why}``, asked at the exit itself.
        self._exit_blocks = getattr(broker, "exit_blocks", None)
        # A venue whose stop-loss may fill below its trigger (Coinbase's stop-limit) says
        # how far: risk sizes by that price.
        self._worst_stop = getattr(broker, "worst_stop_fill", None)
        self.counts = EngineCounts()
        names = list(instruments)
        if capital_mode == "independent":
            self.accounts = [_Account(n, capital, float(capital)) for n in names]
            self.syms = [_Sym(i, n, instruments[n], i, Holding(n)) for i, n in enumerate(names)]
        else:
            self.accounts = [_Account("portfolio", capital, float(capital))]
            self.syms = [_Sym(i, n, instruments[n], 0, Holding(n)) for i, n in enumerate(names)]
        for s in self.syms:
            self.accounts[s.acct].symbols.append(s)
        for a in self.accounts:
            a.cash_f = float(a.cash)
        self.by_name = {s.name: s for s in self.syms}
        if self.simulated and getattr(broker, "funds", None) is None:
            broker.funds = lambda sym: self.accounts[self.by_name[sym].acct].cash_f
        # Emulated brackets (venues without native ones): legs held until their entry
        # fills, then each leg's OCO sibling once both rest at the venue.
        self.held_legs: dict[str, tuple[Order, ...]] = {}
        self.oco_sibling: dict[str, Order] = {}
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
        # Cash/position changes in this batch: (row k, account, cash after, symbol, qty after)
        self._changes: list[tuple[int, int, float, int, float]] = []
        # Equity rows made outside a batch row (initial capital, end-of-data liquidation)
        self._marks: list[tuple[int, int, float, float]] = []
        self._orders: list[Order] = []
        self._order_updates: list[tuple[str, str, str, int]] = []
        self._fills: list[tuple[int, Any]] = []
        self._trades: list[Trade] = []
        self._events: list[tuple[int, int | None, str, str | None, str]] = []
        self._order_events: list[tuple[int, int, str, str, str, str | None, int | None]] = []
        self._approvals: list[dict[str, Any]] = []
        # Rows of the reference path: ts, symbol index, close, equity, inputs
        self._row_ts: list[int] = []
        self._row_sym: list[int] = []
        self._row_close: list[float] = []
        self._row_equity: list[float] = []
        self._row_x: list[list[float]] = [[] for _ in self.strategy.input_names]

    def equity(self, acct: int) -> float:
        """Mark-to-market equity of account ``acct`` at the last closes seen (quote currency).

        Cash plus each held quantity times its symbol's last close, summed in symbol
        order (the order the batch path's vectorised equity column adds them in).
        """
        a = self.accounts[acct]
        v = a.cash_f
        for s in a.symbols:
            if s.qty:
                v = v + s.qty * s.last_close
        return v

    def open_positions(self) -> int:
        """Positions open or pending across every account."""
        n = 0
        for s in self.syms:
            if s.state:           # FLAT is 0
                n += 1
        return n

    def event(self, ts: int | None, kind: str, symbol: str | None, message: str) -> None:
        """Record an engine event (halt, reset, data problem, info)."""
        self._events.append((self._event_seq, ts, kind, symbol, message))
        self._event_seq += 1

    def _sync_band(self, s: _Sym) -> None:
        """Refresh the symbol's copy of the simulated broker's quiet band (batch path)."""
        if self.simulated:
            band = self.broker.active_band(s.name)
            if band is None:
                s.active, s.band_lo, s.band_hi = False, _INF, _NEG_INF
            else:
                s.active = True
                s.band_lo, s.band_hi = band

    def _order_changed(self, order: Order, reason: str, ts: int) -> None:
        """Record a status change: in place if the order is still in this batch.

        Orders decided since the last flush (``decision_seq`` at or after the batch's
        first sequence number) are still buffered and are written in their final state.
        """
        order.updated_ts = ts
        if self.journal:
            if not order.status.is_open:
                self._open.pop(order.client_order_id, None)
                self._filled.pop(order.client_order_id, None)
            buffered = order.client_order_id in self._unwritten
        else:
            buffered = order.decision_seq >= self._seq
        if buffered:
            order.status_reason = reason
        else:
            self._order_updates.append((order.client_order_id, order.status.value, reason, ts))

    def _submit_record(self, orders: list[Order]) -> None:
        """Record new orders (before they are sent); deny an id issued before."""
        issued = self._issued
        for o in orders:
            cid = o.client_order_id
            if cid in issued:
                raise DuplicateOrderId(f"client order id {cid!r} was issued before: the engine "
                                       "never sends one id twice")
            issued.add(cid)
            if self.journal:
                self._open[cid] = o
                self._unwritten.add(cid)
        self._orders.extend(orders)
        self.counts.orders += len(orders)

    def _mark_initial(self, t0: int) -> None:
        if not self._marked_initial:
            for a_i, a in enumerate(self.accounts):
                self._marks.append((t0, a_i, a.cash_f, a.cash_f))
            self._marked_initial = True

    def bracket_state(self) -> tuple[dict[str, list[str]], dict[str, str]]:
        """The emulated brackets' state, by client order id.

        Returns
        -------
        held : dict of str to list of str
            Entry id -> the ids of its legs the engine holds until the entry fills.
        pairs : dict of str to str
            Leg id -> its OCO sibling's id, for legs working at the venue.

        Notes
        -----
        Every leg is an ``orders`` row (``parent_id`` = its entry) whose status the
        ledger keeps current, so :func:`bracket_state_from_orders` rebuilds the same
        state from the ledger after each flush.
        """
        held = {e: [leg.client_order_id for leg in legs] for e, legs in self.held_legs.items()}
        pairs = {c: o.client_order_id for c, o in self.oco_sibling.items()}
        return held, pairs

    # -- persistence (paper and live) ----------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Return the state a deployment needs to resume, as JSON-safe values.

        The last bar's open time (``ts``, UTC epoch seconds: a resumed feed starts after
        it), accounts (cash as exact text, running peak), per symbol the position state,
        :class:`~tradewarden.engine.portfolio.Holding`, bracket levels and last closes,
        the open orders (journal mode tracks them), emulated bracket legs and pairs,
        the risk breakers (:meth:`RiskManager.snapshot`: a halt survives a restart) and,
        for a simulated venue, its books. Money and quantities are decimal text.
        """
        broker_snap = getattr(self.broker, "snapshot", None)
        return {
            "version": 1,
            "ts": self._last_ts,
            "state_seq": self._state_seq,
            "accounts": [{"name": a.name, "cash": str(a.cash), "peak": a.peak} for a in self.accounts],
            "symbols": [{"name": s.name, "state": s.state, "holding": s.holding.to_dict(),
                         "levels": [None if v is None else str(v) for v in s.levels],
                         "last_close": s.last_close, "mark": s.mark,
                         **({"exit_owed": s.exit_owed} if s.exit_owed else {}),
                         **({"rebalancing": s.rebalancing} if s.rebalancing else {})}
                        for s in self.syms],
            "orders": [{**_order_dict(o), "run_id": self._order_run.get(c, self.run_id)}
                       for c, o in self._open.items()],
            "held_legs": {e: [leg.client_order_id for leg in legs] for e, legs in self.held_legs.items()},
            "oco": {c: o.client_order_id for c, o in self.oco_sibling.items()},
            "risk": self.risk.snapshot(),
            "broker": broker_snap() if self.simulated and broker_snap is not None else None,
            "paused": self.paused,
            "filled": {c: str(q) for c, q in self._filled.items()},
            "accepted_unknown": sorted(self._accepted_unknown),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Resume from a :meth:`snapshot` (a fresh engine, before its first bar).

        Orders open at the snapshot are re-created; a simulated venue gets its books
        back. What happened at the venue since (fills, acknowledgements, orders it never
        received) is for :meth:`reconcile`, which must run before the next bar (the
        kernel runs it when it assembles a deployment).

        Raises
        ------
        ValueError
            Another snapshot version, accounts or symbols that differ from this engine's,
            or a malformed snapshot.
        """
        if state.get("version") != 1:
            raise ValueError(f"engine state version {state.get('version')!r}; this engine reads 1")
        names = [a["name"] for a in state["accounts"]]
        if names != [a.name for a in self.accounts]:
            raise ValueError(f"engine state accounts {names} differ from {[a.name for a in self.accounts]}")
        syms = [d["name"] for d in state["symbols"]]
        if syms != [s.name for s in self.syms]:
            raise ValueError(f"engine state symbols {syms} differ from {[s.name for s in self.syms]}")
        orders = {d["client_order_id"]: _order_from(d) for d in state["orders"]}
        self._order_run = {d["client_order_id"]: d.get("run_id") or self.run_id for d in state["orders"]}
        broker_state = state.get("broker")
        for a, d in zip(self.accounts, state["accounts"]):
            a.cash, a.peak = Decimal(d["cash"]), float(d["peak"])
            a.cash_f = float(a.cash)
        for s, d in zip(self.syms, state["symbols"]):
            s.holding = Holding.from_dict(d["holding"])
            s.state = int(d["state"])
            s.levels = tuple(None if v is None else Decimal(v) for v in d["levels"])
            s.qty = float(s.holding.quantity)
            s.last_close, s.mark = float(d["last_close"]), float(d["mark"])
            s.exit_owed = d.get("exit_owed")
            s.rebalancing = d.get("rebalancing")
        self.risk.restore(state["risk"])
        self._open = dict(orders)
        self._issued.update(orders)
        self.held_legs = {e: tuple(orders[c] for c in cids) for e, cids in state["held_legs"].items()}
        self.oco_sibling = {c: orders[o] for c, o in state["oco"].items()}
        self._last_ts = state.get("ts")
        self._state_seq = int(state.get("state_seq", -1)) + 1    # a deployment's states stay in order
        self.paused = bool(state.get("paused", False))
        self._filled = {c: Decimal(q) for c, q in state.get("filled", {}).items()}
        self._accepted_unknown = set(state.get("accepted_unknown", ()))
        if broker_state is not None and hasattr(self.broker, "restore"):
            self.broker.restore(broker_state, orders)
        for s in self.syms:
            self._sync_band(s)

    # -- frames --------------------------------------------------------------------------
    def prepare(self, chunk: dict[str, BarSeries]) -> list[tuple[_Sym, BarSeries, SignalFrame]]:
        """Compute the strategy's frame for each symbol's new bars (after its warm-up tail).

        Parameters
        ----------
        chunk : dict of str to BarSeries
            New bars per symbol, each strictly after that symbol's previous bars.

        Returns
        -------
        list of (symbol state, bars, frame)
            For the symbols with bars, in ``chunk`` order; :meth:`on_bar` reads these
            frames for the same bars.

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
            if bars.timeframe != s.timeframe:
                s.timeframe, s.bar_seconds = bars.timeframe, timeframe_seconds(bars.timeframe)
            full = _concat(s.tail, bars) if s.tail is not None and len(s.tail) else bars
            frame = self.strategy.prepare(full)
            off = len(full) - len(bars)
            if off:
                frame = frame.slice(off)
            s.tail = full.slice(max(0, len(full) - warm), len(full))
            s.bars, s.frame, s.cursor = bars, frame, 0
            prepared.append((s, bars, frame))
        return prepared

    def _frame_row(self, s: _Sym, bar: Bar) -> tuple[SignalFrame, int]:
        """The frame and row of ``bar``: prepared earlier, or prepared now as a one-bar chunk."""
        b, i = s.bars, s.cursor
        if b is None or i >= len(b) or int(b.ts[i]) != bar.ts:
            tf = s.timeframe or timeframe_label(bar.close_ts - bar.ts)
            one = BarSeries(bar.symbol, tf, np.array([bar.ts], dtype=np.int64),
                            np.array([bar.open]), np.array([bar.high]), np.array([bar.low]),
                            np.array([bar.close]), np.array([bar.volume]), "feed")
            self.prepare({bar.symbol: one})
            i = 0
        s.cursor = i + 1
        return s.frame, i

    # -- the reference tick path ---------------------------------------------------------
    def on_bar(self, bar: Bar) -> Decision:
        """Run one closed bar of one symbol through the tick path and return the decision.

        The decision row, and any order, fill, trade or equity row it caused, is
        buffered until :meth:`flush`.

        Parameters
        ----------
        bar : Bar
            The next bar of ``bar.symbol`` (open and close times UTC epoch seconds).

        Returns
        -------
        Decision
            What was decided (``seq`` is its ledger sequence number).

        Raises
        ------
        ValueError
            Unknown symbol, or a bar not after the symbol's previous one.
        """
        s = self.by_name.get(bar.symbol)
        if s is None:
            raise ValueError(f"bar for unknown symbol {bar.symbol!r}")
        frame, i = self._frame_row(s, bar)
        ts, c = bar.ts, bar.close
        self._last_ts = ts
        # 0. the bar has closed: decide no earlier than its close
        self.clock.wait_until(bar.close_ts)
        self._mark_initial(ts)
        k = len(self._codes)
        self._codes.append(-1)
        # 1. what the venue did up to the bar's close
        events = self.broker.process(bar)
        if events:
            self._apply(s, events, k, c)
            self._sync_band(s)
        if s.qty:       # held at the bar's end: its range is the position's (MAE / MFE)
            h = s.holding
            if bar.low < h.low:
                h.low = bar.low
            if bar.high > h.high:
                h.high = bar.high
        # 2-6. decide, check, authorize, record, act
        self._bar_ctx = (s, bar, frame, i)
        st = s.state
        if st == FLAT:
            if frame.enter[i]:
                code = self._enter(s, frame, i, ts, c, k, bar.close_ts)
            else:
                code = self._code(HOLD, frame.reasons[int(frame.flat_reason[i])], FLAT)
        elif st == OPEN:
            s.last_close = c
            a = self.accounts[s.acct]
            v = self.equity(s.acct)
            if v > a.peak:
                a.peak = v
            if frame.exit[i] or s.exit_owed:
                code = self._exit(s, frame, i, ts, c, k, bar.close_ts)
            elif self._rebalance_hook is not None and s.rebalancing is None:
                code = self._rebalance(s, frame, i, ts, c, k, bar.close_ts)
            else:
                code = self._code(HOLD, frame.hold_reason, OPEN)
        else:
            code = self._code(HOLD, "entry_pending" if st == ENTRY_PENDING else "exit_pending", st)
        self._bar_ctx = None
        self.counts.bars += 1
        journaled, self._journaled = self._journaled, None
        if journaled is not None:       # the row was committed before the order was sent
            seq, detail = journaled
        else:
            self._codes[k] = code
            self._append_row(s, bar, frame, i)
            seq, detail = self._seq + k, self._details.get(k)
        return Decision(seq, ts, s.name, ACTIONS[code & 15], self._reasons[code >> 8],
                        _STATE_ENUMS[(code >> 4) & 15], c,
                        None if detail is None else orjson.loads(detail))

    def _process_reference(self, prepared: list[tuple[_Sym, BarSeries, SignalFrame]]) -> int:
        """Feed prepared bars to :meth:`on_bar` in timestamp order (ties in symbol order)."""
        lens, ts_cat, pos_cat, order = _merged_order(prepared)
        local = np.concatenate([np.arange(n, dtype=np.int64) for n in lens])
        series = [b for _, b, _ in prepared]
        for j, i in zip(pos_cat[order].tolist(), local[order].tolist()):
            self.on_bar(series[j].bar(i))
        self.flush()
        return int(order.shape[0])

    # -- the batch path --------------------------------------------------------------------
    def process_chunk(self, chunk: dict[str, BarSeries]) -> int:
        """Run every bar of ``chunk`` through the tick path and write the batch.

        The batch path (a bar-simulating broker, ``reference`` off) visits only the
        bars where something can happen; otherwise every bar goes through
        :meth:`on_bar`. Both write the same rows.

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
        prepared = self.prepare(chunk)
        if not prepared:
            return 0
        if self.reference:
            return self._process_reference(prepared)
        return self._run(prepared)

    def _run(self, prepared: list[tuple[_Sym, BarSeries, SignalFrame]]) -> int:
        lens, ts_cat, pos_cat, order = _merged_order(prepared)
        m = int(order.shape[0])
        S = [p[0] for p in prepared]
        F = [p[2] for p in prepared]
        for s in S:                   # the batch path reads the frames directly
            s.cursor = len(s.bars)

        hold_open = self._code(HOLD, F[0].hold_reason, OPEN)
        rebalance = self._rebalance_hook is not None
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
        HA = [b.high for _, b, _ in prepared]      # the same as arrays, for skipped ranges
        LA = [b.low for _, b, _ in prepared]
        C = [b.close.tolist() for _, b, _ in prepared]
        X = [f.exit.tolist() for f in F]
        pending_code = (0, self._code(HOLD, "entry_pending", ENTRY_PENDING), 0,
                        self._code(HOLD, "exit_pending", EXIT_PENDING))

        self._mark_initial(int(ts_cat.min()))
        start_state = ([a.cash_f for a in self.accounts], [s.qty for s in self.syms],
                       [s.last_close for s in self.syms])

        # Every event starts as the frame's hold-when-flat code. The loop visits only
        # events where something can happen (see Shortcuts).
        codes = np.concatenate(flat_codes)[order].tolist()
        self._codes = codes
        pos_ev = pos_cat[order]
        ev_of = [np.flatnonzero(pos_ev == j).tolist() for j in range(len(S))]
        sig_of = [np.flatnonzero(f.enter).tolist() for f in F]
        heap: list[tuple[int, int, int]] = []
        accounts = self.accounts
        fill_bar = self.broker.fill_bar
        portfolio = self.capital_mode == "portfolio"
        cuts = self.shortcuts
        skip_flat, skip_band = cuts.skip_flat, cuts.skip_quiet_band
        # a resize hook must see every open bar (the drift moves with the price)
        skip_open = cuts.skip_quiet_open and not portfolio and self._rebalance_hook is None
        inf = float("inf")

        def schedule(j: int, i: int) -> None:
            """Queue symbol j's next event to visit at or after its local bar i."""
            s = S[j]
            st = s.state
            if st == FLAT and not s.active and skip_flat:
                sig = sig_of[j]
                p = bisect_left(sig, i)
                if p == len(sig):
                    return
                i = sig[p]
            elif st == OPEN and skip_open and not s.exit_owed:
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
                    # the skipped bars' extremes (MAE / MFE), as on_bar takes them bar by
                    # bar: NumPy over a long range, the lists over a short one (cheaper)
                    h = s.holding
                    if q - i > 64:
                        lo, hi = float(LA[j][i:q].min()), float(HA[j][i:q].max())
                    else:
                        lo, hi = min(lw[i:q]), max(hg[i:q])
                    if lo < h.low:
                        h.low = lo
                    if hi > h.high:
                        h.high = hi
                    i = q
            if i < lens[j]:
                heappush(heap, (ev_of[j][i], j, i))

        for j in range(len(S)):
            schedule(j, 0)
        while heap:
            k, j, i = heappop(heap)
            s = S[j]
            if (s.active and (L[j][i] <= s.band_lo or H[j][i] >= s.band_hi)) or not skip_band:
                ups = fill_bar(s.name, TS[j][i], O[j][i], H[j][i], L[j][i], C[j][i])
                if ups:
                    self._apply(s, ups, k, C[j][i])
                    self._sync_band(s)
            if s.qty:       # held at the bar's end (MAE / MFE, as on_bar)
                h = s.holding
                lo, hi = L[j][i], H[j][i]
                if lo < h.low:
                    h.low = lo
                if hi > h.high:
                    h.high = hi
            st = s.state
            if st == FLAT:
                if codes[k] < 0:
                    codes[k] = self._enter(s, F[j], i, TS[j][i], C[j][i], k, TS[j][i] + s.bar_seconds)
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
                            v = v + o.qty * o.last_close
                else:
                    v = a.cash_f + s.qty * c
                if v > a.peak:
                    a.peak = v
                if X[j][i] or s.exit_owed:
                    codes[k] = self._exit(s, F[j], i, TS[j][i], c, k, TS[j][i] + s.bar_seconds)
                elif rebalance and s.rebalancing is None:
                    codes[k] = self._rebalance(s, F[j], i, TS[j][i], c, k,
                                               TS[j][i] + s.bar_seconds)
                else:
                    codes[k] = hold_open
            else:
                codes[k] = pending_code[st]
            schedule(j, i + 1)
        for s in S:
            s.mark = float(s.bars.close[-1])
        self._last_ts = max(int(s.bars.ts[-1]) for s in S)
        self._flush(prepared, order, m, start_state)
        self.counts.bars += m
        return m

    # -- the step methods: entries, exits, order events ----------------------------------
    def _enter(self, s: _Sym, frame: SignalFrame, i: int, ts: int, close: float, k: int,
               close_ts: int) -> int:
        self.clock.wait_until(close_ts)
        seq = self._seq + k
        acct = self.accounts[s.acct]
        # 0. fail closed: no new entries while paused, halted or on stale data
        block = why = None
        if self.paused:
            block = "paused"
        elif self.blocks:
            block = next(iter(self.blocks))
            why = self.blocks[block]
        elif self.venue_blocks and s.name in self.venue_blocks:
            block, why = "venue_status", self.venue_blocks[s.name]
        elif self.stale_after is not None and self.clock.now() - close_ts > self.stale_after:
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
                what = "why" if block in self.blocks or block == "venue_status" else "halt"
                text = self._blocked_detail[key] = _dumps({"signal": frame.entry_reason, what: why})
            self._details[k] = text
            return self._code(BLOCKED, block, FLAT)
        # 2. the strategy's decision for this bar (inputs are in the decision's columns)
        sig = self.strategy.decide(frame, i, False)
        detail: dict[str, Any] = {}
        if sig.stop_loss is not None:
            detail["stop_loss"] = sig.stop_loss
        if sig.take_profit is not None:
            detail["take_profit"] = sig.take_profit
        # 3. risk (sized by the worst fill the venue's stop allows, where it says)
        s.last_close = close
        risk_sig = sig
        if self._worst_stop is not None and sig.stop_loss is not None:
            risk_sig = sig._replace(stop_loss=float(self._worst_stop(to_decimal(sig.stop_loss), s.name)))
        verdict = self.risk.evaluate_entry(
            account=acct.name, instrument=s.inst, ts=ts, price=close, signal=risk_sig,
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
        # 4. governor (one that asks for the bar's context gets its close, time and seq)
        if getattr(self.governor, "bar_context", False):
            detail.update(price=close, ts=ts, decision_seq=seq)
        auth = self.governor.authorize(s.name, "enter_long", detail)
        detail["governor"] = auth.verdict
        if auth.verdict != _EXECUTE:
            self._details[k] = _dumps(detail)
            if auth.verdict == _QUEUE:
                self._queue_approval(s, k, ts, "enter_long", {
                    "signal": sig.reason, "price": close, "quantity": str(verdict.quantity),
                    "stop_loss": sig.stop_loss, "take_profit": sig.take_profit, "sizing": detail,
                    "account": {"name": acct.name, "cash": str(acct.cash),
                                "equity": self.equity(s.acct), "peak": acct.peak}})
            return self._code(QUEUED if auth.verdict == _QUEUE else MONITORED, auth.reason, FLAT)
        # 5 + 6. decision recorded (this buffer row precedes the order's), then submit
        entry, legs = self._entry_orders(s, verdict.quantity, sig.stop_loss, sig.take_profit, ts, seq)
        detail["orders"] = [entry.client_order_id] + [o.client_order_id for o in legs]
        self._details[k] = _dumps(detail)
        self._submit_record([entry, *legs])
        code = self._code(ENTER, sig.reason, FLAT)
        if self.journal:          # the decision and its orders are committed before acting
            k = self._commit_intent(k, code)
        self._send_entry(s, entry, legs, k, close)
        return code

    def _entry_orders(self, s: _Sym, qty: Decimal, stop_loss: float | None,
                      take_profit: float | None, ts: int, seq: int) -> tuple[Order, list[Order]]:
        """Build an entry's market order and its bracket legs (levels rounded away from
        the fill by the instrument's price increment) and set the symbol's levels."""
        pfx = self.order_ids.prefix(s.name, seq)
        entry = Order(f"{pfx}-entry", s.name, Side.BUY,
                      OrderType.MARKET, qty, OrderRole.ENTRY, ts, decision_seq=seq)
        legs: list[Order] = []
        if take_profit is not None:
            legs.append(Order(f"{pfx}-take_profit",
                              s.name, Side.SELL, OrderType.LIMIT, qty, OrderRole.TAKE_PROFIT, ts,
                              price=s.inst.ceil_price(take_profit),
                              parent_id=entry.client_order_id, decision_seq=seq))
        if stop_loss is not None:
            legs.append(Order(f"{pfx}-stop_loss",
                              s.name, Side.SELL, OrderType.STOP, qty, OrderRole.STOP_LOSS, ts,
                              stop_price=s.inst.floor_price(stop_loss),
                              parent_id=entry.client_order_id, decision_seq=seq))
        s.levels = (legs[-1].stop_price if stop_loss is not None else None,
                    legs[0].price if take_profit is not None else None)
        if legs and not self.native_bracket:
            for leg in legs:
                leg.status_reason = _EMULATED
            # held from now on, so the state the journal commits before sending knows them
            self.held_legs[entry.client_order_id] = tuple(legs)
        return entry, legs

    def _send_entry(self, s: _Sym, entry: Order, legs: list[Order], k: int, close: float) -> None:
        """Send a recorded entry: with its legs as a native bracket, or alone with the legs
        held by the engine until it fills (emulated bracket)."""
        if legs and not self.native_bracket:     # the legs are held (_entry_orders)
            events = self._submit(entry)
        else:
            events = self._submit(entry, tuple(legs))
        s.state = ENTRY_PENDING
        self._after_submit(s, events, k, close)
        self._sync_band(s)

    def _exit(self, s: _Sym, frame: SignalFrame, i: int, ts: int, close: float, k: int,
              close_ts: int) -> int:
        self.clock.wait_until(close_ts)
        sig = self.strategy.decide(frame, i, True)
        if not frame.exit[i]:           # an exit owed since the venue could not take it
            sig = Signal(Action.EXIT, s.exit_owed or sig.reason, sig.inputs)
        why = self._exit_blocks().get(s.name) if self._exit_blocks is not None else None
        if why is not None:             # keep the position (and its protective orders at
            s.exit_owed = sig.reason    # the venue); exit at the first bar it takes orders
            self.counts.blocked += 1
            self._details[k] = _dumps({"signal": sig.reason, "why": why,
                                       "kept": "the position and its protective orders"})
            return self._code(BLOCKED, "venue_status", OPEN)
        s.exit_owed = None
        seq = self._seq + k
        detail: dict[str, Any] = {}
        if getattr(self.governor, "bar_context", False):
            detail.update(signal=sig.reason, quantity=str(s.holding.quantity), price=close,
                          ts=ts, decision_seq=seq)
        auth = self.governor.authorize(s.name, "exit", detail)
        if auth.verdict != _EXECUTE:
            self._details[k] = _dumps({**detail, "governor": auth.verdict})
            if auth.verdict == _QUEUE:
                acct = self.accounts[s.acct]
                self._queue_approval(s, k, ts, "exit", {
                    **({"agent_decision_id": detail["agent_decision_id"]}
                       if "agent_decision_id" in detail else {}),
                    "signal": sig.reason, "price": close, "quantity": str(s.holding.quantity),
                    "account": {"name": acct.name, "cash": str(acct.cash),
                                "equity": self.equity(s.acct), "peak": acct.peak}})
            return self._code(QUEUED if auth.verdict == _QUEUE else MONITORED, auth.reason, OPEN)
        self._cancel_symbol(s, ts, "signal exit")
        order = Order(f"{self.order_ids.prefix(s.name, seq)}-exit", s.name, Side.SELL,
                      OrderType.MARKET, s.holding.quantity, OrderRole.EXIT, ts, decision_seq=seq)
        detail["orders"] = [order.client_order_id]
        self._details[k] = _dumps(detail)
        self._submit_record([order])
        code = self._code(EXIT, sig.reason, OPEN)
        if self.journal:
            k = self._commit_intent(k, code)
        events = self._submit(order)
        s.state = EXIT_PENDING
        self._after_submit(s, events, k, close)
        self._sync_band(s)
        return code

    def _rebalance(self, s: _Sym, frame: SignalFrame, i: int, ts: int, close: float, k: int,
                   close_ts: int) -> int:
        """Resize a held position to the strategy's target weight, or hold.

        The strategy's hook names a target when the holding drifted off it; the risk
        manager sizes the difference (``evaluate_rebalance``: a buy within cash and the
        caps, or a partial sale, never the whole position); the governor authorises it;
        one market order of role ``rebalance`` is sent. A resize too small to trade, and
        a position with protective legs (their quantity would no longer match), are a
        plain hold with the reason in the detail. A buy is blocked as an entry is
        (paused, halted, venue status, stale data); a sale only by a venue that cannot
        take orders. A governor verdict other than execute is recorded as monitored:
        the drift is decided afresh at every bar, so there is nothing to approve later.
        """
        hold = self._code(HOLD, frame.hold_reason, OPEN)
        acct = self.accounts[s.acct]
        eq = self.equity(s.acct)
        if not eq > 0 or not close > 0:
            return hold
        weight_now = float(s.holding.quantity) * close / eq
        target = self._rebalance_hook(frame, i, weight_now)
        if target is None:
            return hold
        self.clock.wait_until(close_ts)
        detail: dict[str, Any] = {"target_weight": target, "weight_now": round(weight_now, 6)}
        if s.levels != (None, None):
            self._details[k] = _dumps({**detail, "rebalance": "rebalance_with_bracket"})
            return hold
        verdict = self.risk.evaluate_rebalance(
            account=acct.name, instrument=s.inst, ts=ts, price=close, held=s.holding.quantity,
            target_weight=target, equity=eq, peak_equity=acct.peak, cash=acct.cash_f)
        self._drain_risk_events()
        if not verdict.approved and verdict.reason in _DUST:
            self._details[k] = _dumps({**detail, "rebalance": verdict.reason})
            return hold
        detail.update(verdict.detail)
        if not verdict.approved:
            self._details[k] = _dumps(detail)
            if verdict.reason.startswith("halted"):
                self.counts.blocked += 1
                return self._code(BLOCKED, verdict.reason, OPEN)
            self.counts.rejected += 1
            return self._code(REJECTED, verdict.reason, OPEN)
        qty = verdict.quantity
        buy = qty > 0
        block = why = None
        if buy and self.paused:
            block = "paused"
        elif buy and self.blocks:
            block = next(iter(self.blocks))
            why = self.blocks[block]
        elif buy and self.venue_blocks and s.name in self.venue_blocks:
            block, why = "venue_status", self.venue_blocks[s.name]
        elif buy and self.stale_after is not None and self.clock.now() - close_ts > self.stale_after:
            block = "stale_data"
        elif self._exit_blocks is not None and s.name in self._exit_blocks():
            block, why = "venue_status", self._exit_blocks()[s.name]
        if block is not None:
            self.counts.blocked += 1
            self._details[k] = _dumps({**detail, "why": why})
            return self._code(BLOCKED, block, OPEN)
        seq = self._seq + k
        if getattr(self.governor, "bar_context", False):
            detail.update(price=close, ts=ts, decision_seq=seq)
        auth = self.governor.authorize(s.name, "rebalance", detail)
        detail["governor"] = auth.verdict
        if auth.verdict != _EXECUTE:
            self._details[k] = _dumps(detail)
            return self._code(MONITORED, auth.reason, OPEN)
        order = Order(f"{self.order_ids.prefix(s.name, seq)}-rebalance", s.name,
                      Side.BUY if buy else Side.SELL, OrderType.MARKET, abs(qty),
                      OrderRole.REBALANCE, ts, decision_seq=seq)
        detail["orders"] = [order.client_order_id]
        detail["quantity"] = str(qty)
        self._details[k] = _dumps(detail)
        self._submit_record([order])
        code = self._code(REBALANCE, "weight_drift", OPEN)
        if self.journal:
            k = self._commit_intent(k, code)
        s.rebalancing = order.client_order_id
        events = self._submit(order)
        self._after_submit(s, events, k, close)
        self._sync_band(s)
        return code

    def _submit(self, order: Order, legs: tuple[Order, ...] = ()) -> list[OrderEvent]:
        """``broker.submit``; an order the venue adapter refuses before sending anything
        (``ValueError``: a bracket it cannot place, a size it cannot express) is answered
        ``rejected`` with the adapter's words, so a journaled order never stops the
        deployment (it would be refused again at every restart)."""
        try:
            return self.broker.submit(order, legs)
        except ValueError as exc:
            why = f"refused before sending: {exc}"
            return [OrderEvent(o, _REJECTED, o.created_ts, why) for o in (order, *legs)]

    def _after_submit(self, s: _Sym, events: list[OrderEvent], k: int, close: float) -> None:
        """Apply what a venue answered to a submit: an acknowledgement sets the new
        order's status (it is still in this batch and is written in its final state;
        the simulated broker sets it itself); anything else (a reject, an immediate
        fill) goes through :meth:`_apply`."""
        sim = self.simulated
        n = 0
        for e in events:
            kind = e.kind
            if kind is not _ACCEPTED and kind is not _WORKING:
                self._apply(s, events[n:], k, close)
                return
            if not sim:
                e.order.status = STATUS_AFTER[kind]
            if self.journal:
                self._journal_event(e, None)
                self._order_changed(e.order, e.reason, e.ts)
            n += 1

    def _cancel_symbol(self, s: _Sym, ts: int, reason: str) -> None:
        """Cancel every open order of ``s`` at the venue and every leg the engine holds."""
        for e in self.broker.cancel_all(s.name, ts, reason):
            e.order.status = e.status
            if self.journal:
                self._journal_event(e, None)
            self._order_changed(e.order, e.reason, ts)
            self.oco_sibling.pop(e.order.client_order_id, None)
        if not self.held_legs:
            return
        for cid in [c for c, legs in self.held_legs.items() if legs[0].symbol == s.name]:
            for leg in self.held_legs.pop(cid):
                leg.status = OrderStatus.CANCELLED
                self._order_changed(leg, reason, ts)

    def _apply(self, s: _Sym, events: list[OrderEvent], k: int, close: float) -> None:
        """Apply order events of symbol ``s`` on row ``k`` (bar close ``close``).

        Fills update cash and the :class:`~tradewarden.engine.portfolio.Holding`
        (average entry price, fees per fill); a round trip ends in
        :meth:`finalize_exit` only when the position is flat. Emulated brackets are
        armed when their entry fills and their OCO sibling cancelled when a leg fills.
        """
        acct = self.accounts[s.acct]
        queue = events
        n = 0
        while n < len(queue):
            e = queue[n]
            n += 1
            order = e.order
            kind = e.kind
            if self.journal:
                self._journal_event(e, self._fill_seq if e.fill is not None else None)
            if kind is _TRIGGERED:
                continue
            order.status = STATUS_AFTER[kind]
            self._order_changed(order, e.reason, e.ts)
            f = e.fill
            if f is None:
                if kind in _ENDED:
                    more = self._order_ended(s, order, e)
                    if more:
                        queue = queue[n:] + more
                        n = 0
                continue
            self._fills.append((self._fill_seq, f))
            self._fill_seq += 1
            self.counts.fills += 1
            if self.journal and order.status.is_open:
                self._filled[order.client_order_id] = self._filled.get(order.client_order_id, _ZERO) + f.quantity
            h = s.holding
            if s.rebalancing is not None and not order.status.is_open \
                    and order.client_order_id == s.rebalancing:
                s.rebalancing = None
            if f.side is _BUY:
                acct.add_cash(-(f.price * f.quantity + f.fee))
                if not h.fills:         # the first fill of a round trip
                    self.counts.trades_opened += 1
                h.apply(f)
                s.qty = float(h.quantity)
                s.state = OPEN
                self._changed(k, s, acct, f.ts)
                if kind is _FILLED and self.held_legs:
                    legs = self.held_legs.pop(order.client_order_id, None)
                    if legs:
                        queue = queue[n:] + self._arm_legs(legs, e.ts)
                        n = 0
            else:
                acct.add_cash(f.price * f.quantity - f.fee)
                trade = h.apply(f, s.exit_reason or _EXIT_REASON.get(f.role, ExitReason.SIGNAL))
                if self.oco_sibling and not self.native_oco:
                    more = self._emulated_oco(order, kind, h.quantity, e.ts)
                    if more:
                        queue = queue[n:] + more
                        n = 0
                if trade is None:
                    s.qty = float(h.quantity)
                    self._changed(k, s, acct, f.ts)
                else:
                    self.finalize_exit(s, trade, k)
        s.last_close = close

    def _queue_approval(self, s: _Sym, k: int, ts: int, action: str, intent: dict[str, Any]) -> None:
        """Persist an intent the governor queued, with the risk figures it was checked
        against (the account's breakers included), as a pending approval."""
        intent["breakers"] = self.risk.snapshot().get(self.accounts[s.acct].name)
        self._approvals.append({"decision_seq": self._seq + k, "ts": ts, "symbol": s.name,
                                "action": action, "intent": _dumps(intent),
                                "deployment_id": self.deployment_id})

    def _changed(self, k: int, s: _Sym, acct: _Account, ts: int) -> None:
        """Note a cash/position change: on row ``k``'s equity mark, or (``k < 0``:
        outside a buffered row) as an equity row of its own at once."""
        if k >= 0:
            self._changes.append((k, s.acct, acct.cash_f, s.idx, s.qty))
        else:
            self._marks.append((ts, s.acct, acct.cash_f, self.equity(s.acct)))

    def _journal_event(self, e: OrderEvent, fill_seq: int | None) -> None:
        """Add one venue event to the order journal (written with the next flush)."""
        self._order_events.append((self._oev_seq, e.ts, e.order.client_order_id, e.kind.value,
                                   STATUS_AFTER[e.kind].value, e.reason or None, fill_seq))
        self._oev_seq += 1

    def _commit_intent(self, k: int, code: int) -> int:
        """Journal mode: commit this bar's decision row and its orders before the broker
        sees them; return ``-1``, the row index for what follows in the bar.

        The row is the one :meth:`on_bar` would write at the end of the bar: the equity
        at the close (after the bar's fills, before acting), the inputs and detail.
        Everything buffered before it (earlier rows, the bar's order events and fills)
        is written in the same transaction.

        Raises
        ------
        RuntimeError
            Outside :meth:`on_bar` (the batch path does not journal).
        """
        ctx = self._bar_ctx
        if ctx is None or k != len(self._codes) - 1:
            raise RuntimeError("the order journal needs the per-bar reference path (on_bar)")
        s, bar, frame, i = ctx
        self._codes[k] = code
        self._append_row(s, bar, frame, i)
        self._journaled = (self._seq + k, self._details.get(k))
        self.flush()
        self.ledger.drain()        # durable, not just queued, before the broker sees it
        return -1

    def _append_row(self, s: _Sym, bar: Bar, frame: SignalFrame, i: int) -> None:
        """Buffer the decision row of ``bar``: equity at its close, the strategy's inputs."""
        c = bar.close
        s.mark = c
        a = self.accounts[s.acct]
        if self.capital_mode == "independent":
            eq = a.cash_f + s.qty * c
        else:
            eq = a.cash_f
            for o in a.symbols:
                if o.qty:
                    eq = eq + o.qty * o.mark
        self._row_ts.append(bar.ts)
        self._row_sym.append(s.idx)
        self._row_close.append(c)
        self._row_equity.append(eq)
        for n, name in enumerate(self.strategy.input_names):
            self._row_x[n].append(float(frame.inputs[name][i]))

    def _arm_legs(self, legs: tuple[Order, ...], ts: int) -> list[OrderEvent]:
        """Submit an emulated bracket's legs now that their entry filled; pair them as OCO."""
        out: list[OrderEvent] = []
        for leg in legs:
            leg.status_reason = ""
            if self._reconciling:       # the venue may have it from before a crash
                v = self.broker.lookup(leg.client_order_id)
                if v is not None:
                    out += self._events_since(leg, v, ts)
                    continue
            out += self._submit(leg)
        if len(legs) == 2:
            self.oco_sibling[legs[0].client_order_id] = legs[1]
            self.oco_sibling[legs[1].client_order_id] = legs[0]
        return out

    def _emulated_oco(self, leg: Order, kind: OrderEventKind, remaining: Decimal,
                      ts: int) -> list[OrderEvent]:
        """Keep an emulated OCO pair consistent after a fill of ``leg``.

        Filled: cancel the sibling at the venue. Partly filled: the sibling must not
        sell more than is still held, so it is replaced (cancelled, and sent again
        under a new client order id for ``remaining`` base units).
        """
        sibling = self.oco_sibling.get(leg.client_order_id)
        if sibling is None:
            return []
        if kind is _FILLED:
            del self.oco_sibling[leg.client_order_id]
            self.oco_sibling.pop(sibling.client_order_id, None)
            if sibling.status.is_open:
                return self.broker.cancel(sibling.client_order_id, ts, "oco: other leg filled")
            return []
        if not sibling.status.is_open or sibling.quantity <= remaining:
            return []
        self.oco_sibling.pop(sibling.client_order_id, None)
        out = self.broker.cancel(sibling.client_order_id, ts, "oco: other leg partly filled; replaced")
        new = self._replacement(sibling, remaining)
        self.oco_sibling[leg.client_order_id] = new
        self.oco_sibling[new.client_order_id] = leg
        return out + self._submit(new)

    def _replacement(self, order: Order, quantity: Decimal) -> Order:
        """A copy of ``order`` for ``quantity`` under a new client order id (``-r1``,
        ``-r2``...), recorded as a new order of the same decision."""
        cid = order.client_order_id
        head, sep, n = cid.rpartition("-r")
        new_id = f"{head}-r{int(n) + 1}" if sep and n.isdigit() else f"{cid}-r1"
        new = Order(new_id, order.symbol,
                    order.side, order.type, quantity, order.role, order.created_ts, price=order.price,
                    stop_price=order.stop_price, parent_id=order.parent_id,
                    decision_seq=order.decision_seq)
        self._submit_record([new])
        return new

    def _order_ended(self, s: _Sym, order: Order, e: OrderEvent) -> list[OrderEvent]:
        """An order ended without (more) fills: put the symbol's state right.

        Returns the events of any order this sends (the legs of an entry that was
        only partly filled, sized to what was bought).
        """
        role = order.role
        out: list[OrderEvent] = []
        if role is OrderRole.ENTRY:
            legs = self.held_legs.pop(order.client_order_id, ())
            for leg in legs:
                leg.status = OrderStatus.CANCELLED
                self._order_changed(leg, f"entry {e.kind.value}", e.ts)
            if s.holding.is_flat:
                s.state = FLAT
            else:             # partly filled, the rest ended: protect what was bought
                s.state = OPEN
                if legs:
                    out = self._arm_legs(tuple(self._replacement(leg, s.holding.quantity)
                                               for leg in legs), e.ts)
            if e.kind is _REJECTED:
                self.event(e.ts, "order_rejected", s.name, f"{order.client_order_id}: {e.reason}")
        elif role is OrderRole.EXIT and not s.holding.is_flat:
            s.state = OPEN
            self.event(e.ts, f"order_{e.kind.value}", s.name, f"{order.client_order_id}: {e.reason}")
        elif role is OrderRole.REBALANCE:
            if s.rebalancing == order.client_order_id:
                s.rebalancing = None
            if e.kind is _REJECTED:
                self.event(e.ts, "order_rejected", s.name, f"{order.client_order_id}: {e.reason}")
        elif (role is OrderRole.STOP_LOSS and not s.holding.is_flat
              and not (e.reason or "").startswith("oco")):
            # the venue ended the protection while the position is held: say so loudly
            self.event(e.ts, "alert", s.name,
                       f"{order.client_order_id}: the stop-loss was {e.kind.value} by the venue "
                       f"({e.reason or 'no reason given'}) while {s.holding.quantity} is held: "
                       "the position has no stop at the venue (warden flatten closes it)")
        return out

    def finalize_exit(self, s: _Sym, trade: Trade, k: int) -> Trade:
        """End a round trip: the one exit path for signal, stop-loss, take-profit,
        end of data, manual and emergency exits.

        The closing fill's proceeds are already in the account (every fill is booked
        as it arrives); this writes the trade, marks equity and informs risk.
        ``k`` is the decision row of the bar, or ``-1`` outside a bar (end of data,
        emergency stop), where an equity row is written at once.
        """
        acct = self.accounts[s.acct]
        self._trades.append(trade)
        self.counts.trades_closed += 1
        s.qty = 0.0
        s.state = FLAT
        s.exit_owed = None              # a protective leg ended it while the exit waited
        eq = self.equity(s.acct)
        if k >= 0:
            self._changes.append((k, s.acct, acct.cash_f, s.idx, 0.0))
        else:
            self._marks.append((trade.exit_ts, s.acct, acct.cash_f, eq))
        self.risk.on_trade_closed(acct.name, trade.exit_ts, float(trade.pnl), eq)
        self._drain_risk_events()
        return trade

    def close_all(self, reason: ExitReason = ExitReason.END_OF_DATA, *,
                  symbols: list[str] | None = None, detail: dict[str, Any] | None = None) -> int:
        """Flatten every open position through the broker and cancel pending orders.

        Used at the end of a replay (``end_of_data``), by an emergency stop and by the
        inbox's ``flatten`` / ``close`` (``manual``; ``symbols`` limits it, ``detail``
        is added to each exit decision's detail: the command, who gave it). Each
        liquidation is a recorded decision (action ``exit``) and a market order sent
        with ``broker.close_position`` at the symbol's last close (a simulated venue
        fills it there with its taker fee and slippage); the fill ends the round trip
        in :meth:`finalize_exit`. Writes everything buffered. Returns the number of
        trades closed.
        """
        self.flush()
        closed = 0
        rows: list[dict[str, Any]] = []
        for s in self.syms:
            if symbols is not None and s.name not in symbols:
                continue
            if s.tail is None or not len(s.tail):
                if s.holding.is_flat:
                    continue
                if not s.last_close > 0:
                    self.event(self._last_ts, "error", s.name, "cannot close: no price seen yet")
                    continue
            if s.tail is not None and len(s.tail):
                ts = int(s.tail.ts[-1])
            elif s.bars is not None and len(s.bars):    # no warm-up tail kept (rank)
                ts = int(s.bars.ts[-1])
            else:
                ts = int(self._last_ts or 0)
            close = float(s.tail.close[-1]) if s.tail is not None and len(s.tail) else s.last_close
            self.clock.wait_until(ts + s.bar_seconds)
            s.last_close = close
            self._cancel_symbol(s, ts, reason.value)
            if s.holding.is_flat:
                s.state = FLAT
                self._sync_band(s)
                continue
            seq = self._seq + len(rows)
            order = Order(f"{self.order_ids.prefix(s.name, seq)}-exit", s.name, Side.SELL,
                          OrderType.MARKET, s.holding.quantity, OrderRole.EXIT, ts, decision_seq=seq)
            rows.append({"run_id": self.run_id, "seq": seq, "ts": ts, "symbol": s.name,
                         "action": "exit", "reason": reason.value, "state": "open", "close": close,
                         "detail": _dumps({"orders": [order.client_order_id], "close": close,
                                           **(detail or {})})})
            self._submit_record([order])
            if self.journal:          # committed before the broker sees the order
                rows[-1]["equity"] = self.equity(s.acct)
                self._write_close_rows(rows)
                rows = []
                self._flush_rows()
                self.ledger.drain()
            events = self.broker.close_position(order, to_decimal(close), ts)
            for e in events:
                e.reason = e.reason or reason.value
            s.exit_reason = reason
            before = self.counts.trades_closed
            self._apply(s, events, -1, close)
            s.exit_reason = None
            if rows:
                rows[-1]["equity"] = self.equity(s.acct)
            if self.counts.trades_closed > before:
                self.event(ts, "info", s.name, f"position closed at last close ({reason.value})")
                closed += 1
            else:
                self.event(ts, "error", s.name, f"{order.client_order_id}: the venue did not fill "
                           f"the closing order at once (status {order.status.value})")
            self._sync_band(s)
        self._write_close_rows(rows)
        self._flush_rows()
        return closed

    def _write_close_rows(self, rows: list[dict[str, Any]]) -> None:
        """Write close-out decision rows (no strategy inputs) and advance the sequence."""
        if rows:
            cols = {c: [r.get(c) for r in rows] for c in _DECISION_COLUMNS}
            cols["x1"] = cols["x2"] = cols["x3"] = cols["x4"] = pa.nulls(len(rows), pa.float64())
            self.ledger.write_columns("decisions", cols)
            self._seq += len(rows)
            self.counts.decisions += len(rows)

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
        S = [p[0] for p in prepared]
        ev_pos = np.concatenate([np.full(len(b), j, dtype=np.int32) for j, (_, b, _) in enumerate(prepared)])[order]
        ts = np.concatenate([b.ts for _, b, _ in prepared])[order].astype(np.int64)
        close = np.concatenate([b.close for _, b, _ in prepared])[order]
        equity = self._equity_column(ev_pos, close, S, start_state)
        xs = [np.concatenate([f.inputs[name] for _, _, f in prepared])[order]
              for name in self.strategy.input_names]
        self._write_decisions(ts, _labels(ev_pos, [s.name for s in S]), close, equity, xs)
        self._flush_rows()

    def flush(self) -> None:
        """Write everything buffered since the last flush (decision rows, equity marks,
        orders and their changes, fills, trades, events) and commit it as one transaction."""
        if self._row_ts:
            sym = np.asarray(self._row_sym, dtype=np.int32)
            xs = [np.asarray(col, dtype=np.float64) for col in self._row_x]
            self._write_decisions(np.asarray(self._row_ts, dtype=np.int64),
                                  _labels(sym, [s.name for s in self.syms]),
                                  np.asarray(self._row_close, dtype=np.float64),
                                  np.asarray(self._row_equity, dtype=np.float64), xs)
            self._row_ts, self._row_sym, self._row_close, self._row_equity = [], [], [], []
            self._row_x = [[] for _ in self.strategy.input_names]
        self._flush_rows()

    def _write_decisions(self, ts: np.ndarray, symbol: pa.Array, close: np.ndarray,
                         equity: np.ndarray, xs: list[np.ndarray]) -> None:
        """Write this batch's decision rows (one per bar, in row order) and their equity marks."""
        m = ts.shape[0]
        codes = np.asarray(self._codes, dtype=np.int64)
        if m and codes.min() < 0:      # an entry signal the loop never decided: a bug
            bad = int(np.flatnonzero(codes < 0)[0])
            raise RuntimeError(f"decision {self._seq + bad} was never decided")
        cols: dict[str, Any] = {
            "run_id": _labels(np.zeros(m, dtype=np.int8), [self.run_id]),
            "seq": np.arange(self._seq, self._seq + m, dtype=np.int64),
            "ts": ts,
            "symbol": symbol,
            "action": _labels((codes & 15).astype(np.int8), ACTIONS),
            "reason": _labels((codes >> 8).astype(np.int32), self._reasons),
            "state": _labels(((codes >> 4) & 15).astype(np.int8), STATES),
            "close": close,
            "equity": equity,
        }
        for n in range(4):
            cols[f"x{n + 1}"] = (pa.array(xs[n], from_pandas=True) if n < len(xs)
                                 else pa.nulls(m, pa.float64()))
        idx = np.full(m, -1, dtype=np.int32)
        idx[list(self._details)] = np.arange(len(self._details), dtype=np.int32)
        cols["detail"] = pa.DictionaryArray.from_arrays(
            pa.array(idx, mask=idx < 0), pa.array(list(self._details.values()), pa.string()))
        self.ledger.write_columns("decisions", cols)
        for k, a_i, cash, _s, _q in self._changes:
            if k >= 0:
                self._marks.append((int(ts[k]), a_i, cash, float(equity[k])))   # k is a row of a_i
        self._seq += m
        self.counts.decisions += m
        self._codes = []
        self._details = {}
        self._changes = []

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
        self._unwritten.clear()
        if self._order_run and self._order_updates:     # rows an earlier run wrote
            runs = self._order_run
            for run in dict.fromkeys(runs.get(u[0], self.run_id) for u in self._order_updates):
                self.ledger.update_orders(run, [u for u in self._order_updates
                                                if runs.get(u[0], self.run_id) == run])
        else:
            self.ledger.update_orders(self.run_id, self._order_updates)
        self.ledger.write_fills(self.run_id, self._fills)
        self.ledger.write_trades(self.run_id, self._trades)
        self.ledger.write_events(self.run_id, self._events)
        if self.journal and self.deployment_id is not None and (
                self._last_ts is not None or self._state_dirty):
            self.ledger.write_engine_state(self.run_id, self._state_seq, self.deployment_id,
                                           self._last_ts or 0, _dumps(self.snapshot()))
            self._state_seq += 1
            self._state_dirty = False
        if self._command_results:
            self.ledger.finish_commands(self.run_id, self._command_results)
            self._command_results = []
        if self._approval_updates:
            self.ledger.update_approvals(self._approval_updates)
            self._approval_updates = []
        if self._recon_rows:
            self.ledger.write_reconciliations(self.run_id, self._recon_rows)
            self._recon_rows = []
        if self._recon_updates:
            self.ledger.update_reconciliations(self._recon_updates)
            self._recon_updates = []
        if self._order_events:
            self.ledger.write_order_events(self.run_id, self._order_events)
            self._order_events = []
        if self._approvals:
            self.ledger.write_approvals(self.run_id, self._approvals)
            self._approvals = []
        self.ledger.commit()
        self._orders, self._order_updates, self._fills, self._trades, self._events = [], [], [], [], []


def _merged_order(prepared: list[tuple[_Sym, BarSeries, SignalFrame]]
                  ) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
    """The chunk's bars in tick order: by timestamp, ties in ``prepared`` (symbol) order.

    Returns the bar counts, the concatenated open times, each bar's position in
    ``prepared``, and the permutation that sorts the concatenation into tick order.
    """
    lens = [len(b) for _, b, _ in prepared]
    ts_cat = np.concatenate([b.ts for _, b, _ in prepared])
    pos_cat = np.concatenate([np.full(n, j, dtype=np.int64) for j, n in enumerate(lens)])
    return lens, ts_cat, pos_cat, np.lexsort((pos_cat, ts_cat))


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


def bracket_state_from_orders(rows: list[dict[str, Any]]) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Rebuild :meth:`TradingEngine.bracket_state` from ``orders`` rows of one run.

    Parameters
    ----------
    rows : list of dict
        ``client_order_id``, ``parent_id``, ``status`` of each order, in insertion order.

    Returns
    -------
    held, pairs
        As :meth:`TradingEngine.bracket_state`: legs still ``submitted`` (held by the
        engine) per entry, and each open leg's open sibling where two legs of one
        entry are open at the venue.
    """
    held: dict[str, list[str]] = {}
    open_legs: dict[str, list[str]] = {}
    live = {s.value for s in (OrderStatus.ACCEPTED, OrderStatus.WORKING,
                              OrderStatus.PARTIALLY_FILLED, OrderStatus.UNKNOWN)}
    for r in rows:
        parent = r.get("parent_id")
        if parent is None:
            continue
        if r["status"] == OrderStatus.SUBMITTED.value:
            held.setdefault(parent, []).append(r["client_order_id"])
        elif r["status"] in live:
            open_legs.setdefault(parent, []).append(r["client_order_id"])
    pairs: dict[str, str] = {}
    for legs in open_legs.values():
        if len(legs) == 2:
            pairs[legs[0]], pairs[legs[1]] = legs[1], legs[0]
    return held, pairs


_ORDER_DECIMALS = ("quantity", "price", "stop_price")


def _order_dict(o: Order) -> dict[str, Any]:
    """An order as JSON-safe values (decimals as text)."""
    return {"client_order_id": o.client_order_id, "symbol": o.symbol, "side": o.side.value,
            "type": o.type.value, "quantity": str(o.quantity), "role": o.role.value,
            "created_ts": o.created_ts, "price": None if o.price is None else str(o.price),
            "stop_price": None if o.stop_price is None else str(o.stop_price),
            "parent_id": o.parent_id, "decision_seq": o.decision_seq, "status": o.status.value,
            "status_reason": o.status_reason, "updated_ts": o.updated_ts}


def _order_from(d: dict[str, Any]) -> Order:
    """Rebuild an :class:`Order` from :func:`_order_dict`."""
    return Order(d["client_order_id"], d["symbol"], Side(d["side"]), OrderType(d["type"]),
                 Decimal(d["quantity"]), OrderRole(d["role"]), int(d["created_ts"]),
                 price=None if d["price"] is None else Decimal(d["price"]),
                 stop_price=None if d["stop_price"] is None else Decimal(d["stop_price"]),
                 parent_id=d["parent_id"], decision_seq=int(d["decision_seq"]),
                 status=OrderStatus(d["status"]), status_reason=d["status_reason"],
                 updated_ts=d["updated_ts"])
