"""Every training method through the one job, on the tiny model: the registry is the one place a method is
defined; each method builds, trains a few steps, resumes, loads onto its base and answers, and exports (merged)
or is refused with the reason.

The training tests run the job in this process (trainers.sft.train on a job folder, as the job process does),
one short run per method shared by the tests of that method.
"""

from __future__ import annotations

import json
import shutil
import signal
from types import SimpleNamespace

import pytest
import torch

from trainers.config import METHODS, JobSpec, TrainingConfig
from trainers.methods import METHODS as REGISTRY
from trainers.methods import MethodContext, first_instruction, method, methods_where
from tunewise.errors import InputError

CUDA = torch.cuda.is_available()
ON_CPU = [name for name in METHODS if not REGISTRY[name].quantized_base]
"""Every method a CPU trains; QLoRA's 4-bit base is for CUDA (tests/trainers/test_qlora_cpu.py covers its CPU
kernels)."""
TRAINED = [*ON_CPU, *(["qlora"] if CUDA else [])]
STEPS = 4


# --- the registry ------------------------------------------------------------------------------------------

def test_the_registry_is_the_one_list_of_methods_the_config_accepts():
    assert METHODS == tuple(REGISTRY) == ("full", "lora", "qlora", "dora", "rslora", "ia3", "adalora",
                                          "prompt_tuning", "prefix_tuning", "p_tuning", "adaption_prompt")
    for name in METHODS:
        assert TrainingConfig(method=name).training_method is REGISTRY[name]
    with pytest.raises(InputError, match="choose one of full, lora"):
        method("lorra")


@pytest.mark.parametrize("name", METHODS)
def test_every_entry_says_what_it_trains_its_rate_and_why_and_what_export_does(name):
    entry = REGISTRY[name]
    assert entry.label and entry.description and entry.export_note
    assert 1e-6 <= entry.learning_rate <= 1e-2 and len(entry.learning_rate_reason) > 40
    assert entry.mergeable == (not entry.prompt_based)  # virtual tokens change the input, not a weight
    if not entry.mergeable:
        assert "Ollama" in entry.merge_refusal() and "Keep the adapter" in entry.merge_refusal()
    assert entry.full == (name == "full") and entry.quantized_base == (name == "qlora")


def test_learning_rates_differ_by_method_as_pefts_comparison_found():
    rate = {name: REGISTRY[name].learning_rate for name in METHODS}
    assert rate["full"] < rate["dora"] == rate["rslora"] < rate["lora"] == rate["qlora"] < rate["ia3"]
    assert rate["prefix_tuning"] == rate["adaption_prompt"] == rate["ia3"] == 5e-3
    assert max(rate.values()) / min(rate.values()) >= 100
    assert set(methods_where(prompt_based=True)) == {"prompt_tuning", "prefix_tuning", "p_tuning", "adaption_prompt"}


# --- building each method on the tiny model: fast, no training ----------------------------------------------

def model_dimensions(model) -> SimpleNamespace:
    """The shape the registry counts weights on, read off a loaded model (as the catalog writes it)."""
    config = model.config
    groups = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and name != "lm_head":
            short = name.rpartition(".")[2]
            group = groups.setdefault(short, SimpleNamespace(name=short, in_features=module.in_features,
                                                             out_features=module.out_features, count=0))
            group.count += 1
    head_dim = config.hidden_size // config.num_attention_heads
    return SimpleNamespace(hidden_size=config.hidden_size, num_layers=config.num_hidden_layers,
                           kv_dim=config.num_key_value_heads * head_dim, linear_groups=tuple(groups.values()),
                           total_params=sum(p.numel() for p in model.parameters()))


@pytest.mark.parametrize("name", ON_CPU)
def test_each_method_wraps_the_base_and_trains_exactly_the_weights_the_estimate_counts(name, tiny_model_path):
    from transformers import AutoModelForCausalLM

    from trainers.sft import load_for_training

    dimensions = model_dimensions(AutoModelForCausalLM.from_pretrained(tiny_model_path))
    spec = JobSpec.of(model=str(tiny_model_path), train_file="-", method=name, num_virtual_tokens=8, lora_r=4,
                      lora_alpha=8, prompt_init_text="Extract the intent and slots as JSON.", max_steps=10)
    model, _ = load_for_training(spec, "cpu")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == REGISTRY[name].trainable_params(dimensions, spec.training)
    assert all(p.dtype == torch.float32 for p in model.parameters() if p.requires_grad)


