"""Training-memory estimates for every training method (trainers/methods.py): full, the LoRA family,
IA3, AdaLoRA and the prompt-based methods.

Pure arithmetic over a :class:`~assistant.core.catalog.ModelShape`; nothing is loaded.
All sizes are in GB of 10^9 bytes, the unit GPU vendors print on the box.

Where the bytes go, per parameter:

* full fine-tune, mixed-precision Adam: fp32 master weights (4) + fp32 gradients (4) + two fp32
  Adam moments (8) = 16 bytes; the forward computes in 16-bit under autocast (the job keeps fp32
  weights because a 1e-5 update is below bfloat16's resolution).
* LoRA: the frozen base in 16-bit (2 bytes per base weight) plus the adapters,
  which PEFT keeps in fp32 by default: weight (4) + gradient (4) + Adam moments (8).
* Every other PEFT method: the same frozen base and the same 16 bytes per trained weight; what
  differs is how many weights it trains (each method's entry counts them,
  ``TrainingMethod.trainable_params``): DoRA adds a magnitude per output, AdaLoRA trains at its
  initial rank (1.5 x the target rank; pruning masks, it never shrinks the matrices) and keeps three
  fp32 importance scores per weight, IA3 one scale per activation, prompt and P-tuning a few virtual
  token embeddings (P-tuning's MLP encoder too), prefix tuning a key and value per virtual token and
  layer. Prompt and P-tuning's virtual tokens run through every layer as extra positions, so they
  lengthen every sequence; prefix tuning and LLaMA-Adapter only add keys and values to attention.
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

from dataclasses import asdict, dataclass, field, replace

from assistant.core.catalog import ModelShape
from assistant.core.errors import InputError
from trainers.activations import CPU_ACTIVATION_FACTOR, CPU_OVERHEAD_GB, layer_bytes_per_token
from trainers.config import TrainingConfig
from trainers.methods import METHOD_NAMES, TrainingMethod
from trainers.methods import method as training_method

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
"""The methods a plan weighs by memory (its card shows these three); :data:`ALL_METHODS` are estimated too."""
ALL_METHODS = METHOD_NAMES
DEFAULT_VIRTUAL_TOKENS = TrainingConfig().num_virtual_tokens


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
    """Memory of one model for one batch shape: full, LoRA and QLoRA as fields (what a plan weighs), every
    method of the registry in :attr:`by_method`."""

    model: str
    total_params: int
    lora_rank: int
    target_modules: tuple[str, ...]
    training: TrainingShape
    full: MethodMemory
    lora: MethodMemory
    qlora: MethodMemory
    by_method: dict[str, MethodMemory] = field(default_factory=dict, compare=False)
    """Every method estimated, by name (empty in an estimate read back from a saved plan, which keeps the three
    fields); not part of equality, since it follows from the rest."""

    def method(self, name: str) -> MethodMemory:
        if name in METHODS:
            return getattr(self, name)
        if name in self.by_method:
            return self.by_method[name]
        if name in ALL_METHODS:
            raise InputError(f"this estimate was read back from a saved plan and holds only {', '.join(METHODS)}",
                             f"estimate again to see {name}")
        raise InputError(f"unknown method {name!r}", f"choose one of {', '.join(ALL_METHODS)}")

    def totals_gb(self) -> dict[str, float]:
        return {name: round(self.method(name).total_gb, 2) for name in METHODS}

    def all_totals_gb(self) -> dict[str, float]:
        """Total GB of every method estimated, in the registry's order."""
        return {name: round(memory.total_gb, 2) for name, memory in self.by_method.items()} or self.totals_gb()

    def to_dict(self) -> dict:
        data = asdict(self)
        for name in METHODS:
            data[name]["total_gb"] = round(self.method(name).total_gb, 3)
        for name, memory in self.by_method.items():
            data["by_method"][name]["total_gb"] = round(memory.total_gb, 3)
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


