"""``warden paper`` and ``warden live`` end to end on Interactive Brokers: the real
``ib_async`` client and :class:`~tradewarden.execution.ibkr.IbkrBroker` talk to the
loopback fake TWS (``tests/execution/ibkr/fake_tws.py``), which serves the bundled AAPL
daily bars (AlphaVantage panel, 2015) as historical data and walks each session's bar at
16:00 UTC, as the deployment's simulated clock reaches it.

Checked: the command says what it trades and that fees are IBKR's commission reports;
one decision per NYSE session; every entry sent once as one native bracket (the parent
and both legs, one OCA group, the stop-loss transmitting the group); the take-profit and
the stop-loss end trades at the venue; the ledger's fills, position and cash equal the
fake's executions, positions and cash; a lost connection blocks entries
(``broker_disconnected``, an event and an alert), reconnection is tried every 60 clock
seconds while the gateway refuses, the deployment reconciles as soon as it is back, then
trades again. ``warden live`` needs a live (non-DU) account and refuses a paper one.
An exit decided after the gateway dropped the session (between the bar and the order)
does not fail the deployment: nothing is sent, the position is kept and its stop-loss
keeps protecting it at IBKR (a scripted strategy file places the exits).
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import sqlite3
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parents[1] / "execution" / "ibkr"))
from fake_tws import FakeTws  # noqa: E402

from tradewarden import cli_paper  # noqa: E402
from tradewarden.cli import app  # noqa: E402
from tradewarden.data.equities import load_equity_panel  # noqa: E402
from tradewarden.domain import iso  # noqa: E402

SYM = "AAPL"
DAY = 86400
MID = 16 * 3600                   # a session's bar is walked at 16:00 UTC (11:00 New York)
FIRST = 820                       # index of the last bar before the window (2015-04-09)
CAPITAL = Decimal(10000)


def q(db: Path, sql: str, *args: object) -> list[tuple]:
    with sqlite3.connect(db) as c:
        return c.execute(sql, args).fetchall()


def d(x: float) -> Decimal:
    return Decimal(repr(float(x)))


class SimClock:
    """The deployment's and the fake's clock (UTC epoch seconds): waiting jumps, running
    what is scheduled on the way (a session's walk, a fault) at its time."""

    def __init__(self, t: float) -> None:
        self.t = float(t)
        self.due: list[tuple[float, int, Callable[[], None]]] = []

    def time(self) -> float:
        return self.t

    def now(self) -> int:
        return int(self.t)

    def at(self, ts: float, fn: Callable[[], None]) -> None:
        bisect.insort(self.due, (float(ts), len(self.due), fn))

    def wait_until(self, ts: int) -> None:
        while self.due and self.due[0][0] <= ts:
            when, _, fn = self.due.pop(0)
            self.t = max(self.t, when)
            fn()
        self.t = max(self.t, float(ts))


@pytest.fixture(scope="module")
def aapl():
    """The bundled AAPL daily bars (raw prices)."""
    return load_equity_panel(symbols=[SYM])["AAPL"].series


def ymd(ts: int) -> str:
    return dt.datetime.fromtimestamp(int(ts), dt.timezone.utc).strftime("%Y%m%d")


def ts_of(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc).timestamp())


