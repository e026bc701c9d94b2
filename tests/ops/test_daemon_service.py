"""``warden daemon start`` with several deployments under ``[[deployments]]``: one
service loop steps each when due; a deployment whose bar raises is finished as failed,
logged with its traceback, alerted, reopened after ``[daemon] reconnect_seconds``
(restored and reconciled) and decides the failed bar again, once; the other deployment
carries on meanwhile; a venue that cannot be reached at start is a
``broker_disconnected`` event until it answers. Real CLI, real ccxt, the loopback TLS fake of Coinbase, simulated time."""

from __future__ import annotations

import json
import os
import signal

from fake_exchange_server import HOUR, source_rows, ts_of  # noqa: E402
from paper_support import q  # noqa: E402
from typer.testing import CliRunner

from tradewarden.cli import app

FLAKY = '''
import os
from tradewarden.strategy.donchian import DonchianBreakout


class Flaky(DonchianBreakout):
    """Donchian that raises once, at its FLAKY_AT-th preparation, while FLAKY_FLAG does not
    exist."""

    name = "flaky"
    calls = 0

    def prepare(self, bars):
        flag = os.environ["FLAKY_FLAG"]
        Flaky.calls += 1
        if Flaky.calls == int(os.environ["FLAKY_AT"]) and not os.path.exists(flag):
            open(flag, "w").close()
            raise RuntimeError("strategy blew up on this bar")
        return super().prepare(bars)
'''


def test_two_deployments_one_fails_and_comes_back_while_the_other_trades(paper_venue, monkeypatch):
    sim, server, cfg, db = paper_venue
    start = sim.t
    strat = cfg.with_name("flaky.py")
    strat.write_text(FLAKY)
    monkeypatch.setenv("FLAKY_FLAG", str(cfg.with_name("flaky.flag")))
    monkeypatch.setenv("FLAKY_AT", "3")
    base = cfg.read_text().replace('symbols = ["BTC-USD"]\n', "")
    cfg.write_text(base + f"""
[daemon]
reconnect_seconds = 600
inbox_seconds = 60

[[deployments]]
name = "btc"
symbols = ["BTC-USD"]

[[deployments]]
name = "eth"
symbols = ["ETH-USD"]
strategy = "{strat}:Flaky"
[deployments.params]
entry_window = 6
exit_window = 3
""")
    stop_at = start + 8 * 3600

    def hook(t):
        if t >= stop_at and sim.on_sleep is not None:
            sim.on_sleep = None
            os.kill(os.getpid(), signal.SIGTERM)

    sim.on_sleep = hook
    log = db.with_name("svc.log")
    r = CliRunner().invoke(app, ["daemon", "start", "--config", str(cfg), "--foreground",
                                 "--log", str(log), "--log-json"])
    assert r.exit_code == 0, r.output
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    failed = [x for x in lines if x["event"] == "deployment_failed"]
    assert len(failed) == 1 and failed[0]["deployment"] == "eth" and failed[0]["where"] == "step"
    assert "strategy blew up on this bar" in failed[0]["traceback"]
    opened = [(x["deployment"], x["recovered"]) for x in lines if x["event"] == "deployment_opened"]
    assert opened == [("btc", False), ("eth", False), ("eth", True)]
    assert q(db, "select name, status from deployments order by name") == [
        ("btc", "stopped"), ("eth", "stopped")]
    # eth: the failed run, then the one reopened 10 min later (restored, reconciled)
    runs = q(db, "select symbols, status, error from runs order by started_at")
    assert [(n, s) for n, s, _ in runs] == [('["BTC-USD"]', "interrupted"),
                                            ('["ETH-USD"]', "failed"),
                                            ('["ETH-USD"]', "interrupted")]
    assert "strategy blew up on this bar" in runs[1][2]
    # every closed candle decided exactly once per deployment, the failed bar included
    for sym in ("BTC-USD", "ETH-USD"):
        ts = [int(t) for t in source_rows(sym)["ts"] if start < t + HOUR <= stop_at]
        got = [t for (t,) in q(db, "select ts from decisions where symbol = ? order by ts", sym)]
        assert got == ts, sym
    # an exception (not the venue): a critical alert, not a venue disconnection; a
    # heartbeat said which one was down
    kinds = [k for (k,) in q(db, "select kind from daemon_events order by id")]
    assert "broker_disconnected" not in kinds and "broker_reconnected" not in kinds
    alerts = q(db, "select level, trigger, subject from alerts where trigger = 'daemon_error'")
    assert alerts == [("critical", "daemon_error",
                       "eth: failed (step): RuntimeError: strategy blew up on this bar")]
    beats = q(db, "select status, activity from daemon_heartbeats order by seq")
    down = [a for s, a in beats if s == "error"]
    assert down and all("eth (RuntimeError: strategy blew up on this bar)" in a for a in down)
    assert beats[-1][0] == "shutdown"
    assert 9 <= len(down) <= 11                         # about one a minute for the 10 min


