"""Helpers for tests/test_fuzz.py: hypothesis strategies for signaling frames, SDP answer
mutations and crafted RTP/RTCP; what docs/protocol.md says the server must answer; a
signaling fuzzer, a media attacker and a watch on the others' media.

Hypothesis runs only synchronous test functions, while the server and its clients live on
the test's event loop, whose media must keep flowing while examples are made. So
`Examples` runs a `@given` function that only collects the examples (`draw_examples`) in a
child process, from the start of the test, chunk after chunk; the test plays them on the
loop at its own pace as they come and judges each one itself (no shrinking: the server
under test is stateful). A process rather than a thread: hypothesis reseeds the global
`random` while it draws, which must not happen under the server's feet, and drawing takes
seconds of CPU that the other core can spend. The seeds are fixed: the same examples on
every run, unless KAAMOS_FUZZ_SEED is set.

What depends on the running call (the answer to the current offer, the SSRCs and sequence
numbers of its streams) is drawn as a *plan* (which line to edit and how, how far to jump a
sequence number) and made concrete when it is sent; every frame or packet prints as a short
label. Strategies are flat composites of integer, sampled and binary draws: each draw costs
tens of microseconds, and nested one_of/tuples trees made generation slower than the fuzz.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import multiprocessing
import os
import re
import struct
import time
import traceback
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Self

import aiohttp
import pylibsrtp
from aiohttp.test_utils import TestClient
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpByePacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
    pack_remb_fci,
    unpack_remb_fci,
)
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from rtc_client import RtcClient

from kaamos_sfu.rtc_bridge import close_peer_connection

# Frames or packets per fuzz test; raise it for a longer local run.
FUZZ_EXAMPLES = int(os.environ.get("KAAMOS_FUZZ_EXAMPLES", "3000"))
FUZZ_SEED = int(os.environ.get("KAAMOS_FUZZ_SEED", "0"))  # another one: other examples


class Examples:
    """`count` examples of STRATEGIES[strategy], drawn in a child process in chunks, ahead
    of their use: iterate (the first ones come while the rest are drawn), or await `all()`.
    Chunk i is drawn from seed i (KAAMOS_FUZZ_SEED shifts them): the same on every run."""

    CHUNK = 500

    def __init__(self, strategy: str, count: int) -> None:
        self.count = count
        context = multiprocessing.get_context("spawn")  # a fork would copy the running loop
        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=context)
        loop = asyncio.get_running_loop()
        self._chunks = [
            loop.run_in_executor(
                self._pool, draw_examples, strategy, min(self.CHUNK, count - start),
                FUZZ_SEED + start // self.CHUNK,
            )
            for start in range(0, count, self.CHUNK)
        ]

    async def __aiter__(self) -> AsyncIterator[Any]:
        for chunk in self._chunks:
            for example in await chunk:
                yield example

    async def all(self) -> list[Any]:
        return [example async for example in self]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)  # a failed test stops drawing


def draw_examples(strategy: str, count: int, seed_value: int) -> list[Any]:
    """`count` examples of STRATEGIES[strategy], in hypothesis examples of 50 (its
    per-example overhead is large). No shrinking and no database: they are only collected."""
    drawn: list[Any] = []
    batch = 50

    @seed(seed_value)
    @settings(
        max_examples=max(1, -(-count // batch)),
        deadline=None,
        database=None,
        phases=(Phase.explicit, Phase.generate),
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(STRATEGIES[strategy](), min_size=batch, max_size=batch))
    def collect(examples: list[Any]) -> None:
        drawn.extend(examples)

    collect()
    return drawn[:count]


# Logs


def server_exceptions(records: Sequence[logging.LogRecord]) -> list[str]:
    """Errors logged with a traceback by the server, by aiohttp for a request the server
    failed, or by anyone (asyncio: a callback) for an exception raised in server code."""
    found = []
    for record in records:
        if record.levelno < logging.ERROR or not record.exc_info or not record.exc_info[1]:
            continue
        error = record.exc_info[1]
        server_side = record.name.startswith(("kaamos_sfu", "aiohttp.server", "aiohttp.web"))
        frames = traceback.extract_tb(error.__traceback__)
        if server_side or any(f"{os.sep}kaamos_sfu{os.sep}" in f.filename for f in frames):
            found.append(f"{record.name}: {record.getMessage().splitlines()[0][:80]}: {error!r}")
    return found


class ServerErrors:
    """Server exceptions captured (by caplog) since the last look."""

    def __init__(self, caplog: Any) -> None:
        self.caplog = caplog
        self._seen = 0

    def new(self) -> list[str]:
        records = self.caplog.records
        fresh, self._seen = records[self._seen :], len(records)
        return server_exceptions(fresh)


def transport_task_failures(records: Sequence[logging.LogRecord]) -> list[str]:
    """The last line of each traceback aiortc logged for a transport task it lost."""
    return [
        record.getMessage().strip().splitlines()[-1]
        for record in records
        if record.name.startswith("aiortc") and "Traceback" in record.getMessage()
    ]


def summarize(problems: Sequence[str | tuple[str, str]], limit: int = 6) -> str:
    """At most `limit` distinct problems, with how often each was seen; a problem given as
    (what, example) shows its first example."""
    counts: Counter[str] = Counter()
    examples: dict[str, str] = {}
    for problem in problems:
        what, example = problem if isinstance(problem, tuple) else (problem, "")
        counts[what] += 1
        examples.setdefault(what, example)
    lines = []
    for what, n in counts.most_common(limit):
        example = f"\n      e.g. {examples[what]}" if examples[what] else ""
        lines.append(f"{n} x {what}{example}" if n > 1 else f"{what}{example}")
    if len(counts) > limit:
        lines.append(f"... and {len(counts) - limit} more distinct ones")
    return "\n  ".join(lines)


# Signaling frames

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


# What the server must answer (docs/protocol.md)

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


REPLY_SECONDS = 10.0  # for the reply to one frame: the server hangs if it takes longer
HOLD_SECONDS = 1.0  # a peer removed for a failed media connection is closed within this


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


# The others' media

TrackKey = tuple[str, str]


@dataclass
class Flow:
    """One remote track as one client receives it."""

    receiver: RtcClient
    key: TrackKey
    label: str

    def counts(self) -> tuple[int, int]:
        mid = self.receiver.mid_of(self.key)
        if mid is None:
            return 0, 0
        record = self.receiver.received[mid]
        return record.packets, record.decoded


class MediaWatch:
    """Watches flows of media; a flow whose packets or decoded frames stop is a problem."""

    def __init__(self, flows: Sequence[Flow]) -> None:
        self.flows = list(flows)
        now = time.monotonic()
        self._last = {f.label: f.counts() for f in self.flows}
        self._moved = {f.label: (now, now) for f in self.flows}

    def stalled(self, seconds: float) -> list[str]:
        """Flows whose packets or decoded frames have not grown for `seconds`."""
        now = time.monotonic()
        stalled = []
        for flow in self.flows:
            packets, decoded = flow.counts()
            last_packets, last_decoded = self._last[flow.label]
            packets_moved, decoded_moved = self._moved[flow.label]
            if packets > last_packets:
                packets_moved = now
            if decoded > last_decoded:
                decoded_moved = now
            self._last[flow.label] = (packets, decoded)
            self._moved[flow.label] = (packets_moved, decoded_moved)
            if now - packets_moved > seconds:
                stalled.append(f"{flow.label}: no packet for {now - packets_moved:.1f} s")
            elif now - decoded_moved > seconds:
                stalled.append(f"{flow.label}: no frame decoded for {now - decoded_moved:.1f} s")
        return stalled

    def packets(self) -> dict[str, int]:
        return {f.label: f.counts()[0] for f in self.flows}


def vp8_keyframe_start(payload: bytes) -> bool:
    """The payload starts a VP8 key frame (RFC 7741: S=1, partition 0, then P=0)."""
    try:
        descriptor, rest = VpxPayloadDescriptor.parse(payload)
    except ValueError:
        return False
    return bool(descriptor.partition_start and descriptor.partition_id == 0 and rest
                and not rest[0] & 1)


async def forwarded_again(
    receiver: RtcClient, publisher: RtcClient, source: str, packets: int, timeout: float
) -> str | None:
    """None once `receiver` has got `packets` packets of `publisher`'s `source` whose payload
    is byte for byte one the publisher sent, a video key frame among them; else what came.

    Payloads, not decoded frames: after garbage, aiortc's jitter buffer and decoder may
    never recover, whatever the server does (a browser does recover), while an intact
    stream from a key frame on is what a subscriber needs."""
    record = receiver.received_from(publisher.peer_id or "", source)
    start = len(record.sequences)
    deadline = time.monotonic() + timeout
    video = source != "microphone"
    while True:
        sent = publisher.sent_on(source)
        payloads = [record.payloads.get(s) for s in record.sequences[start:]]
        intact = [p for p in payloads if p is not None and p in sent]
        keyframe = not video or any(vp8_keyframe_start(p) for p in intact)
        if len(intact) >= packets and keyframe:
            return None
        if time.monotonic() > deadline:
            return (f"{publisher.name}'s {source} at {receiver.name}: {len(payloads)} packets, "
                    f"{len(intact)} of them as sent, {'a' if keyframe else 'no'} key frame, "
                    f"in {timeout:.0f} s")
        await asyncio.sleep(0.05)


async def all_resumed(
    flows: Sequence[Flow], packets: int, frames: int, timeout: float
) -> list[str]:
    """What each flow that did not resume got (see `resumed`), all waited for at once."""
    results = await asyncio.gather(*(resumed(f, packets, frames, timeout) for f in flows))
    return [result for result in results if result is not None]


async def resumed(flow: Flow, packets: int, frames: int, timeout: float) -> str | None:
    """None once `flow` has received `packets` more packets and decoded `frames` more
    frames; else what it got."""
    start_packets, start_decoded = flow.counts()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got_packets, got_decoded = flow.counts()
        if got_packets - start_packets >= packets and got_decoded - start_decoded >= frames:
            return None
        await asyncio.sleep(0.05)
    got_packets, got_decoded = flow.counts()
    return (f"{flow.label}: {got_packets - start_packets} packets and "
            f"{got_decoded - start_decoded} frames in {timeout:.0f} s")


class LoopLag:
    """How late the event loop wakes a 20 ms sleeper: the lag every task on it suffers."""

    PERIOD = 0.02

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(self.PERIOD)
            self.samples.append(loop.time() - start - self.PERIOD)

    def window(self) -> list[float]:
        taken, self.samples = self.samples, []
        return taken

    def stop(self) -> None:
        self._task.cancel()


async def metrics(http: TestClient, *names: str) -> dict[str, float]:
    """Counters from the server's own GET /metrics (docs/api.md)."""
    response = await http.get("/metrics")
    assert response.status == 200, response.status
    values = dict.fromkeys(names, 0.0)
    for line in (await response.text()).splitlines():
        name, _, value = line.partition(" ")
        if name in values:
            values[name] = float(value)
    return values


