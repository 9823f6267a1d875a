"""Prompt templates: one `.jinja` file per task in `retable/prompts/`, each with a `system` and a
`user` block, rendered in Jinja2's sandbox with StrictUndefined. A folder given with `--prompts`
overrides any template by file name."""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

from jinja2 import ChoiceLoader, FileSystemLoader, FunctionLoader, StrictUndefined, TemplateNotFound
from jinja2.sandbox import SandboxedEnvironment

from retable.agent.llm.base import Message
from retable.errors import UserError

TASKS = ("brief", "items", "queries")


def _packaged(name: str) -> str | None:
    res = resources.files("retable.prompts").joinpath(name)
    return res.read_text(encoding="utf-8") if res.is_file() else None


class Prompts:
    def __init__(self, override_dir: Path | None = None):
        loaders = []
        if override_dir is not None:
            if not override_dir.is_dir():
                raise UserError(f"--prompts {override_dir} is not a folder — pass a folder of .jinja files")
            loaders.append(FileSystemLoader(str(override_dir)))
        loaders.append(FunctionLoader(_packaged))
        self.env = SandboxedEnvironment(loader=ChoiceLoader(loaders), undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)

    def source_hash(self, task: str) -> str:
        """Hash of the template text in use, part of its stage's fingerprint."""
        source, _, _ = self.env.loader.get_source(self.env, f"{task}.jinja")
        return hashlib.sha256(source.encode()).hexdigest()[:16]

    def render(self, task: str, **variables) -> list[Message]:
        try:
            template = self.env.get_template(f"{task}.jinja")
        except TemplateNotFound:
            raise UserError(f"no prompt template {task}.jinja — ship it or add it to the --prompts folder") from None
        ctx = template.new_context(variables)
        messages = []
        for role in ("system", "user"):
            if role not in template.blocks:
                raise UserError(f"prompt template {task}.jinja has no {{% block {role} %}}")
            text = "".join(template.blocks[role](ctx)).strip()
            messages.append({"role": role, "content": text})
        return messages
