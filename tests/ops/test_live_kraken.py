"""``warden live`` end to end on Kraken through ccxt: the real ccxt client signs every
private request (API-Key, API-Sign, nonce) to a loopback TLS fake of Kraken's REST API
that also serves its public candles; simulated time moves the fake's price through the
real bundled BTC-USD candles as they close.

Checked: one decision per closed candle; each order sent once (by Kraken client order id);
the ledger's fills and BTC equal the venue's; secrets never printed or stored; `warden kill
--flatten --config` on the stopped deployment starts it just long enough to reconcile and
close at the venue, which is left flat with no open order.
"""

from __future__ import annotations

import base64
import sqlite3
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

HERE = Path(__file__).parents[1]
sys.path.insert(0, str(HERE / "data" / "exchange"))
sys.path.insert(0, str(HERE / "execution" / "kraken"))
from fake_exchange_server import HOUR, source_rows, ts_of  # noqa: E402
from fake_kraken import FakeKraken  # noqa: E402

from tradewarden import cli_paper  # noqa: E402
from tradewarden.cli import app  # noqa: E402
from tradewarden.data import download  # noqa: E402
from tradewarden.domain import iso  # noqa: E402
from tradewarden.engine.clock import WallClock  # noqa: E402

SYM = "BTC-USD"
START = "2026-05-01T10:30:00"
KEY = "tw-live-key"
SECRET = base64.b64encode(b"a kraken secret for the live end-to-end test, 64 bytes ..........").decode()


def q(db, sql, *args):
    with sqlite3.connect(db) as c:
        return c.execute(sql, args).fetchall()


class SimTime:
    """Simulated UTC epoch seconds; crossing an hour walks the fake's price through the
    candle that just closed."""

    def __init__(self, start: float, on_hour) -> None:
        self.t = float(start)
        self.on_hour = on_hour

    def time(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        before = self.t
        self.t += seconds
        for h in range(int(before) // HOUR + 1, int(self.t) // HOUR + 1):
            self.on_hour(h * HOUR)


@pytest.fixture
def live(monkeypatch, tmp_path):
    src = source_rows(SYM)
    rows = {int(t): (o, h, lo, c) for t, o, h, lo, c in
            zip(src["ts"], src["open"], src["high"], src["low"], src["close"])}
    fake: FakeKraken | None = None

    def on_hour(closed_at: int) -> None:
        bar = rows.get(closed_at - HOUR)
        if bar is not None and fake is not None:
            fake.step(SYM, *(repr(float(v)) for v in bar))

    sim = SimTime(ts_of(START), on_hour)
    fake = FakeKraken(KEY, SECRET, balances={"USD": Decimal(20000)}, pairs=[SYM], now=sim.time).start()
    fake.set_price(SYM, repr(float(rows[ts_of("2026-05-01T09:00:00")][3])))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", fake.ca_bundle)
    monkeypatch.setenv("TRADEWARDEN_VENUE__API_KEY", KEY)
    monkeypatch.setenv("TRADEWARDEN_VENUE__API_SECRET", SECRET)
    monkeypatch.setattr(cli_paper, "clock_factory",
                        lambda stopped: WallClock(sim.time, sim.sleep, stop=stopped))
    real_client = download.create_venue_client

    def fast_client(name, *, api_url=None, config=None):   # ccxt's limiter sleeps in real time
        return real_client(name, api_url=api_url, config={**(config or {}), "rateLimit": 1,
                                                          "timeout": 5000})

    monkeypatch.setattr(download, "create_venue_client", fast_client)
    monkeypatch.setattr(cli_paper, "client_factory", lambda name, url: fast_client(name, api_url=url))
    cfg = tmp_path / "live.toml"
    cfg.write_text(f"""
mode = "live"
symbols = ["{SYM}"]
strategy = "donchian"
timeframe = "1h"
capital = "5000"
[params]
entry_window = 6
exit_window = 3
[ledger]
db = "{tmp_path / 'ledger.db'}"
[venue]
name = "kraken"
api_url = "{fake.base_url}"
""")
    yield sim, fake, cfg, tmp_path / "ledger.db"
    fake.stop()


def warden_live(cfg, *args):
    return CliRunner().invoke(app, ["live", "--config", str(cfg), "--live", "--yes",
                                    "--deployment", "kr", "--inbox-seconds", "60", *args])


def test_live_on_kraken_sends_each_order_once_and_the_ledger_equals_the_venue(live):
    sim, fake, cfg, db = live
    until = ts_of("2026-05-02T22:00:30")
    r = warden_live(cfg, "--until", iso(until))
    assert r.exit_code == 0, r.output
    assert "venue     kraken, account " in r.output
    assert SECRET not in r.output and KEY not in r.output          # never printed ...
    raw = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))   # the WAL too
    assert SECRET.encode() not in raw and KEY.encode() not in raw  # ... nor stored
    assert "live: donchian on BTC-USD 1h candles from kraken, fills at the venue" in r.output
    got = [t for (t,) in q(db, "select ts from decisions order by seq")]
    assert got == [int(t) for t in source_rows(SYM)["ts"] if ts_of(START) < t + HOUR <= until]
    sent = [cid for (cid,) in q(db, "select client_order_id from orders where status != 'submitted' "
                                    "and role in ('entry', 'stop_loss', 'exit')")]
    assert sent, "the window should hold at least one breakout"
    counts = {}
    for body in fake.submits:
        counts[body.get("cl_ord_id")] = counts.get(body.get("cl_ord_id"), 0) + 1
    assert all(n == 1 for n in counts.values()), counts
    held = sum((Decimal(s) if side == "buy" else -Decimal(s))
               for side, s in q(db, "select side, quantity from fills"))
    assert fake.balance("BTC") == held
    venue_fills = sorted((Decimal(str(t["price"])), Decimal(str(t["vol"]))) for t in fake.trades.values())
    ledger_fills = sorted((Decimal(p), Decimal(v)) for p, v in q(db, "select price, quantity from fills"))
    assert ledger_fills == venue_fills and len(ledger_fills) >= 2
    assert held > 0                      # a position is open at the end of the first run
    assert q(db, "select count(*) from reconciliations where status = 'open'") == [(0,)]

    # stopped, with a position: kill --flatten --config starts it just long enough to act
    r = CliRunner().invoke(app, ["kill", "--deployment", "kr", "--config", str(cfg), "--flatten",
                                 "--yes", "--by", "hal"])
    assert r.exit_code == 0, r.output
    assert "command 2 flatten: done: 1 position(s) closed (BTC-USD); the venue agrees" in r.output
    assert q(db, "select count(*) from decisions where ts > ?", until) == [(0,)]   # no new bar
    (dep_status,) = q(db, "select status from deployments")
    assert dep_status == ("stopped",)
    results = q(db, "select kind, status, result from commands order by id")
    assert [(k, s) for k, s, _ in results] == [("kill", "done"), ("flatten", "done")]
    assert results[1][2] == "1 position(s) closed (BTC-USD); the venue agrees", results[1][2]
    assert fake.balance("BTC") == 0 and not [o for o in fake.orders.values() if o.is_open]
    assert q(db, "select count(*) from reconciliations where status = 'open'") == [(0,)]
