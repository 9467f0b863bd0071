"""The one place where an exception becomes an HTTP status and body (moby's httpstatus.FromError).

Handlers never pick a status: they raise nanovisor.errors types (or let the engine raise them) and this
function decides. Anything else is a bug: 500 with its text, logged with a traceback.
"""

from __future__ import annotations

import logging

from nanovisor import errors

log = logging.getLogger("nanovisor.api")


class RouteNotFound(Exception):
    """No route matches the method and path: moby answers 404 "page not found"."""


def error_status(exc: BaseException) -> tuple[int, dict | None]:
    """Map an exception to (status, JSON body); body is None when the status forbids one (304)."""
    if isinstance(exc, errors.NotModified):
        return 304, None
    if isinstance(exc, errors.NanovisorError):  # each type carries its status (registry Unauthorized: 401)
        return exc.status, {"message": str(exc)}
    if isinstance(exc, RouteNotFound):
        return 404, {"message": "page not found"}
    if isinstance(exc, NotImplementedError):
        what = str(exc) or "this operation"
        return 501, {"message": f"{what} is not implemented in nanovisor yet"}
    log.error("internal error: %s", exc, exc_info=exc)
    return 500, {"message": str(exc) or type(exc).__name__}
