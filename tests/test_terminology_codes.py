"""Concept matching: systems, ICD forms, prefix/exclude, ranges, globs, CVX, medications."""

from pathlib import Path

import pytest

from cohort.model import Code
from cohort.terminology import Terminology

MAPPINGS = Path(__file__).resolve().parents[1] / "mappings"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
SCT = "http://snomed.info/sct"
RX = "http://www.nlm.nih.gov/research/umls/rxnorm"


@pytest.fixture(scope="module")
def term() -> Terminology:
    return Terminology.load(MAPPINGS)


@pytest.mark.parametrize(
    "variant",
    [
        "http://loinc.org",
        "https://loinc.org",
        "http://loinc.org/",
        "HTTP://LOINC.ORG",
        "http://www.loinc.org",
        "urn:oid:2.16.840.1.113883.6.1",
        "LOINC",
    ],
)
def test_loinc_variants_canonicalise(term: Terminology, variant: str) -> None:
    assert term.canonical_system(variant) == "http://loinc.org"
    assert term.concepts_for([Code(variant, "777-3")]) == {"platelets"}


def test_other_system_aliases(term: Terminology) -> None:
    assert term.canonical_system("urn:oid:2.16.840.1.113883.6.96") == SCT
    assert term.canonical_system("SNOMED-CT") == SCT
    assert term.canonical_system("http://snomed.info/sct/731000124108") == SCT
    assert term.canonical_system("RxNorm") == RX
    assert term.canonical_system("https://www.nlm.nih.gov/research/umls/rxnorm/") == RX
    assert term.canonical_system("urn:oid:2.16.840.1.113883.6.90") == ICD
    assert (
        term.canonical_system("urn:oid:2.16.840.1.113883.12.292") == "http://hl7.org/fhir/sid/cvx"
    )


def test_cdc_cvx_page_address_is_cvx_but_its_other_reports_are_not(term: Terminology) -> None:
    """CDC's CVX page address as a Coding.system (FHIR's own Immunization example did so, see
    systems.csv): CVX, in any case; the page's other reports (MVX manufacturers) are not."""
    page = "http://www2a.cdc.gov/vaccines/iis/iisstandards/vaccines.asp"
    cvx = "http://hl7.org/fhir/sid/cvx"
    assert term.canonical_system(page + "?rpt=cvx") == cvx
    assert term.canonical_system(page.replace("iis/iisstandards", "IIS/IISStandards") + "?rpt=cvx") == cvx
    assert term.canonical_system(page + "?rpt=mvx") != cvx
    assert term.canonical_system(page) != cvx
    assert term.concepts_for([Code(page + "?rpt=cvx", "03")]) == {"live_vaccine"}


def test_observation_interpretation_aliases(term: Terminology) -> None:
    interp = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
    assert term.canonical_system("urn:oid:2.16.840.1.113883.5.83") == interp
    assert term.canonical_system("http://hl7.org/fhir/v3/ObservationInterpretation") == interp


def test_who_icd10_is_not_icd10cm(term: Terminology) -> None:
    assert (
        term.canonical_system("http://hl7.org/fhir/sid/icd-10") == "http://hl7.org/fhir/sid/icd-10"
    )
    assert term.concepts_for([Code("http://hl7.org/fhir/sid/icd-10", "M32.14")]) == frozenset()


def test_unknown_system_kept(term: Terminology) -> None:
    assert term.canonical_system("HTTPS://Example.COM/codes/") == "https://example.com/codes"


@pytest.mark.parametrize(
    "system", ["http://[x", "http://[::1", "http://s\nomed.info/sct", "http://s\tnomed.info/sct"]
)
def test_systems_urlsplit_refuses_or_rewrites_are_unknown_systems(
    term: Terminology, system: str
) -> None:
    """A malformed system URI in the data (a bad IPv6 host, a tab or line break that urlsplit
    would silently drop) is an unknown system, not a crash and not SNOMED CT."""
    assert term.canonical_system(system) == system
    assert term.concepts_for([Code(system, "55464009")]) == frozenset()


@pytest.mark.parametrize("code", ["M32.14", "M3214", "m32.14", " M32.14 "])
def test_icd_with_and_without_dot(term: Terminology, code: str) -> None:
    assert term.concepts_for([Code(ICD, code)]) == {"sle"}


