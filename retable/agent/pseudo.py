"""LLM-free pseudo-queries for every item, each labelled with its source as its format:

- `title`: the title of an item that has a body too;
- `lead`: the body's first sentence, cut to 20 words;
- `last`: the body's last sentence, cut to 20 words (where abstracts state their finding); in a text with
  no sentence ends, its last 20 words;
- `keyphrase`: the item's five most distinctive words (tf·idf over the items), in text order;
- `span`: a random run of 5–12 words from the body after its first sentence.

They cost no LLM call, so every item of a corpus gets some; the teacher labels them like any query.

>>> from retable.records import Item
>>> qs = pseudo_queries([Item(id="a", title="Statins and breast cancer", text="Statins lower mortality. They were studied in Finland.")], seed=1)
>>> [(q.format, q.text) for q in qs][:3]
[('title', 'Statins and breast cancer'), ('lead', 'Statins lower mortality.'), ('last', 'They were studied in Finland.')]
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter

import numpy as np

from retable.config import PSEUDO_FORMATS
from retable.records import Item, Query

LEAD_WORDS = 20
KEY_WORDS = 5
SPAN_WORDS = (5, 12)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(])")


def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN_PLUS

    return frozenset(STOPWORDS_EN_PLUS)


def _content(text: str, stop: frozenset[str]) -> list[str]:
    return [w for w in re.findall(r"\w+", text.lower()) if len(w) >= 3 and not w.isdigit() and w not in stop]


def _first_sentence(text: str) -> tuple[str, str]:
    parts = _SENTENCE_END.split(text.strip(), maxsplit=1)
    return parts[0], parts[1] if len(parts) > 1 else ""


def _rng(item_id: str, seed: int) -> np.random.Generator:
    return np.random.default_rng(int.from_bytes(hashlib.sha256(f"{seed}:{item_id}".encode()).digest()[:8], "little"))


def _keyphrase(text: str, df: Counter, n_items: int, stop: frozenset[str]) -> str:
    tokens = _content(text, stop)
    tf = Counter(tokens)
    weight = {w: c * math.log((1 + n_items) / (1 + df[w])) for w, c in tf.items()}
    top = set(sorted(weight, key=lambda w: (-weight[w], w))[:KEY_WORDS])
    seen: list[str] = []
    for w in tokens:
        if w in top and w not in seen:
            seen.append(w)
    return " ".join(seen)


def _last(lead: str, rest: str) -> str:
    if rest.strip():
        return " ".join(_SENTENCE_END.split(rest.strip())[-1].split()[:LEAD_WORDS])
    words = lead.split()  # no sentence ends: the whole text is its "first sentence"
    return " ".join(words[-LEAD_WORDS:]) if len(words) > LEAD_WORDS else ""


def _span(text: str, rng: np.random.Generator) -> str:
    words = text.split()
    lo, hi = SPAN_WORDS
    if len(words) < lo:
        return ""
    size = int(rng.integers(lo, min(hi, len(words)) + 1))
    start = int(rng.integers(0, len(words) - size + 1))
    return " ".join(words[start:start + size])


def pseudo_queries(items: list[Item], seed: int, formats: tuple[str, ...] = PSEUDO_FORMATS) -> list[Query]:
    """Up to one query of each format per item; ids are `p-<format>-<item id>`."""
    stop = _stopwords()
    df: Counter = Counter()
    for it in items:
        df.update(set(_content(it.encode_text(), stop)))
    out: list[Query] = []
    for it in items:
        lead, rest = _first_sentence(it.text)
        texts = {
            "title": it.title.strip() if it.title.strip() and it.text.strip() else "",
            "lead": " ".join(lead.split()[:LEAD_WORDS]),
            "last": _last(lead, rest),
            "keyphrase": _keyphrase(it.encode_text(), df, len(items), stop),
            "span": _span(rest or it.text, _rng(it.id, seed)),
        }
        for fmt in formats:
            text = texts[fmt]
            if len(_content(text, stop)) >= 2:
                out.append(Query(id=f"p-{fmt}-{it.id}", item_id=it.id, text=text, format=fmt))
    return out
