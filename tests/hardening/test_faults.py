"""Faults a user can meet: an unwritable workspace, a full disk, a broken project file, a killed ingest,
a training job out of memory."""

import errno
import os
import sys
from pathlib import Path

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


def test_memory_errors_get_advice_that_fits_the_device():
    import torch

    from trainers.sft import failure_advice

    gpu = failure_advice(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert gpu.startswith("The GPU ran out of memory") and "QLoRA" in gpu and "batch size" in gpu
    cpu = failure_advice(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8589934592 "
                                      "bytes. Error code 12 (Cannot allocate memory)"))
    assert cpu.startswith("The machine ran out of memory") and "batch size" in cpu
    assert failure_advice(MemoryError()).startswith("The machine ran out of memory")
    assert "memory" not in failure_advice(ValueError("bad value"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_DATA caps a process's memory on Linux")
@pytest.mark.timeout(900)
def test_a_training_job_out_of_memory_fails_with_advice(tiny_model_path, tmp_path):
    """A real allocation failure: the job process runs under a memory cap far below what its batch needs
    (32 sequences of 4,096 tokens), as a GPU job meets a card too small for its batch."""
    import json
    import resource
    import subprocess

    from tests.paths import RETRIEVAL_CORPORA
    from trainers.jobs import JobStore, launch_command
    from trainers.sft import SftJobConfig

    text = (RETRIEVAL_CORPORA / "state_of_the_union.md").read_text()
    train = tmp_path / "long.jsonl"
    train.write_text("".join(json.dumps({"messages": [{"role": "user", "content": text[i * 300:i * 300 + 16_000]},
                                                      {"role": "assistant", "content": "noted"}]}) + "\n"
                             for i in range(32)))
    store = JobStore(tmp_path / "jobs")
    job = store.create(SftJobConfig(model=str(tiny_model_path), train_file=str(train), method="lora", max_steps=2,
                                    batch_size=32, max_length=4096, device="cpu"))
    cap = 3 * 2**30

    def limit_memory():
        resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))

    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "OMP_NUM_THREADS": "1"}
    subprocess.run(launch_command(store.path(job), False, 0), preexec_fn=limit_memory, env=env, timeout=600,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    status = store.status(job)
    assert status.status == "failed", status
    assert "allocate memory" in status.reason or "MemoryError" in status.reason, status.reason
    assert status.advice.startswith("The machine ran out of memory") and "batch size" in status.advice
