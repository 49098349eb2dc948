"""Compare training methods on a project's own data: a bounded sweep, each run an ordinary job.

    tunewise compare-methods --data examples.jsonl --methods lora,ia3 --seeds 2 --max-steps 30 --device cpu

For every (method, seed, learning rate) the sweep plans one run (the rate defaults to the method's own, from
trainers/methods.py), estimates them all before anything starts (Behaviour's estimate per run), queues one job per
run through the machine-wide queue (so each can be cancelled and resumed like any job), waits, registers each
adapter as ``<prefix>-<method>-s<seed>[-lr<rate>]``, then answers the held-out split with the base and every
adapter on one loaded model (run_evaluation) and reports one row per run.

With ``halving`` (successive halving, one rung) every run first trains to half its steps and stops there with a
checkpoint and its eval loss on the held-out split; the better half by that loss resume to the end on the same
learning-rate schedule, and the rest stop for good (row status ``halved``). On a CPU that saves about a quarter
of the sweep's training time. The loss is measured on the same held-out split the final evaluation answers,
so the pick leans slightly towards the survivors; it ranks runs by loss, the evaluation by answers.

What is pure here (:func:`task_metric_for`, :func:`choose`, :func:`seed_spread`) takes plain rows and is
tested without models; the rest is the thin I/O around it.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from assistant.core.outcomes import METRIC_NAMES, share_with_interval, wilson_interval
from assistant.runtime.hardware import Hardware
from trainers.atomic_files import write_json_atomic
from trainers.config import TrainingConfig
from trainers.methods import method as training_method
from tunewise.errors import InputError

if TYPE_CHECKING:
    from assistant.services.behaviour import Behaviour, PreparedDataset, TrainingEstimate
    from assistant.services.evaluation import EvalCase

Progress = Callable[[str], None]

STRUCTURED_METRICS = ("field_accuracy", "json_valid")
"""The task metric for JSON references, then its tie-break: fields right matters more than parsing."""
FREE_TEXT_METRICS = ("contains_reference", "exact_match")
"""The task metric for free-text references, then its tie-break."""
ADAPTER_WEIGHT_SUFFIXES = (".safetensors", ".bin")


@dataclass(frozen=True)
class SweepConfig:
    """What to compare: methods x seeds x learning rates, and how to evaluate them."""

    methods: tuple[str, ...]
    """Method names from trainers/methods.py (lora, dora, ia3, prompt_tuning, ...)."""
    seeds: int = 1
    """Runs per method and rate, seeded 0 .. seeds-1 (the split stays the same; training's seed changes)."""
    learning_rates: tuple[float, ...] = ()
    """Rates every method runs at; empty: each method at its own default rate."""
    prefix: str = ""
    """Adapter names start with it; empty: ``compare-<date>-<time>``."""
    device: str | None = None
    """"cpu" forces the CPU for training and evaluation; None uses CUDA when present."""
    max_new_tokens: int | None = None
    """Answer cap in the evaluation (default: from the references' lengths)."""
    general: bool = False
    """Also run the forgetting probe on the base and each adapter (general loss and accuracy; minutes per model)."""
    halving: bool = False
    """Successive halving: stop the half of the runs that trail on eval loss at their halfway step."""

    def __post_init__(self) -> None:
        if not self.methods:
            raise InputError("name at least one method to compare", "e.g. --methods lora,ia3")
        for name in self.methods:
            training_method(name)  # an unknown name is an InputError that lists the methods
        if "full" in self.methods:
            raise InputError("compare-methods compares adapters over one base; a full fine-tune is a whole model",
                             "train it with `tunewise train --method full` and evaluate its folder with "
                             "`tunewise eval --model FOLDER`")
        if len(set(self.methods)) != len(self.methods):
            raise InputError(f"a method is named twice in {','.join(self.methods)}")
        if self.seeds < 1:
            raise InputError(f"seeds must be at least 1, not {self.seeds}")
        if any(rate <= 0 for rate in self.learning_rates):
            raise InputError("learning rates must be positive", "e.g. --learning-rates 1e-4,1e-3")

    def run_prefix(self) -> str:
        return self.prefix or time.strftime("compare-%Y%m%d-%H%M%S")


@dataclass(frozen=True)
class PlannedRun:
    """One run of the sweep, before it starts."""

    method: str
    seed: int
    learning_rate: float
    adapter: str
    settings: TrainingConfig
    estimate: TrainingEstimate


@dataclass(frozen=True)
class SweepPlan:
    """Every run, checked and estimated; nothing queued yet."""

    runs: tuple[PlannedRun, ...]
    prepared: PreparedDataset
    device: str
    cases: int
    """Held-out cases each adapter and the base will answer."""
    halving: bool = False

    @property
    def seconds(self) -> float:
        """Training time if every run trains to its end (successive halving saves :attr:`halving_saves`)."""
        return sum(run.estimate.seconds for run in self.runs)

    @property
    def halving_saves(self) -> float:
        """Seconds successive halving saves: the second half of the runs it stops (their mean, as which stop is
        known only at the halfway evaluation)."""
        if not self.halving or len(self.runs) < 2:
            return 0.0
        stopped = len(self.runs) - survivors_count(len(self.runs))
        return stopped * (self.seconds / len(self.runs)) / 2

    @property
    def steps(self) -> int:
        return sum(run.estimate.steps for run in self.runs)

    def text(self) -> str:
        """The estimate a person reads before the sweep starts."""
        memory = [r.estimate.memory_gb for r in self.runs if r.estimate.memory_gb is not None]
        peak = f", the largest needs about {max(memory):.1f} GB" if memory else ""
        models = len(self.runs) + 1
        halved = ""
        if self.halving_saves:
            stopped = len(self.runs) - survivors_count(len(self.runs))
            models -= stopped
            halved = (f"; successive halving stops {stopped} of them at their halfway evaluation, saving about "
                      f"{_duration(self.halving_saves)}: about {_duration(self.seconds - self.halving_saves)} in all")
        return (f"{len(self.runs)} runs on {self.device}, {self.steps} steps in all, about {_duration(self.seconds)} "
                f"of training (one job at a time, in the machine's queue){peak}{halved}; then {models} models "
                f"answer {self.cases} held-out cases each")


@dataclass
class RunResult:
    """One run of the sweep, measured."""

    method: str
    seed: int
    learning_rate: float
    adapter: str
    """The registered adapter's name (a variant in Compare, eval, chat and /v1)."""
    job_id: str
    status: str
    """The job's final state: completed, failed or cancelled; only completed runs are evaluated."""
    metrics: dict = field(default_factory=dict)
    """As ``tunewise eval --json`` gives them (examples, exact_match, ..., latency_p50_s)."""
    task_metric: str = ""
    task_score: float | None = None
    interval: tuple[float, float] | None = None
    """The task score's 95% Wilson interval over the held-out cases."""
    peak_memory_gb: float | None = None
    """Measured by the job: torch's peak allocation on a GPU, the process's peak RSS above its start on a CPU."""
    train_seconds: float | None = None
    trainable_params: int | None = None
    """What the method trains, counted by the method registry on the model's shape (the count the memory
    estimate uses, checked against PEFT's own in tests/trainers/test_methods.py)."""
    adapter_bytes: int | None = None
    """Size of the adapter's weight files on disk (the tokenizer beside them is the base's and left out)."""
    latency_ratio: float | None = None
    """Median answer latency against the base's in the same evaluation (1.0: no added latency)."""
    reason: str = ""
    """Why a run that did not complete stopped."""
    halfway_eval_loss: float | None = None
    """With successive halving: the eval loss at the halfway step, which decided whether the run went on."""

    @property
    def completed(self) -> bool:
        return self.status == "completed" and self.task_score is not None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SeedSpread:
    """The task metric over the seeds of one method at one rate."""

    method: str
    learning_rate: float
    seeds: int
    mean: float
    stdev: float
    """Sample standard deviation; 0 with one seed."""
    low: float
    high: float

    def text(self) -> str:
        return f"{self.mean:.2f} ± {self.stdev:.2f} (n={self.seeds})" if self.seeds > 1 else "one seed"


@dataclass
class SweepResult:
    rows: list[RunResult]
    task_metric: str
    base_metrics: dict
    best: RunResult | None
    cheapest_within_best: RunResult | None
    spread: list[SeedSpread]
    eval_folder: Path | None = None

    def to_dict(self) -> dict:
        def named(row: RunResult | None) -> dict | None:
            if row is None:
                return None
            return {"adapter": row.adapter, "method": row.method, "seed": row.seed,
                    "learning_rate": row.learning_rate, "task_score": row.task_score, "interval": row.interval,
                    "trainable_params": row.trainable_params, "train_seconds": row.train_seconds}

        return {"rows": [row.to_dict() for row in self.rows], "best": named(self.best),
                "cheapest_within_best": named(self.cheapest_within_best), "task_metric": self.task_metric,
                "base": {"metrics": self.base_metrics}, "spread": [asdict(s) for s in self.spread],
                "eval_folder": str(self.eval_folder) if self.eval_folder else None}

    def table(self) -> str:
        """One Markdown table, then the best and the cheapest-within-best lines."""
        label = METRIC_NAMES.get(self.task_metric, self.task_metric)
        spreads = {(s.method, s.learning_rate): s for s in self.spread}
        probed = any(r.metrics.get("general_accuracy") is not None for r in self.rows)
        halved = any(r.halfway_eval_loss is not None for r in self.rows)
        head = ["method", "seed", "lr", f"{label} [95% CI]", "spread over seeds", "peak memory", "train s",
                "trainable params", "adapter size", "latency vs base"] + (["general acc."] if probed else []) + (
                ["halfway eval loss"] if halved else [])
        lines = ["| " + " | ".join(head) + " |", "|---|---:|---:|" + "---:|" * (len(head) - 3)]
        n = int(self.base_metrics.get("examples", 0))
        base_score = self.base_metrics.get(self.task_metric)
        if base_score is not None:
            lines.append("| base | | | " + share_with_interval(base_score, n) + " | | | | 0 | 0 | 1.00 |"
                         + (f" {_share(self.base_metrics.get('general_accuracy'))} |" if probed else "")
                         + (" |" if halved else ""))
        for row in self.rows:
            spread = spreads.get((row.method, row.learning_rate))
            score = (share_with_interval(row.task_score, int(row.metrics.get("examples", n)))
                     if row.task_score is not None else row.status)
            cells = [row.method, str(row.seed), f"{row.learning_rate:g}", score, spread.text() if spread else "",
                     _number(row.peak_memory_gb, "{:.2f} GB"), _number(row.train_seconds, "{:.1f}"),
                     _number(row.trainable_params, "{:,}"), _size(row.adapter_bytes),
                     _number(row.latency_ratio, "{:.2f}")]
            if probed:
                cells.append(_share(row.metrics.get("general_accuracy")))
            if halved:
                cells.append(_number(row.halfway_eval_loss, "{:.3f}"))
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines + ["", *self.verdict()])

    def verdict(self) -> list[str]:
        label = METRIC_NAMES.get(self.task_metric, self.task_metric)
        if self.best is None:
            return ["no run completed, so there is no best"]
        best, cheap = self.best, self.cheapest_within_best
        lines = [f"best: {best.adapter} ({best.method}, seed {best.seed}, lr {best.learning_rate:g}): {label} "
                 f"{best.task_score:.2f} [{best.interval[0]:.2f}, {best.interval[1]:.2f}]"]
        if cheap is not None and cheap is not best:
            lines.append(f"cheapest within the best's interval: {cheap.adapter} ({cheap.method}, "
                         f"{cheap.trainable_params:,} trainable params, {cheap.train_seconds or 0:.1f} s): {label} "
                         f"{cheap.task_score:.2f} [{cheap.interval[0]:.2f}, {cheap.interval[1]:.2f}], "
                         "not distinguishable from the best on these cases")
        else:
            lines.append("cheapest within the best's interval: the best itself (no cheaper run overlaps it)")
        return lines


