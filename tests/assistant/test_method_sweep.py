"""compare-methods: one job per (method, seed, rate), every adapter evaluated beside the base, one table.

The choice of the best and of the cheapest run that matches it is pure and tested on hand-made rows; the
end-to-end test trains two methods x two seeds on the tiny model through the real queue.
"""

import json

import pytest

from assistant.core.outcomes import wilson_interval
from assistant.runtime.hardware import Hardware
from assistant.services.behaviour import PreparedDataset
from assistant.services.method_sweep import (
    RunResult,
    SweepConfig,
    SweepPlan,
    adapter_name,
    choose,
    plan_sweep,
    seed_spread,
    survivors,
    task_metric_for,
)
from tests.snips import snips_chat_jsonl
from trainers.config import TrainingConfig
from tunewise.errors import InputError
from ui.cli import main


def row(method: str, seed: int, score: float, params: int, seconds: float, n: int = 100,
        status: str = "completed") -> RunResult:
    done = status == "completed"
    return RunResult(method, seed, 1e-3, f"cmp-{method}-s{seed}", f"job-{method}-{seed}", status,
                     metrics={"examples": n, "field_accuracy": score, "json_valid": 1.0} if done else {},
                     task_metric="field_accuracy", task_score=score if done else None,
                     interval=wilson_interval(score, n) if done else None, trainable_params=params,
                     train_seconds=seconds)


CHOICES = [
    # (rows, best adapter, cheapest within best)
    ([row("lora", 0, 0.80, 2_000_000, 60), row("ia3", 0, 0.76, 100_000, 40), row("prompt_tuning", 0, 0.30, 10_000, 30)],
     "cmp-lora-s0", "cmp-ia3-s0"),  # IA3's interval overlaps LoRA's; prompt tuning's lies far below
    ([row("lora", 0, 0.80, 2_000_000, 60, n=2000), row("ia3", 0, 0.70, 100_000, 40, n=2000)],
     "cmp-lora-s0", "cmp-lora-s0"),  # with many cases the intervals part: nothing cheaper matches the best
    ([row("lora", 0, 0.50, 2_000_000, 60), row("dora", 0, 0.50, 2_000_000, 50)],
     "cmp-dora-s0", "cmp-dora-s0"),  # a tie goes to the cheaper: same weights, less time
    ([row("lora", 0, 0.9, 2_000_000, 60), row("ia3", 0, 0.99, 100, 1, status="failed")],
     "cmp-lora-s0", "cmp-lora-s0"),  # a failed run is never chosen
    ([row("ia3", 0, 0.0, 100, 1, status="failed")], None, None),
]


@pytest.mark.parametrize(("rows", "best", "cheapest"), CHOICES)
def test_the_best_and_the_cheapest_run_whose_interval_overlaps_it(rows, best, cheapest):
    chosen_best, chosen_cheapest = choose(rows)
    assert (chosen_best.adapter if chosen_best else None) == best
    assert (chosen_cheapest.adapter if chosen_cheapest else None) == cheapest


def test_the_spread_over_seeds_is_per_method_and_rate():
    spread = {s.method: s for s in seed_spread([row("lora", 0, 0.8, 1, 1), row("lora", 1, 0.6, 1, 1),
                                                row("prompt_tuning", 0, 0.5, 1, 1),
                                                row("prompt_tuning", 1, 0.0, 1, 1, status="failed")])}
    assert spread["lora"].seeds == 2 and spread["lora"].mean == pytest.approx(0.7)
    assert spread["lora"].stdev == pytest.approx(0.1414, abs=1e-3)
    assert (spread["lora"].low, spread["lora"].high) == (0.6, 0.8)
    assert spread["prompt_tuning"].seeds == 1 and spread["prompt_tuning"].stdev == 0.0


def test_the_task_metric_follows_the_references():
    assert task_metric_for(['{"intent": "PlayMusic"}', '{"intent": "GetWeather"}']) == "field_accuracy"
    assert task_metric_for(['{"intent": "PlayMusic"}', "Paris"]) == "contains_reference"


def test_adapter_names_carry_the_rate_only_when_the_sweep_names_rates():
    assert adapter_name("cmp", "prompt_tuning", 1, None) == "cmp-prompt_tuning-s1"
    assert adapter_name("cmp", "lora", 0, 2e-4) == "cmp-lora-s0-lr0.0002"


