"""The container's mount list: Docker's default mounts, --tmpfs, the engine's mounts and the init binary.

moby's WithMounts order and precedence: a user mount replaces the default at its destination (a user /dev
replaces everything below /dev), user mounts go parents first, --read-only makes the remaining defaults
read-only except the few a process needs to write, --privileged makes /sys and the cgroup tree writable.
"""

from __future__ import annotations

import copy
import json
import os
import posixpath
import shutil

from nanovisor.errors import InvalidParameter, SystemError_
from nanovisor.runtime import spec_resources

INIT_IN_CONTAINER = "/sbin/docker-init"

# Mounts that stay writable with --read-only (Docker's list).
_RW_WITH_READONLY_ROOT = {"/proc", "/dev/pts", "/dev/shm", "/dev/mqueue", "/dev"}


def default_mounts(shm_size: int) -> list[dict]:
    """Docker's default Linux mounts; /dev/shm carries ShmSize (64 MiB unless set)."""
    def m(dest: str, typ: str, src: str, opts: list[str]) -> dict:
        return {"destination": dest, "type": typ, "source": src, "options": opts}
    return [
        m("/proc", "proc", "proc", ["nosuid", "noexec", "nodev"]),
        m("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
        m("/dev/pts", "devpts", "devpts", ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]),
        m("/sys", "sysfs", "sysfs", ["nosuid", "noexec", "nodev", "ro"]),
        m("/sys/fs/cgroup", "cgroup", "cgroup", ["ro", "nosuid", "noexec", "nodev"]),
        m("/dev/mqueue", "mqueue", "mqueue", ["nosuid", "noexec", "nodev"]),
        m("/dev/shm", "tmpfs", "shm", ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm_size}"]),
    ]


_TMPFS_FLAGS = {
    "ro": "ro", "rw": "ro", "exec": "noexec", "noexec": "noexec", "suid": "nosuid", "nosuid": "nosuid",
    "dev": "nodev", "nodev": "nodev", "sync": "sync", "async": "sync", "atime": "noatime",
    "noatime": "noatime", "diratime": "nodiratime", "nodiratime": "nodiratime", "relatime": "relatime",
    "norelatime": "relatime", "strictatime": "strictatime", "nostrictatime": "strictatime", "mand": "mand",
    "nomand": "mand", "dirsync": "dirsync", "remount": "remount", "bind": "bind", "rbind": "bind",
}
_PROPAGATION = {"private", "rprivate", "shared", "rshared", "slave", "rslave", "unbindable", "runbindable"}
_TMPFS_DATA = {"", "size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol"}


def merge_tmpfs_options(options: list[str]) -> list[str]:
    """moby's MergeTmpfsOptions: the later of two conflicting options wins; data keys are checked."""
    seen_flags: set[str] = set()
    seen_data: set[str] = set()
    out: list[str] = []
    for option in reversed(options):
        if option == "defaults":
            continue
        if option in _TMPFS_FLAGS or option in _PROPAGATION:
            key = "propagation" if option in _PROPAGATION else _TMPFS_FLAGS[option]
            if key not in seen_flags:
                out.insert(0, option)
                seen_flags.add(key)
            continue
        key, sep, _ = option.partition("=")
        if not sep or key not in _TMPFS_DATA:
            raise InvalidParameter(f"invalid tmpfs option {json.dumps(option.split('=', 1))}")
        if key not in seen_data:
            out.insert(0, option)
            seen_data.add(key)
    return out


def tmpfs_mounts(tmpfs: dict | None) -> list[dict]:
    """HostConfig.Tmpfs {"/path": "size=64m,mode=1777"} → OCI tmpfs mounts (noexec,nosuid,nodev first)."""
    out = []
    for dest, data in (tmpfs or {}).items():
        if not dest.startswith("/"):
            raise InvalidParameter(f"invalid mount path: '{dest}' mount path must be absolute")
        if posixpath.normpath(dest) == "/":
            raise InvalidParameter("destination can't be '/'")
        opts = ["noexec", "nosuid", "nodev", "rprivate"] + ([o for o in data.split(",") if o] if data else [])
        out.append({"destination": dest, "type": "tmpfs", "source": "tmpfs",
                    "options": merge_tmpfs_options(opts)})
    return out


def _depth(dest: str) -> int:
    return len([p for p in posixpath.normpath(dest).split("/") if p])


def find_init(init_path: str | None) -> str:
    """The host's static init for --init: the engine's choice, else Debian's tini-static."""
    for candidate in (init_path, shutil.which("tini-static"), "/usr/bin/tini-static",
                      shutil.which("docker-init")):
        if candidate and os.path.exists(candidate):
            return candidate
    raise SystemError_("exec: \"docker-init\": executable file not found in $PATH")


def build_mounts(extra: list[dict], hc: dict, readonly_root: bool, privileged: bool,
                 init_path: str | None) -> list[dict]:
    """Default mounts, minus those the user's mounts replace; then the user's, parents first (moby's order).

    extra: the engine's resolved mounts; init_path: the host's static init (find_init) to bind at
    /sbin/docker-init, or None without --init.
    """
    shm_size = int(hc.get("ShmSize") or spec_resources.DEFAULT_SHM_SIZE)
    ipc = hc.get("IpcMode") or ""
    user = [copy.deepcopy(m) for m in extra] + tmpfs_mounts(hc.get("Tmpfs"))
    user.sort(key=lambda m: _depth(m["destination"]))
    user_dests = {posixpath.normpath(m["destination"]) for m in user}
    mount_dev = "/dev" in user_dests
    out = []
    for m in default_mounts(shm_size):
        dest = m["destination"]
        if dest in user_dests or (mount_dev and dest.startswith("/dev/")):
            continue
        if dest == "/dev/shm":
            if ipc == "none":
                continue
            if ipc == "host":
                m = {"destination": "/dev/shm", "type": "bind", "source": "/dev/shm", "options": ["rbind"]}
        if readonly_root and dest not in _RW_WITH_READONLY_ROOT and "ro" not in m["options"]:
            m["options"].append("ro")
        if privileged and m["type"] in ("sysfs", "cgroup"):
            m["options"] = [o for o in m["options"] if o != "ro"]  # moby's clearReadOnly
        out.append(m)
    out += user
    if init_path is not None:
        out.append({"destination": INIT_IN_CONTAINER, "type": "bind", "source": init_path,
                    "options": ["bind", "ro"]})
    return out
