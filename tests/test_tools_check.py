"""`cohort mappings check`: shipped mappings pass; broken files give located errors and exit 4."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from cohort.cli import cli
from cohort.criteria.titles import title_problems
from cohort.terminology.rows import code_problem, loinc_check_digit

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "tools"


def _copy(tmp_path: Path) -> Path:
    dest = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", dest)
    return dest


def _append(path: Path, text: str) -> int:
    """Add `text` (whole lines) at the end of a mapping file; the number of its first line."""
    n = len(path.read_text(encoding="utf-8").splitlines()) + 1
    with path.open("a", encoding="utf-8") as fh:
        fh.write(text)
    return n


def _checked(m: Path, exit_code: int, having: str) -> list[str]:
    """`cohort mappings check` of the mappings `m`, which must exit `exit_code`: its lines
    naming `having`."""
    result = CliRunner().invoke(cli, ["mappings", "check", "--mappings", str(m)])
    assert result.exit_code == exit_code, result.output
    return [line for line in result.output.splitlines() if having in line]


def _broken(tmp_path: Path) -> Path:
    m = _copy(tmp_path)
    shutil.copy(DATA / "broken" / "concepts" / "broken.csv", m / "concepts" / "broken.csv")
    shutil.copy(DATA / "broken" / "trials" / "broken-trial.toml", m / "trials")
    return m


@pytest.mark.parametrize(
    ("number", "digit"), [("5048", 4), ("29953", 7), ("777", 3), ("718", 7), ("2160", 0)]
)
def test_loinc_check_digit(number: str, digit: int) -> None:
    assert loinc_check_digit(number) == digit


def test_code_shapes() -> None:
    assert code_problem("http://loinc.org", "777-4") is not None
    assert code_problem("http://loinc.org", "LA6576-8") is None  # answer code: shape only
    assert code_problem("http://hl7.org/fhir/sid/icd-10-cm", "M32.14") is None
    assert code_problem("http://hl7.org/fhir/sid/icd-10-cm", "M3214") is None
    assert code_problem("http://hl7.org/fhir/sid/icd-10-cm", "32.1") is not None
    assert code_problem("http://www.nlm.nih.gov/research/umls/rxnorm", "12a") is not None
    assert code_problem("http://hl7.org/fhir/sid/cvx", "03") is None
    assert code_problem("http://hl7.org/fhir/sid/cvx", "1234") is not None


def test_shipped_mappings_pass_with_version() -> None:
    result = CliRunner().invoke(cli, ["mappings", "check"])
    assert result.exit_code == 0, result.output
    human = (ROOT / "mappings" / "VERSION").read_text().strip()
    assert "mapping version sha256:" in result.output and f"({human})" in result.output
    # unverified rows are expected there (ignored unless use_unverified): a note naming the
    # file, column and lines, no warning, so that clean files end with no warning at all
    assert result.output.splitlines()[-1].endswith("; 0 error(s), 0 warning(s)")
    assert "warning:" not in result.output
    notes = [ln for ln in result.output.splitlines() if "unverified row(s)" in ln]
    assert notes and all(ln.startswith("note: ") for ln in notes), notes
    with (ROOT / "mappings" / "concepts" / "conditions.csv").open(encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        unverified = [str(reader.line_num) for row in reader if row["verified"] == "N"]
    assert len(unverified) > 10  # (else the line list is not shortened)
    said = (
        "mappings/concepts/conditions.csv: column 'verified': "
        f"{len(unverified)} unverified row(s) (verified=N, ignored unless use_unverified) on "
        f"line(s) {', '.join(unverified[:10])} … ({len(unverified) - 10} more)"
    )
    assert [ln for ln in notes if ln.endswith(said)], notes


def test_check_names_the_folder_it_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its last line names the mappings folder checked (from the working folder, as files are
    named), so that a researcher with two copies sees which one passed."""
    m = _copy(tmp_path)
    monkeypatch.chdir(tmp_path)
    for given in ("mappings", "./mappings/", str(m)):
        result = CliRunner().invoke(cli, ["mappings", "check", "--mappings", given])
        assert result.exit_code == 0, result.output
        last = result.output.splitlines()[-1]
        assert last.startswith("checked mappings: mapping version sha256:"), last
        assert last.endswith("; 0 error(s), 0 warning(s)"), last
    # with --config: the folder the configuration names (as `cohort run --config` loads it)
    shutil.copytree(m, tmp_path / "site" / "edited")
    cfg = tmp_path / "site" / "site.toml"
    cfg.write_text(
        '[trial]\nid = "sirius-sle-2"\nmappings = "edited"\n[[sites]]\nid = "s1"\nsource = "d"\n'
    )
    result = CliRunner().invoke(cli, ["mappings", "check", "--config", str(cfg)])
    assert result.output.splitlines()[-1].startswith("checked site/edited: mapping version ")
    # outside the working folder: its full path
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    result = CliRunner().invoke(cli, ["mappings", "check", "--mappings", str(m)])
    assert result.output.splitlines()[-1].startswith(f"checked {m.resolve()}: mapping version ")


