"""Alerts: tell a person that something needs them, by e-mail, Slack and Telegram.

Every alert is a row in the ledger's ``alerts`` table (migration 0006) and a log line;
then it goes to each configured channel whose minimum level it reaches, on a worker
thread of the :class:`Alerter` (a slow mail server never stalls a bar), and its row
records what each channel did.

Levels, lowest first: ``info``, ``warning``, ``critical``.

Triggers (the ``trigger`` column; :data:`TRIGGERS`), from issue 12:

``human_review``
    A decision waits for a person (an approval is pending).
``anomaly``
    A mandatory escalation trigger fired (drawdown, confidence, fill failures ...).
``autonomy_demoted``
    The autonomy level went down.
``reasoning_error``
    The reasoning provider failed.
``broker_disconnect``
    The venue connection was lost (trading paused until it reconciles).
``cost_cap``
    Reasoning spend is approaching (or at) its cap.
``end_of_day``
    The end-of-day summary.
``daemon_error``
    An unhandled exception in the daemon (it carries on with other events).
``emergency_stop``
    Somebody pulled the emergency stop.

Other names (1-32 letters, digits, ``_ . : -``) are accepted as well.

Rate limit and de-duplication use the :class:`~tradewarden.engine.clock.Clock` given
to the :class:`Alerter`, never the wall clock:

- a duplicate (the same ``dedupe_key``, or when there is none the same trigger and
  subject) of an alert sent less than ``dedupe_seconds`` ago is recorded with status
  ``suppressed`` and not sent;
- at most ``rate_limit_count`` alerts of one trigger are sent per ``rate_limit_seconds``;
  the rest are recorded ``suppressed``.

Both remember the alerts already in the ledger, so a daemon that restarts does not
send them again.

Row ``status``: ``queued`` (handed to the worker), ``sent`` (every channel
delivered), ``partial`` (some did), ``failed`` (none did), ``logged`` (no channel
takes this level: the log line is the alert), ``suppressed``. ``channels`` is a JSON
object: channel name -> ``sent`` or ``failed: <reason>`` (and ``suppressed`` -> why).
"""

from __future__ import annotations

import asyncio
import json
import queue
import smtplib
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from tradewarden.engine.clock import Clock
from tradewarden.ledger import schema
from tradewarden.ledger.store import Ledger, LedgerError, utcnow_iso
from tradewarden.ops.alert_settings import (  # the [alerts] section, kept in a light module
    _SUBJECT_MAX,
    _TRIGGER,
    LEVELS,
    TELEGRAM_API,
    TELEGRAM_LIMIT,
    TRIGGERS,
    AlertSettings,
)

__all__ = ["LEVELS", "TELEGRAM_API", "TELEGRAM_LIMIT", "TRIGGERS", "AlertSettings", "Alerter",
           "alerts", "split_message"]


