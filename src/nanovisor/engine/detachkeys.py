"""Detach key sequences ("ctrl-p,ctrl-q"): parsed where a client names them (attach, exec create, run), so a bad
one is refused before anything starts."""

from __future__ import annotations

from nanovisor import errors

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"


def parse_detach_keys(spec: str | None) -> bytes:
    """moby's term.ToBytes: "ctrl-p,ctrl-q" -> b"\\x10\\x11"; single characters stand for themselves."""
    spec = spec or DEFAULT_DETACH_KEYS
    out = bytearray()
    for key in spec.split(","):
        k = key.strip().lower()
        if len(k) == 1:
            out.append(ord(key.strip()))
        elif k.startswith("ctrl-") and len(k) == 6 and (k[5].isalpha() or k[5] in "@[\\]^_"):
            ch = k[5]
            out.append(ord(ch) - ord("a") + 1 if ch.isalpha() else ord(ch) - 64)
        else:
            raise errors.InvalidParameter(f"Invalid escape keys ({key}) provided")
    return bytes(out)
