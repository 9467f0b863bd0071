"""Image operations as the API sees them: the image store's work plus the events dockerd emits for it,
and the registry blobs dropped with the last image that used them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from nanovisor.engine.events import EventLog
from nanovisor.images.store import ImageStore


def tag(images: ImageStore, events: EventLog, ref: str, repo: str, tag_: str | None = None) -> None:
    target = f"{repo}:{tag_}" if tag_ else repo
    images.tag(ref, target)
    events.emit("image", "tag", images.resolve(ref).id, {"name": target})


def remove(images: ImageStore, events: EventLog, ref: str, force: bool = False,
           noprune: bool = False) -> list[dict]:
    result = images.remove(ref, force=force, noprune=noprune)
    collect_registry_blobs(images)
    for item in result:
        for action, value in item.items():
            events.emit("image", {"Untagged": "untag", "Deleted": "delete"}.get(action, action.lower()), value,
                        {"name": value})
    return result


def load(images: ImageStore, events: EventLog, stream: BinaryIO) -> list[str]:
    refs = images.load(stream)
    for ref in refs:
        events.emit("image", "load", ref, {"name": ref})
    return refs


def save(images: ImageStore, refs: list[str]) -> Iterator[bytes]:
    for ref in refs:
        images.resolve(ref)  # fail before streaming anything
    return images.save(refs)


def import_tar(images: ImageStore, events: EventLog, stream: BinaryIO, repo: str | None = None,
               tag_: str | None = None, changes: list[str] | None = None, message: str = "") -> str:
    ref = (f"{repo}:{tag_}" if tag_ else repo) if repo else None
    image = images.import_tar(stream, ref, changes, message)
    events.emit("image", "import", image.id, {"name": ref or image.id})
    return image.id


def pull(images: ImageStore, events: EventLog, ref: str, options: dict, platform: str | None = None,
         auth=None) -> Iterator[dict]:
    """dockerd's progress messages for POST /images/create?fromImage=; raises at the end on error."""
    from nanovisor.images.registry import pull_stream

    yield from pull_stream(images, ref, platform=platform, auth=auth, **options)
    image = images.resolve(ref)
    events.emit("image", "pull", ref, {"name": ref, "id": image.id})


def push(images: ImageStore, events: EventLog, ref: str, options: dict, auth=None) -> Iterator[dict]:
    from nanovisor.images.registry import push_stream

    images.resolve(ref)  # fail before streaming anything

    def messages() -> Iterator[dict]:
        yield from push_stream(images, ref, auth=auth, **options)
        events.emit("image", "push", ref, {"name": ref})
    return messages()


def prune(images: ImageStore, filters: dict[str, list[str]] | None = None) -> dict:
    filters = filters or {}
    dangling = (filters.get("dangling") or ["true"])[0].lower() in ("1", "true")
    result = images.prune(dangling_only=dangling, filters=filters)
    collect_registry_blobs(images)
    return result


def collect_registry_blobs(images: ImageStore) -> None:
    """Compressed blobs kept for push are dropped with the last image that used them."""
    from nanovisor.images.registry import blobmeta

    blobmeta.collect_garbage(images)
