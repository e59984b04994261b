"""Arguments: which words of a message fill which parameter of the chosen action.

The message is cut into marked pieces (``Piece``): typed values (dates, money,
numbers, emails), record ids, channels, people, relations ("the account owner
of the Orchid deal"), references to the conversation ("it", "the first one"),
enum values and free text (after a colon, in quotes, after "to call...",
"that...", "know..."). Each parameter then takes the pieces of its kind;
what is left over names records ("the Brightwater one"). Values stay as the
person said them; grounding turns names into records afterwards.
"""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from ...directory import Directory, Person
from .. import Context
from ..values import Span, find_choices, find_values
from . import slots
from .ranking import CatalogIndex, Entry, name_parts
from .schema import Param
from .weights import DEFAULT, Weights
from .words import DISCOURSE, STOP, Token, concepts, stem, tokens

__all__ = ["Extraction", "Piece", "extract", "find_pieces"]


@dataclass
class Piece:
    start: int
    end: int
    kind: str  # value kinds of values.Span, or id|channel|person|self|mine|relation|reference|choice|text|title|chunk
    value: Any
    text: str
    prep: str = ""  # the preposition just before it ("for", "to", "with", "in")
    parts: tuple[Span, ...] = ()  # a combined value's pieces (values.Span.parts), in the message's positions
    label: str = ""  # free text labelled by the words before it: "title" ("titled ...") or "body" ("saying ...")


@dataclass
class Extraction:
    args: dict[str, Any]
    mentions: dict[str, str]
    missing: list[Param]
    evidence: float  # how strongly the message's pieces fit this action's parameters
    unexplained: int = 0  # content words neither a value it took nor one of its own words
    explained: int = 0
    free_text: list[tuple[int, int]] = field(default_factory=list)  # where the free text it took is


_ID = re.compile(r"\b[A-Za-z]{1,8}-\d+\b")
_CHANNEL = re.compile(r"(?<![\w#])#[a-z0-9][a-z0-9_-]*", re.IGNORECASE)
# "double" or 'single' quotes (a single quote only where it cannot be an apostrophe: "it's", "Bob's"; an apostrophe
# inside a word may stand within single quotes: 'it's done')
_QUOTED = re.compile(r"[\"“]([^\"”]+)[\"”]|(?<![\w'’])['‘]((?=\S)(?:[^'‘’\n]|(?<=\w)['’](?=\w))*[^\s'‘’])['’]"
                     r"(?![\w'’])")
_QUOTE_OPEN = {'"': '"', "“": "”", "'": "'", "‘": "’"}
_ORDINALS = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4,
             "fifth": 5, "5th": 5, "last": -1, "other": 0}
_TYPE_WORDS = r"deal|deals|account|ticket|invoice|record|opportunity|one|customer|task|contact"
_REFERENCE = re.compile(
    rf"\b(?:(?:the\s+)?(?P<ord>first|second|third|fourth|fifth|last|other|1st|2nd|3rd|4th|5th)"
    rf"(?:\s+(?:{_TYPE_WORDS}))?"
    rf"|(?P<dem>this|that|these|those|same|the\s+same|the)\s+(?:{_TYPE_WORDS})(?!\s+(?:of|for|owner))"
    r"|(?P<it>it|its|this\s+one|that\s+one|them))\b",
    re.IGNORECASE,
)
_RELATION = re.compile(
    r"\b(?:the\s+)?(?P<rel>(?:account\s+)?owner|assignee|manager|contact)\s+(?:of|on|for)\s+(?P<of>.+)"
    r"|\b(?P<its>its|their)\s+(?P<rel2>(?:account\s+)?owner|assignee|manager)\b",
    re.IGNORECASE,
)
_TEXT_MARKERS = [
    re.compile(r":\s*(?P<t>.+)$"),
    re.compile(r"\b(?:saying|says|say|with\s+the\s+(?:message|note|text)|asking(?:\s+(?:him|her|them))?)\s*:?\s+"
               r"(?:that\s+(?=\S+\s+\S))?"
               r"(?P<t>.+)$", re.I),
    re.compile(r"\bknow\s+(?:that\s+)?(?P<t>.+)$", re.I),
    re.compile(r"\b(?:because|since|due\s+to|as\s+the)\s+(?P<t>.+)$", re.I),
    re.compile(r"\bthat\s+(?!deal|account|ticket|one\b)(?P<t>.+)$", re.I),
    re.compile(r"\b[Tt]o\s+(?P<t>(?!the\b|my\b|a\b|an\b|me\b|us\b|him\b|her\b|them\b|#)[a-z]+\b.*)$"),
    re.compile(r"\babout\s+(?P<t>.+)$", re.I),
]
_DASH = re.compile(r"\s[-–—]\s+(?P<t>.+)$")
_REASON = re.compile(r"(?:\b(?:for|over)\s+|,\s+)(?P<t>(?:the|a|an|our|their|its|some|all|we|they|it)\s+.+)$",
                     re.I)
_DATEISH = frozenset("today tomorrow tonight next this monday tuesday wednesday thursday friday saturday sunday "
                     "morning afternoon evening".split())
_NAMING_PREPS = ("for", "with", "about", "on", "to", "of", "in", "from")
_PREPS = ("for", "to", "with", "in", "on", "at", "from", "of", "about", "by", "into", "near", "around", "as")


_NAME_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class _PeopleIndex:
    """The directory's names as patterns, filed under each name's first word: a message is searched only for
    the names whose first word it holds, so the cost follows the message's words, not the directory's size."""

    every: list[tuple[re.Pattern[str], str]]  # (pattern, person id) in directory order
    by_first_word: dict[str, list[int]]  # positions in ``every``
    always: list[int]  # names with no plain ASCII first word: searched for in every message

    def patterns(self, text: str) -> list[tuple[re.Pattern[str], str]]:
        """The patterns worth running on ``text``, in directory order (as if all had run)."""
        if not text.isascii():
            return self.every
        words = set(_NAME_WORD.findall(text.lower()))
        chosen = sorted([*self.always, *(i for word in words for i in self.by_first_word.get(word, ()))])
        return [self.every[i] for i in chosen]


def _people_index(directory: Directory) -> _PeopleIndex:
    index = _PeopleIndex([], {}, [])
    for person in directory:
        names = {person.name, person.name.split()[0], person.id}
        for name in sorted(names, key=len, reverse=True):
            first = _NAME_WORD.match(name.lower())
            if first is None or not name.isascii():
                index.always.append(len(index.every))
            else:
                index.by_first_word.setdefault(first.group(), []).append(len(index.every))
            index.every.append((re.compile(rf"(?<![\w@#-]){re.escape(name)}(?![\w-])", re.IGNORECASE),
                                person.id))
    return index


_PEOPLE_CACHE: weakref.WeakKeyDictionary[Directory, _PeopleIndex] = weakref.WeakKeyDictionary()


def _after_lead(piece: Piece, words: list[Token]) -> bool:
    """Whether ``piece`` comes right after the verb a request starts with ("ping zoe ...")."""
    lead = next((i for i, t in enumerate(words) if t.lower not in STOP), None)
    return lead is not None and lead + 1 < len(words) and words[lead + 1].start == piece.start


def _reference_types(value: str, context: Context) -> set[str] | None:
    """What a reference can be: "@it:deal" a deal; "@2" the type of the second record shown; None: unknown."""
    if ":" in value:
        return {value.split(":", 1)[1]}
    if value == "@it":  # the most recent records talked about, of whatever kind fits
        return {f.type.lower() for f in context.focus[:3]} or None
    shown = context.last_list
    if value == "@other":
        return {r.type.lower() for r in shown} or None
    n = int(value[1:]) if value[1:].lstrip("-").isdigit() else 0
    if n and abs(n) <= len(shown):
        return {shown[n - 1 if n > 0 else n].type.lower()}
    return None


