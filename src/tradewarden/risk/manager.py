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
from typing import Annotated, Any, NamedTuple

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from tradewarden.domain import Instrument, Signal, to_decimal

DAY = 86_400

#: Largest fixed order quantity accepted, base units (a bound that keeps float sizing exact
#: enough and rejects typos such as ``fixed:1e999``).
MAX_FIXED_QUANTITY = 1e12

_OFF_WORDS = ("off", "none", "false", "disabled", "no")


def _breaker_off(value: Any) -> Any:
    """Map the ways of writing "switched off" (``false``, ``"off"``, ``"none"``) to ``None``."""
    if value is False or (isinstance(value, str) and value.strip().lower() in _OFF_WORDS):
        return None
    return value


#: A circuit-breaker fraction of equity: ``None`` (written ``false`` or ``"off"``) switches
#: it off; ``1.0`` (100 %) can never trip and is treated as off.
BreakerFraction = Annotated[Annotated[float, Field(gt=0, le=1.0)] | None, BeforeValidator(_breaker_off)]
#: A circuit-breaker count: ``None`` (``false`` / ``"off"``) switches it off.
BreakerCount = Annotated[Annotated[int, Field(ge=1)] | None, BeforeValidator(_breaker_off)]


class Sizing(BaseModel):
    """Position sizing rule.

    ``risk``: quantity = ``value * equity / (entry - stop)`` (fraction of account equity
    lost if the stop-loss fills at its level); without a stop-loss the position cap
    sizes the trade. ``fixed``: quantity = ``value`` base units.
    """

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)
    kind: str = "risk"
    value: float = Field(0.01, gt=0, le=MAX_FIXED_QUANTITY)

    @classmethod
    def parse(cls, text: str) -> "Sizing":
        """Parse ``risk:FRACTION`` or ``fixed:QUANTITY``.

        Raises
        ------
        ValueError
            When the text does not match either form or the number is out of range
            (risk fraction in (0, 1], fixed quantity in (0, 1e12] base units, never NaN
            or infinite). The message says which; the settings layer adds where the
            value came from (``--sizing fixed:0: ...``, ``file run.toml: risk.sizing``).
        """
        m = re.fullmatch(r"\s*(risk|fixed)\s*:\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*", text or "")
        if not m:
            raise ValueError("expected risk:FRACTION (e.g. risk:0.01) "
                             "or fixed:QUANTITY (e.g. fixed:0.05)")
        kind, value = m.group(1), float(m.group(2))
        if kind == "risk" and not 0 < value <= 1:
            raise ValueError("risk fraction must be in (0, 1]")
        if kind == "fixed" and not 0 < value <= MAX_FIXED_QUANTITY:
            raise ValueError("fixed quantity must be positive and at most "
                             f"{MAX_FIXED_QUANTITY:g} base units")
        return cls(kind=kind, value=value)

    def __str__(self) -> str:
        return f"{self.kind}:{self.value:g}"


