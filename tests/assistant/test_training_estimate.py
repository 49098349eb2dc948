"""The estimate before training follows the data's real lengths and the edited settings; every job
keeps its estimate beside the peak it measured, so drift between the two is visible."""

import json

import pytest

from assistant.core.catalog import MODEL_CATALOG
from assistant.core.memory import ALL_LINEAR, lora_trainable_params
from assistant.runtime.hardware import Hardware
from assistant.services.behaviour import Behaviour, JobMemory, estimate_for_examples, estimate_training
from assistant.services.workspace import Workspace
from tests.snips import snips_chat_jsonl
from trainers.activations import CPU_ACTIVATION_FACTOR, CPU_OVERHEAD_GB
from trainers.batching import largest_batch_length, length_batches
from trainers.config import TrainingConfig

CPU = Hardware("cpu", ram_gb=25.3)
SHAPE = MODEL_CATALOG["Qwen2.5-0.5B"]


def report_of(lengths: list[int], max_length: int = 1024) -> dict:
    """The part of a dataset report (trainers/validation.py) the estimate reads."""
    ordered = sorted(lengths)
    return {"valid": len(lengths), "tokens": {"min": ordered[0], "median": ordered[len(ordered) // 2],
                                              "p95": ordered[int(0.95 * (len(ordered) - 1))], "max": ordered[-1],
                                              "total": sum(lengths), "max_length": max_length}}


@pytest.mark.parametrize("longest, max_length, packing, expected", [
    (60, 1024, False, 60),      # short examples: batches are padded to the longest, not to max_length
    (1500, 1024, False, 1024),  # a longer example is cut at max_length
    (60, 1024, True, 1024),     # packing fills every row to max_length
    (0, 1024, False, 1),
])
def test_the_largest_batch_is_padded_to_the_longest_example_at_most_max_length(longest, max_length, packing,
                                                                                expected):
    assert largest_batch_length(longest, max_length, packing) == expected


@pytest.mark.parametrize("seed", range(5))
def test_the_bound_covers_the_length_batches_the_job_builds_and_stays_close(seed):
    import random

    rng = random.Random(seed)
    lengths = [rng.randint(40, 120) for _ in range(299)] + [700]  # one outlier, as real sets have
    batches = length_batches(lengths, 8, seed)
    largest = max(len(b) * min(max(lengths[i] for i in b), 1024) for b in batches)
    bound = 8 * largest_batch_length(max(lengths), 1024)
    assert largest <= bound
    # The batch holding the outlier is padded to it, so the 95th percentile would miss it.
    assert largest > 8 * sorted(lengths)[int(0.95 * len(lengths))]


def test_short_examples_are_estimated_for_their_own_length_not_max_length():
    settings = TrainingConfig(method="lora", batch_size=8, max_length=1024)
    short = estimate_for_examples(settings, report_of([50 + i % 21 for i in range(300)]), 270, CPU)
    assert short.sequence_length == 70 and short.batch_size == 8
    worst = estimate_training(settings, 270, 270 * 60, CPU)
    assert worst.sequence_length == 1024  # no lengths known: every row at max_length


def test_the_short_estimate_is_far_below_max_length_and_near_a_hand_computed_expectation():
    settings = TrainingConfig(method="lora", batch_size=8, max_length=1024, lora_r=8)
    short = estimate_training(settings, 300, 300 * 60, CPU, SHAPE, longest=60)
    at_max = estimate_training(settings, 300, 300 * 60, CPU, SHAPE, longest=None)
    assert short.memory_gb < at_max.memory_gb / 8

    # By hand: fp32 base weights, fp32 adapters with gradients and Adam's two moments, and for each
    # of the 8 x 60 tokens the 16-bit bytes a Llama layer keeps, in fp32 and the CPU's measured extra.
    h, kv, inter = SHAPE.hidden_size, SHAPE.kv_dim, SHAPE.intermediate_size
    per_token = SHAPE.num_layers * (2 * (8 * h + 3 * kv + 4 * inter) + 8 * h) * CPU_ACTIVATION_FACTOR
    adapters = lora_trainable_params(SHAPE, 8, ALL_LINEAR)
    expected = (4 * SHAPE.total_params + 16 * adapters + 8 * 60 * per_token) / 1e9 + CPU_OVERHEAD_GB
    assert short.memory_gb == pytest.approx(expected, rel=0.05)  # the stated factor: within 5%
    assert not any("RAM" in note for note in short.notes)  # 25.3 GB is plenty for 8 x 60 tokens


def test_changing_epochs_from_3_to_1_divides_the_steps_and_time_by_3(tmp_path):
    behaviour = Behaviour(Workspace(tmp_path), "p", create=True)
    prepared = behaviour.prepare("s.jsonl", snips_chat_jsonl("train", limit=240, seed=0),
                                 settings=TrainingConfig(eval_fraction=0.1))
    three = behaviour.estimate_dataset(prepared.dataset_id, TrainingConfig(epochs=3, batch_size=8), CPU)
    one = behaviour.estimate_dataset(prepared.dataset_id, TrainingConfig(epochs=1, batch_size=8), CPU)
    assert three.steps == 3 * one.steps and one.steps == -(-prepared.train_count // 8)
    assert three.tokens == pytest.approx(3 * one.tokens, abs=3)
    assert three.seconds == pytest.approx(3 * one.seconds, rel=0.01)
    assert one.memory_gb == three.memory_gb  # the largest batch does not depend on the epochs
    smaller = behaviour.estimate_dataset(prepared.dataset_id, TrainingConfig(epochs=1, batch_size=2), CPU)
    assert smaller.steps > one.steps and smaller.memory_gb < one.memory_gb  # every edit counts, nothing cached


def write_job(root, job_id: str, extra: dict, state: dict, progress: list[dict] = ()) -> None:
    from trainers.config import JobSpec

    folder = root / "jobs" / job_id
    folder.mkdir(parents=True)
    JobSpec.of("train.jsonl", extra=extra).save(folder)
    (folder / "state.json").write_text(json.dumps(state))
    (folder / "progress.jsonl").write_text("".join(json.dumps(r) + "\n" for r in progress) + '{"step": 9, "lo')


def test_the_service_returns_the_saved_estimate_beside_the_measured_peak(tmp_path):
    behaviour = Behaviour(Workspace(tmp_path), "p", create=True)
    write_job(behaviour.root, "done", {"estimate": {"memory_gb": 4.0}},
              {"status": "completed", "device": "cpu", "peak_memory_gb": 4.4})
    write_job(behaviour.root, "running", {"estimate": {"memory_gb": 4.0}}, {"status": "running"},
              [{"step": 1, "peak_memory_gb": 2.0}, {"step": 5, "peak_memory_gb": 3.0}, {"step": 6}])
    write_job(behaviour.root, "old", {}, {"status": "completed"})
    assert behaviour.job_memory("done") == JobMemory(4.0, 4.4, "cpu")
    assert behaviour.job_memory("done").text() == "memory: estimated 4.0 GB, measured peak 4.4 GB (+10%)"
    assert behaviour.job_memory("running").measured_gb == 3.0  # the latest line that has it
    assert behaviour.job_memory("old").text() == "memory: estimated unknown, measured peak unknown"


def test_a_real_job_records_its_peak_and_the_service_returns_it_with_the_estimate(tmp_path, tiny_model_path):
    behaviour = Behaviour(Workspace(tmp_path), "p", create=True)
    prepared = behaviour.prepare("s.jsonl", snips_chat_jsonl("train", limit=40, seed=1))
    settings = TrainingConfig(model=str(tiny_model_path), max_steps=3, batch_size=4, max_length=96,
                              logging_steps=1)
    job_id = behaviour.start(prepared, settings, "measured", device="cpu")  # no estimate given: it makes one
    assert behaviour.jobs.wait(job_id, timeout=300).status == "completed"

    memory = behaviour.job_memory(job_id)
    assert memory.estimated_gb is not None and memory.estimated_gb > 0
    assert memory.measured_gb is not None and 0 < memory.measured_gb < 5
    state = json.loads((behaviour.jobs.path(job_id) / "state.json").read_text())
    assert state["peak_memory_gb"] == memory.measured_gb and state["peak_rss_gb"] > memory.measured_gb
    records = behaviour.jobs.progress(job_id)
    assert records and all("peak_memory_gb" in r for r in records)
