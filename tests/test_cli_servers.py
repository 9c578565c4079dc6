"""CLI contract for sites read from a FHIR server: the line naming a server that is down, and the
[sites.server] table checked as the config loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cohort.cli import cli

ROOT = Path(__file__).resolve().parent.parent


def _run_on_a_dead_port(tmp_path: Path, user: str = "") -> tuple[int, Result, Path]:
    """(port, result, out) of `cohort run` on a site whose server is a loopback port nothing
    listens on (connection refused), its URL with `user` ("u:pw@") if given."""
    import socket

    # the port stays bound, never listening, through the run: closed first, it could be taken
    # meanwhile by another process's server (this machine's other test runs pick ports alike)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        cfg = tmp_path / "site.toml"
        cfg.write_text(
            '[trial]\nid = "sirius-sle-2"\n\n[[sites]]\nid = "north"\n'
            f'source = "http://{user}127.0.0.1:{port}/fhir"\n\n[sites.server]\nmax_retries = 0\n'
        )
        out = tmp_path / "o"
        return port, CliRunner().invoke(cli, ["run", "--config", str(cfg), "--out", str(out)]), out


def test_server_failure_line_names_the_site_and_host(tmp_path: Path) -> None:
    # research IT with several sites: "GET /fhir/metadata: ConnectionError" did not say which
    # site's server was down; the one line and run.json's error now do
    port, result, out = _run_on_a_dead_port(tmp_path)
    assert result.exit_code == 6
    expected = f"site 'north' (127.0.0.1:{port}): GET /fhir/metadata: ConnectionError"
    assert f"cohort: error: {expected}" in result.output
    report = json.loads((out / "run.json").read_text())
    assert report["status"] == "failed" and report["error"].startswith(expected)


def test_a_server_url_with_a_password_is_refused_without_showing_it(tmp_path: Path) -> None:
    # (the server-failure line above names the host: the config keeps secrets out of the URL)
    _, result, out = _run_on_a_dead_port(tmp_path, "u:hunter2@")
    assert result.exit_code == 3, result.output
    assert "must hold no user name, password" in result.output
    assert "hunter2" not in result.output
    assert not out.exists()  # (refused as the config loads: no run.json to hold it either)


def _two_sites(
    tmp_path: Path, server: str, source: str = "https://fhir.example.invalid/r4"
) -> Path:
    """site.toml: the sample site `uci` (files), then site `srv` on `source` with `server` as
    its [sites.server] table."""
    cfg = tmp_path / "nightly.toml"
    cfg.write_text(
        f'[trial]\nid = "sirius-sle-2"\n\n[[sites]]\nid = "uci"\n'
        f'source = "{ROOT / "sample_bundles" / "uci"}"\n\n'
        f'[[sites]]\nid = "srv"\nsource = "{source}"\n[sites.server]\n{server}\n'
    )
    return cfg


@pytest.mark.parametrize(
    ("server", "message"),
    [
        ('auth = "none"\ntimeuot = 5', "unknown key 'timeuot' (did you mean 'timeout'?)"),
        ("zzz = 1", "unknown key 'zzz' (known: alg, allow_http, auth, base_url, bulk,"),
        ('timeout = "5"', "key 'timeout' must be a number"),
        ("concurrency = true", "key 'concurrency' must be a whole number"),
        ("bulk = 1", "key 'bulk' must be true or false"),
        ("client_id = 7", "key 'client_id' must be a string"),
        ("observation_category = [1]", "key 'observation_category' must be a list of strings"),
        ('auth = "kerberos"', "key 'auth' must be one of none, bearer, basic, smart-backend"),
        ('auth = "bearer"', "auth = 'bearer' needs key 'token_env' or 'token_file'"),
        ("page_size = 0", "key 'page_size' must be >= 1"),
        # (a negative overlap moved every mark forward: that much of each night's changes
        # was skipped; a negative max_wait failed the first retry with exit 1)
        ("sync_overlap = -3600", "key 'sync_overlap' must be >= 0 (seconds)"),
        ("max_wait = -1.0", "key 'max_wait' must be >= 0 (seconds)"),
        ("bulk_timeout = 0", "key 'bulk_timeout' must be > 0 (seconds)"),
        ("bulk_timeout = -5", "key 'bulk_timeout' must be > 0 (seconds)"),
        ("max_wait = nan", "key 'max_wait' must be >= 0 (seconds)"),
        ('token_url = "http://idp.example.invalid/token"', "key 'token_url' must be an https URL"),
        ('ca_bundle = "/nonexistent/ca.pem"', "key 'ca_bundle': file not found: /nonexistent"),
    ],
)
def test_a_server_table_mistake_is_exit_3_naming_file_table_and_key(
    tmp_path: Path, server: str, message: str
) -> None:
    """A [sites.server] mistake was found only when that site's turn came, after every earlier
    site had been read into the store, and named neither the config file nor the table
    ("site 'srv': unknown key 'timeuot' (known: ...)"). It is found as the config loads now,
    in the wording of every other config error, before anything is read or written."""
    cfg = _two_sites(tmp_path, server)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["run", "--config", str(cfg), "--out", str(out)])
    assert result.exit_code == 3, result.output
    assert result.output.startswith(f"cohort: error: {cfg} [sites.server] (site 'srv'): {message}")
    assert result.output.count("\n") == 1
    assert not out.exists()  # (no store, no run.json: nothing was read)


def test_a_server_table_is_checked_without_its_secrets(tmp_path: Path) -> None:
    """Secrets are read when the site's turn comes (a key file may appear through systemd's
    LoadCredential only then): a missing one is not a config error as the config loads."""
    from cohort.config import load_config

    server = (
        'auth = "smart-backend"\nclient_id = "c"\nprivate_key_file = "/nonexistent/key.pem"\n'
        'token_url = "https://idp.example.invalid/token"'
    )
    cfg = load_config(_two_sites(tmp_path, server))
    assert cfg.sites[1].server["private_key_file"] == "/nonexistent/key.pem"


def test_a_misspelt_server_key_on_a_file_site_is_exit_3(tmp_path: Path) -> None:
    """A misspelt [sites.server] key on a site read from a folder was ignored without a word."""
    cfg = _two_sites(tmp_path, 'auht = "none"', source=str(ROOT / "sample_bundles" / "amr"))
    result = CliRunner().invoke(cli, ["run", "--config", str(cfg), "--out", str(tmp_path / "o")])
    assert result.exit_code == 3, result.output
    assert result.output == (
        f"cohort: error: {cfg} [sites.server] (site 'srv'): unknown key 'auht' "
        "(did you mean 'auth'?)\n"
    )


def test_a_server_table_on_a_file_site_is_a_warning_not_an_error(tmp_path: Path) -> None:
    """A site moved from its FHIR server to a folder of exported files (an outage, a file drop
    replacing the server) keeps its [sites.server] table to move back: valid yesterday, it was
    refused (exit 3) today, stopping the nightly run over settings that change nothing. It is
    read as before, with a run.json warning that the table is not used (review); a misspelt
    key in it is still exit 3."""
    import json

    cfg = _two_sites(tmp_path, 'auth = "none"', source=str(ROOT / "sample_bundles" / "amr"))
    out = tmp_path / "o"
    result = CliRunner().invoke(cli, ["run", "--config", str(cfg), "--out", str(out)])
    assert result.exit_code == 0, result.output
    warnings = json.loads((out / "run.json").read_text())["sites"]["srv"]["warnings"]
    assert any("[sites.server] is not used" in w for w in warnings), warnings


def test_full_refresh_help_says_it_tries_remembered_server_quirks_again() -> None:
    # docs/scheduling.md: --full-refresh also re-probes what a server was found to refuse
    # (cohort/source/fhir/quirks.py); the option's own help is where an operator looks first
    result = CliRunner().invoke(cli, ["run", "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "server quirks" in said, said
    # each kind of quirk docs/scheduling.md lists ("Such fallbacks are remembered")
    for param in ("_count", "category", "combo-code", "_include", "_lastUpdated", "Bulk _type",
                  "_typeFilter"):
        assert param in said, (param, said)
