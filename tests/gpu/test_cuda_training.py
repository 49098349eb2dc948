"""Training on a CUDA GPU: QLoRA in 4-bit and LoRA on a 16-bit base, through Tunewise's job.

Run with ``pytest -m gpu``; every test here skips without CUDA. The model is the tiny random
chat model (no hub), the data the Snips examples the app ships, so nothing outside the checkout
is needed (see docs/gpu.md).
"""

import importlib.util
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

EXAMPLES = Path(__file__).resolve().parents[2] / "assistant" / "example_data"


def run_job(tmp_path, model_path, **overrides):
    from trainers.config import JobSpec
    from trainers.jobs import JobStore

    settings = dict(model=str(model_path), train_file=str(EXAMPLES / "snips_train.jsonl"),
                    eval_file=str(EXAMPLES / "snips_eval.jsonl"), max_steps=60, batch_size=8, max_length=192,
                    learning_rate=2e-3, logging_steps=5, eval_steps=30, save_steps=1000,
                    modules_to_save=["lm_head"]) | overrides
    store = JobStore(tmp_path / "jobs")
    job = store.create(JobSpec.of(**settings))
    store.start(job)
    status = store.wait(job, timeout=600)
    assert status.status == "completed", (status.path / "log.txt").read_text()[-3000:]
    state = json.loads((status.path / "state.json").read_text())
    return store, job, status, state


def test_a_qlora_job_trains_a_4bit_base_on_the_gpu_and_its_adapter_reloads(tiny_model_path, tmp_path):
    import bitsandbytes as bnb
    from peft import PeftModel

    from trainers.config import JobSpec
    from trainers.sft import load_for_training

    model, _ = load_for_training(JobSpec.of(model=str(tiny_model_path), train_file="-", method="qlora"), "cuda")
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
    del model

    store, job, status, state = run_job(tmp_path, tiny_model_path, method="qlora")
    assert state["device"] == "cuda"
    records = store.progress(job)
    evals = [r["eval_loss"] for r in records if "eval_loss" in r]
    assert len(evals) >= 2 and evals[-1] < evals[0]
    assert all(r["gpu_peak_allocated_gb"] > 0 for r in records if "loss" in r)
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    PeftModel.from_pretrained(base, status.adapter_dir)  # the saved adapter attaches to its base


def test_a_lora_job_trains_on_a_16bit_base_on_the_gpu(tiny_model_path, tmp_path):
    store, job, status, state = run_job(tmp_path, tiny_model_path, method="lora")
    evals = [r["eval_loss"] for r in store.progress(job) if "eval_loss" in r]
    assert evals[-1] < evals[0]
    assert state["liger_kernel"] is (importlib.util.find_spec("liger_kernel") is not None)
    assert state["gradient_checkpointing"] is False  # a tiny model's activations fit: no recomputation


def test_liger_can_be_turned_off(tiny_model_path, tmp_path):
    _, _, _, state = run_job(tmp_path, tiny_model_path, method="lora", liger_kernel=False, max_steps=5,
                             eval_file=None)
    assert state["liger_kernel"] is False


def test_checkpointing_can_be_forced_on(tiny_model_path, tmp_path):
    _, _, _, state = run_job(tmp_path, tiny_model_path, method="qlora", gradient_checkpointing=True, max_steps=5,
                             eval_file=None)
    assert state["gradient_checkpointing"] is True
