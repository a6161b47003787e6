"""Corpus files shaped like real release requests rather than generated tables: cohort extracts, printed R, Stata
and SAS output, skimr and describe() summaries, Quarto/R Markdown reports, OpenSAFELY-style measures, codelists,
GWAS summary statistics, FHIR, HL7 v2, PLINK and NDJSON interchange files, encoded payloads and ACRO output folders.

Every file is written here from the public formats' shapes with synthetic values (fixed seeds, no fetched files).
`add_realworld(corpus, rng)` adds them, each marked `realworld=True`. Labels follow DESIGN.md and issue 11: the
truth, not what any checker says today.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import re
import struct
import zlib
from datetime import date, timedelta
from typing import TYPE_CHECKING

import numpy as np

from tests.airlock_corpus.build import (
    DIAGNOSES,
    SITES,
    Person,
    _bar_chart_png,
    code_cell,
    csv_bytes,
    md_cell,
    minimal_pdf,
    nhs_forms,
    notebook_bytes,
    out_result,
    out_stream,
    pseudonym,
    random_person,
    spaced,
    zip_bytes,
)

if TYPE_CHECKING:
    from tests.airlock_corpus.build import Corpus

ZWSP = "\u200b"
SHORT_DX = ("AF", "HF", "CAD", "FH", "HCM")
REGIONS = ("North East", "North West", "Yorkshire and the Humber", "East Midlands", "West Midlands", "London")


def text(s: str) -> bytes:
    return s.encode()


def fmt(n: int) -> str:
    return f"{n:,}"


# ---------------------------------------------------------------------------------------------------- SNOMED ids

_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)
_INV = (0, 4, 3, 2, 1, 5, 6, 7, 8, 9)


def verhoeff_digit(body: str) -> str:
    """The Verhoeff check digit SNOMED CT appends to an id's item, namespace and partition digits."""
    c = 0
    for i, ch in enumerate(reversed(body)):
        c = _D[c][_P[(i + 1) % 8][int(ch)]]
    return str(_INV[c])


def sctid(code: str) -> str:
    """`code` with its last digit replaced by the correct Verhoeff check digit (real SNOMED ids already have it)."""
    return code[:-1] + verhoeff_digit(code[:-1])


# ---------------------------------------------------------------------------------------------------- PNG chunks


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_with_chunks(png: bytes, chunks: list[tuple[bytes, bytes]]) -> bytes:
    """The PNG with extra ancillary chunks inserted just before IEND."""
    iend = png.rindex(b"IEND") - 4
    return png[:iend] + b"".join(png_chunk(k, d) for k, d in chunks) + png[iend:]


# ---------------------------------------------------------------------------------------------------- builders


def add_realworld(c: Corpus, rng: np.random.Generator) -> None:
    _person_level(c, rng)
    _printed_counts(c, rng)
    _encoded(c, rng)
    _interchange(c, rng)
    _statistics(c, rng)
    _acro_folder(c, rng)
    _clean(c, rng)
    _survival_and_table_one(c, rng)


def _add(c: Corpus, relpath: str, content: bytes, label: str, category: str, why: str, **kw) -> None:
    c.add(relpath, content, label, category, why, realworld=True, **kw)


def _person_level(c: Corpus, rng: np.random.Generator) -> None:
    cat = "table"
    n = 299
    rows = []
    for _ in range(n):
        age = int(rng.integers(40, 96)) if rng.random() > 0.05 else round(float(rng.uniform(40, 95)), 3)
        rows.append(
            [
                age,
                int(rng.random() < 0.43),
                int(rng.lognormal(5.6, 1.0)),
                int(rng.random() < 0.42),
                int(rng.choice([20, 25, 30, 35, 38, 40, 45, 50, 60])),
                int(rng.random() < 0.35),
                f"{rng.normal(263000, 97000):.1f}",
                f"{max(0.5, rng.lognormal(0.3, 0.4)):.2f}",
                int(rng.normal(136, 4.4)),
                int(rng.random() < 0.65),
                int(rng.random() < 0.32),
                int(rng.integers(4, 286)),
                int(rng.random() < 0.32),
            ]
        )
    header = [
        "age",
        "anaemia",
        "creatinine_phosphokinase",
        "diabetes",
        "ejection_fraction",
        "high_blood_pressure",
        "platelets",
        "serum_creatinine",
        "serum_sodium",
        "sex",
        "smoking",
        "time",
        "DEATH_EVENT",
    ]
    _add(
        c,
        "studies/heart_failure/heart_failure_clinical_records.csv",
        csv_bytes(header, rows),
        "block",
        cat,
        "a cohort table of 299 heart-failure patients, one row each (clinical measurements, follow-up time and "
        "death): individual-level with no identifier column",
    )
    km = [
        [
            int(rng.integers(1, 1826)),
            int(rng.random() < 0.28),
            rng.choice(["statin", "statin+ezetimibe", "pcsk9i"]),
            int(rng.integers(38, 90)),
        ]
        for _ in range(350)
    ]
    _add(
        c,
        "outputs/km_input.csv",
        csv_bytes(["time", "event", "group", "age"], km),
        "block",
        cat,
        "Kaplan-Meier input: time, event, group and age per row (350 people)",
    )
    per_person = [
        [
            f"{rng.normal(3.1, 0.9):.2f}",
            f"{rng.normal(1.3, 0.3):.2f}",
            int(rng.integers(105, 185)),
            f"{rng.normal(28, 4.5):.1f}",
            11,
        ]
        for _ in range(240)
    ]
    _add(
        c,
        "outputs/ldl_by_patient_with_n.csv",
        csv_bytes(["ldl_mmol_l", "hdl_mmol_l", "sbp_mmhg", "bmi", "n"], per_person),
        "block",
        cat,
        "per-person measurements with a constant n = 11 column added: the count column is a disguise",
    )
    samples = [f"CVD{int(x):05d}" for x in rng.choice(np.arange(10000, 99999), 48, replace=False)]
    wide = []
    for _ in range(60):
        wide.append(
            [
                f"rs{int(rng.integers(1_000, 900_000_000))}",
                int(rng.integers(1, 23)),
                int(rng.integers(10_000, 240_000_000)),
                str(rng.choice(list("ACGT"))),
                f"{rng.normal(0, 0.05):.4f}",
                f"{rng.uniform(1e-12, 1e-6):.2e}",
                *(f"{x:.3f}" for x in np.clip(rng.normal(0.8, 0.6, len(samples)), 0, 2)),
            ]
        )
    _add(
        c,
        "outputs/gwas_top_hits_dosages.tsv",
        csv_bytes(["SNP", "CHR", "BP", "A1", "BETA", "P", *samples], wide, delimiter="\t"),
        "block",
        cat,
        "a wide GWAS top-hits table whose extra columns are per-sample dosages (sample ids as column headers)",
        planted=samples,
    )
    visits = []
    for pid in range(1, 121):
        for v in range(1, 4):
            visits.append(
                [pid, v, f"{rng.normal(140, 18):.0f}", f"{rng.normal(82, 10):.0f}", f"{rng.normal(3, 0.8):.2f}"]
            )
    _add(
        c,
        "outputs/bp_by_visit_long.csv",
        csv_bytes(["id", "visit", "sbp", "dbp", "ldl"], visits),
        "block",
        cat,
        "repeated measures in long format: 120 people x 3 visits, keyed by an ordinal id",
    )
    preds = [[i, int(rng.random() < 0.2), f"{rng.beta(2, 6):.4f}", rng.choice(["train", "test"])] for i in range(500)]
    _add(
        c,
        "outputs/risk_model_predictions.csv",
        csv_bytes(["", "y_true", "y_pred_proba", "split"], preds),
        "block",
        cat,
        "a risk model's per-person predictions with the true outcome (pandas index as first column): individual-level",
    )

    # Re-keyed pseudonyms: the project's pseudonym shape ("P-" + 16 base32) transformed.
    ps = [pseudonym(rng) for _ in range(240)]
    rekeyed = [p[2:][::-1] for p in ps]
    _add(
        c,
        "outputs/followup_by_ref.csv",
        csv_bytes(
            ["ref", "age_at_index", "count"],
            [[r, int(rng.integers(40, 90)), int(rng.integers(1935, 1981))] for r in rekeyed],
        ),
        "block",
        cat,
        "pseudonyms with the P- prefix dropped and reversed, one row each, the year of birth disguised as a count",
        planted=[*ps, *rekeyed],
    )
    ps2 = [pseudonym(rng) for _ in range(12)]
    lower = [p.lower() for p in ps2]
    _add(
        c,
        "outputs/recheck_list.txt",
        text(
            "Records to re-check before the next extract (lab values out of range):\n\n"
            + "".join(f"  {p}  LDL-C {rng.normal(9, 1):.1f} mmol/L\n" for p in lower)
        ),
        "block",
        "text",
        "project pseudonyms lower-cased, one per line with a lab value",
        planted=[*ps2, *lower],
    )
    ps3 = [pseudonym(rng) for _ in range(150)]
    split = [p[:8] + ZWSP + p[8:] for p in ps3]
    _add(
        c,
        "outputs/linked_ldl.csv",
        csv_bytes(
            ["patient", "ldl_mmol_l", "on_statin"],
            [[s, f"{rng.normal(3, 0.9):.2f}", rng.choice(["yes", "no"])] for s in split],
        ),
        "block",
        cat,
        "project pseudonyms split by a zero-width space, one row per person",
        planted=ps3,
    )
    ps4 = [pseudonym(rng) for _ in range(8)]
    bare = [p[2:] for p in ps4]
    _add(
        c,
        "reports/outlier_ids.md",
        text(
            "## Outliers flagged for the data manager\n\n| id | LDL-C (mmol/L) | Lp(a) (nmol/L) |\n|---|---|---|\n"
            + "".join(f"| {b} | {rng.normal(8, 1):.1f} | {int(rng.integers(150, 400))} |\n" for b in bare)
        ),
        "block",
        "text",
        "a Markdown table of eight people keyed by pseudonyms with the prefix dropped",
        planted=[*ps4, *bare],
    )


