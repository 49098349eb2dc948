"""What serving mixed PEFT methods over one base costs: four variants answering together.

    .venv/bin/python -m bench.mixed_methods --prepare DIR        # train the adapters once (a few steps each)
    .venv/bin/python -m bench.mixed_methods --adapters DIR --mix lora    # base + three LoRA adapters: one batch
    .venv/bin/python -m bench.mixed_methods --adapters DIR --mix mixed   # base + LoRA + IA3 + prompt tuning

PEFT runs LoRA adapters of one batch row by row (``adapter_names``); a prompt-based or IA3 adapter
cannot share that pass, and holding them beside LoRA means swapping the model's adapter type
(assistant/runtime/variants.py, ``VariantModel.groups`` and ``_make_resident``). Each command loads
the bundled model, attaches the adapters and answers ``--rounds`` side-by-side rounds of the four
variants, as the Compare tab does; time the two with farm-bench (A/B, paired) to get the ratio. The
adapters' weights come from a few training steps: what is measured is the serving path, not quality.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ADAPTERS = {"lora": ("lora-a", "lora-b", "lora-c"), "mixed": ("lora-a", "ia3", "prompt_tuning")}
PROMPTS = ["Add this song to my evening playlist", "Will it snow in Oslo tomorrow?",
           "Book a table for four at a sushi place", "Play the latest album by Daft Punk"]


def prepare(folder: Path) -> None:
    """Train each adapter a few steps through the job's own code (trainers/sft.py), on Snips requests."""
    from assistant.runtime.models import BUNDLED_MODEL, resolve_model
    from tests.snips import snips_chat_jsonl
    from trainers.config import JobSpec
    from trainers.sft import train

    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "train.jsonl"
    data.write_text(snips_chat_jsonl("train", limit=16, seed=0))
    methods = {"lora-a": "lora", "lora-b": "lora", "lora-c": "lora", "ia3": "ia3", "prompt_tuning": "prompt_tuning"}
    for name, method in methods.items():
        job = folder / name
        if (job / "adapter" / "adapter_config.json").exists():
            continue
        job.mkdir(exist_ok=True)
        JobSpec.of(model=BUNDLED_MODEL, model_path=resolve_model(BUNDLED_MODEL), train_file=str(data), method=method,
                   max_steps=2, batch_size=2, max_length=64, save_steps=100, seed=len(name), device="cpu",
                   num_virtual_tokens=20).save(job)
        handler = signal.getsignal(signal.SIGTERM)
        try:
            print(f"{name}: {train(job)}", flush=True)
        finally:
            signal.signal(signal.SIGTERM, handler)


def serve(folder: Path, mix: str, rounds: int, max_new_tokens: int) -> float:
    from assistant.runtime.generation import GenerationSettings, ModelSettings, load_model
    from assistant.runtime.variants import Variant, VariantModel

    model = VariantModel(load_model(ModelSettings(device="cpu")))
    for name in ADAPTERS[mix]:
        model.add_adapter(name, folder / name / "adapter")
    variants = [Variant(), *(Variant(name) for name in ADAPTERS[mix])]
    settings = GenerationSettings(max_new_tokens=max_new_tokens)
    started = time.perf_counter()
    for round_number in range(rounds):
        prompt = [{"role": "user", "content": PROMPTS[round_number % len(PROMPTS)]}]
        list(model.stream_together(variants, [prompt] * len(variants), settings))
    seconds = time.perf_counter() - started
    print(f"{mix}: {len(model.groups(variants))} batches a round, {rounds} rounds in {seconds:.2f} s", flush=True)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepare", type=Path, metavar="DIR", help="train the adapters into DIR and exit")
    parser.add_argument("--adapters", type=Path, metavar="DIR", help="the folder --prepare filled")
    parser.add_argument("--mix", choices=sorted(ADAPTERS), default="mixed")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    args = parser.parse_args(argv)
    if args.prepare:
        prepare(args.prepare)
        return 0
    if not args.adapters:
        parser.error("give --adapters DIR (fill it first with --prepare DIR)")
    serve(args.adapters, args.mix, args.rounds, args.max_new_tokens)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
