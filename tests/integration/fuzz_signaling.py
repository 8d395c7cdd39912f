"""A signaling fuzzer for tests/integration/test_fuzz.py: a raw WebSocket client in a live
room that plays the frames of fuzz_frames.py and checks every reply against what
docs/protocol.md promises for that frame in that state."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from fuzz_frames import (
    MAX_FRAME_BYTES,
    MAX_MESSAGE_BYTES,
    MAX_NAME_LENGTH,
    MESSAGE_TYPES,
    MUTABLE_SOURCES,
    SOURCES,
    Frame,
    SdpMutation,
    apply_sdp_mutation,
    dumps,
)
from fuzz_watch import ServerErrors
from timing import scaled

from kaamos_sfu.rtc_bridge import close_peer_connection

BAD = "bad"  # BAD_MESSAGE, and the socket stays
VALID = "valid"  # no BAD_MESSAGE
EITHER = "either"  # up to what only the peer code knows: SDP, candidates
JOIN = "join"  # `joined`
LEAVE = "leave"  # close 1000
TOO_BIG = "too big"  # close 1009


@dataclass
class SignalingState:
    joined: bool = False
    sources: set[str] = field(default_factory=set)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def expected_reply(data: str | bytes, state: SignalingState) -> str:
    """What docs/protocol.md promises for this frame in this state; `state` follows the
    frames that change it."""
    size = len(data if isinstance(data, bytes) else data.encode())
    if size > MAX_FRAME_BYTES:
        return TOO_BIG
    if isinstance(data, bytes) or size > MAX_MESSAGE_BYTES:
        return BAD
    try:
        message = json.loads(data)
    except (ValueError, RecursionError):
        return BAD
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return BAD
    kind = message["type"]
    if kind not in MESSAGE_TYPES:
        return BAD
    if not state.joined:
        if kind != "join":
            return BAD
        name, publish = message.get("name"), message.get("publish", [])
        if not isinstance(name, str) or not 1 <= len(name.strip()) <= MAX_NAME_LENGTH:
            return BAD
        if not isinstance(publish, list) or any(s not in SOURCES for s in publish):
            return BAD
        if len(set(publish)) != len(publish):
            return BAD
        state.joined, state.sources = True, set(publish)
        return JOIN
    if kind == "join":
        return BAD
    if kind == "leave":
        return LEAVE
    if kind == "answer":
        sdp = message.get("sdp")
        return EITHER if isinstance(sdp, str) and sdp.startswith("v=0") else BAD
    if kind == "ice-candidate":
        candidate, mid = message.get("candidate"), message.get("sdpMid")
        index = message.get("sdpMLineIndex")
        if candidate is not None and not isinstance(candidate, str):
            return BAD
        if mid is not None and not isinstance(mid, str):
            return BAD
        if index is not None and not _is_int(index):
            return BAD
        return EITHER
    source = message.get("source")
    if kind == "mute":
        if source not in MUTABLE_SOURCES or not isinstance(message.get("muted"), bool):
            return BAD
        return VALID
    if source not in SOURCES:
        return BAD
    if kind == "publish":
        if source in state.sources:
            return BAD
        state.sources.add(source)
        return VALID
    if source not in state.sources:  # unpublish
        return BAD
    state.sources.discard(source)
    return VALID


# For the reply to one frame: the server hangs if it takes longer.
REPLY_SECONDS = scaled(10.0)
# A peer removed for a failed media connection is closed within this.
HOLD_SECONDS = scaled(1.0)


class SocketClosed(Exception):
    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed with {code} {reason!r}")
        self.code = code
        self.reason = reason


class SignalingFuzzer:
    """A raw WebSocket client in the room that plays Frames and checks every reply.

    After each frame it sends a sentinel (an unknown message type naming the frame's
    number): the server handles a socket's frames in order, so everything before the
    sentinel's BAD_MESSAGE is the frame's reply. Answers are made from the real answer to
    the pending offer, which an aiortc peer connection of its own computes.
    """

    def __init__(self, http: TestClient, room_id: str, errors: ServerErrors) -> None:
        self.http = http
        self.room_id = room_id
        self.errors = errors
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.state = SignalingState()
        self.sent = 0
        self.stats: Counter[str] = Counter()
        self.problems: list[tuple[str, str]] = []  # (what went wrong, what was sent)
        self._sent_text = ""
        self._offer: dict[str, Any] | None = None  # the latest offer received
        self._answered_offer: dict[str, Any] | None = None  # the offer `_answer` is for
        self._answer = ""
        self._pc: RTCPeerConnection | None = None
        self._expected = EITHER  # for the frame in flight
        self._taken: SdpMutation | None = None  # the last answer the server took
        self._held: list[tuple[float, tuple[str, str]]] = []  # see _hold

    async def connect(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._pc is not None:
            await close_peer_connection(self._pc)
        self._pc, self._offer, self._answer, self._taken = None, None, "", None
        self.state = SignalingState()
        try:
            self.ws = await self.http.ws_connect(f"/ws/{self.room_id}")
        except aiohttp.WSServerHandshakeError as refused:  # the upgrade is always accepted
            raise AssertionError(f"WebSocket upgrade refused: HTTP {refused.status}") from None
        self.stats["connections"] += 1

    async def join(self) -> None:
        """A valid join: the frames after it reach the peer code."""
        await self._play(Frame("join", dumps({"type": "join", "name": "Fuzz", "publish": []})))
        if not self.state.joined:
            raise AssertionError(f"the fuzzer could not join: {self.problems[-1:]}")

    async def play(self, frame: Frame, rejoin: bool) -> None:
        """Send one frame and judge the reply; after a documented close, connect again
        (and join, with `rejoin`)."""
        try:
            await self._play(frame)
        except SocketClosed as closed:
            self._server_errors(frame)
            self._judge_close(frame, closed)
            self._settle(removed=closed.code == 4408)
            await self.connect()
            if rejoin:
                await self.join()
        else:
            self._server_errors(frame)
            self._settle(removed=False)

    def _hold(self, frame: Frame, what: str) -> None:
        """A reply not as documented, judged once it is clear the peer was not being
        removed meanwhile (then it may miss replies: its socket closes with 4408)."""
        self._held.append((time.monotonic(), self._described(frame, what)))

    def _settle(self, removed: bool) -> None:
        if removed:
            self._held.clear()
            return
        now = time.monotonic()
        self.problems += [problem for held, problem in self._held if now - held > HOLD_SECONDS]
        self._held = [(held, problem) for held, problem in self._held if now - held <= HOLD_SECONDS]

    def _server_errors(self, frame: Frame) -> None:
        for error in self.errors.new():
            self._problem(frame, f"server logged {error}")

    def _problem(self, frame: Frame, what: str) -> None:
        self.problems.append(self._described(frame, what))

    def _described(self, frame: Frame, what: str) -> tuple[str, str]:
        # An answer taken earlier can be the cause (the peer keeps what it applied).
        taken = f"\n        after the answer {self._taken}" if self._taken else ""
        return f"{frame.label}: {what}", self._sent_text + taken

    async def close(self) -> None:
        self.problems += [problem for _, problem in self._held]
        if self.ws is not None:
            await self.ws.close()
        if self._pc is not None:
            await close_peer_connection(self._pc)

    async def _play(self, frame: Frame) -> None:
        assert self.ws is not None
        data = frame.data
        if isinstance(data, SdpMutation):
            sdp = apply_sdp_mutation(await self._real_answer(), data)
            data = dumps({"type": "answer", "sdp": sdp})
        expected = self._expected = expected_reply(data, self.state)
        self._sent_text = repr(data[:160]) + (f"... ({len(data)} long)" if len(data) > 160 else "")
        self.sent += 1
        self.stats[f"expected {expected}"] += 1
        sentinel = f"fuzz-sentinel-{self.sent}"
        if self.ws.closed:
            raise SocketClosed(self.ws.close_code, "closed before the frame")
        try:
            if isinstance(data, bytes):
                await self.ws.send_bytes(data)
            else:
                await self.ws.send_str(data)
            await self.ws.send_str(json.dumps({"type": sentinel}))
        except ConnectionError:
            raise SocketClosed(self.ws.close_code, "closed while sending") from None
        replies = await self._replies_until(sentinel, frame)
        bad = [r for r in replies if r.get("type") == "error" and r.get("code") == "BAD_MESSAGE"]
        others = [r for r in replies if r.get("type") == "error" and r not in bad]
        if others:
            self._problem(frame, f"unexpected error {others[0]}")
        if len(bad) > 1:
            self._problem(frame, f"{len(bad)} BAD_MESSAGE replies to one frame")
        if expected == BAD and not bad:
            got = sorted({str(r.get("type")) for r in replies})
            self._hold(frame, f"no BAD_MESSAGE for a bad frame (got {got})")
        if expected in (VALID, JOIN) and bad:
            self._hold(frame, f"a valid frame got BAD_MESSAGE {bad[0]['message']!r}")
        if expected == JOIN and not any(r.get("type") == "joined" for r in replies):
            self._hold(frame, f"a valid join got no `joined`: {replies}")
            self.state.joined = False
        if expected in (LEAVE, TOO_BIG):
            self._hold(frame, f"the socket stayed open ({expected})")
        if isinstance(frame.data, SdpMutation):
            self.stats["answer refused" if bad else "answer taken"] += 1
            if not bad:
                self._taken = frame.data
        self.stats["BAD_MESSAGE"] += len(bad)

    async def _replies_until(self, sentinel: str, frame: Frame) -> list[dict[str, Any]]:
        assert self.ws is not None
        replies: list[dict[str, Any]] = []
        while True:
            try:
                message = await self.ws.receive(timeout=REPLY_SECONDS)
            except TimeoutError:
                raise AssertionError(
                    f"no reply to {frame.label} {self._sent_text} in {REPLY_SECONDS} s"
                ) from None
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                                aiohttp.WSMsgType.CLOSED):
                raise SocketClosed(self.ws.close_code, str(message.extra or ""))
            if message.type == aiohttp.WSMsgType.ERROR:
                raise SocketClosed(self.ws.close_code, f"socket error {message.data!r}")
            if message.type != aiohttp.WSMsgType.TEXT:
                self._problem(frame, "a non-text frame from the server")
                continue
            reply = json.loads(message.data)
            if reply.get("type") == "error" and repr(sentinel) in str(reply.get("message")):
                return replies
            if reply.get("type") == "offer":
                self._offer = reply
            replies.append(reply)

    def _judge_close(self, frame: Frame, closed: SocketClosed) -> None:
        """Documented closes: 1000 after leave, 1009 after a frame above 1 MiB, and 4408
        once joined (a media connection that failed, e.g. after an answer with a foreign
        fingerprint was taken)."""
        self.stats[f"close {closed.code}"] += 1
        if (closed.code, self._expected) in ((1000, LEAVE), (1009, TOO_BIG)):
            return
        if closed.code == 4408 and self.state.joined:
            return
        self._problem(frame, f"unexpected close {closed.code} {closed.reason!r}")

    async def _real_answer(self) -> str:
        """The answer aiortc makes for the latest offer (the last one made, or a canned one
        before any offer)."""
        offer = self._offer
        if offer is None:
            return self._answer or "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
        if offer is self._answered_offer:
            return self._answer
        for _ in range(2):
            if self._pc is None:
                self._pc = RTCPeerConnection(
                    RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
                )
            try:
                await self._pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
                await self._pc.setLocalDescription(await self._pc.createAnswer())
                break
            except Exception:  # noqa: BLE001 - our mutated answers can leave aiortc refusing
                await close_peer_connection(self._pc)
                self._pc = None
        if self._pc is not None:
            self._answered_offer, self._answer = offer, self._pc.localDescription.sdp
        return self._answer
