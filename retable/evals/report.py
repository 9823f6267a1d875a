"""Render report.md and report.html from audit.json with Jinja2 templates shipped in the package.
The HTML escapes every value (synthetic text is untrusted) and embeds its plots."""

from __future__ import annotations

from importlib import resources

from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from retable.evals.audit import Audit

LEVEL_MARK = {"red": "RED", "amber": "AMBER", "green": "green"}


def _counts(counts: dict, empty: str = "none") -> str:
    """{"keyword": 3, "question": 9} -> "keyword 3, question 9"."""
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or empty


def _interval(v: list[float]) -> str:
    """[mean, low, high] -> "+0.0123 [+0.0050, +0.0201]"."""
    return "{:+.4f} [{:+.4f}, {:+.4f}]".format(*v)


def _untuned_ranking(kind: str) -> str:
    from retable.adapters.table import untuned_ranking

    return untuned_ranking(kind)


def _template(name: str, autoescape: bool):
    source = resources.files("retable.evals").joinpath(f"templates/{name}").read_text(encoding="utf-8")
    env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=autoescape, trim_blocks=True, lstrip_blocks=True)
    env.filters["counts"] = _counts
    env.filters["interval"] = _interval
    env.filters["untuned_ranking"] = _untuned_ranking
    return env.from_string(source)


def _context(audit: Audit) -> dict:
    h = audit.held_out
    slices = [("all", h.all), *h.by_format.items()] if h.all else []
    return dict(audit=audit, slices=slices, before=h.before, mark=LEVEL_MARK,
                counts={lvl: sum(f.level == lvl for f in audit.findings) for lvl in LEVEL_MARK})


def render_markdown(audit: Audit) -> str:
    return _template("report.md.jinja", autoescape=False).render(**_context(audit))


def render_html(audit: Audit) -> str:
    from retable.evals.plots import all_plots

    return _template("report.html.jinja", autoescape=True).render(**_context(audit), plots=all_plots(audit))
