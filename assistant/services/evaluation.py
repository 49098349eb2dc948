"""A held-out set through several variants, scored the same way, saved as JSON and Markdown."""

from __future__ import annotations

import json
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from assistant.core.errors import InputError, TunewiseError
from assistant.core.outcomes import share_with_interval
from assistant.runtime.generation import GenerationSettings
from assistant.runtime.variants import Aids, Variant, VariantModel
from trainers.evaluation import CASE_METRICS, score_answers
from trainers.metrics import cites_a_source

SHARE_METRICS = [*CASE_METRICS, "citation_rate"]
"""Metrics that are shares (or means of [0, 1] scores) over the evaluated cases."""
LATENCY_METRICS = ["latency_p50_s", "first_token_p50_s"]


def _metric_cell(value: float | None, cases: int | None) -> str:
    """A table cell: empty when not measured, a share with its interval when ``cases`` is given."""
    if value is None:
        return ""
    return f"{value:.2f}" if cases is None else share_with_interval(value, cases)


@dataclass(frozen=True)
class EvalCase:
    messages: tuple[dict, ...]
    """The conversation up to the answer."""
    reference: str
    line: int = 0


@dataclass
class VariantResult:
    variant: str
    metrics: dict
    answers: list[str] = field(default_factory=list)
    shots: list[list[int]] = field(default_factory=list)
    """A few-shot variant's examples per case, by their number in the examples file (else empty)."""


@dataclass
class EvalReport:
    eval_id: str
    data: str
    cases: int
    results: list[VariantResult]
    created: float = field(default_factory=time.time)

    def to_dict(self) -> dict:
        return asdict(self)

    def markdown(self) -> str:
        """The results as a table: shares with their 95% interval and n, latencies in seconds."""
        keys = SHARE_METRICS + LATENCY_METRICS
        lines = [f"# Evaluation {self.eval_id}", "", f"{self.cases} held-out cases from `{self.data}`. Shares are "
                 "shown with their 95% Wilson interval (for field_accuracy, a mean of per-case scores, the interval "
                 "is an approximation); n is the number of cases behind them.", "",
                 "| variant | n | " + " | ".join(keys) + " |", "|---|---:|" + "---:|" * len(keys)]
        for result in self.results:
            n = int(result.metrics.get("examples", self.cases))
            cells = [str(n)] + [_metric_cell(result.metrics.get(key), n if key in SHARE_METRICS else None)
                                for key in keys]
            lines.append(f"| {result.variant} | " + " | ".join(cells) + " |")
        probed = [r for r in self.results if r.metrics.get("general_loss") is not None]
        if probed:
            lines += ["", "General ability (the forgetting probe, per model: modifiers do not change weights): mean "
                      "loss per token on bundled general text (lower is better) and accuracy on bundled general "
                      "multiple-choice questions, each with its 95% interval.", "",
                      "| variant | general loss | general accuracy | n questions |", "|---|---:|---:|---:|"]
            for result in probed:
                m = result.metrics
                low, high = m.get("general_loss_interval") or (None, None)
                loss = f"{m['general_loss']:.3f}" + (f" [{low:.3f}, {high:.3f}]" if low is not None else "")
                lines.append(f"| {result.variant} | {loss} | "
                             f"{share_with_interval(m['general_accuracy'], m['general_n'])} | {m['general_n']} |")
        return "\n".join(lines) + "\n"


def cases_from_file(path: str | Path, limit: int | None = None) -> list[EvalCase]:
    """Held-out cases from any example format: everything but the last turn, and that turn."""
    from trainers.formats import parse_examples

    parsed = parse_examples(Path(path).name, Path(path).read_text(encoding="utf-8"))
    if not parsed.examples:
        raise InputError(f"{path}: no usable examples ({len(parsed.problems)} problems)")
    return [EvalCase(e.messages[:-1], e.answer, e.line) for e in parsed.examples[:limit]]


class NoHeldOutSplitError(TunewiseError):
    """An evaluation without a file of examples, in a project that has no prepared held-out split."""


@dataclass(frozen=True)
class HeldOutCases:
    """The cases an evaluation runs, and where they came from in the words each reader needs."""

    cases: list[EvalCase]
    data_name: str
    """What the saved report names as its data (a file name, or the split's path in the project)."""
    description: str
    """What the page says: "held-out split of <dataset id>, N cases"."""


def cases_from_upload(path: str | Path, limit: int | None = None) -> HeldOutCases:
    """The cases of an uploaded file of examples (see :func:`cases_from_file`)."""
    cases = cases_from_file(path, limit)
    return HeldOutCases(cases, Path(path).name, f"{Path(path).name}, {len(cases)} cases")


