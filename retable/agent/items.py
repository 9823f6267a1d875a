"""Stage 2: items. Description-only mode asks the LLM for items per subtopic; corpus mode loads the
user's corpus instead (retable.files.load_corpus)."""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints
from tqdm import tqdm

from retable.agent.echo import Echo
from retable.agent.llm import LLMClient
from retable.agent.prompts import Prompts
from retable.errors import InvalidReply
from retable.records import DomainBrief, Item

PER_CALL = 3  # items asked for in one call; small models drift on longer lists


class ItemReply(BaseModel):
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=120)]
    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=40, max_length=700)]


class ItemsReply(BaseModel):
    items: list[ItemReply] = Field(min_length=1, max_length=PER_CALL)


def normalize(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


def synthesize_items(client: LLMClient, prompts: Prompts, description: str, brief: DomainBrief, n_items: int, seed: int) -> list[Item]:
    """About `n_items` items spread evenly over the brief's subtopics (fewer subtopics than planned
    means more items each); exact duplicates are dropped."""
    per_subtopic = math.ceil(n_items / len(brief.subtopics))
    items: list[Item] = []
    seen: set[str] = set()
    calls = math.ceil(per_subtopic / PER_CALL)
    jobs = [(s, c) for s in range(len(brief.subtopics)) for c in range(calls)]
    for s, c in tqdm(jobs, desc="items", unit="call"):
        subtopic = brief.subtopics[s]
        kind = brief.item_kinds[s % len(brief.item_kinds)]
        n = min(PER_CALL, per_subtopic - c * PER_CALL)
        messages = prompts.render("items", description=description, subtopic=subtopic, item_kind=kind, n_items=n)
        echo = Echo(messages)

        def own_words(reply: ItemsReply) -> list[ItemReply]:
            fresh = [it for it in reply.items[:n] if not echo.repeats(f"{it.title} {it.text}")]
            if not fresh:
                raise ValueError("every item repeats the prompt's example")
            return fresh

        try:
            written = client.structured(messages, ItemsReply, seed=seed + 7919 * s + c, check=own_words)
        except InvalidReply:
            continue  # counted in the stage's usage as invalid
        for j, it in enumerate(written):
            key = normalize(it.text)
            if key in seen:
                continue
            seen.add(key)
            items.append(Item(id=f"syn-{s}-{c}-{j}", title=it.title, text=it.text, subtopic=subtopic, source="synthetic"))
    return items