def test_a_venue_down_at_start_is_a_disconnection_until_it_answers(paper_venue, monkeypatch):
    import ccxt

    from tradewarden import cli_paper
    sim, server, cfg, db = paper_venue
    made = cli_paper.client_factory
    back_at = sim.t + 700                   # the venue answers again 700 s after the start

    def flaky_client(name, url):
        client = made(name, url)
        real = client.load_markets

        def load_markets(*args, **kwargs):
            if sim.t < back_at:
                raise ccxt.NetworkError("coinbase GET https://127.0.0.1/products: connection reset")
            return real(*args, **kwargs)

        client.load_markets = load_markets
        return client

    monkeypatch.setattr(cli_paper, "client_factory", flaky_client)
    cfg.write_text(cfg.read_text() + "\n[daemon]\nreconnect_seconds = 300\ninbox_seconds = 60\n")
    stop_at = sim.t + 4 * 3600

    def hook(t):
        if t >= stop_at and sim.on_sleep is not None:
            sim.on_sleep = None
            os.kill(os.getpid(), signal.SIGTERM)

    sim.on_sleep = hook
    log = db.with_name("down.log")
    r = CliRunner().invoke(app, ["daemon", "start", "--config", str(cfg), "--foreground",
                                 "--deployment", "desk", "--log", str(log), "--log-json"])
    assert r.exit_code == 0, r.output
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    failed = [x for x in lines if x["event"] == "deployment_failed"]
    assert [x["where"] for x in failed] == ["open", "open", "open"]     # at 0, 300, 600 s
    assert all("NetworkError" in x["error"] for x in failed)
    events = q(db, "select kind, payload from daemon_events where kind like 'broker%' order by id")
    assert [k for k, _ in events] == ["broker_disconnected", "broker_reconnected"]
    back = json.loads(events[1][1])
    assert back["after_failures"] == 3 and 700 <= back["down_seconds"] <= 1000
    alerts = q(db, "select level, trigger from alerts where trigger = 'broker_disconnect' "
                   "order by id")
    assert alerts == [("critical", "broker_disconnect"), ("info", "broker_disconnect")]
    # once it answered, the deployment traded its candles: none decided while it was away
    assert q(db, "select count(*) from decisions")[0][0] >= 3
    assert q(db, "select status from daemon_heartbeats order by seq")[1][0] == "error"


def test_the_daemon_runs_the_telegram_bot_and_alerts_reach_the_phone(paper_venue, monkeypatch):
    from fake_telegram import FakeTelegram

    sim, server, cfg, db = paper_venue
    phone = FakeTelegram().start()
    try:
        monkeypatch.setenv("TRADEWARDEN_ALERTS__TELEGRAM_BOT_TOKEN", phone.token)
        cfg.write_text(cfg.read_text() + f"""
[daemon]
inbox_seconds = 60
[alerts]
telegram_chat_ids = [42]
telegram_base_url = "{phone.base_url}"
telegram_min_level = "warning"
""")
        asked_at = sim.t + 3 * 3600            # after the 12:00 candle's entry was queued
        stop_at = sim.t + 5 * 3600
        got = {}

        def hook(t):
            if t >= asked_at and "status" not in got:
                got["status"] = True
                phone.wait_consumed(phone.command(42, "/status"))
                got["status"] = phone.wait_sent(1, chat_id=42)
                phone.wait_consumed(phone.command(42, "/pause lunch"))
                phone.wait_consumed(phone.command(7, "/resume", username="mallory"))
            if t >= stop_at and sim.on_sleep is not None:
                sim.on_sleep = None
                os.kill(os.getpid(), signal.SIGTERM)

        sim.on_sleep = hook
        r = CliRunner().invoke(app, ["daemon", "start", "--config", str(cfg), "--foreground",
                                     "--deployment", "desk", "--log",
                                     str(db.with_name("bot.log"))])
        assert r.exit_code == 0, r.output
        texts = phone.texts(42)
        assert any(t.startswith("daemon running") and "desk (paper)" in t for t in texts)
        # the person's pause went through the inbox and the engine carried it out
        assert q(db, "select kind, actor, reason, status from commands") == [
            ("pause", "telegram:alice", "lunch", "done")]
        assert not phone.texts(7)                      # another chat is not obeyed
        # the entry the governor queued for a person reached the phone as an alert
        assert any("desk: BTC-USD waits for a person" in t for t in texts)
        sent = q(db, "select channels from alerts where trigger = 'human_review'")
        assert sent and all(json.loads(c) == {"telegram": "sent"} for (c,) in sent)
    finally:
        phone.stop()
