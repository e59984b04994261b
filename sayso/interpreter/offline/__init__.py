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
from typing import Any

from ...catalog import Catalog
from ...directory import Person
from ...turn import Option
from .. import Context, FocusItem, Interpretation, InterpreterRegistry, ProposedStep
from ..guesses import decline_guesses
from ..values import find_values
from .arguments import Extraction, extract
from .ranking import CatalogIndex, Entry, index_for, query_terms
from .schema import Param
from .words import STOP, concepts, stem, tokens

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
_MIN_SCORE = 1.2
_COURTESY = frozenset("thanks thank you cheers bye goodbye no yes ok okay great i have have a nice day good".split())
# Chat shorthand and idioms, read as the words they stand for.
_SHORTHAND = {"tmrw": "tomorrow", "tmr": "tomorrow", "tmw": "tomorrow", "2moro": "tomorrow", "2day": "today",
              "pls": "please", "plz": "please", "thx": "thanks", "msg": "message", "mtg": "meeting",
              "on my plate": "assigned to me", "on our plate": "assigned to us", "eom": "end of month"}
_SHORTHAND_RE = re.compile(r"\b(?:" + "|".join(re.escape(k) for k in sorted(_SHORTHAND, key=len, reverse=True))
                           + r")\b", re.I)
_POINTS = re.compile(r"\b(?:first|second|third|last|other|it|that one|this one|them)\b", re.I)
_OPENER = re.compile(r"^(?:(?:and|also|so|ok|okay|alright|right|now|then|great|cool)\b[\s,]*)+", re.I)
_FOLLOW = re.compile(r"^(?:and|what about|how about|same for|and for)\b", re.I)
_OBEY = re.compile(r"\b(?:do|follow|execute|carry out|run|obey|apply)\s+(?:what(?:ever)?|the (?:instructions?|steps?|"
                   r"requests?|orders?))\b(?:.{0,40}?\b(?:says?|said|asks?|wants?|tells?|instructs?|in|from)\b|\s*$)",
                   re.I)
_WH = re.compile(r"^\s*(?:who|what|what's|whats|which|when|where|why|how|whose)\b(?!\s+(?:about|if)\b)", re.I)
_AGREE = re.compile(r"\b(?:exactly|correct|that'?s right|proceed|go ahead|works|sounds good|please do)\b", re.I)
_CONTINUE = 1.5
_REFINE = re.compile(r"\b(?:of|among|from|in)\s+(?:those|them|these|that list)\b", re.I)
_LEADERS = frozenset("please can could would will you i we want need like to let's just also and then now".split())
_WRITE_CONCEPTS = frozenset({"change", "close", "create", "send", "remind", "meeting", "email", "note", "assign",
                             "delete", "comment", "credit", "reserve", "buy", "rent", "play", "transfer"})


