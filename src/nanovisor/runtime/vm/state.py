"""Per-container state directory of the VM runtime (under --root, like runc's /run/runc/<id>).

    <root>/<id>/oci-state.json  what `state` reports, written once at create with "status": "created"; the
                             live status is derived from the files below (so the C fast path can answer too)
    <root>/<id>/shim         "PID STARTTIME" of the shim (start time guards against pid reuse)
    <root>/<id>/ctl.sock     the shim's control socket (start, kill, exec, stats, ps)
    <root>/<id>/started      marker: `start` was delivered
    <root>/<id>/paused       marker: the VM is stopped through QMP
    <root>/<id>/exit         the main process' wait status once it exited
    <root>/<id>/pids         qemu and virtiofsd pids, so `delete --force` can reap them if the shim is gone
    <root>/<id>/vm/          sockets and logs QEMU (unprivileged) may touch
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ROOT = "/run/nanovisor-vm"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


class RuntimeError_(Exception):
    """An error the CLI prints (runc style) and exits 1 for."""


def _via_dirfd(sock, path: Path, op: str) -> None:
    """bind/connect a unix socket at any path length: sun_path holds 108 bytes and the engine's state paths
    (…/runtime/nanovisor-vm/<64-hex id>/vm/fs.sock) are longer, so go through /proc/self/fd/<dir fd>/name."""
    path = Path(path)
    if len(str(path)) < 100:
        getattr(sock, op)(str(path))
        return
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        getattr(sock, op)(f"/proc/self/fd/{fd}/{path.name}")
    finally:
        os.close(fd)


def bind_unix(sock, path: Path) -> None:
    _via_dirfd(sock, path, "bind")


def connect_unix(sock, path: Path) -> None:
    _via_dirfd(sock, path, "connect")


def proc_start_time(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


@dataclass
class Container:
    root: Path
    id: str

    @property
    def dir(self) -> Path:
        return self.root / self.id

    @property
    def vmdir(self) -> Path:
        return self.dir / "vm"

    @property
    def ctl(self) -> Path:
        return self.dir / "ctl.sock"

    def exists(self) -> bool:
        return (self.dir / "oci-state.json").exists()

    def load(self) -> dict:
        try:
            return json.loads((self.dir / "oci-state.json").read_text())
        except (OSError, ValueError):
            raise RuntimeError_("container does not exist") from None

    def save(self, st: dict, shim_pid: int) -> None:
        (self.dir / "shim").write_text(f"{shim_pid} {proc_start_time(shim_pid)}\n")
        tmp = self.dir / "oci-state.json.tmp"
        tmp.write_text(json.dumps({**st, "status": "created"}, indent=2))
        tmp.rename(self.dir / "oci-state.json")

    def shim_pid(self) -> int:
        """The live shim's pid, or 0."""
        try:
            pid, start = (int(x) for x in (self.dir / "shim").read_text().split())
        except (OSError, ValueError):
            return 0
        return pid if pid > 0 and proc_start_time(pid) == start else 0

    def status(self, st: dict | None = None) -> str:
        if not self.shim_pid() or (self.dir / "exit").exists():
            return "stopped"
        if (self.dir / "paused").exists():
            return "paused"
        if (self.dir / "started").exists():
            return "running"
        return "created"


def container(root: str, cid: str) -> Container:
    if not _ID.match(cid) or len(cid) > 1024:
        raise RuntimeError_(f"invalid container id format: {cid}")
    return Container(Path(root), cid)
