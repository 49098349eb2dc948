"""The dataset report: what is wrong with a set of examples before anyone trains on it.

A pure function over parsed examples. Two texts are the same ("exact") when they differ only
in letter case and leading or trailing whitespace, and near-duplicates ("near") when they are
equal after also dropping punctuation and collapsing inner whitespace: cheap, easy to reason
about, and it catches the copies people actually make (a full stop, a capital, a double space).
"""

from __future__ import annotations

import hashlib
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace

from trainers.formats import Example, ParsedFile

TokenCount = Callable[[Example], int]
MAX_LABEL_WORDS = 4
MAX_LABELS = 50
DOMINANT_SHARE = 0.9
"""One label on this share of the examples (or more) teaches the adapter to answer it regardless."""
MIN_FOR_SHARE = 20
"""Fewest examples on which a dominant share is warned about; on fewer, only a single label is."""


def approximate_tokens(example: Example) -> int:
    """About four characters a token, plus a few per turn for the template's markers."""
    return sum(len(m["content"]) // 4 + 4 for m in example.messages)


def normalise(text: str) -> str:
    """The near-duplicate key: lower case, no punctuation, single spaces."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def exact_key(text: str) -> str:
    """The exact key: the text but for letter case and surrounding whitespace."""
    return text.strip().casefold()


@dataclass(frozen=True)
class TokenStats:
    min: int = 0
    median: float = 0
    p95: int = 0
    max: int = 0
    over_max_length: int = 0
    max_length: int = 0
    total: int = 0
    answer_cut_off: int = 0
    """Examples whose prompt alone fills the max length: truncation leaves none of the answer to learn."""


@dataclass
class DatasetReport:
    format: str
    records: int
    valid: int
    errors: list[dict] = field(default_factory=list)
    duplicates: list[dict] = field(default_factory=list)
    """Groups of lines holding the same example: {"kind": "exact"|"near", "lines": [...]}."""
    conflicts: list[dict] = field(default_factory=list)
    """The same prompt with different answers: {"lines": [...], "answers": n}."""
    leakage: list[dict] = field(default_factory=list)
    """Training and evaluation examples with the same prompt: {"kind", "train_line", "eval_line"}."""
    tokens: TokenStats = field(default_factory=TokenStats)
    labels: dict[str, int] = field(default_factory=dict)
    """Answer counts when answers are short labels (a classification task); else empty."""
    warnings: list[dict] = field(default_factory=list)
    """Problems of the set as a whole, which exclude no example: {"kind", "message", ...}."""
    eval_records: int = 0
    eval_valid: int = 0
    fingerprint: str = ""
    """Hash of the valid examples, stored with an adapter to say what it was trained on."""

    def to_dict(self) -> dict:
        return asdict(self)


def _groups(keys: Sequence[tuple[str, int]]) -> list[list[int]]:
    by_key: dict[str, list[int]] = defaultdict(list)
    for key, line in keys:
        by_key[key].append(line)
    return [lines for lines in by_key.values() if len(lines) > 1]


def _turns_key(messages: Sequence[dict], key: Callable[[str], str]) -> str:
    return "\n".join(f"{m['role']}: {key(m['content'])}" for m in messages)


def find_duplicates(examples: Sequence[Example]) -> list[dict]:
    exact = _groups([(_turns_key(e.messages, exact_key), e.line) for e in examples])
    exact_sets = {tuple(g) for g in exact}
    near = [g for g in _groups([(normalise(e.prompt + "\n" + e.answer), e.line) for e in examples])
            if tuple(g) not in exact_sets]
    return [{"kind": "exact", "lines": g} for g in exact] + [{"kind": "near", "lines": g} for g in near]


def find_conflicts(examples: Sequence[Example]) -> list[dict]:
    answers: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for e in examples:
        answers[normalise(e.prompt)][normalise(e.answer)].append(e.line)
    conflicts = []
    for by_answer in answers.values():
        if len(by_answer) > 1:
            lines = sorted(line for group in by_answer.values() for line in group)
            conflicts.append({"lines": lines, "answers": len(by_answer)})
    return conflicts


def find_leakage(train: Sequence[Example], evaluation: Sequence[Example]) -> list[dict]:
    def prompt_key(e: Example, key: Callable[[str], str]) -> str:
        return _turns_key(e.messages[:-1], key)

    exact = {prompt_key(e, exact_key): e.line for e in train}
    near = {normalise(e.prompt): e.line for e in train}
    pairs = []
    for e in evaluation:
        if prompt_key(e, exact_key) in exact:
            pairs.append({"kind": "exact", "train_line": exact[prompt_key(e, exact_key)], "eval_line": e.line})
        elif normalise(e.prompt) in near:
            pairs.append({"kind": "near", "train_line": near[normalise(e.prompt)], "eval_line": e.line})
    return pairs


def token_stats(examples: Sequence[Example], count: TokenCount, max_length: int) -> TokenStats:
    if not examples:
        return TokenStats(max_length=max_length)
    counted = [(count(e), e) for e in examples]  # counting may run a real tokenizer: once per example
    lengths = sorted(n for n, _ in counted)
    p95 = lengths[min(len(lengths) - 1, int(round(0.95 * (len(lengths) - 1))))]
    over = [e for n, e in counted if n > max_length]
    cut_off = sum(1 for e in over if count(replace(e, messages=e.messages[:-1])) >= max_length)
    return TokenStats(lengths[0], statistics.median(lengths), p95, lengths[-1], len(over), max_length, sum(lengths),
                      cut_off)


def label_balance(examples: Sequence[Example]) -> dict[str, int]:
    answers = [e.answer.strip() for e in examples]
    if not answers or any(len(a.split()) > MAX_LABEL_WORDS for a in answers):
        return {}
    counts = Counter(answers)
    return dict(counts.most_common()) if len(counts) <= MAX_LABELS else {}


def _is_label(value: object) -> bool:
    return isinstance(value, bool) or (isinstance(value, str) and 0 < len(value.split()) <= MAX_LABEL_WORDS)


def categorical_fields(examples: Sequence[Example]) -> dict[str, Counter]:
    """Value counts of the answers' categorical JSON fields (like ``intent``), by field.

    A field counts when the answers are JSON objects and its value, wherever it appears, is a
    short string (a label of up to ``MAX_LABEL_WORDS`` words) or a boolean; nested objects
    (like Snips' ``slots``) and free text are left out.
    """
    from trainers.metrics import parse_json

    objects = [value for value in (parse_json(e.answer) for e in examples) if isinstance(value, dict)]
    if not objects:
        return {}
    values: dict[str, list] = defaultdict(list)
    for answer in objects:
        for key, value in answer.items():
            values[key].append(value)
    return {key: Counter(json_label(v) for v in found) for key, found in values.items()
            if all(_is_label(v) for v in found)}


def json_label(value: str | bool) -> str:
    """A field's value as a label is written: ``PlayMusic``, ``true``."""
    return value if isinstance(value, str) else str(value).lower()


def label_warnings(examples: Sequence[Example], labels: dict[str, int]) -> list[dict]:
    """A warning for each label that covers (nearly) every example, answer labels and JSON fields.

    One value on every example (at least two), or on ``DOMINANT_SHARE`` of at least
    ``MIN_FOR_SHARE`` examples, teaches the adapter to give that value whatever the input. A
    field that is constant by design (a schema version) is warned about too: the warning says
    what the data holds, and the person knows whether it matters.
    """
    fields = categorical_fields(examples)
    # JSON answers are judged by their fields; a short one ({"intent": "X"}) also passes for a label.
    sources: list[tuple[str | None, Counter]] = sorted(fields.items()) if fields else (
        [(None, Counter(labels))] if labels else [])
    warnings = []
    for name, counts in sources:
        total = sum(counts.values())
        value, count = counts.most_common(1)[0]
        single = len(counts) == 1 and total >= 2
        if not single and not (total >= MIN_FOR_SHARE and count / total >= DOMINANT_SHARE):
            continue
        have = f"have {name}={value}" if name else f"answer {value}"
        share = (f"all {total} examples {have}" if single
                 else f"{count} of {total} examples ({count / total:.0%}) {have}")
        always = "always" if single else "almost always"
        warnings.append({"kind": "dominant_label", "field": name, "value": value, "count": count, "total": total,
                         "message": f"{share}: the adapter will learn to {always} answer {value}; add examples of "
                                    "the other labels"})
    return warnings


def fingerprint(examples: Sequence[Example]) -> str:
    digest = hashlib.sha256()
    for e in examples:
        digest.update(repr(e.messages).encode())
    return digest.hexdigest()[:16]


def build_report(train: ParsedFile, evaluation: ParsedFile | None = None, count: TokenCount = approximate_tokens,
                 max_length: int = 1024) -> DatasetReport:
    """The full report for a training file and, optionally, its evaluation file."""
    errors = [p.to_dict() for p in train.problems]
    labels = label_balance(train.examples)
    report = DatasetReport(
        format=train.format, records=train.records, valid=len(train.examples), errors=errors,
        duplicates=find_duplicates(train.examples), conflicts=find_conflicts(train.examples),
        tokens=token_stats(train.examples, count, max_length), labels=labels,
        warnings=label_warnings(train.examples, labels), fingerprint=fingerprint(train.examples))
    if evaluation is not None:
        report.eval_records = evaluation.records
        report.eval_valid = len(evaluation.examples)
        report.leakage = find_leakage(train.examples, evaluation.examples)
        report.errors += [p.to_dict() | {"file": "eval"} for p in evaluation.problems]
    return report
