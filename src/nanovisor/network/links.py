"""Netlink plumbing through pyroute2: bridges in the host namespace, veth pairs into container
namespaces, addresses and routes inside them. Every call is idempotent so restore() can replay it."""

from __future__ import annotations

import os
from pathlib import Path

from nanovisor.network import nsutil


def IPRoute():  # noqa: N802 - stands in for the class, imported on first use (pyroute2 costs ~60 ms to import)
    from pyroute2 import IPRoute as _IPRoute

    return _IPRoute()


def _netlink_error() -> type[Exception]:
    from pyroute2.netlink.exceptions import NetlinkError

    return NetlinkError

EEXIST = 17
ENODEV = 19
ESRCH = 3


def _index(ipr, name: str) -> int | None:
    """One RTM_GETLINK by name (link_lookup would dump every link of the namespace)."""
    try:
        return ipr.link("get", ifname=name)[0]["index"]
    except _netlink_error() as e:
        if e.code in (ENODEV, 19):
            return None
        raise


def link_names() -> set[str]:
    with IPRoute() as ipr:
        return {link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}


def link_exists(name: str) -> bool:
    """One interface by name (an ioctl: constant cost, where link_names() lists every veth on the host)."""
    import socket

    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


def sysctl(path: str, value: str) -> None:
    with open(f"/proc/sys/{path}", "w") as f:
        f.write(value)


def ensure_bridge(name: str, gateway: str, prefixlen: int, mtu: int = 1500) -> None:
    """Bridge up with the gateway address; route_localnet lets host connections to 127.0.0.1 be DNATed
    onto it (as Docker does for the userland-proxy-less mode)."""
    with IPRoute() as ipr:
        idx = _index(ipr, name)
        if idx is None:
            try:
                ipr.link("add", ifname=name, kind="bridge", mtu=mtu)
            except _netlink_error() as e:
                if e.code != EEXIST:
                    raise
            idx = _index(ipr, name)
        have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=idx, family=2)}
        if (gateway, prefixlen) not in have:
            ipr.addr("add", index=idx, address=gateway, prefixlen=prefixlen)
        ipr.link("set", index=idx, state="up")
    sysctl(f"net/ipv4/conf/{name}/route_localnet", "1")


IFA_F_NODAD = 0x02


def ensure_bridge_v6(name: str, gateway: str, prefixlen: int) -> None:
    """The IPv6 gateway address on an existing bridge (no duplicate address detection: usable at once)."""
    sysctl(f"net/ipv6/conf/{name}/disable_ipv6", "0")
    with IPRoute() as ipr:
        idx = _index(ipr, name)
        have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=idx, family=10)}
        if (gateway, prefixlen) not in have:
            ipr.addr("add", index=idx, address=gateway, prefixlen=prefixlen, flags=IFA_F_NODAD)


def delete_link(name: str) -> None:
    with IPRoute() as ipr:
        idx = _index(ipr, name)
        if idx is None:
            return
        try:
            ipr.link("del", index=idx)
        except _netlink_error() as e:
            if e.code not in (ENODEV, ESRCH):
                raise


def add_endpoint(netns: Path, bridge: str, host_if: str, ifname: str, mac: str, ip: str, prefixlen: int,
                 gateway: str | None, mtu: int = 1500, v6: tuple[str, int, str | None] | None = None) -> None:
    """Create a veth pair with one end (ifname) directly inside netns and the other enslaved to bridge,
    then address it and, when gateway is given, make it the default route. v6: (address, prefix length,
    gateway or None) of a dual-stack network."""
    with IPRoute() as ipr:
        if _index(ipr, host_if) is not None:
            ipr.link("del", index=_index(ipr, host_if))  # leftover from a crash: start clean
        fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
        try:
            ipr.link("add", ifname=host_if, kind="veth", mtu=mtu,
                     peer={"ifname": ifname, "net_ns_fd": fd, "address": mac, "mtu": mtu})
        finally:
            os.close(fd)
        idx = _index(ipr, host_if)
        ipr.link("set", index=idx, master=_index(ipr, bridge))
        # Hairpin: with br_netfilter, a container reaching its own published port is DNATed at the bridge
        # and must leave through the port it came in on (Docker sets this too without userland proxy).
        ipr.brport("set", index=idx, mode=1)
        ipr.link("set", index=idx, state="up")

    def inside() -> None:
        with IPRoute() as ipr:
            idx = _index(ipr, ifname)
            ipr.addr("add", index=idx, address=ip, prefixlen=prefixlen)
            ipr.link("set", index=idx, state="up")
            if gateway:
                ipr.route("replace", dst="0.0.0.0/0", gateway=gateway, oif=idx)
            if v6 is not None:
                sysctl(f"net/ipv6/conf/{ifname}/disable_ipv6", "0")
                ipr.addr("add", index=idx, address=v6[0], prefixlen=v6[1], flags=IFA_F_NODAD)
                if v6[2]:
                    ipr.route("replace", dst="::/0", gateway=v6[2], oif=idx, family=10)
    nsutil.in_netns(netns, inside)


def lo_up() -> None:
    """Loopback up in the current namespace: one ioctl, no netlink library (a hot path for every start)."""
    import fcntl
    import socket
    import struct

    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), siocgifflags, ifreq))[1]
        fcntl.ioctl(s.fileno(), siocsifflags, struct.pack("16sH14x", b"lo", flags | iff_up))


def delete_ns_link(netns: Path, name: str) -> None:
    """Delete the interface name inside netns (a veth goes with its peer, wherever that lives)."""
    nsutil.in_netns(netns, lambda: delete_link(name))


def ns_links(netns: Path) -> set[str]:
    return nsutil.in_netns(netns, link_names)


def set_default_route(netns: Path, ifname: str, gateway: str | None, gateway6: str | None = None) -> None:
    """Point the namespace's default route at gateway via ifname, or drop it when gateway is None; gateway6:
    the IPv6 default route too (a dual-stack network)."""
    def inside() -> None:
        with IPRoute() as ipr:
            if gateway is None:
                try:
                    ipr.route("del", dst="0.0.0.0/0")
                except _netlink_error():
                    pass
            else:
                ipr.route("replace", dst="0.0.0.0/0", gateway=gateway, oif=_index(ipr, ifname))
            if gateway6:
                ipr.route("replace", dst="::/0", gateway=gateway6, oif=_index(ipr, ifname), family=10)
    nsutil.in_netns(netns, inside)
