"""An adapter answers with the system prompt it was trained with, unless the conversation brings one."""

import json

from assistant.runtime.variants import Aids, Variant
from assistant.services.project_variants import system_prompt_of, training_system_prompt
from ui.compare_tab import column_label

TASK = "Return the intent and slots of the user's request as JSON."


def test_the_training_files_most_common_system_prompt_is_the_adapters(tmp_path):
    train = tmp_path / "train.jsonl"
    rows = [[{"role": "system", "content": TASK}, {"role": "user", "content": f"q{i}"},
             {"role": "assistant", "content": "{}"}] for i in range(3)]
    rows.append([{"role": "system", "content": "other"}, {"role": "user", "content": "q"},
                 {"role": "assistant", "content": "{}"}])
    train.write_text("".join(json.dumps({"messages": r}) + "\n" for r in rows))
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "training.json").write_text(json.dumps({"config": {"train_file": str(train)}}))
    assert training_system_prompt(adapter) == TASK
    (adapter / "training.json").write_text(json.dumps({"system_prompt": "recorded", "config": {}}))
    assert training_system_prompt(adapter) == "recorded"  # the card's own record comes first
    assert system_prompt_of([[{"role": "user", "content": "no system"}]]) is None


def test_the_variant_uses_it_only_when_the_conversation_has_none(tiny_model_path):
    from assistant.runtime.generation import ModelSettings, load_model
    from assistant.runtime.variants import VariantModel

    model = VariantModel(load_model(ModelSettings(model=str(tiny_model_path), device="cpu")))
    variant = Variant(system_prompt=TASK)
    plain = model._prompt(variant, [{"role": "user", "content": "Play jazz"}], Aids())
    assert plain.messages[0] == {"role": "system", "content": TASK}
    own = model._prompt(variant, [{"role": "system", "content": "mine"}, {"role": "user", "content": "hi"}], Aids())
    assert [m["content"] for m in own.messages if m["role"] == "system"] == ["mine"]


def test_the_column_header_shows_the_system_prompt_it_answers_with():
    assert column_label(Variant("k1", label="snips", system_prompt=TASK)) == (
        "snips · system: “Return the intent and slots of the user's request as JSON.”")
    assert column_label(Variant()) == "base"