def record_rembs(client: RtcClient, source: str) -> list[int]:
    """The bitrates of the REMBs the SFU sends to `client`'s sender of `source`."""
    mid = client.mid_of((client.peer_id or "", source))
    sender = next(t.sender for t in client.pc.getTransceivers() if t.mid == mid)
    handle = sender._handle_rtcp_packet
    bitrates: list[int] = []

    async def on_rtcp(packet: Any) -> None:
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            try:
                bitrates.append(unpack_remb_fci(packet.fci)[0])
            except (ValueError, struct.error):
                pass
        await handle(packet)

    sender._handle_rtcp_packet = on_rtcp  # type: ignore[method-assign]
    return bitrates


# Crafted RTP and RTCP

VIDEO_PAYLOAD, RTX_PAYLOAD, AUDIO_PAYLOAD = "video", "rtx", "audio"
# SSRCs the crafted RTP uses; the attacker's own are skipped (its real camera must be able
# to come back, and the SRTP contexts of its real streams must not be disturbed).
FUZZ_SSRCS = (0, 1, 0x0BADF00D, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x13572468, 0xCAFEBABE)


@dataclass(frozen=True)
class Crafted:
    """A packet plan, made concrete against a running call by `PacketBuilder`."""

    kind: str  # "rtp" or "rtcp"
    parts: tuple[tuple[Any, ...], ...]

    def __repr__(self) -> str:
        shown = "; ".join(
            " ".join(f"{len(v)}B" if isinstance(v, bytes) else str(v) for v in part)
            for part in self.parts
        )
        return f"{self.kind}[{shown}]"


