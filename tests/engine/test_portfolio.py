"""Position accounting under partial fills: tradewarden.engine.portfolio.Holding.

Prices and quantities are on the BTC-USD increments (price 0.01 USD, base 1e-8 BTC) and
fees are ``notional * bps / 10_000`` rounded to 1e-8 USD, as the simulated venue charges.
"""

from __future__ import annotations

import json
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradewarden.data import load_market_data
from tradewarden.domain import (
    COINBASE_SPECS,
    ExitReason,
    Fill,
    OrderRole,
    Position,
    Side,
    Trade,
)
from tradewarden.engine.portfolio import SNAPSHOT_VERSION, Holding

SPEC = COINBASE_SPECS["BTC-USD"]
SYM = SPEC.symbol
PX = SPEC.price_increment          # 0.01 USD
QX = SPEC.quantity_increment       # 1e-8 BTC
FEE_Q = Decimal("0.00000001")


def fee_of(price: Decimal, qty: Decimal, bps: int) -> Decimal:
    """Fee like the simulated venue: notional * bps / 10 000, half-even to 1e-8 USD."""
    return (price * qty * Decimal(bps) / Decimal(10_000)).quantize(FEE_Q, ROUND_HALF_EVEN)


def make_fill(side: Side, qty: Decimal, price: Decimal, fee: Decimal, cid: str, ts: int,
              symbol: str = SYM) -> Fill:
    role = OrderRole.ENTRY if side is Side.BUY else OrderRole.EXIT
    return Fill(cid, symbol, side, qty, price, fee, "taker", ts, price, role)


def buy(qty: str, price: str, fee: str = "0", cid: str = "b1", ts: int = 100) -> Fill:
    return make_fill(Side.BUY, Decimal(qty), Decimal(price), Decimal(fee), cid, ts)


def sell(qty: str, price: str, fee: str = "0", cid: str = "s1", ts: int = 200) -> Fill:
    return make_fill(Side.SELL, Decimal(qty), Decimal(price), Decimal(fee), cid, ts)


def engine_trade(b: Fill, s: Fill, reason: ExitReason = ExitReason.SIGNAL) -> Trade:
    """Today's engine formula (TradingEngine.finalize_exit) for one buy and one sell fill."""
    fees = b.fee + s.fee
    pnl = (s.price - b.price) * s.quantity - fees
    # no bar seen: the excursions are the two fill prices (their shortest float repr)
    lo, hi = sorted((float(b.price), float(s.price)))
    return Trade(b.client_order_id, b.symbol, "long", s.quantity, b.ts, b.price, s.ts, s.price,
                 fees, pnl, reason, b.client_order_id, s.client_order_id,
                 Decimal(repr(lo)), Decimal(repr(hi)))


def assert_same_digits(a: Trade, b: Trade) -> None:
    """Equal field for field, and every Decimal printed with the same digits (ledger text)."""
    assert a == b
    for name in ("quantity", "entry_price", "exit_price", "fees", "pnl"):
        assert str(getattr(a, name)) == str(getattr(b, name)), name


# -- hypothesis: round trips on the BTC-USD grid ------------------------------------------
units = st.integers(1, 300_000_000)               # 1e-8 .. 3 BTC
cents = st.integers(100_000, 15_000_000)          # 1 000.00 .. 150 000.00 USD
bps = st.integers(0, 60)                          # fee rate


@st.composite
def round_trips(draw) -> list[Fill]:
    """One round trip: buys and partial sells in any order (never flat before the end),
    closed by a sell of what is left."""
    steps = draw(st.lists(st.tuples(st.booleans(), units, cents, bps), min_size=1, max_size=10))
    fills: list[Fill] = []
    held = 0
    for n, (is_buy, u, c, r) in enumerate(steps):
        price = c * PX
        if is_buy or held < 2:
            side = Side.BUY
            held += u
        else:
            side = Side.SELL
            u = min(u, held - 1)          # a partial exit: never flat before the last fill
            held -= u
        qty = u * QX
        fills.append(make_fill(side, qty, price, fee_of(price, qty, r), f"o{n}", 1_000 + 60 * n))
    c, r = draw(cents), draw(bps)
    price, qty = c * PX, held * QX
    fills.append(make_fill(Side.SELL, qty, price, fee_of(price, qty, r), "last", 1_000 + 60 * len(steps)))
    return fills


