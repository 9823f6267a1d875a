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
                items.append({"title": f"{topic} study {k}", "text": f"This study {k} of {topic} measured {a} and {b} in {c} samples, finding effect {k}."})
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
        raise AssertionError(f"unexpected schema {title}")
