"""`run`/`create` flags → the POST /containers/create body, as the docker CLI builds it."""

from __future__ import annotations

import argparse
import shlex

from nanovisor.errors import InvalidParameter


def add_run_options(p: argparse.ArgumentParser) -> None:
    a = p.add_argument
    a("-d", "--detach", action="store_true")
    a("-i", "--interactive", action="store_true")
    a("-t", "--tty", action="store_true")
    a("--rm", action="store_true")
    a("--name")
    a("-e", "--env", action="append", default=[])
    a("--env-file", action="append", default=[])
    a("-w", "--workdir")
    a("-u", "--user")
    a("--entrypoint")
    a("-l", "--label", action="append", default=[])
    a("-h", "--hostname")
    a("--domainname")
    a("--read-only", action="store_true")
    a("--tmpfs", action="append", default=[])
    a("-v", "--volume", action="append", default=[])
    a("--mount", action="append", default=[])
    a("-m", "--memory")
    a("--memory-swap")
    a("--memory-reservation")
    a("--cpus")
    a("--cpu-shares", "-c", type=int)
    a("--cpuset-cpus")
    a("--pids-limit", type=int)
    a("--cap-add", action="append", default=[])
    a("--cap-drop", action="append", default=[])
    a("--privileged", action="store_true")
    a("--init", action="store_true")
    a("--restart", default="no")
    a("--stop-signal")
    a("--stop-timeout", type=int)
    a("--log-opt", action="append", default=[])
    a("--log-driver")
    a("--network", "--net", default="")
    a("--network-alias", action="append", default=[])
    a("--ip")
    a("--isolation", default="")
    a("--runtime", default="")
    a("--security-opt", action="append", default=[])
    a("--ulimit", action="append", default=[])
    a("--add-host", action="append", default=[])
    a("--dns", action="append", default=[])
    a("--dns-search", action="append", default=[])
    a("--dns-option", action="append", default=[])
    a("-p", "--publish", action="append", default=[])
    a("-P", "--publish-all", action="store_true")
    a("--expose", action="append", default=[])
    a("--shm-size")
    a("--device", action="append", default=[])
    a("--group-add", action="append", default=[])
    a("--sysctl", action="append", default=[])
    a("--oom-score-adj", type=int)
    a("--platform")
    a("--pull")
    a("--sig-proxy", default="true")
    a("--detach-keys")
    a("-a", "--attach", action="append", default=[])
    a("--health-cmd")
    a("--health-interval")
    a("--health-timeout")
    a("--health-retries", type=int)
    a("--health-start-period")
    a("--health-start-interval")
    a("--no-healthcheck", action="store_true")
    a("image")
    a("command", nargs=argparse.REMAINDER)


