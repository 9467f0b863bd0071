"""The Runtime protocol: the one seam between the engine and an isolation technology.

Every backend takes the same OCI bundle. Process isolation (runc, crun) and VM isolation (nanovisor-vm) are
both OCI-runtime command lines monitored by conmon, so one implementation (oci.OCIRuntime) serves them all;
a backend that is not a runc-compatible binary would implement this protocol directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from nanovisor.runtime.logfiles import LogSpec


@dataclass
class CreateOptions:
    log: LogSpec                    # where the container's output is kept (runtime/logfiles.py)
    exit_dir: Path
    stdin: bool = False
    stdin_once: bool = False        # close the container's stdin when the first attached client leaves
    tty: bool = False
    exit_command: list[str] | None = None


@dataclass
class Created:
    pid: int            # the container's main process as seen from the host
    monitor_pid: int    # conmon: holds stdio, writes logs and the exit file


class Runtime(Protocol):
    """What the engine asks of a runtime, and all it asks: the engine never branches on which one it has."""

    name: str
    isolation: str  # what `docker ps --filter isolation=` matches and /info shows: "process" or "vm"

    def available(self) -> bool: ...
    def unsupported_reason(self) -> str | None:
        """Why this host cannot run it although it is installed (e.g. its cgroup layout), or None."""
    def create(self, cid: str, bundle: Path, opts: CreateOptions) -> Created: ...
    def start(self, cid: str) -> None: ...
    def kill(self, cid: str, signal: str, all_processes: bool = False) -> None: ...
    def delete(self, cid: str, force: bool = False) -> None: ...
    def exists(self, cid: str) -> bool:
        """Whether the runtime still holds state for cid (cheap: no process is run)."""
    def state(self, cid: str) -> dict | None: ...
    def pause(self, cid: str) -> None: ...
    def resume(self, cid: str) -> None: ...
    def update(self, cid: str, resources: dict) -> None: ...
    def sync_network(self, cid: str) -> None:
        """A running container's network namespace gained or lost interfaces (network connect/disconnect):
        carry that into the container. Nothing to do where the namespace is the container's own stack."""
    def pids(self, cid: str) -> list[int]: ...
    def top(self, cid: str, ps_args: str) -> dict:
        """`docker top`: {"Titles": [...], "Processes": [[...], ...]}."""
    def stats(self, cid: str) -> dict: ...
    def exec_command(self, cid: str, process_file: Path, tty: bool, detach: bool,
                     console_socket: Path | None, pid_file: Path | None) -> list[str]: ...
    def describe(self) -> dict:
        """Its /info "Runtimes" entry: {"path": ..., "status": {...}}."""

    @property
    def network_shareable(self) -> bool:
        """Whether another container can join this one's network namespace (--network container:X)."""

    @property
    def reads_network_at_create(self) -> bool:
        """Whether the netns must be fully plumbed before create (else plumbing overlaps create)."""
