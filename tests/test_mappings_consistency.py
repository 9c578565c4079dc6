"""`cohort run` refuses what `cohort mappings check` calls an error, with the same located line.

Each case breaks one line of a copy of the shipped mappings. `mappings check` reports it as an
error and `run` (the sample sites, that copy) stops with exit 4 and that very message as its one
error line, leaving the previous run's outputs as they were. Warnings stay warnings for both.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from cohort.cli import cli
from cohort.errors import MappingError
from cohort.terminology import Terminology

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_bundles"
AS_OF = "2026-11-25"


def edit_line(path: Path, line: int, old: str, new: str) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    assert old in lines[line - 1], lines[line - 1]
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    path.write_text("".join(lines), encoding="utf-8")


def append_line(path: Path, text: str) -> int:
    """Add a line at the end of a CSV; its line number."""
    body = path.read_text(encoding="utf-8")
    path.write_text(body + ("" if body.endswith("\n") else "\n") + text + "\n", encoding="utf-8")
    return len(path.read_text(encoding="utf-8").splitlines())


# (case id, how to break a copy of mappings/ -> the located message both must give)
Breaker = Callable[[Path], str]


def _unit(m: Path) -> str:
    edit_line(m / "units.csv", 2, "platelets,10*3/uL,", "platelets,10*3/µL,")  # µ is not UCUM
    return (
        "mappings/units.csv:2: column 'unit': UCUM cannot parse '10*3/µL': unit_aliases.csv "
        "reads it as 10*3/uL: write 10*3/uL"
    )


def _alias_ucum(m: Path) -> str:
    edit_line(m / "unit_aliases.csv", 2, "K/uL,10*3/uL,", "K/uL,x10E3/uL,")
    return (
        "mappings/unit_aliases.csv:2: column 'ucum': UCUM cannot parse 'x10E3/uL': "
        "unit_aliases.csv reads it as 10*3/uL: write 10*3/uL"
    )


def _alias_twice(m: Path) -> str:
    """One alias on two lines with two units: the later line won, without a word."""
    first = append_line(m / "unit_aliases.csv", "Thou/cumm,10*3/uL,uci lab")
    n = append_line(m / "unit_aliases.csv", "Thou/cumm,/uL,uci lab typo")
    return (
        f"mappings/unit_aliases.csv:{n}: column 'alias': 'Thou/cumm' is also on line {first} "
        "with another unit ('10*3/uL' there, '/uL' here): delete the wrong line"
    )


def _overlap_pair_twice(m: Path) -> str:
    """overlaps.csv was read by `mappings check` only: its errors let `run` go on."""
    n = append_line(m / "overlaps.csv", "hiv,hiv,a pair of one concept")
    return f"mappings/overlaps.csv:{n}: column 'also': name a concept other than 'concept'"


def _system_alias_empty(m: Path) -> str:
    n = append_line(m / "systems.csv", "http://loinc.org,,an alias left out,test")
    return f"mappings/systems.csv:{n}: column 'alias': empty"


def _system_canonical_empty(m: Path) -> str:
    n = append_line(m / "systems.csv", ",LNC,a canonical left out,test")
    return f"mappings/systems.csv:{n}: column 'canonical': empty"


def _concept_system_name_misspelt(m: Path) -> str:
    edit_line(m / "concepts" / "labs.csv", 2, "ana_titer,http://loinc.org,", "ana_titer,LONC,")
    return (
        "mappings/concepts/labs.csv:2: column 'system': unknown code system 'LONC' "
        "(did you mean 'http://loinc.org'?)"
    )


def _concept_system_uri_misspelt(m: Path) -> str:
    edit_line(m / "concepts" / "labs.csv", 2, ",http://loinc.org,", ",http://lonic.org,")
    return (
        "mappings/concepts/labs.csv:2: column 'system': unknown code system 'http://lonic.org' "
        "(did you mean 'http://loinc.org'?)"
    )


def _concept_match_kind(m: Path) -> str:
    """`run` refused this before, but without check's hint: now one message for both."""
    edit_line(m / "concepts" / "labs.csv", 12, ",exact,", ",prefx,")
    return (
        "mappings/concepts/labs.csv:12: column 'match': unknown match kind 'prefx' "
        "(one of exact, prefix, range, glob) (did you mean 'prefix'?)"
    )


