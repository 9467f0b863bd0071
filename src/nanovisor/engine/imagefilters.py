"""`docker images --filter`: reference, dangling, label, before, since."""

from __future__ import annotations

import fnmatch

from nanovisor.engine.filters import match_labels
from nanovisor.errors import InvalidParameter

_KNOWN = {"reference", "dangling", "label", "before", "since", "until"}


def list_images(store, filters: dict[str, list[str]], all_images: bool) -> list[dict]:
    for key in filters:
        if key not in _KNOWN:
            raise InvalidParameter(f"invalid filter '{key}'")
    before = [store.resolve(r).created for r in filters.get("before", [])]
    since = [store.resolve(r).created for r in filters.get("since", [])]
    hidden = set() if all_images else _intermediate(store)
    out = []
    for image in store.list():
        if image.id in hidden and not image.repo_tags:
            continue
        if "dangling" in filters:
            want = filters["dangling"][0].lower() in ("1", "true")
            if want != (not image.repo_tags):
                continue
        if "reference" in filters:
            names = image.repo_tags + [t.split(":")[0] for t in image.repo_tags]
            if not any(fnmatch.fnmatch(n, pat) for n in names for pat in filters["reference"]):
                continue
        labels = (image.config.get("config") or {}).get("Labels") or {}
        if "label" in filters and not match_labels(labels, filters["label"]):
            continue
        if any(image.created >= b for b in before) or any(image.created <= s for s in since):
            continue
        out.append(store.summary_dict(image))
    out.sort(key=lambda d: d.get("Created", 0), reverse=True)
    return out


def _intermediate(store) -> set[str]:
    """Build steps' images, hidden from `images` without -a as Docker hides images that have children."""
    try:
        from nanovisor.builder.cache import intermediate_ids
    except ImportError:
        return set()
    return set(intermediate_ids(store.db))