# --- pure decisions -----------------------------------------------------------------------------------

def task_metric_for(references: Sequence[str]) -> str:
    """The metric the sweep ranks by: field accuracy when every reference is JSON, else contains-reference."""
    from trainers.metrics import parse_json

    structured = bool(references) and all(parse_json(r) is not None for r in references)
    return STRUCTURED_METRICS[0] if structured else FREE_TEXT_METRICS[0]


def _tie_break(task_metric: str) -> str:
    return STRUCTURED_METRICS[1] if task_metric == STRUCTURED_METRICS[0] else FREE_TEXT_METRICS[1]


def _cost(row: RunResult) -> tuple[float, float]:
    """Cheaper first: fewer trained weights, then less training time."""
    return (row.trainable_params if row.trainable_params is not None else float("inf"),
            row.train_seconds if row.train_seconds is not None else float("inf"))


def choose(rows: Sequence[RunResult]) -> tuple[RunResult | None, RunResult | None]:
    """(best, cheapest within the best's interval) among the completed rows.

    Best: the highest task score; ties go to the task metric's tie-break (JSON validity, exact match), then to
    the cheaper run. Cheapest within best: of the runs whose 95% interval overlaps the best's (the best
    included), the one with the fewest trainable parameters, then the shortest training: on these cases it
    cannot be told apart from the best, and it costs least.
    """
    done = [r for r in rows if r.completed and r.interval is not None]
    if not done:
        return None, None
    tie = _tie_break(done[0].task_metric)
    best = max(done, key=lambda r: (r.task_score, r.metrics.get(tie) or 0.0,
                                    tuple(-c for c in _cost(r))))
    low, high = best.interval
    overlapping = [r for r in done if r.interval[1] >= low and r.interval[0] <= high]
    return best, min(overlapping, key=_cost)


