"""Stage 1: description -> DomainBrief (subtopics, item kinds, vocabulary, personas)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from retable.agent.echo import Echo
from retable.llm import LLMClient
from retable.prompts import Prompts
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


def _key(value: str) -> frozenset[str]:
    """Repeats look alike whatever their word order or repeated words ("biomedical research research")."""
    return frozenset(re.findall(r"\w+", value.lower()))


def _distinct(values: list[str], echo: Echo, seen: set | None = None) -> list[str]:
    """Strip list numbering, drop repeats (same set of words) and echoes of the prompt, keep order."""
    seen = set() if seen is None else seen
    out = []
    for v in values:
        v = _NUMBERING.sub("", v).strip()
        key = _key(v)
        if v and key not in seen and not echo.repeats(v):
            seen.add(key)
            out.append(v)
    return out


PLAN_TRIES = 3  # the brief is asked again (another seed) while it has under half the subtopics wanted


def make_brief(client: LLMClient, prompts: Prompts, description: str, n_subtopics: int, seed: int) -> DomainBrief:
    """Plan the brief; small models repeat one subtopic in many wordings, so while fewer than half
    of the `n_subtopics` wanted are distinct, ask again with another seed and merge what is new."""
    messages = prompts.render("brief", description=description, n_subtopics=n_subtopics)
    echo = Echo(messages)

    def clean(reply: BriefReply) -> BriefReply:
        if not _distinct(reply.subtopics, echo) or not _distinct(reply.item_kinds, echo) or not any(
                not (echo.repeats(p.name) or echo.repeats(p.intent)) for p in reply.personas):
            raise ValueError("nothing but repeats of the prompt in subtopics, item kinds or personas")
        return reply

    replies: list[BriefReply] = []
    for attempt in range(PLAN_TRIES):
        try:
            replies.append(client.structured(messages, BriefReply, seed=seed + 7 * attempt, check=clean))
        except InvalidReply as exc:
            if not replies and attempt == PLAN_TRIES - 1:
                raise UserError(f"the LLM gave no usable domain brief after {PLAN_TRIES * (client.max_retries + 1)} tries ({exc}) — rerun with "
                                "another --seed or a stronger --llm") from None
            continue
        if len(_distinct([s for r in replies for s in r.subtopics], echo)) * 2 >= n_subtopics:
            break
    if not replies:
        raise UserError("the LLM gave no usable domain brief — rerun with another --seed or a stronger --llm")
    subtopics = _distinct([s for r in replies for s in r.subtopics], echo)[:n_subtopics]
    personas, seen = [], set()
    for r in replies:
        for p in r.personas:
            if not (echo.repeats(p.name) or echo.repeats(p.intent)) and _key(p.name + " " + p.intent) not in seen:
                seen.add(_key(p.name + " " + p.intent))
                personas.append(Persona(name=p.name, intent=p.intent))
    return DomainBrief(subtopics=subtopics, item_kinds=_distinct([k for r in replies for k in r.item_kinds], echo)[:4],
                       vocabulary=_distinct([v for r in replies for v in r.vocabulary], echo)[:12], personas=personas[:6])
