"""From a plan and an upload to a job and a registered adapter; the estimate before training."""

import json

import pytest

from assistant.core.catalog import MODEL_CATALOG
from assistant.core.profile import TaskProfile
from assistant.core.rules import decide
from assistant.runtime.hardware import Hardware
from assistant.services.behaviour import Behaviour, DatasetError, estimate_training
from assistant.services.training_settings import training_settings, with_overrides
from assistant.services.workspace import Workspace, WorkspaceError
from tests.snips import snips_chat_jsonl
from trainers.config import TrainingConfig

GPU16 = Hardware("cuda", "Tesla T4", 1, 16.0, False)
CPU = Hardware("cpu")


def test_opening_a_project_that_does_not_exist_is_an_error_unless_it_is_meant_to_create_it(tmp_path):
    workspace = Workspace(tmp_path)
    with pytest.raises(WorkspaceError, match="no project named 'typo'"):
        Behaviour(workspace, "typo")
    assert not workspace.project("typo").path.exists()
    behaviour = Behaviour(workspace, "new", create=True)  # a training run may start a project
    assert workspace.exists("new") and behaviour.list_jobs() == [] and behaviour.list_adapters() == []
    assert not (behaviour.root / "jobs").exists() and not (behaviour.root / "adapters").exists()  # reads made nothing


def test_project_variants_read_adapters_through_the_tenants_behaviour_and_open_no_job_store(tmp_path):
    from assistant.services.tenants import Tenants

    tenant = Tenants(Workspace(tmp_path / "ws")).get(None)
    assert tenant.variants.unavailable("default") == []
    root = tenant.workspace.project("default").path
    assert not (root / "jobs").exists() and not (tenant.workspace.machine_dir / "training-queue").exists()
    assert tenant.variants.behaviours is tenant.behaviours  # one Behaviour per project, shared with the tabs
    with pytest.raises(WorkspaceError, match="no project named 'typo'"):
        tenant.variants.unavailable("typo")
    assert tenant.workspace.list_projects() == ["default"] and not tenant.workspace.project("typo").path.exists()


def test_estimate_refuses_what_cannot_fit_and_offers_alternatives():
    shape = MODEL_CATALOG["Llama-3.1-8B"]
    lora = estimate_training(TrainingConfig(method="lora", batch_size=2, max_length=1024), 1000, 300_000,
                             GPU16, shape)
    assert not lora.fits and lora.memory_gb > 16
    assert any(a.startswith("QLoRA") and "(fits)" in a for a in lora.alternatives)
    qlora = estimate_training(TrainingConfig(method="qlora", batch_size=1, max_length=1024), 1000, 300_000,
                              GPU16, shape)
    assert qlora.fits and qlora.steps == 3000 and qlora.seconds > 0


def test_a_training_that_cannot_fit_is_refused_before_any_job_exists(tmp_path):
    from assistant.services.behaviour import TrainingDoesNotFitError

    behaviour = Behaviour(Workspace(tmp_path), "p", create=True)
    prepared = behaviour.prepare("s.jsonl", snips_chat_jsonl("train", limit=40, seed=1))
    settings = TrainingConfig(model="meta-llama/Llama-3.1-8B-Instruct", method="lora", batch_size=8, max_length=1024)
    estimate = behaviour.estimate(prepared, settings, GPU16)
    with pytest.raises(TrainingDoesNotFitError, match="does not fit") as caught:
        behaviour.start(prepared, settings, "too-big", estimate=estimate)
    assert caught.value.estimate.alternatives
    assert behaviour.jobs.jobs() == []


def test_estimate_counts_steps_and_tokens():
    estimate = estimate_training(TrainingConfig(batch_size=8, gradient_accumulation=2, epochs=2), 100, 5000, CPU)
    assert estimate.steps == 14 and estimate.tokens == 10_000
    assert estimate.memory_gb is None and any("CPU" in n for n in estimate.notes)


def test_prepare_splits_reports_and_keeps_the_files(tmp_path):
    behaviour = Behaviour(Workspace(tmp_path), "p", create=True)
    text = snips_chat_jsonl("train", limit=200, seed=0) + "not json\n"
    prepared = behaviour.prepare("snips.jsonl", text, settings=TrainingConfig(eval_fraction=0.1))
    assert prepared.train_count + prepared.eval_count == 200 and 18 <= prepared.eval_count <= 22
    assert prepared.report["errors"][0]["kind"] == "invalid_json" and prepared.report["errors"][0]["line"] == 201
    assert prepared.train_file.read_text().count("\n") == prepared.train_count
    assert (prepared.path / "report.json").exists()


def test_a_file_with_no_valid_example_is_refused_with_its_report(tmp_path):
    behaviour = Behaviour(Workspace(tmp_path), "p", create=True)
    with pytest.raises(DatasetError) as caught:
        behaviour.prepare("bad.jsonl", '{"oops": 1}\n{broken\n')
    assert len(caught.value.report["errors"]) == 2