def _counted(text: str, end: int) -> bool:
    """Whether "one" counts something ("one ticket") rather than standing for a thing ("the Brightwater one")."""
    following = re.match(r"\s+([a-z]+)", text[end:], re.IGNORECASE)
    return following is not None and following.group(1).lower() not in STOP and following.group(1).lower() not in _PREPS


def _prep_before(text: str, start: int) -> str:
    match = re.search(r"(\w+)\s*$", text[:start])
    word = match.group(1).lower() if match else ""
    return word if word in _PREPS else ""


@dataclass
class _Finding:
    """The pieces of one message found so far: each pass adds its kind (earlier kinds win overlaps)."""

    text: str
    context: Context
    person: Person
    params: list[Param]
    things: frozenset[str] = frozenset()  # what the action makes or acts on, in its own words (stems)
    found: list[Piece] = field(default_factory=list)
    values: list[Piece] = field(default_factory=list)
    soft: list[Piece] = field(default_factory=list)  # free text marked only by the words before it
    chosen: list[Piece] = field(default_factory=list)

    @property
    def wants_text(self) -> bool:
        return any(p.kind == "text" for p in self.params)


def _find_explicit_text(s: _Finding) -> None:
    """Quoted words and what follows a colon or a dash are the person's own text."""
    if not s.wants_text:
        return
    for m in _QUOTED.finditer(s.text):
        said = m.group(1) or m.group(2)
        s.found.append(Piece(m.start(), m.end(), "text", said.strip(), said))
    for marker in (_TEXT_MARKERS[0], _DASH):
        explicit = marker.search(s.text)
        if explicit and not any(p.start <= explicit.start("t") < p.end for p in s.found):
            s.found.append(Piece(explicit.start("t"), len(s.text), "text", explicit.group("t").strip(),
                                 explicit.group("t")))
            break


def _find_ids(s: _Finding) -> None:
    """Record ids ("SUP-17", and "event 00000256" where a parameter gives its id format) and channels."""
    text = s.text
    s.found += [Piece(m.start(), m.end(), "id", m.group().upper(), m.group()) for m in _ID.finditer(text)]
    for id_pattern in dict.fromkeys(p.id_pattern for p in s.params if p.id_pattern):
        s.found += [Piece(m.start(), m.end(), "id", m.group(), m.group())
                    for m in re.finditer(rf"(?<![\w-])(?:{id_pattern})(?![\w-])", text)]
    s.found += [Piece(m.start(), m.end(), "channel", m.group().lower(), m.group()) for m in _CHANNEL.finditer(text)]


def _find_values(s: _Finding) -> None:
    """Typed values (values.py), except inside ids and a "one" that stands for a thing."""
    ids = [p for p in s.found if p.kind == "id"]
    spans = find_values(s.text, s.context.now)
    s.values = [Piece(v.start, v.end, v.kind, v.value, v.text, parts=v.parts) for v in spans
                if not (v.kind == "number" and v.text.lower() == "one" and not _counted(s.text, v.end))
                and not any(i.start < v.end and v.start < i.end for i in ids)]


def _find_relations(s: _Finding) -> None:
    """"the account owner of the Orchid deal next Tuesday": the record's name stops at the date."""
    text = s.text
    for m in _RELATION.finditer(text):
        if not m.group("rel"):
            s.found.append(Piece(m.start(), m.end(), "relation", (m.group("rel2").lower(), "@it"), m.group()))
            continue
        stop = re.search(r"\s+(?:asking|saying|that|to|about|because|with|and)\b|[:,;]", text[m.start("of"):])
        end = min([v.start for v in s.values if v.start >= m.start("of")] + [m.end()]
                  + ([m.start("of") + stop.start()] if stop else []))
        of = text[m.start("of"):end].strip(" ,")
        s.found.append(Piece(m.start(), m.start("of") + len(of), "relation", (m.group("rel").lower(), of),
                             text[m.start():m.start("of") + len(of)]))
    s.found += s.values


def _find_choices(s: _Finding) -> None:
    """Enum values, by value or label; "line chart" said in full beats "plot", the tail of "scatter plot"."""
    for param in s.params:
        if not param.enum:
            continue
        spoken = {label: value for value, labels in param.labels.items() for label in labels}
        spoken |= {value: value for value in param.enum}  # "engaged users" for user_engaged, and the value
        spans = find_choices(s.text, list(spoken))
        said = {re.sub(r"[\s_-]+", " ", w.lower()) for w in spoken}
        exact = [c for c in spans if re.sub(r"[\s_-]+", " ", c.text.lower()) in said]
        s.found += [Piece(c.start, c.end, "choice", (param.name, spoken.get(c.value, c.value)), c.text)
                    for c in exact or spans]


def _find_people(s: _Finding) -> None:
    """The directory's people by name, and "my manager"."""
    text, directory = s.text, s.context.directory
    if directory is not None:
        if directory not in _PEOPLE_CACHE:
            _PEOPLE_CACHE[directory] = _people_index(directory)
        for pattern, pid in _PEOPLE_CACHE[directory].patterns(text):
            s.found += [Piece(m.start(), m.end(), "person", pid, m.group()) for m in pattern.finditer(text)]
    if s.person.manager:
        for m in re.finditer(r"\bmy\s+(?:manager|boss|lead)\b", text, re.IGNORECASE):
            s.found.append(Piece(m.start(), m.end(), "person", s.person.manager, m.group()))


def _find_pronouns(s: _Finding) -> None:
    """"me" (or "mine" in "I own"), "him"/"her" for the person just talked about, "my"."""
    text = s.text
    for m in re.finditer(r"\b(me|myself|I)\b", text):
        owning = re.match(r"\s+(?:own|have|manage|run|got|hold)\b", text[m.end():], re.IGNORECASE)
        s.found.append(Piece(m.start(), m.end(), "mine" if owning else "self", s.person.id, m.group()))
    if s.context.people:  # "set up a meeting with him": the person the conversation was just about
        for m in re.finditer(r"\b(him|her)\b", text, re.IGNORECASE):
            after = re.match(r"\s+([a-z]+)", text[m.end():], re.IGNORECASE)
            if m.group(1).lower() == "her" and after and after.group(1).lower() not in STOP | _DATEISH \
                    and after.group(1).lower() not in _PREPS:
                continue  # "her company": a possessive, not a person
            s.found.append(Piece(m.start(), m.end(), "person", s.context.people[0], m.group()))
    for m in re.finditer(r"\b(my|mine)\b", text, re.IGNORECASE):
        s.found.append(Piece(m.start(), m.end(), "mine", s.person.id, m.group()))


def _find_references(s: _Finding) -> None:
    """"the first one" (only when a list was shown or options are pending), "it", "that deal"."""
    context = s.context
    listed = bool(context.last_list) or bool(context.pending_options and context.pending == "clarification")
    for m in _REFERENCE.finditer(s.text):
        if m.group("ord"):
            if listed:
                ordinal = _ORDINALS[m.group("ord").lower()]
                s.found.append(Piece(m.start(), m.end(), "reference", "@other" if ordinal == 0 else f"@{ordinal}",
                                     m.group()))
            continue
        kind = re.search(rf"({_TYPE_WORDS})$", m.group().lower())
        word = kind.group(1).rstrip("s") if kind else ""
        typed = f"@it:{word}" if word in ("deal", "account", "ticket", "contact", "invoice") else "@it"
        s.found.append(Piece(m.start(), m.end(), "reference", typed, m.group()))


