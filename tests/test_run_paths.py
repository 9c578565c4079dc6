"""`cohort run` with an OUT or a mappings folder it cannot use: the documented exit code (9,
4) and one line naming the path, before any site is read; never a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import cohort.runner
from cohort.cli import cli

ROOT = Path(__file__).resolve().parent.parent
UCI = ROOT / "sample_bundles" / "uci"
# run as root, a process without capabilities is held to files' modes (root bypasses them by
# CAP_DAC_OVERRIDE); as another user, nothing to drop
NO_CAPS = ["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--"]


def _config(folder: Path, mappings: Path | None = None) -> Path:
    cfg = folder / "site.toml"
    trial = f'mappings = "{mappings}"\n' if mappings is not None else ""
    cfg.write_text(
        f'[trial]\nid = "sirius-sle-2"\n{trial}\n[[sites]]\nid = "uci"\nsource = "{UCI}"\n'
    )
    return cfg


@pytest.fixture
def no_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails the test if the run goes on to read a site (the long work)."""

    def ingest(*args: object, **kwargs: object) -> None:
        raise AssertionError("the run read a site before it failed")

    monkeypatch.setattr(cohort.runner, "ingest", ingest)


def _run(*args: str | Path) -> tuple[int, str]:
    res = CliRunner().invoke(cli, ["run", "--as-of", "2026-11-25", *map(str, args)])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exc_info
    return res.exit_code, res.stderr


