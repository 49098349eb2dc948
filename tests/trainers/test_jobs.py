"""Training jobs as separate processes: progress, cancel then resume, a killed process, QLoRA on CPU."""

import json
import os
import signal
import time
from types import SimpleNamespace

import pytest

from trainers.config import JobSpec
from trainers.jobs import JobBoard, JobStore, usable_cores


def config(model, train, evaluation=None, **overrides) -> JobSpec:
    base = dict(model=str(model), train_file=str(train), eval_file=str(evaluation) if evaluation else None,
                method="lora", max_steps=30, batch_size=4, max_length=96, learning_rate=2e-3,
                logging_steps=2, eval_steps=10, save_steps=10, lora_r=8, lora_alpha=16, device="cpu")
    return JobSpec.of(**(base | overrides))


def wait_for_step(store, job_id, step, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = store.status(job_id)
        if status.step >= step or status.status not in ("starting", "running"):
            return status
        time.sleep(0.3)
    raise TimeoutError


@pytest.mark.slow
def test_a_job_reports_progress_and_saves_an_adapter(tiny_model_path, snips_files, tmp_path):
    store = JobStore(tmp_path / "jobs")
    job = store.create(config(tiny_model_path, *snips_files))
    assert store.status(job).status == "queued"
    store.start(job)
    status = store.wait(job, timeout=300)
    assert status.status == "completed", (status.reason, (status.path / "log.txt").read_text()[-2000:])
    records = store.progress(job)
    losses = [r["loss"] for r in records if "loss" in r]
    assert losses and losses[-1] < losses[0]
    assert any("eval_loss" in r for r in records)
    assert all({"step", "max_steps"} <= set(r) for r in records)
    assert any("tokens_per_s" in r and "eta_s" in r and "learning_rate" in r for r in records)
    adapter = status.adapter_dir
    assert (adapter / "adapter_model.safetensors").exists() and (adapter / "adapter_config.json").exists()
    assert (adapter / "tokenizer_config.json").exists()
    card = json.loads((adapter / "training.json").read_text())
    assert card["assistant_only_loss"] is True and card["steps"] == 30


@pytest.mark.slow
def test_cancel_keeps_a_checkpoint_and_resume_continues_from_it(tiny_model_path, snips_files, tmp_path):
    store = JobStore(tmp_path / "jobs")
    job = store.create(config(tiny_model_path, *snips_files, max_steps=400, save_steps=10, eval_steps=1000))
    store.start(job)
    wait_for_step(store, job, 12)
    cancelled = store.cancel(job)
    cancelled = store.wait(job, timeout=120)
    assert cancelled.status == "cancelled" and 12 <= cancelled.step < 400
    checkpoints = sorted(int(p.name.split("-")[1]) for p in (cancelled.path / "checkpoints").glob("checkpoint-*"))
    assert checkpoints and checkpoints[-1] == cancelled.step  # saved on the way out

    before = len(store.progress(job))
    store.start(job, resume=True)
    wait_for_step(store, job, cancelled.step + 4)
    store.cancel(job)
    store.wait(job, timeout=120)
    resumed_steps = [r["step"] for r in store.progress(job)[before:]]
    assert resumed_steps and min(resumed_steps) >= cancelled.step


@pytest.mark.slow
def test_a_paused_job_stops_halfway_with_its_eval_loss_and_resumes_on_the_same_schedule(
        tiny_model_path, snips_files, tmp_path):
    """Successive halving's pause: stop at the given step with a checkpoint and the eval loss there; resuming
    finishes the run with the learning rates an uninterrupted run has at every step (one cosine schedule)."""
    store = JobStore(tmp_path / "jobs")
    settings = dict(max_steps=12, save_steps=100, eval_steps=100, logging_steps=1)
    whole = store.create(config(tiny_model_path, *snips_files, **settings))
    paused = store.create(config(tiny_model_path, *snips_files, **settings, extra={"pause_halfway": True}))
    store.start(whole)
    assert store.wait(whole, timeout=300).status == "completed"
    store.start(paused)
    halfway = store.wait(paused, timeout=300)
    assert halfway.status == "cancelled" and halfway.step == 6 and "successive halving" in halfway.reason
    state = json.loads((halfway.path / "state.json").read_text())
    assert state["paused_at"] == 6 and state["halfway_eval_loss"] > 0 and state["paused_train_seconds"] > 0
    assert (halfway.path / "checkpoints" / "checkpoint-6").is_dir() and halfway.adapter_dir is None

    store.start(paused, resume=True)
    done = store.wait(paused, timeout=300)
    assert done.status == "completed" and done.step == 12  # it did not stop at step 6 again

    def rates(job_id):
        return {r["step"]: r["learning_rate"] for r in store.progress(job_id) if "learning_rate" in r}

    assert rates(paused) == pytest.approx(rates(whole)) and len(rates(paused)) >= 12


@pytest.mark.slow
def test_killing_the_process_marks_the_job_failed_with_a_reason(tiny_model_path, snips_files, tmp_path):
    store = JobStore(tmp_path / "jobs")
    job = store.create(config(tiny_model_path, *snips_files, max_steps=2000))
    store.start(job)
    status = wait_for_step(store, job, 2)
    pid = json.loads((status.path / "state.json").read_text())["pid"]
    os.kill(pid, signal.SIGKILL)
    status = store.wait(job, timeout=60)
    assert status.status == "failed" and "ended unexpectedly" in status.reason and status.advice
    # A fresh store (an app restart) sees the same.
    assert JobStore(tmp_path / "jobs").status(job).status == "failed"


@pytest.mark.slow
def test_one_job_at_a_time_the_next_one_queues(tiny_model_path, snips_files, tmp_path):
    store = JobStore(tmp_path / "jobs")
    first = store.create(config(tiny_model_path, *snips_files, max_steps=2000))
    second = store.create(config(tiny_model_path, *snips_files, max_steps=4))
    store.start(first)
    wait_for_step(store, first, 1)
    assert store.start(second).status == "queued"
    store.cancel(first)
    store.wait(first, timeout=120)
    wait_until_started(store, second)  # the cancelled job handed over as it ended
    assert store.start_next() is None
    done = store.wait(second, timeout=300)
    assert done.status == "completed" and done.reason == ""  # "waiting for ..." ended with the wait


def wait_until_started(store, job_id, timeout=120):
    deadline = time.time() + timeout
    while store.status(job_id).status == "queued":
        if time.time() > deadline:
            raise TimeoutError(f"{job_id} still queued")
        time.sleep(0.3)


@pytest.mark.slow
def test_one_job_at_a_time_on_the_machine_across_projects_in_the_order_they_queued(tiny_model_path, snips_files,
                                                                                    tmp_path):
    board = JobBoard(tmp_path / "training-queue")
    ana, bo = JobStore(tmp_path / "ana" / "jobs", board), JobStore(tmp_path / "bo" / "jobs", board)
    first = ana.create(config(tiny_model_path, *snips_files, max_steps=2000))
    ana.start(first)
    wait_for_step(ana, first, 1)
    second = bo.create(config(tiny_model_path, *snips_files, max_steps=4))
    waiting = bo.start(second)
    assert waiting.status == "queued" and "another project's" in waiting.reason
    third = ana.create(config(tiny_model_path, *snips_files, max_steps=4))
    assert ana.start(third).reason == f"waiting for job {first} to finish"
    assert ana.start_next() is None  # the machine is taken

    # Nobody calls start_next from here on: each job, as it ends, starts the next in line.
    ana.cancel(first)
    assert ana.wait(first, timeout=120).status == "cancelled"
    wait_until_started(bo, second)  # bo's job queued first, so it goes first
    assert ana.status(third).status == "queued"
    assert bo.wait(second, timeout=300).status == "completed"
    wait_until_started(ana, third)
    assert ana.wait(third, timeout=300).status == "completed"
    assert board.entries() == []


@pytest.mark.slow
def test_a_crash_fails_the_job_with_the_reason(snips_files, tmp_path):
    store = JobStore(tmp_path / "jobs")
    job = store.create(config(tmp_path / "no-such-model", *snips_files))
    store.start(job)
    status = store.wait(job, timeout=120)
    assert status.status == "failed" and status.reason and status.advice


def test_bad_settings_are_refused_before_a_job_exists():
    with pytest.raises(ValueError, match="method"):
        JobSpec.of(model="m", train_file="t", method="lorra")


def test_several_gpus_run_the_same_entry_point_under_accelerate(tmp_path):
    from trainers.jobs import launch_command

    single = launch_command(tmp_path, False, 1)
    assert single[1:] == ["-m", "trainers.sft", str(tmp_path)]
    multi = launch_command(tmp_path, True, 4)
    assert multi[1:6] == ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "4"]
    assert multi[-4:] == ["-m", "trainers.sft", str(tmp_path), "--resume"]