def test_adaption_prompt_is_refused_with_the_reason_where_peft_cannot_rewire_the_attention():
    entry = method("adaption_prompt")
    with pytest.raises(InputError, match="cannot adapt a 'qwen2' model.*llama, mistral, gpt2") as refused:
        entry.peft_config(TrainingConfig(method="adaption_prompt"), MethodContext(model_type="qwen2", num_layers=2))
    assert "prefix tuning" in refused.value.hint
    assert entry.peft_config(TrainingConfig(method="adaption_prompt"),
                             MethodContext(model_type="llama", num_layers=30)).adapter_layers == 30


def test_prompt_tuning_starts_from_the_tasks_instruction_by_default():
    from peft import PromptTuningInit

    records = [{"messages": [{"role": "user", "content": "book a table"}, {"role": "assistant", "content": "{}"}]},
               {"messages": [{"role": "system", "content": "Extract the intent."}, {"role": "user", "content": "x"}]}]
    assert first_instruction(records) == "Extract the intent."  # the task's own words, over a question
    assert first_instruction(records[:1]) == "book a table"
    context = MethodContext(tokenizer_path="tok", init_text=first_instruction(records))
    config = method("prompt_tuning").peft_config(TrainingConfig(method="prompt_tuning"), context)
    assert (config.prompt_tuning_init, config.prompt_tuning_init_text) == (PromptTuningInit.TEXT, "Extract the intent.")
    for init, expected in (("vocab", PromptTuningInit.SAMPLE_VOCAB), ("random", PromptTuningInit.RANDOM)):
        built = method("prompt_tuning").peft_config(TrainingConfig(method="prompt_tuning", prompt_init=init))
        assert built.prompt_tuning_init == expected
    with pytest.raises(InputError, match="no text to start from"):
        method("prompt_tuning").peft_config(TrainingConfig(method="prompt_tuning"), MethodContext(tokenizer_path="t"))


def test_an_untrained_prompt_adapter_is_refused_by_export_with_what_ollama_can_take(tiny_model_path, tmp_path):
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from trainers.adapters import AdapterError, AdapterRegistry

    folder = tmp_path / "prefix"
    config = TrainingConfig(model=str(tiny_model_path), method="prefix_tuning", num_virtual_tokens=4)
    peft = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_path),
                          method("prefix_tuning").peft_config(config))
    peft.save_pretrained(folder)
    (folder / "training.json").write_text(json.dumps({"config": config.to_dict(), "steps": 0}))
    registry = AdapterRegistry(tmp_path / "adapters")
    assert registry.add(folder, "prefix").method == "prefix_tuning"
    with pytest.raises(AdapterError, match="prefix tuning adapter and cannot be merged.*Ollama imports") as refused:
        registry.merge_and_export("prefix", tmp_path / "out")
    assert "LoRA-family" in refused.value.hint and not (tmp_path / "out").exists()


def test_an_adapter_trained_elsewhere_is_read_as_its_method(tmp_path):
    from trainers.adapters import method_of

    assert method_of({}, {"peft_type": "LORA", "use_dora": True}) == "dora"
    assert method_of({}, {"peft_type": "P_TUNING"}) == "p_tuning"
    assert method_of({}, {}) == "full"
    assert method_of({"method": "ia3"}, {"peft_type": "IA3"}) == "ia3"


def test_adaloras_schedule_fits_any_run_length():
    from trainers.methods import adalora_schedule

    for steps in (1, 2, 3, 10, 5000):
        tinit, tfinal = adalora_schedule(steps)
        assert tinit < steps - tfinal or steps < 3
    assert adalora_schedule(5000) == (200, 500)  # PEFT's comparison's schedule


