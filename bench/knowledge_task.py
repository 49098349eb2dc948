"""A knowledge task from real public data: questions about documents, each with a short gold answer.

    .venv/bin/python -m bench.knowledge_task --out DIR [--held-out 60] [--seed 0]

Source: the chunking-evaluation set in bench/data/public/retrieval/chroma_chunking_eval (five public
corpora and 472 questions whose gold spans are character offsets into one corpus; MIT repository,
third-party public texts, see bench/data/public/SOURCES.md). The questions were written for retrieval,
so most of them ask for a paragraph ("What were the reasons ..."). A knowledge benchmark scored
by "does the answer contain the gold string" needs a SHORT gold string instead, so this module
derives one by rules over the question and its gold span, and keeps only the questions where the
rules find exactly one candidate. No answer is written by hand.

The rules, in short: the question says what kind of answer it wants (a percentage, an amount, a
count, a duration, an age, a year, a date, a person, a law, a named programme or other named
thing, a day of the week); the gold span is searched for expressions of that kind; expressions
that the question already contains are dropped; the question is kept only when exactly one
expression is left. On the shared data 56 of the 472 questions qualify (reading all 56, 55 are
right). The held-out set is a seeded sample of them, stratified by corpus (with the default of
60, all 56); every other question becomes a chat training example whose answer is its gold span
text: the "teach the facts by fine-tuning" baseline that retrieval should beat on the held-out
questions.

Writes DIR/documents/ (the corpora), DIR/held_out.jsonl, DIR/held_out_chat.jsonl (question and
short answer as chat examples, for `tunewise eval --data`) and DIR/train.jsonl.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import shutil
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SOURCE = Path(__file__).resolve().parent / "data" / "public" / "retrieval" / "chroma_chunking_eval"
MOJIBAKE_CORPORA = {"finance.md"}
"""finance.md came out of PDFs with Unicode punctuation written as hex code points (’ as 2019,
“ ” as 201c 201d, • as 2022), so there 2019 and 2022 are quotes and bullets, not years."""
MAX_ANSWER_WORDS = 6


# --- the source --------------------------------------------------------------------------------


@dataclass(frozen=True)
class GoldSpan:
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class SourceQuestion:
    question: str
    source: str
    """The corpus file name, e.g. "pubmed.md"."""
    spans: tuple[GoldSpan, ...]

    @property
    def context(self) -> str:
        """The gold span texts, one per line: what a retriever should find for this question."""
        return "\n".join(span.text for span in self.spans)


def read_source_questions(source_dir: Path) -> list[SourceQuestion]:
    """The questions in file order, each with its gold spans (offsets into corpora/<corpus_id>.md)."""
    with open(source_dir / "questions_df.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [
        SourceQuestion(
            question=row["question"].strip(),
            source=f"{row['corpus_id']}.md",
            spans=tuple(GoldSpan(ref["start_index"], ref["end_index"], ref["content"])
                        for ref in json.loads(row["references"])),
        )
        for row in rows
    ]


def corpus_files(source_dir: Path) -> list[Path]:
    return sorted((source_dir / "corpora").glob("*.md"))


# --- what kind of answer a question wants ------------------------------------------------------

AMOUNT_NOUNS = re.compile(
    r"\b(amount|value|total|cost|price|revenue|income|expense|charge|paid|pay|sales|profit|debt|capital|"
    r"budget|dividends?|consideration|proceeds|backlog|fee|surplus|loss|contributions?|invested|"
    r"repurchase|cap|point total)\b")
COMPUTED_OR_OPEN = re.compile(
    r"\b(change|difference|ratio|compared|comparison|growth|increase|decrease|reasons?|factors?|purpose|"
    r"impacts?|terms|outcomes?|details|conditions|roles?|effects?|consequences|methods?|tools|types?|each)\b")
"""Amount questions that want a computation ("the change between 2012 and 2013"), a value per year
("for each year"), or an explanation ("the reasons for the decrease in revenue")."""
MONEY_HINTS = re.compile(r"\$|\b(dollars?|cost|price|revenue|income|expense|charge|paid|pay|sales|profit|debt|"
                         r"capital|budget|dividends?|consideration|proceeds|fee|invested|repurchase|cap|value|"
                         r"amount|worth)\b")
PERCENT_HINTS = re.compile(r"\b(percentage|percent|rate|share|margin)\b")
NAMED_THING_NOUNS = r"(projects?|initiatives?|programs?|programmes?|plants?|strategies)"


def wanted_kind(question: str) -> str | None:
    """The kind of short answer the question asks for, from its wording; None for open questions.

    Only wordings that ask for one fact are recognised: "How many", "What percentage", "Who", a
    "What was the <amount noun>" finance question, "What programs ..." for a named programme.
    "What were the reasons ..." is None: no short string would be a fair gold answer to it.
    """
    q = question.lower()
    if re.match(r"what (\S+ ){0,3}dates?\b|what specific (event|day)\b", q):
        return "date"
    if re.match(r"(in )?(what|which) year\b|when\b|what (is|was) the ([\w-]+ )?year\b", q):
        return "year"
    if re.match(r"what (percentage|percent|proportion)\b", q) or re.match(r"what (\S+ ){0,4}rate\b", q):
        return "percent"
    if q.startswith("how many"):
        return "count"
    if q.startswith("how much"):
        return "amount"
    if q.startswith("how long"):
        return "duration"
    if re.match(r"(at )?what age\b", q):
        return "age"
    if re.match(r"what days?\b", q):
        return "weekday"
    if q.startswith("who ") or re.match(r"which (late |former )?(friend|person|author|artist|composer)\b", q) \
            or re.match(r"what (\S+ ){0,3}(influences?|inspired)\b", q):
        return "person"
    if re.match(r"what (\S+ ){0,3}(legislation|law)\b", q):
        return "law"
    if re.match(rf"what (is|are|were|was) (the |some )?(\S+ ){{0,4}}{NAMED_THING_NOUNS}\b"
                rf"|what specific {NAMED_THING_NOUNS}\b", q):
        return "project"
    if re.search(r"\bthe names? of\b|^what is [\w\s-]*\bcalled\b|^(during |in )?which\b", q):
        return "named"
    if re.match(r"what (was|is|were|are|does|did|has)\b", q) and AMOUNT_NOUNS.search(q) \
            and not COMPUTED_OR_OPEN.search(q):
        return "amount"
    return None


# --- numbers in a span -------------------------------------------------------------------------

SPELLED_UNITS = ("two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
                 "sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety")
SCALES = "hundred|thousand|million|billion|trillion"
SPELLED_NUMBER = (rf"\b(?:{SPELLED_UNITS})(?:[\s-](?:{SPELLED_UNITS}|one))?"
                  rf"(?:\s(?:{SCALES}))*(?![\w-])")
NUMBER_BODY = r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:\s@[.,]@\s\d+)*(?![\w@]|\.\d)"
DIGITS = rf"(?<![\w.@/]){NUMBER_BODY}(?!/)"
QUANTITY = re.compile(
    rf"(?:US)?\$\s?{NUMBER_BODY}(?:\s(?:{SCALES}))?"
    rf"|(?:{DIGITS}|{SPELLED_NUMBER})(?:\s(?:{SCALES}))?(?:\s?%|\spercent\b|\sdollars\b)?",
    re.IGNORECASE,
)
TIME_UNIT = r"(?:years?|months?|weeks?|days?|hours?|minutes?)"
REFERENCE_NUMBER = re.compile(r"\b(?:Figure|Fig\.|Table|Tables|lanes?|step|Chromosome)\s+\S+|\([^()]*\b\d{4}[a-z]?\)",
                              re.IGNORECASE)
"""Figure and table numbers and "(Author 2002)" citations are pointers, not facts."""
ECHO_IN_PARENTHESES = re.compile(r"\(\$?-?[\d.,]+%?\)")
"""The finance corpus repeats a value in parentheses: "18% (18%)", "$-181 (181)"."""
WEEKDAY = r"\b(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)s?\b"
MONTH = r"(?:January|February|March|April|May|June|July|August|September|October|November|December)"
DATE = re.compile(rf"\b(?:{MONTH}\s\d{{1,2}}(?:st|nd|rd|th)?(?:,\s\d{{4}})?|\d{{1,2}}\s{MONTH}(?:\s\d{{4}})?"
                  rf"|{MONTH}\s\d{{4}})\b", re.IGNORECASE)
"""A calendar date as a document writes it: "June 29", "january 6th", "june 1, 2005", "may 2013"."""
DAY_OF_MONTH = re.compile(rf"(?:{MONTH}\s)(\d{{1,2}})\b|\b(\d{{1,2}})(?:\s{MONTH}\b)", re.IGNORECASE)
"""The 31 of "december 31" is part of a date, not a quantity."""


@dataclass(frozen=True)
class Quantity:
    text: str
    kind: str
    """"money", "percent", "year" or "count"."""
    following: str
    """The two words after the expression in the span: what it counts, or "for 2013"."""


def without_pointers(text: str) -> str:
    """The span with figure/table references, citations and echoed values blanked out (same length)."""
    for pattern in (REFERENCE_NUMBER, ECHO_IN_PARENTHESES):
        text = pattern.sub(lambda m: " " * len(m.group(0)), text)
    for match in DAY_OF_MONTH.finditer(text):
        group = 1 if match.group(1) else 2
        text = text[:match.start(group)] + " " * len(match.group(group)) + text[match.end(group):]
    return text


def quantity_kind(expression: str) -> str:
    """Money has a $ or "dollars", a percentage a % or "percent"; a bare 4-digit number from 1500
    to 2099 is a year; anything else is a count."""
    lowered = expression.lower()
    if "$" in lowered or lowered.endswith("dollars"):
        return "money"
    if lowered.endswith("%") or lowered.endswith("percent"):
        return "percent"
    if re.fullmatch(r"1[5-9]\d\d|20\d\d", expression):
        return "year"
    return "count"


def quantities(text: str, source: str) -> list[Quantity]:
    """Every number-like expression in ``text``, in order, with its kind and the words after it."""
    cleaned = without_pointers(text)
    found = []
    for match in QUANTITY.finditer(cleaned):
        expression = match.group(0).strip()
        if source in MOJIBAKE_CORPORA and expression in ("2019", "2022"):
            continue
        following = " ".join(cleaned[match.end():].split()[:2])
        found.append(Quantity(expression, quantity_kind(expression), following))
    return found


# --- names in a span ---------------------------------------------------------------------------

TITLE_WORDS = {"President", "Pope", "Captain", "Commander", "General", "Major", "Lt.", "Col.", "Dr.", "Mr.", "Mrs.",
               "Ms.", "Mgr.", "Governor", "Head", "Coach", "Assistant", "Music", "Critic", "Director", "Sir", "St."}
ORGANISATION_WORDS = {"Society", "College", "University", "School", "Museum", "Act", "Department", "Center",
                      "Centre", "Institute", "Foundation", "Agency", "Army", "Navy", "Company", "Corporation",
                      "Studios", "Studio", "Pictures", "Library", "Council", "Church", "Court", "Office", "House",
                      "Association", "Fund", "Program", "Project", "Award", "Awards", "Chronicles", "Game", "Show"}
FUNCTION_WORDS = {"The", "A", "An", "And", "But", "Or", "In", "On", "At", "Of", "For", "To", "By", "With", "From",
                  "As", "After", "Before", "During", "While", "When", "If", "It", "Its", "He", "She", "His", "Her",
                  "They", "Their", "We", "Our", "I", "My", "You", "Your", "This", "That", "These", "Those", "There",
                  "Here", "Then", "Thus", "However", "Also", "Yes", "No", "Sure", "Well", "So", "Not", "Since",
                  "Although", "Like", "Unlike", "Despite", "One"}
NAME_CONNECTORS = {"of", "de", "da", "del", "van", "von", "der", "du", "la", "le", "and"}
TOKEN = re.compile(r"[^\W_][\w'’.\-]*")
SENTENCE_START = re.compile(r"(?:^|[.!?:;\n]|\s[-–—]\s)[\s\"'“‘(]*$")


@dataclass(frozen=True)
class Phrase:
    text: str
    start: int
    end: int
    opens_sentence: bool
    """The first word starts a sentence or line, so its capital letter says nothing."""
    after_capitalised_word: bool
    """It directly follows a capitalised function word ("He Leadeth Me"): the tail of a title."""


def is_capitalised(token: str) -> bool:
    """A name word: starts with a capital (any script); function words like "The" are not names."""
    return token[0].isupper() and token not in FUNCTION_WORDS


def ends_sentence(token: str) -> bool:
    """"Putin." ends a sentence; "B." (an initial) and "Dr." (a title) do not."""
    return token.endswith(".") and len(token) > 2 and token not in TITLE_WORDS and not re.fullmatch(r"(\w\.)+", token)


def capitalised_phrases(text: str) -> list[Phrase]:
    """Maximal runs of capitalised words, joined by "of", "de", "and" ..., verbatim from ``text``.

    Anything but a single space between words (a comma, a quote) ends a run, and so does a word
    that ends a sentence. A trailing possessive ("Canada’s") is dropped.
    """
    tokens = list(TOKEN.finditer(text))
    phrases: list[Phrase] = []
    run: list[int] = []

    def close() -> None:
        while run and tokens[run[-1]].group(0) in NAME_CONNECTORS:
            run.pop()
        if run:
            first, last = tokens[run[0]], tokens[run[-1]]
            phrase = re.sub(r"(?:['’]s|\.)$", "", text[first.start():last.end()])
            before = tokens[run[0] - 1] if run[0] else None
            after_capital = before is not None and before.group(0)[0].isupper() \
                and text[before.end():first.start()] == " "
            phrases.append(Phrase(phrase, first.start(), first.start() + len(phrase),
                                  SENTENCE_START.search(text[:first.start()]) is not None, after_capital))
        run.clear()

    for index, token in enumerate(tokens):
        word = token.group(0)
        if run and text[tokens[run[-1]].end():token.start()] != " ":
            close()
        if is_capitalised(word) or (run and word in NAME_CONNECTORS):
            run.append(index)
            if ends_sentence(word):
                close()
        else:
            close()
    close()
    return phrases


def words_of(text: str) -> set[str]:
    return {word.lower() for word in re.findall(r"[^\W_]+", text)}


def person_name(phrase: str) -> str | None:
    """The phrase as a person's name (or a list "A and B" of names), or None.

    A name is 2 to 4 words once a leading title ("Captain") is dropped, with no organisation word
    ("Society", "College"), no initialism ("ZB") and no bare letter ("Richard L", a cut name); in a
    list, single words count ("Evan and Paul").
    """
    parts = phrase.split(" and ")
    least_words = 1 if len(parts) > 1 else 2
    for part in parts:
        words = part.split()
        while words and words[0] in TITLE_WORDS:
            words = words[1:]
        if not least_words <= len(words) <= 4 or any(word in ORGANISATION_WORDS for word in words):
            return None
        if any(word.isupper() and len(word) > 1 and not re.fullmatch(r"[IVXL]+", word) for word in words):
            return None
        if any(len(word) == 1 for word in words):
            return None
    if len(parts) > 1:
        return phrase
    words = phrase.split()
    while words[0] in TITLE_WORDS:
        words = words[1:]
    return " ".join(words)


def telling_phrases(item: SourceQuestion) -> list[Phrase]:
    """Capitalised phrases of the gold spans that could be an answer: not the tail of a title,
    not a lone sentence-opening word ("Overseas"), and sharing no word with the question."""
    question_words = words_of(item.question)
    return [phrase for span in item.spans for phrase in capitalised_phrases(without_pointers(span.text))
            if not phrase.after_capitalised_word
            and not (phrase.opens_sentence and " " not in phrase.text)
            and not words_of(phrase.text) & question_words
            and phrase.text not in TITLE_WORDS]


# --- the rules: question and span to candidate answers ----------------------------------------


def quantity_candidates(item: SourceQuestion, kinds: set[str], prefer: str | None = None) -> list[str]:
    """Quantities of the wanted kinds that the question does not already state.

    Ties are broken, only when that leaves something, by the question's own words: a hint at money
    or a percentage prefers that kind; "How many new jobs" prefers a number followed by "new
    jobs"; "in 2013" prefers a value followed by "for 2013" (or in 2013's place in a "...,
    respectively" list). Narrowing can choose among the span's numbers but never invents one. A
    question naming several years ("in 2008, 2009, and 2010") wants several values: no narrowing.
    """
    found = [quantity for span in item.spans for quantity in quantities(span.text, item.source)]
    found = [quantity for quantity in found if quantity.kind in kinds and not in_question(quantity.text, item.question)]
    if prefer:
        found = [quantity for quantity in found if quantity.kind == prefer] or found
    years = set(re.findall(r"\b(?:1[5-9]|20)\d\d\b", item.question))
    if len(years) > 1:
        return unique(quantity.text for quantity in found)
    if len(unique(quantity.text for quantity in found)) > 1:
        anchors = stems(" ".join(counted_words(item.question)))
        found = [quantity for quantity in found if stems(quantity.following) & anchors] or found
    if len(unique(quantity.text for quantity in found)) > 1 and years:
        year = next(iter(years))
        found = ([quantity for quantity in found if re.fullmatch(rf"(?:for|in) {year}\b.*", quantity.following)]
                 or respectively_for(item, year, found) or found)
    return unique(quantity.text for quantity in found)


def counted_words(question: str) -> list[str]:
    """What the question counts or measures: "How many new jobs ..." gives "new jobs", "What was
    the final point total" gives "point total"."""
    q = question.lower()
    match = re.match(r"how (?:many|much) (?:more )?(.+?) (?:are|is|were|was|did|does|do|has|have|had)\b", q)
    if match:
        return match.group(1).split()
    match = AMOUNT_NOUNS.search(q)
    return match.group(0).split() if match and match.group(0) != "total" else []


