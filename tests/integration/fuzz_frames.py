"""Hypothesis strategies for hostile signaling frames: raw frames, objects of any type,
real messages with fields of the wrong type or in the wrong state, and mutations of the real
SDP answer (a plan, applied to the answer for the offer pending when it is sent); every
address a candidate names stays on loopback. Drawn in a child process (fuzz_examples.py)."""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

SOURCES = ("camera", "microphone", "screen")
MUTABLE_SOURCES = ("camera", "microphone")
MESSAGE_TYPES = ("join", "answer", "ice-candidate", "publish", "unpublish", "mute", "leave")
MAX_MESSAGE_BYTES = 65536  # above: BAD_MESSAGE
MAX_FRAME_BYTES = 1024 * 1024  # above: close 1009
MAX_NAME_LENGTH = 64


@dataclass(frozen=True)
class SdpMutation:
    """Edits to the answer for the offer pending when the frame is sent."""

    ops: tuple[tuple[Any, ...], ...]

    def __repr__(self) -> str:
        return f"SdpMutation({list(self.ops)!r})"


@dataclass(frozen=True)
class Frame:
    """One WebSocket frame: text, bytes, or an answer made from an SdpMutation."""

    label: str
    data: str | bytes | SdpMutation

    def __repr__(self) -> str:
        return f"Frame({self.label!r})"


def dumps(value: Any, ascii_only: bool = True) -> str:
    """JSON with non-ASCII raw or escaped; escaped when it holds lone surrogates (a text
    frame must be UTF-8, while the JSON escape of a surrogate is fine)."""
    text = json.dumps(value, ensure_ascii=ascii_only)
    try:
        text.encode()
    except UnicodeEncodeError:
        return json.dumps(value)
    return text


# Controls, bidi overrides, non-characters, combining marks, astral planes, lone surrogates.
ODD_CHARACTERS = (
    "\x00\x07\x1b\u200b\u200d\u202e\u2028\ufeff\ufffe\uffff\U0001f600\U0010ffff"
    "\u0301\u0308é中𝕏\ud800\udfff"
)
ODD_STRINGS = ["", " ", "\t\n", "null", "camera ", "CAMERA", "screen\x00", "0", "-1", "x" * 65]
SPECIAL_NUMBERS = [2**53 + 1, -(2**63), 10**30, 2**64, 1e308, -1e-308, 0.5, -0.0,
                   float("inf"), float("-inf"), float("nan")]


@st.composite
def odd_text(draw: st.DrawFn) -> str:
    mode = draw(st.integers(0, 2))
    if mode == 0:
        return draw(st.text(max_size=20))
    if mode == 1:
        return draw(st.text(alphabet=st.sampled_from(ODD_CHARACTERS), min_size=1, max_size=40))
    return draw(st.sampled_from(ODD_STRINGS))


@st.composite
def utf8_text(draw: st.DrawFn) -> str:
    """odd_text as it can go raw into a text frame (no lone surrogates)."""
    return draw(odd_text()).encode("utf-8", "replace").decode()


@st.composite
def wrong_values(draw: st.DrawFn, depth: int = 0) -> Any:
    """A JSON value, of the wrong type for almost any field."""
    mode = draw(st.integers(0, 9 if depth < 2 else 6))
    if mode == 0:
        return None
    if mode == 1:
        return draw(st.booleans())
    if mode == 2:
        return draw(st.integers(-(2**70), 2**70))
    if mode == 3:
        return draw(st.sampled_from(SPECIAL_NUMBERS))
    if mode in (4, 5, 6):
        return draw(odd_text())
    if mode in (7, 8):
        return [draw(wrong_values(depth + 1)) for _ in range(draw(st.integers(0, 3)))]
    keys = ["type", "source", "sdp", "name", "x"]
    return {draw(st.sampled_from(keys)): draw(wrong_values(depth + 1))
            for _ in range(draw(st.integers(0, 3)))}


# Addresses a trickled or answered candidate may name: loopback or not an address at all
# (the tests' media never leaves the host, and nothing here needs a name lookup).
CANDIDATE_ADDRESSES = ["127.0.0.1", "127.0.0.1", "127.8.9.10", "::1", "999.1.1.1",
                       "127.0.0.1.1", "0x7f000001", "", "x.local", "[::1]", "localhost"]
