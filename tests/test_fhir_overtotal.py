"""A server whose Bundle.total always counts more than a search returns: once a search of a
type has been read twice alike short of its total, that type's later shortfalls are taken."""

from __future__ import annotations

import threading

import responses
from fhir_fakes import population
from test_fhir_pull import PageFake, _pages_of, run

# (one search per patient, one at a time: the reads of each can be counted in order)
ONE_BY_ONE = {"patient_batch": 1, "concurrency": 1}


def overcounts(rtype: str, matched: int, total: int) -> str:
    return (
        f"{rtype}: the server's Bundle.total overcounts (a search returned {matched} of the "
        f"{total} matches its total announced, read twice alike); later shortfalls against "
        "total by up to as many not read again"
    )


def _too_high(
    fake, reads: dict, types: tuple[str, ...], twice: str | None = None, by: dict | None = None
):
    """An `edit` announcing 5 more matches than each patient search of `types` returns (`by`:
    patient id -> another number), counting the GETs of each (type, patient); the first read of
    `twice`'s search (a patient id, Condition) lists its first record twice (results moved)."""

    def edit(req, status, body):
        rtype = next((t for t in types if _pages_of(t, req)), None)
        if rtype is None:
            return status, body
        pid = req.url.split("patient=")[1].split("&")[0]
        reads[rtype, pid] = reads.get((rtype, pid), 0) + 1
        body["total"] = len(body["entry"]) + (by or {}).get(pid, 5)
        if pid == twice and rtype == "Condition" and reads[rtype, pid] == 1:
            body["entry"] = body["entry"] + body["entry"][:1]
        return status, body

    fake.edit = edit
    return edit


def test_a_total_always_too_high_reads_only_the_first_search_twice(store):
    """Every search of a server whose total counts what it never returns (deleted or
    _include'd records, an estimate) was read twice: twice the requests of the whole pull.
    The first search is read twice alike (2 of 7 each time); the type's other two searches are
    taken at their first read, all 6 Conditions stored, one warning for the type."""
    reads: dict = {}
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)
        _too_high(fake, reads, ("Condition",))
        rep = run(store, cfg=ONE_BY_ONE)
    assert reads == {("Condition", "p0"): 2, ("Condition", "p1"): 1, ("Condition", "p2"): 1}
    assert store.count_by_type("uci")["Condition"] == 6
    said = [w for w in rep.warnings if "total announced" in w]
    assert said == [overcounts("Condition", 2, 7)]
    assert not any("moved" in w for w in rep.warnings), rep.warnings


def test_a_record_twice_after_the_total_was_found_too_high_is_still_read_again(store):
    """A record listed twice is a sign that the results moved, not of a bad total: p1's
    search, whose first read lists c1 twice, is read again although Condition's totals are
    known to be too high; its second read (only short of its total) is taken."""
    reads: dict = {}
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)
        _too_high(fake, reads, ("Condition",), twice="p1")
        rep = run(store, cfg=ONE_BY_ONE)
    assert reads == {("Condition", "p0"): 2, ("Condition", "p1"): 2, ("Condition", "p2"): 1}
    assert store.count_by_type("uci")["Condition"] == 6
    assert [w for w in rep.warnings if "total announced" in w] == [overcounts("Condition", 2, 7)]
    assert any("Condition: a search's results moved while its pages were read" in w
               for w in rep.warnings), rep.warnings


def test_a_type_whose_total_was_not_found_too_high_is_still_read_again(store):
    """Condition's totals found too high say nothing of Immunization's (another table,
    index or count on the server): its first search short of its total is read twice too."""
    reads: dict = {}
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)
        _too_high(fake, reads, ("Condition", "Immunization"))
        rep = run(store, cfg=ONE_BY_ONE)
    assert reads == {
        ("Condition", "p0"): 2, ("Condition", "p1"): 1, ("Condition", "p2"): 1,
        ("Immunization", "p0"): 2, ("Immunization", "p1"): 1, ("Immunization", "p2"): 1,
    }
    assert store.count_by_type("uci")["Immunization"] == 3
    assert [w for w in rep.warnings if "total announced" in w] == [
        overcounts("Condition", 2, 7), overcounts("Immunization", 1, 6)
    ]


def test_a_shortfall_larger_than_the_overcount_seen_is_read_again(store):
    """The type's totals were seen 5 too high (p0, read twice alike); p1's search falls 8 short,
    more than that: read again (a page cut short, a deletion), alike, so 8 is the bound from
    then on; p2's 5 short is taken at its first read. One warning for the type."""
    reads: dict = {}
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)
        _too_high(fake, reads, ("Condition",), by={"p1": 8})
        rep = run(store, cfg=ONE_BY_ONE)
    assert reads == {("Condition", "p0"): 2, ("Condition", "p1"): 2, ("Condition", "p2"): 1}
    assert store.count_by_type("uci")["Condition"] == 6
    assert [w for w in rep.warnings if "total" in w] == [overcounts("Condition", 2, 7)]


def test_a_search_read_once_short_before_another_flagged_the_type_moved_nothing(monkeypatch):
    """Searches of one type run in parallel (`concurrency`): this one fell 5 short, then
    another search found the type's totals 5 too high before this one's second read, which is
    taken. Its first read moved nothing (only short, as every read of the type): no "results
    moved" warning, one read again at most."""
    from types import SimpleNamespace

    from cohort.source.fhir import paging

    warned: list[str] = []
    p = SimpleNamespace(
        report=SimpleNamespace(warn=warned.append), overcounts={}, lock=threading.Lock(),
        category_each=False, client=SimpleNamespace(send_count=True),
    )
    reads = []

    def short_read(p_, rtype, params):
        reads.append(rtype)
        if len(reads) == 2:
            p.overcounts["Condition"] = 5  # (another search's second read, meanwhile)
        got = ([({"resourceType": "Condition", "id": "c1"}, "o")], "2026-11-29T00:00:00Z")
        raise paging.PagesMoved("moved", got, ["c1"], "a search returned 1 of the 6 matches", 5)

    monkeypatch.setattr(paging, "search_pages", short_read)
    items, clock = paging.search_all(p, "Condition", [("patient", "p1")])
    assert [r["id"] for r, _ in items] == ["c1"] and clock == "2026-11-29T00:00:00Z"
    assert reads == ["Condition", "Condition"]
    assert warned == []
