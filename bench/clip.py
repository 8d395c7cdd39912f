"""The benchmark's media, encoded once and shared by every load process through a file:
VP8 640x360, 30 fps, about 800 kbps, a keyframe every 2 s, and Opus in 20 ms frames."""

from __future__ import annotations

import pickle
from pathlib import Path

from media import Clip, opus_clip, video_clip

SECONDS = 10.0
WIDTH, HEIGHT = 640, 360
VIDEO_BIT_RATE = 800_000
KEYFRAME_INTERVAL = 60  # frames


def ensure_clips(directory: Path) -> Path:
    """Encode the clips unless `directory` already has them; returns their file."""
    path = directory / f"clips-{WIDTH}x{HEIGHT}-{VIDEO_BIT_RATE}.pickle"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        video = video_clip("VP8", SECONDS, WIDTH, HEIGHT, KEYFRAME_INTERVAL, VIDEO_BIT_RATE)
        audio = opus_clip(SECONDS)
        partial = path.with_suffix(".tmp")
        partial.write_bytes(pickle.dumps((video, audio)))
        partial.rename(path)
    return path


def load_clips(path: Path) -> tuple[Clip, Clip]:
    """(video, audio), as written by ensure_clips (our own file: pickle is fine)."""
    video, audio = pickle.loads(path.read_bytes())
    return video, audio


def describe(path: Path) -> dict[str, float]:
    video, audio = load_clips(path)
    seconds = len(video.frames) / 30
    return {
        "video_kbps": round(sum(map(len, video.frames)) * 8 / seconds / 1000),
        "audio_kbps": round(sum(map(len, audio.frames)) * 8 / (len(audio.frames) * 0.02) / 1000),
        "keyframes": sum(video.keyframes),
        "seconds": seconds,
    }