SEQUENCE_MOVES = ["+1"] * 6 + ["small", "forward", "back", "half", "set"]
RTP_DEFECTS = [None] * 8 + ["version", "csrc-truncated", "csrc-15", "extension-truncated",
                            "extension-garbage", "padding-bogus", "padding-only",
                            "empty-payload", "short", "jumbo", "keyframe"]
PAYLOAD_TYPES: list[str | int] = [VIDEO_PAYLOAD, VIDEO_PAYLOAD, VIDEO_PAYLOAD, RTX_PAYLOAD,
                                  AUDIO_PAYLOAD, -1]
# A video packet sent again as RTX, its original sequence number taken from the run's: a
# plausibly late one, or one far ahead of or behind the stream, or anything.
RTX_MOVES = [None] * 6 + ["late", "ahead", "ahead", "behind", "any"]
SAME = "same"  # the SSRC and payload type of the packet before: RTP comes in runs


@st.composite
def rtp_plans(draw: st.DrawFn) -> Crafted:
    """RTP with odd headers, payload types, SSRCs and sequence numbers jumping about.

    Mostly a run on one SSRC and payload type (the forwarding reacts to runs: another SSRC
    restarts a stream, a keyframe starts it again), now and then another SSRC."""
    pick = draw(st.integers(0, 19))
    ssrc: int | str = SAME
    if 14 <= pick < 19:
        ssrc = FUZZ_SSRCS[draw(st.integers(0, len(FUZZ_SSRCS) - 1))]
    elif pick == 19:
        ssrc = draw(st.integers(0, 2**32 - 1))
    payload_type: str | int = SAME
    if ssrc != SAME:
        payload_type = draw(st.sampled_from(PAYLOAD_TYPES))
        if payload_type == -1:
            payload_type = draw(st.integers(0, 127))
    move = draw(st.sampled_from(SEQUENCE_MOVES))
    amount = {
        "+1": lambda: 1,
        "small": lambda: draw(st.integers(-64, 64)),
        "forward": lambda: draw(st.integers(1025, 32767)),
        "back": lambda: -draw(st.integers(1025, 32767)),
        "half": lambda: draw(st.integers(32768, 65535)),
        "set": lambda: draw(st.integers(0, 65535)),
    }[move]()
    timestamp_step = draw(st.sampled_from([3000, 3000, 0, 960, -3000, 2**31, 2**32 - 1]))
    # A new run mostly starts with a keyframe, so that the subscribers take it.
    defect = draw(st.sampled_from(RTP_DEFECTS))
    if ssrc != SAME and draw(st.integers(0, 3)):
        defect = "keyframe"
    rtx: tuple[str, int] | None = None
    rtx_move = draw(st.sampled_from(RTX_MOVES))
    if rtx_move == "late":
        rtx = ("step", -draw(st.integers(0, 5)))
    elif rtx_move == "ahead":
        rtx = ("step", draw(st.integers(1025, 8000)))
    elif rtx_move == "behind":
        rtx = ("step", -draw(st.integers(1025, 32767)))
    elif rtx_move == "any":
        rtx = ("set", draw(st.integers(0, 65535)))
    return Crafted("rtp", ((
        ssrc,
        ("set" if move == "set" else "step", amount),
        timestamp_step,
        payload_type,
        draw(st.booleans()),  # marker
        defect,
        draw(st.binary(max_size=200)),
        rtx,
    ),))


