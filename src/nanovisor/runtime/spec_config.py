"""moby's rules for a container's stored Config: an image's config completed by a create request.

Kept apart from the OCI spec builder because the engine calls it at create time (for inspect and for the
"no command specified" check), long before a spec is built at start.
"""

from __future__ import annotations

import copy

from nanovisor.errors import InvalidParameter


def _strslice(value) -> list[str] | None:
    """Docker's StrSlice: a JSON string means a one-element list; null stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _env_key(entry: str) -> str:
    return entry.split("=", 1)[0]


def replace_or_append_env(defaults: list[str], overrides: list[str]) -> list[str]:
    """moby's ReplaceOrAppendEnvValues: KEY=V replaces or appends, a bare KEY removes."""
    out = list(defaults)
    index = {_env_key(e): i for i, e in enumerate(out)}
    for value in overrides or []:
        if "=" not in value:
            if value in index:
                out[index[value]] = None
            continue
        key = _env_key(value)
        if key in index and out[index[key]] is not None:
            out[index[key]] = value
        else:
            index[key] = len(out)
            out.append(value)
    return [e for e in out if e is not None]


def _port_key(port: str) -> str:
    return port if "/" in port else f"{port}/tcp"


def _image_section(image_config: dict | None) -> dict:
    """Accept an image's config section, or a whole image config / inspect dict that holds one."""
    image_config = image_config or {}
    for key in ("config", "Config"):
        inner = image_config.get(key)
        if isinstance(inner, dict):
            return inner
    return image_config


def _merge_healthcheck(user: dict | None, image: dict | None) -> dict | None:
    if not image:
        return user
    if not user:
        return copy.deepcopy(image)
    merged = dict(user)
    for key in ("Test", "Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"):
        if not merged.get(key):
            if image.get(key):
                merged[key] = image[key]
    return merged


def merge_config(image_config: dict, create_body: dict) -> dict:
    """The container's stored Config (ContainerInspect.Config): the create body completed from the image.

    moby's rules: Env merged by key (the container's win), Labels merged (the container's win),
    ExposedPorts and Volumes united; Cmd comes from the image only when neither Cmd nor Entrypoint is
    given, an explicit Entrypoint drops the image's Cmd, and Entrypoint [""] clears the image's entrypoint.
    """
    image = _image_section(image_config)
    body = create_body or {}
    user_cmd = _strslice(body.get("Cmd"))
    user_ep = _strslice(body.get("Entrypoint"))

    env = list(body.get("Env") or [])
    if not env:
        env = list(image.get("Env") or [])
    else:
        keys = {_env_key(e) for e in env}
        env += [e for e in image.get("Env") or [] if _env_key(e) not in keys]

    labels = dict(image.get("Labels") or {})
    labels.update(body.get("Labels") or {})

    ports = {_port_key(p): {} for p in (body.get("ExposedPorts") or {})}
    for p in image.get("ExposedPorts") or {}:
        ports.setdefault(_port_key(p), {})

    volumes = dict(body.get("Volumes") or {})
    for v in image.get("Volumes") or {}:
        volumes[v] = {}

    cmd, entrypoint = user_cmd, user_ep
    if not user_ep:  # nil or empty: the image may fill in
        if not user_cmd:
            cmd = _strslice(image.get("Cmd"))
        if user_ep is None:
            entrypoint = _strslice(image.get("Entrypoint"))
    if entrypoint == [""]:
        entrypoint = None
    if not entrypoint and not cmd:
        raise InvalidParameter("no command specified")

    working_dir = body.get("WorkingDir") or image.get("WorkingDir") or ""
    if working_dir and not working_dir.startswith("/"):
        raise InvalidParameter(f"the working directory '{working_dir}' is invalid, it needs to be an absolute path")

    config: dict = {
        "Hostname": body.get("Hostname") or "",
        "Domainname": body.get("Domainname") or "",
        "User": body.get("User") or image.get("User") or "",
        "AttachStdin": bool(body.get("AttachStdin")),
        "AttachStdout": bool(body.get("AttachStdout")),
        "AttachStderr": bool(body.get("AttachStderr")),
    }
    if ports:
        config["ExposedPorts"] = ports
    config.update({
        "Tty": bool(body.get("Tty")),
        "OpenStdin": bool(body.get("OpenStdin")),
        "StdinOnce": bool(body.get("StdinOnce")),
        "Env": env,
        "Cmd": cmd,
    })
    health = _merge_healthcheck(body.get("Healthcheck"), image.get("Healthcheck"))
    if health:
        config["Healthcheck"] = health
    config.update({
        "Image": body.get("Image") or "",
        "Volumes": volumes or None,
        "WorkingDir": working_dir,
        "Entrypoint": entrypoint,
    })
    if body.get("NetworkDisabled"):
        config["NetworkDisabled"] = True
    if body.get("MacAddress"):
        config["MacAddress"] = body["MacAddress"]
    config["OnBuild"] = None
    config["Labels"] = labels
    stop_signal = body.get("StopSignal") or image.get("StopSignal")
    if stop_signal:
        config["StopSignal"] = stop_signal
    if body.get("StopTimeout") is not None:
        config["StopTimeout"] = int(body["StopTimeout"])
    if body.get("Shell"):
        config["Shell"] = list(body["Shell"])
    return config
