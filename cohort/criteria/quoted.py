"""What to write instead of a criteria file's value given as text where another type is wanted."""

from __future__ import annotations

from cohort.tomlsyntax import TITER


def quoted_hint(key: str, value: str, expected: str) -> str:
    """The advice for the text `value` given to `key` where `expected` ("a number", ...) is
    wanted; "" when there is none to give."""
    leaf = key.rsplit(".", 1)[-1]
    if expected == "a number" and (m := TITER.match(value)):
        # "write the number without quotes" led to `min_titer = 1:160`, a TOML error
        return f"write the dilution's denominator as a number, without quotes: {leaf} = {m[1]}"
    return {
        "a number": "write the number without quotes",
        "a whole number": "write the number without quotes",
        "true or false": "write true or false without quotes",
        "a list": f'write a list, e.g. ["{value}"]',
    }.get(expected, "")
