"""The one training config: defaults, validation, the plan, the form and the flags all meet here."""

import argparse
from dataclasses import fields

import pytest

from trainers.config import FORM_FIELDS, MAX_PROCESSES, JobSpec, TrainingConfig, add_flags, overrides_from_flags


def test_the_plan_fills_every_setting_it_chose():
    plan = {"finetune": "qlora", "lora": {"r": 32, "alpha": 64, "dropout": 0.1, "target_modules": ["q_proj", "v_proj"]},
            "learning_rate": 1e-4, "epochs": 2}
    config = TrainingConfig.from_plan(plan, "some/model")
    assert (config.model, config.method, config.lora_r, config.lora_alpha, config.lora_dropout) == (
        "some/model", "qlora", 32, 64, 0.1)
    assert config.peft_target_modules == ["q_proj", "v_proj"] and config.target_modules == "q_proj,v_proj"
    assert (config.learning_rate, config.epochs) == (1e-4, 2.0)


def test_a_plan_without_a_fine_tune_leaves_lora_defaults():
    assert TrainingConfig.from_plan({"finetune": "none"}) == TrainingConfig()
    assert TrainingConfig.from_plan(None, "m") == TrainingConfig(model="m")


@pytest.mark.parametrize("bad, words", [
    (dict(method="dora"), "method must be one of lora, qlora"),
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
    assert TrainingConfig().overridden(**given) == TrainingConfig(lora_r=16, lora_alpha=32, method="qlora",
                                                                  packing=True, learning_rate=3e-4)
    with pytest.raises(SystemExit):
        parser.parse_args(["--method", "dora"])


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
