"""Every code in mappings/ comes from the shared terminology reference (../shared/terminology).

House rule (mappings/README.md "Where the codes came from"): a concept row marked verified=Y
carries a (system, code) that the reference lists with VERIFIED status; anything else is kept
with verified=N. Systems are compared after the tool's own canonicalisation
(`Terminology.canonical_system`: aliases, OIDs, URL variants), codes exactly after the tool's
`norm_code` (ICD-10-CM without the dot, CVX without leading zeros: `03` = `3`).

The reverse holds too: every VERIFIED code of the reference (all of it was compiled for the
SIRIUS-SLE 2 criteria) is in the mappings, or in LEFT_OUT below with the reason.

Skipped cleanly when the reference is absent (set COHORT_SHARED_TERMINOLOGY to point at it).
"""

from __future__ import annotations

import csv
import os
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

from cohort.terminology import Terminology
from cohort.terminology.codes import TEXT, norm_code
from cohort.terminology.mappings import MappingRow, load_concept_rows

pytestmark = pytest.mark.public_data

ROOT = Path(__file__).resolve().parents[1]
MAPPINGS = ROOT / "mappings"

LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
CVX = "http://hl7.org/fhir/sid/cvx"
ATC = "http://www.whocc.no/atc"


def _main_checkout() -> Path | None:
    """The main checkout of a git worktree (its `.git` is a file naming the common git dir)."""
    git = ROOT / ".git"
    if not git.is_file():
        return None
    text = git.read_text(encoding="utf-8").strip()
    if not text.startswith("gitdir:"):
        return None
    gitdir = Path(text.split(":", 1)[1].strip())  # <main>/.git/worktrees/<name>
    return gitdir.parents[2] if len(gitdir.parents) > 2 else None


def _shared() -> Path:
    env = os.environ.get("COHORT_SHARED_TERMINOLOGY")
    cands = [Path(env)] if env else []
    cands.append(ROOT.parent / "shared" / "terminology")  # /work/main -> /work/shared
    main = _main_checkout()
    if main is not None:  # a worktree elsewhere: the main checkout's neighbour
        cands.append(main.parent / "shared" / "terminology")
    for cand in cands:
        if (cand / "conditions.csv").is_file():
            return cand
    pytest.skip("shared terminology not found (set COHORT_SHARED_TERMINOLOGY)")


# --- reading the reference ----------------------------------------------------------------------

# Flags that are not plain VERIFIED/UNVERIFIED, read per code column. Any other flag is VERIFIED
# only when it is exactly "VERIFIED" (an unknown new flag fails test_flags_are_understood).
FLAG_READING: dict[str, dict[str, bool]] = {
    # the caveat is about the ATC version (L04AA -> L04AF later), not a doubt about either code
    "VERIFIED (ATC version-dependent)": {"rxcui": True, "atc": True},
    "UNVERIFIED (rxcui) / VERIFIED (ATC)": {"rxcui": False, "atc": True},
    # Japanese encephalitis live: no CVX; the row as a whole is not VERIFIED, so its ATC code
    # J07BA03 is read as unverified too (mappings keep it with verified=N, see test_spec_audit)
    "UNVERIFIED (CVX)": {"cvx": False, "atc": False, "snomed_vaccine_product": False},
}


def _verified(flag: str, column: str) -> bool:
    flag = flag.strip()
    if flag in FLAG_READING:
        return FLAG_READING[flag].get(column, False)
    return flag == "VERIFIED"


def _understood(flag: str) -> bool:
    return flag in FLAG_READING or flag == "VERIFIED" or flag.startswith("UNVERIFIED")


def _first_token(cell: str) -> str:
    """`836382004 (any measles-antigen vaccine)` -> `836382004`; `L04AA29 (ATC 2021; ...)`."""
    return cell.strip().split(" ", 1)[0] if cell.strip() else ""


@dataclass(frozen=True)
class Ref:
    where: str  # "conditions.csv:12"
    criterion: str
    verified: bool
    flag: str


def _rows(shared: Path, name: str) -> list[tuple[int, dict[str, str]]]:
    with (shared / name).open(encoding="utf-8", newline="") as fh:
        return [(n, row) for n, row in enumerate(csv.DictReader(fh), 2)]


# The reference writes two ICD-10-CM families in words; the mappings write the same family in
# the tool's match syntax. Mapping spelling -> reference spelling (same system, same family).
SPELLING = {
    (ICD10CM, "C44.?1*"): "C44.x1 family",  # glob: 5th character 1 under C44.0-C44.9 (BCC)
}


# Codes that a VERIFIED reference row names in its source note, as that source lists them: the
# A15 row's "VSAC ActiveTuberculosisforUrologyCare (A15-A19 leaves)" (the value set is the
# A15-A19 block; A16, respiratory TB not confirmed bacteriologically, is active TB too) and the
# 6A550Z3 row's "multiple is 6A551Z3". (system, code) -> (the row's code, the text its note
# must still hold); any other code in a note does not count.
NAMED_IN_NOTE = {
    (ICD10CM, "A15-A19"): ("A15", "A15-A19 leaves"),
    ("http://www.cms.gov/Medicare/Coding/ICD10", "6A551Z3"): ("6A550Z3", "multiple is 6A551Z3"),
}


