"""Running `nanovisor build` / `nanovisor commit` as a user would, and writing build contexts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# Until the verbs are registered in cli/main.py VERBS, run them through the same main() with them added.
_MAIN = ("import sys; from nanovisor.cli import main as m; "
         "m.VERBS.setdefault('build', ('build', 'cmd_build')); "
         "m.VERBS.setdefault('commit', ('build', 'cmd_commit')); sys.exit(m.main(sys.argv[1:]))")


def nvb(root: Path, *args: str, input: str | bytes | None = None, cwd: Path | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess:
    text = not isinstance(input, bytes)
    return subprocess.run([sys.executable, "-c", _MAIN, "--root", str(root), *args], input=input,
                          capture_output=True, text=text, timeout=timeout, cwd=cwd)


def write_context(path: Path, files: dict[str, str | bytes]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        p = path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)
    return path


def container_ids(root: Path) -> set[str]:
    out = nvb(root, "ps", "-aq", "--no-trunc").stdout
    return set(out.split())
