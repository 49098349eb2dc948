"""Reading measurements: what the gap is, and whether the plan held, with n and 95% intervals."""

import pytest

from assistant.core.outcomes import (
    HELD,
    MIN_CASES,
    NOT_HELD,
    UNDECIDED,
    diagnose_gap,
    plan_checks,
    plan_held,
    wilson_interval,
)


def result(variant, exact=0.0, contains=0.0, valid=0.0, fields=0.0, n=100):
    return {"variant": variant, "metrics": {"examples": n, "exact_match": exact, "contains_reference": contains,
                                            "json_valid": valid, "field_accuracy": fields}}


@pytest.mark.parametrize("share, n, low, high", [
    (0.0, 3, 0.0, 0.5615),
    (0.5, 10, 0.2366, 0.7634),
    (1.0, 3, 0.4385, 1.0),
    (1 / 3, 3, 0.0615, 0.7923),
    (0.6, 100, 0.5020, 0.6906),
])
def test_wilson_interval_matches_known_values(share, n, low, high):
    got_low, got_high = wilson_interval(share, n)
    assert got_low == pytest.approx(low, abs=1e-4) and got_high == pytest.approx(high, abs=1e-4)


def test_wilson_interval_without_cases_says_nothing_is_known():
    assert wilson_interval(0.0, 0) == (0.0, 1.0)


def test_wilson_interval_narrows_as_cases_grow():
    widths = [high - low for low, high in (wilson_interval(0.5, n) for n in (10, 100, 1000))]
    assert widths[0] > widths[1] > widths[2]


@pytest.mark.parametrize("results, structured, gap, words", [
    ([result("base", contains=0.1), result("base + retrieval", contains=0.6)], False, "knowledge", "facts"),
    ([result("base", valid=0.2)], True, "behaviour", "valid JSON"),
    ([result("base", valid=0.1, contains=0.0), result("base + retrieval", valid=0.1, contains=0.5)], True, "both",
     "facts"),
    ([result("base", exact=0.9, contains=0.9, valid=1.0)], True, None, "prompting"),
    ([result("base", contains=0.3), result("base + retrieval", contains=0.32)], False, "behaviour", "does not help"),
])
def test_diagnose_gap(results, structured, gap, words):
    finding = diagnose_gap(results, structured)
    assert finding.gap == gap and words in finding.text
    assert "100 cases" in finding.text and "first reading" not in finding.text


def test_diagnose_gap_on_few_cases_states_n_and_does_not_claim_a_measurement():
    finding = diagnose_gap([result("base", valid=0.0, n=3)], True)
    assert finding.gap == "behaviour"
    assert "on 3 cases" in finding.text and f"n=3 (< {MIN_CASES}) this is a first reading" in finding.text


def test_diagnose_needs_the_base():
    with pytest.raises(ValueError, match="needs the base variant"):
        diagnose_gap([result("json")], True)


def test_three_cases_are_not_enough_evidence_even_when_the_share_rose():
    lines = plan_held({"retrieval": True}, [result("base", contains=0.0, n=3),
                                            result("base + retrieval", contains=1 / 3, n=3)])
    assert lines == ["Retrieval: not enough evidence (n=3 < 20): contains-reference 0.00 [0.00, 0.56] -> "
                     "0.33 [0.06, 0.79]."]


def test_a_clear_gain_on_a_hundred_cases_held():
    [check] = plan_checks({"retrieval": True}, [result("base", contains=0.1), result("base + retrieval", contains=0.6)])
    assert (check.claim, check.verdict, check.metric, check.n) == ("Retrieval", HELD, "contains_reference", 100)
    assert (check.baseline, check.planned) == (0.1, 0.6)
    assert check.baseline_interval[1] < check.planned_interval[0]
    assert check.text == ("Retrieval: held (n=100): contains-reference 0.10 [0.06, 0.17] -> 0.60 [0.50, 0.69].")


def test_overlapping_intervals_are_not_enough_evidence():
    [check] = plan_checks({"retrieval": True}, [result("base", contains=0.50, n=40),
                                                result("base + retrieval", contains=0.62, n=40)])
    assert check.verdict == UNDECIDED
    assert check.text.startswith("Retrieval: not enough evidence (n=40, the 95% intervals overlap): ")


def test_a_clear_drop_did_not_hold():
    [check] = plan_checks({"retrieval": True}, [result("base", contains=0.7), result("base + retrieval", contains=0.2)])
    assert check.verdict == NOT_HELD and check.text.startswith("Retrieval: did not hold (n=100): ")


def test_fine_tuning_held_on_the_metric_that_clearly_rose_and_reports_all_three():
    plan = {"retrieval": True, "finetune": "lora"}
    checks = plan_checks(plan, [result("base", valid=0.0, contains=0.1), result("base + retrieval", contains=0.4),
                                result("snips-v1", valid=0.99, fields=0.25), result("snips-v0", valid=0.5)])
    # Retrieval against the base, the adapter against the base, then the adapter against the cheaper option.
    assert [c.verdict for c in checks] == [HELD, HELD, HELD]
    assert checks[2].claim == "snips-v1 against the cheaper base + retrieval"
    tuned = checks[1]
    assert tuned.claim == "Fine-tuning (adapter snips-v1)" and tuned.metric == "field_accuracy"
    assert tuned.text.startswith("Fine-tuning (adapter snips-v1): held on field accuracy (n=100): field accuracy "
                                 "0.00 [0.00, 0.04] -> 0.25 [0.18, 0.34], JSON validity 0.00 [0.00, 0.04] -> "
                                 "0.99 [0.95, 1.00], exact match")


@pytest.mark.parametrize("adapter, verdict, metric, reason", [
    (result("a", valid=0.4, fields=0.5), NOT_HELD, "json_valid", "(n=100)"),
    (result("a", valid=0.75, fields=0.55), UNDECIDED, "field_accuracy", "(n=100, the 95% intervals overlap)"),
    (result("a", valid=0.9, fields=0.3, n=10), UNDECIDED, "json_valid", "(n=10 < 20)"),
])
def test_fine_tuning_verdicts(adapter, verdict, metric, reason):
    [check] = plan_checks({"finetune": "lora"}, [result("base", valid=0.8, fields=0.5), adapter])
    assert (check.verdict, check.metric) == (verdict, metric) and reason in check.text
    assert check.n == adapter["metrics"]["examples"]


def test_plan_held_lines_are_the_checks_texts():
    results = [result("base", contains=0.1), result("base + retrieval", contains=0.6)]
    assert plan_held({"retrieval": True}, results) == [c.text for c in plan_checks({"retrieval": True}, results)]


def test_plan_held_asks_for_the_variants_it_needs():
    assert "base variant" in plan_held({"retrieval": True}, [result("a")])[0]
    assert "no variant that tests" in plan_held({"retrieval": True, "finetune": "none"}, [result("base")])[0]
