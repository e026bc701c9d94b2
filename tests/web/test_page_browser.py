"""The dashboard page end to end in a real browser: Debian's headless Chromium driven by
Playwright (``executable_path``, never a downloaded browser) against a real uvicorn server
on loopback, over the ledger of a paper deployment run in this process
(``oversight_support.Desk``: bundled BTC-USD / ETH-USD 1 h bars through the kernel and the
approval governor; its commands carried out by the engine's ``handle_commands``).

* without a token every ``/api`` call the page makes gets 401 and the page shows the token
  form; a wrong token is refused and asked for again; the right one shows the dashboard
  (the token only in the tab's sessionStorage and the header, never in a URL); log out;
  with no token configured (loopback) there is no form and no header;
* acting, on a phone-sized page: approve one approval and reject another with a reason,
  pause (with a reason) and resume; each lands in the ledger as a ``commands`` row by
  ``api:<token_name>`` and is then carried out by the engine (the approval approved or
  rejected with the reason, the engine paused and resumed), and the page shows the result;
  an approval someone else decided a moment earlier gets 409, its message shown and
  nothing written; the server gone, the page says so and keeps what it showed; a ledger
  that does not exist is said in one line;
* the page shows a live daemon (lock held, fresh heartbeat), the open position with its
  traffic light, the queue, the decision log with its reasoning, the full audit and a
  filter, equity and drawdown charts (plotly.js from the server), costs by day, runs and
  a run's report with its gates and trades;
* no request leaves the server's loopback address, and no console error or page error;
* at 390 px wide (a phone) the status bar and the queue are on screen, nothing is wider
  than the viewport, and tables scroll sideways inside their panel.

Screenshots are kept as test artefacts (``$TRADEWARDEN_ARTIFACTS`` or pytest's temporary
directory); ``TRADEWARDEN_UPDATE_SCREENSHOT=1`` also writes ``docs/dashboard.png``.
Without ``/usr/bin/chromium`` the tests skip, unless ``TRADEWARDEN_REQUIRE_BROWSER`` is set
(CI), when they fail.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ops"))
from oversight_support import Desk

from tradewarden.agent import records
from tradewarden.engine.engine import FLAT
from tradewarden.ops.api_settings import ApiSettings
from tradewarden.ops.daemon import DaemonLock, lock_path

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
TOKEN = "page-T0ken-7d1e-for-the-browser"
TOKEN_NAME = "browser-test"
ACTOR = f"api:{TOKEN_NAME}"
DOCS_PNG = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"
# read at import: the suite's session fixture removes every TRADEWARDEN_* variable
REQUIRE_BROWSER = bool(os.environ.get("TRADEWARDEN_REQUIRE_BROWSER"))
ARTIFACTS = os.environ.get("TRADEWARDEN_ARTIFACTS")
UPDATE_SCREENSHOT = bool(os.environ.get("TRADEWARDEN_UPDATE_SCREENSHOT"))
#: A phone: 390 CSS px wide (an iPhone 12-15), touch, a 2x screen.
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True,
         "device_scale_factor": 2}
WAIT_MS = 30_000      # generous: a 2-core machine busy with other tests parses plotly.js slowly


def _need_browser(required: bool | None = None, chromium: Path | None = None):
    """Playwright's sync API, or skip (fail when ``TRADEWARDEN_REQUIRE_BROWSER`` is set)."""
    required = REQUIRE_BROWSER if required is None else required
    chromium = chromium or CHROMIUM
    why = None
    if not chromium.exists():
        why = f"{chromium} is missing (apt-get install chromium)"
    else:
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            why = "playwright is not installed (pip install -e '.[test]')"
    if why is not None:
        if required:
            pytest.fail(f"TRADEWARDEN_REQUIRE_BROWSER is set but {why}")
        pytest.skip(why)
    return sync_playwright


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium, once for the module."""
    sync_playwright = _need_browser()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def test_a_missing_browser_skips_unless_required(tmp_path):
    gone = tmp_path / "chromium"
    with pytest.raises(pytest.skip.Exception, match="chromium is missing"):
        _need_browser(required=False, chromium=gone)
    with pytest.raises(pytest.fail.Exception, match="TRADEWARDEN_REQUIRE_BROWSER is set but"):
        _need_browser(required=True, chromium=gone)


class Server:
    """The dashboard's app under uvicorn on a free loopback port, on a thread."""

    def __init__(self, desk: Desk, token: str | None = TOKEN, clock=None,
                 db: Path | None = None) -> None:
        import uvicorn

        from tradewarden.web.app import create_app
        api = ApiSettings(token=token, token_name=TOKEN_NAME, write_limit_per_minute=1000)
        app = create_app(str(db or desk.db), api, clock=clock or desk.clock.now,
                         stop_approach_fraction=0.05)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the dashboard server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        """Ask uvicorn to finish, wait for its thread, close the socket (again: no-op)."""
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


