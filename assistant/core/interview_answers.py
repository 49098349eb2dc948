"""Free-text answers to profile slots: "about 2.5k", "an RTX 4090", "it changes every week".

Each parser returns a :class:`ParsedAnswer`: a value, or a clarifying question when the
text cannot be read with confidence. Parsers never raise on any string, so no answer a
person types can crash the interview.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from assistant.core.catalog import MODEL_CATALOG, find_gpu


@dataclass(frozen=True)
class ParsedAnswer:
    value: Any = None
    clarify: str = ""
    """Empty when the answer was understood; otherwise the question to ask back."""
    elsewhere: Mapping[str, Any] = field(default_factory=dict)
    """Answers the text gave to other questions (slot -> value), kept for those questions: "I have
    about 400 examples" at the documents question answers the examples question, not this one."""

    @property
    def ok(self) -> bool:
        return not self.clarify


def _clarify(text: str) -> ParsedAnswer:
    return ParsedAnswer(clarify=text)


def _normalise(text: Any) -> str:
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    return " ".join(text.lower().replace("’", "'").split())


def _has_word(text: str, *words: str) -> bool:
    return any(re.search(rf"\b{re.escape(w)}", text) for w in words)


# --- numbers --------------------------------------------------------------------------------

_SMALL_NUMBERS = {
    w: i for i, w in enumerate(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
         "eighteen", "nineteen"])
} | {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
     "eighty": 80, "ninety": 90, "a": 1, "an": 1}
_MULTIPLIERS = {"hundred": 100, "thousand": 1000, "k": 1000, "million": 1_000_000, "m": 1_000_000}

# Vague amounts, read as a typical value; checked longest phrase first.
_VAGUE_AMOUNTS = {
    "hundreds of thousands": 200_000, "tens of thousands": 20_000, "a couple of thousand": 2000,
    "a couple thousand": 2000, "a few thousand": 3000, "several thousand": 5000,
    "thousands": 2000, "a couple hundred": 200, "a couple of hundred": 200,
    "a few hundred": 300, "several hundred": 500, "hundreds": 300, "a few dozen": 36,
    "dozens": 36, "a dozen": 12, "a handful": 5, "millions": 1_000_000, "a few": 3,
}
_NONE_WORDS = ("none", "nothing", "no examples", "not any", "zero", "nil", "not yet", "no data")


def _word_number(text: str) -> int | None:
    """Numbers written in words: "two thousand", "fifty", "a hundred"."""
    total, current, seen = 0, 0, False
    for word in re.findall(r"[a-z]+", text):
        if word in _SMALL_NUMBERS:
            current += _SMALL_NUMBERS[word]
            seen = seen or word not in ("a", "an")
        elif word in _MULTIPLIERS and word not in ("k", "m"):
            current = max(current, 1) * _MULTIPLIERS[word]
            seen = True
            if _MULTIPLIERS[word] >= 1000:
                total, current = total + current, 0
    value = total + current
    return value if seen else None


_NUMBER = re.compile(r"(-\s*)?(\d[\d,_']*(?:\.\d+)?)\s*(k|thousand|m|million|hundred)?\b")


def _first_number(text: str) -> tuple[float, bool, str] | None:
    """The first written number with its suffix applied, whether it was negative, and the
    text before it (to read "under 100")."""
    match = _NUMBER.search(text)
    if not match:
        return None
    digits = re.sub(r"[,_']", "", match.group(2))
    try:
        value = float(digits)
    except ValueError:
        return None
    if match.group(3):
        value *= _MULTIPLIERS[match.group(3)]
    return value, bool(match.group(1)), text[: match.start()]


# A number with a memory unit ("24 GB", "16gib", "512 MB") or a number of GPUs ("2 GPUs", "8x
# H100") describes hardware; read as a count it turned "one 24 GB GPU" into 24 examples.
_MEMORY_SIZE = re.compile(r"\d+(?:\.\d+)?\s*(?:[kmgt]i?b|g|gigs?|(?:kilo|mega|giga|tera)bytes?)\b")
_GPU_COUNT = re.compile(r"\b\d+\s*x?\s*(?:gpus?|graphics cards?|cards?)\b")
_GPU_WORDS = ("gpu", "vram", "graphics card", "cuda", "nvidia", "geforce", "radeon", "rtx", "gtx")
# What a count of examples (or tasks) is a count of; such a phrase says which number is the count.
_COUNT_NOUNS = ("examples", "example", "samples", "pairs", "rows", "records", "cases", "conversations",
                "dialogues", "items", "tasks", "task")
