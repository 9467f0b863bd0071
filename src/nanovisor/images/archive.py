"""`docker save` / `docker load` archives.

We write what Docker 25+ writes — an OCI image layout (oci-layout, index.json, blobs/sha256/...) that also
carries the classic docker-save files (manifest.json, repositories) pointing into blobs/ — so both older
dockerd (which reads manifest.json) and containerd-backed ones (index.json) load it. Layers are uncompressed
tars, replayed byte-exact from the unpacked layer (see tarsplit.py), so their sha256 is the diff_id.

We read that, the legacy docker-save layout (<id>/layer.tar) and plain OCI layouts, with layers plain or
gzip/zstd/bzip2/xz compressed, several images and tags per archive. The archive is read in one pass: the
manifest usually comes after the layers, so every blob that is not JSON is unpacked as a layer on sight
and matched to the manifests at the end."""

from __future__ import annotations

import json
import posixpath
import tarfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, BinaryIO

from nanovisor import jsontypes
from nanovisor.errors import InvalidParameter
from nanovisor.images import reference
from nanovisor.images.content import digest_of
from nanovisor.images.tarsplit import replay
from nanovisor.images.tarstream import (
    HARD,
    REG,
    SYM,
    Source,
    TarError,
    _Peek,
    buffered_reader,
    decompressed,
    members,
    release,
)

if TYPE_CHECKING:
    from nanovisor.images.store import Image, ImageStore

MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
# Bounds that keep a hostile archive from making us hold it in memory: every JSON member is kept until the
# manifests are read (they usually come last), so their sizes, their total and their nesting are capped
# (json.loads of "[{},{},...]" costs ~20x its size), as is the number of members we remember at all.
MAX_JSON = 8 << 20           # one config/manifest/index (registries cap manifests at 4 MB)
MAX_JSON_TOTAL = 32 << 20    # all JSON members of one archive together
MAX_JSON_CONTAINERS = 200_000  # objects + arrays in one JSON document
MAX_ENTRIES = 100_000        # archive members remembered (layers, JSON, links, refused blobs)
_JSON_NAMES = {"manifest.json", "index.json", "oci-layout", "repositories"}


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


# -- save -----------------------------------------------------------------------------------------


def _header(name: str, size: int, mtime: float, directory: bool = False) -> bytes:
    ti = tarfile.TarInfo(name)
    ti.size = 0 if directory else size
    ti.mtime = int(mtime)
    ti.mode = 0o755 if directory else 0o444
    ti.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    return ti.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape")


def _file(name: str, data: bytes, mtime: float) -> Iterator[bytes]:
    yield _header(name, len(data), mtime)
    yield data
    if len(data) % 512:
        yield b"\0" * (512 - len(data) % 512)


def _select(store: ImageStore, refs: list[str]) -> list[tuple[Image, list[str]]]:
    """Images to save with the tags each carries in the archive (docker save semantics: a bare repository
    name saves all its tags, an id saves no tag)."""
    chosen: dict[str, tuple[Image, list[str]]] = {}
    for ref in refs:
        img = store.resolve(ref)
        entry = chosen.setdefault(img.id, (img, []))
        tags: list[str] = []
        if not store._is_id_ref(img.id, ref):
            parsed = reference.parse(ref, default_tag=False)
            if parsed.tag is None and parsed.digest is None:
                tags = [t for i in store.list() for t in i.repo_tags
                        if t.rsplit(":", 1)[0] == parsed.name and i.id == img.id]
                for other in store.list():
                    if other.id != img.id and any(t.rsplit(":", 1)[0] == parsed.name for t in other.repo_tags):
                        o = chosen.setdefault(other.id, (other, []))
                        o[1].extend(t for t in other.repo_tags if t.rsplit(":", 1)[0] == parsed.name
                                    and t not in o[1])
            elif parsed.tag:
                tags = [f"{parsed.name}:{parsed.tag}"]
        entry[1].extend(t for t in tags if t not in entry[1])
    return list(chosen.values())


def save_archive(store: ImageStore, refs: list[str]) -> Iterator[bytes]:
    selected = _select(store, refs)  # resolve everything before the first byte: errors are clean
    return _save_stream(store, selected)


