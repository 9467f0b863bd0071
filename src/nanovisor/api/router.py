"""Route table: (method, path pattern) -> handler, and the /vX.Y version prefix (moby's version middleware)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from nanovisor import API_VERSION, MIN_API_VERSION, errors
from nanovisor.api.errors import RouteNotFound

_VERSION_PREFIX = re.compile(r"^/v([0-9.]+)(/.*)$")
_VAR = re.compile(r"\{(\w+)(?::([^}]+))?\}")


def _vkey(v: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else 0 for p in v.split("."))


def split_version(path: str) -> tuple[str, str]:
    """("/v1.44/containers/json") -> ("1.44", "/containers/json"); no prefix means the newest version."""
    m = _VERSION_PREFIX.match(path)
    if not m:
        return API_VERSION, path
    version, rest = m.group(1), m.group(2)
    if _vkey(version) < _vkey(MIN_API_VERSION):
        raise errors.InvalidParameter(
            f"client version {version} is too old. Minimum supported API version is {MIN_API_VERSION}, "
            "please upgrade your client to a newer version")
    if _vkey(version) > _vkey(API_VERSION):
        raise errors.InvalidParameter(
            f"client version {version} is too new. Maximum supported API version is {API_VERSION}")
    return version, rest


def version_at_least(version: str, minimum: str) -> bool:
    return _vkey(version) >= _vkey(minimum)


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern
    handler: Callable


def compile_path(template: str) -> re.Pattern:
    """"/containers/{name:.*}/json" -> regex with named groups; a bare {x} matches one path segment."""
    out, pos = [], 0
    for m in _VAR.finditer(template):
        out.append(re.escape(template[pos:m.start()]))
        out.append(f"(?P<{m.group(1)}>{m.group(2) or '[^/]+'})")
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return re.compile("^" + "".join(out) + "$")


class Router:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, template: str, handler: Callable) -> None:
        self.routes.append(Route(method, compile_path(template), handler))

    def add_table(self, table: list[tuple[str, str, Callable]]) -> None:
        for method, template, handler in table:
            self.add(method, template, handler)

    def match(self, method: str, path: str) -> tuple[Callable, dict[str, str]]:
        for route in self.routes:
            if route.method == method:
                m = route.pattern.match(path)
                if m:
                    return route.handler, m.groupdict()
        raise RouteNotFound(path)


def default_router() -> Router:
    """Every resource module contributes its ROUTES table."""
    from nanovisor.api import build, containers, exec, images, nano, networks, swarm, system, volumes

    router = Router()
    for module in (system, containers, exec, images, volumes, networks, build, swarm, nano):
        router.add_table(module.ROUTES)
    return router