_COUNTED = re.compile(r"((?:[^\s,;:]+\s+){0,2}[^\s,;:]+)\s+(?:(?:clean|labell?ed|annotated|training|good|"
                      r"distinct|different|separate)\s+)*(?:" + "|".join(_COUNT_NOUNS) + r")\b")


def hardware_mention(text: str) -> str | None:
    """The part of an answer that describes hardware (GPU memory, GPUs, a GPU model), or None.

    A bare model number ("3090") is not enough, since it may well be a count; a model named with
    letters ("RTX 3090", "A100", "T4"), after an article ("a 3090") or in the plural ("3090s") is.
    """
    t = _normalise(text)
    for pattern in (_MEMORY_SIZE, _GPU_COUNT):
        match = pattern.search(t)
        if match:
            return match.group(0)
    gpu = find_gpu(t)
    if gpu:
        name = re.escape(gpu[0])
        if re.search(r"[a-z]", gpu[0]) or re.search(rf"\b(?:an?|single|dual|my|our)\s+{name}\b|\b{name}s\b", t):
            return gpu[0]
    return next((w for w in _GPU_WORDS if _has_word(t, w)), None)


def _explicit_count(text: str) -> str | None:
    """The words that count something in ``text`` ("about 500" in "one GPU and about 500 labelled
    examples"), without any words about hardware; None when nothing is counted."""
    for match in _COUNTED.finditer(text):
        words = match.group(1).split()
        for start in range(len(words)):
            if not hardware_mention(" ".join(words[start:])):
                return " ".join(words[start:])
    return None


_EXAMPLE_NOUNS = ("examples", "example", "samples", "pairs", "rows", "records", "conversations", "dialogues",
                  "demonstrations", "demos")
_WORD = r"(?:\d,\d|[^\s,;:])+"
"""A word of an answer; a comma ends it unless it groups digits ("1,200")."""
_EXAMPLE_COUNT = re.compile(rf"((?:{_WORD}\s+){{0,2}}{_WORD})\s+(?:(?:clean|labell?ed|annotated|training|good|"
                            r"input[- ]output|q&a|qa|question[- ]answer)\s+)*(?:" + "|".join(_EXAMPLE_NOUNS) + r")\b")


def example_count(text: str) -> tuple[int, str] | None:
    """A count of examples in ``text`` ("about 400 examples", "~400 labelled pairs") and the text
    without it, or None when no number in it counts examples. Whatever else the text says is left
    for the question it was typed at."""
    t = _normalise(text)
    for match in _EXAMPLE_COUNT.finditer(t):
        words = match.group(1).split()
        for start in range(len(words)):
            counted = " ".join(words[start:])
            if hardware_mention(counted):
                continue
            parsed = _parse_plain_count(counted, "examples", 0, "")
            if parsed.ok:
                begin = match.start(1) + len(" ".join(words[:start])) + (1 if start else 0)
                rest = " ".join((t[:begin] + " " + t[match.end():]).split())
                return parsed.value, rest
    return None


def parse_count(text: str, what: str = "examples", minimum: int = 0) -> ParsedAnswer:
    """A non-negative whole number from text like "about 2.5k", "a few hundred", "1,000".

    An answer about hardware ("one 24 GB GPU", "an RTX 4090") is not a count: it is read only
    when a number is explicitly a count ("500 examples on one 24 GB GPU"), else asked again.
    """
    t = _normalise(text)
    ask = f"Roughly how many {what}? A number like 250 or \"2.5k\" is fine."
    if not t:
        return _clarify(ask)
    found = example_count(t) if what == "examples" else None
    if found is not None:  # "12 documents and 400 examples": the number that counts examples
        return ParsedAnswer(found[0])
    hardware = hardware_mention(t)
    if hardware:
        counted = _explicit_count(t)
        parsed = _parse_plain_count(counted, what, minimum, ask) if counted else None
        if parsed is not None and parsed.ok:
            return parsed
        return _clarify(f"\"{hardware}\" sounds like hardware, not a number of {what} (the GPU has its own "
                        f"question). {ask}")
    return _parse_plain_count(t, what, minimum, ask)


