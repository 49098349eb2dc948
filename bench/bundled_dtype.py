"""Which dtype to store the converted bundled model in: disk, load time, speed and answers.

    .venv/bin/python -m bench.bundled_dtype     # prints JSON; the figures are in docs/benchmarks.md

The bundled SmolLM2-135M-Instruct comes as a 4-bit (Q4_1) GGUF. It is converted once into a
safetensors folder; this compares storing that folder in fp32, bf16 and fp16, each loaded back
in fp32 (as the CPU runtime does): size on disk, load time, greedy answers to five prompts and the
largest difference of the last-token logits from the fp32 copy.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROMPTS = ("What is the capital of France?",
           "Turn this into JSON with keys intent and city: 'book a table in Paris'",
           "Write one sentence about the sea.", "What is 12 times 7?", "Name three primary colours.")


def measure(folder: Path) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    load_s = time.perf_counter() - started
    answers, logits, new_tokens, generate_s = [], [], 0, 0.0
    for prompt in PROMPTS:
        ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                            return_tensors="pt", return_dict=True)
        with torch.no_grad():
            began = time.perf_counter()
            out = model.generate(**ids, max_new_tokens=48, do_sample=False)
            generate_s += time.perf_counter() - began
            logits.append(model(**ids).logits[0, -1])
        new_tokens += out.shape[1] - ids["input_ids"].shape[1]
        answers.append(tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True))
    size = sum(f.stat().st_size for f in folder.iterdir())
    return {"mb": round(size / 1e6, 1), "load_s": round(load_s, 2), "tokens_per_s": round(new_tokens / generate_s, 1),
            "answers": answers, "logits": logits}


def main() -> int:
    from assistant.runtime.models import bundled_gguf, convert_gguf

    gguf = bundled_gguf()
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for dtype in ("float32", "bfloat16", "float16"):
            folder = Path(scratch) / dtype
            started = time.perf_counter()
            convert_gguf(gguf, folder, dtype)
            results[dtype] = {"convert_s": round(time.perf_counter() - started, 1), **measure(folder)}
    reference = results["float32"]
    for result in results.values():
        result["max_logit_diff_vs_fp32"] = round(max(float((a - b).abs().max()) for a, b in
                                                     zip(reference["logits"], result["logits"], strict=True)), 4)
        result["same_answers_as_fp32"] = sum(a == b for a, b in zip(reference["answers"], result["answers"],
                                                                     strict=True))
    for result in results.values():
        del result["logits"]
    print(json.dumps(results, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
