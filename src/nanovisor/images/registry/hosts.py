"""Where a registry named in a reference lives and how to talk to it (TLS or not, which CA).

Like dockerd: "docker.io" is served by registry-1.docker.io; a registry listed as insecure (CIDR or
host[:port], 127.0.0.0/8 by default) is tried over HTTPS without verification and then plain HTTP; every other
registry gets verified HTTPS, trusting the system CAs plus the *.crt files (client certificates as *.cert/*.key
pairs) of HOST:PORT/ in two certs.d directories: Docker's (/etc/docker/certs.d, what users already have; the
NANOVISOR_CERTS_D environment variable moves it) and our own (/etc/nanovisor/certs.d). Client certificates are
presented to insecure registries too (dockerd does not), so a loopback registry that asks for one works."""

from __future__ import annotations

import ipaddress
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nanovisor.errors import InvalidParameter

DEFAULT_CERTS_DIR = Path("/etc/nanovisor/certs.d")
DOCKER_CERTS_DIR = Path("/etc/docker/certs.d")
DEFAULT_INSECURE: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
INDEX_SERVER = "https://index.docker.io/v1/"


@dataclass(frozen=True)
class Endpoint:
    name: str           # the registry as references and credentials name it: "docker.io", "127.0.0.1:5000"
    host: str           # host[:port] we connect to
    insecure: bool      # skip TLS verification, fall back to plain HTTP
    certs_dir: Path

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        for d in (docker_certs_dir() / self.name, self.certs_dir / self.name):
            _read_certs_directory(ctx, d, cas=not self.insecure)
        return ctx


def docker_certs_dir() -> Path:
    """Docker's certs.d (read at each use: a CA added while serving counts at the next pull)."""
    return Path(os.environ.get("NANOVISOR_CERTS_D") or DOCKER_CERTS_DIR)


def _read_certs_directory(ctx: ssl.SSLContext, d: Path, cas: bool) -> None:
    """moby's ReadCertsDirectory: *.crt are CAs, NAME.cert + NAME.key a client certificate; with its
    messages for a half pair."""
    try:
        names = sorted(os.listdir(d))
    except (FileNotFoundError, NotADirectoryError):
        return
    for name in names:
        path = d / name
        try:
            if name.endswith(".crt") and cas:
                try:
                    ctx.load_verify_locations(cafile=str(path))
                except ssl.SSLError:
                    continue  # no PEM certificate in it: ignored, as Go's AppendCertsFromPEM does
            elif name.endswith(".cert"):
                key = name[:-len(".cert")] + ".key"
                if key not in names:
                    raise InvalidParameter(f"missing key {key} for client certificate {name}. CA certificates "
                                           f"must use the extension .crt")
                ctx.load_cert_chain(str(path), str(d / key))
            elif name.endswith(".key") and name[:-len(".key")] + ".cert" not in names:
                raise InvalidParameter(f"missing client certificate {name[:-len('.key')]}.cert for key {name}")
        except (ssl.SSLError, OSError) as e:
            raise InvalidParameter(f"{path}: {e}") from None


def normalize_name(server: str) -> str:
    """A server address as users type it ("https://host:5000/v2/", "index.docker.io") to the registry name."""
    s = server.strip()
    for prefix in ("https://", "http://"):
        if s.startswith(prefix):
            s = s[len(prefix):]
    s = s.split("/", 1)[0]
    if s in ("", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com", DOCKER_HUB):
        return DOCKER_HUB
    return s


def split_host(name: str) -> tuple[str, int | None]:
    if name.startswith("["):
        host, _, rest = name[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else None
    host, sep, port = name.rpartition(":")
    if sep and port.isdigit() and ":" not in host:
        return host, int(port)
    return name, None


def is_insecure(name: str, insecure_registries: Sequence[str] | None = None) -> bool:
    """Matches name against host[:port] entries and CIDRs; "localhost" counts as 127.0.0.1 (no DNS lookups:
    we never send traffic to find out)."""
    entries = DEFAULT_INSECURE if insecure_registries is None else tuple(insecure_registries)
    host, _ = split_host(name)
    for entry in entries:
        entry = normalize_name(entry) if "/" not in entry or "://" in entry else entry
        if entry == name or entry == host:
            return True
    addr_text = "127.0.0.1" if host == "localhost" else host
    try:
        addr = ipaddress.ip_address(addr_text)
    except ValueError:
        return False
    for entry in entries:
        try:
            if addr in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def endpoint_for(name: str, insecure_registries: Sequence[str] | None = None,
                 certs_dir: Path | None = None) -> Endpoint:
    name = normalize_name(name)
    host = DOCKER_HUB_API if name == DOCKER_HUB else name
    return Endpoint(name=name, host=host, insecure=is_insecure(name, insecure_registries),
                    certs_dir=Path(certs_dir) if certs_dir else DEFAULT_CERTS_DIR)
