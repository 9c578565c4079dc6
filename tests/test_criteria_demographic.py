"""`age` and `sle_diagnosis` (kinds `age`, `diagnosis`) and who is screened; docs/rules.md."""

from __future__ import annotations

from datetime import date

import pytest
from criteria_helpers import ICD, SNOMED, ago, condition, patient, qty, run, screened, status

# as_of = 2026-11-25; 6 calendar months before = 2026-05-25


# --- age ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("birth", "expected"),
    [
        ("1990-04-02", "pass"),
        ("2014-11-25", "pass"),  # 12th birthday on as_of
        ("2014-11-26", "fail"),  # 12 tomorrow
        ("2014-11-24", "pass"),
        ("2020-01-01", "fail"),
        # partial dates: pass/fail only when every possible birthday agrees
        ("2010", "pass"),  # 15 or 16
        ("2014", "unknown"),  # 11 or 12
        ("2015", "fail"),  # 10 or 11
        ("2014-06", "pass"),  # 12 whatever the day
        ("2014-11", "unknown"),  # 1..25 Nov -> 12, 26..30 Nov -> 11
        ("2014-12", "fail"),  # 11
        ("2013-11", "pass"),  # 12 or 13
    ],
)
def test_age_birth_dates(birth: str, expected: str) -> None:
    assert status("age", patient(birth)) == expected


@pytest.mark.parametrize("birth", [None, "", "unknown"])
def test_age_missing_birth_date_is_unknown(birth: str | None) -> None:
    assert status("age", patient(birth)) == "unknown"


@pytest.mark.parametrize(
    ("birth", "expected"),
    [
        ("1990/05/01", "pass"),  # read as 1990: 35 or 36
        ("19900501", "pass"),  # as 1990
        ("1990-5-1", "pass"),  # as 1990
        ("2014/06/01", "unknown"),  # as 2014: 11 or 12
        ("2015/01/01", "fail"),  # as 2015: 10 or 11
    ],
)
def test_age_birth_date_that_is_no_fhir_date_reads_as_far_as_its_start_spells_one(
    birth: str, expected: str
) -> None:
    """docs/rules.md "Records that cannot be read": a birthDate that is no FHIR date is kept
    (from files) or read as a server sends it, "the date as far as its start spells one"
    (`2026/11/01` as 2026), as a Condition onset or a result date is; it was no birth date."""
    assert status("age", patient(birth)) == expected


@pytest.mark.parametrize("element", [{"active": "false"}, {"active": "no"}, {"active": 0},
                                     {"deceasedBoolean": "true"}, {"deceasedBoolean": 1},
                                     {"deceasedDateTime": "around 2020"},
                                     {"deceasedDateTime": 2020}])  # fmt: skip
def test_a_patient_whose_active_or_deceased_flag_is_no_boolean_could_not_be_read(
    element: dict[str, object],
) -> None:
    """A Patient from a FHIR server (not validated; or one `validate = "full"` let through,
    the models taking "false" for false) whose `active` or `deceasedBoolean` is no boolean was
    read as in use and alive: `active_record` and `deceased` passed, though the record may say
    the chart is not in use or the patient died; a deceasedDateTime that does not read was a
    death of no date (fail), though it may be after as-of. It is a record that could not be
    read (docs/rules.md): the criteria reading the Patient are unknown, as from a file."""
    from criteria_helpers import context, trial

    from cohort.evaluate import evaluate

    results = {r.criterion: r for r in evaluate(trial(), context(patient("1990-04-02", **element)))}
    for cid in ("active_record", "deceased", "age"):
        assert str(results[cid].status) == "unknown", (cid, results[cid].reason)
    assert "Patient record Patient/p1 could not be read" in results["deceased"].reason


def test_age_without_patient_resource_is_unknown() -> None:
    assert status("age") == "unknown"


@pytest.mark.parametrize(
    ("birth", "default", "site18"),
    [
        ("2010-01-01", "pass", "fail"),  # 16
        ("2008-11-25", "pass", "pass"),  # 18 today
        ("2008-11-26", "pass", "fail"),  # 17
        ("2008", "pass", "unknown"),  # 17 or 18
        ("2007", "pass", "pass"),  # 18 or 19
    ],
)
def test_age_site_min_age_override(birth: str, default: str, site18: str) -> None:
    assert status("age", patient(birth)) == default
    assert status("age", patient(birth), site={"min_age": 18}) == site18



