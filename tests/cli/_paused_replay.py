"""Run ``warden replay`` in small chunks, pausing before chunk N+1 until a signal arrives.

Used by ``test_cli_ledger.py`` to kill a real replay at a known point::

    python _paused_replay.py PAUSE_AFTER CHUNK_BARS replay --db ... [warden replay args]

Only the chunking is changed (and the pause added); everything else is the real
``warden`` entry point.
"""

from __future__ import annotations

import signal
import sys

import tradewarden.ops.replay as replay_module
from tradewarden.cli import main


def _run() -> None:
    pause_after, chunk_bars = int(sys.argv[1]), int(sys.argv[2])
    original = replay_module.chunked

    def chunked(series, _chunk_bars):
        for i, chunk in enumerate(original(series, chunk_bars)):
            if i == pause_after:
                signal.pause()      # returns once a signal has been handled
            yield chunk

    replay_module.chunked = chunked
    sys.argv = ["warden", *sys.argv[3:]]
    main()


if __name__ == "__main__":
    _run()
