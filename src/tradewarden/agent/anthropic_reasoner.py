"""Claude as the reasoning engine, off the bar loop, failing towards a person.

:class:`AnthropicReasoner` implements the
:class:`~tradewarden.agent.reasoning.ReasoningEngine` protocol with the official
``anthropic`` SDK: the event and its whole context are serialised by
:mod:`tradewarden.agent.prompting`, sent to the Messages API with
``client.messages.parse(..., output_format=DecisionOutput)`` (the SDK turns the
pydantic model into the request's ``output_config.format`` JSON schema and validates
the answer's text against the model), and the answer is the
:class:`~tradewarden.agent.reasoning.DecisionOutput`. The key and the base URL come
from the SDK's own ``ANTHROPIC_API_KEY`` and ``ANTHROPIC_BASE_URL``.

How a decision is made
----------------------
The engine asks the governor from inside its bar loop, and the daemon steps every
deployment in one thread, so a model call must never hold that thread for long::

    decide(event, context)                         (the bar loop's thread)
      record late answers that came in since       (never acted on)
      CostGuard.allow(ts)? ── no ──▶ a ``capped`` call row, MONITOR_ONLY
      start the HTTP call on a worker thread ──▶  client.messages.parse (SDK retries:
      wait for it until ``deadline_seconds``         ``max_retries``, each request
        │                                            ``timeout_seconds``; a retry-after
        │                                            beyond the deadline is not slept)
        ├ no answer by the deadline ─▶ a ``timeout`` row, alert, recommend-only; the
        │                               late answer is recorded at the next decision,
        │                               never used
        ├ ok ───────────────────────▶ the decision (gated next by the governor)
        ├ invalid (schema, JSON) ───▶ ONE retry carrying the validation error (the cap
        │                               checked again), then MONITOR_ONLY
        └ refusal, API error, timeout ▶ alert ``reasoning_fallback``, recommend-only

Recommend-only is L1's behaviour for that one decision: the answer is a
``REQUEST_HUMAN_REVIEW`` (confidence 0) carrying what the rules would have done
(:class:`~tradewarden.agent.reasoning.RulesReasoner`), which every level's gate queues
for a person (an entry or exit becomes a pending approval). The next event calls the
model again. The worker thread only talks HTTP; every ledger write (the call rows, the
cost check) happens on the caller's thread, between the engine's own writes, so the
ledger's single-writer rules hold. The longest a hung provider holds the loop is
``deadline_seconds`` per decision; the HTTP call itself is bounded by the SDK's
``timeout_seconds`` x (``max_retries`` + 1) plus its back-off (0.5 s x 2^n, at most
8 s, or a ``retry-after`` that fits before the deadline: a longer one fails the call at
once instead of sleeping, see :class:`RetryWaitBound`).

Every call (the retry and a capped call included) is a ``reasoning_calls`` row with its
cost (:func:`tradewarden.agent.calls.record_call`): the full request (system prompt,
messages, the serialised context, model and limits), the full response (text and
thinking blocks, every HTTP attempt the SDK made: status, request id, retry-after),
the parse status, tokens and latency. The governor links them to the
``agent_decisions`` row it records and notes what was done (:meth:`AnthropicReasoner.settle`).
"""

from __future__ import annotations

import email.utils
import itertools
import logging
import os
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

import anthropic
import pydantic
from anthropic import Middleware

from tradewarden.agent import calls as call_records
from tradewarden.agent.costs import CostGuard, Usage
from tradewarden.agent.prompting import (
    SYSTEM_PROMPT,
    decision_request,
    request_document,
    retry_request,
)
from tradewarden.agent.reasoning import (
    Action,
    DecisionOutput,
    ReasoningContext,
    ReasoningEngine,
    ReasoningEvent,
    RulesReasoner,
)
from tradewarden.ledger import LedgerError

__all__ = ["AnthropicReasoner", "RetryWaitBound", "RetryWaitTooLong", "monitor_only",
           "reasoner_from_settings", "recommend_only"]

log = logging.getLogger(__name__)