@pytest.mark.parametrize(
    ("birth", "site", "status", "reason", "value", "note"),
    [
        # born in 2014: 11 (birthday Nov 26..Dec 31) or 12 (Jan 1..Nov 25) on 2026-11-25
        ("2014", 18, "fail", "age 11 or 12 < 18 (partial birth date)", "11 or 12", "partial"),
        ("2014", 12, "unknown", "partial birth date: age 11 or 12, cannot tell if >= 12",
         "11 or 12", "partial"),
        ("2010", 12, "pass", "age 15 or 16 >= 12 (partial birth date)", "15 or 16", "partial"),
        ("2014-11", 12, "unknown", "partial birth date: age 11 or 12, cannot tell if >= 12",
         "11 or 12", "partial"),
        ("2014-06", 18, "fail", "age 12 < 18", "12", ""),  # 12 whatever the day
        ("2014-06-30", 12, "pass", "age 12 >= 12", "12", ""),
        ("2014-11-26", 12, "fail", "age 11 < 12", "11", ""),
    ],
)  # fmt: skip
def test_age_reason_and_evidence_agree_on_a_partial_birth_date(
    birth: str, site: int, status: str, reason: str, value: str, note: str
) -> None:
    """A birth date of "2014" failed a site's 18 with "age 12 < 18" beside the evidence "11 a":
    the reason took the oldest age, the evidence the youngest, and neither said the age was
    one of two. Both now give the ages possible (one when every birthday agrees), in `years`
    (UCUM's `a`, "11 a", a coordinator does not read as years)."""
    r = run("age", patient(birth), site={"min_age": site})
    assert (str(r.status), r.reason) == (status, reason)
    assert [(e.value, e.unit) for e in r.evidence] == [(value, "years")]
    shown = "age at as-of" + (" (partial birth date)" if note else "")
    assert r.evidence[0].note == shown


def test_no_phi_shows_the_two_ages_of_a_partial_birth_date() -> None:
    from cohort.report.nophi import public_result, shown_value

    assert shown_value("11 or 12") == "11 or 12"
    r = run("age", patient("2014"), site={"min_age": 18})
    assert public_result(r).reason == "age 11 or 12 < 18 (partial birth date)"
    assert shown_value("J. Smith or 12") != "J. Smith or 12"


@pytest.mark.parametrize(
    ("birth", "reason"),
    [
        ("2030-01-01", "birth date 2030-01-01 after as-of 2026-11-25"),
        ("2026-11-26", "birth date 2026-11-26 after as-of 2026-11-25"),
        ("2027", "birth date 2027 after as-of 2026-11-25"),
        # some of its days are on or before as_of, some after
        ("2026", "birth date 2026 may be after as-of 2026-11-25"),
        ("2026-11", "birth date 2026-11 may be after as-of 2026-11-25"),
    ],
)
def test_a_birth_date_after_as_of_is_unknown_not_a_negative_age(birth: str, reason: str) -> None:
    """A birthDate after the as-of date failed `age` with "age -4 < 12": no age at all, an
    error of the record (or of the as-of date) for the coordinator to check."""
    r = run("age", patient(birth))
    assert (str(r.status), r.reason) == ("unknown", reason)
    assert [(e.ref, e.value) for e in r.evidence] == [("Patient/p1", birth)]


def test_a_birth_on_the_as_of_date_is_age_zero() -> None:
    r = run("age", patient("2026-11-25"))
    assert (str(r.status), r.reason) == ("fail", "age 0 < 12")


def test_no_phi_withholds_a_birth_date_after_as_of() -> None:
    from cohort.report.nophi import WITHHELD, public_result

    r = run("age", patient("2030-01-01"))
    assert public_result(r).reason == f"birth date {WITHHELD} after as-of 2026-11-25"


def test_age_site_min_age_zero_is_the_sites_limit() -> None:
    """A site's `min_age = 0` fell back to the trial's 12 (`or` took 0 for unset)."""
    assert status("age", patient("2020-01-01")) == "fail"  # 6
    assert status("age", patient("2020-01-01"), site={"min_age": 0}) == "pass"

