"""The root tree of a nano image, assembled on disk from .debs: their data unpacked without maintainer
scripts (`dpkg-deb -x`), moved into a merged-/usr layout, filtered down to what runs, then the minimal /etc,
runtime directories, and one fixed mtime on everything so the layer tar is the same on every rebuild."""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from nanovisor.errors import SystemError_
from nanovisor.nano.debcache import Deb
from nanovisor.nano.profiles import NONROOT, Profile

# install-time machinery: dpkg, apt, debconf and what their maintainer scripts call (never needed to run)
MACHINERY = {"dpkg", "apt", "debconf", "debconf-i18n", "install-info", "tar", "usrmerge", "adduser", "passwd",
             "init-system-helpers", "sysvinit-utils", "lsb-base", "ucf", "sensible-utils", "debianutils",
             "perl", "perl-base", "perl-modules-5.36", "libperl5.36", "openssl", "iproute2", "libcap2-bin",
             "logrotate", "systemd", "systemd-sysv"}
SHELLS = {"dash", "bash", "busybox", "busybox-static"}

# path patterns (fnmatch, `*` crosses `/`) dropped unless --keep matches: what no program reads at run time
DEFAULT_DROP = [
    "usr/share/doc/*", "usr/share/man/*", "usr/share/info/*", "usr/share/locale/*", "usr/share/lintian/*",
    "usr/share/linda/*", "usr/share/bug/*", "usr/share/menu/*", "usr/share/doc-base/*", "usr/share/gdb/*",
    "usr/share/bash-completion/*", "usr/share/zsh/*", "usr/share/fish/*", "usr/share/apport/*",
    "usr/share/applications/*", "usr/share/pixmaps/*", "usr/share/icons/*", "usr/share/polkit-1/*",
    "usr/share/debconf/*", "usr/share/perl5/Debconf/*", "usr/share/python3/runtime.d/*",
    "usr/lib/systemd/*", "usr/lib/tmpfiles.d/*", "usr/lib/sysusers.d/*", "usr/lib/dpkg/*", "usr/share/dpkg/*",
    "etc/systemd/*", "etc/init.d/*", "etc/init/*", "etc/logrotate.d/*", "etc/cron.*", "etc/apt/*",
    "etc/dpkg/*", "var/lib/dpkg/*", "var/lib/apt/*", "var/cache/apt/*", "var/cache/debconf/*",
    "etc/ufw/*", "etc/default/*", "usr/share/ca-certificates/*", "usr/sbin/update-ca-certificates",
    # Tk's Python side, unusable without _tkinter (another package): IDLE, turtle and their demos
    "usr/lib/python3*/idlelib/*", "usr/lib/python3*/tkinter/*", "usr/lib/python3*/turtledemo/*",
    "usr/lib/python3*/turtle.py",
    # glibc's iconv modules for legacy charsets (UTF-8, ASCII and Latin-1 are built in): 8 MB
    "usr/lib/*/gconv/*",
]
KEEP_ALWAYS = ["usr/share/doc/*/copyright"]  # licences travel with the binaries
MERGED = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
TLS_LIBS = {"libssl3", "libssl1.1", "libgnutls30", "libnss3"}
CA_BUNDLE = "etc/ssl/certs/ca-certificates.crt"


class PathFilter:
    def __init__(self, keep: Iterable[str] = (), drop: Iterable[str] = ()) -> None:
        self.keep = [p.strip("/") for p in keep] + KEEP_ALWAYS
        self.drop = DEFAULT_DROP + [p.strip("/") for p in drop]

    def dropped(self, rel: str) -> bool:
        if any(fnmatch.fnmatchcase(rel, p) for p in self.keep):
            return False
        return any(fnmatch.fnmatchcase(rel, p) or fnmatch.fnmatchcase(rel + "/", p) for p in self.drop)


def merged_usr(rel: str) -> str:
    """bin/x → usr/bin/x etc.: Debian 12 images are merged-/usr (bin is a link to usr/bin)."""
    top = rel.split("/", 1)[0]
    return f"usr/{rel}" if top in MERGED else rel


def _extract(deb: Deb, dest: Path) -> None:
    done = subprocess.run(["dpkg-deb", "-x", str(deb.path), str(dest)], capture_output=True, text=True)
    if done.returncode:
        raise SystemError_(f"dpkg-deb -x {deb.path.name}: {done.stderr.strip()}")


def unpack(debs: list[Deb], stage: Path, tree: Path, filt: PathFilter) -> tuple[int, int]:
    """Unpacks every deb (in parallel, each into its own directory), then moves what the filter keeps into
    tree under merged /usr, in apt's install order (a later package's file wins, as with dpkg).
    Returns (bytes the filter dropped, the newest mtime the packages' files carry)."""
    dests = [stage / f"{i:03d}-{d.name}" for i, d in enumerate(debs)]
    stage.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(_extract, debs, dests))
    tree.mkdir(parents=True, exist_ok=True)
    dropped = newest = 0
    for src_root in dests:
        for dirpath, dirnames, filenames in os.walk(src_root):
            rel_dir = os.path.relpath(dirpath, src_root)
            for name in sorted(dirnames + filenames):
                src = os.path.join(dirpath, name)
                rel = merged_usr(os.path.normpath(os.path.join(rel_dir, name)))
                st = os.lstat(src)
                is_dir = os.path.isdir(src) and not os.path.islink(src)
                if not is_dir:  # directories' mtimes change as we move their entries out
                    newest = max(newest, int(st.st_mtime))
                if filt.dropped(rel):
                    if not is_dir:
                        dropped += st.st_size
                    continue
                dst = tree / rel
                if is_dir:
                    if not dst.is_dir():
                        dst.mkdir(parents=True, exist_ok=True)
                        os.chmod(dst, st.st_mode & 0o7777)
                        os.chown(dst, st.st_uid, st.st_gid)
                    continue
                dst.parent.mkdir(parents=True, exist_ok=True)
                if dst.is_symlink() or dst.exists():
                    dst.unlink()
                os.rename(src, dst)
    for top in MERGED:
        if (tree / "usr" / top).is_dir() and not (tree / top).exists():
            os.symlink(f"usr/{top}", tree / top)
    return dropped, newest


