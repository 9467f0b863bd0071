"""A Docker-shaped container definition → the OCI runtime spec (config.json), with Docker's defaults.

build_spec() follows moby's createSpec (oci/defaults.go + daemon/oci_linux.go): default mounts, masked and
read-only paths, capabilities, seccomp, device cgroup, namespaces, resources and the process.
build_exec_process() derives the process of `docker exec` from the container's spec. merge_config() lives in
spec_config.py and is re-exported here. The same spec feeds every runtime (runc, crun, the VM runtime);
nothing here depends on which one runs it.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field

from nanovisor.errors import InvalidParameter
from nanovisor.runtime import seccomp, spec_caps, spec_resources
from nanovisor.runtime.spec_config import _strslice, merge_config, replace_or_append_env
from nanovisor.runtime.spec_mounts import (
    INIT_IN_CONTAINER,
    build_mounts,
    find_init,
)
from nanovisor.runtime.users import resolve_user, scoped_path

__all__ = ["SpecInput", "build_exec_process", "build_spec", "merge_config", "parse_security_opt"]

OCI_VERSION = "1.0.2"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

DEFAULT_MASKED_PATHS = [
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
]
DEFAULT_READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


# ------------------------------------------------------------------------------------------------------
# build_spec
# ------------------------------------------------------------------------------------------------------
@dataclass
class SpecInput:
    container_id: str
    config: dict            # the merged Docker Config (merge_config's output, Hostname decided)
    host_config: dict       # Docker HostConfig as posted (Binds etc. already turned into `mounts`)
    rootfs: str             # absolute path of the mounted rootfs
    mounts: list[dict]      # extra OCI mounts resolved by the engine, overriding defaults at their destination
    netns_path: str | None  # network namespace to join; None: host network (a fresh empty one for "none")
    cgroups_path: str       # e.g. "/nanovisor/<id>"
    init_path: str | None = None    # host path of a static init bound at /sbin/docker-init for Init
    ns_paths: dict[str, str] = field(default_factory=dict)  # "pid"/"ipc" → /proc/N/ns/X for container:<id>


@dataclass
class SecurityOptions:
    no_new_privileges: bool = False
    seccomp: str = ""           # "" = default profile, "unconfined", JSON text or a file path
    unconfined_paths: bool = False


def parse_security_opt(opts: list[str] | None) -> SecurityOptions:
    """HostConfig.SecurityOpt by moby's parseSecurityOpt (label/apparmor accepted and ignored)."""
    out = SecurityOptions()
    for opt in opts or []:
        if opt == "no-new-privileges":
            out.no_new_privileges = True
            continue
        if opt == "disable":
            continue
        if "=" in opt:
            key, _, value = opt.partition("=")
        elif ":" in opt:
            key, _, value = opt.partition(":")
        else:
            raise InvalidParameter(f"invalid --security-opt 1: {json.dumps(opt)}")
        if key in ("label", "apparmor"):
            continue
        if key == "seccomp":
            out.seccomp = value
        elif key == "no-new-privileges":
            truth = {"1": True, "t": True, "T": True, "true": True, "TRUE": True, "True": True,
                     "0": False, "f": False, "F": False, "false": False, "FALSE": False, "False": False}
            if value not in truth:
                raise InvalidParameter(f"invalid --security-opt 2: {json.dumps(opt)}")
            out.no_new_privileges = truth[value]
        elif key == "systempaths" and value == "unconfined":
            out.unconfined_paths = True
        else:
            raise InvalidParameter(f"invalid --security-opt 2: {json.dumps(opt)}")
    return out


def _check_mode(kind: str, mode: str, allowed: tuple[str, ...], container_ok: bool) -> None:
    if mode in allowed or (container_ok and mode.startswith("container:") and len(mode) > 10):
        return
    raise InvalidParameter(f"invalid {kind} mode: {mode}")


def _cgroup_v2() -> bool:
    return os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def _ns_path(inp: SpecInput, kind: str, mode: str) -> str:
    path = inp.ns_paths.get(kind)
    if not path:
        raise InvalidParameter(f"invalid {kind.upper()} mode: {mode}: no namespace path for the container")
    return path


