"""Network routes: list and inspect (bridge, host, none); create/remove/connect/disconnect/prune answer
501 until the engine grows them (see _optional)."""

from __future__ import annotations

from nanovisor.api.request import Request
from nanovisor.api.responses import JSON, Empty, Response


def _optional(engine, method: str):
    """Engine methods that arrive with bridge networks; absent -> 501 Not Implemented."""
    fn = getattr(engine, method, None)
    if fn is None:
        raise NotImplementedError(method.replace("_", " "))
    return fn


def list_(req: Request) -> Response:
    return JSON(req.engine.network_list(filters=req.qfilters()))


def inspect(req: Request) -> Response:
    return JSON(req.engine.network_inspect(req.params["id"]))


def create(req: Request) -> Response:
    return JSON(_optional(req.engine, "network_create")(req.json(required=True)), 201)


def remove(req: Request) -> Response:
    _optional(req.engine, "network_remove")(req.params["id"])
    return Empty()


def connect(req: Request) -> Response:
    _optional(req.engine, "network_connect")(req.params["id"], req.json(required=True))
    return Empty(200)


def disconnect(req: Request) -> Response:
    _optional(req.engine, "network_disconnect")(req.params["id"], req.json(required=True))
    return Empty(200)


def prune(req: Request) -> Response:
    return JSON(_optional(req.engine, "network_prune")(filters=req.qfilters()))


ROUTES = [
    ("GET", "/networks", list_),
    ("POST", "/networks/create", create),
    ("POST", "/networks/prune", prune),
    ("GET", "/networks/{id}", inspect),
    ("DELETE", "/networks/{id}", remove),
    ("POST", "/networks/{id}/connect", connect),
    ("POST", "/networks/{id}/disconnect", disconnect),
]
