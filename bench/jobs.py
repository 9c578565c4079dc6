"""Jobs run in a child process (so peak RSS is the job's own): `python -m bench _job KIND ...`."""

from __future__ import annotations

import json
import shutil
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import orjson


def _files(folder: Path) -> list[Path]:
    """The NDJSON and Bundle files under `folder`, in subfolders too and without hidden
    entries, as `cohort run` reads a folder (a user's own export may have subfolders)."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.name.endswith((".ndjson", ".json", ".gz"))
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def floor(folder: Path, full_sample: int) -> dict[str, Any]:
    """orjson parse of every NDJSON line or bundle file (gzip: decompressing as it goes, and
    `bytes` are then the decompressed bytes); then fhir.resources on a sample."""
    import gzip

    for f in _files(folder):
        # warm the page cache first: `cohort run` reads the same files right after this, so a
        # cold first read here (seconds per GB) would flatter its ratio
        with f.open("rb") as fh:
            while fh.read(16 << 20):
                pass
    t0 = time.perf_counter()
    n = 0
    size = 0
    for f in _files(folder):
        with gzip.open(f, "rb") if f.suffix == ".gz" else f.open("rb") as fh:
            if f.name.endswith((".ndjson", ".ndjson.gz")):
                for line in fh:
                    orjson.loads(line)
                    n += 1
                    size += len(line)
            else:
                data = fh.read()
                size += len(data)
                n += len(orjson.loads(data).get("entry", ()))
    parse_s = time.perf_counter() - t0
    out: dict[str, Any] = {"resources": n, "bytes": size, "orjson_s": round(parse_s, 3)}
    if full_sample:
        from cohort.model import PIPELINE_TYPES as TYPES
        from cohort.source.files import ReadStats, read_path
        from cohort.source.validate import check

        sample = []
        for res, _ in read_path(folder, ReadStats(), types=TYPES, validate="none"):
            sample.append(res)
            if len(sample) >= full_sample:
                break
        check(sample[0], "full")  # import/warm-up of the models outside the timing
        t0 = time.perf_counter()
        rejected = sum(check(r, "full") is not None for r in sample)
        full_s = time.perf_counter() - t0
        out["full_sample"] = len(sample)
        out["full_sample_s"] = round(full_s, 3)
        out["full_rejected"] = rejected
        out["full_extrapolated_s"] = round(full_s / len(sample) * n, 1)
    return out


def stages(folder: Path, work: Path, as_of: date = date(2026, 11, 25)) -> dict[str, Any]:
    """Each pipeline stage timed by calling the library pieces directly, one after the other."""
    import dataclasses

    from cohort.config import SiteConfig
    from cohort.evaluate import evaluate, is_screened, make_context
    from cohort.extract import Extractor
    from cohort.ingest import ingest_files
    from cohort.model import PIPELINE_TYPES as TYPES
    from cohort.model import Candidate
    from cohort.outputs import write_outputs
    from cohort.rank import rank
    from cohort.runner import Loaded, site_result
    from cohort.screening import last_seen, screened_ids
    from cohort.source.files import ReadStats, read_path
    from cohort.source.validate import check
    from cohort.store import Store

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    t: dict[str, float] = {}

    def lap(name: str, t0: float) -> float:
        now = time.perf_counter()
        t[name] = round(t.get(name, 0.0) + now - t0, 3)
        return now

    t0 = time.perf_counter()
    from cohort.config import default_config

    cfg = default_config()
    loaded = Loaded.from_config(cfg)
    from cohort.terminology.units import registry

    registry()  # the one-time pint/UCUM registry (~0.25 s), counted apart from evaluation
    t0 = lap("load_mappings", t0)
    n = sum(1 for _ in read_path(folder, ReadStats(), types=TYPES, validate="none"))
    t0 = lap("read_parse", t0)
    items = []
    for res, origin in read_path(folder, ReadStats(), types=TYPES, validate="none"):
        items.append((res, origin))
        if len(items) >= 20000:
            break
    t1 = time.perf_counter()
    for res, _ in items:
        check(res, "fast")
    fast_per = (time.perf_counter() - t1) / len(items)
    t["validate_fast_extrapolated"] = round(fast_per * n, 3)
    del items
    store = Store(work / "store.sqlite")
    t0 = time.perf_counter()
    site = SiteConfig(id="b", name="Bench", source=str(folder))
    # the runner's file ingest (triage, fast validation of kept records, store), in this
    # process only (workers=1), so the stage is the per-core cost
    put = ingest_files(site, dataclasses.replace(cfg, workers=1), store, loaded)["stored"]
    t0 = lap("ingest_serial", t0)
    ids = screened_ids("b", store, loaded)
    t0 = lap("screened_ids", t0)
    extractor = Extractor(
        loaded.rules, lambda mid: store.get("b", "Medication", mid), loaded.relevant, as_of=as_of
    )
    out: list[Candidate] = []
    t_load = t_extract = t_eval = 0.0
    a = time.perf_counter()
    for pid, resources in store.iter_by_patient("b", ids):
        b = time.perf_counter()
        facts = extractor.facts(pid, resources)
        c = time.perf_counter()
        ctx = make_context(facts, loaded.term, as_of, loaded.rules, {})
        if is_screened(loaded.trial, ctx):
            out.append(
                Candidate(
                    patient=facts.patient,
                    results=evaluate(loaded.trial, ctx),
                    last_seen=last_seen(facts, as_of),
                )
            )
        d = time.perf_counter()
        t_load += b - a
        t_extract += c - b
        t_eval += d - c
        a = time.perf_counter()
    t["store_read"] = round(t_load, 3)
    t["extract"] = round(t_extract, 3)
    t["evaluate"] = round(t_eval, 3)
    t0 = time.perf_counter()
    time_limited = {c.id for c in loaded.trial.criteria if c.time_limited}
    ranked = rank(out, as_of, time_limited)
    sr = site_result(site, ranked, loaded, as_of, {}, "now")
    write_outputs(work / "out", [sr], [], True)
    lap("rank_report", t0)
    store.close()
    return {"resources": n, "stored": put["inserted"], "screened": len(ranked), "stages": t}


def main(argv: list[str]) -> None:
    kind, folder, work, out = argv[0], Path(argv[1]), Path(argv[2]), Path(argv[3])
    # the fifth argument: the floor's fhir.resources sample size, or the stages' as-of date
    extra_as_of = len(argv) > 4 and "-" in argv[4]
    extra = int(argv[4]) if len(argv) > 4 and not extra_as_of else 0
    if kind == "floor":
        result = floor(folder, extra)
    elif kind == "stages":
        result = stages(folder, work, *([date.fromisoformat(argv[4])] if extra_as_of else []))
    else:
        raise SystemExit(f"unknown job {kind}")
    out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
