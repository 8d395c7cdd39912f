"""Debian's firefox-esr for the browser tests, driven over WebDriver BiDi.

firefox/driver.mjs (puppeteer-core, no browser download) runs one Firefox and takes
JSON-line commands; FirefoxPage wraps it with the part of Playwright's Page API the tests
use, so one test body can drive either browser.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

from browser_support import TIMEOUT, PageLog
from timing import scaled

FIREFOX = "/usr/bin/firefox-esr"
DRIVER_DIR = Path(__file__).parent / "firefox"
STARTUP_TIMEOUT = scaled(60)


def firefox_available() -> bool:
    return (
        Path(FIREFOX).exists()
        and shutil.which("node") is not None
        and (DRIVER_DIR / "node_modules" / "puppeteer-core").is_dir()
    )


# What a selector's element looks like to wait_for_selector: absent, hidden or visible.
_SELECTOR_STATE_JS = """(selector) => {
  const el = document.querySelector(selector);
  if (!el) return "detached";
  const box = el.getBoundingClientRect();
  const style = getComputedStyle(el);
  return box.width > 0 && box.height > 0 && style.visibility !== "hidden" ? "visible" : "hidden";
}"""


class FirefoxPage:
    """One Firefox page behind driver.mjs, with Playwright-like async methods."""

    def __init__(self, process: asyncio.subprocess.Process, log: PageLog | None) -> None:
        self._process = process
        self._log = log
        self._next_id = 0
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.timeout = scaled(TIMEOUT)

    def set_default_timeout(self, ms: float) -> None:
        self.timeout = ms / 1000

    async def start(self) -> None:
        self._reader = asyncio.ensure_future(self._read())
        await asyncio.wait_for(self._ready, STARTUP_TIMEOUT)

    async def _read(self) -> None:
        assert self._process.stdout is not None
        async for raw in self._process.stdout:
            line = json.loads(raw)
            if "id" in line:
                future = self._waiting.pop(line["id"], None)
                if future is None or future.done():
                    continue
                if line["ok"]:
                    future.set_result(line["value"])
                else:
                    future.set_exception(RuntimeError(f"firefox: {line['error']}"))
            elif line["event"] == "ready":
                self._ready.set_result(None)
            elif self._log is not None:
                self._log.record(line)
        error = RuntimeError("firefox driver exited")
        if not self._ready.done():
            self._ready.set_exception(error)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(error)

    async def _call(self, cmd: str, **args: Any) -> Any:
        assert self._process.stdin is not None
        self._next_id += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[self._next_id] = future
        self._process.stdin.write(json.dumps({"id": self._next_id, "cmd": cmd, **args}).encode())
        self._process.stdin.write(b"\n")
        await self._process.stdin.drain()
        return await future

    async def goto(self, url: str) -> None:
        await asyncio.wait_for(self._call("goto", url=url), self.timeout)

    async def evaluate(self, fn: str, arg: Any = None) -> Any:
        """Run a JavaScript expression, or a function of one JSON argument, in the page."""
        return await self._call("evaluate", fn=fn, arg=arg)

    async def click(self, selector: str) -> None:
        await self.wait_for_selector(selector, state="visible")
        await asyncio.wait_for(self._call("click", selector=selector), self.timeout)

    async def press(self, selector: str, key: str) -> None:
        """Press a key with the page focused (`selector` is only for Playwright's signature)."""
        await self._call("press", key=key)

    async def text_content(self, selector: str) -> str | None:
        await self.wait_for_selector(selector)
        return await self.evaluate("(s) => document.querySelector(s).textContent", selector)

    async def get_attribute(self, selector: str, name: str) -> str | None:
        await self.wait_for_selector(selector)
        return await self.evaluate(
            "([s, n]) => document.querySelector(s).getAttribute(n)", [selector, name]
        )

    async def is_visible(self, selector: str) -> bool:
        return await self.evaluate(_SELECTOR_STATE_JS, selector) == "visible"

    async def eval_on_selector(self, selector: str, fn: str) -> Any:
        await self.wait_for_selector(selector)
        return await self.evaluate(
            f"(s) => ({fn})(document.querySelector(s))",
            selector,
        )

    async def wait_for_selector(self, selector: str, state: str = "visible") -> None:
        """Poll until the selector is attached, visible, hidden or detached."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while True:
            now = await self.evaluate(_SELECTOR_STATE_JS, selector)
            if state == now or (state == "attached" and now != "detached"):
                return
            if state == "hidden" and now == "detached":
                return
            if loop.time() > deadline:
                raise TimeoutError(f"firefox: {selector!r} not {state} (it is {now})")
            await asyncio.sleep(0.1)

    async def screenshot(self, path: str) -> None:
        await self._call("screenshot", path=path)

    async def set_viewport_size(self, size: dict[str, int]) -> None:
        await self._call("viewport", width=size["width"], height=size["height"])

    async def close(self) -> None:
        with suppress(Exception):
            await asyncio.wait_for(self._call("close"), scaled(20))
        with suppress(ProcessLookupError):
            self._process.kill()
        await self._process.wait()
        if self._reader is not None:
            await self._reader


@asynccontextmanager
async def firefox(
    profile_dir: Path,
    log: PageLog | None = None,
    *,
    locale: str = "en-US",
    viewport: tuple[int, int] = (1280, 720),
) -> AsyncIterator[FirefoxPage]:
    """Debian's Firefox ESR with a fresh profile, fake camera and microphone; yields its page."""
    profile_dir.mkdir(parents=True, exist_ok=True)
    process = await asyncio.create_subprocess_exec(
        "node",
        str(DRIVER_DIR / "driver.mjs"),
        str(profile_dir),
        str(viewport[0]),
        str(viewport[1]),
        locale,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        limit=16 * 1024 * 1024,
    )
    page = FirefoxPage(process, log)
    try:
        await page.start()
        yield page
    finally:
        await page.close()
