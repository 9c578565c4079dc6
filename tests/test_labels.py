"""Display labels of concepts (mappings/labels.csv): reasons name a concept by its label, as a
coordinator reads it; evidence.csv keeps the concept id a researcher matches against the mapping
files (mappings/README.md, docs/rules.md "Reasons")."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from criteria_helpers import (
    AS_OF,
    FLOWSHEET,
    MAPPINGS,
    RXNORM,
    ago,
    cc,
    criterion,
    observation,
    qty,
    run,
    trial,
)

from cohort.cli import cli
from cohort.criteria.base import Context
from cohort.criteria.registry import KINDS
from cohort.errors import MappingError, cwd_relative
from cohort.evaluate import make_context
from cohort.extract import Extractor, ReadingRules
from cohort.terminology import Terminology
from cohort.tools.check import check_mappings


def stmt(code: str, start: str, end: str) -> dict:
    return {
        "resourceType": "MedicationStatement",
        "id": "ms1",
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": cc(code, RXNORM),
        "effectivePeriod": {"start": start, "end": end},
    }


# --- reasons with the shipped labels -------------------------------------------------------------
def test_washout_reason_names_the_medication_group_by_its_label() -> None:
    r = run("washout_12wk", stmt("42316", ago(100), ago(10)))  # tacrolimus
    assert r.status == "fail"
    # the drug as the mappings name its ingredient, then its group by the label
    assert r.reason.startswith(f"tacrolimus (calcineurin inhibitor) last {ago(10)}, within 12 weeks")
    assert r.evidence[0].concept == "calcineurin_inhibitor"  # evidence.csv keeps the id


def test_b_cell_washout_reason_uses_the_label() -> None:
    r = run("washout_b_cell_depletion", stmt("121191", ago(100), ago(10)))  # rituximab
    assert r.status == "fail"
    assert r.reason.startswith("rituximab (B-cell depleting therapy) last ")
    assert ", within 36 weeks" in r.reason
    assert r.evidence[0].concept == "b_cell_depleting"


def test_lab_reasons_use_labels() -> None:
    r = run("weight", observation("29463-7", ago(10), valueQuantity=qty(32, "kg", "kg")))
    assert (r.status, r.reason) == ("fail", f"body weight 32 kg < 35 on {ago(10)}")
    assert r.evidence[0].concept == "body_weight"
    r = run("neutrophils")
    assert (r.status, r.reason) == ("unknown", f"no ANC result since {ago(90)}")
    upcr = observation("2890-2", ago(20), valueQuantity=qty(2.5, "mg/mg", "mg/mg"))
    prot = observation("2889-4", ago(20), valueQuantity=qty(3, "g/(24.h)", "g/(24.h)"))
    creat = observation("2160-0", ago(3), valueQuantity=qty(0.9, "mg/dL", "mg/dL"))
    r = run("severe_lupus_nephritis", upcr, prot, creat)
    assert r.status == "fail"
    assert r.reason == f"24-h urine protein 3 g/d > 2 on {ago(20)}, UPCR 2.5 mg/mg > 2 on {ago(20)}"
    assert {e.concept for e in r.evidence} == {"upcr", "urine_protein_24h", "creatinine"}


def test_annotation_only_unit_is_not_shown_in_a_reason() -> None:
    """SLEDAI-2K's canonical unit is `{score}`, a UCUM annotation standing for 1: a reason
    says "SLEDAI-2K 4 < 6", not "sledai 4 {score} < 6"."""
    r = run("sledai", observation("SLEDAI-2K", ago(20), FLOWSHEET, valueInteger=4))
    assert (r.status, r.reason) == ("fail", f"SLEDAI-2K 4 < 6 on {ago(20)}")
    r = run("sledai", observation("SLEDAI-2K", ago(20), FLOWSHEET, valueInteger=8))
    assert (r.status, r.reason) == ("pass", "SLEDAI-2K 8 >= 6")


def test_criterion_label_key_wins_over_the_concept_label() -> None:
    """`label = "ANA"` of ana_titer and `label = "SLE"` of sle_diagnosis stay what reasons say."""
    r = run("ana_titer", observation("5048-4", ago(20), valueString="1:40"))
    assert r.reason == f"ANA titer 1:40 < 1:80 on {ago(20)}"
    r = run("ana_titer")
    assert r.reason == "no ANA result"


def test_checks_lab_label_key_wins() -> None:
    r = run("hbv", observation("5196-1", ago(20), valueString="Positive"))
    assert (r.status, r.reason) == ("fail", f"HBsAg positive on {ago(20)}")


def test_every_concept_the_sirius_trial_names_has_a_label() -> None:
    term = Terminology.load(MAPPINGS)
    missing = sorted(c for c in trial().concepts() if c not in term.labels)
    assert not missing
    for concept, label in term.labels.items():
        assert label.strip() == label and label, concept
        assert "_" not in label, (concept, label)  # plain words, not an id


# --- labels.csv: optional, validated ------------------------------------------------------------
def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "mappings"
    shutil.copytree(MAPPINGS, root)
    return root


def _context(root: Path, *resources: dict) -> Context:
    term = Terminology.load(root)
    rules = ReadingRules.load(root / "rules.toml")
    facts = Extractor(rules, {}.get).facts("p1", list(resources))
    return make_context(facts, term, AS_OF, rules)


def test_without_labels_csv_a_concept_reads_as_its_id(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    (root / "labels.csv").unlink()
    crit = criterion("washout_12wk")
    r = KINDS[crit.kind].fn(crit, _context(root, stmt("42316", ago(100), ago(10))))
    assert r.reason.startswith(f"tacrolimus (calcineurin_inhibitor) last {ago(10)}, within 12 weeks")
    crit = criterion("sledai")
    ctx = _context(root, observation("SLEDAI-2K", ago(20), FLOWSHEET, valueInteger=4))
    assert KINDS[crit.kind].fn(crit, ctx).reason == f"sledai 4 < 6 on {ago(20)}"


def test_a_label_row_is_read_from_a_researchers_copy(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    (root / "labels.csv").write_text("concept,label\nanc,absolute neutrophil count\n", "utf-8")
    crit = criterion("neutrophils")
    r = KINDS[crit.kind].fn(crit, _context(root))
    assert r.reason == f"no absolute neutrophil count result since {ago(90)}"


def _labels(tmp_path: Path, text: str) -> Path:
    root = _copy(tmp_path)
    (root / "labels.csv").write_text(text, "utf-8")
    return root


def test_duplicate_label_row_stops_the_run_and_is_a_check_error(tmp_path: Path) -> None:
    root = _labels(tmp_path, "concept,label\nupcr,UPCR\n# a comment\nupcr,urine protein/creatinine\n")
    with pytest.raises(MappingError) as exc:
        Terminology.load(root)
    msg = str(exc.value)
    assert msg.startswith(f"{_shown(root)}/labels.csv:4: column 'concept': ")
    assert "'upcr'" in msg and "line 2" in msg
    errors = check_mappings(root).findings.errors
    assert [e for e in errors if "labels.csv" in e] == [msg]


def test_label_for_an_unknown_concept_is_a_check_warning(tmp_path: Path) -> None:
    root = _labels(tmp_path, "concept,label\nupcr,UPCR\nupcrr,UPCR typo\n")
    Terminology.load(root)  # a run reads on: the label names nothing it uses
    report = check_mappings(root)
    assert not [e for e in report.findings.errors if "labels.csv" in e]
    warnings = [w for w in report.findings.warnings if "labels.csv" in w]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"{_shown(root)}/labels.csv:3: column 'concept': ")
    assert "'upcrr'" in warnings[0] and "'upcr'" in warnings[0]  # did you mean


@pytest.mark.parametrize(
    ("row", "column"),
    [
        ("upcr,", "label"),
        (",UPCR", "concept"),
        ("UPCR,UPCR", "concept"),
        ('upcr,"UPCR\x07"', "label"),
    ],
)
def test_bad_label_row_names_file_line_and_column(tmp_path: Path, row: str, column: str) -> None:
    root = _labels(tmp_path, f"concept,label\n{row}\n")
    with pytest.raises(MappingError) as exc:
        Terminology.load(root)
    assert str(exc.value).startswith(f"{_shown(root)}/labels.csv:2: column '{column}': ")
    assert str(exc.value) in check_mappings(root).findings.errors


def test_labels_csv_is_part_of_the_mapping_version(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    before = Terminology.load(root).version
    with (root / "labels.csv").open("a", encoding="utf-8") as f:
        f.write("complement_c3,C3\n")
    assert Terminology.load(root).version != before


def _shown(root: Path) -> str:
    return cwd_relative(root.resolve())


# --- outputs ----------------------------------------------------------------------------------
def test_label_in_outputs_goes_through_safe_cells_and_html_escaping(tmp_path: Path) -> None:
    """A researcher's label is text like any reason: the CSV cell stays safe, the HTML escaped;
    evidence.csv's concept column keeps the id."""
    root = _copy(tmp_path)
    text = (root / "labels.csv").read_text("utf-8")
    text = text.replace(
        "\ncalcineurin_inhibitor,calcineurin inhibitor\n", '\ncalcineurin_inhibitor,"<b>CNI</b>; =1+1"\n'
    )
    (root / "labels.csv").write_text(text, "utf-8")
    src = tmp_path / "src"
    src.mkdir()
    sle = {
        "resourceType": "Condition",
        "id": "c1",
        "subject": {"reference": "Patient/p1"},
        "code": cc("M32.14", "http://hl7.org/fhir/sid/icd-10-cm"),
        "onsetDateTime": "2020-01-01",
    }
    pt = {"resourceType": "Patient", "id": "p1", "birthDate": "1990-01-01"}
    hcq = {**stmt("5521", ago(400), ago(-30)), "id": "ms2"}  # background therapy, current
    lines = [pt, sle, hcq, stmt("42316", ago(100), ago(10))]  # tacrolimus: a washout, dated
    (src / "all.ndjson").write_text("\n".join(json.dumps(x) for x in lines) + "\n", "utf-8")
    cfg = tmp_path / "cohort.toml"
    cfg.write_text(
        f'[trial]\nid = "sirius-sle-2"\nmappings = "{root.as_posix()}"\n'
        f'[[sites]]\nid = "s1"\nname = "Site"\nsource = "{src.as_posix()}"\n',
        "utf-8",
    )
    out = tmp_path / "out"
    res = CliRunner().invoke(
        cli, ["run", "--config", str(cfg), "--as-of", "2026-11-25", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    with (out / "s1" / "candidates.csv").open(encoding="utf-8-sig", newline="") as f:
        row = next(csv.DictReader(f))
    # the "; " inside a label is written ", " (one reason per criterion)
    assert f"washout_12wk: tacrolimus (<b>CNI</b>, =1+1) last {ago(10)}, within 12 weeks (until " in (
        row["reasons"]
    )
    # the upcoming-dates list quotes the reasons: escaped
    html = (out / "s1" / "summary.html").read_text("utf-8")
    assert "<b>CNI</b>" not in html
    assert "&lt;b&gt;CNI&lt;/b&gt;, =1+1) last" in html
    with (out / "s1" / "evidence.csv").open(encoding="utf-8-sig", newline="") as f:
        concepts = {r["concept"] for r in csv.DictReader(f) if r["criterion"] == "washout_12wk"}
    assert concepts == {"calcineurin_inhibitor"}
