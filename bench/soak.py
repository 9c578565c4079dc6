"""Soak: `cohort run` night after night into one store and OUT, the data changing each night.

    .venv/bin/python -m bench.soak --nights 60 --patients 300 --work /tmp/soak

Sources, each its own configuration, store and OUT: `snap`, a Bulk-style NDJSON folder written
whole each night (Observation split in two files every 5th night, gzipped every 7th; `snapshot =
true`); `incr`, a folder gaining one increment folder a night (`snapshot = false`; deletions as
entered-in-error copies); with sekmet installed, `search` and `bulk` (Bulk `$export`, every
`--bulk-every` nights: a sekmet export can take minutes) from one server. Each night
(bench/soak_data.py) ~5% of patients get a record (a mapped lab, a vital sign or a condition no
criterion reads, a hydroxychloroquine statement), ~1% of results are edited, 3 deleted, 2
patients added; a possible patient missing only labs gets them (expected: `tier possible ->
likely`, and named in summary.html's newly likely and by `cohort diff`), a likely one a
malignancy (expected: `tier likely -> excluded`), deleted 3 nights later. Per night it writes
`metrics.tsv` (wall time, peak RSS, store and WAL size, rows per table, census generations,
free pages, run.json and OUT size, files left over in OUT, the store folder or TMPDIR) and
lists unmet expectations in `problems.txt`; at the end it runs each configuration into a fresh
store and OUT and compares candidates.csv (but `change`, by patient), evidence.csv and
coverage.csv. The servers' lists differ by design for patients with records deleted on the
server (incremental pulls do not see deletions: docs/scheduling.md); those patients are left
out of their comparison and counted.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import requests

from bench import server
from bench.server import Sekmet
from bench.soak_data import START, Population

ROOT = Path(__file__).resolve().parent.parent
# Peak RSS of the run alone: Linux carries a process's peak across fork and exec, so the run is
# started by a small child that reports its own child's peak (bench/README.md)
RSS = "import resource,subprocess,sys; sys.stdout.write(str(subprocess.run(sys.argv[1:], \
stdout=subprocess.DEVNULL, stderr=subprocess.PIPE).returncode) + ' ' + \
str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))"


def cohort(*args: str, work: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(work / "tmp")}
    return subprocess.run(
        [sys.executable, "-m", "cohort", *args], env=env, capture_output=True, text=True
    )


def run(cfg: Path, d: date, out: Path, work: Path) -> dict[str, Any]:
    """One `cohort run`: wall seconds and peak RSS (MB) of the run's process."""
    t0 = time.monotonic()
    cmd = [sys.executable, "-m", "cohort", "run", "--config", str(cfg), "--as-of", str(d)]
    cmd += ["--out", str(out)]
    p = subprocess.run(
        [sys.executable, "-c", RSS, *cmd],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(work / "tmp")},
    )
    code, rss = (int(x) for x in p.stdout.split())
    if code:
        raise SystemExit(f"{cfg.name} as of {d}: exit {code}: {p.stderr[-1000:]}")
    return {"wall_s": round(time.monotonic() - t0, 2), "rss_mb": rss // 1024}


def measure(out: Path, work: Path) -> dict[str, Any]:
    db = out / ".cohort" / "store.sqlite"
    wal = db.with_name("store.sqlite-wal")  # (before the read-only look below leaves one)
    m: dict[str, Any] = {
        "store_kb": db.stat().st_size >> 10,
        "wal_kb": wal.stat().st_size >> 10 if wal.exists() else "-",
    }
    # (closed at once: an open connection keeps the next run's close from removing the WAL)
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
        for t in ("resources", "census", "side_dates", "marks", "runs"):
            m[t] = con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
        m["gens"] = con.execute(
            "SELECT COUNT(*) FROM (SELECT DISTINCT site, source, gen FROM side_dates"
            " UNION SELECT DISTINCT site, source, gen FROM census)"
        ).fetchone()[0]
        m["free_pages"] = con.execute("PRAGMA freelist_count").fetchone()[0]
        m["runs_bytes"] = con.execute(
            "SELECT COALESCE(SUM(LENGTH(record)), 0) FROM runs"
        ).fetchone()[0]
    m["run_json_kb"] = (out / "run.json").stat().st_size >> 10
    files = [p for p in out.rglob("*") if p.is_file()]
    m["out_kb"] = sum(p.stat().st_size for p in files if ".cohort" not in p.parts) >> 10
    left = [p for p in files if any(x in p.name for x in (".staged", ".tmp", ".part"))]
    left += [p for p in (out / ".cohort" / "bulk-spool").rglob("*") if p.is_file()]
    left += list((work / "tmp").iterdir())
    m["leftover"] = ",".join(p.name for p in left) or "-"
    return m


def rows_of(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))


