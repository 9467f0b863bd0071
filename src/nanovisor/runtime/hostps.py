"""`docker top` for containers on the host kernel: the host's ps, filtered to the container's pids."""

from __future__ import annotations

import shlex
import subprocess

from nanovisor.errors import InvalidParameter


def top(pids: list[int], ps_args: str = "-ef") -> dict:
    """Runs the host's ps like dockerd does and keeps the rows of the container's processes."""
    try:
        args = shlex.split(ps_args or "-ef")
    except ValueError as e:  # an unbalanced quote
        raise InvalidParameter(f"invalid ps_args {ps_args[:100]!r}: {e}") from None
    proc = subprocess.run(["ps", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise InvalidParameter(f"Error running ps: {proc.stderr.strip()}")
    lines = proc.stdout.splitlines()
    if not lines:
        return {"Titles": [], "Processes": []}
    titles = lines[0].split()
    try:
        pid_col = titles.index("PID")
    except ValueError:
        raise InvalidParameter("Couldn't find PID field in ps output") from None
    wanted = {str(p) for p in pids}
    rows = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        if len(fields) > pid_col and fields[pid_col] in wanted:
            rows.append(fields)
    return {"Titles": titles, "Processes": rows}
