"""The memory estimate knows every training method: what each trains, checked against PEFT's own counts in its
MetaMathQA comparison (huggingface/peft, method_comparison/MetaMathQA/results, Llama-3.2-3B)."""

import pytest

from assistant.core.catalog import MODEL_CATALOG
from assistant.core.memory import METHODS, TrainingShape, estimate_for, estimate_memory
from assistant.core.profile import TaskProfile
from assistant.core.rules import decide
from trainers.config import METHODS as ALL_METHODS
from trainers.config import TrainingConfig
from trainers.methods import method
from tunewise.errors import InputError

LLAMA_3B = MODEL_CATALOG["Llama-3.2-3B"]


@pytest.mark.parametrize("name, settings, peft_counted", [
    ("ia3", dict(), 630_784),  # ia3--llama-3.2-3B-all-attn-5k-lr0.005: all seven projections
    ("prompt_tuning", dict(num_virtual_tokens=200), 614_400),
    ("prefix_tuning", dict(num_virtual_tokens=200), 11_468_800),
    ("p_tuning", dict(num_virtual_tokens=20), 28_382_208),
    ("adaption_prompt", dict(num_virtual_tokens=100), 8_601_628),
    ("lora", dict(lora_r=32, target_modules="q_proj,v_proj"), 9_175_040),
    ("full", dict(), 3_212_749_824),
])
def test_trained_weights_match_pefts_own_count(name, settings, peft_counted):
    assert method(name).trainable_params(LLAMA_3B, TrainingConfig(method=name, **settings)) == peft_counted


def test_adalora_trains_at_its_initial_rank_and_keeps_importance_scores():
    lora = method("lora").trainable_params(LLAMA_3B, TrainingConfig(lora_r=8))
    adalora = method("adalora").trainable_params(LLAMA_3B, TrainingConfig(method="adalora", lora_r=8))
    assert adalora > 1.5 * lora  # rank 12 and a singular value per rank
    estimate = estimate_memory(LLAMA_3B)
    per_weight = estimate.method("adalora").optimizer_gb * 1e9 / estimate.method("adalora").trainable_params
    assert per_weight == pytest.approx(8 + 12)  # Adam's moments and three fp32 importance scores


def test_every_method_is_estimated_and_the_plan_keeps_its_three():
    estimate = estimate_memory(MODEL_CATALOG["Llama-3.1-8B"])
    assert tuple(estimate.by_method) == ALL_METHODS and set(estimate.totals_gb()) == set(METHODS)
    totals = estimate.all_totals_gb()
    assert totals["full"] > totals["lora"] > totals["qlora"]
    assert totals["ia3"] < totals["lora"] and totals["prompt_tuning"] < totals["lora"]
    assert estimate.method("ia3") is estimate.by_method["ia3"]
    data = estimate.to_dict()
    assert data["by_method"]["p_tuning"]["total_gb"] == pytest.approx(totals["p_tuning"], abs=0.01)
    with pytest.raises(InputError, match="choose one of full, lora"):
        estimate.method("lorra")


def test_a_saved_plans_estimate_says_to_estimate_again_for_other_methods():
    from assistant.core.rules import Plan

    plan = Plan.from_dict(decide(TaskProfile(gap="behaviour", examples=800, vram_gb=24)).to_dict())
    assert plan.memory.method("lora").total_gb > 0
    with pytest.raises(InputError, match="estimate again"):
        plan.memory.method("ia3")


def test_virtual_tokens_lengthen_every_sequence_for_prompt_and_p_tuning_only():
    shape = MODEL_CATALOG["Llama-3.1-8B"]
    training = TrainingShape(seq_len=512, gradient_checkpointing=False)
    plain = estimate_for(shape, training, TrainingConfig(method="lora"))
    prompt = estimate_for(shape, training, TrainingConfig(method="prompt_tuning", num_virtual_tokens=100))
    prefix = estimate_for(shape, training, TrainingConfig(method="prefix_tuning", num_virtual_tokens=100))
    assert prompt.activations_gb == pytest.approx(plain.activations_gb * (512 + 100) / 512)
    assert plain.activations_gb < prefix.activations_gb < prompt.activations_gb
    fewer = estimate_for(shape, training, TrainingConfig(method="prompt_tuning", num_virtual_tokens=10))
    assert fewer.activations_gb < prompt.activations_gb


@pytest.mark.parametrize("on_cpu", [False, True])
def test_a_full_fine_tune_costs_16_bytes_per_weight_on_any_device(on_cpu):
    shape = MODEL_CATALOG["SmolLM2-135M"]
    full = estimate_for(shape, TrainingShape(seq_len=256, on_cpu=on_cpu), TrainingConfig(method="full"))
    assert (full.weights_gb + full.gradients_gb + full.optimizer_gb) * 1e9 / shape.total_params == pytest.approx(16)
    assert full.trainable_params == shape.total_params


def test_the_runs_own_settings_are_estimated():
    shape = MODEL_CATALOG["Llama-3.1-8B"]
    narrow = estimate_for(shape, TrainingShape(), TrainingConfig(lora_r=8, target_modules="q_proj,v_proj"))
    wide = estimate_for(shape, TrainingShape(), TrainingConfig(lora_r=8))
    assert narrow.trainable_params < wide.trainable_params
    qlora = estimate_for(shape, TrainingShape(), TrainingConfig(method="qlora"))
    assert qlora.weights_gb < wide.weights_gb / 2
