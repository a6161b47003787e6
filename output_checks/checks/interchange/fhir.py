"""FHIR (R4) resources, as JSON, NDJSON bulk export or XML: a Patient anywhere (a Bundle's entries, contained
resources, a bulk export's lines) or a clinical resource about a subject is individual-level; MeasureReport
population counts follow the count rules; definitions (ValueSet, CodeSystem, Library, ...) describe no one."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from output_checks.checks.base import Context, finding
from output_checks.checks.interchange.vocabulary import (
    FHIR_CONTAINERS,
    FHIR_DEFINITIONS,
    FHIR_PERSON_LEVEL,
    FHIR_PERSONS,
    FHIR_SUBJECT_FIELDS,
)
from output_checks.verdicts import Finding, Verdict

CHECK = "interchange"
MAX_RESOURCES = 200_000
XML_RESOURCE = re.compile(r"<(?:resource|contained)>\s*<([A-Z][A-Za-z]+)[\s>/]")
XML_ROOT = re.compile(r"<([A-Z][A-Za-z]+)\s[^>]*xmlns=[\"']http://hl7\.org/fhir[\"']")
XML_SUBJECT = re.compile(r"<(subject|patient|beneficiary|individual)>\s*<reference\s+value=")
XML_POPULATION_COUNT = re.compile(r"<population>(?:(?!</population>).)*?<count\s+value=\"(-?\d+)\"", re.DOTALL)
XML_ANSWER = re.compile(r"<answer>")


@dataclass
class Resource:
    type: str
    where: str
    body: dict[str, Any]


def resources(data: Any, where: str = "$", depth: int = 0) -> Iterator[Resource]:
    """Every FHIR resource inside `data` (objects with a resourceType), depth-first, capped."""
    stack: list[tuple[Any, str, int]] = [(data, where, depth)]
    seen = 0
    while stack and seen < MAX_RESOURCES:
        item, at, level = stack.pop()
        if level > 30:
            continue
        if isinstance(item, dict):
            kind = item.get("resourceType")
            if isinstance(kind, str):
                seen += 1
                yield Resource(kind, at, item)
            for key, value in reversed(list(item.items())):
                if isinstance(value, dict | list):
                    stack.append((value, f"{at}.{key}" if re.fullmatch(r"\w{1,40}", str(key)) else at, level + 1))
        elif isinstance(item, list):
            for index in range(len(item) - 1, -1, -1):
                if isinstance(item[index], dict | list):
                    stack.append((item[index], f"{at}[{index}]", level + 1))


def _names_subject(body: dict[str, Any]) -> bool:
    for name in FHIR_SUBJECT_FIELDS:
        value = body.get(name)
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, dict) and (v.get("reference") or v.get("identifier") or v.get("entity")):
                return True
    return False


def _patient_reference(body: dict[str, Any]) -> bool:
    """A reference to a Patient anywhere in the resource (a Provenance's target, a Group's member)."""
    stack: list[Any] = [body]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("reference")
            if isinstance(ref, str) and re.search(r"(^|/)(Patient|Person|RelatedPerson)/", ref):
                return True
            stack.extend(v for v in item.values() if isinstance(v, dict | list))
        elif isinstance(item, list):
            stack.extend(v for v in item if isinstance(v, dict | list))
    return False


def _answered(body: dict[str, Any]) -> bool:
    return '"answer"' in str(body.get("item", ""))[:100_000] or bool(body.get("item"))


def judge(items: Iterator[Resource], ctx: Context) -> Iterator[Finding]:
    """Findings for each resource; individual-level ones are summarised by type (one finding per type)."""
    people: dict[str, list[str]] = {}
    unknown: dict[str, list[str]] = {}
    for resource in items:
        kind, body = resource.type, resource.body
        if kind in FHIR_PERSONS:
            people.setdefault(kind, []).append(resource.where)
        elif kind == "MeasureReport":
            if body.get("type") == "individual" or _names_subject(body):
                people.setdefault("MeasureReport (individual)", []).append(resource.where)
            else:
                yield from measure_counts(body, resource.where, ctx)
        elif kind == "Group":
            if body.get("member") or (body.get("actual") is True and _patient_reference(body)):
                people.setdefault("Group (with members)", []).append(resource.where)
        elif kind == "QuestionnaireResponse":
            if _answered(body) or _names_subject(body):
                people.setdefault(kind, []).append(resource.where)
        elif kind in FHIR_PERSON_LEVEL:
            if _names_subject(body) or _patient_reference(body):
                people.setdefault(kind, []).append(resource.where)
            else:
                unknown.setdefault(f"{kind} without a subject", []).append(resource.where)
        elif kind in FHIR_DEFINITIONS or kind in FHIR_CONTAINERS:
            if kind not in FHIR_CONTAINERS and _patient_reference(body):
                people.setdefault(f"{kind} referring to a patient", []).append(resource.where)
        elif kind == "Binary":
            unknown.setdefault("Binary (opaque content)", []).append(resource.where)
        elif _patient_reference(body):
            people.setdefault(f"{kind} referring to a patient", []).append(resource.where)
        else:
            unknown.setdefault(kind, []).append(resource.where)
    for kind, places in people.items():
        what = "patient-level FHIR resource" if kind in FHIR_PERSONS else "individual-level FHIR resource"
        yield finding(CHECK, Verdict.BLOCK, f"{what}: {len(places)} x {kind}", _places(places))
    for kind, places in unknown.items():
        why = f"FHIR {kind}: not known to be free of individual-level data"
        yield finding(CHECK, Verdict.REVIEW, f"{why} ({len(places)})", _places(places))


def measure_counts(body: dict[str, Any], where: str, ctx: Context) -> Iterator[Finding]:
    """A summary MeasureReport's population counts (groups and strata) under the count rules."""
    counts: list[tuple[str, Any]] = []
    for g, group in enumerate(_list(body.get("group")), start=1):
        for population in _list(group.get("population")):
            counts.append((f"group {g} {_code(population)}", population.get("count")))
        for s, stratifier in enumerate(_list(group.get("stratifier")), start=1):
            for t, stratum in enumerate(_list(stratifier.get("stratum")), start=1):
                where_in = f"group {g} stratifier {s} stratum {t}"
                counts.extend((f"{where_in} {_code(p)}", p.get("count")) for p in _list(stratum.get("population")))
    yield from count_findings(counts, where, ctx)


