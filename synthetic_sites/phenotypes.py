"""The patient "truth" every export is rendered from: demographics, genotype carrier status, risk factors,
measurements, diagnoses, medications and follow-up MACE outcomes, simulated a chunk of patients at a time.

The planted effects live here and nowhere else: LDLR/APOB/PCSK9 carriers have familial-hypercholesterolaemia LDL,
the LPA risk allele raises MI risk, MYH7/MYBPC3 carriers develop hypertrophic cardiomyopathy (high LV mass,
I42.1), TTN-truncating carriers develop dilated cardiomyopathy (low LVEF, dilated LV, high NT-proBNP, I42.0).
Values are stored in the csv-local units of the data-layout contract (LDL mmol/L, HbA1c mmol/mol); the clinical
writers convert for FHIR sites. Everything is vectorised over the chunk so 100,000 patients stay fast.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from synthetic_sites.genomics import PLANTED, PLANTED_GROUPS

BASELINE_START = np.datetime64("2012-01-01")
BASELINE_DAYS = 8 * 365
CENSOR_DATE = np.datetime64("2024-12-31")  # end of follow-up in the exports

SMOKING = np.array(["N", "EX", "Y"])
ETHNICITIES = np.array(
    [
        "White British",
        "White Irish",
        "White Other",
        "Indian",
        "Pakistani",
        "Bangladeshi",
        "Chinese",
        "Black African",
        "Black Caribbean",
        "Mixed",
        "Other",
        "Not stated",
    ]
)
_ETHNICITY_P = np.array([0.70, 0.02, 0.06, 0.04, 0.03, 0.015, 0.01, 0.03, 0.02, 0.02, 0.015, 0.02])
_SOUTH_ASIAN = {"Indian", "Pakistani", "Bangladeshi"}

# Heterozygous carrier frequencies, enriched well above population rates so a few hundred patients show effects.
CARRIER_FREQUENCY = {
    "LDLR_FH": 0.04,
    "APOB_FH": 0.015,
    "PCSK9_GOF": 0.01,
    "MYH7_HCM": 0.012,
    "MYBPC3_HCM": 0.015,
    "TTN_TV": 0.03,
}
LPA_ALLELE_FREQUENCY = 0.08

DIAGNOSIS_TEXT = {
    "I10": "Essential (primary) hypertension",
    "E11.9": "Type 2 diabetes mellitus without complications",
    "E78.0": "Pure hypercholesterolaemia",
    "I25.1": "Atherosclerotic heart disease",
    "I25.2": "Old myocardial infarction",
    "I42.0": "Dilated cardiomyopathy",
    "I42.1": "Obstructive hypertrophic cardiomyopathy",
    "I48.9": "Atrial fibrillation and atrial flutter, unspecified",
    "I50.0": "Congestive heart failure",
    "I21.0": "Acute transmural myocardial infarction of anterior wall",
    "I21.1": "Acute transmural myocardial infarction of inferior wall",
    "I21.4": "Acute subendocardial myocardial infarction",
    "I63.9": "Cerebral infarction, unspecified",
    "I50.9": "Heart failure, unspecified",
    "Z95.5": "Presence of coronary angioplasty implant and graft",
}
EVENTS = ("MI", "STROKE", "HF_ADMISSION", "REVASC", "CV_DEATH")

RESULT_UNITS = {
    "LDL": "mmol/L",
    "TROPT": "ng/L",
    "NTPROBNP": "pg/mL",
    "HBA1C": "mmol/mol",
    "QTC": "ms",
    "QRS": "ms",
    "SBP": "mmHg",
    "DBP": "mmHg",
    "LVEF": "%",
    "LVMASS": "g",
}
# Decimal places each result is reported with.
RESULT_DECIMALS = {"LDL": 1}


@dataclass
class Chunk:
    """The truth for a run of patients; every frame is keyed by `pid`, the patient's index in the cohort."""

    patients: pd.DataFrame
    planted_genotypes: np.ndarray  # (n, len(PLANTED)) int8 alt-allele counts at the planted variants
    diagnoses: pd.DataFrame  # pid, icd10, description, date, category (problem-list-item | encounter-diagnosis)
    medications: pd.DataFrame  # pid, drug, dose, start
    results: pd.DataFrame  # pid, code, value, date, second (True: measured at the patient's second site)
    events: pd.DataFrame  # pid, event, date, icd10


