"""The project's trained adapters: list, rename, delete, merge into the base and export.

An adapter folder holds what PEFT saves (adapter_model.safetensors, adapter_config.json), the
tokenizer with its chat template (so chat uses the template training used), and training.json
(settings, metrics, the dataset report's fingerprint).
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from trainers.ollama import modelfile
from tunewise.errors import TunewiseError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class AdapterError(TunewiseError):
    """An adapter operation that cannot be done; the message says why."""


@dataclass(frozen=True)
class AdapterInfo:
    name: str
    path: Path
    base_model: str
    method: str
    steps: int
    metrics: dict
    dataset_fingerprint: str

    @property
    def eval_loss(self) -> float | None:
        return self.metrics.get("eval_loss")


def read_info(path: Path) -> AdapterInfo:
    card = json.loads((path / "training.json").read_text()) if (path / "training.json").exists() else {}
    config = card.get("config", {})
    peft = json.loads((path / "adapter_config.json").read_text())
    return AdapterInfo(path.name, path, config.get("model") or peft.get("base_model_name_or_path", ""),
                       config.get("method", "lora"), int(card.get("steps", 0)), card.get("metrics", {}),
                       config.get("dataset_fingerprint", ""))


class AdapterRegistry:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def check_name(self, name: str) -> str:
        if not isinstance(name, str) or not _NAME.match(name):
            raise AdapterError(f"{name!r} is not a valid adapter name: use 1-64 letters, digits, '.', '_' or '-'")
        return name

    def path(self, name: str) -> Path:
        return self.root / self.check_name(name)

    def list(self) -> list[AdapterInfo]:
        return [read_info(p) for p in sorted(self.root.iterdir())
                if p.is_dir() and (p / "adapter_config.json").exists()]

    def get(self, name: str) -> AdapterInfo:
        path = self.path(name)
        if not (path / "adapter_config.json").exists():
            raise AdapterError(f"there is no adapter named {name!r}")
        return read_info(path)

    def add(self, source: Path, name: str) -> AdapterInfo:
        """Copy a finished job's adapter folder in under ``name``."""
        target = self.path(name)
        if target.exists():
            raise AdapterError(f"an adapter named {name!r} already exists")
        if not (Path(source) / "adapter_config.json").exists():
            raise AdapterError(f"{source} holds no adapter")
        shutil.copytree(source, target)
        return read_info(target)

    def rename(self, old: str, new: str) -> AdapterInfo:
        source, target = self.path(old), self.path(new)
        if not source.exists():
            raise AdapterError(f"there is no adapter named {old!r}")
        if target.exists():
            raise AdapterError(f"an adapter named {new!r} already exists")
        source.rename(target)
        return read_info(target)

    def delete(self, name: str) -> None:
        path = self.path(name)
        if not path.exists():
            raise AdapterError(f"there is no adapter named {name!r}")
        shutil.rmtree(path)

    def merge_and_export(self, name: str, out_dir: str | Path, base_model: str | None = None,
                         trust_remote_code: bool = False) -> Path:
        """Merge the adapter into a copy of its base and save a standalone model folder.

        The copy is in the precision the model runs in on this machine (trainers/loading.py: 16-bit
        with a GPU, fp32 without), and it is merged in RAM: a QLoRA base's 16-bit copy may not fit
        the GPU it trained on. A QLoRA adapter is merged into that reload, never into the 4-bit
        weights it trained against: merging into quantised weights would round the update away.
        """
        import torch
        from peft import PeftModel
        from transformers import AutoTokenizer

        from trainers.loading import load_causal_lm

        info = self.get(name)
        out = Path(out_dir)
        if out.exists() and any(out.iterdir()):
            raise AdapterError(f"{out} is not empty")
        base_path = base_model or info.base_model
        runs_on = "cuda" if torch.cuda.is_available() else "cpu"
        base = load_causal_lm(base_path, runs_on, trust_remote_code=trust_remote_code, keep_on_cpu=True)
        merged = PeftModel.from_pretrained(base, info.path).merge_and_unload()
        merged.save_pretrained(out, safe_serialization=True)
        tokenizer = AutoTokenizer.from_pretrained(info.path)
        tokenizer.save_pretrained(out)
        # For local runners: `ollama create NAME -f OUT/Modelfile` imports the folder with the same
        # prompt format and stop tokens the model was trained with (trainers/ollama.py).
        text, warnings = modelfile(tokenizer)
        (out / "Modelfile").write_text(text)
        (out / "tunewise-merge.json").write_text(json.dumps({"adapter": name, "base_model": base_path,
                                                             "method": info.method, "warnings": warnings},
                                                            indent=2))
        return out
