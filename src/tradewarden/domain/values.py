"""Plain typed values shared by every layer.

Times are UTC epoch seconds (``int``) inside the engine; ledger rows also carry ISO
8601 text where a person reads them. Money and quantities are ``Decimal`` on orders,
fills, positions and trades (quote currency and base units respectively).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from enum import Enum
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Mapping, NamedTuple

import numpy as np

from tradewarden.domain.timeframes import timeframe_seconds


@lru_cache(maxsize=65_536)
def iso(ts: int) -> str:
    """Format UTC epoch seconds as ``YYYY-MM-DDTHH:MM:SSZ``."""
    return datetime.fromtimestamp(int(ts), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Side(str, Enum):
    """Order side."""

    BUY = "buy"
    SELL = "sell"


class OrderType(str, Enum):
    """Order type: market fills at the next bar's open; limit and stop when traded through."""

    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"


class OrderRole(str, Enum):
    """Why an order exists: the entry, a bracket leg, a signal/manual exit, or a resize of
    a held position to its target weight (``rebalance``: a buy or a partial sale)."""

    ENTRY = "entry"
    TAKE_PROFIT = "take_profit"
    STOP_LOSS = "stop_loss"
    EXIT = "exit"
    REBALANCE = "rebalance"


class OrderStatus(str, Enum):
    """Order lifecycle state.

    ``submitted`` → ``accepted`` → (``working``) → (``partially_filled``) → ``filled``;
    from any open state also ``cancelled``, ``rejected`` or ``expired``. ``unknown``:
    the venue cannot say (a lost acknowledgement, an order reconciliation did not
    find); it is open until a later event or reconciliation settles it. The allowed
    transitions are :data:`tradewarden.execution.base.TRANSITIONS`.
    """

    SUBMITTED = "submitted"                # sent by the engine, not yet acknowledged
    ACCEPTED = "accepted"                  # acknowledged; a market order awaiting its fill,
                                           # or a bracket leg awaiting its entry's fill
    WORKING = "working"                    # live at the venue: a resting limit or stop
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    UNKNOWN = "unknown"

    @property
    def is_open(self) -> bool:
        """Whether the order can still fill (every state but the four terminal ones)."""
        return self not in _TERMINAL


_TERMINAL = frozenset({OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED,
                       OrderStatus.EXPIRED})


class PositionState(str, Enum):
    """Per-symbol position state machine: flat → entry_pending → open → exit_pending → flat."""

    FLAT = "flat"
    ENTRY_PENDING = "entry_pending"
    OPEN = "open"
    EXIT_PENDING = "exit_pending"


class Action(str, Enum):
    """What a strategy asks for on a bar."""

    HOLD = "hold"
    ENTER_LONG = "enter_long"
    EXIT = "exit"


class Verdict(str, Enum):
    """The governor's answer for a risk-approved intent (graduated autonomy)."""

    EXECUTE = "execute"      # send it now
    QUEUE = "queue"          # persist it in ``approvals`` and wait for a person
    MONITOR = "monitor"      # record it only


class ExitReason(str, Enum):
    """How a round trip ended; every one goes through the engine's ``finalize_exit``."""

    SIGNAL = "signal"
    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"
    END_OF_DATA = "end_of_data"
    MANUAL = "manual"
    EMERGENCY = "emergency"
    # options (the options desk): how a short option position ended
    EXPIRED = "expired"                  # expired worthless: the whole credit kept
    ASSIGNED = "assigned"                # exercised against us (closed at intrinsic value)
    PROFIT_TARGET = "profit_target"      # bought back after earning the target share
    LOSS_LIMIT = "loss_limit"            # bought back at the loss limit
    DAYS_TO_EXPIRY = "days_to_expiry"    # bought back a set number of days before expiry