def _parse_plain_count(t: str, what: str, minimum: int, ask: str) -> ParsedAnswer:
    """``parse_count`` on normalised text known not to describe hardware."""
    if minimum == 0 and (t in ("0", "no") or _has_word(t, *_NONE_WORDS)):
        return ParsedAnswer(0)
    number = _first_number(t)
    if number is not None:
        value, negative, before = number
        if negative or value < 0:
            return _clarify(f"A count of {what} cannot be negative. {ask}")
        if re.search(r"\b(under|less than|fewer than|below)\s*$", before):
            value = max(value - 1, 0)
    else:
        vague = next((v for phrase, v in sorted(_VAGUE_AMOUNTS.items(), key=lambda kv: -len(kv[0]))
                      if phrase in t), None)
        value = vague if vague is not None else _word_number(t)
        if value is None:
            return _clarify(f"I could not read a number there. {ask}")
    if value != int(value) and value < 10:
        return _clarify(f"{what.capitalize()} come in whole numbers. {ask}")
    count = int(round(value))
    if count < minimum:
        return _clarify(f"That needs to be at least {minimum}. {ask}")
    if count > 1_000_000_000:
        return _clarify(f"{count:,} is more than I can believe. {ask}")
    return ParsedAnswer(count)


# --- yes / no -------------------------------------------------------------------------------

_DONT_KNOW = ("not sure", "unsure", "don't know", "dont know", "no idea", "no clue", "hard to say")
_UNSURE = _DONT_KNOW + ("maybe", "perhaps", "depends")
_LEADING_YES = ("yes", "yeah", "yep", "yup", "ya", "sure", "of course", "definitely", "absolutely", "correct",
                "true", "y", "ok", "okay", "right", "indeed", "certainly")
_LEADING_NO = ("no", "nope", "nah", "n", "never", "false", "not really", "not at all", "not yet", "none")
_NEGATION = re.compile(r"\b(?:no|not|never|nothing|none|nope|nah|cannot|without)\b|n't\b|\bdont\b|\bcant\b")
# "we have" alone is no yes: "I have about 400 examples" was read as "documents hold the facts".
# A yes is a yes word, or words about what the question asks (the cues below).
_GENERIC_YES = ("we do", "i do", "we can", "i can", "it must", "it has to", "it needs to", "there is",
                "there are", "we could")
_APPROXIMATE = r"(?:about|around|roughly|approximately|approx|maybe|some|nearly|almost|over|under|~|\+|-)"
_JUST_A_NUMBER = re.compile(rf"(?:{_APPROXIMATE}\s*)*\d[\d,_'.]*\s*(?:k|m|thousand|million|hundred)?"
                            rf"(?:\s*(?:or so|or more|ish|\+))?")

YES_NO_CUES: dict[str, tuple[str, ...]] = {
    "documents": ("document", "docs", "doc", "wiki", "manual", "pdf", "handbook", "knowledge base", "confluence",
                  "sharepoint", "notion", "pages", "articles", "faq", "policies", "policy", "website", "intranet",
                  "database", "catalogue", "catalog", "reports", "contracts", "files", "written down"),
    "can_measure": ("reference", "answer key", "rubric", "checker", "gold", "label", "ground truth", "test set",
                    "tests", "schema", "validat", "exact match", "metric", "score", "held-out", "held out",
                    "expected answer", "check it", "grade", "evaluat"),
    "latency_sensitive": ("fast", "quick", "latency", "real-time", "realtime", "real time", "cheap", "cost",
                          "on-device", "on device", "edge", "mobile", "millisecond", "ms", "speed", "instant",
                          "low power", "phone"),
}
"""Words that answer each yes/no question by naming what it asks about: "our wiki" (documents),
"we have a rubric" (measuring), "it has to be fast" (latency). A negation next to them is a no."""


def _leading(text: str, words: tuple[str, ...]) -> bool:
    return any(re.match(rf"{re.escape(w)}\b", text) for w in words)


def _is_just_a_number(text: str) -> bool:
    """"400", "about 400", "~2.5k", "four hundred", "400?": a number and nothing else."""
    bare = text.strip(" .!?")
    if _JUST_A_NUMBER.fullmatch(bare):
        return True
    words = re.findall(r"[a-z]+", bare)
    return bool(words) and _word_number(bare) is not None and all(
        w in _SMALL_NUMBERS or w in _MULTIPLIERS or w in ("and", "about", "around", "roughly", "some") for w in words)


def parse_yes_no(text: str, question: str = "", cues: tuple[str, ...] = ()) -> ParsedAnswer:
    """Yes or no, from a yes/no word first, else from words about what the question asks.

    ``cues``: words that answer this question when present (see :data:`YES_NO_CUES`). A number is
    never a yes: "400" or "about 400" is asked back (an example count is taken out before this, by
    :func:`parse_answer`).
    """
    t = _normalise(text)
    tail = f" {question}" if question else ""
    if not t:
        return _clarify("Yes or no?" + tail)
    if _has_word(t, *_UNSURE):
        return _clarify("If you are not sure, the safer answer is usually no. Yes or no?" + tail)
    if _leading(t, _LEADING_YES):
        return ParsedAnswer(True)
    if _leading(t, _LEADING_NO):
        return ParsedAnswer(False)
    if _is_just_a_number(t):
        return _clarify(f"\"{t.strip(' .!?')}\" is a number, and this question needs a yes or no.{tail}")
    if _NEGATION.search(t):
        return ParsedAnswer(False)
    if _has_word(t, *cues) or any(re.search(rf"\b{re.escape(p)}\b", t) for p in _GENERIC_YES):
        return ParsedAnswer(True)
    return _clarify("I did not catch a yes or a no." + tail)


