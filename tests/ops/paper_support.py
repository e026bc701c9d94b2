"""What the deployment tests share besides fixtures: simulated time and a ledger query."""

from __future__ import annotations

import sqlite3

SYM = "BTC-USD"
START = "2026-05-01T10:30:00"


def q(db, sql, *args):
    """Rows of ``sql`` on the SQLite ledger ``db``."""
    with sqlite3.connect(db) as c:
        return c.execute(sql, args).fetchall()


class SimTime:
    """Simulated UTC epoch seconds: ``sleep`` moves it; an optional hook sees every sleep."""

    def __init__(self, start: float) -> None:
        self.t = float(start)
        self.on_sleep = None

    def time(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds
        if self.on_sleep is not None:
            self.on_sleep(self.t)
