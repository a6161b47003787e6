"""Printed regression summaries (statsmodels `summary()`, R `summary(lm/glm/coxph)`, lme4, Stata `regress`/
`logit`/`stcox`, SAS PROC REG, stargazer): a model fitted on fewer observations than the policy's minimum, or
with fewer residual degrees of freedom than ACRO's threshold, blocks; observations dropped for missingness go
to review when few."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from output_checks.checks.base import Context, finding
from output_checks.checks.printed.cells import place
from output_checks.checks.printed.layout import Line
from output_checks.checks.printed.vocabulary import SUMMARY_VALUES
from output_checks.verdicts import Finding, Verdict


@dataclass(frozen=True)
class Rule:
    what: str  # "observations", "residual df", "null df", "events", "deleted"
    pattern: re.Pattern[str]


def _r(text: str) -> re.Pattern[str]:
    return re.compile(text, re.IGNORECASE)


NUMBER = r"(\d{1,3}(?:,\d{3})+|\d+)"
RULES = [
    Rule("observations", _r(rf"No\.\s+Observations:\s+{NUMBER}\b")),  # statsmodels
    Rule("observations", _r(rf"Number of obs\s*[=:]\s*{NUMBER}\b")),  # Stata, lme4
    Rule("observations", _r(rf"Number of Observations Used\s+{NUMBER}\b")),  # SAS
    Rule("observations", _r(rf"^\s*n\s*=\s*{NUMBER},\s*number of events")),  # R coxph
    Rule("observations", _r(rf"^\s*(?:Observations|Num\.\s?Obs\.|N\. of obs|No\. of obs)\s+{NUMBER}\s*$")),
    Rule("events", _r(rf"number of events\s*=\s*{NUMBER}\b")),  # R coxph
    Rule("events", _r(rf"No\. of failures\s*=\s*{NUMBER}\b")),  # Stata stcox
    Rule("residual df", _r(rf"Df Residuals:\s+{NUMBER}\b")),  # statsmodels
    Rule("residual df", _r(rf"Residual standard error:\s*\S+\s+on\s+{NUMBER}\s+degrees of freedom")),  # R lm
    Rule("residual df", _r(rf"Residual deviance:\s*\S+\s+on\s+{NUMBER}\s+degrees of freedom")),  # R glm
    Rule("residual df", _r(rf"F-statistic:.*?\bon\s+\d+\s+and\s+{NUMBER}\s+DF")),  # R lm
    Rule("residual df", _r(rf"^\s*Residual\s*\|\s*\S+\s+{NUMBER}\s+\S")),  # Stata regress ANOVA
    Rule("residual df", _r(rf"\bF\(\s*\d+\s*,\s*{NUMBER}\s*\)\s*=")),  # Stata regress header
    Rule("residual df", _r(rf"^\s*Error\s+{NUMBER}\s+\d+(?:\.\d+)?\s+\d")),  # SAS PROC REG / GLM ANOVA
    Rule("null df", _r(rf"Null deviance:\s*\S+\s+on\s+{NUMBER}\s+degrees of freedom")),  # R glm: n - 1
    Rule("deleted", _r(rf"\({NUMBER}\s+observations?\s+deleted due to missingness\)")),  # R
    Rule("deleted", _r(rf"^\s*Frequency Missing\s*=\s*{NUMBER}\s*$")),  # SAS PROC FREQ
]
MENTIONS = re.compile(r"obs|residual|deviance|events|failures|F\(|Error|\bdf\b|deleted|Frequency Missing", re.I)
STARGAZER_ROW = _r(rf"^\s*(?:Observations|Num\.\s?Obs\.)\s+{NUMBER}(?:\s+{NUMBER})+\s*$")


SUMMARY_LABELS = re.compile(
    r"^\s*(No\. Observations:|Df Residuals:|Dep\. Variable:|Number of obs\b|Residual standard error:|"
    r"Null deviance:|Residual deviance:|Number of Observations Used)",
    re.IGNORECASE,
)


def is_model_summary(rows: list[list[str]]) -> bool:
    """A table that is a model's printed summary header (statsmodels' `summary().as_html()` first table)."""
    return any(SUMMARY_LABELS.match(cell) for row in rows[:40] for cell in row)


def model_findings(lines: list[Line], ctx: Context, prefix: str = "", unit: str = "line") -> Iterator[Finding]:
    threshold, dof = ctx.policy.min_cell_count, ctx.policy.safe_dof_threshold
    small: dict[str, list[str]] = {}
    for line in lines:
        text = line.text
        if not MENTIONS.search(text):
            continue
        for rule in RULES:
            for m in rule.pattern.finditer(text):
                value = int(m[1].replace(",", ""))
                if _too_small(rule.what, value, threshold, dof):
                    small.setdefault(rule.what, []).append(place(prefix, line.number, unit=unit))
        if STARGAZER_ROW.match(text):
            for value in re.findall(r"\d[\d,]*", text):
                if _too_small("observations", int(value.replace(",", "")), threshold, dof):
                    small.setdefault("observations", []).append(place(prefix, line.number, unit=unit))
    messages = {
        "observations": f"a model fitted on fewer than {threshold} observations",
        "events": f"a survival model with fewer than {threshold} events",
        "residual df": f"a model with fewer than {dof} residual degrees of freedom (the policy's safe_dof_threshold)",
        "null df": f"a model fitted on fewer than {threshold} observations (from its null deviance's degrees of "
        "freedom)",
        "deleted": f"fewer than {threshold} observations missing or dropped for missingness: a reviewer decides "
        "whether that identifies anyone",
    }
    for what, places in small.items():
        unique = list(dict.fromkeys(places))
        yield finding(
            "tables",
            Verdict.REVIEW if what == "deleted" else Verdict.BLOCK,
            f"printed model summary: {messages[what]}",
            "; ".join(unique[:10]) + (f"; and {len(unique) - 10} more" if len(unique) > 10 else ""),
        )


def _too_small(what: str, value: int, threshold: int, dof: int) -> bool:
    if what == "residual df":
        return value < dof
    if what == "null df":
        return value + 1 < threshold
    return 0 < value < threshold


RESIDUAL_DF_HEADERS = frozenset({"res.df", "resid. df", "res df", "resid df", "residual df", "df resid", "df_resid"})


def residual_df_findings(
    header: list[str], rows: list[tuple[Line, list[str]]], dof: int, prefix: str = ""
) -> Iterator[Finding]:
    """A printed model comparison (R `anova()`: "Res.Df") whose models keep fewer than ACRO's residual degrees of
    freedom."""
    columns = [j for j, label in enumerate(header) if label.strip().lower() in RESIDUAL_DF_HEADERS]
    places = [
        place(prefix, line.number, header[j])
        for line, cells in rows
        for j in columns
        if j < len(cells) and cells[j].strip().isdigit() and int(cells[j]) < dof
    ]
    if places:
        yield finding(
            "tables",
            Verdict.BLOCK,
            f"printed model comparison: a model with fewer than {dof} residual degrees of freedom "
            "(the policy's safe_dof_threshold)",
            "; ".join(places[:10]),
        )


_KNOWN_VALUE = re.compile(
    "|".join(
        rf"(?P<k{i}>{re.escape(key)}:(?:\s|<[^>]{{0,80}}>){{0,60}})(?:{'|'.join(map(re.escape, values))})(?![\w-])"
        for i, (key, values) in enumerate(SUMMARY_VALUES.items())
    )
)


def hide_summary_vocabulary(text: str) -> str:
    """`text` with a model summary's fixed values ("Method: Least Squares") blanked to spaces of the same length,
    for identifier screening only: the keys stay, and any other value after them is still screened."""
    if ":" not in text:
        return text

    def blank(m: re.Match[str]) -> str:
        key = next(v for k, v in m.groupdict().items() if v is not None)
        return key + " " * (len(m[0]) - len(key))

    hidden = _KNOWN_VALUE.sub(blank, text)
    return text if hidden == text else hidden
