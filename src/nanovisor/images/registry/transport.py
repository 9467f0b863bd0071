"""HTTP to one registry: scheme choice (HTTPS, or plain HTTP for insecure registries), keep-alive connections
per thread, the auth challenge flow, redirects (credentials never follow to another host).

Stdlib http.client + ssl rather than requests: no runtime dependency, nothing heavy to import on the CLI path,
and the exact control resumable downloads need (Range, reading a body in chunks, knowing whether a reused
connection died before or after the request left)."""

from __future__ import annotations

import http.client
import io
import ssl
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urljoin, urlsplit

from nanovisor.images.registry import auth as authflow
from nanovisor.images.registry.credentials import AuthConfig
from nanovisor.images.registry.errors import RegistryError, Unauthorized, from_response
from nanovisor.images.registry.hosts import Endpoint, endpoint_for

USER_AGENT = "nanovisor/0.1 (registry client)"
TIMEOUT = 120.0
BLOCK = 1 << 20
_REDIRECTS = (301, 302, 303, 307, 308)
_SCHEMES: dict[str, str] = {}       # registry host -> scheme that answered last time (process-wide)


class TransportError(RegistryError):
    """The connection failed or broke (refused, reset, TLS, timeout): retryable for downloads."""


class Response:
    """A response whose body the caller reads (or not); close() returns or drops the connection."""

    def __init__(self, client: RegistryClient, key: tuple[str, str], conn: http.client.HTTPConnection,
                 raw: http.client.HTTPResponse, method: str, url: str) -> None:
        self._client, self._key, self._conn, self.raw = client, key, conn, raw
        self.status = raw.status
        self.headers = raw.headers
        self.method, self.url = method, url

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name, default)

    def read(self, n: int = BLOCK) -> bytes:
        try:
            return self.raw.read(n)
        except (OSError, http.client.HTTPException) as e:
            self._drop()
            raise TransportError(f'{self.method} "{self.url}": {_reason(e)}') from None

    def body(self, limit: int = 4 << 20) -> bytes:
        """The whole body, refusing more than limit bytes (a manifest or error, never a layer)."""
        out = bytearray()
        while True:
            chunk = self.read(min(BLOCK, limit + 1 - len(out)))
            if not chunk:
                break
            out += chunk
            if len(out) > limit:
                self._drop()
                raise RegistryError(f'{self.method} "{self.url}": response larger than {limit} bytes')
        self.close()
        return bytes(out)

    def error(self) -> RegistryError:
        return from_response(self.status, self.body(1 << 20) if self.method != "HEAD" else b"")

    def close(self) -> None:
        if self.raw.isclosed():
            return
        if self.raw.length == 0 or self.method == "HEAD":
            self.raw.close()
        else:
            self._drop()

    def _drop(self) -> None:
        self.raw.close()
        self._client._forget(self._key, self._conn)


def _reason(e: BaseException) -> str:
    if isinstance(e, ssl.SSLCertVerificationError):
        return f"tls: failed to verify certificate: {e.verify_message or e.reason}"
    if isinstance(e, ConnectionRefusedError):
        return "connect: connection refused"
    if isinstance(e, http.client.IncompleteRead):
        return "unexpected EOF"
    return str(e) or type(e).__name__


def _rewind(body: object, pos: int | None) -> bool:
    if body is None or isinstance(body, bytes):
        return True
    if pos is None:
        return False
    try:
        body.seek(pos)  # type: ignore[attr-defined]
        return True
    except (OSError, AttributeError, io.UnsupportedOperation):
        return False


