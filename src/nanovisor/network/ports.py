"""Published ports: from HostConfig.PortBindings / PublishAllPorts + ExposedPorts to concrete host ports.

The kernel is the allocator: each chosen host port is bound by a socket which netd keeps open while the
container lives (DNAT takes the traffic first, so nothing ever reaches it). A port held by any other
program or container therefore fails exactly like Docker's "port is already allocated", and `-P` gets a
free ephemeral port by binding port 0. TCP reservations are made as dockerd makes them: SO_REUSEADDR, so
connections of an earlier server on the port lingering in TIME-WAIT do not block the bind (for ~60 s), and
listening, so no other program can bind the port with SO_REUSEADDR while the container holds it.

IPv6, as dockerd on a host with IPv6: a port published on every address is held on [::] too, and IPv6 host
addresses (`-p [::1]:8080:80`) are accepted. Those sockets are not reservations but the listening side of netd's
relay to the container (TCP and UDP; IPv4 ones are DNATed): the IPv6 loopback cannot be DNATed onto a bridge.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from nanovisor.errors import InvalidParameter

PROTOS = {"tcp": socket.SOCK_STREAM, "udp": socket.SOCK_DGRAM, "sctp": socket.SOCK_SEQPACKET}


@dataclass
class Want:
    proto: str
    port: int                # container port
    host_ip: str             # "" = all addresses
    low: int                 # host port range; 0 = ephemeral
    high: int


def parse_port_key(key: str) -> tuple[int, int, str]:
    """"80/tcp" | "80" | "8000-8010/udp" -> (first, last, proto)."""
    spec, _, proto = key.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in PROTOS:
        raise InvalidParameter(f"invalid proto: {proto}")
    lo, hi = _range(spec, key)
    if lo == 0:
        raise InvalidParameter(f"invalid containerPort: {spec}")
    return lo, hi, proto


def _range(text: str, whole: str) -> tuple[int, int]:
    try:
        lo, _, hi = text.partition("-")
        a, b = int(lo), int(hi or lo)
    except ValueError as e:
        raise InvalidParameter(f"invalid port specification: \"{whole}\"") from e
    if not (0 <= a <= 65535 and 0 <= b <= 65535) or b < a:
        raise InvalidParameter(f"invalid port specification: \"{whole}\"")
    return a, b


def wanted(bindings: dict | None, publish_all: bool, exposed: dict | None) -> list[Want]:
    out: list[Want] = []
    bound: set[tuple[int, str]] = set()
    for key, entries in (bindings or {}).items():
        lo, hi, proto = parse_port_key(key)
        for entry in entries or [{}]:
            entry = entry or {}
            host_ip = (entry.get("HostIp") or "").strip("[]")
            if host_ip:
                try:
                    version = ipaddress.ip_address(host_ip).version
                except ValueError as e:
                    raise InvalidParameter(f"invalid IP address: {host_ip}") from e
                if version == 6 and (proto not in PROXIED or not host_has_ipv6()):
                    continue  # skipped as dockerd skips them on a host without IPv6 (SCTP: no proxy here)
            if host_ip == "0.0.0.0":
                host_ip = ""
            hlo, hhi = _range(entry.get("HostPort") or "0", entry.get("HostPort") or "")
            for i, port in enumerate(range(lo, hi + 1)):
                if hlo and hhi - hlo == hi - lo and hi > lo:   # 8000-8001:80-81 maps one to one
                    out.append(Want(proto, port, host_ip, hlo + i, hlo + i))
                else:
                    out.append(Want(proto, port, host_ip, hlo, hhi))
                bound.add((port, proto))
    if publish_all:
        for key in exposed or {}:
            lo, hi, proto = parse_port_key(key)
            for port in range(lo, hi + 1):
                if (port, proto) not in bound:
                    out.append(Want(proto, port, "", 0, 0))
    return out


def _conflicts(proto: str, ip: str, port: int, taken: list[dict]) -> bool:
    return any(t["proto"] == proto and t["host_port"] == port and (not ip or not t["host_ip"] or ip == t["host_ip"])
               for t in taken)


def reserve(want: Want, taken: list[dict]) -> tuple[int, socket.socket]:
    """Bind a host port for want (trying its range in order); returns (port, reservation socket).
    Raises OSError(EADDRINUSE) when none is free."""
    if want.low == 0:
        s = _bind(want.proto, want.host_ip, 0)
        return s.getsockname()[1], s
    last: OSError | None = None
    for port in range(want.low, want.high + 1):
        if _conflicts(want.proto, want.host_ip, port, taken):
            last = OSError(98, "port is already allocated")
            continue
        try:
            return port, _bind(want.proto, want.host_ip, port)
        except OSError as e:
            last = e
    raise last or OSError(98, "port is already allocated")


def _bind(proto: str, host_ip: str, port: int) -> socket.socket:
    v6 = ":" in host_ip
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, PROTOS[proto])
    try:
        if proto == "tcp" and port:  # an ephemeral pick (-P) needs no leniency: the kernel picks a free one
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if v6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((host_ip or "0.0.0.0", port))
        if proto == "tcp":
            s.listen(PROXY_BACKLOG if v6 else 1)
    except BaseException:
        s.close()
        raise
    return s


ALL_V6 = "::"
PROXY_BACKLOG = 128
PROXIED = ("tcp", "udp")


def is_proxied(host_ip: str) -> bool:
    """IPv6 host addresses are served by netd's proxy (IPv4 ones by DNAT): the loopback [::1] cannot be DNATed
    to a bridge, as dockerd's userland proxy (docker-proxy) also serves it."""
    return ":" in host_ip


def host_has_ipv6() -> bool:
    """Can this host (namespace) listen on IPv6 at all: an IPv6 loopback is up."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def reserve_v6_twin(proto: str, port: int) -> socket.socket | None:
    """A port published on every address is published on IPv6 too, as dockerd does on a host with IPv6:
    [::]:port, bound (netd proxies it). None where the host has no IPv6 or for SCTP (no proxy);
    OSError(EADDRINUSE) when another program holds [::]:port."""
    if proto not in PROXIED or not host_has_ipv6():
        return None
    return _bind(proto, ALL_V6, port)


def port_map(exposed: dict | None, bindings: dict | None, mapped: list[dict]) -> dict:
    """NetworkSettings.Ports: every exposed/bound port, with its host bindings or null."""
    out: dict[str, list | None] = {}
    for key in list(exposed or {}) + list(bindings or {}):
        lo, hi, proto = parse_port_key(key)
        for port in range(lo, hi + 1):
            out.setdefault(f"{port}/{proto}", None)
    for m in mapped:
        key = f"{m['port']}/{m['proto']}"
        out[key] = (out.get(key) or []) + [{"HostIp": m["host_ip"] or "0.0.0.0", "HostPort": str(m["host_port"])}]
    return out
