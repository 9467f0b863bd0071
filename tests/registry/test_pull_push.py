"""Push and pull against a real plain-HTTP registry on loopback: round trips between roots, skips and mounts,
digests, manifest lists, and registries that lie or connections that break."""

from __future__ import annotations

import http.client
import json
import random
import subprocess
import sys

import pytest
from registryhelpers import CuttingProxy, make_image

from nanovisor.errors import NotFound
from nanovisor.images.registry import VerificationError, pull, push
from nanovisor.images.registry.manifest import OCI_INDEX
from nanovisor.images.registry.transport import TransportError


def statuses(msgs: list[dict]) -> list[str]:
    return [m.get("status", "") for m in msgs]


def residue(store) -> dict:
    """What a failed pull may have left visible: images, refs, partial files."""
    return {"images": [i.id for i in store.list()],
            "partials": sorted(p.name for p in store.paths.tmp.glob("*.partial") if p.stat().st_size)}


def test_push_then_pull_into_another_root_runs_the_same_image(plain_registry, source, fresh_store):
    ref = f"{plain_registry.host}/roundtrip/busybox:v1"
    source.tag("nano/busybox", ref)
    msgs: list[dict] = []
    digest = push(source, ref, progress=msgs.append)
    assert f"The push refers to repository [{plain_registry.host}/roundtrip/busybox]" in statuses(msgs)
    assert "Pushed" in statuses(msgs)
    assert {"Tag": "v1", "Digest": digest, "Size": msgs[-1]["aux"]["Size"]} == msgs[-1]["aux"]

    msgs = []
    img = pull(fresh_store, ref, progress=msgs.append)
    want = source.resolve("nano/busybox")
    assert img.id == want.id
    assert img.diff_ids == want.diff_ids
    assert img.repo_tags == [ref]
    assert img.repo_digests == [f"{plain_registry.host}/roundtrip/busybox@{digest}"]
    st = statuses(msgs)
    assert st[0] == "Pulling from roundtrip/busybox" and msgs[0]["id"] == "v1"
    assert {"Pulling fs layer", "Downloading", "Verifying Checksum", "Download complete", "Extracting",
            "Pull complete"} <= set(st)
    assert st[-2:] == [f"Digest: {digest}", f"Status: Downloaded newer image for {ref}"]

    out = subprocess.run([sys.executable, "-m", "nanovisor", "--root", str(fresh_store.root), "run", "--rm", ref,
                          "echo", "pulled and running"], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "pulled and running", out.stderr


def test_repeated_push_and_pull_skip_what_is_there(plain_registry, source, fresh_store):
    ref = f"{plain_registry.host}/again/busybox:latest"
    source.tag("nano/busybox", ref)
    first = push(source, ref)
    msgs: list[dict] = []
    assert push(source, ref, progress=msgs.append) == first
    assert "Layer already exists" in statuses(msgs) and "Pushed" not in statuses(msgs)

    pull(fresh_store, ref)
    msgs = []
    pull(fresh_store, ref, progress=msgs.append)
    assert statuses(msgs)[-1] == f"Status: Image is up to date for {ref}"
    assert "Downloading" not in statuses(msgs)


def test_pulled_image_pushes_with_the_same_digests_and_mounts(plain_registry, source, fresh_store):
    ref = f"{plain_registry.host}/origin/busybox:1"
    source.tag("nano/busybox", ref)
    digest = push(source, ref)
    pull(fresh_store, ref)

    other = f"{plain_registry.host}/copy/busybox:1"
    fresh_store.tag(ref, other)
    msgs: list[dict] = []
    assert push(fresh_store, other, progress=msgs.append) == digest  # same blobs, same manifest
    assert "Mounted from origin/busybox" in statuses(msgs)
    assert "Pushed" not in statuses(msgs)


def test_pull_by_digest_records_no_tag(plain_registry, source, fresh_store):
    ref = f"{plain_registry.host}/bydigest/busybox:x"
    source.tag("nano/busybox", ref)
    digest = push(source, ref)
    by_digest = f"{plain_registry.host}/bydigest/busybox@{digest}"
    msgs: list[dict] = []
    img = pull(fresh_store, by_digest, progress=msgs.append)
    assert img.id == source.resolve("nano/busybox").id
    assert img.repo_tags == [] and img.repo_digests == [by_digest]
    assert msgs[0]["id"] == digest
    assert fresh_store.resolve(by_digest).id == img.id


def test_unknown_tag_is_not_found_with_mobys_words(plain_registry, fresh_store):
    ref = f"{plain_registry.host}/nothing/here:nope"
    with pytest.raises(NotFound) as e:
        pull(fresh_store, ref)
    assert str(e.value).startswith(f"manifest for {ref} not found: ")
    assert fresh_store.list() == []


def _put_index(registry, repo: str, tag: str, entries: list[tuple[str, int, str]]) -> None:
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": d, "size": size,
         "platform": {"architecture": arch, "os": "linux"}} for d, size, arch in entries]}
    body = json.dumps(index).encode()
    conn = http.client.HTTPConnection(registry.host, timeout=30)
    conn.request("PUT", f"/v2/{repo}/manifests/{tag}", body, {"Content-Type": OCI_INDEX})
    resp = conn.getresponse()
    assert resp.status == 201, resp.read()
    conn.close()


