"""Grounding: names in arguments become concrete records and people, deterministically.

A parameter marked ``x-record`` is looked up, in this order: in the
conversation's focus ("it" is the last record talked about, "the first one" the
first of the last list shown, "the Brightwater one" a record of the focus whose
name has that word), then in the systems holding that record type (exact id or
name, word prefixes, close spellings). ``x-person`` is a person of the
directory, or a relation of a record ("the account owner of the Orchid deal",
"its owner"); ``x-recipient`` is a ``#channel`` or a person. One match is used;
several plausible matches become a question listing them. No match is a question offering the nearest
readable records or people (``NEAREST``, at most ``OFFERED``); with nothing near it is an error. An unknown
recipient of an email is asked for by address; a customer contact where only people fit, asked who instead.
``find`` is the pipeline's search for one person (``sayso.visibility``): it
returns only records they may read, so a hidden record is not found, in the
same words as a missing one. Grounding never filters by what the person may
change: that is the policy's decision on the step.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rapidfuzz import fuzz

from .catalog import Action
from .connectors import Record
from .directory import Directory, Person
from .errors import UnknownRecord, UnknownUser
from .turn import Option

__all__ = ["Clarification", "Focus", "Grounded", "check_names", "ground", "in_focus"]

# Records scoring at least this are plausible; an exact id or name scores 100.
PLAUSIBLE = 85.0

RecordFinder = Callable[[str, str], list[Record]]


@dataclass
class Focus:
    """What a conversation has been about: records, most recent first, and the last list shown."""

    records: list[Record] = field(default_factory=list)
    last_list: list[Record] = field(default_factory=list)
    types: tuple[str, ...] = ()  # every record type the workspace's systems hold (for relations)


_RELATION = re.compile(r"^(?:the\s+)?(?P<rel>(?:account\s+)?owner|assignee|manager)\s+(?:of|on|for)\s+(?P<of>.+)$",
                       re.IGNORECASE)
_PRONOUNS = frozenset({"it", "this", "that", "this one", "that one"})
_NOISE = frozenset({"the", "a", "an", "one", "ones", "that", "this", "deal", "deals", "account", "ticket", "record"})


@dataclass
class Clarification:
    param: str
    question: str
    options: list[Option]
    about: str | None = None  # the one name of a list asked about: an answer replaces it alone


@dataclass
class Grounded:
    """Arguments with names replaced by ids, and what each name became."""

    args: dict[str, Any]
    records: dict[str, Record] = field(default_factory=dict)
    people: dict[str, list[Person]] = field(default_factory=dict)
    channels: dict[str, str] = field(default_factory=dict)
    question: Clarification | None = None
    notes: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {
            "records": {k: r.ref() for k, r in self.records.items()},
            "people": {k: [p.id for p in v] for k, v in self.people.items()},
            "channels": self.channels,
        }


def ground(action: Action, args: dict[str, Any], *, directory: Directory, find: RecordFinder,
           focus: Focus | None = None) -> Grounded:
    """Resolve every marked argument of ``args``; stops at the first question."""
    out = Grounded(dict(args))
    focus = focus or Focus()
    for param, types in action.marked("x-record").items():
        value = args.get(param)
        if value is None:
            continue
        candidates = _fresh(find, _in_focus(focus, str(types), str(value))) or _candidates(find, str(types),
                                                                                           str(value))
        if len(candidates) == 1:
            record = candidates[0]
            out.records[param] = record
            out.args[param] = record.id
            continue
        if not candidates:
            kinds = " or ".join(str(types).lower().split("|"))
            near = _nearest_records(find, str(types), str(value))
            if not near:
                raise UnknownRecord(f"no {kinds} matches {value!r}")
            out.question = Clarification(
                param, f"I could not find a {_kinds(str(types))} called {value!r}. Did you mean one of these?",
                [Option(label=_label(r), value=r.id) for r in near])
            return out
        out.question = Clarification(
            param,
            f"Which one do you mean by {value!r}?",
            [Option(label=_label(r), value=r.id) for r in candidates],
        )
        return out
    binds = action.marked("x-bind")
    for param, mode in action.marked("x-person").items():
        bind = str(binds.get(param, "id"))
        value = args.get(param)
        if value is None:
            continue
        values = value if isinstance(value, list) else [value]
        resolved: list[Any] = []
        people: list[Person] = []
        for item in values:
            text = str(item)
            if mode == "or-email" and "@" in text and not directory.find(text):
                resolved.append(text)
                continue
            related = _related_person(text, directory, find, focus)
            if related is not None:
                people.append(related)
                resolved.append(_bound(related, bind))
                continue
            if mode == "or-email" and not directory.find(text):
                contact = _contact_email(find, directory, text, param, out)  # "email Priya Shah": a CRM contact
                if contact is None:
                    return out
                resolved.append(contact)
                continue
            person = _person(directory, text, param, out, find)
            if person is None:
                return out
            people.append(person)
            resolved.append(_bound(person, bind))
        out.people[param] = people
        out.args[param] = resolved if isinstance(value, list) else resolved[0]
    for param in action.marked("x-recipient"):
        value = args.get(param)
        if value is None:
            continue
        text = str(value).strip()
        if text.startswith("#"):
            if text.lower() not in directory.channels:
                raise UnknownRecord(f"no channel {text!r}; channels: {', '.join(directory.channels)}")
            out.channels[param] = text.lower()
            out.args[param] = text.lower()
            continue
        person = _related_person(text, directory, find, focus) or _person(directory, text, param, out, find)
        if person is None:
            return out
        out.people[param] = [person]
        out.args[param] = _bound(person, str(binds.get(param, "id")))
    return out


def _kinds(types: str) -> str:
    """"deal, account or contact": the kinds of record a parameter may name, as a person says them."""
    kinds = types.lower().split("|")
    return kinds[0] if len(kinds) == 1 else f"{', '.join(kinds[:-1])} or {kinds[-1]}"


def _bound(person: Person, attribute: str) -> str:
    """What a person parameter carries to its system: the id, or the attribute it binds (``x-bind``: the
    email address a table stores); a person without that attribute is an error, never a blank."""
    value = str(getattr(person, attribute, "") or "")
    if not value:
        raise UnknownUser(f"{person.id} has no {attribute} in the directory")
    return value


def check_names(action: Action, args: dict[str, Any], *, directory: Directory, find: RecordFinder) -> None:
    """Say at once when a record or person named in ``args`` does not exist, before asking for anything
    else ("close the Zebra deal" should not first ask "won or lost?")."""
    for param, types in action.marked("x-record").items():
        value = args.get(param)
        if (isinstance(value, str) and not value.startswith("@") and not _candidates(find, str(types), value)
                and not _nearest_records(find, str(types), value)):
            raise UnknownRecord(f"no {' or '.join(str(types).lower().split('|'))} matches {value!r}")
    people = {**action.marked("x-person"), **action.marked("x-recipient")}
    for param, mode in people.items():
        values = args.get(param)
        for value in values if isinstance(values, list) else [values]:
            if not isinstance(value, str) or value.startswith(("@", "#")) or _RELATION.match(value) or "@" in value:
                continue
            if (not directory.find(value) and mode != "or-email" and not _nearest_people(directory, value)
                    and len(_candidates(find, "Contact", value)) != 1):
                raise UnknownUser(f"no person matches {value!r}")


def _fresh(find: RecordFinder, records: list[Record]) -> list[Record]:
    """The records as their system holds them now: the focus remembers which, never what they contain
    (a policy must see today's amount, a confirmation today's version)."""
    out: list[Record] = []
    for record in records:
        now = [r for r in find(record.type, record.id) if r.id == record.id and r.type == record.type]
        if not now:
            raise UnknownRecord(f"{record.id} no longer exists")
        out.append(now[0])
    return out


def in_focus(focus: Focus, types: str, text: str) -> list[Record]:
    """The records of ``types`` that ``text`` ("@it", "@2", "the SSO one") names in the conversation's focus."""
    return _in_focus(focus, types, text)


