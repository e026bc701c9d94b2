"""``warden daemon start | stop | status``: the deployment as a service.

``start`` takes the daemon lock of the ledger (:mod:`tradewarden.ops.daemon`: an OS
file lock, so a second start is refused while one runs and a lock left by a dead
process is not), then runs the configured deployment with the same loop as ``warden
paper`` / ``warden live``, writing a heartbeat row at start, at least every minute, and
at shutdown. Without ``--foreground`` it starts itself in the background (a new
session, output to a log file) and returns once the daemon holds the lock. ``stop``
sends SIGTERM to the daemon that holds the lock and waits for it to finish its bar;
``status`` reads the lock and the ledger, so it works while the daemon is down.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import typer

from tradewarden.cli_common import CONFIG_OPT, DB_OPT, _fail, _known_errors, settings_for

daemon_app = typer.Typer(no_args_is_help=True, add_completion=False,
                         help="Run deployments as a service (start, stop, install-service) "
                         "and oversee it: status, context, audit, costs, thoughts, "
                         "experiments, pause, resume, "
                         "emergency-stop, set-autonomy, override, clear-anomaly.")


def _lock_for(config: Path | None, db: str | None) -> tuple[Any, Path]:
    from tradewarden.ops.daemon import lock_path
    loaded = settings_for(config, db)
    return loaded, lock_path(loaded.ledger.url())


@daemon_app.command("start")
def start(config: Path = typer.Option(..., "--config", "-c", dir_okay=False,
                                      help="The deployments' config: the file warden paper "
                                      "and warden live take, or several under "
                                      "[[deployments]]."),
          deployment: Optional[str] = typer.Option(None, "--deployment",
                                                   help="Deployment name (with "
                                                   "[[deployments]]: run only that one). "
                                                   "[default: MODE-STRATEGY-SYMBOLS]"),
          db: Optional[str] = DB_OPT,
          foreground: bool = typer.Option(False, "--foreground",
                                          help="Run in this process (for systemd, Docker, "
                                          "a terminal) instead of in the background."),
          live_: bool = typer.Option(False, "--live", help="Required when the config says "
                                     'mode = "live" (real money).'),
          log: Optional[Path] = typer.Option(None, "--log", dir_okay=False,
                                             help="The structured log file, rotated (10 MB x "
                                             "5). [default: background: daemon.log next to "
                                             "the lock; foreground: standard error]"),
          log_json: bool = typer.Option(False, "--log-json",
                                        help="Log JSON lines instead of key=value text.")) -> None:
    """Start the daemon for the config's deployments (one daemon per ledger).

    Each deployment trades under the autonomy governor ([autonomy]: L1, everything
    waits for a person, at first), with durable events, alerts ([alerts]) and a
    heartbeat; a deployment that fails is reopened every [daemon] reconnect_seconds.
    Refused while another daemon runs for the same ledger. A config with mode =
    "live" needs --live, credentials and a key that passes the pre-flight, as
    `warden live` does (no confirmation: a service does not ask). Stop it with
    `warden daemon stop` or SIGTERM: the bar in progress is finished.
    """
    from tradewarden.ops.daemon import DaemonRunning, running_daemon

    loaded, lock = _lock_for(config, db)
    holder = running_daemon(lock)
    if holder is not None:
        raise _fail(str(DaemonRunning(holder)))
    if not foreground:
        _start_background(config, deployment, db, live_, log or lock.with_name("daemon.log"),
                          log_json, lock)
        return
    _run_foreground(config, deployment, db, live_, lock, log, log_json)


def _start_background(config: Path, deployment: str | None, db: str | None, live_: bool,
                      log: Path, log_json: bool, lock: Path) -> None:
    """Start ``warden daemon start --foreground`` in a new session, its structured log in
    ``log`` and anything it prints before that in ``daemon.out`` beside it; wait until it
    has written its first heartbeat (or has exited: the tail of its output is shown)."""
    from tradewarden.ops.daemon import running_daemon
    args = [sys.executable, "-m", "tradewarden.cli", "daemon", "start", "--foreground",
            "--config", str(config), "--log", str(log)]
    if log_json:
        args.append("--log-json")
    for flag, value in (("--deployment", deployment), ("--db", db)):
        if value:
            args += [flag, value]
    if live_:
        args.append("--live")
    log.parent.mkdir(parents=True, exist_ok=True)
    printed = log.with_name("daemon.out")
    with open(printed, "ab") as out:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        holder = running_daemon(lock)
        if holder is not None and holder.get("pid") == proc.pid and _beating(config, db, proc.pid):
            typer.echo(f"daemon started (pid {proc.pid}); log {log}, output {printed}; stop it "
                       "with `warden daemon stop`")
            return
        if proc.poll() is not None:
            tail = printed.read_text(errors="replace").strip().splitlines()[-3:]
            raise _fail(f"the daemon exited at start (status {proc.returncode}): "
                        + " | ".join(tail))
        time.sleep(0.2)
    raise _fail(f"the daemon did not take its lock within 60 s (pid {proc.pid}); see {printed}")


def _beating(config: Path, db: str | None, pid: int) -> bool:
    """Whether the daemon process ``pid`` has written its first heartbeat (it runs)."""
    from tradewarden.ledger import Ledger
    try:
        led = Ledger(settings_for(config, db).ledger.url(), create=False)
    except Exception:       # no ledger yet: not started
        return False
    try:
        beat = led.latest_daemon_heartbeat()
    except Exception:
        return False
    finally:
        led.close()
    return beat is not None and beat.get("pid") == pid


def _run_foreground(config: Path, deployment: str | None, db: str | None, live_: bool,
                    lock_file: Path, log_file: Path | None = None, log_json: bool = False) -> None:
    from pydantic import ValidationError

    from tradewarden.cli_common import _validation_message
    from tradewarden.cli_live import venue_hooks
    from tradewarden.cli_paper import make_clock, open_mode
    from tradewarden.execution.venue import VenueError
    from tradewarden.ledger import Ledger
    from tradewarden.ledger.lifecycle import RunInterrupted, StopSignals
    from tradewarden.ops import logs
    from tradewarden.ops.daemon import DaemonLock, DaemonRunning
    from tradewarden.ops.live import live_refusals
    from tradewarden.ops.supervision import Supervisor
    from tradewarden.ops.service import DaemonService
    from tradewarden.settings import deployment_settings, load_settings

    daemon_id = uuid.uuid4().hex[:12]
    log = logs.configure(json=log_json, path=log_file).bind(daemon_id=daemon_id, pid=os.getpid())
    lock = DaemonLock(lock_file)
    status, why = "shutdown", "stopped"
    led = None
    names: list[str] = []
    try:
        loaded = load_settings(config, {"ledger.db": (db, "--db")} if db else {})
        specs = deployment_settings(loaded)
        if deployment is not None:
            if len(specs) > 1:
                specs = [(n, one) for n, one in specs if n == deployment]
                if not specs:
                    raise _fail(f"--deployment {deployment}: no [[deployments]] entry of that "
                                f"name in {config}")
            else:
                specs = [(deployment, specs[0][1])]
        checked = []
        for name, one in specs:
            mode = one.run_config().mode
            if mode == "live":
                refusals = live_refusals(mode, live_, one.venue)
                if refusals:
                    raise _fail("warden daemon refused" + (f" ({name})" if name else "")
                                + ": " + "; ".join(refusals))
            else:
                if not one.venue.name:
                    raise _fail("the daemon needs a venue: set [venue] name in the config"
                                + (f" (deployment {name})" if name else ""))
                one.settings = one.settings.model_copy(update={"mode": "paper"})
            checked.append((name, one))
        if loaded.settings.api.enabled:         # [api] enabled: no token, loopback only
            from tradewarden.web.auth import check_bind
            check_bind(loaded.settings.api.host, loaded.settings.api.token is not None)
        try:                    # the config is sound: now this process is the daemon
            lock.acquire()
        except DaemonRunning as exc:
            raise _fail(str(exc)) from None
        led = Ledger(loaded.ledger.url())
        with StopSignals("daemon") as stop:
            stopped = lambda: stop.signum is not None       # noqa: E731
            clock = make_clock(stopped)
            sup = Supervisor(led, loaded, daemon_id=daemon_id, clock=clock, log=log)
            service = DaemonService(
                checked, daemon_id=daemon_id, clock=clock, stop=stopped, log=log, ledger=led,
                connect_for=lambda one: venue_hooks(one, live_, "warden daemon refused"),
                on_open=sup.on_open, on_bar=sup.on_bar, on_failure=sup.on_failure,
                on_turn=sup.on_turn, heartbeat=sup.heartbeat,
                wrap_ledger=sup.wrap_ledger, open_mode=open_mode)
            sup.service = service
            sup.start()
            from tradewarden.cli_serve import start_for_daemon
            api = start_for_daemon(loaded, log)     # the dashboard, when [api] enabled
            names = service.names()
            log.info("daemon_started", deployments=names, lock=str(lock_file),
                     modes=[one.run_config().mode for _, one in checked])
            try:
                status = service.run()
                try:
                    stop.check()        # the stop request is answered: not re-delivered
                except RunInterrupted:
                    pass
            finally:
                names = service.names()
                if api is not None:
                    api.stop()
                sup.close()
    except typer.Exit:
        status, why = "error", "refused at start"
        raise
    except ValidationError as exc:
        status, why = "error", _validation_message(exc)
        raise _fail(why) from None
    except (VenueError, *_known_errors()) as exc:
        status, why = "error", str(exc)
        raise _fail(why) from None
    except BaseException as exc:
        status, why = "error", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        log.info("daemon_stopped", status=status, why=why)
        if led is not None and lock.held:
            try:
                led.daemon_heartbeat(daemon_id, status=status, activity=why, deployments=names)
            except Exception:   # the shutdown row is bookkeeping: never mask the cause
                pass
            led.close()
        lock.release()


@daemon_app.command("stop")
def stop(config: Optional[Path] = CONFIG_OPT, db: Optional[str] = DB_OPT,
         timeout: float = typer.Option(120.0, "--timeout", min=1,
                                       help="Seconds to wait for the daemon to finish.")) -> None:
    """Stop the daemon gracefully (SIGTERM: it finishes its bar and records the stop)."""
    from tradewarden.ops.daemon import holder_alive, running_daemon

    _, lock = _lock_for(config, db)
    holder = running_daemon(lock)
    if holder is None:
        typer.echo(f"no daemon is running for this ledger (lock {lock})")
        return
    if not holder_alive(holder):
        raise _fail(f"the daemon's lock is held by pid {holder.get('pid')} on "
                    f"{holder.get('host')}, which this host cannot signal")
    pid = int(holder["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running_daemon(lock) is None:
            typer.echo(f"daemon stopped (pid {pid})")
            return
        time.sleep(0.2)
    raise _fail(f"the daemon (pid {pid}) did not stop within {timeout:g} s", code=1)


@daemon_app.command("status")
def status(config: Optional[Path] = CONFIG_OPT, db: Optional[str] = DB_OPT,
           json_: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show the daemon and its deployments (works while the daemon is down: it reads
    the lock and the ledger).

    Whether a daemon runs, its last heartbeat and how old it is, the queued events;
    per deployment its status, autonomy level, open positions, pending approvals,
    active anomalies and last decision with its reasoning; recent alerts.
    """
    with _oversight(config, db) as o:
        if json_:
            typer.echo(json.dumps(o.status(), indent=2, default=str))
        else:
            typer.echo(o.text_status())


