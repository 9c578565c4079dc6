"""`any_record` reads Procedure records too (`procedures`): an exclusion "ever", with no window.

A trial excluding a kidney transplant or dialysis ever had only `washout`, whose window is at most
100 years: a dialysis in 2019 failed "within 1200 months (until 2119-05-01)" and set
`eligible_from` to 2119-05-01 for an excluded patient (docs/criteria-kinds.md).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from criteria_helpers import ago, context, criterion, procedure, run

from cohort.criteria.loading import check_trial
from cohort.criteria.registry import KINDS

PHERESIS = {"procedures": ["plasmapheresis"]}


def test_a_procedure_ever_fails_with_no_known_end() -> None:
    r = run("prior_ianalumab", procedure("20720000", when=ago(4000)), params=PHERESIS)
    assert str(r.status) == "fail"
    assert r.eligible_from is None
    day = ago(4000)
    # (the helper writes no display: nothing to quote after the label)
    assert r.reason == f"prior plasmapheresis on {day}"
    assert [(e.concept, e.date) for e in r.evidence] == [("plasmapheresis", day)]


def test_a_procedure_not_done_or_after_as_of_is_no_record() -> None:
    not_done = procedure("20720000", when=ago(30), status="not-done")
    later = procedure("20720000", when=ago(-3))
    assert str(run("prior_ianalumab", not_done, later, params=PHERESIS).status) == "pass"
    # another procedure's code (apheresis, not plasmapheresis) is no record of it
    assert str(run("prior_ianalumab", procedure("127788007"), params=PHERESIS).status) == "pass"


def test_procedures_alone_are_a_criterion_and_neither_key_is_refused(tmp_path: Path) -> None:
    head = '[trial]\nid = "t"\ntitle = "T"\nscreen_concepts = ["sle"]\n\n'
    crit = '[[criteria]]\nid = "pheresis"\ntype = "exclusion"\nkind = "any_record"\n'
    path = tmp_path / "t.toml"
    path.write_text(head + crit + 'procedures = ["plasmapheresis"]\n', encoding="utf-8")
    known = {"sle", "plasmapheresis"}
    files = {"sle": {"conditions"}, "plasmapheresis": {"procedures"}}
    checked = check_trial(path, known, known, set(), files)
    assert [str(e) for e in checked.errors] == []
    assert checked.trial is not None
    assert checked.trial.concept_records()["plasmapheresis"] == {"procedures"}
    path.write_text(head + crit, encoding="utf-8")
    errors = [str(e) for e in check_trial(path, known, known, set(), files).errors]
    assert errors == [
        f"{path}:7: criterion 'pheresis': key 'concepts': "
        "kind 'any_record' needs at least one of concepts, procedures"
    ]


def test_a_washout_names_the_procedure_concept_its_code_maps() -> None:
    """A washout over two procedure concepts named a dialysis "dialysis/kidney transplant on
    2019-05-01": every concept of its `procedures` key, not the one the record's code maps."""
    both = {"procedures": ["plasmapheresis", "apheresis"]}
    r = run("washout_24wk", procedure("127788007", when=ago(30)), params=both)
    assert str(r.status) == "fail"
    assert r.reason.startswith(f"apheresis on {ago(30)}, within 24 weeks"), r.reason
    assert [e.concept for e in r.evidence] == ["apheresis"]


def test_a_medication_any_record_does_not_index_the_patients_procedures() -> None:
    """Hot path: an `any_record` of medications only (the shipped prior_ianalumab) asks for no
    Procedure concept, so a patient's Procedures are not looked up, concept by concept, for it:
    no procedure index is built (each Procedure's codes mapped) for a criterion that reads none."""
    ctx = context(procedure("20720000", when=ago(30)))
    crit = criterion("prior_ianalumab")
    assert "procedures" not in crit.params
    r = KINDS["any_record"].fn(crit, ctx)
    assert str(r.status) == "pass"
    assert id(ctx.facts.procedures) not in ctx._index
    # (one that asks for them still finds them)
    with_procs = dataclasses.replace(crit, params={**crit.params, **PHERESIS})
    assert str(KINDS["any_record"].fn(with_procs, ctx).status) == "fail"


def test_a_record_of_a_partial_date_reaching_past_as_of_is_unknown_alone() -> None:
    """As of 2026-11-25 a plasmapheresis dated "2026-11" may be of the 26th to the 30th, not on
    record yet (docs/rules.md: a partial date decides only when every day agrees): unknown, where
    it failed; beside one surely before as_of it fails as before."""
    month = procedure("20720000", when="2026-11")
    r = run("prior_ianalumab", month, params=PHERESIS)
    assert str(r.status) == "unknown"
    assert r.reason == "prior plasmapheresis dated 2026-11, which may be after 2026-11-25"
    assert r.eligible_from is None
    surely = procedure("20720000", when="2026-10")
    both = run("prior_ianalumab", month, surely, params=PHERESIS)
    assert str(both.status) == "fail"
    assert both.reason.startswith("prior plasmapheresis")
    # an undated record stays a fail: an exclusion "ever" needs no date
    assert str(run("prior_ianalumab", procedure("20720000"), params=PHERESIS).status) == "fail"
