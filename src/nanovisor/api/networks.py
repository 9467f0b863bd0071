"""Network routes: list, inspect, create, remove, prune, connect and disconnect containers."""

from __future__ import annotations

from nanovisor.api.request import Request
from nanovisor.api.responses import JSON, Empty, Response


def list_(req: Request) -> Response:
    return JSON(req.engine.network_list(filters=req.qfilters()))


def inspect(req: Request) -> Response:
    return JSON(req.engine.network_inspect(req.params["id"]))


def create(req: Request) -> Response:
    return JSON(req.engine.network_create(req.json(required=True, kind="NetworkCreate")), 201)


def remove(req: Request) -> Response:
    req.engine.network_remove(req.params["id"])
    return Empty()


def connect(req: Request) -> Response:
    """Body: {"Container": id-or-name, "EndpointConfig": {"Aliases": [...], "IPAMConfig": {...}, ...}}."""
    body = req.json(required=True, kind="NetworkConnect")
    req.engine.network_connect(req.params["id"], str(body.get("Container") or ""),
                               body.get("EndpointConfig") or {})
    return Empty(200)


def disconnect(req: Request) -> Response:
    """Body: {"Container": id-or-name, "Force": bool}."""
    body = req.json(required=True, kind="NetworkDisconnect")
    req.engine.network_disconnect(req.params["id"], str(body.get("Container") or ""),
                                  force=bool(body.get("Force")))
    return Empty(200)


def prune(req: Request) -> Response:
    return JSON(req.engine.network_prune(filters=req.qfilters()))


ROUTES = [
    ("GET", "/networks", list_),
    ("POST", "/networks/create", create),
    ("POST", "/networks/prune", prune),
    ("GET", "/networks/{id}", inspect),
    ("DELETE", "/networks/{id}", remove),
    ("POST", "/networks/{id}/connect", connect),
    ("POST", "/networks/{id}/disconnect", disconnect),
]
