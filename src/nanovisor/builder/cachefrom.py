"""`docker build --cache-from IMAGE`: the given images are the cache, as in dockerd's legacy builder
(daemon/images/cache.go). A step hits when a source image's history continues the current image with this
very step (same layers so far, same history so far, the next entry made by the same command): the step's
image is then rebuilt from the source's layer without running anything. A hit of the local cache counts
only when it is one of the sources or an ancestor of one.

This is what makes a CI build reuse the layers of an image it pulled (which has no local build cache)."""

from __future__ import annotations

import copy

from nanovisor.store.parents import ancestry, set_parent


class CacheSources:
    def __init__(self, engine, refs: list[str]) -> None:
        from nanovisor.errors import NotFound

        self.engine = engine
        self.sources = []
        for ref in refs:
            try:
                self.sources.append(engine.images.resolve(ref))
            except NotFound:
                continue  # dockerd skips a cache source it does not have
        self._lineage: set[str] | None = None

    def _ancestors(self) -> set[str]:
        if self._lineage is None:
            self._lineage = {i for s in self.sources for i in ancestry(self.engine.db, s.id)}
        return self._lineage

    def get(self, local_hit: str | None, parent_id: str, created_by: str, run_config: dict) -> str | None:
        """The image for this step, or None (a miss: the step runs)."""
        if local_hit and local_hit in self._ancestors():
            return local_hit
        images = self.engine.images
        parent = images.get(parent_id).config if parent_id else None
        done = len((parent or {}).get("history") or [])
        for target in self.sources:
            history = target.config.get("history") or []
            if not _continues(target.config, parent) or history[done].get("created_by", "") != created_by:
                continue
            if len(history) - 1 == done:  # the source itself is this step's image
                set_parent(self.engine.db, target.id, parent_id)
                return target.id
            image_id = self._restore(parent, parent_id, target.config, done, run_config)
            self.sources = [target]  # follow this source from here on, as dockerd does
            self._lineage = None
            return image_id
        return None

    def _restore(self, parent: dict | None, parent_id: str, target: dict, index: int, run_config: dict) -> str:
        """parent + the source's step `index` (its layer, if it made one) as a new image."""
        entry = copy.deepcopy(target["history"][index])
        diff_ids = list(((parent or {}).get("rootfs") or {}).get("diff_ids") or [])
        if not entry.get("empty_layer"):
            diff_ids.append(_layer_at(target, index))
        cfg: dict = {"architecture": target.get("architecture") or "amd64"}
        if target.get("author"):
            cfg["author"] = target["author"]
        cfg["config"] = copy.deepcopy(run_config)
        cfg["created"] = entry.get("created") or target.get("created")
        cfg["history"] = list((parent or {}).get("history") or []) + [entry]
        cfg["os"] = target.get("os") or "linux"
        cfg["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
        image = self.engine.images.create_image(cfg)
        set_parent(self.engine.db, image.id, parent_id)
        return image.id


def _continues(target: dict, parent: dict | None) -> bool:
    """moby's isValidParent: target has more history than parent, and parent's history and layers are its
    prefix."""
    history = target.get("history") or []
    if not history:
        return False
    if parent is None:
        return True
    p_history = parent.get("history") or []
    p_layers = (parent.get("rootfs") or {}).get("diff_ids") or []
    if not p_history and not p_layers:
        return True
    layers = (target.get("rootfs") or {}).get("diff_ids") or []
    if len(p_history) >= len(history) or len(p_layers) > len(layers):
        return False
    return history[:len(p_history)] == p_history and layers[:len(p_layers)] == p_layers


def _layer_at(target: dict, index: int) -> str:
    """The diff_id made by history entry `index` (entries marked empty_layer made none)."""
    layer = sum(1 for h in target["history"][:index] if not h.get("empty_layer"))
    return target["rootfs"]["diff_ids"][layer]
