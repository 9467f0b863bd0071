"""Registry failures as the engine's typed errors, worded as moby words them (clients match on the text).

The registry answers errors as {"errors": [{"code": "MANIFEST_UNKNOWN", "message": ...}]}; moby renders one as
"manifest unknown: <message>" (the code lowered, underscores as spaces) and wraps it per operation."""

from __future__ import annotations

import json

from nanovisor.errors import InvalidParameter, NanovisorError, NotFound


class Unauthorized(NanovisorError):
    """moby's errdefs.Unauthorized (HTTP 401): bad or missing registry credentials."""

    status = 401


class RegistryError(NanovisorError):
    """An error answer from a registry that no more specific type covers (moby's errdefs.Unknown)."""

    status = 500

    def __init__(self, message: str, code: str = "", http_status: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status


class VerificationError(InvalidParameter):
    """Content that does not match its digest or size: the registry (or the path to it) lied."""


def parse_error_body(status: int, body: bytes) -> tuple[str, str]:
    """(code, "code words: message") from a registry error body; falls back to the HTTP status."""
    try:
        errs = json.loads(body or b"{}").get("errors") or []
    except (ValueError, AttributeError):
        errs = []
    if errs and isinstance(errs[0], dict):
        code = str(errs[0].get("code") or "UNKNOWN")
        msg = str(errs[0].get("message") or "")
        return code, f"{code.lower().replace('_', ' ')}: {msg}" if msg else code.lower().replace("_", " ")
    from http import HTTPStatus

    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "unknown"
    code = {401: "UNAUTHORIZED", 403: "DENIED", 404: "NOT_FOUND"}.get(status, "UNKNOWN")
    return code, f"received unexpected HTTP status: {status} {phrase}"


def from_response(status: int, body: bytes) -> RegistryError:
    code, text = parse_error_body(status, body)
    return RegistryError(text, code, status)


def pull_error(err: RegistryError, familiar_name: str, familiar_ref: str) -> NanovisorError:
    """moby's translatePullError: "not found"-like answers become NotFound with its wording."""
    if err.code == "DENIED" or (err.code == "UNAUTHORIZED" and err.http_status == 403):
        return NotFound(f"pull access denied for {familiar_name}, repository does not exist or may require "
                        f"'docker login': {err}")
    if err.code == "MANIFEST_UNKNOWN" or (err.code == "NOT_FOUND" and err.http_status == 404):
        return NotFound(f"manifest for {familiar_ref} not found: {err}")
    if err.code == "NAME_UNKNOWN":
        return NotFound(f"repository {familiar_name} not found: {err}")
    if err.code == "UNAUTHORIZED":
        return Unauthorized(str(err))
    return err