def namespaces(inp: SpecInput) -> list[dict]:
    """mount, network, uts, pid, ipc (+cgroup) as Docker sets them for the HostConfig modes."""
    hc = inp.host_config
    ipc, pid = hc.get("IpcMode") or "", hc.get("PidMode") or ""
    uts, cgroupns = hc.get("UTSMode") or "", hc.get("CgroupnsMode") or ""
    _check_mode("IPC", ipc, ("", "host", "private", "shareable", "none"), True)
    _check_mode("PID", pid, ("", "host"), True)
    _check_mode("UTS", uts, ("", "host"), False)
    _check_mode("cgroup namespace", cgroupns, ("", "host", "private"), False)
    out: list[dict] = [{"type": "mount"}]
    if inp.netns_path:
        out.append({"type": "network", "path": inp.netns_path})
    elif (hc.get("NetworkMode") or "") == "none" or inp.config.get("NetworkDisabled"):
        out.append({"type": "network"})
    if uts != "host":
        out.append({"type": "uts"})
    if pid.startswith("container:"):
        out.append({"type": "pid", "path": _ns_path(inp, "pid", pid)})
    elif pid != "host":
        out.append({"type": "pid"})
    if ipc.startswith("container:"):
        out.append({"type": "ipc", "path": _ns_path(inp, "ipc", ipc)})
    elif ipc != "host":
        out.append({"type": "ipc"})
    if cgroupns == "private" or (cgroupns == "" and _cgroup_v2()):
        out.append({"type": "cgroup"})
    return out


def container_env(config: dict, tty: bool) -> list[str]:
    """moby's CreateDaemonEnvironment: PATH, HOSTNAME, TERM=xterm with a TTY, then the container's Env."""
    base = [f"PATH={DEFAULT_PATH}", f"HOSTNAME={config.get('Hostname') or ''}"]
    if tty:
        base.append("TERM=xterm")
    return replace_or_append_env(base, list(config.get("Env") or []))


def process_args(config: dict) -> list[str]:
    entrypoint = _strslice(config.get("Entrypoint")) or []
    if entrypoint == [""]:
        entrypoint = []
    args = entrypoint + (_strslice(config.get("Cmd")) or [])
    if not args:
        raise InvalidParameter("no command specified")
    return args


def _current_oom_score_adj() -> int:
    try:
        with open("/proc/self/oom_score_adj") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 0


def oom_score_adj(value: int) -> int:
    """Lowering oom_score_adj below the engine's own needs CAP_SYS_RESOURCE; without it, clamp."""
    if "CAP_SYS_RESOURCE" in spec_caps.host_bounding():
        return value
    return max(value, _current_oom_score_adj())


def _console_size(value) -> dict | None:
    if value and len(value) == 2 and (value[0] or value[1]):
        return {"height": int(value[0]), "width": int(value[1])}
    return None


def _ensure_workdir(rootfs: str, cwd: str) -> None:
    """Docker creates a missing WorkingDir (root-owned, 0755) before the start."""
    if cwd in ("", "/"):
        return
    host = scoped_path(rootfs, cwd)
    if os.path.exists(host):
        if not os.path.isdir(host):
            raise InvalidParameter(f"Cannot mkdir: {cwd} is not a directory")
        return
    try:
        os.makedirs(host, mode=0o755, exist_ok=True)
    except OSError as e:
        raise InvalidParameter(f"Cannot mkdir: {cwd}: {e.strerror}") from None


