"""Soak and fault run: simulated users against one server with the real bundled model, a training job
killed and resumed, and the server restarted, then a check that nothing was lost.

    .venv/bin/python bench/soak.py --users 20 --minutes 10     # writes bench/results/soak.json

Not part of CI. Each user signs in (hashed logins), then loops over the public endpoints with
weights: an interview turn (/interview), a search (/search), an upload of a small document
(/ingest) and a side-by-side chat turn on the real model (/compare). In the middle, one training job
(the bundled model, a few steps) is started with `tunewise train --detach`, its process killed with
SIGKILL and resumed with `tunewise jobs resume`, and the server is stopped and started again; the
clients reconnect. At the end every acknowledged interview turn must be in its project's transcript,
every acknowledged upload in its project's index (SQLite and Chroma agreeing), and the job completed.
Blind votes are private events with no named endpoint, so they are not part of this run.

Hostile clients run beside the users: ``--droppers`` clients that start a long streamed /v1 answer
(1,024 tokens asked, a long prompt), read three events and hang up, then ask a short non-streamed
question (which must be answered, or told 503 "busy" with Retry-After, never left waiting); and one
client that tries what a web page on another site could (a text/plain POST with a foreign Origin, a
JSON POST with a foreign Origin, a rebound Host name), all of which must be refused. A prober asks
``GET /config`` every half second throughout: its p95 is how long the page waits while all this runs,
and a probe that takes over 10 s counts as a hang. ``--no-faults`` leaves out the training job and the
restart, to measure the server under the hostile clients alone.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ACTIONS = (("interview", 4), ("search", 4), ("ingest", 1), ("compare", 1))
ANSWERS = ["Answer questions about our HR policies", "knowledge", "yes", "about 200", "yes", "rarely",
           "no GPU", "no preference", "no", "one"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (the parsing worker, a training job)."""
    total = 0
    for candidate in [pid, *children(pid)]:
        try:
            for line in Path(f"/proc/{candidate}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def children(pid: int) -> list[int]:
    try:
        found = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return found + [g for c in found for g in children(c)]


class Server:
    def __init__(self, workspace: Path, users_file: Path, port: int, log: Path):
        self.workspace, self.users_file, self.port, self.log = workspace, users_file, port, log
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> None:
        env = os.environ | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
        with open(self.log, "a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ui.cli", "serve", "--port", str(self.port), "--workspace",
                 str(self.workspace), "--auth", str(self.users_file)], cwd=ROOT, env=env, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError("the server did not start; see " + str(self.log))

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


class SimulatedUser(threading.Thread):
    def __init__(self, name: str, password: str, server: Server, deadline: float, record, seed: int, scratch: Path,
                 actions=ACTIONS):
        super().__init__(daemon=True)
        self.actions = actions
        self.name_, self.password, self.server, self.deadline, self.record = name, password, server, deadline, record
        self.random = random.Random(seed)
        self.scratch = scratch
        self.turns_acknowledged = 0
        self.uploads_acknowledged: set[str] = set()
        self.client = None

    def connect(self):
        from gradio_client import Client

        self.client = Client(self.server.url, auth=(self.name_, self.password), verbose=False)

    def act(self, action: str) -> None:
        project = "soak"
        if action == "interview":
            self.client.predict(ANSWERS[self.turns_acknowledged % len(ANSWERS)], project, api_name="/interview")
            self.turns_acknowledged += 1
        elif action == "search":
            self.client.predict("paid leave days", 3, "bm25", project, api_name="/search")
        elif action == "ingest":
            from gradio_client import handle_file

            name = f"{self.name_}-note-{len(self.uploads_acknowledged)}.md"
            path = self.scratch / name
            path.write_text(f"# Note {name}\n\nStaff of team {self.name_} get {20 + len(name)} days of leave.\n")
            results, _, _ = self.client.predict([handle_file(str(path))], project, api_name="/ingest")
            if results["data"][0][1] in ("added", "unchanged"):
                self.uploads_acknowledged.add(name)
        elif action == "compare":  # base against base + retrieval, which needs a document first
            if not self.uploads_acknowledged:
                return self.act("ingest")
            self.client.predict("How many days of leave do staff get?", ["base", "base + retrieval"], project,
                                api_name="/compare")

    def run(self) -> None:
        actions, weights = zip(*self.actions, strict=True)
        # A project exists once its interview has started: the first act is always a turn.
        pending = ["interview"]
        while time.time() < self.deadline:
            action = pending.pop() if pending else self.random.choices(actions, weights)[0]
            started = time.perf_counter()
            try:
                if self.client is None:
                    self.connect()
                self.act(action)
                self.record(action, time.perf_counter() - started, None)
            except Exception as error:  # noqa: BLE001 - every failure is counted, then the user carries on
                self.record(action, time.perf_counter() - started, f"{type(error).__name__}: {str(error)[:160]}")
                self.client = None  # reconnect (the server may be restarting)
                time.sleep(1.0)


LONG_PROMPT = "Tell me everything about the sea, its tides, its fish and its storms. " * 30
HANG_S = 10.0
"""A request that takes longer than this is counted as a hang."""


def dropper(server: Server, user: str, password: str, deadline: float, record) -> None:
    """Start long streamed /v1 answers and hang up after three events, then ask a short question."""
    import httpx

    headers = {"Authorization": f"Bearer {user}:{password}"}
    long_body = {"model": "soak/base", "messages": [{"role": "user", "content": LONG_PROMPT}], "max_tokens": 1024,
                 "stream": True}
    short_body = {"model": "soak/base", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 8}
    url = server.url + "v1/chat/completions"
    while time.time() < deadline:
        started = time.perf_counter()
        try:
            with httpx.stream("POST", url, json=long_body, headers=headers, timeout=HANG_S * 6) as response:
                if response.status_code == 404:  # the project is made by the users' first interview turn
                    time.sleep(1.0)
                    continue
                events = 0
                lines = response.iter_lines()
                for line in lines:
                    events += line.startswith("data:")
                    if events == 3:
                        break
                busy = response.status_code == 503 and "retry-after" in response.headers
                outcome = None if response.status_code == 200 or busy else f"HTTP {response.status_code}"
            # A stream that started and was dropped, or one told "busy" (503 + Retry-After) after the wait.
            record("v1_stream_busy" if busy else "v1_dropped_stream", time.perf_counter() - started, outcome)
            started = time.perf_counter()
            answer = httpx.post(url, json=short_body, headers=headers, timeout=HANG_S * 6)
            took = time.perf_counter() - started
            bad = answer.status_code not in (200, 503) or (answer.status_code == 503 and "retry-after" not in
                                                           answer.headers)
            record("v1_after_drop", took, f"HTTP {answer.status_code}" if bad else
                   (f"hang: {took:.1f} s" if took > HANG_S * 3 else None))
            record("v1_after_drop_busy" if answer.status_code == 503 else "v1_after_drop_answered", took, None)
        except Exception as error:  # noqa: BLE001 - counted; the server may be restarting
            record("v1_dropped_stream", time.perf_counter() - started, f"{type(error).__name__}: {str(error)[:120]}")
            time.sleep(1.0)


def cross_site(server: Server, deadline: float, record) -> None:
    """What a page on another site could send to a local server: each must be refused (4xx)."""
    import httpx

    url = server.url + "v1/chat/completions"
    body = json.dumps({"model": "soak/base", "messages": [{"role": "user", "content": "hi"}]})
    attempts = [
        ("post", url, {"Content-Type": "text/plain", "Origin": "http://evil.example"}, body),
        ("post", url, {"Content-Type": "application/json", "Origin": "http://evil.example"}, body),
        ("get", server.url + "v1/models", {"Host": "rebind.evil.example"}, None),
        ("get", server.url + "config", {"Host": "rebind.evil.example"}, None),
    ]
    while time.time() < deadline:
        for method, target, headers, content in attempts:
            started = time.perf_counter()
            try:
                response = httpx.request(method, target, headers=headers, content=content, timeout=HANG_S)
                refused = 400 <= response.status_code < 500
                record("cross_site", time.perf_counter() - started,
                       None if refused else f"accepted: HTTP {response.status_code} for {method} {headers}")
            except Exception as error:  # noqa: BLE001
                record("cross_site", time.perf_counter() - started, f"{type(error).__name__}: {str(error)[:120]}")
        time.sleep(1.0)


def config_prober(server: Server, deadline: float, record) -> None:
    """GET /config every half second: how long the page waits while everything else runs."""
    import httpx

    while time.time() < deadline:
        started = time.perf_counter()
        try:
            response = httpx.get(server.url + "config", timeout=HANG_S)
            took = time.perf_counter() - started
            # Signed-in pages answer 401 without a session cookie: the server answered, which is what counts.
            record("config", took, None if response.status_code in (200, 401) else f"HTTP {response.status_code}")
        except httpx.TimeoutException:
            record("config", time.perf_counter() - started, f"hang: no answer in {HANG_S:g} s")
        except Exception as error:  # noqa: BLE001
            record("config", time.perf_counter() - started, f"{type(error).__name__}: {str(error)[:120]}")
        time.sleep(0.5)


def train_kill_resume(workspace: Path, owner: str, log: Path) -> dict:
    """Start a short training job through the CLI, SIGKILL it mid-run, resume it, wait for the end."""
    from assistant.services.workspace import Workspace

    user_ws = Workspace(workspace).for_user(owner)
    user_ws.ensure("soak-training")
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    common = ["--workspace", str(user_ws.root), "--project", "soak-training"]
    data = ROOT / "assistant" / "example_data" / "snips_train.jsonl"
    with open(log, "a") as out:
        subprocess.run([sys.executable, "-m", "ui.cli", "train", "--data", str(data), "--max-steps", "12",
                        "--batch-size", "2", "--max-length", "128", "--save-steps", "4", "--name", "soak",
                        "--device", "cpu", "--detach", *common], cwd=ROOT, env=env, stdout=out, stderr=out, check=True)
    jobs = user_ws.project("soak-training").path / "jobs"
    job_dir = next(jobs.iterdir())
    deadline = time.time() + 900
    while time.time() < deadline:  # kill it once a checkpoint exists
        state = json.loads((job_dir / "state.json").read_text())
        if state.get("step", 0) >= 5 and state.get("pid"):
            break
        time.sleep(1)
    os.kill(state["pid"], signal.SIGKILL)
    killed_at = state.get("step", 0)
    time.sleep(2)
    with open(log, "a") as out:
        subprocess.run([sys.executable, "-m", "ui.cli", "jobs", "resume", job_dir.name, *common], cwd=ROOT,
                       env=env, stdout=out, stderr=out, check=False)
    while time.time() < deadline:
        state = json.loads((job_dir / "state.json").read_text())
        if state["status"] in ("completed", "failed", "cancelled"):
            break
        time.sleep(2)
    progress = [json.loads(line) for line in (job_dir / "progress.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in progress if "loss" in r]
    return {"killed_at_step": killed_at, "final_status": state["status"], "final_step": state.get("step"),
            "progress_never_goes_back": steps == sorted(steps)}


def errors_by_kind(errors: dict[str, list], restart: dict) -> dict:
    """Error counts per endpoint and kind, split into those within a minute of the restart and the rest."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    start = restart.get("at_s", -1e9)
    end = start + restart.get("down_s", 0) + 60
    for action, found in errors.items():
        for error in found:
            phase = "around the restart" if start <= error["t"] <= end else "otherwise"
            counts[action][f"{phase}: {error['error'].split(':')[0]}"] += 1
    return {action: dict(kinds) for action, kinds in counts.items()}


def consistency(workspace: Path, users: list[SimulatedUser]) -> dict:
    from assistant.services.workspace import Workspace

    report = {"turns_lost": 0, "uploads_lost": 0, "index_mismatches": 0, "users_checked": 0}
    for user in users:
        user_ws = Workspace(workspace).for_user(user.name_)
        if not user_ws.exists("soak"):
            continue
        report["users_checked"] += 1
        transcript = user_ws.load("soak").get("interview", {}).get("transcript", [])
        said = [m for m in transcript if m.get("role") == "user"]
        report["turns_lost"] += max(0, user.turns_acknowledged - len(said))
        index = user_ws.project("soak").path / "index"
        if (index / "chunks.sqlite").exists():
            with sqlite3.connect(index / "chunks.sqlite") as db:
                sources = {row[0] for row in db.execute("SELECT source FROM documents WHERE status = 'ready'")}
                chunk_rows = db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
            report["uploads_lost"] += len(user.uploads_acknowledged - sources)
            import chromadb
            from chromadb.config import Settings

            client = chromadb.PersistentClient(str(index / "chroma"), settings=Settings(anonymized_telemetry=False))
            vectors = sum(c.count() for c in client.list_collections())
            report["index_mismatches"] += int(vectors != chunk_rows)
        else:
            report["uploads_lost"] += len(user.uploads_acknowledged)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--droppers", type=int, default=2, help="/v1 clients that hang up mid-answer")
    parser.add_argument("--no-faults", action="store_true", help="no training job kill and no server restart")
    parser.add_argument("--compare-weight", type=float, default=1.0,
                        help="how often users ask /compare (on the model), against interview and search at 4")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "soak.json"))
    args = parser.parse_args(argv)
    from ui.logins import add_user

    work = Path(tempfile.mkdtemp(prefix="tunewise-soak-"))
    users_file, scratch = work / "users.txt", work / "uploads"
    scratch.mkdir()
    names = [f"user{i:02d}" for i in range(args.users)]
    for name in names:
        add_user(users_file, name, f"password-of-{name}")
    server = Server(work / "workspace", users_file, free_port(), work / "server.log")
    started = time.time()
    server.start()
    deadline = started + args.minutes * 60
    calls: dict[str, list] = defaultdict(list)
    errors: dict[str, list] = defaultdict(list)
    lock = threading.Lock()

    def record(action: str, seconds: float, error: str | None) -> None:
        with lock:
            calls[action].append(seconds)
            if error:
                errors[action].append({"t": round(time.time() - started, 1), "error": error})

    actions = tuple((a, args.compare_weight if a == "compare" else w) for a, w in ACTIONS)
    users = [SimulatedUser(n, f"password-of-{n}", server, deadline, record, i, scratch, actions)
             for i, n in enumerate(names)]
    for user in users:
        user.start()
    hostile = [threading.Thread(target=dropper, args=(server, names[i % len(names)], f"password-of-"
                                                      f"{names[i % len(names)]}", deadline, record), daemon=True)
               for i in range(args.droppers)]
    hostile += [threading.Thread(target=cross_site, args=(server, deadline, record), daemon=True),
                threading.Thread(target=config_prober, args=(server, deadline, record), daemon=True)]
    for client in hostile:
        client.start()
    memory, training, restart = [], {}, {}
    trainer = threading.Thread(target=lambda: training.update(
        {"skipped": "--no-faults"} if args.no_faults else train_kill_resume(work / "workspace", names[0],
                                                                            work / "train.log")))
    trainer.start()
    restarted = args.no_faults
    while time.time() < deadline:
        memory.append({"t": round(time.time() - started), "server_rss_mb": round(rss_mb(server.process.pid))})
        if not restarted and time.time() > started + args.minutes * 30:  # halfway: stop and start the server
            down = time.time()
            server.stop()
            server.start()
            restart = {"at_s": round(down - started), "down_s": round(time.time() - down, 1)}
            restarted = True
        time.sleep(5)
    for user in users:
        user.join(timeout=300)
    for client in hostile:
        client.join(timeout=300)
    trainer.join(timeout=900)
    server.stop()
    checks = consistency(work / "workspace", users)

    def p(values, q):
        return round(statistics.quantiles(values, n=100)[q - 1], 3) if len(values) >= 2 else None

    report = {
        "command": " ".join(["bench/soak.py", *(argv or sys.argv[1:])]), "date": time.strftime("%Y-%m-%d %H:%M"),
        "users": args.users, "minutes": args.minutes, "cpu_cores": os.cpu_count(),
        "endpoints": {a: {"calls": len(v), "errors": len(errors[a]), "p50_s": p(v, 50), "p95_s": p(v, 95)}
                      for a, v in sorted(calls.items())},
        "errors_by_kind": errors_by_kind(errors, restart),
        "hangs": sum(1 for e in errors.get("config", []) + errors.get("v1_after_drop", []) if "hang" in e["error"]),
        "config_probe": {"calls": len(calls["config"]), "p50_s": p(calls["config"], 50),
                         "p95_s": p(calls["config"], 95), "max_s": round(max(calls["config"], default=0), 3)},
        "errors_sample": {a: e[:5] for a, e in errors.items()},
        "server_restart": restart, "training": training, "consistency": checks,
        "server_rss_mb": {"min": min(m["server_rss_mb"] for m in memory),
                          "max": max(m["server_rss_mb"] for m in memory), "samples": memory},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k not in ("server_rss_mb",)} |
                     {"server_rss_mb": {k: report["server_rss_mb"][k] for k in ("min", "max")}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
