"""Replay inputs: the strategy resolved, the bars loaded and checked, the chunked feed.

Everything here can fail on bad input before a run exists. The kernel
(:mod:`tradewarden.ops.kernel`) assembles replay mode from these, a ``ReplayClock`` and
a ``SimBroker``, and records the run.
"""

from __future__ import annotations

import gc
import json
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from tradewarden.domain import BarSeries
from tradewarden.engine.config import RunConfig
from tradewarden.strategy import Strategy

#: Bar length of a replay of the bundled samples or an exchange's cache when none is given.
DEFAULT_TIMEFRAME = "1h"
#: Bar length of a replay of the bundled daily US equities alone when none is given.
EQUITY_TIMEFRAME = "1d"
#: Taker and maker fee of a replay of US equities when no fee is set, basis points of
#: notional: 1 bps. Interactive Brokers' Pro Fixed plan charges USD 0.005 per share with
#: a USD 1.00 minimum per order (exchange and regulatory fees included), i.e. 1 bps on a
#: USD 10,000 order of a USD 50 stock (the minimum) and 0.5 bps on one of a USD 100
#: stock; the SEC's Section 31 fee on sales adds about 0.28 bps. Commission-free brokers
#: charge 0. The crypto default (10 / 5 bps) is unchanged; ``--fee-bps`` sets your own.
EQUITY_FEE_BPS = 1.0


def chunked(series: dict[str, BarSeries], chunk_bars: int) -> Iterator[dict[str, BarSeries]]:
    """Split aligned series into time windows of about ``chunk_bars`` timestamps.

    Every window is ``[t_k, t_{k+1})`` over the union of timestamps, so symbols stay
    in step and each chunk's bars are all later than the previous chunk's.
    """
    all_ts = _sorted_unique(np.concatenate([s.ts for s in series.values()]))
    bounds = all_ts[::chunk_bars].tolist() + [int(all_ts[-1]) + 1]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        out = {}
        for name, s in series.items():
            a, b = np.searchsorted(s.ts, [lo, hi])
            out[name] = s.slice(int(a), int(b))
        yield out


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """Sorted unique values by sort and compare (NumPy 2.4's ``np.unique`` hashes int64
    and takes about 1 s on a million timestamps; this takes about 15 ms)."""
    s = np.sort(values, kind="stable")
    if s.shape[0] < 2:
        return s
    return s[np.concatenate(([True], s[1:] != s[:-1]))]