@contextmanager
def _oversight(config: Path | None, db: str | None) -> Iterator[Any]:
    """Open the oversight of the ledger (:class:`tradewarden.ops.oversight.Oversight`);
    a missing ledger or any refusal inside becomes one ``error:`` line, status 2. A
    deployment that never recorded a level has the config's [autonomy] initial_level."""
    from tradewarden.ops.oversight import Oversight
    loaded = settings_for(config, db)
    try:
        o = Oversight(loaded.ledger.url(),
                      default_autonomy=loaded.settings.autonomy.initial_level)
    except _known_errors() as exc:
        raise _fail(str(exc)) from None
    try:
        yield o
    except _known_errors() as exc:       # OversightError is a ValueError
        raise _fail(str(exc)) from None
    finally:
        o.close()


def _daemon_deployments(config: Path | None, db: str | None) -> list[str]:
    """The deployments the daemon of this ledger runs (from its last heartbeat).

    Raises
    ------
    typer.Exit
        Status 2 when no daemon ever ran on this ledger.
    """
    from tradewarden.ledger import Ledger
    loaded = settings_for(config, db)
    try:
        led = Ledger(loaded.ledger.url(), create=False)
        try:
            beat = led.latest_daemon_heartbeat()
        finally:
            led.close()
    except _known_errors() as exc:
        raise _fail(str(exc)) from None
    if not beat or not beat.get("deployments"):
        raise _fail("no daemon has run on this ledger: use the deployment commands "
                    "(warden pause/resume/kill --deployment NAME)")
    return list(beat["deployments"])


