"""Dockerfile parsing, variable expansion and .dockerignore matching (pure functions, moby's rules)."""

from __future__ import annotations

import pytest

from nanovisor.builder.dockerfile import parse
from nanovisor.builder.dockerignore import Matcher, read_patterns
from nanovisor.builder.shellwords import ShellLex
from nanovisor.errors import InvalidParameter


def test_expansion_forms():
    lex = ShellLex()
    env = {"A": "x y", "E": ""}
    assert lex.process_word("$A-${A}", env) == "x y-x y"
    assert lex.process_word("${B:-def} ${E:-empty} ${E-unset} ${A:+alt}", env) == "def empty  alt"
    assert lex.process_word("'$A' \"$A\" \\$A", env) == "$A x y $A"
    assert lex.process_words("$A 'b c' d", env) == ["x", "y", "b c", "d"]
    with pytest.raises(InvalidParameter):
        lex.process_word("'open", env)


def test_stages_flags_and_errors():
    meta, stages = parse("ARG V=1\nFROM nano/busybox AS Build\nRUN echo a \\\n  b\n"
                         "COPY --from=build --chown=1:2 a b\nFROM scratch\nCMD [\"x\"]\n")
    assert [m.args for m in meta] == ["V=1"]
    assert [s.name for s in stages] == ["build", ""]
    run, copy = stages[0].commands
    assert run.original == "RUN echo a   b"
    assert copy.flags == {"from": ["build"], "chown": ["1:2"]} and copy.args == "a b"
    assert stages[1].commands[0].json == ["x"]
    with pytest.raises(InvalidParameter, match="unknown instruction: FOO"):
        parse("FROM scratch\nFOO bar\n")
    with pytest.raises(InvalidParameter, match="no build stage in current context"):
        parse("RUN true\n")
    with pytest.raises(InvalidParameter, match="Unknown flag: bogus"):
        parse("FROM scratch\nCOPY --bogus=1 a b\n")


def test_dockerignore_rules():
    m = Matcher(read_patterns("# comment\n*.log\n**/*.tmp\n/secret\ndir\n!dir/keep\n"))
    assert m.excluded("a.log") and not m.excluded("sub/a.log")
    assert m.excluded("x/y/z.tmp") and m.excluded("z.tmp")
    assert m.excluded("secret") and m.excluded("secret/inner")
    assert m.excluded("dir/other") and not m.excluded("dir/keep")
