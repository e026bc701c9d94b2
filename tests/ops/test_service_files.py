"""Running the daemon as a service: ``warden daemon install-service`` (the systemd unit,
checked by ``systemd-analyze verify`` where it exists), the ``sd_notify`` messages on a
real unix datagram socket, the Docker image's health check against a real ledger, and
the Dockerfile, docker-compose.yml and deploy/ config checked against the repository."""

from __future__ import annotations

import fnmatch
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from tradewarden.cli import app
from tradewarden.ledger import Ledger
from tradewarden.ops import sdnotify
from tradewarden.ops.daemon import DaemonLock, lock_path
from tradewarden.ops.service_files import (
    UnitSpec,
    check_heartbeat,
    healthcheck,
    render_unit,
    unit_path,
)
from tradewarden.settings import load_settings

REPO = Path(__file__).parents[2]
SECRET = "s3cret-do-not-write-7f3a"


def paper_config(tmp_path: Path, extra: str = "") -> Path:
    cfg = tmp_path / "paper.toml"
    cfg.write_text('mode = "paper"\nsymbols = ["BTC-USD"]\n' + extra
                   + f'[ledger]\ndb = "{tmp_path / "led" / "ledger.db"}"\n'
                   '[venue]\nname = "coinbase"\n')
    return cfg


def directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


@pytest.fixture
def home(tmp_path, monkeypatch):
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("HOME", str(h))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    return h


# ---- the unit ------------------------------------------------------------------------------

def test_unit_runs_this_interpreter_on_the_absolute_config_and_holds_no_secret(home, tmp_path,
                                                                             monkeypatch):
    paper_config(tmp_path)
    monkeypatch.setenv("TRADEWARDEN_LEDGER__PASSWORD", SECRET)
    monkeypatch.setenv("TRADEWARDEN_VENUE__API_SECRET", SECRET)
    r = CliRunner().invoke(app, ["daemon", "install-service", "--config", "paper.toml",
                                 "--deployment", "svc", "--db", "led/ledger.db", "--log-json",
                                 "--dry-run"])
    assert r.exit_code == 0, r.output
    unit = r.output
    d = directives(unit)
    assert d["ExecStart"][0].split(" ") == [
        sys.executable, "-m", "tradewarden.cli", "daemon", "start", "--foreground", "--config",
        str(tmp_path / "paper.toml"), "--deployment", "svc", "--db",
        str(tmp_path / "led" / "ledger.db"), "--log-json"]
    assert SECRET not in unit
    assert d["Type"] == ["notify"] and d["Restart"] == ["on-failure"]
    assert d["WatchdogSec"] == ["180"] and d["KillSignal"] == ["SIGTERM"]
    assert int(d["TimeoutStopSec"][0]) >= 120          # `warden daemon stop` waits 120 s
    assert "PYTHONUNBUFFERED=1" in d["Environment"]
    assert d["EnvironmentFile"] == [f"-{home}/.config/tradewarden/tradewarden.env"]
    assert d["WorkingDirectory"] == [str(tmp_path)]
    assert d["ProtectSystem"] == ["strict"] and d["NoNewPrivileges"] == ["yes"]
    # the ledger's directory and the lock's / cache's are writable
    rw = d["ReadWritePaths"][0].split(" ")
    assert f"-{tmp_path / 'led'}" in rw and f"-{home}/.cache/tradewarden" in rw
    assert f"-{tmp_path / 'warden-out' / 'reports'}" in rw      # [report] out
    assert d["WantedBy"] == ["default.target"] and "User" not in d
    assert not (home / ".config").exists()               # a dry run writes nothing


def test_a_password_in_the_db_url_is_refused_not_written(home, tmp_path):
    paper_config(tmp_path)
    r = CliRunner().invoke(app, ["daemon", "install-service", "--config", "paper.toml", "--db",
                                 f"postgresql+psycopg://warden:{SECRET}@db/warden"])
    assert r.exit_code == 2
    assert "TRADEWARDEN_LEDGER__PASSWORD" in r.output and SECRET not in r.output
    assert not unit_path("user", "tradewarden", home).exists()


def test_user_unit_is_written_under_home_and_a_different_one_is_not_replaced(home, tmp_path):
    paper_config(tmp_path)
    run = CliRunner().invoke
    r = run(app, ["daemon", "install-service", "--config", "paper.toml", "--user"])
    assert r.exit_code == 0, r.output
    path = home / ".config" / "systemd" / "user" / "tradewarden.service"
    assert f"unit written: {path}" in r.output
    assert "systemctl --user enable --now tradewarden.service" in r.output
    assert "journalctl --user -u tradewarden -f" in r.output
    assert (tmp_path / "led").is_dir()                   # the sandbox cannot create it
    first = path.read_text()
    assert "--config " + str(tmp_path / "paper.toml") in first
    assert run(app, ["daemon", "install-service", "--config", "paper.toml"]).output \
        .startswith("unit unchanged")
    r = run(app, ["daemon", "install-service", "--config", "paper.toml", "--log-json"])
    assert r.exit_code == 2 and "exists and differs" in r.output and "--force" in r.output
    assert path.read_text() == first
    r = run(app, ["daemon", "install-service", "--config", "paper.toml", "--log-json", "--force"])
    assert r.exit_code == 0 and "unit replaced" in r.output
    assert path.read_text().count("--log-json") == 1