def test_prefix_and_exclude(term: Terminology) -> None:
    assert term.concepts_for([Code(ICD, "M32.0")]) == {"drug_induced_lupus"}
    assert term.concepts_for([Code(ICD, "M320")]) == {"drug_induced_lupus"}
    assert "sle" in term.concepts_for([Code(ICD, "M32.9")])
    assert "sle" in term.concepts_for([Code(ICD, "M32.19")])
    # drug-induced SNOMED code removes sle from the whole record
    both = [Code(SCT, "55464009"), Code(SCT, "201436003")]
    assert term.concepts_for(both) == {"drug_induced_lupus"}


def test_snomed_sle_and_lupus_unspecified(term: Terminology) -> None:
    assert term.concepts_for([Code("urn:oid:2.16.840.1.113883.6.96", "55464009")]) == {"sle"}
    assert term.concepts_for([Code(SCT, "36402006")]) == {"sle"}
    assert term.concepts_for([Code(SCT, "200936003")]) == {"lupus_unspecified"}


def test_ranges_and_exceptions(term: Terminology) -> None:
    assert term.concepts_for([Code(ICD, "C50.911")]) == {"malignancy"}
    assert term.concepts_for([Code(ICD, "C7A.00")]) == {"malignancy"}
    assert term.concepts_for([Code(ICD, "C97")]) == frozenset()
    assert term.concepts_for([Code(ICD, "D06.9")]) == {"malignancy_exception"}
    assert term.concepts_for([Code(ICD, "D05.1")]) == {"in_situ_neoplasm"}
    assert term.concepts_for([Code(ICD, "O09.90")]) == {"pregnancy"}
    assert term.concepts_for([Code(ICD, "O9A.111")]) == {"pregnancy"}


def test_glob_bcc(term: Terminology) -> None:
    bcc = term.concepts_for([Code(ICD, "C44.311")])
    assert bcc == {"malignancy", "malignancy_exception"}
    assert term.concepts_for([Code(ICD, "C4401")]) == {"malignancy", "malignancy_exception"}
    # squamous cell (5th character 2) is a malignancy without the exception
    assert term.concepts_for([Code(ICD, "C44.02")]) == {"malignancy"}


def test_cvx_zero_padding(term: Terminology) -> None:
    cvx = "http://hl7.org/fhir/sid/cvx"
    assert term.concepts_for([Code(cvx, "03")]) == {"live_vaccine"}
    assert term.concepts_for([Code(cvx, "3")]) == {"live_vaccine"}
    assert term.concepts_for([Code(cvx, "188")]) == {"live_vaccine_uncertain"}
    assert term.concepts_for([Code(cvx, "187")]) == {"non_live_vaccine"}
    assert term.concepts_for([Code(cvx, "96")]) == {"tst"}


def test_product_rxcui_to_ingredient_and_group(term: Terminology) -> None:
    codes = [Code("RxNorm", "198145", "prednisone 10 MG Oral Tablet")]
    assert term.medication_ingredients(codes) == {"prednisone"}
    assert term.concepts_for(codes) == {"corticosteroid_systemic"}
    assert term.ingredient_groups("prednisone") == {"corticosteroid_systemic"}
    assert term.concepts_for([Code(RX, "1092437")]) == {"belimumab"}
    assert term.concepts_for([Code(RX, "9524")]) == {"dmard_other"}
    assert term.concepts_for([Code(RX, "1112973")]) == {"ctla4_fc"}
    # the usual hydroxychloroquine prescription, coded without a display
    assert term.medication_ingredients([Code(RX, "979092")]) == {"hydroxychloroquine"}
    assert term.concepts_for([Code(RX, "979092")]) == {"antimalarial"}


def test_non_systemic_combination_product(term: Terminology) -> None:
    codes = [Code(RX, "465397", "Ciprofloxacin / Dexamethasone")]
    assert term.concepts_for(codes) == frozenset()
    assert term.medication_ingredients(codes) == frozenset()
    # budesonide (mostly inhaled/enteric) is not a systemic corticosteroid
    assert "corticosteroid_systemic" not in term.concepts_for([Code(RX, "1244214")])


