"""nano/busybox: a base image made of Debian's busybox-static — one static binary, a symlink per applet,
the few /etc files programs expect, and the empty mount points the runtime fills.

The layer tar is deterministic (sorted, owner 0, every mtime = the binary's mtime in the package), and so
is the config: rebuilding from the same package version gives the same image id on any machine."""

from __future__ import annotations

import glob
import io
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from nanovisor.errors import SystemError_
from nanovisor.images.store import Image, ImageStore, rfc3339

PACKAGE = "busybox-static"
DEFAULT_REF = "nano/busybox:latest"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
APT_ARCHIVES = Path("/var/cache/apt/archives")

PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
          "nano:x:1000:1000:nano:/home/nano:/bin/sh\n")
GROUP = "root:x:0:\nnogroup:x:65534:\nnano:x:1000:\n"
SHADOW = "root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\nnano:*:19000:0:99999:7:::\n"
NSSWITCH = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\n"
# (path, mode, uid, gid) of directories; /etc/hosts, resolv.conf and hostname are bind-mounted by the engine
DIRS = [("bin", 0o755, 0, 0), ("dev", 0o755, 0, 0), ("etc", 0o755, 0, 0), ("home", 0o755, 0, 0),
        ("home/nano", 0o755, 1000, 1000), ("proc", 0o555, 0, 0), ("root", 0o700, 0, 0),
        ("sbin", 0o755, 0, 0), ("sys", 0o555, 0, 0), ("tmp", 0o1777, 0, 0), ("usr", 0o755, 0, 0),
        ("usr/bin", 0o755, 0, 0), ("usr/sbin", 0o755, 0, 0), ("usr/share", 0o755, 0, 0),
        ("usr/share/doc", 0o755, 0, 0), ("usr/share/doc/busybox-static", 0o755, 0, 0), ("var", 0o755, 0, 0),
        ("var/spool", 0o755, 0, 0), ("var/spool/mail", 0o755, 0, 0), ("var/www", 0o755, 0, 0)]


@dataclass
class PackageFiles:
    busybox: Path          # the static binary
    copyright: Path | None
    version: str
    mtime: int


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, check=True, capture_output=True, **kw)
    except FileNotFoundError as e:
        raise SystemError_(f"{cmd[0]} not found: install {PACKAGE} (scripts/install.sh)") from e
    except subprocess.CalledProcessError as e:
        raise SystemError_(f"{' '.join(cmd)}: {e.stderr.decode(errors='replace').strip()}") from e


def _find_deb(workdir: Path) -> Path | None:
    """The cached .deb if apt kept one, else a fresh `apt-get download`; None when offline."""
    cached = sorted(glob.glob(str(APT_ARCHIVES / f"{PACKAGE}_*_amd64.deb")))
    if cached:
        return Path(cached[-1])
    try:
        subprocess.run(["apt-get", "download", "-q", PACKAGE], cwd=workdir, check=True, capture_output=True,
                       timeout=300)
    except (OSError, subprocess.SubprocessError):
        return None
    got = sorted(workdir.glob(f"{PACKAGE}_*.deb"))
    return got[-1] if got else None


def package_files(workdir: Path) -> PackageFiles:
    """The package's files unpacked into workdir (or, offline, those of the installed package)."""
    deb = _find_deb(workdir)
    if deb is not None:
        root = workdir / "pkg"
        _run(["dpkg-deb", "-x", str(deb), str(root)])
        version = _run(["dpkg-deb", "-f", str(deb), "Version"]).stdout.decode().strip()
        busybox = root / "bin" / "busybox"
        copyright_ = root / "usr/share/doc" / PACKAGE / "copyright"
    else:
        version = _run(["dpkg-query", "-W", "-f=${Version}", PACKAGE]).stdout.decode().strip()
        listed = _run(["dpkg", "-L", PACKAGE]).stdout.decode().split("\n")
        busybox = Path(next((p for p in listed if p.endswith("/bin/busybox")), "/bin/busybox"))
        copyright_ = Path(f"/usr/share/doc/{PACKAGE}/copyright")
    if not busybox.is_file():
        raise SystemError_(f"{PACKAGE}: no bin/busybox found")
    return PackageFiles(busybox=busybox, copyright=copyright_ if copyright_.is_file() else None,
                        version=version, mtime=int(busybox.stat().st_mtime))


