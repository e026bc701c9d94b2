"""Kill a live Coinbase deployment with SIGKILL at each step around a bracket entry, start
it again, and check the venue and the ledger against each other.

The venue is the loopback TLS fake of Coinbase Advanced Trade
(``tests/execution/coinbase/fake_coinbase.py``), running in this test's process, so its
orders, fills and balances outlive the deployment's process; the deployment (see
``_live_worker.py``) runs the real ``CoinbaseBroker`` over the official SDK in a process
of its own, forked from a server that imported everything once (``multiprocessing``'s
forkserver), so a kill is a real SIGKILL while a run costs only its bars. Both share one
simulated clock; before each bar the deployment asks the fake (its test-control hook
``POST /_test/step``) to walk the price through that bar, and the fake walks each bar
once (a venue's time only moves forward), so a bar a killed run had walked is not
walked again by the run that resumes.

After the last run, at the venue: every client order id was sent exactly once (what
the fake received, duplicates included), one entry with one attached bracket per entry
decision and no other protective order, nothing sold by the adapter to flatten an
unprotected position. In the ledger: the venue's fills row for row (price, size,
commission, liquidity, time) and each on its order, the venue's BTC and USD balances as
position and cash, every order ended as the venue ended it, every bar decided exactly
once, no reconciliation difference recorded, no alert; and decisions, fills and trades
equal to a run that was never killed.

Also: the venue's answer to a create-order lost and the process killed right after (the
restart finds the order by its client order id and never sends it again), and a
bracket the venue expires while the deployment is down or after it restarted (the
adapter sells the position once, as it does in a run never killed).

Three cases kill before an order leaves (after the journal's commit, inside submit): the
restart sends it again, and Coinbase fills a market order on arrival, so reconciliation
reads the order back before it compares the accounts.
"""

from __future__ import annotations

import json
import multiprocessing
import signal
import sqlite3
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import _live_worker as worker
import pytest
from _preload import FORKSERVER_PRELOAD

sys.path.insert(0, str(Path(__file__).parents[1] / "execution" / "coinbase"))
from fake_coinbase import FakeCoinbase, make_cdp_key

SYM = worker.SYM
BARS = 30
KILLED = -signal.SIGKILL
ORDERS = "POST /api/v3/brokerage/orders"

_CTX = multiprocessing.get_context("forkserver")
# one forkserver per test session: this list includes test_fault_injection.py's
_CTX.set_forkserver_preload(FORKSERVER_PRELOAD)


@dataclass
class Scene:
    """One deployment's world: the fake, the shared clock, the ledger file."""

    fake: FakeCoinbase
    cell: object
    db: Path
    key_file: Path

    def run(self, *crash: object) -> tuple[int | None, str]:
        """Run the worker once; return its exit code (``-9``: killed) and its traceback."""
        argv = [str(self.db), "dep", str(BARS), *map(str, crash),
                "--api-url", f"https://{self.fake.host}", "--key-file", str(self.key_file),
                "--ca-bundle", self.fake.ca_bundle]
        err = Path(f"{self.db}.err")
        err.unlink(missing_ok=True)
        p = _CTX.Process(target=worker.child, args=(argv, str(err), self.cell))
        p.start()
        p.join(120)
        if p.exitcode is None:
            p.kill()
            p.join()
        return p.exitcode, err.read_text() if err.exists() else ""