class Reference:
    """(canonical system, normalised code) -> where the shared reference lists it."""

    def __init__(self, shared: Path, term: Terminology) -> None:
        self.term = term
        self.codes: dict[tuple[str, str], list[Ref]] = defaultdict(list)
        self.flags: list[tuple[str, str]] = []
        for n, r in _rows(shared, "conditions.csv"):
            self._add(r["system"], r["code"], f"conditions.csv:{n}", r, "code")
            # A VERIFIED SNOMED row whose include_descendants cell names its children
            # ("Y (WHO class I-VI children e.g. 36402006 class IV, 52042003 class V)"): the
            # reference itself includes those codes; the tool has no SNOMED hierarchy, so the
            # mappings list them as rows.
            if self.key(r["system"], "")[0] == SNOMED and _verified(r["verified"], "code"):
                for child in re.findall(r"\b\d{6,18}\b", r["include_descendants"]):
                    self._named(SNOMED, child, f"conditions.csv:{n} (named descendant)", r)
            for (system, named), (owner, token) in NAMED_IN_NOTE.items():
                if (
                    self.key(r["system"], r["code"]) == self.key(system, owner)
                    and token in r["source"]
                    and _verified(r["verified"], "code")
                ):
                    self._named(system, named, f"conditions.csv:{n} (named in its source note)", r)
        for n, r in _rows(shared, "labs.csv"):
            self._add(LOINC, r["loinc"], f"labs.csv:{n}", r, "loinc")
        for n, r in _rows(shared, "medications.csv"):
            self._add(RXNORM, r["rxcui"], f"medications.csv:{n}", r, "rxcui", "criterion_group")
            self._add(
                ATC, _first_token(r["atc"]), f"medications.csv:{n}", r, "atc", "criterion_group"
            )
        for n, r in _rows(shared, "vaccines.csv"):
            where = f"vaccines.csv:{n}"
            self._add(CVX, r["cvx"], where, r, "cvx")
            self._add(
                SNOMED,
                _first_token(r["snomed_vaccine_product"]),
                where,
                r,
                "snomed_vaccine_product",
            )
            self._add(ATC, _first_token(r["atc"]), where, r, "atc")
        # RxNorm products: VSAC value-set expansions (the file has no flag column; its source,
        # vsac_valuesets, is a published expansion, so a listed RxCUI counts as verified)
        self.products: dict[str, tuple[str, str]] = {}
        for n, r in _rows(shared, "rxnorm_products.csv"):
            where = f"rxnorm_products.csv:{n}"
            self.products[r["rxcui"].strip()] = (r["ingredient"].strip().lower(), where)
            ref = Ref(where, r["ingredient"], True, "VSAC " + r["vsac_valuesets"])
            self.codes[self.key(RXNORM, r["rxcui"])].append(ref)
        self.names = self._names(shared)

    def _named(self, system: str, code: str, where: str, r: dict[str, str]) -> None:
        """`code`, named inside the VERIFIED row `r` (not a row of its own), counts as verified."""
        self.codes[self.key(system, code)].append(Ref(where, r["criterion"], True, r["verified"]))

    def key(self, system: str, code: str) -> tuple[str, str]:
        canon = self.term.canonical_system(system)
        return canon, norm_code(canon, code)

    def _add(
        self,
        system: str,
        code: str,
        where: str,
        r: dict[str, str],
        column: str,
        criterion: str = "criterion",
    ) -> None:
        flag = r["verified"]
        self.flags.append((where, flag))
        if not code.strip():
            return  # blank: "not found, must not be guessed"
        ref = Ref(where, r[criterion], _verified(flag, column), flag)
        self.codes[self.key(system, code)].append(ref)

    def verified(self, system: str, code: str) -> bool:
        return any(ref.verified for ref in self.codes.get(self.key(system, code), ()))

    @staticmethod
    def _names(shared: Path) -> str:
        """All drug-name text of the reference, lower case, for the text rows (names, not codes)."""
        parts = [r["ingredient"] for _, r in _rows(shared, "medications.csv")]
        parts += [" ".join(r.values()) for _, r in _rows(shared, "brand_names.csv")]
        parts += [r["ingredient"] for _, r in _rows(shared, "rxnorm_products.csv")]
        return " | ".join(parts).replace(";", " ; ").lower()


@pytest.fixture(scope="module")
def term() -> Terminology:
    return Terminology.load(MAPPINGS, use_unverified=True)


@pytest.fixture(scope="module")
def ref(term: Terminology) -> Reference:
    return Reference(_shared(), term)


@pytest.fixture(scope="module")
def rows() -> list[MappingRow]:
    return load_concept_rows(MAPPINGS)


def _spelled(term: Terminology, row: MappingRow) -> str:
    """The row's code as the reference writes it (SPELLING), else as is."""
    return SPELLING.get((term.canonical_system(row.system), row.code), row.code)


def _at(row: MappingRow) -> str:
    return f"{row.file}:{row.line} {row.concept} {row.system}|{row.code}"


# --- mapping rows that cannot be in the public reference ------------------------------------------

