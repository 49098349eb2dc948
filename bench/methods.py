"""Which PEFT method, on a real model and public data: every CPU method, three seeds each, one run.

    .venv/bin/python -m bench.methods                    # writes bench/results/methods.json, prints the table
    .venv/bin/python -m bench.methods --quick            # two methods, one seed, a few steps: checks the path
    .venv/bin/python -m bench.methods --markdown bench/results/methods.json

It is `tunewise compare-methods` on the proof's behaviour task (bench/proof.py: Snips text-to-JSON, CC0,
requests held out that never occur in training), with the bundled SmolLM2-135M-Instruct on the CPU:
every run is an ordinary job of the machine's queue, every adapter is evaluated with the base on one loaded
model, and the result is the sweep's own table (method_sweep.SweepResult) plus two comparisons the seeds
make claims about:

- prompt tuning's spread over seeds against LoRA's (the seeds: "sensitive to its initialisation");
- LoRA at a full fine-tune's learning rate (1e-5) against LoRA at its own (2e-4): "a full fine-tune's rate
  hurts LoRA".

Every method trains for the same number of optimiser steps on the same examples in the same order (the
training seed changes the adapter's initialisation and the shuffling), so the table compares methods at one
small, equal compute budget: what a user with a CPU and an hour gets. It says nothing about where each
method ends up after several epochs. ``full`` is left out (a whole model, not an adapter: the sweep
compares adapters over one base) and ``qlora`` needs CUDA.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "methods.json"
CPU_METHODS = ("lora", "dora", "rslora", "ia3", "adalora", "prompt_tuning", "prefix_tuning", "p_tuning",
               "adaption_prompt")
FULL_FINE_TUNE_RATE = 1e-5

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from assistant.runtime.generation import DEFAULT_MODEL  # noqa: E402
from assistant.services.method_sweep import (  # noqa: E402
    SweepConfig,
    SweepPlan,
    SweepResult,
    hardware_for,
    plan_sweep,
    prepare_files,
    run_sweep,
)
from assistant.services.training_settings import training_settings  # noqa: E402
from assistant.services.workspace import Workspace  # noqa: E402
from bench.proof import log, machine, snips_split, write_jsonl  # noqa: E402


def plan_runs(behaviour, prepared, settings, methods: tuple[str, ...], seeds: int, hardware) -> tuple[SweepConfig,
                                                                                                      SweepPlan]:
    """Every method at its own rate, plus LoRA at a full fine-tune's rate: one plan, one evaluation."""
    sweep = SweepConfig(methods, seeds, (), "m", "cpu")
    plan = plan_sweep(behaviour, prepared, settings, sweep, hardware)
    if "lora" in methods:
        at_full_rate = SweepConfig(("lora",), seeds, (FULL_FINE_TUNE_RATE,), "m", "cpu")
        extra = plan_sweep(behaviour, prepared, settings, at_full_rate, hardware)
        plan = replace(plan, runs=plan.runs + extra.runs)
    return sweep, plan


def claims(result: SweepResult) -> dict:
    """The two comparisons the seeds make claims about, from the sweep's spread over seeds."""
    spread = {(s.method, s.learning_rate): s for s in result.spread}

    def of(method: str, rate: float | None = None):
        found = [s for (m, r), s in spread.items() if m == method and (rate is None or r == rate)]
        return found[0].__dict__ if found else None

    lora_rates = sorted({r for (m, r) in spread if m == "lora"}, reverse=True)
    return {"prompt_tuning_spread": of("prompt_tuning"), "lora_spread": of("lora", lora_rates[0] if lora_rates
                                                                          else None),
            "lora_at_full_fine_tune_rate": of("lora", FULL_FINE_TUNE_RATE)}


