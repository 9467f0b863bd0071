"""The container lifecycle as one table: for every (state, operation), the state it leads to or Docker's refusal.

containerd's `init_state.go` (one type per state, each answering every operation) is the model; the answers
and their wording are moby's (daemon/start.go, stop.go, kill.go, pause.go, unpause.go, restart.go, delete.go,
update.go), because clients classify errors by status and text. Only `Status` is stored in a container's
record; Docker's `Running`, `Paused`, `Restarting` and `Dead` booleans are derived from it (`docker_flags`).

The next state is the one the operation leaves the record in once it has done its work: `start` of an exited
container answers RUNNING, written after the runtime started it; `stop` and `kill` answer the state they find,
because the exit is recorded by EXIT (or DIE_RESTART) when the process is gone; `remove` answers REMOVING,
and the record is deleted at the end.

Two answers differ from a literal reading of moby, on purpose:
- unpause of a container that is not paused, and update of one marked for removal, are 409: moby returns
  an untyped error (500) with the same text; clients treat both as failure, 409 says what it is.
- a REMOVING state found under the container's lock means the process that was removing it died midway
  (removal holds the lock throughout): `Lifecycle` treats it as DEAD, which may be removed again, so a crash
  never leaves a container nobody can remove (in moby, RemovalInProgress is not persisted either).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from nanovisor.errors import Conflict, NanovisorError, NotModified


class State(StrEnum):
    """Docker's State.Status values."""

    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    EXITED = "exited"
    REMOVING = "removing"
    DEAD = "dead"


class Op(StrEnum):
    # asked by users (API and CLI)
    START = "start"
    STOP = "stop"
    KILL = "kill"
    PAUSE = "pause"
    UNPAUSE = "unpause"
    RESTART = "restart"
    REMOVE = "remove"                  # docker rm
    REMOVE_FORCE = "remove-force"      # docker rm -f
    UPDATE = "update"                  # a change of the record's configuration (rename, network, resources)
    # done by the engine
    EXIT = "exit"                      # the process is gone and stays gone (reaped)
    DIE_RESTART = "die-restart"        # the process is gone and the restart policy will start it again
    RESPAWN = "respawn"                # a pending restart is due (only a restarting container: a stop
                                       # meanwhile cancelled it)
    START_FAILED = "start-failed"      # the runtime could not start it
    REMOVE_FAILED = "remove-failed"    # removal stopped midway: what is left may be removed again


@dataclass(frozen=True)
class Refusal:
    """An operation the state does not allow: the error class (its HTTP status) and Docker's message,
    a template over the container's {id} and {name}."""

    error: type[NanovisorError]
    message: str

    def exception(self, cid: str, name: str) -> NanovisorError:
        return self.error(self.message.format(id=cid, name=name))


Answer = State | Refusal

# moby's texts
_STARTED = Refusal(NotModified, "Container is already started")
_STOPPED = Refusal(NotModified, "Container is already stopped")
_NOT_RUNNING = Refusal(Conflict, "Container {id} is not running")
_KILL_NOT_RUNNING = Refusal(Conflict, "Cannot kill container: {name}: Container {id} is not running")
_NOT_PAUSED = Refusal(Conflict, "Container {id} is not paused")
_ALREADY_PAUSED = Refusal(Conflict, "Container {id} is already paused")
_PAUSE_RESTARTING = Refusal(Conflict, "Container {id} is restarting, wait until the container is running")
_START_PAUSED = Refusal(Conflict, "cannot start a paused container, try unpause instead")
_MARKED = Refusal(Conflict, "container is marked for removal and cannot be started")
_RM_RUNNING = Refusal(Conflict, 'cannot remove container "/{name}": container is running: stop the container '
                                "before removing or force remove")
_RM_RESTARTING = Refusal(Conflict, 'cannot remove container "/{name}": container is restarting: stop the '
                                   "container before removing or force remove")
_RM_PAUSED = Refusal(Conflict, 'cannot remove container "/{name}": container is paused and must be unpaused first')
_RM_IN_PROGRESS = Refusal(Conflict, "removal of container {name} is already in progress")
_UPDATE_MARKED = Refusal(Conflict, 'Cannot update container {id}: container is marked for removal and cannot '
                                   'be "update"')
# the engine's own operations, never seen by users: "nothing to do"
_NOTHING = Refusal(NotModified, "Container {id}: nothing to do")

S = State

