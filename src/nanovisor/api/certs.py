"""`nanovisor tls init DIR`: a CA, a server and a client certificate for `serve --tlsverify`, as
docker-machine made them.

Files use the names dockerd's docs and the docker CLI expect: ca.pem, cert.pem, key.pem (the client's: DIR
works as DOCKER_CERT_PATH as is), server-cert.pem, server-key.pem, and ca-key.pem (keep it offline to
sign more clients). Keys are ECDSA P-256 (small, fast handshakes; Go, OpenSSL and docker-py all take
them) and written 0600; the CA's key never leaves DIR.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
from pathlib import Path

from nanovisor import errors

FILES = ("ca.pem", "ca-key.pem", "server-cert.pem", "server-key.pem", "cert.pem", "key.pem")


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def init(directory: str | Path, hosts: list[str] | None = None, days: int = 1095) -> list[Path]:
    """Make the six files in directory (created 0700); refuses to overwrite any. hosts: extra names and
    addresses the server certificate is valid for (localhost, 127.0.0.1, ::1 and this host's name always)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    d = Path(directory)
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    existing = [n for n in FILES if (d / n).exists()]
    if existing:
        raise errors.Conflict(f"{d}: {', '.join(existing)} already exist; not overwriting")
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    until = now + datetime.timedelta(days=days)

    def key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    def pem_key(k) -> bytes:
        return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nanovisor"),
                          x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = key()
    ca_name = name("nanovisor CA")
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(until)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))

    def leaf(cn: str, usage, sans: list | None):
        k = key()
        b = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca_name).public_key(k.public_key())
             .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(until)
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True, key_cert_sign=False,
                                          crl_sign=False, content_commitment=False, data_encipherment=False,
                                          key_agreement=False, encipher_only=False, decipher_only=False),
                            critical=True)
             .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                            critical=False))
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return b.sign(ca_key, hashes.SHA256()), k

    sans: list = []
    for h in ["localhost", socket.gethostname(), "127.0.0.1", "::1", *(hosts or [])]:
        try:
            entry = x509.IPAddress(ipaddress.ip_address(h.strip("[]")))
        except ValueError:
            entry = x509.DNSName(h)
        if entry not in sans:
            sans.append(entry)
    server, server_key = leaf("nanovisor server", ExtendedKeyUsageOID.SERVER_AUTH, sans)
    client, client_key = leaf("nanovisor client", ExtendedKeyUsageOID.CLIENT_AUTH, None)
    pem = serialization.Encoding.PEM
    out = {"ca.pem": (ca.public_bytes(pem), 0o644), "ca-key.pem": (pem_key(ca_key), 0o600),
           "server-cert.pem": (server.public_bytes(pem), 0o644), "server-key.pem": (pem_key(server_key), 0o600),
           "cert.pem": (client.public_bytes(pem), 0o644), "key.pem": (pem_key(client_key), 0o600)}
    for n in FILES:
        _write(d / n, *out[n])
    return [d / n for n in FILES]
