"""The dashboard in a real headless Chromium (the system's, driven by Playwright) against
`trader demo` replaying candles through the daemon: the page loads with no console error, the
feed shows fills as they happen, a dropped connection (every socket reset in a relay between
the browser and the daemon, twice) is noticed by the page, whose stream resumes by itself from
its last id with no missing or repeated event,
a control is refused without the token and works with it; screenshots are kept."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TOKEN = "browser-test-token-0123456789"
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cutter:
    """A TCP relay on 127.0.0.1 in front of the daemon: the browser talks to the daemon through
    it, and `cut()` resets every connection open at that moment, as a dropped mobile network or
    a proxy's timeout would. Connections made afterwards go through as before."""

    def __init__(self, target_port: int):
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.live: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.live += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> int:
        with self.lock:
            cut, self.live = self.live, []
        for s in cut:
            try:
                # shutdown wakes the relay thread blocked in recv (a bare close would not), and the
                # zero linger turns the close into a reset, as a dropped network looks to a browser
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass
        return len(cut) // 2

    def close(self) -> None:
        self.listener.close()
        self.cut()


@pytest.fixture
def demo(tmp_path):
    port = _free_port()
    env = dict(os.environ, PORT=str(port), TRADER_DASHBOARD_TOKEN=TOKEN)
    child = subprocess.Popen([sys.executable, "-c", "from trader.cli import main; raise SystemExit(main())", "demo",
                              "--weeks", "4", "--speed", "12", "--dir", str(tmp_path / "demo")], cwd=tmp_path,
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/api/status", timeout=1, trust_env=False).json().get("state") == "running":
                break
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.05)
    yield url
    child.send_signal(signal.SIGINT)
    child.wait(30)


@pytest.mark.skipif(CHROMIUM is None, reason="no system Chromium (apt-get install chromium; .ci/run does)")
def test_the_dashboard_in_a_browser(demo, tmp_path):
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("DASHBOARD_SHOTS", tmp_path))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        # bypass_csp: Playwright evaluates its wait predicates as strings, which the page's CSP forbids
        page = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        relay = Cutter(int(demo.rsplit(":", 1)[1]))
        site = f"http://127.0.0.1:{relay.port}"
        page.goto(site + "/?after=0")
        page.wait_for_selector("#feed li")
        assert page.text_content("#state") == "running"
        assert errors == [], errors

        # fills appear in the feed as the daemon trades
        before = page.locator("#feed li.k-fill").count()
        page.wait_for_function(f"document.querySelectorAll('#feed li.k-fill').length > {before}", timeout=60_000)

        # the connection drops (every socket reset in the relay): the page's own stream notices
        # (its badge says so) and resumes from its last id by itself, with no gap or repeat
        page.evaluate("""(() => { window.__drops = 0; const dot = document.querySelector('#live-dot');
            new MutationObserver(() => { if (dot.textContent.includes('reconnecting')) window.__drops++; })
              .observe(dot, {childList: true, characterData: true, subtree: true}); })()""")
        for _ in range(2):
            seen = page.evaluate("window.__feed.ids.length")
            assert relay.cut() >= 1
            page.wait_for_function(f"window.__feed.ids.length > {seen}", timeout=60_000)
        assert page.evaluate("window.__drops") >= 2, "the stream never dropped"
        seen = page.evaluate("window.__feed.ids.length")
        page.evaluate("window.__stream.close()")  # and a hard drop: a new stream from the last id seen
        page.evaluate("""(() => { const last = window.__feed.ids[window.__feed.ids.length - 1];
            const es = new EventSource('/events?after=' + last);
            es.onmessage = (m) => { const e = JSON.parse(m.data);
              if (window.__feed.ids.includes(e.id)) window.__feed.duplicates++; else window.__feed.ids.push(e.id); };
            window.__stream = es; })()""")
        page.wait_for_function(f"window.__feed.ids.length > {seen + 1}", timeout=60_000)

        # a control without the token is refused, with it works
        page.click("#halt")
        assert "token" in page.text_content("#control-result")
        page.fill("#token", "wrong")
        page.click("#token-save")
        page.click("#halt")
        page.wait_for_function("document.querySelector('#control-result').textContent.includes('refused (401)')")
        page.fill("#token", TOKEN)
        page.click("#token-save")
        page.click("#halt")
        page.wait_for_function("document.querySelector('#control-result').textContent.startsWith('halted')")
        page.wait_for_function("document.querySelector('#state').textContent === 'halted'", timeout=20_000)
        for _ in range(600):  # the first weekly review, then the page afresh: every panel filled
            if httpx.get(demo + "/api/reviews", trust_env=False).json():
                break
            time.sleep(0.1)
        ids = page.evaluate("window.__feed.ids")
        duplicates = page.evaluate("window.__feed.duplicates")
        page.goto(site + "/")
        page.wait_for_selector("#reviews details[open] .report h1, #reviews details[open] .report h2")
        page.wait_for_selector("#chart svg")
        time.sleep(0.5)  # the review's chart image
        page.screenshot(path=str(shots / "dashboard.png"), full_page=True)
        page.set_viewport_size({"width": 390, "height": 844})
        page.screenshot(path=str(shots / "dashboard-phone.png"))

        assert duplicates == 0
        assert ids == list(range(1, len(ids) + 1)), "a gap or a repeat in the feed"
        assert httpx.get(demo + "/api/events", params={"after": 0, "limit": 1000}, trust_env=False).json()[-1]["id"] \
            >= ids[-1]
        browser.close()
        relay.close()
