"""Container records rendered in the Docker API's shapes (ContainerInspectResponse, ContainerSummary)."""

from __future__ import annotations

from nanovisor.engine.containers import Container
from nanovisor.engine.mounts import public
from nanovisor.engine.state import State, docker_flags
from nanovisor.engine.timefmt import rfc3339
from nanovisor.paths import Paths


def _state(c: Container) -> dict:
    s = {k: v for k, v in c.state.items() if not k.startswith("_") and k != "Health"}
    s.update(docker_flags(c.status))  # derived from the one stored state, whatever the record holds
    s["StartedAt"] = rfc3339(s.get("StartedAt"))
    s["FinishedAt"] = rfc3339(s.get("FinishedAt"))
    health = current_health(c)
    if health is not None:
        s["Health"] = {k: v for k, v in health.items() if not k.startswith("_")}
    return s


def current_health(c: Container) -> dict | None:
    """State.Health of a container with a healthcheck (None without one): a run no check has reported on
    yet is "starting"."""
    from nanovisor.engine.health import health_config, initial_health

    if health_config(c.config) is None:
        return None
    health = c.state.get("Health") or {}
    if c.running and health.get("_Seq") != c.state.get("_StartSeq", 0):
        return initial_health()
    return health or initial_health()


def network_settings(c: Container) -> dict:
    ns = dict(c.spec.get("NetworkSettings") or {})
    mode = c.host_config.get("NetworkMode") or "bridge"
    ns.setdefault("Bridge", "")
    ns.setdefault("SandboxID", "")
    ns.setdefault("SandboxKey", "")
    ns.setdefault("Ports", {})
    ns.setdefault("Networks", {})
    if not c.running and not mode.startswith("container:"):
        ns["Networks"] = _configured_networks(c, mode, ns["Networks"])
    return ns


def _configured_networks(c: Container, mode: str, last: dict) -> dict:
    """A container that is not running shows the networks it joins at its next start, as dockerd does
    (docker-compose disconnects and reconnects a created container by these names)."""
    from nanovisor.network.wanted import wanted_endpoints

    wanted = {"none": {}} if mode == "none" else {"host": {}} if mode == "host" else \
        wanted_endpoints(c.host_config, c.spec.get("NetworkingConfig"))
    note = "bridge networking is not set up yet: the container has an isolated network namespace with no " \
           "interfaces but loopback (same as --network none)"
    out = {}
    for name, conf in wanted.items():
        prev = last.get(name) or {}
        out[name] = {"IPAMConfig": conf.get("IPAMConfig"), "Links": conf.get("Links"), "Aliases": conf.get("Aliases"),
                     "MacAddress": conf.get("MacAddress") or prev.get("MacAddress", ""), "DriverOpts": conf.get("DriverOpts"),
                     "GwPriority": conf.get("GwPriority") or 0, "NetworkID": prev.get("NetworkID", ""),
                     "EndpointID": "", "Gateway": "",
                     "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
                     "GlobalIPv6PrefixLen": 0, "DNSNames": None}
        if name == "bridge" and not c.spec.get("NetworkSettings"):
            out[name]["Note"] = note
    return out


def inspect(c: Container, paths: Paths) -> dict:
    cfg = c.config
    entry = list(cfg.get("Entrypoint") or [])
    cmd = list(cfg.get("Cmd") or [])
    argv = entry + cmd
    if c.host_config.get("Init"):
        argv = ["/sbin/docker-init", "--"] + argv
    cdir = paths.container_dir(c.id)
    hc = {k: v for k, v in c.host_config.items() if not k.startswith("_")}
    return {
        "Id": c.id, "Created": rfc3339(c.created), "Path": argv[0] if argv else "", "Args": argv[1:],
        "State": _state(c), "Image": c.image_id,
        "ResolvConfPath": str(cdir / "resolv.conf"), "HostnamePath": str(cdir / "hostname"),
        "HostsPath": str(cdir / "hosts"), "LogPath": _log_path(c, cdir), "Name": "/" + c.name,
        "RestartCount": c.state.get("_RestartCount", 0), "Driver": "overlay2", "Platform": "linux",
        "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "", "ExecIDs": None,
        "HostConfig": hc,
        "GraphDriver": {"Name": "overlay2", "Data": {"UpperDir": str(cdir / "upper"),
                                                     "WorkDir": str(cdir / "work"),
                                                     "MergedDir": str(cdir / "merged")}},
        "Mounts": public(c.spec.get("MountPoints") or []),
        "Config": cfg,
        "NetworkSettings": network_settings(c),
    }


def _log_path(c: Container, cdir) -> str:
    """dockerd shows the file only for json-file (the one format meant to be read by others)."""
    from nanovisor.engine.logconfig import driver_of, log_path

    driver = driver_of(c.host_config)
    return str(log_path(driver, cdir, c.id)) if driver in ("json-file", "k8s-file") else ""


def status_text(c: Container, now: float) -> str:
    """`docker ps` STATUS column: "Up 3 minutes", "Exited (0) 2 seconds ago", "Created"."""
    st, status = c.state, c.status
    if status is State.RUNNING:
        from nanovisor.engine.health import status_suffix

        return f"Up {_ago(now - st['StartedAt'])}{status_suffix({'Health': current_health(c) or {}})}"
    if status is State.PAUSED:
        return f"Up {_ago(now - st['StartedAt'])} (Paused)"
    if status is State.RESTARTING:
        return f"Restarting ({st['ExitCode']}) {_ago(now - (st['FinishedAt'] or now))} ago"
    if status is State.EXITED:
        return f"Exited ({st['ExitCode']}) {_ago(now - (st['FinishedAt'] or now))} ago"
    if status is State.REMOVING:
        return "Removal In Progress"
    return status.value.capitalize()  # Created, Dead


def _ago(seconds: float) -> str:
    """Go's units.HumanDuration."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    m = s // 60
    if m == 1:
        return "About a minute"
    if m < 60:
        return f"{m} minutes"
    h = round(s / 3600)
    if h == 1:
        return "About an hour"
    if h < 48:
        return f"{h} hours"
    if h < 24 * 7 * 2:
        return f"{h // 24} days"
    if h < 24 * 30 * 2:
        return f"{h // 24 // 7} weeks"
    if h < 24 * 365 * 2:
        return f"{h // 24 // 30} months"
    return f"{h // 24 // 365} years"


def summary(c: Container, now: float) -> dict:
    cfg = c.config
    argv = list(cfg.get("Entrypoint") or []) + list(cfg.get("Cmd") or [])
    if c.host_config.get("Init"):
        argv = ["/sbin/docker-init", "--"] + argv
    ns = network_settings(c)
    ports = []
    for spec, bindings in (ns.get("Ports") or {}).items():
        port, _, proto = spec.partition("/")
        for b in bindings or [None]:
            entry = {"PrivatePort": int(port), "Type": proto or "tcp"}
            if b:
                entry.update({"IP": b.get("HostIp") or "0.0.0.0", "PublicPort": int(b.get("HostPort") or 0)})
            ports.append(entry)
    return {
        "Id": c.id, "Names": ["/" + c.name], "Image": c.spec.get("ImageRef") or c.image_id, "ImageID": c.image_id,
        "Command": " ".join(argv), "Created": int(c.created), "Ports": ports,
        "Labels": cfg.get("Labels") or {}, "State": c.status.value, "Status": status_text(c, now),
        "HostConfig": {"NetworkMode": c.host_config.get("NetworkMode") or "bridge"},
        "NetworkSettings": {"Networks": ns.get("Networks") or {}},
        "Mounts": public(c.spec.get("MountPoints") or []),
    }
