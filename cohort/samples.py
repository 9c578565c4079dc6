"""Deterministic synthetic FHIR R4 sample population (Bundles or Bulk NDJSON) with expectations."""

from __future__ import annotations

import csv
import gzip
import io
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

import orjson

from cohort import samples_scenarios as sc
from cohort.model import PIPELINE_TYPES
from cohort.samples_fhir import LOINC, RXNORM, SNOMED, Builder, Res, birth_date, cc, qty, rxmed

DEFAULT_SEED = 20261125
DEFAULT_AS_OF = date(2026, 11, 25)
SITES = {"uci": ("Irvine", "92660"), "amr": ("La Palma", "90623")}


@dataclass
class GeneratedPatient:
    """One generated patient and, when screened, its hand-declared expected screening result."""

    site: str
    patient_id: str
    scenario: str
    screened: bool
    tier: str = ""
    eligible_from: date | None = None
    expected: dict[str, str] = field(default_factory=dict)
    decorations: tuple[str, ...] = ()


# -- demographics ----------------------------------------------------------------------------------
_GIVEN = [
    "Ava",
    "Maria",
    "Sofia",
    "Jasmine",
    "Linh",
    "Grace",
    "Camila",
    "Aisha",
    "Hannah",
    "Mei",
    "Olivia",
    "Rosa",
    "Priya",
    "Nadia",
    "Elena",
    "Tamika",
    "Yuna",
    "Fatima",
    "Chloe",
    "Ines",
]
_FAMILY = [
    "Testperson",
    "Samplewood",
    "Fakeley",
    "Mockridge",
    "Demoson",
    "Synthfield",
    "Placeholt",
    "Exampleton",
    "Dummer",
    "Fictora",
    "Notreal",
    "Madeupson",
]
_STREETS = ["Example Ave", "Sample St", "Synthetic Way", "Fictional Blvd", "Test Ln"]


def _demographics(b: Builder, rng: random.Random) -> None:
    city, zipc = SITES.get(b.site, ("Springfield", "90000"))
    b.patient.update(
        {
            "identifier": [
                {
                    "type": cc(
                        "http://terminology.hl7.org/CodeSystem/v2-0203",
                        "MR",
                        "Medical record number",
                    ),
                    "system": f"http://example.org/fhir/{b.site}/mrn",
                    "value": f"{b.site.upper()}{rng.randint(1000000, 9999999)}",
                }
            ],
            "name": [
                {"use": "official", "family": rng.choice(_FAMILY), "given": [rng.choice(_GIVEN)]}
            ],
            "telecom": [
                {"system": "phone", "value": f"555-01{rng.randint(0, 99):02d}", "use": "home"}
            ],
            "gender": "female",
            "birthDate": birth_date(b.as_of, 35, rng.randint(5, 330)),
            "address": [
                {
                    "line": [f"{rng.randint(1, 999)} {rng.choice(_STREETS)}"],
                    "city": city,
                    "state": "CA",
                    "postalCode": zipc,
                }
            ],
        }
    )


# -- messy decorations (never change an outcome; each applied at least once per site) -------
def _rewrite_system(old: str, new: str) -> Callable[[Builder], None]:
    def apply(b: Builder) -> None:
        def walk(o: Any) -> None:
            if isinstance(o, dict):
                if o.get("system") == old:
                    o["system"] = new
                for v in o.values():
                    walk(v)
            elif isinstance(o, list):
                for v in o:
                    walk(v)

        # Copy each resource's elements before editing: codings can be shared with module-level
        # templates, and an in-place edit would leak into every later generation in this process
        # (the resources themselves stay the same objects: the builder and its slots hold them).
        for res in b.resources():
            for key, value in list(res.items()):
                if isinstance(value, dict | list):
                    res[key] = orjson.loads(orjson.dumps(value))
        walk(b.resources())

    return apply


def _units(b: Builder) -> None:
    for slot, unit, code in (("plt", "x10E3/uL", None), ("anc", "10*9/L", "10*9/L")):
        r = b.first(slot)
        assert r is not None
        r["valueQuantity"] = qty(r["valueQuantity"]["value"], unit, code)


def _hcq_request(b: Builder) -> None:
    st = b.first("hcq")
    assert st is not None
    b.med_request(
        "hcq",
        {"medicationCodeableConcept": st["medicationCodeableConcept"]},
        authored=(date.fromisoformat(st["effectivePeriod"]["start"]) - b.as_of).days,
        dosage=st.get("dosage"),
    )
    b.base.add("hcq")


def _amended(b: Builder) -> None:
    for slot, status in (("plt", "amended"), ("hgb", "corrected")):
        r = b.first(slot)
        assert r is not None
        r["status"] = status


def _eie_belimumab(b: Builder) -> None:
    b.med_statement(
        None,
        rxmed("1092437", "belimumab", "Benlysta"),
        status="entered-in-error",
        start=-21,
        end=-21,
    )


def _lab_distractor(
    slot: str, value: float, unit: str, when: int, status: str
) -> Callable[[Builder], None]:
    def apply(b: Builder) -> None:
        r = b.first(slot)
        assert r is not None
        b.obs(None, r["code"], when, {"valueQuantity": qty(value, unit)}, status=status)

    return apply


def _refuted_malignancy(b: Builder) -> None:
    b.condition(
        None,
        cc(
            "http://hl7.org/fhir/sid/icd-10-cm",
            "C50.911",
            "Malignant neoplasm of right female breast",
        ),
        onset=-300,
        verification="refuted",
    )