def git_sha() -> str | None:
    """The source tree's commit, when it is a git checkout (else ``None``)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def resolve_config(config: RunConfig) -> tuple[RunConfig, Strategy]:
    """Build the strategy (validating its params) and return the config with the
    parameters as validated and ``strategy_source`` filled in, so the config hash
    covers the defaults and the strategy's code too.

    ``strategy_source`` is ``builtin:tradewarden==<version>``,
    ``file:<abs path>#sha256=<digest of the file>``, ``module:<module>#<dist>==<version>``
    (plus ``#sha256=`` of the class's file) or ``entrypoint:<name>#<dist>==<version>``
    (see :mod:`tradewarden.strategy.loader`); a value given in ``config`` is replaced.

    Raises
    ------
    tradewarden.strategy.StrategyConfigError
        Unknown or unloadable strategy (``StrategyLoadError``), or a bad parameter.
    """
    from tradewarden.strategy import resolve_strategy

    strategy, source = resolve_strategy(config.strategy, config.params)
    cfg = config.model_copy(update={"params": strategy.params.model_dump(mode="json"),
                                    "strategy_source": source})
    return cfg, strategy


@dataclass(slots=True)
class ReplayInputs:
    """A validated config, its strategy, and the loaded, validated bars."""

    config: RunConfig
    strategy: Strategy
    loaded: Any

    @property
    def total_bars(self) -> int:
        """Bars over all symbols."""
        return sum(len(self.loaded.series[s]) for s in self.config.symbols)


def load_inputs(config: RunConfig, progress: Callable[[int, int], None] | None = None, *,
                strategy: Strategy | None = None) -> ReplayInputs:
    """Validate the strategy and load the data: everything that can fail on bad input.

    ``progress(done, expected)`` reports downloads when ``config.exchange`` is set.
    ``strategy``: when the caller already ran :func:`resolve_config`, pass the config
    and the strategy it returned; they are used as they are.

    Raises
    ------
    tradewarden.strategy.StrategyConfigError
    tradewarden.data.DataError
    ValueError
        Bad ``start``/``end``/``timeframe`` values (the message names the flag value).
    """
    from tradewarden.data import load_market_data
    from tradewarden.data.equities import BUNDLED_EQUITY_TICKERS

    if strategy is None:
        config, strategy = resolve_config(config)
    if config.timeframe is None and not config.data:
        equities = not config.exchange and all(s in BUNDLED_EQUITY_TICKERS for s in config.symbols)
        config = config.model_copy(update={"timeframe": EQUITY_TIMEFRAME if equities
                                           else DEFAULT_TIMEFRAME})
    if config.exchange:
        if config.data:
            raise ValueError("--data and --exchange are exclusive: bars come from one source")
        from tradewarden.data.exchange_source import load_exchange_data
        got = load_exchange_data(config.exchange, list(config.symbols), config.timeframe,
                                 config.start or "", config.end or "", cache_dir=config.cache_dir,
                                 offline=config.offline, progress=progress)
        loaded = got.loaded
        if config.venue_fees and got.fees and len(got.fees) == len(config.symbols):
            maker = max(float(f[0]) for f in got.fees.values())
            taker = max(float(f[1]) for f in got.fees.values())
            basis = sorted({f[2] for f in got.fees.values()})
            config = config.model_copy(update={"fee_bps": taker, "maker_fee_bps": maker})
            loaded.warnings.append(f"fees from {config.exchange} market metadata ({'/'.join(basis)} "
                                   f"tier): taker {taker:g} bps, maker {maker:g} bps")
        preflight(strategy, loaded.series[config.symbols[0]])
        return ReplayInputs(config, strategy, loaded)
    loaded = load_market_data(list(config.symbols), Path(config.data) if config.data else None,
                              timeframe=config.timeframe, start=config.start, end=config.end,
                              skip_bad_rows=config.skip_bad_rows, adjust=config.adjust)
    if config.timeframe is None:        # the data's own bar length, now known
        config = config.model_copy(update={"timeframe": loaded.timeframe})
    if config.adjust is None and loaded.adjust is not None:     # the run records the choice
        config = config.model_copy(update={"adjust": loaded.adjust})
    config = _equity_fees(config, loaded)
    preflight(strategy, loaded.series[config.symbols[0]])
    return ReplayInputs(config, strategy, loaded)


def _equity_fees(config: RunConfig, loaded: Any) -> RunConfig:
    """Use :data:`EQUITY_FEE_BPS` when every symbol is a US equity and no fee was set
    (``venue_fees``); the fee is recorded in the run's config and said in a warning."""
    from tradewarden.data.equities import EQUITY_SPEC_SOURCE

    equities = all(loaded.instruments[s].source == EQUITY_SPEC_SOURCE for s in config.symbols)
    if not (equities and config.venue_fees):
        return config
    loaded.warnings.append(f"fees: the US equity default, {EQUITY_FEE_BPS:g} bps taker and "
                           f"maker (about IBKR Pro Fixed's USD 0.005 per share); set --fee-bps "
                           "and --maker-fee-bps to what your broker charges")
    return config.model_copy(update={"fee_bps": EQUITY_FEE_BPS, "maker_fee_bps": EQUITY_FEE_BPS})


#: Bars after the warm-up that :func:`preflight` computes the strategy's frame over.
PREFLIGHT_BARS = 500


def preflight(strategy: Strategy, bars: BarSeries) -> None:
    """Compute the strategy's frame over the first bars of one series, before a run exists.

    A strategy whose code fails on real bars (an exception in ``populate()``, a missing
    column, a frame of the wrong length) is then reported as bad input, with no run row
    left behind, instead of as a failed run. Costs one ``prepare`` over
    ``warmup + PREFLIGHT_BARS`` bars.

    Raises
    ------
    tradewarden.strategy.StrategyConfigError
        What the strategy's ``prepare`` raised, or a frame whose length differs from
        the bars'.
    """
    from tradewarden.strategy import StrategyConfigError
    n = min(len(bars), strategy.warmup + PREFLIGHT_BARS)
    try:
        frame = strategy.prepare(bars.slice(0, n))
    except StrategyConfigError:
        raise
    except Exception as exc:
        raise StrategyConfigError(f"strategy {strategy.name!r} failed on the first {n} bars of "
                                  f"{bars.symbol}: {type(exc).__name__}: {exc}") from exc
    if len(frame) != n:
        raise StrategyConfigError(f"strategy {strategy.name!r}: prepare() returned {len(frame)} rows "
                                  f"for {n} bars of {bars.symbol}")


@contextmanager
def batch_gc(gen0_threshold: int = 20_000) -> Iterator[None]:
    """Tune Python's cyclic garbage collector for a long replay; restore it afterwards.

    Objects alive when the replay starts (modules, loaded bars, instrument specs) are
    moved to the permanent generation (``gc.freeze``), so collections no longer rescan
    them, and generation 0 is collected every ``gen0_threshold`` container
    allocations instead of every 700. Orders, fills and trades are freed by reference
    counting (a replay leaves about 50 objects in reference cycles, however long it
    is; ``tests/engine/test_replay.py`` checks), so memory stays flat; the 1M-bar
    ``warden bench`` runs about 5 % faster.
    """
    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(gen0_threshold, *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()


def config_from_json(text: str) -> RunConfig:
    """Rebuild a :class:`RunConfig` from ``runs.config``."""
    data: dict[str, Any] = json.loads(text)
    return RunConfig.model_validate(data)