CANDIDATE_FIELDS = [
    ["candidate:1", "candidate:", "candidate:xxxxxxxxxx", "cand:1", ""],
    ["1", "1", "2", "0", "256", "-1", "x"],
    ["udp", "UDP", "tcp", "sctp", ""],
    ["2122260223", "0", "-5", "99999999999999999999", "p"],
    CANDIDATE_ADDRESSES,
    ["50123", "9", "0", "65535", "65536", "-1", "port"],
    ["typ", "typ", "type", ""],
    ["host", "host", "srflx", "relay", "prflx", "bogus", ""],
    ["", "", "raddr 127.0.0.1 rport 9", "raddr", "tcptype passive", "generation x",
     "ufrag " + "u" * 300, "\x00"],
]


@st.composite
def candidate_lines(draw: st.DrawFn) -> str:
    """A trickled candidate, well-formed or broken in any of its fields."""
    parts = [draw(st.sampled_from(choices)) for choices in CANDIDATE_FIELDS]
    line = " ".join(p for p in parts if p) if draw(st.booleans()) else " ".join(parts)
    return confine_candidate_line(("a=" if draw(st.booleans()) else "") + line)


def confine_candidate_line(line: str) -> str:
    """Put every address a candidate line names on loopback, whichever field it is in
    (a parser may count fields differently)."""

    def loopback(token: re.Match[str]) -> str:
        try:
            address = ipaddress.ip_address(token.group())
        except ValueError:
            return token.group()
        return token.group() if address.is_loopback else "127.0.0.1"

    return re.sub(r"[^\s]+", loopback, line)


def confine_candidates(sdp: str, newline: str = "\r\n") -> str:
    return newline.join(
        confine_candidate_line(line) if "candidate:" in line else line
        for line in sdp.split(newline)
    )


SDP_ODD_LINES = [
    "a=extmap:15 urn:ietf:params:rtp-hdrext:sdes:mid",
    "a=extmap:0 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    "a=extmap:x urn:x",
    "m=video 9 UDP/TLS/RTP/SAVPF 96",
    "m=audio 0 RTP/AVP",
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
    "a=mid:",
    "a=mid:99",
    "a=ssrc:0 cname:x",
    "a=ssrc:99999999999 cname:x",
    "a=ssrc:x",
    "a=ssrc-group:FID 1",
    "a=ssrc-group:FID x y z",
    "a=rtpmap:200 VP8/90000",
    "a=rtpmap:96 VP8/0",
    "a=rtpmap:96",
    "a=rtpmap:97 rtx/90000",
    "a=fmtp:97 apt=abc",
    "a=fmtp:97 apt=96;apt=97",
    "a=rtcp-fb:96 nack",
    "a=rtcp-fb:* ccm fir",
    "a=ice-ufrag:a",
    "a=ice-pwd:",
    "a=ice-options:trickle renomination",
    "a=setup:holdconn",
    "a=setup:",
    "a=group:BUNDLE 99",
    "a=group:BUNDLE",
    "a=msid:- -",
    "a=msid:",
    "a=sendrecv",
    "a=inactive",
    "a=rtcp:9 IN IP4 0.0.0.0",
    "a=rtcp:9 IN IP4 999.1.1.1",
    "a=rtcp:x IN IP6 127.0.0.1",
    "c=IN IP4 999.1.1.1",
    "a=fingerprint:sha-256 00",
    "a=fingerprint:md5 00:11",
    "a=end-of-candidates",
    "a=candidate:1 1 udp 2122260223 127.0.0.1 9 typ host",
    "b=AS:-1",
    "c=IN IP6",
    "t=0",
    "o=",
    "v=1",
    "x=unknown",
    "=",
    "a=" + "x" * 3000,
]
SDP_ATTRIBUTES = ["a=extmap:", "a=fingerprint:", "a=setup:", "a=ice-ufrag:", "a=ice-pwd:",
                  "a=mid:", "a=group:", "a=rtpmap:", "a=fmtp:", "a=ssrc:", "a=msid:", "m=",
                  "c=", "o=", "a=candidate:", "a=rtcp-fb:", "a=rtcp:", "a=sendonly", "a=recvonly"]
