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


def test_killing_the_app_mid_ingest_leaves_only_whole_documents(tmp_path):
    """A real SIGKILL while a folder is being ingested; the reopened index holds whole documents only."""
    import signal
    import subprocess
    import sys
    import time

    from retrieval.index import ChromaSettings, DocumentIndex
    from tests.paths import RETRIEVAL_CORPORA

    folder = tmp_path / "docs"
    folder.mkdir()
    text = (RETRIEVAL_CORPORA / "wikitexts.md").read_text()
    for i in range(6):
        (folder / f"part{i}.md").write_text(text[i * 15_000:(i + 1) * 15_000])
    script = (
        "import sys; from pathlib import Path\n"
        "from retrieval.embeddings import Embedder\n"
        "from retrieval.index import ChromaSettings, DocumentIndex\n"
        "from retrieval.ingest import ingest_paths\n"
        "root = Path(sys.argv[1])\n"
        "index = DocumentIndex(root / 'i.sqlite', ChromaSettings(path=root / 'chroma'))\n"
        "ingest_paths(index, Embedder(), [root / 'docs'], progress=lambda f, s: print('at', s, flush=True))\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                               cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]))
    seen = []
    deadline = time.time() + 240
    while time.time() < deadline:
        line = process.stdout.readline()
        seen.append(line)
        if "part2.md" in line:  # two documents done, the third under way
            time.sleep(1.0)
            break
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    index = DocumentIndex(tmp_path / "i.sqlite", ChromaSettings(path=tmp_path / "chroma"))
    documents = index.documents()
    assert 1 <= len(documents) < 6, seen
    assert index.chunk_count() == sum(d.chunks for d in documents) == index.vector_count()
    index.close()
