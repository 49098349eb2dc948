"""One loader and one precision rule for every causal LM: chat, training and export load the same way."""

import json

import pytest
import torch

from trainers import loading
from trainers.loading import dtype_for, load_causal_lm


@pytest.mark.parametrize("device, bf16_supported, expected", [
    ("cuda", True, "bfloat16"),   # Ampere and later
    ("cuda", False, "float16"),   # an older GPU: 16-bit still, never bf16 it lacks
    ("cuda:1", True, "bfloat16"),  # one rank of a multi-GPU job follows the same rule
    ("cuda:3", False, "float16"),
    ("cpu", False, "float32"),
    ("cpu", True, "float32"),     # what a GPU elsewhere supports says nothing about the CPU
])
def test_the_precision_follows_the_device(device, bf16_supported, expected):
    assert dtype_for(device, bf16_supported) == expected


def test_on_a_cpu_the_model_loads_in_fp32_from_safetensors(tiny_model_path):
    model = load_causal_lm(str(tiny_model_path), "cpu")
    assert model.dtype == torch.float32 and model.device.type == "cpu"


def test_pickled_weights_are_never_loaded(tiny_model_path, tmp_path):
    """A folder with only pytorch_model.bin is refused: unpickling can run code."""
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text((tiny_model_path / "config.json").read_text())
    torch.save(load_causal_lm(str(tiny_model_path), "cpu").state_dict(), folder / "pytorch_model.bin")
    with pytest.raises(OSError):
        load_causal_lm(str(folder), "cpu")


def test_a_4bit_base_on_a_cpu_computes_in_bf16(tiny_model_path):
    bnb = pytest.importorskip("bitsandbytes")
    model = load_causal_lm(str(tiny_model_path), "cpu", quantize_4bit=True)
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
    quantization = model.config.quantization_config
    quantization = quantization if isinstance(quantization, dict) else quantization.to_dict()
    assert quantization["bnb_4bit_quant_type"] == "nf4" and quantization["bnb_4bit_use_double_quant"] is True
    assert quantization["bnb_4bit_compute_dtype"] == "bfloat16"


def test_4bit_weights_are_not_kept_off_their_device():
    with pytest.raises(ValueError, match="4-bit"):
        load_causal_lm("any", "cuda", quantize_4bit=True, keep_on_cpu=True)


class Loaded(Exception):
    """Raised by the spy loader: the caller got as far as loading, through the one loader."""


@pytest.fixture
def loader_calls(monkeypatch):
    calls = []

    def spy(source, device, **options):
        calls.append((str(source), device, options))
        raise Loaded

    monkeypatch.setattr(loading, "load_causal_lm", spy)
    return calls


@pytest.mark.parametrize("method, quantize_4bit, full_precision", [
    ("lora", False, False), ("qlora", True, False), ("full", False, True), ("prompt_tuning", False, False)])
def test_the_training_job_loads_its_base_through_the_one_loader(tiny_model_path, loader_calls, method,
                                                                  quantize_4bit, full_precision):
    from trainers.config import JobSpec
    from trainers.sft import load_for_training

    spec = JobSpec.of(model=str(tiny_model_path), train_file="-", method=method)
    with pytest.raises(Loaded):
        load_for_training(spec, "cpu")
    assert loader_calls == [(str(tiny_model_path), "cpu",
                             {"quantize_4bit": quantize_4bit, "trust_remote_code": False,
                              "full_precision": full_precision})]


def test_a_full_fine_tunes_master_weights_are_fp32_on_every_device(tiny_model_path):
    """A 1e-5 update is below bfloat16's resolution: the job keeps fp32 weights (16-bit compute under autocast)."""
    from trainers.loading import load_causal_lm

    model = load_causal_lm(str(tiny_model_path), "cpu", full_precision=True)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    with pytest.raises(ValueError, match="4-bit base is frozen"):
        load_causal_lm(str(tiny_model_path), "cpu", quantize_4bit=True, full_precision=True)


def test_the_export_merges_in_ram_in_the_precision_the_model_runs_in(tmp_path, loader_calls):
    from trainers.adapters import AdapterRegistry

    adapter = tmp_path / "adapters" / "json-v1"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/models/base"}))
    with pytest.raises(Loaded):
        AdapterRegistry(tmp_path / "adapters").merge_and_export("json-v1", tmp_path / "merged")
    runs_on = "cuda" if torch.cuda.is_available() else "cpu"
    assert loader_calls == [("/models/base", runs_on, {"trust_remote_code": False, "keep_on_cpu": True})]