def test_system_unit_needs_root_and_the_flags_are_checked(home, tmp_path, monkeypatch):
    paper_config(tmp_path)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    run = CliRunner().invoke
    r = run(app, ["daemon", "install-service", "--config", "paper.toml", "--system"])
    assert r.exit_code == 2
    assert "--system writes /etc/systemd/system/tradewarden.service and needs root" in r.output
    r = run(app, ["daemon", "install-service", "--config", "paper.toml", "--system", "--user"])
    assert r.exit_code == 2 and "choose one" in r.output
    r = run(app, ["daemon", "install-service", "--config", "paper.toml", "--name", "a b"])
    assert r.exit_code == 2 and "--name 'a b'" in r.output
    live = tmp_path / "live.toml"
    live.write_text(paper_config(tmp_path).read_text().replace('"paper"', '"live"'))
    r = run(app, ["daemon", "install-service", "--config", str(live), "--dry-run"])
    assert r.exit_code == 2 and "pass --live" in r.output
    r = run(app, ["daemon", "install-service", "--config", str(live), "--dry-run", "--live"])
    assert r.exit_code == 0 and directives(r.output)["ExecStart"][0].endswith(" --live")
    # --output needs no root: the unit goes to the file, with User= and the system target
    out = tmp_path / "tw.service"
    r = run(app, ["daemon", "install-service", "--config", "paper.toml", "--system",
                  "--run-as", "nobody", "--output", str(out)])
    assert r.exit_code == 0, r.output
    assert f"sudo systemctl link {out}" in r.output
    d = directives(out.read_text())
    assert d["User"] == ["nobody"] and d["WantedBy"] == ["multi-user.target"]
    assert d["EnvironmentFile"] == ["-/etc/tradewarden/tradewarden.env"]


def test_rendering_quotes_escapes_and_sandboxes(tmp_path):
    spec = UnitSpec(python=Path(sys.executable), config=Path("/srv/tw/my 100% $HOME.toml"),
                    workdir=Path("/srv/tw"), scope="user", name="tw",
                    env_file=Path("/srv/tw/tw.env"), writable=[Path("/srv/tw/led ger")],
                    state_dir=Path("/srv/tw/state $1"))
    unit = render_unit(spec)
    d = directives(unit)
    assert '--config "/srv/tw/my 100%% $$HOME.toml"' in d["ExecStart"][0]
    # Environment= expands no $: written as it is
    assert '"TRADEWARDEN_STATE_DIR=/srv/tw/state $1"' in d["Environment"]
    assert d["ReadWritePaths"] == ['"-/srv/tw/led ger"'] and d["PrivateTmp"] == ["yes"]
    assert render_unit(spec) == unit                     # deterministic: reinstall compares
    bare = directives(render_unit(UnitSpec(**{**spec.__dict__, "sandbox": False})))
    assert "ProtectSystem" not in bare and bare["NoNewPrivileges"] == ["yes"]
    with pytest.raises(ValueError, match="line break"):
        render_unit(UnitSpec(**{**spec.__dict__, "deployment": "a\nExecStartPre=/bin/sh"}))


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed on this machine")
@pytest.mark.parametrize("scope", ["--user", "--system"])
def test_systemd_analyze_verifies_the_unit(home, tmp_path, scope):
    paper_config(tmp_path)
    out = tmp_path / "tradewarden.service"
    args = ["daemon", "install-service", "--config", "paper.toml", scope, "--output", str(out)]
    me = pwd.getpwuid(os.getuid()).pw_name     # systemd warns about User=nobody
    r = CliRunner().invoke(app, args + (["--run-as", me] if scope == "--system" else []))
    assert r.exit_code == 0, r.output
    # --system: the manager's own checks; a user manager needs a session, which CI lacks,
    # and a user unit's syntax is the same
    done = subprocess.run(["systemd-analyze", "verify", str(out)], capture_output=True, check=False,
                          text=True, timeout=60)
    complaints = [line for line in (done.stdout + done.stderr).splitlines()
                  if out.name in line or "Unknown" in line or "ignoring" in line]
    assert done.returncode == 0 and not complaints, done.stdout + done.stderr


# ---- sd_notify -----------------------------------------------------------------------------

