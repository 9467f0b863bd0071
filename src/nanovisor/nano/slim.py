"""`nanovisor nano slim IMAGE [--probe CMD] [--http-probe PORT] -t TAG`: a copy of an image holding only
the files its command (and the probes) actually use.

1. run the image's own command in a container while fanotify records every file opened or exec'd on its
   rootfs (fanotify.py); run the probes against it (exec commands, HTTP GETs from the host);
2. close the set over what those files need: symlinks on their paths, ELF interpreters and DT_NEEDED
   libraries, whole Python packages and the codec registry, /etc for users, name resolution and TLS;
3. write one layer with those files (and every directory of the original) and the original's config;
4. run the same probes against the new image: it is kept only if they pass.
The original image is only read."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from nanovisor.errors import InvalidParameter, NanovisorError, SystemError_
from nanovisor.images import reference
from nanovisor.nano.elf import read_elf

LABEL = "org.nanovisor.nano.slim"
LIB_DIRS = ["lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib64", "usr/lib64", "lib", "usr/lib",
            "usr/local/lib"]
# what programs read without it showing in a short run: users, name resolution, TLS, time zone, mime types
ETC_FILES = ["etc/passwd", "etc/group", "etc/nsswitch.conf", "etc/host.conf", "etc/gai.conf", "etc/services",
             "etc/protocols", "etc/localtime", "etc/mime.types", "etc/os-release", "usr/lib/os-release",
             "etc/ssl/certs/ca-certificates.crt", "etc/ssl/openssl.cnf", "usr/lib/ssl/openssl.cnf",
             "usr/lib/ssl/cert.pem", "usr/lib/ssl/certs", "usr/share/nano/sbom.spdx.json"]
# codecs Python looks up lazily (host names, bytes literals, Windows/ISO text): the whole encodings package
# is 1.7 MB; `--keep usr/lib/python3.11/encodings` keeps all of it
LAZY_CODECS = ["__init__", "aliases", "ascii", "latin_1", "utf_8", "utf_8_sig", "utf_16", "utf_16_le",
               "utf_16_be", "utf_32", "idna", "punycode", "unicode_escape", "raw_unicode_escape", "cp1252",
               "iso8859_1", "iso8859_15", "charmap", "base64_codec", "hex_codec"]
SKIP_PREFIXES = ("proc/", "sys/", "dev/")


@dataclass
class SlimOptions:
    image: str
    tag: str
    probes: list[str] = field(default_factory=list)
    http_probes: list[int] = field(default_factory=list)
    keep: list[str] = field(default_factory=list)
    wait: float = 2.0


class CannotSlim(InvalidParameter):
    """The run could not be observed as asked: nothing is written."""


# -- running and probing ------------------------------------------------------------------------------------

def _exec(engine, cid: str, argv: list[str]) -> tuple[int, bytes]:
    exec_id = engine.exec_create(cid, {"Cmd": argv, "AttachStdout": True, "AttachStderr": True})["Id"]
    session = engine.exec_start(exec_id)
    out = b""
    while (chunk := session.read()) is not None:
        out += chunk[1]
    code = session.wait()
    session.close()
    return code, out


def _http_get(url: str, deadline: float) -> int:
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                r.read()
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError as e:
            last = e
            time.sleep(0.2)
    raise CannotSlim(f"http probe {url}: no answer ({last})")


def _ip(engine, cid: str) -> str:
    nets = engine.container_inspect(cid)["NetworkSettings"].get("Networks") or {}
    ips = [n.get("IPAddress") for n in nets.values() if n.get("IPAddress")]
    if not ips:
        raise CannotSlim("http probe: the container has no IP address")
    return ips[0]


def run_probes(engine, image_id: str, opts: SlimOptions, what: str, on_created=None) -> dict:
    """Runs image_id's command, waits opts.wait seconds, runs the probes; refuses (CannotSlim) when the
    command dies before the probes ran or fails, or a probe fails. Returns what happened."""
    probing = bool(opts.probes or opts.http_probes)
    hc: dict = {"NetworkMode": "bridge" if opts.http_probes else "none"}
    cid = engine.container_create({"Image": image_id, "HostConfig": hc,
                                   "Labels": {LABEL: what}}, name=f"nano-slim-{uuid.uuid4().hex[:12]}")["Id"]
    results: dict = {"probes": [], "http_probes": []}
    try:
        if on_created is not None:
            engine.lifecycle.on_created(cid, on_created)
        engine.container_start(cid)
        deadline = time.monotonic() + opts.wait
        while time.monotonic() < deadline and engine.container_inspect(cid)["State"]["Running"]:
            time.sleep(0.1)
        state = engine.container_inspect(cid)["State"]
        if not state["Running"]:
            if probing:
                raise CannotSlim(f"{what}: the command exited (code {state['ExitCode']}) before the probes "
                                 f"ran: give a command that keeps running while probed")
            if state["ExitCode"] != 0:
                raise CannotSlim(f"{what}: the command failed (exit code {state['ExitCode']})")
        for probe in opts.probes:
            code, out = _exec(engine, cid, shlex.split(probe))
            results["probes"].append({"probe": probe, "exit_code": code})
            if code != 0:
                raise CannotSlim(f"{what}: probe {probe!r} failed (exit code {code}): "
                                 f"{out[-300:].decode(errors='replace').strip()}")
        if opts.http_probes:
            ip = _ip(engine, cid)
            for port in opts.http_probes:
                status = _http_get(f"http://{ip}:{port}/", time.monotonic() + 20)
                results["http_probes"].append({"port": port, "status": status})
                if status >= 500:
                    raise CannotSlim(f"{what}: http probe on port {port} answered {status}")
    finally:
        try:
            engine.container_remove(cid, force=True)
        except NanovisorError:
            pass
    return results


# -- the original's files -------------------------------------------------------------------------------------

@contextmanager
def merged_view(store, image):
    """The image's files as one read-only tree (its only layer, or a lower-only overlay of them all)."""
    from nanovisor.snapshots.overlay import mount, unmount

    dirs = store.layer_dirs(image)
    if len(dirs) == 1:
        yield dirs[0]
        return
    target = Path(tempfile.mkdtemp(prefix="nano-slim-view-", dir=store.paths.tmp))
    try:
        mount("overlay", str(target), "overlay", "lowerdir=" + ":".join(map(str, dirs)))
        try:
            yield target
        finally:
            unmount(target)
    finally:
        target.rmdir()


