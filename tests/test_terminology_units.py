"""Unit conversion to each concept's canonical unit; expected numbers worked out by hand."""

from pathlib import Path

import pytest

from cohort.model import Quantity
from cohort.terminology import Terminology
from cohort.terminology.units import Units, UnitSpec

MAPPINGS = Path(__file__).resolve().parents[1] / "mappings"


@pytest.fixture(scope="module")
def term() -> Terminology:
    return Terminology.load(MAPPINGS)


@pytest.mark.parametrize(
    ("value", "unit", "concept", "expected"),
    [
        (5, "K/uL", "platelets", 5),  # thousand per uL
        (5, "x10E3/uL", "platelets", 5),
        (5, "10^3/uL", "platelets", 5),
        (5, "10*3/uL", "platelets", 5),
        (20, "10*9/L", "platelets", 20),  # 10*9/L = 10*3/uL
        (150000, "/mm3", "platelets", 150),  # /mm3 = /uL; 150000/uL = 150 x10*3/uL
        (1500, "cells/uL", "anc", 1.5),
        (0.8, "10*9/L", "anc", 0.8),
        (75, "g/L", "hemoglobin", 7.5),  # g/L = g/dL x 10
        (5, "mmol/L", "hemoglobin", 5 / 0.6206),  # g/dL x 0.6206 = mmol/L
        (2.5, "mg/dL", "creatinine", 2.5),
        (176.84, "umol/L", "creatinine", 176.84 / 88.42),  # README fact: mg/dL x 88.42 = umol/L
        (2500, "mg/24hr", "urine_protein_24h", 2.5),
        (3, "g/24h", "urine_protein_24h", 3),
        (3, "g/(24.h)", "urine_protein_24h", 3),
        (3, "g/d", "urine_protein_24h", 3),
        (2500, "mg/g", "upcr", 2.5),  # mg/g = mg/mg x 1000
        (2, "g/g", "upcr", 2),
        (226, "mg/mmol", "upcr", 226 * 88.42 / 10000),  # mg/mmol / (mg per mmol creatinine)
        (100, "lb", "body_weight", 45.359237),
        (100, "[lb_av]", "body_weight", 45.359237),
        (70, "kgs", "body_weight", 70),
        (70000, "g", "body_weight", 70),
        (30, "mIU/mL", "hcg", 30),
        (30, "[IU]/L", "hcg", 30),  # m[IU]/mL = [IU]/L
        (250, "IU/mL", "hbv_dna", 250),
        (45, "10*6/L", "cd19_count", 45),  # 10*6/L = /uL
        (8, "{score}", "sledai", 8),
    ],
)
def test_convert(term: Terminology, value: float, unit: str, concept: str, expected: float) -> None:
    got = term.convert(Quantity(value, unit=unit), concept)
    assert got == pytest.approx(expected, rel=1e-9)


def test_creatinine_threshold_and_upcr_facts(term: Terminology) -> None:
    # README facts: mg/dL x 88.42 = umol/L; mg/g = mg/mmol x 8.84 (2 mg/mg ~ 226 mg/mmol)
    assert term.convert(Quantity(176.84, unit="umol/L"), "creatinine") == pytest.approx(
        2.0, rel=1e-3
    )
    assert term.convert(Quantity(226, unit="mg/mmol"), "upcr") == pytest.approx(2.0, rel=2e-3)


def test_ucum_code_preferred_over_unit_text(term: Terminology) -> None:
    q = Quantity(5, unit="thousand/cumm", code="10*3/uL")
    assert term.convert(q, "platelets") == pytest.approx(5)
    assert term.convert(Quantity(5, unit="K/uL", code="not-ucum"), "platelets") == pytest.approx(5)


@pytest.mark.parametrize(
    ("unit", "concept"),
    [
        ("mg/mL", "platelets"),
        ("bananas", "platelets"),
        ("", "platelets"),  # no unit: never assumed
        ("K/uL", "body_weight"),
        ("copies/mL", "hbv_dna"),  # assay-specific: no conversion to IU
        ("{copies}/mL", "hbv_dna"),
        ("%", "anc"),
        ("mg/dL", "urine_protein_24h"),  # a concentration is not a rate
        ("mmol/L", "platelets"),
        ("{index}", "sledai"),
    ],
)
def test_unconvertible_is_none(term: Terminology, unit: str, concept: str) -> None:
    assert term.convert(Quantity(5, unit=unit), concept) is None


def test_unknown_concept_and_canonical_units(term: Terminology) -> None:
    assert term.convert(Quantity(5, unit="K/uL"), "no_such_concept") is None
    assert term.canonical_unit("platelets") == "10*3/uL"
    assert term.canonical_unit("hemoglobin") == "g/dL"
    assert term.canonical_unit("upcr") == "mg/mg"
    assert term.canonical_unit("no_such_concept") is None


