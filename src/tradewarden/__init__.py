"""tradewarden: disciplined automated trading on one engine path (replay, paper, live)."""

__version__ = "0.1.0"