# Words that label the text after them: a title ("titled", "and title it", "with the subject") or a body ("saying",
# "with the body"). "called" and "named" label a title only before any body began ("a meeting called X").
_TITLE_PARAM = re.compile(r"title|subject|summary|heading|topic|name")
_BODY_PARAM = re.compile(r"text|body|message|note|comment|content|description|reason")
_LABELS = re.compile(
    r"\b(?:(?P<title>(?:and\s+)?(?:title|call|name|subject)\s+it|titled|entitled|"
    r"(?:with|and)\s+(?:the\s+|a\s+)?(?:subject(?:\s+line)?|title|heading)(?:\s+of)?|(?:subject|title)(?=\s*[:\"“'‘]))"
    r"|(?P<weak>called|named)"
    r"|(?P<body>saying|says|reading|(?:with|and)\s+(?:the\s+|a\s+)?(?:body|message|text)(?:\s+of)?"
    r"|(?:body|message|text)(?=\s*[:\"“'‘])))\b\s*:?\s*(?:that\s+(?=\S+\s+\S))?",
    re.I)
_STOPS_TITLE = frozenset({"person", "self", "date", "datetime", "time", "range", "email", "channel", "id"})


def _labels(s: _Finding) -> list[tuple[str, re.Match[str]]]:
    """The labels outside quotes, in order, as ("title" | "body", match)."""
    quoted = [(m.start(), m.end()) for m in _QUOTED.finditer(s.text)]
    out: list[tuple[str, re.Match[str]]] = []
    for m in _LABELS.finditer(s.text):
        if any(a <= m.start() < b for a, b in quoted):
            continue
        role = "body" if m.group("body") else "title"
        if m.group("weak") and any(r == "body" for r, _ in out):
            continue
        out.append((role, m))
    return out


def _labelled(s: _Finding, role: str, start: int, end: int) -> Piece | None:
    """The text a label introduces, from ``start`` to the next label: what is inside quotes when it is quoted; a
    title without quotes stops where a person, a date or an id begins ("titled Pipeline review with bob at 3")."""
    text = s.text
    lead = re.match(r"\s*", text[start:end])
    start += lead.end() if lead else 0
    closing = _QUOTE_OPEN.get(text[start:start + 1])
    quoted = _QUOTED.match(text, start)
    if quoted and quoted.end() <= end:  # 'it's done': an apostrophe inside a word does not close the quote
        said = quoted.group(1) or quoted.group(2)
        return Piece(start, quoted.end(), "text", said.strip(), said, label=role)
    if closing:
        close = text.find(closing, start + 1, end)
        if close > start + 1:
            said = text[start + 1:close]
            return Piece(start, close + 1, "text", said.strip(), said, label=role)
    if role == "title":
        end = min([p.start for p in s.found if p.kind in _STOPS_TITLE and start < p.start < end] + [end])
    said = re.sub(r"(?:[\s,;.]+(?:and|with|for|to|on|at|by|in|from))*[\s,;.!?]*$", "", text[start:end])
    return Piece(start, start + len(said), "text", said, said, label=role) if said.strip() else None


def _find_labelled_text(s: _Finding) -> None:
    """"titled 'Renewal' saying the terms are ready", "saying '...' and title it '...'": each labelled text goes
    to its own parameter, only for actions that take a title and when a title is labelled. Labelled text comes
    first, so it wins over every other piece it overlaps."""
    if not any(p.kind == "text" and _TITLE_PARAM.search(p.name) for p in s.params):
        return
    labels = _labels(s)
    if not any(role == "title" for role, _ in labels):
        return
    pieces = []
    for n, (role, m) in enumerate(labels):
        end = labels[n + 1][1].start() if n + 1 < len(labels) else len(s.text)
        piece = _labelled(s, role, m.end(), end)
        if piece is not None:
            pieces.append(piece)
    s.found[:0] = pieces


_NAMING = re.compile(r"\b(?:called|named|titled|entitled|(?:call|name|title)\s+it)\s*:?\s*$", re.I)


def _find_quoted_names(s: _Finding) -> None:
    """"a meeting called 'Catch up on overdue tasks'": quoted words after a naming word are the new record's name,
    verbatim, for an action whose name is a plain name parameter (no title text parameter labels it). They win
    over every piece inside them, so neither a word of the name nor a date in it is read as something else."""
    if not any(p.kind == "name" for p in s.params) or any(
            p.kind == "text" and _TITLE_PARAM.search(p.name) for p in s.params):
        return
    names = [Piece(m.start(), m.end(), "title", (m.group(1) or m.group(2)).strip(), m.group(1) or m.group(2))
             for m in _QUOTED.finditer(s.text) if _NAMING.search(s.text[:m.start()])]
    s.found[:0] = names


# A time that only a look at calendars could give: "at the earliest time I'm free", "after my last meeting",
# "whenever she is available", "as soon as possible". The interpreter cannot work it out, so it never stands in a
# default hour for it: the time is asked for.
_COMPUTED_TIME = re.compile(
    r"\b(?:(?:at|in|for|on|during)\s+)?(?:the\s+|my\s+|our\s+|a\s+|an\s+|their\s+|his\s+|her\s+)?"
    r"(?:(?:earliest|first|next|soonest|latest|last|nearest)\s+(?:available\s+|free\s+|open\s+|possible\s+"
    r"|convenient\s+|mutually\s+convenient\s+)?(?:time|slot|opening|moment|window|gap|spot|availability)s?"
    r"|(?:available|free|open|convenient)\s+(?:time|slot|opening|window|spot)s?)\b"
    r"(?:\s+(?:(?:that|when|where)\s+)?(?:i|we|you|they|he|she|both\s+of\s+us|everyone|[a-z]+)"
    r"(?:'re|'m|'s|\s+am|\s+is|\s+are)\s+(?:both\s+)?(?:free|available|open)\b)?"
    r"|\b(?:when(?:ever)?|once|as\s+soon\s+as)\s+(?:i|we|you|they|he|she|both\s+of\s+us|everyone|[a-z]+)"
    r"(?:'re|'m|'s|\s+am|\s+is|\s+are)\s+(?:both\s+)?(?:free|available|open)\b"
    r"|\b(?:right\s+|just\s+)?(?:after|before|following)\s+(?:my|our|the|his|her|their|\w+'s)\s+"
    r"(?:[\w-]+\s+){0,2}?(?:meeting|event|call|appointment|standup|stand-up|lunch|session)s?\b"
    r"|\b(?:as\s+soon\s+as\s+possible|asap|some\s*time|at\s+some\s+point|at\s+a\s+(?:good|convenient)\s+time)\b",
    re.I)


def _find_computed_times(s: _Finding) -> None:
    """Times only a look at calendars could give ("at the earliest time I'm free"): a piece of their own, so a
    date said beside one does not get a default hour and the time is asked for."""
    if not any(p.kind in ("datetime", "time") for p in s.params):
        return
    at = max((n + 1 for n, p in enumerate(s.found) if p.kind in ("text", "title")), default=0)  # quotes win
    s.found[at:at] = [Piece(m.start(), m.end(), "moment", m.group().strip(), m.group())
                      for m in _COMPUTED_TIME.finditer(s.text)]


def _find_marked_text(s: _Finding) -> None:
    """Free text after "saying", "that", "because", "to ..." (a reason only where a parameter wants one)."""
    if not s.wants_text:
        return
    markers = list(_TEXT_MARKERS[1:])
    if any(p.kind == "text" and re.search(r"reason|why", p.name) for p in s.params):
        markers.append(_REASON)
    for pattern in markers:
        marked = pattern.search(s.text)
        if marked:
            s.soft.append(Piece(marked.start("t"), len(s.text), "soft-text", marked.group("t").strip(),
                                marked.group("t")))