@pytest.mark.usefixtures("no_read")
def test_an_out_that_is_a_file_is_exit_9_naming_it(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_text("not a folder")
    code, err = _run("--config", _config(tmp_path), "--out", out)
    assert code == 9
    assert err.splitlines() == [f"cohort: error: cannot write {out}: not a folder"]
    assert out.read_text() == "not a folder"


@pytest.mark.usefixtures("no_read")
def test_an_out_under_a_file_is_exit_9_naming_it(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    out = tmp_path / "afile" / "out"
    code, err = _run("--config", _config(tmp_path), "--out", out)
    assert code == 9
    assert err.splitlines() == [f"cohort: error: cannot write {out}: Not a directory"]


@pytest.mark.usefixtures("no_read")
def test_a_missing_mappings_folder_is_exit_4_naming_it(tmp_path: Path) -> None:
    maps = tmp_path / "no-such-mappings"
    code, err = _run("--config", _config(tmp_path, maps), "--out", tmp_path / "out")
    assert code == 4
    assert err.splitlines() == [f"cohort: error: {maps}: mappings folder not found"]


# ---- permissions: a subprocess held to files' modes --------------------------------------


@pytest.fixture
def unprivileged(tmp_path: Path) -> list[str]:
    """The command prefix that runs a process held to files' modes (skipped when there is
    none): tried on a 0555 folder, where it must not be able to make a file."""
    prefix = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: cannot drop CAP_DAC_OVERRIDE")
        prefix = NO_CAPS
    probe = tmp_path / "probe"
    probe.mkdir(mode=0o555)
    code = "import pathlib, sys; pathlib.Path(sys.argv[1], 'x').touch()"
    try:
        argv = [*prefix, sys.executable, "-c", code, str(probe)]
        tried = subprocess.run(argv, capture_output=True, check=False)
    except OSError as exc:
        pytest.skip(f"cannot run a process without privileges: {exc}")
    finally:
        probe.chmod(0o700)
    if tried.returncode == 0:
        pytest.skip("a process without capabilities still writes a 0555 folder here")
    return prefix


@pytest.fixture
def modes_restored(tmp_path: Path) -> Iterator[None]:
    """Gives every folder under tmp_path back its owner's permissions (pytest removes it)."""
    yield
    for folder, _, _ in os.walk(tmp_path):
        os.chmod(folder, 0o700)
    tmp_path.chmod(0o700)


def _cli(prefix: list[str], tmp_path: Path, *args: str | Path) -> tuple[int, list[str]]:
    """`cohort run` in a subprocess under `prefix`; a site read (the long work) would leave a
    mark (a sitecustomize hook replaces the ingest), which the test asserts is not there."""
    hook = tmp_path / "hook"
    hook.mkdir(exist_ok=True)
    mark = tmp_path / "read-a-site"
    (hook / "sitecustomize.py").write_text(
        "import pathlib, cohort.runner\n"
        "def ingest(*args, **kwargs):\n"
        f"    pathlib.Path({str(mark)!r}).touch()\n"
        "    raise SystemExit(99)\n"
        "cohort.runner.ingest = ingest\n"
    )
    argv = [*prefix, sys.executable, "-m", "cohort", "run", "--as-of", "2026-11-25"]
    env = {**os.environ, "PYTHONPATH": f"{hook}{os.pathsep}{ROOT}"}
    done = subprocess.run(
        [*argv, *map(str, args)], env=env, cwd=tmp_path, capture_output=True, check=False
    )
    assert not mark.exists(), "the run read a site before it failed"
    return done.returncode, done.stderr.decode().splitlines()


@pytest.mark.usefixtures("modes_restored")
def test_an_out_in_a_read_only_folder_is_exit_9(unprivileged: list[str], tmp_path: Path) -> None:
    parent = tmp_path / "ro"
    parent.mkdir(mode=0o555)
    out = parent / "out"
    code, err = _cli(unprivileged, tmp_path, "--config", _config(tmp_path), "--out", out)
    assert (code, err) == (9, [f"cohort: error: cannot write {out}: Permission denied"])
    assert not out.exists()


@pytest.mark.usefixtures("modes_restored")
def test_a_read_only_out_of_an_earlier_run_fails_before_reading(
    unprivileged: list[str], tmp_path: Path
) -> None:
    """OUT 0555 with the lock file an earlier run left in it: the lock opened, and the run read
    and screened every site before it found it could write nothing (exit 9 all the same)."""
    out = tmp_path / "out"
    out.mkdir()
    (out / ".outputs.lock").write_text("")
    (out / "run.json").write_text("{}")
    out.chmod(0o555)
    code, err = _cli(unprivileged, tmp_path, "--config", _config(tmp_path), "--out", out)
    assert (code, err) == (9, [f"cohort: error: cannot write {out}: Permission denied"])
    assert (out / "run.json").read_text() == "{}"


@pytest.mark.parametrize("mode", [0o000, 0o111, 0o444], ids=["0000", "0111", "0444"])
@pytest.mark.usefixtures("modes_restored")
def test_an_unreadable_mappings_folder_is_exit_4_naming_it(
    unprivileged: list[str], tmp_path: Path, mode: int
) -> None:
    """0000 was a PermissionError traceback (exit 1); 0111 read as a folder lacking every file
    (`systems.csv: file not found`)."""
    maps = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", maps)
    maps.chmod(mode)
    code, err = _cli(unprivileged, tmp_path, "--config", _config(tmp_path, maps), "--out", "out")
    said = f"cohort: error: {maps}: mappings folder cannot be read: Permission denied"
    assert (code, err) == (4, [said])


def _site_folder(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """A private copy of site uci's folder, a config reading it, and what the folder holds."""
    src = tmp_path / "bulk"
    shutil.copytree(UCI, src)
    cfg = tmp_path / "site.toml"
    cfg.write_text(f'[trial]\nid = "sirius-sle-2"\n\n[[sites]]\nid = "uci"\nsource = "{src}"\n')
    return src, cfg, sorted(p.name for p in src.iterdir())


@pytest.mark.parametrize("where", ["bulk/out", "bulk", "bulk/deep/out"])
@pytest.mark.usefixtures("no_read")
def test_an_out_inside_a_sites_source_folder_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """`--out bulk/out` with site uci's source `bulk`: the run wrote run.json and the lists
    there, and every later night read OUT/run.json as data (a rejected record issue each night,
    the lists' folders walked). Refused before anything is read or written: exit 2, naming the
    site and its source folder."""
    src, cfg, held = _site_folder(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, err = _run("--config", cfg, "--out", where)
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert "site uci" in err and f"inside its source folder {src}" in err, err
    assert sorted(p.name for p in src.iterdir()) == held  # nothing written there


def test_a_store_folder_inside_a_sites_source_folder_is_refused(tmp_path: Path) -> None:
    """`[store] path` inside a site's source folder: the store's folder holds mapping-check.json
    (and a Bulk spool's NDJSON, by default), read as data the next night. Refused on load, with
    the blank store path the loader already refuses: exit 3, naming the site and the key."""
    src, cfg, held = _site_folder(tmp_path)
    for store in (src / "state" / "store.sqlite", src / "store.sqlite"):
        text = cfg.read_text().replace("[[sites]]", f'[store]\npath = "{store}"\n\n[[sites]]')
        cfg.with_name("store.toml").write_text(text)
        code, err = _run("--config", cfg.with_name("store.toml"), "--out", tmp_path / "out")
        assert code == 3, err
        assert "[store]" in err and "site uci" in err, err
        assert f"inside its source folder {src}" in err, err
        assert sorted(p.name for p in src.iterdir()) == held
        assert not (tmp_path / "out").exists()


def test_a_server_source_is_no_folder_to_be_inside(tmp_path: Path) -> None:
    """A site read from a FHIR server has no source folder: an OUT or store anywhere is fine."""
    from cohort.config import SiteConfig, inside_a_source

    server = SiteConfig("uci", "UCI", "https://fhir.example.invalid/r4")
    folder = SiteConfig("amr", "AMR", str(tmp_path / "amr"))
    # (a URL taken for a path: a folder https:/fhir.example.invalid/r4 under the working one)
    assert inside_a_source("OUT", Path("https:/fhir.example.invalid/r4/out"), [server]) is None
    assert inside_a_source("OUT", tmp_path / "out", [server, folder]) is None
    said = inside_a_source("OUT", tmp_path / "amr" / "out", [server, folder])
    assert said is not None and said.startswith("site amr: OUT is inside its source folder")


@pytest.mark.usefixtures("no_read")
def test_a_mapping_check_file_that_cannot_be_written_is_the_stores_exit_8(tmp_path: Path) -> None:
    """mapping-check.json sits in the store's folder (`[store] path`), not in OUT: a failure to
    write it was exit 9, "output cannot be written", which sends whoever is alerted to OUT."""
    state = tmp_path / "state"
    (state / "mapping-check.json").mkdir(parents=True)  # (something in its place)
    (state / "mapping-check.json" / "x").write_text("")
    cfg = _config(tmp_path)
    cfg.write_text(cfg.read_text().replace("[[sites]]", f'[store]\npath = "{state / "s.db"}"\n\n[[sites]]'))
    code, err = _run("--config", cfg, "--out", tmp_path / "out")
    assert code == 8, err
    assert len(err.splitlines()) == 1 and f"{state / 'mapping-check.json'}" in err, err
    assert "store" in err, err


def _with_server_site(cfg: Path, spool: Path | None) -> Path:
    """`cfg` with a second site, amr, read from a FHIR server by Bulk export, its spool_dir
    `spool` (none: the default, next to the store)."""
    table = f'spool_dir = "{spool}"\n' if spool is not None else ""
    server = cfg.with_name("server.toml")
    server.write_text(
        cfg.read_text()
        + '\n[[sites]]\nid = "amr"\nsource = "https://fhir.example.invalid/r4"\n'
        + f"\n[sites.server]\nbulk = true\n{table}"
    )
    return server


@pytest.mark.parametrize("inside", ["spool", "", "deep/spool"])
def test_a_bulk_spool_inside_a_sites_source_folder_is_refused(tmp_path: Path, inside: str) -> None:
    """A server site's `spool_dir` inside a file site's source folder: the export's NDJSON was
    downloaded there (`<spool_dir>/amr/0002.Observation.ndjson`), and read as site uci's data
    (another site's patients) whenever a run stopped before the job ended. Refused on load, as
    a store folder there is: exit 3, naming the server table, the key and the site."""
    src, cfg, held = _site_folder(tmp_path)
    code, err = _run("--config", _with_server_site(cfg, src / inside), "--out", tmp_path / "out")
    assert code == 3, err
    assert len(err.splitlines()) == 1, err
    assert "[sites.server] (site 'amr'): key 'spool_dir'" in err, err
    assert "site uci" in err and f"inside its source folder {src}" in err, err
    assert sorted(p.name for p in src.iterdir()) == held
    assert not (tmp_path / "out").exists()


def test_a_bulk_spool_outside_every_source_folder_loads(tmp_path: Path) -> None:
    """A spool_dir beside the source folder (`bulk-spool` next to `bulk`, or a folder whose
    name only starts like it), or the default one: the configuration loads."""
    from cohort.config import load_config

    src, cfg, _ = _site_folder(tmp_path)
    for spool in (tmp_path / "bulk-spool", tmp_path / "spool", None):
        loaded = load_config(_with_server_site(cfg, spool))
        assert [s.id for s in loaded.sites] == ["uci", "amr"]


def test_a_relative_spool_inside_a_relative_source_folder_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`source = "bulk"` and `spool_dir = "bulk/spool"` in one config: the source was taken
    from the config's folder, the spool from the working directory (/ or $HOME under cron), so
    the check saw two different folders and let the spool in; both are the config's now."""
    src, cfg, held = _site_folder(tmp_path)
    cfg.write_text(cfg.read_text().replace(f'"{src}"', '"bulk"'))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, err = _run("--config", _with_server_site(cfg, Path("bulk/spool")), "--out", tmp_path / "out")
    assert code == 3, err
    assert "[sites.server] (site 'amr'): key 'spool_dir'" in err, err
    assert f"inside its source folder {src}" in err, err
    assert sorted(p.name for p in src.iterdir()) == held
    assert not (elsewhere / "bulk").exists()


FILE_KEYS = ("token_file", "password_file", "private_key_file", "ca_bundle", "spool_dir")


def _server_config(folder: Path, key: str, value: str) -> Path:
    """folder/etc/site.toml: site uci (files), then site amr on a FHIR server whose
    [sites.server] table sets `key` to `value` (a TOML string)."""
    etc = folder / "etc"
    etc.mkdir(exist_ok=True)
    cfg = etc / "site.toml"
    cfg.write_text(
        f'[trial]\nid = "sirius-sle-2"\n\n[[sites]]\nid = "uci"\nsource = "{UCI}"\n\n'
        '[[sites]]\nid = "amr"\nsource = "https://fhir.example.invalid/r4"\n'
        f'[sites.server]\n{key} = "{value}"\n'
    )
    return cfg


@pytest.mark.parametrize("key", FILE_KEYS)
@pytest.mark.parametrize("written", ["secrets/x", "./secrets/x", "~/secrets/x", "ABS"])
def test_a_server_file_key_is_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str, written: str
) -> None:
    """`token_file = "secrets/token"` beside the config was read from the working directory,
    / or $HOME under cron and systemd, and `~` was not expanded in ca_bundle or spool_dir: the
    file keys of [sites.server] are resolved as `source` and `[store] path` are now, relative
    to the config file's folder with `~` expanded, as the config loads."""
    from cohort.config import load_config

    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(elsewhere.mkdir() or elsewhere)
    meant = {
        "secrets/x": tmp_path / "etc" / "secrets" / "x",
        "./secrets/x": tmp_path / "etc" / "secrets" / "x",
        "~/secrets/x": home / "secrets" / "x",
        "ABS": tmp_path / "abs" / "x",
    }[written]
    meant.parent.mkdir(parents=True)
    meant.write_text("-----BEGIN CERTIFICATE-----\n")  # (a ca_bundle must be there on load)
    cfg = _server_config(tmp_path, key, str(meant) if written == "ABS" else written)
    assert load_config(cfg).sites[1].server[key] == str(meant)


@pytest.mark.parametrize("key", FILE_KEYS)
@pytest.mark.parametrize("blank", ["", "  "])
@pytest.mark.usefixtures("no_read")
def test_a_blank_server_file_key_is_exit_3_naming_it(tmp_path: Path, key: str, blank: str) -> None:
    """`token_file = ""` was taken as no file at all, and `spool_dir = " "` as a folder named
    " " in the working directory: a blank file key is a config error naming it, as a blank
    `[store] path` or `source` is."""
    cfg = _server_config(tmp_path, key, blank)
    code, err = _run("--config", cfg, "--out", tmp_path / "out")
    assert code == 3, err
    assert err.startswith(f"cohort: error: {cfg} [sites.server] (site 'amr'): key '{key}' is empty")
    assert len(err.splitlines()) == 1, err


@pytest.mark.parametrize("key", FILE_KEYS)
@pytest.mark.usefixtures("no_read")
def test_a_path_naming_no_user_is_exit_3_not_a_bug(tmp_path: Path, key: str) -> None:
    """`~nosuchuser/x` made Path.expanduser raise RuntimeError: "internal error
    (RuntimeError); this is a bug", exit 1, for a mistyped path in the config."""
    cfg = _server_config(tmp_path, key, "~nosuchuser-cohort/x")
    code, err = _run("--config", cfg, "--out", tmp_path / "out")
    assert code == 3, err
    assert err == (
        f"cohort: error: {cfg}: '~nosuchuser-cohort' in a path names no user on this machine\n"
    ), err