def respectively_for(item: SourceQuestion, year: str, found: list[Quantity]) -> list[Quantity]:
    """"$446.3 million, $423.8 million and $404.3 million for the years ended december 31, 2017,
    2016 and 2015, respectively": the value in the question's year's place, when the two lists
    are the same length."""
    for span in item.spans:
        match = re.search(r"(.*?)\bfor the (?:fiscal )?years?\b(.*?)\brespectively\b", span.text, re.S)
        if not match:
            continue
        values = [quantity for quantity in quantities(match.group(1), item.source)
                  if quantity.kind in {found_quantity.kind for found_quantity in found}]
        years = re.findall(r"\b(?:1[5-9]|20)\d\d\b", match.group(2))
        if year in years and len(values) == len(years):
            return [values[years.index(year)]]
    return []


def stems(text: str) -> set[str]:
    """Words longer than three letters, crudely singular ("points" and "point" match)."""
    return {word.rstrip("s") for word in words_of(text) if len(word) > 3 and not word.isdigit()}


def duration_candidates(item: SourceQuestion) -> list[str]:
    """"How long": a number (or a range "six to eight") followed by a time unit."""
    number = rf"(?:\d+(?:\.\d+)?|{SPELLED_NUMBER}|one|a)"
    pattern = re.compile(rf"\b{number}(?:\s(?:to|and)\s{number})?\s{TIME_UNIT}\b", re.IGNORECASE)
    found = [m.group(0) for span in item.spans for m in pattern.finditer(without_pointers(span.text))]
    return unique(text for text in found if not in_question(text, item.question))