def make_scene(directory: Path, expire_at: int | None = None) -> Scene:
    """A started fake (USD = the deployment's capital, BTC 0, BTC-USD at the close before
    the window) on a clock shared with the worker, its walk hook, a CDP key file.
    ``expire_at``: before walking that bar of the window, the venue expires every
    attached bracket resting (the protection lost at Coinbase)."""
    full, bars = worker.window(BARS)
    key = make_cdp_key()
    cell = _CTX.RawValue("d", float(bars.ts[0]))
    fake = FakeCoinbase({key.name: key}, balances={"USD": worker.CAPITAL}, products=[SYM],
                        now=lambda: cell.value).start()
    fake.set_price(SYM, Decimal(repr(float(full.close[worker.OFFSET - 1]))))
    walked = [0]

    def walk(body: dict) -> int:
        """Walk one bar (open time ``ts``) once; fills stamped in its middle."""
        ts = int(body["ts"])
        if ts <= walked[0]:
            return 0
        walked[0] = ts
        if expire_at is not None and ts == int(bars.ts[expire_at]):
            expire(fake)
        prices = (Decimal(body[k]) for k in ("open", "high", "low", "close"))
        return len(fake.step(SYM, *prices, ts=ts + 1800))
    fake.control["step"] = walk
    return Scene(fake, cell, directory / "l.db", key.file_path(directory))


def expire(fake: FakeCoinbase) -> list[str]:
    """Expire the attached brackets resting at the venue; return their order ids."""
    gone = [o for o in fake.open_orders() if o.order_type == "BRACKET"]
    for o in gone:
        o.status = "EXPIRED"
    return [o.order_id for o in gone]


@pytest.fixture
def scene(tmp_path):
    s = make_scene(tmp_path)
    yield s
    s.fake.stop()
    assert not s.fake.errors, s.fake.errors


def q(db: Path, sql: str, *args) -> list[tuple]:
    with sqlite3.connect(db) as c:
        return c.execute(sql, args).fetchall()


def ledger_view(db: Path) -> tuple[list, list, list]:
    """Decisions (bars only), fills and trades, in the ledger's order (client order ids
    differ between deployments and between the id blocks of restarted runs)."""
    decisions = q(db, "select ts, action, reason, state, equity from decisions "
                      "where reason != 'end_of_data' order by ts")
    fills = q(db, "select ts, side, quantity, price, fee, liquidity, role from fills "
                  "order by ts, role")
    trades = q(db, "select entry_ts, exit_ts, quantity, entry_price, exit_price, pnl, exit_reason "
                   "from trades order by entry_ts")
    return decisions, fills, trades


def venue_fill_rows(fake: FakeCoinbase) -> list[tuple]:
    """The venue's fills, oldest first: (price, size, commission, liquidity, trade time)."""
    return [(Decimal(f["price"]), Decimal(f["size"]), Decimal(f["commission"]),
             f["liquidity_indicator"].lower(), int(datetime.fromisoformat(f["trade_time"]).timestamp()))
            for f in fake.fills]


def venue_order_id(fake: FakeCoinbase, fill: dict) -> str:
    """The client order id the ledger must book a venue fill on: its order's, or for the
    attached bracket the leg that filled (``{prefix}-take_profit`` / ``-stop_loss`` of
    ``{prefix}-entry``), or for the adapter's sale of a position whose bracket the venue
    ended (``{prefix}-entry-flatten``) the stop-loss leg."""
    o = fake.orders[fill["order_id"]]
    if o.client_order_id.endswith("-entry-flatten"):
        return o.client_order_id.removesuffix("entry-flatten") + "stop_loss"
    if o.order_type != "BRACKET":
        return o.client_order_id
    return fake.orders[o.originating_order_id].client_order_id.removesuffix("entry") + o.exit_leg


def ledger_fill_rows(db: Path) -> list[tuple]:
    """The ledger's fills as :func:`venue_fill_rows` gives the venue's, in time order (the
    fill sequence numbers are per run)."""
    return [(Decimal(p), Decimal(s), Decimal(fee), liq, int(ts)) for p, s, fee, liq, ts in
            q(db, "select price, quantity, fee, liquidity, ts from fills order by ts, role")]


