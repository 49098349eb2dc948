"""Training jobs on disk: create, start (one at a time, the rest queue), cancel, resume, status.

Each job is a folder ``jobs/<id>/`` laid out as trainers/job_files.py describes; the queue
starts the job process (trainers/sft.py) by its module name and reads what it writes, never
importing it; a job process that ends runs this module by name (``python -m trainers.jobs
start-next BOARD``, see :func:`main`) to start the next job in line. The state lives on disk,
so an app restart shows every job as it is; a job whose process died without saying so is
marked failed on the next look.

One job trains at a time on the machine, whichever project (or user) it belongs to: two jobs on
one GPU would each assume the whole card. A :class:`JobBoard` shared by the job stores of every
project keeps the order jobs queued in and says which one holds the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from trainers.config import JobSpec
from trainers.job_files import ACTIVE, BOARD_ENV, LOG_FILE, PROGRESS_FILE, STATE_FILE, JobState, read_state, set_state
from tunewise.errors import InputError

JOB_ENTRY_POINT = "trainers.sft"
"""The module a job process runs (``python -m trainers.sft JOB_DIR``); named, not imported."""


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


def usable_cores() -> int:
    """CPU cores this process may run on: its affinity (a container's or taskset's share), else the count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no sched_getaffinity (macOS, Windows)
        return os.cpu_count() or 1


def process_count(processes: int, gpus: int, device: str | None, cores: int | None = None) -> int:
    """How many training processes a job runs: as asked, else one per visible GPU (one on a CPU).

    More than the machine has room for is refused with a ValueError that says the limit: one per
    visible GPU on CUDA (two processes on one card would each assume the whole card, as two jobs
    would), one per usable core on a CPU (``cores``, default :func:`usable_cores`; each gloo rank
    loads its own copy of the model and computes on its own core, so more only fight for memory).
    """
    on_gpus = gpus > 0 and device != "cpu"
    if processes <= 0:
        return gpus if on_gpus and gpus > 1 else 1
    limit, unit = (gpus, "visible GPU") if on_gpus else (cores or usable_cores(), "CPU core")
    if processes > limit:
        raise InputError(f"{processes} training processes asked for, but this machine has {limit} {unit}"
                         f"{'' if limit == 1 else 's'} and a job runs at most one process per {unit}: "
                         f"set processes to {limit} or fewer (0: one per visible GPU, one on a CPU)")
    return processes


def check_processes(spec: JobSpec) -> int:
    """The job's process count on this machine; a ValueError (see :func:`process_count`) when it has no room."""
    gpus = 0 if spec.device == "cpu" or spec.training.processes <= 0 else visible_gpus()
    return process_count(spec.training.processes, gpus, spec.device)


def launch_command(job_dir: Path, resume: bool, gpus: int, processes: int = 0, device: str | None = None) -> list[str]:
    """The job's entry point alone, or under ``accelerate launch`` (data parallel) for several processes.

    accelerate starts the processes through torch's elastic launcher, which sets RANK, WORLD_SIZE and
    the rendezvous for the Trainer; on GPUs they talk over NCCL, on a CPU over gloo.
    """
    entry = ["-m", JOB_ENTRY_POINT, str(job_dir)] + (["--resume"] if resume else [])
    count = process_count(processes, gpus, device)
    if count == 1:
        return [sys.executable, *entry]
    # --multi_gpu is accelerate's name for "data parallel through torch's launcher"; on a CPU the job's
    # own settings (use_cpu) make each process a gloo rank.
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(count),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", *entry]


Launcher = Callable[[Path, bool, Path], subprocess.Popen]
"""Starts a job's process: (job folder, resume?, the board's folder) -> the process."""