def age_candidates(item: SourceQuestion) -> list[str]:
    """"At what age": a number after "age" or before "years old"."""
    pattern = re.compile(r"\bage (\d{1,3})\b|\b(\d{1,3}) years? old\b")
    found = [next(g for g in m.groups() if g) for span in item.spans for m in pattern.finditer(span.text)]
    return unique(text for text in found if not in_question(text, item.question))


def year_candidates(item: SourceQuestion) -> list[str]:
    """"When" / "What year": the years in the span that the question does not give."""
    return quantity_candidates(item, kinds={"year"})


def person_candidates(item: SourceQuestion) -> list[str]:
    """"Who": names of people (see person_name) that share no word with the question."""
    names = [person_name(phrase.text) for phrase in telling_phrases(item)]
    return unique(name for name in names if name)


def law_candidates(item: SourceQuestion) -> list[str]:
    """"What legislation / law": a capitalised name ending in "Act" ("PACT Act")."""
    return unique(phrase.text for phrase in telling_phrases(item) if phrase.text.endswith(" Act"))


def project_candidates(item: SourceQuestion) -> list[str]:
    """"What programs / projects": the name of one, as the span introduces it: "a program called
    Renewable City Strategy", "the CarbFix project", "the Amager Bakke waste-to-energy plant"."""
    found = []
    for span in item.spans:
        for phrase in capitalised_phrases(span.text):
            before, after = span.text[:phrase.start], span.text[phrase.end:]
            called = re.search(r"\b(?:called|named|known as)\s*[\"“]?$", before)
            kind_after = re.match(r"[\"”,]?\s(?:[\w-]+\s){0,2}(?:project|plant|program|programme|strategy|facility)\b",
                                  after)
            kind_within = re.search(r" (?:Project|Plant|Program|Programme|Strategy)$", phrase.text)
            shared = words_of(phrase.text) & words_of(item.question)
            if (called or kind_after or kind_within) and len(shared) * 2 <= len(words_of(phrase.text)) \
                    and not phrase.after_capitalised_word:
                found.append(phrase.text)
    return unique(found)


