"""VM isolation: `nanovisor-vm-runtime`, an OCI runtime that runs the bundle inside a QEMU microVM.

The engine treats it exactly like runc (same bundle, same conmon invocation); see cli.py for the commands.
"""

from __future__ import annotations


def runtime_binary() -> str | None:
    """The path conmon should run as the `nanovisor-vm` runtime: the built C fast path (which hands every
    command it does not serve itself to the Python runtime), else the console script, else None."""
    import shutil
    import sys
    from pathlib import Path

    from nanovisor.runtime.vm import guest

    fast = guest.fastpath_path()
    if fast.exists():
        return str(fast)
    script = Path(sys.executable).parent / "nanovisor-vm-runtime"
    if script.exists():
        return str(script)
    return shutil.which("nanovisor-vm-runtime")