def build_spec(inp: SpecInput) -> dict:
    """The OCI config.json for a container, as Docker would hand it to runc."""
    cfg, hc = inp.config, inp.host_config
    spec_resources.validate_host_config(hc)
    sec = parse_security_opt(hc.get("SecurityOpt"))
    privileged = bool(hc.get("Privileged"))
    tty = bool(cfg.get("Tty"))
    caps = spec_caps.container_caps(hc)
    uid, gid, gids = resolve_user(inp.rootfs, cfg.get("User") or "", hc.get("GroupAdd") or [])

    pid_private = (hc.get("PidMode") or "") == ""
    init = bool(hc.get("Init")) and pid_private
    args = process_args(cfg)
    if init:
        args = [INIT_IN_CONTAINER, "--", *args]
    cwd = cfg.get("WorkingDir") or "/"

    process: dict = {"terminal": tty}
    size = _console_size(hc.get("ConsoleSize"))
    if size and tty:
        process["consoleSize"] = size
    process.update({
        "user": {"uid": uid, "gid": gid, "additionalGids": gids},
        "args": args,
        "env": container_env(cfg, tty),
        "cwd": cwd,
        "capabilities": spec_caps.oci_capabilities(caps, uid),
    })
    limits = spec_resources.rlimits(hc.get("Ulimits"))
    if limits:
        process["rlimits"] = limits
    process["noNewPrivileges"] = sec.no_new_privileges
    process["oomScoreAdj"] = oom_score_adj(int(hc.get("OomScoreAdj") or 0))

    ns = namespaces(inp)
    ns_types = {n["type"] for n in ns}
    network_mode = hc.get("NetworkMode") or ""
    private_net = "network" in ns_types and network_mode != "host" and not network_mode.startswith("container:")
    sysctl = spec_resources.sysctls(hc, private_net, "network" in ns_types, "ipc" in ns_types, "uts" in ns_types)
    if cfg.get("Domainname") and "uts" in ns_types:
        sysctl.setdefault("kernel.domainname", cfg["Domainname"])

    devices, device_rules = spec_resources.linux_devices(hc)
    res = spec_resources.resources(hc)
    res["devices"] = device_rules

    linux: dict = {
        "resources": res,
        "cgroupsPath": inp.cgroups_path,
        "namespaces": ns,
        "devices": devices,
    }
    if sysctl:
        linux["sysctl"] = sysctl
    # moby's WithSeccomp: an explicit profile applies even to --privileged, the default one does not
    custom = sec.seccomp.strip() not in ("", "builtin")
    if custom or not privileged:
        profile = seccomp.load_profile(sec.seccomp)
        oci = seccomp.to_oci(profile, caps) if profile is not None else None
        if oci:
            linux["seccomp"] = oci
    if privileged or sec.unconfined_paths:
        masked, readonly = [], []
    else:
        masked = hc["MaskedPaths"] if hc.get("MaskedPaths") is not None else DEFAULT_MASKED_PATHS
        readonly = hc["ReadonlyPaths"] if hc.get("ReadonlyPaths") is not None else DEFAULT_READONLY_PATHS
    if masked:
        linux["maskedPaths"] = list(masked)
    if readonly:
        linux["readonlyPaths"] = list(readonly)

    mounts = build_mounts(inp.mounts, hc, bool(hc.get("ReadonlyRootfs")), privileged,
                          find_init(inp.init_path) if init else None)
    _ensure_workdir(inp.rootfs, cwd)  # the only change to the rootfs: made once everything else is valid
    spec: dict = {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": inp.rootfs, "readonly": bool(hc.get("ReadonlyRootfs"))},
    }
    if "uts" in ns_types:
        spec["hostname"] = cfg.get("Hostname") or ""
    spec["mounts"] = mounts
    annotations = {str(k): str(v) for k, v in (cfg.get("Labels") or {}).items()}
    annotations.update({str(k): str(v) for k, v in (hc.get("Annotations") or {}).items()})
    if annotations:
        spec["annotations"] = annotations
    spec["linux"] = linux
    return spec


# ------------------------------------------------------------------------------------------------------
# exec
# ------------------------------------------------------------------------------------------------------
def build_exec_process(spec: dict, exec_body: dict, rootfs: str) -> dict:
    """The OCI process for `runc exec --process` from POST /containers/{id}/exec's body.

    Like Docker: the container's env (re-derived for the exec's TTY) with the exec's Env applied, its cwd
    unless WorkingDir is given, its user unless User is given, its capabilities (all of them for
    Privileged), rlimits, no_new_privileges and oom_score_adj.
    """
    base = spec.get("process") or {}
    cmd = _strslice(exec_body.get("Cmd")) or []
    if not cmd:
        raise InvalidParameter("No exec command specified")
    tty = bool(exec_body.get("Tty"))

    env = list(base.get("env") or [])
    if tty and not any(e.startswith("TERM=") for e in env):
        env.insert(2 if len(env) >= 2 else len(env), "TERM=xterm")
    elif not tty and base.get("terminal") and "TERM=xterm" in env:
        env.remove("TERM=xterm")
    env = replace_or_append_env(env, list(exec_body.get("Env") or []))

    user = copy.deepcopy(base.get("user") or {"uid": 0, "gid": 0})
    if exec_body.get("User"):
        uid, gid, gids = resolve_user(rootfs, exec_body["User"])
        user = {"uid": uid, "gid": gid, "additionalGids": gids}

    caps = list((base.get("capabilities") or {}).get("bounding") or [])
    if exec_body.get("Privileged"):
        have = spec_caps.host_bounding()
        caps = [c for c in spec_caps.all_caps() if c in have]

    process: dict = {"terminal": tty}
    size = _console_size(exec_body.get("ConsoleSize"))
    if size and tty:
        process["consoleSize"] = size
    process.update({
        "user": user,
        "args": cmd,
        "env": env,
        "cwd": exec_body.get("WorkingDir") or base.get("cwd") or "/",
        "capabilities": spec_caps.oci_capabilities(caps, int(user.get("uid", 0))),
    })
    for key in ("rlimits", "apparmorProfile", "selinuxLabel"):
        if base.get(key):
            process[key] = copy.deepcopy(base[key])
    process["noNewPrivileges"] = bool(base.get("noNewPrivileges"))
    if "oomScoreAdj" in base:
        process["oomScoreAdj"] = base["oomScoreAdj"]
    return process
