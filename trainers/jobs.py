"""Training jobs on disk: create, start (one at a time, the rest queue), cancel, resume, status.

Each job is a folder ``jobs/<id>/`` holding config.json, state.json, progress.jsonl, log.txt,
checkpoints/ and, when done, adapter/. The state lives on disk, so an app restart shows every
job as it is; a job whose process died without saying so is marked failed on the next look.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from trainers.sft import PROGRESS_FILE, STATE_FILE, SftJobConfig, set_state

ACTIVE = ("starting", "running")


@dataclass
class JobStatus:
    job_id: str
    status: str
    """queued, starting, running, completed, cancelled or failed."""
    step: int = 0
    max_steps: int = 0
    reason: str = ""
    advice: str = ""
    metrics: dict = field(default_factory=dict)
    path: Path | None = None
    device: str = ""
    command: str = ""
    """The command line the job runs (an accelerate launch line on several GPUs)."""

    @property
    def adapter_dir(self) -> Path | None:
        adapter = self.path / "adapter" if self.path else None
        return adapter if adapter and adapter.exists() else None


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:  # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def visible_gpus() -> int:
    """CUDA devices the job would see, counted without importing torch into the caller."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return len([d for d in listed.split(",") if d.strip() and d.strip() != "-1"])
    try:
        result = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in result.stdout.splitlines() if line.startswith("GPU "))


def launch_command(job_dir: Path, resume: bool, gpus: int) -> list[str]:
    """The same entry point on one device, or under `accelerate launch` (data parallel) on several."""
    entry = ["-m", "trainers.sft", str(job_dir)] + (["--resume"] if resume else [])
    if gpus > 1:
        return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(gpus),
                *entry]
    return [sys.executable, *entry]


class JobStore:
    """The training jobs of one project."""

    def __init__(self, jobs_dir: str | Path):
        self.root = Path(jobs_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self._processes: dict[str, subprocess.Popen] = {}
        self._lock = threading.RLock()

    def path(self, job_id: str) -> Path:
        if not job_id or "/" in job_id or job_id.startswith("."):
            raise ValueError(f"not a job id: {job_id!r}")
        return self.root / job_id

    def create(self, config: SftJobConfig, job_id: str | None = None) -> str:
        job_id = job_id or time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        job_dir = self.path(job_id)
        job_dir.mkdir(parents=True)
        config.save(job_dir)
        set_state(job_dir, "queued", created_at=time.time())
        return job_id

    def jobs(self) -> list[JobStatus]:
        return [self.status(p.name) for p in sorted(self.root.iterdir()) if (p / STATE_FILE).exists()]

    def status(self, job_id: str) -> JobStatus:
        job_dir = self.path(job_id)
        with self._lock:
            state = json.loads((job_dir / STATE_FILE).read_text())
            process = self._processes.get(job_id)
            finished = process is not None and process.poll() is not None
            if state["status"] in ACTIVE and (finished or (process is None and not _alive(state.get("pid")))):
                # The process is gone but never said how it ended: it was killed or crashed.
                state = json.loads((job_dir / STATE_FILE).read_text())  # it may have just written
                if state["status"] in ACTIVE:
                    code = process.returncode if process is not None else None
                    how = f" (exit code {code})" if code is not None else ""
                    set_state(job_dir, "failed", reason=f"the training process ended unexpectedly{how}",
                              advice="It was killed or crashed; see log.txt. Resume continues from the last "
                                     "checkpoint.")
                    state = json.loads((job_dir / STATE_FILE).read_text())
        return JobStatus(job_id, state["status"], state.get("step", 0), state.get("max_steps", 0),
                         state.get("reason", ""), state.get("advice", ""), state.get("metrics", {}), job_dir,
                         state.get("device", ""), state.get("command", ""))

    def progress(self, job_id: str) -> list[dict]:
        path = self.path(job_id) / PROGRESS_FILE
        if not path.exists():
            return []
        records = []
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line being written right now
        return records

    def running(self) -> str | None:
        return next((j.job_id for j in self.jobs() if j.status in ACTIVE), None)

    def start(self, job_id: str, resume: bool = False) -> JobStatus:
        """Start the job now if nothing is running, else leave it queued. Returns its status."""
        with self._lock:
            job_dir = self.path(job_id)
            busy = self.running()
            if busy and busy != job_id:
                set_state(job_dir, "queued", resume=resume, reason=f"waiting for job {busy}")
                return self.status(job_id)
            set_state(job_dir, "starting", resume=resume, reason="", advice="")
            command = launch_command(job_dir, resume, visible_gpus())
            log = open(job_dir / "log.txt", "a")  # noqa: SIM115 - handed to the child
            env = os.environ | {"PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
            root = Path(__file__).resolve().parents[1]
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH", "")]))
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                       start_new_session=True)
            log.close()
            self._processes[job_id] = process
            set_state(job_dir, "starting", pid=process.pid, command=" ".join(command))
            return self.status(job_id)

    def start_next(self) -> str | None:
        """Start the oldest queued job if nothing runs; returns its id."""
        with self._lock:
            if self.running():
                return None
            queued = [j for j in self.jobs() if j.status == "queued"]
            if not queued:
                return None
            state = json.loads((queued[0].path / STATE_FILE).read_text())
            self.start(queued[0].job_id, resume=bool(state.get("resume")))
            return queued[0].job_id

    def cancel(self, job_id: str) -> JobStatus:
        """Ask the job to save a checkpoint and stop; a queued job is cancelled at once."""
        with self._lock:
            job_dir = self.path(job_id)
            state = json.loads((job_dir / STATE_FILE).read_text())
            if state["status"] == "queued":
                set_state(job_dir, "cancelled", reason="cancelled before it started")
            elif state["status"] in ACTIVE and state.get("pid"):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(state["pid"], signal.SIGTERM)
            return self.status(job_id)

    def wait(self, job_id: str, timeout: float = 600, poll: float = 0.5) -> JobStatus:
        deadline = time.time() + timeout
        while time.time() < deadline:
            status = self.status(job_id)
            if status.status not in ACTIVE:
                return status
            time.sleep(poll)
        raise TimeoutError(f"job {job_id} still {status.status} after {timeout} s")
