"""Graduated-autonomy governors: who may turn an approved order into a submitted one.

The engine asks :meth:`authorize` after risk approval and before submission. The
answer is recorded with the decision; an LLM may inform a decision but never
replaces this gate.
"""

from __future__ import annotations

from typing import NamedTuple


class Authorization(NamedTuple):
    """``verdict`` is ``execute``, ``queue`` (await human approval) or ``monitor``.

    Immutable (a named tuple; asked for on every approved entry and exit)."""

    verdict: str
    reason: str


_EXECUTE = Authorization("execute", "autonomous")


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
            return Authorization("execute", "exits always pass")
        return Authorization("monitor", "monitor-only autonomy level")


GOVERNORS = {"autonomous": AutonomousGovernor, "monitor": MonitorOnlyGovernor}
