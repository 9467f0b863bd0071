"""`docker import --change` / `docker commit --change`: the Dockerfile instructions that only touch the
image config, applied the way moby's BuildFromConfig does."""

from __future__ import annotations

import json
import posixpath
import shlex

from nanovisor.errors import InvalidParameter

ALLOWED = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "HEALTHCHECK", "LABEL", "ONBUILD", "STOPSIGNAL", "USER",
           "VOLUME", "WORKDIR")


def _json_or_shell(args: str) -> list[str]:
    text = args.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(x, str) for x in value):
            return value
    return ["/bin/sh", "-c", text]


def _json_or_words(args: str) -> list[str]:
    text = args.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
            if isinstance(value, list) and all(isinstance(x, str) for x in value):
                return value
        except ValueError:
            pass
    return shlex.split(text)


def _pairs(keyword: str, args: str) -> list[tuple[str, str]]:
    """KEY=VALUE pairs (quotes allowed), or the legacy "KEY VALUE" form."""
    words = shlex.split(args)
    if not words:
        raise InvalidParameter(f"{keyword} requires at least one argument")
    if "=" not in words[0]:
        key, _, value = args.strip().partition(" ")
        if not value.strip():
            raise InvalidParameter(f"{keyword} must have two arguments")
        return [(key, value.strip())]
    out = []
    for w in words:
        if "=" not in w:
            raise InvalidParameter(f"{keyword} names can not be blank" if w.startswith("=") else
                                   f"Syntax error - can't find = in \"{w}\". Must be of the form: name=value")
        k, _, v = w.partition("=")
        if not k:
            raise InvalidParameter(f"{keyword} names can not be blank")
        out.append((k, v))
    return out


def apply_changes(config: dict, changes: list[str]) -> dict:
    """Returns config (the "config" object of an image config) with each change applied in order."""
    cfg = dict(config)
    for change in changes:
        line = change.strip()
        if not line:
            continue
        keyword, _, args = line.partition(" ")
        kw = keyword.upper()
        if kw not in ALLOWED:
            raise InvalidParameter(f"{keyword.lower()} is not a valid change command")
        if kw == "CMD":
            cfg["Cmd"] = _json_or_shell(args)
        elif kw == "ENTRYPOINT":
            cfg["Entrypoint"] = _json_or_shell(args)
        elif kw == "ENV":
            env = list(cfg.get("Env") or [])
            for k, v in _pairs("ENV", args):
                env = [e for e in env if e.split("=", 1)[0] != k] + [f"{k}={v}"]
            cfg["Env"] = env
        elif kw == "LABEL":
            labels = dict(cfg.get("Labels") or {})
            labels.update(_pairs("LABEL", args))
            cfg["Labels"] = labels
        elif kw == "EXPOSE":
            ports = dict(cfg.get("ExposedPorts") or {})
            for p in shlex.split(args):
                port, _, proto = p.partition("/")
                ports[f"{port}/{(proto or 'tcp').lower()}"] = {}
            cfg["ExposedPorts"] = ports
        elif kw == "VOLUME":
            vols = dict(cfg.get("Volumes") or {})
            for v in _json_or_words(args):
                if not v.strip():
                    raise InvalidParameter("VOLUME specified can not be an empty string")
                vols[v] = {}
            cfg["Volumes"] = vols
        elif kw == "WORKDIR":
            wd = args.strip()
            cfg["WorkingDir"] = posixpath.normpath(posixpath.join(cfg.get("WorkingDir") or "/", wd))
        elif kw == "USER":
            cfg["User"] = args.strip()
        elif kw == "STOPSIGNAL":
            cfg["StopSignal"] = args.strip()
        elif kw == "ONBUILD":
            cfg["OnBuild"] = list(cfg.get("OnBuild") or []) + [args.strip()]
        elif kw == "HEALTHCHECK":
            cfg["Healthcheck"] = _healthcheck(args)
    return cfg


def _healthcheck(args: str) -> dict:
    words = args.split()
    if words and words[0].upper() == "NONE":
        return {"Test": ["NONE"]}
    # options (--interval=...) are accepted and ignored beyond the test itself
    while words and words[0].startswith("--"):
        words.pop(0)
    rest = " ".join(words)
    if not rest.upper().startswith("CMD"):
        raise InvalidParameter("Unknown type in HEALTHCHECK (try CMD)")
    cmd = rest[3:].strip()
    test = _json_or_shell(cmd)
    if test[:2] == ["/bin/sh", "-c"]:
        return {"Test": ["CMD-SHELL", test[2]]}
    return {"Test": ["CMD", *test]}