def _in_focus(focus: Focus, types: str, text: str) -> list[Record]:
    """"@it", "@2" and names of records the conversation already showed."""
    wanted = types.split("|")
    if text.strip().lower() in _PRONOUNS:  # "the owner of it": a relation's record said as a pronoun
        text = "@it"
    if text.startswith("@it:"):  # "that deal": the last deal talked about
        wanted = [t for t in wanted if t.lower() == text[4:].lower()] or wanted
        text = "@it"
    if text.startswith("@"):
        if text == "@it":
            found = [r for r in focus.records if r.type in wanted]
            listed = [r for r in focus.last_list if r.type in wanted]
            if not found and len(listed) == 1:  # "and the deal?": the one deal just shown or offered
                found = listed
            if not found:
                raise UnknownRecord(f"nothing in this conversation is a {' or '.join(wanted).lower()} to refer to")
            return found[:1]
        shown = [r for r in focus.last_list if r.type in wanted] or _linked(focus.last_list, wanted) \
            or [r for r in focus.records if r.type in wanted]
        if text == "@other":  # "the other one": the one of the last list not just acted on
            current = focus.records[0].ref() if focus.records else None
            others = [r for r in shown if r.ref() != current]
            if len(others) != 1:
                raise UnknownRecord("which one is 'the other one'? name it")
            return others
        n = int(text[1:]) if text[1:].lstrip("-").isdigit() else 0
        if not shown or n == 0 or abs(n) > len(shown):
            raise UnknownRecord(f"there is no item {text[1:]} in the last list shown")
        return [shown[n - 1 if n > 0 else n]]
    words = [w for w in re.findall(r"[^\W_]+", text.lower()) if w not in _NOISE]
    if not words:
        return []
    pool = focus.last_list + [r for r in focus.records if r not in focus.last_list]
    hits = [r for r in pool if r.type in wanted and all(
        any(part.startswith(w) for part in re.findall(r"[^\W_]+", " ".join(
            [r.id, r.title, str(r.attrs.get("account", ""))]).lower())) for w in words)]
    return _unique(hits) if len(_unique(hits)) == 1 else []


