"""The HTML report in a real browser: Debian's headless Chromium, driven by Playwright.

A small real replay (bundled BTC-USD and ETH-USD 1h bars, January 2025) is reported by
``warden report --report-format html`` and the page is opened from ``file://``. Every
request the page makes is recorded (only the file itself: plotly.js is inline) and any
other is aborted; console messages and page errors are recorded (none may be an error).
Each chart must be drawn (plotly's ``.plot-container`` and ``.main-svg`` with a size,
the traces of its figure), a hover must show a trade's details, and zooming the price
row must move the volume row. A full-page screenshot is kept in
``warden-out/test-artifacts/`` (ignored by git) and under pytest's ``tmp_path``.

The browser is ``/usr/bin/chromium`` (never downloaded). Without it the tests skip,
unless ``TRADEWARDEN_REQUIRE_BROWSER`` is set (CI, ``.ci/run``): then they fail. The
variable is read when this module is imported, before the suite's session fixture
clears ``TRADEWARDEN_*`` variables.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from _page import figures

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
REQUIRE = bool(os.environ.get("TRADEWARDEN_REQUIRE_BROWSER"))
ARTIFACTS = Path(__file__).resolve().parents[2] / "warden-out" / "test-artifacts"


def _need_browser() -> None:
    if os.path.exists(CHROMIUM):
        return
    if REQUIRE:
        pytest.fail(f"{CHROMIUM} is missing and TRADEWARDEN_REQUIRE_BROWSER is set")
    pytest.skip(f"{CHROMIUM} is missing (set TRADEWARDEN_REQUIRE_BROWSER to fail instead)")


@pytest.fixture(scope="module")
def report_page(tmp_path_factory) -> Path:
    """``warden report RUN --report-format html`` of a January 2025 replay."""
    import tradewarden
    from tradewarden.cli import app

    root = tmp_path_factory.mktemp("browser")
    db = root / "ledger.db"
    run = tradewarden.replay(db=str(db), symbols="BTC-USD,ETH-USD", start="2025-01-01",
                             end="2025-02-01", risk={"max_consecutive_losses": 3})
    res = CliRunner().invoke(app, ["report", run.run_id, "--db", str(db), "--out",
                                   str(root), "--report-format", "html"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return root / f"{run.run_id}.html"


@pytest.fixture(scope="module")
def browser():
    _need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def test_report_renders_offline_without_errors(report_page: Path, browser, tmp_path) -> None:
    html = report_page.read_text(encoding="utf-8")
    expected = {name: len(traces) for name, (traces, _) in figures(html).items()}
    assert set(expected) == {"chart-equity", "chart-pnl", "chart-monthly", "chart-symbol-0",
                             "chart-symbol-1"}
    assert "Candles not shown" not in html                   # the bundled bars matched

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    requests: list[str] = []
    console: list[tuple[str, str]] = []
    url = report_page.as_uri()

    def route(r) -> None:
        requests.append(r.request.url)
        if r.request.url == url:
            r.continue_()
        else:
            r.abort()

    page.route("**/*", route)
    page.on("console", lambda m: console.append((m.type, m.text)))
    page.on("pageerror", lambda e: console.append(("pageerror", str(e))))
    page.goto(url, wait_until="load")
    page.wait_for_function(
        "Array.from(document.querySelectorAll('.plotly-graph-div'))"
        ".every(d => d.querySelector('.plot-container .main-svg'))", timeout=60_000)

    drawn = page.evaluate("""() => Array.from(document.querySelectorAll('.plotly-graph-div'))
        .map(d => {
            const svg = d.querySelector('.plot-container .main-svg').getBoundingClientRect();
            return [d.id, d.data.length, d._fullData.length, svg.width, svg.height,
                    d.querySelectorAll('.main-svg .trace, .main-svg .hm').length];
        })""")
    assert requests == [url]
    assert [m for m in console if m[0] in ("error", "pageerror")] == []
    assert {d[0]: d[1] for d in drawn} == expected
    for name, n, full, width, height, painted in drawn:
        assert full == n and width > 400 and height > 120 and painted > 0, name

    shot = tmp_path / "report.png"                 # the page as loaded: the test artefact
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, ARTIFACTS / "report-browser.png")

    # hover on the first entry marker of BTC-USD shows its time, price and reason
    text = page.evaluate("""() => {
        const d = document.getElementById('chart-symbol-0');
        const k = d.data.findIndex(t => t.name === 'entry');
        Plotly.Fx.hover(d, [{curveNumber: k, pointNumber: 0}], 'xy');
        return d.querySelector('.hoverlayer').textContent;
    }""")
    traces, _ = figures(html)["chart-symbol-0"]
    entry = next(t for t in traces if t["name"] == "entry")
    price, reason = entry["customdata"][0][2], entry["customdata"][0][3]
    assert text.startswith("entry 2025-01-") and f"price {price}" in text
    assert f"reason {reason}" in text

    # zoom the bottom row: the price and volume rows follow (one shared x axis)
    ranges = page.evaluate("""async () => {
        const d = document.getElementById('chart-symbol-0');
        const bottom = 'xaxis' + Object.keys(d._fullLayout._subplots.xaxis).length;
        await Plotly.relayout(d, {[bottom + '.range']: ['2025-01-10', '2025-01-12']});
        return [d._fullLayout.xaxis.range, d._fullLayout.xaxis2.range];
    }""")
    for r in ranges:
        assert r[0].startswith("2025-01-10") and r[1].startswith("2025-01-12")

    page.close()
