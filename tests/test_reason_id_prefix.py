"""candidates.csv's reasons cell and summary.html write "<criterion id>: <reason>": a reason
that begins with the id said in words before a value ("platelets: platelets 20 x10^3/uL < 25
on ...", "age: age 11 < 12") reads without that name ("platelets: 20 x10^3/uL < 25 on ...").
Decided where "id: reason" is written, for every criterion kind and any trial's ids; a name
that goes on ("hcv: HCV antibody positive ...") is kept (docs/rules.md "Reasons")."""

from __future__ import annotations

import csv
import io
import json
import shutil
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from criteria_helpers import MAPPINGS

from cohort.cli import cli
from cohort.criteria.ids import without_id
from cohort.model import Candidate, CriterionInfo, Patient, Result, SiteResult, Status
from cohort.report import rows
from cohort.report.csv import candidates_csv
from cohort.report.html import summary_html

# (criterion id, reason as the criterion gives it, what follows "id: " in the reasons cell)
STRIPPED = [
    ("platelets", "platelets 20 x10^3/uL < 25 on 2026-11-13", "20 x10^3/uL < 25 on 2026-11-13"),
    ("hemoglobin", "hemoglobin 7.5 g/dL < 8 on 2026-11-13", "7.5 g/dL < 8 on 2026-11-13"),
    ("age", "age 11 < 12", "11 < 12"),
    ("deceased", "deceased 2026-11-22", "2026-11-22"),
    ("ana_titer", "ANA titer 1:40 < 1:80 on 2026-05-09", "1:40 < 1:80 on 2026-05-09"),
    ("ana_titer", "ANA titer <1:40 < 1:80 on 2026-05-09", "<1:40 < 1:80 on 2026-05-09"),
    ("sledai", "sledai 4 < 6 on 2026-10-01", "4 < 6 on 2026-10-01"),  # no labels.csv line
    ("weight", "Weight ≥ 150 kg", "≥ 150 kg"),
    ("temperature", "temperature -2 < 35", "-2 < 35"),
    ("score", "score = 3", "= 3"),
    # a comma after the name: what follows it; the rest in parentheses: what they hold
    ("immunodeficiency", "immunodeficiency, onset 2025-10-21", "onset 2025-10-21"),
    ("deceased", "deceased (no date recorded)", "no date recorded"),
    ("prior_ianalumab", "Prior ianalumab, last 2025-07-13", "last 2025-07-13"),
]
KEPT = [
    ("hcv", "HCV antibody positive on 2026-03-01 (no later HCV RNA)"),
    ("hbv", "HBV DNA detected on 2026-10-01"),
    ("ana_titer", "ANA positive without a titer"),
    ("sledai", "SLEDAI-2K 4 < 6 on 2026-10-01"),  # no space after the id's word
    ("immunodeficiency", "immunodeficiency disorder, onset 2025-01-02"),  # the name goes on
    ("immunodeficiency", "immunodeficiency,"),  # nothing after the comma
    ("immunodeficiency", "immunodeficiency,onset 2025-01-02"),  # a comma without its space
    ("deceased", "deceased ()"),  # nothing in the parentheses
    ("deceased", "deceased (no date recorded) (confirm)"),  # not the whole remainder
    ("deceased", "deceased (no date (recorded)"),
    ("deceased", "deceased (no date recorded"),
    ("platelets", "no platelets result since 2026-08-27"),
    ("age", "age-related 11"),
    ("hemoglobin", "hemoglobin - see chart"),  # a dash alone is no sign of a number
    ("platelets", "platelets"),  # the name alone: nothing would be left
    ("platelets", "platelets "),
    ("ana_titer", "ANA 1:40 < 1:80 on 2026-05-09"),  # part of the id is not the id
    ("ana_titer", "ana_titer 1:40 < 1:80"),  # an id is said with spaces, not `_`
]


@pytest.mark.parametrize(("cid", "reason", "shown"), STRIPPED)
def test_the_id_in_words_before_a_value_is_left_out(cid: str, reason: str, shown: str) -> None:
    assert without_id(cid, reason) == shown


@pytest.mark.parametrize(("cid", "reason"), KEPT)
def test_a_name_that_goes_on_is_kept(cid: str, reason: str) -> None:
    assert without_id(cid, reason) == reason


def _site(*results: Result, eligible_from: date | None = None) -> SiteResult:
    infos = [CriterionInfo(r.criterion, "exclusion", r.criterion) for r in results]
    c = Candidate(
        Patient("p1", "1990-01-01", "female", name="Ann Example"),
        list(results),
        tier="excluded",
        rank=1,
        eligible_from=eligible_from,
    )
    return SiteResult("uci", "UC Irvine", date(2026, 11, 25), infos, [], [c])


@pytest.mark.parametrize(
    ("cid", "reason", "cell"),
    [(cid, reason, f"{cid}: {shown}") for cid, reason, shown in STRIPPED[:5]]
    + [(cid, reason, f"{cid}: {reason}") for cid, reason in KEPT[:3]],
)
def test_the_reasons_cell_says_the_id_once(cid: str, reason: str, cell: str) -> None:
    site = _site(Result(cid, Status.FAIL, reason))
    assert rows.reasons(site, site.candidates[0]) == cell


