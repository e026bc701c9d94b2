"""The daemon's events: their kinds, who produces them, and the dispatcher that runs them.

Every event goes through the ledger's durable queue (``daemon_events``,
:meth:`Ledger.enqueue_event` / :meth:`Ledger.claim_event` / :meth:`Ledger.finish_event`):
a producer enqueues it, committed, with a deterministic *dedupe key*, so producing the
same thing twice (a restart, a rescan, a repeated call) adds nothing; a
:class:`Dispatcher` claims it under a lease, runs its handler and finishes it. An event
whose worker dies mid-handler is claimed again once its lease expires, so it is
processed *at least* once; handlers make that *exactly once in effect* (see
"Idempotent handlers" below).

Event kinds and payloads
------------------------
Times are UTC epoch seconds (numbers); money and quantities are Decimal, stored as text
(``"101.25"``); ``market`` is the venue's calendar name (``"XNYS"``) or ``"24/7"``.

=================== ======================================================================
kind                payload
=================== ======================================================================
market_open         market, session (``YYYY-MM-DD``), open, close, scheduled_at, fired_at,
                    late_seconds, missed (bool) (:mod:`tradewarden.ops.schedule`)
market_close        as market_open; early_close (bool: the session closes early)
pre_market          as market_open; minutes_before_open
end_of_day          as market_open (24/7: market, session = UTC date, scheduled_at ...)
weekly_learning     market, week (ISO ``YYYY-Www``), last_session, scheduled_at, fired_at,
                    late_seconds, missed
order_filled        fill_id, client_order_id, deployment_id, symbol, side (buy|sell),
                    quantity, price, fee, ts (:meth:`EventProducer.fill`)
stop_approaching    position, symbol, quantity, entry_price, stop_price, price, distance
                    (fraction of the stop, text), threshold, ts (:class:`PositionWatch`)
significant_move    position, symbol, quantity, entry_price, price, move (signed fraction
                    of the entry, text), direction (up|down), threshold, ts
new_data_file       path (absolute), name, size (bytes), mtime (UTC epoch seconds, float),
                    folder (:class:`FolderWatch`)
broker_disconnected venue, since (UTC epoch seconds), reason
broker_reconnected  venue, since (when it was lost), at, down_seconds
stale_data          symbol, state (``stale`` | ``fresh``), last_update, stale_since,
                    seconds (without data), threshold_seconds, market (:class:`StaleData`)
experiment_result   experiment_id, status, summary (mapping), ts
anomaly_detected    anomaly_id (optional), anomaly (kind of anomaly), symbol, severity,
                    detail (mapping), ts
=================== ======================================================================

Retries
-------
A handler that raises is logged with its traceback and reported to ``on_error``; the
event goes back to the queue *pending*, due again after a backoff of
``retry_seconds * 2 ** (attempts - 1)`` seconds (at most ``max_retry_seconds``), until
its ``attempts`` reach ``max_attempts``: then it is finished ``failed`` with the
exception's last line. A worker that died leaves the event ``processing``; it is
claimed again when its lease expires (the claim counts an attempt), and an event
claimed more than ``max_attempts`` times (e.g. one that kills its worker each time) is
finished ``failed`` without running the handler again.

Idempotent handlers
-------------------
A handler may run more than once for one event (its worker died after the effect but
before :meth:`Ledger.finish_event`). Give every effect a natural key derived from the
event, :func:`effect_key` (``ev<id>`` or ``ev<id>-<name>``): use it as the client order
id of an order the event places, the dedupe key of an event or alert it raises, the key
of an approval it queues, so that the second run's effect is refused by the unique
constraint that already guards it (the ledger's ``client_order_id``, the queue's
``dedupe_key``, the broker's client order id) instead of being done twice. A handler
that only reads and reports needs nothing.

Producers
---------
Producers are plain objects of the ledger, a clock (:class:`tradewarden.engine.clock.Clock`)
and their inputs; they never sleep and never read the wall clock (except
:class:`FolderWatch`'s observer thread, which only notes paths).
"""

from __future__ import annotations

import hashlib
import os
import queue
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from tradewarden.engine.clock import Clock
    from tradewarden.ledger import Ledger
    from tradewarden.ops.schedule import MarketCalendar

__all__ = [
    "ANOMALY_DETECTED", "BROKER_DISCONNECTED", "BROKER_RECONNECTED", "END_OF_DAY",
    "EVENT_KINDS", "EXPERIMENT_RESULT", "MARKET_CLOSE", "MARKET_OPEN", "NEW_DATA_FILE",
    "ORDER_FILLED", "PRE_MARKET", "SIGNIFICANT_MOVE", "STALE_DATA", "STOP_APPROACHING",
    "WEEKLY_LEARNING", "Dispatcher", "Event", "EventProducer", "FolderWatch",
    "PositionWatch", "StaleData", "WatchedPosition", "effect_key", "emit_anomaly_detected",
    "emit_broker_disconnected", "emit_broker_reconnected", "emit_experiment_result",
    "emit_order_filled",
]

