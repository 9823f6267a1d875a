"""Small models often parrot their prompt: the few-shot example or the instructions themselves.
`Echo` remembers the words of a rendered prompt outside its data tags (the description, subtopic
or document the user supplied), and tells when a generated text mostly repeats them."""

from __future__ import annotations

import re

from retable.llm.base import Message

DATA_TAGS = ("domain", "subtopic", "document")
_DATA = re.compile(r"<(%s)>.*?</\1>" % "|".join(DATA_TAGS), re.S)


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def trigrams(tokens: list[str]) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + 3]) for i in range(len(tokens) - 2)}


class Echo:
    """Example: with a prompt that shows "garlic shrimp quick dinner" as an example query,
    Echo(messages).repeats("garlic shrimp quick dinner") is True and
    Echo(messages).repeats("statin therapy breast cancer") is False."""

    def __init__(self, messages: list[Message], threshold: float = 0.5):
        tokens = words(" ".join(_DATA.sub(" ", m["content"]) for m in messages))
        self.grams = trigrams(tokens)
        self.text = " ".join(tokens)
        self.threshold = threshold
        # the real data is the last occurrence of each tag; earlier ones are few-shot examples
        joined = "\n".join(m["content"] for m in messages)
        last = {m.group(1): m for m in _DATA.finditer(joined)}
        self.data_words = set(words(" ".join(m.group(0) for m in last.values())))
        outside = joined
        for m in sorted(last.values(), key=lambda m: -m.start()):
            outside = outside[: m.start()] + " " + outside[m.end() :]
        self.prompt_only = set(words(outside)) - self.data_words

    def leaks(self, text: str) -> bool:
        """True when the text's longer words come from the prompt (its example or instructions) and
        not from the data: at least 3 of them, or half. Catches a copied example mixed with the
        real topic ("I am looking for a quick electric car recipe with lemon")."""
        long_words = [w for w in words(text) if len(w) >= 4]
        leaked = [w for w in long_words if w in self.prompt_only]
        return bool(long_words) and (len(leaked) >= 3 or len(leaked) / len(long_words) >= 0.5)

    def repeats(self, text: str) -> bool:
        tokens = words(text)
        if not tokens:
            return False
        if len(tokens) < 3:
            return " ".join(tokens) in self.text
        grams = trigrams(tokens)
        return len(grams & self.grams) / len(grams) >= self.threshold
