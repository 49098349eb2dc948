"""Faults a user can meet: an unwritable workspace, a full disk, a broken project file."""

import errno
import os

import pytest

from assistant.advisor import Advisor
from assistant.cli import main
from assistant.workspace import Workspace, WorkspaceError

needs_non_root = pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")


def test_a_read_only_workspace_is_a_clear_error(tmp_path, monkeypatch):
    workspace = Workspace(tmp_path)
    advisor = Advisor(workspace)
    advisor.turn("p", "Classify tickets")

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr("assistant.workspace.tempfile.mkstemp", refuse)
    with pytest.raises(WorkspaceError, match="Read-only file system"):
        advisor.turn("p", "behaviour")
    monkeypatch.undo()
    assert advisor.state("p").answers == {"task": "Classify tickets"}  # nothing lost


def test_a_full_disk_is_a_clear_error_and_keeps_the_old_file(tmp_path, monkeypatch):
    workspace = Workspace(tmp_path)
    advisor = Advisor(workspace)
    advisor.turn("p", "Classify tickets")
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("assistant.workspace.os.fsync", full)
    with pytest.raises(WorkspaceError, match="No space left"):
        advisor.turn("p", "behaviour")
    monkeypatch.setattr("assistant.workspace.os.fsync", real_fsync)
    assert advisor.state("p").answers == {"task": "Classify tickets"}
    assert [p.name for p in (tmp_path / "projects" / "p").iterdir()] == ["project.json"]


def test_an_unwritable_workspace_folder_is_reported_by_the_cli(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["projects", "list", "--workspace", str(blocker / "ws")]) == 2
    assert "cannot create the workspace" in capsys.readouterr().err


def test_a_corrupt_project_file_names_the_file(tmp_path):
    workspace = Workspace(tmp_path)
    workspace.create("p")
    (tmp_path / "projects" / "p" / "project.json").write_text("{not json")
    with pytest.raises(WorkspaceError, match="project.json"):
        Advisor(workspace).state("p")
