"""Run the daemon under a service manager: the systemd unit, and the container's health.

:func:`render_unit` writes the text of a systemd service unit that runs ``warden
daemon start --foreground`` with this interpreter: ``Type=notify`` (the daemon says
``READY=1`` once its deployment runs, :mod:`tradewarden.ops.sdnotify`), restarted on
failure, a watchdog of three heartbeats, a stop timeout long enough to finish a bar,
secrets from an ``EnvironmentFile`` (never in the unit) and a sandbox in which only the
ledger's, the lock's and the cache's directories are writable. :func:`install_unit`
writes it where systemd looks (:func:`unit_path`) and refuses to replace a different
unit unless told to. :func:`check_heartbeat` and :func:`healthcheck` are the Docker
image's ``HEALTHCHECK``: healthy while a daemon holds the lock and its last heartbeat
is recent.

Sources for the unit directives: ``systemd.service(5)`` (``Type=notify``,
``WatchdogSec=``, ``Restart=``, ``TimeoutStopSec=``), ``systemd.exec(5)``
(``ProtectSystem=strict``, ``ReadWritePaths=``, ``EnvironmentFile=-``) and
``systemd.syntax(7)`` / ``systemd.unit(5)`` for quoting and ``%`` specifiers.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

Scope = Literal["user", "system"]

#: Seconds between daemon heartbeats times three: a hung daemon is restarted after this.
WATCHDOG_SECONDS = 180
#: Seconds systemd waits after SIGTERM: the daemon finishes its bar and commits first.
STOP_TIMEOUT_SECONDS = 300
#: Seconds allowed from start to ``READY=1`` (restore, reconcile, warm-up on history).
START_TIMEOUT_SECONDS = 300
#: Seconds between a failure and the restart.
RESTART_SECONDS = 30
#: A heartbeat older than this makes the container unhealthy (three heartbeats).
HEALTHY_HEARTBEAT_SECONDS = 180

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,200}$")
_PLAIN = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")
_HEALTHY_STATUSES = ("starting", "running", "paused")


class ServiceFileError(ValueError):
    """A unit cannot be rendered or installed; the message names the flag, file or path."""


@dataclass(frozen=True)
class UnitSpec:
    """What the unit runs and may write.

    Parameters
    ----------
    python : pathlib.Path
        Absolute interpreter that has tradewarden installed (``sys.executable``).
    config : pathlib.Path
        Absolute path of the deployment's config file.
    workdir : pathlib.Path
        Absolute working directory (relative paths in the config resolve from it).
    scope : {"user", "system"}
        A ``systemctl --user`` unit or a system unit.
    name : str
        The unit's name without ``.service``.
    env_file : pathlib.Path
        The ``EnvironmentFile`` for secrets (optional at start: ``-`` prefix).
    writable : sequence of pathlib.Path
        Directories the daemon writes (ledger, lock, cache); everything else is
        read-only under ``ProtectSystem=strict``.
    state_dir : pathlib.Path or None
        ``TRADEWARDEN_STATE_DIR`` for the unit, so that ``warden daemon status`` in a
        shell finds the same lock; ``None`` leaves it unset.
    db : str or None
        ``--db`` passed through (a path or a URL without a password).
    deployment : str or None
        ``--deployment`` passed through.
    live : bool
        Pass ``--live`` (a ``mode = "live"`` config: real money).
    log_json : bool
        Pass ``--log-json`` (JSON lines in the journal).
    user : str or None
        ``User=`` of a system unit (``None``: root, not recommended).
    sandbox : bool
        Write the hardening directives (``ProtectSystem=strict`` and the rest).
    """

    python: Path
    config: Path
    workdir: Path
    scope: Scope
    name: str
    env_file: Path
    writable: Sequence[Path] = field(default_factory=tuple)
    state_dir: Path | None = None
    db: str | None = None
    deployment: str | None = None
    live: bool = False
    log_json: bool = False
    user: str | None = None
    sandbox: bool = True

    def command(self) -> list[str]:
        """Return ``ExecStart``'s arguments: this interpreter running ``warden daemon start``."""
        args = [str(self.python), "-m", "tradewarden.cli", "daemon", "start", "--foreground",
                "--config", str(self.config)]
        if self.deployment:
            args += ["--deployment", self.deployment]
        if self.db:
            args += ["--db", self.db]
        if self.live:
            args.append("--live")
        if self.log_json:
            args.append("--log-json")
        return args