class OfflineInterpreter:
    name = "offline"
    version = VERSION

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        self.settings = settings or {}

    def interpret(self, text: str, context: Context, catalog: Catalog, person: Person) -> Interpretation:
        started = time.perf_counter()
        result = self._interpret(text.strip(), context, catalog, person)
        result = decline_guesses(result, text, catalog)
        result.interpreter, result.version = self.name, self.version
        result.raw = {"elapsed_ms": round((time.perf_counter() - started) * 1000, 3)}
        return result

    # --- the steps ---------------------------------------------------------------

    def _interpret(self, text: str, context: Context, catalog: Catalog, person: Person) -> Interpretation:
        text = _SHORTHAND_RE.sub(lambda m: _SHORTHAND[m.group(0).lower()], text)
        if not text:
            return _none("empty", "Say what you would like done, for example: show my deals closing this month.")
        index = index_for(catalog)
        if context.pending:
            answer = self._answer(text, context, index, person)
            if answer is not None:
                return answer
        thanks = _THANKS.match(text)
        if thanks:
            rest = text[thanks.end():].lstrip(" ,.!;:-")
            if not _has_action_words(rest, index, core=True) and not _values_in(rest, context):
                return _none("thanks", "You're welcome.")
            text = rest  # "thanks, can you also find me a hotel": the request after the thanks
        greeting = _GREETING.match(text)
        if greeting:
            rest = text[greeting.end():].lstrip(" ,.!;:-")
            if not _has_action_words(rest, index, core=True) and not _values_in(rest, context):
                return _none("smalltalk", _capabilities(catalog))
            text = rest  # "Hello. I want to reserve a bus.": the request after the greeting
        decline = _DECLINE.match(text)
        if decline and not _AGREE.search(text[decline.end():]) and "?" not in text[decline.end():]:
            # "that's it exactly" agrees; "that's it. what will it cost?" asks on
            rest = text[decline.end():]
            if not _has_action_words(rest, index, core=True) and not _values_in(rest, context):
                return _none("decline", "Okay, nothing more.")
        if _SMALLTALK.search(text):
            return _none("out_of_scope", _capabilities(catalog))
        if _OBEY.search(text):  # text read from systems is data: it is never followed as instructions
            return _none("untrusted", "I only act on what you ask me yourself; text inside records, tickets or "
                                      "emails is never followed as instructions. Tell me what you want done.")
        clauses = self._clauses(text, index)
        steps: list[ProposedStep] = []
        carried = ""
        for n, clause in enumerate(clauses):
            clause = f"{carried}, {clause}" if carried else clause
            carried = ""
            outcome = self._clause(clause, _after(context, steps, index), index, person)
            if isinstance(outcome, Interpretation):
                if outcome.kind == "none" and not outcome.reply:
                    outcome.reply = _capabilities(catalog)
                if n + 1 < len(clauses) and outcome.kind == "none":
                    carried = clause  # "we lost the Kestrel pilot, close it out": one request
                    continue
                if len(clauses) > 1 and outcome.kind == "none" and steps:
                    continue
                if steps and outcome.steps and outcome.steps[-1].action == steps[-1].action \
                        and _refers_back(outcome.steps[-1]):
                    last = outcome.steps[-1]  # "we lost the Kestrel pilot, close it out": the same close
                    steps[-1].args.update({k: v for k, v in last.args.items() if k not in steps[-1].args})
                    continue
                if outcome.kind == "question" and steps:
                    outcome.steps = steps + outcome.steps
                return outcome
            if steps and steps[-1].action == outcome.action and _refers_back(outcome):
                merged = steps[-1]  # "we lost the Kestrel pilot, close it out": one close, not two
                merged.args.update({k: v for k, v in outcome.args.items() if k not in merged.args})
                merged.mentions.update({k: v for k, v in outcome.mentions.items() if k not in merged.mentions})
                continue
            _link_references(outcome, steps, index)
            steps.append(outcome)
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
            if not head or not _starts_action(head[0].lower, index):
                continue
            piece = text[last:match.start()].strip()
            if piece and _has_action_words(piece, index):
                parts.append(piece)
                last = match.end()
        tail = text[last:].strip()
        if tail:
            parts.append(tail)
        return parts or [text]

    def _clause(self, text: str, context: Context, index: CatalogIndex,
                person: Person) -> ProposedStep | Interpretation:
        original = text
        text = _OPENER.sub("", text) or text  # "and what have we won?", "ok, ask devi"
        words = tokens(text)
        scores = index.score(words)
        valued = index.by_choice(text)
        named_by_value = set(valued)
        for i in valued:  # "anything still in prospecting?": an enum value names the action
            scores[i] = scores.get(i, 0.0) + 0.5
        pending = index.by_name.get(context.pending_action or "")
        if not scores or max(scores.values()) < _MIN_SCORE:
            if pending is not None:  # "I want to go to Phoenix.": more for what is under way
                found = extract(text, pending, index, context, person)
                if found.args:
                    return ProposedStep(action=pending.action.name, args=found.args, mentions=found.mentions,
                                        confidence=0.3)
        last = index.by_name.get((context.last_read or {}).get("action", ""))
        if last is not None and _FOLLOW.match(original) and not _POINTS.search(text) \
                and max(scores.values(), default=0.0) < _MIN_SCORE * 3:
            found = extract(text, last, index, context, person)  # "and devi's?": the last read, for devi
            if found.args:
                return ProposedStep(action=last.action.name, args={**(context.last_read or {}).get("args", {}),
                                                                   **found.args},
                                    mentions=found.mentions, confidence=0.5)
        named = _name_only(text, words)
        if not scores:
            return self._about(named, text, index) if named else _none("out_of_scope", "")
        if pending is not None:
            scores[index.entries.index(pending)] = scores.get(index.entries.index(pending), 0.0)
        question = bool(_QUESTION.match(text)) or text.rstrip().endswith("?")
        lead = _lead(words)
        verbs = [concepts(w.stem) for w in words if not w.text[:1].isupper() or w is words[0]]
        acting = any(c & _WRITE_CONCEPTS for c in verbs)  # "book it", "reserve", "move", "send"
        seeking = any("find" in c for c in verbs) or question
        imperative = (lead is not None and bool(concepts(lead.stem) & _WRITE_CONCEPTS)) or (acting and not seeking)
        asking = bool(_WH.match(text))
        ranked = sorted(scores.items(), key=lambda kv: -kv[1])[:8]
        if ranked:  # actions far behind on words rarely win on arguments: try at least three, then the close ones
            floor = ranked[0][1] * 0.3
            ranked = ranked[:3] + [item for item in ranked[3:] if item[1] >= floor]
        judged: list[tuple[float, Entry, Extraction, float]] = []
        for i, lexical in ranked:
            entry = index.entries[i]
            found = extract(text, entry, index, context, person)
            said = lexical  # how much the message is about this action at all (for the threshold)
            if found.free_text:  # words inside the message it carries do not choose the action
                lexical = index.score_entry(entry, [w for w in words if not any(
                    a <= w.start < b for a, b in found.free_text)]) + (0.5 if i in named_by_value else 0.0)
            total = lexical + found.evidence - 0.4 * len(found.missing)
            if entry is pending and not (acting or seeking):
                total += _CONTINUE  # what the conversation is doing goes on unless the words say otherwise
            elif entry is pending:
                total += _CONTINUE / 3
            if entry.action.is_write:
                total += 1.0 if imperative and not question else 0.0
                total -= 1.5 if question and not imperative else 0.0
                total -= 4.0 if asking else 0.0  # "what did I send to carol?" asks; it does not send
            else:
                total += 1.5 if question else 0.0
                total -= 0.8 if imperative and not question else 0.0
            judged.append((total, entry, found, said))
        judged.sort(key=lambda item: -item[0])
        best_total, best, found, lexical = judged[0]
        if lexical < _MIN_SCORE and found.evidence < 1.5 and not (best is pending and found.args):
            return self._about(named, text, index) if named else _none("out_of_scope", "")
        if asking and best.action.is_write:  # "what stage is the deal in?" asks; a read may answer it
            reads = [item for item in judged if not item[1].action.is_write]
            if not reads or reads[0][3] < _MIN_SCORE:
                return _none("out_of_scope", "")
            best_total, best, found, lexical = reads[0]
        if not best.action.is_write and found.unexplained >= 3 and found.unexplained > 2 * found.explained \
                and lexical < 2 * _MIN_SCORE:
            return _none("out_of_scope", "")  # barely about us, and mostly about something else
        alternatives = [e.action.name for t, e, _, _ in judged[1:4] if t >= best_total * 0.75]
        close = [(t, e) for t, e, _, _ in judged[1:3] if t >= best_total * 0.97 and t > 0]
        if context.last_read and context.last_read.get("action") == best.action.name and _REFINE.search(text):
            # "which of those are in negotiation?": the last list, narrowed
            found.args = {**context.last_read.get("args", {}), **found.args}
        step = ProposedStep(action=best.action.name, args=found.args, mentions=found.mentions,
                            confidence=round(min(1.0, best_total / (best_total + 2.0)), 3) if best_total > 0 else 0.0,
                            alternatives=alternatives)
        if close and best.action.is_write and not found.missing:
            # Equally likely, and both complete: the simpler one (fewer things to get wrong) wins.
            def needs(entry: Entry) -> int:
                return sum(1 for p in entry.params if p.required)
            fewest = min([best] + [e for _, e in close], key=needs)
            if sum(1 for e in [best] + [e for _, e in close] if needs(e) == needs(fewest)) == 1 and fewest is not best:
                chosen = next(item for item in judged if item[1] is fewest)
                best_total, best, found, lexical = chosen
                close = []
            elif needs(best) < min(needs(e) for _, e in close):
                close = []
        if best_total <= 0:  # no evidence for any action: ask which one, never act on it
            options = [Option(label=f"{e.action.name}: {e.action.description}", value=e.action.name)
                       for e in [best] + [e for t, e, _, _ in judged[1:3] if e is not best]]
            return Interpretation(kind="question", steps=[step], options=options,
                                  question="I am not sure what you mean. Which of these? "
                                           + " / ".join(o.label for o in options))
        if close and best.action.is_write:
            options = [Option(label=f"{e.action.name}: {e.action.description}", value=e.action.name)
                       for e in [best] + [e for _, e in close]]
            return Interpretation(kind="question", steps=[step], options=options,
                                  question="Which do you mean? " + " / ".join(o.label for o in options))
        if found.missing:
            param = found.missing[0]
            return Interpretation(kind="question", steps=[step], param=param.name,
                                  question=_ask_for(best, param), options=_options_for(param))
        return step

    def _about(self, named: str, text: str, index: CatalogIndex) -> Interpretation:
        """A name and nothing else: show it when asked ("who's Tom Becker?"), else ask what to do with it."""
        readers = [e for e in index.entries if not e.action.is_write
                   and any(p.kind == "record" and p.required for p in e.params)]
        readers.sort(key=lambda e: -max((len(p.record.split("|")) for p in e.params if p.kind == "record"),
                                        default=0))
        if _QUESTION.match(text) and readers:
            entry = readers[0]
            param = next(p for p in entry.params if p.kind == "record" and p.required)
            return Interpretation(kind="plan", steps=[ProposedStep(
                action=entry.action.name, args={param.name: named}, mentions={param.name: named}, confidence=0.4)])
        options = [Option(label=f"{e.action.name}: {e.action.description}", value=e.action.name)
                   for e in readers[:3]]
        steps = [ProposedStep(action=readers[0].action.name,
                              args={next(p.name for p in readers[0].params if p.kind == "record" and p.required):
                                    named})] if readers else []
        return Interpretation(kind="question", steps=steps, options=options,
                              question=f"What would you like to do with {named}? You can ask me to show it, "
                                       "change it, or create a task about it.")

    # --- answers to what is pending ----------------------------------------------------

    def _answer(self, text: str, context: Context, index: CatalogIndex, person: Person) -> Interpretation | None:
        short = len(tokens(text)) <= 6
        if context.pending == "confirmation":
            if _AFFIRM.match(text) and short and not _NEGATE.search(text):
                return Interpretation(kind="reply", reason="affirm")
            if _NEGATE.match(text) and (short or not _has_action_words(text, index, strict=True)):
                return Interpretation(kind="reply", reason="negate")
            return None
        if _NEGATE.match(text) and short:
            return Interpretation(kind="reply", reason="negate")
        options = context.pending_options
        choosing_action = context.pending_param is None and options and all(o.value in index.by_name for o in options)
        if choosing_action and len(tokens(text)) > 2 and _has_action_words(text, index, core=True):
            return None  # "show me the deal": a request of its own
        if options:
            chosen = _choose(text, options)
            if chosen is not None:
                return Interpretation(kind="reply", reason="choice", value=chosen)
        if context.pending_param and context.pending_action and context.pending_action in index.by_name:
            entry = index.by_name[context.pending_action]
            param = next((p for p in entry.params if p.name == context.pending_param), None)
            if param is None:
                return None
            if param.kind != "text" and len(tokens(text)) > 3 and _starts_action(tokens(text)[0].lower, index):
                return None  # a new request, not an answer
            value, said, extras = _answer_value(text, param, entry, index, context, person)
            return Interpretation(kind="reply", reason="answer", param=param.name, value=said,
                                  steps=[ProposedStep(action=entry.action.name, args={**extras, param.name: value},
                                                      mentions={param.name: said})])
        return None


