"""Is the synthetic data faithful? Four checks:

- an LLM judge reads a sample of kept pairs and as many pairs the filter dropped for rank, plus
  controls whose answer is known: an item's opening words with that item (yes) and with another
  item (no). A judge that cannot tell the controls apart is reported as uninformative instead of
  being trusted (it must say yes more often on the matching controls, one-sided Fisher exact
  p < 0.05, and by at least `judge_informative`);
- retriever agreement: the share of kept pairs whose item is (still) in the frozen or BM25 top k;
- facts in a query that its item does not contain (numbers, capitalised names);
- items that left the domain: far from the items most similar to the description."""

from __future__ import annotations

import random
import re
from typing import Annotated

import numpy as np
from pydantic import BaseModel, StringConstraints
from scipy.stats import fisher_exact
from sklearn.metrics import cohen_kappa_score
from tqdm import tqdm

from retable.metrics import positive_ranks
from retable.llm import LLMClient
from retable.prompts import Prompts
from retable.errors import InvalidReply
from retable.records import DroppedPair, Item, Pair
from retable.retrieval.lexical import bm25_finds

MAX_DOC_CHARS = 1200


class JudgeReply(BaseModel):
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
    answerable: bool


class Judged(BaseModel):
    kind: str  # kept | dropped | control_yes | control_no
    query: str
    item_id: str
    answerable: bool | None  # None: the judge gave no valid reply
    reason: str = ""


class JudgeSummary(BaseModel):
    judged: list[Judged]
    yes_kept: float | None
    yes_dropped: float | None
    yes_control: float | None  # on control_no pairs; wanted near 0
    yes_control_match: float | None  # on control_yes pairs; wanted near 1
    n_kept: int
    control_p: float | None  # one-sided Fisher exact test: yes more often on matching than on mismatched controls
    informative: bool
    kappa_with_filter: float | None  # Cohen's kappa, judge vs filter, on the kept and dropped samples
    invalid: int


def _yes(judged: list[Judged], kind: str) -> tuple[float | None, int]:
    votes = [j.answerable for j in judged if j.kind == kind and j.answerable is not None]
    return (float(np.mean(votes)) if votes else None), len(votes)


def judge_pairs(client: LLMClient, prompts: Prompts, kept: list[Pair], dropped: list[DroppedPair], items: list[Item],
                n: int, seed: int, informative_gap: float) -> JudgeSummary:
    rng = random.Random(seed + 7)
    by_id = {it.id: it for it in items}
    kept_s = rng.sample(kept, min(n, len(kept)))
    rank_dropped = [d for d in dropped if d.reason == "round_trip_rank"]
    dropped_s = rng.sample(rank_dropped, min(n // 2, len(rank_dropped)))
    controls = []
    for item in rng.sample(items, min(len(items), n)):
        snippet = " ".join((item.title or item.text).split()[:12])
        other = rng.choice(items)
        controls.append(("control_yes", snippet, item.id))
        if other.id != item.id:
            controls.append(("control_no", snippet, other.id))
    todo = [("kept", p.query, p.item_id) for p in kept_s] + [("dropped", p.query, p.item_id) for p in dropped_s] + controls
    judged: list[Judged] = []
    for i, (kind, query, item_id) in enumerate(tqdm(todo, desc="judge", unit="pair")):
        messages = prompts.render("judge", query=query, document=by_id[item_id].encode_text()[:MAX_DOC_CHARS])
        try:
            reply = client.structured(messages, JudgeReply, seed=seed + 7919 * i)
            judged.append(Judged(kind=kind, query=query, item_id=item_id, answerable=reply.answerable, reason=reply.reason))
        except InvalidReply:
            judged.append(Judged(kind=kind, query=query, item_id=item_id, answerable=None))
    yes_kept, n_kept = _yes(judged, "kept")
    yes_dropped, _ = _yes(judged, "dropped")
    yes_control, _ = _yes(judged, "control_no")
    yes_match, _ = _yes(judged, "control_yes")
    votes = {k: [j.answerable for j in judged if j.kind == k and j.answerable is not None] for k in ("control_yes", "control_no")}
    p_value = None
    if votes["control_yes"] and votes["control_no"]:
        table = [[sum(v), len(v) - sum(v)] for v in (votes["control_yes"], votes["control_no"])]
        p_value = float(fisher_exact(table, alternative="greater").pvalue)
    informative = p_value is not None and p_value < 0.05 and yes_match - yes_control >= informative_gap
    with_filter = [(j.answerable, j.kind == "kept") for j in judged if j.kind in ("kept", "dropped") and j.answerable is not None]
    kappa = None
    if len({f for _, f in with_filter}) == 2:
        kappa = float(cohen_kappa_score([f for _, f in with_filter], [a for a, _ in with_filter]))
        kappa = None if np.isnan(kappa) else kappa
    return JudgeSummary(judged=judged, yes_kept=yes_kept, yes_dropped=yes_dropped, yes_control=yes_control, yes_control_match=yes_match,
                        n_kept=n_kept, control_p=p_value,
                        informative=informative, kappa_with_filter=kappa, invalid=sum(j.answerable is None for j in judged))


def retriever_agreement(kept: list[Pair], q_emb: np.ndarray, item_emb: np.ndarray, pos: np.ndarray, top_k: int,
                        item_texts: list[str]) -> float:
    """Share of kept pairs whose item the frozen encoder or BM25 (the teacher's two retrievers) ranks in
    the top k for its query. The filter made this 1 when it ran; less means the pairs were changed after it."""
    if not len(kept):
        return 1.0
    dense = positive_ranks(q_emb @ item_emb.T, pos) < top_k
    return float((dense | bm25_finds(item_texts, [p.query for p in kept], pos, top_k)).mean())


_NUMBER = re.compile(r"\b\d+(?:[.,]\d+)?\b")
_NAME = re.compile(r"(?<![.?!]\s)(?<!^)\b[A-Z][a-zA-Z0-9-]{2,}\b")


def unsupported_facts(query: str, item_text: str) -> list[str]:
    """Numbers and capitalised names (not at the start of a sentence) in the query that its item lacks.

    >>> unsupported_facts("Does Metformin cut risk by 30%?", "metformin lowered the risk by 12%")
    ['30']
    """
    text = item_text.lower()
    found = _NUMBER.findall(query) + _NAME.findall(query)
    return [f for f in dict.fromkeys(found) if f.lower() not in text]
