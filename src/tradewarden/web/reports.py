"""Run reports for the API, built in a worker process of their own.

The report builder reads an SQLite ledger file through ADBC, which links its own copy
of SQLite. In the server's process (or the daemon's, when it serves the dashboard)
Python's ``sqlite3`` connections hold POSIX locks on the same file; closing the ADBC
connection would drop them (POSIX locks belong to the process, not the connection;
sqlite.org/howtocorrupt.html, section 2.2.1), and reading the same file through
``sqlite3`` instead is far slower on a long replay (measured: 1 s through ADBC against
more than 3 minutes on a 54,000-bar run). So the report is built in one long-lived
worker process (``spawn``: nothing of this process is inherited), as ``warden report``
would build it from another shell.
"""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

__all__ = ["ReportWorker", "build_report_dict"]


def build_report_dict(ledger_url: str, run_id: str) -> dict[str, Any]:
    """Build one run's report as its JSON-safe dict (runs in the worker process).

    Parameters
    ----------
    ledger_url : str
        SQLite path or SQLAlchemy URL of the ledger.
    run_id : str

    Returns
    -------
    dict
        :func:`tradewarden.analytics.report.report_to_dict` of the run's report.

    Raises
    ------
    LookupError
        No such run.
    tradewarden.ledger.LedgerError
        The ledger cannot be opened.
    """
    from tradewarden.analytics.report import build_report
    from tradewarden.ledger import open_engine
    engine = open_engine(ledger_url, create=False, migrate=False)
    try:
        return build_report(engine, run_id).to_dict()
    finally:
        engine.dispose()


class ReportWorker:
    """One worker process building reports on request, started on first use.

    Parameters
    ----------
    ledger_url : str
        The ledger the reports are read from.
    timeout : float
        Seconds to wait for one report before giving up (default 300).
    """

    def __init__(self, ledger_url: str, timeout: float = 300.0) -> None:
        self.ledger_url = ledger_url
        self.timeout = timeout
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=1, mp_context=multiprocessing.get_context("spawn"))
            return self._pool

    def report(self, run_id: str) -> dict[str, Any]:
        """Return a run's report dict, built in the worker.

        Raises
        ------
        LookupError
            No such run.
        tradewarden.ledger.LedgerError
            The ledger cannot be read.
        TimeoutError
            The report took longer than ``timeout``.
        """
        try:
            future = self._executor().submit(build_report_dict, self.ledger_url, run_id)
            return future.result(timeout=self.timeout)
        except BrokenProcessPool:            # the worker died (killed, out of memory): anew
            with self._lock:
                self._pool = None
            raise RuntimeError("the report worker stopped; ask again") from None

    def close(self) -> None:
        """Stop the worker process (pending reports are cancelled)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