def _printed_counts(c: Corpus, rng: np.random.Generator) -> None:
    cat = "report"
    _add(
        c,
        "outputs/table_two_row_header.csv",
        text(
            ",Female,Female,Male,Male\n"
            "diagnosis,statin,no statin,statin,no statin\n"
            + "".join(
                f"{d},{int(rng.integers(40, 400))},"
                f"{3 if d == 'Hypertrophic cardiomyopathy' else int(rng.integers(20, 90))},"
                f"{int(rng.integers(40, 400))},{int(rng.integers(20, 90))}\n"
                for d in DIAGNOSES
            )
        ),
        "block",
        "table",
        "a CSV with a two-row header (sex over statin use); one cell of 3",
    )
    tsv_rows = [[s, *(int(x) for x in rng.integers(15, 300, 3))] for s in SITES]
    tsv_rows[3][2] = 6
    _add(
        c,
        "outputs/admissions_by_site.csv",
        csv_bytes(["site", "2021", "2022", "2023"], tsv_rows, delimiter="\t"),
        "block",
        "table",
        "tab-separated values in a file named .csv; one cell of 6",
    )
    _add(
        c,
        "outputs/results_notes.md",
        text(
            "# Results notes\n\nCross-tabulation of diagnosis by sex in the validation cohort:\n\n```\n"
            "sex          Female  Male\ndiagnosis\n"
            f"AF              {rng.integers(100, 400)}   {rng.integers(100, 400)}\n"
            f"CAD             {rng.integers(100, 400)}   {rng.integers(100, 400)}\n"
            "HCM                2     5\n"
            f"HF              {rng.integers(100, 400)}   {rng.integers(100, 400)}\n```\n\n"
            "The HCM group is too small to model separately.\n"
        ),
        "block",
        cat,
        "a pandas crosstab printed inside a Markdown code block; cells of 2 and 5",
    )
    _add(
        c,
        "outputs/analysis.Rout.txt",
        text(
            'R version 4.3.1 (2023-06-16) -- "Beagle Scouts"\n\n'
            '> cohort <- readRDS("data/cohort.rds")\n'
            "> table(cohort$diagnosis, cohort$sex)\n"
            "     \n      Female Male\n"
            f"  AF     {rng.integers(300, 500)}  {rng.integers(300, 500)}\n"
            f"  CAD    {rng.integers(300, 500)}  {rng.integers(300, 500)}\n"
            f"  FH      {rng.integers(30, 90)}   {rng.integers(30, 90)}\n"
            "  HCM      4    7\n"
            f"  HF     {rng.integers(200, 400)}  {rng.integers(200, 400)}\n"
            "> proc.time()\n   user  system elapsed \n  2.114   0.183   2.402 \n"
        ),
        "block",
        cat,
        "R console output (.Rout) printing table(): HCM cells of 4 and 7",
    )
    rows = [(r, int(rng.integers(200, 700)), int(rng.integers(200, 700))) for r in REGIONS[:5]]
    rows.append(("Isles", 3, 8))
    tf, tm = sum(r[1] for r in rows), sum(r[2] for r in rows)
    body = "".join(f"{r:>24} | {f:>9} {m:>9} | {f + m:>9}\n" for r, f, m in rows)
    _add(
        c,
        "outputs/tabulate_region_sex.log",
        text(
            "-------------------------------------------------------------------------------\n"
            "      name:  <unnamed>\n       log:  /workspace/outputs/tabulate_region_sex.log\n"
            "  log type:  text\n opened on:   2 May 2024, 10:14:03\n\n"
            '. use "cohort.dta", clear\n\n. tabulate region sex\n\n'
            f"{'':>24} |          sex\n{'region':>24} |    Female      Male |     Total\n"
            f"{'-' * 25}+---------------------+----------\n{body}"
            f"{'-' * 25}+---------------------+----------\n"
            f"{'Total':>24} | {tf:>9} {tm:>9} | {tf + tm:>9}\n\n. log close\n"
        ),
        "block",
        cat,
        "a Stata log with tabulate output: a region with 3 women and 8 men",
    )
    freq = [
        ("Atrial fibrillation", 912),
        ("Coronary artery disease", 604),
        ("Heart failure", 388),
        ("Familial hypercholesterolaemia", 57),
        ("Hypertrophic cardiomyopathy", 5),
    ]
    total = sum(f for _, f in freq)
    cum = 0
    lines = []
    for name, f in freq:
        cum += f
        lines.append(f"{name:<32}{f:>9}{100 * f / total:>12.2f}{cum:>14}{100 * cum / total:>13.2f}")
    _add(
        c,
        "outputs/sas_proc_freq.txt",
        text(
            "                                    The SAS System       10:22 Thursday, May 2, 2024   1\n\n"
            "                                   The FREQ Procedure\n\n"
            f"{'':<32}{'':>9}{'':>12}{'Cumulative':>14}{'Cumulative':>13}\n"
            f"{'diagnosis':<32}{'Frequency':>9}{'Percent':>12}{'Frequency':>14}{'Percent':>13}\n"
            + "-" * 80
            + "\n"
            + "\n".join(lines)
            + "\n"
        ),
        "block",
        cat,
        "a SAS PROC FREQ listing: a frequency of 5",
    )
    _add(
        c,
        "outputs/skim_cohort.txt",
        text(
            "── Data Summary ────────────────────────\n                           Values\n"
            "Name                       cohort\nNumber of rows             1966\nNumber of columns          6\n"
            "_______________________\nColumn type frequency:\n"
            "  factor                   3\n  numeric                  3\n"
            "________________________\nGroup variables            None\n\n"
            "── Variable type: factor ───────────────────────────────────────────────────────\n"
            "  skim_variable n_missing complete_rate ordered n_unique top_counts\n"
            "1 diagnosis            12         0.994 FALSE          5 AF: 912, CAD: 604, HF: 388, FH: 57\n"
            "2 site                 12         0.994 FALSE          6 LGI: 611, RBH: 540, BHC: 402, FRH: 396\n"
            "3 lpa_band             12         0.994 TRUE           3 <75: 1402, 75-199: 545, 200+: 7\n\n"
            "── Variable type: numeric ──────────────────────────────────────────────────────\n"
            "  skim_variable n_missing complete_rate  mean    sd    p0   p25   p50   p75  p100 hist \n"
            "1 age                  12         0.994 64.2  11.3  18    56    65    73    97   ▁▂▇▇▃\n"
            "2 ldl                  121        0.938  2.91  0.93  0.4   2.3   2.9   3.5   9.8 ▂▇▃▁▁\n"
            "3 lpa                    4        0.998 61.7  48.2   5    24    47    88   412   ▇▃▁▁▁\n"
        ),
        "block",
        cat,
        "a skimr summary: 7 people in the top Lp(a) band (top_counts) and 4 missing Lp(a) (n_missing)",
    )
    _add(
        c,
        "outputs/ldl_describe_by_therapy.txt",
        text(
            ">>> df.groupby('therapy')['ldl_mmol_l'].describe().round(2)\n"
            "                   count  mean   std   min   25%   50%   75%   max\n"
            "therapy                                                            \n"
            "atorvastatin      4212.0  1.91  0.72  0.41  1.40  1.83  2.31  6.20\n"
            "bempedoic acid       7.0  2.44  0.51  1.90  2.02  2.37  2.71  3.30\n"
            "ezetimibe          845.0  1.62  0.61  0.38  1.19  1.55  1.98  5.10\n"
            "evolocumab         102.0  1.08  0.49  0.22  0.71  1.01  1.38  3.40\n"
        ),
        "block",
        cat,
        "pandas describe() by group: a group of 7 people, with its minimum and maximum",
    )
    cells = [[d, int(rng.integers(40, 400)), int(rng.integers(40, 400))] for d in DIAGNOSES]
    cells[4][1] = 3
    trs = "".join(f"<tr><td>{d}</td><td>{a}</td><td>{b}</td></tr>\n" for d, a, b in cells)
    _add(
        c,
        "reports/quarto_outcomes.html",
        text(
            '<!DOCTYPE html>\n<html xmlns="http://www.w3.org/1999/xhtml" lang="en"><head>\n<meta charset="utf-8">\n'
            '<meta name="generator" content="quarto-1.4.550">\n<title>Outcomes by diagnosis</title>\n</head>\n'
            '<body>\n<main class="content" id="quarto-document-content">\n<h1 class="title">Outcomes</h1>\n'
            '<div class="cell-output-display">\n<table class="table table-sm table-striped small">\n'
            '<thead><tr class="header"><th>Diagnosis</th><th>Deaths</th><th>Readmissions</th></tr></thead>\n'
            f"<tbody>\n{trs}</tbody>\n</table>\n</div>\n</main>\n</body></html>\n"
        ),
        "block",
        cat,
        "a Quarto HTML report table: 3 deaths in one diagnosis",
    )
    _add(
        c,
        "reports/rmarkdown_counts.html",
        text(
            '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8" />\n'
            '<meta name="generator" content="pandoc" />\n<title>Lp(a) audit</title>\n</head>\n<body>\n'
            '<div class="container-fluid main-container">\n<h1 class="title toc-ignore">Lp(a) audit</h1>\n'
            '<pre class="r"><code>with(audit, table(lpa_band, site))</code></pre>\n'
            "<pre><code>##           site\n##  lpa_band    BHC  LGI  RBH\n"
            f"##   &lt;75     {rng.integers(200, 300)}  {rng.integers(200, 300)}  {rng.integers(200, 300)}\n"
            f"##   75-199    {rng.integers(50, 99)}   {rng.integers(50, 99)}   {rng.integers(50, 99)}\n"
            "##   200+        6    2    9</code></pre>\n</div>\n</body>\n</html>\n"
        ),
        "block",
        cat,
        "an R Markdown HTML report with knitr-printed table() output: cells of 6, 2 and 9",
    )
    lines = [
        "##fileformat=VCFv4.2",
        "##reference=GRCh38",
        "##contig=<ID=chr19,length=58617616>",
        '##INFO=<ID=AC,Number=A,Type=Integer,Description="Allele count in genotypes">',
        '##INFO=<ID=AN,Number=1,Type=Integer,Description="Total number of alleles in called genotypes">',
        '##INFO=<ID=AF,Number=A,Type=Float,Description="Allele frequency">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO",
    ]
    for pos in np.sort(rng.choice(np.arange(11_089_000, 11_134_000), 80, replace=False)):
        ref, alt = rng.choice(list("ACGT"), 2, replace=False)
        ac = int(rng.integers(1, 10))
        lines.append(f"chr19\t{pos}\t.\t{ref}\t{alt}\t.\tPASS\tAC={ac};AN=3684;AF={ac / 3684:.6f}")
    _add(
        c,
        "outputs/ldlr_rare_variants.sites.vcf",
        text("\n".join(lines) + "\n"),
        "block",
        "table",
        "a sites-only VCF of rare LDLR variants: every AC is 1-9 carriers' alleles",
    )
    _add(
        c,
        "notebooks/small_subgroup_model.ipynb",
        notebook_bytes(
            [
                md_cell("## LDL-C model in the HCM subgroup"),
                code_cell(
                    "fit = smf.ols('ldl ~ age + sex + statin + bmi', data=hcm).fit()\nprint(fit.summary())",
                    4,
                    [out_stream(_statsmodels_summary(rng, 13, 4))],
                ),
            ],
            "hcm",
        ),
        "block",
        "notebook",
        "a notebook printing a statsmodels OLS summary of 13 observations (8 residual df)",
    )


