"""Tests of candidates.csv / evidence.csv and of the safe file writer."""

from __future__ import annotations

import csv
import io
import os
import stat
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from criteria_helpers import AS_OF, ago, immunization, medication, qty, run
from hypothesis import given, settings
from hypothesis import strategies as st

from cohort import atomic
from cohort.atomic import write_atomic
from cohort.errors import OutputError
from cohort.model import Candidate, CriterionInfo, Evidence, Patient, Result, SiteResult, Status
from cohort.report.columns import FIXED_COLUMNS
from cohort.report.csv import PHI_COLUMNS, candidates_csv, csv_line, evidence_csv
from cohort.report.files import excel_safe

CRITERIA = [
    CriterionInfo("age", "inclusion", "Age >= 12"),
    CriterionInfo("ana_titer", "inclusion", "ANA titer >= 1:80", missing_hint="ANA titer"),
    CriterionInfo("sledai", "inclusion", "SLEDAI-2K >= 6", manual_when_unknown=True),
    CriterionInfo("platelets", "exclusion", "Platelets", missing_hint="CBC within 90 days"),
    CriterionInfo("washout_12wk", "exclusion", "12-week washout"),
]


def _res(cid: str, status: str, reason: str = "", **kw: object) -> Result:
    return Result(cid, Status(status), reason or f"{cid} {status}", **kw)  # type: ignore[arg-type]


def make_site() -> SiteResult:
    ev = Evidence("Observation/ana1", "ana_titer", "1:160", "{titer}", "2026-01-10", "most recent")
    old = Evidence("Observation/ana0", "ana_titer", "1:40", "{titer}", "2025-01-10", "older")
    c1 = Candidate(
        Patient(
            "p1",
            "1980-03-15",
            "female",
            name='Ann =HYPERLINK("http://x")',
            mrn="M1",
            phone="+1 555 0100",
            postal_code="92660",
        ),
        [
            _res("age", "pass"),
            _res("ana_titer", "pass", evidence=(ev,), ignored=(old,)),
            _res("sledai", "unknown", manual=True),
            _res("platelets", "pass"),
            _res("washout_12wk", "pass"),
        ],
        tier="likely",
        score=4.5,
        rank=1,
        last_seen=date(2026, 2, 1),
        change="new",
    )
    c2 = Candidate(
        Patient(
            "p2",
            "1990",
            "male",
            name="@SUM(A1)",
            mrn='=HYPERLINK("http://evil","call")',
            phone="-12",
        ),
        [
            _res("age", "pass"),
            _res("ana_titer", "unknown", "no ANA titer"),
            _res("sledai", "unknown", manual=True),
            _res("platelets", "unknown", "no platelets"),
            _res("washout_12wk", "pass"),
        ],
        tier="possible",
        score=2.25,
        rank=2,
        change="tier excluded -> possible",
    )
    c3 = Candidate(
        Patient("p3", "2001-12-31", "female", name="Zoë <b>", mrn="-M3"),
        [
            _res("age", "pass"),
            _res("ana_titer", "unknown", "no ANA titer"),
            _res("sledai", "unknown", manual=True),
            _res("platelets", "pass"),
            _res("washout_12wk", "fail", "=tacrolimus 2026-01-20", eligible_from=date(2026, 4, 14)),
        ],
        tier="excluded",
        score=2.0,
        rank=3,
        eligible_from=date(2026, 4, 14),
    )
    return SiteResult(
        "uci",
        "UC Irvine",
        date(2026, 3, 1),
        CRITERIA,
        ["contraception (WOCBP)"],
        [c1, c2, c3],
        mapping_version="sha256:abc",
    )


def _read(text: str) -> list[list[str]]:
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:], newline="")))


def test_bom_crlf_and_encoding() -> None:
    text = candidates_csv(make_site())
    raw = text.encode("utf-8")
    assert raw.startswith(b"\xef\xbb\xbf")
    assert "\r\n" in text and "\n" not in text.replace("\r\n", "")
    assert "Zoë" in raw.decode("utf-8-sig")


