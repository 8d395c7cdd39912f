"""Real networks: media port range, NAT 1:1 announced address and TURN REST credentials,
checked in the SDP the client gets, in the sockets the server binds, and in a real call."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time

from call_support import clients, create_room
from test_ice_addresses import _free_port_block

from kaamos_sfu.appkeys import ROOMS

TURN_SECRET = "coturn-static-auth-secret-for-tests"


def _server_sockets(http, room_id: str) -> list[tuple[str, int]]:
    room = http.server.app[ROOMS].rooms[room_id]
    names = []
    for peer in room.peers.values():
        connection = peer.pc.getTransceivers()[0].receiver.transport.transport._connection
        names += [p.transport.get_extra_info("sockname")[:2] for p in connection._protocols]
    return names


async def test_port_range_and_announced_address_reach_sdp_sockets_and_call(
    make_config, make_client
):
    """Candidates carry the announced address and a port of the range; the server's sockets
    are bound to the real address on those ports; media still flows (the client learns the
    real address from the server's checks, as ICE does behind a NAT)."""
    first = _free_port_block(4)
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
