"""The training methods: one entry per method, the one place a method is defined.

    from trainers.methods import METHODS, method
    method("ia3").learning_rate, method("ia3").mergeable, method("ia3").peft_config(training_config, context)

Each :class:`TrainingMethod` says, in PEFT's spirit (``register_peft_method``: a method is one
registered entry that says up front what it can share a batch with), everything the rest of the
house asks of a method: what it trains, its starting learning rate and why, whether the base is
quantised, whether it works through virtual tokens (and so cannot share a forward pass with LoRA
rows), whether export can fold it into the base, how many weights it trains (the memory estimate,
assistant/core/memory.py, calls :meth:`TrainingMethod.trainable_params`) and how its PEFT config is
built from a :class:`~trainers.config.TrainingConfig`. The config's choices and validation, the job
(trainers/sft.py), the export (trainers/adapters.py), the estimate and the form's reasons all read
this table. Adding a method is one entry in :data:`METHODS`.

Learning rates come from PEFT's own method comparison (huggingface/peft,
``method_comparison/MetaMathQA``: Llama-3.2-3B, 5,000 steps of batch 4, AdamW, cosine schedule,
GSM8K accuracy), which ran several rates for the methods whose best rate differs most from LoRA's.

No torch and no peft at module level: the form, ``--help`` and the interview import this; PEFT's
config classes are imported inside the builders.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from trainers.ollama import WHAT_OLLAMA_TAKES
from tunewise.errors import InputError

MLP_PROJECTIONS = frozenset({"gate_proj", "up_proj", "down_proj", "fc1", "fc2", "c_fc", "w1", "w2", "w3",
                             "dense_h_to_4h", "dense_4h_to_h"})
"""Projections inside the MLP. IA3 scales their input (``feedforward_modules``) and the output of
every other target, as PEFT's IA3 does."""
ADAPTION_PROMPT_ARCHITECTURES = ("llama", "mistral", "gpt2")
"""Model types PEFT 0.21's LLaMA-Adapter (``adaption_prompt``) knows how to rewire
(peft/tuners/adaption_prompt/config.py, ``TRANSFORMERS_MODEL_CONFIG``). SmolLM2 is a Llama."""
ADALORA_INITIAL_RANK_PER_TARGET = 1.5
"""AdaLoRA starts every matrix at 1.5 x the rank it prunes down to: PEFT's defaults (init_r=12, target_r=8)."""


class TrainingConfig(Protocol):
    """The settings a method reads: trainers/config.py's TrainingConfig has them (it imports this module for
    its choices, so this one names only what it reads)."""

    lora_r: int
    lora_alpha: int
    lora_dropout: float
    modules_to_save: list[str] | None
    num_virtual_tokens: int
    prompt_init: str
    prompt_init_text: str

    @property
    def peft_target_modules(self) -> list[str] | str: ...


class ModelDimensions(Protocol):
    """What :meth:`TrainingMethod.trainable_params` reads of a model's shape (assistant/core/catalog.py's
    ModelShape has it; trainers/ does not import it)."""

    hidden_size: int
    num_layers: int
    kv_dim: int
    total_params: int
    linear_groups: tuple  # each with .name, .in_features, .out_features, .count


@dataclass(frozen=True)
class MethodContext:
    """What a PEFT config needs beyond the training settings, known only when the job runs."""

    model_type: str = ""
    """The base's ``config.model_type`` (llama, qwen2, ...)."""
    num_layers: int = 0
    tokenizer_path: str = ""
    """Where the tokenizer loads from: prompt tuning's text initialisation tokenises with it."""
    init_text: str = ""
    """The text prompt tuning starts from when the config gives none (the data's instruction)."""
    total_steps: int = 0
    """Optimiser steps of the run (AdaLoRA's rank budget is scheduled over them)."""
    linear_names: tuple[str, ...] = ()
    """Names of the base's linear layers inside its blocks (q_proj, ..., down_proj): what all-linear means here."""