def launch_process(job_dir: Path, resume: bool, board_folder: Path) -> subprocess.Popen:
    """The default launcher: the job's entry point in a new session, its output in log.txt."""
    spec = JobSpec.load(job_dir)
    command = launch_command(job_dir, resume, visible_gpus(), spec.training.processes, spec.device)
    env = os.environ | {"PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false", BOARD_ENV: str(board_folder)}
    root = Path(__file__).resolve().parents[1]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH", "")]))
    with open(job_dir / LOG_FILE, "a") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def read_status(job_dir: Path, process: subprocess.Popen | None = None) -> JobStatus:
    """A job's status from its folder; a job whose process is gone without a word is marked failed."""
    state = read_state(job_dir)
    finished = process is not None and process.poll() is not None
    if state["status"] in ACTIVE and (finished or (process is None and not _alive(state.get("pid")))):
        # The process is gone but never said how it ended: it was killed or crashed.
        state = read_state(job_dir)  # it may have just written
        if state["status"] in ACTIVE:
            code = process.returncode if process is not None else None
            how = f" (exit code {code})" if code is not None else ""
            set_state(job_dir, JobState.FAILED, reason=f"the training process ended unexpectedly{how}",
                      advice="It was killed or crashed; see log.txt. Resume continues from the last checkpoint.")
            state = read_state(job_dir)
    return JobStatus(job_dir.name, state["status"], state.get("step", 0), state.get("max_steps", 0),
                     state.get("reason", ""), state.get("advice", ""), state.get("metrics", {}), job_dir,
                     state.get("device", ""), state.get("command", ""))


