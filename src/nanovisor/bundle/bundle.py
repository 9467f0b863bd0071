"""The bundle stage: a container + its image's rootfs (the snapshot's mount) + its network → an OCI bundle.

What it leaves:
- BUNDLE/config.json (BUNDLE is paths.bundle_dir, under /run: a reboot takes it away with the containers);
  its root.path is the snapshot's mount. conmon's own files land in the same directory (runtime/monitor.py).
- CONTAINER_DIR/hostname, hosts, resolv.conf (next to the container's record), bind-mounted over /etc: the
  network manager rewrites hosts on connect/disconnect and `--network container:X` shares X's, as in Docker.
- a new volume filled with the image's content at its mount point (copy-up, once, as in Docker).

The network: `--network host` is the host's namespace; `container:X` is X's; otherwise a namespace of the
container's own, plumbed by the network manager while the runtime creates the container (veths and addresses
take ~15-30 ms, as long as create) — unless the runtime reads the namespace at create (a VM copies its
interfaces into the guest), when plumbing is done first. Bundle.create_with runs that overlap.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nanovisor.bundle.etcfiles import hosts_file, parse_extra_hosts, resolv_conf
from nanovisor.errors import Conflict, InvalidParameter
from nanovisor.paths import Paths
from nanovisor.runtime.base import Created, CreateOptions, Runtime

if TYPE_CHECKING:  # the engine's record; the stage only reads it and saves what it decides
    from nanovisor.engine.containers import Container

INIT_BINARY = "/usr/bin/tini-static"
ETC_FILES = ("hostname", "hosts", "resolv.conf")

Plumbing = Callable[[], dict[str, str]]  # attaches the netns; returns the /etc files it decides


@dataclass
class Bundle:
    cid: str
    path: Path               # config.json; the runtime's -b
    etc_dir: Path            # where hostname, hosts and resolv.conf live
    plumb: Plumbing | None   # network plumbing still to do when the runtime creates the container

    def create_with(self, runtime: Runtime, opts: CreateOptions) -> Created:
        """runtime.create with the network plumbed meanwhile, then the /etc files that plumbing decided
        written in place (the bind mounts already point at them). Nothing stays created if either fails."""
        plumbing = _Background(self.plumb) if self.plumb is not None else None
        try:
            created = runtime.create(self.cid, self.path, opts)
        finally:
            if plumbing is not None:
                plumbing.join()
        if plumbing is not None:
            try:
                for name, content in plumbing.result().items():
                    (self.etc_dir / name).write_text(content)
            except BaseException:
                runtime.delete(self.cid, force=True)
                raise
        return created


class BundleBuilder:
    def __init__(self, paths: Paths, containers, runtimes, network: Callable[[], object | None]) -> None:
        """containers: the ContainerStore (container:X lookups, saving what the stage records);
        runtimes: the registry; network: returns the network manager (made on first use) or None."""
        self.paths = paths
        self.containers = containers
        self.runtimes = runtimes
        self._network = network

    def build(self, c: Container, rootfs: Path, runtime: Runtime) -> Bundle:
        from nanovisor.engine import linking
        from nanovisor.network.legacy_links import merge_env
        from nanovisor.runtime.spec import SpecInput, build_spec

        copy_up_volumes(c, rootfs, self.containers.save_spec)
        cdir = self.paths.container_dir(c.id)
        path = self.paths.bundle_dir(c.id)
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        hc = c.host_config
        link_env, link_hosts = linking.env_and_hosts(self.containers, c)  # legacy --link: env and hosts lines
        netns_path, etc_files, plumb = self._network_setup(c, link_hosts)
        if plumb is not None and runtime.reads_network_at_create:
            etc_files, plumb = {**etc_files, **plumb()}, None
        mounts = oci_mounts(c.spec.get("MountPoints") or [])
        for name in ETC_FILES:
            if name not in etc_files and plumb is None:
                continue
            file = cdir / name
            file.write_text(etc_files.get(name, ""))  # written in place once the network is plumbed
            mounts.append({"destination": f"/etc/{name}", "type": "bind", "source": str(file),
                           "options": ["rbind", "rprivate", "ro" if hc.get("ReadonlyRootfs") and name == "hostname"
                                       else "rw"]})
        spec_hc = hc if netns_path != "" else {**hc, "NetworkMode": "none"}  # "": a fresh, empty netns
        config = {**c.config, "Env": merge_env(link_env, c.config.get("Env") or [])} if link_env else c.config
        spec = build_spec(SpecInput(container_id=c.id, config=config, host_config=spec_hc, rootfs=str(rootfs),
                                    mounts=mounts, netns_path=netns_path or None,
                                    cgroups_path=f"/nanovisor/{c.id}",
                                    init_path=INIT_BINARY if hc.get("Init") else None))
        (path / "config.json").write_text(json.dumps(spec))
        return Bundle(c.id, path, cdir, plumb)

    def _network_setup(self, c: Container, link_hosts: list[tuple[str, str]] = ()
                       ) -> tuple[str | None, dict[str, str], Plumbing | None]:
        """(netns path — None for the host's, "" for a fresh one the runtime makes —, the /etc files known
        now, and the plumbing still to do, or None)."""
        hc = c.host_config
        mode = hc.get("NetworkMode") or "bridge"
        hostname = c.config.get("Hostname") or c.id[:12]
        network = self._network()
        if mode.startswith("container:"):
            other = self.containers.get(mode.split(":", 1)[1])
            if not other.running:
                raise Conflict(f"cannot join network of a non running container: {other.id}")
            if not self.runtimes.get(other.runtime).network_shareable:
                raise InvalidParameter(f"cannot join the network of container {other.name}: its network stack "
                                       f"is inside its own VM ({other.runtime})")
            shared = network.lookup_netns(other.id) if network is not None else None
            return shared or f"/proc/{other.state['Pid']}/ns/net", self._etc_files_of(other, hostname), None
        if network is not None and mode != "host":
            ns = network.create_netns(c.id)

            def plumb() -> dict[str, str]:
                result = network.attach(c.id, ns, hc, c.spec.get("NetworkingConfig") or {}, hostname,
                                        c.config.get("ExposedPorts") or {}, name=c.name,
                                        link_hosts=list(link_hosts))
                c.spec["NetworkSettings"] = result.get("NetworkSettings", {})
                self.containers.save_spec(c)
                return {"hosts": result["hosts"], "resolv.conf": result["resolv_conf"]}
            return ns, {"hostname": hostname + "\n"}, plumb
        files = {"hostname": hostname + "\n",
                 "hosts": hosts_file(hostname, (), parse_extra_hosts(hc.get("ExtraHosts"))),
                 "resolv.conf": resolv_conf(hc.get("Dns") or [], hc.get("DnsSearch") or [],
                                            hc.get("DnsOptions") or [], keep_localhost=mode == "host")}
        if mode == "host":
            return None, files, None
        return "", files, None

    def _etc_files_of(self, other: Container, hostname: str) -> dict[str, str]:
        """--network container:X shares X's /etc/hosts and resolv.conf, as Docker does."""
        cdir = self.paths.container_dir(other.id)
        files = {"hostname": hostname + "\n"}
        for name in ("hosts", "resolv.conf"):
            try:
                files[name] = (cdir / name).read_text()
            except OSError:
                pass
        return files


