"""Compile the `fast` element specs into straight-line yes/no checks for the valid-data path."""

# Why: the spec interpreter in validate.py walks every object through nested closures and
# builds located reasons; on valid data (nearly all of it) that walk cost ~5.8 us of the ~17 us
# a kept Observation line costs to read (bench/RESULTS.md). A generated function per resource
# type answers "valid?" with inline type tests and field lookups (~2 us). It must never accept
# what the interpreter rejects: where unsure (contained resources; a null in an array of
# primitives, valid only beside its `_name` companion, which it does not read) it says no, and
# `check` then asks the interpreter, which also names the problem; a checker it cannot write
# inline is an error at import.

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

# How a leaf checker is written inline: a test on `{x}` that is true when the value is BAD, and
# the names that test uses
Leaves = Mapping[Callable[[Any], None], tuple[str, Mapping[str, Any]]]
# obj checker -> ("obj", fields, required) | list checker -> ("list", item) | either checker
# -> ("one_or_list", item)
Shapes = Mapping[Callable[[Any], None], tuple[Any, ...]]
Precheck = Callable[[dict[str, Any]], bool]

_MISSING = object()


class _Writer:
    def __init__(self, leaves: Leaves, shapes: Shapes) -> None:
        self.leaves = leaves
        self.shapes = shapes
        self.lines: list[str] = []

    def emit(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)

    def check(self, checker: Any, var: str, depth: int, level: int) -> None:
        """Lines that `return False` unless `var` passes `checker` (interpreter's semantics)."""
        leaf = self.leaves.get(checker)
        if leaf is not None:
            self.emit(depth, f"if {leaf[0].format(x=var)}: return False")
            return
        shape = self.shapes.get(checker)
        if shape is None:
            raise ValueError(f"precheck: no inline form for checker {checker!r}")
        if shape[0] == "list":
            item = f"i{level}"
            self.emit(depth, f"if {var}.__class__ is not list: return False")
            self.emit(depth, f"for {item} in {var}:")
            self.check(shape[1], item, depth + 1, level + 1)
            return
        if shape[0] == "one_or_list":  # a list of items, or one item
            item = f"i{level}"
            self.emit(depth, f"if {var}.__class__ is list:")
            self.emit(depth + 1, f"for {item} in {var}:")
            self.check(shape[1], item, depth + 2, level + 1)
            self.emit(depth, "else:")
            self.check(shape[1], var, depth + 1, level + 1)
            return
        _, fields, required = shape
        self.emit(depth, f"if {var}.__class__ is not dict: return False")
        self.fields(fields, required, var, depth, level)

    def fields(
        self, fields: Mapping[str, Any], required: tuple[str, ...], var: str, depth: int, level: int
    ) -> None:
        for name in required:
            self.emit(depth, f"if {name!r} not in {var}: return False")
        child = f"v{level}"
        for name, checker in fields.items():
            self.emit(depth, f"{child} = {var}.get({name!r}, MISSING)")
            self.emit(depth, f"if {child} is not MISSING:")
            self.check(checker, child, depth + 1, level + 1)


def compile_prechecks(
    specs: Mapping[str, tuple[Mapping[str, Any], tuple[str, ...], tuple[tuple[str, ...], ...]]],
    types: frozenset[str],
    meta: Any,
    id_ok: Callable[[str], Any],
    leaves: Leaves,
    shapes: Shapes,
) -> dict[str, Precheck]:
    """resourceType -> a function true only for resources `_check_fast` accepts.

    The caller passes a dict whose resourceType is that type. `specs` as validate._SPECS,
    `meta` the meta checker, `id_ok` the id pattern's fullmatch.
    """
    out: dict[str, Precheck] = {}
    generic = _build("_any", {}, (), (), meta, id_ok, leaves, shapes)
    for rtype in types:
        if rtype in specs:
            fields, required, groups = specs[rtype]
            out[rtype] = _build(rtype, fields, required, groups, meta, id_ok, leaves, shapes)
        else:
            out[rtype] = generic
    return out


def _build(
    rtype: str,
    fields: Mapping[str, Any],
    required: tuple[str, ...],
    groups: tuple[tuple[str, ...], ...],
    meta: Any,
    id_ok: Callable[[str], Any],
    leaves: Leaves,
    shapes: Shapes,
) -> Precheck:
    w = _Writer(leaves, shapes)
    names: dict[str, Any] = {"MISSING": _MISSING, "ID_OK": id_ok}
    for _, used in leaves.values():
        names.update(used)
    # the names bound as defaults: local lookups, not global ones, in the generated code
    w.emit(0, f"def ok(r, {', '.join(f'{n}={n}' for n in names)}):")
    # `_check_fast`: an id, when present, must match; meta and contained only when not null
    w.emit(1, "v0 = r.get('id', MISSING)")
    w.emit(1, "if v0 is not MISSING and (v0.__class__ is not str or not ID_OK(v0)): return False")
    w.emit(1, "if r.get('contained') is not None: return False  # the interpreter decides")
    w.emit(1, "v0 = r.get('meta')")
    w.emit(1, "if v0 is not None:")
    w.check(meta, "v0", 2, 1)
    w.fields(fields, required, "r", 1, 0)
    for group in groups:
        w.emit(1, f"if not ({' or '.join(f'{n!r} in r' for n in group)}): return False")
    w.emit(1, "return True")
    namespace = dict(names)
    exec(compile("\n".join(w.lines), f"<precheck {rtype}>", "exec"), namespace)  # noqa: S102
    fn: Precheck = namespace["ok"]
    return fn
