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
