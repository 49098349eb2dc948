"""Scores for one answer against its reference: pure functions, no model."""

from __future__ import annotations

import json
import re
from typing import Any


def normalise_answer(text: str) -> str:
    return " ".join(text.strip().lower().split())


def exact_match(answer: str, reference: str) -> bool:
    return normalise_answer(answer) == normalise_answer(reference)


def contains_reference(answer: str, reference: str) -> bool:
    return normalise_answer(reference) in normalise_answer(answer)


def parse_json(text: str) -> Any | None:
    """The JSON value in ``text`` (a fenced block is unwrapped), or None."""
    stripped = text.strip()
    fenced = re.match(r"^```(?:json)?\s*(.*?)\s*```$", stripped, re.S)
    if fenced:
        stripped = fenced.group(1)
    try:
        return json.loads(stripped)
    except (json.JSONDecodeError, ValueError):
        return None


def json_valid(answer: str) -> bool:
    return parse_json(answer) is not None


def field_accuracy(answer: str, reference: str) -> float:
    """Share of the reference object's top-level fields that the answer has with equal values."""
    expected, got = parse_json(reference), parse_json(answer)
    if not isinstance(expected, dict) or not expected:
        return float(expected == got)
    if not isinstance(got, dict):
        return 0.0
    return sum(1 for key, value in expected.items() if got.get(key) == value) / len(expected)


def cites_a_source(answer: str) -> bool:
    return re.search(r"\[\d+\]", answer) is not None
