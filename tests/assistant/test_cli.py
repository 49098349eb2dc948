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


def test_advise_with_a_project_saves_profile_and_plan_as_the_apps_interview_does(tmp_path, capsys, monkeypatch):
    from assistant.services.advisor import Advisor
    from assistant.services.workspace import Workspace

    monkeypatch.chdir(tmp_path)
    assert main(["advise", "--profile", write(tmp_path, PROFILE), "--json"]) == 0
    assert not (tmp_path / "tunewise-data").exists()  # no --project: the plan is printed, nothing is saved
    ws = ["--workspace", str(tmp_path / "ws")]
    assert main(["advise", "--profile", write(tmp_path, PROFILE), "--project", "tickets", *ws]) == 0
    workspace = Workspace(tmp_path / "ws")
    saved = workspace.load("tickets")
    as_json = lambda data: json.loads(json.dumps(data))  # noqa: E731
    assert saved["plan"] == as_json(decide(TaskProfile.from_dict(PROFILE)).to_dict())
    assert saved["profile"] == PROFILE | {"prompting_enough": False}  # measured later, by the gap check
    advisor = Advisor(workspace)  # what the app's interview and plan card read
    assert advisor.state("tickets").done and as_json(advisor.plan("tickets")) == saved["plan"]


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


def test_eval_retrieval_without_a_file_uses_the_projects_saved_questions(tmp_path, capsys):
    from tests.assistant.test_eval_questions import LEAVE

    ws = ["--workspace", str(tmp_path / "ws")]
    (tmp_path / "leave.md").write_text(LEAVE)
    assert main(["ingest", str(tmp_path / "leave.md"), *ws]) == 0
    assert main(["eval-retrieval", *ws]) == 2
    err = capsys.readouterr().err
    assert "project 'default' has no saved questions" in err and "tunewise questions make" in err

    reviewed = tmp_path / "reviewed.jsonl"
    start = LEAVE.index("Staff get")
    reviewed.write_text(json.dumps({"question": "How many days of paid leave do staff get?", "source": "leave.md",
                                    "spans": [[start, start + 40]]}) + "\n")
    assert main(["questions", "save", str(reviewed), *ws]) == 0
    assert "tunewise eval-retrieval" in capsys.readouterr().out
    assert main(["eval-retrieval", "--mode", "bm25", "--json", *ws]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["questions"] == 1 and scores["recall@1"] == 1.0


def test_questions_make_writes_the_usable_drafts_the_evaluator_reads(tmp_path, capsys, monkeypatch, tiny_model_path):
    """The tiny model is loaded as asked, but its random weights seldom write a usable question, so
    the replies are scripted: the first is not a question, the others are."""
    import assistant.runtime.generation
    from retrieval.evaluate import read_questions
    from tests.assistant.test_eval_questions import EXPENSES, LEAVE

    def scripted(loaded, conversations, generation=None, *, adapter, batch_size=8):
        replies = ["The leave policy"] + [f"Which rule number {i} applies to staff trips?"
                                          for i in range(1, len(conversations))]
        return [(reply, 8, 0.1) for reply in replies]

    monkeypatch.setattr(assistant.runtime.generation, "generate_batch", scripted)
    ws = ["--workspace", str(tmp_path / "ws")]
    for name, text in (("leave.md", LEAVE), ("expenses.md", EXPENSES)):
        (tmp_path / name).write_text(text)
    assert main(["ingest", str(tmp_path / "leave.md"), str(tmp_path / "expenses.md"), *ws]) == 0
    capsys.readouterr()
    out = tmp_path / "drafts.jsonl"
    assert main(["questions", "make", "--count", "3", "--model", str(tiny_model_path), "--device", "cpu",
                 "--out", str(out), *ws]) == 0
    said = capsys.readouterr().out
    assert f"2 of 3 passages gave a usable question; wrote them to {out}" in said
    assert f"tunewise eval-retrieval {out}" in said and f"tunewise questions save {out}" in said
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["question"] for line in lines] == ["Which rule number 1 applies to staff trips?",
                                                    "Which rule number 2 applies to staff trips?"]
    assert all(set(line) == {"question", "source", "spans", "passage"} for line in lines)
    golds = read_questions(str(out))
    assert [(g.question, g.source, [list(s) for s in g.spans]) for g in golds] == [
        (line["question"], line["source"], line["spans"]) for line in lines]