def _linked(shown: list[Record], wanted: list[str]) -> list[Record]:
    """The records a list of other things points at, in its order: "the first one" after a list of invoices,
    for an account, is the first invoice's account (the system is asked for it afresh, by that id)."""
    out: list[Record] = []
    for record in shown:
        linked = next(((t, record.attrs[t.lower()]) for t in wanted if isinstance(record.attrs.get(t.lower()), str)),
                      None)
        if linked is None:
            return []
        out.append(Record(type=linked[0], id=str(linked[1]), title=str(linked[1])))
    return out


def _spelt_out(text: str, *names: str) -> bool:
    """Whether every word said is a word of the name, or starts one ("Tom", "priya shah", "@devi"): said, not
    guessed. "Tom Beckett" for Tom Becker is a near spelling, a guess of whom was meant."""
    if text.strip().lstrip("@").lower() in (name.lower() for name in names):
        return True  # an id or an address, said whole
    said = _WORDS.findall(text.lower())
    known = [w for name in names for w in _WORDS.findall(name.lower())]
    return bool(said) and all(any(k == w or (len(w) >= 3 and k.startswith(w)) for k in known) for w in said)


def _did_you_mean(param: str, text: str, what: str, name: str, label: str, value: str) -> Clarification:
    """A person or contact matched only by a near spelling: who is meant is asked, never picked (a message
    to the wrong person cannot be taken back)."""
    return Clarification(param, f"I could not find a {what} called {text!r}. Did you mean {name}?",
                         [Option(label=label, value=value)], about=text)


