"""Alerts: the real clients (smtplib, requests, python-telegram-bot) against loopback fakes
(aiosmtpd, an http.server webhook, the fake Bot API), the ledger's ``alerts`` rows, levels,
de-duplication and the rate limit on the given clock."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from tradewarden.engine.clock import ReplayClock
from tradewarden.ledger.store import Ledger, LedgerError
from tradewarden.ops.alerts import (
    TRIGGERS,
    Alerter,
    AlertSettings,
    alerts,
    split_message,
)

sys.path.insert(0, str(Path(__file__).parent))
from alert_support import SMTPServer, TestCA, WebhookReceiver, free_port
from fake_telegram import FakeTelegram

T0 = 1_790_000_000


@pytest.fixture
def ledger(tmp_path):
    led = Ledger(tmp_path / "ledger.db")
    yield led
    led.engine.dispose()


@pytest.fixture
def make(ledger):
    """``make(clock=None, **settings)``: an Alerter on the test ledger, closed at teardown."""
    made = []

    def factory(clock=None, **kwargs):
        a = Alerter(ledger, AlertSettings(**kwargs), clock or ReplayClock(T0))
        made.append(a)
        return a

    yield factory
    for a in made:
        a.close(timeout=10)


@pytest.fixture
def webhook():
    r = WebhookReceiver().start()
    yield r
    r.stop()


@pytest.fixture
def telegram():
    fake = FakeTelegram().start()
    yield fake
    fake.stop()


def row(ledger, alert_id):
    return next(r for r in alerts(ledger) if r["id"] == alert_id)


def test_email_is_delivered_and_the_row_says_so(ledger, make):
    server = SMTPServer().start()
    try:
        a = make(email_host="127.0.0.1", email_port=server.port, email_tls="none",
                 email_to="ops@example.org, cto@example.org", email_from="warden@example.org")
        alert_id = a.alert("critical", "anomaly", "drawdown 12 % over 40 %",
                           "BTC-USD equity fell from 10000 to 8800 USD", deployment_id="dep1")
        assert a.flush(10)
    finally:
        server.stop()
    [(sender, rcpts, msg)] = server.messages
    assert server.inbox.tls == [False]              # email_tls = "none": clear text
    assert sender == "warden@example.org"
    assert rcpts == ["ops@example.org", "cto@example.org"]
    assert msg["Subject"] == "[tradewarden critical] anomaly: drawdown 12 % over 40 %"
    assert "BTC-USD equity fell" in msg.get_payload() and "deployment dep1" in msg.get_payload()
    r = row(ledger, alert_id)
    assert (r["status"], r["channels"]) == ("sent", {"email": "sent"})
    assert (r["ts"], r["level"], r["trigger"], r["deployment_id"]) == (T0, "critical", "anomaly",
                                                                       "dep1")


def test_email_over_starttls_with_a_login(ledger, make, tmp_path):
    ca = TestCA(tmp_path)
    server = SMTPServer(ca=ca, user="warden", password="s3cret").start()
    try:
        a = make(email_host="127.0.0.1", email_port=server.port, email_tls="starttls",
                 email_username="warden", email_password="s3cret", email_to=["ops@example.org"],
                 ca_file=ca.ca_file)
        alert_id = a.alert("warning", "broker_disconnect", "coinbase unreachable")
        assert a.flush(10)
    finally:
        server.stop()
    assert server.inbox.tls == [True] and server.inbox.logins == ["warden"]
    assert server.messages[0][0] == "warden"            # From defaults to the login
    assert row(ledger, alert_id)["status"] == "sent"


def test_email_over_implicit_tls(ledger, make, tmp_path):
    ca = TestCA(tmp_path)
    server = SMTPServer(ca=ca, implicit=True).start()
    try:
        a = make(email_host="127.0.0.1", email_port=server.port, email_tls="implicit",
                 email_to=["ops@example.org"], ca_file=ca.ca_file)
        alert_id = a.alert("critical", "emergency_stop", "stopped from Telegram")
        assert a.flush(10)
    finally:
        server.stop()
    assert server.inbox.tls == [True] and row(ledger, alert_id)["status"] == "sent"


def test_starttls_refuses_a_certificate_it_does_not_trust(ledger, make, tmp_path):
    server = SMTPServer(ca=TestCA(tmp_path)).start()
    try:
        a = make(email_host="127.0.0.1", email_port=server.port, email_to=["ops@example.org"])
        alert_id = a.alert("critical", "anomaly", "x")
        assert a.flush(10)
    finally:
        server.stop()
    assert server.messages == []
    r = row(ledger, alert_id)
    assert r["status"] == "failed" and "CERTIFICATE_VERIFY_FAILED" in r["channels"]["email"]


def test_slack_webhook_gets_the_text(ledger, make, webhook):
    a = make(slack_webhook_url=webhook.url, slack_min_level="info")
    alert_id = a.alert("info", "end_of_day", "day closed: +12.5 USD", "3 trades")
    assert a.flush(10)
    assert webhook.posts == [{"text": "[INFO] end_of_day: day closed: +12.5 USD\n\n3 trades"}]
    assert webhook.paths == ["/services/T000/B000/XXXX"]
    assert row(ledger, alert_id)["channels"] == {"slack": "sent"}


def test_slack_webhook_over_https(ledger, make, tmp_path):
    ca = TestCA(tmp_path)
    receiver = WebhookReceiver(ca=ca).start()
    try:
        a = make(slack_webhook_url=receiver.url, ca_file=ca.ca_file)
        alert_id = a.alert("warning", "cost_cap", "reasoning spend at 80 % of the cap")
        assert a.flush(10)
    finally:
        receiver.stop()
    assert receiver.url.startswith("https://")
    assert receiver.posts[0]["text"].startswith("[WARNING] cost_cap: reasoning spend")
    assert row(ledger, alert_id)["status"] == "sent"


def test_telegram_sends_to_every_chat_and_splits_long_text(ledger, make, telegram):
    a = make(telegram_bot_token=telegram.token, telegram_chat_ids="11, 22",
             telegram_base_url=telegram.base_url)
    body = "\n".join(f"line {i:04d} " + "x" * 80 for i in range(100))   # ~9000 characters
    alert_id = a.alert("critical", "human_review", "approval 7 waits", body)
    assert a.flush(10)
    for chat in (11, 22):
        texts = telegram.texts(chat)
        assert len(texts) == 3 and all(len(t) <= 4096 for t in texts)
        assert texts[0].startswith("[CRITICAL] human_review: approval 7 waits")
        assert "line 0099" in texts[-1]
    assert [m for m, _ in telegram.requests].count("getMe") == 1
    assert row(ledger, alert_id)["channels"] == {"telegram": "sent"}


def test_each_channel_takes_the_levels_it_is_set_for(ledger, make, webhook, telegram):
    a = make(slack_webhook_url=webhook.url, slack_min_level="info",
             telegram_bot_token=telegram.token, telegram_chat_ids=[5],
             telegram_base_url=telegram.base_url, telegram_min_level="critical")
    info = a.alert("info", "end_of_day", "summary")
    warning = a.alert("warning", "autonomy_demoted", "L3 -> L2")
    critical = a.alert("critical", "daemon_error", "KeyError in on_bar")
    assert a.flush(10)
    assert row(ledger, info)["channels"] == {"slack": "sent"}
    assert row(ledger, warning)["channels"] == {"slack": "sent"}
    assert row(ledger, critical)["channels"] == {"slack": "sent", "telegram": "sent"}
    assert len(webhook.posts) == 3
    assert telegram.texts(5) == ["[CRITICAL] daemon_error: KeyError in on_bar"]
    # No channel takes it: the log line and the row are the alert.
    quiet = make(slack_webhook_url=webhook.url, slack_min_level="critical")
    assert row(ledger, quiet.alert("info", "end_of_day", "other"))["status"] == "logged"


def test_duplicates_and_the_rate_limit_are_recorded_suppressed(ledger, make, webhook):
    clock = ReplayClock(T0)
    settings = {"slack_webhook_url": webhook.url, "dedupe_seconds": 600, "rate_limit_count": 2,
                "rate_limit_seconds": 3600}
    a = make(clock, **settings)
    first = a.alert("warning", "anomaly", "confidence 0.31 below 0.4")
    dup = a.alert("warning", "anomaly", "confidence 0.31 below 0.4")
    keyed = a.alert("warning", "anomaly", "3 fill failures", dedupe_key="fills:BTC-USD")
    clock.advance(T0 + 30)
    keyed_dup = a.alert("warning", "anomaly", "4 fill failures", dedupe_key="fills:BTC-USD")
    over = a.alert("warning", "anomaly", "drawdown 41 %")
    other = a.alert("warning", "cost_cap", "spend at 90 %")
    assert a.flush(10)
    statuses = {i: row(ledger, i)["status"] for i in (first, dup, keyed, keyed_dup, over, other)}
    assert statuses == {first: "sent", dup: "suppressed", keyed: "sent",
                        keyed_dup: "suppressed", over: "suppressed", other: "sent"}
    assert "duplicate" in row(ledger, dup)["channels"]["suppressed"]
    assert "duplicate" in row(ledger, keyed_dup)["channels"]["suppressed"]
    assert "rate limit" in row(ledger, over)["channels"]["suppressed"]
    assert [p["text"] for p in webhook.posts] == [
        "[WARNING] anomaly: confidence 0.31 below 0.4", "[WARNING] anomaly: 3 fill failures",
        "[WARNING] cost_cap: spend at 90 %"]
    # A restarted daemon remembers what it sent (from the ledger) ...
    a.close()
    again = make(clock, **settings)
    assert row(ledger, again.alert("warning", "anomaly", "confidence 0.31 below 0.4")
               )["status"] == "suppressed"
    # ... and the windows are clock time: an hour later both have passed.
    clock.advance(T0 + 3600)
    later = again.alert("warning", "anomaly", "confidence 0.31 below 0.4")
    assert again.flush(10)
    assert row(ledger, later)["status"] == "sent" and row(ledger, later)["ts"] == T0 + 3600
    assert len(webhook.posts) == 4


def test_failing_channels_are_recorded_and_never_raise(ledger, make, webhook, telegram):
    webhook.status = 500
    telegram.fail_chats[33] = (403, "Forbidden: bot was blocked by the user")
    a = make(email_host="127.0.0.1", email_port=free_port(), email_tls="none",
             email_to=["ops@example.org"], slack_webhook_url=webhook.url,
             telegram_bot_token=telegram.token, telegram_chat_ids=[33, 44],
             telegram_base_url=telegram.base_url, timeout_seconds=5)
    alert_id = a.alert("critical", "broker_disconnect", "kraken down")
    assert a.flush(20)
    r = row(ledger, alert_id)
    assert r["status"] == "failed"
    assert r["channels"]["email"].startswith("failed: ConnectionRefusedError")
    assert r["channels"]["slack"] == "failed: RuntimeError: HTTP 500 internal_error"
    assert r["channels"]["telegram"] == ("failed: RuntimeError: chat 33: Forbidden: Forbidden: "
                                         "bot was blocked by the user")
    assert telegram.texts(44) == ["[CRITICAL] broker_disconnect: kraken down"]  # the others still go
    webhook.status = 200
    second = a.alert("critical", "broker_disconnect", "kraken still down")
    assert a.flush(20)
    r = row(ledger, second)
    assert r["status"] == "partial" and r["channels"]["slack"] == "sent"


def test_a_refused_token_is_recorded_without_the_token(ledger, make, telegram):
    a = make(telegram_bot_token="999:WRONG-token", telegram_chat_ids=[1],
             telegram_base_url=telegram.base_url)
    alert_id = a.alert("critical", "reasoning_error", "provider 529")
    assert a.flush(10)
    r = row(ledger, alert_id)
    assert r["status"] == "failed" and "InvalidToken" in r["channels"]["telegram"]
    assert "WRONG" not in r["channels"]["telegram"]


def test_the_caller_is_not_held_up_by_a_slow_server(ledger, make):
    server = SMTPServer().start()
    server.inbox.hold.clear()                       # the server sits on DATA until released
    try:
        a = make(email_host="127.0.0.1", email_port=server.port, email_tls="none",
                 email_to=["ops@example.org"])
        alert_id = a.alert("critical", "anomaly", "stuck server")
        assert row(ledger, alert_id)["status"] == "queued"
        assert a.flush(0.05) is False
        server.inbox.hold.set()
        assert a.flush(10)
    finally:
        server.stop()
    assert row(ledger, alert_id)["status"] == "sent" and len(server.messages) == 1


def test_bad_input_and_a_broken_ledger_get_one_clear_error(ledger, make, webhook):
    a = make(slack_webhook_url=webhook.url)
    with pytest.raises(ValueError, match="alert level 'fatal'"):
        a.alert("fatal", "anomaly", "x")
    with pytest.raises(ValueError, match="alert trigger"):
        a.alert("info", "has spaces", "x")
    with pytest.raises(ValueError, match="subject"):
        a.alert("info", "anomaly", "  ")
    assert a.alert("info", "my_own_trigger", "custom triggers are accepted") > 0
    with ledger.engine.begin() as conn:
        conn.execute(text("DROP TABLE alerts"))
    with pytest.raises(LedgerError, match="alerts: cannot record the anomaly alert .* sent anyway"):
        a.alert("critical", "anomaly", "database gone")
    assert a.flush(10)                  # a database outage is when the alert matters most
    assert webhook.posts == [{"text": "[CRITICAL] anomaly: database gone"}]


def test_settings_need_recipients_and_chat_ids():
    with pytest.raises(ValidationError, match="email_to is empty"):
        AlertSettings(email_host="smtp.example.org")
    with pytest.raises(ValidationError, match="telegram_chat_ids is empty"):
        AlertSettings(telegram_bot_token="1:x")
    s = AlertSettings(email_host="h", email_to="a@x.org,b@x.org", telegram_bot_token="1:x",
                      telegram_chat_ids="1, -100200", slack_webhook_url="https://hooks/x",
                      email_min_level="critical")
    assert s.email_to == ("a@x.org", "b@x.org") and s.telegram_chat_ids == (1, -100200)
    assert s.channels() == {"email": "critical", "slack": "warning", "telegram": "warning"}
    assert "1:x" not in repr(s) and "hooks" not in repr(s)
    assert AlertSettings().channels() == {}
    assert "end_of_day" in TRIGGERS and "human_review" in TRIGGERS


def test_split_message_keeps_lines_whole_where_it_can():
    text = "\n".join(["a" * 3000, "b" * 3000, "c" * 10])
    assert split_message(text) == ["a" * 3000, "b" * 3000 + "\n" + "c" * 10]
    assert [len(p) for p in split_message("z" * 9000)] == [4096, 4096, 808]
    assert split_message("short") == ["short"]
    with pytest.raises(ValueError):
        split_message("x", 0)
