"""JSON values checked against the types Go's decoder would enforce, before anything uses them.

dockerd decodes a create body or an image config into Go structs, so a string where an integer belongs, a
number past int64 or a float for an integer is refused up front ("json: cannot unmarshal ..."), and nothing
later meets a value of the wrong type. jsontypes.json holds those types, generated from the Engine API spec by
scripts/gen-api-types.py. JSON null is accepted anywhere (Go leaves the zero value) and unknown fields are
ignored, as Go does; enums and ranges are the engine's business.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from nanovisor.errors import InvalidParameter

INT64 = (-(1 << 63), (1 << 63) - 1)
_STRINGS = {"t": "array", "i": {"t": "string"}}


@cache
def types() -> dict:
    data = json.loads(Path(__file__).with_name("jsontypes.json").read_text())
    # the image config document around the container config (OCI image spec; Docker's own fields)
    history = {"t": "object", "p": {k: {"t": "string"} for k in ("created", "created_by", "author", "comment")}}
    history["p"]["empty_layer"] = {"t": "boolean"}
    data["ImageDocument"] = {"t": "object", "p": {
        **{k: {"t": "string"} for k in ("created", "author", "architecture", "os", "variant", "os.version",
                                         "comment", "docker_version", "container")},
        "os.features": _STRINGS, "config": data["ImageConfig"], "container_config": data["ImageConfig"],
        "rootfs": {"t": "object", "p": {"type": {"t": "string"}, "diff_ids": _STRINGS}},
        "history": {"t": "array", "i": history}}}
    return data


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return f"number {value}" if len(str(value)) < 40 else "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


_GO = {"string": "string", "boolean": "bool", "integer": "int64", "number": "float64",
       "strslice": "[]string", "array": "array", "object": "object"}


def check(value: Any, kind: str, what: str = "") -> None:
    """Raise InvalidParameter naming the first field whose JSON type Go would refuse."""
    stack = [(value, types()[kind], what)]
    while stack:
        v, t, path = stack.pop()
        want = t.get("t")
        if v is None or want is None:
            continue
        ok = _fits(v, want)
        if ok and want == "array":
            stack.extend((x, t.get("i") or {}, f"{path}[{i}]") for i, x in enumerate(v))
        elif ok and want == "object":
            props, extra = t.get("p") or {}, t.get("a")
            for k, x in v.items():
                sub = props.get(k, extra)
                if sub:
                    stack.append((x, sub, f"{path}.{k}" if path else k))
        if not ok:
            raise InvalidParameter(f"json: cannot unmarshal {_json_kind(v)} into Go struct field "
                                   f"{path or kind} of type {_GO.get(want, want)}")
        if isinstance(v, str) and "\x00" in v or want == "strslice" and isinstance(v, list) and \
                any("\x00" in x for x in v):
            raise InvalidParameter(f"invalid {path or kind}: contains a NUL byte")


def _fits(v: Any, want: str | None) -> bool:
    if v is None or want is None:
        return True
    if want == "string":
        return isinstance(v, str)
    if want == "boolean":
        return isinstance(v, bool)
    if want == "integer":
        return isinstance(v, int) and not isinstance(v, bool) and INT64[0] <= v <= INT64[1]
    if want == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if want == "strslice":
        return isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v))
    return isinstance(v, list) if want == "array" else isinstance(v, dict) if want == "object" else True


def clean(value: Any, kind: str) -> Any:
    """A copy of value with every field of the wrong type set to null (an array item or map value of the
    wrong type dropped): for showing what an older version stored without checking it."""
    def walk(v: Any, t: dict) -> Any:
        if not _fits(v, t.get("t")):
            return None
        if isinstance(v, list) and t.get("t") == "array":
            item = t.get("i") or {}
            return [walk(x, item) for x in v if _fits(x, item.get("t"))]
        if isinstance(v, dict) and t.get("t") == "object":
            props, extra = t.get("p") or {}, t.get("a")
            out = {}
            for k, x in v.items():
                sub = props.get(k, extra)
                if sub is None:
                    out[k] = x
                elif sub is extra and not _fits(x, sub.get("t")):
                    continue
                else:
                    out[k] = walk(x, sub)
            return out
        return v
    return walk(value, types()[kind])