def _save_stream(store: ImageStore, selected: list[tuple[Image, list[str]]]) -> Iterator[bytes]:
    mtime = 0.0
    yield _header("blobs/", 0, mtime, directory=True)
    yield _header("blobs/sha256/", 0, mtime, directory=True)
    written: set[str] = set()
    manifest_json: list[dict] = []
    index_manifests: list[dict] = []
    repositories: dict[str, dict[str, str]] = {}
    for img, tags in selected:
        layer_descs = []
        for diff_id in img.diff_ids:
            hexd = diff_id.removeprefix("sha256:")
            size = store.layer_tar_size(diff_id)
            layer_descs.append({"mediaType": MT_OCI_LAYER, "digest": diff_id, "size": size})
            if diff_id in written:
                continue
            written.add(diff_id)
            yield _header(f"blobs/sha256/{hexd}", size, mtime)
            yield from replay(store.layer_path(diff_id), diff_id)
            if size % 512:
                yield b"\0" * (512 - size % 512)
        config = store.config_bytes(img)
        if img.id not in written:
            written.add(img.id)
            yield from _file(f"blobs/sha256/{img.id.removeprefix('sha256:')}", config, mtime)
        manifest = _dumps({
            "schemaVersion": 2,
            "mediaType": MT_OCI_MANIFEST,
            "config": {"mediaType": MT_OCI_CONFIG, "digest": img.id, "size": len(config)},
            "layers": layer_descs,
        })
        mdigest = digest_of(manifest)
        if mdigest not in written:
            written.add(mdigest)
            yield from _file(f"blobs/sha256/{mdigest.removeprefix('sha256:')}", manifest, mtime)
        desc = {"mediaType": MT_OCI_MANIFEST, "digest": mdigest, "size": len(manifest)}
        if tags:
            for t in tags:
                parsed = reference.parse(t)
                index_manifests.append({**desc, "annotations": {
                    "io.containerd.image.name": f"{parsed.full_name}:{parsed.tag}",
                    "org.opencontainers.image.ref.name": parsed.tag,
                }})
                if img.diff_ids:
                    repositories.setdefault(parsed.name, {})[parsed.tag or "latest"] = \
                        img.diff_ids[-1].removeprefix("sha256:")
        else:
            index_manifests.append(desc)
        manifest_json.append({
            "Config": f"blobs/sha256/{img.id.removeprefix('sha256:')}",
            "RepoTags": tags or None,
            "Layers": [f"blobs/sha256/{d.removeprefix('sha256:')}" for d in img.diff_ids],
        })
    yield from _file("index.json", _dumps({"schemaVersion": 2, "mediaType": MT_OCI_INDEX,
                                           "manifests": index_manifests}), mtime)
    yield from _file("manifest.json", _dumps(manifest_json), mtime)
    yield from _file("oci-layout", _dumps({"imageLayoutVersion": "1.0.0"}), mtime)
    if repositories:
        yield from _file("repositories", _dumps(repositories), mtime)
    yield b"\0" * 1024


# -- load -----------------------------------------------------------------------------------------


class _Loaded:
    """What one pass over the archive found."""

    def __init__(self) -> None:
        self.jsons: dict[str, bytes] = {}
        self.layers: dict[str, str] = {}             # member path -> diff_id
        self.links: dict[str, str] = {}              # member path -> path it links to
        self.bad: dict[str, Exception] = {}          # member path -> why it is not a layer

    def _follow(self, path: str) -> str:
        seen = 0
        while path in self.links and seen < 40:
            path, seen = self.links[path], seen + 1
        return path

    def json(self, path: str) -> bytes:
        p = self._follow(posixpath.normpath(path))
        if p not in self.jsons:
            raise InvalidParameter(f"invalid archive: {path} not found")
        return self.jsons[p]

    def layer(self, path: str) -> str:
        p = self._follow(posixpath.normpath(path))
        if p in self.layers:
            return self.layers[p]
        if p in self.bad:
            raise InvalidParameter(f"invalid archive: layer {path}: {self.bad[p]}")
        raise InvalidParameter(f"invalid archive: layer {path} not found")


