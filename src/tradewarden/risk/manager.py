"""Pre-trade risk: sizing, caps, and circuit breakers that fail closed.

Every entry passes :meth:`RiskManager.evaluate_entry`; it returns a sized quantity or
a rejection with its reason. Halts (daily loss limit, max-drawdown halt,
consecutive-loss halt, kill switch) block new entries until reset; exits always pass.
Every halt is reported through :attr:`RiskManager.events` so the engine can record it.

Halts are scoped to an account: each symbol in ``independent`` capital mode, the
single ``portfolio`` account otherwise. Times are UTC epoch seconds from the mode's
clock; nothing here reads the wall clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tradewarden.domain import Instrument, Signal, to_decimal

DAY = 86_400


class Sizing(BaseModel):
    """Position sizing rule.

    ``risk``: quantity = ``value * equity / (entry - stop)`` (fraction of account equity
    lost if the stop-loss fills at its level); without a stop-loss the position cap
    sizes the trade. ``fixed``: quantity = ``value`` base units.
    """

    model_config = ConfigDict(frozen=True)
    kind: str = "risk"
    value: float = 0.01

    @classmethod
    def parse(cls, text: str) -> "Sizing":
        """Parse ``risk:FRACTION`` or ``fixed:QUANTITY``.

        Raises
        ------
        ValueError
            Naming the flag value when it does not match either form or the number is
            out of range (risk fraction in (0, 1], fixed quantity > 0).
        """
        m = re.fullmatch(r"\s*(risk|fixed)\s*:\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*", text or "")
        if not m:
            raise ValueError(f"--sizing {text!r}: expected risk:FRACTION (e.g. risk:0.01) "
                             "or fixed:QUANTITY (e.g. fixed:0.05)")
        kind, value = m.group(1), float(m.group(2))
        if kind == "risk" and not 0 < value <= 1:
            raise ValueError(f"--sizing {text!r}: risk fraction must be in (0, 1]")
        if kind == "fixed" and value <= 0:
            raise ValueError(f"--sizing {text!r}: fixed quantity must be positive")
        return cls(kind=kind, value=value)

    def __str__(self) -> str:
        return f"{self.kind}:{self.value:g}"


class RiskConfig(BaseModel):
    """Risk limits (fractions are of account equity; 0.05 = 5 %)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    sizing: Sizing = Sizing()
    max_position_fraction: float = Field(0.95, gt=0, le=1.0)
    cash_buffer: float = Field(0.02, ge=0, lt=0.5)
    max_open_positions: int = Field(10, ge=1)
    daily_loss_limit: float = Field(0.05, gt=0, le=1.0)
    max_drawdown_halt: float = Field(0.30, gt=0, le=1.0)
    max_consecutive_losses: int = Field(8, ge=1)
    consecutive_loss_cooldown_hours: float = Field(24.0, ge=0)

    @field_validator("sizing", mode="before")
    @classmethod
    def _parse_sizing(cls, v: Any) -> Any:
        return Sizing.parse(v) if isinstance(v, str) else v


@dataclass(frozen=True, slots=True)
class RiskVerdict:
    """Result of a pre-trade check: ``quantity`` in base units when approved."""

    approved: bool
    reason: str
    quantity: Decimal | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class _AccountRisk:
    # kind -> (reason, until): several halts can be in force at once; each lifts on
    # its own (cool-down, new UTC day) or by a manual reset. until None: manual only.
    halts: dict[str, tuple[str, int | None]] = field(default_factory=dict)
    consecutive_losses: int = 0
    day: int = -1
    day_realized: float = 0.0
    day_start_equity: float = 0.0


#: Order in which a reason is reported when several halts are in force.
HALT_PRIORITY = ("kill_switch", "max_drawdown", "consecutive_losses", "daily_loss")


