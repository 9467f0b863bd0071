"""Every (state, operation) pair of the lifecycle table answers what Docker answers.

`docker_answer` restates moby's checks in moby's order (daemon/start.go, stop.go, kill.go, pause.go,
unpause.go, restart.go, delete.go, update.go), independently of engine/state.py's table; the unit test walks
every pair against it. The pairs users reach (created, running, paused and exited containers × start, stop,
kill, pause, unpause, restart, rm, rm -f) are also driven through docker-py against a real `nanovisor serve`,
checking the HTTP status (204/304/409), moby's message and the state inspect shows afterwards.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
from nvtest import IMAGE

from nanovisor.engine.state import Op, Refusal, State, answer, docker_flags, transition
from nanovisor.errors import Conflict, NotModified

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "api"))
from apihelpers import ServeProcess  # noqa: E402

S = State
NOTHING = "nothing"  # the engine's own operations where moby does nothing: any NotModified


def docker_answer(state: State, op: Op) -> State | tuple[int, str] | str:
    """moby's answer: the state the operation leaves the container in, or (HTTP status, message)."""
    running = state in (S.RUNNING, S.PAUSED, S.RESTARTING)  # State.IsRunning (SetRestarting keeps Running)
    paused, restarting, marked = state is S.PAUSED, state is S.RESTARTING, state in (S.REMOVING, S.DEAD)
    if op in (Op.START, Op.RESTART):
        if op is Op.RESTART and running:  # containerRestart: stop first, then start
            return S.RUNNING
        if paused:
            return 409, "cannot start a paused container, try unpause instead"
        if running:
            return 304, "Container is already started"
        if marked:
            return 409, "container is marked for removal and cannot be started"
        return S.RUNNING
    if op is Op.STOP:
        if not running:
            return 304, "Container is already stopped"
        return S.EXITED if restarting else state  # the exit is recorded when the process is gone
    if op is Op.KILL:
        if not running:
            return 409, "Cannot kill container: {name}: Container {id} is not running"
        return S.EXITED if restarting else state  # ExitOnNext cancels the pending restart
    if op is Op.PAUSE:
        if not running:
            return 409, "Container {id} is not running"
        if paused:
            return 409, "Container {id} is already paused"
        if restarting:
            return 409, "Container {id} is restarting, wait until the container is running"
        return S.PAUSED
    if op is Op.UNPAUSE:
        return S.RUNNING if paused else (409, "Container {id} is not paused")
    if op in (Op.REMOVE, Op.REMOVE_FORCE):
        if state is S.REMOVING:
            return 409, "removal of container {name} is already in progress"
        if running and op is Op.REMOVE:
            if paused:
                return 409, 'cannot remove container "/{name}": container is paused and must be unpaused first'
            return 409, (f'cannot remove container "/{{name}}": container is {state.value}: stop the container '
                         "before removing or force remove")
        return S.REMOVING
    if op is Op.UPDATE:
        if marked:
            return 409, 'Cannot update container {id}: container is marked for removal and cannot be "update"'
        return state
    # the engine's own: SetStopped, SetRestarting, the restart manager, a failed start, a failed removal
    if op is Op.EXIT:
        return S.EXITED if state in (S.RUNNING, S.PAUSED) else NOTHING
    if op is Op.DIE_RESTART:
        return S.RESTARTING if state in (S.RUNNING, S.PAUSED) else NOTHING
    if op is Op.RESPAWN:
        return S.RUNNING if restarting else NOTHING
    if op is Op.START_FAILED:
        return S.EXITED if restarting else state if state in (S.CREATED, S.EXITED) else NOTHING
    if op is Op.REMOVE_FAILED:
        return S.DEAD if marked else NOTHING
    raise AssertionError(f"no Docker answer for {op}")


@pytest.mark.parametrize("op", list(Op), ids=str)
@pytest.mark.parametrize("state", list(State), ids=str)
def test_table_answers_as_docker(state, op):
    expected = docker_answer(state, op)
    got = answer(state, op)
    if isinstance(expected, State):
        assert got is expected
        assert transition(state, op, "c0ffee", "web") is expected
        return
    assert isinstance(got, Refusal)
    with pytest.raises((Conflict, NotModified)) as err:
        transition(state, op, "c0ffee", "web")
    if expected == NOTHING:
        assert err.type is NotModified
        return
    status, message = expected
    assert (err.value.status, str(err.value)) == (status, message.format(id="c0ffee", name="web"))


@pytest.mark.parametrize("state", list(State), ids=str)
def test_docker_booleans_derive_from_the_state(state):
    flags = docker_flags(state)
    assert flags["Status"] == state.value
    assert flags["Running"] == (state in (S.RUNNING, S.PAUSED, S.RESTARTING))
    assert (flags["Paused"], flags["Restarting"], flags["Dead"]) == \
        (state is S.PAUSED, state is S.RESTARTING, state is S.DEAD)


# -- through the real API ------------------------------------------------------------------------------

USER_OPS = ["start", "stop", "kill", "pause", "unpause", "restart", "rm", "rm -f"]
REACHABLE = [S.CREATED, S.RUNNING, S.PAUSED, S.EXITED]
OP_OF = {"start": Op.START, "stop": Op.STOP, "kill": Op.KILL, "pause": Op.PAUSE, "unpause": Op.UNPAUSE,
         "restart": Op.RESTART, "rm": Op.REMOVE, "rm -f": Op.REMOVE_FORCE}


