"""Command-line options derived from RunConfig: each field's type, description and default become an
option's type, help and shown default, so a setting is written once (in retable/config.py) and is typed
from the command line to the stage that reads it. Lists are comma-separated; Literal fields are choices."""

from __future__ import annotations

import functools
import inspect
import types
import typing
from typing import Annotated, Optional

import typer

from retable.config import RunConfig, default

NOT_OPTIONS = {"endpoints", "price_per_million_tokens", "audit"}  # structured: set them in --config FILE.json

# `--help` groups the options by what they steer (tests/test_cli.py holds every option to one panel)
PANELS = {
    "LLM": ("llm", "base_url", "model", "llm_parallel", "llm_weights", "endpoint_cooldown", "llm_timeout", "llm_retries", "temperature",
            "max_tokens", "max_retries", "concurrency", "budget_tokens"),
    "Generation": ("n_subtopics", "items_per_subtopic", "query_formats", "holdout_formats", "max_query_items", "rounds", "min_pairs_per_subtopic",
                   "min_format_pass", "round_items", "round_queries", "filter_top_k"),
    "Teacher": ("pseudo_formats", "teacher_weight", "teacher_candidates"),
    "Table": ("pq_m", "pq_nbits", "quantizer", "table_kind", "collision_residuals", "epochs", "patience", "lr", "tau", "batch_size", "hard_negatives",
              "val_fraction", "test_fraction"),
    "Audit": ("judge_pairs",),
    "Run": ("seed", "encoder", "encoder_backend", "executor", "ann_threshold", "strict"),
}
PANEL = {name: panel for panel, names in PANELS.items() for name in names}


def _base(annotation) -> tuple[object, bool]:
    """(the option's type, whether it is a comma-separated list) of a field's annotation; a Literal
    stays a Literal, which typer offers as choices."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return _base(next(a for a in typing.get_args(annotation) if a is not type(None)))
    if typing.get_origin(annotation) is list:
        return str, True
    return annotation, False


def option_fields() -> list[str]:
    return [n for n in RunConfig.model_fields if n not in NOT_OPTIONS]


def _shown(name: str) -> str:
    value = default(name)
    if isinstance(value, list):
        return ",".join(value) or "none"
    return "none" if value is None else str(value)


def _parameter(name: str) -> inspect.Parameter:
    field = RunConfig.model_fields[name]
    typ, is_list = _base(field.annotation)
    extra = field.json_schema_extra or {}
    decls = [extra["cli"]] if "cli" in extra else []
    text = (field.description or "").rstrip(".")
    help_ = f"{text[:1].upper()}{text[1:]}{' (comma-separated)' if is_list else ''}. (default: {_shown(name)})"
    opt = typer.Option(*decls, help=help_, show_default=False, rich_help_panel=f"{PANEL[name]} settings")
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[Optional[typ], opt])


def with_config_options(names: list[str]):
    """Give a command one option per RunConfig field in `names`; it receives them in **settings, lists
    already split, None for the ones not given."""
    lists = {n for n in names if _base(RunConfig.model_fields[n].annotation)[1]}

    def decorate(fn):
        sig = inspect.signature(fn, eval_str=True)  # real types: the wrapper lives in another module
        own = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]

        @functools.wraps(fn)
        def command(**kwargs):
            for n in lists & kwargs.keys():
                kwargs[n] = [v.strip() for v in kwargs[n].split(",") if v.strip()] if kwargs[n] is not None else None
            return fn(**kwargs)

        order = list(PANELS)
        params = own + [_parameter(n) for n in sorted(names, key=lambda n: order.index(PANEL[n]))]  # panels in PANELS' order
        command.__signature__ = sig.replace(parameters=params)
        command.__annotations__ = {p.name: p.annotation for p in params if p.annotation is not inspect.Parameter.empty}
        del command.__wrapped__  # typer must see the generated signature, not fn's
        return command

    return decorate