class RiskManager:
    """Sizing, pre-trade checks and circuit breakers for a set of accounts.

    Parameters
    ----------
    config : RiskConfig
    accounts : list of str
        Account names (symbols in independent mode, ``["portfolio"]`` otherwise).
    """

    def __init__(self, config: RiskConfig, accounts: list[str]) -> None:
        self.config = config
        self._acct = {a: _AccountRisk() for a in accounts}
        #: Halts and resets not yet recorded: ``(ts, kind, account, message)``.
        self.events: list[tuple[int, str, str, str]] = []

    # -- circuit breakers -------------------------------------------------------------
    def halt(self, account: str, ts: int, reason: str, until: int | None = None) -> None:
        """Halt new entries for ``account``.

        ``reason`` is ``kind`` or ``kind:detail`` (``kill_switch`` when an operator
        calls it). Halts of different kinds stack: a new kind is recorded even while
        another is in force. A repeated kind keeps the later of the two lift times.
        """
        st = self._acct[account]
        kind = reason.split(":", 1)[0]
        current = st.halts.get(kind)
        if current is None:
            st.halts[kind] = (reason, until)
            self.events.append((ts, "halt", account, reason))
        elif current[1] is not None and (until is None or until > current[1]):
            st.halts[kind] = (current[0], until)

    def reset(self, account: str, ts: int, why: str = "manual reset", kind: str | None = None) -> None:
        """Lift the halts on ``account`` (all of them, or only ``kind``)."""
        st = self._acct[account]
        for k in [k for k in st.halts if kind is None or k == kind]:
            reason, _ = st.halts.pop(k)
            self.events.append((ts, "reset", account, f"{why} (was: {reason})"))
            if k == "consecutive_losses":
                st.consecutive_losses = 0
        if kind is None:
            st.consecutive_losses = 0

    def halted(self, account: str, ts: int) -> str | None:
        """Return the halt reason in force for ``account`` at ``ts``, or ``None``.

        Expired halts are lifted first: a consecutive-loss halt after its cool-down,
        a daily-loss halt at the next UTC day.
        """
        st = self._acct[account]
        if not st.halts:
            return None
        for kind, (_reason, until) in list(st.halts.items()):
            if until is not None and ts >= until:
                self.reset(account, ts, "new UTC day" if kind == "daily_loss" else "cool-down elapsed",
                           kind=kind)
        if not st.halts:
            return None
        for kind in HALT_PRIORITY:
            if kind in st.halts:
                return st.halts[kind][0]
        return next(iter(st.halts.values()))[0]

    def _roll_day(self, st: _AccountRisk, ts: int, equity: float) -> None:
        day = ts // DAY
        if day != st.day:
            st.day, st.day_realized, st.day_start_equity = day, 0.0, equity

    def on_trade_closed(self, account: str, ts: int, pnl: float, equity: float) -> None:
        """Update loss streaks and the day's realised PnL after a round trip (quote currency)."""
        cfg = self.config
        st = self._acct[account]
        self._roll_day(st, ts, equity - pnl)
        st.day_realized += pnl
        st.consecutive_losses = st.consecutive_losses + 1 if pnl < 0 else 0
        if st.consecutive_losses >= cfg.max_consecutive_losses:
            until = ts + int(cfg.consecutive_loss_cooldown_hours * 3600)
            self.halt(account, ts, f"consecutive_losses:{st.consecutive_losses}", until)
        if st.day_start_equity > 0 and -st.day_realized >= cfg.daily_loss_limit * st.day_start_equity:
            self.halt(account, ts, f"daily_loss:{-st.day_realized:.2f}",
                      (ts // DAY + 1) * DAY)

    # -- pre-trade ---------------------------------------------------------------------
    def evaluate_entry(self, *, account: str, instrument: Instrument, ts: int, price: float,
                       signal: Signal, equity: float, peak_equity: float, cash: float,
                       open_positions: int) -> RiskVerdict:
        """Size and check a long entry.

        Parameters
        ----------
        account : str
        instrument : Instrument
        ts : int
            Decision bar time, UTC epoch seconds.
        price : float
            Reference entry price (decision bar close), quote currency.
        signal : Signal
            The entry signal; its ``stop_loss`` drives risk sizing.
        equity, peak_equity, cash : float
            Account equity marked at ``price``, its running peak, and free cash (quote).
        open_positions : int
            Positions open or pending across every account.

        Returns
        -------
        RiskVerdict
            Approved with a quantity rounded down to the base increment, or rejected
            with a machine-readable reason (``halted:...``, ``max_open_positions``,
            ``below_min_notional``, ...).
        """
        cfg = self.config
        st = self._acct[account]
        self._roll_day(st, ts, equity)
        if peak_equity > 0 and (peak_equity - equity) / peak_equity >= cfg.max_drawdown_halt:
            self.halt(account, ts, f"max_drawdown:{(peak_equity - equity) / peak_equity:.4f}")
        if equity - st.day_start_equity <= -cfg.daily_loss_limit * st.day_start_equity:
            self.halt(account, ts, f"daily_loss:{st.day_start_equity - equity:.2f}",
                      (ts // DAY + 1) * DAY)
        why = self.halted(account, ts)
        if why is not None:
            return RiskVerdict(False, f"halted:{why.split(':')[0]}", detail={"halt": why})
        if open_positions >= cfg.max_open_positions:
            return RiskVerdict(False, "max_open_positions",
                               detail={"open_positions": open_positions,
                                       "max_open_positions": cfg.max_open_positions})
        if not price > 0 or not equity > 0:
            return RiskVerdict(False, "no_equity", detail={"equity": equity, "price": price})
        detail: dict[str, Any] = {"equity": round(equity, 2)}
        stop = signal.stop_loss
        if cfg.sizing.kind == "fixed":
            qty = cfg.sizing.value
        elif stop is not None and stop < price:
            qty = cfg.sizing.value * equity / (price - stop)
            detail["risk_per_unit"] = round(price - stop, 10)
        elif stop is not None:
            return RiskVerdict(False, "stop_above_entry", detail={"stop_loss": stop, "price": price})
        else:
            qty = cfg.max_position_fraction * equity / price
            detail["note"] = "no stop-loss: sized by position cap"
        cap_qty = min(cfg.max_position_fraction * equity, cash * (1.0 - cfg.cash_buffer)) / price
        if qty > cap_qty:
            detail["capped_from"] = round(qty, 10)
            qty = cap_qty
        quantity = instrument.round_quantity(qty)
        problem = instrument.check_order_size(quantity, to_decimal(price))
        if problem is not None:
            reason = ("below_min_notional" if "below minimum" in problem and "notional" in problem
                      else "above_max_notional" if "above maximum" in problem
                      else "below_min_quantity")
            detail["problem"] = problem
            return RiskVerdict(False, reason, detail=detail)
        detail["quantity"] = str(quantity)
        return RiskVerdict(True, "approved", quantity, detail)
