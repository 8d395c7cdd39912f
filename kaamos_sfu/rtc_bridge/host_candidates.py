"""Server host candidates: sockets bound inside the media port range, announced under the
NAT 1:1 public address.

aioice binds every host socket to port 0 and announces the bound address. We replace the
gathering method of each server-side aioice `Connection` (not the class: aiortc clients
in the same process, such as the tests', keep aioice's own behaviour). The SFU uses no
STUN or TURN server itself, so host candidates are all it gathers.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass, field

from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aioice.ice import Connection, StunProtocol
from aioice.turn import UDP_SOCKET_BUFFER_SIZE

from ..ice.addresses import AnnouncedAddresses, PortRange

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HostCandidatePlan:
    ports: PortRange = field(default_factory=PortRange)
    announced: AnnouncedAddresses = field(default_factory=AnnouncedAddresses)


def use_host_candidate_plan(connection: Connection, plan: HostCandidatePlan) -> None:
    """Make this ICE connection gather its host candidates according to `plan`."""

    async def get_component_candidates(
        component: int, addresses: list[str], timeout: int = 5
    ) -> list[Candidate]:
        return await _gather_host_candidates(connection, plan, component, addresses)

    connection.get_component_candidates = get_component_candidates  # type: ignore[method-assign]


async def _gather_host_candidates(
    connection: Connection, plan: HostCandidatePlan, component: int, addresses: list[str]
) -> list[Candidate]:
    loop = asyncio.get_running_loop()
    candidates = []
    for address in addresses:
        try:
            sock = plan.ports.bind_udp(address)
        except OSError as exc:
            # Logged at warning: a full port range refuses calls, and the operator must know.
            log.warning(
                "cannot bind a media socket",
                extra={"address": address, "ports": _describe(plan.ports), "error": str(exc)},
            )
            setattr(connection, BIND_FAILED, True)
            continue
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_SOCKET_BUFFER_SIZE)
        _, protocol = await loop.create_datagram_endpoint(
            lambda: StunProtocol(connection), sock=sock
        )
        bound_address, port = sock.getsockname()[:2]
        announced = plan.announced.announce(bound_address)
        protocol.local_candidate = Candidate(
            foundation=candidate_foundation("host", "udp", announced),
            component=component,
            transport="udp",
            priority=candidate_priority(component, "host"),
            host=announced,
            port=port,
            type="host",
        )
        connection._protocols.append(protocol)
        candidates.append(protocol.local_candidate)
    return candidates


def bind_failed(connection: Connection) -> bool:
    """Whether a media socket could not be bound for this connection (a full port range)."""
    return bool(getattr(connection, BIND_FAILED, False))


BIND_FAILED = "_kaamos_bind_failed"


def _describe(ports: PortRange) -> str:
    return f"{ports.first}-{ports.last}" if ports.first else "any"
