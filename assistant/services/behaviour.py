"""A project's behaviour work: its example files, the estimate before training, jobs and adapters.

The glue between the workspace and trainers/, shared by `tunewise train` and the Behaviour tab.
Settings start from the plan (assistant/services/training_settings.py). Reading never creates or
starts anything: opening a project that does not exist is an error unless the caller means to create
it, listing jobs reads their folders, and a queued job starts only when a caller asks
(:meth:`Behaviour.start`, :meth:`Behaviour.advance`).
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.core.errors import TunewiseError
from assistant.runtime.hardware import Hardware
from assistant.services.workspace import Workspace, WorkspaceError
from trainers.atomic_files import write_json_atomic
from trainers.config import JobSpec, TrainingConfig

if TYPE_CHECKING:
    from trainers.adapters import AdapterRegistry
    from trainers.jobs import JobStore


class DatasetError(TunewiseError):
    """The examples cannot be trained on; ``report`` says why, line by line."""

    def __init__(self, message: str, report: dict | None = None):
        super().__init__(message)
        self.report = report


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
    batch_size: int = 0
    sequence_length: int = 0
    """The padded length of the largest batch the memory is estimated for (trainers/batching.py)."""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class JobMemory:
    """A job's memory as estimated before it started and as measured while it ran (GB, 10^9 bytes).

    ``measured_gb`` is what the estimate covers: torch's peak allocation on a GPU; on a CPU the
    process's peak RSS above its RSS just before the model loaded (trainers/sft.py). None until the
    job has logged a step, and for jobs started before either was recorded.
    """

    estimated_gb: float | None
    measured_gb: float | None
    device: str = ""

    @property
    def ratio(self) -> float | None:
        """Measured over estimated: above 1 the estimate ran low."""
        if not self.estimated_gb or self.measured_gb is None:
            return None
        return self.measured_gb / self.estimated_gb

    def text(self) -> str:
        """"memory: estimated 2.9 GB, measured peak 3.1 GB (+7%)", as the CLI and the tab show it."""
        def gb(value: float | None) -> str:
            return "unknown" if value is None else f"{value:.1f} GB"

        drift = f" ({self.ratio - 1:+.0%})" if self.ratio is not None else ""
        return f"memory: estimated {gb(self.estimated_gb)}, measured peak {gb(self.measured_gb)}{drift}"


def _ram_note(needed_gb: float, ram_gb: float, smaller: list[tuple[str, float]]) -> str:
    """The warning for a CPU run whose estimate exceeds the machine's RAM.

    Not a refusal: the estimate is known to run high on CPU, and the kernel can swap, so the run
    may still go through; the note says what would lower the need.
    """
    options = "; ".join(f"{label}: about {gb:.1f} GB" for label, gb in smaller)
    return (f"About {needed_gb:.1f} GB needed, the machine has {ram_gb:.1f} GB of RAM: this may not fit. Lower the "
            "batch size or max length" + (f" ({options})." if options else "."))


def estimate_training(settings: TrainingConfig, train_count: int, total_tokens: int, hardware: Hardware,
                      shape=None, longest: int | None = None) -> TrainingEstimate:
    """Tokens, steps, memory against the GPU (or the RAM, on CPU) and a rough time; alternatives when
    it cannot fit on the GPU, a note when it may not fit in the RAM (never a refusal on CPU).

    A pure function of the settings and the data, recomputed on every call: nothing is cached, so
    an edited setting (epochs, batch size, max length) changes the estimate the next call returns.

    Args:
        total_tokens: tokens of one epoch's examples (steps and time scale it by the epochs run).
        longest: tokens of the longest example. The memory is estimated for the largest batch the
            job builds, ``batch_size`` rows padded to it (at most ``max_length``, see
            :func:`trainers.batching.largest_batch_length`); None when unknown, which assumes
            every row at ``max_length`` (the worst case).
    """
    from assistant.core.memory import TrainingShape, estimate_for, fits_in
    from trainers.batching import largest_batch_length

    per_step = settings.batch_size * settings.gradient_accumulation
    steps_per_epoch = max(1, math.ceil(train_count / per_step))
    steps = settings.max_steps if settings.max_steps > 0 else math.ceil(steps_per_epoch * settings.epochs)
    epochs_run = steps / steps_per_epoch
    tokens = int(total_tokens * epochs_run)
    length = largest_batch_length(settings.max_length if longest is None else longest, settings.max_length,
                                  settings.packing)
    notes, alternatives = [], []
    memory, fits = None, True
    cuda = hardware.device == "cuda"
    if shape is not None:
        def need(method: str, batch: int, length: int) -> float:
            """The run's own memory (its method, rank, targets, virtual tokens), as ``method``."""
            training = TrainingShape(seq_len=length, batch_size=batch, gradient_checkpointing=cuda, on_cpu=not cuda)
            return estimate_for(shape, training, settings.overridden(method=method)).total_gb

        memory = need(settings.method, settings.batch_size, length)
        shorter = length > 512  # "max length 512" only helps when the largest batch is longer than that
        if cuda:
            fits = fits_in(memory, hardware.vram_gb)
            if not fits:
                options = []
                if settings.method in ("lora", "dora", "rslora"):  # the LoRA family on a 16-bit base
                    options.append(("QLoRA", need("qlora", settings.batch_size, length)))
                accumulation = settings.batch_size * settings.gradient_accumulation
                options.append((f"batch size 1 with gradient accumulation {accumulation}",
                                need(settings.method, 1, length)))
                if shorter:
                    options.append(("max length 512", need(settings.method, settings.batch_size, 512)))
                alternatives = [
                    f"{label}: about {gb:.1f} GB" + (" (fits)" if fits_in(gb, hardware.vram_gb) else "")
                    for label, gb in options]
        elif hardware.ram_gb and memory > hardware.ram_gb:
            smaller = []
            if settings.batch_size > 1:
                smaller.append(("batch size 1", need(settings.method, 1, length)))
            if shorter:
                smaller.append(("max length 512", need(settings.method, settings.batch_size, 512)))
            notes.append(_ram_note(memory, hardware.ram_gb, smaller))
    else:
        notes.append("The model's config could not be read, so memory was not estimated.")
    if not cuda:
        notes.append("No CUDA GPU: LoRA runs in fp32 on the CPU and is slow; use a small model.")
    params = shape.total_params if shape is not None else 0
    seconds = (4 * params * tokens) / (hardware.tflops * 1e12) if params else 0.0
    return TrainingEstimate(hardware.device, settings.method, train_count, tokens, steps, memory,
                            hardware.vram_gb, fits, seconds, notes, alternatives, settings.batch_size, length)


