"""The one training config: what a fine-tuning run does, and the job that runs it.

:class:`TrainingConfig` is the single owner of every training setting, its default, help and
validation. It knows nothing of plans: the assistant maps a plan onto it
(assistant/services/training_settings.py), the Behaviour form and ``tunewise train``'s flags override
it (both are derived from the fields here: :data:`FORM_FIELDS`, :func:`add_flags`), it is validated
once (``__post_init__``), written into the job folder and saved beside the adapter it produced.
:class:`JobSpec` adds what one job needs besides the settings: its files and device.

No torch here: the interview, the form and ``--help`` import this without the ML stack.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from trainers.methods import METHOD_NAMES, PROMPT_INITS
from trainers.methods import method as training_method
from tunewise.errors import InputError

DEFAULT_MODEL = "bundled:SmolLM2-135M-Instruct"
"""The bundled model's name, the one place it is spelled: the runtime (``BUNDLED_MODEL``, which
resolves it to a local folder) and the CLI import it; defined here, the lowest layer that needs it,
and free of torch, so the CLI's start-up can import it."""
METHODS = METHOD_NAMES
"""The methods a config may name: the registry's (trainers/methods.py), in its order."""
MAX_PROCESSES = 64
"""The most training processes any config may ask for, before the machine is looked at.

Jobs run under ``accelerate launch --num_machines 1``: one machine. The largest single machines
carry 8 or 16 GPUs, and on a CPU every gloo rank loads a whole copy of the model, so past a few
dozen ranks the copies alone fill the memory. 64 leaves room for any real machine and refuses, at
once in the form and the flags, a value that could only start thousands of processes. The exact
limit (one per visible GPU, one per core on a CPU) is checked when a job is created
(trainers/jobs.py, ``process_count``), where the machine is known."""


def _option(help: str, form: bool = True, **extra) -> dict:
    """Field metadata: the help text the form and the flags show; ``form``: the form has an input."""
    return {"help": help, "form": form, **extra}


