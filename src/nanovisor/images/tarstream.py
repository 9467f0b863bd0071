"""A strict, streaming tar reader: one pass over (possibly compressed) bytes, hashing the uncompressed
stream as it goes (diff_id) and recording every non-data byte so the exact tar can be rebuilt later from the
unpacked files (see tarsplit.py). Only what layers use is accepted; anything odd is refused with a reason,
because a parser that guesses is a parser an attacker can steer."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import queue
import struct
import subprocess
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from nanovisor.errors import InvalidParameter

BLOCK = 512
MAX_META = 1 << 20           # PAX / GNU long-name records larger than this are absurd
MAX_SIZE = 1 << 44           # 16 TiB: a member size beyond this is a corrupt or hostile header
CHUNK = 1 << 20

REG, HARD, SYM, CHR, BLK, DIR, FIFO = "0", "1", "2", "3", "4", "5", "6"
_MEMBER_TYPES = {"0", "\0", "7", "1", "2", "3", "4", "5", "6"}
_META_TYPES = {"x", "g", "L", "K"}
_ZERO_BLOCK = bytes(BLOCK)
# ustar header fields: name mode uid gid size mtime chksum typeflag linkname magic version uname gname
# devmajor devminor prefix (GNU tar keeps atime/ctime where ustar has the prefix: only read it for ustar)
_HEADER = struct.Struct("100s8s8s8s12s12s8sc100s6s2s32s32s8s8s155s12x")


class TarError(InvalidParameter):
    """A tar stream we refuse; the message says why."""


@dataclass(slots=True)
class Member:
    name: str                  # normalized relative path, "" for the root itself
    raw_name: str              # as written in the archive
    type: str                  # one of REG, HARD, SYM, CHR, BLK, DIR, FIFO
    mode: int
    uid: int
    gid: int
    size: int
    mtime: float
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)


def normalize(name: str, what: str = "path") -> str:
    """Relative, clean form of a member path; refuses any ".." (even a harmless one: layers never need it
    and refusing keeps the rule simple and unambiguous)."""
    if "\0" in name:
        raise TarError(f"invalid tar header: NUL byte in {what} {name!r}")
    parts = []
    for p in name.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            raise TarError(f"invalid tar header: {what} {name!r} escapes the root directory")
        parts.append(p)
    return "/".join(parts)


def _num(field_: bytes, what: str) -> int:
    try:
        v = int(field_.rstrip(b"\0"), 8)  # the usual zero-padded octal: one C call
    except ValueError:
        v = _num_slow(field_, what)
    if v < 0:
        raise TarError(f"invalid tar header: negative {what}")
    return v


def _num_slow(field_: bytes, what: str) -> int:
    if field_ and field_[0] & 0x80:
        if field_[0] == 0xFF:
            raise TarError(f"invalid tar header: negative {what}")
        v = field_[0] & 0x7F
        for b in field_[1:]:
            v = (v << 8) | b
        return v
    s = field_.split(b"\0", 1)[0].strip(b" \0")
    if not s:
        return 0
    try:
        return int(s, 8)
    except ValueError:
        raise TarError(f"invalid tar header: bad {what} field {s[:20]!r}") from None


def _str(field_: bytes) -> str:
    return field_.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _byte_sum(block: bytes) -> int:
    """sum(block) of a 512-byte block in C: Adler-32's low half is 1 + the byte sum modulo 65521, exact for
    256 bytes (at most 65280)."""
    return (zlib.adler32(block[:256]) & 0xFFFF) + (zlib.adler32(block[256:]) & 0xFFFF) - 2


def _checksum_ok(block: bytes) -> bool:
    want = _num(block[148:156], "checksum")
    unsigned = _byte_sum(block) - sum(block[148:156]) + 256
    if want == unsigned:
        return True
    signed = sum((b - 256 if b > 127 else b) for b in block[:148] + block[156:]) + 256
    return want == signed


def _parse_pax(data: bytes) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    pos = 0
    while pos < len(data):
        if data[pos] == 0:  # some writers pad with NULs
            break
        sp = data.find(b" ", pos)
        if sp < 0:
            raise TarError("invalid tar header: malformed PAX record")
        try:
            length = int(data[pos:sp])
        except ValueError:
            raise TarError("invalid tar header: malformed PAX record length") from None
        rec = data[sp + 1:pos + length]
        if length <= 0 or pos + length > len(data) or not rec.endswith(b"\n") or b"=" not in rec:
            raise TarError("invalid tar header: malformed PAX record")
        k, v = rec[:-1].split(b"=", 1)
        out[k.decode("utf-8", "surrogateescape")] = v
        pos += length
    return out


def _pax_num(pax: dict[str, bytes], key: str, default: int) -> int:
    if key not in pax:
        return default
    try:
        v = int(pax[key])
    except ValueError:
        raise TarError(f"invalid tar header: bad PAX {key}") from None
    if v < 0:
        raise TarError(f"invalid tar header: negative {key}")
    return v


class Source:
    """Buffered reader over the uncompressed stream that hashes everything (unless digest=False: then nothing
    is hashed and no thread is started) and optionally records the non-data bytes (the "skeleton") through
    `on_meta`."""

    def __init__(self, raw: BinaryIO, on_meta: Callable[[bytes], None] | None = None, digest: bool = True) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()
        self.size = 0
        self.on_meta = on_meta
        self._buf = b""
        self._view = memoryview(self._buf)
        self._pos = 0
        self._eof = False
        self._thread: threading.Thread | None = None
        if not digest:
            return
        # Reading, decompressing and hashing run in a helper thread (zlib and hashlib release the GIL), so
        # they overlap with the extraction syscalls of the consumer.
        self._q: queue.Queue = queue.Queue(maxsize=16)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="tar-read", daemon=True)
        self._thread.start()

    def _produce(self) -> None:
        try:
            while not self._stop.is_set():
                chunk = self.raw.read(CHUNK)
                if not chunk:
                    break
                self.hash.update(chunk)
                self.size += len(chunk)
                self._put(chunk)
            self._put(None)
        except BaseException as e:  # noqa: BLE001 - re-raised in the consumer
            self._put(e)

    def _put(self, item: object) -> None:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Stops the reader thread (after an error the rest of the stream is not read)."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()

    def _raw(self, n: int) -> bytes:
        """The next chunk (at most CHUNK bytes) of the uncompressed stream, b"" at its end."""
        if self._eof:
            return b""
        if self._thread is None:
            chunk = self.raw.read(CHUNK)
            self.size += len(chunk)
            self._eof = not chunk
            return chunk
        item = self._q.get()
        if item is None:
            self._eof = True
            self._thread.join()
            return b""
        if isinstance(item, BaseException):
            self._eof = True
            raise item
        return item

    def _set(self, chunk: bytes, pos: int) -> None:
        self._buf, self._view, self._pos = chunk, memoryview(chunk), pos

    def read(self, n: int, meta: bool) -> bytes:
        """Exactly n bytes (fewer only at EOF)."""
        pos = self._pos
        end = pos + n
        if end <= len(self._buf):
            out = self._buf[pos:end]
            self._pos = end
        else:
            out = self._read_across(n)
        if meta and self.on_meta is not None:
            self.on_meta(out)
        return out

    def _read_across(self, n: int) -> bytes:
        """read() of bytes that continue into the next chunks; only what is asked for is copied."""
        parts = [self._buf[self._pos:]]
        have = len(parts[0])
        self._set(b"", 0)
        while have < n:
            chunk = self._raw(CHUNK)
            if not chunk:
                break
            take = n - have
            if len(chunk) > take:
                parts.append(chunk[:take])
                self._set(chunk, take)
                break
            parts.append(chunk)
            have += len(chunk)
        return b"".join(parts)

    def read_some(self, n: int) -> bytes | memoryview:
        """Up to n data bytes, at least one unless at EOF, without copying (for streaming file contents)."""
        if self._pos >= len(self._buf):
            if n >= CHUNK:  # big file content: hand the chunk on as it is
                return self._raw(n)
            self._set(self._raw(CHUNK), 0)
        pos = self._pos
        out = self._view[pos:pos + n]
        self._pos = pos + len(out)
        return out

    def drain(self) -> None:
        """Hash (and record) everything after the end-of-archive marker: it is part of the diff_id."""
        while True:
            chunk = self.read(CHUNK, meta=True)
            if not chunk:
                return

    @property
    def digest(self) -> str:
        """Valid once the stream was read to its end."""
        if self._thread is None:
            raise RuntimeError("Source(digest=False) has no digest")
        self._thread.join()
        return "sha256:" + self.hash.hexdigest()


class DataReader:
    """The content of one member; must be consumed (or skipped) before the next header is read. `left` is
    how much of it is still unread."""

    def __init__(self, src: Source, size: int) -> None:
        self.src = src
        self.left = size
        self.pad = (-size) % BLOCK

    def chunks(self, n: int = CHUNK) -> Iterator[bytes | memoryview]:
        """The content in pieces: views into the stream's (immutable) buffers, not copies."""
        while self.left:
            chunk = self.src.read_some(min(n, self.left))
            if not chunk:
                raise TarError("unexpected EOF in tar archive")
            self.left -= len(chunk)
            yield chunk

    def read(self, n: int = -1) -> bytes:
        """File-like access (to hand a member of an outer archive on as a stream)."""
        if n < 0:
            return b"".join(self.chunks())
        if not self.left or n == 0:
            return b""
        chunk = self.src.read_some(min(n, self.left))
        if not chunk:
            raise TarError("unexpected EOF in tar archive")
        self.left -= len(chunk)
        return bytes(chunk)

    def finish(self) -> None:
        for _ in self.chunks():
            pass
        if self.pad:
            got = len(self.src.read(self.pad, meta=True))
            if got not in (0, self.pad):  # none at all is the end, as in Go (the docker CLI's `-f ../X`
                raise TarError("unexpected EOF in tar archive")  # context ends right after the data)
            self.pad = 0


