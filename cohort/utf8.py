"""A researcher-edited file's bytes as text: UTF-8 only, the line and byte named when not."""

from __future__ import annotations

from cohort.errors import CohortError

__all__ = ["utf8_text"]


def utf8_text(
    data: bytes, shown: str, error: type[CohortError], hint: str = "save it as UTF-8"
) -> str:
    """`data` as text (UTF-8, a byte order mark dropped); else an `error` naming the line and
    the byte (Notepad's and Excel's plain "ANSI"/"CSV" are the Windows code page, their
    "Unicode" UTF-16), then `hint`."""
    body = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = body[: exc.start].count(b"\n") + 1
        raise error(
            f"{shown}:{line}: not UTF-8 text (byte 0x{body[exc.start]:02x}): {hint}"
        ) from None
