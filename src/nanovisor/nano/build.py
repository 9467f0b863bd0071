"""`nanovisor nano build --package PKG ...`: a one-layer image assembled from Debian packages.

apt resolves the closure (resolve.py), dpkg-deb unpacks the data (no maintainer script runs), tree.py keeps
what runs and writes the minimal /etc, profiles.py sets entrypoint/user/env, sbom.py records what went in.
The tree is exported by the engine's own tar writer (sorted, hard links, capabilities) with one mtime, so
the same package versions give the same layer and config, hence the same image id."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from nanovisor.errors import InvalidParameter
from nanovisor.images.store import Image, ImageStore, rfc3339
from nanovisor.nano import sbom, tree
from nanovisor.nano.debcache import DEFAULT_CACHE, Deb
from nanovisor.nano.profiles import PATH_ENV, profile_for
from nanovisor.nano.resolve import needed, resolve

LABEL_PREFIX = "org.nanovisor.nano"


@dataclass
class BuildOptions:
    packages: list[str]
    tag: str | None = None
    keep: list[str] = field(default_factory=list)
    drop: list[str] = field(default_factory=list)
    shell: bool = False
    cache: Path = DEFAULT_CACHE


@dataclass
class BuildResult:
    image: Image
    packages: list[Deb]
    size: int           # bytes of file data in the layer
    dropped: int        # bytes of file data the filter left out


def _check(opts: BuildOptions) -> None:
    if not opts.packages:
        raise InvalidParameter("nano build: at least one --package is required")
    for p in opts.packages:
        if not p or p.startswith("-") or any(c.isspace() for c in p):
            raise InvalidParameter(f"nano build: invalid package name {p!r}")


def scratch_dir(store: ImageStore) -> Path:
    """Where the unpacked packages are staged: memory when there is a tmpfs (thousands of small files
    created and deleted: several seconds on a disk), else the engine's tmp."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return shm
    store.paths.tmp.mkdir(parents=True, exist_ok=True)
    return store.paths.tmp


def plan(opts: BuildOptions, tmp: Path) -> tuple[list[Deb], list[str]]:
    """apt's plan, pruned of install-time machinery; ca-certificates joins when a TLS library is in."""
    wanted = list(dict.fromkeys(opts.packages + (["busybox-static"] if opts.shell else [])))
    debs = resolve(wanted, opts.cache, tmp)
    if {d.name for d in debs} & tree.TLS_LIBS and "ca-certificates" not in wanted:
        wanted.append("ca-certificates")
        debs = resolve(wanted, opts.cache, tmp)
    skip = (tree.MACHINERY | tree.SHELLS) - set(wanted)
    return needed(debs, wanted, skip), wanted


def build(store: ImageStore, opts: BuildOptions) -> BuildResult:
    from nanovisor.builder.layertar import as_file
    from nanovisor.images.rootfs_tar import export_tar

    _check(opts)
    with tempfile.TemporaryDirectory(prefix="nano-build-", dir=scratch_dir(store)) as tmpdir:
        tmp = Path(tmpdir)
        debs, wanted = plan(opts, tmp)
        root = tmp / "rootfs"
        filt = tree.PathFilter(opts.keep, opts.drop)
        dropped, epoch = tree.unpack(debs, tmp / "stage", root, filt)
        certs = tmp / "stage" / next((f"{i:03d}-{d.name}" for i, d in enumerate(debs)
                                      if d.name == "ca-certificates"), "none") / "usr/share/ca-certificates"
        main = opts.packages[0]
        profile = profile_for(main, root)
        tree.etc_files(root, profile)
        has_certs = tree.ca_bundle(root, certs)
        tree.apply_profile(root, profile)
        if opts.shell:
            tree.add_busybox(root, root / "usr/bin/busybox")
        doc = sbom.spdx(debs, wanted, f"nano-{main}", epoch)
        tree.write_file(root, sbom.SBOM_PATH, sbom.dumps(doc) + "\n")
        for d in debs:
            tree.write_file(root, f"{sbom.STATUS_DIR}/{d.name}", sbom.status_record(d))
        tree.remove_stage(tmp / "stage")
        tree.fix_times(root, epoch)
        size = tree.tree_size(root)
        diff_id = store.add_layer(as_file(export_tar(root)))
    env = [PATH_ENV, *profile.env] + ([f"SSL_CERT_FILE=/{tree.CA_BUNDLE}"] if has_certs else [])
    config: dict = {"Env": env, "User": profile.user, "Labels": {
        f"{LABEL_PREFIX}.packages": " ".join(opts.packages),
        f"{LABEL_PREFIX}.sbom": sbom.dumps(doc),
        f"{LABEL_PREFIX}.sbom.path": "/" + sbom.SBOM_PATH}}
    if profile.entrypoint:
        config["Entrypoint"] = profile.entrypoint
    if profile.cmd:
        config["Cmd"] = profile.cmd
    if not profile.entrypoint and not profile.cmd and opts.shell:
        config["Cmd"] = ["sh"]
    if profile.workdir:
        config["WorkingDir"] = profile.workdir
    if profile.ports:
        config["ExposedPorts"] = {p: {} for p in profile.ports}
    created = rfc3339(epoch)
    argv = " ".join([f"--package {p}" for p in opts.packages] + [f"--keep {p}" for p in opts.keep]
                    + [f"--drop {p}" for p in opts.drop] + (["--shell"] if opts.shell else []))
    image_config = {
        "architecture": "amd64", "os": "linux", "created": created, "config": config,
        "history": [{"created": created, "created_by": f"nanovisor nano build {argv}",
                     "comment": f"{len(debs)} Debian packages: "
                                + json.dumps(sorted(f"{d.name}={d.version}" for d in debs))}],
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    image = store.create_image(image_config, opts.tag)
    return BuildResult(image=image, packages=debs, size=size, dropped=dropped)
