"""Patient-level interchange formats are judged by their structure: FHIR (JSON, bulk NDJSON, XML), HL7 v2, JSON
Lines, PLINK/Oxford/Eigenstrat genotype files, truncated or nested JSON and statistical packages' datasets. Every
file here is written by the test, shaped like its specification; each patient-level one blocks whatever it is
called, and each aggregate look-alike passes."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import pytest

from output_checks.checks.interchange.jsonish import as_rows, repair
from output_checks.verdicts import FileReport, Verdict
from tests.airlock_helpers import check_one, messages, write

pytestmark = pytest.mark.unit

NHS = "9434765919"  # the NHS's own published example number (valid check digit)


def judged(tmp: Path, name: str, content: str | bytes) -> FileReport:
    return check_one(write(tmp, name, content))


def assert_verdict(report: FileReport, verdict: Verdict) -> None:
    assert report.verdict is verdict, f"{report.type}: {messages(report)}"


# --- FHIR -------------------------------------------------------------------------------------------------------

PATIENT = {
    "resourceType": "Patient",
    "id": "c0a8e6d2",
    "meta": {"lastUpdated": "2024-02-11T09:30:00Z"},
    "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": NHS}],
    "name": [{"use": "official", "family": "Aldridge", "given": ["Morwenna"]}],
    "gender": "female",
    "birthDate": "1958-07-23",
    "address": [{"line": ["14 Quarry Lane"], "city": "Leeds", "postalCode": "LS6 2QT"}],
}
PATIENT_PLAIN = {"resourceType": "Patient", "id": "p-001", "gender": "male", "birthDate": "1970"}
OBSERVATION = {
    "resourceType": "Observation",
    "id": "obs-17",
    "status": "final",
    "category": [
        {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}
    ],
    "code": {"coding": [{"system": "http://loinc.org", "code": "2093-3", "display": "Cholesterol [Mass/volume]"}]},
    "subject": {"reference": "urn:uuid:0b7c1f0e-5f7d-4b61-9c43-1f3f2f0f6a11"},
    "effectiveDateTime": "2023-11-02",
    "valueQuantity": {"value": 212, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"},
}
VALUESET = {
    "resourceType": "ValueSet",
    "id": "t2dm-codes",
    "url": "https://example.org/fhir/ValueSet/t2dm-codes",
    "status": "active",
    "compose": {"include": [{"system": "http://snomed.info/sct", "concept": [
        {"code": "44054006", "display": "Diabetes mellitus type 2"},
        {"code": "313436004", "display": "Type 2 diabetes mellitus without complication"}]}]},
}  # fmt: skip


def bundle(*resources: dict, kind: str = "collection") -> dict:
    return {
        "resourceType": "Bundle",
        "type": kind,
        "entry": [{"fullUrl": f"urn:uuid:{i:08d}-0000-4000-8000-000000000000", "resource": r}
                  for i, r in enumerate(resources)],
    }  # fmt: skip


def measure_report(*strata: int, zero: bool = False) -> dict:
    def population(code: str, count: int) -> dict:
        return {"code": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/measure-population",
                                     "code": code}]}, "count": count}  # fmt: skip

    return {
        "resourceType": "MeasureReport",
        "status": "complete",
        "type": "summary",
        "measure": "https://example.org/fhir/Measure/statin-uptake",
        "date": "2024-01-05",
        "period": {"start": "2023-01-01", "end": "2023-12-31"},
        "group": [{
            "population": [population("initial-population", 2480), population("denominator", 1904),
                           population("numerator", 0 if zero else 1233)],
            "measureScore": {"value": 0.6476},
            "stratifier": [{"code": [{"text": "age band"}], "stratum": [
                {"value": {"text": f"band {i}"}, "population": [population("numerator", n)]}
                for i, n in enumerate(strata)]}],
        }],
    }  # fmt: skip


@pytest.mark.parametrize("name", ["bundle.json", "bundle.txt", "bundle.csv", "export"])
def test_fhir_bundle_with_a_patient_blocks_whatever_it_is_called(tmp_path, name):
    report = judged(tmp_path, name, json.dumps(bundle(PATIENT_PLAIN, OBSERVATION), indent=2))
    assert report.type == "fhir"
    assert_verdict(report, Verdict.BLOCK)
    assert "patient-level FHIR resource" in messages(report)


def test_fhir_patient_identifiers_are_screened_and_never_echoed(tmp_path):
    report = judged(tmp_path, "patient.json", json.dumps(PATIENT))
    assert_verdict(report, Verdict.BLOCK)
    text = messages(report)
    assert NHS not in text.replace(" ", "") and "Aldridge" not in text and "Morwenna" not in text


def test_clinical_resource_about_a_subject_is_individual_level(tmp_path):
    report = judged(tmp_path, "labs.json", json.dumps(bundle(OBSERVATION, OBSERVATION, kind="searchset")))
    assert_verdict(report, Verdict.BLOCK)
    assert "individual-level FHIR resource" in messages(report)


def test_contained_patient_blocks(tmp_path):
    request = {"resourceType": "MedicationRequest", "status": "active", "intent": "order",
               "contained": [PATIENT_PLAIN], "medicationCodeableConcept": {"text": "atorvastatin 20 mg"}}  # fmt: skip
    assert_verdict(judged(tmp_path, "rx.json", json.dumps(request)), Verdict.BLOCK)


def test_bulk_export_ndjson_blocks(tmp_path):
    lines = "\n".join(json.dumps(dict(PATIENT_PLAIN, id=f"p-{i:03d}")) for i in range(25)) + "\n"
    report = judged(tmp_path, "Patient.ndjson", lines)
    assert report.type == "fhir"
    assert_verdict(report, Verdict.BLOCK)


def test_compressed_bulk_export_blocks(tmp_path):
    lines = "\n".join(json.dumps(dict(PATIENT_PLAIN, id=f"p-{i:03d}")) for i in range(25)) + "\n"
    assert_verdict(judged(tmp_path, "Patient.ndjson.gz", gzip.compress(lines.encode())), Verdict.BLOCK)


def test_bulk_export_of_observations_named_txt_blocks(tmp_path):
    lines = "\n".join(json.dumps(dict(OBSERVATION, id=f"o-{i}")) for i in range(12)) + "\n"
    assert_verdict(judged(tmp_path, "observations.txt", lines), Verdict.BLOCK)


def test_bare_array_of_resources_blocks(tmp_path):
    report = judged(tmp_path, "resources.json", json.dumps([PATIENT_PLAIN, OBSERVATION]))
    assert report.type == "fhir"
    assert_verdict(report, Verdict.BLOCK)


def test_fhir_resources_inside_a_json_of_the_researchers_own_block(tmp_path):
    wrapped = {"exported": "2024-03-01", "query": "statin cohort", "results": {"items": [OBSERVATION, PATIENT_PLAIN]}}
    report = judged(tmp_path, "query_output.json", json.dumps(wrapped, indent=2))
    assert report.type == "json"
    assert_verdict(report, Verdict.BLOCK)
    assert "patient-level FHIR resource" in messages(report)


CDA = """<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3">
  <typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>
  <title>Discharge summary</title>
  <recordTarget><patientRole><id extension="X81234" root="2.16.840.1.113883.2.1.4.1"/>
    <patient><administrativeGenderCode code="F"/><birthTime value="19540219"/></patient>
  </patientRole></recordTarget>