REASON_OPT = typer.Option(None, "--reason", help="Why (recorded with the command).")
BY_OPT = typer.Option(None, "--by", help="Who gives the command. [default: the OS user]")


@daemon_app.command("pause")
def pause(reason: str = typer.Option(..., "--reason", help="Why (recorded)."),
          config: Optional[Path] = CONFIG_OPT, db: Optional[str] = DB_OPT,
          by: Optional[str] = BY_OPT) -> None:
    """Pause every deployment of the daemon: no new entries until `warden daemon resume`."""
    from tradewarden import cli_deploy
    for name in _daemon_deployments(config, db):
        cli_deploy.pause(deployment=name, reason=reason, by=by, db=db, config=config)


@daemon_app.command("resume")
def resume(config: Optional[Path] = CONFIG_OPT, db: Optional[str] = DB_OPT,
           reason: Optional[str] = REASON_OPT, by: Optional[str] = BY_OPT) -> None:
    """Resume every deployment of the daemon (lifts a pause and the kill switch)."""
    from tradewarden import cli_deploy
    for name in _daemon_deployments(config, db):
        cli_deploy.resume(deployment=name, reason=reason, by=by, db=db, config=config)


@daemon_app.command("emergency-stop")
def emergency_stop(config: Optional[Path] = CONFIG_OPT, db: Optional[str] = DB_OPT,
                   yes: bool = typer.Option(False, "--yes", help="Do not ask."),
                   wait: float = typer.Option(60.0, "--wait", min=0,
                                              help="Seconds to wait for the daemon to report."),
                   reason: Optional[str] = REASON_OPT, by: Optional[str] = BY_OPT) -> None:
    """Flatten every position of the daemon's deployments through the broker and halt.

    For each deployment: the kill switch (no new entries until resume), every open
    order cancelled, every position closed at market, and the venue's positions
    checked afterwards (`warden kill --flatten` for each). With --config, a
    deployment that is not running is started just long enough to act.
    """
    from tradewarden import cli_deploy
    for name in _daemon_deployments(config, db):
        cli_deploy.kill(deployment=name, reason=reason or "emergency stop", flatten_=True,
                        yes=yes, wait=wait, by=by, db=db, config=config)


