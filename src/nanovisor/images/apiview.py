"""Images as the Docker Engine API shows them: ImageInspect, ImageSummary, ImageHistoryResponseItem, and the
filters of GET /images/json and POST /images/prune."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from nanovisor.errors import InvalidParameter
from nanovisor.images import reference

if TYPE_CHECKING:
    from nanovisor.images.store import Image, ImageStore


def _section(c: dict, key: str) -> dict:
    """c[key] when it is an object. Configs are checked when they come in (jsontypes), but one stored by an
    older version may hold anything: it must not break the listing of every other image."""
    value = c.get(key) if isinstance(c, dict) else None
    return value if isinstance(value, dict) else {}


def _labels(image: Image) -> dict[str, str]:
    labels = _section(_section(image.config, "config"), "Labels")
    return {k: v for k, v in labels.items() if isinstance(v, str)}


def _text(c: dict, key: str) -> str:
    value = c.get(key)
    return value if isinstance(value, str) else ""


def _config_view(cfg: dict) -> dict:
    """The image's container config as Docker shows it (empty fields present like moby renders them)."""
    from nanovisor import jsontypes

    cfg = jsontypes.clean(cfg, "ImageConfig") if isinstance(cfg, dict) else {}
    out = {
        "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
        "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False,
        "Env": None, "Cmd": None, "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None,
        "OnBuild": None, "Labels": None,
    }
    out.update(cfg)
    return out


# an image's ContainerConfig as moby renders it for an image no container step made
_EMPTY_CONTAINER_CONFIG = {
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
    "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None, "Cmd": None,
    "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": None,
}


def inspect_dict(store: ImageStore, image: Image) -> dict:
    from nanovisor.images.store import rfc3339

    c = image.config
    layers = store.layer_dirs(image)
    graph = {"Name": "overlay2", "Data": {"MergedDir": "", "UpperDir": str(layers[0]) if layers else "",
                                          "WorkDir": ""}}
    if len(layers) > 1:
        graph["Data"]["LowerDir"] = ":".join(str(p) for p in layers[1:])
    from nanovisor.store.parents import parent_of

    out = {
        "Id": image.id,
        "RepoTags": list(image.repo_tags),
        "RepoDigests": list(image.repo_digests),
        "Parent": parent_of(store.db, image.id),
        "Comment": _comment(c),
        "Created": _text(c, "created") or rfc3339(image.created),
        "DockerVersion": _text(c, "docker_version"),
        "Author": _text(c, "author"),
        "Config": _config_view(c.get("config") or {}),
        "Architecture": _text(c, "architecture"),
        "Os": _text(c, "os"),
        "Size": image.size,
        "GraphDriver": graph,
        "RootFS": {"Type": "layers", "Layers": image.diff_ids},
        "Metadata": {"LastTagTime": store.last_tag_time(image.id)},
        # API < 1.45 (api/compat.py drops them for newer clients)
        "Container": c.get("container") or "",
        "ContainerConfig": _config_view(c.get("container_config") or {}) if c.get("container_config")
        else dict(_EMPTY_CONTAINER_CONFIG),
    }
    if c.get("variant"):
        out["Variant"] = c["variant"]
    if c.get("os.version"):
        out["OsVersion"] = c["os.version"]
    return out


def _comment(c: dict) -> str:
    return _text(c, "comment")


def summary_dict(store: ImageStore, image: Image, containers: bool = False) -> dict:
    """ImageSummary; Containers is -1 unless asked for (as moby does outside `system df`)."""
    from nanovisor.store.parents import parent_of

    return {
        "Id": image.id,
        "ParentId": parent_of(store.db, image.id),
        "RepoTags": list(image.repo_tags),
        "RepoDigests": list(image.repo_digests),
        "Created": int(image.created),
        "Size": image.size,
        "SharedSize": -1,
        "Labels": _labels(image),
        "Containers": store.containers_count(image.id) if containers else -1,
    }


