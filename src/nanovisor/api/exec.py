"""Exec routes: create, start (hijacked or detached), resize, inspect."""

from __future__ import annotations

from nanovisor.api.request import Request
from nanovisor.api.responses import JSON, Empty, Hijack, Response
from nanovisor.engine.detachkeys import parse_detach_keys


def create(req: Request) -> Response:
    body = req.json(required=True, empty_message="No exec command specified", kind="ExecCreate")
    return JSON(req.engine.exec_create(req.params["name"], body), 201)


def start(req: Request) -> Response | Hijack:
    body = req.json(kind="ExecStart")
    exec_id = req.params["id"]
    detach = bool(body.get("Detach"))
    info = req.engine.exec_inspect(exec_id)
    stdin = bool(info.get("OpenStdin")) and not detach
    keys = parse_detach_keys(info.get("DetachKeys") or None)  # checked before the process starts
    session = req.engine.exec_start(exec_id, detach=detach, tty=body.get("Tty"))
    if session is None:
        return Empty(200)
    size = body.get("ConsoleSize")
    if isinstance(size, list) and len(size) == 2 and all(size):
        session.resize(int(size[0]), int(size[1]))
    return Hijack(session, stdin=stdin, detach_keys=keys)


def resize(req: Request) -> Response:
    req.engine.exec_resize(req.params["id"], height=req.qint("h", 0), width=req.qint("w", 0))
    return Empty(200)


def inspect(req: Request) -> Response:
    return JSON(req.engine.exec_inspect(req.params["id"]))


ROUTES = [
    ("POST", "/containers/{name}/exec", create),
    ("POST", "/exec/{id}/start", start),
    ("POST", "/exec/{id}/resize", resize),
    ("GET", "/exec/{id}/json", inspect),
]
