"""The one table of runtimes. Isolation is chosen here and nowhere above: `--isolation=vm|hyperv` and
`--runtime nanovisor-vm` both name the VM runtime; everything else gets the default process runtime."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

from nanovisor.errors import InvalidParameter
from nanovisor.runtime.oci import OCIRuntime

DEFAULT_RUNTIME = "runc"
VM_RUNTIME = "nanovisor-vm"
_BINARIES = {"runc": ("runc", "process"), "crun": ("crun", "process"),
             VM_RUNTIME: ("nanovisor-vm-runtime", "vm")}
_ISOLATIONS = {"": None, "default": None, "process": None, "vm": VM_RUNTIME, "hyperv": VM_RUNTIME}


def _find(binary: str) -> str | None:
    if binary == "nanovisor-vm-runtime":  # its C fast path when built, else the Python console script
        from nanovisor.runtime.vm import runtime_binary

        return runtime_binary()
    return shutil.which(binary)


class RuntimeRegistry:
    def __init__(self, state_dir: Path) -> None:
        self.runtimes = {name: OCIRuntime(name, functools.partial(_find, binary), state_dir / name, kind)
                         for name, (binary, kind) in _BINARIES.items()}

    def get(self, name: str) -> OCIRuntime:
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
        name = runtime or by_isolation or DEFAULT_RUNTIME
        self.get(name)
        return name

    def info(self) -> dict:
        return {name: rt.describe() for name, rt in self.runtimes.items() if rt.available()}