@pytest.fixture
def world(tmp_path, monkeypatch, aapl):
    """A started fake TWS with the AAPL history, its price at the window's start, every
    session of the window walked at 16:00 UTC on a shared clock, and a config writer."""
    clock = SimClock(int(aapl.ts[FIRST]) + DAY + 3600)         # 01:00 UTC after FIRST's session
    fakes: list[FakeTws] = []

    def make(account: str) -> FakeTws:
        fake = FakeTws(clock=clock.time, accounts=(account,), cash=CAPITAL)
        fake.start()
        fakes.append(fake)
        fake.set_bars(SYM, [(ymd(t), d(o), d(h), d(lo), d(c), int(v)) for t, o, h, lo, c, v in
                            zip(aapl.ts, aapl.open, aapl.high, aapl.low, aapl.close, aapl.volume)])
        last = d(aapl.close[FIRST])
        fake.set_quote(SYM, last, last, last)
        for i in range(FIRST + 1, len(aapl)):
            bar = (d(aapl.open[i]), d(aapl.high[i]), d(aapl.low[i]), d(aapl.close[i]))
            at = int(aapl.ts[i]) + MID
            clock.at(at, lambda bar=bar, at=at: fake.step(SYM, *bar, volume=0, ts=at))
        return fake

    def config(fake: FakeTws, mode: str) -> Path:
        path = tmp_path / f"{mode}.toml"
        path.write_text(f"""
mode = "{mode}"
symbols = ["{SYM}"]
strategy = "donchian"
timeframe = "1d"
capital = "{CAPITAL}"
[params]
entry_window = 5
exit_window = 3
atr_period = 2
stop_atr = 1.0
take_profit_atr = 1.5
[ledger]
db = "{tmp_path / 'ledger.db'}"
[venue]
name = "ibkr"
port = {fake.port}
client_id = 7
""")
        return path

    monkeypatch.setattr(cli_paper, "clock_factory", lambda stopped: clock)
    yield clock, make, config, tmp_path / "ledger.db"
    for fake in fakes:
        fake.stop()
        assert not fake.protocol_errors, fake.protocol_errors


def warden(command: str, cfg: Path, until: int, *extra: str):
    return CliRunner().invoke(app, [command, "--config", str(cfg), "--deployment", "ib",
                                    "--inbox-seconds", "21600", "--until", iso(until), *extra])


def sessions(aapl, lo: int, hi: int) -> list[int]:
    """Bar times (session dates 00:00 UTC) whose bar closed in (lo, hi]."""
    return [int(t) for t in aapl.ts if lo < t + DAY <= hi]


def check_venue_equals_ledger(fake: FakeTws, db: Path) -> list[tuple]:
    """Each entry sent once as one bracket; the ledger's fills, position and cash are the
    fake's executions, position and cash. Returns the ledger's trades."""
    orders = fake.orders()
    refs = [o.order_ref for o in orders]
    assert len(refs) == len(set(refs))                       # nothing sent twice
    entries = [o for o in orders if o.order_ref.endswith("-entry")]
    decided = [json.loads(x)["orders"][0] for (x,) in
               q(db, "select detail from decisions where action = 'enter_long' order by ts")]
    assert [o.order_ref for o in entries] == decided and entries
    for e in entries:                                        # one native bracket per entry
        legs = sorted((o for o in orders if o.parent_id == e.order_id), key=lambda o: o.order_type)
        assert [(o.order_type, o.action) for o in legs] == [("LMT", "SELL"), ("STP", "SELL")], (
            e, legs)
        assert (e.transmit, legs[0].transmit, legs[1].transmit) == (False, False, True)
        assert legs[0].oca_group == legs[1].oca_group != "" and legs[0].oca_type == 1
        assert {o.order_ref for o in legs} == {e.order_ref.replace("-entry", "-take_profit"),
                                               e.order_ref.replace("-entry", "-stop_loss")}
    venue = sorted((x.order.order_ref, int(x.time), x.price, x.shares, x.commission)
                   for x in fake.executions())
    ledger = sorted((c, int(t), Decimal(p), Decimal(n), Decimal(f)) for c, t, p, n, f in
                    q(db, "select client_order_id, ts, price, quantity, fee from fills"))
    assert ledger == venue
    assert all(x[4] >= 1 for x in venue)                     # IBKR's minimum commission
    held = sum((Decimal(n) if s == "buy" else -Decimal(n))
               for s, n in q(db, "select side, quantity from fills"))
    assert fake.positions().get(SYM, Decimal(0)) == held
    (state,), = q(db, "select state from engine_state order by ts desc, seq desc limit 1")
    state = json.loads(state)
    assert Decimal(state["accounts"][0]["cash"]) == fake.cash()
    assert q(db, "select count(*) from reconciliations") == [(0,)]
    return q(db, "select entry_ts, exit_ts, quantity, exit_reason from trades order by entry_ts")


