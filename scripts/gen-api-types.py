#!/usr/bin/env python3
"""Regenerates src/nanovisor/jsontypes.json from the Engine API spec: the JSON types of the request
bodies the API decodes field by field (container create) and of the image config, $ref and allOf resolved, descriptions dropped.

    python3 scripts/gen-api-types.py /work/shared/specs/docker-engine-api-v1.56.yaml

Only what Go's JSON decoder enforces is kept (type, integer format); enums and ranges are the engine's job.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

OUT = Path(__file__).resolve().parent.parent / "src/nanovisor/jsontypes.json"
# Go types that accept more than the spec says: strslice.StrSlice takes a string or a list of strings
STR_SLICE = {"Cmd", "Entrypoint", "Shell", "Test"}


def compact(schema: dict, defs: dict, name: str = "", seen: tuple = ()) -> dict:
    if "$ref" in schema:
        ref = schema["$ref"].rsplit("/", 1)[1]
        if ref in seen:
            return {}
        return compact(defs[ref], defs, name, seen + (ref,))
    if "allOf" in schema:  # objects merge; a lone $ref to a scalar (Mount.Type: MountType) is that scalar
        parts = [compact(part, defs, name, seen) for part in schema["allOf"]]
        if any(p.get("t") not in (None, "object") for p in parts):
            return next(p for p in parts if p.get("t") not in (None, "object"))
        props: dict = {}
        for part in parts:
            props.update(part.get("p", {}))
        return {"t": "object", "p": props}
    t = schema.get("type")
    if name in STR_SLICE and t == "array":
        return {"t": "strslice"}
    if t == "object" or (t is None and "properties" in schema):
        out: dict = {"t": "object"}
        if "properties" in schema:
            out["p"] = {k: compact(v, defs, k, seen) for k, v in schema["properties"].items()}
        if isinstance(schema.get("additionalProperties"), dict):
            out["a"] = compact(schema["additionalProperties"], defs, "", seen)
        return out
    if t == "array":
        return {"t": "array", "i": compact(schema.get("items") or {}, defs, "", seen)}
    if t == "integer":
        return {"t": "integer", "f": schema.get("format", "int64")}
    if t in ("string", "boolean", "number"):
        return {"t": t}
    return {}


BODIES = {  # the JSON request bodies the API serves, by the name handlers check them under
    "ContainerCreate": ("post", "/containers/create"), "ContainerUpdate": ("post", "/containers/{id}/update"),
    "Commit": ("post", "/commit"),
    "ExecCreate": ("post", "/containers/{id}/exec"), "ExecStart": ("post", "/exec/{id}/start"),
    "VolumeCreate": ("post", "/volumes/create"), "NetworkCreate": ("post", "/networks/create"),
    "NetworkConnect": ("post", "/networks/{id}/connect"), "NetworkDisconnect": ("post", "/networks/{id}/disconnect"),
    "Auth": ("post", "/auth"),
}


def _body(spec: dict, method: str, path: str) -> dict:
    return next(p["schema"] for p in spec["paths"][path][method]["parameters"] if p["in"] == "body")


def main() -> None:
    spec = yaml.safe_load(open(sys.argv[1]))
    defs = spec["definitions"]
    types = {kind: compact(_body(spec, method, path), defs) for kind, (method, path) in BODIES.items()}
    types["ImageConfig"] = compact(defs["ImageConfig"], defs)
    OUT.write_text(json.dumps(types, sort_keys=True, separators=(",", ":")) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
