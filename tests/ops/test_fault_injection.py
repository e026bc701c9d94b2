"""Kill a paper deployment with SIGKILL at each step of the tick path, start it again,
and check the ledger against an uninterrupted run.

Steps (see ``_paper_worker.py``): after the journal's commit, inside ``submit``, after
the venue's acknowledgement, after a fill applied in memory, inside a ledger commit
(and, with the file venue, while the venue records a bar's fills). The deployment
restarts from its last committed state (warmed up from the bars before it, as the paper
feed does), reconciles with its venue, and must then have: every bar decided exactly
once, each client order id recorded once and filled once, and the same fills, trades and
decisions as the run that was never killed.

Two venues:

* the in-process ``SimBroker``, whose books are restored from the ledger: what it had
  received dies with the process, and an order the journal committed but the venue
  never kept is sent again under its id;
* :class:`file_venue.FileVenue`, whose state is a file that outlives the process: it
  proves what issue 9 §5 asks at the venue itself. Its log counts what was SENT per
  client order id (each exactly once), its fills equal the ledger's row for row, its
  position and balance equal the ledger's, the ledger's last status of every order is
  the venue's, and no reconciliation difference is left open.

Each run is a separate process, forked from a server that imported the engine once
(``multiprocessing``'s forkserver: a clean process, not the test's), so a kill is a
real SIGKILL of a real process while a run costs its bars, not an interpreter start.
"""

from __future__ import annotations

import json
import multiprocessing
import signal
import sqlite3
from decimal import Decimal
from pathlib import Path

import _paper_worker as worker
import pytest
from _preload import FORKSERVER_PRELOAD
from file_venue import FileVenue

from tradewarden.domain import COINBASE_SPECS

BARS = 300
FILE_BARS = 140         # four round trips, one closed by its stop-loss leg (OCO cancel)
KILLED = -signal.SIGKILL
SYM = worker.SYM

_CTX = multiprocessing.get_context("forkserver")
_CTX.set_forkserver_preload(FORKSERVER_PRELOAD)


def run(db: Path, *crash: object, bars: int = BARS, venue: Path | None = None,
        brackets: str = "native") -> tuple[int | None, str]:
    """Run the worker in a process of its own; return its exit code (``-9``: killed) and
    the traceback it left if it failed."""
    argv = [str(db), "dep", str(bars), *map(str, crash)]
    if venue is not None:
        argv += ["--venue", f"file:{venue}", "--brackets", brackets]
    err = Path(f"{db}.err")
    err.unlink(missing_ok=True)
    p = _CTX.Process(target=worker.child, args=(argv, str(err)))
    p.start()
    p.join(120)
    if p.exitcode is None:
        p.kill()
        p.join()
    return p.exitcode, err.read_text() if err.exists() else ""


def ledger_view(db):
    with sqlite3.connect(db) as c:
        fills = c.execute("select ts, side, quantity, price, fee, role from fills order by ts, role").fetchall()
        trades = c.execute("select entry_ts, exit_ts, quantity, entry_price, exit_price, pnl, exit_reason "
                           "from trades order by entry_ts").fetchall()
        decisions = c.execute("select ts, action, reason, state, equity from decisions "
                              "where reason != 'end_of_data' order by ts").fetchall()
        per_order = c.execute("select client_order_id, count(*) from orders group by client_order_id "
                              "having count(*) > 1").fetchall()
        fills_per_order = c.execute("select client_order_id, count(*) from fills group by client_order_id "
                                    "having count(*) > 1").fetchall()
    return fills, trades, decisions, per_order, fills_per_order


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    db = tmp_path_factory.mktemp("whole") / "l.db"
    code, err = run(db)
    assert code == 0, err
    return ledger_view(db)


@pytest.mark.parametrize("step, nth", [("after_journal", 1), ("after_journal", 4), ("in_submit", 2),
                                       ("after_ack", 3), ("after_fill", 3), ("in_commit", 120)])
