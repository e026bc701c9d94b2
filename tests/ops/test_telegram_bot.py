"""The Telegram bot: python-telegram-bot's Application (long polling) against the loopback
fake Bot API, acting through a recording fake of the oversight object."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tradewarden.engine.clock import ReplayClock
from tradewarden.ops.alerts import AlertSettings
from tradewarden.ops.telegram_bot import COMMANDS, CONFIRM_SECONDS, TelegramBot

sys.path.insert(0, str(Path(__file__).parent))
from fake_telegram import FakeTelegram

ME, OTHER, STRANGER = 4242, 5151, 9999
T0 = 1_790_000_000


class FakeOversight:
    """Records every call; answers a line naming it."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.positions = "BTC-USD long 0.5 @ 60000"
        self.fail: str | None = None

    def _answer(self, name: str, *args):
        self.calls.append((name, *args))
        if self.fail == name:
            raise RuntimeError("ledger is locked")
        return f"{name} done"

    def text_status(self): return self._answer("status") + ": L2, 1 deployment running"
    def text_positions(self): return self._answer("positions") and self.positions
    def text_pnl(self): return self._answer("pnl") + ": +12.50 USD"
    def text_report(self): return self._answer("report")
    def text_risk(self): return self._answer("risk")
    def pause(self, reason, by): return self._answer("pause", reason, by)
    def resume(self, by): return self._answer("resume", by)
    def approve(self, approval_id, by): return self._answer("approve", approval_id, by)
    def reject(self, approval_id, reason, by): return self._answer("reject", approval_id, reason, by)
    def emergency_stop(self, by): return self._answer("emergency_stop", by)


class RecordingLog:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict]] = []

    def __getattr__(self, level):
        return lambda event, **kw: self.events.append((level, event, kw))


@pytest.fixture
def api():
    fake = FakeTelegram().start()
    yield fake
    fake.stop()


@pytest.fixture
def bot(api):
    """``(bot, oversight, clock, log)``, started against the fake, obeying ME and OTHER."""
    oversight, clock, log = FakeOversight(), ReplayClock(T0), RecordingLog()
    b = TelegramBot(oversight, token=api.token, chat_ids=[ME, OTHER], base_url=api.base_url,
                    clock=clock, poll_timeout=5, log=log)
    b.start(timeout=10)
    yield b, oversight, clock, log
    b.stop(timeout=10)
    assert not b.running


def ask(api, text, chat=ME, username="alice"):
    """Send ``text`` from ``chat``; return the bot's new replies to it."""
    before = len(api.texts(chat))
    api.command(chat, text, username=username)
    api.wait_sent(before + 1, chat)
    # replies are sent in order and the bot handles one update at a time: a /help after
    # it marks the end of this command's replies
    api.command(chat, "/help", username=username)
    texts = [m["text"] for m in api.wait_sent(before + 2, chat)]
    while not texts[-1].startswith("tradewarden commands:"):
        texts = [m["text"] for m in api.wait_sent(len(texts) + 1, chat)]
    return texts[before:-1]


def test_every_command_answers_from_the_oversight(api, bot):
    _, oversight, _, _ = bot
    assert ask(api, "/status") == ["status done: L2, 1 deployment running"]
    assert ask(api, "/positions") == ["BTC-USD long 0.5 @ 60000"]
    assert ask(api, "/pnl") == ["pnl done: +12.50 USD"]
    assert ask(api, "/report") == ["report done"]
    assert ask(api, "/risk") == ["risk done"]
    assert ask(api, "/pause volatile news day") == ["pause done"]
    assert ask(api, "/pause", username=None) == ["pause done"]
    assert ask(api, "/resume") == ["resume done"]
    assert ask(api, "/approve 17") == ["approve done"]
    assert ask(api, "/reject 18 spread too wide", chat=OTHER, username="bob") == ["reject done"]
    assert oversight.calls == [
        ("status",), ("positions",), ("pnl",), ("report",), ("risk",),
        ("pause", "volatile news day", "telegram:alice"),
        ("pause", "paused from Telegram", f"telegram:{ME}"),
        ("resume", "telegram:alice"), ("approve", 17, "telegram:alice"),
        ("reject", 18, "spread too wide", "telegram:bob")]
    helptext = ask(api, "/help")[0]
    assert all(f"/{c} - " in helptext for c in COMMANDS)
    assert [c["command"] for c in api.commands] == list(COMMANDS)


