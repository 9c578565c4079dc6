"""The run lock: a second run while another holds it exits 10 touching nothing; a lock file a
killed run left behind blocks nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from test_reliability_process import run_cli
from test_reliability_support import SAMPLES, Scenarios, report_at_end, write_config

RUNS = Scenarios("the run lock")


@pytest.fixture(autouse=True, scope="module")
def _summary(request: pytest.FixtureRequest) -> None:
    report_at_end(request, RUNS)


HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()  # held until the test lets go (or dies), not for a time a loaded run may pass
"""


def test_second_concurrent_run_exits_10(tmp_path: Path) -> None:
    with RUNS.scenario("lock held by another process"):
        cfg = write_config(tmp_path, {"uci": str(SAMPLES / "uci")})
        out = tmp_path / "out"
        assert run_cli(cfg, out).returncode == 0
        before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.suffix != ".lock"}
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(out / ".cohort" / "run.lock")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == b"locked"
            second = run_cli(cfg, out)
        finally:
            holder.kill()
            holder.wait()
        assert second.returncode == 10
        assert "another run" in second.stderr and "run.lock" in second.stderr
        assert len([ln for ln in second.stderr.splitlines() if "error" in ln]) == 1
        # the run holding the lock owns OUT: nothing (run.json included) was touched
        after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.suffix != ".lock"}
        assert after == before
        # once the holder is gone the lock is free again (flock dies with its process)
        assert run_cli(cfg, out).returncode == 0


def test_stale_lock_file_of_a_killed_run_does_not_block(tmp_path: Path) -> None:
    with RUNS.scenario("stale lock file after a kill"):
        cfg = write_config(tmp_path, {"uci": str(SAMPLES / "uci")})
        out = tmp_path / "out"
        (out / ".cohort").mkdir(parents=True)
        (out / ".cohort" / "run.lock").write_text("999999")  # pid of a long-dead run
        assert run_cli(cfg, out).returncode == 0
