"""Signaling messages: every invalid client frame is a BadMessage, valid ones parse to
dataclasses, and the server's builders produce exactly the shapes in docs/protocol.md."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from kaamos_sfu import protocol
from kaamos_sfu.protocol import (
    REFUSAL_CLOSE_CODES,
    Answer,
    BadMessage,
    CloseCode,
    ErrorCode,
    IceCandidate,
    Join,
    Leave,
    Mute,
    PeerInfo,
    Publish,
    Unpublish,
    parse_client_message,
)

DOC = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()


def doc_examples() -> dict[str, list[dict[str, Any]]]:
    """Every JSON example of docs/protocol.md, by message type (one object or one per line)."""
    examples: dict[str, list[dict[str, Any]]] = {}
    for block in re.findall(r"```json\n(.*?)```", DOC, re.DOTALL):
        try:
            objects = [json.loads(block)]
        except ValueError:
            objects = [json.loads(line) for line in block.splitlines() if line.strip()]
        for obj in objects:
            examples.setdefault(obj["type"], []).append(obj)
    return examples


EXAMPLES = doc_examples()


def msg(**fields: Any) -> str:
    return json.dumps(fields)


# Invalid client frames

BAD = [
    # the frame
    ("not JSON", "hello", "invalid JSON"),
    ("truncated JSON", '{"type": "join"', "invalid JSON"),
    ("empty frame", "", "invalid JSON"),
    ("JSON array", '["join"]', "JSON object"),
    ("JSON string", '"join"', "JSON object"),
    ("JSON null", "null", "JSON object"),
    ("JSON number", "42", "JSON object"),
    # the type
    ("no type", msg(name="Alice"), '"type"'),
    ("type null", msg(type=None), '"type"'),
    ("type not a string", msg(type=1), '"type"'),
    ("type is a list", msg(type=["join"]), '"type"'),
    ("unknown type", msg(type="hello"), "'hello'"),
    ("type with wrong case", msg(type="Join", name="A"), "'Join'"),
    ("server-only type", msg(type="offer", sdp="v=0\r\n"), "'offer'"),
    # join
    ("join without name", msg(type="join"), '"name"'),
    ("join name not a string", msg(type="join", name=7), '"name"'),
    ("join name null", msg(type="join", name=None), '"name"'),
    ("join name empty", msg(type="join", name=""), '"name"'),
    ("join name whitespace", msg(type="join", name=" \t\n "), '"name"'),
    ("join name too long", msg(type="join", name="x" * 65), '"name"'),
    ("join name too long after trim", msg(type="join", name=" " + "é" * 65 + " "), '"name"'),
    ("join publish not a list", msg(type="join", name="A", publish="camera"), '"publish"'),
    ("join publish an object", msg(type="join", name="A", publish={"camera": True}), '"publish"'),
    ("join publish null", msg(type="join", name="A", publish=None), '"publish"'),
    ("join publish unknown", msg(type="join", name="A", publish=["camera", "webcam"]), '"publish"'),
    ("join publish a number", msg(type="join", name="A", publish=[1]), '"publish"'),
    ("join publish nested list", msg(type="join", name="A", publish=[["camera"]]), '"publish"'),
    ("join publish an object item", msg(type="join", name="A", publish=[{}]), '"publish"'),
    (
        "join publish duplicate",
        msg(type="join", name="A", publish=["camera", "camera"]),
        '"publish"',
    ),
    ("join publish wrong case", msg(type="join", name="A", publish=["Camera"]), '"publish"'),
    # answer
    ("answer without sdp", msg(type="answer"), '"sdp"'),
    ("answer sdp null", msg(type="answer", sdp=None), '"sdp"'),
    ("answer sdp not a string", msg(type="answer", sdp={"type": "answer"}), '"sdp"'),
    ("answer sdp empty", msg(type="answer", sdp=""), '"sdp"'),
    ("answer sdp not SDP", msg(type="answer", sdp="hello"), '"sdp"'),
    ("answer sdp with leading space", msg(type="answer", sdp=" v=0\r\n"), '"sdp"'),
    ("answer sdp of another version", msg(type="answer", sdp="v=1\r\n"), '"sdp"'),
    # ice-candidate
    ("candidate a number", msg(type="ice-candidate", candidate=1, sdpMid="0"), '"candidate"'),
    ("candidate an object", msg(type="ice-candidate", candidate={}, sdpMid="0"), '"candidate"'),
    ("candidate true", msg(type="ice-candidate", candidate=True, sdpMid="0"), '"candidate"'),
    (
        "candidate without mid or index",
        msg(type="ice-candidate", candidate="candidate:1"),
        "sdpMid",
    ),
    ("sdpMid not a string", msg(type="ice-candidate", candidate="c", sdpMid=0), '"sdpMid"'),
    (
        "sdpMLineIndex a string",
        msg(type="ice-candidate", candidate="c", sdpMLineIndex="0"),
        '"sdpMLineIndex"',
    ),
    (
        "sdpMLineIndex a bool",
        msg(type="ice-candidate", candidate="c", sdpMLineIndex=True),
        '"sdpMLineIndex"',
    ),
    (
        "sdpMLineIndex a float",
        msg(type="ice-candidate", candidate="c", sdpMLineIndex=0.5),
        '"sdpMLineIndex"',
    ),
    ("end with wrong sdpMid", msg(type="ice-candidate", candidate=None, sdpMid=[]), '"sdpMid"'),
    # publish / unpublish
    ("publish without source", msg(type="publish"), '"source"'),
    ("publish source null", msg(type="publish", source=None), '"source"'),
    ("publish source unknown", msg(type="publish", source="webcam"), '"source"'),
    ("publish source list", msg(type="publish", source=["screen"]), '"source"'),
    ("unpublish without source", msg(type="unpublish"), '"source"'),
    ("unpublish source unknown", msg(type="unpublish", source="audio"), '"source"'),
    # mute
    ("mute without source", msg(type="mute", muted=True), '"source"'),
    ("mute of screen", msg(type="mute", source="screen", muted=True), '"source"'),
    ("mute source unknown", msg(type="mute", source="speaker", muted=True), '"source"'),
    ("mute without muted", msg(type="mute", source="camera"), '"muted"'),
    ("mute muted a string", msg(type="mute", source="camera", muted="true"), '"muted"'),
    ("mute muted a number", msg(type="mute", source="camera", muted=1), '"muted"'),
    ("mute muted null", msg(type="mute", source="camera", muted=None), '"muted"'),
]


@pytest.mark.parametrize(("text", "words"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_message(text: str, words: str) -> None:
    """An invalid client frame raises BadMessage whose text names what is wrong."""
    with pytest.raises(BadMessage) as caught:
        parse_client_message(text)
    message = str(caught.value)
    assert words in message
    try:
        kind = json.loads(text).get("type")
    except (ValueError, AttributeError):
        kind = None
    if kind in ("join", "answer", "ice-candidate", "publish", "unpublish", "mute"):
        assert message.startswith(kind + ":")  # says which message was wrong


@pytest.mark.parametrize(
    "text",
    ["[" * 50_000, '{"type": "join", "name": ' + "[" * 50_000],
    ids=["nested arrays", "nested inside join"],
)
def test_deeply_nested_json_is_a_bad_message(text: str) -> None:
    """A frame under the 64 KiB limit nested too deep for the parser is a BadMessage too."""
    assert len(text.encode()) < 65536
    with pytest.raises(BadMessage):
        parse_client_message(text)


# Valid client frames

GOOD = [
    (
        "join",
        msg(type="join", name="Alice", publish=["camera", "microphone"]),
        Join(name="Alice", publish=("camera", "microphone")),
    ),
    ("join without publish", msg(type="join", name="Bob"), Join(name="Bob", publish=())),
    ("join publish empty", msg(type="join", name="Bob", publish=[]), Join(name="Bob", publish=())),
    (
        "join name trimmed",
        msg(type="join", name="  Ann Lee \n", publish=["microphone"]),
        Join(name="Ann Lee", publish=("microphone",)),
    ),
    (
        "join name of 64 characters",
        msg(type="join", name="é" * 64),
        Join(name="é" * 64, publish=()),
    ),
    ("join name of 1 character", msg(type="join", name=" a "), Join(name="a", publish=())),
    (
        "join publish in canonical order",
        msg(type="join", name="A", publish=["screen", "microphone", "camera"]),
        Join(name="A", publish=("camera", "microphone", "screen")),
    ),
    (
        "join extra fields ignored",
        msg(type="join", name="A", token="x"),
        Join(name="A", publish=()),
    ),
    (
        "answer",
        msg(type="answer", sdp="v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"),
        Answer(sdp="v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"),
    ),
    (
        "candidate with mid and index",
        msg(
            type="ice-candidate",
            candidate="candidate:1 1 udp 1 1.2.3.4 5 typ host",
            sdpMid="0",
            sdpMLineIndex=0,
        ),
        IceCandidate(
            candidate="candidate:1 1 udp 1 1.2.3.4 5 typ host", sdp_mid="0", sdp_mline_index=0
        ),
    ),
    (
        "candidate with mid only",
        msg(type="ice-candidate", candidate="candidate:2", sdpMid="audio"),
        IceCandidate(candidate="candidate:2", sdp_mid="audio", sdp_mline_index=None),
    ),
    (
        "candidate with index only",
        msg(type="ice-candidate", candidate="candidate:3", sdpMLineIndex=2),
        IceCandidate(candidate="candidate:3", sdp_mid=None, sdp_mline_index=2),
    ),
    (
        "end of candidates: null",
        msg(type="ice-candidate", candidate=None),
        IceCandidate(candidate=None, sdp_mid=None, sdp_mline_index=None),
    ),
    (
        "end of candidates: empty string",
        msg(type="ice-candidate", candidate="", sdpMid="0", sdpMLineIndex=0),
        IceCandidate(candidate=None, sdp_mid="0", sdp_mline_index=0),
    ),
    ("publish screen", msg(type="publish", source="screen"), Publish(source="screen")),
    ("publish camera", msg(type="publish", source="camera"), Publish(source="camera")),
    (
        "unpublish microphone",
        msg(type="unpublish", source="microphone"),
        Unpublish(source="microphone"),
    ),
    (
        "mute microphone",
        msg(type="mute", source="microphone", muted=True),
        Mute(source="microphone", muted=True),
    ),
    (
        "unmute camera",
        msg(type="mute", source="camera", muted=False),
        Mute(source="camera", muted=False),
    ),
    ("leave", msg(type="leave"), Leave()),
    ("leave with extra fields", msg(type="leave", reason="bye"), Leave()),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in GOOD], ids=[c[0] for c in GOOD])
def test_valid_message(text: str, expected: object) -> None:
    """A valid client frame parses to the matching dataclass, normalized."""
    assert parse_client_message(text) == expected


CLIENT_TYPES = ["join", "answer", "ice-candidate", "publish", "unpublish", "mute", "leave"]


@pytest.mark.parametrize("kind", CLIENT_TYPES)
def test_documented_client_examples_parse(kind: str) -> None:
    """Every client message example in docs/protocol.md is accepted by the parser."""
    examples = EXAMPLES[kind]
    assert examples
    for example in examples:
        parsed = parse_client_message(json.dumps(example))
        assert type(parsed).__name__.lower() == kind.replace("-", "")


# Server messages

BOB = PeerInfo(
    peer_id="u7Hn2PqR0s",
    name="Bob",
    sources=["camera", "microphone"],
    muted={"camera": False, "microphone": True},
)
BUILT: dict[str, list[protocol.ServerMessage]] = {
    "joined": [
        protocol.Joined(
            peer_id="Qm3xT9aLk2", room_id="AbCdEf1234", peers=[BOB.to_json()], ice_servers=[]
        )
    ],
    "offer": [
        protocol.Offer(
            "v=0\r\n...",
            {
                "0": ("Qm3xT9aLk2", "camera"),
                "1": ("Qm3xT9aLk2", "microphone"),
                "2": ("u7Hn2PqR0s", "camera"),
                "3": ("u7Hn2PqR0s", "microphone"),
            },
        )
    ],
    "peer-joined": [protocol.peer_joined(PeerInfo("u7Hn2PqR0s", "Bob", ["camera", "microphone"]))],
    "peer-left": [protocol.PeerLeft("u7Hn2PqR0s")],
    "peer-updated": [
        protocol.peer_updated(
            PeerInfo(
                "u7Hn2PqR0s",
                "Bob",
                ["screen", "microphone", "camera"],  # given out of order on purpose
                {"camera": False, "microphone": True},
            )
        )
    ],
    "room-ended": [protocol.RoomEnded()],
    "server-shutdown": [protocol.ServerShutdown(5)],
    "error": [
        protocol.Error(ErrorCode.ROOM_FULL, "This room already has 4 participants."),
        protocol.Error(
            ErrorCode.RATE_LIMITED,
            "More than 60 connections per minute from this address.",
            retry_after=17,
        ),
        protocol.Error(
            ErrorCode.WRONG_NODE,
            "This room is served by another node.",
            signaling_url="ws://10.0.0.6:8081/ws/AbCdEf1234",
        ),
    ],
}


@pytest.mark.parametrize("kind", sorted(BUILT))
def test_builders_match_the_documented_examples(kind: str) -> None:
    """Each server message serializes to exactly the JSON of the example in docs/protocol.md."""
    built = [json.loads(json.dumps(protocol.serialize(message))) for message in BUILT[kind]]
    assert built == EXAMPLES[kind]


def test_every_documented_server_message_has_a_builder() -> None:
    """No message type documented in protocol.md lacks a parser or a message class."""
    assert set(EXAMPLES) == set(BUILT) | set(CLIENT_TYPES) | {"ice-candidate"}


@pytest.mark.parametrize(
    ("peer", "expected"),
    [
        (
            PeerInfo("a1b2c3d4e5", "Ann"),
            {
                "peer_id": "a1b2c3d4e5",
                "name": "Ann",
                "sources": [],
                "muted": {"camera": False, "microphone": False},
            },
        ),
        (
            PeerInfo(
                "a1b2c3d4e5", "Ann", ["screen", "camera"], {"camera": True, "microphone": False}
            ),
            {
                "peer_id": "a1b2c3d4e5",
                "name": "Ann",
                "sources": ["camera", "screen"],
                "muted": {"camera": True, "microphone": False},
            },
        ),
    ],
)
def test_peer_object(peer: PeerInfo, expected: dict[str, Any]) -> None:
    """A peer object always has its four fields, sources in camera, microphone, screen order."""
    assert peer.to_json() == expected


def test_peer_object_is_a_copy() -> None:
    """A built message does not change when the peer's state changes later."""
    peer = PeerInfo("a1b2c3d4e5", "Ann", ["camera"])
    message = protocol.serialize(protocol.peer_updated(peer))
    peer.muted["camera"] = True
    peer.sources.append("screen")
    assert message["peer"]["muted"] == {"camera": False, "microphone": False}
    assert message["peer"]["sources"] == ["camera"]