@daemon_app.command("install-service")
def install_service(
        config: Path = typer.Option(..., "--config", "-c", dir_okay=False,
                                    help="The deployment's config (written into the unit as "
                                    "an absolute path)."),
        db: Optional[str] = DB_OPT,
        user_: bool = typer.Option(False, "--user", help="A user unit in "
                                   "~/.config/systemd/user/ (the default)."),
        system: bool = typer.Option(False, "--system", help="A system unit in "
                                    "/etc/systemd/system/ (needs root)."),
        name: str = typer.Option("tradewarden", "--name", help="The unit's name."),
        output: Optional[Path] = typer.Option(None, "--output", dir_okay=False,
                                              help="Write the unit to this file instead."),
        deployment: Optional[str] = typer.Option(None, "--deployment",
                                                 help="Deployment name, passed to start."),
        live_: bool = typer.Option(False, "--live", help='Required when the config says '
                                   'mode = "live" (real money).'),
        log_json: bool = typer.Option(False, "--log-json", help="Log JSON lines to the "
                                      "journal."),
        run_as: Optional[str] = typer.Option(None, "--run-as", help="User= of a --system "
                                             "unit. [default: $SUDO_USER]"),
        no_sandbox: bool = typer.Option(False, "--no-sandbox", help="Leave out ProtectSystem="
                                        "strict and the other sandboxing (for a system that "
                                        "forbids the namespaces they need)."),
        force: bool = typer.Option(False, "--force", help="Replace a different existing unit."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Print the unit; write "
                                     "nothing.")) -> None:
    """Write a systemd unit that runs `warden daemon start --foreground` as a service.

    Type=notify with a watchdog (restarted when three heartbeats are missed), restarted
    on failure, SIGTERM with time to finish the bar, secrets from an EnvironmentFile
    (never in the unit), the file system read-only except the ledger's, the lock's
    and the cache's directories. Prints the systemctl commands to enable and start it
    and to read its journal.
    """
    import pwd

    from tradewarden.ops import service_files as sf
    from tradewarden.ops.daemon import lock_path

    if user_ and system:
        raise _fail("--user and --system: choose one")
    scope: Any = "system" if system else "user"
    if run_as and scope != "system":
        raise _fail("--run-as: only a --system unit names its user")
    try:
        name = sf.check_name(name)
    except sf.ServiceFileError as exc:
        raise _fail(str(exc)) from None
    if not config.is_file():
        raise _fail(f"--config {config}: no such file")
    config = config.resolve()
    if db and "://" not in db:
        db = str(Path(db).resolve())
    elif db:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError
        try:
            has_password = make_url(db).password is not None
        except ArgumentError:
            raise _fail(f"--db {db!r}: not a path or an SQLAlchemy URL") from None
        if has_password:
            raise _fail("--db: a password would be written into the unit; drop it from the "
                        "URL and put TRADEWARDEN_LEDGER__PASSWORD in the unit's environment "
                        "file")
    loaded = settings_for(config, db)
    mode = loaded.run_config().mode
    if mode == "live" and not live_:
        raise _fail('--live: the config says mode = "live" (real money); pass --live to '
                    "install a live service")
    if mode != "live" and live_:
        raise _fail(f'--live: the config says mode = "{mode}", not "live"')
    if not loaded.venue.name:
        raise _fail("the daemon needs a venue: set [venue] name in the config")
    home: Path | None = None
    if scope == "system":
        run_as = run_as or os.environ.get("SUDO_USER") or None
        if run_as:
            try:
                home = Path(pwd.getpwnam(run_as).pw_dir)
            except KeyError:
                raise _fail(f"--run-as {run_as!r}: no such user") from None
        if output is None and not dry_run and os.geteuid() != 0:
            raise _fail(f"--system writes {sf.unit_path('system', name)} and needs root: run "
                        "it with sudo (or use --user, or --output FILE)")
    base = home or Path.home()
    state_dir = Path(os.environ.get("TRADEWARDEN_STATE_DIR") or base / ".cache" / "tradewarden")
    cache_dir = Path(os.path.expanduser(loaded.run_config().cache_dir
                                        or os.environ.get("TRADEWARDEN_CACHE")
                                        or base / ".cache" / "tradewarden"))
    writable = sf.writable_dirs(loaded.ledger.db, lock_path(loaded.ledger.db, state_dir),
                                [cache_dir, Path(loaded.report.out)])
    spec = sf.UnitSpec(python=Path(sys.executable), config=config, workdir=Path.cwd(),
                       scope=scope, name=name, env_file=sf.env_file_path(scope, name, home),
                       writable=writable, state_dir=state_dir, db=db, deployment=deployment,
                       live=live_, log_json=log_json, user=run_as, sandbox=not no_sandbox)
    try:
        text = sf.render_unit(spec)
    except sf.ServiceFileError as exc:
        raise _fail(str(exc)) from None
    if dry_run:
        typer.echo(text, nl=False)
        return
    path = output.resolve() if output is not None else sf.unit_path(scope, name, home)
    try:
        done = sf.install_unit(path, text, force=force)
    except sf.ServiceFileError as exc:
        raise _fail(str(exc)) from None
    for d in writable:          # the sandbox cannot create them: do it now
        if not d.exists():
            d.mkdir(parents=True, exist_ok=True)
            if run_as and os.geteuid() == 0:
                import shutil
                shutil.chown(d, run_as)
    typer.echo(f"unit {done}: {path}")
    if scope == "system" and not run_as:
        typer.echo("warning: the service runs as root; pass --run-as USER")
    typer.echo(f"secrets (TRADEWARDEN_VENUE__API_KEY=..., TRADEWARDEN_LEDGER__PASSWORD=...) go "
               f"in {spec.env_file}, one VAR=value a line, chmod 600")
    commands = sf.systemctl_commands(scope, name, os.environ.get("USER"))
    if output is not None:
        ctl = "systemctl --user" if scope == "user" else "sudo systemctl"
        commands.insert(0, f"{ctl} link {path}")
    typer.echo("then:\n" + "\n".join(f"  {c}" for c in commands))


# -- oversight: context, audit, costs, set-autonomy, override ----------------------------

def _when(ts: int) -> str:
    from tradewarden.domain import iso
    return iso(int(ts))[:16].replace("T", " ")


def _block(title: str, value: Any) -> list[str]:
    """``title:`` and ``value`` as indented JSON lines (the reasoning's context, output)."""
    body = json.dumps(value, indent=2, default=str, sort_keys=True)
    return [f"{title}:"] + ["  " + line for line in body.splitlines()]


