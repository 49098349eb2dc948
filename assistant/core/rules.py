"""The decision engine: ``decide(TaskProfile) -> Plan``, implementing ../shared/RULES.md.

Pure functions over dataclasses: no I/O, no torch. Every rule that fires leaves a
one-line reason naming its number, and the reasons are listed in the rules' order
of precedence. Where two rules pull in different directions the lower number wins,
and the losing rule's reason says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from assistant.core.catalog import CPU_MODEL, MODEL_CATALOG, ModelShape, ladder_shapes
from assistant.core.errors import InputError
from assistant.core.memory import (
    ALL_LINEAR,
    MemoryEstimate,
    MethodMemory,
    TrainingShape,
    estimate_memory,
    needed_vram_gb,
)
from assistant.core.profile import TaskProfile
from trainers.methods import METHODS as TRAINING_METHODS

METHOD_LABELS = {name: entry.label for name, entry in TRAINING_METHODS.items()}
"""How a plan names a method: the registry's label (trainers/methods.py)."""
FLAGS = (
    "build_eval_first", "workflow", "few_shot", "grow_data", "prompting_baseline",
    "adapter_per_task", "merge_for_serving", "smaller_model", "no_gpu", "mix_general_data",
)

DEFAULT_MODEL_SIZE_B = 8.0
"""An 8B instruct model is the usual starting point: strong, and QLoRA fits it on a 16 GB card."""
LATENCY_MODEL_SIZE_B = 3.0
"""Largest model proposed when a small, fast model must do the job (rule 7)."""
SMALL_DATA_MAX_SIZE_B = 8.0
"""Largest model proposed for fewer than 1,000 examples (rule 8)."""
CPU_MAX_SIZE_B = 0.5
"""Largest model a CPU LoRA run finishes in reasonable time on a laptop (rule 5)."""
CPU_SHAPE = MODEL_CATALOG[CPU_MODEL]
"""What a plan without a GPU trains (rule 5): the bundled model, the one Tunewise trains on a CPU."""
LEARNING_RATES = {name: entry.learning_rate for name, entry in TRAINING_METHODS.items()}
"""Starting learning rate by method, from the registry (trainers/methods.py, each with its reason). A
full fine-tune moves every weight of a trained model, so it starts small; a LoRA adapter starts at zero
and needs a rate about twenty times larger to move."""
ALPHA_PER_RANK = 2
"""RULES.md: alpha = 2 x r."""
FEW_EXAMPLES = 1000
"""Below this many examples the plan regularises more (rule 8) and takes more passes."""


@dataclass(frozen=True)
class Reason:
    rule: str
    """The rule's number in RULES.md, or "defaults" for the proposed settings."""
    text: str


