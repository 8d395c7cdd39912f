"""Helpers for the browser tests: a real server on loopback and headless Debian Chromium.

Everything stays on 127.0.0.1: the server gathers only that address, and Chromium gets
flags that stop its background traffic and make every host name but 127.0.0.1 unresolvable.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import ClientSession, web

from kaamos_sfu.app import create_app
from kaamos_sfu.appkeys import API_SECRET
from kaamos_sfu.auth import issue_token
from kaamos_sfu.config import Config

CHROMIUM = "/usr/bin/chromium"
TIMEOUT_FACTOR = float(os.environ.get("KAAMOS_TEST_TIMEOUT_FACTOR", "1"))

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
    """create_app(config) on 127.0.0.1 at a free port, with ICE on loopback only."""
    config = Config()
    if video_codecs is not None:
        config.media.video_codecs = video_codecs
    config.server.state_dir = str(tmp_path / "state")
    config.server.host = "127.0.0.1"
    config.ice.host_addresses = ["127.0.0.1"]
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

    def attach(self, page: Any) -> None:
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("websocket", lambda ws: self.requests.append(ws.url))
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))

    def _console(self, message: Any) -> None:
        # A BAD_MESSAGE from the server is only a warning on the page, but a protocol bug.
        if message.type == "error" or "BAD_MESSAGE" in message.text:
            self.console_errors.append(message.text)

    def assert_clean(self) -> None:
        """Every request went to 127.0.0.1, and nothing was logged as an error."""
        assert self.requests, "the page made no request at all"
        outside = [u for u in self.requests if urlsplit(u).hostname != "127.0.0.1"]
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
    profile_dir: Path, *, locale: str = "en-US", viewport: tuple[int, int] = (1280, 720)
) -> AsyncIterator[Any]:
    """Debian's Chromium with a fresh profile in `profile_dir`; yields its BrowserContext.

    Each participant gets its own browser process, as two people on two machines would.
    """
    from playwright.async_api import async_playwright

    write_local_state(profile_dir)
    async with async_playwright() as p:
        context = await p.chromium.launch_persistent_context(
            str(profile_dir),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
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
