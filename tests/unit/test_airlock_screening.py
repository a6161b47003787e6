"""Identifier screening of free text: Presidio with Enclave's recognisers finds identifiers in context and lets
research vocabulary (drugs, genes, ICD-10 codes, rs ids, reference lists, study dates) through."""

from __future__ import annotations

import pytest

from output_checks.masking import mask
from output_checks.policy import load_policy
from output_checks.screening.text import Screener, Segment
from output_checks.verdicts import Verdict

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def screener() -> Screener:
    return Screener(load_policy())


def entities(screener: Screener, text: str) -> set[str]:
    found = screener.screen_segments([Segment("t", text)], check="identifiers")
    return {f.message.split("; ")[-2].split("(")[-1] if "; " in f.message else f.message for f in found}


def flagged(screener: Screener, text: str) -> list[str]:
    return [f.message for f in screener.screen_segments([Segment("t", text)], check="identifiers")]


@pytest.mark.parametrize(
    ("text", "entity"),
    [
        ("NHS number 943 476 5919 on the referral.", "UK_NHS"),
        ("nhs: 9434765919", "UK_NHS"),
        ("Seen today: Mrs Margaret Thompson, 71.", "PERSON"),
        ("Letter copied to Dr Sarah Jones.", "PERSON"),
        ("She was born on 14/03/1956 in Leeds.", "DATE_OF_BIRTH"),
        ("DOB: 1956-03-14", "DATE_OF_BIRTH"),
        ("born on the fourteenth of March 1956", "DATE_OF_BIRTH"),
        ("Date of birth March 14, 1956", "DATE_OF_BIRTH"),
        ("Contact margaret.thompson@example.co.uk for follow-up", "EMAIL_ADDRESS"),
        ("Tel: 0113 243 3144.", "PHONE_NUMBER"),
        ("mobile 07700 900123", "PHONE_NUMBER"),
        ("Lives at 12 Acacia Avenue, Leeds.", "ADDRESS"),
        ("Postcode LS6 2QT", "UK_POSTCODE"),
        ("MRN: RBH0012345", "MRN"),
        ("Hospital number RXH1234567", "MRN"),
        ("Spanish NIF 12345678Z", "ES_NIF"),
        ("codice fiscale RSSMRA85T10A562S", "IT_FISCAL_CODE"),
        ("PESEL 44051401359", "PL_PESEL"),
        ("National Insurance number JG 10 37 59 A", "UK_NINO"),
    ],
)
def test_identifiers_in_context_block(screener, text, entity):
    found = list(screener.screen_segments([Segment("line 1", text)], check="identifiers"))
    assert any(f"; {entity}," in f.message for f in found), [f.message for f in found]
    assert all(f.verdict is Verdict.BLOCK and f.location == "line 1" for f in found)


@pytest.mark.parametrize(
    "text",
    [
        "Atorvastatin 40 mg and ezetimibe lowered LDL cholesterol by 48%.",
        "Carriers of PCSK9 rs11591147 had lower LDL (beta -0.49, SE 0.05, p = 3.2e-12).",
        "Diagnoses were coded with ICD-10 (I21.0, I25.1, E78.0, I42.1).",
        "1. Smith J, Jones A, Brown K. Statins after myocardial infarction. Lancet 2019;393:123-31.",
        "Ridker PM, Danielson E, Fonseca FA, et al. Rosuvastatin to prevent vascular events. N Engl J Med 2008.",
        "We recruited patients between January 2015 and March 2021 at five sites.",
        "Survival was estimated with Kaplan-Meier curves and compared with the log-rank test; Cox models adjusted.",
        "Odds ratio 1.45 (95% CI 1.12-1.88); 1,234 of 5,678 patients (21.7%).",
        "Variants in MYH7, MYBPC3 and TTN were found in 38 of 412 cases of cardiomyopathy.",
        "Lorem ipsum dolor sit amet. Sed volutpat vestibulum venenatis.",
        "Kernel connection file: ip 127.0.0.1, shell port 53968",
        "Study instance UID 1.2.840.10008.5.1.4.1.1.4",
        "The Bland-Altman limits of agreement for LVEF were -6.1 to 5.8 points.",
    ],
)
def test_research_vocabulary_passes(screener, text):
    assert flagged(screener, text) == []


