"""`docker commit` and the one step every build instruction ends with: a container's changes (or none) plus a
new config become a child image of the container's image.

Config merging follows moby's daemon/commit.go: the caller's config and --change instructions win, the
container's config fills what they leave empty (Cmd only when neither Cmd nor Entrypoint was given)."""

from __future__ import annotations

import copy
import time
from typing import Any

from nanovisor.builder.layertar import RUNTIME_MOUNTPOINTS, as_file, diff_tar
from nanovisor.store.parents import set_parent

# the container.Config fields an image config carries (the rest — Hostname, Tty, Image... — are per container)
IMAGE_CONFIG_KEYS = ("User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels",
                     "OnBuild", "StopSignal", "Healthcheck", "Shell", "ArgsEscaped")


def image_section(config: dict | None) -> dict:
    """The image-level part of a container config, in a stable key order."""
    config = config or {}
    return {k: copy.deepcopy(config[k]) for k in IMAGE_CONFIG_KEYS if config.get(k) not in (None, "", [], {})}


def merge_into(user: dict, base: dict) -> dict:
    """moby's merge(userConf, imageConf): base fills in what the user left empty."""
    out = dict(user)
    if not out.get("User") and base.get("User"):
        out["User"] = base["User"]
    if base.get("ExposedPorts"):
        out["ExposedPorts"] = {**base["ExposedPorts"], **(out.get("ExposedPorts") or {})}
    if base.get("Env"):
        keys = {e.split("=", 1)[0] for e in out.get("Env") or []}
        out["Env"] = list(out.get("Env") or []) + [e for e in base["Env"] if e.split("=", 1)[0] not in keys]
    if base.get("Labels"):
        out["Labels"] = {**base["Labels"], **(out.get("Labels") or {})}
    if not out.get("Entrypoint"):
        if not out.get("Cmd") and base.get("Cmd"):
            out["Cmd"] = base["Cmd"]
        if "Entrypoint" not in out and base.get("Entrypoint"):
            out["Entrypoint"] = base["Entrypoint"]
    for key in ("Healthcheck", "WorkingDir", "StopSignal", "OnBuild", "Shell"):
        if not out.get(key) and base.get(key):
            out[key] = base[key]
    if base.get("Volumes"):
        out["Volumes"] = {**base["Volumes"], **(out.get("Volumes") or {})}
    return image_section(out)


def rfc3339_now() -> str:
    from nanovisor.images.store import rfc3339

    return rfc3339(time.time())


def child_config(parent: dict | None, run_config: dict, created_by: str, diff_id: str | None, *,
                 author: str = "", comment: str = "", container: str = "") -> dict:
    """The image config of parent + one step (one layer, or none: an empty_layer history entry)."""
    parent = parent or {}
    now = rfc3339_now()
    out: dict[str, Any] = {"architecture": parent.get("architecture") or "amd64"}
    if author:
        out["author"] = author
    if comment:
        out["comment"] = comment
    out["config"] = run_config
    if container:
        out["container"] = container
    out["created"] = now
    entry: dict[str, Any] = {"created": now}
    if author:
        entry["author"] = author
    entry["created_by"] = created_by
    if comment:
        entry["comment"] = comment
    if diff_id is None:
        entry["empty_layer"] = True
    out["history"] = list(parent.get("history") or []) + [entry]
    out["os"] = parent.get("os") or "linux"
    if parent.get("variant"):
        out["variant"] = parent["variant"]
    diff_ids = list((parent.get("rootfs") or {}).get("diff_ids") or [])
    if diff_id is not None:
        diff_ids.append(diff_id)
    out["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
    return out


def container_layer(engine, container, extra_skip: tuple[str, ...] = ()) -> str | None:
    """The container's changes stored as a layer; its diff_id, or None when it changed nothing."""
    image = engine.images.get(container.image_id)
    upper = engine.paths.container_dir(container.id) / "upper"
    skip = set(RUNTIME_MOUNTPOINTS) | set(extra_skip)
    for point in container.spec.get("MountPoints") or []:
        dest = (point.get("Destination") or "").strip("/")
        if dest:
            skip.add(dest)
    if not upper.is_dir():
        return None
    chunks = diff_tar(upper, engine.images.layer_dirs(image), skip)
    if chunks is None:
        return None
    return engine.images.add_layer(as_file(chunks))


def commit(engine, container_ref: str, repo_tag: str | None = None, comment: str = "", author: str = "",
           changes: list[str] | None = None, pause: bool = True, config_overrides: dict | None = None) -> str:
    """`docker commit`: returns the new image id ("sha256:...")."""
    from nanovisor.images import reference
    from nanovisor.images.changes import apply_changes

    if repo_tag:
        reference.parse(repo_tag)  # refuse a bad name before doing any work
    c = engine.get(container_ref)
    user = apply_changes(image_section(config_overrides), list(changes or []))
    config = merge_into(image_section(user), image_section(c.config))
    paused_here = False
    if pause and c.running and not c.state.get("Paused"):
        try:
            engine.container_pause(c.id)
            paused_here = True
        except Exception:  # noqa: BLE001 - a runtime that cannot pause still commits, as moby does on Windows
            paused_here = False
    try:
        diff_id = container_layer(engine, c)
    finally:
        if paused_here:
            engine.container_unpause(c.id)
    parent = engine.images.get(c.image_id)
    created_by = " ".join((c.config.get("Entrypoint") or []) + (c.config.get("Cmd") or []))
    cfg = child_config(parent.config, config, created_by, diff_id, author=author, comment=comment,
                       container=c.id)
    image = engine.images.create_image(cfg, repo_tag or None)
    set_parent(engine.db, image.id, parent.id)
    try:
        engine.lifecycle.event(c, "commit", comment=comment, imageID=image.id, imageRef=repo_tag or "")
    except Exception:  # noqa: BLE001 - an event that could not be written does not undo the commit
        pass
    return image.id

