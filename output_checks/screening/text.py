"""Identifier screening of text segments with Presidio, fast enough for every cell and every line.

Speed comes from doing less, never from looking at less: each segment asks Presidio only for the entities it could
hold (no digit, no NHS number; no '@', no e-mail; no capitalised word, no name), spaCy runs its NER component alone
and only where a name could be, and segments go through spaCy in batches. Precision comes from context: a PERSON
span made of drug, gene or eponym words, or on a reference-list line, is not a person (`vocabulary.yaml`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from output_checks.masking import mask
from output_checks.screening.codes import Reading, codes, column_of_codes, printed_column, text_of_codes
from output_checks.screening.pseudonyms import shaped_pseudonyms
from output_checks.screening.terms import NameTerms
from output_checks.verdicts import Finding, Verdict

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine, RecognizerResult

    from output_checks.policy import Policy
    from output_checks.screening.known import KnownIdentifiers

HERE = Path(__file__).parent
RECOGNIZERS = "recognizers.yaml"
VOCABULARY = "vocabulary.yaml"
BATCH = 256  # segments per spaCy batch (table cells are short) ...
BATCH_CHARS = 64_000  # ... or this much text, so that a file with findings stops early
MAX_SEGMENT = 20_000  # characters: longer text is cut at line ends so that spaCy's memory stays small

LABELS = {
    "PERSON": "a person's name",
    "UK_NHS": "an NHS number",
    "MRN": "a hospital record number",
    "DATE_OF_BIRTH": "a date of birth",
    "EMAIL_ADDRESS": "an e-mail address",
    "PHONE_NUMBER": "a telephone number",
    "UK_POSTCODE": "a full postcode",
    "ADDRESS": "a street address",
    "UK_NINO": "a National Insurance number",
    "IBAN_CODE": "a bank account (IBAN)",
    "CREDIT_CARD": "a card number",
    "IP_ADDRESS": "an IP address",
    "ENCLAVE_PSEUDONYM": "a pseudonym-shaped patient id: individual-level data",
}
# What a segment must contain for an entity to be possible at all (the cheap prefilter).
NEEDS_DIGIT = {"UK_NHS", "MRN", "PHONE_NUMBER", "UK_POSTCODE", "ADDRESS", "UK_NINO", "IBAN_CODE", "CREDIT_CARD",
               "IP_ADDRESS", "ES_NIF", "ES_NIE", "IT_FISCAL_CODE", "PL_PESEL", "FI_PERSONAL_IDENTITY_CODE",
               "SE_PERSONNUMMER", "DE_TAX_ID", "FR_INSEE", "IE_PPS", "BE_NATIONAL_NUMBER", "NL_BSN"}  # fmt: skip
NEEDS_AT = {"EMAIL_ADDRESS"}
NEEDS_CAPITAL = {"PERSON"}
DIGIT = re.compile(r"\d")
CAPITALISED = re.compile(r"\b[A-Z][a-z'\u00C0-\u024F]+\b")
BIRTH_WORD = re.compile(r"(?i)\b(born|birth|d\.?o\.?b)")
TITLE_BEFORE = re.compile(r"(?i)\b(mr|mrs|ms|miss|mx|dr|prof|sir|dame|patient|mother|father|son|daughter)\.?\s*$")
CITATION = re.compile(r"\bet al\b|\bdoi\s*:|doi\.org|\bpmid\b|\bisbn\b")
YEAR_CITED = re.compile(r"\b(19|20)\d{2}\b\s*[;:,.)]|\(\s*(19|20)\d{2}\s*\)")
SHAPED_MANY = 3  # pseudonym-shaped tokens in one text or column that make a list of people, not a stray id
COLUMN_IN_LOCATION = re.compile(r"column '(.*?)'(?:, row \d+)?$")
# Entities whose recogniser validates a checksum: a value valid as such and as a code is ambiguous, not a code.
CHECKSUMMED = {"UK_NHS", "CREDIT_CARD", "PL_PESEL", "SE_PERSONNUMMER", "NL_BSN", "FI_PERSONAL_IDENTITY_CODE",
               "DE_TAX_ID", "ES_NIF", "ES_NIE", "IT_FISCAL_CODE"}  # fmt: skip
CODE_SENSITIVE = NEEDS_DIGIT - {"ADDRESS", "UK_POSTCODE", "IP_ADDRESS", "IBAN_CODE", "UK_NINO"}
AUTHOR_LIST = re.compile(r"^\s*(\[?\d+[\].]\s*)?([A-Z][A-Za-z'\-]+ [A-Z]{1,3}[,.]\s*){2,}")


NAME_PARTICLES = {"van", "von", "der", "den", "de", "la", "le", "du", "di", "da", "del", "della", "bin", "bint", "al",
                  "el",
                  "ter", "ten", "y", "e", "dos", "das"}  # fmt: skip


def _elfproef(value: str) -> bool:
    """The Dutch citizen service number's 11-check (weights 9..2, then -1)."""
    digits = [int(d) for d in re.sub(r"\D", "", value)]
    if len(digits) != 9:
        return False
    total = sum(w * d for w, d in zip(range(9, 1, -1), digits[:8], strict=True)) - digits[8]
    return total % 11 == 0 and total != 0


