"""Logging, configured once per process: the CLI at start-up, `serve` again as a daemon. Library code only
calls logging.getLogger("nanovisor.<package>"); nothing else prints diagnostics."""

from __future__ import annotations

import logging
import sys

FORMAT = "nanovisor: %(levelname)s %(name)s: %(message)s"
DAEMON_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(debug: bool = False, daemon: bool = False) -> None:
    """The CLI shows warnings and errors (debug: everything); a daemon adds info and timestamps."""
    level = logging.DEBUG if debug else logging.INFO if daemon else logging.WARNING
    logging.basicConfig(level=logging.WARNING, format=DAEMON_FORMAT if daemon else FORMAT, stream=sys.stderr,
                        force=True)  # libraries (pyroute2, ...) warn only
    logging.getLogger("nanovisor").setLevel(level)