def _contact_email(find: RecordFinder, directory: Directory, text: str, param: str, out: Grounded) -> str | None:
    found = [r for r in _candidates(find, "Contact", text) if r.attrs.get("email")]
    if len(found) == 1 and not _spelt_out(text, found[0].title, found[0].id, str(found[0].attrs["email"])):
        out.question = _did_you_mean(param, text, "person or contact", found[0].title, _label(found[0]),
                                     str(found[0].attrs["email"]))
        return None
    if len(found) == 1:
        return str(found[0].attrs["email"])
    if not found:  # a customer contact sayso does not know: their address is asked for, never guessed
        near = _nearest_people(directory, text)
        out.question = Clarification(
            param, f"I could not find a person or contact called {text!r}. " + (
                "Did you mean one of these, or what is their email address?" if near
                else "What is their email address?"),
            [Option(label=f"{p.name} ({p.role})", value=p.id) for p in near], about=text)
        return None
    out.question = Clarification(param, f"Which contact do you mean by {text!r}?",
                                 [Option(label=_label(r), value=str(r.attrs["email"])) for r in found])
    return None


def _related_person(text: str, directory: Directory, find: RecordFinder, focus: Focus) -> Person | None:
    """"the account owner of the Orchid deal", "owner of it": a person attribute of a record."""
    match = _RELATION.match(text.strip())
    if match is None:
        return None
    path = match.group("rel").lower().split()
    of = match.group("of").strip()
    types = "|".join(focus.types or ("Deal", "Account", "Ticket"))
    records = _fresh(find, _in_focus(focus, types, of)) or _candidates(find, types, of)
    if len(records) != 1:
        if not records:
            raise UnknownRecord(f"no record matches {of!r}")
        raise UnknownRecord(f"{of!r} matches several records ({', '.join(r.id for r in records)}); name one")
    record = records[0]
    for step in path[:-1]:  # "account owner": the deal's account, then its owner
        linked = record.attrs.get(step)
        found = _candidates(find, step.capitalize(), str(linked)) if linked else []
        if len(found) == 1:
            record = found[0]
    value = record.attrs.get(path[-1])
    if not isinstance(value, str) or value not in directory:
        raise UnknownUser(f"{record.id} has no {' '.join(path)} in the directory")
    return directory.get(value)


def _person(directory: Directory, text: str, param: str, out: Grounded,
            find: RecordFinder | None = None) -> Person | None:
    found = directory.find(text)
    if len(found) == 1 and not _spelt_out(text, found[0].name, found[0].id, found[0].email,
                                          found[0].email.split("@")[0]):
        out.question = _did_you_mean(param, text, "person", found[0].name, f"{found[0].name} ({found[0].role})",
                                     found[0].id)
        return None
    if len(found) == 1:
        return found[0]
    if not found:
        near = _nearest_people(directory, text)
        contacts = [] if near or find is None else _candidates(find, "Contact", text)
        if len(contacts) == 1:  # "a meeting with Tom Becker", a customer contact: said, and asked who instead
            out.question = Clarification(
                param, f"{_label(contacts[0])} is a contact, not a person in the directory, so they cannot be "
                       f"the {param.replace('_', ' ')} here; nothing was changed. Who should it be instead?", [],
                about=text)
            return None
        if not near:
            raise UnknownUser(f"no person matches {text!r}")
        out.question = Clarification(param, f"I could not find a person called {text!r}. Did you mean one of these?",
                                     [Option(label=f"{p.name} ({p.role})", value=p.id) for p in near], about=text)
        return None
    out.question = Clarification(
        param, f"Which person do you mean by {text!r}?", [Option(label=f"{p.name} ({p.role})", value=p.id)
                                                        for p in found]
    )
    return None


def _candidates(find: RecordFinder, types: str, text: str) -> list[Record]:
    found: list[Record] = []
    kinds = types.split("|")
    named = [t for t in kinds if re.search(rf"\b{t.lower()}s?\b", text.lower())]
    for record_type in named if len(named) == 1 else kinds:  # "the Orchid deal" is a deal, not the account
        found.extend(find(record_type, text))
    exact = [r for r in found if (r.score or 0) >= 100]
    if exact:
        return _unique(exact)
    plausible = _unique(sorted((r for r in found if (r.score or 0) >= PLAUSIBLE), key=lambda r: -(r.score or 0)))
    return plausible or _misspelt(find, named if len(named) == 1 else kinds, text)