def test_broken_files_are_located_errors(tmp_path: Path) -> None:
    m = _broken(tmp_path)
    result = CliRunner().invoke(cli, ["mappings", "check", "--mappings", str(m)])
    out = result.output
    assert result.exit_code == 4, out
    f = "mappings/concepts/broken.csv"
    assert (
        f"{f}:2: column 'system': unknown code system 'http://lonic.org' "
        "(did you mean 'http://loinc.org'?)" in out
    )
    assert f"{f}:3: column 'code': LOINC '777-4' has a wrong check digit (expected 777-3)" in out
    assert f"{f}:4: column 'match': unknown match kind 'prefx'" in out
    assert "did you mean 'prefix'?" in out
    assert f"{f}:5: column 'code': 'M3X2..1' is not shaped like an ICD-10-CM code" in out
    # the same code for two concepts: a warning naming both lines
    assert "warning:" in out and f"{f}:6 (hemoglobin)" in out and f"{f}:7 (platelets)" in out
    trial = str(m / "trials" / "broken-trial.toml")
    assert (
        f"{trial}:12: criterion 'platelets': key 'concepts': unknown concept 'platelet' "
        "(did you mean 'platelets'?)" in out
    )
    assert "cohort: error:" in out and "error(s) in the mapping files" in out


def test_trial_option_and_units(tmp_path: Path) -> None:
    m = _broken(tmp_path)
    (m / "concepts" / "broken.csv").unlink()
    with (m / "units.csv").open("a") as fh:
        fh.write("complement_c3,mg/dLL%%,,broken unit\n")
    lines = (m / "units.csv").read_text().splitlines()
    result = CliRunner().invoke(
        cli, ["mappings", "check", "--mappings", str(m), "--trial", "sirius-sle-2"]
    )
    assert result.exit_code == 4, result.output
    assert f"mappings/units.csv:{len(lines)}: column 'unit': UCUM cannot parse 'mg/dLL%%'" in (
        result.output
    )
    assert "broken-trial" not in result.output  # only the trial asked for
    result = CliRunner().invoke(cli, ["mappings", "check", "--mappings", str(m), "--trial", "nope"])
    assert result.exit_code == 4 and "criteria file not found" in result.output


def test_empty_concept_is_a_warning(tmp_path: Path) -> None:
    m = _copy(tmp_path)
    labs = m / "concepts" / "labs.csv"
    text = labs.read_text().splitlines()
    # make every body_weight row unverified: the weight criterion's concept becomes empty
    text = [ln.replace(",Y,", ",N,") if ln.startswith("body_weight,") else ln for ln in text]
    labs.write_text("\n".join(text) + "\n")
    result = CliRunner().invoke(cli, ["mappings", "check", "--mappings", str(m)])
    assert result.exit_code == 0, result.output
    assert "concept 'body_weight' is empty (only unverified rows" in result.output


def test_threshold_changed_without_its_title_is_a_warning(tmp_path: Path) -> None:
    # a researcher raises the platelet limit; the title coordinators read still says 25
    m = _copy(tmp_path)
    trial = m / "trials" / "sirius-sle-2.toml"
    text = trial.read_text(encoding="utf-8")
    trial.write_text(text.replace("fail_below = 25\n", "fail_below = 50\n"), encoding="utf-8")
    line = next(
        i for i, t in enumerate(trial.read_text().splitlines(), 1) if t.startswith('title = "Pla')
    )
    result = CliRunner().invoke(cli, ["mappings", "check", "--mappings", str(m)])
    assert result.exit_code == 0  # a warning: the run still screens with the new limit
    assert (
        f"sirius-sle-2.toml:{line}: criterion 'platelets': key 'title': "
        "'Platelets >= 25 x10^3/uL within 90 days' does not mention fail_below = 50"
    ) in result.output
    # the title updated with it: no warning
    trial.write_text(
        trial.read_text().replace("Platelets >= 25 x10^3", "Platelets >= 50 x10^3"),
        encoding="utf-8",
    )
    result = CliRunner().invoke(cli, ["mappings", "check", "--mappings", str(m)])
    assert result.exit_code == 0 and "key 'title'" not in result.output


def _title_warnings(m: Path) -> list[str]:
    result = CliRunner().invoke(cli, ["mappings", "check", "--mappings", str(m)])
    assert result.exit_code == 0, result.output  # warnings: the run screens with the new rule
    return [line for line in result.output.splitlines() if "key 'title'" in line]


# the end of every title warning
TITLE_TAIL = (
    "(the title is shown as written in summary.html, explain and to_confirm: update it "
    "with the rule)"
)


def _line_of(path: Path, start: str) -> int:
    return next(i for i, t in enumerate(path.read_text().splitlines(), 1) if t.startswith(start))


