"""The daemon's process: one per ledger, held by an OS file lock, with a heartbeat.

``warden daemon start`` takes an exclusive ``flock`` on a lock file derived from the
ledger (:func:`lock_path`) before anything else. The kernel releases the lock when the
process dies, however it dies, so a lock left by a dead process is never mistaken for a
running daemon; the file also records the holder's pid, host, process start and time,
for the message that refuses a second start and for ``warden daemon stop``.

While it runs, the daemon writes a heartbeat row (``daemon_heartbeats``) at start, at
least every :data:`HEARTBEAT_SECONDS` of clock time from the deployment loop, and at
shutdown: pid, status (starting, running, paused, error, shutdown), current activity,
event queue depth and the deployments it runs.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tradewarden.ledger.lifecycle import process_alive, this_process
from tradewarden.ledger.store import _sqlite_path, resolve_url, utcnow_iso

#: Clock seconds between two heartbeat rows while the daemon runs.
HEARTBEAT_SECONDS = 60


class DaemonRunning(RuntimeError):
    """Another daemon holds the lock of this ledger.

    Attributes
    ----------
    holder : dict
        What the lock file says: ``pid``, ``host``, ``since`` (UTC ISO), ``lock``.
    """

    def __init__(self, holder: dict[str, Any]) -> None:
        self.holder = holder
        super().__init__(f"a daemon is already running for this ledger (pid {holder.get('pid')} "
                         f"on {holder.get('host')}, since {holder.get('since')}; lock "
                         f"{holder.get('lock')}): stop it with `warden daemon stop` first")


def lock_path(ledger_url: str, state_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the lock file of the daemon of a ledger (a SQLite path or a URL).

    A SQLite ledger's lock sits next to it (``ledger.db`` → ``ledger.db.daemon.lock``);
    a server ledger's in ``state_dir`` (default ``$TRADEWARDEN_STATE_DIR`` or
    ``~/.cache/tradewarden``), named by a hash of its URL.
    """
    ledger_url = resolve_url(ledger_url)
    path = _sqlite_path(ledger_url)
    if path and path != ":memory:":
        return Path(path).with_name(Path(path).name + ".daemon.lock")
    root = Path(state_dir or os.environ.get("TRADEWARDEN_STATE_DIR")
                or Path.home() / ".cache" / "tradewarden")
    digest = hashlib.sha256(ledger_url.encode()).hexdigest()[:16]
    return root / f"daemon-{digest}.lock"


@dataclass
class DaemonLock:
    """An exclusive OS lock (``flock``) on the daemon's lock file.

    Parameters
    ----------
    path : pathlib.Path
    """

    path: Path
    _fd: int | None = None

    def acquire(self) -> None:
        """Take the lock and record this process in the file.

        Raises
        ------
        DaemonRunning
            Another process holds it (its pid and start time in the message).
        OSError
            The file cannot be created or written (naming it).
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DaemonRunning({**(read_holder(self.path) or {}), "lock": str(self.path)}) from None
        me = this_process()
        record = json.dumps({"pid": me.pid, "host": me.host, "process_start": me.start,
                             "since": utcnow_iso()}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)
        os.fsync(fd)
        self._fd = fd

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def release(self) -> None:
        """Release the lock (the file stays, marked as no longer held)."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DaemonLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def read_holder(path: Path) -> dict[str, Any] | None:
    """Return what the lock file records (pid, host, process start, since), or ``None``."""
    try:
        text = path.read_text()
    except OSError:
        return None
    try:
        data = json.loads(text) if text.strip() else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def running_daemon(path: Path) -> dict[str, Any] | None:
    """Return the holder of the lock if a daemon holds it now, else ``None``.

    The lock itself is the truth: a file whose lock nobody holds is stale (its process
    died), whatever pid it records.
    """
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = read_holder(path) or {}
        return {**holder, "lock": str(path)}
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def holder_alive(holder: dict[str, Any]) -> bool:
    """Whether the recorded holder still runs on this host (pid reuse ruled out)."""
    me = this_process()
    if holder.get("host") != me.host or not holder.get("pid"):
        return False
    return process_alive(int(holder["pid"]), holder.get("process_start"))


__all__ = ["HEARTBEAT_SECONDS", "DaemonLock", "DaemonRunning", "holder_alive", "lock_path",
           "read_holder", "running_daemon"]