# Text rows (system `text`) hold names, not codes. A name counts as sourced when the reference's
# drug-name text (medications.csv ingredient cells, brand_names.csv, rxnorm_products.csv
# ingredients) holds it as a whole word. These names are not written out there; each is kept
# deliberately (case-insensitive):
TEXT_NOT_IN_REFERENCE = {
    # brand_names.csv writes the biosimilar suffixes abbreviated: "rituximab-abbs/-pvvr/-arrx"
    "rituximab-pvvr": "suffix spelled out from brand_names.csv 'rituximab-abbs/-pvvr/-arrx'",
    "rituximab-arrx": "suffix spelled out from brand_names.csv 'rituximab-abbs/-pvvr/-arrx'",
    "ivig": "abbreviation of 'immune globulin IV' (medications.csv)",
    "scig": "abbreviation of 'immune globulin SC' (medications.csv)",
    "vay-736": "hyphenated spelling of the code name VAY736 (medications.csv, brand_names.csv)",
    "vay 736": "spaced spelling of the code name VAY736 (medications.csv, brand_names.csv)",
    # SPEC's B-cell-depleting list ends "inebilizumab, ..."; the reference has no row for this
    # anti-CD20 antibody (approved 2022), so its names come from its FDA label (openFDA)
    "ublituximab": "anti-CD20 antibody of SPEC's '...' (openFDA label), not in the reference",
    "briumvi": "brand of ublituximab-xiiy (openFDA label), not in the reference",
    # US brands of systemic (oral, IV, IM) corticosteroids the reference's brand_names.csv leaves
    # out (a chart naming only "Solu-Cortef" passed washout_high_dose_cs); each from openFDA,
    # the NDC product or label named in the row. Not Kenalog (also a cream, spray and paste;
    # no openFDA record of Kenalog-40/-80 was found), Pred Forte, Maxidex, Ozurdex, Triesence
    # (eye), Zilretta, Kenalog-10 (intra-articular only) or budesonide brands.
    "solu-cortef": "hydrocortisone sodium succinate IV/IM (openFDA NDC 0009-0011, label)",
    "cortef": "hydrocortisone tablets (openFDA NDC 0009-0044)",
    "alkindi": "hydrocortisone granules (openFDA NDC 71863-110 'Alkindi Sprinkle')",
    "orapred": "prednisolone sodium phosphate ODT (openFDA NDC 59212-700 'Orapred ODT')",
    "hemady": "dexamethasone 20 mg tablets (openFDA NDC 82111-955)",
    "taperdex": "dexamethasone tablet pack (openFDA NDC 71205-013 'TaperDex 12-day')",
    "celestone soluspan": "betamethasone injectable suspension (openFDA label; RxNorm BN 47847)",
    "emflaza": "deflazacort tablets (openFDA NDC 52856-504; RxNorm BN 1870945)",
    # an allowed background DMARD of the SPEC (test_spec_audit background_therapy); marketed in
    # Japan only, so no RxNorm code and no row in the reference
    "mizoribine": "SPEC background DMARD; no RxNorm code, not in the reference",
    # exclude=Y names: they only REMOVE immunoglobulin (hyperimmune globulins are not IVIG/SCIG)
    "tetanus immune globulin": "exclusion name (README: tetanus immune globulin is left out)",
    "hepatitis b immune globulin": "exclusion name: hyperimmune globulin, not IVIG/SCIG",
    "rabies immune globulin": "exclusion name: hyperimmune globulin, not IVIG/SCIG",
    "rho(d) immune globulin": "exclusion name: hyperimmune globulin, not IVIG/SCIG",
    "varicella zoster immune globulin": "exclusion name: hyperimmune globulin, not IVIG/SCIG",
    "botulism immune globulin": "exclusion name: hyperimmune globulin, not IVIG/SCIG",
    # malignancy_named (conditions.csv): words naming a cancer, not drug names; a condition whose
    # code maps to no malignancy concept but whose text says one of them makes `malignancy`
    # unknown (the long tail the SNOMED rows cannot list; audit condaudit)
    **{
        w: "malignancy_named: a word naming a cancer (SPEC §3 malignancy safety net)"
        for w in [
            "malignant",
            "malignancy",
            "malignancies",
            "cancer",
            "cancers",
            "carcinoma",
            "carcinomas",
            "adenocarcinoma",
            "carcinomatosis",
            "lymphoma",
            "lymphomas",
            "leukemia",
            "leukemias",
            "leukaemia",
            "leukaemias",
            "melanoma",
            "melanomas",
            "sarcoma",
            "sarcomas",
            "osteosarcoma",
            "liposarcoma",
            "leiomyosarcoma",
            "rhabdomyosarcoma",
            "myeloma",
            "metastatic",
            "metastasis",
            "metastases",
        ]
    },
    "family history": "malignancy_named exclusion name: a relative's cancer is no malignancy",
    "encounter for screening": "malignancy_named exclusion name: ICD-10-CM Z12 screening wording",
    # tb_named (conditions.csv): the same safety net for `tuberculosis` (oracle differential:
    # the public Synthea HIV sample's active "Tuberculosis" under a malformed SNOMED code passed)
    "tuberculosis": "tb_named: the word naming the disease (SPEC §3 tuberculosis safety net)",
    "tuberculous": "tb_named: the adjective naming the disease",
    "latent": "tb_named exclusion name: ICD-10-CM Z22.7 'Latent tuberculosis'",
    "history": "tb_named exclusion name: ICD-10-CM Z86.11 'Personal history of tuberculosis'",
    "screening": "tb_named exclusion name: ICD-10-CM Z11.1 screening wording",
    "exposure": "tb_named exclusion name: ICD-10-CM Z20.1 exposure wording",
    "without active tuberculosis": "tb_named exclusion name: ICD-10-CM R76.11 wording",
}

# Public systems the reference covers; a verified=local row must use none of them (a site's own
# flowsheet/EHR codes, e.g. http://example.org/fhir/uci/flowsheet or Epic urn:oid:1.2.840.114350.*,
# cannot be in public sources), and a verified=Y row must use one of them or `text`.
PUBLIC = {
    LOINC,
    RXNORM,
    SNOMED,
    ICD10CM,
    CVX,
    ATC,
    "http://www.ama-assn.org/go/cpt",
    "http://www.cms.gov/Medicare/Coding/ICD10",
}


def test_flags_are_understood(ref: Reference) -> None:
    unknown = [(w, f) for w, f in ref.flags if not _understood(f)]
    assert not unknown, f"add a reading to FLAG_READING for: {unknown}"