# --- sle_diagnosis -----------------------------------------------------------------------------
OLD = "2019-03-04"
RECENT = "2026-09-01"


@pytest.mark.parametrize(
    ("code", "system"),
    [
        ("M32.14", ICD),
        ("M3214", ICD),
        ("M32.9", ICD),
        ("M32.10", ICD),
        ("m32.14", ICD),
        ("M32.14", "urn:oid:2.16.840.1.113883.6.90"),  # ICD-10-CM OID
        ("55464009", SNOMED),
        ("68815009", SNOMED),  # lupus nephritis (organ form of SLE)
        ("55464009", "urn:oid:2.16.840.1.113883.6.96"),  # SNOMED OID
        ("55464009", "https://snomed.info/sct/"),  # https + trailing slash
    ],
)
def test_sle_code_variants_pass_and_screen(code: str, system: str) -> None:
    c = condition(code, system, onset=OLD)
    assert status("sle_diagnosis", c) == "pass"
    assert screened(c)


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"onset": OLD}, "pass"),
        ({"onset_period": OLD}, "pass"),
        ({"recorded": OLD}, "pass"),  # no onset: recordedDate
        ({"onset": RECENT}, "fail"),
        ({"recorded": RECENT}, "fail"),
        ({"onset": RECENT, "recorded": OLD}, "fail"),  # onset wins over recordedDate
        ({"onset": OLD, "recorded": RECENT}, "pass"),
        ({"onset": "2026-05-25"}, "pass"),  # exactly 6 months
        ({"onset": "2026-05-26"}, "fail"),  # one day short
        ({"onset": "2019"}, "pass"),  # partial date
        ({}, "unknown"),  # undated
    ],
)
def test_sle_dates(kw: dict, expected: str) -> None:
    assert status("sle_diagnosis", condition("M32.14", **kw)) == expected


def test_sle_earliest_date_decides() -> None:
    assert (
        status(
            "sle_diagnosis",
            condition("M32.14", onset=RECENT),
            condition("55464009", SNOMED, onset=OLD),
        )
        == "pass"
    )


def test_sle_recent_plus_undated_is_unknown() -> None:
    assert (
        status("sle_diagnosis", condition("M32.14", onset=RECENT), condition("M32.9")) == "unknown"
    )


def test_sle_old_plus_undated_is_pass() -> None:
    assert status("sle_diagnosis", condition("M32.14", onset=OLD), condition("M32.9")) == "pass"


def test_lupus_unspecified_only_is_unknown_but_screened() -> None:
    c = condition("200936003", SNOMED, onset=OLD)
    assert status("sle_diagnosis", c) == "unknown"
    assert screened(c)
    # its evidence row names the concept it was read as (it was blank)
    r = run("sle_diagnosis", patient("1990-01-01"), c)
    assert [e.concept for e in r.evidence] == ["lupus_unspecified"]


def test_lupus_unspecified_with_sle_uses_sle() -> None:
    # a recent SLE condition decides when the unspecified lupus is no older
    assert (
        status(
            "sle_diagnosis",
            condition("200936003", SNOMED, onset=RECENT),
            condition("M32.14", onset="2026-10-01"),
        )
        == "fail"
    )
    # an old SLE condition passes whatever the unspecified one says
    assert (
        status(
            "sle_diagnosis",
            condition("200936003", SNOMED, onset=RECENT),
            condition("M32.14", onset=OLD),
        )
        == "pass"
    )


def test_old_lupus_unspecified_with_recent_sle_is_unknown_not_fail() -> None:
    # the old "Lupus erythematosus" may well be the same SLE, coded before it was specified
    # (condaudit finding 4): the specific one fails on its date, the unspecified one would pass
    old = condition("200936003", SNOMED, onset="2021-12-21")
    recent = condition("M32.14", onset="2026-10-26")
    r = run("sle_diagnosis", patient("1990-01-01"), old, recent)
    assert r.status == "unknown"
    assert r.reason == "lupus erythematosus not specified as systemic: confirm SLE"
    assert {(e.ref, e.concept) for e in r.evidence} == {
        (f"Condition/{old['id']}", "lupus_unspecified"),
        (f"Condition/{recent['id']}", "sle"),
    }
    # an unspecified lupus only as recent as the cutoff allows does not rescue it
    assert status("sle_diagnosis", condition("200936003", SNOMED, onset="2026-05-26"), recent) == (
        "fail"
    )


