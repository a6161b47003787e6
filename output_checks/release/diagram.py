"""`python -m output_checks.release.diagram [--write]`: the state diagram and the permissions table in
docs/explanation/airlock-workflow.md, generated from states.py. Without --write it exits 1 when a committed one
differs (CI runs it as a test)."""

from __future__ import annotations

import sys
from pathlib import Path

from output_checks.release.states import PERMISSIONS, Actor, RequestState, diagram

DOC = Path(__file__).resolve().parents[2] / "docs" / "explanation" / "airlock-workflow.md"
COMMAND = "python -m output_checks.release.diagram --write"
BEGIN, END = (f"<!-- state-diagram:begin (generated: {COMMAND}) -->", "<!-- state-diagram:end -->")
TABLE_BEGIN, TABLE_END = (f"<!-- permissions:begin (generated: {COMMAND}) -->", "<!-- permissions:end -->")
SHORT = {Actor.AUTHOR: "A", Actor.CHECKER: "C"}


def permissions_table() -> str:
    """PERMISSIONS as Markdown: a row per activity, a column per state; A = the author, C = an output checker of
    the project, — = no one."""
    states = list(RequestState)
    lines = [
        "| activity | " + " | ".join(f"`{s.value}`" for s in states) + " |",
        "| --- |" + " --- |" * len(states),
    ]
    for activity, by_state in PERMISSIONS.items():
        cells = ["".join(SHORT[a] for a in sorted(by_state[s], key=list(Actor).index)) or "—" for s in states]
        lines.append(f"| {activity.value} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def blocks() -> dict[tuple[str, str], str]:
    return {(BEGIN, END): f"```mermaid\n{diagram()}```", (TABLE_BEGIN, TABLE_END): permissions_table().rstrip("\n")}


def rendered(begin: str, end: str) -> str:
    return f"{begin}\n{blocks()[(begin, end)]}\n{end}"


def committed(text: str, begin: str = BEGIN, end: str = END) -> str:
    start, stop = text.index(begin), text.index(end) + len(end)
    return text[start:stop]


def main() -> int:
    text = DOC.read_text()
    if "--write" in sys.argv:
        for begin, end in blocks():
            text = text.replace(committed(text, begin, end), rendered(begin, end))
        DOC.write_text(text)
        return 0
    for begin, end in blocks():
        if committed(text, begin, end) != rendered(begin, end):
            print(f"{DOC}: a generated block is out of date; run {COMMAND}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
