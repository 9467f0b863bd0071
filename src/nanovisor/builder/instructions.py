"""Instructions that only change the image config (ENV, LABEL, CMD, ...), applied to a stage's state as
moby's dispatchers do. Each returns the "#(nop)" comment recorded in the image history."""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass, field

from nanovisor.builder.dockerfile import Instruction
from nanovisor.builder.shellwords import ShellLex
from nanovisor.errors import InvalidParameter
from nanovisor.units import parse_duration

DEFAULT_SHELL = ["/bin/sh", "-c"]
PREDEFINED_ARGS = {"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
                   "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"}


@dataclass
class StageState:
    """What the builder knows while it goes through one stage."""

    image_id: str                              # the current image ("" before anything on top of scratch)
    image_config: dict                         # its full config ({} for scratch)
    run: dict                                  # the container config ("config" section) being built up
    args: dict[str, str | None] = field(default_factory=dict)   # ARGs declared in this stage
    cmd_set: bool = False
    maintainer: str = ""

    def shell(self) -> list[str]:
        return list(self.run.get("Shell") or DEFAULT_SHELL)

    def env_map(self) -> dict[str, str]:
        """Variables for expansion: ENV wins over ARG, as in moby."""
        out = {k: v for k, v in self.args.items() if v is not None}
        for e in self.run.get("Env") or []:
            k, _, v = e.partition("=")
            out[k] = v
        return out

    def set_env(self, key: str, value: str) -> None:
        env = [e for e in self.run.get("Env") or [] if e.partition("=")[0] != key]
        self.run["Env"] = env + [f"{key}={value}"]


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"\s+", text.strip()) if w]


def key_values(inst: Instruction, lex: ShellLex, env: dict[str, str], legacy: bool = True) -> list[tuple[str, str]]:
    """ENV/LABEL arguments: KEY=VALUE pairs (quotes and expansion), or the legacy "KEY VALUE" form."""
    words = lex.process_words(inst.args, env)
    if not words:
        raise InvalidParameter(f"{inst.cmd} requires at least one argument")
    first = _words(inst.args)[0]
    if "=" not in first and legacy:
        rest = inst.args.strip()[len(first):].strip()
        if not rest:
            raise InvalidParameter(f"{inst.cmd} must have two arguments")
        return [(lex.process_word(first, env), lex.process_word(rest, env))]
    out = []
    for w in words:
        k, eq, v = w.partition("=")
        if not eq:
            raise InvalidParameter(f"Syntax error - can't find = in \"{w}\". Must be of the form: name=value")
        if not k:
            raise InvalidParameter(f"{inst.cmd} names can not be blank")
        out.append((k, v))
    return out


def _cmdline(inst: Instruction, state: StageState) -> list[str]:
    if inst.json is not None:
        return inst.json
    return state.shell() + [inst.args]


def _go_slice(values: list[str]) -> str:
    return "[" + " ".join(json.dumps(v) for v in values) + "]"




def healthcheck(inst: Instruction) -> dict:
    words = _words(inst.args)
    if not words:
        raise InvalidParameter("HEALTHCHECK requires at least one argument")
    kind = words[0].upper()
    if kind == "NONE":
        if len(words) > 1:
            raise InvalidParameter("HEALTHCHECK NONE takes no arguments")
        return {"Test": ["NONE"]}
    if kind != "CMD":
        raise InvalidParameter(f"Unknown type \"{words[0]}\" in HEALTHCHECK (try CMD)")
    rest = inst.args.strip()[len(words[0]):].strip()
    as_json = None
    try:
        parsed = json.loads(rest) if rest.startswith("[") else None
        if isinstance(parsed, list) and all(isinstance(x, str) for x in parsed):
            as_json = parsed
    except ValueError:
        pass
    hc: dict = {"Test": ["CMD", *as_json] if as_json is not None else ["CMD-SHELL", rest]}
    for flag, key in (("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod"),
                      ("start-interval", "StartInterval")):
        if inst.flag(flag):
            hc[key] = parse_duration(inst.flag(flag), "--" + flag)
    if inst.flag("retries"):
        try:
            retries = int(inst.flag("retries"))
        except ValueError:
            raise InvalidParameter(f"invalid retries: {inst.flag('retries')}") from None
        if retries < 0:
            raise InvalidParameter("--retries cannot be negative")
        hc["Retries"] = retries
    return hc


def _ports(words: list[str]) -> list[str]:
    out = []
    for w in words:
        port, _, proto = w.partition("/")
        proto = (proto or "tcp").lower()
        start, dash, end = port.partition("-")
        try:
            lo = int(start)
            hi = int(end) if dash else lo
        except ValueError:
            raise InvalidParameter(f"Invalid containerPort: {port}") from None
        if not (0 < lo <= hi < 65536):
            raise InvalidParameter(f"Invalid containerPort: {port}")
        out.extend(f"{p}/{proto}" for p in range(lo, hi + 1))
    return out


