"""The agent loop, after the first round's filter: look at what survived, and give the subtopics
and query formats that fell short another round with adjusted instructions — a narrower focus
and no repeats for a thin subtopic, failed queries shown as counter-examples for a weak format —
until the targets are met or the rounds or the token budget run out. Every round and its reason
are logged (rounds.json) and shown in the report."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from pydantic import BaseModel

from retable.agent.filter import filter_pairs
from retable.agent.items import synthesize_items
from retable.agent.queries import write_queries
from retable.errors import BudgetExhausted
from retable.evals.faithfulness import domain_check
from retable.records import DomainBrief, DroppedPair, Item, Pair, Query

ROUNDS_VERSION = 2  # part of the filter stage's fingerprint: raise it when the loop's choices change

WHY = {
    "round_trip_rank": "a search with it did not find its document in the top results",
    "copied_from_item": "it copies a sentence of the document",
    "copied_from_prompt": "it copies the instructions or the example",
    "duplicate": "it repeats another query",
    "malformed": "it is empty or far too long",
    "off_domain_item": "its document strayed from the domain",
}


class RoundLog(BaseModel):
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


@dataclass
class Generated:
    """Everything generated so far; rows of the embeddings follow the lists."""

    items: list[Item]
    queries: list[Query]
    item_emb: np.ndarray
    query_emb: np.ndarray
    kept: list[Pair] = field(default_factory=list)
    dropped: list[DroppedPair] = field(default_factory=list)
    off_domain: set[str] = field(default_factory=set)
    search: Callable | None = None  # the executor's top-k search (None: search_index here)

    def refilter(self, top_k: int, anchors: tuple[list[str], np.ndarray] | None = None) -> None:
        """Round-trip filter every pair; with `anchors` (description and subtopics, and their vectors),
        the pairs of synthetic items that strayed from the domain are dropped as off_domain_item."""
        self.kept, self.dropped = filter_pairs(self.queries, self.items, self.item_emb, self.query_emb, top_k, self.search)
        synthetic = [i for i, it in enumerate(self.items) if it.source == "synthetic"]
        if anchors is None or len(synthetic) < 8:
            return
        check = domain_check([self.items[i].id for i in synthetic], self.item_emb[synthetic], anchors[0], anchors[1], 0.2, 0.3)
        self.off_domain = set(check.off_domain)
        self.dropped += [DroppedPair(**p.model_dump(), reason="off_domain_item") for p in self.kept if p.item_id in self.off_domain]
        self.kept = [p for p in self.kept if p.item_id not in self.off_domain]


def coverage(g: Generated, brief: DomainBrief, formats: list[str]) -> tuple[dict[str, int], dict[str, float]]:
    """Kept pairs per subtopic (synthetic items only) and the filter's pass rate per format."""
    subtopic = {it.id: it.subtopic for it in g.items}
    kept_by = Counter(subtopic.get(p.item_id) for p in g.kept)
    by_subtopic = {s: kept_by.get(s, 0) for s in brief.subtopics} if any(it.subtopic for it in g.items) else {}
    made = Counter(q.format for q in g.queries)
    passed = Counter(p.format for p in g.kept)
    return by_subtopic, {f: passed.get(f, 0) / made[f] for f in formats if made.get(f)}


def _counter_examples(g: Generated, fmt: str, limit: int = 2) -> list[dict]:
    failed = [d for d in g.dropped if d.format == fmt and d.reason in WHY]
    return [{"query": d.query, "why": WHY[d.reason]} for d in failed[:limit]]


def agent_rounds(g: Generated, *, client, prompts, encoder, description: str, brief: DomainBrief, formats: list[str], rounds: int,
                 min_pairs_per_subtopic: int, min_format_pass: float, items_per_round: int, queries_per_round: int, top_k: int,
                 seed: int, log) -> list[RoundLog]:
    """Round 0 is the first filter's result; rounds 1.. add items and queries to `g` in place."""
    texts = list(dict.fromkeys([description, *brief.subtopics]))
    anchors = (texts, encoder.encode(texts))
    g.refilter(top_k, anchors)
    by_subtopic, pass_rate = coverage(g, brief, formats)
    history = [RoundLog(round=0, reason="first round", kept_after=len(g.kept), kept_by_subtopic=by_subtopic, pass_rate_by_format=pass_rate,
                        off_domain_items=sorted(g.off_domain))]
    for r in range(1, rounds):
        thin = [s for s, n in by_subtopic.items() if n < min_pairs_per_subtopic]
        weak = [f for f, rate in pass_rate.items() if rate < min_format_pass]
        if not thin and not weak:
            history[-1].reason += "; targets met"
            break
        entry = RoundLog(round=r, reason="; ".join(filter(None, [
            f"subtopics under {min_pairs_per_subtopic} kept pairs: {', '.join(thin)}" if thin else "",
            f"formats under {min_format_pass:.0%} pass rate: {', '.join(weak)}" if weak else ""])), subtopics=thin, formats=weak)
        try:
            new_items: list[Item] = []
            if thin:
                titles = [it.title for it in g.items if it.subtopic in thin][:6]
                focus = ("Write about a narrower, more specific aspect than before, with concrete names and numbers."
                         + (f" Do not repeat these titles: {'; '.join(titles)}." if titles else ""))
                new_items = synthesize_items(client, prompts, description, brief, items_per_round, seed + 1000 * r,
                                             subtopics=[brief.subtopics.index(s) for s in thin], focus=focus, existing=g.items,
                                             id_prefix=f"syn-r{r}", desc=f"round {r} items")
                if new_items:
                    g.items += new_items
                    g.item_emb = np.vstack([g.item_emb, encoder.encode([it.encode_text() for it in new_items])])
            targets = list(new_items)
            if weak:  # items never queried, then items findable in another format whose weak-format query failed
                findable = {p.item_id for p in g.kept}
                failed = {d.item_id for d in g.dropped if d.format in weak} & findable
                queried = {q.item_id for q in g.queries}
                by_id = {it.id: it for it in g.items}
                targets += [it for it in g.items if it.id not in queried and it.id not in g.off_domain]
                targets += [by_id[i] for i in sorted(failed) if i in by_id]
            ask = formats if not weak else sorted(set(weak) | ({*formats} if new_items else set()), key=formats.index)
            counter = [c for f in weak for c in _counter_examples(g, f)]
            new_queries = write_queries(client, prompts, targets, brief, ask, queries_per_round, seed + 1000 * r,
                                        counter_examples=counter, id_suffix=f"::r{r}", desc=f"round {r} queries") if targets else []
        except BudgetExhausted as exc:
            entry.reason += f"; stopped: {exc}"
            history.append(entry)
            log(f"agent round {r}: {entry.reason}")
            break
        if new_queries:
            g.queries += new_queries
            g.query_emb = np.vstack([g.query_emb, encoder.encode([q.text for q in new_queries])])
        g.refilter(top_k, anchors)
        by_subtopic, pass_rate = coverage(g, brief, formats)
        entry.off_domain_items = sorted(g.off_domain)
        entry.new_items, entry.new_queries, entry.kept_after = len(new_items), len(new_queries), len(g.kept)
        entry.kept_by_subtopic, entry.pass_rate_by_format = by_subtopic, pass_rate
        history.append(entry)
        log(f"agent round {r}: {entry.reason} → {len(new_items)} items, {len(new_queries)} queries, {len(g.kept)} kept pairs")
        if not new_items and not new_queries:
            break
    return history
