"""Pre-encoded test media: small VP8/H264/Opus clips made once per run, and a track that
sends them as `av.Packet`s paced in real time (aiortc then only packetizes: no encoder).

`MediaPlayer(decode=False, loop=True)` restarts pts at 0 after its first loop and stops
pacing, so it is not used.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from dataclasses import dataclass
from functools import cache

import av
from aiortc.mediastreams import MediaStreamTrack

VIDEO_RATE = 30
VIDEO_TIME_BASE = fractions.Fraction(1, 90000)
AUDIO_TIME_BASE = fractions.Fraction(1, 48000)
KEYFRAME_INTERVAL = 15  # frames: a new subscriber waits at most 0.5 s for a keyframe


@dataclass(frozen=True)
class Clip:
    kind: str  # "audio" or "video"
    codec: str  # "VP8", "H264" or "opus"
    frames: tuple[bytes, ...]
    keyframes: tuple[bool, ...]
    frame_ticks: int  # duration of one frame in time_base units
    time_base: fractions.Fraction


def _test_pictures(count: int, width: int, height: int) -> list[av.VideoFrame]:
    source = av.open(f"testsrc2=size={width}x{height}:rate={VIDEO_RATE}", format="lavfi")
    pictures = []
    for frame in source.decode(video=0):
        frame = frame.reformat(format="yuv420p")
        # lavfi tags frames as I pictures, which would make every frame a keyframe
        frame.pict_type = av.video.frame.PictureType.NONE
        pictures.append(frame)
        if len(pictures) == count:
            break
    source.close()
    return pictures


def video_clip(
    codec: str,
    seconds: float = 2.0,
    width: int = 320,
    height: int = 180,
    keyframe_interval: int = KEYFRAME_INTERVAL,
    bit_rate: int = 300_000,
) -> Clip:
    """One clip per set of parameters, however they are passed: libvpx in real-time mode
    is not deterministic under load, so two encodings of the same pictures can differ."""
    return _encode_video(codec, seconds, width, height, keyframe_interval, bit_rate)


@cache
def _encode_video(
    codec: str, seconds: float, width: int, height: int, keyframe_interval: int, bit_rate: int
) -> Clip:
    count = int(seconds * VIDEO_RATE)
    if codec == "VP8":
        context = av.CodecContext.create("libvpx", "w")
        context.options = {
            "deadline": "realtime",
            "cpu-used": "8",
            "lag-in-frames": "0",
            "auto-alt-ref": "0",
            "g": str(keyframe_interval),
            "keyint_min": str(keyframe_interval),
        }
    elif codec == "H264":
        context = av.CodecContext.create("libx264", "w")
        context.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "profile": "baseline",
            "g": str(keyframe_interval),
            "keyint_min": str(keyframe_interval),
            "sc_threshold": "0",
            "bf": "0",
        }
    else:
        raise ValueError(codec)
    context.width, context.height = width, height
    context.pix_fmt = "yuv420p"
    context.time_base = fractions.Fraction(1, VIDEO_RATE)
    context.framerate = fractions.Fraction(VIDEO_RATE, 1)
    context.bit_rate = bit_rate
    frames: list[bytes] = []
    keys: list[bool] = []
    for index, picture in enumerate(_test_pictures(count, width, height)):
        picture.pts = index
        picture.time_base = context.time_base
        for packet in context.encode(picture):
            frames.append(bytes(packet))
            keys.append(packet.is_keyframe)
    for packet in context.encode(None):
        frames.append(bytes(packet))
        keys.append(packet.is_keyframe)
    assert keys[0], "a clip must start with a keyframe"
    return Clip("video", codec, tuple(frames), tuple(keys), 90000 // VIDEO_RATE, VIDEO_TIME_BASE)


@cache
def opus_clip(seconds: float = 2.0) -> Clip:
    source = av.open("sine=frequency=440:sample_rate=48000", format="lavfi")
    context = av.CodecContext.create("libopus", "w")
    context.sample_rate = 48000
    context.layout = "stereo"
    context.format = "s16"
    context.bit_rate = 32000
    context.options = {"frame_duration": "20", "application": "audio"}
    resampler = av.AudioResampler(format="s16", layout="stereo", rate=48000)
    frames: list[bytes] = []
    samples = 0
    for frame in source.decode(audio=0):
        for resampled in resampler.resample(frame):
            resampled.pts = None
            for packet in context.encode(resampled):
                frames.append(bytes(packet))
        samples += frame.samples
        if samples >= seconds * 48000:
            break
    source.close()
    return Clip("audio", "opus", tuple(frames), (True,) * len(frames), 960, AUDIO_TIME_BASE)


class LoopedPacketTrack(MediaStreamTrack):
    """Sends a clip's encoded frames forever, with monotonic pts, paced in real time.

    Like a camera's encoder, it answers a keyframe request (`request_keyframe()`, called
    when a PLI or FIR arrives) by jumping to the clip's next keyframe.
    """

    def __init__(self, clip: Clip) -> None:
        super().__init__()
        self.kind = clip.kind
        self.clip = clip
        self.sent = 0
        self.position = 0
        self.keyframe_requests = 0
        self._jump = False
        self._start: float | None = None

    def request_keyframe(self) -> None:
        self.keyframe_requests += 1
        self._jump = True

    async def recv(self) -> av.Packet:
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self.sent * self.clip.frame_ticks * float(self.clip.time_base)
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if self._jump:
            self._jump = False
            while not self.clip.keyframes[self.position % len(self.clip.frames)]:
                self.position += 1
        data = self.clip.frames[self.position % len(self.clip.frames)]
        self.position += 1
        packet = av.Packet(data)
        packet.pts = self.sent * self.clip.frame_ticks
        packet.time_base = self.clip.time_base
        self.sent += 1
        return packet