@pytest.mark.parametrize(("config", "words"), [
    ({"methods": ("lora", "lorax")}, "no training method 'lorax'"),
    ({"methods": ()}, "at least one method"),
    ({"methods": ("lora", "lora")}, "named twice"),
    ({"methods": ("lora",), "seeds": 0}, "seeds must be at least 1"),
    ({"methods": ("lora",), "learning_rates": (0.0,)}, "positive"),
    ({"methods": ("lora", "full")}, "compares adapters over one base; a full fine-tune is a whole model"),
])
def test_a_bad_sweep_is_refused_with_what_to_fix(config, words):
    with pytest.raises(InputError, match=words):
        SweepConfig(**config)


def test_bad_input_queues_nothing(tmp_path, capsys):
    ws = tmp_path / "ws"
    data = tmp_path / "train.jsonl"
    data.write_text(snips_chat_jsonl("train", limit=1, seed=0))
    assert main(["compare-methods", "--data", str(data), "--methods", "lora,ia4", "--workspace", str(ws)]) == 2
    assert "no training method 'ia4'" in capsys.readouterr().err
    # One example cannot be split into training and held-out cases: refused before any project or job exists.
    assert main(["compare-methods", "--data", str(data), "--methods", "lora", "--workspace", str(ws)]) == 2
    assert "too few to split" in capsys.readouterr().err
    assert not (ws / "projects" / "default").exists()


def test_a_dataset_without_held_out_cases_is_refused_before_planning(tmp_path):
    prepared = PreparedDataset("d1", tmp_path, {}, tmp_path / "train.jsonl", tmp_path / "eval.jsonl", 40, 0)
    with pytest.raises(InputError, match="no held-out cases"):
        plan_sweep(None, prepared, TrainingConfig(), SweepConfig(("lora",)), Hardware("cpu"))


HALVINGS = [
    # (halfway eval losses, the runs that go on)
    ({"a": 1.2, "b": 0.9, "c": 1.5, "d": 1.0}, ["b", "d"]),  # the better half by loss
    ({"a": 1.2, "b": 0.9, "c": 1.5}, ["b", "a"]),  # an odd count rounds up: two of three go on
    ({"a": 1.0, "b": 1.0}, ["a"]),  # a tie keeps the earlier run
    ({"a": None, "b": float("nan"), "c": 2.0}, ["c"]),  # no loss (failed, or NaN): it never goes on
    ({"a": 3.0}, ["a"]),  # one run always goes on
]


@pytest.mark.parametrize(("losses", "going_on"), HALVINGS)
def test_successive_halving_keeps_the_better_half_by_eval_loss(losses, going_on):
    assert survivors(losses) == going_on


def planned(seconds: list[float]):
    from types import SimpleNamespace

    return tuple(SimpleNamespace(estimate=SimpleNamespace(seconds=s, steps=10, memory_gb=None)) for s in seconds)


def test_the_estimate_says_what_halving_saves():
    prepared = PreparedDataset("d1", None, {}, None, None, 40, 10)
    whole = SweepPlan(planned([600, 600, 1200, 1200]), prepared, "cpu", 10)
    halved = SweepPlan(planned([600, 600, 1200, 1200]), prepared, "cpu", 10, halving=True)
    assert whole.halving_saves == 0 and "halving" not in whole.text()
    assert halved.halving_saves == 2 * 900 / 2  # two runs stop halfway: half of the mean run each
    assert "successive halving stops 2 of them" in halved.text() and "saving about 15 min" in halved.text()
    assert "about 45 min in all" in halved.text() and "then 3 models answer" in halved.text()
    assert SweepPlan(planned([600]), prepared, "cpu", 10, halving=True).halving_saves == 0  # nothing to halve


def compare_lora_and_ia3(tiny_model_path, tmp_path, *flags: str) -> list[str]:
    """`tunewise compare-methods --json` on LoRA and IA3 x two seeds of the tiny model; the workspace flags."""
    ws = ["--workspace", str(tmp_path / "ws"), "--project", "sweep"]
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    train.write_text(snips_chat_jsonl("train", limit=40, seed=0))
    test.write_text(snips_chat_jsonl("test", limit=4, seed=0))
    assert main(["compare-methods", "--data", str(train), "--eval", str(test), "--methods", "lora,ia3",
                 "--seeds", "2", "--batch-size", "4", "--max-length", "96", "--model", str(tiny_model_path),
                 "--prefix", "cmp", "--max-new-tokens", "8", "--device", "cpu", "--json", *flags, *ws]) == 0
    return ws


