"""From a plan to training settings, each with the reason it has its value.

The one mapping from :class:`~assistant.core.rules.Plan` to :class:`~trainers.config.TrainingConfig`:
the Behaviour form's prefill, ``tunewise train`` (and its ``--dry-run``) and anything else call
:func:`training_settings`, then :func:`with_overrides` for what a person changed, so both faces show
the same values with the same reasons. It reads the plan's typed values (its method, LoRA settings,
learning rate, epochs, flags and the rules' own reasons by rule); trainers/ never sees a plan.

Each method's starting learning rate and its reason come from its entry in the method registry
(trainers/methods.py), for the form, the CLI and the API alike; the plan's own rate is kept when it is
the plan's method that is trained. A person who changes the method without setting a rate gets the new
method's rate (rates differ by up to 500x between methods), as alpha follows a new r.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from assistant.core.rules import (
    ALPHA_PER_RANK,
    Plan,
    alpha_for,
    alpha_reason,
    dropout_reason,
    epochs_reason,
    rank_reason,
    rate_text,
    targets_reason,
)
from assistant.runtime.hardware import Hardware
from assistant.services.workspace import Workspace, WorkspaceError
from trainers.config import METHODS as TRAINABLE_METHODS
from trainers.config import TrainingConfig
from trainers.methods import TrainingMethod
from trainers.methods import method as method_named

LORA_SETTINGS = ("lora_r", "lora_alpha", "lora_dropout", "target_modules")
NOT_USED = " Not used by "

CPU_NOTE = "This machine has no CUDA GPU: LoRA runs in fp32 on the CPU (slow)."


@dataclass(frozen=True)
class SettingsChoice:
    """Training settings, and one sentence for each setting chosen for a reason, true of its value."""

    config: TrainingConfig
    reasons: dict[str, str] = field(default_factory=dict)
    """Setting name (a TrainingConfig field) -> why it has its value."""

    def to_dict(self) -> dict:
        return {"config": self.config.to_dict(), "reasons": dict(self.reasons)}


def project_plan(workspace: Workspace, project: str) -> Plan | None:
    """The plan saved in ``project`` (None before the interview has made one).

    Reading never creates: a project that does not exist is a WorkspaceError naming it.
    """
    saved = workspace.load(project).get("plan")
    if not saved:
        return None
    try:
        return Plan.from_dict(saved)
    except ValueError as error:
        raise WorkspaceError(f"project {project!r} has a saved plan that cannot be read ({error})",
                             "answer the interview again, or edit the profile, to make a new plan") from error


def model_for_plan(plan: Plan | None, hardware: Hardware | None = None,
                   available: list[str] | None = None) -> tuple[str, str]:
    """The base model to train for ``plan`` on this machine, and why.

    The plan names a model size from its catalog (e.g. Qwen2.5-0.5B). A matching model already on
    this machine (in the Hugging Face cache) is taken; otherwise, and always without a GPU, the
    bundled model, saying so. ``available``: local model names (default: the Hugging Face cache).
    """
    from assistant.runtime.model_shapes import catalog_shape_for
    from assistant.runtime.models import BUNDLED_MODEL

    if plan is None:
        return BUNDLED_MODEL, "No plan yet: the bundled SmolLM2-135M-Instruct, which runs offline."
    wanted = plan.model
    bundled = catalog_shape_for(BUNDLED_MODEL)
    if bundled is not None and bundled.name == wanted:
        return BUNDLED_MODEL, (f"The plan's {wanted}: the bundled SmolLM2-135M-Instruct, which runs offline and "
                               "trains on the CPU in minutes.")
    if hardware is not None and hardware.device != "cuda":
        return BUNDLED_MODEL, (f"No CUDA GPU on this machine: the bundled SmolLM2-135M-Instruct, which trains on "
                               f"the CPU in minutes (the plan's {wanted} model wants a GPU, or hours of CPU time).")
    if available is None:
        from assistant.runtime.models import local_model_choices

        available = [c.name for c in local_model_choices() if c.name != BUNDLED_MODEL]
    for name in available:
        shape = catalog_shape_for(name)
        if shape is not None and shape.name == wanted:
            return name, f"The plan settled on a {wanted} model; {name} is on this machine."
    return BUNDLED_MODEL, (f"The plan settled on a {wanted} model, which is not on this machine: the bundled "
                           f"SmolLM2-135M-Instruct is used instead. Download a {wanted} instruct model and pick "
                           "it (or pass --model ID_OR_PATH) to follow the plan.")


def label_of(name: str) -> str:
    """A plan's method as people read it ("none" and names outside the registry as they are)."""
    return method_named(name).label if name in TRAINABLE_METHODS else name


def _method(plan: Plan, hardware: Hardware | None) -> tuple[str, str]:
    """The method to train for the plan on this machine, and why."""
    cuda = hardware is None or hardware.device == "cuda"
    memory = " ".join(plan.reasons_for("5"))  # rule 5: memory decides the method
    if plan.finetune in TRAINABLE_METHODS:
        entry = method_named(plan.finetune)
        if entry.quantized_base and not cuda:
            return "lora", (f"The plan said {entry.label}, but this machine has no CUDA GPU: LoRA in fp32 on the CPU "
                            "(slow).")
        return plan.finetune, memory or f"The plan's method: {entry.label}."
    on_cpu = "" if cuda else f" {CPU_NOTE}"
    if plan.finetune == "none":
        return "lora", (f"The plan does not fine-tune (it proposes {plan.decision}); to train anyway, LoRA is the "
                        f"usual start.{on_cpu}")
    text = f"The plan chose {plan.finetune!r}, which Tunewise does not train: LoRA, the usual start.{on_cpu}"
    return "lora", text + (f" The plan's memory check: {memory}" if memory else "")


