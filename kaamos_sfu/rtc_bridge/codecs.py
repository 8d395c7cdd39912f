"""Codecs and header extensions as negotiated by aiortc, turned into plain values."""

from __future__ import annotations

from aiortc import RTCRtpTransceiver
from aiortc.codecs import CODECS
from aiortc.rtcrtpparameters import (
    RTCRtpCodecCapability,
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
)

from ..forwarding import Codec, ExtensionIds

URI_MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
URI_ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
URI_AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"


def codec_from(parameters: RTCRtpCodecParameters) -> Codec:
    return Codec(
        mime_type=parameters.mimeType,
        clock_rate=parameters.clockRate,
        channels=parameters.channels,
        payload_type=int(parameters.payloadType or 0),  # always set once negotiated
        parameters=tuple(sorted((k, str(v)) for k, v in parameters.parameters.items())),
    )


def _capability(codec: RTCRtpCodecParameters) -> RTCRtpCodecCapability:
    return RTCRtpCodecCapability(
        mimeType=codec.mimeType,
        clockRate=codec.clockRate,
        channels=codec.channels,
        parameters=codec.parameters,
    )


def _rtx_capability() -> RTCRtpCodecCapability:
    return RTCRtpCodecCapability(mimeType="video/rtx", clockRate=90000)


def publisher_codec_preferences(kind: str, video_codecs: list[str]) -> list[RTCRtpCodecCapability]:
    """What we offer a publisher: Opus for audio; the configured video codecs, in order."""
    if kind == "audio":
        return [_capability(c) for c in CODECS["audio"] if c.mimeType.lower() == "audio/opus"]
    preferences = []
    for name in video_codecs:
        for codec in CODECS["video"]:
            if codec.mimeType.upper() == f"VIDEO/{name}" and (
                name != "H264" or codec.parameters.get("packetization-mode") == "1"
            ):
                preferences.append(_capability(codec))
    return preferences + [_rtx_capability()]


def subscriber_codec_preferences(codec: Codec) -> list[RTCRtpCodecCapability]:
    """What we offer a subscriber for a remote track: exactly the publisher's codec."""
    for candidate in CODECS[codec.mime_type.split("/")[0].lower()]:
        if codec_from(candidate).key() == codec.key():
            preferences = [_capability(candidate)]
            if codec.mime_type.lower().startswith("video/"):
                preferences.append(_rtx_capability())
            return preferences
    raise ValueError(f"no local codec matches {codec}")


def negotiated_codecs(transceiver: RTCRtpTransceiver) -> list[Codec]:
    """The codecs of the last completed negotiation, the answerer's preferred first."""
    return [codec_from(c) for c in transceiver._codecs]


def extension_ids(extensions: list[RTCRtpHeaderExtensionParameters]) -> ExtensionIds:
    """The ids we write; one we cannot write in a one-byte header is left out (0)."""
    ids = {x.uri: x.id for x in extensions if 1 <= x.id <= 14}
    return ExtensionIds(
        mid=ids.get(URI_MID, 0),
        abs_send_time=ids.get(URI_ABS_SEND_TIME, 0),
        audio_level=ids.get(URI_AUDIO_LEVEL, 0),
    )