# Verified from public sources outside the reference (named in the row's source cell); the
# reference has no row for the concept at all. (system, code) -> why it counts as verified.
VERIFIED_ELSEWHERE = {
    (ICD10CM, "D59.1"): "aiha: D59.10-D59.19 'autoimmune hemolytic anemia', added to ICD-10-CM in"
    " FY2021; several independent public sources in the row (SPEC's hemoglobin < 7.0 rule)",
    (ICD10CM, "D59.0"): "aiha: 'Drug-induced autoimmune hemolytic anemia' (simple-icd-10-cm 1.5.0,"
    " the CMS April 2026 tabular the reference cites; hccbuddy FY2026; VistA forms), an autoimmune"
    " hemolytic anemia for the hemoglobin < 7.0 rule (audit condaudit)",
    # The reference's malignancy row 363346000 says include_descendants "Y" without naming them;
    # the tool has no SNOMED hierarchy, so the descendants Synthea codes cancers with are rows of
    # their own: each is a Condition code with its display in the public Synthea data under
    # shared/data/public-fhir (the file named in the row) and in the mCODE list of Synthea
    # cancer-module codes (audit condaudit: a Synthea breast cancer passed `malignancy`).
    **{
        (SNOMED, code): f"malignancy: Synthea {what} (public Synthea FHIR data, named in the row)"
        for code, what in (
            ("254837009", "Malignant neoplasm of breast"),
            ("363406005", "Malignant tumor of colon"),
            ("109838007", "Overlapping malignant neoplasm of colon"),
            ("93761005", "Primary malignant neoplasm of colon"),
            ("94260004", "Secondary malignant neoplasm of colon"),
            ("254637007", "Non-small cell lung cancer"),
            ("424132000", "Non-small cell carcinoma of lung, TNM stage 1"),
            ("254632001", "Small cell carcinoma of lung"),
            ("67811000119102", "Primary small cell malignant neoplasm of lung, TNM stage 1"),
            ("314994000", "Metastasis from malignant tumor of prostate"),
        )
    },
    # live_vaccine (audit vaxfix): CVX codes the reference (a US Core snapshot of 172 codes) lacks,
    # each with its CDC display in a public FSH value set of CVX codes (and 122 in copies of the
    # CDC CVX table), found with the search tool; the row's source cell says so
    **{
        (CVX, code): f"live_vaccine: CVX {code} {what} (public CVX value set, named in the row)"
        for code, what in (
            ("204", "Ebola Zaire vaccine, live, recombinant"),
            ("317", "Chikungunya live attenuated vaccine"),
            ("122", "rotavirus, unspecified formulation"),
            ("206", "Vaccinia, smallpox Mpox vaccine live (JYNNEOS, non-replicating)"),
            ("325", "Vaccinia (smallpox, mpox), unspecified"),
            ("214", "Ebola, unspecified"),
            ("330", "Dengue fever, unspecified"),
            ("329", "Chikungunya, VLP, recombinant"),
        )
    },
    # in_situ_neoplasm (review, as D00-D09): Synthea's prostate carcinoma in situ, same sources
    (SNOMED, "92691004"): "in_situ_neoplasm: Synthea Carcinoma in situ of prostate (public"
    " Synthea FHIR data, named in the row)",
}

