"""The FastAPI application: the REST API over one ledger, the dashboard page, plotly.js.

:func:`create_app` builds it. Reads go through :class:`tradewarden.ops.oversight.Oversight`
(the same read model as ``warden daemon status | audit | costs``) and the report
builder; actions only write rows to the deployments' command inboxes (the engine
carries them out between bars), recorded as ``api:<token_name>`` with the time.

Routes: ``/api/...`` (see the README's endpoint table, or ``/docs``); ``/docs`` and
``/openapi.json``; ``/static/plotly.min.js`` (the installed plotly package's bundle, so
the page works offline); ``/`` the page (``web/static/index.html`` and its files).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from tradewarden.ops.api_settings import ApiSettings
from tradewarden.web import models as m
from tradewarden.web.auth import SlidingWindow, token_matches

__all__ = ["STATIC_DIR", "ApiState", "create_app"]

#: The page's files (H8: index.html, JS, CSS), shipped as package data.
STATIC_DIR = Path(__file__).resolve().parent / "static"
#: A daemon heartbeat older than this many heartbeat intervals is ``stale``.
STALE_BEATS = 3

log = logging.getLogger("tradewarden.web")


class ApiState:
    """What every request handler shares: the oversight, the settings, the rate limit.

    Parameters
    ----------
    ledger_url : str
        The ledger (SQLite path or SQLAlchemy URL).
    api : ApiSettings
    default_autonomy : int
        A deployment's level when none was recorded (``[autonomy] initial_level``).
    stop_approach_fraction : float
        ``[daemon] stop_approach_fraction``: the amber band of the traffic light.
    clock : callable
        UTC epoch seconds now (ages, "today", the time recorded with an action).
    rate_clock : callable
        Seconds for the write rate limit's sliding window (monotonic).
    """

    def __init__(self, ledger_url: str, api: ApiSettings, *, default_autonomy: int,
                 stop_approach_fraction: float, clock: Callable[[], float],
                 rate_clock: Callable[[], float]) -> None:
        self.ledger_url = str(ledger_url)
        self.api = api
        self.default_autonomy = default_autonomy
        self.stop_approach_fraction = float(stop_approach_fraction)
        self.clock = clock
        self.writes = SlidingWindow(api.write_limit_per_minute, 60.0, rate_clock)
        self._oversight: Any = None
        self._reports: Any = None

    @property
    def actor(self) -> str:
        """Who an action is recorded as: ``api:<token_name>``."""
        return f"api:{self.api.token_name}"[:64]

    def oversight(self) -> Any:
        """The shared :class:`~tradewarden.ops.oversight.Oversight` (opened on first use,
        so the server starts before the ledger exists and says so per request).

        Raises
        ------
        tradewarden.ledger.LedgerError
            The ledger does not exist or cannot be opened.
        """
        if self._oversight is None:
            from tradewarden.ops.oversight import Oversight
            self._oversight = Oversight(self.ledger_url, clock=self.clock,
                                        default_autonomy=self.default_autonomy)
        return self._oversight

    def report(self, run_id: str) -> dict[str, Any]:
        """A run's report dict, built in the report worker process
        (:class:`tradewarden.web.reports.ReportWorker`: the report's ADBC reader never
        runs in this process).

        Raises
        ------
        LookupError
            No such run.
        """
        if self._reports is None:
            from tradewarden.web.reports import ReportWorker
            self._reports = ReportWorker(self.ledger_url)
        return self._reports.report(run_id)

    def close(self) -> None:
        """Close the ledger connection and stop the report worker (the app's shutdown)."""
        if self._reports is not None:
            self._reports.close()
            self._reports = None
        if self._oversight is not None:
            self._oversight.close()
            self._oversight = None


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _validation_line(exc: RequestValidationError) -> str:
    """One line for a request the models refuse: where and what."""
    parts = []
    for err in exc.errors()[:3]:
        loc = [str(x) for x in err.get("loc", ()) if x not in ("body", "query", "path")]
        where = ".".join(loc) or ("body" if "body" in err.get("loc", ()) else "request")
        msg = err.get("msg", "invalid")
        if err.get("type") == "missing":
            msg = "required"
            if where == "body":
                msg = 'required: send a JSON body, e.g. {"reason": "why"}'
        elif err.get("type") == "json_invalid":
            where, msg = "body", "not valid JSON"
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)


_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": m.ErrorOut, "description": "No or a wrong bearer token."},
    503: {"model": m.ErrorOut, "description": "The ledger cannot be read or written now."},
}


