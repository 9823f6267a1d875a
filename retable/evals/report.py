"""Render report.md from audit.json with a Jinja2 template shipped in the package."""

from __future__ import annotations

from importlib import resources

from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from retable.evals.audit import Audit


def render_markdown(audit: Audit, run_name: str) -> str:
    source = resources.files("retable.evals").joinpath("templates/report.md.jinja").read_text(encoding="utf-8")
    env = SandboxedEnvironment(undefined=StrictUndefined, trim_blocks=False, lstrip_blocks=False)
    slices = [("all", audit.held_out.all), *audit.held_out.by_format.items()] if audit.held_out.all else []
    return env.from_string(source).render(audit=audit, run_name=run_name, slices=slices)