MARKET_OPEN = "market_open"
MARKET_CLOSE = "market_close"
PRE_MARKET = "pre_market"
ORDER_FILLED = "order_filled"
STOP_APPROACHING = "stop_approaching"
SIGNIFICANT_MOVE = "significant_move"
NEW_DATA_FILE = "new_data_file"
END_OF_DAY = "end_of_day"
WEEKLY_LEARNING = "weekly_learning"
BROKER_DISCONNECTED = "broker_disconnected"
BROKER_RECONNECTED = "broker_reconnected"
STALE_DATA = "stale_data"
EXPERIMENT_RESULT = "experiment_result"
ANOMALY_DETECTED = "anomaly_detected"

#: Every event kind of the daemon (issue 12), in the order of the module docstring.
EVENT_KINDS = (MARKET_OPEN, MARKET_CLOSE, PRE_MARKET, END_OF_DAY, WEEKLY_LEARNING,
               ORDER_FILLED, STOP_APPROACHING, SIGNIFICANT_MOVE, NEW_DATA_FILE,
               BROKER_DISCONNECTED, BROKER_RECONNECTED, STALE_DATA, EXPERIMENT_RESULT,
               ANOMALY_DETECTED)

_KEY_MAX = 128


def _key(*parts: object) -> str:
    """Join ``parts`` into a dedupe key; hash the tail when it exceeds 128 characters."""
    text = ":".join(str(p) for p in parts)
    if len(text) <= _KEY_MAX:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:40]
    return f"{text[:_KEY_MAX - 41]}#{digest}"


def _dec(value: Any, name: str) -> Decimal:
    try:
        out = value if isinstance(value, Decimal) else Decimal(str(value))
    except ArithmeticError:
        raise ValueError(f"{name} {value!r}: give a number") from None
    if not out.is_finite():
        raise ValueError(f"{name} {value!r}: give a finite number")
    return out


# --------------------------------------------------------------------------- dispatcher


@dataclass(frozen=True)
class Event:
    """A claimed event, as a handler sees it.

    Parameters
    ----------
    id : int
        ``daemon_events.id``: the key of everything this event does (:func:`effect_key`).
    kind : str
        One of :data:`EVENT_KINDS` (or another registered kind).
    payload : dict
        The event's data (see the module docstring).
    attempts : int
        This is attempt number ``attempts`` (1 on the first run).
    due_at : float
        When it was due, UTC epoch seconds.
    dedupe_key : str or None
        The producer's key.
    """

    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    due_at: float
    dedupe_key: str | None
    _renew: Callable[[float | None], bool] | None = field(default=None, repr=False,
                                                           compare=False)

    def renew_lease(self, lease_seconds: float | None = None) -> bool:
        """Extend this worker's lease on the event (a long handler calls this).

        Parameters
        ----------
        lease_seconds : float, optional
            New lease from the dispatcher clock's now, seconds; default the
            dispatcher's ``lease_seconds``.

        Returns
        -------
        bool
            ``False`` when the lease was lost (another worker took the event over): the
            handler should stop without doing more.
        """
        return False if self._renew is None else self._renew(lease_seconds)


def effect_key(event: Event | int, name: str = "") -> str:
    """Return the idempotency key of an effect of ``event``: ``ev<id>`` or ``ev<id>-<name>``.

    Use it as the natural key of what the handler does (a client order id, a dedupe
    key, an approval key), so that a second run of the same event (after its worker
    died) is refused by that key's unique constraint instead of acting twice.

    Parameters
    ----------
    event : Event or int
        The event, or its id.
    name : str, optional
        Which effect, when a handler has several (``"entry"``, ``"alert"``).

    Returns
    -------
    str
    """
    eid = event.id if isinstance(event, Event) else int(event)
    return f"ev{eid}-{name}" if name else f"ev{eid}"


Handler = Callable[[Event], Any]


