"""One client in a room: its peer connection, its m-lines, and the offer/answer cycle.

The server is always the offerer. Offers are serialized: while one is unanswered, changes
only set `_offer_wanted`, and the next offer goes out right after the answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from aiortc import RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription

from . import protocol
from .config import Config
from .forwarding import DownTrack, UpTrack
from .leave_reasons import LeaveReason
from .negotiation import RECEIVE, SEND, Slot, TrackKey, WantedTrack, plan_slots
from .protocol import SOURCE_KIND, BadMessage, ErrorCode, IceCandidate, PeerInfo
from .registry import new_room_id
from .rtc_bridge import (
    RTCP_INTERVAL_MAX,
    Activity,
    Codec,
    ForwardingReceiver,
    ForwardingSender,
    add_forwarding_transceiver,
    check_answer_matches_offer,
    close_peer_connection,
    is_mdns_candidate,
    jittered_rtcp_interval,
    negotiated_codecs,
    new_peer_connection,
    parse_remote_candidate,
    publisher_codec_preferences,
    receive_media_directly,
    send_rtcp,
    set_stream,
    settle,
    strip_mdns_candidates,
    subscriber_codec_preferences,
    transport_counts,
)
from .stats import MediaCounts

log = logging.getLogger(__name__)


class Connection(Protocol):
    """The signaling side of a peer (a WebSocket in production)."""

    async def send(self, message: dict[str, Any]) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


@dataclass
class PublishedTrack:
    uptrack: UpTrack
    codec: Codec


class RoomView(Protocol):
    """What a peer needs from its room."""

    def remote_tracks(self, peer: Peer) -> list[WantedTrack]: ...

    def published_track(self, key: TrackKey) -> PublishedTrack | None: ...

    def tracks_changed(self) -> None: ...

    def remove_soon(self, peer: Peer, reason: LeaveReason) -> None: ...


@dataclass(eq=False)
class SlotMedia:
    transceiver: RTCRtpTransceiver
    sender: ForwardingSender
    receiver: ForwardingReceiver
    answered_owner: TrackKey | None = None  # the owner the client has accepted


def new_peer_id() -> str:
    return new_room_id()  # same alphabet and length as room ids


class Peer:
    def __init__(
        self,
        *,
        name: str,
        publish: tuple[str, ...],
        connection: Connection,
        room: RoomView,
        config: Config,
    ) -> None:
        self.peer_id = new_peer_id()
        self.info = PeerInfo(peer_id=self.peer_id, name=name, sources=list(publish))
        self.connection = connection
        self.room = room
        self.config = config
        self.published: dict[str, PublishedTrack] = {}
        self.slots: list[Slot] = []
        self.pc: RTCPeerConnection | None = None
        self.activity = Activity()
        self.retired = MediaCounts()  # what dropped UpTracks and DownTracks had counted
        self.closed = False
        self._offer_wanted = False
        self._offer_busy = False  # creating an offer, or waiting for its answer
        self._answer_timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # Negotiation

    def request_offer(self) -> None:
        """Send an offer now, or after the pending answer, if the m-lines must change."""
        self._offer_wanted = True
        if not self._offer_busy and not self.closed:
            self._offer_busy = True
            self._spawn(self._offer())

    async def _offer(self) -> None:
        if self.pc is not None:
            await settle(self.pc)  # aiortc may still be applying the last answer
        self._offer_wanted = False
        plan = plan_slots(self.slots, self._wanted_tracks())
        if not plan.changed:
            self._offer_busy = False
            return
        pc = self._ensure_pc()
        unpublished = any(s.role == RECEIVE for s in plan.freed)
        for slot in plan.freed:
            self._free(slot)
        for slot, key in plan.reused:
            self._assign(slot, key)
        for wanted in plan.added:
            direction = "recvonly" if wanted.role == RECEIVE else "sendonly"
            transceiver, sender, receiver = add_forwarding_transceiver(
                pc, wanted.kind, direction, self.activity, self._consent_expired
            )
            sender.on_negotiated = self._on_sender_negotiated
            slot = Slot(kind=wanted.kind, role=wanted.role)
            slot.handle = SlotMedia(transceiver, sender, receiver)
            self.slots.append(slot)
            self._assign(slot, wanted.key)
        if unpublished:
            self.room.tracks_changed()  # the others drop the m-lines of what we stopped
        await pc.setLocalDescription(await pc.createOffer())
        if self.closed:
            return
        receive_media_directly(pc)
        if "a=candidate:" not in pc.localDescription.sdp:
            # No media socket could be bound (the ice port range is full): say so rather
            # than let the client wait for a connection that cannot come.
            log.warning("no media port for a peer", extra={"peer_id": self.peer_id})
            message = "No free media port on this server; try again in a moment."
            await self.connection.send(protocol.error(ErrorCode.AT_CAPACITY, message))
            self.room.remove_soon(self, LeaveReason.NO_MEDIA_PORT)
            return
        tracks = {
            mid: s.owner
            for s in self.slots
            if s.owner is not None and (mid := _media(s).transceiver.mid) is not None
        }
        # Pending from now on: the answer may be handled before send() returns.
        timeout = self.config.signaling.answer_timeout_seconds
        self._answer_timer = asyncio.get_running_loop().call_later(timeout, self._answer_late)
        await self.connection.send(protocol.offer(pc.localDescription.sdp, tracks))

    def _wanted_tracks(self) -> list[WantedTrack]:
        own = [
            WantedTrack((self.peer_id, source), SOURCE_KIND[source], RECEIVE)
            for source in self.info.sources
        ]
        return own + self.room.remote_tracks(self)

    def _ensure_pc(self) -> RTCPeerConnection:
        if self.pc is None:
            self.pc = new_peer_connection([])
            self.pc.on("connectionstatechange", self._on_connection_state)
            self._spawn(self._rtcp_loop())
        return self.pc

    def _assign(self, slot: Slot, key: TrackKey) -> None:
        media = _media(slot)
        slot.owner = key
        peer_id, source = key
        if slot.role == RECEIVE:
            media.transceiver.direction = "recvonly"
            media.transceiver.setCodecPreferences(
                publisher_codec_preferences(slot.kind, self.config.media.video_codecs)
            )
            return
        published = self.room.published_track(key)
        assert published is not None, "remote_tracks() only lists published tracks"
        media.transceiver.direction = "sendonly"
        media.transceiver.setCodecPreferences(subscriber_codec_preferences(published.codec))
        stream_id = peer_id if source != "screen" else f"{peer_id}-screen"
        set_stream(media.sender, stream_id, f"{peer_id}-{source}")

    def _free(self, slot: Slot) -> None:
        media = _media(slot)
        media.transceiver.direction = "inactive"
        if slot.role == RECEIVE and slot.owner is not None:
            published = self.published.pop(slot.owner[1], None)
            if published is not None:
                self.retired.add_uptrack(published.uptrack)
            media.receiver.uptrack = None
        self._unbind(media.sender)
        slot.owner = None

    async def handle_answer(self, sdp: str) -> None:
        """Apply the client's answer; BadMessage leaves the offer pending."""
        if self.closed:
            return  # removed meanwhile (its socket is closing): the answer comes too late
        if self.pc is None or self._answer_timer is None:
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
        self._answer_timer.cancel()
        self._answer_timer = None
        if self._publish_answered_tracks(first_payload_types):
            self.room.tracks_changed()
        self._offer_busy = False
        if self._offer_wanted:
            self.request_offer()

    def _publish_answered_tracks(self, first_payload_types: dict[str, int]) -> bool:
        """Create an UpTrack for each newly answered source; True if any appeared.

        The client sends with the first codec of its answer for that m-line."""
        changed = False
        for slot in self.slots:
            media = _media(slot)
            media.answered_owner = slot.owner
            if slot.role != RECEIVE or slot.owner is None or slot.owner[1] in self.published:
                continue
            codecs = [c for c in negotiated_codecs(media.transceiver) if not c.is_rtx]
            first = first_payload_types.get(media.transceiver.mid or "")
            codec = next((c for c in codecs if c.payload_type == first), None)
            if codec is None:
                continue  # the client refused every codec we offered: nothing to forward
            uptrack = UpTrack(
                peer_id=self.peer_id,
                source=slot.owner[1],
                kind=slot.kind,
                codec_name=codec.name,
                clock_rate=codec.clock_rate,
                payload_type=codec.payload_type,
                request_keyframe=media.receiver.request_keyframe,
            )
            media.receiver.uptrack = uptrack
            self.published[slot.owner[1]] = PublishedTrack(uptrack, codec)
            changed = True
        return changed

    def _answer_late(self) -> None:
        self._answer_timer = None
        self.room.remove_soon(self, LeaveReason.OFFER_UNANSWERED)

    # Subscribing: bind our sending m-lines to the publishers' UpTracks

    def _on_sender_negotiated(self, sender: ForwardingSender) -> None:
        if self.closed:
            return
        slot = next(s for s in self.slots if _media(s).sender is sender)
        key = _media(slot).answered_owner
        published = self.room.published_track(key) if key is not None else None
        if published is None:
            self._unbind(sender)
            return
        if sender.uptrack is published.uptrack and sender.downtrack is not None:
            return
        negotiated = sender.negotiated
        assert negotiated is not None
        subscriber_payload_type = next(
            (c.payload_type for c in negotiated.codecs
             if not c.is_rtx and c.key() == published.codec.key()),
            None,
        )
        if subscriber_payload_type is None:
            log.warning("subscriber refused the publisher's codec", extra={"peer_id": self.peer_id})
            return
        payload_types = {published.codec.payload_type: subscriber_payload_type}
        previous = sender.downtrack
        self._unbind(sender)
        if previous is not None:
            self.retired.add_downtrack(previous)
        downtrack = DownTrack(
            sink=sender,
            ssrc=sender.ssrc,
            kind=slot.kind,
            codec_name=published.uptrack.codec_name,
            clock_rate=published.uptrack.clock_rate,
            payload_types=payload_types,
            mid=negotiated.mid,
            extension_ids=negotiated.extension_ids,
            # A reused m-line keeps its SSRC: continue its sequence numbers and move its
            # timestamps a second forward.
            start_sequence=(previous.last_sequence + 1) & 0xFFFF
            if previous
            else secrets.randbelow(0x8000),
            start_timestamp=(previous.last_timestamp + previous.clock_rate) & 0xFFFFFFFF
            if previous
            else secrets.randbelow(1 << 32),
        )
        sender.downtrack = downtrack
        sender.uptrack = published.uptrack
        published.uptrack.attach(downtrack)
        published.uptrack.request_keyframe(new_subscriber=True)

    def _unbind(self, sender: ForwardingSender) -> None:
        """Stop forwarding to this m-line; its DownTrack stays for sequence continuity."""
        if sender.uptrack is not None and sender.downtrack is not None:
            sender.uptrack.detach(sender.downtrack)
            sender.downtrack.release_cache()
        sender.uptrack = None

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

    def set_sources(self, sources: list[str]) -> None:
        self.info.sources = [s for s in protocol.SOURCES if s in sources]
        self.request_offer()

    def media_counts(self) -> MediaCounts:
        """Everything this peer's forwarding has counted so far (for /metrics)."""
        counts = dataclasses.replace(self.retired)
        if self.pc is not None:
            transport = transport_counts(self.pc)
            counts.rtcp_malformed += transport.rtcp_malformed
            counts.rtcp_over_limit += transport.rtcp_over_limit
            counts.srtp_send_failures += transport.srtp_send_failures
        for published in self.published.values():
            counts.add_uptrack(published.uptrack)
        for slot in self.slots:
            downtrack = _media(slot).sender.downtrack
            if downtrack is not None:
                counts.add_downtrack(downtrack)
        return counts

    # Lifetime

    async def _rtcp_loop(self) -> None:
        timeout = self.config.rooms.peer_timeout_seconds
        while not self.closed:
            await asyncio.sleep(jittered_rtcp_interval())
            if self.pc is None:
                continue
            now = time.monotonic()
            packets = []
            for slot in self.slots:
                media = _media(slot)
                if slot.role == SEND:
                    packets += media.sender.reports(now)
                elif slot.owner is not None:
                    packets += media.receiver.reports()
            await send_rtcp(self.pc, packets)
            # Once connected, a live client always sends something: media, RTCP reports,
            # or ICE consent checks. Silence means it vanished without closing its socket.
            # Judge now whether it will still be silent at the next check, so that removal
            # comes within the timeout, not up to one loop interval after it.
            silent = now + RTCP_INTERVAL_MAX - self.activity.last
            if self.pc.connectionState == "connected" and silent > timeout:
                self.room.remove_soon(self, LeaveReason.MEDIA_TIMEOUT)
                return

    def _on_connection_state(self) -> None:
        # "closed" without our close(): the client closed its peer connection, or its
        # transport died; either way no media will flow again on this connection.
        if self.pc is None or self.closed:
            return
        if self.pc.connectionState == "failed":
            self.room.remove_soon(self, LeaveReason.CONNECTION_FAILED)
        elif self.pc.connectionState == "closed":
            self.room.remove_soon(self, LeaveReason.CONNECTION_CLOSED)

    def _consent_expired(self) -> None:
        if not self.closed:
            self.room.remove_soon(self, LeaveReason.CONSENT_EXPIRED)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._answer_timer is not None:
            self._answer_timer.cancel()
            self._answer_timer = None
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        for slot in self.slots:
            self._unbind(_media(slot).sender)
            _media(slot).receiver.uptrack = None
        self.published.clear()
        if self.pc is not None:
            await close_peer_connection(self.pc)

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
            self.room.remove_soon(self, LeaveReason.INTERNAL_ERROR)


def _media(slot: Slot) -> SlotMedia:
    assert isinstance(slot.handle, SlotMedia)
    return slot.handle