def _concept_loinc_check_digit(m: Path) -> str:
    edit_line(m / "concepts" / "labs.csv", 2, ",5048-4,", ",5048-5,")
    return (
        "mappings/concepts/labs.csv:2: column 'code': LOINC '5048-5' has a wrong check digit "
        "(expected 5048-4)"
    )


def _concept_icd_prefix_shape(m: Path) -> str:
    edit_line(m / "concepts" / "conditions.csv", 10, ",M32.1,prefix,", ",M32-1,prefix,")
    return (
        "mappings/concepts/conditions.csv:10: column 'code': 'M32-1' is not shaped like an "
        "ICD-10-CM code (e.g. M32.14)"
    )


def _unverified_row_bad_code(m: Path) -> str:
    """A verified=N row is not used by the run, but check calls its bad code an error."""
    row = "platelets,http://loinc.org,777-4,exact,,bad check digit,test,N,"
    n = append_line(m / "concepts" / "labs.csv", row)
    return (
        f"mappings/concepts/labs.csv:{n}: column 'code': LOINC '777-4' has a wrong check digit "
        "(expected 777-3)"
    )


def _value_system_misspelt(m: Path) -> str:
    edit_line(m / "values.csv", 46, "code,http://loinc.org,", "code,http://lonic.org,")
    return (
        "mappings/values.csv:46: column 'system': unknown code system 'http://lonic.org' "
        "(did you mean 'http://loinc.org'?)"
    )


def _value_code_malformed(m: Path) -> str:
    edit_line(m / "values.csv", 46, ",LA6576-8,", ",LA6576,")
    return "mappings/values.csv:46: column 'code': 'LA6576' is not a LOINC code (NNNNN-N)"


def _product_rxcui(m: Path) -> str:
    edit_line(m / "medications" / "products.csv", 2, "1145929,", "1145929a,")
    return "mappings/medications/products.csv:2: column 'rxcui': RxCUI '1145929a' is not numeric"


def _ingredient_factor_nan(m: Path) -> str:
    """Accepted before (`NA` was refused, `NaN` read as a float): a 60 mg/day prednisone dose
    was NaN mg, never above the limit, and `washout_high_dose_cs` passed."""
    edit_line(m / "medications" / "ingredients.csv", 34, "prednisone,1,", "prednisone,NaN,")
    return (
        "mappings/medications/ingredients.csv:34: column 'prednisone_factor': expected a finite "
        "number, got 'NaN'"
    )


def _trial_number_nan(m: Path) -> str:
    """Accepted before: a platelet count of 20 passed `fail_below = nan`."""
    path = m / "trials" / "sirius-sle-2.toml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("fail_below = 25", "fail_below = nan", 1), encoding="utf-8")
    line = text[: text.index("fail_below = 25")].count("\n") + 1
    # (named from the working folder, as the CSVs are: the test runs in tmp_path)
    return (
        f"mappings/trials/sirius-sle-2.toml:{line}: criterion 'platelets': key 'fail_below': "
        "expected a finite number, got nan"
    )


def _trial_concept_of_other_records(m: Path) -> str:
    """Accepted before: plasmapheresis as a washout's medication concept matched no record."""
    path = m / "trials" / "sirius-sle-2.toml"
    text = path.read_text(encoding="utf-8")
    old = '"baff_other"]\nprocedures = ["plasmapheresis"]'
    path.write_text(text.replace(old, '"baff_other", "plasmapheresis"]', 1), encoding="utf-8")
    line = text[: text.index(old)].count("\n") + 1
    return (
        f"mappings/trials/sirius-sle-2.toml:{line}: criterion 'washout_24wk': key 'concepts': "
        "concept 'plasmapheresis' is "
        "mapped for Procedure records only (procedures.csv), but 'concepts' of kind 'washout' "
        "reads medication records (did you mean 'procedures'?)"
    )


