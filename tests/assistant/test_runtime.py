"""The runtime loads a model from a folder, streams with its chat template, and stops at end of turn."""

import pytest

from assistant.runtime.answering import NOTHING_FOUND, cited_messages, relevant_hits, stream_cited_answer
from assistant.runtime.generation import (
    GenerationSettings,
    ModelSettings,
    ModelUnavailableError,
    chat,
    load_model,
    stream_chat,
)
from retrieval.search import ChunkHit


@pytest.fixture(scope="module")
def loaded(tiny_model_path):
    return load_model(ModelSettings(model=str(tiny_model_path), device="cpu"))


def hit(text, similarity, source="hr.md", page=None):
    return ChunkHit("c", "d", source, "", page, "Leave", 0, len(text), text, 0.5, similarity)


def test_loads_from_a_folder_and_streams_growing_text(loaded):
    pieces = list(stream_chat(loaded, [{"role": "user", "content": "Hello there"}],
                              GenerationSettings(max_new_tokens=12)))
    assert pieces and all(b.startswith(a) for a, b in zip(pieces, pieces[1:], strict=False))
    assert loaded.device == "cpu"


def test_greedy_generation_is_repeatable_and_bounded(loaded):
    messages = [{"role": "user", "content": "What is the policy?"}]
    settings = GenerationSettings(max_new_tokens=10)
    first, second = chat(loaded, messages, settings), chat(loaded, messages, settings)
    assert first == second
    ids = loaded.tokenizer(first, add_special_tokens=False)["input_ids"]
    assert len(ids) <= 12


def test_end_of_turn_is_a_stop_token(loaded):
    assert loaded.tokenizer.convert_tokens_to_ids("<|im_end|>") in loaded.stop_token_ids


def test_a_missing_model_names_the_model_option(tmp_path):
    with pytest.raises(ModelUnavailableError, match="--model PATH"):
        load_model(ModelSettings(model=str(tmp_path / "no-model-here")))


def test_relevance_threshold_and_prompt_blocks():
    strong, weak = hit("Staff get 25 days of leave.", 0.6), hit("Laptops are silver.", 0.05, "it.md")
    assert relevant_hits([strong, weak]) == [strong]
    assert relevant_hits([weak]) == []
    bm25_only = hit("leave days", None)
    assert relevant_hits([bm25_only]) == [bm25_only]
    messages = cited_messages("How many days?", [strong])
    assert "[1] (hr.md, Leave)" in messages[-1]["content"] and "[n]" in messages[0]["content"]
    task = [{"role": "system", "content": "Answer in JSON."}]
    with_task = cited_messages("How many days?", [strong], system=task)
    assert with_task[0] == task[0] and "[1] (hr.md, Leave)" in with_task[-1]["content"]
    assert "[n]" not in with_task[-1]["content"]


def test_nothing_relevant_means_no_guess(loaded):
    answers = list(stream_cited_answer(loaded, "What colour is the sky?", [hit("Laptops are silver.", 0.05)]))
    assert answers[-1].text == NOTHING_FOUND and not answers[-1].grounded and not answers[-1].sources


def test_a_grounded_answer_lists_its_sources(loaded):
    answers = list(stream_cited_answer(loaded, "How many days?", [hit("Staff get 25 days of leave.", 0.7, page=2)],
                                       GenerationSettings(max_new_tokens=8)))
    final = answers[-1]
    assert final.grounded and final.sources[0].source == "hr.md" and final.sources[0].page == 2