def check(out: Path, prev: Path, site: str, expect: dict[str, Any], work: Path) -> list[str]:
    """What tonight's lists, summary.html and `cohort diff` fail to say of tonight's changes."""
    rows = {r["patient_id"]: r for r in rows_of(out / site / "candidates.csv")}
    html = (
        (out / site / "summary.html")
        .read_text()
        .split('id="newly-likely"', 1)[-1]
        .split("</table>")[0]
    )
    said = cohort("diff", str(prev), str(out), work=work).stdout
    bad = [
        f"new {p}: {rows[p]['change']!r}"
        for p in expect["new"]
        if p in rows and rows[p]["change"] != "new"
    ]
    bad += [f"diff does not name new {p}" for p in expect["new"] if p in rows and p not in said]
    want = {"newly_likely": "tier possible -> likely", "malignancy": "tier likely -> excluded"}
    for key, change in want.items():
        pid = expect.get(key)
        if pid and rows[pid]["change"] != change:
            bad.append(f"{key} {pid}: {rows[pid]['change']!r}")
        if pid and pid not in said:
            bad.append(f"diff does not name {key} {pid}")
    if expect.get("newly_likely") and expect["newly_likely"] not in html:
        bad.append(f"summary.html does not list newly likely {expect['newly_likely']}")
    pid = expect.get("malignancy_deleted")
    if pid and (rows[pid]["malignancy"] != "pass" or not rows[pid]["change"]):
        bad.append(f"malignancy deleted {pid}: {rows[pid]['change']!r}")
    return bad