def members(src: Source) -> Iterator[tuple[Member, DataReader]]:
    """Yields each member with its data reader; the caller must read or finish() the data before asking for
    the next member (this generator finishes it if the caller did not)."""
    global_pax: dict[str, bytes] = {}
    pending_pax: dict[str, bytes] = {}
    long_name: str | None = None
    long_link: str | None = None
    meta_left = MAX_META     # extended-header bytes allowed before the member they describe
    global_left = MAX_META   # global PAX bytes allowed in the whole stream
    read = src.read
    while True:
        block = read(BLOCK, True)
        if len(block) < BLOCK:
            if not block and not pending_pax and long_name is None:
                return  # EOF without end marker: accepted, as Go's archive/tar does
            raise TarError("unexpected EOF in tar archive")
        if block == _ZERO_BLOCK:
            src.drain()
            return
        if not _checksum_ok(block):
            raise TarError("invalid tar header: checksum mismatch")
        (name_f, mode_f, uid_f, gid_f, size_f, mtime_f, _chk, tflag_b, link_f, magic, _version, _uname, _gname,
         major_f, minor_f, prefix_f) = _HEADER.unpack(block)
        tflag = chr(tflag_b[0])
        size = _num(size_f, "size")
        if size > MAX_SIZE:
            raise TarError("invalid tar header: absurd size")
        if tflag in _META_TYPES:
            if tflag == "g":
                global_left -= size
            else:
                meta_left -= size
            if size > MAX_META or meta_left < 0 or global_left < 0:
                raise TarError("invalid tar header: oversized extended header")
            data = read(size + (-size) % BLOCK, True)
            if len(data) < size:
                raise TarError("unexpected EOF in tar archive")
            data = data[:size]
            if tflag == "x":
                pending_pax.update(_parse_pax(data))
            elif tflag == "g":
                global_pax.update(_parse_pax(data))
            elif tflag == "L":
                long_name = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            else:
                long_link = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            continue
        if tflag not in _MEMBER_TYPES:
            raise TarError(f"invalid tar header: unsupported entry type {tflag!r}")
        meta_left = MAX_META
        name = _str(name_f)
        if magic == b"ustar\0" and prefix_f[0]:
            name = _str(prefix_f) + "/" + name
        if long_name is not None:
            name, long_name = long_name, None
        linkname = _str(link_f) if link_f[0] else ""
        if long_link is not None:
            linkname, long_link = long_link, None
        mtime: float = _num(mtime_f, "mtime")
        uid = _num(uid_f, "uid")
        gid = _num(gid_f, "gid")
        xattrs: dict[str, bytes] = {}
        if global_pax or pending_pax:
            pax = {**global_pax, **pending_pax}
            pending_pax = {}
            if "path" in pax:
                name = pax["path"].decode("utf-8", "surrogateescape")
            if "linkpath" in pax:
                linkname = pax["linkpath"].decode("utf-8", "surrogateescape")
            if any(k.startswith("GNU.sparse") for k in pax):
                raise TarError("invalid tar header: sparse files are not supported")
            size = _pax_num(pax, "size", size)
            if size > MAX_SIZE:
                raise TarError("invalid tar header: absurd size")
            if "mtime" in pax:
                try:
                    mtime = float(pax["mtime"])
                except ValueError:
                    raise TarError("invalid tar header: bad PAX mtime") from None
            uid = _pax_num(pax, "uid", uid)
            gid = _pax_num(pax, "gid", gid)
            xattrs = {k[len("SCHILY.xattr."):]: v for k, v in pax.items() if k.startswith("SCHILY.xattr.")}
        t = REG if tflag in ("\0", "7") else tflag
        data_size = size if t == REG else 0  # header-only types carry no data, as in Go's archive/tar
        dev = t == CHR or t == BLK
        m = Member(normalize(name), name, t, _num(mode_f, "mode") & 0o7777, uid, gid, data_size, mtime, linkname,
                   _num(major_f, "devmajor") if dev else 0, _num(minor_f, "devminor") if dev else 0, xattrs)
        if not -(1 << 40) < mtime < (1 << 40):
            raise TarError(f"invalid tar header: absurd mtime for {name!r}")
        if uid > 0xFFFFFFFE or gid > 0xFFFFFFFE or m.devmajor > 0xFFFFFFF or m.devminor > 0xFFFFFFF:
            raise TarError(f"invalid tar header: absurd owner or device numbers for {name!r}")
        if t == SYM:
            if not linkname:
                raise TarError(f"invalid tar header: symlink {name!r} without target")
            if "\0" in linkname:
                raise TarError("invalid tar header: NUL byte in link target")
        reader = DataReader(src, data_size)
        yield m, reader
        if reader.left or reader.pad:
            reader.finish()


