"""`nanovisor build` (the legacy builder's output, as `DOCKER_BUILDKIT=0 docker build` prints it) and
`nanovisor commit`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from nanovisor.cli.main import engine_for
from nanovisor.errors import InvalidParameter


def add_build(p):
    p.add_argument("-t", "--tag", action="append", default=[])
    p.add_argument("-f", "--file", default="")
    p.add_argument("--build-arg", action="append", default=[])
    p.add_argument("--target", default="")
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("--pull", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--label", action="append", default=[])
    p.add_argument("--network", default="default")
    p.add_argument("--add-host", action="append", default=[])
    p.add_argument("--cache-from", action="append", default=[])
    p.add_argument("--iidfile", default="")
    p.add_argument("--rm", default="true", nargs="?", const="true")
    p.add_argument("--force-rm", action="store_true")
    p.add_argument("context")


def _build_args(items: list[str]) -> dict[str, str | None]:
    """K=V, or K alone: the value of K in our environment (unset: no value), as the docker CLI does."""
    out: dict[str, str | None] = {}
    for item in items:
        key, eq, value = item.partition("=")
        out[key] = value if eq else os.environ.get(key)
    return out


def _labels(items: list[str]) -> dict[str, str]:
    return {k: v for k, _, v in (i.partition("=") for i in items)}


def _dockerfile(args, context_dir: Path | None) -> tuple[str, str | None]:
    """(name inside the context, or the Dockerfile's text when it lives elsewhere / comes from stdin)."""
    if args.file == "-":
        if args.context == "-":
            raise InvalidParameter("invalid argument: can't use stdin for both build context and dockerfile")
        return "Dockerfile", sys.stdin.read()
    if not args.file:
        return "Dockerfile", None
    if context_dir is None:
        return args.file, None  # a name inside the tar on stdin
    path = Path(args.file).absolute()
    try:
        return str(path.relative_to(context_dir.absolute())), None
    except ValueError:
        try:
            return path.name, path.read_text()
        except OSError:
            raise InvalidParameter(f"unable to prepare context: unable to evaluate symlinks in Dockerfile "
                                   f"path: lstat {path}: no such file or directory") from None


def cmd_build(args) -> int:
    from nanovisor.builder.builder import build
    from nanovisor.builder.runstep import StepFailed

    engine = engine_for(args)
    if args.context == "-":
        context = sys.stdin.buffer
        context_dir = None
    else:
        context_dir = Path(args.context)
        if not context_dir.is_dir():
            raise InvalidParameter(f'unable to prepare context: path "{args.context}" not found')
        context = str(context_dir)
    name, text = _dockerfile(args, context_dir)

    def show(message: dict) -> None:
        if "stream" in message and not args.quiet:
            sys.stdout.write(message["stream"])
            sys.stdout.flush()
        elif "status" in message and not args.quiet:
            line = message["status"] + (f" {message['progress']}" if message.get("progress") else "")
            sys.stdout.write((f"{message['id']}: " if message.get("id") else "") + line + "\n")

    try:
        image_id = build(engine, context, dockerfile=name, dockerfile_text=text, tags=args.tag,
                         build_args=_build_args(args.build_arg), target=args.target or None,
                         no_cache=args.no_cache, pull=args.pull, labels=_labels(args.label), progress=show,
                         network_mode=args.network, extra_hosts=args.add_host, cache_from=args.cache_from)
    except StepFailed as e:
        print(e, file=sys.stderr)
        return e.code or 1
    if args.quiet:
        print(image_id)
    if args.iidfile:
        Path(args.iidfile).write_text(image_id)
    return 0


def _bool(text: str) -> bool:
    return str(text).lower() in ("1", "true", "yes", "")


def add_commit(p):
    p.add_argument("-a", "--author", default="")
    p.add_argument("-c", "--change", action="append", default=[])
    p.add_argument("-m", "--message", default="")
    p.add_argument("-p", "--pause", default="true", nargs="?", const="true")
    p.add_argument("container")
    p.add_argument("repository", nargs="?")


def cmd_commit(args) -> int:
    from nanovisor.builder.commit import commit

    engine = engine_for(args)
    image_id = commit(engine, args.container, repo_tag=args.repository or None, comment=args.message,
                      author=args.author, changes=args.change, pause=_bool(args.pause))
    print(image_id)
    return 0
