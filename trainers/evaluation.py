"""Aggregate answer scores for a held-out set (pure; generation happens elsewhere)."""

from __future__ import annotations

from collections.abc import Sequence

from trainers.metrics import contains_reference, exact_match, field_accuracy, json_valid, parse_json


def score_answers(answers: Sequence[str], references: Sequence[str]) -> dict:
    """Exact match, contains-reference, JSON validity and field accuracy, as shares of the set."""
    if len(answers) != len(references):
        raise ValueError("one answer per reference")
    n = len(answers) or 1
    pairs = list(zip(answers, references, strict=True))
    return {
        "examples": len(answers),
        "exact_match": sum(exact_match(a, r) for a, r in pairs) / n,
        "contains_reference": sum(contains_reference(a, r) for a, r in pairs) / n,
        "json_valid": sum(json_valid(a) for a, _ in pairs) / n,
        "field_accuracy": sum(field_accuracy(a, r) for a, r in pairs) / n,
    }


def field_match_rate(answers: Sequence[str], references: Sequence[str], key: str) -> float:
    """Share of answers whose JSON has ``key`` equal to the reference's (e.g. the intent)."""
    hits = 0
    for answer, reference in zip(answers, references, strict=True):
        got, expected = parse_json(answer), parse_json(reference)
        hits += isinstance(got, dict) and isinstance(expected, dict) and got.get(key) == expected.get(key)
    return hits / (len(answers) or 1)
