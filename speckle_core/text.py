"""Small text helpers shared by every package (the floor: imports nothing of speckle-lab)."""

from __future__ import annotations


def one_line(e: BaseException | str | None, limit: int | None = None) -> str:
    """An exception (or text) as one line: whitespace runs collapse to one space.

    An exception whose message is empty is named by its type, so the line never reads blank.
    ``limit`` cuts the line to at most that many characters.
    """
    if e is None:
        return ""
    text = " ".join(str(e).split())
    if not text and isinstance(e, BaseException):
        text = type(e).__name__
    return text if limit is None else text[:limit]
