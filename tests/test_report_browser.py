"""report.html in a real headless Chromium: no console errors, every image decodes, nothing is
fetched from outside the file, and a screenshot is taken. A deliberately broken page is caught."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_report_sections import synthetic_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)
# Where a screenshot is kept for a person to look at, when set.
SCREENSHOT_DIR = os.environ.get("ACCELBENCH_SCREENSHOT_DIR")


class Chromium:
    """A headless Chromium in its own process group, driven over the DevTools protocol."""

    def __init__(self, profile_dir: Path) -> None:
        self.log = profile_dir / "chromium.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    CHROMIUM,
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--remote-debugging-port=0",
                    f"--user-data-dir={profile_dir / 'profile'}",
                    "--window-size=1400,1000",
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--disable-extensions",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "about:blank",
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.ws_url = self._devtools_url()

    def _devtools_url(self, timeout_s: float = 60.0) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in self.log.read_text(errors="replace").splitlines():
                if "DevTools listening on ws://" in line:
                    return line.split("listening on ", 1)[1].strip()
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.close()
        raise RuntimeError(f"chromium did not start: {self.log.read_text(errors='replace')}")

    def load(self, page: Path, screenshot: Path | None = None) -> dict[str, Any]:
        return asyncio.run(_load(self.ws_url, page.resolve().as_uri(), screenshot))

    def close(self) -> None:
        """Stop every process of the browser's group, renderers and helpers included."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                continue
            if _group_gone(self.proc.pid):
                return
        deadline = time.monotonic() + 5
        while not _group_gone(self.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


@contextlib.contextmanager
def chromium() -> Iterator[Chromium]:
    with tempfile.TemporaryDirectory(prefix="accelbench-chromium-") as tmp:
        browser = Chromium(Path(tmp))
        try:
            yield browser
        finally:
            browser.close()


_IMAGES_JS = """JSON.stringify(Array.from(document.images).map(i => ({
  alt: i.alt, complete: i.complete, width: i.naturalWidth, height: i.naturalHeight})))"""


async def _load(ws_url: str, url: str, screenshot: Path | None) -> dict[str, Any]:
    """Open a tab, load ``url``, and return what a person would want checked about it."""
    import aiohttp

    errors: list[str] = []
    requests: list[str] = []
    loaded = asyncio.Event()
    pending: dict[int, asyncio.Future] = {}
    counter = iter(range(1, 1_000_000))
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url, max_msg_size=0) as ws:

        async def reader() -> None:
            async for msg in ws:
                data = json.loads(msg.data)
                if "id" in data and data["id"] in pending:
                    pending.pop(data["id"]).set_result(data)
                    continue
                method, params = data.get("method"), data.get("params") or {}
                if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                    text = " ".join(
                        str(a.get("value", a.get("description"))) for a in params.get("args", [])
                    )
                    errors.append(f"console.{params['type']}: {text}")
                elif method == "Runtime.exceptionThrown":
                    details = params["exceptionDetails"]
                    described = (details.get("exception") or {}).get("description")
                    errors.append(f"exception: {described or details.get('text')}")
                elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                    errors.append(f"log: {params['entry'].get('text')}")
                elif method == "Network.requestWillBeSent":
                    requests.append(params["request"]["url"])
                elif method == "Page.loadEventFired":
                    loaded.set()

        async def send(method: str, session: str | None = None, **params: Any) -> dict:
            msg_id = next(counter)
            pending[msg_id] = asyncio.get_running_loop().create_future()
            message = {"id": msg_id, "method": method, "params": params}
            if session:
                message["sessionId"] = session
            await ws.send_str(json.dumps(message))
            reply = await asyncio.wait_for(pending[msg_id], timeout=60)
            if "error" in reply:
                raise RuntimeError(f"{method}: {reply['error']}")
            return reply["result"]

        task = asyncio.create_task(reader())
        try:
            target = await send("Target.createTarget", url="about:blank")
            attached = await send(
                "Target.attachToTarget", targetId=target["targetId"], flatten=True
            )
            session = attached["sessionId"]
            for domain in ("Runtime", "Log", "Page", "Network"):
                await send(f"{domain}.enable", session)
            await send("Page.navigate", session, url=url)
            await asyncio.wait_for(loaded.wait(), timeout=60)
            await asyncio.sleep(0.3)  # late console messages
            result = await send(
                "Runtime.evaluate", session, expression=_IMAGES_JS, returnByValue=True
            )
            images = json.loads(result["result"]["value"])
            png = b""
            if screenshot is not None:
                import base64

                metrics = await send("Page.getLayoutMetrics", session)
                size = metrics["cssContentSize"]
                clip = {
                    "x": 0,
                    "y": 0,
                    "width": size["width"],
                    "height": min(size["height"], 12000),
                    "scale": 1,
                }
                shot = await send(
                    "Page.captureScreenshot",
                    session,
                    format="png",
                    captureBeyondViewport=True,
                    clip=clip,
                )
                png = base64.b64decode(shot["data"])
                screenshot.write_bytes(png)
            await send("Target.closeTarget", targetId=target["targetId"])
        finally:
            task.cancel()
    return {"errors": errors, "images": images, "requests": requests, "screenshot_bytes": len(png)}


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    with chromium() as running:
        yield running
    assert _group_gone(running.proc.pid), "chromium left a process behind"


def test_report_loads_clean_with_every_image_decoded(
    browser: Chromium, tmp_path_factory, tmp_path: Path
) -> None:
    report_page = synthetic_run(tmp_path_factory) / "report.html"
    shot = tmp_path / "report.png"
    seen = browser.load(report_page, screenshot=shot)
    assert seen["errors"] == []
    images = seen["images"]
    # Every figure of the report (Pareto, CDFs, rooflines) is in the page and decoded.
    assert len(images) == report_page.read_text().count("<img ") >= 8
    assert all(i["complete"] and i["width"] > 100 and i["height"] > 100 for i in images), images
    # Self-contained: the page itself and embedded data, nothing from anywhere else.
    assert seen["requests"] and all(u.startswith(("file://", "data:")) for u in seen["requests"])
    assert seen["screenshot_bytes"] > 50_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if SCREENSHOT_DIR:
        shutil.copy(shot, Path(SCREENSHOT_DIR) / "report.png")


def test_a_broken_page_is_caught(browser: Chromium, tmp_path: Path) -> None:
    """The negative control: the same checks fail on a page with errors and broken images."""
    page = tmp_path / "broken.html"
    page.write_text(
        "<!doctype html><html><body><h1>broken</h1>"
        '<img alt="not a png" src="data:image/png;base64,AAAA">'
        '<img alt="missing" src="no-such-file.png">'
        "<script>console.error('deliberate error'); throw new Error('deliberate exception');"
        "</script></body></html>"
    )
    seen = browser.load(page)
    assert any("deliberate error" in e for e in seen["errors"]), seen["errors"]
    assert any("deliberate exception" in e for e in seen["errors"]), seen["errors"]
    assert any("no-such-file.png" in r for r in seen["requests"])
    assert [i["width"] for i in seen["images"]] == [0, 0]


def test_closing_chromium_leaves_no_process(tmp_path: Path) -> None:
    with chromium() as running:
        pgid = running.proc.pid
        assert not _group_gone(pgid)
    assert _group_gone(pgid)
