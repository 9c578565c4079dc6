"""Columnar experiment (docs/scaling.md Step 2): DuckDB load and mapping prefilter vs orjson.

A bench experiment, not product code: needs `duckdb` and `orjson` in its own virtualenv, e.g.

    python3 -m venv /tmp/venv-duck && /tmp/venv-duck/bin/pip install duckdb orjson
    /tmp/venv-duck/bin/python bench/columnar.py --folder DIR [--threads 2] [--repeat 3]

For a folder of per-type NDJSON files it times, each best of --repeat: the orjson floor (every
line of every file, one core: bench.jobs.floor), then DuckDB reading each type's few needed
fields, unnesting its codings, joining them with the exact code rows of mappings/concepts/*.csv
and writing one tidy facts table (type, id, patient, concept, date, value, unit), then writing
that table to Parquet and fetching it into Python ordered by patient (timed apart). Codes are
compared as given, stripped of surrounding blanks: no code-system canonicalisation, no
prefix/range/glob rows, no `expand` codes, no products.csv, no text rows (all of which `cohort`
does), so the facts are a lower bound of what cohort keeps.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import sqlite3
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

CODING = "STRUCT(system VARCHAR, code VARCHAR)[]"
CC = f"STRUCT(coding {CODING})"
REF = "STRUCT(reference VARCHAR)"
START = "STRUCT(start VARCHAR)"
QTY = "STRUCT(value VARCHAR, unit VARCHAR, code VARCHAR)"  # value as text: try_cast below
CONTAINED = f"STRUCT(resourceType VARCHAR, id VARCHAR, code {CC})[]"

# type -> (mapping domain, code element, patient element, date elements in order of preference);
# the explicit read columns follow from these (a `.start` date reads a Period)
TYPES: dict[str, tuple[str, str, str, list[str]]] = {
    "Observation": (
        "labs",
        "code",
        "subject",
        ["effectiveDateTime", "effectivePeriod.start", "issued"],
    ),
    "Condition": ("conditions", "code", "subject", ["onsetDateTime", "recordedDate"]),
    "MedicationRequest": ("medications", "medicationCodeableConcept", "subject", ["authoredOn"]),
    "MedicationStatement": (
        "medications",
        "medicationCodeableConcept",
        "subject",
        ["effectiveDateTime", "effectivePeriod.start", "dateAsserted"],
    ),
    "MedicationAdministration": (
        "medications",
        "medicationCodeableConcept",
        "subject",
        ["effectiveDateTime", "effectivePeriod.start"],
    ),
    "Procedure": ("procedures", "code", "subject", ["performedDateTime", "performedPeriod.start"]),
    "Immunization": ("vaccines", "vaccineCode", "patient", ["occurrenceDateTime"]),
}
MED_TYPES = ("MedicationRequest", "MedicationStatement", "MedicationAdministration")
MED_COLS = {"medicationReference": REF, "contained": CONTAINED}


def columns(rtype: str) -> dict[str, str]:
    """The few fields read of `rtype` (all others are skipped by the reader), with their types."""
    _, code, pat, dates = TYPES[rtype]
    cols = {code: CC, pat: REF}
    cols.update((d.split(".")[0], START if "." in d else "VARCHAR") for d in dates)
    if rtype == "Observation":
        cols["valueQuantity"] = QTY
    return {**cols, **MED_COLS} if rtype in MED_TYPES else cols


def load_mappings(folder: Path) -> list[tuple[str, str, str, str]]:
    """(domain, concept, system, code) of the exact, not excluded, not unverified code rows;
    local.csv's rows take the domain of their concept's rows elsewhere, else labs (as cohort)."""
    rows: list[tuple[str, str, str, str]] = []
    for f in sorted(folder.glob("*.csv")):
        with f.open(newline="", encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                system, code = (r.get("system") or "").strip(), (r.get("code") or "").strip()
                if (
                    (r.get("match") or "").strip() != "exact"
                    or (r.get("exclude") or "").strip().upper() == "Y"
                    or (r.get("verified") or "").strip().upper() == "N"
                    or system == "text"
                    or not code
                ):
                    continue
                rows.append((f.stem, r["concept"].strip(), system, code))
    domains: dict[str, set[str]] = defaultdict(set)
    for stem, concept, _, _ in rows:
        if stem != "local":
            domains[concept].add(stem)
    out = set()
    for stem, concept, system, code in rows:
        for d in sorted(domains[concept]) if stem == "local" else [stem]:
            out.add((d, concept, system, code))
        if stem == "local" and not domains[concept]:
            out.add(("labs", concept, system, code))
    return sorted(out)


def _q(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _read(path: Path, cols: dict[str, str]) -> str:
    spec = "{" + ", ".join(f"{_q(k)}: {_q(v)}" for k, v in {"id": "VARCHAR", **cols}.items())
    return f"read_json({_q(str(path))}, format='newline_delimited', columns={spec}}})"


def _timed(con: Any, sql: str) -> float:
    t0 = time.perf_counter()
    con.execute(sql)
    return time.perf_counter() - t0


def duck_round(con: Any, folder: Path, out_parquet: Path) -> dict[str, Any]:
    """One round: load each type's slim columns, prefilter by the mapping join, facts, Parquet."""
    con.execute("DROP TABLE IF EXISTS facts")
    con.execute(
        "CREATE TABLE facts (type VARCHAR, id VARCHAR, patient VARCHAR, concept VARCHAR,"
        " date VARCHAR, value DOUBLE, unit VARCHAR)"
    )
    load_s = filter_s = 0.0
    per: dict[str, dict[str, int]] = {}
    med = folder / "Medication.ndjson"
    if med.exists():  # referenced Medications: their code and ingredient codings
        ing = {"ingredient": f"STRUCT(itemCodeableConcept {CC})[]"}
        load_s += _timed(
            con,
            f"""CREATE OR REPLACE TABLE med AS
            SELECT 'Medication/' || id AS ref, unnest(code.coding) AS c
              FROM {_read(med, {"code": CC})}
            UNION ALL SELECT 'Medication/' || id, unnest(i.itemCodeableConcept.coding) FROM (
              SELECT id, unnest(ingredient) AS i FROM {_read(med, ing)})""",
        )
        per["Medication"] = {
            "rows_in": con.execute("SELECT count(DISTINCT ref) FROM med").fetchone()[0],
            "facts": 0,
        }
    else:
        con.execute(f"CREATE OR REPLACE TABLE med (ref VARCHAR, c {CODING[:-2]})")
    for rtype, (domain, code, pat, dates) in TYPES.items():
        cols = columns(rtype)
        path = folder / f"{rtype}.ndjson"
        if not path.exists():
            continue
        value = "try_cast(valueQuantity.value AS DOUBLE)" if "valueQuantity" in cols else "NULL"
        unit = "coalesce(valueQuantity.code, valueQuantity.unit)" if value != "NULL" else "NULL"
        extra = ", medicationReference.reference AS mref, contained" if rtype in MED_TYPES else ""
        t_load = _timed(
            con,
            f"""CREATE OR REPLACE TABLE raw AS SELECT id, {pat}.reference
            AS patient, coalesce({", ".join(dates)}) AS date, {value} AS value,
            {unit} AS unit, {code}.coding AS coding{extra} FROM {_read(path, cols)}""",
        )
        load_s += t_load
        m = f"m.domain = {_q(domain)} AND m.system = trim(c.system) AND m.code = trim(c.code)"
        coded = "SELECT id, patient, date, value, unit, unnest(coding) AS c FROM raw"
        if rtype in MED_TYPES:  # medicationReference: a Medication resource or a contained one
            coded += """ UNION ALL SELECT r.id, r.patient, r.date, r.value, r.unit, med.c
              FROM raw r JOIN med ON med.ref = r.mref
            UNION ALL SELECT id, patient, date, value, unit, unnest(k.code.coding) FROM (
              SELECT r.*, unnest(r.contained) AS k FROM raw r WHERE r.mref LIKE '#%')
              WHERE '#' || k.id = mref"""
        t_filter = _timed(
            con,
            f"""INSERT INTO facts SELECT DISTINCT {_q(rtype)}, id, patient,
            m.concept, date, value, unit FROM ({coded}) JOIN maps m ON {m}""",
        )
        filter_s += t_filter
        n_in = con.execute("SELECT count(*) FROM raw").fetchone()[0]
        n_out = con.execute(
            f"SELECT count(*), count(DISTINCT id) FROM facts WHERE type = {_q(rtype)}"
        ).fetchone()
        per[rtype] = {
            "rows_in": n_in,
            "facts": n_out[0],
            "ids": n_out[1],
            "load_s": round(t_load, 3),
            "filter_s": round(t_filter, 3),
        }
    pat = folder / "Patient.ndjson"
    if pat.exists():  # the one fact age needs: birthDate (concept "birthDate")
        load_s += _timed(
            con,
            f"""INSERT INTO facts SELECT 'Patient', id, 'Patient/' || id,
            'birthDate', birthDate, NULL, NULL FROM {_read(pat, {"birthDate": "VARCHAR"})}""",
        )
        n = con.execute("SELECT count(*) FROM facts WHERE type = 'Patient'").fetchone()[0]
        per["Patient"] = {"rows_in": n, "facts": n, "ids": n}
    con.execute("DROP TABLE IF EXISTS raw")
    parquet_s = _timed(con, f"COPY facts TO {_q(str(out_parquet))} (FORMAT parquet)")
    t0 = time.perf_counter()  # what handing the facts to Python, patient by patient, costs
    con.execute("SELECT * FROM facts ORDER BY patient, type, date").fetchall()
    fetch_s = time.perf_counter() - t0
    facts = con.execute("SELECT count(*) FROM facts").fetchone()[0]
    return {
        "load_s": load_s,
        "filter_s": filter_s,
        "duck_s": load_s + filter_s,
        "parquet_s": parquet_s,
        "fetch_s": fetch_s,
        "facts": facts,
        "per_type": per,
    }