</ClinicalDocument>
"""


def test_cda_document_blocks(tmp_path):
    report = judged(tmp_path, "summary.xml", CDA)
    assert report.type == "cda"
    assert_verdict(report, Verdict.BLOCK)


def test_fhir_xml_patient_blocks_and_valueset_passes(tmp_path):
    patient = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Patient xmlns="http://hl7.org/fhir">\n'
        '  <id value="p-9"/>\n  <gender value="female"/>\n  <birthDate value="1981"/>\n</Patient>\n'
    )
    report = judged(tmp_path, "patient.xml", patient)
    assert report.type == "fhir"
    assert_verdict(report, Verdict.BLOCK)
    valueset = ('<?xml version="1.0" encoding="UTF-8"?>\n<ValueSet xmlns="http://hl7.org/fhir">\n'
                '  <id value="asthma"/>\n  <status value="active"/>\n  <compose><include>\n'
                '    <system value="http://snomed.info/sct"/>\n'
                '    <concept><code value="195967001"/><display value="Asthma"/></concept>\n'
                '  </include></compose>\n</ValueSet>\n')  # fmt: skip
    assert_verdict(judged(tmp_path, "valueset.xml", valueset), Verdict.PASS)


def test_measure_report_with_counts_at_the_threshold_passes(tmp_path):
    assert_verdict(judged(tmp_path, "measure.json", json.dumps(measure_report(410, 388, 435))), Verdict.PASS)


def test_measure_report_small_stratum_blocks(tmp_path):
    report = judged(tmp_path, "measure.json", json.dumps(measure_report(410, 6, 435)))
    assert_verdict(report, Verdict.BLOCK)
    assert "below 10" in messages(report) and "stratum 2" in messages(report)


def test_measure_report_zero_is_review(tmp_path):
    assert_verdict(judged(tmp_path, "measure.json", json.dumps(measure_report(410, 388, zero=True))), Verdict.REVIEW)


def test_measure_report_of_one_patient_blocks(tmp_path):
    individual = dict(measure_report(410), type="individual", subject={"reference": "Patient/p-1"})
    assert_verdict(judged(tmp_path, "measure.json", json.dumps(individual)), Verdict.BLOCK)


@pytest.mark.parametrize(
    "resource",
    [
        VALUESET,
        {"resourceType": "CodeSystem", "id": "local-flags", "status": "draft", "content": "complete",
         "concept": [{"code": "A1", "display": "Statin prescribed"}, {"code": "A2", "display": "Statin declined"}]},
        {"resourceType": "Library", "id": "statin-logic", "status": "active",
         "type": {"coding": [{"code": "logic-library"}]}},
        {"resourceType": "Questionnaire", "id": "phq9", "status": "active",
         "item": [{"linkId": "1", "text": "Little interest or pleasure in doing things", "type": "choice"}]},
        bundle(VALUESET, kind="collection"),
    ],
    ids=["valueset", "codesystem", "library", "questionnaire", "bundle-of-definitions"],
)  # fmt: skip
def test_definitions_pass(tmp_path, resource):
    assert_verdict(judged(tmp_path, "definition.json", json.dumps(resource, indent=1)), Verdict.PASS)


def test_answered_questionnaire_blocks(tmp_path):
    answers = {"resourceType": "QuestionnaireResponse", "status": "completed", "questionnaire": "phq9",
               "item": [{"linkId": "1", "answer": [{"valueInteger": 2}]}]}  # fmt: skip
    assert_verdict(judged(tmp_path, "answers.json", json.dumps(answers)), Verdict.BLOCK)


def test_unknown_resource_type_is_review_not_pass(tmp_path):
    odd = {"resourceType": "DeviceMetric", "id": "m1", "type": {"text": "heart rate"}, "category": "measurement"}
    assert_verdict(judged(tmp_path, "metric.json", json.dumps(odd)), Verdict.REVIEW)


def test_truncated_fhir_bundle_still_blocks(tmp_path):
    text = json.dumps(bundle(OBSERVATION, PATIENT_PLAIN, OBSERVATION), indent=2)
    cut = text[: text.index('"Patient"') + 20]
    report = judged(tmp_path, "bundle.json", cut)
    assert report.type == "fhir"
    assert_verdict(report, Verdict.BLOCK)
    assert "truncated or malformed FHIR JSON" in messages(report)


# --- HL7 v2 -----------------------------------------------------------------------------------------------------

ADT = [
    "MSH|^~\\&|PAS|RGH|TRE|NHSE|20240312101500||ADT^A01^ADT_A01|MSG00417|P|2.5.1",
    "EVN|A01|20240312101200",
    f"PID|1||{NHS}^^^NHS^NH~RGH40417^^^RGH^MR||Penhallow^Isolde^^^Mrs||19540219|F|||7 Bramble Court^^York^^YO31 8QS",
    "PV1|1|I|WARD7^B12^1|||||C3401^Okafor^Chidi|||MED",
]
ORU = [
    "MSH|^~\\&|LIMS|PATH|TRE|NHSE|20240314083000||ORU^R01|LAB55120|P|2.4",
    "PID|1||X7781^^^PATH^MR",
    "OBR|1||55120|2345-7^Glucose^LN",
    "OBX|1|NM|2345-7^Glucose^LN||6.8|mmol/L|3.9-7.8|N|||F",
]


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("adt.hl7", "\r".join(ADT) + "\r"),
        ("adt.txt", "\n".join(ADT) + "\n"),
        ("adt.csv", "\r\n".join(ADT) + "\r\n"),
        ("mllp.dat", "\x0b" + "\r".join(ORU) + "\r\x1c\r"),
        ("batch.hl7", "\r".join(ADT + ORU) + "\r"),
    ],
)
def test_hl7_patient_messages_block(tmp_path, name, content):
    report = judged(tmp_path, name, content)
    assert report.type == "hl7v2"
    assert_verdict(report, Verdict.BLOCK)
    assert "patient-level HL7 v2" in messages(report)
    assert NHS not in messages(report).replace(" ", "")


def test_hl7_message_without_a_patient_is_review_not_pass(tmp_path):
    master = ["MSH|^~\\&|LIMS|PATH|TRE|NHSE|20240314083000||MFN^M08|MF1|P|2.5",
              "MFI|OMA|LIMS|UPD|||NE", "MFE|MAD|||2345-7^Glucose^LN"]  # fmt: skip
    report = judged(tmp_path, "master.hl7", "\r".join(master))
    assert report.type == "hl7v2"
    assert_verdict(report, Verdict.REVIEW)


# --- JSON Lines -------------------------------------------------------------------------------------------------


def test_ndjson_of_people_blocks(tmp_path):
    rows = [{"participant": f"S{7301 + 17 * i}", "age": 41 + i % 37, "sex": "FM"[i % 2], "sbp": 118 + (i * 7) % 41,
             "chol": round(4.1 + (i % 13) / 7, 2), "died": i % 5 == 0} for i in range(60)]  # fmt: skip
    report = judged(tmp_path, "cohort.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    assert report.type == "ndjson"
    assert_verdict(report, Verdict.BLOCK)


def test_ndjson_with_an_nhs_number_blocks(tmp_path):
    rows = [{"event": "export", "note": "ok"}, {"event": "export", "note": f"sent for {NHS[:3]} {NHS[3:6]} {NHS[6:]}"},
            {"event": "done", "note": "ok"}]  # fmt: skip
    report = judged(tmp_path, "log.json", "\n".join(json.dumps(r) for r in rows) + "\n")
    assert report.type == "ndjson"
    assert_verdict(report, Verdict.BLOCK)


def test_ndjson_log_of_aggregate_counts_passes(tmp_path):
    rows = [{"ts": "2024-03-12T10:15:02Z", "stage": "extract", "rows_in": 182044, "rows_out": 179310},
            {"ts": "2024-03-12T10:16:40Z", "stage": "exclusions", "rows_in": 179310, "rows_out": 154228},
            {"ts": "2024-03-12T10:19:11Z", "stage": "linkage", "rows_in": 154228, "rows_out": 150977}]  # fmt: skip
    report = judged(tmp_path, "pipeline.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    assert report.type == "ndjson"
    assert_verdict(report, Verdict.PASS)


def test_ndjson_of_model_metrics_is_judged_like_the_same_table_as_csv(tmp_path):
    rows = [{"model": "cox-ph", "metric": "c_index", "value": 0.712, "n": 18204},
            {"model": "cox-ph", "metric": "brier_5y", "value": 0.143, "n": 18204},
            {"model": "cox-ph", "metric": "calibration_slope", "value": 0.96, "n": 6120}]  # fmt: skip
    lines = judged(tmp_path, "metrics.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    table = "model,metric,value,n\n" + "".join(",".join(str(v) for v in r.values()) + "\n" for r in rows)
    assert lines.verdict is judged(tmp_path, "metrics.csv", table).verdict is not Verdict.BLOCK, messages(lines)


def test_ndjson_with_a_broken_line_is_review(tmp_path):
    rows = [json.dumps({"metric": "auc", "value": 0.8}), '{"metric": "brier", "val', json.dumps({"metric": "x"})]
    report = judged(tmp_path, "metrics.jsonl", "\n".join(rows) + "\n")
    assert_verdict(report, Verdict.REVIEW)
    assert "not JSON" in messages(report)


# --- space-separated tables (R's write.table) ---------------------------------------------------------------------


def test_space_separated_person_table_blocks(tmp_path):
    lines = ['"pid" "age" "sex" "sbp" "chol" "died"'] + [
        f'"{i}" "S{5000 + 13 * i}" {40 + i % 35} "{"FM"[i % 2]}" {112 + (i * 7) % 45} {4.2 + (i % 9) / 10:.1f} '
        f"{int(i % 6 == 0)}"
        for i in range(1, 80)
    ]
    report = judged(tmp_path, "cohort.txt", "\n".join(lines) + "\n")
    assert report.type == "ssv"
    assert_verdict(report, Verdict.BLOCK)


def test_space_separated_aggregate_passes_and_small_count_blocks(tmp_path):
    table = ['"region" "patients" "events"'] + [f'"{i}" "Region {c}" {120 + 17 * i} {40 + 3 * i}'
                                                for i, c in enumerate("ABCDEF", start=1)]  # fmt: skip
    report = judged(tmp_path, "summary.txt", "\n".join(table) + "\n")
    assert report.type == "ssv"
    assert_verdict(report, Verdict.PASS)
    small = [*table[:2], table[2].replace(" 46", " 4"), *table[3:]]
    assert small != table
    assert_verdict(judged(tmp_path, "small.txt", "\n".join(small) + "\n"), Verdict.BLOCK)


# --- truncated and nested JSON ----------------------------------------------------------------------------------


def test_repair_recovers_the_complete_records():
    records = [{"a": i, "b": {"c": str(i)}} for i in range(10)]
    text = json.dumps({"rows": records})
    recovered = repair(text[: len(text) * 2 // 3])
    assert recovered is not None and 3 <= len(recovered.data["rows"]) < 10
    assert recovered.data["rows"][0] == records[0]


def test_truncated_json_with_an_nhs_number_blocks(tmp_path):
    people = [{"patient": {"nhs_number": NHS if i == 4 else f"{i:04d}", "age": 30 + i}, "labs": {"ldl": 3.2}}
              for i in range(40)]  # fmt: skip
    text = json.dumps(people, indent=1)
    report = judged(tmp_path, "extract.json", text[: len(text) // 2])
    assert_verdict(report, Verdict.BLOCK)
    assert "truncated or malformed JSON" in messages(report)


def test_truncated_aggregate_json_is_review(tmp_path):
    table = [
        {"region": f"Region {c}", "patients": 140 + 9 * i, "mean_ldl": 3.1 + i / 10} for i, c in enumerate("ABCDEF")
    ]
    text = json.dumps({"title": "LDL by region", "rows": table}, indent=1)
    report = judged(tmp_path, "summary.json", text[: int(len(text) * 0.7)])
    assert_verdict(report, Verdict.REVIEW)
    assert "truncated or malformed JSON" in messages(report)


def test_nested_person_records_are_judged_as_a_table(tmp_path):
    people = [{"pid": f"S{i:04d}", "demographics": {"age": 35 + i % 40, "sex": "FM"[i % 2]},
               "vitals": {"sbp": 109 + (i * 7) % 50, "dbp": 66 + (i * 3) % 25, "bmi": round(21 + (i % 11) / 3, 1)}}
              for i in range(80)]  # fmt: skip
    report = judged(tmp_path, "cohort.json", json.dumps({"study": {"participants": people}}))
    assert report.type == "json"
    assert_verdict(report, Verdict.BLOCK)


def test_nested_aggregate_json_passes(tmp_path):
    summary = {"analysis": "statin uptake", "results": {"by_region": [
        {"region": f"Region {c}", "n": 150 + 20 * i, "uptake": {"mean": 0.61 + i / 100, "ci": [0.55, 0.67]}}
        for i, c in enumerate("ABCDE")]}}  # fmt: skip
    assert_verdict(judged(tmp_path, "summary.json", json.dumps(summary, indent=2)), Verdict.PASS)


def test_json_config_passes(tmp_path):
    config = {
        "model": {"family": "binomial", "penalty": "l2", "C": 1.0},
        "features": ["age_band", "sex", "imd_quintile"],
        "seed": 20240312,
        "outcome": "readmitted_30d",
    }
    assert_verdict(judged(tmp_path, "config.json", json.dumps(config, indent=2)), Verdict.PASS)  # fmt: skip


def test_flattened_columns_keep_their_plain_names():
    rows = as_rows([{"id": 1, "demo": {"age": 40, "sex": "F"}, "labs": [{"v": 1}, {"v": 2}]}])
    assert rows[0] == ["id", "age", "sex", "labs.0.v", "labs.1.v"]


# --- genotype files ---------------------------------------------------------------------------------------------

PED = "".join(f"FAM{i // 2} IND{i} 0 0 {1 + i % 2} {1 + i % 2} A G G G 0 0 C T\n" for i in range(30))
FAM = "".join(f"FAM{i} IND{i} 0 0 {1 + i % 2} -9\n" for i in range(30))
TPED = "".join(f"1 rs{7000 + i} 0 {55000 + 120 * i} A G G G A A\n" for i in range(40))
RAW = "FID IID PAT MAT SEX PHENOTYPE rs101_A rs102_T\n" + "".join(f"F{i} I{i} 0 0 1 -9 {i % 3} 0\n" for i in range(20))
GEN = "".join(f"snp{i} rs{900 + i} {12000 + 40 * i} A G 1 0 0 0 0.98 0.02 0 0 1\n" for i in range(30))
SAMPLE = "ID_1 ID_2 missing sex bmi\n0 0 0 D C\n" + "".join(f"S{i} S{i} 0 {1 + i % 2} 2{i % 9}.1\n" for i in range(20))
GENO = "".join("0120129201\n" for _ in range(12))
IND = "".join(f"S{i} {'MF'[i % 2]} {'Case' if i % 3 else 'Control'}\n" for i in range(20))
BIM = "".join(f"{1 + i // 50}\trs{3000 + i}\t0\t{10000 + 73 * i}\tA\tG\n" for i in range(200))
MAP = "".join(f"{1 + i // 50} rs{3000 + i} 0 {10000 + 73 * i}\n" for i in range(200))
EIGENVEC = "FID IID PC1 PC2 PC3\n" + "".join(f"F{i} I{i} {0.01 * i:.4f} {-0.02 * i:.4f} {0.3 / i:.4f}\n"
                                             for i in range(1, 25))  # fmt: skip
PSAM = "#IID\tSEX\tPHENO1\n" + "".join(f"I{i}\t{1 + i % 2}\t{1 + i % 3 // 2}\n" for i in range(25))
BGEN = struct.pack("<IIII", 20, 20, 1000, 500) + b"bgen" + b"\x00" * 64


@pytest.mark.parametrize(
    ("name", "content", "kind"),
    [
        ("cohort.ped", PED, "plink-ped"),
        ("cohort.txt", PED.replace(" ", "\t"), "plink-ped"),
        ("cohort.csv", PED, "plink-ped"),
        ("cohort.fam", FAM, "plink-fam"),
        ("cohort.tfam", FAM, "plink-fam"),
        ("cohort.tped", TPED, "plink-tped"),
        ("dosage.raw", RAW, "plink-raw"),
        ("dosage.csv", RAW, "plink-raw"),
        ("cohort.bed", b"l\x1b\x01" + bytes(range(256)), "plink-bed"),
        ("cohort.pgen", b"l\x1b\x10" + bytes(range(256)), "plink-bed"),
        ("pca.eigenvec", EIGENVEC, "plink-samples"),
        ("pca.csv", EIGENVEC.replace(" ", "\t"), "plink-samples"),
        ("cohort.psam", PSAM, "plink-samples"),
        ("probs.gen", GEN, "oxford-gen"),
        ("probs.gen.gz", gzip.compress(GEN.encode()), "oxford-gen"),
        ("cohort.sample", SAMPLE, "oxford-sample"),
        ("cohort.geno", GENO, "eigenstrat-geno"),
        ("cohort.ind", IND, "eigenstrat-ind"),
        ("imputed.bgen", BGEN, "bgen"),
    ],
)
def test_per_individual_genotype_files_block(tmp_path, name, content, kind):
    report = judged(tmp_path, name, content)
    assert report.type == kind
    assert_verdict(report, Verdict.BLOCK)


@pytest.mark.parametrize(("name", "content", "kind"), [("v.bim", BIM, "plink-bim"), ("v.map", MAP, "plink-map"),
                                                         ("variants.txt", BIM, "plink-bim")])  # fmt: skip
def test_variant_lists_pass(tmp_path, name, content, kind):
    report = judged(tmp_path, name, content)
    assert report.type == kind
    assert_verdict(report, Verdict.PASS)


def test_variant_list_with_a_bad_line_is_review(tmp_path):
    report = judged(tmp_path, "v.bim", BIM + "1\trs1\t0\tnot-a-position\tA\tG\n")
    assert_verdict(report, Verdict.REVIEW)


# --- statistical packages' datasets -----------------------------------------------------------------------------


def _stata_old(rows: int) -> bytes:
    return bytes([114, 2, 1, 0]) + struct.pack("<HI", 3, rows) + b"\x00" * 200


def _stata_new(rows: int) -> bytes:
    head = b"<stata_dta><header><release>118</release><byteorder>LSF</byteorder><K>" + struct.pack("<H", 4)
    return head + b"</K><N>" + struct.pack("<Q", rows) + b"</N><label></label></header>" + b"\x00" * 100


def _spss(rows: int) -> bytes:
    return b"$FL2" + b"@(#) SPSS DATA FILE".ljust(60) + struct.pack("<iiiii", 2, 5, 1, 0, rows) + b"\x00" * 100


def _xpt(rows: int) -> bytes:
    """A SAS V5 transport file (TS-140): 80-byte header records, one numeric variable, `rows` observations."""

    def card(text: bytes) -> bytes:
        return text.ljust(80, b" ")

    stamp = b"01JAN24:00:00:00"
    head = card(b"HEADER RECORD*******LIBRARY HEADER RECORD!!!!!!!" + b"0" * 30)
    head += card(b"SAS     SAS     SASLIB  9.4     X64_7PRO" + b" " * 24 + stamp) + card(stamp)
    head += card(b"HEADER RECORD*******MEMBER  HEADER RECORD!!!!!!!000000000000000001600000000140")
    head += card(b"HEADER RECORD*******DSCRPTR HEADER RECORD!!!!!!!" + b"0" * 30)
    head += card(b"SAS     DM      SASDATA 9.4     X64_7PRO" + b" " * 24 + stamp)
    head += card(stamp + b" " * 16 + b"Demographics".ljust(40) + b" " * 8)
    head += card(b"HEADER RECORD*******NAMESTR HEADER RECORD!!!!!!!000000000100000000000000000000")
    namestr = struct.pack(">hhhh8s40s8shhh2s8shhl52s", 1, 0, 8, 1, b"AGE".ljust(8), b"Age in years".ljust(40),
                          b" " * 8, 0, 0, 0, b"  ", b" " * 8, 0, 0, 0, b"\x00" * 52)  # fmt: skip
    head += namestr.ljust(160, b" ") + card(b"HEADER RECORD*******OBS     HEADER RECORD!!!!!!!" + b"0" * 30)
    data = b"\x41\x10" + b"\x00" * 6  # 1.0 as an IBM double
    return head + (data * rows).ljust(-(-8 * rows // 80) * 80, b" ")


@pytest.mark.parametrize(
    ("name", "content", "kind"),
    [
        ("dm.xpt", _xpt(25), "sas-xpt"),
        ("analysis.dta", _stata_old(480), "stata"),
        ("analysis.dta", _stata_new(1250), "stata"),
        ("analysis.csv", _stata_new(1250), "stata"),
        ("survey.sav", _spss(300), "spss-sav"),
    ],
)
def test_datasets_with_many_rows_block(tmp_path, name, content, kind):
    report = judged(tmp_path, name, content)
    assert report.type == kind
    assert_verdict(report, Verdict.BLOCK)


@pytest.mark.parametrize(
    ("name", "content", "kind"),
    [
        ("tiny.dta", _stata_new(3), "stata"),
        ("tiny.xpt", _xpt(3), "sas-xpt"),
        ("model.rds", gzip.compress(b"X\n\x00\x00\x00\x03\x00\x04\x02\x00" + b"\x00" * 50, mtime=0), "rds"),
        ("session.RData", gzip.compress(b"RDX3\nX\n\x00\x00\x00\x03" + b"\x00" * 50, mtime=0), "rdata"),
        ("ae.xpt", b"HEADER RECORD*******LIBRARY HEADER RECORD!!!!!!!000000000000000000000000000000  " * 2, "sas-xpt"),
    ],
)
def test_unreadable_or_small_datasets_are_review_never_pass(tmp_path, name, content, kind):
    report = judged(tmp_path, name, content)
    assert report.type == kind
    assert report.verdict is not Verdict.PASS, messages(report)


# --- damaged copies ---------------------------------------------------------------------------------------------

PATIENT_LEVEL = {
    "bundle.json": json.dumps(bundle(OBSERVATION, PATIENT, OBSERVATION), indent=2),
    "Patient.ndjson": "\n".join(json.dumps(dict(PATIENT, id=f"p-{i:03d}")) for i in range(12)) + "\n",
    "adt.hl7": "\r".join(ADT * 3) + "\r",
    "cohort.ped": PED,
    "cohort.fam": FAM,
}


@pytest.mark.parametrize("name", sorted(PATIENT_LEVEL))
@pytest.mark.parametrize("cut", [0.3, 0.6, 0.9])
def test_cut_copies_of_patient_level_files_never_pass(tmp_path, name, cut):
    text = PATIENT_LEVEL[name]
    report = judged(tmp_path, name, text[: int(len(text) * cut)])
    assert report.verdict is Verdict.BLOCK, f"{report.type}: {messages(report)}"
