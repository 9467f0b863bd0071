"""/version, /info, /system/df and event filters."""

from __future__ import annotations

import os
import platform
import socket
import time

from nanovisor import API_VERSION, MIN_API_VERSION, __version__
from nanovisor.engine.filters import match_labels
from nanovisor.engine.timefmt import rfc3339


def version() -> dict:
    details = {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "GitCommit": "", "GoVersion": "",
               "Os": "linux", "Arch": "amd64", "KernelVersion": platform.release(), "BuildTime": ""}
    return {"Platform": {"Name": f"nanovisor {__version__}"},
            "Components": [{"Name": "Engine", "Version": __version__, "Details": details}],
            "Version": __version__, **details}


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def info(engine) -> dict:
    counts = {"running": 0, "paused": 0, "stopped": 0}
    total = engine.containers.count()
    for c in engine.containers.iter(statuses=["running", "paused", "restarting"]):  # by index: live ones only
        c = engine.current(c)
        if c.running:
            counts["paused" if c.state.get("Paused") else "running"] += 1
    counts["stopped"] = total - counts["running"] - counts["paused"]
    warnings = []
    if engine.network is None:
        warnings.append("WARNING: bridge networking is not available yet; containers get loopback only")
    return {
        "ID": _engine_id(engine),
        "Containers": total, "ContainersRunning": counts["running"],
        "ContainersPaused": counts["paused"], "ContainersStopped": counts["stopped"],
        "Images": engine.images.count(), "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"]],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"], "Authorization": None,
                    "Log": ["json-file", "k8s-file", "local", "none"]},
        "MemoryLimit": True, "SwapLimit": os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"),
        "CpuCfsPeriod": True, "CpuCfsQuota": True, "CPUShares": True, "CPUSet": True, "PidsLimit": True,
        "IPv4Forwarding": True, "Debug": False, "NFd": len(os.listdir("/proc/self/fd")), "OomKillDisable": True,
        "NGoroutines": 0, "SystemTime": rfc3339(time.time()), "LoggingDriver": engine.log_config["Type"],
        "CgroupDriver": "cgroupfs", "CgroupVersion": "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers")
        else "1", "NEventsListener": 0, "KernelVersion": platform.release(), "OperatingSystem": _os_name(),
        "OSVersion": "", "OSType": "linux", "Architecture": platform.machine(),
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"IndexConfigs": {}, "InsecureRegistryCIDRs": ["127.0.0.0/8"], "Mirrors": []},
        "NCPU": os.cpu_count() or 1, "MemTotal": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "GenericResources": None, "DockerRootDir": str(engine.paths.root), "HttpProxy": "", "HttpsProxy": "",
        "NoProxy": "", "Name": socket.gethostname(), "Labels": [], "ExperimentalBuild": False,
        "ServerVersion": __version__, "Runtimes": engine.runtimes.info(),
        "DefaultRuntime": engine.runtimes.default_name,
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": False,
                  "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": True, "InitBinary": "docker-init",
        "Isolation": engine.runtimes.isolation_of(engine.runtimes.default_name),
        "ContainerdCommit": {"ID": ""}, "RuncCommit": {"ID": ""}, "InitCommit": {"ID": ""},
        "SecurityOptions": ["name=seccomp,profile=builtin"],
        "Warnings": warnings,
    }


def _engine_id(engine) -> str:
    """Made once per root, on first ask."""
    import uuid

    from nanovisor.store.kv import KV

    kv = KV(engine.db)
    return kv.get("engine-id") or kv.setdefault("engine-id", str(uuid.uuid4()).upper())


def df(engine) -> dict:
    from nanovisor.engine.diskusage import du
    from nanovisor.engine.views import summary

    now = time.time()
    images = engine.image_list(all=True)
    containers = []
    for c in engine.containers.list():
        item = summary(c, now)
        item["SizeRw"] = du(engine.paths.container_dir(c.id) / "upper")
        item["SizeRootFs"] = item["SizeRw"] + next((i.get("Size", 0) for i in images if i["Id"] == c.image_id), 0)
        containers.append(item)
    users = engine._volume_users()
    volumes = []
    for v in engine.volumes.list():
        v = dict(v)
        v["UsageData"] = {"Size": engine.volumes.size(v["Name"]), "RefCount": len(users.get(v["Name"], []))}
        volumes.append(v)
    layers = sum(i.get("Size", 0) for i in images)
    return {"LayersSize": layers, "Images": images, "Containers": containers, "Volumes": volumes,
            "BuildCache": []}


def builtin_networks() -> list[dict]:
    out = []
    for name, driver in (("bridge", "bridge"), ("host", "host"), ("none", "null")):
        out.append({"Name": name, "Id": name, "Created": "0001-01-01T00:00:00Z", "Scope": "local",
                    "Driver": driver, "EnableIPv4": True, "EnableIPv6": False,
                    "IPAM": {"Driver": "default", "Options": None, "Config": []}, "Internal": False,
                    "Attachable": False, "Ingress": False, "ConfigFrom": {"Network": ""}, "ConfigOnly": False,
                    "Containers": {}, "Options": {}, "Labels": {}})
    return out


def event_matcher(filters: dict[str, list[str]]):
    def match(msg: dict) -> bool:
        actor = msg.get("Actor") or {}
        attrs = actor.get("Attributes") or {}
        if "type" in filters and msg["Type"] not in filters["type"]:
            return False
        if "event" in filters and msg["Action"].split(":")[0] not in filters["event"] \
                and msg["Action"] not in filters["event"]:
            return False
        if "container" in filters and (msg["Type"] != "container" or not any(
                actor.get("ID", "").startswith(v) or attrs.get("name") == v for v in filters["container"])):
            return False
        if "image" in filters and not any(attrs.get("image") == v or attrs.get("name") == v
                                          or actor.get("ID") == v for v in filters["image"]):
            return False
        if "volume" in filters and (msg["Type"] != "volume" or actor.get("ID") not in filters["volume"]):
            return False
        if "label" in filters and not match_labels(attrs, filters["label"]):
            return False
        return True

    return match
