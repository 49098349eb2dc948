"""From a plan to training settings: one mapping, typed plans, and reasons that are true of their values."""

import json
from dataclasses import replace

import pytest

from assistant.core.profile import TaskProfile
from assistant.core.rules import LoraSettings, Plan, decide, rate_text
from assistant.runtime.hardware import Hardware
from assistant.services.training_settings import project_plan, training_settings, with_overrides
from assistant.services.workspace import Workspace, WorkspaceError
from trainers.config import METHODS, TrainingConfig
from trainers.methods import method

H200 = Hardware("cuda", "H200", 1, 141.0, True)
T4 = Hardware("cuda", "Tesla T4", 1, 16.0, False)
CPU = Hardware("cpu")

PROFILES = {
    "full fine-tune, 50k examples on 141 GB": TaskProfile(gap="behaviour", examples=50_000, vram_gb=141),
    "QLoRA, 500 examples on 16 GB": TaskProfile(gap="behaviour", examples=500, vram_gb=16),
    "LoRA, 2,500 examples on 24 GB": TaskProfile(gap="behaviour", examples=2500, vram_gb=24, model_size_b=8),
    "no GPU": TaskProfile(gap="behaviour", examples=300, vram_gb=0),
    "several tasks, 70B": TaskProfile(gap="both", examples=20_000, vram_gb=80, model_size_b=70, tasks=3,
                                      documents=True),
    "no fine-tune: weekly changes": TaskProfile(gap="knowledge", documents=True, changes="weekly"),
    "no fine-tune: no metric": TaskProfile(gap="behaviour", examples=5000, vram_gb=24, can_measure=False),
    "latency": TaskProfile(gap="behaviour", examples=800, vram_gb=24, latency_sensitive=True),
}
"""Profiles whose plans cover every method and the flags that change settings."""


@pytest.mark.parametrize("profile", PROFILES.values(), ids=PROFILES.keys())
def test_a_plan_round_trips_through_its_saved_form(profile):
    plan = decide(profile)
    assert Plan.from_dict(plan.to_dict()) == plan
    assert Plan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan  # as project.json holds it


@pytest.mark.parametrize("broken", [{}, {"finetune": "lora"}, "not a plan"])
def test_a_record_that_is_not_a_plan_is_refused_with_what_is_missing(broken):
    with pytest.raises(ValueError, match="not a plan"):
        Plan.from_dict(broken)


@pytest.mark.parametrize("hardware", [H200, T4, CPU, None], ids=["H200", "T4", "CPU", "unknown machine"])
@pytest.mark.parametrize("profile", PROFILES.values(), ids=PROFILES.keys())
def test_every_reason_is_true_of_the_value_it_explains(profile, hardware):
    plan = decide(profile)
    choice = training_settings(plan, hardware, available=[])
    config, reasons = choice.config, choice.reasons
    assert {"model", "method", "lora_r", "lora_alpha", "lora_dropout", "target_modules", "learning_rate",
            "epochs"} == set(reasons)
    assert f"r={config.lora_r}" in reasons["lora_r"]
    assert f"= {config.lora_alpha}" in reasons["lora_alpha"]
    assert reasons["lora_dropout"].startswith(f"{config.lora_dropout:g}:")
    assert reasons["epochs"].startswith(f"{config.epochs:g} epoch")
    # the learning rate's reason names the rate and the method it is the starting point of
    assert reasons["learning_rate"].startswith(f"{rate_text(config.learning_rate)}: ")
    assert method(config.method).label in reasons["learning_rate"]
    # a method the trainer has is trained as planned, with the plan's own learning rate
    if plan.finetune in METHODS and not (plan.finetune == "qlora" and hardware is CPU):
        assert (config.method, config.learning_rate) == (plan.finetune, plan.learning_rate)
    assert (config.lora_r, config.lora_alpha, config.lora_dropout, config.epochs) == (
        plan.lora.r, plan.lora.alpha, plan.lora.dropout, plan.epochs)
    assert config.target_modules.split(",") == list(plan.lora.target_modules)