def test_own_registry_reads_ucum_like_the_stock_one() -> None:
    # registry() builds ucumvert's registry without its second, application-wide copy; every
    # unit the mappings name must mean the same in both (base units and magnitude).
    import csv

    from ucumvert import PintUcumRegistry

    from cohort.terminology.units import _ANNOTATION, _own_registry, registry

    ours, stock = _own_registry(), PintUcumRegistry()
    assert type(registry()) is not PintUcumRegistry  # the stock class is only the fallback
    units = set()
    with (MAPPINGS / "units.csv").open() as f:
        units |= {row["unit"] for row in csv.DictReader(f)}
    with (MAPPINGS / "unit_aliases.csv").open() as f:
        units |= {row["ucum"] for row in csv.DictReader(f)}
    units = {u for u in (_ANNOTATION.sub("", u).strip() for u in units) if u}
    assert len(units) > 10
    for unit in sorted(units):
        a, b = ours.from_ucum(unit).to_base_units(), stock.from_ucum(unit).to_base_units()
        assert str(a.units) == str(b.units), unit
        assert a.magnitude == pytest.approx(b.magnitude, rel=1e-12), unit


def test_registry_without_a_usable_cache_is_still_the_single_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ucumvert import PintUcumRegistry

    from cohort.terminology import units

    real, calls = units._own_registry, []

    def no_cache(**kwargs: object) -> object:
        calls.append(kwargs)
        if kwargs:
            raise OSError("read-only cache folder")
        return real()

    monkeypatch.setattr(units, "_own_registry", no_cache)
    reg = units.registry.__wrapped__()  # not the process's cached one
    assert calls == [{"cache_folder": ":auto:"}, {}]
    assert type(reg) is not PintUcumRegistry
    assert reg.from_ucum("10*3/uL").to(reg.from_ucum("10*9/L").units).magnitude == pytest.approx(1)


def test_a_value_at_a_limit_in_another_unit_converts_to_the_limit(term: Terminology) -> None:
    # pint alone gives 6.999999999999999 and 0.010000000000000002 for these
    assert term.convert(Quantity(7, unit="g/24h"), "urine_protein_24h") == 7.0
    assert term.convert(Quantity(0.1, unit="g/L"), "hemoglobin") == 0.01
    assert term.convert(Quantity(0.1, unit="/mm3"), "platelets") == 0.0001


def test_the_cached_factor_gives_what_pint_gives_for_each_value(term: Terminology) -> None:
    """Every unit the mappings name against every concept's unit, at several values: the
    factor worked out once per unit pair agrees with converting each value through pint."""
    units = term.units
    written = set(units.aliases) | set(units.aliases.values())
    written |= {spec.unit for spec in units.specs.values()}
    pairs = converted = 0
    for spec in units.specs.values():
        for unit in sorted(written):
            source = units.to_ucum(unit)
            for value in (0.1, 7, 80, 176.84, 1500):
                try:
                    direct = units._through_pint(value, source, spec)
                except Exception:  # pint refused: the cached path must refuse too
                    direct = None
                cached = units._convert(value, source, spec) if direct is not None else None
                pairs += 1
                if direct is None:
                    continue
                converted += 1
                assert cached == pytest.approx(direct, rel=1e-11), (unit, spec.unit, value)
    assert converted > 500 and pairs > converted  # both kinds of pair were met


def test_a_conversion_that_is_no_plain_factor_still_goes_through_pint() -> None:
    units = Units({"temp_f": UnitSpec("[degF]"), "temp_k": UnitSpec("K")}, {})
    # K -> [degF] is affine: no factor, each value converted by pint
    assert units.convert(Quantity(300, unit="K"), "temp_f") == pytest.approx(80.33)
    assert units.convert(Quantity(310, unit="K"), "temp_f") == pytest.approx(98.33)
    assert units.convert(Quantity(37, unit="Cel"), "temp_k") is None  # pint refuses Cel * x


@pytest.mark.parametrize(
    ("value", "unit", "concept", "expected"),
    [
        (300, "m[iU]/mL", "hcg", 300),  # UCUM: [IU] is defined as 1 [iU]
        (300, "[iU]/L", "hcg", 300),
        (250, "[iU]/mL", "hbv_dna", 250),
    ],
)
def test_iu_with_lower_case_i_is_iu(
    term: Terminology, value: float, unit: str, concept: str, expected: float
) -> None:
    assert term.convert(Quantity(value, unit, unit), concept) == pytest.approx(expected)


def test_other_arbitrary_units_still_convert_only_to_themselves() -> None:
    units = Units({"iu": UnitSpec("[IU]/mL"), "arb": UnitSpec("[arb'U]/mL")}, {})
    assert units.convert(Quantity(5, code="[arb'U]/mL"), "iu") is None
    assert units.convert(Quantity(5, code="[iU]/mL"), "arb") is None
    assert units.convert(Quantity(5, code="[arb'U]/mL"), "arb") == 5


SNOMED_KG = "258683005"  # SNOMED CT unit code 'kilogram', not a UCUM unit


