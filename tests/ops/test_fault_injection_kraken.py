"""Kill a live Kraken deployment with SIGKILL at each step around a bracket entry, start it
again, and check the venue and the ledger against each other.

The venue is the loopback TLS fake of Kraken's REST API
(``tests/execution/kraken/fake_kraken.py``), running in this test's process, so its
orders, trades and balances outlive the deployment's process; the deployment (see
``_kraken_worker.py``) runs the real :class:`~tradewarden.execution.ccxt_broker.CcxtBroker`
over the real ccxt client, which signs every private request (API-Key, API-Sign, nonce),
in a process of its own forked from a server that imported everything once
(``multiprocessing``'s forkserver), so a kill is a real SIGKILL while a run costs only its
bars. Both share one simulated clock; before each bar the deployment asks the fake
(``POST /_test/step``, its test-control hook) to walk the price through that bar, and the
fake walks each bar once (a venue's time only moves forward).

On Kraken the bracket is emulated: the stop-loss rests at Kraken from the entry's fill,
the take-profit is held by the adapter and sold at market when a bar closes at or above
it (the stop cancelled first: Kraken holds the base for the open stop).

After each killed run, at the venue: at most one stop-loss rests, and only while BTC is
held; the ledger has booked nothing the venue did not do. After the last run, at the
venue: every client order id was sent exactly once (what the fake received) and placed
once; one entry and one stop-loss per entry decision and no other order than the
take-profit's sale and the exit; nothing left open. In the ledger: the venue's trades row
for row (price, volume, fee, time), the venue's BTC and USD balances as position and
cash, every order ended as the venue ended it, every bar decided exactly once, no
reconciliation difference left open, no "no stop" alarm unless a kill really left the
held position's stop cancelled; and decisions, fills and trades equal to a run that was
never killed. Last, every state the deployment committed (``engine_state``, one per
commit, all runs): an entry's two open legs are each other's OCO sibling, no leg is open
while nothing is held, no order is open that Kraken had ended before that bar closed.
(It failed, before the engine held an emulated entry's legs from the journal's commit on,
in every case that restarts from that commit: the legs came back as two unrelated orders.)
"""

from __future__ import annotations

import json
import multiprocessing
import signal
import sqlite3
import sys
import uuid
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import _kraken_worker as worker
import pytest
from _preload import FORKSERVER_PRELOAD

sys.path.insert(0, str(Path(__file__).parents[1] / "execution" / "kraken"))
from fake_kraken import FakeKraken

from tradewarden.execution.ccxt_broker import CLIENT_ID_NAMESPACE

SYM = worker.SYM
BARS = worker.BARS
KILLED = -signal.SIGKILL

_CTX = multiprocessing.get_context("forkserver")
# One forkserver serves the whole session and the last call before it starts wins (this
# module is collected after test_fault_injection.py and test_fault_injection_coinbase.py):
# the list is theirs plus what this suite's worker imports.
_CTX.set_forkserver_preload(FORKSERVER_PRELOAD)


def venue_id(cid: str) -> str:
    """The ``cl_ord_id`` Kraken gets for the engine's client order id (the adapter's rule)."""
    return str(uuid.uuid5(CLIENT_ID_NAMESPACE, cid))


@dataclass
class Scene:
    """One deployment's world: the fake, the shared clock, the ledger file."""

    fake: FakeKraken
    cell: object
    db: Path
    #: A kill left the held position's stop-loss cancelled at Kraken (between the cancel
    #: and the take-profit's sale): the one case where "no stop" alarms are due.
    unprotected: bool = False

    def run(self, *crash: object) -> tuple[int | None, str]:
        """Run the worker once; return its exit code (``-9``: killed) and its traceback."""
        argv = [str(self.db), "dep", str(BARS), *map(str, crash),
                "--api-url", self.fake.base_url, "--ca-bundle", self.fake.ca_bundle]
        err = Path(f"{self.db}.err")
        err.unlink(missing_ok=True)
        p = _CTX.Process(target=worker.child, args=(argv, str(err), self.cell))
        p.start()
        p.join(120)
        if p.exitcode is None:
            p.kill()
            p.join()
        return p.exitcode, err.read_text() if err.exists() else ""


def make_scene(directory: Path) -> Scene:
    """A started fake (USD = the deployment's capital, BTC 0, BTC-USD at the close before
    the window) on a clock shared with the worker, and its walk hook."""
    full, bars = worker.window()
    cell = _CTX.RawValue("d", float(bars.ts[0]))
    fake = FakeKraken(worker.KEY, worker.SECRET, balances={"USD": worker.CAPITAL}, pairs=[SYM],
                      now=lambda: cell.value).start()
    fake.set_price(SYM, repr(float(full.close[worker.OFFSET - 1])))
    walked = [0]

    def walk(body: dict) -> int:
        """Walk the bar opening at ``ts`` once (its fills stamped with the shared clock)."""
        ts = int(body["ts"])
        if ts <= walked[0]:
            return 0
        walked[0] = ts
        fake.step(SYM, body["open"], body["high"], body["low"], body["close"])
        return 1
    fake.control["step"] = walk
    return Scene(fake, cell, directory / "l.db")


