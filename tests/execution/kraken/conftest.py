"""Fixtures for tests against the loopback fake of Kraken's REST API.

No test may reach the internet: the suite-wide guard in ``tests/conftest.py`` refuses
every connection that is not to the loopback interface and removes proxy variables, so
``requests`` connects to the fake directly.

Fixtures
--------
sim
    Simulated time (:class:`SimTime`): the fake's ``now`` and, through
    ``WallClock(sim.time, sim.sleep)``, the adapter's clock; a sleep moves it at once.
make_kraken
    ``make_kraken(**kwargs)`` -> a started :class:`fake_kraken.FakeKraken` on ``sim`` with
    the test key (USD 10000 unless ``balances`` is given), BTC-USD at 60000 and ETH-USD at
    3000; ``REQUESTS_CA_BUNDLE`` points at its test CA. Stopped after the test.
kraken
    ``make_kraken()``.
client
    ``client(fake=None, **config)`` -> the real ccxt client made by
    :func:`tradewarden.data.download.create_venue_client` with the fake's URL and the key.
"""

from __future__ import annotations

import base64
import sys
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_kraken import FakeKraken

from tradewarden.data.download import create_venue_client

KEY = "tw-test-key"
SECRET = base64.b64encode(b"tradewarden kraken test secret, 64 bytes of it ..................").decode()
START = 1_777_593_600                 # 2026-05-01T00:00:00Z



class SimTime:
    """Simulated UTC epoch seconds: ``sleep`` moves it (nothing real sleeps)."""

    def __init__(self, start: float = START) -> None:
        self.t = float(start)
        self.slept: list[float] = []

    def time(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


@pytest.fixture
def sim() -> SimTime:
    return SimTime()


@pytest.fixture
def make_kraken(sim: SimTime, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., FakeKraken]]:
    started: list[FakeKraken] = []

    def make(**kwargs: Any) -> FakeKraken:
        kwargs.setdefault("balances", {"USD": Decimal(10000)})
        kwargs.setdefault("now", sim.time)
        fake = FakeKraken(KEY, SECRET, **kwargs).start()
        started.append(fake)
        fake.set_price("BTC-USD", "60000")
        fake.set_price("ETH-USD", "3000")
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", fake.ca_bundle)
        return fake

    yield make
    for fake in started:
        fake.stop()


@pytest.fixture
def kraken(make_kraken: Callable[..., FakeKraken]) -> FakeKraken:
    return make_kraken()


@pytest.fixture
def client(kraken: FakeKraken) -> Callable[..., Any]:
    def make(fake: FakeKraken | None = None, **config: Any) -> Any:
        fake = fake or kraken
        config = {"apiKey": KEY, "secret": SECRET, "rateLimit": 1, "timeout": 5000, **config}
        return create_venue_client("kraken", api_url=fake.base_url, config=config)

    return make