CASES: dict[str, Breaker] = {
    "unit-not-ucum": _unit,
    "unit-alias-not-ucum": _alias_ucum,
    "unit-alias-twice": _alias_twice,
    "overlap-pair-twice": _overlap_pair_twice,
    "system-alias-empty": _system_alias_empty,
    "system-canonical-empty": _system_canonical_empty,
    "concept-system-name-misspelt": _concept_system_name_misspelt,
    "concept-system-uri-misspelt": _concept_system_uri_misspelt,
    "concept-match-kind": _concept_match_kind,
    "concept-loinc-check-digit": _concept_loinc_check_digit,
    "concept-icd-prefix-shape": _concept_icd_prefix_shape,
    "unverified-row-bad-code": _unverified_row_bad_code,
    "value-system-misspelt": _value_system_misspelt,
    "value-code-malformed": _value_code_malformed,
    "product-rxcui": _product_rxcui,
    "ingredient-factor-nan": _ingredient_factor_nan,
    "trial-number-nan": _trial_number_nan,
    "trial-concept-of-other-records": _trial_concept_of_other_records,
}


def _config(folder: Path, mappings: Path, workers: int = 0) -> Path:
    """The shipped sample configuration (both sample sites), reading `mappings`."""
    sites = "".join(
        f'[[sites]]\nid = "{sid}"\nname = "{sid}"\nsource = "{SAMPLES / sid}"\n'
        for sid in ("uci", "amr")
    )
    run = f"[run]\nworkers = {workers}\n" if workers else ""
    cfg = folder / "site.toml"
    cfg.write_text(f'[trial]\nid = "sirius-sle-2"\nmappings = "{mappings}"\n{run}{sites}')
    return cfg


def _run(cfg: Path, out: Path) -> tuple[int, str]:
    result = CliRunner().invoke(
        cli,
        ["--log-level", "error", "run", "--config", str(cfg), "--as-of", AS_OF, "--out", str(out)],
    )
    return result.exit_code, result.output


def _errors(output: str) -> list[str]:
    return [ln for ln in output.splitlines() if ln.startswith("cohort: error:")]


@pytest.fixture(scope="module")
def good_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A successful run of the shipped mappings: the outputs a failed run must leave alone."""
    folder = tmp_path_factory.mktemp("good")
    code, output = _run(_config(folder, ROOT / "mappings"), folder / "out")
    assert code == 0, output
    return folder / "out"


def _outputs(out: Path) -> dict[str, bytes]:
    return {
        f"{p.parent.name}/{p.name}": p.read_bytes()
        for site in ("uci", "amr")
        for p in sorted((out / site).iterdir())
    }


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.usefixtures("in_tmp")
def test_check_error_stops_run_with_the_same_message(
    case: str, tmp_path: Path, good_out: Path
) -> None:
    mappings = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", mappings)
    expected = CASES[case](mappings)

    checked = CliRunner().invoke(cli, ["mappings", "check", "--mappings", str(mappings)])
    assert checked.exit_code == 4, checked.output
    assert f"error: {expected}" in checked.output.splitlines()

    out = tmp_path / "out"
    shutil.copytree(good_out, out)
    before = _outputs(out)
    code, output = _run(_config(tmp_path, mappings), out)
    assert code == MappingError.exit_code == 4, output
    assert _errors(output) == [f"cohort: error: {expected}"]
    assert _outputs(out) == before, "a failed run replaced the previous outputs"
    report = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert report["status"] == "failed" and report["error"] == expected
    assert report["previous_outputs_kept"] is True


@pytest.mark.usefixtures("in_tmp")
def test_check_lists_every_rule_of_the_loader_at_once(tmp_path: Path) -> None:
    """The loader's own line rules (result words, Y/N flags, bounds, empty cells) are check's
    too: listed with the other errors, not only once everything else is fixed."""
    mappings = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", mappings)
    expected = [_unit(mappings), _concept_loinc_check_digit(mappings)]
    edit_line(mappings / "values.csv", 2, ",positive,", ",posit,")
    edit_line(mappings / "medications" / "products.csv", 2, ",Y,", ",yes,")
    edit_line(mappings / "unit_aliases.csv", 3, "k/uL,", ",")
    edit_line(mappings / "units.csv", 3, "anc,10*3/uL,,0,", "anc,10*3/uL,,low,")
    expected += [
        "mappings/values.csv:2: column 'result': 'posit' is not one of positive, negative, "
        "indeterminate",
        "mappings/medications/products.csv:2: column 'systemic': 'yes' is not Y or N (either case)",
        "mappings/unit_aliases.csv:3: column 'alias': empty",
        "mappings/units.csv:3: column 'plausible_min': 'low' is not a number",
    ]
    checked = CliRunner().invoke(cli, ["mappings", "check", "--mappings", str(mappings)])
    assert checked.exit_code == 4, checked.output
    listed = [ln.removeprefix("error: ") for ln in checked.output.splitlines()]
    assert [e for e in expected if e not in listed] == []


@pytest.mark.usefixtures("in_tmp")
def test_unit_error_after_a_parallel_read(tmp_path: Path) -> None:
    """With reading processes the UCUM registry is built while they parse: the unit is checked
    after the read, before evaluation; nothing is written but run.json."""
    mappings = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", mappings)
    expected = _unit(mappings)
    out = tmp_path / "out"
    code, output = _run(_config(tmp_path, mappings, workers=2), out)
    assert code == 4, output
    assert _errors(output) == [f"cohort: error: {expected}"]
    assert sorted(p.name for p in out.iterdir()) == [".cohort", ".outputs.lock", "run.json"]
    report = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert report["sites"]["uci"]["workers"] == 2  # the read itself completed, in parallel
    shutil.copy(ROOT / "mappings" / "units.csv", mappings / "units.csv")  # fixed: runs again
    code, output = _run(_config(tmp_path, mappings, workers=2), out)
    assert code == 0, output
    assert json.loads((out / "run.json").read_text(encoding="utf-8"))["status"] == "success"


@pytest.mark.usefixtures("in_tmp")
def test_loading_does_not_build_the_ucum_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loading stays cheap (~0.25 s of registry is left to where a run builds it anyway); the
    unit check is `check_units`, which raises what `mappings check` reports."""
    import cohort.terminology.units as units

    mappings = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", mappings)
    expected = _unit(mappings)

    def no_ucum(unit: str) -> None:
        raise AssertionError(f"loading asked UCUM about {unit!r}")

    with monkeypatch.context() as patched:
        patched.setattr(units, "parse_ucum", no_ucum)
        term = Terminology.load(mappings)
    with pytest.raises(MappingError) as err:
        term.check_units()
    assert str(err.value) == expected
    Terminology.load(ROOT / "mappings").check_units()  # the shipped units all parse


