"""`warden data check PATH` and `warden data list --data DIR` stream user files through the checks."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from tradewarden.cli import app
from tradewarden.data.loaders import check_file

runner = CliRunner()
FIXTURES = Path(__file__).resolve().parents[1] / "data" / "fixtures"


def test_check_file_reports_each_symbol_of_a_symbol_column(tmp_path):
    lines = (FIXTURES / "btc_usd_1h_first50.csv").read_text().splitlines()
    two = tmp_path / "two.csv"
    two.write_text("symbol," + lines[0] + "\n"
                   + "\n".join(f"{s},{row}" for row in lines[1:] for s in ("ETH_USD", "BTC-USD")) + "\n")
    got = check_file(two)
    assert [s for s, _, _ in got] == ["BTC-USD", "ETH-USD"]
    assert all(q.rows == len(lines) - 1 and len(ts) == q.rows for _, ts, q in got)
    single = check_file(FIXTURES / "btc_usd_1h_gap.csv")
    assert single[0][0] == "btc_usd_1h_gap" and single[0][2].gaps == 1


def test_data_check_on_a_file_prints_its_gaps_and_a_bad_row_is_one_line(tmp_path):
    res = runner.invoke(app, ["data", "check", str(FIXTURES / "btc_usd_1h_gap.csv")], terminal_width=80)
    assert res.exit_code == 0, res.output
    assert "gaps 1" in res.stdout and "missing" in res.stdout
    bad = tmp_path / "bad.csv"
    text = (FIXTURES / "btc_usd_1h_first50.csv").read_text().splitlines()
    cells = text[5].split(",")
    cells[4] = "-3"                                    # close of data row 5
    text[5] = ",".join(cells)
    bad.write_text("\n".join(text) + "\n")
    res = runner.invoke(app, ["data", "check", str(bad)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "row 5 field 'close'" in " ".join(res.stderr.split())


def test_data_list_includes_a_directory_of_user_files_whole_at_80_columns(tmp_path):
    (tmp_path / "BTC-USD.csv").write_text((FIXTURES / "btc_usd_1h_first50.csv").read_text())
    res = runner.invoke(app, ["data", "list", "--data", str(tmp_path)], terminal_width=80)
    assert res.exit_code == 0, res.output
    text = " ".join(res.stdout.split())
    assert "BTC-USD.csv BTC-USD 1h 2024-04-18 2024-04-20 50 0 0 0" in text
    # long file names wrap in their column; every figure stays whole
    res = runner.invoke(app, ["data", "list", "--data", str(FIXTURES)], terminal_width=80)
    lines = res.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines) and "…" not in res.stdout
    vix = next(line for line in lines if line.startswith("vix"))
    assert vix.split()[-1] == "251"            # the last column is whole, not cropped
    gap = next(line for line in lines if line.startswith("btc_usd_1h_gap"))
    assert gap.split()[-4:] == ["40", "1", "5", "0"]
