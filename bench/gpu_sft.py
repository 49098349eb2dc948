"""QLoRA and LoRA on an 8B-shaped model on one GPU: Tunewise's training job against plain TRL.

    python3 bench/gpu_sft.py --out gpu_sft.json               # on a CUDA machine, no network needed
    python3 bench/gpu_sft.py --shape tiny --device cpu --steps 2 --out /tmp/x.json   # the code path, on CPU
    python3 bench/gpu_sft.py --method lora,dora,ia3,prompt_tuning --out gpu_methods.json   # the job, per method

The model has Llama 3.1 8B's shape (hidden 4096, 32 layers, GQA 32/8, MLP 14336, vocabulary 128,256)
and random weights, built on the GPU and saved once as 16-bit safetensors; its tokenizer is a small
BPE trained here. Every example is longer than the sequence length, so each step trains on exactly
``seq_len`` tokens with batch 1 and no padding: tokens/s compare like with like.

Each case runs in its own process so that its peak memory is its own:

* ``tunewise``: ``trainers.sft.train`` on a job folder, as the app and ``tunewise train`` run it;
* ``trl``: the script a user writes from TRL's documentation: ``from_pretrained`` (with a
  ``BitsAndBytesConfig`` for QLoRA), ``SFTTrainer(model, peft_config=LoraConfig(...))`` with
  ``SFTConfig`` defaults except the sequence length, batch size and step count.

Both use LoRA r=16, alpha 32, on every linear layer. ``--method`` measures the job alone for each training
method named (trainers/methods.py: its own learning rate, 20 virtual tokens for the prompt-based ones),
beside the estimator's prediction for that method. Peak memory is torch's own accounting
(``max_memory_allocated`` and ``max_memory_reserved``) from the start of training; the estimator's
prediction (assistant/core/memory.py) is printed beside it. Steps after ``--warmup`` are timed.
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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHAPES = {
    # Llama 3.1 8B
    "8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=8, vocab_size=128256, rope_theta=500000.0),
    # a small model for checking the code path on any machine
    "tiny": dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=4096),
}
CASES = ("qlora:tunewise", "qlora:tunewise_ckpt", "qlora:trl", "lora:tunewise", "lora:tunewise_ckpt", "lora:trl")
"""method:path. tunewise: the job's own choices (checkpointing only when activations would not fit);
tunewise_ckpt: the job with checkpointing forced on, at plain TRL's memory; trl: plain TRL."""
RANK, ALPHA = 16, 32


