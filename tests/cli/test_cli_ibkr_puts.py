"""`warden ibkr write-puts`: the put writer once per session at IBKR, against the fake
TWS with the real ib_async client; the second run resumes the first run's book."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parents[1] / "execution" / "ibkr"))
from fake_tws import START, FakeTws, SharedClock as Clock  # noqa: E402

from tradewarden import cli_ibkr  # noqa: E402
from tradewarden.cli import app  # noqa: E402

runner = CliRunner()
EXPIRY = "20260116"


@pytest.fixture
def gateway(monkeypatch):
    clock = Clock(START + 6 * 3600)
    tws = FakeTws(clock=clock)
    tws.start()
    tws.set_quote("AAPL", "189.99", "190.01", "190.00")
    tws.add_option_chain("AAPL", [EXPIRY], [175, 180, 185], rights="P", iv=0.30)
    for k, (bid, ask) in {175: ("0.90", "0.95"), 180: ("1.60", "1.70"),
                          185: ("2.90", "3.00")}.items():
        tws.set_option_quote("AAPL", EXPIRY, k, "P", bid=bid, ask=ask)
    monkeypatch.setattr(cli_ibkr, "make_clock", lambda: clock)
    yield clock, tws
    tws.stop()


def config(tmp_path: Path, port: int, mode: str = "paper") -> Path:
    path = tmp_path / "puts.toml"
    path.write_text(f'''mode = "{mode}"
strategy = "put_writer"
symbols = ["AAPL"]
timeframe = "1d"

[params]
underlying = "AAPL"
dte_min = 7
dte_max = 30
delta_min = -0.35
delta_max = -0.10
max_positions = 1
close_days_before_expiry = 0

[venue]
name = "ibkr"
port = {port}
client_id = 21

[ledger]
db = "{tmp_path / 'l.db'}"
''')
    return path


def test_write_puts_once_a_session_resumes_its_book(tmp_path, gateway):
    clock, tws = gateway
    cfg = config(tmp_path, tws.port)
    first = runner.invoke(app, ["ibkr", "write-puts", "--config", str(cfg)],
                          catch_exceptions=False, terminal_width=160)
    assert first.exit_code == 0, first.output
    assert "enter_short" in first.output and "1 short put(s) held" in first.output
    clock.t += 86_400
    tws.set_option_quote("AAPL", EXPIRY, 185, "P", bid="0.20", ask="0.25")
    second = runner.invoke(app, ["ibkr", "write-puts", "--config", str(cfg)],
                           catch_exceptions=False, terminal_width=160)
    assert second.exit_code == 0, second.output
    assert "resumed" in second.output and "profit_target" in second.output
    assert "reconciliation" not in second.output
    with sqlite3.connect(tmp_path / "l.db") as c:
        runs = c.execute("select mode, strategy from runs").fetchall()
        assert runs == [("paper", "put_writer")] * 2
        (trade,) = c.execute("select side, exit_reason from trades").fetchall()
        assert trade == ("short", "profit_target")
        assert c.execute("select count(*) from option_fill_snapshots").fetchone()[0] >= 2


def test_live_mode_needs_the_live_flag_and_nothing_is_sent(tmp_path, gateway):
    clock, tws = gateway
    res = runner.invoke(app, ["ibkr", "write-puts", "--config", str(config(tmp_path, tws.port,
                                                                          "live"))])
    assert res.exit_code == 2 and "add --live" in " ".join(res.stderr.split())
    assert tws.orders() == []
