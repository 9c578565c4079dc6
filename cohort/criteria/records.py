"""Criterion kind `any_record`: any medication record or Procedure of its concepts, ever."""

from __future__ import annotations

from datetime import date

from cohort.criteria.base import Context, Criterion, result, shown
from cohort.criteria.ids import says_id
from cohort.criteria.intervals import Dated, dates_said, exposure_dated, procedure_dated
from cohort.model import Result, Status


def any_record(crit: Criterion, ctx: Context) -> Result:
    p = crit.params
    dated: list[Dated] = []
    if p.get("concepts"):
        joined = ",".join(p["concepts"])
        dated += [exposure_dated(e, joined, "record found") for e in ctx.exposures(p["concepts"])]
    for pr in ctx.procedures(p.get("procedures", [])):
        # named by the concept its code maps (a dialysis), not every one of the key's
        matched = sorted(set(p["procedures"]) & ctx.concepts(pr.ref, pr.codes, pr.text))
        dated.append(procedure_dated(pr, ",".join(matched), "record found"))
    if not dated:
        return result(crit, Status.PASS, "no record")
    # a partial date reaching past as_of ("2026-11" as of the 25th) may be no record yet: it
    # decides only beside one surely on record (an undated one is: "ever" needs no date)
    if all(it.start is not None and ctx.as_of < (it.start_last or it.start) for it in dated):
        first = min(dated, key=lambda it: it.start or date.min)
        label = ctx.label(first.ev.concept.split(",")[0])
        since = shown(first.start, first.start_last)
        why = f"prior {label} dated {since}, which may be after {ctx.as_of}"
        return result(crit, Status.UNKNOWN, why, [it.ev for it in dated])
    # the reason names the most recent record (ongoing, else by its end, else its start)
    last = max(dated, key=lambda it: (it.ongoing, it.end_last or it.start_last or date.min))
    # (the evidence's value, as quoted: `--no-phi` withholds it in both, report.nophi)
    label = ctx.label(last.ev.concept.split(",")[0])
    what = f"prior {label}"
    if says_id(crit.id, what):
        # candidates.csv writes "prior_ianalumab: " before it: the record alone
        why = last.ev.value or label
    else:
        why = f"{what}: {last.ev.value}" if last.ev.value else what
    return result(crit, Status.FAIL, why + dates_said(last), [it.ev for it in dated])
