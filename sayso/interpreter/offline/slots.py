"""Slots: which value of a message fills which parameter of generic kinds.

``arguments`` finds the pieces of a message (values, people, records, free
text); this module decides, for parameters described only by their name and
description (dates and times, places, names, counts, yes/no), which piece
or leftover words fill them: "from Fresno" is an origin, "until the 14th" an
end date, "4 tickets" a number of seats, "with wifi" a yes.

Mentions stay verbatim: a value split off a longer one ("the 2nd at 12:30"
gives a date and a time) is a new piece whose text is exactly its own words.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from .. import Context
from ..values import Span
from .schema import Param
from .words import DISCOURSE, STOP, Token, stem, tokens

if TYPE_CHECKING:
    from .arguments import Piece

__all__ = ["assign_bools", "assign_counts", "assign_dates", "assign_names"]

Take = Callable[[Param, "Piece", Any], None]

# Which end of a stay, trip or rental a date or time parameter stands for, from its name and description.
_END_PARAM = re.compile(r"\b(?:end|ends|ending|until|before|return|returning|drop ?-?off|check ?-?out|due|deadline|"
                        r"expir\w*)\b")
_START_PARAM = re.compile(r"\b(?:start|starting|from|after|since|begin\w*|depart\w*|leav\w*|pick ?-?up|"
                          r"check ?-?in|outbound|onward)\b")
# ...and which end the words just before a value point at.
_END_CUE = frozenset("until till til thru through return returning returns back drop dropping dropped off "
                     "checkout before by end ending".split())
_START_CUE = frozenset("from starting start since after leaving leave depart departing departure pick picking "
                       "pickup up checkin beginning".split())
_CLAUSE_END = re.compile(r"[.!?;]")


def _role(param: Param) -> str:
    """ "end", "start" or "" for a date or time parameter (its name speaks louder than its description)."""
    for words in (param.name.replace("_", " ").lower(), param.description.lower()):
        if _END_PARAM.search(words):
            return "end"
        if _START_PARAM.search(words):
            return "start"
    return ""


def _cue(text: str, start: int) -> str:
    """ "end" or "start" when the few words before ``start`` ("until", "drop it off on", "from") say so."""
    before = text[:start]
    stop = max((m.end() for m in _CLAUSE_END.finditer(before)), default=0)
    words = [t.lower for t in tokens(before[stop:])][-4:]
    for word in reversed(words):
        if word in ("to", "by") and word != words[-1]:
            continue  # "to" and "by" count only right before the value ("until" or "to the 9th")
        if word in _END_CUE or (word == "to" and words[-1] == "to"):
            return "end"
        if word in _START_CUE:
            return "start"
    return ""


def _pick(params: list[Param], args: dict[str, Any], role: str) -> Param | None:
    """A free parameter for a value whose role is ``role``: the same role first, then neutral, then any."""
    free = [p for p in params if p.name not in args]
    order = {"end": ("end", "", "start"), "start": ("start", "", "end"), "": ("", "start", "end")}[role]
    for wanted in order:
        found = next((p for p in free if _role(p) == wanted), None)
        if found is not None:
            return found
    return None


def _as_datetime(value: Any, now: datetime, default_hour: int = 9) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time(default_hour, 0), tzinfo=now.tzinfo)
    if isinstance(value, time):
        moment = datetime.combine(now.date(), value, tzinfo=now.tzinfo)
        return moment if moment > now else moment + timedelta(days=1)
    return None


def _clock(value: Any) -> str | None:
    if isinstance(value, datetime):
        value = value.time()
    return value.strftime("%H:%M") if isinstance(value, time) else None


def _day(value: Any) -> str | None:
    if isinstance(value, datetime):
        return value.date().isoformat()
    return value.isoformat() if isinstance(value, date) else None


def _sub(piece: Piece, part: Span) -> Piece:
    """A piece for one part of a combined value, with its own words as text."""
    return replace(piece, start=part.start, end=part.end, kind=part.kind, value=part.value, text=part.text,
                   parts=part.parts)


def assign_dates(text: str, pieces: list[Piece], date_params: list[Param], args: dict[str, Any], take: Take,
                 now: datetime, *, default_hour: bool = True) -> None:
    """Ranges to start/end pairs; dates and times to date, date-time and time parameters, by role.

    A parameter's role (start or end: "pickup_date", "return_date") meets the words before a value
    ("until the 14th", "drop it off on the 4th"); a date and time said together go to a date-time
    parameter whole, or split to a date and a time parameter. A day alone goes to a date-time parameter at a
    default hour only with ``default_hour``.
    """
    days = [p for p in date_params if p.kind == "date"]
    clocks = [p for p in date_params if p.kind == "time"]
    moments = [p for p in date_params if p.kind == "datetime"]
    values = sorted([p for p in pieces if p.kind in ("range", "datetime", "date", "time")], key=lambda p: p.start)
    for piece in values:
        if piece.kind == "range":
            _assign_range(text, piece, days + moments, args, take, now)
            continue
        role = _cue(text, piece.start)
        if piece.kind == "datetime":
            whole = _pick(moments, args, role)
            if whole is not None:
                take(whole, piece, piece.value.isoformat())
                continue
            parts = {part.kind: part for part in piece.parts}
            _take_day(text, _sub(piece, parts["date"]) if "date" in parts else piece, days, args, take, role)
            _take_clock(_sub(piece, parts["time"]) if "time" in parts else piece, clocks, args, take, role)
        elif piece.kind == "date":
            if not _take_day(text, piece, days, args, take, role) and default_hour:
                target = _pick(moments, args, role)
                moment = _as_datetime(piece.value, now)
                if target is not None and moment is not None:
                    take(target, piece, moment.isoformat())
        elif not _take_clock(piece, clocks, args, take, role):
            target = _pick(moments, args, role)
            moment = _as_datetime(piece.value, now)
            if target is not None and moment is not None:
                take(target, piece, moment.isoformat())


def _take_day(text: str, piece: Piece, days: list[Param], args: dict[str, Any], take: Take, role: str) -> bool:
    target = _pick(days, args, role)
    value = _day(piece.value)
    if target is None or value is None:
        return False
    take(target, piece, value)
    return True


def _take_clock(piece: Piece, clocks: list[Param], args: dict[str, Any], take: Take, role: str) -> bool:
    target = _pick(clocks, args, role)
    value = _clock(piece.value)
    if target is None or value is None:
        return False
    take(target, piece, value)
    return True


def _assign_range(text: str, piece: Piece, params: list[Param], args: dict[str, Any], take: Take,
                  now: datetime) -> None:
    """ "this week" to a start and an end parameter; "from the 8th" (open) to a start, "by Friday" to an end."""
    start, end = piece.value
    parts = piece.parts
    free = [p for p in params if p.name not in args]
    paired = any(_role(p) == "start" for p in free) and any(_role(p) == "end" for p in free)
    if start is not None and end is not None and not paired:
        target = _pick(free, args, _cue(text, piece.start))  # "this weekend" for one date: its first day
        if target is not None:
            _take_date(target, piece, start, take, now, "start")
        return
    for value, role, part in ((start, "start", 0), (end, "end", 1)):
        if value is None:
            continue
        said = _sub(piece, parts[part]) if len(parts) == 2 else piece
        target = next((p for p in free if p.name not in args and _role(p) == role), None)
        if target is None and not paired:
            target = _pick(free, args, role)
        if target is not None:
            _take_date(target, said, value, take, now, role)


def _take_date(target: Param, piece: Piece, value: date, take: Take, now: datetime, role: str) -> None:
    moment = _as_datetime(value, now, 17 if role == "end" else 9) if target.kind == "datetime" else None
    take(target, piece, moment.isoformat() if moment is not None else value.isoformat())


# --- counts ---------------------------------------------------------------------------------------

# Words that count people, whatever the parameter calls them.
_PEOPLE = frozenset(stem(w) for w in "people person persons passenger passengers traveler travelers traveller "
                    "travellers rider riders guest guests adult adults seat seats ticket tickets attendee attendees "
                    "participant participants party head heads member members pax of us".split())
_PEOPLE_PARAM = re.compile(r"people|person|passenger|travel+er|rider|guest|adult|seat|ticket|attendee|participant|"
                           r"party|member")
_NUMBER_NOUN = re.compile(r"\s*(?:-\s*)?([A-Za-z][\w'-]*)(?:[\s-]+([A-Za-z][\w'-]*))?")


def _param_stems(param: Param) -> set[str]:
    return {stem(t.lower) for t in tokens(param.words) if t.lower not in STOP and len(t.lower) > 2} - {
        "number", "numb", "count", "amount", "total", "quantity", "name", "which", "many"}


def _meets(word: str, stems: set[str]) -> bool:
    """A message word meets a parameter's words: same stem, or one starts the other ("bedroom" and "bed")."""
    base = stem(word.lower())
    return any(base == s or (len(s) >= 3 and base.startswith(s)) or (len(base) >= 4 and s.startswith(base))
               for s in stems)


