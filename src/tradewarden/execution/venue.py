"""What every live venue adapter shares: its errors and its pre-flight report.

Adapters (``execution/coinbase.py``, ``execution/ccxt_broker.py``) implement the broker
port of :mod:`tradewarden.execution.base` over a venue's official or ccxt client. They
raise these errors with the venue's own words in the message, so the ledger records
what the venue said.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal


class VenueError(RuntimeError):
    """A venue call failed (network, 5xx after retries, an answer that makes no sense).

    Parameters
    ----------
    venue : str
        ``coinbase``, ``kraken``, ...
    message : str
        One line, with the venue's words where it gave any.
    """

    def __init__(self, venue: str, message: str) -> None:
        super().__init__(f"{venue}: {message}")
        self.venue = venue


class VenuePermissionError(VenueError):
    """The API key cannot do what trading needs (no trade permission), or can do what it
    must not (withdraw or transfer funds)."""


class VenueUnavailable(VenueError):
    """The venue did not answer (timeout, connection refused, 5xx, 429 after retries).

    A submit that ends like this is never retried blindly: the adapter looks the order
    up by its client order id first.
    """


@dataclass(frozen=True)
class Preflight:
    """What a read-only check of an account found, before anything is traded.

    Parameters
    ----------
    venue : str
    account : str
        The account or portfolio the key trades (no secret in it).
    can_trade, can_withdraw : bool
        Key permissions as the venue reports them (``can_withdraw`` covers transfers).
    balances : dict of str to Decimal
        Total per currency.
    notes : list of str
        Anything a person should read before going live (limits, product flags).
    """

    venue: str
    account: str
    can_trade: bool
    can_withdraw: bool
    balances: dict[str, Decimal] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        """Return why this key must not trade (empty when it may)."""
        out = []
        if not self.can_trade:
            out.append(f"{self.venue}: the API key has no trade permission; create a key "
                       "with trade (and view) permission only")
        if self.can_withdraw:
            out.append(f"{self.venue}: the API key can withdraw or transfer funds; create a "
                       "key with trade and view permission only (never withdrawal)")
        return out


__all__ = ["Preflight", "VenueError", "VenuePermissionError", "VenueUnavailable"]
