"""pull, push, login, logout: the registry client with Docker's progress display and config.json."""

from __future__ import annotations

import getpass
import sys

from nanovisor.cli.main import engine_for


def _auth_for(ref: str):
    from nanovisor.images.reference import parse
    from nanovisor.images.registry import credentials

    return credentials.lookup(parse(ref).domain)


def add_pull(p):
    p.add_argument("--platform")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("-a", "--all-tags", action="store_true")
    p.add_argument("image")


def cmd_pull(args) -> int:
    from nanovisor.images.registry.render import Renderer

    engine = engine_for(args)
    render = (lambda msg: None) if args.quiet else Renderer()
    for msg in engine.image_pull(args.image, args.platform, _auth_for(args.image)):
        render(msg)
    from nanovisor.images.reference import parse

    ref = parse(args.image)
    print(ref.full_name + (f"@{ref.digest}" if ref.digest else f":{ref.tag or 'latest'}"))
    return 0


def add_push(p):
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("-a", "--all-tags", action="store_true")
    p.add_argument("image")


def cmd_push(args) -> int:
    from nanovisor.images.registry.render import Renderer

    engine = engine_for(args)
    render = (lambda msg: None) if args.quiet else Renderer()
    for msg in engine.image_push(args.image, _auth_for(args.image)):
        render(msg)
    return 0


def add_login(p):
    p.add_argument("-u", "--username")
    p.add_argument("-p", "--password")
    p.add_argument("--password-stdin", action="store_true")
    p.add_argument("server", nargs="?")


def cmd_login(args) -> int:
    from nanovisor.images.registry import login

    user = args.username or input("Username: ")
    if args.password_stdin:
        password = sys.stdin.read().rstrip("\n")
    else:
        password = args.password or getpass.getpass("Password: ")
    engine = engine_for(args)
    result = login(args.server, user, password, save=True, **engine._registry_options())
    print(result.get("Status", "Login Succeeded"))
    return 0


def add_logout(p):
    p.add_argument("server", nargs="?")


def cmd_logout(args) -> int:
    from nanovisor.images.registry import logout

    print(logout(args.server))
    return 0
