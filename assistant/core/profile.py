"""The task profile: what the interview learns about the user's task (RULES.md slots)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from assistant.core.errors import TunewiseError

GAPS = ("knowledge", "behaviour", "both")
MEASURED_SLOTS = ("prompting_enough",)
"""Slots the gap check sets from measurements; the interview never asks them."""
CHANGE_RATES = ("weekly", "monthly", "rarely")


class ProfileError(TunewiseError, ValueError):
    """A profile slot holds a value the rules cannot use; the message says which and why."""


@dataclass(frozen=True)
class TaskProfile:
    """The slots of RULES.md. Every field has a default so a partial interview can be planned."""

    task: str = ""
    """One-line description of the job."""
    gap: str = "behaviour"
    """What the base model lacks: knowledge, behaviour or both."""
    examples: int = 0
    """Clean labelled examples the user has."""
    documents: bool = False
    """Whether a body of documents holds the missing facts."""
    vram_gb: float = 0.0
    """Memory of the biggest GPU available, in GB; 0 means no GPU."""
    model_size_b: float | None = None
    """Base model size wanted, in billions of parameters; None lets the plan choose."""
    changes: str = "rarely"
    """How often requirements change: weekly, monthly or rarely."""
    can_measure: bool = True
    """Whether the user can tell, on held-out cases, if an answer is right."""
    latency_sensitive: bool = False
    """Whether a small, fast model must do the job of a large one."""
    tasks: int = 1
    """How many distinct tasks should share one base model."""
    prompting_enough: bool = False
    """Measured, not asked: the gap check found that few-shot prompting (the task's system prompt and
    a few of the user's examples) already closes the behaviour gap on held-out cases."""

    def __post_init__(self) -> None:
        problems = validate_slots(asdict(self))
        if problems:
            raise ProfileError("; ".join(problems))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskProfile:
        """Build a profile from JSON-like data, naming every unknown or invalid slot."""
        if not isinstance(data, dict):
            raise ProfileError("a profile is a JSON object of slots")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ProfileError(f"unknown slots {unknown}; the slots are {sorted(known)}")
        coerced = {name: _coerce(name, value) for name, value in data.items()}
        return cls(**coerced)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _coerce(name: str, value: Any) -> Any:
    """Accept JSON's natural spellings (2500.0 for an int, "yes" is not a bool)."""
    if name in ("examples", "tasks") and isinstance(value, float) and value.is_integer():
        return int(value)
    if name in ("vram_gb", "model_size_b") and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def is_whole_number(value: Any, least: int) -> bool:
    """An int (not a bool, which Python counts as one) of at least ``least``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def validate_slots(values: dict[str, Any]) -> list[str]:
    """Problems with slot values, one readable sentence each; empty when all are usable."""
    problems = []

    def is_number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    if "task" in values and not isinstance(values["task"], str):
        problems.append("task must be text")
    if "gap" in values and values["gap"] not in GAPS:
        problems.append(f"gap must be one of {', '.join(GAPS)}, not {values['gap']!r}")
    for name, least in (("examples", 0), ("tasks", 1)):
        if name in values and not is_whole_number(values[name], least):
            problems.append(f"{name} must be a whole number of {least} or more, not {values[name]!r}")
    for name in ("documents", "can_measure", "latency_sensitive", "prompting_enough"):
        if name in values and not isinstance(values[name], bool):
            problems.append(f"{name} must be true or false, not {values[name]!r}")
    if "vram_gb" in values:
        v = values["vram_gb"]
        if not is_number(v) or v < 0 or v > 10_000:
            problems.append(f"vram_gb must be a number of GB from 0 (no GPU) upwards, not {v!r}")
    if values.get("model_size_b") is not None:
        v = values["model_size_b"]
        if not is_number(v) or not 0.01 <= v <= 2000:
            problems.append(f"model_size_b must be billions of parameters (0.01 to 2000), not {v!r}")
    if "changes" in values and values["changes"] not in CHANGE_RATES:
        problems.append(f"changes must be one of {', '.join(CHANGE_RATES)}, not {values['changes']!r}")
    return problems
