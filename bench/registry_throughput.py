"""Registry benchmark (issue 4): push and pull throughput against Debian's docker-registry on loopback,
with baselines measured in the same run:

- push (cold: gzip + upload), push again (every layer "already exists"), pull into an empty root
  (download + verify + unpack), pull again (up to date);
- baseline for pull: plain HTTP GETs of the very same blobs (http.client, written to files), then
  `tar -xzf` of each into a directory: the least any pull has to do. Ratio = baseline time / pull time.

MB/s are of uncompressed layer bytes (the image size), compressed bytes shown beside.

Usage: python3 bench/registry_throughput.py [--mb 160] [--layers 4]
"""

from __future__ import annotations

import argparse
import http.client
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "registry"))

from registryhelpers import Registry, make_image, open_store  # noqa: E402

from nanovisor.images.registry import blobmeta, pull, push  # noqa: E402


def layer_files(rng: random.Random, size: int) -> dict[str, bytes]:
    """About half incompressible bytes, half text-like (real rootfs compress roughly 2-3x)."""
    files = {}
    words = [rng.randbytes(6).hex() for _ in range(500)]
    n = 0
    i = 0
    while n < size:
        chunk = min(1 << 20, size - n)
        if i % 2:
            data = rng.randbytes(chunk)
        else:
            data = " ".join(rng.choice(words) for _ in range(chunk // 13 + 1)).encode()[:chunk]
        files[f"usr/lib/data/f{i:05d}.bin"] = data
        n += chunk
        i += 1
    return files


def timed(fn) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def baseline(registry: Registry, repo: str, digests: list[str], work: Path) -> float:
    """GET every blob into a file, then tar -xzf it: what a pull must do at least."""
    t = time.perf_counter()
    conn = http.client.HTTPConnection(registry.host, timeout=120)
    for d in digests:
        conn.request("GET", f"/v2/{repo}/blobs/{d}")
        resp = conn.getresponse()
        with open(work / d[7:], "wb") as f:
            while chunk := resp.read(1 << 20):
                f.write(chunk)
    conn.close()
    for d in digests:
        out = work / ("x-" + d[7:])
        out.mkdir()
        subprocess.run(["tar", "-xzf", str(work / d[7:]), "-C", str(out)], check=True)
    subprocess.run(["sync"], check=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=160)
    ap.add_argument("--layers", type=int, default=4)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nv-bench-registry-"))
    reg = Registry(work / "registry")
    try:
        src = open_store(work / "src")
        rng = random.Random(4)
        per = a.mb * (1 << 20) // a.layers
        ref = f"{reg.host}/bench/image:1"
        img = make_image(src, ref, [layer_files(rng, per) for _ in range(a.layers)])
        total = sum(src.layer_tar_size(d) for d in img.diff_ids)
        mb = total / 1e6

        t_push, _ = timed(lambda: push(src, ref))
        compressed = sum(blobmeta.for_diff_id(src, d)[0].size for d in img.diff_ids)
        t_push2, _ = timed(lambda: push(src, ref))
        dst = open_store(work / "dst")
        t_pull, _ = timed(lambda: (pull(dst, ref), subprocess.run(["sync"], check=True)))
        t_pull2, _ = timed(lambda: pull(dst, ref))
        digests = [blobmeta.for_diff_id(src, d)[0].digest for d in img.diff_ids]
        base_dir = work / "baseline"
        base_dir.mkdir()
        t_base = baseline(reg, "bench/image", digests, base_dir)

        print(f"image: {a.layers} layers, {mb:.0f} MB uncompressed, {compressed / 1e6:.0f} MB gzip")
        print(f"push (cold, gzip+upload)    {t_push:7.2f} s  {mb / t_push:7.1f} MB/s")
        print(f"push (all layers exist)     {t_push2:7.2f} s")
        print(f"pull (download+unpack)      {t_pull:7.2f} s  {mb / t_pull:7.1f} MB/s")
        print(f"pull (up to date)           {t_pull2:7.2f} s")
        print(f"baseline GET + tar -xzf     {t_base:7.2f} s  {mb / t_base:7.1f} MB/s")
        print(f"pull speed / baseline speed {t_base / t_pull:7.2f}x")
    finally:
        reg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
