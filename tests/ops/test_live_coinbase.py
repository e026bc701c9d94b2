"""``warden live`` end to end on Coinbase: the official SDK places real-shaped orders at a
loopback TLS fake of Advanced Trade (JWT checked on every request) while the candles come
from the loopback fake of Coinbase's public market data; both fakes and the deployment's
clock share simulated time, and the fake's price follows the real bundled BTC-USD candles
as they close.

Checked: the gates and the exposure shown; one decision per closed candle; every entry
sent once with its bracket attached at the venue; the ledger's orders, fills and position
equal the venue's; a restart reconciles cleanly; `warden kill --flatten` closes at the
venue and the venue agrees.
"""

from __future__ import annotations

import sqlite3
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

HERE = Path(__file__).parents[1]
sys.path.insert(0, str(HERE / "data" / "exchange"))
sys.path.insert(0, str(HERE / "execution" / "coinbase"))
from fake_coinbase import FakeCoinbase, make_cdp_key  # noqa: E402
from fake_exchange_server import HOUR, FakeVenue, source_rows, ts_of  # noqa: E402

from tradewarden import cli_paper  # noqa: E402
from tradewarden.cli import app  # noqa: E402
from tradewarden.data.download import create_venue_client  # noqa: E402
from tradewarden.domain import iso  # noqa: E402
from tradewarden.engine.clock import WallClock  # noqa: E402

SYM = "BTC-USD"
START = "2026-05-01T10:30:00"


def q(db, sql, *args):
    with sqlite3.connect(db) as c:
        return c.execute(sql, args).fetchall()


class SimTime:
    """Simulated UTC epoch seconds; crossing an hour walks the fake's price through the
    candle that just closed (open, towards the stops, the other extreme, close)."""

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
    key = make_cdp_key()
    fake: FakeCoinbase | None = None

    def on_hour(closed_at: int) -> None:            # the candle [closed_at - 1h, closed_at) is done
        bar = rows.get(closed_at - HOUR)
        if bar is not None and fake is not None:
            fake.step(SYM, *(Decimal(repr(float(v))) for v in bar), ts=closed_at - 1)

    sim = SimTime(ts_of(START), on_hour)
    fake = FakeCoinbase({key.name: key}, balances={"USD": Decimal(20000)}, products=[SYM],
                        now=sim.time).start()
    fake.set_price(SYM, Decimal(repr(float(rows[ts_of("2026-05-01T09:00:00")][3]))))
    market = FakeVenue("coinbase", sim.time, tls=True).start()
    bundle = tmp_path / "cas.pem"
    bundle.write_text(Path(fake.ca_bundle).read_text() + Path(market.ca_bundle).read_text())
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    monkeypatch.setattr(cli_paper, "clock_factory",
                        lambda stopped: WallClock(sim.time, sim.sleep, stop=stopped))
    monkeypatch.setattr(cli_paper, "client_factory", lambda name, url: create_venue_client(
        name, api_url=url, config={"rateLimit": 1, "timeout": 5000}))
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
name = "coinbase"
api_url = "https://{fake.host}"
data_url = "{market.base_url}"
key_file = "{key.file_path(tmp_path)}"
""")
    yield sim, fake, cfg, tmp_path / "ledger.db"
    fake.stop()
    market.stop()


def warden_live(cfg, *args):
    return CliRunner().invoke(app, ["live", "--config", str(cfg), "--live", "--yes",
                                    "--deployment", "cb", "--inbox-seconds", "60", *args])


def closed_candles(lo: int, hi: int) -> list[int]:
    return [int(t) for t in source_rows(SYM)["ts"] if lo < t + HOUR <= hi]


def test_live_on_coinbase_trades_brackets_at_the_venue_and_the_ledger_equals_it(live):
    sim, fake, cfg, db = live
    until = ts_of("2026-05-02T22:00:30")
    r = warden_live(cfg, "--until", iso(until))
    assert r.exit_code == 0, r.output
    assert "venue     coinbase, account " in r.output and "balances  USD 20000" in r.output
    assert "at most   1.00% of equity per trade at the stop-loss (about 50.00 of 5000.00)" in r.output
    assert "live: donchian on BTC-USD 1h candles from coinbase, fills at the venue" in r.output
    got = [t for (t,) in q(db, "select ts from decisions where reason != 'manual' order by seq")]
    assert got == closed_candles(ts_of(START), until)
    entries = q(db, "select client_order_id from orders where role = 'entry'")
    assert entries, "the window should hold at least one breakout"
    for (cid,) in entries:                   # each sent once, with its bracket attached
        bodies = [b for b in fake.submits if b.get("client_order_id") == cid]
        assert len(bodies) == 1
        assert "trigger_bracket_gtc" in bodies[0]["attached_order_configuration"]
    venue_fills = sorted((Decimal(f["price"]), Decimal(f["size"]), Decimal(f["commission"]))
                         for f in fake.fills)
    ledger_fills = sorted((Decimal(p), Decimal(s), Decimal(fee))
                          for p, s, fee in q(db, "select price, quantity, fee from fills"))
    assert ledger_fills == venue_fills
    held = sum((Decimal(s) if side == "buy" else -Decimal(s))
               for side, s in q(db, "select side, quantity from fills"))
    assert fake.balance("BTC")[0] == held
    assert q(db, "select count(*) from reconciliations") == [(0,)]

    # stopped; a person flattens it; the next start acts on that, then agrees with the venue
    r = CliRunner().invoke(app, ["kill", "--deployment", "cb", "--db", str(db), "--flatten",
                                 "--yes", "--by", "gus"])
    assert r.exit_code == 0, r.output
    r = warden_live(cfg, "--until", iso(until + 2 * HOUR))
    assert r.exit_code == 0, r.output
    results = q(db, "select kind, status, result from commands order by id")
    assert [(k, s) for k, s, _ in results] == [("kill", "done"), ("flatten", "done")]
    assert results[1][2] == "1 position(s) closed (BTC-USD); the venue agrees"
    (manual,) = q(db, "select action, detail from decisions where reason = 'manual'")
    assert manual[0] == "exit" and '"by":"gus"' in manual[1]
    assert fake.balance("BTC")[0] == 0
    assert not fake.open_orders(SYM)
    assert q(db, "select count(*) from reconciliations where status = 'open'") == [(0,)]
