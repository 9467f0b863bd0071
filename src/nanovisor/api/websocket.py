"""`GET /containers/{id}/attach/ws`: attach over a WebSocket, for browsers and web consoles.

The HTTP handshake is answered here (RFC 6455's accept token); framing is wsproto's (the sans-I/O WebSocket
library of python-hyper, so no frame parser of our own). Output goes out unmultiplexed, as dockerd sends it:
binary frames from API 1.42 on (text before, as older dockerd did); every message received is the container's
stdin. The session ends when the container's output does (a Close frame follows) or when the client closes.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import BinaryIO

from wsproto.connection import SERVER, Connection
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, TextMessage
from wsproto.utilities import generate_accept_token

from nanovisor import errors
from nanovisor.api.router import version_at_least

log = logging.getLogger("nanovisor.api")


def check_handshake(headers) -> bytes:
    """The client's Sec-WebSocket-Key, after checking this is a WebSocket upgrade we can answer."""
    upgrade = (headers.get("Upgrade") or "").lower()
    connection = {t.strip().lower() for t in (headers.get("Connection") or "").split(",")}
    key = headers.get("Sec-WebSocket-Key")
    if upgrade != "websocket" or "upgrade" not in connection or not key:
        raise errors.InvalidParameter("not a websocket handshake: 'Upgrade: websocket', 'Connection: Upgrade' "
                                      "and Sec-WebSocket-Key are required")
    if headers.get("Sec-WebSocket-Version", "13") != "13":
        raise errors.InvalidParameter("unsupported websocket version (13 is)")
    return key.encode()


def run(conn: socket.socket, rfile: BinaryIO, wfile: BinaryIO, session, stdin: bool, key: bytes,
        api_version: str) -> None:
    """Serve one WebSocket attach to its end; the caller closes the connection afterwards."""
    ws = Connection(SERVER)
    lock = threading.Lock()  # output and pong/close frames come from two threads
    binary = version_at_least(api_version, "1.42")

    def send(event) -> None:
        with lock:
            wfile.write(ws.send(event))
            wfile.flush()

    wfile.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + generate_accept_token(key) + b"\r\n\r\n")
    wfile.flush()
    reader = threading.Thread(target=_copy_input, args=(rfile, ws, session, stdin, send), daemon=True,
                              name="ws-stdin")
    reader.start()
    try:
        while True:
            item = session.read()
            if item is None:
                break
            data = item[1]
            if data:
                send(BytesMessage(data) if binary else TextMessage(data.decode(errors="replace")))
        send(CloseConnection(code=1000))
    except (OSError, ValueError) as e:
        log.debug("websocket attach ended: %s", e)
    finally:
        try:
            socket.socket.shutdown(conn, socket.SHUT_RDWR)
        except OSError:
            pass
        reader.join(5)
        _quietly(session.close)


def _copy_input(rfile: BinaryIO, ws: Connection, session, stdin: bool, send) -> None:
    try:
        while True:
            data = rfile.read1(65536)
            ws.receive_data(data or None)
            for event in ws.events():
                if isinstance(event, Message) and stdin:
                    payload = event.data if isinstance(event.data, bytes) else event.data.encode()
                    session.write(payload)
                elif isinstance(event, Ping):
                    send(event.response())
                elif isinstance(event, CloseConnection):
                    _quietly(session.close)
                    return
            if not data:
                _quietly(session.close)
                return
    except Exception as e:  # a closed socket or a protocol error ends the input side only
        log.debug("websocket input ended: %s", e)


def _quietly(fn) -> None:
    try:
        fn()
    except Exception as e:
        log.debug("ignored during websocket teardown: %s", e)
