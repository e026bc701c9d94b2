"""The small protocols the engine is assembled from (besides the broker port in
:mod:`tradewarden.execution.base`, the clock in :mod:`.clock` and the strategy contract).

The engine knows its collaborators only through these shapes, so a test can hand it
fakes and the kernel (:mod:`tradewarden.ops.kernel`) can hand it each mode's parts.
"""

from __future__ import annotations

from typing import Any, Protocol

from tradewarden.domain import Fill, Instrument, Order, Signal, Trade, Verdict


class LedgerSink(Protocol):
    """What the engine writes to (``tradewarden.ledger.Ledger`` implements it)."""

    def write_columns(self, table: str, columns: dict[str, Any]) -> None:
        """Append a columnar batch (Arrow or NumPy arrays) to ``decisions`` or ``equity``."""

    def write_orders(self, run_id: str, orders: list[Order]) -> None:
        """Insert orders in their current state."""

    def update_orders(self, run_id: str, updates: list[tuple[str, str, str, int]]) -> None:
        """Apply ``(client_order_id, status, reason, ts)`` changes to orders written earlier."""

    def write_fills(self, run_id: str, fills: list[tuple[int, Fill]]) -> None:
        """Insert ``(fill_seq, Fill)`` pairs."""

    def write_trades(self, run_id: str, trades: list[Trade]) -> None:
        """Insert closed round trips."""

    def write_events(self, run_id: str, events: list[tuple[int, int | None, str, str | None, str]]) -> None:
        """Insert ``(seq, ts, kind, symbol, message)`` events."""

    def write_order_events(self, run_id: str,
                           events: list[tuple[int, int, str, str, str, str | None, int | None]]) -> None:
        """Insert ``(seq, ts, client_order_id, kind, status, reason, fill_seq)`` journal rows
        (called only by an engine in journal mode)."""

    def write_approvals(self, run_id: str, rows: list[dict[str, Any]]) -> None:
        """Insert intents the governor queued, as pending approvals."""

    def finish_commands(self, run_id: str, updates: list[tuple[int, str, str, str]]) -> None:
        """Record ``(command id, status, result, processed_at)`` of inbox commands, in
        the current batch (called only by a deployment's engine)."""

    def update_approvals(self, updates: list[tuple[int, str, str | None, str | None, str | None]]) -> None:
        """Record ``(approval id, status, acted_by, acted_at, reason)``, in the current batch."""

    def write_reconciliations(self, run_id: str, rows: list[dict[str, Any]]) -> None:
        """Insert reconciliation differences (``seq``, ``deployment_id``, ``ts``, ``kind``,
        ``symbol``, ``ours``, ``venue``, ``status``), in the current batch."""

    def update_reconciliations(self, updates: list[tuple[str, int, str, str, str]]) -> None:
        """Record ``(run_id, seq, status, resolved_by, resolved_at)``, in the current batch."""

    def commit(self) -> None:
        """Make the batches written since the last commit durable, as one transaction
        (a ledger with a writer thread queues the commit and returns)."""

    def drain(self) -> None:
        """Wait until every commit so far is applied (the order journal calls it before
        ``broker.submit``)."""


class Authorization(Protocol):
    """A governor's answer: a typed ``verdict`` (:class:`~tradewarden.domain.Verdict`:
    execute, queue, monitor) and its ``reason``."""

    verdict: Verdict
    reason: str


class Governor(Protocol):
    """Graduated-autonomy gate (``tradewarden.agent.governor`` has the built-in ones)."""

    def authorize(self, symbol: str, action: str, detail: dict) -> Authorization:
        """Return an authorization whose ``verdict`` is ``execute``, ``queue`` or ``monitor``."""


class RiskVerdictLike(Protocol):
    """A risk check's answer (``tradewarden.risk.RiskVerdict``)."""

    approved: bool
    reason: str
    quantity: Any
    detail: dict


class RiskGate(Protocol):
    """Sizing, pre-trade checks and circuit breakers (``tradewarden.risk.RiskManager``).

    ``events`` is a list the gate appends ``(ts, kind, account, message)`` to (halts,
    resets); the engine records and clears it.
    """

    events: list[tuple[int, str, str, str]]

    def halt(self, account: str, ts: int, reason: str, until: int | None = None) -> None:
        """Halt new entries for ``account`` (``kill_switch:...`` from the inbox)."""

    def reset(self, account: str, ts: int, why: str = "manual reset", kind: str | None = None) -> None:
        """Lift the halts on ``account`` (all, or only ``kind``)."""

    def snapshot(self) -> dict[str, Any]:
        """Return the breakers' state per account (``halts`` in force among them)."""

    def halted(self, account: str, ts: int) -> str | None:
        """Return the halt in force for ``account`` at ``ts`` (UTC epoch seconds), or ``None``."""

    def evaluate_entry(self, *, account: str, instrument: Instrument, ts: int, price: float,
                       signal: Signal, equity: float, peak_equity: float, cash: float,
                       open_positions: int) -> RiskVerdictLike:
        """Size and check a long entry (quote currency amounts)."""

    def on_trade_closed(self, account: str, ts: int, pnl: float, equity: float) -> None:
        """Update loss streaks and daily PnL after a round trip (quote currency)."""
