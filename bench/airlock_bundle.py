"""The airlock benchmark's inputs, generated deterministically (fixed seed, no downloads):

- a BUNDLE of realistic research outputs (~100 MB at scale 1): large CSV/TSV/Parquet tables of aggregates and of
  individual rows, Jupyter notebooks (nbformat v4: code, markdown, streams, text/plain, text/html and image/png
  outputs), methods/results reports (Markdown, HTML) and de-identified clinical case letters; a few identifiers are
  planted realistically (e.g. a name and an NHS number in one row of a 2,000-row table) and listed in plants.json;
- a representative SLICE of it (~2 MB: the planted tables whole, truncated copies of the large tables, two notebooks,
  a report and some letters), split into tables/ and text/, small enough for plain Presidio to finish in minutes;
- a LABELLED set of short texts and small tables (one file each), positive when it carries a direct identifier;
- FLAT: one clean aggregate CSV of ~10 MB and one of ~100 MB, to show that peak memory does not grow with file size.

    python -m bench.airlock_bundle OUT [--scale 0.01]
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import random
import shutil
import struct
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from synthetic_sites.identifiers import (
    FEMALE_FORENAMES,
    MALE_FORENAMES,
    SITES,
    SURNAMES,
    NhsNumberAllocator,
    format_nhs_number,
    mrn,
)

SEED = 20240611
VERSION = 1  # bump when the generated content changes, so cached bundles are rebuilt


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def _split(text: str, sep: str) -> tuple[str, ...]:
    return tuple(text.split(sep))


BASE32 = np.asarray(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"))

# ------------------------------------------------------------------------------------------------ vocabulary

DIAGNOSES = (
    ("I21.0", "Acute transmural MI of anterior wall"),
    ("I21.1", "Acute transmural MI of inferior wall"),
    ("I21.4", "Acute subendocardial MI (NSTEMI)"),
    ("I22.9", "Subsequent MI, unspecified"),
    ("I25.1", "Atherosclerotic heart disease"),
    ("I25.2", "Old myocardial infarction"),
    ("I20.0", "Unstable angina"),
    ("I20.9", "Angina pectoris, unspecified"),
    ("I10", "Essential hypertension"),
    ("I11.0", "Hypertensive heart disease with heart failure"),
    ("I48.0", "Paroxysmal atrial fibrillation"),
    ("I48.1", "Persistent atrial fibrillation"),
    ("I48.2", "Permanent atrial fibrillation"),
    ("I50.0", "Congestive heart failure"),
    ("I50.1", "Left ventricular failure"),
    ("I42.0", "Dilated cardiomyopathy"),
    ("I42.1", "Obstructive hypertrophic cardiomyopathy"),
    ("I42.2", "Other hypertrophic cardiomyopathy"),
    ("I35.0", "Aortic valve stenosis"),
    ("I34.0", "Mitral valve insufficiency"),
    ("I47.1", "Supraventricular tachycardia"),
    ("I47.2", "Ventricular tachycardia"),
    ("I49.0", "Ventricular fibrillation and flutter"),
    ("I44.2", "Atrioventricular block, complete"),
    ("I63.9", "Cerebral infarction, unspecified"),
    ("I64", "Stroke, not specified as haemorrhage or infarction"),
    ("I26.9", "Pulmonary embolism without acute cor pulmonale"),
    ("I71.4", "Abdominal aortic aneurysm, without rupture"),
    ("I73.9", "Peripheral vascular disease, unspecified"),
    ("E78.0", "Pure hypercholesterolaemia"),
    ("E78.1", "Pure hyperglyceridaemia"),
    ("E78.2", "Mixed hyperlipidaemia"),
    ("E78.5", "Hyperlipidaemia, unspecified"),
    ("E11.9", "Type 2 diabetes mellitus without complications"),
    ("E66.9", "Obesity, unspecified"),
    ("N18.3", "Chronic kidney disease, stage 3"),
    ("Q21.1", "Atrial septal defect"),
    ("Q23.1", "Congenital insufficiency of aortic valve"),
    ("Z95.1", "Presence of aortocoronary bypass graft"),
    ("Z95.5", "Presence of coronary angioplasty implant and graft"),
)
ICD10 = np.asarray([code for code, _ in DIAGNOSES])
DRUGS = _words(
    "atorvastatin rosuvastatin simvastatin pravastatin ezetimibe evolocumab alirocumab inclisiran bempedoic-acid "
    "icosapent-ethyl aspirin clopidogrel ticagrelor prasugrel apixaban rivaroxaban edoxaban dabigatran warfarin "
    "bisoprolol metoprolol ramipril lisinopril candesartan sacubitril/valsartan dapagliflozin empagliflozin "
    "spironolactone eplerenone furosemide bumetanide amiodarone digoxin ivabradine amlodipine colchicine"
)
GENES = _words("LDLR APOB PCSK9 LPA APOE TTN MYH7 MYBPC3 TNNT2 KCNQ1 KCNH2 SCN5A LMNA FBN1 PKP2 DSP FLNC RBM20")
RSIDS = _words(
    "rs10455872 rs3798220 rs11591147 rs7412 rs429358 rs1333049 rs4977574 rs12740374 rs646776 rs2228671 "
    "rs6511720 rs964184 rs1800562 rs10757278 rs2383206 rs17465637 rs9982601"
)
EPONYMS = _words(
    "Kaplan-Meier Cox Fine-Gray Bland-Altman Wilcoxon Mann-Whitney Fisher Bonferroni Benjamini-Hochberg Friedewald "
    "Martin-Hopkins Framingham Brugada Marfan Takotsubo Wolff-Parkinson-White Fontan Fallot Duke Simon-Broome"
)
OUTCOMES = _words(
    "MACE all-cause-death cv-death hf-hospitalisation mi stroke af-incident revascularisation pci cabg vt-vf pe"
)
TESTS = (
    ("2089-1", "LDL cholesterol", "mmol/L", 3.2, 0.9),
    ("2093-3", "Total cholesterol", "mmol/L", 5.1, 1.0),
    ("2085-9", "HDL cholesterol", "mmol/L", 1.3, 0.35),
    ("2571-8", "Triglycerides", "mmol/L", 1.7, 0.8),
    ("4548-4", "HbA1c", "mmol/mol", 44.0, 9.0),
    ("33762-6", "NT-proBNP", "ng/L", 480.0, 300.0),
    ("10839-9", "Troponin I", "ng/L", 18.0, 12.0),
    ("2160-0", "Creatinine", "umol/L", 88.0, 22.0),
    ("43396-1", "Lipoprotein(a)", "nmol/L", 60.0, 45.0),
)
REGIONS = _words(
    "London South-East South-West East-of-England Midlands North-West North-East-and-Yorkshire Wales Scotland"
)
ETHNIC = ("White", "Asian", "Black", "Mixed", "Other", "Not stated")
AGE_BANDS = ("18-39", "40-49", "50-59", "60-69", "70-79", "80-89", "90+")
SEXES = ("F", "M")
TITLES_M, TITLES_F = ("Mr",), ("Mrs", "Ms", "Miss")
STREETS = _split(
    "Acacia Avenue|Church Road|Station Road|Victoria Street|Park Lane|Mill Lane|Queens Road|High Street|"
    "Manor Way|Kingsway|Elm Grove|The Crescent|Orchard Close|Beech Drive|Albert Terrace|Chapel Street",
    "|",
)
TOWNS = ("London", "Leeds", "Manchester", "Birmingham", "Bristol", "Sheffield", "Newcastle", "Oxford", "Cambridge")


def pseudonyms(rng: np.random.Generator, n: int) -> np.ndarray:
    """Project pseudonyms as the fabric prints them: `P-` and 16 characters of base32."""
    letters = BASE32[rng.integers(0, 32, (n, 16))]
    return np.char.add("P-", np.asarray(["".join(row) for row in letters.tolist()]))


def nhs_numbers(seed: int, n: int) -> list[str]:
    return NhsNumberAllocator().draw(np.random.default_rng(seed), n)


def postcode(r: random.Random) -> str:
    site = r.choice(SITES)
    inward = f"{r.randrange(10)}{r.choice('ABDEFGHJLNPQRSTUWXYZ')}{r.choice('ABDEFGHJLNPQRSTUWXYZ')}"
    return f"{site.postcode_area}{r.randint(1, site.max_district)} {inward}"


def person(r: random.Random) -> tuple[str, str, str]:
    """(title, forename, surname)."""
    if r.random() < 0.5:
        return r.choice(TITLES_M), r.choice(MALE_FORENAMES), r.choice(SURNAMES)
    return r.choice(TITLES_F), r.choice(FEMALE_FORENAMES), r.choice(SURNAMES)


MONTHS = _words("January February March April May June July August September October November December")


def date_words(r: random.Random, start: int = 1930, end: int = 1975) -> tuple[str, str, str]:
    """A date of birth as dd/mm/yyyy, as `14 March 1956` and as ISO."""
    y, m, d = r.randint(start, end), r.randint(1, 12), r.randint(1, 28)
    return f"{d:02d}/{m:02d}/{y}", f"{d} {MONTHS[m - 1]} {y}", f"{y}-{m:02d}-{d:02d}"


def uk_phone(r: random.Random) -> str:
    # Ofcom's drama ranges (never allocated): 07700 900xxx, 020 7946 0xxx, 0113 496 0xxx, 0161 496 0xxx.
    n = r.randrange(1000)
    return r.choice(
        (
            f"07700 900{n:03d}",
            f"+44 7700 900{n:03d}",
            f"020 7946 0{n:03d}",
            f"0113 496 0{n:03d}",
            f"(0161) 496 0{n:03d}",
            f"07700900{n:03d}",
        )
    )


def email_of(r: random.Random, forename: str, surname: str) -> str:
    local = r.choice(
        (
            f"{forename}.{surname}",
            f"{forename[0]}.{surname}",
            f"{forename}{surname}{r.randint(40, 99)}",
            f"{surname}.{forename}{r.randint(1, 9)}",
        )
    )
    domain = r.choice(("gmail.com", "hotmail.co.uk", "yahoo.co.uk", "btinternet.com", "outlook.com", "nhs.net"))
    return f"{local.lower().replace(chr(39), '')}@{domain}"


def address(r: random.Random) -> str:
    flat = f"Flat {r.randint(1, 12)}, " if r.random() < 0.3 else ""
    return f"{flat}{r.randint(1, 180)} {r.choice(STREETS)}, {r.choice(TOWNS)} {postcode(r)}"


# ------------------------------------------------------------------------------------------------ prose


class Prose:
    """Methods/results prose and case summaries from sentence templates over the vocabulary above."""

    def __init__(self, r: random.Random) -> None:
        self.r = r

    def _stat(self) -> str:
        r = self.r
        hr = r.uniform(0.55, 1.9)
        lo, hi = hr * r.uniform(0.75, 0.95), hr * r.uniform(1.05, 1.3)
        p = r.choice(("p<0.001", f"p={r.uniform(0.001, 0.2):.3f}", "p=0.02", "p=0.04"))
        return f"{hr:.2f} (95% CI {lo:.2f}-{hi:.2f}; {p})"

    def sentence(self) -> str:
        r = self.r
        code, name = r.choice(DIAGNOSES)
        drug, gene, rs = r.choice(DRUGS), r.choice(GENES), r.choice(RSIDS)
        n = r.randint(120, 250_000)
        y0 = r.randint(2006, 2016)
        templates = (
            f"We included {n:,} participants with {name.lower()} (ICD-10 {code}) recorded between "
            f"1 January {y0} and 31 December {y0 + r.randint(3, 7)}.",
            f"Treatment with {drug} was associated with a hazard ratio for major adverse cardiovascular events of "
            f"{self._stat()}.",
            f"Carriers of {rs} in {gene} had higher lipoprotein(a) concentrations (mean difference "
            f"{r.uniform(5, 80):.1f} nmol/L, 95% CI {r.uniform(1, 5):.1f}-{r.uniform(81, 120):.1f}).",
            f"Survival was estimated with the {r.choice(EPONYMS)} method and compared across LDL-C quintiles.",
            f"Mean age was {r.uniform(45, 78):.1f} years (SD {r.uniform(7, 14):.1f}); {r.uniform(30, 70):.1f}% were "
            f"women and {r.uniform(5, 40):.1f}% had diabetes.",
            f"Follow-up ended on 31 March {y0 + 8}, with a median of {r.uniform(2, 9):.1f} years "
            f"(IQR {r.uniform(1, 3):.1f}-{r.uniform(6, 12):.1f}).",
            f"LDL cholesterol was calculated with the {r.choice(('Friedewald', 'Martin-Hopkins', 'Sampson'))} "
            f"equation when triglycerides were below {r.choice((4.5, 5.0, 9.0))} mmol/L.",
            f"In sensitivity analyses excluding {r.choice(SITES).name.replace(' (synthetic)', '')} the estimate was "
            f"{self._stat()}.",
            f"Pathogenic variants in {gene} were found in {r.randint(11, 400)} of {n:,} sequenced individuals "
            f"({r.uniform(0.1, 4):.2f}%).",
            f"Models were adjusted for age, sex, index of multiple deprivation quintile, smoking status, systolic "
            f"blood pressure and {r.choice(('eGFR', 'BMI', 'HbA1c', 'prior statin use'))}.",
            f"Incidence of {r.choice(OUTCOMES).replace('-', ' ')} was {r.uniform(2, 60):.1f} per 1,000 person-years "
            f"in the highest quintile versus {r.uniform(1, 20):.1f} in the lowest.",
            f"Missing values of {r.choice(('BMI', 'smoking status', 'ethnicity', 'LDL-C'))} "
            f"({r.uniform(1, 30):.1f}%) were handled by multiple imputation with {r.choice((5, 10, 20))} imputations.",
            "Counts below 10 were suppressed and all other counts were rounded to the nearest 5, in line with the "
            "output policy of the trusted research environment.",
            f"The association with {name.lower()} was attenuated after adjustment for {drug} use "
            f"(odds ratio {self._stat()}).",
            f"QTc prolongation above {r.choice((470, 480, 500))} ms occurred in {r.uniform(1, 9):.1f}% of patients "
            f"starting {r.choice(('amiodarone', 'sotalol', 'dofetilide'))}.",
        )
        return r.choice(templates)

    def paragraph(self, sentences: tuple[int, int] = (3, 8)) -> str:
        return " ".join(self.sentence() for _ in range(self.r.randint(*sentences)))

    def case_summary(self, pid: str) -> str:
        r = self.r
        code, name = r.choice(DIAGNOSES)
        age, sex = r.randint(28, 91), r.choice(("man", "woman"))
        drug = r.choice(DRUGS)
        lines = [
            f"Re: study participant {pid}",
            "",
            "Dear colleague,",
            "",
            f"This {age}-year-old {sex} was reviewed in the cardiovascular research clinic with {name.lower()} "
            f"({code}). {self.sentence()}",
            "",
            f"Investigations: LDL-C {r.uniform(1.2, 7.5):.1f} mmol/L, HDL-C {r.uniform(0.7, 2.2):.1f} mmol/L, "
            f"triglycerides {r.uniform(0.6, 4.8):.1f} mmol/L, HbA1c {r.randint(32, 78)} mmol/mol, eGFR "
            f"{r.randint(25, 110)} mL/min/1.73m2. ECG: sinus rhythm, QTc {r.randint(390, 490)} ms. Echocardiogram: "
            f"LVEF {r.randint(25, 68)}%, {r.choice(('no significant valve disease', 'mild mitral regurgitation'))}.",
            "",
            f"Plan: continue {drug}; add {r.choice(DRUGS)} if LDL-C remains above target at 12 weeks. "
            f"{self.paragraph((2, 4))}",
            "",
            "Yours sincerely,",
            "",
            "Cardiovascular Research Team",
        ]
        return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ writers


@dataclass(frozen=True)
class Plant:
    """A direct identifier (or other disclosure) planted on purpose: where, what kind, and each piece of it as
    written in the file (its type and exact text), so a detector's hit can be matched to it."""

    path: str  # relative to the bundle root
    kind: str
    where: str
    needles: tuple[tuple[str, str], ...]


