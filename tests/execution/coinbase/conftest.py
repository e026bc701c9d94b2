"""Fixtures for tests against the loopback fake of Coinbase Advanced Trade.

No test may reach the internet: the suite-wide guard in ``tests/conftest.py`` refuses
every connection that is not to the loopback interface and removes proxy variables, so
``requests`` connects to the fake directly.

Fixtures
--------
cdp_key
    A fresh CDP-style key (:class:`fake_coinbase.CdpKey`).
clock
    A controllable clock (``clock()`` -> UTC epoch seconds; ``clock.t`` to set it) that the
    fake uses for order and fill times.
coinbase
    A started :class:`fake_coinbase.FakeCoinbase` trusting ``cdp_key`` (USD 10000, BTC 0,
    BTC-USD at 50000 and ETH-USD at 3000, on ``clock``), stopped after the test, with
    ``REQUESTS_CA_BUNDLE`` set to its test CA.
make_coinbase
    ``make_coinbase(**kwargs)`` -> another started fake with those constructor arguments
    (``keys`` defaults to ``cdp_key``); ``REQUESTS_CA_BUNDLE`` points at the last one made.
rest_client
    ``rest_client(fake=None, key=None, **kwargs)`` -> the real SDK's ``RESTClient`` aimed
    at a fake (default ``coinbase``) with a key (default ``cdp_key``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_coinbase import CdpKey, FakeCoinbase, make_cdp_key

START = 1_767_225_600          # 2026-01-01T00:00:00Z, the clock fixture's start



class Clock:
    """A settable clock: ``clock()`` returns :attr:`t` (UTC epoch seconds)."""

    def __init__(self, t: float = START) -> None:
        self.t = float(t)

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> float:
        """Move the clock forward and return the new time."""
        self.t += seconds
        return self.t


@pytest.fixture
def cdp_key() -> CdpKey:
    """A fresh CDP-style EC key."""
    return make_cdp_key()


@pytest.fixture
def clock() -> Clock:
    """A controllable clock starting at 2026-01-01T00:00:00Z."""
    return Clock()


@pytest.fixture
def make_coinbase(cdp_key: CdpKey, clock: Clock, monkeypatch: pytest.MonkeyPatch
                  ) -> Iterator[Callable[..., FakeCoinbase]]:
    """``make_coinbase(**kwargs)`` -> a started fake; all are stopped after the test."""
    started: list[FakeCoinbase] = []

    def make(**kwargs: Any) -> FakeCoinbase:
        kwargs.setdefault("keys", {cdp_key.name: cdp_key.public_pem})
        kwargs.setdefault("balances", {"USD": Decimal(10000), "BTC": Decimal(0)})
        kwargs.setdefault("products", ["BTC-USD", "ETH-USD"])
        kwargs.setdefault("now", clock)
        fake = FakeCoinbase(**kwargs).start()
        started.append(fake)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", fake.ca_bundle)
        return fake

    yield make
    for fake in started:
        fake.stop()
    errors = [e for fake in started for e in fake.errors]
    assert not errors, f"fake_coinbase raised while answering: {errors}"


@pytest.fixture
def coinbase(make_coinbase: Callable[..., FakeCoinbase], clock: Clock) -> FakeCoinbase:
    """A started fake: USD 10000, BTC 0; BTC-USD at 50000, ETH-USD at 3000."""
    fake = make_coinbase()
    fake.set_price("BTC-USD", Decimal(50000), clock())
    fake.set_price("ETH-USD", Decimal(3000), clock())
    return fake


@pytest.fixture
def rest_client(coinbase: FakeCoinbase, cdp_key: CdpKey) -> Callable[..., Any]:
    """``rest_client(fake=None, key=None, **kwargs)`` -> the real SDK's RESTClient."""
    from coinbase.rest import RESTClient

    def make(fake: FakeCoinbase | None = None, key: CdpKey | None = None,
             **kwargs: Any) -> Any:
        fake = fake or coinbase
        key = key or cdp_key
        kwargs.setdefault("timeout", 5)
        return RESTClient(api_key=key.name, api_secret=key.private_pem, base_url=fake.host,
                          **kwargs)

    return make
