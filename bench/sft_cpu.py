"""Does LoRA teach a tiny model the Snips text-to-JSON task on a CPU? Base vs adapter, held out.

    .venv/bin/python bench/sft_cpu.py                    # writes bench/results/sft_cpu.json

A tiny Llama-shaped model with random weights (built here, nothing downloaded; its BPE
tokenizer is trained on the shared corpora and the Snips training texts) is fine-tuned with
Tunewise's own job (trainers.sft through trainers.jobs: TRL SFTTrainer + PEFT LoRA, fp32 on
CPU). Both the base (adapter disabled) and the adapter answer held-out Snips test texts with
greedy decoding; we score JSON validity, intent accuracy, field accuracy and exact match.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.snips import snips_chat_jsonl  # noqa: E402
from tests.tiny_model import build_tiny_model  # noqa: E402
from trainers.config import JobSpec  # noqa: E402
from trainers.evaluation import field_match_rate, score_answers  # noqa: E402
from trainers.jobs import JobStore  # noqa: E402


def generate_all(model, tokenizer, records: list[dict], disable_adapter: bool, max_new_tokens: int) -> list[str]:
    import contextlib

    import torch

    answers = []
    for record in records:
        inputs = tokenizer.apply_chat_template(record["messages"][:-1], add_generation_prompt=True,
                                               return_tensors="pt", return_dict=True)
        context = model.disable_adapter() if disable_adapter else contextlib.nullcontext()
        with torch.no_grad(), context:
            out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                 eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        answers.append(tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))
    return answers


def run(args) -> dict:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    work = Path(tempfile.mkdtemp(prefix="tunewise-sft-bench-"))
    model_dir = build_tiny_model(work / "model", extra_text=snips_chat_jsonl("train"), hidden=args.hidden,
                                 layers=args.layers)
    (work / "train.jsonl").write_text(snips_chat_jsonl("train", seed=0))
    (work / "eval.jsonl").write_text(snips_chat_jsonl("test", limit=args.eval_examples, seed=0))
    store = JobStore(work / "jobs")
    config = JobSpec.of(model=str(model_dir), train_file=str(work / "train.jsonl"),
                          eval_file=str(work / "eval.jsonl"), method="lora", lora_r=args.rank,
                          lora_alpha=2 * args.rank, modules_to_save=["lm_head"], learning_rate=args.lr,
                          max_steps=args.steps, batch_size=args.batch_size, max_length=160, eval_steps=200,
                          save_steps=10_000, logging_steps=20, seed=0, device="cpu")
    job = store.create(config)
    started = time.time()
    store.start(job)
    status = store.wait(job, timeout=3600)
    seconds = time.time() - started
    if status.status != "completed":
        raise SystemExit(f"training {status.status}: {status.reason}")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), status.adapter_dir).eval()
    records = [json.loads(line) for line in (work / "eval.jsonl").read_text().splitlines()]
    references = [r["messages"][-1]["content"] for r in records]
    result = {"steps": args.steps, "batch_size": args.batch_size, "train_examples": 2100,
              "eval_examples": len(records), "train_seconds": round(seconds, 1),
              "model": {"hidden": args.hidden, "layers": args.layers,
                        "params": sum(p.numel() for p in model.get_base_model().parameters())},
              "lora": {"r": args.rank, "alpha": 2 * args.rank, "modules_to_save": ["lm_head"], "lr": args.lr},
              "final_eval_loss": status.metrics.get("eval_loss")}
    for name, disabled in (("base", True), ("adapter", False)):
        answers = generate_all(model, tokenizer, records, disabled, args.max_new_tokens)
        scores = score_answers(answers, references)
        scores["intent_accuracy"] = field_match_rate(answers, references, "intent")
        scores["sample"] = answers[0][:160]
        result[name] = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in scores.items()}
        print(name, result[name], flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--rank", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--eval-examples", type=int, default=100)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "sft_cpu.json"))
    args = parser.parse_args()
    result = {"machine": {"cpu": platform.machine(), "python": platform.python_version()}, **run(args)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
