"""Every plan judged against the cheaper option: training holds only where it beats few-shot
beyond the 95% intervals, and a gap that few-shot closes turns the plan to prompting."""

import pytest

from assistant.core.outcomes import HELD, NOT_HELD, UNDECIDED, diagnose_gap, plan_checks
from assistant.core.profile import TaskProfile
from assistant.core.rules import decide
from assistant.core.variant_kinds import variant_cost

LORA_PLAN = {"finetune": "lora", "retrieval": False, "flags": ["prompting_baseline"]}


def result(variant: str, valid: int, n: int = 40) -> dict:
    share = valid / n
    return {"variant": variant, "metrics": {"examples": n, "json_valid": share, "field_accuracy": share,
                                            "exact_match": share, "contains_reference": share}}


def test_the_cost_order_is_prompting_retrieval_training_then_both():
    names = ["base", "base + few-shot", "base + retrieval", "snips", "snips + retrieval"]
    assert sorted(names, key=variant_cost) == names
    assert variant_cost("base + few-shot + retrieval") < variant_cost("snips")


@pytest.mark.parametrize("few_shot, adapter, verdict, words", [
    # 38/40 against 39/40: Wilson [0.83, 0.99] and [0.87, 1.00] overlap -> as good within the intervals.
    (38, 39, UNDECIDED, "is as good as snips within the 95% intervals (n=40)"),
    # 10/40 [0.14, 0.40] against 39/40 [0.87, 1.00] -> training pays off.
    (10, 39, HELD, "snips beats the cheaper base + few-shot beyond the 95% intervals on field accuracy (n=40)"),
    # 40/40 [0.91, 1.00] against 20/40 [0.35, 0.65] -> the cheaper option did better.
    (40, 20, NOT_HELD, "The cheaper base + few-shot did better than snips (n=40)"),
])
def test_training_is_judged_against_few_shot(few_shot, adapter, verdict, words):
    results = [result("base", 0), result("base + few-shot", few_shot), result("snips", adapter)]
    checks = plan_checks(LORA_PLAN, results)
    assert [c.claim for c in checks] == ["Fine-tuning (adapter snips)", "snips against the cheaper base + few-shot"]
    against = checks[1]
    assert against.verdict == verdict and words in against.text, against.text
    assert against.n == 40 and against.baseline == few_shot / 40 and against.planned == adapter / 40


def test_on_few_cases_the_comparison_says_it_is_not_enough_evidence():
    results = [result("base", 0, 10), result("base + few-shot", 9, 10), result("snips", 10, 10)]
    assert plan_checks(LORA_PLAN, results)[1].verdict == UNDECIDED
    assert "n=10 < 20" in plan_checks(LORA_PLAN, results)[1].text


def test_a_prompting_plan_is_checked_as_few_shot_against_the_base():
    plan = {"finetune": "none", "retrieval": False, "flags": ["few_shot", "grow_data"]}
    checks = plan_checks(plan, [result("base", 0), result("base + few-shot", 36)])
    assert [(c.claim, c.verdict) for c in checks] == [("Few-shot prompting", HELD)]


def test_a_gap_few_shot_closes_turns_the_plan_to_prompting():
    finding = diagnose_gap([result("base", 0), result("base + few-shot", 39)], structured=True)
    assert finding.gap == "behaviour" and finding.prompting_enough
    assert "already closes the behaviour gap" in finding.text and "0.97 [0.87, 1.00]" in finding.text
    profile = TaskProfile(gap="behaviour", examples=500, vram_gb=24)
    assert decide(profile).finetune == "lora"
    measured = decide(TaskProfile(gap="behaviour", examples=500, vram_gb=24, prompting_enough=True))
    assert measured.finetune == "none" and "few_shot" in measured.flags
    assert measured.decision == "prompting (few-shot)"
    assert "training the 500 examples is optional" in " ".join(r.text for r in measured.reasons)


def test_few_shot_that_falls_short_of_the_bar_leaves_training_planned():
    # 30/40 = 0.75: its interval's low end (0.60) is under the 0.8 bar.
    finding = diagnose_gap([result("base", 0), result("base + few-shot", 30)], structured=True)
    assert finding.gap == "behaviour" and not finding.prompting_enough
    assert "not enough on its own" in finding.text


def test_a_pick_that_wins_on_one_metric_says_where_the_cheaper_option_holds_its_own():
    """The proof's Snips numbers: LoRA clearly ahead on JSON validity only."""
    def row(variant, fields, valid, exact, n=100):
        return {"variant": variant, "metrics": {"examples": n, "field_accuracy": fields, "json_valid": valid,
                                                "exact_match": exact, "contains_reference": exact}}

    results = [row("base", 0.0, 0.0, 0.0), row("base + few-shot", 0.30, 0.92, 0.07), row("lora", 0.34, 1.0, 0.02)]
    against = plan_checks(LORA_PLAN, results)[1]
    assert against.verdict == HELD and against.metric == "json_valid"
    assert "beyond the 95% intervals on JSON validity (n=100)" in against.text
    assert "as good within the intervals on field accuracy, exact match" in against.text, against.text