@pytest.fixture
def scene(tmp_path):
    s = make_scene(tmp_path)
    yield s
    s.fake.stop()


def q(db: Path, sql: str, *args) -> list[tuple]:
    with sqlite3.connect(db) as c:
        return c.execute(sql, args).fetchall()


def ledger_view(db: Path) -> tuple[list, list, list]:
    """Decisions, fills and trades in the order they were written (``fill_seq`` starts
    again with each run), without client order ids (those differ between deployments)."""
    decisions = q(db, "select ts, action, reason, state, equity from decisions order by ts")
    fills = q(db, "select ts, side, quantity, price, fee, liquidity, role from fills "
                  "order by rowid")
    trades = q(db, "select entry_ts, exit_ts, quantity, entry_price, exit_price, pnl, exit_reason "
                   "from trades order by entry_ts")
    return decisions, fills, trades


def venue_trades(fake: FakeKraken) -> list[tuple]:
    """The venue's trades, oldest first: (price, volume, fee, time)."""
    return [(Decimal(t["price"]), Decimal(t["vol"]), Decimal(t["fee"]), int(t["time"]))
            for t in sorted(fake.trades.values(), key=lambda t: t["_seq"])]


def ledger_fills(db: Path) -> list[tuple]:
    """The ledger's fills as :func:`venue_trades` gives the venue's."""
    return [(Decimal(p), Decimal(v), Decimal(f), int(ts)) for p, v, f, ts in
            q(db, "select price, quantity, fee, ts from fills order by rowid")]


