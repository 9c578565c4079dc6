"""Process-level reliability: SIGKILL at random points, the run lock, failed runs keep outputs.

The kill test runs `python -m cohort run` on a generated population in a subprocess, kills it at
six seeded random moments spread over an undisturbed run's duration, and after each kill runs
again: the outputs must equal an undisturbed run's and the store must be consistent.
"""

from __future__ import annotations

import errno
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest
from test_reliability_support import (
    AS_OF,
    OUTPUTS,
    REPO,
    SAMPLES,
    Scenarios,
    copy_site,
    outputs,
    report_at_end,
    store_problems,
    write_config,
)

from cohort.config import load_config
from cohort.errors import CohortError, OutputError
from cohort.runner import run

RUNS = Scenarios("process kills and run safety")
KILLS = 6
SEED = 20261125


@pytest.fixture(autouse=True, scope="module")
def _summary(request: pytest.FixtureRequest) -> None:
    report_at_end(request, RUNS)


def cohort_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "cohort", *args]


def start(cfg: Path, out: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cohort_cmd("run", "--config", str(cfg), "--as-of", AS_OF, "--out", str(out), *extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )


def run_cli(cfg: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cohort_cmd("run", "--config", str(cfg), "--as-of", AS_OF, "--out", str(out), *extra),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated 300-patient NDJSON site plus a Bundle site (enough work for kills to land)."""
    root = tmp_path_factory.mktemp("population")
    subprocess.run(
        cohort_cmd("sample", "--out", str(root / "gen"), "--patients", "300", "--format",
                   "ndjson", "--site", "gen"),
        check=True, capture_output=True, cwd=REPO,
    )  # fmt: skip
    return write_config(root, {"gen": str(root / "gen"), "uci": str(SAMPLES / "uci")},
                        run={"batch_size": 50})  # fmt: skip


SITES = ("gen", "uci")


def test_sigkill_at_random_points_then_clean_run(tmp_path: Path, population: Path) -> None:
    # Undisturbed: a first and a second run (the second sees the first's tiers: change column).
    base_out = tmp_path / "baseline"
    t0 = time.monotonic()
    assert run_cli(population, base_out).returncode == 0
    duration = time.monotonic() - t0
    first = outputs(base_out, SITES)
    assert run_cli(population, base_out).returncode == 0
    second = outputs(base_out, SITES)

    rng = random.Random(SEED)
    # spread over the run: one point in each sixth of its duration, jittered (seeded)
    points = [duration * (i + rng.random()) / KILLS for i in range(KILLS)]
    for i, point in enumerate(points):
        with RUNS.scenario(f"SIGKILL at {point:.2f}s"):
            out = tmp_path / f"kill{i}"
            at = _kill_while_running(population, out, point)
            assert not store_problems_if_any(out)
            # Whatever the kill left visible is a whole file of the undisturbed first run.
            for key, data in outputs(out, SITES).items():
                assert data in (b"<missing>", first[key]), f"partial {key} after kill at {at:.2f}s"
            had = {s: (out / s / "candidates.csv").exists() for s in SITES}
            done = run_cli(population, out)
            assert done.returncode == 0, done.stderr[-2000:]
            after = outputs(out, SITES)
            for site in SITES:
                want = second if had[site] else first
                for f in OUTPUTS:
                    key = f"{site}/{f}"
                    assert after[key] == want[key], f"{key} differs after kill at {at:.2f}s"
            assert not store_problems(out / ".cohort" / "store.sqlite")
            report = json.loads((out / "run.json").read_text(encoding="utf-8"))
            assert report["status"] == "success"


def _kill_while_running(cfg: Path, out: Path, at: float) -> float:
    """SIGKILL a run into `out` `at` seconds after its start; when it had finished by then (a
    machine less loaded than for the undisturbed run, which set `at`), again into a fresh `out`,
    twice as early. The moment the kill landed."""
    for _ in range(10):
        proc = start(cfg, out)
        time.sleep(at)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        if proc.returncode == -signal.SIGKILL:  # (not 0: it was still running)
            return at
        assert proc.returncode == 0, f"the run failed before the kill at {at:.2f}s"
        shutil.rmtree(out)
        at /= 2
    raise AssertionError(f"every run finished before its kill (last at {at:.2f}s)")


def store_problems_if_any(out: Path) -> list[str]:
    store = out / ".cohort" / "store.sqlite"
    return store_problems(store) if store.exists() else []


# ---- failed runs keep the previous good outputs ------------------------------------------------


def _good_run(tmp_path: Path, mappings: Path | None = None) -> tuple[Path, Path, dict[Path, bytes]]:
    cfg = write_config(
        tmp_path, {"uci": str(SAMPLES / "uci"), "amr": str(SAMPLES / "amr")}, mappings=mappings
    )
    out = tmp_path / "out"
    assert run_cli(cfg, out).returncode == 0
    kept = {p: p.read_bytes() for s in ("uci", "amr") for p in (out / s).iterdir()}
    return cfg, out, kept


def _failed(out: Path, kept: dict[Path, bytes], code: int, res: subprocess.CompletedProcess[str],
            reason: str) -> None:  # fmt: skip
    assert res.returncode == code, (res.returncode, res.stderr[-1500:])
    assert res.stderr.count("cohort: error:") == 1
    for p, data in kept.items():
        assert p.read_bytes() == data, f"{p.name} of {p.parent.name} changed by a failed run"
    report = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert report["status"] == "failed"
    assert reason in report["error"]
    assert report["previous_outputs_kept"] is True


def test_broken_mapping_file_keeps_outputs(tmp_path: Path) -> None:
    with RUNS.scenario("mapping file broken"):
        mappings = tmp_path / "mappings"
        shutil.copytree(REPO / "mappings", mappings)
        cfg, out, kept = _good_run(tmp_path, mappings)
        (mappings / "rules.toml").write_text("[drop_status\nbroken = ", encoding="utf-8")
        _failed(out, kept, 4, run_cli(cfg, out), "rules.toml")


def test_missing_source_keeps_outputs(tmp_path: Path) -> None:
    with RUNS.scenario("source missing"):
        src = tmp_path / "amr-copy"
        shutil.copytree(SAMPLES / "amr", src)
        cfg = write_config(tmp_path, {"uci": str(SAMPLES / "uci"), "amr": str(src)})
        out = tmp_path / "out"
        assert run_cli(cfg, out).returncode == 0
        kept = {p: p.read_bytes() for s in ("uci", "amr") for p in (out / s).iterdir()}
        shutil.rmtree(src)
        _failed(out, kept, 5, run_cli(cfg, out), "not found")


def test_output_folder_not_writable_keeps_outputs(tmp_path: Path) -> None:
    """OUT/amr cannot be written (here: a file is in its way; root ignores chmod)."""
    with RUNS.scenario("output folder unwritable"):
        cfg, out, kept = _good_run(tmp_path)
        kept = {p: d for p, d in kept.items() if p.parent.name == "uci"}
        shutil.rmtree(out / "amr")
        (out / "amr").write_text("in the way")
        _failed(out, kept, 9, run_cli(cfg, out), "cannot write")


def test_disk_full_while_writing_keeps_every_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills up at the 4th output file: none of the previous outputs is replaced."""
    with RUNS.scenario("disk full mid-output"):
        cfg_path, out, kept = _good_run(tmp_path)
        import cohort.atomic as files

        real_write = os.write
        calls = {"n": 0}

        def full(fd: int, data: bytes) -> int:
            calls["n"] += 1
            if calls["n"] == 4:  # then space is freed again: run.json can say what happened
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_write(fd, data)

        monkeypatch.setattr(files.os, "write", full)
        with pytest.raises(OutputError):
            run(load_config(cfg_path), date.fromisoformat("2026-12-01"), out)
        monkeypatch.undo()
        for p, data in kept.items():
            assert p.read_bytes() == data, f"{p.parent.name}/{p.name} replaced by a failed run"
        assert not [p for p in out.rglob(".*.tmp")], "temporary files left behind"
        report = json.loads((out / "run.json").read_text(encoding="utf-8"))
        assert report["status"] == "failed" and "No space left" in report["error"]


def test_failed_run_reason_has_documented_exit_codes() -> None:
    """README documents every exit code the CLI uses, with the same meaning."""
    from cohort.errors import EXIT_CODES

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for code in EXIT_CODES:
        assert f"| {code} |" in readme
    assert issubclass(OutputError, CohortError) and OutputError.exit_code == 9


def test_folder_in_an_output_files_place_keeps_every_output(tmp_path: Path) -> None:
    """A folder where amr's candidates.csv goes: exit 9 naming that file (it named only the
    output folder), and no output of either site replaced (uci's were, before the failure)."""
    with RUNS.scenario("folder in an output file's place"):
        cfg, out, kept = _good_run(tmp_path)
        (out / "amr" / "candidates.csv").unlink()
        (out / "amr" / "candidates.csv").mkdir()
        kept = {p: d for p, d in kept.items() if p.name != "candidates.csv" or p.parent.name != "amr"}
        inodes = {p: p.stat().st_ino for p in kept}  # (a rerun writes the same bytes)
        res = run_cli(cfg, out)
        _failed(out, kept, 9, res, f"cannot write {out / 'amr' / 'candidates.csv'}: Is a directory")
        assert {p: p.stat().st_ino for p in kept} == inodes
        assert not [p for p in (out / "amr").iterdir() if p.name.startswith(".")]


def _stored(out: Path) -> int:
    with sqlite3.connect(out / ".cohort" / "store.sqlite") as db:
        return int(db.execute("SELECT COUNT(*) FROM resources").fetchone()[0])


def test_snapshot_read_drops_only_what_the_export_no_longer_holds(tmp_path: Path) -> None:
    """A record gone from the export is dropped (a snapshot); an export folder emptied, or
    arrived in part, is refused (exit 5): it emptied the store and the candidate lists, exit 0."""
    with RUNS.scenario("export emptied or arrived in part"):
        src = copy_site("amr", tmp_path / "feed")
        cfg = write_config(tmp_path, {"amr": str(src)})
        out = tmp_path / "out"
        assert run_cli(cfg, out).returncode == 0
        lines = (src / "Condition.ndjson").read_bytes().splitlines(keepends=True)
        (src / "Condition.ndjson").write_bytes(b"".join(lines[1:]))
        assert run_cli(cfg, out).returncode == 0
        report = json.loads((out / "run.json").read_text(encoding="utf-8"))
        assert report["sites"]["amr"]["stored"]["removed"] == 1
        kept = {p: p.read_bytes() for p in (out / "amr").iterdir()}
        before = _stored(out)
        whole = {p.name: p.read_bytes() for p in src.iterdir()}
        for name in whole:
            (src / name).unlink()
        res = run_cli(cfg, out)
        _failed(out, kept, 5, res, "an incomplete export?")
        assert "lacks" in res.stderr and _stored(out) == before
        (src / "Patient.ndjson").write_bytes(whole["Patient.ndjson"])  # the first file arrives
        _failed(out, kept, 5, run_cli(cfg, out), "Condition records read from it before")
        assert _stored(out) == before
        for name, data in whole.items():  # the rest of the export arrives
            (src / name).write_bytes(data)
        assert run_cli(cfg, out).returncode == 0
        # the same outputs, but for summary.html's "changes since the last run": the kept page
        # compared with the run before it (1 patient no longer screened), this one with the
        # kept run (no change)
        assert {p: _no_changes(p.read_bytes()) for p in kept} == {
            p: _no_changes(b) for p, b in kept.items()
        }


def _no_changes(page: bytes) -> bytes:
    page = re.sub(rb'<section id="changes">.*?</section>', b"", page, flags=re.S)
    return re.sub(rb'<b id="produced">[^<]*</b>', b"", page)  # (the run's time)


def test_max_snapshot_removal_of_1_accepts_an_empty_export_with_a_warning(tmp_path: Path) -> None:
    with RUNS.scenario("empty export accepted by configuration"):
        src = copy_site("amr", tmp_path / "feed")
        cfg = write_config(tmp_path, {"amr": str(src)}, run={"max_snapshot_removal": 1})
        out = tmp_path / "out"
        assert run_cli(cfg, out).returncode == 0
        for p in src.iterdir():
            p.unlink()
        assert run_cli(cfg, out).returncode == 0
        report = json.loads((out / "run.json").read_text(encoding="utf-8"))
        assert report["sites"]["amr"]["screened"] == 0 and _stored(out) == 0
        assert report["warnings"] == [f"amr: no FHIR records read from {src} (0 data file(s))"]
        bad = write_config(tmp_path, {"amr": str(src)}, run={"max_snapshot_removal": 1.5})
        res = run_cli(bad, out)
        assert res.returncode == 3 and "max_snapshot_removal" in res.stderr


def test_a_mapping_change_that_unmaps_most_stored_records_is_not_refused(tmp_path: Path) -> None:
    """Found by review: a researcher unmapping the labs (here: every labs.csv row unverified)
    turned most stored Observations into summarised ones; the snapshot guard counted them as
    gone from the export and refused every night (exit 5, "rerun once it is complete"), which
    no rerun could lift. The export still holds as many Observations as at the last read: they
    go. An emptied folder is still refused."""
    with RUNS.scenario("mapping change unmaps most stored records"):
        src = copy_site("amr", tmp_path / "feed")
        mappings = tmp_path / "mappings"
        shutil.copytree(REPO / "mappings", mappings)
        cfg = write_config(tmp_path, {"amr": str(src)}, mappings=mappings)
        out = tmp_path / "out"
        assert run_cli(cfg, out).returncode == 0
        before = _stored(out)
        labs = mappings / "concepts" / "labs.csv"
        lines = labs.read_text(encoding="utf-8").splitlines()
        head = lines[0].split(",")
        at = head.index("verified")
        rows = [lines[0]]
        for line in lines[1:]:
            cells = line.split(",")
            if len(cells) == len(head) and not line.startswith("#"):
                cells[at] = "N"
            rows.append(",".join(cells))
        labs.write_text("\n".join(rows) + "\n", encoding="utf-8")
        res = run_cli(cfg, out)
        assert res.returncode == 0, res.stderr[-800:]
        report = json.loads((out / "run.json").read_text(encoding="utf-8"))
        assert report["sites"]["amr"]["stored"]["removed"] > 10
        assert _stored(out) < before
        for p in src.iterdir():
            p.unlink()
        res = run_cli(cfg, out)
        assert res.returncode == 5 and "an incomplete export?" in res.stderr
