"""One conformance module, run over every runtime in the registry: the same image, command and flags must
behave the same in a process container (runc, crun) and in a VM container (nanovisor-vm), as a user checks
them. A new runtime is tested here by registering it (runtime/registry.py)."""

from __future__ import annotations

import os

import pytest
from nvtest import IMAGE, pty_session, runtime_params, wait_for


@pytest.fixture(params=runtime_params())
def iso(request):
    """The runtime under test (named iso: each one is an isolation the user can pick)."""
    return request.param


def run(nv, iso, *args, **kw):
    return nv("run", "--runtime", iso, *args, **kw)


def test_output_exit_code_and_process_options(nv, iso):
    r = run(nv, iso, "--rm", "-e", "FOO=bar", "-w", "/tmp", "-u", "1000:1000", "--hostname", "conf",
            "--network", "none", IMAGE, "sh", "-c", "echo out; echo err >&2; id -u; pwd; echo $FOO; hostname; exit 3")
    assert r.returncode == 3, r.stderr
    assert r.stdout.splitlines() == ["out", "1000", "/tmp", "bar", "conf"]
    assert "err" in r.stderr
    r = run(nv, iso, "--rm", "--entrypoint", "echo", IMAGE, "via", "entrypoint")
    assert r.stdout == "via entrypoint\n"
    r = run(nv, iso, "--rm", IMAGE, "no-such-program")
    assert r.returncode == 127, r.stderr


def test_filesystems_binds_and_volumes(nv, iso, tmp_path):
    tmp_path.chmod(0o777)
    (tmp_path / "from-host").write_text("host data\n")
    vol = f"confvol-{iso}"
    script = ("cat /data/from-host; echo ctr > /data/from-ctr; touch /rootfile 2>/dev/null && echo rw || echo ro;"
              "echo t > /scratch/t && echo tmpfs-ok; echo v >> /vol/v; cat /vol/v | wc -l;"
              "echo x > /ro/x 2>/dev/null && echo ro-broken || echo ro-ok")
    try:
        for expected_count in ("1", "2"):
            r = run(nv, iso, "--rm", "--read-only", "--tmpfs", "/scratch", "-v", f"{tmp_path}:/data",
                    "-v", f"{vol}:/vol", "-v", f"{tmp_path}:/ro:ro", IMAGE, "sh", "-c", script)
            assert r.returncode == 0, r.stderr
            assert r.stdout.splitlines() == ["host data", "ro", "tmpfs-ok", expected_count, "ro-ok"]
        assert (tmp_path / "from-ctr").read_text() == "ctr\n"
    finally:
        nv("volume", "rm", vol)


def test_detached_lifecycle(nv, iso):
    cid = run(nv, iso, "-d", IMAGE, "sh", "-c",
              "trap 'echo usr1' USR1; trap 'echo term; exit 143' TERM; echo up; "
              "while true; do sleep 0.1; done").stdout.strip()
    assert len(cid) == 64
    try:
        wait_for(lambda: "up" in nv("logs", cid).stdout)
        assert nv("exec", cid, "sh", "-c", "echo in-exec; exit 4").returncode == 4
        assert nv("exec", cid, "cat", "/etc/hostname").stdout.strip() == cid[:12]
        top = nv("top", cid)
        assert top.returncode == 0 and "sleep" in top.stdout or "sh" in top.stdout
        stats = nv("stats", "--no-stream", cid)
        assert stats.returncode == 0 and cid[:12] in stats.stdout
        assert nv("pause", cid).returncode == 0
        assert nv("inspect", "-f", "{{.State.Status}}", cid).stdout.strip() == "paused"
        assert nv("unpause", cid).returncode == 0
        assert nv("kill", "-s", "USR1", cid).returncode == 0
        wait_for(lambda: "usr1" in nv("logs", cid).stdout)
        assert nv("stop", "-t", "10", cid).returncode == 0
        assert nv("inspect", "-f", "{{.State.ExitCode}}", cid).stdout.strip() == "143"
        assert "term" in nv("logs", cid).stdout
        assert nv("restart", cid).returncode == 0
        assert nv("inspect", "-f", "{{.State.Running}}", cid).stdout.strip() == "true"
    finally:
        assert nv("rm", "-f", cid).returncode == 0
    assert cid[:12] not in nv("ps", "-aq").stdout


def test_cp_both_ways(nv, iso, tmp_path):
    cid = run(nv, iso, "-d", IMAGE, "sleep", "1000").stdout.strip()
    try:
        (tmp_path / "in.txt").write_text("into the container\n")
        assert nv("cp", str(tmp_path / "in.txt"), f"{cid}:/tmp/in.txt").returncode == 0
        assert nv("exec", cid, "cat", "/tmp/in.txt").stdout == "into the container\n"
        nv("exec", cid, "sh", "-c", "echo out of it > /tmp/out.txt")
        wait_for(lambda: nv("cp", f"{cid}:/tmp/out.txt", str(tmp_path / "out.txt")).returncode == 0
                  and (tmp_path / "out.txt").read_text() == "out of it\n")
    finally:
        nv("rm", "-f", cid)


def test_restart_policy_and_init(nv, iso):
    cid = run(nv, iso, "-d", "--restart", "on-failure:1", IMAGE, "sh", "-c", "exit 1").stdout.strip()
    try:
        wait_for(lambda: nv("inspect", "-f", "{{.RestartCount}} {{.State.Status}}", cid).stdout.strip()
                  == "1 exited", timeout=60)
    finally:
        nv("rm", "-f", cid)
    r = run(nv, iso, "--rm", "--init", IMAGE, "ps", "-o", "pid,comm")
    assert r.returncode == 0, r.stderr
    assert "init" in r.stdout.splitlines()[1]


def test_memory_limit_applies(nv, iso):
    script = ("cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || "
              "grep MemTotal /proc/meminfo | awk '{print $2 * 1024}'")
    r = run(nv, iso, "--rm", "--memory", "96m", IMAGE, "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    limit = int(r.stdout.split()[0])
    assert limit <= 160 * 1024 * 1024  # a VM is sized from the limit (plus room for its own kernel)


def test_tty_run_and_exec(nv, iso, root):
    out, code = pty_session(root, ["run", "--runtime", iso, "-it", "--rm", IMAGE, "sh"],
                     [b"echo $((6*7))\r", b"exit 5\r"])
    assert code == 5 and b"42" in out, out
    cid = run(nv, iso, "-d", IMAGE, "sleep", "1000").stdout.strip()
    try:
        out, code = pty_session(root, ["exec", "-it", cid, "sh"], [b"tty\r", b"exit 2\r"])
        assert code == 2 and b"/dev/pts/" in out, out
    finally:
        nv("rm", "-f", cid)


@pytest.mark.vm
def test_vm_isolation_is_real(nv):
    host_kernel = os.uname().release
    r = nv("run", "--rm", "--isolation=vm", IMAGE, "sh", "-c", "uname -r; ps -o pid | wc -l; cat /proc/mounts")
    lines = r.stdout.splitlines()
    assert lines[0] != host_kernel
    assert int(lines[1]) <= 4  # the container's own few processes, no host process
    assert "/work" not in r.stdout and "/var/lib" not in r.stdout
    r = nv("run", "--rm", "--runtime", "nanovisor-vm", IMAGE, "uname", "-r")
    assert r.stdout.strip() == lines[0]
    r = nv("run", "--rm", "--isolation=hyperv", IMAGE, "uname", "-r")
    assert r.stdout.strip() == lines[0]