@dataclass(frozen=True)
class TrainingMethod:
    """One way to fine-tune, and everything the house needs to know of it."""

    name: str
    label: str
    """As a person reads it: "LoRA", "prompt tuning"."""
    description: str
    """One line: what it trains."""
    learning_rate: float
    learning_rate_reason: str
    """Why that rate: the sources it comes from."""
    build: Callable[[TrainingConfig, MethodContext], Any] | None
    """The PEFT config for a training config; None for a full fine-tune (no wrapper)."""
    count_trainable: Callable[[ModelDimensions, TrainingConfig], int]
    quantized_base: bool = False
    """The base loads in 4-bit NF4 (bitsandbytes; CUDA for real work)."""
    prompt_based: bool = False
    """Trains virtual tokens (or prefixes) in front of every input: such an adapter changes the sequence, so it
    cannot share a forward batch with LoRA rows, and there are no weights to merge."""
    lengthens_sequence: bool = False
    """Its virtual tokens run through every layer as extra positions (prompt and P-tuning; a prefix only adds
    keys and values)."""
    lora_settings: bool = False
    """r, alpha, dropout and target modules apply."""
    virtual_tokens: bool = False
    """``num_virtual_tokens`` applies."""
    mergeable: bool = True
    """Export can fold it into the base weights (a standalone model, no added latency)."""
    export_note: str = ""
    """What export does with it, or why it cannot merge and what to do instead."""
    architectures: tuple[str, ...] | None = None
    """Model types it works on; None: any causal LM."""
    extra_state_bytes: int = 0
    """Bytes per trainable weight held beside Adam's moments (AdaLoRA's importance scores)."""
    schedules_rank: bool = False
    """Needs ``update_and_allocate`` after every optimiser step (AdaLoRA)."""

    @property
    def full(self) -> bool:
        return self.build is None

    def peft_config(self, config: TrainingConfig, context: MethodContext | None = None):
        """The PEFT config this method trains with (None for a full fine-tune)."""
        context = context or MethodContext()
        self.check_architecture(context.model_type)
        return None if self.build is None else self.build(config, context)

    def check_architecture(self, model_type: str) -> None:
        """Refuse, with the reason, a model this method cannot adapt."""
        if self.architectures is None or not model_type or model_type in self.architectures:
            return
        raise InputError(f"{self.label} cannot adapt a {model_type!r} model: PEFT's {self.label} rewires the "
                         f"attention of {', '.join(self.architectures)} models only",
                         "choose another method (prefix tuning adds learned keys and values to any model's "
                         "attention), or a Llama-architecture base such as the bundled SmolLM2")

    def trainable_params(self, shape: ModelDimensions, config: TrainingConfig) -> int:
        """Weights this method trains on a model of ``shape`` (what the optimiser keeps state for)."""
        return self.count_trainable(shape, config)

    def merge_refusal(self) -> str:
        """Why export cannot merge this method (empty when it can)."""
        return "" if self.mergeable else self.export_note


# --- PEFT config builders: one per family; peft is imported inside each. -------------------------------

def _lora(**options) -> Callable:
    def build(config: TrainingConfig, context: MethodContext):
        from peft import LoraConfig

        return LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                          target_modules=config.peft_target_modules, modules_to_save=config.modules_to_save,
                          task_type="CAUSAL_LM", **options)
    return build


def _adalora(config: TrainingConfig, context: MethodContext):
    from peft import AdaLoraConfig

    steps = max(context.total_steps, 1)
    tinit, tfinal = adalora_schedule(steps)
    # The budget is scheduled over the run's steps; the job sets the true count once the trainer knows it
    # (trainers/sft.py, AdaLoraCallback), since TRL may drop examples whose answer is cut off.
    return AdaLoraConfig(init_r=adalora_initial_rank(config.lora_r), target_r=config.lora_r,
                         lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                         target_modules=config.peft_target_modules, modules_to_save=config.modules_to_save,
                         total_step=max(steps, tinit + tfinal + 1), tinit=tinit, tfinal=tfinal, deltaT=1,
                         task_type="CAUSAL_LM")