def named_candidates(item: SourceQuestion) -> list[str]:
    """"Which country", "What is the name of": a capitalised phrase or initialism ("ARPA-H")."""
    return unique(phrase.text for phrase in telling_phrases(item))


def date_candidates(item: SourceQuestion) -> list[str]:
    """"What dates", "What specific event": the dates in the span, a list as one answer ("June 29
    and August 31")."""
    pattern = re.compile(rf"{DATE.pattern}(?:(?:,\s|,?\sand\s){DATE.pattern})*", re.IGNORECASE)
    found = [m.group(0) for span in item.spans for m in pattern.finditer(span.text)]
    return unique(text for text in found if not in_question(text, item.question))


def weekday_candidates(item: SourceQuestion) -> list[str]:
    """"What days": the weekdays in the span, as one list answer ("Mondays and Tuesdays")."""
    pattern = re.compile(rf"{WEEKDAY}(?:(?:,\s|,?\sand\s|,?\sor\s){WEEKDAY})*")
    return unique(m.group(0) for span in item.spans for m in pattern.finditer(span.text))


def amount_preference(question: str) -> str | None:
    """An amount question that speaks of rates or shares wants a percentage; of money, dollars."""
    q = question.lower()
    if PERCENT_HINTS.search(q):
        return "percent"
    if MONEY_HINTS.search(q):
        return "money"
    return None


