"""`docker images --filter`: reference, dangling, label, before, since."""

from __future__ import annotations

import re

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
        summary_refs = None
        if "reference" in filters:
            summary_refs = [r for r in image.repo_tags + image.repo_digests
                            if any(familiar_match(pat, r) for pat in filters["reference"])]
            if not summary_refs:
                continue
        labels = (image.config.get("config") or {}).get("Labels") or {}
        if "label" in filters and not match_labels(labels, filters["label"]):
            continue
        if any(image.created >= b for b in before) or any(image.created <= s for s in since):
            continue
        summary = store.summary_dict(image)
        if summary_refs is not None:  # moby lists only the references that matched
            summary["RepoTags"] = [r for r in summary_refs if "@" not in r]
            summary["RepoDigests"] = [r for r in summary_refs if "@" in r]
        out.append(summary)
    out.sort(key=lambda d: d.get("Created", 0), reverse=True)
    return out


def _intermediate(store) -> set[str]:
    """Build steps' images, hidden from `images` without -a as Docker hides images that have children."""
    from nanovisor.store.parents import all_parents

    try:
        from nanovisor.builder.cache import intermediate_ids
    except ImportError:
        return all_parents(store.db)
    return set(intermediate_ids(store.db)) | all_parents(store.db)


def familiar_match(pattern: str, ref: str) -> bool:
    """moby's reference.FamiliarMatch: Go's path.Match of the pattern against the familiar reference, then
    against its name alone ("localhost:5000/app" matches "localhost:5000/app:v1"; "*" stops at "/")."""
    regex = _path_pattern(pattern)
    if regex is None:
        return False
    if regex.fullmatch(ref):
        return True
    name = ref.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name = name[:colon]
    return bool(regex.fullmatch(name))


def _path_pattern(pattern: str) -> re.Pattern | None:
    """Go's path.Match syntax as a regex (None for a malformed pattern, which matches nothing)."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                return None
            body = pattern[i + 1:end]
            negate = body.startswith("^")
            body = body[1:] if negate else body
            out.append("[" + ("^" if negate else "") + body + "]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    try:
        return re.compile("".join(out))
    except re.error:
        return None
