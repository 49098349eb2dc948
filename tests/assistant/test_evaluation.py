"""`tunewise eval` on Snips: the base and a trained adapter through the same held-out cases."""

import json

import pytest

from tests.snips import snips_chat_jsonl
from ui.cli import main


@pytest.mark.slow
def test_eval_compares_base_and_adapter_and_writes_the_report(tiny_model_path, tmp_path, capsys):
    ws = ["--workspace", str(tmp_path / "ws"), "--project", "snips"]
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    train.write_text(snips_chat_jsonl("train", limit=80, seed=0))
    test.write_text(snips_chat_jsonl("test", limit=6, seed=0))
    assert main(["train", "--data", str(train), "--model", str(tiny_model_path), "--max-steps", "6", "--batch-size",
                 "4", "--max-length", "96", "--name", "snips-v1", "--device", "cpu", *ws]) == 0
    capsys.readouterr()
    assert main(["eval", "--data", str(test), "--max-new-tokens", "24", "--device", "cpu", "--json", *ws]) == 0
    report = json.loads(capsys.readouterr().out)
    # The project's prepared training examples give the cheaper option, base + few-shot, by default.
    assert report["cases"] == 6
    assert [r["variant"] for r in report["results"]] == ["base", "base + few-shot", "snips-v1"]
    assert all(len(shown) == 4 for shown in report["results"][1]["shots"])
    for result in report["results"]:
        assert {"exact_match", "json_valid", "field_accuracy", "latency_p50_s"} <= set(result["metrics"])
        assert len(result["answers"]) == 6
    folder = tmp_path / "ws" / "projects" / "snips" / "evals" / report["eval_id"]
    assert (folder / "report.json").exists() and "| snips-v1 |" in (folder / "report.md").read_text()