def test_a_window_changed_without_its_title_is_a_warning(tmp_path: Path) -> None:
    """The B-cell washout lengthened from 36 to 52 weeks (a researcher's first edit): the
    title coordinators read in summary.html, explain and to_confirm still said "in 36 weeks",
    and `check` said nothing (a title's window was not compared with the rule's)."""
    m = _copy(tmp_path)
    trial = m / "trials" / "sirius-sle-2.toml"
    text = trial.read_text(encoding="utf-8")
    text = text.replace("window_weeks = 36", "window_weeks = 52")
    text = text.replace("min_b = 2", "min_b = 3")
    text = text.replace("window_days = 90\n", "window_months = 3\n", 1)  # "90 days": the same
    trial.write_text(text, encoding="utf-8")
    bilag, bcell = _line_of(trial, 'title = "BILAG'), _line_of(trial, 'title = "No B-cell')
    assert _title_warnings(m) == [
        f"warning: {trial}:{bilag}: criterion 'bilag': key 'title': 'BILAG-2004: >= 1 A or >= 2 "
        f"B within 90 days' does not mention min_b = 3 {TITLE_TAIL}",
        f"warning: {trial}:{bcell}: criterion 'washout_b_cell_depletion': key 'title': 'No "
        f"B-cell depletion in 36 weeks (or B cells recovered)' does not mention window_weeks = "
        f"52 {TITLE_TAIL}",
    ]
    text = text.replace("depletion in 36 weeks", "depletion in 52 weeks")
    text = text.replace(">= 2 B within", ">= 3 B within")
    text = text.replace("window_weeks = 4\n", "window_months = 1\n")  # 4 weeks: not a month
    trial.write_text(text, encoding="utf-8")
    live = _line_of(trial, 'title = "No live')
    assert _title_warnings(m) == [
        f"warning: {trial}:{live}: criterion 'live_vaccine': key 'title': 'No live vaccine in 4 "
        f"weeks' does not mention window_months = 1 {TITLE_TAIL}"
    ]
    text = text.replace("vaccine in 4 weeks", "vaccine in 1 month")
    trial.write_text(text, encoding="utf-8")
    assert _title_warnings(m) == []


def _age_edited(tmp_path: Path, old: str, new: str) -> tuple[Path, Path, str, int]:
    """A copy of the shipped mappings whose trial file has `old` replaced by `new`: the folder,
    the trial file, its text and the line of the age criterion's title."""
    m = _copy(tmp_path)
    trial = m / "trials" / "sirius-sle-2.toml"
    text = trial.read_text(encoding="utf-8").replace(old, new)
    trial.write_text(text, encoding="utf-8")
    return m, trial, text, _line_of(trial, 'title = "Age')


def test_a_title_number_no_parameter_gives_is_a_warning(tmp_path: Path) -> None:
    """A title quoting a number that is no parameter at all ("Age 12 to 75 years" with only
    `min_years = 12`: no maximum is applied) passed `check` silently: only the parameters'
    values were looked for in the title, never the title's numbers in the parameters."""
    m, trial, text, line = _age_edited(tmp_path, "Age >= 12 years", "Age 12 to 75 years")
    assert _title_warnings(m) == [
        f"warning: {trial}:{line}: criterion 'age': key 'title': 'Age 12 to 75 years' quotes 75,"
        f" which no parameter of the criterion gives {TITLE_TAIL}"
    ]
    trial.write_text(text.replace("min_years = 12", "min_years = 12\nmax_years = 75"))
    assert _title_warnings(m) == []


@pytest.mark.parametrize(
    "raw",
    [
        {"kind": "titer", "title": "ANA titer >= 1:80", "min_titer": 80},
        {"kind": "lab_latest", "title": "Platelets >= 25 x10^3/uL within 3 months",
         "fail_below": 25, "window_days": 90},
        {"kind": "lab_latest", "title": "eGFR >= 30 mL/min/1.73m2 within 60 days",
         "fail_below": 30, "window_days": 60},
        {"kind": "lab_latest", "title": "24-h urine protein >= 0.5 g/24 h", "pass_at_least": 0.5},
        {"kind": "lab_latest", "title": "ANC >= 1.5 10*9/L", "fail_below": 1.5},
        {"kind": "grades", "title": "BILAG-2004: >= 1 A or >= 2 B in 12 weeks", "window_weeks": 12},
        {"kind": "lab_latest", "title": "SLEDAI-2K >= 6", "pass_at_least": 6},
        {"kind": "washout", "title": "No anti-CD40 or CTLA4-Fc in 6 months", "window_months": 6},
        {"kind": "washout", "title": "No CD19 therapy in 24 weeks", "window_weeks": 24},
        {"kind": "diagnosis", "title": "SLE diagnosed >= 1 year", "min_months": 12},
        {"kind": "checks", "title": "No type 2 diabetes", "checks": [{"condition": ["t2d"]}]},
        {"kind": "labs_exceed", "title": "No UPCR > 3.0 within 90 days", "window_days": 90,
         "measures": [{"concepts": ["upcr"], "fail_above": 3.0}]},
    ],
)
def test_a_title_number_that_is_a_name_unit_default_or_parameter_is_fine(raw: dict) -> None:
    """Numbers in names and units (SLEDAI-2K, BILAG-2004, CD19, x10^3/uL, 1.73m2, 24-h), a
    titer's "1:", a kind's default (grades: 1 A, 2 B), a period equal to the window, and a
    nested parameter (a labs_exceed measure's limit) are no stale number."""
    assert title_problems(raw) == []


def test_a_nested_limit_a_title_misquotes_is_a_warning() -> None:
    """A labs_exceed measure's limit changed from 3.0 to 2.0; its title still says 3.0."""
    raw = {"kind": "labs_exceed", "title": "No UPCR > 3.0 within 90 days", "window_days": 90,
           "measures": [{"concepts": ["upcr"], "fail_above": 2.0}]}
    assert [p.split(" (")[0] for p in title_problems(raw)] == [
        "'No UPCR > 3.0 within 90 days' quotes 3.0, which no parameter of the criterion gives"
    ]