def assign_counts(text: str, pieces: list[Piece], params: list[Param], args: dict[str, Any], take: Take) -> None:
    """Numbers to number parameters by the noun after them ("4 tickets", "two people", "a 3 star hotel").

    A number followed by a noun no number parameter names ("3 stars" where only rooms are counted)
    fills nothing; a bare number ("a table for 3") fills the parameter counting people, or the first.
    Money parameters take a bare number only when no count parameter is free.
    """
    counts = [p for p in params if p.kind == "number"]
    for piece in sorted([p for p in pieces if p.kind == "number"], key=lambda p: p.start):
        free = [p for p in counts if p.name not in args]
        if not free:
            money = next((p for p in params if p.kind == "money" and p.name not in args), None)
            if money is not None and not _noun_after(text, piece.end):
                take(money, piece, piece.value)
            continue
        nouns = _noun_after(text, piece.end)
        target = _counted_param(nouns, free)
        if target is None and nouns:
            continue  # "3 stars", "5 days": counts something no free parameter counts
        if target is None:
            people = [p for p in free if _PEOPLE_PARAM.search(p.words)]
            if people and (re.search(r"\b(?:for|of)\s*$", text[:piece.start], re.I) or len(free) > 1):
                target = people[0]
            elif len(free) == 1:
                target = free[0]
            else:
                continue  # "I need 3" with rooms and stars to count: which is not said
        value = _enum_value(target, piece.value)
        if value is not None:
            take(target, piece, value)