def auto_detect(con: Any, folder: Path) -> dict[str, str]:
    """Each type's file read whole with DuckDB's own schema detection (default sample):
    seconds, or the error, as text."""
    out = {}
    for rtype in [*TYPES, "Patient"]:
        path = folder / f"{rtype}.ndjson"
        if not path.exists():
            continue
        try:
            s = _timed(
                con,
                f"CREATE OR REPLACE TABLE auto AS SELECT * FROM read_json("
                f"{_q(str(path))}, format='newline_delimited')",
            )
            out[rtype] = f"{s:.2f} s"
        except Exception as e:  # the experiment reports what failed
            out[rtype] = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:160]}"
    con.execute("DROP TABLE IF EXISTS auto")
    return out


def _peak_mb() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # KiB on Linux


def store_counts(path: Path) -> dict[str, int]:
    """cohort's kept records by type in its SQLite store (table resources)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return dict(db.execute("SELECT type, count(*) FROM resources GROUP BY type"))
    finally:
        db.close()


def run_folder(folder: Path, args: argparse.Namespace, maps: list[Any]) -> dict[str, Any]:
    import duckdb

    from bench.jobs import floor

    floors = [floor(folder, 0) for _ in range(args.repeat)]
    fl = min(floors, key=lambda r: r["orjson_s"])
    con = duckdb.connect()
    con.execute(f"SET threads = {int(args.threads)}")
    con.execute("CREATE TABLE maps (domain VARCHAR, concept VARCHAR, system VARCHAR, code VARCHAR)")
    con.executemany("INSERT INTO maps VALUES (?, ?, ?, ?)", maps)
    out_dir = Path(args.parquet_dir or tempfile.mkdtemp(prefix="columnar-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    rounds = [
        duck_round(con, folder, out_dir / f"{folder.name}.facts.parquet")
        for _ in range(args.repeat)
    ]
    best = min(rounds, key=lambda r: r["duck_s"])
    res: dict[str, Any] = {
        "folder": str(folder),
        "resources": fl["resources"],
        "MB": round(fl["bytes"] / 1e6),
        "floor_s": fl["orjson_s"],
        "floor_all": [r["orjson_s"] for r in floors],
        "duck_all": [round(r["duck_s"], 3) for r in rounds],
        **{k: round(v, 3) if isinstance(v, float) else v for k, v in best.items()},
        "parquet_best_s": round(min(r["parquet_s"] for r in rounds), 3),
        "fetch_best_s": round(min(r["fetch_s"] for r in rounds), 3),
        "parquet": str(out_dir / f"{folder.name}.facts.parquet"),
    }
    res["ratio"] = round(fl["orjson_s"] / best["duck_s"], 2)
    res["peak_rss_mb"] = _peak_mb()  # before the auto-detected reads, which hold whole tables
    if args.auto_detect:
        res["auto_detect"] = auto_detect(con, folder)
        res["auto_peak_rss_mb"] = _peak_mb()
    if args.store:
        res["store"] = store_counts(Path(args.store))
    con.close()
    return res


def report(res: dict[str, Any], version: str, threads: int) -> str:
    """Markdown: the folder's summary table and its per-type counts."""
    lines = [
        f"#### {Path(res['folder']).name}",
        "",
        "| resources | MB | orjson floor s | DuckDB load+filter s (load / filter) | "
        "floor/DuckDB | facts | Parquet write s | facts to Python s | peak RSS MB | DuckDB | "
        "threads |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {res['resources']:,} | {res['MB']} | {res['floor_s']} | {res['duck_s']} "
        f"({res['load_s']} / {res['filter_s']}) | {res['ratio']} | {res['facts']:,} | "
        f"{res['parquet_best_s']} | {res['fetch_best_s']} | {res['peak_rss_mb']} | {version} | "
        f"{threads} |",
        "",
        f"All rounds: floor {res['floor_all']} s, DuckDB {res['duck_all']} s.",
        "",
        "| type | rows in | facts | distinct ids in facts | load s | filter s |"
        + (" cohort store rows |" if "store" in res else ""),
        "|---|---|---|---|---|---|" + ("---|" if "store" in res else ""),
    ]
    for t, c in res["per_type"].items():
        row = (
            f"| {t} | {c['rows_in']:,} | {c['facts']:,} | {c.get('ids', 0):,} | "
            f"{c.get('load_s', '')} | {c.get('filter_s', '')} |"
        )
        if "store" in res:
            row += f" {res['store'].get(t, 0):,} |"
        lines.append(row)
    if "auto_detect" in res:
        lines += [
            "",
            "Auto-detected schema (`SELECT *`, default sample): "
            + "; ".join(f"{t} {v}" for t, v in res["auto_detect"].items())
            + f"; peak RSS after it {res['auto_peak_rss_mb']} MB.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="bench/columnar.py",
        description="Time DuckDB load + mapping prefilter of per-type FHIR NDJSON against the "
        "orjson floor (docs/scaling.md Step 2; a bench experiment).",
    )
    p.add_argument(
        "--folder",
        type=Path,
        action="append",
        required=True,
        help="folder of per-type NDJSON files (Observation.ndjson, ...); repeatable",
    )
    p.add_argument("--threads", type=int, default=2, help="DuckDB threads (default 2)")
    p.add_argument("--repeat", type=int, default=3, help="rounds; the best is reported")
    p.add_argument(
        "--mappings",
        type=Path,
        default=ROOT / "mappings" / "concepts",
        help="folder of concept CSVs (default: this checkout's mappings/concepts)",
    )
    p.add_argument("--parquet-dir", help="where the facts Parquet goes (default: a temp dir)")
    p.add_argument("--store", help="a cohort SQLite store to compare kept records by type with")
    p.add_argument(
        "--auto-detect",
        action="store_true",
        help="also time each file read with DuckDB's own schema detection (once)",
    )
    p.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = p.parse_args(argv)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # bench.jobs for the floor
    import duckdb

    maps = load_mappings(args.mappings)
    print(
        f"{len(maps)} exact code rows; DuckDB {duckdb.__version__}; Python "
        f"{sys.version.split()[0]}",
        flush=True,
    )
    results = []
    for folder in args.folder:
        res = run_folder(folder, args, maps)
        results.append(res)
        print(report(res, duckdb.__version__, args.threads), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