def run(fills: list[Fill], holding: Holding | None = None,
        reason: ExitReason | None = None) -> tuple[Holding, list[Trade | None]]:
    h = holding or Holding(SYM)
    return h, [h.apply(f, reason) for f in fills]


@given(round_trips())
def test_round_trip_invariants(fills):
    """Quantity never negative, a trade only on the flattening fill, cash conserved,
    average prices inside the fill prices, totals equal the fills' sums."""
    h = Holding(SYM)
    cash = Decimal(0)
    for i, f in enumerate(fills):
        trade = h.apply(f)
        cash += (f.price * f.quantity - f.fee) if f.side is Side.SELL else -(f.price * f.quantity + f.fee)
        assert h.quantity >= 0
        if i < len(fills) - 1:
            assert trade is None and not h.is_flat
            assert h.position().quantity == h.quantity
    assert trade is not None and h.is_flat and h.position() is None
    buys = [f for f in fills if f.side is Side.BUY]
    sells = [f for f in fills if f.side is Side.SELL]
    assert trade.pnl == cash                                      # cash conservation, exact
    assert trade.quantity == sum(f.quantity for f in buys) == sum(f.quantity for f in sells)
    assert trade.fees == sum(f.fee for f in fills)
    assert min(f.price for f in buys) <= trade.entry_price <= max(f.price for f in buys)
    assert min(f.price for f in sells) <= trade.exit_price <= max(f.price for f in sells)
    assert (trade.trade_id, trade.entry_order_id, trade.entry_ts) == ("o0", "o0", fills[0].ts)
    assert (trade.exit_order_id, trade.exit_ts) == ("last", fills[-1].ts)
    assert trade.side == "long" and trade.exit_reason is ExitReason.SIGNAL
    assert h == Holding(SYM)                                      # reset for the next round trip


@st.composite
def split_round_trips(draw) -> tuple[list[Fill], list[Fill]]:
    """A round trip, and the same one with each fill cut into up to four partial fills of
    the same order, price and time, whose fees add up to the original fee."""
    fills = draw(round_trips())
    parts: list[Fill] = []
    for f in fills:
        total = int(f.quantity / QX)
        k = draw(st.integers(1, min(4, total)))
        cuts = sorted(draw(st.lists(st.integers(1, total - 1), min_size=k - 1, max_size=k - 1,
                                    unique=True))) if k > 1 else []
        bounds = [0, *cuts, total]
        fee_left = f.fee
        for j in range(len(bounds) - 1):
            qty = (bounds[j + 1] - bounds[j]) * QX
            if j < len(bounds) - 2:
                fee = (f.fee * qty / f.quantity).quantize(FEE_Q, ROUND_DOWN)
                fee_left -= fee
            else:
                fee = fee_left
            parts.append(Fill(f.client_order_id, f.symbol, f.side, qty, f.price, fee,
                              f.liquidity, f.ts, f.reference_price, f.role))
    return fills, parts


@given(split_round_trips())
def test_splitting_fills_changes_nothing(pair):
    """The same executions reported as partial fills give the same trade."""
    whole, parts = pair
    _, got_whole = run(whole)
    h, got_parts = run(parts)
    assert all(t is None for t in got_parts[:-1])                 # never closed early
    a, b = got_whole[-1], got_parts[-1]
    assert (a.pnl, a.quantity, a.fees) == (b.pnl, b.quantity, b.fees)
    assert (a.entry_price, a.exit_price) == (b.entry_price, b.exit_price)
    assert h.is_flat


@given(units, cents, cents, bps, bps, st.sampled_from(list(ExitReason)))
def test_single_buy_single_sell_is_the_engine_formula(u, c_in, c_out, r_in, r_out, reason):
    """One buy and one sell: exactly (exit - entry) * qty - (entry_fee + exit_fee), digit for digit."""
    qty = u * QX
    # slippage of 2 bps against the trader, rounded to the price increment like the venue
    p_in = SPEC.ceil_price(c_in * PX * Decimal("1.0002"))
    p_out = SPEC.floor_price(c_out * PX * Decimal("0.9998"))
    b = make_fill(Side.BUY, qty, p_in, fee_of(p_in, qty, r_in), "run-BTC-USD-3-entry", 3600)
    s = make_fill(Side.SELL, qty, p_out, fee_of(p_out, qty, r_out), "run-BTC-USD-9-exit", 7200)
    _, (t0, t1) = run([b, s], reason=reason)
    assert t0 is None
    assert_same_digits(t1, engine_trade(b, s, reason))
    assert t1.entry_price is b.price and t1.exit_price is s.price  # undivided


