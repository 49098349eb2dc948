"""How many bytes a decoder layer keeps for backward, per token: the one formula both the plan's
memory estimate (assistant/core/memory.py) and the training job's checkpointing choice use.

Saved tensors of a Llama-style layer, 16-bit: the residual and normed inputs of attention and MLP
(4h), q and k before and after rotary embedding and v (about 3h + 3kv), the attention output (h),
the gate, up, activated-gate and product tensors of the MLP (4 x intermediate); and the two
RMSNorms' fp32 upcasts of their inputs (2 x 4h bytes). SDPA and FlashAttention keep no
seq x seq score matrix. Measured on an H200 (bench/gpu_sft.py): an 8B-shaped model's training
peak at 2048 tokens lies within 3% of the estimate built on this.
"""

from __future__ import annotations

# Measured on a CPU (bench/memory_cpu.py: the bundled SmolLM2-135M, fp32 LoRA on all linear layers,
# 512 to 2,048 tokens a step): the training process holds 5.06x the bytes the 16-bit formula counts
# per token: 2x for fp32, and 2.53x beyond that (PEFT's dropout copy of each adapted projection's
# input, the attention's math path, ...), plus 0.4 GB that does not grow with the batch (load
# transients, the allocator). Fitted on those three runs; not yet broken down term by term.
CPU_ACTIVATION_FACTOR = 5.06
CPU_OVERHEAD_GB = 0.4


def layer_bytes_per_token(hidden: int, kv_dim: int, intermediate: int) -> float:
    sixteen_bit_elements = 8 * hidden + 3 * kv_dim + 4 * intermediate
    return 2 * sixteen_bit_elements + 2 * 4 * hidden


def model_bytes_per_token(config) -> float:
    """Activation bytes per token without checkpointing, for a transformers config."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    hidden = int(text.hidden_size)
    heads = int(getattr(text, "num_attention_heads", 1))
    kv_dim = int(getattr(text, "num_key_value_heads", None) or heads) * int(
        getattr(text, "head_dim", None) or hidden // heads)
    intermediate = int(getattr(text, "intermediate_size", None) or 4 * hidden)
    return int(text.num_hidden_layers) * layer_bytes_per_token(hidden, kv_dim, intermediate)
