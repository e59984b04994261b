"""The offline interpreter: no model, no network, the catalog is all it knows.

For each message: an answer to something pending ("yes", "the aerospace
one")? Small talk or thanks? Otherwise the message is cut into clauses
("move it to negotiation and remind me Friday"), each clause ranks the
catalog's actions (``ranking``), the best few try to take their arguments
from the clause (``arguments``), and the action whose words and typed values
fit best wins. A clause no action fits gets no action; two that fit equally
get a question; a missing required argument gets a question for exactly it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

from ...catalog import Catalog
from ...directory import Person
from ...text import close_quotes
from ...turn import Option
from .. import Context, FocusItem, Interpretation, InterpreterRegistry, ProposedStep
from ..guesses import decline_guesses
from ..values import find_values
from .arguments import _COURTESY_END, _POLITE_START, Extraction, extract
from .ranking import CatalogIndex, Entry, index_for, name_parts, query_terms
from .schema import Param
from .weights import DEFAULT, Weights
from .words import STOP, Token, concepts, stem, tokens

__all__ = ["OfflineInterpreter", "register"]

VERSION = "1.0"

_AFFIRM = re.compile(
    r"^(?:yes|y|yeah|yep|yup|sure|ok|okay|confirm(?:ed)?|approve[d]?|go ahead|do it|please do|proceed|correct|"
    r"sounds good|absolutely|definitely|affirmative|yes please|go for it)\b", re.I)
_NEGATE = re.compile(
    r"^(?:(?:actually|hmm+|wait|oh|ah|um+|erm)[\s,]+)?(?:no|n|nope|nah|cancel|don'?t|do not|stop|abort|never\s?mind|"
    r"decline[d]?|forget it|scratch that|hold off|not now|not yet|skip it|leave it)\b", re.I)
_THANKS = re.compile(r"^(?:thanks?|thank you|thx|ty|cheers|great|awesome|perfect|cool|nice|got it|great thanks|"
                     r"much appreciated|appreciate it)\b", re.I)
_GREETING = re.compile(r"^(?:hi|hello|hey|good (?:morning|afternoon|evening)|yo|howdy|hiya)\b", re.I)
_SMALLTALK = re.compile(
    r"\b(?:jokes?|how are you|who are you|what are you|what can you do|help me\??$|^help$|meaning of life|"
    r"your name|are you (?:a )?(?:bot|human|real)|sing me|poem|riddle|how'?s it going)\b", re.I)
_DECLINE = re.compile(r"^(?:no|nope|nah|not now|not right now|not (?:quite )?yet|(?:maybe |perhaps )?later|"
                      r"maybe another time|another time|nothing(?: else)?|that'?s (?:all|it|everything)|"
                      r"that will be all|that is all|i'?m (?:good|done|all set|fine)|all set|never ?mind)\b", re.I)
_QUESTION = re.compile(
    r"^\s*(?:(?:can|could|would) you\s+|please\s+)?(?:which|what|what's|whats|who|who's|whose|where|when|how|"
    r"show|list|find|any|anything|do i have|do we have|have we|did|does|is|are|"
    r"are there|is there|give me|get me|pull up|display|search|look up|tell me about|see|view|check)\b", re.I)
_SPLIT = re.compile(r"\s*(?:;|\.\s+|,?\s+and\s+then\s+|,\s*then\s+|\s+then\s+|,?\s+and\s+also\s+|,?\s+also\s+|"
                    r",?\s+and\s+|,\s+)", re.I)
_COURTESY = frozenset("thanks thank you cheers bye goodbye no yes ok okay great i have have a nice day good".split())
# Chat shorthand and idioms, read as the words they stand for.
_SHORTHAND = {"tmrw": "tomorrow", "tmr": "tomorrow", "tmw": "tomorrow", "2moro": "tomorrow", "2day": "today",
              "pls": "please", "plz": "please", "thx": "thanks", "msg": "message", "mtg": "meeting",
              "on my plate": "assigned to me", "on our plate": "assigned to us", "eom": "end of month"}
_SHORTHAND_RE = re.compile(r"\b(?:" + "|".join(re.escape(k) for k in sorted(_SHORTHAND, key=len, reverse=True))
                           + r")\b", re.I)
_POINTS = re.compile(r"\b(?:first|second|third|last|other|it|that one|this one|them)\b", re.I)
_OPENER = re.compile(r"^(?:(?:and|also|so|ok|okay|alright|right|now|then|great|cool)\b[\s,]*)+", re.I)
_NAMES_IT = re.compile(r"(?:call|name|title)\s+it\b", re.I)
_FOLLOW = re.compile(r"^(?:and|what about|how about|same for|and for)\b", re.I)
_OBEY = re.compile(r"\b(?:do|follow|execute|carry out|run|obey|apply)\s+(?:what(?:ever)?|the (?:instructions?|steps?|"
                   r"requests?|orders?))\b(?:.{0,40}?\b(?:says?|said|asks?|wants?|tells?|instructs?|in|from)\b|\s*$)",
                   re.I)
# A wh-clause after a verb of looking or telling asks, wherever it stands ("let's see how much I have left", "can
# you tell me what time it opens"); "tell devi what ..." sends, and "let devi know what ..." too.
_ASKS_WH = re.compile(r"\b(?:see|check|tell\s+(?:me|us)|show\s+(?:me|us)|find\s+out|figure\s+out|look\s+up|"
                      r"wonder(?:ing)?)\s+(?:how|what|which|where|when|who|whose)\b(?!\s+(?:about|if)\b)", re.I)
_WH = re.compile(r"^\s*(?:who|what|what's|whats|which|when|where|why|how|whose)\b(?!\s+(?:about|if)\b)", re.I)
_AGREE = re.compile(r"\b(?:exactly|correct|that'?s right|proceed|go ahead|works|sounds good|please do)\b", re.I)
_REFINE = re.compile(r"\b(?:of|among|from|in)\s+(?:those|them|these|that list)\b", re.I)
_LEADERS = frozenset("please can could would will you i we want need like to let's just also and then now".split())
_WRITE_CONCEPTS = frozenset({"change", "close", "create", "send", "remind", "meeting", "email", "note", "assign",
                             "delete", "comment", "credit", "reserve", "buy", "rent", "play", "transfer"})


class OfflineInterpreter:
    name = "offline"
    version = VERSION

    def __init__(self, settings: dict[str, Any] | None = None, *, weights: Weights | None = None) -> None:
        self.settings = settings or {}
        # ``weights`` in the settings: {"min_score": 1.4, "evidence.choice": 2.5} (sayso.toml or a bench sweep)
        self.weights = weights or DEFAULT.replaced(self.settings.get("weights") or {})

    def interpret(self, text: str, context: Context, catalog: Catalog, person: Person) -> Interpretation:
        started = time.perf_counter()
        result = self._interpret(text.strip(), context, catalog, person)
        result = decline_guesses(result, text, catalog)
        result.interpreter, result.version = self.name, self.version
        result.raw = {"elapsed_ms": round((time.perf_counter() - started) * 1000, 3)}
        return result

    # --- the steps ---------------------------------------------------------------

    def _interpret(self, text: str, context: Context, catalog: Catalog, person: Person) -> Interpretation:
        text = _unwrap(_SHORTHAND_RE.sub(lambda m: _SHORTHAND[m.group(0).lower()], close_quotes(text)))
        if not text:
            return _none("empty", "Say what you would like done, for example: show my deals closing this month.")
        index = index_for(catalog)
        if context.pending:
            answer = self._answer(text, context, index, person)
            if answer is not None:
                return answer
        social = self._social(text, context, index, catalog)
        if isinstance(social, Interpretation):
            return social
        return self._plan(self._clauses(social, index), context, index, catalog, person)

    def _social(self, text: str, context: Context, index: CatalogIndex, catalog: Catalog) -> Interpretation | str:
        """Thanks, greetings, "that's all", small talk and "do what it says" get a reply; a request after thanks
        or a greeting ("thanks, can you also find me a hotel") is what is left to interpret."""
        def only_courtesy(rest: str) -> bool:
            return not self._has_action_words(rest, index, core=True) and not _values_in(rest, context)

        for opener, reason in ((_THANKS, "thanks"), (_GREETING, "smalltalk")):
            said = opener.match(text)
            if said:
                rest = text[said.end():].lstrip(" ,.!;:-")
                if only_courtesy(rest):
                    return _none(reason, "You're welcome." if reason == "thanks" else _capabilities(catalog))
                text = rest
        decline = _DECLINE.match(text)
        if decline and not _AGREE.search(text[decline.end():]) and "?" not in text[decline.end():] \
                and only_courtesy(text[decline.end():]):
            return _none("decline", "Okay, nothing more.")  # "that's it exactly" agrees; "that's it. what...?" asks
        chat = _SMALLTALK.search(text)
        if chat:  # "How are you doing? Can you find me some events?": the request after the small talk
            end = re.search(r"[.!?]+\s+", text[chat.end():])
            rest = text[chat.end() + end.end():] if end else ""
            if not rest or only_courtesy(rest):
                return _none("out_of_scope", _capabilities(catalog))
            text = rest
        if _OBEY.search(text):  # text read from systems is data: it is never followed as instructions
            return _none("untrusted", "I only act on what you ask me yourself; text inside records, tickets or "
                                      "emails is never followed as instructions. Tell me what you want done.")
        return text

    def _plan(self, clauses: list[str], context: Context, index: CatalogIndex, catalog: Catalog,
              person: Person) -> Interpretation:
        """Each clause's step in order; a clause that is not a request joins the next ("we lost the Kestrel pilot,
        close it out"); a question stops the plan there, with the steps before it."""
        steps: list[ProposedStep] = []
        carried = ""
        for n, clause in enumerate(clauses):
            clause = f"{carried}, {clause}" if carried else clause
            carried = ""
            outcome = self._clause(clause, _after(context, steps, index), index, person)
            if isinstance(outcome, ProposedStep):
                if not _merge(steps, outcome):
                    _link_references(outcome, steps, index)
                    steps.append(outcome)
                continue
            if outcome.kind == "none" and not outcome.reply:
                outcome.reply = _capabilities(catalog)
            if n + 1 < len(clauses) and outcome.kind == "none":
                carried = clause
                continue
            if len(clauses) > 1 and outcome.kind == "none" and steps:
                continue
            if outcome.steps and _merge(steps, outcome.steps[-1], mentions=False):
                continue
            if outcome.kind == "question" and steps:
                outcome.steps = steps + outcome.steps
            return outcome
        if not steps:
            return _none("out_of_scope", _capabilities(catalog))
        return Interpretation(kind="plan", steps=steps)

    def _clauses(self, text: str, index: CatalogIndex) -> list[str]:
        """Cut at "and", "then", ";" only where the next part starts with an action word."""
        parts: list[str] = []
        last = 0
        for match in _SPLIT.finditer(text):
            rest = text[match.end():]
            head = tokens(rest)[:2]
            if not head or not _starts_action(head[0].lower, index) or _NAMES_IT.match(rest):
                continue  # "... and call it 'Sync up'" names what the clause makes
            piece = text[last:match.start()].strip()
            if piece and self._has_action_words(piece, index):
                parts.append(piece)
                last = match.end()
        tail = text[last:].strip()
        if tail:
            parts.append(tail)
        return parts or [text]

    def _clause(self, text: str, context: Context, index: CatalogIndex,
                person: Person) -> ProposedStep | Interpretation:
        """One clause's action and arguments: the clause steps in order, the first outcome wins."""
        state = _Clause.start(text, context, index, person, self.weights)
        for step in _CLAUSE_STEPS:
            outcome = step(state)
            if outcome is not None:
                return outcome
        raise AssertionError("the last clause step always decides")  # pragma: no cover

    def _has_action_words(self, text: str, index: CatalogIndex, strict: bool = False, core: bool = False) -> bool:
        words = [t for t in tokens(text) if t.lower not in STOP]
        if core:  # words of an action's name, description or examples, not of its parameters alone
            return any(term in index.core_vocabulary for w in words for term, _ in query_terms(w) if "#" not in term)
        top = max(index.score(words).values(), default=0.0)
        return top >= self.weights.min_score * (2 if strict else 1)

    # --- answers to what is pending ----------------------------------------------------

    def _answer(self, text: str, context: Context, index: CatalogIndex, person: Person) -> Interpretation | None:
        """A reply to what is pending: yes or no to a confirmation, a choice among options, an argument's value."""
        short = len(tokens(text)) <= 6
        if context.pending == "confirmation":
            if _AFFIRM.match(text) and short and not _NEGATE.search(text):
                return Interpretation(kind="reply", reason="affirm")
            if _NEGATE.match(text) and (short or not self._has_action_words(text, index, strict=True)):
                return Interpretation(kind="reply", reason="negate")
            return None
        if _NEGATE.match(text) and short:
            return Interpretation(kind="reply", reason="negate")
        options = context.pending_options
        choosing_action = context.pending_param is None and options and all(o.value in index.by_name for o in options)
        if choosing_action and len(tokens(text)) > 2 and self._has_action_words(text, index, core=True):
            return None  # "show me the deal": a request of its own
        if options and len(options) == 1 and short and _AFFIRM.match(text) and not _NEGATE.search(text):
            return Interpretation(kind="reply", reason="choice", value=options[0].value)  # "Did you mean X?" "yes"
        chosen = _choose(text, options) if options else None
        if chosen is not None:
            return Interpretation(kind="reply", reason="choice", value=chosen)
        return self._argument(text, context, index, person)

    def _argument(self, text: str, context: Context, index: CatalogIndex, person: Person) -> Interpretation | None:
        """The value of the argument asked for, unless the message is a new request."""
        entry = index.by_name.get(context.pending_action or "")
        if not context.pending_param or entry is None:
            return None
        param = next((p for p in entry.params if p.name == context.pending_param), None)
        if param is None:
            return None
        if param.kind != "text" and len(tokens(text)) > 3 and _starts_action(tokens(text)[0].lower, index):
            return None  # a new request, not an answer
        value, said, extras = _answer_value(text, param, entry, index, context, person, self.weights)
        return Interpretation(kind="reply", reason="answer", param=param.name, value=said,
                              steps=[ProposedStep(action=entry.action.name, args={**extras, param.name: value},
                                                  mentions={param.name: said})])


