"""IPv4 address management: choosing a subnet for a network and addresses inside it.

Subnets come from Docker's default pools (172.17-31.0.0/16, then 192.168.x.0/20) and must overlap neither
another network of this engine nor any route on the host (another engine's bridge, the LAN, a VPN).
Addresses are allocated lowest-free; uniqueness is enforced by the endpoints table inside one transaction.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from nanovisor.errors import Forbidden, InvalidParameter, NanovisorError

Net = ipaddress.IPv4Network
Addr = ipaddress.IPv4Address


class NoAvailablePool(NanovisorError):
    status = 503


def default_pools() -> list[Net]:
    pools = [ipaddress.IPv4Network(f"172.{i}.0.0/16") for i in range(17, 32)]
    pools += [ipaddress.IPv4Network(f"192.168.{i}.0/20") for i in range(0, 256, 16)]
    return pools


def host_routes() -> list[Net]:
    """Every IPv4 destination routed on the host except the default route (and loopback/local table)."""
    from pyroute2 import IPRoute

    nets = []
    with IPRoute() as ipr:
        for r in ipr.get_routes(family=2, table=254):
            dst = r.get_attr("RTA_DST")
            if dst is None or r["dst_len"] == 0:
                continue
            nets.append(ipaddress.IPv4Network(f"{dst}/{r['dst_len']}", strict=False))
        for a in ipr.get_addr(family=2):
            addr = a.get_attr("IFA_ADDRESS")
            if addr and not addr.startswith("127."):
                nets.append(ipaddress.IPv4Network(f"{addr}/{a['prefixlen']}", strict=False))
    return nets


def parse_subnet(text: str) -> Net:
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError as e:
        raise InvalidParameter(f"invalid CIDR address: {text}") from e
    if net.version != 4:
        raise InvalidParameter(f"invalid pool request: {text} is not an IPv4 subnet")
    if net.prefixlen > 30:
        raise InvalidParameter(f"invalid pool request: subnet {text} is too small")
    return net


def parse_addr(text: str, what: str = "address") -> Addr:
    try:
        a = ipaddress.ip_address(text)
    except ValueError as e:
        raise InvalidParameter(f"invalid {what}: {text}") from e
    if a.version != 4:
        raise InvalidParameter(f"invalid {what}: {text}: IPv6 is not supported")
    return a


def check_overlap(subnet: Net, used: Iterable[Net]) -> None:
    for other in used:
        if subnet.overlaps(other):
            raise Forbidden("invalid pool request: Pool overlaps with other one on this address space")


def choose_subnet(engine_nets: Iterable[Net], host_nets: Iterable[Net]) -> Net:
    taken = list(engine_nets) + list(host_nets)
    for pool in default_pools():
        if not any(pool.overlaps(t) for t in taken):
            return pool
    raise NoAvailablePool("could not find an available, non-overlapping IPv4 address pool among the "
                          "defaults to assign to the network")


def first_host(subnet: Net) -> Addr:
    return subnet.network_address + 1


def allocate(subnet: Net, ip_range: Net | None, reserved: set[Addr]) -> Addr:
    """Lowest free address of ip_range (default: the subnet), never network/broadcast/reserved."""
    space = ip_range or subnet
    for a in space.hosts():
        if a not in reserved and a != subnet.network_address and a != subnet.broadcast_address:
            return a
    from nanovisor.errors import Unavailable
    raise Unavailable("no available addresses on this pool")


def request(subnet: Net, want: Addr, reserved: set[Addr]) -> Addr:
    """A user-chosen address (--ip): must lie in the subnet and be free."""
    if want not in subnet or want in (subnet.network_address, subnet.broadcast_address):
        raise InvalidParameter(f"invalid address {want}: requested address is out of range")
    if want in reserved:
        raise Forbidden("Address already in use")
    return want


# IPv6 -----------------------------------------------------------------------------------------------------
# Only unique local addresses (fc00::/7): they are not routed on the Internet, so an IPv6 network's traffic
# stays on this machine. Without a subnet from the user a /64 comes from a ULA /48 derived from the engine
# root, as dockerd (27+) derives one from its engine ID into its default-address-pools.
Net6 = ipaddress.IPv6Network
ULA = ipaddress.IPv6Network("fc00::/7")


def parse_subnet6(text: str) -> Net6:
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError as e:
        raise InvalidParameter(f"invalid CIDR address: {text}") from e
    if net.version != 6:
        raise InvalidParameter(f"invalid pool request: {text} is not an IPv6 subnet")
    if not net.subnet_of(ULA):
        raise InvalidParameter(f"invalid pool request: {text} is not a unique local (fc00::/7) subnet; nanovisor "
                               f"keeps IPv6 traffic on this machine")
    if net.prefixlen > 126:
        raise InvalidParameter(f"invalid pool request: subnet {text} is too small")
    return net


def parse_addr6(text: str, what: str = "address") -> ipaddress.IPv6Address:
    try:
        a = ipaddress.ip_address(text)
    except ValueError as e:
        raise InvalidParameter(f"invalid {what}: {text}") from e
    if a.version != 6:
        raise InvalidParameter(f"invalid {what}: {text}: not an IPv6 address")
    return a


def ula_base(seed: str) -> Net6:
    """fdXX:XXXX:XXXX::/48 with a 40-bit global ID from seed (RFC 4193 section 3.2.2, loosely, as moby)."""
    import hashlib

    gid = hashlib.sha256(seed.encode()).digest()[:5]
    return ipaddress.IPv6Network((b"\xfd" + gid + bytes(10), 48))


def choose_subnet6(base: Net6, used: Iterable[Net6]) -> Net6:
    taken = list(used)
    for subnet in base.subnets(new_prefix=64):
        if not any(subnet.overlaps(t) for t in taken):
            return subnet
    raise NoAvailablePool("could not find an available, non-overlapping IPv6 address pool among the defaults "
                          "to assign to the network")


def allocate6(subnet: Net6, reserved: set, ip_range: Net6 | None = None) -> ipaddress.IPv6Address:
    """Lowest free address of ip_range (default: the subnet) after the subnet-router anycast address (::0)."""
    space = ip_range or subnet
    addr = max(space.network_address, subnet.network_address + 1)
    while addr in reserved:
        addr += 1
        if addr not in space:
            from nanovisor.errors import Unavailable
            raise Unavailable("no available addresses on this pool")
    return addr