def test_atc_and_immunoglobulin(term: Terminology) -> None:
    assert term.concepts_for([Code("http://www.whocc.no/atc", "J06BA02")]) == {"immunoglobulin"}
    assert term.concepts_for([Code(RX, "1727875", "Tetanus immune globulin")]) == frozenset()
    assert term.concepts_for([], "Tetanus immune globulin 250 unit") == frozenset()
    assert term.concepts_for([], "Privigen 10% IV") == {"immunoglobulin"}


@pytest.mark.parametrize(
    ("text", "concept"),
    [
        ("Benlysta 200 mg", "belimumab"),
        ("VAY736 300 mg sc", "ianalumab"),
        ("vay-736", "ianalumab"),
        ("Ianalumab (study drug)", "ianalumab"),
        ("Lupkynis 7.9 mg", "calcineurin_inhibitor"),
        ("SAPHNELO 300 MG", "anifrolumab"),
        ("Rinvoq 15 mg", "jak_inhibitor"),
        ("Uplizna", "b_cell_depleting"),
        ("BRIUMVI 150 mg/6 mL", "b_cell_depleting"),
        ("ublituximab-xiiy", "b_cell_depleting"),
        ("VAY 736 (blinded)", "ianalumab"),
        ("rituximab-abbs", "b_cell_depleting"),
        ("Orencia ClickJect", "ctla4_fc"),
        ("dapirolizumab pegol", "anti_cd40"),
        ("telitacicept", "baff_other"),
        ("quinacrine 100 mg", "antimalarial"),
        ("mizoribine", "dmard_background"),
        ("Solu-Medrol 1 g", "corticosteroid_systemic"),
        # systemic corticosteroid brands (openFDA NDC brand_name; mappings 2026.11-10)
        ("Solu-Cortef 100 mg IV every 8 hours", "corticosteroid_systemic"),
        ("SOLU-CORTEF 100 mg/2mL", "corticosteroid_systemic"),
        ("CORTEF 20 mg tablet", "corticosteroid_systemic"),
        ("Alkindi Sprinkle 2 mg", "corticosteroid_systemic"),
        ("Orapred ODT 30 mg", "corticosteroid_systemic"),
        ("Hemady 20 mg", "corticosteroid_systemic"),
        ("TaperDex 12-day", "corticosteroid_systemic"),
        ("Celestone Soluspan 6 mg/mL", "corticosteroid_systemic"),
        ("EMFLAZA 36 mg", "corticosteroid_systemic"),
    ],
)
def test_names_in_text(term: Terminology, text: str, concept: str) -> None:
    assert concept in term.concepts_for([], text)


@pytest.mark.parametrize(
    ("text", "ingredient"),
    [
        ("Solu-Cortef 100 mg", "hydrocortisone"),
        ("Cortef 10 mg", "hydrocortisone"),
        ("Alkindi Sprinkle 0.5 mg", "hydrocortisone"),
        ("Orapred ODT 10 mg", "prednisolone"),
        ("Hemady 20 mg", "dexamethasone"),
        ("TaperDex 6-day", "dexamethasone"),
        ("Celestone Soluspan", "betamethasone"),
        ("Emflaza 18 mg", "deflazacort"),
    ],
)
def test_steroid_brands_name_their_ingredient(term: Terminology, text: str, ingredient: str) -> None:
    # the ingredient gives the prednisone factor a dose is converted with
    assert term.medication_ingredients([], text) == {ingredient}


def test_topical_steroid_brands_are_not_systemic_names(term: Terminology) -> None:
    # Kenalog is also a cream, a spray and a paste: no row names it (the injection's
    # "Kenalog-40" is not in a source the search reached), so it gives no concept at all
    assert term.concepts_for([], "Kenalog 0.1 % cream") == frozenset()


def test_names_are_whole_words(term: Terminology) -> None:
    assert term.medication_ingredients([], "methylprednisolone 4 mg") == {"methylprednisolone"}
    assert term.medication_ingredients([], "hydrocortisone 10 mg") == {"hydrocortisone"}
    # the name may come from a coding display
    assert term.concepts_for([Code("urn:local", "X1", "Plaquenil 200mg")]) == {"antimalarial"}


def test_prednisone_factors(term: Terminology) -> None:
    assert term.prednisone_factor("prednisone") == 1
    assert term.prednisone_factor("methylprednisolone") == 1.25
    assert term.prednisone_factor("Dexamethasone") == 6.67
    assert term.prednisone_factor("hydrocortisone") == 0.25
    assert term.prednisone_factor("cortisone") == 0.2
    assert term.prednisone_factor("deflazacort") is None