def _statsmodels_summary(rng: np.random.Generator, n: int, k: int) -> str:
    """A real statsmodels OLS summary on generated data, with its date and time lines fixed."""
    import pandas as pd
    import statsmodels.formula.api as smf

    names = ["age", "sex", "statin", "bmi", "sbp", "diabetes", "smoker", "egfr"][:k]
    data = pd.DataFrame({name: rng.normal(0, 1, n) for name in names})
    data["ldl"] = 3 + data @ rng.normal(0, 0.3, k) + rng.normal(0, 0.8, n)
    summary = str(smf.ols("ldl ~ " + " + ".join(names), data=data).fit().summary())
    summary = re.sub(r"Date:\s+[^\n]*?(?=\s{2}Prob)", "Date:                Thu, 02 May 2024", summary)
    return re.sub(r"Time:\s+\d\d:\d\d:\d\d", "Time:                        10:31:07", summary) + "\n"


def _patients_csv(people: list[Person]) -> bytes:
    return csv_bytes(
        ["name", "nhs_number", "date_of_birth", "postcode", "ldl_mmol_l"],
        [[p.name, p.nhs, p.dob.isoformat(), p.postcode, f"{5.1 + i / 10:.1f}"] for i, p in enumerate(people)],
    )


def _people(rng: np.random.Generator, n: int) -> list[Person]:
    return [random_person(rng, postcode=f"LS{int(rng.integers(1, 29))} {int(rng.integers(1, 9))}QT") for _ in range(n)]


def _encoded(c: Corpus, rng: np.random.Generator) -> None:
    cat = "encoded"
    people = _people(rng, 8)
    table = _patients_csv(people)
    planted = [x for p in people for x in p.planted()]
    b64 = base64.encodebytes(table).decode()
    _add(
        c,
        "outputs/model_state.txt",
        text(f"# serialised model state (do not edit)\n{b64}"),
        "block",
        cat,
        "base64 text (76-column lines) of a CSV of named patients with NHS numbers",
        planted=planted,
    )
    people = _people(rng, 6)
    table = _patients_csv(people)
    hexed = table.hex()
    _add(
        c,
        "outputs/calibration_vector.txt",
        text("\n".join(hexed[i : i + 64] for i in range(0, len(hexed), 64)) + "\n"),
        "block",
        cat,
        "hex text of a CSV of named patients with NHS numbers",
        planted=[x for p in people for x in p.planted()],
    )
    people = _people(rng, 10)
    blob = base64.b64encode(_patients_csv(people)).decode()
    parts = [blob[i : i + 120] for i in range(0, len(blob), 120)]
    _add(
        c,
        "outputs/model_weights.csv",
        csv_bytes(["layer", "shard", "weights"], [["dense_1", i, p] for i, p in enumerate(parts)]),
        "block",
        cat,
        "base64 cells ('weights') that join into a CSV of named patients",
        planted=[x for p in people for x in p.planted()],
    )
    people = _people(rng, 12)
    packed = base64.b64encode(gzip.compress(_patients_csv(people), mtime=0)).decode()
    _add(
        c,
        "outputs/xgb_config.json",
        text(json.dumps({"model": "xgboost", "version": "2.0.3", "booster_state": packed}, indent=1) + "\n"),
        "block",
        cat,
        "a JSON config whose 'booster_state' is a gzip-compressed patient table as base64 letters",
        planted=[x for p in people for x in p.planted()],
    )
    people = _people(rng, 5)
    raw = _patients_csv(people)
    numbers = [f"0.{''.join(f'{b:03d}' for b in raw[i : i + 5])}" for i in range(0, len(raw), 5)]
    _add(
        c,
        "outputs/spline_coefficients.csv",
        csv_bytes(["term", "estimate"], [[f"s(age).{i + 1}", v] for i, v in enumerate(numbers)]),
        "block",
        cat,
        "numeric 'coefficients' whose digits are the bytes of a patient table (three digits a byte); no standard "
        "decoding exists, so review (high-entropy cells) is the tolerable minimum",
        acceptable={"block", "review"},
        planted=[x for p in people for x in p.planted()],
    )
    person = random_person(rng, postcode="LS6 2QT")
    letter = (
        f"Dear Dr Lloyd,\nRe: {person.name}, DOB {person.dob_uk}, NHS {spaced(person.nhs)}, {person.postcode}\n"
        "Thank you for referring this patient with suspected familial hypercholesterolaemia.\n"
    ).encode()
    doc = {
        "resourceType": "DocumentReference",
        "id": "clinic-letter-0192",
        "status": "current",
        "type": {
            "coding": [{"system": "http://snomed.info/sct", "code": "823701000000103", "display": "Clinic letter"}]
        },
        "subject": {"reference": "Patient/example"},
        "date": "2024-04-11T09:30:00+01:00",
        "content": [
            {
                "attachment": {
                    "contentType": "text/plain",
                    "language": "en-GB",
                    "data": base64.b64encode(letter).decode(),
                }
            }
        ],
    }
    _add(
        c,
        "outputs/clinic_letter.fhir.json",
        text(json.dumps(doc, indent=2) + "\n"),
        "block",
        cat,
        "a FHIR DocumentReference whose attachment (base64) is a letter naming a patient",
        planted=person.planted(),
    )
    png = _bar_chart_png()
    people = _people(rng, 6)
    _add(
        c,
        "figures/km_curve_annotated.png",
        png_with_chunks(png, [(b"tEXt", b"Comment\x00" + _patients_csv(people))]),
        "block",
        cat,
        "a PNG whose tEXt chunk holds a CSV of named patients",
        planted=[x for p in people for x in p.planted()],
    )
    people = _people(rng, 6)
    itxt = b"patients\x00\x00\x00en\x00\x00" + json.dumps([{"name": p.name, "nhs": p.nhs} for p in people]).encode()
    _add(
        c,
        "figures/forest_plot_meta.png",
        png_with_chunks(png, [(b"iTXt", itxt)]),
        "block",
        cat,
        "a PNG whose iTXt chunk holds names and NHS numbers as JSON",
        planted=[x for p in people for x in (p.name, *nhs_forms(p.nhs))],
    )
    people = _people(rng, 9)
    ztxt = b"Description\x00\x00" + zlib.compress(_patients_csv(people))
    _add(
        c,
        "figures/roc_curve.png",
        png_with_chunks(png, [(b"zTXt", ztxt)]),
        "block",
        cat,
        "a PNG whose zTXt chunk (deflated) holds a patient table",
        planted=[x for p in people for x in p.planted()],
    )
    people = _people(rng, 7)
    _add(
        c,
        "figures/ldl_trend.png",
        png + zip_bytes([("patients.csv", _patients_csv(people))]),
        "block",
        cat,
        "a zip holding a patient table appended after the PNG's IEND chunk",
        planted=[x for p in people for x in p.planted()],
    )
    people = _people(rng, 7)
    pdf = minimal_pdf(["Supplementary Figure S3", "Mean LDL-C by site, 2015-2021 (all sites n > 300)."])
    _add(
        c,
        "figures/supplementary_s3.pdf",
        pdf + zip_bytes([("linkage.csv", _patients_csv(people))]),
        "block",
        cat,
        "a zip holding a patient table appended after the PDF's %%EOF",
        planted=[x for p in people for x in p.planted()],
    )
    _add(
        c,
        "figures/ldl_by_age.png",
        png + rng.bytes(3000),
        "review",
        cat,
        "3,000 unknown bytes after a clean PNG's IEND: trailing bytes are a finding, not noise",
        acceptable={"review", "block"},
    )
    _add(
        c,
        "figures/supplementary_s4.pdf",
        pdf + rng.bytes(2048),
        "review",
        cat,
        "2 KB of unknown bytes after a clean PDF's %%EOF",
        acceptable={"review", "block"},
    )


