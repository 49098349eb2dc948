"""Memory of serving one base plus N adapters, against the base alone.

    .venv/bin/python bench/variants_memory.py          # writes bench/results/variants_memory.json

A Qwen2.5-0.5B-shaped model (catalog shape, random bf16 weights, nothing downloaded) is
loaded once; three LoRA adapters (r=8, all linear layers, as the plan proposes for small
models) are saved and then attached the way the Compare tab does (assistant.runtime.variants). We count
the bytes of every parameter and buffer, and the process's resident memory.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def tensor_bytes(model) -> int:
    return sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))


def rss_mb() -> float:
    """Current resident memory (VmRSS), not the peak: adapters were built earlier in this process."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Qwen2Config

    from assistant.runtime.generation import LoadedModel
    from assistant.runtime.variants import VariantModel

    config = Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                         num_attention_heads=14, num_key_value_heads=2, tie_word_embeddings=True)
    torch.manual_seed(0)
    work = Path(tempfile.mkdtemp(prefix="tunewise-variants-"))
    base = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    for i in range(3):
        peft = get_peft_model(AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16),
                              LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM"))
        peft.save_pretrained(work / f"adapter{i}")
        del peft
    import gc

    gc.collect()
    base_bytes, base_rss = tensor_bytes(base), rss_mb()
    variants = VariantModel(LoadedModel(base, None, "cpu", "qwen2.5-0.5b-shaped"))
    for i in range(3):
        variants.add_adapter(f"adapter{i}", work / f"adapter{i}")
    served_bytes = tensor_bytes(variants.loaded.model)
    result = {"model": "Qwen2.5-0.5B-shaped, bf16", "adapters": 3, "lora": "r=8, all linear",
              "base_mb": round(base_bytes / 1e6, 1), "base_plus_3_adapters_mb": round(served_bytes / 1e6, 1),
              "ratio": round(served_bytes / base_bytes, 4), "rss_mb_before_adapters": round(base_rss),
              "rss_mb_after_adapters": round(rss_mb())}
    out = ROOT / "bench" / "results" / "variants_memory.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
