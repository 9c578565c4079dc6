"""`cohort mappings check`'s checks across the concept rows: one code or name mapped to two
concepts (or to two ingredients of one), a row in two concept files (a backup copy), a misspelt
concept (an error) or ingredient, a steroid row without an ingredient (moved from check.py)."""

from __future__ import annotations

import functools
import re
import tomllib
from collections import Counter, defaultdict
from collections.abc import Set
from itertools import combinations
from pathlib import Path

from cohort.criteria.trial import concept_refs
from cohort.errors import closest, did_you_mean
from cohort.terminology.codes import TEXT, norm_code
from cohort.terminology.core import FILE_TYPES
from cohort.terminology.mappings import MappingRow
from cohort.terminology.rows import KnownSystems
from cohort.tools.common import Findings


@functools.lru_cache(maxsize=64)
def _stem(file: str) -> str:
    """A concept file's stem (`labs`): a few files, asked once per row by several checks."""
    return Path(file).stem


def conflicts(
    rows: list[MappingRow], known: KnownSystems, overlaps: set[frozenset[str]], f: Findings
) -> None:
    """Same system+code, or the same name (system `text`, in any case, as names match), mapped
    (not excluded) to different concepts of one resource family: a file's (`labs.csv`:
    Observation), or for local.csv and other files the family of the concept's rows elsewhere,
    else Observation (as a run searches a server for them); or to two ingredients of one
    concept. A pair of `overlaps` (overlaps.csv) is by design."""
    families: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        if _stem(r.file) in FILE_TYPES:
            families[r.concept].add(_stem(r.file))
    groups: dict[tuple[str, str, str], list[MappingRow]] = defaultdict(list)
    for r in rows:
        if r.verified == "N" or (r.system != TEXT and r.match != "exact"):
            continue  # (a name is matched as a whole word, whatever its `match`)
        family = _stem(r.file)
        if family not in FILE_TYPES:
            family = min(families[r.concept], default="labs")
        if r.system == TEXT:
            groups[(family, TEXT, r.code.strip().lower())].append(r)
            continue
        system = known.canonical(r.system)
        groups[(family, system, norm_code(system, r.code))].append(r)
    for (_, system, code), grp in sorted(groups.items()):
        what = f"name '{grp[0].code.strip()}'" if system == TEXT else f"{system}|{code}"
        if any(r.exclude for r in grp):
            _excluded_too(what, grp, f)
            continue
        concepts = {r.concept for r in grp}
        if len(concepts) == 1:
            _two_ingredients(what, grp, f)
        elif not _intentional(concepts, overlaps):
            where = "; ".join(f"{r.file}:{r.line} ({r.concept})" for r in grp)  # in file order
            f.warn(
                f"{grp[0].file}:{grp[0].line}",
                f"column 'code': {what} is mapped to {len(concepts)} concepts: {where} "
                # exclude=Y drops a concept from the record: wrong for a code of both by design
                "(intended? list the pair in overlaps.csv; else add exclude=Y to one of them)",
            )


def _excluded_too(what: str, grp: list[MappingRow], f: Findings) -> None:
    """A code (or name) that excludes a concept and maps to it: the exclude row wins, so the
    concept's own row never matches (a row copied to exclude a code, its code left unchanged:
    SLE's 55464009 so screened 4 sample patients of 73, without a word)."""
    for r in grp:
        mapped = [x for x in grp if not x.exclude and x.concept == r.concept] if r.exclude else []
        if mapped:
            f.warn(
                f"{r.file}:{r.line}",
                f"column 'exclude': {what} is excluded from '{r.concept}' and mapped to it on "
                f"{mapped[0].file}:{mapped[0].line}: exclude=Y wins, so no record with it counts "
                f"as '{r.concept}' (change the code, or remove one of the rows)",
            )


def _sorts(file: str) -> str:
    """The records a concept file's rows map by its name ("" for local.csv or a copy, which
    map any record, or another's)."""
    stem = Path(file).stem
    return stem if stem in FILE_TYPES else ""


