"""A market that stops looking like the training set: the bundled panel, drifted.

Shared by the drift tests and the daemon's ML job tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def label(day: str) -> int:
    """The session date label of ``day`` (00:00 UTC, epoch seconds)."""
    return int(pd.Timestamp(day).timestamp())


def drifted(panel: pd.DataFrame, start: str) -> pd.DataFrame:
    """Return the panel with prices climbing 3 % a session with a 6 % zig-zag and volume
    6x every third session from ``start`` on (rows before it unchanged), prices rounded
    to 4 decimals as a file holds them."""
    out = []
    for _, g in panel.groupby("symbol"):
        g = g.sort_values("ts").copy()
        k = np.cumsum(g["ts"].to_numpy() >= label(start))
        factor = np.exp(0.03 * k) * np.where((k % 2 == 1) & (k > 0), 1.06, 1.0)
        for col in ("open", "high", "low", "close"):
            g[col] = g[col] * factor
        g["volume"] = g["volume"] * np.where((k > 0) & (k % 3 == 0), 6.0, 1.0)
        prices = g[["open", "high", "low", "close"]].round(4)
        g[["open", "high", "low", "close"]] = prices
        g["high"], g["low"] = prices.max(axis=1), prices.min(axis=1)
        out.append(g)
    return pd.concat(out).sort_values(["ts", "symbol"]).reset_index(drop=True)


def write_panel(panel: pd.DataFrame, path: Path) -> Path:
    """Write a panel as a daily file ``date,symbol,open,high,low,close,volume``."""
    frame = panel.assign(date=pd.to_datetime(panel["ts"], unit="s").dt.strftime("%Y-%m-%d"))
    frame[["date", "symbol", "open", "high", "low", "close", "volume"]].to_csv(path,
                                                                               index=False)
    return path
