"""Is this RTP payload the first packet of a keyframe? Reads a few header bytes only."""

from __future__ import annotations

H264_IDR = 5
H264_SPS = 7
H264_STAP_A = 24
H264_FU_A = 28


def vp8_starts_keyframe(payload: bytes) -> bool:
    """RFC 7741: start of partition 0 (S=1, PID=0) whose VP8 header has P=0 (key frame)."""
    if len(payload) < 1:
        return False
    first = payload[0]
    if not first & 0x10 or first & 0x07:  # S bit clear, or not partition 0
        return False
    offset = 1
    if first & 0x80:  # X: extension byte follows
        if len(payload) < 2:
            return False
        ext = payload[1]
        offset = 2
        if ext & 0x80:  # I: PictureID, 7 or 15 bits
            if len(payload) <= offset:
                return False
            offset += 2 if payload[offset] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            offset += 1
        if ext & 0x30:  # T or K: TID/Y/KEYIDX byte
            offset += 1
    return len(payload) > offset and not payload[offset] & 0x01


def h264_starts_keyframe(payload: bytes) -> bool:
    """RFC 6184: an SPS or IDR NAL unit starts here (single NAL, STAP-A, or FU-A start)."""
    if len(payload) < 2:
        return False
    nal_type = payload[0] & 0x1F
    if nal_type in (H264_SPS, H264_IDR):
        return True
    if nal_type == H264_STAP_A:
        offset = 1
        while offset + 2 < len(payload):
            size = (payload[offset] << 8) | payload[offset + 1]
            if payload[offset + 2] & 0x1F in (H264_SPS, H264_IDR):
                return True
            offset += 2 + size
        return False
    if nal_type == H264_FU_A:
        return bool(payload[1] & 0x80) and payload[1] & 0x1F in (H264_SPS, H264_IDR)
    return False


def starts_keyframe(codec_name: str, payload: bytes) -> bool:
    if codec_name == "VP8":
        return vp8_starts_keyframe(payload)
    if codec_name == "H264":
        return h264_starts_keyframe(payload)
    return True  # audio: every packet is a fine place to start
