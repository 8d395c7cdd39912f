"""The naive aiortc relay most Python "SFU" examples are: every incoming track is decoded
by aiortc (`RemoteStreamTrack`) and fanned out with `MediaRelay`, so every subscriber's
sender re-encodes it. A baseline for the benchmark, not part of Kaamos.

    python -m bench.naive_relay --port 8090

HTTP signaling (JSON), publisher offers and the relay offers to subscribers:
  POST /publish   {"room", "name", "sdp"}            -> {"sdp": answer}
  POST /subscribe {"room", "publishers": [names]}    -> {"id", "sdp": offer, "tracks": {mid: name}}
  POST /answer    {"id", "sdp"}                      -> {}
"""

from __future__ import annotations

import argparse
import itertools
from collections import defaultdict

from aiohttp import web
from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay

from kaamos_sfu.rtc_bridge import configure_ice

ROOMS = web.AppKey("rooms", dict)
PENDING = web.AppKey("pending", dict)
RELAY = web.AppKey("relay", MediaRelay)
_ids = itertools.count(1)


def _pc() -> RTCPeerConnection:
    return RTCPeerConnection(
        RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    )


async def publish(request: web.Request) -> web.Response:
    body = await request.json()
    pc = _pc()
    tracks: dict[str, MediaStreamTrack] = {}
    pc.on("track", lambda track: tracks.__setitem__(track.kind, track))
    await pc.setRemoteDescription(RTCSessionDescription(body["sdp"], "offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    request.app[ROOMS][body["room"]][body["name"]] = (pc, tracks)
    return web.json_response({"sdp": pc.localDescription.sdp})


async def subscribe(request: web.Request) -> web.Response:
    body = await request.json()
    room = request.app[ROOMS][body["room"]]
    pc = _pc()
    owners = []
    for name in body["publishers"]:
        for kind in ("audio", "video"):
            track = room[name][1].get(kind)
            if track is not None:
                transceiver = pc.addTransceiver(
                    request.app[RELAY].subscribe(track), direction="sendonly"
                )
                owners.append((transceiver, name))
    await pc.setLocalDescription(await pc.createOffer())
    subscription = f"s{next(_ids)}"
    request.app[PENDING][subscription] = pc
    return web.json_response(
        {
            "id": subscription,
            "sdp": pc.localDescription.sdp,
            "tracks": {t.mid: name for t, name in owners},
        }
    )


async def answer(request: web.Request) -> web.Response:
    body = await request.json()
    pc = request.app[PENDING][body["id"]]
    await pc.setRemoteDescription(RTCSessionDescription(body["sdp"], "answer"))
    return web.json_response({})


async def close_all(app: web.Application) -> None:
    for room in app[ROOMS].values():
        for pc, _ in room.values():
            await pc.close()
    for pc in app[PENDING].values():
        await pc.close()


def create_app() -> web.Application:
    app = web.Application()
    app[ROOMS] = defaultdict(dict)
    app[PENDING] = {}
    app[RELAY] = MediaRelay()
    app.router.add_post("/publish", publish)
    app.router.add_post("/subscribe", subscribe)
    app.router.add_post("/answer", answer)
    app.on_shutdown.append(close_all)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    configure_ice(["127.0.0.1"])
    web.run_app(create_app(), host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