def _drop_overlaps(s: _Finding) -> None:
    """Earlier kinds win overlaps; an enum value also counts inside free text, and for each parameter that
    lists it (``_direct_shared`` picks one)."""
    for piece in s.found:
        if all(piece.end <= c.start or piece.start >= c.end or (piece.kind == "choice" and c.kind == "text")
               or (piece.kind == c.kind == "choice" and (piece.start, piece.end) == (c.start, c.end)
                   and piece.value[0] != c.value[0])
               for c in s.chosen):
            s.chosen.append(piece)


def _find_addressed_text(s: _Finding) -> None:
    """"tell wes the Cobalt demo went well": what follows the person addressed is the message."""
    if not (s.wants_text and any(p.kind in ("person", "recipient") for p in s.params)):
        return
    text = s.text
    for piece in s.chosen:
        if piece.kind not in ("person", "channel", "relation"):
            continue
        rest = re.match(r"[\s,]*(?:(?:and|or)\s+\w+[\s,]*)*(?:(?:a|an|the)\s+\w+\s+(?=that|saying|about))?"
                        r"(?:(?:saying|about|know|:)\s*)?(?:that\s+(?=\S+\s+\S))?\s*", text[piece.end:])
        start = piece.end + (rest.end() if rest else 0)
        if _names_thing(text[start:], s.things):
            continue  # "give devi a meeting with carol": the thing the action makes, not words said to devi
        starts_value = any(c.start == start and c.kind in ("date", "datetime", "time", "range", "money", "duration",
                                                           "moment")
                           for c in s.chosen)
        if len(text[start:].split()) >= 2 and not starts_value and not re.match(
                r"(?:on|at|by|for|in|to|from|with|next|this|tomorrow|today)\b", text[start:], re.I):
            s.soft.append(Piece(start, len(text), "soft-text", text[start:].strip(), text[start:]))


# "a meeting", "a 30 minute call", "up a new follow-up": an indefinite thing and the words before its noun
_A_THING = re.compile(r"(?:up\s+)?(?:an?|another|one)\s+(?:new\s+)?((?:[\w-]+\s+){0,2}[\w-]+)", re.I)


def _names_thing(rest: str, things: frozenset[str]) -> bool:
    """Whether ``rest`` opens by naming, as a new one, a thing the action makes ("a meeting", "a 30 minute call",
    "a follow-up"), in its words or their concepts: the object of "give devi ...", not a message to devi."""
    m = _A_THING.match(rest)
    return m is not None and any(stem(w.lower()) in things or f"~{k}" in things
                                 for w in m.group(1).split() for k in concepts(stem(w.lower())))


@lru_cache(maxsize=8192)
def _own_things(name: str, description: str) -> frozenset[str]:
    """An action's own nouns, as stems and "~concept": its system's and object's names, its description's words
    after the verb."""
    parts = name_parts(name)
    stems = {t.stem for t in tokens(" ".join([description, *parts[:1], *parts[2:]]))[1:] if t.lower not in STOP}
    return frozenset(stems | {f"~{k}" for base in stems for k in concepts(base)})


def _text_end(s: _Finding, piece: Piece) -> int:
    """Where marked free text ends: before a date at its very end, or before ", due ...", ", high priority"."""
    text = s.text
    inside = [c for c in s.chosen if c.start >= piece.start]
    trailing = [c for c in inside if c.kind in ("date", "datetime", "time", "range")
                and c.end >= len(text.rstrip(" .!?"))]
    has_dates = any(p.kind in ("date", "datetime", "time") for p in s.params)
    end = trailing[0].start if trailing and has_dates else len(text)
    names = "|".join(re.escape(w) for p in s.params for w in p.name.split("_") if len(w) > 2)
    stop = re.search(rf",\s*(?:(?:{names})\b|(?:low|medium|high|urgent)\s+priority)", text[piece.start:end], re.I) \
        if names else None
    return piece.start + stop.start() if stop else end


def _place_marked_text(s: _Finding) -> None:
    """The first marked free text becomes the text, unless quoted or colon text was found, or it addresses
    someone ("assigned to sam"). Free text swallows the people and records it mentions."""
    text = s.text
    for piece in sorted(s.soft, key=lambda p: p.start):
        if any(c.kind == "text" for c in s.chosen):
            break
        if re.search(r"\bto\s*$", text[:piece.start], re.I) and any(
                c.start == piece.start and c.kind in ("person", "email", "channel", "id", "self") for c in s.chosen):
            continue  # "assigned to sam", "to priya@...": an addressee, not a message
        end = _text_end(s, piece)
        body = text[piece.start:end].strip(" ,.")
        if re.match(r"(?:on|at|by|for)$", body.split()[-1] if body.split() else "", re.I):
            body = body.rsplit(None, 1)[0] if len(body.split()) > 1 else body
        if not body or any(c.start < piece.start < c.end for c in s.chosen):
            continue
        # the text takes what it covers, but an enum value said in it still counts ("..., we lost it")
        s.chosen = [c for c in s.chosen if c.start < piece.start or c.start >= end or c.kind == "choice"]
        body = body.rstrip(" ,?!")
        s.chosen.append(Piece(piece.start, piece.start + len(body), "text", body, body))
        break


def _mark_labels(s: _Finding) -> None:
    """The words that label a text ("saying", "and title it") are neither a name nor part of the text."""
    for piece in [c for c in s.chosen if c.kind in ("text", "title")]:
        for m in _LABELS.finditer(s.text, max(0, piece.start - 40), piece.start + 1):
            if m.end() == piece.start and not any(c.start < m.end() and m.start() < c.end for c in s.chosen):
                s.chosen.append(Piece(m.start(), m.end(), "label", m.group().strip(), m.group()))


_FINDERS = (
    _find_explicit_text, _find_ids, _find_values, _find_relations, _find_choices, _find_people, _find_pronouns,
    _find_references, _find_labelled_text, _find_quoted_names, _find_computed_times, _find_marked_text,
    _drop_overlaps, _find_addressed_text, _place_marked_text, _mark_labels,
)


def find_pieces(text: str, context: Context, person: Person, params: list[Param],
                things: frozenset[str] = frozenset()) -> list[Piece]:
    """Every marked piece of ``text``, without overlaps (earlier kinds in the list win): the finders in order.
    ``things`` are the action's own nouns (stems), so "a meeting" after a person is what is made, not a message."""
    state = _Finding(text, context, person, params, things)
    for step in _FINDERS:
        step(state)
    for piece in state.chosen:
        piece.prep = _prep_before(text, piece.start)
    return sorted(state.chosen, key=lambda p: p.start)


_NAME_JOINERS = frozenset({"of", "de", "del", "la", "le", "du", "da", "von", "van"})


def _joins_names(token: Token, before: Token, after: list[Token]) -> bool:
    """"of" (or "de", "van"...) between two capitalised words is inside one name, not a preposition."""
    return token.lower in _NAME_JOINERS and before.text[:1].isupper() and bool(after) \
        and after[0].text[:1].isupper()


