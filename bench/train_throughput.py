"""CPU training throughput on real weights: Tunewise's training job against a plain TRL script.

    .venv/bin/python bench/train_throughput.py        # writes bench/results/train_throughput.json

Model: the bundled SmolLM2-135M-Instruct, fp32 on the CPU, LoRA r=16 / alpha 32 / dropout 0.05 on
all linear layers, learning rate 2e-4 with a cosine schedule, batch 8, max length 1024, 1 epoch.
Data, a realistic length mix of real public examples: 64 Snips text-to-JSON chats (short, about 60
tokens) and 16 multi-turn tool-calling chats from LLaMA-Factory's glaive demo (about 300-900
tokens); held out, 16 + 8 more for the eval loss. Both cases see the same examples for one epoch
with the same optimiser settings; only how the batches are formed and run differs.

(a) plain TRL: ``SFTTrainer(model, args=SFTConfig(...), peft_config=LoraConfig(...))`` with TRL's
    defaults for everything the settings above do not name (random batches padded to their longest
    example, gradient checkpointing on), except ``bf16=False``. TRL's own default, bf16 autocast,
    runs on this CPU (no AVX-512 BF16) through a slow fallback kernel: its first step had not ended
    after 16 minutes, so that baseline is not usable here and the bench does not run it. The model
    is loaded in fp32 (the folder is fp16). It gets the prompt/completion records Tunewise's job
    makes from the chats, so both put the loss on the answer and the eval losses compare.
(a') the same with ``gradient_checkpointing=False`` too: plain TRL tuned for a CPU by hand, which
    isolates what length grouping adds.
(b) Tunewise: a training job (``trainers/sft.py``) with the same settings.

Each case runs in its own process. Reported: useful (non-padding) tokens per second of training,
wall time of the epoch, peak RSS of the process (``wait4``'s ru_maxrss) and the final eval loss.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT / "bench" / "data" / "public"
SETTINGS = dict(lora_r=16, lora_alpha=32, lora_dropout=0.05, learning_rate=2e-4, batch_size=8, max_length=1024,
                epochs=1.0, seed=0)


def examples() -> tuple[list[dict], list[dict]]:
    """(train, eval) chat records: Snips (short) and glaive tool calls (long), shuffled together."""
    from trainers.formats import parse_examples

    rng = random.Random(0)
    snips = (SHARED / "tasks" / "snips" / "snips_train.jsonl").read_text().splitlines()
    rng.shuffle(snips)
    short = []
    for line in snips[:80]:
        record = json.loads(line)
        answer = json.dumps({"intent": record["intent"], "slots": record["slots"]}, sort_keys=True)
        short.append({"messages": [{"role": "system", "content": "Return the intent and slots as JSON."},
                                   {"role": "user", "content": record["text"]},
                                   {"role": "assistant", "content": answer}]})
    glaive = parse_examples("glaive.json", (SHARED / "formats" / "glaive_toolcall_en_demo.json").read_text())
    long = [{"messages": list(e.messages)} for e in glaive.examples]
    rng.shuffle(long)
    train, held = short[:64] + long[:16], short[64:80] + long[16:24]
    rng.shuffle(train)
    return train, held


def useful_tokens(model_path: str, records: list[dict], max_length: int) -> int:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    return sum(min(len(tokenizer.apply_chat_template(r["messages"], tokenize=True, return_dict=True)["input_ids"]),
                   max_length) for r in records)


def padding_report(model_path: str, records: list[dict]) -> dict:
    """The share of each epoch that is padding: random batches (TRL's default) vs Tunewise's."""
    import torch
    from transformers import AutoTokenizer

    from trainers.batching import length_batches, padding_share

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    lengths = [min(len(tokenizer.apply_chat_template(r["messages"], tokenize=True, return_dict=True)["input_ids"]),
                   SETTINGS["max_length"]) for r in records]
    order = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(SETTINGS["seed"])).tolist()
    size = SETTINGS["batch_size"]
    random_batches = [order[i:i + size] for i in range(0, len(order), size)]
    return {"random batches": round(padding_share(lengths, random_batches), 3),
            "tunewise length batches": round(padding_share(lengths, length_batches(lengths, size, SETTINGS["seed"])),
                                             3)}


def run_plain(model_path: str, data: Path, out: Path, checkpointing: bool = True) -> dict:
    import torch
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    torch.manual_seed(SETTINGS["seed"])
    files = {"train": str(data / "train.jsonl"), "eval": str(data / "eval.jsonl")}
    # The records Tunewise's job makes from chats (prompt: every turn but the last; completion: the
    # answer), so both put the loss on the answer and their eval losses compare.
    dataset = load_dataset("json", data_files=files).map(
        lambda r: {"prompt": r["messages"][:-1], "completion": r["messages"][-1:]}, remove_columns=["messages"])
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    args = SFTConfig(output_dir=str(out), num_train_epochs=SETTINGS["epochs"],
                     per_device_train_batch_size=SETTINGS["batch_size"],
                     per_device_eval_batch_size=SETTINGS["batch_size"], learning_rate=SETTINGS["learning_rate"],
                     lr_scheduler_type="cosine", warmup_steps=0.03, max_length=SETTINGS["max_length"],
                     use_cpu=True, report_to="none", save_strategy="no", logging_steps=10, seed=SETTINGS["seed"],
                     disable_tqdm=True, bf16=False, gradient_checkpointing=checkpointing)
    peft = LoraConfig(r=SETTINGS["lora_r"], lora_alpha=SETTINGS["lora_alpha"], lora_dropout=SETTINGS["lora_dropout"],
                      target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset["train"], eval_dataset=dataset["eval"],
                         processing_class=None, peft_config=peft)
    result = trainer.train()
    return {"train_seconds": result.metrics["train_runtime"], "steps": trainer.state.global_step,
            "eval_loss": trainer.evaluate()["eval_loss"]}


def run_tunewise(model_path: str, data: Path, out: Path) -> dict:
    from trainers.config import JobSpec
    from trainers.jobs import JobStore
    from trainers.sft import train

    store = JobStore(out / "jobs")
    job = store.create(JobSpec.of(model=model_path, train_file=str(data / "train.jsonl"),
                                  eval_file=str(data / "eval.jsonl"), device="cpu", eval_steps=10**6,
                                  save_steps=10**6, logging_steps=10, **SETTINGS))
    state = train(store.path(job))
    card = json.loads((store.path(job) / "adapter" / "training.json").read_text())
    return {"state": str(state), "train_seconds": card["metrics"]["train_runtime"], "steps": card["steps"],
            "eval_loss": card["metrics"]["eval_loss"]}


CASES = {"plain TRL": run_plain,
         "plain TRL, no checkpointing": lambda *a: run_plain(*a, checkpointing=False),
         "tunewise": run_tunewise}


def child(case: str, model_path: str, data: Path, seed: int | None = None) -> dict:
    """Run ``case`` in a fresh process; its result with the process's peak RSS."""
    command = [sys.executable, __file__, "--case", case, "--model-path", model_path, "--data", str(data)]
    if seed is not None:
        command += ["--seed", str(seed)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:  # e.g. killed for memory: a result too, recorded as such
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == 9
        return {"failed": "killed (out of memory)" if killed else f"exit status {status}",
                "peak_rss_gb": round(usage.ru_maxrss * 1024 / 1e9, 2)}
    result = json.loads(output.strip().splitlines()[-1])
    result["peak_rss_gb"] = round(usage.ru_maxrss * 1024 / 1e9, 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=CASES)
    parser.add_argument("--model-path")
    parser.add_argument("--data", type=Path)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "train_throughput.json"))
    parser.add_argument("--seeds", default="", help="e.g. 1,2: only the Tunewise case, once per training seed "
                        "(the spread of its eval loss over batch orders); writes train_throughput_seeds.json")
    args = parser.parse_args()
    if args.seed is not None:
        SETTINGS["seed"] = args.seed
    if args.case:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(CASES[args.case](args.model_path, args.data, Path(tmp))), flush=True)
        return

    import torch
    import transformers
    import trl

    from assistant.runtime.models import BUNDLED_MODEL, resolve_model

    model_path = resolve_model(BUNDLED_MODEL)
    train, held = examples()
    tokens = useful_tokens(model_path, train, SETTINGS["max_length"])
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
        (data / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in held))
        if args.seeds:
            runs = {seed: child("tunewise", model_path, data, int(seed)) for seed in args.seeds.split(",")}
            for seed, run in runs.items():
                print(seed, json.dumps(run), flush=True)
            out = Path(args.out).with_name("train_throughput_seeds.json")
            out.write_text(json.dumps({"date": date.today().isoformat(), "case": "tunewise",
                                       "settings": SETTINGS, "runs": runs}, indent=2) + "\n")
            return
        cases = {}
        for case in CASES:
            cases[case] = child(case, model_path, data)
            if "train_seconds" in cases[case]:
                cases[case]["useful_tokens_per_s"] = round(tokens / cases[case]["train_seconds"], 1)
            print(case, json.dumps(cases[case]), flush=True)
    result = {
        "date": date.today().isoformat(),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__},
        "settings": SETTINGS, "train_examples": len(train), "eval_examples": len(held),
        "useful_tokens_per_epoch": tokens, "cases": cases,
        "x_plain_useful_tokens_per_s": round(cases["tunewise"]["useful_tokens_per_s"]
                                             / cases["plain TRL"]["useful_tokens_per_s"], 2),
        "padding_share": padding_report(model_path, train),
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