def _interchange(c: Corpus, rng: np.random.Generator) -> None:
    cat = "interchange"
    people = _people(rng, 25)
    lines = []
    for p in people:
        lines.append(
            json.dumps(
                {
                    "resourceType": "Patient",
                    "id": hashlib.sha1(p.nhs.encode()).hexdigest()[:16],
                    "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": p.nhs}],
                    "name": [{"use": "official", "family": p.last, "given": [p.first]}],
                    "gender": "female" if p.title == "Ms" else "male",
                    "birthDate": p.dob.isoformat(),
                    "address": [{"postalCode": p.postcode, "country": "GB"}],
                }
            )
        )
    _add(
        c,
        "outputs/Patient.ndjson",
        text("\n".join(lines) + "\n"),
        "block",
        cat,
        "a FHIR bulk-data export (NDJSON) of Patient resources with names, NHS numbers and birth dates",
        planted=[x for p in people for x in p.planted()],
    )
    records = [
        {
            "age": int(rng.integers(35, 90)),
            "sex": str(rng.choice(["F", "M"])),
            "ldl": round(float(rng.normal(3, 0.9)), 2),
            "sbp": int(rng.integers(100, 185)),
            "mace": int(rng.random() < 0.2),
        }
        for _ in range(300)
    ]
    _add(
        c,
        "outputs/cohort_records.ndjson",
        text("".join(json.dumps(r) + "\n" for r in records)),
        "block",
        cat,
        "NDJSON, one line per person (age, sex, LDL-C, blood pressure, outcome), no identifiers",
    )
    obs = []
    for i in range(120):
        obs.append(
            json.dumps(
                {
                    "resourceType": "Observation",
                    "id": f"ldl-{i:04d}",
                    "status": "final",
                    "code": {
                        "coding": [{"system": "http://loinc.org", "code": "13457-7", "display": "LDL cholesterol"}]
                    },
                    "subject": {"reference": f"Patient/{hashlib.sha1(str(i).encode()).hexdigest()[:16]}"},
                    "effectiveDateTime": (date(2021, 1, 4) + timedelta(days=int(rng.integers(0, 900)))).isoformat(),
                    "valueQuantity": {"value": round(float(rng.normal(3, 0.9)), 2), "unit": "mmol/L"},
                }
            )
        )
    _add(
        c,
        "outputs/Observation.ndjson",
        text("\n".join(obs) + "\n"),
        "block",
        cat,
        "FHIR Observations, each for one patient (subject reference, exact date, value): patient-level",
    )
    p = random_person(rng, postcode="LS7 4SA", address="4 Mill Street, Leeds")
    bundle = {
        "resourceType": "Bundle",
        "id": "discharge-0042",
        "type": "collection",
        "entry": [
            {
                "fullUrl": "urn:uuid:6f1c2e0a-6a7d-4a41-9b8e-3d0f1c2b4a55",
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": p.nhs}],
                    "name": [{"family": p.last, "given": [p.first], "prefix": [p.title]}],
                    "birthDate": p.dob.isoformat(),
                    "address": [{"line": ["4 Mill Street"], "city": "Leeds", "postalCode": p.postcode}],
                },
            },
            {
                "fullUrl": "urn:uuid:0b8e5c1f-2d1a-4e3b-8f55-77aa1c9e2d10",
                "resource": {
                    "resourceType": "Condition",
                    "code": {
                        "coding": [
                            {
                                "system": "http://snomed.info/sct",
                                "code": "401303003",
                                "display": "Acute ST segment elevation myocardial infarction",
                            }
                        ]
                    },
                    "subject": {"reference": "urn:uuid:6f1c2e0a-6a7d-4a41-9b8e-3d0f1c2b4a55"},
                },
            },
        ],
    }
    _add(
        c,
        "outputs/discharge_bundle.json",
        text(json.dumps(bundle, indent=2) + "\n"),
        "block",
        cat,
        "a FHIR Bundle with a Patient resource (name, NHS number, birth date, address)",
        planted=p.planted(),
    )
    anon = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": {"resourceType": "Patient", "id": "pt-1", "gender": "female", "birthDate": "1956"}},
            {
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "subject": {"reference": "Patient/pt-1"},
                    "code": {"coding": [{"system": "http://loinc.org", "code": "2093-3"}]},
                    "valueQuantity": {"value": 7.9, "unit": "mmol/L"},
                }
            },
        ],
    }
    _add(
        c,
        "outputs/example_bundle.json",
        text(json.dumps(anon, indent=2) + "\n"),
        "block",
        cat,
        "a FHIR Bundle with a Patient resource holding no name or number (sex, birth year, a lab value): a "
        "Patient resource is patient-level",
    )
    p = random_person(rng, postcode="LS6 2QT", address="12 Acacia Avenue")
    seg = [
        "MSH|^~\\&|PAS|LTHT|ENCLAVE|RDE|20240502101500||ADT^A01^ADT_A01|MSG0000193|P|2.5.1",
        "EVN|A01|20240502101500",
        f"PID|1||{p.nhs}^^^NHS^NH~RR81234567^^^LTHT^MR||{p.last.upper()}^{p.first.upper()}^^^{p.title}||"
        f"{p.dob:%Y%m%d}|{'F' if p.title == 'Ms' else 'M'}|||12 Acacia Avenue^^Leeds^^{p.postcode}^GBR",
        "PV1|1|I|CARD^W12^B3^LGI||||C1234567^LLOYD^HUW|||CAR||||1|||C1234567^LLOYD^HUW|IP|V0019283",
    ]
    _add(
        c,
        "outputs/adt_a01.hl7",
        text("\r".join(seg) + "\r"),
        "block",
        cat,
        "an HL7 v2 ADT^A01 admission message (PID segment: NHS number, name, birth date, address)",
        planted=(*p.planted(), "RR81234567"),
    )
    p = random_person(rng)
    oru = [
        "MSH|^~\\&|WINPATH|LTHT|ENCLAVE|RDE|20240430083000||ORU^R01^ORU_R01|LAB88123|P|2.4",
        f"PID|1||{p.nhs}^^^NHS^NH||{p.last.upper()}^{p.first.upper()}||{p.dob:%Y%m%d}|F",
        "OBR|1||LP240430-0031|LIPID^Lipid profile^L|||20240430073000",
        "OBX|1|NM|13457-7^LDL cholesterol^LN||7.9|mmol/L|<3.0|H|||F",
        "OBX|2|NM|2085-9^HDL cholesterol^LN||1.1|mmol/L|>1.0|N|||F",
    ]
    _add(
        c,
        "outputs/lab_results_msg.txt",
        text("\n".join(oru) + "\n"),
        "block",
        cat,
        "an HL7 v2 ORU^R01 lab result message saved as .txt (PID with NHS number, name, birth date)",
        planted=p.planted(),
    )
    people = _people(rng, 20)
    full = json.dumps([{"name": q.name, "nhs_number": q.nhs, "dob": q.dob.isoformat()} for q in people], indent=1)
    _add(
        c,
        "outputs/export_partial.json",
        text(full[: int(len(full) * 0.7)]),
        "block",
        cat,
        "JSON records of named patients cut off mid-way (not valid JSON): the text still holds identifiers",
        planted=[x for q in people for x in q.planted()],
    )
    ids = [f"CVD{int(x):05d}" for x in rng.choice(np.arange(10000, 99999), 120, replace=False)]
    ped = []
    for i, sid in enumerate(ids):
        geno = " ".join(" ".join(rng.choice(list(pair), 2)) for pair in rng.choice(["AG", "CT", "AC", "GT"], 60))
        ped.append(f"FAM{i:04d} {sid} 0 0 {int(rng.integers(1, 3))} {int(rng.integers(1, 3))} {geno}")
    _add(
        c,
        "outputs/ldlr_region.ped",
        text("\n".join(ped) + "\n"),
        "block",
        cat,
        "a PLINK .ped file: family and sample ids, sex, phenotype and 60 genotypes per person",
        planted=ids,
    )
    synthea = []
    for q in _people(rng, 40):
        synthea.append(
            [
                str(hashlib.md5(q.nhs.encode()).hexdigest()),
                q.dob.isoformat(),
                "",
                f"999-{int(rng.integers(10, 99))}-{int(rng.integers(1000, 9999))}",
                q.first + str(int(rng.integers(100, 999))),
                q.last + str(int(rng.integers(100, 999))),
                "white",
                "nonhispanic",
                "F" if q.title == "Ms" else "M",
                f"{int(rng.integers(1, 999))} Acacia Avenue",
                "Leeds",
                q.postcode,
                f"{rng.uniform(53.7, 53.9):.6f}",
                f"{rng.uniform(-1.7, -1.4):.6f}",
            ]
        )
    _add(
        c,
        "outputs/patients_export.csv",
        csv_bytes(
            [
                "Id",
                "BIRTHDATE",
                "DEATHDATE",
                "SSN",
                "FIRST",
                "LAST",
                "RACE",
                "ETHNICITY",
                "GENDER",
                "ADDRESS",
                "CITY",
                "ZIP",
                "LAT",
                "LON",
            ],
            synthea,
        ),
        "block",
        cat,
        "a Synthea-style patients.csv: birth dates, SSN-shaped numbers, names, addresses and coordinates",
        planted=[r[1] for r in synthea],
    )