RULES: dict[str, Callable[[SourceQuestion], list[str]]] = {
    "percent": lambda item: quantity_candidates(item, kinds={"percent"}),
    "count": lambda item: quantity_candidates(item, kinds={"count"}),
    "amount": lambda item: quantity_candidates(item, kinds={"money", "percent", "count"},
                                               prefer=amount_preference(item.question)),
    "duration": duration_candidates,
    "age": age_candidates,
    "year": year_candidates,
    "date": date_candidates,
    "person": person_candidates,
    "law": law_candidates,
    "project": project_candidates,
    "named": named_candidates,
    "weekday": weekday_candidates,
}
"""One rule per kind of answer (see wanted_kind); each returns every candidate it finds."""


# --- keeping only fair answers -----------------------------------------------------------------


def in_question(text: str, question: str) -> bool:
    """Whether the question already says ``text`` (so answering it proves nothing)."""
    bare = text.strip("$%")
    return normalise(text) in normalise(question) or (
        re.fullmatch(r"[\d.,]+", bare) is not None and bare in re.findall(r"[\d.,]*\d", question))


def normalise(text: str) -> str:
    """The metric's normalisation: lowercase, whitespace collapsed."""
    return " ".join(text.lower().split())


def unique(texts: Iterable[str]) -> list[str]:
    seen: dict[str, str] = {}
    for text in texts:
        seen.setdefault(normalise(text), text)
    return list(seen.values())


