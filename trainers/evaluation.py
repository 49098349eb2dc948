"""Aggregate answer scores for a held-out set (pure; generation happens elsewhere)."""

from __future__ import annotations

from collections.abc import Sequence

from trainers.metrics import contains_reference, exact_match, field_accuracy, json_valid, parse_json

CASE_METRICS = {
    "exact_match": exact_match,
    "contains_reference": contains_reference,
    "json_valid": lambda answer, _reference: json_valid(answer),
    "field_accuracy": field_accuracy,
}
"""Per-case scores in [0, 1] of an (answer, reference) pair, by name: the one list a new metric joins
(the reports, the Compare tab's table and the plan check read their names from here)."""


def score_answers(answers: Sequence[str], references: Sequence[str]) -> dict:
    """Each of :data:`CASE_METRICS` as a mean over the set (a share for the yes/no ones)."""
    if len(answers) != len(references):
        raise ValueError("one answer per reference")
    n = len(answers) or 1
    pairs = list(zip(answers, references, strict=True))
    return {"examples": len(answers)} | {
        name: sum(float(score(a, r)) for a, r in pairs) / n for name, score in CASE_METRICS.items()}


def field_match_rate(answers: Sequence[str], references: Sequence[str], key: str) -> float:
    """Share of answers whose JSON has ``key`` equal to the reference's (e.g. the intent)."""
    hits = 0
    for answer, reference in zip(answers, references, strict=True):
        got, expected = parse_json(answer), parse_json(reference)
        hits += isinstance(got, dict) and isinstance(expected, dict) and got.get(key) == expected.get(key)
    return hits / (len(answers) or 1)