PROVIDER = "anthropic"
#: The alert trigger of a decision the model did not make.
FALLBACK_TRIGGER = "reasoning_fallback"
#: What became of a call's answer (``reasoning_calls.outcome``), by the governor's verdict.
VERDICT_OUTCOMES = {"execute": "executed", "queue": "queued", "monitor": "monitor_only",
                    "refuse": "refused_by_gate"}
_RETRYABLE = frozenset({408, 409, 429})


class RetryWaitTooLong(Exception):
    """The API asked for a wait (``retry-after``) that does not fit before the deadline."""

    def __init__(self, status: int, seconds: float, body: Any) -> None:
        super().__init__(f"HTTP {status}: the API asks to retry after {seconds:g} s, beyond the "
                         f"decision's deadline")
        self.status, self.seconds, self.body = status, seconds, body


def _retry_after(headers: Any) -> float | None:
    """The wait the SDK would honour, seconds: ``retry-after-ms``, else ``retry-after``
    (seconds or an HTTP date), as ``anthropic/_base_client.py`` reads them."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        return None if parsed is None else float(email.utils.mktime_tz(parsed) - time.time())


def _sdk_retries(status: int, headers: Any) -> bool:
    """Whether the SDK's retry loop retries this status (its ``_should_retry``)."""
    hint = headers.get("x-should-retry")
    if hint in ("true", "false"):
        return hint == "true"
    return status in _RETRYABLE or status >= 500


class _Call(threading.local):
    """The HTTP attempts of the call in progress on this thread."""

    attempts: list[dict[str, Any]] | None = None
    last_body: Any = None
    deadline: float = float("inf")


class RetryWaitBound(Middleware):
    """SDK middleware: record every HTTP attempt, and refuse a retry wait past the deadline.

    The SDK sleeps as long as a ``retry-after`` (or ``retry-after-ms``) header asks,
    up to 4,294,967 s. For a response it would retry (429, 408, 409, >= 500, or
    ``x-should-retry: true``), a wait that ends after the current call's deadline
    raises :class:`RetryWaitTooLong` instead (middleware exceptions are not retried),
    so the call fails at once and the decision goes to a person.
    """

    def __init__(self) -> None:
        self.current = _Call()

    def handle(self, request: Any, call_next: Any) -> Any:
        """Run one attempt; record it; raise :class:`RetryWaitTooLong` for a wait past
        the deadline (see the class docstring)."""
        cur = self.current
        started = time.monotonic()
        try:
            response = call_next(request)
        except Exception as exc:
            if cur.attempts is not None:
                cur.attempts.append({"error": type(exc).__name__,
                                     "ms": round((time.monotonic() - started) * 1000)})
            raise
        http = response.http_response
        http.read()
        try:
            body = http.json()
        except ValueError:
            body = {"text": http.text[:4000]}
        wait = _retry_after(http.headers)
        if cur.attempts is not None:
            cur.last_body = body
            cur.attempts.append({"status": response.status_code,
                                 "request_id": http.headers.get("request-id"),
                                 "retry_after": wait,
                                 "ms": round((time.monotonic() - started) * 1000)})
        if (response.status_code >= 400 and wait is not None and wait > 0
                and _sdk_retries(response.status_code, http.headers)
                and time.monotonic() + wait > cur.deadline):
            raise RetryWaitTooLong(response.status_code, wait, body)
        return response


@dataclass
class _Answer:
    """What one model call came back with (built on the worker thread)."""

    status: str                           # ok, invalid, refused, error, timeout
    response: dict[str, Any] | None
    parsed: DecisionOutput | None = None
    error: str | None = None
    usage: Usage | None = None
    latency_ms: int = 0
    text: str = ""


@dataclass
class _Late:
    """A call still running when its decision's deadline passed."""

    future: Future
    cycle: str
    attempt: int
    request: dict[str, Any]
    ts: int
    level: int
    decision_id: int | None = None


@dataclass
class _Cycle:
    """The calls of the decision in progress: ``(call id, outcome)``; ``used`` is the
    call whose answer became the decision."""

    name: str
    calls: list[tuple[int, str]] = field(default_factory=list)
    used: int | None = None