SMALL_NUMBER = re.compile(rf"[-$]?\d|(?:{SPELLED_UNITS})", re.IGNORECASE)


def is_fair_answer(answer: str, question: str) -> bool:
    """A gold string that a model guessing without the document would rarely produce.

    1 to 6 words; not stated in the question; at most half its words taken from the question; no
    lone small number ("6" is "contained" in "2016", "six" in "sixty"); no wikitext tokenisation
    ("10 @,@ 247"), which no model would write.
    """
    words = answer.split()
    if not 1 <= len(words) <= MAX_ANSWER_WORDS or "@" in answer or "<unk>" in answer:
        return False
    if in_question(answer, question) or SMALL_NUMBER.fullmatch(answer):
        return False
    answer_words = words_of(answer)
    shared = answer_words & words_of(question)
    return len(shared) * 2 <= len(answer_words) and normalise(answer) not in {"yes", "no", "the", "a", "an"}


@dataclass(frozen=True)
class ShortAnswer:
    text: str
    kind: str


def short_answer(item: SourceQuestion) -> ShortAnswer | None:
    """The one short answer the rules find for this question, or None when they find none or several."""
    kind = wanted_kind(item.question)
    if kind is None:
        return None
    candidates = RULES[kind](item)
    if len(candidates) != 1 or not is_fair_answer(candidates[0], item.question):
        return None
    return ShortAnswer(candidates[0], kind)


