"""The command inbox, approvals acted on and reconciliation differences (migration 0004):
commands are queued at once, what the engine does with them is committed with its batch."""

from __future__ import annotations

import sqlite3
from decimal import Decimal

import pytest

from tradewarden.ledger import Ledger, LedgerError, open_engine


def _run_row(run_id: str) -> dict:
    return {"run_id": run_id, "mode": "paper", "capital_mode": "independent",
            "market_time_basis": "t", "data_integrity": "ok", "config_hash": "h", "config": "{}",
            "strategy": "donchian", "symbols": '["BTC-USD"]', "timeframe": "1h",
            "initial_capital": Decimal("10000.00")}


def _events(first: int, n: int, run_id: str = "r1") -> dict:
    return {"run_id": [run_id] * n, "seq": list(range(first, first + n)), "ts": [1] * n,
            "kind": ["info"] * n, "symbol": [None] * n, "message": ["m"] * n}


def _deployment(led: Ledger, name: str = "alpha") -> str:
    return led.open_deployment(name, mode="paper", config="{}", config_hash="h")["deployment_id"]


def _approval(ts: int, symbol: str = "BTC-USD") -> dict:
    return {"decision_seq": ts // 3600, "ts": ts, "symbol": symbol, "action": "enter_long",
            "intent": '{"quantity": "0.1"}'}


def test_commands_are_numbered_committed_at_once_and_listed_oldest_first(ledger_db, query):
    db = ledger_db
    led = Ledger(db)
    alpha, beta = _deployment(led), _deployment(led, "beta")
    first = led.enqueue_command(alpha, "pause", actor="ana", reason="news at 14:00")
    second = led.enqueue_command(beta, "close", actor="bo", target="ETH-USD")
    third = led.enqueue_command(alpha, "approve", actor="ana", target="3")
    assert first < second < third
    rows = query(db, "select id, deployment_id, kind, target, reason, actor, status "
                     "from commands order by id")         # another connection sees them at once
    created = query(db, "select created_at from commands")[0][0]
    assert rows == [(first, alpha, "pause", None, "news at 14:00", "ana", "pending"),
                    (second, beta, "close", "ETH-USD", None, "bo", "pending"),
                    (third, alpha, "approve", "3", None, "ana", "pending")]
    assert len(created) == 20 and created.endswith("Z")
    assert [r["id"] for r in led.pending_commands(alpha)] == [first, third]
    assert [r["id"] for r in led.commands()] == [first, second, third]
    assert [r["id"] for r in led.commands(deployment_id=beta)] == [second]
    assert [r["id"] for r in led.commands(limit=2)] == [second, third]     # the newest two
    assert led.commands(status="done") == []
    led.close()


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "explode", "actor": "ana"}, "command kind 'explode': use one of approve, reject"),
    ({"kind": "approve", "actor": "ana"}, r"an approve command needs a target \(an approval id\)"),
    ({"kind": "close", "actor": "ana"}, r"a close command needs a target \(a symbol\)"),
    ({"kind": "pause", "actor": ""}, "command actor '': give 1-64 characters"),
    ({"kind": "pause", "actor": "x" * 65}, "give 1-64 characters"),
])
@pytest.mark.parametrize("ledger_db", ["sqlite"], indirect=True)   # checks before SQL
def test_a_bad_command_is_refused_and_nothing_is_queued(ledger_db, kwargs, message):
    led = Ledger(ledger_db)
    alpha = _deployment(led)
    with pytest.raises(LedgerError, match=message):
        led.enqueue_command(alpha, **kwargs)
    with pytest.raises(LedgerError, match="no deployment 'nope' in this ledger"):
        led.enqueue_command("nope", "pause", actor="ana")
    assert led.commands() == []
    with pytest.raises(LedgerError, match="command status 'maybe'"):
        led.commands(status="maybe")
    led.close()