def test_paper_on_the_ibkr_paper_account_trades_brackets_there_and_survives_a_disconnect(
        world, aapl, monkeypatch):
    from ib_async import IB

    clock, make, config, db = world
    fake = make("DU1234567")
    connects: list[int] = []                  # clock times of the client's connection attempts
    real_connect = IB.connect

    def connect(self, *args, **kwargs):
        connects.append(clock.now())
        return real_connect(self, *args, **kwargs)
    monkeypatch.setattr(IB, "connect", connect)
    lost, back = ts_of("2015-05-05T21:30:00"), ts_of("2015-05-06T02:00:00")

    port = fake.port
    clock.at(lost, fake.stop)             # the gateway goes away (state kept) over a bar's close
    clock.at(back, lambda: fake.start(port))
    start = clock.now()
    until = int(aapl.ts[FIRST + 31]) + DAY + 13 * 3600   # reconciled twice after the last bar
    r = warden("paper", config(fake, "paper"), until)
    assert r.exit_code == 0, r.output
    assert f"connecting to ibkr at 127.0.0.1:{fake.port}" in r.output
    assert ("paper: donchian on AAPL 1d candles from ibkr, fills at the venue; fees from "
            "IBKR's commission reports") in r.output
    decided = [t for (t,) in q(db, "select ts from decisions order by ts")]
    assert decided == sessions(aapl, start, until)           # one decision per NYSE session
    trades = check_venue_equals_ledger(fake, db)
    reasons = [t[3] for t in trades]
    assert "take_profit" in reasons and "stop_loss" in reasons
    # the disconnect: entries blocked with the reason, an alert; retried every 60 s or more
    events = q(db, "select ts, kind, message from events where kind in ('block', 'unblock', "
                   "'alert') order by ts, seq")
    blocked = [(t, m) for t, k, m in events if k == "block" and "broker_disconnected" in m]
    assert len(blocked) == 1 and lost <= blocked[0][0] < lost + 21600
    assert blocked[0][1].startswith("venue_status: broker_disconnected: disconnected from "
                                    f"127.0.0.1:{fake.port}")
    alerts = [(t, m) for t, k, m in events if k == "alert"]
    assert any(m.startswith("ibkr: disconnected") for _, m in alerts)
    assert any(m.startswith("ibkr: reconnect failed") for _, m in alerts)
    (again,) = [t for t, m in alerts if m.startswith("ibkr: reconnected")]
    tries = connects[1:]                                     # after the first connect
    assert tries[-1] == again and back <= again < back + 21600
    assert len(tries) >= 3 and all(b - a >= 60 for a, b in zip([blocked[0][0], *tries], tries))
    (lifted,) = [t for t, k, m in events if k == "unblock" and m.startswith("venue_status")]
    assert lifted == again
    # reconciled at once (reqAllOpenOrders after the new session's startApi, before any order)
    msgs = [f[0] for c, f in fake.received if c == 7 or f[0] == "71"]
    resumed = len(msgs) - 1 - msgs[::-1].index("71")
    assert "16" in msgs[resumed:] and ("3" not in msgs[resumed:]
                                       or msgs.index("16", resumed) < msgs.index("3", resumed))
    entries_after = [e for (e,) in q(db, "select entry_ts from trades") if e > again]
    assert entries_after                                     # trades again after the return


def test_the_periodic_reconciliation_waits_while_the_gateway_is_away(world, aapl):
    """Every 900 clock seconds the deployment reconciles; while the gateway is away that
    waits (the reconnect reconciles) instead of failing the deployment."""
    clock, make, config, db = world
    fake = make("DU1234567")
    port = fake.port
    first = int(aapl.ts[FIRST + 2])
    clock.at(first + 21 * 3600, fake.stop)                 # away from 21:00 to 02:00 UTC
    clock.at(first + 26 * 3600, lambda: fake.start(port))
    r = warden("paper", config(fake, "paper"), int(aapl.ts[FIRST + 4]) + DAY + 3600)
    assert r.exit_code == 0, r.output
    events = q(db, "select kind, message from events where message like 'venue_status%'")
    assert [k for k, _ in events] == ["block", "unblock"]


