"""``warden ibkr check`` against the loopback fake TWS (``tests/execution/ibkr/fake_tws.py``)
with the real ``ib_async`` client: what a working gateway shows, and the one line for
each way a setup goes wrong (exit status 2, no traceback)."""

from __future__ import annotations

import socket
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parents[1] / "execution" / "ibkr"))
from fake_tws import START, FakeTws  # noqa: E402

from tradewarden.cli import app  # noqa: E402
from tradewarden.ops.live import ibkr_mode_problems, is_paper_account  # noqa: E402


def check(*args: str):
    return CliRunner().invoke(app, ["ibkr", "check", *args])


def error_line(result) -> str:
    """The one ``error: ...`` line (and that nothing else, no traceback, was printed)."""
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(tmp_path, mode: str | None, **venue: object) -> str:
    lines = [f'mode = "{mode}"'] if mode else []
    lines += ["[venue]", 'name = "ibkr"']
    lines += [f"{k} = {v!r}" if isinstance(v, int) else f'{k} = "{v}"' for k, v in venue.items()]
    path = tmp_path / "ibkr.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_paper_accounts_are_the_du_codes_and_each_mode_refuses_the_others_port_and_account():
    assert is_paper_account("DU1234567") and is_paper_account("du7") and not is_paper_account("U1234567")
    assert ibkr_mode_problems("paper", 7497, "DU1234567") == []
    assert ibkr_mode_problems("live", 4001, "U1234567") == []
    assert ibkr_mode_problems("replay", 7496, "DU1") == []      # nothing to compare
    assert ibkr_mode_problems(None, 7496, "DU1") == []
    (line,) = ibkr_mode_problems("paper", 7496, None)
    assert line.startswith("port 7496 is a live trading port") and 'mode = "paper"' in line
    (line,) = ibkr_mode_problems("live", 4002, "U1")
    assert line.startswith("port 4002 is a paper trading port")
    (line,) = ibkr_mode_problems("paper", 7000, "U1234567")    # another port: the account decides
    assert line.startswith("account U1234567 is not an IBKR paper account")
    (line,) = ibkr_mode_problems("live", 7000, "DU1234567")
    assert line.startswith("account DU1234567 is an IBKR paper account")
    assert len(ibkr_mode_problems("paper", 4001, "U1")) == 2


def test_refused_connection_names_the_ports_and_the_api_setting():
    port = free_port()
    r = check("--port", str(port), "--timeout", "2")
    assert r.exit_code == 2
    line = error_line(r)
    assert f"cannot connect to 127.0.0.1:{port}: connection refused" in line
    assert "TWS paper 7497 / live 7496, IB Gateway paper 4002 / live 4001" in line
    assert "Enable ActiveX and Socket Clients" in line


def test_a_live_port_while_the_config_says_paper_is_refused_before_connecting(tmp_path):
    cfg = write_config(tmp_path, "paper", port=7496)
    r = check("--config", cfg)
    assert r.exit_code == 2
    assert error_line(r).startswith("error: port 7496 is a live trading port (TWS 7496, IB "
                                    'Gateway 4001) but the config says mode = "paper"')


def test_another_venue_in_the_config_is_refused(tmp_path):
    path = tmp_path / "cb.toml"
    path.write_text('[venue]\nname = "coinbase"\n')
    r = check("--config", str(path))
    assert r.exit_code == 2
    assert "checks an Interactive Brokers setup" in error_line(r)


@pytest.fixture
def tws():
    """A started fake TWS (paper account DU1234567, USD 100000) holding 10 AAPL bought at
    190.01 by another client (client id 9, still connected)."""
    from ib_async import IB, MarketOrder, Stock

    fake = FakeTws(clock=lambda: START)
    fake.start()
    fake.set_quote("AAPL", "189.99", "190.01", "190.00")
    other = IB()
    other.connect("127.0.0.1", fake.port, clientId=9, timeout=3)
    (aapl,) = other.qualifyContracts(Stock("AAPL", "SMART", "USD"))
    other.placeOrder(aapl, MarketOrder("BUY", 10))
    fake.wait_for(lambda f: f.positions().get("AAPL") == 10)
    yield fake
    other.disconnect()
    fake.stop()
    assert not fake.protocol_errors, fake.protocol_errors


