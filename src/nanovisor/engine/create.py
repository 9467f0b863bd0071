"""POST /containers/create: validate what the user asked for and record the container (nothing runs yet)."""

from __future__ import annotations

import copy
import secrets
import time

from nanovisor import jsontypes
from nanovisor.engine.containers import Container, ContainerStore, initial_state
from nanovisor.engine.mounts import resolve_mounts
from nanovisor.engine.names import generate_name, validate_name
from nanovisor.engine.volumes import VolumeStore
from nanovisor.errors import InvalidParameter
from nanovisor.runtime.registry import RuntimeRegistry

_POLICIES = ("", "no", "always", "on-failure", "unless-stopped")
_NETWORK_MODES = ("", "default", "bridge", "none", "host")
HOST_CONFIG_DEFAULTS = {
    "NetworkMode": "bridge", "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
    "LogConfig": {"Type": "json-file", "Config": {}}, "AutoRemove": False, "Privileged": False,
    "ReadonlyRootfs": False, "Binds": None, "Tmpfs": None, "CapAdd": None, "CapDrop": None, "Memory": 0,
    "NanoCpus": 0, "PidsLimit": None, "Init": None, "Isolation": "", "Runtime": "", "PortBindings": {},
    "Dns": [], "DnsOptions": [], "DnsSearch": [], "ExtraHosts": None, "SecurityOpt": None, "ShmSize": 67108864,
}


def validate_host_config(hc: dict) -> None:
    policy = hc.get("RestartPolicy") or {}
    name = policy.get("Name") or ""
    if name not in _POLICIES:
        raise InvalidParameter(f"invalid restart policy: unknown policy '{name}'; use one of 'no', 'always', "
                               f"'on-failure', or 'unless-stopped'")
    retries = policy.get("MaximumRetryCount") or 0
    if retries < 0:
        raise InvalidParameter("invalid restart policy: maximum retry count can't be negative")
    if retries and name != "on-failure":
        raise InvalidParameter("invalid restart policy: maximum retry count can only be used with 'on-failure'")
    if hc.get("AutoRemove") and name not in ("", "no"):
        raise InvalidParameter("conflicting options: cannot specify both --restart and --rm")
    from nanovisor.runtime.spec_resources import validate_host_config as validate_resources

    validate_resources(hc)
    _validate_security_opt(hc.get("SecurityOpt"))
    mode = hc.get("NetworkMode") or ""
    if mode not in _NETWORK_MODES and not mode.startswith("container:"):
        hc["_UserNetwork"] = mode
    if mode in ("", "default"):
        hc["NetworkMode"] = "bridge"


def _validate_security_opt(opts) -> None:
    """Refused at create, not at the first start: a bad option, a seccomp profile that is not JSON, or a
    path (the daemon reads no host file a request names)."""
    from nanovisor.runtime.seccomp import load_profile
    from nanovisor.runtime.spec import parse_security_opt

    sec = parse_security_opt(opts)
    if sec.seccomp.strip() not in ("", "builtin"):
        load_profile(sec.seccomp)


def create_container(body: dict, name: str | None, *, images, containers: ContainerStore,
                     volumes: VolumeStore, runtimes: RuntimeRegistry, network=None,
                     log_config: dict | None = None) -> Container:
    from nanovisor.runtime.spec import merge_config

    if not isinstance(body, dict):
        raise InvalidParameter("invalid JSON: expected an object")
    jsontypes.check(body, "ContainerCreate")
    image_ref = body.get("Image") or ""
    if not image_ref:
        raise InvalidParameter("config.Image must be specified")
    image = _resolve_image(images, image_ref)
    hc = dict(HOST_CONFIG_DEFAULTS)
    hc.update({k: v for k, v in (body.get("HostConfig") or {}).items() if v is not None or k not in hc})
    _fill_defaults(hc, log_config)
    validate_host_config(hc)
    if hc.get("_UserNetwork"):
        manager = network() if callable(network) else network
        if manager is None:
            raise InvalidParameter(f"network {hc['_UserNetwork']} not found")
        manager.inspect(hc["_UserNetwork"])  # raises NotFound with moby's text
    hc.pop("_UserNetwork", None)
    runtime = runtimes.choose(hc.get("Isolation"), hc.get("Runtime"))
    hc["Runtime"] = runtime

    cid = secrets.token_hex(32)
    name = validate_name(name) if name else generate_name(containers.name_taken)
    config = merge_config(copy.deepcopy(image.config.get("config") or {}), body)
    config["Image"] = image_ref
    if not config.get("Hostname"):
        config["Hostname"] = _host_hostname() if hc.get("NetworkMode") == "host" else cid[:12]
    _validate_names(config)
    if not (config.get("Entrypoint") or config.get("Cmd")):
        raise InvalidParameter("no command specified")
    points = resolve_mounts(hc, config.get("Volumes"), volumes)
    from nanovisor.network.wanted import adopt_container_mac, validate_endpoints

    _record_links(hc, name, containers)
    networking = copy.deepcopy(body.get("NetworkingConfig") or {})
    adopt_container_mac(config, hc, networking)
    validate_endpoints(networking)
    spec = {"Config": config, "HostConfig": hc, "NetworkingConfig": networking,
            "ImageRef": image_ref, "Runtime": runtime, "MountPoints": points}
    container = Container(id=cid, name=name, image_id=image.id, created=time.time(), spec=spec,
                          state=initial_state())
    containers.insert(container)
    return container


def _validate_names(config: dict) -> None:
    """The kernel takes at most 64 bytes for a host or domain name (sethostname: EINVAL at start)."""
    for key in ("Hostname", "Domainname"):
        value = config.get(key) or ""
        if len(value.encode()) > 64 or any(ord(ch) < 32 or ch == "/" for ch in value):
            raise InvalidParameter(f"invalid {key.lower()} {value[:80]!r}: at most 64 bytes, no '/' or "
                                   "control characters")


def _record_links(hc: dict, name: str, containers: ContainerStore) -> None:
    """Legacy --link on the default bridge: the child must exist; stored as dockerd shows it."""
    if not hc.get("Links") or hc.get("NetworkMode") != "bridge":
        return
    from nanovisor.errors import NotFound
    from nanovisor.network.legacy_links import normalize

    def child_name(ref: str) -> str:
        try:
            return containers.get(ref).name
        except NotFound as e:
            raise InvalidParameter(f"could not get container for {ref}: {e}") from None
    hc["Links"] = normalize(hc["Links"], name, child_name)


def _host_hostname() -> str:
    import socket

    return socket.gethostname()


def _fill_defaults(hc: dict, log_config: dict | None = None) -> None:
    """What dockerd fills in for fields the client left empty (inspect shows the effective values)."""
    import os

    from nanovisor.engine import logconfig

    hc["LogConfig"] = logconfig.validate(hc.get("LogConfig"), log_config)
    if not hc.get("CgroupnsMode"):
        hc["CgroupnsMode"] = "private" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "host"
    if hc.get("MemorySwappiness") == -1:
        hc["MemorySwappiness"] = None


def _resolve_image(images, ref: str):
    """moby names the normalized reference in its error: "No such image: nano/ghost:latest"."""
    from nanovisor.errors import NotFound

    try:
        return images.resolve(ref)
    except NotFound:
        try:
            from nanovisor.images.reference import parse

            name = parse(ref).familiar()
        except Exception:  # not a reference at all: keep the user's words
            name = ref
        raise NotFound(f"No such image: {name}") from None
