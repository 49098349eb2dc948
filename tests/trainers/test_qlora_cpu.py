"""QLoRA through bitsandbytes' CPU kernels, and the evaluate-then-train trap.

bitsandbytes 0.50 on CPUs with AVX512-BF16 repacks 4-bit weights on the first no-grad forward
for an inference kernel with no backward; LoRA then gets no gradients. The guard must hold on
any CPU: after an evaluation forward, a training step still moves the adapter.
"""

import pytest
import torch

from trainers.config import JobSpec
from trainers.sft import guard_bnb_cpu_repack, load_for_training

bnb = pytest.importorskip("bitsandbytes")


def lora_weights(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}


def test_qlora_model_loads_in_4bit_with_the_guard_on(tiny_model_path, snips_files):
    model, _ = load_for_training(JobSpec.of(model=str(tiny_model_path), train_file="-", method="qlora"), "cpu")
    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert layers and all(m.support_avx512bf16_for_cpu is False for m in layers)
    assert guard_bnb_cpu_repack(model) == len(layers)


def test_evaluate_then_train_still_learns(tiny_model_path):
    model, tokenizer = load_for_training(
        JobSpec.of(model=str(tiny_model_path), train_file="-", method="qlora", lora_r=8), "cpu")
    batch = tokenizer(["The state of the union is strong."], return_tensors="pt")
    model.eval()
    with torch.no_grad():  # what evaluation or generation does before training resumes
        model(**batch)
    model.train()
    before = lora_weights(model)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    loss = model(**batch, labels=batch["input_ids"]).loss
    loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if "lora_" in n]
    assert grads and all(g is not None for g in grads)
    optimizer.step()
    after = lora_weights(model)
    assert any(not torch.equal(before[n], after[n]) for n in before)


@pytest.mark.slow
def test_a_qlora_job_with_periodic_evaluation_trains_on_cpu(tiny_model_path, snips_files, tmp_path):
    from trainers.jobs import JobStore

    store = JobStore(tmp_path / "jobs")
    job = store.create(JobSpec.of(model=str(tiny_model_path), train_file=str(snips_files[0]),
                                    eval_file=str(snips_files[1]), method="qlora", max_steps=16, batch_size=4,
                                    max_length=96, learning_rate=2e-3, logging_steps=2, eval_steps=4,
                                    save_steps=100, device="cpu"))
    store.start(job)
    status = store.wait(job, timeout=300)
    assert status.status == "completed", (status.path / "log.txt").read_text()[-2000:]
    records = store.progress(job)
    evals = [r["eval_loss"] for r in records if "eval_loss" in r]
    assert len(evals) >= 3 and evals[-1] < evals[0]  # it kept learning after each evaluation
