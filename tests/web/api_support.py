"""Helpers for the API tests: the oversight tests' paper deployment ``desk`` (a real ledger
built through the kernel from the bundled BTC-USD / ETH-USD bars: a closed BTC round
trip, an open BTC position with a stop, an ETH entry queued for approval with its agent
decision) and FastAPI test clients over it.

``TOKEN`` is the bearer token of the token-protected clients; ``RateClock`` is the
injectable clock of the write rate limit.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parents[1] / "ops"))
from oversight_support import Desk

from tradewarden.ops.api_settings import ApiSettings
from tradewarden.web.app import create_app

TOKEN = "s3cret-T0ken-for-tests-9f2c"


class RateClock:
    """Seconds for the rate limit, moved by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make_client(desk: Desk, *, token: str | None = TOKEN, limit: int = 1000,
                rate_clock: RateClock | None = None, cors: tuple[str, ...] = (),
                headers: bool = True) -> TestClient:
    """A test client over the desk's ledger; with ``headers`` it sends the token."""
    api = ApiSettings(token=token, token_name="ops-laptop", write_limit_per_minute=limit,
                      cors_origins=cors)
    app = create_app(str(desk.db), api, clock=desk.clock.now, rate_clock=rate_clock,
                     stop_approach_fraction=0.05)
    client = TestClient(app)
    if headers and token is not None:
        client.headers["Authorization"] = f"Bearer {token}"
    return client