def count_findings(counts: list[tuple[str, Any]], where: str, ctx: Context) -> Iterator[Finding]:
    threshold = ctx.policy.min_cell_count
    small = [label for label, c in counts if isinstance(c, int) and 0 < c < threshold]
    zeros = [label for label, c in counts if isinstance(c, int) and c == 0]
    if small:
        message = f"{len(small)} population count(s) below {threshold} in a MeasureReport"
        yield finding(CHECK, Verdict.BLOCK, message, f"{where}: " + "; ".join(small[:10]))
    if zeros and ctx.policy.zeros != "pass":
        verdict = Verdict.BLOCK if ctx.policy.zeros == "block" else Verdict.REVIEW
        yield finding(CHECK, verdict, f"{len(zeros)} zero population count(s) in a MeasureReport",
                      f"{where}: " + "; ".join(zeros[:10]))  # fmt: skip


def _list(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _code(population: dict[str, Any]) -> str:
    code = population.get("code")
    codings = _list(code.get("coding")) if isinstance(code, dict) else []
    text = codings[0].get("code") if codings else None
    return f"'{text}'" if isinstance(text, str) and re.fullmatch(r"[\w-]{1,40}", text) else "population"


def _places(places: list[str]) -> str:
    shown = "; ".join(places[:5])
    return shown + (f"; and {len(places) - 5} more" if len(places) > 5 else "")


def xml_resources(text: str) -> Iterator[Finding | Resource]:
    """FHIR XML, read by its element names (no parser, so no entity is ever expanded): the root and every
    entry or contained resource, with whether it names a subject."""
    types = [m.group(1) for m in XML_ROOT.finditer(text[:4096])][:1] + XML_RESOURCE.findall(text)
    subject = bool(XML_SUBJECT.search(text)) or bool(re.search(r"<reference\s+value=\"(\S*/)?Patient/", text))
    for index, kind in enumerate(types):
        body: dict[str, Any] = {}
        if kind in FHIR_PERSON_LEVEL and subject:
            body = {"subject": {"reference": "Patient/?"}}
        if kind == "QuestionnaireResponse" and XML_ANSWER.search(text):
            body = {"item": [{"answer": True}]}
        if kind == "MeasureReport":
            body = {"type": "individual"} if re.search(r"<type\s+value=\"individual\"", text) else {}
        if kind == "Group" and "<member>" in text:
            body = {"member": [True]}
        yield Resource(kind, "root" if index == 0 else f"resource {index + 1}", body)


def xml_counts(text: str) -> list[tuple[str, Any]]:
    return [(f"population {i}", int(c)) for i, c in enumerate(XML_POPULATION_COUNT.findall(text), start=1)]
