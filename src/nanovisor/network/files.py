"""/etc/hosts and /etc/resolv.conf for a container, written the way Docker writes them."""

from __future__ import annotations

import re
from pathlib import Path

HOSTS_HEAD = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
              "ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
EMBEDDED_DNS = "127.0.0.11"
DEFAULT_DNS = ["8.8.8.8", "8.8.4.4"]  # Docker's fallback when the host only has loopback resolvers


def parse_extra_hosts(extra: list[str] | None) -> list[tuple[str, str]]:
    """["name:ip", "name=ip"] -> [(ip, name)]; IPv6 addresses keep their colons."""
    out = []
    for item in extra or []:
        sep = "=" if "=" in item else ":"
        name, _, ip = item.partition(sep)
        out.append((ip.strip("[]"), name))
    return out


def hosts(hostname: str, ips: list[str], extra: list[tuple[str, str]], domain: str = "") -> str:
    text = HOSTS_HEAD
    for ip, name in extra:
        text += f"{ip}\t{name}\n"
    fqdn = f"{hostname}.{domain} {hostname}" if domain else hostname
    for ip in ips:
        text += f"{ip}\t{fqdn}\n"
    return text


def host_hosts(extra: list[tuple[str, str]]) -> str:
    """--network host: the host's own file plus --add-host entries."""
    try:
        text = Path("/etc/hosts").read_text()
    except OSError:
        text = HOSTS_HEAD
    if text and not text.endswith("\n"):
        text += "\n"
    return text + "".join(f"{ip}\t{name}\n" for ip, name in extra)


def read_host_resolv(path: str = "/etc/resolv.conf") -> tuple[list[str], list[str], list[str]]:
    """(nameservers, search domains, options) of the host."""
    servers, search, options = [], [], []
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        parts = line.split("#", 1)[0].split()
        if not parts:
            continue
        if parts[0] == "nameserver" and len(parts) > 1:
            servers.append(parts[1])
        elif parts[0] in ("search", "domain"):
            search = parts[1:]
        elif parts[0] == "options":
            options += parts[1:]
    return servers, search, options


def _is_loopback(server: str) -> bool:
    return bool(re.match(r"^(127\.|::1$)", server))


def resolv(embedded: bool, dns: list[str], search: list[str], options: list[str]) -> str:
    """Docker's rules: on user networks the embedded server (external servers are its upstreams);
    otherwise --dns or the host's servers without loopback ones (8.8.8.8/8.8.4.4 if none is left)."""
    host_servers, host_search, host_options = read_host_resolv()
    search = search or host_search
    if embedded:
        servers = [EMBEDDED_DNS]
        options = options or [o for o in host_options if not o.startswith("ndots")] + ["ndots:0"]
    else:
        servers = dns or [s for s in host_servers if not _is_loopback(s)] or DEFAULT_DNS
        options = options or host_options
    text = "".join(f"nameserver {s}\n" for s in servers)
    if search:
        text += "search " + " ".join(search) + "\n"
    if options:
        text += "options " + " ".join(options) + "\n"
    return text


def upstreams(dns: list[str]) -> list[str]:
    """Where the embedded server forwards: --dns servers, else the host's (loopback ones included: the
    forwarder runs in the host namespace, as Docker's does)."""
    return list(dns) or read_host_resolv()[0]