def _days(rng: np.random.Generator, low: float, high: float, n: int) -> np.ndarray:
    return rng.uniform(low, high, n).astype("timedelta64[D]")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def simulate(rng: np.random.Generator, first_pid: int, n: int) -> Chunk:
    """Simulate `n` patients numbered from `first_pid`."""
    pid = np.arange(first_pid, first_pid + n)
    male = rng.random(n) < 0.56
    baseline = BASELINE_START + rng.integers(0, BASELINE_DAYS, n).astype("timedelta64[D]")
    age = np.clip(rng.normal(61, 12, n), 25, 90)
    dob = baseline - (age * 365.25).astype("timedelta64[D]")
    age_years = (baseline - dob).astype(int) / 365.25
    ethnicity = ETHNICITIES[rng.choice(ETHNICITIES.size, n, p=_ETHNICITY_P / _ETHNICITY_P.sum())]
    smoking = SMOKING[rng.choice(3, n, p=[0.50, 0.32, 0.18])]
    south_asian = np.isin(ethnicity, list(_SOUTH_ASIAN))

    # --- genotypes at the planted variants
    planted = np.zeros((n, len(PLANTED)), dtype=np.int8)
    carrier: dict[str, np.ndarray] = {}
    for group in PLANTED_GROUPS:
        columns = [i for i, v in enumerate(PLANTED) if v.group == group]
        if group == "LPA_RISK":
            g = rng.binomial(2, LPA_ALLELE_FREQUENCY, n).astype(np.int8)
            planted[:, columns[0]] = g
            carrier[group] = g > 0
            continue
        is_carrier = rng.random(n) < CARRIER_FREQUENCY[group]
        which = np.asarray(columns)[rng.integers(0, len(columns), n)]
        planted[is_carrier, which[is_carrier]] = 1
        carrier[group] = is_carrier
    lpa_dose = planted[:, next(i for i, v in enumerate(PLANTED) if v.group == "LPA_RISK")]
    fh = carrier["LDLR_FH"] | carrier["APOB_FH"] | carrier["PCSK9_GOF"]

    # --- risk factors and cardiomyopathies
    current = smoking == "Y"
    diabetes = rng.random(n) < np.clip(0.05 + 0.003 * (age_years - 40), 0.02, 0.3) * np.where(south_asian, 2, 1)
    htn = rng.random(n) < np.clip(0.12 + 0.009 * (age_years - 40), 0.05, 0.75)
    ldl = rng.normal(3.1, 0.8, n) + 2.6 * carrier["LDLR_FH"] + 1.6 * carrier["APOB_FH"] + 2.0 * carrier["PCSK9_GOF"]
    ldl = np.clip(ldl, 0.8, 12).round(1)
    ihd_logit = -3.2 + 0.05 * (age_years - 60) + 0.9 * fh + 0.5 * (lpa_dose > 0) + 0.6 * diabetes
    ihd_logit += 0.6 * current + 0.3 * male + 0.25 * (ldl - 3.1)
    ihd = rng.random(n) < _sigmoid(ihd_logit)
    old_mi = ihd & (rng.random(n) < 0.4)
    hcm = ((carrier["MYH7_HCM"] | carrier["MYBPC3_HCM"]) & (rng.random(n) < 0.85)) | (rng.random(n) < 0.002)
    dcm = (carrier["TTN_TV"] & (rng.random(n) < 0.8)) | (rng.random(n) < 0.004)
    dcm &= ~hcm
    af = rng.random(n) < np.clip(0.01 + 0.002 * (age_years - 50), 0.005, 0.2) + 0.15 * hcm + 0.1 * dcm

    # --- cardiac structure and function (LVEF and LV mass are reported as integers; imaging renders these)
    lvef = np.where(dcm, rng.normal(32, 7, n), rng.normal(61, 5, n)) - 8 * old_mi
    lvef = np.clip(lvef, 12, 78).round()
    hf = dcm & (rng.random(n) < 0.85) | ((lvef < 40) & (rng.random(n) < 0.7)) | (rng.random(n) < 0.015)
    lvmass = np.where(male, rng.normal(135, 20, n), rng.normal(100, 16, n))
    lvmass += hcm * rng.normal(95, 20, n) + 12 * htn + 25 * dcm
    lvmass = np.clip(lvmass, 55, 400).round()
    edv = np.where(male, rng.normal(150, 18, n), rng.normal(125, 15, n)) * np.where(dcm, 1.55, 1.0)
    edv *= np.where(hcm, 0.85, 1.0)
    edv = np.clip(edv, 70, 380)

    # --- other measurements (csv-local units)
    hba1c = np.where(diabetes, rng.normal(60, 11, n), rng.normal(37, 3.5, n)).clip(25, 120).round()
    sbp = (rng.normal(127, 13, n) + 18 * htn).clip(85, 220).round()
    dbp = (rng.normal(77, 8, n) + 8 * htn).clip(45, 130).round()
    dbp = np.minimum(dbp, sbp - 20)
    qtc = (rng.normal(412, 17, n) + 10 * ~male + 15 * hcm).round()
    qrs = (rng.normal(94, 9, n) + dcm * (rng.random(n) < 0.5) * 30).clip(70, 180).round()
    log_bnp = rng.normal(np.log(70) + 0.02 * (age_years - 60), 0.7, n) + np.log(15) * (dcm | hf) + np.log(5) * hcm
    ntprobnp = np.exp(log_bnp).clip(5, 35_000).round()
    tropt = np.exp(rng.normal(np.log(7), 0.45, n) + np.log(2) * hcm).clip(2, 60).round()

    sequenced = rng.random(n) < 0.6
    multi_site = rng.random(n) < 0.05  # also has records at a second site (own MRN there, same NHS number)
    imaged = rng.random(n) < 0.2 + 0.6 * (hcm | dcm)
    echo_date = baseline + np.where(imaged, rng.integers(5, 60, n), rng.integers(0, 30, n)).astype("timedelta64[D]")

    # --- follow-up: first event of each kind, exponential times from annual hazards
    age_term = age_years - 60
    years_left = (CENSOR_DATE - baseline).astype(int) / 365.25
    h_mi = 0.008 * np.exp(0.04 * age_term) * 1.8 ** (lpa_dose > 0) * 1.4 ** (lpa_dose > 1) * 2.2**fh
    h_mi *= 1.7**diabetes * 1.7**current * 2.0**ihd * 1.4**male
    h_stroke = 0.004 * np.exp(0.06 * age_term) * 1.6**htn * 2.5**af * 1.5**diabetes * 1.4**current
    h_hf = 0.005 * np.exp(0.04 * age_term) * 8.0**dcm * 5.0**hf * 2.0**hcm * 2.0**old_mi
    h_death = 0.003 * np.exp(0.07 * age_term) * 4.0**hf * 2.5**dcm * 1.5**diabetes
    t_mi = rng.exponential(1 / h_mi)
    t_stroke = rng.exponential(1 / h_stroke)
    t_hf = rng.exponential(1 / h_hf)
    t_death = rng.exponential(1 / h_death)
    # Most MIs are revascularised within days; otherwise elective revascularisation in IHD.
    t_revasc = np.where(
        rng.random(n) < 0.7, t_mi + rng.uniform(0, 7, n) / 365.25, rng.exponential(1 / (0.002 + 0.03 * ihd))
    )
    # An MI raises the chance of death soon after.
    t_death = np.minimum(t_death, np.where(rng.random(n) < 0.08, t_mi + rng.uniform(0, 0.1, n), np.inf))
    end = np.minimum(t_death, years_left)
    died = t_death <= years_left
    death_date = np.where(
        died, baseline + (np.minimum(t_death, years_left) * 365.25).astype("timedelta64[D]"), np.datetime64("NaT")
    )

    patients = pd.DataFrame(
        {
            "pid": pid,
            "male": male,
            "dob": dob,
            "baseline": baseline,
            "age": age_years,
            "ethnicity": ethnicity,
            "smoking": smoking,
            "ldl": ldl,
            "hba1c": hba1c,
            "sbp": sbp,
            "dbp": dbp,
            "qtc": qtc,
            "qrs": qrs,
            "ntprobnp": ntprobnp,
            "tropt": tropt,
            "lvef": lvef,
            "lvmass": lvmass,
            "edv": edv,
            "htn": htn,
            "diabetes": diabetes,
            "ihd": ihd,
            "hcm": hcm,
            "dcm": dcm,
            "hf": hf,
            "af": af,
            "sequenced": sequenced,
            "multi_site": multi_site,
            "imaged": imaged,
            "study_date": echo_date,
            "death_date": death_date,
            **{f"carrier_{g}": carrier[g] for g in PLANTED_GROUPS},
        }
    )

    # --- baseline diagnoses (problem list), dated before or at baseline
    frames: list[pd.DataFrame] = []

    def add_dx(mask: np.ndarray, code: str, low_days: float, high_days: float) -> None:
        idx = np.flatnonzero(mask)
        if idx.size:
            dates = baseline[idx] - _days(rng, low_days, high_days, idx.size)
            frames.append(pd.DataFrame({"pid": pid[idx], "icd10": code, "date": dates}))

    add_dx(htn, "I10", 30, 3000)
    add_dx(diabetes, "E11.9", 30, 3000)
    add_dx((fh & (ldl > 4.9) & (rng.random(n) < 0.7)) | ((ldl > 5.5) & (rng.random(n) < 0.4)), "E78.0", 30, 4000)
    add_dx(ihd, "I25.1", 30, 2500)
    add_dx(old_mi, "I25.2", 200, 2500)
    add_dx(hcm, "I42.1", 0, 400)
    add_dx(dcm, "I42.0", 0, 400)
    add_dx(af, "I48.9", 30, 2000)
    add_dx(hf, "I50.0", 0, 600)
    baseline_dx = pd.concat(frames, ignore_index=True) if frames else _empty_dx()
    baseline_dx["category"] = "problem-list-item"

    # --- follow-up events
    ev_frames: list[pd.DataFrame] = []
    mi_codes = np.array(["I21.0", "I21.1", "I21.4"])
    for event, t, codes in (
        ("MI", t_mi, mi_codes),
        ("STROKE", t_stroke, np.array(["I63.9"])),
        ("HF_ADMISSION", t_hf, np.array(["I50.9"])),
        ("REVASC", t_revasc, np.array(["Z95.5"])),
        ("CV_DEATH", t_death, np.array([""])),
    ):
        happened = (t <= end) if event != "CV_DEATH" else died
        idx = np.flatnonzero(happened)
        if not idx.size:
            continue
        dates = baseline[idx] + (np.minimum(t[idx], end[idx]) * 365.25).astype("timedelta64[D]")
        ev_frames.append(
            pd.DataFrame(
                {"pid": pid[idx], "event": event, "date": dates, "icd10": codes[rng.integers(0, codes.size, idx.size)]}
            )
        )
    events = (
        pd.concat(ev_frames, ignore_index=True)
        if ev_frames
        else pd.DataFrame({"pid": [], "event": [], "date": np.array([], "datetime64[D]"), "icd10": []})
    )
    followup_dx = events[events["event"] != "CV_DEATH"][["pid", "icd10", "date"]].assign(category="encounter-diagnosis")
    diagnoses = pd.concat([baseline_dx, followup_dx], ignore_index=True)
    diagnoses["description"] = diagnoses["icd10"].map(DIAGNOSIS_TEXT)
    diagnoses = diagnoses.sort_values(["pid", "date", "icd10"], kind="stable").reset_index(drop=True)

    medications = _medications(rng, patients, events)
    results = _results(rng, patients, events, end)
    return Chunk(patients, planted, diagnoses, medications, results, events)


