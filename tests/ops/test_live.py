"""What ``warden live`` shows before real money: the pre-flight verdict and the exposure."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tradewarden.engine import RunConfig
from tradewarden.execution.venue import Preflight, VenuePermissionError
from tradewarden.ops.live import check_preflight, exposure_lines
from tradewarden.risk import RiskConfig


def test_a_key_that_can_withdraw_or_cannot_trade_is_refused():
    ok = Preflight("coinbase", "default portfolio", can_trade=True, can_withdraw=False)
    check_preflight(ok)
    with pytest.raises(VenuePermissionError) as exc:
        check_preflight(Preflight("coinbase", "p", can_trade=False, can_withdraw=True))
    text = str(exc.value)
    assert text.startswith("coinbase: the API key has no trade permission")
    assert "can withdraw or transfer funds" in text and "never withdrawal" in text


def test_exposure_names_the_most_it_can_lose_per_trade_and_per_day():
    cfg = RunConfig(mode="live", symbols=("BTC-USD", "ETH-USD"), capital=Decimal(5000),
                    timeframe="1h", risk=RiskConfig(daily_loss_limit=0.04))
    pre = Preflight("kraken", "acct-1", True, False, {"USD": Decimal("10000"), "BTC": Decimal(0)},
                    ["withdrawal permission cannot be read through Kraken's API"])
    lines = exposure_lines(cfg, pre)
    assert lines[0] == "venue     kraken, account acct-1"
    assert lines[1] == "balances  USD 10000"
    assert lines[4] == "at most   1.00% of equity per trade at the stop-loss (about 50.00 of 5000.00 per symbol)"
    assert lines[5].startswith("per day   4.00% of equity per UTC day (about 400.00)")
    assert lines[-1] == "note      withdrawal permission cannot be read through Kraken's API"
    fixed = RunConfig(mode="live", symbols=("BTC-USD",), risk=RiskConfig(sizing="fixed:0.01",
                                                                         daily_loss_limit="off"))
    lines = exposure_lines(fixed, pre)
    assert lines[4] == "at most   0.01 base units per trade times the distance to its stop-loss"
    assert lines[5] == "per day   no daily loss limit (risk.daily_loss_limit is off)"