def test_local_codes(term: Terminology) -> None:
    flowsheet = "https://example.org/fhir/uci/flowsheet/"
    assert term.concepts_for([Code(flowsheet, "SLEDAI-2K")]) == {"sledai"}
    assert term.concepts_for([Code(flowsheet, "BILAG-2004")]) == {"bilag"}


def test_unverified_rows(term: Terminology) -> None:
    z2251 = [Code(ICD, "Z22.51")]
    assert term.concepts_for(z2251) == frozenset()
    loose = Terminology.load(MAPPINGS, use_unverified=True)
    assert loose.concepts_for(z2251) == {"chronic_hbv"}
    assert any(r.code == "Z22.51" and r.verified == "N" for r in term.rows())


def test_labs_that_are_not_the_concept(term: Terminology) -> None:
    lnc = "http://loinc.org"
    assert "anc" not in term.concepts_for([Code(lnc, "26511-6")])
    assert "urine_protein_24h" not in term.concepts_for([Code(lnc, "21482-5")])
    assert "igra" not in term.concepts_for([Code(lnc, "71774-4")])
    assert term.concepts_for([Code(lnc, "59260-0")]) == {"hemoglobin"}


def test_required_concepts_exist(term: Terminology) -> None:
    names = term.concept_names()
    for c in [
        "sle",
        "lupus_unspecified",
        "drug_induced_lupus",
        "chronic_hbv",
        "chronic_hcv",
        "active_tb",
        "latent_tb",
        "hiv",
        "immunodeficiency",
        "malignancy",
        "malignancy_exception",
        "in_situ_neoplasm",
        "pregnancy",
        "lactation",
        "asthma",
        "gout",
        "urticaria",
        "aiha",
        "esrd",
        "heart_failure",
        "cirrhosis",
        "hepatic_failure",
        "plasmapheresis",
        "ana_titer",
        "ana_screen",
        "platelets",
        "hemoglobin",
        "anc",
        "creatinine",
        "urine_protein_24h",
        "upcr",
        "hbsag",
        "anti_hbc",
        "hbv_dna",
        "hcv_ab",
        "hcv_rna",
        "hiv_test",
        "igra",
        "hcg",
        "body_weight",
        "cd19_count",
        "sledai",
        "bilag",
        "corticosteroid_systemic",
        "antimalarial",
        "dmard_background",
        "calcineurin_inhibitor",
        "jak_inhibitor",
        "dmard_other",
        "belimumab",
        "cyclophosphamide",
        "immunoglobulin",
        "anifrolumab",
        "anti_cd40",
        "ctla4_fc",
        "baff_other",
        "b_cell_depleting",
        "ianalumab",
        "live_vaccine",
        "live_vaccine_uncertain",
        "tst",
    ]:
        assert c in names, c


def test_search_tokens(term: Terminology) -> None:
    tokens = term.search_tokens(["sle", "plasmapheresis", "live_vaccine", "prednisone_unknown"])
    cond = tokens["Condition"]
    assert f"{SCT}|55464009" in cond
    for code in ("M32.10", "M32.14", "M32.19", "M32.8", "M32.9"):
        assert f"{ICD}|{code}" in cond
    assert f"{ICD}|M32.0" not in cond
    assert "http://www.cms.gov/Medicare/Coding/ICD10|6A550Z3" in tokens["Procedure"]
    assert "http://www.cms.gov/Medicare/Coding/ICD10|6A551Z3" in tokens["Procedure"]
    assert "http://hl7.org/fhir/sid/cvx|03" in tokens["Immunization"]
    meds = term.search_tokens(["corticosteroid_systemic"])
    assert f"{RX}|8640" in meds["MedicationRequest"]
    assert f"{RX}|198145" in meds["MedicationStatement"]  # product codes too
    assert f"{RX}|465397" not in meds["MedicationRequest"]  # topical combination
    assert "Observation" in term.search_tokens(["sledai"])


def test_version(term: Terminology) -> None:
    assert term.version.startswith("sha256:") and len(term.version) == 19
    assert term.human_version == (MAPPINGS / "VERSION").read_text().strip()