def test_adaloras_orthogonal_penalty_is_the_one_peft_adds_and_the_trainers_loss_carries_it(tiny_model_path):
    """PEFT adds AdaLoRA's orthogonal regulariser to the model's own loss; TRL's fused loss never asks for one,
    so the job adds the same term to each step's loss."""
    from trl import SFTConfig, SFTTrainer

    from tests.snips import snips_chat_jsonl
    from trainers.sft import adalora_orthogonal_penalty, load_for_training, to_dataset, with_adalora_penalty

    spec = JobSpec.of(model=str(tiny_model_path), train_file="-", method="adalora", lora_r=4, lora_alpha=8,
                      max_steps=10)
    model, tokenizer = load_for_training(spec, "cpu", total_steps=10)
    with torch.no_grad():  # A and B start near zero, far from orthogonal; move them so the term is not trivial
        for name, weight in model.named_parameters():
            if "lora_A" in name or "lora_B" in name:
                weight.normal_(0, 0.5)
    ids = tokenizer("turn on the lights in the kitchen", return_tensors="pt").input_ids
    weight = model.peft_config["default"].orth_reg_weight
    assert weight > 0
    with torch.no_grad():
        with_term = model(input_ids=ids, labels=ids).loss  # PEFT's AdaLoraModel.forward adds it here
        model.peft_config["default"].orth_reg_weight = 0.0
        without = model(input_ids=ids, labels=ids).loss
        model.peft_config["default"].orth_reg_weight = weight
        penalty = adalora_orthogonal_penalty(model)
    assert penalty.item() > 0.01 and (with_term - without).item() == pytest.approx(penalty.item(), rel=1e-4)
    adalora_orthogonal_penalty(model).backward()  # it trains A and B towards orthogonal
    assert all(w.grad is not None and w.grad.abs().sum() > 0 for n, w in model.named_parameters() if "lora_A" in n)
    model.zero_grad()

    records = [json.loads(line) for line in snips_chat_jsonl("train", limit=4, seed=0).splitlines()]
    args = SFTConfig(output_dir="/tmp/unused-adalora", per_device_train_batch_size=4, report_to="none",
                     use_cpu=True, max_length=96, assistant_only_loss=True)
    losses = {}
    for mode in ("train", "eval"):  # evaluation leaves it out: the eval loss stays comparable across methods
        model.train(mode == "train")
        for label, trainer_class in (("trl", SFTTrainer), ("job", with_adalora_penalty(SFTTrainer))):
            trainer = trainer_class(model=model, args=args, train_dataset=to_dataset(records, True),
                                    processing_class=tokenizer)
            batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
            with torch.no_grad():
                losses[mode, label] = trainer.compute_loss(model, batch).item()
    assert losses["train", "job"] - losses["train", "trl"] == pytest.approx(penalty.item(), rel=1e-3)
    assert losses["eval", "job"] == pytest.approx(losses["eval", "trl"])


# --- training, resuming, loading and exporting each method ---------------------------------------------------

def run_job(job_dir, resume: bool = False):
    """The job process's work, in this process; the SIGTERM handler it installs is put back after."""
    from trainers.sft import train

    handler = signal.getsignal(signal.SIGTERM)
    try:
        return train(job_dir, resume)
    finally:
        signal.signal(signal.SIGTERM, handler)


@pytest.fixture(scope="module")
def train_file(tmp_path_factory):
    from tests.snips import snips_chat_jsonl

    path = tmp_path_factory.mktemp("methods-data") / "train.jsonl"
    path.write_text(snips_chat_jsonl("train", limit=32, seed=0))
    return path


@pytest.fixture(scope="module", params=TRAINED)
def trained(request, tiny_model_path, train_file, tmp_path_factory):
    """One short run of a method: STEPS steps, a checkpoint every 2, the adapter saved."""
    import time

    name = request.param
    job = tmp_path_factory.mktemp(f"job-{name}")
    spec = JobSpec.of(model=str(tiny_model_path), train_file=str(train_file), method=name, max_steps=STEPS,
                      batch_size=4, max_length=96, save_steps=2, logging_steps=1, num_virtual_tokens=8, lora_r=4,
                      lora_alpha=8, device="cuda" if name == "qlora" else "cpu")
    spec.save(job)
    started = time.perf_counter()
    state = run_job(job)
    seconds = time.perf_counter() - started
    assert state == "completed", (job / "state.json").read_text()
    print(f"\n{name}: trained {STEPS} steps in {seconds:.1f} s")
    return SimpleNamespace(name=name, job=job, adapter=job / "adapter", spec=spec, seconds=seconds)


