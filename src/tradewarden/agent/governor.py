"""Graduated-autonomy governors: who may turn an approved order into a submitted one.

The engine asks :meth:`authorize` after risk approval and before submission. The
answer is recorded with the decision; an LLM may inform a decision but never
replaces this gate.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Authorization:
    """``verdict`` is ``execute``, ``queue`` (await human approval) or ``monitor``."""

    verdict: str
    reason: str


class AutonomousGovernor:
    """Execute every risk-approved order (replay and fully autonomous paper)."""

    name = "autonomous"

    def authorize(self, symbol: str, action: str, detail: dict) -> Authorization:
        """Return ``execute``."""
        return Authorization("execute", "autonomous")


class MonitorOnlyGovernor:
    """Record decisions, submit nothing (observe a strategy before trusting it)."""

    name = "monitor"

    def authorize(self, symbol: str, action: str, detail: dict) -> Authorization:
        """Return ``monitor`` for entries; exits of existing positions still execute."""
        if action == "exit":
            return Authorization("execute", "exits always pass")
        return Authorization("monitor", "monitor-only autonomy level")


GOVERNORS = {"autonomous": AutonomousGovernor, "monitor": MonitorOnlyGovernor}