# --- categories -----------------------------------------------------------------------------

_KNOWLEDGE_WORDS = ("fact", "knowledge", "know", "document", "docs", "information", "info",
                    "private", "internal", "wiki", "manual", "policy", "policies", "product",
                    "up to date", "up-to-date", "current", "data about", "content", "faq", "rag",
                    "retriev")
_BEHAVIOUR_WORDS = ("format", "style", "tone", "json", "structur", "behav", "skill", "tool",
                    "function call", "follow", "classif", "extract", "voice", "brand", "shorter",
                    "output", "schema", "sql", "label", "persona", "instruction")


def parse_gap(text: str) -> ParsedAnswer:
    t = _normalise(text)
    if _has_word(t, *_UNSURE) and not _has_word(t, "fact", "knowledge", "document", "docs", *_BEHAVIOUR_WORDS, "both"):
        return _clarify("Is the model missing knowledge (facts, your documents), behaviour (a format, "
                        "style, tone or narrow skill), or both? If you are not sure, a gap check in the "
                        "Compare tab measures it.")
    if _has_word(t, "both") or ("knowledge" in t and "behaviour" in t):
        return ParsedAnswer("both")
    knowledge = _has_word(t, *_KNOWLEDGE_WORDS)
    behaviour = _has_word(t, *_BEHAVIOUR_WORDS) or "behavior" in t
    if knowledge and behaviour:
        return ParsedAnswer("both")
    if knowledge:
        return ParsedAnswer("knowledge")
    if behaviour:
        return ParsedAnswer("behaviour")
    return _clarify("Is the model missing knowledge (facts, your documents), behaviour (a format, "
                    "style, tone or narrow skill), or both?")


def parse_changes(text: str) -> ParsedAnswer:
    """weekly, monthly or rarely. A period named ("every couple of months", "once a year") decides
    before an adverb, so "not very often, maybe monthly" is monthly, and a negated "often" is rarely."""
    t = _normalise(text)
    if _has_word(t, *_DONT_KNOW):
        return _clarify("How often do the requirements change: weekly, monthly, or rarely?")
    if _has_word(t, "week", "daily", "day", "sprint", "hour"):
        return ParsedAnswer("weekly")
    if _has_word(t, "month", "quarter"):
        return ParsedAnswer("monthly")
    if _has_word(t, "not often", "not very often", "not that often", "not so often", "doesn't change",
                 "does not change", "don't change", "rarely", "never", "seldom", "stable", "hardly",
                 "fixed", "year", "annual"):
        return ParsedAnswer("rarely")
    if _has_word(t, "constantly", "all the time", "often", "frequent", "fast", "continuous"):
        return ParsedAnswer("weekly")
    if _has_word(t, "occasional", "sometimes", "now and then"):
        return ParsedAnswer("monthly")
    return _clarify("How often do the requirements change: weekly, monthly, or rarely?")


# --- hardware and model ---------------------------------------------------------------------

_NO_GPU = ("no gpu", "without a gpu", "without gpu", "cpu", "laptop", "macbook", "no graphics",
           "none", "nothing", "no card", "not have a gpu", "don't have a gpu", "dont have a gpu",
           "integrated")


def parse_vram(text: str) -> ParsedAnswer:
    """GPU memory in GB from "24 GB", "an RTX 4090", "a100 80gb" or "no GPU, just a laptop"."""
    t = _normalise(text)
    ask = ("Which GPU can you use, or how many GB of memory does it have? Say \"no GPU\" if "
           "there is none.")
    if not t:
        return _clarify(ask)
    explicit = re.search(r"(-\s*)?(\d+(?:\.\d+)?)\s*(gb|gib|g\b|gigs?|gigabytes?)", t)
    if explicit:
        if explicit.group(1):
            return _clarify(f"GPU memory cannot be negative. {ask}")
        return ParsedAnswer(float(explicit.group(2)))
    gpu = find_gpu(t)
    if gpu:
        return ParsedAnswer(gpu[1])
    if _has_word(t, *_NO_GPU) or t in ("no", "0", "zero"):
        return ParsedAnswer(0.0)
    bare = re.fullmatch(r"(-?\d+(?:\.\d+)?)", t)
    if bare:
        value = float(bare.group(1))
        if value < 0:
            return _clarify(f"GPU memory cannot be negative. {ask}")
        if value <= 2000:
            return ParsedAnswer(value)
    if re.search(r"\d", t) or _has_word(t, "gpu", "rtx", "gtx", "nvidia", "radeon", "card"):
        return _clarify("I do not know that GPU. How many GB of memory does it have?")
    return _clarify(ask)