def learning_rate_reason(entry: TrainingMethod, rate: float) -> str:
    """Why ``rate`` for ``entry``: the method's own reason at its default rate, else that it is the plan's."""
    if rate == entry.learning_rate:
        return f"{rate_text(rate)}: {entry.learning_rate_reason}."
    return f"{rate_text(rate)}: the plan's learning rate for {entry.label}."


def method_reasons(entry: TrainingMethod, config: TrainingConfig, reasons: dict[str, str]) -> dict[str, str]:
    """``reasons`` made true for ``entry``: LoRA's settings marked unused by a method without them, a reason for
    the virtual tokens of a method that has them."""
    reasons = dict(reasons)
    for name in LORA_SETTINGS:
        if name in reasons:
            reasons[name] = reasons[name].split(NOT_USED)[0]
            if not entry.lora_settings:
                reasons[name] += f"{NOT_USED}{entry.label}."
    if entry.virtual_tokens and "num_virtual_tokens" not in reasons:
        reasons["num_virtual_tokens"] = (
            f"{config.num_virtual_tokens} virtual tokens: few enough for a CPU run; PEFT's comparison used 20 for "
            f"P-tuning and 100-200 for the others on a 3B model (more tokens learn more and lengthen every input).")
    return reasons


def training_settings(plan: Plan | None, hardware: Hardware | None = None,
                      available: list[str] | None = None) -> SettingsChoice:
    """The settings ``plan`` proposes on this machine, each with its reason.

    Nothing the plan chose is dropped: model (the plan's size, if on this machine), method, LoRA
    rank/alpha/dropout/targets, learning rate and epochs. ``hardware``: the machine (None: not
    known, so nothing is changed for it); ``available``: local model names (see :func:`model_for_plan`).
    """
    model, model_reason = model_for_plan(plan, hardware, available)
    if plan is None:
        return SettingsChoice(TrainingConfig(model=model), {
            "model": model_reason, "method": "No plan yet: LoRA with common defaults."})
    method, method_reason = _method(plan, hardware)
    entry = method_named(method)
    # The plan's learning rate belongs to its method: kept when that method is trained, else the trained
    # method's own starting rate from the registry (never a full fine-tune's rate on an adapter).
    if plan.finetune == method:
        rate = plan.learning_rate
        rate_reason = learning_rate_reason(entry, rate)
    else:
        rate = entry.learning_rate
        rate_reason = learning_rate_reason(entry, rate)
        if plan.finetune in TRAINABLE_METHODS and plan.learning_rate != rate:
            rate_reason += (f" Not the plan's {rate_text(plan.learning_rate)}, which is for "
                            f"{label_of(plan.finetune)}.")
    lora = plan.lora
    config = TrainingConfig(model=model, method=method, lora_r=lora.r, lora_alpha=lora.alpha,
                            lora_dropout=lora.dropout, target_modules=",".join(lora.target_modules),
                            learning_rate=rate, epochs=float(plan.epochs))
    return SettingsChoice(config, method_reasons(entry, config, {
        "model": model_reason,
        "method": method_reason,
        "lora_r": rank_reason(lora.r, plan.model_size_b),
        "lora_alpha": alpha_reason(lora.r, lora.alpha),
        "lora_dropout": dropout_reason(lora.dropout),
        "target_modules": targets_reason(lora.target_modules, method),
        "learning_rate": rate_reason,
        "epochs": epochs_reason(plan.epochs),
    }))


def with_overrides(planned: SettingsChoice, values: Mapping[str, Any]) -> SettingsChoice:
    """The planned settings with the values a person set, and reasons that match.

    ``values``: setting name -> value, from the form's inputs or the flags; None, or the planned
    value itself, leaves the planned setting and its reason. Two rules tie settings, here for both
    faces: when r changes and alpha stays at the planned value, alpha follows r (2 x r), since
    alpha / r scales the adapter's update and the plan's alpha was chosen for the plan's r; when the
    method changes and the learning rate stays at the planned value, the rate follows the method (its
    registry entry's starting rate), since a rate is chosen for one method.
    Raises ValueError (from TrainingConfig) for a value that is not allowed.
    """
    proposed = planned.config
    changed = {k: v for k, v in values.items() if v is not None and v != getattr(proposed, k)}
    alpha_follows = "lora_r" in changed and "lora_alpha" not in changed
    if alpha_follows:
        changed["lora_alpha"] = alpha_for(changed["lora_r"])
    rate_follows = "method" in changed and "learning_rate" not in changed and changed["method"] in TRAINABLE_METHODS
    if rate_follows and method_named(changed["method"]).learning_rate != proposed.learning_rate:
        changed["learning_rate"] = method_named(changed["method"]).learning_rate
    config = proposed.overridden(**changed)
    reasons = dict(planned.reasons)
    for name in changed:
        reasons[name] = f"Set by you: {getattr(config, name)} (proposed: {getattr(proposed, name)})."
    if alpha_follows:
        reasons["lora_alpha"] = (f"alpha = {ALPHA_PER_RANK} x r = {config.lora_alpha}: follows the r you set "
                                 f"(change alpha too to choose another; proposed: {proposed.lora_alpha}).")
    entry = config.training_method
    if rate_follows:  # the new method's own rate, and its reason, whether or not the number changed
        reasons["learning_rate"] = learning_rate_reason(entry, config.learning_rate)
        if config.learning_rate != proposed.learning_rate:
            reasons["learning_rate"] = (f"{reasons['learning_rate'][:-1]}; follows the method you set (change the "
                                        f"learning rate too to choose another; proposed: "
                                        f"{rate_text(proposed.learning_rate)}).")
    if "method" in changed:
        reasons = method_reasons(entry, config, reasons)
    return SettingsChoice(config, reasons)
