"""Run configuration: TOML -> typed settings; errors name the file and key."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cohort.errors import KIND_NAMES, ConfigError, did_you_mean
from cohort.lockfiles import data_files
from cohort.tomllines import config_line
from cohort.tomlsyntax import loads
from cohort.utf8 import utf8_text

if TYPE_CHECKING:
    from cohort.source.fhir.settings import ServerSettings

PACKAGE_DIR = Path(__file__).resolve().parent
_SITE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
# A URL's scheme (RFC 3986: a letter, then letters, digits, + - .; any case) and ":/": a source
# so written is meant as a URL, never a folder (a Windows drive, "C:/", has a one-letter one)
_URL_START = re.compile(r"\s*([A-Za-z][A-Za-z0-9+.-]+):/")
SEED_SITES = (
    ("uci", "University of Calif Irvine Med Cntr", "Irvine, California 92660"),
    ("amr", "Advanced Medical Research", "La Palma, California 90623"),
)


def shipped(name: str) -> Path:
    """A folder shipped with the project (`mappings`, `sample_bundles`): repo checkout or wheel."""
    for candidate in (PACKAGE_DIR.parent / name, PACKAGE_DIR / f"_{name}", Path.cwd() / name):
        if candidate.is_dir():
            return candidate
    return PACKAGE_DIR.parent / name


@dataclass
class SiteConfig:
    id: str
    name: str
    source: str  # a directory/file path (absolute) or a FHIR base URL
    min_age: int | None = None
    server: dict[str, Any] = field(default_factory=dict)
    where: str = ""  # "<config file> [[sites]] #N", for messages (load_config)
    mrn_systems: tuple[str, ...] = ()  # `mrn_system`: Patient.identifier systems of the MRN
    # how messages name `server`'s secret files (settings.resolve_files; a server site's only)
    shown: dict[str, str] = field(default_factory=dict)

    @property
    def is_url(self) -> bool:
        return self.source.startswith(("http://", "https://"))


@dataclass
class Config:
    path: Path | None
    trial_id: str
    mappings_dir: Path
    sites: list[SiteConfig]
    store_path: Path | None = None  # None: OUT/.cohort/store.sqlite
    use_unverified: bool = False
    validate: str = "fast"
    batch_size: int = 10000  # resources per store transaction (bench/RESULTS.md)
    snapshot: bool = True  # a file source is a full snapshot: records gone from it are dropped
    max_snapshot_removal: float = 0.5  # ... but a read lacking more of a type's records fails
    workers: int = 0  # processes reading files and evaluating: 0 = one per core (max 4) when large
    chunk_mb: int = 16  # a plain NDJSON file is read in pieces of this size (bounds memory)

    @property
    def trial_path(self) -> Path:
        return self.mappings_dir / "trials" / f"{self.trial_id}.toml"

    def trial_file(self) -> Path:
        """`trial_path`; a ConfigError naming `[trial] id` (and the trial meant) when the
        mappings' trials/ folder has no such file (a typo of the id, not a broken file)."""
        path, folder = self.trial_path, self.mappings_dir / "trials"
        try:
            # (a missing or unreadable folder, a file that is there but cannot be read, or a
            # folder in its place: the loader's own error, which names it, as in a run)
            if path.exists() or not folder.is_dir():
                return path
        except OSError:
            return path
        names = [p.stem for p in data_files(folder, "*.toml")]
        hint = did_you_mean(self.trial_id, names) or f"trials there: {', '.join(names) or 'none'}"
        where = f"{self.path} [trial]" if self.path else "[trial]"
        raise ConfigError(f"{where}: key 'id': no criteria file {path} ({hint})")


def default_config() -> Config:
    """The shipped sample data for the two seed sites; no file needed."""
    samples = shipped("sample_bundles")
    return Config(
        path=None,
        trial_id="sirius-sle-2",
        mappings_dir=shipped("mappings"),
        sites=[SiteConfig(sid, name, str(samples / sid)) for sid, name, _ in SEED_SITES],
    )