def load_trained(trained, base_path):
    """The trained model as chat loads it: the base with the adapter (PeftModel.from_pretrained), or the whole
    model a full fine-tune saved."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    if trained.name == "full":
        return AutoModelForCausalLM.from_pretrained(trained.adapter).eval()
    return PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_path), trained.adapter).eval()


@pytest.mark.slow
def test_each_method_trains_through_the_job_and_saves_what_it_trained(trained):
    state = json.loads((trained.job / "state.json").read_text())
    assert state["status"] == "completed" and state["step"] == STEPS
    losses = [json.loads(line)["loss"] for line in (trained.job / "progress.jsonl").read_text().splitlines()
              if "loss" in json.loads(line)]
    assert len(losses) == STEPS and all(0 < loss < 20 for loss in losses)
    card = json.loads((trained.adapter / "training.json").read_text())
    assert card["config"]["method"] == trained.name and card["steps"] == STEPS
    saved = {p.name for p in trained.adapter.iterdir()}
    if trained.name == "full":
        assert {"config.json", "model.safetensors", "tokenizer.json"} <= saved
    else:
        assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= saved


@pytest.mark.slow
def test_each_trained_method_changes_what_the_model_computes(trained, tiny_model_path):
    """Training moved the trained weights: the LoRA family's B, IA3's scales, AdaLoRA's singular values and
    LLaMA-Adapter's zero-initialised gates all start as a no-op."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    if trained.name == "adaption_prompt":  # TRL's loss reached the gates (trainers/sft.py re-binds the forward)
        gates = [t for n, t in load_file(trained.adapter / "adapter_model.safetensors").items() if "gate" in n]
        assert gates and any(g.abs().item() > 0 for g in gates)
    ids = torch.tensor([[5, 17, 42, 7, 99, 3]])
    with torch.no_grad():
        base = AutoModelForCausalLM.from_pretrained(tiny_model_path).eval()(ids).logits
        adapted = load_trained(trained, tiny_model_path)(input_ids=ids).logits
    assert adapted.shape[-1] == base.shape[-1] and not torch.allclose(adapted[:, -1], base[:, -1], atol=1e-5)


@pytest.mark.slow
def test_each_method_resumes_from_its_last_checkpoint(trained, tmp_path):
    """A job stopped after its step-2 checkpoint picks up there and finishes: the steps before are not rerun."""
    job = tmp_path / "job"
    shutil.copytree(trained.job, job)
    shutil.rmtree(job / "adapter")
    shutil.rmtree(job / "checkpoints" / f"checkpoint-{STEPS}")
    assert run_job(job, resume=True) == "completed"
    steps = [json.loads(line)["step"] for line in (job / "progress.jsonl").read_text().splitlines()]
    assert steps.count(1) == 1 and STEPS in steps  # step 1 logged once: the resumed run began after step 2
    assert json.loads((job / "state.json").read_text())["step"] == STEPS
    assert (job / "adapter" / "training.json").exists()


@pytest.mark.slow
def test_each_saved_method_loads_onto_its_base_and_answers(trained, tiny_model_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(trained.adapter)
    model = load_trained(trained, tiny_model_path)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "play some jazz"}], tokenize=True,
                                           add_generation_prompt=True, return_dict=True, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**prompt, max_new_tokens=5, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert out.shape[1] > prompt["input_ids"].shape[1]


@pytest.mark.slow
def test_export_merges_each_mergeable_method_and_refuses_the_others_with_the_reason(trained, tiny_model_path,
                                                                                     tmp_path):
    from transformers import AutoModelForCausalLM

    from trainers.adapters import AdapterError, AdapterRegistry

    registry = AdapterRegistry(tmp_path / "adapters")
    info = registry.add(trained.adapter, "v1")
    assert info.method == trained.name and [a.name for a in registry.list()] == ["v1"]
    entry = method(trained.name)
    if not entry.mergeable:
        with pytest.raises(AdapterError, match=f"{entry.label} adapter and cannot be merged.*Ollama"):
            registry.merge_and_export("v1", tmp_path / "merged")
        return
    out = registry.merge_and_export("v1", tmp_path / "merged")
    assert (out / "model.safetensors").exists() and (out / "Modelfile").read_text().startswith("FROM .")
    ids = torch.tensor([[5, 17, 42, 7, 99]])
    with torch.no_grad():
        merged = AutoModelForCausalLM.from_pretrained(out).eval()(ids).logits
        adapted = load_trained(trained, tiny_model_path)(input_ids=ids).logits
    assert torch.allclose(merged, adapted, atol=1e-4)  # merged: the same answers, no adapter at run time
