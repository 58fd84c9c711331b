"""Small text helpers shared by every package (the floor: imports nothing of speckle-lab)."""

from __future__ import annotations


def one_line(e: BaseException | str | None, limit: int | None = None, *, with_type: bool = False) -> str:
    """An exception (or text) as one line: whitespace runs collapse to one space.

    An exception whose message is empty is named by its type, so the line never reads blank;
    ``with_type`` puts the type first ("OSError: ..."), for errors from code we do not own.
    ``limit`` cuts the line to at most that many characters.
    """
    if e is None:
        return ""
    text = " ".join(str(e).split())
    if isinstance(e, BaseException):
        name = type(e).__name__
        text = (f"{name}: {text}" if with_type else text) if text else name
    return text if limit is None else text[:limit]


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (a vendor library's multi-line report), or its
    type's name when the message is empty."""
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]