def _ia3(config: TrainingConfig, context: MethodContext):
    from peft import IA3Config

    targets = config.peft_target_modules
    if targets == "all-linear":
        if not context.linear_names:  # PEFT's own feed-forward list for the architecture
            return IA3Config(target_modules=targets, modules_to_save=config.modules_to_save, task_type="CAUSAL_LM")
        targets = list(context.linear_names)
    # PEFT checks on load that the feed-forward modules are among the targets, so both are the model's own names.
    return IA3Config(target_modules=targets, feedforward_modules=[t for t in targets if t in MLP_PROJECTIONS],
                     modules_to_save=config.modules_to_save, task_type="CAUSAL_LM")


PROMPT_INITS = ("text", "vocab", "random")


def _prompt_tuning(config: TrainingConfig, context: MethodContext):
    from peft import PromptTuningConfig, PromptTuningInit

    if config.prompt_init == "text":
        text = (config.prompt_init_text or context.init_text).strip()
        if not text or not context.tokenizer_path:
            raise InputError("prompt tuning starts from text, but there is no text to start from",
                             "give --prompt-init-text, add a system prompt to the examples, or use "
                             "--prompt-init vocab")
        return PromptTuningConfig(num_virtual_tokens=config.num_virtual_tokens, task_type="CAUSAL_LM",
                                  prompt_tuning_init=PromptTuningInit.TEXT, prompt_tuning_init_text=text,
                                  tokenizer_name_or_path=context.tokenizer_path)
    init = PromptTuningInit.SAMPLE_VOCAB if config.prompt_init == "vocab" else PromptTuningInit.RANDOM
    return PromptTuningConfig(num_virtual_tokens=config.num_virtual_tokens, task_type="CAUSAL_LM",
                              prompt_tuning_init=init)


def _prefix_tuning(config: TrainingConfig, context: MethodContext):
    from peft import PrefixTuningConfig

    return PrefixTuningConfig(num_virtual_tokens=config.num_virtual_tokens, task_type="CAUSAL_LM")


def _p_tuning(config: TrainingConfig, context: MethodContext):
    from peft import PromptEncoderConfig

    return PromptEncoderConfig(num_virtual_tokens=config.num_virtual_tokens, encoder_reparameterization_type="MLP",
                               task_type="CAUSAL_LM")


def _adaption_prompt(config: TrainingConfig, context: MethodContext):
    from peft import AdaptionPromptConfig

    # Every layer, as PEFT's comparison ran it (adapter_layers = the model's 28 layers).
    return AdaptionPromptConfig(adapter_len=config.num_virtual_tokens, adapter_layers=max(1, context.num_layers),
                                task_type="CAUSAL_LM")


def adalora_initial_rank(target_rank: int) -> int:
    return math.ceil(ADALORA_INITIAL_RANK_PER_TARGET * target_rank)


def adalora_schedule(total_steps: int) -> tuple[int, int]:
    """(tinit, tfinal): warm-up steps before pruning and steps after it, PEFT's comparison's shares (200 and 500
    of 5,000 steps), at least one final step once there are three, so the budget is fixed before the end."""
    tinit = int(0.04 * total_steps)
    tfinal = max(int(0.1 * total_steps), 1 if total_steps >= 3 else 0)
    return tinit, tfinal


# --- trainable weights by method, for the memory estimate ---------------------------------------------

def _targets(shape: ModelDimensions, config: TrainingConfig) -> list:
    wanted = config.peft_target_modules
    groups = list(shape.linear_groups)
    chosen = groups if wanted == "all-linear" else [g for g in groups if g.name in wanted]
    return chosen or groups


def _all_params(shape, config) -> int:
    return shape.total_params


def _lora_params(shape, config) -> int:
    return sum(config.lora_r * (g.in_features + g.out_features) * g.count for g in _targets(shape, config))


def _dora_params(shape, config) -> int:
    # DoRA adds a magnitude vector (one value per output feature) to every adapted matrix.
    return _lora_params(shape, config) + sum(g.out_features * g.count for g in _targets(shape, config))


def _adalora_params(shape, config) -> int:
    # A (r x in), B (out x r) and the singular values E (r), at the initial rank: pruning masks, never shrinks.
    rank = adalora_initial_rank(config.lora_r)
    return sum(rank * (g.in_features + g.out_features + 1) * g.count for g in _targets(shape, config))


def _ia3_params(shape, config) -> int:
    return sum((g.in_features if g.name in MLP_PROJECTIONS else g.out_features) * g.count
               for g in _targets(shape, config))


