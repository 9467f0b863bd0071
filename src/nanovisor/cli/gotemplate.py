"""Enough of Go's text/template for Docker's `--format`: fields, json, index, range, if/else, with,
join/upper/lower/title/split/println/len/printf, and the `table` prefix."""

from __future__ import annotations

import json
import re
import shlex

_TOKEN = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.S)


class TemplateError(ValueError):
    pass


def _go_str(v) -> str:
    if v is None:
        return "<no value>"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{_go_str(x)}" for k, x in sorted(v.items())) + "]"
    if isinstance(v, list):
        return "[" + " ".join(_go_str(x) for x in v) + "]"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _field(obj, path: str):
    if path == ".":
        return obj
    for part in path.strip(".").split("."):
        if not part:
            continue
        if isinstance(obj, dict):
            if part in obj:
                obj = obj[part]
            else:
                low = {k.lower(): k for k in obj}
                if part.lower() in low and False:
                    obj = obj[low[part.lower()]]
                else:
                    raise TemplateError(f'template: :1: executing "" at <.{part}>: map has no entry for key '
                                        f'"{part}"')
        elif obj is None:
            return None
        else:
            obj = getattr(obj, part, None)
    return obj


class _Ctx:
    def __init__(self, dot, root):
        self.dot = dot
        self.root = root


def _eval_arg(tok: str, ctx: _Ctx):
    if tok.startswith('"') or tok.startswith("`"):
        return shlex.split(tok)[0] if tok.startswith('"') else tok.strip("`")
    if tok.startswith("$"):
        return _field(ctx.root, tok[1:] or ".")
    if tok.startswith("."):
        return _field(ctx.dot, tok)
    if re.fullmatch(r"-?\d+", tok):
        return int(tok)
    if tok in ("true", "false"):
        return tok == "true"
    if tok == "nil":
        return None
    raise TemplateError(f'function "{tok}" not defined')


def _split_args(expr: str) -> list[str]:
    return re.findall(r'"(?:[^"\\]|\\.)*"|`[^`]*`|\([^)]*\)|\S+', expr)


def _eval(expr: str, ctx: _Ctx):
    if "|" in expr and not expr.strip().startswith('"'):
        parts = [p.strip() for p in expr.split("|")]
        value = _eval(parts[0], ctx)
        for p in parts[1:]:
            value = _call(_split_args(p)[0], [_eval_arg(a, ctx) for a in _split_args(p)[1:]] + [value])
        return value
    args = _split_args(expr)
    if not args:
        return ""
    head = args[0]
    if head.startswith("(") and head.endswith(")"):
        return _eval(head[1:-1], ctx)
    if head.startswith(".") or head.startswith("$") or head.startswith('"') or len(args) == 1 and \
            re.fullmatch(r"-?\d+|true|false|nil", head):
        return _eval_arg(head, ctx)
    vals = [(_eval(a[1:-1], ctx) if a.startswith("(") else _eval_arg(a, ctx)) for a in args[1:]]
    return _call(head, vals)


def _call(name: str, vals: list):
    if name == "json":
        return json.dumps(vals[0], separators=(",", ":")) if vals else ""
    if name == "index":
        obj = vals[0]
        for k in vals[1:]:
            obj = obj.get(k) if isinstance(obj, dict) else (obj[k] if obj is not None else None)
        return obj
    if name == "join":
        return vals[1].join(_go_str(x) for x in (vals[0] or []))
    if name == "upper":
        return _go_str(vals[0]).upper()
    if name == "lower":
        return _go_str(vals[0]).lower()
    if name == "title":
        return _go_str(vals[0]).title()
    if name == "split":
        return _go_str(vals[0]).split(vals[1])
    if name == "len":
        return len(vals[0] or [])
    if name == "println":
        return " ".join(_go_str(v) for v in vals) + "\n"
    if name == "print":
        return "".join(_go_str(v) for v in vals)
    if name == "printf":
        fmt = vals[0].replace("%v", "%s").replace("%q", '"%s"')
        return fmt % tuple(_go_str(v) if "%d" not in fmt else v for v in vals[1:])
    if name == "truncate":
        return _go_str(vals[0])[: vals[1]]
    if name in ("eq", "ne"):
        same = any(vals[0] == v for v in vals[1:])
        return same if name == "eq" else not same
    if name == "not":
        return not vals[0]
    if name == "and":
        return all(vals)
    if name == "or":
        return next((v for v in vals if v), vals[-1] if vals else None)
    raise TemplateError(f'template: :1: function "{name}" not defined')


def _parse(text: str):
    """Into a tree: list of str | ("expr", e) | ("if"/"range"/"with", expr, body, else_body)."""
    pos = 0
    root: list = []
    stack = [(root, None)]
    for m in _TOKEN.finditer(text):
        lit = text[pos:m.start()]
        if m.group(0).startswith("{{-"):
            lit = lit.rstrip()
        if lit:
            stack[-1][0].append(lit)
        pos = m.end()
        body = m.group(1)
        word = body.split(None, 1)[0] if body else ""
        if word in ("if", "range", "with"):
            node = [word, body[len(word):].strip(), [], None]
            stack[-1][0].append(node)
            stack.append((node[2], node))
        elif word == "else":
            node = stack[-1][1]
            if node is None:
                raise TemplateError("template: unexpected {{else}}")
            node[3] = []
            stack[-1] = (node[3], node)
        elif word == "end":
            if len(stack) == 1:
                raise TemplateError("template: unexpected {{end}}")
            stack.pop()
        elif body.startswith("/*"):
            continue
        else:
            stack[-1][0].append(("expr", body))
    if len(stack) != 1:
        raise TemplateError("template: unexpected EOF")
    if text[pos:]:
        root.append(text[pos:])
    return root


def _truthy(v) -> bool:
    return bool(v) and v != "<no value>"


def _render(nodes, ctx: _Ctx) -> str:
    out = []
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, tuple):
            value = _eval(node[1], ctx)
            out.append(value if isinstance(value, str) else _go_str(value))
        else:
            kind, expr, body, else_body = node
            if kind == "range" and ":=" in expr:
                expr = expr.split(":=", 1)[1].strip()
            value = _eval(expr, ctx)
            if kind == "if":
                out.append(_render(body if _truthy(value) else (else_body or []), ctx))
            elif kind == "with":
                out.append(_render(body, _Ctx(value, ctx.root)) if _truthy(value)
                           else _render(else_body or [], ctx))
            else:
                items = list(value.values()) if isinstance(value, dict) else list(value or [])
                if not items and else_body is not None:
                    out.append(_render(else_body, ctx))
                for item in items:
                    out.append(_render(body, _Ctx(item, ctx.root)))
    return "".join(out)


def render(template: str, obj) -> str:
    """Renders one object; raises TemplateError with Go's wording on bad templates/fields."""
    template = template.encode().decode("unicode_escape") if "\\t" in template or "\\n" in template else template
    return _render(_parse(template), _Ctx(obj, obj))