def test_bad_arguments_and_unknown_commands_get_a_usage_line(api, bot):
    _, oversight, _, _ = bot
    assert ask(api, "/approve abc") == ["usage: /approve ID (the approval's number)"]
    assert ask(api, "/approve") == ["usage: /approve ID (the approval's number)"]
    assert ask(api, "/reject 5") == ["usage: /reject ID reason (a reason is required)"]
    assert ask(api, "/frobnicate") == ["unknown command '/frobnicate': see /help"]
    assert oversight.calls == []


def test_a_failing_oversight_call_is_reported_and_the_bot_carries_on(api, bot):
    _, oversight, _, log = bot
    oversight.fail = "pause"
    assert ask(api, "/pause") == ["error: /pause failed: ledger is locked"]
    assert ask(api, "/status") == ["status done: L2, 1 deployment running"]
    assert any(e[1] == "telegram_command_failed" for e in log.events)


def test_a_chat_that_is_not_configured_is_ignored_and_logged(api, bot):
    _, oversight, _, log = bot
    api.command(STRANGER, "/emergency_stop confirm", username="mallory")
    api.command(STRANGER, "/status", username="mallory")
    assert ask(api, "/risk") == ["risk done"]     # handled in order: the stranger's came first
    assert api.texts(STRANGER) == []
    assert oversight.calls == [("risk",)]
    ignored = [kw for _, event, kw in log.events if event == "telegram_ignored"]
    assert [(i["chat_id"], i["user"], i["text"]) for i in ignored] == [
        (STRANGER, "mallory", "/emergency_stop confirm"), (STRANGER, "mallory", "/status")]


def test_emergency_stop_acts_only_after_its_confirmation(api, bot):
    _, oversight, clock, _ = bot
    # a confirmation nobody asked for does nothing
    assert ask(api, "/emergency_stop confirm")[0].startswith("No emergency stop is waiting")
    # asked: a question with a button, nothing done yet
    api.command(ME, "/emergency_stop")
    question = api.wait_sent(len(api.texts(ME)) + 1, ME)[-1]
    assert question["text"].startswith("Emergency stop:")
    assert question["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == \
        "emergency_stop:confirm"
    assert oversight.calls == []
    # another chat's confirmation does not count for this one
    assert ask(api, "/emergency_stop confirm", chat=OTHER)[0].startswith("No emergency stop")
    # the button, within the minute, acts
    clock.advance(T0 + CONFIRM_SECONDS)
    api.press(ME, "emergency_stop:confirm")
    assert api.wait_sent(len(api.texts(ME)) + 1, ME)[-1]["text"] == "emergency_stop done"
    assert oversight.calls == [("emergency_stop", "telegram:alice")]
    assert any(m == "answerCallbackQuery" for m, _ in api.requests)
    # a confirmation used once is gone; a late one is refused
    assert ask(api, "/emergency_stop confirm")[0].startswith("No emergency stop")
    api.command(ME, "/emergency_stop")
    api.wait_sent(len(api.texts(ME)) + 1, ME)
    clock.advance(T0 + 2 * CONFIRM_SECONDS + 1)
    assert ask(api, "/emergency_stop confirm")[0].startswith("No emergency stop")
    api.command(ME, "/emergency_stop")
    api.wait_sent(len(api.texts(ME)) + 1, ME)
    assert ask(api, "/emergency_stop confirm") == ["emergency_stop done"]
    assert len(oversight.calls) == 2


def test_a_long_reply_arrives_in_pieces_of_at_most_4096(api, bot):
    _, oversight, _, _ = bot
    oversight.positions = "\n".join(f"position {i:03d} " + "y" * 77 for i in range(100))
    assert len(oversight.positions) == 9099
    pieces = ask(api, "/positions")
    assert len(pieces) == 3 and all(len(p) <= 4096 for p in pieces)
    assert "\n".join(pieces) == oversight.positions


def test_a_refused_token_stops_start_without_showing_it(api):
    b = TelegramBot(FakeOversight(), token="1:SECRET-wrong", chat_ids=[ME],
                    base_url=api.base_url)
    with pytest.raises(RuntimeError, match="cannot start: InvalidToken") as err:
        b.start(timeout=10)
    assert "SECRET" not in str(err.value) and not b.running


def test_the_bot_is_built_from_the_alert_settings(api):
    assert TelegramBot.from_settings(FakeOversight(), AlertSettings()) is None
    b = TelegramBot.from_settings(FakeOversight(), AlertSettings(
        telegram_bot_token=api.token, telegram_chat_ids="7,8", telegram_base_url=api.base_url))
    assert b.chat_ids == {7, 8} and b.base_url == api.base_url
    with pytest.raises(ValueError, match="chat ids"):
        TelegramBot(FakeOversight(), token="1:x", chat_ids=[])