def _counted_param(nouns: list[str], free: list[Param]) -> Param | None:
    """The count parameter the nouns after a number name: by its name's words, then its description's."""
    best: tuple[int, int, Param] | None = None
    for i, param in enumerate(free):
        own = {stem(w) for w in re.split(r"[_\W]+", param.name.lower()) if w} - {"number", "numb", "count"}
        told = _param_stems(param)
        score = max((2 if _meets(n, own) else 1 if _meets(n, told) else 0 for n in nouns), default=0)
        if not score and any(stem(n.lower()) in _PEOPLE for n in nouns) and _PEOPLE_PARAM.search(param.words):
            score = 1
        if score and (best is None or (score, -i) > best[:2]):
            best = (score, -i, param)
    return best[2] if best is not None else None


def _noun_after(text: str, end: int) -> list[str]:
    """The word or two after a number that say what it counts ("tickets", "star hotel"), if any."""
    match = _NUMBER_NOUN.match(text[end:])
    if not match:
        return []
    words = [w for w in match.groups() if w]
    if words[0].lower() in STOP or words[0].lower() in ("more", "other", "or", "and", "to"):
        return []
    return [w for w in words if w.lower() not in STOP]


def _enum_value(param: Param, value: Any) -> Any:
    """The value a count parameter takes: one of its listed values when it lists them (as strings)."""
    if not param.enum:
        return value
    said = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    return said if said in param.enum else None


# --- yes/no ----------------------------------------------------------------------------------------

_BOOL_GENERIC = frozenset("has have is are allowed allow allows good option options flag boolean whether indicating "
                          "available availability offer offers entry with".split())
_NEGATION = re.compile(r"\b(?:no|not|non|without|don'?t|doesn'?t|isn'?t|aren'?t|never|nor)\b[\s-]*(?:\w+[\s-]+)?$",
                       re.I)


