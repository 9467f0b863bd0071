"""Human sizes as Docker parses them (`--memory 512m`, `--log-opt max-size=10k`, `--shm-size 1g`)."""

from __future__ import annotations

import re

from nanovisor.errors import InvalidParameter

_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}


def parse_size(text: str | int) -> int:
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtpb]?)(?:i?b)?\s*", str(text).lower())
    if not m:
        raise InvalidParameter(f"invalid size: '{text}'")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def human_size(n: float, digits: int = 3) -> str:
    """go-units HumanSize (decimal units): 1.23MB as the CLI tables print it; progress bars use 4 digits."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000.0
        i += 1
    return f"{n:.{digits}g}{units[i]}"


_GO_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                   "m": 60_000_000_000, "h": 3_600_000_000_000}


def parse_duration(text: str, flag: str) -> int:
    """A Go duration ("1m30s") in nanoseconds."""
    if text in ("0", ""):
        return 0
    pos, total = 0, 0.0
    for m in _GO_DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or pos == 0:
        raise InvalidParameter(f'time: invalid duration "{text}"')
    value = int(total)
    if 0 < value < 1_000_000:
        raise InvalidParameter(f"Interval \"{flag}\" cannot be less than 1ms")
    return value
