"""/_ping, /version, /info, /events, /system/df, /auth."""

from __future__ import annotations

import base64
import binascii

from nanovisor import API_VERSION, MIN_API_VERSION, errors
from nanovisor.api import compat
from nanovisor.api.request import Request
from nanovisor.api.responses import JSON, Response, Stream, json_lines

_PING_HEADERS = {
    "Cache-Control": "no-cache, no-store, must-revalidate",
    "Pragma": "no-cache",
    "Builder-Version": "1",
    "Swarm": "inactive",
}


def ping(req: Request) -> Response:
    if req.method == "HEAD":
        return Response(200, b"", "text/plain; charset=utf-8", {**_PING_HEADERS, "Content-Length": "0"})
    return Response(200, b"OK", "text/plain; charset=utf-8", dict(_PING_HEADERS))


def version(req: Request) -> Response:
    v = dict(req.engine.version())
    v.setdefault("ApiVersion", API_VERSION)
    v.setdefault("MinAPIVersion", MIN_API_VERSION)
    v.setdefault("Os", "linux")
    return JSON(v)


def info(req: Request) -> Response:
    return JSON(compat.info(req.engine.info(), req.version))


def events(req: Request) -> Stream:
    since = req.qtime("since") or None
    until = req.qtime("until") or None
    items = req.engine.events(since=since, until=until, filters=req.qfilters())
    return Stream(json_lines(items))


def system_df(req: Request) -> Response:
    return JSON(req.engine.system_df())


def auth(req: Request) -> Response:
    """`docker login`: the engine checks the credentials with the registry; the client stores them.
    Bad credentials raise the registry's Unauthorized (401) with moby's text."""
    body = req.json(required=True, kind="Auth")
    username, password = body.get("username") or "", body.get("password") or ""
    if not username and body.get("auth"):
        username, password = _decode_auth(body["auth"])
    return JSON(req.engine.registry_login(body.get("serveraddress") or None, username, password))


def _decode_auth(value: str) -> tuple[str, str]:
    """AuthConfig.auth is base64("user:password"), as in a docker config.json."""
    try:
        text = base64.b64decode(value + "=" * (-len(value) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise errors.InvalidParameter("invalid auth configuration: auth is not base64") from None
    username, sep, password = text.partition(":")
    if not sep:
        raise errors.InvalidParameter("invalid auth configuration: auth is not username:password")
    return username, password


def plugins(req: Request) -> Response:
    """Managed plugins: nanovisor has none (its drivers are built in), so the list is empty, as on a dockerd
    with no plugin installed; `docker plugin ls` and SDK probes work."""
    return JSON([])


def plugin(req: Request) -> Response:
    raise errors.NotFound(f"plugin \"{req.params['name']}\" not found")


def search(req: Request) -> Response:
    """Registry search needs the v1 search API of Docker Hub's index, which this engine does not talk to;
    registries it pulls from speak v2, which has no search."""
    raise NotImplementedError("image search (registries speak the v2 API, which has no search)")


ROUTES = [
    ("GET", "/plugins", plugins),
    ("GET", "/plugins/{name:.+}/json", plugin),
    ("GET", "/images/search", search),
    ("GET", "/_ping", ping),
    ("HEAD", "/_ping", ping),
    ("GET", "/version", version),
    ("GET", "/info", info),
    ("GET", "/events", events),
    ("GET", "/system/df", system_df),
    ("POST", "/auth", auth),
]