class Watch:
    """Every request, console error and page error of a browser context; a request to
    anything but the server is aborted and recorded."""

    def __init__(self, context, base: str) -> None:
        self.base = urlsplit(base).netloc
        self.requests: list[str] = []
        self.outside: list[str] = []
        self.errors: list[str] = []
        self.api: list[tuple[str, int, str | None]] = []
        self.no_plotly = False
        context.route("**/*", self._route)
        context.on("request", lambda r: self.requests.append(r.url))
        context.on("response", self._response)
        context.on("console", lambda m: self.errors.append(f"console {m.text}")
                   if m.type == "error" else None)
        context.on("weberror", lambda e: self.errors.append(f"page error {e.error}"))

    def _route(self, route) -> None:
        url = urlsplit(route.request.url)
        if url.scheme in ("http", "https", "ws", "wss") and url.netloc != self.base:
            self.outside.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    def _response(self, r) -> None:
        if "/api/" in r.url:
            self.api.append((r.url, r.status, r.request.headers.get("authorization")))

    def unexpected(self, allow_401: bool = False) -> list[str]:
        """Console or page errors, less the browser's own line for an expected 401 and
        for plotly.js when a test refused it (:func:`_open`)."""
        return [e for e in self.errors
                if not (allow_401 and "status of 401" in e)
                and not (self.no_plotly and "net::ERR_FAILED" in e)]


def _open(browser, server: Server, plotly: bool = True, **kwargs):
    """A new browser context (``kwargs``: viewport and such) watched, its page at the
    server. ``plotly=False`` refuses plotly.js (the charts' failure path, and several
    seconds of parsing saved in a test about something else)."""
    context = browser.new_context(**kwargs)
    watch = Watch(context, server.url)
    if not plotly:
        context.route("**/static/plotly.min.js", lambda route: route.abort())
        watch.no_plotly = True
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(server.url)
    return context, page, watch


def _login(page, token: str = TOKEN, watch: Watch | None = None) -> None:
    """Type the token in the form; with ``watch``, wait for the dashboard and check that
    the only console errors so far are the browser's lines for the 401s before it (the
    page tries without a token first), then forget them."""
    page.wait_for_selector("#login-token", state="visible")
    page.fill("#login-token", token)
    page.click("#login-form button[type=submit]")
    if watch is not None:
        page.wait_for_selector("#dashboard", state="visible")
        assert watch.unexpected(allow_401=True) == []
        watch.errors.clear()


def _artefact(tmp_path: Path, name: str) -> Path:
    base = Path(ARTIFACTS or tmp_path)
    base.mkdir(parents=True, exist_ok=True)
    return base / name