def _write_csv(path: Path, header: list[str], columns: list[np.ndarray], sep: str = ",") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        fh.write(sep.join(header) + "\n")
        chunk = 50_000
        for start in range(0, len(columns[0]), chunk):
            cols = [c[start : start + chunk].tolist() for c in columns]
            fh.write("".join(sep.join(map(str, row)) + "\n" for row in zip(*cols, strict=True)))


def _fmt(values: np.ndarray, decimals: int) -> np.ndarray:
    return np.char.mod(f"%.{decimals}f", values)


def _combos(rng: np.random.Generator, dims: list[int], n: int) -> list[np.ndarray]:
    """n distinct cells of a grid of the given dimensions, in grid order (a realistic sorted aggregate table)."""
    total = int(np.prod(dims))
    flat = np.sort(rng.choice(total, size=min(n, total), replace=False))
    return list(np.unravel_index(flat, dims))


def _rounded_counts(rng: np.random.Generator, n: int, mean: float) -> np.ndarray:
    return 10 + 5 * rng.poisson(mean / 5, n)


def aggregate_ldl(rng: np.random.Generator, n: int) -> tuple[list[str], list[np.ndarray]]:
    years = np.arange(2010, 2024)
    site, year, quarter, dx, sex, band = _combos(rng, [len(SITES), len(years), 4, len(ICD10), 2, len(AGE_BANDS)], n)
    m = len(site)
    counts = _rounded_counts(rng, m, 80)
    header = list(_words("site year quarter icd10 sex age_band n mean_ldl_mmol_l sd_ldl mean_sbp_mmhg pct_on_statin"))
    return header, [
        np.asarray([s.id for s in SITES])[site],
        years[year],
        np.char.add("Q", (quarter + 1).astype(str)),
        ICD10[dx],
        np.asarray(SEXES)[sex],
        np.asarray(AGE_BANDS)[band],
        counts,
        _fmt(rng.normal(3.3, 0.5, m), 2),
        _fmt(rng.uniform(0.7, 1.3, m), 2),
        _fmt(rng.normal(136, 9, m), 1),
        _fmt(rng.uniform(20, 90, m), 1),
    ]