def test_a_file_whose_prompts_fill_the_max_length_is_refused_before_training(tmp_path):
    behaviour = Behaviour(Workspace(tmp_path), "p", create=True)
    long_prompts = "".join(json.dumps({"prompt": f"{i} " + "word " * 400, "completion": "ok"}) + "\n"
                           for i in range(20))
    with pytest.raises(DatasetError, match="none of the answers") as caught:
        behaviour.prepare("long.jsonl", long_prompts, settings=TrainingConfig(max_length=128))
    assert caught.value.report["tokens"]["answer_cut_off"] == 20
    prepared = behaviour.prepare("long.jsonl", long_prompts, settings=TrainingConfig(max_length=1024))
    assert prepared.report["tokens"]["answer_cut_off"] == 0


@pytest.mark.slow
def test_start_then_register_finished_adds_the_adapter(tmp_path, tiny_model_path):
    behaviour = Behaviour(Workspace(tmp_path), "p", create=True)
    prepared = behaviour.prepare("s.jsonl", snips_chat_jsonl("train", limit=40, seed=1))
    settings = TrainingConfig(model=str(tiny_model_path), max_steps=3, batch_size=4, max_length=96)
    job_id = behaviour.start(prepared, settings, "snips-v1", device="cpu")
    assert behaviour.jobs.wait(job_id, timeout=300).status == "completed"
    assert behaviour.list_adapters() == []  # a job's adapter is registered on purpose, by whoever watches it
    assert behaviour.register_finished() == ["snips-v1"]
    [adapter] = behaviour.adapters.list()
    assert adapter.name == "snips-v1" and adapter.dataset_fingerprint == prepared.report["fingerprint"]


def test_on_cpu_an_estimate_above_the_ram_warns_but_does_not_refuse():
    settings = TrainingConfig(method="lora", batch_size=8, max_length=1024)
    cpu = Hardware("cpu", ram_gb=8.0)
    estimate = estimate_training(settings, 300, 60_000, cpu, MODEL_CATALOG["Qwen2.5-0.5B"])
    assert estimate.memory_gb == pytest.approx(63.3, abs=0.1) and estimate.fits
    [warning] = [n for n in estimate.notes if "RAM" in n]
    assert warning.startswith("About 63.3 GB needed, the machine has 8.0 GB of RAM: this may not fit. Lower the "
                              "batch size or max length (batch size 1: about 10.1 GB; max length 512: about ")


@pytest.mark.parametrize("hardware, settings", [
    (Hardware("cpu", ram_gb=96.0), TrainingConfig(method="lora", batch_size=8, max_length=1024)),
    (Hardware("cpu", ram_gb=23.0), TrainingConfig(method="lora", batch_size=1, max_length=512)),
    (Hardware("cpu"), TrainingConfig(method="lora", batch_size=8, max_length=1024)),  # RAM unknown
    (Hardware("cuda", "A100", 1, 80.0, True, ram_gb=8.0), TrainingConfig(method="lora", batch_size=8)),
])
def test_no_ram_warning_when_it_fits_the_ram_is_unknown_or_a_gpu_trains(hardware, settings):
    estimate = estimate_training(settings, 300, 60_000, hardware, MODEL_CATALOG["Qwen2.5-0.5B"])
    assert not any("RAM" in n for n in estimate.notes) and estimate.fits


def test_the_machine_ram_is_detected_and_agrees_with_proc_meminfo():
    from pathlib import Path

    from assistant.runtime.hardware import detect_hardware, meminfo_total_gb, total_ram_gb

    assert meminfo_total_gb("MemTotal:       24684096 kB\nMemFree: 1 kB\n") == pytest.approx(25.2765, abs=1e-4)
    assert meminfo_total_gb("MemFree: 1 kB\n") == 0.0
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        assert total_ram_gb() == pytest.approx(meminfo_total_gb(meminfo.read_text()), rel=0.02)
    assert total_ram_gb() > 0.1
    assert detect_hardware().ram_gb == total_ram_gb()


def test_every_setting_the_plan_chose_arrives_in_the_started_jobs_saved_config(tmp_path, tiny_model_path):
    import shutil
    import subprocess

    from trainers.config import JobSpec

    plan = decide(TaskProfile(gap="behaviour", examples=500, vram_gb=16))
    assert (plan.finetune, plan.lora.r, plan.learning_rate, plan.epochs) == ("qlora", 8, 2e-4, 3)
    local = shutil.copytree(tiny_model_path, tmp_path / "models" / f"{plan.model}-Instruct")
    planned = training_settings(plan, GPU16, available=[str(local)])
    settings = with_overrides(planned, {"lora_r": 32, "lora_dropout": 0.2, "target_modules": "q_proj,v_proj",
                                        "learning_rate": 1e-4, "epochs": 2.0}).config
    behaviour = Behaviour(Workspace(tmp_path / "ws"), "p", create=True)
    behaviour.jobs.launcher = lambda job_dir, resume, board: subprocess.Popen(["true"])  # the saved config is the point
    prepared = behaviour.prepare("s.jsonl", snips_chat_jsonl("train", limit=40, seed=1))
    job_id = behaviour.start(prepared, settings, "planned")

    saved = JobSpec.load(behaviour.jobs.path(job_id)).training
    assert saved.model == str(local) and saved.method == plan.finetune == "qlora"
    assert (saved.lora_r, saved.lora_alpha, saved.lora_dropout) == (32, 64, 0.2)
    assert saved.peft_target_modules == ["q_proj", "v_proj"]
    assert (saved.learning_rate, saved.epochs) == (1e-4, 2.0)