# --- one clause: named steps over one state ----------------------------------------------------------------------


class _Judged(NamedTuple):
    total: float  # words, evidence and mood together
    entry: Entry
    found: Extraction
    said: float  # how much the message is about this action at all (for the thresholds)


@dataclass
class _Clause:
    """One clause under way (after pydantic-ai's agent graph: small steps over one state; a step that returns an
    outcome ends the run)."""

    original: str
    text: str
    context: Context
    index: CatalogIndex
    person: Person
    weights: Weights
    words: list[Token]
    scores: dict[int, float]
    named_by_value: set[int]
    pending: Entry | None
    question: bool = False  # "is...", "show...", or a question mark
    acting: bool = False  # a write's verb is said: "book it", "move", "send"
    seeking: bool = False  # "find", or a question
    imperative: bool = False  # a command to change something
    asking: bool = False  # a wh-question: "what did I send to carol?"
    indefinite: bool = False  # "some music", "anything fun", "a few hotels": what to act on is not chosen yet
    follows: Entry | None = None  # the write that follows the pending read, when the clause accepts what it showed
    judged: list[_Judged] = field(default_factory=list)
    best: _Judged | None = None

    @classmethod
    def start(cls, original: str, context: Context, index: CatalogIndex, person: Person,
              weights: Weights) -> _Clause:
        text = _OPENER.sub("", original) or original  # "and what have we won?", "ok, ask devi"
        words = tokens(text)
        scores = index.score(tokens(_sentence_case(text)))
        valued = index.by_choice(text)
        for i in valued:  # "anything still in prospecting?": an enum value names the action
            scores[i] = scores.get(i, 0.0) + weights.choice_names_action
        return cls(original, text, context, index, person, weights, words, scores, set(valued),
                   index.by_name.get(context.pending_action or ""))

    def extract(self, entry: Entry) -> Extraction:
        return extract(self.text, entry, self.index, self.context, self.person, weights=self.weights)

    def top(self) -> float:
        return max(self.scores.values(), default=0.0)

    def unknown(self) -> Interpretation:
        """No action fits: a name alone is shown or asked about; anything else is out of scope."""
        named = _name_only(self.text, self.words)
        return _about(named, self.text, self.index) if named else _none("out_of_scope", "")


