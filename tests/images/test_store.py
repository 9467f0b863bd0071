"""ImageStore against real roots: references, resolution, tagging, removal rules, import, save/load."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import tarfile
import time
from pathlib import Path

import pytest
from imagehelpers import build_tar, make_store, simple_image

from nanovisor.errors import Conflict, InvalidParameter, NotFound
from nanovisor.images import reference
from nanovisor.images.store import chain_ids


@pytest.mark.parametrize("ref,stored", [
    ("busybox", "busybox:latest"),
    ("docker.io/library/busybox:1.36", "busybox:1.36"),
    ("nano/busybox:latest", "nano/busybox:latest"),
    ("localhost:5000/x/y:1", "localhost:5000/x/y:1"),
    ("index.docker.io/foo/bar", "foo/bar:latest"),
    ("name@sha256:" + "a" * 64, "name@sha256:" + "a" * 64),
])
def test_reference_normalization(ref, stored):
    assert reference.normalize(ref) == stored


@pytest.mark.parametrize("bad", ["", "a b", "UPPER", "x:", ":tag", "a/../b", "x@sha256:short", "-x"])
def test_reference_invalid(bad):
    with pytest.raises(InvalidParameter, match="invalid reference format"):
        reference.parse(bad)


def test_resolve_by_every_form(store):
    img, _ = simple_image(store, {"f": b"1"}, "example/app:v1")
    hexid = img.id[7:]
    for ref in ("example/app:v1", "docker.io/example/app:v1", img.id, hexid, hexid[:12], hexid[:1],
                "sha256:" + hexid[:5]):
        assert store.resolve(ref).id == img.id, ref
    for missing in ("example/app", "example/app:v2", "sha256:zz", "0" * 64 if not hexid.startswith("0") else "f" * 64):
        with pytest.raises(NotFound, match="No such image"):
            store.resolve(missing)


def test_short_id_ambiguity_is_not_found(store):
    ids = [simple_image(store, {"f": str(i).encode()}, created=1_700_000_000 + i)[0].id for i in range(40)]
    firsts = [i[7] for i in ids]
    dup = next(c for c in firsts if firsts.count(c) > 1)  # 40 ids over 16 hex digits: some first char repeats
    with pytest.raises(NotFound):
        store.resolve(dup)


def test_tag_list_and_layer_dirs(store):
    base, _ = simple_image(store, {"a": b"1"}, "app:1")
    store.tag("app:1", "app:2")
    store.tag(base.id[7:19], "other/app")
    img = store.resolve("app:2")
    assert img.repo_tags == ["app:1", "app:2", "other/app:latest"]
    assert [i.id for i in store.list()] == [img.id]
    dirs = store.layer_dirs(img)
    assert dirs == [store.paths.layers / img.diff_ids[0][7:] / "diff"]
    assert (dirs[0] / "a").read_bytes() == b"1"


def _add_container(store, cid: str, image_id: str, running: bool) -> None:
    """A containers row the way the engine writes it (this test only needs image_id and State.Running)."""
    store.db.execute("INSERT INTO containers (id, name, image_id, created, config, state) VALUES (?,?,?,?,?,?)",
                     (cid, "/c" + cid[:6], image_id, time.time(), "{}", json.dumps({"Running": running})))


def test_rmi_untags_when_other_tags_remain(store):
    img, _ = simple_image(store, {"f": b"x"}, "app:1")
    store.tag("app:1", "app:2")
    assert store.remove("app:1") == [{"Untagged": "app:1"}]
    assert store.resolve(img.id).repo_tags == ["app:2"]


def test_rmi_conflicts(store):
    img, _ = simple_image(store, {"f": b"x"}, "app:1")
    sid = img.id[7:19]
    cid = "c0ffee" + "0" * 58
    _add_container(store, cid, img.id, running=False)
    with pytest.raises(Conflict) as e:
        store.remove("app:1")
    assert str(e.value) == (f'conflict: unable to remove repository reference "app:1" (must force) - container '
                            f"{cid[:12]} is using its referenced image {sid}")
    with pytest.raises(Conflict) as e:
        store.remove(img.id)
    assert str(e.value) == (f"conflict: unable to delete {sid} (must be forced) - image is being used by "
                            f"stopped container {cid[:12]}")
    store.db.execute("UPDATE containers SET state=? WHERE id=?", (json.dumps({"Running": True}), cid))
    with pytest.raises(Conflict) as e:
        store.remove(img.id, force=True)
    assert str(e.value) == (f"conflict: unable to delete {sid} (cannot be forced) - image is being used by "
                            f"running container {cid[:12]}")
    store.db.execute("UPDATE containers SET state=? WHERE id=?", (json.dumps({"Running": False}), cid))
    store.tag("app:1", "app:2")
    with pytest.raises(Conflict, match="image is referenced in multiple repositories"):
        store.remove(sid)
    records = store.remove(sid, force=True)
    assert records[:3] == [{"Untagged": "app:1"}, {"Untagged": "app:2"}, {"Deleted": img.id}]
    assert {"Deleted": chain_ids(img.diff_ids)[0]} in records


def test_rmi_collects_layers_shared_ones_survive(store):
    a, _ = simple_image(store, {"shared": b"s"}, "a:1")
    layer_dir = store.layer_dirs(a)[0]
    b = store.create_image({**a.config, "created": "2024-01-01T00:00:00Z"}, "b:1")  # same layer, new id
    assert b.id != a.id
    store.remove("a:1")
    assert layer_dir.is_dir()
    records = store.remove("b:1")
    assert records[-1] == {"Deleted": b.diff_ids[0]}
    assert not layer_dir.exists()
    assert list(store.paths.layers.iterdir()) == []
    assert not store.blobs.has(b.id)


def test_prune_dangling(store):
    keep, _ = simple_image(store, {"k": b"1"}, "keep:1")
    gone, _ = simple_image(store, {"d": b"2"})
    used, _ = simple_image(store, {"u": b"3"})
    _add_container(store, "ab" * 32, used.id, running=False)
    result = store.prune()
    assert result["ImagesDeleted"] == [{"Deleted": gone.id}, {"Deleted": gone.diff_ids[0]}]
    assert {i.id for i in store.list()} == {keep.id, used.id}


def test_import_with_changes(store):
    tar = build_tar([{"name": "bin", "type": tarfile.DIRTYPE}, {"name": "bin/app", "data": b"app"}])
    img = store.import_tar(io.BytesIO(gzip.compress(tar)), "imported:1", changes=[
        'CMD ["/bin/app", "--serve"]', "ENV A=1 B=two", "WORKDIR /srv", "USER nobody", "LABEL x=y",
        "EXPOSE 80 53/udp", "VOLUME /data", "STOPSIGNAL SIGTERM", "ENTRYPOINT /bin/app"], message="hello")
    cfg = img.config["config"]
    assert cfg["Cmd"] == ["/bin/app", "--serve"]
    assert cfg["Entrypoint"] == ["/bin/sh", "-c", "/bin/app"]
    assert cfg["Env"] == ["A=1", "B=two"] and cfg["WorkingDir"] == "/srv" and cfg["User"] == "nobody"
    assert cfg["Labels"] == {"x": "y"} and cfg["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert cfg["Volumes"] == {"/data": {}} and cfg["StopSignal"] == "SIGTERM"
    assert img.diff_ids == ["sha256:" + hashlib.sha256(tar).hexdigest()]
    view = store.inspect_dict(img)
    assert view["Comment"] == "hello" and view["RepoTags"] == ["imported:1"]
    assert view["RootFS"] == {"Type": "layers", "Layers": img.diff_ids}
    with pytest.raises(InvalidParameter, match="run is not a valid change command"):
        store.import_tar(io.BytesIO(tar), changes=["RUN echo"])


def test_save_load_round_trip_across_roots(tmp_path: Path):
    src = make_store(tmp_path / "a")
    dst = make_store(tmp_path / "b")
    base, _ = simple_image(src, {"etc/os": b"nano"}, "app:1")
    top_tar = build_tar([{"name": "etc/.wh.os", "data": b""}, {"name": "srv/data", "data": b"d" * 3000}])
    top_layer = src.add_layer(io.BytesIO(top_tar))
    src.create_image({**base.config, "rootfs": {"type": "layers", "diff_ids": [*base.diff_ids, top_layer]}},
                           "app:2")
    src.tag("app:2", "other:latest")
    archive = b"".join(src.save(["app:1", "app:2", "other"]))
    with tarfile.open(fileobj=io.BytesIO(archive)) as t:
        names = t.getnames()
        manifest = json.load(t.extractfile("manifest.json"))
        assert {"manifest.json", "index.json", "oci-layout", "repositories"} <= set(names)
        assert t.extractfile(f"blobs/sha256/{top_layer[7:]}").read() == top_tar
    assert sorted(tuple(m["RepoTags"]) for m in manifest) == [("app:1",), ("app:2", "other:latest")]
    loaded = dst.load(io.BytesIO(archive))
    assert sorted(loaded) == ["app:1", "app:2", "other:latest"]
    for ref in ("app:1", "app:2"):
        a, b = src.resolve(ref), dst.resolve(ref)
        assert a.id == b.id and a.diff_ids == b.diff_ids
        assert dst.inspect_dict(b)["RootFS"] == src.inspect_dict(a)["RootFS"]
    assert (dst.layer_dirs(dst.resolve("app:2"))[0] / "srv/data").read_bytes() == b"d" * 3000
    # and the archive we write from the loaded copy is byte-identical
    assert b"".join(dst.save(["app:1", "app:2", "other"])) == archive


def test_load_and_save_of_layers_bigger_than_the_read_chunks(tmp_path: Path):
    """Layers of several MiB inside the archive (read across chunk boundaries, handed on without copies) load
    intact and are saved back byte for byte."""
    rng = random.Random(7)
    layers = [build_tar([{"name": f"d{j}/f{i}", "data": rng.randbytes(rng.randrange(1, 70_000))}
                         for j in range(3) for i in range(40)] + [{"name": "big", "data": rng.randbytes(3 << 20)}])
              for _ in range(2)]
    diff_ids = ["sha256:" + hashlib.sha256(t).hexdigest() for t in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    files = [*({"name": f"l{i}/layer.tar", "data": t} for i, t in enumerate(layers)),
             {"name": "c.json", "data": config},
             {"name": "manifest.json", "data": json.dumps([{"Config": "c.json", "RepoTags": ["big:1"],
                                                            "Layers": ["l0/layer.tar", "l1/layer.tar"]}]).encode()}]
    st = make_store(tmp_path / "r")
    assert st.load(io.BytesIO(build_tar(files))) == ["big:1"]
    img = st.resolve("big:1")
    assert img.diff_ids == diff_ids
    with tarfile.open(fileobj=io.BytesIO(b"".join(st.save(["big:1"])))) as t:
        for d, layer in zip(diff_ids, layers, strict=True):
            assert t.extractfile(f"blobs/sha256/{d[7:]}").read() == layer


def test_load_gzipped_archive_and_legacy_layout(tmp_path: Path):
    st = make_store(tmp_path / "r")
    layer = build_tar([{"name": "hello", "data": b"world"}])
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id, diff_id]}}).encode()
    cid = hashlib.sha256(config).hexdigest()
    files = [
        {"name": "abc/layer.tar", "data": layer},
        {"name": "def", "type": tarfile.DIRTYPE},
        {"name": "def/layer.tar", "type": tarfile.SYMTYPE, "linkname": "../abc/layer.tar"},
        {"name": "abc/VERSION", "data": b"1.0"},
        {"name": f"{cid}.json", "data": config},
        {"name": "manifest.json", "data": json.dumps([{"Config": f"{cid}.json", "RepoTags": ["legacy:1"],
                                                       "Layers": ["abc/layer.tar", "def/layer.tar"]}]).encode()},
    ]
    assert st.load(io.BytesIO(gzip.compress(build_tar(files)))) == ["legacy:1"]
    img = st.resolve("legacy:1")
    assert img.id == "sha256:" + cid and (st.layer_dirs(img)[0] / "hello").read_bytes() == b"world"


def test_load_oci_layout_with_compressed_layers(tmp_path: Path):
    st = make_store(tmp_path / "r")
    layer = build_tar([{"name": "oci", "data": b"layout"}])
    gz = gzip.compress(layer)
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    gz_digest = "sha256:" + hashlib.sha256(gz).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": config_digest, "size": len(config)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                       "digest": gz_digest, "size": len(gz)}]}).encode()
    mdigest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    index = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdigest, "size": len(manifest),
         "annotations": {"io.containerd.image.name": "docker.io/library/ocitest:3",
                         "org.opencontainers.image.ref.name": "3"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdigest, "size": len(manifest)},
    ]}).encode()
    files = [{"name": "oci-layout", "data": b'{"imageLayoutVersion":"1.0.0"}'},
             {"name": f"blobs/sha256/{gz_digest[7:]}", "data": gz},
             {"name": f"blobs/sha256/{config_digest[7:]}", "data": config},
             {"name": f"blobs/sha256/{mdigest[7:]}", "data": manifest},
             {"name": "index.json", "data": index}]
    assert st.load(io.BytesIO(build_tar(files))) == ["ocitest:3", config_digest]
    img = st.resolve("ocitest:3")
    assert img.id == config_digest and img.diff_ids == [diff_id]


def test_load_refuses_diff_id_mismatch_and_keeps_store_clean(tmp_path: Path):
    st = make_store(tmp_path / "r")
    layer = build_tar([{"name": "x", "data": b"1"}])
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]}}).encode()
    files = [{"name": "l.tar", "data": layer}, {"name": "c.json", "data": config},
             {"name": "manifest.json", "data": json.dumps([{"Config": "c.json", "RepoTags": ["bad:1"],
                                                            "Layers": ["l.tar"]}]).encode()}]
    with pytest.raises(InvalidParameter, match="invalid diffID for layer 0"):
        st.load(io.BytesIO(build_tar(files)))
    assert st.list() == []
    assert list(st.paths.layers.iterdir()) == []


def test_history_and_summary(store):
    img, _ = simple_image(store, {"f": b"x"}, "h:1", Labels={"a": "b"})
    hist = store.history("h:1")
    assert hist[0]["Id"] == img.id and hist[0]["Tags"] == ["h:1"] and hist[0]["Size"] == 1
    summary = store.summary_dict(img, containers=True)
    assert summary["Labels"] == {"a": "b"} and summary["Containers"] == 0 and summary["RepoTags"] == ["h:1"]
    view = store.inspect_dict(img)
    assert view["Created"] == "2023-11-14T22:13:20Z" and view["Size"] == 1


def _add_same_layer(root: str, data: bytes, out) -> None:
    from imagehelpers import make_store as mk

    st = mk(Path(root))
    out.put(st.add_layer(io.BytesIO(data)))


def test_two_processes_adding_the_same_layer(tmp_path: Path):
    """The embedded CLI and the daemon may unpack the same layer at once: one directory, both succeed."""
    import multiprocessing

    make_store(tmp_path / "r")
    data = build_tar([{"name": f"d/f{i}", "data": bytes([i]) * 20_000} for i in range(200)])
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_add_same_layer, args=(str(tmp_path / "r"), data, q)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    ids = {q.get(timeout=5), q.get(timeout=5)}
    assert ids == {"sha256:" + hashlib.sha256(data).hexdigest()}
    assert [p.name for p in (tmp_path / "r/layers").iterdir()] == [next(iter(ids))[7:]]
    assert len(list((tmp_path / "r/layers" / next(iter(ids))[7:] / "diff/d").iterdir())) == 200
