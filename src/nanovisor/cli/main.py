"""Entry point: global flags, one sub-command per verb, errors as one line (exit 125 for engine errors in
run/create/exec as docker does, 1 elsewhere). Imports stay lazy: `--version` loads almost nothing."""

from __future__ import annotations

import argparse
import os
import sys

# verb → (module, function); modules are imported only when their verb runs
VERBS = {
    "run": ("run", "cmd_run"), "create": ("run", "cmd_create"), "start": ("containers", "cmd_start"),
    "stop": ("containers", "cmd_stop"), "kill": ("containers", "cmd_kill"),
    "restart": ("containers", "cmd_restart"), "rm": ("containers", "cmd_rm"), "ps": ("containers", "cmd_ps"),
    "logs": ("containers", "cmd_logs"), "wait": ("containers", "cmd_wait"),
    "inspect": ("containers", "cmd_inspect"), "top": ("containers", "cmd_top"),
    "rename": ("containers", "cmd_rename"), "pause": ("containers", "cmd_pause"),
    "unpause": ("containers", "cmd_unpause"), "attach": ("run", "cmd_attach"), "cp": ("containers", "cmd_cp"),
    "export": ("containers", "cmd_export"), "stats": ("containers", "cmd_stats"),
    "exec": ("run", "cmd_exec"), "images": ("images", "cmd_images"), "rmi": ("images", "cmd_rmi"),
    "tag": ("images", "cmd_tag"), "save": ("images", "cmd_save"), "load": ("images", "cmd_load"),
    "import": ("images", "cmd_import"), "history": ("images", "cmd_history"),
    "info": ("system", "cmd_info"), "version": ("system", "cmd_version"), "serve": ("system", "cmd_serve"),
    "events": ("system", "cmd_events"), "pull": ("registry", "cmd_pull"), "push": ("registry", "cmd_push"),
    "login": ("registry", "cmd_login"), "logout": ("registry", "cmd_logout"), "port": ("networks", "cmd_port"),
    "build": ("build", "cmd_build"), "commit": ("build", "cmd_commit"),
    "update": ("containers", "cmd_update"), "diff": ("containers", "cmd_diff"),
}
GROUPS = {  # `nanovisor container ls` etc.
    "container": {"ls": "ps", "list": "ps", "run": "run", "create": "create", "start": "start", "stop": "stop",
                  "kill": "kill", "restart": "restart", "rm": "rm", "logs": "logs", "wait": "wait",
                  "inspect": "inspect", "top": "top", "rename": "rename", "pause": "pause", "unpause": "unpause",
                  "attach": "attach", "cp": "cp", "export": "export", "update": "update", "diff": "diff", "stats": "stats", "exec": "exec", "port": "port", "commit": "commit",
                  "prune": ("containers", "cmd_prune"), "cleanup": ("containers", "cmd_cleanup"),
                  "healthcheck": ("containers", "cmd_healthcheck")},
    "image": {"ls": "images", "list": "images", "rm": "rmi", "tag": "tag", "save": "save", "load": "load",
              "import": "import", "history": "history", "inspect": ("images", "cmd_image_inspect"),
              "prune": ("images", "cmd_prune"), "pull": "pull", "push": "push", "build": "build"},
    "volume": {"create": ("volumes", "cmd_create"), "ls": ("volumes", "cmd_ls"), "list": ("volumes", "cmd_ls"),
               "rm": ("volumes", "cmd_rm"), "inspect": ("volumes", "cmd_inspect"),
               "prune": ("volumes", "cmd_prune")},
    "system": {"df": ("system", "cmd_df"), "info": "info", "events": "events"},
    "nano": {"build": ("system", "cmd_nano_build"), "slim": ("system", "cmd_nano_slim"),
             "fetch": ("system", "cmd_nano_fetch")},
    "tls": {"init": ("tls", "cmd_init")},
    "network": {"ls": ("networks", "cmd_ls"), "list": ("networks", "cmd_ls"), "inspect": ("networks", "cmd_inspect"),
                "create": ("networks", "cmd_create"), "rm": ("networks", "cmd_rm"), "remove": ("networks", "cmd_rm"),
                "connect": ("networks", "cmd_connect"), "disconnect": ("networks", "cmd_disconnect"),
                "prune": ("networks", "cmd_prune")},
}


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # docker prints one line and exits 125 on flag errors
        print(f"nanovisor: {message}\nSee 'nanovisor --help'.", file=sys.stderr)
        raise SystemExit(125)


