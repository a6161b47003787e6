"""HL7 v2.x messages (MSH-headed segments, \\r or newline separated, MLLP framing tolerated): a message with a
patient segment (PID, PV1, OBX, ...) or of a patient event family (ADT, ORU, ORM, ...) is individual-level."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from output_checks.checks.base import Context, finding
from output_checks.checks.interchange.vocabulary import HL7_PATIENT_MESSAGES, HL7_PATIENT_SEGMENTS
from output_checks.screening.text import Segment
from output_checks.verdicts import Finding, Verdict

CHECK = "interchange"
SEGMENT = re.compile(r"[\r\n]+")
SEGMENT_ID = re.compile(r"^[A-Z][A-Z0-9]{2}$")
MAX_SEGMENTS = 500_000


@dataclass
class Message:
    line: int
    type: str = ""
    segments: list[str] = field(default_factory=list)


def messages(text: str) -> Iterator[tuple[Message, list[tuple[int, str]]]]:
    """Each message with its (line, segment) pairs; field separators come from each MSH."""
    current: Message | None = None
    body: list[tuple[int, str]] = []
    sep = "|"
    for number, raw in enumerate(SEGMENT.split(text.replace("\x0b", "\n").replace("\x1c", "\n"))[:MAX_SEGMENTS], 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith(("MSH", "FHS", "BHS")) and len(line) > 3:
            sep = line[3]
        name = line.split(sep, 1)[0]
        if name == "MSH":
            if current is not None:
                yield current, body
            current, body = Message(number), []
            fields = line.split(sep)
            current.type = fields[8].split(line[4:5] or "^")[0] if len(fields) > 8 else ""
        if current is not None and SEGMENT_ID.match(name):
            current.segments.append(name)
            # Separators stay visible: "2345-7^Glucose^LN" is a code, a name and a system, not "7 Glucose Lane".
            body.append((number, re.sub(r"\s*([|^~])\s*", r" \1 ", line.replace(sep, "|"))))
    if current is not None:
        yield current, body


def check_hl7(text: str, ctx: Context) -> Iterator[Finding]:
    total = 0
    patient: list[str] = []
    kinds: set[str] = set()
    segments: list[Segment] = []
    for message, body in messages(text):
        total += 1
        carried = sorted(set(message.segments) & HL7_PATIENT_SEGMENTS)
        if carried or message.type in HL7_PATIENT_MESSAGES:
            patient.append(f"message {total} (line {message.line})")
            kinds.add(message.type if re.fullmatch(r"[A-Z0-9]{3}", message.type) else "?")
            kinds.update(carried[:3])
        for number, content in body:
            if not content.startswith(("MSH", "FHS", "BHS", "BTS", "FTS")):
                segments.append(Segment(f"message {total}, {content[:3]} segment (line {number})", content[4:]))
    if patient:
        what = ", ".join(sorted(kinds))
        message = f"patient-level HL7 v2 message(s): {len(patient)} of {total} carry a patient ({what})"
        yield finding(CHECK, Verdict.BLOCK, message, "; ".join(patient[:5]))
    elif total == 0:
        yield finding(CHECK, Verdict.REVIEW, "starts like an HL7 v2 message but no MSH segment could be read")
    yield from ctx.screen(iter(segments), "identifiers")
