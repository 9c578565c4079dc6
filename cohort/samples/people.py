"""Sample patients: the generated-patient record, demographics, and one site's population."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

from cohort.samples.catalog import BACKGROUND, SCENARIOS
from cohort.samples.decorations import DECORATIONS
from cohort.samples.fhir import Builder, Res, birth_date, cc
from cohort.samples.scenarios import CRITERIA, Scenario, base_patient

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
    appended: bool = False  # its scenario is appended (Scenario.appended)


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


# -- messy decorations (cohort.samples.decorations) ------------------------------------------------
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
def _plan(site: str, patients: int, background: int) -> tuple[list[Scenario], list[Scenario]]:
    """(patients to shuffle, background included; appended scenarios, kept last in order)."""
    screened = [s for s in SCENARIOS if s.sites is None or site in s.sites]
    cycle = [screened[i % len(screened)] for i in range(patients)]
    plan = [s for s in cycle if not s.appended]
    bg = BACKGROUND
    plan += [bg[i % len(bg)] for i in range(background)]
    return plan, [s for s in cycle if s.appended]


def build_site(
    *, patients: int, seed: int, as_of: date, site: str, background: int | None = None
) -> list[tuple[GeneratedPatient, list[Res]]]:
    """Build every patient of one site in memory (no I/O)."""
    rng = random.Random(f"cohort-samples:{seed}:{site}")
    nbg = patients // 6 if background is None else background
    plan, appended = _plan(site, patients, nbg)
    rng.shuffle(plan)
    built: list[tuple[GeneratedPatient, Builder]] = []
    for i, scen in enumerate(plan + appended, start=1):
        pid = f"{site}-p{i:04d}"
        prng = random.Random(f"{seed}:{site}:{pid}")
        b = Builder(prng, as_of, site, pid)
        _demographics(b, prng)
        base_patient(b)
        for mod in scen.mods:
            mod(b)
        built.append((_expected(site, pid, scen, as_of), b))
    decorate(built[: len(plan)], rng)  # appended patients stay undecorated (Scenario.appended)
    return [(gp, b.resources()) for gp, b in built]


def _expected(site: str, pid: str, s: Scenario, as_of: date) -> GeneratedPatient:
    if not s.screened:
        return GeneratedPatient(site, pid, s.name, False)
    exp = {c: ("unknown" if c in ("sledai", "bilag") else "pass") for c in CRITERIA}
    exp.update(s.expect)
    ef = as_of + timedelta(days=s.eligible_from) if s.eligible_from is not None else None
    return GeneratedPatient(site, pid, s.name, True, s.tier, ef, exp, appended=s.appended)
