"""Messy sample decorations: record variants that never change a patient's expected outcome."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import orjson

from cohort.samples.fhir import LOINC, RXNORM, SNOMED, Builder, cc, qty, rxmed


# -- messy decorations (never change an outcome; each applied at least once per site) -------
def _rewrite_system(old: str, new: str) -> Callable[[Builder], None]:
    def apply(b: Builder) -> None:
        def walk(o: Any) -> None:
            if isinstance(o, dict):
                if o.get("system") == old:
                    o["system"] = new
                for v in o.values():
                    walk(v)
            elif isinstance(o, list):
                for v in o:
                    walk(v)

        # Copy each resource's elements before editing: codings can be shared with module-level
        # templates, and an in-place edit would leak into every later generation in this process
        # (the resources themselves stay the same objects: the builder and its slots hold them).
        for res in b.resources():
            for key, value in list(res.items()):
                if isinstance(value, dict | list):
                    res[key] = orjson.loads(orjson.dumps(value))
        walk(b.resources())

    return apply


def _units(b: Builder) -> None:
    for slot, unit, code in (("plt", "x10E3/uL", None), ("anc", "10*9/L", "10*9/L")):
        r = b.first(slot)
        assert r is not None
        r["valueQuantity"] = qty(r["valueQuantity"]["value"], unit, code)


def _hcq_request(b: Builder) -> None:
    st = b.first("hcq")
    assert st is not None
    b.med_request(
        "hcq",
        {"medicationCodeableConcept": st["medicationCodeableConcept"]},
        authored=(date.fromisoformat(st["effectivePeriod"]["start"]) - b.as_of).days,
        dosage=st.get("dosage"),
    )
    b.base.add("hcq")


def _amended(b: Builder) -> None:
    for slot, status in (("plt", "amended"), ("hgb", "corrected")):
        r = b.first(slot)
        assert r is not None
        r["status"] = status


def _eie_belimumab(b: Builder) -> None:
    b.med_statement(
        None,
        rxmed("1092437", "belimumab", "Benlysta"),
        status="entered-in-error",
        start=-21,
        end=-21,
    )


def _lab_distractor(
    slot: str, value: float, unit: str, when: int, status: str
) -> Callable[[Builder], None]:
    def apply(b: Builder) -> None:
        r = b.first(slot)
        assert r is not None
        b.obs(None, r["code"], when, {"valueQuantity": qty(value, unit)}, status=status)

    return apply


def _refuted_malignancy(b: Builder) -> None:
    b.condition(
        None,
        cc(
            "http://hl7.org/fhir/sid/icd-10-cm",
            "C50.911",
            "Malignant neoplasm of right female breast",
        ),
        onset=-300,
        verification="refuted",
    )


# name, action, base slots it needs, scenarios it is kept away from (for readability only)
DECORATIONS: list[tuple[str, Callable[[Builder], None], tuple[str, ...], tuple[str, ...]]] = [
    ("unit_variants", _units, ("plt", "anc"), ()),
    ("hcq_as_medication_request", _hcq_request, ("hcq",), ()),
    ("amended_corrected_labs", _amended, ("plt", "hgb"), ()),
    ("entered_in_error_belimumab", _eie_belimumab, (), ("no_medication_records",)),
    (
        "entered_in_error_low_platelets",
        _lab_distractor("plt", 10, "10*3/uL", -3, "entered-in-error"),
        ("plt",),
        (),
    ),
    (
        "cancelled_low_hemoglobin",
        _lab_distractor("hgb", 6.0, "g/dL", -2, "cancelled"),
        ("hgb",),
        (),
    ),
    ("future_dated_low_platelets", _lab_distractor("plt", 5, "10*3/uL", 10, "final"), ("plt",), ()),
    (
        "refuted_malignancy",
        _refuted_malignancy,
        (),
        ("malignancy_breast", "washout_plus_malignancy", "in_situ_d0510"),
    ),
    ("snomed_https_trailing_slash", _rewrite_system(SNOMED, "https://snomed.info/sct/"), (), ()),
    ("loinc_oid", _rewrite_system(LOINC, "urn:oid:2.16.840.1.113883.6.1"), (), ()),
    ("rxnorm_oid", _rewrite_system(RXNORM, "urn:oid:2.16.840.1.113883.6.88"), (), ()),
]
