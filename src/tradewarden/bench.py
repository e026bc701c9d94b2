"""Replay throughput and memory benchmark (``warden bench``).

Bars come from the bundled real Coinbase 1h series, tiled forward in time: each
copy is shifted to start one bar after the previous one ends and rescaled so its
first open equals the previous copy's last close, so every bar-to-bar return is a
real one. Bars are generated chunk by chunk, so neither the feed nor the engine
holds the whole history: peak memory should not grow with the number of bars.

Each measurement runs in a fresh process pinned to one CPU core, or to two
(``sched_setaffinity``), through the full path: strategy frame, per-bar decisions,
risk, simulated broker with brackets, and every decision, order, fill, trade and
equity snapshot written to a SQLite ledger. On one core the ledger is written inline;
on two, the ledger's writer thread ingests while the engine loop runs (SQLite
releases the GIL).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Iterator

import numpy as np

from tradewarden.domain import BarSeries, ExitReason, known_instrument

CHUNK = 16_384


def tiled_chunks(n_bars: int, n_symbols: int = 3, chunk: int = CHUNK) -> Iterator[dict[str, BarSeries]]:
    """Yield chunks of real bars tiled forward in time, ``n_bars`` in total.

    Parameters
    ----------
    n_bars : int
        Total bars over all symbols.
    n_symbols : int
        Number of symbols; the bundled BTC-USD, ETH-USD, SOL-USD series are cycled and
        named ``BTC-USD``, ``ETH-USD``, ``SOL-USD``, ``BTC-USD-2``...
    chunk : int
        Bars per symbol per chunk.
    """
    from tradewarden.data import load_market_data

    loaded = load_market_data(None)
    base = [loaded.series[s] for s in ("BTC-USD", "ETH-USD", "SOL-USD")]
    names = bench_symbols(n_symbols)
    per_symbol = -(-n_bars // n_symbols)
    step = 3600
    state = []
    for j in range(n_symbols):
        src = base[j % 3]
        state.append({"src": src, "pos": 0, "scale": 1.0, "t": int(src.ts[0])})
    produced = 0
    while produced < per_symbol:
        take = min(chunk, per_symbol - produced)
        out = {}
        for j, st in enumerate(state):
            parts = {k: [] for k in ("open", "high", "low", "close", "volume")}
            got = 0
            while got < take:
                src = st["src"]
                if st["pos"] >= len(src):
                    st["scale"] *= float(src.close[-1]) / float(src.open[0])
                    st["pos"] = 0
                n = min(take - got, len(src) - st["pos"])
                sl = slice(st["pos"], st["pos"] + n)
                for k in ("open", "high", "low", "close"):
                    parts[k].append(getattr(src, k)[sl] * st["scale"])
                parts["volume"].append(src.volume[sl])
                st["pos"] += n
                got += n
            ts = st["t"] + step * np.arange(take, dtype=np.int64)
            st["t"] = int(ts[-1]) + step
            out[names[j]] = BarSeries(names[j], "1h", ts, *(np.concatenate(parts[k]) for k in
                                                           ("open", "high", "low", "close", "volume")),
                                      source="bench: bundled real data, tiled")
        produced += take
        yield out


def bench_symbols(n: int) -> list[str]:
    """Names of the benchmark symbols."""
    base = ["BTC-USD", "ETH-USD", "SOL-USD"]
    return [base[j % 3] + ("" if j < 3 else f"-{j // 3 + 1}") for j in range(n)]


def measure(n_bars: int, n_symbols: int = 3, db: str | None = None, background: bool = True) -> dict:
    """Replay ``n_bars`` through the full engine path in this process and measure it.

    ``background`` applies ledger writes on the ledger's writer thread (as ``warden
    replay`` does); the clock stops only when every row is written.

    Returns
    -------
    dict
        ``bars``, ``seconds``, ``bars_per_second``, ``peak_rss_mb``, ``trades``,
        ``decisions_in_ledger``.
    """
    from sqlalchemy import func, select

    from tradewarden.ops.replay import batch_gc
    from tradewarden.ledger import Ledger, schema
    from tradewarden.ops.kernel import assemble
    from tradewarden.risk import RiskConfig
    from tradewarden.strategy import build_strategy

    tmp = None
    if db is None:
        tmp = tempfile.TemporaryDirectory(prefix="warden-bench-")
        db = str(Path(tmp.name) / "bench.db")
    names = bench_symbols(n_symbols)
    instruments = {}
    for n in names:
        instruments[n] = replace(known_instrument(n[:7]), symbol=n)
    ledger = Ledger(db, background=background)
    run_id = "bench" + os.urandom(4).hex()
    strategy = build_strategy("donchian")
    ledger.create_run({"run_id": run_id, "mode": "replay", "capital_mode": "independent",
                       "market_time_basis": "bench", "data_integrity": "ok", "config_hash": "bench",
                       "config": "{}", "strategy": strategy.name, "symbols": json.dumps(names),
                       "timeframe": "1h", "initial_capital": Decimal(10000)})
    kernel = assemble("replay", run_id=run_id, strategy=strategy, instruments=instruments,
                      ledger=ledger, capital=Decimal(10000), risk=RiskConfig(max_drawdown_halt=1.0))
    engine = kernel.engine
    feed_seconds = 0.0

    def timed_feed():
        nonlocal feed_seconds
        gen = tiled_chunks(n_bars, n_symbols)
        while True:
            f0 = time.perf_counter()
            chunk = next(gen, None)
            feed_seconds += time.perf_counter() - f0
            if chunk is None:
                return
            yield chunk

    t0 = time.perf_counter()
    with batch_gc():            # as run_replay does
        kernel.run(timed_feed(), heartbeat=False, close=ExitReason.END_OF_DATA)
        ledger.drain()
    seconds = time.perf_counter() - t0 - feed_seconds
    with ledger.engine.connect() as conn:
        n_dec = conn.execute(select(func.count()).select_from(schema.decisions)
                             .where(schema.decisions.c.run_id == run_id)).scalar_one()
    ledger.close()
    if tmp is not None:
        tmp.cleanup()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"bars": engine.counts.bars, "seconds": round(seconds, 3),
            "bars_per_second": round(engine.counts.bars / seconds),
            "feed_seconds": round(feed_seconds, 3),
            "peak_rss_mb": round(peak_kb / 1024, 1), "trades": engine.counts.trades_closed,
            "decisions_in_ledger": n_dec}


def measure_in_child(n_bars: int, n_symbols: int, db: str | None = None, cores: int = 1) -> dict:
    """Run :func:`measure` in a fresh interpreter pinned to ``cores`` CPU cores.

    With one core the ledger is written inline (no writer thread); with two or more
    the ledger's writer thread applies batches while the engine loop goes on.
    """
    cmd = [sys.executable, "-m", "tradewarden.bench", str(n_bars), str(n_symbols), str(cores)]
    if db:
        cmd.append(db)
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark child failed: {out.stderr.strip().splitlines()[-1:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["cores"] = cores
    return result


def run_bench(*, bars: int, n_symbols: int, db: str | None, memory_sizes: list[int], console) -> list[dict]:
    """Print throughput for ``bars`` on one and two cores and a peak-memory scan."""
    from rich.table import Table

    plan = [(n, 1) for n in sorted(set(memory_sizes + [bars]))]
    if (os.cpu_count() or 1) >= 2:
        plan.append((bars, 2))
    rows = []
    with console.status("benchmarking (each run in a fresh process pinned to its cores)..."):
        for n, cores in plan:
            rows.append(measure_in_child(n, n_symbols, db, cores))
    table = Table(title="warden bench: full path, every decision written to the SQLite ledger",
                  box=None, header_style="bold")
    for col in ("bars", "cores", "ledger", "seconds", "bars/s", "peak RSS MB", "trades", "decisions"):
        table.add_column(col, justify="right", no_wrap=True)
    for r in rows:
        table.add_row(f"{r['bars']:,}", str(r["cores"]), "inline" if r["cores"] == 1 else "thread",
                      f"{r['seconds']:.2f}", f"{r['bars_per_second']:,}", f"{r['peak_rss_mb']:.0f}",
                      f"{r['trades']:,}", f"{r['decisions_in_ledger']:,}")
    console.print(table)
    return rows


# ---------------------------------------------------------------------------------------
# a large file: the whole replay process and its report, peak memory against targets

#: Peak-RSS targets (MB) of a 3,000,000-bar file: its replay, and its report alone.
FILE_TARGETS_MB = {"replay": 600, "report": 400}


def write_minute_csv(path: Path, n_bars: int, seed: int = 42, block: int = 500_000) -> None:
    """Write ``n_bars`` one-minute OHLCV bars to a CSV, block by block.

    Prices are a geometric random walk of 16 sub-steps per bar (open the first
    sub-step, close the last, high and low the extremes; 0.08 % volatility per
    minute), rounded to a 0.01 tick; timestamps are ``YYYY-MM-DD HH:MM:SS`` bar open
    times in UTC from 2020-01-01. The same shape as the peer benchmark's file.

    Parameters
    ----------
    path : pathlib.Path
    n_bars : int
    seed : int
    block : int
        Bars generated and written at a time (memory bound).
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    last = np.log(30_000.0)
    t0 = np.datetime64("2020-01-01T00:00:00", "s")
    sigma = 0.0008 / 4.0
    with open(path, "wb") as fh:
        for start in range(0, n_bars, block):
            n = min(block, n_bars - start)
            steps = rng.normal(-0.5 * sigma ** 2, sigma, size=(n, 16))
            logp = last + np.cumsum(steps.ravel()).reshape(n, 16)
            last = float(logp[-1, -1])
            path_ = np.exp(logp)
            o, c = np.round(path_[:, 0], 2), np.round(path_[:, -1], 2)
            h = np.maximum(np.round(path_.max(axis=1), 2), np.maximum(o, c))
            lo = np.minimum(np.round(path_.min(axis=1), 2), np.minimum(o, c))
            ts = np.datetime_as_string(t0 + np.arange(start, start + n) * np.timedelta64(60, "s"))
            table = pa.table({"timestamp": pa.array(np.char.replace(ts, "T", " ")), "open": o,
                              "high": h, "low": lo, "close": c,
                              "volume": np.round(rng.lognormal(1.0, 1.0, n), 4) + 0.0001})
            pacsv.write_csv(table, fh, pacsv.WriteOptions(include_header=start == 0,
                                                          quoting_style="none"))


