"""Per-container state directory of the VM runtime (under --root, like runc's /run/runc/<id>).

    <root>/<id>/state.json   what `state` reports (+ shim pid and its start time, to survive pid reuse)
    <root>/<id>/ctl.sock     the shim's control socket (start, kill, exec, stats, ps)
    <root>/<id>/started      marker: `start` was delivered
    <root>/<id>/paused       marker: the VM is stopped through QMP
    <root>/<id>/exit         the main process' wait status once it exited
    <root>/<id>/pids         qemu and virtiofsd pids, so `delete --force` can reap them if the shim is gone
    <root>/<id>/vm/          sockets and logs QEMU (unprivileged) may touch
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ROOT = "/run/nanovisor-vm"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


class RuntimeError_(Exception):
    """An error the CLI prints (runc style) and exits 1 for."""


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
        return (self.dir / "state.json").exists()

    def load(self) -> dict:
        try:
            return json.loads((self.dir / "state.json").read_text())
        except (OSError, ValueError):
            raise RuntimeError_("container does not exist") from None

    def save(self, st: dict) -> None:
        tmp = self.dir / "state.json.tmp"
        tmp.write_text(json.dumps(st))
        tmp.rename(self.dir / "state.json")

    def shim_alive(self, st: dict) -> bool:
        pid = st.get("pid") or 0
        return pid > 0 and proc_start_time(pid) == st.get("pid_start")

    def status(self, st: dict) -> str:
        if not self.shim_alive(st) or (self.dir / "exit").exists():
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
