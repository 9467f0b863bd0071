"""ImageStore: images, their references and their unpacked layers.

Storage: the exact config bytes are a blob (its sha256 is the image id), the `images` row caches the parsed
config; `image_refs` maps familiar references to ids; each layer is unpacked once into
Paths.layers/<diff_id hex>/diff (plus the tar-split skeleton that lets `save` reproduce its tar). Every
metadata change is one transaction; layer directories appear by rename, so the embedded CLI and the daemon
can share a root."""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from nanovisor import jsontypes
from nanovisor.errors import Conflict, InvalidParameter, NotFound, no_such_image
from nanovisor.images import reference
from nanovisor.images.content import BlobStore, digest_of
from nanovisor.paths import Paths
from nanovisor.rmtree import remove_tree
from nanovisor.store.containers import ContainerTable
from nanovisor.store.db import Database
from nanovisor.store.images import ImageRow, ImageTables
from nanovisor.store.kv import KV
from nanovisor.store.parents import children_of, parent_of

LEASE_SECONDS = 600
_HEX = re.compile(r"^[a-f0-9]{1,64}$")


@dataclass
class Image:
    id: str                     # "sha256:<hex of the config blob>"
    config: dict                # the image config JSON (architecture, os, config{Env,Cmd,...}, rootfs, history)
    created: float              # seconds since the epoch
    size: int                   # sum of unpacked layer sizes
    repo_tags: list[str] = field(default_factory=list)     # familiar form: "nano/busybox:latest"
    repo_digests: list[str] = field(default_factory=list)  # "nano/busybox@sha256:..."

    @property
    def diff_ids(self) -> list[str]:
        rootfs = self.config.get("rootfs")
        ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
        return [d for d in ids if isinstance(d, str)] if isinstance(ids, list) else []


