"""Consent trails: the events a site records when patients grant, narrow or withdraw research consent.

Purposes are GA4GH Data Use Ontology codes (GRU ⊃ HMB ⊃ DS-CVD) and NPU (not-for-profit use only) is the one
modifier used. Most patients grant GRU or HMB; some only DS-CVD; some narrow later; about 3% withdraw. Lines are
written in the exact shape of the data-layout contract (`consent.ndjson`).
"""

from __future__ import annotations

import json

import numpy as np

EXPORT_DATE = np.datetime64("2025-01-31")  # no consent event is dated after the sites exported

PURPOSES = np.array(["GRU", "HMB", "DS-CVD"])
_PURPOSE_P = [0.55, 0.30, 0.15]
_NARROWER = {"GRU": ["HMB", "DS-CVD"], "HMB": ["DS-CVD"], "DS-CVD": ["DS-CVD"]}


def consent_lines(
    rng: np.random.Generator, nhs_numbers: list[str], baseline: np.ndarray, key: str = "nhs_number"
) -> list[list[str]]:
    """For each patient, the NDJSON lines of their consent trail (oldest first), naming them by `key` (`identifier`
    at a site of another identifier scheme)."""
    n = len(nhs_numbers)
    grant = baseline.astype("datetime64[D]") + rng.integers(0, 90, n).astype("timedelta64[D]")
    purpose = PURPOSES[rng.choice(3, n, p=_PURPOSE_P)]
    npu = rng.random(n) < 0.12
    narrowed = rng.random(n) < 0.08
    narrow_date = grant + rng.integers(365, 5 * 365, n).astype("timedelta64[D]")
    withdrawn = rng.random(n) < 0.03
    narrow_choice = rng.random(n)
    withdraw_after = rng.integers(30, 4 * 365, n).astype("timedelta64[D]")

    out: list[list[str]] = []
    for i, nhs in enumerate(nhs_numbers):
        g = min(grant[i], EXPORT_DATE)
        modifiers = ["NPU"] if npu[i] else []
        lines = [_line(key, nhs, g, "grant", [str(purpose[i])], modifiers)]
        last = g
        if narrowed[i] and narrow_date[i] < EXPORT_DATE:
            options = _NARROWER[str(purpose[i])]
            narrower = options[int(narrow_choice[i] * len(options))]
            # Narrowing to the same purpose only makes sense by adding the not-for-profit restriction.
            mods = ["NPU"] if (narrower == purpose[i] or narrow_choice[i] < 0.3 or npu[i]) else []
            lines.append(_line(key, nhs, narrow_date[i], "narrow", [narrower], mods))
            last = narrow_date[i]
        if withdrawn[i]:
            lines.append(_line(key, nhs, min(last + withdraw_after[i], EXPORT_DATE), "withdraw", [], []))
        out.append(lines)
    return out


def _line(key: str, nhs: str, date: np.datetime64, action: str, purposes: list[str], modifiers: list[str]) -> str:
    return json.dumps({key: nhs, "date": str(date), "action": action, "purposes": purposes, "modifiers": modifiers})