class Dispatcher:
    """Claim due events from the ledger's queue and run their handlers, one at a time.

    Parameters
    ----------
    ledger : Ledger
        Holds the queue (``daemon_events``).
    clock : Clock
        The mode's clock: ``now()`` in UTC epoch seconds (leases and backoffs use it).
    owner : str
        This worker's lease owner, unique per process (``"<daemon id>:<pid>"``).
    lease_seconds : float, default 60
        How long a claim holds, seconds; a handler that runs longer calls
        :meth:`Event.renew_lease`.
    max_attempts : int, default 5
        Attempts after which a failing event is finished ``failed``.
    retry_seconds : float, default 5
        First retry delay, seconds; doubled per attempt.
    max_retry_seconds : float, default 300
        Longest retry delay, seconds.
    log : structlog logger, optional
        Default ``structlog.get_logger("tradewarden.events")``.
    on_error : callable (Event, BaseException) -> None, optional
        Called after a handler raised (the lead connects alerts); its own exceptions are
        logged and swallowed. May also be set later as the attribute ``on_error``.

    Notes
    -----
    An event of a kind with no handler is finished ``failed`` (``no handler for ...``),
    so nothing waits forever unseen. An event whose payload says ``missed`` (a schedule
    fire time beyond its misfire grace, :mod:`tradewarden.ops.schedule`) is finished
    ``done`` with the note ``missed ...`` in ``error`` without running the handler,
    unless the handler was registered with ``run_missed=True``.

    Raises
    ------
    ValueError
        A lease, attempt count or delay that is not positive.
    """

    def __init__(self, ledger: Ledger, clock: Clock, owner: str, *, lease_seconds: float = 60,
                 max_attempts: int = 5, retry_seconds: float = 5, max_retry_seconds: float = 300,
                 log: Any = None,
                 on_error: Callable[[Event, BaseException], Any] | None = None) -> None:
        if not lease_seconds > 0:
            raise ValueError(f"lease_seconds {lease_seconds!r}: give more than 0")
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) \
                or max_attempts < 1:
            raise ValueError(f"max_attempts {max_attempts!r}: give a whole number >= 1")
        if not retry_seconds > 0 or not max_retry_seconds >= retry_seconds:
            raise ValueError(f"retry_seconds {retry_seconds!r} / max_retry_seconds "
                             f"{max_retry_seconds!r}: give 0 < retry <= max")
        self.ledger = ledger
        self.clock = clock
        self.owner = owner
        self.lease_seconds = float(lease_seconds)
        self.max_attempts = max_attempts
        self.retry_seconds = float(retry_seconds)
        self.max_retry_seconds = float(max_retry_seconds)
        self.log = log if log is not None else structlog.get_logger("tradewarden.events")
        self.on_error = on_error
        self._handlers: dict[str, tuple[Handler, bool]] = {}

    def register(self, kind: str, handler: Handler, *, run_missed: bool = False) -> None:
        """Run ``handler(event)`` for events of ``kind`` (replacing an earlier one).

        Parameters
        ----------
        kind : str
            An event kind (:data:`EVENT_KINDS`).
        handler : callable (Event) -> Any
            Idempotent (see the module docstring); its return value is ignored; an
            exception means "failed, retry".
        run_missed : bool, default False
            Also run it for missed schedule fire times (payload ``missed``).
        """
        self._handlers[kind] = (handler, run_missed)

    def retry_delay(self, attempts: int) -> float:
        """Return the delay before attempt ``attempts + 1``, seconds:
        ``retry_seconds * 2 ** (attempts - 1)``, at most ``max_retry_seconds``."""
        return min(self.max_retry_seconds, self.retry_seconds * 2 ** max(0, attempts - 1))

    def run_once(self) -> bool:
        """Claim one due event and process it.

        Returns
        -------
        bool
            ``True`` when an event was claimed (whatever its outcome), ``False`` when
            none was due.

        Raises
        ------
        LedgerError
            Only when the ledger itself cannot be read or written (the daemon's
            degrade path); a handler's exception never reaches the caller.
        """
        row = self.ledger.claim_event(self.owner, self.clock.now(), self.lease_seconds)
        if row is None:
            return False
        event = Event(id=int(row["id"]), kind=row["kind"], payload=row["payload"],
                      attempts=int(row["attempts"]), due_at=float(row["due_at"]),
                      dedupe_key=row["dedupe_key"],
                      _renew=lambda lease, eid=int(row["id"]): self._renew(eid, lease))
        log = self.log.bind(event_id=event.id, kind=event.kind, attempt=event.attempts)
        if event.attempts > self.max_attempts:
            # Claimed again after its lease ran out more often than allowed: a worker
            # died on it each time. Do not run it again.
            self._finish(event, "failed", f"gave up after {event.attempts - 1} attempts "
                                          "(worker died or lease expired)")
            log.error("event_abandoned", reason="attempts exhausted by lost leases")
            return True
        entry = self._handlers.get(event.kind)
        if entry is None:
            self._finish(event, "failed", f"no handler for {event.kind!r}")
            log.warning("event_unhandled")
            return True
        handler, run_missed = entry
        if event.payload.get("missed") and not run_missed:
            late = event.payload.get("late_seconds")
            self._finish(event, "done", f"missed: fired {late} s after its time, beyond the "
                                        "misfire grace; handler not run")
            log.info("event_missed", late_seconds=late)
            return True
        try:
            handler(event)
        except Exception as exc:  # noqa: BLE001 - a handler's failure must not stop the daemon
            self._failed(event, exc, log)
            return True
        if not self._finish(event, "done", None):
            log.warning("event_lease_lost", note="finished by its handler after another "
                                                 "worker took it over")
        else:
            log.info("event_done")
        return True

    def run_pending(self, limit: int | None = None) -> int:
        """Process due events until none is due or ``limit`` were claimed.

        Parameters
        ----------
        limit : int, optional
            Most events to claim in this call (default: no limit).

        Returns
        -------
        int
            Events claimed.

        Raises
        ------
        LedgerError
            As :meth:`run_once`.
        """
        n = 0
        while (limit is None or n < limit) and self.run_once():
            n += 1
        return n

    def _renew(self, event_id: int, lease: float | None) -> bool:
        return self.ledger.renew_event(event_id, self.owner, self.clock.now(),
                                       self.lease_seconds if lease is None else lease)

    def _finish(self, event: Event, status: str, error: str | None,
                retry_at: float | None = None) -> bool:
        return self.ledger.finish_event(event.id, self.owner, status=status, error=error,
                                        retry_at=retry_at)

    def _failed(self, event: Event, exc: BaseException, log: Any) -> None:
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        final = event.attempts >= self.max_attempts
        if final:
            self._finish(event, "failed", last)
        else:
            retry_at = self.clock.now() + self.retry_delay(event.attempts)
            self._finish(event, "pending", last, retry_at=retry_at)
        log.error("event_handler_failed", error=last, final=final,
                  traceback="".join(traceback.format_exception(type(exc), exc,
                                                               exc.__traceback__)))
        if self.on_error is not None:
            try:
                self.on_error(event, exc)
            except Exception as hook_exc:  # noqa: BLE001 - the hook must not stop the daemon
                log.error("event_on_error_failed", error=repr(hook_exc))