def _validation_text(exc: pydantic.ValidationError) -> str:
    parts = []
    for e in exc.errors(include_url=False):
        loc = ".".join(str(x) for x in e.get("loc", ())) or "answer"
        parts.append(f"{loc}: {e.get('msg')}")
    return "; ".join(parts)[:2000]


def _api_error(exc: anthropic.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    err = body.get("error") if isinstance(body.get("error"), dict) else {}
    kind = err.get("type") or type(exc).__name__
    msg = err.get("message") or str(exc)
    return f"HTTP {exc.status_code} {kind}: {msg}"[:2000]


def recommend_only(event: ReasoningEvent, context: ReasoningContext, why: str) -> DecisionOutput:
    """Return the recommend-only decision of an event the model did not decide.

    A ``REQUEST_HUMAN_REVIEW`` of confidence 0 (every level's gate queues it for a
    person) that carries what :class:`RulesReasoner` would have done.

    Parameters
    ----------
    event : ReasoningEvent
    context : ReasoningContext
    why : str
        Why the model did not decide (refusal, API error, timeout, ...).

    Returns
    -------
    DecisionOutput
    """
    rec = RulesReasoner().decide(event, context)
    reason = (f"{FALLBACK_TRIGGER}: {why}. The model did not decide; the rules recommend "
              f"{rec.action.value} ({rec.reasoning}); a person decides.")
    return DecisionOutput(action=Action.REQUEST_HUMAN_REVIEW, target_symbols=rec.target_symbols,
                          target_position_ids=rec.target_position_ids, confidence=0.0,
                          reasoning=reason, key_factors=(*rec.key_factors, f"model: {why}"),
                          risks_considered=rec.risks_considered, escalation_reason=reason,
                          escalation_urgency="medium")


def monitor_only(event: ReasoningEvent, why: str) -> DecisionOutput:
    """Return a ``MONITOR_ONLY`` decision of confidence 0 that says ``why`` (an invalid
    answer after its retry, the daily cost cap).

    Parameters
    ----------
    event : ReasoningEvent
    why : str

    Returns
    -------
    DecisionOutput
    """
    return DecisionOutput(action=Action.MONITOR_ONLY, confidence=0.0,
                          target_symbols=(event.symbol,) if event.symbol else (),
                          reasoning=f"monitor only: {why}", key_factors=(f"model: {why}",))


class AnthropicReasoner:
    """Decide with Claude through the Messages API (see the module docstring).

    Parameters
    ----------
    settings : ReasoningSettings
        ``model``, ``max_tokens``, ``timeout_seconds`` (per HTTP request),
        ``max_retries`` (the SDK's), ``deadline_seconds`` (the whole decision, the
        longest the caller waits), ``prices`` and the daily cap.
    ledger : Ledger
        Where the calls and their costs are recorded (and the day's spend read).
    deployment_id : str, optional
        Recorded with every call.
    alerter : Alerter, optional
        Gets the ``reasoning_fallback`` alerts and the cost cap's.
    base_url, api_key : str, optional
        Override the SDK's ``ANTHROPIC_BASE_URL`` / ``ANTHROPIC_API_KEY`` (tests).
    guard : CostGuard, optional
        Default ``CostGuard(ledger, settings, alerter=alerter)``.

    Notes
    -----
    Not thread-safe: one caller thread per reasoner (a deployment's, which the daemon
    runs in its one thread). Each call runs on a daemon worker thread of its own.
    """

    name = PROVIDER

    def __init__(self, settings: Any, ledger: Any, *, deployment_id: str | None = None,
                 alerter: Any = None, base_url: str | None = None, api_key: str | None = None,
                 guard: CostGuard | None = None) -> None:
        self.settings = settings
        self.ledger = ledger
        self.deployment_id = deployment_id
        self.alerter = alerter
        self.guard = guard or CostGuard(ledger, settings, alerter=alerter)
        self._bound = RetryWaitBound()
        self.client = anthropic.Anthropic(api_key=api_key, base_url=base_url,
                                          max_retries=settings.max_retries,
                                          timeout=settings.timeout_seconds,
                                          middleware=[self._bound])
        self._seq = itertools.count(1)
        self._late: list[_Late] = []
        self._cycle: _Cycle | None = None
        self._system = [{"type": "text", "text": SYSTEM_PROMPT,
                         "cache_control": {"type": "ephemeral"}}]

    # -- the protocol ---------------------------------------------------------------------
    def decide(self, event: ReasoningEvent, context: ReasoningContext) -> DecisionOutput:
        """Return the model's decision about ``event``, or the fallback (see the module
        docstring); waits at most ``deadline_seconds``.

        Parameters
        ----------
        event : ReasoningEvent
        context : ReasoningContext

        Returns
        -------
        DecisionOutput
            The model's; ``MONITOR_ONLY`` (invalid twice, or the daily cap reached); or
            recommend-only (:func:`recommend_only`: refusal, API error, timeout).

        Raises
        ------
        tradewarden.ledger.LedgerError
            A call row that cannot be written (nothing is decided unrecorded).
        """
        self.collect_late()
        s = self.settings
        ts = int(event.ts)
        dep = self.deployment_id or "-"
        cycle = (f"decide:{ts}:{dep[:24]}:{event.kind[:24]}:{(event.symbol or '-')[:16]}:"
                 f"{next(self._seq)}")
        self._cycle = cur = _Cycle(cycle)
        level = context.autonomy_level
        messages: list[dict[str, Any]] = [{"role": "user",
                                           "content": decision_request(event, context)}]
        deadline = time.monotonic() + s.deadline_seconds
        for attempt in (1, 2):
            request = {"model": s.model, "max_tokens": s.max_tokens, "system": self._system,
                       "messages": list(messages), "output_format": DecisionOutput.__name__,
                       "timeout_seconds": s.timeout_seconds, "max_retries": s.max_retries,
                       "deadline_seconds": s.deadline_seconds,
                       "context": request_document(event, context)}
            try:
                allowed = self.guard.allow(ts)
                why_not = (f"the daily cost cap ({s.daily_cost_cap_usd:g} USD) is reached: no "
                           f"model call until 00:00 UTC")
            except LedgerError as exc:
                allowed, why_not = False, f"the day's spend cannot be read ({exc})"
            if not allowed:
                self._record(cur, ts, attempt, level, request, _Answer("capped", None,
                                                                      error=why_not),
                             "capped_monitor")
                return monitor_only(event, why_not)
            future = self._start(messages, deadline)
            try:
                answer = future.result(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                why = f"no answer within the deadline of {s.deadline_seconds:g} s"
                self._record(cur, ts, attempt, level, request,
                             _Answer("timeout", None, error=why,
                                     latency_ms=round(s.deadline_seconds * 1000)),
                             "fallback_deadline")
                self._late.append(_Late(future, cycle, attempt, request, ts, level))
                return self._fallback(event, context, why, cycle)
            if answer.status == "ok":
                cid = self._record(cur, ts, attempt, level, request, answer, None)
                cur.used = cid
                return answer.parsed
            if answer.status == "invalid":
                if attempt == 1:
                    self._record(cur, ts, attempt, level, request, answer, "retried")
                    messages = [*messages,
                                {"role": "assistant", "content": answer.text or "(no text)"},
                                {"role": "user", "content": retry_request(answer.error or "")}]
                    continue
                self._record(cur, ts, attempt, level, request, answer, "monitor_only_invalid")
                return monitor_only(event, f"the model's answer did not validate twice "
                                           f"({answer.error})")
            self._record(cur, ts, attempt, level, request, answer, "fallback_recommend")
            return self._fallback(event, context, answer.error or answer.status, cycle)
        raise AssertionError("unreachable: the second attempt always returns")

    def settle(self, decision_id: int, verdict: str) -> None:
        """Link the last decision's calls to its ``agent_decisions`` row and note what
        was done with the answer (the governor calls this after recording the verdict).

        Parameters
        ----------
        decision_id : int
        verdict : {"execute", "queue", "monitor", "refuse"}
            The governor's verdict; the used call's outcome becomes ``executed``,
            ``queued``, ``monitor_only`` or ``refused_by_gate``.

        Notes
        -----
        A link that cannot be written is logged and dropped: the decision and the calls
        are recorded already.
        """
        cur, self._cycle = self._cycle, None
        if cur is None:
            return
        for late in self._late:
            if late.cycle == cur.name:
                late.decision_id = decision_id
        try:
            for cid, outcome in cur.calls:
                if cid == cur.used:
                    outcome = VERDICT_OUTCOMES.get(verdict, verdict)
                call_records.set_call_outcome(self.ledger, cid, outcome=outcome,
                                              agent_decision_id=decision_id)
        except LedgerError as exc:
            log.warning("reasoning calls of decision %s not linked: %s", decision_id, exc)
        self.collect_late()

    def collect_late(self) -> int:
        """Record the answers that came after their decision's deadline (outcome
        ``late_ignored``, never acted on); return how many.

        Raises
        ------
        tradewarden.ledger.LedgerError
            A row that cannot be written.
        """
        done = [x for x in self._late if x.future.done()]
        if not done:
            return 0
        self._late = [x for x in self._late if not x.future.done()]
        for late in done:
            answer = late.future.result()
            cur = _Cycle(late.cycle)
            self._record(cur, late.ts, late.attempt, late.level, late.request, answer,
                         "late_ignored", decision_id=late.decision_id)
        return len(done)

    def close(self) -> None:
        """Record the late answers already in and close the HTTP client (calls still
        running are left to end on their own: their ``timeout`` rows exist)."""
        try:
            self.collect_late()
        finally:
            self.client.close()

    # -- the call -------------------------------------------------------------------------
    def _start(self, messages: list[dict[str, Any]], deadline: float) -> Future:
        """Start one model call on a daemon worker thread; return its future."""
        future: Future = Future()
        future.set_running_or_notify_cancel()
        msgs = list(messages)

        def run() -> None:
            try:
                future.set_result(self._call(msgs, deadline))
            except BaseException as exc:    # noqa: BLE001 - handed to the caller's thread
                future.set_exception(exc)

        threading.Thread(target=run, name=f"reasoner-{self.deployment_id or 'daemon'}",
                         daemon=True).start()
        return future

    def _call(self, messages: list[dict[str, Any]], deadline: float) -> _Answer:
        """One ``messages.parse`` (the SDK's retries inside it), as an :class:`_Answer`
        (runs on the worker thread; no ledger access)."""
        s = self.settings
        cur = self._bound.current
        cur.attempts, cur.last_body, cur.deadline = [], None, deadline
        started = time.monotonic()

        def answer(status: str, *, parsed: DecisionOutput | None = None,
                   error: str | None = None, body: Any = None) -> _Answer:
            body = cur.last_body if body is None else body
            response: dict[str, Any] = {"http_attempts": list(cur.attempts or [])}
            usage = None
            text = ""
            if isinstance(body, dict):
                response["body"] = body
                if body.get("type") == "message" and isinstance(body.get("usage"), dict):
                    usage = Usage.from_anthropic(body["usage"])
                    text = "".join(b.get("text", "") for b in body.get("content") or []
                                   if isinstance(b, dict) and b.get("type") == "text")
            return _Answer(status, response, parsed=parsed, error=error, usage=usage,
                           latency_ms=round((time.monotonic() - started) * 1000), text=text)

        try:
            msg = self.client.messages.parse(model=s.model, max_tokens=s.max_tokens,
                                             system=self._system, messages=messages,
                                             output_format=DecisionOutput)
        except pydantic.ValidationError as exc:        # the SDK's parse of the answer text
            body = cur.last_body if isinstance(cur.last_body, dict) else {}
            if body.get("stop_reason") == "refusal":
                return answer("refused", error=f"the model refused: {_text_of(body)[:500]}")
            return answer("invalid", error=_validation_text(exc))
        except RetryWaitTooLong as exc:
            return answer("error", error=str(exc), body=exc.body)
        except anthropic.APITimeoutError:
            return answer("timeout", error=f"no answer within timeout_seconds "
                                           f"({s.timeout_seconds:g} s) after "
                                           f"{len(cur.attempts or [])} attempt(s)")
        except anthropic.APIStatusError as exc:
            return answer("error", error=_api_error(exc))
        except anthropic.APIConnectionError as exc:
            return answer("error", error=f"connection failed: {exc}")
        except Exception as exc:            # noqa: BLE001 - an SDK surprise must not stall trading
            return answer("error", error=f"{type(exc).__name__}: {exc}"[:2000])
        if msg.stop_reason == "refusal":
            return answer("refused", error=f"the model refused: {_text_of(cur.last_body)[:500]}")
        parsed = msg.parsed_output
        if parsed is None:
            return answer("invalid", error=f"no decision in the answer (stop_reason "
                                           f"{msg.stop_reason})")
        return answer("ok", parsed=parsed)

    # -- records ---------------------------------------------------------------------------
    def _record(self, cur: _Cycle, ts: int, attempt: int, level: int, request: dict[str, Any],
                answer: _Answer, outcome: str | None, *, decision_id: int | None = None) -> int:
        cid = call_records.record_call(
            self.ledger, ts=ts, cycle=cur.name, call_type="decide", attempt=attempt,
            provider=PROVIDER, model=self.settings.model, status=answer.status, request=request,
            response=answer.response, parsed=answer.parsed, error=answer.error,
            latency_ms=answer.latency_ms, usage=answer.usage, prices=self.settings.prices,
            deployment_id=self.deployment_id, agent_decision_id=decision_id,
            autonomy_level=level, outcome=outcome)
        cur.calls.append((cid, outcome or "used"))
        return cid

    def _fallback(self, event: ReasoningEvent, context: ReasoningContext, why: str,
                  cycle: str) -> DecisionOutput:
        """Recommend-only for this decision, and a ``reasoning_fallback`` alert."""
        if self.alerter is not None:
            what = f"{event.kind} {event.symbol}" if event.symbol else event.kind
            try:
                self.alerter.alert(
                    "warning", FALLBACK_TRIGGER,
                    f"{self.deployment_id or 'daemon'}: the model did not decide {what}; a "
                    f"person decides",
                    f"{why}\nThe decision was handed to a person (recommend-only); the next "
                    f"event calls the model again. `warden daemon thoughts` lists the calls.",
                    dedupe_key=f"{FALLBACK_TRIGGER}:{cycle}"[:128],
                    deployment_id=self.deployment_id)
            except Exception as exc:    # noqa: BLE001 - the alerter logs; never stall a decision
                log.warning("reasoning_fallback alert failed: %s", exc)
        return recommend_only(event, context, why)


def _text_of(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    return "".join(b.get("text", "") for b in body.get("content") or []
                   if isinstance(b, dict) and b.get("type") == "text")


def reasoner_from_settings(settings: Any, ledger: Any, *, deployment_id: str | None = None,
                           alerter: Any = None, log: Any = None) -> ReasoningEngine:
    """Return the reasoner ``[reasoning] provider`` asks for.

    Parameters
    ----------
    settings : ReasoningSettings
    ledger : Ledger
    deployment_id : str, optional
    alerter : Alerter, optional
    log : structlog logger, optional
        Gets ``reasoning_provider_unavailable`` when ``provider = "anthropic"`` but
        ``ANTHROPIC_API_KEY`` is not set.

    Returns
    -------
    ReasoningEngine
        :class:`AnthropicReasoner` for ``anthropic`` with ``ANTHROPIC_API_KEY`` set;
        otherwise :class:`~tradewarden.agent.reasoning.RulesReasoner` (the default).
    """
    if settings.provider != PROVIDER:
        return RulesReasoner()
    if not os.environ.get("ANTHROPIC_API_KEY"):
        why = ("[reasoning] provider is anthropic but ANTHROPIC_API_KEY is not set: the rules "
               "reasoner decides")
        if log is not None:
            log.warning("reasoning_provider_unavailable", deployment_id=deployment_id,
                        reason=why)
        else:
            logging.getLogger(__name__).warning(why)
        return RulesReasoner()
    return AnthropicReasoner(settings, ledger, deployment_id=deployment_id, alerter=alerter)
