"""Client order ids: deterministic in replay, from a persisted sequence in a deployment.

Every order of one decision shares a prefix and adds its role (``-entry``,
``-take_profit``, ``-stop_loss``, ``-exit``; a replacement adds ``-r1``, ``-r2``...).

* Replay: ``tw-{run_id}-{symbol}-{decision seq}``; the same run and decision always
  give the same id (:func:`tradewarden.execution.make_order_id`).
* Paper and live: ``tw-{deployment_id}-{n}`` with ``n`` from the deployment's sequence
  in the ledger, reserved in blocks that are committed before use, so an id is never
  handed out twice, not even by a restart after a crash. Venue adapters map these to
  each venue's format.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class OrderIds(Protocol):
    """Where the engine gets a decision's client order id prefix."""

    def prefix(self, symbol: str, seq: int) -> str:
        """Return the id prefix for the orders of decision ``seq`` on ``symbol``."""


class RunOrderIds:
    """Replay ids ``tw-{run_id}-{symbol}-{seq}``: deterministic, one run only."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def prefix(self, symbol: str, seq: int) -> str:
        """Return ``tw-{run_id}-{symbol}-{seq}``."""
        return f"tw-{self.run_id}-{symbol}-{seq}"


class DeploymentOrderIds:
    """Deployment ids ``tw-{deployment_id}-{n}``, ``n`` never reused.

    Parameters
    ----------
    deployment_id : str
    reserve : callable
        ``reserve(count) -> first``: commits the reservation of ``count`` numbers and
        returns the first (``Ledger.reserve_order_seq`` bound to the deployment).
    block : int
        Numbers reserved per ledger round trip (unused ones are skipped after a restart).

    Raises
    ------
    ValueError
        ``block`` below 1.
    """

    def __init__(self, deployment_id: str, reserve: Callable[[int], int], block: int = 64) -> None:
        if block < 1:
            raise ValueError(f"order id block must be at least 1, got {block}")
        self.deployment_id = deployment_id
        self._reserve = reserve
        self.block = block
        self._next = self._end = 0

    def prefix(self, symbol: str, seq: int) -> str:
        """Return ``tw-{deployment_id}-{n}`` for the next unused ``n``."""
        if self._next >= self._end:
            self._next = self._reserve(self.block)
            self._end = self._next + self.block
        n = self._next
        self._next += 1
        return f"tw-{self.deployment_id}-{n}"


class DuplicateOrderId(ValueError):
    """The engine was about to issue a client order id it issued before."""
