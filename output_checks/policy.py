"""Release policy: documented YAML defaults (`policy.yaml`), a site's --policy file over them, and a project's
`airlock:` overrides last. One side-effect-free function, `load_policy`, applies the layers."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kernel.errors import SpecError

DEFAULTS = "policy.yaml"


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min_cell_count: int = Field(ge=1)
    zeros: Literal["review", "block", "pass"]
    rounding_base: int | None = Field(default=None, ge=5)  # smaller bases do not hide small counts
    p_ratio: float = Field(ge=0, le=1)
    nk_n: int = Field(ge=1)
    nk_k: float = Field(gt=0, le=1)
    suppression_markers: list[str]
    safe_dof_threshold: int = Field(default=10, ge=1)
    max_file_mb: float = Field(gt=0)
    max_table_rows: int = Field(ge=1)
    submit_max_file_mb: float = Field(gt=0)
    submit_max_request_mb: float = Field(gt=0)
    retention_days: float = Field(ge=0)
    individual_min_rows: int = Field(ge=2)
    unique_row_fraction: float = Field(gt=0, le=1)
    allowed_types: list[str]
    blocked_types: list[str]
    archive_max_depth: int = Field(ge=0)
    archive_max_members: int = Field(ge=1)
    archive_max_total_mb: float = Field(gt=0)
    archive_max_ratio: float = Field(gt=1)
    identifier_min_score: float = Field(ge=0, le=1)
    identifier_entities: list[str]
    recognizers_file: Path | None = None
    checks: list[str]

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 2**20)

    @property
    def submit_max_file_bytes(self) -> int:
        return int(self.submit_max_file_mb * 2**20)

    @property
    def submit_max_request_bytes(self) -> int:
        return int(self.submit_max_request_mb * 2**20)

    @property
    def archive_max_total_bytes(self) -> int:
        return int(self.archive_max_total_mb * 2**20)


def default_values() -> dict[str, Any]:
    return yaml.safe_load((Path(__file__).parent / DEFAULTS).read_text())


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the policy file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a policy file is a mapping of setting: value")
    return data


def _check_recognizers_file(path: Path) -> None:
    """Fail at load, with a usage error, rather than when screening starts (Presidio prints its own errors)."""
    data = _read(path)
    recognizers = data.get("recognizers")
    if not isinstance(recognizers, list) or not recognizers:
        raise SpecError(f"{path}: a recognisers file has a 'recognizers:' list (Presidio's registry format)")
    for number, item in enumerate(recognizers, start=1):
        if (
            not isinstance(item, dict)
            or not item.get("supported_entity")
            or not item.get("patterns", item.get("deny_list"))
        ):
            raise SpecError(f"{path}: recogniser {number} needs supported_entity and patterns (or deny_list)")


def load_policy(path: Path | None = None, project_overrides: dict[str, Any] | None = None) -> Policy:
    """Defaults, then the policy file, then the project's overrides (keys set to null are ignored)."""
    values = default_values()
    unknown: list[str] = []
    if path is not None:
        layer = _read(path)
        unknown = sorted(set(layer) - set(values))
        values |= layer
        if layer.get("recognizers_file") and not Path(layer["recognizers_file"]).is_absolute():
            values["recognizers_file"] = path.parent / layer["recognizers_file"]
    if unknown:
        raise SpecError(f"{path}: unknown policy setting(s) {', '.join(unknown)} (see docs/reference/policy.md)")
    values |= {k: v for k, v in (project_overrides or {}).items() if v is not None and k in values}
    try:
        policy = Policy.model_validate(values)
    except ValidationError as exc:
        where = path or "policy defaults"
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise SpecError(f"{where}: {problems}") from None
    if policy.recognizers_file is not None:
        _check_recognizers_file(policy.recognizers_file)
    from output_checks.checks import CHECKS  # late: the registry imports the policy module

    unknown_checks = sorted(set(policy.checks) - set(CHECKS))
    if unknown_checks:
        raise SpecError(f"{path or 'policy'}: unknown check(s) {', '.join(unknown_checks)}; known: {', '.join(CHECKS)}")
    return policy