def test_a_full_fine_tune_plan_trains_in_full_at_the_plans_rate_and_lora_settings_say_they_are_unused():
    plan = decide(PROFILES["full fine-tune, 50k examples on 141 GB"])
    assert (plan.finetune, plan.learning_rate) == ("full", 1e-5)  # the plan keeps what the rules decided
    choice = training_settings(plan, H200, available=[])
    assert (choice.config.method, choice.config.learning_rate) == ("full", 1e-5)
    assert choice.reasons["learning_rate"] == f"1e-5: {method('full').learning_rate_reason}."
    for name in ("lora_r", "lora_alpha", "lora_dropout", "target_modules"):
        assert choice.reasons[name].endswith(" Not used by full fine-tune.")


@pytest.mark.parametrize("name", METHODS)
def test_every_methods_rate_and_its_reason_come_from_its_registry_entry(name):
    """The form, the CLI and the API all call with_overrides: a new method brings its own rate and reason."""
    planned = training_settings(decide(PROFILES["LoRA, 2,500 examples on 24 GB"]), T4, available=[])
    chosen = with_overrides(planned, {"method": name})
    entry = method(name)
    assert chosen.config.learning_rate == entry.learning_rate
    assert chosen.reasons["learning_rate"].startswith(f"{rate_text(entry.learning_rate)}: ")
    assert entry.learning_rate_reason in chosen.reasons["learning_rate"]
    if entry.learning_rate != planned.config.learning_rate:
        assert "follows the method you set" in chosen.reasons["learning_rate"]
    assert ("num_virtual_tokens" in chosen.reasons) == entry.virtual_tokens
    assert chosen.reasons["lora_r"].endswith(f"Not used by {entry.label}.") != entry.lora_settings


def test_a_rate_set_with_the_method_is_kept_and_back_to_lora_drops_the_unused_note():
    planned = training_settings(decide(PROFILES["LoRA, 2,500 examples on 24 GB"]), T4, available=[])
    chosen = with_overrides(planned, {"method": "ia3", "learning_rate": 1e-3})
    assert chosen.config.learning_rate == 1e-3 and chosen.reasons["learning_rate"].startswith("Set by you: 0.001")
    full = training_settings(decide(PROFILES["full fine-tune, 50k examples on 141 GB"]), H200, available=[])
    back = with_overrides(full, {"method": "lora"})
    assert back.config.learning_rate == 2e-4 and not back.reasons["lora_r"].endswith("full fine-tune.")


def test_qlora_without_cuda_trains_lora_and_says_so():
    plan = decide(PROFILES["QLoRA, 500 examples on 16 GB"])
    assert plan.finetune == "qlora"
    choice = training_settings(plan, CPU)
    assert choice.config.method == "lora" and "no CUDA GPU" in choice.reasons["method"]
    assert choice.config.model == "bundled:SmolLM2-135M-Instruct" and "No CUDA GPU" in choice.reasons["model"]


def test_without_a_plan_the_defaults_say_so():
    choice = training_settings(None, CPU)
    assert choice.config == TrainingConfig()
    assert choice.reasons["method"].startswith("No plan yet")


OVERRIDES = [
    # (what the person set, the settings that change, which reasons change)
    ({"lora_r": 32}, {"lora_r": 32, "lora_alpha": 64}, {"lora_r", "lora_alpha"}),
    ({"lora_r": 32, "lora_alpha": 16}, {"lora_r": 32, "lora_alpha": 64}, {"lora_r", "lora_alpha"}),
    ({"lora_r": 32, "lora_alpha": 40}, {"lora_r": 32, "lora_alpha": 40}, {"lora_r", "lora_alpha"}),
    ({"lora_alpha": 40}, {"lora_alpha": 40}, {"lora_alpha"}),
    ({"learning_rate": 1e-4, "lora_r": 8}, {"learning_rate": 1e-4}, {"learning_rate"}),
    ({"lora_r": None, "model": None}, {}, set()),
]


