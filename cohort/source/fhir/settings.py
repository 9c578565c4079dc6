"""Per-site FHIR server settings parsed from a `[sites.server]` TOML table (no secrets held)."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cohort.errors import KIND_NAMES, ConfigError, did_you_mean

AUTH_KINDS = ("none", "bearer", "basic", "smart-backend")
ALGS = ("RS384", "ES384")
# The keys naming a file or folder, each with what to write instead of a blank one: resolved as
# the config loads (`resolve_files`), as its other paths are; the first three are secrets
FILE_KEYS = {
    "token_file": "a file holding the token; leave the key out to use token_env",
    "password_file": "a file holding the password; leave the key out to use password_env",
    "private_key_file": "the client's private key file (PEM)",
    "ca_bundle": "a PEM file of the server's CA; leave the key out for the system's CAs",
    "spool_dir": "a folder; leave the key out for bulk-spool/ next to the store",
}
SECRET_FILES = ("token_file", "password_file", "private_key_file")


def is_loopback(host: str) -> bool:
    """True for localhost and loopback IP literals."""
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class ServerSettings:
    """How to talk to one FHIR base URL; secrets are named (env var / file), never held."""

    base_url: str
    auth: str = "none"
    token_env: str = ""
    token_file: str = ""
    username: str = ""
    username_env: str = ""
    password_env: str = ""
    password_file: str = ""
    client_id: str = ""
    private_key_file: str = ""
    key_id: str = ""
    alg: str = "RS384"
    scope: str = "system/*.read"
    token_url: str = ""
    ca_bundle: str = ""
    allow_http: bool = False
    concurrency: int = 2
    timeout: float = 60.0
    page_size: int = 1000  # _count; servers may cap it (fewer per page is fine)
    # most ids per search (what the server tolerates; 1 for a server without multi-patient
    # search); searches start at 100 and grow where a type has few records per patient
    patient_batch: int = 1000
    bulk: bool = False
    bulk_group: str = ""
    bulk_timeout: float = 3600.0
    spool_dir: str = ""
    observation_category: list[str] = field(default_factory=list)
    max_retries: int = 5
    max_wait: float = 120.0
    max_url_length: int = 6000  # halved automatically when a server answers 414/431
    sync_overlap: float = 300.0  # seconds subtracted from a high-water mark (clock skew)
    match_system: bool = False  # search system|code; default bare codes (EHR system URIs vary)
    # not a key: how messages name the secret files of a loaded config (`resolve_files`)
    shown: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def check_keys(cls, d: dict[str, Any], where: str) -> None:
        """ConfigError for a key no server setting has, naming `where` and a "did you mean"."""
        known = sorted(f.name for f in fields(cls) if f.name != "shown")
        for key in d:
            if key not in known:
                hint = did_you_mean(key, known) or f"known: {', '.join(known)}"
                raise ConfigError(f"{where}: unknown key '{key}' ({hint})")

    @classmethod
    def from_dict(
        cls, d: dict[str, Any], where: str, url_at: tuple[str, str] | None = None
    ) -> ServerSettings:
        """Parse and validate a `[sites.server]` table; ConfigError names `where` and the key.
        `url_at`: where and under which key a mistake in `base_url` is named (the site's
        `source`, when the table does not give base_url). Secrets are not read here."""
        if not isinstance(d, dict):
            raise ConfigError(f"{where}: expected a table")
        cls.check_keys(d, where)
        if not isinstance(d.get("base_url"), str) or not d["base_url"].strip():
            raise ConfigError(f"{where}: key 'base_url' is required (a FHIR base URL)")
        defaults = cls(base_url="x")
        values: dict[str, Any] = {}
        for name, value in d.items():
            want = type(getattr(defaults, name))
            if want is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if want is list:
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ConfigError(f"{where}: key '{name}' must be a list of strings")
            elif not isinstance(value, want) or (want in (int, float) and isinstance(value, bool)):
                kind = KIND_NAMES.get(want, want.__name__)
                raise ConfigError(f"{where}: key '{name}' must be {kind}")
            values[name] = value
        s = cls(**values)
        s.base_url = s.base_url.strip().rstrip("/")
        s._check_url(*(url_at or (where, "base_url")))
        s._validate(where)
        return s

    def _check_url(self, where: str, key: str) -> None:
        parts = urlsplit(self.base_url)
        no_secret(self.base_url, where, key)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{where}: key '{key}' must be an http(s) URL, got {self.base_url!r}")
        if not self.safe_token_url(self.base_url):  # (http only where allowed, as for tokens)
            raise ConfigError(
                f"{where}: key '{key}': plain http:// is refused for non-loopback hosts "
                "(use https, or set allow_http = true in [sites.server] on a trusted network)"
            )

    def _validate(self, where: str) -> None:
        if self.auth not in AUTH_KINDS:
            raise ConfigError(f"{where}: key 'auth' must be one of {', '.join(AUTH_KINDS)}")
        if self.alg not in ALGS:
            raise ConfigError(f"{where}: key 'alg' must be one of {', '.join(ALGS)}")
        need: dict[str, list[tuple[str, ...]]] = {
            "bearer": [("token_env", "token_file")],
            "basic": [("username", "username_env"), ("password_env", "password_file")],
            "smart-backend": [("client_id",), ("private_key_file",)],
        }
        for group in need.get(self.auth, []):
            if not any(getattr(self, k) for k in group):
                keys = " or ".join(f"'{k}'" for k in group)
                raise ConfigError(f"{where}: auth = '{self.auth}' needs key {keys}")
        for key in ("concurrency", "page_size", "patient_batch"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{where}: key '{key}' must be >= 1")
        if self.max_retries < 0:
            raise ConfigError(f"{where}: key 'max_retries' must be >= 0")
        if self.timeout <= 0:
            raise ConfigError(f"{where}: key 'timeout' must be > 0 (seconds)")
        # (written as `not >=`: TOML's nan compares false either way)
        for key in ("sync_overlap", "max_wait"):
            if not getattr(self, key) >= 0:
                raise ConfigError(f"{where}: key '{key}' must be >= 0 (seconds)")
        if not self.bulk_timeout > 0:
            raise ConfigError(f"{where}: key 'bulk_timeout' must be > 0 (seconds)")
        if self.max_url_length < 200:
            raise ConfigError(f"{where}: key 'max_url_length' must be >= 200")
        if self.token_url and not self.safe_token_url(self.token_url):
            raise ConfigError(
                f"{where}: key 'token_url' must be an https URL (plain http only to a loopback"
                " host, or with allow_http = true): the token comes back in the answer"
            )
        # (not a secret: a CA bundle is checked here; the secret files, when the site's turn
        # comes, where cohort.source.fhir.auth reads them)
        if self.ca_bundle and not Path(self.ca_bundle).exists():
            raise ConfigError(f"{where}: key 'ca_bundle': file not found: {self.ca_bundle}")

    def safe_token_url(self, url: str) -> bool:
        """Whether a token endpoint may be used: https, or http where base_url may be."""
        parts = urlsplit(url)
        if parts.scheme == "https" and parts.hostname:
            return True
        return (
            parts.scheme == "http"
            and bool(parts.hostname)
            and (self.allow_http or is_loopback(parts.hostname or ""))
        )

    @property
    def verify(self) -> bool | str:
        """TLS verification for requests: on by default, or a CA bundle path."""
        return self.ca_bundle or True

    def shown_file(self, key: str) -> str:
        """A secret file key's file as a message may name it (`shown`, else `shown_path`)."""
        return self.shown.get(key) or shown_path(getattr(self, key))