def seed_spread(rows: Sequence[RunResult]) -> list[SeedSpread]:
    """Mean, sample standard deviation and range of the task score over seeds, per (method, rate)."""
    groups: dict[tuple[str, float], list[float]] = {}
    for row in rows:
        if row.completed:
            groups.setdefault((row.method, row.learning_rate), []).append(row.task_score)
    return [SeedSpread(method, rate, len(scores), statistics.fmean(scores),
                       statistics.stdev(scores) if len(scores) > 1 else 0.0, min(scores), max(scores))
            for (method, rate), scores in groups.items()]


def survivors_count(runs: int) -> int:
    """How many runs successive halving lets go on: the better half, rounded up (one run always goes on)."""
    return max(1, math.ceil(runs / 2))


def survivors(losses: dict[str, float | None]) -> list[str]:
    """The keys whose eval loss is among the lowest :func:`survivors_count` of all the runs; a run with no loss
    (it failed, or never evaluated) never goes on, and ties keep the earlier key."""
    measured = sorted((loss, index, key) for index, (key, loss) in enumerate(losses.items())
                      if loss is not None and math.isfinite(loss))
    return [key for _, _, key in measured[:survivors_count(len(losses))]]


def adapter_name(prefix: str, method: str, seed: int, learning_rate: float | None) -> str:
    """``<prefix>-<method>-s<seed>``, with ``-lr<rate>`` when the sweep names its rates."""
    return f"{prefix}-{method}-s{seed}" + (f"-lr{learning_rate:g}" if learning_rate is not None else "")