def check_name(name: str) -> str:
    """Return a unit name without its ``.service`` suffix, checked.

    Raises
    ------
    ServiceFileError
        Characters systemd does not accept in a unit name (``systemd.unit(5)``).
    """
    base = name.removesuffix(".service")
    if not _NAME.match(base):
        raise ServiceFileError(f"--name {name!r}: a unit name takes letters, digits and "
                               "'_ . : -' (starting with a letter or digit)")
    return base


def _no_newline(value: str, what: str) -> str:
    if "\n" in value or "\r" in value or "\0" in value:
        raise ServiceFileError(f"{what} {value!r}: a line break cannot go into a unit file")
    return value


def _escape_specifiers(value: str) -> str:
    """Escape ``%`` (a specifier in unit files) as ``%%``."""
    return value.replace("%", "%%")


def quote_arg(arg: str, what: str = "argument", *, dollars: bool = True) -> str:
    """Quote one ``ExecStart=`` argument (or ``Environment=`` assignment) for systemd.

    Plain words are written as they are; anything else goes in double quotes with
    ``\\`` and ``"`` escaped. ``%`` becomes ``%%`` so that no specifier is expanded,
    and with ``dollars`` (command lines) ``$`` becomes ``$$`` so that no variable is
    (``systemd.service(5)``, "Command lines"; ``Environment=`` expands no variables,
    ``systemd.exec(5)``).

    Raises
    ------
    ServiceFileError
        A line break or NUL in the argument.
    """
    _no_newline(arg, what)
    text = arg.replace("%", "%%")
    if dollars:
        text = text.replace("$", "$$")
    if arg and _PLAIN.match(arg):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _path_list(paths: Sequence[Path]) -> str:
    """Return ``ReadWritePaths=``'s value: ``-`` (ignore a missing path), quoted."""
    out = []
    for p in paths:
        text = _escape_specifiers(_no_newline(str(p), "path"))
        out.append('"-' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
                   if not _PLAIN.match(str(p)) else "-" + text)
    return " ".join(out)


def render_unit(spec: UnitSpec) -> str:
    """Render the systemd service unit for the daemon.

    Parameters
    ----------
    spec : UnitSpec

    Returns
    -------
    str
        The unit file's text (deterministic: rendering the same spec twice gives the
        same text, so a reinstall can tell whether anything changed). It holds no
        secret: credentials come from ``spec.env_file`` at start.

    Raises
    ------
    ServiceFileError
        A relative interpreter, config or working directory, or a value with a line
        break.
    """
    for what, p in (("the interpreter", spec.python), ("--config", spec.config),
                    ("the working directory", spec.workdir)):
        if not p.is_absolute():
            raise ServiceFileError(f"{what} {p} must be an absolute path in a unit")
    from tradewarden._version import __version__
    exec_start = " ".join(quote_arg(a) for a in spec.command())
    env = ["PYTHONUNBUFFERED=1"]
    if spec.state_dir is not None:
        env.append(f"TRADEWARDEN_STATE_DIR={spec.state_dir}")
    env_lines = [f"Environment={quote_arg(e, 'environment value', dollars=False)}" for e in env]
    wanted = "default.target" if spec.scope == "user" else "multi-user.target"
    lines = [
        f"# Written by `warden daemon install-service` (tradewarden {__version__}).",
        "# Secrets (TRADEWARDEN_VENUE__API_KEY, TRADEWARDEN_VENUE__API_SECRET,",
        "# TRADEWARDEN_LEDGER__PASSWORD, ...) go in the EnvironmentFile below (mode 600),",
        "# never in this file.",
        "[Unit]",
        f"Description=tradewarden daemon ({_escape_specifiers(str(spec.config))})",
        "Wants=network-online.target",
        "After=network-online.target",
        "# A ledger on a PostgreSQL server of this host: add After=postgresql.service",
        "StartLimitIntervalSec=900",
        "StartLimitBurst=5",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        f"ExecStart={exec_start}",
        f"WorkingDirectory={_escape_specifiers(_no_newline(str(spec.workdir), 'path'))}",
        *env_lines,
        f"EnvironmentFile=-{_escape_specifiers(_no_newline(str(spec.env_file), 'path'))}",
        "Restart=on-failure",
        f"RestartSec={RESTART_SECONDS}",
        f"TimeoutStartSec={START_TIMEOUT_SECONDS}",
        f"WatchdogSec={WATCHDOG_SECONDS}",
        f"TimeoutStopSec={STOP_TIMEOUT_SECONDS}",
        "KillSignal=SIGTERM",
        "KillMode=mixed",
    ]
    if spec.scope == "system" and spec.user:
        lines += [f"User={quote_arg(spec.user, 'user')}"]
    lines.append("NoNewPrivileges=yes")
    if spec.sandbox:
        lines += ["# Sandbox: the file system is read-only except the paths below.",
                  "ProtectSystem=strict"]
        if spec.writable:
            lines.append(f"ReadWritePaths={_path_list(spec.writable)}")
        in_tmp = [p for p in (spec.config, spec.workdir, *spec.writable)
                  if _under(p, Path("/tmp")) or _under(p, Path("/var/tmp"))]
        lines.append(f"# no PrivateTmp: {in_tmp[0]} is in a temporary directory"
                     if in_tmp else "PrivateTmp=yes")
        lines += ["ProtectControlGroups=yes", "ProtectKernelTunables=yes",
                  "ProtectKernelModules=yes", "RestrictSUIDSGID=yes", "LockPersonality=yes"]
    lines += ["", "[Install]", f"WantedBy={wanted}", ""]
    return "\n".join(lines)


