"""Shared pieces of the ``warden`` command line: options, error exits, progress bars."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

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

DB_HELP = ("Ledger database: SQLite file path or SQLAlchemy URL. "
           "[default: the config's [ledger] db, else warden-out/ledger.db]")
DB_OPT = typer.Option(None, help=DB_HELP)
OUT_OPT = typer.Option(Path("warden-out/reports"), help="Directory for the JSON and HTML reports.")
CONFIG_OPT = typer.Option(None, "--config", "-c", dir_okay=False,
                          help="TOML config file (see `warden config init`); default $TRADEWARDEN_CONFIG. "
                               "Flags override the environment, which overrides the file.")
GATE_OPT = typer.Option(False, "--gate", help="Exit with status 3 when a validation gate fails.")
MIN_TRADES_OPT = typer.Option(None, help="Gate: minimum closed trades. [default: 100]")
MIN_PF_OPT = typer.Option(None, help="Gate: minimum profit factor. [default: 1.0]")
MAX_DD_OPT = typer.Option(None, help="Gate: maximum drawdown, percent of peak equity. [default: 35]")


def settings_for(config: Path | None, db: str | None = None, *, gate: bool = False,
                 min_trades: int | None = None, min_profit_factor: float | None = None,
                 max_drawdown_pct: float | None = None) -> Any:
    """Load the settings a command needs (ledger, gates) with its flags on top.

    Flags win over the environment (``TRADEWARDEN_LEDGER__DB``, ...), which wins over
    ``--config``, which wins over the defaults, as for ``warden replay``.

    Raises
    ------
    typer.Exit
        Status 2 with one line naming the bad value and where it came from.
    """
    from tradewarden.settings import load_settings
    flags = {"ledger.db": (db, "--db"), "gates.enforce": (gate or None, "--gate"),
             "gates.min_closed_trades": (min_trades, "--min-trades"),
             "gates.min_profit_factor": (min_profit_factor, "--min-profit-factor"),
             "gates.max_drawdown_pct": (max_drawdown_pct, "--max-drawdown-pct")}
    try:
        return load_settings(config, {k: v for k, v in flags.items() if v[0] is not None})
    except ValueError as exc:
        raise _fail(str(exc)) from None


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


