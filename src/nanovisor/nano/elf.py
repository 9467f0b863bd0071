"""What an ELF file needs to load: its interpreter (PT_INTERP), its DT_NEEDED sonames and its
DT_RUNPATH/DT_RPATH. Only 64-bit little-endian (amd64) is read; anything else is "not ELF" to us."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
DT_NULL, DT_NEEDED, DT_STRTAB, DT_RPATH, DT_RUNPATH = 0, 1, 5, 15, 29


@dataclass
class ElfInfo:
    interp: str = ""
    needed: list[str] = field(default_factory=list)
    runpath: list[str] = field(default_factory=list)


def _cstr(data: bytes, off: int) -> str:
    end = data.find(b"\0", off)
    return data[off:end if end >= 0 else len(data)].decode(errors="replace")


def read_elf(path: str) -> ElfInfo | None:
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
                return None
            f.seek(0)
            data = f.read()
    except OSError:
        return None
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    info = ElfInfo()
    loads: list[tuple[int, int, int]] = []  # (vaddr, offset, filesz)
    dynamic: tuple[int, int] | None = None
    for i in range(phnum):
        off = phoff + i * phentsize
        if off + 56 > len(data):
            return info
        p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz = struct.unpack_from("<IIQQQQ", data, off)
        if p_type == PT_INTERP:
            info.interp = _cstr(data, p_offset)
        elif p_type == PT_LOAD:
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == PT_DYNAMIC:
            dynamic = (p_offset, p_filesz)
    if dynamic is None:
        return info
    entries: list[tuple[int, int]] = []
    for off in range(dynamic[0], min(dynamic[0] + dynamic[1], len(data) - 15), 16):
        tag, val = struct.unpack_from("<qQ", data, off)
        if tag == DT_NULL:
            break
        entries.append((tag, val))
    strtab_vaddr = next((v for t, v in entries if t == DT_STRTAB), None)
    strtab = next((o + strtab_vaddr - va for va, o, sz in loads
                   if strtab_vaddr is not None and va <= strtab_vaddr < va + sz), None)
    if strtab is None:
        return info
    for tag, val in entries:
        if tag == DT_NEEDED:
            info.needed.append(_cstr(data, strtab + val))
        elif tag in (DT_RPATH, DT_RUNPATH):
            info.runpath.extend(p for p in _cstr(data, strtab + val).split(":") if p)
    return info