def _under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _home(home: Path | None) -> Path:
    return home if home is not None else Path.home()


def unit_path(scope: Scope, name: str, home: Path | None = None) -> Path:
    """Return where systemd reads the unit: ``~/.config/systemd/user/NAME.service`` for a
    user unit (``$XDG_CONFIG_HOME`` when set), ``/etc/systemd/system/NAME.service`` for
    a system unit."""
    if scope == "system":
        return Path("/etc/systemd/system") / f"{name}.service"
    xdg = os.environ.get("XDG_CONFIG_HOME")
    root = Path(xdg) if xdg and home is None else _home(home) / ".config"
    return root / "systemd" / "user" / f"{name}.service"


def env_file_path(scope: Scope, name: str, home: Path | None = None) -> Path:
    """Return the secrets file the unit reads: ``~/.config/tradewarden/NAME.env`` for a
    user unit, ``/etc/tradewarden/NAME.env`` for a system unit."""
    if scope == "system":
        return Path("/etc/tradewarden") / f"{name}.env"
    xdg = os.environ.get("XDG_CONFIG_HOME")
    root = Path(xdg) if xdg and home is None else _home(home) / ".config"
    return root / "tradewarden" / f"{name}.env"


def writable_dirs(ledger_url: str, lock: Path, extra: Sequence[Path] = ()) -> list[Path]:
    """Return the directories the daemon writes, without duplicates, in a stable order.

    Parameters
    ----------
    ledger_url : str
        The ledger (a SQLite path or URL: its directory, for the database and its
        ``-wal``/``-shm`` files; a server URL adds nothing).
    lock : pathlib.Path
        The daemon's lock file (:func:`tradewarden.ops.daemon.lock_path`): its directory.
    extra : sequence of pathlib.Path
        More directories (the candle cache).
    """
    from tradewarden.ledger.store import _sqlite_path, resolve_url
    dirs: list[Path] = []
    path = _sqlite_path(resolve_url(ledger_url))
    if path and path != ":memory:":
        dirs.append(Path(path).parent)
    dirs.append(lock.parent)
    dirs += list(extra)
    out: list[Path] = []
    for d in dirs:
        d = Path(os.path.abspath(d))
        if d not in out:
            out.append(d)
    return out