def test_a_working_gateway_shows_version_accounts_summary_and_positions(tws, tmp_path):
    cfg = write_config(tmp_path, "paper", port=tws.port, client_id=3, account="DU1234567")
    r = check("--config", cfg)
    assert r.exit_code == 0, r.output
    out = r.output
    assert f"connected   127.0.0.1:{tws.port} as client id 3, server version 176" in out
    assert "accounts    DU1234567 (showing DU1234567, a paper account)" in out
    assert "notice      2104 Market data farm connection is OK:usfarm" in out
    values = tws.account_values()
    for label, tag in (("net liquidation", "NetLiquidation"), ("buying power", "BuyingPower"),
                       ("available funds", "AvailableFunds"), ("init margin req", "InitMarginReq"),
                       ("maint margin req", "MaintMarginReq"), ("cash", "TotalCashValue")):
        (line,) = [ln for ln in out.splitlines() if ln.startswith(label + " ")]
        assert line.split()[-2] == f"{values[tag]:,.2f}" and line.split()[-1] == "USD", line
    assert values["InitMarginReq"] > 0 and values["TotalCashValue"] < 100000
    (pos,) = [ln.split() for ln in out.splitlines() if ln.startswith("AAPL")]
    assert pos[:3] == ["AAPL", "STK", "10"] and Decimal(pos[3]) > Decimal("190")
    assert out.rstrip().endswith(f"ok: paper account DU1234567 is reachable through "
                                 f"127.0.0.1:{tws.port}; `warden paper --config FILE` can trade "
                                 "it (mode paper)")


def test_the_client_id_in_use_is_error_326(tws):
    r = check("--port", str(tws.port), "--client-id", "9", "--timeout", "3")
    assert r.exit_code == 2
    line = error_line(r)
    assert line.startswith(f"error: client id 9 is already in use at 127.0.0.1:{tws.port} (TWS "
                           "error 326: ")
    assert "set [venue] client_id / --client-id to another number" in line


def test_an_account_the_login_does_not_manage_is_named_with_those_it_does(tws):
    r = check("--port", str(tws.port), "--client-id", "3", "--account", "DU7654321")
    assert r.exit_code == 2
    assert error_line(r) == (f"error: account DU7654321 is not managed by this login at 127.0.0.1:"
                             f"{tws.port} (it manages DU1234567): set [venue] account / --account "
                             "to one of them, or log in to TWS / IB Gateway with the user of that "
                             "account")


def test_a_gateway_that_never_answers_the_handshake_points_at_trusted_ips_and_the_api_switch(tws):
    tws.handshake = "silent"
    r = check("--port", str(tws.port), "--client-id", "3", "--timeout", "0.5")
    assert r.exit_code == 2
    line = error_line(r)
    assert line.startswith(f"error: connected to 127.0.0.1:{tws.port}, but no answer to the API "
                           "handshake within 0.5 s")
    assert "Enable ActiveX and Socket Clients" in line and "Trusted IPs" in line


def test_a_gateway_that_closes_the_socket_at_the_handshake_is_said_at_once(tws):
    tws.handshake = "close"
    r = check("--port", str(tws.port), "--client-id", "3", "--timeout", "30")
    assert r.exit_code == 2       # (said when the socket closes, not after the 30 s timeout)
    assert error_line(r).startswith(f"error: 127.0.0.1:{tws.port} closed the connection during "
                                    "the API handshake: another session may use client id 3")


def test_a_paper_account_while_the_config_says_live_is_refused_after_connecting(tws, tmp_path):
    cfg = write_config(tmp_path, "live", port=tws.port, client_id=3)   # not a default port
    r = check("--config", cfg)
    assert r.exit_code == 2
    assert error_line(r).startswith("error: account DU1234567 is an IBKR paper account (DU...) "
                                    'but the config says mode = "live"')