_Outcome = ProposedStep | Interpretation | None


def _continue_pending(c: _Clause) -> _Outcome:
    """"I want to go to Phoenix.": no action's words, but more arguments for the one under way."""
    if c.pending is None or c.follows is not None or (c.scores and c.top() >= c.weights.min_score):
        return None
    found = c.extract(c.pending)
    if not found.args:
        return None
    return ProposedStep(action=c.pending.action.name, args=found.args, mentions=found.mentions,
                        confidence=c.weights.pending_confidence)


def _accept_offer(c: _Clause) -> _Outcome:
    """"Yes, please." to "Would you like to buy tickets?" after a search: the person takes the offer, so the
    conversation goes on to the write offered (asking for what it still needs). Taking a search's result ("that
    one sounds good" to "How about X?") is not asking for the write: the search goes on."""
    if _accepts(c.original):
        c.follows = _offered(c.context, c.index)
    if c.follows is None and c.pending is not None:
        write = _follow_up(c.pending, c.index)  # the write the pending action leads to, worked out once
        if write is not None and (
                (_acts_on_result(c.original, c.context, c.index)
                 and not _typed_args(c.extract(c.pending), c.pending))  # "make it in London": the search, refined
                or _says_its_verb(c, c.pending, write) or _gives_its_value(c, c.pending, write)):
            c.follows = write
    if c.follows is not None:
        at = c.index.entries.index(c.follows)
        c.scores[at] = c.scores.get(at, 0.0)
    return None


def _follow_last_read(c: _Clause) -> _Outcome:
    """"and devi's?": the last read again, for devi."""
    last_read = c.context.last_read or {}
    last = c.index.by_name.get(last_read.get("action", ""))
    if last is None or not _FOLLOW.match(c.original) or _POINTS.search(c.text) \
            or c.top() >= c.weights.min_score * c.weights.follow_ceiling:
        return None
    found = c.extract(last)
    if not found.args:
        return None
    return ProposedStep(action=last.action.name, args={**last_read.get("args", {}), **found.args},
                        mentions=found.mentions, confidence=c.weights.follow_confidence)


def _read_mood(c: _Clause) -> _Outcome:
    """Whether the clause asks or commands, and whether it names a write's verb."""
    if not c.scores:
        return c.unknown()
    if c.pending is not None:
        at = c.index.entries.index(c.pending)
        c.scores[at] = c.scores.get(at, 0.0)
    sentences = [s for s in _SENTENCE.split(c.text.strip()) if s]
    informing = [bool(_ASKS_INFO.match(s)) for s in sentences]  # "I'd like to know ...", "tell me my alarms"
    # "That one sounds perfect. Can you play it?" asks for it to be played
    request = _polite_request(sentences[-1]) and not informing[-1]
    c.question = (bool(_QUESTION.match(c.text)) or c.text.rstrip().endswith("?") or informing[-1]) and not request
    # "That's the one. I want to listen to it now.": any sentence's request; "tell me ..." only asks
    leads = [_lead(tokens(s)) for s, info in zip(sentences, informing, strict=True) if not info]
    starts = {m.start() for m in _SENTENCE_STARTS.finditer(c.text)}  # "That's it. Play it.": a verb, not a name
    verbs = [concepts(w.stem) for w in c.words if not w.text[:1].isupper() or w is c.words[0] or w.start in starts]
    c.acting = any(v & _WRITE_CONCEPTS for v in verbs)
    c.seeking = any("find" in v for v in verbs) or c.question
    c.imperative = any(lead is not None and concepts(lead.stem) & _WRITE_CONCEPTS for lead in leads) \
        or (c.acting and not c.seeking)
    c.asking = bool(_WH.match(c.text) or _WH.match(sentences[-1])  # "I'm worried. How much is left?"
                    or _ASKS_WH.search(c.text))  # "let's see how much I have", "can you tell me what ..."
    c.indefinite = bool(_INDEFINITE.search(c.text))
    return None


def _mood_score(c: _Clause, entry: Entry) -> float:
    """Writes lean to commands, reads to questions; what the conversation is doing goes on."""
    w = c.weights
    total = 0.0
    if entry is c.pending and c.follows is None:
        total += w.continue_pending if not (c.acting or c.seeking) else w.continue_pending_said
    if entry is c.follows:
        total += w.accept_offer
    if entry.action.is_write:
        total += w.write_imperative if c.imperative and not c.question else 0.0
        total += w.write_question if c.question and not c.imperative else 0.0
        total += w.write_asking if c.asking else 0.0
    else:
        total += w.read_question if c.question else 0.0
        total += w.read_seeking if c.seeking and not c.question and not c.acting else 0.0
        total += w.read_imperative if c.imperative and not c.question else 0.0
    return total


def _unsaid(c: _Clause) -> bool:
    """A request that says neither to look nor to change anything ("I want to go to a concert"), with no write
    under way or offered."""
    return not (c.question or c.seeking or c.acting or c.imperative or c.follows is not None
                or (c.pending is not None and c.pending.action.is_write))


def _judge(c: _Clause) -> _Outcome:
    """The best few actions by words take their arguments; words, evidence and mood give each a total.
    Actions far behind on words rarely win on arguments: try at least a few, then the close ones."""
    w = c.weights
    ranked = sorted(c.scores.items(), key=lambda kv: -kv[1])[:w.ranked]
    if ranked:
        floor = ranked[0][1] * w.ranked_floor
        ranked = ranked[:w.ranked_always] + [item for item in ranked[w.ranked_always:] if item[1] >= floor]
    for i, lexical in ranked:
        entry = c.index.entries[i]
        found = c.extract(entry)
        said = lexical
        if found.free_text:  # words inside the message it carries do not choose the action
            lexical = c.index.score_entry(entry, [t for t in c.words if not any(
                a <= t.start < b for a, b in found.free_text)]) + (w.choice_names_action if i in c.named_by_value
                                                                     else 0.0)
        total = lexical + found.evidence - w.missing * len(found.missing) + _mood_score(c, entry)
        if entry is c.follows:
            pass  # it acts on what the read showed ("that sounds like a good hotel"): chosen, and asked for
        elif entry.action.is_write and found.missing and c.indefinite:
            total += w.write_unchosen  # "I want to hear some music": nothing chosen yet to act on
        elif entry.action.is_write and found.missing and _unsaid(c):
            total += w.write_unsaid  # "I want to go to a concert": neither look nor act said, and incomplete
        c.judged.append(_Judged(total, entry, found, said))
    c.judged.sort(key=lambda item: -item.total)
    return None