# --- the sweep: plan, queue, wait, evaluate -----------------------------------------------------------

def hardware_for(device: str | None) -> Hardware:
    """The machine the runs train on ("cpu" forces the CPU on a GPU machine)."""
    from assistant.runtime.hardware import detect_hardware

    hardware = detect_hardware()
    return Hardware("cpu", ram_gb=hardware.ram_gb) if device == "cpu" and hardware.device != "cpu" else hardware


def plan_sweep(behaviour: Behaviour, prepared: PreparedDataset, settings: TrainingConfig, sweep: SweepConfig,
               hardware: Hardware) -> SweepPlan:
    """Every run's settings, name and estimate, checked before anything is queued.

    Raises:
        InputError: no held-out cases, a setting a method refuses, an adapter name taken, a run that cannot fit.
    """
    from assistant.services.behaviour import TrainingDoesNotFitError

    if not prepared.eval_count:
        raise InputError("there are no held-out cases to compare the methods on",
                         "give --eval FILE, or more examples so that some are set aside (about 10%)")
    prefix = sweep.run_prefix()
    runs = []
    for method in sweep.methods:
        rates = sweep.learning_rates or (training_method(method).learning_rate,)
        for rate in rates:
            for seed in range(sweep.seeds):
                run_settings = settings.overridden(method=method, seed=seed, learning_rate=rate)
                name = adapter_name(prefix, method, seed, rate if sweep.learning_rates else None)
                behaviour.adapters.check_name(name)
                if behaviour.adapters.path(name).exists():
                    raise InputError(f"an adapter named {name!r} already exists",
                                     "choose another --prefix, or rename the earlier adapters")
                estimate = behaviour.estimate(prepared, run_settings, hardware)
                if not estimate.fits:
                    error = TrainingDoesNotFitError(estimate)
                    raise InputError(f"{method} (lr {rate:g}) does not fit in the GPU's memory", error.hint)
                runs.append(PlannedRun(method, seed, rate, name, run_settings, estimate))
    return SweepPlan(tuple(runs), prepared, hardware.device, prepared.eval_count, sweep.halving)


