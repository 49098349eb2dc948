"""Free-text answers into profile slots; anything unreadable becomes a clarifying question."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assistant.core.interview_answers import SLOT_PARSERS, parse_answer

READ = [
    ("examples", "about 2.5k", 2500), ("examples", "a few hundred", 300), ("examples", "1,000", 1000),
    ("examples", "9999", 9999), ("examples", "10k", 10_000), ("examples", "none yet", 0),
    ("examples", "zero", 0), ("examples", "roughly 120 examples", 120),
    ("examples", "a couple thousand", 2000), ("examples", "two thousand", 2000),
    ("examples", "fifty", 50), ("examples", "under 100", 99), ("examples", "tens of thousands", 20_000),
    ("examples", "~40", 40), ("examples", "1.2 million", 1_200_000),
    ("vram_gb", "an RTX 4090", 24.0), ("vram_gb", "24 GB", 24.0), ("vram_gb", "a100 80gb", 80.0),
    ("vram_gb", "no GPU, just a laptop", 0.0), ("vram_gb", "CPU only", 0.0), ("vram_gb", "T4", 16.0),
    ("vram_gb", "16 gigs", 16.0), ("vram_gb", "12", 12.0), ("vram_gb", "two 3090s", 24.0),
    ("changes", "it changes every week", "weekly"), ("changes", "monthly", "monthly"),
    ("changes", "every quarter or so", "monthly"), ("changes", "hardly ever", "rarely"),
    ("changes", "it doesn't change often", "rarely"), ("changes", "daily", "weekly"),
    ("gap", "it doesn't know our internal policies", "knowledge"),
    ("gap", "it should answer in strict JSON", "behaviour"),
    ("gap", "both", "both"), ("gap", "it lacks facts from our docs and the wrong tone", "both"),
    ("documents", "yes", True), ("documents", "nope", False), ("documents", "we have a wiki, yes", True),
    ("can_measure", "no, not really", False), ("can_measure", "yes we have a test set", True),
    ("model_size_b", "8B", 8.0), ("model_size_b", "no preference", None),
    ("model_size_b", "Llama-3.1-8B", 8.03), ("model_size_b", "500M", 0.5),
    ("model_size_b", "70 billion", 70.0),
    ("latency_sensitive", "yes", True), ("latency_sensitive", "No", False),
    ("tasks", "just one", 1), ("tasks", "3", 3), ("tasks", "three", 3),
    ("task", "Turn support emails into JSON tickets", "Turn support emails into JSON tickets"),
]


@pytest.mark.parametrize("slot, text, value", READ, ids=[f"{s}:{t}" for s, t, _ in READ])
def test_answers_are_read(slot, text, value):
    parsed = parse_answer(slot, text)
    assert parsed.ok, parsed.clarify
    assert parsed.value == value


CLARIFY = [
    ("examples", "-5", "negative"), ("examples", "", "how many"), ("examples", "lots of them!", "number"),
    ("vram_gb", "an RTX 9999", "GB"), ("vram_gb", "-8 GB", "negative"), ("vram_gb", "", "GPU"),
    ("vram_gb", "purple", "GPU"), ("gap", "asdf qwerty", "knowledge"), ("changes", "blue", "weekly"),
    ("documents", "maybe", "Yes or no"), ("can_measure", "not sure", "Yes or no"),
    ("can_measure", "banana", "yes"), ("model_size_b", "huge", "billions"),
    ("tasks", "0", "at least 1"), ("task", "", "what should the model do"), ("task", "?!", "model do"),
]


@pytest.mark.parametrize("slot, text, hint", CLARIFY, ids=[f"{s}:{t}" for s, t, _ in CLARIFY])
def test_unreadable_answers_get_a_clarifying_question(slot, text, hint):
    parsed = parse_answer(slot, text)
    assert not parsed.ok and parsed.value is None
    assert hint.lower() in parsed.clarify.lower()


@settings(max_examples=200, deadline=None)
@given(slot=st.sampled_from(sorted(SLOT_PARSERS)), text=st.text(max_size=80))
def test_no_text_crashes_a_parser(slot, text):
    parsed = parse_answer(slot, text)
    assert parsed.ok or parsed.clarify


# Answers to "how many examples?" that describe hardware: a number with a memory unit, a number
# of GPUs or a GPU model is not a count, so the question is asked again.
HARDWARE_IS_NOT_A_COUNT = [
    ("examples", "one 24 GB GPU", "24 gb"), ("examples", "24GB", "24gb"), ("examples", "16 GiB of VRAM", "16 gib"),
    ("examples", "512 MB of text", "512 mb"), ("examples", "a 12g card", "12g"), ("examples", "2 GPUs", "2 gpus"),
    ("examples", "an RTX 4090", "rtx4090"), ("examples", "A100", "a100"), ("examples", "8x H100", "h100"),
    ("examples", "a single 3090", "3090"), ("examples", "two 3090s", "3090"), ("examples", "a GPU", "gpu"),
    ("tasks", "one 24 GB GPU", "24 gb"), ("tasks", "2 GPUs", "2 gpus"),
]


@pytest.mark.parametrize("slot, text, mention", HARDWARE_IS_NOT_A_COUNT,
                         ids=[f"{s}:{t}" for s, t, _ in HARDWARE_IS_NOT_A_COUNT])
def test_an_answer_about_hardware_is_not_read_as_a_count(slot, text, mention):
    parsed = parse_answer(slot, text)
    assert not parsed.ok and parsed.value is None
    assert f'"{mention}" sounds like hardware' in parsed.clarify and "Roughly how many" in parsed.clarify


# A count said next to the hardware is still read, and numbers that only look like GPUs are counts.
COUNTS_BESIDE_HARDWARE = [
    ("examples", "500 examples on one 24 GB GPU", 500), ("examples", "1 GPU, 300 examples", 300),
    ("examples", "one gpu and about 300 labelled examples", 300), ("examples", "a few hundred examples, A100", 300),
    ("examples", "two thousand clean examples and an RTX 4090", 2000), ("examples", "4090", 4090),
    ("examples", "3090 examples", 3090), ("examples", "about 2.5k", 2500), ("examples", "10m", 10_000_000),
    ("tasks", "one task on a 24 GB GPU", 1), ("vram_gb", "one 24 GB GPU", 24.0),
]


@pytest.mark.parametrize("slot, text, value", COUNTS_BESIDE_HARDWARE,
                         ids=[f"{s}:{t}" for s, t, _ in COUNTS_BESIDE_HARDWARE])
def test_counts_beside_hardware_are_read(slot, text, value):
    parsed = parse_answer(slot, text)
    assert parsed.ok, parsed.clarify
    assert parsed.value == value
