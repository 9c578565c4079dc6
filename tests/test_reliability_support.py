"""Shared helpers of the reliability suites: configs, store consistency, output comparison.

Holds no tests itself. Each suite counts its scenarios with `Scenarios` and prints one summary
line (through the terminal reporter, so it shows even with output capture on).
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "sample_bundles"
AS_OF = "2026-11-25"
OUTPUTS = ("candidates.csv", "evidence.csv")


def write_config(
    folder: Path,
    sites: dict[str, str],
    *,
    server: dict[str, dict[str, object]] | None = None,
    run: dict[str, object] | None = None,
    store: Path | None = None,
    mappings: Path | None = None,
) -> Path:
    """A run configuration TOML in `folder` for `sites` (id -> source path or URL)."""
    lines = ["[trial]", 'id = "sirius-sle-2"']
    if mappings is not None:
        lines.append(f'mappings = "{mappings}"')
    if store is not None:
        lines += ["[store]", f'path = "{store}"']
    if run:
        lines.append("[run]")
        lines += [f"{k} = {_toml(v)}" for k, v in run.items()]
    for sid, source in sites.items():
        lines += ["[[sites]]", f'id = "{sid}"', f'name = "Site {sid}"', f'source = "{source}"']
        for k, v in ((server or {}).get(sid) or {}).items():
            lines.append(f"server.{k} = {_toml(v)}")
    path = folder / "cohort.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _toml(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    return f'"{v}"'


def copy_site(site: str, dest: Path) -> Path:
    """A private copy of one shipped sample site (so a test may corrupt or extend it)."""
    target = dest / site
    shutil.copytree(SAMPLES / site, target)
    return target


def store_problems(path: Path) -> list[str]:
    """Consistency of a store file: integrity, unique keys, every row a whole JSON resource."""
    import orjson

    problems: list[str] = []
    db = sqlite3.connect(path)
    try:
        check = db.execute("PRAGMA integrity_check").fetchall()
        if check != [("ok",)]:
            problems.append(f"integrity_check: {check[:3]}")
        tables = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "resources" not in tables:
            return problems  # killed before its schema was committed: the next run creates it
        total, distinct = db.execute(
            "SELECT COUNT(*), (SELECT COUNT(*) FROM (SELECT DISTINCT site, type, id FROM resources))"
            " FROM resources"
        ).fetchone()
        if total != distinct:
            problems.append(f"{total - distinct} duplicate (site, type, id) rows")
        for site, rtype, rid, blob in db.execute("SELECT site, type, id, json FROM resources"):
            try:
                res = orjson.loads(blob)
            except orjson.JSONDecodeError:
                problems.append(f"{site}/{rtype}/{rid}: stored JSON does not parse")
                continue
            if res.get("resourceType") != rtype or res.get("id") != rid:
                problems.append(f"{site}/{rtype}/{rid}: row key does not match its JSON")
    finally:
        db.close()
    return problems


def outputs(out: Path, sites: tuple[str, ...]) -> dict[str, bytes]:
    """The comparable outputs (candidates.csv, evidence.csv) of a run, by 'site/file'."""
    return {
        f"{s}/{f}": (out / s / f).read_bytes() if (out / s / f).exists() else b"<missing>"
        for s in sites
        for f in OUTPUTS
    }


def differing(a: dict[str, bytes], b: dict[str, bytes]) -> list[str]:
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


@dataclass
class Scenarios:
    """Counts the scenarios of one suite; `summary` is printed when the module finishes."""

    suite: str
    run: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)

    @contextmanager
    def scenario(self, name: str) -> Iterator[None]:
        self.run.append(name)
        yield
        self.passed.append(name)

    def summary(self) -> str:
        failed = [n for n in self.run if n not in self.passed]
        tail = f" (failed: {', '.join(failed)})" if failed else ""
        return f"{self.suite}: {len(self.run)} scenarios run, {len(self.passed)} passed{tail}"


def report_at_end(request: pytest.FixtureRequest, scenarios: Scenarios) -> None:
    """Write the suite's summary line to the terminal when the module's tests are done."""

    def emit() -> None:
        tr = request.config.pluginmanager.get_plugin("terminalreporter")
        capman = request.config.pluginmanager.get_plugin("capturemanager")
        line = scenarios.summary()
        if tr is not None and capman is not None:
            with capman.global_and_fixture_disabled():
                tr.write_line("")
                tr.write_line(line)
        else:  # pragma: no cover - without the terminal plugin
            print(line)

    request.addfinalizer(emit)
