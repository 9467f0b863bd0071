"""Where an engine keeps its data. Several engines (and test runs) coexist by using different roots;
embedded CLI and `serve` on one root share everything below it."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ROOT = Path("/var/lib/nanovisor")
DEFAULT_RUN = Path("/run/nanovisor")
DEFAULT_SOCKET = DEFAULT_RUN / "docker.sock"


@dataclass(frozen=True)
class Paths:
    """All locations derived from one data root.

    Runtime state (bundles, attach sockets, exit files) lives on tmpfs under /run so it vanishes with a
    reboot, in a short per-root directory: conmon's attach socket path must stay under 108 bytes.
    """

    root: Path
    run: Path

    @classmethod
    def for_root(cls, root: str | os.PathLike | None = None) -> Paths:
        root = Path(root or os.environ.get("NANOVISOR_ROOT") or DEFAULT_ROOT).absolute()
        if root == DEFAULT_ROOT:
            run = DEFAULT_RUN
        else:
            run = DEFAULT_RUN / ("r-" + hashlib.sha256(str(root).encode()).hexdigest()[:10])
        return cls(root=root, run=run)

    @property
    def db(self) -> Path:
        return self.root / "nanovisor.db"

    @property
    def blobs(self) -> Path:
        return self.root / "blobs" / "sha256"

    @property
    def layers(self) -> Path:
        return self.root / "layers"

    @property
    def containers(self) -> Path:
        return self.root / "containers"

    @property
    def volumes(self) -> Path:
        return self.root / "volumes"

    @property
    def tmp_root(self) -> Path:
        """Every temporary file of the engine lives below it: start-up and `system prune` clean it."""
        return self.root / "tmp"

    @property
    def tmp(self) -> Path:
        """This process's scratch directory (build contexts, unpacking layers, spooled uploads):
        tmp/<pid>-<start time>, made on first use and removed at exit; what a killed process left is
        removed by the next start-up (engine/recovery.py), which tells it is dead by its name."""
        return _process_tmp(self.root / "tmp")

    @property
    def run_containers(self) -> Path:
        return self.run / "c"

    @property
    def exits(self) -> Path:
        return self.run / "exits"

    @property
    def runtime_state(self) -> Path:
        """--root passed to runc/crun/the VM runtime."""
        return self.run / "runtime"

    @property
    def netns(self) -> Path:
        return self.run / "netns"

    def container_dir(self, cid: str) -> Path:
        return self.containers / cid

    def bundle_dir(self, cid: str) -> Path:
        return self.run_containers / cid

    def private_modes(self) -> dict[Path, int]:
        """Each directory of the engine and its mode: reachable by root only (Docker's answer to
        CVE-2021-41091: an image layer or a container's tree holds setuid binaries and secrets, so no
        other user may traverse into it). /run/nanovisor itself stays 0711: it holds the API socket, whose own
        mode (and group) decides who may talk to the daemon."""
        modes = {self.root: 0o710, self.root / "blobs": 0o700, self.blobs: 0o700, self.layers: 0o700,
                 self.containers: 0o710, self.volumes: 0o700, self.tmp_root: 0o700}
        if self.run != DEFAULT_RUN:
            modes[DEFAULT_RUN] = 0o711
        modes[self.run] = 0o711 if self.run == DEFAULT_RUN else 0o700
        for p in (self.run_containers, self.exits, self.runtime_state, self.netns):
            modes[p] = 0o700
        return modes

    def ensure(self) -> None:
        """Create the directories with their modes; an existing root gets its modes fixed (roots made by
        older versions were 0755 all the way down)."""
        for p, mode in self.private_modes().items():
            p.mkdir(parents=True, exist_ok=True, mode=mode)
            if p.stat().st_mode & 0o7777 != mode:
                os.chmod(p, mode)
        owner = self.run / "root"  # names the root this runtime state belongs to (cleanup, reconciliation)
        if not owner.exists():
            owner.write_text(str(self.root))


def process_tag(pid: int | None = None) -> str:
    """<pid>-<start time in ticks>: names a process uniquely across pid reuse (scratch dirs, owner marks)."""
    pid = pid or os.getpid()
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        start = int(data[data.rindex(b")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        start = 0
    return f"{pid}-{start}"


_made: dict[Path, Path] = {}  # tmp root → this process's dir in it (made by this pid)


def _process_tmp(tmp_root: Path) -> Path:
    key = tmp_root
    made = _made.get(key)
    if made is not None and made.name.startswith(f"{os.getpid()}-"):
        return made
    path = tmp_root / process_tag()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not _made:
        import atexit

        atexit.register(_remove_process_tmp, os.getpid())
    _made[key] = path
    return path


def _remove_process_tmp(pid: int) -> None:
    import shutil

    if pid != os.getpid():
        return
    for path in _made.values():
        shutil.rmtree(path, ignore_errors=True)
