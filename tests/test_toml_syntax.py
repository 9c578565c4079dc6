"""A TOML syntax mistake in a criteria file, reading rules or a configuration is said as every
other mapping error is: `file:line:`, the table and key the line is of, and what to write for
the common slips (a decimal comma, a unit after a number, a key given twice, a quote left
open), not tomllib's own words in another shape ("invalid TOML: Expected newline or end of
document after a statement (at line 215, column 16)")."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from researcher_helpers import relative_project

from cohort.cli import cli
from cohort.errors import MappingError
from cohort.tomlsyntax import loads

TRIAL = "mappings/trials/sirius-sle-2.toml"



def _edit(path: Path, old: str, new: str, after: str = "") -> int:
    """Replace the first line `old` (after the line `after`, when given) by `new`; its 1-based
    line number."""
    lines = path.read_text(encoding="utf-8").split("\n")
    start = lines.index(after) if after else 0
    at = lines.index(old, start)
    lines[at] = new
    path.write_text("\n".join(lines), encoding="utf-8")
    return at + 1


def _errors(cfg: Path, out: Path) -> dict[str, tuple[int, str]]:
    """The exit code and the first error line of `run` and of `mappings check`."""
    said = {}
    for command, args in (
        ("run", ["run", "--config", str(cfg), "--out", str(out), "--as-of", "2026-12-01"]),
        ("check", ["mappings", "check", "--config", str(cfg)]),
    ):
        result = CliRunner().invoke(cli, args)
        lines = [
            ln.removeprefix("cohort: error: ").removeprefix("error: ")
            for ln in result.output.splitlines()
            if ln.startswith(("cohort: error: ", "error: "))
        ]
        assert lines, (command, result.output, result.exception)
        said[command] = (result.exit_code, lines[0])
    return said


PLATELETS = 'id = "platelets"'
# the line the shipped platelets limit is on: the "key twice" error names it (the first given)
_SHIPPED = (Path(__file__).resolve().parents[1] / TRIAL).read_text(encoding="utf-8").splitlines()
FAIL_BELOW_LINE = _SHIPPED.index("fail_below = 25") + 1

CRITERIA_CASES = {
    "decimal comma": (
        "fail_below = 25",
        "fail_below = 25,5",
        ["criterion 'platelets'", "key 'fail_below'", "'25,5'", "use a point: 25.5"],
    ),
    "number with a unit": (
        "window_days = 90",
        "window_days = 90 days",
        ["criterion 'platelets'", "key 'window_days'", "'90 days'", "cannot carry a unit"],
    ),
    "key twice": (
        'missing_hint = "CBC within 90 days"',
        'missing_hint = "CBC within 90 days"\nfail_below = 30',
        ["criterion 'platelets'", "key 'fail_below'", "given twice", f"line {FAIL_BELOW_LINE}"],
    ),
    "quote not closed": (
        'title = "Platelets >= 25 x10^3/uL within 90 days"',
        'title = "Platelets >= 25 x10^3/uL within 90 days',
        ["criterion 'platelets'", "key 'title'", "quote", "not closed"],
    ),
    "text without quotes": (
        'kind = "lab_latest"',
        "kind = lab_latest",
        ["criterion 'platelets'", "key 'kind'", 'text in quotes ("lab_latest")'],
    ),
}


@pytest.mark.parametrize("case", CRITERIA_CASES, ids=list(CRITERIA_CASES))
def test_a_criteria_file_syntax_mistake_names_line_criterion_key_and_a_hint(
    in_tmp: Path, case: str
) -> None:
    cfg = relative_project(in_tmp)
    old, new, wanted = CRITERIA_CASES[case]
    line = _edit(in_tmp / TRIAL, old, new, after=PLATELETS)
    if case == "key twice":
        line += 1  # (the second fail_below, on the line added)
    said = _errors(cfg, in_tmp / "out")
    assert said["run"] == said["check"], said
    code, error = said["run"]
    assert code == 4
    assert error.startswith(f"{TRIAL}:{line}: "), error
    for part in wanted:
        assert part in error, (part, error)
    assert "(at line" not in error and "Expected newline" not in error, error


def test_a_quote_not_closed_in_single_quotes_is_found_on_its_own_line(in_tmp: Path) -> None:
    """tomllib says "Expected \"'\" (at end of document)" for a literal string left open:
    the line is the one whose quote is not closed, not the file's last."""
    cfg = relative_project(in_tmp)
    line = _edit(in_tmp / TRIAL, 'missing_hint = "CBC within 90 days"', "missing_hint = 'CBC")
    code, error = _errors(cfg, in_tmp / "out")["run"]
    assert code == 4
    assert error.startswith(f"{TRIAL}:{line}: "), error
    assert "key 'missing_hint'" in error and "not closed" in error, error


def test_a_table_given_twice_names_both_lines(in_tmp: Path) -> None:
    cfg = relative_project(in_tmp)
    path = in_tmp / TRIAL
    text = path.read_text(encoding="utf-8")
    first = text.split("\n").index("[trial]") + 1
    path.write_text(text + '\n[trial]\nid = "again"\n', encoding="utf-8")
    second = len(text.split("\n")) + 1
    code, error = _errors(cfg, in_tmp / "out")["run"]
    assert code == 4
    assert error.startswith(f"{TRIAL}:{second}: [trial]"), error
    assert f"line {first}" in error and "twice" in error, error