# SNOMED CT children of the reference's include_descendants=Y rows (audit desc: Synthea's
# 72892002 Normal pregnancy and 233678006 Childhood asthma passed `pregnancy_lactation` and
# `cs_dependent_comorbidity`). The reference says "include descendants" without naming them and
# cohort matches exact codes only, so each child is a row of its own, copied from a public value
# set (or two independent public code lists) that its source cell names.
# (concept, what the row's source cell must name, why it counts as verified, codes)
DESCENDANTS: list[tuple[str, str, str, tuple[str, ...]]] = [
    (
        "pregnancy",
        "2.16.840.1.113883.3.526.3.378",
        "VSAC Pregnancy, SNOMED CT part (each a current pregnancy)",
        (
            "10231000132102", "102872000", "102875003", "11082009", "127364007",
            "134781000119106", "14080002", "14418008", "16356006", "169561007", "169562000",
            "169563005", "169564004", "169565003", "169566002", "169567006", "169568001",
            "199064003", "199306007", "22281000119101", "237233002", "237238006", "237239003",
            "237240001", "237241002", "237244005", "248985009", "276367008", "281307002",
            "314204000", "35381000119101", "36801000119105", "38720006", "41587001", "41991004",
            "429187001", "43990006", "442478007", "444661007", "45307008", "457811000124103",
            "457821000124106", "459167000", "459169002", "459170001", "47200007", "472321009",
            "57630001", "58532003", "59466002", "60810003", "64254006", "65147003", "65727000",
            "713575004", "713576003", "72892002", "80997009", "83074005", "87527008", "90968009",
            "9279009",
        ),
    ),
    (
        "pregnancy",
        "2.16.840.1.113883.3.464.1003.111.12.1012",
        "an ectopic (current) pregnancy in VSAC Complications of Pregnancy, Childbirth and the "
        "Puerperium; 79586000 is in the public Synthea data too",
        (
            "79586000", "79290002", "82661006", "786067000",
        ),
    ),
    (
        "lactation",
        "2.16.840.1.113762.1.4.1047.73",
        "a currently-lactating member of VSAC Breastfeeding",
        (
            "866041003", "169745008", "225604004", "69840006", "82374005", "200430001",
            "247415009", "289084000", "199004",
        ),
    ),
    (
        "asthma",
        "2.16.840.1.113883.3.526.3.362",
        "VSAC Asthma, SNOMED CT part; 233678006 is in the public Synthea data too",
        (
            "11641008", "12428000", "13151001", "195949008", "195977004", "225057002",
            "233672007", "233678006", "233679003", "233683003", "233688007", "266361008",
            "281239006", "31387002", "370218001", "370219009", "370220003", "370221004",
            "389145006", "405944004", "407674008", "409663006", "423889005", "424199006",
            "424643009", "425969006", "426656000", "426979002", "427295004", "427603009",
            "427679007", "442025000", "55570000", "56968009", "59786004", "63088003", "707445000",
            "707446004", "707447008", "708090002", "708093000", "708094006", "708095007",
            "708096008", "762521001", "782520007", "85761009", "92807009", "93432008",
        ),
    ),
    (
        "gout",
        "gout.snomed.txt",
        "a public gout code list (gm-sde) and the FHIR R4 closure-table example (24595009 subsumed "
        "by 90560007)",
        (
            "24595009",
        ),
    ),
    (
        "sle",
        "2.16.840.1.113883.3.464.1003.117.12.1010",
        "an SLE form in VSAC Lupus and in a second public list (HELM EHRSHOT descendants of "
        "55464009, or SLE code lists)",
        (
            "95408003", "11013005", "196138005", "19682006", "239887007", "239889005",
            "239890001", "25380002", "309762007", "403486000", "403487009", "4676006", "54072008",
            "73286009", "76521009", "77753005", "95644001", "95332009", "773333003",
        ),
    ),
    (
        "sle",
        "ehrshot_scenario.py",
        "a descendant of 55464009 in HELM's EHRSHOT code definitions and an SLE code in the "
        "OpenSAFELY SLE codelist (gm-sde)",
        (
            "295111000119108", "295101000119105", "295121000119101", "698694005", "724781003",
            "403488004", "201435004", "156450004", "201439005", "201437007", "201438002",
            "203784000", "197608009", "593481000000109", "409421000000100", "758321000000100",
        ),
    ),
    (
        "sle",
        "CCU037_02",
        "an SLE code in two public SLE code lists (OpenSAFELY via gm-sde; BHF DSC CCU037)",
        (
            "1144942002", "230307005", "724767000", "72181000119109", "1144973003", "1144921004",
            "1144923001", "1144927000", "1144970000", "732960002", "307755009", "36471000",
            "417303004", "233730002", "239944008", "193178008", "193248005", "402865003",
        ),
    ),
    (
        "sle",
        "2.16.840.1.113883.3.464.1003.117.12.1010",
        "drug-induced lupus in VSAC Lupus: an exclude=Y row (SPEC: not SLE)",
        (
            "80258006", "22888007", "54912002", "61458006",
        ),
    ),
    (
        "drug_induced_lupus",
        "2.16.840.1.113883.3.464.1003.117.12.1010",
        "drug-induced lupus in VSAC Lupus",
        (
            "80258006", "22888007", "54912002", "61458006",
        ),
    ),
    (
        "lupus_unspecified",
        "ehrshot_scenario.py",
        "in VSAC Lupus and under 55464009 in HELM's EHRSHOT list, but mostly cutaneous: "
        "lupus_unspecified (screened, confirm SLE), not sle",
        (
            "239886003", "239888002",
        ),
    ),
    (
        "chronic_hbv",
        "2.16.840.1.113883.3.67.1.101.1.269",
        "a chronic or carrier hepatitis B in VSAC Hepatitis B (and Chronic Liver Disease)",
        (
            "1116000", "38662009", "50167007", "235869004", "424340000", "235865005",
        ),
    ),
    (
        "chronic_hcv",
        "2.16.840.1.113883.3.464.1003.199.12.1035",
        "a chronic hepatitis C genotype in VSAC Chronic Liver Disease",
        (
            "767809001", "767810006", "768006009", "768125005", "768126006", "768127002",
            "768288001", "768289009",
        ),
    ),
    (
        "active_tb",
        "2.16.840.1.113762.1.4.1151.56",
        "VSAC Active Tuberculosis for Urology Care (the A15 row's source)",
        (
            "25629007",
        ),
    ),
    (
        "hiv",
        "2.16.840.1.113883.3.464.1003.120.12.1003",
        "VSAC HIV, SNOMED CT part (the 165816005 row's source)",
        (
            "91923005", "421510000", "421666009", "422074008", "10746341000119109",
            "10755671000119100", "111880001", "15928141000119107", "186706006", "186707002",
            "186708007", "230180003", "230202002", "230598008", "235009000", "235726002",
            "236406007", "240103002", "276665006", "276666007", "315019000", "397763006",
            "398329009", "402901009", "405631006", "406109008", "40780007", "414604009",
            "416729007", "420244003", "420281004", "420302007", "420308006", "420321004",
            "420384005", "420395004", "420403001", "420452002", "420524008", "420543008",
            "420544002", "420549007", "420554003", "420614009", "420658009", "420687005",
            "420691000", "420718004", "420721002", "420764009", "420774007", "420787001",
            "420801006", "420818005", "420877009", "420900006", "420938005", "420945005",
            "421020000", "421023003", "421047005", "421077004", "421102007", "421230000",
            "421272004", "421283008", "421312009", "421315006", "421394009", "421403008",
            "421415007", "421431004", "421454008", "421460008", "421508002", "421529006",
            "421571007", "421597001", "421660003", "421671002", "421695000", "421706001",
            "421708000", "421710003", "421766003", "421827003", "421851008", "421874007",
            "421883002", "421929001", "421983003", "421998001", "422003001", "422012004",
            "422089004", "422127002", "422136003", "422177004", "422189002", "422194002",
            "422282000", "422337001", "432218001", "442537007", "442662004", "445945000",
            "48794007", "52079000", "62479008", "697904001", "697965002", "699433000",
            "700053002", "713260006", "713275003", "713278001", "713297001", "713298006",
            "713299003", "713300006", "713316008", "713318009", "713320007", "713325002",
            "713339002", "713340000", "713341001", "713342008", "713349004", "713444005",
            "713445006", "713446007", "713483007", "713484001", "713487008", "713488003",
            "713489006", "713490002", "713491003", "713497004", "713503007", "713504001",
            "713505000", "713506004", "713507008", "713508003", "713510001", "713511002",
            "713523008", "713526000", "713527009", "713530002", "713531003", "713532005",
            "713533000", "713543002", "713544008", "713545009", "713546005", "713570009",
            "713571008", "713572001", "713695001", "713696000", "713718006", "713722001",
            "713729005", "713730000", "713731001", "713732008", "713733003", "713734009",
            "713742005", "713844000", "713845004", "713880000", "713881001", "713887002",
            "713897006", "713964006", "713967004", "714083007", "714464009", "719522009",
            "721166000", "722557007", "72621000119104", "72631000119101", "733834006",
            "733835007", "735521001", "735522008", "735523003", "735524009", "735525005",
            "735526006", "735527002", "735528007", "76981000119106", "76991000119109",
            "771119002", "771126002", "771127006", "79019005", "80191000119101", "81000119104",
            "838377003", "840442003", "840498003", "87117006", "90681000119107", "90691000119105",
            "91947003", "91948008",
        ),
    ),
    (
        "immunodeficiency",
        "2.16.840.1.113883.3.464.1003.120.12.1007",
        "VSAC Severe Combined Immunodeficiency (the 31323000 row's source)",
        (
            "111584000", "111587007", "190993005", "190996002", "190997006", "190998001",
            "191001007", "191002000", "22406001", "234570002", "234571003", "3439009",
            "350353007", "351287008", "362993009", "36980009", "44940001", "45390000", "49555001",
            "55602000", "715982006", "716378008", "716871006", "718107000", "71904008",
            "720345008", "720853005", "720986005", "721977007", "722067005", "724177005",
            "724361001", "725135004", "725136003", "725290000",
        ),
    ),
    (
        "immunodeficiency",
        "2.16.840.1.113883.3.464.1003.120.12.1001",
        "an immunodeficiency (antibody, combined, complement deficiency) in VSAC Disorders of the "
        "Immune System (the 234532001 row's source)",
        (
            "190979003", "190980000", "190981001", "191011000", "191012007", "191013002",
            "191018006", "23238000", "234562007", "234631003", "36070007", "403835002",
            "403836001", "403837005", "442459007", "449187006", "65880007", "719156006",
            "763623001", "765188009", "771078002", "783248004", "783249007", "783617001",
            "783621008", "789777007", "82286005", "88714009", "24743004", "234594002",
            "234595001", "234597009", "234598004", "234599007", "234600005", "234601009",
            "234602002", "234604001", "234605000", "234607008", "234608003", "234609006",
            "234611002", "234612009", "234613004", "234614005", "234616007", "234617003",
            "1162263002", "771443008", "81166004", "783007005", "234628004", "234629007",
            "234630002",
        ),
    ),
]  # end DESCENDANTS

