"""Research IT's first deployment (docs/scheduling.md, docs/operations.md): the one-line messages
of a SMART key that is no private key, credentials a server refuses, a secret missing for one
of several sites, a store on a full disk, and paths named from cron's working folder `/`.

Each test's docstring says what the message said before.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
import responses
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fhir_fakes import BASE, oo
from test_reliability_support import AS_OF, write_config

from cohort.cli import cli
from cohort.errors import ConfigError, StoreError, cwd_relative
from cohort.source.fhir.auth import SmartBackendAuth
from cohort.source.fhir.settings import ServerSettings
from cohort.store import Store


def _smart(tmp_path: Path, pem: bytes, alg: str = "RS384") -> ServerSettings:
    key = tmp_path / "key.pem"
    key.write_bytes(pem)
    return ServerSettings.from_dict({"base_url": BASE, "auth": "smart-backend", "client_id": "c",
                                     "private_key_file": str(key), "alg": alg}, "w")  # fmt: skip


def _private_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())  # fmt: skip


def test_a_public_key_in_private_key_file_is_a_config_error(tmp_path: Path) -> None:
    """The public half (the file `openssl pkey -pubout` writes, to register with the EHR) named
    as `private_key_file` was `internal error (AttributeError); this is a bug`, exit 1, at the
    first token request."""
    pub = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    pem = pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ConfigError) as e:
        SmartBackendAuth(_smart(tmp_path, pem), None)  # type: ignore[arg-type]
    said = str(e.value)
    assert "private_key_file" in said and "a public key, not the private key" in said
    assert "BEGIN" not in said


def test_a_key_of_another_kind_than_alg_is_a_config_error(tmp_path: Path) -> None:
    """An EC P-384 key with `alg = "RS384"` (the default) was exit 7, `cannot sign client
    assertion with RS384: InvalidKeyError`: "credentials refused, renew them", where the fix is
    `alg = "ES384"` in the config."""
    pem = _private_pem(ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(ConfigError) as e:
        SmartBackendAuth(_smart(tmp_path, pem), None)  # type: ignore[arg-type]
    assert "an EC key" in str(e.value) and "alg = 'RS384' needs an RSA key" in str(e.value)
    pem = _private_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    with pytest.raises(ConfigError, match="an RSA key.*alg = 'ES384' needs an EC P-384 key"):
        SmartBackendAuth(_smart(tmp_path, pem, "ES384"), None)  # type: ignore[arg-type]


def test_garbage_in_private_key_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is no PEM private key"):
        SmartBackendAuth(_smart(tmp_path, b"not a key\n"), None)  # type: ignore[arg-type]


def _run(config: Path, out: Path) -> tuple[int, str]:
    res = CliRunner().invoke(cli, ["run", "--config", str(config), "--as-of", AS_OF, "--out", str(out)])
    return res.exit_code, res.output.strip().splitlines()[-1]


def test_a_secret_missing_for_one_site_names_the_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`cohort: error: bearer token: environment variable UCI_TOKEN is not set` did not say
    which site's: the `[sites.server]` tables of several sites name several variables."""
    monkeypatch.delenv("UCI_TOKEN", raising=False)
    cfg = write_config(tmp_path, {"uci": BASE}, server={"uci": {"auth": "bearer", "token_env": "UCI_TOKEN"}})
    code, line = _run(cfg, tmp_path / "out")
    assert code == 3
    assert line == "cohort: error: site 'uci': bearer token: environment variable UCI_TOKEN is not set"