@dataclass(frozen=True)
class LoraSettings:
    r: int
    alpha: int
    dropout: float
    target_modules: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    """What to do, why, and the settings to start from."""

    retrieval: bool
    finetune: str
    flags: tuple[str, ...]
    model: str
    model_size_b: float
    lora: LoraSettings
    learning_rate: float
    epochs: int
    vram_gb: float
    memory: MemoryEstimate
    reasons: tuple[Reason, ...]
    next_steps: tuple[str, ...] = field(default=())

    @property
    def decision(self) -> str:
        """One line a person reads first."""
        parts = []
        if "build_eval_first" in self.flags:
            parts.append("build an evaluation first")
        if self.retrieval:
            parts.append("retrieval (RAG)")
        if self.finetune != "none":
            parts.append(f"{METHOD_LABELS[self.finetune]} on {article(self.model_size_b)} {self.model_size_b:g}B model")
        elif "few_shot" in self.flags or "workflow" in self.flags:
            parts.append("prompting (few-shot)")
        return " + ".join(parts) or "prompting"

    def reasons_for(self, rule: str) -> tuple[str, ...]:
        """The texts of the reasons rule ``rule`` ("1".."8" or "defaults") left, in order."""
        return tuple(r.text for r in self.reasons if r.rule == rule)

    def to_dict(self) -> dict:
        totals = self.memory.totals_gb()
        return {
            "decision": self.decision,
            "retrieval": self.retrieval,
            "finetune": self.finetune,
            "flags": list(self.flags),
            "model": self.model,
            "model_size_b": self.model_size_b,
            "lora": {
                "r": self.lora.r,
                "alpha": self.lora.alpha,
                "dropout": self.lora.dropout,
                "target_modules": list(self.lora.target_modules),
            },
            "learning_rate": self.learning_rate,
            "epochs": self.epochs,
            "vram_gb": self.vram_gb,
            "memory_gb": totals,
            "fits": {name: self.memory.method(name).fits(self.vram_gb) for name in totals},
            "memory": self.memory.to_dict(),
            "reasons": [{"rule": r.rule, "reason": r.text} for r in self.reasons],
            "next_steps": list(self.next_steps),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        """The plan :meth:`to_dict` wrote (as saved in project.json, through JSON or not).

        The derived keys (decision, memory_gb, fits) are left out: they follow from the rest.
        Raises ValueError naming what is missing or malformed.
        """
        try:
            lora = data["lora"]
            return cls(
                retrieval=bool(data["retrieval"]),
                finetune=data["finetune"],
                flags=tuple(data["flags"]),
                model=data["model"],
                model_size_b=data["model_size_b"],
                lora=LoraSettings(lora["r"], lora["alpha"], lora["dropout"], tuple(lora["target_modules"])),
                learning_rate=data["learning_rate"],
                epochs=data["epochs"],
                vram_gb=data["vram_gb"],
                memory=_memory_from_dict(data["memory"]),
                reasons=tuple(Reason(r["rule"], r["reason"]) for r in data["reasons"]),
                next_steps=tuple(data.get("next_steps", ())),
            )
        except (KeyError, TypeError) as error:
            raise InputError(f"not a plan as Tunewise saves one (missing or malformed: {error})") from error


def _memory_from_dict(data: Mapping[str, Any]) -> MemoryEstimate:
    """The estimate MemoryEstimate.to_dict wrote (its per-method total_gb is derived, so dropped)."""
    method_fields = [f.name for f in fields(MethodMemory)]
    methods = {name: MethodMemory(**{key: data[name][key] for key in method_fields})
               for name in ("full", "lora", "qlora")}
    return MemoryEstimate(data["model"], data["total_params"], data["lora_rank"], tuple(data["target_modules"]),
                          TrainingShape(**data["training"]), **methods)


def lora_rank_for(size_b: float) -> int:
    """RULES.md's starting ranks: up to ~7B r=8, ~13B r=16, 70B and up r=64 (32 between)."""
    if size_b <= 9:
        return 8
    if size_b <= 20:
        return 16
    if size_b < 65:
        return 32
    return 64


def epochs_for(examples: int) -> int:
    """Fewer examples need more passes; large sets overfit past one epoch."""
    if examples < FEW_EXAMPLES:
        return 3
    if examples < 10_000:
        return 2
    return 1


def dropout_for(examples: int) -> float:
    """Rule 8: few examples overfit, so more LoRA dropout."""
    return 0.1 if examples < FEW_EXAMPLES else 0.05


def learning_rate_for(method: str) -> float:
    """The starting learning rate of a method (LoRA's when there is no fine-tune)."""
    return LEARNING_RATES.get(method, LEARNING_RATES["lora"])


def alpha_for(rank: int) -> int:
    return ALPHA_PER_RANK * rank


# Why each proposed setting has its value: one sentence per setting, naming the value, so that the
# plan's settings and the training form say the same thing. A value that is not the rules' own
# (edited, or saved by an older version) gets a plain sentence that is still true of it.

def rate_text(rate: float) -> str:
    """A learning rate as people write it: 2e-4, 1e-5, 1.5e-4."""
    mantissa, exponent = f"{rate:e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def learning_rate_reason(method: str, rate: float) -> str:
    label = METHOD_LABELS.get(method, method)
    if rate != learning_rate_for(method):
        return f"{rate_text(rate)}: the plan's learning rate for {label}."
    if method == "full":
        return f"{rate_text(rate)}: a full fine-tune moves every weight of a trained model, so it starts small."
    return (f"{rate_text(rate)}: the usual starting point for {label}; an adapter starts at zero and needs a "
            f"larger rate than a full fine-tune ({rate_text(learning_rate_for('full'))}).")


def rank_reason(rank: int, size_b: float) -> str:
    scale = "4-8 suits format or style, 16-64 deep domain adaptation"
    if rank != lora_rank_for(size_b):
        return f"r={rank}: the plan's rank ({scale})."
    return (f"r={rank}: the starting rank for the plan's {size_b:.1f}B model (up to ~7B r=8, ~13B r=16, "
            f"70B and up r=64); {scale}.")


def alpha_reason(rank: int, alpha: int) -> str:
    if alpha == alpha_for(rank):
        return f"alpha = {ALPHA_PER_RANK} x r = {alpha}, the usual pairing."
    return f"alpha = {alpha}, {alpha / rank:g} x r (the usual pairing is {ALPHA_PER_RANK} x r = {alpha_for(rank)})."


def dropout_reason(dropout: float) -> str:
    if dropout == dropout_for(0):
        return (f"{dropout:g}: fewer than {FEW_EXAMPLES:,} examples overfit easily, so more regularisation "
                "(rule 8).")
    if dropout == dropout_for(FEW_EXAMPLES):
        return f"{dropout:g}: with {FEW_EXAMPLES:,} examples or more, light regularisation is enough."
    return f"{dropout:g}: the plan's LoRA dropout."


def targets_reason(targets: tuple[str, ...], method: str) -> str:
    if set(targets) != set(ALL_LINEAR):
        return f"{','.join(targets)}: the plan's target modules."
    if method == "qlora":
        return "All linear projections of attention and MLP, as QLoRA wants."
    return "All linear projections of attention and MLP (q_proj,v_proj is the minimal classic choice)."


def epochs_reason(epochs: float) -> str:
    bands = {epochs_for(0): f"fewer than {FEW_EXAMPLES:,} examples need several passes",
             epochs_for(FEW_EXAMPLES): f"{FEW_EXAMPLES:,} to 9,999 examples: two passes",
             epochs_for(10_000): "10,000 examples or more overfit past one epoch"}
    why = bands.get(epochs, "the plan's number of passes")
    return f"{epochs:g} epoch{'' if epochs == 1 else 's'}: {why}."


def article(size_b: float) -> str:
    """ "a" or "an" before a model size read aloud: an 8B, an 11B, an 18B, a 7B."""
    whole = str(int(size_b))
    return "an" if whole.startswith("8") or whole in ("11", "18") else "a"


def shape_for_size(size_b: float) -> ModelShape:
    """The model of the size ladder closest to ``size_b``."""
    return min(ladder_shapes(), key=lambda shape: abs(shape.size_b - size_b))


def _estimate(shape: ModelShape, training: TrainingShape) -> MemoryEstimate:
    return estimate_memory(shape, training, lora_rank_for(shape.size_b), ALL_LINEAR)


def _largest_fitting(max_size_b: float, vram_gb: float, training: TrainingShape) -> ModelShape | None:
    """The biggest model of the ladder, no bigger than ``max_size_b``, whose QLoRA fits."""
    candidates = [s for s in ladder_shapes() if s.size_b <= max_size_b * 1.05]
    fitting = [s for s in candidates if _estimate(s, training).qlora.fits(vram_gb)]
    return fitting[-1] if fitting else None


def decide(profile: TaskProfile, training: TrainingShape | None = None) -> Plan:
    """Turn a task profile into a plan, following RULES.md in its order of precedence."""
    training = training or TrainingShape()
    reasons: list[Reason] = []
    flags: set[str] = set()

    def because(rule: str, text: str) -> None:
        reasons.append(Reason(rule, text))

    knowledge = profile.gap in ("knowledge", "both")
    behaviour = profile.gap in ("behaviour", "both")
    weights_allowed = True
    retrieval = False

    # Rule 1: no metric, no weight update.
    if not profile.can_measure:
        flags.add("build_eval_first")
        weights_allowed = False
        because("1", "You cannot yet tell a right answer from a wrong one: build a held-out set "
                     "and a metric before any training.")

    # Rule 2: a fine-tune is frozen; weekly changes outrun it.
    if profile.changes == "weekly":
        flags.add("workflow")
        weights_allowed = False
        because("2", "Requirements change weekly and a fine-tune is a frozen artefact: use "
                     "prompting and retrieval, which can change as fast.")
        retrieval = retrieval or knowledge or profile.documents

    # Rule 3: facts belong in an index.
    if knowledge:
        retrieval = True
        text = ("The model lacks facts: put them in a retrieval index that can be updated and "
                "cited; fine-tuning does not reliably add facts.")
        if profile.gap == "both":
            text += " The behaviour part is handled separately below."
        if not profile.documents:
            text += " First gather the documents that hold those facts."
        because("3", text)

    # Rule 4: the behaviour gap, sized by clean examples.
    finetune = "none"
    n = profile.examples
    if behaviour:
        if not weights_allowed:
            flags.add("few_shot")
            blocker = "1" if "build_eval_first" in flags else "2"
            because("4", f"No fine-tune while rule {blocker} holds: teach the behaviour with "
                         "few-shot examples in the prompt.")
        elif n < 100:
            flags.update({"few_shot", "grow_data"})
            retrieval = retrieval or profile.documents
            because("4", f"{n} clean examples are fewer than 100: too few to fine-tune. Use them "
                         "as few-shot examples and grow the set (synthetic examples help).")
        elif profile.prompting_enough:
            flags.add("few_shot")
            because("4", f"Measured: few-shot prompting already closes the behaviour gap on held-out cases "
                         f"(the gap check), so prompt with your examples; training the {n:,} examples is "
                         "optional, worth it only if it beats few-shot beyond the intervals.")
        elif n < 1000:
            finetune = "lora"
            flags.add("prompting_baseline")
            because("4", f"{n:,} examples sit in LoRA's sweet spot (100-999). Also measure a "
                         "few-shot prompting baseline on the same held-out set and keep the winner.")
        elif n < 10_000:
            finetune = "lora"
            because("4", f"{n:,} examples: LoRA works well; a full fine-tune with a small learning "
                         "rate is an option only if the hardware holds it.")
        else:
            finetune = "full"
            because("4", f"{n:,} examples: a full fine-tune can pay off, with solid evaluation and "
                         "regression tests, if the hardware holds it; otherwise LoRA.")
    tuning = finetune != "none"

    # The model size, before memory decides the method (rules 7 and 8 shrink it).
    size = profile.model_size_b or DEFAULT_MODEL_SIZE_B
    if tuning and profile.latency_sensitive and size > LATENCY_MODEL_SIZE_B:
        size = LATENCY_MODEL_SIZE_B
        flags.add("smaller_model")
    if tuning and n < 1000 and size > SMALL_DATA_MAX_SIZE_B:
        flags.add("smaller_model")
        because("8", f"{n:,} examples would overfit {article(size)} {size:g}B model: match the model to the "
                     f"data with a model of at most {SMALL_DATA_MAX_SIZE_B:g}B and LoRA dropout.")
        size = SMALL_DATA_MAX_SIZE_B

    # Rule 6 before the memory check: one frozen base rules out a full fine-tune.
    if tuning and profile.tasks > 1 and finetune == "full":
        finetune = "lora"

    # Rule 5: memory decides LoRA versus QLoRA, and the model size when nothing fits.
    shape = shape_for_size(size)
    estimate = _estimate(shape, training)
    vram = profile.vram_gb
    if tuning and vram == 0:
        flags.add("no_gpu")
        finetune = "lora"
        text = ("No GPU: QLoRA needs CUDA and is not possible here. A CPU LoRA run works for "
                f"small models (up to {CPU_MAX_SIZE_B:g}B, slow), so the plan trains {CPU_SHAPE.name}, the "
                "model Tunewise bundles, which LoRA trains on a CPU in minutes")
        if shape.name != CPU_SHAPE.name:
            text += (f"; for a {shape.name}-sized model rent a GPU with at least "
                     f"{needed_vram_gb(estimate.qlora.total_gb):.0f} GB")
            if shape.size_b > CPU_SHAPE.size_b:
                flags.add("smaller_model")
            shape = CPU_SHAPE
            estimate = _estimate(shape, training)
        because("5", text + ".")
    elif tuning:
        if finetune == "full":
            if estimate.full.fits(vram):
                because("5", f"A full fine-tune of {shape.name} needs about "
                             f"{estimate.full.total_gb:.0f} GB and fits in {vram:g} GB.")
            else:
                finetune = "lora"
                because("5", f"A full fine-tune of {shape.name} needs about "
                             f"{estimate.full.total_gb:.0f} GB, more than {vram:g} GB: use LoRA.")
        if finetune == "lora":
            if estimate.lora.fits(vram):
                text = (f"LoRA on a 16-bit {shape.name} needs about {estimate.lora.total_gb:.1f} GB "
                        f"and fits in {vram:g} GB.")
                if n >= 1000 and estimate.full.fits(vram):
                    text += (f" A full fine-tune ({estimate.full.total_gb:.0f} GB) also fits: "
                             "an option with a small learning rate.")
                because("5", text)
            elif estimate.qlora.fits(vram):
                finetune = "qlora"
                because("5", f"LoRA on a 16-bit {shape.name} needs about "
                             f"{estimate.lora.total_gb:.1f} GB, more than {vram:g} GB; QLoRA "
                             f"(4-bit base) needs about {estimate.qlora.total_gb:.1f} GB and fits.")
            else:
                finetune = "qlora"
                smaller = _largest_fitting(shape.size_b, vram, training)
                flags.add("smaller_model")
                if smaller is None:
                    because("5", f"Even QLoRA on the smallest model does not fit in {vram:g} GB: "
                                 "use a bigger GPU.")
                else:
                    because("5", f"Even QLoRA on {shape.name} needs about "
                                 f"{estimate.qlora.total_gb:.1f} GB, more than {vram:g} GB: "
                                 f"{smaller.name} is the largest model that fits.")
                    shape, estimate = smaller, _estimate(smaller, training)

    # Rule 6: several tasks share one frozen base, one adapter each.
    if tuning and profile.tasks > 1:
        flags.add("adapter_per_task")
        because("6", f"{profile.tasks} tasks: train one adapter per task over one frozen base and "
                     "swap adapters per request (so no full fine-tune).")

    # Rule 7: latency; merging would fuse the adapters rule 6 needs apart.
    if tuning and profile.latency_sensitive:
        flags.add("smaller_model")
        if "adapter_per_task" in flags:
            because("7", f"Latency matters: fine-tune a small model ({shape.name}). The adapters "
                         "stay unmerged because rule 6 swaps them per request.")
        else:
            flags.add("merge_for_serving")
            because("7", f"Latency matters: fine-tune a small model ({shape.name}) and merge the "
                         "adapter into the base for serving, at no runtime cost.")

    # Rule 8 also prefers regularised PEFT when examples are few.
    rank = lora_rank_for(shape.size_b)
    dropout = dropout_for(n)
    if tuning:
        flags.add("mix_general_data")
        target_note = "all linear projections of attention and MLP" + (
            "" if finetune == "qlora" else " (q_proj,v_proj is the minimal classic choice)")
        size = f"{article(shape.size_b)} {shape.size_b:.1f}B model"
        because("defaults", f"LoRA r={rank}, alpha={alpha_for(rank)} for {size}, on {target_note}; dropout {dropout}.")
        because("defaults", "Mix about 10% general instruction data into training and compare a "
                            "general held-out set before and after, to catch forgetting.")

    order = {str(i): i for i in range(1, 9)} | {"defaults": 9}
    reasons.sort(key=lambda r: order[r.rule])
    plan = Plan(
        retrieval=retrieval,
        finetune=finetune,
        flags=tuple(f for f in FLAGS if f in flags),
        model=shape.name,
        model_size_b=round(shape.size_b, 2),
        lora=LoraSettings(rank, alpha_for(rank), dropout, ALL_LINEAR),
        learning_rate=learning_rate_for(finetune),
        epochs=epochs_for(n),
        vram_gb=vram,
        memory=estimate,
        reasons=tuple(reasons),
    )
    return _with_next_steps(plan)


def methods_to_compare(finetune: str, flags: Sequence[str]) -> tuple[str, ...]:
    """The training methods worth measuring against each other on the user's own examples before a long run,
    by the seeds' decision tree (what each is for), within what the plan allows. Empty when there is nothing
    to compare (no fine-tune, or QLoRA because nothing else fits).

    - latency matters, so the adapter is merged: only methods that merge (LoRA, DoRA, IA3);
    - a full fine-tune: how far the methods that train far fewer weights get first (LoRA, rsLoRA: the sweep
      compares adapters over one base, so the full fine-tune is evaluated on its own);
    - no GPU (minimal compute) or one adapter per task (small adapters): LoRA against the two smallest,
      IA3 and prompt tuning, which the seeds call enough for very simple tasks;
    - otherwise LoRA against DoRA and IA3.
    """
    if finetune in ("none", "qlora"):
        return ()
    if "merge_for_serving" in flags:
        return ("lora", "dora", "ia3")
    if finetune == "full":
        return ("lora", "rslora")
    if "no_gpu" in flags or "adapter_per_task" in flags:
        return ("lora", "ia3", "prompt_tuning")
    return ("lora", "dora", "ia3")


def _with_next_steps(plan: Plan) -> Plan:
    steps = []
    if "build_eval_first" in plan.flags:
        steps.append("Write 50-100 held-out cases with the answer you expect, and a rule for "
                     "scoring an answer right or wrong.")
    if plan.retrieval:
        steps.append("Collect the documents that hold the facts and index them.")
    if "few_shot" in plan.flags:
        steps.append("Pick 3-8 representative examples for a few-shot prompt.")
    if "grow_data" in plan.flags:
        steps.append("Grow the example set past 100 clean examples (review synthetic ones by hand).")
    if plan.finetune != "none":
        steps.append("Hold out 10-20% of the examples for evaluation, then train "
                     f"{METHOD_LABELS[plan.finetune]} on {plan.model}.")
    if "prompting_baseline" in plan.flags:
        steps.append("Score a few-shot prompting baseline on the same held-out set.")
    candidates = methods_to_compare(plan.finetune, plan.flags)
    if candidates:
        labels = [METHOD_LABELS[m] for m in candidates]
        names = ", ".join(labels[:-1]) + f" and {labels[-1]}"
        steps.append(f"Before a long run, compare {names} on your own examples in short runs "
                     f"(Behaviour: Compare methods, or `tunewise compare-methods --data FILE --methods "
                     f"{','.join(candidates)} --seeds 2 --halving`).")
    if "merge_for_serving" in plan.flags:
        steps.append("Merge the adapter into the base before serving.")
    return replace(plan, next_steps=tuple(steps))
