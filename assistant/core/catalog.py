"""Shapes of common open models and the memory of common GPUs.

The memory estimator needs only a model's shape (how many weights sit in which
linear layers), never its weights, so the catalog is plain data. Shapes are
copied from each model's published ``config.json``; a model that is not listed
can be read from any config with :func:`assistant.runtime.model_shapes.shape_from_pretrained`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class LinearGroup:
    """One projection that every decoder layer has (``q_proj``, ``down_proj``...)."""

    name: str
    in_features: int
    out_features: int
    count: int
    bias: bool = False

    @property
    def params(self) -> int:
        per_module = self.in_features * self.out_features + (self.out_features if self.bias else 0)
        return per_module * self.count

    def lora_params(self, rank: int) -> int:
        """Weights LoRA adds to this group: A is r x in, B is out x r."""
        return rank * (self.in_features + self.out_features) * self.count


@dataclass(frozen=True)
class ModelShape:
    """What the estimator needs to know of a decoder-only transformer.

    ``linear_groups`` holds the quantisable projections inside the decoder layers;
    ``other_params`` is everything else (embeddings, norms, an untied lm_head),
    which bitsandbytes keeps in 16-bit when the base is loaded in 4-bit.
    """

    name: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    kv_dim: int
    linear_groups: tuple[LinearGroup, ...]
    other_params: int

    @property
    def linear_params(self) -> int:
        return sum(group.params for group in self.linear_groups)

    @property
    def total_params(self) -> int:
        return self.linear_params + self.other_params

    @property
    def size_b(self) -> float:
        return self.total_params / 1e9

    @property
    def module_names(self) -> tuple[str, ...]:
        return tuple(group.name for group in self.linear_groups)


def decoder_shape(
    name: str,
    *,
    vocab: int,
    hidden: int,
    intermediate: int,
    layers: int,
    heads: int,
    kv_heads: int,
    head_dim: int | None = None,
    tied: bool = False,
    qkv_bias: bool = False,
) -> ModelShape:
    """Shape of a Llama-style decoder (GQA attention, gated MLP, RMSNorm).

    Llama, Qwen2, Mistral, Gemma 2, Phi-3 and SmolLM2 all have this layout;
    they differ only in the numbers.
    """
    head_dim = head_dim or hidden // heads
    q_dim, kv_dim = heads * head_dim, kv_heads * head_dim
    groups = (
        LinearGroup("q_proj", hidden, q_dim, layers, qkv_bias),
        LinearGroup("k_proj", hidden, kv_dim, layers, qkv_bias),
        LinearGroup("v_proj", hidden, kv_dim, layers, qkv_bias),
        LinearGroup("o_proj", q_dim, hidden, layers),
        LinearGroup("gate_proj", hidden, intermediate, layers),
        LinearGroup("up_proj", hidden, intermediate, layers),
        LinearGroup("down_proj", intermediate, hidden, layers),
    )
    norms = (2 * layers + 1) * hidden
    embeddings = vocab * hidden * (1 if tied else 2)
    return ModelShape(name, vocab, hidden, intermediate, layers, kv_dim, groups, norms + embeddings)


# fmt: off
MODEL_CATALOG: dict[str, ModelShape] = {s.name: s for s in (
    decoder_shape("SmolLM2-135M", vocab=49152, hidden=576, intermediate=1536, layers=30, heads=9, kv_heads=3, tied=True),
    decoder_shape("SmolLM2-360M", vocab=49152, hidden=960, intermediate=2560, layers=32, heads=15, kv_heads=5, tied=True),
    decoder_shape("Qwen2.5-0.5B", vocab=151936, hidden=896, intermediate=4864, layers=24, heads=14, kv_heads=2, tied=True, qkv_bias=True),
    decoder_shape("Llama-3.2-1B", vocab=128256, hidden=2048, intermediate=8192, layers=16, heads=32, kv_heads=8, head_dim=64, tied=True),
    decoder_shape("Qwen2.5-1.5B", vocab=151936, hidden=1536, intermediate=8960, layers=28, heads=12, kv_heads=2, tied=True, qkv_bias=True),
    decoder_shape("SmolLM2-1.7B", vocab=49152, hidden=2048, intermediate=8192, layers=24, heads=32, kv_heads=32, tied=True),
    decoder_shape("Gemma-2-2B", vocab=256000, hidden=2304, intermediate=9216, layers=26, heads=8, kv_heads=4, head_dim=256, tied=True),
    decoder_shape("Qwen2.5-3B", vocab=151936, hidden=2048, intermediate=11008, layers=36, heads=16, kv_heads=2, tied=True, qkv_bias=True),
    decoder_shape("Llama-3.2-3B", vocab=128256, hidden=3072, intermediate=8192, layers=28, heads=24, kv_heads=8, head_dim=128, tied=True),
    decoder_shape("Phi-3.5-mini", vocab=32064, hidden=3072, intermediate=8192, layers=32, heads=32, kv_heads=32),
    decoder_shape("Llama-2-7B", vocab=32000, hidden=4096, intermediate=11008, layers=32, heads=32, kv_heads=32),
    decoder_shape("Mistral-7B-v0.3", vocab=32768, hidden=4096, intermediate=14336, layers=32, heads=32, kv_heads=8),
    decoder_shape("Qwen2.5-7B", vocab=152064, hidden=3584, intermediate=18944, layers=28, heads=28, kv_heads=4, qkv_bias=True),
    decoder_shape("Llama-3.1-8B", vocab=128256, hidden=4096, intermediate=14336, layers=32, heads=32, kv_heads=8),
    decoder_shape("Gemma-2-9B", vocab=256000, hidden=3584, intermediate=14336, layers=42, heads=16, kv_heads=8, head_dim=256, tied=True),
    decoder_shape("Llama-2-13B", vocab=32000, hidden=5120, intermediate=13824, layers=40, heads=40, kv_heads=40),
    decoder_shape("Qwen2.5-14B", vocab=152064, hidden=5120, intermediate=13824, layers=48, heads=40, kv_heads=8, qkv_bias=True),
    decoder_shape("Gemma-2-27B", vocab=256000, hidden=4608, intermediate=36864, layers=46, heads=32, kv_heads=16, head_dim=128, tied=True),
    decoder_shape("Qwen2.5-32B", vocab=152064, hidden=5120, intermediate=27648, layers=64, heads=40, kv_heads=8, qkv_bias=True),
    decoder_shape("LLaMA-65B", vocab=32000, hidden=8192, intermediate=22016, layers=80, heads=64, kv_heads=64),
    decoder_shape("Llama-3.1-70B", vocab=128256, hidden=8192, intermediate=28672, layers=80, heads=64, kv_heads=8),
    decoder_shape("Qwen2.5-72B", vocab=152064, hidden=8192, intermediate=29568, layers=80, heads=64, kv_heads=8, qkv_bias=True),
)}

# Models the plan proposes, smallest first: one current instruct family per size, so a plan
# that must shrink the model steps down a ladder users recognise.
SIZE_LADDER: tuple[str, ...] = (
    "Qwen2.5-0.5B", "Llama-3.2-1B", "Qwen2.5-1.5B", "Llama-3.2-3B", "Qwen2.5-7B",
    "Llama-3.1-8B", "Qwen2.5-14B", "Qwen2.5-32B", "Llama-3.1-70B", "Qwen2.5-72B",
)

CPU_MODEL = "SmolLM2-135M"
"""The model a plan without a GPU trains: the one Tunewise bundles (``bundled:SmolLM2-135M-Instruct``,
trainers.config.DEFAULT_MODEL), which LoRA trains on a CPU in minutes and which the Behaviour tab
and ``tunewise train`` take on a machine without CUDA. Planning any other model there would name one
that is not trained."""

# Memory of each card in GB as sold. Keys are lower-case names without spaces.
GPU_MEMORY_GB: dict[str, float] = {
    "gtx1080ti": 11, "rtx2080ti": 11, "rtx3060": 12, "rtx3070": 8, "rtx3080": 10, "rtx3090": 24,
    "rtx4060": 8, "rtx4060ti": 16, "rtx4070": 12, "rtx4070ti": 12, "rtx4080": 16, "rtx4090": 24,
    "rtx5080": 16, "rtx5090": 32, "rtxa4000": 16, "rtxa5000": 24, "rtxa6000": 48, "rtx6000ada": 48,
    "t4": 16, "v100": 16, "p100": 16, "l4": 24, "a10": 24, "a10g": 24, "l40": 48, "l40s": 48,
    "a40": 48, "a100": 40, "a10040gb": 40, "a10080gb": 80, "h100": 80, "h100nvl": 94, "h200": 141,
    "b200": 192, "mi250": 128, "mi300x": 192, "gh200": 96,
}
# fmt: on


def _gpu_key(text: str) -> str:
    key = re.sub(r"[^a-z0-9]", "", text.lower())
    return re.sub(r"^(nvidia|geforce|tesla|amd|instinct)+", "", key)


def gpu_memory_gb(name: str) -> float | None:
    """Memory of a GPU given by name ("RTX 4090", "a100 80gb", "T4"), or None if unknown."""
    key = _gpu_key(name)
    if key in GPU_MEMORY_GB:
        return GPU_MEMORY_GB[key]
    if ("rtx" + key) in GPU_MEMORY_GB:
        return GPU_MEMORY_GB["rtx" + key]
    return None


def find_gpu(text: str) -> tuple[str, float] | None:
    """The first known GPU named anywhere in free text, longest name first."""
    # "3090s", "a100s": a plural after a model number is still that card.
    words = [re.sub(r"(\d)s$", r"\1", w) for w in re.findall(r"[a-z0-9]+", text.lower())]
    # Join up to three neighbouring words ("rtx 4090", "a100 80 gb"), but never start at a lone
    # article or pronoun: "a 10 GB card" is not an A10.
    joined = [
        _gpu_key("".join(words[i:j]))
        for i in range(len(words))
        if len(words[i]) > 1 or words[i].isdigit()
        for j in range(min(len(words), i + 3), i, -1)
    ]
    candidates = [(key, GPU_MEMORY_GB.get(key) or GPU_MEMORY_GB.get("rtx" + key)) for key in joined]
    known = [(key, memory) for key, memory in candidates if memory is not None]
    if not known:
        return None
    key, memory = max(known, key=lambda item: len(item[0]))
    return key, float(memory)


def ladder_shapes() -> list[ModelShape]:
    return [MODEL_CATALOG[name] for name in SIZE_LADDER]