def resolve_files(
    table: dict[str, Any], where: str, resolve: Callable[[str], Path]
) -> tuple[dict[str, Any], dict[str, str]]:
    """`table` with its file keys' paths resolved by `resolve` (from the config file's folder,
    `~` expanded: under cron the working directory is / or $HOME), and how messages name its
    secret files: by the resolved path when written as a path (`shown_path`), else as
    `shown_path` does, since the value may be the secret itself, which the resolved path would
    hold too. A blank one is a ConfigError naming the key; a value of the wrong type is left
    for `from_dict` to name."""
    resolved, shown = dict(table), {}
    for key, instead in FILE_KEYS.items():
        value = table.get(key)
        if not isinstance(value, str):
            continue
        if not value.strip():  # (else "" was no file, and " " a file of that name)
            raise ConfigError(f"{where}: key '{key}' is empty ({instead})")
        resolved[key] = str(resolve(value))
        if key in SECRET_FILES:
            # `keys/site.pem` beside the config (documented) is a path too when its folder is
            # there: a token or password has no folder of its first part's name beside it
            folder = "/" in value and Path(resolved[key]).parent.is_dir()
            as_path = shown_path(value) == value or (folder and not _blank_in(value))
            shown[key] = resolved[key] if as_path else shown_path(value)
    return resolved, shown


def no_secret(url: str, where: str, key: str) -> None:
    """ConfigError when a URL holds a user name, password or query: requests would send a
    user:password@ as Basic auth, and a site's URLs (its `source`, `base_url`) are written to
    run.json, the store and the messages, so a secret there would be everywhere (the message
    quotes no part of it)."""
    parts = urlsplit(url.strip())
    if "@" in parts.netloc or parts.query:
        raise ConfigError(
            f"{where}: key '{key}' must hold no user name, password or query (put "
            'credentials in auth = "basic" or "bearer" with a *_env or *_file key)'
        )


_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")


def shown_env(name: str) -> str:
    """An environment variable's name as a message may quote it: a value of another shape may
    be the secret itself, put in `token_env` or `password_env` by mistake."""
    return name if _ENV_NAME.fullmatch(name) else "(named in the config; not an upper-case name)"


def shown_path(path: str) -> str:
    """A secret file's name as a message may quote it: a path (from /, ~ or .); anything else
    may be the secret itself (a token or a PEM key pasted into `token_file`)."""
    ok = path.startswith(("/", "~", "./", "../")) and not _blank_in(path)
    return path if ok else "(named in the config; not quoted, as it may be the secret itself)"


def _blank_in(text: str) -> bool:
    return any(c.isspace() for c in text)


def read_secret(env: str, path: str, what: str, shown: str = "") -> str:
    """A secret from an environment variable or a file (first line); AuthError-free ConfigError.
    Messages quote the variable's or file's name only when shaped as one (`shown_env`; the
    file's `shown`, else `shown_path`): they go to stderr and run.json."""
    if env:
        value = os.environ.get(env, "")
        if value:
            return value.strip()
        if not path:
            raise ConfigError(f"{what}: environment variable {shown_env(env)} is not set")
    if path:
        shown = shown or shown_path(path)
        try:
            text = Path(path).expanduser().read_text(encoding="utf-8-sig")
        except OSError as e:
            raise ConfigError(f"{what}: cannot read secret file {shown}: {e.strerror}") from None
        value = text.strip().splitlines()[0].strip() if text.strip() else ""
        if not value:
            raise ConfigError(f"{what}: secret file {shown} is empty")
        return value
    raise ConfigError(f"{what}: no environment variable or file configured")