def wait_for_jobs(behaviour: Behaviour, job_ids: Sequence[str], progress: Progress | None = None,
                  poll: float = 1.0) -> dict[str, object]:
    """Wait until every job has ended, starting the next in line when one is queued; their final statuses."""
    from trainers.job_files import ACTIVE, JobState

    said: dict[str, str] = {}
    while True:
        statuses = {job_id: behaviour.jobs.status(job_id) for job_id in job_ids}
        for job_id, status in statuses.items():
            line = f"{status.status} {status.step}/{status.max_steps}" if status.status in ACTIVE else status.status
            if progress and said.get(job_id) != line:
                progress(f"job {job_id}: {line}")
                said[job_id] = line
        if all(s.status not in (JobState.QUEUED, *ACTIVE) for s in statuses.values()):
            behaviour.register_finished()
            return statuses
        if any(s.status == JobState.QUEUED for s in statuses.values()):
            behaviour.jobs.start_next()  # a job killed without a word leaves the next one waiting for a look
        time.sleep(poll)


def halve(behaviour: Behaviour, job_ids: Sequence[str], statuses: dict, progress: Progress | None = None
          ) -> tuple[dict, dict[str, tuple[float | None, str]]]:
    """Successive halving's rung: resume the runs whose halfway eval loss is in the better half, wait for them.

    Returns every job's final status and, per job, (its halfway eval loss, why it stopped there) for the runs that
    were left; a run that ended before its pause (failed, cancelled, too short to pause) keeps its status.
    """
    from trainers.job_files import read_state

    states = {job_id: read_state(statuses[job_id].path) for job_id in job_ids if statuses[job_id].path}
    halfway = {job_id: state for job_id, state in states.items() if state.get("paused_at")}
    losses = {job_id: state.get("halfway_eval_loss") for job_id, state in halfway.items()}
    going_on = survivors(losses)
    worst_kept = max((losses[j] for j in going_on), default=None)
    left: dict[str, tuple[float | None, str]] = {}
    for job_id, state in halfway.items():
        loss = losses[job_id]
        if job_id in going_on:
            behaviour.jobs.start(job_id, resume=True)
            if progress:
                progress(f"job {job_id}: eval loss {loss:.4g} at step {state['paused_at']}: goes on")
            continue
        said = f"{loss:.4g}" if loss is not None else "none"
        left[job_id] = (loss, f"stopped at step {state['paused_at']} of {state.get('max_steps', '?')} by successive "
                              f"halving: eval loss {said}, the runs that went on had at most {worst_kept:.4g}"
                        if worst_kept is not None else f"stopped at step {state['paused_at']}: no eval loss")
        if progress:
            progress(f"job {job_id}: eval loss {said} at step {state['paused_at']}: stopped (successive halving)")
    final = dict(statuses) | wait_for_jobs(behaviour, going_on, progress)
    return final, left | {job_id: (losses[job_id], "") for job_id in going_on}


