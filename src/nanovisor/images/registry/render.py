"""The CLI side of progress: what `docker pull/push` print. On a terminal one line per layer, rewritten in
place as its status and bar change (the docker CLI's jsonmessage display); otherwise only the lines without a
byte counter, so logs stay readable."""

from __future__ import annotations

import sys
from typing import TextIO


class Renderer:
    def __init__(self, out: TextIO | None = None, tty: bool | None = None) -> None:
        self.out = out or sys.stdout
        self.tty = self.out.isatty() if tty is None else tty
        self.lines: dict[str, int] = {}     # layer id -> its line in the current block of layer lines
        self.count = 0

    def __call__(self, msg: dict) -> None:
        if "error" in msg or "errorDetail" in msg:
            return  # the caller reports errors as the command's error
        if "aux" in msg and "status" not in msg:
            return
        status = msg.get("status", "")
        bar = msg.get("progress", "")
        lid = msg.get("id")
        if not self.tty:
            if bar:
                return
            self.out.write(f"{lid}: {status}\n" if lid else f"{status}\n")
            self.out.flush()
            return
        text = f"{lid}: {status}" + (f" {bar}" if bar else "") if lid else status
        if lid and (bar or msg.get("progressDetail") is not None):
            if lid not in self.lines:
                self.lines[lid] = self.count
                self.count += 1
                self.out.write(text + "\n")
            else:
                up = self.count - self.lines[lid]
                self.out.write(f"\x1b[{up}A\r\x1b[2K{text}\x1b[{up}B\r")
        else:  # a line without progress ends the block of layer lines, as docker's display does
            self.out.write(text + "\n")
            self.lines.clear()
            self.count = 0
        self.out.flush()
