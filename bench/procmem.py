"""Host memory of a process as the benchmarks report it: RSS and PSS from /proc/PID/smaps_rollup."""

from __future__ import annotations


def memory_of(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in kB; FileNotFoundError when the process is gone."""
    rss = pss = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    return rss, pss