def copies(rows: list[MappingRow], f: Findings) -> None:
    """A warning per pair of concept files sharing rows (one concept, system and code; a name
    in any case): every CSV in concepts/ is loaded, so a backup copy left there ("labs -
    Copy.csv", "labs_old.csv") is read too, without a word, and a code removed from the file it
    copies stays mapped. A row twice in one file is left alone (it reads the same)."""
    first: dict[tuple[str, str, str], dict[str, int]] = defaultdict(dict)
    for r in rows:
        code = r.code.strip().lower() if r.system == TEXT else r.code
        first[(r.concept, r.system, code)].setdefault(r.file, r.line)
    pairs: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for files in first.values():
        for a, b in combinations(sorted(files), 2):
            if _sorts(a) != _sorts(b) and _sorts(a) and _sorts(b):
                continue  # each read for its own records (conditions.csv, procedures.csv)
            copy, other = _copy_and_original(a, b)
            pairs[(copy, other)].append((files[copy], files[other]))
    size = Counter(r.file for r in rows)
    for (copy, other), lines in sorted(pairs.items()):
        n = len(lines)
        why = (
            "a backup copy? every CSV in concepts/ is loaded (move it out of the folder)"
            if 2 * n > size[copy]  # most of its rows
            else "the same row in two files (keep it in one)"
        )
        f.warn(
            copy,
            f"{n} {'rows repeat' if n > 1 else 'row repeats'} {other} ({_spans(sorted(lines))})"
            f": {why}",
        )


def _copy_and_original(a: str, b: str) -> tuple[str, str]:
    """Which of two concept files (as shown; `a` first by name) is the copy: not a file the
    project names (labs.csv, local.csv), else the one named after the other (`labs_old`), else
    the later by name."""
    named = (*FILE_TYPES, "local")
    sa, sb = Path(a).stem, Path(b).stem
    if (sa in named) != (sb in named):
        return (b, a) if sa in named else (a, b)
    if sa.startswith(sb) and sa != sb:
        return a, b
    return b, a


def _spans(lines: list[tuple[int, int]], shown: int = 3) -> str:
    """`lines 2-82 here = lines 2-82 there, line 90 = line 95, …`: runs of (copy, original)
    line pairs that both go up by one, the first few."""
    runs: list[list[tuple[int, int]]] = []
    for a, b in lines:
        if runs and runs[-1][-1] == (a - 1, b - 1):
            runs[-1].append((a, b))
        else:
            runs.append([(a, b)])

    def span(run: list[tuple[int, int]], i: int) -> str:
        if len(run) == 1:
            return f"line {run[0][i]}"
        return f"lines {run[0][i]}-{run[-1][i]}"

    out = [f"{span(r, 0)} = {span(r, 1)}" for r in runs[:shown]]
    out[0] = f"{span(runs[0], 0)} here = {span(runs[0], 1)} there"
    more = f", … ({len(runs) - shown} more)" if len(runs) > shown else ""
    return ", ".join(out) + more


def _two_ingredients(what: str, grp: list[MappingRow], f: Findings) -> None:
    """A code or name of one concept's rows under two ingredients: a dose takes the one with the
    larger prednisone factor, and products of either reach the concept."""
    named = [r for r in grp if r.ingredient]  # (rows outside medications.csv have none)
    ingredients = {r.ingredient for r in named}
    if len(ingredients) < 2:
        return
    where = "; ".join(f"{r.file}:{r.line} ({r.ingredient})" for r in named)
    f.warn(
        f"{named[0].file}:{named[0].line}",
        f"column 'ingredient': {what} is mapped to {len(ingredients)} ingredients of "
        f"'{named[0].concept}': {where} (intended, for a product of both? else correct the "
        "ingredient)",
    )


def _intentional(concepts: set[str], overlaps: set[frozenset[str]]) -> bool:
    """An exception/history/uncertain pair (`malignancy` + `malignancy_exception`) is by design,
    and so is a pair listed in overlaps.csv (`hiv` + `malignancy`)."""
    names = sorted(concepts)
    if frozenset(names) in overlaps:
        return True
    return len(names) == 2 and names[1].startswith(names[0] + "_")


# a criteria file's whole-line comments (a block commented out) and the names quoted in them
_COMMENT = re.compile(r"^[ \t]*#(.*)$", re.MULTILINE)
_QUOTED = re.compile(r'"([A-Za-z][A-Za-z0-9_]*)"')


def trial_names(trials: list[Path]) -> tuple[set[str], set[str]] | None:
    """The concepts the criteria files name, and those named in their comments (a criterion
    switched off); None when one cannot be read (its error is reported elsewhere)."""
    used: set[str] = set()
    commented: set[str] = set()
    for path in trials:
        try:
            text = path.read_text(encoding="utf-8-sig")
            data = tomllib.loads(text)
        except (OSError, ValueError):
            return None
        used |= {name for _, name in concept_refs(data)}
        commented |= {w for c in _COMMENT.findall(text) for w in _QUOTED.findall(c)}
    return used, commented