@responses.activate
def test_credentials_refused_by_the_server_say_which_to_renew(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrong token was `... GET /r4/metadata: HTTP 401: error login`: nothing said it was the
    token of `token_env` that the server refused (exit 7)."""
    monkeypatch.setenv("UCI_TOKEN", "wrong-token-123")
    responses.add(responses.GET, re.compile(".*"), status=401, json=oo("who are you", "login"))
    cfg = write_config(tmp_path, {"uci": BASE}, server={"uci": {"auth": "bearer", "token_env": "UCI_TOKEN"}})
    code, line = _run(cfg, tmp_path / "out")
    assert code == 7 and "wrong-token-123" not in line
    assert line.endswith(": HTTP 401: error login; the server refused the credentials "
                         "(auth = bearer, token_env UCI_TOKEN): renew them")  # fmt: skip


def test_the_smart_token_refusal_names_what_the_ehr_registered(tmp_path: Path) -> None:
    from cohort.source.fhir.auth import renew_hint

    pem = _private_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    key = tmp_path / "key.pem"
    key.write_bytes(pem)
    s = ServerSettings.from_dict({"base_url": BASE, "auth": "smart-backend", "client_id": "cohort-app",
                                  "private_key_file": str(key), "key_id": "k-2026"}, "w")  # fmt: skip
    assert renew_hint(s) == ("the server refused the credentials (auth = smart-backend, client_id "
                             "'cohort-app', key_id 'k-2026'): check them against the client and "
                             "the public key (JWKS) registered at the EHR")  # fmt: skip
    s = ServerSettings.from_dict({"base_url": BASE, "auth": "basic", "username": "svc",
                                  "password_file": "/etc/cohort/pw"}, "w")  # fmt: skip
    assert renew_hint(s) == ("the server refused the credentials (auth = basic, username 'svc', "
                             "password_file /etc/cohort/pw): renew them")  # fmt: skip


def test_paths_from_the_root_folder_stay_absolute(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under cron or systemd the working folder is `/`: a mapping error read
    `tmp/maps/concepts/labs.csv:4: ...`, a relative path that is no path from anywhere."""
    monkeypatch.chdir("/")
    assert cwd_relative(Path("/srv/cohort/maps/labs.csv")) == "/srv/cohort/maps/labs.csv"


def test_a_store_on_a_full_disk_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite says `disk I/O error` when it cannot grow its -shm file on a full disk: exit 8
    `cannot open store ...: OperationalError: disk I/O error` read as a failing disk or a damaged
    store (which docs/operations.md has moved away), where the fix is to free space."""
    import cohort.store.db as db
    import cohort.store.why as why

    def full(*_a: object, **_k: object) -> sqlite3.Connection:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(db.sqlite3, "connect", full)
    monkeypatch.setattr(why.shutil, "disk_usage", lambda _p: type("U", (), {"free": 4096})())
    with pytest.raises(StoreError) as e:
        Store(tmp_path / "store.sqlite")
    assert str(e.value).endswith("OperationalError: disk I/O error (4 KiB free on the store's "
                                 "file system: disk full?)")  # fmt: skip


def test_a_missing_key_file_written_relative_to_the_config_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`private_key_file = "keys/cohort.pem"` (relative to the config's folder, as documented)
    missing read `cannot read private_key_file (named in the config; not a path from /, ~ or
    .)`: which file was looked for went unsaid. A folder of that name beside the config makes it
    a path; a value with no such folder (a pasted key or token) is still not quoted."""
    from cohort.config import load_config, server_settings

    (tmp_path / "keys").mkdir()
    cfg = write_config(tmp_path, {"uci": BASE}, server={"uci": {
        "auth": "smart-backend", "client_id": "c", "private_key_file": "keys/cohort.pem"}})  # fmt: skip
    monkeypatch.chdir("/")
    loaded = load_config(cfg)
    with pytest.raises(ConfigError) as e:
        SmartBackendAuth(server_settings(loaded.sites[0], loaded.path), None)  # type: ignore[arg-type]
    assert str(e.value) == (f"smart-backend: cannot read private_key_file {tmp_path / 'keys' / 'cohort.pem'}: "
                            "No such file or directory")  # fmt: skip
    cfg = write_config(tmp_path, {"uci": BASE}, server={"uci": {
        "auth": "bearer", "token_file": "abc/def+ghi=="}})  # fmt: skip
    loaded = load_config(cfg)
    s = server_settings(loaded.sites[0], loaded.path)
    assert s.shown_file("token_file") == "(named in the config; not quoted, as it may be the secret itself)"


def test_a_store_gone_since_the_last_run_is_a_warning(tmp_path: Path) -> None:
    """A store deleted, moved, or on a volume not mounted that night was made anew without a
    word: every site read in full (a server pulled everything again, as by --full-refresh), the
    run's history started again, exit 0 and run.json clean."""
    from datetime import date

    from test_reliability_support import copy_site

    from cohort.config import load_config
    from cohort.runner import run

    store = tmp_path / "state" / "store.sqlite"
    cfg = write_config(tmp_path, {"uci": str(copy_site("uci", tmp_path / "feed"))}, store=store)
    out = tmp_path / "out"
    first = run(load_config(cfg), date.fromisoformat(AS_OF), out)
    assert first["warnings"] == []  # (a first run into an empty OUT: nothing to say)
    for f in store.parent.glob("store.sqlite*"):
        f.unlink()
    again = run(load_config(cfg), date.fromisoformat(AS_OF), out)
    assert again["status"] == "success"
    assert again["warnings"] == [
        f"the store {store} was not there, though {out} holds an earlier run's lists: a new store "
        "was made and every site read in full (a server site's records all pulled again, as by "
        "--full-refresh); moved, or its volume not mounted? point [store] path at it"
    ]
    assert run(load_config(cfg), date.fromisoformat(AS_OF), out)["warnings"] == []
