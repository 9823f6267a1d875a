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

from retable.agent.filter import filter_pairs
from retable.agent.items import synthesize_items
from retable.agent.queries import write_queries
from retable.errors import BudgetExhausted
from retable.domain import domain_check
from retable.records import DomainBrief, DroppedPair, Item, Pair, Query, RoundLog

ROUNDS_VERSION = 4  # part of the filter stage's fingerprint: raise it when the loop's choices change

WHY = {
    "round_trip_rank": "neither the frozen encoder nor BM25 found its document in the top results",
    "copied_from_item": "it copies a sentence of the document",
    "copied_from_prompt": "it copies the instructions or the example",
    "duplicate": "it repeats another query",
    "unrelated_to_item": "it shares no word with the document or the domain",
    "malformed": "it is empty or far too long",
    "off_domain_item": "its document strayed from the domain",
}


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
    search: Callable | None = None  # the executor's top-k search (None: retrieval/dense.py here)

    def refilter(self, top_k: int, anchors: tuple[list[str], np.ndarray] | None = None, seed_share: float = 0.2, ratio: float = 0.3,
                 domain_text: str = "") -> None:
        """Round-trip filter every pair; with `anchors` (description and subtopics, and their vectors),
        the pairs of synthetic items that strayed from the domain are dropped as off_domain_item
        (`seed_share` and `ratio` are the audit's domain settings, so filter and audit agree)."""
        self.kept, self.dropped = filter_pairs(self.queries, self.items, self.item_emb, self.query_emb, top_k, self.search, domain_text)
        synthetic = [i for i, it in enumerate(self.items) if it.source == "synthetic"]
        if anchors is None or len(synthetic) < 8:
            return
        check = domain_check([self.items[i].id for i in synthetic], self.item_emb[synthetic], anchors[0], anchors[1], seed_share, ratio)
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


def _round_items(g: Generated, ctx: _Loop, r: int, thin: list[str]) -> list[Item]:
    """New items for the thin subtopics, about a narrower aspect and without repeating earlier titles."""
    if not thin:
        return []
    titles = [it.title for it in g.items if it.subtopic in thin][:6]
    focus = ("Write about a narrower, more specific aspect than before, with concrete names and numbers."
             + (f" Do not repeat these titles: {'; '.join(titles)}." if titles else ""))
    new_items = synthesize_items(ctx.client, ctx.prompts, ctx.description, ctx.brief, ctx.config.round_items, ctx.config.seed + 1000 * r,
                                 subtopics=[ctx.brief.subtopics.index(s) for s in thin], focus=focus, existing=g.items,
                                 id_prefix=f"syn-r{r}", desc=f"round {r} items")
    if new_items:
        g.items += new_items
        g.item_emb = np.vstack([g.item_emb, ctx.encoder.encode([it.encode_text() for it in new_items])])
    return new_items


def _round_queries(g: Generated, ctx: _Loop, r: int, new_items: list[Item], weak: list[str]) -> list[Query]:
    """Queries for the new items, and for the weak formats (with failed queries as counter-examples) on
    items never queried, then on items findable in another format whose weak-format query failed."""
    formats = ctx.config.query_formats
    targets = list(new_items)
    if weak:
        findable = {p.item_id for p in g.kept}
        failed = {d.item_id for d in g.dropped if d.format in weak} & findable
        queried = {q.item_id for q in g.queries}
        by_id = {it.id: it for it in g.items}
        targets += [it for it in g.items if it.id not in queried and it.id not in g.off_domain]
        targets += [by_id[i] for i in sorted(failed) if i in by_id]
    if not targets:
        return []
    ask = formats if not weak else sorted(set(weak) | ({*formats} if new_items else set()), key=formats.index)
    counter = [c for f in weak for c in _counter_examples(g, f)]
    new_queries = write_queries(ctx.client, ctx.prompts, targets, ctx.brief, ask, ctx.config.round_queries, ctx.config.seed + 1000 * r,
                                counter_examples=counter, id_suffix=f"::r{r}", desc=f"round {r} queries")
    if new_queries:
        g.queries += new_queries
        g.query_emb = np.vstack([g.query_emb, ctx.encoder.encode([q.text for q in new_queries])])
    return new_queries


@dataclass
class _Loop:
    client: object
    prompts: object
    encoder: object
    description: str
    brief: DomainBrief
    config: object
    anchors: tuple

    def refilter(self, g: Generated) -> tuple[dict[str, int], dict[str, float]]:
        c = self.config
        b = self.brief
        g.refilter(c.filter_top_k, self.anchors, c.audit.domain_seed_share, c.audit.domain_ratio,
                   domain_text=" ".join([self.description, *b.subtopics, *b.vocabulary, *b.item_kinds]))
        return coverage(g, self.brief, c.query_formats)


def agent_rounds(g: Generated, *, client, prompts, encoder, description: str, brief: DomainBrief, config, log) -> list[RoundLog]:
    """Round 0 is the first filter's result; rounds 1.. add items and queries to `g` in place, until the
    targets (`min_pairs_per_subtopic`, `min_format_pass`) are met or the rounds or the token budget run out."""
    texts = list(dict.fromkeys([description, *brief.subtopics]))
    ctx = _Loop(client, prompts, encoder, description, brief, config, (texts, encoder.encode(texts)))
    by_subtopic, pass_rate = ctx.refilter(g)
    history = [RoundLog(round=0, reason="first round", kept_after=len(g.kept), kept_by_subtopic=by_subtopic, pass_rate_by_format=pass_rate,
                        off_domain_items=sorted(g.off_domain))]
    for r in range(1, config.rounds):
        thin = [s for s, n in by_subtopic.items() if n < config.min_pairs_per_subtopic]
        weak = [f for f, rate in pass_rate.items() if rate < config.min_format_pass]
        if not thin and not weak:
            history[-1].reason += "; targets met"
            break
        entry = RoundLog(round=r, reason="; ".join(filter(None, [
            f"subtopics under {config.min_pairs_per_subtopic} kept pairs: {', '.join(thin)}" if thin else "",
            f"formats under {config.min_format_pass:.0%} pass rate: {', '.join(weak)}" if weak else ""])), subtopics=thin, formats=weak)
        try:
            new_items = _round_items(g, ctx, r, thin)
            new_queries = _round_queries(g, ctx, r, new_items, weak)
        except BudgetExhausted as exc:
            entry.reason += f"; stopped: {exc}"
            history.append(entry)
            log(f"agent round {r}: {entry.reason}")
            break
        by_subtopic, pass_rate = ctx.refilter(g)
        entry.off_domain_items = sorted(g.off_domain)
        entry.new_items, entry.new_queries, entry.kept_after = len(new_items), len(new_queries), len(g.kept)
        entry.kept_by_subtopic, entry.pass_rate_by_format = by_subtopic, pass_rate
        history.append(entry)
        log(f"agent round {r}: {entry.reason} → {len(new_items)} items, {len(new_queries)} queries, {len(g.kept)} kept pairs")
        if not new_items and not new_queries:
            break
    return history
