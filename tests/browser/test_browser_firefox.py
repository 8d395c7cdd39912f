"""The browser client in Debian's Firefox ESR (WebDriver BiDi) in a call with Chromium.

Firefox sends and receives VP8 (Debian's Firefox has no H264 without the OpenH264 download,
which the tests turn off). One server, one Chromium and one Firefox serve the module.
"""

from __future__ import annotations

from typing import Any

import pytest
from browser_support import (
    ARTIFACTS,
    JoinPage,
    PageLog,
    Server,
    check_mute_camera_off_and_end_call,
    chromium_available,
    peer_id,
    wait_media_flowing,
)
from firefox_support import FirefoxPage, firefox_available

pytest.importorskip("playwright")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not (chromium_available() and firefox_available()),
        reason="needs /usr/bin/chromium, /usr/bin/firefox-esr and npm ci in tests/browser/firefox",
    ),
    pytest.mark.asyncio(loop_scope="module"),
]


@pytest.mark.parametrize("firefox_first", [False, True], ids=["chromium-first", "firefox-first"])
async def test_chromium_and_firefox_see_and_hear_each_other(
    server: Server,
    join_page: JoinPage,
    firefox_page: FirefoxPage,
    firefox_log: PageLog,
    firefox_first: bool,
) -> None:
    """Chromium and Firefox in one room, either joining first: each decodes the other's VP8
    video and receives its audio, and shows it in the other's tile. Screenshots of Firefox
    go to test-artifacts/."""
    url = f"{server.base_url}/room/{await server.create_room()}"
    log = PageLog()
    f = firefox_page
    if firefox_first:
        await f.goto(f"{url}?name=Firefox")
        await f.wait_for_selector('body[data-state="connected"]')
    c = await join_page(url, "Chromium", log)
    if not firefox_first:
        await f.goto(f"{url}?name=Firefox")
        await f.wait_for_selector('body[data-state="connected"]')
    for page in (c, f):
        await page.wait_for_selector(".tile[data-peer-id]")
    ids: dict[Any, str] = {p: await peer_id(p) for p in (c, f)}
    for page, other, name in ((c, f, "Firefox"), (f, c, "Chromium")):
        tile = f'.tile[data-peer-id="{ids[other]}"]'
        assert await page.text_content(f"{tile} .name") == name
    await wait_media_flowing(c, f, "video/VP8")
    for page, other in ((c, f), (f, c)):
        width = await page.eval_on_selector(
            f'.tile[data-peer-id="{ids[other]}"] video', "v => v.videoWidth"
        )
        assert width > 0
    ARTIFACTS.mkdir(exist_ok=True)
    for width, height in ((360, 740), (1440, 900)):
        await f.set_viewport_size({"width": width, "height": height})
        await f.screenshot(str(ARTIFACTS / f"firefox-2p-{width}x{height}.png"))
    await f.set_viewport_size({"width": 1280, "height": 720})
    await c.close()
    log.assert_clean()
    firefox_log.assert_clean()


async def test_firefox_mute_camera_off_and_end_call(
    server: Server, join_page: JoinPage, firefox_page: FirefoxPage, firefox_log: PageLog
) -> None:
    """The same checks as in Chromium, with Firefox muting and leaving: Chromium shows the
    mute and the placeholder; Firefox stops every local track when the call ends."""
    url = f"{server.base_url}/room/{await server.create_room()}"
    log = PageLog()
    c = await join_page(url, "Chromium", log)
    await firefox_page.goto(f"{url}?name=Boris")
    await firefox_page.wait_for_selector('body[data-state="connected"]')
    await check_mute_camera_off_and_end_call(c, firefox_page)
    await c.close()
    log.assert_clean()
    firefox_log.assert_clean()
