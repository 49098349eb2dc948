"""Evaluation questions drafted from a project's own documents, so retrieval can be measured
without writing questions by hand.

A chat model reads passages spread over the indexed documents and writes, for each, one question
a user might ask that the passage answers; the passage's character span is the question's gold
span. Small models often reply with something that is not a question, or copy the passage, so
every reply is cleaned (:func:`clean_question`) and an unusable one leaves the question empty:
the passage is still shown, for the person to write the question or drop the row. The reviewed
questions are saved as the project's questions (``eval-questions.jsonl`` in the project folder),
one JSON object per line in the format ``retrieval.evaluate.read_questions`` reads:
``{"question", "source", "spans": [[start, end]]}`` (plus ``passage``, the excerpt shown for
review, which the reader ignores).

    tunewise questions make --count 20 --out drafts.jsonl   # then edit, and:
    tunewise eval-retrieval drafts.jsonl                    # or: tunewise questions save drafts.jsonl
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from assistant.core.errors import TunewiseError
from retrieval.chunking import Chunk

QUESTIONS_FILE = "eval-questions.jsonl"
"""The project's reviewed questions, in its folder; eval-retrieval and Measure use them by default."""
REVIEW_COLUMNS = ("keep", "question", "source", "characters", "passage")
"""The review table's columns (the Knowledge tab): rows in, rows out."""
EXCERPT_CHARS = 400
MIN_QUESTION_CHARS = 10
MAX_QUESTION_CHARS = 200
COPIED_WORDS = 8
"""A question sharing this many consecutive words with its passage copies it instead of asking."""

PROMPT = ("You write search questions for testing a document search engine. Read the passage and write "
          "one question that a user of these documents might ask and that the passage answers. Ask about "
          "its facts in your own words: do not copy sentences from it and do not mention the passage. "
          "Reply with the question only, on one line.")
_LABEL = re.compile(r"^\s*(?:[-*\u2022>]+|\d+\s*[.)]|q\s*\d*\s*[:.)]|question\s*\d*\s*[:.)-])\s*", re.IGNORECASE)
_LEAD_IN = re.compile(r"^.{0,60}?\bquestion\b[^:?]{0,30}:\s*(?P<rest>.+)$", re.IGNORECASE)
_MENTIONS_PASSAGE = re.compile(r"\b(passage|excerpt|the text|this text|given text)\b", re.IGNORECASE)
_FILLER_WORDS = (
    "what whats which who whom whose when where why how is are was were be been do does did the a an of to in on "
    "for and or it its s this that these those there can could would should will you your we they he she his her "
    "my our their has have had with by at from as about answer answers question questions main idea topic point "
    "summary")
_FILLER = frozenset(_FILLER_WORDS.split())
"""Words that say nothing about a passage: a question made only of them ("What is the answer?") is generic."""


class QuestionsError(TunewiseError):
    """Questions cannot be made, saved or read; the message says why and what to do."""


class NoDocumentsError(QuestionsError):
    """The project has nothing indexed (or nothing long enough) to ask about."""


@dataclass(frozen=True)
class QuestionSettings:
    count: int = 20
    """How many passages to ask about (one question each)."""
    seed: int = 0
    """Which passages: the same seed and documents give the same passages."""
    min_chars: int = 200
    """Passages shorter than this (a heading, a table of contents line) are not asked about."""
    max_new_tokens: int = 64
    """The model's reply cap; a question is one line."""
    batch_size: int = 8
    """Passages answered together (left-padded batches are several times faster on a CPU)."""

    def __post_init__(self) -> None:
        if not 1 <= self.count <= 500:
            raise QuestionsError(f"count must be between 1 and 500, not {self.count}")
        if self.min_chars < 0 or self.max_new_tokens < 8 or self.batch_size < 1:
            raise QuestionsError("min_chars must be >= 0, max_new_tokens >= 8 and batch_size >= 1")


@dataclass(frozen=True)
class CandidateQuestion:
    question: str
    """The cleaned question; empty when the model's reply was not a usable question."""
    source: str
    """The passage's file name."""
    spans: tuple[tuple[int, int], ...]
    """The passage's character span in the extracted text: the gold span."""
    excerpt: str
    """The start of the passage, for the person reviewing the question."""

    def to_record(self) -> dict:
        return {"question": self.question, "source": self.source, "spans": [list(s) for s in self.spans],
                "passage": self.excerpt}


def excerpt_of(text: str, limit: int = EXCERPT_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit].rsplit(" ", 1)[0] + " ..."


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.casefold())


