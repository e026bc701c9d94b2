"""``[autonomy]``: the autonomy governor's thresholds (:class:`AutonomySettings`), apart
from the governor (:mod:`tradewarden.agent.autonomy`) so that loading the settings does
not import it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["AutonomySettings"]


class AutonomySettings(BaseModel):
    """The autonomy governor's thresholds (the ``[autonomy]`` configuration section;
    immutable, unknown keys refused).

    Parameters
    ----------
    initial_level : int
        A new deployment's level, 1-3 (L4 only by command). Default 1.
    calendar : str
        How trading days and market hours are counted: ``"24/7"`` (default: every
        calendar day and hour, crypto), or an exchange-calendars code (``XNYS``,
        ``XLON``, ...): its sessions and open hours.
    promote_l2_days, promote_l2_win_rate, promote_min_trades : int, float, int
        L1 -> L2 after this many trading days without a manual override, a win rate of
        at least this (0-1), over at least this many closed trades (30, 0.70, 10).
    promote_l3_days, promote_l3_sharpe : int, float
        L2 -> L3 after this many more trading days and an annualised daily Sharpe ratio
        above this (60, 1.5).
    demote_losses, demote_loss_window : int
        Demote on this many losing trades among the last ``demote_loss_window`` (3 in 5).
    override_commands : tuple of str
        Command kinds that count as a manual override (reject, close, flatten, kill).
    system_actors : tuple of str
        Command actors that are not a person (their commands are not overrides).
    recent_window : int
        Entry orders in the recent average notional (20).
    l2_size_multiple, l3_size_multiple, human_size_multiple : float
        Entries over 1x (L2) / 2x (L3) the recent average are queued; at 3x or more a
        person decides at every level.
    sector_losses : int
        Consecutive losing trades in one sector that hand entries there to a person (3).
    sectors : dict of str to str
        Symbol -> sector; a symbol not listed is its own sector.
    vix_jump : float
        VIX rise since the session's open, as a fraction (0.30 = +30 %).
    data_gap_seconds : int
        Seconds without market data, in market hours, that need a person (1800).
    margin_limit : float
        Margin utilisation (0-1) above which entries need a person (0.40).
    min_confidence : float
        Decisions below this confidence (0-1) need a person (0.4).
    fill_failures : int
        Consecutive rejected entry/exit orders that need a person (3).
    regime_window, regime_min_windows : int
        Bars per realised-volatility window (20) and earlier windows needed to judge a
        regime (30).
    recent_decisions : int
        Agent decisions shown to the reasoner (5).
    cache_seconds : float
        Clock seconds the per-bar ledger figures are reused for (1.0: one bar).

    Raises
    ------
    pydantic.ValidationError
        A value out of range or an unknown key (the message names it).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    initial_level: int = Field(1, ge=1, le=3)
    calendar: str = "24/7"
    promote_l2_days: int = Field(30, ge=1)
    promote_l2_win_rate: float = Field(0.70, ge=0.0, le=1.0)
    promote_min_trades: int = Field(10, ge=1)
    promote_l3_days: int = Field(60, ge=1)
    promote_l3_sharpe: float = 1.5
    demote_losses: int = Field(3, ge=1)
    demote_loss_window: int = Field(5, ge=1)
    override_commands: tuple[str, ...] = ("reject", "close", "flatten", "kill")
    system_actors: tuple[str, ...] = ("system", "daemon", "governor")
    recent_window: int = Field(20, ge=1)
    l2_size_multiple: float = Field(1.0, gt=0)
    l3_size_multiple: float = Field(2.0, gt=0)
    human_size_multiple: float = Field(3.0, gt=0)
    sector_losses: int = Field(3, ge=1)
    sectors: dict[str, str] = Field(default_factory=dict)
    vix_jump: float = Field(0.30, gt=0)
    data_gap_seconds: int = Field(1800, ge=1)
    margin_limit: float = Field(0.40, ge=0.0, le=1.0)
    min_confidence: float = Field(0.4, ge=0.0, le=1.0)
    fill_failures: int = Field(3, ge=1)
    regime_window: int = Field(20, ge=2)
    regime_min_windows: int = Field(30, ge=1)
    recent_decisions: int = Field(5, ge=0)
    cache_seconds: float = Field(1.0, ge=0.0)

    @field_validator("calendar")
    @classmethod
    def _known_calendar(cls, value: str) -> str:
        if value != "24/7":
            import exchange_calendars as xcals
            if value not in xcals.get_calendar_names(include_aliases=True):
                raise ValueError(f"calendar {value!r}: use 24/7 or an exchange-calendars code "
                                 "such as XNYS")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> AutonomySettings:
        if self.demote_losses > self.demote_loss_window:
            raise ValueError(f"demote_losses {self.demote_losses} is more than "
                             f"demote_loss_window {self.demote_loss_window}")
        return self

    def sector(self, symbol: str) -> str:
        """Return ``symbol``'s sector (the symbol itself when not in ``sectors``)."""
        return self.sectors.get(symbol, symbol)
