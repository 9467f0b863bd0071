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
    def tmp(self) -> Path:
        return self.root / "tmp"

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

    def ensure(self) -> None:
        for p in (self.root, self.blobs, self.layers, self.containers, self.volumes, self.tmp,
                  self.run_containers, self.exits, self.runtime_state, self.netns):
            p.mkdir(parents=True, exist_ok=True)
        owner = self.run / "root"  # names the root this runtime state belongs to (cleanup, reconciliation)
        if not owner.exists():
            owner.write_text(str(self.root))