def open_stops(fake: FakeKraken) -> list:
    """The stop-loss orders resting at Kraken."""
    return [o for o in fake.orders.values() if o.is_open and o.ordertype == "stop-loss"]


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The run that was never killed: its ledger view, its venue's trades, its alerts and
    what is wrong in its committed states."""
    s = make_scene(tmp_path_factory.mktemp("whole"))
    try:
        code, err = s.run()
        assert code == 0, err[-3000:]
        return (ledger_view(s.db), venue_trades(s.fake),
                [m for (m,) in q(s.db, "select message from events where kind = 'alert'")],
                commit_problems(s))
    finally:
        s.fake.stop()


def test_the_uninterrupted_run_enters_with_brackets_that_end_at_the_venue(whole):
    (decisions, fills, trades), venue, alerts, problems = whole
    assert [d[1] for d in decisions].count("enter_long") == len(worker.ENTRIES)
    assert [t[6] for t in trades] == ["take_profit", "stop_loss", "signal"]
    assert len(decisions) == BARS and len(fills) == len(venue) == 6
    assert len(alerts) == 1 and "reached the take-profit" in alerts[0], alerts   # the sale
    assert problems == []


def journaled(db: Path) -> list[str]:
    """Orders the ledger holds as committed but never acknowledged (``submitted``)."""
    return [c for (c,) in q(db, "select client_order_id from orders where status = 'submitted'")]


def check_scene(step: str, nth: int, s: Scene) -> None:
    """The first kill landed where its step says, and left what a restart must repair."""
    fake, db = s.fake, s.db
    sent = [c for c in journaled(db) if fake.submit_count(venue_id(c))]
    if step == "after_journal":                         # journaled, never received
        assert [c for c in journaled(db) if c not in sent], q(db, "select * from orders")
    elif step == "in_submit":                           # the nth AddOrder never left
        assert len(fake.submits) == nth - 1, fake.submits
    elif step in ("after_response", "after_lost"):      # the nth AddOrder was the last
        assert len(fake.submits) == nth and fake.submits[-1]["_outcome"].startswith("placed:")
    elif step in ("after_ack", "in_commit"):            # at Kraken, not acknowledged here
        assert sent, q(db, "select * from orders")
    elif step == "after_fill":                          # filled at Kraken, not booked here
        assert len(fake.trades) > len(ledger_fills(db))
    check_venue(s)


def check_venue(s: Scene) -> None:
    """What holds after any killed run: the ledger has booked nothing Kraken did not do;
    at most one stop-loss rests, only while BTC is held, for no more than is held. Notes
    whether the held position's stop-loss is cancelled at Kraken while the ledger has it
    working (the kill fell between the cancel and the take-profit's sale)."""
    fake, db = s.fake, s.db
    booked = ledger_fills(db)
    assert booked == venue_trades(fake)[:len(booked)]
    stops = open_stops(fake)
    assert len(stops) <= 1, stops
    assert all(0 < o.volume <= fake.balance("BTC") for o in stops), stops
    decided = entry_orders(db)          # the position held at Kraken is the last entry's
    if decided and fake.balance("BTC") > 0:
        cid = decided[-1][2]
        stop = [o for o in fake.orders.values() if o.cl_ord_id == venue_id(cid)]
        recorded = q(db, "select status from orders where client_order_id = ?", cid)
        s.unprotected |= (bool(stop) and stop[0].status == "canceled"
                          and recorded[0][0] in ("accepted", "working"))


def entry_orders(db: Path) -> list[tuple[str, str, str]]:
    """(entry, take-profit, stop-loss) client order ids of each entry decision, in order."""
    out = []
    for (d,) in q(db, "select detail from decisions where action = 'enter_long' order by ts"):
        ids = json.loads(d)["orders"]
        out.append((ids[0], *(next(c for c in ids if c.endswith(role))
                              for role in ("-take_profit", "-stop_loss"))))
    return out


def commit_problems(s: Scene) -> list[str]:
    """What is wrong in any state the deployment committed (``engine_state``: one per
    commit, every run): two open legs of one entry that are not each other's OCO
    sibling; a leg open while nothing is held; an order held open that Kraken had ended
    before the close of the state's bar."""
    ended = {o.cl_ord_id: o.closetm for o in s.fake.orders.values() if not o.is_open}
    live = ("accepted", "working", "partially_filled")
    out = []
    for run, seq, ts, state in q(s.db, "select run_id, seq, ts, state from engine_state "
                                      "order by rowid"):
        st = json.loads(state)
        at = f"{run} state {seq} (bar {ts})"
        legs: dict[str, list[str]] = {}
        for o in st["orders"]:
            cid = o["client_order_id"]
            if o["parent_id"] is not None and o["status"] in live:
                legs.setdefault(o["parent_id"], []).append(cid)
            t = ended.get(venue_id(cid))
            if t is not None and t < ts + 3600:
                out.append(f"{at}: {cid} {o['status']}, ended at Kraken at {t:.0f}")
        for pair in legs.values():
            if len(pair) == 2 and st["oco"].get(pair[0]) != pair[1]:
                out.append(f"{at}: {pair} open, not an OCO pair")
        if legs and Decimal(st["symbols"][0]["holding"]["quantity"]) == 0:
            out.append(f"{at}: {sorted(c for p in legs.values() for c in p)} open, nothing held")
    return out


CASES = [
    [("after_journal", 1)],           # entry 1 and its legs committed, never sent
    [("in_submit", 1)],               # entry 1's AddOrder about to leave
    [("in_submit", 2)],               # entry 1 filled; its stop-loss's AddOrder about to leave
    [("in_submit", 3)],               # the take-profit: stop 1 cancelled, the sale not sent
    [("after_response", 1)],          # entry 1 placed and filled at Kraken, not read back
    [("after_response", 2)],          # stop 1 resting at Kraken, its answer not read
    [("after_ack", 1)],               # entry 1 acknowledged and filled, legs not armed
    [("after_ack", 3)],               # stop 1 acknowledged, nothing committed
    [("after_fill", 1)],              # entry 1's fill (and its stop sent) in memory only
    [("after_fill", 2)],              # the take-profit's sale booked in memory only
    [("after_fill", 4)],              # stop 2 filled at Kraken, booked in memory only
    [("in_commit", 1)],               # the commit recording entry 1's fill and its stop
    [("in_commit", 9)],               # the commit recording stop 3
    [("after_journal", 2)],           # entry 2 (it ends at its stop) committed, never sent
    [("after_journal", 4)],           # the signal exit: stop 3 cancelled, exit never sent
    [("after_fill", 1), ("after_ack", 2)],   # killed again while the restart repairs
]


@pytest.mark.parametrize("kills", CASES, ids=["+".join(f"{a}{n}" for a, n in k) for k in CASES])
def test_killed_at_a_step_kraken_holds_one_entry_and_one_stop_per_decision_and_equals_the_ledger(
        scene, whole, kills):
    for n, (step, nth) in enumerate(kills):
        code, err = scene.run(step, nth)
        assert code == KILLED, (step, nth, code, err[-3000:])
        if n == 0:
            check_scene(step, nth, scene)
        else:
            check_venue(scene)
    code, err = scene.run()
    assert code == 0, err[-3000:]
    check_final(scene, whole, "+".join(f"{a}{n}" for a, n in kills))


def test_a_lost_addorder_answer_then_a_kill_finds_the_entry_and_never_sends_it_again(scene, whole):
    scene.fake.fail_next("AddOrder", "lose_response")   # entry 1 placed, its answer lost
    code, err = scene.run("after_lost", 1)
    assert code == KILLED, (code, err[-3000:])
    check_scene("after_lost", 1, scene)
    (cid,) = [c for c in journaled(scene.db) if c.endswith("-entry")]
    assert scene.fake.submit_count(venue_id(cid)) == 1
    code, err = scene.run()
    assert code == 0, err[-3000:]
    assert scene.fake.submit_count(venue_id(cid)) == 1  # looked up by its id, not sent again
    assert q(scene.db, "select status from orders where client_order_id = ?", cid) == [("filled",)]
    check_final(scene, whole, "lost_entry")


def test_a_lost_stop_loss_answer_after_a_restart_then_a_kill_leaves_one_stop(scene, whole):
    code, err = scene.run("after_ack", 1)               # entry 1 filled, its legs not armed
    assert code == KILLED, (code, err[-3000:])
    check_scene("after_ack", 1, scene)
    scene.fake.fail_next("AddOrder", "lose_response")   # the restart arms stop 1: answer lost
    code, err = scene.run("after_lost", 1)
    assert code == KILLED, (code, err[-3000:])
    check_venue(scene)
    (stop,) = [c for c in journaled(scene.db) if c.endswith("-stop_loss")]
    assert len(open_stops(scene.fake)) == 1 and scene.fake.submit_count(venue_id(stop)) == 1
    code, err = scene.run()
    assert code == 0, err[-3000:]
    assert scene.fake.submit_count(venue_id(stop)) == 1
    check_final(scene, whole, "lost_stop")


def check_final(s: Scene, whole, case: str) -> None:
    """After the last run: Kraken and the ledger agree, as if the deployment was never
    killed; then every committed state."""
    fake, db = s.fake, s.db
    # at Kraken: each client order id sent exactly once, and placed
    sent = Counter(b.get("cl_ord_id") for b in fake.submits)
    assert sent and {c: k for c, k in sent.items() if k != 1} == {}
    assert [b["_outcome"] for b in fake.submits if not b["_outcome"].startswith("placed:")] == []
    # one entry and one stop-loss per entry decision; the other orders are the
    # take-profit's sale and the exit, each under its own id; nothing left open
    by_venue_id = {venue_id(c): c for (c,) in q(db, "select client_order_id from orders")}
    placed = [(by_venue_id.get(o.cl_ord_id, o.cl_ord_id), o.ordertype, o.side)
              for o in sorted(fake.orders.values(), key=lambda o: o.seq)]
    decided = entry_orders(db)
    assert len(decided) == len(worker.ENTRIES)
    assert [p for p in placed if p[2] == "buy"] == [(e, "market", "buy") for e, _, _ in decided]
    assert [p for p in placed if p[1] == "stop-loss"] == [(sl, "stop-loss", "sell")
                                                          for _, _, sl in decided]
    assert [p[0].rsplit("-", 1)[-1] for p in placed if p[1] == "market" and p[2] == "sell"] == \
        ["take_profit", "exit"]
    assert [o for o in fake.orders.values() if o.is_open] == []
    # Kraken's trades are the ledger's fills, row for row
    assert ledger_fills(db) == venue_trades(fake)
    # Kraken's balances are the ledger's position and cash
    held = sum((Decimal(v) if side == "buy" else -Decimal(v))
               for side, v in q(db, "select side, quantity from fills"))
    (state,), = q(db, "select state from engine_state order by rowid desc limit 1")
    state = json.loads(state)
    assert fake.balance("BTC") == held == Decimal(state["symbols"][0]["holding"]["quantity"]) == 0
    assert fake.balance("USD") == Decimal(state["accounts"][0]["cash"])
    # every order ended, as Kraken ended it (a held take-profit never reached Kraken)
    status = dict(q(db, "select client_order_id, status from orders"))
    assert {c for c, st in status.items() if st not in ("filled", "cancelled")} == set()
    kraken = {o.cl_ord_id: {"closed": "filled", "canceled": "cancelled"}[o.status]
              for o in fake.orders.values()}
    assert {c: st for c, st in status.items() if kraken.get(venue_id(c), st) != st} == {}
    # every bar decided exactly once; no difference left open
    decisions, fills, trades = ledger_view(db)
    _, bars = worker.window()
    assert [d[0] for d in decisions] == [int(t) for t in bars.ts]
    assert q(db, "select count(*) from reconciliations where status = 'open'") == [(0,)]
    # "no stop" alarms only where a kill left the held position's stop cancelled
    alarms = [m for (m,) in q(db, "select message from events where kind = 'alert'")
              if "no stop" in m]
    assert bool(alarms) == s.unprotected, alarms
    # as if never killed
    (w_decisions, w_fills, w_trades), w_venue, _, _ = whole
    assert venue_trades(fake) == w_venue
    assert decisions == w_decisions
    assert fills == w_fills and trades == w_trades
    # and at every commit: the brackets paired, nothing open that Kraken had ended
    assert commit_problems(s) == []
