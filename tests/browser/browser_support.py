"""Helpers for the browser tests (their fixtures: conftest.py): a real server on loopback,
headless Debian Chromium, its pages, and what a page shows.

Everything stays on 127.0.0.1: the server gathers only that address, and Chromium gets
flags that stop its background traffic and make every host name but 127.0.0.1 unresolvable.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import ClientSession, web
from timing import eventually, scaled

from kaamos_sfu.app import create_app
from kaamos_sfu.appkeys import API_SECRET
from kaamos_sfu.config import Config
from kaamos_sfu.web.auth import issue_token

CHROMIUM = "/usr/bin/chromium"
TIMEOUT = 20.0  # seconds for whatever a page waits for (scaled: tests/timing.py)
TIMEOUT_MS = scaled(TIMEOUT) * 1000  # the same for Playwright, which counts milliseconds
# Screenshots and other files for people to look at (gitignored).
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    # Chromium gathers no loopback ICE candidates without this; inside a network namespace
    # with only lo it would then have no candidate at all.
    "--allow-loopback-in-peer-connection",
    # No outside request: no host name resolves except the server's own address, and the
    # remaining background services are off.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--no-pings",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--safebrowsing-disable-auto-update",
    "--disable-breakpad",
    "--metrics-recording-only",
    # Remote tiles play with sound, as after a click in a real browser.
    "--autoplay-policy=no-user-gesture-required",
]


# The fixtures of tests/browser/conftest.py that open pages: open_page(url, log, ...) and
# join_page(room_url, name, log, ...).
OpenPage = Callable[..., Awaitable[Any]]
JoinPage = Callable[..., Awaitable[Any]]


def chromium_available() -> bool:
    return Path(CHROMIUM).exists()


@dataclass
class Server:
    app: web.Application
    base_url: str

    async def create_room(self) -> str:
        token = issue_token(self.app[API_SECRET], "browser-tests")
        async with ClientSession() as http:
            response = await http.post(
                f"{self.base_url}/api/rooms/create",
                headers={"Authorization": f"Bearer {token}"},
            )
            assert response.status == 201, await response.text()
            return str((await response.json())["room_id"])


@asynccontextmanager
async def running_server(
    tmp_path: Path, video_codecs: list[str] | None = None
) -> AsyncIterator[Server]:
    """create_app(config) on 127.0.0.1 at a free port, with ICE on loopback only and room
    creation limits above what a test module needs."""
    config = Config()
    if video_codecs is not None:
        config.media.video_codecs = video_codecs
    config.server.state_dir = str(tmp_path / "state")
    config.server.host = "127.0.0.1"
    config.ice.host_addresses = ["127.0.0.1"]
    # One browser test module makes more rooms a minute than the bot limits allow.
    config.api.rooms_per_minute_per_token = config.api.rooms_per_minute_per_creator = 100
    app = create_app(config)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, config.server.host, 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield Server(app=app, base_url=f"http://{host}:{port}")
    finally:
        await runner.cleanup()


@dataclass
class PageLog:
    """What one page did: requests, console errors and uncaught exceptions."""

    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    # Console errors that the test expects (the browser's own line for an HTTP 404, say).
    expected_errors: tuple[str, ...] = ()

    def attach(self, page: Any) -> None:
        """Listen to a Playwright page."""
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("websocket", lambda ws: self.requests.append(ws.url))
        page.on("console", lambda m: self._console(m.type, m.text))
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))

    def record(self, event: dict[str, Any]) -> None:
        """Take one event line from the Firefox driver (firefox/driver.mjs)."""
        if event["event"] == "request":
            self.requests.append(event["url"])
        elif event["event"] == "console":
            self._console(event["type"], event["text"])
        elif event["event"] == "pageerror":
            self.page_errors.append(event["text"])

    def _console(self, kind: str, text: str) -> None:
        # A BAD_MESSAGE from the server is only a warning on the page, but a protocol bug.
        protocol_bug = "BAD_MESSAGE" in text
        expected = any(e in text for e in self.expected_errors)
        if (kind == "error" or protocol_bug) and not expected:
            self.console_errors.append(text)

    def assert_clean(self) -> None:
        """Every request went to 127.0.0.1, and nothing was logged as an error."""
        assert self.requests, "the page made no request at all"
        # data: URLs (the empty favicon) never reach the network.
        outside = [
            u for u in self.requests if urlsplit(u).hostname != "127.0.0.1" and u[:5] != "data:"
        ]
        assert not outside, f"requests off loopback: {outside}"
        assert not self.page_errors, self.page_errors
        assert not self.console_errors, self.console_errors


def write_local_state(profile_dir: Path) -> None:
    """Turn off WebRTC's mDNS host names through chrome://flags in the fresh profile.

    Otherwise Chromium joins the mDNS group 224.0.0.251 on every interface (an IGMP report
    leaves on eth0). A --disable-features switch cannot do it: Chromium keeps only the last
    one, which would drop Playwright's own list; chrome://flags features are merged.
    """
    profile_dir.mkdir(parents=True, exist_ok=True)
    state = {"browser": {"enabled_labs_experiments": ["enable-webrtc-hide-local-ips-with-mdns@2"]}}
    (profile_dir / "Local State").write_text(json.dumps(state))


@asynccontextmanager
async def chromium(
    profile_dir: Path,
    *,
    locale: str = "en-US",
    viewport: tuple[int, int] = (1280, 720),
    fake_ui: bool = True,
    fake_devices: str = "",
) -> AsyncIterator[Any]:
    """Debian's Chromium with a fresh profile in `profile_dir`; yields its BrowserContext.

    `fake_ui=False` leaves camera and microphone permissions to the test (nothing granted:
    the page is refused); `fake_devices="device-count=0"` leaves the fake camera out.
    """
    from playwright.async_api import async_playwright

    args = [a for a in CHROMIUM_ARGS if not a.startswith("--use-fake-")]
    args.append("--use-fake-device-for-media-stream" + (f"={fake_devices}" if fake_devices else ""))
    if fake_ui:
        args.append("--use-fake-ui-for-media-stream")
    write_local_state(profile_dir)
    async with async_playwright() as p:
        context = await p.chromium.launch_persistent_context(
            str(profile_dir),
            executable_path=CHROMIUM,
            headless=True,
            args=args,
            locale=locale,
            viewport={"width": viewport[0], "height": viewport[1]},
        )
        try:
            yield context
        finally:
            await context.close()


# JavaScript run in the page: sums of the inbound RTP counters and the selected ICE pair.
MEDIA_STATS_JS = """
async () => {
  const pc = window.kaamos && window.kaamos.pc;
  if (!pc) return null;
  const stats = await pc.getStats();
  const out = {framesDecoded: 0, audioPackets: 0, local: null, remote: null, videoCodecs: []};
  let pairId = null;
  stats.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") {
      out.framesDecoded += s.framesDecoded || 0;
      if (s.codecId && stats.get(s.codecId)) out.videoCodecs.push(stats.get(s.codecId).mimeType);
    }
    if (s.type === "inbound-rtp" && s.kind === "audio") out.audioPackets += s.packetsReceived || 0;
    if (s.type === "transport" && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
    // Firefox marks the pair itself.
    if (s.type === "candidate-pair" && s.selected) pairId = s.id;
  });
  const pair = pairId && stats.get(pairId);
  if (pair) {
    out.local = stats.get(pair.localCandidateId).address;
    out.remote = stats.get(pair.remoteCandidateId).address;
  }
  return out;
}
"""

# Resolves with performance.now() (ms since this page's navigation start) at the first
# decoded remote video frame, polling getStats every 20 ms.
FIRST_FRAME_JS = """
async () => {
  for (;;) {
    const pc = window.kaamos && window.kaamos.pc;
    if (pc) {
      let frames = 0;
      (await pc.getStats()).forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "video") frames += s.framesDecoded || 0;
      });
      if (frames > 0) return performance.now();
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
"""

# The page's own milestones (performance marks set by app.js), in ms since navigation start.
TIMELINE_JS = """
() => {
  const out = {dom: Math.round(performance.getEntriesByType("navigation")[0].domContentLoadedEventEnd)};
  for (const m of performance.getEntriesByType("mark")) out[m.name.replace("kaamos:", "")] = Math.round(m.startTime);
  return out;
}
"""

# Bytes of every file the page loaded (uncompressed), by path.
PAGE_WEIGHT_JS = """
() => Object.fromEntries([...performance.getEntriesByType("navigation"),
  ...performance.getEntriesByType("resource")]
  .map((e) => [new URL(e.name).pathname, e.decodedBodySize]))