@pytest.mark.parametrize("processes, gpus, device, cores, expected", [
    (0, 0, None, 2, 1), (0, 1, None, 2, 1), (0, 4, None, 2, 4), (0, 4, "cpu", 2, 1),  # 0: one per GPU
    (2, 0, "cpu", 2, 2), (4, 4, None, 2, 4), (3, 0, None, 4, 3),  # as asked, within the machine
    (8, 8, None, 1, 8),  # GPUs, not cores, bound a job on CUDA
    (5, 4, None, 64, "5 training processes asked for, but this machine has 4 visible GPUs"),
    (5000, 8, None, 64, "has 8 visible GPUs and a job runs at most one process per visible GPU"),
    (3, 4, "cpu", 2, "has 2 CPU cores"),  # forced onto the CPU: the cores bound it, not the GPUs
    (2, 0, None, 1, "has 1 CPU core and"),
])
def test_processes_are_as_asked_within_the_machine_else_one_per_gpu_and_one_on_a_cpu(processes, gpus, device, cores,
                                                                                       expected):
    from trainers.jobs import process_count

    if isinstance(expected, int):
        assert process_count(processes, gpus, device, cores) == expected
    else:
        with pytest.raises(ValueError, match=expected) as refused:
            process_count(processes, gpus, device, cores)
        assert "set processes to" in str(refused.value)


