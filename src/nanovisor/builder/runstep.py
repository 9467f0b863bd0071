"""Where build steps touch a filesystem: RUN in a real container through the engine, COPY/ADD/WORKDIR in
an overlay mounted over the parent image (no container needed, and it works on `scratch`)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from nanovisor.builder.commit import container_layer
from nanovisor.builder.layertar import as_file, diff_tar
from nanovisor.engine.streams import STDERR
from nanovisor.errors import NanovisorError


class StepFailed(NanovisorError):
    """A RUN whose command exited non-zero; code is that exit code (the docker CLI exits with it)."""

    status = 500

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


RED, RESET = "\033[91m", "\033[0m"   # how dockerd's legacy builder marks a step's stderr in the stream


def run_container(engine, image_id: str, run: dict, cmd: list[str], extra_env: list[str], network_mode: str,
                  emit: Callable[[dict], None], shown_cmd: list[str],
                  extra_hosts: list[str] | None = None) -> str | None:
    """Runs cmd in a container of image_id, streams its output (stderr in red, as dockerd shows it), returns
    the diff_id of its changes."""
    network_mode = network_mode or "default"  # the default bridge, as dockerd's builder; none/host when asked
    env = list(run.get("Env") or [])
    keys = {e.partition("=")[0] for e in env}
    env += [e for e in extra_env if e.partition("=")[0] not in keys]
    body = {"Image": image_id, "Cmd": cmd, "Entrypoint": [""], "Env": env,
            "WorkingDir": run.get("WorkingDir") or "", "User": run.get("User") or "",
            "AttachStdout": True, "AttachStderr": True, "Tty": False, "OpenStdin": False,
            "HostConfig": {"NetworkMode": network_mode, "ExtraHosts": list(extra_hosts or []) or None}}
    cid = engine.container_create(body)["Id"]
    emit({"stream": f" ---> Running in {cid[:12]}\n"})
    try:
        engine.container_start(cid)
        for stream, line in engine.container_logs(cid, follow=True):
            text = line.decode("utf-8", errors="replace")
            emit({"stream": RED + text + RESET if stream == STDERR else text})
        code = engine.container_wait(cid)["StatusCode"]
        if code != 0:
            raise StepFailed(f"The command '{' '.join(shown_cmd)}' returned a non-zero code: {code}", code)
        return container_layer(engine, engine.get(cid))
    finally:
        try:
            engine.container_remove(cid, force=True, volumes=True)
            emit({"stream": f" ---> Removed intermediate container {cid[:12]}\n"})
        except NanovisorError as e:
            emit({"stream": f"Error removing intermediate container {cid[:12]}: {e}\n"})


@dataclass
class Scratch:
    rootfs: Path          # the merged view: write here
    upper: Path           # where the changes land
    lower: list[Path]     # the image's layers


@contextmanager
def mounted(engine, image_id: str) -> Iterator[Scratch]:
    """The image's rootfs as a writable overlay (image_id "" = empty), unmounted and removed afterwards."""
    from nanovisor.snapshots.overlay import OverlaySnapshot

    lower = engine.images.layer_dirs(engine.images.get(image_id)) if image_id else []
    engine.paths.tmp.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="build-mnt-", dir=engine.paths.tmp))
    snap = OverlaySnapshot(workdir)
    try:
        snap.prepare()
        merged = snap.mount(lower)
        yield Scratch(rootfs=merged, upper=snap.upper, lower=lower)
    finally:
        snap.remove()
        shutil.rmtree(workdir, ignore_errors=True)


def scratch_layer(engine, scratch: Scratch) -> str | None:
    chunks = diff_tar(scratch.upper, scratch.lower)
    if chunks is None:
        return None
    return engine.images.add_layer(as_file(chunks))
