"""The REST API (``tradewarden.web``) over a real paper deployment's ledger
(``oversight_support.Desk``: bundled BTC-USD / ETH-USD bars through the kernel and the
approval governor: an open BTC position with a stop, a closed BTC round trip, an ETH
entry queued for approval with its agent decision).

Every figure is checked against the ledger or the oversight read model; every action's
inbox row is carried out by the engine's ``handle_commands`` (``Desk.act``), as a
running deployment does between bars. FastAPI's TestClient for the routes; real
uvicorn servers (a thread, and ``warden serve`` as a process) for concurrent approvals,
the loopback rule and the logs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from api_support import TOKEN, RateClock, make_client
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tradewarden.agent import records
from tradewarden.ledger import Ledger
from tradewarden.ops.api_settings import ApiSettings
from tradewarden.ops.daemon import DaemonLock
from tradewarden.ops.oversight import Oversight
from tradewarden.web.app import create_app
from tradewarden.web.auth import ApiConfigError, SlidingWindow, check_bind, is_loopback
from tradewarden.web.server import start_background

#: Every endpoint of issue 15, as (method, path) in the OpenAPI document.
ENDPOINTS = {
    ("get", "/api/status"), ("get", "/api/positions"), ("get", "/api/decisions"),
    ("get", "/api/decisions/{decision_id}"), ("get", "/api/queue"),
    ("post", "/api/decisions/{approval_id}/approve"),
    ("post", "/api/decisions/{approval_id}/reject"), ("post", "/api/daemon/pause"),
    ("post", "/api/daemon/resume"), ("get", "/api/costs"), ("get", "/api/runs"),
    ("get", "/api/runs/{run_id}"), ("get", "/api/runs/{run_id}/trades"), ("get", "/api/equity"),
    ("get", "/api/thoughts"),
}

# the session's PostgreSQL server of the ledger tests (tests/ledger/conftest.py, by path)
_spec = importlib.util.spec_from_file_location(
    "_tw_ledger_conftest_web", Path(__file__).resolve().parents[1] / "ledger" / "conftest.py")
_ledger_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_ledger_conftest)
postgres_url = _ledger_conftest.postgres_url


def _commands(desk) -> list[dict]:
    return desk.ledger.commands(deployment_id=desk.dep_id)


# ------------------------------------------------------------------ documents, auth


def test_the_openapi_document_lists_every_endpoint_typed(reader):
    doc = reader.get("/openapi.json").json()
    found = {(meth, path) for path, ops in doc["paths"].items() for meth in ops}
    assert found == ENDPOINTS
    for path, ops in doc["paths"].items():
        for meth, op in ops.items():
            ok = op["responses"]["200"]["content"]["application/json"]["schema"]
            assert ok, (meth, path)                          # a typed answer
            assert "401" in op["responses"], (meth, path)    # the token is documented
    assert reader.get("/docs").status_code == 200


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", f"Basic {TOKEN}", "Bearer "])
def test_every_api_call_without_the_right_token_gets_401(built, header):
    client = make_client(built, headers=False)
    if header is not None:
        client.headers["Authorization"] = header
    doc = client.get("/openapi.json").json()               # the docs load without a token
    for path, ops in doc["paths"].items():
        url = path.format(decision_id=1, approval_id=built.eth_approval, run_id="run1")
        for meth in ops:
            r = client.request(meth.upper(), url, json={"reason": "x"})
            assert r.status_code == 401, (meth, url, r.text)
            assert "token" in r.json()["error"] and r.headers["www-authenticate"] == "Bearer"
    assert client.get("/").status_code == 200               # the page asks for the token
    assert [c for c in _commands(built) if c["actor"].startswith("api:")] == []


def test_without_a_token_configured_loopback_calls_need_none(built):
    client = make_client(built, token=None)
    assert client.get("/api/status").status_code == 200


def test_a_missing_ledger_is_503_naming_it_and_the_server_still_answers(tmp_path):
    client = TestClient(create_app(str(tmp_path / "none.db")))
    r = client.get("/api/status")
    assert r.status_code == 503
    assert r.json()["error"] == f"the ledger is not available: no ledger at {tmp_path / 'none.db'}"
    assert client.get("/").status_code == 200 and not (tmp_path / "none.db").exists()


def test_the_bind_rule_and_the_constant_time_compare():
    for host in ("127.0.0.1", "127.8.9.1", "::1", "[::1]", "localhost"):
        assert is_loopback(host)
        check_bind(host, has_token=False)
    for host in ("0.0.0.0", "::", "192.168.1.5", "dash.example.org"):
        assert not is_loopback(host)
        with pytest.raises(ApiConfigError, match=r"\[api\] host .*TRADEWARDEN_API__TOKEN"):
            check_bind(host, has_token=False)
        check_bind(host, has_token=True)


def test_no_cors_headers_unless_origins_are_configured(built):
    origin = {"Origin": "https://evil.example"}
    plain = make_client(built)
    r = plain.get("/api/status", headers=origin)
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    r = plain.options("/api/status", headers={**origin, "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in r.headers
    allowed = make_client(built, cors=("https://ops.example",))
    r = allowed.get("/api/status", headers={"Origin": "https://ops.example"})
    assert r.headers["access-control-allow-origin"] == "https://ops.example"
    r = allowed.get("/api/status", headers=origin)
    assert "access-control-allow-origin" not in r.headers


# ------------------------------------------------------------------ reads


def test_status_matches_the_ledger(reader, built):
    st = reader.get("/api/status").json()
    assert st["health"] == "down" and st["running"] is False and st["heartbeat"] is None
    assert st["now"] == built.clock.now() and st["queue_depth"] == 1
    assert st["autonomy_level"] == 1 and st["paused"] is False
    (d,) = st["deployments"]
    assert d["name"] == "desk" and d["mode"] == "paper" and d["autonomy"] == "recommend only"
    assert d["positions"] == 1 and d["pending_approvals"] == 1 and d["kill_switch"] is False
    assert d["last_decision"]["id"] == built.decision_id
    assert d["last_decision"]["reasoning"] == "ETH broke its 6-bar high"


def test_status_health_follows_the_lock_and_the_heartbeat(desk):
    built = desk                                   # a heartbeat is written: not the shared one
    led = Ledger(built.db)
    led.daemon_heartbeat("d1", status="running", activity="waiting for the next bar",
                         deployments=["desk"])
    beat_at = time.time()
    client = TestClient(create_app(str(built.db), ApiSettings(), clock=lambda: beat_at + 5))
    o = Oversight(str(built.db))
    with DaemonLock(o.lock):
        st = client.get("/api/status").json()
        assert st["health"] == "ok" and st["running"] is True and st["pid"] == os.getpid()
        assert st["activity"] == "waiting for the next bar" and 0 <= st["heartbeat_age_seconds"] < 60
        late = TestClient(create_app(str(built.db), ApiSettings(), clock=lambda: beat_at + 900))
        assert late.get("/api/status").json()["health"] == "stale"
    assert client.get("/api/status").json()["health"] == "down"
    o.close()
    led.close()


def test_positions_carry_a_traffic_light_by_the_documented_rule(built):
    ((_, (pos,)),) = Oversight(str(built.db), clock=built.clock.now).positions().items()
    stop, mark = pos["stop_loss"], pos["mark"]
    distance = float((mark - stop) / stop)               # 1.1 % above the stop
    assert 0 < distance < 0.05
    amber = make_client(built).get("/api/positions").json()
    (p,) = amber["positions"]
    assert amber["stop_approach_fraction"] == 0.05
    assert p["deployment"] == "desk" and p["symbol"] == "BTC-USD" and p["state"] == "open"
    assert p["quantity"] == str(pos["quantity"]) and p["stop_loss"] == str(stop)
    assert p["stop_distance_pct"] == pytest.approx(distance * 100)
    assert p["risk"] == "amber" and p["risk_reasons"] == [
        f"mark {mark} is within {distance * 100:.2f}% of the stop {stop}"]
    assert p["daily_loss_used_pct"] is not None and p["daily_loss_used_pct"] < 50
    narrow = create_app(str(built.db), ApiSettings(token=TOKEN), clock=built.clock.now,
                        stop_approach_fraction=distance / 2)
    green = TestClient(narrow, headers={"Authorization": f"Bearer {TOKEN}"})
    (p,) = green.get("/api/positions").json()["positions"]
    assert p["risk"] == "green" and p["risk_reasons"] == []
    wide = create_app(str(built.db), None, clock=built.clock.now, stop_approach_fraction=0.9)
    (p,) = TestClient(wide).get("/api/positions").json()["positions"]
    assert p["risk"] == "amber" and len(p["risk_reasons"]) == 2     # the stop and the day's loss
    assert p["risk_reasons"][1].startswith("daily loss at ")


def test_decisions_with_filters_and_one_decisions_audit(reader, built):
    everything = reader.get("/api/decisions").json()["decisions"]
    (d,) = everything
    assert d["id"] == built.decision_id and d["deployment"] == "desk"
    assert d["reasoning"] == "ETH broke its 6-bar high" and d["key_factors"] == ["breakout"]
    assert d["verdicts"][0]["verdict"] == "queue"
    assert d["outcome"] == f"queued as approval {built.eth_approval}: pending"
    ts = d["ts"]
    hits = {"deployment=desk": 1, "symbol=ETH-USD": 1, "symbol=BTC-USD": 0,
            "action=execute_trades": 1, "action=HOLD": 0, f"since={ts}": 1,
            f"since={ts + 1}": 0, f"until={ts + 1}": 1, f"until={ts}": 0, "limit=1": 1}
    for query, n in hits.items():
        assert len(reader.get(f"/api/decisions?{query}").json()["decisions"]) == n, query
    assert reader.get("/api/decisions?deployment=nope").status_code == 404
    r = reader.get("/api/decisions?limit=0")
    assert r.status_code == 422 and r.json()["error"].startswith("limit:")
    r = reader.get(f"/api/decisions?since={ts}&until={ts}")
    assert r.status_code == 400 and "not after" in r.json()["error"]

    audit = reader.get(f"/api/decisions/{built.decision_id}").json()
    full = Oversight(str(built.db), clock=built.clock.now).audit(decision_id=built.decision_id)
    assert audit["decision"]["context"] == full["decision"]["context"]
    assert audit["decision"]["output"]["risks_considered"] == ["thin volume"]
    assert [a["id"] for a in audit["approvals"]] == [built.eth_approval]
    assert audit["outcome"] == full["outcome"]
    for bad, status in (("999", 404), ("abc", 422)):
        r = reader.get(f"/api/decisions/{bad}")
        assert r.status_code == status and r.json()["error"]
    assert "999: no such agent decision" in reader.get("/api/decisions/999").json()["error"]


def test_queue_lists_the_pending_approval_with_its_decision(reader, built):
    (a,) = reader.get("/api/queue").json()["approvals"]
    row = built.ledger.approval(built.eth_approval)
    assert a["id"] == built.eth_approval and a["status"] == "pending"
    assert a["symbol"] == "ETH-USD" and a["action"] == row["action"] == "enter_long"
    assert a["intent"] == json.loads(row["intent"]) and a["deployment"] == "desk"
    assert a["decision_id"] == built.decision_id and a["command_pending"] is None
    assert a["reasoning"] == "ETH broke its 6-bar high"


def test_costs_runs_report_trades_and_equity(reader, built, monkeypatch):
    from tradewarden.analytics import metrics

    def refuse(path):
        raise AssertionError(f"ADBC reader opened on {path} in the server's process")

    # the report's ADBC reader (its own copy of SQLite) never runs in the server's
    # process: closing it would drop this process's sqlite3 locks on the file
    monkeypatch.setattr(metrics, "_open_reader", refuse)
    led = Ledger(built.db)
    records.record_cost(led, ts=built.clock.now() - 60, provider="anthropic", model="m1",
                        call_type="decide", input_tokens=1000, output_tokens=200,
                        cost_usd=0.0123)
    led.close()
    costs = reader.get("/api/costs?days=1").json()
    assert costs["total"]["calls"] == 1 and costs["total"]["cost_usd"] == "0.0123"
    assert costs["rows"][0]["model"] == "m1" and costs["rows"][0]["input_tokens"] == 1000
    assert reader.get("/api/costs?days=0").status_code == 422

    (run,) = reader.get("/api/runs").json()["runs"]
    assert run["run_id"] == "run1" and run["mode"] == "paper"
    assert run["symbols"] == ["BTC-USD", "ETH-USD"]
    report = reader.get("/api/runs/run1").json()
    assert report["run"]["run_id"] == "run1" and report["verdict"] in ("PASS", "FAIL")
    assert report["trades"]["closed_trades"] == 1
    r = reader.get("/api/runs/nope")
    assert r.status_code == 404 and "nope" in r.json()["error"]

    (trade,) = reader.get("/api/runs/run1/trades").json()["trades"]
    (row,) = [dict(t) for t in Oversight(str(built.db))._trades(
        {"deployment_id": built.dep_id, "run_id": "run1", "name": "desk"})]
    assert trade["symbol"] == "BTC-USD" and trade["pnl"] == str(row["pnl"])
    assert trade["entry_price"] == str(row["entry_price"]) and trade["trade_id"] == row["trade_id"]
    assert reader.get("/api/runs/nope/trades").status_code == 404

    eq = reader.get("/api/equity?deployment=desk").json()
    assert eq["runs"] == ["run1"] and eq["quote"] == "USD"
    series = {s["account"]: s for s in eq["series"]}
    assert set(series) == {"BTC-USD", "ETH-USD", "total"}
    btc = series["BTC-USD"]["points"]
    assert [p["ts"] for p in btc] == [int(t) for t in built.bars["BTC-USD"].ts[:9]]
    assert btc[0]["equity"] == "10000.0" and series["BTC-USD"]["max_drawdown_pct"] > 0
    total = series["total"]["points"]
    assert float(total[-1]["equity"]) == pytest.approx(
        float(btc[-1]["equity"]) + float(series["ETH-USD"]["points"][-1]["equity"]))
    thin = reader.get("/api/equity?run_id=run1&max_points=10").json()["series"][0]["points"]
    assert len(thin) == 9                                    # 9 bars: nothing to thin
    assert reader.get("/api/equity").status_code == 400
    assert reader.get("/api/equity?deployment=nope").status_code == 404
    assert reader.get("/api/equity?run_id=nope").status_code == 404


# ------------------------------------------------------------------ actions


def test_approve_lands_in_the_ledger_and_the_engine_carries_it_out(desk):
    client = make_client(desk)
    r = client.post(f"/api/decisions/{desk.eth_approval}/approve")
    assert r.status_code == 200, r.text
    body = r.json()
    (cmd,) = [c for c in _commands(desk) if c["id"] in body["commands"]]
    assert cmd["kind"] == "approve" and cmd["target"] == str(desk.eth_approval)
    assert cmd["actor"] == body["actor"] == "api:ops-laptop" and cmd["created_at"]
    assert cmd["status"] == "pending"
    (a,) = client.get("/api/queue").json()["approvals"]
    assert a["command_pending"] == "approve"
    again = client.post(f"/api/decisions/{desk.eth_approval}/approve")
    assert again.status_code == 409 and "being decided" in again.json()["error"]
    assert [r[1] for r in desk.act()] == ["done"]
    row = desk.ledger.approval(desk.eth_approval)
    assert row["status"] == "approved" and row["acted_by"] == "api:ops-laptop"
    late = client.post(f"/api/decisions/{desk.eth_approval}/reject", json={"reason": "late"})
    assert late.status_code == 409 and "is approved by api:ops-laptop" in late.json()["error"]
    assert client.get("/api/queue").json()["approvals"] == []
    for bad, status in (("9999", 404), ("abc", 422)):
        r = client.post(f"/api/decisions/{bad}/approve")
        assert r.status_code == status and r.json()["error"]


def test_reject_needs_a_reason_and_records_it(desk):
    client = make_client(desk)
    url = f"/api/decisions/{desk.eth_approval}/reject"
    for body in (None, {}, {"reason": ""}, {"reason": "   "}, {"why": "x"}):
        r = client.post(url, json=body)
        assert r.status_code == 422, body
        assert "reason" in r.json()["error"] or "body" in r.json()["error"]
    assert _commands(desk)[-1]["actor"] == "setup"           # nothing queued by the API
    r = client.post(url, json={"reason": "  ETH too thin today "})
    assert r.status_code == 200
    cmd = _commands(desk)[-1]
    assert (cmd["kind"], cmd["reason"], cmd["actor"]) == ("reject", "ETH too thin today",
                                                          "api:ops-laptop")
    assert [r[1] for r in desk.act()] == ["done"]
    row = desk.ledger.approval(desk.eth_approval)
    assert (row["status"], row["reason"], row["acted_by"]) == (
        "rejected", "ETH too thin today", "api:ops-laptop")


def test_pause_and_resume_land_in_the_ledger_and_the_engine_carries_them_out(desk):
    client = make_client(desk)
    assert client.post("/api/daemon/pause").status_code == 422
    r = client.post("/api/daemon/pause", json={"reason": "lunch"})
    assert r.status_code == 200 and "pause queued by api:ops-laptop (lunch)" in r.json()["message"]
    cmd = _commands(desk)[-1]
    assert (cmd["kind"], cmd["reason"], cmd["actor"]) == ("pause", "lunch", "api:ops-laptop")
    assert [r[1] for r in desk.act()] == ["done"]
    assert desk.engine.paused
    st = client.get("/api/status").json()
    assert st["paused"] is True and st["deployments"][0]["paused"] is True
    r = client.post("/api/daemon/resume")
    assert r.status_code == 200 and _commands(desk)[-1]["kind"] == "resume"
    assert [r[1] for r in desk.act()] == ["done"]
    assert not desk.engine.paused and client.get("/api/status").json()["paused"] is False


def test_writes_are_rate_limited_in_a_sliding_window(desk):
    clock = RateClock()
    client = make_client(desk, limit=2, rate_clock=clock)
    pause = {"json": {"reason": "check"}}
    assert client.post("/api/daemon/pause", **pause).status_code == 200      # t = 0
    clock.t += 30
    assert client.post("/api/daemon/resume").status_code == 200             # t = 30
    clock.t += 29
    r = client.post("/api/daemon/pause", **pause)                           # t = 59
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    assert "at most 2 per minute" in r.json()["error"]
    assert client.get("/api/status").status_code == 200                     # reads are not limited
    clock.t += 1.5
    assert client.post("/api/daemon/pause", **pause).status_code == 200      # t = 60.5: the first left
    r = client.post("/api/daemon/resume")                                   # t = 60.5: 30 and 60.5 count
    assert r.status_code == 429 and r.headers["retry-after"] == "30"
    assert [c["kind"] for c in _commands(desk) if c["actor"] == "api:ops-laptop"] == [
        "pause", "resume", "pause"]
    with pytest.raises(ValueError):
        SlidingWindow(0)


# ------------------------------------------------------------------ real servers


def _settings(db, monkeypatch, **env):
    from tradewarden.settings import load_settings
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return load_settings(None, {"ledger.db": (str(db), "--db")})


def _add_pending(desk, n: int) -> list[int]:
    """``n`` more pending approvals of the deployment (copies of the ETH one, new seqs)."""
    eth = desk.ledger.approval(desk.eth_approval)
    before = {a["id"] for a in desk.ledger.approvals(deployment_id=desk.dep_id)}
    rows = [{**eth, "decision_seq": 10_000 + i} for i in range(n)]
    desk.ledger.write_approvals(desk.run_id, rows)
    desk.ledger.commit()
    return sorted({a["id"] for a in desk.ledger.approvals(deployment_id=desk.dep_id)} - before)


def _race(url: str, approval_id: int, n: int) -> list[int]:
    """``n`` clients approve or reject one approval at the same moment; their statuses."""
    barrier = threading.Barrier(n)
    statuses: list[int] = []
    # one client (thread-safe), a connection per thread: no TLS context built per thread
    client = httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60,
                          limits=httpx.Limits(max_connections=n), trust_env=False)

    def hit(i: int) -> None:
        barrier.wait()
        if i % 2:
            r = client.post(f"{url}api/decisions/{approval_id}/reject",
                            json={"reason": f"no {i}"})
        else:
            r = client.post(f"{url}api/decisions/{approval_id}/approve")
        statuses.append(r.status_code)

    threads = [threading.Thread(target=hit, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    client.close()
    return statuses


def _concurrent_rounds(desk, monkeypatch, rounds: int) -> None:
    loaded = _settings(desk.db, monkeypatch, TRADEWARDEN_API__TOKEN=TOKEN,
                       TRADEWARDEN_API__WRITE_LIMIT_PER_MINUTE="1000")
    handle = start_background(loaded, port=0)
    try:
        for aid in [desk.eth_approval, *_add_pending(desk, rounds - 1)]:
            statuses = _race(handle.url, aid, 8)
            assert sorted(statuses) == [200] + [409] * 7, (aid, statuses)
            waiting = [c for c in desk.ledger.pending_commands(desk.dep_id)
                       if c["target"] == str(aid)]
            assert len(waiting) == 1 and waiting[0]["actor"] == "api:api"
    finally:
        handle.stop()
    assert not handle.running


def test_concurrent_approvals_of_one_decision_exactly_one_wins(desk, monkeypatch):
    _concurrent_rounds(desk, monkeypatch, rounds=4)


def test_concurrent_approvals_on_postgresql(tmp_path, postgres_url, monkeypatch):
    from oversight_support import Desk
    desk = Desk(tmp_path, db=_ledger_conftest._new_database(postgres_url)).build()
    try:
        _concurrent_rounds(desk, monkeypatch, rounds=2)
    finally:
        desk.ledger.close()


def test_background_server_refuses_non_loopback_without_a_token(built, monkeypatch):
    loaded = _settings(built.db, monkeypatch, TRADEWARDEN_API__HOST="0.0.0.0")
    with pytest.raises(ApiConfigError, match=r"\[api\] host '0.0.0.0'.*TRADEWARDEN_API__TOKEN"):
        start_background(loaded, port=0)
    from tradewarden.cli import app
    res = CliRunner().invoke(app, ["serve", "--db", str(built.db), "--host", "0.0.0.0"])
    assert res.exit_code == 2 and "TRADEWARDEN_API__TOKEN" in res.output
    assert "Traceback" not in res.output
    res = CliRunner().invoke(app, ["serve", "--db", str(built.db.parent / "none.db"),
                                   "--host", "127.0.0.1"])
    assert res.exit_code == 2 and "no ledger at" in res.output


def test_warden_serve_prints_the_url_logs_requests_but_never_the_token(built, tmp_path):
    env = {**os.environ, "TRADEWARDEN_API__TOKEN": TOKEN, "NO_PROXY": "*",
           "TRADEWARDEN_SECRETS_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "tradewarden.cli", "serve", "--db",
                             str(built.db), "--port", "0"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = proc.stdout.readline()
        assert line.startswith("serving the dashboard at http://127.0.0.1:"), line
        url = line.split(" at ", 1)[1].split(" ", 1)[0]
        auth = {"Authorization": f"Bearer {TOKEN}"}
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"{url}api/status", headers=auth, timeout=60, trust_env=False)
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, "the server did not answer"
                time.sleep(0.1)
        assert r.status_code == 200 and r.json()["deployments"][0]["name"] == "desk"
        assert httpx.get(f"{url}api/queue", headers={"Authorization": f"Bearer {TOKEN}x"},
                         timeout=60, trust_env=False).status_code == 401
        assert httpx.get(f"{url}api/decisions/999", headers=auth, timeout=60,
                         trust_env=False).status_code == 404
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and out.strip().endswith("stopped")
    assert '"GET /api/status HTTP/1.1" 200' in err and '"GET /api/queue HTTP/1.1" 401' in err
    assert '"GET /api/decisions/999 HTTP/1.1" 404' in err
    assert TOKEN not in err and TOKEN not in out and TOKEN[:10] not in err


def test_background_server_logs_never_hold_the_token(built, monkeypatch, caplog):
    loaded = _settings(built.db, monkeypatch, TRADEWARDEN_API__TOKEN=TOKEN)
    caplog.set_level("DEBUG")
    handle = start_background(loaded, port=0)
    try:
        for token in (TOKEN, TOKEN + "x"):
            for path in ("api/status", "api/decisions/999", "api/queue"):
                httpx.get(f"{handle.url}{path}", headers={"Authorization": f"Bearer {token}"},
                          timeout=60, trust_env=False)
        httpx.post(f"{handle.url}api/decisions/{built.eth_approval}/reject",
                   headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60, trust_env=False)
    finally:
        handle.stop()
    text = caplog.text
    assert '"GET /api/decisions/999 HTTP/1.1" 404' in text and "401" in text
    assert TOKEN not in text and TOKEN[:10] not in text



class _Log:
    """Records structlog-style calls (event name and fields)."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict]] = []

    def info(self, event, **kw):
        self.lines.append(("info", event, kw))

    def error(self, event, **kw):
        self.lines.append(("error", event, kw))


