"""The output folder's lock, and an exit code that tells the truth when run.json cannot be written.

Two configurations with different stores could write the same OUT at once (the run lock lives
beside the store): the last run's lists and the first run's run.json ended up side by side, and
`change` was computed against the other configuration's lists. A run now holds OUT's own lock
from reading the previous outputs to writing run.json. And run.json, written after the lists
were renamed into place, failed the run with exit 9 "previous outputs kept" though they had just
been replaced.
"""

from __future__ import annotations

import csv
import errno
import fcntl
import json
import os
import re
import signal
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cohort.cli import cli
from cohort.store import Store

ROOT = Path(__file__).resolve().parent.parent
SITE_X = ROOT / "tests" / "data" / "tools" / "site-x"
SAMPLES = ROOT / "sample_bundles"
LOCK = ".outputs.lock"


def _config(folder: Path, name: str, sites: dict[str, Path]) -> Path:
    """A configuration `name`.toml in `folder` with a store of its own."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        '[trial]\nid = "sirius-sle-2"',
        f'[store]\npath = "{folder / name}-store/store.sqlite"',
    ]
    lines += [f'[[sites]]\nid = "{sid}"\nsource = "{src}"' for sid, src in sites.items()]
    path = folder / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _run(cfg: Path, out: Path, as_of: str = "2026-11-25") -> Result:
    args = ["run", "--config", str(cfg), "--as-of", as_of, "--out", str(out)]
    return CliRunner().invoke(cli, args)


def _files(out: Path) -> dict[Path, bytes]:
    """Every file in OUT (the lock file aside) with its bytes."""
    return {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.suffix != ".lock"}


def _errors(res: Result) -> list[str]:
    """The one-line errors on stderr (the log lines aside)."""
    return [ln for ln in res.stderr.splitlines() if ln.startswith("cohort: error:")]


def _rows(out: Path, site: str) -> dict[str, dict[str, str]]:
    with (out / site / "candidates.csv").open(encoding="utf-8-sig", newline="") as fh:
        return {r["patient_id"]: r for r in csv.DictReader(fh)}


@contextmanager
def _held(path: Path, shared: bool = False) -> Iterator[None]:
    """Hold `path`'s lock the way a running `cohort run` does (flock on its own open file), or
    `shared`, as a reader (`cohort explain`, `cohort diff`) does."""
    fd = os.open(path, os.O_RDONLY) if shared else os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        yield
    finally:
        os.close(fd)


def test_a_run_into_an_output_folder_another_run_writes_exits_10(tmp_path: Path) -> None:
    """Another configuration (its own store, so the store's lock does not stop it) into the
    OUT a running job holds: exit 10 naming OUT's lock, and nothing touched, in OUT or its store."""
    first = _config(tmp_path / "a", "first", {"uci": SAMPLES / "uci"})
    other = _config(tmp_path / "b", "other", {"uci": SAMPLES / "uci", "amr": SAMPLES / "amr"})
    out = tmp_path / "out"
    assert _run(first, out).exit_code == 0
    before = _files(out)
    with _held(out / LOCK):
        res = _run(other, out, "2026-12-01")
    assert res.exit_code == 10, res.output
    assert res.stderr.splitlines() == [
        f"cohort: error: another run holds {out / LOCK} (it is writing {out}); "
        "not starting a second one"
    ]
    assert _files(out) == before  # run.json included: it belongs to the running job
    assert not (out / "amr").exists()
    assert not (tmp_path / "b" / "other-store").exists()  # refused before touching anything
    # the lock dies with its holder: the same run now goes ahead
    assert _run(other, out, "2026-12-01").exit_code == 0


def test_the_same_configuration_twice_names_the_output_folders_lock(tmp_path: Path) -> None:
    cfg = _config(tmp_path, "site", {"site-x": SITE_X})
    out = tmp_path / "out"
    assert _run(cfg, out).exit_code == 0
    before = _files(out)
    with _held(out / LOCK):
        res = _run(cfg, out)
    assert res.exit_code == 10
    assert len(_errors(res)) == 1 and f"another run holds {out / LOCK}" in _errors(res)[0]
    assert _files(out) == before


def test_the_output_folders_lock_file(tmp_path: Path) -> None:
    """A dot file in OUT, 0600, holding the pid; one left by a killed run does not block; OUT
    that does not exist yet is made (0700) and locked; the lock file is no site and no output."""
    cfg = _config(tmp_path, "site", {"site-x": SITE_X})
    out = tmp_path / "new" / "out"
    assert _run(cfg, out).exit_code == 0
    lock = out / LOCK
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert lock.read_text().isdigit()
    lock.write_text("999999")  # the pid of a long-dead run
    lock.chmod(0o644)
    assert _run(cfg, out, "2026-12-01").exit_code == 0
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600
    report = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert list(report["sites"]) == ["site-x"] and not report["warnings"]
    assert sorted(p.name for p in out.iterdir()) == [LOCK, "run.json", "site-x"]
    res = CliRunner().invoke(cli, ["diff", str(out), str(out)])
    assert res.exit_code == 0 and LOCK not in res.output


def test_an_output_folder_whose_lock_cannot_be_made_exits_9(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only OUT (simulated: the tests run as root, which chmod does not stop): exit 9
    naming the lock file, at the start, every output (run.json too) kept."""
    cfg = _config(tmp_path, "site", {"site-x": SITE_X})
    out = tmp_path / "out"
    assert _run(cfg, out).exit_code == 0
    (out / LOCK).unlink()
    before = _files(out)
    real_open = os.open

    def read_only(path: str | os.PathLike[str], flags: int, *args: int, **kw: int) -> int:
        if Path(path).name == LOCK:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kw)

    monkeypatch.setattr(os, "open", read_only)
    res = _run(cfg, out, "2026-12-01")
    monkeypatch.undo()
    assert res.exit_code == 9
    assert res.stderr.splitlines() == [
        f"cohort: error: cannot write {out / LOCK}: Read-only file system"
    ]
    assert _files(out) == before


def test_lists_of_another_configuration_are_not_compared(tmp_path: Path) -> None:
    """One OUT written by two configurations one after the other: `change` is not computed
    against the other's lists (`tier excluded -> likely` that no patient's data said), run.json
    says why, and a site folder the configuration does not screen is named."""
    both = _config(tmp_path / "b", "both", {"uci": SAMPLES / "uci", "amr": SAMPLES / "amr"})
    one = _config(tmp_path / "a", "one", {"uci": SAMPLES / "uci"})
    out = tmp_path / "out"
    assert _run(both, out).exit_code == 0
    # the lists of `both` look like an earlier run of `one` with other tiers everywhere
    path = out / "uci" / "candidates.csv"
    path.write_text(path.read_text(encoding="utf-8-sig").replace(",likely,", ",excluded,"),
                    encoding="utf-8-sig")  # fmt: skip
    assert _run(one, out, "2026-12-01").exit_code == 0
    assert all(r["change"] == "" for r in _rows(out, "uci").values())
    assert 'id="no-previous-run"' in (out / "uci" / "summary.html").read_text(encoding="utf-8")
    report = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert report["config"] == str(one)
    assert report["sites"]["uci"]["changes"]["tier_changed"] == 0
    assert report["sites"]["uci"]["changes"]["new"] == 0
    warnings = "\n".join(report["warnings"])
    assert f"were written by another configuration ({both})" in warnings
    assert f"{out / 'amr'} holds the lists of a site this configuration does not screen" in warnings
    # the next run of the same configuration compares as ever (and names amr again)
    assert _run(one, out, "2026-12-02").exit_code == 0
    report = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert "another configuration" not in "\n".join(report["warnings"])
    assert 'id="no-previous-run"' not in (out / "uci" / "summary.html").read_text(encoding="utf-8")
    assert [w for w in report["warnings"] if "does not screen" in w] == [
        f"{out / 'amr'} holds the lists of a site this configuration does not screen (left by an "
        "earlier run; this run.json does not describe them)"
    ]


def test_run_json_that_cannot_be_written_after_the_outputs_says_they_were_written(
    tmp_path: Path,
) -> None:
    """run.json is written last, after the lists are renamed into place: a folder in its
    place failed the run with exit 9 "previous outputs kept" though every list was this run's
    (and the run in the store's history). Exit 11 now, saying the outputs were written."""
    cfg = _config(tmp_path, "site", {"uci": SAMPLES / "uci"})
    out = tmp_path / "out"
    assert _run(cfg, out).exit_code == 0
    before = _files(out)
    (out / "run.json").unlink()
    (out / "run.json").mkdir()
    res = _run(cfg, out, "2026-12-01")
    assert res.exit_code == 11, res.output
    assert _errors(res) == [
        f"cohort: error: outputs written; cannot write {out / 'run.json'}: Is a directory"
    ]
    for name in ("candidates.csv", "evidence.csv", "summary.html"):
        path = out / "uci" / name
        assert path.read_bytes() != before[path], f"{name} was not replaced"
    assert "2026-12-01" in (out / "uci" / "summary.html").read_text(encoding="utf-8")
    with Store(tmp_path / "site-store" / "store.sqlite") as store:
        assert store.runs()[0]["date"] == "2026-12-01"
    assert not [p for p in out.rglob(".*") if p.name != LOCK], "staged files left behind"
    (out / "run.json").rmdir()
    assert _run(cfg, out, "2026-12-02").exit_code == 0


def test_run_json_disk_full_after_the_outputs_exits_11(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills up as run.json is written (after the lists): exit 11, and run.json is
    never half-written (staged, then renamed). The previous run.json was left in place, so
    research IT's monitor (and `cohort diff`, the next run) read last night's "success", counts
    and as-of date beside tonight's lists: no run.json describing older lists is left now."""
    import cohort.atomic as atomic

    cfg = _config(tmp_path, "site", {"site-x": SITE_X})
    out = tmp_path / "out"
    assert _run(cfg, out).exit_code == 0
    assert json.loads((out / "run.json").read_bytes())["status"] == "success"
    real_write = os.write

    def full(fd: int, data: bytes) -> int:
        if os.readlink(f"/proc/self/fd/{fd}").split("/")[-1].startswith(".run.json."):
            real_write(fd, bytes(data)[:10])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(atomic.os, "write", full)
    res = _run(cfg, out, "2026-12-01")
    monkeypatch.undo()
    assert res.exit_code == 11
    assert _errors(res) == [
        f"cohort: error: outputs written; cannot write {out / 'run.json'}: No space left on device"
    ]
    assert not (out / "run.json").exists()
    assert not [p for p in out.rglob(".*") if p.name != LOCK]
    assert "2026-12-01" in (out / "site-x" / "summary.html").read_text(encoding="utf-8")


def _two_sites(tmp_path: Path) -> tuple[Path, Path, dict[Path, bytes]]:
    """(configuration, OUT, its files) after a good run of uci and amr (in that order: uci's
    lists are renamed into place first)."""
    cfg = _config(tmp_path, "two", {"uci": SAMPLES / "uci", "amr": SAMPLES / "amr"})
    out = tmp_path / "out"
    assert _run(cfg, out).exit_code == 0
    return cfg, out, _files(out)


def _on_rename(monkeypatch: pytest.MonkeyPatch, then: dict[Path, Callable[[], None]]) -> None:
    """Call `then[target]` in place of renaming a file to `target` (raise an OSError, send
    SIGTERM); every other rename as ever."""
    real = os.replace

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str], **kw: Any) -> None:
        if Path(dst) in then:
            then[Path(dst)]()
        real(src, dst, **kw)

    monkeypatch.setattr(os, "replace", replace)


def _fails(code: int) -> Callable[[], None]:
    def fail() -> None:
        raise OSError(code, os.strerror(code))

    return fail


def _report(out: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((out / "run.json").read_text(encoding="utf-8"))
    return report


def _inodes(out: Path) -> dict[Path, int]:
    return {p: p.stat().st_ino for p in _files(out)}


def _replaced(out: Path, inodes: dict[Path, int], site: str) -> list[str]:
    """The files of `site` renamed into place since `inodes` (a rename gives a new inode;
    the bytes may be the same)."""
    return [p.name for p in sorted(inodes) if p.parent == out / site
            and p.stat().st_ino != inodes[p]]  # fmt: skip


def _sigterm() -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(500):  # the handler runs at the next bytecode boundary
        time.sleep(0.01)


KEPT_AMR = "lists replaced by this run's: uci; previous lists kept: amr"


@pytest.mark.parametrize(
    ("target", "then", "code", "said", "amr", "kept", "partly"),
    [
        # uci's lists renamed into place, then amr's first rename failed: the run said exit 9
        # and run.json `previous_outputs_kept: true`, though uci's lists were tonight's
        pytest.param(
            "amr/candidates.csv", _fails(errno.EIO), 9,
            f"cannot write {{target}}: Input/output error; {KEPT_AMR}", [], ["amr"], None,
            id="a-rename-failing-at-the-second-site",
        ),
        # amr's candidates.csv renamed, its evidence.csv not: amr is neither replaced nor
        # kept, and the line says which of its files are tonight's
        pytest.param(
            "amr/evidence.csv", _fails(errno.EIO), 9,
            "cannot write {target}: Input/output error; lists replaced by this run's: uci; "
            "partly replaced: amr (candidates.csv replaced; evidence.csv, summary.html kept)",
            ["candidates.csv"], [], {"amr": ["candidates.csv"]},
            id="a-rename-failing-inside-a-site",
        ),
        # SIGTERM after uci's lists were renamed into place, before amr's: exit 143 as ever
        pytest.param(
            "amr/candidates.csv", _sigterm, 143, f"interrupted (SIGTERM); {KEPT_AMR}",
            [], ["amr"], None,
            id="sigterm-between-the-renames",
        ),
    ],
)  # fmt: skip
@pytest.mark.usefixtures("sigterm_stops")  # (SIGTERM stops the run as under `cohort`)
def test_a_run_stopped_part_way_through_the_renames_says_which_lists_were_replaced(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    target: str,
    then: Callable[[], None],
    code: int,
    said: str,
    amr: list[str],
    kept: list[str],
    partly: dict[str, list[str]] | None,
) -> None:
    """The run stopped (a rename failing, SIGTERM) after uci's lists were renamed into place
    and before (or while) amr's were: the line and run.json say which sites' lists were
    replaced, which were kept and which were partly replaced (naming the files)."""
    cfg, out, _ = _two_sites(tmp_path)
    inodes = _inodes(out)
    _on_rename(monkeypatch, {out / target: then})
    res = _run(cfg, out, "2026-12-01")
    monkeypatch.undo()
    assert res.exit_code == code, res.output
    line = said.format(target=out / target)
    assert _errors(res) == [f"cohort: error: {line}"]
    assert _replaced(out, inodes, "uci") == ["candidates.csv", "evidence.csv", "summary.html"]
    assert _replaced(out, inodes, "amr") == amr
    report = _report(out)
    assert report["status"] == "failed" and report["error"] == line
    assert report["previous_outputs_kept"] is False
    assert report["outputs_replaced"] == ["uci"] and report["outputs_kept"] == kept
    if partly is None:
        assert "outputs_partly_replaced" not in report
    else:
        assert report["outputs_partly_replaced"] == partly
    assert not [p for p in out.rglob(".*") if p.name != LOCK], "staged files left behind"


def test_a_rename_failing_part_way_describes_each_sites_lists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uci's lists tonight's, amr's last night's: run.json named which sites' lists were
    replaced, but not the as-of date or mapping version of the lists kept, and `cohort diff`
    showed tonight's version for both. Each site's are described now (`outputs_sites`), the
    earlier ones also as `outputs_as_of` and the like, and diff shows each site's."""
    cfg, out, _ = _two_sites(tmp_path)
    good = _report(out)
    _on_rename(monkeypatch, {out / "amr" / "candidates.csv": _fails(errno.EIO)})
    res = _run(cfg, out, "2026-12-01")
    monkeypatch.undo()
    assert res.exit_code == 9, res.output
    report = _report(out)
    sites = report["outputs_sites"]
    assert sites["uci"]["as_of"] == "2026-12-01" and sites["amr"]["as_of"] == "2026-11-25"
    assert sites["amr"]["written_at"] == good["finished"]
    assert report["outputs_as_of"] == "2026-11-25"
    assert report["outputs_written_at"] == good["finished"]
    res = CliRunner().invoke(cli, ["diff", str(out), str(out)])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    version = f"{good['mapping_version']} ({good['mapping_human_version']})"
    assert lines[2:4] == [
        f"B: {out}  mapping (each site's below)",
        f"  B: the last run (as of 2026-12-01, mapping {version}) failed part-way: some sites'"
        " lists are its own, the others an earlier run's",
    ]
    assert f"  B's lists: mapping {version}, as of 2026-11-25" in lines
    assert f"  B's lists: mapping {version}, as of 2026-12-01" in lines


def test_no_list_replaced_and_no_run_json_written_keeps_the_previous_run_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first rename fails and so does the failed run's run.json: every list is last
    night's, and so is run.json, which still describes them (their trial and configuration,
    which the next run compares by): it is not removed before a list has been replaced."""
    cfg, out, before = _two_sites(tmp_path)
    target = out / "uci" / "candidates.csv"
    _on_rename(monkeypatch, {target: _fails(errno.EIO), out / "run.json": _fails(errno.ENOSPC)})
    res = _run(cfg, out, "2026-12-01")
    monkeypatch.undo()
    assert res.exit_code == 9
    assert _errors(res) == [f"cohort: error: cannot write {target}: Input/output error"]
    assert _files(out) == before


def test_lists_replaced_and_no_run_json_written_leaves_no_stale_run_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uci's lists replaced, amr's rename and then the failed run's run.json failing: last
    night's run.json said "success" for lists no longer all there; none is left now."""
    cfg, out, _ = _two_sites(tmp_path)
    amr = out / "amr" / "candidates.csv"
    _on_rename(monkeypatch, {amr: _fails(errno.EIO), out / "run.json": _fails(errno.ENOSPC)})
    res = _run(cfg, out, "2026-12-01")
    monkeypatch.undo()
    assert res.exit_code == 9
    assert _errors(res) == [
        f"cohort: error: cannot write {amr}: Input/output error; lists replaced by this run's: "
        "uci; previous lists kept: amr"
    ]
    assert not (out / "run.json").exists()


def _read_only(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """`folder` as a 0555 folder is for its owner (root ignores the mode): no file made,
    removed or renamed in it; its files and subfolders as writable as ever."""
    real_open, real_unlink, real_replace = os.open, os.unlink, os.replace

    def denied(path: Any) -> None:
        if Path(path).parent == folder:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    def open_(path: Any, flags: int, *args: Any, **kw: Any) -> int:
        if flags & os.O_CREAT and not os.path.exists(path):
            denied(path)
        return real_open(path, flags, *args, **kw)

    def unlink(path: Any, *args: Any, **kw: Any) -> None:
        denied(path)
        real_unlink(path, *args, **kw)

    def replace(src: Any, dst: Any, **kw: Any) -> None:
        denied(src)
        denied(dst)
        real_replace(src, dst, **kw)

    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(os, "unlink", unlink)
    monkeypatch.setattr(os, "replace", replace)


def test_an_output_folder_that_cannot_take_run_json_replaces_no_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OUT not writable (0555), its site folders (0700, from the first run) writable: every
    list was renamed into place, then run.json could not be written (exit 11) nor removed, and
    last night's said "success" and its as-of date beside tonight's lists, though a missing
    run.json is what the documentation says to alert on. OUT is now tried before any list is
    replaced: exit 9 naming OUT, every file (run.json included) last night's, and the run not
    in the store's history."""
    cfg, out, before = _two_sites(tmp_path)
    _read_only(monkeypatch, out)
    res = _run(cfg, out, "2026-12-01")
    monkeypatch.undo()
    assert res.exit_code == 9, res.output
    assert _errors(res) == [f"cohort: error: cannot write {out}: Permission denied"]
    assert _files(out) == before
    assert _report(out)["as_of"] == "2026-11-25"
    with Store(tmp_path / "two-store" / "store.sqlite") as store:
        assert [r["date"] for r in store.runs()] == ["2026-11-25"]
    assert not [p for p in out.rglob(".*") if p.name != LOCK], "staged files left behind"
    assert _run(cfg, out, "2026-12-02").exit_code == 0
    assert _report(out)["as_of"] == "2026-12-02"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes a 0555 folder all the same")
def test_an_output_folder_made_read_only_replaces_no_list(tmp_path: Path) -> None:
    """The same with a real 0555 OUT (the operations QA's case)."""
    cfg, out, before = _two_sites(tmp_path)
    out.chmod(0o555)
    try:
        res = _run(cfg, out, "2026-12-01")
    finally:
        out.chmod(0o700)
    assert res.exit_code == 9, res.output
    assert _errors(res) == [f"cohort: error: cannot write {out}: Permission denied"]
    assert _files(out) == before


def _tool(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def _uci(tmp_path: Path) -> tuple[Path, Path, str]:
    """(configuration, OUT, a screened patient) after a good run of the uci sample."""
    cfg = _config(tmp_path, "site", {"uci": SAMPLES / "uci"})
    out = tmp_path / "out"
    assert _run(cfg, out).exit_code == 0
    return cfg, out, next(iter(_rows(out, "uci")))


def _is_locked(path: Path) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def test_coverage_writes_into_the_output_folder_under_its_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cohort mappings coverage --out OUT` wrote OUT/coverage.csv whatever held OUT's lock.
    It now writes it holding the lock, and exits 10 (nothing written) while a run holds it."""
    import cohort.tools.coverage as coverage

    cfg, out, _ = _uci(tmp_path)
    args = ("mappings", "coverage", "--config", cfg, "--out", out)
    with _held(out / LOCK):
        res = _tool(*args)
    assert res.exit_code == 10, res.output
    assert res.stderr.splitlines() == [
        f"cohort: error: a run holds {out / LOCK} (it is writing {out}); not writing "
        f"{out / 'coverage.csv'}: try again once it has finished"
    ]
    assert not (out / "coverage.csv").exists()
    locked = []
    real = coverage.write_csv

    def write_csv(report: Any, path: Path) -> Path:
        locked.append(_is_locked(out / LOCK))
        return real(report, path)

    monkeypatch.setattr(coverage, "write_csv", write_csv)
    assert _tool(*args).exit_code == 0
    assert locked == [True] and (out / "coverage.csv").is_file()
    assert not _is_locked(out / LOCK)


def test_explain_and_diff_do_not_read_an_output_folder_a_run_is_replacing(
    tmp_path: Path,
) -> None:
    """`cohort explain` read run.json's as-of date and the store, and `cohort diff` the lists
    and run.json, while a run replaced them: last night's date with tonight's store, one site's
    new list beside another's old one and the old mapping version. While a run holds OUT's
    lock they now exit 10 at once (a run holds it for minutes to hours), saying so."""
    cfg, out, pid = _uci(tmp_path)
    other = tmp_path / "other"
    assert _run(cfg, other).exit_code == 0
    refused = "(it is writing {0}); not reading {0} half-written: try again once it has finished"
    with _held(out / LOCK):
        res = _tool("explain", pid, "--config", cfg, "--out", out)
        assert res.exit_code == 10, res.output
        assert res.stdout == ""
        assert _errors(res) == [f"cohort: error: a run holds {out / LOCK} " + refused.format(out)]
        res = _tool("diff", other, out)
        assert res.exit_code == 10, res.output
        assert _errors(res) == [f"cohort: error: a run holds {out / LOCK} " + refused.format(out)]
    # readers share the lock: two at once, or one while another holds it
    with _held(out / LOCK, shared=True), _held(other / LOCK, shared=True):
        res = _tool("explain", pid, "--config", cfg, "--out", out)
        assert res.exit_code == 0 and "(the run's, from run.json)" in res.stdout
        assert _tool("diff", other, out).exit_code == 0


def test_a_run_waits_for_a_reader_of_its_output_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A coordinator's `cohort explain` holding OUT's lock as the nightly run starts does not
    fail the run (exit 10): the run waits for it (readers take seconds), and gives up only
    after `runlock.READER_WAIT` seconds."""
    import threading

    import cohort.runlock as runlock

    cfg, out, _ = _uci(tmp_path)
    fd = os.open(out / LOCK, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)
    threading.Timer(1.0, os.close, [fd]).start()
    assert _run(cfg, out, "2026-12-01").exit_code == 0
    assert _report(out)["as_of"] == "2026-12-01"
    monkeypatch.setattr(runlock, "READER_WAIT", 0.3)
    before = _files(out)
    with _held(out / LOCK, shared=True):
        res = _run(cfg, out, "2026-12-02")
    assert res.exit_code == 10
    assert _errors(res) == [
        f"cohort: error: a reader (cohort explain or diff) has held {out / LOCK} "
        f"for over 0.3 s; not starting"
    ]
    assert _files(out) == before


def test_readers_make_no_lock_file_in_a_folder_no_run_wrote(tmp_path: Path) -> None:
    """`cohort diff` of folders copied elsewhere (no lock file: no run is writing them) reads
    them as ever and leaves nothing there."""
    _, out, _ = _uci(tmp_path)
    copy = tmp_path / "copy"
    copy.mkdir()
    for p in _files(out):
        (copy / p.relative_to(out)).parent.mkdir(parents=True, exist_ok=True)
        (copy / p.relative_to(out)).write_bytes(p.read_bytes())
    assert _tool("diff", copy, out).exit_code == 0
    assert not (copy / LOCK).exists()


def _no_previous_run(out: Path, site: str) -> str:
    """The text summary.html gives for having nothing to compare with ("" when it compared)."""
    page = (out / site / "summary.html").read_text(encoding="utf-8")
    found = re.search(r'<p id="no-previous-run"[^>]*>(.*?)</p>', page, re.S)
    return found[1] if found else ""


def test_summary_says_another_configuration_wrote_the_lists_not_first_run(tmp_path: Path) -> None:
    """After a run of another configuration file into the same OUT, summary.html said "the
    first run" though OUT held lists, which the run does not compare with. It now says why; a
    site that had no lists in OUT is still its first run."""
    one = _config(tmp_path / "a", "one", {"uci": SAMPLES / "uci"})
    both = _config(tmp_path / "b", "both", {"uci": SAMPLES / "uci", "amr": SAMPLES / "amr"})
    out = tmp_path / "out"
    assert _run(one, out).exit_code == 0
    assert "(the first run)" in _no_previous_run(out, "uci")
    assert _run(both, out, "2026-12-01").exit_code == 0
    said = _no_previous_run(out, "uci")
    assert "first run" not in said
    assert "written by another configuration file" in said and "run.json" in said
    assert "(the first run)" in _no_previous_run(out, "amr")
    assert _run(both, out, "2026-12-02").exit_code == 0
    assert _no_previous_run(out, "uci") == _no_previous_run(out, "amr") == ""
