"""`python -m bench ab`: the pure parts (option pass-through, reading run tables, the A/B table)."""

from pathlib import Path

from bench.__main__ import markdown
from bench.ab import GEN_OPTIONS, number, parse_results, parser, passthrough, table


def test_run_options_pass_through_as_given_with_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = parser().parse_args(
        ["--base", "eff27d9", "--rounds", "3", "--scale", "200", "--no-stages", "--scale", "1000",
         "--full-sample", "0", "--folder", "exports/nov", "--as-of", "2026-11-27",
         "--cache", "cache", "--results", "ab.md"]
    )  # fmt: skip
    # ab's own options (--base, --rounds, --results) stay out; defaults are not passed, so a
    # base tree's bench gets only the options asked for; the cache always
    assert passthrough(a) == [
        "--scale", "200", "--scale", "1000", "--folder", str(tmp_path / "exports/nov"),
        "--full-sample", "0", "--as-of", "2026-11-27", "--no-stages",
        "--cache", str(tmp_path / "cache"),
    ]  # fmt: skip
    # the one `bench gen`: the generated populations only
    assert passthrough(a, GEN_OPTIONS) == [
        "--scale", "200", "--scale", "1000", "--cache", str(tmp_path / "cache")
    ]  # fmt: skip


def test_every_population_and_run_option_passes_through():
    a = parser().parse_args(
        ["--base", "x", "--sle-synthea", "2000", "--synthea", "4", "--synthea-bundles", "1",
         "--format", "both", "--pad", "10", "--repeat", "3", "--read-types-only", "--no-rerun",
         "--cache", "/c"]
    )  # fmt: skip
    assert passthrough(a) == [
        "--synthea", "4", "--synthea-bundles", "1", "--sle-synthea", "2000", "--format", "both",
        "--pad", "10", "--repeat", "3", "--read-types-only", "--no-rerun", "--cache", "/c",
    ]  # fmt: skip
    assert parser().parse_args(["--base", "x", "--scale", "1"]).head is None
    assert parser().parse_args(["--base", "x", "--scale", "1"]).rounds == 2


SAMPLE = """
### Run 2026-11-29 11:00

| scale | format | resources | MB | orjson floor s | floor res/s | e2e first s | e2e res/s | ratio e2e/floor | peak RSS MB | rerun s | eval s (run.json) | full validation s (extrapolated) |
|---|---|---|---|---|---|---|---|---|---|---|---|---|
| 500 | ndjson | 1 | 1 | 1 | 1 | 99.9 | 1 | 0.999 | 1 | - | 1 | - |

### Run 2026-11-29 12:05

Machine: 2 cores (AMD EPYC), 23.5 GiB RAM, Python 3.11.7, Linux 6.1

Command: `python -m bench run --scale 10000 --sle-synthea 2000 --read-types-only --repeat 3`

| scale | format | resources | MB | orjson floor s | floor res/s | e2e first s | e2e res/s | ratio e2e/floor | peak RSS MB | rerun s | eval s (run.json) | full validation s (extrapolated) |
|---|---|---|---|---|---|---|---|---|---|---|---|---|
| 10000 (read types only) | ndjson | 660477 | 372 | 1.182 | 558,779 | 9.54 | 69,232 | 0.124 (median; rounds 0.124 / 0.123 / 0.125) | 308.5 | - | 4.319 | - |
| 2000 + Synthea charts (read types only) | ndjson | 482065 | 368 | 1.125 | 428,502 | 4.46 | 108,086 | 0.252 | 192.7 | 5.1 | None | - |

Stages (library pieces called directly in one child, seconds; peak RSS of that child):

| scale | format | load mappings | read/parse | RSS MB |
|---|---|---|---|---|
| 10000 (read types only) | ndjson | 0.31 | 2.2 | 250.1 |
"""


def test_the_last_run_table_is_read_by_column_name():
    rows = parse_results(SAMPLE)
    assert [(r["scale"], r["format"]) for r in rows] == [
        ("10000 (read types only)", "ndjson"),
        ("2000 + Synthea charts (read types only)", "ndjson"),
    ]
    dense, sle = rows
    assert number(dense["ratio e2e/floor"]) == 0.124
    assert number(dense["e2e first s"]) == 9.54
    assert number(dense["eval s (run.json)"]) == 4.319
    assert number(dense["peak RSS MB"]) == 308.5
    assert number(dense["floor res/s"]) == 558779
    assert number(sle["eval s (run.json)"]) is None  # run.json gave no evaluate timing
    assert number(sle["rerun s"]) == 5.1
    assert number("-") is None


