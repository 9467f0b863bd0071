"""A container's HostConfig.LogConfig: checked at create with dockerd's rules and wording, and turned into
where and how its log is written (runtime/logfiles.py writes and reads it)."""

from __future__ import annotations

from pathlib import Path

from nanovisor.errors import InvalidParameter
from nanovisor.runtime.logfiles import LogSpec

DEFAULT_DRIVER = "json-file"
DRIVERS = ("json-file", "local", "none", "k8s-file")  # k8s-file: podman's name, conmon's own format
# options every driver takes (moby's builtInLogOpts), then each driver's own (its ValidateLogOpt)
_BUILTIN_OPTS = {"mode", "max-buffer-size"}
_DRIVER_OPTS = {
    "json-file": {"max-file", "max-size", "compress", "labels", "labels-regex", "env", "env-regex", "tag"},
    "local": {"max-file", "max-size", "compress"},
    "k8s-file": {"max-size"},
}
_LOCAL_DEFAULTS = {"max-size": "20m", "max-file": "5", "compress": "true"}


def validate(log_config: dict | None, daemon: dict | None = None) -> dict:
    """The LogConfig to store: the daemon's driver filled in, and its options under the container's own when
    both name the same driver (moby's mergeAndVerifyLogConfig); an unknown driver or option refused as dockerd
    refuses it."""
    log = dict(log_config or {})
    daemon = daemon or {"Type": DEFAULT_DRIVER, "Config": {}}
    driver = log.get("Type") or daemon["Type"]
    config = dict(log.get("Config") or {})
    if driver == daemon["Type"]:
        config = {**daemon.get("Config", {}), **config}
    opts = {str(k): str(v) for k, v in config.items()}
    if driver != "none":
        mode = opts.get("mode", "")
        if mode not in ("", "blocking", "non-blocking"):
            raise InvalidParameter(f"logger: logging mode not supported: {mode}")
        if "max-buffer-size" in opts and mode != "non-blocking":
            raise InvalidParameter("logger: max-buffer-size option is only supported with 'mode=non-blocking'")
        if driver not in DRIVERS:
            raise InvalidParameter(f"logger: no log driver named '{driver}' is registered")
        for key in opts:
            if key not in _BUILTIN_OPTS and key not in _DRIVER_OPTS[driver]:
                where = "json-file log driver" if driver == "json-file" else f"log driver {driver}"
                raise InvalidParameter(f"unknown log opt '{key}' for {where}")
        _rotation(driver, opts)  # refuses bad sizes and counts now, not at the start
    return {"Type": driver, "Config": config}


def _rotation(driver: str, opts: dict[str, str]) -> tuple[int, int, bool]:
    """(max size in bytes or -1, max files, compress) with the checks of dockerd's drivers."""
    from nanovisor.units import parse_size

    if driver == "local":
        opts = {**_LOCAL_DEFAULTS, **opts}
    max_size = -1
    if opts.get("max-size"):
        try:
            max_size = parse_size(opts["max-size"])
        except (ValueError, InvalidParameter):
            raise InvalidParameter(f"invalid size: '{opts['max-size']}'") from None
        if max_size <= 0:
            raise InvalidParameter("max-size must be a positive number")
    max_file = 1
    if opts.get("max-file"):
        try:
            max_file = int(opts["max-file"])
        except ValueError:
            raise InvalidParameter(f'strconv.Atoi: parsing "{opts["max-file"]}": invalid syntax') from None
        if max_file < 1:
            raise InvalidParameter("max-file cannot be less than 1")
    compress = False
    if "compress" in opts:
        value = opts["compress"].lower()
        if value not in ("1", "t", "true", "0", "f", "false"):
            raise InvalidParameter(f'strconv.ParseBool: parsing "{opts["compress"]}": invalid syntax')
        compress = value in ("1", "t", "true")
        if compress and (max_file < 2 or max_size < 0):
            raise InvalidParameter("compress cannot be true when max-file is less than 2 or max-size is not set")
    return max_size, max_file, compress


def driver_of(host_config: dict) -> str:
    """The container's log driver (a record from before LogConfig was filled in has the default)."""
    return (host_config.get("LogConfig") or {}).get("Type") or DEFAULT_DRIVER


def spec(host_config: dict, container_dir: Path, cid: str) -> LogSpec:
    driver = driver_of(host_config)
    path = log_path(driver, container_dir, cid)
    if path is None:
        return LogSpec(driver, None)
    opts = {str(k): str(v) for k, v in ((host_config.get("LogConfig") or {}).get("Config") or {}).items()}
    max_size, max_file, compress = _rotation(driver, opts)
    return LogSpec(driver, path, max_size, max_file, compress)


def log_path(driver: str, container_dir: Path, cid: str) -> Path | None:
    """Where dockerd keeps each driver's file (inspect's LogPath shows the json-file one)."""
    if driver == "json-file":
        return container_dir / f"{cid}-json.log"
    if driver == "local":
        return container_dir / "local-logs" / "container.log"
    if driver == "k8s-file":
        return container_dir / "ctr.log"
    return None
