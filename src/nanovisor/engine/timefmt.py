"""Docker's time formats: RFC3339Nano for inspect, and the many forms `--since/--until` accept."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from nanovisor.errors import InvalidParameter

ZERO_TIME = "0001-01-01T00:00:00Z"


def rfc3339(ts: float | None) -> str:
    if not ts:
        return ZERO_TIME
    whole = int(ts)
    nanos = int(round((ts - whole) * 1e9))
    if nanos >= 1_000_000_000:
        whole, nanos = whole + 1, nanos - 1_000_000_000
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{base}.{nanos:09d}Z"


def rfc3339_ns(ns: int) -> str:
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000))
    return f"{base}.{ns % 1_000_000_000:09d}Z"


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch; accepts nanosecond fractions and offsets."""
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?$", text.strip())
    if not m:
        raise InvalidParameter(f"invalid timestamp: {text}")
    base = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")
    tz = m.group(3) or "Z"
    offset = 0 if tz == "Z" else (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60) * (1 if tz[0] == "+" else -1)
    secs = base.replace(tzinfo=UTC).timestamp() - offset
    return secs + (float("0." + m.group(2)) if m.group(2) else 0.0)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def parse_time_filter(text: str, now: float | None = None) -> float:
    """`--since 10m`, `--since 2024-01-01T00:00:00Z`, `--since 1700000000.5`, as docker accepts them."""
    text = text.strip()
    if not text:
        return 0.0
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = _DURATION.findall(text)
    if parts and "".join(n + u for n, u in parts) == text:
        return (now or time.time()) - sum(float(n) * _UNITS[u] for n, u in parts)
    if re.fullmatch(r"\d{4}-\d\d-\d\d", text):
        text += "T00:00:00Z"
    return parse_rfc3339(text)
