"""The runtime loads a model from a folder, streams with its chat template, and stops at end of turn."""

import pytest

from assistant.runtime import generation as generation_module
from assistant.runtime.answering import NOTHING_FOUND, cited_messages, relevant_hits
from assistant.runtime.generation import (
    BASE,
    GenerationSettings,
    ModelSettings,
    ModelUnavailableError,
    chat,
    generate_batch,
    load_model,
    stream_chat,
    stream_rows,
)
from assistant.runtime.variants import Variant, VariantModel
from retrieval.search import ChunkHit


@pytest.fixture(scope="module")
def loaded(tiny_model_path):
    return load_model(ModelSettings(model=str(tiny_model_path), device="cpu"))


def hit(text, similarity, source="hr.md", page=None):
    return ChunkHit("c", "d", source, "", page, "Leave", 0, len(text), text, 0.5, similarity)


def test_loads_from_a_folder_and_streams_growing_text(loaded):
    pieces = list(stream_chat(loaded, [{"role": "user", "content": "Hello there"}],
                              GenerationSettings(max_new_tokens=12), adapter=BASE))
    assert pieces and all(b.startswith(a) for a, b in zip(pieces, pieces[1:], strict=False))
    assert loaded.device == "cpu"


def test_greedy_generation_is_repeatable_and_bounded(loaded):
    messages = [{"role": "user", "content": "What is the policy?"}]
    settings = GenerationSettings(max_new_tokens=10)
    first, second = chat(loaded, messages, settings, adapter=BASE), chat(loaded, messages, settings, adapter=BASE)
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


PARITY_PROMPTS = [
    [{"role": "user", "content": "Hello there"}],
    [{"role": "user", "content": "What is the policy on paid leave for part-time staff?"}],
    [{"role": "system", "content": "Answer in JSON."}, {"role": "user", "content": "Book a table"}],
    [{"role": "user", "content": "é ü ß 😀 and some words"}],
]


def test_one_decode_loop_gives_the_same_greedy_answers_streamed_batched_and_in_rows(loaded):
    """stream_chat, generate_batch and stream_rows are one loop: greedy answers agree, and each row of a
    padded batch says what the conversation says alone."""
    settings = GenerationSettings(max_new_tokens=24)
    alone = [chat(loaded, p, settings, adapter=BASE) for p in PARITY_PROMPTS]
    batched = generate_batch(loaded, PARITY_PROMPTS, settings, adapter=BASE, batch_size=4)
    rows = list(stream_rows(loaded, PARITY_PROMPTS, [BASE] * len(PARITY_PROMPTS), settings))
    assert [text for text, _, _ in batched] == alone
    assert rows[-1] == alone
    assert all(tokens <= 24 and seconds > 0 for _, tokens, seconds in batched)
    for before, after in zip(rows, rows[1:-1], strict=False):  # every row only grows while streaming
        assert all(b.startswith(a) for a, b in zip(before, after, strict=True))


def test_the_adapter_is_always_named():
    """No "whatever adapter is active": every caller says which adapter answers (BASE: none)."""
    import inspect

    assert not hasattr(generation_module, "ACTIVE")
    for function in (stream_chat, chat, generate_batch):
        parameter = inspect.signature(function).parameters["adapter"]
        assert parameter.kind is inspect.Parameter.KEYWORD_ONLY and parameter.default is inspect.Parameter.empty


def test_nothing_relevant_means_no_guess(loaded):
    answers = list(VariantModel(loaded).answer_from_documents(Variant(None, ("retrieval",)), "What colour is the sky?",
                                                              lambda q: [hit("Laptops are silver.", 0.05)]))
    assert [(a.text, a.sources, a.done) for a in answers] == [(NOTHING_FOUND, (), True)]


def test_a_grounded_answer_lists_its_sources(loaded):
    answers = list(VariantModel(loaded).answer_from_documents(
        Variant(None, ("retrieval",)), "How many days?", lambda q: [hit("Staff get 25 days of leave.", 0.7, page=2)],
        GenerationSettings(max_new_tokens=8)))
    final = answers[-1]
    assert final.done and final.variant == "base + retrieval"
    assert final.sources[0].source == "hr.md" and final.sources[0].page == 2


def test_answers_from_documents_need_a_retrieval_variant(loaded):
    with pytest.raises(ValueError, match="needs a retrieval variant"):
        list(VariantModel(loaded).answer_from_documents(Variant(), "How many days?", lambda q: []))


def test_the_runtime_loads_through_the_loader_training_and_export_share(tiny_model_path, monkeypatch):
    """One precision rule (trainers/loading.py); what the loader cannot load is still ModelUnavailableError."""
    from trainers import loading

    calls = []

    def unloadable(source, device, **options):
        calls.append((source, device, options))
        raise OSError("no safetensors weights here")

    monkeypatch.setattr(loading, "load_causal_lm", unloadable)
    with pytest.raises(ModelUnavailableError, match="no safetensors weights here") as error:
        load_model(ModelSettings(model=str(tiny_model_path), device="cpu"))
    assert "--model PATH" in str(error.value)
    assert calls == [(str(tiny_model_path), "cpu", {"trust_remote_code": False})]
