"""The plan as Markdown: the decision, the reasons, the memory table, the settings, next steps.

Works on the plan's dict form (``Plan.to_dict()``), which is also what is saved in the
project and returned by the API, so every surface shows the same thing.
"""

from __future__ import annotations

from typing import Any

_METHOD_LABELS = {"full": "Full fine-tune", "lora": "LoRA (16-bit base)", "qlora": "QLoRA (4-bit base)"}


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
        fits = "yes" if plan["fits"][method] else "no"
        marker = " (planned)" if plan["finetune"] == method else ""
        lines.append(
            f"| {label}{marker} | {m['weights_gb']:.1f} GB | {m['gradients_gb']:.1f} GB | "
            f"{m['optimizer_gb']:.1f} GB | {m['activations_gb']:.1f} GB | **{m['total_gb']:.1f} GB** "
            f"| {fits} |")
    lines.append("")
    lines.append("GB = 10^9 bytes; \"fits\" leaves 1 GB for the CUDA context.")
    return "\n".join(lines)


def plan_markdown(plan: dict[str, Any]) -> str:
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
    if plan["next_steps"]:
        lines += ["### Next steps"] + [f"{i}. {step}" for i, step in enumerate(plan["next_steps"], 1)]
    return "\n".join(lines)