def history(store: ImageStore, image: Image) -> list[dict]:
    """Newest first; one row per history entry, the layer size on rows that made a layer."""
    from nanovisor.images.store import parse_created

    hist = list(image.config.get("history") or [])
    diff_ids = image.diff_ids
    if not hist:
        hist = [{"created": image.config.get("created")} for _ in diff_ids]
    rows = []
    layer = 0
    for h in hist:
        size = 0
        if not h.get("empty_layer") and layer < len(diff_ids):
            size = store.layer_size(diff_ids[layer])
            layer += 1
        rows.append({"Id": "<missing>", "Created": int(parse_created(h.get("created"))),
                     "CreatedBy": h.get("created_by", ""), "Tags": None, "Size": size,
                     "Comment": h.get("comment", "")})
    rows.reverse()
    # the newest rows carry the ids of the image and its recorded parents (build steps), as in moby
    from nanovisor.store.parents import ancestry

    for row, image_id in zip(rows, ancestry(store.db, image.id, len(rows)), strict=False):
        row["Id"] = image_id
        tags = list(image.repo_tags) if image_id == image.id else store.get(image_id).repo_tags
        row["Tags"] = tags or None
    return rows


# -- filters ---------------------------------------------------------------------------------------

_LIST_FILTERS = {"dangling", "label", "label!", "before", "since", "reference", "until"}


def _parse_time(value: str) -> float:
    """Docker's timestamp filter values: unix seconds (with fraction), RFC 3339, or a Go duration ago."""
    from nanovisor.images.store import parse_created

    try:
        return float(value)
    except ValueError:
        pass
    t = parse_created(value if value.endswith("Z") or "+" in value[10:] else value + "Z")
    if t:
        return t
    import re

    m = re.fullmatch(r"((?:\d+(?:\.\d+)?(?:h|m|s|ms))+)", value)
    if m:
        total = 0.0
        for num, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", value):
            total += float(num) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
        return time.time() - total
    raise InvalidParameter(f"failed to parse value {value} as a timestamp")


def _label_match(labels: dict, spec: str) -> bool:
    k, eq, v = spec.partition("=")
    return k in labels and (not eq or labels[k] == v)


def image_matches_filters(image: Image, filters: dict[str, list[str]], prune: bool = False,
                          store: ImageStore | None = None) -> bool:
    for key in filters:
        if key not in _LIST_FILTERS or (prune and key in ("before", "since", "reference")):
            raise InvalidParameter(f"invalid filter '{key}'")
    labels = _labels(image)
    for v in filters.get("dangling", []):
        if v.lower() not in ("true", "false", "1", "0"):
            raise InvalidParameter(f"invalid filter 'dangling={v}'")
        want = v.lower() in ("true", "1")
        if want != (not image.repo_tags):
            return False
    if any(not _label_match(labels, s) for s in filters.get("label", [])):
        return False
    if any(_label_match(labels, s) for s in filters.get("label!", [])):
        return False
    for v in filters.get("until", []):
        if image.created >= _parse_time(v):
            return False
    for key, newer in (("before", False), ("since", True)):
        for v in filters.get(key, []):
            if store is None:
                continue
            ref_img = store.resolve(v)
            if newer and image.created <= ref_img.created:
                return False
            if not newer and image.created >= ref_img.created:
                return False
    refs = filters.get("reference", [])
    if refs:
        import fnmatch

        names = image.repo_tags + image.repo_digests
        ok = False
        for pattern in refs:
            for n in names:
                repo = n.split("@")[0].rsplit(":", 1)[0] if "@" not in n else n.split("@")[0]
                if fnmatch.fnmatchcase(n, pattern) or fnmatch.fnmatchcase(repo, pattern):
                    ok = True
                if fnmatch.fnmatchcase(n, reference.parse(pattern).familiar() if
                                       reference.looks_like_reference(pattern) else pattern):
                    ok = True
        if not ok:
            return False
    return True
