"""Tell a service manager how the daemon is doing: systemd's ``sd_notify`` protocol.

Under a unit with ``Type=notify`` systemd passes ``$NOTIFY_SOCKET``, a unix datagram
socket (a path, or a name in the abstract namespace when it starts with ``@``), and
waits for ``READY=1`` before it counts the service as started; with ``WatchdogSec=``
it also passes ``$WATCHDOG_USEC`` (and ``$WATCHDOG_PID``) and restarts the service
when no ``WATCHDOG=1`` arrives within that time. Other states: ``STATUS=text`` (shown
by ``systemctl status``), ``STOPPING=1``, ``RELOADING=1``.

Without ``$NOTIFY_SOCKET`` (a terminal, Docker, the tests) every call is a no-op that
returns ``False``. The protocol is small enough for the standard library: one
datagram of newline-separated ``KEY=VALUE`` assignments (source: ``sd_notify(3)``,
``systemd.service(5)`` ``WatchdogSec=``).
"""

from __future__ import annotations

import os
import socket

__all__ = ["notify", "watchdog_interval"]


def _address(raw: str) -> str | bytes:
    """Return the socket address for ``$NOTIFY_SOCKET`` (``@name``: abstract, a leading NUL)."""
    if raw.startswith("@"):
        return b"\0" + raw[1:].encode()
    return raw


def notify(state: str) -> bool:
    """Send one state to the service manager, e.g. ``notify("READY=1")``.

    Parameters
    ----------
    state : str
        One or more newline-separated ``KEY=VALUE`` assignments: ``READY=1``,
        ``WATCHDOG=1``, ``STATUS=waiting for the 10:00 candles``, ``STOPPING=1``.

    Returns
    -------
    bool
        ``True`` when the datagram was sent; ``False`` without ``$NOTIFY_SOCKET`` or
        when the socket cannot be reached (the daemon never fails because its service
        manager does not listen: ``sd_notify(3)`` behaves the same way).

    Raises
    ------
    ValueError
        A state whose first line is not ``KEY=VALUE`` (a programming error). Later
        lines are sent as they are: systemd ignores a line that is not an assignment,
        so a ``STATUS=`` text with a line break in it (an exception's message) is cut
        there rather than making the heartbeat fail.
    """
    first = state.split("\n", 1)[0]
    if "=" not in first or first.startswith("="):
        raise ValueError(f"sd_notify state must be KEY=VALUE lines, got {state!r}")
    raw = os.environ.get("NOTIFY_SOCKET")
    if not raw:
        return False
    if not raw.startswith(("/", "@")):
        return False            # systemd only passes absolute paths and abstract names
    address = _address(raw)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError:
        return False
    return True


def watchdog_interval() -> float | None:
    """Return the watchdog timeout the service manager set for this process.

    ``$WATCHDOG_USEC`` (microseconds) applies when ``$WATCHDOG_PID`` is unset or is
    this process's pid (``sd_watchdog_enabled(3)``). Send ``WATCHDOG=1`` at least
    every half of it; the daemon's heartbeat (60 s) does, with ``WatchdogSec=180``.

    Returns
    -------
    float or None
        Seconds, or ``None`` when no watchdog applies to this process (unset, another
        pid's, or not a positive integer).
    """
    usec = os.environ.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = os.environ.get("WATCHDOG_PID")
    if pid:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1e6 if value > 0 else None