@pytest.mark.parametrize("background", [False, True])
def test_finished_commands_commit_with_the_batch_and_roll_back_with_it(ledger_db, query,
                                                                       background):
    db = ledger_db
    led = Ledger(db, background=background)
    alpha = _deployment(led)
    led.create_run(_run_row("r1"))
    led.write_approvals("r1", [_approval(3600), _approval(7200)])
    led.commit()
    one = led.enqueue_command(alpha, "approve", actor="ana", target="1")
    two = led.enqueue_command(alpha, "reject", actor="ana", target="2", reason="too big")

    def seen() -> tuple:
        return (query(db, "select id, status, result, processed_at, run_id from commands "
                          "order by id"),
                query(db, "select id, status, acted_by from approvals order by id"),
                query(db, "select count(*) from events")[0][0])

    # a batch whose last write fails: the command and approval updates go with it
    led.write_rows("events", _events(0, 3))
    led.finish_commands("r1", [(one, "done", "entry submitted", "2026-01-01T00:00:00Z")])
    led.update_approvals([(1, "approved", "ana", "2026-01-01T00:00:00Z", None)])
    with pytest.raises(LedgerError, match="(?i)unique"):
        led.write_rows("events", _events(2, 1))           # duplicate key
        led.drain()
    led.finish_run("r1", status="failed", error="dup")   # rolls back the uncommitted batch
    assert seen() == ([(one, "pending", None, None, None), (two, "pending", None, None, None)],
                      [(1, "pending", None), (2, "pending", None)], 0)
    assert [r["id"] for r in led.pending_commands(alpha)] == [one, two]

    # the same batch, whole: invisible before the commit, all there after it
    led.create_run(_run_row("r2"))
    led.write_rows("events", _events(0, 3, "r2"))
    led.finish_commands("r2", [(one, "done", "entry submitted", "2026-01-01T00:00:00Z"),
                               (two, "refused", "approval 2 expired", "2026-01-01T00:00:01Z")])
    led.update_approvals([(1, "approved", "ana", "2026-01-01T00:00:00Z", None),
                          (2, "rejected", "ana", "2026-01-01T00:00:01Z", "too big")])
    if not background:
        assert seen()[0][0][1] == "pending" and seen()[2] == 0
    led.commit()
    led.drain()
    assert seen() == ([(one, "done", "entry submitted", "2026-01-01T00:00:00Z", "r2"),
                       (two, "refused", "approval 2 expired", "2026-01-01T00:00:01Z", "r2")],
                      [(1, "approved", "ana"), (2, "rejected", "ana")], 3)
    assert led.pending_commands(alpha) == []
    assert [r["status"] for r in led.commands(deployment_id=alpha, status="done")] == ["done"]
    assert led.approval(2)["reason"] == "too big" and led.approval(99) is None
    led.close()