# `malignancy` (363346000 and 128462008 include descendants in the reference): the SNOMED CT part
# of VSAC All Primary and Secondary Cancer (the value set the reference names), copied from its
# public expansion; the codes are listed in tests/data/snomed_descendants/ (code, tab, display
# as the value set gives it), too many to write out here. Its basal cell carcinomas of skin are
# SPEC's exception and its three carcinomas in situ go to review; ten members that are no
# malignancy (benign adenomas, granulomas, a "suspected" situation) are left out, and its nine
# AIDS-associated cancers are rows of `hiv` too (mappings/README.md). Then the primary malignant
# neoplasms of the HL7 mCODE primary cancer value set that VSAC's expansion lacks, and three
# OncoTreeVS codes two public lists give.
_LISTED = Path(__file__).resolve().parent / "data" / "snomed_descendants"


def _listed(name: str) -> tuple[str, ...]:
    lines = (_LISTED / f"{name}.txt").read_text(encoding="utf-8").splitlines()
    return tuple(line.split("\t", 1)[0] for line in lines if line.strip())


DESCENDANTS += [
    (
        "malignancy",
        "2.16.840.1.113762.1.4.1111.161",
        "a malignancy in VSAC All Primary and Secondary Cancer",
        _listed("vsac_malignancy"),
    ),
    (
        "malignancy_exception",
        "2.16.840.1.113762.1.4.1111.161",
        "a basal cell carcinoma of skin in VSAC All Primary and Secondary Cancer: SPEC's exception",
        _listed("vsac_bcc"),
    ),
    (
        "in_situ_neoplasm",
        "2.16.840.1.113762.1.4.1111.161",
        "a carcinoma in situ VSAC All Primary and Secondary Cancer lists: review, not malignancy",
        _listed("vsac_in_situ"),
    ),
    (
        "malignancy",
        "mcode-primary-cancer-disorder-vs",
        "a primary malignant neoplasm in the HL7 mCODE primary cancer value set expansion",
        _listed("mcode_malignancy"),
    ),
    (
        "malignancy",
        "OncoTreeVS",
        "a primary malignant neoplasm in fsh-pct OncoTreeVS and a second public list (in the row)",
        _listed("pct_malignancy"),
    ),
]

VERIFIED_ELSEWHERE |= {
    (SNOMED, code): f"{concept}: {why} ({token}, named in the row)"
    for concept, token, why, codes in DESCENDANTS
    for code in codes
}


def test_descendant_rows_name_their_source(rows: list[MappingRow], term: Terminology) -> None:
    """Each listed child is a verified=Y SNOMED CT row of its concept whose source names the
    public value set or list it was copied from (and the list names no row twice)."""
    found = {
        (r.concept, r.code): r
        for r in rows
        if term.canonical_system(r.system) == SNOMED and r.verified == "Y"
    }
    listed = [(concept, code) for concept, _, _, codes in DESCENDANTS for code in codes]
    assert len(listed) == len(set(listed))
    bad = []
    for concept, token, _, codes in DESCENDANTS:
        for code in codes:
            row = found.get((concept, code))
            if row is None:
                bad.append(f"{concept} {code}: no verified=Y SNOMED CT row")
            elif token not in row.source:
                bad.append(f"{_at(row)}: source does not name {token!r}")
    assert not bad, "\n".join(bad)


