"""Loopback receivers for the alert tests: an SMTP server (aiosmtpd), a webhook receiver
(http.server, optionally HTTPS), both with certificates from a throw-away test CA
(``trustme``) when TLS is asked for, and a port where nothing listens."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


def free_port() -> int:
    """Return a loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TestCA:
    """A throw-away CA, its certificate for 127.0.0.1/localhost, and the CA file clients trust."""

    __test__ = False

    def __init__(self, directory: Path) -> None:
        self.ca = trustme.CA()
        self.cert = self.ca.issue_cert("127.0.0.1", "localhost")
        self.ca_file = str(directory / "test-ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.cert.configure_cert(context)
        return context


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []
        self.hold = threading.Event()
        self.hold.set()                      # cleared: DATA waits until it is set again
        self.logins: list[str] = []
        self.tls: list[bool] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        import asyncio

        while not self.hold.is_set():
            await asyncio.sleep(0.01)
        self.tls.append(server.transport.get_extra_info("ssl_object") is not None)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                              message_from_bytes(envelope.original_content)))
        return "250 Message accepted for delivery"


class SMTPServer:
    """aiosmtpd on 127.0.0.1 (a free port). Given a ``ca`` it requires STARTTLS, or with
    ``implicit`` speaks TLS from the first byte; given a ``user`` it requires ``AUTH``
    with ``user``/``password``. Mail lands in :attr:`messages`."""

    def __init__(self, *, ca: TestCA | None = None, user: str | None = None,
                 password: str | None = None, implicit: bool = False) -> None:
        self.inbox = _Inbox()
        self.port = free_port()
        kwargs: dict[str, Any] = {}
        if ca is not None and implicit:
            kwargs.update(ssl_context=ca.server_context())
        elif ca is not None:
            kwargs.update(tls_context=ca.server_context(), require_starttls=True)
        if user is not None:
            def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                              auth_data: Any) -> AuthResult:
                ok = (auth_data.login.decode() == user
                      and auth_data.password.decode() == password)
                if ok:
                    self.inbox.logins.append(user)
                return AuthResult(success=ok)
            kwargs.update(authenticator=authenticator, auth_required=True)
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port, **kwargs)

    @property
    def messages(self) -> list[tuple[str, list[str], Message]]:
        return self.inbox.messages

    def start(self) -> SMTPServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.inbox.hold.set()
        self.controller.stop()


class WebhookReceiver:
    """A Slack-style incoming webhook on 127.0.0.1: records each POSTed JSON body in
    :attr:`posts` and answers :attr:`status` (200 ``ok`` by default)."""

    def __init__(self, *, ca: TestCA | None = None) -> None:
        self.posts: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.paths.append(self.path)
                receiver.posts.append(json.loads(body))
                answer = b"ok" if receiver.status < 300 else b"internal_error"
                self.send_response(receiver.status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.scheme = "http"
        if ca is not None:
            self.httpd.socket = ca.server_context().wrap_socket(self.httpd.socket,
                                                                server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"{self.scheme}://{host}:{port}/services/T000/B000/XXXX"

    def start(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
