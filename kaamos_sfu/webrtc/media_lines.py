"""A WebRTC peer's m-lines and what each carries: its own sources (the SFU receives them
into UpTracks) and the tracks it subscribes to (the SFU sends them through DownTracks).

`negotiation.plan_slots` decides which m-line carries what; this module applies the plan to
the peer connection's transceivers and, once the client has answered, turns m-lines into
published tracks and subscriptions. No signaling and no room logic.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from aiortc import RTCPeerConnection, RTCRtpTransceiver
from aiortc.rtp import AnyRtcpPacket

from ..forwarding import DownTrack, UpTrack
from ..room import PublishedTrack
from ..rtc_bridge import (
    Activity,
    ForwardingReceiver,
    ForwardingSender,
    add_forwarding_transceiver,
    negotiated_codecs,
    publisher_codec_preferences,
    set_stream,
    subscriber_codec_preferences,
    transport_counts,
)
from ..stats import MediaCounts
from .negotiation import RECEIVE, SEND, Plan, Slot, TrackKey

log = logging.getLogger(__name__)


@dataclass(eq=False)
class SlotMedia:
    transceiver: RTCRtpTransceiver
    sender: ForwardingSender
    receiver: ForwardingReceiver
    answered_owner: TrackKey | None = None  # the owner the client has accepted


class MediaLines:
    def __init__(self, owner_id: str, video_codecs: list[str], activity: Activity) -> None:
        self.owner_id = owner_id
        self.video_codecs = video_codecs
        self.activity = activity
        self.slots: list[Slot] = []
        self.published: dict[str, PublishedTrack] = {}  # own sources whose media arrives
        self.subscriptions: dict[TrackKey, PublishedTrack] = {}  # in the order subscribed
        self.retired = MediaCounts()  # what dropped UpTracks and DownTracks had counted
        self._released = False

    def apply(
        self, plan: Plan, pc: RTCPeerConnection, on_consent_expired: Callable[[], None]
    ) -> None:
        """Free, reuse and add m-lines as planned (before the offer is created)."""
        for slot in plan.freed:
            self._free(slot)
        for slot, key in plan.reused:
            self._assign(slot, key)
        for wanted in plan.added:
            direction = "recvonly" if wanted.role == RECEIVE else "sendonly"
            transceiver, sender, receiver = add_forwarding_transceiver(
                pc, wanted.kind, direction, self.activity, on_consent_expired
            )
            sender.on_negotiated = self.bind
            slot = Slot(kind=wanted.kind, role=wanted.role)
            slot.handle = SlotMedia(transceiver, sender, receiver)
            self.slots.append(slot)
            self._assign(slot, wanted.key)

    def tracks_by_mid(self) -> dict[str, TrackKey]:
        """The offer's `tracks`: every active mid and whose media it carries."""
        return {
            mid: slot.owner
            for slot in self.slots
            if slot.owner is not None and (mid := _media(slot).transceiver.mid) is not None
        }

    def senders(self) -> list[ForwardingSender]:
        return [_media(slot).sender for slot in self.slots]

    def _assign(self, slot: Slot, key: TrackKey) -> None:
        media = _media(slot)
        slot.owner = key
        owner, source = key
        if slot.role == RECEIVE:
            media.transceiver.direction = "recvonly"
            media.transceiver.setCodecPreferences(
                publisher_codec_preferences(slot.kind, self.video_codecs)
            )
            return
        track = self.subscriptions[key]  # the plan only wants subscribed tracks
        media.transceiver.direction = "sendonly"
        media.transceiver.setCodecPreferences(subscriber_codec_preferences(track.codec))
        stream_id = owner if source != "screen" else f"{owner}-screen"
        set_stream(media.sender, stream_id, f"{owner}-{source}")

    def _free(self, slot: Slot) -> None:
        media = _media(slot)
        media.transceiver.direction = "inactive"
        if slot.role == RECEIVE and slot.owner is not None:
            published = self.published.pop(slot.owner[1], None)
            if published is not None:
                self.retired.add_uptrack(published.uptrack)
            media.receiver.uptrack = None
        self.unbind(media.sender)
        slot.owner = None

    def publish_answered(self, first_payload_types: dict[str, int]) -> list[PublishedTrack]:
        """After an answer: an UpTrack for each own source newly answered (the client sends
        with the first codec of its answer for that m-line)."""
        new = []
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
            source = slot.owner[1]
            uptrack = UpTrack(
                peer_id=self.owner_id,
                source=source,
                kind=slot.kind,
                codec_name=codec.name,
                clock_rate=codec.clock_rate,
                payload_type=codec.payload_type,
                request_keyframe=media.receiver.request_keyframe,
            )
            media.receiver.uptrack = uptrack
            track = PublishedTrack(self.owner_id, source, slot.kind, codec, uptrack)
            self.published[source] = track
            new.append(track)
        return new

    def bind(self, sender: ForwardingSender) -> None:
        """The client accepted this sending m-line: forward the track it carries to it
        (called by the sender after each negotiation in which it sends)."""
        if self._released:
            return
        slot = next(s for s in self.slots if _media(s).sender is sender)
        key = _media(slot).answered_owner
        track = self.subscriptions.get(key) if key is not None else None
        if track is None:
            self.unbind(sender)
            return
        if sender.uptrack is track.uptrack and sender.downtrack is not None:
            return
        negotiated = sender.negotiated
        assert negotiated is not None
        subscriber_payload_type = next(
            (
                c.payload_type
                for c in negotiated.codecs
                if not c.is_rtx and c.key() == track.codec.key()
            ),
            None,
        )
        if subscriber_payload_type is None:
            log.warning("subscriber refused the publisher's codec", extra={"peer_id": self.owner_id})
            return
        previous = sender.downtrack
        self.unbind(sender)
        if previous is not None:
            self.retired.add_downtrack(previous)
        downtrack = DownTrack(
            sink=sender,
            ssrc=sender.ssrc,
            kind=slot.kind,
            codec_name=track.uptrack.codec_name,
            clock_rate=track.uptrack.clock_rate,
            payload_types={track.codec.payload_type: subscriber_payload_type},
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
        sender.uptrack = track.uptrack
        track.uptrack.attach(downtrack)
        track.uptrack.request_keyframe(new_subscriber=True)

    def unbind(self, sender: ForwardingSender) -> None:
        """Stop forwarding to this m-line; its DownTrack stays for sequence continuity."""
        if sender.uptrack is not None and sender.downtrack is not None:
            sender.uptrack.detach(sender.downtrack)
            sender.downtrack.release_cache()
        sender.uptrack = None

    def unbind_track(self, track: PublishedTrack) -> None:
        """Stop forwarding `track` at once (its m-line is freed by the next offer)."""
        for sender in self.senders():
            if sender.uptrack is track.uptrack:
                self.unbind(sender)

    def release(self) -> None:
        """The peer is closing: nothing is forwarded to or from it any more."""
        self._released = True
        for slot in self.slots:
            self.unbind(_media(slot).sender)
            _media(slot).receiver.uptrack = None
        self.published.clear()

    def reports(self, now: float) -> list[AnyRtcpPacket]:
        """Sender reports for what we send, receiver reports (and REMB) for what we get."""
        packets: list[AnyRtcpPacket] = []
        for slot in self.slots:
            media = _media(slot)
            if slot.role == SEND:
                packets += media.sender.reports(now)
            elif slot.owner is not None:
                packets += media.receiver.reports()
        return packets

    def media_counts(self, pc: RTCPeerConnection | None) -> MediaCounts:
        """Everything this peer's forwarding has counted so far (for /metrics)."""
        counts = dataclasses.replace(self.retired)
        if pc is not None:
            transport = transport_counts(pc)
            counts.rtcp_malformed += transport.rtcp_malformed
            counts.rtcp_over_limit += transport.rtcp_over_limit
            counts.srtp_send_failures += transport.srtp_send_failures
        for published in self.published.values():
            counts.add_uptrack(published.uptrack)
        for sender in self.senders():
            if sender.downtrack is not None:
                counts.add_downtrack(sender.downtrack)
        return counts


def _media(slot: Slot) -> SlotMedia:
    assert isinstance(slot.handle, SlotMedia)
    return slot.handle
