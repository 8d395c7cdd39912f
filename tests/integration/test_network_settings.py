"""Real networks: media port range, NAT 1:1 announced address and TURN REST credentials,
checked in the SDP the client gets, in the sockets the server binds, and in a real call."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
)
from call_support import base_url, clients, create_room
from ports import free_port, free_port_block
from rtc_client import RtcClient
from timing import eventually, scaled

from kaamos_sfu.appkeys import ROOMS
from kaamos_sfu.rtc_bridge import track_connect_tasks

TURN_SECRET = "coturn-static-auth-secret-for-tests"


def _server_sockets(http, room_id: str) -> list[tuple[str, int]]:
    room = http.server.app[ROOMS].rooms[room_id]
    names = []
    for peer in room.participants.values():
        connection = peer.pc.getTransceivers()[0].receiver.transport.transport._connection
        names += [p.transport.get_extra_info("sockname")[:2] for p in connection._protocols]
    return names


async def test_port_range_and_announced_address_reach_sdp_sockets_and_call(
    make_config, make_client
):
    """Candidates carry the announced address and a port of the range; the server's sockets
    are bound to the real address on those ports; media still flows (the client learns the
    real address from the server's checks, as ICE does behind a NAT)."""
    first = free_port_block(4)
    config = make_config(
        ice={
            "port_min": first,
            "port_max": first + 3,
            "announced_addresses": ["127.0.0.1=127.0.0.9"],
        }
    )
    http = await make_client(config)
    room_id = await create_room(http)
    async with clients(http, room_id, 2) as (a, b):
        offers = [m for c in (a, b) for m in c.messages if m["type"] == "offer"]
        candidates = [
            line
            for offer in offers
            for line in offer["sdp"].splitlines()
            if line.startswith("a=candidate:")
        ]
        assert candidates
        for line in candidates:
            address, port = re.split(r"\s+", line)[4:6]
            assert address == "127.0.0.9", line
            assert first <= int(port) <= first + 3, line
        sockets = _server_sockets(http, room_id)
        assert len(sockets) == 2
        for address, port in sockets:
            assert address == "127.0.0.1"
            assert first <= port <= first + 3
        await b.wait_decoded((a.peer_id, "camera"), frames=5)
        await a.wait_decoded((b.peer_id, "camera"), frames=5)


async def test_a_full_port_range_refuses_the_newcomer_and_keeps_the_call(make_config, make_client):
    """With every media port taken, a newcomer is told AT_CAPACITY and closed with 1013
    (try again later) instead of waiting for a connection that cannot come; the peer
    already in the call keeps its media."""
    first = free_port_block(1)
    http = await make_client(make_config(ice={"port_min": first, "port_max": first}))
    room_id = await create_room(http)
    async with clients(http, room_id, 1) as (a,):
        await eventually(lambda: a.pc.connectionState == "connected", what="a connected")
        late = RtcClient(base_url(http), room_id, "Late")
        try:
            assert (await late.join())["type"] == "joined"
            refusal = await late.wait_for(lambda m: m["type"] == "error")
            assert refusal["code"] == "AT_CAPACITY"
            await eventually(lambda: late.close_code is not None, what="late closed")
            assert late.close_code == 1013
        finally:
            await late.close()
        assert http.server.app[ROOMS].peer_count == 1
        assert a.pc.connectionState == "connected"


async def test_each_join_gets_fresh_turn_rest_credentials(make_config, make_client):
    """joined.ice_servers has the static servers plus TURN with a coturn-style credential:
    username "<expiry>:<peer id>", password base64(HMAC-SHA1(secret, username))."""
    config = make_config(
        ice={
            "servers": [{"urls": "stun:stun.example.org:3478"}],
            "turn_urls": ["turn:turn.example.org:3478?transport=udp"],
            "turn_secret": TURN_SECRET,
            "turn_credential_ttl_seconds": 600,
        }
    )
    http = await make_client(config)
    room_id = await create_room(http)
    async with clients(http, room_id, 2) as (a, b):
        users = []
        for client in (a, b):
            joined = await client.wait_for(lambda m: m["type"] == "joined")
            stun, turn = joined["ice_servers"]
            assert stun == {"urls": "stun:stun.example.org:3478"}
            assert turn["urls"] == ["turn:turn.example.org:3478?transport=udp"]
            expiry, user = turn["username"].split(":")
            assert user == client.peer_id
            assert abs(int(expiry) - (time.time() + 600)) < 5
            digest = hmac.new(TURN_SECRET.encode(), turn["username"].encode(), hashlib.sha1)
            assert turn["credential"] == base64.b64encode(digest.digest()).decode()
            users.append(turn["username"])
        assert users[0] != users[1]


@pytest.fixture
def turn_server(tmp_path: Path) -> Iterator[str]:
    """A real coturn (Debian's turnserver) on loopback that checks TURN REST credentials
    against TURN_SECRET, as a deployment's would; yields its turn: URL."""
    port = free_port()
    relay = free_port_block(20)
    proc = subprocess.Popen(
        [
            "turnserver",
            "-n",
            "--no-cli",
            "--no-tls",
            "--no-dtls",
            "--log-file=stdout",
            "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1",
            f"--listening-port={port}",
            f"--min-port={relay}",
            f"--max-port={relay + 19}",
            "--allow-loopback-peers",
            "--use-auth-secret",
            f"--static-auth-secret={TURN_SECRET}",
            "--realm=kaamos.test",
            f"--pidfile={tmp_path / 'turnserver.pid'}",
            f"--userdb={tmp_path / 'turndb'}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + scaled(10)
        while not _udp_port_taken(port):
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "turnserver did not start"
            time.sleep(0.05)
        yield f"turn:127.0.0.1:{port}?transport=udp"
    finally:
        proc.terminate()
        print(proc.communicate(timeout=scaled(10))[0])  # shown by pytest when the test fails


def _udp_port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


async def test_a_relay_only_client_calls_through_coturn_with_its_join_credentials(
    make_config, make_client, turn_server
):
    """A client that may only use TURN relays (as behind a UDP-blocking firewall) gets
    into the call with the credentials from joined: coturn accepts them."""
    config = make_config(ice={"turn_urls": [turn_server], "turn_secret": TURN_SECRET})
    http = await make_client(config)
    room_id = await create_room(http)
    async with clients(http, room_id, 1) as (a,):
        relayed = RtcClient(base_url(http), room_id, "Relayed", auto_answer=False)
        try:
            joined = await relayed.join()
            servers = [
                RTCIceServer(urls=s["urls"], username=s["username"], credential=s["credential"])
                for s in joined["ice_servers"]
            ]
            relayed.pc = RTCPeerConnection(
                RTCConfiguration(
                    iceServers=servers,
                    iceTransportPolicy=RTCIceTransportPolicy.RELAY,
                    bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
                )
            )
            track_connect_tasks(relayed.pc)
            relayed.pc.on("track", relayed._on_track)
            offer = await relayed.wait_for(lambda m: m["type"] == "offer")
            await relayed.answer(offer)
            # From now on the reader answers; an offer that came meanwhile is answered here
            # (no await between the two lines, so none is answered twice).
            later = [m for m in relayed.messages if m["type"] == "offer" and m is not offer]
            relayed.auto_answer = True
            if later:
                await relayed.answer(later[-1])
            await relayed.wait_decoded((a.peer_id, "camera"), frames=5, timeout=20)
            await a.wait_decoded((relayed.peer_id, "camera"), frames=5, timeout=20)
            ice = relayed.pc.getTransceivers()[0].receiver.transport.transport
            pair = ice._connection._nominated[1]
            assert pair.local_candidate.type == "relay"
        finally:
            await relayed.close()