@dataclass
class CheckedExamples:
    """Examples parsed, validated, split and mixed, not yet kept anywhere (a dry run stops here)."""

    report: dict
    train: list
    eval: list
    general_count: int = 0


def check_examples(train_name: str, train_text: str, eval_name: str | None = None, eval_text: str | None = None,
                   format: str | None = None, mapping: dict | None = None, general_text: str | None = None,
                   settings: TrainingConfig | None = None, count_tokens=None) -> CheckedExamples:
    """Parse, validate, split and mix the examples; writes nothing. Raises DatasetError with the
    report when nothing can be trained on."""
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
    return CheckedExamples(report, list(train_examples), list(eval_examples), general_count)


def estimate_for_examples(settings: TrainingConfig, report: dict, train_count: int,
                          hardware: Hardware) -> TrainingEstimate:
    """The estimate for ``train_count`` examples whose token counts ``report`` gives, on the settings' model
    (its shape from the catalog or a local config; memory is left out when neither is readable).

    Steps and time follow the settings; memory follows the largest batch the job will build from
    these examples (the report's longest example, capped by the settings' max length, not the
    report's), so an edited max length or batch size needs no new report."""
    from assistant.runtime.model_shapes import ModelConfigError, shape_for_model

    try:
        shape = shape_for_model(settings.model)
    except ModelConfigError:
        shape = None
    tokens = report["tokens"]
    # An epoch holds the mean length times the count; a report without a total gives the median.
    valid = report.get("valid") or 0
    mean = tokens["total"] / valid if tokens.get("total") and valid else tokens["median"] or 0
    return estimate_training(settings, train_count, int(mean * train_count), hardware, shape,
                             longest=tokens.get("max") or None)


def _hardware_for(device: str | None) -> Hardware:
    """The machine a job started on ``device`` trains on ("cpu" forces the CPU on a GPU machine)."""
    from assistant.runtime.hardware import detect_hardware

    hardware = detect_hardware()
    return Hardware("cpu", ram_gb=hardware.ram_gb) if device == "cpu" and hardware.device != "cpu" else hardware


