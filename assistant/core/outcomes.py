"""Measured answers to the plan's questions: what the gap really is, and whether the plan held.

Pure functions over evaluation metrics (the dicts of ``EvalReport.results``), so the rules
that read numbers are tested without a model. Every verdict carries its sample size and 95%
intervals, because on a handful of cases a difference in the second decimal is noise.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from assistant.core.variant_kinds import variant_cost

FORMAT_OK = 0.8
"""JSON validity below this, on structured references, is a format (behaviour) failure."""
RETRIEVAL_GAIN = 0.1
"""A gain in contains-reference this large from retrieval says facts were missing."""
ALREADY_GOOD = 0.8
MIN_CASES = 20
"""Fewest held-out cases on which a plan is declared held or not held.

Below 20 the 95% interval of a share is wider than about +-0.2 whatever the result (0 of 10
already spans [0.00, 0.28]), so two variants separate only when one fails almost everything
and the other almost nothing; a verdict there would rest on a few lucky answers.
"""
Z_95 = 1.959963984540054
"""The standard normal quantile for a two-sided 95% interval."""

HELD, NOT_HELD, UNDECIDED = "held", "did not hold", "not enough evidence"
METRIC_NAMES = {"exact_match": "exact match", "contains_reference": "contains-reference",
                "json_valid": "JSON validity", "field_accuracy": "field accuracy"}
FINETUNE_METRICS = ("field_accuracy", "json_valid", "exact_match")
"""What fine-tuning is expected to raise, in the order an adapter is picked and a verdict reported."""


@dataclass(frozen=True)
class GapFinding:
    gap: str | None
    """knowledge, behaviour, both, or None when the base already does the job."""
    text: str
    prompting_enough: bool = False
    """Few-shot prompting closed the behaviour gap on the cases measured (see diagnose_gap)."""


@dataclass(frozen=True)
class PlanCheck:
    """One of the plan's predictions, checked on one metric against the baseline."""

    claim: str
    """What the plan predicted: "Retrieval" or "Fine-tuning (adapter <name>)"."""
    verdict: str
    """held, did not hold, or not enough evidence."""
    metric: str
    """The metric (a key of the results' metrics) the verdict rests on."""
    n: int
    """Held-out cases behind each share (the smaller of the two variants' counts)."""
    baseline: float
    baseline_interval: tuple[float, float]
    planned: float
    planned_interval: tuple[float, float]
    text: str
    """The sentence shown to people, with every metric compared and its 95% interval."""