def test_verified_rows_are_verified_in_the_reference(
    rows: list[MappingRow], ref: Reference
) -> None:
    bad = []
    for row in rows:
        if row.verified != "Y" or row.system == TEXT:
            continue
        found = ref.codes.get(ref.key(row.system, _spelled(ref.term, row)), [])
        elsewhere = ref.key(row.system, row.code) in {ref.key(*k) for k in VERIFIED_ELSEWHERE}
        if not any(r.verified for r in found) and not elsewhere:
            said = "; ".join(f"{r.where} {r.flag}" for r in found) or "absent"
            bad.append(f"{_at(row)}: reference says {said}")
    assert not bad, "verified=Y but not VERIFIED in the reference:\n" + "\n".join(bad)


def test_unverified_rows_are_not_verified_in_the_reference(
    rows: list[MappingRow], ref: Reference
) -> None:
    """A row kept with verified=N whose code the reference does verify is a code wrongly unused."""
    bad = [
        _at(r)
        for r in rows
        if r.verified == "N" and r.system != TEXT and ref.verified(r.system, _spelled(ref.term, r))
    ]
    assert not bad, "verified=N but VERIFIED in the reference:\n" + "\n".join(bad)


def test_local_rows_use_local_systems(rows: list[MappingRow], term: Terminology) -> None:
    for row in rows:
        canon = term.canonical_system(row.system)
        if row.verified == "local":
            assert canon not in PUBLIC and canon != TEXT, _at(row)
        elif row.verified == "Y":
            assert canon in PUBLIC or canon == TEXT, _at(row)


def test_text_names_come_from_the_reference(rows: list[MappingRow], ref: Reference) -> None:
    bad = []
    for row in rows:
        if row.system != TEXT or row.verified != "Y":
            continue
        name = row.code.lower()
        if name in TEXT_NOT_IN_REFERENCE:
            continue
        if not re.search(r"(?<![\w-])" + re.escape(name) + r"(?![\w-])", ref.names):
            bad.append(_at(row))
    assert not bad, "text names not in the reference:\n" + "\n".join(bad)
    # the allow-list stays exact: every entry still names a text row
    texts = {r.code.lower() for r in rows if r.system == TEXT}
    assert set(TEXT_NOT_IN_REFERENCE) <= texts


# --- the reverse: every VERIFIED reference code is mapped, or left out on purpose -----------------

# (canonical system, code as the reference writes it) -> why the mappings leave it out
LEFT_OUT: dict[tuple[str, str], str] = {
    (RXNORM, "8948"): (
        "Purified Protein Derivative of Tuberculin (the reference: 'TST reagent (not a drug "
        "exclusion ...)'). The trial's tuberculosis criterion reads active_tb conditions and "
        "IGRA only, never a TST; as a drug group it would make a skin test a drug exposure. "
        "products.csv keeps the RxCUI (ingredient only, no medication group)."
    ),
}


def test_every_verified_reference_code_is_mapped(rows: list[MappingRow], ref: Reference) -> None:
    mapped = {
        ref.key(r.system, _spelled(ref.term, r))
        for r in rows
        if r.system != TEXT and r.verified == "Y"
    }
    left_out = {ref.key(s, c) for s, c in LEFT_OUT}
    missing = []
    for key, refs in sorted(ref.codes.items()):
        if key in mapped or key in left_out or not any(r.verified for r in refs):
            continue
        if key[0] == RXNORM and all(r.where.startswith("rxnorm_products") for r in refs):
            continue  # products: test_products_come_from_the_reference
        missing.append(f"{key[0]}|{key[1]}: " + "; ".join(f"{r.where} {r.criterion}" for r in refs))
    assert not missing, "VERIFIED in the reference, not mapped:\n" + "\n".join(missing)
    stale = [k for k in LEFT_OUT if ref.key(*k) in mapped]
    assert not stale, f"LEFT_OUT entries now mapped (drop them): {stale}"


# RxNorm products of the reference that products.csv leaves out, with the reason
PRODUCTS_LEFT_OUT: dict[str, str] = {
    # listed under 'immune globulin' in the reference, but a hyperimmune globulin: mapped, it
    # would count as IVIG/SCIG for the 24-week washout (README: "Tetanus immune globulin is
    # left out"; medications.csv excludes the name too)
    "1727875": "Tetanus immune globulin",
}


# RxNorm products verified from public sources outside the reference (named in the row's source
# cell): rxcui -> (ingredient, why it counts as verified)
PRODUCTS_ELSEWHERE: dict[str, tuple[str, str]] = {
    "979092": (
        "hydroxychloroquine",
        "hydroxychloroquine sulfate 200 MG Oral Tablet, the usual SLE prescription: the openFDA"
        " NDC directory gives RxCUI 979092 for hydroxychloroquine sulfate 200 mg tablets of"
        " several labelers (68084-269, 62135-752); the reference lists only the ingredient",
    ),
}


def test_products_come_from_the_reference(ref: Reference) -> None:
    with (MAPPINGS / "medications" / "products.csv").open(encoding="utf-8", newline="") as fh:
        products = {r["rxcui"].strip(): (n, r) for n, r in enumerate(csv.DictReader(fh), 2)}
    bad = []
    for rxcui, (n, r) in products.items():
        found = ref.products.get(rxcui)
        if rxcui in PRODUCTS_ELSEWHERE and found is None:
            if PRODUCTS_ELSEWHERE[rxcui][0] != r["ingredient"].strip().lower() or not r["source"]:
                bad.append(f"mappings/medications/products.csv:{n} {rxcui}: see PRODUCTS_ELSEWHERE")
            continue
        if found is None:
            bad.append(f"mappings/medications/products.csv:{n} {rxcui}: not in rxnorm_products.csv")
        elif found[0] != r["ingredient"].strip().lower():
            bad.append(
                f"mappings/medications/products.csv:{n} {rxcui}: ingredient "
                f"{r['ingredient']!r}, reference {found[1]} says {found[0]!r}"
            )
    missing = [
        f"{rx} ({ing}, {where})"
        for rx, (ing, where) in ref.products.items()
        if rx not in products and rx not in PRODUCTS_LEFT_OUT
    ]
    assert not bad and not missing, "\n".join(bad + ["not in products.csv: " + m for m in missing])
    # the allow-list stays exact: every entry is a row, and none is in the reference by now
    assert set(PRODUCTS_ELSEWHERE) <= set(products)
    assert not set(PRODUCTS_ELSEWHERE) & set(ref.products)


