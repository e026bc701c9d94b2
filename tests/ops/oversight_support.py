"""A small ledger with real rows for the oversight tests: a paper deployment ``desk`` on the
bundled BTC-USD and ETH-USD 1 h bars, built through the kernel with the approval governor,
fed bar by bar, its commands carried out by the engine as the runner does.

Script (bars 0..8 of both symbols): BTC enters at bar 1 (queued, approved), exits at bar
4 (a closed round trip), enters again at bar 6 (queued, approved: an open position with
a stop); ETH enters at bar 8 (queued: approval left pending). An agent decision and its
``queue`` verdict are recorded for the ETH intent (as the reasoner and the governor
record them), linked by the engine decision's run and seq.
"""

from __future__ import annotations

import json
from decimal import Decimal

import numpy as np

from tradewarden.agent import records
from tradewarden.data import load_market_data
from tradewarden.domain import COINBASE_SPECS, BarSeries
from tradewarden.engine import ReplayClock
from tradewarden.ledger import Ledger
from tradewarden.ops.kernel import assemble
from tradewarden.strategy.base import SignalFrame, Strategy, StrategyParams

SYMS = ("BTC-USD", "ETH-USD")
D = Decimal
_BARS: dict[str, BarSeries] = {}


def bars() -> dict[str, BarSeries]:
    """The bundled real 1 h bars of :data:`SYMS` (first 20), loaded once."""
    if not _BARS:
        series = load_market_data(None).series
        _BARS.update({s: series[s].slice(0, 20) for s in SYMS})
    return _BARS


class _Params(StrategyParams):
    """No parameters: the script is given to the constructor."""


class Script(Strategy):
    """Enter / exit a symbol on given bar indexes; a stop 5 % under the entry bar's close."""

    name = "scripted"
    Params = _Params
    input_names = ("flag",)

    def __init__(self, enter: dict[str, list[int]], exit_: dict[str, list[int]]) -> None:
        super().__init__(_Params())
        self.enter, self.exit = enter, exit_

    @property
    def warmup(self) -> int:
        return 1

    def prepare(self, b: BarSeries) -> SignalFrame:
        ts = bars()[b.symbol].ts
        enter = np.isin(b.ts, [ts[i] for i in self.enter.get(b.symbol, [])])
        exit_ = np.isin(b.ts, [ts[i] for i in self.exit.get(b.symbol, [])])
        return SignalFrame(enter, exit_, enter.astype(np.int8), ("idle", "scripted_entry"),
                           b.close * 0.95, np.full(len(b), np.nan), {"flag": enter.astype(float)},
                           entry_reason="scripted_entry", exit_reason="scripted_exit")


class Desk:
    """The paper deployment ``desk`` (see the module notes), running in this process, on
    an SQLite file in ``tmp_path`` or the ledger ``db`` (a URL)."""

    def __init__(self, tmp_path, *, governor: str = "approval", db: str | None = None) -> None:
        self.db = db or tmp_path / "ledger.db"
        self.ledger = Ledger(self.db)
        config = json.dumps({"symbols": list(SYMS), "strategy": "scripted", "timeframe": "1h",
                             "params": {}, "risk": {"daily_loss_limit": 0.05}})
        dep = self.ledger.open_deployment("desk", mode="paper", config=config, config_hash="h")
        self.dep_id = dep["deployment_id"]
        self.run_id = "run1"
        self.ledger.create_run({"run_id": self.run_id, "mode": "paper",
                                "capital_mode": "independent", "market_time_basis": "test",
                                "data_integrity": "ok", "config_hash": "h", "config": config,
                                "strategy": "scripted", "symbols": json.dumps(list(SYMS)),
                                "timeframe": "1h", "initial_capital": D(10000)})
        self.ledger.set_deployment_status(self.dep_id, "running", run_id=self.run_id)
        self.bars = bars()
        self.clock = ReplayClock(int(self.bars[SYMS[0]].ts[0]))
        strategy = Script({"BTC-USD": [1, 6], "ETH-USD": [8]}, {"BTC-USD": [4]})
        self.engine = assemble("paper", run_id=self.run_id, strategy=strategy,
                               instruments={s: COINBASE_SPECS[s] for s in SYMS},
                               ledger=self.ledger, capital=D(10000), governor=governor,
                               clock=self.clock, deployment_id=self.dep_id).engine
        self.i = 0

    def to(self, last: int) -> None:
        """Deliver the bars of both symbols up to and including index ``last``."""
        while self.i <= last:
            for s in SYMS:
                self.engine.on_bar(self.bars[s].bar(self.i))
            self.engine.flush()
            self.i += 1

    def act(self) -> list[tuple[int, str, str]]:
        """Carry out the pending commands as the runner does between bars."""
        pending = self.ledger.pending_commands(self.dep_id)
        approvals = {a["id"]: a for a in self.ledger.approvals(deployment_id=self.dep_id)}
        diffs = self.ledger.reconciliations(deployment_id=self.dep_id, status="open")
        return self.engine.handle_commands(pending, self.clock.now(), approvals=approvals,
                                           differences=diffs)

    def pending_approval(self, symbol: str) -> dict:
        (row,) = [a for a in self.ledger.approvals(deployment_id=self.dep_id, status="pending")
                  if a["symbol"] == symbol]
        return row

    def approve(self, symbol: str) -> None:
        """Approve the symbol's pending approval through the inbox (as the CLI does)."""
        row = self.pending_approval(symbol)
        self.ledger.enqueue_command(self.dep_id, "approve", actor="setup", target=str(row["id"]))
        assert [r[1] for r in self.act()] == ["done"]

    def build(self) -> Desk:
        """Play the script to bar 8 and record the agent decision of the ETH intent."""
        self.to(1)
        self.approve("BTC-USD")
        self.to(6)
        self.approve("BTC-USD")
        self.to(8)
        eth = self.pending_approval("ETH-USD")
        self.decision_id = records.record_decision(
            self.ledger, deployment_id=self.dep_id, run_id=self.run_id, ts=int(eth["ts"]),
            event_kind="entry_signal", reasoner="default", autonomy_level=1,
            context={"positions": [{"symbol": "BTC-USD"}], "autonomy_level": 1},
            output={"action": "EXECUTE_TRADES", "target_symbols": ["ETH-USD"],
                    "confidence": 0.7, "reasoning": "ETH broke its 6-bar high",
                    "key_factors": ["breakout"], "risks_considered": ["thin volume"]},
            symbol="ETH-USD", decision_seq=int(eth["decision_seq"]))
        records.record_verdict(self.ledger, agent_decision_id=self.decision_id,
                               deployment_id=self.dep_id, ts=int(eth["ts"]), autonomy_level=1,
                               verdict="queue", reason="L1: every trade waits for a person")
        self.eth_approval = int(eth["id"])
        return self

    def stop(self) -> None:
        """Mark the deployment stopped (its process gone), as the runner does at exit."""
        self.ledger.finish_run(self.run_id, status="interrupted")
        self.ledger.set_deployment_status(self.dep_id, "stopped")
