"""Between bars: the command inbox and reconciliation with the venue (paper and live).

:class:`Operations` is a part of :class:`~tradewarden.engine.TradingEngine` (a mixin):
what a deployment does outside the tick path, always between two bars.

* **The inbox.** People act on a running deployment through the ledger: ``warden
  approvals approve|reject``, ``warden pause|resume|kill|flatten`` and ``warden
  reconcile --accept`` add a row to ``commands``; the runner hands the pending rows to
  :meth:`Operations.handle_commands` before each bar and while it waits for the next.
  Each command's result (``done`` or ``refused``, and why) is committed with what it
  caused. An approved entry is re-checked by risk with the figures of now; every exit a
  command asks for goes through the broker (``close_position``), never a fill made up
  inside the engine.
* **Reconciliation.** :meth:`Operations.reconcile` runs when a deployment starts: every
  order the journal holds open is looked up at the venue (``Broker.lookup``); one never
  received is sent again under its client order id, one the venue knows is brought up to
  date from its fills (those beyond the quantity already booked; a venue's fills carry no
  execution id we keep, so cumulative quantity is what de-duplicates them). Then the
  venue's account (``Broker.account``) is compared with the ledger: positions, open
  orders (one placed outside tradewarden is recorded as external and left alone; an
  unknown id of this deployment is a difference), the quote balance. Any difference is a ``reconciliations`` row and blocks new
  entries until it is resolved by a later reconciliation or accepted (``accept``: the
  venue's view is adopted and recorded as such).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tradewarden.domain import (
    Action,
    BarSeries,
    ExitReason,
    Fill,
    Order,
    OrderRole,
    OrderStatus,
    Side,
    Signal,
    iso,
    to_decimal,
)
from tradewarden.execution.base import OrderEvent, OrderEventKind, VenueOrder

if TYPE_CHECKING:
    from tradewarden.engine.engine import _Sym

#: Commands the inbox knows (``commands.kind``).
COMMANDS = ("approve", "reject", "pause", "resume", "kill", "flatten", "close", "accept")
_ENDED_KIND = {OrderStatus.CANCELLED: OrderEventKind.CANCELLED,
               OrderStatus.EXPIRED: OrderEventKind.EXPIRED,
               OrderStatus.REJECTED: OrderEventKind.REJECTED}
_OPEN_AT_VENUE = (OrderStatus.ACCEPTED, OrderStatus.WORKING, OrderStatus.PARTIALLY_FILLED)
#: Quote currency the venue's balance may fall short of the ledger's cash by, from the
#: venue's rounding of balances (Kraken reports USD to 4 decimals), before it is a difference.
BALANCE_TOLERANCE = Decimal("0.01")
#: Entry blocks the runner and reconciliation set (the decision's ``reason``).
FEED_STALLED, RECONCILE_MISMATCH = "feed_stalled", "reconcile_mismatch"


class CommandRefused(Exception):
    """A command that cannot be carried out now (its row is marked ``refused``)."""


class Operations:
    """The engine's between-bars operations (a mixin of ``TradingEngine``; see the module
    notes). Every method runs between two bars, never inside :meth:`on_bar`."""

    @property
    def last_bar_ts(self) -> int | None:
        """Open time of the last bar decided (UTC epoch seconds; restored on resume), or ``None``."""
        return self._last_ts

    def warm_up(self, chunk: dict[str, BarSeries]) -> None:
        """Prepare the strategy on history before the first live bar (no decisions).

        Parameters
        ----------
        chunk : dict of str to BarSeries
            Closed bars per symbol up to (and including) the last bar decided; a
            symbol's last close becomes its price until its first live bar when none
            was restored.
        """
        prepared = self.prepare({k: v for k, v in chunk.items() if len(v)})
        for s, bars, _ in prepared:
            if not s.last_close > 0:
                s.last_close = float(bars.close[-1])

    # -- entry blocks --------------------------------------------------------------------
    def block_entries(self, code: str, message: str, ts: int | None) -> None:
        """Block new entries for a reason outside the tick path (a stalled feed, a
        reconciliation difference) and record it once as an event.

        Parameters
        ----------
        code : str
            The decision reason entries get while blocked (``feed_stalled``,
            ``reconcile_mismatch``).
        message : str
            What a person reads (recorded in ``events`` and in the blocked decisions'
            detail).
        ts : int or None
            UTC epoch seconds of the event.
        """
        if self.blocks.get(code) == message:
            return
        self.blocks[code] = message
        self.event(ts, "block", None, f"{code}: {message}")

    def unblock_entries(self, code: str, message: str, ts: int | None) -> None:
        """Lift a block set by :meth:`block_entries` (recorded as an event if it was set)."""
        if self.blocks.pop(code, None) is not None:
            self.event(ts, "unblock", None, f"{code}: {message}")

    def set_venue_blocks(self, blocks: dict[str, str], ts: int | None) -> None:
        """Block entries in the symbols a venue will not take them for (a product that is
        ``cancel_only``, ``trading_disabled``, ...); each change is an event.

        Parameters
        ----------
        blocks : dict of str to str
            Symbol -> the venue's reason (``Broker.entry_blocks()`` where an adapter has it).
        ts : int or None
            UTC epoch seconds of the events.
        """
        for sym, why in blocks.items():
            if self.venue_blocks.get(sym) != why:
                self.event(ts, "block", sym, f"venue_status: {why}")
        for sym in set(self.venue_blocks) - set(blocks):
            self.event(ts, "unblock", sym, "venue_status: the venue takes entries again")
        self.venue_blocks = dict(blocks)

    # -- the inbox -----------------------------------------------------------------------
    def handle_commands(self, commands: list[dict[str, Any]], ts: int, *,
                        approvals: dict[int, dict[str, Any]] | None = None,
                        differences: list[dict[str, Any]] | None = None) -> list[tuple[int, str, str]]:
        """Carry out operator commands, oldest first, and commit their results.

        Parameters
        ----------
        commands : list of dict
            ``commands`` rows (``id``, ``kind``, ``target``, ``reason``, ``actor``), pending.
        ts : int
            Clock time now, UTC epoch seconds (stamped on events, orders and results).
        approvals : dict of int to dict, optional
            The deployment's ``approvals`` rows by id (for ``approve`` / ``reject``).
        differences : list of dict, optional
            The deployment's open ``reconciliations`` rows (for ``accept``).

        Returns
        -------
        list of (int, str, str)
            ``(command id, status, result)``: status ``done`` or ``refused``.

        Notes
        -----
        A command's result is committed in the same transaction as what it caused (an
        approved entry's orders are committed before ``broker.submit``, as every order
        is). ``kill`` engages the risk manager's kill switch on every account (no new
        entries; open positions keep their protective orders); ``resume`` lifts it and a
        pause. ``flatten`` / ``close`` cancel the symbol's orders and close the position
        through ``broker.close_position`` as a recorded ``exit`` decision (reason
        ``manual``).
        """
        out: list[tuple[int, str, str]] = []
        for cmd in commands:
            kind = cmd["kind"]
            handler = getattr(self, f"_cmd_{kind}", None) if kind in COMMANDS else None
            try:
                if handler is None:
                    raise CommandRefused(f"unknown command {kind!r}")
                result = handler(cmd, ts, approvals or {}, differences or [])
                status = "done"
            except CommandRefused as exc:
                status, result = "refused", str(exc)
            if not cmd.get("_recorded"):
                self._finish_command(cmd, status, result, ts)
            elif cmd["_recorded"] != (status, result):     # recorded before acting: the outcome
                self._command_results.append((int(cmd["id"]), status, result, iso(ts)))
            out.append((cmd["id"], status, result))
        self._state_dirty = True
        self.flush()
        self.ledger.drain()
        return out

    def _finish_command(self, cmd: dict[str, Any], status: str, result: str, ts: int) -> None:
        """Buffer a command's result (committed with the next flush) and its event."""
        cmd["_recorded"] = (status, result)
        self._command_results.append((int(cmd["id"]), status, result, iso(ts)))
        target = f" {cmd['target']}" if cmd.get("target") else ""
        self.event(ts, "command", None,
                   f"command {cmd['id']} {cmd['kind']}{target} by {cmd['actor']}: {status}: {result}")

    def _cmd_pause(self, cmd: dict[str, Any], ts: int, *_: Any) -> str:
        if self.paused:
            return "already paused"
        self.paused = True
        return "paused: no new entries until resume" + (f" ({cmd['reason']})" if cmd.get("reason") else "")

    def _cmd_resume(self, cmd: dict[str, Any], ts: int, *_: Any) -> str:
        was_paused, self.paused = self.paused, False
        killed = [a.name for a in self.accounts if "kill_switch" in self.risk.snapshot()[a.name]["halts"]]
        for name in killed:
            self.risk.reset(name, ts, f"resumed by {cmd['actor']}", kind="kill_switch")
        self._drain_risk_events()
        if not (was_paused or killed):
            return "nothing to resume: not paused, no kill switch engaged"
        return "resumed" + (" (kill switch lifted)" if killed else "")

    def _cmd_kill(self, cmd: dict[str, Any], ts: int, *_: Any) -> str:
        why = cmd.get("reason") or "operator"
        for a in self.accounts:
            self.risk.halt(a.name, ts, f"kill_switch:{cmd['actor']}: {why}")
        self._drain_risk_events()
        return "kill switch engaged: no new entries until resume; positions kept (flatten closes them)"

    def _cmd_flatten(self, cmd: dict[str, Any], ts: int, *_: Any) -> str:
        return self._close_for(cmd, ts, None)

    def _cmd_close(self, cmd: dict[str, Any], ts: int, *_: Any) -> str:
        sym = cmd.get("target")
        if sym not in self.by_name:
            raise CommandRefused(f"{sym!r} is not a symbol of this deployment "
                                 f"({', '.join(self.by_name)})")
        return self._close_for(cmd, ts, [sym])

    def _close_for(self, cmd: dict[str, Any], ts: int, symbols: list[str] | None) -> str:
        held = [s.name for s in self.syms if (symbols is None or s.name in symbols)
                and not s.holding.is_flat]
        # recorded first: committed with the exit decisions and orders, before any is sent
        self._finish_command(cmd, "done", f"closing {', '.join(held)} through the broker"
                             if held else "nothing held: open orders cancelled", ts)
        closed = self.close_all(ExitReason.MANUAL, symbols=symbols,
                                detail={"command": cmd["id"], "by": cmd["actor"], "at": iso(ts)})
        text = f"{closed} position(s) closed" + (f" ({', '.join(held)})" if held else "")
        if self.simulated:
            return text
        # a real venue: check what it holds now (a close it did not fill, orders left)
        left = [d for d in self._differences() if d["kind"] != "balance"
                and (symbols is None or d["symbol"] in symbols or d["symbol"] is None)]
        if not left:
            return text + "; the venue agrees"
        self.block_entries(RECONCILE_MISMATCH, "after closing, the venue still shows: " + "; ".join(
            f"{d['kind']} {d['symbol'] or ''} {d['venue']}" for d in left), ts)
        return text + "; the venue still shows " + "; ".join(
            f"{d['kind']} {d['symbol'] or ''}: ledger {d['ours']}, venue {d['venue']}" for d in left)

    def _approval(self, cmd: dict[str, Any], approvals: dict[int, dict[str, Any]]) -> dict[str, Any]:
        try:
            aid = int(cmd.get("target") or "")
        except ValueError:
            raise CommandRefused(f"approval id {cmd.get('target')!r} is not a number") from None
        row = approvals.get(aid)
        if row is None or row.get("deployment_id") != self.deployment_id:
            raise CommandRefused(f"approval {aid} is not an approval of this deployment")
        if row["status"] != "pending":
            raise CommandRefused(f"approval {aid} is {row['status']}"
                                 + (f" (by {row['acted_by']})" if row.get("acted_by") else ""))
        return row

    def _set_approval(self, row: dict[str, Any], status: str, actor: str | None, ts: int,
                      reason: str | None) -> None:
        row["status"] = status
        self._approval_updates.append((int(row["id"]), status, actor, iso(ts), reason))

    def _cmd_reject(self, cmd: dict[str, Any], ts: int, approvals: dict[int, dict[str, Any]],
                    *_: Any) -> str:
        row = self._approval(cmd, approvals)
        self._set_approval(row, "rejected", cmd["actor"], ts, cmd.get("reason"))
        return f"approval {row['id']} rejected"

    def _cmd_approve(self, cmd: dict[str, Any], ts: int, approvals: dict[int, dict[str, Any]],
                     *_: Any) -> str:
        row = self._approval(cmd, approvals)
        s = self.by_name.get(row["symbol"])
        if s is None:
            raise CommandRefused(f"approval {row['id']}: {row['symbol']} is not a symbol of this deployment")
        intent = json.loads(row["intent"])
        actor = cmd["actor"]
        if row["action"] == "exit":
            return self._approve_exit(cmd, row, s, ts)
        from tradewarden.engine.engine import FLAT, _STATE_ENUMS
        if s.state != FLAT:
            why = f"{s.name} is {_STATE_ENUMS[s.state].value} now, not flat"
            self._set_approval(row, "rejected", actor, ts, why)
            raise CommandRefused(f"approval {row['id']} rejected: {why}")
        acct = self.accounts[s.acct]
        block = ("paused" if self.paused else next(iter(self.blocks), None)
                 or self.risk.halted(acct.name, ts))
        if block is not None:       # the approval stays pending: resume, then approve again
            raise CommandRefused(f"entries are blocked ({block}); approval {row['id']} stays pending")
        price = s.last_close
        if not price > 0:
            raise CommandRefused(f"no price of {s.name} seen yet; approve after its next bar")
        sig = Signal(Action.ENTER_LONG, intent.get("signal") or "approved",
                     stop_loss=intent.get("stop_loss"), take_profit=intent.get("take_profit"),
                     weight=(intent.get("sizing") or {}).get("target_weight"))
        verdict = self.risk.evaluate_entry(
            account=acct.name, instrument=s.inst, ts=ts, price=price, signal=sig,
            equity=self.equity(s.acct), peak_equity=acct.peak, cash=acct.cash_f,
            open_positions=self.open_positions())
        self._drain_risk_events()
        if not verdict.approved:
            why = f"risk re-check at approval: {verdict.reason}"
            self._set_approval(row, "rejected", actor, ts, why)
            raise CommandRefused(f"approval {row['id']} rejected: {why}")
        entry, legs = self._entry_orders(s, verdict.quantity, sig.stop_loss, sig.take_profit, ts,
                                         int(row["decision_seq"]))
        self._submit_record([entry, *legs])
        self._set_approval(row, "approved", actor, ts, cmd.get("reason"))
        result = (f"approval {row['id']} approved: {entry.client_order_id} buys {verdict.quantity} "
                  f"{s.name} (risk re-checked at {price:g}; queued for {intent.get('quantity')})")
        self._finish_command(cmd, "done", result, ts)
        self.flush()                # the approval, the command and the orders, before sending
        self.ledger.drain()
        self._send_entry(s, entry, legs, -1, price)
        self.flush()
        return result

    def _approve_exit(self, cmd: dict[str, Any], row: dict[str, Any], s: _Sym, ts: int) -> str:
        from tradewarden.engine.engine import OPEN
        if s.state != OPEN:
            why = f"{s.name} holds no open position now"
            self._set_approval(row, "rejected", cmd["actor"], ts, why)
            raise CommandRefused(f"approval {row['id']} rejected: {why}")
        self._set_approval(row, "approved", cmd["actor"], ts, cmd.get("reason"))
        self._finish_command(cmd, "done", f"approval {row['id']} approved: closing {s.name}", ts)
        closed = self.close_all(ExitReason.MANUAL, symbols=[s.name],
                                detail={"approval": row["id"], "by": cmd["actor"], "at": iso(ts)})
        return f"approval {row['id']} approved: {closed} position(s) closed"

    def expire_approvals(self, rows: list[dict[str, Any]], bar_ts: int, symbol: str) -> int:
        """Expire the pending approvals of ``symbol`` decided on a bar before ``bar_ts``.

        An approval is valid until the next bar of its symbol is decided: that bar brings
        a fresh decision. Returns how many expired (written with the next flush).
        """
        n = 0
        for row in rows:
            if row["status"] == "pending" and row["symbol"] == symbol and int(row["ts"]) < bar_ts:
                self._set_approval(row, "expired", None, bar_ts,
                                   f"not acted on before the next {symbol} bar ({iso(bar_ts)})")
                n += 1
        return n

    # -- reconciliation ------------------------------------------------------------------
    def reconcile(self, ts: int, *, previous: list[dict[str, Any]] | None = None,
                  name: str | None = None) -> list[dict[str, Any]]:
        """Reconcile the ledger's view with the venue's, record the differences, and
        block new entries while there are any (see the module notes).

        Parameters
        ----------
        ts : int
            Clock time now, UTC epoch seconds.
        previous : list of dict, optional
            Open ``reconciliations`` rows of earlier reconciliations: superseded by this
            one (marked ``resolved``).
        name : str, optional
            The deployment's name, for the message telling a person what to run.

        Returns
        -------
        list of dict
            The differences found (``kind``, ``symbol``, ``ours``, ``venue``), each also
            a new ``reconciliations`` row with status ``open``.
        """
        self._reconciling = True
        try:
            self._catch_up_orders(ts)
        finally:
            self._reconciling = False
        self._hand_over_orders()
        diffs = self._differences()
        for row in previous or ():
            self._recon_updates.append((row["run_id"], int(row["seq"]), "resolved",
                                        "reconciliation", iso(ts)))
        for d in diffs:
            self._recon_rows.append({"seq": self._recon_seq, "deployment_id": self.deployment_id,
                                     "ts": ts, "status": "open", **d})
            self._recon_seq += 1
        if diffs:
            what = "; ".join(f"{d['kind']} {d['symbol'] or ''}: ledger {d['ours']}, venue {d['venue']}"
                             for d in diffs)
            self.block_entries(RECONCILE_MISMATCH, f"{len(diffs)} difference(s) with the venue "
                               f"({what}); see warden reconcile --deployment {name or self.deployment_id}",
                               ts)
        else:
            self.unblock_entries(RECONCILE_MISMATCH, "the ledger agrees with the venue", ts)
        self._state_dirty = True
        self.flush()
        self.ledger.drain()
        return diffs

    def _catch_up_orders(self, ts: int) -> None:
        """Bring every order the journal holds open up to date with the venue; send again
        those it never received (same client order id; an entry with its legs)."""
        held = {leg.client_order_id for legs in self.held_legs.values() for leg in legs}
        unsent: list[Order] = []
        for cid, order in list(self._open.items()):
            if cid in held or order.status not in (OrderStatus.SUBMITTED, *_OPEN_AT_VENUE):
                continue
            v = self.broker.lookup(cid)
            if v is None:
                if order.status is OrderStatus.SUBMITTED:
                    unsent.append(order)
                continue                     # acknowledged, now unknown: a difference
            events = self._events_since(order, v, ts)
            if events:
                s = self.by_name[order.symbol]
                self._apply(s, events, -1, s.last_close)
                self._sync_band(s)
        sent = {o.client_order_id for o in unsent}
        for o in unsent:
            if o.parent_id is not None and o.parent_id in sent:
                continue                                    # goes with its entry
            legs = tuple(x for x in unsent if x.parent_id == o.client_order_id)
            s = self.by_name[o.symbol]
            if legs and not self.native_bracket:    # emulated: the legs wait for the fill
                self.held_legs[o.client_order_id] = legs
                events = self._submit(o)
            else:
                events = self._submit(o, legs)
            self.event(ts, "info", o.symbol,
                       f"{o.client_order_id}: journaled but never received by the venue; sent now")
            self._after_submit(s, events, -1, s.last_close)
            self._sync_band(s)
        if unsent and not self.simulated:
            # a venue may fill what was just sent on arrival (a market entry): read it back
            # before comparing accounts, or that fill would look like a difference
            for o in unsent:
                if o.status.is_open and o.status is not OrderStatus.SUBMITTED:
                    v = self.broker.lookup(o.client_order_id)
                    events = [] if v is None else self._events_since(o, v, ts)
                    if events:
                        s = self.by_name[o.symbol]
                        self._apply(s, events, -1, s.last_close)
                        self._sync_band(s)

    def _hand_over_orders(self) -> None:
        """Tell a venue adapter which orders are open and what is booked on each (see
        ``Broker.account``'s notes), so it reports only what comes after."""
        adopt = getattr(self.broker, "adopt", None)
        if adopt is not None:
            held = {leg.client_order_id for legs in self.held_legs.values() for leg in legs}
            adopt({c: o for c, o in self._open.items() if c not in held}, dict(self._filled))

    def _events_since(self, order: Order, v: VenueOrder, ts: int) -> list[OrderEvent]:
        """The events of ``order`` the engine has not applied, from the venue's record."""
        events: list[OrderEvent] = []
        if order.status is OrderStatus.SUBMITTED and v.status is not OrderStatus.SUBMITTED:
            events.append(OrderEvent(order, OrderEventKind.ACCEPTED, ts, "acknowledged while we were away"))
        booked = self._filled.get(order.client_order_id, Decimal(0))
        cum = Decimal(0)
        for f in v.fills:
            before, cum = cum, cum + f.quantity
            if cum <= booked:
                continue
            part = f if before >= booked else f._replace(quantity=cum - booked)
            last = cum >= order.quantity
            events.append(OrderEvent(order, OrderEventKind.FILLED if last else OrderEventKind.PARTIALLY_FILLED,
                                     f.ts, "", part))
        ended = _ENDED_KIND.get(v.status)
        if ended is not None and order.status is not v.status:
            events.append(OrderEvent(order, ended, ts, v.reason or "ended while we were away"))
        elif (v.status is OrderStatus.WORKING and not events
              and order.status in (OrderStatus.SUBMITTED, OrderStatus.ACCEPTED)):
            events.append(OrderEvent(order, OrderEventKind.WORKING, ts, ""))
        return events

    def _differences(self) -> list[dict[str, Any]]:
        """Compare the ledger's positions, open orders and cash with the venue's account."""
        view = self.broker.account([s.name for s in self.syms])
        diffs: list[dict[str, Any]] = []
        held = {leg.client_order_id for legs in self.held_legs.values() for leg in legs}
        at_venue = set(view.open_orders)
        ours_prefix = f"tw-{self.deployment_id}-"
        for cid in view.open_orders:
            if cid in self._open or cid in self._accepted_unknown:
                continue
            if cid.startswith(ours_prefix):      # this deployment's id it does not know of
                diffs.append({"kind": "order_unknown", "symbol": None, "ours": "none", "venue": cid})
            else:                                # placed outside tradewarden: left alone
                self._accepted_unknown.add(cid)
                self.event(self._last_ts, "external", None,
                           f"order {cid} at the venue was not placed by this deployment: "
                           "recorded and left alone")
        for cid, o in self._open.items():
            if cid not in held and o.status in _OPEN_AT_VENUE and cid not in at_venue:
                diffs.append({"kind": "order_missing", "symbol": o.symbol,
                              "ours": f"{cid} {o.status.value}", "venue": "none"})
        if view.positions is not None:
            for s in self.syms:
                theirs = view.positions.get(s.name, Decimal(0))
                if theirs != s.holding.quantity:
                    diffs.append({"kind": "position", "symbol": s.name,
                                  "ours": str(s.holding.quantity), "venue": str(theirs)})
        if view.balances is not None:
            quote = self.syms[0].inst.quote
            ours = sum((a.cash for a in self.accounts), Decimal(0))
            theirs = view.balances.get(quote, Decimal(0))
            if theirs < ours - BALANCE_TOLERANCE:       # venues round balances (Kraken: 4 dp)
                diffs.append({"kind": "balance", "symbol": None, "ours": f"{ours} {quote}",
                              "venue": f"{theirs} {quote}"})
        return diffs

    def _cmd_accept(self, cmd: dict[str, Any], ts: int, _a: Any,
                    differences: list[dict[str, Any]]) -> str:
        """Adopt the venue's view: positions (booked at the last close as ``adopted``
        fills, no fee), orders the venue does not have (cancelled), orders it has that
        are not ours (left alone, no longer reported), and a lower quote balance (cash
        scaled down to it)."""
        if not differences:
            raise CommandRefused("no open differences to accept")
        self._catch_up_orders(ts)
        diffs = self._differences()
        done: list[str] = []
        for d in diffs:
            kind = d["kind"]
            if kind == "order_unknown":
                self._accepted_unknown.add(d["venue"])
                done.append(f"venue order {d['venue']} left to the venue")
            elif kind == "order_missing":
                cid = d["ours"].split(" ")[0]
                order = self._open[cid]
                s = self.by_name[order.symbol]
                self._apply(s, [OrderEvent(order, OrderEventKind.CANCELLED, ts,
                                           f"reconciled: not at the venue (accepted by {cmd['actor']})")],
                            -1, s.last_close)
                done.append(f"{cid} marked cancelled")
            elif kind == "position":
                done.append(self._adopt_position(self.by_name[d["symbol"]], Decimal(d["venue"]), ts, cmd))
            elif kind == "balance":
                theirs = Decimal(d["venue"].split(" ")[0])
                ours = sum((a.cash for a in self.accounts), Decimal(0))
                for a in self.accounts:
                    a.cash = a.cash * theirs / ours if ours > 0 else Decimal(0)
                    a.cash_f = float(a.cash)
                done.append(f"cash set to the venue's {d['venue']}")
        for row in differences:
            self._recon_updates.append((row["run_id"], int(row["seq"]), "accepted", cmd["actor"], iso(ts)))
        self.unblock_entries(RECONCILE_MISMATCH, f"the venue's view accepted by {cmd['actor']}", ts)
        return "; ".join(done) or "the venue now agrees with the ledger"

    def _adopt_position(self, s: _Sym, theirs: Decimal, ts: int, cmd: dict[str, Any]) -> str:
        """Book the difference to the venue's position as an ``adopted`` fill at the last close."""
        from tradewarden.engine.engine import FLAT, OPEN
        ours = s.holding.quantity
        price = to_decimal(s.last_close) if s.last_close > 0 else None
        if price is None:
            raise CommandRefused(f"no price of {s.name} seen yet to book the venue's position; "
                                 "accept after its next bar")
        buy = theirs > ours
        qty = abs(theirs - ours)
        f = Fill(f"adopt-{cmd['id']}-{s.name}", s.name, Side.BUY if buy else Side.SELL, qty, price,
                 Decimal(0), "adopted", ts, price, OrderRole.ENTRY if buy else OrderRole.EXIT)
        acct = self.accounts[s.acct]
        self._fills.append((self._fill_seq, f))
        self._fill_seq += 1
        if buy:
            acct.add_cash(-(price * qty))
            if not s.holding.fills:
                self.counts.trades_opened += 1
            s.holding.apply(f)
        else:
            acct.add_cash(price * qty)
            trade = s.holding.apply(f, ExitReason.MANUAL)
            if trade is not None:
                self.finalize_exit(s, trade, -1)
        s.qty = float(s.holding.quantity)
        s.state = FLAT if s.holding.is_flat else OPEN
        self._changed(-1, s, acct, ts)
        return f"{s.name} position {ours} -> {theirs} (adopted at {price})"


__all__ = ["COMMANDS", "FEED_STALLED", "RECONCILE_MISMATCH", "CommandRefused", "Operations"]