@pytest.mark.parametrize(
    ("system", "verified", "warned"),
    [
        ("LOINC", "Y", False),  # a name systems.csv lists as an alias of http://loinc.org
        ("LNC", "Y", True),  # not listed, no near miss: a site's own system, maybe
        ("http://example.org/site-x/lab", "local", False),  # a site's own, marked so
    ],
)
@pytest.mark.usefixtures("in_tmp")
def test_warnings_and_listed_names_do_not_stop_a_run(
    system: str, verified: str, warned: bool, tmp_path: Path, good_out: Path
) -> None:
    mappings = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", mappings)
    row = f"platelets,{system},26515-7,exact,,Platelets,test,{verified},"
    n = append_line(mappings / "concepts" / "local.csv", row)
    checked = CliRunner().invoke(cli, ["mappings", "check", "--mappings", str(mappings)])
    assert checked.exit_code == 0, checked.output
    note = f"warning: mappings/concepts/local.csv:{n}: column 'system': code system '{system}'"
    assert any(ln.startswith(note) for ln in checked.output.splitlines()) is warned
    code, output = _run(_config(tmp_path, mappings), tmp_path / "out")
    assert code == 0, output


def test_an_alias_repeated_with_an_equivalent_unit_loads(tmp_path: Path) -> None:
    """`K/uL` as 10*9/L beside the shipped `K/uL,10*3/uL`: the same unit, so `run` loads the
    mappings (it stopped on "delete the wrong line") and reads K/uL as before; UCUM is asked
    about such a pair only (the shipped files load without it: above)."""
    from cohort.model import Quantity

    mappings = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", mappings)
    append_line(mappings / "unit_aliases.csv", "K/uL,10*9/L,same unit written per litre")
    term = Terminology.load(mappings)
    assert term.convert(Quantity(248, "K/uL"), "platelets") == 248
    append_line(mappings / "unit_aliases.csv", "K/uL,/uL,a thousandth of it")
    with pytest.raises(MappingError, match="'K/uL' is also on line 2 with another unit"):
        Terminology.load(mappings)
