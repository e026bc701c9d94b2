"""`warden replay --strategy put_writer`: the options desk over a chain, from the CLI.

Bad input is one line on stderr, exit 2, no traceback, no run.
"""

from __future__ import annotations

import gzip
import json
import sqlite3

from typer.testing import CliRunner

from tradewarden.cli import app
from tradewarden.data.equities import bundled_equity_path

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False, terminal_width=200,
                         env={"COLUMNS": "200"})


def test_put_writer_replays_the_bundled_spx_puts_with_a_report(tmp_path):
    db = tmp_path / "l.db"
    res = invoke("replay", "--strategy", "put_writer", "-p", "dte_min=0",
                 "-p", "close_days_before_expiry=0", "--db", str(db), "--out",
                 str(tmp_path / "r"), "--report-format", "json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)["report"]
    assert report["run"]["strategy"] == "put_writer"
    assert report["trades"]["closed_trades"] == 3
    assert report["trades"]["exit_reasons"] == {"end_of_data": 1, "expired": 1,
                                                "profit_target": 1}
    with sqlite3.connect(db) as c:
        config = json.loads(c.execute("select config from runs").fetchone()[0])
        assert config["capital"] == "100000" and config["params"]["underlying"] == "SPX"
        assert c.execute("select count(*) from option_fill_snapshots").fetchone()[0] == 5
    assert "options desk: 5 quote dates" in res.stderr


def test_a_user_chain_file_of_another_underlying_is_named_in_the_error(tmp_path):
    src = bundled_equity_path("spx_puts")
    mine = tmp_path / "chain.csv"
    mine.write_bytes(gzip.decompress(src.read_bytes()))
    res = invoke("replay", "--strategy", "put_writer", "--data", str(mine), "-p",
                 "underlying=NVDA", "--db", str(tmp_path / "l.db"))
    assert res.exit_code == 2 and "Traceback" not in res.output
    text = " ".join(res.stderr.split())
    assert text.startswith("error: ") and str(mine) in text and "NVDA" in text and "SPX" in text
    with sqlite3.connect(tmp_path / "l.db") as c:
        assert c.execute("select count(*) from runs").fetchone()[0] == 0


def test_a_bad_put_writer_parameter_names_the_flag(tmp_path):
    res = invoke("replay", "--strategy", "put_writer", "-p", "delta_min=-0.1", "-p",
                 "delta_max=-0.3", "--db", str(tmp_path / "l.db"))
    assert res.exit_code == 2 and "Traceback" not in res.output
    text = " ".join(res.stderr.split())
    assert "--param" in text and "delta_min" in text
