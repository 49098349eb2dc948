"""The training estimate against the job's measured peak, on the Snips example data (the first hour's).

    .venv/bin/python bench/estimate_snips.py        # writes bench/results/estimate_snips.json

The bundled SmolLM2-135M-Instruct, the Behaviour service as the app runs it: the examples checked,
the estimate made from the settings (LoRA r=8 on all linear layers, batch 8, max length 1024, CPU),
then a real job of ``--steps`` steps (the largest batch comes early: the job's batches are length
grouped in random order, and 5 steps of 8 cover 40 of 299 examples; the report gives the batch
shape the estimate assumed). Reported beside the estimate: the rule before (every row at max
length) and the job's own record of its peak (``Behaviour.job_memory``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "estimate_snips.json"))
    args = parser.parse_args(argv)

    from assistant.example_data import EXAMPLE_EVAL, EXAMPLE_TRAINING
    from assistant.runtime.hardware import detect_hardware
    from assistant.runtime.model_shapes import shape_for_model
    from assistant.services.behaviour import Behaviour, estimate_training
    from assistant.services.workspace import Workspace
    from trainers.config import TrainingConfig

    hardware = detect_hardware()
    settings = TrainingConfig(method="lora", lora_r=8, lora_alpha=16, batch_size=8, max_length=1024,
                              max_steps=args.steps)
    behaviour = Behaviour(Workspace(tempfile.mkdtemp(prefix="tunewise-estimate-")), "snips", create=True)
    prepared = behaviour.prepare(EXAMPLE_TRAINING.name, EXAMPLE_TRAINING.read_text(encoding="utf-8"),
                                 EXAMPLE_EVAL.name, EXAMPLE_EVAL.read_text(encoding="utf-8"), settings=settings)
    now = behaviour.estimate(prepared, settings, hardware)
    before = estimate_training(settings, prepared.train_count, now.tokens, hardware,
                               shape_for_model(settings.model))  # no lengths: every row at max length
    started = time.perf_counter()
    job_id = behaviour.start(prepared, replace(settings), "estimate-check", "cpu", now)
    status = behaviour.jobs.wait(job_id, timeout=3600, poll=2)
    if status.status != "completed":
        raise SystemExit(f"the job {status.status}: {status.reason}")
    memory = behaviour.job_memory(job_id)
    report = {
        "command": " ".join(["bench/estimate_snips.py", *(argv or sys.argv[1:])]),
        "date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.processor() or platform.machine(),
        "ram_gb": hardware.ram_gb, "examples": prepared.train_count, "steps": args.steps,
        "report_longest_tokens": prepared.report["tokens"]["max"],
        "estimate_before_gb": round(before.memory_gb, 2),
        "estimate_now_gb": round(now.memory_gb, 2),
        "estimate_now_batch": f"{now.batch_size} x {now.sequence_length}",
        "measured_peak_gb": memory.measured_gb, "measured_over_estimate": round(memory.ratio, 3),
        "job_wall_s": round(time.perf_counter() - started, 1),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