def applets(busybox: Path) -> list[str]:
    """Install paths of every applet ("bin/sh", "usr/bin/awk", ...), from the binary itself."""
    out = _run([str(busybox), "--list-full"]).stdout.decode().split()
    skip = {"", "bin/busybox", "linuxrc"}  # linuxrc is an initrd entry point, not a command
    return sorted({p.strip("/") for p in out if p.strip("/") not in skip})


def layer_tar(pkg: PackageFiles) -> bytes:
    """The deterministic rootfs tar."""
    buf = io.BytesIO()
    entries: list[tuple[str, tarfile.TarInfo, bytes | None]] = []

    def info(name: str, kind: bytes, mode: int, uid: int = 0, gid: int = 0) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.uid, ti.gid, ti.mtime = kind, mode, uid, gid, pkg.mtime
        ti.uname = ti.gname = ""
        return ti

    dirs = {d for d, *_ in DIRS}
    for d, mode, uid, gid in DIRS:
        entries.append((d, info(d + "/", tarfile.DIRTYPE, mode, uid, gid), None))

    def add_file(name: str, data: bytes, mode: int) -> None:
        ti = info(name, tarfile.REGTYPE, mode)
        ti.size = len(data)
        entries.append((name, ti, data))

    add_file("bin/busybox", pkg.busybox.read_bytes(), 0o755)
    if pkg.copyright is not None:
        add_file(f"usr/share/doc/{PACKAGE}/copyright", pkg.copyright.read_bytes(), 0o644)
    add_file("etc/passwd", PASSWD.encode(), 0o644)
    add_file("etc/group", GROUP.encode(), 0o644)
    add_file("etc/shadow", SHADOW.encode(), 0o640)
    add_file("etc/nsswitch.conf", NSSWITCH.encode(), 0o644)
    for path in applets(pkg.busybox):
        parent = path.rpartition("/")[0]
        if parent and parent not in dirs:  # an applet in a directory we did not plan for
            dirs.add(parent)
            entries.append((parent, info(parent + "/", tarfile.DIRTYPE, 0o755), None))
        ti = info(path, tarfile.SYMTYPE, 0o777)
        ti.linkname = "/bin/busybox"
        entries.append((path, ti, None))
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for _name, ti, data in sorted(entries, key=lambda e: e[0]):
            tar.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def image_config(diff_id: str, pkg: PackageFiles) -> dict:
    created = rfc3339(pkg.mtime)
    return {
        "architecture": "amd64",
        "config": {
            "Env": [PATH_ENV],
            "Cmd": ["sh"],
            "Labels": {"org.nanovisor.nano.package": PACKAGE,
                       "org.nanovisor.nano.package.version": pkg.version},
        },
        "created": created,
        "history": [{"created": created,
                     "created_by": f"nanovisor nano build busybox ({PACKAGE} {pkg.version})",
                     "comment": "assembled from the Debian package"}],
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }


def build(store: ImageStore, ref: str = DEFAULT_REF) -> Image:
    """Builds (or rebuilds: same package, same id) the busybox base image into store, tagged ref."""
    store.paths.tmp.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="nano-busybox-", dir=store.paths.tmp) as tmp:
        pkg = package_files(Path(tmp))
        data = layer_tar(pkg)
    diff_id = store.add_layer(io.BytesIO(data))
    return store.create_image(image_config(diff_id, pkg), ref)


def main() -> None:  # pragma: no cover - convenience: python -m nanovisor.nano.busybox [root]
    import sys

    from nanovisor.paths import Paths
    from nanovisor.store.db import Database

    paths = Paths.for_root(sys.argv[1] if len(sys.argv) > 1 else None)
    paths.ensure()
    img = build(ImageStore(paths, Database(paths.db)))
    print(img.id)


if __name__ == "__main__":  # pragma: no cover
    main()
