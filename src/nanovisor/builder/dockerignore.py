""".dockerignore patterns with moby's semantics (patternmatcher): Go filepath.Match syntax plus `**`, `!`
exceptions where the last matching pattern wins, and a pattern also matching every path below a matched
directory."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass


@dataclass
class _Pattern:
    text: str
    exclusion: bool
    regex: re.Pattern


def _compile(pattern: str) -> re.Pattern:
    out = "^"
    i = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 1
                if i + 1 < n and pattern[i + 1] == "/":
                    i += 1
                    out += "(.*/)?"  # "**/" also matches nothing
                else:
                    out += ".*"
            else:
                out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "\\" and i + 1 < n:
            i += 1
            out += re.escape(pattern[i])
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out += re.escape(ch)
            else:
                body = pattern[i + 1:end]
                if body.startswith("^") or body.startswith("!"):
                    body = "^" + body[1:]
                out += "[" + body.replace("\\", "\\\\") + "]"
                i = end
        else:
            out += re.escape(ch)
        i += 1
    return re.compile(out + "$")


def read_patterns(text: str) -> list[str]:
    """Lines of a .dockerignore file, cleaned as the docker CLI does."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        neg = line.startswith("!")
        body = line[1:].strip() if neg else line
        body = posixpath.normpath(body).lstrip("/") if body else body
        if body in ("", "."):
            continue
        out.append(("!" if neg else "") + body)
    return out


class Matcher:
    def __init__(self, patterns: list[str]) -> None:
        self.patterns = [_Pattern(p, p.startswith("!"), _compile(p[1:] if p.startswith("!") else p))
                         for p in patterns]
        self.has_exclusions = any(p.exclusion for p in self.patterns)

    def excluded(self, rel: str) -> bool:
        """True when rel (a clean relative path) is ignored."""
        if not self.patterns:
            return False
        parents = []
        parts = rel.split("/")
        for i in range(1, len(parts)):
            parents.append("/".join(parts[:i]))
        matched = False
        for p in self.patterns:
            if p.exclusion != matched:
                continue  # cannot change the outcome
            hit = bool(p.regex.match(rel)) or any(p.regex.match(d) for d in parents)
            if hit:
                matched = not p.exclusion
        return matched
