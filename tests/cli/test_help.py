"""Every command and flag of the embedded CLI explains itself, as `docker --help` does."""

from __future__ import annotations

import argparse
import contextlib
import io
import subprocess
import sys

import pytest

from nanovisor.cli.main import GROUPS, VERBS, build_parser

COMMANDS = [[v] for v in VERBS] + [[g] for g in GROUPS] + [[g, s] for g, subs in GROUPS.items() for s in subs]


def _help_of(words: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_:
        build_parser([*words, "--help"]).parse_args([*words, "--help"])
    return exit_.value.code, out.getvalue()


def _leaf_parser(words: list[str]) -> argparse.ArgumentParser:
    parser = build_parser(words)
    for word in words:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[word]
    return parser


def test_top_level_help_lists_every_command_with_a_line():
    out = subprocess.run([sys.executable, "-m", "nanovisor", "--help"], capture_output=True, text=True,
                         timeout=60).stdout
    for name in [*VERBS, *GROUPS]:
        line = next((ln for ln in out.splitlines() if ln.split()[:1] == [name]), None)
        assert line is not None and len(line.split()) > 1, f"{name} has no description in:\n{out}"


@pytest.mark.parametrize("words", COMMANDS, ids=" ".join)
def test_every_command_has_help_and_every_flag_a_text(words):
    code, out = _help_of(words)
    assert code == 0 and out.startswith("usage: nanovisor")
    missing = [a.option_strings or a.dest for a in _leaf_parser(words)._actions
               if not a.help and not isinstance(a, argparse._SubParsersAction)]
    assert not missing, f"nanovisor {' '.join(words)}: no help for {missing}"