@dataclass(frozen=True)
class TrainingConfig:
    """Every setting of one supervised fine-tuning run through TRL's SFTTrainer: a full fine-tune or a PEFT
    method (trainers/methods.py)."""

    model: str = field(default=DEFAULT_MODEL, metadata=_option(
        "base model: the bundled SmolLM2-135M-Instruct, a hub id or a local folder"))
    method: str = field(default="lora", metadata=_option(
        "how to train: full (every weight), the LoRA family (lora, qlora with a 4-bit base on CUDA, dora, rslora, "
        "adalora), ia3, or virtual tokens (prompt_tuning, prefix_tuning, p_tuning, adaption_prompt); what each "
        "trains and its starting learning rate: docs/training.md", choices=METHODS))
    lora_r: int = field(default=8, metadata=_option("LoRA rank r"))
    lora_alpha: int = field(default=16, metadata=_option(
        "LoRA alpha (left at the proposed value while r changes, it follows r: 2 x r)"))
    lora_dropout: float = field(default=0.05, metadata=_option("LoRA dropout"))
    target_modules: str = field(default="all-linear", metadata=_option(
        "comma-separated projection names (q_proj,v_proj,...), or all-linear"))
    num_virtual_tokens: int = field(default=20, metadata=_option(
        "virtual tokens of prompt tuning, prefix tuning, P-tuning and LLaMA-Adapter (prompt and P-tuning add them "
        "to every sequence)"))
    prompt_init: str = field(default="text", metadata=_option(
        "where prompt tuning's virtual tokens start: text (the task's instruction: --prompt-init-text, else the "
        "examples' system prompt), vocab (random words of the vocabulary) or random", choices=PROMPT_INITS))
    prompt_init_text: str = field(default="", metadata=_option(
        "the text prompt tuning starts from (empty: the examples' system prompt, else their first question)",
        form=False))
    learning_rate: float = field(default=2e-4, metadata=_option(
        "peak learning rate (cosine schedule); each method has its own starting rate (docs/training.md)"))
    epochs: float = field(default=3.0, metadata=_option("passes over the training examples"))
    max_steps: int = field(default=-1, metadata=_option("stop after this many optimiser steps (-1: run the epochs)"))
    batch_size: int = field(default=8, metadata=_option("examples per device step"))
    gradient_accumulation: int = field(default=1, metadata=_option("steps per optimiser update"))
    max_length: int = field(default=1024, metadata=_option("tokens per example; longer ones are cut"))
    packing: bool = field(default=False, metadata=_option("pack several examples into each sequence"))
    group_by_length: bool = field(default=True, metadata=_option(
        "batch examples of similar length together (batches in random order), so little of each batch is "
        "padding", form=False))
    eval_fraction: float = field(default=0.1, metadata=_option(
        "share held out for evaluation when no evaluation file is given", form=False))
    general_fraction: float = field(default=0.1, metadata=_option(
        "share of general instruction data mixed in, when given", form=False))
    seed: int = field(default=0, metadata=_option("seed of the split and the training", form=False))
    modules_to_save: list[str] | None = field(default=None, metadata=_option(
        "modules trained in full beside the adapter (e.g. lm_head)", form=False, flag=False))
    logging_steps: int = field(default=5, metadata=_option("steps between progress lines", form=False))
    eval_steps: int = field(default=50, metadata=_option("steps between evaluations", form=False))
    save_steps: int = field(default=50, metadata=_option("steps between checkpoints", form=False))
    gradient_checkpointing: bool | None = field(default=None, metadata=_option(
        "recompute activations in backward; default: on CUDA only when they would not fit the free memory",
        form=False))
    liger_kernel: bool | None = field(default=None, metadata=_option(
        "Liger's fused kernels; default: on CUDA when liger-kernel is installed", form=False))
    trust_remote_code: bool = field(default=False, metadata=_option(
        "run code shipped with the model (only for models you trust)", form=False, flag=False))
    processes: int = field(default=0, metadata=_option(
        "training processes, data parallel under accelerate launch (0: one per visible GPU, one on a CPU; at most "
        "one per GPU, or per core on a CPU); batch size is per process"))

    def __post_init__(self) -> None:
        problems = self._method_problems()
        if min(self.batch_size, self.gradient_accumulation) < 1:
            problems.append("batch size and gradient accumulation must be at least 1")
        if self.max_length < 16:
            problems.append("max length must be at least 16 tokens")
        if self.learning_rate <= 0:
            problems.append("learning rate must be positive")
        if self.epochs <= 0 and self.max_steps <= 0:
            problems.append("give a positive number of epochs or of max steps")
        if not 0 <= self.eval_fraction < 1 or not 0 <= self.general_fraction < 1:
            problems.append("the eval and general fractions must lie in [0, 1)")
        if not 0 <= self.processes <= MAX_PROCESSES:
            problems.append(f"processes must be between 0 (one per GPU) and {MAX_PROCESSES}, not {self.processes}: "
                            "a job runs on one machine, at most one process per GPU (or per core on a CPU)")
        if problems:
            raise InputError("; ".join(problems))

    def _method_problems(self) -> list[str]:
        """What the method's own settings get wrong: validation per method, in one place."""
        if self.method not in METHODS:
            return [f"method must be one of {', '.join(METHODS)}, not {self.method!r}"]
        entry = training_method(self.method)
        problems = []
        if self.lora_r < 1:  # also AdaLoRA's target rank; checked for every method, as saved configs carry it
            problems.append("LoRA rank must be at least 1")
        if not 0 <= self.lora_dropout < 1:
            problems.append("LoRA dropout must lie in [0, 1)")
        if entry.lora_settings and not str(self.target_modules).strip():
            problems.append(f"name the {entry.label} target modules, or all-linear")
        if entry.virtual_tokens and not 1 <= self.num_virtual_tokens <= self.max_length // 2:
            problems.append(f"{entry.label} needs between 1 and {self.max_length // 2} virtual tokens (half the max "
                            f"length), not {self.num_virtual_tokens}")
        if self.prompt_init not in PROMPT_INITS:
            problems.append(f"prompt init must be one of {', '.join(PROMPT_INITS)}, not {self.prompt_init!r}")
        if self.modules_to_save and (entry.full or entry.prompt_based):
            problems.append(f"modules to save train beside an adapter's matrices; {entry.label} has none")
        return problems

    @property
    def training_method(self):
        """This config's entry in the method registry (trainers/methods.py)."""
        return training_method(self.method)

    @property
    def peft_target_modules(self) -> list[str] | str:
        """The targets as PEFT takes them ("all-linear" stays a string)."""
        names = [part.strip() for part in str(self.target_modules).split(",") if part.strip()]
        return "all-linear" if not names or names == ["all-linear"] else names

    def overridden(self, **values: Any) -> TrainingConfig:
        """This config with every value that is not None put in (the form's or the flags')."""
        return replace(self, **{k: v for k, v in values.items() if v is not None})

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> TrainingConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