#: Runs a command from a small process and writes "peak-RSS-KB seconds exit-code" to a
#: file. Linux counts the memory a child had before ``exec`` (a copy of its parent's)
#: in its peak, so a child forked from this process, which holds bars and libraries,
#: would report at least this process's size; forked from a bare interpreter it does not.
_LAUNCHER = """
import os, sys, time
t = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as fh:
    fh.write(f"{usage.ru_maxrss} {time.perf_counter() - t} {os.waitstatus_to_exitcode(status)}")
"""


def _child(cmd: list[str]) -> tuple[float, float, str]:
    """Run ``cmd``; return (seconds, peak RSS in MB of that process alone, stdout).

    Raises
    ------
    RuntimeError
        When the command fails (the message has its last line of stderr).
    """
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result"
        done = subprocess.run([sys.executable, "-S", "-c", _LAUNCHER, str(result), *cmd],
                              capture_output=True, text=True, check=False)
        kb, seconds, code = result.read_text().split()
    if int(code) != 0:
        tail = done.stderr.strip().splitlines()[-1:]
        raise RuntimeError(f"{' '.join(cmd[3:5])} failed: {tail}")
    return float(seconds), int(kb) / 1024, done.stdout


def measure_file(n_bars: int, console=None) -> list[dict]:
    """Write an ``n_bars`` one-minute CSV, replay it and report on it, each a fresh process.

    The replay is ``warden replay --data FILE`` with the textbook Donchian (1 unit, no
    bracket, JSON report: the file streamed, every decision recorded); then
    ``warden report RUN_ID`` as JSON and as HTML. Peak RSS is each process's own
    (``wait4``).

    Returns
    -------
    list of dict
        ``step``, ``seconds``, ``peak_rss_mb`` and ``target_mb`` (``None`` for the HTML
        page, which has none) per step, plus ``bars``, ``csv_mb`` and ``trades``.
    """
    warden = [sys.executable, "-m", "tradewarden.cli"]
    with tempfile.TemporaryDirectory(prefix="warden-bench-") as tmp:
        root = Path(tmp)
        csv = root / f"bars_{n_bars}.csv"
        write_minute_csv(csv, n_bars)
        csv_mb = csv.stat().st_size / 1e6
        db, out = str(root / "ledger.db"), str(root / "reports")
        seconds, rss, text = _child(warden + [
            "replay", "--data", str(csv), "--symbols", "BTC-USD", "-p", "use_bracket=false",
            "--sizing", "fixed:1", "--capital", "1000000000", "--slippage-bps", "0",
            "--set", "risk.max_drawdown_halt=off", "--set", "risk.daily_loss_limit=off",
            "--set", "risk.max_consecutive_losses=off",
            "--db", db, "--out", out, "--report-format", "json"])
        doc = json.loads(text)
        run_id, trades = doc["run_id"], doc["report"]["trades"]["closed_trades"]
        rows = [{"step": "replay + JSON report", "seconds": seconds, "peak_rss_mb": rss,
                 "target_mb": FILE_TARGETS_MB["replay"]}]
        # The target is the report itself (console or JSON); the HTML page carries an
        # exact marker per trade entry and exit (Plotly), so its size grows with the trades.
        for fmt, target in (("json", FILE_TARGETS_MB["report"]), ("html", None)):
            seconds, rss, _ = _child(warden + ["report", run_id, "--db", db, "--out", out,
                                               "--report-format", fmt])
            rows.append({"step": f"report ({fmt})", "seconds": seconds, "peak_rss_mb": rss,
                         "target_mb": target})
    for r in rows:
        r.update(bars=n_bars, csv_mb=csv_mb, trades=trades)
    return rows