@pytest.mark.parametrize(("code", "system"), [("M32.0", ICD), ("M320", ICD), ("201436003", SNOMED)])
def test_drug_induced_lupus_only_is_not_screened(code: str, system: str) -> None:
    c = condition(code, system, onset=OLD)
    assert not screened(c)
    assert status("sle_diagnosis", c) == "fail"


def test_no_condition_at_all() -> None:
    assert not screened()
    assert status("sle_diagnosis") == "fail"


@pytest.mark.parametrize("verification", ["refuted", "entered-in-error"])
def test_refuted_or_error_sle_is_ignored(verification: str) -> None:
    bad = condition("M32.14", onset=OLD, verification=verification)
    assert not screened(bad)
    assert status("sle_diagnosis", bad) == "fail"
    # a refuted old diagnosis does not rescue a recent one
    assert status("sle_diagnosis", bad, condition("M32.14", onset=RECENT)) == "fail"


@pytest.mark.parametrize("verification", ["provisional", "differential", "unconfirmed"])
def test_an_unconfirmed_sle_diagnosis_is_unknown_not_pass(verification: str) -> None:
    """An SLE Condition whose verificationStatus says it is not confirmed (a provisional or
    differential diagnosis) is screened, but does not pass: the data cannot tell the patient
    has SLE (unknown, to confirm), rather than a likely candidate on a working diagnosis."""
    maybe = condition("M32.14", onset=OLD, verification=verification)
    assert screened(maybe)
    r = run("sle_diagnosis", maybe)
    assert r.status == "unknown"
    assert verification in r.reason and "confirm" in r.reason
    assert [e.ref for e in r.evidence] == [f"Condition/{maybe['id']}"]
    # a confirmed (or unstated) diagnosis early enough still passes beside it
    for sure in ("confirmed", None):
        assert status("sle_diagnosis", maybe, condition("M32.14", onset=OLD, verification=sure)) == (
            "pass"
        )
    # a recent confirmed one does not make the old provisional one a pass
    assert status("sle_diagnosis", maybe, condition("M32.14", onset=RECENT)) == "unknown"
    # and an unconfirmed diagnosis that is too recent fails as a confirmed one would
    assert status("sle_diagnosis", condition("M32.14", onset=RECENT, verification=verification)) == (
        "fail"
    )


def test_refuted_lupus_unspecified_not_screened() -> None:
    assert not screened(condition("200936003", SNOMED, onset=OLD, verification="refuted"))


def test_sle_with_other_conditions_only_counts_sle() -> None:
    assert (
        status("sle_diagnosis", condition("J45.909", onset=OLD), condition("M32.14", onset=RECENT))
        == "fail"
    )


@pytest.mark.parametrize(
    ("onset", "expected"),
    [("2026-02-28", "pass"), ("2026-03-01", "fail")],
)
def test_sle_calendar_months_clamp(onset: str, expected: str) -> None:
    # 6 months before 2026-08-31 is 2026-02-28
    r = run("sle_diagnosis", condition("M32.14", onset=onset), as_of=date(2026, 8, 31))
    assert r.status == expected


@pytest.mark.parametrize(
    "code",
    ["36402006", "52042003"],  # lupus nephritis classes: organ forms of SLE
)
def test_lupus_nephritis_snomed_is_sle(code: str) -> None:
    c = condition(code, SNOMED, onset=OLD)
    assert screened(c)
    assert status("sle_diagnosis", c) == "pass"


def test_snomed_edition_uri_in_system() -> None:
    c = condition("55464009", "http://snomed.info/sct/731000124108", onset=OLD)
    assert status("sle_diagnosis", c) == "pass"


# onset[x] as an Age, a Range of ages, a Period with only an end, a string (condaudit finding 1):
# a diagnosis made long ago but entered last month is decided on its onset, not its recordedDate
BORN = "1990-01-01"  # 36 on as_of