def project_held_out(behaviour, limit: int | None = None) -> HeldOutCases:
    """The cases of the project's latest prepared held-out split (the eval.jsonl the Behaviour tab
    keeps beside train.jsonl, :meth:`Behaviour.latest_held_out`): what an evaluation runs when no
    file is given, so a project is measured on examples its adapters never trained on.

    Raises:
        NoHeldOutSplitError: the project has no prepared dataset with held-out cases.
    """
    prepared = behaviour.latest_held_out()
    if prepared is None:
        raise NoHeldOutSplitError(
            f"project {behaviour.project!r} has no held-out split yet",
            "Prepare examples in the Behaviour tab (it sets some aside for evaluation), or upload a file of "
            "held-out examples.")
    cases = cases_from_file(prepared.eval_file, limit)
    of_all = f" (of {prepared.eval_count})" if len(cases) < prepared.eval_count else ""
    return HeldOutCases(cases, f"datasets/{prepared.dataset_id}/eval.jsonl",
                        f"held-out split of {prepared.dataset_id}, {len(cases)} cases{of_all}")


def generation_for(cases: Sequence[EvalCase], tokenizer, max_new_tokens: int | None = None) -> GenerationSettings:
    """Decoding for an evaluation: greedy, with an answer cap set from the references' lengths.

    A cap far above the longest reference only gives a looping answer room to run on (and the run
    time to grow); JSON references get a tight cap, free-text ones room for a sentence or two
    around the fact. ``max_new_tokens`` overrides it.
    """
    from trainers.metrics import parse_json

    if max_new_tokens:
        return GenerationSettings(max_new_tokens=max_new_tokens)
    lengths = [len(tokenizer(c.reference, add_special_tokens=False)["input_ids"]) for c in cases] or [64]
    longest = max(lengths)
    structured = all(parse_json(c.reference) is not None for c in cases)
    cap = int(longest * 1.25) + 8 if structured else max(64, 2 * longest + 16)
    return GenerationSettings(max_new_tokens=min(cap, 512))


def run_evaluation(model: VariantModel, variants: Sequence[Variant], cases: Sequence[EvalCase], data_name: str,
                   generation: GenerationSettings | None = None, aids: Aids | Callable | None = None,
                   progress: Callable[[float, str], None] | None = None, batch_size: int = 8,
                   general: bool = False) -> EvalReport:
    """Every case through every variant with the same decoding settings and seed, in batches.

    ``aids``: what the variants' modifiers draw on (a bare search function counts as Aids(search=...)).
    Few-shot examples whose question is one of the cases' are left out of the pool for the whole run,
    so no case is ever answered with itself, nor with a copy of another evaluated case.
    ``general``: also score each variant's model on general ability (the forgetting probe:
    ``general_loss``, ``general_accuracy``, ``general_n`` and their intervals in its metrics), once
    per model (the base, each adapter): modifiers change prompts, not weights.
    """
    aids = Aids.of(aids)
    if aids.examples is not None:
        asked = [next((m["content"] for m in reversed(c.messages) if m["role"] == "user"), "") for c in cases]
        aids = replace(aids, examples=aids.examples.without(asked))
    results = []
    probed: dict[str | None, dict] = {}
    total = len(variants) * len(cases)
    for v_index, variant in enumerate(variants):
        answers, latencies, first_tokens, cited, shots = [], [], [], [], []
        for start in range(0, len(cases), batch_size):
            if progress:
                progress((v_index * len(cases) + start) / max(total, 1), variant.name)
            chunk = cases[start:start + batch_size]
            for final in model.answer_batch(variant, [list(c.messages) for c in chunk], generation, aids,
                                            batch_size):
                latencies.append(final.latency_s)
                answers.append(final.text)
                cited.append(cites_a_source(final.text))
                shots.append(list(final.shots))
        metrics = score_answers(answers, [c.reference for c in cases])
        metrics["latency_p50_s"] = statistics.median(latencies) if latencies else None
        metrics["first_token_p50_s"] = statistics.median(first_tokens) if first_tokens else None
        metrics["citation_rate"] = sum(cited) / len(cited) if variant.retrieval and cited else None
        if general:
            if variant.adapter not in probed:
                if progress:
                    progress((v_index + 1) * len(cases) / max(total, 1), f"{variant.core}: general ability")
                probed[variant.adapter] = model.general_ability(Variant(variant.adapter)).to_dict()
            metrics.update(probed[variant.adapter])
        results.append(VariantResult(variant.name, metrics, answers, shots if variant.few_shot else []))
    return EvalReport(time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:4], data_name, len(cases), results)


def save_report(report: EvalReport, evals_dir: str | Path) -> Path:
    folder = Path(evals_dir) / report.eval_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    (folder / "report.md").write_text(report.markdown())
    return folder


def record_outcome(workspace, project: str, report: EvalReport) -> list[str]:
    """Save, in the project, whether the plan held on this evaluation; return the sentences.

    The project's "outcome" keeps the sentences (what the CLI and the app show) and the checks
    behind them (verdict, metric, n, both shares and their 95% intervals) as plain dicts.
    """
    from assistant.core.outcomes import plan_checks, plan_held

    results = report.to_dict()["results"]

    def with_outcome(data: dict) -> None:
        plan = data.get("plan") or {}
        data["outcome"] = {"eval_id": report.eval_id, "lines": plan_held(plan, results),
                           "checks": [asdict(check) for check in plan_checks(plan, results)]}

    return workspace.update(project, with_outcome)["outcome"]["lines"]