# --------------------------------------------------------------------------- producers


def emit_order_filled(ledger: Ledger, now: float, *, fill_id: str | None, client_order_id: str,
                      symbol: str, side: str, quantity: Decimal, price: Decimal,
                      fee: Decimal = Decimal(0), deployment_id: str | None = None,
                      ts: float | None = None) -> int | None:
    """Enqueue ``order_filled`` for one fill, once.

    Parameters
    ----------
    ledger : Ledger
    now : float
        Due time, UTC epoch seconds.
    fill_id : str or None
        The venue's fill (trade) id; the dedupe key is ``fill:<fill_id>``. Without one
        it is ``fill:<client_order_id>:<quantity>@<price>``.
    client_order_id : str
    symbol : str
    side : {"buy", "sell"}
    quantity, price : Decimal
        Base units; quote currency per base unit.
    fee : Decimal, default 0
        Quote currency.
    deployment_id : str, optional
    ts : float, optional
        When it filled, UTC epoch seconds (default ``now``).

    Returns
    -------
    int or None
        The event id, or ``None`` when this fill was already enqueued.

    Raises
    ------
    ValueError
        A bad side, quantity, price or fee.
    LedgerError
        The queue cannot be written.
    """
    if side not in ("buy", "sell"):
        raise ValueError(f"fill side {side!r}: use buy or sell")
    qty, px, fee_d = _dec(quantity, "fill quantity"), _dec(price, "fill price"), _dec(fee, "fill fee")
    key = _key("fill", fill_id) if fill_id else _key("fill", client_order_id, f"{qty}@{px}")
    payload = {"fill_id": fill_id, "client_order_id": client_order_id,
               "deployment_id": deployment_id, "symbol": symbol, "side": side,
               "quantity": str(qty), "price": str(px), "fee": str(fee_d),
               "ts": now if ts is None else ts}
    return ledger.enqueue_event(ORDER_FILLED, payload, due_at=now, dedupe_key=key)


def emit_broker_disconnected(ledger: Ledger, now: float, *, venue: str, since: float,
                             reason: str = "") -> int | None:
    """Enqueue ``broker_disconnected`` once per outage (key ``broker_disconnected:<venue>:<since>``).

    Parameters
    ----------
    ledger : Ledger
    now : float
        Due time, UTC epoch seconds.
    venue : str
    since : float
        When the connection was lost, UTC epoch seconds (the outage's identity).
    reason : str, optional
        The error that showed it.

    Returns
    -------
    int or None
        The event id, or ``None`` when this outage was already reported.
    """
    return ledger.enqueue_event(BROKER_DISCONNECTED,
                                {"venue": venue, "since": since, "reason": reason},
                                due_at=now, dedupe_key=_key(BROKER_DISCONNECTED, venue, int(since)))


