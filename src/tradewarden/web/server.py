"""Run the dashboard's app with uvicorn: in the foreground (``warden serve``) or on a
background thread of the daemon (:func:`start_background`).

The listening socket is bound here, before uvicorn starts, so a port in use or an
address that does not exist is one clear error instead of uvicorn exiting its thread,
and port 0 (any free port, for tests) reports the port it got. Without an ``[api]
token`` the server refuses any address but loopback (:func:`tradewarden.web.auth.check_bind`).
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from tradewarden.ops.api_settings import ApiSettings
from tradewarden.web.auth import ApiConfigError, check_bind

__all__ = ["ServerHandle", "app_for", "bind", "serve", "start_background"]


def app_for(loaded: Any, ledger_url: str | None = None, api: ApiSettings | None = None) -> Any:
    """Build the app from loaded settings (``[api]``, ``[autonomy]``, ``[daemon]``, ``[ledger]``).

    Parameters
    ----------
    loaded : tradewarden.settings.LoadedSettings
    ledger_url : str, optional
        The ledger (default ``loaded.ledger.url()``).
    api : ApiSettings, optional
        ``[api]`` with flags applied (default ``loaded.settings.api``).

    Returns
    -------
    fastapi.FastAPI
    """
    from tradewarden.web.app import create_app
    return create_app(ledger_url or loaded.ledger.url(), api or loaded.settings.api,
                      default_autonomy=loaded.settings.autonomy.initial_level,
                      stop_approach_fraction=loaded.daemon.stop_approach_fraction)


def bind(host: str, port: int) -> socket.socket:
    """Open a listening TCP socket on ``host:port`` (``port`` 0: any free port).

    Raises
    ------
    ApiConfigError
        The address cannot be bound (in use, not this machine's, not resolvable); the
        message names ``[api] host`` / ``port`` and the system's reason.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ApiConfigError(f"[api] host {host!r}: cannot resolve it ({exc.strerror})") from None
    family, kind, proto, _, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ApiConfigError(f"[api] host {host!r} port {port}: cannot listen there "
                             f"({exc.strerror or exc})") from None
    sock.set_inheritable(True)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def _server(app: Any, *, log_config: Any) -> Any:
    import uvicorn
    config = uvicorn.Config(app, log_config=log_config, access_log=True, lifespan="on",
                            proxy_headers=True, server_header=False, timeout_graceful_shutdown=5)
    return uvicorn.Server(config)


class ServerHandle:
    """A server running on a background thread; :meth:`stop` ends it.

    Attributes
    ----------
    url : str
        ``http://host:port/`` it listens on.
    port : int
    thread : threading.Thread
    """

    def __init__(self, server: Any, sock: socket.socket, thread: threading.Thread) -> None:
        self.server, self.sock, self.thread = server, sock, thread
        self.url = _url(sock)
        self.port = int(sock.getsockname()[1])

    @property
    def running(self) -> bool:
        """Whether the server thread is alive."""
        return self.thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the server to finish (open requests complete) and wait for its thread."""
        self.server.should_exit = True
        self.thread.join(timeout)
        self.sock.close()


def start_background(loaded: Any, ledger_url: str | None = None, *, host: str | None = None,
                     port: int | None = None, app: Any = None,
                     wait: float = 10.0) -> ServerHandle:
    """Serve the dashboard and API on a daemon thread (the daemon calls this when ``[api]
    enabled = true``).

    Parameters
    ----------
    loaded : tradewarden.settings.LoadedSettings
        The configuration (``[api]`` host, port, token, ...).
    ledger_url : str, optional
        The ledger (default ``loaded.ledger.url()``).
    host, port : optional
        Override ``[api] host`` / ``port`` (port 0: any free port).
    app : fastapi.FastAPI, optional
        The app to serve (default :func:`app_for`).
    wait : float
        Seconds to wait for uvicorn to start.

    Returns
    -------
    ServerHandle

    Raises
    ------
    ApiConfigError
        No token and a non-loopback host, or an address that cannot be bound.
    RuntimeError
        uvicorn did not start within ``wait`` seconds.
    """
    api = loaded.settings.api
    host = api.host if host is None else host
    port = api.port if port is None else port
    check_bind(host, api.token is not None)
    sock = bind(host, port)
    server = _server(app or app_for(loaded, ledger_url), log_config=None)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name="tradewarden-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + wait
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"the API server did not start on {_url(sock)}")
        time.sleep(0.02)
    return ServerHandle(server, sock, thread)


def serve(app: Any, host: str, port: int, *, has_token: bool,
          announce: Any = print) -> None:
    """Serve ``app`` in the foreground until Ctrl-C / SIGTERM (uvicorn's own handling).

    Parameters
    ----------
    app : fastapi.FastAPI
    host, port
        Where to listen.
    has_token : bool
        Whether a token is configured (without one only loopback is allowed).
    announce : callable
        Called once with the line naming the URL, before serving.

    Raises
    ------
    ApiConfigError
        As :func:`start_background`.
    """
    check_bind(host, has_token)
    sock = bind(host, port)
    server = _server(app, log_config=_LOG_CONFIG)
    announce(f"serving the dashboard at {_url(sock)} (API docs at {_url(sock)}docs); "
             "Ctrl-C stops")
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


#: uvicorn's log format for ``warden serve``: one line per request to stderr (method,
#: path and status; never headers, so never the token).
_LOG_CONFIG = {
    "version": 1, "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"err": {"class": "logging.StreamHandler", "formatter": "plain",
                         "stream": "ext://sys.stderr"}},
    "loggers": {"uvicorn": {"handlers": ["err"], "level": "INFO", "propagate": False},
                "uvicorn.access": {"handlers": ["err"], "level": "INFO", "propagate": False},
                "tradewarden.web": {"handlers": ["err"], "level": "INFO", "propagate": False}},
}
