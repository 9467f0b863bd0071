"""Engine facade: containers, images, volumes, networks, exec, system. It wires the parts together and
delegates; the logic lives with its owner: lifecycle.py (state changes), create.py, listing.py (ps, prune),
waiting.py (wait), stdio.py (logs, attach), execs.py, netconnect.py, imageops.py, volumes.py, system.py,
recovery.py (serve start), watcher.py (exits, in serve); SQL only in nanovisor.store.

Everything it returns is shaped like the Docker Engine API (v1.50) so the API server passes it through and
the CLI prints it with Docker's own field names. Everything it raises is a nanovisor.errors type.
Usable in-process (embedded CLI) and behind `serve`; both may run on one root at the same time.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from nanovisor.engine import imageops, listing, netconnect, reconcile, stdio, views
from nanovisor.engine.containers import Container, ContainerStore
from nanovisor.engine.create import create_container
from nanovisor.engine.diskusage import du
from nanovisor.engine.events import EventLog
from nanovisor.engine.lifecycle import Lifecycle
from nanovisor.engine.volumes import VolumeStore, list_volumes, prune_volumes, volume_users
from nanovisor.engine.watcher import ExitWatcher
from nanovisor.errors import Conflict, InvalidParameter, NanovisorError, NotFound
from nanovisor.images.store import ImageStore
from nanovisor.paths import Paths
from nanovisor.runtime.registry import RuntimeRegistry
from nanovisor.store.db import Database


class StreamSession(Protocol):
    """A live connection to a container's (or exec's) stdio: what attach and exec start hand out.

    read() yields (stream, data) where stream is 1 for stdout, 2 for stderr (always 1 with a TTY) and returns
    None at end of stream. write() feeds stdin; close_stdin() sends EOF; resize() sets the TTY size.
    """

    tty: bool

    def read(self) -> tuple[int, bytes] | None: ...
    def write(self, data: bytes) -> None: ...
    def close_stdin(self) -> None: ...
    def resize(self, height: int, width: int) -> None: ...
    def close(self) -> None: ...


class Engine:
    """One engine on one data root. `persistent` marks a long-lived process (serve) that watches exits and
    carries out restart policies itself."""

    def __init__(self, root: str | Path | None = None, persistent: bool = False,
                 insecure_registries: list[str] | None = None, log_config: dict | None = None) -> None:
        import os

        from nanovisor.engine import logconfig

        self.insecure_registries = list(insecure_registries or []) + \
            [r for r in os.environ.get("NANOVISOR_INSECURE_REGISTRIES", "").split(",") if r]
        # the daemon's --log-driver/--log-opt: what a container that names no log driver gets (dockerd's rules)
        self.log_config = logconfig.validate(log_config)
        self.paths = Paths.for_root(root)
        self.paths.ensure()
        self.db = Database(self.paths.db)
        self.images = ImageStore(self.paths, self.db)
        self.volumes = VolumeStore(self.paths.volumes, self.db)
        self.containers = ContainerStore(self.db)
        self.event_log = EventLog(self.db)
        self.runtimes = RuntimeRegistry(self.paths.runtime_state)
        self.lifecycle = Lifecycle(self.paths, self.containers, self.images, self.runtimes, self.event_log,
                                   network=lambda: self.network, persistent=persistent)
        self.lifecycle.remove_volume = self.volume_remove
        if persistent:
            self.lifecycle.on_started = self.watch
        self.persistent = persistent
        self.watcher = ExitWatcher(self._reap_exited) if persistent else None
        self._execs: dict = {}
        self._started = time.time()
        # the embedded CLI reconciles a root on first use after its previous user died (serve: in recover)
        if reconcile.register(self.paths) and not persistent:
            reconcile.reconcile_root(self)

    def recover(self) -> None:
        """On `serve` start (see engine/recovery.py)."""
        from nanovisor.engine.recovery import recover

        recover(self)

    @functools.cached_property
    def network(self):
        """The network manager, made on first use: commands that touch no network skip its imports."""
        try:
            from nanovisor.network.manager import NetworkManager
        except ImportError:
            return None
        return NetworkManager(self.paths, self.db)

    # containers ------------------------------------------------------------------------------------
    def get(self, ref: str) -> Container:
        return self.current(self.containers.get(ref))

    def current(self, c: Container) -> Container:
        """c in line with reality; in serve, at no process check for the containers it watches."""
        if self.watcher is None:
            return self.lifecycle.reconcile(c)
        return self.watcher.current(c, self.lifecycle.reconcile, lambda c: self.lifecycle.monitor(c).exit_file)

    def container_create(self, body: dict, name: str | None = None) -> dict:
        c = create_container(body, name, images=self.images, containers=self.containers, volumes=self.volumes,
                             runtimes=self.runtimes, network=lambda: self.network, log_config=self.log_config)
        self.paths.container_dir(c.id).mkdir(parents=True, exist_ok=True)
        self.lifecycle.snapshot(c).prepare()
        self.lifecycle.event(c, "create")
        warnings = []
        if c.host_config.get("NetworkMode") == "bridge" and not _networking_available():
            warnings.append("bridge networking is not available yet: the container gets loopback only")
        return {"Id": c.id, "Warnings": warnings}

    def container_list(self, all: bool = False, limit: int = -1, size: bool = False,
                       filters: dict[str, list[str]] | None = None) -> list[dict]:
        return listing.list_containers(self, all, limit, size, filters)

    def container_inspect(self, ref: str, size: bool = False) -> dict:
        c = self.get(ref)
        out = views.inspect(c, self.paths)
        from nanovisor.engine import execs

        out["ExecIDs"] = execs.ids_of(self, c.id) or None
        if size:
            out["SizeRw"] = du(self.paths.container_dir(c.id) / "upper")
        return out

    def container_start(self, ref: str, attached: bool = False) -> None:
        """A --rm container that fails to start is removed, as dockerd does (a client waiting for its removal
        would otherwise wait forever)."""
        try:
            self.lifecycle.start(ref, attached)
        except NanovisorError:
            c = self.containers.find(ref)
            if c is not None and c.host_config.get("AutoRemove") and not c.running:
                self.lifecycle.remove(c, force=True, volumes=True)
            raise

    def watch(self, c: Container) -> None:
        """In a long-lived process: notice the exit at once (pidfd) and reap; run the healthcheck. Called
        once per run (the lifecycle's on_started, recover)."""
        from nanovisor.engine.health import HealthChecker, health_config

        cfg = health_config(c.config)
        if cfg is not None:
            HealthChecker(self, c, cfg).start()
        if self.watcher is not None:
            self.watcher.watch(c)

    def _reap_exited(self, c: Container) -> None:
        """The watcher's exit handler (a restart policy's new run is watched through on_started)."""
        self.lifecycle.wait_exit(c, None)
        self.lifecycle.reap(c)

    def container_stop(self, ref: str, timeout: int | None = None, signal: str | None = None) -> None:
        self.lifecycle.stop(ref, timeout, signal)

    def container_restart(self, ref: str, timeout: int | None = None, signal: str | None = None) -> None:
        self.lifecycle.restart(ref, timeout, signal)

    def container_kill(self, ref: str, signal: str = "KILL") -> None:
        self.lifecycle.kill(ref, signal)

    def container_waiter(self, ref: str, condition: str = "not-running") -> Callable[[], dict]:
        from nanovisor.engine.waiting import waiter

        return waiter(self, ref, condition)

    def container_wait(self, ref: str, condition: str = "not-running") -> dict:
        return self.container_waiter(ref, condition)()

    def container_remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        self.lifecycle.remove(self.containers.get(ref), force=force, volumes=volumes,
                              remove_volume=lambda name: self.volume_remove(name))

    def container_unlink(self, link: str) -> None:
        """DELETE /containers/{/parent/alias}?link=1: drops a legacy link from the parent; a running parent's
        /etc/hosts loses the line (its environment stays, as in dockerd)."""
        from nanovisor.engine import linking

        parent, _ = linking.unlink(self.containers, link)  # no such link: refused before any lock
        with self.lifecycle.locks.hold(parent.id):
            parent, alias = linking.unlink(self.containers, link)
            self.containers.save_spec(parent)
            if parent.running and self.network is not None:
                netconnect.network_changed(self, parent, self.network.drop_link_host(parent.id, alias))

    def container_rename(self, ref: str, new_name: str) -> None:
        from nanovisor.engine.names import validate_name

        c = self.containers.get(ref)
        old = c.name
        self.containers.rename(c, validate_name(new_name))
        if self.network is not None:
            self.network.rename(c.id, c.name)
        self.lifecycle.event(c, "rename", oldName="/" + old)

    def container_pause(self, ref: str) -> None:
        self.lifecycle.pause(ref)

    def container_unpause(self, ref: str) -> None:
        self.lifecycle.unpause(ref)

    def container_top(self, ref: str, ps_args: str = "-ef") -> dict:
        c = self._running(ref)
        return self.runtimes.get(c.runtime).top(c.id, ps_args)

    def container_stats(self, ref: str) -> dict:
        from nanovisor.engine.observe import stats

        c = self.get(ref)
        return stats(c, self.runtimes.get(c.runtime) if c.running else None)

    def container_update(self, ref: str, body: dict) -> dict:
        from nanovisor.engine.update import update_container

        return update_container(self.lifecycle, ref, body)

    def container_changes(self, ref: str) -> list[dict]:
        from nanovisor.engine.changes import container_changes

        c = self.get(ref)
        return container_changes(self.paths.container_dir(c.id) / "upper",
                                 self.images.layer_dirs(self.images.get(c.image_id)))

    def container_healthcheck(self, ref: str) -> dict:
        from nanovisor.engine.health import run_once

        return run_once(self, self._running(ref))

    def _running(self, ref: str) -> Container:
        c = self.get(ref)
        if not c.running:
            raise Conflict(f"Container {c.id} is not running")
        return c

    def container_logs(self, ref: str, stdout: bool = True, stderr: bool = True, follow: bool = False,
                       since: float = 0, until: float = 0, timestamps: bool = False,
                       tail: str = "all") -> Iterator[tuple[int, bytes]]:
        return stdio.logs(self, self.get(ref), stdout, stderr, follow, since, until, timestamps, tail)

    def container_attach(self, ref: str, stdin: bool = False, stdout: bool = True, stderr: bool = True,
                         logs: bool = False, stream: bool = True) -> StreamSession:
        return stdio.attach(self, self.get(ref), stdin, stdout, stderr, logs, stream)

    def container_resize(self, ref: str, height: int, width: int) -> None:
        c = self._running(ref)
        self.lifecycle.monitor(c).resize(height, width)

    def container_archive_stat(self, ref: str, path: str) -> dict:
        from nanovisor.engine import files

        return files.stat(self, self.get(ref), path)

    def container_archive_get(self, ref: str, path: str) -> tuple[dict, Iterator[bytes]]:
        from nanovisor.engine import files

        return files.get_archive(self, self.get(ref), path)

    def container_archive_put(self, ref: str, path: str, tar_stream: BinaryIO,
                              no_overwrite_dir_non_dir: bool = False, copy_uid_gid: bool = False) -> None:
        from nanovisor.engine import files

        files.put_archive(self, self.get(ref), path, tar_stream)

    def container_export(self, ref: str) -> Iterator[bytes]:
        from nanovisor.engine import files

        c = self.get(ref)
        self.lifecycle.event(c, "export")
        return files.export(self, c)

    def container_prune(self, filters: dict[str, list[str]] | None = None) -> dict:
        return listing.prune_containers(self, filters)

    # exec --------------------------------------------------------------------------------------------
    def exec_create(self, ref: str, body: dict) -> dict:
        from nanovisor.engine import execs

        return execs.create(self, self._running(ref), body)

    def exec_start(self, exec_id: str, detach: bool = False, tty: bool | None = None):
        from nanovisor.engine import execs

        return execs.start(self, exec_id, detach, tty)

    def exec_resize(self, exec_id: str, height: int, width: int) -> None:
        from nanovisor.engine import execs

        execs.resize(self, exec_id, height, width)

    def exec_inspect(self, exec_id: str) -> dict:
        from nanovisor.engine import execs

        return execs.inspect(self, exec_id)

    # images ------------------------------------------------------------------------------------------
    def image_list(self, all: bool = False, filters: dict[str, list[str]] | None = None) -> list[dict]:
        from nanovisor.engine.imagefilters import list_images

        return list_images(self.images, filters or {}, all)

    def image_inspect(self, ref: str) -> dict:
        return self.images.inspect_dict(self.images.resolve(ref))

    def image_history(self, ref: str) -> list[dict]:
        return self.images.history(ref)

    def image_tag(self, ref: str, repo: str, tag: str | None = None) -> None:
        imageops.tag(self.images, self.event_log, ref, repo, tag)

    def image_remove(self, ref: str, force: bool = False, noprune: bool = False) -> list[dict]:
        return imageops.remove(self.images, self.event_log, ref, force, noprune)

    def image_load(self, stream: BinaryIO) -> list[str]:
        return imageops.load(self.images, self.event_log, stream)

    def image_save(self, refs: list[str]) -> Iterator[bytes]:
        return imageops.save(self.images, refs)

    def image_import(self, stream: BinaryIO, repo: str | None = None, tag: str | None = None,
                     changes: list[str] | None = None, message: str = "") -> str:
        return imageops.import_tar(self.images, self.event_log, stream, repo, tag, changes, message)

    def _registry_options(self) -> dict:
        from nanovisor.images.registry import DEFAULT_INSECURE

        return {"insecure_registries": list(DEFAULT_INSECURE) + list(self.insecure_registries)}

    def image_pull(self, ref: str, platform: str | None = None, auth=None) -> Iterator[dict]:
        """dockerd's progress messages for POST /images/create?fromImage=; raises at the end on error."""
        return imageops.pull(self.images, self.event_log, ref, self._registry_options(), platform, auth)

    def image_push(self, ref: str, auth=None) -> Iterator[dict]:
        return imageops.push(self.images, self.event_log, ref, self._registry_options(), auth)

    def registry_login(self, server: str | None, username: str, password: str) -> dict:
        """POST /auth: checks the credentials against the registry (the client stores them)."""
        from nanovisor.images.registry import login

        return login(server, username, password, save=False, **self._registry_options())

    def image_prune(self, filters: dict[str, list[str]] | None = None) -> dict:
        return imageops.prune(self.images, filters)

    # volumes -----------------------------------------------------------------------------------------
    def volume_create(self, body: dict) -> dict:
        info = self.volumes.create(body.get("Name") or None, body.get("Labels"), body.get("DriverOpts"),
                                   body.get("Driver") or "local")
        self.event_log.emit("volume", "create", info["Name"], {"driver": "local"})
        return info

    def volume_list(self, filters: dict[str, list[str]] | None = None) -> dict:
        return {"Volumes": list_volumes(self.volumes, self._volume_users(), filters or {}), "Warnings": []}

    def _volume_users(self) -> dict[str, list[str]]:
        return volume_users(self.containers)

    def volume_inspect(self, name: str) -> dict:
        return self.volumes.inspect(name)

    def volume_remove(self, name: str, force: bool = False) -> None:
        if force and not self.volumes.exists(name):
            return
        self.volumes.remove(name, self._volume_users().get(name, []))
        self.event_log.emit("volume", "destroy", name, {"driver": "local"})

    def volume_prune(self, filters: dict[str, list[str]] | None = None) -> dict:
        return prune_volumes(self.volumes, self._volume_users(), filters or {}, self.volume_remove)

    # networks ----------------------------------------------------------------------------------------
    def network_list(self, filters: dict[str, list[str]] | None = None) -> list[dict]:
        if self.network is not None:
            return self.network.list(filters)
        from nanovisor.engine.system import builtin_networks

        return builtin_networks()

    def _networks(self):
        if self.network is None:
            raise InvalidParameter("networking is not available on this host")
        return self.network

    def network_create(self, body: dict) -> dict:
        result = self._networks().create(body)
        self.event_log.emit("network", "create", result.get("Id", ""), {"name": body.get("Name", "")})
        return result

    def network_remove(self, ref: str) -> None:
        info = self._networks().inspect(ref)
        self.network.remove(ref)
        self.event_log.emit("network", "destroy", info["Id"], {"name": info["Name"]})

    def scratch_prune(self) -> int:
        """Removes the temporary work (build contexts, uploads, layers being unpacked) of processes that are
        gone; bytes reclaimed."""
        return reconcile.clean_scratch(self.paths)

    def network_prune(self, filters: dict[str, list[str]] | None = None) -> dict:
        return self._networks().prune(filters)

    def network_connect(self, ref: str, container: str, endpoint_config: dict | None = None) -> None:
        """Connects a container; a running one gets the interface now, a stopped one at its next start."""
        net, cid = netconnect.connect(self, self._networks(), ref, container, endpoint_config)
        self.event_log.emit("network", "connect", net["Id"], {"container": cid, "name": net["Name"]})

    def network_disconnect(self, ref: str, container: str, force: bool = False) -> None:
        net, cid = netconnect.disconnect(self, self._networks(), ref, container, force)
        self.event_log.emit("network", "disconnect", net["Id"], {"container": cid, "name": net["Name"]})

    def container_port(self, ref: str) -> dict:
        """NetworkSettings.Ports: {"80/tcp": [{"HostIp": ..., "HostPort": ...}]}."""
        return views.network_settings(self.get(ref)).get("Ports") or {}

    def network_inspect(self, ref: str) -> dict:
        if self.network is not None:
            return self.network.inspect(ref)
        from nanovisor.engine.system import builtin_networks

        for n in builtin_networks():
            if ref in (n["Name"], n["Id"]):
                return n
        raise NotFound(f"network {ref} not found")

    # system ------------------------------------------------------------------------------------------
    def version(self) -> dict:
        from nanovisor.engine import system

        return system.version()

    def info(self) -> dict:
        from nanovisor.engine import system

        return system.info(self)

    def system_df(self) -> dict:
        from nanovisor.engine import system

        return system.df(self)

    def events(self, since: float | None = None, until: float | None = None,
                      filters: dict[str, list[str]] | None = None) -> Iterator[dict]:
        from nanovisor.engine.system import event_matcher

        return self.event_log.read(since, until, event_matcher(filters or {}))


def _networking_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("pyroute2") is not None