def _statistics(c: Corpus, rng: np.random.Generator) -> None:
    cat = "table"
    terms = ["(Intercept)", "age", "sexMale", "statin", "bmi", "sbp"]
    _add(
        c,
        "outputs/glm_hcm_subgroup.csv",
        csv_bytes(
            ["term", "estimate", "std.error", "statistic", "p.value", "n"],
            [
                [
                    t,
                    f"{rng.normal(0, 0.5):.4f}",
                    f"{rng.uniform(0.1, 0.6):.4f}",
                    f"{rng.normal(0, 2):.3f}",
                    f"{rng.uniform(0.01, 0.9):.3f}",
                    14,
                ]
                for t in terms
            ],
        ),
        "block",
        cat,
        "a regression coefficient table (broom::tidy) with n = 14 for six terms: 8 residual df, under 10",
    )
    coef = "".join(
        f"{t:<12}{rng.normal(0, 1):>9.5f}{rng.uniform(0.1, 1.2):>11.5f}"
        f"{rng.normal(0, 2):>8.3f}{rng.uniform(0, 1):>9.4f}\n"
        for t in terms
    )
    _add(
        c,
        "outputs/lm_hcm_summary.txt",
        text(
            "\nCall:\nlm(formula = ldl ~ age + sex + statin + bmi + sbp, data = hcm)\n\nResiduals:\n"
            "     Min       1Q   Median       3Q      Max \n-1.12034 -0.41210  0.01822  0.38711  1.20113 \n\n"
            "Coefficients:\n            Estimate Std. Error t value Pr(>|t|)\n"
            + coef
            + "---\nSignif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1\n\n"
            "Residual standard error: 0.8123 on 6 degrees of freedom\n"
            "Multiple R-squared:  0.6211,\tAdjusted R-squared:  0.3054 \n"
            "F-statistic: 1.967 on 5 and 6 DF,  p-value: 0.2171\n\n"
        ),
        "block",
        "report",
        "an R summary(lm()) printout: 6 residual degrees of freedom",
    )
    _add(
        c,
        "outputs/ols_fh_subgroup.txt",
        text(_statsmodels_summary(rng, 15, 5)),
        "block",
        "report",
        "a statsmodels OLS summary of 15 observations (9 residual df)",
    )
    _add(
        c,
        "outputs/ldl_means_by_group.csv",
        csv_bytes(
            ["group", "n", "mean_ldl", "sd_ldl"],
            [["FH, on PCSK9i", 6, 1.42, 0.51], ["FH, statin only", 211, 3.12, 1.04], ["non-FH", 1755, 2.61, 0.88]],
        ),
        "block",
        cat,
        "means and SDs by group with N shown: one group of 6 contributors",
    )
    _add(
        c,
        "outputs/length_of_stay_by_site.csv",
        csv_bytes(
            ["site", "n_patients", "median_los_days", "iqr_low", "iqr_high"],
            [["LGI", 412, 4, 2, 7], ["RBH", 389, 5, 3, 8], ["FRH", 4, 11, 9, 16], ["BHC", 298, 4, 2, 6]],
        ),
        "block",
        cat,
        "median length of stay by site with N shown: one site of 4 patients",
    )
    _add(
        c,
        "outputs/ward_costs.csv",
        csv_bytes(
            ["ward", "patients", "total_cost_gbp", "mean_cost_gbp"],
            [["CCU", 184, 1_203_440, 6540.4], ["Cardiology B3", 251, 902_118, 3594.1], ["Private", 3, 61_020, 20340.0]],
        ),
        "block",
        cat,
        "sums and means of costs by ward with N shown: one ward of 3 patients",
    )
    _add(
        c,
        "outputs/ldl_means_no_n.csv",
        csv_bytes(
            ["region", "sex", "mean_ldl", "sd_ldl", "median_ldl"],
            [
                [r, s, f"{rng.normal(2.9, 0.2):.2f}", f"{rng.normal(0.9, 0.05):.2f}", f"{rng.normal(2.8, 0.2):.2f}"]
                for r in REGIONS
                for s in ("Female", "Male")
            ],
        ),
        "review",
        cat,
        "means, SDs and medians by region and sex with no N: how many contribute cannot be known from the file",
    )
    _add(
        c,
        "outputs/cox_coefficients_no_n.csv",
        csv_bytes(
            ["term", "coef", "exp(coef)", "se(coef)", "z", "p"],
            [
                [
                    t,
                    f"{b:.4f}",
                    f"{np.exp(b):.4f}",
                    f"{rng.uniform(0.05, 0.3):.4f}",
                    f"{rng.normal(0, 3):.3f}",
                    f"{rng.uniform(0, 0.5):.4f}",
                ]
                for t, b in zip(terms[1:], rng.normal(0, 0.3, 5), strict=True)
            ],
        ),
        "review",
        cat,
        "a regression coefficient table with no N, events or df: residual degrees of freedom cannot be known",
    )
    full = json.dumps(
        [
            {"year": y, "admissions": int(rng.integers(300, 700)), "deaths": int(rng.integers(20, 60))}
            for y in range(2012, 2024)
        ],
        indent=1,
    )
    _add(
        c,
        "outputs/admissions_by_year_partial.json",
        text(full[: int(len(full) * 0.6)]),
        "review",
        cat,
        "aggregate JSON (yearly counts >= 10) cut off mid-way: malformed, cannot be judged",
    )


def _acro_folder(c: Corpus, rng: np.random.Generator) -> None:
    """An ACRO output folder as `acro.finalise(path, "json")` writes it, hand-written: one table edited after ACRO
    checked it, one untouched, and ACRO's session summary (marked DONT_RELEASE)."""
    cat = "table"
    base = "outputs/acro"
    checked = csv_bytes(
        ["region", "Female", "Male"], [[r, int(rng.integers(200, 700)), int(rng.integers(200, 700))] for r in REGIONS]
    )
    untouched = csv_bytes(
        ["age_band", "Female", "Male"],
        [[a, int(rng.integers(200, 700)), int(rng.integers(200, 700))] for a in ("18-39", "40-59", "60-79", "80+")],
    )
    edited = checked.replace(b"London", b"Greater London")
    summary = b"uid,output_type,analysis_name,dependent_variables,independent_variables\n" + (
        b"output_0,table,crosstab,unknown,region; sex\noutput_1,table,crosstab,unknown,age_band; sex\n"
    )

    def out(uid: str, status: str, kind: str, name: str, summary_text: str) -> dict:
        return {
            "uid": uid,
            "status": status,
            "type": kind,
            "properties": {"method": "crosstab"},
            "files": [{"name": name, "sdc": {"summary": {"MinimumThresholdCheck": 0}}}],
            "outcome": {},
            "command": "acro.crosstab(df.region, df.sex)",
            "summary": summary_text,
            "timestamp": "2024-05-02T10:31:07",
            "comments": [],
            "exception": "",
        }

    results = {
        "version": "1.0.2",
        "tool": {
            "@type": "SoftwareApplication",
            "name": "ACRO",
            "url": "https://github.com/AI-SDC/ACRO",
            "version": "1.0.2",
        },
        "results": {
            "output_0": out(
                "output_0", "pass", "table", "output_0_0.csv", "FrequencyTable : \n MinimumThresholdCheck: pass\n"
            ),
            "output_1": out(
                "output_1", "pass", "table", "output_1_0.csv", "FrequencyTable : \n MinimumThresholdCheck: pass\n"
            ),
            "2ndary_risk_summary_csv-DONT_RELEASE": out(
                "2ndary_risk_summary_csv-DONT_RELEASE", "review", "custom", "session_summary.csv", "review"
            ),
        },
    }
    digests = {
        "output_0_0.csv": hashlib.sha256(checked).hexdigest(),
        "output_1_0.csv": hashlib.sha256(untouched).hexdigest(),
        "session_summary.csv": hashlib.sha256(summary).hexdigest(),
    }
    _add(
        c,
        f"{base}/output_0_0.csv",
        edited,
        "review",
        cat,
        "a clean crosstab edited after ACRO checked it (a label changed): its checksum no longer matches ACRO's",
    )
    _add(c, f"{base}/output_1_0.csv", untouched, "pass", cat, "a clean crosstab ACRO passed, unedited")
    _add(
        c,
        f"{base}/session_summary.csv",
        summary,
        "block",
        cat,
        "ACRO's session summary, which ACRO names DONT_RELEASE",
    )
    results_json = (json.dumps(results, indent=4) + "\n").encode()
    _add(
        c,
        f"{base}/results.json",
        results_json,
        "review",
        "other",
        "ACRO's results.json (commands, per-cell outcomes): the record for the output checker, not an output",
    )
    for name, digest in digests.items():
        _add(
            c,
            f"{base}/checksums/{name}.txt",
            digest.encode(),
            "pass",
            "other",
            "ACRO's checksum file: a SHA-256 hex digest is not an encoded payload",
        )