def test_processes_on_a_cpu_run_under_accelerate(tmp_path, monkeypatch):
    from trainers.jobs import launch_command

    monkeypatch.setattr("trainers.jobs.usable_cores", lambda: 4)
    on_cpu = launch_command(tmp_path, False, 0, processes=2, device="cpu")
    assert on_cpu[1:3] == ["-m", "accelerate.commands.launch"] and "2" in on_cpu


def fake_popen(started: list):
    """A Popen that records the command and starts nothing."""
    def popen(command, **options):
        started.append(command)
        return SimpleNamespace(pid=os.getpid(), args=command, returncode=None, poll=lambda: None)
    return popen


@pytest.mark.parametrize("visible, device, processes, words", [
    ("0,1", None, 3, "3 training processes asked for, but this machine has 2 visible GPUs"),
    ("", None, 5, "5 training processes asked for, but this machine has 4 CPU cores"),
    ("0,1,2,3,4,5,6,7", "cpu", 5, "has 4 CPU cores"),
])
def test_a_job_with_more_processes_than_the_machine_has_is_refused_before_its_folder_exists(
        tmp_path, monkeypatch, visible, device, processes, words):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    monkeypatch.setattr("trainers.jobs.usable_cores", lambda: 4)
    started = []
    monkeypatch.setattr("trainers.jobs.subprocess.Popen", fake_popen(started))
    store = JobStore(tmp_path / "jobs")
    with pytest.raises(ValueError, match=words):
        store.create(JobSpec.of(model="m", train_file="t.jsonl", device=device, processes=processes))
    assert store.jobs() == [] and [p.name for p in store.root.iterdir()] == [".board"] and started == []


def test_a_job_the_machine_can_no_longer_run_fails_with_the_reason_and_holds_up_no_other(tmp_path, monkeypatch):
    """Created with 2 GPUs visible, started with 1: the launch is refused before any process starts,
    the job fails saying why, and the next job in line still gets the machine."""
    started = []
    monkeypatch.setattr("trainers.jobs.subprocess.Popen", fake_popen(started))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    store = JobStore(tmp_path / "jobs")
    wide = store.create(JobSpec.of(model="m", train_file="t.jsonl", processes=2))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    refused = store.start(wide)
    assert refused.status == "failed" and "has 1 visible GPU and" in refused.reason and refused.advice
    assert started == []
    narrow = store.create(JobSpec.of(model="m", train_file="t.jsonl"))
    assert store.start(narrow).status == "starting"
    assert started and "accelerate.commands.launch" not in started[0]


