"""Projects on disk: create, switch, rename, delete; atomic writes; safe names."""

import json
import os
import threading

import pytest

from assistant.services.advisor import Advisor
from assistant.services.workspace import Workspace, WorkspaceError, resolve_workspace
from trainers.atomic_files import write_json_atomic


def test_workspace_location_flag_then_env_then_default(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEWISE_WORKSPACE", str(tmp_path / "from-env"))
    assert resolve_workspace(tmp_path / "flag") == (tmp_path / "flag").resolve()
    assert resolve_workspace() == (tmp_path / "from-env").resolve()
    monkeypatch.delenv("TUNEWISE_WORKSPACE")
    monkeypatch.chdir(tmp_path)
    assert resolve_workspace() == (tmp_path / "tunewise-data").resolve()


def test_create_list_rename_delete(tmp_path):
    ws = Workspace(tmp_path)
    ws.create("alpha")
    ws.create("beta")
    assert ws.list_projects() == ["alpha", "beta"]
    ws.rename("alpha", "gamma")
    assert ws.list_projects() == ["beta", "gamma"]
    assert ws.load("gamma")["name"] == "gamma"
    ws.delete("beta")
    assert ws.list_projects() == ["gamma"]
    assert not (tmp_path / "projects" / "beta").exists()


@pytest.mark.parametrize("op", [
    lambda ws: ws.create("alpha"), lambda ws: ws.rename("alpha", "beta"),
    lambda ws: ws.rename("nope", "x"), lambda ws: ws.delete("nope"), lambda ws: ws.load("nope"),
])
def test_impossible_operations_say_why_and_change_nothing(tmp_path, op):
    ws = Workspace(tmp_path)
    ws.create("alpha")
    ws.create("beta")
    before = sorted(p.name for p in (tmp_path / "projects").iterdir())
    with pytest.raises(WorkspaceError):
        op(ws)
    assert sorted(p.name for p in (tmp_path / "projects").iterdir()) == before


@pytest.mark.parametrize("name", ["", "../evil", "a/b", ".hidden", "x" * 65, "bad name", None, ".."])
def test_unsafe_project_names_are_refused(tmp_path, name):
    with pytest.raises(WorkspaceError, match="not a valid project name"):
        Workspace(tmp_path).create(name)


def test_atomic_write_leaves_no_temporary_files_and_replaces_whole(tmp_path):
    target = tmp_path / "p.json"
    write_json_atomic(target, {"a": 1}, sort_keys=True)
    write_json_atomic(target, {"b": 2}, sort_keys=True)
    assert json.loads(target.read_text()) == {"b": 2}
    assert os.listdir(tmp_path) == ["p.json"]


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "p.json"
    write_json_atomic(target, {"a": 1}, sort_keys=True)
    with pytest.raises(TypeError):
        write_json_atomic(target, {"not json": object()}, sort_keys=True)
    assert json.loads(target.read_text()) == {"a": 1}
    assert os.listdir(tmp_path) == ["p.json"]


def test_interview_survives_a_restart_of_the_app(tmp_path):
    Advisor(Workspace(tmp_path)).turn("p1", "Summarise contracts")
    Advisor(Workspace(tmp_path)).turn("p1", "behaviour")
    reopened = Advisor(Workspace(tmp_path))
    state = reopened.state("p1")
    assert state.answers == {"task": "Summarise contracts", "gap": "behaviour"}
    saved = Workspace(tmp_path).load("p1")
    assert saved["profile"]["gap"] == "behaviour" and "decision" in saved["plan"]


def test_projects_keep_separate_interviews(tmp_path):
    advisor = Advisor(Workspace(tmp_path))
    advisor.turn("a", "Answer HR questions")
    advisor.turn("b", "Write SQL")
    assert advisor.state("a").answers["task"] == "Answer HR questions"
    assert advisor.state("b").answers["task"] == "Write SQL"


def test_concurrent_turns_on_one_project_lose_nothing(tmp_path):
    advisor = Advisor(Workspace(tmp_path))
    advisor.turn("p", "Classify tickets")
    errors = []

    def answer(text):
        try:
            advisor.turn("p", text)
        except Exception as error:  # pragma: no cover - recorded for the assertion
            errors.append(error)

    threads = [threading.Thread(target=answer, args=(t,)) for t in ("behaviour", "no", "300", "yes")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    state = advisor.state("p")
    assert len(state.answers) == 5 and len(state.transcript) == 1 + 2 * 5


def test_a_profile_form_applies_only_changed_fields(tmp_path):
    advisor = Advisor(Workspace(tmp_path))
    advisor.turn("p", "Classify tickets")
    form = advisor.state("p").profile().to_dict() | {"vram_gb": "RTX 3060", "examples": 400.0}
    state = advisor.edit("p", form)
    assert state.answers == {"task": "Classify tickets", "vram_gb": 12.0, "examples": 400}


def _add_marks(root, project: str, writer: int, count: int) -> None:
    """One writer process: ``count`` read-change-write updates, each adding one mark."""
    from assistant.services.workspace import Workspace

    workspace = Workspace(root)
    for i in range(count):
        workspace.update(project, lambda data, i=i: data | {"marks": data.get("marks", []) + [f"{writer}-{i}"]})


def test_concurrent_updates_from_threads_and_processes_lose_nothing(tmp_path):
    import multiprocessing
    import threading

    from assistant.services.workspace import Workspace

    workspace = Workspace(tmp_path)
    workspace.create("p")
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_add_marks, args=(tmp_path, "p", w, 25)) for w in range(3)]
    threads = [threading.Thread(target=_add_marks, args=(tmp_path, "p", w, 25)) for w in range(3, 6)]
    for worker in processes + threads:
        worker.start()
    for worker in processes + threads:
        worker.join(timeout=120)
    marks = workspace.load("p")["marks"]
    assert len(marks) == len(set(marks)) == 6 * 25