def split_message(text: str, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """Split ``text`` into pieces of at most ``limit`` characters, at line breaks if possible.

    Lines are packed greedily; a line longer than ``limit`` is cut into ``limit``-long
    pieces. A cut on a line break drops that break; a piece that would be only blank
    lines is dropped (Telegram refuses an empty message).

    Parameters
    ----------
    text : str
    limit : int
        Most characters per piece (Telegram's :data:`TELEGRAM_LIMIT`, 4096).

    Returns
    -------
    list of str
        At least one piece (``[""]`` for empty text); none longer than ``limit``.

    Raises
    ------
    ValueError
        ``limit`` below 1.
    """
    if limit < 1:
        raise ValueError(f"message limit {limit}: give at least 1 character")
    if len(text) <= limit:
        return [text]
    pieces: list[str] = []
    current: str | None = None
    for line in text.split("\n"):
        while len(line) > limit:                 # a line too long for one message
            if current is not None:
                pieces.append(current)
                current = None
            pieces.append(line[:limit])
            line = line[limit:]
        if current is None:
            current = line
        elif len(current) + 1 + len(line) <= limit:
            current = f"{current}\n{line}"
        else:
            pieces.append(current)
            current = line
    if current is not None:
        pieces.append(current)
    return [p for p in pieces if p.strip()] or [pieces[0]]


# -- channels ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Alert:
    id: int | None                      # None: the row could not be written
    level: str
    trigger: str
    subject: str
    body: str | None
    deployment_id: str | None
    ts: int

    def text(self) -> str:
        head = f"[{self.level.upper()}] {self.trigger}: {self.subject}"
        if self.deployment_id:
            head += f" (deployment {self.deployment_id})"
        return head if not self.body else f"{head}\n\n{self.body}"


def _tls_context(settings: AlertSettings) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if settings.ca_file:
        context.load_verify_locations(cafile=settings.ca_file)
    return context


def _send_email(settings: AlertSettings, alert: _Alert) -> None:
    host = settings.email_host or ""
    msg = EmailMessage()
    msg["Subject"] = f"[tradewarden {alert.level}] {alert.trigger}: {alert.subject}"[:_SUBJECT_MAX]
    msg["From"] = settings.email_from or settings.email_username or f"tradewarden@{host}"
    msg["To"] = ", ".join(settings.email_to)
    msg["Date"] = formatdate(alert.ts, usegmt=True)
    msg["Message-ID"] = make_msgid(f"alert{alert.id or ''}")
    msg.set_content(alert.text())
    timeout = settings.timeout_seconds
    smtp: smtplib.SMTP
    if settings.email_tls == "implicit":
        smtp = smtplib.SMTP_SSL(host, settings.email_port, timeout=timeout,
                                context=_tls_context(settings))
    else:
        smtp = smtplib.SMTP(host, settings.email_port, timeout=timeout)
    with smtp:
        if settings.email_tls == "starttls":
            smtp.starttls(context=_tls_context(settings))
        if settings.email_username:
            password = settings.email_password.get_secret_value() if settings.email_password else ""
            smtp.login(settings.email_username, password)
        refused = smtp.send_message(msg)
    if refused:
        raise RuntimeError("recipients refused: " + ", ".join(sorted(refused)))


def _send_slack(settings: AlertSettings, alert: _Alert) -> None:
    import requests

    assert settings.slack_webhook_url is not None
    verify: bool | str = settings.ca_file or True
    resp = requests.post(settings.slack_webhook_url.get_secret_value(),
                         json={"text": alert.text()}, timeout=settings.timeout_seconds,
                         verify=verify)
    if resp.status_code >= 300:
        raise RuntimeError(f"HTTP {resp.status_code} {resp.text.strip()[:120]}")


class _Telegram:
    """The Telegram channel: one :class:`telegram.Bot` on an event loop owned by the
    worker thread (``getMe`` once, then ``sendMessage`` per piece and chat)."""

    def __init__(self, settings: AlertSettings) -> None:
        self.settings = settings
        self._loop: asyncio.AbstractEventLoop | None = None
        self._bot: Any = None

    async def _send(self, text: str) -> None:
        from telegram import Bot
        from telegram.request import HTTPXRequest

        s = self.settings
        assert s.telegram_bot_token is not None
        if self._bot is None:
            t = s.timeout_seconds
            bot = Bot(s.telegram_bot_token.get_secret_value(), base_url=s.telegram_base_url,
                      request=HTTPXRequest(connect_timeout=t, read_timeout=t, write_timeout=t,
                                           pool_timeout=t))
            await bot.initialize()
            self._bot = bot
        errors = []
        for chat_id in s.telegram_chat_ids:
            try:
                for piece in split_message(text):
                    await self._bot.send_message(chat_id=chat_id, text=piece)
            except Exception as exc:  # noqa: BLE001 - one chat failing does not stop the others
                errors.append(f"chat {chat_id}: {_reason(exc)}")
        if errors:
            raise RuntimeError("; ".join(errors))

    def send(self, settings: AlertSettings, alert: _Alert) -> None:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._send(alert.text()))

    def close(self) -> None:
        if self._loop is None:
            return
        if self._bot is not None:
            try:
                self._loop.run_until_complete(self._bot.shutdown())
            except Exception as exc:  # noqa: BLE001 - closing a connection pool
                structlog.get_logger("tradewarden.alerts").debug("telegram_close_failed",
                                                                 error=_reason(exc))
        self._loop.close()
        self._loop = None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _scrub(text: str, settings: AlertSettings) -> str:
    """Mask the secrets (token, webhook URL, password) a client may put in an error."""
    for secret in (settings.telegram_bot_token, settings.slack_webhook_url,
                   settings.email_password):
        if secret is not None and secret.get_secret_value():
            text = text.replace(secret.get_secret_value(), "***")
    return text


# -- the alerter ---------------------------------------------------------------------