# --- the task ----------------------------------------------------------------------------------


@dataclass
class KnowledgeTask:
    documents: list[Path]
    held_out: list[dict]
    train: list[dict]
    candidates: int = 0
    """How many questions got a short answer (the pool the held-out set was drawn from)."""


def chat_example(question: str, answer: str) -> dict:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


def held_out_record(item: SourceQuestion, answer: ShortAnswer) -> dict:
    return {"question": item.question, "answer": answer.text, "source": item.source,
            "spans": [[span.start, span.end] for span in item.spans], "context": item.context,
            "kind": reported_kind(answer)}


def stratified_sample(pool: dict[str, list], size: int, seed: int) -> list:
    """``size`` items drawn with a seeded shuffle from groups, each group's share proportional to
    its size (largest remainders), and at least one from every non-empty group when size allows."""
    rng = random.Random(seed)
    groups = {name: rng.sample(items, len(items)) for name, items in sorted(pool.items()) if items}
    total = sum(len(items) for items in groups.values())
    if size >= total:
        return [item for items in groups.values() for item in items]
    first_picks = set(rng.sample(sorted(groups), min(size, len(groups))))
    quotas = {name: int(name in first_picks) for name in groups}
    remaining = size - sum(quotas.values())
    shares = {name: (len(items) - quotas[name]) * remaining / (total - sum(quotas.values()))
              for name, items in groups.items()}
    for name in groups:
        quotas[name] += int(shares[name])
    by_remainder = sorted(groups, key=lambda name: (-(shares[name] - int(shares[name])), name))
    for name in by_remainder[: size - sum(quotas.values())]:
        quotas[name] += 1
    return [item for name, items in groups.items() for item in items[: quotas[name]]]