def wilson_interval(share: float, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval (95% by default) of a share observed on ``n`` cases.

    Unlike the normal approximation it stays inside [0, 1] and does not collapse to a point
    at 0 or 1 (0 of 3 gives [0, 0.56], not [0, 0]). Applied to a mean of per-case scores in
    [0, 1] (field accuracy) it is an approximation: such a mean varies no more than a share of
    the same value, so the interval errs on the wide side. With no cases, it is [0, 1].
    """
    if n <= 0:
        return 0.0, 1.0
    share = min(max(share, 0.0), 1.0)
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (share + z2 / (2 * n)) / denominator
    half = z * math.sqrt(share * (1 - share) / n + z2 / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def share_with_interval(share: float, n: int) -> str:
    """``0.62 [0.52, 0.71]``: a share and its 95% interval, to two decimals."""
    low, high = wilson_interval(share, n)
    return f"{share:.2f} [{low:.2f}, {high:.2f}]"


def _metrics(results: Sequence[dict], name: str) -> dict | None:
    return next((r["metrics"] for r in results if r["variant"] == name), None)


def _cases(metrics: dict) -> int:
    return int(metrics.get("examples") or 0)


def diagnose_gap(results: Sequence[dict], structured: bool) -> GapFinding:
    """Which failures dominate the base's answers, from the base (and base + retrieval) results.

    ``structured``: the references are JSON, so format failures are measurable. The text
    states the number of cases, and on fewer than ``MIN_CASES`` calls itself a first reading.
    """
    base = _metrics(results, "base")
    if base is None:
        raise ValueError("the gap check needs the base variant's results")
    n = _cases(base)
    retrieval = _metrics(results, "base + retrieval")
    facts = retrieval is not None and (retrieval["contains_reference"] - base["contains_reference"]
                                       >= RETRIEVAL_GAIN)
    form = structured and base["json_valid"] < FORMAT_OK
    parts = []
    if facts:
        parts.append(f"retrieval raised contains-reference from {base['contains_reference']:.2f} to "
                     f"{retrieval['contains_reference']:.2f} on {n} cases: facts were missing")
    if form:
        parts.append(f"only {base['json_valid']:.0%} of the base's answers on {n} cases are valid JSON: the format "
                     "needs training (or few-shot examples)")
    best = max(base["contains_reference"], base["exact_match"])
    if facts and form:
        finding = GapFinding("both", "; ".join(parts) + ".")
    elif facts:
        finding = GapFinding("knowledge", parts[0] + ".")
    elif form:
        finding = GapFinding("behaviour", parts[0] + ".")
    elif best >= ALREADY_GOOD:
        finding = GapFinding(None, f"the base already gets {best:.0%} of {n} cases right: prompting may be enough.")
    else:
        finding = GapFinding("behaviour", f"the base gets {best:.0%} of {n} cases right and retrieval does not help: "
                                          "the gap is behaviour (style, skill), which training addresses.")
    few_shot = _metrics(results, "base + few-shot")
    if few_shot is not None and finding.gap in ("behaviour", "both"):
        finding = _with_few_shot(finding, base, few_shot, structured, n)
    if n < MIN_CASES:
        return GapFinding(finding.gap, finding.text + f" With n={n} (< {MIN_CASES}) this is a first reading, not a "
                                                      "measurement: check again on more cases.",
                          finding.prompting_enough)
    return finding


def _with_few_shot(finding: GapFinding, base: dict, few_shot: dict, structured: bool, n: int) -> GapFinding:
    """The finding with what few-shot prompting did to the behaviour gap: closed when its answers
    reach the bar the base missed (valid JSON for structured references, right answers otherwise)
    with the lower end of the 95% interval, not just the point value; a "both" gap keeps its
    knowledge part."""
    metric = "json_valid" if structured else max(("contains_reference", "exact_match"), key=lambda m: few_shot[m])
    bar = FORMAT_OK if structured else ALREADY_GOOD
    low, _ = wilson_interval(few_shot[metric], _cases(few_shot))
    change = (f"few-shot prompting gives {METRIC_NAMES[metric]} {share_with_interval(few_shot[metric], n)} against "
              f"the base's {share_with_interval(base[metric], _cases(base))}")
    if low >= bar:
        return GapFinding(finding.gap, f"{finding.text} But {change}: prompting with your examples already closes "
                                       "the behaviour gap, so training is optional.", prompting_enough=True)
    return GapFinding(finding.gap, f"{finding.text} With your examples in the prompt, {change}: not enough on "
                                   "its own.")


def _compare(baseline: dict, planned: dict, metric: str) -> tuple[str, str]:
    """The verdict on one metric and the reason shown in brackets after it.

    Held: the planned variant's interval lies wholly above the baseline's. Did not hold: it
    lies wholly at or below the baseline's (no overlap, the wrong way, or touching). Anything
    else, or fewer than ``MIN_CASES`` cases, is not enough evidence. Non-overlapping 95%
    intervals are a stricter test than a 5% significance test, on purpose: a verdict should
    survive a second run.
    """
    n = min(_cases(baseline), _cases(planned))
    if n < MIN_CASES:
        return UNDECIDED, f"n={n} < {MIN_CASES}"
    base_low, base_high = wilson_interval(baseline[metric], _cases(baseline))
    planned_low, planned_high = wilson_interval(planned[metric], _cases(planned))
    if planned_low > base_high:
        return HELD, f"n={n}"
    if planned_high <= base_low:
        return NOT_HELD, f"n={n}"
    return UNDECIDED, f"n={n}, the 95% intervals overlap"


def _check(claim: str, baseline: dict, planned: dict, metrics: Sequence[str]) -> PlanCheck:
    """One claim checked on ``metrics``: held when one of them clearly rose, did not hold when
    none rose and one clearly fell, otherwise not enough evidence (resting on the metric that
    rose most, the one closest to a verdict of held)."""
    verdicts = {metric: _compare(baseline, planned, metric) for metric in metrics}
    decisive = (next((m for m in metrics if verdicts[m][0] == HELD), None)
                or next((m for m in metrics if verdicts[m][0] == NOT_HELD), None)
                or max(metrics, key=lambda m: planned[m] - baseline[m]))
    verdict, reason = verdicts[decisive]
    on = f" on {METRIC_NAMES[decisive]}" if len(metrics) > 1 and verdict != UNDECIDED else ""
    numbers = ", ".join(f"{METRIC_NAMES[m]} {share_with_interval(baseline[m], _cases(baseline))} -> "
                        f"{share_with_interval(planned[m], _cases(planned))}" for m in metrics)
    return PlanCheck(claim, verdict, decisive, min(_cases(baseline), _cases(planned)),
                     baseline[decisive], wilson_interval(baseline[decisive], _cases(baseline)),
                     planned[decisive], wilson_interval(planned[decisive], _cases(planned)),
                     f"{claim}: {verdict}{on} ({reason}): {numbers}.")


def plan_checks(plan: dict, results: Sequence[dict]) -> list[PlanCheck]:
    """The plan's predictions checked against the base: retrieval should raise contains-reference,
    fine-tuning (its best adapter) JSON validity, field accuracy or exact match. Then each pick
    against the cheaper option: the best measured variant lower in the cost order (prompting <
    retrieval < training < training + retrieval, assistant.core.variant_kinds.variant_cost) on the
    same metrics, so "train" holds only where it beats few-shot beyond the intervals.

    Fine-tuning counts as held when any of its three metrics clearly rose; they move together
    (a valid JSON answer is needed for field accuracy), so this is not three independent tries.
    """
    base = _metrics(results, "base")
    if base is None:
        return []
    checks = []
    retrieval = _metrics(results, "base + retrieval")
    if plan.get("retrieval") and retrieval is not None:
        checks.append(_check("Retrieval", base, retrieval, ["contains_reference"]))
        checks += _against_cheaper("base + retrieval", retrieval, results, ["contains_reference"])
    adapters = [r for r in results if not r["variant"].startswith("base") and not r["variant"].endswith(" + retrieval")]
    if plan.get("finetune") not in (None, "none") and adapters:
        best = max(adapters, key=lambda r: tuple(r["metrics"][m] for m in FINETUNE_METRICS))
        checks.append(_check(f"Fine-tuning (adapter {best['variant']})", base, best["metrics"], FINETUNE_METRICS))
        checks += _against_cheaper(best["variant"], best["metrics"], results, FINETUNE_METRICS)
    if "few_shot" in (plan.get("flags") or ()) and _metrics(results, "base + few-shot") is not None and not adapters:
        checks.append(_check("Few-shot prompting", base, _metrics(results, "base + few-shot"), FINETUNE_METRICS))
    return checks


def _against_cheaper(picked: str, metrics: dict, results: Sequence[dict], compared: Sequence[str]) -> list[PlanCheck]:
    """``picked`` against the best variant below it in the cost order (other than the bare base,
    which the first check already beat): held when the pick is better beyond the 95% intervals;
    when the cheaper option is as good within them, the sentence says so, with n."""
    cheaper = [r for r in results if r["variant"] != "base" and variant_cost(r["variant"]) < variant_cost(picked)
               and all(m in r["metrics"] for m in compared)]
    if not cheaper:
        return []
    option = max(cheaper, key=lambda r: tuple(r["metrics"][m] for m in compared))
    check = _check(f"{picked} against the cheaper {option['variant']}", option["metrics"], metrics, compared)
    numbers = check.text.split("): ", 1)[-1]
    on = f" on {METRIC_NAMES[check.metric]}" if len(compared) > 1 else ""
    if check.verdict == HELD:
        others = {m: _compare(option["metrics"], metrics, m)[0] for m in compared if m != check.metric}
        level = [METRIC_NAMES[m] for m, verdict in others.items() if verdict == UNDECIDED]
        behind = [METRIC_NAMES[m] for m, verdict in others.items() if verdict == NOT_HELD]
        caveat = ((f" The cheaper option is as good within the intervals on {', '.join(level)}." if level else "")
                  + (f" It is better on {', '.join(behind)}." if behind else ""))
        text = (f"{picked} beats the cheaper {option['variant']} beyond the 95% intervals{on} (n={check.n}): "
                f"{numbers}{caveat}")
    elif check.verdict == NOT_HELD:
        text = (f"The cheaper {option['variant']} did better than {picked} (n={check.n}): {numbers} Prefer the "
                "cheaper option.")
    elif check.n >= MIN_CASES:
        text = (f"The cheaper {option['variant']} is as good as {picked} within the 95% intervals (n={check.n}): "
                f"{numbers} The extra cost is not shown to pay off here.")
    else:
        text = (f"{picked} against the cheaper {option['variant']}: {UNDECIDED} (n={check.n} < {MIN_CASES}): "
                f"{numbers}")
    return [PlanCheck(check.claim, check.verdict, check.metric, check.n, check.baseline, check.baseline_interval,
                      check.planned, check.planned_interval, text)]


def plan_held(plan: dict, results: Sequence[dict]) -> list[str]:
    """Sentences saying whether the plan's predictions held, with n and 95% intervals."""
    if _metrics(results, "base") is None:
        return ["Include the base variant in the evaluation to check the plan against it."]
    lines = [check.text for check in plan_checks(plan, results)]
    return lines or ["The evaluation has no variant that tests the plan's prediction (add the planned "
                     "retrieval or adapter variant)."]


# --- the evidence kept in the project ------------------------------------------------------------
# Each evaluation saves its outcome in the project ({"eval_id", "lines", "checks"}: the checks as
# PlanCheck dicts). A new outcome replaces the project's "outcome"; the one it replaces moves to
# "outcome_history" (Workspace.update does this for every writer), so a 10-case run never erases a
# 40-case verdict: the plan card shows the strongest evidence, and the newest run beside it.

OUTCOME_HISTORY_LIMIT = 50
"""Outcomes kept in a project besides the newest; past it the weakest old ones go, never the strongest."""


@dataclass(frozen=True)
class Evidence:
    """One evaluation's outcome, as strong as its checks make it."""

    eval_id: str
    when: str
    """The evaluation's date and time ("2025-06-01 14:03"), from its id; empty when unknown."""
    n: int
    """Held-out cases behind its largest check (0 when it checked nothing)."""
    decisive: bool
    """Whether a check reached a verdict (held or did not hold) rather than "not enough evidence"."""
    lines: tuple[str, ...]

    @property
    def strength(self) -> tuple[bool, int, str]:
        """A decisive verdict beats an inconclusive one, then more cases beat fewer, then newer."""
        return self.decisive, self.n, self.eval_id


def evaluation_time(eval_id: str) -> str:
    """ "20250601-140312-ab12" -> "2025-06-01 14:03"; empty for an id without a time."""
    match = re.match(r"(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})", eval_id or "")
    return f"{match[1]}-{match[2]}-{match[3]} {match[4]}:{match[5]}" if match else ""


def evidence_of(outcome: dict) -> Evidence:
    """The Evidence of an outcome as saved in a project (any missing part counts as nothing)."""
    checks = [c for c in outcome.get("checks") or () if isinstance(c, dict)]
    eval_id = str(outcome.get("eval_id") or "")
    return Evidence(eval_id, evaluation_time(eval_id), max((int(c.get("n") or 0) for c in checks), default=0),
                    any(c.get("verdict") in (HELD, NOT_HELD) for c in checks),
                    tuple(str(line) for line in outcome.get("lines") or ()))


def strongest_and_latest(latest: dict | None, history: Sequence[dict] = ()) -> tuple[Evidence | None, Evidence | None]:
    """The strongest evidence among a project's outcomes, and the latest one when it is another run
    (None when the latest is the strongest). ``latest``: the project's "outcome"; ``history``: its
    "outcome_history"."""
    outcomes = [o for o in (*history, *([latest] if latest else [])) if isinstance(o, dict)]
    if not outcomes:
        return None, None
    newest = evidence_of(outcomes[-1])
    best = max((evidence_of(o) for o in outcomes), key=lambda e: e.strength)
    same = best.eval_id == newest.eval_id and best.lines == newest.lines
    return best, None if same else newest


def with_outcome_history(previous: dict | None, record: dict) -> dict:
    """``record`` (a project's data after a change) with the outcome the change replaced kept in its
    "outcome_history"; unchanged when the change left the outcome alone."""
    current = record.get("outcome")
    if not isinstance(previous, dict) or previous == current:
        return record
    if isinstance(current, dict) and current.get("eval_id") == previous.get("eval_id"):
        return record  # the same evaluation, saved again (a judge score added)
    history = [h for h in record.get("outcome_history") or () if isinstance(h, dict)
               and h.get("eval_id") != previous.get("eval_id")] + [previous]
    if len(history) > OUTCOME_HISTORY_LIMIT:
        keep = max(history, key=lambda o: evidence_of(o).strength)
        newest = history[-(OUTCOME_HISTORY_LIMIT - 1):]
        history = ([keep] if keep not in newest else []) + newest
    return record | {"outcome_history": history}
