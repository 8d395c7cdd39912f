"""The browser client (static/) in headless Debian Chromium against a real server on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import (
    FIRST_FRAME_JS,
    MEDIA_STATS_JS,
    TIMELINE_JS,
    TIMEOUT_FACTOR,
    PageLog,
    Server,
    chromium,
    chromium_available,
    running_server,
)

from kaamos_sfu.registry import new_room_id

pytest.importorskip("playwright")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not chromium_available(), reason="needs Debian's /usr/bin/chromium"),
]

TIMEOUT_MS = 20_000 * TIMEOUT_FACTOR


@pytest.fixture
async def server(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Server]:
    """The server; parametrize it indirectly with a media.video_codecs list to change it."""
    async with running_server(tmp_path, video_codecs=getattr(request, "param", None)) as s:
        yield s


async def open_room(context: Any, url: str, log: PageLog) -> Any:
    page = context.pages[0] if context.pages else await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    log.attach(page)
    await page.goto(url)
    return page


# {source: mid} of what the page receives from one peer, from KaamosClient.remoteTracks.
REMOTE_MIDS_JS = """(peerId) => Object.fromEntries([...window.kaamos.client.remoteTracks.values()]
  .filter((t) => t.peer_id === peerId).map((t) => [t.source, t.mid]))"""

FRAMES_ON_MID_JS = """async (mid) => {
  let frames = 0;
  (await window.kaamos.pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.mid === mid) frames += s.framesDecoded || 0;
  });
  return frames;
}"""


async def remote_mids(page: Any, peer_id: str) -> dict[str, str]:
    """{source: mid} of the peer's camera and microphone on this page, once both are there."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT_MS / 1000
    while True:
        mids: dict[str, str] = await page.evaluate(REMOTE_MIDS_JS, peer_id)
        if set(mids) == {"camera", "microphone"}:
            return mids
        assert loop.time() < deadline, f"no camera and microphone from {peer_id}: {mids}"
        await asyncio.sleep(0.1)


async def wait_frames_on_mid(page: Any, mid: str, more: int = 10) -> None:
    """Wait until `more` frames more than now are decoded on the m-line `mid`."""
    start = await page.evaluate(FRAMES_ON_MID_JS, mid)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT_MS / 1000
    while await page.evaluate(FRAMES_ON_MID_JS, mid) < start + more:
        assert loop.time() < deadline, f"no {more} new frames decoded on mid {mid}"
        await asyncio.sleep(0.1)


async def media_stats(page: Any) -> dict[str, Any]:
    stats = await page.evaluate(MEDIA_STATS_JS)
    assert stats is not None, "no RTCPeerConnection on window.kaamos.pc"
    return stats


@pytest.mark.parametrize(
    ("server", "codec"), [(None, "video/VP8"), (["H264"], "video/H264")], indirect=["server"]
)
async def test_two_pages_see_and_hear_each_other(
    server: Server, codec: str, tmp_path: Path
) -> None:
    """Two Chromium pages in one room each decode the other's camera video (VP8, or H264
    when the server offers only H264) and receive its audio, through the server's
    127.0.0.1 candidate, with every request on loopback."""
    room_id = await server.create_room()
    url = f"{server.base_url}/room/{room_id}"
    log_a, log_b = PageLog(), PageLog()
    async with chromium(tmp_path / "a") as ctx_a, chromium(tmp_path / "b") as ctx_b:
        a = await open_room(ctx_a, f"{url}?name=Alice", log_a)
        await a.wait_for_selector('body[data-state="connected"]')
        b = await open_room(ctx_b, f"{url}?name=Bob", log_b)
        b_first_frame = asyncio.ensure_future(b.evaluate(FIRST_FRAME_JS))
        a_first_frame = asyncio.ensure_future(a.evaluate(FIRST_FRAME_JS))
        await b.wait_for_selector('body[data-state="connected"]')

        ids = {p: await p.evaluate("window.kaamos.client.peerId") for p in (a, b)}
        for page, other, name in ((a, b, "Bob"), (b, a, "Alice")):
            tile = f'.tile[data-peer-id="{ids[other]}"]'
            await page.wait_for_selector(tile)
            assert await page.text_content(f"{tile} .name") == name

        timeout = TIMEOUT_MS / 1000
        b_ms = await asyncio.wait_for(b_first_frame, timeout)
        a_ms = await asyncio.wait_for(a_first_frame, timeout)
        origin_a, origin_b = [await p.evaluate("performance.timeOrigin") for p in (a, b)]
        marks = await b.evaluate(TIMELINE_JS)
        print(
            f"\nfirst remote frame: Bob {b_ms:.0f} ms after his navigation start;"
            f" Alice {origin_a + a_ms - origin_b:.0f} ms after Bob's navigation start"
            f"\nBob's timeline (ms): {marks}"
        )

        before = {p: await media_stats(p) for p in (a, b)}
        await asyncio.sleep(1.5)
        for page in (a, b):
            after = await media_stats(page)
            assert after["framesDecoded"] > before[page]["framesDecoded"], (before[page], after)
            assert after["audioPackets"] > before[page]["audioPackets"], (before[page], after)
            assert after["videoCodecs"] == [codec], after
            # The server offers only 127.0.0.1. Chromium's own end may be another address of
            # this host (it never leaves it); in a namespace with only lo it is 127.0.0.1.
            assert after["remote"] == "127.0.0.1", after
            width = await page.eval_on_selector(
                f'.tile[data-peer-id="{ids[b if page is a else a]}"] video', "v => v.videoWidth"
            )
            assert width > 0

    log_a.assert_clean()
    log_b.assert_clean()