def _get(table: dict[str, Any], key: str, kind: type, where: str, default: Any = None) -> Any:
    if key not in table:
        if default is None:
            raise ConfigError(f"{where}: missing key '{key}'")
        return default
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)  # (1 and 0 as TOML writes them)
    if kind in (int, float) and isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(f"{where}: key '{key}' must be {KIND_NAMES.get(kind, kind.__name__)}")
    return value


def _folder(table: dict[str, Any], key: str, where: str, instead: str) -> str:
    """A path key's text, refused when blank: it resolved to the config file's own folder (the
    store opened there, exit 8, its lock written there; its mapping files not found, exit 4)."""
    value: str = _get(table, key, str, where)
    if not value.strip():
        raise ConfigError(f"{where}: key '{key}' is empty ({instead})")
    return value


# Every key a configuration may hold, by table: anything else is a typo that would otherwise be
# ignored without a word (`min_agee = 18` left the site's age limit at the trial's).
_KEYS = {
    "": ("trial", "store", "run", "sites"),
    "trial": ("id", "mappings", "use_unverified"),
    "store": ("path",),
    "run": (
        "validate",
        "workers",
        "chunk_mb",
        "batch_size",
        "snapshot",
        "max_snapshot_removal",
    ),
    "sites": ("id", "name", "source", "min_age", "server", "mrn_system"),
}