@given(round_trips(), st.data())
def test_snapshot_round_trip_mid_position(fills, data):
    """A JSON snapshot taken mid round trip restores a holding that ends the same way."""
    cut = data.draw(st.integers(1, len(fills) - 1))
    h, _ = run(fills[:cut])
    snap = json.loads(json.dumps(h.to_dict()))
    restored = Holding.from_dict(snap)
    assert restored == h and restored.to_dict() == h.to_dict()
    assert restored.entry_price == h.entry_price
    _, rest_a = run(fills[cut:], h)
    _, rest_b = run(fills[cut:], restored)
    assert rest_a[-1] is not None
    assert_same_digits(rest_a[-1], rest_b[-1])


# -- the engine formula on real prices -----------------------------------------------------
@pytest.fixture(scope="module")
def btc_opens() -> list[float]:
    series = load_market_data([SYM]).series[SYM]
    return [float(x) for x in series.open[:2_000]]


def test_engine_formula_on_bundled_btc_prices(btc_opens):
    """Round trips entered and left at real BTC-USD opens (2 bps slippage, 10 bps taker fee,
    1 000 USD per trade), each fill whole: every trade is the engine's, digit for digit."""
    h = Holding(SYM)
    checked = 0
    for i in range(0, len(btc_opens) - 7, 7):
        p_in = SPEC.ceil_price(Decimal(repr(btc_opens[i])) * Decimal("1.0002"))
        p_out = SPEC.floor_price(Decimal(repr(btc_opens[i + 7])) * Decimal("0.9998"))
        qty = SPEC.round_quantity(Decimal(1000) / p_in)
        b = make_fill(Side.BUY, qty, p_in, fee_of(p_in, qty, 10), f"e{i}", i * 3600)
        s = make_fill(Side.SELL, qty, p_out, fee_of(p_out, qty, 10), f"x{i}", (i + 7) * 3600)
        assert h.apply(b) is None
        pos = h.position(Decimal("1.00"), Decimal("2.00"))
        assert pos == Position(SYM, qty, p_in, i * 3600, b.fee, f"e{i}", Decimal("1.00"),
                               Decimal("2.00"))
        assert_same_digits(h.apply(s, ExitReason.STOP_LOSS),
                           engine_trade(b, s, ExitReason.STOP_LOSS))
        checked += 1
    assert checked > 250


# -- examples ------------------------------------------------------------------------------
def test_partial_entries_average_and_partial_exits_close_once():
    h = Holding(SYM)
    assert h.apply(buy("0.10000000", "60000.00", "6.00000000", "e1", 100)) is None
    assert h.apply(buy("0.30000000", "64000.00", "19.20000000", "e1", 101)) is None
    assert h.entry_price == Decimal(63000)                      # (6000 + 19200) / 0.4
    assert h.entry_fee == Decimal("25.2") and h.entry_ts == 100 and h.entry_order_id == "e1"
    assert h.apply(sell("0.25000000", "65000.00", "16.25000000", "x1", 200)) is None
    assert h.quantity == Decimal("0.15") and h.last_exit_order_id == "x1"
    assert h.position().quantity == Decimal("0.15")
    assert h.position().entry_price == Decimal(63000)
    t = h.apply(sell("0.15000000", "61000.00", "9.15000000", "x2", 300), ExitReason.TAKE_PROFIT)
    assert t.quantity == Decimal("0.4")
    assert t.exit_price == Decimal(63500)                       # (16250 + 9150) / 0.4
    assert t.fees == Decimal("50.6")
    assert t.pnl == Decimal(25400) - Decimal(25200) - Decimal("50.6")
    assert (t.entry_ts, t.exit_ts, t.exit_order_id, t.exit_reason) == (100, 300, "x2",
                                                                         ExitReason.TAKE_PROFIT)
    assert h.is_flat and h.fills == 0 and h.entry_price is None


def test_next_round_trip_starts_fresh():
    h = Holding(SYM)
    h.apply(buy("1", "100.00", "0.10", "a"))
    first = h.apply(sell("1", "90.00", "0.09", "b"))
    h.apply(buy("2", "50.00", "0.10", "c", 300))
    second = h.apply(sell("2", "55.00", "0.11", "d", 400))
    assert first.trade_id == "a" and first.pnl == Decimal("-10.19")
    assert (second.trade_id, second.entry_ts, second.quantity) == ("c", 300, Decimal(2))
    assert second.pnl == Decimal("9.79") and second.fees == Decimal("0.21")


