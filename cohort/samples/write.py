"""Sample output: transaction/collection Bundles or Bulk NDJSON files, and the shipped samples."""

from __future__ import annotations

import csv
import gzip
import io
import random
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any, Literal

import orjson

from cohort.model import PIPELINE_TYPES
from cohort.samples.catalog import SCENARIOS
from cohort.samples.fhir import Res
from cohort.samples.people import GeneratedPatient, build_site
from cohort.samples.scenarios import CRITERIA

DEFAULT_SEED = 20261125
DEFAULT_AS_OF = date(2026, 11, 25)


def _dumps(obj: Any, pretty: bool) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_INDENT_2 if pretty else 0)


def _walk_refs(obj: Any, mapping: dict[str, str]) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "reference" and isinstance(v, str) and v in mapping:
                obj[k] = mapping[v]
            else:
                _walk_refs(v, mapping)
    elif isinstance(obj, list):
        for v in obj:
            _walk_refs(v, mapping)


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def to_bundle(resources: list[Res], rng: random.Random, kind: str = "transaction") -> Res:
    """A transaction (urn:uuid fullUrls and references, POST) or collection Bundle."""
    res = orjson.loads(orjson.dumps(resources))  # deep copy
    urns = {f"{r['resourceType']}/{r['id']}": f"urn:uuid:{_uuid(rng)}" for r in res}
    entries = []
    for r in res:
        key = f"{r['resourceType']}/{r['id']}"
        if kind == "transaction":
            _walk_refs(r, urns)
            if r["resourceType"] == "Patient":
                req = {"method": "PUT", "url": key}
            else:
                del r["id"]
                req = {"method": "POST", "url": r["resourceType"]}
            entries.append({"fullUrl": urns[key], "resource": r, "request": req})
        else:
            entries.append({"fullUrl": urns[key], "resource": r})
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


def _clean(out_dir: Path) -> None:
    """Remove files a previous generation wrote (and only those) so reruns stay identical."""
    for p in out_dir.iterdir():
        ours = p.name.startswith("bundle-") and p.suffix == ".json"
        if p.is_file() and (ours or p.name.split(".")[0] in PIPELINE_TYPES and ".ndjson" in p.name):
            p.unlink()


def generate(
    out_dir: Path,
    *,
    patients: int,
    seed: int,
    as_of: date,
    site: str,
    fmt: Literal["bundles", "ndjson"] = "bundles",
    background: int | None = None,
) -> list[GeneratedPatient]:
    """Write one site's synthetic data to `out_dir`; returns every patient with expectations.

    `patients` screened (SLE) patients cycle through the scenario table; `background` non-SLE or
    not-screened patients (default patients // 6) are added, in shuffled order, then the appended
    scenarios' patients (Scenario.appended). Same arguments → byte-identical files.
    """
    if fmt not in ("bundles", "ndjson"):
        raise ValueError(f"unknown format {fmt!r} (bundles|ndjson)")
    out_dir.mkdir(parents=True, exist_ok=True)
    _clean(out_dir)
    built = build_site(patients=patients, seed=seed, as_of=as_of, site=site, background=background)
    rng = random.Random(f"cohort-samples-files:{seed}:{site}")
    if fmt == "bundles":
        shuffled = [i for i, (gp, _) in enumerate(built) if not gp.appended]
        collection = set(rng.sample(shuffled, k=min(2, len(shuffled))))
        for i, (_gp, resources) in enumerate(built):
            kind = "collection" if i in collection else "transaction"
            bundle = to_bundle(resources, rng, kind)
            (out_dir / f"bundle-{i + 1:04d}.json").write_bytes(_dumps(bundle, True) + b"\n")
    else:
        by_type: dict[str, list[bytes]] = {}
        for _gp, resources in built:
            for r in resources:
                by_type.setdefault(r["resourceType"], []).append(_dumps(r, False))
        for rtype in sorted(by_type):
            data = b"\n".join(by_type[rtype]) + b"\n"
            if rtype == "Observation":
                buf = io.BytesIO()
                with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as gz:
                    gz.write(data)
                (out_dir / f"{rtype}.ndjson.gz").write_bytes(buf.getvalue())
            else:
                (out_dir / f"{rtype}.ndjson").write_bytes(data)
    return [gp for gp, _ in built]


# -- shipped samples -------------------------------------------------------------------------------
SAMPLE_LAYOUT: dict[str, Literal["bundles", "ndjson"]] = {"uci": "bundles", "amr": "ndjson"}


def sample_sizes(site: str) -> int:
    """Screened patients per shipped site: every scenario of the site exactly once."""
    return sum(1 for s in SCENARIOS if s.sites is None or site in s.sites)


def expected_rows(patients: list[GeneratedPatient]) -> Iterator[list[str]]:
    """CSV rows (header first) of tests/data/sample_expected.csv for the screened patients."""
    yield ["site", "patient_id", "scenario", "tier", "eligible_from", *CRITERIA]
    for p in sorted((p for p in patients if p.screened), key=lambda p: (p.site, p.patient_id)):
        ef = p.eligible_from.isoformat() if p.eligible_from else ""
        yield [p.site, p.patient_id, p.scenario, p.tier, ef, *(p.expected[c] for c in CRITERIA)]


def write_samples(
    root: Path, seed: int = DEFAULT_SEED, as_of: date = DEFAULT_AS_OF
) -> list[GeneratedPatient]:
    """Regenerate `root/sample_bundles/{uci,amr}` and `root/tests/data/sample_expected.*`."""
    everyone: list[GeneratedPatient] = []
    for site, fmt in SAMPLE_LAYOUT.items():
        everyone += generate(
            root / "sample_bundles" / site,
            patients=sample_sizes(site),
            seed=seed,
            as_of=as_of,
            site=site,
            fmt=fmt,
            background=10,
        )
    data = root / "tests" / "data"
    data.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(expected_rows(everyone))
    (data / "sample_expected.csv").write_text(buf.getvalue(), encoding="utf-8")
    sites = ", ".join(f'"{s}"' for s in SAMPLE_LAYOUT)
    (data / "sample_expected.meta.toml").write_text(
        "# written by `python -m cohort.samples`; hand-declared expectations, not cohort output\n"
        f'as_of = "{as_of.isoformat()}"\nseed = {seed}\n'
        f"sites = [{sites}]\n",
        encoding="utf-8",
    )
    return everyone


def main(argv: list[str] | None = None) -> None:
    """`python -m cohort.samples [ROOT]`: regenerate the shipped samples in ROOT (default: cwd)."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m cohort.samples",
        description="Regenerate the shipped sample data: ROOT/sample_bundles and "
        "ROOT/tests/data/sample_expected.* (deterministic: same code, same files).",
    )
    parser.add_argument("root", nargs="?", type=Path, default=Path.cwd(), help="default: cwd")
    root = parser.parse_args(argv).root
    people = write_samples(root)
    n = sum(p.screened for p in people)
    print(f"wrote {len(people)} patients ({n} screened) under {root / 'sample_bundles'}")