def test_system_oids_match_the_reference(term: Terminology) -> None:
    """systems.csv: each OID of the reference's systems.csv canonicalises to its FHIR URI."""
    shared = _shared()
    for n, r in _rows(shared, "systems.csv"):
        if r["oid"].strip() and r["verified"] == "VERIFIED":
            uri = r["canonical_fhir_uri"].strip()
            assert term.canonical_system("urn:oid:" + r["oid"].strip()) == uri, f"systems.csv:{n}"


def test_broad_lupus_parent_stays_out_of_sle(rows: list[MappingRow], term: Terminology) -> None:
    """conditions.csv: 200936003 Lupus erythematosus is VERIFIED but marked "use only with
    care" (it also covers cutaneous/discoid LE): it may only map to lupus_unspecified, which the
    trial screens on and treats as uncertain ("confirm SLE"), never to sle itself."""
    concepts = {
        r.concept
        for r in rows
        if term.canonical_system(r.system) == SNOMED and r.code == "200936003"
    }
    assert concepts == {"lupus_unspecified"}


# values.csv holds result *answer* codes (SNOMED qualifier values, LOINC LA answers, HL7 v3
# interpretation codes). The reference has no answer-code table, so these cannot be checked
# here; each row names the public source it was checked against by hand (WHO DDCC, HL7 SMART
# Health Cards IG, HL7 THO; Present/Absent: HL7 mCODE and IPS value sets, HL7 Genomics
# Reporting IG) and says verified=Y. Listed so that a new answer code is a
# deliberate edit of this test.
VALUES_OUTSIDE_REFERENCE = (
    {
        (SNOMED, c)
        for c in (
            "10828004",
            "260373001",
            "11214006",
            "260385009",
            "260415000",
            "131194007",
            "82334004",
            "42425007",
            "419984006",
            "260408008",
            "720735008",
            "52101004",  # Present (qualifier value)
            "2667000",  # Absent (qualifier value)
        )
    }
    | {
        (LOINC, c)
        for c in (
            "LA6576-8",
            "LA18996-1",
            "LA6577-6",
            "LA4259-3",
            "LA11882-0",
            "LA11883-8",
            "LA11885-3",
            "LA9663-1",
            "LA9633-4",  # Present
            "LA9634-2",  # Absent
        )
    }
    | {
        ("http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", c)
        for c in ("POS", "DET", "A", "NEG", "ND", "N", "IND")
    }
)


def test_value_codes_are_the_listed_ones(term: Terminology, ref: Reference) -> None:
    with (MAPPINGS / "values.csv").open(encoding="utf-8", newline="") as fh:
        coded = {
            (term.canonical_system(r["system"]), r["code"].strip()): (r["source"], r["verified"])
            for r in csv.DictReader(fh)
            if r["kind"] in ("code", "interpretation")
        }
    assert set(coded) == VALUES_OUTSIDE_REFERENCE
    assert all(src.strip() and verified == "Y" for src, verified in coded.values())
    # none of them is in the reference (if one appears there, check it like a concept row)
    assert not [k for k in coded if ref.codes.get(ref.key(*k))]


# routes.csv names SNOMED CT route-of-administration codes (a dosage route sent as a code with no
# display). The reference has no route table, so these cannot be checked here; each row names the
# public source it was copied from: the FHIR R4 value set "SNOMED CT Route Codes"
# (http://hl7.org/fhir/ValueSet/route-codes), its expansion on hl7.org/fhir/R4, or a repository's
# copy of that value set. Listed so that a new route code is a deliberate edit of this test.
ROUTES_OUTSIDE_REFERENCE = {
    (SNOMED, c)
    for c in (
        "6064005",  # Topical route
        "10547007",  # Auricular use
        "16857009",  # Vaginal use
        "37161004",  # Rectal use
        "45890007",  # Transdermal use
        "46713006",  # Nasal use
        "54485002",  # Ophthalmic use
        "372449004",  # Dental use
        "372452007",  # Endotracheopulmonary use
        "372457001",  # Gingival use
        "372468001",  # Intraocular use
        "372473007",  # Oromucosal use
        "418401004",  # Intravitreal route
        "418664002",  # Oropharyngeal route
        "446105004",  # Conjunctival route
        "447081004",  # Lower respiratory tract route
        "447694001",  # Respiratory tract route
        "448598008",  # Cutaneous route
        "26643006",  # Oral use
        "47625008",  # Intravenous use
        "78421000",  # Intramuscular use
        "34206005",  # SC use
        "37839007",  # Sublingual use
        "54471007",  # Buccal use
    )
}


def test_route_codes_are_the_listed_ones(term: Terminology, ref: Reference) -> None:
    with (MAPPINGS / "routes.csv").open(encoding="utf-8", newline="") as fh:
        coded = {
            (term.canonical_system(r["system"]), r["code"].strip()): (r["source"], r["verified"])
            for r in csv.DictReader(fh)
            if not r["system"].startswith("#")
        }
    assert set(coded) == ROUTES_OUTSIDE_REFERENCE
    # verified=Y only with the FHIR R4 route-codes value set named as the source
    assert all(
        verified == "Y" and "http://hl7.org/fhir/ValueSet/route-codes" in src and " R4 " in src
        for src, verified in coded.values()
    )
    # none of them is in the reference (if one appears there, check it like a concept row)
    assert not [k for k in coded if ref.codes.get(ref.key(*k))]
