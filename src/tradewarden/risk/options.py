"""Risk for short (written) equity puts: margin per contract, margin utilisation, sizing.

Money is ``Decimal`` in US dollars; option prices are per share of the underlying and a
contract is ``multiplier`` shares (100 for a standard US equity option).

The margin rule
---------------
An uncovered (naked) short equity put needs, per contract, the option's current value
plus the larger of

* 20 % of the underlying's price less the amount the put is out of the money, and
* 10 % of the put's strike,

all times the multiplier. This is the minimum for uncovered listed equity options of
FINRA Rule 4210(f)(2)(G) and the CBOE Margin Manual ("Uncovered Puts": 100 % of the
option proceeds plus 20 % of the underlying less the out-of-the-money amount, minimum
proceeds plus 10 % of the exercise price); Interactive Brokers publishes the same
formula for a Reg T account ("Short Put: Put Price + Maximum ((20% * Underlying Price -
Out of the Money Amount), (10% * Strike Price))"). A portfolio-margin account may need
less; the venue's own figure, where it reports one (IBKR's what-if order), is the one
to trust in live trading.

Utilisation
-----------
The margin of every short put held plus the new position's must stay within
``max_margin_utilisation`` of the account's net liquidation value (40 % by default):
a drop in the underlying raises each requirement, and an account near its limit is
forced to buy back at the worst time.

Sizing
------
A new position is sized by the smaller of two counts: the contracts whose margin fits
in the utilisation headroom, and the contracts whose loss at the stop (buying back at
``loss_multiple`` times the credit) stays within ``risk_fraction`` of net liquidation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["OptionRiskConfig", "OptionSizing", "short_put_margin", "size_short_put"]

_ZERO = Decimal(0)


def short_put_margin(strike: Decimal, underlying: Decimal, put_price: Decimal,
                     multiplier: int = 100) -> Decimal:
    """Return the margin requirement of one uncovered short put contract (USD).

    Parameters
    ----------
    strike : Decimal
        Exercise price, USD per share.
    underlying : Decimal
        Underlying's last price, USD per share.
    put_price : Decimal
        The put's current value (its mark, or the credit when opening), USD per share.
    multiplier : int
        Shares per contract (100).

    Returns
    -------
    Decimal
        ``(put_price + max(0.20 * underlying - max(0, underlying - strike), 0.10 *
        strike)) * multiplier`` (FINRA Rule 4210(f)(2)(G); see the module notes).

    Raises
    ------
    ValueError
        A non-positive strike or underlying, a negative put price or multiplier.
    """
    if strike <= 0 or underlying <= 0:
        raise ValueError(f"strike {strike} and underlying {underlying} must be positive")
    if put_price < 0 or multiplier <= 0:
        raise ValueError(f"put price {put_price} must be >= 0 and multiplier {multiplier} > 0")
    out_of_the_money = max(_ZERO, underlying - strike)
    per_share = put_price + max(Decimal("0.20") * underlying - out_of_the_money,
                                Decimal("0.10") * strike)
    return per_share * multiplier


class OptionRiskConfig(BaseModel):
    """Limits for short options (fractions of net liquidation).

    Parameters
    ----------
    max_margin_utilisation : float
        Margin of all short options, the new one included, at most this fraction of
        net liquidation, (0, 1] (default 0.40).
    risk_fraction : float
        Loss at the stop of one new position at most this fraction of net liquidation,
        (0, 1] (default 0.02).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
    max_margin_utilisation: float = Field(0.40, gt=0, le=1)
    risk_fraction: float = Field(0.02, gt=0, le=1)


@dataclass(frozen=True, slots=True)
class OptionSizing:
    """How many contracts a new short put may be, and why.

    Parameters
    ----------
    contracts : int
        0 when the position does not fit (``reason`` says why).
    reason : str
        ``approved``, ``margin_utilisation`` (no headroom for one contract),
        ``loss_at_stop`` (one contract loses more than the risk budget at its stop) or
        ``no_net_liquidation``.
    detail : dict
        The figures (USD, as text): margin per contract, headroom, loss per contract,
        the two counts, utilisation after the trade.
    """

    contracts: int
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def approved(self) -> bool:
        """Whether at least one contract fits."""
        return self.contracts > 0


def size_short_put(*, net_liquidation: Decimal, margin_in_use: Decimal,
                   margin_per_contract: Decimal, credit: Decimal, loss_multiple: Decimal,
                   config: OptionRiskConfig, multiplier: int = 100,
                   fee_per_contract: Decimal = _ZERO) -> OptionSizing:
    """Size a new short put by margin headroom and by its loss at the stop.

    Parameters
    ----------
    net_liquidation : Decimal
        The account's net liquidation value, USD.
    margin_in_use : Decimal
        Margin requirement of the short options already held, USD.
    margin_per_contract : Decimal
        :func:`short_put_margin` of the new contract, USD.
    credit : Decimal
        Premium received per share, USD.
    loss_multiple : Decimal
        The stop buys back at ``loss_multiple * credit`` per share (> 1).
    config : OptionRiskConfig
    multiplier : int
        Shares per contract.
    fee_per_contract : Decimal
        Commission to open and to close one contract, USD each way.

    Returns
    -------
    OptionSizing

    Raises
    ------
    ValueError
        ``loss_multiple`` not above 1, a negative credit or margin.
    """
    if loss_multiple <= 1:
        raise ValueError(f"loss_multiple {loss_multiple} must be above 1")
    if credit < 0 or margin_per_contract <= 0 or margin_in_use < 0:
        raise ValueError("credit and margin in use must be >= 0, margin per contract > 0")
    if net_liquidation <= 0:
        return OptionSizing(0, "no_net_liquidation", {"net_liquidation": str(net_liquidation)})
    cap = Decimal(str(config.max_margin_utilisation)) * net_liquidation
    headroom = max(_ZERO, cap - margin_in_use)
    by_margin = int((headroom / margin_per_contract).to_integral_value(ROUND_FLOOR))
    loss = (loss_multiple - 1) * credit * multiplier + 2 * fee_per_contract
    budget = Decimal(str(config.risk_fraction)) * net_liquidation
    by_loss = (int((budget / loss).to_integral_value(ROUND_FLOOR)) if loss > 0 else by_margin)
    contracts = min(by_margin, by_loss)
    detail = {"margin_per_contract": str(margin_per_contract), "margin_in_use": str(margin_in_use),
              "margin_cap": str(cap), "margin_headroom": str(headroom),
              "loss_at_stop_per_contract": str(loss), "risk_budget": str(budget),
              "contracts_by_margin": by_margin, "contracts_by_loss": by_loss}
    if contracts <= 0:
        return OptionSizing(0, "margin_utilisation" if by_margin <= 0 else "loss_at_stop", detail)
    used = margin_in_use + contracts * margin_per_contract
    detail["utilisation_after"] = f"{used / net_liquidation:.4f}"
    return OptionSizing(contracts, "approved", detail)