def _prompt_params(shape, config) -> int:
    return config.num_virtual_tokens * shape.hidden_size


def _prefix_params(shape, config) -> int:
    # A key and a value per virtual token and layer, at the width of the KV heads (PEFT folds GQA in).
    return config.num_virtual_tokens * shape.num_layers * 2 * shape.kv_dim


def _p_tuning_params(shape, config) -> int:
    # The virtual tokens' embedding and PEFT's MLP prompt encoder: three hidden x hidden layers with biases
    # (what PEFT's comparison counts: 28,382,208 for 20 tokens on Llama-3.2-3B).
    hidden = shape.hidden_size
    return config.num_virtual_tokens * hidden + 3 * (hidden * hidden + hidden)


def _adaption_prompt_params(shape, config) -> int:
    # A learned prompt of adapter_len x hidden and one zero-initialised gate per adapted layer.
    return shape.num_layers * (config.num_virtual_tokens * shape.hidden_size + 1)


# --- the table ------------------------------------------------------------------------------------------

_LORA_MERGES = "merges into the base: a standalone model with no added latency"
_PROMPT_KEEPS = ("it learns virtual tokens that go in front of every input, not a change to any weight, so there is "
                 "nothing to merge into the base. Keep the adapter: " + WHAT_OLLAMA_TAKES)