def test_column_order_with_and_without_phi() -> None:
    site = make_site()
    head = _read(candidates_csv(site))[0]
    assert head == [
        "rank",
        "patient_id",
        "tier",
        "score",
        "eligible_from",
        "reasons",
        "age",
        "ana_titer",
        "sledai",
        "platelets",
        "washout_12wk",
        "change",
        "to_confirm",
        "missing",
        "last_seen",
        "name",
        "mrn",
        "birth_date",
        "age_years",
        "sex",
        "phone",
        "postal_code",
    ]
    rows = _read(candidates_csv(site, phi=False))
    assert rows[0][-4:] == ["change", "to_confirm", "missing", "last_seen"]
    flat = "\n".join(",".join(r) for r in rows)
    for secret in ("Ann", "M1", "555", "1980-03-15", "92660", "female"):
        assert secret not in flat
    assert not set(PHI_COLUMNS) & set(rows[0])
    assert len(set(rows[0])) == len(rows[0])  # no duplicate header (DictReader-safe)


def test_fixed_columns_are_the_header_but_the_criteria() -> None:
    """FIXED_COLUMNS (the ids a criteria file may not use: criteria.loading) is every column of
    the header that is not a criterion's."""
    site = make_site()
    head = _read(candidates_csv(site))[0]
    assert set(head) - {ci.id for ci in site.criteria} == FIXED_COLUMNS
    # (both sides come from cohort.report.columns: pinned to the header spelt out above)
    assert {
        "rank", "patient_id", "tier", "score", "eligible_from", "reasons",
        "change", "to_confirm", "missing", "last_seen",
        "name", "mrn", "birth_date", "age_years", "sex", "phone", "postal_code",
    } == FIXED_COLUMNS  # fmt: skip


def test_row_values() -> None:
    rows = _read(candidates_csv(make_site()))
    head = rows[0]
    r1 = dict(zip(head, rows[1], strict=False))
    assert r1["rank"] == "1" and r1["patient_id"] == "p1" and r1["tier"] == "likely"
    assert r1["score"] == "4.50" and r1["last_seen"] == "2026-02-01" and r1["change"] == "new"
    assert r1["to_confirm"] == "SLEDAI-2K >= 6; contraception (WOCBP)"
    assert r1["missing"] == "" and r1["reasons"] == ""
    assert rows[1][head.index("age_years")] == "45"
    r2 = dict(zip(head[:15], rows[2][:15], strict=True))
    assert r2["reasons"] == "ana_titer: no ANA titer; platelets: no platelets"
    assert r2["missing"] == "ANA titer; CBC within 90 days"
    assert rows[2][head.index("age_years")] == ""  # born "1990": 35 or 36 at 2026-03-01
    r3 = dict(zip(head[:15], rows[3][:15], strict=True))
    assert r3["eligible_from"] == "2026-04-14" and r3["washout_12wk"] == "fail"
    assert r3["reasons"] == "washout_12wk: =tacrolimus 2026-01-20"  # only fails when excluded
    assert r3["score"] == "2.00"


@pytest.mark.parametrize(
    ("deceased_on", "years"),
    [
        ("2020-03-14", "39"),  # the day before her 40th birthday
        ("2020-03-15", "40"),
        ("2020-03-15T08:30:00Z", "40"),
        ("2020", ""),  # 39 or 40: as a partial birth date, no one age
        ("2020-06", "40"),
        ("2026-02", "45"),  # on or before as-of (2026-03-01), after her 45th birthday
        ("2026-05-01", "45"),  # a death recorded after as-of: her age at as-of
        ("2026", "45"),  # may be after as-of: 45 on every day up to it
        ("", ""),  # deceasedBoolean: when she died is not known
    ],
)
def test_age_years_of_a_deceased_patient_is_her_age_at_death(deceased_on: str, years: str) -> None:
    """`age_years` of a patient who died in 2020 gave her age at as-of (45), as if alive."""
    site = make_site()
    site.candidates[0].patient.deceased = True
    site.candidates[0].patient.deceased_on = deceased_on  # born 1980-03-15; as of 2026-03-01
    rows = _read(candidates_csv(site))
    assert rows[1][rows[0].index("age_years")] == years