"""

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


async def new_page(
    context: Any, url: str, log: PageLog | None = None, viewport: tuple[int, int] | None = None
) -> Any:
    """A new Playwright page of `context` at `url`, with the tests' timeout, its requests and
    errors recorded in `log`."""
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    if viewport:
        await page.set_viewport_size({"width": viewport[0], "height": viewport[1]})
    if log is not None:
        log.attach(page)
    await page.goto(url)
    return page


async def peer_id(page: Any) -> str:
    return str(await page.evaluate("window.kaamos.client.peerId"))


async def rejoined(page: Any, old_id: str, timeout_ms: float = TIMEOUT_MS) -> str:
    """Wait until the page is back in the call under a new peer id; return it."""
    await page.wait_for_function(
        """(old) => document.body.dataset.state === "connected"
             && window.kaamos.client.peerId && window.kaamos.client.peerId !== old""",
        arg=old_id,
        timeout=timeout_ms,
    )
    return await peer_id(page)


async def media_stats(page: Any) -> dict[str, Any]:
    stats = await page.evaluate(MEDIA_STATS_JS)
    assert stats is not None, "no RTCPeerConnection on window.kaamos.pc"
    return dict(stats)


async def wait_media_flowing(a: Any, b: Any, codec: str) -> None:
    """Both pages decode more video frames (all in `codec`) and receive more audio packets
    than when this was called."""
    for page in (a, b):
        before = await media_stats(page)

        async def more(page: Any = page, before: dict[str, Any] = before) -> bool:
            now = await media_stats(page)
            return (
                now["framesDecoded"] > before["framesDecoded"] + 5
                and now["audioPackets"] > before["audioPackets"] + 5
            )

        await eventually(more, TIMEOUT, "video frames and audio packets on both pages", poll=0.1)
        codecs = set((await media_stats(page))["videoCodecs"])
        assert codecs == {codec}, codecs


async def remote_mids(page: Any, peer_id: str) -> dict[str, str]:
    """{source: mid} of the peer's camera and microphone on this page, once both are there."""
    mids: dict[str, str] = {}

    async def both() -> bool:
        mids.update(await page.evaluate(REMOTE_MIDS_JS, peer_id))
        return set(mids) == {"camera", "microphone"}

    await eventually(both, TIMEOUT, f"camera and microphone from {peer_id}", poll=0.1)
    return mids


