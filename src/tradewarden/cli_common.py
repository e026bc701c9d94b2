"""Shared pieces of the ``warden`` command line: options, error exits, progress bars."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

EXIT_BAD_INPUT = 2
EXIT_GATE_FAILED = 3

DB_HELP = "Ledger database: SQLite file path or SQLAlchemy URL."
DB_OPT = typer.Option("warden-out/ledger.db", help=DB_HELP)
OUT_OPT = typer.Option(Path("warden-out/reports"), help="Directory for the JSON and HTML reports.")
GATE_OPT = typer.Option(False, "--gate", help="Exit with status 3 when a validation gate fails.")
MIN_TRADES_OPT = typer.Option(100, help="Gate: minimum closed trades.")
MIN_PF_OPT = typer.Option(1.0, help="Gate: minimum profit factor.")
MAX_DD_OPT = typer.Option(35.0, help="Gate: maximum drawdown, percent of peak equity.")


class ReportFormat(str, Enum):
    """What ``--report-format`` prints and writes."""

    console = "console"
    json = "json"
    html = "html"
    all = "all"


class CapitalMode(str, Enum):
    """Capital modes."""

    independent = "independent"
    portfolio = "portfolio"


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> "typer.Exit":
    from rich.markup import escape
    Console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", highlight=False,
                               soft_wrap=True)
    return typer.Exit(code)


def _interrupted(exc: KeyboardInterrupt) -> "typer.Exit":
    """Print one line for a run stopped by SIGTERM / Ctrl-C; return the exit to raise.

    For :class:`tradewarden.ledger.RunInterrupted` the line names the run, the signal
    and what the ledger holds, and the exit status is 128 + the signal number (143
    for SIGTERM, 130 for SIGINT); a plain ``KeyboardInterrupt`` exits with 130.
    """
    from rich.markup import escape

    from tradewarden.ledger import RunInterrupted
    if isinstance(exc, RunInterrupted):
        message, code = str(exc), exc.exit_code
    else:
        message, code = "interrupted (Ctrl-C)", 130
    Console(stderr=True).print(f"[bold yellow]interrupted:[/] {escape(message)}",
                               highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _known_errors() -> tuple[type[BaseException], ...]:
    from tradewarden.data import DataError
    from tradewarden.ledger import LedgerError
    from tradewarden.strategy import StrategyConfigError
    return DataError, LedgerError, StrategyConfigError, ValueError, LookupError, OSError


def _validation_message(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(x) for x in err.get("loc", ()))
    return f"{loc}: {err['msg']}" if loc else err["msg"]


class _progress:
    """A Rich progress bar that appears on the first update (long work only)."""

    def __init__(self, console: Console, label: str, unit: str) -> None:
        self.console, self.label, self.unit = console, label, unit
        self.bar: Progress | None = None
        self.task = None

    def __enter__(self) -> "_progress":
        return self

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = Progress(TextColumn(f"[bold]{self.label}[/]"), BarColumn(), MofNCompleteColumn(),
                                TextColumn(self.unit), TimeElapsedColumn(), console=self.console,
                                transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=total)
        self.bar.update(self.task, completed=done, total=total)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