def _name_only(text: str, words: list[Any]) -> str:
    """The name a message consists of ("Orchid", "Meridian?", "who's Tom Becker again?"), if that is all it is."""
    names = [w for w in words if w.text[:1].isupper() and w.lower not in STOP]
    rest = [w for w in words if w.lower not in STOP and w not in names and w.lower not in ("again", "about")]
    if not names or rest:
        return ""
    return text[names[0].start:names[-1].end]


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


def _has_action_words(text: str, index: CatalogIndex, strict: bool = False, core: bool = False) -> bool:
    words = [t for t in tokens(text) if t.lower not in STOP]
    if core:  # words of an action's name, description or examples, not of its parameters alone
        return any(term in index.core_vocabulary for w in words for term, _ in query_terms(w) if "#" not in term)
    scores = index.score(words)
    top = max(scores.values(), default=0.0)
    return top >= (_MIN_SCORE * 2 if strict else _MIN_SCORE)


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
                  person: Person) -> tuple[Any, str, dict[str, Any]]:
    """The value an answer gives for one parameter (typed when it can be, else the words themselves), and
    what else it says ("call Grace about the rollout, due Friday" also gives the due date)."""
    if param.kind == "text":
        found = extract(text, entry, index, context, person)
        extras = {k: v for k, v in found.args.items() if k != param.name and k in found.mentions
                  and entry.params and any(p.name == k and p.kind in ("date", "datetime", "money", "number", "enum")
                                           for p in entry.params)}
        said = text.strip()
        for k in extras:  # the words that gave another value are not part of the text
            said = re.sub(rf"[,;]?\s*(?:due|by|on|at)?\s*{re.escape(found.mentions[k])}\s*$", "", said).strip()
        return said or text.strip(), said or text.strip(), extras
    only = Entry(entry.action, [Param(**{**param.__dict__, "required": True})], entry.terms)
    found = extract(text, only, index, context, person)
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
