"""Fetching blobs: small ones (configs, manifests) into memory, layers into a partial file in the store's tmp
dir that survives a failure, so the retry (or the next pull) asks only for the missing bytes (HTTP Range).

Every byte is hashed as it arrives; a blob is usable only once its size and digest match the descriptor.
A registry that sends more than announced is cut off at once; one that sends different bytes is caught at
the end and its partial file deleted (resuming it would only repeat the lie)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from nanovisor.errors import NanovisorError
from nanovisor.images.registry.errors import RegistryError, VerificationError
from nanovisor.images.registry.manifest import Descriptor
from nanovisor.images.registry.transport import BLOCK, RegistryClient, TransportError

_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class Cancelled(NanovisorError):
    status = 499

    def __init__(self) -> None:
        super().__init__("context canceled")


def fetch_small(client: RegistryClient, repo: str, desc: Descriptor, what: str, limit: int = 8 << 20) -> bytes:
    """A config blob, verified ("image config verification failed for digest X" as moby says)."""
    if desc.size > limit:
        raise VerificationError(f"{what} {desc.digest} is too large ({desc.size} bytes)")
    resp = client.request("GET", f"/v2/{repo}/blobs/{desc.digest}")
    if resp.status != 200:
        raise resp.error()
    data = resp.body(desc.size)
    if len(data) != desc.size or "sha256:" + hashlib.sha256(data).hexdigest() != desc.digest:
        raise VerificationError(f"{what} verification failed for digest {desc.digest}")
    return data


@dataclass
class Partial:
    """A locked partial download; `file` is positioned nowhere in particular."""

    path: Path
    file: BinaryIO

    def release(self) -> None:
        try:
            fcntl.flock(self.file.fileno(), fcntl.LOCK_UN)
        finally:
            self.file.close()


def open_partial(tmp_dir: Path, digest: str) -> Partial:
    """Opens (creating) tmp/<hex>.partial with an exclusive lock: two pulls of one blob (the embedded CLI
    and the daemon) take turns; the second finds the first one's work done or resumes it."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    path = tmp_dir / f"pull-{digest.removeprefix('sha256:')}.partial"
    while True:
        f = os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT, 0o600), "r+b")
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            same = os.fstat(f.fileno()).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return Partial(path, f)
        f.close()  # the holder before us finished and renamed it away: start over on the new file


def fetch_layer(client: RegistryClient, repo: str, desc: Descriptor, part: Partial,
                on_bytes: Callable[[int, int], None], on_retry: Callable[[int, int], None] | None = None,
                retries: int = 5, cancel: threading.Event | None = None, retry_delay: float = 1.0) -> None:
    """Completes the partial file of desc and verifies it; connection failures resume with a Range request
    (moby retries 5 times). Raises VerificationError for a lying registry, after deleting the partial."""
    st = _State(part.file)
    for chunk in iter(lambda: part.file.read(BLOCK), b""):
        if st.have + len(chunk) > desc.size:
            break
        st.h.update(chunk)
        st.have += len(chunk)
    part.file.truncate(st.have)
    attempt = 0
    while True:
        try:
            _transfer(client, repo, desc, st, on_bytes, cancel)
            break
        except VerificationError:
            _discard(part)
            raise
        except TransportError:
            attempt += 1
            if attempt > retries:
                raise
            delay = retry_delay * attempt
            if on_retry is not None:
                on_retry(attempt, int(delay))
            if cancel is not None and cancel.wait(delay):
                raise Cancelled() from None
            if cancel is None:
                time.sleep(delay)
    if st.have != desc.size or "sha256:" + st.h.hexdigest() != desc.digest:
        _discard(part)
        raise VerificationError(f"filesystem layer verification failed for digest {desc.digest}")
    part.file.flush()
    os.fsync(part.file.fileno())


class _State:
    """The verified prefix held in the partial file: its length and running hash, kept across attempts."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.have = 0
        self.h = hashlib.sha256()
        f.seek(0)

    def restart(self) -> None:
        self.f.truncate(0)
        self.have = 0
        self.h = hashlib.sha256()

    def add(self, chunk: bytes) -> None:
        self.f.write(chunk)
        self.h.update(chunk)
        self.have += len(chunk)


def _transfer(client: RegistryClient, repo: str, desc: Descriptor, st: _State,
              on_bytes: Callable[[int, int], None], cancel: threading.Event | None) -> None:
    """One GET (ranged when we hold a prefix), appending to the partial file."""
    if st.have == desc.size:
        return
    headers = {"Range": f"bytes={st.have}-"} if st.have else {}
    resp = client.request("GET", f"/v2/{repo}/blobs/{desc.digest}", headers)
    if resp.status == 416 and st.have:  # the server thinks our prefix is wrong: start again
        resp.close()
        st.restart()
        return _transfer(client, repo, desc, st, on_bytes, cancel)
    if resp.status == 206:
        m = _RANGE.match(resp.header("Content-Range"))
        if not m or int(m.group(1)) != st.have:
            resp.close()
            raise TransportError(f"registry answered a range we did not ask for: {resp.header('Content-Range')}")
    elif resp.status == 200:
        st.restart()  # the whole blob is coming (Range ignored)
    else:
        if resp.status >= 500:
            err = resp.error()
            raise TransportError(str(err), err.code, err.http_status)
        raise resp.error()
    length = resp.header("Content-Length")
    if length.isdigit() and st.have + int(length) != desc.size:
        resp.close()
        _lie(desc, st.have + int(length))
    st.f.seek(st.have)
    while True:
        if cancel is not None and cancel.is_set():
            resp.close()
            raise Cancelled()
        try:
            chunk = resp.read(BLOCK)
        except TransportError:
            st.f.flush()
            raise
        if not chunk:
            break
        if st.have + len(chunk) > desc.size:
            resp.close()
            _lie(desc, None)
        st.add(chunk)
        on_bytes(st.have, desc.size)
    resp.close()
    if st.have < desc.size:
        st.f.flush()
        raise TransportError(f'Get "{resp.url}": unexpected EOF')


def _discard(part: Partial) -> None:
    part.file.truncate(0)
    part.path.unlink(missing_ok=True)


def _lie(desc: Descriptor, announced: int | None) -> None:
    got = f"{announced} bytes" if announced is not None else "more bytes"
    raise VerificationError(f"filesystem layer verification failed for digest {desc.digest}: "
                            f"the registry sent {got}, the manifest says {desc.size}")


def is_fatal(err: BaseException) -> bool:
    return isinstance(err, (VerificationError, RegistryError)) and not isinstance(err, TransportError)