def _record_eth_decision(desk: Desk) -> int:
    """The agent decision and ``queue`` verdict of the pending ETH intent (as the reasoner
    and the governor record them; the same rows as ``Desk.build``), and two reasoning
    calls; return the decision's id."""
    eth = desk.pending_approval("ETH-USD")
    did = records.record_decision(
        desk.ledger, deployment_id=desk.dep_id, run_id=desk.run_id, ts=int(eth["ts"]),
        event_kind="entry_signal", reasoner="default", autonomy_level=1,
        context={"positions": [{"symbol": "BTC-USD"}], "autonomy_level": 1},
        output={"action": "EXECUTE_TRADES", "target_symbols": ["ETH-USD"], "confidence": 0.7,
                "reasoning": "ETH broke its 6-bar high", "key_factors": ["breakout"],
                "risks_considered": ["thin volume"]},
        symbol="ETH-USD", decision_seq=int(eth["decision_seq"]))
    records.record_verdict(desk.ledger, agent_decision_id=did, deployment_id=desk.dep_id,
                           ts=int(eth["ts"]), autonomy_level=1, verdict="queue",
                           reason="L1: every trade waits for a person")
    now = desk.clock.now()
    for ts, model, cost in ((now - 3600, "m-large", 0.012), (now - 90_000, "m-large", 0.02)):
        records.record_cost(desk.ledger, ts=ts, provider="p", model=model, call_type="decide",
                            input_tokens=1200, output_tokens=150, cost_usd=cost)
    return did


def test_without_a_token_configured_the_page_needs_no_login(browser, built):
    desk, _ = built
    server = Server(desk, token=None)               # loopback only, as warden serve allows
    context, page, watch = _open(browser, server, plotly=False)
    try:
        page.wait_for_selector(f"#queue-table tbody tr[data-approval='{desk.eth_approval}']")
        assert page.is_hidden("#login") and page.is_hidden("#btn-logout")
        assert watch.api and all(s == 200 and a is None for _, s, a in watch.api), watch.api
        assert watch.outside == [] and watch.unexpected() == []
    finally:
        context.close()
        server.stop()


def test_a_ledger_that_cannot_be_read_is_said_in_one_line(browser, built, tmp_path):
    desk, _ = built
    server = Server(desk, token=None, db=tmp_path / "nowhere.db")
    context, page, watch = _open(browser, server)
    try:
        page.wait_for_selector("#st-alive[data-state='bad']")
        assert page.inner_text("#st-alive") == "server error 503"
        text = page.inner_text("#notice")
        assert "no ledger at" in text and "nowhere.db" in text and "retrying" in text
        assert page.is_hidden("#dashboard") and page.is_hidden("#login")
        assert watch.outside == []
        assert [e for e in watch.errors if "status of 503" not in e] == []
    finally:
        context.close()
        server.stop()


def _fits_a_phone(page, tmp_path: Path) -> None:
    """At 390 px: the status bar and the queue on the first screen, nothing wider than the
    viewport, the queue as cards with both buttons on screen, the positions table
    scrolling sideways inside its panel; a screenshot kept."""
    page.evaluate("window.scrollTo(0, 0)")
    width = page.evaluate("document.documentElement.clientWidth")
    assert width == 390                              # the meta viewport is honoured
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    for sel in ("#statusbar", "#queue", "#positions", "#decisions", "#charts", "#costs",
                "#runs"):
        box = page.locator(sel).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, sel
    bar = page.locator("#statusbar").bounding_box()
    assert bar["y"] == 0 and bar["height"] < 400
    assert page.is_visible("#st-alive") and page.is_visible("#st-queue")
    assert page.locator("#queue").bounding_box()["y"] < 844        # on the first screen
    for sel in ("#queue-table button.approve", "#queue-table button.reject",
                "#queue-table td.why"):
        box = page.locator(sel).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, sel
    scroll = page.locator("#positions .scroll")
    assert scroll.evaluate("e => getComputedStyle(e).overflowX") == "auto"
    assert scroll.evaluate("e => e.scrollWidth > e.clientWidth")
    shot = _artefact(tmp_path, "dashboard-phone.png")
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000


def _commands(desk: Desk) -> list[dict]:
    return desk.ledger.commands(deployment_id=desk.dep_id)