class JobBoard:
    """The jobs waiting for or holding the machine, across the projects that share this board.

    One small file per queued or active job, named by when it queued and holding the job's folder;
    entries of jobs that have ended are dropped as they are read. A file lock makes "is the
    machine free? then start" one step for every thread and process that shares the folder.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def locked(self):
        with open(self.folder / ".lock", "a") as handle:
            try:
                import fcntl
            except ImportError:  # no flock here: threads of one store still hold its own lock
                yield
                return
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @staticmethod
    def _key(job_dir: Path) -> str:
        return hashlib.sha1(str(job_dir.resolve()).encode()).hexdigest()[:16]

    def add(self, job_dir: Path) -> None:
        """Put a job in line (once; a job already in line keeps its place)."""
        key = self._key(job_dir)
        if not any(self.folder.glob(f"*-{key}")):
            (self.folder / f"{time.time_ns():020d}-{key}").write_text(str(job_dir.resolve()))

    def entries(self) -> list[JobStatus]:
        """Queued and active jobs in the order they queued."""
        found = []
        for entry in sorted(self.folder.glob("*-*")):
            job_dir = Path(entry.read_text())
            try:
                status = read_status(job_dir)
            except (OSError, ValueError, KeyError):
                status = None
            if status is None or status.status not in (JobState.QUEUED, *ACTIVE):
                entry.unlink(missing_ok=True)
            else:
                found.append(status)
        return found

    def advance_locked(self, store: JobStore | None = None) -> str | None:
        """With :meth:`locked` held: launch the first queued job if no job holds the machine; its id.

        ``store`` launches it when the job is one of its own, so it keeps the process handle.
        """
        entries = self.entries()
        if any(j.status in ACTIVE for j in entries):
            return None
        queued = next((j for j in entries if j.status == JobState.QUEUED), None)
        if queued is None:
            return None
        if store is None or queued.path.parent != store.root:
            store = JobStore(queued.path.parent, self)
        store.launch(queued.job_id)
        return queued.job_id

    def start_next(self) -> str | None:
        """Launch the first queued job if the machine is free (a job ending hands over this way)."""
        with self.locked():
            return self.advance_locked()


class JobStore:
    """The training jobs of one project.

    ``board`` is the line shared with other projects' stores (see :class:`JobBoard`); without
    one, the store keeps a line of its own.
    """

    def __init__(self, jobs_dir: str | Path, board: JobBoard | None = None, launcher: Launcher | None = None):
        self.root = Path(jobs_dir)
        self.launcher = launcher or launch_process
        self.root.mkdir(parents=True, exist_ok=True)
        self.board = board or JobBoard(self.root / ".board")
        self._processes: dict[str, subprocess.Popen] = {}
        self._lock = threading.RLock()

    def path(self, job_id: str) -> Path:
        if not job_id or "/" in job_id or job_id.startswith("."):
            raise InputError(f"not a job id: {job_id!r}")
        return self.root / job_id

    def create(self, config: JobSpec, job_id: str | None = None) -> str:
        """Write a queued job's folder; a job the machine cannot run is refused first, with no folder."""
        check_processes(config)
        job_id = job_id or time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        job_dir = self.path(job_id)
        job_dir.mkdir(parents=True)
        config.save(job_dir)
        set_state(job_dir, JobState.QUEUED, created_at=time.time())
        return job_id

    def jobs(self) -> list[JobStatus]:
        return [self.status(p.name) for p in sorted(self.root.iterdir()) if (p / STATE_FILE).exists()]

    def status(self, job_id: str) -> JobStatus:
        with self._lock:
            return read_status(self.path(job_id), self._processes.get(job_id))

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

    def running(self) -> JobStatus | None:
        """The job that holds the machine, from any project on the board."""
        return next((j for j in self.board.entries() if j.status in ACTIVE), None)

    def start(self, job_id: str, resume: bool = False) -> JobStatus:
        """Put the job in line and start the first in line if the machine is free. Returns its status."""
        job_dir = self.path(job_id)
        with self._lock, self.board.locked():
            current = self.status(job_id)
            if current.status in ACTIVE:
                return current
            set_state(job_dir, JobState.QUEUED, resume=resume, reason="", advice="")
            self.board.add(job_dir)
            self.board.advance_locked(self)
            if self.status(job_id).status == JobState.QUEUED:
                set_state(job_dir, JobState.QUEUED, reason=f"waiting for {self._waiting_for()} to finish")
            return self.status(job_id)

    def _waiting_for(self) -> str:
        """What a queued job waits for, naming no other project (it may be another user's)."""
        busy = self.running()
        if busy is None:
            return "the jobs queued before it"
        return f"job {busy.job_id}" if busy.path.parent == self.root else "another project's training job"

    def start_next(self) -> str | None:
        """Start the first job in line, of any project on the board, if nothing runs; returns its id."""
        with self._lock, self.board.locked():
            return self.board.advance_locked(self)

    def launch(self, job_id: str) -> None:
        """Start the job's process now (the board calls this for the job whose turn it is)."""
        job_dir = self.path(job_id)
        resume = bool(read_state(job_dir).get("resume"))
        try:
            process = self.launcher(job_dir, resume, self.board.folder.resolve())
        except ValueError as error:
            # A job this machine cannot run (resumed where fewer GPUs are visible, an unreadable
            # config): it fails with the reason, rather than stay first in line and hold up every job.
            set_state(job_dir, JobState.FAILED, reason=str(error),
                      advice="Start a new job with settings this machine can run.")
            return
        self._processes[job_id] = process
        # "starting" and the pid in one write, so no reader sees an active job without its process;
        # a child quick enough to have written "running" or "failed" already keeps its word.
        # Leaving the line clears its "waiting for ..." reason, which would otherwise outlive the job.
        current = read_state(job_dir)["status"]
        left_line = {"reason": ""} if current in (JobState.QUEUED, *ACTIVE) else {}
        set_state(job_dir, JobState.STARTING if current == JobState.QUEUED else current, pid=process.pid, **left_line,
                  command=" ".join(map(str, process.args)) if isinstance(process.args, list) else str(process.args))

    def cancel(self, job_id: str) -> JobStatus:
        """Ask the job to save a checkpoint and stop; a queued job is cancelled at once."""
        with self._lock:
            job_dir = self.path(job_id)
            state = read_state(job_dir)
            if state["status"] == JobState.QUEUED:
                set_state(job_dir, JobState.CANCELLED, reason="cancelled before it started")
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


def main(argv: list[str] | None = None) -> int:
    """``python -m trainers.jobs start-next BOARD``: start the first queued job on the board if the
    machine is free, and print its id (or "none"). A job process runs this as it ends
    (trainers/job_files.py, ``start_next_job``), so the queue moves with nobody watching."""
    parser = argparse.ArgumentParser(description="The machine-wide line of training jobs.")
    commands = parser.add_subparsers(dest="command", required=True)
    start_next = commands.add_parser("start-next", help="start the first queued job if the machine is free")
    start_next.add_argument("board", help="the board's folder (what the job process got in $TUNEWISE_JOB_BOARD)")
    args = parser.parse_args(argv)
    print(JobBoard(args.board).start_next() or "none", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
