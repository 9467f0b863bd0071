"""The one table of runtimes. Isolation is chosen here and nowhere above: `--isolation=vm|hyperv` and
`--runtime nanovisor-vm` both name the VM runtime; everything else gets the default process runtime.

A new runtime is added by one line in _BACKENDS: the engine, /info and the conformance suite
(tests/conformance) all take their runtimes from this table.
"""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

from nanovisor.errors import InvalidParameter
from nanovisor.runtime.base import Runtime
from nanovisor.runtime.oci import OCIRuntime

DEFAULT_RUNTIME = "runc"
VM_RUNTIME = "nanovisor-vm"
_ISOLATIONS = {"": None, "default": None, "process": None, "vm": VM_RUNTIME, "hyperv": VM_RUNTIME}


def _find(binary: str) -> str | None:
    if binary == "nanovisor-vm-runtime":  # its C fast path when built, else the Python console script
        from nanovisor.runtime.vm import runtime_binary

        return runtime_binary()
    return shutil.which(binary)


def _vm_status() -> dict:
    """Which accelerator the microVM uses and why (docker info shows it under the runtime)."""
    try:
        from nanovisor.runtime.vm.accel import describe
    except ImportError:
        return {"available": False, "reason": "VM runtime not installed"}
    return describe()


def _crun_refusal() -> str | None:
    """crun refuses a cgroup v1 host whose unified (v2) mount has controllers enabled, with "cgroups in
    hybrid mode not supported, drop all controllers from cgroupv2"; runc runs there."""
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():
        return None  # cgroup v2 only
    try:
        controllers = Path("/sys/fs/cgroup/unified/cgroup.controllers").read_text().split()
    except OSError:
        return None  # cgroup v1 only
    if not controllers:
        return None
    return (f"cgroup v1 hybrid layout with controllers in the v2 hierarchy ({' '.join(controllers)}): "
            "crun refuses it (cgroups in hybrid mode not supported)")


# name: (binary, isolation, extra /info status, why this host cannot run it)
_BACKENDS = {
    "runc": ("runc", "process", None, None),
    "crun": ("crun", "process", None, _crun_refusal),
    VM_RUNTIME: ("nanovisor-vm-runtime", "vm", _vm_status, None),
}


class RuntimeRegistry:
    default_name = DEFAULT_RUNTIME

    def __init__(self, state_dir: Path) -> None:
        self.runtimes: dict[str, Runtime] = {
            name: OCIRuntime(name, functools.partial(_find, binary), state_dir / name, isolation, status, refusal)
            for name, (binary, isolation, status, refusal) in _BACKENDS.items()}

    def get(self, name: str) -> Runtime:
        runtime = self.runtimes.get(name)
        if runtime is None:
            raise InvalidParameter(f"unknown or invalid runtime name: {name}")
        return runtime

    def choose(self, isolation: str | None, runtime: str | None) -> str:
        """The runtime name for HostConfig.Isolation / HostConfig.Runtime as a user gave them."""
        iso = (isolation or "").lower()
        if iso not in _ISOLATIONS:
            raise InvalidParameter(f"invalid isolation: {isolation!r} (use process, vm or hyperv)")
        by_isolation = _ISOLATIONS[iso]
        if runtime and by_isolation and runtime != by_isolation:
            raise InvalidParameter(f"conflicting options: isolation {isolation!r} and runtime {runtime!r}")
        name = runtime or by_isolation or self.default_name
        self.get(name)
        return name

    def isolation_of(self, name: str) -> str:
        """A container's isolation from its runtime's name ("process" for one no longer registered)."""
        runtime = self.runtimes.get(name)
        return runtime.isolation if runtime is not None else "process"

    def info(self) -> dict:
        """/info "Runtimes": each installed runtime's path and status (the VM runtime's accelerator)."""
        return {name: rt.describe() for name, rt in self.runtimes.items() if rt.available()}
