"""Measured answers to the plan's questions: what the gap really is, and whether the plan held.

Pure functions over evaluation metrics (the dicts of ``EvalReport.results``), so the rules
that read numbers are tested without a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

FORMAT_OK = 0.8
"""JSON validity below this, on structured references, is a format (behaviour) failure."""
RETRIEVAL_GAIN = 0.1
"""A gain in contains-reference this large from retrieval says facts were missing."""
ALREADY_GOOD = 0.8


@dataclass(frozen=True)
class GapFinding:
    gap: str | None
    """knowledge, behaviour, both, or None when the base already does the job."""
    text: str


def _metrics(results: Sequence[dict], name: str) -> dict | None:
    return next((r["metrics"] for r in results if r["variant"] == name), None)


def diagnose_gap(results: Sequence[dict], structured: bool) -> GapFinding:
    """Which failures dominate the base's answers, from the base (and base + retrieval) results.

    ``structured``: the references are JSON, so format failures are measurable.
    """
    base = _metrics(results, "base")
    if base is None:
        raise ValueError("the gap check needs the base variant's results")
    retrieval = _metrics(results, "base + retrieval")
    facts = retrieval is not None and (retrieval["contains_reference"] - base["contains_reference"]
                                       >= RETRIEVAL_GAIN)
    form = structured and base["json_valid"] < FORMAT_OK
    parts = []
    if facts:
        parts.append(f"retrieval raised contains-reference from {base['contains_reference']:.2f} to "
                     f"{retrieval['contains_reference']:.2f}: facts were missing")
    if form:
        parts.append(f"only {base['json_valid']:.0%} of the base's answers are valid JSON: the format needs "
                     "training (or few-shot examples)")
    if facts and form:
        return GapFinding("both", "; ".join(parts) + ".")
    if facts:
        return GapFinding("knowledge", parts[0] + ".")
    if form:
        return GapFinding("behaviour", parts[0] + ".")
    best = max(base["contains_reference"], base["exact_match"])
    if best >= ALREADY_GOOD:
        return GapFinding(None, f"the base already gets {best:.0%} right: prompting may be enough.")
    return GapFinding("behaviour", f"the base gets {best:.0%} right and retrieval does not help: the gap is "
                                   "behaviour (style, skill), which training addresses.")


def plan_held(plan: dict, results: Sequence[dict]) -> list[str]:
    """Sentences saying whether the plan's predictions held, with the numbers."""
    base = _metrics(results, "base")
    if base is None:
        return ["Include the base variant in the evaluation to check the plan against it."]
    lines = []
    retrieval = _metrics(results, "base + retrieval")
    if plan.get("retrieval") and retrieval is not None:
        gain = retrieval["contains_reference"] - base["contains_reference"]
        verdict = "held" if gain > 0 else "did not hold"
        lines.append(f"Retrieval ({verdict}): contains-reference {base['contains_reference']:.2f} -> "
                     f"{retrieval['contains_reference']:.2f}.")
    adapters = [r for r in results if r["variant"] not in ("base", "base + retrieval")
                and not r["variant"].endswith(" + retrieval")]
    if plan.get("finetune") not in (None, "none") and adapters:
        best = max(adapters, key=lambda r: (r["metrics"]["field_accuracy"], r["metrics"]["json_valid"],
                                            r["metrics"]["exact_match"]))
        m = best["metrics"]
        gained = (m["json_valid"] > base["json_valid"] or m["field_accuracy"] > base["field_accuracy"]
                  or m["exact_match"] > base["exact_match"])
        verdict = "held" if gained else "did not hold"
        lines.append(f"Fine-tuning ({verdict}, adapter {best['variant']}): JSON validity {base['json_valid']:.2f} -> "
                     f"{m['json_valid']:.2f}, field accuracy {base['field_accuracy']:.2f} -> "
                     f"{m['field_accuracy']:.2f}, exact match {base['exact_match']:.2f} -> {m['exact_match']:.2f}.")
    if not lines:
        lines.append("The evaluation has no variant that tests the plan's prediction (add the planned "
                     "retrieval or adapter variant).")
    return lines