def gap_check(advisor, project: str, model: VariantModel, cases: Sequence[EvalCase], data_name: str,
              aids: Aids | Callable | None = None, generation: GenerationSettings | None = None,
              progress: Callable[[float, str], None] | None = None):
    """Measure the base before any training, and beside it every cheap modifier the project can feed
    (base + few-shot with training examples, base + retrieval with documents: ``aids``), save the
    finding in the project, and move the plan's gap to the measured one. Returns (finding, the new
    decision or None when the gap did not change)."""
    from assistant.core.outcomes import diagnose_gap
    from trainers.metrics import parse_json

    aids = Aids.of(aids)
    variants = ([Variant()] + ([Variant(None, ("few-shot",))] if aids.examples is not None else [])
                + ([Variant(None, ("retrieval",))] if aids.search is not None else []))
    report = run_evaluation(model, variants, cases, data_name, generation, aids, progress)
    structured = all(parse_json(c.reference) is not None for c in cases)
    finding = diagnose_gap(report.to_dict()["results"], structured)
    advisor.workspace.update(project, lambda data: data | {
        "gap_check": {"gap": finding.gap, "text": finding.text, "cases": len(cases),
                      "prompting_enough": finding.prompting_enough}})
    answers = advisor.state(project).answers
    measured = {"gap": finding.gap, "prompting_enough": finding.prompting_enough}
    changed = {slot: value for slot, value in measured.items()
               if value is not None and answers.get(slot, False if slot == "prompting_enough" else None) != value}
    if finding.gap and changed:
        before = advisor.plan(project)["decision"]
        advisor.edit(project, changed)
        after = advisor.plan(project)["decision"]
        return finding, after if after != before or "gap" in changed else None
    return finding, None


@dataclass(frozen=True)
class EvaluationRun:
    """An evaluation of a project's variants, saved: the report, where it lies, whether the plan held."""

    report: EvalReport
    folder: Path
    plan_held: list[str]


def evaluate_project(workspace, project: str, model: VariantModel, variants: Sequence[Variant],
                     cases: Sequence[EvalCase], data_name: str, generation: GenerationSettings | None = None,
                     aids: Aids | Callable | None = None,
                     progress: Callable[[float, str], None] | None = None, general: bool = False) -> EvaluationRun:
    """The one evaluation of a project that both faces run (`tunewise eval` and the Compare tab):
    the variants answer the held-out cases, the report is saved under the project's evals/, and
    whether the plan held is recorded in the project."""
    report = run_evaluation(model, variants, cases, data_name, generation, aids, progress, general=general)
    folder = save_report(report, workspace.project(project).path / "evals")
    return EvaluationRun(report, folder, record_outcome(workspace, project, report))


@dataclass(frozen=True)
class AnswerTime:
    """Seconds one evaluation answer takes on a model, and how that was learnt."""

    seconds: float
    basis: str
    """``AnswerTimes.ONE_ANSWER`` (one answer alone, timed before a run) or
    ``AnswerTimes.LAST_EVALUATION`` (the median latency of the last run on the model)."""


@dataclass(frozen=True)
class EvaluationEstimate:
    """How long an evaluation of ``cases`` x ``variants`` should take; no time until one is measured."""

    cases: int
    variants: int
    per_answer: AnswerTime | None

    @property
    def answers(self) -> int:
        return self.cases * self.variants

    @property
    def seconds(self) -> float | None:
        return None if self.per_answer is None else self.answers * self.per_answer.seconds


class AnswerTimes:
    """Seconds per evaluation answer, by model name, for estimating how long a run will take.

    One per app (the loaded model is shared by every user): before a model's first run one answer
    is timed alone (:meth:`measure_one`); after each run the median latency replaces it
    (:meth:`record_run`), since answers in batches usually go faster than one alone.
    """

    ONE_ANSWER = "one answer"
    LAST_EVALUATION = "last evaluation"

    def __init__(self) -> None:
        self._times: dict[str, AnswerTime] = {}

    def get(self, model_name: str) -> AnswerTime | None:
        return self._times.get(model_name)

    def measure_one(self, model_name: str, model: VariantModel, variant: Variant, case: EvalCase,
                    generation: GenerationSettings | None = None, aids: Aids | Callable | None = None) -> AnswerTime:
        """Time ``variant`` answering ``case`` alone on ``model``, and keep it for ``model_name``."""
        began = time.perf_counter()
        model.answer_batch(variant, [list(case.messages)], generation, aids, 1)
        measured = AnswerTime(time.perf_counter() - began, self.ONE_ANSWER)
        self._times[model_name] = measured
        return measured

    def record_run(self, model_name: str, report: EvalReport) -> AnswerTime | None:
        """Keep the median of the variants' median latencies in ``report``; None (and nothing kept)
        when the report has no latencies."""
        latencies = [r.metrics["latency_p50_s"] for r in report.results if r.metrics.get("latency_p50_s")]
        if not latencies:
            return None
        measured = AnswerTime(statistics.median(latencies), self.LAST_EVALUATION)
        self._times[model_name] = measured
        return measured

    def estimate(self, model_name: str, cases: int, variants: int) -> EvaluationEstimate:
        return EvaluationEstimate(cases, variants, self._times.get(model_name))
