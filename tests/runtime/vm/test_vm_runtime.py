"""nanovisor-vm-runtime driven exactly as the engine drives an OCI runtime (conmon + runtime CLI), side by side
with runc where behaviour must match. Every test boots real microVMs (TCG here), so they are few and broad."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path

import pytest

from nanovisor.runtime.vm import guest

from . import harness as h

pytestmark = [
    pytest.mark.vm,
    pytest.mark.skipif(guest.artifacts() is None,
                       reason="nano guest not built: python -m nanovisor.runtime.vm.guest build"),
]


@pytest.fixture
def work(tmp_path):
    made: list[h.Conmon] = []
    yield tmp_path, made
    for c in made:
        c.delete()


def run(work, runtime: str, args: list[str], name: str = "c", tty: bool = False, edit=None, **process):
    tmp, made = work
    bundle = h.make_bundle(tmp / f"{name}-{runtime}", args, **process)
    if edit:
        h.edit_spec(bundle, edit)
    # engine-like state paths: 64-hex ids under a deep root overflow sun_path (108 bytes) for the sockets
    c = h.create(runtime, tmp / f"root-{runtime}" / ("state" * 8), f"{name}-{runtime}-{'0' * 48}", bundle, tmp,
                 tty=tty)
    made.append(c)
    return c


def leftovers(root: Path, cid: str) -> list[str]:
    """qemu/virtiofsd processes or state left for this container."""
    out = subprocess.run(["pgrep", "-af", "qemu-system|virtiofsd"], capture_output=True, text=True).stdout
    procs = [line for line in out.splitlines() if str(root) in line or cid in line]
    return procs + ([str(root / cid)] if (root / cid).exists() else [])


def test_run_output_and_exit_code_match_runc(work):
    script = "echo hi; echo oops >&2; cd /tmp && pwd; echo $FOO; id -u; exit 7"
    results = {}
    for rt in ("runc", "vm"):
        c = run(work, rt, ["sh", "-c", script], env=["PATH=/bin", "FOO=bar"], user={"uid": 0, "gid": 0})
        assert c.state()["status"] == "created"
        c.start()
        results[rt] = (c.wait(), c.output(), c.output("stderr"))
        assert c.state()["status"] == "stopped"
    assert results["vm"] == results["runc"] == (7, "hi\n/tmp\nbar\n0\n", "oops\n")


def test_isolation_is_real(work):
    c = run(work, "vm", ["sh", "-c", "uname -r; ps -o pid,comm | wc -l; cat /proc/1/cmdline; echo; "
                                     "grep -c . /proc/mounts"])
    c.start()
    assert c.wait() == 0
    release, nprocs, init, _mounts = c.output().splitlines()
    assert release != platform.release()          # its own kernel
    assert int(nprocs) <= 4                         # header + sh + ps + wc: no host processes, no agent
    assert init.startswith("sh")                    # the container's process is PID 1 of its namespace


@pytest.mark.parametrize("binary", ["vm", "vm-py"], ids=["fastpath", "console-script"])
def test_lifecycle_exec_pause_kill_and_nothing_left(work, binary):
    """Through the fast path (what the engine runs) or the Python console script: one implementation either way
    (the script hands start/state/kill/delete/exec to the fast path; the C shim owns the steady state)."""
    tmp, _ = work
    c = run(work, binary, ["sh", "-c", "echo ready; exec sleep 1000"])
    c.start()
    assert c.state()["status"] == "running"
    assert os.path.basename(os.readlink(f"/proc/{c.state()['pid']}/exe")) == "nv-shim"
    def process(name: str, args: list[str]) -> str:
        (tmp / name).write_text(json.dumps({"args": args, "cwd": "/", "env": ["PATH=/bin"],
                                            "user": {"uid": 0, "gid": 0}}))
        return str(tmp / name)

    r = c.rt("exec", "--process", process("p5.json", ["sh", "-c", "echo in-exec; exit 5"]), c.cid, check=False)
    assert (r.returncode, r.stdout) == (5, "in-exec\n")
    r = c.rt("exec", c.cid, "sh", "-c", "echo argv-form", check=False)  # runc's positional form
    assert (r.returncode, r.stdout) == (0, "argv-form\n")
    r = c.rt("exec", "-e", "X=1", "--cwd", "/tmp", "-u", "65534", c.cid, "sh", "-c", "echo $X $(pwd) $(id -u)",
             check=False)  # ... with runc's flags
    assert (r.returncode, r.stdout) == (0, "1 /tmp 65534\n")
    r = c.rt("delete", "no-such-container", check=False)
    assert r.returncode == 1 and "container does not exist" in r.stderr
    assert c.rt("delete", "--force", "no-such-container", check=False).returncode == 0
    r = c.rt("exec", "--process", process("bad.json", ["no-such-binary"]), c.cid, check=False)
    assert r.returncode == 255 and "executable file not found" in r.stderr
    pids = json.loads(c.rt("ps", "--format", "json", c.cid).stdout)
    assert pids == [1]
    table = c.rt("ps", c.cid).stdout.splitlines()  # `ps -ef` columns from inside the guest: docker top
    assert table[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert table[1].split()[:3] == ["root", "1", "0"] and table[1].endswith("sleep 1000")
    stats = json.loads(c.rt("events", "--stats", c.cid).stdout)
    assert stats["type"] == "stats" and stats["data"]["memory"]["usage"]["usage"] > 0
    assert stats["data"]["pids"]["current"] == 1
    (tmp / "p.json").write_text(json.dumps({"args": ["sh", "-c", "echo detached > /tmp/d"], "cwd": "/",
                                            "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}}))
    c.rt("exec", "--detach", "--pid-file", str(tmp / "e.pid"), "--process", str(tmp / "p.json"), c.cid)
    assert int((tmp / "e.pid").read_text()) > 0
    c.rt("pause", c.cid)
    assert c.state()["status"] == "paused"
    c.rt("resume", c.cid)
    assert c.state()["status"] == "running"
    r = c.rt("delete", c.cid, check=False)
    assert r.returncode != 0 and "not stopped" in r.stderr
    # the detached exec ran (its relay exits once the process did)
    deadline = time.monotonic() + 30
    while c.rt("exec", c.cid, "cat", "/tmp/d", check=False).stdout != "detached\n":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    c.rt("kill", c.cid, "KILL")
    assert c.wait() == 137
    assert c.output() == "ready\n"
    c.rt("delete", c.cid)
    assert leftovers(c.root, c.cid) == []
    assert c.rt("state", c.cid, check=False).returncode != 0


def test_tty_matches_runc(work):
    outs = {}
    for rt in ("runc", "vm"):
        c = run(work, rt, ["sh", "-c", "tty; echo $TERM"], name="t", tty=True, terminal=True)
        c.start()
        outs[rt] = (c.wait(), c.output())
    assert outs["vm"] == outs["runc"]
    assert outs["vm"][1].splitlines()[0].strip() == "/dev/pts/0"


def _exec_tty(c: h.Conmon, tmp: Path) -> str:
    """`exec --detach --tty --console-socket` as conmon does; read the pty master we are handed."""
    import array
    import socket

    (tmp / "tty.json").write_text(json.dumps({"args": ["sh", "-c", "tty; stty size"], "cwd": "/", "terminal": True,
                                              "consoleSize": {"height": 30, "width": 100},
                                              "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}}))
    path = tmp / f"console-{c.runtime}.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(1)
    c.rt("exec", "--detach", "--tty", "--console-socket", str(path), "--pid-file", str(tmp / "x.pid"),
         "--process", str(tmp / "tty.json"), c.cid)
    conn, _ = srv.accept()
    fds = array.array("i")
    _msg, anc, _flags, _addr = conn.recvmsg(1024, socket.CMSG_SPACE(fds.itemsize))
    fds.frombytes(anc[0][2][:fds.itemsize])
    out = b""
    while True:
        try:
            chunk = os.read(fds[0], 4096)
        except OSError:  # EIO: the last slave fd closed
            break
        if not chunk:
            break
        out += chunk
    os.close(fds[0])
    return out.decode()


def test_exec_tty_through_console_socket_matches_runc(work):
    tmp, _ = work
    outs = {}
    for rt in ("runc", "vm"):
        c = run(work, rt, ["sleep", "1000"], name="et")
        c.start()
        outs[rt] = _exec_tty(c, tmp)
        c.rt("kill", c.cid, "KILL")
        c.wait()
    assert outs["vm"] == outs["runc"]
    assert outs["vm"].split("\r\n")[:2] == ["/dev/pts/0", "30 100"]


def test_bind_mounts_both_ways_and_readonly(work):
    tmp, _ = work
    rw, ro = tmp / "rw", tmp / "ro"
    rw.mkdir()
    ro.mkdir()
    (rw / "from-host").write_text("host says hi\n")
    (ro / "f").write_text("x")

    def binds(spec):
        spec["mounts"] += [
            {"destination": "/data", "type": "bind", "source": str(rw), "options": ["rbind", "rw"]},
            {"destination": "/ro", "type": "bind", "source": str(ro), "options": ["rbind", "ro"]},
        ]

    c = run(work, "vm", ["sh", "-c", "cat /data/from-host; echo guest > /data/from-guest; "
                                     "touch /ro/nope 2>/dev/null && echo WRITABLE || echo readonly"], edit=binds)
    c.start()
    assert c.wait() == 0
    assert c.output() == "host says hi\nreadonly\n"
    assert (rw / "from-guest").read_text() == "guest\n"
    assert not (ro / "nope").exists()
    # the binds lived in virtiofsd's private mount namespace: the host's mount table never saw them
    assert str(c.bundle) not in Path("/proc/self/mountinfo").read_text()


def test_guest_panic_is_reported_as_exit_and_cleaned_up(work):
    def allow_sysrq(spec):
        spec["linux"]["readonlyPaths"] = [p for p in spec["linux"]["readonlyPaths"] if "sysrq" not in p]

    c = run(work, "vm", ["sh", "-c", "echo going down; echo c > /proc/sysrq-trigger; sleep 100"], edit=allow_sysrq)
    c.start()
    assert c.wait() == 137
    assert "going down" in c.output()
    assert "microVM" in c.output("stderr")
    assert c.state()["status"] == "stopped"
    c.rt("delete", c.cid)
    assert leftovers(c.root, c.cid) == []


def test_failed_create_leaves_nothing(work):
    tmp, _ = work
    with pytest.raises(RuntimeError, match="executable file not found"):
        run(work, "vm", ["no-such-binary"], name="bad")
    root = tmp / "root-vm" / ("state" * 8)
    assert leftovers(root, f"bad-vm-{'0' * 48}") == []
    assert not os.path.exists(root / f"bad-vm-{'0' * 48}")


def test_hung_guest_is_reported_as_exit(work, monkeypatch):
    from nanovisor.runtime.vm import client
    from nanovisor.runtime.vm.state import Container

    monkeypatch.setenv("NANOVISOR_VM_HANG_TIMEOUT", "8")  # reaches the shim through conmon's environment
    c = run(work, "vm", ["sleep", "1000"], name="hang")
    c.start()
    client.qmp(Container(c.root, c.cid), "stop")  # freeze every vCPU behind the runtime's back: a hung guest
    assert c.wait() == 137
    assert "did not answer" in c.output("stderr")
    c.rt("delete", c.cid)
    assert leftovers(c.root, c.cid) == []


def test_rlimits_as_runc_and_never_above_the_hosts_hard_limit(work):
    """The guest agent could grant any limit; it grants what runc grants on this host (whose root cannot raise
    a hard limit): the spec's limits, and a start refused when one is above the host's hard limit."""
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("this host has no hard open-files limit to exceed")
    fits = [{"type": "RLIMIT_NOFILE", "soft": 100, "hard": hard}]
    above = [{"type": "RLIMIT_NOFILE", "soft": hard + 1, "hard": hard + 1}]
    for runtime in ("runc", "vm"):
        c = run(work, runtime, ["sh", "-c", "ulimit -n; ulimit -Hn"], name="fits", rlimits=fits)
        c.start()
        assert c.wait() == 0
        assert c.output() == f"100\n{hard}\n", runtime
        c.delete()
        status = Path("/proc/self/status").read_text()
        if int(status.split("CapEff:")[1].split()[0], 16) >> 24 & 1:  # CAP_SYS_RESOURCE: runc may raise it
            continue
        with pytest.raises(RuntimeError, match="error setting rlimit type 7"):
            run(work, runtime, ["true"], name="above", rlimits=above)
