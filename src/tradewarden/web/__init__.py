"""The web dashboard and REST API (issue 15): ``warden serve``, or a thread of the daemon.

:func:`tradewarden.web.app.create_app` builds the FastAPI application over one ledger
(reads through :class:`tradewarden.ops.oversight.Oversight`, actions through the
deployments' command inboxes); :mod:`tradewarden.web.server` runs it with uvicorn, in
the foreground or on a background thread. Importing this package imports nothing
heavy: FastAPI is loaded by the modules that need it.
"""

from __future__ import annotations

__all__: list[str] = []
