"""SNOMED CT children of an include-descendants reference row, end to end through `cohort run`.

The reference tables (shared/terminology) list many SNOMED CT rows with include_descendants=Y;
cohort has no SNOMED hierarchy and matches exact codes only, so a chart coded with a child
concept was missed. A differential test found it with Synthea's codes: 72892002 "Normal
pregnancy" and 79586000 "Tubal pregnancy" (children of 77386006 Pregnancy) and 233678006
"Childhood asthma" (child of 195967001 Asthma) left `pregnancy_lactation` and
`cs_dependent_comorbidity` passing. The children are now rows of their own, each from a public
value set named in its row (mappings/README.md, "Added after checking public sources").

Each patient here is a small hand-made Bundle read from a folder, as a site's export would be.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from criteria_helpers import ago, condition, screened, status
from criteria_helpers import run as run_criterion
from test_reliability_support import AS_OF, write_config

from cohort.config import load_config
from cohort.runner import run

SNOMED = "http://snomed.info/sct"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"

# patient id -> (SNOMED code, display) of the one active condition besides SLE
CHARTS = {
    "desc-normal-pregnancy": ("72892002", "Normal pregnancy"),
    "desc-tubal-pregnancy": ("79586000", "Tubal pregnancy"),
    "desc-childhood-asthma": ("233678006", "Childhood asthma"),
    # a cancer below 363346000 (OncoTreeVS and two more public lists) and a basal cell carcinoma
    # of skin (VSAC All Primary and Secondary Cancer): SPEC's exception
    "desc-pancreatic-cancer": ("372003004", "Primary malignant neoplasm of pancreas"),
    "desc-bcc-face": ("402519009", "Basal cell carcinoma of face"),
    # an AIDS-associated cancer (VSAC All Primary and Secondary Cancer and VSAC HIV): both
    "desc-aids-kaposi": (
        "420524008",
        "Kaposi's sarcoma associated with acquired immunodeficiency syndrome",
    ),
    "desc-control": None,
}


def _condition(pid: str, n: int, code: str, display: str, onset: str) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": f"{pid}-c{n}",
        "clinicalStatus": {"coding": [{"system": CLINICAL, "code": "active"}]},
        # the display only: a condition's text is read too, and must not be what matches
        "code": {"coding": [{"system": SNOMED, "code": code, "display": display}]},
        "subject": {"reference": f"Patient/{pid}"},
        "onsetDateTime": onset,
    }


def _bundle(pid: str, extra: tuple[str, str] | None) -> dict[str, Any]:
    resources: list[dict[str, Any]] = [
        {"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": "1990-04-02"},
        _condition(pid, 1, "55464009", "Systemic lupus erythematosus", "2022-03-01"),
    ]
    if extra is not None:
        resources.append(_condition(pid, 2, extra[0], extra[1], "2026-09-15"))
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources],
    }


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    root = tmp_path_factory.mktemp("desc")
    site = root / "site"
    site.mkdir()
    for pid, extra in CHARTS.items():
        (site / f"{pid}.json").write_text(json.dumps(_bundle(pid, extra)), encoding="utf-8")
    run(load_config(write_config(root, {"uci": str(site)})), date.fromisoformat(AS_OF),
        root / "out")  # fmt: skip
    text = (root / "out" / "uci" / "candidates.csv").read_text(encoding="utf-8-sig")
    return {r["patient_id"]: r for r in csv.DictReader(io.StringIO(text))}


def test_every_chart_is_screened(rows: dict[str, dict[str, str]]) -> None:
    assert set(rows) == set(CHARTS)


@pytest.mark.parametrize("pid", ["desc-normal-pregnancy", "desc-tubal-pregnancy"])
def test_active_synthea_pregnancy_fails_pregnancy_lactation(
    rows: dict[str, dict[str, str]], pid: str
) -> None:
    row = rows[pid]
    assert row["pregnancy_lactation"] == "fail", row["reasons"]
    assert row["tier"] == "excluded"
    assert row["cs_dependent_comorbidity"] == "pass"


def test_active_childhood_asthma_is_unknown_on_cs_dependent_comorbidity(
    rows: dict[str, dict[str, str]],
) -> None:
    row = rows["desc-childhood-asthma"]
    assert row["cs_dependent_comorbidity"] == "unknown", row["reasons"]
    assert row["pregnancy_lactation"] == "pass"


def test_control_passes_both(rows: dict[str, dict[str, str]]) -> None:
    row = rows["desc-control"]
    assert (row["pregnancy_lactation"], row["cs_dependent_comorbidity"]) == ("pass", "pass")
    assert row["malignancy"] == "pass"


def test_primary_pancreatic_cancer_fails_malignancy(rows: dict[str, dict[str, str]]) -> None:
    """Before its row, 372003004 was caught only by the word "malignant" in its display (unknown,
    "confirm"); a chart coded without a display passed."""
    row = rows["desc-pancreatic-cancer"]
    assert row["malignancy"] == "fail", row["reasons"]
    assert row["tier"] == "excluded"


def test_aids_kaposi_sarcoma_fails_malignancy_and_immunodeficiency(
    rows: dict[str, dict[str, str]],
) -> None:
    """Before its `malignancy` row, 420524008 was a row of `hiv` only: `immunodeficiency` failed
    and `malignancy` was unknown through the word "sarcoma" of its display (confirm)."""
    row = rows["desc-aids-kaposi"]
    assert row["malignancy"] == "fail", row["reasons"]
    assert row["immunodeficiency"] == "fail", row["reasons"]
    assert row["tier"] == "excluded"


def test_basal_cell_carcinoma_of_the_face_passes_malignancy(
    rows: dict[str, dict[str, str]],
) -> None:
    """SPEC: localized basal cell carcinoma of skin is no exclusion; the display names a carcinoma,
    which the malignancy_named safety net would read as "confirm" but for the exception row."""
    assert rows["desc-bcc-face"]["malignancy"] == "pass", rows["desc-bcc-face"]["reasons"]


# --- the other concept groups, one criterion at a time (criteria_helpers: the real trial file,
# extraction and mappings) -----------------------------------------------------------------------


def _cond(code: str) -> dict[str, Any]:
    return condition(code, SNOMED, onset=ago(800))


@pytest.mark.parametrize(
    "code",
    [
        "239887007",  # SLE with organ/system involvement (VSAC Lupus)
        "11013005",  # lupus nephritis WHO class VI (VSAC Lupus)
        "295101000119105",  # nephropathy due to SLE (HELM descendants of 55464009; gm-sde)
        "1144942002",  # neuropsychiatric disorder due to SLE (two public SLE code lists)
    ],
)
def test_sle_children_are_sle(code: str) -> None:
    assert screened(_cond(code))
    assert status("sle_diagnosis", _cond(code)) == "pass"


@pytest.mark.parametrize("code", ["239888002", "239886003"])  # lupus panniculitis, limited LE
def test_cutaneous_lupus_children_are_screened_but_not_sle(code: str) -> None:
    assert screened(_cond(code))
    r = run_criterion("sle_diagnosis", _cond(code))
    assert str(r.status) == "unknown" and "confirm SLE" in r.reason, r.reason


def test_drug_induced_lupus_child_is_not_sle() -> None:
    """54912002 hydralazine-induced lupus (VSAC Lupus): an exclude=Y row of `sle`, as 201436003."""
    both = _cond("55464009")
    both["code"]["coding"].append({"system": SNOMED, "code": "54912002"})
    assert not screened(both)
    assert not screened(_cond("54912002"))


@pytest.mark.parametrize(
    ("cid", "code", "expected"),
    [
        ("hbv", "50167007", "fail"),  # chronic active type B viral hepatitis (VSAC Hepatitis B)
        ("hbv", "235865005", "fail"),  # hepatitis D superinfection of HBV carrier
        ("hbv", "76795007", "pass"),  # acute type B viral hepatitis: not chronic, not mapped
        ("hcv", "768289009", "fail"),  # chronic hepatitis C genotype 1a (VSAC Chronic Liver Dis.)
        ("tuberculosis", "25629007", "fail"),  # acute tuberculosis (VSAC Active Tuberculosis)
        # one public list only (verified=N): read only with use_unverified
        ("tuberculosis", "186193001", "pass"),
    ],
)
def test_infection_children(cid: str, code: str, expected: str) -> None:
    assert status(cid, _cond(code)) == expected


def test_unverified_tuberculosis_child_with_use_unverified() -> None:
    assert status("tuberculosis", _cond("186193001"), use_unverified=True) == "fail"


@pytest.mark.parametrize(
    "code",
    [
        "62479008",  # acquired immune deficiency syndrome (VSAC HIV)
        "91947003",  # asymptomatic HIV infection (VSAC HIV)
        "713742005",  # HIV antibody positive (finding) (VSAC HIV)
        "36980009",  # SCID due to absent adenosine deaminase (VSAC Severe Combined Immunodef.)
        "190979003",  # selective IgA deficiency (VSAC Disorders of the Immune System)
        "234599007",  # complement 2 deficiency (ICD-10-CM D84.1, already mapped, is the same)
    ],
)
def test_immunodeficiency_children_fail(code: str) -> None:
    assert status("immunodeficiency", _cond(code)) == "fail"


@pytest.mark.parametrize(
    "code",
    [
        "234646005",  # graft-versus-host disease: in Disorders of the Immune System, no PID
        "18827005",  # complement abnormality (low complement of active SLE is no deficiency)
    ],
)
def test_other_immune_disorders_are_not_immunodeficiency(code: str) -> None:
    assert status("immunodeficiency", _cond(code)) == "pass"


# --- malignancy: SNOMED CT cancers below 363346000, their exceptions and what is left out ---------
# Coded only (no text, no display): the malignancy_named safety net cannot see them.


@pytest.mark.parametrize(
    "code",
    [
        "372003004",  # primary malignant neoplasm of pancreas (OncoTreeVS + two more lists)
        "363418001",  # malignant tumor of pancreas (VSAC All Primary and Secondary Cancer)
        "93880001",  # primary malignant neoplasm of lung (VSAC)
        "94391008",  # secondary malignant neoplasm of lung (VSAC)
        "91861009",  # acute myeloid leukemia (VSAC)
        "118601006",  # non-Hodgkin's lymphoma (VSAC)
        "93984006",  # primary malignant neoplasm of rectum (HL7 mCODE, not in VSAC's expansion)
        "92813000",  # chronic lymphoid leukemia in remission (HL7 mCODE)
        "254838004",  # carcinoma of breast (VSAC)
        "403902008",  # adenosquamous carcinoma (VSAC; its words name no site)
    ],
)
def test_coded_only_cancers_fail_malignancy(code: str) -> None:
    r = run_criterion("malignancy", _cond(code))
    assert str(r.status) == "fail", r.reason


def test_aids_kaposi_sarcoma_alone_fails_malignancy_and_hiv() -> None:
    """420524008 "Kaposi's sarcoma associated with acquired immunodeficiency syndrome" is a member
    of VSAC All Primary and Secondary Cancer and of VSAC HIV. It was a row of `hiv` only (left out
    of `malignancy` as a second concept), so a screened SLE patient whose only cancer record it
    is, coded without a display, passed `malignancy`; it is a row of both now."""
    sle = condition("55464009", SNOMED, onset=ago(1500), rid="sle")
    kaposi = condition("420524008", SNOMED, onset=ago(800), rid="kaposi")
    assert screened(sle, kaposi)
    r = run_criterion("malignancy", sle, kaposi)
    assert str(r.status) == "fail", r.reason
    assert [e.ref for e in r.evidence] == ["Condition/kaposi"]
    h = run_criterion("immunodeficiency", sle, kaposi)  # the criterion that reads `hiv`
    assert str(h.status) == "fail", h.reason
    assert [e.ref for e in h.evidence] == ["Condition/kaposi"]


@pytest.mark.parametrize(
    "code",
    [
        "420302007",  # reticulosarcoma associated with AIDS
        "420524008",  # Kaposi's sarcoma associated with AIDS
        "421283008",  # primary lymphoma of brain associated with AIDS
        "422282000",  # malignant neoplasm associated with AIDS
        "442537007",  # non-Hodgkin lymphoma associated with HIV infection
        "713325002",  # primary cerebral lymphoma co-occurrent with HIV infection
        "713483007",  # reticulosarcoma co-occurrent with HIV infection
        "713718006",  # diffuse non-Hodgkin immunoblastic lymphoma co-occurrent with HIV infection
        "713897006",  # Burkitt lymphoma co-occurrent with HIV infection
    ],
)
def test_hiv_associated_cancers_of_the_vsac_list_fail_both(code: str) -> None:
    """The nine members of VSAC All Primary and Secondary Cancer that are rows of `hiv` too:
    coded only, each fails `malignancy` and `immunodeficiency`."""
    assert status("malignancy", _cond(code)) == "fail"
    assert status("immunodeficiency", _cond(code)) == "fail"


@pytest.mark.parametrize(
    ("code", "display"),
    [
        ("254701007", "Basal cell carcinoma of skin"),
        ("402519009", "Basal cell carcinoma of face"),
        ("231832009", "Basal cell carcinoma of eyelid"),
        ("1079091000119100", "Primary basal cell carcinoma of left upper limb"),
        ("402527000", "Basal cell carcinoma - infiltrative"),
    ],
)
def test_basal_cell_carcinoma_of_skin_stays_an_exception(code: str, display: str) -> None:
    """In VSAC All Primary and Secondary Cancer, but SPEC's exception: pass, coded only or with
    the display that names a carcinoma."""
    assert status("malignancy", _cond(code)) == "pass"
    assert status("malignancy", condition(code, SNOMED, onset=ago(800), text=display)) == "pass"


def test_a_cancer_beside_a_basal_cell_carcinoma_still_fails() -> None:
    assert status("malignancy", _cond("402519009"), _cond("93880001")) == "fail"


@pytest.mark.parametrize(
    "code",
    [
        "838352004",  # adenocarcinoma in situ of esophagus (listed by VSAC as a cancer)
        "871635009",  # squamous cell carcinoma in situ of esophagus
        "473419009",  # intraductal papillary mucinous carcinoma in situ of pancreas
    ],
)
def test_carcinoma_in_situ_goes_to_review_not_fail(code: str) -> None:
    r = run_criterion("malignancy", _cond(code))
    assert str(r.status) == "unknown" and "in situ" in r.reason, r.reason


def test_cervical_carcinoma_stage_0_is_an_unverified_exception() -> None:
    """254889004 "Carcinoma of cervix stage 0" (VSAC lists it as a cancer): carcinoma in situ of
    the cervix, SPEC's exception, read from one source (verified=N). By default its display still
    names a carcinoma (confirm); with use_unverified it passes; it never fails."""
    named = condition("254889004", SNOMED, onset=ago(800), text="Carcinoma of cervix stage 0")
    r = run_criterion("malignancy", named)
    assert str(r.status) == "unknown" and "confirm" in r.reason, r.reason
    assert status("malignancy", _cond("254889004")) == "pass"
    assert status("malignancy", named, use_unverified=True) == "pass"


@pytest.mark.parametrize(
    "code",
    [
        "302826002",  # adrenal cortical adenoma: in the VSAC expansion, but benign
        "446710005",  # low grade prostatic intraepithelial neoplasia
        "868252007",  # malignant neoplasm of gastrointestinal tract suspected (situation)
    ],
)
def test_members_that_are_no_malignancy_are_left_out(code: str) -> None:
    assert status("malignancy", _cond(code)) == "pass"


def test_single_source_cancer_counts_only_with_use_unverified() -> None:
    """10708511000119108 "Primary malignant neoplasm of uterus": OncoTreeVS only (verified=N)."""
    assert status("malignancy", _cond("10708511000119108")) == "pass"
    assert status("malignancy", _cond("10708511000119108"), use_unverified=True) == "fail"


def test_no_malignancy_row_is_a_basal_cell_carcinoma_or_in_situ() -> None:
    """The exceptions never become `malignancy`: no row of it names a basal cell carcinoma, a
    carcinoma in situ or a stage 0 (whatever its verified flag)."""
    path = Path(__file__).resolve().parents[1] / "mappings" / "concepts" / "conditions.csv"
    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = [r for r in csv.DictReader(ln for ln in fh if not ln.startswith("#"))]
    bad = [
        f"{r['code']} {r['display']}"
        for r in rows
        if r["concept"] == "malignancy"
        and any(w in r["display"].lower() for w in ("basal cell carcinoma", "in situ", "stage 0"))
    ]
    assert not bad, bad
    bcc = [r for r in rows if r["concept"] == "malignancy_exception" and r["system"] == SNOMED]
    assert len(bcc) >= 50 and all(
        "basal cell carcinoma" in r["display"].lower() or "cervi" in r["display"].lower()
        for r in bcc
    )


# --- every SNOMED CT code of the mappings is a well-formed SCTID --------------------------------
# The rows above were copied by hand from value sets; an SCTID ends in a Verhoeff check digit,
# which catches a mistyped or swapped digit.
_VERHOEFF_D = (
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
_VERHOEFF_P1 = (1, 5, 7, 6, 2, 8, 3, 0, 9, 4)


def _sctid_ok(code: str) -> bool:
    if not code.isdigit() or not 6 <= len(code) <= 18:
        return False
    perms = [tuple(range(10))]
    for _ in range(7):
        perms.append(tuple(_VERHOEFF_P1[x] for x in perms[-1]))
    check = 0
    for i, digit in enumerate(reversed(code)):
        check = _VERHOEFF_D[check][perms[i % 8][int(digit)]]
    return check == 0


def test_sctid_check_digit_itself() -> None:
    # the root concept, Synthea's codes, and one digit off or two swapped
    assert all(map(_sctid_ok, ["138875005", "72892002", "79586000", "233678006"]))
    assert not any(map(_sctid_ok, ["138875006", "72892003", "79856000", "233687006"]))


def test_every_snomed_code_of_the_mappings_has_a_valid_check_digit() -> None:
    root = Path(__file__).resolve().parents[1] / "mappings"
    bad = []
    for path in [*sorted((root / "concepts").glob("*.csv")), root / "values.csv"]:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            rows = csv.DictReader(ln for ln in fh if not ln.startswith("#"))
            bad += [
                f"{path.name}: {r.get('concept') or r.get('kind')} {r['code']}"
                for r in rows
                if r.get("system", "").rstrip("/").endswith("snomed.info/sct")
                and not _sctid_ok(r["code"].strip())
            ]
    assert not bad, bad
