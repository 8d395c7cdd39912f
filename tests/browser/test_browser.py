"""The browser client (static/) in headless Debian Chromium against a real server on loopback.

One server and one Chromium serve the whole module: every page is one participant (its own
RTCPeerConnection and fake camera), as people on different machines would be. Tests that
need another browser setup (permissions refused, no camera, H264) start their own.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from browser_support import (
    ARTIFACTS,
    FIRST_FRAME_JS,
    PAGE_WEIGHT_JS,
    TIMELINE_JS,
    TIMEOUT,
    TIMEOUT_MS,
    JoinPage,
    OpenPage,
    PageLog,
    Server,
    check_mute_camera_off_and_end_call,
    chromium,
    chromium_available,
    media_stats,
    new_page,
    peer_id,
    rejoined,
    remote_mids,
    running_server,
    wait_frames_on_mid,
    wait_media_flowing,
)
from call_support import send_wrong_node
from timing import eventually, scaled

from kaamos_sfu.appkeys import ROOMS
from kaamos_sfu.cluster.registry import new_room_id
from kaamos_sfu.protocol import ServerShutdown

pytest.importorskip("playwright")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not chromium_available(), reason="needs Debian's /usr/bin/chromium"),
    pytest.mark.asyncio(loop_scope="module"),
]


@pytest.mark.parametrize(("codecs", "codec"), [(None, "video/VP8"), (["H264"], "video/H264")])
async def test_two_pages_see_and_hear_each_other(
    codecs: list[str] | None, codec: str, tmp_path: Path
) -> None:
    """Two Chromium pages in one room each decode the other's camera video (VP8, or H264
    when the server offers only H264) and receive its audio, through the server's
    127.0.0.1 candidate; the page weighs under 100 KB and asks nothing off loopback."""
    log_a, log_b = PageLog(), PageLog()
    async with (
        running_server(tmp_path, video_codecs=codecs) as server,
        chromium(tmp_path / "a") as ctx_a,
        chromium(tmp_path / "b") as ctx_b,
    ):
        url = f"{server.base_url}/room/{await server.create_room()}"
        a = await new_page(ctx_a, f"{url}?name=Alice", log_a)
        await a.wait_for_selector('body[data-state="connected"]')
        b = await new_page(ctx_b, f"{url}?name=Bob", log_b)
        b_first_frame = asyncio.ensure_future(b.evaluate(FIRST_FRAME_JS))
        a_first_frame = asyncio.ensure_future(a.evaluate(FIRST_FRAME_JS))
        await b.wait_for_selector('body[data-state="connected"]')

        ids = {p: await peer_id(p) for p in (a, b)}
        for page, other, name in ((a, b, "Bob"), (b, a, "Alice")):
            tile = f'.tile[data-peer-id="{ids[other]}"]'
            await page.wait_for_selector(tile)
            assert await page.text_content(f"{tile} .name") == name

        b_ms = await asyncio.wait_for(b_first_frame, scaled(TIMEOUT))
        a_ms = await asyncio.wait_for(a_first_frame, scaled(TIMEOUT))
        origin_a, origin_b = [await p.evaluate("performance.timeOrigin") for p in (a, b)]
        weight = await b.evaluate(PAGE_WEIGHT_JS)
        print(
            f"\nfirst remote frame: Bob {b_ms:.0f} ms after his navigation start;"
            f" Alice {origin_a + a_ms - origin_b:.0f} ms after Bob's navigation start"
            f"\nBob's timeline (ms): {await b.evaluate(TIMELINE_JS)}"
            f"\npage weight: {weight}"
        )
        assert 0 < sum(weight.values()) < 100_000, weight

        await wait_media_flowing(a, b, codec)
        for page, other in ((a, b), (b, a)):
            after = await media_stats(page)
            # The server offers only 127.0.0.1. Chromium's own end may be another address of
            # this host (it never leaves it); in a namespace with only lo it is 127.0.0.1.
            assert after["remote"] == "127.0.0.1", after
            width = await page.eval_on_selector(
                f'.tile[data-peer-id="{ids[other]}"] video', "v => v.videoWidth"
            )
            assert width > 0

    log_a.assert_clean()
    log_b.assert_clean()


async def test_mute_camera_off_and_end_call(server: Server, join_page: JoinPage) -> None:
    """Mute and camera off (button and keyboard) show on the other page, with the
    placeholder instead of video; end call stops every local track and offers a rejoin."""
    url = f"{server.base_url}/room/{await server.create_room()}"
    log_a, log_b = PageLog(), PageLog()
    a = await join_page(url, "Alice", log_a)
    b = await join_page(url, "Bob", log_b)
    await check_mute_camera_off_and_end_call(a, b)
    log_a.assert_clean()
    log_b.assert_clean()


async def wait_tiles_playing(page: Any, count: int) -> None:
    """Wait until the page shows `count` remote tiles, each playing decoded video."""
    await page.wait_for_function(
        """(n) => {
          const videos = [...document.querySelectorAll(".tile[data-peer-id] video")];
          return videos.length === n && videos.every((v) => v.videoWidth > 0 && !v.paused);
        }""",
        arg=count,
        timeout=TIMEOUT_MS,
    )


# Visible buttons smaller than a fingertip (48x48 CSS px).
SMALL_BUTTONS_JS = """() => [...document.querySelectorAll("button")]
  .filter((b) => b.offsetParent !== null)
  .filter((b) => b.clientWidth < 48 || b.clientHeight < 48)
  .map((b) => b.id || b.textContent)"""


async def screenshots(page: Any, participants: int) -> None:
    """Save the page at phone and laptop sizes into test-artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    for width, height in ((360, 740), (1440, 900)):
        await page.set_viewport_size({"width": width, "height": height})
        # The resize observer and the video re-layout.
        await page.wait_for_timeout(scaled(0.3) * 1000)
        small = await page.evaluate(SMALL_BUTTONS_JS)
        assert not small, f"buttons under 48x48 px at {width}x{height}: {small}"
        await page.screenshot(path=ARTIFACTS / f"chromium-{participants}p-{width}x{height}.png")
    await page.set_viewport_size({"width": 1280, "height": 720})


