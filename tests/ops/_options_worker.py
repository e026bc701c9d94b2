"""The put writer's deployment in a process of its own, for the options kill suite.

``child(db, port, client_id, kill_at, result)`` runs one ``OptionsDeployment.step``
(resuming the deployment's saved state, settling what a killed run left) at IBKR (the
fake TWS in the test's process) and kills itself with SIGKILL at ``kill_at``:

* ``after_journal``: the order is journaled and the state saved, nothing sent;
* ``after_submit``: IBKR has the order and filled it; the desk never heard;
* ``after_fill``: the fill is booked in the ledger's open batch, never committed.

Without ``kill_at`` it steps, reconciles and writes what it saw to ``result`` (JSON).
"""

from __future__ import annotations

import json
import os
import signal
from decimal import Decimal
from typing import Any

#: 2026-01-02 21:30 UTC: after the close (the fake's START + 6 h).
NOW = 1_767_367_800 + 6 * 3600
EXPIRY = "20260116"


class FixedClock:
    """The deployment's clock: one moment after the close."""

    def __call__(self) -> float:
        return float(NOW)

    def now(self) -> int:
        return NOW

    def wait_until(self, ts: int) -> None:
        return None


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def child(db: str, port: int, client_id: int, kill_at: str | None, result: str) -> None:
    from tradewarden.execution.ibkr import IbkrBroker
    from tradewarden.execution.ibkr_options import IbkrOptions
    from tradewarden.ledger import Ledger
    from tradewarden.ops.options_live import OptionsDeployment
    from tradewarden.ops.options_replay import OptionsRunConfig
    from tradewarden.strategy.put_writer import PutWriterParams

    clock = FixedClock()
    broker = IbkrBroker.connect("127.0.0.1", port, client_id, None, ["AAPL"], clock, timeout=10)
    real_submit = broker.submit

    def submit(order: Any, legs: tuple = ()) -> list:
        if kill_at == "after_journal":
            _die()
        events = real_submit(order, legs)
        if kill_at == "after_submit":
            seen = list(events)
            for _ in range(400):                     # until IBKR says it filled
                if any(e.kind.value == "filled" for e in seen):
                    _die()
                broker.ib.sleep(0.02)
                seen += broker.process(_bar(order.symbol))
        return events

    broker.submit = submit
    config = OptionsRunConfig(chain="ibkr", mode="paper", capital=Decimal("100000"),
                              params=PutWriterParams(underlying="AAPL", dte_min=7, dte_max=30,
                                                     delta_min=-0.35, delta_max=-0.10,
                                                     min_credit=0.5, max_positions=1))
    ledger = Ledger(db)
    dep = OptionsDeployment(ledger=ledger, broker=broker, options=IbkrOptions(broker.ib, clock),
                            clock=clock, config=config, deployment_id="pw", settle_polls=200)
    if kill_at == "after_fill":
        real_filled = dep.desk._filled

        def filled(*args: Any) -> None:
            real_filled(*args)                       # booked in the open batch, then gone
            _die()
        dep.desk._filled = filled
    dep.step()
    diffs = dep.reconcile()
    with open(result, "w") as fh:
        json.dump({"diffs": diffs, "recovered": dep.recovered,
                   "shorts": {o: s.contracts for o, s in dep.desk.shorts.items()},
                   "cash": str(dep.desk.cash)}, fh)
    broker.disconnect()
    ledger.close()


def _bar(symbol: str) -> Any:
    from tradewarden.domain import Bar
    return Bar(symbol, NOW, 1.0, 1.0, 1.0, 1.0, 0.0, NOW + 1)
