"""Fixtures for the exchange-download tests: a loopback fake venue and real ccxt clients.

No test may reach the internet (the suite-wide guard in ``tests/conftest.py`` refuses
any connection that is not to the loopback interface), and every ccxt instance has its ``urls['api']`` pointed at
the fake server (configuration only; ccxt itself is unmodified) and ignores proxy
environment variables.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_exchange_server import NOW, FakeVenue, source_rows

from tradewarden.data.cache import OhlcvCache
from tradewarden.data.download import create_exchange



@pytest.fixture
def venue_server() -> Callable[..., FakeVenue]:
    """``venue_server("coinbase")`` -> a started :class:`FakeVenue`; stopped after the test."""
    started: list[FakeVenue] = []

    def start(venue: str, now: int = NOW) -> FakeVenue:
        server = FakeVenue(venue, now).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def make_exchange() -> Callable[..., Any]:
    """``make_exchange(server, rate_limit_ms=1)`` -> a real ccxt client aimed at ``server``.

    ``rateLimit`` (ccxt's milliseconds between requests, times the endpoint cost) is
    lowered so the suite is fast; ``enableRateLimit`` stays on.
    """

    def make(server: FakeVenue, rate_limit_ms: float | None = 1) -> Any:
        exchange = create_exchange(server.venue, {"timeout": 5000})
        exchange.session.trust_env = False        # no proxy from the environment
        server.point(exchange)
        if rate_limit_ms is not None:
            exchange.rateLimit = rate_limit_ms
        return exchange

    return make


@pytest.fixture
def cache(tmp_path: Path) -> OhlcvCache:
    return OhlcvCache(tmp_path / "cache")


@pytest.fixture
def btc() -> dict:
    """The bundled BTC-USD 1h candles (arrays ts, open, high, low, close, volume)."""
    return source_rows("BTC-USD")


class SleepRecorder:
    """Stands in for ``time.sleep``: records the requested waits, never sleeps."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(float(seconds))


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()
