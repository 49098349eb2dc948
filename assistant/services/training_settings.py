"""From a plan to training settings, each with the reason it has its value.

The one mapping from :class:`~assistant.core.rules.Plan` to :class:`~trainers.config.TrainingConfig`:
the Behaviour form's prefill, ``tunewise train`` (and its ``--dry-run``) and anything else call
:func:`training_settings`, then :func:`with_overrides` for what a person changed, so both faces show
the same values with the same reasons. It reads the plan's typed values (its method, LoRA settings,
learning rate, epochs, flags and the rules' own reasons by rule); trainers/ never sees a plan.

What the trainer cannot do the plan may still propose: a full fine-tune. Tunewise trains LoRA and
QLoRA adapters (``trainers.config.METHODS``), so a full fine-tune plan starts LoRA from LoRA's own
learning rate, and the method's reason says so; the plan card keeps what the rules decided.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from assistant.core.rules import (
    ALPHA_PER_RANK,
    METHOD_LABELS,
    Plan,
    alpha_for,
    alpha_reason,
    dropout_reason,
    epochs_reason,
    learning_rate_for,
    learning_rate_reason,
    rank_reason,
    rate_text,
    targets_reason,
)
from assistant.runtime.hardware import Hardware
from assistant.services.workspace import Workspace, WorkspaceError
from trainers.config import METHODS as TRAINABLE_METHODS
from trainers.config import TrainingConfig

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


def _method(plan: Plan, hardware: Hardware | None) -> tuple[str, str]:
    """The method to train for the plan on this machine, and why."""
    cuda = hardware is None or hardware.device == "cuda"
    memory = " ".join(plan.reasons_for("5"))  # rule 5: memory decides the method
    if plan.finetune in TRAINABLE_METHODS:
        if plan.finetune == "qlora" and not cuda:
            return "lora", "The plan said QLoRA, but this machine has no CUDA GPU: LoRA in fp32 on the CPU (slow)."
        return plan.finetune, memory or f"The plan's method: {METHOD_LABELS[plan.finetune]}."
    on_cpu = "" if cuda else f" {CPU_NOTE}"
    if plan.finetune == "none":
        return "lora", (f"The plan does not fine-tune (it proposes {plan.decision}); to train anyway, LoRA is the "
                        f"usual start.{on_cpu}")
    trainable = " and ".join(METHOD_LABELS[m] for m in TRAINABLE_METHODS)
    text = (f"The plan chose a {METHOD_LABELS[plan.finetune]}, but Tunewise trains {trainable} adapters, so "
            f"training starts from LoRA with LoRA's learning rate (a {METHOD_LABELS[plan.finetune]}'s "
            f"{rate_text(plan.learning_rate)} would barely move an adapter).{on_cpu}")
    return "lora", text + (f" The plan's memory check: {memory}" if memory else "")


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
    # The plan's learning rate belongs to its method: kept when that method is trained, else the
    # trained method's own starting rate (never a full fine-tune's rate on an adapter).
    if plan.finetune in TRAINABLE_METHODS:
        rate, rate_reason = plan.learning_rate, learning_rate_reason(method, plan.learning_rate)
    elif plan.finetune == "none":
        rate = learning_rate_for(method)
        rate_reason = learning_rate_reason(method, rate)
    else:
        rate = learning_rate_for(method)
        rate_reason = (f"{rate_text(rate)}: the usual starting point for {METHOD_LABELS[method]}, not the plan's "
                       f"{rate_text(plan.learning_rate)}, which is for a {METHOD_LABELS[plan.finetune]} and would "
                       "barely move an adapter.")
    lora = plan.lora
    config = TrainingConfig(model=model, method=method, lora_r=lora.r, lora_alpha=lora.alpha,
                            lora_dropout=lora.dropout, target_modules=",".join(lora.target_modules),
                            learning_rate=rate, epochs=float(plan.epochs))
    return SettingsChoice(config, {
        "model": model_reason,
        "method": method_reason,
        "lora_r": rank_reason(lora.r, plan.model_size_b),
        "lora_alpha": alpha_reason(lora.r, lora.alpha),
        "lora_dropout": dropout_reason(lora.dropout),
        "target_modules": targets_reason(lora.target_modules, method),
        "learning_rate": rate_reason,
        "epochs": epochs_reason(plan.epochs),
    })


def with_overrides(planned: SettingsChoice, values: Mapping[str, Any]) -> SettingsChoice:
    """The planned settings with the values a person set, and reasons that match.

    ``values``: setting name -> value, from the form's inputs or the flags; None, or the planned
    value itself, leaves the planned setting and its reason. One rule ties two settings, here for
    both faces: when r changes and alpha stays at the planned value, alpha follows r (2 x r), since
    alpha / r scales the adapter's update and the plan's alpha was chosen for the plan's r.
    Raises ValueError (from TrainingConfig) for a value that is not allowed.
    """
    proposed = planned.config
    changed = {k: v for k, v in values.items() if v is not None and v != getattr(proposed, k)}
    alpha_follows = "lora_r" in changed and "lora_alpha" not in changed
    if alpha_follows:
        changed["lora_alpha"] = alpha_for(changed["lora_r"])
    config = proposed.overridden(**changed)
    reasons = dict(planned.reasons)
    for name in changed:
        reasons[name] = f"Set by you: {getattr(config, name)} (proposed: {getattr(proposed, name)})."
    if alpha_follows:
        reasons["lora_alpha"] = (f"alpha = {ALPHA_PER_RANK} x r = {config.lora_alpha}: follows the r you set "
                                 f"(change alpha too to choose another; proposed: {proposed.lora_alpha}).")
    return SettingsChoice(config, reasons)
