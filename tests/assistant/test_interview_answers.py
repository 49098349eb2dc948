"""Each question's answer reads only what that question asks (issue 28, item 5a).

"I have about 400 examples", typed at the documents question, was read as "yes, documents hold the
facts" (the words "I have") and turned the draft plan to retrieval. A number is never a yes: an answer
that is an example count is kept for the examples question and the question asked again; any other
number is asked back. A dozen phrasings per question, as people type them.
"""

import pytest

from assistant.core import interview
from assistant.core.interview_answers import parse_answer

ASK = object()
"""The answer is not read: the question is asked again."""

PHRASINGS = {
    "task": [
        ("Turn support emails into JSON tickets", "Turn support emails into JSON tickets"),
        ("answer questions about our HR policies", "answer questions about our HR policies"),
        ("classify tickets, we have about 400 examples", "classify tickets, we have about 400 examples"),
        ("summarise meeting notes", "summarise meeting notes"),
        ("SQL from plain English questions", "SQL from plain English questions"),
        ("a support bot for our product", "a support bot for our product"),
        ("extract intents from requests as JSON", "extract intents from requests as JSON"),
        ("write replies in our brand voice", "write replies in our brand voice"),
        ("", ASK), ("?!", ASK), ("42", ASK), ("I have about 400 examples", ASK),
    ],
    "gap": [
        ("knowledge", "knowledge"), ("behaviour", "behaviour"), ("behavior", "behaviour"), ("both", "both"),
        ("it doesn't know our product catalogue", "knowledge"), ("the answers must be valid JSON", "behaviour"),
        ("wrong tone, far too chatty", "behaviour"), ("it lacks facts about our internal policies", "knowledge"),
        ("both facts and format", "both"), ("it makes up facts", "knowledge"),
        ("not sure", ASK), ("I have about 400 examples", ASK), ("I don't know", ASK),
    ],
    "documents": [
        ("yes", True), ("Yes, our wiki", True), ("yeah, the product manuals", True),
        ("we have a Confluence wiki", True), ("about 2k pages of docs", True), ("yes, about 300 PDFs", True),
        ("no, the model knows the facts", False), ("nope", False), ("no documents", False),
        ("we don't have any documents", False), ("No, nothing written down", False),
        ("not sure", ASK), ("I have about 400 examples", ASK), ("we have ~400 labelled pairs", ASK),
        ("400", ASK), ("about 400", ASK), ("maybe", ASK),
    ],
    "examples": [
        ("about 400", 400), ("I have about 400 examples", 400), ("we have ~400 labelled pairs", 400),
        ("2.5k", 2500), ("a few hundred", 300), ("none yet", 0), ("no", 0), ("zero", 0),
        ("roughly 1,200 rows in a CSV", 1200), ("10k or more", 10_000), ("yes, about 400", 400),
        ("12 documents and 400 examples", 400), ("3 datasets with 400 examples in all", 400),
        ("not sure", ASK), ("an RTX 4090", ASK), ("yes, our wiki", ASK),
    ],
    "can_measure": [
        ("yes", True), ("yes, we have reference answers", True), ("we have a rubric", True),
        ("sure, exact match against the labels", True), ("we can check it with a JSON schema", True),
        ("we have 50 held-out cases with answers", True),
        ("no", False), ("not really, it's subjective", False), ("we can't tell", False), ("not yet", False),
        ("not sure", ASK), ("no idea", ASK), ("I have about 400 examples", ASK), ("400", ASK),
    ],
    "changes": [
        ("weekly", "weekly"), ("every week", "weekly"), ("every sprint", "weekly"), ("all the time", "weekly"),
        ("daily", "weekly"), ("monthly", "monthly"), ("once a quarter", "monthly"),
        ("every couple of months", "monthly"), ("not very often, maybe monthly", "monthly"),
        ("rarely", "rarely"), ("hardly ever", "rarely"), ("they're stable", "rarely"),
        ("maybe once a year", "rarely"), ("not very often", "rarely"),
        ("not sure", ASK), ("I have about 400 examples", ASK),
    ],
    "vram_gb": [
        ("no GPU", 0.0), ("an RTX 4090", 24.0), ("24 GB", 24.0), ("A100 80GB", 80.0), ("T4", 16.0),
        ("just a laptop", 0.0), ("a MacBook", 0.0), ("H100", 80.0), ("2x 3090", 24.0), ("16", 16.0),
        ("we only have CPUs", 0.0), ("a 12 GB card", 12.0),
        ("not sure", ASK), ("I have about 400 examples", ASK),
    ],
    "model_size_b": [
        ("no preference", None), ("8B", 8.0), ("Llama 3.1 8B", 8.03), ("500M", 0.5), ("70 billion", 70.0),
        ("1B", 1.0), ("whatever fits", None), ("Qwen2.5-7B", 7.62), ("not sure", None), ("up to you", None),
        ("3b please", 3.0), ("I have about 400 examples", ASK), ("huge", ASK),
    ],
    "latency_sensitive": [
        ("yes", True), ("yes, it must answer in under 100 ms", True), ("it has to be fast and cheap", True),
        ("latency matters a lot", True), ("no", False), ("no, quality matters more", False),
        ("latency doesn't matter", False), ("not really", False), ("speed is not a concern", False),
        ("not sure", ASK), ("I have about 400 examples", ASK), ("400", ASK),
    ],
    "tasks": [
        ("one", 1), ("just one", 1), ("1", 1), ("3", 3), ("three", 3), ("two tasks", 2),
        ("a single task", 1), ("3 tasks with about 400 examples each", 3), ("five or so", 5),
        ("0", ASK), ("not sure", ASK), ("I have about 400 examples", ASK),
    ],
}
CASES = [(slot, text, value) for slot, rows in PHRASINGS.items() for text, value in rows]


