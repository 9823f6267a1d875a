"""Stage 3: queries. One LLM call per sampled item returns one query per configured format, each
written for a persona from the brief and labelled with its format."""

from __future__ import annotations

import random
from typing import Annotated

from pydantic import BaseModel, StringConstraints, create_model

from retable.agent.echo import Echo
from retable.llm import LLMClient
from retable.prompts import Prompts
from retable.errors import InvalidReply
from retable.records import DomainBrief, Item, Query

QueryText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=200)]
MAX_ITEM_CHARS = 1200  # keeps the prompt short for small local models
QUERIES_VERSION = 2  # part of the stage's fingerprint: raise it when the checks on replies change


def reply_model(formats: list[str]) -> type[BaseModel]:
    """A reply schema with exactly one string field per format."""
    return create_model("QueriesReply", **{f: (QueryText, ...) for f in formats})


def sample_items(items: list[Item], max_items: int, seed: int) -> list[Item]:
    if len(items) <= max_items:
        return list(items)
    chosen = set(random.Random(seed).sample(range(len(items)), max_items))
    return [it for i, it in enumerate(items) if i in chosen]


def write_queries(client: LLMClient, prompts: Prompts, items: list[Item], brief: DomainBrief, formats: list[str], max_items: int, seed: int,
                  *, counter_examples: list[dict] | None = None, id_suffix: str = "", desc: str = "queries") -> list[Query]:
    """`counter_examples` ({"query", "why"}): earlier queries that failed, shown as what not to write."""
    model = reply_model(formats)
    rng = random.Random(seed + 1)
    jobs = []
    for n, item in enumerate(sample_items(items, max_items, seed)):  # prompts in order, so concurrency changes nothing
        persona = brief.personas[rng.randrange(len(brief.personas))]
        messages = prompts.render("queries", formats=formats, persona_name=persona.name, persona_intent=persona.intent,
                                  item_text=item.encode_text()[:MAX_ITEM_CHARS], counter_examples=counter_examples or [])
        jobs.append((n, item, persona, messages))

    def ask(job):
        n, _, _, messages = job
        try:
            return client.structured(messages, model, seed=seed + 104729 * n)
        except InvalidReply:
            return None

    queries: list[Query] = []
    for (n, item, persona, messages), reply in zip(jobs, client.map(ask, jobs, desc=desc, unit="item")):
        if reply is None:
            continue
        echo = Echo(messages)
        for f in formats:
            text = getattr(reply, f)
            queries.append(Query(id=f"{item.id}::{f}{id_suffix}", item_id=item.id, text=text, format=f, persona=persona.name,
                                 copies_prompt=echo.repeats(text) or echo.leaks(text)))
    return queries
