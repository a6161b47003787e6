"""The harmonised clinical schema every site format is read into, and the vocabularies that map local codes to it.

Source tables are keyed by the site's MRN; materialisation replaces the MRN with the project pseudonym and drops
the identifying columns (`IDENTIFYING`) before anything is written to a view.
"""

from __future__ import annotations

import pyarrow as pa

# Columns a site reader yields, per table, before pseudonymisation (`mrn` is replaced by `pseudonym`).
SOURCE_COLUMNS: dict[str, list[str]] = {
    "patients": [
        "mrn", "nhs_number", "surname", "forename", "birth_date", "postcode", "sex", "ethnicity", "smoking",
    ],
    "diagnoses": ["mrn", "icd10", "description", "diagnosis_date"],
    "medications": ["mrn", "drug", "dose", "start_date"],
    "measurements": ["mrn", "measure", "value", "unit", "measured_on"],
    "outcomes": ["mrn", "event", "event_date"],
}  # fmt: skip

# Direct identifiers: read for linkage, never written to a view.
IDENTIFYING = frozenset({"mrn", "nhs_number", "surname", "forename", "birth_date", "postcode"})

# The schema of each table in a project view (clinical/<table>.parquet).
VIEW_SCHEMAS: dict[str, pa.Schema] = {
    "patients": pa.schema(
        [
            ("pseudonym", pa.string()),
            ("site", pa.string()),
            ("sex", pa.string()),
            ("year_of_birth", pa.int16()),
            ("ethnicity", pa.string()),
            ("smoking", pa.string()),
        ]
    ),
    "diagnoses": pa.schema(
        [
            ("pseudonym", pa.string()),
            ("site", pa.string()),
            ("icd10", pa.string()),
            ("description", pa.string()),
            ("diagnosis_date", pa.date32()),
        ]
    ),
    "medications": pa.schema(
        [
            ("pseudonym", pa.string()),
            ("site", pa.string()),
            ("drug", pa.string()),
            ("drug_class", pa.string()),
            ("dose", pa.string()),
            ("start_date", pa.date32()),
        ]
    ),
    "measurements": pa.schema(
        [
            ("pseudonym", pa.string()),
            ("site", pa.string()),
            ("measure", pa.string()),
            ("value", pa.float64()),
            ("unit", pa.string()),
            ("measured_on", pa.date32()),
        ]
    ),
    "outcomes": pa.schema(
        [
            ("pseudonym", pa.string()),
            ("site", pa.string()),
            ("event", pa.string()),
            ("event_date", pa.date32()),
        ]
    ),
}

TABLES = tuple(VIEW_SCHEMAS)

# Harmonised measures: name -> unit every site's values are converted to.
MEASURE_UNITS: dict[str, str] = {
    "ldl": "mmol/L",
    "troponin_t": "ng/L",
    "nt_probnp": "pg/mL",
    "hba1c": "mmol/mol",
    "qtc": "ms",
    "qrs": "ms",
    "sbp": "mmHg",
    "dbp": "mmHg",
    "lvef": "%",
    "lv_mass": "g",
}

OUTCOME_EVENTS = ("mi", "stroke", "hf_admission", "revascularisation", "cv_death")
SEXES = ("F", "M")
SMOKING = ("never", "ex", "current")

# Generic drug name -> class; a drug not listed is kept with class "unclassified".
DRUG_CLASSES: dict[str, str] = {
    "atorvastatin": "statin",
    "rosuvastatin": "statin",
    "simvastatin": "statin",
    "pravastatin": "statin",
    "ezetimibe": "cholesterol_absorption_inhibitor",
    "evolocumab": "pcsk9_inhibitor",
    "alirocumab": "pcsk9_inhibitor",
    "inclisiran": "pcsk9_inhibitor",
    "bisoprolol": "beta_blocker",
    "metoprolol": "beta_blocker",
    "carvedilol": "beta_blocker",
    "atenolol": "beta_blocker",
    "ramipril": "ace_inhibitor",
    "lisinopril": "ace_inhibitor",
    "perindopril": "ace_inhibitor",
    "candesartan": "angiotensin_receptor_blocker",
    "losartan": "angiotensin_receptor_blocker",
    "sacubitril/valsartan": "arni",
    "sacubitril-valsartan": "arni",
    "aspirin": "antiplatelet",
    "clopidogrel": "antiplatelet",
    "ticagrelor": "antiplatelet",
    "prasugrel": "antiplatelet",
    "apixaban": "anticoagulant",
    "rivaroxaban": "anticoagulant",
    "edoxaban": "anticoagulant",
    "warfarin": "anticoagulant",
    "furosemide": "loop_diuretic",
    "bumetanide": "loop_diuretic",
    "spironolactone": "mineralocorticoid_antagonist",
    "eplerenone": "mineralocorticoid_antagonist",
    "dapagliflozin": "sglt2_inhibitor",
    "empagliflozin": "sglt2_inhibitor",
    "metformin": "biguanide",
    "amlodipine": "calcium_channel_blocker",
    "mavacamten": "myosin_inhibitor",
    "glyceryl trinitrate": "nitrate",
    "isosorbide mononitrate": "nitrate",
}
