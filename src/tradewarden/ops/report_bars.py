"""The OHLCV bars of a recorded run, read again for the HTML report's candles.

The ledger keeps each bar's close (``decisions.close``), not its open, high, low and
volume. :func:`run_bars` reads the bars again from the source ``runs.config`` names
(the bundled samples, ``--data PATH`` or the exchange cache, never the network), with
the run's symbols, timeframe, range and price adjustment. The report checks them
against the ledger's closes before drawing candles
(:func:`tradewarden.analytics.pagedata.candles_for`).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from tradewarden.domain.values import BarSeries
from tradewarden.ledger.schema import runs

__all__ = ["run_bars"]


def run_bars(bind: Any, run_id: str) -> dict[str, BarSeries] | str:
    """Read a replay run's bars again from the data source its config names.

    Parameters
    ----------
    bind : sqlalchemy.engine.Engine | sqlalchemy.engine.Connection
        The ledger.
    run_id : str

    Returns
    -------
    dict of str to BarSeries, or str
        Symbol -> bars (the source's whole range; the report cuts them to the run's),
        or one line saying why they cannot be read: a paper or live run (its candles
        came from the venue and are not stored), a configuration this version cannot
        read, a file that is gone or no longer loads, an exchange range not cached.
        Nothing is downloaded: an exchange run reads the cache offline.
    """
    from tradewarden.data.errors import DataError
    from tradewarden.ops.replay import config_from_json

    with bind.connect() as conn:
        text = conn.execute(select(runs.c.config).where(runs.c.run_id == run_id)).scalar()
    if text is None:
        return f"run {run_id!r} has no recorded configuration"
    try:
        mode = json.loads(text).get("mode", "replay")
    except (TypeError, ValueError, AttributeError):
        return "the run's recorded configuration is not valid JSON"
    if mode != "replay":
        return (f"a {mode} run's candles came from the venue and are not stored in the "
                "ledger")
    try:
        config = config_from_json(text)
    except ValueError as exc:
        first = str(exc).splitlines()[0]
        return f"the run's recorded configuration cannot be read by this version ({first})"
    symbols = list(config.symbols)
    try:
        if config.exchange:
            from tradewarden.data.exchange_source import load_exchange_data
            loaded = load_exchange_data(config.exchange, symbols, config.timeframe or "",
                                        config.start or "", config.end or "",
                                        cache_dir=config.cache_dir, offline=True).loaded
        else:
            from tradewarden.data import load_market_data
            loaded = load_market_data(symbols, config.data, timeframe=config.timeframe,
                                      start=config.start, end=config.end,
                                      skip_bad_rows=config.skip_bad_rows, adjust=config.adjust)
    except (DataError, OSError, ValueError) as exc:
        return f"the run's bars could not be read again: {str(exc).splitlines()[0]}"
    return {s: loaded.series[s] for s in symbols if s in loaded.series}