def test_the_table_run_writes_reads_back():
    row = {
        "scale": "200",
        "format": "ndjson",
        "floor": {"resources": 1000, "orjson_s": 0.5, "bytes": 2_000_000},
        "e2e": {"first": {"wall_s": 2.0, "maxrss_mb": 150.0, "timings": {"evaluate": 0.8}}},
        "ratios": [0.25, 0.24, 0.26],
    }
    (back,) = parse_results(markdown("python -m bench run --scale 200", [row]))
    assert (back["scale"], back["format"]) == ("200", "ndjson")
    # ratio = (1000 / 2.0) / (1000 / 0.5)
    assert number(back["ratio e2e/floor"]) == 0.25
    assert number(back["e2e first s"]) == 2.0
    assert number(back["eval s (run.json)"]) == 0.8
    assert number(back["peak RSS MB"]) == 150.0


def _row(scale: str, ratio: str, e2e: str, ev: str, rss: str) -> dict[str, str]:
    return {"scale": scale, "format": "ndjson", "ratio e2e/floor": ratio, "e2e first s": e2e,
            "eval s (run.json)": ev, "peak RSS MB": rss}  # fmt: skip


def test_medians_over_rounds_and_head_change_in_percent():
    base_runs = [
        [_row("10000", "0.120 (median; rounds 0.120 / 0.119)", "10.0", "4.0", "300.0")],
        [_row("10000", "0.130", "11.0", "4.2", "302.0")],
    ]
    head_runs = [
        [_row("10000", "0.100", "12.0", "5.0", "310.2"), _row("new", "0.3", "1.0", "0.5", "90")],
        [_row("10000", "0.110", "13.0", "None", "311.8")],
    ]
    lines = table("eff27d9", "28b081f", base_runs, head_runs).splitlines()
    assert lines[0] == (
        "| scale | format | ratio e2e/floor eff27d9 | ratio e2e/floor 28b081f | ratio change | "
        "e2e first s eff27d9 | e2e first s 28b081f | e2e change | eval s (run.json) eff27d9 | "
        "eval s (run.json) 28b081f | peak RSS MB eff27d9 | peak RSS MB 28b081f |"
    )
    assert lines[1] == "|---" * 12 + "|"
    # ratio 0.125 -> 0.105: 0.105 / 0.125 - 1 = -16%; e2e 10.5 -> 12.5: 12.5 / 10.5 - 1 = +19.05%;
    # evaluate: head's one known round; RSS 301 -> 311
    assert lines[2] == (
        "| 10000 | ndjson | 0.125 (0.120 / 0.130) | 0.105 (0.100 / 0.110) | -16.0% | "
        "10.50 (10.00 / 11.00) | 12.50 (12.00 / 13.00) | +19.0% | 4.10 | 5.00 | 301 | 311 |"
    )
    # a population only head ran (in one round of two): nothing to compare
    assert lines[3] == (
        "| new | ndjson | - | 0.300 (0.300 / -) | - | - | 1.00 (1.00 / -) | - | - | 0.50 | - | 90 |"
    )
    assert len(lines) == 4


def test_one_round_lists_no_rounds():
    (line,) = table("a", "b", [[_row("200", "0.2", "2.0", "1.0", "100")]],
                    [[_row("200", "0.25", "1.6", "0.8", "100")]]).splitlines()[2:]  # fmt: skip
    assert line == "| 200 | ndjson | 0.200 | 0.250 | +25.0% | 2.00 | 1.60 | -20.0% | 1.00 | 0.80 | 100 | 100 |"


def test_paths_keep_their_meaning(tmp_path):
    # an absolute --folder or --cache passes as it is
    a = parser().parse_args(["--base", "x", "--folder", str(tmp_path), "--cache", str(tmp_path)])
    assert passthrough(a) == ["--folder", str(tmp_path), "--cache", str(tmp_path)]
    assert isinstance(a.folder[0], Path)


def test_two_folders_of_one_name_get_their_own_row_and_work_folder(tmp_path: Path) -> None:
    from bench.__main__ import folder_slots

    nov, old_nov, dec = (tmp_path / "exports/nov", tmp_path / "backup/nov", tmp_path / "dec")
    slots = folder_slots([nov, old_nov, dec])
    assert [f for f, _, _ in slots] == [nov.resolve(), old_nov.resolve(), dec.resolve()]
    labels = [label for _, label, _ in slots]
    assert labels == [str(nov.resolve()), str(old_nov.resolve()), "dec"]
    works = [slot for _, _, slot in slots]
    assert works[2] == "folder-dec"
    assert works[0] != works[1] and all(w.startswith("folder-nov-") for w in works[:2])
