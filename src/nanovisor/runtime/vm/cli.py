"""`nanovisor-vm-runtime`: the runc command line, backed by a microVM per container.

Global flags: --root DIR (state, default /run/nanovisor-vm), --log/--log-format/--debug/--systemd-cgroup
(accepted for runc compatibility). Commands: create, start, run, state, list, kill, delete, pause, resume, ps,
events, exec, update, features. Errors are printed on stderr and exit 1, as runc does.
"""

from __future__ import annotations

import argparse
import array
import datetime as dt
import json
import os
import shutil
import signal
import socket
import sys
import time
import tty
from pathlib import Path

from nanovisor.runtime.vm import bundle as bundle_mod
from nanovisor.runtime.vm import net as vmnet
from nanovisor.runtime.vm.state import Container, RuntimeError_, connect_unix, container

OCI_VERSION = "1.0.2"
VERSION = "0.1.0"


def _signal(s: str) -> int:
    s = s.upper()
    if s.isdigit():
        return int(s)
    name = s if s.startswith("SIG") else "SIG" + s
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise RuntimeError_(f"unknown signal {s!r}") from None


def _send_console(sock_path: str, master: int, name: str) -> None:
    """Hand the pty master to whoever holds the console socket (conmon), as runc does."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        connect_unix(s, Path(sock_path))
        s.sendmsg([name.encode()], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [master]))])


def _open_console(sock_path: str) -> int:
    master, slave = os.openpty()
    tty.setraw(slave)  # the guest's pty does the line discipline; this one only carries bytes
    _send_console(sock_path, master, os.ttyname(slave))
    os.close(master)
    return slave


def _netns(spec: dict) -> str | None:
    for ns in (spec.get("linux") or {}).get("namespaces") or []:
        if ns.get("type") == "network" and ns.get("path"):
            return ns["path"]
    return None


def _read_report(fd: int) -> str:
    chunks = []
    while True:
        b = os.read(fd, 4096)
        if not b:
            break
        chunks.append(b)
    os.close(fd)
    msg = b"".join(chunks)
    return "" if msg == b"\0" else (msg.decode(errors="replace") or "shim died during create")


def _cleanup_dir(c: Container) -> None:
    if os.environ.get("NANOVISOR_VM_DEBUG"):  # keep logs (console, qemu, virtiofsd) for a post-mortem
        return
    shutil.rmtree(c.dir, ignore_errors=True)


def create(a: argparse.Namespace, foreground: bool = False) -> int:
    from nanovisor.runtime.vm import shim
    shim.trace("create-enter")

    c = container(a.root, a.id)
    bundle = Path(a.bundle or ".").resolve()
    spec = json.loads((bundle / "config.json").read_text())
    plan = bundle_mod.plan(bundle)
    if vmnet.host_network(spec):
        raise RuntimeError_(vmnet.HOST_NETWORK_ERROR)
    netns = _netns(spec)
    if netns and vmnet.netns_in_use(netns):
        raise RuntimeError_(vmnet.SHARED_NETNS_ERROR)
    if plan.tty and not a.console_socket and not foreground:
        raise RuntimeError_("cannot allocate tty if runc will detach without setting console socket")
    if not plan.tty and a.console_socket:
        raise RuntimeError_("cannot use console socket if runc will not detach or allocate tty")
    c.root.mkdir(parents=True, exist_ok=True, mode=0o711)
    try:
        c.dir.mkdir(mode=0o711)
    except FileExistsError:
        raise RuntimeError_(f"container with id exists: {a.id}") from None
    tty_fd = None
    try:
        if plan.tty and a.console_socket:
            tty_fd = _open_console(a.console_socket)
        elif plan.tty:
            tty_fd = os.dup(0) if os.isatty(0) else None
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            os.setsid()
            if tty_fd is not None:
                import fcntl
                import termios
                fcntl.ioctl(tty_fd, termios.TIOCSCTTY, 0)
            shim.run(c, plan, w, tty_fd, netns)
        os.close(w)
        err = _read_report(r)
        shim.trace("create-report")
    except BaseException:
        _cleanup_dir(c)
        raise
    if tty_fd is not None:
        os.close(tty_fd)
    if err:
        os.waitpid(pid, 0) if foreground else None
        _cleanup_dir(c)
        raise RuntimeError_(f"nanovisor-vm create failed: unable to start container process: {err}")
    created = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    c.save({"ociVersion": spec.get("ociVersion", OCI_VERSION), "id": a.id, "pid": pid, "status": "created",
            "bundle": str(bundle), "rootfs": str(plan.rootfs), "created": created, "owner": "",
            "annotations": spec.get("annotations") or {}}, pid)
    if a.pid_file:
        tmp = Path(a.pid_file + ".tmp")
        tmp.write_text(str(pid))
        tmp.rename(a.pid_file)
    return pid


def start(a: argparse.Namespace) -> None:
    from nanovisor.runtime.vm import client

    c = container(a.root, a.id)
    st = c.load()
    status = c.status(st)
    if status != "created":
        raise RuntimeError_("cannot start a container that has stopped" if status == "stopped"
                            else "cannot start an already running container")
    client.call(c, {"op": "start"})


def state_obj(c: Container) -> dict:
    st = c.load()
    status = c.status()
    return {**st, "status": status, "pid": st["pid"] if status != "stopped" else 0}


def cmd_state(a: argparse.Namespace) -> None:
    print(json.dumps(state_obj(container(a.root, a.id)), indent=2))


def cmd_list(a: argparse.Namespace) -> None:
    root = Path(a.root)
    items = []
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        try:
            items.append(state_obj(Container(root, d.name)))
        except RuntimeError_:
            continue
    if a.format == "json":
        print(json.dumps(items))
        return
    print(f"{'ID':<20}{'PID':<10}{'STATUS':<10}{'BUNDLE':<40}{'CREATED':<32}OWNER")
    for s in items:
        print(f"{s['id']:<20}{s['pid']:<10}{s['status']:<10}{s['bundle']:<40}{s['created']:<32}{s['owner']}")


def cmd_kill(a: argparse.Namespace) -> None:
    from nanovisor.runtime.vm import client

    c = container(a.root, a.id)
    st = c.load()
    if c.status(st) == "stopped":
        raise RuntimeError_("container not running")
    client.call(c, {"op": "kill", "signal": _signal(a.signal), "all": a.all})


def _kill_pid(pid: int, expect: str) -> None:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return
    if expect.encode() in cmd:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _wait_gone(pids: list[int], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end and any(Path(f"/proc/{p}").exists() and
                                         "Z" not in _proc_state(p) for p in pids):
        time.sleep(0.02)


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"


def destroy(c: Container) -> None:
    """Kill whatever is left (shim, qemu, virtiofsd) and remove the state directory."""
    pids = []
    shim = c.shim_pid()
    if shim:
        try:
            os.kill(shim, signal.SIGKILL)
            pids.append(shim)
        except ProcessLookupError:
            pass
    try:
        qemu, fsd = (int(x) for x in (c.dir / "pids").read_text().split())
        _kill_pid(qemu, "qemu")
        _kill_pid(fsd, "virtiofsd")
        pids += [qemu, fsd]
    except (OSError, ValueError):
        pass
    _wait_gone(pids)
    shutil.rmtree(c.dir, ignore_errors=True)


def cmd_delete(a: argparse.Namespace) -> None:
    c = container(a.root, a.id)
    if not c.exists():
        if a.force or c.dir.exists():
            destroy(c)
            if a.force:
                return
        raise RuntimeError_("container does not exist")
    status = c.status(c.load())
    if status in ("running", "paused") and not a.force:
        raise RuntimeError_(f"cannot delete container {a.id} that is not stopped: {status}")
    destroy(c)


def cmd_pause(a: argparse.Namespace, resume: bool = False) -> None:
    from nanovisor.runtime.vm import client

    c = container(a.root, a.id)
    status = c.status(c.load())
    if resume and status != "paused":
        raise RuntimeError_("container not paused")
    if not resume and status != "running":
        raise RuntimeError_("container not running")
    client.qmp(c, "cont" if resume else "stop")
    if resume:
        (c.dir / "paused").unlink(missing_ok=True)
    else:
        (c.dir / "paused").touch()


def _running(c: Container) -> None:
    status = c.status(c.load())
    if status == "stopped":
        raise RuntimeError_("container not running")
    if status == "paused":
        raise RuntimeError_("container is paused")


def _ps_rows(c: Container) -> tuple[int, list[list[str]]]:
    from nanovisor.runtime.vm import client

    lines = client.call(c, {"op": "ps"})["data"].splitlines()
    btime = int(lines[0].split()[1]) if lines and lines[0].startswith("btime") else 0
    return btime, [ln.split(" ", 6) for ln in lines[1:] if ln.strip()]


def _user_names(rootfs: str) -> dict[int, str]:
    from nanovisor.runtime.users import scoped_path

    names = {0: "root"}
    try:
        with open(scoped_path(rootfs, "/etc/passwd")) as f:
            for line in f:
                parts = line.split(":")
                if len(parts) > 2 and parts[2].isdigit():
                    names.setdefault(int(parts[2]), parts[0])
    except (OSError, ValueError):
        pass
    return names


def cmd_ps(a: argparse.Namespace) -> None:
    """json: the container's pids (as the container sees them). table: `ps -ef` columns, like runc's table,
    computed in the guest (host `ps` cannot see inside the VM) — what `docker top` shows."""
    c = container(a.root, a.id)
    _running(c)
    btime, rows = _ps_rows(c)
    if a.format == "json":
        print(json.dumps(sorted(int(r[0]) for r in rows)))
        return
    hz = os.sysconf("SC_CLK_TCK")
    names = _user_names(c.load().get("rootfs", "/nonexistent"))
    print(f"{'UID':<8} {'PID':>5} {'PPID':>5} {'C':>2} {'STIME':<5} {'TTY':<8} {'TIME':>8} CMD")
    for pid, ppid, uid, start, cpu, tty_nr, cmd in sorted(rows, key=lambda r: int(r[0])):
        stime = time.strftime("%H:%M", time.localtime(btime + int(start) // hz))
        secs = int(cpu) // hz
        tty_name = "?" if int(tty_nr) == 0 else f"pts/{os.minor(int(tty_nr))}"
        user = names.get(int(uid), uid)
        print(f"{user:<8} {pid:>5} {ppid:>5} {0:>2} {stime:<5} {tty_name:<8} "
              f"{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d} {cmd}")


def stats(c: Container) -> dict:
    from nanovisor.runtime.vm import client

    cpu, user, kernel, mem, pids, limit = (int(x) for x in client.call(c, {"op": "stats"})["data"].split())
    return {"type": "stats", "id": c.id, "data": {
        "cpu": {"usage": {"total": cpu, "user": user, "kernel": kernel}},
        "memory": {"usage": {"usage": mem, "limit": limit}, "raw": {}},
        "pids": {"current": pids},
    }}


def cmd_events(a: argparse.Namespace) -> None:
    c = container(a.root, a.id)
    _running(c)
    if a.stats:
        print(json.dumps(stats(c)))
        return
    interval = float(a.interval.rstrip("s")) if a.interval else 5.0
    while c.status(c.load()) != "stopped":
        try:
            print(json.dumps(stats(c)), flush=True)
        except RuntimeError_:
            break
        time.sleep(interval)


def cmd_exec(a: argparse.Namespace) -> int | None:
    from nanovisor.runtime.vm import client

    c = container(a.root, a.id)
    status = c.status(c.load())
    if status == "stopped":
        raise RuntimeError_("exec failed: cannot exec in a stopped container")
    if status == "paused":
        raise RuntimeError_("exec failed: cannot exec in a paused container")
    if a.process:
        proc = json.loads(Path(a.process).read_text())
    else:
        if not a.command:
            raise RuntimeError_("exec: args must not be empty")
        bundle_spec = json.loads((Path(c.load()["bundle"]) / "config.json").read_text())
        proc = dict(bundle_spec.get("process") or {})
        proc.update({"args": a.command, "terminal": a.tty})
        if a.env:
            proc["env"] = [*(proc.get("env") or []), *a.env]
        if a.cwd:
            proc["cwd"] = a.cwd
        if a.user:
            uid, _, gid = a.user.partition(":")
            proc["user"] = {"uid": int(uid), "gid": int(gid or 0)}
    if a.tty:
        proc["terminal"] = True
    kv = bundle_mod.process_kv(proc)
    tty_fd = None
    if proc.get("terminal"):
        if a.console_socket:
            tty_fd = _open_console(a.console_socket)
        elif os.isatty(0):
            tty_fd = 0
        elif a.detach:
            raise RuntimeError_("cannot allocate tty if runc will detach without setting console socket")
    if not a.detach:
        client.exec_relay(c, kv, tty_fd, -1)  # never returns
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.setsid()
        if tty_fd is not None:
            import fcntl
            import termios
            fcntl.ioctl(tty_fd, termios.TIOCSCTTY, 0)
        try:
            client.exec_relay(c, kv, tty_fd, w)
        finally:
            os._exit(255)
    os.close(w)
    if tty_fd is not None:
        os.close(tty_fd)
    err = _read_report(r)
    if err:
        os.waitpid(pid, 0)
        raise RuntimeError_(f"exec failed: unable to start container process: {err}")
    if a.pid_file:
        tmp = Path(a.pid_file + ".tmp")
        tmp.write_text(str(pid))
        tmp.rename(a.pid_file)
    return None


def cmd_run(a: argparse.Namespace) -> None:
    """runc run: create + start in the foreground, exit with the container's status."""
    from nanovisor.runtime.vm import client
    from nanovisor.runtime.vm.shim import exit_like

    pid = create(a, foreground=True)
    c = container(a.root, a.id)
    client.call(c, {"op": "start"})
    _, status = os.waitpid(pid, 0)
    if not a.detach:
        destroy(c)
    exit_like(status)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nanovisor-vm-runtime", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default="/run/nanovisor-vm")
    p.add_argument("--log")
    p.add_argument("--log-format")
    p.add_argument("--debug", action="store_true")
    p.add_argument("--systemd-cgroup", action="store_true")
    p.add_argument("--rootless")
    p.add_argument("-v", "--version", action="store_true")
    sub = p.add_subparsers(dest="cmd")
    for name in ("create", "run"):
        s = sub.add_parser(name)
        s.add_argument("--bundle", "-b")
        s.add_argument("--pid-file")
        s.add_argument("--console-socket")
        s.add_argument("--no-pivot", action="store_true")
        s.add_argument("--no-new-keyring", action="store_true")
        s.add_argument("--preserve-fds", type=int, default=0)
        s.add_argument("--detach", "-d", action="store_true")
        s.add_argument("id")
    for name in ("start", "state", "pause", "resume"):
        sub.add_parser(name).add_argument("id")
    s = sub.add_parser("list")
    s.add_argument("--format", "-f", default="table")
    s.add_argument("--quiet", "-q", action="store_true")
    s = sub.add_parser("kill")
    s.add_argument("--all", "-a", action="store_true")
    s.add_argument("id")
    s.add_argument("signal", nargs="?", default="SIGTERM")
    s = sub.add_parser("delete")
    s.add_argument("--force", "-f", action="store_true")
    s.add_argument("id")
    s = sub.add_parser("ps")
    s.add_argument("--format", "-f", default="table")
    s.add_argument("id")
    s.add_argument("ps_args", nargs="*")
    s = sub.add_parser("events")
    s.add_argument("--stats", action="store_true")
    s.add_argument("--interval", default="5s")
    s.add_argument("id")
    s = sub.add_parser("exec")
    s.add_argument("--process", "-p")
    s.add_argument("--detach", "-d", action="store_true")
    s.add_argument("--pid-file")
    s.add_argument("--tty", "-t", action="store_true")
    s.add_argument("--console-socket")
    s.add_argument("--cwd")
    s.add_argument("--env", "-e", action="append")
    s.add_argument("--user", "-u")
    s.add_argument("--preserve-fds", type=int, default=0)
    s.add_argument("--no-new-privs", action="store_true")
    s.add_argument("--cap", "-c", action="append")
    s.add_argument("--process-label")
    s.add_argument("--apparmor")
    s.add_argument("--cgroup")
    s.add_argument("id")
    s.add_argument("command", nargs=argparse.REMAINDER)
    s = sub.add_parser("update")
    s.add_argument("--resources", "-r")
    s.add_argument("id")
    sub.add_parser("features")
    return p


