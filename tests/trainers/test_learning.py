"""LoRA through Tunewise's own job teaches a tiny random model the Snips text-to-JSON format.

The full-size measurement (and its numbers) is bench/sft_cpu.py; this is the same path, smaller,
with bounds a broken trainer cannot meet: the base never writes valid JSON, the adapter mostly does.
"""

import json

import pytest

from tests.snips import snips_chat_jsonl
from trainers.config import JobSpec
from trainers.evaluation import field_match_rate, score_answers
from trainers.jobs import JobStore


@pytest.mark.slow
@pytest.mark.timeout(1200)  # about 150 s on an idle 2-core machine
def test_lora_learns_snips_json_on_cpu(tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bench.sft_cpu import generate_all
    from tests.tiny_model import build_tiny_model

    model_dir = build_tiny_model(tmp_path / "model", extra_text=snips_chat_jsonl("train"), hidden=128)
    (tmp_path / "train.jsonl").write_text(snips_chat_jsonl("train", seed=0))
    (tmp_path / "eval.jsonl").write_text(snips_chat_jsonl("test", limit=40, seed=0))
    store = JobStore(tmp_path / "jobs")
    job = store.create(JobSpec.of(model=str(model_dir), train_file=str(tmp_path / "train.jsonl"), lora_r=64,
                                    lora_alpha=128, modules_to_save=["lm_head"], learning_rate=3e-3,
                                    max_steps=1000, batch_size=8, max_length=160, save_steps=10_000,
                                    logging_steps=50, device="cpu"))
    store.start(job)
    status = store.wait(job, timeout=1200)
    assert status.status == "completed", status.reason
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), status.adapter_dir).eval()
    records = [json.loads(line) for line in (tmp_path / "eval.jsonl").read_text().splitlines()]
    references = [r["messages"][-1]["content"] for r in records]
    base = generate_all(model, tokenizer, records, disable_adapter=True, max_new_tokens=80)
    tuned = generate_all(model, tokenizer, records, disable_adapter=False, max_new_tokens=80)
    base_scores, tuned_scores = score_answers(base, references), score_answers(tuned, references)
    assert base_scores["json_valid"] == 0.0
    assert tuned_scores["json_valid"] >= 0.7, tuned[:3]
    assert field_match_rate(tuned, references, "intent") >= field_match_rate(base, references, "intent") + 0.1