def emit_broker_reconnected(ledger: Ledger, now: float, *, venue: str,
                            since: float) -> int | None:
    """Enqueue ``broker_reconnected`` once per outage (key ``broker_reconnected:<venue>:<since>``).

    Parameters
    ----------
    ledger : Ledger
    now : float
        When it reconnected (and the due time), UTC epoch seconds.
    venue : str
    since : float
        When the connection was lost (the ``since`` of the disconnect), UTC epoch seconds.

    Returns
    -------
    int or None
    """
    return ledger.enqueue_event(BROKER_RECONNECTED,
                                {"venue": venue, "since": since, "at": now,
                                 "down_seconds": now - since},
                                due_at=now, dedupe_key=_key(BROKER_RECONNECTED, venue, int(since)))


def emit_anomaly_detected(ledger: Ledger, now: float, *, anomaly: str, symbol: str | None = None,
                          severity: str = "warning", detail: Mapping[str, Any] | None = None,
                          anomaly_id: int | str | None = None) -> int | None:
    """Enqueue ``anomaly_detected`` once per anomaly.

    Parameters
    ----------
    ledger : Ledger
    now : float
        Due time and detection time, UTC epoch seconds.
    anomaly : str
        What kind of anomaly (``"vix_spike"``, ``"data_gap"``, ...).
    symbol : str, optional
    severity : str, default "warning"
    detail : mapping, optional
        JSON-serialisable facts.
    anomaly_id : int or str, optional
        The ``anomalies`` row id; the key is ``anomaly:<id>``, else
        ``anomaly:<anomaly>:<symbol>:<now>``.

    Returns
    -------
    int or None
    """
    key = (_key("anomaly", anomaly_id) if anomaly_id is not None
           else _key("anomaly", anomaly, symbol or "-", int(now)))
    return ledger.enqueue_event(ANOMALY_DETECTED,
                                {"anomaly_id": anomaly_id, "anomaly": anomaly, "symbol": symbol,
                                 "severity": severity, "detail": dict(detail or {}), "ts": now},
                                due_at=now, dedupe_key=key)


def emit_experiment_result(ledger: Ledger, now: float, *, experiment_id: str, status: str,
                           summary: Mapping[str, Any] | None = None) -> int | None:
    """Enqueue ``experiment_result`` once per experiment and status
    (key ``experiment:<id>:<status>``).

    Parameters
    ----------
    ledger : Ledger
    now : float
        Due time, UTC epoch seconds.
    experiment_id : str
    status : str
        ``"completed"``, ``"failed"``, ...
    summary : mapping, optional
        JSON-serialisable results (metrics as text or numbers).

    Returns
    -------
    int or None
    """
    return ledger.enqueue_event(EXPERIMENT_RESULT,
                                {"experiment_id": experiment_id, "status": status,
                                 "summary": dict(summary or {}), "ts": now},
                                due_at=now, dedupe_key=_key("experiment", experiment_id, status))


class EventProducer:
    """The ``emit_*`` helpers bound to a ledger and the mode's clock (due time = ``now()``).

    Parameters
    ----------
    ledger : Ledger
    clock : Clock
    deployment_id : str, optional
        Put in ``order_filled`` payloads.
    """

    def __init__(self, ledger: Ledger, clock: Clock, deployment_id: str | None = None) -> None:
        self.ledger = ledger
        self.clock = clock
        self.deployment_id = deployment_id

    def fill(self, *, fill_id: str | None, client_order_id: str, symbol: str, side: str,
             quantity: Decimal, price: Decimal, fee: Decimal = Decimal(0),
             ts: float | None = None) -> int | None:
        """Enqueue ``order_filled`` (see :func:`emit_order_filled`); return its id or ``None``."""
        return emit_order_filled(self.ledger, self.clock.now(), fill_id=fill_id,
                                 client_order_id=client_order_id, symbol=symbol, side=side,
                                 quantity=quantity, price=price, fee=fee,
                                 deployment_id=self.deployment_id, ts=ts)

    def broker_disconnected(self, venue: str, since: float, reason: str = "") -> int | None:
        """Enqueue ``broker_disconnected`` (see :func:`emit_broker_disconnected`)."""
        return emit_broker_disconnected(self.ledger, self.clock.now(), venue=venue, since=since,
                                        reason=reason)

    def broker_reconnected(self, venue: str, since: float) -> int | None:
        """Enqueue ``broker_reconnected`` (see :func:`emit_broker_reconnected`)."""
        return emit_broker_reconnected(self.ledger, self.clock.now(), venue=venue, since=since)

    def anomaly(self, anomaly: str, *, symbol: str | None = None, severity: str = "warning",
                detail: Mapping[str, Any] | None = None,
                anomaly_id: int | str | None = None) -> int | None:
        """Enqueue ``anomaly_detected`` (see :func:`emit_anomaly_detected`)."""
        return emit_anomaly_detected(self.ledger, self.clock.now(), anomaly=anomaly,
                                     symbol=symbol, severity=severity, detail=detail,
                                     anomaly_id=anomaly_id)

    def experiment_result(self, experiment_id: str, status: str,
                          summary: Mapping[str, Any] | None = None) -> int | None:
        """Enqueue ``experiment_result`` (see :func:`emit_experiment_result`)."""
        return emit_experiment_result(self.ledger, self.clock.now(), experiment_id=experiment_id,
                                      status=status, summary=summary)


