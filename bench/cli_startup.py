"""Wall time of each CLI command on a warm disk, from the shell prompt to its exit.

    .venv/bin/python bench/cli_startup.py        # writes bench/results/cli_startup.json

A workspace gets one real document (a shared corpus file) and one Snips example file first;
each command then runs 5 times and the median is kept. The embedding model's ONNX export is made
before timing (it is made once per model and machine). The torch row forces the
sentence-transformers backend, which is what a dense search cost before the ONNX path.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / "bench" / "data" / "public"
TUNEWISE = [sys.executable, "-m", "ui.cli"]


def timed(command: list[str], env: dict, runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, timeout=600)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "cli_startup.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workspace = ["--workspace", str(Path(tmp) / "ws")]
        env = os.environ | {"HF_HUB_OFFLINE": "1"}
        examples = Path(tmp) / "snips.jsonl"
        lines = (SHARED / "tasks" / "snips" / "snips_train.jsonl").read_text().splitlines()[:50]
        examples.write_text("".join(json.dumps({"messages": [
            {"role": "user", "content": json.loads(line)["text"]},
            {"role": "assistant", "content": json.loads(line)["intent"]}]}) + "\n" for line in lines))
        corpus = SHARED / "retrieval" / "chroma_chunking_eval" / "corpora" / "state_of_the_union.md"
        subprocess.run([*TUNEWISE, "ingest", *workspace, str(corpus)], cwd=ROOT, env=env, check=True,
                       capture_output=True, timeout=900)
        question = "What did the president say about inflation?"
        commands = {
            "tunewise --help": [*TUNEWISE, "--help"],
            "tunewise projects list": [*TUNEWISE, "projects", "list", *workspace],
            "tunewise validate FILE": [*TUNEWISE, "validate", str(examples)],
            "tunewise jobs": [*TUNEWISE, "jobs", *workspace],
            "tunewise adapters list": [*TUNEWISE, "adapters", "list", *workspace],
            "tunewise search (bm25)": [*TUNEWISE, "search", *workspace, "--mode", "bm25", question],
            "tunewise search (dense)": [*TUNEWISE, "search", *workspace, "--mode", "dense", question],
            "tunewise search (hybrid)": [*TUNEWISE, "search", *workspace, "--mode", "hybrid", question],
        }
        rows = {name: round(timed(command, env, args.runs), 2) for name, command in commands.items()}
        torch_env = env | {"TUNEWISE_EMBEDDING_BACKEND": "torch"}
        rows["tunewise search (dense), sentence-transformers backend"] = round(
            timed(commands["tunewise search (dense)"], torch_env, args.runs), 2)
        for name, seconds in rows.items():
            print(f"{seconds:6.2f} s  {name}", flush=True)
    result = {"date": date.today().isoformat(), "runs": args.runs,
              "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          "python": platform.python_version()},
              "median_seconds": rows}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
