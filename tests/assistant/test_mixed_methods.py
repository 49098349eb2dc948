"""Adapters of different PEFT methods over one base: each variant answers as it does alone, whether
its rows share a batch (LoRA, DoRA) or PEFT needs them apart (prompt tuning, IA3)."""

import signal

import pytest

from assistant.runtime.generation import GenerationSettings, ModelSettings, load_model
from assistant.runtime.variants import Variant, VariantModel
from trainers.config import JobSpec

pytestmark = pytest.mark.slow
PROMPT = [{"role": "user", "content": "Play some jazz in the kitchen"}]
SETTINGS = GenerationSettings(max_new_tokens=8)
METHODS = ("lora", "dora", "prompt_tuning", "ia3", "adaption_prompt")


@pytest.fixture(scope="module")
def adapters(tiny_model_path, tmp_path_factory):
    """One short run of each method, through the job's own training code."""
    from tests.snips import snips_chat_jsonl
    from trainers.sft import train

    data = tmp_path_factory.mktemp("mixed-data") / "train.jsonl"
    data.write_text(snips_chat_jsonl("train", limit=32, seed=0))
    made = {}
    for method in METHODS:
        job = tmp_path_factory.mktemp(f"mixed-{method}")
        JobSpec.of(model=str(tiny_model_path), train_file=str(data), method=method, max_steps=3, batch_size=4,
                   max_length=96, save_steps=100, learning_rate=5e-2 if method != "lora" else 5e-3,
                   num_virtual_tokens=8, device="cpu").save(job)
        handler = signal.getsignal(signal.SIGTERM)
        try:
            assert train(job) == "completed", (job / "state.json").read_text()
        finally:
            signal.signal(signal.SIGTERM, handler)
        made[method] = job / "adapter"
    return made


def test_variants_of_five_methods_answer_together_as_each_does_alone(tiny_model_path, adapters):
    model = VariantModel(load_model(ModelSettings(model=str(tiny_model_path), device="cpu")))
    for method, path in adapters.items():
        model.add_adapter(method, path)
    variants = [Variant(), *(Variant(m) for m in METHODS)]
    # LoRA shares the first batch with the base; PEFT takes DoRA, prompt tuning, IA3 and LLaMA-Adapter rows one
    # adapter a batch.
    groups = model.groups(variants)
    assert sorted(map(sorted, groups)) == [[0, 1], [2], [3], [4], [5]]
    assert sorted(map(sorted, model.groups([Variant(), Variant("ia3")]))) == [[0], [1]]  # IA3 runs on every row
    alone = {v.name: list(model.stream(v, PROMPT, SETTINGS))[-1].text for v in variants}
    together = list(model.stream_together(variants, [PROMPT] * len(variants), SETTINGS))[-1]
    assert {a.variant: a.text for a in together} == alone
    assert len(set(alone.values())) > 1  # the methods changed the answers, so the comparison means something
    # After every type has been in the model, the base still answers as the bare base: LLaMA-Adapter, which wraps
    # the attention modules in place, went last and left none of its wrappers behind.
    bare = VariantModel(load_model(ModelSettings(model=str(tiny_model_path), device="cpu")))
    assert list(bare.stream(Variant(), PROMPT, SETTINGS))[-1].text == alone["base"]
    assert list(model.stream(Variant(), PROMPT, SETTINGS))[-1].text == alone["base"]
    assert list(model.stream(Variant("lora"), PROMPT, SETTINGS))[-1].text == alone["lora"]
