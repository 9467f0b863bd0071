"""Printing like the docker CLI: aligned tables (tabwriter, 3 spaces), --format templates, JSON."""

from __future__ import annotations

import json
import sys

from nanovisor.cli.gotemplate import TemplateError, render
from nanovisor.errors import InvalidParameter


def table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    out = sys.stdout
    for row in [headers, *rows]:
        line = "".join(cell.ljust(widths[i] + 3) if i < len(row) - 1 else cell for i, cell in enumerate(row))
        out.write(line.rstrip() + "\n")


def formatted(template: str, items: list[dict], headers: dict[str, str] | None = None) -> None:
    """--format: `json`, `table ...`, or a template applied to each item."""
    if template == "json":
        for item in items:
            print(json.dumps(item, separators=(",", ":")))
        return
    try:
        if template.startswith("table"):
            tpl = template[5:].strip() or "{{json .}}"
            import re

            names = re.findall(r"\{\{\s*\.(\w+)\s*\}\}", tpl)
            head = tpl
            for n in names:
                head = head.replace("{{." + n + "}}", (headers or {}).get(n, n.upper()))
            lines = [head.encode().decode("unicode_escape")] + [render(tpl, item) for item in items]
            rows = [line.split("\t") for line in lines]
            table(rows[0], rows[1:])
            return
        for item in items:
            print(render(template, item))
    except TemplateError as e:
        raise InvalidParameter(str(e)) from None


def for_each(items: list[str], act, echo: bool = True) -> int:
    """Docker's multi-object verbs: act on each, print the name given, report each error on one line, and
    exit 1 if any failed."""
    from nanovisor.errors import NanovisorError

    code = 0
    for item in items:
        try:
            act(item)
            if echo:
                print(item)
        except NanovisorError as e:
            print(f"Error response from daemon: {e}", file=sys.stderr)
            code = 1
    return code


def dump_json(obj) -> None:
    print(json.dumps(obj, indent=4))
