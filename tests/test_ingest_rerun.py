"""A rerun over unchanged files stands on the last complete read; any change reads again."""

from __future__ import annotations

import os
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from test_reliability_support import write_config

import cohort.ingest as ingest
from cohort.config import load_config
from cohort.runner import run
from cohort.samples import generate
from cohort.store import Store
from cohort.store.schema import FILES_MARK

AS_OF = date(2026, 11, 25)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("rerun") / "site"
    generate(folder, patients=60, seed=3, as_of=AS_OF, site="t", fmt="ndjson")
    return folder


def _site(generated: Path, tmp_path: Path) -> Path:
    site = tmp_path / "site"
    shutil.copytree(generated, site)
    return site


def _run(config: Path, out: Path, **kw: Any) -> dict[str, Any]:
    report = run(load_config(config), AS_OF, out, **kw)
    return dict(report["sites"]["t"])


def _no_read(*_: Any, **__: Any) -> Any:
    raise AssertionError("the files were read again")


def _outputs(out: Path) -> list[bytes]:
    return [(out / "t" / name).read_bytes() for name in ("candidates.csv", "evidence.csv")]


def test_unchanged_files_are_not_read_again(
    generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path, {"t": str(_site(generated, tmp_path))})
    first = _run(config, tmp_path / "out")
    assert "files_unchanged" not in first and first["stored"]["inserted"] > 100
    with monkeypatch.context() as m:
        m.setattr(ingest, "_read_files", _no_read)
        again = _run(config, tmp_path / "out")
    assert again["files_unchanged"] is True
    assert again["stored"] == {
        "inserted": 0,
        "updated": 0,
        "unchanged": first["stored"]["inserted"],
        "removed": 0,
    }
    for key in ("read", "summarised", "rejected", "issues", "tiers"):
        assert again[key] == first[key], key
    skipped = _outputs(tmp_path / "out")
    # ... and its outputs are those of a run that read everything again
    full = _run(config, tmp_path / "out", full_refresh=True)
    assert "files_unchanged" not in full and full["stored"]["unchanged"] > 100
    assert _outputs(tmp_path / "out") == skipped


def test_a_rewritten_file_of_the_same_size_and_time_is_read_again(
    generated: Path, tmp_path: Path
) -> None:
    site = _site(generated, tmp_path)
    config = write_config(tmp_path, {"t": str(site)})
    _run(config, tmp_path / "out")
    path = site / "Patient.ndjson"
    lines = path.read_bytes().split(b"\n")
    first = orjson.loads(lines[0])
    born = date.fromisoformat(first["birthDate"])
    first["birthDate"] = born.replace(day=born.day % 28 + 1).isoformat()  # same length
    before = path.stat()
    lines[0] = orjson.dumps(first)
    path.write_bytes(b"\n".join(lines))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size
    again = _run(config, tmp_path / "out")
    assert "files_unchanged" not in again and again["stored"]["updated"] == 1


def test_new_mappings_settings_or_a_new_file_read_again(generated: Path, tmp_path: Path) -> None:
    site = _site(generated, tmp_path)
    config = write_config(tmp_path, {"t": str(site)})
    _run(config, tmp_path / "out")
    # the unverified mapping rows change what is kept: a different read
    text = config.read_text().replace(
        'id = "sirius-sle-2"', 'id = "sirius-sle-2"\nuse_unverified = true'
    )
    config.write_text(text)
    assert "files_unchanged" not in _run(config, tmp_path / "out")
    assert _run(config, tmp_path / "out")["files_unchanged"] is True
    extra = {"resourceType": "Patient", "id": "late-arrival", "gender": "female"}
    (site / "Patient-2.ndjson").write_bytes(orjson.dumps(extra) + b"\n")
    again = _run(config, tmp_path / "out")
    assert "files_unchanged" not in again and again["stored"]["inserted"] == 1


def test_a_read_that_dies_halfway_is_not_taken_for_complete(
    generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path, {"t": str(_site(generated, tmp_path))})
    _run(config, tmp_path / "out")
    real = ingest.read_results

    def dies_after_one(*a: Any, **kw: Any) -> Any:
        results = real(*a, **kw)
        yield next(results)
        raise OSError("killed")

    with monkeypatch.context() as m:
        m.setattr(ingest, "read_results", dies_after_one)
        # a full refresh starts a read, which dies after its first unit
        with pytest.raises(OSError):
            _run(config, tmp_path / "out", full_refresh=True)
    store = load_config(config).store_path or tmp_path / "out" / ".cohort" / "store.sqlite"
    with Store(store) as s:
        assert s.get_mark("t", FILES_MARK + str(tmp_path / "site")) == ""
    again = _run(config, tmp_path / "out")
    assert "files_unchanged" not in again and again["stored"]["unchanged"] > 100


def test_an_unreadable_mark_means_reading_again(generated: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, {"t": str(_site(generated, tmp_path))})
    _run(config, tmp_path / "out")
    store = tmp_path / "out" / ".cohort" / "store.sqlite"
    key = FILES_MARK + str(tmp_path / "site")
    with Store(store) as s:
        stamp = (s.get_mark("t", key) or "").partition("\n")[0]
        assert len(stamp) == 64
        s.set_mark("t", key, stamp + "\n{not json")
    again = _run(config, tmp_path / "out")
    assert "files_unchanged" not in again and again["stored"]["unchanged"] > 100
    assert _run(config, tmp_path / "out")["files_unchanged"] is True
