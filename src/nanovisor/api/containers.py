"""Container lifecycle routes: create, list, inspect, start/stop/kill/restart, wait, rm, rename, pause, top,
resize, prune. Streams and file transfer (attach, logs, stats, archive, export) live in container_io.py."""

from __future__ import annotations

from nanovisor.api import compat
from nanovisor.api.request import Request
from nanovisor.api.responses import JSON, Empty, Response, Stream, dumps


def create(req: Request) -> Response:
    body = req.json(required=True, empty_message="config cannot be empty in order to create a container")
    return JSON(req.engine.container_create(body, name=req.q("name") or None), 201)


def list_(req: Request) -> Response:
    return JSON(req.engine.container_list(all=req.qbool("all"), limit=req.qint("limit", -1),
                                          size=req.qbool("size"), filters=req.qfilters()))


def inspect(req: Request) -> Response:
    return JSON(compat.container_inspect(req.engine.container_inspect(req.params["name"], size=req.qbool("size")),
                                         req.version))


def start(req: Request) -> Response:
    req.engine.container_start(req.params["name"])
    return Empty()


def stop(req: Request) -> Response:
    req.engine.container_stop(req.params["name"], timeout=req.qint("t"), signal=req.q("signal") or None)
    return Empty()


def restart(req: Request) -> Response:
    req.engine.container_restart(req.params["name"], timeout=req.qint("t"), signal=req.q("signal") or None)
    return Empty()


def kill(req: Request) -> Response:
    req.engine.container_kill(req.params["name"], signal=req.q("signal") or "KILL")
    return Empty()


def wait(req: Request) -> Stream:
    """Headers go out at once (the CLI waits for them before it starts the container), the result later."""
    waiter = req.engine.container_waiter(req.params["name"], condition=req.q("condition") or "not-running")

    def result():
        yield dumps(waiter())

    return Stream(result(), on_error=lambda e: dumps({"StatusCode": -1, "Error": {"Message": str(e)}}))


def remove(req: Request) -> Response:
    if req.qbool("link"):  # `docker rm --link /parent/alias`: only the link goes
        req.engine.container_unlink(req.params["name"])
        return Empty()
    req.engine.container_remove(req.params["name"], force=req.qbool("force"), volumes=req.qbool("v"))
    return Empty()


def rename(req: Request) -> Response:
    req.engine.container_rename(req.params["name"], req.q("name") or "")
    return Empty()


def pause(req: Request) -> Response:
    req.engine.container_pause(req.params["name"])
    return Empty()


def unpause(req: Request) -> Response:
    req.engine.container_unpause(req.params["name"])
    return Empty()


def top(req: Request) -> Response:
    return JSON(req.engine.container_top(req.params["name"], ps_args=req.q("ps_args") or "-ef"))


def resize(req: Request) -> Response:
    req.engine.container_resize(req.params["name"], height=req.qint("h", 0), width=req.qint("w", 0))
    return Empty(200)


def update(req: Request) -> Response:
    return JSON(req.engine.container_update(req.params["name"], req.json(required=True, kind="ContainerUpdate")))


def changes(req: Request) -> Response:
    return JSON(req.engine.container_changes(req.params["name"]))


def prune(req: Request) -> Response:
    return JSON(req.engine.container_prune(filters=req.qfilters()))


def _routes():
    from nanovisor.api import container_io as io

    c = "/containers/{name}"
    return [
        ("POST", "/containers/create", create),
        ("GET", "/containers/json", list_),
        ("POST", "/containers/prune", prune),
        ("GET", c + "/json", inspect),
        ("POST", c + "/start", start),
        ("POST", c + "/stop", stop),
        ("POST", c + "/restart", restart),
        ("POST", c + "/kill", kill),
        ("POST", c + "/wait", wait),
        ("DELETE", c, remove),
        ("POST", c + "/rename", rename),
        ("POST", c + "/pause", pause),
        ("POST", c + "/unpause", unpause),
        ("GET", c + "/top", top),
        ("POST", c + "/resize", resize),
        ("POST", c + "/update", update),
        ("GET", c + "/changes", changes),
        ("POST", c + "/attach", io.attach),
        ("GET", c + "/attach/ws", io.attach_ws),
        ("GET", c + "/logs", io.logs),
        ("GET", c + "/stats", io.stats),
        ("HEAD", c + "/archive", io.archive_head),
        ("GET", c + "/archive", io.archive_get),
        ("PUT", c + "/archive", io.archive_put),
        ("GET", c + "/export", io.export),
        ("DELETE", "/containers/{name:/*[^/]+/[^/]+}", remove),  # a legacy link's name: /parent/alias
    ]


ROUTES = _routes()
