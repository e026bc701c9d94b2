"""The Telegram bot: the daemon's oversight commands from a phone.

Commands (``/help`` lists them):

``/status``, ``/positions``, ``/pnl``, ``/report``, ``/risk``
    Read-only views.
``/pause [reason]``, ``/resume``
    Stop and restart new entries.
``/approve ID``, ``/reject ID reason``
    Decide a pending approval (``warden approvals list`` shows the ids).
``/emergency_stop``
    Asks first; only ``/emergency_stop confirm`` or the confirmation button, from the
    same chat within :data:`CONFIRM_SECONDS` clock seconds, stops everything.

Only the configured chat ids are obeyed (in a configured group chat, a negative id,
every member is); a message from any other chat gets no answer
and is logged (``telegram_ignored``, with the chat, the user and the text), and
recorded nowhere else. Every command acts through an :class:`OversightLike` object
(:class:`tradewarden.ops.oversight.Oversight` in the daemon), called on a worker
thread (``asyncio.to_thread``) as ``telegram:<username>`` (or ``telegram:<chat id>``
when the user has no username). Replies longer than Telegram's 4096 characters go as
several messages, split at line breaks where possible.

The bot (python-telegram-bot's ``Application``, long polling ``getUpdates``) runs in a
thread of its own with its own asyncio loop (:meth:`TelegramBot.start`,
:meth:`TelegramBot.stop`), so the daemon's main loop stays synchronous. Commands sent
while the bot is not running are dropped when it starts (``deleteWebhook`` with
``drop_pending_updates``): an order sent hours ago is not carried out unseen.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import structlog

from tradewarden.engine.clock import Clock, WallClock
from tradewarden.ops.alerts import TELEGRAM_API, AlertSettings, split_message

__all__ = ["COMMANDS", "CONFIRM_SECONDS", "OversightLike", "TelegramBot"]

#: Clock seconds an emergency stop waits for its confirmation.
CONFIRM_SECONDS = 60
#: Command -> one-line description (``setMyCommands`` and ``/help``).
COMMANDS: dict[str, str] = {
    "status": "daemon, deployments, autonomy level, pending approvals",
    "positions": "open positions",
    "pnl": "profit and loss",
    "report": "today's report",
    "risk": "risk limits and how close they are",
    "pause": "pause new entries: /pause [reason]",
    "resume": "resume trading",
    "approve": "approve a pending decision: /approve ID",
    "reject": "reject a pending decision: /reject ID reason",
    "emergency_stop": "flatten and stop everything (asks to confirm)",
    "help": "this list",
}
_CONFIRM_DATA = "emergency_stop:confirm"


class OversightLike(Protocol):
    """What the bot needs of the daemon's oversight (each method returns a line for the person).

    ``by`` names who acted, e.g. ``telegram:alice``. Every method is synchronous and
    may block (it reads or writes the ledger); the bot calls it off its event loop.
    """

    def text_status(self) -> str:
        """Return the daemon's status as text."""

    def text_positions(self) -> str:
        """Return the open positions as text."""

    def text_pnl(self) -> str:
        """Return profit and loss as text."""

    def text_report(self) -> str:
        """Return the day's report as text."""

    def text_risk(self) -> str:
        """Return the risk limits and their use as text."""

    def pause(self, reason: str, by: str) -> str:
        """Pause new entries; return what happened."""

    def resume(self, by: str) -> str:
        """Resume trading; return what happened."""

    def approve(self, approval_id: int, by: str) -> str:
        """Approve a pending approval; return what happened."""

    def reject(self, approval_id: int, reason: str, by: str) -> str:
        """Reject a pending approval; return what happened."""

    def emergency_stop(self, by: str) -> str:
        """Stop everything; return what happened."""


