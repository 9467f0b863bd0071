"""`stats`: what a running container is doing, from the runtime and the host's /proc."""

from __future__ import annotations

import os
import time

from nanovisor.engine.timefmt import rfc3339

_TICKS = os.sysconf("SC_CLK_TCK")


def system_cpu_ns() -> int:
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:8]
    return int(sum(int(x) for x in fields) * 1e9 / _TICKS)


def _net(pid: int) -> dict:
    nets = {}
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            for line in f.readlines()[2:]:
                name, data = line.split(":", 1)
                v = [int(x) for x in data.split()]
                name = name.strip()
                if name == "lo":
                    continue
                nets[name] = {"rx_bytes": v[0], "rx_packets": v[1], "rx_errors": v[2], "rx_dropped": v[3],
                              "tx_bytes": v[8], "tx_packets": v[9], "tx_errors": v[10], "tx_dropped": v[11]}
    except OSError:
        pass
    return nets


def stats(c, runtime) -> dict:
    """One sample in Docker's stats shape (precpu_stats is the caller's: it keeps the previous sample)."""
    now = time.time()
    base = {"read": rfc3339(now), "preread": "0001-01-01T00:00:00Z", "name": "/" + c.name, "id": c.id,
            "num_procs": 0, "pids_stats": {}, "blkio_stats": {"io_service_bytes_recursive": None},
            "cpu_stats": {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
                          "system_cpu_usage": system_cpu_ns(), "online_cpus": os.cpu_count() or 1,
                          "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}},
            "memory_stats": {}, "networks": {}}
    if runtime is None:
        return base
    data = runtime.stats(c.id)
    cpu = data.get("cpu") or {}
    usage = cpu.get("usage") or {}
    base["cpu_stats"]["cpu_usage"] = {
        "total_usage": usage.get("total", 0), "percpu_usage": usage.get("percpu") or None,
        "usage_in_kernelmode": usage.get("kernel", 0), "usage_in_usermode": usage.get("user", 0)}
    thr = cpu.get("throttling") or {}
    base["cpu_stats"]["throttling_data"] = {"periods": thr.get("periods", 0),
                                            "throttled_periods": thr.get("throttledPeriods", 0),
                                            "throttled_time": thr.get("throttledTime", 0)}
    mem = data.get("memory") or {}
    mu = mem.get("usage") or {}
    limit = mu.get("limit", 0)
    if not limit or limit > (1 << 62):
        limit = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    base["memory_stats"] = {"usage": mu.get("usage", 0), "max_usage": mu.get("max", 0),
                            "failcnt": mu.get("failcnt", 0), "limit": limit, "stats": mem.get("raw") or {}}
    pids = data.get("pids") or {}
    base["pids_stats"] = {"current": pids.get("current", 0), **({"limit": pids["limit"]}
                                                                  if pids.get("limit") else {})}
    blk = (data.get("blkio") or {}).get("ioServiceBytesRecursive")
    if blk:
        base["blkio_stats"]["io_service_bytes_recursive"] = [
            {"major": e.get("major", 0), "minor": e.get("minor", 0), "op": e.get("op", ""),
             "value": e.get("value", 0)} for e in blk]
    base["networks"] = _net(c.state.get("Pid", 0))
    return base