@pytest.mark.parametrize("slot, text, value", CASES, ids=[f"{s}:{t}" for s, t, _ in CASES])
def test_each_question_reads_only_what_it_asks(slot, text, value):
    parsed = parse_answer(slot, text)
    if value is ASK:
        assert not parsed.ok and parsed.value is None, parsed
        assert parsed.clarify
    else:
        assert parsed.ok, parsed.clarify
        assert parsed.value == value


EXAMPLE_COUNTS = [
    ("documents", "I have about 400 examples", 400), ("documents", "we have ~400 labelled pairs", 400),
    ("can_measure", "I have about 400 examples", 400), ("latency_sensitive", "around 2k training examples", 2000),
    ("model_size_b", "I have about 400 examples", 400), ("changes", "we have 1,200 samples", 1200),
    ("vram_gb", "I have about 400 examples", 400), ("tasks", "I have about 400 examples", 400),
    ("gap", "I have about 400 examples", 400),
]


@pytest.mark.parametrize("slot, text, count", EXAMPLE_COUNTS, ids=[f"{s}:{t}" for s, t, _ in EXAMPLE_COUNTS])
def test_an_example_count_given_to_another_question_is_kept_for_the_examples_question(slot, text, count):
    parsed = parse_answer(slot, text)
    assert not parsed.ok and dict(parsed.elsewhere) == {"examples": count}


@pytest.mark.parametrize("slot", ["documents", "can_measure", "latency_sensitive"])
@pytest.mark.parametrize("text", ["400", "about 400", "~400", "400?", "four hundred", "2.5k"])
def test_a_number_is_never_a_yes(slot, text):
    parsed = parse_answer(slot, text)
    assert not parsed.ok and not parsed.elsewhere
    assert "yes or no" in parsed.clarify.lower()


@pytest.mark.parametrize("slot, text, value", [
    ("documents", "yes, and we have about 400 examples", True),
    ("documents", "no docs, but 400 labelled pairs", False),
    ("vram_gb", "400 examples on one 24 GB GPU", 24.0),
    ("gap", "I have 400 examples of the JSON format we want", "behaviour"),
])
def test_an_answer_with_an_example_count_beside_it_answers_both(slot, text, value):
    parsed = parse_answer(slot, text)
    assert parsed.ok and parsed.value == value
    assert dict(parsed.elsewhere) == {"examples": 400}


def answered(*texts):
    state = interview.start()
    for text in texts:
        turn = interview.respond(state, text)
        state = turn.state
    return state, turn


def test_400_examples_at_the_documents_question_does_not_turn_the_plan_to_retrieval():
    state, turn = answered("Extract intents from requests as JSON", "behaviour", "I have about 400 examples")
    assert "documents" not in state.answers
    assert state.answers["examples"] == 400
    assert not turn.understood and state.current_slot == "documents"
    assert "400 examples" in turn.reply and "documents" in turn.reply.lower()
    assert not state.plan().retrieval and state.plan().finetune in ("lora", "qlora")
    # The documents question comes again; once answered, the examples question is not asked again.
    state, turn = answered("Extract intents from requests as JSON", "behaviour", "I have about 400 examples", "no")
    assert state.answers["documents"] is False and state.current_slot == "can_measure"
    assert not state.plan().retrieval


def test_back_after_a_kept_example_count_forgets_it():
    state, _ = answered("Extract intents from requests as JSON", "behaviour", "I have about 400 examples")
    turn = interview.respond(state, "back")
    assert "examples" not in turn.state.answers and turn.state.current_slot == "documents"