def test_killed_at_a_step_the_deployment_resumes_as_if_never_killed(tmp_path, uninterrupted, step, nth):
    db = tmp_path / "l.db"
    code, err = run(db, step, nth)
    assert code == KILLED, (code, err[-2000:])
    code, err = run(db)
    assert code == 0, err[-2000:]
    fills, trades, decisions, dup_orders, dup_fills = ledger_view(db)
    w_fills, w_trades, w_decisions, _, _ = uninterrupted
    assert dup_orders == [] and dup_fills == []               # nothing sent or filled twice
    assert [d[0] for d in decisions] == [d[0] for d in w_decisions]   # each bar decided once
    assert len(decisions) == BARS and len(w_trades) >= 3
    assert decisions == w_decisions
    assert fills == w_fills and trades == w_trades


# -- a venue that outlives the process ---------------------------------------------------

def open_venue(path: Path, brackets: str) -> FileVenue:
    """The worker's venue, read back from its file (same fees and bracket mode)."""
    return FileVenue(path, {SYM: COINBASE_SPECS[SYM]}, taker_bps=10.0, maker_bps=5.0,
                     slippage_bps=2.0, native_brackets=brackets == "native")


def books(db: Path) -> dict:
    """What the ledger holds: its fills (client order id, quantity, price, fee), each
    order's rows and last status, the deployment's latest cash and position, and the
    reconciliation differences still open (migration 0004's table, if there)."""
    with sqlite3.connect(db) as c:
        fills = [(cid, Decimal(q), Decimal(p), Decimal(f)) for cid, q, p, f in
                 c.execute("select client_order_id, quantity, price, fee from fills")]
        orders = c.execute("select client_order_id, status from orders").fetchall()
        row = c.execute("select state from engine_state order by ts desc, seq desc limit 1").fetchone()
        has_recon = c.execute("select 1 from sqlite_master where type = 'table' and "
                              "name = 'reconciliations'").fetchone()
        recon = (c.execute("select kind, symbol, ours, venue from reconciliations "
                           "where status = 'open'").fetchall() if has_recon else [])
    state = json.loads(row[0]) if row else None
    return {
        "fills": sorted(fills),
        "orders": orders,
        "status": dict(orders),
        "cash": None if state is None else Decimal(state["accounts"][0]["cash"]),
        "position": None if state is None else Decimal(state["symbols"][0]["holding"]["quantity"]),
        "open_reconciliations": recon,
    }


def venue_fills(v: FileVenue) -> list[tuple[str, Decimal, Decimal, Decimal]]:
    """The venue's fills as ``books`` gives the ledger's (sorted)."""
    return sorted((f.client_order_id, f.quantity, f.price, f.fee) for f in v.fills())


def removed(big: list, small: list) -> list | None:
    """``big`` minus ``small`` as multisets (what ``big`` has beyond ``small``), or
    ``None`` when ``small`` holds something ``big`` does not."""
    rest = list(big)
    for x in small:
        if x not in rest:
            return None
        rest.remove(x)
    return rest


@pytest.fixture(scope="module")
def file_whole(tmp_path_factory):
    """The uninterrupted run on the file venue, per bracket mode (run once each)."""
    done: dict[str, tuple] = {}

    def get(brackets: str) -> tuple:
        if brackets not in done:
            d = tmp_path_factory.mktemp(f"file-{brackets}")
            code, err = run(d / "l.db", bars=FILE_BARS, venue=d / "venue.json", brackets=brackets)
            assert code == 0, err
            done[brackets] = (ledger_view(d / "l.db"), books(d / "l.db"),
                              open_venue(d / "venue.json", brackets))
        return done[brackets]
    return get


def check_scene(step: str, db: Path, vpath: Path, brackets: str) -> None:
    """The first kill landed where its step says (the state the restart must repair)."""
    led, v = books(db), open_venue(vpath, brackets)
    journaled = {c for c, s in led["orders"] if s == "submitted"}
    held = {c for c in journaled if brackets == "emulated" and ("-take_profit" in c or "-stop_loss" in c)}
    if step in ("after_journal", "in_submit"):      # journaled, never received by the venue
        assert any(v.lookup(c) is None for c in journaled - held), led["orders"]
    if step in ("in_submit", "in_process"):         # killed inside the venue's save: the
        tmp = json.loads(vpath.with_name(vpath.name + ".tmp").read_text())   # new state is
        now = json.loads(vpath.read_text())         # written aside, never put in place
        if step == "in_submit":
            assert set(tmp["orders"]) - set(now["orders"]) <= journaled
            assert set(tmp["orders"]) - set(now["orders"])
        else:
            assert len(tmp["fills"]) > len(now["fills"])
    if step == "after_ack":                         # the venue has it, the ledger not its ack
        assert any(v.lookup(c) is not None for c in journaled), led["orders"]
    if step == "after_fill":                        # the venue filled it, the ledger has not
        assert removed(venue_fills(v), led["fills"])


