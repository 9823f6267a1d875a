"""Stage 2: items. Description-only mode asks the LLM for items per subtopic; corpus mode loads the
user's corpus instead (retable.files.load_corpus)."""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from retable.agent.echo import Echo, trigrams, words
from retable.llm import LLMClient
from retable.prompts import Prompts
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


def _trigrams(text: str) -> set[tuple[str, ...]]:
    return trigrams(words(text)) or {tuple(words(text))}  # a text under 3 words is its own gram


def near_duplicate(text: str, seen: list[set[str]], threshold: float = 0.6) -> bool:
    """True when the word trigrams of `text` overlap an earlier item's by `threshold` (Jaccard) or more.

    >>> seen = [_trigrams("statins lower the risk of heart attacks in older adults")]
    >>> near_duplicate("Statins lower the risk of heart attacks in older adults!", seen), near_duplicate("garlic shrimp in ten minutes", seen)
    (True, False)
    """
    grams = _trigrams(text)
    return any(len(grams & g) / len(grams | g) >= threshold for g in seen)


def synthesize_items(client: LLMClient, prompts: Prompts, description: str, brief: DomainBrief, n_items: int, seed: int, *,
                     subtopics: list[int] | None = None, focus: str = "", existing: list[Item] = (), id_prefix: str = "syn",
                     desc: str = "items") -> list[Item]:
    """About `n_items` items spread evenly over the brief's subtopics (or the listed ones; fewer
    subtopics than planned means more items each); exact and near duplicates, also of `existing`
    items, are dropped. `focus` is an extra instruction (the agent's later rounds use it)."""
    chosen = list(range(len(brief.subtopics))) if subtopics is None else subtopics
    per_subtopic = math.ceil(n_items / len(chosen))
    items: list[Item] = []
    seen = [_trigrams(it.text) for it in existing]
    calls = math.ceil(per_subtopic / PER_CALL)
    jobs = [(s, c) for s in chosen for c in range(calls)]

    def ask(job):
        s, c = job
        kind = brief.item_kinds[s % len(brief.item_kinds)]
        n = min(PER_CALL, per_subtopic - c * PER_CALL)
        messages = prompts.render("items", description=description, subtopic=brief.subtopics[s], item_kind=kind, n_items=n, focus=focus)
        echo = Echo(messages)

        def own_words(reply: ItemsReply) -> list[ItemReply]:
            fresh = [it for it in reply.items[:n] if not echo.repeats(f"{it.title} {it.text}")]
            if not fresh:
                raise ValueError("every item repeats the prompt's example")
            return fresh

        try:
            return client.structured(messages, ItemsReply, seed=seed + 7919 * s + c, check=own_words)
        except InvalidReply:
            return []  # counted in the stage's usage as invalid

    for (s, c), written in zip(jobs, client.map(ask, jobs, desc=desc)):
        subtopic = brief.subtopics[s]
        for j, it in enumerate(written):
            if near_duplicate(it.text, seen):
                continue
            seen.append(_trigrams(it.text))
            items.append(Item(id=f"{id_prefix}-{s}-{c}-{j}", title=it.title, text=it.text, subtopic=subtopic, source="synthetic"))
    return items