_TELLS = frozenset({"send", "email"})
_KNOW_THAT = frozenset({"know", "that", "about"})
_SAID_PARAM = re.compile(r"text|body|message|content")
_WH_WORDS = frozenset("what what's whats which how when where who whom whose whether if why".split())


def _told(c: _Clause) -> int | None:
    """Where what is told starts, when the clause opens by telling someone else something ("tell carl we won the
    Orchid deal", "let devi know what the stage is", "email wes the figures"): the verb of telling, the person
    (not "me" or "us"), then at least two words."""
    words = [w for w in c.words if w.lower not in ("please", "can", "could", "would", "will", "you", "just")]
    if len(words) < 4 or not concepts(words[0].stem) & _TELLS or words[1].lower in _RECEIVERS | STOP - {"her", "him"}:
        return None
    rest = [w for w in words[2:] if w.lower not in _KNOW_THAT] if words[2].lower in _KNOW_THAT else words[2:]
    if len(rest) < 2 or rest[0].lower in ("a", "an", "another"):
        return None  # "send carol a message": the thing sent, not what it says
    return rest[0].start


def _keep_what_is_told(c: _Clause) -> _Outcome:
    """What is told to someone else is carried, never acted on: "tell carl we won the Orchid deal" does not close
    the deal, "tell devi what the Orchid deal's stage is" does not change it. The actions that carry those words as
    their text are weighed alone (when any does). A question told on ("what the stage is") is not words to send:
    unless the verb asks ("ask devi what ..."), what to say is asked for."""
    start = _told(c)
    if start is None:
        return None
    verb = c.words[0] if concepts(c.words[0].stem) & _TELLS else next(w for w in c.words if concepts(w.stem) & _TELLS)
    said = {verb.stem} | {f"~{k}" for k in concepts(verb.stem)}

    def carries(j: _Judged) -> bool:  # a write the verb asks for, that takes the words told as its text
        return j.entry.action.is_write and bool((_own_verbs(j.entry) | _own_things(j.entry)) & said) \
            and any(a <= start < b for a, b in j.found.free_text)

    carrying = [j for j in c.judged if carries(j)]
    if not carrying:  # not ranked among the first by words ("ask devi what the Orchid deal's stage is")
        weighed = {j.entry.action.name for j in c.judged}
        for n, entry in enumerate(c.index.entries):
            if entry.action.name not in weighed and (_own_verbs(entry) | _own_things(entry)) & said:
                found = c.extract(entry)
                judged = _Judged(c.scores.get(n, 0.0) + found.evidence, entry, found, c.scores.get(n, 0.0))
                if carries(judged):
                    carrying.append(judged)
        carrying.sort(key=lambda j: -j.total)
    if not carrying:
        return None
    c.judged = carrying
    if c.text[start:].split()[0].lower() in _WH_WORDS and verb.stem != "ask":
        for j in carrying:  # the information is to be sent, not these words: what to say is asked
            texts = {p.name for p in j.entry.params if p.kind == "text"}
            j.found.args = {k: v for k, v in j.found.args.items() if k not in texts}
            j.found.mentions = {k: v for k, v in j.found.mentions.items() if k not in texts}
            j.found.missing = [p for p in j.entry.params if p.required and p.name not in j.found.args
                               and p.default is None]
            j.found.missing.sort(key=lambda p: not _SAID_PARAM.search(p.name))
    return None


def _pick_best(c: _Clause) -> _Outcome:
    """The best total, unless its words are too weak, it writes when asked, or it is mostly about other things."""
    w = c.weights
    best = c.judged[0]
    # the words or arguments must be about some action the clause weighed: "go to a Concert on the 3rd" fits the
    # ticket purchase by its arguments, so the search a mood lean preferred is still about this catalog
    about = any(j.said >= w.min_score or j.found.evidence >= w.weak_evidence for j in c.judged)
    if not about and not (best.entry is c.pending and best.found.args) and best.entry is not c.follows:
        return c.unknown()
    if c.asking and best.entry.action.is_write:  # "what stage is the deal in?" asks; a read may answer it
        reads = [item for item in c.judged if not item.entry.action.is_write]
        if not reads or reads[0].said < w.min_score:
            return _none("out_of_scope", "")
        best = reads[0]
    if best.entry.action.is_write and not _creates(best.entry) and not c.question:
        # "give devi a follow-up to ...": a thing named as a new one that this action is not about is made
        named = [j for j in c.judged if _creates(j.entry) and _names_new(c, j.entry)] \
            if _NEW_THING.search(c.text) else []
        given = [j for j in named if _given_new(c, j)]
        if given:
            best = given[0]  # the first named that is given: ``given`` keeps ``named``'s order
            c.judged = [best, *(j for j in given if j is not best)]
    acting = _acts_on_one(c) if best.entry.action.is_write and not c.question else []
    if acting and not _already_asked(c, best.entry) \
            and not any(_creates(j.entry) and _named_new(c, j) for j in c.judged):
        c.best, c.judged = acting[0], acting  # "assign a ticket to devi": a ticket that exists, not said which
        return None
    if _creates(best.entry) and not _already_asked(c, best.entry) and not _asked_to_make(c, best):
        # a record is made only when the request says to make one: the action whose thing is named as a new one
        # ("give devi a task to ..."), else which action is meant is asked, nothing is made on a guess
        named = [j for j in c.judged if _creates(j.entry) and _named_new(c, j)]
        if not named:
            others = [j.entry for j in c.judged[1:] if j.entry.action.is_write and not _creates(j.entry)]
            options = _options([*others[:2], best.entry])
            return Interpretation(kind="question", steps=[], options=options,
                                  question="I am not sure what you mean. Which of these? "
                                           + " / ".join(o.label for o in options))
        best = named[0]
        c.judged = [best, *(j for j in named if j is not best)]
    found = best.found
    if not best.entry.action.is_write and found.unexplained >= w.unexplained_floor \
            and found.unexplained > w.unexplained_ratio * found.explained \
            and best.said < w.unexplained_words * w.min_score:
        return _none("out_of_scope", "")  # barely about us, and mostly about something else
    c.best = best
    return None


# Verbs of work on a record that already exists ("give", "move", "close"): never words of making, even where an
# action's own text uses them ("Set a reminder"); and verbs of making whatever the catalog says.
_ON_EXISTING = frozenset({"assign", "change", "raise_lower", "close", "delete", "find"})
_MAKES = frozenset({"create", "reserve", "buy", "rent", "remind"})
_MAKING_WORDS = frozenset(stem(w) for w in "schedule book arrange organise organize plan order".split())
# "set me up an appointment"; "let's go ahead with that appointment" (proceed with what the dialogue is about)
_MAKING = re.compile(r"\b(?:(?:set|draw|line|write)\s+(?:\w+\s+)?up|go\s+ahead)\b", re.I)
# A thing named as a new one: "a task", "another ticket", "a new meeting", "a quick call", "2 tickets", "some
# tickets", or as what is wanted: "I need bus tickets", "get me a cab".
_NEW_THING = re.compile(
    r"\b(?:(?:an?|another|some|\d+|one|two|three|four|five|six|seven|eight|nine|ten|a\s+few|a\s+couple\s+of)\s+"
    r"(?:new\s+)?|new\s+|(?:need|want|get|getting|secure|looking\s+for)\s+(?:me\s+|us\s+)?)"
    r"(?P<w>[\w-]+)(?:\s+(?P<x>[\w-]+))?", re.I)