def aggregate_events(rng: np.random.Generator, n: int) -> tuple[list[str], list[np.ndarray]]:
    months = np.asarray([f"{y}-{m:02d}" for y in range(2010, 2024) for m in range(1, 13)])
    site, month, outcome, sex = _combos(rng, [len(SITES), len(months), len(OUTCOMES), 2], n)
    m = len(site)
    events = _rounded_counts(rng, m, 40)
    py = rng.uniform(800, 40_000, m)
    rate = events / py * 1000
    header = list(_words("site month outcome sex events person_years rate_per_1000py ci_lower ci_upper"))
    return header, [
        np.asarray([s.id for s in SITES])[site],
        months[month],
        np.asarray(OUTCOMES)[outcome],
        np.asarray(SEXES)[sex],
        events,
        _fmt(py, 1),
        _fmt(rate, 2),
        _fmt(rate * 0.8, 2),
        _fmt(rate * 1.22, 2),
    ]


def aggregate_regions(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    years = np.arange(2010, 2024)
    region, imd, eth, year, band, dx = _combos(
        rng, [len(REGIONS), 5, len(ETHNIC), len(years), len(AGE_BANDS), len(ICD10)], n
    )
    m = len(region)
    return {
        "region": np.asarray(REGIONS)[region],
        "imd_quintile": imd + 1,
        "ethnic_group": np.asarray(ETHNIC)[eth],
        "year": years[year],
        "age_band": np.asarray(AGE_BANDS)[band],
        "icd10": ICD10[dx],
        "n": _rounded_counts(rng, m, 120),
        "prevalence_pct": np.round(rng.uniform(0.2, 18, m), 2),
        "mean_bmi": np.round(rng.normal(28, 2, m), 1),
    }


def _dates(rng: np.random.Generator, n: int, start: str = "2012-01-01", days: int = 4000) -> np.ndarray:
    return (np.datetime64(start) + rng.integers(0, days, n)).astype(str)


def cohort_rows(rng: np.random.Generator, n: int) -> tuple[list[str], list[np.ndarray]]:
    header = ["patient_id", "age", "sex", "ldl_mmol_l", "icd10", "event_date"]
    return header, [
        pseudonyms(rng, n),
        rng.integers(18, 95, n),
        np.asarray(SEXES)[rng.integers(0, 2, n)],
        _fmt(np.clip(rng.normal(3.3, 1.0, n), 0.6, 11), 1),
        ICD10[rng.integers(0, len(ICD10), n)],
        _dates(rng, n),
    ]


def lab_rows(rng: np.random.Generator, n: int) -> tuple[list[str], list[np.ndarray]]:
    people = pseudonyms(rng, max(1, n // 9))
    test = rng.integers(0, len(TESTS), n)
    mean = np.asarray([t[3] for t in TESTS])[test]
    sd = np.asarray([t[4] for t in TESTS])[test]
    header = ["patient_id", "site", "loinc", "value", "unit", "collected_on"]
    return header, [
        people[rng.integers(0, len(people), n)],
        np.asarray([s.id for s in SITES])[rng.integers(0, 8, n)],
        np.asarray([t[0] for t in TESTS])[test],
        _fmt(np.abs(rng.normal(mean, sd)), 2),
        np.asarray([t[2] for t in TESTS])[test],
        _dates(rng, n),
    ]


def ecg_rows(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    return {
        "patient_id": pseudonyms(rng, n),
        "recorded_on": _dates(rng, n),
        "heart_rate": rng.integers(42, 130, n),
        "pr_ms": rng.integers(110, 260, n),
        "qrs_ms": rng.integers(70, 170, n),
        "qtc_ms": rng.integers(360, 520, n),
        "rhythm": np.asarray(["sinus", "AF", "flutter", "paced", "sinus brady"])[rng.integers(0, 5, n)],
    }


def _write_parquet(path: Path, columns: dict[str, np.ndarray]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({k: pa.array(v.tolist()) for k, v in columns.items()}), path, row_group_size=50_000)


NOTES = ("", "", "", "", "", "", "statin intolerance", "moved out of area", "lost to follow-up", "declined echo")
COMMENTS = ("", "", "", "", "rounded to nearest 5", "data complete", "recoded from ICD-9 before 2012", "provisional")


def followup_table(rng: np.random.Generator, r: random.Random, nhs: str) -> tuple[list[str], list[list[str]], Plant]:
    """2,000 individual rows; one row's note carries a patient's name and NHS number (a custodian-side query)."""
    header, cols = cohort_rows(rng, 2000)
    rows = [list(map(str, row)) for row in zip(*[c.tolist() for c in cols], strict=True)]
    notes = [NOTES[i] for i in rng.integers(0, len(NOTES), 2000)]
    at = 1337
    _, forename, surname = person(r)
    notes[at] = f"NHS {format_nhs_number(nhs)} - {forename} {surname}, confirm consent"
    for row, note in zip(rows, notes, strict=True):
        row.append(note)
    needles = (("nhs_number", format_nhs_number(nhs)), ("name", f"{forename} {surname}"))
    plant = Plant("tables/rows/followup_2000.csv", "name+nhs_number", f"row {at + 1}, column note", needles)
    return [*header, "note"], rows, plant


def comments_table(rng: np.random.Generator, r: random.Random, nhs: str) -> tuple[list[str], list[list[str]], Plant]:
    """2,000 rows of aggregates with a free-text comment; one comment names a patient and her NHS number."""
    years = np.arange(2010, 2024)
    site, year, dx = _combos(rng, [len(SITES), len(years), len(ICD10)], 2000)
    counts = _rounded_counts(rng, len(site), 60)
    comments = [COMMENTS[i] for i in rng.integers(0, len(COMMENTS), len(site))]
    at = 1618
    _, forename, surname = person(r)
    comments[at] = f"excl. duplicate record for {forename} {surname} ({nhs}) per custodian"
    rows = [
        [SITES[s].id, str(years[y]), str(ICD10[d]), str(c), com]
        for s, y, d, c, com in zip(site, year, dx, counts, comments, strict=True)
    ]
    needles = (("name", f"{forename} {surname}"), ("nhs_number", nhs))
    plant = Plant("tables/aggregates/site_comments.csv", "name+nhs_number", f"row {at + 1}, comment", needles)
    return ["site", "year", "icd10", "n", "comment"], rows, plant


def small_counts_table(rng: np.random.Generator) -> tuple[list[str], list[list[str]], Plant]:
    site, eth, dx = _combos(rng, [len(SITES), len(ETHNIC), 6], 300)
    counts = _rounded_counts(rng, len(site), 40)
    small = [17, 120, 233]
    counts[small] = [3, 7, 1]
    rows = [[SITES[s].id, ETHNIC[e], str(ICD10[d]), str(c)] for s, e, d, c in zip(site, eth, dx, counts, strict=True)]
    return (
        ["site", "ethnic_group", "icd10", "n"],
        rows,
        Plant(
            "tables/aggregates/small_counts_by_ethnicity.csv", "small_count", "n of 3, 7, 1 in rows 18, 121, 234", ()
        ),
    )


def _write_rows(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


# ------------------------------------------------------------------------------------------------ notebooks


def _png(r: random.Random, width: int = 160, height: int = 90) -> str:
    """A small valid greyscale PNG (a plot stand-in), base64-encoded as notebooks store it."""
    raw = b"".join(b"\x00" + bytes(r.randrange(256) for _ in range(width)) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")
    return base64.b64encode(png).decode()


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _frame(header: list[str], rows: list[list[str]]) -> dict[str, list[str]]:
    """A pandas-like DataFrame display: text/plain and text/html."""
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    idx = len(str(len(rows)))
    plain = [" " * idx + "  " + "  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    plain += [
        f"{i:<{idx}}  " + "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for i, row in enumerate(rows)
    ]
    html = ['<div>\n<table border="1" class="dataframe">\n  <thead>\n    <tr style="text-align: right;">\n']
    html.append("      <th></th>\n" + "".join(f"      <th>{h}</th>\n" for h in header) + "    </tr>\n  </thead>\n")
    html.append("  <tbody>\n")
    for i, row in enumerate(rows):
        html.append(f"    <tr>\n      <th>{i}</th>\n" + "".join(f"      <td>{c}</td>\n" for c in row) + "    </tr>\n")
    html.append("  </tbody>\n</table>\n")
    html.append(f"<p>{len(rows)} rows × {len(header)} columns</p>\n</div>")
    return {"text/plain": _lines("\n".join(plain)), "text/html": _lines("".join(html))}


CODE = (
    "import dask.dataframe as dd\nimport pandas as pd\nfrom fabric.readers import open_project\n\n"
    "project = open_project()\nclient = project.client(n_workers=2)",
    "clinical = project.clinical()\nldl = clinical[clinical.loinc == '2089-1']\nldl.head()",
    "summary = (\n    cohort.groupby(['site', 'year', 'icd10'])\n    .agg(n=('patient_id', 'nunique'), "
    "mean_ldl=('ldl_mmol_l', 'mean'))\n    .reset_index()\n)\nsummary = summary[summary.n >= 10]\nsummary.head(40)",
    "from lifelines import CoxPHFitter\n\ncph = CoxPHFitter(penalizer=0.01)\n"
    "cph.fit(model_frame, duration_col='years', event_col='mace')\ncph.print_summary()",
    "import matplotlib.pyplot as plt\n\nfig, ax = plt.subplots(figsize=(8, 4.5))\n"
    "for q, grp in km.groupby('ldl_quintile'):\n    ax.step(grp.t, grp.s, label=f'Q{q}')\nax.legend()\nplt.show()",
    "for fold, (train, test) in enumerate(folds):\n    model.fit(X[train], y[train])\n"
    "    print(f'fold {fold}: AUC {roc_auc_score(y[test], model.predict_proba(X[test])[:, 1]):.3f}')",
    "rounded = (summary.n / 5).round().astype(int) * 5\nsummary.assign(n=rounded).to_csv("
    "'outputs/ldl_by_site_year.csv', index=False)",
    "import mlflow\n\nwith mlflow.start_run(run_name='lpa-gwas'):\n    mlflow.log_params(params)\n"
    "    mlflow.log_metric('lambda_gc', 1.03)",
)


def _stream_log(r: random.Random, lines: int) -> str:
    out = []
    for i in range(lines):
        kind = r.random()
        if kind < 0.4:
            out.append(f"fold {i % 10}: AUC {r.uniform(0.6, 0.85):.3f}  brier {r.uniform(0.05, 0.2):.4f}")
        elif kind < 0.7:
            out.append(
                f"[{i:05d}] chunk {r.randint(0, 999)}/1000 processed in {r.uniform(0.1, 3):.2f}s "
                f"({r.randint(1000, 50_000)} rows)"
            )
        elif kind < 0.85:
            out.append(
                f"iteration {i}: log-likelihood {-r.uniform(1e4, 9e4):.2f}, concordance {r.uniform(0.6, 0.8):.3f}"
            )
        else:
            out.append(
                f"{r.choice(RSIDS)}\t{r.choice(GENES)}\tbeta={r.uniform(-0.3, 0.3):.4f}\tp={r.uniform(0, 1):.2e}"
            )
    return "\n".join(out) + "\n"


def notebook(r: random.Random, rng: np.random.Generator, target: int, plant: dict[str, str] | None = None) -> dict:
    """An executed analysis notebook of about `target` bytes."""
    prose = Prose(r)
    cells: list[dict] = []
    count = 0
    size = 0

    def add(cell: dict) -> None:
        nonlocal size
        cell["id"] = f"c{len(cells):04d}"
        cells.append(cell)
        size += len(json.dumps(cell))

    add(
        {
            "cell_type": "markdown",
            "metadata": {},
            "source": _lines(f"# {r.choice(DIAGNOSES)[1]}: analysis\n\n{prose.paragraph()}"),
        }
    )
    while size < target:
        count += 1
        choice = r.random()
        code = r.choice(CODE)
        outputs: list[dict] = []
        if choice < 0.22:
            add(
                {
                    "cell_type": "markdown",
                    "metadata": {},
                    "source": _lines(f"## {r.choice(GENES)} and {r.choice(OUTCOMES)}\n\n{prose.paragraph()}"),
                }
            )
            continue
        if choice < 0.5:
            header, cols = aggregate_ldl(rng, r.randint(20, 60))
            rows = [list(map(str, row)) for row in zip(*[c.tolist() for c in cols], strict=True)]
            outputs.append(
                {
                    "output_type": "execute_result",
                    "execution_count": count,
                    "metadata": {},
                    "data": _frame(header, rows),
                }
            )
        elif choice < 0.62:
            header, cols = cohort_rows(rng, r.randint(5, 15))
            rows = [list(map(str, row)) for row in zip(*[c.tolist() for c in cols], strict=True)]
            outputs.append(
                {
                    "output_type": "execute_result",
                    "execution_count": count,
                    "metadata": {},
                    "data": _frame(header, rows),
                }
            )
        elif choice < 0.82:
            outputs.append(
                {"output_type": "stream", "name": "stdout", "text": _lines(_stream_log(r, r.randint(20, 200)))}
            )
        elif choice < 0.95:
            outputs.append(
                {
                    "output_type": "display_data",
                    "metadata": {},
                    "data": {"image/png": _png(r), "text/plain": ["<Figure size 800x450 with 1 Axes>"]},
                }
            )
        else:
            outputs.append(
                {
                    "output_type": "error",
                    "ename": "KeyError",
                    "evalue": "'ldl_mmol_l'",
                    "traceback": [
                        "KeyError                                  Traceback (most recent call last)",
                        "Cell In[12], line 3",
                        "KeyError: 'ldl_mmol_l'",
                    ],
                }
            )
        add({"cell_type": "code", "execution_count": count, "metadata": {}, "source": _lines(code), "outputs": outputs})
    if plant:
        at = len(cells) // 2
        cells.insert(at, plant_cell(plant, count + 1))
        for i, cell in enumerate(cells):
            cell["id"] = f"c{i:04d}"
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
            "language_info": {"name": "python", "version": "3.11.9"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def plant_cell(plant: dict[str, str], count: int) -> dict:
    if plant["output"] == "stream":
        outputs = [{"output_type": "stream", "name": "stdout", "text": _lines(plant["text"])}]
    else:
        outputs = [
            {
                "output_type": "execute_result",
                "execution_count": count,
                "metadata": {},
                "data": _frame(plant["header"], plant["rows"]),
            }
        ]
    return {
        "cell_type": "code",
        "execution_count": count,
        "metadata": {},
        "source": _lines(plant["code"]),
        "outputs": outputs,
    }


# ------------------------------------------------------------------------------------------------ reports


REFERENCES = (
    "{a} {i}, {b} {j}, {c} {k}, et al. {title}. Lancet. {y};{v}({n}):{p}-{q}. doi:10.1016/S0140-6736({yy})3{d}-X",
    "{a} {i}, {b} {j}. {title}. N Engl J Med. {y};{v}:{p}-{q}.",
    "{a} {i}{j}, {c} {k}. {title}. Eur Heart J. {y};{v}({n}):{p}-{q}. PMID: 3{d}.",
    "{a} {i}, {b} {j}, {c} {k}. {title}. Circulation. {y};{v}:e{p}-e{q}.",
)
TITLES = (
    "Lipoprotein(a) and incident cardiovascular events in a population cohort",
    "Evolocumab and clinical outcomes in patients with cardiovascular disease",
    "Polygenic risk and familial hypercholesterolaemia in the UK",
    "Sex differences in the management of acute myocardial infarction",
    "Atrial fibrillation detection after cryptogenic stroke",
    "Genome-wide association study of left ventricular ejection fraction",
)


def reference(r: random.Random) -> str:
    return r.choice(REFERENCES).format(
        a=r.choice(SURNAMES),
        b=r.choice(SURNAMES),
        c=r.choice(SURNAMES),
        i=r.choice("ABCDGHJKMPRST"),
        j=r.choice("ABCDGHJKMPRST"),
        k=r.choice("ABCDGHJKMPRST"),
        title=r.choice(TITLES),
        y=r.randint(2005, 2023),
        yy=r.randint(10, 23),
        v=r.randint(100, 400),
        n=r.randint(1, 24),
        p=r.randint(100, 900),
        q=r.randint(901, 999),
        d=r.randint(10000, 99999),
    )


def markdown_table(rng: np.random.Generator, rows: int) -> str:
    header, cols = aggregate_ldl(rng, rows)
    body = [list(map(str, row)) for row in zip(*[c.tolist() for c in cols], strict=True)]
    return "\n".join(
        ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(b) + " |" for b in body]
    )


def report_md(r: random.Random, rng: np.random.Generator, target: int) -> str:
    prose = Prose(r)
    parts = [f"# {r.choice(TITLES)}\n", "## Methods\n"]
    size = 0
    while size < target * 0.85:
        part = prose.paragraph() if r.random() < 0.8 else markdown_table(rng, r.randint(8, 30))
        if r.random() < 0.08:
            part = f"## {r.choice(('Results', 'Sensitivity analyses', 'Discussion', 'Limitations'))}\n\n" + part
        parts.append(part + "\n")
        size += len(part)
    parts.append("## References\n")
    parts += [f"{i}. {reference(r)}" for i in range(1, 41)]
    return "\n".join(parts) + "\n"


def report_html(r: random.Random, rng: np.random.Generator, target: int) -> str:
    prose = Prose(r)
    parts = [
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>Report</title></head><body>",
        f"<h1>{r.choice(TITLES)}</h1>",
    ]
    size = 0
    while size < target:
        if r.random() < 0.75:
            part = f"<p>{prose.paragraph()}</p>"
        else:
            header, cols = aggregate_ldl(rng, r.randint(10, 40))
            part = "".join(
                _frame(header, [list(map(str, x)) for x in zip(*[c.tolist() for c in cols], strict=True)])["text/html"]
            )
        parts.append(part)
        size += len(part)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def planted_letter(r: random.Random, nhs: str, pid: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    title, forename, surname = person(r)
    dob, _, _ = date_words(r)
    addr, phone = address(r), uk_phone(r)
    heading = f"Re: {title} {forename} {surname}, DOB {dob}, NHS No. {format_nhs_number(nhs)}\n{addr}. Tel: {phone}"
    text = Prose(r).case_summary(pid).replace(f"Re: study participant {pid}", heading)
    needles = (
        ("name", f"{forename} {surname}"),
        ("dob", dob),
        ("nhs_number", format_nhs_number(nhs)),
        ("address", addr),
        ("phone", phone),
    )
    return text, needles


def planted_letter_email(r: random.Random, pid: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    _, forename, surname = person(r)
    email = email_of(r, forename, surname)
    hospital_no = mrn(r.choice(SITES), r.randrange(10**6))
    text = (
        Prose(r)
        .case_summary(pid)
        .replace(
            "Dear colleague,",
            f"Dear colleague,\n\nThe patient (hospital no. {hospital_no}) asked for results by email to {email}.",
        )
    )
    return text, (("mrn", hospital_no), ("email", email))


# ------------------------------------------------------------------------------------------------ bundle


def _n(scale: float, rows: int, least: int = 50) -> int:
    return max(least, round(rows * scale))


def build_bundle(root: Path, scale: float = 1.0, seed: int = SEED) -> list[Plant]:
    """Write the bundle under `root` (replacing it); return what was planted."""
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(seed)
    r = random.Random(seed)
    nhs = nhs_numbers(seed, 8)
    plants: list[Plant] = []

    # Tables: aggregates.
    tables = root / "tables"
    _write_csv(tables / "aggregates/ldl_by_site_year_dx.csv", *aggregate_ldl(rng, _n(scale, 560_000)))
    _write_csv(tables / "aggregates/event_rates_by_month.tsv", *aggregate_events(rng, _n(scale, 104_000)), sep="\t")
    _write_parquet(tables / "aggregates/prevalence_by_region.parquet", aggregate_regions(rng, _n(scale, 300_000)))
    header, rows, plant = comments_table(rng, r, nhs[0])
    _write_rows(tables / "aggregates/site_comments.csv", header, rows)
    plants.append(plant)
    header, rows, plant = small_counts_table(rng)
    _write_rows(tables / "aggregates/small_counts_by_ethnicity.csv", header, rows)
    plants.append(plant)

    # Tables: individual rows.
    _write_csv(tables / "rows/cohort_extract.csv", *cohort_rows(rng, _n(scale, 100_000)))
    _write_csv(tables / "rows/lab_results_long.csv", *lab_rows(rng, _n(scale, 440_000)))
    _write_parquet(tables / "rows/ecg_measures.parquet", ecg_rows(rng, _n(scale, 200_000)))
    header, rows, plant = followup_table(rng, r, nhs[1])
    _write_rows(tables / "rows/followup_2000.csv", header, rows)
    plants.append(plant)

    # Notebooks.
    title, forename, surname = person(r)
    dob, _, _ = date_words(r)
    pc = postcode(r)
    debug = (
        _stream_log(r, 30)
        + f"DEBUG matched lookup row: {title} {forename} {surname}, DOB {dob}, {pc}\n"
        + _stream_log(r, 30)
    )
    hospital_no, phone = mrn(SITES[0], 4242), uk_phone(r)
    lookup_rows = [
        [pid, mrn(SITES[0], 4240 + i), f"{d:.1f}"]
        for i, (pid, d) in enumerate(zip(pseudonyms(rng, 4).tolist(), rng.uniform(2, 6, 4).tolist(), strict=True))
    ]
    lookup_rows[2] = [lookup_rows[2][0], hospital_no, lookup_rows[2][2], phone]
    for row in lookup_rows[:2] + lookup_rows[3:]:
        row.append("")
    planted = {
        0: {
            "output": "stream",
            "code": "matched = lookup.merge(cohort, on='mrn')\nprint(matched.iloc[0])",
            "text": debug,
        },
        1: {
            "output": "frame",
            "code": "lookup.head()",
            "header": ["patient_id", "mrn", "ldl", "contact"],
            "rows": lookup_rows,
        },
    }
    n_notebooks = max(3, round(30 * scale))
    for i in range(n_notebooks):
        nb = notebook(r, rng, 480_000 if scale >= 0.5 else max(20_000, int(480_000 * scale * 20)), planted.get(i))
        path = root / "notebooks" / f"analysis_{i:02d}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    plants.append(
        Plant(
            "notebooks/analysis_00.ipynb",
            "name+dob+postcode",
            "stream output of the planted cell",
            (("name", f"{forename} {surname}"), ("dob", dob), ("postcode", pc)),
        )
    )
    plants.append(
        Plant(
            "notebooks/analysis_01.ipynb",
            "mrn+phone",
            "execute_result (text/plain, text/html) of the planted cell",
            (("mrn", hospital_no), ("phone", phone)),
        )
    )

    # Reports and letters.
    reports = root / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    for i in range(max(2, round(40 * scale))):
        (reports / f"methods_results_{i:02d}.md").write_text(report_md(r, rng, 150_000 if scale >= 0.5 else 15_000))
    for i in range(max(1, round(6 * scale))):
        (reports / f"summary_{i:02d}.html").write_text(report_html(r, rng, 200_000 if scale >= 0.5 else 20_000))
    letters = reports / "letters"
    letters.mkdir()
    pids = pseudonyms(rng, max(10, round(1500 * scale))).tolist()
    prose = Prose(r)
    for i, pid in enumerate(pids):
        if i == 3:
            text, needles = planted_letter(r, nhs[2], pid)
            kind = "name+dob+nhs_number+address+phone"
            plants.append(Plant(f"reports/letters/case_{i:04d}.txt", kind, "letter heading", needles))
        elif i == 7:
            text, needles = planted_letter_email(r, pid)
            plants.append(Plant(f"reports/letters/case_{i:04d}.txt", "mrn+email", "second paragraph", needles))
        else:
            text = prose.case_summary(pid)
        (letters / f"case_{i:04d}.txt").write_text(text)
    return plants


# ------------------------------------------------------------------------------------------------ slice


SLICE_TABLES = (  # (source, rows kept or None for the whole file)
    ("tables/aggregates/ldl_by_site_year_dx.csv", 2000),
    ("tables/aggregates/event_rates_by_month.tsv", 1500),
    ("tables/aggregates/prevalence_by_region.parquet", 1000),
    ("tables/aggregates/site_comments.csv", None),
    ("tables/aggregates/small_counts_by_ethnicity.csv", None),
    ("tables/rows/cohort_extract.csv", 4000),
    ("tables/rows/lab_results_long.csv", 2000),
    ("tables/rows/ecg_measures.parquet", 1000),
    ("tables/rows/followup_2000.csv", None),
)
SLICE_TEXT = (
    "notebooks/analysis_00.ipynb",
    "notebooks/analysis_01.ipynb",
    "reports/methods_results_00.md",
    "reports/summary_00.html",
    *(f"reports/letters/case_{i:04d}.txt" for i in range(30)),
)


def _head(src: Path, dst: Path, rows: int | None) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if rows is None:
        shutil.copyfile(src, dst)
    elif src.suffix == ".parquet":
        import pyarrow.parquet as pq

        pq.write_table(pq.read_table(src).slice(0, rows), dst)
    else:
        with src.open() as fin, dst.open("w") as fout:
            for i, line in enumerate(fin):
                if i > rows:
                    break
                fout.write(line)


def build_slice(bundle: Path, out: Path) -> dict[str, Path]:
    """The representative slice: out/tables (whole planted tables, heads of the large ones) and out/text (two
    notebooks, a Markdown and an HTML report, 30 letters). Paths mirror the bundle's."""
    shutil.rmtree(out, ignore_errors=True)
    for rel, rows in SLICE_TABLES:
        _head(bundle / rel, out / rel, rows)
    for rel in SLICE_TEXT:
        if (bundle / rel).exists():
            _head(bundle / rel, out / "text" / rel, None)
    return {"tables": out / "tables", "text": out / "text"}


# ------------------------------------------------------------------------------------------------ flat


def build_flat_csv(path: Path, megabytes: int, seed: int = SEED) -> int:
    """A clean aggregate CSV of about `megabytes` MB, written in chunks (the generator's memory stays flat)."""
    rng = np.random.default_rng(seed + megabytes)
    path.parent.mkdir(parents=True, exist_ok=True)
    target = megabytes * 1_000_000
    with path.open("w") as fh:
        header, _ = aggregate_ldl(rng, 1)
        fh.write(",".join(header) + "\n")
        while fh.tell() < target:
            _, cols = aggregate_ldl(rng, 20_000)
            fh.write("".join(",".join(map(str, row)) + "\n" for row in zip(*[c.tolist() for c in cols], strict=True)))
    return path.stat().st_size


# ------------------------------------------------------------------------------------------------ labelled set


@dataclass(frozen=True)
class Item:
    name: str  # file name in the labelled folder
    positive: bool
    kind: str  # identifier type (positives) or negative category
    text: str
    subtype: str = ""  # e.g. which country's national identifier


def _csv_text(header: list[str], rows: list[list[str]]) -> str:
    lines = [",".join(header)] + [",".join(f'"{c}"' if "," in c else c for c in row) for row in rows]
    return "\n".join(lines) + "\n"


def labelled_items(seed: int = SEED) -> list[Item]:
    """≥ 300 short texts and small tables, each labelled positive (carries a direct identifier of a patient) or
    negative (ordinary research-output content that naive recognisers mistake for one)."""
    r = random.Random(seed + 1)
    rng = np.random.default_rng(seed + 1)
    nhs = nhs_numbers(seed + 1, 40)
    prose = Prose(r)
    items: list[Item] = []

    def add(positive: bool, kind: str, text: str, table: bool = False, subtype: str = "") -> None:
        name = f"{'pos' if positive else 'neg'}_{kind}_{len(items):03d}.{'csv' if table else 'txt'}"
        items.append(Item(name, positive, kind, text, subtype))

    def finding(age: int | None = None) -> str:
        code, name = r.choice(DIAGNOSES)
        return f"{name.lower()} ({code})" if age is None else f"a {age}-year-old with {name.lower()}"

    # ---- positives
    for i in range(30):  # names of patients, in context
        title, forename, surname = person(r)
        text = r.choice(
            (
                f"Seen today in the lipid clinic: {forename} {surname}, {r.randint(30, 90)}, with {finding()}.",
                f"{title} {surname} was reviewed on the ward after {finding()}; LDL-C {r.uniform(2, 7):.1f} mmol/L.",
                f"Patient: {forename} {surname}\nReferral reason: {finding()}",
                f"Discussed with {forename} {surname}'s daughter, who reports good adherence to {r.choice(DRUGS)}.",
                f"{forename} {surname} declined the repeat echocardiogram.",
                f"Outlier check: the highest Lp(a) value (412 nmol/L) belongs to {forename} {surname}.",
            )
        )
        if i % 5 == 4:
            rows = [
                [
                    f"{r.choice(MALE_FORENAMES + FEMALE_FORENAMES)} {r.choice(SURNAMES)}",
                    f"{r.uniform(2, 7):.1f}",
                    str(r.choice(ICD10)),
                ]
                for _ in range(4)
            ]
            add(True, "name", _csv_text(["patient_name", "ldl_mmol_l", "icd10"], rows), table=True)
        else:
            add(True, "name", text)
    for i in range(30):  # NHS numbers, spaced, unspaced, dashed
        n = nhs[i]
        shown = (format_nhs_number(n), n, f"{n[:3]}-{n[3:6]}-{n[6:]}")[i % 3]
        text = r.choice(
            (
                f"NHS number {shown} recorded on the referral for {finding()}.",
                f"NHS No: {shown}\nSeen for {finding()}.",
                f"Linked record {shown} had two admissions in 2019.",
                f"Please check the consent status of {shown} before the next extract.",
                f"{finding().capitalize()}; NHS {shown}.",
            )
        )
        if i % 6 == 5:
            rows = [[nhs[(i + k) % 40], f"{r.uniform(2, 7):.1f}", str(r.choice(ICD10))] for k in range(3)]
            add(True, "nhs_number", _csv_text(["nhs_no", "ldl_mmol_l", "icd10"], rows), table=True)
        else:
            add(True, "nhs_number", text)
    for i in range(24):  # dates of birth
        digits, words, iso = date_words(r)
        text = r.choice(
            (
                f"DOB: {digits}. Presented with {finding()}.",
                f"Date of birth {words}; referred by GP for {finding()}.",
                f"The patient, born on {words}, was started on {r.choice(DRUGS)}.",
                f"D.O.B. {iso}\nDiagnosis: {finding()}",
                f"born {digits}, {r.choice(('male', 'female'))}, {finding()}",
            )
        )
        if i % 6 == 5:
            rows = [[date_words(r)[0], r.choice(SEXES), f"{r.uniform(2, 7):.1f}"] for _ in range(3)]
            add(True, "dob", _csv_text(["date_of_birth", "sex", "ldl_mmol_l"], rows), table=True)
        else:
            add(True, "dob", text)
    for _ in range(20):  # e-mail addresses
        _, forename, surname = person(r)
        email = email_of(r, forename, surname)
        text = r.choice(
            (
                f"Patient asked for the results by email: {email}",
                f"Contact: {email} (prefers email to letters).",
                f"Forwarded the echo report to {email} as requested.",
                f"{email}",
            )
        )
        add(True, "email", text)
    for i in range(20):  # UK phone numbers
        phone = uk_phone(r)
        text = r.choice(
            (
                f"Tel: {phone}. Seen for {finding()}.",
                f"Mobile {phone} - call before 10am.",
                f"Daughter's number {phone}; next of kin.",
                f"Phoned the patient on {phone} to rebook the ECG.",
            )
        )
        if i % 5 == 4:
            rows = [[uk_phone(r), r.choice(SEXES), str(r.randint(30, 90))] for _ in range(3)]
            add(True, "phone", _csv_text(["phone", "sex", "age"], rows), table=True)
        else:
            add(True, "phone", text)
    for i in range(20):  # postcodes
        pc = postcode(r)
        text = r.choice(
            (
                f"Lives alone at {pc}; no carers.",
                f"Postcode {pc}. Referred for {finding()}.",
                f"Home postcode: {pc}",
                f"Transferred to a nursing home in {pc} after the stroke.",
            )
        )
        if i % 5 == 4:
            rows = [[postcode(r), str(r.randint(30, 90)), str(r.choice(ICD10))] for _ in range(3)]
            add(True, "postcode", _csv_text(["postcode", "age", "icd10"], rows), table=True)
        else:
            add(True, "postcode", text)
    for i in range(20):  # MRNs / hospital numbers
        number = mrn(r.choice(SITES), r.randrange(10**6))
        text = r.choice(
            (
                f"MRN {number}: {finding()}.",
                f"Hospital no. {number} - echo booked for 12 weeks.",
                f"Record {number} was duplicated in the extract.",
                f"Patient ID (hospital): {number}",
            )
        )
        if i % 5 == 4:
            rows = [
                [mrn(r.choice(SITES), r.randrange(10**6)), str(r.randint(30, 90)), f"{r.uniform(2, 7):.1f}"]
                for _ in range(3)
            ]
            add(True, "mrn", _csv_text(["mrn", "age", "ldl_mmol_l"], rows), table=True)
        else:
            add(True, "mrn", text)
    for _ in range(20):  # postal addresses
        addr = address(r)
        text = r.choice(
            (
                f"Address: {addr}",
                f"Home visit at {addr} by the heart failure nurse.",
                f"Correspondence to be sent to {addr}.",
                f"Moved to {addr} in March.",
            )
        )
        add(True, "address", text)
    eu = (  # (kind, value): national identifiers of other countries that appear in multi-national cohorts
        ("es_dni", "12345678Z"),
        ("es_dni", "87654321X"),
        ("es_nie", "X1234567L"),
        ("it_fiscal_code", "RSSMRA85T10A562S"),
        ("it_fiscal_code", "BNCGLI72C41F205J"),
        ("pl_pesel", "44051401359"),
        ("pl_pesel", "02070803628"),
        ("nl_bsn", "111222333"),
        ("nl_bsn", "123456782"),
        ("fr_nir", "1 85 05 78 006 084 91"),
        ("fr_nir", "2 69 05 49 588 157 80"),
        ("uk_nino", "PN 48 17 26 B"),
        ("uk_nino", "AB123456C"),
        ("uk_nino", "JG 10 37 79 A"),
        ("de_steuer_id", "86095742719"),
        ("fi_hetu", "131052-308T"),
        ("se_personnummer", "19811218-9876"),
        ("be_nrn", "85.07.30-033.28"),
        ("ie_pps", "1234567T"),
        ("dk_cpr", "070761-4285"),
    )
    for kind, value in eu:
        text = r.choice(
            (
                f"National ID {value} (recruited at the partner site).",
                f"Participant identity document: {value}",
                f"ID number {value}; {finding()}.",
                f"Consent form signed, national identification number {value}.",
            )
        )
        add(True, "national_id", text, subtype=kind)

    # ---- negatives
    for _ in range(35):  # clinical and methods sentences
        add(False, "clinical_sentence", prose.sentence())
    for _ in range(25):  # reference-list lines (authors are not patients)
        add(False, "reference", reference(r))
    for _ in range(20):  # drug and gene names
        text = r.choice(
            (
                f"{r.choice(DRUGS).capitalize()} {r.choice((10, 20, 40, 80))} mg once daily",
                f"{r.choice(GENES)} loss-of-function variants and LDL-C",
                f"{r.choice(GENES)} c.{r.randint(100, 4000)}G>A (p.Arg{r.randint(10, 1300)}Trp), likely pathogenic",
                f"Switched from {r.choice(DRUGS)} to {r.choice(DRUGS)} because of myalgia.",
                f"{r.choice(GENES)}/{r.choice(GENES)} double heterozygotes (n = {r.randint(10, 90)})",
            )
        )
        add(False, "drug_gene", text)
    for i in range(20):  # ICD-10 codes
        codes = r.sample(DIAGNOSES, 5)
        if i % 2:
            rows = [[c, d, str(10 + 5 * r.randint(0, 400))] for c, d in codes]
            add(False, "icd10", _csv_text(["icd10", "description", "n"], rows), table=True)
        else:
            add(False, "icd10", "; ".join(f"{c} {d}" for c, d in codes[:3]))
    for _ in range(15):  # rs ids
        rs, gene = r.choice(RSIDS), r.choice(GENES)
        add(
            False,
            "rsid",
            r.choice(
                (
                    f"{rs} ({gene}) OR {r.uniform(1.05, 1.8):.2f} "
                    f"(95% CI {r.uniform(1.0, 1.05):.2f}-{r.uniform(1.8, 2.2):.2f})",
                    f"Lead variant {rs}, p = {r.uniform(1, 9):.1f}e-{r.randint(8, 40)}, EAF {r.uniform(0.01, 0.5):.3f}",
                    f"{rs}\t{gene}\t{r.randint(1, 22)}:{r.randint(1_000_000, 200_000_000)}",
                )
            ),
        )
    for _ in range(20):  # dates of study periods and events in aggregate
        y = r.randint(2005, 2018)
        add(
            False,
            "study_date",
            r.choice(
                (
                    f"Participants were recruited between 1 January {y} and 31 December {y + 4}.",
                    f"Follow-up ended on 31 March {y + 6}.",
                    f"Data were extracted on 14 February {y + 7} (data freeze {y + 7}-02-14).",
                    f"Index dates ranged from {y}-01-01 to {y + 3}-12-31.",
                    f"The protocol was approved by the research ethics committee on {r.randint(1, 28)} "
                    f"{r.choice(MONTHS)} {y} (reference {r.randint(10, 23)}/LO/{r.randint(1000, 2999)}).",
                )
            ),
        )
    for i in range(25):  # aggregate numbers
        if i % 2:
            header, cols = aggregate_ldl(rng, 5)
            rows = [list(map(str, row)) for row in zip(*[c.tolist() for c in cols], strict=True)]
            add(False, "aggregate", _csv_text(header, rows), table=True)
        else:
            n = r.randint(1000, 300_000)
            add(
                False,
                "aggregate",
                r.choice(
                    (
                        f"n = {n:,} ({r.uniform(10, 90):.1f}%)",
                        f"Mean age {r.uniform(50, 75):.1f} (SD {r.uniform(8, 13):.1f}) years; "
                        f"{r.uniform(40, 70):.1f}% male; "
                        f"n = {n:,}",
                        f"Total person-time {n * 7:,} person-years; {r.randint(200, 9000):,} events.",
                        f"Median LDL-C {r.uniform(2, 4):.2f} mmol/L "
                        f"(IQR {r.uniform(1.5, 2):.2f}-{r.uniform(4, 5):.2f})",
                    )
                ),
            )
    for _ in range(15):  # eponyms, sites and methods named after people
        add(
            False,
            "eponym_site",
            r.choice(
                (
                    f"{r.choice(EPONYMS)} estimates by LDL-C quintile",
                    f"Patients were recruited at {r.choice(SITES).name.replace(' (synthetic)', '')}.",
                    f"{r.choice(('Brugada', 'Marfan', 'Takotsubo', 'Wolff-Parkinson-White'))} syndrome was excluded.",
                    f"Agreement was assessed with a {r.choice(('Bland-Altman', 'Passing-Bablok'))} plot.",
                )
            ),
        )
    for _ in range(15):  # registry, accession and software identifiers
        add(
            False,
            "accession",
            r.choice(
                (
                    f"ClinicalTrials.gov NCT0{r.randint(1_000_000, 5_999_999)}",
                    f"ISRCTN{r.randint(10_000_000, 99_999_999)}",
                    f"GWAS Catalog GCST9{r.randint(1_000_000, 9_999_999)}",
                    f"European Nucleotide Archive PRJEB{r.randint(10_000, 69_999)}",
                    f"Ensembl ENSG00000{r.randint(100_000, 299_999)}",
                    "Python 3.11.9; pandas 2.2.1; lifelines 0.27.8; R 4.3.2",
                    f"doi:10.1093/eurheartj/ehad{r.randint(100, 999)}",
                    "See https://www.nice.org.uk/guidance/ng238 for the lipid targets.",
                )
            ),
        )
    for _ in range(10):  # a pseudonym in an output is individual-level data (issue 3): it must not leave
        pid = pseudonyms(rng, 1)[0]
        add(True, "pseudonym", f"Excluded {pid} after the QC step (duplicate ECG).")
    for _ in range(10):  # code
        add(False, "code", r.choice(CODE))
    for _ in range(15):  # lab values and measurements with long numbers
        add(
            False,
            "measurement",
            r.choice(
                (
                    f"Cholesterol {r.uniform(3, 8):.1f} mmol/L, eGFR {r.randint(30, 110)} mL/min/1.73m2",
                    f"QTc {r.randint(380, 500)} ms; QRS {r.randint(80, 160)} ms; PR {r.randint(120, 240)} ms",
                    f"Counts per 100,000 person-years: {r.uniform(100, 4000):.1f}",
                    f"Genotyping call rate {r.uniform(0.97, 0.999):.4f}; "
                    f"{r.randint(500_000, 900_000):,} variants after QC",
                    f"Serum sample batch {r.randint(1000, 9999)}-{r.randint(100, 999)}, "
                    f"analysed {r.randint(1, 12)} plates",
                )
            ),
        )
    return items


def build_labelled(out: Path, seed: int = SEED) -> list[dict]:
    """One file per labelled item under out/items; labels in out/labels.json (outside the checked folder)."""
    shutil.rmtree(out, ignore_errors=True)
    (out / "items").mkdir(parents=True)
    items = labelled_items(seed)
    for item in items:
        (out / "items" / item.name).write_text(item.text if item.text.endswith("\n") else item.text + "\n")
    labels = [{"file": i.name, "positive": i.positive, "kind": i.kind, "subtype": i.subtype} for i in items]
    (out / "labels.json").write_text(json.dumps(labels, indent=1))
    return labels


# ------------------------------------------------------------------------------------------------ all


def prepare(work: Path, scale: float = 1.0, flat_mb: tuple[int, ...] = (10, 100), seed: int = SEED) -> Path:
    """Everything under work/airlock-bundle (reused when its .ready marker matches scale, sizes and VERSION)."""
    home = work / "airlock-bundle"
    stamp = json.dumps({"version": VERSION, "scale": scale, "flat_mb": list(flat_mb), "seed": seed})
    ready = home / ".ready"
    if ready.exists() and ready.read_text() == stamp:
        return home
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    plants = build_bundle(home / "bundle", scale, seed)
    (home / "plants.json").write_text(json.dumps([asdict(p) for p in plants], indent=1))
    build_slice(home / "bundle", home / "slice")
    build_labelled(home / "labelled", seed)
    for mb in flat_mb:
        build_flat_csv(home / "flat" / f"{mb}mb" / f"aggregates_{mb}mb.csv", mb, seed)
    ready.write_text(stamp)
    return home


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in walk(path))


def walk(path: Path) -> Iterator[Path]:
    return (p for p in sorted(path.rglob("*")) if p.is_file())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 is ~100 MB")
    parser.add_argument("--flat-mb", type=int, nargs="*", default=[10, 100])
    args = parser.parse_args()
    home = prepare(args.out, args.scale, tuple(args.flat_mb))
    for part in ("bundle", "slice/tables", "slice/text", "labelled/items"):
        print(f"{part:<16} {tree_bytes(home / part) / 1e6:8.2f} MB")
