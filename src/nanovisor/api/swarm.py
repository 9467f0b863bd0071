"""Swarm-mode routes, answered as a dockerd that is not part of a swarm answers them.

nanovisor scales out through an existing distributed engine, not swarm mode; clients that probe for swarm
(`docker info`, `docker node ls`, `docker stack`, compose's deploy checks, SDK test suites) get dockerd's own
503 and its wording, which they already know how to handle.
"""

from __future__ import annotations

from nanovisor.api.request import Request
from nanovisor.api.responses import Response
from nanovisor.errors import Unavailable

NOT_MANAGER = ('This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this '
               "node to swarm and try again.")
NOT_IN_SWARM = "This node is not part of a swarm"


def not_manager(req: Request) -> Response:
    raise Unavailable(NOT_MANAGER)


def not_in_swarm(req: Request) -> Response:
    raise Unavailable(NOT_IN_SWARM)


def init(req: Request) -> Response:
    raise Unavailable("swarm mode is not supported by nanovisor: several hosts are driven by an existing "
                      "distributed engine")


def _routes() -> list:
    routes: list = [("GET", "/swarm", not_manager), ("POST", "/swarm/init", init), ("POST", "/swarm/join", init),
                    ("POST", "/swarm/leave", not_in_swarm), ("POST", "/swarm/update", not_manager),
                    ("GET", "/swarm/unlockkey", not_manager), ("POST", "/swarm/unlock", not_in_swarm)]
    for kind in ("nodes", "services", "tasks", "secrets", "configs"):
        routes += [("GET", f"/{kind}", not_manager), ("GET", f"/{kind}/{{id}}", not_manager),
                   ("DELETE", f"/{kind}/{{id}}", not_manager), ("POST", f"/{kind}/create", not_manager),
                   ("POST", f"/{kind}/{{id}}/update", not_manager), ("GET", f"/{kind}/{{id}}/logs", not_manager)]
    return routes


ROUTES = _routes()