RTCP_KINDS = ["nack"] * 4 + ["pli"] * 3 + ["remb"] * 3 + ["psfb", "sr", "rr", "bye", "sdes",
                                                           "app", "xr", "unknown"]
NACK_SIZES = [1, 2, 10, 50, 100, 300, 500]
NACK_SHAPES = ["consecutive", "spread", "repeated", "repeated"]
REMB_BITRATES = [0, 0, 1, 1000, 9_999, 300_000, 2**40]
RTCP_DEFECTS = [None] * 5 + ["truncate", "length", "version", "padding", "tiny"]


@st.composite
def rtcp_parts(draw: st.DrawFn) -> tuple[Any, ...]:
    """One RTCP packet; `stream` picks one of the four forwarded streams the attacker
    receives (0-1 video, 2-3 audio), so that feedback reaches a real subscription."""
    kind = draw(st.sampled_from(RTCP_KINDS))
    stream = draw(st.integers(0, 3))
    if kind == "nack":  # mostly video (the SFU keeps video to resend), mostly recent
        stream = draw(st.sampled_from([0, 0, 1, 1, 2]))
        return (kind, stream, draw(st.sampled_from([0, 0, 5, 64, 600])),
                draw(st.sampled_from(NACK_SIZES)), draw(st.sampled_from(NACK_SHAPES)))
    if kind == "pli":
        return (kind, stream, draw(st.sampled_from([1, 1, 5, 40])))
    if kind == "remb":
        streams = tuple(range(stream % 3))
        return (kind, draw(st.sampled_from(REMB_BITRATES)), streams,
                draw(st.sampled_from([0, 0, 0, 1, 3, 255])))  # SSRCs claimed, not carried
    if kind in ("sr", "rr"):
        return (kind, stream, draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 31)),
                draw(st.binary(max_size=24)))
    if kind == "bye":
        return (kind, stream, draw(st.integers(0, 2**32 - 1)))
    return (kind, draw(st.integers(0, 31)), draw(st.binary(max_size=40)))