class RiskConfig(BaseModel):
    """Risk limits (fractions are of account equity; 0.05 = 5 %).

    Parameters
    ----------
    sizing : Sizing
        ``risk:FRACTION`` or ``fixed:QUANTITY`` (a string is parsed).
    max_position_fraction : float
        Largest position notional as a fraction of account equity, (0, 1].
    cash_buffer : float
        Fraction of free cash kept back from any entry, [0, 0.5).
    max_open_positions : int
        Positions open or pending across every account, >= 1.
    daily_loss_limit : float or None
        Halt entries for the rest of the UTC day once the day's loss reaches this
        fraction of the day's starting equity. ``None`` (``false`` or ``"off"`` in a
        config file) switches the breaker off; ``1.0`` never trips.
    max_drawdown_halt : float or None
        Halt entries (until a manual reset) once equity is this fraction below its
        running peak. ``None`` switches it off; ``1.0`` never trips.
    max_consecutive_losses : int or None
        Halt entries after this many losing round trips in a row, for
        ``consecutive_loss_cooldown_hours``. ``None`` switches it off; a huge number
        (``1000000000``) never trips.
    consecutive_loss_cooldown_hours : float
        Length of the loss-streak halt, hours (at most ten years).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
    sizing: Sizing = Sizing()
    max_position_fraction: float = Field(0.95, gt=0, le=1.0)
    cash_buffer: float = Field(0.02, ge=0, lt=0.5)
    max_open_positions: int = Field(10, ge=1)
    daily_loss_limit: BreakerFraction = 0.05
    max_drawdown_halt: BreakerFraction = 0.30
    max_consecutive_losses: BreakerCount = 8
    consecutive_loss_cooldown_hours: float = Field(24.0, ge=0, le=87_600)

    @property
    def breakers(self) -> dict[str, str]:
        """Each circuit breaker and its state, e.g. ``{"daily_loss": "5%", "max_drawdown": "off"}``."""
        def frac(v: float | None) -> str:
            return "off" if v is None or v >= 1.0 else f"{v:.4g} of equity"
        n = self.max_consecutive_losses
        return {"daily_loss": frac(self.daily_loss_limit),
                "max_drawdown": frac(self.max_drawdown_halt),
                "consecutive_losses": "off" if n is None else f"{n} losses"}

    @field_validator("sizing", mode="before")
    @classmethod
    def _parse_sizing(cls, v: Any) -> Any:
        return Sizing.parse(v) if isinstance(v, str) else v


def _active_fraction(value: float | None) -> float | None:
    return None if value is None or value >= 1.0 else value


class RiskVerdict(NamedTuple):
    """Result of a pre-trade check: ``quantity`` in base units when approved.

    Immutable (a named tuple: built on every entry signal, four times faster than a
    frozen dataclass). ``detail`` is the decision's JSON detail (sizing, halt, problem).
    """

    approved: bool
    reason: str
    quantity: Decimal | None = None
    detail: dict[str, Any] | None = None


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
        # Breakers in force (None: off). A fraction of 1.0 would need the whole account
        # lost and is treated as off, so "1.0" reliably means "never trips".
        self._daily_limit = _active_fraction(config.daily_loss_limit)
        self._dd_limit = _active_fraction(config.max_drawdown_halt)
        self._max_losses = config.max_consecutive_losses
        # Sizing figures read on every entry signal, taken out of the frozen config once
        self._fixed = config.sizing.kind == "fixed"
        self._size_value = config.sizing.value
        self._max_fraction = config.max_position_fraction
        self._cash_kept = 1.0 - config.cash_buffer
        self._max_open = config.max_open_positions
        self._acct = {a: _AccountRisk() for a in accounts}
        #: Halts and resets not yet recorded: ``(ts, kind, account, message)``.
        self.events: list[tuple[int, str, str, str]] = []

    # -- persistence -------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Return the breakers' state per account as JSON-safe values: halts in force
        (reason, lift time or ``None``), loss streak, the UTC day, its realised PnL and
        starting equity (quote currency). A deployment persists it with every bar so a
        restart never lifts a halt."""
        return {a: {"halts": {k: [r, u] for k, (r, u) in st.halts.items()},
                    "consecutive_losses": st.consecutive_losses, "day": st.day,
                    "day_realized": st.day_realized, "day_start_equity": st.day_start_equity}
                for a, st in self._acct.items()}

    def restore(self, state: dict[str, Any]) -> None:
        """Load a :meth:`snapshot` (halts in force, streaks, the day's PnL).

        Raises
        ------
        ValueError
            An account the snapshot does not know, or a malformed entry.
        """
        missing = set(self._acct) - set(state)
        if missing:
            raise ValueError(f"risk state has no account(s) {', '.join(sorted(missing))}")
        try:
            for a, st in self._acct.items():
                d = state[a]
                st.halts = {k: (str(r), None if u is None else int(u)) for k, (r, u) in d["halts"].items()}
                st.consecutive_losses = int(d["consecutive_losses"])
                st.day = int(d["day"])
                st.day_realized = float(d["day_realized"])
                st.day_start_equity = float(d["day_start_equity"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed risk state: {exc!r}") from None

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
        if self._max_losses is not None and st.consecutive_losses >= self._max_losses:
            until = ts + int(cfg.consecutive_loss_cooldown_hours * 3600)
            self.halt(account, ts, f"consecutive_losses:{st.consecutive_losses}", until)
        if (self._daily_limit is not None and st.day_start_equity > 0
                and -st.day_realized >= self._daily_limit * st.day_start_equity):
            self.halt(account, ts, f"daily_loss:{-st.day_realized:.2f}",
                      (ts // DAY + 1) * DAY)

    # -- pre-trade ---------------------------------------------------------------------
    def _trip_breakers(self, st: Any, account: str, ts: int, equity: float,
                       peak_equity: float) -> None:
        """Halt ``account`` when the drawdown from ``peak_equity`` or the day's loss has
        reached its limit (quote currency amounts; the day's loss halts until the next
        UTC day)."""
        if (self._dd_limit is not None and peak_equity > 0
                and (peak_equity - equity) / peak_equity >= self._dd_limit):
            self.halt(account, ts, f"max_drawdown:{(peak_equity - equity) / peak_equity:.4f}")
        if (self._daily_limit is not None
                and equity - st.day_start_equity <= -self._daily_limit * st.day_start_equity):
            self.halt(account, ts, f"daily_loss:{st.day_start_equity - equity:.2f}",
                      (ts // DAY + 1) * DAY)

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
            The entry signal; its ``stop_loss`` drives risk sizing, or its ``weight``
            (a target fraction of equity) sets the notional whatever the sizing rule.
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
        st = self._acct[account]
        day = ts // DAY
        if day != st.day:       # _roll_day, inline: this runs on every entry signal
            st.day, st.day_realized, st.day_start_equity = day, 0.0, equity
        self._trip_breakers(st, account, ts, equity, peak_equity)
        why = self.halted(account, ts) if st.halts else None
        if why is not None:
            return RiskVerdict(False, f"halted:{why.split(':')[0]}", detail={"halt": why})
        if open_positions >= self._max_open:
            return RiskVerdict(False, "max_open_positions",
                               detail={"open_positions": open_positions,
                                       "max_open_positions": self._max_open})
        if not price > 0 or not equity > 0:
            return RiskVerdict(False, "no_equity", detail={"equity": equity, "price": price})
        detail: dict[str, Any] = {"equity": round(equity, 2)}
        stop = signal.stop_loss
        weight = signal.weight
        if weight is not None:
            if not 0 < weight <= 1:
                return RiskVerdict(False, "bad_target_weight", detail={"target_weight": weight})
            qty = weight * equity / price
            detail["target_weight"] = weight
        elif self._fixed:
            qty = self._size_value
        elif stop is not None and stop < price:
            qty = self._size_value * equity / (price - stop)
            detail["risk_per_unit"] = round(price - stop, 10)
        elif stop is not None:
            return RiskVerdict(False, "stop_above_entry", detail={"stop_loss": stop, "price": price})
        else:
            qty = self._max_fraction * equity / price
            detail["note"] = "no stop-loss: sized by position cap"
        cap_qty = min(self._max_fraction * equity, cash * self._cash_kept) / price
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

    def evaluate_rebalance(self, *, account: str, instrument: Instrument, ts: int, price: float,
                           held: Decimal, target_weight: float, equity: float,
                           peak_equity: float, cash: float) -> RiskVerdict:
        """Size the order that brings a held long position to its target weight.

        The difference between the target and the holding is traded, never the whole
        position sold and bought again. A buy is checked like an entry (halts, the
        position cap ``max_position_fraction`` of equity on the whole position, free cash
        less ``cash_buffer``) but does not count against ``max_open_positions`` (the
        position is open already); a sale always passes the halts (it reduces exposure,
        like an exit) and, the target being above zero, never sells the whole position
        (that is an exit's job).

        Parameters
        ----------
        account : str
        instrument : Instrument
        ts : int
            Decision bar time, UTC epoch seconds.
        price : float
            Reference price (the decision bar's close), quote currency per base unit.
        held : Decimal
            The position, base units (> 0).
        target_weight : float
            The target, a fraction of ``equity`` in (0, 1].
        equity, peak_equity, cash : float
            Account equity marked at ``price``, its running peak, and free cash (quote
            currency).

        Returns
        -------
        RiskVerdict
            Approved with ``quantity`` the signed difference in base units (positive:
            buy more, negative: sell part), rounded towards zero to the quantity
            increment; or rejected: ``bad_target_weight``, ``no_equity``, ``no_position``,
            ``halted:<kind>`` (a buy), ``no_cash`` (a buy with no free cash),
            ``no_change`` (the difference rounds to zero), ``below_min_notional`` /
            ``below_min_quantity`` (the difference is too small to trade). ``detail`` says the target, the figures
            and any cap.
        """
        detail: dict[str, Any] = {"target_weight": target_weight, "held": str(held)}
        if not 0 < target_weight <= 1:
            return RiskVerdict(False, "bad_target_weight", detail=detail)
        if not price > 0 or not equity > 0:
            return RiskVerdict(False, "no_equity", detail={**detail, "equity": equity,
                                                           "price": price})
        if not held > 0:
            return RiskVerdict(False, "no_position", detail=detail)
        detail["equity"] = round(equity, 2)
        weight = target_weight
        if weight > self._max_fraction:
            detail["capped_from"] = weight
            weight = self._max_fraction
        want = weight * equity / price - float(held)
        if want > 0:
            st = self._acct[account]
            self._roll_day(st, ts, equity)
            self._trip_breakers(st, account, ts, equity, peak_equity)
            why = self.halted(account, ts) if st.halts else None
            if why is not None:
                return RiskVerdict(False, f"halted:{why.split(':')[0]}",
                                   detail={**detail, "halt": why})
            room = cash * self._cash_kept / price
            if not room > 0:
                return RiskVerdict(False, "no_cash", detail={**detail, "cash": cash})
            if want > room:
                detail["cash_capped_from"] = round(want, 10)
                want = room
            quantity = instrument.round_quantity(want)
        else:       # the target is > 0, so the sale (rounded towards zero) never closes
            quantity = -instrument.round_quantity(-want)
        if quantity == 0:
            return RiskVerdict(False, "no_change", detail=detail)
        problem = instrument.check_order_size(abs(quantity), to_decimal(price))
        if problem is not None:
            detail["problem"] = problem
            reason = ("below_min_notional" if "below minimum" in problem and "notional" in problem
                      else "above_max_notional" if "above maximum" in problem
                      else "below_min_quantity")
            return RiskVerdict(False, reason, detail=detail)
        detail["quantity"] = str(quantity)
        return RiskVerdict(True, "approved", quantity, detail)
