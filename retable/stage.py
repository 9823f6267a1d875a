"""A stage declares its contract — the config fields it reads (an LLM-calling stage names LLM_FIELDS), the run
files it reads and writes, the prompt templates it renders — and the runner derives its cache key from that
declaration alone: change a declared setting, a template, or the content of a file it reads, and the
stage reruns (and so does every stage that reads what it writes). A stage whose key and output files
are unchanged is skipped, so an interrupted run resumes.

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


def config_value(config: BaseModel, name: str):
    value = config
    for part in name.split("."):
        value = getattr(value, part)
    return value.model_dump() if isinstance(value, BaseModel) else value


def stage_key(stage: Stage, ctx: Context) -> str:
    return fingerprint([stage.name, stage.version, {f: config_value(ctx.config, f) for f in stage.config},
                        {t: ctx.prompts.source_hash(t) for t in stage.prompts}, {r: ctx.state.digest(r) for r in stage.reads},
                        stage.inputs(ctx)])


def run_stages(stages: list[Stage], ctx: Context, *, force: frozenset[str] = frozenset()) -> None:
    """Run each stage in order unless it is current; a hand-edited output that its check accepts is kept."""
    for stage in stages:
        key = stage_key(stage, ctx)
        if stage.edit_check is not None and ctx.state.edited(stage.name, key):
            stage.edit_check(ctx)
            ctx.state.accept_edit(stage.name, key, list(stage.writes))
        ctx.state.run(stage.name, key, list(stage.writes), lambda: stage.run(ctx), optional=stage.optional, force=stage.name in force)