@pytest.mark.slow
def test_compare_methods_with_halving_stops_the_trailing_half_at_its_halfway_loss(tiny_model_path, tmp_path,
                                                                                   capsys):
    ws = compare_lora_and_ia3(tiny_model_path, tmp_path, "--max-steps", "4", "--halving")
    captured = capsys.readouterr()
    assert "successive halving stops 2 of them" in captured.err  # the estimate said so before anything ran
    rows = json.loads(captured.out)["rows"]
    assert all(r["halfway_eval_loss"] > 0 for r in rows)
    went_on = [r for r in rows if r["status"] == "completed"]
    stopped = [r for r in rows if r["status"] == "halved"]
    assert len(went_on) == 2 and len(stopped) == 2, [(r["adapter"], r["status"], r["reason"]) for r in rows]
    assert max(r["halfway_eval_loss"] for r in went_on) <= min(r["halfway_eval_loss"] for r in stopped)
    for r in went_on:  # trained to the end, evaluated, registered; the time counts both halves
        assert r["task_score"] is not None and r["adapter_bytes"] > 0 and r["train_seconds"] > 0
        assert r["reason"] == ""
    for r in stopped:  # said why, trained half, never evaluated
        assert "successive halving" in r["reason"] and "step 2 of 4" in r["reason"]
        assert r["task_score"] is None and r["train_seconds"] > 0
    assert main(["adapters", "list", *ws]) == 0
    listed = capsys.readouterr().out
    assert all(r["adapter"] in listed for r in went_on) and not any(r["adapter"] in listed for r in stopped)


def test_the_table_shows_the_halfway_loss_and_why_a_halved_run_has_no_score():
    from assistant.services.method_sweep import SweepResult

    kept, left = row("lora", 0, 0.5, 2_000_000, 60), row("ia3", 0, 0.0, 100_000, 20, status="halved")
    kept.halfway_eval_loss, left.halfway_eval_loss = 0.812, 1.304
    table = SweepResult([kept, left], "field_accuracy", {"examples": 100, "field_accuracy": 0.1}, kept, kept,
                        seed_spread([kept, left])).table()
    head, _, base, lora, ia3 = table.splitlines()[:5]
    assert head.endswith("| halfway eval loss |") and base.count("|") == head.count("|")
    assert lora.endswith("| 0.812 |") and "| halved |" in ia3 and ia3.endswith("| 1.304 |")


@pytest.mark.slow
def test_compare_methods_trains_evaluates_and_names_the_best(tiny_model_path, tmp_path, capsys):
    ws = compare_lora_and_ia3(tiny_model_path, tmp_path, "--max-steps", "3")
    captured = capsys.readouterr()
    assert "estimate: 4 runs on cpu" in captured.err  # said before anything was queued
    result = json.loads(captured.out)
    names = ["cmp-lora-s0", "cmp-lora-s1", "cmp-ia3-s0", "cmp-ia3-s1"]
    assert [r["adapter"] for r in result["rows"]] == names
    assert [(r["method"], r["seed"]) for r in result["rows"]] == [("lora", 0), ("lora", 1), ("ia3", 0), ("ia3", 1)]
    for r in result["rows"]:
        assert r["status"] == "completed"
        assert r["learning_rate"] == {"lora": 2e-4, "ia3": 5e-3}[r["method"]]  # each method's own rate
        assert {"examples", "exact_match", "json_valid", "field_accuracy", "latency_p50_s"} <= set(r["metrics"])
        assert r["metrics"]["examples"] == 4 and r["task_metric"] == "field_accuracy"
        assert r["peak_memory_gb"] is not None and r["train_seconds"] > 0 and r["adapter_bytes"] > 0
        assert r["latency_ratio"] > 0
        assert r["interval"][0] <= r["metrics"]["field_accuracy"] <= r["interval"][1]
    params = {r["method"]: r["trainable_params"] for r in result["rows"]}
    assert params["ia3"] < params["lora"]  # IA3 trains a scale per activation, LoRA two matrices per layer
    assert result["best"]["adapter"] in names and result["cheapest_within_best"]["adapter"] in names
    assert {s["method"] for s in result["spread"]} == {"lora", "ia3"} and all(s["seeds"] == 2 for s in result["spread"])
    # Four jobs ran through the queue and four adapters were registered: each a variant like any other.
    jobs = list((tmp_path / "ws" / "projects" / "sweep" / "jobs").iterdir())
    assert len([j for j in jobs if (j / "state.json").exists()]) == 4
    assert main(["adapters", "list", *ws]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in names)
