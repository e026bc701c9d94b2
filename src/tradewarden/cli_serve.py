"""``warden serve``: the web dashboard and REST API over the config's ledger.

Serves ``tradewarden.web`` with uvicorn until Ctrl-C or SIGTERM: the page at ``/``, the
API under ``/api``, its OpenAPI docs at ``/docs``. The listening address comes from
``[api] host`` / ``port`` (default ``127.0.0.1:8080``) unless ``--host`` / ``--port``
say otherwise; without a token (``TRADEWARDEN_API__TOKEN`` or a secret file) only a
loopback address is accepted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from tradewarden.cli_common import (
    CONFIG_OPT,
    DB_OPT,
    _fail,
    _known_errors,
    settings_for,
)

__all__ = ["register", "serve", "start_for_daemon"]


def serve(config: Path | None = CONFIG_OPT,
          host: str | None = typer.Option(
              None, "--host", help="Address to listen on. [default: [api] host, 127.0.0.1] "
                                   "Anything but loopback needs TRADEWARDEN_API__TOKEN."),
          port: int | None = typer.Option(
              None, "--port", min=0, max=65535,
              help="TCP port (0: any free port). [default: [api] port, 8080]"),
          db: str | None = DB_OPT) -> None:
    """Serve the web dashboard and REST API of the config's ledger until Ctrl-C.

    Prints the URL. Every /api call needs 'Authorization: Bearer <token>' when a token
    is set (TRADEWARDEN_API__TOKEN or the secret file tradewarden_api__token; never the
    config file); actions are recorded as api:<[api] token_name>.
    """
    from tradewarden.web.auth import ApiConfigError, check_bind
    from tradewarden.web.server import app_for
    from tradewarden.web.server import serve as run

    loaded = settings_for(config, db)
    api = loaded.settings.api
    host = api.host if host is None else host
    port = api.port if port is None else port
    try:
        check_bind(host, api.token is not None)
    except ApiConfigError as exc:
        raise _fail(str(exc)) from None
    app = app_for(loaded, api=api)
    try:
        app.state.api.oversight()          # the ledger must exist: say so now, not per call
    except _known_errors() as exc:
        raise _fail(str(exc)) from None
    try:
        run(app, host, port, has_token=api.token is not None,
            announce=lambda line: typer.echo(line))
    except ApiConfigError as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        pass
    finally:
        app.state.api.close()
    typer.echo("stopped")


def start_for_daemon(loaded: Any, log: Any) -> Any:
    """Serve the dashboard on a background thread of the daemon when ``[api] enabled``.

    Parameters
    ----------
    loaded : tradewarden.settings.LoadedSettings
    log : structlog logger
        ``api_started`` (with the URL) or ``api_not_started`` (with why) is logged.

    Returns
    -------
    tradewarden.web.server.ServerHandle or None
        ``None`` when ``[api] enabled`` is false or the server could not listen (a port
        in use: the daemon runs on without its dashboard, as it does without Telegram).
    """
    if not loaded.settings.api.enabled:
        return None
    from tradewarden.web.auth import ApiConfigError
    from tradewarden.web.server import start_background
    try:
        handle = start_background(loaded)
    except (ApiConfigError, RuntimeError) as exc:
        log.error("api_not_started", error=str(exc))
        return None
    log.info("api_started", url=handle.url)
    return handle


def register(app: typer.Typer) -> None:
    """Add ``warden serve`` to the CLI."""
    app.command("serve")(serve)
