"""National identifier schemes: per scheme, synthetic valid numbers (made here by the algorithm, independently of
fabric/identifiers) are accepted in every common formatting and normalise to one form; a wrong check digit is
refused; the scheme table is complete."""

from __future__ import annotations

from datetime import date

import pytest

from fabric.identifiers import personnummer, pesel
from fabric.identifiers.schemes import DEFAULT_SCHEME, FHIR_SYSTEMS, SCHEMES, normalise, scheme

pytestmark = pytest.mark.unit

TABLE = "TRWAGMYFPDXBNJZSQVHLCKE"


def nhs_number(body: str) -> str:
    check = 11 - sum(int(d) * (10 - i) for i, d in enumerate(body)) % 11
    return body + str(0 if check == 11 else check)


def bsn(body: str) -> str:
    """The last digit d with sum(9..2 weights) - d divisible by 11 (bodies chosen so that d is a digit)."""
    total = sum(int(d) * (9 - i) for i, d in enumerate(body))
    return body + str(total % 11)


def nir(body: str) -> str:
    digits = body.replace("2A", "19").replace("2B", "18")
    return f"{body}{97 - int(digits) % 97:02d}"


def pesel_number(body: str) -> str:
    weights = (1, 3, 7, 9) * 3
    return body + str((10 - sum(int(d) * w for d, w in zip(body, weights, strict=False)) % 10) % 10)


