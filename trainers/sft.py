"""One supervised fine-tuning run, top to bottom: TRL's SFTTrainer, full or with a PEFT adapter.

    python -m trainers.sft JOB_DIR            # reads JOB_DIR/config.json (a JobSpec)
    python -m trainers.sft JOB_DIR --resume   # continues from the last checkpoint

Runs in its own process, started by trainers/jobs.py; the two speak through the job folder
(trainers/job_files.py) and never import each other. It reports progress as JSON lines in
``progress.jsonl`` and its state in ``state.json``; SIGTERM saves a checkpoint and stops
("cancelled"); any error marks the job "failed" with the reason and advice. The base loads through
trainers/loading.py (the precision rule chat and export share) and is wrapped as its method's entry
in trainers/methods.py says. With CUDA: QLoRA (NF4, double quantisation, bf16 compute where supported,
else fp16), a PEFT method on a 16-bit base, or a full fine-tune on fp32 master weights with 16-bit
autocast. Without CUDA: everything in fp32 (slow), QLoRA through bitsandbytes' CPU kernels for tests.
A full fine-tune saves the whole model where the others save their adapter (the ``adapter`` folder).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path

from trainers.config import JobSpec
from trainers.job_files import (
    ADAPTER,
    BOARD_ENV,
    CHECKPOINTS,
    LOG_FILE,
    PAUSE_HALFWAY,
    PROGRESS_FILE,
    TRAINING_CARD,
    JobState,
    set_state,
    start_next_job,
    trim_progress,
    write_json,
)
from trainers.loading import dtype_for
from trainers.preview import has_generation_markers
from tunewise.errors import InputError

SMALLER_STEPS = ("a smaller batch size (raise gradient accumulation to keep the effective batch), or a shorter "
                 "max length")


class NoAnswerLeftError(InputError):
    """Every example's prompt fills the max length, so truncation left no answer to learn from."""


def failure_advice(error: BaseException) -> str:
    """What a person can change after ``error`` ended a job."""
    text = f"{type(error).__name__}: {error}".lower()
    if "out of memory" in text or "outofmemory" in text:
        return f"The GPU ran out of memory: use QLoRA, {SMALLER_STEPS}."
    if isinstance(error, NoAnswerLeftError):
        return "Raise the max length, or shorten the prompts so that each answer fits after its prompt."
    if isinstance(error, MemoryError) or "can't allocate memory" in text or "cannot allocate memory" in text:
        return f"The machine ran out of memory: use {SMALLER_STEPS}, or a smaller model."
    if "no such file" in text or "not found" in text:
        return "A file the job needs is missing: check the model path and the dataset files."
    return "See log.txt in the job folder for the full traceback."


def guard_bnb_cpu_repack(model) -> int:
    """Stop bitsandbytes from repacking 4-bit weights for its CPU inference kernel.

    With bitsandbytes 0.50 on CPUs with AVX512-BF16, any no-grad forward (evaluation, generate)
    repacks Linear4bit weights for a kernel that has no backward; LoRA's gradients then become
    None and training silently stops learning. Turning the feature off on every 4-bit layer
    before anything runs keeps the trainable path. Returns the number of layers guarded.
    """
    try:
        import bitsandbytes as bnb
    except ImportError:
        return 0
    guarded = 0
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False
            guarded += 1
    return guarded


