"""`tunewise eval` on Snips: the base and a trained adapter through the same held-out cases."""

import json

from assistant.cli import main
from tests.snips import snips_chat_jsonl


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
    assert report["cases"] == 6 and [r["variant"] for r in report["results"]] == ["base", "snips-v1"]
    for result in report["results"]:
        assert {"exact_match", "json_valid", "field_accuracy", "latency_p50_s"} <= set(result["metrics"])
        assert len(result["answers"]) == 6
    folder = tmp_path / "ws" / "projects" / "snips" / "evals" / report["eval_id"]
    assert (folder / "report.json").exists() and "| snips-v1 |" in (folder / "report.md").read_text()


def test_eval_names_missing_adapters(tmp_path, capsys):
    data = tmp_path / "t.jsonl"
    data.write_text(snips_chat_jsonl("test", limit=2))
    assert main(["eval", "--data", str(data), "--adapters", "ghost", "--workspace", str(tmp_path / "ws")]) == 2
    assert "ghost" in capsys.readouterr().err


def test_gap_check_measures_the_base_and_updates_the_plan(tiny_model_path, tmp_path, capsys):
    ws = ["--workspace", str(tmp_path / "ws"), "--project", "g"]
    from assistant.advisor import Advisor
    from assistant.workspace import Workspace

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
