"""`tunewise train`, `jobs` and `adapters` from the command line, on the tiny model."""

import json
import subprocess
from dataclasses import fields

import pytest

from assistant.services.workspace import Workspace
from tests.snips import snips_chat_jsonl
from trainers.config import JobSpec, TrainingConfig
from trainers.jobs import JobBoard, JobStore
from ui.cli import main

PROFILE = {"task": "Extract order fields", "gap": "behaviour", "examples": 300, "vram_gb": 16, "model_size_b": 8}


def files_under(folder) -> set:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.fixture
def launches(monkeypatch) -> list:
    """Every job process started (the launcher records it and runs `true` instead of training)."""
    started = []

    def launcher(job_dir, resume, board):
        started.append(job_dir)
        return subprocess.Popen(["true"])

    monkeypatch.setattr("trainers.jobs.launch_process", launcher)
    return started


def queued_job(workspace: Workspace, project: str) -> tuple[JobStore, str]:
    """A job first in line on the machine's board, with nothing running: only an explicit step may start it."""
    workspace.ensure(project)
    store = JobStore(workspace.project(project).path / "jobs", JobBoard(workspace.machine_dir / "training-queue"))
    job = store.create(JobSpec.of("train.jsonl"))
    store.board.add(store.path(job))
    return store, job


def test_listing_adapters_or_jobs_of_an_unknown_project_is_an_error_and_creates_nothing(tmp_path, capsys):
    workspace = Workspace(tmp_path / "ws")
    workspace.ensure("p")
    for command in (["adapters", "list"], ["jobs", "list"], ["jobs"]):
        assert main([*command, "--project", "typo", "--workspace", str(tmp_path / "ws")]) == 2
        assert "there is no project named 'typo'" in capsys.readouterr().err
    assert workspace.list_projects() == ["p"] and not workspace.project("typo").path.exists()


def test_listing_jobs_and_adapters_starts_no_queued_job(tmp_path, capsys, launches):
    store, job = queued_job(Workspace(tmp_path / "ws"), "p")
    for command in (["jobs", "list"], ["jobs"], ["adapters", "list"]):
        assert main([*command, "--project", "p", "--workspace", str(tmp_path / "ws")]) == 0
    assert capsys.readouterr().out.split()[:2] == [job, "queued"]
    assert launches == [] and store.status(job).status == "queued"


def test_jobs_wait_is_the_explicit_step_that_starts_a_queued_job(tmp_path, capsys, launches):
    store, job = queued_job(Workspace(tmp_path / "ws"), "p")
    assert main(["jobs", "wait", job, "--project", "p", "--workspace", str(tmp_path / "ws")]) == 2
    assert launches == [store.path(job)]  # started, then it ended without a word: the fake process trains nothing
    assert "ended unexpectedly" in capsys.readouterr().err


def test_train_dry_run_prints_settings_reasons_and_estimate_and_starts_nothing(tmp_path, capsys, launches):
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps(PROFILE))
    ws = ["--workspace", str(tmp_path / "ws")]
    assert main(["advise", "--profile", str(profile), "--project", "orders", *ws]) == 0
    data = tmp_path / "train.jsonl"
    data.write_text(snips_chat_jsonl("train", limit=40, seed=2))
    capsys.readouterr()
    before = files_under(tmp_path / "ws")

    assert main(["train", "--data", str(data), "--dry-run", "--json", "--project", "orders", *ws]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"config", "reasons", "estimate"}
    assert set(out["config"]) == {f.name for f in fields(TrainingConfig)}
    assert TrainingConfig.from_dict(out["config"]).lora_r == 8
    assert {"model", "method", "lora_r", "lora_alpha", "learning_rate", "epochs"} <= set(out["reasons"])
    assert set(out["reasons"]) <= set(out["config"]) and all(out["reasons"].values())
    assert {"device", "method", "examples", "tokens", "steps", "memory_gb", "fits", "seconds"} <= set(out["estimate"])
    assert out["estimate"]["examples"] == 36  # 40, less the held-out tenth
    assert files_under(tmp_path / "ws") == before and launches == []  # no dataset, no job folder, no process

    assert main(["train", "--data", str(data), "--dry-run", "--json", "--project", "new", *ws]) == 0
    assert json.loads(capsys.readouterr().out)["reasons"]["method"].startswith("No plan yet")
    assert not Workspace(tmp_path / "ws").exists("new")
    assert main(["train", "--data", str(data), "--json", *ws]) == 2  # --json is the dry run's
    assert files_under(tmp_path / "ws") == before and launches == []


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
    assert main(["adapters", "list", *ws]) == 0  # the follow loop registered the adapter
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


@pytest.mark.parametrize("name", ["ia3", "prompt_tuning", "full"])
def test_train_dry_run_takes_any_method_with_its_own_learning_rate_and_reason(name, tmp_path, capsys, launches):
    from trainers.methods import method

    data = tmp_path / "train.jsonl"
    data.write_text(snips_chat_jsonl("train", limit=20, seed=2))
    assert main(["train", "--data", str(data), "--method", name, "--dry-run", "--json",
                 "--workspace", str(tmp_path / "ws")]) == 0
    out = json.loads(capsys.readouterr().out)
    entry = method(name)
    assert (out["config"]["method"], out["config"]["learning_rate"]) == (name, entry.learning_rate)
    assert entry.learning_rate_reason in out["reasons"]["learning_rate"]
    assert out["estimate"]["method"] == name and launches == []
