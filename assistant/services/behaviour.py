"""A project's behaviour work: its example files, the estimate before training, jobs and adapters.

The glue between the workspace and trainers/, shared by `tunewise train` and the Behaviour tab.
Settings start from the plan, each with the reason it has that value.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from assistant.core.errors import TunewiseError
from assistant.runtime.hardware import Hardware
from assistant.services.workspace import Workspace, atomic_write_json
from trainers.config import JobSpec, TrainingConfig


class DatasetError(TunewiseError):
    """The examples cannot be trained on; ``report`` says why, line by line."""

    def __init__(self, message: str, report: dict | None = None):
        super().__init__(message)
        self.report = report


def model_for_plan(plan: dict | None, hardware: Hardware | None = None,
                   available: list[str] | None = None) -> tuple[str, str]:
    """The base model to train for ``plan`` on this machine, and why.

    The plan names a model size from its catalog (e.g. Qwen2.5-0.5B). A matching model already on
    this machine (in the Hugging Face cache) is taken; otherwise, and always without a GPU, the
    bundled model, saying so. ``available``: local model names (default: the Hugging Face cache).
    """
    from assistant.runtime.model_shapes import catalog_shape_for
    from assistant.runtime.models import BUNDLED_MODEL

    wanted = (plan or {}).get("model")
    if not wanted:
        return BUNDLED_MODEL, "No plan yet: the bundled SmolLM2-135M-Instruct, which runs offline."
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


def settings_from_plan(plan: dict | None, hardware: Hardware | None = None,
                       available: list[str] | None = None) -> tuple[TrainingConfig, dict]:
    """Training settings the plan proposes on this machine, and a one-line reason for each (nothing
    the plan chose is dropped: model, method, LoRA rank/alpha/dropout/targets, learning rate, epochs)."""
    model, model_reason = model_for_plan(plan, hardware, available)
    settings, reasons = TrainingConfig.from_plan(plan, model), {"model": model_reason}
    if not plan:
        reasons["method"] = "No plan yet: LoRA with common defaults."
        return settings, reasons
    if hardware is not None and hardware.device != "cuda" and settings.method == "qlora":
        settings = replace(settings, method="lora")
        reasons["method"] = "The plan said QLoRA, but this machine has no CUDA GPU: LoRA in fp32 on the CPU (slow)."
    else:
        reasons["method"] = next((r["reason"] for r in plan.get("reasons", []) if r["rule"] == "5"),
                                 "The plan's method.")
    defaults = next((r["reason"] for r in plan.get("reasons", []) if r["rule"] == "defaults"), "")
    reasons.update({"lora_r": defaults, "lora_alpha": "alpha = 2 x r.",
                    "lora_dropout": "More dropout when examples are few (rule 8).",
                    "learning_rate": "2e-4 is the usual LoRA starting point.",
                    "target_modules": "The plan's targets: all linear projections of attention and MLP.",
                    "epochs": "Fewer examples need more passes; large sets overfit past one epoch."})
    return settings, reasons


class TrainingDoesNotFitError(TunewiseError, ValueError):
    """The estimate says the training needs more memory than the GPU has; it lists what would fit."""

    def __init__(self, estimate: TrainingEstimate):
        self.estimate = estimate
        super().__init__("this training does not fit in the GPU's memory",
                         ("Try " + "; or ".join(estimate.alternatives) + ".") if estimate.alternatives else
                         "Use QLoRA, a smaller batch or max length, or a smaller model.")


@dataclass
class PreparedDataset:
    dataset_id: str
    path: Path
    report: dict
    train_file: Path
    eval_file: Path
    train_count: int
    eval_count: int
    general_count: int = 0


@dataclass
class TrainingEstimate:
    device: str
    method: str
    examples: int
    tokens: int
    steps: int
    memory_gb: float | None
    vram_gb: float
    fits: bool
    seconds: float
    notes: list[str] = field(default_factory=list)
    alternatives: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _ram_note(needed_gb: float, ram_gb: float, smaller: list[tuple[str, float]]) -> str:
    """The warning for a CPU run whose estimate exceeds the machine's RAM.

    Not a refusal: the estimate is known to run high on CPU, and the kernel can swap, so the run
    may still go through; the note says what would lower the need.
    """
    options = "; ".join(f"{label}: about {gb:.1f} GB" for label, gb in smaller)
    return (f"About {needed_gb:.1f} GB needed, the machine has {ram_gb:.1f} GB of RAM: this may not fit. Lower the "
            "batch size or max length" + (f" ({options})." if options else "."))


def estimate_training(settings: TrainingConfig, train_count: int, total_tokens: int, hardware: Hardware,
                      shape=None) -> TrainingEstimate:
    """Tokens, steps, memory against the GPU (or the RAM, on CPU) and a rough time; alternatives when
    it cannot fit on the GPU, a note when it may not fit in the RAM (never a refusal on CPU)."""
    from assistant.core.memory import TrainingShape, estimate_memory, fits_in

    per_step = settings.batch_size * settings.gradient_accumulation
    steps_per_epoch = max(1, math.ceil(train_count / per_step))
    steps = settings.max_steps if settings.max_steps > 0 else math.ceil(steps_per_epoch * settings.epochs)
    epochs_run = steps / steps_per_epoch
    tokens = int(total_tokens * epochs_run)
    notes, alternatives = [], []
    memory, fits = None, True
    cuda = hardware.device == "cuda"
    if shape is not None:
        def need(method: str, batch: int, length: int) -> float:
            training = TrainingShape(seq_len=length, batch_size=batch, gradient_checkpointing=cuda, on_cpu=not cuda)
            return estimate_memory(shape, training, settings.lora_r).method(method).total_gb

        memory = need(settings.method, settings.batch_size, settings.max_length)
        if cuda:
            fits = fits_in(memory, hardware.vram_gb)
            if not fits:
                options = []
                if settings.method == "lora":
                    options.append(("QLoRA", need("qlora", settings.batch_size, settings.max_length)))
                accumulation = settings.batch_size * settings.gradient_accumulation
                options.append((f"batch size 1 with gradient accumulation {accumulation}",
                                need(settings.method, 1, settings.max_length)))
                if settings.max_length > 512:
                    options.append(("max length 512", need(settings.method, settings.batch_size, 512)))
                alternatives = [
                    f"{label}: about {gb:.1f} GB" + (" (fits)" if fits_in(gb, hardware.vram_gb) else "")
                    for label, gb in options]
        elif hardware.ram_gb and memory > hardware.ram_gb:
            smaller = []
            if settings.batch_size > 1:
                smaller.append(("batch size 1", need(settings.method, 1, settings.max_length)))
            if settings.max_length > 512:
                smaller.append(("max length 512", need(settings.method, settings.batch_size, 512)))
            notes.append(_ram_note(memory, hardware.ram_gb, smaller))
    else:
        notes.append("The model's config could not be read, so memory was not estimated.")
    if not cuda:
        notes.append("No CUDA GPU: LoRA runs in fp32 on the CPU and is slow; use a small model.")
    params = shape.total_params if shape is not None else 0
    seconds = (4 * params * tokens) / (hardware.tflops * 1e12) if params else 0.0
    return TrainingEstimate(hardware.device, settings.method, train_count, tokens, steps, memory,
                            hardware.vram_gb, fits, seconds, notes, alternatives)


class Behaviour:
    """Datasets, jobs and adapters of one project."""

    def __init__(self, workspace: Workspace, project: str):
        from trainers.adapters import AdapterRegistry
        from trainers.jobs import JobBoard, JobStore

        self.workspace = workspace
        self.project = project
        root = workspace.ensure(project).path
        self.datasets_dir = root / "datasets"
        # One training job at a time on the machine, across projects and users.
        self.jobs = JobStore(root / "jobs", JobBoard(workspace.machine_dir / "training-queue"))
        self.adapters = AdapterRegistry(root / "adapters")

    def plan(self) -> dict | None:
        return self.workspace.load(self.project).get("plan")

    def prepare(self, train_name: str, train_text: str, eval_name: str | None = None, eval_text: str | None = None,
                format: str | None = None, mapping: dict | None = None, general_text: str | None = None,
                settings: TrainingConfig | None = None, count_tokens=None) -> PreparedDataset:
        """Parse, validate, split and mix the examples; keep the files and the report."""
        from trainers.formats import ColumnMapping, parse_examples
        from trainers.splits import mix_general, split_examples
        from trainers.validation import approximate_tokens, build_report

        settings = settings or TrainingConfig()
        column_mapping = ColumnMapping(**(mapping or {}))
        train = parse_examples(train_name, train_text, format, column_mapping)
        evaluation = parse_examples(eval_name or "eval", eval_text, format, column_mapping) if eval_text else None
        report = build_report(train, evaluation, count_tokens or approximate_tokens, settings.max_length).to_dict()
        if not train.examples:
            raise DatasetError(f"{train_name}: no valid examples ({len(train.problems)} problems)", report)
        if report["tokens"]["answer_cut_off"] == len(train.examples):
            raise DatasetError(f"{train_name}: every prompt fills the max length of {settings.max_length} tokens, so "
                               "training would see none of the answers; raise the max length or shorten the prompts",
                               report)
        if evaluation is not None and evaluation.examples:
            train_examples, eval_examples = train.examples, evaluation.examples
        else:
            split = split_examples(train.examples, settings.eval_fraction, settings.seed)
            train_examples, eval_examples = split.train, split.eval
        general_count = 0
        if general_text:
            general = parse_examples("general", general_text).examples
            mixed = mix_general(train_examples, general, settings.general_fraction, settings.seed)
            general_count = len(mixed) - len(train_examples)
            train_examples = mixed
        dataset_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        path = self.datasets_dir / dataset_id
        path.mkdir(parents=True)
        (path / f"original-{Path(train_name).name}").write_text(train_text, encoding="utf-8")
        train_file, eval_file = path / "train.jsonl", path / "eval.jsonl"
        for file, examples in ((train_file, train_examples), (eval_file, eval_examples)):
            file.write_text("".join(json.dumps({"messages": list(e.messages)}, ensure_ascii=False) + "\n"
                                    for e in examples), encoding="utf-8")
        atomic_write_json(path / "report.json", report)
        return PreparedDataset(dataset_id, path, report, train_file, eval_file, len(train_examples),
                               len(eval_examples), general_count)

    def load_prepared(self, dataset_id: str) -> PreparedDataset:
        """A dataset prepared earlier (the UI keeps only its id between events)."""
        path = self.datasets_dir / dataset_id
        if "/" in dataset_id or not (path / "report.json").exists():
            raise DatasetError(f"there is no prepared dataset {dataset_id!r}")
        report = json.loads((path / "report.json").read_text())

        def count(file: Path) -> int:
            return sum(1 for line in file.read_text(encoding="utf-8").splitlines() if line.strip())

        train_file, eval_file = path / "train.jsonl", path / "eval.jsonl"
        return PreparedDataset(dataset_id, path, report, train_file, eval_file, count(train_file), count(eval_file))

    def estimate(self, prepared: PreparedDataset, settings: TrainingConfig, hardware: Hardware) -> TrainingEstimate:
        from assistant.runtime.model_shapes import ModelConfigError, shape_for_model

        try:
            shape = shape_for_model(settings.model)
        except ModelConfigError:
            shape = None
        median = prepared.report["tokens"]["median"] or 0
        total = int(median * prepared.train_count)
        return estimate_training(settings, prepared.train_count, total, hardware, shape)

    def preview(self, prepared: PreparedDataset, settings: TrainingConfig, count: int = 2) -> list:
        """The first ``count`` training examples as the job will see them (trainers/preview.py), with
        the tokenizer and chat template of the model the settings train. A model whose tokenizer
        cannot be loaded here gives ModelUnavailableError."""
        from transformers import AutoTokenizer

        from assistant.runtime.models import resolve_model
        from trainers.preview import preview_examples

        tokenizer = AutoTokenizer.from_pretrained(resolve_model(settings.model),
                                                  trust_remote_code=settings.trust_remote_code)
        records = [json.loads(line) for line in prepared.train_file.read_text(encoding="utf-8").splitlines()[:count]]
        return preview_examples(tokenizer, [r["messages"] for r in records], settings.max_length, count)

    def start(self, prepared: PreparedDataset, settings: TrainingConfig, adapter_name: str,
              device: str | None = None, estimate: TrainingEstimate | None = None) -> str:
        """Create the job (queued behind a running one) and start it when the GPU is free.

        Given the ``estimate`` (see :meth:`estimate`), a training that cannot fit in the GPU is
        refused with :class:`TrainingDoesNotFitError` before any job exists.
        """
        from assistant.runtime.models import resolve_model
        from trainers.adapters import AdapterError

        if estimate is not None and not estimate.fits:
            raise TrainingDoesNotFitError(estimate)
        self.adapters.check_name(adapter_name)
        if self.adapters.path(adapter_name).exists():
            raise AdapterError(f"an adapter named {adapter_name!r} already exists")
        config = JobSpec(settings, str(prepared.train_file), str(prepared.eval_file), device,
                         resolve_model(settings.model), prepared.report.get("fingerprint", ""),
                         {"adapter_name": adapter_name, "dataset_id": prepared.dataset_id})
        job_id = self.jobs.create(config)
        self.jobs.start(job_id)
        return job_id

    def refresh(self) -> list[Any]:
        """Register finished jobs' adapters and start the next queued job; returns all jobs."""
        from trainers.adapters import AdapterError

        jobs = self.jobs.jobs()
        for job in jobs:
            if job.status == "completed" and job.adapter_dir is not None:
                name = JobSpec.load(job.path).extra.get("adapter_name") or job.job_id
                if not self.adapters.path(name).exists() and not (job.path / "registered").exists():
                    try:
                        self.adapters.add(job.adapter_dir, name)
                    except AdapterError:
                        self.adapters.add(job.adapter_dir, f"{name}-{job.job_id[-6:]}")
                    (job.path / "registered").write_text(name)
        self.jobs.start_next()
        return self.jobs.jobs()
