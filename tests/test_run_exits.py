"""How a run that cannot start, or is stopped, ends for an unattended operator: one line, the
documented exit code, and OUT/run.json saying so (an unreadable or broken configuration, a
terminal closed under a manual run: SIGHUP)."""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from stop_helpers import signal_during_screen

from cohort.cli import cli

ROOT = Path(__file__).resolve().parent.parent
UCI = ROOT / "sample_bundles" / "uci"


def _config(folder: Path, source: Path = UCI, extra: str = "") -> Path:
    cfg = folder / "site.toml"
    cfg.write_text(
        f'[trial]\nid = "sirius-sle-2"\n\n[[sites]]\nid = "uci"\nsource = "{source}"\n{extra}'
    )
    return cfg


def _unreadable(monkeypatch: pytest.MonkeyPatch, cfg: Path) -> None:
    """`cfg` as a config without read permission is to a user who is not root (root reads it
    whatever its mode): os.access says no, opening it is refused."""
    real_access, real_open = os.access, Path.open

    def access(path: object, mode: int, *args: object, **kwargs: object) -> bool:
        if Path(str(path)) == cfg and mode & os.R_OK:
            return False
        return real_access(path, mode, *args, **kwargs)  # type: ignore[arg-type]

    def refuse(self: Path, *args: object, **kwargs: object) -> object:
        if self == cfg:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "access", access)
    monkeypatch.setattr(Path, "open", refuse)