def test_an_age_maximum_not_in_its_title_is_a_warning(tmp_path: Path) -> None:
    """An age range's maximum (`max_years`) is a threshold its title quotes, as `min_years`."""
    m, trial, text, line = _age_edited(tmp_path, "min_years = 12", "min_years = 12\nmax_years = 75")
    assert _title_warnings(m) == [
        f"warning: {trial}:{line}: criterion 'age': key 'title': 'Age >= 12 years' does not "
        f"mention max_years = 75 {TITLE_TAIL}"
    ]
    trial.write_text(text.replace("Age >= 12 years", "Age 12 to 75 years"), encoding="utf-8")
    assert _title_warnings(m) == []


@pytest.mark.usefixtures("in_tmp")
def test_a_misspelt_concept_no_criteria_file_names_is_an_error(tmp_path: Path) -> None:
    """`ana_titr` typed for `ana_titer` in a concept file: its rows mapped a concept no trial
    asks for, and the ANA criterion quietly lost them; `check` said nothing, then only warned
    (exit 0) while `cohort run` changed who was eligible. A near miss of a concept the criteria
    read is an error, at its first row, in any concept file."""
    m = _copy(tmp_path)
    labs = m / "concepts" / "labs.csv"
    lines = labs.read_text(encoding="utf-8").splitlines()
    rows = [i for i, t in enumerate(lines) if t.startswith("ana_titer,")][1:3]
    for i in rows:
        lines[i] = lines[i].replace("ana_titer,", "ana_titr,", 1)
    # not typos: a concept far from every used one (a new trial's), a sibling differing in its
    # digits, and a name in two concept files
    lines += [
        "anti_ro52,http://example.org/lab,RO52,exact,,Ro52,site lab,local,",
        "anti_cd41,http://example.org/lab,CD41,exact,,CD41,site lab,local,",
        "hemoglobn,http://example.org/lab,HGB,exact,,Hb,site lab,local,",
    ]
    labs.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with (m / "concepts" / "local.csv").open("a", encoding="utf-8") as fh:
        fh.write("hemoglobn,http://example.org/lab,HGB2,exact,,Hb,site lab,local,\n")
    # the QA's: a site's voclosporin row under `calcineurin_inhibtor`, its SLEDAI row `sledia`
    med = _append(
        m / "concepts" / "medications.csv",
        "calcineurin_inhibtor,voclosporin,text,Voclo,exact,,Voclo,site pharmacy,local,\n",
    )
    local = _append(
        m / "concepts" / "local.csv",
        "sledia,http://example.org/fhir/site/lab,SLEDAI01,exact,,SLEDAI 2K,site lab,local,\n",
    )
    unused = _checked(m, 4, "no criteria file names")
    tail = "its rows reach no criterion"
    assert sorted(unused) == sorted(
        [
            f"error: mappings/concepts/labs.csv:{rows[0] + 1}: column 'concept': no criteria "
            f"file names concept 'ana_titr' (did you mean 'ana_titer'?): {tail}",
            f"error: mappings/concepts/medications.csv:{med}: column 'concept': no criteria "
            f"file names concept 'calcineurin_inhibtor' (did you mean 'calcineurin_inhibitor'?)"
            f": {tail}",
            f"error: mappings/concepts/local.csv:{local}: column 'concept': no criteria file "
            f"names concept 'sledia' (did you mean 'sledai'?): {tail}",
        ]
    )


def test_the_shipped_concepts_give_no_misspelling_warning() -> None:
    """Concepts no criteria file names today (complement_c3, anti_hbc_igm, non_live_vaccine,
    ...) are not near misses of the ones they name."""
    result = CliRunner().invoke(cli, ["mappings", "check"])
    assert result.exit_code == 0 and "no criteria file names" not in result.output


@pytest.mark.usefixtures("in_tmp")
def test_a_misspelt_ingredient_of_a_medication_row_is_a_warning(tmp_path: Path) -> None:
    """A site's own prednisone code mapped with ingredient `predisone`: a 60 mg/day course was
    "in window without a usable dose" (unknown, not fail) as the misspelt ingredient has no
    prednisone factor, and `check` said nothing (products.csv's ingredients were checked,
    medications.csv's not). An ingredient no other file lists and that is no near miss (a new
    drug, ruxolitinib) is fine: it needs no factor."""
    m = _copy(tmp_path)
    n = _append(
        m / "concepts" / "medications.csv",
        "corticosteroid_systemic,predisone,http://example.org/pharmacy,PRED-20,exact,,"
        "PRED 20MG TAB,site pharmacy,local,\n",
    )
    found = _checked(m, 0, "column 'ingredient'")
    assert found == [
        f"warning: mappings/concepts/medications.csv:{n}: column 'ingredient': 'predisone' is "
        "not in medications/ingredients.csv (did you mean 'prednisone'?): its doses have no "
        "prednisone equivalent and RxNorm products of the ingredient meant do not reach this "
        "row's concept"
    ]
    result = CliRunner().invoke(cli, ["mappings", "check"])
    assert "column 'ingredient'" not in result.output


