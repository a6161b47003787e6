"""Reading the documents admins and sites hand us — YAML specs validated by a pydantic model, and NDJSON exports —
with errors that name the file, the line or field, and the problem."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from kernel.errors import InvalidInputError, SpecError

Model = TypeVar("Model", bound=BaseModel)


def describe(exc: ValidationError) -> str:
    """pydantic's errors as `field.path: message; …`."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def load_yaml_model(model: type[Model], path: Path, what: str) -> Model:
    """`path` parsed as YAML and validated as `model`; `what` names the document in errors ("project spec")."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInputError(path, f"{what} not found") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InvalidInputError(path, f"not valid YAML ({type(exc).__name__})") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: a {what} is a YAML mapping of {', '.join(list(model.model_fields)[:3])}, ...")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(f"{path}: {describe(exc)}") from None


def iter_ndjson(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line of an NDJSON file."""
    try:
        handle = path.open(encoding="utf-8", errors="strict")
    except FileNotFoundError:
        raise InvalidInputError(path, "not found") from None
    except OSError as exc:
        raise InvalidInputError(path, f"cannot open: {exc.strerror}") from None
    with handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InvalidInputError(path, f"line {number} is not JSON ({exc.msg})") from None
                if not isinstance(value, dict):
                    raise InvalidInputError(path, f"line {number} is not a JSON object")
                yield number, value
        except UnicodeDecodeError:
            raise InvalidInputError(path, "not UTF-8 text") from None