# -- decompression -------------------------------------------------------------------------------


def buffered_reader(stream: BinaryIO) -> BinaryIO:
    """A raw stream (a request body returns one network chunk per read, and RawIOBase.read(n) allocates n
    bytes each time) behind a buffer that fills whole CHUNK reads straight into their result; other
    streams as they are. Hand the result to release() when done."""
    if isinstance(stream, io.RawIOBase):
        return io.BufferedReader(stream, CHUNK)  # type: ignore[return-value]
    return stream


def release(buffered: BinaryIO, stream: BinaryIO) -> None:
    """Lets go of buffered_reader()'s wrapper without closing the caller's stream."""
    if buffered is not stream:
        buffered.detach()  # type: ignore[attr-defined]


class _Peek:
    """Lets us look at the magic bytes of a non-seekable stream and still hand it on whole."""

    def __init__(self, raw: BinaryIO, head: bytes) -> None:
        self.raw, self.head = raw, head

    def read(self, n: int = -1) -> bytes:
        if self.head:
            if n < 0:
                out, self.head = self.head + self.raw.read(), b""
                return out
            out, self.head = self.head[:n], self.head[n:]
            if len(out) < n:
                out += self.raw.read(n - len(out))
            return out
        return self.raw.read(n)

    def readinto(self, b) -> int:  # used by gzip/bz2 readers
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)


