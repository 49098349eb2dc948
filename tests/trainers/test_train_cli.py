"""`tunewise train`, `jobs` and `adapters` from the command line, on the tiny model."""

import pytest

from tests.snips import snips_chat_jsonl
from ui.cli import main


@pytest.mark.slow
def test_train_follows_the_job_and_registers_the_adapter(tiny_model_path, tmp_path, capsys):
    data = tmp_path / "train.jsonl"
    data.write_text(snips_chat_jsonl("train", limit=60, seed=3) + "{broken\n")
    ws = ["--workspace", str(tmp_path / "ws"), "--project", "cli"]
    code = main(["train", "--data", str(data), "--model", str(tiny_model_path), "--max-steps", "4",
                 "--batch-size", "4", "--max-length", "96", "--name", "first", "--device", "cpu", *ws])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "60 of 61 records valid" in out and "excluded line 61: invalid_json" in out
    assert "step 4/4" in out and "completed" in out
    assert main(["adapters", "list", *ws]) == 0
    assert capsys.readouterr().out.startswith("first  lora")
    assert main(["jobs", *ws]) == 0
    assert "completed" in capsys.readouterr().out
    assert main(["adapters", "rename", "first", "second", *ws]) == 0
    assert main(["adapters", "export", "second", str(tmp_path / "merged"), *ws]) == 0
    assert (tmp_path / "merged" / "model.safetensors").exists()


def test_train_refuses_a_file_without_valid_examples(tmp_path, capsys):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"foo": 1}\n')
    assert main(["train", "--data", str(data), "--workspace", str(tmp_path / "ws")]) == 2
    err = capsys.readouterr().err
    assert "no valid examples" in err and "line 1: unknown_format" in err
