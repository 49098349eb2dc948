"""The job protocol: what a training job's folder holds and the states it moves through.

The queue (trainers/jobs.py) and the job process (trainers/sft.py) speak only through this folder
and each other's module name, so neither imports the other: the queue runs ``python -m trainers.sft
JOB_DIR``, and a job process that ends runs the queue's ``start-next`` (:func:`start_next_job`).

    jobs/<id>/config.json      the JobSpec (trainers/config.py), written before the job starts
              state.json       {"status": JobState, "step", "max_steps", "reason", "advice", ...}
              progress.jsonl   one JSON line per log step (loss, eval loss, tokens/s, ETA, GPU peak)
              log.txt          the process's output and, on failure, the traceback
              checkpoints/     the trainer's checkpoints (resume starts from the last)
              adapter/         the trained adapter, its tokenizer and training.json

Every JSON file is written whole (trainers/atomic_files.py), so a reader never sees half of one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Any

from trainers.atomic_files import write_json_atomic, write_text_atomic

CONFIG_FILE, STATE_FILE, PROGRESS_FILE, LOG_FILE = "config.json", "state.json", "progress.jsonl", "log.txt"
CHECKPOINTS, ADAPTER, TRAINING_CARD = "checkpoints", "adapter", "training.json"
PAUSE_HALFWAY = "pause_halfway"
"""A key of the JobSpec's ``extra``: a run that starts from step 0 stops at half its steps with a checkpoint and
its eval loss in state.json (``paused_at``, ``halfway_eval_loss``), as "cancelled"; resuming continues it to the
end (successive halving in compare-methods)."""
BOARD_ENV = "TUNEWISE_JOB_BOARD"
"""Set for the job process: the folder of the line it queued in, so it can start the next job as it ends."""
QUEUE_ENTRY_POINT = "trainers.jobs"
"""The queue's module, run (never imported) by a job process as it ends:
``python -m trainers.jobs start-next BOARD``."""
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "GROUP_WORLD_SIZE",
                  "ROLE_RANK", "ROLE_NAME", "ROLE_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
"""What torch's launcher (under ``accelerate launch``) sets for each rank of a job; with the TORCHELASTIC_ ones."""


class JobState(StrEnum):
    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


ACTIVE = (JobState.STARTING, JobState.RUNNING)


def write_json(path: Path, data: Any) -> None:
    write_json_atomic(path, data)


def read_state(job_dir: Path) -> dict:
    return json.loads((job_dir / STATE_FILE).read_text())


def set_state(job_dir: Path, status: JobState | str, **fields: Any) -> None:
    """Merge ``fields`` into state.json with the new status (only the writer of a state changes it)."""
    path = job_dir / STATE_FILE
    current = json.loads(path.read_text()) if path.exists() else {}
    write_json(path, current | fields | {"status": str(JobState(status)), "updated_at": time.time()})


def progress_line(record: dict) -> str:
    """One progress record as both faces print it: "step 10/90  loss 1.23  lr 0.0002  512 tok/s  ETA 40 s"."""
    parts = [f"step {record.get('step', 0)}/{record.get('max_steps', 0)}"]
    for key, label in (("loss", "loss"), ("eval_loss", "eval loss"), ("learning_rate", "lr")):
        if key in record:
            parts.append(f"{label} {record[key]:.4g}")
    if "tokens_per_s" in record:
        parts.append(f"{record['tokens_per_s']:.0f} tok/s")
    if "eta_s" in record:
        parts.append(f"ETA {record['eta_s']:.0f} s")
    if "gpu_peak_allocated_gb" in record:
        parts.append(f"GPU peak {record['gpu_peak_allocated_gb']:.1f} GB")
    return "  ".join(parts)


def trim_progress(job_dir: Path, last_step: int) -> int:
    """Drop the progress lines after ``last_step`` (a resume trains those steps again and logs them
    anew, so the chart never goes backwards); returns how many were dropped."""
    path = job_dir / PROGRESS_FILE
    if not path.exists():
        return 0
    kept, dropped = [], 0
    for line in path.read_text().splitlines():
        try:
            step = json.loads(line).get("step", 0)
        except json.JSONDecodeError:
            dropped += 1  # a line the killed process was writing
            continue
        if step > last_step:
            dropped += 1
        else:
            kept.append(line)
    write_text_atomic(path, "".join(line + "\n" for line in kept))
    return dropped


def handover_environment(environ: dict[str, str]) -> dict[str, str]:
    """The environment for the next job's start: ``environ`` less this job's rank variables.

    A rank of a multi-process job carries RANK, WORLD_SIZE, MASTER_PORT...; a next job started with
    them would take itself for a rank of the finished one and wait for peers that never come.
    """
    return {name: value for name, value in environ.items()
            if name not in RANK_VARIABLES and not name.startswith("TORCHELASTIC_")}


def start_next_job(board_folder: str | Path, timeout: float = 120) -> str:
    """Start the first queued job on the board in ``board_folder`` if the machine is free: what a job
    process does as it ends. Returns the id started, or ``"none"``.

    The queue runs in a short process of its own (:data:`QUEUE_ENTRY_POINT`), so the job process
    imports no queue code; that process launches the next job in its own session and exits.
    Raises RuntimeError (with the queue's last line of error) or TimeoutExpired when it fails.
    """
    env = handover_environment(dict(os.environ))
    root = Path(__file__).resolve().parents[1]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-m", QUEUE_ENTRY_POINT, "start-next", str(board_folder)],
                            capture_output=True, text=True, env=env, timeout=timeout)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        raise RuntimeError(lines[-1] if lines else f"{QUEUE_ENTRY_POINT} exited with code {result.returncode}")
    lines = result.stdout.strip().splitlines()
    return lines[-1] if lines else "none"
