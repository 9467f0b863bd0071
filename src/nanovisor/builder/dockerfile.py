"""Dockerfile text → instructions grouped in stages.

Line splitting, comments, continuation lines and the `# escape=` directive come from `dockerfile-parse`
(a maintained library); on top of it we keep what the legacy builder needs: the instruction as written
(for "Step n/m : ..."), its --flags, its JSON (exec) form, and the stages with their names."""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field

from nanovisor.errors import InvalidParameter

KNOWN = ("FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
         "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL")
FLAGS = {
    "FROM": {"platform"},
    "COPY": {"from", "chown", "chmod", "link", "parents", "exclude"},
    "ADD": {"chown", "chmod", "checksum", "keep-git-dir", "link", "exclude"},
    "RUN": {"mount", "network", "security"},
    "HEALTHCHECK": {"interval", "timeout", "start-period", "start-interval", "retries"},
}
_FLAG = re.compile(r"^--([A-Za-z][A-Za-z0-9-]*)(?:=(\"[^\"]*\"|'[^']*'|\S*))?(?:\s+|$)")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9-_.]*$")


@dataclass
class Instruction:
    cmd: str                           # upper-case keyword
    original: str                      # the line as written, continuation lines joined
    args: str                          # what follows the keyword and the --flags
    flags: dict[str, list[str]] = field(default_factory=dict)
    json: list[str] | None = None      # the exec (JSON array) form, when used
    line: int = 0

    def flag(self, name: str, default: str = "") -> str:
        values = self.flags.get(name)
        return values[-1] if values else default


@dataclass
class Stage:
    index: int
    name: str                          # lower-cased "AS" name, or ""
    base: str                          # the FROM argument, unexpanded
    source: Instruction                # the FROM instruction
    commands: list[Instruction] = field(default_factory=list)


def _original(content: str, escape: str) -> str:
    lines = content.splitlines()
    out = []
    for i, line in enumerate(lines):
        if i and line.lstrip().startswith("#"):
            continue  # comments inside a continued instruction are dropped, as moby does
        stripped = line.rstrip()
        if i < len(lines) - 1 and stripped.endswith(escape):
            line = stripped[:-1]
        out.append(line)
    return "".join(out).strip()


def _json_form(text: str) -> list[str] | None:
    text = text.strip()
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def parse_instruction(keyword_as_written: str, value: str, line: int, original: str) -> Instruction:
    cmd = keyword_as_written.upper()
    if cmd not in KNOWN:
        raise InvalidParameter(f"dockerfile parse error on line {line}: unknown instruction: "
                               f"{keyword_as_written}")
    flags: dict[str, list[str]] = {}
    rest = value.strip()
    allowed = FLAGS.get(cmd, set())
    if cmd in FLAGS:
        while rest.startswith("--"):
            m = _FLAG.match(rest)
            if not m:
                break
            name, val = m.group(1).lower(), m.group(2) if m.group(2) is not None else "true"
            if len(val) >= 2 and val[0] == val[-1] and val[0] in "\"'":
                val = val[1:-1]
            if name not in allowed:
                raise InvalidParameter(f"dockerfile parse error on line {line}: Unknown flag: {name}")
            flags.setdefault(name, []).append(val)
            rest = rest[m.end():]
    return Instruction(cmd=cmd, original=original, args=rest, flags=flags, json=_json_form(rest), line=line)


def parse(text: str) -> tuple[list[Instruction], list[Stage]]:
    """(ARGs before the first FROM, stages). Raises InvalidParameter with moby's wording."""
    from dockerfile_parse import DockerfileParser

    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()), env_replace=False)
    escape = "\\"
    for item in parser.structure:
        if item["instruction"] != "COMMENT":
            break
        m = re.match(r"^\s*#\s*escape\s*=\s*(\S)\s*$", item["content"], re.I)
        if m:
            escape = m.group(1)
    meta: list[Instruction] = []
    stages: list[Stage] = []
    for item in parser.structure:
        if item["instruction"] == "COMMENT":
            continue
        content = item["content"]
        keyword = content.split(None, 1)[0] if content.strip() else item["instruction"]
        original = _original(content, escape)
        value = original[len(keyword):].strip() if original.upper().startswith(keyword.upper()) else item["value"]
        inst = parse_instruction(keyword, value, item["startline"] + 1, original)
        if inst.cmd == "FROM":
            stages.append(_stage(inst, len(stages)))
        elif not stages:
            if inst.cmd != "ARG":
                raise InvalidParameter(f"dockerfile parse error on line {inst.line}: no build stage in current "
                                       f"context")
            meta.append(inst)
        else:
            stages[-1].commands.append(inst)
    if not stages:
        raise InvalidParameter("the Dockerfile (Dockerfile) cannot be empty" if not meta else
                               "No image was generated. Is your Dockerfile empty?")
    return meta, stages


def _stage(inst: Instruction, index: int) -> Stage:
    words = inst.args.split()
    if len(words) == 3 and words[1].lower() == "as":
        name = words[2].lower()
        if not _STAGE_NAME.match(name):
            raise InvalidParameter(f'invalid name for build stage: "{words[2]}", name can\'t start with a number '
                                   f"or contain symbols")
        return Stage(index=index, name=name, base=words[0], source=inst)
    if len(words) != 1:
        raise InvalidParameter("FROM requires either one or three arguments")
    return Stage(index=index, name="", base=words[0], source=inst)


def parse_trigger(text: str) -> Instruction:
    """One ONBUILD trigger ("RUN echo hi") as an instruction."""
    keyword, _, value = text.strip().partition(" ")
    inst = parse_instruction(keyword, value, 0, text.strip())
    if inst.cmd in ("ONBUILD",):
        raise InvalidParameter("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if inst.cmd in ("FROM", "MAINTAINER"):
        raise InvalidParameter(f"{inst.cmd} isn't allowed as an ONBUILD trigger")
    return inst
