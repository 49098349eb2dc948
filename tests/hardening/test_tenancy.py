"""With sign-in on, each user sees and changes only their own projects."""

import re

import pytest
from gradio_client import Client, handle_file

from assistant.services.workspace import Workspace, user_folder
from tests.ui.serving import launched
from ui.cli import main as cli_main

USERS = [("ana", "pw-ana"), ("bo", "pw-bo")]


def test_user_folders_are_safe_and_one_per_exact_name():
    names = ["ana", "Ana", "../../etc", "a/b", "a\\b", "", ".", "ü", "x" * 300, "ana "]
    folders = [user_folder(name) for name in names]
    assert len(set(folders)) == len(names)
    assert len({f.lower() for f in folders}) == len(names)  # apart on case-insensitive disks too
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,32}-[0-9a-f]{10}", f) for f in folders)
    assert user_folder("ana") == user_folder("ana")


def test_a_users_projects_live_apart_from_the_workspace_and_from_other_users(tmp_path):
    root = Workspace(tmp_path)
    ana, bo = root.for_user("ana"), root.for_user("bo")
    ana.create("secret")
    assert ana.list_projects() == ["secret"]
    assert bo.list_projects() == [] and root.list_projects() == []
    assert ana.root.parent == root.root / "users" and ana.owner == "ana"
    assert root.for_user(None) is root
    assert ana.machine_dir == bo.machine_dir == root.machine_dir  # one training queue for the machine
    with pytest.raises(Exception, match="already"):
        ana.for_user("bo")


@pytest.mark.filterwarnings("ignore:Unexpected argument")  # select events' data is left out here
def test_every_event_that_names_a_project_resolves_the_signed_in_user(tmp_path):
    """An event that reads the project name without the request would open the shared workspace."""
    from gradio.helpers import special_args

    from ui.app import build_app

    app = build_app(tmp_path / "ws")
    project_select = next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == "project-select")
    named_projects = [fn for fn in app.fns.values()
                      if fn.fn is not None and (project_select in fn.inputs or fn.api_name in ("interview", "plan",
                                                                                               "search"))]
    assert len(named_projects) >= 20
    sentinel = object()
    for fn in named_projects:
        inputs = [None] * len(fn.inputs)
        special_args(fn.fn, inputs, request=sentinel)
        assert sentinel in inputs, f"{fn.name} does not take the request"


@pytest.fixture
def signed_in_app(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-tmp"))
    from ui.app import build_app

    workspace = Workspace(tmp_path / "ws")
    workspace.create("shared-folder-project")
    with launched(build_app(workspace), auth=USERS) as url:
        yield url, workspace


def test_signed_in_users_never_reach_each_others_projects(signed_in_app, tmp_path, capsys):
    url, workspace = signed_in_app
    with pytest.raises(Exception):  # noqa: B017 (any refusal will do; the point is no access)
        Client(url, verbose=False).predict(project="shared-folder-project", api_name="/plan")
    ana = Client(url, auth=USERS[0], verbose=False)
    bo = Client(url, auth=USERS[1], verbose=False)

    # Ana interviews and indexes a document in her project "secret".
    ana.predict(message="Answer questions about our zanzibar rollout", project="secret", api_name="/interview")
    ana.predict(message="knowledge", project="secret", api_name="/interview")
    document = tmp_path / "plans.md"
    document.write_text("# Rollout\n\nThe zanzibar rollout starts in March with the billing team.\n")
    results, _, _ = ana.predict([handle_file(str(document))], "secret", api_name="/ingest")
    assert results["data"][0][1] == "added"
    assert ana.predict("zanzibar rollout", 3, "bm25", "secret", api_name="/search")

    # Bo asks for the same project name: he has no such project (a read creates none), and his own,
    # once he uploads to it, is empty.
    with pytest.raises(Exception, match="no project named 'secret'"):
        bo.predict("zanzibar rollout", 3, "bm25", "secret", api_name="/search")
    _, bo_documents, _ = bo.predict([], "secret", api_name="/ingest")
    assert not [row for row in bo_documents["data"] if any(row)]
    bo.predict(message="Classify support tickets", project="secret", api_name="/interview")

    ana_workspace, bo_workspace = workspace.for_user("ana"), workspace.for_user("bo")
    ana_task = ana_workspace.load("secret")["profile"]["task"]
    assert "zanzibar" in ana_task and ana_workspace.load("secret")["profile"]["gap"] == "knowledge"
    assert bo_workspace.load("secret")["profile"]["task"] == "Classify support tickets"
    assert ana.predict(project="secret", api_name="/plan")["retrieval"] is True
    # Nobody signed in sees the projects of the workspace itself, nor does it gain theirs.
    assert "shared-folder-project" not in ana_workspace.list_projects() + bo_workspace.list_projects()
    assert workspace.list_projects() == ["shared-folder-project"]
    # The command line reaches a user's projects by name, as the app keeps them.
    assert cli_main(["search", "zanzibar", "--workspace", str(workspace.root), "--user", "ana", "--project",
                     "secret", "--json"]) == 0
    assert "plans.md" in capsys.readouterr().out
    assert cli_main(["projects", "list", "--workspace", str(workspace.root), "--user", "bo"]) == 0
    assert capsys.readouterr().out.split() == ["default", "secret"]