async def test_four_fill_the_grid_and_a_fifth_sees_room_full(
    server: Server, open_page: OpenPage, join_page: JoinPage
) -> None:
    """Two pages: the other fills the stage and ours floats; four: an even 2x2 grid, each
    tile playing; a fifth page gets the room-full page. Screenshots at 360x740 and 1440x900
    with 2 and 4 participants go to test-artifacts/."""
    url = f"{server.base_url}/room/{await server.create_room()}"
    logs = [PageLog() for _ in range(5)]
    names = ["Alice", "Борис", "Carol", "Dmitri"]
    a = await join_page(url, names[0], logs[0])
    await join_page(url, names[1], logs[1])
    await wait_tiles_playing(a, 1)
    assert await a.get_attribute("#grid", "data-layout") == "pip"
    await screenshots(a, 2)

    for name, log in zip(names[2:], logs[2:4], strict=True):
        await join_page(url, name, log)
    await wait_tiles_playing(a, 3)
    assert await a.get_attribute("#grid", "data-layout") == "grid"
    assert await a.get_attribute("#grid", "data-count") == "4"
    shown = await a.eval_on_selector_all(".tile .name", "els => els.map(e => e.textContent)")
    assert sorted(shown) == sorted(names[1:] + ["You"])
    # An even grid: four tiles of one size.
    sizes = await a.eval_on_selector_all(
        ".tile", "els => els.map(e => [Math.round(e.clientWidth), Math.round(e.clientHeight)])"
    )
    assert len(sizes) == 4 and len(set(map(tuple, sizes))) == 1, sizes
    await screenshots(a, 4)

    fifth = await open_page(f"{url}?name=Eve", logs[4])
    await fifth.wait_for_selector('body[data-state="error"][data-error-code="ROOM_FULL"]')
    assert "full" in (await fifth.text_content("#message-text") or "")
    assert await fifth.is_visible('#message-actions button:has-text("Try again")')
    tracks = await fifth.evaluate("Object.values(window.kaamos.localTracks).map(t => t.readyState)")
    assert tracks == ["ended", "ended"]
    await fifth.screenshot(path=ARTIFACTS / "chromium-room-full.png")
    for log in logs:
        log.assert_clean()