def test_live_trades_a_live_account_with_its_exposure_shown_first(world, aapl):
    clock, make, config, db = world
    fake = make("U1234567")
    start = clock.now()
    until = int(aapl.ts[FIRST + 14]) + DAY + 13 * 3600
    r = warden("live", config(fake, "live"), until, "--live", "--yes")
    assert r.exit_code == 0, r.output
    assert "venue     ibkr, account U1234567" in r.output
    assert "balances  USD 10000" in r.output
    assert "live: donchian on AAPL 1d candles from ibkr, fills at the venue" in r.output
    assert [t for (t,) in q(db, "select ts from decisions order by ts")] == sessions(aapl, start, until)
    trades = check_venue_equals_ledger(fake, db)
    assert [t[3] for t in trades] == ["take_profit", "stop_loss"]


@pytest.mark.parametrize("command, account, says", [
    ("live", "DU1234567", "ibkr: account DU1234567 is an IBKR paper account (DU...) but the config "
                          'says mode = "live"'),
    ("paper", "U1234567", "ibkr: account U1234567 is not an IBKR paper account (those start with "
                          'DU) but the config says mode = "paper"')])
def test_a_paper_account_in_live_mode_and_a_live_one_in_paper_mode_are_refused(
        world, command, account, says):
    clock, make, config, db = world
    fake = make(account)
    cfg = config(fake, command)
    args = ("--live", "--yes") if command == "live" else ()
    r = warden(command, cfg, clock.now() + 5 * DAY, *args)
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.startswith("error: ")]
    assert lines and lines[0].startswith(f"error: {says}"), r.output
    assert "Traceback" not in r.output
    assert fake.orders() == [] and not db.exists() or q(db, "select count(*) from decisions") == [(0,)]


def test_an_intraday_timeframe_is_refused_in_one_line(world):
    clock, make, config, db = world
    fake = make("DU1234567")
    cfg = config(fake, "paper")
    cfg.write_text(cfg.read_text().replace('timeframe = "1d"', 'timeframe = "1h"'))
    r = warden("paper", cfg, clock.now() + DAY)
    assert r.exit_code == 2, r.output
    assert 'error: timeframe = "1h": [venue] name = "ibkr" trades US equities on daily bars; set ' \
           'timeframe = "1d"' in r.output


def test_unadjusted_prices_are_refused_and_split_dividend_asks_for_adjusted_last(world):
    clock, make, config, db = world
    fake = make("DU1234567")
    cfg = config(fake, "paper")
    text = cfg.read_text()
    cfg.write_text(text.replace('timeframe = "1d"', 'timeframe = "1d"\nadjust = "raw"'))
    r = warden("paper", cfg, clock.now() + DAY)
    assert r.exit_code == 2, r.output
    assert 'error: adjust = "raw": IBKR serves no unadjusted daily bars' in r.output
    from tradewarden.engine.config import RunConfig
    from tradewarden.ops.live import ibkr_feed

    class _Broker:                  # what IbkrBarFeed.from_broker reads of the adapter
        ib, contracts = None, {"AAPL": "the AAPL contract"}
    for adjust, shown in ((None, "TRADES"), ("split", "TRADES"),
                          ("split_dividend", "ADJUSTED_LAST")):
        broker = _Broker()
        broker.clock = clock
        feed = ibkr_feed(broker, RunConfig(symbols=("AAPL",), timeframe="1d", adjust=adjust))
        assert feed.what_to_show == shown