@pytest.mark.skipif(usable_cores() < 2, reason="two gloo ranks need two CPU cores")
def test_two_processes_train_one_adapter_through_accelerate_on_a_cpu(tiny_model_path, tmp_path):
    """The multi-process path for real: accelerate starts 2 gloo ranks, each trains on half of every
    epoch's examples, and one adapter comes out, written by rank 0 alone."""
    from tests.snips import snips_chat_jsonl
    from trainers.job_files import read_state

    train = tmp_path / "train.jsonl"
    train.write_text(snips_chat_jsonl("train", limit=32, seed=0))
    store = JobStore(tmp_path / "jobs")
    job = store.create(config(tiny_model_path, train, max_steps=-1, epochs=1, batch_size=4, processes=2,
                              eval_steps=1000, save_steps=1000))
    store.start(job)
    status = store.wait(job, timeout=300)
    log = (status.path / "log.txt").read_text()
    assert status.status == "completed", (status.reason, log[-3000:])
    assert "accelerate.commands.launch" in status.command and "--num_processes 2" in status.command
    assert read_state(status.path)["processes"] == 2
    card = json.loads((status.adapter_dir / "training.json").read_text())
    assert card["steps"] == 32 // (4 * 2)  # 32 examples, 4 per process, 2 processes: 4 steps, not 8
    assert (status.adapter_dir / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_after_a_kill_and_a_resume_the_progress_never_goes_backwards(tiny_model_path, snips_files, tmp_path):
    store = JobStore(tmp_path / "jobs")
    job = store.create(config(tiny_model_path, *snips_files, max_steps=2000, save_steps=10, eval_steps=1000))
    store.start(job)
    status = wait_for_step(store, job, 24)  # a checkpoint at 10 and 20, progress lines past it
    os.kill(json.loads((status.path / "state.json").read_text())["pid"], signal.SIGKILL)
    assert store.wait(job, timeout=60).status == "failed"
    store.start(job, resume=True)
    wait_for_step(store, job, 34)
    store.cancel(job)
    store.wait(job, timeout=120)
    steps = [r["step"] for r in store.progress(job) if "loss" in r]
    assert steps == sorted(steps) and len(steps) == len(set(steps)), steps


def test_the_queue_and_the_job_process_never_import_each_other():
    """They share the job folder (trainers/job_files.py) and run each other by module name only."""
    import ast
    from pathlib import Path

    import trainers

    def imported(module: str) -> set[str]:
        tree = ast.parse((Path(trainers.__file__).parent / f"{module}.py").read_text())
        return {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names} | {
            node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}

    assert not any(name.startswith("trainers.jobs") for name in imported("sft"))
    assert not any(name.startswith("trainers.sft") for name in imported("jobs"))


def test_a_job_that_ends_starts_the_next_in_line_through_the_queue_s_own_process(tmp_path, monkeypatch):
    """start_next_job runs ``python -m trainers.jobs start-next BOARD``: the first queued job is
    launched (here: refused, as the machine has fewer GPUs than when it was queued, so nothing
    trains) and its id comes back; with nothing queued, "none"."""
    from trainers.job_files import start_next_job

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    board = JobBoard(tmp_path / "board")
    store = JobStore(tmp_path / "jobs", board, launcher=lambda *_: pytest.fail("queued only, not started here"))
    job = store.create(JobSpec.of(model="m", train_file="t.jsonl", processes=2))
    store.board.add(store.path(job))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")  # the queue's process sees one GPU: the launch is refused
    assert start_next_job(board.folder) == job
    status = store.status(job)
    assert status.status == "failed" and "has 1 visible GPU" in status.reason
    assert start_next_job(board.folder) == "none"


def test_the_next_job_does_not_inherit_the_ranks_of_the_one_that_ended():
    from trainers.job_files import handover_environment

    ranks = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2", "MASTER_PORT": "29500",
             "TORCHELASTIC_RUN_ID": "x"}
    kept = {"PATH": "/usr/bin", "CUDA_VISIBLE_DEVICES": "0,1", "TUNEWISE_JOB_BOARD": "/b"}
    assert handover_environment(ranks | kept) == kept
