"""The reading processes of a real run (`python -m cohort run`, `[run] workers = 2`) when one of
them dies, when systemd stops the run (SIGTERM to the process group) and when the main process
is killed with SIGKILL: the run never hangs (each run has a timeout, so a hang fails the test),
and no reading process outlives it.

A driver runs the CLI with `cohort.reading._read` wrapped (the forks see the wrapper too): a
reading process marks a file `busy.<pid>` on its first task and then sleeps, so that it is
inside a task when the test acts; with HOOK=kill-first the process given the run's first unit
waits for such a mark and then SIGKILLs itself (as the OOM killer would).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_reliability_support import AS_OF, OUTPUTS, REPO, write_config

TIMEOUT = 90  # seconds a run may take here before it counts as hung (a clean one takes ~3)

DRIVER = r"""
import os, signal, sys, time
from pathlib import Path
import cohort.reading as reading

hook, marks = os.environ["COHORT_TEST_HOOK"], Path(os.environ["COHORT_TEST_MARKS"])
parent, real, started = os.getpid(), reading._read, []

def _read(unit):
    if hook != "none" and os.getpid() != parent and not started:  # a reader's first unit
        started.append(unit)
        if hook == "kill-first" and unit.path.name == "Condition.ndjson" and unit.start == 0:
            for _ in range(6000):  # until another reading process is inside a task
                if any(marks.glob("busy.*")):
                    break
                time.sleep(0.01)
            os.kill(os.getpid(), signal.SIGKILL)
        (marks / f"busy.{os.getpid()}").touch()
        time.sleep(60)
    return real(unit)

reading._read = _read
from cohort.cli import main
sys.argv[0] = "cohort"
main()
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,750 generated patients as NDJSON (Observation gzipped: 8 MB in 1 MB pieces that the
    main process decompresses and sends to the reading processes)."""
    folder = tmp_path_factory.mktemp("readers") / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "cohort",
            "sample",
            "--out",
            str(folder),
            "--patients",
            "1500",
            "--format",
            "ndjson",
        ],
        check=True,
        cwd=REPO,
        capture_output=True,
        timeout=TIMEOUT,
    )
    assert (folder / "Observation.ndjson.gz").stat().st_size > 500_000
    return folder


def _config(folder: Path, site: Path) -> Path:
    folder.mkdir()
    run = {"workers": 2, "chunk_mb": 1}
    return write_config(folder, {"uci": str(site)}, run=run, store=folder / "store.sqlite")


def _cmd(cfg: Path, out: Path) -> list[str]:
    run = ["run", "--config", str(cfg), "--as-of", AS_OF, "--out", str(out), "--full-refresh"]
    return [sys.executable, "-c", DRIVER, *run]


def _undisturbed(
    tmp: Path, site: Path, out: Path, **popen: Any
) -> subprocess.CompletedProcess[str]:
    """`cohort run` of `site` into `out` with no test hook (config and marks under `tmp`)."""
    return subprocess.run(
        _cmd(_config(tmp / "cfg", site), out),
        cwd=REPO,
        env={**os.environ, "COHORT_TEST_HOOK": "none", "COHORT_TEST_MARKS": str(tmp)},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        **popen,
    )


def _start(tmp_path: Path, site: Path, hook: str) -> tuple[subprocess.Popen[str], Path, Path]:
    marks = tmp_path / "marks"
    marks.mkdir()
    out = tmp_path / "out"
    env = {**os.environ, "COHORT_TEST_HOOK": hook, "COHORT_TEST_MARKS": str(marks)}
    proc = subprocess.Popen(
        _cmd(_config(tmp_path / "cfg", site), out),
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a process group of its own, as under systemd
    )
    return proc, marks, out


def _pids(marks: Path) -> list[int]:
    return [int(p.name.split(".")[1]) for p in marks.glob("busy.*")]


def _busy(marks: Path, n: int, proc: subprocess.Popen[str]) -> list[int]:
    """The pids of the first `n` reading processes inside a task (waiting at most TIMEOUT)."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        if len(pids := _pids(marks)) >= n:
            return pids
        time.sleep(0.02)
    raise AssertionError(f"no {n} reading processes at work (exit {proc.poll()})")


def _alive(pid: int) -> bool:
    """Whether `pid` still runs (a zombie waiting for its new parent to reap it does not)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def cleanup() -> Iterator[list[int]]:
    """Pids (and process groups, negated) to SIGKILL after the test, whatever it found."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(-pid, signal.SIGKILL) if pid < 0 else os.kill(pid, signal.SIGKILL)


def _wait(proc: subprocess.Popen[str]) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the run hung (still running after {TIMEOUT} s)") from None
    return proc.returncode, err