def _uk_phone_length(value: str) -> bool:
    digits = re.sub(r"\D", "", value)
    if digits.startswith("44"):
        digits = "0" + digits[2:].removeprefix("0")
    return digits.startswith("0") and len(digits) in (10, 11)


def _public_ip(value: str) -> bool:
    """Loopback, private and documentation addresses (127.0.0.1 in a kernel banner) identify no one."""
    import ipaddress

    try:
        address = ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return True
    return address.is_global


@dataclass(frozen=True)
class Segment:
    """A piece of text and where it sits in the file ("line 12", "cell 3, output 1", "column 'notes', row 1837")."""

    location: str
    text: str
    column: str | None = None  # the header of the table column a cell sits under, when the caller knows it

    def column_name(self) -> str | None:
        """The column header, from `column` or from a table location ("..., column 'snomed_code', row 4")."""
        if self.column is not None:
            return self.column
        found = COLUMN_IN_LOCATION.search(self.location)
        return found[1] if found else None


def split_long(segment: Segment) -> Iterator[Segment]:
    text = segment.text
    if len(text) <= MAX_SEGMENT:
        yield segment
        return
    start = 0
    while start < len(text):
        end = min(len(text), start + MAX_SEGMENT)
        if end < len(text):
            cut = text.rfind("\n", start + MAX_SEGMENT // 2, end)
            end = cut + 1 if cut > 0 else end
        yield Segment(segment.location, text[start:end])
        start = end


class Screener:
    """Presidio's AnalyzerEngine over Enclave's recognisers; one per process, built once (model load ~1 s)."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.entities = list(policy.identifier_entities)
        config = yaml.safe_load((HERE / RECOGNIZERS).read_text())
        self.min_scores: dict[str, float] = config.get("min_scores", {})
        vocabulary = yaml.safe_load((HERE / VOCABULARY).read_text())
        self.terms = NameTerms(vocabulary)
        self.organisations = {w.lower() for w in vocabulary["organisations"]}
        self.staff_context = [w.lower() for w in vocabulary["staff_context"]]
        self.reference_markers = [m.lower() for m in vocabulary["reference_markers"]]
        self.floor = min([policy.identifier_min_score, *self.min_scores.values()])

    @cached_property
    def analyzer(self) -> AnalyzerEngine:
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.predefined_recognizers import SpacyRecognizer
        from presidio_analyzer.recognizer_registry import RecognizerRegistryProvider

        from output_checks.screening.nlp import NerOnlyNlpEngine
        from output_checks.screening.offline import use_bundled_public_suffix_list

        use_bundled_public_suffix_list()
        engine = NerOnlyNlpEngine()
        engine.load()
        config = yaml.safe_load((HERE / RECOGNIZERS).read_text())
        config.pop("min_scores", None)
        registry = RecognizerRegistryProvider(registry_configuration=config).create_recognizer_registry()
        if self.policy.recognizers_file is not None:
            extra = RecognizerRegistry(supported_languages=["en"])
            extra.add_recognizers_from_yaml(self.policy.recognizers_file)
            for recognizer in extra.recognizers:
                registry.add_recognizer(recognizer)
                self.entities += [e for e in recognizer.supported_entities if e not in self.entities]
        registry.add_recognizer(SpacyRecognizer(supported_entities=["PERSON"]))
        return AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=["en"])

    def warm(self) -> None:
        """Load the model and recognisers now and run them once (first calls compile regexes lazily)."""
        list(self.screen_segments([Segment("warm-up", "Dr Ann Example, 0113 496 0000, ann@example.org")], check="-"))

    # ---------------------------------------------------------------------------------------------- prefilter

    def _possible(self, text: str) -> list[str]:
        digit = DIGIT.search(text) is not None
        at = "@" in text
        capital = CAPITALISED.search(text) is not None
        out = []
        for entity in self.entities:
            if entity in NEEDS_DIGIT and not digit:
                continue
            if entity in NEEDS_AT and not at:
                continue
            if entity in NEEDS_CAPITAL and not capital:
                continue
            if entity == "DATE_OF_BIRTH" and not (digit or BIRTH_WORD.search(text)):
                continue
            out.append(entity)
        return out

    # ---------------------------------------------------------------------------------------------- context

    def _is_person(self, text: str, result: RecognizerResult, line: str, line_start: int) -> bool:
        span = text[result.start : result.end]
        words = re.findall(r"[A-Za-z\u00C0-\u024F'\-]+", span)
        if not words or any(ch.isdigit() for ch in span) or any(ch in span for ch in "_=()[]{}<>/\\@#"):
            return False
        before = text[max(0, result.start - 60) : result.start]
        if self.terms.not_a_name(span, before, text[result.end : result.end + 60]):
            return False  # a method, drug, gene, disease or header word: a term, not a person
        if all(w.isupper() for w in words) and len(span) <= 10:  # gene symbols, acronyms
            return False
        if not all(w[0].isupper() or w.lower() in NAME_PARTICLES for w in words):
            return False  # names are written capitalised ("Sed volutpat" is Latin, not a person)
        if self._reference_line(line):
            return False
        following = re.match(r" +([A-Za-z]+)", text[result.end : result.end + 30])
        if following and following[1].lower() in self.organisations:
            return False  # "Queen Elizabeth" in "Queen Elizabeth Hospital"
        before = before[-12:]
        # A lone capitalised word is not a name without a title in front of it.
        return len(words) > 1 or TITLE_BEFORE.search(before) is not None

    def _reference_line(self, line: str) -> bool:
        """A line of a reference list: author names there are authors, not patients."""
        low = line.lower()
        if CITATION.search(low) or AUTHOR_LIST.match(line):
            return True
        journal = any(re.search(rf"\b{re.escape(m)}\b", low) for m in self.reference_markers)
        return journal and YEAR_CITED.search(low) is not None

    def _accept(self, text: str, result: RecognizerResult) -> bool:
        if result.score < self.min_scores.get(result.entity_type, self.policy.identifier_min_score):
            return False
        if result.entity_type in NEEDS_DIGIT and result.entity_type not in ("ADDRESS", "UK_POSTCODE"):
            before = text[max(0, result.start - 2) : result.start]
            after = text[result.end : result.end + 2]
            if before.endswith(".") or re.match(r"\d?\.$", before) or re.match(r"\.\d|[eE][-+]?\d", after):
                return False  # digits of a decimal number (a p-value, a coefficient), not an identifier
            if before[-1:].isdigit() or after[:1].isdigit():
                return False  # a piece of a longer number (a timestamp, an accession), not an identifier
        if result.entity_type == "PHONE_NUMBER" and not _uk_phone_length(text[result.start : result.end]):
            return False
        if result.entity_type == "NL_BSN" and not _elfproef(text[result.start : result.end]):
            return False
        if result.entity_type == "IP_ADDRESS":
            around = text[max(0, result.start - 1) : result.start] + text[result.end : result.end + 2]
            if re.search(r"^[\d.]|^.?\.\d", around):
                return False  # part of a longer dotted number: a DICOM UID or a version, not an address
            return _public_ip(text[result.start : result.end])
        if result.entity_type == "PERSON":
            line_start = text.rfind("\n", 0, result.start) + 1
            line_end = text.find("\n", result.end)
            line = text[line_start : line_end if line_end >= 0 else len(text)]
            return self._is_person(text, result, line, line_start)
        return True

    # ---------------------------------------------------------------------------------------------- screening

    def screen_segments(
        self, segments: Iterable[Segment], *, check: str, known: KnownIdentifiers | None = None
    ) -> Iterator[Finding]:
        """Findings (all block) for every identifier in `segments`, in order."""
        pieces = (piece for segment in segments for piece in split_long(segment))
        batch: list[Segment] = []
        size = 0
        for piece in pieces:
            batch.append(piece)
            size += len(piece.text)
            if len(batch) >= BATCH or size >= BATCH_CHARS:
                yield from self._screen_batch(batch, check, known)
                batch, size = [], 0
        if batch:
            yield from self._screen_batch(batch, check, known)

    def _screen_batch(self, batch: list[Segment], check: str, known: KnownIdentifiers | None) -> Iterator[Finding]:
        analyzer = self.analyzer  # built first: a policy's extra recognisers add entities
        wanted = [self._possible(s.text) for s in batch]
        todo = [(s, w) for s, w in zip(batch, wanted, strict=True) if w]
        reported: set[int] = set()
        if known is not None:
            for i, segment in enumerate(batch):
                for f in known.findings(segment, check="known_identifiers"):
                    reported.add(i)
                    yield f
        if "identifiers" not in self.policy.checks:
            return
        if "ENCLAVE_PSEUDONYM" in self.entities:
            yield from self._shaped(batch, reported, check)
        if not todo:
            return
        coded_columns = self._coded_columns(batch)
        artifacts = analyzer.nlp_engine.artifacts([s.text for s, _ in todo], [("PERSON" in w) for _, w in todo])
        for (segment, entities), nlp_artifacts in zip(todo, artifacts, strict=True):
            results = analyzer.analyze(
                segment.text, language="en", entities=entities, nlp_artifacts=nlp_artifacts, score_threshold=self.floor
            )
            seen: set[tuple[str, str]] = set()
            column = segment.column_name()
            for result in sorted(results, key=lambda r: r.start):
                if not self._accept(segment.text, result):
                    continue
                value = segment.text[result.start : result.end]
                key = (result.entity_type, value)
                if key in seen:
                    continue
                seen.add(key)
                label = LABELS.get(result.entity_type, result.entity_type.replace("_", " ").lower())
                verdict = Verdict.BLOCK
                if result.entity_type in CODE_SENSITIVE:
                    reading = self._code_reading(segment.text, result, column, column in coded_columns)
                    if reading is Reading.CODE:
                        continue
                    if reading is Reading.BOTH:
                        system = codes().label(codes().fits(value)[0])
                        verdict, label = Verdict.REVIEW, f"{label}, or a {system} (valid as both; no context says)"
                if result.entity_type == "PERSON" and self._staff_line(segment.text, result.start):
                    verdict, label = Verdict.REVIEW, "a name where staff are listed (authors, acknowledgements)"
                yield Finding(
                    check=check,
                    verdict=verdict,
                    message=f"{label} ({mask(value)}; {result.entity_type}, score {result.score:.2f})",
                    location=segment.location,
                )

    @staticmethod
    def _shaped(batch: list[Segment], reported: set[int], check: str) -> Iterator[Finding]:
        """Pseudonym-shaped tokens; one alone is review, several in one text or table column are ids of people
        listed row by row (a column of another project's pseudonyms, re-keyed): block."""
        groups: dict[str, list[Finding]] = {}
        for i, segment in enumerate(batch):
            if i in reported:  # the project's own, already reported as such
                continue
            key = segment.column_name() or segment.location
            groups.setdefault(key, []).extend(shaped_pseudonyms(segment, check))
        for found in groups.values():
            many = sum(f.verdict is Verdict.REVIEW for f in found) >= SHAPED_MANY
            for f in found:
                if many and f.verdict is Verdict.REVIEW:
                    message = f"{f.message}: one of several, ids listed row by row"
                    f = Finding(f.check, Verdict.BLOCK, message, f.location)
                yield f

    @staticmethod
    def _coded_columns(batch: list[Segment]) -> set[str]:
        """Columns of the batch (a table's cells come column by column) whose numbers are mostly SNOMED CT ids."""
        by_column: dict[str, list[str]] = {}
        for segment in batch:
            column = segment.column_name()
            if column is not None:
                by_column.setdefault(column, []).append(segment.text)
        return {c for c, values in by_column.items() if column_of_codes(values)}

    @staticmethod
    def _code_reading(text: str, result: RecognizerResult, column: str | None, coded: bool) -> Reading:
        line_start = text.rfind("\n", 0, result.start) + 1
        line_end = text.find("\n", result.end)
        line = text[line_start : line_end if line_end >= 0 else len(text)]
        if column is None:  # a printed table (Markdown, tab-separated): its header names the column
            column = printed_column(text, line_start, result.start)
        coded = coded or text_of_codes(text)
        return codes().read(
            text[result.start : result.end],
            column=column,
            line=line,
            at=result.start - line_start,
            column_of_codes=coded,
            validated=result.entity_type in CHECKSUMMED,
        )

    def mask_identifiers(self, texts: list[str], known: KnownIdentifiers | None = None) -> dict[str, str]:
        """{text: text with every identifier in it masked} for the texts that hold one (report backstop)."""
        analyzer = self.analyzer
        out: dict[str, str] = {}
        for text in texts:
            spans: list[tuple[int, int]] = []
            entities = self._possible(text)
            if entities and "identifiers" in self.policy.checks:
                artifacts = analyzer.nlp_engine.artifacts([text], ["PERSON" in entities])[0]
                results = analyzer.analyze(
                    text, language="en", entities=entities, nlp_artifacts=artifacts, score_threshold=self.floor
                )
                spans += [(r.start, r.end) for r in results if self._accept(text, r)]
            if known is not None:
                for match in known.matches(text):
                    start = match.start if match.start >= 0 else text.find(match.text)
                    if start >= 0:
                        spans.append((start, start + len(match.text)))
            if spans:
                masked = text
                for start, end in sorted(spans, reverse=True):
                    masked = masked[:start] + mask(masked[start:end]) + masked[end:]
                out[text] = masked
        return out

    def _staff_line(self, text: str, at: int) -> bool:
        start = text.rfind("\n", 0, at) + 1
        end = text.find("\n", at)
        line = text[start : end if end >= 0 else len(text)].lower()
        return any(word in line for word in self.staff_context)
