"""`python -m output_checks.release.diagram [--write]`: the state diagram in docs/explanation/airlock-workflow.md,
generated from states.py. Without --write it exits 1 when the committed diagram differs (CI runs it as a test)."""

from __future__ import annotations

import sys
from pathlib import Path

from output_checks.release.states import diagram

DOC = Path(__file__).resolve().parents[2] / "docs" / "explanation" / "airlock-workflow.md"
BEGIN, END = (
    "<!-- state-diagram:begin (generated: python -m output_checks.release.diagram --write) -->",
    ("<!-- state-diagram:end -->"),
)


def rendered() -> str:
    return f"{BEGIN}\n```mermaid\n{diagram()}```\n{END}"


def committed(text: str) -> str:
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[start:end]


def main() -> int:
    text = DOC.read_text()
    if "--write" in sys.argv:
        DOC.write_text(text.replace(committed(text), rendered()))
        return 0
    if committed(text) != rendered():
        print(f"{DOC}: the state diagram is out of date; run python -m output_checks.release.diagram --write")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
