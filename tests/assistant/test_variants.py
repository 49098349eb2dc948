"""Four variants over one base; the base answers the same before and after adapters are loaded."""

from pathlib import Path

import pytest

from assistant.runtime.generation import BASE, GenerationSettings, ModelSettings, chat, load_model
from assistant.runtime.variants import Variant, VariantModel
from retrieval.search import ChunkHit
from trainers.config import JobSpec
from trainers.jobs import JobStore

PROMPT = [{"role": "user", "content": "Book a table for two tonight"}]
SETTINGS = GenerationSettings(max_new_tokens=12)


@pytest.fixture(scope="module")
def two_adapters(tiny_model_path, tmp_path_factory):
    from tests.snips import snips_chat_jsonl

    root = tmp_path_factory.mktemp("variants")
    (root / "train.jsonl").write_text(snips_chat_jsonl("train", limit=64, seed=0))
    store = JobStore(root / "jobs")
    paths = {}
    for name, lr in (("json", 5e-3), ("other", 1e-2)):
        job = store.create(JobSpec.of(model=str(tiny_model_path), train_file=str(root / "train.jsonl"), max_steps=6,
                                        batch_size=4, max_length=96, learning_rate=lr, save_steps=100, device="cpu"))
        store.start(job)
        status = store.wait(job, timeout=300)
        assert status.status == "completed"
        paths[name] = status.adapter_dir
    return paths


def search(question):
    return [ChunkHit("c1", "d", "hr.md", "", None, "", 0, 30, "Tables for two are free tonight.", 1.0, 0.9)]


@pytest.mark.slow
def test_four_variants_answer_one_prompt_and_the_base_is_unchanged(tiny_model_path, two_adapters):
    loaded = load_model(ModelSettings(model=str(tiny_model_path), device="cpu"))
    before = chat(loaded, PROMPT, SETTINGS, adapter=BASE)
    model = VariantModel(loaded)
    for name, path in two_adapters.items():
        model.add_adapter(name, path)
    names = [v.name for v in model.variants(with_retrieval=True)]
    assert names == ["base", "base + retrieval", "json", "json + retrieval", "other", "other + retrieval"]
    final = {}
    for variant in model.variants(with_retrieval=True)[:4]:
        answers = list(model.stream(variant, PROMPT, SETTINGS, aids=search))
        final[variant.name] = answers[-1]
        assert answers[-1].done and answers[-1].first_token_s is not None
    assert final["base"].text == before  # the frozen base, adapters disabled
    assert final["json"].text != before or final["other"].text != before
    assert final["base + retrieval"].sources[0].source == "hr.md"
    # Switching back and forth changes nothing.
    assert list(model.stream(Variant(), PROMPT, SETTINGS))[-1].text == before


def test_variants_answering_together_say_what_each_says_alone(tiny_model_path, two_adapters):
    """One batch, a different adapter (or none) per row: each row's greedy answer is the one the
    variant gives on its own, and every row ends with its own sources and timings."""
    loaded = load_model(ModelSettings(model=str(tiny_model_path), device="cpu"))
    model = VariantModel(loaded)
    for name, path in two_adapters.items():
        model.add_adapter(name, path)
    variants = [Variant(), Variant(None, ("retrieval",)), Variant("json"), Variant("other", ("retrieval",))]
    alone = [list(model.stream(v, PROMPT, SETTINGS, aids=search))[-1] for v in variants]
    updates = list(model.stream_together(variants, [PROMPT] * 4, SETTINGS, aids=search))
    together = updates[-1]
    assert [a.variant for a in together] == [v.name for v in variants]
    assert [a.text for a in together] == [a.text for a in alone]
    assert len({a.text for a in together}) > 1  # the rows really ran different weights
    assert len(updates) > 2 and all(len(u) == 4 for u in updates)  # the columns grew as it went
    assert all(a.done and a.first_token_s is not None and a.latency_s > 0 for a in together)
    assert together[1].sources[0].source == "hr.md" and not together[0].sources


def test_variants_together_without_adapters_run_the_plain_base(tiny_model_path):
    loaded = load_model(ModelSettings(model=str(tiny_model_path), device="cpu"))
    model = VariantModel(loaded)
    alone = chat(loaded, PROMPT, SETTINGS, adapter=BASE)
    pair = [Variant(), Variant(None, ("retrieval",))]
    final = list(model.stream_together(pair, [PROMPT, PROMPT], SETTINGS, search))[-1]
    assert final[0].text == alone and final[1].sources


def test_an_unknown_adapter_in_a_batch_is_refused_before_anything_runs(tiny_model_path):
    model = VariantModel(load_model(ModelSettings(model=str(tiny_model_path), device="cpu")))
    with pytest.raises(ValueError, match="no adapter named 'ghost'"):
        list(model.stream_together([Variant(), Variant("ghost")], [PROMPT, PROMPT], SETTINGS))


def test_variant_names_round_trip():
    for variant in (Variant(), Variant("json"), Variant("json", ("retrieval",)), Variant(None, ("retrieval",))):
        assert Variant.parse(variant.name) == variant


def test_adapters_share_one_base(tiny_model_path, two_adapters):
    loaded = load_model(ModelSettings(model=str(tiny_model_path), device="cpu"))
    base_params = sum(p.numel() for p in loaded.model.parameters())
    model = VariantModel(loaded)
    for name, path in two_adapters.items():
        model.add_adapter(name, path)
    lora_params = sum(p.numel() for n, p in loaded.model.named_parameters() if "lora_" in n)
    assert sum(p.numel() for p in loaded.model.parameters()) == base_params + lora_params


def test_adapter_keys_are_unique_across_projects_and_users_and_valid_peft_names(tmp_path):
    from assistant.runtime.variants import adapter_key

    folders = [tmp_path / "users" / user / "projects" / project for user in ("ana", "bo") for project in ("a", "b")]
    keys = {adapter_key(folder, adapter) for folder in folders for adapter in ("v1", "v2")}
    assert len(keys) == 8
    assert all(k.isidentifier() and "." not in k for k in keys)


def test_an_adapter_key_names_the_folder_however_its_path_is_spelled(tmp_path, monkeypatch):
    from assistant.runtime.variants import adapter_key

    project = tmp_path / "users" / "ana" / "projects" / "a"
    project.mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "users")
    monkeypatch.chdir(tmp_path)
    key = adapter_key(project, "v1")
    assert key == adapter_key(str(project), "v1")
    assert key == adapter_key(Path("users/ana/projects/a"), "v1")  # relative
    assert key == adapter_key(tmp_path / "users" / "bo" / ".." / "ana" / "projects" / "a", "v1")
    assert key == adapter_key(tmp_path / "link" / "ana" / "projects" / "a", "v1")  # through a symlink
    assert key != adapter_key(project, "v2") and key != adapter_key(project.parent / "b", "v1")


def test_a_labelled_variant_shows_its_adapter_name():
    variant = Variant("a1b2c3", ("retrieval",), label="snips-v1")
    assert variant.name == "snips-v1 + retrieval"