def test_eval_retrieval_finds_quoted_passages_and_scores_with_and_without_rerank(tmp_path, capsys):
    ws = ["--workspace", str(tmp_path / "ws")]
    manual = tmp_path / "manual.md"
    manual.write_text("# Valgrind\n\n## Memcheck\n\nMemcheck reports reads of memory after it was freed.\n\n"
                      "## Massif\n\nMassif measures how much heap memory your program uses over time.\n")
    assert main(["ingest", str(manual), *ws]) == 0
    questions = tmp_path / "questions.jsonl"
    questions.write_text(json.dumps({"question": "Which tool shows heap use over time?", "source": "manual.md",
                                     "quote": "Massif measures how much heap   memory"}) + "\n")
    capsys.readouterr()
    assert main(["eval-retrieval", str(questions), "--mode", "bm25", "--rerank", "sentences", "--json", *ws]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["mode"] for row in rows] == ["bm25", "bm25 + rerank sentences"]
    assert all(row["recall@1"] == 1.0 and row["span_recall@5"] == 1.0 for row in rows)
    questions.write_text(json.dumps({"question": "q?", "source": "manual.md", "quote": "not in the manual"}) + "\n")
    assert main(["eval-retrieval", str(questions), *ws]) == 2
    assert "does not contain the quote" in capsys.readouterr().err


# --- serve: what its web users may reach ----------------------------------------------------------


@pytest.fixture
def started(monkeypatch, tmp_path):
    """``tunewise serve`` up to the point it would start the server: the keyword arguments it passes."""
    import ui.app

    calls = []
    monkeypatch.setattr(ui.app, "serve", lambda **kwargs: calls.append(kwargs))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # restored after the test: serve sets it in this process
    for name in ("TUNEWISE_JUDGE_URL", "TUNEWISE_JUDGE_NAME", "TUNEWISE_JUDGE_KEY"):
        monkeypatch.delenv(name, raising=False)

    def serve(*flags: str) -> dict | int:
        code = main(["serve", "--workspace", str(tmp_path / "ws"), *flags])
        return calls.pop() if code == 0 else code
    return serve


def test_serve_passes_the_operators_judges_and_model_folders_and_goes_offline(started, tmp_path):
    import os

    models = tmp_path / "models"
    models.mkdir()
    kwargs = started("--judge-url", "http://127.0.0.1:8000/v1", "--judge-name", "qwen", "--judge-key", "k1",
                     "--judge-url", "https://judge.example.com/v1/", "--judge-name", "gpt", "--judge-key", "",
                     "--model-dir", str(models))
    policy = kwargs["policy"]
    assert [(e.label, e.url, e.api_key, e.allow_private) for e in policy.judge_endpoints] == [
        ("qwen", "http://127.0.0.1:8000/v1", "k1", True),  # named loopback: the operator means this machine
        ("gpt", "https://judge.example.com/v1", None, False)]
    assert policy.model_dirs == (models,) and not policy.allow_private_judge
    assert os.environ["HF_HUB_OFFLINE"] == "1"  # nothing a web user picks can download weights


def test_serve_can_leave_the_hub_online_and_reads_one_judge_from_the_environment(started, monkeypatch):
    import os

    monkeypatch.setenv("TUNEWISE_JUDGE_URL", "http://10.0.0.5:8000/v1")
    monkeypatch.setenv("TUNEWISE_JUDGE_NAME", "big")
    monkeypatch.setenv("TUNEWISE_JUDGE_KEY", "secret")
    policy = started("--allow-downloads", "--allow-private-judge")["policy"]
    assert [(e.label, e.url, e.api_key) for e in policy.judge_endpoints] == [("big", "http://10.0.0.5:8000/v1",
                                                                              "secret")]
    assert policy.allow_private_judge and policy.allow_downloads
    assert os.environ["HF_HUB_OFFLINE"] == "0"


SERVE_REFUSALS = {
    "a url without a model": (["--judge-url", "http://127.0.0.1:8000/v1"], "--judge-name"),
    "a query": (["--judge-url", "http://127.0.0.1:8000/admin?", "--judge-name", "m"], "query"),
    "user info": (["--judge-url", "http://u:p@judge.example.com/v1", "--judge-name", "m"], "user name"),
    "a private address": (["--judge-url", "http://10.0.0.5:8000/v1", "--judge-name", "m"], "--allow-private-judge"),
    "link-local metadata": (["--judge-url", "http://169.254.169.254/v1", "--judge-name", "m"], "private"),
    "a model dir that is no folder": (["--model-dir", "/no/such/models"], "--model-dir"),
}


@pytest.mark.parametrize(("flags", "message"), SERVE_REFUSALS.values(), ids=SERVE_REFUSALS.keys())
def test_serve_refuses_judges_and_model_folders_it_cannot_offer(started, capsys, flags, message):
    assert started(*flags) == 2
    assert message in capsys.readouterr().err


def test_the_judge_command_is_free_to_call_the_operators_machine_but_checks_the_urls_shape(tmp_path, capsys):
    ws = ["--workspace", str(tmp_path / "ws")]
    assert main(["projects", "create", "default", *ws]) == 0
    assert main(["judge", "--judge-url", "http://127.0.0.1:9/v1?x=", "--judge-name", "m", *ws]) == 2
    assert "query" in capsys.readouterr().err
    # A loopback judge with no votes to judge: accepted, and nothing to ask it.
    assert main(["judge", "--judge-url", "http://127.0.0.1:9/v1", "--judge-name", "m", *ws]) == 0
    assert "No blind votes yet" in capsys.readouterr().out
