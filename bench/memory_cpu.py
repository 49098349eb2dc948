"""The training-memory estimate against a measured CPU training process, on the bundled real model.

    .venv/bin/python bench/memory_cpu.py            # writes bench/results/memory_cpu.json

SmolLM2-135M-Instruct, LoRA r=8 on every linear layer, fp32 on the CPU as Tunewise trains there
(no checkpointing; TRL's fused LM head), at two sequence lengths and two batch sizes. Each case runs
Tunewise's job (trainers.sft.train) for 3 steps in its own process on examples longer than the
sequence length (every batch full). Measured: the process's peak RSS (ru_maxrss) minus its RSS
just before the model loads (Python, torch, transformers, TRL and PEFT imported), which is what the
estimate covers: weights, adapters, gradients, optimiser state and activations.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CASES = ((256, 2), (256, 8), (512, 2))  # 512 x 8 would need about 18 GB on CPU


def rss_now_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def write_long_answers(path: Path, count: int) -> None:
    """Short questions with answers longer than any case's sequence length, so every batch is full."""
    import random

    from tests.tiny_model import tokenizer_corpus

    words, rng = tokenizer_corpus().split(), random.Random(0)
    with path.open("w") as out:
        for _ in range(count):
            answer = " ".join(rng.choice(words) for _ in range(900))
            out.write(json.dumps({"messages": [{"role": "user", "content": "Say something from the speech."},
                                               {"role": "assistant", "content": answer}]}) + "\n")


def child(seq_len: int, batch: int, work: Path) -> dict:
    import torch  # noqa: F401 - imported before the baseline, as the job process has it
    import transformers  # noqa: F401
    import trl  # noqa: F401

    from assistant.runtime.models import BUNDLED_MODEL, resolve_model
    from trainers.config import JobSpec
    from trainers.sft import train

    baseline = rss_now_mb()
    job = work / f"job-{seq_len}-{batch}"
    job.mkdir()
    JobSpec.of(str(work / "train.jsonl"), device="cpu", model_path=resolve_model(BUNDLED_MODEL), model=BUNDLED_MODEL,
               max_steps=3, batch_size=batch, max_length=seq_len, logging_steps=1, save_steps=100_000,
               lora_r=8, lora_alpha=16).save(job)
    started = time.time()
    status = train(job)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"status": str(status), "baseline_mb": round(baseline), "peak_mb": round(peak),
            "measured_gb": round((peak - baseline) * 1024 ** 2 / 1e9, 3), "seconds": round(time.time() - started, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "memory_cpu.json"))
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        seq_len, batch = map(int, args.case.split("x"))
        print("RESULT " + json.dumps(child(seq_len, batch, Path(args.work))), flush=True)
        return 0
    from assistant.core.memory import TrainingShape, estimate_memory
    from assistant.runtime.model_shapes import shape_for_model
    work = Path(tempfile.mkdtemp(prefix="tunewise-memory-cpu-"))
    write_long_answers(work / "train.jsonl", 40)
    shape = shape_for_model("bundled:SmolLM2-135M-Instruct")
    rows = []
    for seq_len, batch in CASES:
        done = subprocess.run([sys.executable, __file__, "--case", f"{seq_len}x{batch}", "--work", str(work)],
                              capture_output=True, text=True, cwd=ROOT)
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        measured = json.loads(lines[-1][7:]) if lines else {"error": done.stderr[-2000:]}
        training = TrainingShape(seq_len=seq_len, batch_size=batch, gradient_checkpointing=False, on_cpu=True)
        predicted = estimate_memory(shape, training, lora_rank=8).lora
        row = {"seq_len": seq_len, "batch_size": batch, "predicted_gb": round(predicted.total_gb, 3),
               "predicted_activations_gb": round(predicted.activations_gb, 3)} | measured
        if "measured_gb" in measured:
            row["error_pct"] = round(100 * (predicted.total_gb - measured["measured_gb"]) / measured["measured_gb"], 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    report = {"command": "bench/memory_cpu.py", "date": time.strftime("%Y-%m-%d"), "platform": platform.platform(),
              "model": "SmolLM2-135M-Instruct (bundled), fp32, LoRA r=8 all-linear, no checkpointing", "cases": rows}
    Path(args.out).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