def copies_passage(question: str, passage: str, run: int = COPIED_WORDS) -> bool:
    """Whether the question repeats the passage: all its words, or ``run`` of them in a row, appear
    in the passage in that order."""
    asked, source = _words(question), _words(passage)
    n = min(run, len(asked))
    if n == 0:
        return False
    grams = {tuple(source[i:i + n]) for i in range(len(source) - n + 1)}
    return any(tuple(asked[i:i + n]) in grams for i in range(len(asked) - n + 1))


def clean_question(reply: str, passage: str) -> str | None:
    """The question in a model's reply, or None when there is no usable one.

    Keeps the first non-empty line, without labels ("Question:", "1.", "- ", quotes, bold) and up to
    its first '?'. Refuses a line without a '?', one shorter than three words or longer than
    MAX_QUESTION_CHARS, a generic one ("What is the answer?", which small models like to write), one
    that mentions the passage (a user never sees it) and one that copies the passage (a search for
    copied words measures nothing).
    """
    line = next((raw.strip() for raw in (reply or "").splitlines() if raw.strip()), "")
    line = line.replace("**", "").replace("__", "")
    lead_in = _LEAD_IN.match(line)
    if lead_in:
        line = lead_in.group("rest")
    previous = None
    while previous != line:
        previous = line
        line = _LABEL.sub("", line).strip().strip("\"'`\u201c\u201d\u2018\u2019").strip()
    if "?" not in line:
        return None
    question = " ".join(line[:line.index("?")].split()) + "?"
    if question[:1].islower():
        question = question[:1].upper() + question[1:]
    words = _words(question)
    if not MIN_QUESTION_CHARS <= len(question) <= MAX_QUESTION_CHARS or len(words) < 3:
        return None
    if all(word in _FILLER for word in words):
        return None
    if _MENTIONS_PASSAGE.search(question) or copies_passage(question, passage):
        return None
    return question


def pick_passages(passages: Sequence[Chunk], count: int, seed: int = 0, min_chars: int = 200) -> list[Chunk]:
    """Up to ``count`` passages spread over the documents: each document's passages in a seeded
    order, taken from each document in turn, so a long document does not crowd out the others.
    Returned in document order."""
    by_document: dict[str, list[Chunk]] = {}
    for passage in sorted(passages, key=lambda p: (p.source, p.doc_id, p.index)):
        if len(passage.text.strip()) >= min_chars:
            by_document.setdefault(passage.doc_id, []).append(passage)
    rng = random.Random(seed)
    queues = []
    for doc_passages in by_document.values():
        shuffled = list(doc_passages)
        rng.shuffle(shuffled)
        queues.append(shuffled)
    picked: list[Chunk] = []
    for turn in range(max((len(q) for q in queues), default=0)):
        picked += [q[turn] for q in queues if turn < len(q)]
    return sorted(picked[:count], key=lambda p: (p.source, p.doc_id, p.start))


def indexed_passages(index) -> list[Chunk]:
    """Every chunk of the index's whole documents (a retrieval.index.DocumentIndex), in order."""
    return [c for document in index.documents() for c in index.document_chunks(document.doc_id)]


def question_prompt(passage: Chunk) -> list[dict]:
    return [{"role": "system", "content": PROMPT},
            {"role": "user", "content": f"Passage (from {passage.source}):\n{passage.text.strip()}\n\nQuestion:"}]


Progress = Callable[[float, str], None]


def draft_questions(knowledge_base, load_model: Callable[[], object], settings: QuestionSettings | None = None,
                    progress: Progress | None = None) -> list[CandidateQuestion]:
    """One candidate question per chosen passage of the project's documents, for review.

    ``knowledge_base``: the project's assistant.services.knowledge.KnowledgeBase; ``load_model``:
    returns the assistant.runtime.generation.LoadedModel that writes the questions (called only once
    there are passages, so an empty project fails fast). The base model answers: adapters are off.
    """
    from assistant.runtime.generation import BASE, GenerationSettings, generate_batch
    from assistant.runtime.models import ModelUnavailableError

    settings = settings or QuestionSettings()
    passages = indexed_passages(knowledge_base.index)
    if not passages:
        raise NoDocumentsError("the project has no indexed documents to make questions from",
                               "add documents first (Knowledge tab, or tunewise ingest PATH)")
    chosen = pick_passages(passages, settings.count, settings.seed, settings.min_chars)
    if not chosen:
        raise NoDocumentsError(f"no passage of the project's documents has {settings.min_chars} characters or more "
                               "to ask about", "add longer documents, or write the questions by hand")
    try:
        loaded = load_model()
    except ModelUnavailableError as error:
        raise QuestionsError(f"no model to write the questions: {error}",
                             "pick a model that loads (the model picker, or --model), or upload questions "
                             "you wrote") from error
    generation = GenerationSettings(max_new_tokens=settings.max_new_tokens)
    candidates: list[CandidateQuestion] = []
    for start in range(0, len(chosen), settings.batch_size):
        if progress:
            progress(start / len(chosen), f"passage {start + 1} of {len(chosen)}")
        batch = chosen[start:start + settings.batch_size]
        replies = generate_batch(loaded, [question_prompt(p) for p in batch], generation, adapter=BASE,
                                 batch_size=settings.batch_size)
        for passage, (reply, _, _) in zip(batch, replies, strict=True):
            candidates.append(CandidateQuestion(clean_question(reply, passage.text) or "", passage.source,
                                                ((passage.start, passage.end),), excerpt_of(passage.text)))
    if progress:
        progress(1.0, "done")
    return candidates