def _beat(desk: Desk) -> None:
    """A heartbeat of the daemon ``d1`` now (wall clock)."""
    desk.ledger.daemon_heartbeat("d1", status="running", deployments=["desk"],
                                 activity="waiting for the candles due at 03:00Z")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The oversight desk played to bar 8 (open BTC with a stop, ETH waiting for a person)
    with a daemon alive on it (this process holds the ledger's daemon lock and has just
    beaten), two reasoning calls of the last days, and a token-protected server over it
    on the wall clock."""
    desk = Desk(tmp_path_factory.mktemp("page")).build()
    lock = DaemonLock(lock_path(str(desk.db)))
    lock.acquire()
    _beat(desk)
    now = int(time.time())
    for ts, model, cost in ((now - 60, "m-large", 0.011), (now - 86_400, "m-small", 0.0004)):
        records.record_cost(desk.ledger, ts=ts, provider="p", model=model, call_type="decide",
                            input_tokens=900, output_tokens=120, cost_usd=cost)
    server = Server(desk, clock=time.time)
    yield desk, server
    server.stop()
    lock.release()
    desk.ledger.close()


def test_without_a_token_every_call_is_refused_and_the_page_asks_for_one(browser, built):
    _, server = built
    context, page, watch = _open(browser, server, plotly=False, **PHONE)
    try:
        page.wait_for_selector("#login", state="visible")
        assert page.is_hidden("#dashboard")
        assert "needs its API token" in page.inner_text("#login-message")
        assert watch.api, "the page made no API call"
        assert all(status == 401 and auth is None for _, status, auth in watch.api), watch.api
        # a wrong token: refused, the form again, nothing shown
        _login(page, "not-the-token")
        page.wait_for_function("document.querySelector('#login-message').textContent"
                               ".includes('refused')")
        assert page.is_visible("#login") and page.is_hidden("#dashboard")
        assert page.evaluate("sessionStorage.getItem('tradewarden.token')") is None
        # the right one: the dashboard, the token only in this tab's storage and the header
        n = len(watch.api)
        _login(page)
        page.wait_for_selector("#dashboard", state="visible")
        page.wait_for_selector("#queue-table tbody tr")
        assert page.evaluate("sessionStorage.getItem('tradewarden.token')") == TOKEN
        assert page.evaluate("localStorage.length") == 0
        after = watch.api[n:]
        assert after and all(s == 200 and a == f"Bearer {TOKEN}" for _, s, a in after), after
        assert not any(TOKEN in url for url in watch.requests)
        # log out: the token is dropped and asked for again
        page.click("#btn-logout")
        page.wait_for_selector("#login", state="visible")
        assert page.evaluate("sessionStorage.getItem('tradewarden.token')") is None
        assert watch.outside == []
        assert watch.unexpected(allow_401=True) == []
    finally:
        context.close()


def test_the_page_shows_the_desk(browser, built, tmp_path):
    desk, server = built
    _beat(desk)                                  # fresh, however long the tests before took
    context, page, watch = _open(browser, server, viewport={"width": 1280, "height": 1100})
    try:
        _login(page, watch=watch)
        page.wait_for_selector("#positions-table tbody tr")
        # status bar: a daemon alive (this process holds the lock) that beat just now, L1,
        # not paused, one approval waiting
        assert page.inner_text("#st-alive") == f"alive (pid {os.getpid()})"
        assert page.inner_text("#st-heartbeat").endswith(" s ago")
        assert page.inner_text("#st-activity") == "waiting for the candles due at 03:00Z"
        assert page.inner_text("#st-autonomy") == "L1 recommend only"
        assert page.inner_text("#st-paused") == "not paused"
        assert page.inner_text("#st-queue") == "1"
        # the position with its traffic light, the figures of the engine
        row = page.locator("#positions-table tbody tr")
        assert row.count() == 1
        cells = row.locator("td").all_inner_texts()
        btc = desk.engine.by_name["BTC-USD"]
        light = row.get_attribute("data-light")
        assert light in ("green", "amber", "red") and cells[0].strip() == light
        assert cells[1:4] == ["desk", "BTC-USD", "open"]
        assert cells[4] == format(btc.holding.quantity.normalize(), "f")
        # the queue: the ETH approval, its quantity and the agent's reasoning
        q = page.locator("#queue-table tbody tr")
        assert q.count() == 1
        qcells = q.locator("td").all_inner_texts()
        assert qcells[0] == str(desk.eth_approval) and qcells[3:5] == ["ETH-USD", "enter_long"]
        assert "ETH broke its 6-bar high" in qcells[7]
        # the decision log: the reasoning, and the full audit when expanded
        page.click(f"#decision-list details[data-decision='{desk.decision_id}'] summary")
        page.wait_for_selector(f"#decision-list details[data-decision='{desk.decision_id}'] .audit dl")
        body = page.inner_text(f"#decision-list details[data-decision='{desk.decision_id}']")
        assert "ETH broke its 6-bar high" in body and "thin volume" in body
        assert "L1: every trade waits for a person" in body
        assert f"approval {desk.eth_approval}: pending" in body
        # the log's filter: another symbol shows nothing, clearing it shows the decision
        page.fill("#filter-symbol", "btc-usd")
        page.click("#decision-filter button[type=submit]")
        page.wait_for_selector("#decisions-empty:text('No decision matches the filter.')")
        assert any("symbol=BTC-USD" in u for u in watch.requests)
        page.click("#decision-filter button[type=reset]")
        page.wait_for_selector(f"#decision-list details[data-decision='{desk.decision_id}'][open]")
        page.fill("#filter-symbol", "ETH-USD")
        page.fill("#filter-action", "EXECUTE_TRADES")
        page.click("#decision-filter button[type=submit]")
        page.wait_for_selector("#decisions-empty", state="hidden")
        assert page.locator("#decision-list > li").count() == 1
        page.click("#decision-filter button[type=reset]")
        page.wait_for_function("!document.querySelector('#filter-symbol').value")
        # equity and drawdown drawn by plotly (served by this server, not a CDN), loaded
        # once the charts come into view; costs by day
        page.locator("#charts").scroll_into_view_if_needed()
        page.wait_for_selector("#chart-equity .main-svg")
        page.wait_for_selector("#chart-drawdown .main-svg")
        legend = page.locator("#chart-equity .legend .traces").all_text_contents()
        assert [t.strip() for t in legend] == ["BTC-USD", "ETH-USD", "total"]
        page.wait_for_selector("#costs-table tbody tr")
        costs = page.locator("#costs-table tbody tr")
        assert costs.count() == 2 and "m-small" in costs.nth(0).inner_text()
        assert page.inner_text("#costs-total") == "(7 days: 2 calls, 0.0114 USD)"
        # the thought log: a model call recorded now shows on "Show" for its UTC day
        from tradewarden.agent.calls import record_call
        from tradewarden.agent.costs import Usage
        from tradewarden.ops.reasoning_settings import DEFAULT_PRICES
        now = desk.clock.now()
        record_call(desk.ledger, ts=now - 60, cycle="event:3", call_type="decide", attempt=1,
                    provider="anthropic", model="claude-haiku-5-5", status="ok",
                    request={"context": {}}, response=None, latency_ms=500,
                    parsed={"action": "MONITOR_ONLY", "reasoning": "Volume too thin\nmore"},
                    error=None, usage=Usage(1000, 100), prices=DEFAULT_PRICES,
                    deployment_id=desk.dep_id)
        page.fill("#thoughts-day", time.strftime("%Y-%m-%d", time.gmtime(now - 60)))
        page.click("#thoughts-form button[type=submit]")
        page.wait_for_selector("#thoughts-table tbody tr")
        row = page.locator("#thoughts-table tbody tr").nth(0).inner_text()
        assert "event:3 #1" in row and "MONITOR_ONLY" in row and "Volume too thin" in row
        assert "more" not in row and page.is_hidden("#thoughts-empty")
        for chart in ("#chart-equity", "#chart-drawdown"):           # inside their panel
            inner = page.locator(chart).bounding_box()
            panel = page.locator("#charts").bounding_box()
            assert inner["x"] + inner["width"] <= panel["x"] + panel["width"], chart
        page.evaluate("window.scrollTo(0, 0)")
        page.mouse.move(0, 0)                          # no hover label in the picture
        shot = _artefact(tmp_path, "dashboard-desktop.png")
        page.screenshot(path=str(shot))
        assert shot.stat().st_size > 20_000
        if UPDATE_SCREENSHOT:
            DOCS_PNG.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(DOCS_PNG))
        # runs, a run's report (headline figures and gates) and its trades
        page.wait_for_selector("#runs-table tbody tr[data-run='run1']")
        page.click("#runs-table tbody tr[data-run='run1'] button:text('Report')")
        page.wait_for_selector("#run-report-table tbody tr[data-gate]")
        report = page.inner_text("#run-report-table")
        assert "trades closed\t1" in report and "gate min_closed_trades\tFAIL" in report
        page.wait_for_function("document.querySelector('#run-trades summary').textContent"
                               " === 'trades (1)'")
        assert page.get_attribute("#run-report-json", "href").startswith("blob:")
        page.screenshot(path=str(_artefact(tmp_path, "dashboard-desktop-full.png")),
                        full_page=True)
        assert watch.outside == [] and watch.unexpected() == []
        assert any(u.endswith("/static/plotly.min.js") for u in watch.requests)
    finally:
        context.close()


def test_approve_reject_pause_and_resume_from_a_phone_land_in_the_ledger(browser, tmp_path):
    desk = Desk(tmp_path)
    desk.to(1)                                   # BTC's entry waits for a person
    server = Server(desk)
    context, page, watch = _open(browser, server, plotly=False, **PHONE)
    try:
        _login(page, watch=watch)
        btc = desk.pending_approval("BTC-USD")["id"]
        page.wait_for_selector(f"#queue-table tbody tr[data-approval='{btc}']")
        # approve from the page: a command by api:<token name>, carried out by the engine
        page.click(f"#queue-table tr[data-approval='{btc}'] button.approve")
        page.wait_for_function("document.querySelector('#notice').textContent"
                               f".includes('approve approval {btc}')")
        (cmd,) = desk.ledger.pending_commands(desk.dep_id)
        assert (cmd["kind"], cmd["target"], cmd["actor"]) == ("approve", str(btc), ACTOR)
        assert cmd["created_at"]
        page.wait_for_selector(f"#queue-table tr[data-approval='{btc}'] td.acts:text('approve queued')")
        ((_, status, result),) = desk.act()
        assert status == "done" and result.startswith(f"approval {btc} approved")
        assert desk.ledger.approval(btc)["acted_by"] == ACTOR
        assert desk.engine.by_name["BTC-USD"].state != FLAT
        # the desk trades on: BTC exits at bar 4 and wants in again at 6
        desk.to(6)
        again = desk.pending_approval("BTC-USD")["id"]
        page.click("#btn-refresh")
        approve = f"#queue-table tr[data-approval='{again}'] button.approve"
        page.wait_for_selector(approve)
        # someone else (the CLI) approves it a moment before the page's click reaches the
        # server: the page gets 409, says why, writes nothing, and the row then shows the
        # other person's command waiting
        def bob_first(route):
            desk.ledger.enqueue_command(desk.dep_id, "approve", actor="cli:bob",
                                        target=str(again))
            route.fallback()

        page.route(f"**/api/decisions/{again}/approve", bob_first)
        page.click(approve)
        page.wait_for_function("document.querySelector('#notice').textContent"
                               f".includes('approval {again} already has command')")
        assert "(approve by cli:bob)" in page.inner_text("#notice")
        assert [e for e in watch.unexpected() if "status of 409" not in e] == []
        watch.errors.clear()                     # the browser's own line for the 409
        (cmd,) = desk.ledger.pending_commands(desk.dep_id)
        assert cmd["actor"] == "cli:bob"
        page.wait_for_selector(f"#queue-table tr[data-approval='{again}'] "
                               "td.acts:text('approve queued')")
        assert [r[1] for r in desk.act()] == ["done"]
        desk.to(8)                               # BTC open with a stop; ETH waits at 8
        _record_eth_decision(desk)
        eth = desk.pending_approval("ETH-USD")["id"]
        page.click("#btn-refresh")
        page.wait_for_selector(f"#queue-table tbody tr[data-approval='{eth}']")
        page.wait_for_selector("#positions-table tbody tr[data-symbol='BTC-USD']")
        assert "ETH-USD" in page.inner_text("#queue-table tbody tr")
        _fits_a_phone(page, tmp_path)
        # reject from the page: the reason is asked for, required, and recorded
        page.click(f"#queue-table tr[data-approval='{eth}'] button.reject")
        page.wait_for_selector("#reason-dialog[open]")
        page.click("#reason-ok")                          # empty: refused by the form
        assert page.is_visible("#reason-dialog")
        assert not [c for c in _commands(desk) if c["kind"] == "reject"]
        page.fill("#reason-text", "earnings season: no new ETH")
        page.click("#reason-ok")
        page.wait_for_function("document.querySelector('#notice').textContent"
                               f".includes('reject approval {eth}')")
        (cmd,) = desk.ledger.pending_commands(desk.dep_id)
        assert (cmd["kind"], cmd["target"], cmd["actor"], cmd["reason"]) == (
            "reject", str(eth), ACTOR, "earnings season: no new ETH")
        ((_, status, _),) = desk.act()
        row = desk.ledger.approval(eth)
        assert (status, row["status"], row["acted_by"], row["reason"]) == (
            "done", "rejected", ACTOR, "earnings season: no new ETH")
        page.click("#btn-refresh")
        page.wait_for_selector("#queue-empty", state="visible")
        # pause with a reason, then resume
        page.click("#btn-pause")
        page.fill("#reason-text", "FOMC at 14:00")
        page.click("#reason-ok")
        page.wait_for_function("document.querySelector('#notice').textContent"
                               ".includes('pause queued')")
        (cmd,) = desk.ledger.pending_commands(desk.dep_id)
        assert (cmd["kind"], cmd["actor"], cmd["reason"]) == ("pause", ACTOR, "FOMC at 14:00")
        assert [r[1] for r in desk.act()] == ["done"] and desk.engine.paused
        page.click("#btn-refresh")
        page.wait_for_selector("#st-paused[data-state='paused']")
        assert page.inner_text("#st-paused") == "PAUSED"
        page.click("#btn-resume")
        page.click("#reason-ok")                            # confirm: no reason needed
        page.wait_for_function("document.querySelector('#notice').textContent"
                               ".includes('resume queued')")
        (cmd,) = desk.ledger.pending_commands(desk.dep_id)
        assert (cmd["kind"], cmd["actor"]) == ("resume", ACTOR)
        assert [r[1:] for r in desk.act()] == [("done", "resumed")] and not desk.engine.paused
        page.click("#btn-refresh")
        page.wait_for_selector("#st-paused[data-state='running']")
        # plotly.js refused in this test: the charts say so, everything else works
        page.locator("#charts").scroll_into_view_if_needed()
        page.wait_for_selector("#charts-empty:text('the chart library did not load')")
        kinds = [(c["kind"], c["actor"], c["status"]) for c in _commands(desk)
                 if c["actor"] == ACTOR]
        assert kinds == [("approve", ACTOR, "done"), ("reject", ACTOR, "done"),
                         ("pause", ACTOR, "done"), ("resume", ACTOR, "done")]
        page.screenshot(path=str(_artefact(tmp_path, "dashboard-after-actions.png")),
                        full_page=True)
        assert watch.outside == [] and watch.unexpected() == []
        # the server goes away: the page says so, keeps what it showed, and retries
        server.stop()
        page.click("#btn-refresh")
        page.wait_for_selector("#st-alive[data-state='bad']")
        assert page.inner_text("#st-alive") == "no answer"
        assert "the server does not answer" in page.inner_text("#notice")
        assert page.is_visible("#positions-table tbody tr[data-symbol='BTC-USD']")
    finally:
        context.close()
        server.stop()
        desk.ledger.close()