def test_entry_price_is_the_fill_price_itself_or_a_fixed_28_digit_quotient():
    h = Holding(SYM)
    h.apply(buy("0.00000003", "64123.40"))
    assert str(h.entry_price) == "64123.40"
    h.apply(buy("0.00000003", "64123.40"))                        # same price: still undivided
    assert str(h.entry_price) == "64123.40"
    h.apply(buy("0.00000001", "64123.41"))
    expected = Decimal("0.0044886381") / Decimal("0.00000007")
    with localcontext() as ctx:                                   # a caller's context is ignored
        ctx.prec = 6
        assert h.entry_price == expected
    assert h.entry_price == Decimal("64123.40142857142857142857143")
    assert len(h.entry_price.as_tuple().digits) == 28


@pytest.mark.parametrize("fill, words", [
    (make_fill(Side.BUY, Decimal(1), Decimal(100), Decimal(0), "e9", 1, "ETH-USD"), "ETH-USD"),
    (buy("0", "100"), "quantity 0 is not positive"),
    (buy("-1", "100"), "quantity -1 is not positive"),
    (buy("1", "0"), "price 0 is not positive"),
    (buy("1", "100", "-0.01"), "fee -0.01 is negative"),
    (make_fill(Side.BUY, 1.5, Decimal(100), Decimal(0), "b1", 1), "quantity 1.5 is not a finite Decimal"),
    (buy("NaN", "100"), "not a finite Decimal"),
    (sell("1", "100"), "oversell: selling 1 with 0 held"),
])
def test_bad_fills_are_refused_with_symbol_and_order_id(fill, words):
    h = Holding(SYM)
    with pytest.raises(ValueError, match=words) as err:
        h.apply(fill)
    assert str(err.value).startswith(f"{SYM}: fill {fill.client_order_id}:")
    assert h == Holding(SYM)


def test_oversell_changes_nothing():
    h = Holding(SYM)
    h.apply(buy("0.5", "100.00", "0.05"))
    before = h.to_dict()
    with pytest.raises(ValueError, match=r"BTC-USD: fill s1: oversell: selling 0.50000001 with 0.5 held"):
        h.apply(sell("0.50000001", "100.00"))
    assert h.to_dict() == before


def test_bad_exit_reason_and_unroundable_amounts_are_refused_unchanged():
    h = Holding(SYM)
    h.apply(buy("1", "100.00"))
    before = h.to_dict()
    with pytest.raises(ValueError, match="exit reason 'whim'"):
        h.apply(sell("1", "100.00"), "whim")
    with pytest.raises(ValueError, match="more than 28 significant digits"):
        h.apply(buy("1.000000000000001", "100.0000000000000001"))
    assert h.to_dict() == before


def test_snapshot_of_a_flat_holding_and_bad_snapshots():
    flat = Holding(SYM).to_dict()
    assert flat["version"] == SNAPSHOT_VERSION and flat["quantity"] == "0"
    assert Holding.from_dict(json.loads(json.dumps(flat))) == Holding(SYM)
    h = Holding(SYM)
    h.apply(buy("0.25", "100.00", "0.03", "e1"))
    good = h.to_dict()
    for change, words in [
        ({"version": 99}, "field 'version' is 99"),
        ({"cost": 25}, "field 'cost' is 25, not a decimal string"),
        ({"fees": "-1"}, "field 'fees' is '-1', not a finite non-negative"),
        ({"quantity": "abc"}, "field 'quantity' is 'abc', not a number"),
        ({"quantity": "0.3"}, "quantity 0.3 is not bought 0.25 - sold 0"),
        ({"entry_ts": "100"}, "field 'entry_ts' is '100', not int"),
        ({"entry_order_id": None}, "holds 0.25 but has no entry"),
        ({"fills": -1}, "field 'fills' is -1"),
    ]:
        with pytest.raises(ValueError, match=words) as err:
            Holding.from_dict({**good, **change})
        assert str(err.value).startswith("BTC-USD: holding snapshot: ")
    with pytest.raises(ValueError, match="field 'symbol' is None"):
        Holding.from_dict({**good, "symbol": None})
