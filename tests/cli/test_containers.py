"""The embedded CLI (no daemon) drives real containers with runc, as a user would."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from nvtest import IMAGE, pty_session, wait_for


def test_run_rm_prints_and_returns_exit_code(nv):
    r = nv("run", "--rm", IMAGE, "echo", "hi")
    assert (r.returncode, r.stdout) == (0, "hi\n"), r.stderr
    r = nv("run", "--rm", IMAGE, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert r.returncode == 3
    assert r.stdout == "out\n" and "err\n" in r.stderr
    assert nv("ps", "-aq").stdout.strip() == "" or all(
        "Exited" not in line for line in nv("ps", "-a").stdout.splitlines()[1:])


def test_bad_input_is_one_line_with_docker_codes(nv):
    r = nv("run", "--rm", "no/such-image", "true")
    assert r.returncode == 125
    assert "No such image: no/such-image" in r.stderr and "Traceback" not in r.stderr
    r = nv("run", "--rm", IMAGE, "no-such-program")
    assert r.returncode == 127, r.stderr
    assert "executable file not found" in r.stderr
    r = nv("stop", "no-such-container")
    assert r.returncode == 1 and "No such container: no-such-container" in r.stderr
    r = nv("run", "--rm", "--restart", "sometimes", IMAGE, "true")
    assert r.returncode == 125 and "invalid restart policy" in r.stderr


def test_detached_lifecycle(nv):
    r = nv("run", "-d", "--name", "life", "--label", "team=core", IMAGE, "sh", "-c",
           "trap 'echo bye; exit 0' TERM; echo started; while true; do sleep 0.1; done")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    assert len(cid) == 64
    try:
        ps = nv("ps", "--filter", "label=team=core", "--format", "{{.Names}} {{.State}}").stdout
        assert ps.strip() == "life running"
        assert nv("ps", "-q").stdout.split().count(cid[:12]) == 1
        wait_for(lambda: "started" in nv("logs", "life").stdout)
        insp = json.loads(nv("inspect", "life").stdout)[0]
        assert insp["State"]["Running"] and insp["Name"] == "/life" and insp["Config"]["Labels"]["team"] == "core"
        assert nv("inspect", "--format", "{{.State.Status}}", "life").stdout.strip() == "running"
        assert nv("exec", "life", "cat", "/etc/hostname").stdout.strip() == cid[:12]
        assert nv("exec", "life", "sh", "-c", "exit 4").returncode == 4
        top = nv("top", "life").stdout
        assert "PID" in top and "sleep" in top or "sh -c" in top
        assert nv("pause", "life").returncode == 0
        assert nv("inspect", "-f", "{{.State.Status}}", "life").stdout.strip() == "paused"
        assert nv("unpause", "life").returncode == 0
        r = nv("rm", "life")
        assert r.returncode == 1 and "container is running" in r.stderr
        assert nv("stop", "life").returncode == 0
        state = json.loads(nv("inspect", "life").stdout)[0]["State"]
        assert state["Status"] == "exited" and state["ExitCode"] == 0
        assert "bye" in nv("logs", "life").stdout
        assert nv("wait", "life").stdout.strip() == "0"
        assert nv("start", "life").returncode == 0
        assert nv("inspect", "-f", "{{.State.Running}}", "life").stdout.strip() == "true"
        assert nv("restart", "-t", "1", "life").returncode == 0
        assert nv("kill", "-s", "KILL", "life").returncode == 0
        assert nv("inspect", "-f", "{{.State.ExitCode}}", "life").stdout.strip() == "137"
        assert nv("rename", "life", "life2").returncode == 0
        assert nv("inspect", "-f", "{{.Name}}", "life2").stdout.strip() == "/life2"
    finally:
        nv("rm", "-f", cid)
    assert cid[:12] not in nv("ps", "-aq").stdout


def test_stop_escalates_to_kill_after_timeout(nv):
    cid = nv("run", "-d", IMAGE, "sleep", "1000").stdout.strip()  # pid 1 ignores SIGTERM
    try:
        assert nv("stop", "-t", "1", cid).returncode == 0
        assert nv("inspect", "-f", "{{.State.ExitCode}}", cid).stdout.strip() == "137"
    finally:
        nv("rm", "-f", cid)


def test_name_conflict_and_generated_names(nv):
    cid = nv("create", "--name", "twin", IMAGE, "true").stdout.strip()
    try:
        r = nv("create", "--name", "twin", IMAGE, "true")
        assert r.returncode == 125 and 'The container name "/twin" is already in use' in r.stderr
        other = nv("create", IMAGE, "true").stdout.strip()
        name = nv("inspect", "-f", "{{.Name}}", other).stdout.strip()
        assert name.startswith("/") and "_" in name
        nv("rm", other)
    finally:
        nv("rm", "-f", cid)


def test_logs_options(nv):
    cid = nv("run", "-d", IMAGE, "sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done; echo oops >&2").stdout.strip()
    try:
        nv("wait", cid)
        assert nv("logs", cid).stdout == "".join(f"line{i}\n" for i in range(1, 6))
        assert nv("logs", "--tail", "2", cid).stdout == "line5\n"
        assert nv("logs", cid).stderr == "oops\n"
        ts = nv("logs", "-t", cid).stdout.splitlines()[0]
        assert ts.endswith(" line1") and ts[:4].isdigit() and "T" in ts.split()[0]
    finally:
        nv("rm", "-f", cid)


def test_logs_follow_ends_with_container(nv):
    cid = nv("run", "-d", IMAGE, "sh", "-c", "echo a; sleep 1; echo b").stdout.strip()
    try:
        r = nv("logs", "-f", cid, timeout=30)
        assert r.stdout == "a\nb\n"
    finally:
        nv("rm", "-f", cid)


def test_container_options(nv, tmp_path):
    (tmp_path / "data.txt").write_text("from host\n")
    tmp_path.chmod(0o777)  # the container runs as uid 1000
    script = ("id -u; id -g; pwd; echo $FOO; hostname; cat /data/data.txt; echo x > /data/new.txt; "
              "touch /rootfile 2>/dev/null && echo rw || echo ro; mount | grep ' /scratch ' | cut -d' ' -f5; "
              "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max;"
              "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max")
    r = nv("run", "--rm", "-e", "FOO=bar", "-w", "/tmp", "-u", "1000:1000", "--hostname", "box",
           "--read-only", "--tmpfs", "/scratch", "-v", f"{tmp_path}:/data", "--memory", "64m",
           "--pids-limit", "50", IMAGE, "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:7] == ["1000", "1000", "/tmp", "bar", "box", "from host", "ro"]
    assert lines[7] == "tmpfs"
    assert int(lines[8]) == 64 * 1024 * 1024
    assert lines[9] == "50"
    assert (tmp_path / "new.txt").read_text() == "x\n"


def test_entrypoint_user_name_and_capabilities(nv):
    r = nv("run", "--rm", "--entrypoint", "echo", IMAGE, "via", "entrypoint")
    assert r.stdout == "via entrypoint\n"
    r = nv("run", "--rm", "-u", "nobody", IMAGE, "id", "-un")
    assert r.stdout.strip() == "nobody"
    caps = nv("run", "--rm", IMAGE, "grep", "CapEff", "/proc/self/status").stdout.split()[1]
    assert int(caps, 16) == 0xa80425fb  # Docker's default capability set
    caps = nv("run", "--rm", "--cap-drop", "ALL", IMAGE, "grep", "CapEff", "/proc/self/status").stdout.split()[1]
    assert int(caps, 16) == 0
    r = nv("run", "--rm", "--cap-add", "NET_ADMIN", IMAGE, "grep", "CapEff", "/proc/self/status")
    assert int(r.stdout.split()[1], 16) & (1 << 12)
    r = nv("run", "--rm", "--privileged", IMAGE, "sh", "-c", "mkdir -p /m && mount -t tmpfs none /m && echo mounted")
    assert r.stdout.strip() == "mounted"
    r = nv("run", "--rm", IMAGE, "sh", "-c", "mkdir -p /m; mount -t tmpfs none /m 2>&1 || echo denied")
    assert "denied" in r.stdout


def test_init_is_pid1(nv):
    r = nv("run", "--rm", "--init", IMAGE, "ps", "-o", "pid,comm")
    assert r.returncode == 0, r.stderr
    first = r.stdout.splitlines()[1].split()
    assert first[0] == "1" and "init" in first[1]


def test_named_volume_outlives_container(nv):
    assert nv("volume", "create", "keep").returncode == 0
    try:
        assert nv("run", "--rm", "-v", "keep:/v", IMAGE, "sh", "-c", "echo persisted > /v/f").returncode == 0
        assert nv("run", "--rm", "-v", "keep:/v:ro", IMAGE, "cat", "/v/f").stdout == "persisted\n"
        assert "keep" in nv("volume", "ls", "-q").stdout.split()
        mp = json.loads(nv("volume", "inspect", "keep").stdout)[0]["Mountpoint"]
        assert Path(mp, "f").read_text() == "persisted\n"
    finally:
        assert nv("volume", "rm", "keep").returncode == 0
    assert "keep" not in nv("volume", "ls", "-q").stdout.split()


def test_restart_on_failure_counts(nv):
    cid = nv("run", "-d", "--restart", "on-failure:2", IMAGE, "sh", "-c", "exit 1").stdout.strip()
    try:
        wait_for(lambda: nv("inspect", "-f", "{{.RestartCount}} {{.State.Status}}", cid).stdout.strip()
                  == "2 exited", timeout=60)
    finally:
        nv("rm", "-f", cid)


def test_network_modes_none_and_host(nv):
    r = nv("run", "--rm", "--network", "none", IMAGE, "ip", "-o", "link")
    assert r.returncode == 0 and "lo" in r.stdout and "eth0" not in r.stdout
    host_links = {line.split(":")[1].strip().split("@")[0] for line in
                  os.popen("ip -o link").read().splitlines()}
    r = nv("run", "--rm", "--network", "host", IMAGE, "ip", "-o", "link")
    inside = {line.split(":")[1].strip().split("@")[0] for line in r.stdout.splitlines()}
    assert inside == host_links


def test_cp_both_ways_and_export(nv, tmp_path):
    cid = nv("run", "-d", IMAGE, "sleep", "1000").stdout.strip()
    try:
        src = tmp_path / "hello.txt"
        src.write_text("hello cp\n")
        assert nv("cp", str(src), f"{cid}:/tmp/").returncode == 0
        assert nv("exec", cid, "cat", "/tmp/hello.txt").stdout == "hello cp\n"
        nv("exec", cid, "sh", "-c", "mkdir -p /out && echo inside > /out/a.txt")
        dest = tmp_path / "got"
        r = nv("cp", f"{cid}:/out", str(dest))
        assert r.returncode == 0, r.stderr
        assert (dest / "a.txt").read_text() == "inside\n"
        export = tmp_path / "rootfs.tar"
        assert nv("export", "-o", str(export), cid).returncode == 0
        import tarfile

        names = tarfile.open(export).getnames()
        assert any(n.lstrip("./") == "bin/busybox" for n in names)
        assert any(n.lstrip("./") == "tmp/hello.txt" for n in names)
    finally:
        nv("rm", "-f", cid)


def test_stats_no_stream(nv):
    cid = nv("run", "-d", "--name", "statme", IMAGE, "sleep", "1000").stdout.strip()
    try:
        r = nv("stats", "--no-stream", "statme")
        assert r.returncode == 0, r.stderr
        header, row = r.stdout.splitlines()[:2]
        assert header.startswith("CONTAINER ID") and row.startswith(cid[:12]) and "statme" in row
    finally:
        nv("rm", "-f", cid)


def test_images_tag_rmi(nv):
    assert IMAGE in nv("images").stdout
    assert nv("tag", IMAGE, "mine/copy:v1").returncode == 0
    assert "mine/copy" in nv("images", "--format", "{{.Repository}}:{{.Tag}}").stdout
    r = nv("rmi", "mine/copy:v1")
    assert r.returncode == 0 and "Untagged: mine/copy:v1" in r.stdout
    assert IMAGE in nv("images").stdout


def test_tty_run_and_exec_through_a_real_pty(nv, root):
    import sys

    out, code = pty_session(root, ["run", "-it", "--rm", IMAGE, "sh"], [b"stty size\r", b"exit 7\r"])
    assert code == 7, out
    out, code = pty_session(root, ["run", "-it", "--rm", IMAGE, "sh", "-c", "echo $((6*7)); tty"], [])
    assert code == 0 and b"42" in out and b"/dev/pts/" in out, out
    cid = nv("run", "-d", IMAGE, "sleep", "1000").stdout.strip()
    try:
        out, code = pty_session(root, ["exec", "-it", cid, "sh"], [b"echo $((5*5))\r", b"exit 3\r"])
        assert code == 3 and b"25" in out, out
    finally:
        nv("rm", "-f", cid)
    assert sys.executable


def test_stdin_is_piped_through_and_closed(nv):
    r = nv("run", "-i", "--rm", IMAGE, "sh", "-c", "cat; echo done", input="hello\nworld\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello\nworld\ndone\n"


def test_log_max_size_bounds_the_log_file(nv, root):
    cid = nv("run", "-d", "--log-opt", "max-size=10k", IMAGE, "sh", "-c",
             "i=0; while [ $i -lt 2000 ]; do echo 0123456789012345678901234567890123456789; i=$((i+1)); done")
    cid = cid.stdout.strip()
    try:
        nv("wait", cid)
        log = json.loads(nv("inspect", cid).stdout)[0]["LogPath"]
        assert os.path.getsize(log) <= 16 * 1024
    finally:
        nv("rm", "-f", cid)


def test_stop_signal_reaches_the_process(nv):
    cid = nv("run", "-d", "--stop-signal", "USR1", IMAGE, "sh", "-c",
             "trap 'echo got-usr1; exit 9' USR1; while true; do sleep 0.1; done").stdout.strip()
    try:
        time.sleep(0.5)
        assert nv("stop", cid).returncode == 0
        assert nv("inspect", "-f", "{{.State.ExitCode}}", cid).stdout.strip() == "9"
        assert "got-usr1" in nv("logs", cid).stdout
    finally:
        nv("rm", "-f", cid)
