"""One start of ``warden daemon start --foreground`` in a process of its own, on simulated
time, that can SIGKILL itself at a chosen point (``test_daemon_kill.py``).

:func:`child` takes a plan (a dict) and, in the process it runs in:

1. starts a loopback TLS fake of Coinbase on simulated time beginning at ``plan["start"]``
   (UTC epoch seconds), points the CLI's clock and venue client at it (as the
   ``paper_venue`` fixture does in the test process), and writes the config
   ``plan["config"]`` (the template ``plan["template"]`` with ``{api_url}`` filled in);
2. arms what the plan asks (all optional):

   ``inject``: ``[(kind, payload), ...]`` enqueued on the daemon's own ledger at the first
   turn of the event loop at which the ledger holds a pending approval (``"when":
   "approval"``) or at the first turn (``"when": "start"``); each with the dedupe key
   ``kill-test-<kind>``, so a restart never adds it again;

   ``kill``: where to die by SIGKILL, once:
   ``("handler", kind)`` inside the event handler of ``kind`` (``Supervisor.consider``
   for reasoned kinds, ``Supervisor._anomaly``, ``Supervisor._end_of_day``) after its
   effects, before the dispatcher's ``finish_event``;
   ``("fill_bar",)`` inside a bar's step after the journal's commit of a bar that filled
   an order, before the daemon's ``on_bar`` (so before its ``order_filled`` event);
   ``("at", t)`` in the clock's sleep at simulated time ``t`` (between two heartbeats);

   ``close_on``: an event kind the deployment's reasoner answers with ``CLOSE_POSITION``
   of the event's symbol (as a model-backed reasoner may; the rules reasoner only closes
   on the strategy's exit signal), so that at L3 the daemon itself queues a close;

   ``fail_after_fill``: the step of the first bar after which the run has a fill raises
   (after the daemon's ``on_bar`` saw it): the service finishes the run as failed and
   opens the deployment again ``[daemon] reconnect_seconds`` later, in the same process;

   ``approve``: approve the oldest pending approval with ``warden approvals approve`` (a
   separate process, the real CLI) at the first sleep after the deployment opened at
   which one is pending (once);
3. runs the daemon through ``CliRunner`` until SIGTERM at ``plan["stop_at"]``.

Before dying it writes ``plan["state"]`` (JSON: ``killed_at`` simulated time, ``where``,
``pid``, ``event_id``); a run that returns writes ``exit_code``, ``output`` and ``sim_t`` there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "data" / "exchange"))
sys.path.insert(0, str(HERE))


def child(plan: dict, err_path: str) -> None:
    """Run :func:`main` in a forked test process; a failure's traceback also goes to
    ``err_path`` (the process's stderr is not the test's)."""
    try:
        main(plan)
    except BaseException:
        Path(err_path).write_text(traceback.format_exc())
        raise


def main(plan: dict) -> None:
    """Run one daemon start as the plan says (see the module notes)."""
    from fake_exchange_server import FakeVenue
    from paper_support import SimTime
    from typer.testing import CliRunner

    from tradewarden import cli_paper
    from tradewarden.cli import app
    from tradewarden.data.download import create_venue_client
    from tradewarden.engine.clock import WallClock

    for name in [k for k in os.environ if k.startswith("TRADEWARDEN_")]:
        del os.environ[name]            # only the plan's config counts (a forkserver's
    sim = SimTime(plan["start"])        # environment is the test process's at its start)
    server = FakeVenue("coinbase", sim.time, tls=True).start()
    os.environ["REQUESTS_CA_BUNDLE"] = server.ca_bundle
    cli_paper.clock_factory = lambda stopped: WallClock(sim.time, sim.sleep, stop=stopped)
    cli_paper.client_factory = lambda name, url: create_venue_client(
        name, api_url=url, config={"rateLimit": 1, "timeout": 5000})
    cfg = Path(plan["config"])
    cfg.write_text(plan["template"].replace("{api_url}", server.base_url))
    state = Path(plan["state"])
    state.unlink(missing_ok=True)

    def die(where: str, **more: object) -> None:
        state.write_text(json.dumps({"killed_at": sim.t, "where": where, "pid": os.getpid(),
                                     **more}))
        os.kill(os.getpid(), signal.SIGKILL)

    opened: list[object] = []
    arm(plan, sim, die, opened)
    stop_at = plan["stop_at"]
    kill = plan.get("kill")
    approve = {"done": not plan.get("approve")}

    def on_sleep(t: float) -> None:
        if kill and kill[0] == "at" and t >= kill[1]:
            die("at")
        if not approve["done"] and opened:
            approve["done"] = approve_oldest(plan, cfg, opened)
        if t >= stop_at and sim.on_sleep is not None:
            sim.on_sleep = None
            os.kill(os.getpid(), signal.SIGTERM)

    sim.on_sleep = on_sleep
    started = time.monotonic()
    r = CliRunner().invoke(app, ["daemon", "start", "--config", str(cfg), "--foreground",
                                 "--log", plan["log"], "--log-json"])
    server.stop()
    state.write_text(json.dumps({"exit_code": r.exit_code, "output": r.output, "sim_t": sim.t,
                                 "seconds": time.monotonic() - started,
                                 "exception": None if r.exception is None or r.exit_code == 0
                                 else "".join(traceback.format_exception(r.exception))}))


def approve_oldest(plan: dict, cfg: Path, opened: list) -> bool:
    """Approve the oldest pending approval through the real CLI in its own process
    (read through the daemon's own ledger: one copy of SQLite in this process); return
    whether there was one."""
    dep_id, ledger, name = opened[0]
    pending = ledger.approvals(deployment_id=dep_id, status="pending")
    if not pending:
        return False
    row = (pending[0]["id"], name)
    out = subprocess.run([sys.executable, "-m", "tradewarden.cli", "approvals", "approve",
                          str(row[0]), "--deployment", row[1], "--config", str(cfg),
                          "--by", "ivy"], capture_output=True, text=True, timeout=60, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"approve failed: {out.stdout}{out.stderr}")
    Path(plan["state"]).with_suffix(".approved").write_text(
        json.dumps({"approval_id": row[0], "output": out.stdout}))
    return True


def arm(plan: dict, sim: object, die, opened: list) -> None:
    """Install the injections and the kill of ``plan`` on the daemon's classes."""
    from tradewarden.ops.service import DaemonService
    from tradewarden.ops.supervision import Supervisor

    open_ = Supervisor.on_open

    def on_open(self, slot):
        open_(self, slot)
        opened.append((slot.opened.dep.deployment_id, self.ledger, slot.opened.dep.name))
    Supervisor.on_open = on_open

    inject = plan.get("inject") or []
    when = plan.get("when", "start")
    if inject:
        turn = Supervisor.on_turn

        def on_turn(self, now):
            if inject and opened and (when == "start" or self.ledger.approvals(status="pending")):
                for kind, payload in inject:
                    self.ledger.enqueue_event(kind, {"deployment_id": opened[0][0], **payload},
                                              due_at=now, dedupe_key=f"kill-test-{kind}")
                inject.clear()
            return turn(self, now)
        Supervisor.on_turn = on_turn

    if plan.get("fail_after_fill"):
        seen = DaemonService._bar
        failed = []

        def bar_then_fail(self, slot, b, decision):
            out = seen(self, slot, b, decision)
            if not failed and run_fills(slot.opened.dep):
                failed.append(b.ts)
                raise RuntimeError("test: the step fails after the bar that filled")
            return out
        DaemonService._bar = bar_then_fail

    close_on = plan.get("close_on")
    if close_on:
        from tradewarden.agent.reasoning import Action, DecisionOutput, RulesReasoner
        decide = RulesReasoner.decide

        def closing(self, event, context):
            if event.kind != close_on:
                return decide(self, event, context)
            return DecisionOutput(action=Action.CLOSE_POSITION, confidence=1.0,
                                  target_symbols=(event.symbol,),
                                  reasoning=f"close {event.symbol}: its stop is near")
        RulesReasoner.decide = closing

    kill = plan.get("kill")
    if not kill:
        return
    if kill[0] == "handler":
        kind = kill[1]
        name = {"anomaly_detected": "_anomaly", "end_of_day": "_end_of_day"}.get(kind, "consider")
        handler = getattr(Supervisor, name)

        def wrapped(self, event, *args, **kw):
            out = handler(self, event, *args, **kw)
            if event.kind == kind:
                die("handler", event_id=event.id, kind=kind)
            return out
        setattr(Supervisor, name, wrapped)
    elif kill[0] == "fill_bar":
        on_bar = DaemonService._bar

        def bar(self, slot, b, decision):
            dep = slot.opened.dep
            if run_fills(dep):          # the bar's fill is committed; on_bar has not seen it
                die("fill_bar", bar_ts=int(b.ts), run_id=dep.run_id)
            return on_bar(self, slot, b, decision)
        DaemonService._bar = bar
    elif kill[0] != "at":
        raise SystemExit(f"unknown kill {kill!r}")


def run_fills(dep) -> int:
    """How many fills the deployment's current run has committed."""
    from sqlalchemy import func, select

    from tradewarden.ledger import schema
    f = schema.fills
    dep.ledger.drain()
    with dep.ledger.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(f)
                                .where(f.c.run_id == dep.run_id)).scalar_one())