class Alerter:
    """Record, log and deliver alerts; rate-limited and de-duplicated on the given clock.

    Parameters
    ----------
    ledger : tradewarden.ledger.Ledger
        Where the ``alerts`` rows go.
    settings : AlertSettings
        Channels, levels, limits.
    clock : tradewarden.engine.clock.Clock
        Time of the rows (``ts``) and of the rate-limit and de-duplication windows.
    log : structlog logger, optional
        Default ``structlog.get_logger("tradewarden.alerts")``.

    Raises
    ------
    LedgerError
        The recent alerts cannot be read from the ledger (the message names it).

    Notes
    -----
    Deliveries run on one worker thread (started here, a daemon thread) in the order
    the alerts were raised; a channel's failure is recorded in the row and logged,
    never raised to the caller. Call :meth:`close` when done.
    """

    def __init__(self, ledger: Ledger, settings: AlertSettings, clock: Clock, *,
                 log: Any = None) -> None:
        self.ledger = ledger
        self.settings = settings
        self.clock = clock
        self.log = log if log is not None else structlog.get_logger("tradewarden.alerts")
        self._lock = threading.Lock()
        self._last_sent: dict[str, int] = {}
        self._sent_ts: dict[str, deque[int]] = {}
        self._queue: queue.Queue[tuple[_Alert, list[str]] | None] = queue.Queue()
        self._idle = threading.Condition()
        self._pending = 0
        self._closed = False
        self._unwritten: list[tuple[Any, ...]] = []
        self._telegram = _Telegram(settings)
        #: Channel name -> sender(settings, alert); a sender raises on failure.
        self._senders: dict[str, Callable[[AlertSettings, _Alert], None]] = {
            "email": _send_email, "slack": _send_slack, "telegram": self._telegram.send}
        self._remember()
        self._worker = threading.Thread(target=self._run, name="alerts", daemon=True)
        self._worker.start()

    # -- public ------------------------------------------------------------------------

    def alert(self, level: str, trigger: str, subject: str, body: str | None = None, *,
              dedupe_key: str | None = None, deployment_id: str | None = None,
              once: bool = False) -> int:
        """Record and log an alert, and hand it to the channels that take its level.

        Returns at once: delivery happens on the worker thread (see :meth:`flush`).

        Parameters
        ----------
        level : {"info", "warning", "critical"}
        trigger : str
            One of :data:`TRIGGERS`, or another 1-32 character name.
        subject : str
            One line saying what happened (non-empty).
        body : str, optional
            The details.
        dedupe_key : str, optional
            1-128 characters; alerts with the same key are duplicates (default: the
            same trigger and subject).
        once : bool
            With ``dedupe_key``: a key already sent (or logged) at any time before, as
            the ledger records it, is a duplicate, whatever ``dedupe_seconds`` says (the
            effect key of an event a restarted daemon processes again).
        deployment_id : str, optional
            The deployment it concerns.

        Returns
        -------
        int
            The ``alerts`` row id.

        Raises
        ------
        ValueError
            A bad level, trigger, subject or key (the message names it), or the
            alerter is closed.
        LedgerError
            The row cannot be written (the message names the table and the cause); the
            alert has still been logged and handed to its channels (a database outage
            is when an alert matters most).
        """
        if level not in LEVELS:
            raise ValueError(f"alert level {level!r}: use one of {', '.join(LEVELS)}")
        if not isinstance(trigger, str) or not _TRIGGER.fullmatch(trigger):
            raise ValueError(f"alert trigger {trigger!r}: give 1-32 letters, digits, _ . : -")
        if not isinstance(subject, str) or not subject.strip():
            raise ValueError("alert subject: give a non-empty line")
        if dedupe_key is not None and (not isinstance(dedupe_key, str)
                                       or not 1 <= len(dedupe_key) <= 128):
            raise ValueError(f"alert dedupe key {dedupe_key!r}: give 1-128 characters")
        if self._closed:
            raise ValueError("alerter is closed")
        now = int(self.clock.now())
        key = dedupe_key or f"{trigger}\x00{subject}"
        wanted = [name for name, least in self.settings.channels().items()
                  if LEVELS.index(level) >= LEVELS.index(least)]
        with self._lock:
            why = self._suppressed(key, trigger, now)
            if why is None and once and dedupe_key is not None and self._recorded(dedupe_key):
                why = f"duplicate of an alert recorded earlier with key {dedupe_key}"
            if why is None:
                self._last_sent[key] = now
                self._sent_ts.setdefault(trigger, deque()).append(now)
            status = "suppressed" if why else ("queued" if wanted else "logged")
            channels = {"suppressed": why} if why else {name: "queued" for name in wanted}
            failure: LedgerError | None = None
            alert_id: int | None = None
            try:
                alert_id = self._insert(now, level, trigger, dedupe_key, deployment_id, subject,
                                        body, status, channels)
            except LedgerError as exc:
                failure = exc
                # kept for record_unwritten: status "late", what each channel was given
                self._unwritten.append((now, level, trigger, dedupe_key, deployment_id,
                                        subject, body, "late" if status == "queued" else status,
                                        {k: ("handed over; outcome not recorded (the ledger "
                                             "was away)" if v == "queued" else v)
                                         for k, v in channels.items()}))
        emit = getattr(self.log, "critical" if level == "critical" else level)
        emit("alert", alert_id=alert_id, level=level, trigger=trigger, subject=subject,
             body=body, deployment_id=deployment_id, status=status,
             to=None if why else (",".join(wanted) or None), suppressed=why,
             ledger_error=str(failure) if failure else None)
        if status == "queued":
            with self._idle:
                self._pending += 1
            self._queue.put((_Alert(alert_id, level, trigger, subject, body, deployment_id, now),
                             wanted))
        if failure is not None:
            raise LedgerError(f"{failure} (the alert was logged and is being sent anyway)")
        assert alert_id is not None
        return alert_id

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued alert has been delivered (or has failed).

        Parameters
        ----------
        timeout : float, optional
            Most seconds to wait (wall time); default no limit.

        Returns
        -------
        bool
            True when nothing is left to deliver, False on timeout.
        """
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float | None = 30.0) -> None:
        """Deliver what is queued (waiting at most ``timeout`` seconds), then end the worker.

        Alerts still undelivered after the timeout keep the status ``queued``.
        Closing twice does nothing.
        """
        if self._closed:
            return
        self._closed = True
        self.flush(timeout)
        self._queue.put(None)
        self._worker.join(timeout)

    # -- rate limit and de-duplication -------------------------------------------------

    def _suppressed(self, key: str, trigger: str, now: int) -> str | None:
        s = self.settings
        last = self._last_sent.get(key)
        if s.dedupe_seconds and last is not None and now - last < s.dedupe_seconds:
            return f"duplicate of an alert sent {now - last} s ago (window {s.dedupe_seconds} s)"
        recent = self._sent_ts.setdefault(trigger, deque())
        while recent and recent[0] <= now - s.rate_limit_seconds:
            recent.popleft()
        if len(recent) >= s.rate_limit_count:
            return (f"rate limit: {len(recent)} {trigger} alerts in the last "
                    f"{s.rate_limit_seconds} s (at most {s.rate_limit_count})")
        return None

    def record_unwritten(self) -> int:
        """Write the rows of alerts raised while the ledger could not be written (they
        were logged and sent then), now that it can; return how many.

        Raises
        ------
        LedgerError
            The ledger still cannot be written (the rest are kept for the next call).
        """
        n = 0
        while self._unwritten:
            self._insert(*self._unwritten[0])
            self._unwritten.pop(0)
            n += 1
        return n

    def _recorded(self, dedupe_key: str) -> bool:
        """Whether an alert with this key was ever recorded not suppressed."""
        a = schema.alerts.c
        try:
            self.ledger.drain()
            with self.ledger.engine.connect() as conn:
                return conn.execute(select(a.id).where(a.dedupe_key == dedupe_key,
                                                       a.status != "suppressed")
                                    .limit(1)).first() is not None
        except SQLAlchemyError as exc:
            raise LedgerError(f"alerts: cannot read alert {dedupe_key} from "
                              f"{self.ledger.url} ({exc.__class__.__name__})") from None

    def _remember(self) -> None:
        """Load the alerts sent within the windows from the ledger (a restarted daemon)."""
        now = int(self.clock.now())
        since = now - max(self.settings.dedupe_seconds, self.settings.rate_limit_seconds)
        a = schema.alerts.c
        try:
            self.ledger.drain()
            with self.ledger.engine.connect() as conn:
                rows = conn.execute(select(a.ts, a.trigger, a.subject, a.dedupe_key)
                                    .where(a.ts > since, a.ts <= now, a.status != "suppressed")
                                    .order_by(a.ts, a.id)).all()
        except SQLAlchemyError as exc:
            raise LedgerError(f"alerts: cannot read the recent alerts from "
                              f"{self.ledger.url}: {self.ledger.describe(exc)}") from None
        for ts, trigger, subject, dedupe_key in rows:
            self._last_sent[dedupe_key or f"{trigger}\x00{subject}"] = int(ts)
            self._sent_ts.setdefault(trigger, deque()).append(int(ts))

    # -- ledger ------------------------------------------------------------------------

    def _insert(self, ts: int, level: str, trigger: str, dedupe_key: str | None,
                deployment_id: str | None, subject: str, body: str | None, status: str,
                channels: dict[str, Any]) -> int:
        try:
            self.ledger.drain()
            with self.ledger.engine.begin() as conn:
                res = conn.execute(schema.alerts.insert().values(
                    ts=ts, created_at=utcnow_iso(), level=level, trigger=trigger,
                    dedupe_key=dedupe_key, deployment_id=deployment_id, subject=subject,
                    body=body, status=status, channels=json.dumps(channels)))
                return int(res.inserted_primary_key[0])
        except SQLAlchemyError as exc:
            raise LedgerError(f"alerts: cannot record the {trigger} alert in "
                              f"{self.ledger.url}: {self.ledger.describe(exc)}") from None

    def _record(self, alert_id: int, status: str, channels: dict[str, str]) -> None:
        try:
            with self.ledger.engine.begin() as conn:
                conn.execute(update(schema.alerts).where(schema.alerts.c.id == alert_id)
                             .values(status=status, channels=json.dumps(channels)))
        except SQLAlchemyError as exc:
            self.log.error("alert_record_failed", alert_id=alert_id, status=status,
                           error=f"alerts: cannot update alert {alert_id} in {self.ledger.url}: "
                                 f"{self.ledger.describe(exc)}")

    # -- worker ------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                self._telegram.close()
                return
            alert, wanted = item
            try:
                self._deliver(alert, wanted)
            except Exception as exc:  # noqa: BLE001 - never let the worker die
                self.log.error("alert_worker_error", alert_id=alert.id, error=_reason(exc))
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _deliver(self, alert: _Alert, wanted: list[str]) -> None:
        results: dict[str, str] = {}
        for name in wanted:
            started = time.monotonic()
            try:
                self._senders[name](self.settings, alert)
            except Exception as exc:  # noqa: BLE001 - a channel's failure is recorded, not raised
                reason = _scrub(_reason(exc), self.settings)
                results[name] = f"failed: {reason}"[:500]
                self.log.warning("alert_channel_failed", alert_id=alert.id, channel=name,
                                 error=reason)
            else:
                results[name] = "sent"
                self.log.debug("alert_channel_sent", alert_id=alert.id, channel=name,
                               seconds=round(time.monotonic() - started, 3))
        sent = sum(1 for r in results.values() if r == "sent")
        status = "sent" if sent == len(results) else ("failed" if sent == 0 else "partial")
        if alert.id is not None:
            self._record(alert.id, status, results)
        else:
            self.log.info("alert_delivered_unrecorded", trigger=alert.trigger, status=status,
                          channels=json.dumps(results))


def alerts(ledger: Ledger, *, since_ts: int | None = None, limit: int | None = None,
           ) -> list[dict[str, Any]]:
    """Return recent alerts, newest first (for ``warden daemon status``).

    Parameters
    ----------
    ledger : tradewarden.ledger.Ledger
    since_ts : int, optional
        Only alerts at or after this clock time, UTC epoch seconds.
    limit : int, optional
        At most this many rows.

    Returns
    -------
    list of dict
        ``id``, ``ts``, ``created_at``, ``level``, ``trigger``, ``dedupe_key``,
        ``deployment_id``, ``subject``, ``body``, ``status`` and ``channels`` (decoded
        to a dict).

    Raises
    ------
    LedgerError
        The table cannot be read (the message names the database and the cause).
    """
    a = schema.alerts
    query = select(a).order_by(a.c.ts.desc(), a.c.id.desc())
    if since_ts is not None:
        query = query.where(a.c.ts >= int(since_ts))
    if limit is not None:
        query = query.limit(int(limit))
    try:
        ledger.drain()
        with ledger.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
    except SQLAlchemyError as exc:
        raise LedgerError(f"alerts: cannot read {ledger.url}: {ledger.describe(exc)}") from None
    for row in rows:
        try:
            row["channels"] = json.loads(row["channels"]) if row["channels"] else {}
        except ValueError:
            pass
    return rows
