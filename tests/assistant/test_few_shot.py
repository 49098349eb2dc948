"""The few-shot variant: which examples it shows, how many fit, and that every face offers it."""

import json

import pytest

from assistant.runtime.few_shot import FewShotPool, with_shots
from assistant.runtime.generation import GenerationSettings, ModelSettings, load_model
from assistant.runtime.variants import MODIFIERS, Aids, Variant, VariantModel
from assistant.services.evaluation import EvalCase, run_evaluation

SYSTEM = "Return the intent as JSON."


def example(question: str, answer: str) -> list[dict]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question},
            {"role": "assistant", "content": answer}]


EXAMPLES = [
    example("play some jazz music", '{"intent": "PlayMusic"}'),
    example("will it rain in Paris tomorrow", '{"intent": "GetWeather"}'),
    example("book a table for two at an italian restaurant", '{"intent": "BookRestaurant"}'),
    example("add this song to my road trip playlist", '{"intent": "AddToPlaylist"}'),
    example("what is the weather like in Oslo", '{"intent": "GetWeather"}'),
]


def words(text: str) -> int:
    return len(text.split())


def pool(**choice) -> FewShotPool:
    return FewShotPool.from_conversations(EXAMPLES, words, **choice)


def test_the_pool_keeps_the_tasks_system_prompt_apart_from_the_turns():
    made = pool()
    assert made.system_prompt == SYSTEM
    assert all(m["role"] != "system" for e in made.examples for m in e.turns)
    assert [e.number for e in made.examples] == [1, 2, 3, 4, 5]


def test_the_most_similar_examples_come_first():
    picked = pool(shots=2).pick("is it going to rain in Oslo", budget_tokens=10_000)
    assert {e.number for e in picked} == {2, 5}  # the two weather examples


def test_first_order_takes_the_files_first_examples():
    picked = pool(shots=2, order="first").pick("is it going to rain in Oslo", budget_tokens=10_000)
    assert [e.number for e in picked] == [1, 2]


def test_the_question_asked_is_never_one_of_its_own_examples():
    picked = pool(shots=5).pick("Play some JAZZ  music", budget_tokens=10_000)
    assert 1 not in {e.number for e in picked}
    assert len(picked) == 4


def test_k_shrinks_to_fit_the_token_budget():
    made = pool(shots=5)
    costs = {e.number: e.tokens for e in made.examples}
    budget = costs[2] + costs[5]  # room for exactly the two weather examples
    picked = made.pick("is it going to rain in Oslo", budget_tokens=budget)
    assert sum(e.tokens for e in picked) <= budget
    assert {e.number for e in picked} == {2, 5}
    assert made.pick("is it going to rain in Oslo", budget_tokens=0) == []


def test_evaluated_questions_leave_the_pool():
    made = pool(shots=5).without(["will it rain in Paris tomorrow"])
    assert 2 not in {e.number for e in made.examples}


def test_examples_sit_between_the_system_prompt_and_the_question_the_closest_last():
    made = pool(shots=2)
    shots = made.pick("is it going to rain in Oslo", 10_000)
    messages = with_shots([{"role": "user", "content": "is it going to rain in Oslo"}], shots, made.system_prompt)
    assert messages[0] == {"role": "system", "content": SYSTEM}
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert messages[-2]["content"] == shots[0].turns[-1]["content"]  # the most similar sits next to the question
    own = with_shots([{"role": "system", "content": "mine"}, {"role": "user", "content": "hi"}], shots, SYSTEM)
    assert own[0]["content"] == "mine" and sum(m["role"] == "system" for m in own) == 1


def test_every_modifier_in_the_table_builds_its_prompt():
    from assistant.runtime.variants import _APPLY

    assert set(_APPLY) == {m.name for m in MODIFIERS}


def test_variant_names_list_modifiers_in_the_tables_order():
    assert [m.name for m in MODIFIERS] == ["few-shot", "retrieval"]
    variant = Variant.parse("base + retrieval + few-shot")
    assert variant.name == "base + few-shot + retrieval" and variant.few_shot and variant.retrieval
    assert Variant.parse(variant.name) == variant
    assert (Variant().cost < Variant(None, ("few-shot",)).cost < Variant(None, ("retrieval",)).cost
            < Variant("lora").cost < Variant("lora", ("retrieval",)).cost)
    with pytest.raises(ValueError):
        Variant(None, ("telepathy",))


@pytest.fixture(scope="module")
def tiny(tiny_model_path):
    return VariantModel(load_model(ModelSettings(model=str(tiny_model_path), device="cpu")))


def test_a_few_shot_variant_shows_the_examples_and_says_which(tiny):
    examples = tiny.examples_pool(EXAMPLES, shots=2)
    final = list(tiny.stream(Variant(None, ("few-shot",)), [{"role": "user", "content": "rain in Oslo?"}],
                             GenerationSettings(max_new_tokens=4), Aids(examples=examples)))[-1]
    assert final.done and set(final.shots) == {2, 5}
    prompt = tiny._prompt(Variant(None, ("few-shot",)), [{"role": "user", "content": "rain in Oslo?"}],
                          Aids(examples=examples))
    assert prompt.messages[0]["content"] == SYSTEM and len(prompt.messages) == 6


def test_few_shot_fills_only_the_room_the_context_leaves(tiny, monkeypatch):
    examples = tiny.examples_pool(EXAMPLES, shots=5)
    question = [{"role": "user", "content": "rain in Oslo?"}]
    generation = GenerationSettings(max_new_tokens=8)
    prompt_alone = tiny.count_prompt([{"role": "system", "content": SYSTEM}, *question])
    smallest = min(e.tokens for e in examples.examples)  # room for one example, never two
    monkeypatch.setattr(VariantModel, "context_tokens", prompt_alone + generation.max_new_tokens + smallest)
    shown = tiny._prompt(Variant(None, ("few-shot",)), question, Aids(examples=examples), generation).shots
    assert len(shown) == 1
    monkeypatch.setattr(VariantModel, "context_tokens", 100_000)
    assert len(tiny._prompt(Variant(None, ("few-shot",)), question, Aids(examples=examples), generation).shots) == 5


def test_an_evaluation_never_shows_a_case_its_own_answer(tiny):
    examples = tiny.examples_pool(EXAMPLES, shots=5)
    cases = [EvalCase(({"role": "system", "content": SYSTEM}, {"role": "user", "content": e[1]["content"]}),
                      e[2]["content"]) for e in EXAMPLES[:2]]
    report = run_evaluation(tiny, [Variant(), Variant(None, ("few-shot",))], cases, "cases",
                            GenerationSettings(max_new_tokens=4), Aids(examples=examples))
    few = next(r for r in report.results if r.variant == "base + few-shot")
    assert len(few.shots) == 2
    assert all(1 not in shown and 2 not in shown for shown in few.shots)  # neither evaluated case is shown
    assert next(r for r in report.results if r.variant == "base").shots == []
    assert json.loads(json.dumps(report.to_dict()))["results"][1]["shots"] == few.shots