def test_the_daemon_serves_the_dashboard_when_enabled(built, monkeypatch):
    from tradewarden.cli_serve import start_for_daemon
    log = _Log()
    off = _settings(built.db, monkeypatch)
    assert start_for_daemon(off, log) is None and log.lines == []
    holder = __import__("socket").socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    busy = holder.getsockname()[1]
    on = _settings(built.db, monkeypatch, TRADEWARDEN_API__ENABLED="true",
                   TRADEWARDEN_API__PORT=str(busy))
    assert start_for_daemon(on, log) is None                # the port is taken: logged
    assert log.lines[-1][:2] == ("error", "api_not_started")
    assert f"port {busy}: cannot listen there" in log.lines[-1][2]["error"]
    holder.close()
    handle = start_for_daemon(on, log)
    try:
        assert log.lines[-1] == ("info", "api_started", {"url": f"http://127.0.0.1:{busy}/"})
        assert httpx.get(f"{handle.url}api/queue", trust_env=False).json()[
            "approvals"][0]["id"] == built.eth_approval
    finally:
        handle.stop()
    assert not handle.running


def test_the_daemon_refuses_to_start_an_open_dashboard_without_a_token(tmp_path):
    from tradewarden.cli import app
    cfg = tmp_path / "d.toml"
    cfg.write_text(f'symbols = ["BTC-USD"]\n[ledger]\ndb = "{tmp_path / "l.db"}"\n'
                   '[venue]\nname = "coinbase"\n[api]\nenabled = true\nhost = "0.0.0.0"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWARDEN_")}
    r = CliRunner(env=env).invoke(app, ["daemon", "start", "--config", str(cfg), "--foreground",
                                        "--log", str(tmp_path / "d.log")])
    assert r.exit_code == 2
    assert "[api] host '0.0.0.0' is not a loopback address" in r.output
    assert not (tmp_path / "l.db").exists()                 # refused before anything ran
