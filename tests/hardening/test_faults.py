"""Faults a user can meet: an unwritable workspace, a full disk, a broken project file, a killed ingest,
a training job out of memory."""

import errno
import os
import sys
from pathlib import Path

import pytest

from assistant.services.advisor import Advisor
from assistant.services.workspace import Workspace, WorkspaceError
from ui.cli import main

needs_non_root = pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")


def test_a_read_only_workspace_is_a_clear_error(tmp_path, monkeypatch):
    workspace = Workspace(tmp_path)
    advisor = Advisor(workspace)
    advisor.turn("p", "Classify tickets")

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr("trainers.atomic_files.tempfile.mkstemp", refuse)
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

    monkeypatch.setattr("trainers.atomic_files.os.fsync", full)
    with pytest.raises(WorkspaceError, match="No space left"):
        advisor.turn("p", "behaviour")
    monkeypatch.setattr("trainers.atomic_files.os.fsync", real_fsync)
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


@pytest.mark.slow
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


def long_examples(path: Path, count: int, prompt_first: bool) -> Path:
    """Chat examples of about 1,500 tokens of real text, in the answer or (``prompt_first``) in the prompt."""
    import json

    from tests.paths import RETRIEVAL_CORPORA

    text = " ".join(p.read_text() for p in sorted(RETRIEVAL_CORPORA.iterdir()) if p.suffix in (".md", ".txt")) * 2
    lines = []
    for i in range(count):
        passage = text[i * 997 % (len(text) // 2):][:6000]
        turns = [passage, "noted"] if prompt_first else ["Recite a passage.", passage]
        lines.append(json.dumps({"messages": [{"role": "user", "content": turns[0]},
                                              {"role": "assistant", "content": turns[1]}]}))
    path.write_text("\n".join(lines) + "\n")
    return path


def run_job(model, train: Path, jobs: Path, batch_size: int, max_length: int = 1024, memory_cap: int | None = None):
    """One training step through the job's real entry point, optionally under a cap on its private memory."""
    import resource
    import subprocess

    from trainers.config import JobSpec
    from trainers.jobs import JobStore, launch_command

    store = JobStore(jobs)
    job = store.create(JobSpec.of(model=str(model), train_file=str(train), method="lora", max_steps=1,
                                    batch_size=batch_size, max_length=max_length, device="cpu"))

    def cap_memory():
        if memory_cap:
            resource.setrlimit(resource.RLIMIT_DATA, (memory_cap, memory_cap))

    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "OMP_NUM_THREADS": "1"}
    subprocess.run(launch_command(store.path(job), False, 0), preexec_fn=cap_memory, env=env, timeout=600,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return store.status(job)


def loaded_job_memory(model) -> int:
    """Private memory (VmData) of a process that has imported the training stack and loaded ``model``."""
    import subprocess

    probe = ("import sys, datasets, peft, torch, transformers, trl\n"
             "transformers.AutoModelForCausalLM.from_pretrained(sys.argv[1])\n"
             "print(next(int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith('VmData')))")
    result = subprocess.run([sys.executable, "-c", probe, str(model)], capture_output=True, text=True, check=True,
                            env=os.environ | {"OMP_NUM_THREADS": "1"}, timeout=300)
    return int(result.stdout.split()[-1])


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_DATA and /proc are Linux's")
@pytest.mark.timeout(900)
def test_a_training_job_out_of_memory_fails_with_advice(tiny_model_path, tmp_path):
    """A real allocation failure: the job runs with 1.5 GB of memory above what loading needs, and a batch
    of 1,024 sequences of 1,024 tokens needs several times that, as a GPU job meets a card too small for
    its batch. The same cap trains a batch of 2."""
    train = long_examples(tmp_path / "long.jsonl", 1024, prompt_first=False)
    cap = loaded_job_memory(tiny_model_path) + 3 * 2**29

    status = run_job(tiny_model_path, train, tmp_path / "jobs", batch_size=1024, memory_cap=cap)
    assert status.status == "failed", status
    assert "allocate memory" in status.reason or "MemoryError" in status.reason, status.reason
    assert status.advice.startswith("The machine ran out of memory") and "batch size" in status.advice

    assert run_job(tiny_model_path, train, tmp_path / "jobs", batch_size=2, memory_cap=cap).status == "completed"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_job_whose_answers_are_all_cut_off_says_so(tiny_model_path, tmp_path):
    train = long_examples(tmp_path / "long-prompts.jsonl", 8, prompt_first=True)
    status = run_job(tiny_model_path, train, tmp_path / "jobs", batch_size=2, max_length=256)
    assert status.status == "failed" and "keeps any of its answer" in status.reason, status.reason
    assert "Raise the max length" in status.advice
