"""Legacy container links (`--link NAME:ALIAS`), as dockerd keeps them.

On the default bridge a link gives the parent environment variables describing the child (moby's
daemon/links: ALIAS_PORT..., ALIAS_NAME, ALIAS_ENV_*) and an /etc/hosts line for the child's alias, hostname and
name. dockerd records a link as "/child:/parent/alias" (what inspect shows in HostConfig.Links). On a user-defined
network a link is only a name the parent resolves to the child (an alias private to the parent; see netd).
"""

from __future__ import annotations

from collections.abc import Callable


def parse(link: str) -> tuple[str, str]:
    """"redis:db", "/redis:/web/db" or "redis" → (child name, alias)."""
    name, _, alias = link.partition(":")
    name = name.lstrip("/")
    alias = alias.rsplit("/", 1)[-1] if alias else name
    return name, alias


def normalize(links: list[str], parent: str, child_name: Callable[[str], str]) -> list[str]:
    """dockerd's stored form; child_name resolves a user's reference (raises when there is no such container)."""
    out = []
    for link in links:
        name, alias = parse(link)
        out.append(f"/{child_name(name)}:/{parent.lstrip('/')}/{alias}")
    return out


def _port_key(port: str) -> tuple[int, str, int]:
    num, _, proto = port.partition("/")
    proto = proto or "tcp"
    return (0 if proto == "tcp" else 1, proto, int(num))


def env(link_name: str, child_ip: str, child_env: list[str], exposed: dict) -> list[str]:
    """moby's Link.ToEnv: link_name is "/parent/alias"."""
    alias = link_name.rsplit("/", 1)[-1].upper().replace("-", "_")
    ports = [(proto, num) for _, proto, num in sorted(_port_key(p) for p in (exposed or {}))]
    out: list[str] = []
    start = end = None
    for i, (proto, num) in enumerate(ports):
        if i == 0:
            start = end = (proto, num)
            out.append(f"{alias}_PORT={proto}://{child_ip}:{num}")
        prefix = f"{alias}_PORT_{num}_{proto.upper()}"
        out += [f"{prefix}={proto}://{child_ip}:{num}", f"{prefix}_ADDR={child_ip}", f"{prefix}_PORT={num}",
                f"{prefix}_PROTO={proto}"]
        if num == end[1] + 1 and proto == end[0]:
            end = (proto, num)
            if i < len(ports) - 1:
                continue
        if end != start:
            prefix = f"{alias}_PORT_{start[1]}_{start[0].upper()}"
            out += [f"{prefix}_START={start[0]}://{child_ip}:{start[1]}", f"{prefix}_PORT_START={start[1]}",
                    f"{prefix}_END={end[0]}://{child_ip}:{end[1]}", f"{prefix}_PORT_END={end[1]}"]
        start = end = (proto, num)
    out.append(f"{alias}_NAME={link_name}")
    for item in child_env or []:
        key, eq, val = item.partition("=")
        if eq and key not in ("HOME", "PATH"):
            out.append(f"{alias}_ENV_{key}={val}")
    return out


def merge_env(link_env: list[str], own: list[str]) -> list[str]:
    """Link variables first; the container's own variables win (dockerd's ReplaceOrAppendEnvValues)."""
    keys = {e.partition("=")[0] for e in own}
    return [e for e in link_env if e.partition("=")[0] not in keys] + list(own)


def hosts_entry(link_name: str, child_name: str, child_hostname: str, ip: str) -> tuple[str, str]:
    """(ip, names) of the /etc/hosts line: alias, the child's hostname, and its name unless it is the alias."""
    alias = link_name.rsplit("/", 1)[-1]
    names = [alias, child_hostname]
    if alias != child_name.lstrip("/"):
        names.append(child_name.lstrip("/"))
    return ip, " ".join(names)


def aliases(endpoint_links: list[str] | None) -> dict[str, str]:
    """A user network's endpoint Links → {alias: child name} (what the parent alone resolves)."""
    return {alias.lower(): name for name, alias in map(parse, endpoint_links or [])}
