"""Fixtures for the deployment tests: a loopback TLS fake of Coinbase's public market data
on simulated time shared with the deployment's clock, and a paper config pointing at it.

``paper_venue`` yields ``(sim, server, config path, ledger path)``; ``sim.on_sleep`` may be
set to a hook that sees every simulated sleep (a test sends itself SIGTERM from there).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "data" / "exchange"))
from fake_exchange_server import FakeVenue, ts_of  # noqa: E402

from tradewarden import cli_paper  # noqa: E402
from tradewarden.data.download import create_venue_client  # noqa: E402
from tradewarden.engine.clock import WallClock  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from paper_support import START, SYM, SimTime  # noqa: E402


@pytest.fixture
def paper_venue(monkeypatch, tmp_path):
    """A started TLS fake Coinbase on simulated time, the CLI's clock on the same time,
    and a config file pointing paper trading at it."""
    sim = SimTime(ts_of(START))
    server = FakeVenue("coinbase", sim.time, tls=True).start()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", server.ca_bundle)
    monkeypatch.setattr(cli_paper, "clock_factory",
                        lambda stopped: WallClock(sim.time, sim.sleep, stop=stopped))
    # ccxt's rate limiter sleeps in real time between requests: 1 ms on loopback
    monkeypatch.setattr(cli_paper, "client_factory", lambda name, url: create_venue_client(
        name, api_url=url, config={"rateLimit": 1, "timeout": 5000}))
    cfg = tmp_path / "paper.toml"
    cfg.write_text(f"""
symbols = ["{SYM}"]
strategy = "donchian"
timeframe = "1h"
governor = "autonomous"
[params]
entry_window = 6
exit_window = 3
[ledger]
db = "{tmp_path / 'ledger.db'}"
[venue]
name = "coinbase"
api_url = "{server.base_url}"
""")
    yield sim, server, cfg, tmp_path / "ledger.db"
    server.stop()
