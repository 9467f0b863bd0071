"""Real registries for the registry tests: Debian's docker-registry (distribution 2.8) on loopback with a
generated config (plain HTTP, TLS with a CA made by openssl, htpasswd, token auth), a token server for the
latter, and an HTTP proxy that can cut a blob download short. Every process is stopped by its pid."""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from nanovisor.images.store import ImageStore
from nanovisor.paths import Paths
from nanovisor.store.db import Database

REGISTRY_BIN = "/usr/bin/docker-registry"
USERS = {"alice": "wonderland"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, log: Path) -> None:
    """Waits until the server accepts connections (or fails with its log if it died)."""
    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError(f"registry exited {proc.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"registry did not listen on {port}:\n{log.read_text()}")


class Registry:
    """One docker-registry process; `host` is "127.0.0.1:PORT"."""

    def __init__(self, workdir: Path, *, tls: tuple[Path, Path] | None = None, htpasswd: Path | None = None,
                 token: dict | None = None, client_ca: Path | None = None) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.storage = self.dir / "data"
        lines = ["version: 0.1", "log:", "  level: error", "  accesslog:", "    disabled: true",
                 "storage:", "  filesystem:", f"    rootdirectory: {self.storage}", "  delete:",
                 "    enabled: true", "http:", f"  addr: 127.0.0.1:{self.port}", "  secret: nanovisor-tests"]
        if tls:
            lines += ["  tls:", f"    certificate: {tls[0]}", f"    key: {tls[1]}"]
            if client_ca:  # mutual TLS: a client certificate signed by this CA is required
                lines += ["    clientcas:", f"      - {client_ca}"]
        if htpasswd:
            lines += ["auth:", "  htpasswd:", "    realm: nanovisor-tests", f"    path: {htpasswd}"]
        if token:
            lines += ["auth:", "  token:", f"    realm: {token['realm']}", f"    service: {token['service']}",
                      f"    issuer: {token['issuer']}", f"    rootcertbundle: {token['cert']}"]
        self.config = self.dir / "config.yml"
        self.config.write_text("\n".join(lines) + "\n")
        self.log = self.dir / "registry.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([REGISTRY_BIN, "serve", str(self.config)], stdout=out,
                                         stderr=subprocess.STDOUT)
        try:
            wait_port(self.port, self.proc, self.log)
        except BaseException:
            self.stop()
            raise

    def blob_data(self, digest: str) -> Path:
        hexd = digest.removeprefix("sha256:")
        return self.storage / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- certificates ------------------------------------------------------------------------------------


def make_ca_and_cert(d: Path, cn: str = "127.0.0.1") -> dict[str, Path]:
    """A CA and a server certificate it signed, for IP 127.0.0.1 and localhost (openssl, as a user would)."""
    d.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = d / "ca.key", d / "ca.crt"
    key, csr, crt, ext = d / "server.key", d / "server.csr", d / "server.crt", d / "ext.cnf"
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca_crt),
        "-days", "2", "-subj", "/CN=nanovisor test CA")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
        "-subj", f"/CN={cn}")
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(crt), "-days", "2", "-extfile", str(ext))
    return {"ca": ca_crt, "cert": crt, "key": key}


def make_client_cert(d: Path, ca_dir: Path, name: str = "client") -> dict[str, Path]:
    """A client certificate signed by the CA make_ca_and_cert made in ca_dir: NAME.cert + NAME.key."""
    d.mkdir(parents=True, exist_ok=True)
    key, csr, cert, ext = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.cert", d / f"{name}.cnf"
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
        "-subj", "/CN=nanovisor test client")
    ext.write_text("extendedKeyUsage=clientAuth\n")
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_dir / "ca.crt"), "-CAkey", str(ca_dir / "ca.key"),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))
    csr.unlink()
    ext.unlink()
    return {"cert": cert, "key": key}


def make_htpasswd(path: Path, users: dict[str, str]) -> Path:
    import bcrypt

    path.write_text("".join(f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=5)).decode()}\n"
                            for u, p in users.items()))
    return path