def by_method(results: dict) -> list[dict]:
    """One row per (method, rate) over its seeds: the task metrics' means (field accuracy with its sample sd),
    the training's own eval loss (the job's, on the held-out split), the fastest seed's training time (the
    least disturbed by anything else on the machine) and what the adapter costs."""
    import statistics

    groups: dict[tuple[str, float], list[dict]] = {}
    for row in results["rows"]:
        groups.setdefault((row["method"], row["learning_rate"]), []).append(row)
    losses = results.get("train_eval_loss", {})
    summary = []
    for (method, rate), rows in groups.items():
        done = [r for r in rows if r["status"] == "completed"]
        if not done:
            continue

        def mean(key: str, runs: list[dict] = done) -> float:
            return statistics.fmean(r["metrics"][key] for r in runs)

        fields = [r["metrics"]["field_accuracy"] for r in done]
        eval_losses = [losses[r["job_id"]] for r in done if losses.get(r["job_id"]) is not None]
        summary.append({
            "method": method, "learning_rate": rate, "seeds": len(done),
            "field_accuracy": statistics.fmean(fields),
            "field_accuracy_sd": statistics.stdev(fields) if len(fields) > 1 else 0.0,
            "json_valid": mean("json_valid"), "exact_match": mean("exact_match"),
            "eval_loss": statistics.fmean(eval_losses) if eval_losses else None,
            "train_seconds_min": min(r["train_seconds"] for r in done if r["train_seconds"] is not None),
            "peak_memory_gb": statistics.median(r["peak_memory_gb"] for r in done if r["peak_memory_gb"]),
            "trainable_params": done[0]["trainable_params"], "adapter_bytes": done[0]["adapter_bytes"],
            "latency_ratio": statistics.median(r["latency_ratio"] for r in done if r["latency_ratio"]),
        })
    return sorted(summary, key=lambda r: (-r["field_accuracy"], -r["json_valid"]))


def summary_table(results: dict) -> str:
    base = results["base"]["metrics"]
    lines = ["| method (lr) | field accuracy, mean ± sd over seeds | JSON valid | exact match | eval loss | "
             "train s (fastest seed) | peak RSS | trainable params | adapter | latency vs base |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
             f"| base (no training) | {base['field_accuracy']:.2f} | {base['json_valid']:.2f} | "
             f"{base['exact_match']:.2f} | | | | 0 | | 1.00 |"]
    for r in by_method(results):
        loss = f"{r['eval_loss']:.2f}" if r["eval_loss"] is not None else ""
        lines.append(f"| {r['method']} ({r['learning_rate']:g}) | {r['field_accuracy']:.2f} ± "
                     f"{r['field_accuracy_sd']:.2f} | {r['json_valid']:.2f} | {r['exact_match']:.2f} | {loss} | "
                     f"{r['train_seconds_min']:.0f} | {r['peak_memory_gb']:.1f} GB | {r['trainable_params']:,} | "
                     f"{r['adapter_bytes'] / 1e6:.1f} MB | {r['latency_ratio']:.2f} |")
    return "\n".join(lines)


def markdown(results: dict) -> str:
    """The per-method summary and the sweep's own table as docs/benchmarks.md shows them, and the two claims."""
    lines = [summary_table(results), "", results["table"], "",
             f"{results['train_examples']} training examples, {results['held_out_cases']} held-out cases; "
             f"{results['settings']['max_steps']} steps of {results['settings']['batch_size']} examples per run "
             f"(max length {results['settings']['max_length']}); {results['seeds']} seeds; "
             f"{results['run']['seconds'] / 60:.0f} min in all on {results['machine']['cpus']} CPU cores "
             f"({results['run']['date']})."]
    for label, key in (("prompt tuning over seeds", "prompt_tuning_spread"), ("LoRA over seeds", "lora_spread"),
                       ("LoRA at a full fine-tune's rate (1e-5)", "lora_at_full_fine_tune_rate")):
        spread = results["claims"].get(key)
        if spread:
            lines.append(f"- {label}: mean {spread['mean']:.2f}, sd {spread['stdev']:.2f}, "
                         f"range {spread['low']:.2f}-{spread['high']:.2f} (n={spread['seeds']})")
    return "\n".join(lines)


