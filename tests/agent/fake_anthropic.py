"""A loopback fake of Anthropic's Messages API for the reasoning tests (no internet).

:class:`FakeAnthropic` is a stdlib ``ThreadingHTTPServer`` on ``127.0.0.1`` (a port of
its own) that answers ``POST /v1/messages`` as the installed ``anthropic`` SDK (2.14)
calls it from ``client.messages.parse(..., output_format=Model)``:

* it CHECKS the request: the key (``x-api-key``, or ``authorization: Bearer <key>``,
  which is how SDK 2.14 sends an ``api_key``), ``anthropic-version`` (a version the
  API knows: ``2023-06-01`` or the SDK's ``ANTHROPIC_API_VERSION``), a JSON
  body with ``model`` (a string), ``max_tokens`` (a positive integer), ``messages``
  (non-empty, roles alternating ``user`` / ``assistant`` from ``user``, each content a
  string or a list of blocks with a ``type``), an optional ``system`` (a string or a
  list of ``text`` blocks), and the structured output the SDK sends for
  ``output_format`` (``output_config.format`` = ``{"type": "json_schema", "schema":
  {...}}``, an object schema). A wrong request gets Anthropic's documented error body,
  ``{"type": "error", "error": {"type": "invalid_request_error", "message": ...},
  "request_id": ...}`` with status 400 (401 ``authentication_error`` without a key),
  and is recorded with its ``problem``.
* it answers from a script (:meth:`FakeAnthropic.script`), in order, then from the
  ``default`` responder: a valid decision (:func:`decision`), text that is not the
  schema's JSON (:func:`text`), a refusal (``stop_reason: "refusal"``,
  :func:`refusal`), an error status with Anthropic's error types and the headers the
  SDK's retry loop reads (:func:`error`: 429 ``rate_limit_error`` with
  ``retry-after``, 529 ``overloaded_error``; ``x-should-retry`` when given), or a reply
  held back (:func:`hold`) until :meth:`FakeAnthropic.release` or a time limit (past the
  client's timeout), then sent. Usage figures, cache read and write tokens included,
  and thinking blocks ride on any message reply.
* it records every request (:attr:`FakeAnthropic.requests`: headers, body, the reply
  it got) and an ordered log of what happened (:attr:`FakeAnthropic.log`) so tests can
  assert on the order of events rather than on durations.

The SDK's retry loop (``anthropic/_base_client.py``): it retries 408, 409, 429 and
every status >= 500 (so 529), and connection errors and timeouts, at most
``max_retries`` times; ``x-should-retry: true|false`` overrides the status; the wait is
``retry-after-ms``, else ``retry-after`` (seconds, or an HTTP date), taken as given
(up to 4,294,967 s) when > 0, else 0.5 s x 2^n (at most 8 s) with jitter.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from anthropic._constants import ANTHROPIC_API_VERSION

#: The ``anthropic-version`` values the fake accepts: the documented one and the one
#: the installed SDK sends.
API_VERSIONS = frozenset({"2023-06-01", ANTHROPIC_API_VERSION})


@dataclass
class Reply:
    """One scripted answer.

    ``kind``: ``message`` (200 with ``content`` blocks and ``stop_reason``),
    ``error`` (``status`` with Anthropic's error body), ``hold`` (wait for
    :meth:`FakeAnthropic.release` or ``hold_seconds``, then answer ``then``).
    """

    kind: str
    content: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str = "end_turn"
    usage: dict[str, Any] = field(default_factory=dict)
    status: int = 200
    error_type: str = ""
    message: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    hold_seconds: float = 0.0
    then: Reply | None = None
    label: str = ""


def _usage(usage: dict[str, Any] | None) -> dict[str, Any]:
    base = {"input_tokens": 1200, "output_tokens": 180, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0, "service_tier": "standard"}
    base.update(usage or {})
    return base


def decision(output: dict[str, Any] | None = None, *, usage: dict[str, Any] | None = None,
             thinking: str | None = None, label: str = "decision") -> Reply:
    """A valid answer: the decision JSON as the text block (default: execute, 0.8)."""
    body = output if output is not None else {
        "action": "EXECUTE_TRADES", "target_symbols": ["BTC-USD"], "confidence": 0.8,
        "reasoning": "the breakout holds on rising volume", "key_factors": ["breakout"],
        "risks_considered": ["a false breakout"]}
    blocks = []
    if thinking is not None:
        blocks.append({"type": "thinking", "thinking": thinking, "signature": "sig-fake"})
    blocks.append({"type": "text", "text": json.dumps(body)})
    return Reply("message", content=blocks, usage=_usage(usage), label=label)


def text(body: str, *, usage: dict[str, Any] | None = None, label: str = "text") -> Reply:
    """A 200 answer whose text is ``body`` as given (malformed JSON, prose, ...)."""
    return Reply("message", content=[{"type": "text", "text": body}], usage=_usage(usage),
                 label=label)


def refusal(body: str = "I can't help with that request.", *, label: str = "refusal") -> Reply:
    """A refusal: ``stop_reason: "refusal"`` (what the API answers when it declines)."""
    return Reply("message", content=[{"type": "text", "text": body}], stop_reason="refusal",
                 usage=_usage({"output_tokens": 12}), label=label)


def error(status: int, error_type: str, message: str, headers: dict[str, str] | None = None,
          *, label: str | None = None) -> Reply:
    """An error status with Anthropic's body (``rate_limit_error`` 429,
    ``overloaded_error`` 529, ``api_error`` 500, ...) and ``headers`` (``retry-after``,
    ``retry-after-ms``, ``x-should-retry``)."""
    return Reply("error", status=status, error_type=error_type, message=message,
                 headers=dict(headers or {}), label=label or error_type)


def hold(seconds: float, then: Reply | None = None, *, label: str = "hold") -> Reply:
    """Hold the answer back (past the client's timeout) for at most ``seconds`` or until
    :meth:`FakeAnthropic.release`, then send ``then`` (default a valid decision) to
    whoever still listens."""
    return Reply("hold", hold_seconds=seconds, then=then or decision(), label=label)


@dataclass
class Received:
    """A request as the fake saw it."""

    n: int
    path: str
    headers: dict[str, str]
    body: Any
    problem: str | None = None
    reply: str = ""

    @property
    def user_text(self) -> str:
        """The text of the conversation's messages, joined (for routing and asserts)."""
        out = []
        for m in (self.body or {}).get("messages", []) if isinstance(self.body, dict) else []:
            c = m.get("content")
            if isinstance(c, str):
                out.append(c)
            elif isinstance(c, list):
                out.extend(b.get("text", "") for b in c if isinstance(b, dict))
        return "\n".join(out)


def check_request(headers: dict[str, str], body: Any) -> tuple[int, str, str] | None:
    """Return ``(status, error type, message)`` for a request the real API would refuse,
    or ``None`` when its shape is right."""
    bearer = headers.get("authorization", "")
    if not headers.get("x-api-key") and not (bearer.startswith("Bearer ") and bearer[7:].strip()):
        return 401, "authentication_error", "x-api-key header is required"
    if headers.get("anthropic-version") not in API_VERSIONS:
        return 400, "invalid_request_error", (
            f"anthropic-version: {headers.get('anthropic-version')!r} is not a known version")
    if not isinstance(body, dict):
        return 400, "invalid_request_error", "the body must be a JSON object"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return 400, "invalid_request_error", "model: Field required"
    mt = body.get("max_tokens")
    if isinstance(mt, bool) or not isinstance(mt, int) or mt < 1:
        return 400, "invalid_request_error", "max_tokens: must be a positive integer"
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        return 400, "invalid_request_error", "messages: at least one message is required"
    for i, m in enumerate(msgs):
        want = "user" if i % 2 == 0 else "assistant"
        if not isinstance(m, dict) or m.get("role") != want:
            return 400, "invalid_request_error", (
                f"messages.{i}.role: roles must alternate between \"user\" and \"assistant\", "
                f"starting with \"user\"")
        c = m.get("content")
        if isinstance(c, str):
            if not c:
                return 400, "invalid_request_error", f"messages.{i}: content is empty"
        elif not isinstance(c, list) or not c or not all(
                isinstance(b, dict) and isinstance(b.get("type"), str) for b in c):
            return 400, "invalid_request_error", f"messages.{i}.content: blocks need a type"
    if msgs[-1].get("role") != "user":
        return 400, "invalid_request_error", "the last message must be the user's"
    system = body.get("system")
    if system is not None and not isinstance(system, str) and not (
            isinstance(system, list) and all(isinstance(b, dict) and b.get("type") == "text"
                                             and isinstance(b.get("text"), str) for b in system)):
        return 400, "invalid_request_error", "system: a string or a list of text blocks"
    fmt = (body.get("output_config") or {}).get("format")
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" \
            or not isinstance(fmt.get("schema"), dict) or fmt["schema"].get("type") != "object":
        return 400, "invalid_request_error", (
            "output_config.format: a json_schema format with an object schema is required")
    return None


class FakeAnthropic:
    """The loopback Messages API (see the module docstring).

    Parameters
    ----------
    default : callable, optional
        ``default(received) -> Reply`` once the script is used up (default: the
        :func:`decision` default, an ``EXECUTE_TRADES`` of BTC-USD at 0.8).
    """

    def __init__(self, default: Callable[[Received], Reply] | None = None) -> None:
        self.default = default or (lambda _r: decision())
        self.requests: list[Received] = []
        self.log: list[tuple[str, int, str]] = []    # (what, request n, label), in order
        self._script: list[Reply] = []
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._n = itertools.count(1)
        self._ids = itertools.count(1)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:      # quiet
                pass

            def do_POST(self) -> None:
                fake._handle(self)

            def do_GET(self) -> None:
                fake._send(self, 404, {"type": "error", "error": {
                    "type": "not_found_error", "message": f"{self.path}: not found"}})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="fake-anthropic", daemon=True)

    # -- control ----------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` (what ``base_url`` / ``ANTHROPIC_BASE_URL`` take)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeAnthropic:
        """Serve in a daemon thread; return self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release held answers and stop serving."""
        self._released.set()
        self._server.shutdown()
        self._server.server_close()

    def script(self, *replies: Reply) -> None:
        """Append ``replies`` to the script (answered in order, one per request)."""
        with self._lock:
            self._script.extend(replies)

    def release(self) -> None:
        """Let every held answer go now."""
        with self._lock:
            self.log.append(("released", 0, ""))
        self._released.set()

    def pending(self) -> int:
        """Scripted replies not used yet."""
        with self._lock:
            return len(self._script)

    # -- serving ----------------------------------------------------------------------
    def _next(self, rec: Received) -> Reply:
        with self._lock:
            if self._script:
                return self._script.pop(0)
        return self.default(rec)

    def _send(self, h: BaseHTTPRequestHandler, status: int, body: dict[str, Any],
              headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        try:
            h.send_response(status)
            h.send_header("content-type", "application/json")
            h.send_header("content-length", str(len(data)))
            h.send_header("request-id", f"req_fake_{next(self._ids)}")
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)
            h.wfile.flush()
        except OSError:                     # the client gave up (its timeout): nobody listens
            pass

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("content-length") or 0)
        raw = h.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in h.headers.items()}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        n = next(self._n)
        rec = Received(n, h.path, headers, body)
        with self._lock:
            self.requests.append(rec)
            self.log.append(("received", n, ""))
        if h.command != "POST" or h.path.split("?")[0] != "/v1/messages":
            rec.problem = f"{h.path}: not found"
            self._send(h, 404, {"type": "error", "error": {"type": "not_found_error",
                                                           "message": rec.problem}})
            return
        bad = check_request(headers, body)
        if bad is not None:
            status, kind, msg = bad
            rec.problem, rec.reply = msg, kind
            self._send(h, status, {"type": "error", "error": {"type": kind, "message": msg},
                                   "request_id": f"req_fake_bad_{n}"})
            return
        reply = self._next(rec)
        if reply.kind == "hold":
            with self._lock:
                self.log.append(("holding", n, reply.label))
            self._released.wait(reply.hold_seconds)
            reply = reply.then or decision()
        rec.reply = reply.label
        with self._lock:
            self.log.append(("answered", n, reply.label))
        if reply.kind == "error":
            self._send(h, reply.status, {
                "type": "error", "error": {"type": reply.error_type, "message": reply.message},
                "request_id": f"req_fake_{n}"}, reply.headers)
            return
        self._send(h, 200, {
            "id": f"msg_fake_{n}", "type": "message", "role": "assistant",
            "model": body["model"], "content": reply.content, "stop_reason": reply.stop_reason,
            "stop_sequence": None, "usage": reply.usage}, reply.headers)