def _chunks(text: str, words: list[Token], pieces: list[Piece], entry: Entry, index: CatalogIndex) -> list[Piece]:
    """Runs of words no piece explains and the action does not use as its own words: names of records."""
    covered = [(p.start, p.end) for p in pieces]
    out: list[Piece] = []
    run: list[Token] = []

    def flush() -> None:
        while run and (run[-1].lower in STOP):
            run.pop()
        while run and (run[0].lower in STOP):
            run.pop(0)
        capital = next((i for i, t in enumerate(run) if t.text[:1].isupper()), None)
        if capital:
            addressed(run[:capital])
        if capital:  # "how big is the Tallgrass deal": the name starts at its first capital
            del run[:capital]
        if run:
            start, end = run[0].start, run[-1].end
            value = re.sub(r"['’]s\b", "", text[start:end])  # "Orchid's amount": the record is Orchid
            out.append(Piece(start, end, "chunk", value, text[start:end], _prep_before(text, start)))
        run.clear()

    def addressed(head: list[Token]) -> None:
        """"tell carl the Kestrel deal is closed": the word right after the verb stays a name of its own (the
        person addressed) where the run it starts is cut at a capital or a kind of record."""
        head = [t for t in head if t.lower not in STOP]
        if head and lead is not None and words.index(head[0]) == words.index(lead) + 1 and len(head) == 1:
            said = head[0].text
            out.append(Piece(head[0].start, head[0].end, "chunk", said, said, _prep_before(text, head[0].start)))

    kinds = {t.lower() for p in entry.params for t in p.record.split("|") if t}
    lead = next((t for t in words if t.lower not in STOP), None)
    for i, token in enumerate(words):
        inside = any(s <= token.start < e for s, e in covered)
        if run and not inside and _joins_names(token, run[-1], words[i + 1:i + 2]):
            run.append(token)  # "District of Columbia", "Bank of America": one name
            continue
        if run and not inside and token.lower.rstrip("s") in kinds:
            run.append(token)  # "the Orchid deal": the type word tells grounding which kind of record
            flush()
            continue
        if run and not inside and token.lower.rstrip("s") in index.record_types:
            addressed(run[:next((i for i, t in enumerate(run) if t.text[:1].isupper()), 1)])
            run.clear()  # "the Kestrel deal" names a deal: not for a parameter that takes accounts
            continue
        if token is lead and (token.text.islower() or index.matched(entry, token)):
            continue  # the verb a request starts with ("give", "book", "Reassign") is not a name
        lower = not token.text[:1].isupper()
        # Lowercase words the catalog itself uses ("give", "deals", "status") are not names of records.
        own = lower and (index.matched(entry, token) or token.stem in index.vocabulary)
        if inside or own or token.lower in _PREPS:
            flush()
            continue
        if token.lower in STOP and not run:
            continue
        run.append(token)
    flush()
    return out


# The courtesy around a request is not part of what it says: "could you ...?", "please ...", "..., please".
_POLITE_START = re.compile(r"^(?:(?:please|kindly|pls|(?:can|could|would|will)\s+you)\s+)+", re.I)
_COURTESY_END = re.compile(r"(?:[\s,]+(?:please|pls|thanks|thank\s+you|thx|cheers))+[\s.!]*$", re.I)


def _clean_title(text: str, pieces: list[Piece], words: list[Token]) -> str:
    """A short title from the message itself: its words without the leading verb (and its particle: "set up"),
    dates, durations (a length is never a title: "book 30 minutes with carol"), people and quoted text."""
    cut = [p for p in pieces if p.kind in ("date", "datetime", "time", "range", "duration", "text", "person", "self",
                                           "label")]
    kept = "".join(ch for i, ch in enumerate(text) if not any(p.start <= i < p.end for p in cut))
    kept = re.sub(r"\s+", " ", kept).strip(" ,.")
    kept = _COURTESY_END.sub("", _POLITE_START.sub("", kept)).strip(" ,.?!")
    first = tokens(kept)
    if first and first[0].text.islower():
        kept = kept[first[0].end:].strip()  # the verb: "create", "email", "open"
    kept = re.sub(r"^(?:(?:up|out|together|me|us|him|her|them|and|a|an|the|in(?:to)?(?=\s+(?:a|an|the)\b))(?:\s+|$))+",
                  "", kept, flags=re.IGNORECASE)
    kept = re.sub(r"(?:(?:^|[\s,]+)(?:for|to|with|on|at|by|due|and|or))+$", "", kept.rstrip(" ,"), flags=re.IGNORECASE)
    return (kept[:1].upper() + kept[1:])[:300] if kept else ""


_PAST_CUE = re.compile(r"\b(?:since|last|past|previous|ago)\W*$", re.I)
_FUTURE_CUE = re.compile(r"\b(?:next|until|till|by|coming|upcoming)\W*$", re.I)
_YEAR = re.compile(r"\b\d{4}\b|'\d{2}\b")


def directed(param: Param, value: str, piece: Piece, text: str, now: datetime) -> str:
    """A date said without a year, in the direction its parameter looks (``x-direction``), or, without one,
    the direction the words before it give ("since September 27" looks back, "by next Friday" ahead):
    a past date is never after today and a future one never before it."""
    if _YEAR.search(piece.text):
        return value
    direction = param.direction if param.direction in ("past", "future") else ""
    before = text[max(0, piece.start - 30):piece.start]
    if not direction:
        direction = "past" if _PAST_CUE.search(before) else "future" if _FUTURE_CUE.search(before) else ""
    try:
        day = date.fromisoformat(value[:10])
        if direction == "past" and day > now.date():
            day = day.replace(year=day.year - 1)
        elif direction == "future" and day < now.date():
            day = day.replace(year=day.year + 1)
        else:
            return value
    except ValueError:  # not an ISO date, or the 29th of February in another year
        return value
    return day.isoformat() + value[10:]


# --- extraction: named passes over one state ------------------------------------------------------------------------


@dataclass
class _Extracting:
    """One action's extraction under way: the state every pass reads and adds to (after pydantic-ai's agent
    graph: small steps over one state, run in a fixed order by ``extract``)."""

    text: str
    entry: Entry
    index: CatalogIndex
    context: Context
    weights: Weights
    pieces: list[Piece]
    words: list[Token]
    args: dict[str, Any] = field(default_factory=dict)
    mentions: dict[str, str] = field(default_factory=dict)
    used: set[int] = field(default_factory=set)
    bonus: float = 0.0  # evidence beyond the pieces taken (an id of the right kind, a reference that fits)
    chunks: list[Piece] = field(default_factory=list)  # runs of words no piece explains: names of records
    text_params: list[Param] = field(default_factory=list)  # text parameters free text did not fill
    earned: set[str] = field(default_factory=set)  # required arguments said in the message, not derived
    missing: list[Param] = field(default_factory=list)
    _kinds: dict[tuple[str, ...], list[Param]] = field(default_factory=dict)

    @property
    def params(self) -> list[Param]:
        return self.entry.params

    def of_kind(self, *kinds: str) -> list[Param]:
        """The parameters of these kinds, kind by kind in the order given (a new list each time)."""
        found = self._kinds.get(kinds)
        if found is None:
            found = self._kinds[kinds] = [p for kind in kinds for p in self.params if p.kind == kind]
        return list(found)

    def take(self, param: Param, piece: Piece, value: Any) -> None:
        if param.kind in ("date", "datetime") and isinstance(value, str):
            value = directed(param, value, piece, self.text, self.context.now)
        self.args[param.name] = value
        self.mentions[param.name] = piece.text
        self.used.add(id(piece))
        if all(p is not piece for p in self.pieces):  # slots may make new pieces (a date split from its time)
            self.pieces.append(piece)

    def free(self, kind: str) -> list[Piece]:
        return [p for p in self.pieces if p.kind == kind and id(p) not in self.used]

    def unused(self) -> list[Piece]:
        return [p for p in self.pieces if id(p) not in self.used]

    def taken(self) -> list[Piece]:
        return [p for p in self.pieces if id(p) in self.used]


