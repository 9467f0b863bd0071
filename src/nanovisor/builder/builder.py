"""The legacy (non-BuildKit) `docker build`: a Dockerfile, stage by stage, step by step, every step a child
image of the one before, each looked up in the layer cache first. Output is dockerd's JSON message stream
(what POST /build sends with DOCKER_BUILDKIT=0): "Step n/m : ...", " ---> id", "Using cache", the RUN
output, {"aux": {"ID": ...}} per stage, "Successfully built/tagged", or an errorDetail."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import queue
import threading
from collections.abc import Callable, Iterator
from typing import BinaryIO

from nanovisor.builder import instructions as ops
from nanovisor.builder.cache import BuildCache, step_key
from nanovisor.builder.commit import child_config, image_section
from nanovisor.builder.context import BuildContext, SourceRoot, find_sources, source_hash
from nanovisor.builder.dockerfile import Instruction, Stage, parse, parse_trigger
from nanovisor.builder.instructions import StageState
from nanovisor.builder.runstep import StepFailed, mounted, run_container, scratch_layer
from nanovisor.builder.shellwords import ShellLex
from nanovisor.errors import InvalidParameter, NanovisorError, NotFound
from nanovisor.store.parents import set_parent

Emit = Callable[[dict], None]
CONFIG_ONLY = {"ENV", "LABEL", "MAINTAINER", "EXPOSE", "VOLUME", "USER", "STOPSIGNAL", "CMD", "ENTRYPOINT",
               "SHELL", "HEALTHCHECK", "ONBUILD"}
BUILDKIT_ONLY = "the --{} option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ to learn how " \
                "to build images with BuildKit enabled"
EMPTY_BASE = {"architecture": "amd64", "config": {}, "history": [], "os": "linux",
              "rootfs": {"type": "layers", "diff_ids": []}}


def short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


class Cancelled(NanovisorError):
    pass


class Builder:
    def __init__(self, engine, ctx: BuildContext, *, build_args: dict[str, str | None], no_cache: bool,
                 pull: bool, network_mode: str, emit: Emit, cancel: threading.Event | None = None,
                 extra_hosts: list[str] | None = None, cache_from: list[str] | None = None) -> None:
        from nanovisor.builder.cachefrom import CacheSources

        self.engine = engine
        self.ctx = ctx
        self.build_args = dict(build_args)
        self.no_cache = no_cache
        self.pull = pull
        self.network_mode = network_mode
        self.extra_hosts = list(extra_hosts or [])
        self.cache_from = CacheSources(engine, cache_from) if cache_from else None
        self.emit = emit
        self.cancel = cancel or threading.Event()
        self.cache = BuildCache(engine.db)
        self.lex = ShellLex()
        self.used_args: set[str] = set()
        self.meta: dict[str, str | None] = {}
        self.results: dict[str, str] = {}   # stage name or index → image id
        self.step = 0
        self.total = 0

    def out(self, text: str) -> None:
        self.emit({"stream": text})

    def print_step(self, inst: Instruction) -> None:
        if self.cancel.is_set():
            raise Cancelled("build cancelled")
        self.step += 1
        self.out(f"Step {self.step}/{self.total} : {inst.original}\n")

    # -- the whole Dockerfile --------------------------------------------------------------------------

    def run(self, meta: list[Instruction], stages: list[Stage]) -> str:
        self.total = len(meta) + len(stages) + sum(len(s.commands) for s in stages)
        for inst in meta:
            self.print_step(inst)
            for word in inst.args.split():
                name, eq, default = word.partition("=")
                given = self.build_args.get(name)
                self.meta[name] = given if given is not None else \
                    (self.lex.process_word(default, {k: v for k, v in self.meta.items() if v is not None})
                     if eq else None)
                self.used_args.add(name)
        state: StageState | None = None
        for stage in stages:
            self.print_step(stage.source)
            state = self.from_stage(stage)
            self.out(f" ---> {short(state.image_id)}\n")
            for inst in stage.commands:
                self.print_step(inst)
                self.dispatch(inst, state)
                self.out(f" ---> {short(state.image_id)}\n")
            if state.image_id:
                self.emit({"aux": {"ID": state.image_id}})
            self.results[str(stage.index)] = state.image_id
            if stage.name:
                self.results[stage.name] = state.image_id
        unused = sorted(k for k, v in self.build_args.items()
                        if k not in self.used_args and k not in ops.PREDEFINED_ARGS)
        if unused:
            self.out(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed\n")
        if state is None or not state.image_id:
            raise InvalidParameter("No image was generated. Is your Dockerfile empty?")
        return state.image_id

    # -- FROM ------------------------------------------------------------------------------------------

    def from_stage(self, stage: Stage) -> StageState:
        if stage.source.flag("platform") and stage.source.flag("platform") not in ("linux/amd64", "linux"):
            raise InvalidParameter(f"unsupported platform {stage.source.flag('platform')}: only linux/amd64")
        base = self.lex.process_word(stage.base, {k: v for k, v in self.meta.items() if v is not None})
        if not base:
            raise InvalidParameter("base name (" + stage.base + ") should not be blank")
        if base.lower() in self.results and not base.isdigit():
            image_id = self.results[base.lower()]
        elif base.lower() == "scratch":
            image_id = ""
        else:
            image_id = self.image_for(base)
        config = self.engine.images.get(image_id).config if image_id else {}
        state = StageState(image_id=image_id, image_config=config, run=copy.deepcopy(config.get("config") or {}))
        triggers = state.run.pop("OnBuild", None) or []
        if triggers:
            self.out(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}\n")
            for text in triggers:
                self.dispatch(parse_trigger(text), state)
        return state

    def image_for(self, ref: str) -> str:
        """A local image, pulled when missing (or always with --pull), as the legacy builder does."""
        if not self.pull:
            try:
                return self.engine.images.resolve(ref).id
            except NotFound:
                pass
        for message in self.engine.image_pull(ref):
            self.emit(message)
        return self.engine.images.resolve(ref).id

    # -- one instruction -------------------------------------------------------------------------------

    def dispatch(self, inst: Instruction, state: StageState) -> None:
        cmd = inst.cmd
        if cmd == "ARG":
            comment = ops.declare_args(inst, state, self.lex, self.build_args, self.meta, self.used_args)
            self.config_step(state, comment)
        elif cmd in CONFIG_ONLY:
            comment = ops.apply(inst, state, self.lex)
            self.config_step(state, comment)
        elif cmd == "RUN":
            self.run_step(inst, state)
        elif cmd in ("COPY", "ADD"):
            self.copy_step(inst, state)
        elif cmd == "WORKDIR":
            self.workdir_step(inst, state)
        else:  # pragma: no cover - the parser only lets known instructions through
            raise InvalidParameter(f"unknown instruction: {cmd}")

    def probe(self, state: StageState, created_by: str) -> tuple[str, bool]:
        key = step_key(state.image_id, created_by, image_section(state.run))
        if self.no_cache:
            return key, False
        hit = self.cache.lookup(key, self.engine.images)
        if self.cache_from is not None:
            hit = self.cache_from.get(hit, state.image_id, created_by, image_section(state.run))
            if hit is not None:
                self.cache.store(key, hit, state.image_id)
        if hit is None:
            return key, False
        self.out(" ---> Using cache\n")
        state.image_id = hit
        state.image_config = self.engine.images.get(hit).config
        return key, True

    def commit_step(self, state: StageState, key: str, created_by: str, diff_id: str | None) -> None:
        cfg = child_config(state.image_config or None, image_section(state.run), created_by, diff_id,
                           author=state.maintainer)
        image = self.engine.images.create_image(cfg)
        set_parent(self.engine.db, image.id, state.image_id)
        self.cache.store(key, image.id, state.image_id)
        state.image_id = image.id
        state.image_config = image.config

    def nop(self, state: StageState, comment: str, single_arg: bool = False) -> str:
        shell = " ".join(state.shell())
        return f"{shell} #(nop) {comment}" if single_arg else f"{shell} #(nop)  {comment}"

    def config_step(self, state: StageState, comment: str) -> None:
        created_by = self.nop(state, comment)
        key, hit = self.probe(state, created_by)
        if not hit:
            self.commit_step(state, key, created_by, None)

    def run_step(self, inst: Instruction, state: StageState) -> None:
        for flag in ("mount", "security", "network"):
            if inst.flag(flag):
                raise InvalidParameter(BUILDKIT_ONLY.format(flag))
        cmd = inst.json if inst.json is not None else state.shell() + [inst.args]
        if not cmd or not cmd[0]:
            raise InvalidParameter("RUN requires at least one argument")
        passed, shown = ops.run_args(state, self.build_args)
        saved = [f"|{len(shown)}", *shown, *cmd] if passed else cmd
        created_by = " ".join(saved)
        key, hit = self.probe(state, created_by)
        if hit:
            return
        base = state.image_id or self.engine.images.create_image(copy.deepcopy(EMPTY_BASE)).id
        diff_id = run_container(self.engine, base, state.run, cmd, passed, self.network_mode, self.emit, cmd,
                                self.extra_hosts)
        self.commit_step(state, key, created_by, diff_id)

    def copy_step(self, inst: Instruction, state: StageState) -> None:
        from nanovisor.builder.copying import is_remote, perform_copy

        cmd = inst.cmd
        env = state.env_map()
        raw = inst.json if inst.json is not None else inst.args.split()
        if len(raw) < 2:
            raise InvalidParameter(f"{cmd} requires at least two arguments, but only one was provided. "
                                   f"Destination could not be determined.")
        words = [self.lex.process_word(w, env) for w in raw]
        srcs, dest = words[:-1], words[-1]
        if inst.flag("link") or inst.flag("parents") or inst.flag("exclude") or inst.flag("checksum"):
            flag = next(f for f in ("link", "parents", "exclude", "checksum") if inst.flag(f))
            raise InvalidParameter(BUILDKIT_ONLY.format(flag))
        if any(is_remote(s) for s in srcs):
            if cmd == "COPY":
                raise InvalidParameter("COPY failed: source can't be a URL for COPY")
            raise InvalidParameter("ADD failed: remote URLs are not supported: this builder has no network "
                                   "access (download the file into the build context and COPY it)")
        chown = self.lex.process_word(inst.flag("chown"), env)
        chmod = self.lex.process_word(inst.flag("chmod"), env)
        src_from = self.lex.process_word(inst.flag("from"), env) if inst.flag("from") else ""
        if src_from and cmd == "ADD":
            raise InvalidParameter("ADD does not support the --from flag")
        from_image = self.copy_source_image(src_from) if src_from else None
        if from_image is not None:
            digest = hashlib.sha256(json.dumps([from_image, srcs]).encode()).hexdigest()
            src_hash = f"from:{digest}"
            sources = None
        else:
            sources = find_sources(self.ctx.sources, srcs, cmd)
            hashes = [source_hash(s) for s in sources]
            src_hash = hashes[0] if len(hashes) == 1 else \
                "multi:" + hashlib.sha256(",".join(hashes).encode()).hexdigest()
        chown_note = f"--chown={chown} " if chown else ""
        chmod_note = f"--chmod={chmod} " if chmod else ""
        created_by = self.nop(state, f"{cmd} {chown_note}{chmod_note}{src_hash} in {dest} ", single_arg=True)
        key, hit = self.probe(state, created_by)
        if hit:
            return
        with mounted(self.engine, state.image_id) as target:
            if from_image is not None:
                with mounted(self.engine, from_image) as source:
                    root = SourceRoot(source.rootfs, what="image")
                    found = find_sources(root, srcs, cmd)
                    perform_copy(target.rootfs, found, dest, state.run.get("WorkingDir") or "/", cmd,
                                 chown=chown, chmod=chmod)
            else:
                perform_copy(target.rootfs, sources or [], dest, state.run.get("WorkingDir") or "/", cmd,
                             chown=chown, chmod=chmod, decompress=cmd == "ADD")
            diff_id = scratch_layer(self.engine, target)
        self.commit_step(state, key, created_by, diff_id)

    def copy_source_image(self, ref: str) -> str:
        if ref.lower() in self.results:
            image_id = self.results[ref.lower()]
        else:
            image_id = self.image_for(ref)
        return image_id

    def workdir_step(self, inst: Instruction, state: StageState) -> None:
        from nanovisor.images import fstree

        path = ops.workdir_path(inst, state, self.lex)
        state.run["WorkingDir"] = path
        created_by = self.nop(state, f"WORKDIR {path}", single_arg=True)
        key, hit = self.probe(state, created_by)
        if hit:
            return
        with mounted(self.engine, state.image_id) as target:
            root_fd = fstree.open_root(target.rootfs)
            try:
                fd, _names, _leaf = fstree.resolve_in_root(root_fd, fstree.split(path), create=True)
                os.close(fd)
            except (NotADirectoryError, FileExistsError):
                raise InvalidParameter(f"mkdir {path}: not a directory") from None
            finally:
                os.close(root_fd)
            diff_id = scratch_layer(self.engine, target)
        self.commit_step(state, key, created_by, diff_id)


# -- entry points -------------------------------------------------------------------------------------------

def _open_context(engine, context) -> BuildContext:
    if isinstance(context, BuildContext):
        return context  # unpacked already (POST /build does it while the request body arrives)
    if isinstance(context, (str, os.PathLike)):
        return BuildContext.from_dir(context)
    return BuildContext.from_tar(context, engine.paths.tmp)


def _label_instruction(labels: dict[str, str]) -> Instruction:
    text = " ".join(f"{json.dumps(k)}={json.dumps(v)}" for k, v in sorted(labels.items()))
    return Instruction(cmd="LABEL", original=f"LABEL {text}", args=text)


def build(engine, context: BuildContext | BinaryIO | str | os.PathLike, dockerfile: str = "Dockerfile",
          tags: list[str] | tuple[str, ...] = (), build_args: dict[str, str | None] | None = None,
          target: str | None = None, no_cache: bool = False, pull: bool = False,
          labels: dict[str, str] | None = None, progress: Emit | None = None, quiet: bool = False,
          network_mode: str = "default", dockerfile_text: str | None = None,
          cancel: threading.Event | None = None, extra_hosts: list[str] | None = None,
          cache_from: list[str] | None = None) -> str:
    """Builds and tags an image; returns its id. progress receives every message of the stream."""
    from nanovisor.images import reference

    emit = progress or (lambda _m: None)
    parsed_tags = [reference.parse(t) for t in tags or ()]  # a bad name fails before any work
    ctx = _open_context(engine, context)
    try:
        text = dockerfile_text if dockerfile_text is not None else ctx.read_dockerfile(dockerfile)
        if not text.strip():
            raise InvalidParameter(f"the Dockerfile ({dockerfile}) cannot be empty")
        meta, stages = parse(text)
        if target:
            names = [s.name for s in stages]
            if target.lower() not in names:
                raise InvalidParameter(f"failed to reach build target {target} in Dockerfile")
            stages = stages[:names.index(target.lower()) + 1]
        if labels:
            stages[-1].commands.append(_label_instruction(labels))
        builder = Builder(engine, ctx, build_args=build_args or {}, no_cache=no_cache, pull=pull,
                          network_mode=network_mode, emit=emit, cancel=cancel, extra_hosts=extra_hosts,
                          cache_from=cache_from)
        image_id = builder.run(meta, stages)
    finally:
        ctx.close()
    for ref in parsed_tags:
        engine.image_tag(image_id, ref.familiar())
    if quiet:
        emit({"stream": image_id + "\n"})
        return image_id
    emit({"stream": f"Successfully built {short(image_id)}\n"})
    for ref in parsed_tags:
        emit({"stream": f"Successfully tagged {ref.familiar()}\n"})
    return image_id


def error_message(err: Exception) -> dict:
    message = str(err)
    detail: dict = {"message": message}
    if isinstance(err, StepFailed):
        detail = {"code": err.code, "message": message}
    return {"errorDetail": detail, "error": message}


def build_stream(engine, context: BuildContext | BinaryIO | str | os.PathLike, **kwargs) -> Iterator[dict]:
    """build() as dockerd's message stream; a failure is the last message (errorDetail), never raised
    (except a bad tag or parameter found before anything was sent: raised at the first next())."""
    quiet = kwargs.get("quiet", False)
    messages: queue.Queue = queue.Queue(maxsize=256)
    cancel = threading.Event()
    done = object()

    def emit(message: dict) -> None:
        if quiet and "stream" in message:
            return
        while not cancel.is_set():
            try:
                messages.put(message, timeout=0.2)
                return
            except queue.Full:
                continue

    def worker() -> None:
        try:
            image_id = build(engine, context, progress=emit, cancel=cancel, **{**kwargs, "quiet": False})
            if quiet:
                messages.put({"stream": image_id + "\n"})
        except NanovisorError as e:
            messages.put(error_message(e))
        except Exception as e:  # noqa: BLE001 - a bug still ends the stream with a message, not a hang
            messages.put(error_message(e))
        finally:
            messages.put(done)

    thread = threading.Thread(target=worker, name="build", daemon=True)
    thread.start()
    try:
        while True:
            item = messages.get()
            if item is done:
                return
            yield item
    finally:
        cancel.set()
        thread.join(timeout=60)
