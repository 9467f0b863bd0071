"""One parsed API request and the query/body parsing every handler shares (moby's httputils)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

from nanovisor import errors
from nanovisor.api.body import BodyReader

_FALSE = {"", "0", "no", "false", "none"}


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
        values = self.query.get(name)
        return values[-1] if values else default

    def qlist(self, name: str) -> list[str]:
        return list(self.query.get(name, []))

    def qbool(self, name: str, default: bool = False) -> bool:
        """moby's BoolValue: absent -> default; "", 0, no, false, none -> False; anything else -> True."""
        v = self.q(name)
        if v is None:
            return default
        return v.strip().lower() not in _FALSE

    def qint(self, name: str, default: int | None = None) -> int | None:
        v = self.q(name)
        if v is None or v == "":
            return default
        try:
            return int(v)
        except ValueError:
            raise errors.InvalidParameter(f'invalid value for "{name}": {v!r} is not an integer') from None

    def qtime(self, name: str) -> float:
        """Unix time as "seconds[.nanoseconds]" (what the docker CLI sends for since/until); 0 if absent."""
        v = self.q(name)
        if not v:
            return 0.0
        try:
            return float(v)
        except ValueError:
            raise errors.InvalidParameter(
                f'invalid value for "{name}": {v!r} is not a unix timestamp') from None

    def qfilters(self) -> dict[str, list[str]] | None:
        return parse_filters(self.q("filters"))

    # -- body -----------------------------------------------------------------------------------------
    def json(self, required: bool = False, empty_message: str = "request body is empty",
             null_ok: bool = False) -> dict:
        """The body as a JSON object; empty (or, with null_ok, JSON null) gives {} unless required."""
        raw = self.body.read_all()
        if not raw.strip() or (null_ok and raw.strip() == b"null"):
            if required:
                raise errors.InvalidParameter(empty_message)
            return {}
        try:
            value = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise errors.InvalidParameter(f"invalid JSON: {e}") from None
        if not isinstance(value, dict):
            raise errors.InvalidParameter("invalid JSON: expected an object")
        return value

    @property
    def wants_upgrade(self) -> bool:
        conn = {t.strip().lower() for t in (self.headers.get("Connection") or "").split(",")}
        return "upgrade" in conn and (self.headers.get("Upgrade") or "").lower() == "tcp"


def parse_filters(raw: str | None) -> dict[str, list[str]] | None:
    """Docker filters JSON: {"key": ["v", ...]} or the older {"key": {"v": true}} form."""
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise errors.InvalidParameter(f"invalid filter: {e}") from None
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
