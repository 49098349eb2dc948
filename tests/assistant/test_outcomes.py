"""Reading measurements: what the gap is, and whether the plan held."""

import pytest

from assistant.outcomes import diagnose_gap, plan_held


def result(variant, exact=0.0, contains=0.0, valid=0.0, fields=0.0):
    return {"variant": variant, "metrics": {"exact_match": exact, "contains_reference": contains,
                                            "json_valid": valid, "field_accuracy": fields}}


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


def test_diagnose_needs_the_base():
    with pytest.raises(ValueError):
        diagnose_gap([result("json")], True)


def test_plan_held_reports_numbers_and_verdicts():
    plan = {"retrieval": True, "finetune": "lora"}
    lines = plan_held(plan, [result("base", valid=0.0, contains=0.1), result("base + retrieval", contains=0.4),
                             result("snips-v1", valid=0.99, fields=0.25)])
    assert lines[0] == "Retrieval (held): contains-reference 0.10 -> 0.40."
    assert lines[1].startswith("Fine-tuning (held, adapter snips-v1): JSON validity 0.00 -> 0.99")
    failed = plan_held({"retrieval": False, "finetune": "lora"}, [result("base", valid=0.5), result("a", valid=0.4)])
    assert "did not hold" in failed[0]