@pytest.fixture(scope="module")
def api(root):
    """docker-py's low-level client on a `nanovisor serve` of the shared busybox root."""
    import docker as dockerpy

    tmp = Path(tempfile.mkdtemp(prefix="nv-sm-"))
    sock = str(tmp / "d.sock")
    server = ServeProcess(root, [f"unix://{sock}"], tmp / "serve.log")
    client = None
    try:
        server.wait_ready(sock=sock)
        client = dockerpy.APIClient(base_url="unix://" + sock, timeout=120)
        yield client
    finally:
        if client is not None:
            for c in client.containers(all=True, filters={"label": "nv-test=state-machine"}):
                client.remove_container(c["Id"], force=True)
            client.close()
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _container_in(api, state: State) -> dict:
    """A new container (sleeping, no network) brought into state the way a user would."""
    name = f"sm-{state.value}-{uuid.uuid4().hex[:8]}"
    c = api.create_container(IMAGE, ["sleep", "600"], name=name, labels={"nv-test": "state-machine"},
                             host_config=api.create_host_config(network_mode="none"))
    if state is not S.CREATED:
        api.start(c["Id"])
    if state is S.PAUSED:
        api.pause(c["Id"])
    if state is S.EXITED:
        api.stop(c["Id"], timeout=0)
    assert api.inspect_container(c["Id"])["State"]["Status"] == state.value
    return {"id": c["Id"], "name": name}


def _call(api, op: str, cid: str):
    """The operation as docker-py sends it, answered by the raw response (docker-py hides 304)."""
    if op in ("rm", "rm -f"):
        return api._delete(api._url("/containers/{0}", cid), params={"force": op == "rm -f"})
    params = {"t": 0} if op in ("stop", "restart") else {}
    return api._post(api._url(f"/containers/{{0}}/{op}", cid), params=params)


@pytest.mark.parametrize("op", USER_OPS)
@pytest.mark.parametrize("state", REACHABLE, ids=str)
def test_api_answers_as_docker(api, state, op):
    c = _container_in(api, state)
    expected = docker_answer(state, OP_OF[op])
    resp = _call(api, op, c["id"])
    if isinstance(expected, State):
        assert resp.status_code == 204, resp.text
        # stop and kill return once the exit is recorded; rm once the container is gone
        after = None if expected is S.REMOVING else S.EXITED if op in ("stop", "kill") else expected
    else:
        status, message = expected
        assert resp.status_code == status
        if status != 304:  # a 304 has no body
            assert resp.json()["message"] == message.format(id=c["id"], name=c["name"])
        after = state
    if after is None:
        assert not api.containers(all=True, filters={"id": c["id"]})
        return
    shown = api.inspect_container(c["id"])["State"]
    assert {k: shown[k] for k in ("Status", "Running", "Paused", "Restarting", "Dead")} == docker_flags(after)
    api.remove_container(c["id"], force=True)


# -- records on disk -------------------------------------------------------------------------------------

# a record's state as the engine wrote it before the table: `Status` and hand-set booleans, for each status
OLD_RECORDS = {
    "created": {"Running": False, "Paused": False, "Restarting": False, "Dead": False},
    "running": {"Running": True, "Paused": False, "Restarting": False, "Dead": False},
    "paused": {"Running": True, "Paused": True, "Restarting": False, "Dead": False},
    "restarting": {"Running": False, "Paused": False, "Restarting": True, "Dead": False},  # Docker says Running
    "exited": {"Running": False, "Paused": False, "Restarting": False, "Dead": False},
    "removing": {"Running": False, "Paused": False, "Restarting": False, "Dead": False},
}


@pytest.mark.parametrize("status", list(OLD_RECORDS))
def test_a_record_written_before_the_table_reads_as_its_status(status):
    from nanovisor.engine import views
    from nanovisor.engine.containers import Container

    state = {"Status": status, **OLD_RECORDS[status], "OOMKilled": False, "Pid": 0, "ExitCode": 0, "Error": "",
             "StartedAt": 0.0, "FinishedAt": 0.0, "_StartSeq": 1}
    c = Container(id="c0ffee" * 10 + "abcd", name="old", image_id="sha256:1", created=0.0,
                  spec={"Config": {}, "HostConfig": {}}, state=state)
    assert c.status is State(status)
    shown = views.summary(c, now=10.0)
    assert shown["State"] == status
    c.set_status(c.status)  # what the next save writes back
    assert {k: c.state[k] for k in ("Status", "Running", "Paused", "Restarting", "Dead")} == docker_flags(State(status))


def test_a_removal_that_died_midway_can_be_removed_again(nv, root):
    """What a removal killed midway leaves is dead to every operation but rm (moby's Dead)."""
    from nanovisor.engine.engine import Engine

    cid = nv("create", "--network", "none", IMAGE, "true").stdout.strip()
    engine = Engine(root)
    c = engine.containers.get(cid)
    c.set_status(State.REMOVING)  # saved by rm before it tears down, and never deleted: rm was killed
    engine.containers.save_state(c)
    started = nv("start", cid)
    assert started.returncode != 0 and "container is marked for removal and cannot be started" in started.stderr
    assert nv("rm", cid).returncode == 0
    assert nv("inspect", cid).returncode != 0