# One row per state, like containerd's one type per state: every operation answered.
TABLE: dict[State, dict[Op, Answer]] = {
    S.CREATED: {
        Op.START: S.RUNNING, Op.STOP: _STOPPED, Op.KILL: _KILL_NOT_RUNNING, Op.PAUSE: _NOT_RUNNING,
        Op.UNPAUSE: _NOT_PAUSED, Op.RESTART: S.RUNNING, Op.UPDATE: S.CREATED,
        Op.REMOVE: S.REMOVING, Op.REMOVE_FORCE: S.REMOVING, Op.REMOVE_FAILED: _NOTHING,
        Op.EXIT: _NOTHING, Op.DIE_RESTART: _NOTHING, Op.RESPAWN: _NOTHING, Op.START_FAILED: S.CREATED,
    },
    S.RUNNING: {
        Op.START: _STARTED, Op.STOP: S.RUNNING, Op.KILL: S.RUNNING, Op.PAUSE: S.PAUSED,
        Op.UNPAUSE: _NOT_PAUSED, Op.RESTART: S.RUNNING, Op.UPDATE: S.RUNNING,
        Op.REMOVE: _RM_RUNNING, Op.REMOVE_FORCE: S.REMOVING, Op.REMOVE_FAILED: _NOTHING,
        Op.EXIT: S.EXITED, Op.DIE_RESTART: S.RESTARTING, Op.RESPAWN: _NOTHING, Op.START_FAILED: _NOTHING,
    },
    S.PAUSED: {
        Op.START: _START_PAUSED, Op.STOP: S.PAUSED, Op.KILL: S.PAUSED, Op.PAUSE: _ALREADY_PAUSED,
        Op.UNPAUSE: S.RUNNING, Op.RESTART: S.RUNNING, Op.UPDATE: S.PAUSED,
        Op.REMOVE: _RM_PAUSED, Op.REMOVE_FORCE: S.REMOVING, Op.REMOVE_FAILED: _NOTHING,
        Op.EXIT: S.EXITED, Op.DIE_RESTART: S.RESTARTING, Op.RESPAWN: _NOTHING, Op.START_FAILED: _NOTHING,
    },
    # moby counts a restarting container as running (State.SetRestarting): start is "already started", stop
    # and kill cancel the pending restart, pause must wait, rm needs force
    S.RESTARTING: {
        Op.START: _STARTED, Op.STOP: S.EXITED, Op.KILL: S.EXITED, Op.PAUSE: _PAUSE_RESTARTING,
        Op.UNPAUSE: _NOT_PAUSED, Op.RESTART: S.RUNNING, Op.UPDATE: S.RESTARTING,
        Op.REMOVE: _RM_RESTARTING, Op.REMOVE_FORCE: S.REMOVING, Op.REMOVE_FAILED: _NOTHING,
        Op.EXIT: _NOTHING, Op.DIE_RESTART: _NOTHING, Op.RESPAWN: S.RUNNING, Op.START_FAILED: S.EXITED,
    },
    S.EXITED: {
        Op.START: S.RUNNING, Op.STOP: _STOPPED, Op.KILL: _KILL_NOT_RUNNING, Op.PAUSE: _NOT_RUNNING,
        Op.UNPAUSE: _NOT_PAUSED, Op.RESTART: S.RUNNING, Op.UPDATE: S.EXITED,
        Op.REMOVE: S.REMOVING, Op.REMOVE_FORCE: S.REMOVING, Op.REMOVE_FAILED: _NOTHING,
        Op.EXIT: _NOTHING, Op.DIE_RESTART: _NOTHING, Op.RESPAWN: _NOTHING, Op.START_FAILED: S.EXITED,
    },
    S.REMOVING: {
        Op.START: _MARKED, Op.STOP: _STOPPED, Op.KILL: _KILL_NOT_RUNNING, Op.PAUSE: _NOT_RUNNING,
        Op.UNPAUSE: _NOT_PAUSED, Op.RESTART: _MARKED, Op.UPDATE: _UPDATE_MARKED,
        Op.REMOVE: _RM_IN_PROGRESS, Op.REMOVE_FORCE: _RM_IN_PROGRESS, Op.REMOVE_FAILED: S.DEAD,
        Op.EXIT: _NOTHING, Op.DIE_RESTART: _NOTHING, Op.RESPAWN: _NOTHING, Op.START_FAILED: _NOTHING,
    },
    S.DEAD: {
        Op.START: _MARKED, Op.STOP: _STOPPED, Op.KILL: _KILL_NOT_RUNNING, Op.PAUSE: _NOT_RUNNING,
        Op.UNPAUSE: _NOT_PAUSED, Op.RESTART: _MARKED, Op.UPDATE: _UPDATE_MARKED,
        Op.REMOVE: S.REMOVING, Op.REMOVE_FORCE: S.REMOVING, Op.REMOVE_FAILED: S.DEAD,
        Op.EXIT: _NOTHING, Op.DIE_RESTART: _NOTHING, Op.RESPAWN: _NOTHING, Op.START_FAILED: _NOTHING,
    },
}


def answer(state: State, op: Op) -> Answer:
    """The table's entry: the next state, or the refusal."""
    return TABLE[state][op]


def transition(state: State, op: Op, cid: str = "", name: str = "") -> State:
    """The state op leads to from state; raises Conflict (409) or NotModified (304) with Docker's message."""
    result = answer(state, op)
    if isinstance(result, Refusal):
        raise result.exception(cid, name)
    return result


def parse(status: str | None) -> State:
    """The stored `Status` (every root ever written has it) as a State; an unknown one reads as exited."""
    try:
        return State(status or "created")
    except ValueError:
        return State.EXITED


def docker_flags(state: State) -> dict[str, object]:
    """Docker's State booleans, derived: a restarting container counts as running, as in moby."""
    return {"Status": state.value, "Running": state in (State.RUNNING, State.PAUSED, State.RESTARTING),
            "Paused": state is State.PAUSED, "Restarting": state is State.RESTARTING, "Dead": state is State.DEAD}
