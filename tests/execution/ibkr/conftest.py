"""Fixtures for tests against the loopback fake TWS (``fake_tws.FakeTws``) with the real
``ib_async`` client.

No test reaches the internet: the suite-wide guard in ``tests/conftest.py`` refuses every
connection that is not to the loopback interface.

Fixtures
--------
clock
    A settable clock (``clock()`` -> UTC epoch seconds, ``clock.t`` to set it,
    ``clock.advance(s)``) starting at :data:`fake_tws.START` (2026-01-02 15:30 UTC).
make_tws
    ``make_tws(**kwargs)`` -> another started :class:`fake_tws.FakeTws` (``clock`` defaults
    to the ``clock`` fixture); all are stopped after the test, and the test fails if one
    recorded a protocol error (a message it could not parse exactly).
tws
    A started fake with the default account DU1234567 (USD 100000) and quotes: AAPL
    189.99/190.01 last 190.00, MSFT 399.99/400.01 last 400.00, IBM 149.99/150.01 last 150.
connect_ib
    ``connect_ib(fake=None, client_id=1, timeout=3, **kwargs)`` -> a connected sync
    ``ib_async.IB``; all are disconnected after the test.
ib
    ``connect_ib()`` for client id 1 against ``tws``.
wait_until
    ``wait_until(ib, predicate, timeout=3)``: run the client's loop (``ib.sleep``) until
    ``predicate()`` is truthy; returns its value or fails the test. The ConnectionError
    ib_async raises from ``sleep`` when the socket closes is ignored (tests wait for that).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_tws import START, FakeTws


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
def clock() -> Clock:
    """A controllable clock starting at 2026-01-02T15:30:00Z."""
    return Clock()


@pytest.fixture
def make_tws(clock: Clock) -> Iterator[Callable[..., FakeTws]]:
    """``make_tws(**kwargs)`` -> a started fake TWS; all are stopped after the test."""
    started: list[FakeTws] = []

    def make(**kwargs: Any) -> FakeTws:
        kwargs.setdefault("clock", clock)
        fake = FakeTws(**kwargs)
        fake.start()
        started.append(fake)
        return fake

    yield make
    left_connected = False
    for fake in started:                # a client that disconnected is gone within ms
        try:
            fake.wait_for(lambda f: not f.client_ids(), timeout=0.3)
        except TimeoutError:
            left_connected = True
    for fake in started:
        fake.stop()
    if left_connected:
        _settle_disconnects()
    errors = [e for fake in started for e in fake.protocol_errors]
    assert not errors, f"fake TWS protocol errors: {errors}"


def _settle_disconnects() -> None:
    """Let clients this test left connected see their socket close now.

    ib_async turns any ready client's disconnect into a process-wide ``globalErrorEvent``
    that cancels whatever blocking call runs at that moment (``util.run`` raises
    ``ConnectionError: Socket disconnect``); unprocessed, a stopped fake's closed sockets
    would abort the next test's first call instead.
    """
    import asyncio

    from ib_async import util

    loop = util.getLoop()
    if not loop.is_running():
        loop.run_until_complete(asyncio.sleep(0.05))


@pytest.fixture
def tws(make_tws: Callable[..., FakeTws]) -> FakeTws:
    """A started fake TWS with AAPL, MSFT and IBM quoted."""
    fake = make_tws()
    fake.set_quote("AAPL", "189.99", "190.01", "190.00")
    fake.set_quote("MSFT", "399.99", "400.01", "400.00")
    fake.set_quote("IBM", "149.99", "150.01", "150.00")
    return fake


@pytest.fixture
def connect_ib(tws: FakeTws) -> Iterator[Callable[..., Any]]:
    """``connect_ib(fake=None, client_id=1, timeout=3, **kwargs)`` -> a connected sync IB."""
    from ib_async import IB

    made: list[Any] = []

    def connect(fake: FakeTws | None = None, client_id: int = 1, timeout: float = 3,
                **kwargs: Any) -> Any:
        ib = IB()
        made.append(ib)
        ib.connect("127.0.0.1", (fake or tws).port, clientId=client_id, timeout=timeout,
                   **kwargs)
        return ib

    yield connect
    for ib in made:
        ib.disconnect()


@pytest.fixture
def ib(connect_ib: Callable[..., Any]) -> Any:
    """A sync ``ib_async.IB`` connected to ``tws`` as client 1."""
    return connect_ib()


def _wait_until(ib: Any, predicate: Callable[[], Any], timeout: float = 3.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail("condition not met within the timeout")
        try:
            ib.sleep(0.01)
        except ConnectionError:         # ib_async raises the socket's disconnect from sleep
            pass


@pytest.fixture
def wait_until() -> Callable[..., Any]:
    """``wait_until(ib, predicate, timeout=3)`` -> predicate's value once truthy."""
    return _wait_until