def cancel_runs(behaviour: Behaviour, job_ids: Sequence[str]) -> list[str]:
    """Cancel the sweep's jobs that have not ended (queued ones at once, the running one at a checkpoint).

    Returns every job of the sweep left unfinished, each resumable: those cancelled now, and those already
    paused halfway by successive halving."""
    from trainers.job_files import ACTIVE, JobState

    unfinished = []
    for job_id in job_ids:
        status = behaviour.jobs.status(job_id).status
        if status in (JobState.QUEUED, *ACTIVE):
            behaviour.jobs.cancel(job_id)
        if status in (JobState.QUEUED, JobState.CANCELLED, *ACTIVE):
            unfinished.append(job_id)
    return unfinished


def adapter_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file() and f.suffix in ADAPTER_WEIGHT_SUFFIXES)


def _train_seconds(status) -> float | None:
    """The job's training time, the part before a successive-halving pause included (a resumed trainer counts
    only its own part)."""
    from trainers.job_files import read_state

    before = read_state(status.path).get("paused_train_seconds") if status.path else None
    after = status.metrics.get("train_runtime")
    return None if before is None and after is None else (before or 0.0) + (after or 0.0)


def _trainable_params(settings: TrainingConfig, adapter_path: Path) -> int | None:
    """The registry's count on the model's shape; failing that, the weights stored in the adapter's files."""
    from assistant.runtime.model_shapes import ModelConfigError, shape_for_model

    try:
        return settings.training_method.trainable_params(shape_for_model(settings.model), settings)
    except ModelConfigError:
        return _stored_params(adapter_path)


def _stored_params(adapter_path: Path) -> int | None:
    import json
    import math
    import struct

    total = 0
    for file in Path(adapter_path).glob("*.safetensors"):
        with open(file, "rb") as handle:  # the header: 8 bytes of length, then JSON of every tensor's shape
            header = json.loads(handle.read(struct.unpack("<Q", handle.read(8))[0]))
        total += sum(math.prod(t["shape"]) for k, t in header.items() if k != "__metadata__")
    return total or None


def measure_runs(behaviour: Behaviour, plan: SweepPlan, job_ids: Sequence[str], statuses: dict) -> list[RunResult]:
    """A row per run with what its job measured (memory, time) and what its adapter holds; no evaluation yet."""
    rows = []
    for run, job_id in zip(plan.runs, job_ids, strict=True):
        status = statuses[job_id]
        registered = status.path / "registered" if status.path else None
        name = registered.read_text().strip() if registered and registered.exists() else run.adapter
        row = RunResult(run.method, run.seed, run.learning_rate, name, job_id, str(status.status),
                        reason=status.reason)
        row.peak_memory_gb = behaviour.job_memory(job_id).measured_gb
        row.train_seconds = _train_seconds(status)
        if status.status == "completed" and behaviour.adapters.path(name).exists():
            path = behaviour.adapters.path(name)
            row.adapter_bytes = adapter_bytes(path)
            row.trainable_params = _trainable_params(run.settings, path)
        rows.append(row)
    return rows


def evaluate_runs(behaviour: Behaviour, rows: list[RunResult], cases: Sequence[EvalCase], data_name: str,
                  model_name: str, sweep: SweepConfig, progress: Progress | None = None):
    """The base and every completed run's adapter answer ``cases`` on one loaded model; fills each row's
    metrics, task score, interval and latency ratio. Returns (base metrics, task metric, the saved folder)."""
    from assistant.runtime.generation import ModelSettings, load_model
    from assistant.runtime.variants import VariantModel
    from assistant.services.evaluation import generation_for, run_evaluation, save_report
    from assistant.services.project_variants import project_variants_for

    model = VariantModel(load_model(ModelSettings(model=model_name, device=sweep.device)))
    done = [r for r in rows if r.status == "completed"]
    adapters = [behaviour.adapters.get(r.adapter) for r in done]
    for adapter in adapters:
        model.add_adapter(adapter.name, adapter.path, adapter.base_model)
    variants = project_variants_for(model, adapters, retrieval=False, few_shot=False)
    generation = generation_for(cases, model.loaded.tokenizer, sweep.max_new_tokens)

    def said(fraction: float, label: str) -> None:
        if progress:
            progress(f"[{fraction:4.0%}] evaluating {label}")

    report = run_evaluation(model, variants, cases, data_name, generation, progress=said, general=sweep.general)
    folder = save_report(report, behaviour.root / "evals")
    by_name = {result.variant: result.metrics for result in report.results}
    base = by_name["base"]
    metric = task_metric_for([c.reference for c in cases])
    for row in done:
        metrics = by_name[row.adapter]
        row.metrics = metrics
        row.task_metric = metric
        row.task_score = metrics[metric]
        row.interval = wilson_interval(row.task_score, int(metrics.get("examples", len(cases))))
        if metrics.get("latency_p50_s") and base.get("latency_p50_s"):
            row.latency_ratio = metrics["latency_p50_s"] / base["latency_p50_s"]
    return base, metric, folder