def test_findings_mask_the_identifier(screener):
    text = "Mrs Margaret Thompson, NHS 943 476 5919, margaret.thompson@example.co.uk"
    joined = " ".join(flagged(screener, text))
    for secret in ("943 476 5919", "9434765919", "Margaret Thompson", "margaret.thompson@example.co.uk"):
        assert secret not in joined
    assert "Thompson" not in joined


def test_mask_keeps_at_most_two_characters():
    assert mask("943 476 5919") == "94**********"
    assert mask("Al") == "**"
    assert mask("") == ""


def test_long_text_is_screened_everywhere(screener):
    filler = "The cohort's mean LDL was 3.1 mmol/L at baseline.\n" * 3000
    text = filler + "Patient NHS number 943 476 5919.\n" + filler
    assert len(text) > 100_000
    assert any("UK_NHS" in m for m in flagged(screener, text))


def test_recognisers_file_adds_site_identifiers(tmp_path):
    extra = tmp_path / "site-recognisers.yaml"
    extra.write_text(
        "recognizers:\n"
        "  - name: TrialIdRecognizer\n    supported_language: en\n    supported_entity: TRIAL_ID\n"
        "    patterns:\n      - {name: trial id, regex: 'CARD-\\d{6}', score: 0.9}\n"
    )
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(f"recognizers_file: {extra.name}\n")
    screener = Screener(load_policy(policy_file))
    found = list(screener.screen_segments([Segment("l", "participant CARD-123456 withdrew")], check="identifiers"))
    assert [f for f in found if "TRIAL_ID" in f.message]


# ---------------------------------------------------------------------------------------------- terms, not names

STATSMODELS_SUMMARY = """                            OLS Regression Results
==============================================================================
Dep. Variable:                    ldl   R-squared:                       0.412
Model:                            OLS   Adj. R-squared:                  0.398
Method:                 Least Squares   F-statistic:                     28.71
No. Observations:                 212   AIC:                             512.3
Omnibus:                        3.112   Durbin-Watson:                   1.981
Prob(Omnibus):                  0.211   Jarque-Bera (JB):                2.874
"""


def person_findings(screener: Screener, text: str) -> list[str]:
    return [m for m in flagged(screener, text) if "PERSON" in m]


@pytest.mark.parametrize(
    "text",
    [
        STATSMODELS_SUMMARY,
        "Method: Least Squares",
        "Kaplan Meier estimate of survival by LVEF group",
        "Cox proportional hazards model adjusted for age and sex",
        "Cox Proportional Hazards Model",
        "Wald test            = 13.47  on 2 df,   p=0.001",
        "Fisher's exact test and Mann Whitney U test were used.",
        "Bonferroni correction; Hosmer Lemeshow goodness of fit; Bland Altman plot",
        "Wilcoxon signed rank test, Student's t test, Pearson correlation, Spearman rank correlation",
        "Kruskal Wallis test and the Hodges Lehmann estimator",
        "Nelson-Aalen estimates, the Fine and Gray model, Shapiro Wilk and Durbin Watson statistics",
        "Brugada syndrome, Wolff-Parkinson-White syndrome and Takotsubo cardiomyopathy",
        "Patients with Tetralogy of Fallot (n=45), Ebstein Anomaly (n=12) and Marfan Syndrome (n=30)",
        "Kawasaki disease and Chagas cardiomyopathy",
        "LEAST SQUARES MEANS | KAPLAN MEIER ESTIMATE | MEAN AGE AT BASELINE",
        "WOLFF PARKINSON WHITE | BRUGADA | LONG QT",
        "Grace score and Martin Hopkins LDL; Holter monitoring; Simpson biplane",
    ],
)
def test_statistical_and_clinical_terms_are_not_names(screener, text):
    assert person_findings(screener, text) == []


@pytest.mark.parametrize(
    "text",
    [
        "Mrs Margaret Cox attended clinic",
        "Patient Grace Martin, Cox model",
        "John Fisher had a Fisher exact test",
        "Seen: Ann Pearson (Pearson correlation 0.4)",
        "Dr Fisher reviewed the echo",
        "Margaret Thompson, Kaplan Meier",
        "Helen Wald was admitted with chest pain",
        "Peter Student presented with chest pain",
        "Sarah Kawasaki, 34, seen today",
        "Grace Cox test results were normal",
    ],
)
def test_patient_names_beside_or_like_terms_block(screener, text):
    found = list(screener.screen_segments([Segment("l", text)], check="identifiers"))
    assert any("PERSON" in f.message and f.verdict is Verdict.BLOCK for f in found), [f.message for f in found]
