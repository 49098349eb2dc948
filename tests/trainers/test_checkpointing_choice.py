"""The job recomputes activations only when the largest batch would not fit: on a CPU, in RAM."""

from types import SimpleNamespace

from trainers.config import TrainingConfig
from trainers.sft import available_memory_bytes, use_checkpointing


def model_of(tiny_model_path):
    from transformers import AutoConfig

    return SimpleNamespace(config=AutoConfig.from_pretrained(str(tiny_model_path)))


def test_on_a_cpu_checkpointing_follows_the_largest_batch_against_available_ram(tiny_model_path):
    model = model_of(tiny_model_path)
    assert available_memory_bytes() > 0
    assert not use_checkpointing(TrainingConfig(batch_size=8, max_length=1024), model, "cpu", longest=300)
    # batches no machine holds: recompute instead of running out of memory
    huge = TrainingConfig(batch_size=10**6, max_length=4096)
    assert use_checkpointing(huge, model, "cpu", longest=4096)


def test_the_setting_wins_over_the_measurement(tiny_model_path):
    model = model_of(tiny_model_path)
    assert use_checkpointing(TrainingConfig(gradient_checkpointing=True), model, "cpu", longest=10)
    assert not use_checkpointing(TrainingConfig(batch_size=10**6, gradient_checkpointing=False), model, "cpu")
