"""The command line: `tunewise advise`, `tunewise projects`, and a start path free of heavy imports."""

import json
import subprocess
import sys

import pytest

from assistant.core.profile import TaskProfile
from assistant.core.rules import decide
from ui.cli import main

PROFILE = {"task": "JSON tickets", "gap": "behaviour", "examples": 2500, "documents": False,
           "vram_gb": 24, "model_size_b": 8, "changes": "rarely", "can_measure": True,
           "latency_sensitive": False, "tasks": 1}


def write(tmp_path, data, name="profile.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def test_advise_prints_the_plan_as_json(tmp_path, capsys):
    assert main(["advise", "--profile", write(tmp_path, PROFILE), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan == json.loads(json.dumps(decide(TaskProfile.from_dict(PROFILE)).to_dict()))
    assert {"retrieval", "finetune", "flags", "model_size_b", "lora", "memory_gb", "reasons"} <= set(plan)
    assert plan["finetune"] == "lora"


def test_advise_without_json_prints_a_readable_plan(tmp_path, capsys):
    assert main(["advise", "--profile", write(tmp_path, PROFILE)]) == 0
    out = capsys.readouterr().out
    assert "## Plan:" in out and "| QLoRA (4-bit base)" in out


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    (json.dumps(PROFILE | {"examples": -4}), "examples must be"),
    (json.dumps(PROFILE | {"gpu": "4090"}), "unknown slots"),
    (json.dumps([1, 2]), "JSON object"),
])
def test_advise_rejects_bad_profiles_with_a_clear_error(tmp_path, capsys, content, message):
    assert main(["advise", "--profile", write(tmp_path, content)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_advise_reports_a_missing_file(tmp_path, capsys):
    assert main(["advise", "--profile", str(tmp_path / "missing.json")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_terminal_interview_with_a_retry(monkeypatch, capsys):
    answers = iter(["Answer HR questions", "knowledge", "yes", "-3", "40", "yes", "rarely",
                    "no gpu", "no preference", "no", "1"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(answers))
    assert main(["advise", "--json"]) == 0
    out = capsys.readouterr().out
    assert "cannot be negative" in out
    plan = json.loads(out[out.index("{\n"):])
    assert plan["retrieval"] is True and plan["finetune"] == "none"


def test_projects_commands(tmp_path, capsys):
    ws = ["--workspace", str(tmp_path)]
    assert main(["projects", "create", "alpha", *ws]) == 0
    assert main(["projects", "rename", "alpha", "beta", *ws]) == 0
    assert main(["projects", "list", *ws]) == 0
    assert capsys.readouterr().out.split() == ["beta"]
    assert main(["projects", "delete", "nope", *ws]) == 2
    assert "no project named" in capsys.readouterr().err


def test_the_decision_path_imports_no_heavy_library(tmp_path):
    """`tunewise advise` must start fast: no torch, transformers, gradio or chromadb on its path."""
    code = (
        "import sys; from ui.cli import main; "
        f"main(['advise', '--profile', {write(tmp_path, PROFILE)!r}, '--json']); "
        "heavy = [m for m in ('torch', 'transformers', 'gradio', 'chromadb', 'trl', 'peft') "
        "if m in sys.modules]; print(heavy, file=sys.stderr)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stderr.strip().splitlines()[-1] == "[]"
