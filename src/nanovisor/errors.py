"""Typed engine errors. The API turns them into HTTP statuses in exactly one place (api/errors.py),
the CLI into one-line messages; nothing else picks a status. Messages follow moby word for word
because clients (docker CLI, docker-py) classify errors by their text."""


class NanovisorError(Exception):
    """Base class: an error a user can understand, never a bug."""

    status = 500


class InvalidParameter(NanovisorError):
    status = 400


class FramingError(InvalidParameter):
    """A request's HTTP framing is broken (Content-Length, chunk sizes): 400, and the connection is closed
    since where the next request starts is unknown."""


class NotFound(NanovisorError):
    status = 404


class Conflict(NanovisorError):
    status = 409


class NotModified(NanovisorError):
    status = 304


class Forbidden(NanovisorError):
    status = 403


class Unavailable(NanovisorError):
    status = 503


class NotImplemented_(NanovisorError):
    """A feature the configuration rules out (dockerd's errdefs.NotImplemented), e.g. reading a `none` log."""

    status = 501


class SystemError_(NanovisorError):
    """A failure of the host or a tool we run (runtime, mount); reported as 500 with its text."""

    status = 500


def no_such_container(ref: str) -> NotFound:
    return NotFound(f"No such container: {ref}")


def no_such_image(ref: str) -> NotFound:
    return NotFound(f"No such image: {ref}")


def no_such_volume(ref: str) -> NotFound:
    return NotFound(f"get {ref}: no such volume")


def no_such_exec(ref: str) -> NotFound:
    return NotFound(f"No such exec instance: {ref}")
