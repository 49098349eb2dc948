"""Training-memory estimates for full fine-tuning, LoRA and QLoRA.

Pure arithmetic over a :class:`~assistant.core.catalog.ModelShape`; nothing is loaded.
All sizes are in GB of 10^9 bytes, the unit GPU vendors print on the box.

Where the bytes go, per parameter:

* full fine-tune, mixed-precision Adam: 16-bit weights (2) + 16-bit gradients (2)
  + fp32 master copy and two fp32 Adam moments (12) = 16 bytes.
* LoRA: the frozen base in 16-bit (2 bytes per base weight) plus the adapters,
  which PEFT keeps in fp32 by default: weight (4) + gradient (4) + Adam moments (8).
* QLoRA: the decoder's linear weights in NF4 with double quantisation, 4.127 bits
  each (4 bits + an 8-bit absmax per 64 weights + an fp32 constant per 256 of
  those), while embeddings, norms and the lm_head stay 16-bit as bitsandbytes
  leaves them; adapters as for LoRA.

Activations follow the tensors a Llama-style layer saves for backward (see
:func:`activation_bytes_per_token_layer`); the logits cost nothing by default, because TRL's trainer
never materialises them (``TrainingShape.fused_loss``). Checked on an H200 against torch's peak
allocation for an 8B-shaped model (bench/gpu_sft.py, docs/benchmarks.md): within 4% for QLoRA and
LoRA, at 2048 and 8192 tokens, with and without checkpointing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from assistant.core.catalog import ModelShape
from assistant.core.errors import InputError
from trainers.activations import CPU_ACTIVATION_FACTOR, CPU_OVERHEAD_GB, layer_bytes_per_token

GB = 1e9
NF4_BYTES_PER_WEIGHT = (4 + 8 / 64 + 32 / (64 * 256)) / 8
FULL_BYTES_PER_PARAM = 16
ADAM_MOMENT_BYTES = 8
# CUDA context, cuBLAS workspaces and what the caching allocator reserves beyond the tensors: on an
# H200 (bench/gpu_sft.py) the reserve measured 0.1-0.7 GB above the peak allocation.
RUNTIME_OVERHEAD_GB = 1.0


def fits_in(total_gb: float, vram_gb: float) -> bool:
    """Whether a training run whose tensors need ``total_gb`` runs on a GPU of ``vram_gb``."""
    return vram_gb > 0 and needed_vram_gb(total_gb) <= vram_gb


def needed_vram_gb(total_gb: float) -> float:
    """The GPU memory to ask for: the tensors and the CUDA runtime with the allocator's reserve."""
    return total_gb + RUNTIME_OVERHEAD_GB


# The CPU constants live with the per-token formula (trainers/activations.py), which the training
# job's checkpointing choice uses too.

ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
METHODS = ("full", "lora", "qlora")


@dataclass(frozen=True)
class TrainingShape:
    """The batch the estimate is for."""

    seq_len: int = 2048
    batch_size: int = 1
    gradient_checkpointing: bool = True
    on_cpu: bool = False
    """Training on a CPU, as Tunewise does it: base weights and activations in fp32, and the
    activations measured rather than modelled (see :data:`CPU_ACTIVATION_FACTOR`)."""
    fused_loss: bool = True
    """The loss is computed without materialising the logits. TRL 1.x's SFTTrainer always does this
    (a fused LM head that scores the labelled positions in tiles); False models a plain
    ``model(labels=...)`` loss, which keeps bf16 logits, their fp32 upcast and its gradient."""

    def __post_init__(self) -> None:
        if self.seq_len < 1 or self.batch_size < 1:
            raise InputError("seq_len and batch_size must be at least 1")

    @property
    def tokens(self) -> int:
        return self.seq_len * self.batch_size


@dataclass(frozen=True)
class MethodMemory:
    """Training memory of one method, by what holds it."""

    method: str
    trainable_params: int
    weights_gb: float
    gradients_gb: float
    optimizer_gb: float
    activations_gb: float

    @property
    def total_gb(self) -> float:
        return self.weights_gb + self.gradients_gb + self.optimizer_gb + self.activations_gb

    def fits(self, vram_gb: float) -> bool:
        return fits_in(self.total_gb, vram_gb)