def build_knowledge_task(source_dir: Path, held_out: int = 60, seed: int = 0) -> KnowledgeTask:
    """Held-out questions with short answers (seeded, stratified by corpus) and the rest as training chats."""
    questions = read_source_questions(source_dir)
    answered = [(item, answer) for item in questions if (answer := short_answer(item)) is not None]
    by_corpus: dict[str, list] = {}
    for pair in answered:
        by_corpus.setdefault(pair[0].source, []).append(pair)
    chosen = stratified_sample(by_corpus, held_out, seed)
    order = {id(item): index for index, item in enumerate(questions)}
    chosen.sort(key=lambda pair: order[id(pair[0])])
    chosen_questions = {pair[0].question for pair in chosen}
    return KnowledgeTask(
        documents=corpus_files(source_dir),
        held_out=[held_out_record(item, answer) for item, answer in chosen],
        train=[chat_example(item.question, item.context)
               for item in questions if item.question not in chosen_questions],
        candidates=len(answered),
    )


def reported_kind(answer: ShortAnswer) -> str:
    """An "amount" answer reported as what it is: money, a percentage or a count."""
    if answer.kind != "amount":
        return answer.kind
    return quantity_kind(answer.text)


def count_by(records: Iterable[dict], key: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in records:
        counts[record[key]] = counts.get(record[key], 0) + 1
    return dict(sorted(counts.items()))


def answers_seen_in_training(task: KnowledgeTask) -> int:
    """How many held-out answers occur in some training answer: facts fine-tuning could learn."""
    taught = [normalise(example["messages"][-1]["content"]) for example in task.train]
    return sum(any(normalise(record["answer"]) in text for text in taught) for record in task.held_out)


# --- the CLI -----------------------------------------------------------------------------------


def write_jsonl(path: Path, records: Iterable[dict]) -> int:
    lines = [json.dumps(record, ensure_ascii=False) for record in records]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return len(lines)


def write_task(task: KnowledgeTask, out_dir: Path) -> dict[str, int]:
    documents = out_dir / "documents"
    documents.mkdir(parents=True, exist_ok=True)
    for path in task.documents:
        shutil.copyfile(path, documents / path.name)
    return {
        "documents": len(task.documents),
        "held_out": write_jsonl(out_dir / "held_out.jsonl", task.held_out),
        "held_out_chat": write_jsonl(out_dir / "held_out_chat.jsonl",
                                     (chat_example(r["question"], r["answer"]) for r in task.held_out)),
        "train": write_jsonl(out_dir / "train.jsonl", task.train),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write the task into")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="the chroma_chunking_eval folder")
    parser.add_argument("--held-out", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    task = build_knowledge_task(args.source, held_out=args.held_out, seed=args.seed)
    counts = write_task(task, args.out)
    print(f"{counts['documents']} documents, {counts['held_out']} held-out questions "
          f"(from {task.candidates} with a short answer), {counts['train']} training examples")
    for key in ("source", "kind"):
        print(f"held out by {key}: " + ", ".join(f"{name} {n}" for name, n in count_by(task.held_out, key).items()))
    print(f"{answers_seen_in_training(task)} of the held-out answers also occur in a training answer")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
