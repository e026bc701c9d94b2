"""Run lifecycle bookkeeping: which process runs a run, whether it is still alive, and
stopping a run cleanly on SIGTERM / Ctrl-C.

A run row records the ``pid`` and ``host`` of the process running it and a
``process_start`` token (Linux: the boot id and the process start time from
``/proc/<pid>/stat``, field 22, see proc(5)), so that a later command on the same host
can tell a live run from one whose process was killed (``kill -9``, OOM killer, power
loss) even when the pid has since been reused. Nothing here is trading time: the wall
clock is read for bookkeeping only.
"""

from __future__ import annotations

import os
import signal
import socket
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = ["ProcessIdentity", "RunInterrupted", "StopSignals", "process_alive",
           "process_start_token", "this_process"]

_PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class ProcessIdentity:
    """A process as recorded on a run row.

    Attributes
    ----------
    host : str
        Host name (``socket.gethostname()``).
    pid : int
        Process id.
    start : str or None
        ``"<boot id>:<start time in clock ticks since boot>"`` on Linux, ``None``
        where ``/proc`` is not available (then pid reuse cannot be detected).
    """

    host: str
    pid: int
    start: str | None


@cache
def _boot_id() -> str:
    try:
        return (_PROC / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def process_start_token(pid: int) -> str | None:
    """Return the start token of a live process, or ``None`` when it is gone.

    Parameters
    ----------
    pid : int
        Process id on this host.

    Returns
    -------
    str or None
        ``"<boot id>:<starttime>"`` read from ``/proc/<pid>/stat`` (proc(5): field 3
        is the state, field 22 the start time in clock ticks after boot); ``None`` if
        there is no such process, or it is a zombie (it has exited and only waits to
        be reaped), or ``/proc`` cannot be read.
    """
    try:
        stat = (_PROC / str(int(pid)) / "stat").read_text()
    except (OSError, ValueError):
        return None
    # The command name (field 2) is in parentheses and may itself contain ") ".
    fields = stat[stat.rfind(")") + 2:].split()
    if len(fields) < 20 or fields[0] in ("Z", "X", "x"):
        return None
    return f"{_boot_id()}:{fields[19]}"


def this_process() -> ProcessIdentity:
    """Return the calling process's identity (computed once per process; a forked
    child gets its own)."""
    return _identity(os.getpid())


@cache
def _identity(pid: int) -> ProcessIdentity:
    return ProcessIdentity(socket.gethostname(), pid, process_start_token(pid))


def process_alive(pid: int, start: str | None) -> bool:
    """Tell whether the process recorded as ``(pid, start)`` on this host still runs.

    Parameters
    ----------
    pid : int
        Recorded process id.
    start : str or None
        Recorded start token (:func:`process_start_token`); when both it and the
        current token are known and differ, the pid was reused: the recorded process
        is gone.

    Returns
    -------
    bool
        ``False`` when the process is gone (or is a zombie, or its pid now belongs to
        another process); ``True`` when it runs or when that cannot be ruled out.
    """
    if _PROC.joinpath("self").exists():
        now = process_start_token(pid)
        if now is None:
            return False
        return not (start and now != start)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:     # exists, owned by someone else
        return True
    except OSError:
        return True
    return True


class RunInterrupted(KeyboardInterrupt):
    """A run was stopped by SIGTERM or SIGINT (Ctrl-C) and recorded as ``interrupted``.

    It derives from :class:`KeyboardInterrupt`, so code that lets Ctrl-C through
    lets this through too.

    Attributes
    ----------
    signum : int
        The signal (``signal.SIGTERM`` or ``signal.SIGINT``).
    run_id : str
        The run that was stopped.
    bars_processed, decisions : int or None
        What the ledger holds for the run after the stop (set once it is recorded).
    """

    def __init__(self, signum: int, run_id: str) -> None:
        super().__init__(signum, run_id)
        self.signum = int(signum)
        self.run_id = run_id
        self.bars_processed: int | None = None
        self.decisions: int | None = None

    @property
    def signal_name(self) -> str:
        """``SIGTERM`` or ``SIGINT``."""
        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"

    @property
    def exit_code(self) -> int:
        """The shell convention for a process ended by this signal: 128 + signal number
        (143 for SIGTERM, 130 for SIGINT)."""
        return 128 + self.signum

    def __str__(self) -> str:
        done = ""
        if self.bars_processed is not None:
            done = (f" after {self.bars_processed:,} bars ({self.decisions or 0:,} decisions "
                    "committed)")
        return f"run {self.run_id} stopped by {self.signal_name}{done}; recorded as 'interrupted'"


class StopSignals:
    """Turn SIGTERM and SIGINT into a request to stop at the next chunk boundary.

    Used as a context manager around a run's chunk loop: the first signal only sets
    :attr:`signum`; the loop checks :meth:`check` after each chunk and stops there, so
    every chunk is in the ledger whole or not at all. A second signal raises
    :class:`RunInterrupted` at once (the uncommitted chunk is rolled back). On exit the
    previous handlers are restored, and a signal that arrived after the loop stopped
    checking is delivered again to them (so a SIGTERM received while the run was being
    finished still ends the process once the run is recorded).

    Outside the main thread (where handlers cannot be installed) it does nothing.

    Parameters
    ----------
    run_id : str
        Named in the :class:`RunInterrupted` raised.
    signals : tuple of int
        Default ``(SIGTERM, SIGINT)``.
    """

    def __init__(self, run_id: str, signals: tuple[int, ...] | None = None) -> None:
        self.run_id = run_id
        self.signals = signals if signals is not None else (signal.SIGTERM, signal.SIGINT)
        self.signum: int | None = None
        self._acted = False
        self._old: dict[int, Any] = {}

    def _handler(self, signum: int, _frame: FrameType | None) -> None:
        if self.signum is not None and not self._acted:
            self._acted = True
            raise RunInterrupted(signum, self.run_id)
        self.signum = signum

    def check(self) -> None:
        """Raise :class:`RunInterrupted` if a stop was requested.

        Raises
        ------
        RunInterrupted
        """
        if self.signum is not None and not self._acted:
            self._acted = True
            raise RunInterrupted(self.signum, self.run_id)

    def __enter__(self) -> "StopSignals":
        try:
            for s in self.signals:
                self._old[s] = signal.signal(s, self._handler)
        except ValueError:      # not the main thread
            self._restore()
        return self

    def _restore(self) -> None:
        for s, old in self._old.items():
            signal.signal(s, old if old is not None else signal.SIG_DFL)
        self._old = {}

    def __exit__(self, *exc: object) -> None:
        installed = bool(self._old)
        self._restore()
        if installed and self.signum is not None and not self._acted:
            self._acted = True
            signal.raise_signal(self.signum)

