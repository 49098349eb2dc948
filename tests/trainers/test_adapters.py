"""Adapters: registered from a finished job, renamed, deleted, merged into the base and exported."""

import pytest
import torch

from trainers.adapters import AdapterError, AdapterRegistry
from trainers.config import JobSpec
from trainers.jobs import JobStore


@pytest.fixture(scope="module")
def trained_adapter(tiny_model_path, tmp_path_factory):
    from tests.snips import snips_chat_jsonl

    root = tmp_path_factory.mktemp("adapter-job")
    train = root / "train.jsonl"
    train.write_text(snips_chat_jsonl("train", limit=64, seed=0))
    store = JobStore(root / "jobs")
    job = store.create(JobSpec.of(model=str(tiny_model_path), train_file=str(train), max_steps=6, batch_size=4,
                                    max_length=96, learning_rate=5e-3, save_steps=100, device="cpu",
                                    dataset_fingerprint="abc123"))
    store.start(job)
    status = store.wait(job, timeout=300)
    assert status.status == "completed", (status.path / "log.txt").read_text()[-2000:]
    return status.adapter_dir


@pytest.mark.slow
def test_register_list_rename_delete(trained_adapter, tiny_model_path, tmp_path):
    registry = AdapterRegistry(tmp_path / "adapters")
    info = registry.add(trained_adapter, "json-v1")
    assert info.base_model == str(tiny_model_path) and info.steps == 6 and info.dataset_fingerprint == "abc123"
    assert [a.name for a in registry.list()] == ["json-v1"]
    with pytest.raises(AdapterError, match="already exists"):
        registry.add(trained_adapter, "json-v1")
    registry.rename("json-v1", "json-final")
    assert [a.name for a in registry.list()] == ["json-final"]
    with pytest.raises(AdapterError, match="valid adapter name"):
        registry.rename("json-final", "../escape")
    registry.delete("json-final")
    assert registry.list() == []


def test_merged_export_answers_like_base_plus_adapter(trained_adapter, tiny_model_path, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    registry = AdapterRegistry(tmp_path / "adapters")
    registry.add(trained_adapter, "json-v1")
    out = registry.merge_and_export("json-v1", tmp_path / "merged")
    assert (out / "model.safetensors").exists() and (out / "tokenizer_config.json").exists()
    ids = torch.tensor([[5, 17, 42, 7, 99]])
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_path), trained_adapter).eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_model_path).eval()
    with torch.no_grad():
        merged_logits, adapted_logits, base_logits = (m(ids).logits for m in (merged, adapted, base))
    assert torch.allclose(merged_logits, adapted_logits, atol=1e-4)
    assert not torch.allclose(merged_logits, base_logits, atol=1e-4)
    with pytest.raises(AdapterError, match="not empty"):
        registry.merge_and_export("json-v1", out)
    modelfile = (out / "Modelfile").read_text()
    assert modelfile.startswith("FROM .\nTEMPLATE") and 'PARAMETER stop "<|im_end|>"' in modelfile