def test_update_is_the_one_writer_and_nests_inside_the_project_lock(tmp_path):
    from assistant.services.workspace import Workspace

    workspace = Workspace(tmp_path)
    workspace.create("p")
    with workspace.locked("p"):  # a service holding the lock may update without deadlocking itself
        workspace.update("p", lambda data: data | {"plan": {"finetune": "lora"}})
    assert workspace.load("p") == {"name": "p", "plan": {"finetune": "lora"}}
    assert not hasattr(workspace, "save")


def test_a_delete_cut_short_leaves_nothing_that_blocks_the_next(tmp_path):
    from assistant.services.workspace import Workspace

    workspace = Workspace(tmp_path)
    workspace.create("p")
    leftover = tmp_path / "projects" / ".deleting-p"
    leftover.mkdir()
    (leftover / "half.bin").write_text("x")
    workspace.delete("p")  # the earlier leftover does not stand in the way
    assert not leftover.exists() and workspace.list_projects() == []
    (tmp_path / "projects" / ".deleting-q").mkdir()
    Workspace(tmp_path)  # opening the workspace clears what interrupted deletes left
    assert not (tmp_path / "projects" / ".deleting-q").exists()


def test_an_outcome_replaced_by_any_writer_is_kept_in_the_history(tmp_path):
    """record_outcome (evaluation.py) replaces the project's "outcome"; the one it replaces stays."""
    workspace = Workspace(tmp_path)
    workspace.ensure("p")
    first = {"eval_id": "20250601-101500-aaaa", "lines": ["held"], "checks": [{"verdict": "held", "n": 40}]}
    second = {"eval_id": "20250602-093000-bbbb", "lines": ["small"], "checks": [{"verdict": "x", "n": 10}]}
    workspace.update("p", lambda data: data | {"outcome": first})
    workspace.update("p", lambda data: data.update(outcome=second))  # in place, as a writer may
    workspace.update("p", lambda data: data | {"plan": {}})  # a write that leaves the outcome alone
    saved = workspace.load("p")
    assert saved["outcome"] == second and saved["outcome_history"] == [first]


def test_the_stamp_changes_with_every_write_and_not_on_reads(tmp_path):
    workspace = Workspace(tmp_path)
    assert workspace.stamp("p") == ""
    workspace.ensure("p")
    seen = {workspace.stamp("p")}
    for i in range(5):
        workspace.load("p")
        assert workspace.stamp("p") in seen
        workspace.update("p", lambda data, i=i: data | {"n": i})
        seen.add(workspace.stamp("p"))
    assert len(seen) == 6