def assign_bools(text: str, params: list[Param], args: dict[str, Any], take: Take, make: Callable[..., Piece],
                 own: frozenset[str] = frozenset()) -> None:
    """Yes/no parameters named in the message: "with wifi" is True, "no pets"/"non-smoking" False.

    A word of the action's own name (``own``, stems) answers nothing: "I need a ride" asks for the
    ride GetRide gives, it does not say that ``shared_ride`` is wanted.
    """
    lowered = text.lower().replace("wi-fi", "wifi ")
    for param in params:
        if param.kind != "bool" or param.name in args:
            continue
        keys = {stem(w) for w in re.split(r"[_\W]+", param.name.lower()) if w and w not in _BOOL_GENERIC
                and w not in STOP and len(w) > 2} - own
        if not keys:
            continue
        for token in tokens(lowered):
            if stem(token.lower.removeprefix("non-")) in keys or stem(token.lower.rstrip("s")) in keys:
                negated = token.lower.startswith("non-") or bool(_NEGATION.search(lowered[:token.start]))
                value = "False" if negated else "True"
                if param.enum and value not in param.enum:
                    value = value.lower()
                take(param, make(token.start, token.end, "bool", value, text[token.start:token.end]),
                     value if param.enum else value == "True")
                break


# --- names and places -----------------------------------------------------------------------------

# Prepositions that point at a place, at where one goes, and at where one comes from.
_PLACE_PREPS = frozenset({"in", "at", "near", "around", "within", "inside"})
_TO_PREPS = frozenset({"to", "into", "towards", "toward"})
_FROM_PREPS = frozenset({"from"})
# Words after which even a lowercase word is a value ("called cleaning", "to vegas", "starring serena altschul").
_CUES = frozenset({"in", "near", "around", "from", "called", "named", "titled", "starring", "featuring", "by"})
_PREPS = _PLACE_PREPS | _TO_PREPS | _FROM_PREPS | {"for", "with", "by", "called", "named", "titled", "about", "of"}
_SKIP = frozenset({"the", "a", "an", "some", "any", "my", "our", "this", "that", "by", "called", "named", "titled",
                   "as", "of"})
_CONNECTORS = frozenset({"of", "the", "and", "&", "de", "la", "le", "du", "del", "von", "van", "a", "on", "in", "at"})
_DESTINATION = re.compile(r"\bto\b|destination|arriv|going|dest\b|target|end")
_ORIGIN = re.compile(r"\bfrom\b|origin|depart|leav|pick ?-?up|source|start|begin")
_GENERIC_PLACE = frozenset({"city", "locat", "location", "place", "area", "town", "name"})


def assign_names(text: str, words: list[Token], chunks: list[Piece], pieces: list[Piece], params: list[Param],
                 args: dict[str, Any], take: Take, context: Context, own: frozenset[str] = frozenset(),
                 nouns: frozenset[str] = frozenset(), covered: Sequence[tuple[int, int]] = ()) -> None:
    """Leftover words to name and place parameters, by their capitals and the words around them.

    A value is a proper name ("Bourbon Steak", "San Fran") or words right after a cue ("to
    vegas", "starring serena altschul", "in the comic genre"), never a word of conversation
    ("yeah", "help", "available") or one of the parameters' own words. The parameter is the one
    whose own word stands next to the value ("directed by", "album", "genre"), else the one the
    preposition points at ("to" a destination, "from" an origin, "in" a place), else the first
    name parameter. Yes/no parameters named in the message are answered too (``assign_bools``; ``own``:
    the stems of the action's own name). ``nouns``: the stems of the message's words that are the action's
    own words, by word or concept ("concert" for an event): a word right before one is a kind of that thing
    ("an electronica concert"). ``covered``: where the message's other values are; a name after "called"
    runs to the end of its clause or to the first of them ("an alarm called Leave for home at 5 pm").
    """
    sample = next(iter(chunks or pieces), None)
    if sample is not None:
        assign_bools(text, params, args, take, type(sample), own)
    candidates = [p for p in params if p.kind in ("name", "place")]
    if not candidates:
        return
    vocabulary = set().union(*(_param_stems(p) for p in params))
    names = {stem(w) for p in candidates for w in re.split(r"[_\W]+", p.name.lower()) if w} - _GENERIC_PLACE
    things = vocabulary | nouns
    listed = {stem(t.lower) for p in params if p.enum for v in p.enum for t in tokens(v)} - STOP
    named = _named_spans(text, chunks, covered)
    for span in named:
        free = [p for p in candidates if p.name not in args and p.kind == "name"]
        target = _by_near_words(text, span, free) or next(iter(free), None)
        if target is not None:
            take(target, span, [span.value] if target.many else span.value)
    for piece in chunks:
        for span, modifier in _spans(text, piece, vocabulary, names, things):
            free = [p for p in candidates if p.name not in args]
            if not free:
                return
            if any(n.start <= span.start < n.end for n in named) or _listed(span, listed):
                continue
            if modifier:  # "a baseball game": a kind of game, or nothing (not the game's name)
                target = _by_kind(text, span, free, things)
            else:
                target = _name_param(text, span, free, things)
            if target is not None:
                if target.kind == "place":
                    span = _with_numbers(text, span, pieces)
                take(target, span, [span.value] if target.many else span.value)


