"""The modules the kill suites' forkserver imports once, for every worker it forks.

The forkserver is started once per test process with the list set last, so every suite
sets this same union (each suite's own list would otherwise be replaced by the list of
whichever suite was collected last).
"""

FORKSERVER_PRELOAD = [
    "tradewarden.ops.kernel", "tradewarden.data", "tradewarden.strategy", "tradewarden.ledger",
    "tradewarden.engine", "tradewarden.cli", "tradewarden.cli_paper", "tradewarden.ops.service",
    "tradewarden.ops.supervision", "typer.testing", "requests",
    "tradewarden.execution.coinbase", "coinbase.rest",
    "tradewarden.execution.ccxt_broker", "ccxt",
    "tradewarden.execution.ibkr", "ib_async", "tradewarden.ops.options_live",
    "tradewarden.execution.ibkr_options",
    "fake_exchange_server",
]
