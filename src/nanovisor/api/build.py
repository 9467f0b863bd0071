"""POST /build (the legacy builder, what `DOCKER_BUILDKIT=0 docker build` and docker-py use), /build/prune
and POST /commit."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING

from nanovisor import errors
from nanovisor.api.request import Request, loads_json
from nanovisor.api.responses import JSON, Response, Stream, json_error_message, json_lines

if TYPE_CHECKING:
    from nanovisor.builder.context import BuildContext

_BUILDKIT_VERSION = "2"


def build(req: Request) -> Stream:
    """Validates everything first (a bad parameter is a 400), unpacks the context, then streams the build."""
    if req.q("remote"):
        raise errors.InvalidParameter("remote build contexts are not supported by nanovisor: send a tar context")
    version = req.q("version") or "1"
    if version == _BUILDKIT_VERSION:
        raise errors.InvalidParameter("buildkit not supported by daemon")
    if version != "1":
        raise errors.InvalidParameter(f"invalid version {version}")
    if req.qbool("squash"):
        raise errors.InvalidParameter("squash is only supported with experimental mode")
    options = {
        "tags": _tags(req.qlist("t")),
        # the first value, as Go's FormValue: docker-py sends the name, then the text, of a Dockerfile it put
        # into the context from outside it
        "dockerfile": next(iter(req.qlist("dockerfile")), "") or "Dockerfile",
        "build_args": _json_map(req.q("buildargs"), "error reading build args"),
        "target": req.q("target") or None,
        "no_cache": req.qbool("nocache"),
        "pull": req.qbool("pull"),
        "labels": _json_map(req.q("labels"), "error reading labels"),
        "quiet": req.qbool("q"),
        "network_mode": req.q("networkmode") or "default",
        "extra_hosts": _extra_hosts(req.qlist("extrahosts")),
        "cache_from": _json_list(req.q("cachefrom"), "error reading cache-from"),
    }
    from nanovisor.builder.builder import build_stream
    from nanovisor.builder.context import BuildContext

    # the body is unpacked (and hashed) as it arrives, before answering: the handler drains unread bodies
    # before it streams, and there is no spool file to write and read back
    context = BuildContext.from_tar(req.body, req.engine.paths.tmp)
    return Stream(_closing(build_stream(req.engine, context, **options), context), on_error=json_error_message)


def build_prune(req: Request) -> Response:
    """The legacy builder keeps its cache as images: `docker image prune` reclaims them. This (called by
    `docker system prune` and `docker builder prune`) removes the scratch work dead processes left."""
    return JSON({"CachesDeleted": [], "SpaceReclaimed": req.engine.scratch_prune()})


def commit(req: Request) -> Response:
    from nanovisor.builder.commit import commit as commit_container

    repo, tag = req.q("repo") or "", req.q("tag") or ""  # moby ignores a tag without a repo
    image_id = commit_container(
        req.engine, req.q("container") or "", repo_tag=(f"{repo}:{tag}" if tag else repo) or None,
        comment=req.q("comment") or "", author=req.q("author") or "", changes=req.qlist("changes"),
        pause=req.qbool("pause", True), config_overrides=_optional_object(req))
    return JSON({"Id": image_id}, 201)


# -- parsing ---------------------------------------------------------------------------------------------

def _tags(values: list[str]) -> list[str]:
    """A bad tag fails the request before any build work (moby answers 400)."""
    from nanovisor.images import reference

    tags = [t for t in values if t]
    for t in tags:
        reference.parse(t)
    return tags


def _json_map(raw: str | None, what: str) -> dict:
    if not raw:
        return {}
    value = loads_json(raw, what)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise errors.InvalidParameter(f"{what}: expected a JSON object")
    return value


def _json_list(raw: str | None, what: str) -> list[str]:
    if not raw:
        return []
    value = loads_json(raw, what)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise errors.InvalidParameter(f"{what}: expected a JSON array of strings")
    return value


def _extra_hosts(values: list[str]) -> list[str]:
    """`extrahosts`, repeated (docker CLI, docker-py): "name:ip" or "name=ip" each."""
    from nanovisor.bundle.etcfiles import parse_extra_host

    hosts = [h for h in values if h]
    for h in hosts:
        parse_extra_host(h)  # a bad entry is a 400 before the build starts
    return hosts


def _optional_object(req: Request) -> dict | None:
    """The commit body: a container config, or nothing (an empty body or JSON null)."""
    return req.json(null_ok=True, kind="Commit") or None


# -- the context -----------------------------------------------------------------------------------------

def _closing(messages: Generator[dict, None, None], context: BuildContext) -> Iterator[bytes]:
    """Yields the stream as JSON lines; when it ends or the client goes away, stops the build (closing
    build_stream cancels it) and drops the unpacked context."""
    try:
        yield from json_lines(messages)
    finally:
        messages.close()
        context.close()


ROUTES = [
    ("POST", "/build", build),
    ("POST", "/build/prune", build_prune),
    ("POST", "/commit", commit),
]