@pytest.mark.parametrize("given, changed, reasons", OVERRIDES)
def test_what_a_person_sets_overrides_the_plan_and_alpha_follows_a_new_r(given, changed, reasons):
    """The plan proposes r=8, alpha=16. A new r with alpha left at 16 (or not given) takes alpha = 2 x r."""
    planned = training_settings(decide(PROFILES["LoRA, 2,500 examples on 24 GB"]), T4, available=[])
    assert (planned.config.lora_r, planned.config.lora_alpha) == (8, 16)
    chosen = with_overrides(planned, given)
    assert chosen.config == replace(planned.config, **changed)
    assert {k for k in chosen.reasons if chosen.reasons[k] != planned.reasons.get(k)} == reasons
    for name in reasons - {"lora_alpha"}:
        assert chosen.reasons[name].startswith(f"Set by you: {getattr(chosen.config, name)} ")
    alpha_left_at_the_plans = given.get("lora_alpha") in (None, planned.config.lora_alpha)
    if "lora_r" in changed and alpha_left_at_the_plans:
        assert chosen.reasons["lora_alpha"].startswith("alpha = 2 x r = 64: follows the r you set")


def test_an_override_the_config_refuses_is_a_value_error():
    planned = training_settings(None, CPU)
    with pytest.raises(ValueError, match="LoRA rank"):
        with_overrides(planned, {"lora_r": 0})


def test_a_typed_plan_with_other_values_keeps_them_and_says_they_are_the_plans():
    plan = decide(PROFILES["QLoRA, 500 examples on 16 GB"])
    plan = replace(plan, learning_rate=1e-4, epochs=2, lora=LoraSettings(32, 48, 0.2, ("q_proj", "v_proj")))
    choice = training_settings(plan, T4, available=[])
    assert (choice.config.lora_r, choice.config.lora_alpha, choice.config.learning_rate) == (32, 48, 1e-4)
    assert choice.config.target_modules == "q_proj,v_proj"
    assert choice.reasons["learning_rate"] == "1e-4: the plan's learning rate for QLoRA."
    assert choice.reasons["lora_alpha"].startswith("alpha = 48, 1.5 x r")
    assert choice.reasons["target_modules"] == "q_proj,v_proj: the plan's target modules."


def test_the_saved_plan_is_read_typed_and_a_missing_project_is_an_error(tmp_path):
    workspace = Workspace(tmp_path)
    with pytest.raises(WorkspaceError, match="no project named 'typo'"):
        project_plan(workspace, "typo")
    assert not workspace.project("typo").path.exists()
    workspace.ensure("p")
    assert project_plan(workspace, "p") is None  # before the interview
    plan = decide(PROFILES["latency"])
    workspace.update("p", lambda data: data | {"plan": plan.to_dict()})
    assert project_plan(workspace, "p") == plan
    workspace.update("p", lambda data: data | {"plan": {"finetune": "lora"}})
    with pytest.raises(WorkspaceError, match="answer the interview again"):
        project_plan(workspace, "p")


def test_without_a_gpu_the_plans_own_model_is_the_bundled_one_and_the_reason_says_so():
    from assistant.core.profile import TaskProfile
    from assistant.core.rules import decide
    from assistant.runtime.hardware import Hardware
    from assistant.runtime.models import BUNDLED_MODEL
    from assistant.services.training_settings import model_for_plan

    plan = decide(TaskProfile(gap="behaviour", examples=500, vram_gb=0))
    model, reason = model_for_plan(plan, Hardware(device="cpu"))
    assert model == BUNDLED_MODEL
    assert reason.startswith(f"The plan's {plan.model}: the bundled SmolLM2-135M-Instruct"), reason
    assert "wants a GPU" not in reason
