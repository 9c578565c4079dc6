"""A store or Bulk spool inside a site's source folder: refused for `cohort run`, which writes
them (the next night reads what it wrote there as the site's data), but not for the commands
that only read a configuration (`mappings check`, `explain`, `mappings coverage`): a researcher
checking mappings got a store-location error that had nothing to do with the question."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cohort.cli import cli
from cohort.config import load_config
from cohort.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
UCI = ROOT / "sample_bundles" / "uci"
AS_OF = "2026-11-25"


def _cohort(*args: str | Path) -> Result:
    res = CliRunner().invoke(cli, ["--log-level", "error", *map(str, args)])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exc_info
    return res


def _config(tmp_path: Path, store: Path | None = None, spool: Path | None = None) -> Path:
    """site uci read from `tmp_path/bulk` (a copy of its sample folder), the store at `store`,
    and with `spool` a second site, amr, exported in Bulk from a server into that spool_dir."""
    src = tmp_path / "bulk"
    if not src.exists():
        shutil.copytree(UCI, src)
    text = '[trial]\nid = "sirius-sle-2"\n\n'
    if store is not None:
        text += f'[store]\npath = "{store}"\n\n'
    text += f'[[sites]]\nid = "uci"\nsource = "{src}"\n'
    if spool is not None:
        text += '\n[[sites]]\nid = "amr"\nsource = "https://fhir.example.invalid/r4"\n'
        text += f'\n[sites.server]\nbulk = true\nspool_dir = "{spool}"\n'
    cfg = tmp_path / "site.toml"
    cfg.write_text(text)
    return cfg


def _refused_by_run(cfg: Path, tmp_path: Path, key: str) -> None:
    """`cohort run --config cfg`: exit 3, the one line it always gave, nothing written."""
    src = tmp_path / "bulk"
    held = sorted(p.name for p in src.iterdir())
    out = tmp_path / "run-out"
    res = _cohort("run", "--config", cfg, "--as-of", AS_OF, "--out", out)
    assert res.exit_code == 3, res.output
    (line,) = res.stderr.splitlines()
    # ([store] path by its line, 5 of _config's text; a [sites.server] key by its table)
    where = f"{cfg}:5: [store]: " if key == "path" else f"{cfg} [sites.server] (site 'amr'): "
    assert line.startswith(f"cohort: error: {where}") and f"key '{key}': site uci: " in line, line
    assert f"is inside its source folder {src}, and the next run would read" in line, line
    assert sorted(p.name for p in src.iterdir()) == held
    assert not out.exists()


@pytest.mark.parametrize("where", ["store", "spool"])
def test_mappings_check_loads_a_config_whose_store_or_spool_is_inside_a_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    monkeypatch.chdir(tmp_path)  # (the shipped folder is outside it: named in full)
    inside = tmp_path / "bulk" / "state"
    cfg = (
        _config(tmp_path, store=inside / "store.sqlite")
        if where == "store"
        else _config(tmp_path, spool=inside)
    )
    res = _cohort("mappings", "check", "--config", cfg)
    assert res.exit_code == 0, res.output
    assert "inside its source folder" not in res.output
    last = res.output.splitlines()[-1]
    # the normal summary of the shipped mappings, for the configuration's trial only
    assert last.startswith(f"checked {ROOT / 'mappings'}: mapping version "), last
    assert "trials sirius-sle-2; 0 error(s)" in last, last
    assert not inside.exists()  # checking wrote nothing there
    _refused_by_run(cfg, tmp_path, "path" if where == "store" else "spool_dir")


def test_load_config_refuses_unless_told_it_only_reads(tmp_path: Path) -> None:
    """Strict by default: a caller that forgets to say writes nothing is refused, as a run."""
    store = tmp_path / "bulk" / "store.sqlite"
    cfg = _config(tmp_path, store=store)
    with pytest.raises(ConfigError, match="is inside its source folder"):
        load_config(cfg)
    assert load_config(cfg, writing=False).store_path == store
    cfg = _config(tmp_path, spool=tmp_path / "bulk")
    with pytest.raises(ConfigError, match="key 'spool_dir': site uci: the Bulk spool folder"):
        load_config(cfg)
    assert [s.id for s in load_config(cfg, writing=False).sites] == ["uci", "amr"]


def test_explain_and_coverage_read_a_store_inside_a_source(tmp_path: Path) -> None:
    """A store a run wrote elsewhere, then moved into the source folder: explain and coverage
    read it (they write no store and no spool; coverage.csv goes to OUT)."""
    out = tmp_path / "out"
    res = _cohort(
        "run", "--config", _config(tmp_path, tmp_path / "state" / "store.sqlite"),
        "--as-of", AS_OF, "--out", out,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    shutil.move(tmp_path / "state", tmp_path / "bulk" / "state")
    cfg = _config(tmp_path, tmp_path / "bulk" / "state" / "store.sqlite")
    with (out / "uci" / "candidates.csv").open(encoding="utf-8-sig", newline="") as fh:
        pid = next(csv.DictReader(fh))["patient_id"]
    res = _cohort("explain", pid, "--config", cfg, "--as-of", AS_OF, "--out", out)
    assert res.exit_code == 0, res.output
    assert pid in res.output and "[pass] age" in res.output, res.output
    res = _cohort("mappings", "coverage", "--config", cfg, "--out", out)
    assert res.exit_code == 0, res.output
    assert (out / "coverage.csv").is_file()
    _refused_by_run(cfg, tmp_path, "path")


def test_explain_with_no_store_there_says_so_not_where_it_is(tmp_path: Path) -> None:
    """No store at the configured path yet: explain's own error (exit 8), not the location's."""
    store = tmp_path / "bulk" / "state" / "store.sqlite"
    cfg = _config(tmp_path, store=store)
    res = _cohort("explain", "p1", "--config", cfg, "--out", tmp_path / "out")
    assert res.exit_code == 8, res.output
    assert res.stderr.splitlines() == [
        f"cohort: error: no local store at {store}: run `cohort run` with this --out first"
    ]
    assert not store.parent.exists()