def compare(a: Path, b: Path, site: str, skip: set[str]) -> str:
    """Night N's lists against a fresh run's (but `change`; patients in `skip` left out)."""

    def keyed(f: Path, pid: str, drop: tuple[str, ...]) -> set[tuple[str, ...]]:
        return {
            tuple(v for k, v in r.items() if k not in drop)
            for r in rows_of(f)
            if r[pid] not in skip
        }

    said = []
    for f, drop in (("candidates.csv", ("change", "rank", "score")), ("evidence.csv", ())):
        x, y = keyed(a / site / f, "patient_id", drop), keyed(b / site / f, "patient_id", drop)
        said.append(f"{f} {len(x)} rows, {len(x ^ y)} differ")
    same = (a / "coverage.csv").read_bytes() == (b / "coverage.csv").read_bytes()
    return f"{site}: " + "; ".join(said) + f"; coverage.csv {'same' if same else 'DIFFERS'}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nights", type=int, default=60)
    ap.add_argument("--patients", type=int, default=300, help="screened patients (+1/6 background)")
    ap.add_argument("--pad", type=int, default=10, help="extra results per patient")
    ap.add_argument("--bulk-every", type=int, default=10)
    ap.add_argument("--no-server", action="store_true")
    ap.add_argument("--sekmet", type=Path, default=server.SEKMET, help="the sekmet executable")
    ap.add_argument("--work", type=Path, default=Path("/tmp/cohort-soak"))
    a = ap.parse_args()
    work = a.work
    shutil.rmtree(work, ignore_errors=True)
    (work / "tmp").mkdir(parents=True)
    pop = Population(a.patients, a.pad)
    snap, incr = work / "src-snap", work / "src-incr"
    pop.write_snapshot(snap, 1)
    pop.write_increment(incr, 0)
    cfgs = {}
    for name, source, extra in (("snap", snap, ""), ("incr", incr, "[run]\nsnapshot = false\n")):
        cfgs[name] = work / f"{name}.toml"
        cfgs[name].write_text(
            f'[trial]\nid = "sirius-sle-2"\n{extra}[[sites]]\nid = "{name}"\nsource = "{source}"\n'
        )
    srv, session = None, requests.Session()
    server.SEKMET = a.sekmet
    if not a.no_server and a.sekmet.exists():
        srv = Sekmet(work / "srv")
        pop.push(session, srv.base)
        for name, bulk in (("search", "false"), ("bulk", "true")):
            cfgs[name] = work / f"{name}.toml"
            cfgs[name].write_text(
                f'[trial]\nid = "sirius-sle-2"\n[[sites]]\nid = "{name}"\n'
                f'source = "{srv.base}"\n[sites.server]\nbulk = {bulk}\n'
            )
    problems, cols = [], ["night", "as_of", "src"]
    server_deleted: set[str] = set()
    try:
        with (work / "metrics.tsv").open("w") as tsv:
            for n in range(a.nights):
                d = START + timedelta(days=n)
                expect = (
                    pop.night(n, d, rows_of(work / "out-snap" / "snap" / "candidates.csv"))
                    if n
                    else {}
                )
                if n:
                    pop.write_snapshot(snap, n)
                    pop.write_increment(incr, n)
                    server_deleted |= {r["subject"]["reference"][8:] for r in pop.deleted.values()}
                    if srv:
                        pop.push(session, srv.base)
                for name, cfg in cfgs.items():
                    if name == "bulk" and n % a.bulk_every and n != a.nights - 1:
                        continue
                    out, prev = work / f"out-{name}", work / f"prev-{name}"
                    shutil.rmtree(prev, ignore_errors=True)
                    if out.exists():
                        shutil.copytree(
                            out, prev, ignore=shutil.ignore_patterns(".cohort", ".outputs.lock")
                        )
                    m = {
                        "night": n,
                        "as_of": d,
                        "src": name,
                        **run(cfg, d, out, work),
                        **measure(out, work),
                    }
                    # (the servers' lists differ from snap's, which chose the patients: deletions)
                    if n and name in ("snap", "incr"):
                        bad = check(out, prev, name, expect, work)
                        problems += [f"night {n} {name}: {b}" for b in bad]
                    if len(cols) == 3:
                        cols += [k for k in m if k not in cols]
                        tsv.write("\t".join(cols) + "\n")
                    tsv.write("\t".join(str(m[c]) for c in cols) + "\n")
                    tsv.flush()
                print(f"night {n} (as of {d}) done", flush=True)
            for name, cfg in cfgs.items():
                fresh = work / f"fresh-{name}"
                m = {
                    "night": "fresh",
                    "as_of": d,
                    "src": name,
                    **run(cfg, d, fresh, work),
                    **measure(fresh, work),
                }
                tsv.write("\t".join(str(m[c]) for c in cols) + "\n")
                for o in (fresh, work / f"out-{name}"):
                    cohort("mappings", "coverage", "--config", str(cfg), "--out", str(o), work=work)
    finally:
        if srv:
            srv.stop()
    (work / "problems.txt").write_text("".join(f"{p}\n" for p in problems))
    print(f"{len(problems)} unmet expectation(s): {work / 'problems.txt'}")
    for name in cfgs:
        skip = server_deleted if name in ("search", "bulk") else set()
        note = (
            f" ({len(skip)} patients with records deleted on the server left out)" if skip else ""
        )
        print(compare(work / f"out-{name}", work / f"fresh-{name}", name, skip) + note)
    print(f"metrics: {work / 'metrics.tsv'}")


if __name__ == "__main__":
    main()