class TelegramBot:
    """Serve the oversight commands to the configured Telegram chats.

    Parameters
    ----------
    oversight : OversightLike
        Carries the commands out.
    token : str
        The bot's token from @BotFather.
    chat_ids : iterable of int
        The only chats obeyed.
    base_url : str
        Bot API prefix, requests go to ``{base_url}{token}/{method}`` (default the
        official :data:`~tradewarden.ops.alerts.TELEGRAM_API`).
    clock : tradewarden.engine.clock.Clock, optional
        Times the emergency-stop confirmation (default the wall clock).
    poll_timeout : float
        Long-poll timeout of ``getUpdates``, seconds (default 10).
    log : structlog logger, optional
        Default ``structlog.get_logger("tradewarden.telegram")``.

    Raises
    ------
    ValueError
        An empty token or no chat id.
    """

    def __init__(self, oversight: OversightLike, *, token: str, chat_ids: Iterable[int],
                 base_url: str = TELEGRAM_API, clock: Clock | None = None,
                 poll_timeout: float = 10.0, log: Any = None) -> None:
        self.chat_ids = frozenset(int(c) for c in chat_ids)
        if not token:
            raise ValueError("telegram bot token: give the token from @BotFather")
        if not self.chat_ids:
            raise ValueError("telegram chat ids: give at least one chat to obey")
        self.oversight = oversight
        self.base_url = base_url
        self.clock = clock if clock is not None else WallClock()
        self.poll_timeout = poll_timeout
        self.log = log if log is not None else structlog.get_logger("tradewarden.telegram")
        self._token = token
        self._asked: dict[int, int] = {}          # chat id -> clock time of the question
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @classmethod
    def from_settings(cls, oversight: OversightLike, settings: AlertSettings, *,
                      clock: Clock | None = None, log: Any = None) -> TelegramBot | None:
        """Return a bot configured by ``[alerts]`` (token, chat ids, base URL), or ``None``.

        Returns
        -------
        TelegramBot or None
            ``None`` when ``telegram_bot_token`` is not set.
        """
        if settings.telegram_bot_token is None:
            return None
        return cls(oversight, token=settings.telegram_bot_token.get_secret_value(),
                   chat_ids=settings.telegram_chat_ids, base_url=settings.telegram_base_url,
                   clock=clock, log=log)

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while the bot's thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 30.0) -> None:
        """Start the bot's thread and wait until it polls for updates.

        Parameters
        ----------
        timeout : float
            Most seconds to wait for ``getMe``, ``deleteWebhook`` and ``setMyCommands``.

        Raises
        ------
        RuntimeError
            The bot is already running, could not start (e.g. the API refused the token:
            the message says why, without the token), or did not start in time.
        """
        if self.running:
            raise RuntimeError("telegram bot: already running")
        self._ready.clear()
        self._error = None
        self._thread = threading.Thread(target=self._thread_main, name="telegram-bot",
                                        daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop(timeout=5)
            raise RuntimeError(f"telegram bot: not polling after {timeout:g} s "
                               f"({self.base_url} unreachable?)")
        if self._error is not None:
            self._thread.join(timeout)
            raise RuntimeError(f"telegram bot: cannot start: {self._scrub(self._error)}")
        self.log.info("telegram_started", chats=sorted(self.chat_ids))

    def stop(self, timeout: float = 30.0) -> None:
        """Stop polling and end the bot's thread (at most ``timeout`` seconds); idempotent."""
        loop, event = self._loop, self._stop
        if loop is not None and event is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:              # the loop closed meanwhile
                pass
        if self._thread is not None:
            self._thread.join(timeout)
            if not self._thread.is_alive():
                self._thread = None
                self.log.info("telegram_stopped")

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 - reported to start() or logged
            if not self._ready.is_set():
                self._error = exc
                self._ready.set()
            else:
                self.log.error("telegram_failed", error=self._scrub(exc))

    async def _main(self) -> None:
        from telegram.ext import Application

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        app = (Application.builder().token(self._token).base_url(self.base_url)
               .get_updates_read_timeout(self.poll_timeout + 10).build())
        self._install(app)
        await app.initialize()
        try:
            await self._set_commands(app)
            await app.updater.start_polling(timeout=int(self.poll_timeout),
                                            drop_pending_updates=True,
                                            allowed_updates=["message", "callback_query"],
                                            error_callback=self._polling_error)
            await app.start()
            self._ready.set()
            await self._stop.wait()
            await app.updater.stop()
            await app.stop()
        finally:
            await app.shutdown()

    async def _set_commands(self, app: Any) -> None:
        from telegram import BotCommand

        try:
            await app.bot.set_my_commands([BotCommand(c, d[:256]) for c, d in COMMANDS.items()])
        except Exception as exc:  # noqa: BLE001 - the menu is a convenience; the bot works without it
            self.log.warning("telegram_set_commands_failed", error=self._scrub(exc))

    def _polling_error(self, exc: BaseException) -> None:
        self.log.warning("telegram_polling_error", error=self._scrub(exc))

    # -- handlers ------------------------------------------------------------------------

    def _install(self, app: Any) -> None:
        from telegram import Update
        from telegram.ext import (
            CallbackQueryHandler,
            CommandHandler,
            MessageHandler,
            TypeHandler,
        )
        from telegram.ext import filters as f

        app.add_handler(TypeHandler(Update, self._gate), group=-1)
        simple: dict[str, Callable[[], str]] = {
            "status": self.oversight.text_status, "positions": self.oversight.text_positions,
            "pnl": self.oversight.text_pnl, "report": self.oversight.text_report,
            "risk": self.oversight.text_risk}
        for name, fn in simple.items():
            app.add_handler(CommandHandler(name, self._viewer(name, fn)))
        app.add_handler(CommandHandler("pause", self._pause))
        app.add_handler(CommandHandler("resume", self._resume))
        app.add_handler(CommandHandler("approve", self._approve))
        app.add_handler(CommandHandler("reject", self._reject))
        app.add_handler(CommandHandler("emergency_stop", self._emergency_stop))
        app.add_handler(CommandHandler(["help", "start"], self._help))
        app.add_handler(CallbackQueryHandler(self._button, pattern=f"^{_CONFIRM_DATA}$"))
        app.add_handler(MessageHandler(f.COMMAND, self._unknown))
        app.add_error_handler(self._on_error)

    async def _gate(self, update: Any, context: Any) -> None:
        from telegram.ext import ApplicationHandlerStop

        chat = update.effective_chat
        if chat is not None and chat.id in self.chat_ids:
            return
        user = update.effective_user
        message = update.effective_message
        self.log.warning("telegram_ignored", chat_id=chat.id if chat else None,
                         user=(user.username or user.id) if user else None,
                         text=(message.text[:200] if message and message.text else None))
        raise ApplicationHandlerStop

    @staticmethod
    def _by(update: Any) -> str:
        user = update.effective_user
        if user is not None and user.username:
            return f"telegram:{user.username}"
        return f"telegram:{update.effective_chat.id}"

    async def _reply(self, update: Any, context: Any, text: str, **kwargs: Any) -> None:
        pieces = split_message(text or "(no answer)")
        for i, piece in enumerate(pieces):
            extra = kwargs if i == len(pieces) - 1 else {}
            await context.bot.send_message(chat_id=update.effective_chat.id, text=piece, **extra)

    async def _run(self, update: Any, context: Any, command: str, fn: Callable[..., str],
                   *args: Any) -> None:
        by = self._by(update)
        self.log.info("telegram_command", command=command, by=by, chat_id=update.effective_chat.id,
                      args=" ".join(context.args or ()) or None)
        try:
            text = await asyncio.to_thread(fn, *args)
        except Exception as exc:  # noqa: BLE001 - the person gets the error, the bot carries on
            self.log.error("telegram_command_failed", command=command, by=by,
                           error=f"{type(exc).__name__}: {exc}")
            text = f"error: /{command} failed: {exc}"
        await self._reply(update, context, str(text))

    def _viewer(self, name: str, fn: Callable[[], str]) -> Callable[[Any, Any], Any]:
        async def handler(update: Any, context: Any) -> None:
            await self._run(update, context, name, fn)
        return handler

    async def _pause(self, update: Any, context: Any) -> None:
        reason = " ".join(context.args or ()) or "paused from Telegram"
        await self._run(update, context, "pause", self.oversight.pause, reason, self._by(update))

    async def _resume(self, update: Any, context: Any) -> None:
        await self._run(update, context, "resume", self.oversight.resume, self._by(update))

    @staticmethod
    def _approval_id(args: list[str]) -> int | None:
        if not args:
            return None
        try:
            value = int(args[0].lstrip("#"))
        except ValueError:
            return None
        return value if value > 0 else None

    async def _approve(self, update: Any, context: Any) -> None:
        approval_id = self._approval_id(context.args or [])
        if approval_id is None or len(context.args) != 1:
            await self._reply(update, context, "usage: /approve ID (the approval's number)")
            return
        await self._run(update, context, "approve", self.oversight.approve, approval_id,
                        self._by(update))

    async def _reject(self, update: Any, context: Any) -> None:
        args = context.args or []
        approval_id = self._approval_id(args)
        reason = " ".join(args[1:]).strip()
        if approval_id is None or not reason:
            await self._reply(update, context, "usage: /reject ID reason (a reason is required)")
            return
        await self._run(update, context, "reject", self.oversight.reject, approval_id, reason,
                        self._by(update))

    async def _emergency_stop(self, update: Any, context: Any) -> None:
        from telegram import InlineKeyboardButton, InlineKeyboardMarkup

        chat_id = update.effective_chat.id
        args = [a.lower() for a in context.args or []]
        if args == ["confirm"]:
            await self._confirmed(update, context)
            return
        if args:
            await self._reply(update, context,
                              "usage: /emergency_stop, then /emergency_stop confirm")
            return
        self._asked[chat_id] = int(self.clock.now())
        self.log.warning("telegram_emergency_stop_asked", by=self._by(update), chat_id=chat_id)
        markup = InlineKeyboardMarkup([[InlineKeyboardButton("Confirm emergency stop",
                                                             callback_data=_CONFIRM_DATA)]])
        await self._reply(update, context,
                          "Emergency stop: cancel every open order, flatten every position and "
                          "stop trading. Press the button or send /emergency_stop confirm "
                          f"within {CONFIRM_SECONDS} s to go ahead.", reply_markup=markup)

    async def _button(self, update: Any, context: Any) -> None:
        await update.callback_query.answer()
        await self._confirmed(update, context)

    async def _confirmed(self, update: Any, context: Any) -> None:
        chat_id = update.effective_chat.id
        asked = self._asked.pop(chat_id, None)
        now = int(self.clock.now())
        if asked is None or now - asked > CONFIRM_SECONDS:
            await self._reply(update, context,
                              "No emergency stop is waiting for confirmation (it expires after "
                              f"{CONFIRM_SECONDS} s): send /emergency_stop first. Nothing done.")
            return
        await self._run(update, context, "emergency_stop", self.oversight.emergency_stop,
                        self._by(update))

    async def _help(self, update: Any, context: Any) -> None:
        lines = ["tradewarden commands:"] + [f"/{c} - {d}" for c, d in COMMANDS.items()]
        await self._reply(update, context, "\n".join(lines))

    async def _unknown(self, update: Any, context: Any) -> None:
        text = update.effective_message.text or ""
        await self._reply(update, context, f"unknown command {text.split()[0]!r}: see /help")

    async def _on_error(self, update: Any, context: Any) -> None:
        self.log.error("telegram_handler_error", error=self._scrub(context.error))

    def _scrub(self, exc: BaseException | None) -> str:
        text = f"{type(exc).__name__}: {exc}" if exc is not None else "unknown error"
        return text.replace(self._token, "***")
