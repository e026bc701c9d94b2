"""Errors a strategy raises on bad configuration, code or output (one line each)."""

from __future__ import annotations


class StrategyConfigError(ValueError):
    """An unknown strategy or a bad parameter; the message names which.

    The CLI prints the message on one line and exits with status 2.
    """


class StrategyLoadError(StrategyConfigError):
    """A ``--strategy`` spec that cannot be loaded.

    File not found, syntax error (file and line), import error, class not found (the
    message lists the strategy classes there), or an object that is not a
    :class:`~tradewarden.strategy.Strategy` subclass.
    """


class StrategyOutputError(StrategyConfigError):
    """A strategy whose computed frame breaks the contract.

    For a :class:`~tradewarden.strategy.DataFrameStrategy`: ``populate()`` raised, or
    returned something other than the frame it was given with the required columns
    (the message names the strategy and the column).
    """