SDP_VALUES = [
    "", "0", "x", "-1", "4294967296", "sha-256", "sha-256 " + ":".join(["AB"] * 32),
    "sha-512 " + ":".join(["00"] * 32), "actpass", "active", "passive",
    "video 9 UDP/TLS/RTP/SAVPF", "audio 9 UDP/TLS/RTP/SAVPF 111",
    "video x UDP/TLS/RTP/SAVPF 96", "video 9 RTP/AVP 96", "data 9 UDP/DTLS/SCTP 5000",
    "BUNDLE 0", "BUNDLE", "1 1 udp 2122260223 127.0.0.1 9 typ host",
    "1 1 udp 1 ::1 65536 typ relay", "x y z", "96 VP8/90000/2", "111 opus/48000/2", "\x00",
    "IN IP4 999.1.1.1", "9 IN IP4 127.0.0.256", "IN IP6 ::zz",
    "é中\U0001f600",
]
EXTMAP_IDS = ["0", "15", "16", "255", "256", "4096", "-1", "x", "", "99999999999999999999", "1"]
FINGERPRINTS = ["random", "empty", "short", "algorithm", "garbage"]
CANDIDATE_VALUES = ["0", "x", "-1", "65536", "99999999999", "127.0.0.1", "::1", "999.1.1.1",
                    "", "tcp", "relay", "\x00"]
NEWLINES = ["\n", "\r", "\r\r\n", " \r\n"]
SDP_OPS = ["drop", "dup", "swap", "truncate", "garble", "insert", "set", "set", "extmap-id",
           "extmap-id", "fingerprint", "candidate", "candidate", "newlines"]


@st.composite
def sdp_mutations(draw: st.DrawFn) -> SdpMutation:
    """One to three edits of the real answer, or none (the real answer itself)."""
    ops: list[tuple[Any, ...]] = []
    for _ in range(draw(st.sampled_from([0, 1, 1, 1, 2, 2, 3]))):
        name = draw(st.sampled_from(SDP_OPS))
        line, other = draw(st.integers(0, 200)), draw(st.integers(-1, 200))
        if name == "garble":
            ops.append((name, line, other, draw(utf8_text())))
        elif name == "insert":
            ops.append((name, line, draw(st.sampled_from(SDP_ODD_LINES))))
        elif name == "set":
            ops.append((name, draw(st.sampled_from(SDP_ATTRIBUTES)), other % 8 - 1,
                        draw(st.sampled_from(SDP_VALUES))))
        elif name == "extmap-id":
            ops.append((name, other % 10 - 1, draw(st.sampled_from(EXTMAP_IDS))))
        elif name == "fingerprint":
            ops.append((name, draw(st.sampled_from(FINGERPRINTS)),
                        draw(st.binary(min_size=32, max_size=32))))
        elif name == "candidate":
            ops.append((name, other % 5 - 1, line % 8 + 1, draw(st.sampled_from(CANDIDATE_VALUES))))
        elif name == "newlines":
            ops.append((name, draw(st.sampled_from(NEWLINES))))
        else:
            ops.append((name, line, other))
    return SdpMutation(tuple(ops))


def _selected(lines: list[str], prefix: str, which: int) -> list[int]:
    matches = [i for i, text in enumerate(lines) if text.startswith(prefix)]
    return matches if which < 0 else matches[which : which + 1]