def install_unit(path: Path, text: str, *, force: bool = False) -> Literal["written", "unchanged",
                                                                          "replaced"]:
    """Write a unit file, refusing to replace a different one unless ``force``.

    Returns
    -------
    {"written", "unchanged", "replaced"}
        A new file, the same text already there (nothing written), or a different
        unit replaced (``force``).

    Raises
    ------
    ServiceFileError
        The file exists with other content and ``force`` is not set, or it cannot be
        written (the message names the path and the reason).
    """
    old = None
    if path.exists():
        try:
            old = path.read_text()
        except OSError as exc:
            raise ServiceFileError(f"{path}: cannot read the existing unit: {exc.strerror}") \
                from None
        if old == text:
            return "unchanged"
        if not force:
            raise ServiceFileError(f"{path} exists and differs from the unit this would write: "
                                   "pass --force to replace it (or --name for another unit)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        raise ServiceFileError(f"{path}: cannot write the unit: {exc.strerror}") from None
    return "written" if old is None else "replaced"


def systemctl_commands(scope: Scope, name: str, user: str | None = None) -> list[str]:
    """Return the commands to load, enable, start, inspect and follow the unit.

    ``user`` is the login of a user unit's owner, for ``loginctl enable-linger`` (a
    user's services otherwise stop when the user logs out).
    """
    if scope == "user":
        ctl, journal = "systemctl --user", f"journalctl --user -u {name} -f"
        out = [f"{ctl} daemon-reload", f"{ctl} enable --now {name}.service"]
        out.append(f"loginctl enable-linger {user or '$USER'}   # keep it running after logout")
    else:
        ctl, journal = "sudo systemctl", f"sudo journalctl -u {name} -f"
        out = [f"{ctl} daemon-reload", f"{ctl} enable --now {name}.service"]
    return out + [f"{ctl} status {name}.service", journal]


def check_heartbeat(report: dict[str, Any], now: datetime,
                    max_age: float = HEALTHY_HEARTBEAT_SECONDS) -> tuple[bool, str]:
    """Judge ``warden daemon status --json``: healthy while a daemon runs and beats.

    Parameters
    ----------
    report : dict
        The parsed ``status --json`` output (``running``, ``heartbeat`` with ``ts`` in
        UTC ISO ``YYYY-MM-DDTHH:MM:SSZ`` and ``status``).
    now : datetime.datetime
        The current UTC time (timezone-aware).
    max_age : float
        Seconds a heartbeat stays fresh.

    Returns
    -------
    (bool, str)
        Healthy or not, and one line saying why.
    """
    if not report.get("running"):
        return False, "no daemon holds the ledger's lock"
    beat = report.get("heartbeat")
    if not beat:
        return False, "the daemon has written no heartbeat yet"
    status = beat.get("status")
    if status not in _HEALTHY_STATUSES:
        return False, f"last heartbeat says {status}: {beat.get('activity')}"
    try:
        ts = datetime.strptime(str(beat.get("ts")), "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=UTC)
    except ValueError:
        return False, f"heartbeat time {beat.get('ts')!r} is not UTC ISO"
    age = (now - ts).total_seconds()
    if age > max_age:
        return False, f"last heartbeat {beat.get('ts')} is {age:.0f} s old (over {max_age:g} s)"
    return True, f"{status}, last heartbeat {age:.0f} s ago"


def healthcheck(config: str | os.PathLike[str], max_age: float = HEALTHY_HEARTBEAT_SECONDS,
                timeout: float = 60.0) -> int:
    """Run ``warden daemon status --json --config CONFIG`` and judge it (Docker's
    ``HEALTHCHECK``); print one line.

    Returns
    -------
    int
        0 when healthy (:func:`check_heartbeat`), 1 otherwise (including a status
        command that fails or prints something other than JSON).
    """
    cmd = [sys.executable, "-m", "tradewarden.cli", "daemon", "status", "--json",
           "--config", str(config)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"unhealthy: warden daemon status failed: {exc}")
        return 1
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        print(f"unhealthy: warden daemon status exited {done.returncode}: {tail[0]}")
        return 1
    try:
        report = json.loads(done.stdout)
    except ValueError:
        print("unhealthy: warden daemon status --json printed no JSON")
        return 1
    ok, why = check_heartbeat(report, datetime.now(UTC), max_age)
    print(("healthy: " if ok else "unhealthy: ") + why)
    return 0 if ok else 1


__all__ = ["HEALTHY_HEARTBEAT_SECONDS", "RESTART_SECONDS", "START_TIMEOUT_SECONDS",
           "STOP_TIMEOUT_SECONDS", "WATCHDOG_SECONDS", "ServiceFileError", "UnitSpec",
           "check_heartbeat", "check_name", "env_file_path", "healthcheck", "install_unit",
           "quote_arg", "render_unit", "systemctl_commands", "unit_path", "writable_dirs"]
