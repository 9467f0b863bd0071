"""TLS for the API's tcp hosts, with dockerd's flags, defaults and refusals.

dockerd's rules, kept: `--tlsverify` implies `--tls` and requires a client certificate signed by
`--tlscacert`; the files default to ca.pem, cert.pem and key.pem in $DOCKER_CERT_PATH, else the docker
config directory ($DOCKER_CONFIG or ~/.docker); $DOCKER_TLS_VERIFY turns verification on; a tcp host
without a port gets 2376 with TLS (2375 without). Plain HTTP gives root on this host to whoever reaches
the port, so it is refused on anything but a loopback address unless asked for by name (`--insecure-tcp`,
or dockerd 27's explicit `--tls=false`), and then logged as a warning.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from nanovisor import errors

log = logging.getLogger("nanovisor.api")


def cert_dir() -> Path:
    """Where the default ca.pem/cert.pem/key.pem live (dockerd's and the docker CLI's rule)."""
    if os.environ.get("DOCKER_CERT_PATH"):
        return Path(os.environ["DOCKER_CERT_PATH"])
    if os.environ.get("DOCKER_CONFIG"):
        return Path(os.environ["DOCKER_CONFIG"])
    return Path.home() / ".docker"


@dataclass
class TLSOptions:
    tls: bool | None = None          # None: not given on the command line
    verify: bool | None = None
    cacert: str | None = None
    cert: str | None = None
    key: str | None = None
    insecure_tcp: bool = False

    @property
    def enabled(self) -> bool:
        return bool(self.tls) or bool(self.verify)

    @property
    def plain_on_purpose(self) -> bool:
        """The user said, by name, that tcp hosts may be unauthenticated."""
        return self.insecure_tcp or (self.tls is False and not self.verify)

    def resolved(self) -> TLSOptions:
        """Defaults filled in as dockerd does: $DOCKER_TLS_VERIFY is --tlsverify's default, and --tlsverify
        given at all (even =false) turns TLS on; the files come from the cert directory."""
        verify = self.verify
        if verify is None and os.environ.get("DOCKER_TLS_VERIFY"):
            verify = True
        tls = True if self.verify is not None or verify else self.tls
        d = cert_dir()
        return TLSOptions(tls, bool(verify), self.cacert or str(d / "ca.pem"), self.cert or str(d / "cert.pem"),
                          self.key or str(d / "key.pem"), self.insecure_tcp)


def server_context(opts: TLSOptions) -> ssl.SSLContext:
    """The server side: our certificate; with verify, only clients whose certificate the CA signed."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # dockerd's minimum too
    # No TLS 1.3 session tickets: a hijacked connection reads and writes one SSL object from two threads,
    # so the server should never write on its own after the handshake; docker clients do not resume anyway.
    ctx.num_tickets = 0
    try:
        ctx.load_cert_chain(opts.cert, opts.key)
    except (OSError, ssl.SSLError) as e:
        raise errors.InvalidParameter(
            f"could not load X509 key pair (cert: {opts.cert!r}, key: {opts.key!r}): {e}") from None
    if opts.verify:
        try:
            ctx.load_verify_locations(cafile=opts.cacert)
        except (OSError, ssl.SSLError) as e:
            raise errors.InvalidParameter(f"could not read CA certificate {opts.cacert!r}: {e}") from None
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def check_plain_tcp(tcp_addrs: list[tuple[str, int]], opts: TLSOptions) -> None:
    """Refuse (or, when asked for by name, warn about) plain HTTP on addresses others can reach."""
    if opts.enabled:
        return
    exposed = [f"{h}:{p}" for h, p in tcp_addrs if not is_loopback(h)]
    if not exposed:
        return
    if not opts.plain_on_purpose:
        raise errors.InvalidParameter(
            f"refusing to serve the API without TLS on {', '.join(exposed)}: anyone who reaches it gets root "
            "on this host. Use --tlsverify with --tlscacert/--tlscert/--tlskey (`nanovisor tls init DIR` makes "
            "them), or pass --insecure-tcp if the network is otherwise protected")
    for addr in exposed:
        log.warning("API listening on http://%s without TLS: anyone who can reach it has root access on this "
                    "host (--insecure-tcp)", addr)
