"""What a handler returns: plain values describing the response; http.py writes them to the socket.

Keeping handlers free of socket code makes each one parse -> call the engine -> return one of these.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

JSON_TYPE = "application/json"
RAW_STREAM = "application/vnd.docker.raw-stream"
MUX_STREAM = "application/vnd.docker.multiplexed-stream"
TAR_TYPE = "application/x-tar"


def dumps(obj: Any) -> bytes:
    """Like Go's json.Encoder.Encode: compact, one trailing newline."""
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def JSON(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(status, dumps(obj), JSON_TYPE, headers or {})


def Empty(status: int = 204, headers: dict[str, str] | None = None) -> Response:
    return Response(status, b"", None, headers or {})


@dataclass
class Stream:
    """A chunked body sent as it is produced; headers go out before the first item is asked for.

    on_error turns an exception raised mid-stream into a last chunk (e.g. a JSON error message);
    without it the stream is cut, which clients report as an unexpected EOF.
    """

    chunks: Iterable[bytes]
    content_type: str = JSON_TYPE
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    on_error: Callable[[BaseException], bytes] | None = None


def json_lines(items: Iterable[Any]) -> Iterator[bytes]:
    for item in items:
        yield dumps(item)


def json_error_message(exc: BaseException) -> bytes:
    """jsonmessage error, as moby writes into pull/load/import progress streams."""
    msg = str(exc) or type(exc).__name__
    return dumps({"errorDetail": {"message": msg}, "error": msg})


@dataclass
class WebSocket:
    """Take over the connection as a WebSocket (attach/ws): the handshake is answered, then frames carry the
    session's output and the client's input (see api/websocket.py)."""

    session: Any
    stdin: bool
    key: bytes


@dataclass
class Hijack:
    """Take over the connection for a StreamSession (attach, exec start).

    Answers 101 UPGRADED when the client asked for `Upgrade: tcp`, else 200; then copies session output to
    the socket (stdcopy-framed unless tty) and, with stdin, socket input to the session; a half-close from
    the client becomes close_stdin() while output continues.
    """

    session: Any
    stdin: bool = False
    close_stdin_on_eof: bool = True   # moby: attach closes stdin only for StdinOnce non-TTY containers
    detach_keys: bytes | None = None
    on_done: Callable[[], None] | None = None
