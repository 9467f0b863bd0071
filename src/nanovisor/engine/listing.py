"""`ps` and `container prune`: which containers, as Docker's filters choose them.

What a filter can say by index (live statuses when not --all, ancestor image ids, labels, id prefixes) is
asked of the database, so `ps` reads only the rows it may show; everything else (regexes on names,
before/since, volume, network, ...) is then matched in Python on those rows (filters.container_matcher
stays the single definition of what matches). Running containers are brought up to date through
`Engine.current`, which costs no process check for the ones serve watches.
"""

from __future__ import annotations

import time

from nanovisor.engine import views
from nanovisor.engine.diskusage import du
from nanovisor.engine.filters import container_matcher, match_labels
from nanovisor.errors import NotFound

LIVE = ["running", "paused", "restarting"]  # what `ps` without --all shows (reconciling may only shrink it)


def _narrowing(engine, filters: dict[str, list[str]], all_: bool) -> dict:
    """ContainerStore.list() arguments that select a superset of what the filters accept."""
    args: dict = {}
    if not all_ and "status" not in filters and "exited" not in filters:
        args["statuses"] = LIVE
    if "ancestor" in filters:
        args["image_ids"] = sorted(set().union(*(_image_ids(engine, ref) for ref in filters["ancestor"])))
    if "label" in filters:
        args["labels"] = [(k, v if eq else None) for k, eq, v in (w.partition("=") for w in filters["label"])]
    if "id" in filters:
        args["id_prefixes"] = list(filters["id"])
    return args


def _image_ids(engine, ref: str) -> set[str]:
    try:
        return {engine.images.resolve(ref).id}
    except NotFound:
        return set()


def list_containers(engine, all_: bool = False, limit: int = -1, size: bool = False,
                    filters: dict[str, list[str]] | None = None) -> list[dict]:
    filters = filters or {}
    match = container_matcher(filters, engine.containers.find, lambda ref: _image_ids(engine, ref),
                              engine.runtimes.isolation_of)
    now = time.time()
    out = []
    from nanovisor.engine.linking import link_names

    linked = link_names(engine.containers)  # legacy links name their child too: "/parent/alias"
    for c in engine.containers.iter(**_narrowing(engine, filters, all_)):
        c = engine.current(c)
        if not all_ and not c.running and "status" not in filters and "exited" not in filters \
                and c.state["Status"] != "restarting":
            continue
        if not match(c):
            continue
        item = views.summary(c, now)
        item["Names"] += linked.get(c.name, [])
        if size:
            item["SizeRw"] = du(engine.paths.container_dir(c.id) / "upper")
        out.append(item)
        if 0 < limit <= len(out):
            break
    return out


def prune_containers(engine, filters: dict[str, list[str]] | None = None) -> dict:
    """Removes stopped containers (label/until filters); {"ContainersDeleted", "SpaceReclaimed"}."""
    from nanovisor.engine.timefmt import parse_time_filter

    filters = filters or {}
    until = parse_time_filter(filters["until"][0]) if filters.get("until") else None
    deleted, space = [], 0
    for c in engine.containers.list():
        c = engine.current(c)
        if c.running or c.state["Status"] == "restarting":
            continue
        if "label" in filters and not match_labels(c.config.get("Labels") or {}, filters["label"]):
            continue
        if until is not None and c.created >= until:
            continue
        space += du(engine.paths.container_dir(c.id) / "upper")
        engine.container_remove(c.id)
        deleted.append(c.id)
    engine.event_log.emit("container", "prune", "", {"reclaimed": str(space)})
    return {"ContainersDeleted": deleted or None, "SpaceReclaimed": space}