def create_app(ledger_url: str, api: ApiSettings | None = None, *,
               default_autonomy: int = 1, stop_approach_fraction: float = 0.05,
               clock: Callable[[], float] | None = None,
               rate_clock: Callable[[], float] | None = None,
               static_dir: Path | None = None) -> FastAPI:
    """Build the dashboard's FastAPI application over one ledger.

    Parameters
    ----------
    ledger_url : str
        The ledger: SQLite file path or SQLAlchemy URL (``[ledger] db``). It is opened
        on the first request (never created); until it exists every ``/api`` call
        answers 503 naming it.
    api : ApiSettings, optional
        ``[api]``: token, token name, CORS origins, write limit (default: no token,
        loopback use). ``host`` and ``port`` are the server's business
        (:mod:`tradewarden.web.server`), not the app's.
    default_autonomy : int
        A deployment's autonomy level when none was recorded (``[autonomy]
        initial_level``; 1-4).
    stop_approach_fraction : float
        ``[daemon] stop_approach_fraction``: a position is amber within this fraction of
        its stop or of its account's daily loss limit (see ``GET /api/positions``).
    clock : callable, optional
        UTC epoch seconds now (default the wall clock).
    rate_clock : callable, optional
        Seconds for the write rate limit's window (default :func:`time.monotonic`); a
        test passes a simulated one.
    static_dir : pathlib.Path, optional
        The page's files (default :data:`STATIC_DIR`); ``/`` serves its ``index.html``.

    Returns
    -------
    fastapi.FastAPI
        With ``app.state.api`` the :class:`ApiState`.
    """
    api = api or ApiSettings()
    clock = clock or time.time
    state = ApiState(ledger_url, api, default_autonomy=default_autonomy,
                     stop_approach_fraction=stop_approach_fraction, clock=clock,
                     rate_clock=rate_clock or time.monotonic)
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        state.close()

    app = FastAPI(title="tradewarden", version=_version(), lifespan=lifespan,
                  description="The daemon's state and the actions on it (issue 15). Every "
                              "/api call needs `Authorization: Bearer <token>` when a token "
                              "is configured. Money and quantities are decimal strings; "
                              "times UTC epoch seconds with ISO text beside them.",
                  responses=_RESPONSES)
    app.state.api = state

    _install_errors(app)
    if api.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware
        app.add_middleware(CORSMiddleware, allow_origins=list(api.cors_origins),
                           allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])

    from tradewarden.web import routes
    routes.install(app, state, auth=_auth_dependency(state))
    _install_page(app, static_dir or STATIC_DIR)
    return app


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("tradewarden")
    except Exception:  # noqa: BLE001 - not installed (a source tree)
        return "0"


def _auth_dependency(state: ApiState) -> Callable[[Request], None]:
    """The dependency every ``/api`` route takes: 401 unless the bearer token matches."""
    from fastapi import Depends
    from fastapi.security import HTTPBearer

    token = state.api.token.get_secret_value() if state.api.token is not None else None
    # declares the scheme in the OpenAPI document (the "Authorize" button of /docs); the
    # header is checked below, so that a missing and a wrong token say different things
    scheme = HTTPBearer(auto_error=False, description="[api] token (TRADEWARDEN_API__TOKEN)")

    def require_token(request: Request, _: Any = Depends(scheme)) -> None:
        if token is None:
            return
        header = request.headers.get("authorization")
        if header is None:
            raise HTTPException(401, "this API needs a token: send the header "
                                     "'Authorization: Bearer <token>' ([api] token)",
                                headers={"WWW-Authenticate": "Bearer"})
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not token_matches(given.strip(), token):
            raise HTTPException(401, "wrong token: send 'Authorization: Bearer <token>' with "
                                     "the token the server was started with",
                                headers={"WWW-Authenticate": "Bearer"})

    return require_token


def _install_errors(app: FastAPI) -> None:
    """Every error as ``{"error": "..."}`` with its status."""
    from tradewarden.ledger import LedgerError

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such endpoint: {request.method} {request.url.path} (see /docs)"
        if exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path} (see /docs)"
        return _error(exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, _validation_line(exc))

    @app.exception_handler(LedgerError)
    async def _ledger(request: Request, exc: LedgerError) -> JSONResponse:
        log.warning("ledger error on %s %s: %s", request.method, request.url.path, exc)
        return _error(503, f"the ledger is not available: {exc}")


def _install_page(app: FastAPI, static: Path) -> None:
    """``/static/plotly.min.js`` and the page at ``/`` (when its files exist)."""
    cache: dict[str, bytes] = {}

    @app.get("/static/plotly.min.js", include_in_schema=False)
    def plotly_js() -> Response:
        if "js" not in cache:
            from plotly.offline import get_plotlyjs
            cache["js"] = get_plotlyjs().encode("utf-8")
        return Response(cache["js"], media_type="application/javascript",
                        headers={"Cache-Control": "public, max-age=86400"})

    if (static / "index.html").is_file():
        from fastapi.staticfiles import StaticFiles
        app.mount("/", StaticFiles(directory=static, html=True), name="page")
    else:
        @app.get("/", include_in_schema=False)
        def no_page() -> HTMLResponse:
            return HTMLResponse("<!doctype html><title>tradewarden</title><p>The dashboard "
                                "page is not installed; the API is at <a href='/docs'>/docs</a>.")

