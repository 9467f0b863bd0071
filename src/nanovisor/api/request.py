"""One parsed API request and the query/body parsing every handler shares (moby's httputils)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

from nanovisor import errors, jsontypes
from nanovisor.api.body import BodyReader

_FALSE = {"", "0", "no", "false", "none"}
_INT = re.compile(r"[-+]?[0-9]{1,19}")
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
MAX_JSON_DEPTH = 64
MAX_JSON_BODY = 32 << 20


@dataclass
class Request:
    method: str
    path: str                      # without the /vX.Y prefix, percent-decoded
    version: str                   # API version in effect for this request
    query: dict[str, list[str]]
    headers: Message
    body: BodyReader
    engine: Any
    params: dict[str, str] = field(default_factory=dict)   # path variables from the route

    # -- query ----------------------------------------------------------------------------------------
    def q(self, name: str, default: str | None = None) -> str | None:
        values = self.qlist(name)
        return values[-1] if values else default

    def qlist(self, name: str) -> list[str]:
        """A NUL byte is refused here: no name, path or option of the engine can hold one (the OS refuses it
        later with a ValueError that would look like a bug)."""
        values = list(self.query.get(name, []))
        if any("\x00" in v for v in values):
            raise errors.InvalidParameter(f'invalid value for "{name}": contains a NUL byte')
        return values

    def qbool(self, name: str, default: bool = False) -> bool:
        """moby's BoolValue: absent -> default; "", 0, no, false, none -> False; anything else -> True."""
        v = self.q(name)
        if v is None:
            return default
        return v.strip().lower() not in _FALSE

    def qint(self, name: str, default: int | None = None) -> int | None:
        """A signed 64-bit integer, as Go's strconv.ParseInt reads it (no spaces, no "_", no "+0x")."""
        v = self.q(name)
        if v is None or v == "":
            return default
        if not _INT.fullmatch(v) or not INT64_MIN <= int(v) <= INT64_MAX:
            raise errors.InvalidParameter(f'invalid value for "{name}": {v[:40]!r} is not an integer') from None
        return int(v)

    def qtime(self, name: str) -> float:
        """Unix time as "seconds[.nanoseconds]" (what the docker CLI sends for since/until); 0 if absent."""
        v = self.q(name)
        if not v:
            return 0.0
        try:
            t = float(v)
        except ValueError:
            t = float("nan")
        if not -1e12 < t < 1e12:  # NaN, inf and times no clock reaches
            raise errors.InvalidParameter(f'invalid value for "{name}": {v[:40]!r} is not a unix timestamp')
        return t

    def qfilters(self) -> dict[str, list[str]] | None:
        return parse_filters(self.q("filters"))

    # -- body -----------------------------------------------------------------------------------------
    def json(self, required: bool = False, empty_message: str = "request body is empty",
             null_ok: bool = False, kind: str | None = None) -> dict:
        """The body as a JSON object; empty (or, with null_ok, JSON null) gives {} unless required. kind names
        its type in the spec (nanovisor/jsontypes.json): a field of the wrong JSON type is a 400, as moby's
        Go decoding makes it."""
        parts, size = [], 0
        while size <= MAX_JSON_BODY:
            data = self.body.read(min(1 << 16, MAX_JSON_BODY + 1 - size))
            if not data:
                break
            parts.append(data)
            size += len(data)
        raw = b"".join(parts)
        if size > MAX_JSON_BODY:
            raise errors.InvalidParameter(f"request body too large (over {MAX_JSON_BODY >> 20} MiB of JSON)")
        if not raw.strip() or (null_ok and raw.strip() == b"null"):
            if required:
                raise errors.InvalidParameter(empty_message)
            return {}
        value = loads_json(raw, "invalid JSON")
        if not isinstance(value, dict):
            raise errors.InvalidParameter("invalid JSON: expected an object")
        if kind:
            jsontypes.check(value, kind)
        return value

    @property
    def wants_upgrade(self) -> bool:
        conn = {t.strip().lower() for t in (self.headers.get("Connection") or "").split(",")}
        return "upgrade" in conn and (self.headers.get("Upgrade") or "").lower() == "tcp"


def loads_json(raw: str | bytes, what: str) -> Any:
    """json.loads for what a client sent: bad text, nesting deeper than MAX_JSON_DEPTH (every later walk of
    the value, ours or the runtime's, would pay for it; Docker's own bodies nest ~6 deep) and non-finite
    numbers are a 400 "<what>: ...", never a RecursionError."""
    try:
        value = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        reason = "nesting too deep" if isinstance(e, RecursionError) else str(e)
        raise errors.InvalidParameter(f"{what}: {reason}") from None
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise errors.InvalidParameter(f"{what}: nesting deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_filters(raw: str | None) -> dict[str, list[str]] | None:
    """Docker filters JSON: {"key": ["v", ...]} or the older {"key": {"v": true}} form."""
    if not raw:
        return None
    data = loads_json(raw, "invalid filter")
    if not isinstance(data, dict):
        raise errors.InvalidParameter("invalid filter: expected a JSON object")
    out: dict[str, list[str]] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out[key] = [k for k, on in value.items() if on]
        elif isinstance(value, list):
            out[key] = [str(v) for v in value]
        elif isinstance(value, str):
            out[key] = [value]
        else:
            raise errors.InvalidParameter(f"invalid filter: bad value for {key!r}")
    return out