TYPO = 80.0
"""How close a misspelt word must be to a word of a record's name ("orchd" for "Orchid": 91)."""
_NEAR = 10.0  # a second record this close to the best is a question, never a pick
_WORDS = re.compile(r"[a-z0-9]{3,}", re.I)


def _misspelt(find: RecordFinder, kinds: list[str], text: str) -> list[Record]:
    """Records whose name a misspelt mention means ("the orchd deal"): found by each word's first three
    letters and its first letter, scored word against word; the best alone when no other comes near, else
    all that come near (a question). Ids are exact ("SUP-99" is no typo of SUP-17). Only what ``find``
    returns (records the person may read) is ever considered."""
    scored = [(score, r) for score, r in _scored(find, kinds, text) if score >= TYPO]
    if not scored:
        return []
    return [r for score, r in scored if score >= scored[0][0] - _NEAR]


NEAREST = 60.0
"""How close a name must come to be offered when nothing matches it ("Did you mean …?"); below, nothing is."""
OFFERED = 3  # at most this many nearest records or people are offered


def _nearest_records(find: RecordFinder, types: str, text: str) -> list[Record]:
    """The readable records nearest a name that matches none, best first and bounded (options of a question,
    never a pick). ``find`` is the person's: a record they may not read is never offered, so a hidden
    record reads exactly like a missing one."""
    kinds = types.split("|")
    named = [t for t in kinds if re.search(rf"\b{t.lower()}s?\b", text.lower())]
    return [r for score, r in _scored(find, named if len(named) == 1 else kinds, text) if score >= NEAREST][:OFFERED]


def _nearest_people(directory: Directory, text: str) -> list[Person]:
    """The people of the directory nearest a name that matches none ("Tom Beker" for Tom Becker), bounded."""
    needle = text.strip().lstrip("@").lower()
    words = _WORDS.findall(needle)
    if not words or "@" in needle:
        return []
    scored: list[tuple[float, Person]] = []
    for person in directory:
        names = [n.lower() for n in _WORDS.findall(f"{person.name} {person.id}")]
        score = min(max((fuzz.ratio(w, n) for n in names), default=0.0) for w in words) if names else 0.0
        if score >= NEAREST:
            scored.append((score, person))
    scored.sort(key=lambda x: -x[0])
    return [p for _, p in scored[:OFFERED]]


def _scored(find: RecordFinder, kinds: list[str], text: str) -> list[tuple[float, Record]]:
    """Readable records of ``kinds`` sharing a first letter with a word of ``text``, each scored by its
    worst-matched word (0-100), best first. Ids are never scored: "SUP-99" is near no record."""
    if re.search(r"\d", text):
        return []
    words = [w.lower() for w in _WORDS.findall(text) if w.lower().rstrip("s") not in {k.lower() for k in kinds}
             and w.lower() not in ("the", "and", "for", "one")]
    if not words:
        return []
    pool: list[Record] = []
    for record_type in kinds:
        for probe in {piece for word in words for piece in (word[:3], word[:1])}:  # a slip may spoil three
            pool.extend(find(record_type, probe))
    scored: list[tuple[float, Record]] = []
    for record in _unique(pool):
        names = [n.lower() for n in _WORDS.findall(f"{record.title} {record.id}")]
        if names:
            scored.append((min(max(fuzz.ratio(w, n) for n in names) for w in words), record))
    scored.sort(key=lambda x: -x[0])
    return scored


def _unique(records: list[Record]) -> list[Record]:
    seen: dict[str, Record] = {}
    for record in records:
        seen.setdefault(record.ref(), record)
    return list(seen.values())


def _label(record: Record) -> str:
    """"D-102 Kestrel Aerospace Platform (deal, Kestrel Aerospace, alice)": enough to tell them apart."""
    bits = [record.type.lower()] + [str(record.attrs[k]) for k in ("account", "industry", "owner") if k in record.attrs]
    head = record.id if record.title in ("", record.id) else f"{record.id} {record.title}"
    return f"{head} ({', '.join(bits)})"