@dataclass(frozen=True)
class WatchedPosition:
    """An open position as :class:`PositionWatch` sees it.

    Parameters
    ----------
    symbol : str
    quantity : Decimal
        Base units; positive long, negative short.
    entry_price : Decimal
        Quote currency per base unit.
    stop_price : Decimal or None
        The protective stop, quote per base unit (below the price for a long, above
        for a short); ``None``: no stop, no ``stop_approaching``.
    key : str, optional
        The position's identity in dedupe keys and state (a position id); default
        ``"<symbol>@<entry_price>"``.
    """

    symbol: str
    quantity: Decimal
    entry_price: Decimal
    stop_price: Decimal | None = None
    key: str = ""

    @property
    def ident(self) -> str:
        """The position's identity: ``key``, or ``"<symbol>@<entry_price>"``."""
        return self.key or f"{self.symbol}@{self.entry_price}"


class PositionWatch:
    """Raise ``stop_approaching`` and ``significant_move`` from positions and last prices.

    ``stop_approaching``: the price is within ``stop_fraction`` of the stop, distance =
    ``(price - stop) / stop`` for a long, ``(stop - price) / stop`` for a short (a price
    through the stop counts too). ``significant_move``: ``|price - entry| / entry`` above
    ``move_fraction``. Each fires once per crossing: the condition must clear (the
    price moves back outside) before it fires again; a significant move that flips
    direction (up to down) is a new crossing.

    Parameters
    ----------
    ledger : Ledger
    clock : Clock
    stop_fraction : Decimal, default 0.05
        5 % of the stop level (issue 12).
    move_fraction : Decimal, default 0.03
        3 % of the entry price (issue 12).

    Notes
    -----
    The armed state is in memory; the dedupe key is
    ``<kind>:<position>:<time of the crossing>``, so observing the same prices twice
    adds nothing. After a restart a position still inside a zone fires once more (the
    handler sees the same facts; it should be idempotent in effect anyway).
    """

    def __init__(self, ledger: Ledger, clock: Clock, *, stop_fraction: Decimal = Decimal("0.05"),
                 move_fraction: Decimal = Decimal("0.03")) -> None:
        self.ledger = ledger
        self.clock = clock
        self.stop_fraction = _dec(stop_fraction, "stop_fraction")
        self.move_fraction = _dec(move_fraction, "move_fraction")
        if self.stop_fraction <= 0 or self.move_fraction <= 0:
            raise ValueError("stop_fraction and move_fraction: give more than 0")
        self._near_stop: set[str] = set()
        self._moved: dict[str, str] = {}           # position -> "up" | "down"

    def observe(self, positions: Iterable[WatchedPosition],
                prices: Mapping[str, Decimal]) -> list[int]:
        """Check every position against its symbol's last price; enqueue new crossings.

        Parameters
        ----------
        positions : iterable of WatchedPosition
            The open positions (one missing here is forgotten, and re-armed).
        prices : mapping str -> Decimal
            Last price per symbol, quote per base unit; a symbol without a price is
            skipped this time.

        Returns
        -------
        list of int
            Ids of the events enqueued.

        Raises
        ------
        ValueError
            A non-positive entry, stop or price.
        """
        now = self.clock.now()
        out: list[int] = []
        seen: set[str] = set()
        for pos in positions:
            ident = pos.ident
            seen.add(ident)
            if pos.symbol not in prices or pos.quantity == 0:
                continue
            price = _dec(prices[pos.symbol], f"price of {pos.symbol}")
            entry = _dec(pos.entry_price, f"entry price of {ident}")
            if price <= 0 or entry <= 0:
                raise ValueError(f"position {ident}: price {price} and entry {entry} must be > 0")
            base = {"position": ident, "symbol": pos.symbol, "quantity": str(pos.quantity),
                    "entry_price": str(entry), "price": str(price), "ts": now}
            if pos.stop_price is not None:
                stop = _dec(pos.stop_price, f"stop price of {ident}")
                if stop <= 0:
                    raise ValueError(f"position {ident}: stop {stop} must be > 0")
                distance = ((price - stop) if pos.quantity > 0 else (stop - price)) / stop
                if distance <= self.stop_fraction:
                    if ident not in self._near_stop:
                        self._near_stop.add(ident)
                        eid = self.ledger.enqueue_event(
                            STOP_APPROACHING, {**base, "stop_price": str(stop),
                                               "distance": str(distance),
                                               "threshold": str(self.stop_fraction)},
                            due_at=now, dedupe_key=_key(STOP_APPROACHING, ident, int(now)))
                        if eid is not None:
                            out.append(eid)
                else:
                    self._near_stop.discard(ident)
            move = (price - entry) / entry
            direction = "up" if move > 0 else "down"
            if abs(move) > self.move_fraction:
                if self._moved.get(ident) != direction:
                    self._moved[ident] = direction
                    eid = self.ledger.enqueue_event(
                        SIGNIFICANT_MOVE, {**base, "move": str(move), "direction": direction,
                                           "threshold": str(self.move_fraction)},
                        due_at=now, dedupe_key=_key(SIGNIFICANT_MOVE, ident, direction, int(now)))
                    if eid is not None:
                        out.append(eid)
            else:
                self._moved.pop(ident, None)
        self._near_stop &= seen
        for gone in set(self._moved) - seen:
            del self._moved[gone]
        return out


