"""Image references parsed and normalized the way Docker does (distribution/reference): "busybox" is
docker.io/library/busybox:latest, stored and shown in its familiar form "busybox:latest"."""

from __future__ import annotations

import re
from dataclasses import dataclass

from nanovisor.errors import InvalidParameter

DEFAULT_DOMAIN = "docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"

_ALNUM = r"[a-z0-9]+"
_SEP = r"(?:[._]|__|[-]+)"
_COMPONENT = rf"{_ALNUM}(?:{_SEP}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_PATH = rf"{_COMPONENT}(?:/{_COMPONENT})*"
_REFERENCE = re.compile(rf"^((?:{_DOMAIN}/)?{_PATH})(?::({_TAG}))?(?:@({_DIGEST}))?$")
_ANCHORED_DOMAIN = re.compile(rf"^{_DOMAIN}$")
_HEX64 = re.compile(r"^[a-f0-9]{64}$")
_TAG_ONLY = re.compile(rf"^{_TAG}$")
NAME_TOTAL_MAX = 255


def _bad(detail: str = "") -> InvalidParameter:
    return InvalidParameter("invalid reference format" + (": " + detail if detail else ""))


@dataclass(frozen=True)
class Reference:
    domain: str
    path: str               # "library/busybox", "nano/busybox"
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """Familiar repository name: "busybox", "nano/busybox", "localhost:5000/x/y"."""
        if self.domain == DEFAULT_DOMAIN:
            return self.path[len(OFFICIAL_PREFIX):] if self.path.startswith(OFFICIAL_PREFIX) else self.path
        return f"{self.domain}/{self.path}"

    @property
    def full_name(self) -> str:
        return f"{self.domain}/{self.path}"

    def familiar(self) -> str:
        """"name:tag", "name@digest" or "name:tag@digest"."""
        out = self.name
        if self.tag:
            out += ":" + self.tag
        if self.digest:
            out += "@" + self.digest
        return out

    def stored(self) -> str:
        """The key in image_refs: digest references win over tags (as Docker's reference store)."""
        if self.digest:
            return f"{self.name}@{self.digest}"
        return f"{self.name}:{self.tag or DEFAULT_TAG}"


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost" and first.lower() == first):
        domain, path = DEFAULT_DOMAIN, name
    else:
        domain, path = first, rest
    if domain == "index.docker.io":
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_PREFIX + path
    return domain, path


def parse(ref: str, default_tag: bool = True) -> Reference:
    """Parses a reference; adds the "latest" tag when it has neither tag nor digest (unless told not to).
    Raises InvalidParameter with Docker's "invalid reference format" wording."""
    if not ref:
        raise _bad()
    m = _REFERENCE.match(ref)
    if m is None:
        lowered = _REFERENCE.match(ref.lower())
        if lowered is not None:
            name = ref[:len(lowered.group(1))]
            raise _bad(f"repository name ({_split_domain(name)[1]}) must be lowercase")
        raise _bad()
    name, tag, digest = m.group(1), m.group(2), m.group(3)
    if len(name) > NAME_TOTAL_MAX:
        raise _bad("repository name must not be more than 255 characters")
    domain, path = _split_domain(name)
    if _HEX64.match(path.removeprefix(OFFICIAL_PREFIX)) and domain == DEFAULT_DOMAIN:
        raise InvalidParameter(f"invalid repository name ({path.removeprefix(OFFICIAL_PREFIX)}), "
                               "cannot specify 64-byte hexadecimal strings")
    if digest is not None and not digest.startswith("sha256:"):
        raise _bad()
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return Reference(domain=domain, path=path, tag=tag, digest=digest)


def normalize(ref: str) -> str:
    """The stored form of ref: "busybox" -> "busybox:latest", "docker.io/library/x@sha256:.." -> "x@sha256:.."."""
    return parse(ref).stored()


def with_tag(repo: str, tag: str | None) -> Reference:
    """repo + separate tag (POST /images/{name}/tag, import ?repo=&tag=) into one reference."""
    if not tag:
        return parse(repo)
    if not _TAG_ONLY.match(tag):
        raise _bad()
    base = parse(repo, default_tag=False)
    if base.tag or base.digest:
        raise _bad()
    return Reference(base.domain, base.path, tag, None)


def looks_like_reference(ref: str) -> bool:
    try:
        parse(ref)
        return True
    except InvalidParameter:
        return False


def is_domain(text: str) -> bool:
    return bool(_ANCHORED_DOMAIN.match(text))