def uninterrupted(directory: Path, expire_at: int | None = None) -> tuple:
    """Run a deployment that is never killed: its ledger view and its venue's fills."""
    s = make_scene(directory, expire_at)
    try:
        code, err = s.run()
        assert code == 0, err[-3000:]
        assert not s.fake.errors, s.fake.errors
        return ledger_view(s.db), venue_fill_rows(s.fake)
    finally:
        s.fake.stop()


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The run that was never killed."""
    return uninterrupted(tmp_path_factory.mktemp("whole"))


def test_the_uninterrupted_run_enters_with_brackets_that_end_at_the_venue(whole):
    (decisions, fills, trades), venue = whole
    assert [d[1] for d in decisions].count("enter_long") == len(worker.ENTRIES)
    assert [t[6] for t in trades] == ["take_profit", "stop_loss", "signal"]
    assert len(decisions) == BARS and len(fills) == len(venue) == 6


def check_scene(step: str, s: Scene) -> None:
    """The first kill landed where its step says (the state the restart must repair)."""
    journaled = [c for c, st in q(s.db, "select client_order_id, status from orders")
                 if st == "submitted" and not c.endswith(("-take_profit", "-stop_loss"))]
    sent = [c for c in journaled if s.fake.order_by_client_id(c) is not None]
    if step in ("after_journal", "in_submit"):          # journaled, never received
        assert journaled and not sent, journaled
    elif step in ("after_response", "after_ack", "in_commit", "after_lost"):
        assert sent, journaled                          # at the venue, not acknowledged here
    elif step == "after_fill":                          # filled at the venue, not booked here
        assert len(s.fake.fills) > len(ledger_fill_rows(s.db))
    elif step == "after_cancel":                        # cancelled at the venue, working here
        working = [c for c, st in q(s.db, "select client_order_id, status from orders")
                   if st == "working"]
        assert working and s.fake.open_orders() == [], working
    booked = ledger_fill_rows(s.db)                     # the ledger is never ahead of the venue
    assert booked == venue_fill_rows(s.fake)[:len(booked)]


CASES = [
    [("after_journal", 1)],           # entry 1 and legs committed, never sent
    [("in_submit", 2)],               # entry 2's create-order about to leave
    [("after_response", 1)],          # entry 1 placed (filled, bracket attached), not read back
    [("after_ack", 3)],               # entry 3 acknowledged, nothing committed
    [("after_fill", 1)],              # entry 1's fill booked in memory only
    [("after_fill", 2)],              # the take-profit's fill (the bracket ended at the venue)
    [("in_commit", 2)],               # the commit recording entry 2's acknowledgement
    [("after_cancel", 1)],            # the signal exit cancelled the bracket, nothing committed
                                      # (the restart learns it from the venue: an alert)
    [("after_journal", 4)],           # the exit journaled, never sent
    [("after_fill", 1), ("after_ack", 2)],   # killed again after the restart
]


def _case_id(case) -> str:
    kills = case.values[0] if hasattr(case, "values") else case
    return "+".join(f"{a}{n}" for a, n in kills)


@pytest.mark.parametrize("kills", CASES, ids=[_case_id(c) for c in CASES])
def test_killed_at_a_step_the_venue_holds_one_bracketed_entry_per_decision_and_equals_the_ledger(
        scene, whole, kills):
    for n, (step, nth) in enumerate(kills):
        code, err = scene.run(step, nth)
        assert code == KILLED, (step, nth, code, err[-3000:])
        if n == 0:
            check_scene(step, scene)
    code, err = scene.run()
    assert code == 0, err[-3000:]
    # killed between cancelling the bracket and recording it, the restart reads the
    # cancel from the venue while the position is held: it says the stop is gone (the
    # exit decided again at once closes the position)
    alert = "-stop_loss: the stop-loss was cancelled by the venue" if kills[0][0] == "after_cancel" else None
    check_final(scene, whole, alert)


def test_a_lost_create_order_answer_then_a_kill_finds_the_order_and_never_sends_it_again(
        scene, whole):
    scene.fake.fail_next(ORDERS, "lose_response")      # entry 1 placed, its answer lost
    code, err = scene.run("after_lost", 1)
    assert code == KILLED, (code, err[-3000:])
    check_scene("after_lost", scene)
    (cid,) = [c for (c,) in q(scene.db, "select client_order_id from orders where status = "
                                        "'submitted' and role = 'entry'")]
    assert scene.fake.submit_count(cid) == 1 and scene.fake.order_by_client_id(cid).status == "FILLED"
    code, err = scene.run()
    assert code == 0, err[-3000:]
    assert scene.fake.submit_count(cid) == 1           # looked up by its id, not sent again
    assert q(scene.db, "select status from orders where client_order_id = ?", cid) == [("filled",)]
    check_final(scene, whole)


# -- the venue ends a bracket around a restart ------------------------------------------

LOST = "protection lost: attached bracket expired at coinbase"


@pytest.fixture(scope="module")
def whole_expiring(tmp_path_factory):
    """The run never killed, whose first bracket the venue expires before bar 7."""
    return uninterrupted(tmp_path_factory.mktemp("whole-expiring"), expire_at=7)


def test_a_bracket_the_venue_ends_is_replaced_by_a_sale_at_market(whole_expiring):
    (_, fills, trades), venue = whole_expiring
    assert trades[0][6] == "stop_loss" and trades[0][1] == int(worker.window(BARS)[1].ts[7]) + 3600
    assert len(trades) == 3 and len(fills) == len(venue) == 6


def test_a_bracket_expired_while_the_deployment_was_down_is_sold_when_it_starts(tmp_path):
    s = make_scene(tmp_path)
    try:
        code, err = s.run("before_bar", 6)      # entry 1 filled and booked, its bracket resting
        assert code == KILLED, (code, err[-3000:])
        assert len(expire(s.fake)) == 1           # the venue ends it while nobody watches
        code, err = s.run()
        assert code == 0, err[-3000:]
        trades = check_agree(s, [LOST], flattened=1)[2]
        first = trades[0]                         # closed at the start, by the adapter's sale
        assert first[6] == "stop_loss" and first[1] == int(worker.window(BARS)[1].ts[4]) + 3600
        assert not s.fake.errors, s.fake.errors
    finally:
        s.fake.stop()


def test_a_bracket_the_venue_ends_after_a_restart_is_sold_as_if_never_killed(tmp_path, whole_expiring):
    s = make_scene(tmp_path, expire_at=7)
    try:
        code, err = s.run("before_bar", 6)      # entry 1 filled and booked, its bracket resting
        assert code == KILLED, (code, err[-3000:])
        code, err = s.run()                       # the venue expires it at bar 7 of this run
        assert code == 0, err[-3000:]
        decisions, fills, trades = check_agree(s, [LOST], flattened=1)
        (w_decisions, w_fills, w_trades), w_venue = whole_expiring
        assert venue_fill_rows(s.fake) == w_venue
        assert decisions == w_decisions and fills == w_fills and trades == w_trades
        assert not s.fake.errors, s.fake.errors
    finally:
        s.fake.stop()


def check_final(s: Scene, whole, alert: str | None = None) -> None:
    """The venue and the ledger agree (:func:`check_agree`) and equal the run never
    killed; ``alert``: the one alert event expected (a part of its text), else none."""
    decisions, fills, trades = check_agree(s, [] if alert is None else [alert])
    (w_decisions, w_fills, w_trades), w_venue = whole
    assert venue_fill_rows(s.fake) == w_venue
    assert decisions == w_decisions
    assert fills == w_fills and trades == w_trades


def check_agree(s: Scene, alerts: list[str], flattened: int = 0) -> tuple[list, list, list]:
    """At the venue: each client order id sent once, one entry and one attached bracket
    per entry decision, nothing else but ``flattened`` sales of a position whose bracket
    the venue ended. The ledger: the venue's fills row for row, each on its order (a sale
    of the adapter's on the stop-loss leg), its balances, its order endings; each bar
    decided once; no reconciliation difference, no block; the alert events are one per
    text of ``alerts`` (a part of each). Returns :func:`ledger_view`."""
    fake, db = s.fake, s.db
    # at the venue: each client order id sent exactly once
    sent = Counter(b.get("client_order_id") for b in fake.submits)
    assert sent and {c: k for c, k in sent.items() if k != 1} == {}
    # one entry and one attached bracket per entry decision; no other protective order;
    # what the adapter sold at market, only when the venue ended a bracket
    decided = [json.loads(d)["orders"][0] for (d,) in
               q(db, "select detail from decisions where action = 'enter_long' order by ts")]
    orders = list(fake.orders.values())
    entries = [o for o in orders if o.client_order_id.endswith("-entry")]
    brackets = [o for o in orders if o.order_type == "BRACKET"]
    assert [o.client_order_id for o in entries] == decided
    assert len(brackets) == len(entries) >= 2
    assert sorted(b.originating_order_id for b in brackets) == sorted(e.order_id for e in entries)
    assert all(e.attached_order_id in {b.order_id for b in brackets} for e in entries)
    assert [o for o in orders if o.order_type == "STOP_LIMIT"] == []
    sold = [o for o in orders if o.client_order_id.endswith("-flatten")]
    assert len(sold) == flattened and all(o.status == "FILLED" for o in sold)
    lost = {o.client_order_id.removesuffix("-flatten") for o in sold}
    assert lost == {fake.orders[b.originating_order_id].client_order_id for b in brackets
                    if b.status == "EXPIRED"}
    # the venue's fills are the ledger's, row for row, each booked on its order (a fill
    # of the attached bracket on the leg the venue says filled)
    assert ledger_fill_rows(db) == venue_fill_rows(fake)
    assert sorted((venue_order_id(fake, f), Decimal(f["size"]), Decimal(f["price"]))
                  for f in fake.fills) == sorted(
        (c, Decimal(qty), Decimal(p)) for c, qty, p in
        q(db, "select client_order_id, quantity, price from fills"))
    # the venue's balances are the ledger's position and cash
    held = sum((Decimal(qty) if side == "buy" else -Decimal(qty))
               for side, qty in q(db, "select side, quantity from fills"))
    (state,), = q(db, "select state from engine_state order by ts desc, seq desc limit 1")
    state = json.loads(state)
    assert fake.balance("BTC") == (held, Decimal(0))
    assert Decimal(state["symbols"][0]["holding"]["quantity"]) == held
    assert fake.balance("USD")[0] == Decimal(state["accounts"][0]["cash"])
    # each order one row, ended as the venue ended it (an attached bracket: the leg that
    # filled ``filled``, the other ``cancelled``; cancelled: both; expired and sold by the
    # adapter: the stop-loss ``filled``); nothing open anywhere
    rows = q(db, "select client_order_id, status from orders")
    want = {}
    for o in orders:
        if o.order_type == "BRACKET":
            stem = fake.orders[o.originating_order_id].client_order_id.removesuffix("entry")
            leg = "stop_loss" if o.status == "EXPIRED" else o.exit_leg
            for name in ("take_profit", "stop_loss"):
                want[stem + name] = ("filled" if o.status in ("FILLED", "EXPIRED") and leg == name
                                     else "cancelled")
        elif o not in sold:
            want[o.client_order_id] = o.status.lower()
    assert len(rows) == len(dict(rows)) and dict(rows) == want
    assert fake.open_orders() == []
    # every bar decided exactly once
    decisions, fills, trades = ledger_view(db)
    _, bars = worker.window(BARS)
    assert [d[0] for d in decisions] == [int(t) for t in bars.ts]
    # the restart found nothing that differs: no reconciliation row at all (none left
    # open, none recorded and resolved later), no entry blocked
    assert q(db, "select kind, ours, venue, status from reconciliations") == []
    assert q(db, "select message from events where kind = 'block'") == []
    got = [m for (m,) in q(db, "select message from events where kind = 'alert'")]
    assert len(got) == len(alerts) and all(a in m for a, m in zip(alerts, got)), got
    return decisions, fills, trades
