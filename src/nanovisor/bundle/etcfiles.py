"""The one generator of a container's /etc/hosts and /etc/resolv.conf, and the one parser of --add-host.

Laid out as Docker's libnetwork writes them, because programs and tests inside containers grep these files.
Two writers use it: the network manager (bridge and user networks; it rewrites hosts on connect/disconnect)
and the bundle stage (host networking, and `--network none` when no network manager is available). Both get
the same layout and the same validation: an --add-host entry that is not "name:ip" (or "name=ip",
"name:host-gateway") is refused with Docker's words, whichever path the container takes.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from nanovisor.errors import InvalidParameter

EMBEDDED_DNS = "127.0.0.11"  # user networks: the per-network DNS server netd answers on, in the container's netns
_DEFAULT_V4 = [("127.0.0.1", "localhost")]
_DEFAULT_V6 = [
    ("::1", "localhost ip6-localhost ip6-loopback"),
    ("fe00::0", "ip6-localnet"),
    ("ff00::0", "ip6-mcastprefix"),
    ("ff02::1", "ip6-allnodes"),
    ("ff02::2", "ip6-allrouters"),
]
DEFAULT_DNS_V4 = ["8.8.8.8", "8.8.4.4"]  # Docker's fallback when the host only has loopback resolvers
DEFAULT_DNS_V6 = ["2001:4860:4860::8888", "2001:4860:4860::8844"]


class ExtraHost(NamedTuple):
    """One --add-host line, in file order (the network manager stores it as [ip, name] in its sandbox)."""
    ip: str     # an address, or "host-gateway" until the caller resolves it
    name: str


def parse_extra_host(entry: str) -> ExtraHost:
    """"name:ip" (or "name=ip") from --add-host / HostConfig.ExtraHosts; IPv6 addresses keep their colons."""
    sep = "=" if "=" in entry else ":"
    name, found, ip = entry.partition(sep)
    ip = ip.strip()
    if ip.startswith("[") and ip.endswith("]"):
        ip = ip[1:-1]
    if not found or not name or not ip:
        raise InvalidParameter(f"bad format for add-host: {json.dumps(entry)}")
    if ip != "host-gateway":
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise InvalidParameter(f"invalid IP address in add-host: {json.dumps(ip)}") from None
    return ExtraHost(ip, name)


def parse_extra_hosts(entries: Iterable[str] | None) -> list[ExtraHost]:
    return [parse_extra_host(e) for e in entries or []]


def hosts_file(hostname: str, ips: Iterable[str] = (), extra: Iterable[tuple[str, str]] = (),
               aliases: Iterable[str] = (), domainname: str = "", ipv6: bool = True) -> str:
    """Docker's /etc/hosts: loopback entries, then --add-host lines (ip, name), then the container's own
    name on each of its addresses. "host-gateway" in extra must already be replaced by an address."""
    lines = [f"{addr}\t{names}" for addr, names in _DEFAULT_V4 + (_DEFAULT_V6 if ipv6 else [])]
    lines += [f"{ip}\t{name}" for ip, name in extra]
    names = [f"{hostname}.{domainname}", hostname] if domainname else [hostname]
    names += [a for a in aliases if a and a not in names]
    lines += [f"{ip}\t{' '.join(names)}" for ip in ips]
    return "\n".join(lines) + "\n"


def host_hosts(extra: Iterable[tuple[str, str]], host_file: str = "/etc/hosts") -> str:
    """--network host: the host's own file plus the --add-host lines."""
    try:
        text = Path(host_file).read_text()
    except OSError:
        text = hosts_file("", ())
    if text and not text.endswith("\n"):
        text += "\n"
    return text + "".join(f"{ip}\t{name}\n" for ip, name in extra)


def _is_localhost(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def read_host_resolv(path: str = "/etc/resolv.conf") -> tuple[list[str], list[str], list[str]]:
    """(nameservers, search domains, options) of the host's resolv.conf; the last search/domain wins."""
    nameservers: list[str] = []
    search: list[str] = []
    options: list[str] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return nameservers, search, options
    for raw in text.splitlines():
        fields = raw.split("#", 1)[0].split(";", 1)[0].split()
        if not fields:
            continue
        key, rest = fields[0], fields[1:]
        if key == "nameserver" and rest:
            nameservers.append(rest[0])
        elif key in ("search", "domain"):
            search = rest  # the last one wins, as in glibc
        elif key == "options":
            options += rest
    return nameservers, search, options


def resolv_conf(dns: Iterable[str] = (), search: Iterable[str] = (), options: Iterable[str] = (), *,
                embedded: bool = False, host_resolv: str = "/etc/resolv.conf", keep_localhost: bool = False,
                ipv6: bool = False) -> str:
    """The container's resolv.conf by Docker's rules, --dns / --dns-search / --dns-option replacing the
    matching part of the host's file (`--dns-search .` means none).

    embedded: on user networks the one nameserver is the embedded server (the --dns servers become its
    upstreams) with ndots:0 unless options are given. Otherwise --dns, or the host's nameservers minus
    loopback ones a container cannot reach (kept with keep_localhost, for host networking), or Docker's
    public fallback when none is left.
    """
    host_ns, host_search, host_opts = read_host_resolv(host_resolv)
    dns, search, options = list(dns), list(search), list(options)
    if embedded:
        nameservers = [EMBEDDED_DNS]
        options = options or [o for o in host_opts if not o.startswith("ndots")] + ["ndots:0"]
    else:
        nameservers = dns or (host_ns if keep_localhost else [n for n in host_ns if not _is_localhost(n)]) \
            or DEFAULT_DNS_V4 + (DEFAULT_DNS_V6 if ipv6 else [])
        options = options or host_opts
    search = ([] if search == ["."] else search) if search else host_search
    text = "".join(f"nameserver {n}\n" for n in nameservers)
    if search:
        text += "search " + " ".join(search) + "\n"
    if options:
        text += "options " + " ".join(options) + "\n"
    return text


def upstreams(dns: Iterable[str], host_resolv: str = "/etc/resolv.conf") -> list[str]:
    """Where the embedded server forwards: --dns servers, else the host's (loopback ones included: the
    forwarder runs in the host namespace, as Docker's does)."""
    return list(dns) or read_host_resolv(host_resolv)[0]