SCRIPTED = '''
import numpy as np
from tradewarden.strategy.base import SignalFrame, Strategy, StrategyParams


class Params(StrategyParams):
    enter: str = ""
    exit: str = ""
    stop_fraction: float = 0.15


class Scripted(Strategy):
    """Enters at the bar times in ``enter``, exits at those in ``exit`` (UTC epoch s, comma
    separated); a bracket with the stop ``stop_fraction`` below the close and the take-profit
    50 % above it."""

    name = "scripted"
    Params = Params
    input_names = ("close",)

    @property
    def warmup(self):
        return 0

    def prepare(self, bars):
        times = lambda text: [int(x) for x in text.split(",") if x]
        enter = np.isin(bars.ts, times(self.params.enter))
        exit_ = np.isin(bars.ts, times(self.params.exit))
        close = np.asarray(bars.close, dtype=float)
        return SignalFrame(enter, exit_, enter.astype(np.int8), ("waiting", "scripted"),
                           close * (1 - self.params.stop_fraction), close * 1.5,
                           {"close": close}, entry_reason="scripted", exit_reason="scripted_exit")
'''


def scripted_config(tmp_path: Path, fake: FakeTws, enter: list[int], exit_: list[int]) -> Path:
    """A paper config trading AAPL at the fake with the scripted strategy."""
    (tmp_path / "scripted.py").write_text(SCRIPTED)
    path = tmp_path / "scripted.toml"
    path.write_text(f"""
mode = "paper"
symbols = ["{SYM}"]
strategy = "{tmp_path / 'scripted.py'}:Scripted"
timeframe = "1d"
capital = "{CAPITAL}"
[params]
enter = "{','.join(map(str, enter))}"
exit = "{','.join(map(str, exit_))}"
[ledger]
db = "{tmp_path / 'ledger.db'}"
[venue]
name = "ibkr"
port = {fake.port}
client_id = 7
""")
    return path


def away(clock: SimClock, fake: FakeTws, bar_ts: int) -> tuple[int, int]:
    """The gateway drops the session right after serving the bar of session ``bar_ts``
    (its close at the next midnight UTC): the deployment has the bar, then no socket for
    its orders; the gateway refuses new sessions until 02:00 UTC. Returns (lost, back)."""
    close = bar_ts + DAY
    lost, back = close - 30, close + 2 * 3600

    def drop() -> None:
        fake.handshake = "close"
        fake.drop_after_next_history()

    clock.at(lost, drop)
    clock.at(back, lambda: setattr(fake, "handshake", "ok"))
    return lost, back


def decision_at(db: Path, ts: int) -> tuple[str, str, dict]:
    (action, reason, detail), = q(db, "select action, reason, detail from decisions where ts = ?", ts)
    return action, reason, json.loads(detail or "{}")


