"""Legacy container links in the container lifecycle: what a parent gets from its children at start, what its
/etc/hosts learns when a child comes back, and `docker rm --link` (the rules themselves: network/legacy_links)."""

from __future__ import annotations

from nanovisor.engine.containers import Container, ContainerStore
from nanovisor.errors import NotFound, SystemError_
from nanovisor.network import legacy_links
from nanovisor.paths import Paths
from nanovisor.store.containers import ContainerTable


def env_and_hosts(containers: ContainerStore, c: Container) -> tuple[list[str], list[tuple[str, str]]]:
    """--link on the default bridge: (environment variables, /etc/hosts lines) describing the children, which
    must be running (dockerd's setupLinkedContainers)."""
    if not c.host_config.get("Links") or (c.host_config.get("NetworkMode") or "bridge") != "bridge":
        return [], []
    env, hosts = [], []
    for link in c.host_config["Links"]:
        child_ref, link_name = link.split(":", 1) if ":" in link else (link, f"/{c.name}/{link.lstrip('/')}")
        child = containers.get(child_ref.lstrip("/"))
        if not child.running:
            raise SystemError_(f"Cannot link to a non running container: /{child.name} AS {link_name}")
        ip = _bridge_ip(child)
        if not ip:
            raise SystemError_(f"container {child.id} not attached to default bridge network")
        env += legacy_links.env(link_name, ip, child.config.get("Env") or [], child.config.get("ExposedPorts") or {})
        hosts.append(legacy_links.hosts_entry(link_name, child.name, child.config.get("Hostname") or "", ip))
    return env, hosts


def update_parents(containers: ContainerStore, network, paths: Paths, c: Container) -> None:
    """A linked child (re)started, maybe on a new address: its running parents' /etc/hosts follow (dockerd's
    parent update). Their environment keeps the old address, as in dockerd."""
    ip = _bridge_ip(c)
    if not ip:
        return
    for parent in map(ContainerStore._row, ContainerTable(containers.db).containing(f'"/{c.name}:/')):
        aliases = [link.partition(":")[2].rsplit("/", 1)[-1] for link in parent.host_config.get("Links") or []
                   if link.partition(":")[0] == "/" + c.name]
        if aliases and parent.running:
            for alias in aliases:
                files = network.update_link_host(parent.id, alias, ip)
                if files.get("hosts") is not None:
                    (paths.container_dir(parent.id) / "hosts").write_text(files["hosts"])


def unlink(containers: ContainerStore, link: str) -> tuple[Container, str]:
    """`docker rm --link /parent/alias` (dockerd's rmLink): the parent without that link, and the alias (the
    caller saves it and refreshes a running parent's /etc/hosts)."""
    full = "/" + link.lstrip("/")
    parent_name, _, alias = full.rpartition("/")
    if not parent_name:
        containers.get(alias)  # No such container: ...
        raise SystemError_("Conflict, cannot remove the default link name of the container")
    parent = containers.find(parent_name)
    links = (parent.host_config.get("Links") or []) if parent is not None else []
    kept = [entry for entry in links if entry.partition(":")[2] != full]
    if parent is None or len(kept) == len(links):  # dockerd resolves "/parent/alias" as a container name
        raise NotFound(f"No such container: {link}")
    parent.host_config["Links"] = kept or None
    return parent, alias


def link_names(containers: ContainerStore) -> dict[str, list[str]]:
    """{child name: ["/parent/alias", ...]}: a legacy link names its child too (docker ps shows them). Only
    containers recorded with a default-bridge link are read."""
    names: dict[str, list[str]] = {}
    for c in map(ContainerStore._row, ContainerTable(containers.db).containing('"Links":["/')):
        for link in c.host_config.get("Links") or []:
            child, _, name = link.partition(":")
            if name.startswith("/"):  # recorded on the default bridge (a user network's link is no name)
                names.setdefault(child.lstrip("/"), []).append(name)
    return names


def _bridge_ip(c: Container) -> str:
    return (((c.spec.get("NetworkSettings") or {}).get("Networks") or {}).get("bridge") or {}).get("IPAddress") or ""