def apply_sdp_mutation(sdp: str, mutation: SdpMutation) -> str:
    """The answer with `mutation`'s edits; any address in it stays on loopback."""
    lines = sdp.rstrip("\r\n").split("\r\n")
    newline = "\r\n"
    for name, *args in mutation.ops:
        count = max(1, len(lines))
        if name == "drop" and lines:
            del lines[args[0] % count]
        elif name == "dup" and lines:
            lines.insert(args[0] % count, lines[args[0] % count])
        elif name == "swap" and lines:
            i, j = args[0] % count, args[1] % count
            lines[i], lines[j] = lines[j], lines[i]
        elif name == "truncate":
            lines = lines[: args[0] % (count + 1)]
        elif name == "garble" and lines:
            index, position, junk = args[0] % count, max(0, args[1]), args[2]
            text = lines[index]
            lines[index] = text[:position] + junk + text[position + len(junk) :]
        elif name == "insert":
            lines.insert(args[0] % (count + 1), args[1])
        elif name == "set":
            prefix, which, value = args
            for i in _selected(lines, prefix, which):
                lines[i] = prefix + value if prefix.endswith((":", "=")) else f"{prefix}{value}"
        elif name == "extmap-id":
            which, value = args
            for i in _selected(lines, "a=extmap:", which):
                uri = lines[i].split(" ", 1)[1] if " " in lines[i] else ""
                lines[i] = f"a=extmap:{value} {uri}"
        elif name == "fingerprint":
            kind, noise = args
            value = {
                "random": "sha-256 " + ":".join(f"{b:02X}" for b in noise),
                "empty": "",
                "short": "sha-256 " + ":".join(f"{b:02X}" for b in noise[:5]),
                "algorithm": "sha-999 " + ":".join(f"{b:02X}" for b in noise),
                "garbage": noise.hex(),
            }[kind]
            for i in _selected(lines, "a=fingerprint:", -1):
                lines[i] = f"a=fingerprint:{value}"
        elif name == "candidate":
            which, position, value = args
            for i in _selected(lines, "a=candidate:", which):
                parts = lines[i].split(" ")
                if position < len(parts):
                    parts[position] = value
                lines[i] = " ".join(parts)
        elif name == "newlines":
            newline = args[0]
    return confine_candidates(newline.join(lines) + newline, newline)


@st.composite
def typed_objects(draw: st.DrawFn) -> Frame:
    """An object whose "type" is a message type or anything else, with random fields."""
    mode = draw(st.integers(0, 3))
    kind: Any
    if mode < 2:  # rarely leave: each one costs a rejoin and the others a renegotiation
        kind = draw(st.sampled_from(MESSAGE_TYPES[:-1] * 3 + ("leave",)))
    elif mode == 2:
        kind = draw(odd_text())
    else:
        kind = draw(wrong_values())
    names = ["name", "publish", "sdp", "candidate", "sdpMid", "sdpMLineIndex", "source",
             "muted", "peer_id", "x"]
    message = {draw(st.sampled_from(names)): draw(wrong_values())
               for _ in range(draw(st.integers(0, 3)))}
    message["type"] = kind
    return Frame(f"object type={kind!r:.30}", dumps(message, draw(st.booleans())))


MESSAGE_FIELDS: dict[str, list[str]] = {
    "join": ["name", "publish"],
    "answer": ["sdp"],
    "ice-candidate": ["candidate", "sdpMid", "sdpMLineIndex"],
    "publish": ["source"],
    "unpublish": ["source"],
    "mute": ["source", "muted"],
    "leave": [],
}


@st.composite
def wrong_field_types(draw: st.DrawFn) -> Frame:
    """A real message type with its fields present (mostly) but of the wrong type."""
    kind = draw(st.sampled_from(MESSAGE_TYPES[:-1]))  # leave has no field
    message: dict[str, Any] = {"type": kind}
    for name in MESSAGE_FIELDS[kind]:
        if draw(st.integers(0, 4)):
            message[name] = draw(wrong_values())
    return Frame(f"{kind} with wrong field types", dumps(message, draw(st.booleans())))


VALID_KINDS = ["mute"] * 4 + ["publish"] * 3 + ["unpublish"] * 3 + ["ice-candidate"] * 4 + [
    "join", "join", "leave"]


@st.composite
def valid_messages(draw: st.DrawFn) -> Frame:
    """Messages docs/protocol.md allows (some only in some states): they move the peer
    code through publish, mute, candidates, join and leave."""
    kind = draw(st.sampled_from(VALID_KINDS))
    message: dict[str, Any] = {"type": kind}
    if kind == "mute":
        message["source"] = draw(st.sampled_from(MUTABLE_SOURCES))
        message["muted"] = draw(st.booleans())
    elif kind in ("publish", "unpublish"):
        message["source"] = draw(st.sampled_from(SOURCES))
    elif kind == "ice-candidate":
        mode = draw(st.integers(0, 5))
        message["candidate"] = draw(candidate_lines()) if mode > 1 else [None, ""][mode]
        message["sdpMid"] = draw(st.sampled_from(["0", "0", "1", "7", "", "x"]))
        if draw(st.booleans()):
            message["sdpMLineIndex"] = draw(st.integers(-1, 10))
    elif kind == "join":
        message["name"] = draw(utf8_text()).strip() or "F"
        message["publish"] = draw(st.sampled_from([[], ["camera"], ["microphone", "screen"],
                                                   list(SOURCES)]))
    return Frame(f"valid-shaped {kind}", dumps(message, draw(st.booleans())))