def _manifest_size(registry, repo: str, digest: str) -> int:
    conn = http.client.HTTPConnection(registry.host, timeout=30)
    conn.request("HEAD", f"/v2/{repo}/manifests/{digest}",
                 headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    size = int(conn.getresponse().getheader("Content-Length"))
    conn.close()
    return size


def test_manifest_list_pulls_linux_amd64(plain_registry, source, fresh_store):
    repo = "multi/app"
    arm = make_image(source, f"{plain_registry.host}/{repo}:arm64", [{"arch": b"arm64\n"}], arch="arm64")
    amd = make_image(source, f"{plain_registry.host}/{repo}:amd64", [{"arch": b"amd64\n"}], arch="amd64")
    d_arm = push(source, f"{plain_registry.host}/{repo}:arm64")
    d_amd = push(source, f"{plain_registry.host}/{repo}:amd64")
    _put_index(plain_registry, repo, "multi", [(d_arm, _manifest_size(plain_registry, repo, d_arm), "arm64"),
                                              (d_amd, _manifest_size(plain_registry, repo, d_amd), "amd64")])
    img = pull(fresh_store, f"{plain_registry.host}/{repo}:multi")
    assert img.id == amd.id
    assert img.config["architecture"] == "amd64"
    img = pull(fresh_store, f"{plain_registry.host}/{repo}:multi", platform="linux/arm64")
    assert img.id == arm.id


def test_chunked_upload_round_trips(plain_registry, source, fresh_store):
    ref = f"{plain_registry.host}/chunked/data:1"
    want = make_image(source, ref, [{"blob.bin": bytes(range(256)) * 4096}, {"small": b"x"}])
    push(source, ref, chunk_size=100_000)
    assert pull(fresh_store, ref).id == want.id


# -- failures ------------------------------------------------------------------------------------------


def _pushed_layer(registry, source, name: str, payload: bytes):
    """Pushes a one-layer image; returns (ref, compressed digest of its layer)."""
    from nanovisor.images.registry import blobmeta

    ref = f"{registry.host}/{name}:1"
    img = make_image(source, ref, [{"payload": payload}])
    push(source, ref)
    blob = blobmeta.for_diff_id(source, img.diff_ids[0])[0]
    return ref, blob.digest


def test_corrupted_blob_fails_cleanly(plain_registry, source, fresh_store):
    ref, digest = _pushed_layer(plain_registry, source, "corrupt/blob", b"corrupt me " * 50_000)
    data = plain_registry.blob_data(digest)
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data.write_bytes(bytes(raw))
    with pytest.raises(VerificationError) as e:
        pull(fresh_store, ref)
    assert str(e.value) == f"filesystem layer verification failed for digest {digest}"
    assert residue(fresh_store) == {"images": [], "partials": []}
    assert not fresh_store.blobs.has(digest)
    with pytest.raises(NotFound):
        fresh_store.resolve(ref)


def test_registry_sending_more_than_the_manifest_says_is_cut_off(plain_registry, source, fresh_store):
    ref, digest = _pushed_layer(plain_registry, source, "corrupt/size", b"grow me " * 50_000)
    with open(plain_registry.blob_data(digest), "ab") as f:
        f.write(b"\0" * 4096)
    with pytest.raises(VerificationError) as e:
        pull(fresh_store, ref)
    assert f"filesystem layer verification failed for digest {digest}" in str(e.value)
    assert "the registry sent" in str(e.value)
    assert residue(fresh_store) == {"images": [], "partials": []}


def test_corrupted_config_fails_cleanly(plain_registry, source, fresh_store):
    ref = f"{plain_registry.host}/corrupt/config:1"
    img = make_image(source, ref, [{"cfg": b"config test"}])
    push(source, ref)
    data = plain_registry.blob_data(img.id)
    data.write_bytes(data.read_bytes().replace(b'"os":"linux"', b'"os":"LINUX"'))
    with pytest.raises(VerificationError) as e:
        pull(fresh_store, ref)
    assert str(e.value) == f"image config verification failed for digest {img.id}"
    assert residue(fresh_store)["images"] == []


@pytest.fixture
def proxy(plain_registry):
    p = CuttingProxy(plain_registry.host)
    yield p
    p.stop()


def test_interrupted_pull_resumes_in_the_next_pull(plain_registry, source, fresh_store, proxy):
    ref, digest = _pushed_layer(plain_registry, source, "resume/next", random.Random(1).randbytes(2 << 20))
    via_proxy = ref.replace(plain_registry.host, proxy.host)
    proxy.target, proxy.after, proxy.cuts = digest.removeprefix("sha256:"), 300_000, 1
    with pytest.raises(TransportError):
        pull(fresh_store, via_proxy, retries=0)
    assert residue(fresh_store)["images"] == []
    partial = fresh_store.paths.tmp / f"pull-{digest.removeprefix('sha256:')}.partial"
    assert partial.stat().st_size == 300_000

    img = pull(fresh_store, via_proxy)
    assert proxy.ranges[-1] == "bytes=300000-"
    assert img.id == source.resolve(ref).id
    assert not partial.exists()
    assert fresh_store.blobs.has(digest)


def test_broken_download_is_retried_within_the_pull(plain_registry, source, fresh_store, proxy):
    ref, digest = _pushed_layer(plain_registry, source, "resume/retry", random.Random(2).randbytes(1 << 20))
    via_proxy = ref.replace(plain_registry.host, proxy.host)
    proxy.target, proxy.after, proxy.cuts = digest.removeprefix("sha256:"), 100_000, 2
    msgs: list[dict] = []
    img = pull(fresh_store, via_proxy, progress=msgs.append, retry_delay=0)
    assert img.id == source.resolve(ref).id
    assert statuses(msgs).count("Retrying in 0 seconds") == 2
    assert proxy.ranges[-2:] == ["bytes=100000-", "bytes=200000-"]


def test_two_pulls_of_one_image_at_once_share_the_work(plain_registry, source, fresh_store):
    """The embedded CLI and the daemon pulling the same image into one root: both succeed, one image."""
    import threading

    from registryhelpers import open_store

    ref, _ = _pushed_layer(plain_registry, source, "concurrent/pull", random.Random(3).randbytes(1 << 20))
    other = open_store(fresh_store.root)  # a second ImageStore on the same root, as another process has
    results: list = []

    def run(store):
        try:
            results.append(pull(store, ref).id)
        except Exception as e:  # noqa: BLE001 - reported by the assert below
            results.append(e)

    threads = [threading.Thread(target=run, args=(s,)) for s in (fresh_store, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [source.resolve(ref).id] * 2
    assert [i.id for i in fresh_store.list()] == [source.resolve(ref).id]


def test_removing_the_image_collects_its_compressed_blobs(plain_registry, source, fresh_store):
    from nanovisor.images.registry import blobmeta

    ref, digest = _pushed_layer(plain_registry, source, "gc/blob", b"collect me" * 1000)
    pull(fresh_store, ref)
    assert fresh_store.blobs.has(digest)
    fresh_store.remove(ref)
    assert blobmeta.collect_garbage(fresh_store) > 0
    assert not fresh_store.blobs.has(digest)
