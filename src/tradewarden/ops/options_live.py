"""Put writing in paper and live at Interactive Brokers, through the options desk.

The same :class:`~tradewarden.engine.options_desk.OptionsDesk` as the options replay,
with the IBKR adapter (:class:`~tradewarden.execution.ibkr.IbkrBroker`) as its venue and
the chain read from IBKR (:class:`~tradewarden.execution.ibkr_options.IbkrOptions`:
contracts, quotes with model greeks). One :meth:`OptionsDeployment.step` per NYSE
session, after the close (the caller schedules it: the daemon's ``market_close``
event, or a loop on the mode's clock): the chain is read, the desk decides, the orders
it sent are followed until they end or ``settle_polls`` polls have passed (a limit
order still working is cancelled at the next step and decided afresh), and the desk's
state is saved with the deployment (``engine_state``) so a restart resumes it.

While the API session is down nothing is decided: the step records why and returns
(short puts carry no protective orders at the venue; they are managed at the next step
the session is up). :meth:`OptionsDeployment.reconcile` compares the desk's book with
the positions IBKR reports (an early assignment, an expiry the venue settled) and
records each difference.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Callable

import pandas as pd

from tradewarden.engine.options_desk import OptionsDesk, StepReport
from tradewarden.ops.options_replay import OptionsRunConfig, create_options_run

__all__ = ["OptionsDeployment", "ibkr_chain_frame"]


def ibkr_chain_frame(options: Any, underlying: str, *, today: Any, dte_max: int,
                     strike_band: float = 0.25, underlying_price: float | None = None
                     ) -> pd.DataFrame:
    """Return IBKR's puts of ``underlying`` as an option-chain frame (the replay's format).

    Parameters
    ----------
    options : IbkrOptions
    underlying : str
    today : datetime.date
        The quote date (days to expiry count from it).
    dte_max : int
        Latest expiry read, calendar days (held puts expire before it: the desk manages
        them from the same frame).
    strike_band : float
        Strikes within this fraction of the underlying's price (when it is given).
    underlying_price : float, optional
        USD per share, to bound the strikes read.

    Returns
    -------
    pandas.DataFrame
        :func:`~tradewarden.execution.ibkr_options.quotes_frame`'s columns; empty when
        IBKR quotes none.
    """
    from tradewarden.execution.ibkr_options import quotes_frame

    lo = hi = None
    if underlying_price:
        lo, hi = underlying_price * (1 - strike_band), underlying_price * (1 + strike_band)
    contracts = options.contracts(underlying, right="P", today=today, dte_min=0,
                                  dte_max=dte_max, strike_min=lo, strike_max=hi)
    return quotes_frame(options.quotes(contracts))


class OptionsDeployment:
    """A put writer trading at IBKR (paper or live) through the options desk.

    Parameters
    ----------
    ledger : Ledger
    broker : IbkrBroker
        Connected.
    options : IbkrOptions
        On the same ``ib_async.IB`` session.
    clock : callable
        ``clock() -> float``, UTC epoch seconds (the mode's clock).
    config : OptionsRunConfig
        ``mode`` ``paper`` or ``live``; ``chain`` names the source (``ibkr``).
    deployment_id : str
    governor : Governor, optional
    pump : callable, optional
        Called between polls while orders settle (default: the client's ``ib.sleep``
        of 0.05 s, which lets the socket deliver).
    settle_polls : int
        Polls per step at most while orders are open (default 100).
    run_id : str, optional
    resume : bool
        Start from the deployment's latest saved state (its cash, short puts, shares and
        sequence numbers), as a daily ``warden ibkr write-puts`` does; default ``True``.
    """

    def __init__(self, *, ledger: Any, broker: Any, options: Any, clock: Callable[[], float],
                 config: OptionsRunConfig, deployment_id: str, governor: Any = None,
                 pump: Callable[[], None] | None = None, settle_polls: int = 100,
                 run_id: str | None = None, resume: bool = True) -> None:
        self.ledger, self.broker, self.options, self.clock = ledger, broker, options, clock
        self.config, self.deployment_id = config, deployment_id
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.pump = pump or (lambda: broker.ib.sleep(0.05))
        self.settle_polls = settle_polls
        self._state_seq = 0
        self._event_seq = 0
        create_options_run(ledger, config, run_id=self.run_id, mode=config.mode,
                           range_start=int(clock()), notes=f"deployment {deployment_id}")
        self.desk = OptionsDesk(run_id=self.run_id, params=config.params, risk=config.risk,
                                broker=broker, ledger=ledger, capital=config.capital,
                                governor=governor, source="ibkr",
                                fee_per_contract=config.commission_per_contract,
                                save_state=self._write_state)
        self.resumed = False
        self.recovered: list[str] = []
        if resume:
            state = ledger.latest_engine_state(deployment_id)
            if state is not None and "shorts" in state:
                self.desk.restore(state)
                self.resumed = True
                if broker.connected:
                    self.recovered = self.desk.recover(int(clock()))
                    for line in self.recovered:
                        self._event(int(clock()), "reconciliation", line)

    def _write_state(self, snapshot: dict[str, Any]) -> None:
        """Put the desk's state in the current ledger batch (committed with it)."""
        self._state_seq += 1
        self.ledger.write_engine_state(self.run_id, self._state_seq, self.deployment_id,
                                       int(self.clock()), json.dumps(snapshot))

    def _event(self, ts: int, kind: str, message: str) -> None:
        self._event_seq += 1
        self.ledger.write_events(self.run_id, [(self._event_seq, ts, kind,
                                                self.config.params.underlying, message)])
        self.ledger.commit()

    def step(self) -> StepReport | None:
        """Read the chain, decide, follow the orders until they end, save the state.

        Returns
        -------
        StepReport or None
            ``None`` when nothing could be decided (the session is down, or IBKR quoted
            no put): an ``events`` row says why.
        """
        now = int(self.clock())
        today = datetime.fromtimestamp(now, tz=timezone.utc).date()
        if not self.broker.connected:
            self._event(now, "venue", "broker_disconnected: no decision this session; "
                                      "short puts are managed at the next step the session is up")
            return None
        p = self.config.params
        held = [s.strike for s in self.desk.shorts.values()]
        last = float(self.desk._underlying_last) if self.desk._underlying_last else None
        frame = ibkr_chain_frame(self.options, p.underlying, today=today, dte_max=p.dte_max,
                                 underlying_price=last)
        if held and not frame.empty:            # the strikes held are always read
            have = set(frame["occ_symbol"])
            missing = [o for o in self.desk.shorts if o not in have]
            if missing:
                wide = ibkr_chain_frame(self.options, p.underlying, today=today,
                                        dte_max=p.dte_max)
                frame = pd.concat([frame, wide[wide["occ_symbol"].isin(missing)]],
                                  ignore_index=True)
        if frame.empty:
            self._event(now, "data", f"IBKR quoted no {p.underlying} put with greeks: "
                                     "no decision this session")
            return None
        und = Decimal(str(frame["underlying_price"].iloc[0]))
        report = self.desk.step(now, frame, quote_date=today, underlying_price=und)
        for _ in range(self.settle_polls):
            if self.desk.poll(int(self.clock())) == 0:
                break
            self.pump()
        self.save()
        return report

    def save(self) -> None:
        """Write the desk's state with the deployment (one ``engine_state`` row) and commit."""
        self._write_state(self.desk.snapshot())
        self.ledger.commit()

    def reconcile(self) -> list[dict[str, Any]]:
        """Compare the desk's short puts and shares with IBKR's positions.

        Returns
        -------
        list of dict
            One per difference still there after ``settle_polls`` pumps (IBKR reports a
            position change a moment after the execution): ``symbol``, ``desk`` and
            ``venue`` quantities (contracts for options, negative short; shares for
            stock). Each is also recorded as an ``events`` row of kind ``reconciliation``.
        """
        now = int(self.clock())
        out = self._differences()
        for _ in range(self.settle_polls if out else 0):   # IBKR's position updates follow
            self.pump()                                   # its executions by a moment
            out = self._differences()
            if not out:
                break
        for d in out:
            self._event(now, "reconciliation", json.dumps(d, sort_keys=True))
        return out

    def _differences(self) -> list[dict[str, Any]]:
        venue = {p.occ_symbol: p.contracts for p in self.broker.option_positions()}
        desk = {o: Decimal(-s.contracts) for o, s in self.desk.shorts.items()}
        stocks = {p.symbol: p.quantity for p in self.broker.positions()
                  if getattr(p, "sec_type", "STK") == "STK"}
        for sym, st in self.desk.stock.items():
            desk[sym] = st.shares
            venue.setdefault(sym, stocks.get(sym, Decimal(0)))
        out = []
        for sym in sorted(set(venue) | set(desk)):
            a, b = desk.get(sym, Decimal(0)), venue.get(sym, Decimal(0))
            if a != b:
                out.append({"symbol": sym, "desk": str(a), "venue": str(b)})
        return out
