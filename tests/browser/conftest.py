"""Fixtures of the browser tests: per test module one server on loopback, one Chromium
and one Firefox page; per test the Chromium pages it opens, all closed at its end.

The module-wide fixtures live on the module's event loop: a test that uses them runs with
`pytest.mark.asyncio(loop_scope="module")`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from browser_support import (
    JoinPage,
    OpenPage,
    PageLog,
    Server,
    chromium,
    new_page,
    running_server,
)
from firefox_support import FirefoxPage, firefox


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Server]:
    async with running_server(tmp_path_factory.mktemp("server")) as s:
        yield s


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chromium_context(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    """One Chromium (fake camera and microphone, permissions granted) for the module."""
    async with chromium(tmp_path_factory.mktemp("chromium")) as context:
        yield context


@pytest_asyncio.fixture(loop_scope="module")
async def open_page(chromium_context: Any) -> AsyncIterator[OpenPage]:
    """open_page(url, log, context=chromium_context, viewport=None): a new page at `url`;
    every page is closed at the end of the test, which takes its participant out of the
    call."""
    pages: list[Any] = []

    async def open_(
        url: str, log: PageLog, context: Any = None, viewport: tuple[int, int] | None = None
    ) -> Any:
        page = await new_page(context or chromium_context, url, log, viewport)
        pages.append(page)
        return page

    yield open_
    for page in pages:
        if not page.is_closed():
            await page.close()


@pytest_asyncio.fixture(loop_scope="module")
async def join_page(open_page: OpenPage) -> JoinPage:
    """join_page(room_url, name, log, **open_page options): a page that has joined the
    call at `room_url` as `name`."""

    async def join(url: str, name: str, log: PageLog, **options: Any) -> Any:
        page = await open_page(f"{url}?name={name}", log, **options)
        await page.wait_for_selector('body[data-state="connected"]')
        return page

    return join


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def firefox_log() -> PageLog:
    """What the module's Firefox page did, over all its tests."""
    return PageLog()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def firefox_page(
    tmp_path_factory: pytest.TempPathFactory, firefox_log: PageLog
) -> AsyncIterator[FirefoxPage]:
    """One Firefox ESR page for the module (tests/browser/firefox/driver.mjs)."""
    async with firefox(tmp_path_factory.mktemp("firefox"), firefox_log) as page:
        yield page