@dataclass(frozen=True)
class MemoryEstimate:
    """Full, LoRA and QLoRA memory of one model for one batch shape."""

    model: str
    total_params: int
    lora_rank: int
    target_modules: tuple[str, ...]
    training: TrainingShape
    full: MethodMemory
    lora: MethodMemory
    qlora: MethodMemory

    def method(self, name: str) -> MethodMemory:
        if name not in METHODS:
            raise InputError(f"unknown method {name!r}; expected one of {METHODS}")
        return getattr(self, name)

    def totals_gb(self) -> dict[str, float]:
        return {name: round(self.method(name).total_gb, 2) for name in METHODS}

    def to_dict(self) -> dict:
        data = asdict(self)
        for name in METHODS:
            data[name]["total_gb"] = round(self.method(name).total_gb, 3)
        return data


def lora_trainable_params(shape: ModelShape, rank: int, target_modules: tuple[str, ...]) -> int:
    """Weights LoRA adds at ``rank`` on the named projections of every layer."""
    unknown = set(target_modules) - set(shape.module_names)
    if unknown:
        raise InputError(f"{shape.name} has no modules named {sorted(unknown)}")
    return sum(g.lora_params(rank) for g in shape.linear_groups if g.name in target_modules)


def nf4_weights_bytes(shape: ModelShape) -> float:
    """Bytes of a base loaded in 4-bit: NF4 linear layers, everything else 16-bit."""
    return shape.linear_params * NF4_BYTES_PER_WEIGHT + shape.other_params * 2


def activation_bytes_per_token_layer(shape: ModelShape) -> float:
    """Bytes one decoder layer keeps for backward per token (see trainers/activations.py)."""
    return layer_bytes_per_token(shape.hidden_size, shape.kv_dim, shape.intermediate_size)


def activations_bytes(shape: ModelShape, training: TrainingShape) -> float:
    per_layer = activation_bytes_per_token_layer(shape)
    if training.gradient_checkpointing:
        # Each layer keeps only its 16-bit input; one layer at a time is recomputed in full.
        kept = shape.num_layers * 2 * shape.hidden_size + per_layer
    else:
        kept = shape.num_layers * per_layer
    if training.on_cpu:
        kept *= CPU_ACTIVATION_FACTOR
    # 16-bit logits, their fp32 upcast for the loss and its gradient.
    logits = 0 if training.fused_loss else shape.vocab_size * (2 + 4 + 4)
    return training.tokens * (kept + logits) + (CPU_OVERHEAD_GB * GB if training.on_cpu else 0)


def estimate_memory(
    shape: ModelShape,
    training: TrainingShape | None = None,
    lora_rank: int = 8,
    target_modules: tuple[str, ...] = ALL_LINEAR,
    adapter_dtype_bytes: int = 4,
) -> MemoryEstimate:
    """Estimate training memory of ``shape`` for full fine-tuning, LoRA and QLoRA.

    Args:
        shape: the model's shape (catalog entry or read from a config).
        training: batch shape; defaults to one sequence of 2048 tokens, checkpointed.
        lora_rank: LoRA rank r for both adapter methods.
        target_modules: projections that get adapters.
        adapter_dtype_bytes: 4 for fp32 adapters (PEFT's default), 2 for the 16-bit
            adapters of the QLoRA paper; Adam's two moments are fp32 either way.
    """
    training = training or TrainingShape()
    target_modules = tuple(t for t in target_modules if t in shape.module_names) or shape.module_names
    activations = activations_bytes(shape, training) / GB
    params = shape.total_params
    full = MethodMemory(
        "full", params, 2 * params / GB, 2 * params / GB,
        (FULL_BYTES_PER_PARAM - 4) * params / GB, activations,
    )
    adapter = lora_trainable_params(shape, lora_rank, target_modules)
    adapter_weights = adapter * adapter_dtype_bytes / GB
    adapter_grads = adapter * adapter_dtype_bytes / GB
    adapter_optimizer = adapter * ADAM_MOMENT_BYTES / GB
    lora = MethodMemory(
        "lora", adapter, (4 if training.on_cpu else 2) * params / GB + adapter_weights, adapter_grads,
        adapter_optimizer,
        activations,
    )
    qlora = MethodMemory(
        "qlora", adapter, nf4_weights_bytes(shape) / GB + adapter_weights, adapter_grads,
        adapter_optimizer, activations,
    )
    return MemoryEstimate(shape.name, params, lora_rank, target_modules, training, full, lora, qlora)