NUMBER_TEMPLATES = ["{0}", '{{"type": "mute", "source": "camera", "muted": {0}}}',
                    '{{"type": "ice-candidate", "candidate": null, "sdpMLineIndex": {0}}}',
                    '{{"type": "join", "name": "n", "publish": [{0}]}}', "[{0}]"]
NESTINGS = [("[", "]"), ('{"a":', "}"), ('{"type":"join","name":', "}"),
            ('{"type":"mute","source":"camera","muted":[', "]}")]
NOT_ANSWERS = ["", "v=0", "v=0\r\n", "v=0\r\n" + "a=x\r\n" * 2000, "V=0\r\n", "v=0\r\nm=\r\n",
               "\r\n" * 5000, "v=0\r\n" + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n" * 300]
ODD_JSON = ["", " ", "{", "}", "[]", "null", "true", '"type"', "{}", '{"type": null}',
            '{"type": 7}', '{"type": ["join"]}', '{"type": "join", "name": "A"', "\ufeff{}",
            '{"type": "leave"}x', '{"type": "mute", "type": "leave"}', "NaN", '{"type": "\\u0000"}']


@st.composite
def raw_frames(draw: st.DrawFn) -> Frame:
    """Frames that are no message: garbage text, JSON of another kind, numbers too big for
    a parser, nesting deeper than a recursive parser goes, binary, oversized, odd JSON."""
    mode = draw(st.integers(0, 8))
    if mode == 0:
        return Frame("garbage text", draw(utf8_text()))
    if mode == 1:
        value = draw(wrong_values())
        return Frame(f"JSON {type(value).__name__}", dumps(value, draw(st.booleans())))
    if mode == 2:
        digits = draw(st.integers(20, 20_000))
        number = draw(st.sampled_from(["9" * digits, "1e" + "9" * min(digits, 50),
                                       "-0." + "0" * digits + "1"]))
        template = draw(st.sampled_from(NUMBER_TEMPLATES))
        return Frame(f"number of {digits} digits", template.format(number))
    if mode == 3:
        depth = draw(st.integers(100, 60_000))
        opener, closer = draw(st.sampled_from(NESTINGS))
        tail = "1" + closer * depth if draw(st.booleans()) else ""
        return Frame(f"nesting {depth} deep", opener * depth + tail)
    if mode == 4:
        if draw(st.booleans()):
            return Frame("binary join", dumps({"type": "join", "name": "B"}).encode())
        data = draw(st.binary(max_size=64))
        return Frame(f"binary {len(data)} bytes", data)
    if mode == 5:
        size = draw(st.integers(MAX_MESSAGE_BYTES - 16, MAX_MESSAGE_BYTES + 4096))
        filler = draw(st.sampled_from(["x", "é", "€", "😀"]))
        body = '{"type": "mute", "source": "camera", "muted": true, "pad": "'
        text = body + filler * max(0, (size - len(body) - 2) // len(filler.encode())) + '"}'
        return Frame(f"{len(text.encode())}-byte mute", text)
    if mode == 6:
        sdp = draw(st.sampled_from(NOT_ANSWERS))
        return Frame(f"answer with a non-answer SDP {sdp[:12]!r}",
                     dumps({"type": "answer", "sdp": sdp}))
    return Frame("odd JSON", draw(st.sampled_from(ODD_JSON)))


@st.composite
def signaling_frames(draw: st.DrawFn) -> Frame:
    mode = draw(st.integers(0, 11))
    if mode < 2:
        return draw(raw_frames())
    if mode < 4:
        return draw(typed_objects())
    if mode < 6:
        return draw(wrong_field_types())
    if mode < 8:
        return draw(valid_messages())
    mutation = draw(sdp_mutations())
    return Frame(f"answer {mutation!r}", mutation)
