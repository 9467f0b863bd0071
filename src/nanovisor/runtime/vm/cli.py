"""`nanovisor-vm-runtime`: the runc command line, backed by a microVM per container.

Global flags: --root DIR (state, default /run/nanovisor-vm), --log/--log-format/--debug/--systemd-cgroup
(accepted for runc compatibility). Commands here: create and run (they boot the VM), list, pause, resume, ps,
events, update, features. start, state, kill, delete and exec are the C fast path's alone
(guest/host/fastpath.c, the binary the engine runs); this module hands them over to it. Errors are printed on
stderr and exit 1, as runc does.
"""

from __future__ import annotations

import argparse
import array
import datetime as dt
import json
import os
import shutil
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
        (c.dir / "bundle").symlink_to(bundle)  # where the shim writes the engine's OOM marker (bundle/oom)
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


def state_obj(c: Container) -> dict:
    st = c.load()
    status = c.status()
    return {**st, "status": status, "pid": st["pid"] if status != "stopped" else 0}


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


def cmd_network(a: argparse.Namespace) -> None:
    """A live network connect/disconnect (as Kata's `kata-runtime kata-network`): the host half in the
    namespace (vmnet.resync), then the agent applies the guest half (NET frame) and answers."""
    from nanovisor.runtime.vm import client

    c = container(a.root, a.id)
    if c.status(c.load()) == "paused":  # its agent cannot answer; "cannot": the engine's 409
        raise RuntimeError_("cannot change the networks of a paused VM container: unpause it first")
    _running(c)
    spec = json.loads((Path(c.load()["bundle"]) / "config.json").read_text())
    netns = _netns(spec)
    if not netns:
        return
    rec = vmnet.load_record(c.dir)
    try:
        ops = vmnet.resync(netns, rec)
    finally:
        vmnet.save_record(c.dir, rec)
    err = client.call(c, {"op": "net", "data": vmnet.agent_ops(ops)})["data"]
    if err:
        raise RuntimeError_(err)


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


def _fast(a: argparse.Namespace, *args: str) -> None:
    """One of the commands only the C fast path serves (start, delete, ...), run to completion."""
    import subprocess

    from nanovisor.runtime.vm import guest

    r = subprocess.run([str(guest.host_tool("nanovisor-vm-runtime")), "--root", a.root, *args],
                       stderr=subprocess.PIPE, text=True)
    if r.returncode:
        raise RuntimeError_(r.stderr.strip())


def cmd_run(a: argparse.Namespace) -> None:
    """runc run: create + start in the foreground, exit with the container's status."""
    from nanovisor.runtime.vm.shim import exit_like

    pid = create(a, foreground=True)
    _fast(a, "start", a.id)
    _, status = os.waitpid(pid, 0)
    if not a.detach:
        _fast(a, "delete", "--force", a.id)
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
    for name in ("pause", "resume"):
        sub.add_parser(name).add_argument("id")
    s = sub.add_parser("list")
    s.add_argument("--format", "-f", default="table")
    s.add_argument("--quiet", "-q", action="store_true")
    s = sub.add_parser("ps")
    s.add_argument("--format", "-f", default="table")
    s.add_argument("id")
    s.add_argument("ps_args", nargs="*")
    s = sub.add_parser("events")
    s.add_argument("--stats", action="store_true")
    s.add_argument("--interval", default="5s")
    s.add_argument("id")
    s = sub.add_parser("update")
    s.add_argument("--resources", "-r")
    s.add_argument("id")
    sub.add_parser("features")
    s = sub.add_parser("network", help="not runc's: carry the changed interfaces of the container's network "
                       "namespace into its running VM (after the engine's network connect/disconnect)")
    s.add_argument("id")
    return p


FAST_ONLY = ("start", "state", "kill", "delete", "exec")


def _hand_over(argv: list[str]) -> None:
    """start/state/kill/delete/exec have one implementation, the C fast path: become it (same argv)."""
    from nanovisor.runtime.vm import guest

    flags_with_value = {"--root", "--log", "--log-format", "--rootless"}
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 2 if argv[i] in flags_with_value else 1
    if i < len(argv) and argv[i] in FAST_ONLY:
        binary = str(guest.host_tool("nanovisor-vm-runtime"))
        os.execv(binary, [binary, *argv])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    _hand_over(argv)
    a, extra = parser().parse_known_args(argv)
    if a.version:
        print(f"nanovisor-vm-runtime version {VERSION}\nspec: {OCI_VERSION}")
        return 0
    try:
        if a.cmd == "create":
            create(a)
        elif a.cmd == "run":
            cmd_run(a)
        elif a.cmd == "list":
            cmd_list(a)
        elif a.cmd in ("pause", "resume"):
            cmd_pause(a, resume=a.cmd == "resume")
        elif a.cmd == "ps":
            cmd_ps(a)
        elif a.cmd == "events":
            cmd_events(a)
        elif a.cmd == "update":
            from nanovisor.runtime.vm import update

            c = container(a.root, a.id)
            c.load()
            if a.resources and a.resources != "-":
                resources = json.loads(Path(a.resources).read_text())
            else:
                resources = json.load(sys.stdin)
            _running(c)
            update.update(c, resources)
        elif a.cmd == "network":
            cmd_network(a)
        elif a.cmd == "features":
            print(json.dumps({"ociVersionMin": "1.0.0", "ociVersionMax": OCI_VERSION,
                              "hooks": [], "mountOptions": sorted(bundle_mod._FLAGS),
                              "annotations": {"io.nanovisor.isolation": "vm"}}))
        else:
            parser().print_help()
            return 1
    except (RuntimeError_, OSError, ValueError) as e:
        _log_error(a, str(e))
        return 1
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
