"""Stage 1: description -> DomainBrief (subtopics, item kinds, vocabulary, personas)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints, ValidationError

from retable.agent.echo import Echo
from retable.agent.llm import LLMClient
from retable.agent.prompts import Prompts
from retable.errors import InvalidReply, UserError
from retable.records import DomainBrief, Persona

Short = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=80)]


class PersonaReply(BaseModel):
    name: Short
    intent: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=160)]


class BriefReply(BaseModel):
    """What the LLM must return; bounded so a grammar-constrained decode always ends."""

    subtopics: list[Short] = Field(min_length=1, max_length=12)
    item_kinds: list[Short] = Field(min_length=1, max_length=4)
    vocabulary: list[Short] = Field(max_length=12)
    personas: list[PersonaReply] = Field(min_length=1, max_length=4)


_NUMBERING = re.compile(r"^\s*(\d+[.)]|[-*•])\s*")


def _distinct(values: list[str], echo: Echo) -> list[str]:
    """Strip list numbering, drop repeats (case-insensitive) and echoes of the prompt, keep order."""
    seen, out = set(), []
    for v in values:
        v = _NUMBERING.sub("", v).strip()
        key = v.lower()
        if v and key not in seen and not echo.repeats(v):
            seen.add(key)
            out.append(v)
    return out


def make_brief(client: LLMClient, prompts: Prompts, description: str, n_subtopics: int, seed: int) -> DomainBrief:
    messages = prompts.render("brief", description=description, n_subtopics=n_subtopics)
    echo = Echo(messages)

    def clean(reply: BriefReply) -> DomainBrief:
        personas = [Persona(name=p.name, intent=p.intent) for p in reply.personas if not (echo.repeats(p.name) or echo.repeats(p.intent))]
        try:
            return DomainBrief(
                subtopics=_distinct(reply.subtopics, echo)[:n_subtopics], item_kinds=_distinct(reply.item_kinds, echo),
                vocabulary=_distinct(reply.vocabulary, echo), personas=personas,
            )
        except ValidationError:
            raise ValueError("nothing but repeats of the prompt in subtopics, item kinds or personas") from None

    try:
        return client.structured(messages, BriefReply, seed=seed, check=clean)
    except InvalidReply as exc:
        raise UserError(f"the LLM gave no usable domain brief after {client.max_retries + 1} tries ({exc}) — rerun with another --seed or a stronger --llm") from None