_NO_PREFERENCE = ("no preference", "don't care", "dont care", "any", "pick", "choose",
                  "recommend", "not sure", "don't know", "dont know", "whatever", "you decide",
                  "up to you", "no idea", "default")


def parse_model_size(text: str) -> ParsedAnswer:
    """Billions of parameters from "8B", "Llama 3.1 8B", "500M", "70 billion", or no preference."""
    t = _normalise(text)
    if _has_word(t, *_NO_PREFERENCE):
        return ParsedAnswer(None)
    for name, shape in MODEL_CATALOG.items():
        if _normalise(name).replace("-", " ") in t.replace("-", " "):
            return ParsedAnswer(round(shape.size_b, 2))
    match = re.search(r"(-\s*)?(\d+(?:\.\d+)?)\s*(b\b|bn\b|billion|m\b|million)?", t)
    if match:
        if match.group(1):
            return _clarify("A model size cannot be negative. How many billion parameters?")
        value = float(match.group(2))
        if match.group(3) in ("m", "million"):
            value /= 1000
        if 0.01 <= value <= 2000:
            return ParsedAnswer(value)
    return _clarify("Which model size, in billions of parameters (for example 1B, 8B, 70B)? "
                    "Or say \"no preference\" and the plan will choose.")


def parse_task(text: str) -> ParsedAnswer:
    t = " ".join(str(text or "").split())
    if len(re.findall(r"[^\W\d_]", t)) < 3:
        return _clarify("In one line, what should the model do? For example: \"answer questions "
                        "about our HR policies\" or \"turn support emails into JSON tickets\".")
    return ParsedAnswer(t[:500])


def parse_tasks(text: str) -> ParsedAnswer:
    t = _normalise(text)
    if not hardware_mention(t) and _has_word(t, "just one", "only one", "single", "one task", "one"):
        return ParsedAnswer(1)
    return parse_count(t, what="distinct tasks", minimum=1)


SLOT_PARSERS: dict[str, Callable[[str], ParsedAnswer]] = {
    "task": parse_task,
    "gap": parse_gap,
    "documents": lambda t: parse_yes_no(t, "Do documents hold the missing facts?", YES_NO_CUES["documents"]),
    "examples": parse_count,
    "can_measure": lambda t: parse_yes_no(t, "Can you tell, on held-out cases, whether an answer "
                                             "is right?", YES_NO_CUES["can_measure"]),
    "changes": parse_changes,
    "vram_gb": parse_vram,
    "model_size_b": parse_model_size,
    "latency_sensitive": lambda t: parse_yes_no(t, "Must a small, fast model do the job?",
                                                YES_NO_CUES["latency_sensitive"]),
    "tasks": parse_tasks,
}


def parse_answer(slot: str, text: Any) -> ParsedAnswer:
    """Parse ``text`` as an answer for ``slot``; never raises.

    Each question reads only what it asks. A count of examples typed at another question ("I have
    about 400 examples" at the documents question) is taken out and returned in ``elsewhere`` for
    the examples question; the rest of the text answers this one, or the question is asked again.
    """
    try:
        raw = text if isinstance(text, str) else _normalise(text)
        found = example_count(raw) if slot != "examples" else None
        if found is None:
            return SLOT_PARSERS[slot](raw)
        count, rest = found
        kept = {"examples": count}
        parsed = SLOT_PARSERS[slot](rest)
        if parsed.ok:
            # The task keeps its whole line: "classify tickets, we have 400 examples" describes the task.
            value = SLOT_PARSERS[slot](raw).value if slot == "task" else parsed.value
            return ParsedAnswer(value, elsewhere=kept)
        noun = "example" if count == 1 else "examples"
        return ParsedAnswer(clarify=f"{count:,} {noun}: noted for the examples question. {parsed.clarify}",
                            elsewhere=kept)
    except Exception:  # a parser bug must cost a question, not the conversation
        return _clarify("Sorry, I could not read that answer. Could you put it another way?")