METHODS: dict[str, TrainingMethod] = {m.name: m for m in (
    TrainingMethod(
        "full", "full fine-tune", "every weight of the model (fp32 master weights and Adam state)",
        1e-5, "a full fine-tune moves every weight of a trained model, so it starts small; PEFT's comparison ran it "
              "at 1e-5, twenty times below LoRA",
        None, _all_params, export_note="is already a whole model: export copies it with the Modelfile"),
    TrainingMethod(
        "lora", "LoRA", "low-rank matrices (A, B) beside each target projection; the base stays frozen",
        2e-4, "the usual starting point for LoRA (the QLoRA paper's rate; PEFT's comparison runs rank 32 at 1e-4); an "
              "adapter starts at zero and needs a larger rate than a full fine-tune (1e-5)",
        _lora(), _lora_params, lora_settings=True, export_note=_LORA_MERGES),
    TrainingMethod(
        "qlora", "QLoRA", "LoRA's matrices over a base quantised to 4-bit NF4 (bitsandbytes; CUDA)",
        2e-4, "LoRA's starting point, as the QLoRA paper trains: the adapters learn the same way over a 4-bit base",
        _lora(), _lora_params, quantized_base=True, lora_settings=True,
        export_note="merges into a 16-bit reload of the base, never into the 4-bit weights (that would round the "
                    "update away)"),
    TrainingMethod(
        "dora", "DoRA", "LoRA's matrices for the direction of each weight plus a learned magnitude per output",
        1e-4, "PEFT's comparison trains DoRA at 1e-4 (rank 32: 46.9% against LoRA's 47.8%); the learned magnitude "
              "makes each step larger than LoRA's, so it starts at half LoRA's rate",
        _lora(use_dora=True), _dora_params, lora_settings=True, export_note=_LORA_MERGES),
    TrainingMethod(
        "rslora", "rsLoRA", "LoRA with its update scaled by alpha / sqrt(r) instead of alpha / r",
        1e-4, "PEFT's comparison's best LoRA row is rsLoRA at 1e-4 (rank 64: 51.3%); scaling by sqrt(r) makes the "
              "update sqrt(r) times larger than LoRA's at the same alpha, so it starts below LoRA's 2e-4",
        _lora(use_rslora=True), _lora_params, lora_settings=True, export_note=_LORA_MERGES),
    TrainingMethod(
        "ia3", "IA3", "one learned scale per activation of each target projection (no matrices)",
        5e-3, "IA3 learns scales that start at 1, about 20 times fewer weights than LoRA at r=8; PEFT's comparison "
              "reached 45.5% at 5e-3 on all projections against 39.8% at 1e-3 and 31.1% at 1e-4",
        _ia3, _ia3_params, lora_settings=True,
        export_note="merges into the base: each scale multiplies a weight's rows or columns"),
    TrainingMethod(
        "adalora", "AdaLoRA", "LoRA in SVD form whose rank is pruned during training to the layers that matter",
        1e-3, "PEFT's AdaLoRA example trains at 1e-3; its comparison's one AdaLoRA run, at 1e-4, trailed LoRA "
              "(37.3% against 47.8%): pruning zeroes singular values, so the rest must move further",
        _adalora, _adalora_params, lora_settings=True, extra_state_bytes=12, schedules_rank=True,
        export_note=_LORA_MERGES),
    TrainingMethod(
        "prompt_tuning", "prompt tuning", "virtual token embeddings in front of every input; the model is frozen",
        1e-3, "PEFT's comparison: 1e-4 left prompt tuning at 5.7%, 1e-3 reached 23.4% (34.3% started from the "
              "vocabulary); only the virtual tokens' embeddings learn, so they need a rate far above LoRA's",
        _prompt_tuning, _prompt_params, prompt_based=True, lengthens_sequence=True, virtual_tokens=True,
        mergeable=False, export_note=_PROMPT_KEEPS),
    TrainingMethod(
        "prefix_tuning", "prefix tuning", "learned keys and values prepended in every attention layer",
        5e-3, "PEFT's comparison: 5e-3 reached 35.8-41.6% where 1e-3 reached 18.6%",
        _prefix_tuning, _prefix_params, prompt_based=True, virtual_tokens=True, mergeable=False,
        export_note=_PROMPT_KEEPS.replace("virtual tokens that go in front of every input",
                                          "keys and values every attention layer reads first")),
    TrainingMethod(
        "p_tuning", "P-tuning", "virtual tokens produced by a small MLP prompt encoder",
        1e-4, "PEFT's comparison trains P-tuning at its default 1e-4 (34.9%): the prompt encoder is an MLP of "
              "hidden x hidden layers, trained like any dense layer",
        _p_tuning, _p_tuning_params, prompt_based=True, lengthens_sequence=True, virtual_tokens=True,
        mergeable=False, export_note=_PROMPT_KEEPS),
    TrainingMethod(
        "adaption_prompt", "LLaMA-Adapter",
        "learned prompts inside each attention layer, blended in through a zero-initialised gate",
        5e-3, "PEFT's comparison: 5e-3 reached 38.4% where 5e-4 reached 21.2%; the gates start at zero",
        _adaption_prompt, _adaption_prompt_params, prompt_based=True, virtual_tokens=True, mergeable=False,
        architectures=ADAPTION_PROMPT_ARCHITECTURES,
        export_note="it adds gated attention over learned prompts inside every layer, not a change to any weight, "
                    "so it cannot be merged into the base. Keep the adapter: " + WHAT_OLLAMA_TAKES),
)}
"""Every training method, by name, in the order the form lists them."""

METHOD_NAMES: tuple[str, ...] = tuple(METHODS)


def method(name: str) -> TrainingMethod:
    """The method called ``name``; an InputError listing the methods for any other name."""
    try:
        return METHODS[name]
    except KeyError:
        raise InputError(f"there is no training method {name!r}",
                         f"choose one of {', '.join(METHOD_NAMES)}") from None


def methods_where(**wanted: Any) -> tuple[str, ...]:
    """Names of the methods whose attributes have the given values (``methods_where(mergeable=False)``)."""
    return tuple(m.name for m in METHODS.values() if all(getattr(m, k) == v for k, v in wanted.items()))


def first_instruction(records: Iterable[dict]) -> str:
    """The text prompt tuning starts from: the first system prompt of the examples, else the first user turn.

    The system prompt states the task, which is what the virtual tokens are to stand for; Lester et al. found
    initialising from words of the task better than random (PEFT's comparison: 34.3% from the vocabulary against
    23.4% random, at the same rate)."""
    first_user = ""
    for record in records:
        for message in record.get("messages", ()):
            content = message.get("content") if isinstance(message, dict) else None
            if not isinstance(content, str) or not content.strip():
                continue
            if message.get("role") == "system":
                return content.strip()
            if message.get("role") == "user" and not first_user:
                first_user = content.strip()
    return first_user
