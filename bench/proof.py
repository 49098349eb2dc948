"""The proof: Tunewise's whole loop on real weights and public data, and whether the plan held.

    .venv/bin/python -m bench.proof                      # both tasks, writes bench/results/proof.json
    .venv/bin/python -m bench.proof --tasks behaviour    # one task
    .venv/bin/python -m bench.proof --quick              # small sizes, to check the path (minutes)

Everything goes through Tunewise's own code, as a user's project would: the interview's plan
(Advisor), ingest into Chroma + FTS5 (KnowledgeBase), the gap check before training, TRL + PEFT
LoRA in the job process (Behaviour.start), the held-out evaluation over one base with the
adapter attached (VariantModel, run_evaluation), and "did the plan hold?" (record_outcome).
The model is the bundled SmolLM2-135M-Instruct on the CPU.

Two tasks, on public data we did not write:
- knowledge: questions about five public corpora (the chunking-evaluation set in
  bench/data/public/retrieval, MIT repository), each with a short answer taken from its gold span by
  fixed rules (bench/knowledge_task.py); scored by contains-reference. The LoRA variant is the
  "fine-tune the facts in" alternative: trained on the other questions and their gold passages.
- behaviour: Snips text-to-JSON (CC0): 1,000 training requests, 100 held-out requests that do not
  occur in training; scored by JSON validity, field accuracy and exact match. Its retrieval
  variants search the training examples, ingested as a document: few-shot prompting by retrieval,
  the prompting baseline RULES.md asks for beside a LoRA.

Variants on both: base, base + few-shot (4 training examples, the most similar first), base + retrieval,
LoRA, LoRA + retrieval, with the same greedy decoding; every variant also gets the forgetting probe
(general text's loss, general questions' accuracy: trainers/general_ability.py).
The repetition ablation runs the base and LoRA answers again without the repetition penalty.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT / "bench" / "data" / "public"
SNIPS = SHARED / "tasks" / "snips"
RESULTS = ROOT / "bench" / "results" / "proof.json"
SNIPS_SYSTEM = "Return the intent and slots of the user's request as JSON."

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from assistant.core.rules import Plan  # noqa: E402
from assistant.runtime.generation import DEFAULT_MODEL, ModelSettings, load_model  # noqa: E402
from assistant.runtime.hardware import detect_hardware  # noqa: E402
from assistant.runtime.variants import Aids, Variant, VariantModel  # noqa: E402
from assistant.services.advisor import Advisor  # noqa: E402
from assistant.services.behaviour import Behaviour  # noqa: E402
from assistant.services.evaluation import EvalCase, gap_check, generation_for, record_outcome, run_evaluation  # noqa: E402
from assistant.services.knowledge import KnowledgeBase  # noqa: E402
from assistant.services.training_settings import training_settings  # noqa: E402
from assistant.services.workspace import Workspace  # noqa: E402


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def snips_record(row: dict) -> dict:
    answer = json.dumps({"intent": row["intent"], "slots": row["slots"]}, ensure_ascii=False, sort_keys=True)
    return {"messages": [{"role": "system", "content": SNIPS_SYSTEM}, {"role": "user", "content": row["text"]},
                         {"role": "assistant", "content": answer}]}


def snips_split(train_size: int, held_out: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """A seeded sample of every intent; held-out requests never occur in training (the shared test
    file repeats 8 training texts)."""
    train = [json.loads(line) for line in (SNIPS / "snips_train.jsonl").read_text().splitlines() if line.strip()]
    test = [json.loads(line) for line in (SNIPS / "snips_test.jsonl").read_text().splitlines() if line.strip()]
    random.Random(seed).shuffle(train)
    random.Random(seed + 1).shuffle(test)
    train = train[:train_size]
    seen = {row["text"].strip().lower() for row in train}
    test = [row for row in test if row["text"].strip().lower() not in seen][:held_out]
    return [snips_record(r) for r in train], [snips_record(r) for r in test]


def examples_as_document(records: list[dict], path: Path) -> Path:
    """Training examples as a document to retrieve from: one request and its JSON per paragraph."""
    paragraphs = [f"Request: {r['messages'][1]['content']}\nJSON: {r['messages'][2]['content']}" for r in records]
    path.write_text("# Labelled requests\n\n" + "\n\n".join(paragraphs) + "\n", encoding="utf-8")
    return path


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def cases_of(records: list[dict]) -> list[EvalCase]:
    return [EvalCase(tuple(r["messages"][:-1]), r["messages"][-1]["content"], i + 1) for i, r in enumerate(records)]


def train_adapter(workspace: Workspace, project: str, train_file: Path, settings, name: str) -> dict:
    """Prepare, validate and train through the project's Behaviour service; the job's own numbers."""
    behaviour = Behaviour(workspace, project, create=True)
    prepared = behaviour.prepare(train_file.name, train_file.read_text(encoding="utf-8"), settings=settings)
    started = time.perf_counter()
    job_id = behaviour.start(prepared, settings, name, "cpu")
    status = behaviour.jobs.wait(job_id, timeout=3600, poll=2)
    wall = time.perf_counter() - started
    if status.status != "completed":
        raise RuntimeError(f"training {name} {status.status}: {status.reason} {status.advice}")
    behaviour.register_finished()
    card = json.loads((behaviour.adapters.path(name) / "training.json").read_text())
    metrics = card.get("metrics", {})
    progress = behaviour.jobs.progress(job_id)
    tokens = max((p.get("tokens_per_s", 0) for p in progress), default=None)
    losses = [p["loss"] for p in progress if "loss" in p]
    return {"adapter": name, "train_examples": prepared.train_count, "split_eval_examples": prepared.eval_count,
            "steps": card.get("steps"), "wall_s": round(wall, 1),
            "train_runtime_s": round(metrics.get("train_runtime", 0), 1),
            "tokens_per_s": tokens, "first_loss": losses[0] if losses else None,
            "last_loss": losses[-1] if losses else None, "eval_loss": metrics.get("eval_loss"),
            "settings": {k: getattr(settings, k) for k in ("model", "method", "lora_r", "lora_alpha", "target_modules",
                                                           "learning_rate", "epochs", "batch_size", "max_length")}}


def evaluate(model: VariantModel, adapter_key: str, cases: list[EvalCase], name: str, aids: Aids, generation) -> dict:
    """The five variants in one run, with the forgetting probe: base, base + few-shot (the task's
    system prompt and 4 of the training examples, the most similar first), base + retrieval, the LoRA
    adapter, and the adapter + retrieval."""
    variants = [Variant(), Variant(None, ("few-shot",)), Variant(None, ("retrieval",)), Variant(adapter_key),
                Variant(adapter_key, ("retrieval",))]
    started = time.perf_counter()
    report = run_evaluation(model, variants, cases, name, generation, aids,
                            lambda fraction, label: log(f"  eval {fraction:4.0%} {label}"), general=True)
    log(f"  evaluation took {time.perf_counter() - started:.0f} s")
    return report


def summarise(report) -> list[dict]:
    keep = ("examples", "exact_match", "contains_reference", "json_valid", "field_accuracy", "citation_rate",
            "latency_p50_s", "general_loss", "general_loss_interval", "general_accuracy", "general_accuracy_interval",
            "general_n")
    return [{"variant": r.variant, **{k: r.metrics.get(k) for k in keep}} for r in report.results]


def repetition_ablation(model, adapter_key, cases, name, search, generation, limit: int) -> dict:
    """The same answers without the repetition penalty: its effect on the task's numbers."""
    from assistant.services.evaluation import run_evaluation as evaluate_variants

    subset = cases[:limit]
    out = {}
    for penalty in (1.0, generation.repetition_penalty):
        report = evaluate_variants(model, [Variant(), Variant(adapter_key)], subset, name,
                                   replace(generation, repetition_penalty=penalty), search)
        out[f"repetition_penalty_{penalty:g}"] = summarise(report)
    return out