def _verb_help(command: str, target) -> str:
    """One line for `nanovisor --help` / `nanovisor GROUP --help`; an alias shares its verb's line."""
    from nanovisor.cli.helptext import VERB_HELP

    if command in VERB_HELP:
        return VERB_HELP[command]
    if isinstance(target, str):
        return VERB_HELP[target]
    group = command.split()[0]
    same = next(f"{group} {n}" for n, t in GROUPS[group].items() if t == target and f"{group} {n}" in VERB_HELP)
    return VERB_HELP[same]


def _add_verb(sub, name: str, target, group: str = "") -> None:
    from importlib import import_module

    from nanovisor.cli.helptext import describe_flags

    command = f"{group} {name}" if group else name
    module, func = VERBS[target] if isinstance(target, str) else target
    line = _verb_help(command, target)
    p = sub.add_parser(name, add_help=name not in ("run", "create"), help=line, description=line)
    if name in ("run", "create"):
        p.add_argument("--help", action="help", help="show this help message and exit")
    mod = import_module(f"nanovisor.cli.{module}")
    getattr(mod, "add_" + func[4:], lambda p: None)(p)
    describe_flags(p, target if isinstance(target, str) else command)
    p.set_defaults(_target=(module, func))


def build_parser(argv: list[str]) -> Parser:
    parser = Parser(prog="nanovisor", description="A container engine with process and VM isolation.")
    parser.add_argument("--root", default=os.environ.get("NANOVISOR_ROOT"),
                        help="data root (default /var/lib/nanovisor, or $NANOVISOR_ROOT)")
    parser.add_argument("--version", "-v", action="store_true", help="print the version and exit")
    parser.add_argument("--debug", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="verb", parser_class=Parser, title="commands", metavar="COMMAND")
    # only build the sub-parser the command line names: keeps start-up fast
    words = [w for w in argv if not w.startswith("-")]
    verb = next((w for w in words if w in VERBS or w in GROUPS), None)
    if verb in VERBS:
        _add_verb(sub, verb, verb)
    elif verb in GROUPS:
        gp = sub.add_parser(verb, help=_verb_help(verb, None), description=_verb_help(verb, None))
        gsub = gp.add_subparsers(dest="subverb", parser_class=Parser, title="commands", metavar="COMMAND")
        after = words[words.index(verb) + 1:]
        name = next((w for w in after if w in GROUPS[verb]), None)
        if name:
            _add_verb(gsub, name, GROUPS[verb][name], group=verb)
        else:  # `nanovisor GROUP [--help]`: list the group's verbs without importing them
            for sub_name, target in GROUPS[verb].items():
                gsub.add_parser(sub_name, help=_verb_help(f"{verb} {sub_name}", target))
    else:  # `nanovisor [--help]`: list every command, importing none
        for name in [*GROUPS, *VERBS]:
            sub.add_parser(name, help=_verb_help(name, name if name in VERBS else None))
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.version:
        from nanovisor import __version__

        print(f"nanovisor version {__version__}")
        return 0
    target = getattr(args, "_target", None)
    from nanovisor.logconfig import configure

    configure(debug=args.debug)
    if target is None:
        parser.print_help()
        return 0 if not args.verb else 1
    from importlib import import_module

    from nanovisor.errors import NanovisorError

    func = getattr(import_module(f"nanovisor.cli.{target[0]}"), target[1])
    try:
        return int(func(args) or 0)
    except NanovisorError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 125 if target[1] in ("cmd_run", "cmd_create", "cmd_exec") else 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


def engine_for(args, persistent: bool = False):
    from nanovisor.engine import Engine

    return Engine(args.root, persistent=persistent)