def test_an_exit_while_the_gateway_is_away_keeps_the_position_and_its_stop_protects_it(
        world, aapl, tmp_path):
    """The exit decided while the socket is down is not sent (its order ``rejected``, the
    reason ``broker_disconnected``), the deployment goes on, the position and its legs stay
    at IBKR: the stop-loss fills there during the outage and is booked after the reconnect;
    a second exit is sent at the next exit bar after the reconnect."""
    clock, make, _config, db = world
    fake = make("DU1234567")
    ts = [int(t) for t in aapl.ts]
    e1, x1 = FIRST + 2, FIRST + 5                      # trip 1: the stop fires while away
    e2, x2 = FIRST + 8, FIRST + 11                     # trip 2: the exit goes after the return
    lost1, back1 = away(clock, fake, ts[x1])
    crash = d(round(aapl.close[x1] * 0.7, 2))
    clock.at(ts[x1] + DAY + 3600, lambda: fake.set_quote(SYM, crash, crash, crash))
    lost2, back2 = away(clock, fake, ts[x2])
    cfg = scripted_config(tmp_path, fake, [ts[e1], ts[e2]], [ts[x1], ts[x2], ts[x2 + 1]])
    r = warden("paper", cfg, ts[FIRST + 16] + DAY + 13 * 3600)
    assert r.exit_code == 0, r.output                  # the deployment did not fail
    # trip 1: the exit at x1's close was decided while away and nothing was sent: its
    # order is rejected before sending (today), or the decision is blocked (once the engine
    # asks IbkrBroker.exit_blocks first: notes/s22/rebalance_engine.md part B)
    action, reason, detail = decision_at(db, ts[x1])
    if action == "blocked":
        assert reason == "venue_status" and detail["why"].startswith("broker_disconnected")
    else:
        assert (action, reason) == ("exit", "scripted_exit")
        (cid,) = detail["orders"]
        (status, why), = q(db, "select status, status_reason from orders where "
                               "client_order_id = ?", cid)
        assert status == "rejected" and why.startswith("not sent: broker_disconnected: disconn")
        assert fake.order_by_ref(cid) is None           # nothing reached IBKR
    # ... while the stop-loss kept working at IBKR and filled during the outage
    stops = [o for o in fake.orders() if o.order_ref.endswith("-stop_loss")]
    fired = [x for x in fake.executions() if x.order.order_ref == stops[0].order_ref]
    assert len(fired) == 1 and lost1 < fired[0].time < back1 and fired[0].price <= crash
    trades = check_venue_equals_ledger(fake, db)       # booked once, the ledger is the venue
    assert [t[3] for t in trades] == ["stop_loss", "signal"]
    assert trades[0][1] == int(fired[0].time)
    # trip 2: not sent at x2's close (away), sent at x2 + 1's close after the return
    assert decision_at(db, ts[x2])[0] in ("exit", "blocked")
    action, _, detail = decision_at(db, ts[x2 + 1])
    assert action == "exit" and fake.order_by_ref(detail["orders"][0]).status == "Filled"
    assert ts[x2 + 1] + DAY <= trades[1][1] < ts[x2 + 1] + DAY + 3600     # sent at its close
    assert lost2 < back2 < trades[1][1]
    rejected = q(db, "select message from events where kind = 'order_rejected'")
    assert all("broker_disconnected" in m for (m,) in rejected)
    assert len(rejected) == sum(decision_at(db, ts[i])[0] == "exit" for i in (x1, x2))


def test_an_exit_while_the_gateway_is_away_is_blocked_and_retried_after_reconnecting(
        world, aapl, tmp_path):
    clock, make, _config, db = world
    fake = make("DU1234567")
    ts = [int(t) for t in aapl.ts]
    e, x = FIRST + 2, FIRST + 5                        # the exit signal on x's bar only
    _lost, back = away(clock, fake, ts[x])
    cfg = scripted_config(tmp_path, fake, [ts[e]], [ts[x]])
    r = warden("paper", cfg, ts[FIRST + 9] + DAY + 13 * 3600)
    assert r.exit_code == 0, r.output
    action, reason, detail = decision_at(db, ts[x])
    assert (action, reason) == ("blocked", "venue_status")
    assert detail["why"].startswith("broker_disconnected: disconnected from")
    seq, = q(db, "select seq from decisions where ts = ?", ts[x])[0]
    assert q(db, "select count(*) from orders where decision_seq = ?", seq) == [(0,)]
    # the legs stayed at IBKR while away: cancelled by the retried exit, after the return
    legs = [o for o in fake.orders() if o.order_ref.endswith(("-stop_loss", "-take_profit"))]
    assert [o.status for o in legs] == ["Cancelled", "Cancelled"]
    assert all(o.completed_at > back for o in legs)
    # the exit is retried at the first bar after the reconnect and the reconciliation
    action, _, detail = decision_at(db, ts[x + 1])
    assert action == "exit" and fake.order_by_ref(detail["orders"][0]).status == "Filled"
    trades = check_venue_equals_ledger(fake, db)
    assert [t[3] for t in trades] == ["signal"]
    assert back < ts[x + 1] + DAY <= trades[0][1] < ts[x + 1] + DAY + 3600