def luhn(body: str) -> str:
    digits = [int(d) * (2 - i % 2) for i, d in enumerate(body)]
    return body + str((10 - sum(d // 10 + d % 10 for d in digits) % 10) % 10)


def codice_fiscale(body: str) -> str:
    odd = dict(zip("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", [1, 0, 5, 7, 9, 13, 15, 17, 19, 21] * 2, strict=False))
    odd.update(zip("KLMNOPQRSTUVWXYZ", [2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23], strict=True))
    even = {c: (int(c) if c.isdigit() else ord(c) - ord("A")) for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"}
    total = sum(odd[c] if i % 2 == 0 else even[c] for i, c in enumerate(body))
    return body + chr(ord("A") + total % 26)


def belgian(body: str, *, after_2000: bool = False) -> str:
    return f"{body}{97 - int(('2' if after_2000 else '') + body) % 97:02d}"


def wrong_last(number: str) -> str:
    """The same number with its last check character changed."""
    last = number[-1]
    if last.isdigit():
        return number[:-1] + str((int(last) + 1) % 10)
    return number[:-1] + ("A" if last != "A" else "B")


# scheme -> (valid number in normalised form, the same number written as people write it)
CASES: dict[str, list[tuple[str, list[str]]]] = {
    "nhs": [(n := nhs_number("401023213"), [f"{n[:3]} {n[3:6]} {n[6:]}", f"{n[:3]}-{n[3:6]}-{n[6:]}"])],
    "nl-bsn": [(n := bsn("12345672"), [f"{n[:4]}.{n[4:6]}.{n[6:]}", f"{n[:3]} {n[3:6]} {n[6:]}"])],
    "fr-nir": [
        (n := nir("2950675114203"), [f"{n[0]} {n[1:3]} {n[3:5]} {n[5:7]} {n[7:10]} {n[10:13]} {n[13:]}"]),
        (n := nir("177022B050123"), [f"{n[0]} {n[1:3]} {n[3:5]} {n[5:7]} {n[7:10]} {n[10:13]} {n[13:]}".lower()]),
    ],
    "pl-pesel": [(pesel_number("9207150432"), []), (pesel_number("0224301234"), [])],
    "se-personnummer": [
        ("19" + (n := luhn("640823323")), [f"{n[:6]}-{n[6:]}", f"19{n[:6]}-{n[6:]}", f"19{n}"]),
        ("20" + (n := luhn("150101456")), [f"20{n[:6]} {n[6:]}"]),
    ],
    "it-codice-fiscale": [
        (n := codice_fiscale("VRDLGU66C12F205"), [n.lower(), f"{n[:3]} {n[3:6]} {n[6:11]} {n[11:]}"])
    ],
    "es-dni-nie": [
        ((d := "31415926") + TABLE[int(d) % 23], [f"31.415.926-{TABLE[int(d) % 23]}"]),
        ("Y2718281" + TABLE[int("12718281") % 23], [f"y-2718281-{TABLE[int('12718281') % 23].lower()}"]),
        ("00000123" + TABLE[123 % 23], [f"123{TABLE[123 % 23]}"]),
    ],
    "be-national-number": [
        (n := belgian("720315123"), [f"{n[:2]}.{n[2:4]}.{n[4:6]}-{n[6:9]}.{n[9:]}"]),
        (n := belgian("040229456", after_2000=True), [f"{n[:6]} {n[6:9]} {n[9:]}"]),
    ],
}


def test_every_scheme_has_cases_a_validator_and_examples():
    assert set(CASES) == set(SCHEMES)
    assert DEFAULT_SCHEME == "nhs" in SCHEMES
    for code, entry in SCHEMES.items():
        assert entry.code == code and entry.name and entry.plural and len(entry.country) == 2
        assert callable(entry.normalise) and entry.examples
        for example in entry.examples:
            assert entry.normalise(example) is not None, (code, example)
        assert all(FHIR_SYSTEMS[system] == code for system in entry.fhir_systems)
    assert len(FHIR_SYSTEMS) == sum(len(s.fhir_systems) for s in SCHEMES.values())  # no two schemes share one


@pytest.mark.parametrize(("code", "number", "variants"), [(c, n, v) for c, cases in CASES.items() for n, v in cases])
def test_valid_numbers_normalise_to_one_form(code, number, variants):
    assert normalise(code, number) == number
    for variant in variants:
        assert normalise(code, variant) == number, variant


@pytest.mark.parametrize(("code", "number"), [(c, n) for c, cases in CASES.items() for n, _ in cases])
def test_a_wrong_check_character_is_refused(code, number):
    assert normalise(code, wrong_last(number)) is None


@pytest.mark.parametrize("code", SCHEMES)
@pytest.mark.parametrize("junk", ["", "   ", "abc", "1234", "0" * 20, "9434765919x"])
def test_junk_is_refused(code, junk):
    assert normalise(code, junk) is None


def test_an_unknown_scheme_is_named_with_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown identifier scheme 'xx'.*nl-bsn"):
        scheme("xx")


def test_pesel_refuses_an_impossible_birth_date_and_reads_the_century():
    assert pesel.birth_date(pesel_number("9207150432")) == (1992, 7, 15)
    assert pesel.birth_date(pesel_number("0224301234")) == (2002, 4, 30)
    assert pesel.birth_date(pesel_number("8892121234")) == (1888, 12, 12)
    assert normalise("pl-pesel", pesel_number("9202300432")) is None  # 30 February


def test_personnummer_century_from_the_separator_and_coordination_numbers():
    n = luhn("121212121")  # 12-12-12
    assert personnummer.normalise(f"{n[:6]}-{n[6:]}", today=date(2026, 12, 7)) == "20" + n
    assert personnummer.normalise(f"{n[:6]}+{n[6:]}", today=date(2026, 12, 7)) == "19" + n
    assert personnummer.normalise(f"{n[:6]}-{n[6:]}", today=date(2011, 1, 1)) == "19" + n
    assert personnummer.normalise(f"19{n[:6]}+{n[6:]}") is None  # `+` only without a century
    coordination = luhn("701063238")  # day 3 + 60
    assert personnummer.normalise(coordination) == "19" + coordination
    assert normalise("se-personnummer", luhn("701332123")) is None  # 32 October


def test_nhs_numbers_whose_check_would_be_ten_are_refused():
    body = next(b for b in (f"4010232{i:02d}" for i in range(100)) if len(nhs_number(b)) == 11)
    assert all(normalise("nhs", body + str(d)) is None for d in range(10))


def test_dni_and_nie_refuse_a_letter_where_none_fits():
    assert normalise("es-dni-nie", "W1234567L") is None
    assert normalise("es-dni-nie", "123456789") is None
