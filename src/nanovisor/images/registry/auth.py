"""The WWW-Authenticate challenge flow of the distribution spec: a registry answers 401 with `Basic realm=..`
or `Bearer realm=..,service=..,scope=..`; for Basic we send the credentials, for Bearer we trade them (or
nothing, for anonymous pulls) at the realm for a token covering the scopes we need."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from urllib.parse import urlencode

from nanovisor.images.registry.credentials import AuthConfig
from nanovisor.images.registry.errors import Unauthorized, parse_error_body

CLIENT_ID = "docker"
_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


@dataclass
class Challenge:
    scheme: str                                  # "basic" or "bearer"
    params: dict[str, str] = field(default_factory=dict)


def parse_challenges(headers: list[str]) -> list[Challenge]:
    out = []
    for value in headers:
        scheme, _, rest = value.strip().partition(" ")
        params = {}
        pos = 0
        while pos < len(rest):
            m = _PARAM.match(rest, pos)
            if not m or m.end() == pos:
                break
            params[m.group(1).lower()] = (m.group(2).replace('\\"', '"') if m.group(2) is not None
                                          else m.group(3))
            pos = m.end()
        out.append(Challenge(scheme.lower(), params))
    return out


def basic_header(auth: AuthConfig) -> str:
    return "Basic " + base64.b64encode(f"{auth.username}:{auth.password}".encode()).decode()


def token_request(challenge: Challenge, scopes: list[str], auth: AuthConfig | None,
                  offline: bool = False) -> tuple[str, str, dict[str, str], bytes | None]:
    """(method, url, headers, body) fetching a bearer token: a POST with the refresh token when we have one
    (OAuth2 as Docker does), else a GET with Basic credentials, or anonymous."""
    realm = challenge.params.get("realm", "")
    if not realm.startswith(("http://", "https://")):
        raise Unauthorized(f"invalid bearer challenge: realm {realm!r}")
    service = challenge.params.get("service", "")
    if auth is not None and auth.identitytoken:
        form = {"grant_type": "refresh_token", "refresh_token": auth.identitytoken, "client_id": CLIENT_ID,
                "scope": " ".join(scopes)}
        if service:
            form["service"] = service
        return ("POST", realm, {"Content-Type": "application/x-www-form-urlencoded"},
                urlencode(form).encode())
    query: list[tuple[str, str]] = []
    if service:
        query.append(("service", service))
    query += [("scope", s) for s in scopes]
    headers: dict[str, str] = {}
    if auth is not None and auth.username:
        query.append(("account", auth.username))
        headers["Authorization"] = basic_header(auth)
    if offline:
        query += [("offline_token", "true"), ("client_id", CLIENT_ID)]
    sep = "&" if "?" in realm else "?"
    return "GET", realm + (sep + urlencode(query) if query else ""), headers, None


def parse_token(status: int, body: bytes) -> str:
    if status != 200:
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        detail = (doc.get("details") or doc.get("error_description") or "") if isinstance(doc, dict) else ""
        if isinstance(doc, dict) and doc.get("errors"):
            text = parse_error_body(status, body)[1]
        elif detail:
            text = f"unauthorized: {detail}"
        else:
            text = parse_error_body(status, body)[1]
        if status in (401, 403):
            raise Unauthorized(text)
        raise Unauthorized(f"token server answered {status}: {text}")
    try:
        data = json.loads(body)
    except ValueError:
        raise Unauthorized("token server answered something that is not JSON") from None
    token = data.get("token") or data.get("access_token") if isinstance(data, dict) else None
    if not token:
        raise Unauthorized("token server answered without a token")
    return str(token)
