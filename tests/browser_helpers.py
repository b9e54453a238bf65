"""End-to-end helpers: Loom served in the test process, driven by Debian's chromium through
Python Playwright (no browser downloads), with every page watched for console errors,
uncaught exceptions, Content-Security-Policy violations and server errors.

    server = LiveServer(app)                    # a real HTTP server on 127.0.0.1:<free port>
    browser = launch(playwright)                # headless chromium from PATH
    page = Session(browser, server).page()      # a fresh context, watched
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
from pathlib import Path

from werkzeug.serving import WSGIRequestHandler, make_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
REQUIRE_BROWSER = os.environ.get("LOOM_REQUIRE_BROWSER") == "1"
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# Lets a page report CSP violations even where chromium would not log them to the console.
CSP_PROBE = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error("CSP violation: " + e.violatedDirective + " blocked " + (e.blockedURI || "inline") +
                " at " + (e.sourceFile || location.href) + ":" + e.lineNumber);
});
"""


def browser_available() -> bool:
    if not Path(CHROMIUM).exists():
        return False
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass


class LiveServer:
    """The WSGI app on a free port, served from a daemon thread."""

    def __init__(self, app):
        self.app = app
        self.server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.sessions: dict[str, list] = {}   # username -> cookies of a signed-in browser
        self.thread = threading.Thread(target=self.server.serve_forever, name="loom-live-server", daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)


class Watch:
    """What went wrong on the pages of one context: console errors, page errors (uncaught
    exceptions), CSP violations, responses of 500 and above."""

    def __init__(self):
        self.problems: list[str] = []
        self.allowed: list[re.Pattern] = []

    def attach(self, page):
        page.on("console", lambda m: self._console(page, m))
        page.on("pageerror", lambda e: self.problems.append(f"page error on {page.url}: {e}"))
        page.on("response", self._response)

    def _console(self, page, message):
        if message.type not in ("error", "assert"):
            return
        text = message.text
        if any(p.search(text) for p in self.allowed):
            return
        where = message.location.get("url") if message.location else ""
        self.problems.append(f"console {message.type} on {page.url}: {text} ({where})")

    def _response(self, response):
        if response.status >= 500:
            self.problems.append(f"server error {response.status} for {response.request.method} {response.url}")

    @contextlib.contextmanager
    def allow(self, *statuses: int, pattern: str | None = None):
        """Within the block, failed loads with these statuses (and messages matching
        `pattern`) are expected, not problems. Chromium logs "Failed to load resource: the
        server responded with a status of 422" as a console error for every 4xx/5xx load, so
        a test expecting one (a form re-rendered with 422, a wrong password's 401) says so."""
        added = [re.compile(rf"status of {s}\b") for s in statuses]
        if pattern:
            added.append(re.compile(pattern))
        self.allowed.extend(added)
        try:
            yield
        finally:
            for p in added:
                self.allowed.remove(p)

    def check(self):
        problems, self.problems = self.problems, []
        assert not problems, "problems in the browser:\n" + "\n".join(problems)


class Session:
    """A browser context (its own cookies) with a watched page, at a viewport and locale."""

    def __init__(self, browser, server, *, width=1280, height=900, locale="en-US"):
        self.server = server
        self.watch = Watch()
        self.context = browser.new_context(viewport={"width": width, "height": height}, locale=locale,
                                           base_url=server.url, timezone_id="Asia/Shanghai")
        self.context.set_default_timeout(10_000)
        self.context.add_init_script(CSP_PROBE)
        self.page = self.context.new_page()
        self.watch.attach(self.page)

    def sign_in(self, username, password="secret123"):
        """Sign in as `username`: through the sign-in form the first time, then with the
        cookies that gave (each context starts without cookies)."""
        cookies = self.server.sessions.get(username)
        if cookies:
            self.context.add_cookies(cookies)
        else:
            sign_in(self.page, username, password)
            self.server.sessions[username] = self.context.cookies()
        return self.page

    def close(self):
        self.context.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            if exc[0] is None:
                self.watch.check()
        finally:
            self.close()


def sign_in(page, username, password="secret123"):
    page.goto("/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("form.login button[type=submit]")
    assert not page.url.endswith("/login"), f"could not sign in as {username}"


def shot(page, name, *, full_page=True):
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=full_page)


def settle(page):
    """Wait until htmx has no request in flight and a list's record count has loaded."""
    page.wait_for_load_state("load")
    page.wait_for_function("""() => !document.querySelector('.htmx-request')
        && (!document.querySelector('.list-foot') || document.querySelector('.list-foot .count'))""")
