"""Image routes: list, inspect, history, tag, remove, prune, load, save (get), import and pull (create),
push."""

from __future__ import annotations

import base64
import json

from nanovisor import errors
from nanovisor.api import compat
from nanovisor.api.request import Request
from nanovisor.api.responses import (
    JSON,
    TAR_TYPE,
    Empty,
    Response,
    Stream,
    dumps,
    json_error_message,
    json_lines,
)


def list_(req: Request) -> Response:
    return JSON(compat.image_list(req.engine.image_list(all=req.qbool("all"), filters=req.qfilters()), req.version))


def inspect(req: Request) -> Response:
    return JSON(compat.image_inspect(req.engine.image_inspect(req.params["name"]), req.version))


def history(req: Request) -> Response:
    return JSON(req.engine.image_history(req.params["name"]))


def tag(req: Request) -> Response:
    req.engine.image_tag(req.params["name"], req.q("repo") or "", req.q("tag") or None)
    return Empty(201)


def remove(req: Request) -> Response:
    return JSON(req.engine.image_remove(req.params["name"], force=req.qbool("force"),
                                        noprune=req.qbool("noprune")))


def prune(req: Request) -> Response:
    return JSON(req.engine.image_prune(filters=req.qfilters()))


def load(req: Request) -> Response:
    refs = req.engine.image_load(req.body)
    lines = [{"stream": (f"Loaded image ID: {r}\n" if r.startswith("sha256:") else f"Loaded image: {r}\n")}
             for r in refs]
    return Response(200, b"".join(dumps(m) for m in lines), "application/json")


def _save(req: Request, names: list[str]) -> Stream:
    if not names:
        raise errors.InvalidParameter("no images specified")
    for name in names:
        req.engine.image_inspect(name)  # a missing image is a 404, not a cut tar stream
    return Stream(req.engine.image_save(names), TAR_TYPE)


def save_one(req: Request) -> Stream:
    return _save(req, [req.params["name"]])


def save_many(req: Request) -> Stream:
    return _save(req, req.qlist("names"))


def create(req: Request) -> Response | Stream:
    """fromSrc=- imports the request body as a rootfs tar; fromImage pulls from a registry."""
    src = req.q("fromSrc")
    if src is not None:
        if src != "-":
            raise errors.InvalidParameter("importing from a URL is not supported: use fromSrc=-")
        image_id = req.engine.image_import(req.body, repo=req.q("repo") or None, tag=req.q("tag") or None,
                                           changes=req.qlist("changes"), message=req.q("message") or "")
        return Response(200, dumps({"status": image_id}), "application/json")
    image = req.q("fromImage")
    if not image:
        raise errors.InvalidParameter("fromImage or fromSrc is required")
    tag = req.q("tag") or ""
    ref = f"{image}@{tag}" if tag.startswith("sha256:") else f"{image}:{tag}" if tag else image
    progress = req.engine.image_pull(ref, platform=req.q("platform") or None, auth=_registry_auth(req))
    return Stream(json_lines(progress), on_error=json_error_message)


def push(req: Request) -> Stream:
    tag = req.q("tag") or ""
    ref = f"{req.params['name']}:{tag}" if tag else req.params["name"]
    progress = req.engine.image_push(ref, auth=_registry_auth(req))
    return Stream(json_lines(progress), on_error=json_error_message)


def _registry_auth(req: Request) -> dict | None:
    raw = req.headers.get("X-Registry-Auth")
    if not raw:
        return None
    try:
        auth = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, RecursionError):
        return None
    return auth if isinstance(auth, dict) else None


ROUTES = [
    ("GET", "/images/json", list_),
    ("POST", "/images/create", create),
    ("POST", "/images/load", load),
    ("GET", "/images/get", save_many),
    ("POST", "/images/prune", prune),
    ("GET", "/images/{name:.+}/json", inspect),
    ("GET", "/images/{name:.+}/history", history),
    ("GET", "/images/{name:.+}/get", save_one),
    ("POST", "/images/{name:.+}/tag", tag),
    ("POST", "/images/{name:.+}/push", push),
    ("DELETE", "/images/{name:.+}", remove),
]
