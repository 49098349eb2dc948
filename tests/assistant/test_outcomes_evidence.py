"""The plan card keeps the strongest evidence (issue 28, item 5c).

A 10-case `tunewise eval` replaced the 40-case "held" verdict on the plan card with "not enough
evidence". Outcomes now pile up in the project (the replaced one in "outcome_history"), and the card
shows the strongest (a decisive verdict over an inconclusive one, then more cases) with its n and
date, and the newest run beside it.
"""

from dataclasses import asdict

from assistant.core.outcomes import (
    HELD,
    OUTCOME_HISTORY_LIMIT,
    evaluation_time,
    plan_checks,
    plan_held,
    strongest_and_latest,
    with_outcome_history,
)
from assistant.core.plan_report import evidence_markdown

PLAN = {"retrieval": False, "finetune": "lora"}


def outcome(eval_id: str, n: int, base: float, adapter: float) -> dict:
    """An outcome as evaluation.record_outcome saves it: base against one adapter on JSON validity."""
    metrics = {"exact_match": 0.0, "contains_reference": 0.0, "field_accuracy": 0.0}
    results = [{"variant": "base", "metrics": metrics | {"examples": n, "json_valid": base}},
               {"variant": "snips", "metrics": metrics | {"examples": n, "json_valid": adapter}}]
    return {"eval_id": eval_id, "lines": plan_held(PLAN, results),
            "checks": [asdict(check) for check in plan_checks(PLAN, results)]}


HELD_40 = outcome("20250601-101500-aaaa", 40, 0.0, 0.97)
SMALL_10 = outcome("20250602-093000-bbbb", 10, 0.0, 0.9)
UNDECIDED_60 = outcome("20250603-120000-cccc", 60, 0.5, 0.55)


def test_the_outcomes_behind_the_story_are_what_they_claim():
    assert HELD_40["checks"][0]["verdict"] == HELD and "n=10 < 20" in SMALL_10["lines"][0]


def test_a_smaller_newer_run_does_not_replace_the_40_case_verdict():
    best, newer = strongest_and_latest(SMALL_10, [HELD_40])
    assert (best.eval_id, best.n, best.decisive, best.when) == (HELD_40["eval_id"], 40, True, "2025-06-01 10:15")
    assert (newer.eval_id, newer.n, newer.decisive) == (SMALL_10["eval_id"], 10, False)


def test_a_decisive_verdict_beats_more_cases_without_one():
    best, newer = strongest_and_latest(UNDECIDED_60, [HELD_40])
    assert best.eval_id == HELD_40["eval_id"] and newer.eval_id == UNDECIDED_60["eval_id"]


def test_larger_n_wins_between_decisive_verdicts_and_the_latest_alone_is_not_repeated():
    held_80 = outcome("20250604-080000-dddd", 80, 0.0, 0.9)
    best, newer = strongest_and_latest(held_80, [HELD_40, SMALL_10])
    assert best.eval_id == held_80["eval_id"] and newer is None
    assert strongest_and_latest(None) == (None, None)


def test_the_card_names_n_and_date_of_the_strongest_and_shows_the_newer_run_beside_it():
    text = evidence_markdown(SMALL_10, [HELD_40])
    strongest, latest = text.split("\n\n")
    assert strongest.startswith("**Did the plan hold?** Strongest evidence (n=40, 2025-06-01 10:15")
    assert "held on JSON validity" in strongest
    assert latest.startswith("**Latest run** (n=10, 2025-06-02 09:30") and "not enough evidence" in latest
    assert evidence_markdown(None) == ""


def test_a_replaced_outcome_moves_to_the_history_once():
    record = {"outcome": SMALL_10}
    kept = with_outcome_history(HELD_40, record)
    assert kept["outcome_history"] == [HELD_40] and kept["outcome"] == SMALL_10
    assert with_outcome_history(SMALL_10, kept) is kept  # nothing replaced
    resaved = with_outcome_history(SMALL_10, kept | {"outcome": SMALL_10 | {"lines": ["judged"]}})
    assert resaved["outcome_history"] == [HELD_40]  # the same evaluation saved again is not history


def test_the_history_is_bounded_and_never_drops_the_strongest():
    record = {"outcome": None}
    previous = HELD_40
    for i in range(OUTCOME_HISTORY_LIMIT + 10):
        newer = outcome(f"20250701-{i:06d}-x", 10, 0.0, 0.9)
        record = with_outcome_history(previous, record | {"outcome": newer})
        previous = newer
    assert len(record["outcome_history"]) == OUTCOME_HISTORY_LIMIT
    assert HELD_40 in record["outcome_history"]
    assert strongest_and_latest(record["outcome"], record["outcome_history"])[0].eval_id == HELD_40["eval_id"]


def test_evaluation_time_reads_the_ids_evaluations_get():
    assert evaluation_time("20250601-101500-aaaa") == "2025-06-01 10:15"
    assert evaluation_time("e1") == ""
