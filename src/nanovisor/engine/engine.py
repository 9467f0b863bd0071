"""Engine facade: containers, images, volumes, networks, exec, system.

Everything it returns is shaped like the Docker Engine API (v1.50) so the API server passes it through and
the CLI prints it with Docker's own field names. Everything it raises is a nanovisor.errors type.
Usable in-process (embedded CLI) and behind `serve`; both may run on one root at the same time.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from nanovisor.engine import views
from nanovisor.engine.containers import Container, ContainerStore
from nanovisor.engine.create import create_container
from nanovisor.engine.events import EventLog
from nanovisor.engine.filters import container_matcher, match_labels
from nanovisor.engine.lifecycle import Lifecycle
from nanovisor.engine.logs import LogReader
from nanovisor.engine.state import Op, State
from nanovisor.engine.streams import AttachSession
from nanovisor.engine.volumes import VolumeStore
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
                 insecure_registries: list[str] | None = None) -> None:
        import os

        self.insecure_registries = list(insecure_registries or []) + \
            [r for r in os.environ.get("NANOVISOR_INSECURE_REGISTRIES", "").split(",") if r]
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
        self._execs: dict = {}
        self._started = time.time()

    def recover(self) -> None:
        """On `serve` start: watch running containers again, record exits that happened while nobody watched,
        and bring back containers whose restart policy says so (after a reboot their monitors are gone)."""
        if self.network is not None:
            try:
                self.network.restore()
            except Exception as e:  # a network that cannot be restored must not keep the API down
                print(f"nanovisor: network restore: {e}")
        for c in self.containers.list():
            policy = (c.host_config.get("RestartPolicy") or {}).get("Name") or "no"
            if c.running and self.lifecycle.monitor_alive(c):
                self.watch(c)
                continue
            fresh = self.lifecycle.reconcile(c)
            if fresh is None:
                continue
            stuck = fresh.status is State.RESTARTING  # its pending restart died with the last serve
            wants = policy in ("always", "unless-stopped") and fresh.status is State.EXITED \
                and not fresh.state.get("_ManualStop") and fresh.state.get("_StartSeq", 0) > 0
            if stuck or wants:
                try:
                    self.lifecycle.start(fresh, op=Op.RESPAWN if stuck else Op.START)
                except Exception as e:
                    print(f"nanovisor: restart {fresh.id[:12]}: {e}")

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
        return self.lifecycle.reconcile(self.containers.get(ref))

    def container_create(self, body: dict, name: str | None = None) -> dict:
        c = create_container(body, name, images=self.images, containers=self.containers, volumes=self.volumes,
                             runtimes=self.runtimes, network=lambda: self.network)
        self.paths.container_dir(c.id).mkdir(parents=True, exist_ok=True)
        self.lifecycle.snapshot(c).prepare()
        self.lifecycle.event(c, "create")
        warnings = []
        if c.host_config.get("NetworkMode") == "bridge" and not _networking_available():
            warnings.append("bridge networking is not available yet: the container gets loopback only")
        return {"Id": c.id, "Warnings": warnings}

    def container_list(self, all: bool = False, limit: int = -1, size: bool = False,
                       filters: dict[str, list[str]] | None = None) -> list[dict]:
        filters = filters or {}
        match = container_matcher(filters, self.containers.find, self._image_ids)
        now = time.time()
        out = []
        for c in self.containers.list():
            c = self.lifecycle.reconcile(c)
            if not all and not c.running and "status" not in filters and "exited" not in filters \
                    and c.state["Status"] != "restarting":
                continue
            if not match(c):
                continue
            item = views.summary(c, now)
            if size:
                item["SizeRw"] = _du(self.paths.container_dir(c.id) / "upper")
            out.append(item)
            if 0 < limit <= len(out):
                break
        return out

    def _image_ids(self, ref: str) -> set[str]:
        try:
            return {self.images.resolve(ref).id}
        except NotFound:
            return set()

    def container_inspect(self, ref: str, size: bool = False) -> dict:
        c = self.get(ref)
        out = views.inspect(c, self.paths)
        from nanovisor.engine import execs

        out["ExecIDs"] = execs.ids_of(self, c.id) or None
        if size:
            out["SizeRw"] = _du(self.paths.container_dir(c.id) / "upper")
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
        """In a long-lived process: notice the exit at once (pidfd) and reap; run the healthcheck."""
        from nanovisor.engine.health import HealthChecker, health_config

        cfg = health_config(c.config)
        if cfg is not None:
            HealthChecker(self, c, cfg).start()

        def run() -> None:
            self.lifecycle.wait_exit(c, None)
            try:
                self.lifecycle.reap(c)
            except Exception as e:  # keep the daemon alive; the next reader reconciles
                print(f"nanovisor: reap {c.id[:12]}: {e}")

        threading.Thread(target=run, name=f"watch-{c.id[:12]}", daemon=True).start()

    def container_stop(self, ref: str, timeout: int | None = None, signal: str | None = None) -> None:
        self.lifecycle.stop(ref, timeout, signal)

    def container_restart(self, ref: str, timeout: int | None = None, signal: str | None = None) -> None:
        self.lifecycle.restart(ref, timeout, signal)

    def container_kill(self, ref: str, signal: str = "KILL") -> None:
        self.lifecycle.kill(ref, signal)

    def container_waiter(self, ref: str, condition: str = "not-running") -> Callable[[], dict]:
        if condition in ("", None):
            condition = "not-running"
        if condition not in ("not-running", "next-exit", "removed"):
            raise InvalidParameter(f"invalid condition: \"{condition}\"")
        c = self.get(ref)
        seq = c.state.get("_StartSeq", 0)
        running_now = c.running
        since_ns = time.time_ns()
        # the run whose exit ends the wait: the current one, or (stopped, or restarting: moby counts a
        # restarting container as running) the next; a restart policy restarting it does not hide that exit
        restarting = c.state["Status"] == "restarting"
        target = seq if running_now else seq + 1

        def done(fresh: Container | None) -> dict | None:
            if fresh is None:  # auto-removed: its last exit code lives on in the die event
                return {"StatusCode": self._last_exit_code(c), "Error": None}
            if condition == "removed":
                return None
            if fresh.state.get("_ReapedSeq", 0) >= target:
                return _wait_result(fresh, self._last_exit_code(fresh, since_ns))
            return None

        def wait() -> dict:
            nonlocal c
            while True:
                fresh = self.containers.reload(c)
                if fresh is not None:
                    c = fresh
                    if fresh.running and not self.persistent:  # serve's watcher reaps; others reap here
                        self.lifecycle.wait_exit(fresh, 5.0)
                        self.lifecycle.reconcile(fresh)
                        fresh = self.containers.reload(fresh)
                result = done(fresh)
                if result is not None:
                    return result
                if fresh is not None and fresh.running and self.persistent:
                    self.lifecycle.reconcile(fresh)  # in case nobody watches it (started elsewhere)
                self.containers.wait_change(0.05)

        if condition == "not-running" and not running_now and not restarting:
            result = _wait_result(c)
            return lambda: result
        return wait

    def _last_exit_code(self, c: Container, since_ns: int = 0) -> int:
        """The exit code of the container's last exit, or with since_ns of its first exit after that time."""
        code = self.event_log.last_exit_code(c.id, since_ns)
        return c.state.get("ExitCode", 0) if code is None else code

    def container_wait(self, ref: str, condition: str = "not-running") -> dict:
        return self.container_waiter(ref, condition)()

    def container_remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        self.lifecycle.remove(self.containers.get(ref), force=force, volumes=volumes,
                              remove_volume=lambda name: self.volume_remove(name))

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
        c = self.get(ref)
        reader = LogReader(self.paths.container_dir(c.id) / "ctr.log")

        def still_running() -> bool:
            fresh = self.containers.reload(c)
            if fresh is None:
                return False
            fresh = self.lifecycle.reconcile(fresh)
            return fresh.running or fresh.state["Status"] == "restarting"

        return reader.read(stdout, stderr, still_running if follow else None, since, until, timestamps, tail)

    def container_attach(self, ref: str, stdin: bool = False, stdout: bool = True, stderr: bool = True,
                         logs: bool = False, stream: bool = True) -> AttachSession:
        c = self.get(ref)
        if logs:
            from nanovisor.engine.replay import LogsThenLive

            lines = self.container_logs(c.id, stdout=stdout, stderr=stderr)
            live = self.container_attach(c.id, stdin, stdout, stderr) if stream else None
            return LogsThenLive(lines, live, bool(c.config.get("Tty")))
        session = AttachSession(self.paths.bundle_dir(c.id), bool(c.config.get("Tty")),
                                stdin and bool(c.config.get("OpenStdin")), stdout, stderr)
        if c.running:
            session.connect()
            return session

        def on_created(_: Container) -> None:
            session.connect()

        cancel = self.lifecycle.on_created(c.id, on_created)
        original_close = session.close

        def close() -> None:
            cancel()
            original_close()

        session.close = close  # type: ignore[method-assign]
        return session

    def container_resize(self, ref: str, height: int, width: int) -> None:
        from nanovisor.engine.streams import resize_conmon

        c = self._running(ref)
        resize_conmon(self.paths.bundle_dir(c.id), height, width)

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
        filters = filters or {}
        until = filters.get("until")
        deleted, space = [], 0
        for c in self.containers.list():
            c = self.lifecycle.reconcile(c)
            if c.running or c.state["Status"] == "restarting":
                continue
            if "label" in filters and not match_labels(c.config.get("Labels") or {}, filters["label"]):
                continue
            if until:
                from nanovisor.engine.timefmt import parse_time_filter

                if c.created >= parse_time_filter(until[0]):
                    continue
            space += _du(self.paths.container_dir(c.id) / "upper")
            self.container_remove(c.id)
            deleted.append(c.id)
        self.event_log.emit("container", "prune", "", {"reclaimed": str(space)})
        return {"ContainersDeleted": deleted or None, "SpaceReclaimed": space}

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
        target = f"{repo}:{tag}" if tag else repo
        self.images.tag(ref, target)
        self.event_log.emit("image", "tag", self.images.resolve(ref).id, {"name": target})

    def image_remove(self, ref: str, force: bool = False, noprune: bool = False) -> list[dict]:
        result = self.images.remove(ref, force=force, noprune=noprune)
        self._collect_registry_blobs()
        for item in result:
            for action, value in item.items():
                self.event_log.emit("image", action.lower().replace("untagged", "untag").replace("deleted", "delete"),
                                 value, {"name": value})
        return result

    def image_load(self, stream: BinaryIO) -> list[str]:
        refs = self.images.load(stream)
        for ref in refs:
            self.event_log.emit("image", "load", ref, {"name": ref})
        return refs

    def image_save(self, refs: list[str]) -> Iterator[bytes]:
        for ref in refs:
            self.images.resolve(ref)  # fail before streaming anything
        return self.images.save(refs)

    def image_import(self, stream: BinaryIO, repo: str | None = None, tag: str | None = None,
                     changes: list[str] | None = None, message: str = "") -> str:
        ref = (f"{repo}:{tag}" if tag else repo) if repo else None
        image = self.images.import_tar(stream, ref, changes, message)
        self.event_log.emit("image", "import", image.id, {"name": ref or image.id})
        return image.id

    def _registry_options(self) -> dict:
        from nanovisor.images.registry import DEFAULT_INSECURE

        return {"insecure_registries": list(DEFAULT_INSECURE) + list(self.insecure_registries)}

    def image_pull(self, ref: str, platform: str | None = None, auth=None) -> Iterator[dict]:
        """dockerd's progress messages for POST /images/create?fromImage=; raises at the end on error."""
        from nanovisor.images.registry import pull_stream

        def messages() -> Iterator[dict]:
            yield from pull_stream(self.images, ref, platform=platform, auth=auth, **self._registry_options())
            image = self.images.resolve(ref)
            self.event_log.emit("image", "pull", ref, {"name": ref, "id": image.id})
        return messages()

    def image_push(self, ref: str, auth=None) -> Iterator[dict]:
        from nanovisor.images.registry import push_stream

        self.images.resolve(ref)  # fail before streaming anything
        def messages() -> Iterator[dict]:
            yield from push_stream(self.images, ref, auth=auth, **self._registry_options())
            self.event_log.emit("image", "push", ref, {"name": ref})
        return messages()

    def registry_login(self, server: str | None, username: str, password: str) -> dict:
        """POST /auth: checks the credentials against the registry (the client stores them)."""
        from nanovisor.images.registry import login

        return login(server, username, password, save=False, **self._registry_options())

    def image_prune(self, filters: dict[str, list[str]] | None = None) -> dict:
        filters = filters or {}
        dangling = (filters.get("dangling") or ["true"])[0].lower() in ("1", "true")
        result = self.images.prune(dangling_only=dangling, filters=filters)
        self._collect_registry_blobs()
        return result

    def _collect_registry_blobs(self) -> None:
        """Compressed blobs kept for push are dropped with the last image that used them."""
        from nanovisor.images.registry import blobmeta

        blobmeta.collect_garbage(self.images)

    # volumes -----------------------------------------------------------------------------------------
    def volume_create(self, body: dict) -> dict:
        info = self.volumes.create(body.get("Name") or None, body.get("Labels"), body.get("DriverOpts"),
                                   body.get("Driver") or "local")
        self.event_log.emit("volume", "create", info["Name"], {"driver": "local"})
        return info

    def volume_list(self, filters: dict[str, list[str]] | None = None) -> dict:
        filters = filters or {}
        used = self._volume_users()
        out = []
        for v in self.volumes.list():
            if "name" in filters and not any(f in v["Name"] for f in filters["name"]):
                continue
            if "label" in filters and not match_labels(v["Labels"], filters["label"]):
                continue
            if "dangling" in filters:
                want = filters["dangling"][0].lower() in ("1", "true")
                if want == bool(used.get(v["Name"])):
                    continue
            if "driver" in filters and v["Driver"] not in filters["driver"]:
                continue
            out.append(v)
        return {"Volumes": out, "Warnings": []}

    def _volume_users(self) -> dict[str, list[str]]:
        users: dict[str, list[str]] = {}
        for c in self.containers.list():
            for p in c.spec.get("MountPoints") or []:
                if p["Type"] == "volume":
                    users.setdefault(p["Name"], []).append(c.id)
        return users

    def volume_inspect(self, name: str) -> dict:
        return self.volumes.inspect(name)

    def volume_remove(self, name: str, force: bool = False) -> None:
        if force and not self.volumes.exists(name):
            return
        self.volumes.remove(name, self._volume_users().get(name, []))
        self.event_log.emit("volume", "destroy", name, {"driver": "local"})

    def volume_prune(self, filters: dict[str, list[str]] | None = None) -> dict:
        filters = filters or {}
        used = self._volume_users()
        all_volumes = (filters.get("all") or ["false"])[0].lower() in ("1", "true")
        deleted, space = [], 0
        for v in self.volumes.list():
            if used.get(v["Name"]):
                continue
            if not all_volumes and "com.docker.volume.anonymous" not in v["Labels"]:
                continue
            if "label" in filters and not match_labels(v["Labels"], filters["label"]):
                continue
            space += self.volumes.size(v["Name"])
            self.volume_remove(v["Name"])
            deleted.append(v["Name"])
        return {"VolumesDeleted": deleted or None, "SpaceReclaimed": space}

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

    def network_prune(self, filters: dict[str, list[str]] | None = None) -> dict:
        return self._networks().prune(filters)

    def network_connect(self, ref: str, container: str, endpoint_config: dict | None = None) -> None:
        """Connects a container; a running one gets the interface now, a stopped one at its next start."""
        from nanovisor.network.wanted import record_connect

        net = self._networks().inspect(ref)
        c = self.get(container)
        with self.lifecycle.locks.hold(c.id):
            c = self.containers.reload(c) or c
            record_connect(c.host_config, c.spec.setdefault("NetworkingConfig", {}), {net["Name"], net["Id"]},
                           endpoint_config or {})
            if c.running:
                result = self.network.connect(ref, c.id, endpoint_config or {})
                self._network_changed(c, result)
            self.containers.save_spec(c)
        self.event_log.emit("network", "connect", net["Id"], {"container": c.id, "name": net["Name"]})

    def network_disconnect(self, ref: str, container: str, force: bool = False) -> None:
        from nanovisor.network.wanted import record_disconnect

        net = self._networks().inspect(ref)
        c = self.get(container)
        with self.lifecycle.locks.hold(c.id):
            c = self.containers.reload(c) or c
            record_disconnect(c.host_config, c.spec.setdefault("NetworkingConfig", {}), {net["Name"], net["Id"]})
            if c.running:
                result = self.network.disconnect(ref, c.id, force)
                self._network_changed(c, result)
            self.containers.save_spec(c)
        self.event_log.emit("network", "disconnect", net["Id"], {"container": c.id, "name": net["Name"]})

    def _network_changed(self, c: Container, result: dict) -> None:
        """A running container's endpoints changed: its /etc/hosts, resolv.conf and inspect follow."""
        if not result:
            return
        c.spec["NetworkSettings"] = result.get("NetworkSettings", c.spec.get("NetworkSettings"))
        cdir = self.paths.container_dir(c.id)
        for name, key in (("hosts", "hosts"), ("resolv.conf", "resolv_conf")):
            if result.get(key) is not None:
                (cdir / name).write_text(result[key])  # bind-mounted file: written in place

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


def _wait_result(c: Container, code: int | None = None) -> dict:
    err = c.state.get("Error") or ""
    return {"StatusCode": c.state.get("ExitCode", 0) if code is None else code,
            "Error": {"Message": err} if err else None}


def _du(path: Path) -> int:
    total = 0
    try:
        for p in path.rglob("*"):
            try:
                st = p.lstat()
                total += st.st_size if not p.is_dir() else 0
            except OSError:
                pass
    except OSError:
        pass
    return total


def _networking_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("pyroute2") is not None
