"""Who may use the API: the bearer token, the loopback rule, the write rate limit.

* Every ``/api`` call carries ``Authorization: Bearer <token>`` when a token is
  configured (``[api] token``: only from ``TRADEWARDEN_API__TOKEN`` or a secret file);
  the comparison is constant-time (:func:`hmac.compare_digest` on the UTF-8 bytes).
* Without a token the server listens only on a loopback address (:func:`check_bind`),
  where every caller is a local user already; ``/api`` calls then need no header.
* State-changing calls are limited to ``[api] write_limit_per_minute`` in any 60 s
  (:class:`SlidingWindow`; a call beyond it gets 429 and is not carried out).
"""

from __future__ import annotations

import hmac
import ipaddress
import threading
import time
from collections import deque
from collections.abc import Callable

__all__ = ["ApiConfigError", "SlidingWindow", "check_bind", "is_loopback", "token_matches"]


class ApiConfigError(ValueError):
    """An ``[api]`` configuration the server refuses to start with (one line)."""


def is_loopback(host: str) -> bool:
    """Return whether ``host`` is a loopback address (``127.0.0.0/8``, ``::1``, ``localhost``).

    Parameters
    ----------
    host : str
        An IPv4 / IPv6 address or a host name as ``[api] host`` takes it. Names other
        than ``localhost`` are not resolved and count as not loopback.
    """
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_bind(host: str, has_token: bool) -> None:
    """Refuse to listen on anything but loopback without a token.

    Parameters
    ----------
    host : str
        The address the server is asked to listen on.
    has_token : bool
        Whether ``[api] token`` is set.

    Raises
    ------
    ApiConfigError
        ``host`` is not loopback (``0.0.0.0``, a LAN address, a name) and no token is
        configured; the message names ``[api] host`` and ``TRADEWARDEN_API__TOKEN``.
    """
    if not has_token and not is_loopback(host):
        raise ApiConfigError(
            f"[api] host {host!r} is not a loopback address and no API token is set: set "
            "TRADEWARDEN_API__TOKEN (or the secret file tradewarden_api__token) or listen "
            "on 127.0.0.1")


def token_matches(given: str | None, expected: str) -> bool:
    """Compare a presented token with the configured one in constant time.

    Parameters
    ----------
    given : str or None
        The token from the request (``None``: no header).
    expected : str
        The configured token.

    Returns
    -------
    bool
        ``True`` only for an exact match; the time taken does not depend on where the
        two differ (:func:`hmac.compare_digest`).
    """
    if given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


class SlidingWindow:
    """At most ``limit`` events in any ``window`` seconds (a sliding log of times).

    Parameters
    ----------
    limit : int
        Events allowed per window (at least 1).
    window : float
        The window, seconds (default 60).
    clock : callable, optional
        Returns the time now in seconds (default :func:`time.monotonic`); a test
        passes a simulated one.

    Raises
    ------
    ValueError
        A ``limit`` below 1 or a ``window`` not above 0.
    """

    def __init__(self, limit: int, window: float = 60.0,
                 clock: Callable[[], float] | None = None) -> None:
        if isinstance(limit, bool) or int(limit) < 1:
            raise ValueError(f"rate limit {limit!r}: give at least 1 per window")
        if not window > 0:
            raise ValueError(f"rate window {window!r}: give more than 0 seconds")
        self.limit, self.window = int(limit), float(window)
        self._clock = clock or time.monotonic
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self) -> float | None:
        """Count one event if the window has room.

        Returns
        -------
        float or None
            ``None`` when the event is allowed (and counted); otherwise the seconds
            until the oldest counted event leaves the window (the ``Retry-After``).
        """
        with self._lock:
            now = self._clock()
            while self._times and self._times[0] <= now - self.window:
                self._times.popleft()
            if len(self._times) >= self.limit:
                return max(0.0, self._times[0] + self.window - now)
            self._times.append(now)
            return None
