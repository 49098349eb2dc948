"""What the forgetting probe costs, and the bundled model's own general ability.

    .venv/bin/python bench/general_probe.py      # writes bench/results/general_probe.json

Loads the bundled SmolLM2-135M-Instruct offline (assistant.runtime.models converts it once), then
times the two parts of trainers.general_ability on the bundled data: the loss on general text and the
multiple-choice accuracy. Reports the scores with their 95% intervals and n, the seconds of each part,
the tokens each part runs through the model (the cost grows with them), and the machine's load
average, because a shared machine's timings are not a quiet machine's.

``--batch-sizes 4,8,16`` times the loss part at several batch sizes (where the time goes);
``--questions N`` / ``--texts N`` score only the first N (a cheaper probe; intervals widen).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from assistant.runtime.generation import ModelSettings, load_model  # noqa: E402
from trainers.general_ability import (  # noqa: E402
    choice_accuracy,
    general_loss,
    load_general_questions,
    load_general_texts,
    option_tokens,
    question_prompt,
)

RESULT = ROOT / "bench" / "results" / "general_probe.json"


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=8, help="sequences per forward pass for both parts")
    parser.add_argument("--batch-sizes", default="", help="also time the loss part at these batch sizes, e.g. 4,16")
    parser.add_argument("--texts", type=int, default=None, help="score only the first N passages")
    parser.add_argument("--questions", type=int, default=None, help="score only the first N questions")
    parser.add_argument("--out", type=Path, default=RESULT)
    return parser


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, round(time.perf_counter() - started, 1)


def main(args: argparse.Namespace) -> dict:
    import torch
    import transformers

    load_before = os.getloadavg()[0]
    loaded, load_s = timed(load_model, ModelSettings())
    model, tokenizer = loaded.model, loaded.tokenizer
    texts = load_general_texts(limit=args.texts)
    questions = load_general_questions(limit=args.questions)
    text_tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) + 1 for t in texts)
    question_tokens = sum(sum(len(c) + len(o) for c, o in (option_tokens(tokenizer, question_prompt(q), option)
                                                          for option in q.choices)) for q in questions)

    loss, loss_s = timed(general_loss, model, tokenizer, texts, batch_size=args.batch_size)
    print(f"loss {loss.loss:.3f} [{loss.low:.3f}, {loss.high:.3f}] on {loss.tokens} tokens: {loss_s} s", flush=True)
    accuracy, accuracy_s = timed(choice_accuracy, model, tokenizer, questions, batch_size=args.batch_size)
    print(f"accuracy {accuracy.acc_norm:.3f} [{accuracy.low:.3f}, {accuracy.high:.3f}] (raw {accuracy.acc:.3f}) "
          f"n={accuracy.n}: {accuracy_s} s", flush=True)

    sweep = {}
    for size in [int(s) for s in args.batch_sizes.split(",") if s.strip()]:
        _, seconds = timed(general_loss, model, tokenizer, texts, batch_size=size)
        sweep[str(size)] = seconds
        print(f"loss part at batch {size}: {seconds} s", flush=True)

    report = {
        "command": "bench/general_probe.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "model": "SmolLM2-135M-Instruct (bundled), fp32 on CPU",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__, "transformers": transformers.__version__,
                    "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}},
        "model_load_s": load_s,
        "batch_size": args.batch_size,
        "loss_part": {"seconds": loss_s, "passages": loss.passages, "tokens": loss.tokens,
                      "tokens_per_s": round(text_tokens / loss_s, 1),
                      "general_loss": round(loss.loss, 4), "interval_95": [round(loss.low, 4), round(loss.high, 4)],
                      "perplexity": round(loss.perplexity, 2)},
        "choice_part": {"seconds": accuracy_s, "questions": accuracy.n, "rows": sum(len(q.choices) for q in questions),
                        "tokens": question_tokens, "tokens_per_s": round(question_tokens / accuracy_s, 1),
                        "acc_norm": round(accuracy.acc_norm, 4), "acc": round(accuracy.acc, 4),
                        "interval_95": [round(accuracy.low, 4), round(accuracy.high, 4)], "chance": 0.25},
        "total_probe_s": round(loss_s + accuracy_s, 1),
        "loss_part_seconds_by_batch_size": sweep,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main(make_parser().parse_args())