FILE_CASES = [
    ("native", [("after_journal", 1)]),
    ("native", [("in_submit", 2)]),
    ("native", [("after_ack", 3)]),
    ("native", [("after_fill", 3)]),
    ("native", [("in_commit", 120)]),
    ("native", [("in_process", 2)]),
    ("native", [("after_fill", 2), ("after_ack", 2)]),     # killed again after the restart
    ("emulated", [("after_journal", 1)]),
    ("emulated", [("after_ack", 2)]),                      # the take-profit leg acknowledged
    ("emulated", [("after_fill", 1)]),                     # the entry filled, legs sent
]


@pytest.mark.parametrize("brackets, kills", FILE_CASES,
                         ids=[f"{b}-" + "+".join(f"{s}{n}" for s, n in k) for b, k in FILE_CASES])
def test_killed_at_a_step_the_venue_saw_each_order_once_and_agrees_with_the_ledger(
        tmp_path, file_whole, brackets, kills):
    db, vpath = tmp_path / "l.db", tmp_path / "venue.json"
    for n, (step, nth) in enumerate(kills):
        code, err = run(db, step, nth, bars=FILE_BARS, venue=vpath, brackets=brackets)
        assert code == KILLED, (step, nth, code, err[-2000:])
        if n == 0:
            check_scene(step, db, vpath, brackets)
        # whatever the ledger booked, the venue did (the ledger is never ahead of it)
        assert removed(venue_fills(open_venue(vpath, brackets)), books(db)["fills"]) is not None
    code, err = run(db, bars=FILE_BARS, venue=vpath, brackets=brackets)
    assert code == 0, err[-2000:]

    v, led = open_venue(vpath, brackets), books(db)
    # at the venue: every client order id was sent exactly once, and accepted
    sent = v.submit_counts()
    assert sent and {c: n for c, n in sent.items() if n != 1} == {}
    assert [e for e in v.submit_log() if e["result"] != "accepted"] == []
    # no lost or doubled fill: the venue's fills are the ledger's, row for row
    assert venue_fills(v) == led["fills"]
    assert led["open_reconciliations"] == []
    # positions and cash: the venue's are the ledger's, and both the uninterrupted run's
    (w_fills, w_trades, w_decisions, _, _), w_led, w_venue = file_whole(brackets)
    quote = COINBASE_SPECS[SYM].quote
    assert (led["cash"], led["position"]) == (w_led["cash"], w_led["position"])
    assert (v.balance(quote), v.position(SYM)) == (led["cash"], led["position"])
    assert (w_venue.balance(quote), w_venue.position(SYM)) == (w_led["cash"], w_led["position"])
    # every bar decided exactly once, as in the uninterrupted run
    fills, trades, decisions, dup_orders, dup_fills = ledger_view(db)
    assert len(decisions) == FILE_BARS and len({d[0] for d in decisions}) == FILE_BARS
    assert decisions == w_decisions
    assert fills == w_fills and trades == w_trades and len(w_trades) >= 3
    assert dup_orders == [] and dup_fills == []
    # each order one row, whose last status is the venue's (an order journaled by a run
    # that was killed is brought up to date by the run that resumed)
    assert len(led["orders"]) == len(led["status"])
    assert {c: s for c in sent if (s := led["status"].get(c)) != v.status(c).value} == {}


@pytest.fixture(scope="module")
def sim_short(tmp_path_factory):
    db = tmp_path_factory.mktemp("sim-short") / "l.db"
    code, err = run(db, bars=FILE_BARS)
    assert code == 0, err
    return ledger_view(db)


def test_the_file_venue_fills_trades_and_decides_like_the_simulator(sim_short, file_whole):
    (fills, trades, decisions, _, _), led, v = file_whole("native")
    s_fills, s_trades, s_decisions, _, _ = sim_short
    assert len(trades) >= 3 and any(t[6] == "stop_loss" for t in trades)   # a leg filled, OCO
    assert fills == s_fills and trades == s_trades and decisions == s_decisions
    assert v.position(SYM) == 0 and v.balance("USD") == led["cash"] != Decimal(10000)
