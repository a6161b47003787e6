"""The checks, by name. Each is a small class with `name`, `kinds` (file types it reads, None for all) and
`run(subject, ctx)`; the policy's `checks:` list says which run. Identifier screening (`identifiers`) and known
identifiers (`known_identifiers`) are services the readers call on the text they extract, so they have no class."""

from __future__ import annotations

from importlib import import_module

from output_checks.checks.base import Check, Context, Subject

CHECKS: dict[str, str] = {
    "file_type": "output_checks.checks.file_type:FileTypeCheck",
    "raw_data": "output_checks.checks.raw_data:RawDataCheck",
    "archives": "output_checks.checks.archives:ArchiveCheck",
    "text": "output_checks.checks.text:TextCheck",
    "tables": "output_checks.checks.tables:TableCheck",
    "notebooks": "output_checks.checks.notebooks:NotebookCheck",
    "documents": "output_checks.checks.documents:DocumentCheck",
    "payloads": "output_checks.checks.payloads:PayloadCheck",
    "interchange": "output_checks.checks.interchange:InterchangeCheck",
    "acro": "output_checks.checks.tables.acro:AcroEvidenceCheck",
    "identifiers": "",
    "known_identifiers": "",
}


_LOADED: dict[str, Check] = {}


def load_checks(names: list[str]) -> list[Check]:
    """The enabled checks, in policy order (instances are stateless and cached)."""
    out: list[Check] = []
    for name in names:
        target = CHECKS[name]
        if target:
            if name not in _LOADED:
                module, cls = target.split(":")
                _LOADED[name] = getattr(import_module(module), cls)()
            out.append(_LOADED[name])
    return out


__all__ = ["CHECKS", "Check", "Context", "Subject", "load_checks"]
