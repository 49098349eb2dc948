"""The project's trained adapters: list, rename, delete, merge into the base and export.

An adapter folder holds what PEFT saves (adapter_model.safetensors, adapter_config.json), the
tokenizer with its chat template (so chat uses the template training used), and training.json
(settings, metrics, the dataset report's fingerprint). A full fine-tune's folder holds the whole model
instead (config.json, model.safetensors) beside the same tokenizer and training.json: it is listed,
renamed and exported like an adapter, and it loads on its own, without a base.

What export does depends on the method (trainers/methods.py): the LoRA family and IA3 merge into their
base; a full fine-tune is copied; prompt-based methods and LLaMA-Adapter cannot merge, and export says why.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from trainers.methods import METHODS, TrainingMethod
from trainers.ollama import modelfile
from tunewise.errors import InputError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class AdapterError(InputError):
    """An adapter operation that cannot be done; the message says why."""


PEFT_TYPES = {"LORA": "lora", "IA3": "ia3", "ADALORA": "adalora", "PROMPT_TUNING": "prompt_tuning",
              "PREFIX_TUNING": "prefix_tuning", "P_TUNING": "p_tuning", "ADAPTION_PROMPT": "adaption_prompt"}
"""PEFT's ``peft_type`` -> our method, for a folder without training.json (trained elsewhere)."""


def is_trained_folder(path: Path) -> bool:
    """Whether ``path`` holds an adapter (adapter_config.json) or a full fine-tune's model (config.json and
    training.json)."""
    return (path / "adapter_config.json").exists() or ((path / "config.json").exists()
                                                       and (path / "training.json").exists())


def method_of(card_config: dict, peft: dict) -> str:
    """The method that trained a folder: its card's, else read from PEFT's config, else a full model's."""
    if card_config.get("method") in METHODS:
        return card_config["method"]
    if not peft:
        return "full"
    name = PEFT_TYPES.get(str(peft.get("peft_type", "LORA")), "lora")
    if name == "lora" and peft.get("use_dora"):
        return "dora"
    if name == "lora" and peft.get("use_rslora"):
        return "rslora"
    return name


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

    @property
    def training_method(self) -> TrainingMethod:
        return METHODS[self.method]

    @property
    def is_full_model(self) -> bool:
        """A full fine-tune: the folder is a whole model that loads without ``base_model``."""
        return self.training_method.full


def read_info(path: Path) -> AdapterInfo:
    card = json.loads((path / "training.json").read_text()) if (path / "training.json").exists() else {}
    config = card.get("config", {})
    peft_file = path / "adapter_config.json"
    peft = json.loads(peft_file.read_text()) if peft_file.exists() else {}
    return AdapterInfo(path.name, path, config.get("model") or peft.get("base_model_name_or_path", ""),
                       method_of(config, peft), int(card.get("steps", 0)), card.get("metrics", {}),
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
        return [read_info(p) for p in sorted(self.root.iterdir()) if p.is_dir() and is_trained_folder(p)]

    def get(self, name: str) -> AdapterInfo:
        path = self.path(name)
        if not is_trained_folder(path):
            raise AdapterError(f"there is no adapter named {name!r}")
        return read_info(path)

    def add(self, source: Path, name: str) -> AdapterInfo:
        """Copy a finished job's adapter folder in under ``name``."""
        target = self.path(name)
        if target.exists():
            raise AdapterError(f"an adapter named {name!r} already exists")
        if not is_trained_folder(Path(source)):
            raise AdapterError(f"{source} holds no adapter", "give the adapter folder of a finished training job")
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
        A full fine-tune is copied in that precision. A method that cannot merge (prompt-based methods,
        LLaMA-Adapter: their registry entry says so) is refused before anything loads, with the reason and
        what Ollama can take instead.
        """
        import torch
        from peft import PeftModel
        from transformers import AutoTokenizer

        from trainers.loading import load_causal_lm

        info = self.get(name)
        entry = info.training_method
        if not entry.mergeable:
            raise AdapterError(f"{name!r} is a {entry.label} adapter and cannot be merged into its base: "
                               f"{entry.merge_refusal()}",
                               "to export a standalone model, train a LoRA-family or IA3 adapter on the same data")
        out = Path(out_dir)
        if out.exists() and any(out.iterdir()):
            raise AdapterError(f"{out} is not empty", "name a new or empty folder")
        runs_on = "cuda" if torch.cuda.is_available() else "cpu"
        if info.is_full_model:  # already whole: copied in the precision it runs in here
            base_path = info.base_model
            merged = load_causal_lm(str(info.path), runs_on, trust_remote_code=trust_remote_code, keep_on_cpu=True)
        else:
            base_path = base_model or info.base_model
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
