"""Graduated-autonomy governors: who may turn an approved order into a submitted one.

The engine asks :meth:`authorize` after risk approval and before submission. The
answer is recorded with the decision; an LLM may inform a decision but never
replaces this gate.
"""

from __future__ import annotations

from typing import NamedTuple

from tradewarden.domain import Verdict


class Authorization(NamedTuple):
    """A typed verdict (:class:`~tradewarden.domain.Verdict`: execute, queue for human
    approval, or monitor only) and its reason.

    Immutable (a named tuple; asked for on every approved entry and exit)."""

    verdict: Verdict
    reason: str


_EXECUTE = Authorization(Verdict.EXECUTE, "autonomous")
_EXITS_PASS = Authorization(Verdict.EXECUTE, "exits always pass")


class AutonomousGovernor:
    """Execute every risk-approved order (replay and fully autonomous paper)."""

    name = "autonomous"

    def authorize(self, symbol: str, action: str, detail: dict) -> Authorization:
        """Return ``execute``."""
        return _EXECUTE


class MonitorOnlyGovernor:
    """Record decisions, submit nothing (observe a strategy before trusting it)."""

    name = "monitor"

    def authorize(self, symbol: str, action: str, detail: dict) -> Authorization:
        """Return ``monitor`` for entries; exits of existing positions still execute."""
        if action == "exit":
            return _EXITS_PASS
        return Authorization(Verdict.MONITOR, "monitor-only autonomy level")


class ApprovalGovernor:
    """Queue every risk-approved entry for a person's approval; exits still execute.

    A queued entry is persisted in the ledger's ``approvals`` table with the risk figures
    it was checked against (status ``pending``).
    """

    name = "approval"

    def authorize(self, symbol: str, action: str, detail: dict) -> Authorization:
        """Return ``queue`` for entries and ``execute`` for exits."""
        if action == "exit":
            return _EXITS_PASS
        return Authorization(Verdict.QUEUE, "entries need a person's approval")


GOVERNORS = {"autonomous": AutonomousGovernor, "monitor": MonitorOnlyGovernor,
             "approval": ApprovalGovernor}
