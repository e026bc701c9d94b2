"""A loopback fake of the Telegram Bot API for the alert and bot tests.

The wire format (https://core.telegram.org/bots/api#making-requests): ``POST
{base_url}{token}/{method}`` with a JSON or form body (python-telegram-bot sends
``application/x-www-form-urlencoded`` with every non-string value JSON-encoded), answered
``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code": 4xx, "description": ...}``.

Methods: ``getMe``, ``getUpdates`` (``offset`` confirms the updates before it; a long
poll waits at most :attr:`FakeTelegram.poll_cap` seconds, so tests stay fast),
``deleteWebhook`` (``drop_pending_updates``), ``setMyCommands``, ``sendMessage``,
``answerCallbackQuery``, ``close``, ``logOut``; anything else gets 404 as the real API
answers an unknown method. A wrong token gets 401 ``Unauthorized``.

A test injects updates with :meth:`FakeTelegram.command` (a message with its
``bot_command`` entity) and :meth:`FakeTelegram.press` (a callback-query button press),
and reads what the bot sent from :attr:`FakeTelegram.sent` (or waits with
:meth:`FakeTelegram.wait_sent`).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

#: Form fields that are plain text, never JSON-decoded.
_TEXT_FIELDS = {"text", "parse_mode", "callback_query_id", "url", "description",
                "short_description", "language_code", "secret_token"}


class FakeTelegram:
    """The Bot API on 127.0.0.1 (a free port) in a daemon thread.

    Parameters
    ----------
    token : str
        The one token accepted.
    poll_cap : float
        Longest wait of a ``getUpdates`` long poll, seconds.
    """

    BOT_ID = 777000111

    def __init__(self, token: str = "123456:TEST-token", poll_cap: float = 0.3) -> None:
        self.token = token
        self.poll_cap = poll_cap
        #: ``(method, params)`` of every request, in order.
        self.requests: list[tuple[str, dict[str, Any]]] = []
        #: Messages the bot sent: ``{"chat_id", "text", "reply_markup", "message_id"}``.
        self.sent: list[dict[str, Any]] = []
        #: chat id -> ``(error_code, description)`` answered to sendMessage for that chat.
        self.fail_chats: dict[int, tuple[int, str]] = {}
        self.commands: list[dict[str, Any]] = []
        self._updates: list[dict[str, Any]] = []
        self._next_update = 1
        self._next_message = 1
        self._cond = threading.Condition()
        self._closing = False
        handler = type("Handler", (_Handler,), {"fake": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def base_url(self) -> str:
        """The ``base_url`` to give python-telegram-bot (requests go to ``{it}{token}/...``)."""
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/bot"

    def start(self) -> FakeTelegram:
        self.thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    # -- what a test does ----------------------------------------------------------------

    def _user(self, chat_id: int, username: str | None) -> dict[str, Any]:
        user: dict[str, Any] = {"id": chat_id, "is_bot": False, "first_name": "Tester"}
        if username:
            user["username"] = username
        return user

    def _push(self, update: dict[str, Any]) -> int:
        with self._cond:
            update["update_id"] = self._next_update
            self._next_update += 1
            self._updates.append(update)
            self._cond.notify_all()
            return update["update_id"]

    def command(self, chat_id: int, text: str, username: str | None = "alice") -> int:
        """Queue a private-chat message ``text`` (starting with ``/command``); return its update id."""
        command = text.split()[0]
        with self._cond:
            message_id = self._next_message
            self._next_message += 1
        return self._push({"message": {
            "message_id": message_id, "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"}, "from": self._user(chat_id, username),
            "text": text,
            "entities": [{"type": "bot_command", "offset": 0, "length": len(command)}]}})

    def press(self, chat_id: int, data: str, username: str | None = "alice") -> int:
        """Queue a press of an inline button carrying ``data`` under the bot's last message to ``chat_id``."""
        last = [m for m in self.sent if m["chat_id"] == chat_id][-1]
        return self._push({"callback_query": {
            "id": f"cq{self._next_update}", "from": self._user(chat_id, username),
            "chat_instance": str(chat_id), "data": data,
            "message": self._message(last)}})

    def texts(self, chat_id: int) -> list[str]:
        """Return the texts the bot sent to ``chat_id``, in order."""
        with self._cond:
            return [m["text"] for m in self.sent if m["chat_id"] == chat_id]

    def wait_sent(self, count: int, chat_id: int | None = None, timeout: float = 5.0
                  ) -> list[dict[str, Any]]:
        """Wait until at least ``count`` messages were sent (to ``chat_id`` if given); return them.

        Raises
        ------
        AssertionError
            Not enough messages within ``timeout`` seconds.
        """
        def mine() -> list[dict[str, Any]]:
            return [m for m in self.sent if chat_id is None or m["chat_id"] == chat_id]

        with self._cond:
            if not self._cond.wait_for(lambda: len(mine()) >= count, timeout):
                raise AssertionError(f"expected {count} messages, got {mine()!r}")
            return mine()

    def wait_consumed(self, update_id: int, timeout: float = 5.0) -> None:
        """Wait until the bot confirmed ``update_id`` (a later ``getUpdates`` offset)."""
        with self._cond:
            if not self._cond.wait_for(
                    lambda: not any(u["update_id"] <= update_id for u in self._updates), timeout):
                raise AssertionError(f"update {update_id} not consumed")

    # -- the API -------------------------------------------------------------------------

    def _message(self, m: dict[str, Any]) -> dict[str, Any]:
        out = {"message_id": m["message_id"], "date": m["date"],
               "chat": {"id": m["chat_id"], "type": "private"},
               "from": {"id": self.BOT_ID, "is_bot": True, "first_name": "Warden",
                        "username": "warden_test_bot"},
               "text": m["text"]}
        if m.get("reply_markup"):
            out["reply_markup"] = m["reply_markup"]
        return out

    def call(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Answer one API call: ``(HTTP status, JSON body)``."""
        with self._cond:
            self.requests.append((method, params))
        name = method.lower()
        if name == "getme":
            return _ok({"id": self.BOT_ID, "is_bot": True, "first_name": "Warden",
                        "username": "warden_test_bot", "can_join_groups": False,
                        "can_read_all_group_messages": False, "supports_inline_queries": False})
        if name == "getupdates":
            return _ok(self._get_updates(params))
        if name == "deletewebhook":
            if params.get("drop_pending_updates"):
                with self._cond:
                    self._updates.clear()
                    self._cond.notify_all()
            return _ok(True)
        if name == "setmycommands":
            with self._cond:
                self.commands = list(params.get("commands") or [])
            return _ok(True)
        if name in ("answercallbackquery", "close", "logout"):
            return _ok(True)
        if name == "sendmessage":
            try:
                chat_id = int(params["chat_id"])
            except (KeyError, TypeError, ValueError):
                return _error(400, "Bad Request: chat_id is empty")
            text = params.get("text") or ""
            if not text.strip():
                return _error(400, "Bad Request: message text is empty")
            if len(text) > 4096:
                return _error(400, "Bad Request: message is too long")
            if chat_id in self.fail_chats:
                return _error(*self.fail_chats[chat_id])
            markup = params.get("reply_markup")
            if isinstance(markup, str):
                markup = json.loads(markup)
            with self._cond:
                m = {"chat_id": chat_id, "text": text, "reply_markup": markup,
                     "message_id": self._next_message, "date": int(time.time())}
                self._next_message += 1
                self.sent.append(m)
                self._cond.notify_all()
            return _ok(self._message(m))
        return _error(404, "Not Found")

    def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 100)
        wait = min(float(params.get("timeout") or 0), self.poll_cap)
        deadline = time.monotonic() + wait
        with self._cond:
            if offset:
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
                self._cond.notify_all()
            while not self._updates and not self._closing:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return [dict(u) for u in self._updates[:limit]]


def _ok(result: Any) -> tuple[int, dict[str, Any]]:
    return 200, {"ok": True, "result": result}


def _error(code: int, description: str) -> tuple[int, dict[str, Any]]:
    return code, {"ok": False, "error_code": code, "description": description}


def _decode_form(body: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, values in parse_qs(body.decode(), keep_blank_values=True).items():
        value = values[-1]
        if key in _TEXT_FIELDS:
            out[key] = value
            continue
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


class _Handler(BaseHTTPRequestHandler):
    fake: FakeTelegram
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True       # keep-alive: no 40 ms delayed-ACK stall per request

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        kind = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if kind == "application/json":
            params = json.loads(body or b"{}")
        elif kind == "application/x-www-form-urlencoded" or not body:
            params = _decode_form(body)
        else:
            self._send(*_error(400, f"Bad Request: unsupported content type {kind}"))
            return
        prefix = f"/bot{self.fake.token}/"
        if not self.path.startswith(prefix):
            self._send(*_error(401, "Unauthorized"))
            return
        self._send(*self.fake.call(self.path[len(prefix):].split("?")[0], params))

    do_GET = do_POST

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        try:
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):   # the client gave up (bot stopping)
            self.close_connection = True
