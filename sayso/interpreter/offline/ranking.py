"""Action ranking: which catalog actions a message is about, from the catalog's own text.

Each action is indexed once by the words of its name, description, examples
(proper names left out) and parameters, each word also under the concepts it
belongs to (``words.SYNONYMS``), weighted by where it appears and by how rare
it is across the catalog (idf). Scoring a message walks an inverted index, so a
2,000-action catalog costs about as much as the words of the message.
"""

from __future__ import annotations

import math
import re
import weakref
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache

from rapidfuzz import fuzz, process

from ...catalog import Action, Catalog
from .schema import Param, params_of
from .words import STOP, SYNONYMS_WORDS, Token, concepts, stem, tokens

__all__ = ["CatalogIndex", "Entry", "index_for"]

_ID = re.compile(r"^([a-z]{1,8})-\d+$")
_FIELD = {"name": 2.5, "object": 3.5, "description": 2.0, "example": 1.2, "param": 0.8}
_CONCEPT = 0.8  # a synonym counts a little less than the word itself
# Nouns whose number matters: one record ("the deal") or a list ("deals").
_NOUNS = frozenset(stem(w) for w in "deal account contact ticket invoice task note message event record reminder "
                   "meeting email opportunity customer".split())


@dataclass
class Entry:
    action: Action
    params: list[Param]
    terms: dict[str, float]


@lru_cache(maxsize=16384)
def _terms(word: str, numbers: bool = True) -> tuple[str, ...]:
    """The index terms of one lowercase word: its stem, an id's prefix, and its concepts (a word's terms are
    the same in every message, and a turn asks for them dozens of times: kept once worked out)."""
    return tuple(_terms_of(word, numbers))


def _terms_of(word: str, numbers: bool) -> list[str]:
    match = _ID.match(word)
    if match:
        return [match.group(1)]
    if word.startswith("#"):
        return ["#channel"]  # "#deal-desk" is where a message goes, not what it is about
    if "-" in word.strip("-"):  # "ticket-wise", "follow-up": each part too (their number means nothing)
        parts = [p for p in word.split("-") if p]
        joined = [t for t in _terms(word.replace("-", ""), False)]
        return list(dict.fromkeys(joined + [t for p in parts for t in _terms(p, False)]))
    if word in STOP or not any(c.isalpha() for c in word):
        return []
    base = stem(word)
    terms = [base, *(f"~{c}" for c in concepts(base))]
    if base in _NOUNS and numbers:  # "the deal" and "deals" share a stem; the number tells one record from a list
        plural = len(word) > 3 and word.endswith("s") and not word.endswith("ss") and base != word
        number = "pl" if plural else "sg"
        terms += [f"{base}#{number}", *(f"~{c}#{number}" for c in concepts(base))]
    return terms


def query_terms(token: Token, index: CatalogIndex | None = None) -> list[tuple[str, float]]:
    """A message word's terms with their weight (concepts count a little less). With ``index``, a word the
    catalog does not know is read as the catalog word it is a typo of ("moev" -> "move")."""
    terms = [(t, _CONCEPT if t.startswith("~") else 0.6 if "#" in t else 1.0) for t in _terms(token.lower)]
    if index is not None and terms and not any(t in index.postings for t, _ in terms) and len(token.lower) >= 4 \
            and token.lower.isalpha() and not token.text[:1].isupper():
        near = index.near(token.lower)
        if near is not None:
            terms = [(t, w * 0.8) for t, w in ((t, _CONCEPT if t.startswith("~") else 1.0) for t in _terms(near))]
    return terms


def _add(terms: dict[str, float], text: str, where: str, names: bool = True, numbers: bool = True) -> None:
    for token in tokens(text):
        if not names and token.text[:1].isupper() and token.start > 0 and not _ID.match(token.lower):
            continue  # "Orchid" in an example is a record, not what the action is about
        for term in _terms(token.lower, numbers):
            weight = _FIELD[where] * (_CONCEPT if term.startswith("~") else 0.6 if "#" in term else 1.0)
            terms[term] = max(terms.get(term, 0.0), weight)