async def wait_frames_on_mid(page: Any, mid: str, more: int = 10) -> None:
    """Wait until `more` frames more than now are decoded on the m-line `mid`."""
    start = await page.evaluate(FRAMES_ON_MID_JS, mid)

    async def enough() -> bool:
        return bool(await page.evaluate(FRAMES_ON_MID_JS, mid) >= start + more)

    await eventually(enough, TIMEOUT, f"{more} new frames decoded on mid {mid}", poll=0.1)


async def check_mute_camera_off_and_end_call(a: Any, b: Any) -> None:
    """Page b mutes its microphone (button) and camera (the V key), then turns the camera
    on again: page a shows each in b's tile, the placeholder while the camera is off. Then
    b ends the call: every local track stops, b offers a rejoin, and a drops b's tile.
    Works with a Playwright page and a FirefoxPage alike."""
    tile = f'.tile[data-peer-id="{await peer_id(b)}"]'
    await a.wait_for_selector(f'{tile}[data-mic-muted="false"][data-cam-muted="false"] video')
    assert not await a.is_visible(f"{tile} .avatar")

    await b.click("#mic")
    await a.wait_for_selector(f'{tile}[data-mic-muted="true"] .off-mic')
    assert await b.get_attribute("#mic", "aria-pressed") == "true"

    await b.press("body", "v")
    await a.wait_for_selector(f'{tile}[data-cam-muted="true"] .avatar')
    assert await a.text_content(f"{tile} .avatar") == "B"
    assert not await a.is_visible(f"{tile} video")
    assert await b.get_attribute("#cam", "aria-pressed") == "true"
    await b.click("#cam")
    await a.wait_for_selector(f'{tile}[data-cam-muted="false"] video')
    assert not await a.is_visible(f"{tile} .avatar")

    await b.click("#leave")
    await b.wait_for_selector('body[data-state="ended"][data-close-code="1000"]')
    states = await b.evaluate("Object.values(window.kaamos.localTracks).map(t => t.readyState)")
    assert states == ["ended", "ended"]
    assert await b.is_visible("#message-actions button.primary")  # rejoin
    await a.wait_for_selector(tile, state="detached")
