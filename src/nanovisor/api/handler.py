"""The HTTP/1.1 side: parse a request, route it, write whatever the handler returned.

Keep-alive comes from http.server (protocol_version HTTP/1.1); every response carries a Content-Length or
is chunked, so connections stay reusable; hijacked connections are closed when the session ends.
"""

from __future__ import annotations

import logging
import socket
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, unquote, urlsplit

from nanovisor import API_VERSION, __version__
from nanovisor.api import hijack
from nanovisor.api.body import BodyReader
from nanovisor.api.errors import error_status
from nanovisor.api.request import Request
from nanovisor.api.responses import JSON_TYPE, Hijack, Response, Stream, WebSocket, dumps
from nanovisor.api.router import Router, split_version
from nanovisor.errors import FramingError, InvalidParameter

log = logging.getLogger("nanovisor.api")

_NO_BODY_STATUSES = {204, 304}


class ApiHandler(BaseHTTPRequestHandler):
    """One connection; handle() loops over its requests. Subclassed per server with engine and router."""

    protocol_version = "HTTP/1.1"
    engine = None
    router: Router

    # -- plumbing ---------------------------------------------------------------------------------------
    def setup(self) -> None:
        super().setup()
        if self.connection.family in (socket.AF_INET, socket.AF_INET6):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def version_string(self) -> str:
        return f"nanovisor/{__version__} (linux)"

    def address_string(self) -> str:
        addr = self.client_address
        return addr[0] if isinstance(addr, tuple) and addr else "unix"

    def log_message(self, format: str, *args) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (ConnectionError, TimeoutError) as e:
            log.debug("connection dropped: %s", e)
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = lambda self: self._dispatch()  # noqa: E731

    # -- dispatch ---------------------------------------------------------------------------------------
    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own answers to a request it could not parse (request line, headers): JSON like every
        other error, 400 for an oversize line or header block too, 404 for an unknown method (as moby's
        router), and the connection closed: where the next request would start is unknown."""
        if code == 501:
            code, message = 404, "page not found"
        elif code in (414, 431):
            code = 400
        body = dumps({"message": message or HTTPStatus(code).phrase})
        self.close_connection = True
        if not str(getattr(self, "request_version", "")).startswith("HTTP/1."):
            self.request_version = "HTTP/1.1"  # a garbage request line still gets a status line back
        self.send_response(code)
        self.send_header("Content-Type", JSON_TYPE)
        self.send_header("Connection", "close")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        try:
            body = BodyReader(self.rfile, self.headers)
        except FramingError as e:
            self.send_error(400, str(e))
            return
        api_version = API_VERSION
        req = None
        try:
            api_version, path = split_version(unquote(url.path))
            if "\x00" in path:
                raise InvalidParameter("invalid path: contains a NUL byte")
            handler, params = self.router.match(self.command, path)
            req = Request(self.command, path, api_version, parse_qs(url.query, keep_blank_values=True),
                          self.headers, body, self.engine, params)
            resp = handler(req)
        except (ConnectionError, TimeoutError):
            raise
        except Exception as e:
            resp = error_response(e)
        if isinstance(resp, WebSocket):
            from nanovisor.api import websocket

            self.close_connection = True
            websocket.run(self.connection, self.rfile, self.wfile, resp.session, resp.stdin, resp.key, api_version)
            return
        if isinstance(resp, Hijack):
            self.close_connection = True
            hijack.run(self.connection, self.rfile, self.wfile, resp, req.wants_upgrade, api_version)
            return
        if not body.drain():
            self.close_connection = True
            if not isinstance(resp, Stream):
                resp.headers.setdefault("Connection", "close")
        if isinstance(resp, Stream):
            self._write_stream(resp)
        else:
            self._write_response(resp)

    def _start(self, status: int, content_type: str | None, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Api-Version", API_VERSION)
        self.send_header("Docker-Experimental", "false")
        self.send_header("Ostype", "linux")
        if content_type:
            self.send_header("Content-Type", content_type)
        for k, v in headers.items():
            self.send_header(k, v)

    def _write_response(self, resp: Response) -> None:
        self._start(resp.status, resp.content_type, resp.headers)
        if resp.status not in _NO_BODY_STATUSES and "Content-Length" not in resp.headers:
            self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if self.command != "HEAD" and resp.status not in _NO_BODY_STATUSES and resp.body:
            self.wfile.write(resp.body)

    def _write_stream(self, resp: Stream) -> None:
        self._start(resp.status, resp.content_type, resp.headers)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        it = iter(resp.chunks)
        try:
            while True:
                try:
                    chunk = next(it)
                except StopIteration:
                    break
                except (ConnectionError, TimeoutError):
                    raise
                except Exception as e:
                    if resp.on_error is None:
                        log.error("stream failed: %s", e, exc_info=e)
                        self.close_connection = True  # cut the body: the client sees an unexpected EOF
                        return
                    log.info("stream ended with an error: %s", e)
                    self._chunk(resp.on_error(e))
                    break
                self._chunk(chunk)
            self.wfile.write(b"0\r\n\r\n")
        except OSError as e:
            log.debug("client went away during a stream: %s", e)
            self.close_connection = True
        finally:
            close = getattr(it, "close", None)
            if close:
                close()

    def _chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%x\r\n%b\r\n" % (len(data), data))


def error_response(exc: BaseException) -> Response:
    status, payload = error_status(exc)
    if payload is None:
        return Response(status)
    return Response(status, dumps(payload), JSON_TYPE)