def training_table(workspace: Path) -> tuple[list[dict], str]:
    """What each run's job measured, read from a sweep's workspace (``--workspace``): the eval loss on the
    held-out split at the end of training, train seconds and peak RSS, per (method, rate) over seeds. Available
    as soon as the jobs end, before the answers are evaluated."""
    import statistics

    groups: dict[tuple[str, float], list[dict]] = {}
    for job in sorted((workspace / "projects" / "methods" / "jobs").iterdir()):
        state, config = (json.loads((job / name).read_text()) for name in ("state.json", "config.json"))
        if state["status"] == "completed":
            groups.setdefault((config["method"], config["learning_rate"]), []).append(state)
    rows = []
    for (method, rate), states in groups.items():
        losses = [s["metrics"]["eval_loss"] for s in states]
        rows.append({"method": method, "learning_rate": rate, "seeds": len(states),
                     "eval_loss": statistics.fmean(losses), "eval_loss_sd": statistics.stdev(losses) if len(losses) > 1
                     else 0.0, "eval_loss_range": [min(losses), max(losses)],
                     "train_seconds_min": min(s["metrics"]["train_runtime"] for s in states),
                     "peak_rss_gb": statistics.median(s.get("peak_rss_gb", 0) for s in states)})
    rows.sort(key=lambda r: r["eval_loss"])
    lines = ["| method (lr) | eval loss, mean ± sd over seeds | range | train s (fastest seed) | peak RSS |",
             "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['method']} ({r['learning_rate']:g}) | {r['eval_loss']:.2f} ± {r['eval_loss_sd']:.2f} | "
              f"{r['eval_loss_range'][0]:.2f}-{r['eval_loss_range'][1]:.2f} | {r['train_seconds_min']:.0f} | "
              f"{r['peak_rss_gb']:.1f} GB |" for r in rows]
    return rows, "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=",".join(CPU_METHODS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-steps", type=int, default=24, help="optimiser steps per run")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--snips-train", type=int, default=1000)
    parser.add_argument("--snips-cases", type=int, default=60, help="held-out requests every model answers")
    parser.add_argument("--quick", action="store_true", help="two methods, one seed, 2 steps: checks the path")
    parser.add_argument("--workspace", type=Path, help="keep the project here (default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--markdown", type=Path, metavar="RESULTS", help="print a results file's tables and exit")
    parser.add_argument("--training-table", type=Path, metavar="WORKSPACE",
                        help="print what the jobs of a run kept in WORKSPACE measured (eval loss, time) and exit")
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(args.markdown.read_text())))
        return 0
    if args.training_table:
        rows, table = training_table(args.training_table)
        print(table)
        print(json.dumps(rows, indent=1), file=sys.stderr)
        return 0
    if args.quick:
        args.methods, args.seeds, args.max_steps, args.snips_train, args.snips_cases = "lora,ia3", 1, 2, 64, 6
    began = time.perf_counter()
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    root = args.workspace or Path(tempfile.mkdtemp(prefix="tunewise-methods-"))
    workspace = Workspace(root)
    hardware = hardware_for("cpu")
    train_records, held_out = snips_split(args.snips_train, args.snips_cases)
    train_file = write_jsonl(root / "snips_train.jsonl", train_records)
    eval_file = write_jsonl(root / "snips_eval.jsonl", held_out)
    settings = replace(training_settings(None, hardware).config, model=DEFAULT_MODEL, max_steps=args.max_steps,
                       batch_size=args.batch_size, max_length=args.max_length)
    behaviour, prepared = prepare_files(workspace, "methods", train_file, eval_file, settings)
    sweep, plan = plan_runs(behaviour, prepared, settings, methods, args.seeds, hardware)
    log(f"estimate: {plan.text()}")
    result = run_sweep(behaviour, plan, sweep, log)
    train_eval_loss = {row.job_id: behaviour.jobs.status(row.job_id).metrics.get("eval_loss") for row in result.rows}
    results = {"model": DEFAULT_MODEL, "machine": machine(), "quick": args.quick, "seeds": args.seeds,
               "train_examples": prepared.train_count, "held_out_cases": prepared.eval_count,
               "settings": {"max_steps": args.max_steps, "batch_size": args.batch_size,
                            "max_length": args.max_length},
               "estimate": plan.text(), **result.to_dict(), "table": result.table(), "claims": claims(result),
               "train_eval_loss": train_eval_loss,
               "run": {"date": time.strftime("%Y-%m-%d %H:%M"), "seconds": round(time.perf_counter() - began, 1)}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str) + "\n")
    log(f"done in {results['run']['seconds']:.0f} s: {args.out}")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