def run_sweep(behaviour: Behaviour, plan: SweepPlan, sweep: SweepConfig, progress: Progress | None = None,
              job_ids: list[str] | None = None) -> SweepResult:
    """Queue every run, wait for them, register and measure the adapters, evaluate them against the base.

    ``job_ids``: a list the ids are put in as the jobs are queued, so a caller interrupted while waiting can
    cancel them (:func:`cancel_runs`) and say how to resume each.
    """
    from assistant.services.evaluation import cases_from_file

    cases = cases_from_file(plan.prepared.eval_file)
    ids = job_ids if job_ids is not None else []
    for run in plan.runs:
        pause = plan.halving and len(plan.runs) > 1
        ids.append(behaviour.start(plan.prepared, run.settings, run.adapter, sweep.device, run.estimate,
                                   pause_halfway=pause))
        if progress:
            progress(f"queued {run.adapter} as job {ids[-1]}" + (", to pause halfway" if pause else ""))
    statuses = wait_for_jobs(behaviour, ids, progress)
    halfway: dict[str, tuple[float | None, str]] = {}
    if plan.halving:
        statuses, halfway = halve(behaviour, ids, statuses, progress)
    rows = measure_runs(behaviour, plan, ids, statuses)
    for row in rows:
        loss, stopped = halfway.get(row.job_id, (None, ""))
        row.halfway_eval_loss = loss
        if stopped:
            row.status, row.reason = "halved", stopped
    data_name = f"datasets/{plan.prepared.dataset_id}/eval.jsonl"
    model_name = plan.runs[0].settings.model
    base, metric, folder = evaluate_runs(behaviour, rows, cases, data_name, model_name, sweep, progress)
    for row in rows:
        row.task_metric = metric
    best, cheapest = choose(rows)
    result = SweepResult(rows, metric, base, best, cheapest, seed_spread(rows), folder)
    write_json_atomic(folder / "compare-methods.json", result.to_dict())
    return result


# --- words ----------------------------------------------------------------------------------------------

def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _number(value, form: str) -> str:
    return "" if value is None else form.format(value)


def _share(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _size(size: int | None) -> str:
    if size is None:
        return ""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def prepare_files(workspace, project: str, data: str | Path, eval_data: str | Path | None,
                  settings: TrainingConfig) -> tuple[Behaviour, PreparedDataset]:
    """Check the examples, refuse a set with no held-out cases, then keep them as a dataset of the project
    (created if new). Nothing is created when the examples are refused.

    Raises:
        DatasetError: nothing in the file can be trained on (its report says why, line by line).
        InputError: a file cannot be read, or no cases are left for the evaluation.
    """
    from assistant.services.behaviour import Behaviour, check_examples

    try:
        train_text = Path(data).read_text(encoding="utf-8")
        eval_text = Path(eval_data).read_text(encoding="utf-8") if eval_data else None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read the data: {error}") from error
    checked = check_examples(Path(data).name, train_text, Path(eval_data).name if eval_data else None, eval_text,
                             settings=settings)
    if not checked.eval:
        raise InputError(f"{Path(data).name}: no held-out cases to compare the methods on",
                         "give --eval FILE, or more examples so that some are set aside (about 10%)")
    behaviour = Behaviour(workspace, project, create=True)
    return behaviour, behaviour.keep(checked, Path(data).name, train_text)
