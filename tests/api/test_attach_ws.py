"""Attach over a WebSocket (`GET /containers/{id}/attach/ws`), as a web console does: a real RFC 6455 client
(wsproto, client side) on the API socket; output in binary frames, input to the container's stdin."""

from __future__ import annotations

import base64
import os
import socket

from apihelpers import api_request
from wsproto.connection import CLIENT, Connection
from wsproto.events import BytesMessage, CloseConnection, Message


def _ws_connect(sock_path: str, path: str) -> tuple[socket.socket, Connection, bytes]:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(sock_path)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: docker\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    return s, Connection(CLIENT), head


def test_websocket_attach_streams_output_and_takes_input(client, api_socket, image, name):
    c = client.containers.run(image, ["sh", "-c", "echo hello; read line; echo got $line"], name=name,
                              detach=True, stdin_open=True)
    try:
        s, ws, head = _ws_connect(api_socket, f"/v1.45/containers/{name}/attach/ws?stdin=1&stdout=1&stderr=1"
                                              f"&logs=1&stream=1")
        assert head.startswith(b"HTTP/1.1 101") and b"Sec-WebSocket-Accept:" in head
        out = b""
        while b"hello" not in out:
            ws.receive_data(s.recv(4096))
            out += b"".join(e.data for e in ws.events() if isinstance(e, BytesMessage))
        s.sendall(ws.send(BytesMessage(b"web\n")))
        closed = False
        while not closed:
            data = s.recv(4096)
            ws.receive_data(data or None)
            for e in ws.events():
                if isinstance(e, Message):
                    out += e.data if isinstance(e.data, bytes) else e.data.encode()
                elif isinstance(e, CloseConnection):
                    closed = True
            if not data:
                break
        assert b"got web" in out
        s.close()
    finally:
        c.remove(force=True)


def test_websocket_attach_requires_a_handshake(api_socket, running):
    status, _, body = api_request(api_socket, "GET", f"/containers/{running}/attach/ws?stdout=1")
    assert status == 400 and "websocket" in body["message"]