@dataclass(frozen=True, slots=True)
class Bar:
    """One OHLCV bar, stamped with both its open and its close time.

    A bar is known only once it has closed, so anything that asks how old a bar is
    (staleness, the time a decision on it was made) measures from ``close_ts``.

    Parameters
    ----------
    symbol : str
    ts : int
        Bar open time, UTC epoch seconds.
    open, high, low, close : float
        Prices in quote currency per base unit.
    volume : float
        Traded volume in base units.
    close_ts : int
        Bar close time, UTC epoch seconds: ``ts`` plus the bar length (``ts + 3600``
        for a 1h bar); the bar covers ``[ts, close_ts)``.

    Raises
    ------
    ValueError
        If ``close_ts`` is not after ``ts``.
    """

    symbol: str
    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    close_ts: int

    def __post_init__(self) -> None:
        if self.close_ts <= self.ts:
            raise ValueError(f"{self.symbol} bar at {self.ts}: close_ts {self.close_ts} must be "
                             "after the open time")


@dataclass(slots=True)
class BarSeries:
    """Columnar OHLCV for one symbol and timeframe: the shape the engine and strategies use.

    Parameters
    ----------
    symbol : str
    timeframe : str
        Pandas-style bar length label, e.g. ``"1h"``, ``"4h"``, ``"1d"`` (see
        :func:`~tradewarden.domain.timeframes.timeframe_seconds`).
    ts : numpy.ndarray of int64, shape (n,)
        Bar open times, UTC epoch seconds, strictly increasing. The close times are
        derived: :attr:`close_ts` ``= ts + bar_seconds``.
    open, high, low, close, volume : numpy.ndarray of float64, shape (n,)
    source : str
        File or sample the bars came from.
    """

    symbol: str
    timeframe: str
    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    source: str = ""

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    @property
    def bar_seconds(self) -> int:
        """Bar length in seconds, parsed from :attr:`timeframe` (``"1h"`` -> 3600).

        Raises
        ------
        ValueError
            If :attr:`timeframe` is not a valid label.
        """
        return _label_seconds(self.timeframe)

    @property
    def close_ts(self) -> np.ndarray:
        """Bar close times, UTC epoch seconds: int64 array of shape (n,), ``ts + bar_seconds``.

        Raises
        ------
        ValueError
            If :attr:`timeframe` is not a valid label.
        """
        return np.asarray(self.ts, dtype=np.int64) + np.int64(self.bar_seconds)

    def slice(self, start: int, stop: int) -> "BarSeries":
        """Return bars ``[start, stop)`` as a view."""
        return BarSeries(self.symbol, self.timeframe, self.ts[start:stop], self.open[start:stop],
                         self.high[start:stop], self.low[start:stop], self.close[start:stop],
                         self.volume[start:stop], self.source)

    def bar(self, i: int) -> Bar:
        """Return bar ``i`` as a :class:`Bar`, its ``close_ts`` = open time + :attr:`bar_seconds`.

        Raises
        ------
        IndexError
            If ``i`` is out of range.
        ValueError
            If :attr:`timeframe` is not a valid label.
        """
        ts = int(self.ts[i])
        return Bar(self.symbol, ts, float(self.open[i]), float(self.high[i]),
                   float(self.low[i]), float(self.close[i]), float(self.volume[i]),
                   ts + _label_seconds(self.timeframe))


@lru_cache(maxsize=256)
def _label_seconds(label: str) -> int:
    """Return :func:`timeframe_seconds` of ``label``, cached (one parse per label, not per bar)."""
    return timeframe_seconds(label)


@dataclass(slots=True)
class Order:
    """An order as the engine and broker see it.

    Parameters
    ----------
    client_order_id : str
        Deterministic id: ``{run_id}-{symbol}-{seq}-{role}``; a retry reuses it.
    symbol : str
    side : Side
    type : OrderType
    quantity : Decimal
        Base units, rounded down to the instrument's increment.
    role : OrderRole
    created_ts : int
        UTC epoch seconds of the bar the order was decided on.
    price : Decimal or None
        Limit price (quote currency) for LIMIT orders.
    stop_price : Decimal or None
        Trigger price for STOP orders.
    parent_id : str or None
        For bracket legs, the entry's client order id.
    decision_seq : int
        Sequence number of the decision that produced the order.
    """

    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    quantity: Decimal
    role: OrderRole
    created_ts: int
    price: Decimal | None = None
    stop_price: Decimal | None = None
    parent_id: str | None = None
    decision_seq: int = -1
    status: OrderStatus = OrderStatus.SUBMITTED
    status_reason: str = ""
    updated_ts: int | None = None