@pytest.mark.parametrize("where", ["given", "memory"])
def test_reconciliations_are_written_listed_and_resolved_on_both_write_paths(ledger_db, where):
    """An SQLite file goes through the bulk transaction; ``sqlite://`` and PostgreSQL
    through executemany."""
    if where == "memory" and "://" in ledger_db:
        pytest.skip("sqlite:// once is enough")
    led = Ledger(ledger_db if where == "given" else "sqlite://")
    alpha, beta = _deployment(led), _deployment(led, "beta")
    led.create_run(_run_row("r1"))
    led.write_reconciliations("r1", [
        {"seq": 0, "deployment_id": alpha, "ts": 200, "kind": "position", "symbol": "BTC-USD",
         "ours": "0.0123", "venue": "0", "status": "open"},
        {"seq": 1, "deployment_id": alpha, "ts": 100, "kind": "order_unknown", "symbol": "BTC-USD",
         "ours": None, "venue": "abc-1", "status": "open"},
        {"seq": 2, "deployment_id": beta, "ts": 100, "kind": "balance", "symbol": None,
         "ours": "100", "venue": "99.5", "status": "open"}])
    led.commit()
    rows = led.reconciliations(deployment_id=alpha)
    assert [(r["seq"], r["kind"], r["ours"], r["venue"]) for r in rows] == [
        (1, "order_unknown", None, "abc-1"), (0, "position", "0.0123", "0")]     # by ts
    led.update_reconciliations([("r1", 0, "accepted", "ana", "2026-01-01T00:00:00Z")])
    led.enqueue_command(alpha, "accept", actor="ana")     # an immediate write after the batch
    led.commit()
    assert [r["seq"] for r in led.reconciliations(deployment_id=alpha, status="open")] == [1]
    done = led.reconciliations(deployment_id=alpha, status="accepted")
    assert [(r["seq"], r["resolved_by"], r["resolved_at"]) for r in done] == [
        (0, "ana", "2026-01-01T00:00:00Z")]
    assert len(led.reconciliations(deployment_id=beta, status="open")) == 1
    with pytest.raises(LedgerError, match="status 'closed'"):
        led.update_reconciliations([("r1", 1, "closed", "ana", "x")])
    with pytest.raises(LedgerError, match="reconciliation 5: status 'gone'"):
        led.write_reconciliations("r1", [{"seq": 5, "deployment_id": alpha, "ts": 1,
                                          "kind": "balance", "status": "gone"}])
    led.close()


def test_deployment_status_and_list(ledger_db):
    led = Ledger(ledger_db)
    alpha, beta = _deployment(led), _deployment(led, "beta")
    led.set_deployment_status(alpha, "running", run_id="r7")
    assert led.deployment("alpha")["status"] == "running" and led.deployment("alpha")["run_id"] == "r7"
    led.set_deployment_status(alpha, "stopped")                         # run_id kept
    assert (led.deployment("alpha")["status"], led.deployment("alpha")["run_id"]) == ("stopped", "r7")
    assert [(d["name"], d["status"]) for d in led.deployments()] == [("alpha", "stopped"),
                                                                       ("beta", "created")]
    assert [d["deployment_id"] for d in led.deployments(status="created")] == [beta]
    with pytest.raises(LedgerError, match="deployment status 'paused': use one of created"):
        led.set_deployment_status(alpha, "paused")
    with pytest.raises(LedgerError, match="no deployment 'nope'"):
        led.set_deployment_status("nope", "stopped")
    led.close()


def test_a_ledger_made_at_revision_0003_gets_the_inbox_keeping_its_rows(tmp_path):
    from alembic import command

    from tradewarden.ledger.migrate import HEAD_REVISION, alembic_config

    path = tmp_path / "old.db"
    engine = open_engine(path)                           # take it back to revision 0003
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0003")
    engine.dispose()
    with sqlite3.connect(path) as c:
        assert not {"commands", "reconciliations"} & {
            n for (n,) in c.execute("select name from sqlite_master where type='table'")}
        c.execute("insert into deployments values ('d1', 'alpha', 'paper', '2026-01-01T00:00:00Z',"
                  " '{}', 'h', null, 'stopped', 5, 'r1')")
        c.execute("insert into approvals (run_id, deployment_id, decision_seq, ts, symbol, action,"
                  " intent, status) values ('r1', 'd1', 3, 3600, 'BTC-USD', 'enter_long', '{}',"
                  " 'pending')")
    led = Ledger(path)
    with led.engine.connect() as conn:
        assert conn.exec_driver_sql("select version_num from alembic_version").scalar_one() \
            == HEAD_REVISION == "0011"
    assert led.deployment("alpha")["next_order_seq"] == 5
    cid = led.enqueue_command("d1", "approve", actor="ana", target="1")
    assert [(r["id"], r["kind"], r["target"]) for r in led.pending_commands("d1")] == [
        (cid, "approve", "1")]
    assert led.approval(1)["status"] == "pending"
    led.close()