def sle_recorded_last_month(**onset: object) -> dict:
    return {**condition("M32.9", recorded=RECENT_RECORD), **onset}


RECENT_RECORD = "2026-10-26"


@pytest.mark.parametrize(
    ("onset", "birth", "expected"),
    [
        ({"onsetAge": qty(20, "a", ucum=True)}, BORN, "pass"),  # 2010
        ({"onsetAge": qty(20, "a", ucum=True)}, "1990", "pass"),  # a partial birth date: 2010..2011
        ({"onsetAge": qty(36, "a", ucum=True)}, BORN, "unknown"),  # 2026, to the recordedDate: both sides
        ({"onsetAge": qty(35, "a", ucum=True)}, "1989-11", "pass"),  # 2024-11-01..2025-11-29
        ({"onsetAge": qty(432, "mo", ucum=True)}, BORN, "pass"),  # 36 years in months: 2026-01
        ({"onsetAge": qty(436, "mo", ucum=True)}, BORN, "unknown"),  # 2026-05
        ({"onsetAge": qty(20, "a", ucum=True)}, None, "unknown"),  # no birth date: an onset, undated
        ({"onsetAge": qty(20, "furlong", ucum=True)}, BORN, "unknown"),  # no age unit: undated
        ({"onsetRange": {"low": qty(18, "a", ucum=True), "high": qty(20, "a", ucum=True)}}, BORN, "pass"),
        ({"onsetRange": {"high": qty(20, "a", ucum=True)}}, BORN, "pass"),  # by age 20
        ({"onsetRange": {"low": qty(30, "a", ucum=True)}}, BORN, "unknown"),  # from 2020 to its record
        ({"onsetPeriod": {"end": ago(730)}}, BORN, "pass"),  # on or before two years ago
        ({"onsetPeriod": {"end": "2026-05"}}, BORN, "unknown"),  # May 26-31: after the cutoff
        ({"onsetString": "since childhood"}, BORN, "unknown"),  # not "SLE only newer"
    ],
)
def test_sle_onset_age_range_period_end_and_string(
    onset: dict, birth: str | None, expected: str
) -> None:
    r = run("sle_diagnosis", patient(birth), sle_recorded_last_month(**onset))
    assert r.status == expected, r.reason


def test_sle_onset_age_reads_the_patient_after_the_conditions() -> None:
    # the Patient may come after its Conditions in the records read
    sle = sle_recorded_last_month(onsetAge=qty(20, "a", ucum=True))
    assert status("sle_diagnosis", sle, patient(BORN)) == "pass"


def test_sle_undated_onset_reason_and_evidence() -> None:
    r = run("sle_diagnosis", patient(BORN), sle_recorded_last_month(onsetString="in her teens"))
    assert r.reason == "SLE onset recorded without a date this can read"
    assert [e.date for e in r.evidence] == [RECENT_RECORD]
    # an older dated SLE condition still passes beside it
    assert status("sle_diagnosis", patient(BORN), condition("M32.14", onset=OLD)) == "pass"


def test_sle_onset_period_end_only_is_shown_open_ended() -> None:
    r = run("sle_diagnosis", patient(BORN), sle_recorded_last_month(onsetPeriod={"end": "2020"}))
    assert (r.status, r.reason) == ("pass", "diagnosed ../2020-12-31 (on or before 2026-05-25)")
    assert r.evidence[0].date == "../2020-12-31"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, "pass"),
        ({"deceasedBoolean": False}, "pass"),
        ({"deceasedBoolean": True}, "fail"),
        ({"deceasedDateTime": "2025-03-01"}, "fail"),
        ({"deceasedDateTime": "2026-11-25T23:10:00-08:00"}, "fail"),  # on as_of itself
        ({"deceasedDateTime": "2026-11-26"}, "pass"),  # after as_of: alive on as_of
        ({"deceasedDateTime": "2026-10"}, "fail"),  # every day of October is before as_of
        ({"deceasedDateTime": "2026-11"}, "unknown"),  # Nov 26-30 are after as_of
        ({"deceasedDateTime": "2026"}, "unknown"),
    ],
)
def test_deceased(extra: dict[str, object], expected: str) -> None:
    assert status("deceased", patient("1980-01-01", **extra)) == expected