class RegistryClient:
    """One registry, one set of credentials, a growing set of token scopes. Thread-safe."""

    def __init__(self, endpoint: Endpoint, auth: AuthConfig | None = None, scopes: Sequence[str] = (),
                 insecure_registries: Sequence[str] | None = None) -> None:
        self.endpoint = endpoint
        self.auth = auth
        self.scopes: list[str] = list(scopes)
        self._insecure = insecure_registries
        self._local = threading.local()
        self._lock = threading.Lock()
        self._base: str | None = None
        self._authz: str | None = None
        self._challenges: list[authflow.Challenge] = []
        self._ctx = {endpoint.host: endpoint.ssl_context()}

    # -- connections -----------------------------------------------------------------------------

    def _conns(self) -> dict:
        conns = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        return conns

    def _conn(self, scheme: str, host: str) -> tuple[http.client.HTTPConnection, bool]:
        key = (scheme, host)
        conn = self._conns().get(key)
        if conn is not None:
            return conn, True
        if scheme == "https":
            ctx = self._ctx.get(host)
            if ctx is None:
                ctx = self._ctx[host] = endpoint_for(host, self._insecure, self.endpoint.certs_dir).ssl_context()
            conn = http.client.HTTPSConnection(host, timeout=TIMEOUT, context=ctx, blocksize=BLOCK)
        else:
            conn = http.client.HTTPConnection(host, timeout=TIMEOUT, blocksize=BLOCK)
        self._conns()[key] = conn
        return conn, False

    def _forget(self, key: tuple[str, str], conn: http.client.HTTPConnection) -> None:
        conn.close()
        if self._conns().get(key) is conn:
            del self._conns()[key]

    def close(self) -> None:
        for conn in self._conns().values():
            conn.close()
        self._conns().clear()

    def _send(self, method: str, url: str, headers: dict[str, str], body: bytes | BinaryIO | None) -> Response:
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        h = {"User-Agent": USER_AGENT, **headers}
        if body is None and method in ("POST", "PUT", "PATCH"):
            h.setdefault("Content-Length", "0")
        pos = body.tell() if body is not None and not isinstance(body, bytes) and hasattr(body, "tell") else None
        for attempt in range(2):
            conn, reused = self._conn(*key)
            try:
                conn.request(method, path, body=body, headers=h)
                raw = conn.getresponse()
            except (OSError, http.client.HTTPException) as e:
                self._forget(key, conn)
                # a kept-alive connection the server closed: send once more on a fresh one
                if attempt == 0 and reused and not isinstance(e, TimeoutError) and _rewind(body, pos):
                    continue
                raise TransportError(f'{method.capitalize()} "{url}": {_reason(e)}') from None
            return Response(self, key, conn, raw, method, url)
        raise AssertionError("unreachable")

    # -- ping and auth -----------------------------------------------------------------------------

    def base(self) -> str:
        """https://host or http://host, found by pinging /v2/ (and authenticating) on first use."""
        with self._lock:
            if self._base is None:
                self._ping()
            assert self._base is not None
            return self._base

    def _ping(self) -> None:
        host = self.endpoint.host
        schemes = ["https", "http"] if self.endpoint.insecure else ["https"]
        if _SCHEMES.get(host) in schemes:
            schemes.remove(_SCHEMES[host])
            schemes.insert(0, _SCHEMES[host])
        failures: list[RegistryError] = []
        for scheme in schemes:
            try:
                resp = self._send("GET", f"{scheme}://{host}/v2/", {}, None)
            except TransportError as e:
                failures.append(e)
                continue
            resp.body(1 << 16)
            if resp.status not in (200, 401):
                failures.append(from_response(resp.status, b"") if scheme == "https" else
                                RegistryError(f"{host} does not look like a registry: GET /v2/ answered "
                                              f"{resp.status}"))
                continue
            _SCHEMES[host] = scheme  # only a registry's answer decides the scheme for next time
            self._base = f"{scheme}://{host}"
            if resp.status == 401:
                self._challenges = authflow.parse_challenges(resp.headers.get_all("WWW-Authenticate") or [])
                self._authenticate()
            return
        # HTTPS's failure says more than plain HTTP's (a TLS registry answers 400 to plain HTTP)
        https = [e for e, scheme in zip(failures, schemes, strict=True) if scheme == "https"]
        raise (https or failures)[0]

    def _authenticate(self, offline: bool = False) -> None:
        auth = self.auth
        if auth is not None and auth.registrytoken:
            self._authz = "Bearer " + auth.registrytoken
            return
        bearer = next((c for c in self._challenges if c.scheme == "bearer"), None)
        if bearer is not None:
            method, url, headers, body = authflow.token_request(bearer, self.scopes, auth, offline)
            resp = self._send(method, url, headers, body)
            if resp.status in _REDIRECTS:
                resp.body(1 << 16)
                resp = self._send("GET", urljoin(url, resp.header("Location")), headers, None)
            self._authz = "Bearer " + authflow.parse_token(resp.status, resp.body(1 << 20))
            return
        if any(c.scheme == "basic" for c in self._challenges):
            self._authz = authflow.basic_header(auth) if auth is not None and auth.username else None

    def add_scopes(self, scopes: Sequence[str]) -> None:
        """More repositories to reach (cross-repository mounts): refresh the token when they are new."""
        with self._lock:
            new = [s for s in scopes if s not in self.scopes]
            if not new:
                return
            self.scopes += new
            if self._base is not None and any(c.scheme == "bearer" for c in self._challenges):
                self._authenticate()

    # -- requests --------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else urljoin(self.base() + "/", path.lstrip("/"))

    def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                body: bytes | BinaryIO | None = None, follow: bool = True) -> Response:
        """Sends with our credentials (to the registry host only), re-authenticating once on a 401 and
        following redirects of GET/HEAD."""
        url = self.url(path)
        pos = body.tell() if body is not None and not isinstance(body, bytes) and hasattr(body, "tell") else None
        for attempt in range(2):
            h = dict(headers or {})
            if self._authz and url.startswith(self.base() + "/"):
                h["Authorization"] = self._authz
            resp = self._send(method, url, h, body)
            if resp.status == 401 and url.startswith(self.base() + "/"):
                challenges = authflow.parse_challenges(resp.headers.get_all("WWW-Authenticate") or [])
                err_body = resp.body(1 << 20) if method != "HEAD" else (resp.close() or b"")
                if self._authz is None and not any(c.scheme == "bearer" for c in challenges) \
                        and (self.auth is None or not self.auth.username):
                    raise Unauthorized(f'{method.capitalize()} "{url}": no basic auth credentials')
                if attempt == 0 and _rewind(body, pos):
                    with self._lock:
                        self._challenges = challenges or self._challenges
                        for c in challenges:
                            scope = c.params.get("scope")
                            if scope:
                                self.scopes += [s for s in scope.split(" ") if s not in self.scopes]
                        self._authenticate()
                    continue
                raise Unauthorized(str(from_response(401, err_body)) if err_body
                                   else "unauthorized: authentication required")
            hops = 0
            while follow and resp.status in _REDIRECTS and method in ("GET", "HEAD") and hops < 5:
                location = resp.header("Location")
                resp.body(1 << 16) if method != "HEAD" else resp.close()
                url = urljoin(url, location)
                h = {k: v for k, v in h.items() if k != "Authorization"}
                if self._authz and url.startswith(self.base() + "/"):
                    h["Authorization"] = self._authz
                resp = self._send(method, url, h, None)
                hops += 1
            return resp
        raise AssertionError("unreachable")

    def check_login(self) -> None:
        """GET /v2/ with our credentials must answer 200 (what `docker login` verifies)."""
        url = self.base() + "/v2/"
        if self._challenges and self._authz is None and any(c.scheme == "basic" for c in self._challenges):
            raise Unauthorized(f"login attempt to {url} failed with status: 401 Unauthorized")
        with self._lock:
            if any(c.scheme == "bearer" for c in self._challenges) and not (self.auth and self.auth.registrytoken):
                self._authenticate(offline=True)
        h = {"Authorization": self._authz} if self._authz else {}
        resp = self._send("GET", url, h, None)
        resp.body(1 << 16)
        if resp.status != 200:
            from http import HTTPStatus

            raise Unauthorized(f"login attempt to {url} failed with status: {resp.status} "
                               f"{HTTPStatus(resp.status).phrase}")


def for_registry(name: str, auth: AuthConfig | None, scopes: Sequence[str],
                 insecure_registries: Sequence[str] | None = None, certs_dir: Path | None = None
                 ) -> RegistryClient:
    return RegistryClient(endpoint_for(name, insecure_registries, certs_dir), auth, scopes, insecure_registries)