class Behaviour:
    """Datasets, jobs and adapters of one project."""

    def __init__(self, workspace: Workspace, project: str, create: bool = False):
        """``create``: make the project if it does not exist (a training run); False for everything
        else, which gets "there is no project" instead of a new, empty one."""
        self.workspace = workspace
        self.project = project
        if create:
            self.root = workspace.ensure(project).path
        elif not workspace.exists(project):
            raise WorkspaceError(f"there is no project named {project!r}")
        else:
            self.root = workspace.project(project).path
        self.datasets_dir = self.root / "datasets"
        self._jobs: JobStore | None = None
        self._adapters: AdapterRegistry | None = None
        self._open_lock = threading.Lock()  # the app's threads share one Behaviour per project

    @property
    def jobs(self) -> JobStore:
        """The project's JobStore, opened on first use (reading the job list does not need it)."""
        from trainers.jobs import JobBoard, JobStore

        with self._open_lock:
            if self._jobs is None:
                # One training job at a time on the machine, across projects and users.
                self._jobs = JobStore(self.root / "jobs", JobBoard(self.workspace.machine_dir / "training-queue"))
            return self._jobs

    @property
    def adapters(self) -> AdapterRegistry:
        """The project's AdapterRegistry, opened on first use (it makes the adapters folder)."""
        from trainers.adapters import AdapterRegistry

        with self._open_lock:
            if self._adapters is None:
                self._adapters = AdapterRegistry(self.root / "adapters")
            return self._adapters

    def prepare(self, train_name: str, train_text: str, eval_name: str | None = None, eval_text: str | None = None,
                format: str | None = None, mapping: dict | None = None, general_text: str | None = None,
                settings: TrainingConfig | None = None, count_tokens=None) -> PreparedDataset:
        """Parse, validate, split and mix the examples; keep the files and the report."""
        checked = check_examples(train_name, train_text, eval_name, eval_text, format, mapping, general_text,
                                 settings, count_tokens)
        return self.keep(checked, train_name, train_text)

    def keep(self, checked: CheckedExamples, train_name: str, train_text: str) -> PreparedDataset:
        """Write checked examples as a dataset of the project: the upload, train/eval files, the report."""
        dataset_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        path = self.datasets_dir / dataset_id
        path.mkdir(parents=True)
        (path / f"original-{Path(train_name).name}").write_text(train_text, encoding="utf-8")
        train_file, eval_file = path / "train.jsonl", path / "eval.jsonl"
        for file, examples in ((train_file, checked.train), (eval_file, checked.eval)):
            file.write_text("".join(json.dumps({"messages": list(e.messages)}, ensure_ascii=False) + "\n"
                                    for e in examples), encoding="utf-8")
        write_json_atomic(path / "report.json", checked.report, sort_keys=True)
        return PreparedDataset(dataset_id, path, checked.report, train_file, eval_file, len(checked.train),
                               len(checked.eval), checked.general_count)

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

    def _prepared_newest_first(self) -> Iterator[PreparedDataset]:
        """The project's prepared datasets, the newest first. Reads only.

        Ids begin with the time they were prepared (:meth:`keep`), to the second; the report's
        modification time orders two prepared within one second."""
        if not self.datasets_dir.is_dir():
            return
        complete = [p for p in self.datasets_dir.iterdir()
                    if all((p / name).is_file() for name in ("report.json", "train.jsonl", "eval.jsonl"))]
        for path in sorted(complete, key=lambda p: (p.name[:15], (p / "report.json").stat().st_mtime_ns),
                           reverse=True):
            yield self.load_prepared(path.name)

    def latest_held_out(self) -> PreparedDataset | None:
        """The most recently prepared dataset that set cases aside for evaluation (a non-empty
        eval.jsonl), or None when there is none. Reads only."""
        return next((p for p in self._prepared_newest_first() if p.eval_count), None)

    def latest_prepared(self) -> PreparedDataset | None:
        """The most recently prepared dataset with training examples (what few-shot variants show),
        or None. Reads only."""
        return next((p for p in self._prepared_newest_first() if p.train_count), None)

    def estimate(self, prepared: PreparedDataset, settings: TrainingConfig, hardware: Hardware) -> TrainingEstimate:
        """The estimate for training ``prepared`` with ``settings``, computed afresh on every call."""
        return estimate_for_examples(settings, prepared.report, prepared.train_count, hardware)

    def estimate_dataset(self, dataset_id: str, settings: TrainingConfig, hardware: Hardware) -> TrainingEstimate:
        """The estimate for a dataset prepared earlier, by id, with the settings as they are now: what a
        form calls on every edit of a setting (it reads the dataset's report; no model is loaded)."""
        return self.estimate(self.load_prepared(dataset_id), settings, hardware)

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
              device: str | None = None, estimate: TrainingEstimate | None = None,
              pause_halfway: bool = False) -> str:
        """Create the job (queued behind a running one) and start it when the GPU is free.

        Given the ``estimate`` (see :meth:`estimate`), a training that cannot fit in the GPU is
        refused with :class:`TrainingDoesNotFitError` before any job exists. ``pause_halfway``: the
        job stops at half its steps with a checkpoint and its eval loss, to be resumed or left (successive
        halving).
        """
        from assistant.runtime.models import resolve_model
        from trainers.adapters import AdapterError
        from trainers.job_files import PAUSE_HALFWAY

        if estimate is not None and not estimate.fits:
            raise TrainingDoesNotFitError(estimate)
        self.adapters.check_name(adapter_name)
        if self.adapters.path(adapter_name).exists():
            raise AdapterError(f"an adapter named {adapter_name!r} already exists")
        # Every job keeps the estimate it started with, so job_memory can set it beside the measured peak.
        estimate = estimate or self.estimate(prepared, settings, _hardware_for(device))
        config = JobSpec(settings, str(prepared.train_file), str(prepared.eval_file), device,
                         resolve_model(settings.model), prepared.report.get("fingerprint", ""),
                         {"adapter_name": adapter_name, "dataset_id": prepared.dataset_id,
                          "estimate": estimate.to_dict()} | ({PAUSE_HALFWAY: True} if pause_halfway else {}))
        job_id = self.jobs.create(config)
        self.jobs.start(job_id)
        return job_id

    def list_jobs(self) -> list[Any]:
        """The project's jobs, read from their folders: nothing is created, registered or started."""
        if self._jobs is not None:  # the store is open (it knows the processes it started)
            return self._jobs.jobs()
        from trainers.job_files import STATE_FILE
        from trainers.jobs import read_status

        folder = self.root / "jobs"
        if not folder.is_dir():
            return []
        return [read_status(p) for p in sorted(folder.iterdir()) if (p / STATE_FILE).exists()]

    def job_memory(self, job_id: str) -> JobMemory:
        """The job's estimated memory (saved with it as it started) and its measured peak: the job's
        final state once it has ended, else its latest progress line. Reads files only."""
        from trainers.job_files import PROGRESS_FILE, STATE_FILE, read_state

        path = self.root / "jobs" / job_id
        if "/" in job_id or not (path / STATE_FILE).exists():
            raise WorkspaceError(f"there is no job {job_id!r}")
        state = read_state(path)
        measured = state.get("peak_memory_gb")
        if measured is None and (path / PROGRESS_FILE).exists():
            for line in reversed((path / PROGRESS_FILE).read_text().splitlines()):
                try:
                    measured = json.loads(line).get("peak_memory_gb")
                except json.JSONDecodeError:  # a line the process was writing as it was killed
                    continue
                if measured is not None:
                    break
        estimate = JobSpec.load(path).extra.get("estimate") or {}
        return JobMemory(estimate.get("memory_gb"), measured, state.get("device", ""))

    def list_adapters(self) -> list[Any]:
        """The project's adapters; reads only (no folder is made for a project that has none yet)."""
        if self._adapters is None and not (self.root / "adapters").is_dir():
            return []
        return self.adapters.list()

    def register_finished(self) -> list[str]:
        """Copy the adapters of completed jobs into the project's adapters, once; their names."""
        from trainers.adapters import AdapterError

        registered = []
        for job in self.list_jobs():
            if job.status == "completed" and job.adapter_dir is not None:
                name = JobSpec.load(job.path).extra.get("adapter_name") or job.job_id
                if not self.adapters.path(name).exists() and not (job.path / "registered").exists():
                    try:
                        self.adapters.add(job.adapter_dir, name)
                    except AdapterError:
                        name = f"{name}-{job.job_id[-6:]}"
                        self.adapters.add(job.adapter_dir, name)
                    (job.path / "registered").write_text(name)
                    registered.append(name)
        return registered

    def start_next(self) -> str | None:
        """Start the first queued job on the machine's board if nothing runs; its id."""
        return self.jobs.start_next()

    def advance(self) -> list[Any]:
        """The step a watcher takes on purpose (the tab's timer, the CLI's wait loop): register
        finished jobs' adapters and start the next queued job. Returns all the project's jobs."""
        self.register_finished()
        self.start_next()
        return self.jobs.jobs()


class Behaviours:
    """One Behaviour per project of a workspace, kept so each job store is opened once."""

    def __init__(self, workspace: Workspace):
        self.workspace = workspace
        self._open: dict[str, Behaviour] = {}
        self._lock = threading.Lock()

    def get(self, project: str, create: bool = False) -> Behaviour:
        """The project's Behaviour; ``create`` makes a missing project, a read gets "there is no
        project" instead."""
        with self._lock:
            if project not in self._open:
                self._open[project] = Behaviour(self.workspace, project, create=create)
            return self._open[project]

    def forget(self, project: str) -> None:
        """Drop a project's Behaviour (before it is renamed or deleted)."""
        with self._lock:
            self._open.pop(project, None)