def _listen(address: str | bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(5)
    return sock


def test_notify_sends_datagrams_to_a_path_socket(tmp_path, monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.notify("READY=1") is False           # no service manager: a no-op
    path = tmp_path / "notify.sock"
    with _listen(str(path)) as sock:
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert sdnotify.notify("READY=1") is True
        assert sock.recv(4096) == b"READY=1"
        assert sdnotify.notify("WATCHDOG=1") is True
        assert sock.recv(4096) == b"WATCHDOG=1"
        assert sdnotify.notify("STATUS=waiting for the 10:00 candles\nSTOPPING=1") is True
        assert sock.recv(4096) == b"STATUS=waiting for the 10:00 candles\nSTOPPING=1"
        # a status text with a line break (an exception's message) still goes out
        assert sdnotify.notify("STATUS=error: connection refused\n\tIs the server up?")
        assert sock.recv(4096) == b"STATUS=error: connection refused\n\tIs the server up?"
    path.unlink()
    assert sdnotify.notify("WATCHDOG=1") is False        # the manager is gone: no error
    for bad in ("READY", "", "=1\nREADY=1"):
        with pytest.raises(ValueError, match="KEY=VALUE"):
            sdnotify.notify(bad)


def test_notify_reaches_an_abstract_socket(monkeypatch):
    name = f"tradewarden-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    with _listen(b"\0" + name.encode()) as sock:
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sdnotify.notify("READY=1") is True
        assert sock.recv(4096) == b"READY=1"
        assert sdnotify.notify("WATCHDOG=1") is True
        assert sock.recv(4096) == b"WATCHDOG=1"


def test_watchdog_interval_reads_usec_for_this_process(monkeypatch):
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert sdnotify.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "180000000")
    assert sdnotify.watchdog_interval() == 180.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert sdnotify.watchdog_interval() == 180.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert sdnotify.watchdog_interval() is None          # meant for another process
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    monkeypatch.setenv("WATCHDOG_USEC", "0")
    assert sdnotify.watchdog_interval() is None


# ---- the container's health check ----------------------------------------------------------

def test_check_heartbeat_wants_a_running_daemon_and_a_recent_beat():
    now = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
    beat = {"ts": "2026-11-29T08:58:30Z", "status": "running", "activity": "waiting"}
    assert check_heartbeat({"running": True, "heartbeat": beat}, now) == \
        (True, "running, last heartbeat 90 s ago")
    ok, why = check_heartbeat({"running": True, "heartbeat": beat}, now + timedelta(minutes=2))
    assert not ok and "210 s old" in why
    assert not check_heartbeat({"running": False, "heartbeat": beat}, now)[0]
    assert not check_heartbeat({"running": True, "heartbeat": None}, now)[0]
    ok, why = check_heartbeat({"running": True, "heartbeat": {**beat, "status": "error"}}, now)
    assert not ok and "error" in why


def test_healthcheck_runs_warden_daemon_status_on_a_real_ledger(tmp_path, capsys):
    cfg = paper_config(tmp_path)
    db = tmp_path / "led" / "ledger.db"
    db.parent.mkdir()
    led = Ledger(str(db))
    led.daemon_heartbeat("d1", status="running", activity="waiting", deployments=["svc"])
    led.close()
    # a daemon holds the lock (this process) and beat just now: `warden daemon status --json`
    # in a subprocess sees both (without the lock: check_heartbeat's "running" is false)
    with DaemonLock(lock_path(f"sqlite:///{db}")):
        assert healthcheck(cfg) == 0, capsys.readouterr().out
    assert capsys.readouterr().out.startswith("healthy: running")


# ---- Dockerfile, docker-compose.yml, deploy/ -------------------------------------------------

def _scalar(text: str):
    text = text.strip()
    if text.startswith(("[", '"')):
        return json.loads(text)
    if text in ("true", "false"):
        return text == "true"
    return int(text) if re.fullmatch(r"-?\d+", text) else text


def _block(lines: list[tuple[int, str]], i: int, indent: int):
    if lines[i][1].startswith("- "):
        items = []
        while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("- "):
            item = lines[i][1][2:]
            if re.match(r"^[\w.-]+:( |$)", item):       # a mapping inside the list
                lines[i] = (indent + 2, item)
                value, i = _block(lines, i, indent + 2)
            else:
                value, i = _scalar(item), i + 1
            items.append(value)
        return items, i
    mapping: dict = {}
    while i < len(lines) and lines[i][0] == indent:
        key, sep, rest = lines[i][1].partition(":")
        assert sep and not key.startswith("- "), f"not block YAML: {lines[i][1]!r}"
        i += 1
        if rest.strip():
            mapping[key] = _scalar(rest)
        elif i < len(lines) and lines[i][0] > indent:
            mapping[key], i = _block(lines, i, lines[i][0])
        else:
            mapping[key] = None
    return mapping, i


def parse_compose(text: str) -> dict:
    """Parse the block-style YAML subset the compose file is written in (PyYAML is not a
    dependency); with PyYAML installed the result must match it."""
    lines = [(len(raw) - len(raw.lstrip(" ")), raw.strip()) for raw in text.splitlines()
             if raw.strip() and not raw.strip().startswith("#")]
    assert all("\t" not in raw for raw in text.splitlines())
    data, end = _block(lines, 0, 0)
    assert end == len(lines), f"unparsed from line {lines[end]}"
    try:
        import yaml
    except ImportError:
        return data
    assert yaml.safe_load(text) == data
    return data


def dockerfile() -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    out = []
    for line in joined.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def dockerignored(path: str) -> bool:
    patterns = [p.strip() for p in (REPO / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    return any(fnmatch.fnmatch(path, p) or path.startswith(p.rstrip("/") + "/")
               for p in patterns)


def test_dockerfile_builds_from_the_repo_as_a_non_root_warden():
    steps = dockerfile()
    froms = [rest for word, rest in steps if word == "FROM"]
    assert froms and all(f.startswith("python:3.11-slim") for f in froms)
    for word, rest in steps:
        if word == "COPY" and "--from=" not in rest:
            *sources, _ = rest.split()
            for src in sources:
                assert (REPO / src).exists(), f"COPY {src}: not in the repository"
                assert not dockerignored(src), f"COPY {src}: excluded by .dockerignore"
    users = [rest for word, rest in steps if word == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert json.loads(dict(steps)["ENTRYPOINT"]) == ["warden"]
    cmd = json.loads(dict(steps)["CMD"])
    assert cmd == ["daemon", "start", "--foreground", "--config", "/config/warden.toml"]
    assert '"/config", "/data"' in dict(steps)["VOLUME"]
    health = dict(steps)["HEALTHCHECK"]
    probe = json.loads(health[health.index("CMD") + 3:])
    assert probe[:2] == ["python", "-c"]
    assert "from tradewarden.ops.service_files import healthcheck" in probe[2]
    assert "'/config/warden.toml'" in probe[2]
    assert dockerignored(".venv") and dockerignored("deploy/ledger.env")


def test_compose_runs_the_daemon_on_postgres_with_the_example_config():
    compose = parse_compose((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    pg, warden = services["postgres"], services["warden"]
    image, _, tag = pg["image"].partition(":")
    assert image == "postgres" and int(tag.split("-")[0]) >= 16
    assert pg["healthcheck"]["test"][0] == "CMD-SHELL" and "pg_isready" in pg["healthcheck"]["test"][1]
    assert warden["build"] == "." and (REPO / "Dockerfile").is_file()
    assert warden["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert pg["restart"] == warden["restart"] == "unless-stopped"
    # every file it names is in the repository; a secrets file it requires has an example
    for service in services.values():
        for env in service.get("env_file", []):
            path = REPO / env["path"]
            assert path.name.endswith(".env") and dockerignored(env["path"])
            assert path.with_name(path.name + ".example").is_file()
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (REPO / source).exists(), volume
            else:
                assert source in compose["volumes"], f"named volume {source} not declared"
    assert "./deploy/warden.toml:/config/warden.toml:ro" in warden["volumes"]
    assert "TRADEWARDEN_LEDGER__PASSWORD" in " ".join(pg["entrypoint"])
    example = (REPO / "deploy/ledger.env.example").read_text()
    assert re.search(r"^TRADEWARDEN_LEDGER__PASSWORD=", example, re.MULTILINE)
    # the daemon's ledger URL points at this server, user and database, without a password
    loaded = load_settings(REPO / "deploy/warden.toml")
    url = make_url(loaded.ledger.db)
    assert url.drivername == "postgresql+psycopg" and url.password is None
    assert (url.host, url.username, url.database) == (
        "postgres", pg["environment"]["POSTGRES_USER"], pg["environment"]["POSTGRES_DB"])


def test_the_example_deployment_config_is_a_paper_deployment(tmp_path):
    loaded = load_settings(REPO / "deploy/warden.toml")
    run = loaded.run_config()
    assert run.mode == "paper" and loaded.venue.name == "coinbase"
    assert list(run.symbols) == ["BTC-USD", "ETH-USD"]
    assert str(loaded.report.out).startswith("/data/")   # on the image's data volume
    r = CliRunner().invoke(app, ["config", "show", "--config", str(REPO / "deploy/warden.toml")])
    assert r.exit_code == 0 and "error" not in r.output
    assert re.search(r"^ledger\.db +postgresql\+psycopg://warden@postg", r.output, re.MULTILINE)