def copy_up_volumes(c: Container, rootfs: Path, save_spec: Callable[[Container], None]) -> None:
    """A volume still empty at the container's first start gets the image's content at its mount point, and
    that directory's owner and mode, as in Docker (moby fills any empty volume, also one made beforehand by
    `volume create`, as compose makes its volumes; once: the mount point is marked done and saved)."""
    from nanovisor.runtime.users import scoped_path

    changed = False
    for p in c.spec.get("MountPoints") or []:
        if p.get("_CopyUp"):
            # resolved inside the rootfs: an image's absolute symlink must not lead to the host's files
            src = Path(scoped_path(str(rootfs), p["Destination"]))
            if src.is_dir() and not src.is_symlink() and not any(Path(p["Source"]).iterdir()):
                subprocess.run(["cp", "-a", "--", f"{src}/.", f"{p['Source']}/"], capture_output=True)
            p["_CopyUp"] = False
            changed = True
    if changed:
        save_spec(c)


def _subpath_source(p: dict) -> str:
    """The directory inside the volume a Subpath names, resolved at start (it may be made after create) and
    inside the volume: a symlink in the volume cannot point the mount at the host's files."""
    from nanovisor.runtime.users import scoped_path

    source = scoped_path(p["Source"], p["_Subpath"])
    if not os.path.exists(source):
        raise InvalidParameter(f"cannot access path {source}: no such file or directory (volume subpath "
                               f"{p['_Subpath']} of {p.get('Name', '')})")
    return source


def oci_mounts(points: list[dict]) -> list[dict]:
    """The OCI runtime mounts for stored mount points (HostConfig.Tmpfs is the spec builder's)."""
    out = []
    for p in points:
        if p["Type"] == "tmpfs":
            opts = ["nosuid", "nodev", "noexec"] + ([] if p["RW"] else ["ro"])
            if p.get("_Size"):
                opts.append(f"size={p['_Size']}")
            if p.get("_FileMode"):
                opts.append(f"mode={p['_FileMode']:o}")
            out.append({"destination": p["Destination"], "type": "tmpfs", "source": "tmpfs", "options": opts})
        else:
            opts = ["rbind", p.get("Propagation") or "rprivate", "rw" if p["RW"] else "ro"]
            source = _subpath_source(p) if p.get("_Subpath") else p["Source"]
            out.append({"destination": p["Destination"], "type": "bind", "source": source, "options": opts})
    return out


class _Background:
    """Runs fn on a thread; result() returns its value or raises its exception in the caller."""

    def __init__(self, fn: Callable[[], dict]) -> None:
        self._value: dict = {}
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], dict]) -> None:
        try:
            self._value = fn()
        except BaseException as e:  # handed to the caller in result()
            self._error = e

    def join(self) -> None:
        self._thread.join()

    def result(self) -> dict:
        self.join()
        if self._error is not None:
            raise self._error
        return self._value