@st.composite
def rtcp_plans(draw: st.DrawFn) -> Crafted:
    """A compound of one to four RTCP packets, then maybe broken as a whole."""
    parts = [draw(rtcp_parts()) for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3, 4])))]
    defect = draw(st.sampled_from(RTCP_DEFECTS))
    return Crafted("rtcp", (*parts, ("defect", defect, draw(st.integers(0, 2**16)))))


def _vp8_keyframe_start(payload: bytes) -> bytes:
    """A VP8 payload descriptor (S=1, PID=0), then a frame header byte with P=0 (key)."""
    return b"\x10" + bytes([(payload[:1] or b"\x00")[0] & 0xFE]) + payload[1:]


class PacketBuilder:
    """Makes `Crafted` plans concrete for one attacker in a running call: its negotiated
    payload types, the streams it receives, and per crafted SSRC the sequence number and
    timestamp reached (so that a jump is a jump from there)."""

    def __init__(
        self,
        *,
        payload_types: dict[str, int],
        own_ssrcs: set[int],
        streams: Sequence[Callable[[], tuple[int, int]]],
    ) -> None:
        self.payload_types = payload_types
        self.own_ssrcs = own_ssrcs
        self.streams = streams  # () -> (SSRC at the attacker, last sequence number received)
        self._sequences: dict[int, int] = {}
        self._timestamps: dict[int, int] = {}
        self._run: tuple[int, int] = (FUZZ_SSRCS[2], 0)  # the current run's SSRC, payload type
        self._undo: tuple[int, int | None, int | None] | None = None

    def refused(self) -> None:
        """The last packet built was not sent protected: the receiver never saw its
        sequence number, so the next ones go on from the one before."""
        if self._undo is not None:
            ssrc, sequence, timestamp = self._undo
            for table, value in ((self._sequences, sequence), (self._timestamps, timestamp)):
                if value is None:
                    table.pop(ssrc, None)
                else:
                    table[ssrc] = value

    def build(self, plan: Crafted) -> bytes:
        self._undo = None
        if plan.kind == "rtp":
            return self._rtp(*plan.parts[0])
        body = b"".join(self._rtcp(*part) for part in plan.parts[:-1])
        _, defect, value = plan.parts[-1]
        return _rtcp_defect(body, defect, value)

    def _rtp(
        self, ssrc: int | str, move: tuple[str, int], timestamp_step: int,
        payload_type: str | int, marker: bool, defect: str | None, payload: bytes,
        rtx: tuple[str, int] | None,
    ) -> bytes:
        if ssrc == SAME:
            ssrc, payload_type = self._run
        assert isinstance(ssrc, int)
        ssrc = self._not_own(ssrc)
        if isinstance(payload_type, str):
            payload_type = self.payload_types[payload_type]
        self._run = (ssrc, payload_type)
        original = b""
        if rtx is not None and payload_type == self.payload_types[VIDEO_PAYLOAD]:
            # Sent again as RTX (RFC 4588): on its own SSRC and numbering, the original
            # sequence number first in the payload, picked from the run's.
            current = self._sequences.get(ssrc, 1000)
            number = (current + rtx[1]) & 0xFFFF if rtx[0] == "step" else rtx[1]
            original = struct.pack("!H", number)
            media_ssrc, ssrc = ssrc, self._not_own(ssrc ^ 0x52545800)
            self._timestamps.setdefault(ssrc, self._timestamps.get(media_ssrc, 0))
            move, timestamp_step = ("step", 1), 0
            payload_type = self.payload_types[RTX_PAYLOAD]
        self._undo = (ssrc, self._sequences.get(ssrc), self._timestamps.get(ssrc))
        previous = self._sequences.get(ssrc, 1000)
        sequence = (previous + move[1]) & 0xFFFF if move[0] == "step" else move[1]
        timestamp = (self._timestamps.get(ssrc, 0) + timestamp_step) & 0xFFFFFFFF
        self._sequences[ssrc], self._timestamps[ssrc] = sequence, timestamp
        first, middle = 0x80, b""
        if defect == "keyframe":
            payload = _vp8_keyframe_start(payload)
        elif defect == "version":
            first = (0x00, 0x40, 0xC0)[len(payload) % 3]
        elif defect == "csrc-truncated":  # 15 CSRCs announced, fewer carried
            first, payload = first | 0x0F, payload[: 4 * (len(payload) % 15)]
        elif defect == "csrc-15":
            first, middle = first | 0x0F, bytes(range(60))
        elif defect == "extension-truncated":
            first, middle = first | 0x10, struct.pack("!HH", 0xBEDE, 200)
        elif defect == "extension-garbage":  # a well-sized block of nonsense elements
            words = payload[: 4 * (len(payload) // 8)]
            profile = 0x1000 if len(payload) % 2 else 0xBEDE
            first, middle = first | 0x10, struct.pack("!HH", profile, len(words) // 4) + words
            payload = payload[len(words) :]
        elif defect == "padding-bogus":  # the padding count says 0, or more than there is
            first, payload = first | 0x20, payload + bytes([0 if len(payload) % 2 else 255])
        elif defect == "padding-only":
            first, payload = first | 0x20, b"\x00\x00\x00\x04"
        elif defect == "empty-payload":
            payload = b""
        elif defect == "jumbo":  # above any MTU (fine on loopback), and SRTP's 1500 bytes
            payload = payload * (3000 // max(1, len(payload))) or bytes(3000)
        header = struct.pack("!BBHII", first, (0x80 if marker else 0) | payload_type,
                             sequence, timestamp, ssrc)
        data = header + middle + original + payload
        return data[: len(payload) % 12] if defect == "short" else data

    def _not_own(self, ssrc: int) -> int:
        while ssrc in self.own_ssrcs:
            ssrc = (ssrc + 1) & 0xFFFFFFFF
        return ssrc

    def _stream(self, index: int) -> tuple[int, int]:
        return self.streams[index % len(self.streams)]()

    def _rtcp(self, kind: str, *args: Any) -> bytes:
        sender = 0x5EED0001
        if kind == "nack":
            stream, back, count, shape = args
            media_ssrc, last = self._stream(stream)
            if shape == "repeated":  # the same 17 packets asked for `count` times over,
                # at most 300 times: 1.2 kB, within any MTU, asking for 5100 packets
                fci = struct.pack("!HH", (last - back - 16) & 0xFFFF, 0xFFFF) * min(count, 300)
                header = struct.pack("!BBHII", 0x81, 205, 2 + len(fci) // 4, sender, media_ssrc)
                return header + fci
            spacing = 17 if shape == "spread" else 1
            lost = sorted({(last - back - i * spacing) & 0xFFFF for i in range(count)})
            return bytes(RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=sender, media_ssrc=media_ssrc,
                                         lost=lost))
        if kind == "pli":
            stream, repeat = args
            pli = RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=sender, media_ssrc=self._stream(stream)[0])
            return bytes(pli) * repeat
        if kind == "remb":
            bitrate, streams, missing = args
            fci = bytearray(pack_remb_fci(bitrate, [self._stream(s)[0] for s in streams]))
            fci[4] = min(255, len(streams) + missing)
            return bytes(RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=sender, media_ssrc=0,
                                        fci=bytes(fci)))
        if kind in ("sr", "rr"):
            stream, value, count, noise = args
            report = RtcpReceiverInfo(ssrc=self._stream(stream)[0], fraction_lost=value & 0xFF,
                                      packets_lost=-1, highest_sequence=value, jitter=value,
                                      lsr=value, dlsr=value)
            if kind == "sr":
                info = RtcpSenderInfo(ntp_timestamp=value << 32 | value, rtp_timestamp=value,
                                      packet_count=value, octet_count=0)
                data = bytes(RtcpSrPacket(ssrc=value, sender_info=info, reports=[report]))
            else:
                data = bytes(RtcpRrPacket(ssrc=value, reports=[report]))
            noise = noise[: 4 * (len(noise) // 4)]
            return _with_count(data + noise, count, grow=len(noise) // 4)
        if kind == "bye":
            stream, other = args
            return bytes(RtcpByePacket(sources=[self._stream(stream)[0], other]))
        count, noise = args
        noise = noise[: 4 * (len(noise) // 4)]
        if kind == "psfb":  # FIR or any other feedback type, around noise
            packet = RtcpPsfbPacket(fmt=RTCP_PSFB_FIR, ssrc=sender, media_ssrc=0, fci=noise)
            return _with_count(bytes(packet), count)
        packet_type = {"sdes": 202, "app": 204, "xr": 207}.get(kind, 192 + count)
        return struct.pack("!BBH", 0x80 | count, packet_type, len(noise) // 4) + noise


def _with_count(data: bytes, count: int, grow: int = 0) -> bytes:
    """The packet with another count (or feedback type) field, and a length field `grow`
    words longer (for what was appended)."""
    length = struct.unpack_from("!H", data, 2)[0] + grow
    first = 0x80 | (data[0] & 0x20) | count
    return bytes([first]) + data[1:2] + struct.pack("!H", length) + data[4:]


def _rtcp_defect(data: bytes, defect: str | None, value: int) -> bytes:
    if defect == "truncate" and len(data) > 8:
        return data[: 8 + value % (len(data) - 8)]
    if defect == "length":
        return data[:2] + struct.pack("!H", value & 0xFFFF) + data[4:]
    if defect == "version":
        return bytes([(data[0] & 0x3F) | ((value % 3) << 6)]) + data[1:]
    if defect == "padding":
        return bytes([data[0] | 0x20]) + data[1:-1] + bytes([value & 0xFF])
    if defect == "tiny":
        return data[: value % 8]
    return data


class MediaAttacker:
    """Sends crafted bytes from a connected client, through its own DTLS transport.

    What libsrtp agrees to protect goes out as SRTP/SRTCP and reaches the server's parsers;
    what it refuses (no valid RTP header) goes out in the clear, for the server's SRTP layer
    to drop. The client's own `_send_rtp` is bypassed: its instrumentation parses RTP.
    """

    def __init__(self, client: RtcClient) -> None:
        self.dtls = client.pc.getTransceivers()[0].receiver.transport
        self.sent: Counter[str] = Counter()

    async def send(self, data: bytes) -> bool:
        """Send `data`; True if it went out protected."""
        srtp = self.dtls._tx_srtp
        # The server's own test: RTCP has 192-208 as its second byte (RFC 5761).
        rtcp = len(data) >= 2 and 192 <= data[1] <= 208
        try:
            data = srtp.protect_rtcp(data) if rtcp else srtp.protect(data)
            protected = True
        except (pylibsrtp.Error, ValueError):
            protected = False
        self.sent[("srtcp" if rtcp else "srtp") if protected else "clear"] += 1
        await self.dtls.transport._send(data)
        return protected


STRATEGIES: dict[str, Callable[[], st.SearchStrategy[Any]]] = {
    "signaling": signaling_frames,
    "rtp": rtp_plans,
    "rtcp": rtcp_plans,
}
