"""The order journal (paper and live): a decision and its orders are committed to the
ledger before the broker sees them, and every venue event is recorded in
``order_events`` as the engine receives it.

The venue here checks the ledger itself, through its own SQLite connection, at the
moment an order reaches it: a crash right after ``submit`` can then never leave an order
at the venue without its decision and order rows.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from decimal import Decimal

from fake_venue import ScriptedVenue

from tradewarden.domain import COINBASE_SPECS, ExitReason
from tradewarden.engine import ReplayClock

SYM = "BTC-USD"
BTC = COINBASE_SPECS[SYM]


@dataclass
class CheckingVenue(ScriptedVenue):
    """A venue that reads the ledger (committed rows only) whenever an order arrives
    (``ScriptedVenue.close_position`` goes through ``submit`` too)."""

    db: str = ""
    seen: list[dict] = field(default_factory=list, init=False)

    def _ledger_view(self, cid: str) -> dict:
        with sqlite3.connect(self.db) as c:     # a separate connection: committed data only
            order = c.execute("select status, decision_seq from orders where client_order_id=?",
                              (cid,)).fetchone()
            decision = (c.execute("select action, detail from decisions where seq=?", (order[1],))
                        .fetchone() if order else None)
        return {"cid": cid, "order": order, "decision": decision}

    def submit(self, order, legs=()):
        self.seen.append(self._ledger_view(order.client_order_id))
        return super().submit(order, legs)


def run(tmp_path, make_engine, scripted, bars, n, **venue):
    db = tmp_path / "ledger.db"
    venue = CheckingVenue({SYM: BTC}, market_parts=venue.pop("market_parts", 1), db=str(db), **venue)
    strategy = scripted(enter_ts=[bars.ts[i] for i in (5, 30) if i < len(bars)], exit_ts=[bars.ts[20]])
    engine, ledger = make_engine(tmp_path, strategy, mode="paper", broker=venue,
                                 clock=ReplayClock(int(bars.ts[0])))
    assert engine.journal and engine.reference
    for i in range(n):
        engine.process_chunk({SYM: bars.slice(i, i + 1)})
    return engine, ledger, venue, db


def test_decision_and_order_are_committed_before_the_venue_sees_the_order(tmp_path, make_engine,
                                                                           scripted, real_bars):
    bars = real_bars[SYM].slice(0, 40)
    engine, ledger, venue, db = run(tmp_path, make_engine, scripted, bars, 40)
    engine.close_all(ExitReason.END_OF_DATA)
    ledger.close()
    # entry (bar 5), signal exit (bar 20), entry (bar 30), end-of-data close
    assert [v["cid"].rsplit("-", 1)[-1] for v in venue.seen] == ["entry", "exit", "entry", "exit"]
    for v in venue.seen:
        assert v["order"] is not None, f"{v['cid']} reached the venue before its order row"
        assert v["order"][0] == "submitted"                    # as journaled, before any answer
        assert v["decision"] is not None and v["decision"][0] in ("enter_long", "exit")
        assert v["cid"] in v["decision"][1]                    # the decision names its order
    with sqlite3.connect(db) as c:
        statuses = dict(c.execute("select client_order_id, status from orders"))
        n_decisions = c.execute("select count(*) from decisions").fetchone()[0]
    assert set(statuses.values()) == {"filled"}                # the answers were recorded later
    assert n_decisions == 40 + 1                               # every bar once, plus the close-out


def test_every_venue_event_is_journaled_in_order_with_its_fill(tmp_path, make_engine, scripted,
                                                              real_bars):
    bars = real_bars[SYM].slice(0, 25)
    engine, ledger, venue, db = run(tmp_path, make_engine, scripted, bars, 25, market_parts=2)
    ledger.close()
    with sqlite3.connect(db) as c:
        journal = c.execute("select seq, ts, client_order_id, kind, status, fill_seq from order_events "
                            "order by seq").fetchall()
        fills = dict(c.execute("select fill_seq, client_order_id from fills"))
    expected = [(e.order.client_order_id, e.kind.value) for e in venue.log]
    assert [(j[2], j[3]) for j in journal] == expected           # all of them, in arrival order
    assert [j[0] for j in journal] == list(range(len(journal)))
    kinds = [j[3] for j in journal]
    assert kinds.count("accepted") == 2 and kinds.count("partially_filled") == 2
    assert kinds.count("filled") == 2
    for seq, _ts, cid, kind, status, fill_seq in journal:
        if kind in ("partially_filled", "filled"):
            assert fills[fill_seq] == cid                            # linked to its fills row
            assert status == kind
        else:
            assert fill_seq is None


def test_replay_keeps_batching_and_writes_no_journal(tmp_path, make_engine, scripted, real_bars):
    bars = real_bars[SYM].slice(0, 25)
    strategy = scripted(enter_ts=[bars.ts[5]], exit_ts=[bars.ts[20]])
    engine, ledger = make_engine(tmp_path, strategy)
    assert not engine.journal and not engine.reference
    engine.process_chunk({SYM: bars})
    engine.close_all()
    ledger.close()
    with sqlite3.connect(tmp_path / "ledger.db") as c:
        assert c.execute("select count(*) from order_events").fetchone()[0] == 0
        assert c.execute("select count(*) from fills").fetchone()[0] == 2


def test_a_sync_fill_after_the_journal_commit_gets_its_own_equity_mark(tmp_path, make_engine,
                                                                       scripted, real_bars):
    """Rows after the journal's commit are outside the bar's buffered row: a fill the
    venue answers synchronously still moves cash and is marked in ``equity``."""
    bars = real_bars[SYM].slice(0, 12)
    db = tmp_path / "ledger.db"

    class InstantVenue(CheckingVenue):
        def submit(self, order, legs=()):
            events = super().submit(order, legs)
            ts = order.created_ts + 3600
            self.script[(SYM, ts)] = []
            return events + self.process_now(order, ts)

        def process_now(self, order, ts):
            t = self.tickets[order.client_order_id]
            return self._fill(t, t.remaining, Decimal("63000.00"), Decimal("1.00"), ts, "taker")

    venue = InstantVenue({SYM: BTC}, db=str(db))
    engine, ledger = make_engine(tmp_path, scripted(enter_ts=[bars.ts[5]]), mode="paper",
                                 broker=venue, clock=ReplayClock(int(bars.ts[0])))
    for i in range(12):
        engine.process_chunk({SYM: bars.slice(i, i + 1)})
    ledger.close()
    with sqlite3.connect(db) as c:
        marks = c.execute("select ts, cash from equity order by seq").fetchall()
        (fill_ts, qty, price, fee), = c.execute("select ts, quantity, price, fee from fills").fetchall()
    assert len(marks) == 2                                  # the start, and the fill
    assert Decimal(str(marks[1][1])).quantize(Decimal("0.01")) == (
        Decimal(10000) - Decimal(qty) * Decimal(price) - Decimal(fee)).quantize(Decimal("0.01"))
    assert engine.by_name[SYM].holding.quantity == Decimal(qty)