class StaleData:
    """Raise ``stale_data`` when a symbol's market data stops while its market is open.

    The stale clock runs only while the market is open: a symbol is stale when
    ``now - max(last update, the current session's open) > threshold_seconds`` and the
    market is open now. Once stale, the next :meth:`update` enqueues a second
    ``stale_data`` event with ``state="fresh"`` (the clearing). Keys:
    ``stale_data:<symbol>:<last update>`` and ``...:fresh``, so one silence gives one
    pair however often it is checked.

    Parameters
    ----------
    ledger : Ledger
    clock : Clock
    market : MarketCalendar
        The venue's market (:class:`tradewarden.ops.schedule.MarketCalendar`); a 24/7
        market is always open.
    threshold_seconds : float, default 300
        Five minutes (issue 12).
    """

    def __init__(self, ledger: Ledger, clock: Clock, market: MarketCalendar, *,
                 threshold_seconds: float = 300) -> None:
        if not threshold_seconds > 0:
            raise ValueError(f"threshold_seconds {threshold_seconds!r}: give more than 0")
        self.ledger = ledger
        self.clock = clock
        self.market = market
        self.threshold_seconds = float(threshold_seconds)
        self._last: dict[str, float] = {}
        self._stale: dict[str, float] = {}         # symbol -> last update when it went stale

    def watch(self, symbol: str, last_update: float | None = None) -> None:
        """Start watching ``symbol``; its last update is ``last_update`` (UTC epoch seconds)
        or now."""
        self._last.setdefault(symbol, self.clock.now() if last_update is None else last_update)

    @property
    def stale(self) -> frozenset[str]:
        """The symbols stale now (monitor only until fresh data arrives)."""
        return frozenset(self._stale)

    def update(self, symbol: str, ts: float | None = None) -> int | None:
        """Record market data for ``symbol`` at ``ts`` (UTC epoch seconds; default now).

        Returns
        -------
        int or None
            The id of the ``fresh`` event when this ends a stale spell, else ``None``.
        """
        now = self.clock.now()
        ts = now if ts is None else ts
        self._last[symbol] = max(ts, self._last.get(symbol, ts))
        if symbol not in self._stale:
            return None
        was = self._stale.pop(symbol)
        return self.ledger.enqueue_event(
            STALE_DATA, {"symbol": symbol, "state": "fresh", "last_update": ts,
                         "stale_since": was, "seconds": ts - was,
                         "threshold_seconds": self.threshold_seconds, "market": self.market.name},
            due_at=now, dedupe_key=_key(STALE_DATA, symbol, was, "fresh"))

    def check(self) -> list[int]:
        """Enqueue ``stale_data`` for each watched symbol that just went stale.

        Returns
        -------
        list of int
            Ids of the events enqueued.
        """
        now = self.clock.now()
        if not self.market.is_open(now):
            return []
        opened = self.market.open_since(now)
        out: list[int] = []
        for symbol, last in self._last.items():
            if symbol in self._stale:
                continue
            since = last if opened is None else max(last, opened)
            if now - since > self.threshold_seconds:
                self._stale[symbol] = last
                eid = self.ledger.enqueue_event(
                    STALE_DATA, {"symbol": symbol, "state": "stale", "last_update": last,
                                 "stale_since": since, "seconds": now - since,
                                 "threshold_seconds": self.threshold_seconds,
                                 "market": self.market.name},
                    due_at=now, dedupe_key=_key(STALE_DATA, symbol, last))
                if eid is not None:
                    out.append(eid)
        return out


