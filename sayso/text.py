"""Text that comes in must be valid Unicode without NUL: such text is refused where a request enters.

JSON may spell a lone UTF-16 surrogate (``"\\ud800"``) and Python decodes it into a ``str`` that no UTF-8 encoder
accepts, so it would fail later, deep inside a database driver or the audit chain's hash; and a NUL character
(``"\\u0000"``) is one PostgreSQL's text cannot hold, so a turn saying one failed as the server's error when its
state was saved. ``check_text`` refuses both first, as ``InvalidArguments``, on every store alike; ``printable``
shows such a value safely (the surrogate as ``\\ud800``, NUL as ``\\u0000``) in the audit record of the refusal.

``close_quotes`` ends a quotation the person opened and never closed ("saying 'the demo went well"): what
follows the opening mark is their own text, to the end of the message, and is read as quoted.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import InvalidArguments

__all__ = ["check_text", "close_quotes", "printable"]


# An opening single quote is one no letter stands before ("it's", "Bob's" are apostrophes); a closing one is one no
# letter follows.
_SINGLE_OPEN = re.compile(r"(?<![\w'’])['‘](?=\S)")
_SINGLE_CLOSE = re.compile(r"(?<=[^\s'‘])['’](?![\w'’])")


def close_quotes(text: str) -> str:
    """``text`` with a quotation left open at its end closed there: "saying 'the demo went well" reads as
    "saying 'the demo went well'", so the quoted words are taken whole, to the end, and never garbled."""
    said = text.rstrip()
    if said.count('"') % 2:
        return said + '"'
    if said.count("“") > said.count("”"):
        return said + "”"
    at = 0
    while (opened := _SINGLE_OPEN.search(said, at)) is not None:
        closed = _SINGLE_CLOSE.search(said, opened.end())
        if closed is None:
            return said + ("’" if opened.group() == "‘" else "'")
        at = closed.end()
    return text


def check_text(value: Any, what: str = "the request") -> None:
    """Raise ``InvalidArguments`` when a string anywhere in ``value`` (keys included) is not valid Unicode or
    holds a NUL character."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            bad = value[exc.start:exc.end].encode("utf-8", "backslashreplace").decode()
            raise InvalidArguments(f"{what} has text that is not valid Unicode (a lone surrogate, {bad}, at "
                                   f"character {exc.start})") from None
        if (at := value.find("\x00")) >= 0:
            raise InvalidArguments(f"{what} has a NUL character (\\u0000) at character {at}: text may not "
                                   "contain one")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(key, what)
            check_text(item, what)
    elif isinstance(value, list | tuple):
        for item in value:
            check_text(item, what)


def printable(value: Any) -> Any:
    """``value`` with every lone surrogate and NUL in its strings written out as an escape (``\\ud800``,
    ``\\u0000``)."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\u0000")
    if isinstance(value, dict):
        return {printable(k): printable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [printable(v) for v in value]
    return value
