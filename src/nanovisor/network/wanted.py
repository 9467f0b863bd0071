"""Which networks a container joins at its next start, as dockerd decides it.

dockerd keeps one list per container (NetworkSettings.Networks): the network its NetworkMode names, plus every
network in NetworkingConfig.EndpointsConfig; `network disconnect` and `connect` edit that list whether the
container runs or not, and NetworkMode never changes. docker-compose 1.x depends on it: it creates a container on
its first network, then disconnects and reconnects it with its aliases before starting it.

The list is kept as the container's EndpointsConfig plus one private flag, set when the NetworkMode network itself
was disconnected (so an old record, whose EndpointsConfig may lack the NetworkMode network, still joins it).
"""

from __future__ import annotations

PRIMARY_DETACHED = "_PrimaryDetached"
_NO_NETWORK_MODES = ("none", "host")


def primary_network(host_config: dict) -> str | None:
    """The network NetworkMode names ("bridge" for the default), or None when it names no network."""
    mode = host_config.get("NetworkMode") or "bridge"
    if mode in _NO_NETWORK_MODES or mode.startswith("container:"):
        return None
    return "bridge" if mode == "default" else mode


def wanted_endpoints(host_config: dict, networking_config: dict | None) -> dict[str, dict]:
    """{network name or id: endpoint config}, the NetworkMode network first."""
    nc = networking_config or {}
    configured = dict(nc.get("EndpointsConfig") or {})
    primary = primary_network(host_config)
    if primary is None:
        return {}
    if primary == "bridge" and "default" in configured:  # the CLI keys the default network's endpoint "default"
        configured.setdefault("bridge", configured.pop("default"))
    wanted: dict[str, dict] = {}
    if primary in configured or not nc.get(PRIMARY_DETACHED):
        wanted[primary] = configured.pop(primary, None) or {}
    for name, conf in configured.items():
        wanted[name] = conf or {}
    return wanted


def record_connect(host_config: dict, networking_config: dict, names: set[str], conf: dict) -> None:
    """names: the network's name and id (a user may give either; NetworkMode holds what the user gave)."""
    endpoints = networking_config.setdefault("EndpointsConfig", {})
    for key in [k for k in endpoints if k in names]:
        del endpoints[key]
    endpoints[_key(names, host_config)] = conf or {}
    if primary_network(host_config) in names:
        networking_config.pop(PRIMARY_DETACHED, None)


def record_disconnect(host_config: dict, networking_config: dict, names: set[str]) -> None:
    endpoints = networking_config.setdefault("EndpointsConfig", {})
    for key in [k for k in endpoints if k in names]:
        del endpoints[key]
    if primary_network(host_config) in names:
        networking_config[PRIMARY_DETACHED] = True


def _key(names: set[str], host_config: dict) -> str:
    primary = primary_network(host_config)
    if primary in names:
        return primary
    return min(names, key=len)  # the name, not the 64-hex id


MAC_CONFLICT = ("the container-wide MAC address must match the endpoint-specific MAC address for the main "
                "network, or be left empty")


def adopt_container_mac(config: dict, host_config: dict, networking_config: dict) -> list[str]:
    """The deprecated Config.MacAddress belongs to the NetworkMode network's endpoint (dockerd moves it there);
    returns dockerd's warnings."""
    mac = config.get("MacAddress") or ""
    primary = primary_network(host_config)
    if mac and (host_config.get("NetworkMode") or "").startswith("container:"):
        from nanovisor.errors import InvalidParameter

        raise InvalidParameter("conflicting options: mac-address and the network mode")
    if not mac or primary is None:
        return []
    endpoints = networking_config.setdefault("EndpointsConfig", {})
    key = "default" if primary == "bridge" and "default" in endpoints else primary
    conf = endpoints.get(key) or {}
    if conf.get("MacAddress") and conf["MacAddress"].lower() != mac.lower():
        from nanovisor.errors import InvalidParameter

        raise InvalidParameter(MAC_CONFLICT)
    endpoints[key] = dict(conf, MacAddress=mac)
    return [] if conf.get("MacAddress") else [
        "The container-wide MacAddress field is now deprecated. It should now be specified in EndpointsConfig "
        "instead."]


def validate_endpoints(networking_config: dict) -> None:
    """What dockerd checks at create in each endpoint's settings (moby's EndpointSettings.Validate)."""
    import ipaddress
    import re

    from nanovisor.errors import InvalidParameter

    errors = []
    for conf in (networking_config.get("EndpointsConfig") or {}).values():
        conf = conf or {}
        mac = conf.get("MacAddress") or ""
        if mac and not re.fullmatch(r"[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(\1[0-9A-Fa-f]{2}){4}", mac):
            errors.append(f"invalid MAC address: {mac}")
        ipam = conf.get("IPAMConfig") or {}
        for field, version in (("IPv4Address", 4), ("IPv6Address", 6)):
            addr = ipam.get(field) or ""
            try:
                ok = not addr or ipaddress.ip_address(addr).version == version
            except ValueError:
                ok = False
            if not ok:
                errors.append(f"invalid IPv{version} address: {addr}")
    if errors:
        raise InvalidParameter("invalid endpoint settings:\n" + "\n".join(errors) if len(errors) > 1
                               else errors[0])