def test_chat_and_eval_show_k_of_the_given_examples(tiny_model_path, tmp_path, capsys):
    ws = ["--workspace", str(tmp_path / "ws"), "--model", str(tiny_model_path), "--device", "cpu"]
    examples, test = tmp_path / "examples.jsonl", tmp_path / "test.jsonl"
    examples.write_text(snips_chat_jsonl("train", limit=40, seed=0))
    test.write_text(snips_chat_jsonl("test", limit=2, seed=0))
    assert main(["chat", "Play some jazz", "--few-shot", "2", "--examples", str(examples), "--max-new-tokens", "4",
                 "--json", *ws]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["variant"] == "base + few-shot" and len(answer["few_shot_examples"]) == 2
    assert main(["projects", "create", "default", "--workspace", str(tmp_path / "ws")]) == 0
    capsys.readouterr()
    assert main(["eval", "--data", str(test), "--few-shot", "3", "--examples", str(examples), "--adapters", "none",
                 "--max-new-tokens", "4", "--json", *ws]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["variant"] for r in report["results"]] == ["base", "base + few-shot"]
    assert [len(shown) for shown in report["results"][1]["shots"]] == [3, 3]
    assert main(["eval", "--data", str(test), "--few-shot", "0", "--examples", str(examples), "--adapters", "none",
                 "--max-new-tokens", "4", "--general", "--json", *ws]) == 0
    [base] = json.loads(capsys.readouterr().out)["results"]
    assert base["variant"] == "base"
    # The forgetting probe: general text's loss and general questions' accuracy, each with n and an interval.
    metrics = base["metrics"]
    assert metrics["general_loss"] > 0 and metrics["general_n"] >= 200
    assert metrics["general_loss_interval"][0] <= metrics["general_loss"] <= metrics["general_loss_interval"][1]
    assert 0 <= metrics["general_accuracy"] <= 1


def test_eval_names_missing_adapters_and_a_missing_project(tmp_path, capsys):
    data = tmp_path / "t.jsonl"
    data.write_text(snips_chat_jsonl("test", limit=2))
    ws = ["--workspace", str(tmp_path / "ws")]
    assert main(["eval", "--data", str(data), "--adapters", "ghost", *ws]) == 2
    assert "there is no project named 'default'" in capsys.readouterr().err  # a read does not create it
    assert main(["projects", "create", "default", *ws]) == 0
    assert main(["eval", "--data", str(data), "--adapters", "ghost", *ws]) == 2
    assert "ghost" in capsys.readouterr().err


def test_gap_check_measures_the_base_and_updates_the_plan(tiny_model_path, tmp_path, capsys):
    ws = ["--workspace", str(tmp_path / "ws"), "--project", "g"]
    from assistant.services.advisor import Advisor
    from assistant.services.workspace import Workspace

    advisor = Advisor(Workspace(tmp_path / "ws"))
    for answer in ["Snips to JSON", "knowledge", "no", "500", "yes", "rarely", "24 GB", "1B", "no", "1"]:
        advisor.turn("g", answer)
    assert advisor.plan("g")["finetune"] == "none"
    data = tmp_path / "t.jsonl"
    data.write_text(snips_chat_jsonl("test", limit=3, seed=0))
    capsys.readouterr()
    assert main(["gap-check", "--data", str(data), "--model", str(tiny_model_path), "--max-new-tokens", "16",
                 "--device", "cpu", *ws]) == 0
    out = capsys.readouterr().out
    assert "valid JSON" in out and "measured gap 'behaviour'" in out
    assert advisor.plan("g")["finetune"] != "none"
    assert Workspace(tmp_path / "ws").load("g")["gap_check"]["gap"] == "behaviour"


def _report(cases=100):
    from assistant.services.evaluation import EvalReport, VariantResult

    shares = {"examples": cases, "exact_match": 0.0, "json_valid": 0.0, "field_accuracy": 0.0}
    return EvalReport("e1", "held-out.jsonl", cases, [
        VariantResult("base", shares | {"contains_reference": 0.1, "latency_p50_s": 0.123456,
                                        "first_token_p50_s": None, "citation_rate": None}),
        VariantResult("base + retrieval", shares | {"contains_reference": 0.62, "latency_p50_s": 1.98765,
                                                    "first_token_p50_s": None, "citation_rate": 0.5})])


def test_the_markdown_report_shows_n_and_95_intervals_rounded_to_two_decimals():
    lines = _report().markdown().splitlines()
    header = lines[4].split(" | ")
    assert header[:3] == ["| variant", "n", "exact_match"] and "95% Wilson interval" in lines[2]
    retrieval = dict(zip(header, lines[7].split(" | "), strict=True))
    assert retrieval["n"] == "100" and retrieval["contains_reference"] == "0.62 [0.52, 0.71]"
    assert retrieval["citation_rate"] == "0.50 [0.40, 0.60]" and retrieval["latency_p50_s"] == "1.99"
    base = dict(zip(header, lines[6].split(" | "), strict=True))
    assert base["citation_rate"] == "" and base["latency_p50_s"] == "0.12"


def test_record_outcome_saves_the_sentences_and_the_checks_behind_them(tmp_path):
    from assistant.services.evaluation import record_outcome
    from assistant.services.workspace import Workspace

    workspace = Workspace(tmp_path / "ws")
    workspace.ensure("p")
    workspace.update("p", lambda data: {"plan": {"retrieval": True, "finetune": "none"}})
    lines = record_outcome(workspace, "p", _report())
    outcome = workspace.load("p")["outcome"]
    assert lines == outcome["lines"] == ["Retrieval: held (n=100): contains-reference 0.10 [0.06, 0.17] -> "
                                         "0.62 [0.52, 0.71]."]
    [check] = outcome["checks"]
    assert check["verdict"] == "held" and check["metric"] == "contains_reference" and check["n"] == 100
    assert check["planned"] == 0.62 and check["planned_interval"] == pytest.approx([0.5221, 0.7090], abs=1e-4)
    assert check["text"] == lines[0] and outcome["eval_id"] == "e1"

    record_outcome(workspace, "p", _report(cases=3))
    assert workspace.load("p")["outcome"]["checks"][0]["verdict"] == "not enough evidence"


class _TimedModel:
    """Answers like a VariantModel, taking a known time for each call."""

    def __init__(self, seconds: float):
        self.seconds, self.calls = seconds, []

    def answer_batch(self, variant, conversations, generation, search, batch_size):
        import time

        self.calls.append((variant, conversations, batch_size))
        time.sleep(self.seconds)
        return []


def test_answer_times_estimate_from_one_answer_then_from_the_last_run():
    from assistant.runtime.variants import Variant
    from assistant.services.evaluation import AnswerTimes, EvalCase

    times = AnswerTimes()
    unknown = times.estimate("tiny", cases=3, variants=2)
    assert unknown.answers == 6 and unknown.per_answer is None and unknown.seconds is None

    model = _TimedModel(0.01)
    case = EvalCase(({"role": "user", "content": "hi"},), "hello")
    measured = times.measure_one("tiny", model, Variant(), case)
    assert measured.basis == AnswerTimes.ONE_ANSWER and measured.seconds >= 0.01
    assert model.calls == [(Variant(), [[{"role": "user", "content": "hi"}]], 1)]  # one answer, alone
    assert times.estimate("tiny", 3, 2).seconds == pytest.approx(6 * measured.seconds)
    assert times.get("other") is None  # by model name

    recorded = times.record_run("tiny", _report())
    assert recorded.basis == AnswerTimes.LAST_EVALUATION
    assert recorded.seconds == pytest.approx((0.123456 + 1.98765) / 2)  # the median of the variants' medians
    assert times.estimate("tiny", 10, 1).per_answer == recorded


def test_a_run_without_latencies_keeps_the_time_already_known():
    from assistant.services.evaluation import AnswerTimes, EvalReport, VariantResult

    times = AnswerTimes()
    assert times.record_run("tiny", EvalReport("e", "d", 0, [VariantResult("base", {"latency_p50_s": None})])) is None
    assert times.get("tiny") is None


# --- without a file, an evaluation runs the project's latest prepared held-out split --------------

def _chat(question: str, answer: str) -> str:
    return json.dumps({"messages": [{"role": "user", "content": question},
                                    {"role": "assistant", "content": answer}]}) + "\n"


def test_the_latest_prepared_held_out_split_is_the_default_data(tmp_path):
    import os

    from assistant.services.behaviour import Behaviour
    from assistant.services.evaluation import project_held_out
    from assistant.services.workspace import Workspace

    behaviour = Behaviour(Workspace(tmp_path), "p", create=True)
    train = "".join(_chat(f"q{i}", f"a{i}") for i in range(6))
    older = behaviour.prepare("t.jsonl", train, "e.jsonl", _chat("old?", "old"))
    newer = behaviour.prepare("t.jsonl", train, "e.jsonl", "".join(_chat(f"new {i}?", f"n{i}") for i in range(3)))
    os.utime(older.path / "report.json", ns=(0, 0))  # the ids may share a second: the report's time orders them
    data = project_held_out(behaviour)
    assert [c.reference for c in data.cases] == ["n0", "n1", "n2"]
    assert data.description == f"held-out split of {newer.dataset_id}, 3 cases"
    assert data.data_name == f"datasets/{newer.dataset_id}/eval.jsonl"
    limited = project_held_out(behaviour, limit=2)
    assert limited.description == f"held-out split of {newer.dataset_id}, 2 cases (of 3)"


def test_a_prepared_dataset_without_held_out_cases_is_skipped(tmp_path):
    from dataclasses import replace

    from assistant.services.behaviour import Behaviour, check_examples
    from assistant.services.evaluation import project_held_out
    from assistant.services.workspace import Workspace

    behaviour = Behaviour(Workspace(tmp_path), "p", create=True)
    train = "".join(_chat(f"q{i}", f"a{i}") for i in range(6))
    kept = behaviour.prepare("t.jsonl", train, "e.jsonl", _chat("kept?", "kept"))
    checked = check_examples("t.jsonl", train)
    empty = behaviour.keep(replace(checked, eval=[]), "t.jsonl", train)
    assert behaviour.latest_held_out().dataset_id == kept.dataset_id != empty.dataset_id
    assert [c.reference for c in project_held_out(behaviour).cases] == ["kept"]


def test_a_project_without_a_held_out_split_says_what_to_do(tmp_path):
    from assistant.services.behaviour import Behaviour
    from assistant.services.evaluation import NoHeldOutSplitError, project_held_out
    from assistant.services.workspace import Workspace
    from ui.errors import explain

    behaviour = Behaviour(Workspace(tmp_path), "p", create=True)
    assert behaviour.latest_held_out() is None
    with pytest.raises(NoHeldOutSplitError) as refused:
        project_held_out(behaviour)
    assert explain(refused.value) == ("project 'p' has no held-out split yet. Prepare examples in the Behaviour "
                                      "tab (it sets some aside for evaluation), or upload a file of held-out examples.")