def _creates(entry: Entry) -> bool:
    """A write that makes something new: it names no existing record it must act on."""
    return entry.action.is_write and not any(p.kind == "record" and p.required for p in entry.params)


def _with_concepts(stems: set[str]) -> set[str]:
    return stems | {f"~{c}" for base in stems for c in concepts(base)}


def _own_verbs(entry: Entry) -> frozenset[str]:
    return _verbs_of(entry.action.name, entry.action.description, tuple(entry.action.examples))


@lru_cache(maxsize=8192)
def _verbs_of(name: str, description: str, examples: tuple[str, ...]) -> frozenset[str]:
    """The verbs an action is asked for by: its name's verb and the first word of its description and examples,
    each with its concepts (as stems and "~concept")."""
    said = [t for text in [description, *examples] for t in tokens(text)[:1]]
    return frozenset(_with_concepts({t.stem for t in said if t.lower not in STOP}
                                    | {stem(w.lower()) for w in name_parts(name)[1:2]}))


def _own_things(entry: Entry) -> frozenset[str]:
    return _things_of(entry.action.name, entry.action.description)


@lru_cache(maxsize=8192)
def _things_of(name: str, description: str) -> frozenset[str]:
    """What an action makes, in its own words: its system's and object's names and its description's words after
    the verb ("Create a task, follow-up or ticket"), with their concepts."""
    return frozenset(_with_concepts({t.stem for t in tokens(description)[1:] if t.lower not in STOP}
                                    | _names_of(name)[0]))


def _new_things(c: _Clause, entry: Entry) -> list[re.Match[str]]:
    """Where the request names what ``entry`` makes as a new one ("a task", "a new ticket", "a reminder")."""
    own = _own_things(entry)
    found = []
    for m in _NEW_THING.finditer(c.text):
        for word in (m.group("w"), m.group("x")):
            base = stem(word.lower()) if word else ""
            if base and base not in STOP and (base in own or any(f"~{k}" in own for k in concepts(base))):
                found.append(m)
                break
    return found


@lru_cache(maxsize=8192)
def _names_of(name: str) -> tuple[frozenset[str], frozenset[str]]:
    """An action's own names for what it makes (its system's and object's, as stems) and their concepts."""
    parts = name_parts(name)
    named = frozenset(stem(w.lower()) for w in parts[:1] + parts[2:])
    return named, frozenset(k for base in named for k in concepts(base))


_DEFINITE = frozenset("the this that these those my our your his her their its which what".split())


def _names_new(c: _Clause, entry: Entry) -> bool:
    """Whether the request names what ``entry`` makes as a new one: with an article or a number ("a task", "2
    tickets"), or by the catalog's own name for it said bare ("1:45 pm is appointment", "bus tickets please"),
    never as one that exists ("the ticket", "my appointment", "the Orchid deal")."""
    if _new_things(c, entry):
        return True
    named, kinds = _names_of(entry.action.name)
    for n, w in enumerate(c.words):
        # the name itself, or a word of its kind ("a cab" for a ride) that is no verb ("to call Grace")
        said = w.stem in named or bool(kinds & concepts(w.stem)) and not (n and c.words[n - 1].lower == "to")
        if said and (n == 0 or not w.text[:1].isupper()):
            before = c.words[n - 1] if n else None
            capital = before is not None and before.text[:1].isupper() and before.start > 0 \
                and not re.search(r"[.!?:,]\s*$", c.text[:before.end + 1])
            if before is None or not (before.lower in _DEFINITE or capital
                                      or any(ch.isdigit() for ch in before.text) and "-" in before.text):
                return True
    return False


_RECEIVERS = frozenset({"me", "us", "him", "her", "them", "myself"})


def _given_new(c: _Clause, judged: _Judged) -> bool:
    """Whether a new thing ``judged`` makes is given to someone: "give devi a task", "hand him a follow-up" (the
    person right before it), so no existing record is what the request acts on."""
    people = {m.lower() for name, m in judged.found.mentions.items()
              if any(p.name == name and p.kind in ("person", "recipient") for p in judged.entry.params)}
    for m in _new_things(c, judged.entry):
        before = c.text[:m.start()].split()
        if before and (before[-1].lower().strip(",") in people | _RECEIVERS):
            return True
    return False


def _already_asked(c: _Clause, entry: Entry) -> bool:
    """Whether the conversation already asks for this write: it is the pending one (asked for turns earlier and
    still missing arguments), or the write the pending search leads to and the person took its result or the
    offer to do it ("Yes, that's the one. I want it for 1 day")."""
    return entry is c.pending or entry is c.follows


def _asked_to_make(c: _Clause, judged: _Judged) -> bool:
    """Whether the request says to make what ``judged`` makes: a verb of making ("create", "book", "set up"), one
    of the action's own verbs ("schedule", "remind", "tell" for a message), outside the text it carries, or the
    thing it makes named as a new one."""
    if _MAKING.search(c.text):
        return True
    own = _own_verbs(judged.entry)
    for w in c.words:
        if any(a <= w.start < b for a, b in judged.found.free_text) or (
                w.text[:1].isupper() and w.start and not re.search(r"[.!?:]\s*$", c.text[:w.start])):
            continue  # a name is no verb ("Add authentication for ..."); a sentence's first word may be one
        if w.stem in _MAKING_WORDS:
            return True
        terms = {t for t, _ in query_terms(w, c.index) if "#" not in t}  # "remnd" is read as "remind"
        kinds = {t[1:] for t in terms if t.startswith("~")}
        if kinds & _MAKES or (not kinds <= _ON_EXISTING or not kinds) and terms & own:
            return True
    return _named_new(c, judged)


def _works_on_existing(c: _Clause) -> bool:
    """Whether the request's verb is one of changing a record that exists ("assign", "reassign", "give ... to",
    "close", "move"), not one of making or of looking."""
    lead = _lead(c.words)
    if lead is None or lead.stem in _MAKING_WORDS or _MAKING.search(c.text):
        return False
    kinds = {t[1:] for t, _ in query_terms(lead, c.index) if t.startswith("~")}
    return bool(kinds) and kinds <= _ON_EXISTING - {"find"}  # "get me a cab" asks for one, whichever


def _named_new(c: _Clause, judged: _Judged) -> bool:
    """Whether the request names what ``judged`` makes as a new one. After a verb of work on an existing record,
    "a ticket" is one that exists, not said which ("assign a ticket to devi"), unless it is given to someone ("give
    devi a task") or the request says what the new one is about ("assign a follow-up about the renewal to devi")."""
    if not _names_new(c, judged.entry):
        return False
    ends = [m.end() for m in _new_things(c, judged.entry)]
    if not ends or not _works_on_existing(c) or _given_new(c, judged):
        return True
    return any(start >= end for start, _ in judged.found.free_text for end in ends)  # it says what the new one is