def test_deceased_evidence_and_reason_show_the_date_as_recorded() -> None:
    r = run("deceased", patient("1980-01-01", deceasedDateTime="2026-10"))
    assert r.reason == "deceased 2026-10"
    assert [(e.ref, e.value, e.date) for e in r.evidence] == [("Patient/p1", "deceased", "2026-10")]
    assert r.eligible_from is None  # no end: not a washout


# --- active_record: Patient.active false, or a chart replaced by one not in the data ----------
def _link(kind: str, other: str) -> list[dict[str, object]]:
    return [{"other": {"reference": f"Patient/{other}"}, "type": kind}]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, "pass"),  # FHIR: active absent is no statement that the record is not in use
        ({"active": True}, "pass"),
        ({"active": False}, "unknown"),
        # a chart that says it was replaced and "must no longer be used" (FHIR R4), read as it
        # is because the chart that replaced it is not in the data (cohort/merged.py)
        ({"link": _link("replaced-by", "p9")}, "unknown"),
        ({"active": True, "link": _link("replaced-by", "p9")}, "unknown"),
        ({"link": _link("replaces", "p0")}, "pass"),  # the surviving chart
        ({"link": _link("seealso", "p0")}, "pass"),
    ],
)
def test_active_record(extra: dict[str, object], expected: str) -> None:
    assert status("active_record", patient("1980-01-01", **extra)) == expected


def test_an_inactive_record_is_unknown_with_a_reason_to_check_the_chart() -> None:
    r = run("active_record", patient("1980-01-01", active=False))
    assert r.reason == (
        "Patient record marked inactive (Patient.active false): check it is the current chart"
    )
    assert [(e.ref, e.value, e.note) for e in r.evidence] == [
        ("Patient/p1", "inactive", "Patient.active false")
    ]
    assert r.eligible_from is None


def test_a_replaced_record_names_the_chart_that_replaced_it() -> None:
    r = run("active_record", patient("1980-01-01", active=False, link=_link("replaced-by", "p9")))
    assert r.reason == (
        "Patient record replaced by Patient/p9 (not in the data): check the current chart"
    )
    assert [(e.ref, e.value, e.note) for e in r.evidence] == [
        ("Patient/p1", "inactive", "Patient.link replaced-by Patient/p9")
    ]


def test_no_phi_shows_the_inactive_word() -> None:
    from cohort.report.nophi import shown_value

    assert shown_value("inactive") == "inactive"


# A trial with an age range ("18 to 75 years"): `max_years`, the oldest age that passes (the
# whole years at as_of, as `min_years`). Before, the kind had no maximum: a second trial with
# one needed code. as_of 2026-11-25.
@pytest.mark.parametrize(
    ("birth", "expected", "reason"),
    [
        ("1985-04-02", "pass", "age 41 >= 18 and <= 75"),
        ("1951-11-25", "pass", "age 75 >= 18 and <= 75"),  # 75th birthday on as_of
        ("1950-11-26", "pass", "age 75 >= 18 and <= 75"),  # 76 tomorrow
        ("1950-11-25", "fail", "age 76 > 75"),  # 76th birthday on as_of
        ("1950-11", "unknown", "partial birth date: age 75 or 76, cannot tell if <= 75"),
        ("1949", "fail", "age 76 or 77 > 75 (partial birth date)"),
        ("1951", "pass", "age 74 or 75 >= 18 and <= 75 (partial birth date)"),
        ("2010-01-01", "fail", "age 16 < 18"),  # the minimum still applies
    ],
)
def test_age_max_years_is_the_oldest_age_that_passes(
    birth: str, expected: str, reason: str
) -> None:
    r = run("age", patient(birth), params={"min_years": 18, "max_years": 75})
    assert (str(r.status), r.reason) == (expected, reason)


def test_age_site_min_age_leaves_the_maximum() -> None:
    params = {"min_years": 12, "max_years": 75}
    assert status("age", patient("1948-01-01"), site={"min_age": 18}, params=params) == "fail"
    assert status("age", patient("2012-01-01"), site={"min_age": 18}, params=params) == "fail"
    assert status("age", patient("1990-01-01"), site={"min_age": 18}, params=params) == "pass"