def run_task(task: str, args, workspace: Workspace, model: VariantModel, scratch: Path) -> dict:
    advisor = Advisor(workspace)
    project = f"proof-{task}"
    hardware = detect_hardware()
    kb = KnowledgeBase(workspace, project)
    if task == "knowledge":
        from bench.knowledge_task import build_knowledge_task

        built = build_knowledge_task(SHARED / "retrieval" / "chroma_chunking_eval", held_out=args.knowledge_cases)
        held_out = [{"messages": [{"role": "user", "content": q["question"]},
                                  {"role": "assistant", "content": q["answer"]}]} for q in built.held_out]
        train_records = built.train[:args.knowledge_train] if args.knowledge_train else built.train
        documents = built.documents
        profile = {"task": "answer questions about five public document collections", "gap": "knowledge",
                   "documents": True, "examples": len(train_records), "vram_gb": 0, "can_measure": True,
                   "changes": "rarely"}
    else:
        train_records, held_out = snips_split(args.snips_train, args.snips_cases)
        documents = [examples_as_document(train_records, scratch / "snips_examples.md")]
        profile = {"task": "turn voice-assistant requests into intent + slots JSON", "gap": "behaviour",
                   "documents": False, "examples": len(train_records), "vram_gb": 0, "can_measure": True,
                   "changes": "rarely"}
    advisor.edit(project, profile)
    plan = advisor.plan(project)
    log(f"{task}: plan: {plan['decision']}")
    started = time.perf_counter()
    ingested = kb.ingest([str(p) for p in documents])
    ingest_s = time.perf_counter() - started
    chunks = sum(getattr(r, "chunks", 0) or 0 for r in ingested)
    log(f"{task}: ingested {len(documents)} documents ({chunks} chunks) in {ingest_s:.0f} s")

    def search(question):
        return kb.search(question, args.k, with_similarity=True)

    cases = cases_of(held_out)
    generation = generation_for(cases, model.loaded.tokenizer)
    log(f"{task}: {len(cases)} held-out cases, answer cap {generation.max_new_tokens} tokens")
    gap_cases = cases[:args.gap_cases]
    started = time.perf_counter()
    examples = model.examples_pool([r["messages"] for r in train_records])
    finding, new_decision = gap_check(advisor, project, model, gap_cases, f"{task} held-out",
                                      Aids(search=search, examples=examples), generation)
    gap_s = time.perf_counter() - started
    log(f"{task}: gap check ({len(gap_cases)} cases, {gap_s:.0f} s): {finding.text}")

    settings = training_settings(Plan.from_dict(advisor.plan(project)), hardware).config
    settings = replace(settings, model=DEFAULT_MODEL, method="lora", epochs=args.epochs, batch_size=8,
                       max_length=args.max_length, eval_fraction=0.05)
    train_file = write_jsonl(scratch / f"{task}_train.jsonl", train_records)
    log(f"{task}: training LoRA on {len(train_records)} examples ...")
    training = train_adapter(workspace, project, train_file, settings, f"{task}-lora")
    log(f"{task}: trained in {training['wall_s']} s, {training['tokens_per_s']} tokens/s, "
        f"loss {training['first_loss']} -> {training['last_loss']}")
    adapter = Behaviour(workspace, project).adapters.get(f"{task}-lora")
    key = f"{task}-lora"
    model.add_adapter(key, adapter.path, adapter.base_model)
    aids = Aids(search=search, examples=examples)
    report = evaluate(model, key, cases, f"{task} held-out", aids, generation)
    held = record_outcome(workspace, project, report)
    outcome = workspace.load(project).get("outcome", {})
    result = {
        "task": task, "plan": {"decision": plan["decision"], "retrieval": plan["retrieval"],
                               "finetune": plan["finetune"], "flags": plan["flags"]},
        "documents": [Path(p).name for p in documents], "chunks": chunks, "ingest_s": round(ingest_s, 1),
        "held_out_cases": len(cases), "answer_cap_tokens": generation.max_new_tokens,
        "repetition_penalty": generation.repetition_penalty,
        "gap_check": {"cases": len(gap_cases), "gap": finding.gap, "text": finding.text, "seconds": round(gap_s, 1),
                      "plan_after": new_decision},
        "training": training, "results": summarise(report),
        "plan_held": held, "plan_checks": outcome.get("checks"),
        "sample_answers": [{"question": case.messages[-1]["content"][:200], "reference": case.reference,
                            **{r.variant: r.answers[i] for r in report.results}} for i, case in enumerate(cases[:5])],
    }
    if task == "knowledge":
        log(f"{task}: prompt ablation (focused passages, whole chunks, system prompt) ...")
        ablation = {f"user prompt, {model.focus_sentences} focused sentence(s) (default)":
                    next(r for r in result["results"] if r["variant"] == "base + retrieval")}
        for label, style, focus in (("user prompt, whole chunks", "user", None),
                                    ("system prompt, whole chunks", "system", None)):
            other = VariantModel(model.loaded, prompt_style=style, focus_sentences=focus)
            report = run_evaluation(other, [Variant(None, ("retrieval",))], cases, f"{task} {label}", generation,
                                    search)
            ablation[label] = summarise(report)[0]
        result["prompt_ablation"] = ablation
    if args.ablation_cases:
        log(f"{task}: repetition ablation on {args.ablation_cases} cases ...")
        result["repetition_ablation"] = repetition_ablation(model, key, cases, f"{task} ablation", search, generation,
                                                            args.ablation_cases)
    kb.close()
    return result