async def test_screen_share_shows_as_its_own_tile(server: Server, join_page: JoinPage) -> None:
    """Share screen adds a tile playing the screen on the other page, next to the camera;
    stopping it removes that tile and the camera stays."""
    url = f"{server.base_url}/room/{await server.create_room()}"
    log_a, log_b = PageLog(), PageLog()
    a = await join_page(url, "Alice", log_a)
    b = await join_page(url, "Bob", log_b)
    b_id = await peer_id(b)
    await wait_tiles_playing(a, 1)

    await b.click("#screen")
    screen = f'.tile[data-screen-of="{b_id}"]'
    await a.wait_for_function(
        "(s) => document.querySelector(s + ' video')?.videoWidth > 0", arg=screen
    )
    assert await a.text_content(f"{screen} .name") == "Bob: screen"
    assert await a.get_attribute("#grid", "data-layout") == "grid"
    assert await b.get_attribute("#screen", "aria-pressed") == "true"
    assert await b.evaluate("window.kaamos.client.publishing") == [
        "camera", "microphone", "screen"
    ]  # fmt: skip

    await b.click("#screen")
    await a.wait_for_selector(screen, state="detached")
    await wait_tiles_playing(a, 1)
    assert await a.get_attribute("#grid", "data-layout") == "pip"
    log_a.assert_clean()
    log_b.assert_clean()


async def test_name_is_asked_once_remembered_and_editable(
    server: Server, open_page: OpenPage, join_page: JoinPage, tmp_path: Path
) -> None:
    """Without a name the page asks for one and remembers it; the next visit joins at
    once; a new name from the top bar rejoins under it. The status banner fades once
    connected, and Copy link puts the room link on the clipboard."""
    url = f"{server.base_url}/room/{await server.create_room()}"
    log_a, log_n = PageLog(), PageLog()
    a = await join_page(url, "Alice", log_a)
    async with chromium(tmp_path / "named") as ctx:
        n = await open_page(url, log_n, context=ctx)
        await n.fill("#name-input", "  Nina  ")
        await n.click('#name-form button[type="submit"]')
        await n.wait_for_selector('body[data-state="connected"]')
        assert await n.evaluate("localStorage.getItem('kaamos.name')") == "Nina"
        await a.wait_for_selector('.tile .name:text-is("Nina")')
        await n.wait_for_selector("body.calm")

        await n.reload()
        await n.wait_for_selector('body[data-state="connected"]')
        assert await n.is_hidden("#name-form")
        old_id = await peer_id(n)
        await n.click("#name-button")
        await n.fill("#name-input", "Nina K")
        await n.press("#name-input", "Enter")
        await rejoined(n, old_id)
        await a.wait_for_selector('.tile .name:text-is("Nina K")')
        await a.wait_for_selector('.tile .name:text-is("Nina")', state="detached")
        assert await n.text_content("#name-button") == "Nina K"

        await ctx.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.base_url)
        await n.click("#copy-link")
        await n.wait_for_selector("#toast:text-is('Link copied')")
        assert await n.evaluate("navigator.clipboard.readText()") == url
    log_a.assert_clean()
    log_n.assert_clean()


async def test_reused_mline_shows_the_new_peer(server: Server, join_page: JoinPage) -> None:
    """When a peer leaves and another joins, the newcomer's media arrives on the m-lines the
    first one freed, and the page plays it in the newcomer's tile."""
    url = f"{server.base_url}/room/{await server.create_room()}"
    logs = [PageLog(), PageLog(), PageLog()]
    a = await join_page(url, "Alice", logs[0])
    b = await join_page(url, "Bob", logs[1])
    b_id = await peer_id(b)
    b_mids = await remote_mids(a, b_id)
    await wait_frames_on_mid(a, b_mids["camera"])

    await b.click("#leave")
    await a.wait_for_selector(f'.tile[data-peer-id="{b_id}"]', state="detached")
    c = await join_page(url, "Carol", logs[2])
    c_id = await peer_id(c)
    await a.wait_for_selector(f'.tile[data-peer-id="{c_id}"]')
    c_mids = await remote_mids(a, c_id)
    assert c_mids == b_mids  # docs/protocol.md: the lowest inactive m-line is reused
    await wait_frames_on_mid(a, c_mids["camera"])
    width = await a.eval_on_selector(f'.tile[data-peer-id="{c_id}"] video', "v => v.videoWidth")
    assert width > 0
    for log in logs:
        log.assert_clean()