def test_age_years_of_a_birth_date_after_as_of_is_empty() -> None:
    site = make_site()
    site.candidates[0].patient.birth_date = "2030-01-01"
    rows = _read(candidates_csv(site))
    assert rows[1][rows[0].index("age_years")] == ""


def test_reasons_cell_splits_into_one_reason_per_criterion() -> None:
    """The reasons cell joins "id: reason" with "; "; a "; " inside a reason (free text, a
    reason quoting a record) is written ", " so splitting the cell never cuts a reason in two."""
    site = make_site()
    c2 = site.candidates[1]
    c2.results[1] = _res("ana_titer", "unknown", "titer 1:40; 1:80 on another day")
    r2 = dict(zip(*_read(candidates_csv(site))[:3:2], strict=False))
    assert r2["reasons"] == "ana_titer: titer 1:40, 1:80 on another day; platelets: no platelets"
    parts = r2["reasons"].split("; ")
    assert [x.split(": ", 1)[0] for x in parts] == ["ana_titer", "platelets"]


def test_injection_neutralised() -> None:
    rows = _read(candidates_csv(make_site()))
    head = rows[0]
    name, mrn, phone = head.index("name"), head.index("mrn"), head.index("phone")
    assert rows[1][name] == 'Ann =HYPERLINK("http://x")'  # not at the start: inert text
    assert rows[1][phone] == "'+1 555 0100"
    assert rows[2][name] == "'@SUM(A1)"
    assert rows[2][mrn] == '\'=HYPERLINK("http://evil","call")'
    assert rows[3][mrn] == "'-M3"
    assert rows[2][phone] == "-12"  # a plain negative number is kept
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "+", "@", "\t", "\r")) or cell == "+"


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ('=HYPERLINK("http://evil","x")', '\'=HYPERLINK("http://evil","x")'),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(1)", "'@SUM(1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("-12", "-12"),
        ("-3.75", "-3.75"),
        ("+4", "+4"),
        ("2026-03-01", "2026-03-01"),
        ("plain text", "plain text"),
        ("", ""),
    ],
)
def test_excel_safe(cell: str, expected: str) -> None:
    assert excel_safe(cell) == expected


def test_evidence_csv() -> None:
    rows = _read(evidence_csv(make_site()))
    assert rows[0] == [
        "patient_id",
        "criterion",
        "status",
        "used",
        "ref",
        "concept",
        "value",
        "unit",
        "date",
        "note",
    ]
    assert rows[1] == [
        "p1",
        "ana_titer",
        "pass",
        "yes",
        "Observation/ana1",
        "ana_titer",
        "1:160",
        "{titer}",
        "2026-01-10",
        "most recent",
    ]
    assert rows[2][3] == "ignored" and rows[2][4] == "Observation/ana0"
    assert len(rows) == 3


def test_evidence_csv_rows_of_a_high_dose_and_a_live_vaccine_say_what_they_are() -> None:
    """Output audit: evidence.csv showed `,,1250,,` for a methylprednisolone 1000 mg pulse and
    a CVX-coded vaccine's row had neither concept nor value."""
    pulse = medication(
        "MedicationAdministration", "6902", status="completed", when=ago(20),
        admin_dose=qty(1000, "mg", "mg"),
    )  # fmt: skip
    results = [run("washout_high_dose_cs", pulse), run("live_vaccine", immunization("03", ago(10)))]
    site = SiteResult("s", "Site", AS_OF, [], [], [Candidate(Patient("p1"), results)])
    for phi in (True, False):
        rows = [r[5:] for r in _read(evidence_csv(site, phi=phi))[1:]]
        assert rows == [
            ["corticosteroid_systemic", "1250", "mg/day", f"{ago(20)}..{ago(20)}",
             "methylprednisolone 1000 mg/day = 1250 mg/day prednisone-equivalent"],
            ["live_vaccine", "CVX 03" if phi else "(text withheld)", "", ago(10), "within window"],
        ]  # fmt: skip


