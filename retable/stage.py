"""A stage declares its contract — the config fields it reads (an LLM-calling stage names LLM_FIELDS), the run
files it reads and writes, the prompt templates it renders — and the runner derives its cache key from that
declaration alone: change a declared setting, a template, or the content of a file it reads, and the
stage reruns (and so does every stage that reads what it writes). A stage whose key and output files
are unchanged is skipped, so an interrupted run resumes. Before the first stage runs, the runner checks
the list against the declarations (`check_stages`), and each stage sees only the config fields it
declares (`DeclaredConfig`): a field it reads without declaring fails at once, in the tests.

>>> s = Stage("codes", lambda ctx: None, writes=("codes/codes.npy",), config=("pq_m", "seed"))
>>> s.config
('pq_m', 'seed')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pydantic import BaseModel

from retable.config import RunConfig
from retable.files import fingerprint
from retable.prompts import Prompts
from retable.runfiles import RunFolder
from retable.runstate import RunState

LLM_FIELDS = ("llm", "model", "temperature", "max_tokens", "max_retries")  # what an LLM-calling stage's output follows


@dataclass
class Context:
    """What stages share during one invocation. The LLM client and the encoder are built on first use,
    so a run whose LLM stages are all current loads no model."""

    run: RunFolder
    config: RunConfig
    state: RunState
    prompts: Prompts
    make_client: Callable[[], object]
    make_encoder: Callable[[], object]
    executor: object
    log: Callable[[str], None] = print
    description: str | None = None
    corpus: Path | None = None
    probe: Path | None = None
    parent: RunFolder | None = None  # `retable index`: the run whose RUN/indexed/ this is (its adapter, its corpus cache)
    _client: object = field(default=None, repr=False)
    _encoder: object = field(default=None, repr=False)

    @property
    def client(self):
        if self._client is None:
            self._client = self.make_client()
        return self._client

    @property
    def encoder(self):
        if self._encoder is None:
            self._encoder = self.make_encoder()
        return self._encoder


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[Context], None]
    writes: tuple[str, ...]
    reads: tuple[str, ...] = ()  # run files written by earlier stages: their content keys this stage
    config: tuple[str, ...] = ()  # RunConfig fields; "audit.domain_ratio" names a nested one
    prompts: tuple[str, ...] = ()  # templates it renders
    inputs: Callable[[Context], list] = lambda ctx: []  # what else its output follows: the description, a corpus file
    version: int = 1  # raise when the stage's code changes what it writes
    optional: tuple[str, ...] = ()  # writes that some settings leave out
    edit_check: Callable[[Context], None] | None = None  # a hand edit of its output is kept when this returns (UserError: refused)
    unkeyed: tuple[str, ...] = ()  # RunConfig fields it reads that never change what it writes (commands/stages.NOT_KEYED)


class DeclaredConfig:
    """The run's config as one stage sees it: the fields it declares (a nested name grants its top field),
    and nothing else of RunConfig's; reading an undeclared field raises at once."""

    def __init__(self, config: RunConfig, stage: Stage):
        self._config, self._stage = config, stage.name
        self._fields = {f.split(".")[0] for f in (*stage.config, *stage.unkeyed)}

    def __getattr__(self, name: str):
        if name in RunConfig.model_fields and name not in self._fields:
            raise AttributeError(f"stage {self._stage!r} reads config.{name} without declaring it (Stage.config, or Stage.unkeyed when "
                                 "it never changes the output)")
        return getattr(self._config, name)


def check_stages(stages: list[Stage], config: RunConfig, given: frozenset[str] = frozenset()) -> None:
    """A command's list, held to its declarations before anything runs: every declared config field exists,
    and every file a stage reads is written by an earlier stage (or is in `given`: what the command finds there)."""
    written = set(given)
    for stage in stages:
        for name in (*stage.config, *stage.unkeyed):
            try:
                config_value(config, name)
            except AttributeError:
                raise RuntimeError(f"stage {stage.name!r} declares config field {name!r}, which RunConfig has not") from None
        unread = set(stage.reads) - written
        if unread:
            raise RuntimeError(f"stage {stage.name!r} reads {sorted(unread)} before any stage writes them")
        written |= set(stage.writes)


def config_value(config: BaseModel, name: str):
    value = config
    for part in name.split("."):
        value = getattr(value, part)
    return value.model_dump() if isinstance(value, BaseModel) else value


def stage_key(stage: Stage, ctx: Context) -> str:
    return fingerprint([stage.name, stage.version, {f: config_value(ctx.config, f) for f in stage.config},
                        {t: ctx.prompts.source_hash(t) for t in stage.prompts}, {r: ctx.state.digest(r) for r in stage.reads},
                        stage.inputs(ctx)])


def _run_declared(stage: Stage, ctx: Context) -> None:
    config, ctx.config = ctx.config, DeclaredConfig(ctx.config, stage)
    try:
        stage.run(ctx)
    finally:
        ctx.config = config


def run_stages(stages: list[Stage], ctx: Context, *, force: frozenset[str] = frozenset(), given: frozenset[str] = frozenset()) -> None:
    """Check the list (`check_stages`), then run each stage in order unless it is current; a hand-edited output
    that its check accepts is kept."""
    check_stages(stages, ctx.config, given)
    for stage in stages:
        key = stage_key(stage, ctx)
        if stage.edit_check is not None and ctx.state.edited(stage.name, key):
            stage.edit_check(ctx)
            ctx.state.accept_edit(stage.name, key, list(stage.writes))
        ctx.state.run(stage.name, key, list(stage.writes), lambda: _run_declared(stage, ctx), optional=stage.optional, force=stage.name in force)
