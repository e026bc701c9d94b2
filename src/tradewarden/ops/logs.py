"""Structured logs for the daemon (structlog over the standard library's logging).

One line per event with its fields (``event="bar" symbol="BTC-USD" action="hold" ...``):
key=value text in a terminal, JSON lines when asked (for a log shipper), written to a
rotating file when the daemon runs in the background. Timestamps are UTC ISO 8601 from
the wall clock: logs are bookkeeping, like the ledger's ``started_at``.
"""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path
from typing import Any

import structlog

#: Rotation of a daemon log file: bytes per file, files kept.
MAX_BYTES = 10 * 1024 * 1024
BACKUPS = 5


def configure(*, json: bool = False, path: Path | None = None, level: str = "INFO") -> Any:
    """Configure structlog and return the ``tradewarden`` logger.

    Parameters
    ----------
    json : bool
        JSON lines instead of key=value text.
    path : pathlib.Path, optional
        Write to this file, rotated at :data:`MAX_BYTES` keeping :data:`BACKUPS` files;
        default standard error.
    level : str
        ``DEBUG``, ``INFO``, ``WARNING`` or ``ERROR``.

    Returns
    -------
    structlog.stdlib.BoundLogger

    Raises
    ------
    ValueError
        An unknown level.
    OSError
        The file cannot be opened (naming it).
    """
    if level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError(f"log level {level!r}: use DEBUG, INFO, WARNING or ERROR")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8")
    else:
        handler = logging.StreamHandler()
    renderer = (structlog.processors.JSONRenderer() if json
                else structlog.dev.ConsoleRenderer(colors=False))
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processor=renderer,
        foreign_pre_chain=[structlog.processors.TimeStamper(fmt="iso", utc=True),
                           structlog.stdlib.add_log_level]))
    root = logging.getLogger("tradewarden")
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False
    structlog.configure(
        processors=[structlog.stdlib.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso", utc=True),
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False)
    return structlog.get_logger("tradewarden")


__all__ = ["BACKUPS", "MAX_BYTES", "configure"]