def _acts_on_one(c: _Clause) -> list[_Judged]:
    """"assign a ticket to devi": after a verb of work on an existing record, the writes that work on the kind of
    record named indefinitely and have yet to be told which one (the best first: it asks which one)."""
    if not _works_on_existing(c):
        return []
    return [j for j in c.judged if j.entry.action.is_write and not _creates(j.entry) and _new_things(c, j.entry)
            and any(p.kind == "record" and p.required and p.name not in j.found.args for p in j.entry.params)]


def _needs(entry: Entry) -> int:
    return sum(1 for p in entry.params if p.required)


def _simplest(c: _Clause, best: _Judged, close: list[_Judged]) -> tuple[_Judged, list[_Judged]]:
    """Equally likely writes, both complete: the simpler one (fewer things to get wrong) wins."""
    if not (close and best.entry.action.is_write and not best.found.missing):
        return best, close
    entries = [best.entry] + [j.entry for j in close]
    fewest = min(entries, key=_needs)
    if sum(1 for e in entries if _needs(e) == _needs(fewest)) == 1 and fewest is not best.entry:
        return next(item for item in c.judged if item.entry is fewest), []
    if _needs(best.entry) < min(_needs(j.entry) for j in close):
        return best, []
    return best, close


def _options(entries: list[Entry]) -> list[Option]:
    return [Option(label=f"{e.action.name}: {e.action.description}", value=e.action.name) for e in entries]


def _decide(c: _Clause) -> _Outcome:
    """The step, or a question: which action when none has evidence or two writes are too close, or the first
    missing argument."""
    w = c.weights
    assert c.best is not None
    best = c.best
    alternatives = [j.entry.action.name for j in c.judged[1:4] if j.total >= best.total * w.alternative_share]
    close = [j for j in c.judged[1:3] if j.total >= best.total * w.close_share and j.total > 0]
    last_read = c.context.last_read
    if last_read and last_read.get("action") == best.entry.action.name and _REFINE.search(c.text):
        best.found.args = {**last_read.get("args", {}), **best.found.args}  # "which of those are in negotiation?"
    confidence = round(min(1.0, best.total / (best.total + w.confidence_scale)), 3) if best.total > 0 else 0.0
    step = ProposedStep(action=best.entry.action.name, args=best.found.args, mentions=best.found.mentions,
                        confidence=confidence, alternatives=alternatives)
    best, close = _simplest(c, best, close)
    if best.total <= 0:  # no evidence for any action: ask which one, never act on it
        options = _options([best.entry] + [j.entry for j in c.judged[1:3] if j.entry is not best.entry])
        return Interpretation(kind="question", steps=[step], options=options,
                              question="I am not sure what you mean. Which of these? "
                                       + " / ".join(o.label for o in options))
    if close and best.entry.action.is_write:
        options = _options([best.entry] + [j.entry for j in close])
        return Interpretation(kind="question", steps=[step], options=options,
                              question="Which do you mean? " + " / ".join(o.label for o in options))
    if best.found.missing:
        param = best.found.missing[0]
        question = _ask_for(best.entry, param)
        unworkable = best.found.mentions.get(param.name)
        days = [v.text for v in find_values(c.text, c.context.now) if v.kind == "date"]
        if unworkable and param.kind in ("datetime", "time"):  # "at the earliest time I'm free": a time to look up
            question = (f"I can't work out \"{unworkable}\" myself. What time exactly? "
                        f"({param.name.replace('_', ' ')})")
        elif param.kind == "datetime" and len(days) == 1:  # "tomorrow" said, no hour: what time that day
            question = f"What time {days[0]}? ({param.name.replace('_', ' ')})"
        return Interpretation(kind="question", steps=[step], param=param.name,
                              question=question, options=_options_for(param))
    return step


_CLAUSE_STEPS = (_accept_offer, _continue_pending, _follow_last_read, _read_mood, _judge, _keep_what_is_told,
                 _pick_best, _decide)


def _about(named: str, text: str, index: CatalogIndex) -> Interpretation:
    """A name and nothing else: show it when asked ("who's Tom Becker?"), else ask what to do with it."""
    readers = [e for e in index.entries if not e.action.is_write
               and any(p.kind == "record" and p.required for p in e.params)]
    readers.sort(key=lambda e: -max((len(p.record.split("|")) for p in e.params if p.kind == "record"), default=0))
    if _QUESTION.match(text) and readers:
        entry = readers[0]
        param = next(p for p in entry.params if p.kind == "record" and p.required)
        return Interpretation(kind="plan", steps=[ProposedStep(
            action=entry.action.name, args={param.name: named}, mentions={param.name: named}, confidence=0.4)])
    steps = [ProposedStep(action=readers[0].action.name,
                          args={next(p.name for p in readers[0].params if p.kind == "record" and p.required):
                                named})] if readers else []
    return Interpretation(kind="question", steps=steps, options=_options(readers[:3]),
                          question=f"What would you like to do with {named}? You can ask me to show it, "
                                   "change it, or create a task about it.")


def _merge(steps: list[ProposedStep], step: ProposedStep, mentions: bool = True) -> bool:
    """"we lost the Kestrel pilot, close it out": a step on "it" of the same action as the last is that step."""
    if not (steps and steps[-1].action == step.action and _refers_back(step)):
        return False
    merged = steps[-1]
    merged.args.update({k: v for k, v in step.args.items() if k not in merged.args})
    if mentions:
        merged.mentions.update({k: v for k, v in step.mentions.items() if k not in merged.mentions})
    return True


_ASKS_ME = re.compile(r"(?:tell|say|let|show|remind|send|check)\s+(?:me\s+)?(?:know\s+)?"
                      r"(?:(?:at|in|on|for|from|by|to)\s+)?(?:what|which|who|whether|if|"
                      r"when|where|how|about)\b", re.I)


def _unwrap(text: str) -> str:
    """The request inside its courtesy: "could you tell devi nice job?" asks for a message to be sent, as
    "tell devi nice job" does; "..., please" and "thanks" at the end are not part of any argument."""
    bare = _COURTESY_END.sub("", text).strip() or text
    polite = _POLITE_START.match(bare)
    if polite and len(bare[polite.end():].split()) >= 2:
        bare = bare[polite.end():]
        if not _QUESTION.match(bare) and not _ASKS_ME.match(bare):  # "could you tell me which...?" still asks
            bare = bare.rstrip(" ?")
    return bare


def _name_only(text: str, words: list[Any]) -> str:
    """The name a message consists of ("Orchid", "Meridian?", "who's Tom Becker again?"), if that is all it is."""
    names = [w for w in words if w.text[:1].isupper() and w.lower not in STOP]
    rest = [w for w in words if w.lower not in STOP and w not in names and w.lower not in ("again", "about")]
    if not names or rest:
        return ""
    return text[names[0].start:names[-1].end]


_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Za-z])|,\s*(?=(?:(?:can|could|would|will)\s+you|please)\s)", re.I)


_ASKS_INFO = re.compile(r"^\s*(?:(?:hi|hello|hey|please|kindly|(?:can|could|would|will)\s+you)[\s,!]+)*"
                        r"(?:tell me|let me know|i\s+(?:want|would like|'d like|need|wish)\s+to\s+(?:know|find out)|"
                        r"i\s+wonder|i'?m\s+wondering|i\s+am\s+wondering)\b", re.I)


_INDEFINITE = re.compile(r"\b(?:some|any|something|anything|somewhere|a few|a couple of|a good|a nice|"
                         r"an? (?:interesting|good|nice|great|cheap|popular|fun))\b", re.I)