# --- the review table and the saved file ------------------------------------------------------


def review_rows(candidates: Sequence[CandidateQuestion]) -> list[list]:
    """Rows of the review table (REVIEW_COLUMNS); a row without a usable question starts unticked."""
    return [[bool(c.question), c.question, c.source, ", ".join(f"{s}-{e}" for s, e in c.spans), c.excerpt]
            for c in candidates]


def _ticked(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "x", "✓")
    return bool(value) and value == value  # NaN (an empty cell) is not ticked


def _spans(text: str, row: int) -> tuple[tuple[int, int], ...]:
    try:
        spans = tuple((int(s), int(e)) for s, e in (part.split("-") for part in str(text).split(",") if part.strip()))
    except ValueError:
        spans = ()
    if not spans or any(e <= s for s, e in spans):
        raise QuestionsError(f"row {row}: characters must be START-END, as the table gave them (got {text!r})",
                             "make the questions again, or leave that cell as it was")
    return spans


def questions_from_rows(rows: Sequence[Sequence]) -> list[CandidateQuestion]:
    """The reviewed table as questions: ticked rows only, with their edited text. A ticked row must
    have a question; a deleted row is simply not there."""
    questions = []
    for number, row in enumerate(rows, start=1):
        cells = [*row, *[""] * (len(REVIEW_COLUMNS) - len(row))]
        keep, question, source, characters, passage = cells[:len(REVIEW_COLUMNS)]
        if not _ticked(keep):
            continue
        question = " ".join(str(question or "").split())
        if not question or question == "nan":
            raise QuestionsError(f"row {number} is ticked but has no question",
                                 "write the question the passage answers, or untick the row")
        if not str(source or "").strip():
            raise QuestionsError(f"row {number} has no source file")
        questions.append(CandidateQuestion(question, str(source).strip(), _spans(characters, number),
                                           str(passage or "")))
    return questions


def questions_path(workspace, project: str) -> Path:
    return workspace.project(project).path / QUESTIONS_FILE


def write_questions(path: Path, questions: Sequence[CandidateQuestion]) -> Path:
    """Questions as JSONL that retrieval.evaluate.read_questions reads, written whole or not at all."""
    from trainers.atomic_files import write_text_atomic

    write_text_atomic(Path(path), "".join(json.dumps(q.to_record(), ensure_ascii=False) + "\n" for q in questions))
    return Path(path)


def save_questions(workspace, project: str, questions: Sequence[CandidateQuestion]) -> Path:
    """Make ``questions`` the project's questions (replacing the saved ones)."""
    if not workspace.exists(project):
        raise QuestionsError(f"there is no project named {project!r}")
    usable = [q for q in questions if q.question.strip()]
    if not usable:
        raise QuestionsError("no questions to save", "tick at least one row that has a question")
    with workspace.locked(project):
        return write_questions(questions_path(workspace, project), usable)


def read_candidates(path: Path) -> list[CandidateQuestion]:
    """Questions from a JSONL file in the saved format (each line's number in the error)."""
    questions = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            questions.append(CandidateQuestion(str(record["question"]), str(record["source"]),
                                               tuple((int(s), int(e)) for s, e in record.get("spans", ())),
                                               str(record.get("passage") or "")))
        except (KeyError, TypeError, ValueError) as error:
            raise QuestionsError(f"{path}, line {number}: expected question, source and spans ({error})") from error
    return questions


def saved_questions(workspace, project: str) -> list[CandidateQuestion]:
    """The project's saved questions; none when it has not saved any."""
    path = questions_path(workspace, project)
    if not workspace.exists(project) or not path.is_file():
        return []
    return read_candidates(path)