def _take_choices(s: _Extracting) -> None:
    """Enums: "negotiation", "won", "high". Two values said for one parameter ("move the tasks in progress to in
    review") are a filter and a target: the one after "to", "into" or "as" is the value; with no such word to tell
    them apart, neither is taken, so the interpreter asks instead of picking one."""
    choices: dict[str, list[Piece]] = {}
    for piece in s.pieces:
        if piece.kind == "choice":
            choices.setdefault(piece.value[0], []).append(piece)
    own = {stem(w.lower()) for w in name_parts(s.entry.action.name)} if choices else set()
    _direct_shared(s, choices)
    for name, said in choices.items():
        param = next(p for p in s.params if p.name == name)
        said = [piece for piece in said if not _names_the_action(piece, param, own)]
        if name in s.args or not said:
            continue
        if len({piece.value[1] for piece in said}) > 1:
            targets = [piece for piece in said if re.search(r"\b(?:to|into|as)\s*$", s.text[:piece.start], re.I)]
            if len({piece.value[1] for piece in targets}) != 1:
                continue
            said = targets
        s.take(param, said[0], said[0].value[1])


# Parameters for where something goes or who receives it, and the words before a value that point there
# ("to their savings account", "into Grace's checking") or back at the source ("from my checking").
_TOWARD_PARAM = re.compile(r"recipient|receiv|destination|target|payee|beneficiar|\bto\b|\binto\b")
_TOWARD_CUE = re.compile(r"\b(?:to|into|their|his|her|someone'?s?|\w+'s|\w+\s+'s)\s+(?:\w+\s+)?$", re.I)
_FROM_CUE = re.compile(r"\b(?:from|my|our|mine)\s+(?:\w+\s+)?$", re.I)


def _direct_shared(s: _Extracting, choices: dict[str, list[Piece]]) -> None:
    """A value two parameters share ("savings" for the account and the recipient's account) goes by the words
    before it: "to their savings" to the one that receives, "from my savings" to the other; with neither, to
    the first that lists it."""
    params = {p.name: p for p in s.params}
    at: dict[tuple[int, int], list[str]] = {}
    for name, said in choices.items():
        for piece in said:
            at.setdefault((piece.start, piece.end), []).append(name)
    for (start, end), names in at.items():
        if len(names) < 2:
            continue
        before = s.text[max(0, start - 30):start]
        toward = bool(_TOWARD_CUE.search(before))
        directed = toward or bool(_FROM_CUE.search(before))
        fits = [n for n in names if bool(_TOWARD_PARAM.search(params[n].words.lower())) == toward] if directed else []
        keep = fits[0] if fits else names[0]
        for name in names:
            if name != keep:
                choices[name] = [p for p in choices[name] if (p.start, p.end) != (start, end)]


def _names_the_action(piece: Piece, param: Param, own: set[str]) -> bool:
    """"check my balance" names CheckBalance, not the account type "checking": a value said only in other words
    (not the value or one of its labels) whose words all name the action is the action's name."""
    said = re.sub(r"[\s_-]+", " ", piece.text.lower())
    spoken = {re.sub(r"[\s_-]+", " ", w.lower()) for w in [*param.enum, *(x for v in param.labels.values() for x in v)]}
    return said not in spoken and all(stem(t.lower) in own for t in tokens(piece.text))


def _take_relations(s: _Extracting) -> None:
    """"the account owner of the Orchid deal": a person, and the record it is found through."""
    person_params = s.of_kind("person", "recipient")
    for piece in s.free("relation"):
        relation, of = piece.value
        target = next((p for p in person_params if p.name not in s.args), None)
        if target is None:
            continue
        value = f"{relation} of {of}".strip()
        s.take(target, piece, [value] if target.many else value)
        related = next((p for p in s.of_kind("record") if p.name not in s.args), None)
        if related is not None and of != "@it":
            s.args[related.name] = of
            s.mentions[related.name] = of


def _take_ids(s: _Extracting) -> None:
    """Record ids. "SUP-17" fits a parameter whose kind of record has SUP ids in the catalog; an account does not."""
    for piece in s.free("id"):
        target = next((p for p in s.of_kind("record") if p.name not in s.args), None)
        if target is None:
            break
        s.take(target, piece, piece.value)
        owners = s.index.id_prefixes.get(piece.value.split("-")[0].lower())
        if target.id_pattern and re.fullmatch(target.id_pattern, piece.value):
            s.bonus += s.weights.own_id  # the record's own id format
        elif owners is not None and owners & {t.lower() for t in target.record.split("|")}:
            s.bonus += s.weights.own_id
        elif owners is not None:
            s.bonus += s.weights.foreign_id


def _take_channels(s: _Extracting) -> None:
    for piece in s.free("channel"):
        target = next((p for p in s.of_kind("recipient") if p.name not in s.args), None)
        if target is not None:
            s.take(target, piece, piece.value)


def _may_be(piece: Piece, param: Param, creates: bool, s: _Extracting) -> bool:
    """Whether a person piece may fill ``param``: "my" only a person, "me" only where the words send it there."""
    if piece.kind == "mine" and param.kind != "person":
        return False
    return piece.kind != "self" or piece.prep in ("to", "by", "with") or (piece.prep == "for" and creates) or (
        creates and s.entry.action.is_write and _after_lead(piece, s.words))


def _take_people(s: _Extracting) -> None:
    """People by name, "me", "my", "him": many for a list of people, the first fitting one otherwise."""
    people = [p for p in s.pieces if p.kind in ("person", "self", "mine") and id(p) not in s.used]
    creates = not any(p.kind == "record" and p.required for p in s.params)
    for param in s.of_kind("person", "recipient"):
        if param.name in s.args:
            continue
        chosen = [p for p in people if _may_be(p, param, creates, s)]
        if param.many:
            _take_everyone(s, param, [p for p in chosen if p.kind == "person"] or chosen)
        elif chosen:
            _take_someone(s, param, chosen)


def _take_everyone(s: _Extracting, param: Param, picked: list[Piece]) -> None:
    if picked:
        s.args[param.name] = list(dict.fromkeys(p.value for p in picked))
        s.mentions[param.name] = ", ".join(p.text for p in picked)
        s.used.update(id(p) for p in picked)


def _take_someone(s: _Extracting, param: Param, chosen: list[Piece]) -> None:
    """A named person first; for a read, "my" first ("my deals"); "me" as a recipient only when sent to me."""
    others = [p for p in chosen if p.kind == "person"]
    if s.entry.action.kind == "read" and any(p.kind == "mine" for p in chosen):
        others = [p for p in chosen if p.kind == "mine"] + others
    piece = (others or chosen)[0]
    if not (piece.kind == "self" and piece.prep not in ("to", "for") and param.kind == "recipient"):
        s.take(param, piece, piece.value)


def _take_dates(s: _Extracting) -> None:
    """Dates and times (slots.py: which date goes to which parameter)."""
    date_params = s.of_kind("date", "datetime", "time")
    if not any(re.search(r"after|before|from|until|start|end", p.words) for p in date_params):
        for piece in s.pieces:  # "due by Friday": one date, not a range, when nothing takes ranges
            if piece.kind == "range" and piece.value[0] is None and piece.value[1] is not None:
                piece.kind, piece.value = "date", piece.value[1]
    # a time several people keep (a meeting's start) is never a default hour: "tomorrow" alone asks what time
    shared = not any(p.kind == "person" and p.many for p in s.params)
    if not s.free("moment"):
        slots.assign_dates(s.text, s.unused(), date_params, s.args, s.take, s.context.now, default_hour=shared)
        unset = [p for p in date_params if p.kind == "datetime" and p.name not in s.args]
        for piece in [p for p in s.unused() if p.kind == "date"][:len(unset)]:
            s.used.add(id(piece))  # the day is said for it (it counts as said, it is no title): only the hour is asked
            s.bonus += s.weights.missing
        return
    # "at the earliest time I'm free tomorrow": tomorrow is the day, but no hour stands in for the time
    days = [p for p in date_params if p.kind == "date"]
    slots.assign_dates(s.text, s.unused(), days, s.args, s.take, s.context.now)
    timed = [p for p in s.unused() if p.kind in ("datetime", "time")]
    slots.assign_dates(s.text, timed, [p for p in date_params if p not in days], s.args, s.take, s.context.now)


