"""NAT 1:1 announced addresses, media port ranges and interface addresses (no media)."""

from __future__ import annotations

import errno

import pytest
from ports import free_port_block

from kaamos_sfu.ice.addresses import AnnouncedAddresses, PortRange, interface_addresses


def test_announced_address_per_family_and_per_local_address():
    announced = AnnouncedAddresses.parse(["203.0.113.10", "10.0.0.6=198.51.100.7", "2001:db8::10"])
    assert announced.announce("10.0.0.5") == "203.0.113.10"  # the IPv4 default
    assert announced.announce("10.0.0.6") == "198.51.100.7"  # its own mapping wins
    assert announced.announce("fd00::5") == "2001:db8::10"
    assert AnnouncedAddresses.parse([]).announce("10.0.0.5") == "10.0.0.5"


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (["example.org"], "is not ADDRESS or LOCAL=PUBLIC"),
        (["10.0.0.5=nowhere"], "is not ADDRESS or LOCAL=PUBLIC"),
        (["10.0.0.5=2001:db8::1"], "maps between IPv4 and IPv6"),
        (["203.0.113.1", "203.0.113.2"], "two IPv4 addresses"),
    ],
)
def test_bad_announced_addresses_are_refused(entries, message):
    with pytest.raises(ValueError, match=message):
        AnnouncedAddresses.parse(entries)


def test_port_range_binds_inside_the_range_and_skips_taken_ports():
    first = free_port_block(3)
    ports = PortRange(first, first + 2)
    socks = [ports.bind_udp("127.0.0.1") for _ in range(3)]
    try:
        assert sorted(s.getsockname()[1] for s in socks) == [first, first + 1, first + 2]
        assert all(not s.getblocking() for s in socks)
        with pytest.raises(OSError) as raised:
            ports.bind_udp("127.0.0.1")
        assert raised.value.errno == errno.EADDRINUSE
        assert f"{first}-{first + 2}" in str(raised.value)
    finally:
        for sock in socks:
            sock.close()


def test_no_port_range_lets_the_os_pick():
    sock = PortRange().bind_udp("127.0.0.1")
    try:
        assert sock.getsockname()[0] == "127.0.0.1"
        assert sock.getsockname()[1] > 0
    finally:
        sock.close()


def test_interface_addresses():
    assert "127.0.0.1" in interface_addresses(["lo"])
    with pytest.raises(ValueError, match="no network interface 'nosuch0'.*lo"):
        interface_addresses(["nosuch0"])
