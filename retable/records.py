"""Typed records that cross stage boundaries. Every stage reads and writes these, never raw dicts."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Persona(Record):
    name: str = Field(min_length=1, max_length=80)
    intent: str = Field(min_length=1, max_length=200)


class DomainBrief(Record):
    """What the LLM planned from the description (the brief stage's output)."""

    subtopics: list[str] = Field(min_length=1)
    item_kinds: list[str] = Field(min_length=1)
    vocabulary: list[str] = Field(default_factory=list)
    personas: list[Persona] = Field(min_length=1)


class Item(Record):
    id: str = Field(min_length=1)
    title: str = ""
    text: str = Field(min_length=1)
    subtopic: str | None = None
    source: Literal["corpus", "synthetic"] = "corpus"

    def encode_text(self) -> str:
        """The text given to the encoder: title and body, as BEIR does."""
        return f"{self.title} {self.text}".strip() if self.title else self.text


class Query(Record):
    id: str
    item_id: str
    text: str
    format: str
    persona: str | None = None
    copies_prompt: bool = False  # repeats the prompt's own words (its example or instructions)


DropReason = Literal["malformed", "copied_from_prompt", "copied_from_item", "duplicate", "unrelated_to_item", "round_trip_rank", "off_domain_item"]


class Pair(Record):
    """A query with the item it was written for; `rank` is the item's rank under the frozen encoder,
    `found_by` says which of the teacher's retrievers put it in the top k (kept pairs)."""

    query_id: str
    query: str
    item_id: str
    format: str
    rank: int | None = None
    found_by: Literal["dense", "bm25", "both"] | None = None


class DroppedPair(Pair):
    reason: DropReason


class StageUsage(Record):
    calls: int = 0
    cached: int = 0
    invalid: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0


class RoundLog(Record):
    """One agent round (rounds.json): why it ran, what it added, what was kept after it."""

    round: int
    reason: str
    subtopics: list[str] = []
    formats: list[str] = []
    new_items: int = 0
    new_queries: int = 0
    kept_after: int = 0
    off_domain_items: list[str] = []  # synthetic items far from the domain: their pairs are dropped
    kept_by_subtopic: dict[str, int] = {}
    pass_rate_by_format: dict[str, float] = {}