def _take_amounts(s: _Extracting) -> None:
    """Counts, money, durations and emails."""
    slots.assign_counts(s.text, s.unused(), s.params, s.args, s.take)
    for kind, param_kinds in (("money", ("money", "number")), ("duration", ("duration",)),
                              ("email", ("email", "person"))):
        for piece in s.free(kind):
            target = next((p for p in s.of_kind(*param_kinds) if p.name not in s.args), None)
            if target is None:
                continue
            s.take(target, piece, [piece.value] if target.kind == "person" and target.many else piece.value)


def _take_quoted_names(s: _Extracting) -> None:
    """A quoted name ("called 'Q4 planning'") to the first free name parameter, whole."""
    for piece in s.free("title"):
        target = next((p for p in s.of_kind("name") if p.name not in s.args), None)
        if target is None:
            break
        s.take(target, piece, [piece.value] if target.many else piece.value)


def _take_free_text(s: _Extracting) -> None:
    """Free text: the first text parameter that holds a message gets it."""
    s.text_params = [p for p in s.of_kind("text") if p.name not in s.args]
    for piece in s.free("text"):
        if not s.text_params:
            break
        target = _text_target(piece, s.text_params)
        s.take(target, piece, piece.value)
        s.text_params.remove(target)


def _text_target(piece: Piece, free: list[Param]) -> Param:
    """A labelled text goes to a parameter of its label ("titled" a title, "saying" a body); other text to the
    first required parameter that holds a message."""
    if piece.label == "title":
        titles = [p for p in free if _TITLE_PARAM.search(p.name)]
        if titles:
            return titles[0]
    if piece.label == "body":
        free = [p for p in free if not _TITLE_PARAM.search(p.name)] or free
    required = [p for p in free if p.required] or free
    return next((p for p in required if _BODY_PARAM.search(p.name)), required[0])


_INDEFINITE_BEFORE = re.compile(r"\b(?:an?|another|any|some)\s+$", re.I)


def _take_record_names(s: _Extracting) -> None:
    """What is left names records, places and things; a capitalised name may be a person by email."""
    s.chunks = _chunks(s.text, s.words, [p for p in s.pieces if id(p) in s.used or p.kind != "choice"], s.entry,
                       s.index)
    for piece in s.chunks:
        named = any(c.isupper() or c.isdigit() for c in piece.text) or piece.prep in _NAMING_PREPS
        if not named and _INDEFINITE_BEFORE.search(s.text[:piece.start]):
            continue  # "give a follow-up to bob": "a follow-up" is no record's name, whichever one exists
        target = next((p for p in s.of_kind("record") if p.name not in s.args and (p.required or named)), None)
        if target is None and named and piece.text[:1].isupper():
            target = next((p for p in s.of_kind("person", "recipient")
                           if p.name not in s.args and p.mode == "or-email"), None)
        if target is None:
            continue
        s.pieces.append(piece)
        s.take(target, piece, [piece.value] if target.many else piece.value)


def _take_addressed_text(s: _Extracting) -> None:
    """"email Priya Shah the renewal terms": the message follows the name."""
    wanting = [p for p in s.of_kind("text") if p.required and p.name not in s.args]
    wanting.sort(key=lambda p: not re.search(r"text|body|message|note|comment", p.name))
    person_params = s.of_kind("person", "recipient")
    for param in wanting[:1]:
        addressed = [c for c in s.chunks if id(c) in s.used
                     and any(s.mentions.get(q.name) == c.text for q in person_params)]
        if not addressed:
            continue
        start = addressed[-1].end
        label = next((p for p in s.pieces if p.kind == "label" and not s.text[start:p.start].strip()), None)
        rest = s.text[label.end if label else start:].strip(" ,:")  # past "saying", "titled"
        if len(rest.split()) >= 2:
            piece = Piece(len(s.text) - len(rest), len(s.text), "text", rest, rest)
            s.pieces.append(piece)
            s.take(param, piece, rest)


def _take_leftovers(s: _Extracting) -> None:
    """Names, places, counts and yes/no answers of generic catalogs (slots.py)."""
    leftover = [c for c in s.chunks if id(c) not in s.used]
    s.pieces.extend(leftover)  # counted as evidence when a slot takes them
    if not any(p.kind in ("name", "place", "bool") for p in s.params):
        return  # nothing here for slots to fill: the demo's catalogs take records, people and values
    own = frozenset(stem(w.lower()) for w in name_parts(s.entry.action.name))
    nouns = frozenset(t.stem for t in s.words if leftover and not t.lower.endswith("ing")
                      and s.index.matched(s.entry, t))
    covered = [(p.start, p.end) for p in s.pieces if p.kind != "chunk"]
    slots.assign_names(s.text, s.words, leftover, s.unused(), s.params, s.args, s.take, s.context, own, nouns,
                       covered)


def _take_references(s: _Extracting) -> None:
    """"it", "the first one": only where no name was given."""
    record_params = s.of_kind("record")
    for piece in s.free("reference"):
        types = _reference_types(piece.value, s.context)
        target = next((p for p in record_params if p.name not in s.args
                       and (types is None or types & {t.lower() for t in p.record.split("|")})), None)
        if target is None:
            if types is not None and record_params:
                s.bonus += s.weights.reference_misfits  # "close the first one" of tickets
            continue
        if types is not None:
            s.bonus += s.weights.reference_fits
        s.take(target, piece, piece.value)


def _note_earned(s: _Extracting) -> None:
    """The required arguments the message said, before defaults fill others."""
    s.earned = {p.name for p in s.params if p.required and p.name in s.args}


def _default_title(s: _Extracting) -> None:
    """A title from the message itself, when it says something beyond the verb."""
    content = any(p.name in s.args for p in s.of_kind("record")) or any(
        p.kind in ("relation", "date", "datetime", "chunk", "id") for p in s.taken()) or any(
        id(c) not in s.used for c in s.chunks)
    if not content:
        return
    for param in s.text_params:
        if param.required and param.name not in s.args and re.search(r"title|subject|summary", param.name):
            title = _clean_title(s.text, s.taken() + [p for p in s.pieces if p.kind == "label"], s.words)
            if title:
                s.args[param.name] = title
                s.mentions[param.name] = s.text


def _default_focus(s: _Extracting) -> None:
    """"set the amount to 290k" right after the Cobalt deal was shown: that deal."""
    for param in s.of_kind("record"):
        if param.required and param.name not in s.args and s.context.focus and s.args:
            kinds = {t.lower() for t in param.record.split("|")}
            if any(f.type.lower() in kinds for f in s.context.focus[:2]):
                s.args[param.name] = "@it"
                s.mentions[param.name] = "(the record in focus)"
                s.bonus += s.weights.focus_record


def _default_addressee(s: _Extracting) -> None:
    """"ping zoe ...", "assign SUP-17 to Zach": a name where a person goes, even one we do not know."""
    if any(p.required and p.name not in s.args for p in s.of_kind("record")):
        return
    for param in s.of_kind("person", "recipient"):
        if param.name in s.args:
            continue
        near = next((c for c in s.chunks if id(c) not in s.used and (
            c.prep in ("to", "for", "with") and c.text[:1].isupper() or _after_lead(c, s.words))), None)
        if near is None:
            continue
        if not _after_lead(near, s.words):
            s.take(param, near, [near.text] if param.many else near.text)
            continue
        value = near.text.split()[0]  # "tell carl the renewal is signed": the name, then what to tell him
        name = Piece(near.start, near.start + len(value), "chunk", value, value, near.prep)
        s.pieces.append(name)
        s.used.add(id(near))
        s.take(param, name, [value] if param.many else value)
        _take_text_after(s, name.end)


