"""Talking to a running container from Python: the shim's control socket (ps, stats) and QMP (pause, resume).

start, kill and exec (with its relay) are the C fast path's (guest/host/fastpath.c).
"""

from __future__ import annotations

import json
import socket

from nanovisor.runtime.vm.state import Container, RuntimeError_, connect_unix


def connect(c: Container) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connect_unix(s, c.ctl)
    except OSError:
        s.close()
        raise RuntimeError_("container not running") from None
    return s


def call(c: Container, req: dict, timeout: float = 30.0) -> dict:
    with connect(c) as s:
        s.settimeout(timeout)
        s.sendall(json.dumps(req).encode() + b"\n")
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise RuntimeError_("container not running")
            buf += chunk
    resp = json.loads(buf.split(b"\n", 1)[0])
    if resp.get("error"):
        raise RuntimeError_(resp["error"])
    return resp


def qmp(c: Container, command: str) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        try:
            connect_unix(s, c.vmdir / "qmp.sock")
        except OSError:
            raise RuntimeError_("container not running") from None
        f = s.makefile("rwb")
        f.readline()  # greeting
        for cmd in ("qmp_capabilities", command):
            f.write(json.dumps({"execute": cmd}).encode() + b"\n")
            f.flush()
            while True:
                msg = json.loads(f.readline())
                if "error" in msg:
                    raise RuntimeError_(msg["error"].get("desc", str(msg["error"])))
                if "return" in msg:
                    break
