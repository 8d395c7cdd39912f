"""A browser in a room: the Participant behind a WebSocket and a WebRTC peer connection.

The server is always the offerer. Whenever what the peer sends or receives changes (its
own sources, its subscriptions), it plans its m-lines again and offers; `OfferCycle` keeps
offers serialized. It finds its own end too: a media connection gone silent, failed or
closed, ICE consent lost, an offer left unanswered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any, Protocol

from aiortc import RTCPeerConnection, RTCSessionDescription

from ..config import Config
from ..protocol import (
    SOURCE_KIND,
    BadMessage,
    Error,
    ErrorCode,
    IceCandidate,
    Offer,
    PeerInfo,
    ServerMessage,
)
from ..room import LeaveReason, PublishedTrack, Room, close_code, new_participant_id
from ..rtc_bridge import (
    RTCP_INTERVAL_MAX,
    Activity,
    check_answer_matches_offer,
    close_peer_connection,
    is_mdns_candidate,
    jittered_rtcp_interval,
    media_ports_exhausted,
    new_peer_connection,
    parse_remote_candidate,
    receive_media_directly,
    send_rtcp,
    settle,
    strip_mdns_candidates,
)
from ..stats import MediaCounts
from .media_lines import MediaLines
from .negotiation import RECEIVE, SEND, WantedTrack, plan_slots
from .offer_cycle import OfferCycle

log = logging.getLogger(__name__)

STALL_SECONDS = 2.0  # a report round this late means the server, not the client, was stalled


class Connection(Protocol):
    """The signaling side of a peer (a WebSocket in production)."""

    def push(self, message: ServerMessage) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


class Peer:
    def __init__(
        self, *, name: str, publish: tuple[str, ...], connection: Connection, config: Config
    ) -> None:
        self.peer_id = new_participant_id()
        self.info = PeerInfo(peer_id=self.peer_id, name=name, sources=list(publish))
        self.connection = connection
        self.config = config
        self.room: Room | None = None
        self.pc: RTCPeerConnection | None = None
        self.activity = Activity()
        self.lines = MediaLines(self.peer_id, config.media.video_codecs, self.activity)
        self.offers = OfferCycle()
        self.closed = False
        self._answer_timer: asyncio.TimerHandle | None = None
        self._last_report = time.monotonic()
        self._tasks: set[asyncio.Task[Any]] = set()

    # Participant

    def push(self, message: ServerMessage) -> None:
        self.connection.push(message)

    def admitted(self, room: Room) -> None:
        self.room = room
        self.request_offer()

    def sources_changed(self) -> None:
        self.request_offer()

    def subscribe(self, track: PublishedTrack) -> None:
        self.lines.subscriptions[track.key] = track
        self.request_offer()

    def unsubscribe(self, track: PublishedTrack) -> None:
        if self.lines.subscriptions.pop(track.key, None) is not None:
            self.lines.unbind_track(track)
            self.request_offer()

    def media_counts(self) -> MediaCounts:
        return self.lines.media_counts(self.pc)

    async def close(self, reason: LeaveReason) -> None:
        """Let go of the media, then of the socket (with the reason's close code)."""
        if not self.closed:
            self.closed = True
            self.offers.close()
            if self._answer_timer is not None:
                self._answer_timer.cancel()
                self._answer_timer = None
            current = asyncio.current_task()
            for task in self._tasks:
                if task is not current:
                    task.cancel()
            self.lines.release()
            if self.pc is not None:
                await close_peer_connection(self.pc)
        await self.connection.close(close_code(reason), str(reason))

    # Negotiation

    def request_offer(self) -> None:
        """Offer now, or after the pending answer, if the m-lines must change."""
        if self.offers.request():
            self._spawn(self._offer())

    async def _offer(self) -> None:
        if self.pc is not None:
            await settle(self.pc)  # aiortc may still be applying the last answer
        self.offers.planning()
        plan = plan_slots(self.lines.slots, self._wanted_tracks())
        if not plan.changed or self.closed:
            self.offers.nothing_to_offer()
            return
        pc = self._ensure_pc()
        self.lines.apply(plan, pc, self._consent_expired)
        await pc.setLocalDescription(await pc.createOffer())
        if self.closed or pc.connectionState == "closed":
            return  # it is being removed: nothing to offer any more
        receive_media_directly(pc)
        if media_ports_exhausted(pc):
            # Say so rather than let the client wait for a connection that cannot come.
            log.warning("no media port for a peer", extra={"peer_id": self.peer_id})
            message = "No free media port on this server; try again in a moment."
            self.push(Error(ErrorCode.AT_CAPACITY, message))
            self._remove(LeaveReason.NO_MEDIA_PORT)
            return
        # Pending from now on: the answer may be handled before the message is written.
        self.offers.sent()
        timeout = self.config.signaling.answer_timeout_seconds
        self._answer_timer = asyncio.get_running_loop().call_later(timeout, self._answer_late)
        self.push(Offer(pc.localDescription.sdp, self.lines.tracks_by_mid()))

    def _wanted_tracks(self) -> list[WantedTrack]:
        own = [
            WantedTrack((self.peer_id, source), SOURCE_KIND[source], RECEIVE)
            for source in self.info.sources
        ]
        remote = [WantedTrack(key, t.kind, SEND) for key, t in self.lines.subscriptions.items()]
        return own + remote

    def _ensure_pc(self) -> RTCPeerConnection:
        if self.pc is None:
            self.pc = new_peer_connection([])
            self.pc.on("connectionstatechange", self._on_connection_state)
            self._spawn(self._rtcp_loop())
        return self.pc

    async def handle_answer(self, sdp: str) -> None:
        """Apply the client's answer; BadMessage leaves the offer pending."""
        if self.closed:
            return  # removed meanwhile (its socket is closing): the answer comes too late
        if self.pc is None or not self.offers.awaiting_answer:
            raise BadMessage("answer: no offer is pending")
        try:
            first_payload_types = check_answer_matches_offer(self.pc, sdp)
        except ValueError as exc:
            raise BadMessage(f"answer: {exc}") from None
        try:
            await self.pc.setRemoteDescription(
                RTCSessionDescription(sdp=strip_mdns_candidates(sdp), type="answer")
            )
        except Exception as exc:  # noqa: BLE001 - aiortc raises several types for a bad SDP
            raise BadMessage(f"answer: cannot apply SDP: {exc}") from None
        if self._answer_timer is not None:
            self._answer_timer.cancel()
            self._answer_timer = None
        for track in self.lines.publish_answered(first_payload_types):
            if self.room is not None:
                self.room.add_track(track)
        if self.offers.answered():
            self._spawn(self._offer())

    def _answer_late(self) -> None:
        self._answer_timer = None
        self._remove(LeaveReason.OFFER_UNANSWERED)

    # Messages from the client

    async def add_ice_candidate(self, message: IceCandidate) -> None:
        if self.pc is None or self.pc.remoteDescription is None:
            return  # before the first answer: documented as ignored
        if message.candidate is None:
            await self.pc.addIceCandidate(None)
            return
        if is_mdns_candidate(message.candidate):
            return
        # Everything is bundled on the first m-line's transport, whatever the client says.
        first = self.pc.getTransceivers()[0]
        try:
            candidate = parse_remote_candidate(message.candidate, first.mid, 0)
        except ValueError as exc:
            raise BadMessage(f"ice-candidate: {exc}") from None
        try:
            await self.pc.addIceCandidate(candidate)
        except Exception as exc:  # noqa: BLE001 - aiortc and aioice check it as they go
            raise BadMessage(f"ice-candidate: cannot use it: {exc!r}") from None

    # Lifetime

    async def _rtcp_loop(self) -> None:
        timeout = self.config.rooms.peer_timeout_seconds
        while not self.closed:
            interval = jittered_rtcp_interval()
            await asyncio.sleep(interval)
            if self.pc is None:
                continue
            now = time.monotonic()
            await send_rtcp(self.pc, self.lines.reports(now))
            if now - self._last_report > interval + STALL_SECONDS:
                # The server itself was stalled: what the client sent meanwhile may still
                # wait in the socket. Judge at the next round.
                self._last_report = now
                continue
            self._last_report = now
            # Once connected, a live client always sends something: media, RTCP reports,
            # or ICE consent checks. Silence means it vanished without closing its socket.
            # Judge now whether it will still be silent at the next check, so that removal
            # comes within the timeout, not up to one loop interval after it.
            silent = now + RTCP_INTERVAL_MAX - self.activity.last
            if self.pc.connectionState == "connected" and silent > timeout:
                self._remove(LeaveReason.MEDIA_TIMEOUT)
                return

    def _on_connection_state(self) -> None:
        # "closed" without our close(): the client closed its peer connection, or its
        # transport died; either way no media will flow again on this connection.
        if self.pc is None or self.closed:
            return
        if self.pc.connectionState == "failed":
            self._remove(LeaveReason.CONNECTION_FAILED)
        elif self.pc.connectionState == "closed":
            self._remove(LeaveReason.CONNECTION_CLOSED)

    def _consent_expired(self) -> None:
        self._remove(LeaveReason.CONSENT_EXPIRED)

    def _remove(self, reason: LeaveReason) -> None:
        if not self.closed and self.room is not None:
            self.room.remove_soon(self, reason)

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "peer task failed",
                exc_info=task.exception(),
                extra={"peer_id": self.peer_id},
            )
            self._remove(LeaveReason.INTERNAL_ERROR)