@pytest.mark.usefixtures("in_tmp")
def test_a_local_row_mapping_a_code_of_another_concept_is_a_warning(tmp_path: Path) -> None:
    """A site's row in local.csv that maps LOINC 777-3 (platelets in labs.csv) to `anc`: every
    platelet count became a neutrophil count too (a patient's neutrophils went fail ->
    unknown), and `check` said nothing: conflicts were looked for within one file only."""
    m = _copy(tmp_path)
    n = _append(
        m / "concepts" / "local.csv",
        "anc,http://loinc.org,777-3,exact,,ANC (site lab),site lab,local,\n",
    )
    labs = (m / "concepts" / "labs.csv").read_text(encoding="utf-8").splitlines()
    plt = next(i for i, t in enumerate(labs, 1) if t.startswith("platelets,http://loinc.org,777-3"))
    result = CliRunner().invoke(cli, ["mappings", "check", "--mappings", str(m)])
    assert result.exit_code == 0, result.output
    assert (
        f"warning: mappings/concepts/labs.csv:{plt}: column 'code': http://loinc.org|777-3 is "
        f"mapped to 2 concepts: mappings/concepts/labs.csv:{plt} (platelets); "
        f"mappings/concepts/local.csv:{n} (anc) (intended? list the pair in overlaps.csv; else add "
        "exclude=Y to one of them)"
    ) in result.output.splitlines()


@pytest.mark.usefixtures("in_tmp")
def test_a_row_excluding_a_code_its_concept_maps_is_a_warning(tmp_path: Path) -> None:
    """A researcher copies the SLE row to exclude a drug-induced lupus code and forgets to
    change the code: 55464009 both maps to `sle` and excludes it, the exclude row wins, and the
    sample run screened 4 patients of 73 instead; `check` said nothing (0 warnings)."""
    m = _copy(tmp_path)
    n = _append(
        m / "concepts" / "conditions.csv",
        "sle,http://snomed.info/sct,55464009,exact,Y,Drug-induced lupus,me,Y,\n",
    )
    conditions = (m / "concepts" / "conditions.csv").read_text(encoding="utf-8").splitlines()
    sle = next(
        i for i, t in enumerate(conditions, 1) if t.startswith("sle,http://snomed.info/sct,55464009,")
    )
    result = CliRunner().invoke(cli, ["mappings", "check", "--mappings", str(m)])
    assert result.exit_code == 0, result.output
    assert (
        f"warning: mappings/concepts/conditions.csv:{n}: column 'exclude': "
        f"http://snomed.info/sct|55464009 is excluded from 'sle' and mapped to it on "
        f"mappings/concepts/conditions.csv:{sle}: exclude=Y wins, so no record with it counts as "
        "'sle' (change the code, or remove one of the rows)"
    ) in result.output.splitlines(), result.output


def test_the_shipped_mappings_give_no_conflict_warning() -> None:
    """The nine AIDS-associated cancers of VSAC All Primary and Secondary Cancer (420524008
    Kaposi's sarcoma associated with AIDS) are rows of `hiv` and of `malignancy` by design: no
    warning asking for exclude=Y on one of them. Two other concepts of one code still warn
    (above)."""
    result = CliRunner().invoke(cli, ["mappings", "check"])
    assert result.exit_code == 0, result.output
    assert "is mapped to" not in result.output, result.output