def load_records(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def to_dataset(records: list[dict], assistant_markers: bool):
    """Messages as they are when the template marks assistant turns (loss on every assistant
    turn); otherwise prompt/completion pairs, so the loss still falls on the answer only."""
    from datasets import Dataset

    if assistant_markers:
        return Dataset.from_list([{"messages": r["messages"]} for r in records])
    return Dataset.from_list([{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in records])


def load_for_training(spec: JobSpec, device: str, records: list[dict] | None = None, total_steps: int = 0):
    """The base model wrapped as the config's method wants (trainers/methods.py), and its tokenizer.

    A full fine-tune gets no wrapper: every weight trains, in fp32 (master weights; 16-bit compute under
    autocast on CUDA). QLoRA's base loads in 4-bit. Every other method wraps the base in a fresh PEFT adapter
    built by its registry entry. ``records``: the training examples (prompt tuning starts from their
    instruction); ``total_steps``: the run's optimiser steps (AdaLoRA schedules its rank budget over them).
    """
    from transformers import AutoTokenizer

    from trainers.loading import load_causal_lm
    from trainers.methods import MethodContext, first_instruction

    config = spec.training
    entry = config.training_method
    source = spec.load_from
    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=config.trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = load_causal_lm(source, device, quantize_4bit=entry.quantized_base,
                           trust_remote_code=config.trust_remote_code, full_precision=entry.full)
    if entry.quantized_base:
        guard_bnb_cpu_repack(model)
        # No prepare_model_for_kbit_training: it upcasts embeddings, lm_head and norms to fp32 (about
        # 4 GB more for an 8B model with a 128k vocabulary) for no measured gain; TRL turns on input
        # gradients for checkpointing and keeps the adapters in bf16, as plain TRL does.
    if entry.full:
        model.requires_grad_(True)
        return model, tokenizer
    from peft import get_peft_model

    if records is None and entry.prompt_based and Path(spec.train_file).is_file():
        records = load_records(spec.train_file)
    text_config = model.config.get_text_config()
    context = MethodContext(model_type=text_config.model_type, num_layers=text_config.num_hidden_layers,
                            tokenizer_path=source, init_text=first_instruction(records or []),
                            total_steps=total_steps or max(config.max_steps, 1), linear_names=linear_names(model))
    return get_peft_model(model, entry.peft_config(config, context)), tokenizer


def linear_names(model) -> tuple[str, ...]:
    """The short names of the model's linear layers, less its output head: what "all-linear" targets."""
    import torch

    head = model.get_output_embeddings()
    names = {name.rpartition(".")[2] for name, module in model.named_modules()
             if isinstance(module, torch.nn.Linear) and module is not head}
    return tuple(sorted(names))


def planned_steps(config, examples: int, world: int = 1) -> int:
    """Optimiser steps the run will take, as the trainer counts them (before TRL drops any example)."""
    import math

    if config.max_steps > 0:
        return config.max_steps
    per_epoch = max(1, math.ceil(examples / (config.batch_size * world)) // config.gradient_accumulation)
    return max(1, math.ceil(per_epoch * config.epochs))


RANK_PATTERN_FILE = "adalora_rank_pattern.json"


def method_callbacks(model) -> list:
    """Callbacks a method needs inside the training loop (AdaLoRA's rank budget); empty for the others."""
    from transformers import TrainerCallback

    peft_config = getattr(model, "peft_config", {}).get(getattr(model, "active_adapter", "default"))
    if peft_config is None or str(getattr(peft_config, "peft_type", "")) not in ("ADALORA", "PeftType.ADALORA"):
        return []
    from trainers.methods import adalora_schedule

    class AdaLoraCallback(TrainerCallback):
        """AdaLoRA prunes rank between the optimiser step and the zeroing of gradients (it scores each singular
        value by weight x gradient), which transformers' Trainer never does by itself; ``on_optimizer_step`` is
        that moment. The budget is scheduled over the steps the trainer really runs.

        Checkpoints keep the matrices at their initial rank (pruning zeroes singular values in place, the
        matrices never shrink while training): PEFT would save them cut to the rank pattern, which the model
        being resumed, still at the initial rank, cannot load. So the pattern is held back while a checkpoint
        is written and saved beside it (``RANK_PATTERN_FILE``), to be read back on resume; the final adapter is
        saved cut, as PEFT loads it. The importance scores restart from zero on resume.
        """

        held = None

        def on_train_begin(self, args, state, control, **kwargs):
            tinit, tfinal = adalora_schedule(state.max_steps)
            peft_config.total_step, peft_config.tinit, peft_config.tfinal = state.max_steps, tinit, tfinal
            saved = Path(args.output_dir) / f"checkpoint-{state.global_step}" / RANK_PATTERN_FILE
            if state.global_step and saved.exists():
                peft_config.rank_pattern = json.loads(saved.read_text())

        def on_optimizer_step(self, args, state, control, **kwargs):
            model.base_model.update_and_allocate(state.global_step)

        def on_step_end(self, args, state, control, **kwargs):
            if control.should_save:  # the checkpoint is written next: at the initial rank
                self.held, peft_config.rank_pattern = peft_config.rank_pattern, None

        def on_save(self, args, state, control, **kwargs):
            peft_config.rank_pattern, self.held = self.held, None
            checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if peft_config.rank_pattern is not None and checkpoint.is_dir():
                write_json(checkpoint / RANK_PATTERN_FILE, peft_config.rank_pattern)

    return [AdaLoraCallback()]


def pause_callback(pause_halfway: bool, paused: dict):
    """Successive halving's stop: at half the run's steps (as the trainer counts them), evaluate, save a checkpoint
    and stop, recording the step in ``paused["step"]``. Only a run that starts from step 0 pauses: the sweep's
    resume starts past the pause, and a run resumed by hand after a cancel goes to its end. Resuming continues on
    the same learning-rate schedule."""
    from transformers import TrainerCallback

    class PauseCallback(TrainerCallback):
        from_start = False

        def on_train_begin(self, args, state, control, **kwargs):
            self.from_start = state.global_step == 0

        def on_step_end(self, args, state, control, **kwargs):
            halfway = max(1, state.max_steps // 2)
            if pause_halfway and self.from_start and state.global_step == halfway < state.max_steps:
                control.should_evaluate = args.eval_strategy != "no"
                control.should_save = True
                control.should_training_stop = True
                paused["step"] = state.global_step

    return PauseCallback()


def last_eval_loss(log_history: list[dict]) -> float | None:
    """The newest eval loss the trainer logged (None when it never evaluated)."""
    return next((entry["eval_loss"] for entry in reversed(log_history) if "eval_loss" in entry), None)


def rebind_adaption_prompt_forward(model) -> bool:
    """Let TRL's fused loss reach a LLaMA-Adapter model; returns whether there was one to fix.

    PEFT's AdaptionPromptModel copies the base's ``forward`` when it wraps it (``self.forward =
    self.model.forward``). SFTTrainer then patches the base's forward with its fused LM head (which returns
    log-probabilities, not logits), but the wrapper still calls the copy it took before, so the loss path gets
    logits and fails ("'CausalLMOutputWithPast' object has no attribute 'log_probs'"). Pointing the copy at the
    patched forward restores the path; generation is unchanged (without ``fused_lm_head`` the patch calls the
    original forward).
    """
    wrapper = getattr(model, "base_model", None)
    if type(wrapper).__name__ != "AdaptionPromptModel":
        return False
    wrapper.forward = wrapper.model.forward
    return True


def use_liger(config, device: str) -> bool:
    """Liger's kernels run on CUDA only; use them there when installed unless the config says no."""
    import importlib.util

    if not str(device).startswith("cuda") or config.liger_kernel is False:
        return False
    return importlib.util.find_spec("liger_kernel") is not None


def use_checkpointing(config, model, device: str, longest: int | None = None) -> bool:
    """Checkpointing trades a second forward pass for memory: worth it only when the activations of
    the largest batch (batch size x the longest example, at most max_length) would not fit in what
    the loaded model leaves free, with a fifth to spare: the GPU's free memory on CUDA, the
    machine's available RAM on a CPU (where fp32 activations take CPU_ACTIVATION_FACTOR times the
    16-bit formula, measured)."""
    if config.gradient_checkpointing is not None:
        return config.gradient_checkpointing
    from trainers.activations import CPU_ACTIVATION_FACTOR, CPU_OVERHEAD_GB, model_bytes_per_token

    tokens = config.batch_size * min(config.max_length, longest or config.max_length)
    per_token = model_bytes_per_token(model.config)
    if str(device).startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info()
        return per_token * tokens * 1.2 + 2e9 > free
    return per_token * CPU_ACTIVATION_FACTOR * tokens * 1.2 + CPU_OVERHEAD_GB * 1e9 > available_memory_bytes()


def adalora_orthogonal_penalty(model):
    """AdaLoRA's orthogonal regulariser, as PEFT's ``AdaLoraModel.forward`` computes it: ``orth_reg_weight`` times
    the mean, over the trained adapter's A and B matrices, of ||A A^T - I|| (B^T B for B, Frobenius norm).

    PEFT adds it to the model's own loss. TRL's fused loss never asks the model for a loss, so without this the
    penalty is lost and A and B drift from orthogonal, which AdaLoRA's pruning by singular value assumes.
    None for any other model."""
    import torch

    adalora = getattr(model, "base_model", None)
    name = getattr(adalora, "trainable_adapter_name", None)
    config = getattr(model, "peft_config", {}).get(name) if name else None
    if config is None or not hasattr(config, "orth_reg_weight"):
        return None
    norms = []
    for parameter_name, weight in adalora.model.named_parameters():
        if ("lora_A" in parameter_name or "lora_B" in parameter_name) and name in parameter_name:
            cov = weight @ weight.T if "lora_A" in parameter_name else weight.T @ weight
            norms.append(torch.linalg.matrix_norm(cov - torch.eye(*cov.shape, device=cov.device, dtype=cov.dtype)))
    return config.orth_reg_weight * torch.stack(norms).mean() if norms else None


def with_adalora_penalty(trainer_class):
    """``trainer_class`` adding :func:`adalora_orthogonal_penalty` to each training micro-batch's loss (divided over
    the accumulation steps when the loss is normalised by the tokens of the whole step, as TRL does its aux loss).

    Evaluation leaves it out (PEFT's forward would add it there too): the eval loss then measures the task alone,
    so AdaLoRA's compares with any other method's, as successive halving compares them."""

    class AdaLoraPenaltyTrainer(trainer_class):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            result = super().compute_loss(model, inputs, return_outputs=return_outputs,
                                          num_items_in_batch=num_items_in_batch)
            penalty = adalora_orthogonal_penalty(self.model) if self.model.training else None
            if penalty is None:  # evaluation: the task's loss alone, comparable with any other method's
                return result
            steps = self.current_gradient_accumulation_steps if num_items_in_batch is not None else 1
            if return_outputs:
                loss, outputs = result
                return loss + penalty / steps, outputs
            return result + penalty / steps

    return AdaLoraPenaltyTrainer


def length_batched(trainer_class):
    """``trainer_class`` drawing its training batches from LengthBatchSampler (trainers/batching.py)."""
    from trainers.batching import LengthBatchSampler

    class LengthBatchedTrainer(trainer_class):
        def _get_train_sampler(self, train_dataset=None):
            dataset = train_dataset if train_dataset is not None else self.train_dataset
            if dataset is None or "input_ids" not in getattr(dataset, "column_names", ()):
                return super()._get_train_sampler(train_dataset)
            lengths = [len(ids) for ids in dataset["input_ids"]]
            return LengthBatchSampler(lengths, self.args.per_device_train_batch_size, self.args.seed)

    return LengthBatchedTrainer


def available_memory_bytes() -> float:
    """RAM the kernel says can be had without swapping (MemAvailable); the total when unknown."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def longest_example(tokenizer, records: list[dict]) -> int:
    """Tokens of the longest example after the chat template (what one row of a batch can reach)."""
    return max((len(tokenizer.apply_chat_template(r["messages"], tokenize=True, return_dict=True)["input_ids"])
                for r in records), default=0)


def gpu_memory_gb() -> dict:
    """Peak GPU memory since training began, by torch's own accounting (tensors, and what its
    allocator holds); empty without CUDA."""
    import torch

    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return {}
    return {"gpu_peak_allocated_gb": round(torch.cuda.max_memory_allocated() / 1e9, 3),
            "gpu_peak_reserved_gb": round(torch.cuda.max_memory_reserved() / 1e9, 3)}


def rss_gb() -> float:
    """The process's resident memory now (VmRSS), in GB; 0 where /proc is missing."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024 / 1e9
    except OSError:
        pass
    return 0.0


def peak_memory_gb(baseline_rss_gb: float) -> dict:
    """The job's peak memory so far, measured as the estimate counts it (assistant/core/memory.py).

    ``peak_memory_gb``: on CUDA, torch's peak allocation (reset as training begins, so the weights
    loaded before stay counted and loading transients do not); on a CPU, the process's peak RSS
    (ru_maxrss, Linux: KiB) above ``baseline_rss_gb``, its RSS with Python and torch loaded but not
    TRL's trainer nor the model, where bench/memory_cpu.py fitted the estimate's CPU constants.
    ``peak_rss_gb``: the whole process, for comparing with the machine's RAM.
    """
    import resource

    import torch

    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        measured = torch.cuda.max_memory_allocated() / 1e9
    else:
        measured = max(0.0, peak_rss - baseline_rss_gb)
    return {"peak_memory_gb": round(measured, 3), "peak_rss_gb": round(peak_rss, 3)}


def stop_callback(stop_requested):
    """A cancel for the processes other than rank 0: stop at the end of the step, as rank 0 does."""
    from transformers import TrainerCallback

    class StopCallback(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if stop_requested():
                control.should_save = True
                control.should_training_stop = True

    return StopCallback()


def make_progress_callback(job_dir: Path, stop_requested, baseline_rss_gb: float = 0.0):
    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        """JSON lines of progress, and a clean stop (with a checkpoint) when asked to cancel."""

        def __init__(self):
            self.started = time.time()
            self.first_step = None

        def _write(self, record: dict) -> None:
            with open(job_dir / PROGRESS_FILE, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")

        def on_train_begin(self, args, state, control, **kwargs):
            import torch

            if torch.cuda.is_available() and torch.cuda.is_initialized():
                torch.cuda.reset_peak_memory_stats()  # the peak of training, not of loading
            self.first_step = state.global_step
            self.started = time.time()
            set_state(job_dir, JobState.RUNNING, max_steps=state.max_steps, step=state.global_step)

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            elapsed = time.time() - self.started
            done = state.global_step - (self.first_step or 0)
            rate = done / elapsed if elapsed > 0 and done > 0 else 0.0
            tokens = getattr(state, "num_input_tokens_seen", 0) or 0
            record = {"time": time.time(), "step": state.global_step, "max_steps": state.max_steps,
                      "epoch": round(state.epoch or 0, 4)}
            for key in ("loss", "eval_loss", "learning_rate", "grad_norm", "mean_token_accuracy"):
                if key in logs:
                    record[key] = logs[key]
            if tokens and elapsed > 0:
                record["tokens_per_s"] = round(tokens / elapsed, 1)
            record.update(gpu_memory_gb())
            record.update(peak_memory_gb(baseline_rss_gb))
            if rate > 0:
                record["eta_s"] = round((state.max_steps - state.global_step) / rate, 1)
            self._write(record)
            set_state(job_dir, JobState.RUNNING, step=state.global_step, max_steps=state.max_steps)

        def on_step_end(self, args, state, control, **kwargs):
            if stop_requested():
                control.should_save = True
                control.should_training_stop = True

    return ProgressCallback()


def process_rank() -> tuple[int, int, int]:
    """(rank, local rank, world size) under ``accelerate launch`` (its environment); (0, 0, 1) alone."""
    return (int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")),
            int(os.environ.get("WORLD_SIZE", "1")))


def train(job_dir: Path, resume: bool = False) -> JobState:
    """Run the job in ``job_dir``; returns the final state.

    Under ``accelerate launch`` every process runs this, each on its share of the batches (data
    parallel); only rank 0 writes the job's files and the adapter, and the job's pid stays the
    launcher's, which passes a cancel on to every process.
    """
    import torch

    # What the memory estimate leaves out, measured where bench/memory_cpu.py fitted the CPU constants:
    # Python and torch in memory; TRL's trainer, the model and the data not yet.
    baseline_rss = rss_gb()
    from trl import SFTConfig, SFTTrainer

    spec = JobSpec.load(job_dir)
    config = spec.training
    rank, local_rank, world = process_rank()
    main_process = rank == 0
    stop = {"requested": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__("requested", True))
    device = spec.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and world > 1:
        device = f"cuda:{local_rank}"
    cpu = device == "cpu"
    if main_process:
        alone = {"pid": os.getpid()} if world == 1 else {"processes": world}
        set_state(job_dir, JobState.RUNNING, device=device, method=config.method, resumed=resume, **alone)
    torch.manual_seed(config.seed)

    records = load_records(spec.train_file)
    model, tokenizer = load_for_training(spec, device, records, planned_steps(config, len(records), world))
    markers = has_generation_markers(tokenizer)
    train_data = to_dataset(records, markers)
    eval_data = to_dataset(load_records(spec.eval_file), markers) if spec.eval_file else None
    precision = dtype_for(device, not cpu and torch.cuda.is_bf16_supported())  # the precision the base loaded in
    liger = use_liger(config, device)
    longest = longest_example(tokenizer, records) if config.gradient_checkpointing is None else None
    checkpointing = use_checkpointing(config, model, device, longest)
    if main_process:
        set_state(job_dir, JobState.RUNNING, liger_kernel=liger, gradient_checkpointing=checkpointing)
    args = SFTConfig(
        output_dir=str(job_dir / CHECKPOINTS), num_train_epochs=config.epochs, max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size, per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation, learning_rate=config.learning_rate,
        lr_scheduler_type="cosine", warmup_steps=0.03, weight_decay=0.0, max_length=config.max_length,
        packing=config.packing, assistant_only_loss=markers, logging_steps=config.logging_steps,
        logging_first_step=True, eval_strategy="steps" if eval_data is not None else "no",
        eval_steps=config.eval_steps, save_strategy="steps", save_steps=config.save_steps, save_total_limit=2,
        seed=config.seed, data_seed=config.seed, use_cpu=cpu, bf16=precision == "bfloat16",
        fp16=precision == "float16",
        gradient_checkpointing=checkpointing, report_to="none", disable_tqdm=True, dataloader_num_workers=0,
        include_num_input_tokens_seen=True, use_liger_kernel=liger,
    )
    # Batches of similar length in a random order (trainers/batching.py), unless packing or asked not to.
    trainer_class = length_batched(SFTTrainer) if config.group_by_length and not config.packing else SFTTrainer
    if config.training_method.schedules_rank:  # AdaLoRA: its orthogonal regulariser, which TRL's loss skips
        trainer_class = with_adalora_penalty(trainer_class)
    paused: dict = {}
    callbacks = [make_progress_callback(job_dir, lambda: stop["requested"], baseline_rss) if main_process
                 else stop_callback(lambda: stop["requested"]),
                 pause_callback(bool(spec.extra.get(PAUSE_HALFWAY)), paused),  # before AdaLoRA's: it reads should_save
                 *method_callbacks(model)]
    trainer = trainer_class(model=model, args=args, train_dataset=train_data, eval_dataset=eval_data,
                            processing_class=tokenizer, callbacks=callbacks)
    rebind_adaption_prompt_forward(trainer.model)
    if len(trainer.train_dataset) == 0:  # TRL drops examples whose answer was cut off entirely
        raise NoAnswerLeftError(f"no training example keeps any of its answer within the max length of "
                                f"{config.max_length} tokens")
    steps_saved = [int(c.name.rpartition("-")[2]) for c in (job_dir / CHECKPOINTS).glob("checkpoint-*")
                   if c.name.rpartition("-")[2].isdigit()]
    checkpoint = resume and bool(steps_saved)
    if checkpoint and main_process:  # the steps after the checkpoint are trained again: their old lines would repeat
        trim_progress(job_dir, max(steps_saved))
    result = trainer.train(resume_from_checkpoint=True if checkpoint else None)
    if stop["requested"]:
        if main_process:
            set_state(job_dir, JobState.CANCELLED, step=trainer.state.global_step, reason="cancelled by the user",
                      **peak_memory_gb(baseline_rss))
        return JobState.CANCELLED
    if paused:
        if main_process:
            set_state(job_dir, JobState.CANCELLED, step=trainer.state.global_step, paused_at=paused["step"],
                      halfway_eval_loss=last_eval_loss(trainer.state.log_history),
                      paused_train_seconds=result.metrics.get("train_runtime"),
                      reason=f"paused at step {paused['step']} of {trainer.state.max_steps} to compare eval losses "
                             "(successive halving); resume continues it", **peak_memory_gb(baseline_rss))
        return JobState.CANCELLED
    peak = peak_memory_gb(baseline_rss)  # of training: evaluation below runs without gradients
    metrics = dict(result.metrics) | gpu_memory_gb() | peak
    if eval_data is not None:
        metrics.update(trainer.evaluate())  # every process takes part; the metrics are gathered
    if not main_process:
        return JobState.COMPLETED
    adapter_dir = job_dir / ADAPTER
    if config.training_method.full:  # the whole model, in the precision it runs in (trained on fp32 master weights)
        trainer.model.to(getattr(torch, precision))
    trainer.model.save_pretrained(adapter_dir, safe_serialization=True)
    tokenizer.save_pretrained(adapter_dir)
    write_json(adapter_dir / TRAINING_CARD, {"config": spec.to_dict(), "metrics": metrics, "device": device,
                                               "assistant_only_loss": markers,
                                               "steps": trainer.state.global_step})
    set_state(job_dir, JobState.COMPLETED, step=trainer.state.global_step, metrics=metrics, **peak)
    return JobState.COMPLETED


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("job_dir")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    job_dir = Path(args.job_dir)
    try:
        status = train(job_dir, args.resume)
    except BaseException as error:  # the job's state must say why it ended
        with open(job_dir / LOG_FILE, "a") as log:
            log.write(traceback.format_exc())
        reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        set_state(job_dir, JobState.FAILED, reason=reason, advice=failure_advice(error))
        status = JobState.FAILED
    hand_over(job_dir)
    return 0 if status in (JobState.COMPLETED, JobState.CANCELLED) else 1


def hand_over(job_dir: Path) -> None:
    """As a job ends, start the next one in line, so the queue moves with nobody watching.

    Through the job protocol (trainers/job_files.py): the queue runs in a process of its own, so
    the job process imports none of it."""
    board = os.environ.get(BOARD_ENV)
    if not board or os.environ.get("LOCAL_RANK", "0") != "0":
        return
    try:
        started = start_next_job(board)
    except Exception as error:  # noqa: BLE001 - the queue moves on the next look; this job's result stands
        started = f"none ({type(error).__name__}: {error})"
    with open(job_dir / LOG_FILE, "a") as log:
        log.write(f"\nnext job in line: {started}\n")


if __name__ == "__main__":
    sys.exit(main())