@pytest.fixture(scope="module")
def clean(site: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The outputs of an undisturbed run with two reading processes."""
    tmp = tmp_path_factory.mktemp("clean")
    out = tmp / "out"
    res = _undisturbed(tmp, site, out)
    assert res.returncode == 0, res.stderr
    assert "2 process(es)" in res.stderr
    return {name: (out / "uci" / name).read_bytes() for name in OUTPUTS}


def test_a_reading_process_killed_mid_read_leaves_the_rest_to_the_main_process(
    site: Path, tmp_path: Path, clean: dict[str, bytes], cleanup: list[int]
) -> None:
    """SIGKILL of a reading process (the OOM killer) while the other is inside a task and more
    tasks (gzip pieces) wait: the run used to hang for good in the pool's shutdown, holding
    run.lock (the survivor took the pool's SIGTERM for the CLI's KeyboardInterrupt, sent it
    back as its task's result, went on reading, and blocked writing a result nobody read)."""
    proc, marks, out = _start(tmp_path, site, "kill-first")
    cleanup.append(-proc.pid)
    code, err = _wait(proc)
    assert code == 0, err
    assert "a reading process died; reading the rest in this process" in err
    assert {name: (out / "uci" / name).read_bytes() for name in OUTPUTS} == clean
    assert not [pid for pid in _pids(marks) if _alive(pid)]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_sigterm_to_the_process_group_while_reading_exits_143(
    site: Path, tmp_path: Path, cleanup: list[int], sig: signal.Signals
) -> None:
    """systemd stopping the unit signals every process of it: the reading processes end at once
    (they do not run the CLI's SIGTERM handler) and the run exits 143, run.json saying why.
    A terminal closing under a manual run (SIGHUP to its process group) likewise, exit 129: the
    run used to die of it, run.json left saying "running" or last night's."""
    import json

    proc, marks, out = _start(tmp_path, site, "sleep")
    cleanup.append(-proc.pid)
    readers = _busy(marks, 2, proc)
    os.killpg(proc.pid, sig)
    code, err = _wait(proc)
    assert code == 128 + sig, err
    assert f"cohort: error: interrupted ({sig.name})" in err
    report = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert report["status"] == "failed" and report["error"] == f"interrupted ({sig.name})"
    assert "KeyboardInterrupt" not in err  # (a reading process's traceback)
    assert not [pid for pid in readers if _alive(pid)]


def test_reading_processes_die_with_a_main_process_killed_by_sigkill(
    site: Path, tmp_path: Path, cleanup: list[int]
) -> None:
    """kill -9 of the main process: its reading processes used to live on, reparented to init,
    blocked writing results nobody would read (holding the store open, ~150 MB each)."""
    proc, marks, _ = _start(tmp_path, site, "sleep")
    cleanup.append(-proc.pid)
    readers = _busy(marks, 2, proc)
    cleanup += readers
    proc.kill()
    proc.wait(TIMEOUT)  # (not its pipes: a reading process that lives on holds them open)
    deadline = time.monotonic() + 20
    while (left := [pid for pid in readers if _alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, f"reading processes {left} outlived the main process"
    for pipe in (proc.stdout, proc.stderr):
        assert pipe is not None
        pipe.close()


def test_a_run_started_with_sigchld_ignored_reaps_its_processes_and_succeeds(
    site: Path, tmp_path: Path, clean: dict[str, bytes]
) -> None:
    """A launcher that ignores SIGCHLD passes that on across exec: the kernel then reaps the
    run's forks itself, and evaluation's wait for them failed (`cohort: internal error
    (ChildProcessError)`, exit 1)."""
    out = tmp_path / "out"
    res = _undisturbed(
        tmp_path,
        site,
        out,
        preexec_fn=lambda: signal.signal(signal.SIGCHLD, signal.SIG_IGN),  # noqa: PLW1509
    )
    assert res.returncode == 0, res.stderr
    assert {name: (out / "uci" / name).read_bytes() for name in OUTPUTS} == clean


def test_sigterm_while_the_reading_processes_are_stopped_exits_143(
    site: Path, tmp_path: Path, cleanup: list[int]
) -> None:
    """Reading processes stopped (SIGSTOP: `kill -STOP`, a debugger) hold the run up as long as
    they stay so (a task may take long); SIGTERM to the process group still ends it (143): the
    stopped ones cannot act on it, and the main process kills (SIGKILL) and reaps them."""
    proc, marks, _ = _start(tmp_path, site, "sleep")
    cleanup.append(-proc.pid)
    readers = _busy(marks, 2, proc)
    cleanup += readers
    for pid in readers:
        os.kill(pid, signal.SIGSTOP)
    os.killpg(proc.pid, signal.SIGTERM)
    code, err = _wait(proc)
    assert code == 143, err
    assert "cohort: error: interrupted (SIGTERM)" in err
    assert not [pid for pid in readers if _alive(pid)]