def test_any_other_syntax_mistake_keeps_the_shape(in_tmp: Path) -> None:
    cfg = relative_project(in_tmp)
    line = _edit(in_tmp / TRIAL, "[trial]", "[trial")
    code, error = _errors(cfg, in_tmp / "out")["run"]
    assert code == 4
    assert error.startswith(f"{TRIAL}:{line}: invalid TOML: "), error
    assert "(at line" not in error, error


def test_reading_rules_syntax_mistake(in_tmp: Path) -> None:
    cfg = relative_project(in_tmp)
    rules = in_tmp / "mappings" / "rules.toml"
    table, key = _first_key(rules)
    line = _edit(rules, key, key + "\n" + key)
    code, error = _errors(cfg, in_tmp / "out")["run"]
    assert code == 4
    name = key.split("=")[0].strip().strip('"')
    assert error.startswith(f"mappings/rules.toml:{line + 1}: [{table}] key '{name}': "), error
    assert "given twice" in error and f"line {line}" in error, error


def _first_key(path: Path) -> tuple[str, str]:
    """The first table of a TOML file and the first `key = value` line in it."""
    table = ""
    for ln in path.read_text(encoding="utf-8").split("\n"):
        if ln.startswith("[") and not ln.startswith("[["):
            table = ln.strip("[] ")
        elif table and "=" in ln and not ln.lstrip().startswith("#"):
            return table, ln
    raise AssertionError("no key")


CONFIG_CASES = {
    "decimal comma": ("[run]\nmax_snapshot_removal = 0,5\n", "[run] key 'max_snapshot_removal'",
                      "use a point: 0.5"),
    "number with a unit": ("[run]\nchunk_mb = 16 MB\n", "[run] key 'chunk_mb'",
                           "cannot carry a unit"),
    "key twice": ("[run]\nworkers = 2\nworkers = 3\n", "[run] key 'workers'", "given twice"),
    "quote not closed": ('[store]\npath = "store.db\n', "[store] key 'path'", "not closed"),
}  # fmt: skip


@pytest.mark.parametrize("case", CONFIG_CASES, ids=list(CONFIG_CASES))
def test_a_config_syntax_mistake_is_exit_3_with_line_table_key_and_hint(
    in_tmp: Path, case: str
) -> None:
    cfg = relative_project(in_tmp)
    extra, where, hint = CONFIG_CASES[case]
    before = cfg.read_text(encoding="utf-8")
    cfg.write_text(before + "\n" + extra, encoding="utf-8")
    line = len(before.split("\n")) + (2 if case != "key twice" else 3)
    said = _errors(cfg, in_tmp / "out")
    assert said["run"] == said["check"], said
    code, error = said["run"]
    assert code == 3
    assert error.startswith(f"{cfg}:{line}: {where}: "), error
    assert hint in error, error
    assert "(at line" not in error, error


def test_a_config_site_block_is_named_by_its_number(in_tmp: Path) -> None:
    cfg = relative_project(in_tmp)
    before = cfg.read_text(encoding="utf-8")
    cfg.write_text(before + '\n[[sites]]\nid = "amr"\nmin_age = 18 years\n', encoding="utf-8")
    code, error = _errors(cfg, in_tmp / "out")["run"]
    assert code == 3
    line = len(before.split("\n")) + 3
    assert error.startswith(f"{cfg}:{line}: [[sites]] #2 key 'min_age': "), error


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("n = 1,000\n", "f.toml:1: key 'n': '1,000' is not a number: write 1000 (no thousands"),
        ("[t]\nok = True\n", "f.toml:2: [t] key 'ok': 'True' is not true or false: write it in "
         "lower case: true"),
        ("a = 1\nb = '''x\n", "f.toml:2: key 'b': a quote is not closed: end the text with '''"),
        ("a = \"it's\"\nb = 'ok\n", "f.toml:2: key 'b': a quote is not closed"),
        ("[[criteria]]\nid = \"x\"\n[[criteria]]\nn = 2 3\n", "f.toml:4: criterion #2: key 'n': "
         "'2 3' is not one value"),
        ("[[criteria]]\nid = \"t\"\nmin_titer = 1:160\n", "f.toml:3: criterion 't': key "
         "'min_titer': '1:160' is not a number: write the dilution's denominator: min_titer = 160"),
    ],
)  # fmt: skip
def test_syntax_messages(text: str, said: str) -> None:
    with pytest.raises(MappingError) as err:
        loads(text, "f.toml", MappingError)
    assert str(err.value).startswith(said), str(err.value)


def test_a_misspelt_true_or_false_is_told_to_write_it_not_quote_it(in_tmp: Path) -> None:
    """`systemic_only = ture` was told "text is written in quotes: \"ture\"", which is no
    true or false either: a bare word close to one of them is told to write it."""
    cfg = relative_project(in_tmp)
    line = _edit(in_tmp / TRIAL, "systemic_only = true", "systemic_only = ture")
    said = _errors(cfg, in_tmp / "out")
    assert said["run"] == said["check"], said
    code, error = said["run"]
    assert code == 4
    assert f"{TRIAL}:{line}:" in error and "key 'systemic_only'" in error, error
    assert error.endswith("'ture' is not a value: write true or false, no quotes (true?)"), error