def _clean(c: Corpus, rng: np.random.Generator) -> None:
    snomed = [
        ("49436004", "Atrial fibrillation"),
        ("5370000", "Atrial flutter"),
        ("282825002", "Paroxysmal atrial fibrillation"),
        ("440059007", "Persistent atrial fibrillation"),
        ("706923002", "Longstanding persistent atrial fibrillation"),
        ("762247006", "Preexcited atrial fibrillation"),
        ("1066841000000106", "Atrial fibrillation monitoring first letter"),
        ("195080001", "Atrial fibrillation and flutter"),
        ("314208002", "Rapid atrial fibrillation"),
        ("426749004", "Chronic atrial fibrillation"),
        ("1066831000000104", "Atrial fibrillation annual review"),
        ("713422000", "Atrial fibrillation with mitral stenosis"),
        ("1221000119103", "Ischemic stroke due to atrial fibrillation"),
    ]
    snomed = [(sctid(code), term) for code, term in snomed]
    _add(
        c,
        "codelists/opensafely-atrial-fibrillation.csv",
        csv_bytes(["code", "term"], snomed),
        "pass",
        "table",
        "an OpenCodelists-style SNOMED CT codelist: concept ids up to 16 digits are codes, not card numbers",
    )
    icd = [
        ("I50.0", "Congestive heart failure"),
        ("I50.1", "Left ventricular failure"),
        ("I50.9", "Heart failure, unspecified"),
        ("I11.0", "Hypertensive heart disease with (congestive) heart failure"),
        ("I13.0", "Hypertensive heart and renal disease with (congestive) heart failure"),
        ("I42.0", "Dilated cardiomyopathy"),
        ("I25.5", "Ischaemic cardiomyopathy"),
    ]
    _add(
        c,
        "codelists/icd10-heart-failure.csv",
        csv_bytes(["icd10_code", "description"], icd),
        "pass",
        "table",
        "an ICD-10 codelist",
    )
    opcs = [
        ("K40.1", "Saphenous vein graft replacement of one coronary artery"),
        ("K49.1", "Percutaneous transluminal balloon angioplasty of one coronary artery"),
        (
            "K75.1",
            "Percutaneous transluminal balloon angioplasty and insertion of 1-2 drug-eluting stents into "
            "coronary artery",
        ),
        ("K63.1", "Angiocardiography of left side of heart NEC"),
        ("K59.1", "Implantation of cardioverter defibrillator using one electrode lead"),
    ]
    _add(
        c,
        "codelists/opcs4-coronary-revascularisation.csv",
        csv_bytes(["code", "term"], opcs),
        "pass",
        "table",
        "an OPCS-4 procedure codelist",
    )
    loinc = [
        ("13457-7", "Cholesterol in LDL [Mass/volume] in Serum or Plasma by calculation"),
        ("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma"),
        ("2085-9", "Cholesterol in HDL [Mass/volume] in Serum or Plasma"),
        ("2571-8", "Triglyceride [Mass/volume] in Serum or Plasma"),
        ("10835-7", "Lipoprotein a [Mass/volume] in Serum or Plasma"),
        ("43583-4", "Lipoprotein a [Moles/volume] in Serum or Plasma"),
    ]
    _add(
        c,
        "codelists/loinc-lipids.csv",
        csv_bytes(["loinc_num", "long_common_name"], loinc),
        "pass",
        "table",
        "a LOINC codelist (codes with a check digit after the hyphen)",
    )
    dmd = [
        ("C10AA05", "Atorvastatin", "39733211000001101", "Atorvastatin 80mg tablets"),
        ("C10AA05", "Atorvastatin", "42211011000001104", "Atorvastatin 40mg tablets"),
        ("C10AA07", "Rosuvastatin", "39695211000001102", "Rosuvastatin 20mg tablets"),
        ("C10AX09", "Ezetimibe", "34186711000001102", "Ezetimibe 10mg tablets"),
        ("C10AX13", "Evolocumab", "24220311000001103", "Repatha 140mg/1ml solution for injection pre-filled pens"),
        ("C10AX16", "Inclisiran", "40255811000001108", "Leqvio 284mg/1.5ml solution for injection pre-filled syringes"),
    ]
    dmd = [(atc, name, sctid(code), term) for atc, name, code, term in dmd]
    _add(
        c,
        "codelists/lipid-lowering-dmd.csv",
        csv_bytes(["atc_code", "atc_name", "dmd_id", "dmd_name"], dmd),
        "pass",
        "table",
        "an ATC and dm+d medication codelist (dm+d ids are 17-digit SNOMED-style ids)",
    )
    prevalence = []
    for code, term in snomed[:9]:
        n = int(rng.integers(15, 900)) // 5 * 5
        prevalence.append([code, term, n, f"{1000 * n / 184_220:.2f}"])
    _add(
        c,
        "outputs/af_prevalence_by_code.csv",
        csv_bytes(["snomed_concept_id", "term", "patients", "per_1000"], prevalence),
        "pass",
        "table",
        "prevalence by SNOMED concept id: patients >= 15, rounded to 5, and rates per 1,000",
    )
    t1 = [
        ("N", "9,412", "9,000"),
        ("Age, mean (SD)", "64.2 (11.3)", "63.8 (11.9)"),
        ("Female, n (%)", "3,561 (37.8)", "3,393 (37.7)"),
        ("Diabetes, n (%)", "1,807 (19.2)", "1,755 (19.5)"),
        ("Current smoker, n (%)", "1,271 (13.5)", "1,296 (14.4)"),
        ("LDL-C mmol/L, median [IQR]", "2.9 [2.3, 3.6]", "3.0 [2.3, 3.7]"),
        ("eGFR < 60, n (%)", "1,130 (12.0)", "1,062 (11.8)"),
        ("Prior MI, n (%)", "847 (9.0)", "801 (8.9)"),
    ]
    _add(
        c,
        "outputs/table1_baseline.csv",
        csv_bytes(["characteristic", "statin", "no statin"], t1),
        "pass",
        "table",
        "Table 1 with 'n (%)' cells, means (SD) and medians [IQR]; every count >= 10",
    )
    ssf = []
    for _ in range(1200):
        ea, oa = rng.choice(list("ACGT"), 2, replace=False)
        ssf.append(
            [
                int(rng.integers(1, 23)),
                int(rng.integers(10_000, 240_000_000)),
                ea,
                oa,
                f"{rng.normal(0, 0.03):.5f}",
                f"{rng.uniform(0.004, 0.02):.5f}",
                f"{rng.uniform(0.01, 0.99):.4f}",
                f"{rng.uniform(1e-15, 1):.4g}",
                f"rs{int(rng.integers(1_000, 900_000_000))}",
                int(rng.integers(90_000, 96_000)),
            ]
        )
    ssf.sort(key=lambda r: (r[0], r[1]))
    _add(
        c,
        "outputs/GCST90099999.tsv",
        csv_bytes(
            [
                "chromosome",
                "base_pair_location",
                "effect_allele",
                "other_allele",
                "beta",
                "standard_error",
                "effect_allele_frequency",
                "p_value",
                "rsid",
                "n",
            ],
            ssf,
            delimiter="\t",
        ),
        "pass",
        "table",
        "GWAS summary statistics in the GWAS Catalog's SSF layout",
    )
    glm = []
    for i in range(800):
        ref, alt = rng.choice(list("ACGT"), 2, replace=False)
        glm.append(
            [
                19,
                11_089_000 + 37 * i,
                f"rs{int(rng.integers(1_000, 900_000_000))}",
                ref,
                alt,
                alt,
                "ADD",
                int(rng.integers(3500, 3700)),
                f"{rng.normal(0, 0.05):.5f}",
                f"{rng.uniform(0.01, 0.05):.5f}",
                f"{rng.normal(0, 2):.4f}",
                f"{rng.uniform(1e-9, 1):.4g}",
            ]
        )
    _add(
        c,
        "outputs/ldl.PHENO1.glm.linear.tsv",
        csv_bytes(
            ["#CHROM", "POS", "ID", "REF", "ALT", "A1", "TEST", "OBS_CT", "BETA", "SE", "T_STAT", "P"],
            glm,
            delimiter="\t",
        ),
        "pass",
        "table",
        "PLINK 2 --glm association results: per-variant aggregates (OBS_CT in thousands)",
    )
    measures = []
    for month in range(1, 13):
        for sex in ("female", "male"):
            den = int(rng.integers(40_000, 42_000)) // 5 * 5
            num = int(rng.integers(300, 600)) // 5 * 5
            measures.append(
                ["af_anticoag_rate", f"2023-{month:02d}-01", f"2023-{month:02d}-28", f"{num / den:.6f}", num, den, sex]
            )
    _add(
        c,
        "outputs/measures/measure_af_anticoag_rate.csv",
        csv_bytes(["measure", "interval_start", "interval_end", "ratio", "numerator", "denominator", "sex"], measures),
        "pass",
        "table",
        "OpenSAFELY-style measures output: numerators and denominators rounded to 5, all >= 10",
    )
    incidence = [
        [y, int(rng.integers(180_000, 190_000)) // 5 * 5, int(rng.integers(900, 1300)) // 5 * 5]
        for y in range(2012, 2024)
    ]
    incidence = [[y, pop, ev, f"{1000 * ev / pop:.2f}"] for y, pop, ev in incidence]
    _add(
        c,
        "outputs/hf_incidence_by_year.csv",
        csv_bytes(["year", "population", "new_cases", "rate_per_1000"], incidence),
        "pass",
        "table",
        "heart-failure incidence by year with rates per 1,000",
    )
    rates = [
        [r, f"{rng.uniform(1.5, 9.5):.1f}", f"{rng.uniform(0.8, 4.0):.1f}", f"{rng.uniform(2, 8):.1f}"] for r in REGIONS
    ]
    _add(
        c,
        "outputs/rates_per_1000_by_region.csv",
        csv_bytes(["region", "mi_per_1000_py", "stroke_per_1000_py", "hf_per_1000_py"], rates),
        "pass",
        "table",
        "rates per 1,000 person-years by region: small numbers that are rates, not counts",
    )
    _add(
        c,
        "outputs/ldl_means_with_n.csv",
        csv_bytes(
            ["region", "n", "mean_ldl", "sd_ldl", "median_ldl"],
            [
                [
                    r,
                    int(rng.integers(120, 2500)),
                    f"{rng.normal(2.9, 0.2):.2f}",
                    f"{rng.normal(0.9, 0.05):.2f}",
                    f"{rng.normal(2.8, 0.2):.2f}",
                ]
                for r in REGIONS
            ],
        ),
        "pass",
        "table",
        "means, SDs and medians by region with N >= 120 in every cell",
    )
    idx = [[i, d, int(rng.integers(40, 900)), int(rng.integers(40, 900))] for i, d in enumerate(DIAGNOSES)]
    _add(
        c,
        "outputs/counts_with_pandas_index.csv",
        csv_bytes(["Unnamed: 0", "diagnosis", "female", "male"], idx),
        "pass",
        "table",
        "a clean count table re-saved with pandas' index column ('Unnamed: 0', 0-4): the index is not a count",
    )
    _add(
        c,
        "outputs/table_two_row_header_clean.csv",
        text(
            ",Female,Female,Male,Male\ndiagnosis,statin,no statin,statin,no statin\n"
            + "".join(f"{d},{','.join(str(int(x)) for x in rng.integers(20, 400, 4))}\n" for d in DIAGNOSES)
        ),
        "pass",
        "table",
        "a two-row header CSV whose counts are all >= 20",
    )
    _add(
        c,
        "outputs/hr_by_subgroup.csv",
        csv_bytes(
            ["subgroup", "events", "patients", "hr", "lower_95", "upper_95"],
            [
                ["All", 1873, 18412, 0.78, 0.66, 0.92],
                ["Female", 612, 6954, 0.81, 0.63, 1.04],
                ["Male", 1261, 11458, 0.76, 0.62, 0.93],
                ["Age < 65", 598, 9012, 0.74, 0.55, 0.99],
                ["Age >= 65", 1275, 9400, 0.80, 0.66, 0.97],
            ],
        ),
        "pass",
        "table",
        "hazard ratios by subgroup with events and patients, all >= 10",
    )
    report = "report"
    _add(
        c,
        "outputs/analysis_clean.Rout.txt",
        text(
            'R version 4.3.1 (2023-06-16) -- "Beagle Scouts"\nPlatform: x86_64-pc-linux-gnu (64-bit)\n\n'
            '> library(survival)\n> cohort <- readRDS("data/cohort.rds")\n> nrow(cohort)\n[1] 18412\n'
            "> table(cohort$diagnosis, cohort$sex)\n     \n      Female Male\n"
            + "".join(
                f"  {d:<5}{int(rng.integers(200, 3000)):>6} {int(rng.integers(200, 3000)):>5}\n" for d in SHORT_DX
            )
            + "> fit <- coxph(Surv(time, mace) ~ ldl + age + sex, data = cohort)\n> fit\n"
            "Call:\ncoxph(formula = Surv(time, mace) ~ ldl + age + sex, data = cohort)\n\n"
            "          coef exp(coef) se(coef)      z        p\nldl    0.24784   1.28125  0.02511  9.870  < 2e-16\n"
            "age    0.03104   1.03153  0.00201 15.443  < 2e-16\nsexM   0.21877   1.24454  0.04938  4.430 9.42e-06\n\n"
            "Likelihood ratio test=341.2  on 3 df, p=< 2.2e-16\nn= 18412, number of events= 1873 \n"
            "> proc.time()\n   user  system elapsed \n  6.912   0.402   7.488 \n"
        ),
        "pass",
        report,
        "a clean R session: table() counts >= 200 and a Cox model with n = 18,412 and 1,873 events",
    )
    rows = [(r, int(rng.integers(200, 700)), int(rng.integers(200, 700))) for r in REGIONS]
    tf, tm = sum(r[1] for r in rows), sum(r[2] for r in rows)
    body = "".join(f"{r:>24} | {f:>9,} {m:>9,} | {f + m:>9,}\n" for r, f, m in rows)
    _add(
        c,
        "outputs/stata_analysis.log",
        text(
            "  ___  ____  ____  ____  ____ ®\n /__    /   ____/   /   ____/      18.0\n"
            "___/   /   /___/   /   /___/       BE—Basic Edition\n\n"
            '. use "cohort.dta", clear\n(CVD risk cohort, data freeze 2023-11-30)\n\n'
            ". tabulate region sex\n\n"
            f"{'':>24} |          sex\n{'region':>24} |    Female      Male |     Total\n"
            f"{'-' * 25}+---------------------+----------\n{body}"
            f"{'-' * 25}+---------------------+----------\n{'Total':>24} | {tf:>9,} {tm:>9,} | {tf + tm:>9,}\n\n"
            ". logistic mace ldl age i.sex\n\n"
            "Logistic regression                                     Number of obs =  4,812\n"
            "                                                        LR chi2(3)    = 212.41\n"
            "                                                        Prob > chi2   = 0.0000\n"
            "Log likelihood = -2711.0391                             Pseudo R2     = 0.0377\n\n"
            "------------------------------------------------------------------------------\n"
            "        mace | Odds ratio   Std. err.      z    P>|z|     [95% conf. interval]\n"
            "-------------+----------------------------------------------------------------\n"
            "         ldl |   1.281254   .0321759     9.87   0.000     1.219711    1.345903\n"
            "         age |   1.031529   .0020734    15.44   0.000     1.027473    1.035601\n"
            "             |\n         sex |\n"
            "       Male  |   1.244544   .0614563     4.43   0.000     1.129741    1.371017\n"
            "       _cons |   .0312417   .0061239   -17.69   0.000      .021279    .0458687\n"
            "------------------------------------------------------------------------------\n\n. log close\n"
        ),
        "pass",
        report,
        "a clean Stata log: tabulate counts >= 200 and a logistic model on 4,812 observations",
    )
    _add(
        c,
        "outputs/sas_data_step.log",
        text(
            "1    libname cvd '/workspace/data';\nNOTE: Libref CVD was successfully assigned as follows:\n"
            "      Engine:        V9\n      Physical Name: /workspace/data\n"
            "2    data work.cohort; set cvd.cohort; where age >= 18; run;\n\n"
            "NOTE: There were 18412 observations read from the data set CVD.COHORT.\n"
            "      WHERE age>=18;\nNOTE: The data set WORK.COHORT has 18412 observations and 14 variables.\n"
            "NOTE: DATA statement used (Total process time):\n      real time           0.08 seconds\n"
            "      cpu time            0.06 seconds\n\n3    proc freq data=work.cohort; tables diagnosis; run;\n\n"
            "NOTE: There were 18412 observations read from the data set WORK.COHORT.\n"
            "NOTE: PROCEDURE FREQ used (Total process time):\n      real time           0.02 seconds\n"
        ),
        "pass",
        report,
        "a clean SAS log: observation counts in the thousands, timings",
    )
    _add(
        c,
        "outputs/ols_ldl_summary.txt",
        text(_statsmodels_summary(rng, 1842, 6)),
        "pass",
        report,
        "a statsmodels OLS summary of 1,842 observations ('Least Squares' is a method, not a person)",
    )
    _add(
        c,
        "outputs/skim_clean.txt",
        text(
            "── Data Summary ────────────────────────\n                           Values\n"
            "Name                       cohort\nNumber of rows             18412\nNumber of columns          4\n\n"
            "── Variable type: factor ───────────────────────────────────────────────────────\n"
            "  skim_variable n_missing complete_rate ordered n_unique top_counts\n"
            "1 diagnosis            37         0.998 FALSE          5 AF: 6120, CAD: 5904, HF: 3881, FH: 1570\n\n"
            "── Variable type: numeric ──────────────────────────────────────────────────────\n"
            "  skim_variable n_missing complete_rate  mean    sd    p0   p25   p50   p75  p100 hist \n"
            "1 age                  37         0.998 64.2  11.3  18    56    65    73    97   ▁▂▇▇▃\n"
            "2 ldl                 121         0.993  2.91  0.93  0.4   2.3   2.9   3.5   9.8 ▂▇▃▁▁\n"
        ),
        "pass",
        report,
        "a skimr summary with missing counts and top counts all >= 37",
    )
    _add(
        c,
        "outputs/ldl_describe_clean.txt",
        text(
            ">>> df.groupby('therapy')['ldl_mmol_l'].describe().round(2)\n"
            "                   count  mean   std   min   25%   50%   75%   max\n"
            "therapy                                                            \n"
            "atorvastatin      4212.0  1.91  0.72  0.41  1.40  1.83  2.31  6.20\n"
            "ezetimibe          845.0  1.62  0.61  0.38  1.19  1.55  1.98  5.10\n"
            "evolocumab         102.0  1.08  0.49  0.22  0.71  1.01  1.38  3.40\n"
        ),
        "pass",
        report,
        "pandas describe() by group, every count >= 102",
    )
    _add(
        c,
        "reports/results_crosstab_clean.md",
        text(
            "# Results\n\nDiagnosis by sex:\n\n```\nsex          Female  Male\ndiagnosis\n"
            + "".join(f"{d:<13}{int(rng.integers(100, 900)):>6}{int(rng.integers(100, 900)):>6}\n" for d in SHORT_DX)
            + "```\n"
        ),
        "pass",
        report,
        "a crosstab printed in a Markdown code block, every cell >= 100",
    )
    digests = [hashlib.sha256(f"table-{i}".encode()).hexdigest() for i in range(4)]
    _add(
        c,
        "reports/RELEASE_NOTES.md",
        text(
            "# Release request 2024-05: LDL-C and MACE\n\n## Methods\n\n"
            "Survival was estimated with the Kaplan-Meier method and compared with the log-rank test; hazard ratios "
            "come from Cox proportional hazards models, and LDL-C trajectories from ordinary least squares (Least "
            "Squares, statsmodels 0.15). All counts are rounded to the nearest 5 and cells under 10 are redacted.\n\n"
            "## Files\n\n| file | sha256 |\n| --- | --- |\n"
            + "".join(f"| tables/table_{i}.csv | `{d}` |\n" for i, d in enumerate(digests))
            + "\nCode: git commit 9c1e2f4b7a0d3e5f6a8b9c0d1e2f3a4b5c6d7e8f (tag v1.3.0), "
            "container ghcr.io/example-org/cvd-risk@sha256:" + digests[0] + ".\n"
        ),
        "pass",
        report,
        "release notes naming Kaplan-Meier, Cox and Least Squares, with SHA-256 checksums and a git hash",
    )
    trs = "".join(
        f"<tr><td>{d}</td><td>{fmt(int(rng.integers(200, 4000)))}</td><td>{fmt(int(rng.integers(20, 400)))}</td>"
        f"<td>{rng.uniform(5, 30):.1f}</td></tr>\n"
        for d in DIAGNOSES
    )
    _add(
        c,
        "reports/quarto_summary.html",
        text(
            '<!DOCTYPE html>\n<html xmlns="http://www.w3.org/1999/xhtml" lang="en"><head>\n<meta charset="utf-8">\n'
            '<meta name="generator" content="quarto-1.4.550">\n<meta name="author" content="CVD risk analysis team">\n'
            "<title>MACE after ACS: summary</title>\n</head>\n<body>\n"
            '<main class="content" id="quarto-document-content">\n<h1 class="title">MACE after ACS</h1>\n'
            "<p>Kaplan-Meier estimates and Cox models; counts rounded to 5.</p>\n"
            '<table class="table table-sm table-striped small">\n<thead><tr class="header"><th>Diagnosis</th>'
            "<th>Patients</th><th>MACE</th><th>Rate per 1,000 PY</th></tr></thead>\n"
            f"<tbody>\n{trs}</tbody>\n</table>\n</main>\n</body></html>\n"
        ),
        "pass",
        report,
        "a clean Quarto HTML report: counts >= 20, rates, methods text",
    )
    measure_report = {
        "resourceType": "MeasureReport",
        "id": "af-anticoagulation-2023",
        "status": "complete",
        "type": "summary",
        "measure": "https://example.org/fhir/Measure/af-anticoagulation",
        "period": {"start": "2023-01-01", "end": "2023-12-31"},
        "group": [
            {
                "population": [
                    {"code": {"coding": [{"code": "initial-population"}]}, "count": 18420},
                    {"code": {"coding": [{"code": "denominator"}]}, "count": 9215},
                    {"code": {"coding": [{"code": "numerator"}]}, "count": 7340},
                ],
                "measureScore": {"value": 0.7965},
            }
        ],
    }
    _add(
        c,
        "outputs/af_measure_report.json",
        text(json.dumps(measure_report, indent=2) + "\n"),
        "pass",
        "interchange",
        "a FHIR MeasureReport (summary type): population counts in the thousands, no Patient",
    )
    _add(
        c,
        "outputs/code_usage.ndjson",
        text(
            "".join(
                json.dumps({"snomed_code": code, "term": term, "events": int(rng.integers(20, 900)) // 5 * 5}) + "\n"
                for code, term in snomed[:8]
            )
        ),
        "pass",
        "interchange",
        "NDJSON of aggregate code usage (one line per SNOMED code, events >= 20)",
    )
    meta = {
        "job_request": "https://jobs.example.org/job-requests/4182",
        "commit": "9c1e2f4b7a0d3e5f6a8b9c0d1e2f3a4b5c6d7e8f",
        "outputs": {f"output/table_{i}.csv": {"sha256": d, "size": 1000 + i} for i, d in enumerate(digests)},
        "completed_at": "2024-05-02T10:35:12Z",
    }
    _add(
        c,
        "outputs/metadata/analysis.json",
        text(json.dumps(meta, indent=2) + "\n"),
        "pass",
        "other",
        "a job's output metadata: a git commit, checksums and a timestamp",
    )
    _add(
        c,
        "notebooks/cohort_overview.ipynb",
        notebook_bytes(
            [
                md_cell("# Cohort overview\nCounts rounded to 5; every group >= 10."),
                code_cell(
                    "df.diagnosis.value_counts().round(-1)",
                    1,
                    [
                        out_result(
                            1,
                            {
                                "text/plain": "diagnosis\nAF     6120\nCAD    5900\nHF     3880\nFH     1570\n"
                                "HCM     940\nName: count, dtype: int64"
                            },
                        )
                    ],
                ),
                code_cell(
                    "fit = smf.ols('ldl ~ age + sex + statin + bmi + sbp + diabetes', data=df).fit()\n"
                    "print(fit.summary())",
                    2,
                    [out_stream(_statsmodels_summary(rng, 960, 6))],
                ),
            ],
            "overview",
        ),
        "pass",
        "notebook",
        "a clean notebook: value_counts in the thousands and an OLS summary of 960 observations",
    )
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    ax = fig.subplots()
    years = list(range(2012, 2024))
    ax.plot(years, [float(r[3]) for r in incidence], marker="o")
    ax.set_xlabel("Year")
    ax.set_ylabel("New cases per 1,000")
    ax.set_title("Heart failure incidence")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    _add(
        c,
        "figures/hf_incidence.png",
        buf.getvalue(),
        "review",
        "figure",
        "a clean matplotlib line chart: figures need a human (DESIGN)",
    )
    sites = []
    for _ in range(240):
        ref, alt = rng.choice(list("ACGT"), 2, replace=False)
        ac = int(rng.integers(25, 900))
        sites.append(
            (int(rng.integers(55_039_000, 55_079_000)), f"rs{int(rng.integers(1_000, 900_000_000))}", ref, alt, ac)
        )
    sites.sort()
    vcf = [
        "##fileformat=VCFv4.2",
        "##reference=GRCh38",
        "##contig=<ID=chr1,length=248956422>",
        '##INFO=<ID=AC,Number=A,Type=Integer,Description="Allele count in genotypes">',
        '##INFO=<ID=AN,Number=1,Type=Integer,Description="Total number of alleles in called genotypes">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO",
        *(f"chr1\t{pos}\t{rs}\t{ref}\t{alt}\t.\tPASS\tAC={ac};AN=3684" for pos, rs, ref, alt, ac in sites),
    ]
    _add(
        c,
        "outputs/pcsk9_common_variants.sites.vcf",
        text("\n".join(vcf) + "\n"),
        "pass",
        "table",
        "a sites-only VCF whose allele counts are all >= 25; VCF is outside the default allow-list, so review is "
        "tolerable",
        acceptable={"pass", "review"},
    )


def _survfit_table(times: list[int], at_risk: list[int], events: list[int]) -> str:
    """R's summary(survfit(...)) layout: time, n.risk, n.event, survival, std.err and a 95% CI."""
    lines = [" time n.risk n.event survival std.err lower 95% CI upper 95% CI"]
    surv = 1.0
    for t, n, d in zip(times, at_risk, events, strict=True):
        surv *= 1 - d / n
        se = surv * (d / (n * max(n - d, 1))) ** 0.5
        lines.append(
            f"{t:>5} {n:>6} {d:>7} {surv:>8.3f} {se:>7.4f} {max(0.0, surv - 1.96 * se):>12.3f} "
            f"{min(1.0, surv + 1.96 * se):>12.3f}"
        )
    return "\n".join(lines) + "\n"


def _gtsummary_html(columns: list[str], rows: list[tuple[str, ...]]) -> str:
    head = "".join(f'<th class="gt_col_heading gt_columns_bottom_border gt_center">{c}</th>' for c in columns)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="gt_row gt_{"left" if i == 0 else "center"}">{v}</td>' for i, v in enumerate(r))
        + "</tr>\n"
        for r in rows
    )
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Table 1</title></head><body>\n'
        '<div id="xjkqzqhmbt" style="padding-left:0px;overflow-x:auto;">\n'
        '<table class="gt_table" data-quarto-disable-processing="false">\n'
        f'<thead>\n<tr class="gt_col_headings">{head}</tr>\n</thead>\n<tbody class="gt_table_body">\n{body}'
        '</tbody>\n<tfoot class="gt_footnotes">\n<tr><td class="gt_footnote" colspan="4">'
        "<sup>1</sup> n (%); Median (IQR)</td></tr>\n</tfoot>\n</table>\n</div>\n</body></html>\n"
    )


def _survival_and_table_one(c: Corpus, rng: np.random.Generator) -> None:
    """Survival tables as R prints them, gtsummary Table 1s and an R session record."""
    times = [30, 90, 180, 365, 548, 730, 1095, 1460, 1825]
    at_risk = [412, 398, 371, 330, 262, 181, 88, 31, 6]
    events = [9, 14, 21, 33, 25, 19, 12, 5, 2]
    _add(
        c,
        "outputs/km_summary_pcsk9.txt",
        text(
            "Call: survfit(formula = Surv(time, mace) ~ 1, data = pcsk9)\n\n" + _survfit_table(times, at_risk, events)
        ),
        "block",
        "report",
        "R summary(survfit()) for a Kaplan-Meier curve: event counts of 9, 5 and 2 and 6 at risk at the last time",
    )
    at_risk = [9412, 9318, 9140, 8855, 8410, 7982, 7015, 6120, 5203]
    events = [94, 171, 279, 431, 412, 950, 878, 901, 744]
    _add(
        c,
        "outputs/km_summary_all.txt",
        text(
            "Call: survfit(formula = Surv(time, mace) ~ 1, data = cohort)\n\n" + _survfit_table(times, at_risk, events)
        ),
        "pass",
        "report",
        "R summary(survfit()) for the whole cohort: thousands at risk, every event count >= 94",
    )
    _add(
        c,
        "reports/table1_gtsummary.html",
        text(
            _gtsummary_html(
                [
                    "<strong>Characteristic</strong>",
                    "<strong>Statin</strong>, N = 9,412",
                    "<strong>No statin</strong>, N = 9,000",
                    "<strong>Overall</strong>, N = 18,412",
                ],
                [
                    ("Age", "64 (56, 72)", "63 (55, 72)", "64 (55, 72)"),
                    ("Female", "3,561 (38%)", "3,393 (38%)", "6,954 (38%)"),
                    ("Diabetes", "1,807 (19%)", "1,755 (20%)", "3,562 (19%)"),
                    ("Current smoker", "1,271 (14%)", "1,296 (14%)", "2,567 (14%)"),
                ],
            )
        ),
        "pass",
        "report",
        "a gtsummary Table 1 (HTML): N in the thousands in every column, n (%) cells",
    )
    _add(
        c,
        "reports/table1_by_therapy.html",
        text(
            _gtsummary_html(
                [
                    "<strong>Characteristic</strong>",
                    "<strong>Statin</strong>, N = 9,412",
                    "<strong>Inclisiran</strong>, N = 8",
                    "<strong>Overall</strong>, N = 9,420",
                ],
                [
                    ("Age", "64 (56, 72)", "58 (51, 66)", "64 (56, 72)"),
                    ("Female", "3,561 (38%)", "3 (38%)", "3,564 (38%)"),
                    ("Diabetes", "1,807 (19%)", "2 (25%)", "1,809 (19%)"),
                    ("Current smoker", "1,271 (14%)", "1 (13%)", "1,272 (14%)"),
                ],
            )
        ),
        "block",
        "report",
        "a gtsummary Table 1 (HTML) with an 8-patient column: cells of 3, 2 and 1, and a median age of 8 people",
    )
    _add(
        c,
        "reports/table1.md",
        text(
            "## Table 1. Baseline characteristics\n\n"
            "| Characteristic | Statin (N = 9,412) | No statin (N = 9,000) |\n| --- | --- | --- |\n"
            "| Age, median (IQR) | 64 (56-72) | 63 (55-72) |\n| Female, n (%) | 3,561 (37.8) | 3,393 (37.7) |\n"
            "| Diabetes, n (%) | 1,807 (19.2) | 1,755 (19.5) |\n| Prior MI, n (%) | 847 (9.0) | 801 (8.9) |\n"
            "| LDL-C, mmol/L, mean (SD) | 2.9 (0.9) | 3.1 (1.0) |\n"
        ),
        "pass",
        "report",
        "a Markdown Table 1: 'n (%)' cells and percentages under 10 that are not counts",
    )
    _add(
        c,
        "outputs/sessionInfo.txt",
        text(
            "R version 4.3.1 (2023-06-16)\nPlatform: x86_64-pc-linux-gnu (64-bit)\n"
            "Running under: Ubuntu 22.04.4 LTS\n\nMatrix products: default\n"
            "BLAS:   /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3 \n\n"
            "locale:\n [1] LC_CTYPE=en_GB.UTF-8       LC_NUMERIC=C              \n\n"
            "time zone: Europe/London\ntzcode source: system (glibc)\n\n"
            "attached base packages:\n[1] stats     graphics  grDevices utils     datasets  methods   base     \n\n"
            "other attached packages:\n[1] gtsummary_1.7.2 survival_3.5-7  dplyr_1.1.4     ggplot2_3.4.4  \n\n"
            "loaded via a namespace (and not attached):\n [1] vctrs_0.6.5       cli_3.6.2         rlang_1.1.3      \n"
            " [4] generics_0.1.3    glue_1.7.0        fansi_1.0.6      \n"
        ),
        "pass",
        "report",
        "R sessionInfo(): versions, platform and locale",
    )