def machine() -> dict:
    import torch
    import transformers
    import trl

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "trl": trl.__version__, "cpus": os.cpu_count(), "threads": torch.get_num_threads(),
            "processor": platform.processor() or platform.machine()}


def _cell(value, digits: int = 2) -> str:
    return "" if value is None else (f"{value:.{digits}f}" if isinstance(value, float) else str(value))


def markdown(results: dict) -> str:
    """The proof's tables for docs/benchmarks.md, from a results file."""
    lines = []
    for task, result in results["tasks"].items():
        training = result["training"]
        lines += [f"### {task.capitalize()} task: {result['held_out_cases']} held-out cases", "",
                  f"Plan from the interview: **{result['plan']['decision']}**. Gap check before training "
                  f"({result['gap_check']['cases']} cases): {result['gap_check']['text']}", "",
                  "| variant | n | contains reference | exact match | JSON valid | field accuracy | citation rate | "
                  "latency p50 (s) |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
        structured = task == "behaviour"  # JSON references; the knowledge task's are short strings

        def shares(row: dict, structured: bool = structured) -> str:
            if not structured:
                return "n/a | n/a"
            return f"{_cell(row['json_valid'])} | {_cell(row['field_accuracy'])}"

        for row in result["results"]:
            lines.append(f"| {row['variant']} | {row['examples']} | {_cell(row['contains_reference'])} | "
                         f"{_cell(row['exact_match'])} | {shares(row)} | "
                         f"{_cell(row['citation_rate'])} | {_cell(row['latency_p50_s'])} |")
        probed = [row for row in result["results"] if row.get("general_loss") is not None]
        if probed:
            lines += ["", "General ability, per model (the forgetting probe: loss per token on bundled general text, "
                      "lower is better; accuracy on bundled general multiple-choice questions; 95% intervals):", "",
                      "| variant | general loss | general accuracy | n |", "|---|---:|---:|---:|"]
            for row in probed:
                low, high = row["general_loss_interval"]
                a_low, a_high = row["general_accuracy_interval"]
                lines.append(f"| {row['variant']} | {row['general_loss']:.3f} [{low:.3f}, {high:.3f}] | "
                             f"{row['general_accuracy']:.2f} [{a_low:.2f}, {a_high:.2f}] | {row['general_n']} |")
        latency = {row["variant"]: row["latency_p50_s"] for row in result["results"]}
        if latency.get("base + few-shot") and latency.get("base + retrieval"):
            lines += ["", "Time per answer (median, batches of 8): "
                      f"base + few-shot {latency['base + few-shot']:.2f} s, "
                      f"base + retrieval {latency['base + retrieval']:.2f} s, base {latency['base']:.2f} s."]
        lines += ["", "Did the plan hold? " + " ".join(result["plan_held"]), "",
                  f"Training (LoRA r={training['settings']['lora_r']}, {training['settings']['epochs']:g} epoch, "
                  f"batch {training['settings']['batch_size']}, max length {training['settings']['max_length']}, "
                  f"lr {training['settings']['learning_rate']:g}): {training['train_examples']} examples, "
                  f"{training['steps']} steps in {training['wall_s']:.0f} s (job wall time), "
                  f"{training['tokens_per_s']} tokens/s (padded), eval loss {_cell(training['eval_loss'], 3)}.", ""]
        for name in ("prompt_ablation", "repetition_ablation"):
            if name not in result:
                continue
            lines += [f"{name.replace('_', ' ').capitalize()}:", "", "| setting | variant | n | contains reference | "
                      "JSON valid | field accuracy |", "|---|---|---:|---:|---:|---:|"]
            for setting, rows in result[name].items():
                for row in rows if isinstance(rows, list) else [rows]:
                    lines.append(f"| {setting} | {row['variant']} | {row['examples']} | "
                                 f"{_cell(row['contains_reference'])} | {shares(row)} |")
            lines.append("")
    lines.append("Minutes per task (the model's one-time load not counted): " + ", ".join(
        f"{task} {result['run']['seconds'] / 60:.0f}" for task, result in results["tasks"].items() if "run" in result)
        + ".")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="knowledge,behaviour")
    parser.add_argument("--quick", action="store_true", help="small sizes: checks the path, proves nothing")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--workspace", type=Path, help="keep the projects here (default: a temporary folder)")
    parser.add_argument("--knowledge-cases", type=int, default=60)
    parser.add_argument("--knowledge-train", type=int, default=0, help="cap on knowledge training examples (0: all)")
    parser.add_argument("--snips-train", type=int, default=1000)
    parser.add_argument("--snips-cases", type=int, default=100)
    parser.add_argument("--gap-cases", type=int, default=20)
    parser.add_argument("--ablation-cases", type=int, default=40)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--k", type=int, default=3, help="retrieved chunks per answer")
    parser.add_argument("--markdown", type=Path, metavar="RESULTS",
                        help="print the tables of a results file for docs/benchmarks.md and exit")
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(args.markdown.read_text())))
        return 0
    if args.quick:
        args.knowledge_cases, args.knowledge_train, args.snips_train, args.snips_cases = 50, 40, 64, 16
        args.gap_cases, args.ablation_cases = 8, 8
    began = time.perf_counter()
    root = args.workspace or Path(tempfile.mkdtemp(prefix="tunewise-proof-"))
    workspace = Workspace(root)
    log("loading the bundled model ...")
    model = VariantModel(load_model(ModelSettings(model=DEFAULT_MODEL, device="cpu")))
    results = {"model": DEFAULT_MODEL, "machine": machine(), "quick": args.quick, "tasks": {}}
    if args.out.exists():  # a run of some tasks keeps the others' results (each task is measured in one run)
        kept = json.loads(args.out.read_text())
        if kept.get("quick") == args.quick:
            results["tasks"] = kept.get("tasks", {})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        for task in args.tasks.split(","):
            task_began = time.perf_counter()
            results["tasks"][task] = run_task(task, args, workspace, model, Path(scratch))
            results["tasks"][task]["run"] = {"date": time.strftime("%Y-%m-%d %H:%M"),
                                             "seconds": round(time.perf_counter() - task_began, 1)}
            results["total_s"] = round(sum(t.get("run", {}).get("seconds", 0) for t in results["tasks"].values()), 1)
            args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")  # after each task
    log(f"done in {time.perf_counter() - began:.0f} s: {args.out}")
    for task, result in results["tasks"].items():
        print(f"\n## {task}: {result['plan']['decision']}")
        print(f"gap check: {result['gap_check']['text']}")
        for row in result["results"]:
            print("  " + ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
                                   if v is not None))
        for line in result["plan_held"]:
            print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