def _take_text_after(s: _Extracting, start: int) -> None:
    """The words after the person addressed, as the message a required text parameter still wants (its body
    first), when they are at least two words."""
    wanting = [p for p in s.of_kind("text") if p.required and p.name not in s.args]
    wanting.sort(key=lambda p: not _BODY_PARAM.search(p.name))
    rest = s.text[start:].strip(" ,:")
    if wanting and len(rest.split()) >= 2:
        piece = Piece(len(s.text) - len(rest), len(s.text), "text", rest, rest)
        s.pieces.append(piece)
        s.take(wanting[0], piece, rest)
        for param in s.of_kind("text"):  # a subject made from the words before the message was found gives way
            if param.name in s.args and s.mentions.get(param.name) == s.text and _TITLE_PARAM.search(param.name):
                del s.args[param.name], s.mentions[param.name]


def _default_subject(s: _Extracting) -> None:
    """An email with a body but no subject: its first words."""
    text_names = {q.name for q in s.of_kind("text")}
    for param in [p for p in s.of_kind("text") if p.required and p.name not in s.args
                  and re.search(r"title|subject|summary", p.name)]:
        body = next((v for k, v in s.args.items() if isinstance(v, str) and k in text_names), None)
        if body:
            s.args[param.name] = body if len(body) <= 60 else body[:57].rsplit(" ", 1)[0] + "..."
            s.mentions[param.name] = s.mentions.get(next(k for k, v in s.args.items() if v == body), body)


def _default_limit(s: _Extracting) -> None:
    """"the last message I sent": one; "the last 5 notes": five."""
    limit = next((p for p in s.params if p.name in ("limit", "count", "top") and p.kind == "number"
                  and p.name not in s.args), None)
    latest = re.search(r"\b(?:last|latest|most recent|newest)\s+(?:(\d+)\s+)?([a-z]+)", s.text, re.I)
    if limit is None or not latest:
        return
    n = int(latest.group(1)) if latest.group(1) else (1 if not latest.group(2).lower().endswith("s") else None)
    if n:
        s.args[limit.name] = n
        s.mentions[limit.name] = latest.group(0)
        s.bonus += s.weights.latest_limit


def _trim_text(s: _Extracting) -> None:
    """"exports in the tickets": the catalog's own noun is not the text; nor is the courtesy around the request
    ("..., please", the "?" of "could you ...?"), unless it is inside quotes."""
    text_names = {p.name for p in s.of_kind("text")}
    parts = name_parts(s.entry.action.name)
    things = {t.stem for t in tokens(" ".join([s.entry.action.description, *parts[:1], *parts[2:]]))[1:]}
    polite = bool(_POLITE_START.match(s.text)) and s.text.rstrip().endswith("?")
    for name, value in list(s.args.items()):
        if not (isinstance(value, str) and name in text_names):
            continue
        trimmed = re.sub(r"\s+(?:in|on|among|from)\s+(?:the\s+|my\s+|our\s+)?(\w+)$",
                         lambda m: "" if stem(m.group(1).lower()) in s.index.vocabulary else m.group(0), value)
        thing = _THING_FIRST.match(trimmed)  # "a task to call Grace": the task is what is made, its title the rest
        if thing and stem(thing.group("thing").lower()) in things and not re.search(
                re.escape(value) + r"[\"”'’]", s.text):
            trimmed = trimmed[thing.end():]
        if not re.search(re.escape(value) + r"[\"”'’]", s.text):
            trimmed = _COURTESY_END.sub("", trimmed)
            trimmed = trimmed.rstrip("?").rstrip() if polite and s.text.rstrip().endswith(value) else trimmed
        if trimmed and trimmed != value:
            s.args[name] = trimmed


_THING_FIRST = re.compile(r"^(?:an?|another)\s+(?:new\s+)?(?P<thing>[\w-]+)\s+(?:to|for|about|saying|:)\s*(?=\S)",
                          re.I)


def _named(param: Param, text: str) -> bool:
    return bool(re.search(rf"\b{re.escape(param.name.replace('_', ' '))}\b", text, re.I))


def _find_missing(s: _Extracting) -> None:
    """Required arguments without a value; a write whose value parameter is named without a value asks for it
    ("change the amount on the Brightwater deal"); a read that names a filter without a value asks about the
    record ("what stage is the Brightwater deal in?"), it does not filter by stage."""
    s.missing = [p for p in s.params if p.required and p.name not in s.args and p.default is None]
    moment = next(iter(s.free("moment")), None)
    if moment is not None and s.entry.action.is_write:  # a time to work out is asked for, never defaulted
        unsaid = [p for p in s.of_kind("datetime", "time") if p.name not in s.args]
        s.missing = unsaid[:1] + [p for p in s.missing if p not in unsaid[:1]]
        for param in unsaid[:1]:
            s.mentions[param.name] = moment.text
    if not s.entry.action.is_write:
        s.bonus -= s.weights.read_named_param * sum(
            1 for p in s.params if p.name not in s.args and p.kind not in ("record", "text") and _named(p, s.text))
    elif not s.missing:
        given = [p for p in s.params if p.name in s.args and p.kind not in ("record", "person", "recipient", "text")]
        named_only = [p for p in s.params if p.name not in s.args
                      and p.kind in ("money", "number", "date", "datetime") and _named(p, s.text)]
        if named_only and not given:
            s.missing = named_only[:1]


_PASSES = (
    _take_choices, _take_relations, _take_ids, _take_channels, _take_people, _take_dates, _take_amounts,
    _take_quoted_names, _take_free_text, _take_record_names, _take_addressed_text, _take_leftovers, _take_references,
    _note_earned, _default_title, _default_focus, _default_addressee, _default_subject, _default_limit, _trim_text,
    _find_missing,
)


def _score(s: _Extracting) -> Extraction:
    """How strongly the pieces taken fit: evidence per kind, less the words nothing explains ("pull up the orchid
    deal" leaves "orchid" unexplained by a search over all deals)."""
    w = s.weights
    taken = s.taken()
    evidence = s.bonus + sum(w.evidence.get(p.kind, 0.0) for p in taken) + w.earned * len(s.earned)
    spans = [(p.start, p.end) for p in taken if p.kind in ("text", "title")]
    spans += [(t.start, t.end) for t in s.words if t.text[:1].isupper() and t.start > 0 and any(
        p.start <= t.start < p.end for p in taken if p.kind == "chunk")]  # names are not verbs
    said = [(p.start, p.end) for p in taken] + [(p.start, p.end) for p in s.pieces if p.kind in (
        "self", "mine", "reference", "date", "datetime", "time", "range", "label", "moment")]
    meaningful = [t for t in s.words if t.lower not in STOP and t.lower not in _PREPS and t.lower not in DISCOURSE]
    unexplained = sum(1 for t in meaningful if not any(a <= t.start < b for a, b in said)
                      and not s.index.matched(s.entry, t))
    return Extraction(s.args, s.mentions, s.missing, evidence - w.unexplained * unexplained, free_text=spans,
                      unexplained=unexplained, explained=len(meaningful) - unexplained)


def extract(text: str, entry: Entry, index: CatalogIndex, context: Context, person: Person, *,
            weights: Weights = DEFAULT) -> Extraction:
    """The arguments ``text`` gives ``entry``'s parameters, and how well they fit: the passes in order."""
    things = _own_things(entry.action.name, entry.action.description)
    state = _Extracting(text, entry, index, context, weights, find_pieces(text, context, person, entry.params, things),
                        tokens(text))
    for step in _PASSES:
        step(state)
    return _score(state)
