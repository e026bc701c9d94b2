"""Put writing in paper at IBKR through the options desk, against the fake TWS with the
real ib_async client: a put written from IBKR's chain (greeks captured at the fill),
bought back at the profit target, another held to expiry and assigned, the desk's book
reconciled with the venue's positions, and nothing decided while the session is down.
"""

from __future__ import annotations

import sqlite3
import sys
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "execution" / "ibkr"))
from fake_tws import START, FakeTws, SharedClock as Clock  # noqa: E402

from tradewarden.execution.ibkr import IbkrBroker  # noqa: E402
from tradewarden.execution.ibkr_options import IbkrOptions  # noqa: E402
from tradewarden.ledger import Ledger  # noqa: E402
from tradewarden.ops.options_live import OptionsDeployment  # noqa: E402
from tradewarden.ops.options_replay import OptionsRunConfig  # noqa: E402
from tradewarden.strategy.put_writer import PutWriterParams  # noqa: E402

DAY = 86_400
EXPIRY = "20260116"                     # 14 days after START (2026-01-02)
PUT = "AAPL  260116P00180000"


@pytest.fixture
def world(tmp_path: Path):
    clock = Clock(START + 6 * 3600)             # 2026-01-02 21:30 UTC: after the close
    tws = FakeTws(clock=clock)
    tws.start()
    tws.set_quote("AAPL", "189.99", "190.01", "190.00")
    tws.add_option_chain("AAPL", [EXPIRY], [170, 175, 180, 185], rights="P", iv=0.30)
    for k, (bid, ask) in {170: ("0.40", "0.45"), 175: ("0.90", "0.95"),
                          180: ("1.60", "1.70"), 185: ("2.90", "3.00")}.items():
        tws.set_option_quote("AAPL", EXPIRY, k, "P", bid=bid, ask=ask)
    broker = IbkrBroker.connect("127.0.0.1", tws.port, 11, None, ["AAPL"], clock, timeout=3)
    ledger = Ledger(tmp_path / "l.db")
    config = OptionsRunConfig(chain="ibkr", mode="paper", capital=D("100000"),
                              params=PutWriterParams(underlying="AAPL", dte_min=7, dte_max=30,
                                                     delta_min=-0.35, delta_max=-0.10,
                                                     min_credit=0.5, max_positions=1,
                                                     profit_target=0.5,
                                                     close_days_before_expiry=0))
    dep = OptionsDeployment(ledger=ledger, broker=broker, options=IbkrOptions(broker.ib, clock),
                            clock=clock, config=config, deployment_id="pw1", settle_polls=40)
    yield clock, tws, broker, dep, tmp_path / "l.db"
    broker.disconnect()
    ledger.close()
    tws.stop()