def build_model(folder: Path, shape: str, device: str, seq_len: int) -> None:
    """A random model of ``shape`` saved as 16-bit safetensors, with a small trained tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from tests.tiny_model import build_tokenizer

    tokenizer = build_tokenizer(vocab_size=2048)
    config = LlamaConfig(**SHAPES[shape], max_position_embeddings=max(seq_len, 4096), tie_word_embeddings=False,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=None, initializer_range=0.02)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    del model


def write_examples(path: Path, count: int, words_per_example: int) -> None:
    """Chat examples (system, user, assistant) longer than the sequence length, words drawn from
    the speech the app ships."""
    from tests.tiny_model import tokenizer_corpus

    words = tokenizer_corpus().split()
    rng = random.Random(0)
    with path.open("w") as handle:
        for _ in range(count):
            user = " ".join(rng.choice(words) for _ in range(words_per_example // 3))
            answer = " ".join(rng.choice(words) for _ in range(words_per_example))
            handle.write(json.dumps({"messages": [
                {"role": "system", "content": "Answer in the speaker's words."},
                {"role": "user", "content": user}, {"role": "assistant", "content": answer}]}) + "\n")


def run_tunewise(method: str, model: Path, data: Path, work: Path, args) -> dict:
    from trainers.config import JobSpec
    from trainers.job_files import PROGRESS_FILE, STATE_FILE
    from trainers.jobs import JobStore  # noqa: F401 - the job folder layout is the store's
    from trainers.sft import train

    job_dir = work / f"job-{method}-{args.checkpointing}"
    job_dir.mkdir(parents=True, exist_ok=True)
    from trainers.methods import method as training_method

    config = JobSpec.of(model=str(model), train_file=str(data), method=method, lora_r=RANK, lora_alpha=ALPHA,
                          learning_rate=training_method(method).learning_rate, prompt_init="vocab",
                          lora_dropout=0.05, target_modules="all-linear", max_steps=args.warmup + args.steps,
                          batch_size=1, max_length=args.seq_len, logging_steps=1, save_steps=100_000,
                          device=args.device, liger_kernel=None if args.liger else False,
                          gradient_checkpointing=args.checkpointing)
    config.save(job_dir)
    status = train(job_dir)
    if status != "completed":
        raise RuntimeError(json.loads((job_dir / STATE_FILE).read_text()))
    records = [json.loads(line) for line in (job_dir / PROGRESS_FILE).read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    state = json.loads((job_dir / STATE_FILE).read_text())
    return {"step_times": [r["time"] for r in steps], "losses": [r["loss"] for r in steps],
            "memory": {k: v for k, v in state.get("metrics", {}).items() if k.startswith("gpu_")},
            "liger_kernel": state.get("liger_kernel"), "gradient_checkpointing": state.get("gradient_checkpointing")}


def run_plain_trl(method: str, model_dir: Path, data: Path, work: Path, args) -> dict:
    import torch
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    cuda = args.device == "cuda"
    kwargs = {"dtype": torch.bfloat16} if cuda else {}
    if method == "qlora":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16)
        kwargs["device_map"] = {"": args.device}
    model = AutoModelForCausalLM.from_pretrained(model_dir, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    times, losses = [], []

    class Timer(TrainerCallback):
        def on_train_begin(self, *_, **__):
            if cuda:
                torch.cuda.reset_peak_memory_stats()

        def on_log(self, _args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                times.append(time.time())
                losses.append(logs["loss"])

    config = SFTConfig(output_dir=str(work / f"trl-{method}"), max_length=args.seq_len,
                       per_device_train_batch_size=1, max_steps=args.warmup + args.steps, logging_steps=1,
                       save_strategy="no", report_to="none", use_cpu=not cuda, bf16=cuda or None,
                       disable_tqdm=True)
    trainer = SFTTrainer(model=model, args=config, train_dataset=load_dataset("json", data_files=str(data))["train"],
                         processing_class=tokenizer, callbacks=[Timer()],
                         peft_config=LoraConfig(r=RANK, lora_alpha=ALPHA, lora_dropout=0.05,
                                                target_modules="all-linear", task_type="CAUSAL_LM"))
    trainer.train()
    memory = {}
    if cuda:
        memory = {"gpu_peak_allocated_gb": round(torch.cuda.max_memory_allocated() / 1e9, 3),
                  "gpu_peak_reserved_gb": round(torch.cuda.max_memory_reserved() / 1e9, 3)}
    return {"step_times": times, "losses": losses, "memory": memory}


def run_case(case: str, args) -> dict:
    """One case in this process: train, then report tokens/s over the timed steps and peak memory."""
    import torch

    method, path = case.split(":")
    args.checkpointing = {"tunewise": None, "tunewise_ckpt": True}.get(path)
    work = Path(args.work)
    runner = run_plain_trl if path == "trl" else run_tunewise
    started = time.time()
    result = runner(method, work / "model", work / "train.jsonl", work, args)
    times = result.pop("step_times")
    timed = times[args.warmup:] if len(times) > args.warmup + 1 else times
    seconds_per_step = (timed[-1] - timed[0]) / max(len(timed) - 1, 1)
    result.update(case=case, method=method, path=path, wall_s=round(time.time() - started, 1),
                  seconds_per_step=round(seconds_per_step, 3),
                  tokens_per_s=round(args.seq_len / seconds_per_step, 1) if seconds_per_step > 0 else None,
                  gpu=torch.cuda.get_device_name() if torch.cuda.is_available() else None)
    return result


def predictions(model_dir: Path, seq_len: int) -> dict:
    """What assistant/core/memory.py predicts for this model and batch, with and without the fused loss."""
    from assistant.core.memory import RUNTIME_OVERHEAD_GB, TrainingShape, estimate_memory
    from assistant.runtime.model_shapes import shape_from_pretrained

    shape = shape_from_pretrained(str(model_dir))
    out = {"runtime_overhead_gb": RUNTIME_OVERHEAD_GB}
    for fused in (False, True):
        estimate = estimate_memory(shape, TrainingShape(seq_len=seq_len, batch_size=1, fused_loss=fused),
                                   lora_rank=RANK)
        out["fused_loss" if fused else "unfused_loss"] = estimate.all_totals_gb()
    return out


def child_case(case: str, work: Path, args, liger: bool) -> dict:
    command = [sys.executable, __file__, "--one-case", case, "--work", str(work), "--shape", args.shape,
               "--seq-len", str(args.seq_len), "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--device", args.device] + ([] if liger else ["--no-liger"])
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.case_timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {args.case_timeout} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    return json.loads(lines[-1][7:]) if lines else {"error": (done.stderr or done.stdout)[-3000:]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "gpu_sft.json"))
    parser.add_argument("--shape", choices=sorted(SHAPES), default="8b")
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=8, help="timed steps after the warm-up")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--method", help="comma-separated training methods (trainers/methods.py) to measure "
                                         "through the job alone, instead of --cases")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--no-liger", dest="liger", action="store_false")
    parser.add_argument("--case-timeout", type=float, default=240)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--one-case", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

    if args.one_case:  # the child process: one case, its result as the last line of stdout
        print("RESULT " + json.dumps(run_case(args.one_case, args)), flush=True)
        return 0

    if args.method:
        from trainers.config import METHODS

        unknown = sorted(set(args.method.split(",")) - set(METHODS))
        if unknown:
            parser.error(f"unknown method {', '.join(unknown)}: choose from {', '.join(METHODS)}")
        args.cases = ",".join(f"{name}:tunewise" for name in args.method.split(","))
    work = Path(tempfile.mkdtemp(prefix="tunewise-gpu-sft-"))
    started = time.time()
    build_model(work / "model", args.shape, args.device, args.seq_len)
    write_examples(work / "train.jsonl", args.warmup + args.steps + 4, words_per_example=int(args.seq_len * 1.2))
    report = {"command": " ".join(sys.argv), "date": time.strftime("%Y-%m-%d"), "shape": args.shape,
              "model": SHAPES[args.shape], "seq_len": args.seq_len, "batch_size": 1, "lora": {"r": RANK,
              "alpha": ALPHA, "target_modules": "all-linear"}, "steps_timed": args.steps, "warmup": args.warmup,
              "platform": platform.platform(), "build_s": round(time.time() - started, 1),
              "predicted_gb": predictions(work / "model", args.seq_len), "cases": {}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for case in args.cases.split(","):
        print(f"== {case}", flush=True)
        report["cases"][case] = child_case(case, work, args, args.liger)
        if "error" in report["cases"][case] and ":tunewise" in case and args.liger:
            # Liger's kernels are optional: if they break on this stack, measure the job without them
            report["cases"][case] = child_case(case, work, args, False) | {
                "liger_error": report["cases"][case]["error"][-1500:]}
        print(json.dumps(report["cases"][case])[:1500], flush=True)
        out.write_text(json.dumps(report, indent=2))  # after every case: a cut-off run keeps what it has
    for method in ("qlora", "lora"):
        theirs = report["cases"].get(f"{method}:trl", {})
        for path in ("tunewise", "tunewise_ckpt"):
            ours = report["cases"].get(f"{method}:{path}", {})
            if ours.get("tokens_per_s") and theirs.get("tokens_per_s"):
                report[f"{method}_{path}_speedup_vs_trl"] = round(ours["tokens_per_s"] / theirs["tokens_per_s"], 3)
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "cases"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