class FolderWatch:
    """Raise ``new_data_file`` for each new file in a watched folder.

    A :mod:`watchdog` observer thread notes files that are closed after writing or
    moved into the folder (write then rename is the safe way to drop a file), and
    files created or modified; the daemon's loop calls :meth:`poll`, which enqueues
    them on its own thread and clock: a closed or moved-in file at once, a created or
    modified one (platforms without close events: macOS, the polling observer) once two
    polls in a row see the same size and mtime. :meth:`start` first scans the folder,
    so files that arrived while the daemon was down are not missed, and :meth:`scan`
    may be called at any time as a further fallback. The key is ``file:<sha256 of path, size,
    mtime_ns>``: a file already enqueued is never enqueued again, a rewritten file
    (other size or mtime) is new.

    Parameters
    ----------
    ledger : Ledger
    clock : Clock
    folder : str or path
        The watched folder (must exist).
    recursive : bool, default False
        Watch sub-folders too.
    suffixes : iterable of str, optional
        Only names ending so (``(".csv", ".parquet")``); default every file. Hidden
        files (``.name``) and temporary ones (``~``, ``.tmp``, ``.part``) are ignored.

    Raises
    ------
    ValueError
        When ``folder`` is not a directory.
    """

    _TEMP = (".tmp", ".part", ".partial", "~", ".swp", ".crdownload")

    def __init__(self, ledger: Ledger, clock: Clock, folder: str | os.PathLike[str], *,
                 recursive: bool = False, suffixes: Iterable[str] | None = None) -> None:
        self.folder = Path(folder).resolve()
        if not self.folder.is_dir():
            raise ValueError(f"watched folder {str(folder)!r}: not a directory")
        self.ledger = ledger
        self.clock = clock
        self.recursive = recursive
        self.suffixes = tuple(suffixes) if suffixes is not None else None
        self._noted: queue.SimpleQueue[tuple[str, bool]] = queue.SimpleQueue()
        self._settling: dict[Path, tuple[int, int] | None] = {}
        self._observer: Any = None

    def _wanted(self, path: Path) -> bool:
        name = path.name
        if name.startswith(".") or name.endswith(self._TEMP):
            return False
        return self.suffixes is None or name.endswith(self.suffixes)

    def _enqueue(self, path: Path) -> int | None:
        try:
            st = path.stat()
        except OSError:                   # gone again (a temp file renamed away)
            return None
        if not path.is_file() or not self._wanted(path):
            return None
        digest = hashlib.sha256(f"{path}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()
        return self.ledger.enqueue_event(
            NEW_DATA_FILE, {"path": str(path), "name": path.name, "size": st.st_size,
                            "mtime": st.st_mtime, "folder": str(self.folder)},
            due_at=self.clock.now(), dedupe_key=f"file:{digest[:48]}")

    def scan(self) -> list[int]:
        """Enqueue every file in the folder not enqueued before; return the new event ids."""
        pattern = "**/*" if self.recursive else "*"
        out = []
        for path in sorted(self.folder.glob(pattern)):
            eid = self._enqueue(path)
            if eid is not None:
                out.append(eid)
        return out

    def start(self) -> list[int]:
        """Scan the folder (files that came while down), then start the observer thread.

        Returns
        -------
        list of int
            Ids of the events the scan enqueued.
        """
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        noted = self._noted

        class _Handler(FileSystemEventHandler):
            def on_closed(self, event: Any) -> None:
                if not event.is_directory:
                    noted.put((os.fsdecode(event.src_path), True))

            def on_moved(self, event: Any) -> None:
                if not event.is_directory:
                    noted.put((os.fsdecode(event.dest_path), True))

            def on_created(self, event: Any) -> None:
                if not event.is_directory:
                    noted.put((os.fsdecode(event.src_path), False))

            on_modified = on_created

        found = self.scan()
        observer = Observer()
        observer.schedule(_Handler(), str(self.folder), recursive=self.recursive)
        observer.daemon = True
        observer.start()
        self._observer = observer
        return found

    def poll(self) -> list[int]:
        """Enqueue the files the observer noted that are complete; return the new event ids.

        A file closed after writing or moved in is complete at once; a file only seen
        created or modified is complete when this call sees the same size and mtime as
        the previous one.
        """
        out = []
        ready: list[Path] = []
        while True:
            try:
                raw, complete = self._noted.get_nowait()
            except queue.Empty:
                break
            path = Path(raw)
            if self.folder not in path.parents or not self._wanted(path):
                continue
            if complete:
                self._settling.pop(path, None)
                ready.append(path)
            else:
                self._settling[path] = None
        for path, seen in list(self._settling.items()):
            try:
                st = path.stat()
            except OSError:
                del self._settling[path]
                continue
            now = (st.st_size, st.st_mtime_ns)
            if seen == now:
                del self._settling[path]
                ready.append(path)
            else:
                self._settling[path] = now
        for path in dict.fromkeys(ready):
            eid = self._enqueue(path)
            if eid is not None:
                out.append(eid)
        return out

    def stop(self, timeout: float = 5) -> None:
        """Stop the observer thread (waiting at most ``timeout`` seconds)."""
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout)
            self._observer = None
