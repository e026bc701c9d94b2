"""tradewarden: disciplined automated trading on one engine path (replay, paper, live).

``tradewarden.replay(...)`` runs a replay from Python and returns a
:class:`~tradewarden.api.ReplayRun` (trades, decisions, equity and the report, read
from the ledger); see :mod:`tradewarden.api`.
"""

from typing import Any

from tradewarden._version import __version__

__all__ = ["ReplayRun", "__version__", "replay"]


def __getattr__(name: str) -> Any:
    # Imported on first use: `import tradewarden` stays cheap for the CLI.
    if name in ("replay", "ReplayRun"):
        from tradewarden import api
        return getattr(api, name)
    raise AttributeError(f"module 'tradewarden' has no attribute {name!r}")
