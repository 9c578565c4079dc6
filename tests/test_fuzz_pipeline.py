"""Mutated records never stop a run: every NDJSON line is read, summarised or rejected with a
located reason, and whatever is kept is extracted, evaluated and ranked without an exception.

The records start from the shipped `sample_bundles/amr` site (one of each type the pipeline
reads) and get one to three mutations anywhere: a value of another JSON type, a key dropped,
an unknown key added. A nightly run that dies on one odd record loses every site's list.
"""

from __future__ import annotations

import copy
import gzip
from collections import defaultdict
from collections.abc import Iterator
from datetime import date
from functools import cache
from typing import Any

import orjson
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cohort.config import SiteConfig, default_config, shipped
from cohort.evaluate import evaluate, is_screened, make_context
from cohort.extract import Extractor, Triage
from cohort.ingest import Loaded
from cohort.model import PIPELINE_TYPES, Candidate
from cohort.rank import rank
from cohort.report.csv import candidates_csv, evidence_csv
from cohort.report.html import summary_html
from cohort.runner import site_result
from cohort.screening import last_seen
from cohort.source.files import ReadStats
from cohort.source.reader import Reader
from cohort.source.refused import MARK
from cohort.store import prepare_row

AS_OF = date(2026, 11, 25)
JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "x", "2026-02-30", "2026-13-01", "0000-01-01", "2026", "Patient/",
                     "Patient/other", "entered-in-error", "active", "mg", "caf\u00e9"]),
    st.just([]),
    st.just({}),
    st.just([None, 1, "a"]),
    st.just({"coding": True}),
    st.just({"coding": [{"system": 5, "code": ["x"]}]}),
    st.just({"value": "12", "unit": 3}),
    st.just({"reference": ["Patient/a"]}),
    st.just({"start": 20260101, "end": {}}),
)  # fmt: skip


@cache
def _loaded() -> Loaded:
    return Loaded.from_config(default_config())


def _sample_files() -> Iterator[list[dict[str, Any]]]:
    """The records of each NDJSON file of the shipped sample site, file by file."""
    for path in sorted((shipped("sample_bundles") / "amr").iterdir()):
        data = path.read_bytes()
        if path.name.endswith(".gz"):
            data = gzip.decompress(data)
        yield [orjson.loads(line) for line in data.splitlines()]


@cache
def _templates() -> dict[str, list[dict[str, Any]]]:
    """A few records of each type from the shipped NDJSON sample site."""
    out: dict[str, list[dict[str, Any]]] = {}
    for records in _sample_files():
        for res in records[:40]:
            out.setdefault(res["resourceType"], []).append(res)
    return out


@cache
def _charts() -> list[list[dict[str, Any]]]:
    """The sample site's records grouped by patient (Medications shared by all)."""
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    meds = []
    for records in _sample_files():
        for res in records:
            if res["resourceType"] == "Medication":
                meds.append(res)
            else:
                by[prepare_row(res, "x")[4] or ""].append(res)
    return [meds + chart for _, chart in sorted(by.items())]


@st.composite
def mutated(draw: st.DrawFn, res: dict[str, Any] | None = None) -> dict[str, Any]:
    """A sample record (or `res`) with one to three mutations."""
    if res is None:
        kinds = _templates()
        res = draw(st.sampled_from(kinds[draw(st.sampled_from(sorted(kinds)))]))
    res = copy.deepcopy(res)
    for _ in range(draw(st.integers(1, 3))):
        node: Any = res
        path: list[tuple[Any, Any]] = []
        while isinstance(node, dict | list) and node and (not path or draw(st.booleans())):
            keys = sorted(node) if isinstance(node, dict) else list(range(len(node)))
            key = draw(st.sampled_from(keys))
            path.append((node, key))
            node = node[key]
        if not path:
            continue
        parent, key = path[-1]
        action = draw(st.sampled_from(["replace", "drop", "add"]))
        if action == "drop" and isinstance(parent, dict) and key not in ("resourceType", "id"):
            del parent[key]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", "valueInteger", "effectivePeriod", "dosage",
                                         "contained", "meta", "onsetPeriod", "status"]))] = copy.deepcopy(
                draw(JUNK))  # fmt: skip
        else:
            parent[key] = copy.deepcopy(draw(JUNK))
    return res


@st.composite
def chart(draw: st.DrawFn) -> list[dict[str, Any]]:
    """One sample patient's whole chart, some of its records mutated."""
    records = draw(st.sampled_from(_charts()))
    return [draw(mutated(r)) if draw(st.integers(0, 3)) == 0 else r for r in records]


def _screen(kept: list[dict[str, Any]]) -> list[Candidate]:
    """What the runner does with the kept records, without a store in between."""
    loaded = _loaded()
    meds = {r["id"]: r for r in kept if r.get("resourceType") == "Medication"}
    by_patient: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for res in kept:
        row = prepare_row(res, "x")  # what the store keeps: must not raise either
        if row[4]:
            by_patient[row[4]].append(orjson.loads(row[7]))
    extractor = Extractor(loaded.rules, meds.get, loaded.relevant)
    out = []
    for pid, records in sorted(by_patient.items()):
        facts = extractor.facts(pid, records)
        ctx = make_context(facts, loaded.term, AS_OF, loaded.rules, {})
        if is_screened(loaded.trial, ctx):
            out.append(
                Candidate(facts.patient, evaluate(loaded.trial, ctx), last_seen(facts, AS_OF))
            )
    time_limited = {c.id for c in loaded.trial.criteria if c.time_limited}
    return rank(out, AS_OF, time_limited)


@settings(
    max_examples=300,
    deadline=None,
    # big charts sometimes overrun hypothesis's buffer: those examples are skipped, not failed
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.one_of(st.lists(mutated(), min_size=1, max_size=25), chart()), st.booleans())
def test_mutated_records_are_read_summarised_or_rejected_never_fatal(
    batch: list[dict[str, Any]], bundle: bool
) -> None:
    loaded = _loaded()
    stats = ReadStats()
    reader = Reader(stats, set(PIPELINE_TYPES), "fast", Triage(loaded.rules, loaded.relevant))
    if bundle:
        doc = {"resourceType": "Bundle", "type": "collection",
               "entry": [{"resource": r} for r in batch]}  # fmt: skip
        kept = [res for res, _, _ in reader.json_doc(orjson.dumps(doc), "b.json")]
    else:
        lines = [orjson.dumps(r) for r in batch]
        kept = [res for res, _, _ in reader.ndjson(lines, "x.ndjson")]
    accounted = sum(stats.read.values()) + sum(stats.rejected.values())
    assert accounted + sum(stats.skipped_types.values()) == len(batch)
    assert len(stats.issues) >= sum(stats.rejected.values())  # every rejection is located
    # (and the stubs of refused records with an id, stored in their place: source.refused)
    stubs = sum(MARK in res for res in kept)
    assert stubs <= sum(stats.rejected.values())
    assert len(kept) - stubs == sum(stats.read.values()) - sum(stats.summarised.values())
    ranked = _screen(kept)
    assert all(c.tier for c in ranked)
    event(f"candidates: {min(len(ranked), 3)}")
    # and the report renders them (CSV cells, evidence rows, the HTML summary)
    sr = site_result(SiteConfig(id="t", name="T", source="x"), ranked, loaded, AS_OF, {}, "now")
    assert candidates_csv(sr).count("\n") >= len(ranked)
    evidence_csv(sr)
    assert "</html>" in summary_html(sr, history=[], phi=True)