FORM_FIELDS = tuple(f.name for f in fields(TrainingConfig) if f.metadata.get("form"))
"""The fields the Behaviour form shows, in this order."""


def add_flags(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per setting, typed from its default; every default is None (not given: the proposed value
    stands)."""
    for f in fields(TrainingConfig):
        if not f.metadata.get("flag", True):
            continue
        flag = "--" + f.name.replace("_", "-")
        kind = type(f.default) if f.default is not None else bool
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=f.metadata["help"])
        else:
            parser.add_argument(flag, type=kind, default=None, choices=f.metadata.get("choices"),
                                metavar=None if f.metadata.get("choices") else f.name.upper(),
                                help=f.metadata["help"])


def overrides_from_flags(args: argparse.Namespace) -> dict:
    """The settings given on the command line, exactly as given (None for those not given)."""
    return {f.name: getattr(args, f.name, None) for f in fields(TrainingConfig) if f.metadata.get("flag", True)}


@dataclass(frozen=True)
class JobSpec:
    """One training job: the settings, the example files and where it runs.

    Written to the job folder's config.json (flat: the settings beside the job's own fields) by
    whoever starts the job; the job process reads it back.
    """

    training: TrainingConfig
    train_file: str
    eval_file: str | None = None
    device: str | None = None
    """"cpu" to force the CPU; None to use CUDA when present."""
    model_path: str | None = None
    """Where to load the model from when its name is not itself loadable (the bundled model's
    converted folder); None loads ``training.model``."""
    dataset_fingerprint: str = ""
    extra: dict = field(default_factory=dict)

    @classmethod
    def of(cls, train_file: str, eval_file: str | None = None, device: str | None = None,
           model_path: str | None = None, dataset_fingerprint: str = "", extra: dict | None = None,
           **settings: Any) -> JobSpec:
        """A job whose settings are ``settings`` over the defaults."""
        return cls(TrainingConfig(**settings), str(train_file), eval_file, device, model_path, dataset_fingerprint,
                   extra or {})

    @property
    def load_from(self) -> str:
        return self.model_path or self.training.model

    def to_dict(self) -> dict:
        own = asdict(self)
        return own.pop("training") | own

    @classmethod
    def from_dict(cls, data: Mapping) -> JobSpec:
        own = {f.name for f in fields(cls)} - {"training"}
        return cls(TrainingConfig.from_dict(data), **{k: v for k, v in data.items() if k in own})

    def save(self, job_dir: Path) -> None:
        from trainers.job_files import CONFIG_FILE, write_json

        write_json(job_dir / CONFIG_FILE, self.to_dict())

    @classmethod
    def load(cls, job_dir: Path) -> JobSpec:
        from trainers.job_files import CONFIG_FILE

        return cls.from_dict(json.loads((job_dir / CONFIG_FILE).read_text()))