def _listed(span: Piece, listed: set[str]) -> bool:
    """"the speaker in the kitchen" for a device listed as "Kitchen speaker": words of another parameter's listed
    values, said in another order, are that choice's words, not a name."""
    words = tokens(span.text)
    return bool(words) and all(stem(t.lower) in listed for t in words)


_NAMING_WORDS = frozenset({"called", "named", "titled", "entitled"})
_NAMING_WORD = re.compile(r"\b(?:called|named|titled|entitled)\s+", re.I)


def _named_spans(text: str, chunks: list[Piece], covered: Sequence[tuple[int, int]]) -> list[Piece]:
    """"an alarm called Music practice", "named Leave for home": after a naming word, the name is every word
    up to the end of the clause or the next value, small words and all, when no value was found there."""
    out: list[Piece] = []
    for m in _NAMING_WORD.finditer(text):
        start = m.end()
        chunk = next((c for c in chunks if c.start <= start < c.end), None)
        if chunk is None:
            continue
        end = min([e.start() for e in _CLAUSE_END.finditer(text, start)] + [len(text)])
        end = min([a for a, _ in covered if start < a < end] + [end])
        said = re.sub(r"(?:[\s,]+(?:and|with|for|to|on|at|by|in|from|please))*[\s,]*$", "", text[start:end])
        if said:
            out.append(replace(chunk, start=start, end=start + len(said), value=said, text=said))
    return out


_HOUSE_NUMBER = re.compile(r"\d+[A-Za-z]?")
_UNIT = re.compile(r"\s*#\s*[A-Za-z]?\d+[A-Za-z]?\b")


def _with_numbers(text: str, span: Piece, pieces: list[Piece]) -> Piece:
    """A street address keeps its numbers: "to 18300 Carriage Drive", "1900 University Ave #105".

    A number no parameter took, right before a place's name, is its house number; "#" and a number right
    after it, its unit. Both were read as numbers first, and the place alone would be another address.
    """
    start, end = span.start, span.end
    before = next((p for p in pieces if p.kind == "number" and p.end <= start and not text[p.end:start].strip()
                   and _HOUSE_NUMBER.fullmatch(p.text)), None)
    if before is not None:
        start = before.start
    unit = _UNIT.match(text, end)
    if unit is not None:
        end = unit.end()
    if (start, end) == (span.start, span.end):
        return span
    said = text[start:end]
    return replace(span, start=start, end=end, value=said, text=said)


# A period after an initial or a short title is inside a name: "Taraji P. Henson", "St. Helena", "D.C.".
_ABBREVIATED = re.compile(r"(?:^|[\s.])(?:[A-Z]|St|Mt|Ft|Mr|Mrs|Ms|Dr|Jr|Sr)\.\s*$")


def _sentence_start(text: str, start: int) -> bool:
    before = text[:start]
    return not before.strip() or (bool(re.search(r"[.!?:;\"“(]\s*$", before)) and not _ABBREVIATED.search(before))


def _proper(text: str, token: Token) -> bool:
    """A word written with a capital that is not just the first word of a sentence."""
    if not token.text[:1].isupper() or token.lower in DISCOURSE or token.lower in STOP:
        return False
    return not _sentence_start(text, token.start) or (token.text.isupper() and len(token.text) > 1)