def resolve_in_root(root: Path, rel: str, links: set[str]) -> str:
    """rel with every symlink on its way followed inside root (never out of it); the links passed are
    added to links."""
    parts = [p for p in rel.split("/") if p and p != "."]
    cur: list[str] = []
    hops = 0
    while parts:
        comp = parts.pop(0)
        if comp == "..":
            cur = cur[:-1]
            continue
        cand = "/".join([*cur, comp])
        full = root / cand
        if full.is_symlink() and hops < 40:
            hops += 1
            links.add(cand)
            target = os.readlink(full)
            if target.startswith("/"):
                cur = []
            parts = [p for p in target.split("/") if p and p != "."] + parts
        else:
            cur.append(comp)
    return "/".join(cur)


class Closure:
    """The set of paths (relative to root) to keep, closed over symlinks, ELF needs and Python packages."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.keep: set[str] = set()
        self._elf_done: set[str] = set()
        self._trees: set[str] = set()

    def add(self, rel: str) -> str | None:
        links: set[str] = set()
        final = resolve_in_root(self.root, rel.strip("/"), links)
        self.keep |= links
        p = self.root / final
        if not final or not (p.exists() or p.is_symlink()):
            return None
        if p.is_dir():
            self.keep.add(final + "/")  # a directory: its entry only
            return final
        self.keep.add(final)
        return final

    def add_tree(self, rel: str) -> None:
        """Every file below rel, except byte-code caches (kept only where a run used them: the source is
        enough to import the rest)."""
        top = self.root / rel
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            for n in filenames:
                self.add(os.path.relpath(os.path.join(dirpath, n), self.root))

    def close(self) -> None:
        """ELF interpreters and libraries, whole Python packages, until nothing new comes in."""
        while True:
            todo = [k for k in self.keep if k not in self._elf_done and not k.endswith("/")]
            if not todo:
                return
            for rel in todo:
                self._elf_done.add(rel)
                self._python(rel)
                info = read_elf(str(self.root / rel)) if (self.root / rel).is_file() else None
                if info is None:
                    continue
                if info.interp:
                    self.add(info.interp)
                origin = "/" + os.path.dirname(rel)
                dirs = [d.replace("$ORIGIN", origin).replace("${ORIGIN}", origin).strip("/")
                        for d in info.runpath] + LIB_DIRS
                for soname in info.needed:
                    for d in dirs:
                        if self.add(f"{d}/{soname}"):
                            break

    def _python(self, rel: str) -> None:
        parts = rel.split("/")
        if len(parts) > 2 and parts[-2] == "__pycache__" and rel.endswith(".pyc"):
            # a cached module is used only next to its source (PEP 3147): keep the .py too
            self.add("/".join(parts[:-2] + [parts[-1].split(".")[0] + ".py"]))
        for i, part in enumerate(parts[:-1]):
            if part in ("site-packages", "dist-packages") and i + 2 < len(parts):
                pkg = "/".join(parts[:i + 2])
                if pkg not in self._trees and (self.root / pkg).is_dir():
                    self._trees.add(pkg)
                    self.add_tree(pkg)
                return
            if part.startswith("python3") and parts[i - 1] == "lib" and i + 1 < len(parts):
                enc = "/".join(parts[:i + 1]) + "/encodings"
                if enc not in self._trees:
                    self._trees.add(enc)
                    for name in LAZY_CODECS:
                        self.add(f"{enc}/{name}.py")
                return


def _observed(paths: Iterable[str], host_root: str) -> list[str]:
    out = []
    for p in paths:
        p = p.removesuffix(" (deleted)")
        if p.startswith(host_root + "/"):
            p = p[len(host_root):]
        rel = p.lstrip("/")
        if rel and not rel.startswith(SKIP_PREFIXES) and not p.startswith(("pipe:", "socket:", "anon_inode:")):
            out.append(rel)
    return out


def _walk(root: Path) -> tuple[list[str], dict[str, int], list[str]]:
    """(directories, regular file sizes, symlinks) of the tree."""
    dirs, files, links = [], {}, []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        for n in dirnames + filenames:
            rel = os.path.normpath(os.path.join(rel_dir, n))
            full = os.path.join(dirpath, n)
            if os.path.islink(full):
                links.append(rel)
            elif os.path.isdir(full):
                dirs.append(rel)
            else:
                files[rel] = os.lstat(full).st_size
    return dirs, files, links


def _copy(root: Path, out: Path, rel: str) -> None:
    src, dst = root / rel, out / rel
    st = os.lstat(src)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if os.path.islink(src):
        os.symlink(os.readlink(src), dst)
        os.lchown(dst, st.st_uid, st.st_gid)
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    elif os.path.isdir(src):
        dst.mkdir(exist_ok=True)
        os.chown(dst, st.st_uid, st.st_gid)
    else:
        shutil.copyfile(src, dst, follow_symlinks=False)
        os.chown(dst, st.st_uid, st.st_gid)
        shutil.copystat(src, dst, follow_symlinks=False)  # mode, times, xattrs (capabilities) after chown


def slim(engine, opts: SlimOptions) -> dict:
    from nanovisor.builder.layertar import as_file
    from nanovisor.images.rootfs_tar import export_tar
    from nanovisor.nano.fanotify import CannotObserve, FileWatch

    store = engine.images
    image = store.resolve(opts.image)
    if not opts.tag:
        raise InvalidParameter("nano slim: a tag (-t) for the new image is required")
    if reference.normalize(opts.tag) in [reference.normalize(r) for r in image.repo_tags] or \
            opts.tag in (image.id, image.id.removeprefix("sha256:")):
        raise InvalidParameter(f"nano slim: {opts.tag} names the original image: give the slim one a new tag")
    watch: dict = {}

    def observe(c) -> None:
        rootfs = json.loads((engine.paths.bundle_dir(c.id) / "config.json").read_text())["root"]["path"]
        try:
            watch["w"], watch["root"] = FileWatch(rootfs), rootfs
        except CannotObserve as e:
            watch["error"] = str(e)

    started = time.monotonic()
    try:
        results = run_probes(engine, image.id, opts, "original image", on_created=observe)
    finally:
        seen = watch["w"].stop() if "w" in watch else set()
    if "error" in watch or "w" not in watch:
        raise SystemError_(f"nano slim: cannot observe the container's files: "
                           f"{watch.get('error', 'the container was never created')}")
    if watch["w"].overflowed:
        raise SystemError_("nano slim: the file-event queue overflowed: the record is incomplete")
    observed = _observed(seen, watch["root"])
    if not observed:
        raise CannotSlim("nano slim: the command opened no file in the image: nothing to go on")

    cfg = image.config.get("config") or {}
    store.paths.tmp.mkdir(parents=True, exist_ok=True)
    with merged_view(store, image) as root, \
            tempfile.TemporaryDirectory(prefix="nano-slim-", dir=store.paths.tmp) as tmp:
        closure = Closure(root)
        for rel in observed + ETC_FILES:
            closure.add(rel)
        for rel in (cfg.get("Entrypoint") or [])[:1] + (cfg.get("Cmd") or [])[:1]:
            if rel.startswith("/"):
                closure.add(rel)
        for pattern in opts.keep:
            if (root / pattern.strip("/")).is_dir():
                closure.add_tree(pattern.strip("/"))
            else:
                closure.add(pattern)
        closure.close()
        dirs, files, links = _walk(root)
        kept_dirs = {k.rstrip("/") for k in closure.keep if k.endswith("/")}
        # links whose target is kept (libfoo.so.1 -> libfoo.so.1.2, bin -> usr/bin) travel with it
        ancestors = {a for k in closure.keep for a in _parents(k.rstrip("/"))} | kept_dirs
        for link in links:
            hops: set[str] = set()
            final = resolve_in_root(root, link, hops)
            if final in closure.keep or final in ancestors:
                closure.keep |= hops | {link}
        kept = sorted(k for k in closure.keep if not k.endswith("/") and (k in files or k in links))
        out = Path(tmp) / "rootfs"
        out.mkdir()
        for d in sorted(dirs):
            _copy(root, out, d)
        for rel in kept:
            _copy(root, out, rel)
        for d in sorted(dirs, reverse=True):  # directory times last: adding entries changed them
            shutil.copystat(root / d, out / d, follow_symlinks=False)
        shutil.copystat(root, out)
        kept_bytes = sum(files.get(k, 0) for k in kept)
        diff_id = store.add_layer(as_file(export_tar(out)))
    total_bytes = sum(files.values())
    report = {"original": image.id, "kept": {"files": len(kept), "bytes": kept_bytes},
              "removed": {"files": len(files) + len(links) - len(kept), "bytes": total_bytes - kept_bytes},
              "observed": len(observed), **results}
    new_config = {k: v for k, v in image.config.items() if k not in ("rootfs", "history", "config")}
    new_config["config"] = {**cfg, "Labels": {**(cfg.get("Labels") or {}),
                                              f"{LABEL}.from": image.id,
                                              f"{LABEL}.kept": f"{len(kept)} files, {kept_bytes} bytes",
                                              f"{LABEL}.removed": f"{report['removed']['files']} files, "
                                                                  f"{report['removed']['bytes']} bytes"}}
    probe_words = " ".join([f"--probe {shlex.quote(p)}" for p in opts.probes]
                           + [f"--http-probe {p}" for p in opts.http_probes])
    new_config["history"] = [{"created": image.config.get("created") or "1970-01-01T00:00:00Z",
                              "created_by": f"nanovisor nano slim {probe_words}".strip(),
                              "comment": f"from {image.id}: kept {len(kept)} files"}]
    new_config["rootfs"] = {"type": "layers", "diff_ids": [diff_id]}
    slim_image = store.create_image(new_config, None)
    try:
        report["verified"] = run_probes(engine, slim_image.id, opts, "slim image")
    except NanovisorError:
        store.remove(slim_image.id, force=True)
        raise
    store.tag(slim_image.id, opts.tag)
    report.update(image=slim_image.id, tag=opts.tag, files=kept, seconds=round(time.monotonic() - started, 2),
                  size={"original": engine.image_inspect(image.id)["Size"],
                        "slim": engine.image_inspect(slim_image.id)["Size"]})
    return report


def _parents(rel: str) -> list[str]:
    parts = rel.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]