def short_id(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def chain_ids(diff_ids: list[str]) -> list[str]:
    out: list[str] = []
    for d in diff_ids:
        out.append(d if not out else "sha256:" + hashlib.sha256(f"{out[-1]} {d}".encode()).hexdigest())
    return out


def parse_created(value: str | None) -> float:
    """RFC 3339 (with nanoseconds) to epoch seconds; 0 when absent or odd."""
    if not value or not isinstance(value, str):
        return 0.0
    from datetime import datetime
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", value)
    if not m:
        return 0.0
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    base = datetime.fromisoformat(m.group(1) + tz).timestamp()
    return base + (float("0" + m.group(2)) if m.group(2) else 0.0)


def rfc3339(t: float) -> str:
    """Go's RFC3339Nano in UTC (trailing zeros of the fraction dropped)."""
    sec = int(t // 1)
    nanos = int(round((t - sec) * 1e9))
    if nanos >= 1_000_000_000:
        sec, nanos = sec + 1, nanos - 1_000_000_000
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    frac = f"{nanos:09d}".rstrip("0")
    return base + ("." + frac if frac else "") + "Z"


class ImageStore:
    def __init__(self, paths: Paths, db: Database) -> None:
        self.paths = paths
        self.db = db
        self.blobs = BlobStore(paths)
        self.tables = ImageTables(db)

    # -- lookup ------------------------------------------------------------------------------------

    def _image(self, image_id: str) -> Image:
        row = self.tables.image(image_id)
        if row is None:
            raise no_such_image(image_id)
        return self._from_row(row)

    def _from_row(self, row: ImageRow) -> Image:
        refs = self.tables.refs_of(row.id)
        return Image(id=row.id, config=row.config, created=row.created, size=row.size,
                     repo_tags=[r for r in refs if "@" not in r], repo_digests=[r for r in refs if "@" in r])

    def get(self, image_id: str) -> Image:
        """By exact id ("sha256:<64 hex>"), as containers record it; NotFound otherwise."""
        return self._image(image_id)

    def resolve(self, ref: str) -> Image:
        """By name[:tag], name@digest, full or short (>= 1 hex char, unambiguous) id, "sha256:..." id.
        Raises NotFound("No such image: REF")."""
        image_id = self.resolve_id(ref)
        return self._image(image_id)

    def resolve_id(self, ref: str) -> str:
        if not ref:
            raise no_such_image(ref)
        if ref.startswith("sha256:"):
            hexpart = ref[7:]
            if not _HEX.match(hexpart):
                raise no_such_image(ref)
            return self._by_prefix(hexpart, ref)
        try:
            parsed = reference.parse(ref)
        except InvalidParameter:
            parsed = None
        if parsed is not None:
            found = self.tables.target(parsed.stored())
            if found is not None:
                return found
            if parsed.digest:  # name@digest also matches the manifest digest recorded at load/pull time
                found = self.tables.target_like(f"{parsed.name}@{parsed.digest}")
                if found is not None:
                    return found
        if _HEX.match(ref):
            found = self._by_prefix(ref, ref, missing_ok=True)
            if found:
                return found
        raise no_such_image(ref)

    def _by_prefix(self, hexpart: str, ref: str, missing_ok: bool = False) -> str:
        ids = self.tables.ids_with_prefix("sha256:" + hexpart, limit=2)
        if len(ids) > 1:  # ambiguous prefix: moby answers "No such image" too
            raise no_such_image(ref)
        if ids:
            return ids[0]
        if missing_ok:
            return ""
        raise no_such_image(ref)

    def list(self) -> list[Image]:
        return [self._from_row(r) for r in self.tables.images()]

    def exists(self, image_id: str) -> bool:
        return self.tables.exists(image_id)

    def count(self) -> int:
        return self.tables.count()

    # -- layers -----------------------------------------------------------------------------------

    def layer_path(self, diff_id: str) -> Path:
        return self.paths.layers / diff_id.removeprefix("sha256:")

    def layer_dirs(self, image: Image) -> list[Path]:
        """Unpacked layer directories in overlay lowerdir order: the top-most layer first."""
        return [self.layer_path(d) / "diff" for d in reversed(image.diff_ids)]

    def has_layer(self, diff_id: str) -> bool:
        return self.tables.layer_size(diff_id) is not None and (self.layer_path(diff_id) / "diff").is_dir()

    def layer_tar_size(self, diff_id: str) -> int:
        return json.loads((self.layer_path(diff_id) / "meta.json").read_text())["tar_size"]

    def layer_size(self, diff_id: str) -> int:
        return self.tables.layer_size(diff_id) or 0

    def add_layer(self, tar_stream: BinaryIO) -> str:
        """Unpacks a (possibly compressed) layer tar once; returns its diff_id. The layer is leased for a
        while so a concurrent garbage collection does not take it before an image refers to it."""
        from nanovisor.images.unpack import unpack_layer  # tar machinery only when a layer arrives

        info = unpack_layer(tar_stream, self.paths.layers, self.paths.tmp)
        with self.db.transaction():
            self.tables.add_layer(info.diff_id, info.size, time.time())
            self.tables.lease(info.diff_id, time.time() + LEASE_SECONDS)
        if not (info.path / "diff").is_dir():  # lost a race against a collection of the same layer
            raise Conflict(f"layer {info.diff_id} was removed while being added; retry")
        return info.diff_id

    # -- creating and tagging -----------------------------------------------------------------------

    def create_image(self, config: dict, ref: str | None = None) -> Image:
        """Stores a config whose rootfs.diff_ids are all present layers, tags it with ref."""
        data = json.dumps(config, separators=(",", ":")).encode()
        return self.create_image_bytes(data, [ref] if ref else [])

    def create_image_bytes(self, data: bytes, refs: list[str], manifest: dict | None = None,
                           repo_digests: list[str] | None = None) -> Image:
        """Stores exact config bytes (their digest is the id) and points refs at it."""
        try:
            config = json.loads(data)
        except ValueError:
            raise InvalidParameter("invalid image config: not JSON") from None
        if not isinstance(config, dict):
            raise InvalidParameter("invalid image config: not an object")
        try:  # as moby decodes it into its Go struct: one wrong-typed field would break every later view
            jsontypes.check(config, "ImageDocument")
        except InvalidParameter as e:
            raise InvalidParameter(f"invalid image config: {e}") from None
        diff_ids = config.get("rootfs", {}).get("diff_ids") or []
        stored_refs = [reference.normalize(r) for r in refs]
        try:
            text = data.decode()
        except UnicodeDecodeError:
            raise InvalidParameter("invalid image config: not UTF-8") from None
        created = parse_created(config.get("created"))
        with self.db.transaction():
            image_id = self.blobs.put(data)  # inside the transaction: a collection cannot race it
            size = 0
            for d in diff_ids:
                layer_size = self.tables.layer_size(d)
                if layer_size is None or not (self.layer_path(d) / "diff").is_dir():
                    raise InvalidParameter(f"layer {d} of image {image_id} is not present")
                size += layer_size
            self.tables.insert_image(image_id, created, text, manifest, size)
            for r in stored_refs + [reference.normalize(r) for r in (repo_digests or [])]:
                self.tables.put_ref(r, image_id)
            if stored_refs:
                self._touch_tag(image_id)
            self.tables.release(diff_ids, expired_before=time.time())
        return self._image(image_id)

    def _touch_tag(self, image_id: str) -> None:
        KV(self.db).put("lasttag:" + image_id, rfc3339(time.time()))

    def last_tag_time(self, image_id: str) -> str:
        return KV(self.db).get("lasttag:" + image_id) or "0001-01-01T00:00:00Z"

    def tag(self, ref: str, new_ref: str) -> None:
        image_id = self.resolve_id(ref)
        parsed = reference.parse(new_ref)
        if parsed.digest:
            raise InvalidParameter("refusing to create a tag with a digest reference")
        with self.db.transaction():
            self.tables.put_ref(parsed.stored(), image_id)
            self._touch_tag(image_id)

    def import_tar(self, stream: BinaryIO, ref: str | None = None, changes: list[str] | None = None,
                   message: str = "") -> Image:
        """`docker import`: a rootfs tar becomes a one-layer image; --change instructions shape its config."""
        from nanovisor.images.changes import apply_changes

        if ref:
            reference.parse(ref)  # refuse a bad name before unpacking anything
        cfg = apply_changes({}, changes or [])
        diff_id = self.add_layer(stream)
        now = rfc3339(time.time())
        comment = message or "Imported from -"
        config = {
            "architecture": "amd64",
            "comment": comment,
            "config": cfg,
            "created": now,
            "history": [{"created": now, "comment": comment}],
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
        return self.create_image(config, ref)

    # -- removal and garbage collection ------------------------------------------------------------

    def _containers_using(self, image_id: str) -> list[tuple[str, bool]]:
        """(container id, running) of containers created from image_id."""
        return ContainerTable(self.db).using_image(image_id)

    def _refs_of(self, image_id: str) -> list[str]:
        return self.tables.refs_of(image_id)

    @staticmethod
    def _single_reference(refs: list[str]) -> bool:
        """moby's isSingleReference: one tag (plus digests of that same repository)."""
        if len(refs) <= 1:
            return len(refs) == 1
        tags = [r for r in refs if "@" not in r]
        canon = {r.split("@")[0] for r in refs if "@" in r}
        if len(tags) > 1:
            return False
        single = tags[0] if tags else refs[0]
        name = single.split("@")[0] if "@" in single else single.rsplit(":", 1)[0]
        return len(canon) == 1 and name in canon

    def _conflict(self, image_id: str, hard_only: bool, check_refs: bool = True) -> Conflict | None:
        """moby's checkImageDeleteConflict, in its order: children and running containers cannot be forced."""
        sid = short_id(image_id)
        if children_of(self.db, image_id):
            return Conflict(f"conflict: unable to delete {sid} (cannot be forced) - image has dependent child images")
        users = self._containers_using(image_id)
        running = [c for c, run in users if run]
        if running:
            return Conflict(f"conflict: unable to delete {sid} (cannot be forced) - image is being used by "
                            f"running container {running[0][:12]}")
        if hard_only:
            return None
        if check_refs and self._refs_of(image_id):
            return Conflict(f"conflict: unable to delete {sid} (must be forced) - image is referenced in "
                            f"multiple repositories")
        if users:
            return Conflict(f"conflict: unable to delete {sid} (must be forced) - image is being used by "
                            f"stopped container {users[0][0][:12]}")
        return None

    def remove(self, ref: str, force: bool = False, noprune: bool = False) -> list[dict]:
        """`docker rmi` with moby's rules and messages; returns [{"Untagged": ..}, {"Deleted": ..}]."""
        with self.db.transaction():
            image_id = self.resolve_id(ref)
            records: list[dict] = []
            refs = self._refs_of(image_id)
            by_id = self._is_id_ref(image_id, ref)
            if not by_id:
                stored = reference.normalize(ref)
                if not force and self._single_reference(refs):
                    users = self._containers_using(image_id)
                    if users:
                        raise Conflict(f'conflict: unable to remove repository reference "{ref}" (must force) '
                                       f"- container {users[0][0][:12]} is using its referenced image "
                                       f"{short_id(image_id)}")
                self._untag(stored, records)
                refs = self._refs_of(image_id)
                if "@" not in stored:
                    name = stored.rsplit(":", 1)[0]
                    if not any("@" not in r and r.rsplit(":", 1)[0] == name for r in refs):
                        for r in [r for r in refs if "@" in r and r.split("@")[0] == name]:
                            self._untag(r, records)
                        refs = self._refs_of(image_id)
                if refs or children_of(self.db, image_id):
                    return records  # an untagged image with children stays (moby: not dangling, no error)
            elif self._single_reference(refs):
                conflict = self._conflict(image_id, hard_only=False, check_refs=False) if not force \
                    else self._conflict(image_id, hard_only=True)
                if conflict is not None:
                    raise conflict
                for r in refs:
                    self._untag(r, records)
            conflict = self._conflict(image_id, hard_only=force)
            if conflict is not None:
                raise conflict
            for r in self._refs_of(image_id):
                self._untag(r, records)
            parent = parent_of(self.db, image_id)
            records.extend(self._delete_image(image_id))
            if not noprune:
                self._prune_parents(parent, records)
        self.collect_garbage()
        return records

    def _prune_parents(self, parent: str, records: list[dict]) -> None:
        """After a delete, its untagged parents go too while nothing else holds them (moby's prune step)."""
        while parent and not self._refs_of(parent) and self._conflict(parent, hard_only=False) is None:
            grandparent = parent_of(self.db, parent)
            records.extend(self._delete_image(parent))
            parent = grandparent

    @staticmethod
    def _is_id_ref(image_id: str, ref: str) -> bool:
        """moby's isImageIDPrefix."""
        return image_id.startswith(ref) or image_id.removeprefix("sha256:").startswith(ref)

    def _untag(self, stored: str, records: list[dict]) -> None:
        self.tables.delete_ref(stored)
        records.append({"Untagged": stored})

    def _delete_image(self, image_id: str) -> list[dict]:
        """Drops the image row (inside the caller's transaction); its layers go in collect_garbage."""
        img = self._image(image_id)
        self.tables.delete_image(image_id)
        KV(self.db).delete("lasttag:" + image_id)
        self.blobs.delete(image_id)
        records = [{"Deleted": image_id}]
        used = self._used_layers()
        for chain, diff in zip(chain_ids(img.diff_ids), img.diff_ids, strict=True):
            if diff not in used:
                records.append({"Deleted": chain})
        return records

    def _used_layers(self) -> set[str]:
        return self.tables.diff_ids_in_use() | self.tables.leased(time.time())

    def collect_garbage(self) -> int:
        """Removes layers and config blobs no image refers to; returns bytes reclaimed (content size)."""
        reclaimed = 0
        doomed: list[Path] = []
        with self.db.transaction():
            used = self._used_layers()
            self.tables.release([], expired_before=time.time())
            for diff_id, size in self.tables.layers():
                if diff_id not in used:
                    self.tables.delete_layer(diff_id)
                    reclaimed += size
                    path = self.layer_path(diff_id)
                    if path.exists():
                        trash = path.with_name(".gc-" + path.name + f"-{os.getpid()}-{time.monotonic_ns()}")
                        os.rename(path, trash)  # gone from view atomically, before the transaction ends
                        doomed.append(trash)
        for p in doomed:
            remove_tree(p, ignore_errors=True)
        for p in self.paths.layers.glob(".gc-*"):  # left by a killed collector
            remove_tree(p, ignore_errors=True)
        return reclaimed

    def prune(self, dangling_only: bool = True, filters: dict[str, list[str]] | None = None) -> dict:
        """`docker image prune`: {"ImagesDeleted": [...], "SpaceReclaimed": n}."""
        from nanovisor.images.apiview import image_matches_filters

        filters = {k: v for k, v in (filters or {}).items() if k != "dangling"}  # already in dangling_only
        deleted: list[dict] = []
        reclaimed = 0
        for img in self.list():
            if dangling_only and img.repo_tags:
                continue
            if not image_matches_filters(img, filters, prune=True):
                continue
            if self._containers_using(img.id):
                continue
            with self.db.transaction():
                if not self.exists(img.id):
                    continue
                for r in self._refs_of(img.id):
                    self._untag(r, deleted)
                deleted.extend(self._delete_image(img.id))
            reclaimed += img.size
        self.collect_garbage()
        return {"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    # -- archives ---------------------------------------------------------------------------------------

    def load(self, stream: BinaryIO) -> list[str]:
        """`docker load` (docker-save or OCI layout archive, possibly compressed); returns the loaded
        references, or "sha256:<id>" for an image loaded without one."""
        from nanovisor.images.archive import load_archive

        return load_archive(self, stream)

    def save(self, refs: list[str]) -> Iterator[bytes]:
        """`docker save`: a docker-save archive (manifest.json + repositories + OCI layout) as a stream."""
        from nanovisor.images.archive import save_archive

        return save_archive(self, refs)

    # -- API views ----------------------------------------------------------------------------------

    def inspect_dict(self, image: Image) -> dict:
        from nanovisor.images.apiview import inspect_dict

        return inspect_dict(self, image)

    def summary_dict(self, image: Image, containers: bool = False) -> dict:
        from nanovisor.images.apiview import summary_dict

        return summary_dict(self, image, containers)

    def history(self, ref: str) -> list[dict]:
        from nanovisor.images.apiview import history

        return history(self, self.resolve(ref))

    def containers_count(self, image_id: str) -> int:
        return len(self._containers_using(image_id))

    def config_bytes(self, image: Image) -> bytes:
        try:
            return self.blobs.read(image.id)
        except NotFound:  # config only in the DB (should not happen): the DB text is the same bytes
            data = (self.tables.config_text(image.id) or "").encode()
            if digest_of(data) != image.id:
                raise
            return data