def _spans(text: str, piece: Piece, vocabulary: set[str], names: set[str], things: set[str]) \
        -> list[tuple[Piece, bool]]:
    """The values inside a leftover chunk: runs of proper names, and words right after a cue or right before
    a noun of the catalog (each with whether it is only such a modifier: "a baseball game")."""
    inside = [Token(t.text, t.start + piece.start) for t in tokens(text[piece.start:piece.end])]
    out: list[tuple[Piece, bool]] = []
    run: list[Token] = []
    cued = modifier = False

    def flush() -> None:
        while run and run[-1].lower in _CONNECTORS:
            run.pop()
        if run:
            start, end = run[0].start, run[-1].end
            if len(run) > 1 and text[end:end + 1] == "." and _ABBREVIATED.search(text[:end + 1]):
                end += 1  # "Washington D.C."
            said = text[start:end]
            out.append((replace(piece, start=start, end=end, value=re.sub(r"['’]s$", "", said), text=said,
                                prep=_prep_before(text, start)), modifier and not any(_proper(text, t) for t in run)))
        run.clear()

    last_end = piece.start
    for i, token in enumerate(inside):
        if run and _breaks(text, text[last_end:token.start], token, run, token is inside[-1]):
            flush()
        last_end = token.end
        word = token.lower
        proper = _proper(text, token) or (bool(run) and token.text[:1].isdigit()) \
            or _capital_in_name(text, token, run, inside[i + 1:i + 2])
        if _ends_run(word, proper, bool(run), vocabulary) or word in _NAMING_WORDS:
            flush()  # "called", "named" point at a name and are none of it
            continue
        if run:
            named = any(_proper(text, t) for t in run)
            if proper or word in _CONNECTORS or (cued and not named and len(run) < 3):
                run.append(token)
                continue
            flush()
        after_cue = not proper and _after_cue(text, token.start, names)
        modifier = not proper and not after_cue and _before_noun(text, token, things)
        cued = after_cue or modifier
        if proper or cued:
            run.append(token)
    flush()
    return out


def _capital_in_name(text: str, token: Token, run: list[Token], after: list[Token]) -> bool:
    """A capitalised word of conversation next to a name is part of it: "New York", "Foster City"."""
    if token.lower not in DISCOURSE or not token.text[:1].isupper() or _sentence_start(text, token.start):
        return False
    if run:
        return _proper(text, run[-1]) and not re.search(r"[.!?;,:]", text[run[-1].end:token.start])
    return bool(after) and _proper(text, after[0]) and not re.search(r"[.!?;,:]", text[token.end:after[0].start])


def _breaks(text: str, gap: str, token: Token, run: list[Token], last: bool) -> bool:
    """Punctuation ends a run, except a comma inside one place ("Long Beach, CA", "Paris, France")."""
    if not re.search(r"[.!?;,:]", gap):
        return False
    if gap.strip() == "." and _ABBREVIATED.search(text[:run[-1].end + 1]) and _proper(text, token):
        return False  # "Taraji P. Henson", "St. Helena"
    return not (gap.strip() == "," and _proper(text, token) and any(_proper(text, t) for t in run)
                and (token.text.isupper() or last))


def _ends_run(word: str, proper: bool, running: bool, vocabulary: set[str]) -> bool:
    """Discourse and stop words (but "of", "and" inside a name) and the parameters' own words end a run."""
    return (word in DISCOURSE and not proper) or (word in STOP and not (running and word in _CONNECTORS)) or (
        stem(word) in vocabulary and not (running and proper))


def _word_before(text: str, start: int) -> str:
    """The word before ``start`` in its clause, past articles and "by" ("directed by", "the album")."""
    before = text[:start]
    if re.search(r"[.!?;,:]\s*$", before):
        return ""
    for token in reversed(tokens(before)[-4:]):
        if token.lower not in _SKIP:
            return token.lower
        if re.search(r"[.!?;,:]\s*$", text[:token.start]):
            return ""
    return ""


_SUBJECT = re.compile(r"\b(?:i|we|you|they|he|she|i'?d|we'?d|i'?ll|we'?ll)\s+(?:\w+ly\s+|also\s+|just\s+|too\s+)?$",
                      re.I)


def _before_noun(text: str, token: Token, vocabulary: set[str]) -> bool:
    """A lowercase word right before a parameter's own noun: "comedy movie", "country music"; not a verb after
    its subject ("I enjoy music", "we really love games")."""
    if re.search(r"(?:ed|ing|ly)$", token.lower) or len(token.lower) < 3:
        return False
    if _SUBJECT.search(text[:token.start]):
        return False
    after = re.match(r"\s+([A-Za-z]+)", text[token.end:])
    return after is not None and stem(after.group(1).lower()) in vocabulary


