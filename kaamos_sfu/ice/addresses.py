"""Which local addresses media uses, what address the SDP announces, and which UDP ports.

A server behind a 1:1 NAT (a cloud VM with a private interface and a public IP) binds its
media sockets to the private address but must tell browsers the public one, as LiveKit's
node IP and Janus's nat_1_1_mapping do. A firewall or a container publishes a fixed UDP
port range, so media sockets are bound inside it (aioice has no such option).
"""

from __future__ import annotations

import errno
import ipaddress
import random
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

import ifaddr


def interface_addresses(names: Sequence[str]) -> list[str]:
    """The IPv4 and global IPv6 addresses of the named network interfaces, in name order.

    ValueError names an interface that does not exist."""
    adapters = {adapter.nice_name: adapter for adapter in ifaddr.get_adapters()}
    addresses: list[str] = []
    for name in names:
        if name not in adapters:
            known = ", ".join(sorted(adapters)) or "none"
            raise ValueError(f"no network interface {name!r} (this machine has: {known})")
        for ip in adapters[name].ips:
            if isinstance(ip.ip, str):
                addresses.append(ip.ip)
            elif not ipaddress.IPv6Address(ip.ip[0]).is_link_local:
                addresses.append(ip.ip[0])
    return addresses


@dataclass(frozen=True)
class AnnouncedAddresses:
    """NAT 1:1 mapping from bound addresses to the addresses put in candidates.

    Entries are "PUBLIC" (every bound address of the same IP family) or "LOCAL=PUBLIC".
    """

    by_local: dict[str, str] = field(default_factory=dict)
    by_family: dict[int, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, entries: Sequence[str]) -> AnnouncedAddresses:
        """ValueError says which entry is wrong."""
        by_local: dict[str, str] = {}
        by_family: dict[int, str] = {}
        for entry in entries:
            local, sep, public = entry.partition("=")
            if not sep:
                local, public = "", entry
            try:
                public_ip = ipaddress.ip_address(public.strip())
                local_ip = ipaddress.ip_address(local.strip()) if local else None
            except ValueError:
                raise ValueError(f"{entry!r} is not ADDRESS or LOCAL=PUBLIC") from None
            if local_ip is None:
                if public_ip.version in by_family:
                    raise ValueError(f"two IPv{public_ip.version} addresses without LOCAL=")
                by_family[public_ip.version] = str(public_ip)
            elif local_ip.version != public_ip.version:
                raise ValueError(f"{entry!r} maps between IPv4 and IPv6")
            else:
                by_local[str(local_ip)] = str(public_ip)
        return cls(by_local, by_family)

    def announce(self, bound: str) -> str:
        """The address to announce for a socket bound to `bound`."""
        if bound in self.by_local:
            return self.by_local[bound]
        return self.by_family.get(ipaddress.ip_address(bound).version, bound)


@dataclass(frozen=True)
class PortRange:
    """Inclusive UDP port range for media sockets; (0, 0) lets the OS pick any port."""

    first: int = 0
    last: int = 0

    def bind_udp(self, address: str) -> socket.socket:
        """A non-blocking UDP socket bound to `address` on a free port of the range.

        Ports are tried from a random start so that restarts do not reuse the same ones
        first; OSError(EADDRINUSE) when every port of the range is taken."""
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        if self.first == 0:
            return _bound_socket(family, address, 0)
        size = self.last - self.first + 1
        start = random.randrange(size)
        for offset in range(size):
            try:
                return _bound_socket(family, address, self.first + (start + offset) % size)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
        raise OSError(errno.EADDRINUSE, f"no free UDP port in {self.first}-{self.last}")


def _bound_socket(family: int, address: str, port: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.bind((address, port))
    except OSError:
        sock.close()
        raise
    return sock