async def test_dropped_socket_and_server_shutdown_reconnect(
    server: Server, join_page: JoinPage
) -> None:
    """The server drops a page's WebSocket: the page rejoins by itself and video flows both
    ways again, without a reload. A server-shutdown message (retry_after 1) and close 1001:
    the page says the server is restarting and comes back after about a second."""
    room_id = await server.create_room()
    url = f"{server.base_url}/room/{room_id}"
    log_a, log_b = PageLog(), PageLog()
    a = await join_page(url, "Alice", log_a)
    b = await join_page(url, "Bob", log_b)
    await wait_media_flowing(a, b, "video/VP8")
    await b.evaluate("window.loadedOnce = true")  # gone if the page reloads
    room = server.app[ROOMS].rooms[room_id]

    # The TCP connection dies under the socket (the browser sees 1006, as on a network drop).
    b_id = await peer_id(b)
    sock = room.participants[b_id].connection.ws.get_extra_info("socket")  # type: ignore[attr-defined]
    sock.shutdown(socket.SHUT_RDWR)
    b_id = await rejoined(b, b_id)
    await a.wait_for_selector(f'.tile[data-peer-id="{b_id}"]')
    await wait_media_flowing(a, b, "video/VP8")
    assert await b.get_attribute("body", "data-close-code") == "1006"

    connection = room.participants[b_id].connection  # type: ignore[attr-defined]
    connection.push(ServerShutdown(retry_after=1))
    # The call goes on while the server drains: the page says a restart is coming.
    await b.wait_for_selector("#notice:not([hidden])")
    assert "restarting soon" in (await b.text_content("#notice") or "")
    assert await b.get_attribute("body", "data-state") == "connected"
    closed_at = time.monotonic()
    await connection.close(1001, "server shutting down")
    await b.wait_for_function(
        r"""() => document.body.dataset.state === "reconnecting"
             && /^The server is restarting\. Reconnecting in [12] s…$/
                  .test(document.getElementById("status").textContent)"""
    )
    b_id = await rejoined(b, b_id)
    assert time.monotonic() - closed_at >= 1.0
    assert await b.is_hidden("#notice")  # back on the (restarted) server
    await a.wait_for_selector(f'.tile[data-peer-id="{b_id}"]')
    await wait_media_flowing(a, b, "video/VP8")
    assert await b.evaluate("window.loadedOnce") is True

    # The camera is unplugged (its track ends): the call goes on without it.
    await b.evaluate("window.kaamos.localTracks.camera.dispatchEvent(new Event('ended'))")
    await a.wait_for_selector(f'.tile[data-peer-id="{b_id}"][data-cam-muted="true"] .avatar')
    assert await b.evaluate("window.kaamos.client.publishing") == ["microphone"]
    assert "camera was disconnected" in (await b.text_content("#notice") or "")
    assert await b.get_attribute("body", "data-state") == "connected"
    log_a.assert_clean()
    log_b.assert_clean()


