"""A deterministic responder for FakeLLM that writes plausible replies for each shipped task, so
the whole pipeline runs without a model."""

from __future__ import annotations

import json
import re

TOPICS = ["protein folding", "gene expression", "vaccine trials", "gut bacteria", "heart disease", "sleep and memory"]
WORDS = {
    "protein folding": "chaperone misfolding amyloid structure residue helix".split(),
    "gene expression": "transcription promoter enhancer mrna silencing methylation".split(),
    "vaccine trials": "antibody placebo efficacy dose immunity adjuvant".split(),
    "gut bacteria": "microbiome colon probiotic fiber metabolite strain".split(),
    "heart disease": "artery cholesterol statin infarction pressure plaque".split(),
    "sleep and memory": "hippocampus insomnia consolidation dream melatonin recall".split(),
}

# words shared by every topic, so items differ by more than their topic words
GENERIC = ("mice adults children twins nurses smokers athletes veterans infants elderly women men patients donors "
           "volunteers cells organoids biopsies rats zebrafish").split()
OUTCOMES = "rose fell doubled halved stalled varied recovered persisted vanished shifted".split()


def _tag(text: str, tag: str) -> str:
    found = re.findall(rf"<{tag}>(.*?)</{tag}>", text, re.S)
    return found[-1].strip() if found else ""  # the last one: earlier ones are few-shot examples


class Responder:
    def __init__(self):
        self.n = 0

    def __call__(self, messages, schema, seed: int | None = None) -> str:
        """With `seed` (the fake server passes the request's), the reply depends on the request
        alone, not on the order of calls: a resumed run gets the same replies."""
        self.n += 1
        base = self.n if seed is None else seed % 100_000
        user = messages[-1]["content"]
        title = schema.get("title")
        if title == "BriefReply":
            return json.dumps({
                "subtopics": TOPICS, "item_kinds": ["abstract"], "vocabulary": ["cohort", "trial"],
                "personas": [{"name": "student", "intent": "learn the basics"}, {"name": "clinician", "intent": "find evidence"}],
            })
        if title == "ItemsReply":
            topic = _tag(user, "subtopic")
            words = WORDS.get(topic, topic.split())
            items = []
            for j in range(3):
                k = base * 3 + j
                a, b, c = words[k % len(words)], words[(k + 2) % len(words)], words[(k + 3) % len(words)]
                who, how = GENERIC[(7 * k) % len(GENERIC)], OUTCOMES[(3 * k) % len(OUTCOMES)]
                items.append({"title": f"{topic} study {k}", "text": f"This study {k} of {topic} measured {a} and {b} in {c} samples from {who}; "
                                                                     f"{a} {how}, finding effect {k}."})
            return json.dumps({"items": items})
        if title == "QueriesReply":
            doc = _tag(user, "document").split()
            out = {}
            for f in schema["required"]:
                if f == "question":
                    out[f] = f"what did {' '.join(doc[:4])} find about {doc[-7]}?"
                else:
                    out[f] = f"{' '.join(doc[:4])} {doc[-7]}"
            return json.dumps(out)
        if title == "JudgeReply":  # a toy judge: answerable when most query words occur in the document
            query, doc = _tag(user, "query").lower(), _tag(user, "document").lower()
            words = [w.strip("?.,") for w in query.split() if len(w.strip("?.,")) > 3]
            share = sum(w in doc for w in words) / max(1, len(words))
            return json.dumps({"reason": f"{share:.0%} of the query words are in the document", "answerable": share >= 0.6})
        raise AssertionError(f"unexpected schema {title}")
