"""A researcher's copy of mappings/ and the two commands they run on it after each edit:
`cohort mappings check` and `cohort run` (the uci sample site)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from cohort.cli import cli

ROOT = Path(__file__).resolve().parent.parent
TRIAL = "trials/sirius-sle-2.toml"
UCI = ROOT / "sample_bundles" / "uci"


def copy_mappings(tmp_path: Path) -> Path:
    m = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", m)
    return m


def relative_project(folder: Path) -> Path:
    """A copy of mappings/ in `folder` and a config naming it relatively (`mappings =
    "mappings"`, the uci sample site), as a researcher keeps them side by side: a test running
    in `folder` sees paths in messages as the researcher would."""
    shutil.copytree(ROOT / "mappings", folder / "mappings")
    cfg = folder / "p.toml"
    cfg.write_text(
        f'[trial]\nid = "sirius-sle-2"\nmappings = "mappings"\n\n'
        f'[[sites]]\nid = "uci"\nsource = "{UCI}"\n'
    )
    return cfg


def site_config(
    tmp_path: Path, m: Path, trial: str = "sirius-sle-2", site: str = "uci", source: Path = UCI
) -> Path:
    """A config of one site (the uci sample by default) with the mappings `m`."""
    cfg = tmp_path / "site.toml"
    cfg.write_text(
        f'[trial]\nid = "{trial}"\nmappings = "{m}"\n'
        f'[[sites]]\nid = "{site}"\nsource = "{source}"\n'
    )
    return cfg


def check_all(m: Path) -> tuple[int, list[str]]:
    result = CliRunner().invoke(cli, ["mappings", "check", "--mappings", str(m)])
    return result.exit_code, result.output.splitlines()


def run_uci(
    tmp_path: Path, m: Path, out: str = "out", trial: str = "sirius-sle-2"
) -> tuple[int, str]:
    args = ["--log-level", "error", "run", "--config", str(site_config(tmp_path, m, trial))]
    result = CliRunner().invoke(cli, [*args, "--as-of", "2026-11-25", "--out", str(tmp_path / out)])
    return result.exit_code, result.output


def edit(path: Path, old: str, new: str, marker: str) -> int:
    """Replace the first `old` with `new`; the line of `marker` (within `new`) after the edit."""
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    at = text.index(old)
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return (text[:at] + new[: new.index(marker)]).count("\n") + 1


# (case, old text, new text, marker of the line named, message after "FILE:LINE: ")


def run_records(
    tmp: Path, records: list[dict[str, Any]], run_table: str = "", name: str = "out"
) -> Path:
    """`cohort run` (one site `s1`, as of 2026-11-25, the shipped mappings) on `records`
    written as one NDJSON file per type under `tmp/data`; the site's output folder."""
    data = tmp / "data"
    data.mkdir(exist_ok=True)
    by_type: dict[str, list[str]] = {}
    for res in records:
        by_type.setdefault(res["resourceType"], []).append(json.dumps(res))
    for rtype, lines in by_type.items():
        (data / f"{rtype}.ndjson").write_text("\n".join(lines) + "\n")
    cfg = tmp / "site.toml"
    cfg.write_text(
        f'{run_table}[trial]\nid = "sirius-sle-2"\nmappings = "{ROOT / "mappings"}"\n'
        f'[[sites]]\nid = "s1"\nsource = "{data}"\n'
    )
    out = tmp / name
    args = ["run", "--config", str(cfg), "--as-of", "2026-11-25", "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return out / "s1"


def commented_rows(path: Path) -> list[dict[str, str]]:
    """A mapping CSV's rows, its `#` comment lines left out (as cohort reads them)."""
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(line for line in fh if not line.startswith("#")))


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))
