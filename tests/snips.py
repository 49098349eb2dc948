"""The Snips text-to-JSON task as chat examples (the shared copy has text, intent and slots)."""

from __future__ import annotations

import json

from tests.paths import SHARED_DATA

SNIPS = SHARED_DATA / "tasks" / "snips"
SYSTEM = "Return the intent and slots of the user's request as JSON."


def snips_answer(record: dict) -> str:
    return json.dumps({"intent": record["intent"], "slots": record["slots"]}, ensure_ascii=False, sort_keys=True)


def snips_chat_jsonl(split: str, limit: int | None = None, system: bool = True, seed: int | None = None) -> str:
    """OpenAI chat JSONL text for the ``train`` or ``test`` file.

    The files are grouped by intent, so ``limit`` with a ``seed`` takes a seeded random sample
    (all intents) rather than the first lines (one or two intents).
    """
    lines = (SNIPS / f"snips_{split}.jsonl").read_text(encoding="utf-8").splitlines()
    if seed is not None:
        import random

        random.Random(seed).shuffle(lines)
    lines = lines[:limit]
    out = []
    for line in lines:
        record = json.loads(line)
        messages = ([{"role": "system", "content": SYSTEM}] if system else []) + [
            {"role": "user", "content": record["text"]}, {"role": "assistant", "content": snips_answer(record)}]
        out.append(json.dumps({"messages": messages}, ensure_ascii=False))
    return "\n".join(out) + "\n"
