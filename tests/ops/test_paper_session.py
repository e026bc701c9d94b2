"""A venue session lost and regained between bars (``DeploymentLoop.recheck`` with an
adapter's ``maintain``): entries blocked while it is down, reconciled before trading."""

from __future__ import annotations

from types import SimpleNamespace

from tradewarden.engine.inbox import Operations
from tradewarden.ops.paper import DeploymentLoop


class _Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def now(self) -> float:
        return self.t


class _Engine:
    """The parts of the engine ``recheck`` uses; blocks go through the real
    ``Operations.set_venue_blocks`` so the events are the engine's."""

    set_venue_blocks = Operations.set_venue_blocks

    def __init__(self) -> None:
        self.venue_blocks: dict[str, str] = {}
        self.events: list[tuple] = []
        self.calls: list[str] = []
        self.by_name = {"AAPL": None}

    def event(self, ts, kind, symbol, message) -> None:
        self.events.append((ts, kind, symbol, message))

    def reconcile(self, ts, *, name, previous) -> None:
        self.calls.append(f"reconcile@{ts:g}:blocks={sorted(self.venue_blocks)}")

    def flush(self) -> None:
        self.calls.append("flush")


class _Session:
    """An adapter whose socket drops and comes back."""

    def __init__(self) -> None:
        self.up = True
        self.back_at: float | None = None
        self.alerts: list[str] = []

    def entry_blocks(self) -> dict[str, str]:
        return {} if self.up else {"AAPL": "broker_disconnected: socket closed"}

    def maintain(self, now: float) -> bool:
        if not self.up and self.back_at is not None and now >= self.back_at:
            self.up = True
            return True
        return False


def _loop(session: _Session, clock: _Clock) -> tuple[DeploymentLoop, _Engine]:
    engine = _Engine()
    engine.broker = session
    ledger = SimpleNamespace(reconciliations=lambda **kw: [])
    dep = SimpleNamespace(kernel=SimpleNamespace(engine=engine), clock=clock, ledger=ledger,
                          name="ibkr-aapl", deployment_id=1)
    loop = DeploymentLoop(dep, feed=None, reconcile_seconds=900.0)
    loop.next_check = clock.now() + 900
    return loop, engine


def test_a_lost_session_blocks_entries_once_and_reconnecting_reconciles_before_unblocking():
    clock, session = _Clock(1_000.0), _Session()
    loop, engine = _loop(session, clock)
    loop.recheck()
    assert engine.venue_blocks == {} and engine.events == [] and engine.calls == []

    session.up = False
    session.alerts.append("ibkr: connection lost (socket closed); entries blocked")
    clock.t = 1_010.0
    loop.recheck()
    loop.recheck()                                   # no change: nothing recorded twice
    assert engine.venue_blocks == {"AAPL": "broker_disconnected: socket closed"}
    assert [e[1:] for e in engine.events] == [
        ("block", "AAPL", "venue_status: broker_disconnected: socket closed"),
        ("alert", None, "ibkr: connection lost (socket closed); entries blocked")]
    assert "reconcile" not in " ".join(engine.calls)

    session.back_at = 1_070.0
    clock.t = 1_070.0
    loop.recheck()
    # reconciled at once (not at the 15-minute mark), while still blocked, then unblocked
    assert engine.calls[-3:] == ["flush", "reconcile@1070:blocks=['AAPL']", "flush"]
    assert engine.venue_blocks == {}
    assert engine.events[-1][1:] == ("unblock", "AAPL",
                                     "venue_status: the venue takes entries again")
    assert loop.next_check == 1_070.0 + 900.0


def test_an_adapter_without_a_session_is_left_to_the_periodic_reconciliation():
    clock = _Clock(5_000.0)
    engine = _Engine()
    engine.broker = SimpleNamespace(entry_blocks=lambda: {"AAPL": "halted"})
    dep = SimpleNamespace(kernel=SimpleNamespace(engine=engine), clock=clock,
                          ledger=SimpleNamespace(reconciliations=lambda **kw: []),
                          name="x", deployment_id=1)
    loop = DeploymentLoop(dep, feed=None, reconcile_seconds=900.0)
    loop.next_check = 5_900.0
    loop.recheck()
    assert engine.venue_blocks == {} and engine.calls == []     # not yet due
    clock.t = 5_900.0
    loop.recheck()
    assert engine.calls[0].startswith("reconcile@5900") and engine.venue_blocks == {"AAPL": "halted"}


def test_without_periodic_reconciliation_a_reconnect_still_reconciles_once():
    clock, session = _Clock(2_000.0), _Session()
    loop, engine = _loop(session, clock)
    loop.reconcile_seconds, loop.next_check = None, None     # paper: no periodic check
    session.up, session.back_at = False, 2_060.0
    session.connected = False
    loop.recheck()
    assert "reconcile" not in " ".join(engine.calls)
    clock.t = 2_060.0
    session.connected = True
    loop.recheck()
    assert [c for c in engine.calls if c.startswith("reconcile")] == [
        "reconcile@2060:blocks=['AAPL']"]
    assert loop.next_check is None
    clock.t = 9_000.0
    loop.recheck()                       # nothing due: no second reconciliation
    assert sum(c.startswith("reconcile") for c in engine.calls) == 1


def test_a_session_down_is_never_asked_to_reconcile():
    clock, session = _Clock(3_000.0), _Session()
    loop, engine = _loop(session, clock)
    session.up, session.connected = False, False
    clock.t = 3_000.0 + 900.0              # the periodic check is due, the venue is away
    loop.recheck()
    assert "reconcile" not in " ".join(engine.calls)
    assert engine.venue_blocks == {"AAPL": "broker_disconnected: socket closed"}
