"""Words: tokens, a light stemmer and the synonyms the offline interpreter knows.

Everything here is generic English, not tied to any catalog: the catalog's own
descriptions, examples and parameters supply the domain.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["STOP", "SYNONYMS", "SYNONYMS_WORDS", "Token", "concepts", "stem", "tokens"]

_WORD = re.compile(r"#?[\w][\w'’-]*", re.UNICODE)


class Token:
    """A word of the message with where it is, its lowercase form and its stem."""

    __slots__ = ("end", "lower", "start", "stem", "text")

    def __init__(self, text: str, start: int) -> None:
        self.text = text
        self.start = start
        self.end = start + len(text)
        self.lower = text.lower().replace("’", "'")
        self.stem = stem(self.lower)

    def __repr__(self) -> str:
        return f"Token({self.text!r}@{self.start})"


def tokens(text: str) -> list[Token]:
    """The words of ``text`` (a fresh list; a turn asks for the same text's words several times, so the words
    of recent texts are kept: a ``Token`` is not changed once made)."""
    return list(_tokens(text))


@lru_cache(maxsize=4096)
def _tokens(text: str) -> tuple[Token, ...]:
    return tuple(Token(m.group().rstrip("'’-"), m.start()) for m in _WORD.finditer(text) if m.group().strip("'’-"))


# Little words that carry no meaning for ranking.
STOP = frozenset(
    """a an the of to for in on at by with from into onto about as and or but if then so than that this these those
    is are was were be been being am do does did doing have has had having can could would should will shall may
    might must i me my mine myself we us our you your yours it its it's he him his she her they them their there
    here what which who whom whose when where why how please pls plz kindly just also too very really some any all
    each every one ones thing things want wanted like would'd need needs i'd i'm i'll let's hey hi ok okay
    up out over under again now then instead back still already anyway actually currently right whole across
    everything anything something nothing stuff far yet too again what's who's where's how's it's that's there's
    i've we've don't doesn't didn't isn't aren't can't won't we're they're you're""".split()
)

# Words of conversation rather than of content: never the value of a name or a place ("yeah", "help",
# "available"), whatever parameter is free. Kept apart from STOP, which ranking reads.
DISCOURSE = frozenset(
    """yes yeah yep yup no nope nah ok okay sure alright right fine good great cool awesome perfect nice excellent
    wonderful lovely sounds sound thanks thank cheers please hello hi hey hmm um uh well oh ah wow indeed exactly
    help helpful assist assistance available availability recommend recommendation recommendations suggest
    suggestion interested interesting fun favorite favourite prefer preference rather maybe perhaps possible
    possibly probably definitely certainly specifically particular particularly especially instead else another other
    others different more less same similar nearby somewhere anywhere everywhere someplace elsewhere there here
    today tonight tomorrow now later soon then again once time times day days week weeks something anything
    everything nothing someone anyone somebody anybody thing things stuff kind sort type lot lots bit little much
    many few several enough sorry mind mood idea plan plans trip option options choice choices one ones way
    find search look looking show tell give get got book reserve make try check know go going went come coming
    want wanted wants need needs needed like likes liked love loves would could should can will let see hear
    think thought wish hope guess say said going gonna wanna looking searching finding also too either neither
    yet still already just only even really very quite pretty so such area vicinity neighborhood neighbourhood
    town city place places location spot eat dine visit stay watch hear listen play online cab taxi ride new old
    latest recent popular famous best top own home work office mood""".split()
)

_SUFFIXES = ("ations", "ation", "ings", "ing", "ied", "ies", "ed", "es", "s", "ly")


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A light suffix stripper: enough to meet "closing", "closes", "closed" at "clos"."""
    word = word.lower().strip("#'’")
    if len(word) <= 3 or not word.isalpha():
        return word
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= (5 if suffix == "ly" else 3):
            base = word[: -len(suffix)]
            if suffix == "es" and not re.search(r"(?:s|x|z|ch|sh)$", base):
                base += "e"  # "games" and "game", "notes" and "note" meet; "boxes", "matches" lose "es"
            if suffix in ("ied", "ies"):
                base += "i"  # "movies" and "movie", "parties" and "party" meet at "movi", "parti"
            if len(base) > 3 and base[-1] == base[-2] and base[-1] not in "aeiouls":
                base = base[:-1]  # "stopped" -> "stop"
            return _tail(base)
    return _tail(word)


def _tail(base: str) -> str:
    if len(base) > 4 and base.endswith("y") and base[-2] not in "aeiou":
        return base[:-1] + "i"
    return base.rstrip("e") if len(base) > 4 else base


# Common synonyms, by concept. A word's stem maps to every concept it belongs to;
# a catalog text and a message meet when they share a concept.
_GROUPS: dict[str, str] = {
    "find": "find search look list show display which what view see get fetch pull lookup browse check summarise "
            "summarize summary describe details detail read",
    "change": "change update set move bump advance push modify edit adjust switch shift progress",
    # Changing a level or a date in other words: "lower SUP-17 to low", "postpone it to Friday".
    "raise_lower": "change lower reduce decrease increase downgrade upgrade escalate postpone delay",
    "close": "close won lost win lose closed",
    "create": "create add open new make start log file raise",
    "task": "task follow-up followup follow todo to-do ticket action item chore",
    "send": "send message tell ping notify inform let know dm post text write chat shout ask sent told pinged messaged",
    "remind": "remind reminder alert nudge",
    "meeting": "meeting meet schedule sync call appointment invite book",
    "email": "email e-mail mail",
    "note": "note jot record",
    "assign": "assign reassign assignee give transfer hand handover own",
    "delete": "delete remove erase drop destroy purge wipe",
    "comment": "comment reply respond annotate",
    "related": "related linked link connected attached associated regarding",
    "credit": "credit refund compensate",
    "invoice": "invoice bill billing",
    "deal": "deal opportunity oppty opp",
    "account": "account customer client company",
    "reserve": "reserve reservation book booking buy purchase order",
    "buy": "buy purchase book order",
    "rent": "rent rental hire",
    "play": "play listen stream",
    "weather": "weather forecast temperature rain sunny windy humid",
    # Everyday nouns for the things services deal in.
    "restaurant": "restaurant diner eatery bistro cafe food eat dine dinner lunch breakfast brunch meal cuisine",
    "movie": "movie film flick cinema",
    "taxi": "taxi cab ride uber lyft rideshare",
    "song": "song music track tune album",
    "hotel": "hotel accommodation lodging motel inn hostel",
    "apartment": "apartment flat home house property condo residence",
    "attraction": "attraction sights sightseeing landmark museum activities activity tourist",
    "event": "event concert show game match gig festival performance",
    "flight": "flight fly plane airline airfare",
    "bus": "bus coach",
    "car": "car vehicle automobile",
    "therapist": "therapist counselor psychologist psychiatrist doctor",
    "alarm": "alarm wake",
    "money": "money cash fund",
    "balance": "balance",
    "transfer": "transfer send wire",
}

SYNONYMS_WORDS = frozenset(w for words in _GROUPS.values() for w in words.split() if w.isalpha() and len(w) >= 4)
SYNONYMS: dict[str, frozenset[str]] = {}
for _concept, _words in _GROUPS.items():
    for _word in _words.split():
        _key = stem(_word)
        SYNONYMS[_key] = SYNONYMS.get(_key, frozenset()) | {_concept}


def concepts(word_stem: str) -> frozenset[str]:
    return SYNONYMS.get(word_stem, frozenset())