def concept_typo(name: str, used: Set[str]) -> str | None:
    """The concept a criteria file names that `name`, named by none, is a typo of."""
    near = None if name in used else closest(name, used)
    return near if near is not None and _typo(name, near) else None


def misspelt_concepts(
    trials: list[Path], rows: list[MappingRow], f: Findings, labelled: Set[str] = frozenset()
) -> None:
    """An error at the first row of a concept no criteria file names, in one concept file
    only, a typo away from one they do name (`ana_titr`): its rows are lost to the criterion,
    which changes who is eligible, so a run stops on it too (`cohort.tools.runcheck`). Any
    other unnamed concept is left alone (one for a trial not written yet; the shipped files
    hold such concepts), and so is one `labelled` (labels.csv) or named in a criteria file's
    comment: a concept of its own, whose criterion was switched off (docs/criteria-kinds.md:
    its block deleted or commented out; `chronic_hbv` is no typo of `chronic_hcv`)."""
    names = trial_names(trials)
    if names is None:
        return
    used, commented = names
    files: dict[str, set[str]] = defaultdict(set)
    first: dict[str, MappingRow] = {}
    for r in rows:
        files[r.concept].add(r.file)
        first.setdefault(r.concept, r)
    for name, row in first.items():
        if name in labelled or name in commented or len(files[name]) > 1:
            continue
        if concept_typo(name, used) is not None:
            f.error(
                f"{row.file}:{row.line}",
                f"column 'concept': no criteria file names concept '{name}' "
                f"({did_you_mean(name, used)}): its rows reach no criterion",
            )


def _typo(name: str, near: str) -> bool:
    """Whether `name` is a typo of `near`: one or two letters changed, left out, added or
    swapped (one below 8 letters, none below 5), not a sibling differing in its digits
    (`complement_c4` beside `complement_c3`)."""
    if re.sub(r"\d", "", name) == re.sub(r"\d", "", near):
        return False
    return 0 < _edits(name, near) <= min(2, max(0, (len(name) - 2) // 3))


def _edits(a: str, b: str) -> int:
    """Letters changed, left out, added or swapped (adjacent) to make `a` into `b`."""
    before: list[int] = []
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(row[j] + 1, cur[j - 1] + 1, row[j - 1] + (ca != cb)))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], before[j - 2] + 1)
        before, row = row, cur
    return row[-1]


def dosed_elsewhere(
    rows: list[MappingRow], ingredients: dict[str, float | None], f: Findings
) -> None:
    """A warning at a row outside medications.csv of a concept whose medications.csv rows
    have a prednisone factor (a steroid group): the row has no ingredient, so a dose of it has
    no prednisone equivalent and `high_dose` is unknown where it should pass or fail."""
    dosed = {
        r.concept
        for r in rows
        if _stem(r.file) == "medications" and ingredients.get(r.ingredient) is not None
    }
    for r in rows:
        if r.concept in dosed and _stem(r.file) != "medications":
            f.warn(
                f"{r.file}:{r.line}",
                f"column 'concept': a row of '{r.concept}' outside concepts/medications.csv "
                "has no ingredient, so its doses have no prednisone equivalent (high_dose: "
                "unknown): add it to concepts/medications.csv with its ingredient",
            )


def ingredient_typo(ingredient: str, ingredients: Set[str]) -> str | None:
    """The ingredient ingredients.csv lists that `ingredient`, not listed, is a typo of (one
    letter changed, left out, added or swapped; drug names share stems, abrocitinib is two
    from baricitinib); None below 5 letters."""
    if len(ingredient) < 5 or ingredient in ingredients:
        return None
    near = closest(ingredient, ingredients)
    return near if near is not None and _edits(ingredient, near) == 1 else None


def misspelt_ingredients(
    rows: list[MappingRow], ingredients: dict[str, float | None], f: Findings
) -> None:
    """A warning at a medication row whose ingredient ingredients.csv lacks but is a typo
    away from one it lists (`predisone`, `ingredient_typo`): no prednisone factor, no
    products. Any other unlisted ingredient is a drug of its own (it needs no factor unless a
    steroid)."""
    for r in rows:
        if (near := ingredient_typo(r.ingredient, ingredients.keys())) is not None:
            f.warn(
                f"{r.file}:{r.line}",
                f"column 'ingredient': '{r.ingredient}' is not in medications/ingredients.csv "
                f"(did you mean '{near}'?): its doses have no prednisone equivalent and RxNorm "
                "products of the ingredient meant do not reach this row's concept",
            )
