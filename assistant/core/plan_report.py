"""The plan as Markdown: the decision, the reasons, the memory table, the settings, next steps.

Works on the plan's dict form (``Plan.to_dict()``), which is also what is saved in the
project and returned by the API, so every surface shows the same thing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from assistant.core.outcomes import Evidence, strongest_and_latest

_METHOD_LABELS = {"full": "Full fine-tune", "lora": "LoRA (16-bit base)", "qlora": "QLoRA (4-bit base)"}


_NO_GPU_FITS = {"full": "no GPU", "lora": "CPU run", "qlora": "no: needs CUDA"}
"""The "fits" column without a GPU: nothing is checked against GPU memory; LoRA runs on the CPU."""


def memory_table_markdown(plan: dict[str, Any]) -> str:
    memory, vram = plan["memory"], plan["vram_gb"]
    training = memory["training"]
    gpu = f"against your {vram:g} GB GPU" if vram else "with no GPU"
    lines = [
        f"Training memory for **{memory['model']}** ({memory['total_params'] / 1e9:.2f}B parameters), "
        f"sequence length {training['seq_len']}, batch {training['batch_size']}, "
        f"{'with' if training['gradient_checkpointing'] else 'without'} gradient checkpointing, "
        f"{gpu}:",
        "",
        "| method | weights | gradients | optimiser | activations | total | fits |",
        "|---|---:|---:|---:|---:|---:|:---:|",
    ]
    for method, label in _METHOD_LABELS.items():
        m = memory[method]
        fits = ("yes" if plan["fits"][method] else "no") if vram else _NO_GPU_FITS[method]
        marker = " (planned)" if plan["finetune"] == method else ""
        lines.append(
            f"| {label}{marker} | {m['weights_gb']:.1f} GB | {m['gradients_gb']:.1f} GB | "
            f"{m['optimizer_gb']:.1f} GB | {m['activations_gb']:.1f} GB | **{m['total_gb']:.1f} GB** "
            f"| {fits} |")
    lines.append("")
    if vram:
        lines.append("GB = 10^9 bytes; \"fits\" leaves 1 GB for the CUDA context.")
    else:
        lines.append("GB = 10^9 bytes, for a GPU. Without one, LoRA trains in fp32 in the machine's RAM, "
                     "which takes more than these 16-bit figures; the Behaviour tab estimates the run on this "
                     "machine.")
    return "\n".join(lines)


def plan_markdown(plan: dict[str, Any], trained: tuple[str, str] | None = None) -> str:
    """The plan card. ``trained``: the model training on this machine takes for this plan and why
    (services.training_settings.model_for_plan), shown under the settings when given."""
    lines = [f"## Plan: {plan['decision']}", ""]
    if plan["flags"]:
        lines += ["Flags: " + ", ".join(f"`{flag}`" for flag in plan["flags"]), ""]
    lines += ["### Why"]
    for reason in plan["reasons"]:
        source = f"Rule {reason['rule']}" if reason["rule"] != "defaults" else "Defaults"
        lines.append(f"- **{source}.** {reason['reason']}")
    lines += ["", "### Memory", memory_table_markdown(plan), ""]
    if plan["finetune"] != "none":
        lora = plan["lora"]
        lines += [
            "### Proposed settings",
            f"- Base model: {plan['model']} ({plan['model_size_b']:g}B) or any model of that size",
            f"- Method: {plan['finetune']}",
            f"- LoRA: r={lora['r']}, alpha={lora['alpha']}, dropout={lora['dropout']}, "
            f"targets {', '.join(lora['target_modules'])}",
            f"- Learning rate {plan['learning_rate']:g}, {plan['epochs']} epoch(s)",
            "",
        ]
    if trained is not None:
        lines += [trained_model_markdown(*trained, plan["model"]), ""]
    if plan["next_steps"]:
        lines += ["### Next steps"] + [f"{i}. {step}" for i, step in enumerate(plan["next_steps"], 1)]
    return "\n".join(lines)


def trained_model_markdown(model: str, reason: str, plan_model: str) -> str:
    """Which model training on this machine takes for the plan, and why: the same model and reason
    the Behaviour tab's form shows (both come from the one mapping, training_settings), so the card
    never names a model the app will not train without saying so."""
    same = plan_model.lower() in model.lower()
    head = f"**Trained here:** `{model}`" + ("" if same else f" (not the plan's {plan_model})")
    return f"### Model\n{head}. {reason} The Behaviour tab's form starts from it."


def _evidence_label(evidence: Evidence) -> str:
    when = f", {evidence.when}" if evidence.when else ""
    return f"n={evidence.n}{when}" + (f", evaluation `{evidence.eval_id}`" if evidence.eval_id else "")


def evidence_markdown(latest: dict | None, history: Sequence[dict] = ()) -> str:
    """Whether the plan held, on the strongest evidence the project has (a decisive verdict over an
    inconclusive one, then the most cases), with its n and date; the newest run beside it when it is
    another one. ``latest``, ``history``: the project's "outcome" and "outcome_history"."""
    best, newer = strongest_and_latest(latest, history)
    if best is None:
        return ""
    lines = [f"**Did the plan hold?** Strongest evidence ({_evidence_label(best)}): " + " ".join(best.lines)]
    if newer is not None:
        lines.append(f"**Latest run** ({_evidence_label(newer)}): " + " ".join(newer.lines))
    return "\n\n".join(lines)