# -- token server ------------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """A minimal Docker token service (the "Bearer realm" of a registry): checks Basic credentials, grants
    the requested actions (anonymous callers get pull only) in an RS256 JWT carrying its certificate."""

    def __init__(self, workdir: Path, users: dict[str, str], service: str = "nanovisor-registry",
                 issuer: str = "nanovisor-token-issuer") -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.key, self.cert = workdir / "token.key", workdir / "token.crt"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(self.key),
                        "-out", str(self.cert), "-days", "2", "-subj", "/CN=token signer"],
                       check=True, capture_output=True)
        der = subprocess.run(["openssl", "x509", "-in", str(self.cert), "-outform", "DER"], check=True,
                             capture_output=True).stdout
        self.x5c = base64.b64encode(der).decode()
        self.users, self.service, self.issuer = users, service, issuer
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                q = parse_qs(urlsplit(self.path).query)
                user = ""
                authz = self.headers.get("Authorization", "")
                if authz.startswith("Basic "):
                    user, _, pw = base64.b64decode(authz[6:]).decode().partition(":")
                    if outer.users.get(user) != pw:
                        body = json.dumps({"details": "incorrect username or password"}).encode()
                        self.send_response(401)
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body)
                        return
                outer.requests.append({"user": user, "scope": q.get("scope", [])})
                token = outer.token(user, q.get("scope", []))
                body = json.dumps({"token": token, "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def token(self, user: str, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            for s in scope.split(" "):
                kind, _, rest = s.partition(":")
                name, _, actions = rest.rpartition(":")
                granted = [a for a in actions.split(",") if user or a == "pull"]
                access.append({"type": kind, "name": name, "actions": granted})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        claims = {"iss": self.issuer, "sub": user, "aud": self.service, "exp": now + 300, "nbf": now - 10,
                  "iat": now, "jti": os.urandom(8).hex(), "access": access}
        signing = _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)], input=signing.encode(),
                             check=True, capture_output=True).stdout
        return signing + "." + _b64url(sig)

    def registry_config(self) -> dict:
        return {"realm": self.realm, "service": self.service, "issuer": self.issuer, "cert": self.cert}

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- a proxy that breaks downloads -----------------------------------------------------------------------


class CuttingProxy:
    """HTTP reverse proxy in front of a registry. While `cuts` > 0, a GET of a blob whose digest contains
    `target` is answered with its headers and the first `after` bytes, then the connection is dropped, as a
    flaky network would. Records the Range header of every blob GET."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.target = ""
        self.after = 0
        self.cuts = 0
        self.ranges: list[str | None] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                conn = http.client.HTTPConnection(outer.upstream, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                is_blob = "/blobs/sha256:" in self.path and self.command == "GET"
                if is_blob:
                    outer.ranges.append(self.headers.get("Range"))
                cut = is_blob and outer.cuts > 0 and outer.target and outer.target in self.path
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding"):
                        self.send_header(k, v)
                data = resp.read()
                if "content-length" not in {k.lower() for k, _ in resp.getheaders()}:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if cut:
                    outer.cuts -= 1
                    self.wfile.write(data[:outer.after])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                elif self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- engine roots and images -------------------------------------------------------------------------------


def open_store(root: Path) -> ImageStore:
    paths = Paths.for_root(root)
    paths.ensure()
    return ImageStore(paths, Database(paths.db))


def layer_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_image(store: ImageStore, ref: str, layers: list[dict[str, bytes]], arch: str = "amd64"):
    """An image made through the ImageStore API: one layer per dict of files."""
    diff_ids = [store.add_layer(io.BytesIO(layer_tar(files))) for files in layers]
    config = {"architecture": arch, "os": "linux", "created": "2024-01-01T00:00:00Z",
              "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
              "rootfs": {"type": "layers", "diff_ids": diff_ids},
              "history": [{"created": "2024-01-01T00:00:00Z", "created_by": f"layer {i}"}
                          for i in range(len(diff_ids))]}
    return store.create_image(config, ref)


def rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