def _is_json_name(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return name in _JSON_NAMES or base.endswith(".json") or base in ("json", "VERSION")


def _read_json(name: str, head: bytes, data, budget: int) -> bytes:
    """The whole (small) JSON member, refused before it is read when it is too large for the budget."""
    if data.left + len(head) > min(MAX_JSON, budget):
        what = "too large" if data.left + len(head) > MAX_JSON else "one JSON member too many"
        raise InvalidParameter(f"invalid archive: {name} is {what}")
    buf = bytearray(head)
    for chunk in data.chunks():
        buf += chunk
    out = bytes(buf)
    if out.count(b"{") + out.count(b"[") > MAX_JSON_CONTAINERS:
        raise InvalidParameter(f"invalid archive: {name} is too deeply structured")
    return out


def _scan(store: ImageStore, stream: BinaryIO, added: list[str]) -> _Loaded:
    found = _Loaded()
    raw, _ = decompressed(stream)
    src = Source(raw, digest=False)  # layers are hashed as they are unpacked; the archive need not be
    budget = MAX_JSON_TOTAL
    entries = 0
    try:
        for m, data in members(src):
            if m.type not in (SYM, HARD, REG):
                continue
            entries += 1
            if entries > MAX_ENTRIES:
                raise InvalidParameter("invalid archive: too many members")
            if m.type in (SYM, HARD):
                target = m.linkname
                if m.type == SYM:
                    target = posixpath.join(posixpath.dirname(m.name), target)
                found.links[m.name] = posixpath.normpath(target.lstrip("/"))
                continue
            head = data.read(512) if m.size else b""
            if _is_json_name(m.name) or head.lstrip()[:1] in (b"{", b"["):
                found.jsons[m.name] = _read_json(m.name, head, data, budget)
                budget -= len(found.jsons[m.name])
                continue
            try:
                diff_id = store.add_layer(_Peek(data, head))  # type: ignore[arg-type]
            except TarError as e:
                found.bad[m.name] = e
                continue
            added.append(diff_id)
            found.layers[m.name] = diff_id
    finally:
        src.close()
        close = getattr(raw, "close", None)
        if close is not None and raw is not stream:
            close()
    return found


def _check_layers(config_bytes: bytes, diff_ids: list[str]) -> None:
    try:
        config = json.loads(config_bytes)
        jsontypes.check(config, "ImageDocument")  # as moby decodes it: a wrong-typed field is refused here
        want = config.get("rootfs", {}).get("diff_ids") or []
    except (ValueError, AttributeError, RecursionError, InvalidParameter) as e:
        raise InvalidParameter(f"invalid image config: {e}") from None
    if len(want) != len(diff_ids):
        raise InvalidParameter("invalid manifest, layers length mismatch: expected "
                               f"{len(want)}, got {len(diff_ids)}")
    for i, (w, got) in enumerate(zip(want, diff_ids, strict=True)):
        if w != got:
            raise InvalidParameter(f'invalid diffID for layer {i}: expected "{w}", got "{got}"')


def _load_docker(store: ImageStore, found: _Loaded) -> list[str]:
    loaded: list[str] = []
    try:
        entries = json.loads(found.json("manifest.json"))
    except ValueError:
        raise InvalidParameter("invalid archive: manifest.json is not JSON") from None
    for entry in entries or []:
        config = found.json(entry["Config"])
        diff_ids = [found.layer(p) for p in entry.get("Layers") or []]
        _check_layers(config, diff_ids)
        tags = entry.get("RepoTags") or []
        img = store.create_image_bytes(config, tags)
        loaded.extend(reference.normalize(t) for t in tags)
        if not tags:
            loaded.append(img.id)
    return loaded


def _blob_path(digest: str) -> str:
    algo, _, hexd = digest.partition(":")
    return f"blobs/{algo}/{hexd}"


def _verified_json(found: _Loaded, digest: str) -> bytes:
    data = found.json(_blob_path(digest))
    if digest_of(data) != digest:
        raise InvalidParameter(f"invalid archive: blob {digest} does not match its digest")
    return data


def _pick_manifest(found: _Loaded, desc: dict, depth: int = 0) -> dict | None:
    """Follows indexes down to the linux/amd64 (or only) image manifest."""
    if depth > 4:
        raise InvalidParameter("invalid archive: index nesting too deep")
    mt = desc.get("mediaType", "")
    doc = json.loads(_verified_json(found, desc["digest"]))
    if mt in (MT_OCI_INDEX, MT_DOCKER_LIST) or "manifests" in doc:
        candidates = doc.get("manifests") or []
        for d in candidates:
            plat = d.get("platform") or {}
            if plat.get("os", "linux") == "linux" and plat.get("architecture", "amd64") == "amd64":
                return _pick_manifest(found, d, depth + 1)
        return None
    return doc


def _load_oci(store: ImageStore, found: _Loaded) -> list[str]:
    loaded: list[str] = []
    index = json.loads(found.json("index.json"))
    for desc in index.get("manifests") or []:
        manifest = _pick_manifest(found, desc)
        if manifest is None:
            continue
        config = _verified_json(found, manifest["config"]["digest"])
        diff_ids = [found.layer(_blob_path(layer["digest"])) for layer in manifest.get("layers") or []]
        _check_layers(config, diff_ids)
        ann = desc.get("annotations") or {}
        name = ann.get("io.containerd.image.name") or ""
        if not name:
            ref_name = ann.get("org.opencontainers.image.ref.name", "")
            if ("/" in ref_name or ":" in ref_name) and reference.looks_like_reference(ref_name):
                name = ref_name
        tags = [name] if name else []
        img = store.create_image_bytes(config, tags)
        loaded.extend(reference.normalize(t) for t in tags)
        if not tags:
            loaded.append(img.id)
    return loaded


def load_archive(store: ImageStore, stream: BinaryIO) -> list[str]:
    added: list[str] = []
    buffered = buffered_reader(stream)
    try:
        found = _scan(store, buffered, added)
        try:
            if "manifest.json" in found.jsons:
                loaded = _load_docker(store, found)
            elif "index.json" in found.jsons:
                loaded = _load_oci(store, found)
            else:
                raise InvalidParameter("invalid archive: no manifest.json or index.json found")
        except (KeyError, TypeError, AttributeError, ValueError, RecursionError) as e:
            # manifest.json / index.json / a manifest shaped otherwise than docker save or OCI writes them
            raise InvalidParameter(f"invalid archive: malformed manifest ({type(e).__name__}: {e})") from None
    finally:
        if added:  # release our leases: layers no loaded image uses are collected now
            store.tables.release(added)
            store.collect_garbage()
        release(buffered, stream)
    return list(dict.fromkeys(loaded))

