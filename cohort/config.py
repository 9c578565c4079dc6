"""Run configuration: TOML -> typed settings; errors name the file and key."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cohort.errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent
_SITE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
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
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(f"{where}: key '{key}' must be a {kind.__name__}")
    return value


def load_config(path: Path) -> Config:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: config file not found") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    base = path.resolve().parent

    def resolve(p: str) -> Path:
        q = Path(p).expanduser()
        return q if q.is_absolute() else base / q

    trial = data.get("trial", {})
    if not isinstance(trial, dict):
        raise ConfigError(f"{path}: [trial] must be a table")
    trial_id = _get(trial, "id", str, f"{path} [trial]")
    mappings = resolve(trial["mappings"]) if "mappings" in trial else shipped("mappings")
    store = data.get("store", {})
    run = data.get("run", {})
    raw_sites = data.get("sites")
    if not isinstance(raw_sites, list) or not raw_sites:
        raise ConfigError(f"{path}: at least one [[sites]] table is required")
    sites: list[SiteConfig] = []
    for i, s in enumerate(raw_sites):
        where = f"{path} [[sites]] #{i + 1}"
        sid = _get(s, "id", str, where)
        if not _SITE_ID.match(sid):
            raise ConfigError(
                f"{where}: key 'id': '{sid}' must be lower-case letters, digits, - or _"
            )
        if any(x.id == sid for x in sites):
            raise ConfigError(f"{where}: key 'id': duplicate site '{sid}'")
        source = _get(s, "source", str, where)
        if not source.startswith(("http://", "https://")):
            source = str(resolve(source))
        min_age = s.get("min_age")
        if min_age is not None and (isinstance(min_age, bool) or not isinstance(min_age, int)):
            raise ConfigError(f"{where}: key 'min_age' must be a whole number")
        server = s.get("server", {})
        if not isinstance(server, dict):
            raise ConfigError(f"{where}: [sites.server] must be a table")
        sites.append(SiteConfig(sid, str(s.get("name", sid)), source, min_age, server))
    validate = _get(run, "validate", str, f"{path} [run]", "fast")
    if validate not in ("fast", "full"):
        raise ConfigError(f"{path} [run]: key 'validate' must be 'fast' or 'full'")
    where = f"{path} [run]"
    workers = _get(run, "workers", int, where, 0)
    chunk_mb = _get(run, "chunk_mb", int, where, 16)
    if workers < 0:
        raise ConfigError(f"{where}: key 'workers' must be 0 (one per core) or more")
    if not 1 <= chunk_mb <= 4096:
        raise ConfigError(f"{where}: key 'chunk_mb' must be between 1 and 4096")
    max_removal = run.get("max_snapshot_removal", 0.5)
    if (
        isinstance(max_removal, bool)
        or not isinstance(max_removal, int | float)
        or not (0 <= max_removal <= 1)
    ):
        raise ConfigError(f"{where}: key 'max_snapshot_removal' must be a number from 0 to 1")
    return Config(
        path=path,
        trial_id=trial_id,
        mappings_dir=mappings,
        sites=sites,
        store_path=resolve(store["path"]) if "path" in store else None,
        use_unverified=bool(trial.get("use_unverified", False)),
        validate=validate,
        batch_size=_get(run, "batch_size", int, f"{path} [run]", 10000),
        snapshot=bool(run.get("snapshot", True)),
        max_snapshot_removal=float(max_removal),
        workers=workers,
        chunk_mb=chunk_mb,
    )