async def test_mute_and_leave_reach_the_other_page(server: Server, tmp_path: Path) -> None:
    """The mic button marks the peer muted on the other page; leave stops every local track,
    closes with 1000 and removes the tile on the other page."""
    room_id = await server.create_room()
    url = f"{server.base_url}/room/{room_id}"
    log_a, log_b = PageLog(), PageLog()
    async with chromium(tmp_path / "a") as ctx_a, chromium(tmp_path / "b") as ctx_b:
        a = await open_room(ctx_a, f"{url}?name=Alice", log_a)
        await a.wait_for_selector('body[data-state="connected"]')
        b = await open_room(ctx_b, f"{url}?name=Bob", log_b)
        await b.wait_for_selector('body[data-state="connected"]')
        b_id = await b.evaluate("window.kaamos.client.peerId")
        tile = f'.tile[data-peer-id="{b_id}"]'
        await a.wait_for_selector(f'{tile}[data-mic-muted="false"]')

        await b.click("#mic")
        await a.wait_for_selector(f'{tile}[data-mic-muted="true"]')
        assert await b.get_attribute("#mic", "aria-pressed") == "true"

        await b.click("#leave")
        await b.wait_for_selector('body[data-state="ended"][data-close-code="1000"]')
        states = await b.evaluate(
            "Object.values(window.kaamos.client.localTracks).map(t => t.readyState)"
        )
        assert states == ["ended", "ended"]
        await a.wait_for_selector(tile, state="detached")

    log_a.assert_clean()
    log_b.assert_clean()


async def test_reused_mline_shows_the_new_peer(server: Server, tmp_path: Path) -> None:
    """When a peer leaves and another joins, the newcomer's media arrives on the m-lines the
    first one freed, and the page plays it in the newcomer's tile."""
    room_id = await server.create_room()
    url = f"{server.base_url}/room/{room_id}"
    logs = [PageLog(), PageLog(), PageLog()]
    async with (
        chromium(tmp_path / "a") as ctx_a,
        chromium(tmp_path / "b") as ctx_b,
        chromium(tmp_path / "c") as ctx_c,
    ):
        a = await open_room(ctx_a, f"{url}?name=Alice", logs[0])
        await a.wait_for_selector('body[data-state="connected"]')
        b = await open_room(ctx_b, f"{url}?name=Bob", logs[1])
        await b.wait_for_selector('body[data-state="connected"]')
        b_id = await b.evaluate("window.kaamos.client.peerId")
        b_mids = await remote_mids(a, b_id)
        await wait_frames_on_mid(a, b_mids["camera"])

        await b.click("#leave")
        await a.wait_for_selector(f'.tile[data-peer-id="{b_id}"]', state="detached")
        c = await open_room(ctx_c, f"{url}?name=Carol", logs[2])
        await c.wait_for_selector('body[data-state="connected"]')
        c_id = await c.evaluate("window.kaamos.client.peerId")
        await a.wait_for_selector(f'.tile[data-peer-id="{c_id}"]')
        c_mids = await remote_mids(a, c_id)
        assert c_mids == b_mids  # docs/protocol.md: the lowest inactive m-line is reused
        await wait_frames_on_mid(a, c_mids["camera"])
        width = await a.eval_on_selector(f'.tile[data-peer-id="{c_id}"] video', "v => v.videoWidth")
        assert width > 0

    for log in logs:
        log.assert_clean()


@pytest.mark.parametrize(
    ("locale", "text"),
    [("en-US", "This room does not exist"), ("ru-RU", "Такой комнаты нет")],
)
async def test_unknown_room_shows_room_not_found(
    server: Server, tmp_path: Path, locale: str, text: str
) -> None:
    """A valid room id that does not exist shows ROOM_NOT_FOUND in the browser's language."""
    log = PageLog()
    async with chromium(tmp_path / "p", locale=locale) as ctx:
        page = await open_room(ctx, f"{server.base_url}/room/{new_room_id()}?name=Eve", log)
        await page.wait_for_selector(
            'body[data-state="error"][data-error-code="ROOM_NOT_FOUND"][data-close-code="4404"]'
        )
        assert await page.is_visible("#message")
        assert text in (await page.text_content("#message-text") or "")
        assert await page.evaluate("window.kaamos.pc") is None
    log.assert_clean()


async def test_index_page_loads_cleanly(server: Server, tmp_path: Path) -> None:
    """The landing page loads with no console error and no request off loopback."""
    log = PageLog()
    async with chromium(tmp_path / "p") as ctx:
        page = await open_room(ctx, f"{server.base_url}/", log)
        assert "Telegram" in (await page.text_content("body") or "")
    log.assert_clean()
