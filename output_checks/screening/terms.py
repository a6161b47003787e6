"""Statistical and clinical terms that a name recogniser reads as people ("Least Squares", "Kaplan Meier", "Cox",
"Tetralogy of Fallot"). Words that are never names (drugs, genes, methods, table headers) end a PERSON guess; eponyms
that are also people's names (Cox, Fisher, Grace, Martin) end it only in context: a known phrase, or a method or
disease word beside it. A title or a forename keeps it a person. The word lists are `vocabulary.yaml`."""

from __future__ import annotations

import re

WORDS = re.compile(r"[A-Za-z\u00C0-\u024F]+")
TITLES = {"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame", "patient", "mother", "father", "son",
          "daughter", "wife", "husband"}  # fmt: skip
SKIP = {"s", "the", "a", "an", "of"}  # dropped from phrases: "Tetralogy of Fallot" is ("tetralogy", "fallot")


class NameTerms:
    """Judges PERSON spans against the vocabulary: `not_a_name(span, before, after)`."""

    def __init__(self, vocabulary: dict) -> None:
        self.never = {
            w.lower() for key in ("drugs", "genes", "eponyms", "organisations", "clinical") for w in vocabulary[key]
        }
        self.eponyms = {w.lower() for w in vocabulary["eponym_names"]}
        self.context = {w.lower() for w in vocabulary["eponym_context"]}
        phrases = vocabulary["eponym_phrases"]
        self.phrases = [tuple(w for w in WORDS.findall(p.lower()) if w not in SKIP) for p in phrases]

    def not_a_name(self, span: str, before: str, after: str) -> bool:
        """Whether a PERSON guess `span`, with the text `before` and `after` it, is a term and not a person."""
        words = [w.lower() for w in WORDS.findall(span)]
        if not words:
            return True
        if any(w in self.never for w in words):
            return True
        titled = words[0] in TITLES or _last_word(before) in TITLES
        names = [w for w in words if w not in TITLES and len(w) > 1]  # "Mann Whitney U", "Cochran Q"
        if titled or not names or not all(w in self.eponyms or w in self.context for w in names):
            return False  # a title, or a word that is neither eponym nor method (a forename): a person
        eponyms = {w for w in names if w in self.eponyms}
        if eponyms and len(eponyms) < len(names):
            return True  # the method word is in the span: "Cox Proportional Hazards"
        nxt, prev = _next_words(after), _previous_words(before)
        if self._phrase(words, prev, nxt):
            return True
        if len(eponyms) > 1:
            return False  # two eponyms that are no known phrase ("Grace Cox"): a person, whatever follows
        if nxt and (nxt[0] in self.context or (len(nxt[0]) == 1 and nxt[1:2] and nxt[1] in self.context)):
            return True
        return bool(prev) and prev[0] in self.context

    def _phrase(self, words: list[str], prev: list[str], nxt: list[str]) -> bool:
        """The span is, or is inside, a known phrase ("Kaplan" + "-Meier", "Tetralogy of" + "Fallot")."""
        around = [*prev[::-1], *words, *nxt]
        start = len(prev)
        for phrase in self.phrases:
            n = len(phrase)
            for i in range(max(0, start - n + 1), min(start + len(words), len(around) - n + 1)):
                if tuple(around[i : i + n]) == phrase:
                    return True
        return False


# Words joined to the span by spaces or hyphens only (punctuation ends the context: "Grace Martin, Cox model").
NEXT = re.compile(r"^(?:['’]s\b)?[ \t\-]*([A-Za-z]+)(?:[ \t\-]+([A-Za-z]+))?(?:[ \t\-]+([A-Za-z]+))?")
PREVIOUS = re.compile(r"(?:([A-Za-z]+)[ \t\-]+)?([A-Za-z]+)[ \t\-]+(?:(?:of|the)[ \t\-]+)?$")


def _next_words(text: str) -> list[str]:
    m = NEXT.match(text[:60])
    return [w.lower() for w in m.groups() if w] if m else []


def _previous_words(text: str) -> list[str]:
    """Up to two words before, nearest first, "of" and "the" skipped ("Tetralogy of Fallot")."""
    m = PREVIOUS.search(text[-60:])
    return [w.lower() for w in (m[2], m[1]) if w] if m else []


def _last_word(text: str) -> str:
    words = WORDS.findall(text[-12:])
    return words[-1].lower() if words else ""