async def test_wrong_node_redirect_is_followed(server: Server, open_page: OpenPage) -> None:
    """When GET /api/rooms/{id} names another node's socket and that node answers
    WRONG_NODE with close 4421, the page follows signaling_url to the right node."""
    room_id = await server.create_room()
    real_ws = server.base_url.replace("http://", "ws://") + f"/ws/{room_id}"
    joins: list[dict[str, Any]] = []

    async def wrong_node(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        msg = await ws.receive()
        if msg.type == WSMsgType.TEXT:
            joins.append(msg.json())
            await send_wrong_node(ws, real_ws)
        else:
            await ws.close(code=4421)
        return ws

    other = web.Application()
    other.router.add_get("/ws/{room_id}", wrong_node)
    runner = web.AppRunner(other)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        log = PageLog()
        page = await open_page("about:blank", log)
        body = f'{{"room_id": "{room_id}", "signaling_url": "ws://{host}:{port}/ws/{room_id}"}}'
        await page.route(
            f"**/api/rooms/{room_id}",
            lambda route: route.fulfill(body=body, content_type="application/json"),
        )
        await page.goto(f"{server.base_url}/room/{room_id}?name=Alice")
        await page.wait_for_selector('body[data-state="connected"]')
        assert [j["type"] for j in joins] == ["join"]
        assert server.app[ROOMS].participants(room_id) == 1
        log.assert_clean()
    finally:
        await runner.cleanup()


async def test_unreachable_signaling_shows_a_page_after_a_few_tries(
    server: Server, open_page: OpenPage
) -> None:
    """Every WebSocket dies before `joined` (a node that cannot be reached): after four
    tries with backoff the page says the server cannot be reached, offers Try again, and
    the camera is off."""
    room_id = await server.create_room()
    log = PageLog()
    tries: list[float] = []

    async def refuse(ws: Any) -> None:
        tries.append(time.monotonic())
        await ws.close(code=1011, reason="unreachable")

    page = await open_page("about:blank", log)
    await page.route_web_socket(f"**/ws/{room_id}", refuse)
    await page.goto(f"{server.base_url}/room/{room_id}?name=Ulla")
    await page.wait_for_selector('body[data-state="error"][data-error-code="UNREACHABLE"]')
    assert len(tries) == 4
    assert tries[-1] - tries[0] >= 0.375 + 0.75 + 1.5  # the shortest backoffs
    assert "cannot be reached" in (await page.text_content("#message-text") or "")
    assert await page.is_visible('#message-actions button:has-text("Try again")')
    states = await page.evaluate("Object.values(window.kaamos.localTracks).map(t => t.readyState)")
    assert states == ["ended", "ended"]
    log.assert_clean()


async def test_registry_down_on_first_join_keeps_trying(
    server: Server, open_page: OpenPage
) -> None:
    """The room registry is down when the page opens: the room lookup answers 503 and every
    socket REGISTRY_UNAVAILABLE with close 1013. That is the service, not the user's network:
    after more tries than an unreachable server gets, the page still says the service is
    temporarily unavailable (not "check your internet"), and joins once the registry is back."""
    room_id = await server.create_room()
    log = PageLog(expected_errors=("status of 503",))
    refused: list[float] = []
    down = True

    async def lookup(route: Any) -> None:
        if not down:
            await route.continue_()
            return
        body = '{"error": {"code": "REGISTRY_UNAVAILABLE", "message": "down"}}'
        await route.fulfill(status=503, body=body, content_type="application/json")

    def socket(ws: Any) -> None:
        if not down:
            ws.connect_to_server()
            return

        async def refuse(message: str | bytes) -> None:
            refused.append(time.monotonic())
            error = '{"type": "error", "code": "REGISTRY_UNAVAILABLE", "message": "down"}'
            ws.send(error)
            await ws.close(code=1013, reason="registry unavailable")

        ws.on_message(refuse)

    page = await open_page("about:blank", log)
    await page.route(f"**/api/rooms/{room_id}", lookup)
    await page.route_web_socket(f"**/ws/{room_id}", socket)
    await page.goto(f"{server.base_url}/room/{room_id}?name=Ulla")
    # An unreachable server gets 4 tries.
    await eventually(lambda: len(refused) >= 4, TIMEOUT, lambda: f"4 tries (only {len(refused)})")
    await page.wait_for_function(
        r"""() => /^The service is temporarily unavailable\. Trying again in \d+ s…$/
                   .test(document.getElementById("status").textContent)"""
    )
    assert await page.get_attribute("body", "data-state") == "connecting"
    assert await page.get_attribute("body", "data-close-code") == "1013"
    down = False
    await page.wait_for_selector('body[data-state="connected"]')
    assert len(refused) == 4
    assert server.app[ROOMS].participants(room_id) == 1
    log.assert_clean()


async def test_ice_servers_the_browser_refuses_are_left_out(
    server: Server, open_page: OpenPage
) -> None:
    """`joined` lists ICE servers Chromium refuses (no stun:/turn: scheme; TURN without
    credentials), as a misconfigured ice.servers would: the page leaves them out, says so in
    the console, and its media connection comes up with the good entry."""
    room_id = await server.create_room()
    good = {"urls": "stun:127.0.0.1:3478"}
    bad = [{"urls": "stun.example.org"}, {"urls": ["turn:127.0.0.1:3478"]}]
    warnings: list[str] = []

    def socket(ws: Any) -> None:
        to_server = ws.connect_to_server()

        def from_server(message: str | bytes) -> None:
            msg = json.loads(message)
            if msg["type"] == "joined":
                msg["ice_servers"] = [bad[0], good, bad[1]]
            ws.send(json.dumps(msg))

        to_server.on_message(from_server)

    log = PageLog()
    page = await open_page("about:blank", log)
    page.on("console", lambda m: warnings.append(m.text) if m.type == "warning" else None)
    await page.route_web_socket(f"**/ws/{room_id}", socket)
    await page.goto(f"{server.base_url}/room/{room_id}?name=Ivan")
    await page.wait_for_selector('body[data-state="connected"][data-media-state="connected"]')
    used = await page.evaluate("window.kaamos.pc.getConfiguration().iceServers")
    assert [s["urls"] for s in used] == [[good["urls"]]], used
    refused = [w for w in warnings if "leaving out an ICE server" in w]
    assert len(refused) == 2 and "stun.example.org" in refused[0], warnings
    log.assert_clean()


async def test_permission_denied_joins_with_what_is_available(
    server: Server, open_page: OpenPage, join_page: JoinPage, tmp_path: Path
) -> None:
    """Camera and microphone refused: the page says so and what to do; "Join anyway" joins
    receive-only and still sees the others; "Try again" once allowed joins with both."""
    url = f"{server.base_url}/room/{await server.create_room()}"
    log_a, log_d, log_e = PageLog(), PageLog(), PageLog()
    a = await join_page(url, "Alice", log_a)
    async with chromium(tmp_path / "denied", fake_ui=False) as denied:
        d = await open_page(f"{url}?name=Dora", log_d, context=denied)
        await d.wait_for_selector('body[data-error-code="MEDIA_DENIED"] #message')
        assert "camera and the microphone" in (await d.text_content("#message-text") or "")
        await d.click('#message-actions button:has-text("Join anyway")')
        await d.wait_for_selector('body[data-state="connected"]')
        assert await d.evaluate("window.kaamos.client.publishing") == []
        await d.wait_for_selector("#notice")
        d_id = await peer_id(d)
        # Dora sees Alice; Alice sees Dora's placeholder, muted.
        await wait_tiles_playing(d, 1)
        tile = f'.tile[data-peer-id="{d_id}"][data-cam-muted="true"][data-mic-muted="true"]'
        await a.wait_for_selector(f"{tile} .avatar")

        e = await open_page(f"{url}?name=Emil", log_e, context=denied)
        await e.wait_for_selector('body[data-error-code="MEDIA_DENIED"] #message')
        await denied.grant_permissions(["camera", "microphone"], origin=server.base_url)
        await e.click('#message-actions button:has-text("Try again")')
        await e.wait_for_selector('body[data-state="connected"]')
        assert await e.evaluate("window.kaamos.client.publishing") == ["camera", "microphone"]
        e_id = await peer_id(e)
        await a.wait_for_selector(f'.tile[data-peer-id="{e_id}"][data-cam-muted="false"]')
    for log in (log_a, log_d, log_e):
        log.assert_clean()


async def test_no_camera_joins_with_microphone(
    server: Server, join_page: JoinPage, tmp_path: Path
) -> None:
    """A machine without a camera joins with its microphone, says so, and the others see
    its placeholder and hear it."""
    url = f"{server.base_url}/room/{await server.create_room()}"
    log_a, log_n = PageLog(), PageLog()
    a = await join_page(url, "Alice", log_a)
    async with chromium(tmp_path / "nocam", fake_devices="device-count=0") as nocam:
        n = await join_page(url, "Nadia", log_n, context=nocam)
        assert await n.evaluate("window.kaamos.client.publishing") == ["microphone"]
        assert "No camera" in (await n.text_content("#notice") or "")
        assert await n.is_disabled("#cam")
        n_id = await peer_id(n)
        await a.wait_for_selector(f'.tile[data-peer-id="{n_id}"][data-cam-muted="true"] .avatar')
        before = (await media_stats(a))["audioPackets"]
        await a.wait_for_function(
            """async (n) => {
              let p = 0;
              (await window.kaamos.pc.getStats()).forEach((s) => {
                if (s.type === "inbound-rtp" && s.kind === "audio") p += s.packetsReceived;
              });
              return p > n + 20;
            }""",
            arg=before,
            timeout=TIMEOUT_MS,
        )
    log_a.assert_clean()
    log_n.assert_clean()


@pytest.mark.parametrize(
    ("locale", "text"),
    [("en-US", "This room does not exist"), ("ru-RU", "Такой комнаты нет")],
)
async def test_unknown_room_shows_room_not_found(
    server: Server, tmp_path: Path, locale: str, text: str
) -> None:
    """A valid room id that does not exist shows ROOM_NOT_FOUND in the browser's language,
    before any camera is asked for."""
    # The browser's own console line for the API's 404.
    log = PageLog(expected_errors=("404",))
    async with chromium(tmp_path / "p", locale=locale) as ctx:
        page = await new_page(ctx, f"{server.base_url}/room/{new_room_id()}?name=Eve", log)
        await page.wait_for_selector('body[data-state="error"][data-error-code="ROOM_NOT_FOUND"]')
        assert await page.is_visible("#message")
        assert text in (await page.text_content("#message-text") or "")
        assert await page.evaluate("window.kaamos.localTracks") == {}
    log.assert_clean()


async def test_index_page_loads_cleanly(server: Server, open_page: OpenPage) -> None:
    """The landing page loads with no console error and no request off loopback."""
    log = PageLog()
    page = await open_page(f"{server.base_url}/", log)
    assert "Telegram" in (await page.text_content("body") or "")
    log.assert_clean()