def print_file_rows(rows: list[dict], console) -> None:
    """Print :func:`measure_file`'s rows as a table."""
    from rich.table import Table
    first = rows[0]
    table = Table(title=f"a {first['csv_mb']:.0f} MB CSV of {first['bars']:,} one-minute bars, "
                        f"{first['trades']:,} trades, each step a fresh process",
                  box=None, header_style="bold")
    for col in ("step", "seconds", "peak RSS MB", "target MB", "met"):
        table.add_column(col, justify="left" if col == "step" else "right", no_wrap=True)
    for r in rows:
        target = r["target_mb"]
        table.add_row(r["step"], f"{r['seconds']:.1f}", f"{r['peak_rss_mb']:.0f}",
                      "-" if target is None else f"< {target}",
                      "-" if target is None else "yes" if r["peak_rss_mb"] < target else "NO")
    console.print(table)


if __name__ == "__main__":
    args = sys.argv[1:]
    n_cores = int(args[2]) if len(args) > 2 else 1
    if hasattr(os, "sched_setaffinity"):
        allowed = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, set(allowed[:n_cores]))
    result = measure(int(args[0]), int(args[1]) if len(args) > 1 else 3,
                     args[3] if len(args) > 3 else None, background=n_cores > 1)
    print(json.dumps(result))