@daemon_app.command("context")
def context(config: Optional[Path] = CONFIG_OPT, db: Optional[str] = DB_OPT,
            deployment: Optional[str] = typer.Option(None, "--deployment",
                                                     help="Only this deployment (its name)."),
            query: Optional[str] = typer.Option(
                None, "--query", help="Recall the past decisions closest to this situation "
                "(e.g. 'put on NVDA with VIX above 25'); default: the latest decision's."),
            k: int = typer.Option(5, "--k", min=1, max=50,
                                  help="How many similar past decisions to show (1-50)."),
            json_: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show what a reasoner would see now: positions, account, recent decisions with
    their verdicts and results, similar past decisions, patterns, the performance
    window, strategy state, autonomy level, pending approvals, anomalies."""
    with _oversight(config, db) as o:
        ctx = o.context(deployment)
        try:
            for d in ctx["deployments"]:
                d.update(_memory_parts(o.ledger, d, query=query, k=k, now=ctx["now"]))
        except _known_errors() as exc:
            raise _fail(str(exc)) from None
    if json_:
        typer.echo(json.dumps(ctx, indent=2, default=str))
        return
    from tradewarden.ops.oversight import Oversight
    for d in ctx["deployments"]:
        quote = d["account"]["quote"]
        st = d["strategy_state"]
        typer.echo(f"deployment {d['deployment']} ({d['mode']}, {d['status']}): autonomy "
                   f"L{d['autonomy_level']} {d['autonomy']}; strategy {st['strategy']} "
                   f"{st['timeframe'] or ''}, last bar {st['last_bar'] or '-'}"
                   + ("; PAUSED" if st["paused"] else ""))
        for a in d["account"]["accounts"]:
            typer.echo(f"  account {a['name']}: cash {a['cash']:,.2f} {quote}, equity "
                       f"{a['equity']:,.2f} {quote}")
        for p in d["positions"]:
            typer.echo("  " + Oversight._position_line(p, quote))
        for s in st["symbols"]:
            levels = ", ".join(f"{k} {s[k]}" for k in ("stop_loss", "take_profit") if s[k])
            typer.echo(f"  {s['symbol']}: {s['state']}, last close {s['last_close']}"
                       + (f", {levels}" if levels else ""))
        for a in d["pending_approvals"]:
            typer.echo(f"  approval {a['id']} pending: {a['action']} {a['symbol']} qty "
                       f"{a['intent'].get('quantity', '?')}")
        for an in d["anomalies"]:
            typer.echo(f"  anomaly {an['kind']}" + (f" {an['symbol']}" if an["symbol"] else "")
                       + f" since {_when(an['opened_ts'])}")
        for x in d["recent_decisions"]:
            typer.echo(f"  decision {x['id']} {_when(x['ts'])} {x['action']}"
                       + (f" {x['symbol']}" if x["symbol"] else "")
                       + f": {x['reasoning'] or '-'} [{x['outcome']}]"
                       + (f" -> {_result(x['result'])}" if x.get("result") else ""))
        perf = d["performance"]
        if perf.get("trades"):
            figures = [f"{perf['trades']} trades", f"win rate {perf['win_rate']:.0%}",
                       f"pnl {float(perf['pnl']):,.2f} {quote}"]
            figures += [f"{name} {perf[key]:+.2f}%" for key, name in (
                ("return_pct", "return"), ("max_drawdown_pct", "max drawdown"))
                if perf.get(key) is not None]
            typer.echo("  performance: " + ", ".join(figures))
        for p in d["patterns"]:
            typer.echo(f"  pattern {p['kind']} {p['action']} {p['market_state']}: {p['n']}, "
                       f"hit rate {p['hit_rate']:.0%}, mean {p['mean_return_pct']:+.2f}%")
        for x in d["similar_past"]:
            typer.echo(f"  similar {x['similarity']:.2f} decision {x['agent_decision_id']} "
                       f"{_when(x['ts'])}: {x['summary']}"
                       + (f" -> {_result(x['outcome'])}" if x.get("outcome") else ""))


def _result(outcome: dict[str, Any]) -> str:
    """A decision's recorded outcome in a few words (``taken pnl 12.50 (+1.25%)``)."""
    words = [outcome.get("kind") or "?"]
    if outcome.get("pnl") is not None:
        words.append(f"pnl {float(outcome['pnl']):,.2f}")
    if outcome.get("return_pct") is not None:
        ret = f"{outcome['return_pct']:+.2f}%"
        words.append(f"({ret})" if outcome.get("pnl") is not None else
                     f"{ret} over {int(outcome.get('horizon_s') or 0) // 3600} h")
    return " ".join(words)


def _memory_parts(ledger: Any, d: dict[str, Any], *, query: str | None, k: int,
                  now: int) -> dict[str, Any]:
    """The record's parts of a deployment's context, read only: each recent decision's
    ``result`` (its ``decision_outcomes`` row), ``similar_past`` (for ``query``, default
    the latest decision's situation; the embedding model is loaded only when a decision
    has been embedded), ``patterns`` and ``performance``."""
    from tradewarden.agent import outcomes, records
    from tradewarden.agent.memory import build_context_extras
    from tradewarden.agent.recall import event_query
    dep_id = d["deployment_id"]
    found = outcomes.outcomes_by_decision(ledger, [x["id"] for x in d["recent_decisions"]])
    for x in d["recent_decisions"]:
        x["result"] = found.get(x["id"])
    if query is None:
        latest = records.agent_decisions(ledger, deployment_id=dep_id, limit=1)
        if latest:
            c = latest[-1]["context"]
            query = event_query(latest[-1]["event_kind"], latest[-1]["symbol"],
                                (c.get("event") or {}).get("payload"), c.get("market"))
    recall = None
    if query and _has_embeddings(ledger, dep_id):
        from tradewarden.agent.recall import SemanticRecall
        recall = SemanticRecall(ledger)
    else:
        query = None
    extras = build_context_extras(ledger, dep_id, query=query, k=k, now=now, recall=recall,
                                  persist=False)
    return {"similar_past": extras["similar_past"], "patterns": extras["patterns"],
            "performance": extras["performance"]}


def _has_embeddings(ledger: Any, deployment_id: str) -> bool:
    """Whether any decision of the deployment was embedded (a database error is a
    :class:`~tradewarden.ledger.LedgerError` naming what was read)."""
    from sqlalchemy import select

    from tradewarden.agent import records
    from tradewarden.ledger import schema
    e = schema.memory_embeddings
    q = select(e.c.id).where(e.c.deployment_id == deployment_id).limit(1)
    return records._read(ledger, "the decision embeddings",
                         lambda conn: conn.execute(q).first()) is not None


#: JSON and reasoning lines shown of a model call before it is folded (--full: all).
FOLD_LINES = 12


def _folded(title: str, lines: list[str], full: bool) -> list[str]:
    """``title:`` and ``lines`` indented, cut after :data:`FOLD_LINES` unless ``full``."""
    if not full and len(lines) > FOLD_LINES:
        lines = lines[:FOLD_LINES] + [f"... {len(lines) - FOLD_LINES} more line(s); --full "
                                      "shows everything"]
    return [f"  {title}:"] + ["    " + line for line in lines]


def _clipped(value: Any, full: bool, longest: int = 200) -> Any:
    """``value`` with every text longer than ``longest`` cut (unless ``full``): the
    reasoning is shown apart, line by line."""
    if full:
        return value
    if isinstance(value, str) and len(value) > longest:
        return value[:longest] + f"... ({len(value):,} characters; --full shows all)"
    if isinstance(value, dict):
        return {k: _clipped(v, full, longest) for k, v in value.items()}
    if isinstance(value, list):
        return [_clipped(v, full, longest) for v in value]
    return value


def _call_lines(c: dict[str, Any], full: bool) -> list[str]:
    """One model call of a decision, for a person: what was sent, what came back, what
    it led to, what it cost."""
    head = (f"call {c['id']} ({c['call_type']}, attempt {c['attempt']}) at {_when(c['ts'])} "
            f"UTC: {c['provider']} {c['model']}, status {c['status']}"
            + (f", {c['latency_ms']} ms" if c["latency_ms"] is not None else "")
            + (f", autonomy L{c['autonomy_level']}" if c["autonomy_level"] else ""))
    parsed = c["parsed"] if isinstance(c["parsed"], dict) else None
    out = [head,
           f"  tokens: input {c['input_tokens']:,}, output {c['output_tokens']:,}, cache read "
           f"{c['cache_read_tokens']:,}, cache write {c['cache_write_tokens']:,}; cost "
           f"{float(c['cost_usd']):.4f} USD",
           f"  parsed: {'yes' if parsed is not None else 'no'}; action "
           f"{(parsed or {}).get('action') or '-'}; outcome {c['outcome'] or '-'}"]
    if c["error"]:
        out.append(f"  error: {c['error']}")
    from tradewarden.agent.calls import response_blocks
    for b in response_blocks(c["response"]):
        if isinstance(b.get(b.get("type")), str):
            out += _folded(f"{b['type']} (as returned)", b[b["type"]].splitlines(), full)
    for title, value in (("context sent", c["request"]), ("response", c["response"]),
                         ("parsed answer", parsed)):
        if value is not None:
            body = json.dumps(_clipped(value, full), indent=2, default=str,
                              sort_keys=True).splitlines()
            out += _folded(title, body, full)
    return out


@daemon_app.command("audit")
def audit(config: Optional[Path] = CONFIG_OPT, db: Optional[str] = DB_OPT,
          days: Optional[float] = typer.Option(None, "--days",
                                               help="The decisions of the last N days."),
          decision_id: Optional[int] = typer.Option(None, "--decision-id",
                                                    help="One decision, in full."),
          full: bool = typer.Option(False, "--full", help="With --decision-id: every "
                                    "model call's context, response and reasoning unfolded "
                                    f"(default: folded after {FOLD_LINES} lines)."),
          json_: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show the full reasoning of the agent's decisions: the context each was sent, its
    output, the governor's verdicts, and the approvals and commands that followed.

    Give --days N (a table; --json for everything) or --decision-id ID (in full: also
    every model call it made, with the context sent, the response and its reasoning,
    whether it parsed, the action taken and its outcome, the autonomy level and the
    cost)."""
    if (days is None) == (decision_id is None):
        raise _fail("give --days N or --decision-id ID (one of them)")
    if days is not None and not days > 0:
        raise _fail(f"--days {days:g}: give a number of days above 0")
    with _oversight(config, db) as o:
        found = o.audit(days=days, decision_id=decision_id)
        if decision_id is not None:
            from tradewarden.agent.calls import decision_calls
            d = found["decision"]
            found["calls"] = decision_calls(o.ledger, d["id"], event_id=d.get("event_id"))
    if json_:
        typer.echo(json.dumps(found, indent=2, default=str))
        return
    if decision_id is not None:
        d = found["decision"]
        conf = f", confidence {d['confidence']:.2f}" if d["confidence"] is not None else ""
        typer.echo(f"decision {d['id']} at {_when(d['ts'])} UTC: {d['event_kind']}"
                   + (f" {d['symbol']}" if d["symbol"] else "")
                   + f" -> {d['action']}{conf} (reasoner {d['reasoner']}, autonomy "
                   f"L{d['autonomy_level']}, deployment {d['deployment_id']})")
        for line in _block("context sent", d["context"]) + _block("output", d["output"]):
            typer.echo(line)
        typer.echo("governor verdicts:" if d["verdicts"] else "governor verdicts: none recorded")
        for v in d["verdicts"]:
            triggers = f" (triggers: {', '.join(map(str, v['triggers']))})" if v["triggers"] else ""
            typer.echo(f"  {v['verdict']} at L{v['autonomy_level']}: {v['reason']}{triggers}"
                       + (f"; approval {v['approval_id']}" if v["approval_id"] else ""))
        for a in found["approvals"]:
            who = f" by {a['acted_by']}" if a["acted_by"] else ""
            typer.echo(f"approval {a['id']}: {a['action']} {a['symbol']}, {a['status']}{who}"
                       + (f" ({a['reason']})" if a["reason"] else ""))
        for c in found["commands"]:
            typer.echo(f"command {c['id']} {c['kind']} by {c['actor']}: {c['status']}"
                       + (f": {c['result']}" if c["result"] else ""))
        typer.echo(f"outcome: {found['outcome']}")
        spent = sum(float(c["cost_usd"]) for c in found["calls"])
        typer.echo(f"model calls: {len(found['calls'])}, {spent:.4f} USD" if found["calls"]
                   else "model calls: none recorded (the rules reasoner calls no model)")
        for c in found["calls"]:
            for line in _call_lines(c, full):
                typer.echo(line)
        return
    from rich.console import Console
    from rich.table import Table
    rows = found["decisions"]
    table = Table(title=f"{len(rows)} decision(s) in the last {days:g} day(s); the full "
                        "reasoning: --decision-id ID")
    for col in ("id", "when (UTC)", "event", "symbol", "action", "conf.", "reasoning",
                "verdicts", "outcome"):
        table.add_column(col, overflow="fold", justify="right" if col in ("id", "conf.") else "left")
    for r in rows:
        d = r["decision"]
        table.add_row(str(d["id"]), _when(d["ts"]), d["event_kind"], d["symbol"] or "",
                      d["action"], "" if d["confidence"] is None else f"{d['confidence']:.2f}",
                      str(d["output"].get("reasoning") or ""),
                      ", ".join(v["verdict"] for v in d["verdicts"]) or "-", r["outcome"])
    Console().print(table)


@daemon_app.command("costs")
def costs(config: Optional[Path] = CONFIG_OPT, db: Optional[str] = DB_OPT,
          days: float = typer.Option(7.0, "--days", help="The last N days."),
          csv_: Optional[str] = typer.Option(None, "--csv", metavar="FILE",
                                             help="Write the rows and the total as CSV to "
                                             "FILE ('-': standard output)."),
          json_: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show what the reasoning models cost: calls, tokens and US dollars by day, model
    and call type, with totals (prices as recorded with each call), the daily cap
    ([reasoning] daily_cost_cap_usd) and today's (UTC) share of it."""
    if not days > 0:
        raise _fail(f"--days {days:g}: give a number of days above 0")
    from decimal import Decimal

    from tradewarden.agent.costs import CostGuard
    from tradewarden.domain import iso
    reasoning = settings_for(config, db).settings.reasoning
    with _oversight(config, db) as o:
        found = o.costs(days)
        now = o.now()
        today = CostGuard(o.ledger, reasoning).spent(now)
    cap = float(reasoning.daily_cost_cap_usd)
    found.update(cap_usd=cap, today=iso(now)[:10], today_usd=today,
                 today_share=today / cap if cap > 0 else None)
    if csv_ is not None:
        _costs_csv(found, csv_)
        return
    if json_:
        typer.echo(json.dumps(found, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table
    total = found["total"]
    table = Table(title=f"reasoning costs, last {days:g} day(s): {total['calls']} call(s), "
                        f"{total['cost_usd']:.4f} USD")
    for col in ("day (UTC)", "model", "call type", "calls", "input tokens", "output tokens",
                "cache read", "cache write", "USD"):
        table.add_column(col, justify="left" if col in ("day (UTC)", "model", "call type")
                         else "right")
    keys = ("calls", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
    for r in found["rows"]:
        table.add_row(r["day"], r["model"], r["call_type"], *(f"{r[k]:,}" for k in keys),
                      f"{r['cost_usd']:.4f}")
    table.add_row("total", "", "", *(f"{total[k]:,}" for k in keys), f"{total['cost_usd']:.4f}",
                  style="bold")
    share = (f" = {found['today_share']:.1%} of the cap" if found["today_share"] is not None
             else " (a cap of 0: no model is called)")
    table.caption = (f"daily cap {cap:.2f} USD; today ({found['today']} UTC) "
                     f"{Decimal(repr(today)):.4f} USD{share}")
    Console().print(table)


def _costs_csv(found: dict[str, Any], target: str) -> None:
    """Write the cost rows and the total as CSV to ``target`` (``-``: standard output)."""
    import csv
    import io
    cols = ("day", "provider", "model", "call_type", "calls", "input_tokens", "output_tokens",
            "cache_read_tokens", "cache_write_tokens", "cost_usd")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in found["rows"]:
        w.writerow([r[c] for c in cols])
    total = found["total"]
    w.writerow(["total", "", "", "", *(total[c] for c in cols[4:])])
    if target == "-":
        typer.echo(buf.getvalue(), nl=False)
        return
    try:
        Path(target).write_text(buf.getvalue(), encoding="utf-8")
    except OSError as exc:
        raise _fail(f"--csv {target}: cannot write ({exc.strerror or exc})") from None
    typer.echo(f"{len(found['rows'])} row(s) written to {target}")


@daemon_app.command("thoughts")
def thoughts(config: Optional[Path] = CONFIG_OPT, db: Optional[str] = DB_OPT,
             day: Optional[str] = typer.Option(None, "--day", metavar="YYYY-MM-DD",
                                               help="The UTC day. [default: today]"),
             deployment: Optional[str] = typer.Option(None, "--deployment",
                                                      help="Only this deployment (its name)."),
             json_: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show the thought log: every reasoning-model call of a UTC day, by cycle (one
    decision's or reflection's calls together): time, deployment, call type, model,
    status, action, tokens, cost and the first line of its reasoning.

    One decision's calls in full: warden daemon audit --decision-id ID."""
    from datetime import date

    from tradewarden.agent.calls import thought_log
    from tradewarden.domain import iso
    if day is not None:
        try:
            date.fromisoformat(day)
        except ValueError:
            raise _fail(f"--day {day}: give a date as YYYY-MM-DD") from None
    with _oversight(config, db) as o:
        day = day or iso(o.now())[:10]
        rows = thought_log(o.ledger, day=day, deployment=deployment)
    if json_:
        typer.echo(json.dumps({"day": day, "calls": rows}, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table
    cycles = list(dict.fromkeys(r["cycle"] for r in rows))
    spent = sum(float(r["cost_usd"]) for r in rows)
    table = Table(title=f"thought log {day} UTC: {len(rows)} call(s) in {len(cycles)} "
                        f"cycle(s), {spent:.4f} USD", caption="one decision's calls in "
                        "full: warden daemon audit --decision-id ID")
    for col in ("time", "deployment", "cycle", "type", "model", "status", "action",
                "decision", "tokens in/out", "USD", "reasoning"):
        table.add_column(col, overflow="fold",
                         justify="right" if col in ("decision", "tokens in/out", "USD") else "left")
    last = None
    for r in rows:
        if last is not None and r["cycle"] != last:
            table.add_section()
        last = r["cycle"]
        tokens_in = r["input_tokens"] + r["cache_read_tokens"] + r["cache_write_tokens"]
        table.add_row(r["time"][11:19], r["deployment"] or r["deployment_id"] or "-",
                      f"{r['cycle']} #{r['attempt']}", r["call_type"], r["model"], r["status"],
                      r["action"] or r["outcome"] or "-", str(r["agent_decision_id"] or "-"),
                      f"{tokens_in:,}/{r['output_tokens']:,}", f"{float(r['cost_usd']):.4f}",
                      r["thought"])
    Console(width=max(Console().width, 160)).print(table)


@daemon_app.command("experiments")
def experiments_(config: Optional[Path] = CONFIG_OPT, db: Optional[str] = DB_OPT,
                 deployment: Optional[str] = typer.Option(None, "--deployment",
                                                          help="Only this deployment's."),
                 status: Optional[str] = typer.Option(
                     None, "--status", help="proposed, running, accepted, rejected or "
                     "abandoned."),
                 json_: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the A/B experiments with their results: the change tried (control ->
    variant), who proposed it, observations per arm, mean effect, p value and verdict
    (accepted only when p < alpha and the effect reaches its minimum)."""
    from sqlalchemy import select

    from tradewarden.agent import experiments as ex
    from tradewarden.ledger import Ledger, schema
    if status is not None and status not in ex.STATUSES:
        raise _fail(f"--status {status}: use one of {', '.join(ex.STATUSES)}")
    loaded = settings_for(config, db)
    try:
        led = Ledger(loaded.ledger.url(), create=False)
        try:
            with led.engine.connect() as conn:
                names = dict(conn.execute(select(schema.deployments.c.deployment_id,
                                                 schema.deployments.c.name)).all())
            rows = ex.experiments(led, status=status)
            for r in rows:
                r["deployment"] = names.get(r["scope"], r["scope"])
                r["n"] = {k: len(v) for k, v in ex.observations(led, r["id"]).items()}
        finally:
            led.close()
    except _known_errors() as exc:
        raise _fail(str(exc)) from None
    if deployment is not None:
        rows = [r for r in rows if deployment in (r["deployment"], r["scope"])]
    if json_:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table
    table = Table(title=f"{len(rows)} experiment(s)")
    for col in ("id", "deployment", "name", "change", "status", "proposed by", "n (c/v)",
                "effect", "p", "verdict"):
        table.add_column(col, overflow="fold")
    for r in rows:
        res = r["result"] or {}
        effect, p = res.get("effect"), res.get("p_value")
        table.add_row(str(r["id"]), r["deployment"], r["name"],
                      f"{r['parameter']}: {r['control']} -> {r['variant']}", r["status"],
                      r["proposed_by"], f"{r['n'].get('control', 0)}/{r['n'].get('variant', 0)}",
                      "" if effect is None else f"{effect:+.4g}",
                      "" if p is None else f"{p:.3g}", str(res.get("reason") or ""))
    Console().print(table)


@daemon_app.command("set-autonomy")
def set_autonomy(level: int = typer.Option(..., "--level",
                                           help="1 recommend only, 2 supervised, 3 "
                                           "semi-autonomous, 4 autonomous."),
                 reason: str = typer.Option(..., "--reason", help="Why (recorded)."),
                 config: Optional[Path] = CONFIG_OPT, db: Optional[str] = DB_OPT,
                 by: Optional[str] = BY_OPT,
                 yes: bool = typer.Option(False, "--yes", help="L4: do not ask.")) -> None:
    """Set the autonomy level of every deployment of the daemon (recorded as a command
    by --by; the governor uses it from its next decision).

    L1: everything waits for a person. L2: positions over the recent average size, new
    symbols and all exits wait. L3: over twice the average and anomaly-triggered
    decisions wait. L4: only anomaly flags stop it. At every level the always-a-person
    triggers still stop it. L4 asks for confirmation unless --yes."""
    from tradewarden.cli_approvals import actor_name
    from tradewarden.ops.oversight import LEVEL_NAMES
    if level not in LEVEL_NAMES:
        raise _fail(f"--level {level}: give 1, 2, 3 or 4")
    if not reason.strip():
        raise _fail("--reason: say why the level changes")
    actor = actor_name(by)
    if level == 4 and not yes:
        if not sys.stdin.isatty():
            raise _fail("--level 4 lets the daemon trade without asking: pass --yes (or run it "
                        "in a terminal to confirm)")
        if not typer.confirm("Level 4: the daemon trades without asking anyone, stopped only "
                             "by anomaly flags. Set it?", default=False):
            raise _fail("not confirmed: the level is unchanged", code=1)
    with _oversight(config, db) as o:
        typer.echo(o.set_autonomy(level, by=actor, reason=reason))


@daemon_app.command("clear-anomaly")
def clear_anomaly(anomaly_id: int = typer.Argument(..., metavar="ID",
                                                   help="The anomaly (warden daemon status "
                                                   "lists the open ones; --json has ids)."),
                  reason: str = typer.Option(..., "--reason", help="Why it is over (recorded)."),
                  config: Optional[Path] = CONFIG_OPT, db: Optional[str] = DB_OPT,
                  by: Optional[str] = BY_OPT) -> None:
    """Clear an open anomaly: a person says the condition is over.

    While an anomaly is open every decision of its deployment waits for a person;
    clearing it (recorded with who and why) lets the autonomy level apply again. It
    does not undo the demotion the anomaly caused."""
    from tradewarden.agent import records
    from tradewarden.cli_approvals import actor_name
    from tradewarden.ledger import Ledger
    if not reason.strip():
        raise _fail("--reason: say why the anomaly is over")
    loaded = settings_for(config, db)
    try:
        led = Ledger(loaded.ledger.url(), create=False)
    except _known_errors() as exc:
        raise _fail(str(exc)) from None
    try:
        known = {a["id"]: a for a in records.anomalies(led, status=None)}
        if anomaly_id not in known:
            raise _fail(f"no anomaly {anomaly_id} in {led.url}")
        if known[anomaly_id]["status"] != "open":
            raise _fail(f"anomaly {anomaly_id} ({known[anomaly_id]['kind']}) is already cleared")
        records.clear_anomaly(led, anomaly_id, ts=int(time.time()), by=actor_name(by),
                              reason=reason)
    except _known_errors() as exc:
        raise _fail(str(exc)) from None
    finally:
        led.close()
    typer.echo(f"anomaly {anomaly_id} ({known[anomaly_id]['kind']}) cleared by "
               f"{actor_name(by)}: {reason}")


@daemon_app.command("override")
def override(decision_id: int = typer.Argument(..., metavar="ID",
                                               help="The agent decision (see `warden daemon "
                                               "audit`)."),
             approve_: bool = typer.Option(False, "--approve", help="Approve what it left "
                                           "waiting."),
             reject_: bool = typer.Option(False, "--reject", help="Reject it (needs --reason)."),
             reason: Optional[str] = typer.Option(None, "--reason", help="Why (recorded)."),
             config: Optional[Path] = CONFIG_OPT, db: Optional[str] = DB_OPT,
             by: Optional[str] = BY_OPT) -> None:
    """Approve or reject what an agent decision left waiting for a person.

    Its pending approval gets an approve or reject command in the deployment's inbox
    (recorded as an override of the decision, with --reason and --by); the engine acts
    on it before its next bar. Refused: an unknown decision, or one with nothing
    pending."""
    from tradewarden.cli_approvals import actor_name
    if approve_ == reject_:
        raise _fail("give --approve or --reject (one of them)")
    if reject_ and not (reason or "").strip():
        raise _fail("--reject needs --reason: say why")
    actor = actor_name(by)
    with _oversight(config, db) as o:
        typer.echo(o.override(decision_id, approve=approve_, reason=reason, by=actor))


def register(app: typer.Typer) -> None:
    """Add ``warden daemon`` to the CLI."""
    app.add_typer(daemon_app, name="daemon")


__all__ = ["daemon_app", "register"]
