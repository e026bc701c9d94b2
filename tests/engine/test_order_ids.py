"""Client order ids: a deployment issues them from its persisted sequence, so a restart
never reuses one; the engine denies an id it issued before; replay's ids are unchanged."""

from __future__ import annotations

import sqlite3

import pytest

from tradewarden.engine import ReplayClock
from tradewarden.engine.order_ids import DeploymentOrderIds, DuplicateOrderId, RunOrderIds
from tradewarden.execution import make_order_id
from tradewarden.ledger import Ledger
from tradewarden.ledger.store import LedgerError

SYM = "BTC-USD"


def deployment(led: Ledger, name="btc-paper", mode="paper", config_hash="h1"):
    return led.open_deployment(name, mode=mode, config="{}", config_hash=config_hash,
                               strategy_source="builtin:tradewarden==0.1.0")


def test_a_deployment_is_created_once_and_keeps_its_configuration(tmp_path):
    led = Ledger(tmp_path / "l.db")
    first = deployment(led)
    assert first["status"] == "created" and first["next_order_seq"] == 0
    assert deployment(led)["deployment_id"] == first["deployment_id"]
    with pytest.raises(LedgerError, match="keeps its configuration"):
        deployment(led, config_hash="h2")
    with pytest.raises(LedgerError, match="is a paper deployment, not live"):
        deployment(led, mode="live")
    with pytest.raises(LedgerError, match="deployment name 'no spaces'"):
        deployment(led, name="no spaces")
    with pytest.raises(LedgerError, match="no deployment 'nope'"):
        led.reserve_order_seq("nope", 1)
    led.close()


def test_reserved_numbers_survive_a_restart_and_are_never_handed_out_twice(tmp_path):
    led = Ledger(tmp_path / "l.db")
    dep = deployment(led)["deployment_id"]
    ids = DeploymentOrderIds(dep, lambda n: led.reserve_order_seq(dep, n), block=4)
    before = [ids.prefix(SYM, i) for i in range(6)]          # two blocks: 0-3, 4-7
    led.close()                                                # "crash": 6 and 7 never used
    led = Ledger(tmp_path / "l.db")
    again = DeploymentOrderIds(dep, lambda n: led.reserve_order_seq(dep, n), block=4)
    after = [again.prefix(SYM, i) for i in range(3)]
    assert before == [f"tw-{dep}-{n}" for n in range(6)]
    assert after == [f"tw-{dep}-{n}" for n in (8, 9, 10)]
    assert deployment(led)["next_order_seq"] == 12
    led.close()


def test_replay_ids_are_the_runs_deterministic_ones():
    assert f"{RunOrderIds('r1').prefix(SYM, 42)}-entry" == make_order_id("r1", SYM, 42, "entry")


def test_paper_deployment_orders_continue_after_a_restart(tmp_path, make_engine, scripted, real_bars):
    bars = real_bars[SYM].slice(0, 40)
    db = tmp_path / "ledger.db"
    for run, (enter, exit_) in enumerate((((5,), (15,)), ((25,), (35,)))):
        led = Ledger(db)
        dep = deployment(led)["deployment_id"]
        led.close()
        engine, ledger = make_engine(tmp_path, scripted(enter_ts=[bars.ts[i] for i in enter],
                                                        exit_ts=[bars.ts[i] for i in exit_]),
                                     mode="paper", db=db, run_id=f"run{run}", deployment_id=dep,
                                     clock=ReplayClock(int(bars.ts[0])))
        lo, hi = (0, 20) if run == 0 else (20, 40)
        for i in range(lo, hi):
            engine.process_chunk({SYM: bars.slice(i, i + 1)})
        ledger.close()
    with sqlite3.connect(db) as c:
        seen = [r[0] for r in c.execute("select client_order_id from orders order by rowid")]
    assert len(seen) == 4 and len(set(seen)) == 4
    assert [s.rsplit("-", 2)[-2:] for s in seen] == [["0", "entry"], ["1", "exit"],
                                                    ["64", "entry"], ["65", "exit"]]
    assert all(s.startswith(f"tw-{dep}-") for s in seen)


def test_the_engine_denies_an_id_it_issued_before(tmp_path, make_engine, scripted, real_bars):
    class Stuck:
        def prefix(self, symbol, seq):
            return "tw-stuck-1"

    bars = real_bars[SYM].slice(0, 30)
    engine, ledger = make_engine(tmp_path, scripted(enter_ts=[bars.ts[3], bars.ts[12]],
                                                    exit_ts=[bars.ts[8]]), reference=True)
    engine.order_ids = Stuck()
    engine.process_chunk({SYM: bars.slice(0, 10)})              # entry and exit: two roles
    with pytest.raises(DuplicateOrderId, match="'tw-stuck-1-entry' was issued before"):
        engine.process_chunk({SYM: bars.slice(10, 30)})
    ledger.close()
