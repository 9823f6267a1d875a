"""Prompt templates: one `.jinja` file per task in `retable/prompts/`, rendered in Jinja2's sandbox
with StrictUndefined. A template has a `system` and a `user` block, and may have an `example_user`
and `example_assistant` block: the few-shot example, sent as an earlier turn of the conversation
(small models parrot an example pasted into the same message more; which way works better is
measured per task, see the comment atop each template). A folder given with
`--prompts` overrides any template by file name."""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

from jinja2 import ChoiceLoader, FileSystemLoader, FunctionLoader, StrictUndefined, TemplateError, TemplateNotFound
from jinja2.sandbox import SandboxedEnvironment

from retable.llm.base import Message
from retable.errors import UserError

TASKS = ("brief", "items", "queries", "judge")


def _packaged(name: str) -> str | None:
    """A shipped template by its bare file name; any path (absolute, parent, sub-folder) is not one."""
    if not name.endswith(".jinja") or "/" in name or "\\" in name or name.startswith("."):
        return None
    res = resources.files("retable.prompts").joinpath(name)
    return res.read_text(encoding="utf-8") if res.is_file() else None


def tag_safe(value):
    """The `tag_safe` filter, for data between tags such as <document>{{ item_text | tag_safe }}</document>:
    its own angle brackets are escaped, so an item cannot close the tag and speak as the instructions."""
    return value.replace("<", "&lt;").replace(">", "&gt;") if isinstance(value, str) else value


class Prompts:
    def __init__(self, override_dir: Path | None = None):
        self.override_dir = override_dir
        loaders = []
        if override_dir is not None:
            if not override_dir.is_dir():
                raise UserError(f"--prompts {override_dir} is not a folder — pass a folder of .jinja files")
            loaders.append(FileSystemLoader(str(override_dir)))
        loaders.append(FunctionLoader(_packaged))
        self.env = SandboxedEnvironment(loader=ChoiceLoader(loaders), undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
        self.env.filters["tag_safe"] = tag_safe
        if override_dir is not None:  # a broken override fails here, before any LLM call
            for task in TASKS:
                self._template(task)

    def __getstate__(self) -> dict:  # Ray ships prompts to its workers; the Jinja environment is rebuilt there
        return {"override_dir": self.override_dir}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["override_dir"])

    def source_hash(self, task: str) -> str:
        """Hash of the template text in use, part of its stage's fingerprint."""
        source, _, _ = self.env.loader.get_source(self.env, f"{task}.jinja")
        return hashlib.sha256(source.encode()).hexdigest()[:16]

    def _template(self, task: str):
        try:
            template = self.env.get_template(f"{task}.jinja")
        except TemplateNotFound:
            raise UserError(f"no prompt template {task}.jinja — ship it or add it to the --prompts folder") from None
        except TemplateError as exc:
            raise UserError(f"prompt template {task}.jinja does not parse (line {getattr(exc, 'lineno', '?')}: {exc.message}) — fix it") from None
        for required in ("system", "user"):
            if required not in template.blocks:
                raise UserError(f"prompt template {task}.jinja has no {{% block {required} %}}")
        return template

    def render(self, task: str, **variables) -> list[Message]:
        template = self._template(task)
        turns = [("system", "system"), ("example_user", "user"), ("example_assistant", "assistant"), ("user", "user")]
        try:
            ctx = template.new_context(variables)
            "".join(template.root_render_func(ctx))  # runs the top-level {% set %} and {% macro %} for the blocks
            return [{"role": role, "content": "".join(template.blocks[block](ctx)).strip()} for block, role in turns if block in template.blocks]
        except TemplateNotFound as exc:  # an include of a file outside the prompts folder, or of none
            raise UserError(f"prompt template {task}.jinja includes {exc.name!r}, which is not a template of the prompts folder "
                            "(includes name a file there, no absolute or parent path) — fix it") from None
        except TemplateError as exc:  # SecurityError from the sandbox, an undefined variable, ...
            raise UserError(f"prompt template {task}.jinja failed to render ({type(exc).__name__}: {str(exc)[:200]}) — fix it") from None
        except RecursionError:
            raise UserError(f"prompt template {task}.jinja includes itself (directly or through another template) — break the cycle") from None