class _ZstdReader:
    """zstd through the zstd CLI (no Python binding needed); a thread feeds it our stream."""

    def __init__(self, raw: BinaryIO) -> None:
        self.proc = subprocess.Popen(["zstd", "-dcq"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._feed, args=(raw,), daemon=True)
        self.thread.start()

    def _feed(self, raw: BinaryIO) -> None:
        try:
            while chunk := raw.read(CHUNK):
                self.proc.stdin.write(chunk)
        except BaseException as e:  # noqa: BLE001 - surfaced by read()
            self.error = e
        finally:
            try:
                self.proc.stdin.close()
            except OSError:
                pass

    def read(self, n: int = -1) -> bytes:
        data = self.proc.stdout.read(n)
        if not data:
            self.thread.join()
            rc = self.proc.wait()
            if self.error is not None and not isinstance(self.error, BrokenPipeError):
                raise self.error
            if rc != 0:
                raise TarError("invalid zstd stream: " + self.proc.stderr.read().decode(errors="replace").strip())
        return data

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.thread.join(timeout=5)
        for f in (self.proc.stdout, self.proc.stderr):
            f.close()


def decompressed(raw: BinaryIO) -> tuple[BinaryIO, str]:
    """(uncompressed stream, compression name) by sniffing magic bytes, as Docker's DecompressStream."""
    head = raw.read(6)
    while len(head) < 6:
        more = raw.read(6 - len(head))
        if not more:
            break
        head += more
    peek = _Peek(raw, head)
    if head.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=peek, mode="rb"), "gzip"  # type: ignore[arg-type]
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return _ZstdReader(peek), "zstd"  # type: ignore[arg-type]
    if head.startswith(b"BZh"):
        return bz2.BZ2File(peek), "bzip2"  # type: ignore[arg-type]
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(peek), "xz"  # type: ignore[arg-type]
    return peek, "none"  # type: ignore[return-value]