def q(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as c:
        return c.execute(sql).fetchall()


def test_a_put_written_at_ibkr_is_bought_back_at_the_profit_target(world: Any) -> None:
    clock, tws, broker, dep, db = world
    report = dep.step()
    (entry,) = [d for d in report.decisions if d["action"] == "enter_short"]
    occ = entry["symbol"]
    assert occ.replace(" ", "") == PUT.replace(" ", "") or occ.startswith("AAPL")
    short = dep.desk.shorts[occ]
    assert short.contracts >= 1 and short.settlement == "physical"
    # the venue holds what the desk holds; the fill carries IBKR's model greeks of then
    assert dep.reconcile() == []
    (snap,) = q(db, "select source, delta, iv, underlying_price from option_fill_snapshots")
    assert snap[0] == "ibkr:model_greeks" and -1 < snap[1] < 0 and snap[2] == pytest.approx(0.30)
    assert D(snap[3]) == D(190)
    # a day later the put is cheap: bought back at the ask once half the credit is earned
    clock.t += DAY
    strike = int(short.strike)
    tws.set_option_quote("AAPL", EXPIRY, strike, "P", bid="0.20", ask="0.25")
    report = dep.step()
    assert ("exit", "profit_target") in {(d["action"], d["reason"]) for d in report.decisions}
    assert occ not in dep.desk.shorts and dep.reconcile() == []
    (trade,) = q(db, "select side, exit_reason, exit_price, pnl from trades")
    assert trade[:3] == ("short", "profit_target", "0.25")
    fees = sum(D(f) for (f,) in q(db, "select f.fee from fills f join trades t on "
                                      "f.client_order_id in (t.entry_order_id, t.exit_order_id)"))
    assert fees == 2 * D("0.65") * short.contracts          # IBKR's per-contract commission
    assert D(trade[3]) == (short.credit - D("0.25")) * 100 * short.contracts - fees
    # the state is saved with the deployment before every order and after every step
    assert q(db, "select count(*) from engine_state where deployment_id = 'pw1'")[0][0] >= 4
    latest = dep.ledger.latest_engine_state("pw1")
    assert latest == dep.desk.snapshot()


def test_a_put_held_to_expiry_in_the_money_is_assigned_at_the_desk_and_at_the_venue(
        world: Any) -> None:
    clock, tws, broker, dep, db = world
    dep.step()
    (occ, short), = dep.desk.shorts.items()
    strike = int(short.strike)
    # expiry day, after the close: AAPL closed below the strike
    clock.t = START + 14 * DAY + 6 * 3600
    tws.set_quote("AAPL", str(strike - 5) + ".99", str(strike - 4) + ".01", str(strike - 4))
    tws.set_option_quote("AAPL", EXPIRY, strike, "P", bid="3.90", ask="4.10")
    report = dep.step()
    assert (occ, "exit", "assigned") in {(d["symbol"], d["action"], d["reason"])
                                          for d in report.decisions}
    assert dep.desk.stock["AAPL"].shares == 100 * short.contracts
    # IBKR assigns overnight: until then the venue still shows the short put
    assert {d["symbol"] for d in dep.reconcile()} == {occ, "AAPL"}
    tws.assign("AAPL", EXPIRY, strike, "P")
    assert dep.reconcile() == []


def test_nothing_is_decided_while_the_session_is_down(world: Any) -> None:
    clock, tws, broker, dep, db = world
    tws.drop_connections()
    for _ in range(100):                      # until the client has seen the socket close
        try:
            broker.ib.sleep(0.02)
        except ConnectionError:
            pass
        if not broker.connected:
            break
    assert dep.step() is None
    assert q(db, "select kind, message from events")[-1][0] == "venue"
    assert q(db, "select count(*) from orders")[0][0] == 0


class Killed(BaseException):
    """Stands for the process dying at that point (nothing after it runs)."""


@pytest.mark.parametrize("where", ["before_send", "after_send"])
def test_a_restart_after_dying_around_an_order_settles_it_with_ibkr(world: Any, where: str,
                                                                     monkeypatch) -> None:
    """Die after the order was journaled but before it was sent, or after IBKR took it
    but before its fill was booked: the restarted deployment settles the order with
    IBKR by its client order id, and the desk's book matches IBKR's positions."""
    clock, tws, broker, dep, db = world
    real_submit = broker.submit

    def dying_submit(order, legs=()):
        if where == "before_send":
            raise Killed()
        real_submit(order, legs)
        tws.wait_for(lambda f: f.executions())      # IBKR filled it; we never heard
        raise Killed()

    monkeypatch.setattr(broker, "submit", dying_submit)
    with pytest.raises(Killed):
        dep.step()
    monkeypatch.setattr(broker, "submit", real_submit)
    (cid, status), = q(db, "select client_order_id, status from orders")
    assert status == "submitted"                    # journaled before sending
    # the restart: a new ledger connection and deployment resume the saved state
    again = OptionsDeployment(ledger=Ledger(db), broker=broker,
                              options=IbkrOptions(broker.ib, clock), clock=clock,
                              config=dep.config, deployment_id="pw1")
    assert again.resumed and len(again.recovered) == 1
    ((status,),) = q(db, f"select status from orders where client_order_id = '{cid}'")
    if where == "before_send":
        assert status == "rejected" and not again.desk.shorts and tws.orders() == []
    else:
        assert status == "filled" and len(again.desk.shorts) == 1
        assert q(db, "select count(*) from fills")[0][0] == 1
    assert again.reconcile() == []
    again.ledger.close()
