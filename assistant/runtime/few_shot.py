"""Few-shot prompting from the user's own examples: the "just prompt" answer, made measurable.

A few-shot variant places the task's system prompt and K of the user's training examples before the
question as earlier chat turns. Which K: the examples most like the question, found with BM25 over
the examples' user turns (SQLite FTS5 in memory, the same query rules as the document index's
lexical search, retrieval/lexical.py), or simply the first K. K is the user's K, lowered until the
examples fit the token budget the model's context leaves.

Two rules keep a measurement honest: an example whose question is the very question asked is never
shown (the evaluated case must not answer itself), and examples whose question occurs in the
evaluation data are left out of the pool when that data is known (:meth:`FewShotPool.without`).
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from retrieval.lexical import fts_match, query_terms

DEFAULT_SHOTS = 4
"""Examples shown by default: with four, the bundled model's Snips answers go from no valid JSON to
most of them (bench/proof.py measures it); more cost prompt time on a CPU for little more."""
ORDERS = ("similar", "first")
TURN_OVERHEAD_TOKENS = 6
"""Tokens a chat template adds around one message (role markers, separators): ChatML adds 5."""


def _normal(text: str) -> str:
    return " ".join(str(text).lower().split())


@dataclass(frozen=True)
class FewShotExample:
    """One of the user's examples as earlier turns of a conversation (no system message)."""

    number: int
    """Its place in the pool's source (1 = the first example), as reports name it."""
    turns: tuple[dict, ...]
    tokens: int
    """What its turns cost in the prompt, chat markers included (approximately)."""

    @property
    def question(self) -> str:
        return next((m["content"] for m in self.turns if m["role"] == "user"), "")


@dataclass(frozen=True)
class FewShotPool:
    """The examples a few-shot variant may show, the task's system prompt, and how many to show."""

    examples: tuple[FewShotExample, ...]
    system_prompt: str | None = None
    """The task's instruction: the system message most of the examples carry (None if none do)."""
    shots: int = DEFAULT_SHOTS
    order: str = "similar"
    _index: sqlite3.Connection | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.order not in ORDERS:
            raise ValueError(f"few-shot order must be one of {ORDERS}, not {self.order!r}")
        if self.shots < 0:
            raise ValueError("the number of few-shot examples cannot be negative")

    @classmethod
    def from_conversations(cls, conversations: Iterable[Sequence[dict]], count_tokens: Callable[[str], int],
                           shots: int = DEFAULT_SHOTS, order: str = "similar") -> FewShotPool:
        """A pool of complete examples (each ends with the assistant's answer); ``count_tokens(text)``
        is the model's tokenizer's count."""
        conversations = list(conversations)
        examples = []
        for number, conversation in enumerate(conversations, start=1):
            turns = tuple({"role": m["role"], "content": m["content"]} for m in conversation if m["role"] != "system")
            if len(turns) < 2 or turns[-1]["role"] != "assistant":
                continue
            tokens = sum(count_tokens(m["content"]) + TURN_OVERHEAD_TOKENS for m in turns)
            examples.append(FewShotExample(number, turns, tokens))
        return cls(tuple(examples), system_prompt_of(conversations), shots, order)

    def with_choice(self, shots: int | None = None, order: str | None = None) -> FewShotPool:
        return replace(self, shots=self.shots if shots is None else shots, order=order or self.order, _index=None)

    def without(self, questions: Iterable[str]) -> FewShotPool:
        """This pool less every example whose question is one of ``questions`` (the evaluation's)."""
        banned = {_normal(q) for q in questions}
        kept = tuple(e for e in self.examples if _normal(e.question) not in banned)
        return replace(self, examples=kept, _index=None)

    def pick(self, question: str, budget_tokens: int) -> list[FewShotExample]:
        """Up to ``shots`` examples for ``question`` whose turns fit ``budget_tokens``, most similar
        first (or first in the file), never one asking ``question`` itself. The order in the prompt is
        the reverse: the most similar example sits next to the question."""
        if not self.shots or budget_tokens <= 0:
            return []
        asked = _normal(question)
        candidates = [e for e in self._ranked(question) if _normal(e.question) != asked]
        chosen, spent = [], 0
        for example in candidates:
            if len(chosen) == self.shots:
                break
            if spent + example.tokens <= budget_tokens:
                chosen.append(example)
                spent += example.tokens
        return chosen

    def _ranked(self, question: str) -> list[FewShotExample]:
        if self.order == "first":
            return list(self.examples)
        terms = query_terms(question)
        if not terms or not self.examples:
            return list(self.examples)
        index = self._index or self._build_index()
        found = [row[0] for row in index.execute(
            "SELECT rowid FROM shots WHERE shots MATCH ? ORDER BY bm25(shots), rowid", (fts_match(terms),))]
        matched = set(found)
        # Unmatched examples follow in file order, so K is reached even for an unusual question.
        return [self.examples[i] for i in found] + [e for i, e in enumerate(self.examples) if i not in matched]

    def _build_index(self) -> sqlite3.Connection:
        index = sqlite3.connect(":memory:", check_same_thread=False)
        index.execute("CREATE VIRTUAL TABLE shots USING fts5(question)")
        index.executemany("INSERT INTO shots(rowid, question) VALUES (?, ?)",
                          [(i, e.question) for i, e in enumerate(self.examples)])
        object.__setattr__(self, "_index", index)  # a cache, built on first use
        return index


def system_prompt_of(conversations: Iterable[Sequence[dict]]) -> str | None:
    """The task's instruction: the system message most of the examples carry (None if none has one)."""
    counts = Counter(m["content"] for c in conversations for m in c if m["role"] == "system")
    return counts.most_common(1)[0][0] if counts else None


def with_shots(messages: Sequence[dict], shots: Sequence[FewShotExample], system_prompt: str | None) -> list[dict]:
    """``messages`` with the examples placed before them as earlier turns, after the system prompt:
    the conversation's own system messages when it has them, else ``system_prompt``."""
    own_system = [m for m in messages if m["role"] == "system"]
    system = own_system or ([{"role": "system", "content": system_prompt}] if system_prompt else [])
    turns = [dict(m) for example in reversed(list(shots)) for m in example.turns]
    return [*system, *turns, *(m for m in messages if m["role"] != "system")]