# name, action, base slots it needs, scenarios it is kept away from (for readability only)
DECORATIONS: list[tuple[str, Callable[[Builder], None], tuple[str, ...], tuple[str, ...]]] = [
    ("unit_variants", _units, ("plt", "anc"), ()),
    ("hcq_as_medication_request", _hcq_request, ("hcq",), ()),
    ("amended_corrected_labs", _amended, ("plt", "hgb"), ()),
    ("entered_in_error_belimumab", _eie_belimumab, (), ("no_medication_records",)),
    (
        "entered_in_error_low_platelets",
        _lab_distractor("plt", 10, "10*3/uL", -3, "entered-in-error"),
        ("plt",),
        (),
    ),
    (
        "cancelled_low_hemoglobin",
        _lab_distractor("hgb", 6.0, "g/dL", -2, "cancelled"),
        ("hgb",),
        (),
    ),
    ("future_dated_low_platelets", _lab_distractor("plt", 5, "10*3/uL", 10, "final"), ("plt",), ()),
    (
        "refuted_malignancy",
        _refuted_malignancy,
        (),
        ("malignancy_breast", "washout_plus_malignancy", "in_situ_d0510"),
    ),
    ("snomed_https_trailing_slash", _rewrite_system(SNOMED, "https://snomed.info/sct/"), (), ()),
    ("loinc_oid", _rewrite_system(LOINC, "urn:oid:2.16.840.1.113883.6.1"), (), ()),
    ("rxnorm_oid", _rewrite_system(RXNORM, "urn:oid:2.16.840.1.113883.6.88"), (), ()),
]


def decorate(built: list[tuple[GeneratedPatient, Builder]], rng: random.Random) -> None:
    """Spread the messy decorations over screened patients whose scenario they cannot affect."""
    for name, action, needs, avoid in DECORATIONS:
        fits = [
            i
            for i, (gp, b) in enumerate(built)
            if gp.screened and gp.scenario not in avoid and all(n in b.base for n in needs)
        ]
        for i in rng.sample(fits, k=min(len(fits), max(1, len(built) // 15))):
            gp, b = built[i]
            action(b)
            gp.decorations += (name,)


# -- generation ------------------------------------------------------------------------------------
def _plan(site: str, patients: int, background: int) -> list[sc.Scenario]:
    screened = [s for s in sc.SCENARIOS if s.sites is None or site in s.sites]
    plan = [screened[i % len(screened)] for i in range(patients)]
    bg = sc.BACKGROUND
    plan += [bg[i % len(bg)] for i in range(background)]
    return plan


def build_site(
    *, patients: int, seed: int, as_of: date, site: str, background: int | None = None
) -> list[tuple[GeneratedPatient, list[Res]]]:
    """Build every patient of one site in memory (no I/O)."""
    rng = random.Random(f"cohort-samples:{seed}:{site}")
    nbg = patients // 6 if background is None else background
    plan = _plan(site, patients, nbg)
    rng.shuffle(plan)
    built: list[tuple[GeneratedPatient, Builder]] = []
    for i, scen in enumerate(plan, start=1):
        pid = f"{site}-p{i:04d}"
        prng = random.Random(f"{seed}:{site}:{pid}")
        b = Builder(prng, as_of, site, pid)
        _demographics(b, prng)
        sc.base_patient(b)
        for mod in scen.mods:
            mod(b)
        built.append((_expected(site, pid, scen, as_of), b))
    decorate(built, rng)
    return [(gp, b.resources()) for gp, b in built]


def _expected(site: str, pid: str, s: sc.Scenario, as_of: date) -> GeneratedPatient:
    if not s.screened:
        return GeneratedPatient(site, pid, s.name, False)
    exp = {c: ("unknown" if c in ("sledai", "bilag") else "pass") for c in sc.CRITERIA}
    exp.update(s.expect)
    ef = as_of + timedelta(days=s.eligible_from) if s.eligible_from is not None else None
    return GeneratedPatient(site, pid, s.name, True, s.tier, ef, exp)


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
    not-screened patients (default patients // 6) are added. Same arguments → byte-identical files.
    """
    if fmt not in ("bundles", "ndjson"):
        raise ValueError(f"unknown format {fmt!r} (bundles|ndjson)")
    out_dir.mkdir(parents=True, exist_ok=True)
    _clean(out_dir)
    built = build_site(patients=patients, seed=seed, as_of=as_of, site=site, background=background)
    rng = random.Random(f"cohort-samples-files:{seed}:{site}")
    if fmt == "bundles":
        collection = set(rng.sample(range(len(built)), k=min(2, len(built))))
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
    return sum(1 for s in sc.SCENARIOS if s.sites is None or site in s.sites)


def expected_rows(patients: list[GeneratedPatient]) -> Iterator[list[str]]:
    """CSV rows (header first) of tests/data/sample_expected.csv for the screened patients."""
    yield ["site", "patient_id", "scenario", "tier", "eligible_from", *sc.CRITERIA]
    for p in sorted((p for p in patients if p.screened), key=lambda p: (p.site, p.patient_id)):
        ef = p.eligible_from.isoformat() if p.eligible_from else ""
        yield [p.site, p.patient_id, p.scenario, p.tier, ef, *(p.expected[c] for c in sc.CRITERIA)]


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


def main() -> None:
    """`python -m cohort.samples [ROOT]`: regenerate the shipped samples in ROOT (default: cwd)."""
    import sys

    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()
    people = write_samples(root)
    n = sum(p.screened for p in people)
    print(f"wrote {len(people)} patients ({n} screened) under {root / 'sample_bundles'}")


if __name__ == "__main__":
    main()