def main(argv: list[str] | None = None) -> int:
    a, extra = parser().parse_known_args(argv)
    if a.version:
        print(f"nanovisor-vm-runtime version {VERSION}\nspec: {OCI_VERSION}")
        return 0
    try:
        if a.cmd == "create":
            create(a)
        elif a.cmd == "run":
            cmd_run(a)
        elif a.cmd == "start":
            start(a)
        elif a.cmd == "state":
            cmd_state(a)
        elif a.cmd == "list":
            cmd_list(a)
        elif a.cmd == "kill":
            cmd_kill(a)
        elif a.cmd == "delete":
            cmd_delete(a)
        elif a.cmd in ("pause", "resume"):
            cmd_pause(a, resume=a.cmd == "resume")
        elif a.cmd == "ps":
            cmd_ps(a)
        elif a.cmd == "events":
            cmd_events(a)
        elif a.cmd == "exec":
            cmd_exec(a)
        elif a.cmd == "update":
            container(a.root, a.id).load()
            if a.resources and a.resources != "-":
                json.loads(Path(a.resources).read_text())
            elif a.resources == "-":
                json.load(sys.stdin)
            # the VM is sized at create; live resizing (balloon/hotplug) is not supported yet: accept and keep
        elif a.cmd == "features":
            print(json.dumps({"ociVersionMin": "1.0.0", "ociVersionMax": OCI_VERSION,
                              "hooks": [], "mountOptions": sorted(bundle_mod._FLAGS),
                              "annotations": {"io.nanovisor.isolation": "vm"}}))
        else:
            parser().print_help()
            return 1
    except (RuntimeError_, OSError, ValueError) as e:
        _log_error(a, str(e))
        return 255 if a.cmd == "exec" else 1
    return 0


def _log_error(a: argparse.Namespace, msg: str) -> None:
    """runc style: the message on stderr (conmon relays it), and in --log in the --log-format asked for."""
    print(msg, file=sys.stderr)
    if not a.log:
        return
    now = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    line = json.dumps({"level": "error", "msg": msg, "time": now}) if a.log_format == "json" \
        else f'time="{now}" level=error msg={json.dumps(msg)}'
    try:
        with open(a.log, "a") as f:
            f.write(line + "\n")
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