def apply(inst: Instruction, state: StageState, lex: ShellLex) -> str:
    """Applies a config-only instruction; returns its history comment."""
    env = state.env_map()
    run = state.run
    cmd = inst.cmd
    if cmd == "ENV":
        pairs = key_values(inst, lex, env)
        for k, v in pairs:
            state.set_env(k, v)
        return "ENV " + " ".join(f"{k}={v}" for k, v in pairs)
    if cmd == "LABEL":
        pairs = key_values(inst, lex, env, legacy=True)
        run["Labels"] = {**(run.get("Labels") or {}), **dict(pairs)}
        return "LABEL " + " ".join(f"{k}={v}" for k, v in pairs)
    if cmd == "MAINTAINER":
        state.maintainer = inst.args.strip()
        return "MAINTAINER " + state.maintainer
    if cmd == "EXPOSE":
        ports = _ports(lex.process_words(inst.args, env))
        if not ports:
            raise InvalidParameter("EXPOSE requires at least one argument")
        run["ExposedPorts"] = {**(run.get("ExposedPorts") or {}), **{p: {} for p in ports}}
        return "EXPOSE " + " ".join(ports)
    if cmd == "VOLUME":
        vols = inst.json if inst.json is not None else lex.process_words(inst.args, env)
        if inst.json is not None:
            vols = [lex.process_word(v, env) for v in vols]
        if not vols:
            raise InvalidParameter("VOLUME requires at least one argument")
        for v in vols:
            if not v.strip():
                raise InvalidParameter("VOLUME specified can not be an empty string")
        run["Volumes"] = {**(run.get("Volumes") or {}), **{v: {} for v in vols}}
        return "VOLUME " + _go_slice(vols).replace('"', "")
    if cmd == "USER":
        user = lex.process_word(inst.args.strip(), env)
        if not user:
            raise InvalidParameter("USER requires exactly one argument")
        run["User"] = user
        return "USER " + user
    if cmd == "STOPSIGNAL":
        sig = lex.process_word(inst.args.strip(), env)
        from nanovisor.engine.lifecycle import parse_signal

        parse_signal(sig)
        run["StopSignal"] = sig
        return "STOPSIGNAL " + sig
    if cmd == "CMD":
        run["Cmd"] = _cmdline(inst, state)
        state.cmd_set = True
        return "CMD " + _go_slice(run["Cmd"])
    if cmd == "ENTRYPOINT":
        run["Entrypoint"] = _cmdline(inst, state) if (inst.json is None and inst.args.strip()) or inst.json \
            else None
        if not state.cmd_set:
            run.pop("Cmd", None)
        return "ENTRYPOINT " + _go_slice(run.get("Entrypoint") or [])
    if cmd == "SHELL":
        if inst.json is None or not inst.json:
            raise InvalidParameter("SHELL requires the arguments to be in JSON form")
        run["Shell"] = inst.json
        return "SHELL " + _go_slice(inst.json)
    if cmd == "HEALTHCHECK":
        hc = healthcheck(inst)
        run["Healthcheck"] = hc
        return "HEALTHCHECK " + json.dumps(hc, separators=(",", ":"))
    if cmd == "ONBUILD":
        from nanovisor.builder.dockerfile import parse_trigger

        trigger = inst.args.strip()
        parse_trigger(trigger)
        run["OnBuild"] = list(run.get("OnBuild") or []) + [trigger]
        return "ONBUILD " + trigger
    raise InvalidParameter(f"unknown instruction: {cmd}")  # pragma: no cover - dispatch covers all


def workdir_path(inst: Instruction, state: StageState, lex: ShellLex) -> str:
    wd = lex.process_word(inst.args.strip(), state.env_map())
    if not wd:
        raise InvalidParameter("WORKDIR requires exactly one argument")
    return posixpath.normpath(posixpath.join(state.run.get("WorkingDir") or "/", wd))


def declare_args(inst: Instruction, state: StageState, lex: ShellLex, build_args: dict[str, str | None],
                 meta: dict[str, str | None], used: set[str]) -> str:
    """ARG NAME[=default] ...: a --build-arg value wins, then the default, then a global ARG's value."""
    words = _words(inst.args)
    if not words:
        raise InvalidParameter("ARG requires at least one argument")
    shown = []
    for w in words:
        name, eq, default = w.partition("=")
        if not name:
            raise InvalidParameter("ARG names can not be blank")
        value: str | None
        if name in build_args and build_args[name] is not None:
            value = build_args[name]
        elif eq:
            value = lex.process_word(default, state.env_map())
        else:
            value = meta.get(name)
        used.add(name)
        state.args[name] = value
        shown.append(f"{name}={default}" if eq else name)
    return "ARG " + " ".join(shown)


def run_args(state: StageState, build_args: dict[str, str | None]) -> tuple[list[str], list[str]]:
    """(env entries passed to RUN, the ones recorded in its history line) for the declared ARGs not
    shadowed by ENV; predefined proxy args pass without being recorded, as in moby."""
    env_keys = {e.partition("=")[0] for e in state.run.get("Env") or []}
    passed, shown = [], []
    for name, value in state.args.items():
        if value is None or name in env_keys:
            continue
        passed.append(f"{name}={value}")
        shown.append(f"{name}={value}")
    for name in PREDEFINED_ARGS:
        if name not in state.args and build_args.get(name) is not None and name not in env_keys:
            passed.append(f"{name}={build_args[name]}")
    return passed, sorted(shown)
