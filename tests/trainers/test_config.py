"""The one training config: defaults, validation, the form and the flags all meet here (the plan's mapping
onto it is the assistant's: tests/assistant/test_training_settings.py)."""

import argparse
from dataclasses import fields

import pytest

from trainers.config import FORM_FIELDS, MAX_PROCESSES, JobSpec, TrainingConfig, add_flags, overrides_from_flags


def test_trainers_know_nothing_of_plans():
    """The plan is the assistant's record; trainers/ sits below it and reads only its own config."""
    import inspect

    import trainers.config

    assert not hasattr(TrainingConfig, "from_plan")
    assert "finetune" not in inspect.getsource(trainers.config)


@pytest.mark.parametrize("bad, words", [
    (dict(method="lorra"), "method must be one of full, lora, qlora, dora"),
    (dict(method="prompt_tuning", num_virtual_tokens=0), "prompt tuning needs between 1 and 512 virtual tokens"),
    (dict(method="p_tuning", num_virtual_tokens=100, max_length=128), "P-tuning needs between 1 and 64"),
    (dict(method="ia3", target_modules=" "), "name the IA3 target modules"),
    (dict(method="prefix_tuning", modules_to_save=["lm_head"]), "prefix tuning has none"),
    (dict(prompt_init="words"), "prompt init must be one of text, vocab, random"),
    (dict(lora_r=0), "LoRA rank"),
    (dict(max_length=8), "max length"),
    (dict(learning_rate=0), "learning rate"),
    (dict(epochs=0, max_steps=-1), "epochs or of max steps"),
    (dict(eval_fraction=1.0), "fractions"),
    (dict(target_modules=" "), "target modules"),
    (dict(processes=-1), "processes must be between 0"),
    (dict(processes=5000), "processes must be between 0 .one per GPU. and 64, not 5000"),
])
def test_invalid_settings_are_refused_in_one_place_with_the_reason(bad, words):
    with pytest.raises(ValueError, match=words):
        TrainingConfig(**bad)


def test_the_flags_are_generated_from_the_fields_and_default_to_the_plan():
    parser = argparse.ArgumentParser()
    add_flags(parser)
    flagged = {f.name for f in fields(TrainingConfig) if f.metadata.get("flag", True)}
    assert flagged >= set(FORM_FIELDS)
    untouched = overrides_from_flags(parser.parse_args([]))
    assert set(untouched) == flagged and all(v is None for v in untouched.values())
    given = overrides_from_flags(parser.parse_args(["--lora-r", "16", "--method", "qlora", "--packing",
                                                    "--learning-rate", "3e-4"]))
    # exactly what was given: how alpha follows r is decided once, above trainers/ (with_overrides)
    assert {k: v for k, v in given.items() if v is not None} == dict(lora_r=16, method="qlora", packing=True,
                                                                      learning_rate=3e-4)
    assert TrainingConfig().overridden(**given) == TrainingConfig(lora_r=16, method="qlora", packing=True,
                                                                  learning_rate=3e-4)
    with pytest.raises(SystemExit):
        parser.parse_args(["--method", "lorra"])
    assert parser.parse_args(["--method", "ia3", "--prompt-init", "vocab"]).method == "ia3"


def test_a_job_spec_round_trips_through_its_flat_config_file(tmp_path):
    spec = JobSpec.of("train.jsonl", "eval.jsonl", device="cpu", extra={"adapter_name": "a"}, lora_r=4,
                      modules_to_save=["lm_head"])
    spec.save(tmp_path)
    assert JobSpec.load(tmp_path) == spec
    assert spec.to_dict()["lora_r"] == 4 and spec.to_dict()["train_file"] == "train.jsonl"


def test_the_process_cap_admits_every_single_machine_and_refuses_more_at_once_from_the_flags():
    assert TrainingConfig(processes=MAX_PROCESSES).processes == MAX_PROCESSES  # a 64-core or 16-GPU machine
    parser = argparse.ArgumentParser()
    add_flags(parser)
    with pytest.raises(ValueError, match=f"and {MAX_PROCESSES}, not {MAX_PROCESSES + 1}"):
        TrainingConfig().overridden(**overrides_from_flags(parser.parse_args(["--processes",
                                                                              str(MAX_PROCESSES + 1)])))
