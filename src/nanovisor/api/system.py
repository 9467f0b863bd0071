"""/_ping, /version, /info, /events, /system/df."""

from __future__ import annotations

from nanovisor import API_VERSION, MIN_API_VERSION
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
    return JSON(req.engine.info())


def events(req: Request) -> Stream:
    since = req.qtime("since") or None
    until = req.qtime("until") or None
    items = req.engine.events(since=since, until=until, filters=req.qfilters())
    return Stream(json_lines(items))


def system_df(req: Request) -> Response:
    return JSON(req.engine.system_df())


ROUTES = [
    ("GET", "/_ping", ping),
    ("HEAD", "/_ping", ping),
    ("GET", "/version", version),
    ("GET", "/info", info),
    ("GET", "/events", events),
    ("GET", "/system/df", system_df),
]