@dataclass(frozen=True, slots=True)
class Bracket:
    """An entry order with attached take-profit (limit) and stop-loss (stop) exits.

    The legs become working when the entry fills and cancel each other (OCO).
    """

    entry: Order
    take_profit: Order | None = None
    stop_loss: Order | None = None


class Fill(NamedTuple):
    """An execution (immutable; a named tuple, which builds four times faster than a
    frozen dataclass: the replay path makes one per fill).

    Parameters
    ----------
    client_order_id : str
    symbol : str
    side : Side
    quantity : Decimal
        Base units.
    price : Decimal
        Execution price in quote currency, slippage included, rounded against the trader.
    fee : Decimal
        Fee paid, quote currency.
    liquidity : str
        ``"maker"`` or ``"taker"``.
    ts : int
        UTC epoch seconds of the bar in which it filled.
    reference_price : Decimal
        The price before slippage (bar open or order level).
    role : OrderRole
    """

    client_order_id: str
    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal
    fee: Decimal
    liquidity: str
    ts: int
    reference_price: Decimal
    role: OrderRole


@dataclass(slots=True)
class Position:
    """An open long position in one symbol (spot, long only)."""

    symbol: str
    quantity: Decimal
    entry_price: Decimal
    entry_ts: int
    entry_fee: Decimal
    entry_order_id: str
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None


class Trade(NamedTuple):
    """A closed round trip (immutable; a named tuple, like :class:`Fill`).

    ``pnl`` is net of both fees, in quote currency:
    ``(exit_price - entry_price) * quantity - entry_fee - exit_fee``.

    ``mae_price`` and ``mfe_price`` (quote currency per base unit; ``None`` when not
    tracked) are the round trip's maximum adverse and favourable excursion prices
    (J. Sweeney, *Maximum Adverse Excursion*, 1997): for a long position the lowest and
    the highest price the position lived through, from the entry fill to the exit fill
    (see :class:`tradewarden.engine.portfolio.Holding` for the bars that count).
    """

    trade_id: str
    symbol: str
    side: str
    quantity: Decimal
    entry_ts: int
    entry_price: Decimal
    exit_ts: int
    exit_price: Decimal
    fees: Decimal
    pnl: Decimal
    exit_reason: ExitReason
    entry_order_id: str
    exit_order_id: str
    mae_price: Decimal | None = None
    mfe_price: Decimal | None = None


class Signal(NamedTuple):
    """A strategy's answer for one bar (immutable; a named tuple, like :class:`Fill`).

    Parameters
    ----------
    action : Action
    reason : str
        Short machine code of why (``"breakout"``, ``"no_breakout"``...).
    inputs : Mapping[str, float]
        The values the decision used (close, channel bounds, ...).
    stop_loss, take_profit : float or None
        Protective levels (quote currency) to attach as a bracket on entry.
    weight : float or None
        Target weight of an entry, a fraction of the account's equity in (0, 1]: the
        risk manager sizes the position to that notional instead of by its sizing rule
        (a rank or portfolio strategy); ``None``: the sizing rule decides.
    """

    action: Action
    reason: str
    inputs: Mapping[str, float] = MappingProxyType({})
    stop_loss: float | None = None
    take_profit: float | None = None
    weight: float | None = None


class Decision(NamedTuple):
    """What the engine decided on one bar for one symbol (one ledger row; immutable, a
    named tuple: the reference path returns one per bar).

    ``action`` is one of ``hold``, ``enter_long``, ``exit``, ``rejected``, ``blocked``,
    ``queued`` (awaiting human approval) or ``monitored`` (the governor let it be
    recorded only).
    """

    seq: int
    ts: int
    symbol: str
    action: str
    reason: str
    state: PositionState
    close: float
    detail: Mapping[str, Any] | None = None
