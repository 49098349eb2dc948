"""Side-by-side generation on the real model: 1, 2 and 4 variants, one after another vs together.

    .venv/bin/python bench/side_by_side.py          # writes bench/results/side_by_side.json

The bundled SmolLM2-135M-Instruct with two LoRA adapters on all linear layers (random, non-zero
weights: speed does not depend on what an adapter learned). The variants are base, base +
retrieval, adapter A, adapter B + retrieval; the retrieval rows carry a real passage from the
shared corpora, so their prompts are longer, as in the app. "one after another" is how the Compare
tab answered before (``VariantModel.stream`` per variant); "together" is one batch with a different
adapter per row (``VariantModel.stream_together``). Each setting runs 3 times; medians are kept.
Time to first token is the slowest column's (what the person waits for before every column moves).

On a GPU machine without the bundled model (no network):
``--shape smollm2|llama8b --tokenizer DIR --device cuda`` builds the model from its config with random
weights (speed does not depend on them) and uses the tokenizer and chat template in DIR (the
bundled model's, copied). llama8b is Llama-3.1-8B's shape with the tokenizer's 49,152-token
vocabulary.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from assistant.runtime.generation import GenerationSettings, ModelSettings, load_model  # noqa: E402
from assistant.runtime.variants import Variant, VariantModel  # noqa: E402
from retrieval.search import ChunkHit  # noqa: E402

CORPUS = ROOT / "bench" / "data" / "public" / "retrieval" / "chroma_chunking_eval" / "corpora" / "wikitexts.md"
PROMPT = [{"role": "user", "content": "Explain in a few sentences what the passage says about its subject."}]
VARIANTS = [Variant(), Variant(None, ("retrieval",)), Variant("a"), Variant("b", ("retrieval",))]


def random_adapters(loaded, folder: Path) -> dict[str, Path]:
    """Two LoRA adapters, r=16 on every linear layer, with random A and B (so they change answers)."""
    import torch
    from peft import LoraConfig, get_peft_model

    paths = {}
    for seed, name in enumerate(("a", "b")):
        torch.manual_seed(seed)
        config = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", init_lora_weights=False,
                            task_type="CAUSAL_LM")
        peft_model = get_peft_model(loaded.model, config)
        peft_model.save_pretrained(str(folder / name))
        loaded.model = peft_model.unload()  # back to the plain base for the next one
        paths[name] = folder / name
    return paths


SHAPES = {"smollm2": {}, "llama8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                                          num_attention_heads=32, num_key_value_heads=8, head_dim=128,
                                          max_position_embeddings=8192)}


def random_model(shape: str, tokenizer_dir: str, device: str):
    """A LoadedModel of ``shape`` with random weights, in the dtype the runtime would load it in."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from assistant.runtime.generation import LoadedModel

    config = AutoConfig.from_pretrained(tokenizer_dir)
    for key, value in SHAPES[shape].items():
        setattr(config, key, value)
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    return LoadedModel(model.eval(), tokenizer, device, f"{shape} (random weights)")


def passage() -> list[ChunkHit]:
    text = (CORPUS.read_text()[2000:3200] if CORPUS.is_file()  # a machine may lack the data
            else " ".join(f"Sentence {i} of a passage about the subject, long enough to fill a prompt."
                          for i in range(16)))
    return [ChunkHit("c1", "d1", "wikitexts.md", "", None, "", 2000, 3200, text, 1.0, 0.9)]


def run_once(model: VariantModel, count: int, together: bool, settings: GenerationSettings) -> dict:
    variants = VARIANTS[:count]
    started = time.perf_counter()
    if together:
        final, first = None, None
        for update in model.stream_together(variants, [PROMPT] * count, settings, lambda q: passage()):
            if first is None and all(a.text for a in update):
                first = time.perf_counter() - started
            final = update
        answers = final
    else:
        answers, first = [], None
        for variant in variants:
            last = None
            for answer in model.stream(variant, PROMPT, settings, lambda q: passage()):
                last = answer
            answers.append(last)
        first = sum(a.latency_s for a in answers[:-1]) + answers[-1].first_token_s
    wall = time.perf_counter() - started
    tokens = sum(len(model.loaded.tokenizer(a.text, add_special_tokens=False)["input_ids"]) for a in answers)
    return {"wall_s": wall, "first_token_last_column_s": first, "new_tokens": tokens, "tokens_per_s": tokens / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--shape", choices=sorted(SHAPES), help="random weights in this shape (needs --tokenizer)")
    parser.add_argument("--tokenizer", help="folder with the tokenizer, chat template and config.json")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "side_by_side.json"))
    args = parser.parse_args()
    import torch
    import transformers

    settings = GenerationSettings(max_new_tokens=args.max_new_tokens)
    loaded = (random_model(args.shape, args.tokenizer, args.device) if args.shape
              else load_model(ModelSettings(device=args.device)))
    with tempfile.TemporaryDirectory() as tmp:
        paths = random_adapters(loaded, Path(tmp))
        model = VariantModel(loaded)
        for name, path in paths.items():
            model.add_adapter(name, path)
        run_once(model, 1, False, settings)  # warm up
        rows = []
        for count in (1, 2, 4):
            for together in ((False, True) if count > 1 else (False,)):
                runs = [run_once(model, count, together, settings) for _ in range(args.repeats)]
                row = {"variants": count, "how": "together" if together else "one after another",
                       **{k: round(statistics.median(r[k] for r in runs), 2) for k in runs[0]}}
                rows.append(row)
                print(json.dumps(row), flush=True)
    one = rows[0]["wall_s"]
    for row in rows:
        row["x_one_variant_wall"] = round(row["wall_s"] / one, 2)
    result = {"date": date.today().isoformat(),
              "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                          "torch": torch.__version__, "transformers": transformers.__version__},
              "model": loaded.name, "max_new_tokens": args.max_new_tokens, "repeats": args.repeats, "rows": rows}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
