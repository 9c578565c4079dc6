"""summary.html rendered in real headless Chromium: screenshot plus rendered-DOM checks."""

from __future__ import annotations

import shutil
import subprocess
from datetime import date, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from cohort.atomic import write_atomic
from cohort.model import Candidate, CriterionInfo, Patient, Result, SiteResult, Status
from cohort.report.html import summary_html

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]

CRITERIA = [
    CriterionInfo("age", "inclusion", "Age >= 12 years"),
    CriterionInfo("sle_diagnosis", "inclusion", "SLE diagnosed >= 6 months ago"),
    CriterionInfo("ana_titer", "inclusion", "ANA titer >= 1:80", missing_hint="ANA titer"),
    CriterionInfo("sledai", "inclusion", "SLEDAI-2K >= 6", manual_when_unknown=True),
    CriterionInfo("weight", "inclusion", "Weight >= 35 kg", missing_hint="weight in 12 months"),
    CriterionInfo("washout_12wk", "exclusion", "No CNI/JAK/other DMARD in 12 weeks"),
    CriterionInfo("platelets", "exclusion", "Platelets >= 25", missing_hint="CBC within 90 days"),
    CriterionInfo("hbv", "exclusion", "No active hepatitis B"),
]
AS_OF = date(2026, 3, 1)


def _candidate(i: int, unknown: tuple[str, ...] = (), fail: str = "", name: str = "") -> Candidate:
    results = []
    for ci in CRITERIA:
        if ci.id == "sledai":
            results.append(Result(ci.id, Status.UNKNOWN, "no SLEDAI-2K", manual=True))
        elif ci.id == fail:
            results.append(
                Result(
                    ci.id,
                    Status.FAIL,
                    "tacrolimus until 2026-02-01",
                    eligible_from=date(2026, 4, 26),
                )
            )
        elif ci.id in unknown:
            results.append(Result(ci.id, Status.UNKNOWN, f"no {ci.id} data"))
        else:
            results.append(Result(ci.id, Status.PASS, "ok"))
    tier = "excluded" if fail else "possible" if unknown else "likely"
    return Candidate(
        Patient(
            f"pt-{i:03d}",
            f"{1970 + i}-0{1 + i % 9}-1{i % 9}",
            "female",
            name=name or f"Patient {i}",
        ),
        results,
        tier=tier,
        score=len(CRITERIA) - 1 - len(unknown) - bool(fail) + 0.5 - i / 100,
        eligible_from=date(2026, 4, 26) if fail == "washout_12wk" else None,
        last_seen=AS_OF - timedelta(days=3 * i),
        change="new" if i in (2, 5) else "tier excluded -> possible" if i == 4 else "",
    )


def make_site() -> SiteResult:
    cands = [
        _candidate(1, name="Ana <script>alert(1)</script> Lee"),
        _candidate(2),
        _candidate(3, ("ana_titer",)),
        _candidate(5, ("ana_titer",)),
        _candidate(4, ("platelets", "weight")),
        _candidate(6, fail="washout_12wk"),
        _candidate(7, fail="hbv"),
    ]
    for rank, c in enumerate(cands, 1):
        c.rank = rank
    cands[0].change = "tier possible -> likely"
    return SiteResult(
        "uci",
        "University of Calif Irvine Med Cntr",
        AS_OF,
        CRITERIA,
        ["contraception (WOCBP)", "investigator judgement"],
        cands,
        mapping_version="sha256:0123456789ab",
        data_freshness="2026-02-28T23:10:00Z",
    )


HISTORY = [
    {
        "date": f"2026-02-{d:02d}",
        "site": "uci",
        "screened": s,
        "likely": li,
        "possible": p,
        "excluded": s - li - p,
    }
    for d, s, li, p in [
        (22, 5, 1, 2),
        (23, 5, 1, 2),
        (24, 6, 1, 3),
        (25, 6, 2, 2),
        (26, 6, 2, 2),
        (28, 7, 2, 3),
    ]
] + [
    {
        "date": "2026-02-27",
        "site": "amr",
        "screened": 40,
        "likely": 9,
        "possible": 9,
        "excluded": 22,
    }
]


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    def with_class(self, cls: str, tag: str | None = None) -> list[dict[str, str]]:
        return [
            a for t, a in self.elements if cls in a.get("class", "").split() and tag in (None, t)
        ]


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium not installed (apt-get install chromium chromium-driver)"
)
def test_summary_renders_in_chromium(tmp_path: Path) -> None:
    site = make_site()
    page = tmp_path / "out" / "uci" / "summary.html"
    write_atomic(page, summary_html(site, history=HISTORY))
    url = page.resolve().as_uri()

    shot = tmp_path / "summary.png"
    proc = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2200", url)
    assert shot.exists(), proc.stderr[-2000:]
    png = shot.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000

    proc = _chromium(tmp_path, "--dump-dom", url)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = _Collect()
    dom.feed(proc.stdout)

    groups = dom.with_class("funnel-group")
    assert [g["data-criterion"] for g in groups] == [ci.id for ci in CRITERIA]
    bars = dom.with_class("bar")
    assert len(bars) == 3 * len(CRITERIA)
    ana = {b["data-status"]: b["data-count"] for b in bars[6:9]}
    assert ana == {"pass": "5", "unknown": "2", "fail": "0"}

    rows = dom.with_class("candidate", "tr")
    expected = [c.patient.id for c in site.candidates if c.tier != "excluded"]
    assert [r["data-patient-id"] for r in rows] == expected
    # the hostile name is text, never a script element
    assert not [t for t, _ in dom.elements if t == "script"]
    assert "Ana &lt;script&gt;alert(1)&lt;/script&gt; Lee" in proc.stdout
    assert len(dom.with_class("series", "polyline")) == 3
    tables = [a.get("id") for t, a in dom.elements if t == "table"]
    assert tables.index("newly-likely") < tables.index("changes-table")
    assert "no-longer-likely" not in tables
