"""`network connect` / `network disconnect` of a container: a running one gets (or loses) the interface
now, a stopped one at its next start; its spec records the endpoint either way. The interface is made in the
container's network namespace for every runtime; the runtime then carries the change into the container where
the namespace is not the container's own network stack (Runtime.sync_network)."""

from __future__ import annotations

import logging

from nanovisor.engine.containers import Container

log = logging.getLogger(__name__)


def connect(engine, network, ref: str, container: str, endpoint_config: dict | None = None) -> tuple[dict, str]:
    """Returns the network's inspect dict and the container's id (for the event)."""
    from nanovisor.network.wanted import record_connect  # the network package loads only when used

    net = network.inspect(ref)
    c = engine.get(container)
    with engine.lifecycle.locks.hold(c.id):
        c = engine.containers.reload(c) or c
        record_connect(c.host_config, c.spec.setdefault("NetworkingConfig", {}), {net["Name"], net["Id"]},
                       endpoint_config or {})
        if c.running:
            result = network.connect(ref, c.id, endpoint_config or {})
            runtime = engine.lifecycle.runtimes.get(c.runtime)
            try:
                runtime.sync_network(c.id)
            except Exception:
                network.disconnect(ref, c.id, force=True)  # the container could not take it: as before
                _sync_quietly(runtime, c.id)
                raise
            network_changed(engine, c, result)
        engine.containers.save_spec(c)
    return net, c.id


def disconnect(engine, network, ref: str, container: str, force: bool = False) -> tuple[dict, str]:
    from nanovisor.network.wanted import record_disconnect

    net = network.inspect(ref)
    c = engine.get(container)
    with engine.lifecycle.locks.hold(c.id):
        c = engine.containers.reload(c) or c
        record_disconnect(c.host_config, c.spec.setdefault("NetworkingConfig", {}), {net["Name"], net["Id"]})
        if c.running:
            result = network.disconnect(ref, c.id, force)
            if result:  # the endpoint is gone already: a container that cannot follow keeps a dead interface
                _sync_quietly(engine.lifecycle.runtimes.get(c.runtime), c.id)
            network_changed(engine, c, result)
        engine.containers.save_spec(c)
    return net, c.id


def _sync_quietly(runtime, cid: str) -> None:
    try:
        runtime.sync_network(cid)
    except Exception as e:  # noqa: BLE001 - reported, the engine's side stands
        log.warning("container %s: its runtime did not follow a network change: %s", cid[:12], e)


def network_changed(engine, c: Container, result: dict) -> None:
    """A running container's endpoints changed: its /etc/hosts, resolv.conf and inspect follow."""
    if not result:
        return
    c.spec["NetworkSettings"] = result.get("NetworkSettings", c.spec.get("NetworkSettings"))
    cdir = engine.paths.container_dir(c.id)
    for name, key in (("hosts", "hosts"), ("resolv.conf", "resolv_conf")):
        if result.get(key) is not None:
            (cdir / name).write_text(result[key])  # bind-mounted file: written in place