def test_the_reasons_cell_still_splits_into_one_id_and_reason_per_criterion() -> None:
    """`cohort diff`, the golden test and a coordinator's spreadsheet split the cell on "; ",
    then each piece on the first ": ": the id comes first, the reason after it."""
    results = [Result(cid, Status.FAIL, reason) for cid, reason, _ in STRIPPED[:5]]
    results += [Result(cid, Status.FAIL, reason) for cid, reason in KEPT[:2]]
    site = _site(*results)
    pieces = [p.split(": ", 1) for p in rows.reasons(site, site.candidates[0]).split("; ")]
    assert pieces == [[cid, shown] for cid, _, shown in STRIPPED[:5]] + [list(k) for k in KEPT[:2]]


@pytest.mark.parametrize("phi", [True, False])
@pytest.mark.parametrize(
    ("cid", "reason", "cell"),
    [
        ("deceased", "deceased 2026-11-22", "deceased: 2026-11-22"),
        ("deceased", "deceased (no date recorded)", "deceased: no date recorded"),
        ("immunodeficiency", "immunodeficiency, onset 2025-10-21", "immunodeficiency: onset 2025-10-21"),
    ],
)  # fmt: skip
def test_candidates_csv_with_and_without_phi(cid: str, reason: str, cell: str, phi: bool) -> None:
    """`--no-phi` withholds free text before the cell is written: the id is left out alike."""
    site = _site(Result(cid, Status.FAIL, reason))
    got = next(csv.DictReader(io.StringIO(candidates_csv(site, phi=phi).lstrip("\ufeff"))))
    assert got["reasons"] == cell


def test_summary_html_lists_the_reason_without_the_name() -> None:
    fail = Result("platelets", Status.FAIL, "platelets 20 x10^3/uL < 25 on 2026-11-13")
    site = _site(fail, eligible_from=date(2026, 12, 1))
    html = summary_html(site, history=[])
    assert "platelets: 20 x10^3/uL &lt; 25 on 2026-11-13" in html
    assert "platelets: platelets" not in html


# --- any trial's ids: a criterion `crp` of a trial file of one's own -----------------------------
CRP_TRIAL = """\
[trial]
id = "crp-demo"
title = "CRP demo (test fixture)"
screen_concepts = ["sle"]

[[criteria]]
id = "crp"
type = "inclusion"
kind = "lab_latest"
title = "CRP >= 5 mg/L"
concepts = ["crp"]
window_days = 90
fail_below = 5
"""


def _ndjson(path: Path, *resources: dict) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in resources), encoding="utf-8")


def _crp_run(tmp_path: Path) -> Path:
    mappings = tmp_path / "mappings"
    shutil.copytree(MAPPINGS, mappings)
    for name, line in (
        ("concepts/labs.csv", "crp,http://loinc.org,1988-5,exact,,C reactive protein [Mass/volume]"
         " in Serum or Plasma,test fixture,Y,\n"),
        ("units.csv", "crp,mg/L,,0,1000,\n"),
        ("labels.csv", "crp,CRP\n"),
    ):  # fmt: skip
        with (mappings / name).open("a", encoding="utf-8") as fh:
            fh.write(line)
    (mappings / "trials" / "crp-demo.toml").write_text(CRP_TRIAL, encoding="utf-8")
    data = tmp_path / "data"
    data.mkdir()
    subject = {"reference": "Patient/c1"}
    _ndjson(data / "Patient.ndjson", {"resourceType": "Patient", "id": "c1",
                                      "birthDate": "1980-01-01", "gender": "female"})  # fmt: skip
    sle = {"coding": [{"system": "http://snomed.info/sct", "code": "55464009"}]}
    _ndjson(data / "Condition.ndjson", {"resourceType": "Condition", "id": "d1", "code": sle,
                                        "subject": subject, "onsetDateTime": "2020-01-01"})  # fmt: skip
    crp = {"coding": [{"system": "http://loinc.org", "code": "1988-5"}]}
    value = {"value": 2, "unit": "mg/L", "system": "http://unitsofmeasure.org", "code": "mg/L"}
    _ndjson(data / "Observation.ndjson", {"resourceType": "Observation", "id": "o1",
                                          "status": "final", "code": crp, "subject": subject,
                                          "effectiveDateTime": "2026-11-02",
                                          "valueQuantity": value})  # fmt: skip
    cfg = tmp_path / "crp.toml"
    cfg.write_text(
        f'[trial]\nid = "crp-demo"\nmappings = "{mappings.as_posix()}"\n'
        f'[[sites]]\nid = "s1"\nsource = "{data.as_posix()}"\n',
        encoding="utf-8",
    )
    out = tmp_path / "out"
    args = ["run", "--config", str(cfg), "--as-of", "2026-11-25", "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return out / "s1"


@pytest.mark.usefixtures("in_tmp")
def test_a_custom_criterion_id_said_by_its_label_is_left_out(tmp_path: Path) -> None:
    """The concept is labelled "CRP", the criterion's id is `crp`: the criterion reads
    "CRP 2 mg/L < 5 on ..." and the reasons cell "crp: 2 mg/L < 5 on ...". No code names
    `crp`: the rule is the id in words, whatever the trial."""
    site = _crp_run(tmp_path)
    with (site / "candidates.csv").open(encoding="utf-8-sig", newline="") as fh:
        got = {r["patient_id"]: r for r in csv.DictReader(fh)}
    assert (got["c1"]["crp"], got["c1"]["reasons"]) == ("fail", "crp: 2 mg/L < 5 on 2026-11-02")
    # evidence.csv names the criterion in a column of its own and quotes no reason: unchanged
    with (site / "evidence.csv").open(encoding="utf-8-sig", newline="") as fh:
        ev = list(csv.DictReader(fh))
    assert [(e["criterion"], e["concept"], e["value"]) for e in ev] == [("crp", "crp", "2")]