def _after_cue(text: str, start: int, vocabulary: set[str]) -> bool:
    """Whether the word at ``start`` comes right after a cue: a preposition or a parameter's own word."""
    if re.search(r"[.!?;,:]\s*$", text[:start]):
        return False
    previous = tokens(text[max(0, start - 20):start])[-1:]
    if previous and previous[0].lower in _CUES:
        return True
    word = _word_before(text, start)
    return word in _CUES or (bool(word) and _meets(word, vocabulary))


def _prep_before(text: str, start: int) -> str:
    match = re.search(r"(\w+)\s+(?:(?:the|a|an)\s+)?$", text[:start])
    word = match.group(1).lower() if match else ""
    return word if word in _PREPS else ""


def _name_param(text: str, span: Piece, candidates: list[Param], things: set[str]) -> Param | None:
    """Which name or place parameter a value fills: a kind before the thing's noun, the parameter word next to
    it, then its preposition."""
    return (_by_kind(text, span, candidates, things)
            or _by_near_words(text, span, candidates) or _by_preposition(span, candidates))


# Parameters that name a kind of thing ("genre", "subcategory", "cuisine"), and words that say "a kind".
_KIND_PARAM = re.compile(r"genre|type|kind|categor|style|cuisine|sort|flavou?r")
_KIND_WORDS = frozenset("genre genres type types kind kinds category categories style styles sort".split())


def _by_kind(text: str, span: Piece, candidates: list[Param], things: set[str]) -> Param | None:
    """"a Romance movie", "electronica concert", "in the Adventure category": one word right before the
    thing's noun, or next to a word for a kind, is a kind of that thing (a genre), not a name."""
    kinds = [p for p in candidates if _KIND_PARAM.search(p.name.lower())]
    if not kinds or (len(tokens(span.text)) > 1 and not span.text.islower()):
        return None
    after = re.match(r"\s+([A-Za-z]+)", text[span.end:])
    said_after = after.group(1).lower() if after else ""
    if said_after in _KIND_WORDS or _word_before(text, span.start) in _KIND_WORDS:
        return kinds[0]
    if said_after and stem(said_after) in things:
        return kinds[0]
    return None


def _by_near_words(text: str, span: Piece, candidates: list[Param]) -> Param | None:
    """The parameter whose own words (twice as strong) or described words stand right before or after the value."""
    after = tokens(re.split(r"[.!?;,:]", text[span.end:span.end + 30])[0])[:1]
    near = [w for w in (_word_before(text, span.start), after[0].lower if after else "") if w]
    scores: list[tuple[int, int, Param]] = []
    for i, param in enumerate(candidates):
        own = {stem(w) for w in re.split(r"[_\W]+", param.name.lower()) if w} - _GENERIC_PLACE
        told = _param_stems(param) - _GENERIC_PLACE - own
        score = 2 * sum(_meets(w, own) for w in near) + sum(_meets(w, told) for w in near)
        if score:
            scores.append((score, -i, param))
    return max(scores, key=lambda s: (s[0], s[1]))[2] if scores else None


def _by_preposition(span: Piece, candidates: list[Param]) -> Param | None:
    """"to Fresno" a destination, "from Fresno" an origin, "in Fresno" a plain place; else the first name."""
    places = [p for p in candidates if p.kind == "place"]
    names = [p for p in candidates if p.kind == "name"]

    if not places:
        return names[0] if names else None
    if span.prep in _TO_PREPS:
        return _place_for(places, _DESTINATION, _ORIGIN)
    if span.prep in _FROM_PREPS:
        return _place_for(places, _ORIGIN, _DESTINATION)
    if span.prep in _PLACE_PREPS and span.prep != "at":
        plain = [p for p in places if not _DESTINATION.search(p.words) and not _ORIGIN.search(p.words)]
        return (plain or places)[0]
    return (names or places)[0]


def _place_for(places: list[Param], wanted: re.Pattern[str], avoided: re.Pattern[str]) -> Param | None:
    """The place described as ``wanted`` (a destination), else one not described as ``avoided`` (an origin)."""
    return next((p for p in places if wanted.search(p.words)), None) or next(
        (p for p in places if not avoided.search(p.words)), None)
