"""Container lifecycle through the docker CLI: ps filters, stop/start/restart/kill, rm, rename, pause, top,
wait, prune, and the errors users see for unknown containers."""

from __future__ import annotations


def _state(docker, name: str) -> str:
    return docker("inspect", "--format", "{{.State.Status}}", name).stdout.strip()


def test_ps_lists_running_and_filters(docker, image, running, name):
    exited = name + "-x"
    assert docker("run", "--name", exited, "--label", "team=api", image, "true").returncode == 0
    try:
        ps = docker("ps", "--format", "{{.Names}}").stdout.split()
        assert running in ps and exited not in ps
        ps_a = docker("ps", "-a", "--format", "{{.Names}}").stdout.split()
        assert running in ps_a and exited in ps_a
        by_label = docker("ps", "-a", "--filter", "label=team=api", "--format", "{{.Names}}").stdout.split()
        assert exited in by_label and running not in by_label
        by_status = docker("ps", "-a", "--filter", "status=exited", "--format", "{{.Names}}").stdout.split()
        assert exited in by_status and running not in by_status
        q = docker("ps", "-q", "--filter", f"name={running}").stdout.split()
        assert len(q) == 1 and len(q[0]) == 12
    finally:
        docker("rm", exited)


def test_stop_start_restart_kill(docker, running):
    assert docker("stop", "-t", "1", running).stdout.strip() == running
    assert _state(docker, running) == "exited"
    assert docker("start", running).returncode == 0
    assert _state(docker, running) == "running"
    assert docker("restart", "-t", "0", running).returncode == 0
    assert _state(docker, running) == "running"
    assert docker("kill", running).returncode == 0
    assert docker("inspect", "--format", "{{.State.ExitCode}}", running).stdout.strip() == "137"
    again = docker("kill", running)
    assert again.returncode == 1
    assert "is not running" in again.stderr


def test_rm_running_needs_force(docker, running):
    r = docker("rm", running)
    assert r.returncode == 1
    assert "container is running: stop the container before removing or force remove" in r.stderr
    assert docker("rm", "-f", running).stdout.strip() == running
    gone = docker("inspect", running)
    assert gone.returncode == 1
    assert f"No such object: {running}" in gone.stderr


def test_unknown_container_errors(docker):
    for args in (["logs", "nope-no-such"], ["start", "nope-no-such"], ["stop", "nope-no-such"],
                 ["rm", "nope-no-such"]):
        r = docker(*args)
        assert r.returncode == 1, args
        assert "No such container: nope-no-such" in r.stderr, (args, r.stderr)


def test_rename_pause_unpause_top(docker, running):
    new = running + "-renamed"
    assert docker("rename", running, new).returncode == 0
    try:
        assert docker("inspect", "--format", "{{.Name}}", new).stdout.strip() == "/" + new
        assert docker("pause", new).returncode == 0
        assert _state(docker, new) == "paused"
        assert docker("unpause", new).returncode == 0
        assert _state(docker, new) == "running"
        top = docker("top", new)
        assert top.returncode == 0, top.stderr
        assert "PID" in top.stdout.splitlines()[0]
        assert "sleep 600" in top.stdout
    finally:
        docker("rm", "-f", new)


def test_wait_prints_exit_code(docker, image, name):
    assert docker("run", "-d", "--name", name, image, "sh", "-c", "exit 42").returncode == 0
    try:
        w = docker("wait", name)
        assert w.stdout.strip() == "42"
    finally:
        docker("rm", name)


def test_wait_next_exit_and_removed_via_docker_py(client, image, name):
    c = client.containers.create(image, ["sh", "-c", "exit 6"], name=name)
    api = client.api
    # the wait is registered before the start, like the docker CLI's run does
    import threading

    results = {}
    t = threading.Thread(target=lambda: results.update(r=api.wait(c.id, condition="next-exit")))
    t.start()
    c.start()
    t.join(120)
    assert results["r"]["StatusCode"] == 6
    t2 = threading.Thread(target=lambda: results.update(rm=api.wait(c.id, condition="removed")))
    t2.start()
    c.remove()
    t2.join(120)
    assert results["rm"]["StatusCode"] == 6


def test_container_prune(docker, image, name):
    assert docker("run", "--name", name, image, "true").returncode == 0
    cid = docker("inspect", "--format", "{{.Id}}", name).stdout.strip()
    r = docker("container", "prune", "-f")
    assert r.returncode == 0, r.stderr
    assert "Deleted Containers:" in r.stdout and cid in r.stdout
    assert docker("inspect", name).returncode == 1


def test_inspect_shape(client, running):
    c = client.containers.get(running)
    assert c.name == running
    assert c.status == "running"
    assert c.attrs["State"]["Pid"] > 0
    assert c.attrs["Config"]["Cmd"] == ["sleep", "600"]