def _polite_request(sentence: str) -> bool:
    """"can you / could you / please ..." followed by something to do, not by a question ("could you tell me
    which...?" still asks): a request, wherever its sentence stands in the message."""
    polite = _POLITE_START.match(sentence)
    if not polite:
        return False
    rest = sentence[polite.end():]
    return len(rest.split()) >= 2 and not _QUESTION.match(rest) and not _ASKS_ME.match(rest)


_SENTENCE_STARTS = re.compile(r"(?<=[.!?]\s)[A-Z](?=[a-z'])")


def _sentence_case(text: str) -> str:
    """``text`` with the capital that starts each later sentence lowered, for ranking: "Sounds good. Play it."
    asks to play; a capital inside a sentence is a name ("Meridian Credit Union"), at a sentence's start not."""
    return _SENTENCE_STARTS.sub(lambda m: m.group().lower(), text)


# Taking what was offered: "yes", "sounds good", "that one is fine", "that would work", "I like it".
_ACCEPT = re.compile(
    r"^(?:(?:oh|ah|well|wow|hmm+|okay|ok|alright)\b[\s,!.]+)?(?:(?:yes|yeah|yea|yep|yup|sure|ok|okay|fine|perfect|"
    r"great|good|excellent|lovely|awesome)\b|sounds?\s+(?:\w+\s+)?(?:good|great|perfect|fine|nice|right)\b|"
    r"(?:that|this|it)(?:'s|\s+is|\s+one|\s+would|\s+will|\s+works|\s+sounds|\s+seems|\s+looks)\b|"
    r"i\s+(?:like|love)\s+(?:it|that|this)\b|i'?ll\s+take)", re.I)
_NOT = re.compile(r"\b(?:not|no|n't|nothing|else|another|other|different)\b", re.I)


def _accepts(text: str) -> bool:
    """Whether the message opens by taking what was just offered (and its first sentence refuses nothing)."""
    first = _SENTENCE.split(text.strip())[0]
    return bool(_ACCEPT.match(text.strip())) and not _NOT.search(first)


def _answered(context: Context) -> bool:
    """Whether sayso spoke last: what the person says now answers it (a result shown, an offer made)."""
    return bool(context.history) and context.history[-1].get("role") == "assistant"


def _offered(context: Context, index: CatalogIndex) -> Entry | None:
    """The write the assistant's last words offer to do after the pending read ("Would you like to play it?"):
    the write that follows the read, when the last question said is more about it than about the read."""
    read = index.by_name.get(context.pending_action or "")
    if read is None or read.action.is_write or not _answered(context):
        return None
    asked = [q for q in re.findall(r"[^.!?]*\?", context.history[-1].get("text", "")) if q.strip()]
    write = _follow_up(read, index) if asked else None
    if write is None:
        return None
    scores = index.score(tokens(_sentence_case(asked[-1].strip())))
    said = scores.get(index.entries.index(write), 0.0)
    return write if said > scores.get(index.entries.index(read), 0.0) else None


_RESULT = re.compile(r"\b(?:it|that one|this one)\b", re.I)
# Words that lead a sentence without asking for anything to be done: pointing, agreeing, judging, closing.
_NOT_VERBS = frozenset("that this it there here which what who how yes yeah yep sure ok okay fine great good perfect "
                       "thank thanks think guess enjoy love like prefer kind got know sound sounds seem seems".split())
_I_WOULD = frozenset("i'd we'd i'll we'll".split())  # "I'd like to hear it": the request is what follows
_MAY_I = re.compile(r"^\s*(?:can|could|may)\s+(?:i|we)\s+", re.I)
_CLOSING = re.compile(r"\b(?:thanks?|thank you|all|everything)\b", re.I)


def _acts_on_result(text: str, context: Context, index: CatalogIndex) -> bool:
    """"Yes, that's the one. Cast it on my TV.", "I like that one, can you put it on?": after a search was
    answered, a message that takes its result (accepts it or points at it) and asks for something to be done to
    it, in a sentence that is neither a question nor a search of its own, goes on to the write."""
    read = index.by_name.get(context.pending_action or "")
    if read is None or read.action.is_write or not _answered(context):
        return False
    text = text.strip()
    accepted = _ACCEPT.match(text)
    if not accepted and not _RESULT.search(text):
        return False
    rest = text[accepted.end():] if accepted else text
    for sentence in _SENTENCE.split(rest.strip(" ,.!")):
        asked = sentence.rstrip().endswith("?") and not _polite_request(sentence) \
            and not _MAY_I.match(sentence)  # "Can I listen to it now?" asks for it, not about it
        lead = _lead([t for t in tokens(sentence) if t.lower not in _I_WOULD and t.lower != "may"])
        if asked or lead is None or lead.lower in STOP or lead.lower in _NOT_VERBS or _NOT.search(sentence) \
                or _CLOSING.search(sentence):
            continue
        if "find" not in concepts(lead.stem) and (_RESULT.search(sentence, lead.end)
                                                   or _names_result(sentence[lead.end:], read)):
            return True
        if _RESULT.match(sentence[lead.end:].lstrip()):  # "get it": the result itself is what is asked for
            return True
    return False


_DEMONSTRATIVE = re.compile(r"\b(?:the|that|this)\s+(\w+)|"
                            r"\b(?:that|this)\b(?=\s+(?:for|to|on|in|now|please)\b|\s*[.!]*$)", re.I)


def _names_result(rest: str, read: Entry) -> bool:
    """"Play that for me", "Cast the song to my speaker": the result pointed at by "that" alone or by the read's
    own name for what it finds ("the song" after a song search)."""
    own = _names_of(read.action.name)[0]
    return any(m.group(1) is None or stem(m.group(1).lower()) in own for m in _DEMONSTRATIVE.finditer(rest))


_NEGATED = re.compile(r"\b(?:not|no|never|n't|don'?t|won'?t|can'?t)\b", re.I)


def _says_its_verb(c: _Clause, read: Entry, write: Entry) -> bool:
    """"Can you reserve a room for me?", "I want to make a transfer" with a search or a lookup under way: the
    write that read leads to, asked for by its own verb (said as a verb, or as the noun after "make", "get"), is
    where the dialogue goes. Not the read's own verbs ("find", "check"), not in a wh-question or a refusal."""
    if read.action.is_write or _WH.match(c.text):
        return False
    own = _own_verbs(write) - _own_verbs(read)
    starts = {m.start() for m in _SENTENCE_STARTS.finditer(c.text)}
    for w in c.words:
        if w.text[:1].isupper() and w is not c.words[0] and w.start not in starts:
            continue  # a name is no verb
        if (w.stem in own or any(f"~{k}" in own for k in concepts(w.stem))) and w.stem not in STOP:
            if not _NEGATED.search(_SENTENCE.split(c.text[:w.start])[-1]):  # "I don't want to book it"
                return True
    return False


# Values that say how much or which of the write's own choices; a date or a place may be about anything (the
# weather there on the 13th) and stays with what the conversation is doing.
_QUANTITIES = frozenset({"number", "money", "duration", "enum", "bool"})


def _gives_its_value(c: _Clause, read: Entry, write: Entry) -> bool:
    """"Fine, 3 please." after "One top item is Chemical Brothers", "$20 from savings" after a balance was shown:
    once a read was answered, a typed value that only the write it leads to takes (a number of seats, an amount:
    no parameter of the read's) goes on to that write. Not in a question, and not when the clause names an action
    by its words: those choose."""
    if read.action.is_write or c.original.rstrip().endswith("?") or _WH.match(c.text) \
            or not _answered(c.context) \
            or (c.scores and c.top() >= c.weights.min_score):
        return False
    own = {p.name for p in read.params}
    found = c.extract(write)
    return bool({p.name for p in write.params if p.name in found.args and p.kind in _QUANTITIES} - own)