@pytest.mark.parametrize(
    "command",
    [
        ["run"],
        ["explain", "p1"],
        ["mappings", "check"],
        ["mappings", "coverage"],
        ["mappings", "expand-rxnorm", "--concept", "glucocorticoid"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_an_unreadable_config_is_exit_3_with_one_line_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    """A config without read permission was a usage error: exit 2 and four lines of click's
    usage text (`Invalid value for '--config': Path '...' is not readable.`), where a missing
    one is exit 3 with one `cohort: error:` line."""
    cfg = _config(tmp_path)
    _unreadable(monkeypatch, cfg)
    args = [*command, "--config", str(cfg)]
    if command[0] in ("run", "explain") or command[-1] == "coverage":
        args += ["--out", str(tmp_path / "out")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 3, result.output
    assert result.output == f"cohort: error: {cfg}: cannot read config: Permission denied\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_an_unreadable_config_is_exit_3_under_a_user(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    cfg.chmod(0)
    result = CliRunner().invoke(cli, ["run", "--config", str(cfg), "--out", str(tmp_path / "o")])
    assert result.exit_code == 3, result.output
    assert result.output == f"cohort: error: {cfg}: cannot read config: Permission denied\n"


def _good_night(tmp_path: Path) -> tuple[Path, Path, dict[str, object], bytes]:
    """(config, OUT, its run.json, uci's candidates.csv) after a successful run."""
    cfg, out = _config(tmp_path), tmp_path / "out"
    args = ["run", "--config", str(cfg), "--as-of", "2026-11-25", "--out", str(out)]
    assert CliRunner().invoke(cli, args).exit_code == 0
    report = json.loads((out / "run.json").read_text(encoding="utf-8"))
    return cfg, out, report, (out / "uci" / "candidates.csv").read_bytes()


@pytest.mark.parametrize(
    ("mistake", "said"),
    [
        ("bogus_key = 1\n", "unknown key 'bogus_key'"),
        ("[trial\n", "invalid TOML"),
        (None, "config file not found"),
    ],
    ids=["unknown key", "bad TOML", "missing"],
)
def test_a_config_error_says_failed_in_the_run_json_of_an_out_with_earlier_lists(
    tmp_path: Path, mistake: str | None, said: str
) -> None:
    """A configuration error (exit 3) left last night's run.json in OUT, "success": a monitor
    reading it saw a good night, where a mapping (4) or source (5) error writes it failed."""
    cfg, out, good, before = _good_night(tmp_path)
    broken = tmp_path / "broken.toml"
    if mistake is not None:
        broken.write_text(cfg.read_text() + mistake)
    args = ["run", "--config", str(broken), "--as-of", "2026-11-26", "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 3, result.output
    assert result.output.count("\n") == 1 and said in result.output
    report = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert report["status"] == "failed"
    assert report["error"] == result.output.removeprefix("cohort: error: ").rstrip("\n")
    assert report["as_of"] == "2026-11-26" and report["config"] == str(broken)
    # what the kept lists are (whose, as of when), as every failed run says
    assert report["previous_outputs_kept"] is True
    assert report["outputs_as_of"] == "2026-11-25"
    assert report["outputs_config"] == str(cfg) and report["outputs_trial"] == "sirius-sle-2"
    assert report["outputs_mapping_version"] == good["mapping_version"]
    assert set(report["outputs_sites"]) == {"uci"}
    assert (out / "uci" / "candidates.csv").read_bytes() == before
    # the next good night compares with those lists as ever (same configuration)
    args = ["run", "--config", str(cfg), "--as-of", "2026-11-26", "--out", str(out)]
    assert CliRunner().invoke(cli, args).exit_code == 0
    again = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert again["status"] == "success" and again["warnings"] == []


def test_a_config_error_makes_no_out_folder(tmp_path: Path) -> None:
    """No OUT yet (a first night): nothing is made just to say the configuration failed."""
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli, ["run", "--config", str(tmp_path / "nope.toml"), "--out", str(out)]
    )
    assert result.exit_code == 3, result.output
    assert not out.exists()


def test_a_config_error_leaves_an_out_held_by_a_run_alone(tmp_path: Path) -> None:
    """Another run holds OUT (writing it): its run.json is not this one's to replace."""
    import fcntl

    _, out, good, _ = _good_night(tmp_path)
    fd = os.open(out / ".outputs.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        bad = tmp_path / "bad.toml"
        bad.write_text("[trial\n")
        result = CliRunner().invoke(cli, ["run", "--config", str(bad), "--out", str(out)])
    finally:
        os.close(fd)
    assert result.exit_code == 3 and result.output.count("\n") == 1, result.output
    assert json.loads((out / "run.json").read_text(encoding="utf-8")) == good


@pytest.mark.usefixtures("sigterm_stops")  # (as cli.main installs them; CliRunner does not)
def test_sighup_stops_a_run_as_sigterm_does_exit_129(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGHUP (the terminal of a manual catch-up run closed) ended the process at once: exit
    129 with no line saying why, and run.json not updated (last night's, or "running")."""
    cfg, out, _, before = _good_night(tmp_path)
    signal_during_screen(monkeypatch, signal.SIGHUP)
    args = ["run", "--config", str(cfg), "--as-of", "2026-11-26", "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 129, result.output
    assert result.output.endswith("\ncohort: error: interrupted (SIGHUP)\n")
    report = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert report["status"] == "failed" and report["error"] == "interrupted (SIGHUP)"
    assert report["previous_outputs_kept"] is True
    assert (out / "uci" / "candidates.csv").read_bytes() == before


def test_sighup_ignored_by_nohup_stays_ignored() -> None:
    """`nohup cohort run ... &` asks that the terminal closing not stop the run: the CLI's
    handlers must not take SIGHUP back."""
    from cohort.cli import stop_on_signals

    previous = {s: signal.getsignal(s) for s in (signal.SIGHUP, signal.SIGTERM)}
    try:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        stop_on_signals()
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def test_a_closed_terminal_stops_the_run_with_exit_129(tmp_path: Path) -> None:
    """A real hang-up: `cohort run` on a terminal (a pty, its controlling one) that then closes.
    The kernel sends SIGHUP; the line can no longer be written to the terminal (EIO), which
    must not turn the stop into an internal error (exit 1): run.json says why, exit 129."""
    import pty

    cfg, out = _config(tmp_path), tmp_path / "out"
    mark = tmp_path / "screening"
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(  # (imported at start-up: replaces the screening)
        "import time, pathlib, cohort.runner\n"
        "def screen(*args, **kwargs):\n"
        f"    pathlib.Path({str(mark)!r}).touch()\n"
        "    time.sleep(60)\n"
        "cohort.runner.screen = screen\n"
    )
    argv = [sys.executable, "-m", "cohort", "run", "--config", str(cfg), "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": f"{hook}{os.pathsep}{ROOT}"}
    pid, master = pty.fork()
    if pid == 0:  # pragma: no cover (the child: a session of its own, the pty its terminal)
        try:
            os.chdir(ROOT)
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    try:
        deadline = time.monotonic() + 120
        while not mark.exists():
            assert time.monotonic() < deadline, "the run never reached screening"
            try:  # (drain the terminal: a full one would block the run's log lines)
                if select.select([master], [], [], 0.05)[0]:
                    os.read(master, 65536)
            except OSError:
                break
    finally:
        os.close(master)  # the terminal goes away: SIGHUP to the run
    for _ in range(600):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the run did not stop on SIGHUP")
    assert os.waitstatus_to_exitcode(status) == 129
    report = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert report["status"] == "failed" and report["error"] == "interrupted (SIGHUP)"