def test_peer_defaults_are_not_shared() -> None:
    """Two PeerInfo objects never share their default muted or sources containers."""
    a, b = PeerInfo("a", "A"), PeerInfo("b", "B")
    a.muted["camera"] = True
    a.sources.append("camera")
    assert b.muted == {"camera": False, "microphone": False}
    assert b.sources == []


def test_offer_without_tracks() -> None:
    """An offer whose m-lines are all inactive has an empty tracks object."""
    message = protocol.serialize(protocol.Offer("v=0\r\n", {}))
    assert message == {"type": "offer", "sdp": "v=0\r\n", "tracks": {}}


@pytest.mark.parametrize("code", list(ErrorCode))
def test_error_code_is_a_plain_string(code: ErrorCode) -> None:
    """The error builder puts the bare code name on the wire."""
    message = json.loads(json.dumps(protocol.serialize(protocol.Error(code, "why"))))
    assert message == {"type": "error", "code": code.name, "message": "why"}


def doc_table(heading: str) -> list[list[str]]:
    """The body rows of the first markdown table after `heading`, as stripped cells."""
    lines = DOC.split(heading, 1)[1].splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("|"))
    table = []
    for line in lines[first + 2 :]:  # skip the header row and the separator
        if not line.startswith("|"):
            break
        table.append([cell.strip() for cell in line.strip("|").split("|")])
    return table


def test_error_codes_and_refusal_close_codes_match_the_doc() -> None:
    """The error table of protocol.md lists every ErrorCode and each refusal's close code."""
    rows = doc_table("### `error`")
    documented = {row[0].strip("`"): row[2] for row in rows}
    assert set(documented) == {c.value for c in ErrorCode}
    for code, close in REFUSAL_CLOSE_CODES.items():
        assert documented[code.value] == f"close {int(close)}"
    assert "close" not in documented[ErrorCode.BAD_MESSAGE.value]


def test_close_codes_match_the_doc() -> None:
    """The close-code table of protocol.md lists exactly the CloseCode values."""
    rows = doc_table("## Close codes")
    assert sorted(int(row[0]) for row in rows) == sorted(int(c) for c in CloseCode)