def _typed_args(found: Extraction, entry: Entry) -> bool:
    """Whether ``found`` holds a typed value for ``entry`` (a place, a date, a choice: not free words)."""
    return any(p.kind not in ("text", "name") for p in entry.params if p.name in found.args)


def _follow_up(read: Entry, index: CatalogIndex) -> Entry | None:
    """The write a read leads to: of the same system, sharing the most parameters or words of its name (a
    bus search leads to buying a bus ticket); none when two writes fit alike."""
    system = name_parts(read.action.name)[0]
    own = {p.name for p in read.params} | set(read.terms)
    fits = sorted(((len(own & ({p.name for p in e.params} | set(e.terms))), e) for e in index.entries
                   if e.action.is_write and name_parts(e.action.name)[0] == system), key=lambda f: -f[0])
    if not fits or (len(fits) > 1 and fits[0][0] == fits[1][0]):
        return None
    return fits[0][1]


def _lead(words: list[Any]) -> Any:
    """The word a request starts with, after "please", "can you", "I want to"."""
    for word in words:
        if word.lower not in _LEADERS:
            return word
    return None


def _none(reason: str, reply: str) -> Interpretation:
    return Interpretation(kind="none", reason=reason, reply=reply)


def _capabilities(catalog: Catalog) -> str:
    """What sayso can do here, from the catalog itself: its systems and a few of its examples."""
    groups = sorted({a.name.split(".")[0] for a in catalog})
    examples = [a.examples[0] for a in catalog if a.examples][:4]
    said = ""
    if examples:
        said = " For example: " + "; ".join(f'"{e}"' for e in examples) + "."
    return f"I can act on these systems: {', '.join(groups)}.{said} Type /help for more."


def _values_in(text: str, context: Context) -> bool:
    """Whether ``text`` holds a value (a date, an amount) or a name (a capital not starting a sentence)."""
    names = [m.group() for m in re.finditer(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+", text.strip(" ,.!;:-"))]
    return bool(find_values(text, context.now)) or any(n.lower() not in _COURTESY for n in names)


def _starts_action(word: str, index: CatalogIndex) -> bool:
    """Whether ``word`` begins a request: a verb that starts an action's description or example."""
    base = stem(word)
    return base in index.verbs or bool(concepts(base) & _WRITE_CONCEPTS) or word in ("let", "ping", "tell")


def _refers_back(step: ProposedStep) -> bool:
    return any(isinstance(v, str) and v.startswith("@it") for v in step.args.values())


def _records_of(step: ProposedStep, index: CatalogIndex) -> list[tuple[str, str]]:
    """(record types, named value) of a step's record arguments, e.g. ("Ticket", "SUP-17")."""
    entry = index.by_name.get(step.action)
    if entry is None:
        return []
    return [(p.record, step.args[p.name]) for p in entry.params
            if p.kind == "record" and isinstance(step.args.get(p.name), str)]


def _after(context: Context, earlier: list[ProposedStep], index: CatalogIndex) -> Context:
    """The context of a later clause: the records of the earlier clauses come first in focus."""
    if not earlier:
        return context
    items = [FocusItem(type=t, id=value) for types, value in _records_of(earlier[-1], index)
             for t in types.split("|")]
    return context.model_copy(update={"focus": items + context.focus}) if items else context


def _link_references(step: ProposedStep, earlier: list[ProposedStep], index: CatalogIndex) -> None:
    """"move the Orchid deal to negotiation and log a note on it": "it" is the earlier step's record."""
    for name, value in list(step.args.items()):
        if isinstance(value, str) and value.startswith("@it") and earlier:
            for previous in reversed(earlier):
                named = next((v for _, v in _records_of(previous, index) if not v.startswith("@")), None)
                if named:
                    step.args[name] = named
                    break


def _choose(text: str, options: list[Option]) -> str | None:
    lowered = text.lower().strip(" .!?")
    for option in options:
        if lowered == option.value.lower() or re.search(rf"\b{re.escape(option.value.lower())}\b", lowered):
            return option.value
    ordinal = re.search(r"\b(first|second|third|fourth|fifth|last|1st|2nd|3rd|4th|5th|[1-9])\b", lowered)
    if ordinal and len(tokens(text)) <= 4:
        names = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4,
                 "fifth": 5, "5th": 5, "last": len(options)}
        word = ordinal.group(1)
        n = int(word) if word.isdigit() else names[word]
        if 1 <= n <= len(options):
            return options[n - 1].value
    wanted = {t.stem for t in tokens(lowered) if t.lower not in STOP}
    if not wanted:
        return None
    fits = []
    for option in options:
        label = {t.stem for t in tokens(option.label.lower())}
        overlap = len(wanted & label)
        if overlap:
            fits.append((overlap, option.value))
    fits.sort(reverse=True)
    if fits and (len(fits) == 1 or fits[0][0] > fits[1][0]):
        return fits[0][1]
    return None


def _answer_value(text: str, param: Param, entry: Entry, index: CatalogIndex, context: Context,
                  person: Person, weights: Weights) -> tuple[Any, str, dict[str, Any]]:
    """The value an answer gives for one parameter (typed when it can be, else the words themselves), and
    what else it says ("call Grace about the rollout, due Friday" also gives the due date)."""
    if param.kind == "text":
        found = extract(text, entry, index, context, person, weights=weights)
        extras = {k: v for k, v in found.args.items() if k != param.name and k in found.mentions
                  and entry.params and any(p.name == k and p.kind in ("date", "datetime", "money", "number", "enum")
                                           for p in entry.params)}
        said = text.strip()
        for k in extras:  # the words that gave another value are not part of the text
            said = re.sub(rf"[,;]?\s*(?:due|by|on|at)?\s*{re.escape(found.mentions[k])}\s*$", "", said).strip()
        return said or text.strip(), said or text.strip(), extras
    only = Entry(entry.action, [Param(**{**param.__dict__, "required": True})], entry.terms)
    found = extract(text, only, index, context, person, weights=weights)
    if param.name in found.args:
        return found.args[param.name], found.mentions.get(param.name, text), {}
    if param.kind == "person":
        return ([text.strip()] if param.many else text.strip()), text.strip(), {}
    return text.strip(), text.strip(), {}


def _ask_for(entry: Entry, param: Param) -> str:
    thing = param.record.split("|")[0].lower() if param.record else ""
    if param.kind == "record":
        return f"Which {thing or param.name}?"
    if param.kind in ("person", "recipient"):
        return f"Who should be the {param.name.replace('_', ' ')}?"
    if param.kind in ("date", "datetime", "time"):
        return f"When? ({param.name.replace('_', ' ')})"
    if param.kind == "text":
        what = {"text": "it say", "body": "the email say", "reason": "the reason be"}.get(param.name)
        return f"What should {what}?" if what else f"What should the {param.name.replace('_', ' ')} be?"
    if param.enum:
        return f"Which {param.name.replace('_', ' ')}: {', '.join(param.enum)}?"
    return f"What is the {param.name.replace('_', ' ')}?" + (f" ({param.description})" if param.description else "")


def _options_for(param: Param) -> list[Option]:
    return [Option(label=v, value=v) for v in param.enum]


def register(registry: InterpreterRegistry) -> None:
    registry.add("offline", OfflineInterpreter)