def _healthcheck(args: argparse.Namespace) -> dict | None:
    """Config.Healthcheck as the docker CLI sends it: only what the flags set (the image fills the rest)."""
    from nanovisor.units import parse_duration

    timing = {"Interval": ("--health-interval", args.health_interval),
              "Timeout": ("--health-timeout", args.health_timeout),
              "StartPeriod": ("--health-start-period", args.health_start_period),
              "StartInterval": ("--health-start-interval", args.health_start_interval)}
    if args.no_healthcheck:
        if args.health_cmd or any(v for _, v in timing.values()) or args.health_retries:
            raise InvalidParameter("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if not args.health_cmd and not any(v for _, v in timing.values()) and not args.health_retries:
        return None
    health: dict = {"Test": ["CMD-SHELL", args.health_cmd] if args.health_cmd else None}
    for key, (flag, text) in timing.items():
        if text:
            health[key] = parse_duration(text, flag)
    if args.health_retries is not None:
        if args.health_retries < 0:
            raise InvalidParameter("--health-retries cannot be negative")
        health["Retries"] = args.health_retries
    return health


def _size(text: str | None) -> int:
    from nanovisor.units import parse_size

    return parse_size(text) if text else 0


def _kv_list(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        k, eq, v = item.partition("=")
        if not k:
            raise InvalidParameter(f"invalid {what}: {item}")
        out[k] = v
    return out


def _env(args) -> list[str]:
    import os

    env = []
    for path in args.env_file:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#"):
                    env.append(line if "=" in line else f"{line}={os.environ.get(line, '')}")
    for item in args.env:
        env.append(item if "=" in item else f"{item}={os.environ.get(item, '')}")
    return env


def _restart(text: str) -> dict:
    name, _, count = (text or "no").partition(":")
    if count and not count.isdigit():
        raise InvalidParameter("invalid restart policy format: maximum retry count must be an integer")
    return {"Name": name, "MaximumRetryCount": int(count or 0)}


def _ulimits(items: list[str]) -> list[dict]:
    out = []
    for item in items:
        name, _, values = item.partition("=")
        soft, _, hard = values.partition(":")
        out.append({"Name": name, "Soft": int(soft), "Hard": int(hard or soft)})
    return out


def _mount(text: str) -> dict:
    fields = dict(f.partition("=")[::2] for f in text.split(","))
    kind = fields.get("type", "volume")
    m = {"Type": kind, "Source": fields.get("source") or fields.get("src") or "",
         "Target": fields.get("target") or fields.get("destination") or fields.get("dst") or "",
         "ReadOnly": "readonly" in fields or "ro" in fields or fields.get("readonly") == "true"}
    if kind == "tmpfs":
        m["TmpfsOptions"] = {"SizeBytes": _size(fields.get("tmpfs-size")) or 0}
        if fields.get("tmpfs-mode"):
            m["TmpfsOptions"]["Mode"] = int(fields["tmpfs-mode"], 8)
    if kind == "volume" and "volume-nocopy" in fields:
        m["VolumeOptions"] = {"NoCopy": True}
    return m


def _ports(publish: list[str], expose: list[str]) -> tuple[dict, dict]:
    exposed: dict = {}
    bindings: dict = {}
    for item in expose:
        port, _, proto = item.partition("/")
        lo, _, hi = port.partition("-")
        for n in range(int(lo), int(hi or lo) + 1):
            exposed[f"{n}/{proto or 'tcp'}"] = {}
    for item in publish:
        spec, _, proto = item.partition("/")
        proto = proto or "tcp"
        parts = spec.rsplit(":", 2) if not spec.startswith("[") else [spec]
        if len(parts) == 1:
            host_ip, host_port, ctr = "", "", parts[0]
        elif len(parts) == 2:
            host_ip, (host_port, ctr) = "", parts
        else:
            host_ip, host_port, ctr = parts
        c_lo, _, c_hi = ctr.partition("-")
        h_lo, _, h_hi = host_port.partition("-")
        count = int(c_hi or c_lo) - int(c_lo) + 1
        for i in range(count):
            key = f"{int(c_lo) + i}/{proto}"
            exposed[key] = {}
            hp = ""
            if h_lo:
                hp = str(int(h_lo) + i) if (h_hi or count > 1) else h_lo
            bindings.setdefault(key, []).append({"HostIp": host_ip, "HostPort": hp})
    return exposed, bindings


def _security_opts(items: list[str]) -> list[str]:
    """seccomp=FILE becomes seccomp=<the file's JSON>, as the docker CLI sends it: the daemon reads no file."""
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if key == "seccomp" and sep:
            from nanovisor.runtime.seccomp import read_profile_file

            item = "seccomp=" + read_profile_file(value)
        out.append(item)
    return out


def body_from_args(args) -> tuple[dict, str | None]:
    env = _env(args)
    labels = _kv_list(args.label, "label")
    exposed, bindings = _ports(args.publish, args.expose)
    log_config = _kv_list(args.log_opt, "log option")
    memory = _size(args.memory)
    swap = -1 if args.memory_swap == "-1" else _size(args.memory_swap)
    tmpfs = {}
    for item in args.tmpfs:
        path, _, opts = item.partition(":")
        tmpfs[path] = opts
    nano_cpus = int(float(args.cpus) * 1e9) if args.cpus else 0
    devices = []
    for item in args.device:
        parts = item.split(":")
        devices.append({"PathOnHost": parts[0], "PathInContainer": parts[1] if len(parts) > 1 else parts[0],
                        "CgroupPermissions": parts[2] if len(parts) > 2 else "rwm"})
    host_config = {
        "Binds": args.volume or None, "Mounts": [_mount(m) for m in args.mount] or None,
        "Tmpfs": tmpfs or None, "ReadonlyRootfs": args.read_only, "Memory": memory,
        "MemorySwap": swap, "MemoryReservation": _size(args.memory_reservation), "NanoCpus": nano_cpus,
        "CpuShares": args.cpu_shares or 0, "CpusetCpus": args.cpuset_cpus or "",
        "PidsLimit": args.pids_limit, "CapAdd": args.cap_add or None, "CapDrop": args.cap_drop or None,
        "Privileged": args.privileged, "Init": True if args.init else None,
        "RestartPolicy": _restart(args.restart), "AutoRemove": args.rm,
        "LogConfig": {"Type": args.log_driver or "", "Config": log_config},
        "NetworkMode": args.network or "default", "Isolation": args.isolation, "Runtime": args.runtime,
        "SecurityOpt": _security_opts(args.security_opt) or None, "Ulimits": _ulimits(args.ulimit) or None,
        "ExtraHosts": args.add_host or None, "Dns": args.dns, "DnsSearch": args.dns_search,
        "DnsOptions": args.dns_option, "PortBindings": bindings, "PublishAllPorts": args.publish_all,
        "ShmSize": _size(args.shm_size) or None, "Devices": devices or None, "GroupAdd": args.group_add or None,
        "Sysctls": _kv_list(args.sysctl, "sysctl") or None, "OomScoreAdj": args.oom_score_adj or 0,
    }
    attach = {s.lower() for s in args.attach}
    body = {
        "Image": args.image, "Cmd": args.command or None, "Env": env or None, "Labels": labels or None,
        "WorkingDir": args.workdir or "", "User": args.user or "", "Hostname": args.hostname or "",
        "Domainname": args.domainname or "", "Tty": args.tty, "OpenStdin": args.interactive,
        "StdinOnce": args.interactive, "AttachStdin": args.interactive or "stdin" in attach,
        "AttachStdout": not args.detach and (not attach or "stdout" in attach),
        "AttachStderr": not args.detach and (not attach or "stderr" in attach),
        "StopSignal": args.stop_signal, "StopTimeout": args.stop_timeout, "ExposedPorts": exposed or None,
        "HostConfig": host_config,
    }
    health = _healthcheck(args)
    if health is not None:
        body["Healthcheck"] = health
    if args.entrypoint is not None:
        body["Entrypoint"] = shlex.split(args.entrypoint) if args.entrypoint else [""]
    if args.network_alias or args.ip:
        net = args.network or "bridge"
        body["NetworkingConfig"] = {"EndpointsConfig": {net: {
            "Aliases": args.network_alias or None,
            **({"IPAMConfig": {"IPv4Address": args.ip}} if args.ip else {})}}}
    return body, args.name