def test_write_atomic_modes(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        target = tmp_path / "out" / "uci" / "candidates.csv"
        write_atomic(target, candidates_csv(make_site()))
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o700
    assert target.read_bytes().startswith(b"\xef\xbb\xbf")
    assert [p.name for p in target.parent.iterdir()] == ["candidates.csv"]


def test_write_atomic_failure_keeps_previous(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "candidates.csv"
    write_atomic(target, "good\r\n")

    def boom(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", boom)
    with pytest.raises(OutputError, match="No space left"):
        write_atomic(target, "half-written")
    assert target.read_bytes() == b"good\r\n"
    assert [p.name for p in tmp_path.iterdir()] == ["candidates.csv"]  # temp file removed


def test_write_atomic_unwritable_folder(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root ignores folder permissions")
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    with pytest.raises(OutputError):
        write_atomic(ro / "x.csv", "x")


def test_evidence_rendered_per_candidate_equals_evidence_rendered_at_the_end() -> None:
    from dataclasses import replace

    from cohort.report.csv import criterion_order, evidence_text

    site = make_site()
    risky = Evidence("Observation/x", "platelets", "=1+1", "", "2026-01-01", "@SUM(A1)")
    first = site.candidates[0]
    first.results = [replace(first.results[0], evidence=(risky,)), *first.results[1:]]
    whole = evidence_csv(site)
    assert whole.count("\r\n") == 4 and "'=1+1" in whole and "'@SUM(A1)" in whole
    order = criterion_order(site.criteria)
    for c in site.candidates:
        c.evidence_text = evidence_text(c, order)
        c.results = [replace(r, evidence=(), ignored=()) for r in c.results]
    assert evidence_csv(site) == whole


def test_write_atomic_streams_pieces_and_cleans_up_on_a_failing_producer(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    write_atomic(target, iter(["a,", "b\r\n", "ü\r\n"]))
    assert target.read_bytes() == "a,b\r\nü\r\n".encode()

    def broken() -> Iterator[str]:
        yield "partial"
        raise RuntimeError("bug while rendering")

    with pytest.raises(RuntimeError):
        write_atomic(target, broken())
    assert target.read_bytes() == "a,b\r\nü\r\n".encode()  # previous file kept
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]  # no temp file left


_CELL = st.text(alphabet=st.sampled_from(list("ab 1,\"\r\n=+-@\t'é;\x1f")), max_size=6)


@settings(max_examples=500, deadline=None)
@given(st.lists(_CELL, min_size=1, max_size=11))
def test_csv_line_is_what_the_csv_writer_writes(row: list[str]) -> None:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL).writerow(
        [excel_safe(x) for x in row]
    )
    assert csv_line(row) == buf.getvalue()


@pytest.mark.parametrize(
    ("birth", "as_of", "years"),
    [
        ("1990-06", "2026-06-30", "36"),  # June has 30 days: every June birthday has passed
        ("1990-02", "2026-02-28", "36"),  # no 29 February in 1990
        ("1990-06", "2026-06-29", ""),  # 30 June 1990: 35
        ("1990-06-30", "2026-06-30", "36"),
    ],
)
def test_age_years_of_a_month_birth_date_agrees_with_the_age_criterion(
    birth: str, as_of: str, years: str
) -> None:
    """`age_years` counted every month as 31 days long: for a birth month known to be over it
    was blank while the `age` cell passed with "age 36"."""
    site = make_site()
    site.as_of = date.fromisoformat(as_of)
    site.candidates[0].patient.birth_date = birth
    rows = _read(candidates_csv(site))
    assert rows[1][rows[0].index("age_years")] == years