def _table(data: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    """`data[name]` (a table; empty when absent), its keys checked against _KEYS."""
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [{name}] must be a table")
    _known_keys(table, name, f"{where} [{name}]")
    return table


def _known_keys(table: dict[str, Any], name: str, where: str) -> None:
    known = _KEYS[name]
    for key in table:
        if key not in known:
            hint = did_you_mean(key, known) or f"known: {', '.join(known)}"
            raise ConfigError(f"{where}: unknown key '{key}' ({hint})")


def load_config(path: Path, *, writing: bool = True) -> Config:
    """The configuration in `path`, every key checked (ConfigError naming file and key).
    `writing=False` for a command that writes neither the store nor a Bulk spool (`mappings
    check`, `explain`): only then may they lie inside a site's source folder, a place a run
    refuses to write (the next night reads what it left there as the site's data)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: config file not found") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from exc
    text = utf8_text(raw, str(path), ConfigError)
    try:
        return _load(path, text, writing)
    except ConfigError as exc:
        said = str(exc).removeprefix(str(path))
        line = config_line(text, said) if said != str(exc) else None
        if line is None:
            raise
        raise ConfigError(f"{path}:{line}: {said.lstrip(' ').removeprefix(': ')}") from None


def _load(path: Path, text: str, writing: bool) -> Config:
    """`load_config` of the file's `text`."""
    data = loads(text, str(path), ConfigError)
    base = path.resolve().parent

    def resolve(p: str) -> Path:
        try:
            q = Path(p).expanduser()
        except RuntimeError:  # ("~name/..." for a user this machine does not have)
            user = p.split("/", 1)[0]  # (only that part: the value may be a pasted secret)
            raise ConfigError(f"{path}: '{user}' in a path names no user on this machine") from None
        return q if q.is_absolute() else base / q

    _known_keys(data, "", str(path))
    trial = _table(data, "trial", str(path))
    where = f"{path} [trial]"
    trial_id = _get(trial, "id", str, where)
    shipped_ones = "leave the key out for the shipped mappings"
    mappings = (
        resolve(_folder(trial, "mappings", where, shipped_ones)) if "mappings" in trial else None
    )
    use_unverified = _get(trial, "use_unverified", bool, where, False)
    store = _table(data, "store", str(path))
    default_store = "leave [store] out for OUT/.cohort/store.sqlite"
    store_path = (
        resolve(_folder(store, "path", f"{path} [store]", default_store)) if store else None
    )
    sites = _sites(data.get("sites"), path, resolve)
    if writing:
        _written_outside_sources(store_path, sites, path)
    run = _table(data, "run", str(path))
    where = f"{path} [run]"
    validate = _get(run, "validate", str, where, "fast")
    if validate not in ("fast", "full"):
        raise ConfigError(f"{where}: key 'validate' must be 'fast' or 'full'")
    workers = _get(run, "workers", int, where, 0)
    if workers < 0:
        raise ConfigError(f"{where}: key 'workers' must be 0 (one per core) or more")
    chunk_mb = _get(run, "chunk_mb", int, where, 16)
    if not 1 <= chunk_mb <= 4096:
        raise ConfigError(f"{where}: key 'chunk_mb' must be between 1 and 4096")
    batch_size = _get(run, "batch_size", int, where, 10000)
    if batch_size < 1:
        raise ConfigError(f"{where}: key 'batch_size' must be 1 or more")
    max_removal = _get(run, "max_snapshot_removal", float, where, 0.5)
    if not 0 <= max_removal <= 1:
        raise ConfigError(f"{where}: key 'max_snapshot_removal' must be a number from 0 to 1")
    return Config(
        path=path,
        trial_id=trial_id,
        mappings_dir=mappings or shipped("mappings"),
        sites=sites,
        store_path=store_path,
        use_unverified=use_unverified,
        validate=validate,
        batch_size=batch_size,
        snapshot=_get(run, "snapshot", bool, where, True),
        max_snapshot_removal=max_removal,
        workers=workers,
        chunk_mb=chunk_mb,
    )


def _sites(raw: Any, path: Path, resolve: Callable[[str], Path]) -> list[SiteConfig]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{path}: at least one [[sites]] table is required")
    sites: list[SiteConfig] = []
    for i, s in enumerate(raw):
        where = f"{path} [[sites]] #{i + 1}"
        if not isinstance(s, dict):
            raise ConfigError(f"{where}: must be a table")
        _known_keys(s, "sites", where)
        sid = _get(s, "id", str, where)
        if not _SITE_ID.fullmatch(sid):
            raise ConfigError(
                f"{where}: key 'id': '{sid}' must be lower-case letters, digits, - or _"
            )
        if any(x.id == sid for x in sites):
            raise ConfigError(f"{where}: key 'id': duplicate site '{sid}'")
        source = _get(s, "source", str, where)
        if not source.strip():  # (else the config's own folder, and all under it, was read)
            raise ConfigError(f"{where}: key 'source' is empty (a folder, a file or a FHIR URL)")
        url = _url_source(source, where)
        source = url if url is not None else str(resolve(source))
        min_age = s.get("min_age")
        if min_age is not None:
            min_age = _get(s, "min_age", int, where)
            if not 0 <= min_age <= 150:
                raise ConfigError(f"{where}: key 'min_age' must be a whole number from 0 to 150")
        server = s.get("server", {})
        if not isinstance(server, dict):
            raise ConfigError(f"{where}: [sites.server] must be a table")
        name = _get(s, "name", str, where, sid)
        site = SiteConfig(sid, name, source, min_age, server, where, _mrn_systems(s, where))
        if site.is_url:  # (checked now, not when its turn comes after other sites were read)
            _resolve_server_files(site, path, resolve)
            server_settings(site, path)
        elif site.server:  # (ignored, as before; a misspelt key is an error as anywhere)
            _check_server_keys(site, path)
        sites.append(site)
    return sites


def inside_a_source(what: str, folder: Path, sites: Sequence[SiteConfig]) -> str | None:
    """Why `folder` (`what`: OUT, the store's folder, a Bulk spool) cannot be written to, when
    it is a site's source folder or inside it (links followed): the next night reads what a run
    writes there (run.json, mapping-check.json, a Bulk spool) as the site's data. None when it
    is in none (a server's site has no folder)."""
    real = Path(os.path.realpath(folder))
    for site in sites:
        if not site.is_url and real.is_relative_to(os.path.realpath(site.source)):
            return (
                f"site {site.id}: {what} is inside its source folder {site.source}, and the next"
                " run would read the files written there as the site's data"
            )
    return None


def _written_outside_sources(store_path: Path | None, sites: list[SiteConfig], path: Path) -> None:
    """ConfigError for `[store] path`, or a server site's `spool_dir`, inside a site's source
    folder: the store's folder holds mapping-check.json, and a run stopped before its export
    job ended leaves the job's NDJSON in the spool, both read as that site's data. (The default
    spool, next to the store, is checked with the store's folder, or with OUT.)"""
    if store_path is not None:
        said = inside_a_source(f"the store's folder {store_path.parent}", store_path.parent, sites)
        if said is not None:
            raise ConfigError(f"{path} [store]: key 'path': {said}; put the store outside it")
    for site in sites:
        spool_dir = site.server.get("spool_dir") if site.is_url else None
        if not isinstance(spool_dir, str) or not spool_dir:
            continue
        spool = Path(spool_dir) / site.id  # (resolved by _resolve_server_files)
        said = inside_a_source(f"the Bulk spool folder {spool}", spool, sites)
        if said is not None:
            where = _server_where(site, path)
            raise ConfigError(f"{where}: key 'spool_dir': {said}; put the spool outside it")


def _mrn_systems(site: dict[str, Any], where: str) -> tuple[str, ...]:
    """A site's `mrn_system`: one identifier system URI or a list of them (none when absent)."""
    value = site.get("mrn_system", [])
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ConfigError(f"{where}: key 'mrn_system' must be a string or a list of strings")
    # (compared with identifier systems stripped; an empty one would be a silent no-op)
    systems = tuple(v.strip() for v in values)
    if "mrn_system" in site and (not systems or not all(systems)):
        raise ConfigError(
            f"{where}: key 'mrn_system' is empty (the system of the site's MRN identifiers,"
            ' e.g. "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14")'
        )
    return systems


def _url_source(source: str, where: str) -> str | None:
    """`source` as the http(s) URL it is meant as (the scheme in lower case, as `is_url` and
    the FHIR client read it; spaces around it dropped), or None for a folder or a file. A URL
    of another scheme, or "https:/" short of a slash, is a ConfigError: taken for a folder, it
    was quoted whole by "data path not found", with any password in it. The message quotes the
    scheme only."""
    m = _URL_START.match(source)
    if m is None:
        return None
    scheme, rest = m[1].lower(), source.strip()[len(m[1]) :]
    if scheme in ("http", "https") and rest.startswith("://"):
        return scheme + rest
    raise ConfigError(
        f"{where}: key 'source' is a URL ('{m[1]}:/...') but not an http:// or https:// one "
        "(a FHIR server's base URL), nor a folder or a file"
    )


def _server_where(site: SiteConfig, path: Path | None) -> str:
    return f"{path} [sites.server] (site '{site.id}')" if path else f"site '{site.id}'"


def _resolve_server_files(site: SiteConfig, path: Path, resolve: Callable[[str], Path]) -> None:
    """A server site's file keys (`token_file`, `spool_dir`, ...) resolved in `site.server` as
    the config's other paths are, so every later use reads the same file wherever it runs."""
    from cohort.source.fhir.settings import resolve_files  # (server sites only)

    site.server, site.shown = resolve_files(site.server, _server_where(site, path), resolve)


def server_settings(site: SiteConfig, path: Path | None) -> ServerSettings:
    """A FHIR server site's settings: its `source` URL and [sites.server] table, checked as
    every config key is (ConfigError naming the config file `path`, the table and the key).
    Secrets are not read here: cohort.source.fhir.auth reads them when the site's turn comes."""
    from cohort.source.fhir.settings import ServerSettings, no_secret  # (server sites only)

    url_at = None if "base_url" in site.server else (site.where or f"site '{site.id}'", "source")
    if url_at is None:  # (base_url is the URL used; the source is written to run.json still)
        no_secret(site.source, site.where or f"site '{site.id}'", "source")
    table = {"base_url": site.source, **site.server}
    settings = ServerSettings.from_dict(table, _server_where(site, path), url_at=url_at)
    settings.shown = dict(site.shown)
    return settings


def _check_server_keys(site: SiteConfig, path: Path) -> None:
    """[sites.server] on a site read from files: its settings are not used (ingest warns in
    run.json; a site moved to a folder of exports keeps them to move back), but a misspelt key
    is named, as in every table."""
    from cohort.source.fhir.settings import ServerSettings

    ServerSettings.check_keys(site.server, _server_where(site, path))
