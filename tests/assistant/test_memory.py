"""The memory estimator against RULES.md's reference figures."""

import pytest

from assistant.core.catalog import MODEL_CATALOG, LinearGroup, decoder_shape, find_gpu, gpu_memory_gb
from assistant.core.memory import (
    ALL_LINEAR,
    TrainingShape,
    estimate_memory,
    lora_trainable_params,
    nf4_weights_bytes,
)


def test_a_4096_square_matrix_and_its_rank_8_adapter():
    matrix = LinearGroup("w", 4096, 4096, count=1)
    assert matrix.params == 16_777_216
    assert matrix.lora_params(8) == 2 * 4096 * 8 == 65_536


def test_llama2_7b_lora_q_v_rank_8():
    shape = MODEL_CATALOG["Llama-2-7B"]
    trainable = lora_trainable_params(shape, 8, ("q_proj", "v_proj"))
    assert trainable == 4_194_304
    assert shape.total_params + trainable == 6_742_609_920
    assert round(100 * trainable / (shape.total_params + trainable), 2) == 0.06


@pytest.mark.parametrize("name", ["Llama-2-7B", "Mistral-7B-v0.3"])
def test_7b_weights_about_14gb_in_16bit_and_4_to_5gb_in_nf4(name):
    shape = MODEL_CATALOG[name]
    assert 13.0 <= 2 * shape.total_params / 1e9 <= 15.0
    assert 3.8 <= nf4_weights_bytes(shape) / 1e9 <= 5.0


def test_qlora_fits_65b_on_one_48gb_gpu_where_full_needs_over_780gb():
    shape = MODEL_CATALOG["LLaMA-65B"]
    # The QLoRA paper's setting: r=64 on all linear layers, 16-bit adapters.
    estimate = estimate_memory(shape, TrainingShape(seq_len=512), lora_rank=64, adapter_dtype_bytes=2)
    assert estimate.qlora.fits(48)
    assert estimate.full.total_gb > 780
    assert not estimate.lora.fits(80)


def test_full_finetune_costs_16_bytes_per_parameter_before_activations():
    shape = MODEL_CATALOG["Llama-3.1-8B"]
    full = estimate_memory(shape).full
    states = full.weights_gb + full.gradients_gb + full.optimizer_gb
    assert states * 1e9 / shape.total_params == pytest.approx(16)


def test_methods_order_and_activation_switches():
    shape = MODEL_CATALOG["Llama-3.1-8B"]
    checkpointed = estimate_memory(shape, TrainingShape(seq_len=2048))
    plain = estimate_memory(shape, TrainingShape(seq_len=2048, gradient_checkpointing=False))
    fused = estimate_memory(shape, TrainingShape(seq_len=2048, fused_loss=True))
    unfused = estimate_memory(shape, TrainingShape(seq_len=2048, fused_loss=False))
    assert checkpointed.full.total_gb > checkpointed.lora.total_gb > checkpointed.qlora.total_gb
    assert plain.qlora.activations_gb > 3 * checkpointed.qlora.activations_gb
    assert fused.qlora.activations_gb < unfused.qlora.activations_gb
    assert fused == checkpointed  # the default: TRL's trainer never materialises the logits
    doubled = estimate_memory(shape, TrainingShape(seq_len=2048, batch_size=2))
    assert doubled.qlora.activations_gb == pytest.approx(2 * checkpointed.qlora.activations_gb)


def test_catalog_parameter_counts_match_published_sizes():
    published_b = {"Llama-3.1-8B": 8.03, "Llama-3.2-1B": 1.24, "Qwen2.5-0.5B": 0.49,
                   "Qwen2.5-7B": 7.62, "Mistral-7B-v0.3": 7.25, "Llama-3.1-70B": 70.55,
                   "Gemma-2-9B": 9.24, "Qwen2.5-72B": 72.71}
    for name, size in published_b.items():
        assert MODEL_CATALOG[name].size_b == pytest.approx(size, rel=0.01), name


def test_lora_on_missing_modules_is_refused():
    with pytest.raises(ValueError, match="no modules named"):
        lora_trainable_params(MODEL_CATALOG["Llama-3.1-8B"], 8, ("c_attn",))


def test_all_linear_is_seven_projections_per_layer():
    shape = MODEL_CATALOG["Llama-2-7B"]
    assert shape.module_names == ALL_LINEAR
    assert lora_trainable_params(shape, 8, ALL_LINEAR) == 19_988_480


@pytest.mark.parametrize("text, gb", [
    ("RTX 4090", 24), ("rtx3090", 24), ("NVIDIA GeForce RTX 3060", 12), ("T4", 16), ("L4", 24),
    ("A10G", 24), ("L40S", 48), ("A100 40GB", 40), ("A100 80GB", 80), ("H100", 80), ("H200", 141),
])
def test_gpu_names_to_memory(text, gb):
    assert gpu_memory_gb(text) == gb
    assert find_gpu(f"we have an {text} in the lab")[1] == gb


def test_unknown_gpu_and_stray_letters_are_not_guessed():
    assert gpu_memory_gb("RTX 9999") is None
    assert find_gpu("a 10 gb card") is None


def test_meta_device_shape_matches_the_catalog_formula(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    from assistant.runtime.model_shapes import shape_from_pretrained

    config = LlamaConfig(vocab_size=512, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False)
    config.save_pretrained(tmp_path)
    measured = shape_from_pretrained(str(tmp_path))
    formula = decoder_shape("tiny", vocab=512, hidden=64, intermediate=160, layers=2, heads=4, kv_heads=2)
    real = sum(p.numel() for p in LlamaForCausalLM(config).parameters())
    assert measured.total_params == formula.total_params == real
    assert measured.module_names == formula.module_names == ALL_LINEAR
    assert lora_trainable_params(measured, 8, ALL_LINEAR) == lora_trainable_params(formula, 8, ALL_LINEAR)


def test_missing_config_gives_a_clear_error(tmp_path):
    from assistant.runtime.model_shapes import ModelConfigError, shape_from_pretrained

    with pytest.raises(ModelConfigError, match="config.json"):
        shape_from_pretrained(str(tmp_path / "nowhere"))


def test_hub_ids_of_catalog_models_need_no_network():
    from assistant.runtime.model_shapes import shape_for_model

    assert shape_for_model("Qwen/Qwen2.5-0.5B-Instruct").name == "Qwen2.5-0.5B"
    assert shape_for_model("meta-llama/Llama-3.1-8B-Instruct").name == "Llama-3.1-8B"
