"""Built-in strategies on real BTC-USD bars: causal frames, warm-up sufficiency, decide() vs
frame agreement, frame semantics, and the registry / parameter models."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from pydantic import ValidationError

from tradewarden.domain import Action
from tradewarden.strategy import (
    STRATEGIES,
    DonchianBreakout,
    DonchianParams,
    EmaRsiParams,
    EmaRsiVolume,
    SignalFrame,
    StrategyConfigError,
    build_strategy,
    parse_params,
)
from tradewarden.strategy import indicators as ind

STRATS = {
    "donchian": lambda: DonchianBreakout(),
    "donchian-nobracket-55-20": lambda: DonchianBreakout(
        DonchianParams(entry_window=55, exit_window=20, use_bracket=False)),
    "ema_rsi": lambda: EmaRsiVolume(),
    "ema_rsi-5-13-nobracket": lambda: EmaRsiVolume(
        EmaRsiParams(fast=5, slow=13, rsi_min=40, rsi_max=75, min_volume_ratio=1.2,
                     use_bracket=False)),
}
# Channel inputs (TA-Lib MAX/MIN) must match exactly; recursive ones (EMA/RSI/ATR) and
# running sums (the volume ratio's TA-Lib SMA) to rtol 1e-12.
EXACT_INPUTS = {"upper", "lower"}


@pytest.fixture(scope="module")
def frames(btc):
    return {name: (make(), make().prepare(btc)) for name, make in STRATS.items()}


def assert_frame_prefix_equal(part: SignalFrame, full: SignalFrame, t: int, where: str,
                              skip_inputs: frozenset[str] = frozenset()) -> None:
    """``part`` (over bars [.., t]) ends at full-frame bar ``t``; compare its last bar."""
    k = len(part) - 1
    assert part.reasons == full.reasons
    assert (part.entry_reason, part.exit_reason, part.hold_reason) == (
        full.entry_reason, full.exit_reason, full.hold_reason)
    assert part.enter[k] == full.enter[t], f"enter {where}"
    assert part.exit[k] == full.exit[t], f"exit {where}"
    assert part.flat_reason[k] == full.flat_reason[t], f"flat_reason {where}"
    np.testing.assert_allclose(part.stop_loss[k], full.stop_loss[t], rtol=1e-12, equal_nan=True,
                               err_msg=f"stop_loss {where}")
    np.testing.assert_allclose(part.take_profit[k], full.take_profit[t], rtol=1e-12,
                               equal_nan=True, err_msg=f"take_profit {where}")
    assert list(part.inputs) == list(full.inputs)
    for key, arr in full.inputs.items():
        if key in skip_inputs:
            continue
        if key in EXACT_INPUTS:
            np.testing.assert_array_equal(part.inputs[key][k], arr[t], err_msg=f"{key} {where}")
        else:
            np.testing.assert_allclose(part.inputs[key][k], arr[t], rtol=1e-12, equal_nan=True,
                                       err_msg=f"{key} {where}")


# ---------------------------------------------------------------------- causality
@pytest.mark.parametrize("name", list(STRATS))
def test_frame_has_no_look_ahead(btc, frames, sample_t, name) -> None:
    strat, full = frames[name]
    ts = sample_t if name in ("donchian", "ema_rsi") else sample_t[::3]
    for t in ts.tolist():
        part = strat.prepare(btc.slice(0, t + 1))
        assert len(part) == t + 1
        assert_frame_prefix_equal(part, full, t, f"{name} t={t}")


@pytest.mark.parametrize("name", list(STRATS))
def test_warmup_history_is_enough(btc, frames, sample_t, name) -> None:
    """The engine prepares each chunk with only ``warmup`` bars of history: the frame at
    ``t`` from bars [t-warmup .. t] must equal the frame from the whole history."""
    strat, full = frames[name]
    w = strat.warmup
    ts = [t for t in sample_t.tolist() if t >= w][::2]
    assert len(ts) > 50
    skip = frozenset()
    for t in ts:
        part = strat.prepare(btc.slice(t - w, t + 1))
        assert_frame_prefix_equal(part, full, t, f"{name} warm t={t}", skip)


def test_donchian_without_bracket_records_a_chunk_independent_atr(btc, frames) -> None:
    strat, full = frames["donchian-nobracket-55-20"]
    w = strat.warmup
    for t in (w + 255, 5_000, 12_000):
        part = strat.prepare(btc.slice(t - w, t + 1))
        np.testing.assert_allclose(part.inputs["atr"][-1], full.inputs["atr"][t], rtol=1e-12,
                                   equal_nan=True, err_msg=f"atr t={t}")


def test_warmup_values() -> None:
    assert DonchianBreakout().warmup == 20 + 1 + 40 * 14
    assert DonchianBreakout(DonchianParams(use_bracket=False)).warmup == 20 + 1 + 40 * 14
    assert EmaRsiVolume().warmup == 40 * 21 + 20 + 1


# ---------------------------------------------------------------------- decide vs frame
@pytest.mark.parametrize("name", list(STRATS))
def test_decide_agrees_with_frame_on_every_bar(btc, frames, name) -> None:
    strat, f = frames[name]
    n = len(btc)
    assert len(f) == n
    counts = {Action.ENTER_LONG: 0, Action.EXIT: 0}
    for t in range(n):
        inputs = {k: float(v[t]) for k, v in f.inputs.items()}
        flat = strat.decide(f, t, False)
        if f.enter[t]:
            counts[Action.ENTER_LONG] += 1
            assert flat.action is Action.ENTER_LONG and flat.reason == f.entry_reason
            sl, tp = f.stop_loss[t], f.take_profit[t]
            assert (flat.stop_loss is None) == bool(np.isnan(sl))
            assert (flat.take_profit is None) == bool(np.isnan(tp))
            if flat.stop_loss is not None:
                assert flat.stop_loss == sl and flat.take_profit == tp
                assert flat.stop_loss < btc.close[t] < flat.take_profit
        else:
            assert flat.action is Action.HOLD
            assert flat.reason == f.reasons[f.flat_reason[t]]
            assert flat.stop_loss is None and flat.take_profit is None
        # NaN inputs (warm-up) compare by identity of NaN-ness
        assert flat.inputs.keys() == inputs.keys()
        for k, v in inputs.items():
            assert flat.inputs[k] == v or (np.isnan(v) and np.isnan(flat.inputs[k]))
        held = strat.decide(f, t, True)
        if f.exit[t]:
            counts[Action.EXIT] += 1
            assert (held.action, held.reason) == (Action.EXIT, f.exit_reason)
        else:
            assert (held.action, held.reason) == (Action.HOLD, f.hold_reason)
        assert held.stop_loss is None and held.take_profit is None
    # Real data produces both kinds of actionable bars for every variant.
    assert counts[Action.ENTER_LONG] > 10 and counts[Action.EXIT] > 10


@pytest.mark.parametrize("name", list(STRATS))
def test_frame_shape_and_reasons(btc, frames, name) -> None:
    strat, f = frames[name]
    n = len(btc)
    assert tuple(f.inputs) == strat.input_names and len(strat.input_names) <= 4
    for arr in (f.enter, f.exit, f.flat_reason, f.stop_loss, f.take_profit, *f.inputs.values()):
        assert arr.shape == (n,)
    assert f.enter.dtype == bool and f.exit.dtype == bool
    assert f.reasons[0] == "warmup" and f.entry_reason in f.reasons
    labels = np.array(f.reasons, dtype=object)[f.flat_reason]
    # flat_reason names the entry reason exactly where enter is True
    np.testing.assert_array_equal(labels == f.entry_reason, f.enter)
    # warm-up is a prefix and no entry happens during it
    warm = labels == "warmup"
    k = int(np.argmin(warm))
    assert warm[:k].all() and not warm[k:].any() and 0 < k < 100
    assert not f.enter[:k].any()
    sliced = f.slice(1000)
    assert len(sliced) == n - 1000 and sliced.enter[0] == f.enter[1000]
    for key in strat.input_names:
        np.testing.assert_array_equal(sliced.inputs[key], f.inputs[key][1000:])
    np.testing.assert_array_equal(sliced.stop_loss, f.stop_loss[1000:])


def test_donchian_frame_semantics(btc, frames) -> None:
    _, f = frames["donchian"]
    close = btc.close
    upper, lower, atr = (ind.highest(btc.high, 20), ind.lowest(btc.low, 10),
                         ind.atr(btc.high, btc.low, btc.close, 14))
    np.testing.assert_array_equal(f.inputs["upper"], upper)
    np.testing.assert_array_equal(f.inputs["lower"], lower)
    np.testing.assert_array_equal(f.inputs["atr"], atr)
    ready = ~np.isnan(upper) & ~np.isnan(lower) & ~np.isnan(atr)
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(f.enter, ready & (close > upper))
        np.testing.assert_array_equal(f.exit, ~np.isnan(lower) & (close < lower))
    np.testing.assert_allclose(f.stop_loss, close - 2.0 * atr, rtol=0, atol=0, equal_nan=True)
    np.testing.assert_allclose(f.take_profit, close + 4.0 * atr, rtol=0, atol=0, equal_nan=True)
    labels = np.array(f.reasons, dtype=object)[f.flat_reason]
    assert set(labels[ready & ~f.enter]) == {"no_breakout"}
    # A hand-picked real breakout: first entry bar, close above the previous 20 highs.
    t = int(np.argmax(f.enter))
    assert close[t] > btc.high[t - 20:t].max()
    assert not (close[20:t] > np.array([btc.high[i - 20:i].max() for i in range(20, t)])).any()


def test_donchian_without_bracket_has_no_levels(frames) -> None:
    _, f = frames["donchian-nobracket-55-20"]
    assert np.isnan(f.stop_loss).all() and np.isnan(f.take_profit).all()


def test_ema_rsi_frame_semantics(btc, frames) -> None:
    strat, f = frames["ema_rsi"]
    p = strat.params
    fast, slow, rsi, vr = (f.inputs[k] for k in strat.input_names)
    np.testing.assert_array_equal(fast, ind.ema(btc.close, 9))
    np.testing.assert_array_equal(slow, ind.ema(btc.close, 21))
    np.testing.assert_array_equal(rsi, ind.rsi(btc.close, 14))
    np.testing.assert_array_equal(vr, ind.volume_ratio(btc.volume, 20))
    labels = np.array(f.reasons, dtype=object)[f.flat_reason]
    for t in range(1, len(btc)):
        vals = (fast[t], slow[t], fast[t - 1], slow[t - 1], rsi[t], vr[t])
        ready = not any(np.isnan(vals))
        cross_up = ready and fast[t] > slow[t] and fast[t - 1] <= slow[t - 1]
        rsi_ok = ready and p.rsi_min <= rsi[t] <= p.rsi_max
        vol_ok = ready and vr[t] >= p.min_volume_ratio
        assert f.enter[t] == (cross_up and rsi_ok and vol_ok), t
        cross_down = fast[t] < slow[t] and fast[t - 1] >= slow[t - 1]
        assert f.exit[t] == (bool(cross_down) or bool(rsi[t] > p.rsi_exit)), t
        want = ("warmup" if not ready else "ema_cross_up" if f.enter[t]
                else "rsi_filter" if cross_up and not rsi_ok
                else "volume_filter" if cross_up else "no_cross")
        assert labels[t] == want, t
    assert {"rsi_filter", "volume_filter", "ema_cross_up", "no_cross", "warmup"} <= set(labels)


# ---------------------------------------------------------------------- registry
def test_registry_builds_both_strategies() -> None:
    assert set(STRATEGIES) == {"donchian", "ema_rsi", "rank"}
    d = build_strategy("donchian")
    assert isinstance(d, DonchianBreakout) and d.params == DonchianParams()
    e = build_strategy("ema_rsi", {"fast": 5, "slow": 13})
    assert isinstance(e, EmaRsiVolume) and (e.params.fast, e.params.slow) == (5, 13)


def test_unknown_strategy_lists_available() -> None:
    with pytest.raises(StrategyConfigError) as exc:
        build_strategy("turtle")
    assert str(exc.value) == ("unknown strategy 'turtle'; available: donchian, ema_rsi, rank "
                              "(or path/to/file.py:ClassName, package.module:ClassName)")
    assert isinstance(exc.value, ValueError)


@pytest.mark.parametrize("name, params, names", [
    ("donchian", {"entry_windw": "30"}, "'entry_windw'"),
    ("donchian", {"entry_window": "abc"}, "'entry_window'"),
    ("donchian", {"entry_window": 1}, "'entry_window'"),
    ("donchian", {"stop_atr": "0"}, "'stop_atr'"),
    ("donchian", {"use_bracket": "maybe"}, "'use_bracket'"),
    ("ema_rsi", {"rsi_max": 101}, "'rsi_max'"),
    ("ema_rsi", {"fast": 30}, "fast (30) must be shorter than slow (21)"),
    ("ema_rsi", {"rsi_min": 75}, "rsi_min (75.0) must not exceed rsi_max (70.0)"),
])
def test_bad_param_error_names_the_param(name, params, names) -> None:
    with pytest.raises(StrategyConfigError) as exc:
        build_strategy(name, params)
    msg = str(exc.value)
    assert msg.startswith(f"strategy {name!r} param ")
    assert names in msg
    first = "entry_window" if name == "donchian" else "fast"
    assert f"(params: {first}, " in msg          # the valid names are listed


def test_string_params_from_the_cli_are_coerced() -> None:
    s = build_strategy("donchian", parse_params(["entry_window=55", "exit_window = 20",
                                                 "use_bracket=false", "stop_atr=1.5"]))
    assert s.params == DonchianParams(entry_window=55, exit_window=20, use_bracket=False,
                                      stop_atr=1.5)


def test_parse_params() -> None:
    assert parse_params(None) == {} and parse_params([]) == {}
    assert parse_params(["a=1", " b = 2 ", "c=x=y", "d="]) == {"a": "1", "b": "2", "c": "x=y",
                                                             "d": ""}
    assert parse_params(["a=1", "a=2"]) == {"a": "2"}        # last one wins
    for bad in ("novalue", "=5", "  =5", ""):
        with pytest.raises(StrategyConfigError, match=f"--param {bad!r}: expected key=value"):
            parse_params(["ok=1", bad])


def test_params_are_frozen_and_hash_is_stable() -> None:
    p = DonchianParams()
    with pytest.raises(ValidationError):
        p.entry_window = 30
    expected = hashlib.sha256(json.dumps(
        {"entry_window": 20, "exit_window": 10, "use_bracket": True, "atr_period": 14,
         "stop_atr": 2.0, "take_profit_atr": 4.0}, sort_keys=True).encode()).hexdigest()
    assert p.stable_hash() == expected
    assert DonchianParams().stable_hash() == expected                     # across instances
    assert (DonchianParams(entry_window=30, exit_window=5).stable_hash()
            == DonchianParams(exit_window=5, entry_window=30).stable_hash())   # order-free
    hashes = {DonchianParams().stable_hash(), DonchianParams(entry_window=21).stable_hash(),
              DonchianParams(use_bracket=False).stable_hash(),
              DonchianParams(stop_atr=2.5).stable_hash(), EmaRsiParams().stable_hash()}
    assert len(hashes) == 5
    d = DonchianBreakout(DonchianParams(entry_window=21)).describe()
    assert d == {"name": "donchian", "params": DonchianParams(entry_window=21).model_dump(mode="json"),
                 "params_hash": DonchianParams(entry_window=21).stable_hash()}
    with pytest.raises(ValidationError):
        EmaRsiParams(unknown=1)


# ---------------------------------------------------------------------- textbook Donchian
def test_textbook_donchian_equals_the_reference_rule(btc) -> None:
    """use_bracket=false is ../shared/bench/engine_reference.py's rule, bar for bar:
    enter when close > max(high[t-20..t-1]), exit when close < min(low[t-10..t-1])."""
    from numpy.lib.stride_tricks import sliding_window_view

    f = DonchianBreakout(DonchianParams(use_bracket=False)).prepare(btc)
    h, lo, c = btc.high, btc.low, btc.close
    n = len(btc)
    hh = sliding_window_view(h, 20).max(axis=1)[:-1]          # hh[k] = max(h[k..k+19]), for t = k+20
    ll = sliding_window_view(lo, 10).min(axis=1)[:-1]         # ll[k] = min(lo[k..k+9]), for t = k+10
    t = np.arange(20, n)
    np.testing.assert_array_equal(f.enter[20:], c[t] > hh)
    np.testing.assert_array_equal(f.exit[20:], c[t] < ll[10:])
    assert not f.enter[:20].any()
    assert f.enter.sum() > 500 and f.exit.sum() > 500
    assert np.isnan(f.stop_loss).all() and np.isnan(f.take_profit).all()


def test_params_reject_nan_and_infinity() -> None:
    for value in ("inf", "nan", "-inf", float("inf")):
        with pytest.raises(StrategyConfigError, match="param 'stop_atr'"):
            build_strategy("donchian", {"stop_atr": value})


def test_subclass_name_defaults_to_its_class_name() -> None:
    class MyBreakout(DonchianBreakout):
        pass

    class Named(DonchianBreakout):
        name = "named"

    assert MyBreakout.name == "MyBreakout" and Named.name == "named"
    assert DonchianBreakout.name == "donchian"


def test_describe_params_gives_type_default_range_and_description() -> None:
    from typing import Literal

    from pydantic import Field

    from tradewarden.strategy import StrategyParams, describe_params

    rows = {p.name: p for p in describe_params(DonchianBreakout)}
    assert list(rows) == list(DonchianParams.model_fields)
    e = rows["entry_window"]
    assert (e.type, e.default, e.bounds) == ("int", "20", "2..1000")
    assert e.description.startswith("enter when the close breaks")
    assert (rows["use_bracket"].type, rows["use_bracket"].default) == ("bool", "true")
    assert rows["stop_atr"].bounds == "> 0"

    class Odd(StrategyParams):
        mode: Literal["fast", "slow"] = "fast"
        cap: float | None = Field(None, lt=5)
        need: int

    odd = {p.name: p for p in describe_params(type("S", (DonchianBreakout,), {"Params": Odd}))}
    assert odd["mode"].type == "'fast' | 'slow'" and odd["mode"].default == "fast"
    assert odd["cap"].type == "float | none" and odd["cap"].bounds == "< 5"
    assert odd["need"].default == "required" and odd["need"].description == ""
