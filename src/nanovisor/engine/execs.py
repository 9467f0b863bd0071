"""Exec sessions: extra processes in a running container, started through the container's runtime.

The exec process is a child of the engine process that starts it (daemon or CLI); its record (and exit code)
is kept in the database so `exec inspect` works from either side.
"""

from __future__ import annotations

import json
import secrets

from nanovisor.engine.streams import ExecSession
from nanovisor.errors import Conflict, InvalidParameter, NanovisorError, no_such_exec
from nanovisor.store.execs import ExecRow, ExecTable


def _find(engine, exec_id: str) -> ExecRow:
    table = ExecTable(engine.db)
    row = table.get(exec_id)
    if row is None:
        rows = table.by_prefix(exec_id) if exec_id and all(c in "0123456789abcdef" for c in exec_id) else []
        if len(rows) != 1:
            raise no_such_exec(exec_id)
        row = rows[0]
    return row


def _load(engine, exec_id: str) -> tuple[str, dict, dict]:
    row = _find(engine, exec_id)
    return row.container_id, row.config, row.state


def _save_state(engine, exec_id: str, state: dict) -> None:
    ExecTable(engine.db).save_state(exec_id, state)


def ids_of(engine, container_id: str) -> list[str]:
    """The exec sessions of a container (inspect's ExecIDs)."""
    return ExecTable(engine.db).ids_of(container_id)


def create(engine, container, body: dict) -> dict:
    cmd = body.get("Cmd")
    if isinstance(cmd, str):
        cmd = [cmd]
    if not cmd:
        raise InvalidParameter("No exec command specified")
    if container.state.get("Paused"):
        raise Conflict(f"Container {container.id} is paused, unpause the container before exec")
    exec_id = secrets.token_hex(32)
    # Go's JSON decoding matches field names case-insensitively, and clients rely on it (docker-py sends
    # "detachKeys"): so does this
    by_lower = {k.lower(): v for k, v in body.items()}
    config = {k: by_lower.get(k.lower()) for k in ("AttachStdin", "AttachStdout", "AttachStderr", "Tty", "Env",
                                                   "User", "WorkingDir", "Privileged", "DetachKeys", "ConsoleSize")}
    config["Cmd"] = cmd
    if config.get("DetachKeys"):
        from nanovisor.engine.detachkeys import parse_detach_keys

        parse_detach_keys(config["DetachKeys"])  # a bad sequence is a 400 here, not at start
    state = {"Running": False, "ExitCode": None, "Pid": 0, "Started": False}
    ExecTable(engine.db).insert(ExecRow(exec_id, container.id, config, state))
    engine.lifecycle.event(container, "exec_create: " + " ".join(cmd), execID=exec_id)
    return {"Id": exec_id}


def start(engine, exec_id: str, detach: bool = False, tty: bool | None = None) -> ExecSession | None:
    from nanovisor.runtime.spec import build_exec_process

    cid, config, state = _load(engine, exec_id)
    if state.get("Started"):
        raise Conflict(f"Error: Exec command {exec_id} has already run")
    container = engine.get(cid)
    if not container.running:
        raise Conflict(f"Container {container.id} is not running")
    if tty is not None:
        config["Tty"] = tty
    bundle = engine.paths.bundle_dir(container.id)
    spec = json.loads((bundle / "config.json").read_text())
    process = build_exec_process(spec, config, spec["root"]["path"])
    process_file = bundle / f"exec-{exec_id[:16]}.json"
    process_file.write_text(json.dumps(process))
    runtime = engine.runtimes.get(container.runtime)
    want_tty = bool(config.get("Tty"))
    state.update(Started=True, Running=True)
    _save_state(engine, exec_id, state)
    engine.lifecycle.event(container, "exec_start: " + " ".join(config["Cmd"]), execID=exec_id)

    def on_exit(code: int) -> None:
        state.update(Running=False, ExitCode=code)
        _save_state(engine, exec_id, state)
        process_file.unlink(missing_ok=True)
        engine.lifecycle.event(container, "exec_die", execID=exec_id, exitCode=str(code))
        engine._execs.pop(exec_id, None)

    if detach:
        argv = runtime.exec_command(container.id, process_file, False, True, None, None)
        import subprocess

        proc = subprocess.run(argv, capture_output=True)
        if proc.returncode != 0:
            on_exit(126)
            raise NanovisorError(proc.stderr.decode(errors="replace").strip())
        state.update(Running=False)
        _save_state(engine, exec_id, state)
        return None
    try:
        session = ExecSession(
            lambda console: runtime.exec_command(container.id, process_file, want_tty, False, console, None),
            tty=want_tty, stdin=bool(config.get("AttachStdin")), on_exit=on_exit)
    except OSError as e:
        on_exit(126)
        from nanovisor.runtime.oci import start_error

        raise start_error(str(e)) from None
    state["Pid"] = session.pid
    _save_state(engine, exec_id, state)
    engine._execs[exec_id] = session
    size = config.get("ConsoleSize")
    if want_tty and size and len(size) == 2 and size[0]:
        session.resize(int(size[0]), int(size[1]))
    return session


def resize(engine, exec_id: str, height: int, width: int) -> None:
    _load(engine, exec_id)
    session = engine._execs.get(exec_id)
    if session is not None:
        session.resize(height, width)


def inspect(engine, exec_id: str) -> dict:
    row = _find(engine, exec_id)
    cid, config, state = row.container_id, row.config, row.state
    cmd = config.get("Cmd") or []
    return {"ID": row.id, "Running": state.get("Running", False),
            "ExitCode": state.get("ExitCode"), "ProcessConfig": {
                "tty": bool(config.get("Tty")), "entrypoint": cmd[0] if cmd else "", "arguments": cmd[1:],
                "privileged": bool(config.get("Privileged")), "user": config.get("User") or ""},
            "OpenStdin": bool(config.get("AttachStdin")), "OpenStderr": bool(config.get("AttachStderr")),
            "OpenStdout": bool(config.get("AttachStdout")), "CanRemove": False, "ContainerID": cid,
            "DetachKeys": config.get("DetachKeys") or "", "Pid": state.get("Pid", 0)}
