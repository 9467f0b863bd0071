"""run, create, attach, exec."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from nanovisor.cli.main import engine_for
from nanovisor.cli.runopts import add_run_options, body_from_args
from nanovisor.cli.terminal import follow_resizes, pump, raw_terminal
from nanovisor.errors import NanovisorError, NotFound

add_run = add_run_options
add_create = add_run_options


def _create(engine, args) -> str:
    body, name = body_from_args(args)
    try:
        result = engine.container_create(body, name)
    except NotFound as e:
        if str(e).startswith("No such image"):
            print(f"Unable to find image '{args.image}' locally", file=sys.stderr)
            raise NanovisorError(f"{e}: no registry is configured to pull it from "
                                 f"(build it: nanovisor nano build busybox)") from None
        raise
    for w in result.get("Warnings") or []:
        if args.detach or not sys.stderr.isatty():
            pass
        else:
            print(f"WARNING: {w}", file=sys.stderr)
    return result["Id"]


def cmd_create(args) -> int:
    engine = engine_for(args)
    print(_create(engine, args))
    return 0


def cmd_run(args) -> int:
    engine = engine_for(args)
    cid = _create(engine, args)
    if args.detach:
        try:
            engine.container_start(cid)
        except NanovisorError:
            if args.rm:
                engine.container_remove(cid, force=True)
            raise
        print(cid)
        return 0
    return _run_attached(engine, cid, args)


def _run_attached(engine, cid: str, args) -> int:
    from nanovisor.runtime.oci import start_exit_code

    session = engine.container_attach(cid, stdin=args.interactive, stdout=True, stderr=True)
    try:
        engine.container_start(cid, attached=True)
    except NanovisorError as e:
        session.close()
        code = start_exit_code(str(e))
        if args.rm:  # the engine removes a --rm container that failed to start; this covers older roots
            try:
                engine.container_remove(cid, force=True)
            except NotFound:
                pass
        print(f"Error: {e}", file=sys.stderr)
        return code if code in (126, 127) else 125
    sig_proxy = not args.tty and str(args.sig_proxy).lower() != "false"
    if sig_proxy:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(sig, lambda s, f: _forward(engine, cid, s))
    if args.tty:
        follow_resizes(lambda h, w: engine.container_resize(cid, h, w))
    with raw_terminal(args.tty and args.interactive):
        pump(session, args.interactive)
    session.close()
    result = engine.container_wait(cid)
    if args.rm:
        try:
            engine.container_remove(cid, force=True, volumes=True)
        except NotFound:
            pass
    return int(result["StatusCode"])


def _forward(engine, cid: str, sig: int) -> None:
    try:
        engine.container_kill(cid, str(sig))
    except NanovisorError:
        pass


def add_attach(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-stdin", action="store_true")
    p.add_argument("--sig-proxy", default="true")
    p.add_argument("--detach-keys")
    p.add_argument("container")


def cmd_attach(args) -> int:
    engine = engine_for(args)
    c = engine.get(args.container)
    if not c.running:
        raise NanovisorError("You cannot attach to a stopped container, start it first")
    tty = bool(c.config.get("Tty"))
    stdin = not args.no_stdin and bool(c.config.get("OpenStdin"))
    session = engine.container_attach(c.id, stdin=stdin)
    if tty:
        follow_resizes(lambda h, w: engine.container_resize(c.id, h, w))
    with raw_terminal(tty and stdin):
        pump(session, stdin)
    session.close()
    return int(engine.container_wait(c.id)["StatusCode"])


def add_exec(p: argparse.ArgumentParser) -> None:
    p.add_argument("-d", "--detach", action="store_true")
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("-e", "--env", action="append", default=[])
    p.add_argument("-u", "--user")
    p.add_argument("-w", "--workdir")
    p.add_argument("--privileged", action="store_true")
    p.add_argument("--detach-keys")
    p.add_argument("container")
    p.add_argument("command", nargs=argparse.REMAINDER)


def cmd_exec(args) -> int:
    if not args.command:
        raise NanovisorError("exec requires at least 2 arguments")
    engine = engine_for(args)
    env = [e if "=" in e else f"{e}={os.environ.get(e, '')}" for e in args.env]
    body = {"Cmd": args.command, "Env": env or None, "User": args.user or "", "WorkingDir": args.workdir or "",
            "Tty": args.tty, "AttachStdin": args.interactive, "AttachStdout": not args.detach,
            "AttachStderr": not args.detach, "Privileged": args.privileged}
    if args.tty:
        from nanovisor.cli.terminal import terminal_size

        size = terminal_size()
        if size:
            body["ConsoleSize"] = list(size)
    exec_id = engine.exec_create(args.container, body)["Id"]
    session = engine.exec_start(exec_id, detach=args.detach)
    if session is None:
        return 0
    if args.tty:
        follow_resizes(session.resize)
    with raw_terminal(args.tty and args.interactive):
        pump(session, args.interactive)
    code = session.wait()
    session.close()
    return code