class CatalogIndex:
    def __init__(self, catalog: Catalog) -> None:
        self.entries, postings, core = _entries(catalog)
        self.choices = _choices(self.entries)
        self.record_types = frozenset(t.lower() for e in self.entries for p in e.params
                                      for t in p.record.split("|") if t)
        self.core_vocabulary = frozenset(core)
        self.id_prefixes = _id_prefixes(self.entries)
        self.vocabulary = frozenset(t for t in postings if "#" not in t and not t.startswith("~"))
        n = max(len(self.entries), 1)
        # smoothed, so a word every action shares still counts in a catalog of one or two actions
        self.idf = {term: math.log(1 + n / len(hits)) + 0.5 for term, hits in postings.items()}
        self.postings = dict(postings)
        self.by_name = {e.action.name: e for e in self.entries}
        # Verbs a request may start with: the first word of each description and example.
        self.verbs = frozenset(first[0].stem for e in self.entries for text in [e.action.description,
                                                                               *e.action.examples]
                               if (first := tokens(text)[:1]))
        self._words: list[str] | None = None

    def score(self, words: list[Token]) -> dict[int, float]:
        """Lexical score per action index (only actions sharing a term with the message)."""
        totals: dict[int, float] = defaultdict(float)
        for token in words:
            best: dict[int, float] = {}
            terms = self._weighted(token)
            for term, weight in terms:
                hits = self.postings.get(term)
                if not hits:
                    continue
                idf = self.idf[term]
                if "#" in term:  # grammatical number: on top of the word's own match
                    for i, w in hits.items():
                        totals[i] += w * weight * idf
                    continue
                for i, w in hits.items():
                    value = w * weight * idf
                    if value > best.get(i, 0.0):
                        best[i] = value
            for i, value in best.items():
                totals[i] += value
            for term, _ in terms:
                if "#" in term:  # "the deal": actions only about lists of deals fit less, and the other way
                    other = term[:-3] + ("#pl" if term.endswith("#sg") else "#sg")
                    for i in self.postings.get(other, {}):
                        if term not in self.entries[i].terms:
                            totals[i] -= self.idf.get(other, 1.0) * (0.5 if term.startswith("~") else 1.0)
        return totals

    def _weighted(self, token: Token) -> list[tuple[str, float]]:
        """A message word's terms and weights, a capitalized word inside a sentence counting less: "Meridian
        Credit Union" is a name, not a request for credit."""
        factor = 0.4 if token.text[:1].isupper() and token.start > 0 else 1.0
        return [(term, weight * factor) for term, weight in query_terms(token, self)]

    def near(self, word: str) -> str | None:
        """The catalog word ``word`` is most likely a typo of (a close spelling of one it knows)."""
        if self._words is None:
            self._words = sorted({t.lower for e in self.entries for t in tokens(
                " ".join([e.action.description, *e.action.examples, *(p.words for p in e.params)]))
                if t.lower.isalpha() and len(t.lower) >= 4} | set(SYNONYMS_WORDS))
        hit = process.extractOne(word, self._words, scorer=fuzz.ratio, score_cutoff=80)
        return str(hit[0]) if hit else None

    def by_choice(self, text: str) -> list[int]:
        """Actions with an enum parameter whose value the message names ("in prospecting")."""
        lowered = f" {text.lower()} "
        return [i for value, hits in self.choices.items() if f" {value} " in lowered or f" {value}?" in lowered
                for i in hits]

    def score_entry(self, entry: Entry, words: list[Token]) -> float:
        """The lexical score of one action over some words (e.g. all but the free text it takes)."""
        total = 0.0
        for token in words:
            best = 0.0
            for term, weight in self._weighted(token):
                w = entry.terms.get(term)
                if w is None:
                    continue
                value = w * weight * self.idf[term]
                if "#" in term:
                    total += value
                elif value > best:
                    best = value
            total += best
        return total

    def matched(self, entry: Entry, token: Token) -> bool:
        """Whether a message word is one of the action's own words (so it is not an argument)."""
        return any(term in entry.terms for term, _ in query_terms(token))


_CACHE: weakref.WeakKeyDictionary[Catalog, tuple[int, CatalogIndex]] = weakref.WeakKeyDictionary()



def name_parts(name: str) -> list[str]:
    """An action's name as words: "crm.find_deals" and "Events_1.FindEvents" alike give system, verb, object
    (CamelCase is split; a version number like "_1" says nothing)."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name)
    return [part for part in re.split(r"[._\-]", spaced) if part and not part.isdigit()]


def _entries(catalog: Catalog) -> tuple[list[Entry], dict[str, dict[int, float]], set[str]]:
    """Each action's weighted terms, the postings (term -> action -> weight), and the terms of names,
    descriptions and examples (not of parameters alone)."""
    entries: list[Entry] = []
    core: set[str] = set()
    postings: dict[str, dict[int, float]] = defaultdict(dict)
    for i, action in enumerate(catalog):
        params = params_of(action)
        terms: dict[str, float] = {}
        parts = name_parts(action.name)
        _add(terms, parts[0], "name", numbers=False)  # the system: "tickets" says nothing of how many
        _add(terms, " ".join(parts[1:2]), "name")  # the verb: "find"
        # what it acts on weighs more: "deals"; only the head noun has a number ("EventTickets" is about tickets)
        _add(terms, " ".join(parts[2:-1]), "object", numbers=False)
        _add(terms, " ".join(parts[-1:] if len(parts) > 2 else []), "object")
        _add(terms, action.description, "description")
        for example in action.examples:
            _add(terms, example, "example", names=False)
        core.update(t for t in terms if "#" not in t)
        for param in params:
            _add(terms, param.words, "param")
        entries.append(Entry(action, params, terms))
        for term, weight in terms.items():
            postings[term][i] = weight
    return entries, postings, core


def _choices(entries: list[Entry]) -> dict[str, list[int]]:
    """Enum values (longer than three letters, not true/false) -> the actions that take them."""
    choices: dict[str, set[int]] = defaultdict(set)
    for i, entry in enumerate(entries):
        for param in entry.params:
            for value in param.enum:
                if len(value) > 3 and value.lower() not in ("true", "false"):
                    choices[value.lower().replace("_", " ")].add(i)
    return {k: sorted(v) for k, v in choices.items()}


def _id_prefixes(entries: list[Entry]) -> dict[str, frozenset[str]]:
    """"sup" -> {"ticket"}: ids the catalog shows, only where the kind of record is certain."""
    prefixes: dict[str, set[str]] = defaultdict(set)
    for entry in entries:
        for param in entry.params:
            if param.record and "|" not in param.record:
                for found in re.finditer(r"\b([A-Za-z]{1,8})-\d+\b", param.description):
                    prefixes[found.group(1).lower()].update(t.lower() for t in param.record.split("|"))
    return {k: frozenset(v) for k, v in prefixes.items()}


def index_for(catalog: Catalog) -> CatalogIndex:
    """The index of ``catalog``, built once (rebuilt when actions are added)."""
    cached = _CACHE.get(catalog)
    if cached is not None and cached[0] == len(catalog):
        return cached[1]
    index = CatalogIndex(catalog)
    _CACHE[catalog] = (len(catalog), index)
    return index