def write_file(tree: Path, rel: str, text: str | bytes, mode: int = 0o644, uid: int = 0) -> None:
    p = tree / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.is_symlink():
        p.unlink()
    p.write_bytes(text.encode() if isinstance(text, str) else text)
    os.chmod(p, mode)
    os.chown(p, uid, uid)


def _mkdir(tree: Path, rel: str, mode: int, uid: int = 0) -> None:
    p = tree / rel
    p.mkdir(parents=True, exist_ok=True)
    os.chmod(p, mode)
    os.chown(p, uid, uid)


def _link(tree: Path, rel: str, target: str) -> None:
    p = tree / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.is_symlink() or p.exists():
        p.unlink()
    os.symlink(target, p)


def etc_files(tree: Path, profile: Profile) -> None:
    """passwd/group with root, nonroot and nobody (plus the program's own system users), nsswitch,
    and the directories every container expects."""
    users = [("root", 0, "/root"), *[(n, uid, "/nonexistent") for n, uid in profile.users],
             ("nonroot", NONROOT, "/home/nonroot"), ("nobody", 65534, "/nonexistent")]
    passwd = "".join(f"{n}:x:{uid}:{uid}:{n}:{home}:/sbin/nologin\n" for n, uid, home in users)
    group = "".join(f"{n}:x:{uid}:\n" for n, uid, _ in users[:-1]) + "nogroup:x:65534:\n"
    write_file(tree, "etc/passwd", passwd)
    write_file(tree, "etc/group", group)
    write_file(tree, "etc/nsswitch.conf", "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n"
                                      "networks: files\nprotocols: files\nservices: files\n")
    for rel, mode, uid in [("dev", 0o755, 0), ("proc", 0o555, 0), ("sys", 0o555, 0), ("run", 0o755, 0),
                           ("tmp", 0o1777, 0), ("var/tmp", 0o1777, 0), ("root", 0o700, 0), ("home", 0o755, 0),
                           ("home/nonroot", 0o700, NONROOT), ("etc/ssl/certs", 0o755, 0)]:
        _mkdir(tree, rel, mode, uid)


def ca_bundle(tree: Path, certs: Path | None) -> bool:
    """/etc/ssl/certs/ca-certificates.crt from ca-certificates' .crt files (what update-ca-certificates
    writes), and OpenSSL's default locations pointing at it. False when there are no certificates."""
    if certs is None or not certs.is_dir():
        return False
    crts = sorted(p for p in certs.rglob("*.crt") if p.is_file())
    if not crts:
        return False
    bundle = b"".join(p.read_bytes().rstrip(b"\n") + b"\n" for p in crts)
    write_file(tree, CA_BUNDLE, bundle)
    if not (tree / "usr/lib/ssl/cert.pem").exists():
        _link(tree, "usr/lib/ssl/cert.pem", "/" + CA_BUNDLE)
    if not (tree / "usr/lib/ssl/certs").exists():
        _link(tree, "usr/lib/ssl/certs", "/etc/ssl/certs")
    return True


def apply_profile(tree: Path, profile: Profile) -> None:
    for rel, mode, uid in profile.dirs:
        _mkdir(tree, rel, mode, uid)
    for rel, src in profile.copies:
        if (tree / src).is_file():
            write_file(tree, rel, (tree / src).read_bytes())
    for rel, target in profile.links:
        _link(tree, rel, target)


def add_busybox(tree: Path, busybox: Path) -> None:
    """--shell: busybox's binary and a link per applet that no package already provides."""
    from nanovisor.nano.busybox import applets

    for path in applets(busybox):
        rel = merged_usr(path)
        if not (tree / rel).exists() and not (tree / rel).is_symlink():
            _link(tree, rel, "/usr/bin/busybox")


def fix_times(tree: Path, mtime: int) -> None:
    """One mtime on every entry (the newest one the packages carry): no build time leaks in."""
    os.utime(tree, (mtime, mtime))
    for dirpath, dirnames, filenames in os.walk(tree):
        for n in dirnames + filenames:
            os.utime(os.path.join(dirpath, n), (mtime, mtime), follow_symlinks=False)


def tree_size(tree: Path) -> int:
    total = 0
    for dirpath, _, filenames in os.walk(tree):
        for n in filenames:
            st = os.lstat(os.path.join(dirpath, n))
            total += st.st_size
    return total


def remove_stage(stage: Path) -> None:
    shutil.rmtree(stage, ignore_errors=True)