def method_memory(shape: ModelShape, training: TrainingShape, entry: TrainingMethod, settings: TrainingConfig,
                  adapter_dtype_bytes: int = 4) -> MethodMemory:
    """Training memory of one method: its base, the weights it trains with their gradients and Adam state, and
    the activations of the batch (lengthened by virtual tokens where the method adds positions).

    Args:
        entry: the method (trainers/methods.py), which counts the weights it trains.
        settings: its settings (rank, target modules, virtual tokens).
        adapter_dtype_bytes: bytes per trained adapter weight and gradient (4: PEFT's fp32 default).
    """
    params = shape.total_params
    if entry.full:  # fp32 master weights, fp32 gradients, two fp32 moments: 16 bytes per weight
        return MethodMemory(entry.name, params, 4 * params / GB, 4 * params / GB,
                            (FULL_BYTES_PER_PARAM - 8) * params / GB, activations_bytes(shape, training) / GB)
    trained = entry.trainable_params(shape, settings)
    if entry.quantized_base:
        base = nf4_weights_bytes(shape)
    else:
        base = (4 if training.on_cpu else 2) * params
    if entry.lengthens_sequence:  # every row carries the virtual tokens through every layer
        activations = activations_bytes(shape, replace(training, seq_len=training.seq_len
                                                       + settings.num_virtual_tokens))
    else:
        activations = activations_bytes(shape, training)
        if entry.virtual_tokens:  # learned keys and values each layer's attention reads: 16-bit, per row
            activations += training.batch_size * settings.num_virtual_tokens * shape.num_layers * 2 * shape.kv_dim * 2
    return MethodMemory(entry.name, trained, (base + trained * adapter_dtype_bytes) / GB,
                        trained * adapter_dtype_bytes / GB,
                        trained * (ADAM_MOMENT_BYTES + entry.extra_state_bytes) / GB, activations / GB)


def estimate_memory(
    shape: ModelShape,
    training: TrainingShape | None = None,
    lora_rank: int = 8,
    target_modules: tuple[str, ...] = ALL_LINEAR,
    adapter_dtype_bytes: int = 4,
    num_virtual_tokens: int = DEFAULT_VIRTUAL_TOKENS,
) -> MemoryEstimate:
    """Estimate training memory of ``shape`` for every training method.

    Args:
        shape: the model's shape (catalog entry or read from a config).
        training: batch shape; defaults to one sequence of 2048 tokens, checkpointed.
        lora_rank: LoRA rank r for the LoRA family and IA3's targets (AdaLoRA's target rank).
        target_modules: projections that get adapters.
        adapter_dtype_bytes: 4 for fp32 adapters (PEFT's default), 2 for the 16-bit
            adapters of the QLoRA paper; Adam's two moments are fp32 either way.
        num_virtual_tokens: virtual tokens of the prompt-based methods.
    """
    training = training or TrainingShape()
    target_modules = tuple(t for t in target_modules if t in shape.module_names) or shape.module_names
    lora_trainable_params(shape, lora_rank, target_modules)  # refuses a rank below 1 the same way for all
    settings = TrainingConfig(lora_r=lora_rank, target_modules=",".join(target_modules),
                              num_virtual_tokens=num_virtual_tokens)
    by_method = {name: method_memory(shape, training, training_method(name), settings, adapter_dtype_bytes)
                 for name in ALL_METHODS}
    return MemoryEstimate(shape.name, shape.total_params, lora_rank, target_modules, training, by_method["full"],
                          by_method["lora"], by_method["qlora"], by_method)


def estimate_for(shape: ModelShape, training: TrainingShape, settings: TrainingConfig) -> MethodMemory:
    """The memory of the run ``settings`` describe (its method, rank, targets and virtual tokens)."""
    names = settings.peft_target_modules
    targets = shape.module_names if names == "all-linear" else tuple(t for t in names if t in shape.module_names)
    settings = settings.overridden(target_modules=",".join(targets or shape.module_names))
    return method_memory(shape, training, settings.training_method, settings)