@pytest.mark.usefixtures("in_tmp")
def test_a_pair_left_out_of_overlaps_csv_warns_and_a_bad_row_is_an_error(tmp_path: Path) -> None:
    """The hiv + malignancy pair is data (mappings/overlaps.csv), not code: without its row
    the nine AIDS-associated cancers warn again; a row naming one concept twice, or giving no
    reason, is an error naming the file, line and column."""
    m = _copy(tmp_path)
    overlaps = m / "overlaps.csv"
    overlaps.write_text("concept,also,why\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["mappings", "check", "--mappings", str(m)])
    assert result.exit_code == 0, result.output
    warned = [t for t in result.output.splitlines() if "is mapped to 2 concepts" in t]
    assert len(warned) == 9, result.output
    assert all("(hiv)" in t and "(malignancy)" in t for t in warned)
    overlaps.write_text("concept,also,why\nhiv,hiv,x\nhiv,malignancy,\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["mappings", "check", "--mappings", str(m)])
    assert result.exit_code == 4, result.output
    lines = result.output.splitlines()
    assert (
        "error: mappings/overlaps.csv:2: column 'also': name a concept other than 'concept'"
    ) in lines, result.output
    assert (
        "error: mappings/overlaps.csv:3: column 'why': empty: say why codes of both are by design"
    ) in lines, result.output


def test_overlaps_look_up_no_concept_when_a_concept_file_cannot_be_read(tmp_path: Path) -> None:
    """An unreadable conditions.csv: check's note says the checks against it are skipped, yet
    overlaps.csv warned that `hiv` and `malignancy` had no concept rows."""
    m = _copy(tmp_path)
    path = m / "concepts" / "conditions.csv"
    path.write_bytes(path.read_bytes() + b"sle,http://snomed.info/sct,1,exact,,caf\xe9,x,Y,\n")
    result = CliRunner().invoke(cli, ["mappings", "check", "--mappings", str(m)])
    assert result.exit_code == 4, result.output
    assert "not UTF-8" in result.output, result.output
    assert "overlaps.csv" not in result.output, result.output


@pytest.mark.usefixtures("in_tmp")
def test_a_steroid_code_outside_medications_csv_is_a_warning(tmp_path: Path) -> None:
    """A site's own prednisone code added to local.csv, as mappings/README.md shows for a
    local code: the row has no ingredient, so a 60 mg/day course was "in window without a
    usable dose" (unknown, not fail) and `check` said nothing. A local ianalumab code there
    is fine (no dose is read)."""
    m = _copy(tmp_path)
    n = _append(
        m / "concepts" / "local.csv",
        "corticosteroid_systemic,http://example.org/pharmacy,PRED-20,exact,,PRED 20MG TAB,"
        "site pharmacy,local,\n"
        "ianalumab,http://example.org/pharmacy,IAN-300,exact,,STUDY DRUG,site pharmacy,local,\n",
    )
    found = _checked(m, 0, "no ingredient")
    assert found == [
        f"warning: mappings/concepts/local.csv:{n}: column 'concept': a row of "
        "'corticosteroid_systemic' outside concepts/medications.csv has no ingredient, so its "
        "doses have no prednisone equivalent (high_dose: unknown): add it to "
        "concepts/medications.csv with its ingredient"
    ]


@pytest.mark.usefixtures("in_tmp")
def test_an_alias_on_two_lines_with_two_units_is_an_error_naming_both(tmp_path: Path) -> None:
    """`Thou/cumm` added as 10*3/uL and again, a typo, as /uL: `check` said nothing and the
    last line won, so a platelet count of 248 Thou/cumm was 0.248 x10^3/uL (< 25: fail). An
    alias is looked up as written (spaces around it aside, case counting: the shipped `G/L`,
    10*9/L, and `g/l`, g/L, are two aliases), so that is what is compared; the same alias
    twice with the same unit reads one way and is not reported (as a code twice for one
    concept)."""
    m = _copy(tmp_path)
    n = _append(
        m / "unit_aliases.csv",
        "Thou/cumm,10*3/uL,uci lab\n"
        "Thou/cumm,/uL,uci lab typo\n"
        " Thou/cumm ,10*3/uL,the same again\n"
        "thou/cumm,/uL,another alias (case counts)\n",
    )
    found = _checked(m, 4, "unit_aliases.csv")
    assert found == [
        f"error: mappings/unit_aliases.csv:{n + 1}: column 'alias': 'Thou/cumm' is also on "
        f"line {n} with another unit ('10*3/uL' there, '/uL' here): delete the wrong line"
    ]


CS = "corticosteroid_systemic"


@pytest.mark.usefixtures("in_tmp")
def test_a_name_mapped_to_two_concepts_or_two_ingredients_is_a_warning(tmp_path: Path) -> None:
    """`medrol` added as an antimalarial name: "Medrol" is a methylprednisolone brand
    (corticosteroid_systemic), so every Medrol order was an antimalarial too, and `check` said
    nothing (only codes were compared); a brand name under a second ingredient of its concept
    gave a steroid dose the larger prednisone factor of the two. Names compare as they match
    (any case); one name twice for the same concept and ingredient is not reported. A code
    under two ingredients of its concept is the same warning as such a name."""
    m = _copy(tmp_path)
    meds = m / "concepts" / "medications.csv"
    lines = meds.read_text(encoding="utf-8").splitlines()
    rx = "http://www.nlm.nih.gov/research/umls/rxnorm"
    mp = next(i for i, t in enumerate(lines, 1) if t.startswith(f"{CS},methylprednisolone,{rx},"))
    medrol = next(i for i, t in enumerate(lines, 1) if ",text,Medrol," in t)
    solu = next(i for i, t in enumerate(lines, 1) if ",text,Solu-Medrol," in t)
    n = len(lines) + 1
    with meds.open("a", encoding="utf-8") as fh:
        fh.write(
            "antimalarial,hydroxychloroquine,text,medrol,exact,,x,site,local,\n"
            "corticosteroid_systemic,prednisone,text,SOLU-MEDROL,exact,,x,site,local,\n"
            "antimalarial,hydroxychloroquine,text,PLAQUENIL,exact,,x,site,local,\n"
            f"{CS},prednisone,{rx},6902,exact,,x,site,Y,\n"
        )
    result = CliRunner().invoke(cli, ["mappings", "check", "--mappings", str(m)])
    assert result.exit_code == 0, result.output
    f = "mappings/concepts/medications.csv"
    assert [line for line in result.output.splitlines() if "is mapped to" in line] == [
        f"warning: {f}:{mp}: column 'ingredient': {rx}|6902 is mapped to 2 ingredients of "
        f"'{CS}': {f}:{mp} (methylprednisolone); {f}:{n + 3} (prednisone) (intended, for a "
        "product of both? else correct the ingredient)",
        f"warning: {f}:{medrol}: column 'code': name 'Medrol' is mapped to 2 concepts: "
        f"{f}:{medrol} (corticosteroid_systemic); {f}:{n} (antimalarial) (intended? list the "
        "pair in overlaps.csv; else add exclude=Y to one of them)",
        f"warning: {f}:{solu}: column 'ingredient': name 'Solu-Medrol' is mapped to 2 "
        f"ingredients of 'corticosteroid_systemic': {f}:{solu} (methylprednisolone); "
        f"{f}:{n + 1} (prednisone) (intended, for a product of both? else correct the "
        "ingredient)",
    ]


@pytest.mark.usefixtures("in_tmp")
def test_a_bad_row_is_one_error_and_the_rest_of_its_file_is_read(tmp_path: Path) -> None:
    """`betamethasone,6,67` (a decimal comma) in ingredients.csv: its error was followed by
    154 warnings `products.csv:NN: column 'ingredient': 'budesonide' is not in
    medications/ingredients.csv`, one per product of every ingredient after it (the rest of
    the file was dropped at the bad row); a quote left open in labs.csv dropped the labs after
    it (an `unknown concept` error for each criterion of theirs). The rest of the file is read:
    only the products of the bad row's own ingredient are not found."""
    m = _copy(tmp_path)
    ing = m / "medications" / "ingredients.csv"
    text = ing.read_text(encoding="utf-8")
    bad = text[: text.index("betamethasone,6.67,")].count("\n") + 1
    ing.write_text(text.replace("betamethasone,6.67,", "betamethasone,6,67,"), encoding="utf-8")
    labs = m / "concepts" / "labs.csv"
    text = labs.read_text(encoding="utf-8")
    first = "platelets,http://loinc.org,777-3,exact,,"
    plt = text[: text.index(first)].count("\n") + 1
    labs.write_text(text.replace(first, first + '"', 1), encoding="utf-8")
    products = (m / "medications" / "products.csv").read_text(encoding="utf-8").splitlines()
    beta = [i for i, t in enumerate(products, 1) if ",betamethasone," in t]
    result = CliRunner().invoke(cli, ["mappings", "check", "--mappings", str(m)])
    assert result.exit_code == 4, result.output
    lines = result.output.splitlines()
    assert [line for line in lines if line.startswith("error:")] == [
        f"error: mappings/concepts/labs.csv:{plt}: a double quote opened here is not closed on "
        "its line (a cell cannot run over several lines; close the quote or remove it)",
        f"error: mappings/medications/ingredients.csv:{bad}: 4 cells but 3 columns (a cell "
        'holding a comma must be in double quotes: "a, b"; no extra commas at the end)',
    ]
    warnings = [line for line in lines if line.startswith("warning:")]
    assert [w for w in warnings if "column 'verified'" not in w] == [
        f"warning: mappings/medications/products.csv:{n}: column 'ingredient': 'betamethasone' "
        "is not in medications/ingredients.csv"
        for n in beta
    ]


@pytest.mark.parametrize(
    "file", ["medications/ingredients.csv", "concepts/labs.csv", "systems.csv"]
)
@pytest.mark.usefixtures("in_tmp")
def test_a_file_that_cannot_be_read_is_one_error_and_the_checks_against_it_skipped(
    tmp_path: Path, file: str
) -> None:
    """A mapping file saved in the Windows code page is not read at all: its error was
    followed, for ingredients.csv, by a warning for each of the 165 products ('... is not in
    medications/ingredients.csv'), for labs.csv by an `unknown concept` error for each lab a
    criterion names, for systems.csv by 4,242 warnings `code system ... is not in
    systems.csv`. The checks of other files against it are skipped, with a note saying so."""
    m = _copy(tmp_path)
    path = m / file
    n = len(path.read_text(encoding="utf-8").splitlines()) + 1
    path.write_bytes(path.read_bytes() + b"caf\xe9,,\n")
    result = CliRunner().invoke(cli, ["mappings", "check", "--mappings", str(m)])
    assert result.exit_code == 4, result.output
    lines = result.output.splitlines()
    assert [line for line in lines if line.startswith("error:")] == [
        f"error: mappings/{file}:{n}: not UTF-8 text (byte 0xe9): save it as 'CSV UTF-8' "
        "(Excel: File > Save As > CSV UTF-8 (Comma delimited))"
    ]
    assert [line for line in lines if line.startswith("warning:")] == []
    notes = [line for line in lines if line.startswith("note:")]
    assert [n for n in notes if "column 'verified'" not in n] == [
        f"note: mappings/{file}: not read (its error above): the checks of other files "
        "against it are skipped"
    ]


def test_a_missing_hint_that_no_longer_says_its_rule_is_a_warning(tmp_path: Path) -> None:
    """The platelet window shortened to 30 days and the limit raised to 250: `check` warned
    that the title no longer said the rule, but the `missing_hint` coordinators read in the
    `missing` column ("CBC within 90 days") was not compared. A hint is held to what it
    states: a period, and a threshold where it writes one after a comparison ("SLEDAI-2K >=
    6"); one that names no threshold ("body weight within 12 months") is not asked for one."""
    m = _copy(tmp_path)
    trial = m / "trials" / "sirius-sle-2.toml"
    text = trial.read_text(encoding="utf-8")
    for old, new in [
        ("window_days = 90\nfail_below = 25\n", "window_days = 30\nfail_below = 250\n"),
        ("pass_at_least = 6\n", "pass_at_least = 8\n"),
        ("pass_at_least = 35\n", "pass_at_least = 40\n"),
    ]:
        assert old in text, old
        text = text.replace(old, new, 1)
    trial.write_text(text, encoding="utf-8")
    sledai, plt = _line_of(trial, 'missing_hint = "SLEDAI'), _line_of(trial, 'missing_hint = "CBC')
    tail = "(the hint is shown as written in the `missing` column of candidates.csv and "
    tail += "summary.html: update it with the rule)"

    def hint_warnings() -> list[str]:
        result = CliRunner().invoke(cli, ["mappings", "check", "--mappings", str(m)])
        assert result.exit_code == 0, result.output  # warnings: the run screens with the rule
        return [line for line in result.output.splitlines() if "key 'missing_hint'" in line]

    assert hint_warnings() == [
        f"warning: {trial}:{sledai}: criterion 'sledai': key 'missing_hint': 'SLEDAI-2K >= 6' "
        f"does not mention pass_at_least = 8 {tail}",
        f"warning: {trial}:{plt}: criterion 'platelets': key 'missing_hint': 'CBC within 90 "
        f"days' does not mention window_days = 30 {tail}",
    ]
    text = text.replace('"SLEDAI-2K >= 6"', '"SLEDAI-2K >= 8"')
    text = text.replace('"CBC within 90 days"', '"CBC within 30 days"', 1)
    trial.write_text(text, encoding="utf-8")
    assert hint_warnings() == []


@pytest.mark.usefixtures("in_tmp")
def test_an_alias_repeated_with_an_equivalent_unit_is_a_note_not_an_error(tmp_path: Path) -> None:
    """`K/uL` as 10*9/L beside the shipped `K/uL,10*3/uL` (line 2): 10^9/L = 10^3/uL, so
    neither line is wrong, yet `check` called it an error ("delete the wrong line") and `run`
    stopped. UCUM compares the two units: one of either is one of the other, so it is a note;
    a unit that is another quantity (/uL, a thousandth of it) or that does not convert (mg/dL
    beside mmol/L) stays the error."""
    m = _copy(tmp_path)
    n = _append(
        m / "unit_aliases.csv",
        "K/uL,10*9/L,same unit written per litre\n"
        "K/uL,10*6/mL,and per millilitre\n"
        "K/uL,/uL,a thousandth of it\n"
        "mgdl,mg/dL,a site's spelling\n"
        "mgdl,mmol/L,no conversion without a molar mass\n",
    )
    found = _checked(m, 4, "unit_aliases.csv")
    assert found == [
        f"error: mappings/unit_aliases.csv:{n + 2}: column 'alias': 'K/uL' is also on line 2 "
        "with another unit ('10*3/uL' there, '/uL' here): delete the wrong line",
        f"error: mappings/unit_aliases.csv:{n + 4}: column 'alias': 'mgdl' is also on line "
        f"{n + 3} with another unit ('mg/dL' there, 'mmol/L' here): delete the wrong line",
        f"note: mappings/unit_aliases.csv:{n}: column 'alias': 'K/uL' is also on line 2 as "
        "'10*3/uL', the same unit as '10*9/L' here: either line reads it alike",
        f"note: mappings/unit_aliases.csv:{n + 1}: column 'alias': 'K/uL' is also on line 2 as "
        "'10*3/uL', the same unit as '10*6/mL' here: either line reads it alike",
    ]


def test_a_csv_error_of_a_folder_given_as_dot_names_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cohort mappings check --mappings .` run inside a mappings folder named its CSV files by
    the folder's name, which `.` has not: "/units.csv:19", a file at the root of the disk. A
    file is named from the working folder when under it, else by its absolute path."""
    m = _copy(tmp_path)
    line = _append(m / "units.csv", "egfr,mL/min/{1.73_m2,,0,300,")
    wrong = (
        "column 'unit': UCUM cannot parse 'mL/min/{1.73_m2': write the unit in UCUM (10*3/uL, "
        "[IU]/mL, mg/dL, umol/L; https://ucum.org), or map a lab's spelling to it in "
        "unit_aliases.csv"
    )
    monkeypatch.chdir(m)
    result = CliRunner().invoke(cli, ["mappings", "check", "--mappings", "."])
    assert result.exit_code == 4
    assert f"error: units.csv:{line}: {wrong}" in result.output.splitlines()
    monkeypatch.chdir(m / "concepts")
    result = CliRunner().invoke(cli, ["mappings", "check", "--mappings", ".."])
    assert f"error: {m.resolve()}/units.csv:{line}: {wrong}" in result.output.splitlines()


def test_a_runs_check_of_the_rows_it_loaded_finds_what_reading_them_finds(tmp_path: Path) -> None:
    # A run checks the concept rows its loader has just read (not read a second time): the
    # findings must be those of reading the files. Planted: a system systems.csv does not name
    # (warning), an unverified row (note) and a concept file of a header only (warning)
    from cohort.terminology import Terminology
    from cohort.tools.check import check_mappings

    m = _copy(tmp_path)
    odd = _append(m / "concepts" / "labs.csv", "ana_titer,http://example.org/x,A1,exact,,,t,Y,\n")
    unv = _append(m / "concepts" / "labs.csv", "ana_titer,http://loinc.org,29953-7,exact,,,t,N,\n")
    (m / "concepts" / "site.csv").write_text(
        "concept,system,code,match,exclude,display,source,verified,expand\n", encoding="utf-8"
    )
    rows = Terminology.load(m).rows()
    read = check_mappings(m, "sirius-sle-2", for_run=True).findings
    given = check_mappings(m, "sirius-sle-2", for_run=True, loaded=rows).findings
    assert (given.errors, given.warnings, given.notes) == (read.errors, read.warnings, read.notes)
    labs = "concepts/labs.csv"
    assert given.errors == []
    assert any(f"{labs}:{odd}: column 'system'" in w for w in given.warnings)
    assert any(f"{labs}:" in n and str(unv) in n and "unverified" in n for n in given.notes)
    assert any("site.csv: no rows (only its header)" in w for w in given.warnings)