def _empty_dx() -> pd.DataFrame:
    return pd.DataFrame({"pid": np.array([], int), "icd10": [], "date": np.array([], "datetime64[D]")})


def _medications(rng: np.random.Generator, p: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    n = len(p)
    baseline = p["baseline"].to_numpy("datetime64[D]")
    frames: list[pd.DataFrame] = []

    def add(mask: np.ndarray, drug: str, doses: list[str], start: np.ndarray | None = None) -> np.ndarray:
        idx = np.flatnonzero(mask)
        if idx.size:
            when = (start if start is not None else baseline)[idx] + _days(rng, -900, 20, idx.size)
            dose = np.asarray(doses)[rng.integers(0, len(doses), idx.size)]
            frames.append(pd.DataFrame({"pid": p["pid"].to_numpy()[idx], "drug": drug, "dose": dose, "start": when}))
        return mask

    r = rng.random((n, 12))
    ldl, ihd, diabetes, htn = p["ldl"] > 4.0, p["ihd"].to_numpy(), p["diabetes"].to_numpy(), p["htn"].to_numpy()
    hf, af, hcm = p["hf"].to_numpy(), p["af"].to_numpy(), p["hcm"].to_numpy()
    fh = (p["carrier_LDLR_FH"] | p["carrier_APOB_FH"] | p["carrier_PCSK9_GOF"]).to_numpy()
    statin = (ldl.to_numpy() | ihd | diabetes | (htn & (p["age"].to_numpy() > 65))) & (r[:, 0] < 0.8)
    atorva = statin & (r[:, 1] < 0.7)
    add(atorva, "atorvastatin", ["20 mg once daily", "40 mg once daily", "80 mg once daily"])
    add(statin & ~atorva, "rosuvastatin", ["10 mg once daily", "20 mg once daily"])
    add(fh & statin & (r[:, 2] < 0.6), "ezetimibe", ["10 mg once daily"])
    add(ihd & (r[:, 3] < 0.85), "aspirin", ["75 mg once daily"])
    add(
        (ihd & (r[:, 4] < 0.5)) | (hf & (r[:, 4] < 0.85)) | (hcm & (r[:, 4] < 0.7)) | (af & (r[:, 4] < 0.6)),
        "bisoprolol",
        ["2.5 mg once daily", "5 mg once daily", "10 mg once daily"],
    )
    acei = (htn & (r[:, 5] < 0.5)) | (hf & (r[:, 5] < 0.8)) | (diabetes & (r[:, 5] < 0.3))
    arni = hf & (p["lvef"].to_numpy() < 35) & (r[:, 6] < 0.3)
    add(acei & ~arni, "ramipril", ["2.5 mg once daily", "5 mg once daily", "10 mg once daily"])
    add(arni, "sacubitril/valsartan", ["24/26 mg twice daily", "49/51 mg twice daily"])
    add(htn & ~acei & (r[:, 7] < 0.6), "amlodipine", ["5 mg once daily", "10 mg once daily"])
    add(diabetes & (r[:, 8] < 0.85), "metformin", ["500 mg twice daily", "1 g twice daily"])
    add(hf & (r[:, 9] < 0.7), "furosemide", ["40 mg once daily", "40 mg twice daily"])
    add(hf & (r[:, 10] < 0.5), "spironolactone", ["25 mg once daily"])
    add(af & (r[:, 11] < 0.8), "apixaban", ["5 mg twice daily", "2.5 mg twice daily"])
    mi = events[events["event"] == "MI"]
    if len(mi):
        keep = rng.random(len(mi)) < 0.8
        frames.append(
            pd.DataFrame(
                {
                    "pid": mi["pid"].to_numpy()[keep],
                    "drug": "clopidogrel",
                    "dose": "75 mg once daily",
                    "start": mi["date"].to_numpy("datetime64[D]")[keep] + np.timedelta64(1, "D"),
                }
            )
        )
    if not frames:
        return pd.DataFrame({"pid": [], "drug": [], "dose": [], "start": np.array([], "datetime64[D]")})
    return pd.concat(frames, ignore_index=True).sort_values(["pid", "start", "drug"], kind="stable")


def _results(rng: np.random.Generator, p: pd.DataFrame, events: pd.DataFrame, end_years: np.ndarray) -> pd.DataFrame:
    n = len(p)
    pid = p["pid"].to_numpy()
    baseline = p["baseline"].to_numpy("datetime64[D]")
    lab_date = baseline + rng.integers(0, 30, n).astype("timedelta64[D]")
    frames = []
    for code, column in (
        ("LDL", "ldl"),
        ("TROPT", "tropt"),
        ("NTPROBNP", "ntprobnp"),
        ("HBA1C", "hba1c"),
        ("QTC", "qtc"),
        ("QRS", "qrs"),
        ("SBP", "sbp"),
        ("DBP", "dbp"),
    ):
        frames.append(pd.DataFrame({"pid": pid, "code": code, "value": p[column].to_numpy(), "date": lab_date}))
    study = p["study_date"].to_numpy("datetime64[D]")
    frames.append(pd.DataFrame({"pid": pid, "code": "LVEF", "value": p["lvef"].to_numpy(), "date": study}))
    frames.append(pd.DataFrame({"pid": pid, "code": "LVMASS", "value": p["lvmass"].to_numpy(), "date": study}))
    mi = events[events["event"] == "MI"]
    if len(mi):
        peak = np.exp(rng.normal(np.log(900), 1.0, len(mi))).clip(60, 50_000).round()
        frames.append(
            pd.DataFrame(
                {
                    "pid": mi["pid"].to_numpy(),
                    "code": "TROPT",
                    "value": peak,
                    "date": mi["date"].to_numpy("datetime64[D]"),
                }
            )
        )
    results = pd.concat(frames, ignore_index=True)
    results["second"] = False
    # Follow-up clinic bloods and BP, used for the records a patient's second site holds.
    m = np.flatnonzero(p["multi_site"].to_numpy())
    k = m.size
    fraction = rng.uniform(0.15, 0.85, k)
    follow = baseline[m] + (fraction * end_years[m] * 365.25).astype("timedelta64[D]")
    on_statin = rng.random(k) < 0.6
    ldl2 = (p["ldl"].to_numpy()[m] * np.where(on_statin, 0.6, 1.0) + rng.normal(0, 0.3, k)).clip(0.8).round(1)
    second = [
        pd.DataFrame({"pid": pid[m], "code": "LDL", "value": ldl2, "date": follow}),
        pd.DataFrame(
            {
                "pid": pid[m],
                "code": "HBA1C",
                "value": (p["hba1c"].to_numpy()[m] + rng.normal(0, 3, k)).round(),
                "date": follow,
            }
        ),
        pd.DataFrame(
            {
                "pid": pid[m],
                "code": "SBP",
                "value": (p["sbp"].to_numpy()[m] + rng.normal(0, 8, k)).round(),
                "date": follow,
            }
        ),
        pd.DataFrame(
            {
                "pid": pid[m],
                "code": "DBP",
                "value": (p["dbp"].to_numpy()[m] + rng.normal(0, 5, k)).round(),
                "date": follow,
            }
        ),
    ]
    followup = pd.concat(second, ignore_index=True)
    followup["second"] = True
    return pd.concat([results, followup], ignore_index=True).sort_values(["pid", "date"], kind="stable")
