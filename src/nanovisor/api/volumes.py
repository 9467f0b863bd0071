"""Volume routes: create, list, inspect, remove, prune."""

from __future__ import annotations

from nanovisor.api.request import Request
from nanovisor.api.responses import JSON, Empty, Response


def create(req: Request) -> Response:
    return JSON(req.engine.volume_create(req.json(kind="VolumeCreate")), 201)


def list_(req: Request) -> Response:
    return JSON(req.engine.volume_list(filters=req.qfilters()))


def inspect(req: Request) -> Response:
    return JSON(req.engine.volume_inspect(req.params["name"]))


def remove(req: Request) -> Response:
    req.engine.volume_remove(req.params["name"], force=req.qbool("force"))
    return Empty()


def prune(req: Request) -> Response:
    return JSON(req.engine.volume_prune(filters=req.qfilters()))


ROUTES = [
    ("POST", "/volumes/create", create),
    ("GET", "/volumes", list_),
    ("POST", "/volumes/prune", prune),
    ("GET", "/volumes/{name}", inspect),
    ("DELETE", "/volumes/{name}", remove),
]
