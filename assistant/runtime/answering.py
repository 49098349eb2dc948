"""Answers grounded in retrieved chunks, citing them as [n].

The prompt building, the relevance decision and citation attribution are pure. Answers are generated in
one place, assistant.runtime.variants.VariantModel (the Knowledge tab, Compare, ``tunewise chat`` and
``/v1`` alike), which builds its grounded prompts with :func:`cited_messages`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

NOTHING_FOUND = "I could not find this in your documents, so I will not guess."
"""The answer to a question asked of the documents when no passage is relevant (VariantModel.answer_from_documents)."""
MIN_SIMILARITY = 0.25
"""Cosine similarity below which a chunk is taken as unrelated to the question (all-MiniLM-L6-v2:
unrelated sentence pairs mostly score under 0.2)."""

SYSTEM_PROMPT = ("Answer the question using only the numbered context blocks. After each statement, cite "
                 "the block it comes from as [n]. If the blocks do not contain the answer, say that you "
                 "cannot find it in the documents.")
"""The instruction of the "system" prompt style."""
USER_INSTRUCTION = ("Answer the question from the numbered documents below, in one or two sentences, using the "
                    "documents' own words, and cite the document you used as [n].")
"""The instruction of the "user" prompt style: one user turn holding instruction, documents and question."""
PROMPT_STYLES = ("user", "system")
DEFAULT_PROMPT_STYLE = "user"
"""A small model follows one user turn with the instruction beside the documents better than a system
prompt: on the bundled 135M model the "system" style answered neither of two probe questions from the
documents, the "user" style one. bench/proof.py reports both styles on the whole knowledge task."""


@dataclass(frozen=True)
class Source:
    number: int
    source: str
    page: int | None
    section: str
    snippet: str
    start: int
    end: int


def relevant_hits(hits: Sequence, min_similarity: float = MIN_SIMILARITY) -> list:
    """Hits worth showing the model: those with a known similarity at or above the bar.

    A hit found by BM25 alone has no similarity; it counts only when no dense score exists
    for any hit (a BM25-only search), where a lexical match is the only evidence there is.
    """
    scored = [h for h in hits if h.similarity is not None]
    if not scored:
        return list(hits)
    return [h for h in hits if h.similarity is not None and h.similarity >= min_similarity]


def sources_for(hits: Sequence) -> tuple[Source, ...]:
    return tuple(Source(i, h.source, h.page, h.section, " ".join(h.text.split())[:300], h.start, h.end)
                 for i, h in enumerate(hits, start=1))


TASK_CONTEXT_INTRO = "Numbered documents that may help:"
"""Introduces the blocks when the conversation brings its own system prompt (a task with an output
format, e.g. JSON): the task's instruction then stands, and nothing asks for prose or citations."""


SMALL_MODEL_PARAMS = 1_000_000_000
"""Below this size a model is shown focused passages instead of whole chunks (see focus_sentences_for)."""
FOCUS_SENTENCES = 1
"""Sentences a small model is shown: on the bundled 135M model one sentence found the answer to two of
three probe questions, two or three sentences or whole chunks (~800 characters) at most one;
bench/proof.py reports focused passages against whole chunks on the whole knowledge task."""


def focus_sentences_for(parameters: int) -> int | None:
    """How many sentences of the retrieved chunks a model of this size is shown (None: whole chunks).

    A small model loses the answer in a long context: it paraphrases the wrong sentence or drifts
    into general text. Picking the sentences that share the most words with the question (a simple
    form of contextual compression) leaves it the passage that matters; larger models read whole chunks.
    """
    return FOCUS_SENTENCES if parameters < SMALL_MODEL_PARAMS else None


def split_sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(" ".join(text.split())) if s]


def focused_blocks(question: str, hits: Sequence, sentences: int) -> list[tuple[int, object, str]]:
    """The ``sentences`` sentences of all hits that share the most content words with the question,
    as (hit number, hit, sentence), in the order of the hits; ties go to the higher-ranked hit."""
    wanted = _content_words(question)
    scored = []
    for number, hit in enumerate(hits, start=1):
        for position, sentence in enumerate(split_sentences(hit.text)):
            scored.append((-len(_content_words(sentence) & wanted), number, position, hit, sentence))
    best = sorted(scored, key=lambda s: s[:3])[:sentences]
    return [(number, hit, sentence) for _, number, _, hit, sentence in sorted(best, key=lambda s: s[1:3])]


def cited_messages(question: str, hits: Sequence, style: str = DEFAULT_PROMPT_STYLE,
                   system: Sequence[dict] = (), focus_sentences: int | None = None) -> list[dict]:
    """The chat messages for a grounded answer: the context blocks, numbered, then the question.

    ``system``: the conversation's own system messages; when given they are kept as they are and
    the blocks come after a neutral line, so a task's format instruction is not overruled.
    ``focus_sentences``: show only that many sentences of the hits (each under its hit's number),
    for small models; None shows the whole chunks.
    """
    if style not in PROMPT_STYLES:
        raise ValueError(f"prompt style must be one of {PROMPT_STYLES}, not {style!r}")
    if focus_sentences:
        shown = focused_blocks(question, hits, focus_sentences)
    else:
        shown = [(number, hit, hit.text.strip()) for number, hit in enumerate(hits, start=1)]
    blocks = []
    for i, hit, text in shown:
        where = hit.source + (f", page {hit.page}" if hit.page else "") + (f", {hit.section}" if hit.section else "")
        blocks.append(f"[{i}] ({where})\n{text}")
    context = "\n\n".join(blocks)
    if system:
        return [*system, {"role": "user", "content": f"{TASK_CONTEXT_INTRO}\n\n{context}\n\n{question.strip()}"}]
    if style == "user":
        return [{"role": "user", "content": f"{USER_INSTRUCTION}\n\n{context}\n\nQuestion: {question.strip()}"}]
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"Context:\n\n{context}\n\nQuestion: {question.strip()}"}]


_WORD = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset({"a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "have", "he", "her",
                        "his", "i", "in", "is", "it", "its", "of", "on", "or", "our", "she", "that", "the", "their",
                        "they", "this", "to", "was", "we", "were", "will", "with", "you", "your"})
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
MIN_SHARED_WORDS = 3
"""Content words a sentence must share with a block to be attributed to it."""


def _content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS}


def attribute_citations(answer: str, hits: Sequence) -> str:
    """Add [n] after each sentence of an answer that cites nothing, naming the block it shares the most
    content words with (at least MIN_SHARED_WORDS).

    Small models often answer from the blocks without writing the [n] they were asked for. The
    sources are then still known, so the marker is attributed by word overlap, the way post-hoc
    citation works in RAG tools; a sentence that matches no block gets none. Answers that already
    cite are returned unchanged, and so are structured answers (JSON, code), which a marker would break.
    """
    if not answer.strip() or re.search(r"\[\d+\]", answer) or not hits or answer.lstrip()[:1] in ("{", "[", "`"):
        return answer
    blocks = [_content_words(h.text) for h in hits]
    pieces = []
    for sentence in _SENTENCE_END.split(answer.strip()):
        words = _content_words(sentence)
        shared = [len(words & block) for block in blocks]
        best = max(range(len(blocks)), key=lambda i: shared[i])
        if shared[best] >= MIN_SHARED_WORDS:
            stripped = sentence.rstrip()
            end = len(stripped) - 1 if stripped and stripped[-1] in ".!?" else len(stripped)
            sentence = f"{stripped[:end]} [{best + 1}]{stripped[end:]}"
        pieces.append(sentence)
    return " ".join(pieces)