@pytest.mark.parametrize(
    ("system", "code", "expected"),
    [
        ("http://snomed.info/sct", SNOMED_KG, 70),  # not UCUM: the unit text is read
        ("urn:oid:2.16.840.1.113883.6.96", SNOMED_KG, 70),
        ("http://unitsofmeasure.org", "kg", 70),
        ("urn:oid:2.16.840.1.113883.6.8", "[lb_av]", 70 * 0.45359237),  # UCUM's OID
        ("", "kg", 70),  # no system: the code is read as UCUM, as before
        ("http://unitsofmeasure.org", SNOMED_KG, None),  # a UCUM code UCUM cannot use
    ],
)
def test_quantity_code_is_ucum_only_under_the_ucum_system(
    term: Terminology, system: str, code: str, expected: float | None
) -> None:
    got = term.convert(Quantity(70, unit="kg", code=code, system=system), "body_weight")
    assert got == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("10*9/L", "10*3/uL", True),  # K/uL written per litre: one unit
        ("10*6/L", "/uL", True),
        ("m[IU]/mL", "[IU]/L", True),
        ("10*3/uL", "/uL", False),  # a thousandth of it
        ("g/dL", "g/L", False),
        ("mg/dL", "mmol/L", False),  # no conversion without a molar mass
        ("[IU]/L", "[arb'U]/L", False),  # arbitrary units convert to themselves only
        ("{titer}", "{score}", False),  # annotations alone are what a bare number is read as
        ("{score}", "{score}", True),
        ("10*3/uL", "x10E3/uL", False),  # not UCUM
    ],
)
def test_same_unit(a: str, b: str, same: bool) -> None:
    from cohort.terminology.units import same_unit

    assert same_unit(a, b) is same
    assert same_unit(b, a) is same


def test_an_annotation_in_place_of_a_unit_term_is_one() -> None:
    """UCUM reads an annotation standing alone where a unit term stands as 1: LOINC writes
    eGFR in `mL/min/{1.73_m2}`. Dropping the annotation left `mL/min/`, which UCUM cannot
    parse: units.csv refused the unit, and every eGFR carrying it was not convertible."""
    from cohort.terminology.units import ucum_problem

    assert ucum_problem("mL/min/{1.73_m2}") is None
    assert ucum_problem("/{HPF}") is None
    units = Units({"egfr": UnitSpec("mL/min/{1.73_m2}")}, {"mL/min/1.73m2": "mL/min/{1.73_m2}"})
    assert units.convert(Quantity(45, code="mL/min/{1.73_m2}"), "egfr") == 45
    assert units.convert(Quantity(45, unit="mL/min/1.73m2"), "egfr") == 45  # via the alias
    assert units.convert(Quantity(0.75, code="mL/s/{1.73_m2}"), "egfr") == pytest.approx(45)
    assert units.convert(Quantity(45, code="mg/dL"), "egfr") is None


@pytest.mark.parametrize(
    ("value", "unit", "concept", "expected"),
    [
        # `K/ul` (the platelet and leukocyte unit of the FHIR R4 example Bundle "report") is
        # valid UCUM, kelvin per microlitre (UCUM's `l` is a litre too), so it was read as that
        # and could not convert; the alias `K/uL`, looked up whatever the case
        # (mappings/README.md), says thousand per microlitre
        (84, "K/ul", "platelets", 84),
        (2.5, "K/ul", "anc", 2.5),
        (12, "G/dL", "hemoglobin", 12),  # UCUM: gauss per decilitre; alias g/dl: g/dL
    ],
)
def test_a_case_variant_of_an_alias_reads_as_the_alias_when_ucum_gives_no_conversion(
    term: Terminology, value: float, unit: str, concept: str, expected: float
) -> None:
    assert term.convert(Quantity(value, unit=unit), concept) == pytest.approx(expected)


def test_a_unit_ucum_converts_keeps_its_ucum_reading_before_any_case_folded_alias(
    term: Terminology,
) -> None:
    # `g/l` is gram per litre in UCUM: 120 g/l = 12 g/dL (the folded alias `G/L`, 10*9/L,
    # is not asked); a case-folded alias that does not convert either still gives no value
    assert term.convert(Quantity(120, unit="g/l"), "hemoglobin") == pytest.approx(12)
    assert term.convert(Quantity(84, unit="K/ul"), "body_weight") is None
    assert term.convert(Quantity(150, unit="g/l"), "platelets") is None


@pytest.mark.parametrize(
    ("value", "unit", "concept", "expected"),
    [
        # spellings a lab or an EHR writes that neither UCUM nor an alias read (unknown before)
        (2400, "oz", "body_weight", 2400 * 0.028349523125),  # Epic keeps weights in ounces
        (150, "lbs.", "body_weight", 150 * 0.45359237),
        (150, "pounds", "body_weight", 150 * 0.45359237),
        (1.2, "x10*9/L", "anc", 1.2),  # 10^9/L = 10^3/uL
        (150, "x10*3/uL", "platelets", 150),
        (150, "Thousand/uL", "platelets", 150),
        (150, "x10^3/µL", "platelets", 150),
    ],
)
def test_common_unit_spellings_read_through_the_shipped_aliases(
    term: Terminology, value: float, unit: str, concept: str, expected: float
) -> None:
    assert term.convert(Quantity(value, unit=unit), concept) == pytest.approx(expected)
