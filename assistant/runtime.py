"""The model runtime: load a base model by hub id or local path, and stream chat answers.

safetensors only, ``trust_remote_code`` off unless asked for, CUDA when present (bf16 where the
GPU supports it), else CPU in fp32. Generation applies the model's own chat template and stops
at the end of the assistant's turn. torch and transformers are imported inside the functions.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

DEFAULT_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"


class ModelUnavailableError(Exception):
    """The model cannot be loaded; the message says what to pass instead."""


@dataclass(frozen=True)
class ModelSettings:
    model: str = DEFAULT_MODEL
    """Hub id or local folder of a causal LM with a chat template."""
    trust_remote_code: bool = False
    """Run code shipped with the model. Off unless you trust its author."""
    device: str | None = None
    """"cuda", "cpu", or None to pick CUDA when available."""


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 256
    temperature: float = 0.0
    """0 means greedy decoding: the same prompt gives the same answer."""
    top_p: float = 1.0
    seed: int = 0


@dataclass
class LoadedModel:
    model: object
    tokenizer: object
    device: str
    name: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    """One generation at a time per model: they share one device."""

    @property
    def stop_token_ids(self) -> list[int]:
        """End of turn: the tokenizer's EOS plus ChatML's <|im_end|> and Llama 3's <|eot_id|>."""
        ids = {self.tokenizer.eos_token_id}
        for token in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>"):
            token_id = self.tokenizer.convert_tokens_to_ids(token)
            if isinstance(token_id, int) and token_id != self.tokenizer.unk_token_id:
                ids.add(token_id)
        return sorted(i for i in ids if i is not None)


def load_model(settings: ModelSettings | None = None) -> LoadedModel:
    settings = settings or ModelSettings()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = settings.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        dtype = torch.float32
    try:
        tokenizer = AutoTokenizer.from_pretrained(settings.model, trust_remote_code=settings.trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(
            settings.model, dtype=dtype, use_safetensors=True, trust_remote_code=settings.trust_remote_code)
    except (OSError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelUnavailableError(
            f"cannot load the model {settings.model!r}: {first_line}. Without internet access, download it "
            "elsewhere and pass its folder with --model PATH (safetensors weights, a tokenizer with a chat "
            "template).") from error
    if not getattr(tokenizer, "chat_template", None):
        raise ModelUnavailableError(f"the model {settings.model!r} has no chat template; use an instruct model")
    model.to(device)
    model.eval()
    return LoadedModel(model, tokenizer, device, settings.model)


def prompt_ids(loaded: LoadedModel, messages: list[dict]):
    encoded = loaded.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                   return_tensors="pt", return_dict=True)
    return {k: v.to(loaded.device) for k, v in encoded.items()}


BASE = None
"""Pass as ``adapter`` to answer with every adapter disabled (the frozen base)."""
ACTIVE = "__active__"
"""Pass as ``adapter`` to keep whatever adapter is active (or the plain model)."""


def stream_chat(loaded: LoadedModel, messages: list[dict], generation: GenerationSettings | None = None,
                adapter: str | None = ACTIVE) -> Iterator[str]:
    """Yield the answer's text as it grows, ending at the end of the assistant's turn.

    On a PEFT model, ``adapter`` names the adapter to answer with, or BASE (None) for the base
    with adapters disabled. The model lock is held for the whole answer, so a switch can never
    happen half-way through someone else's generation.
    """
    import contextlib

    import torch
    from transformers import TextIteratorStreamer

    generation = generation or GenerationSettings()
    inputs = prompt_ids(loaded, messages)
    streamer = TextIteratorStreamer(loaded.tokenizer, skip_prompt=True, skip_special_tokens=True)
    sampling = generation.temperature > 0
    kwargs = dict(**inputs, streamer=streamer, max_new_tokens=generation.max_new_tokens, do_sample=sampling,
                  eos_token_id=loaded.stop_token_ids, pad_token_id=loaded.tokenizer.pad_token_id
                  or loaded.tokenizer.eos_token_id)
    if sampling:
        kwargs.update(temperature=generation.temperature, top_p=generation.top_p)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            context = contextlib.nullcontext()
            if adapter is None and hasattr(loaded.model, "disable_adapter"):
                context = loaded.model.disable_adapter()
            elif adapter not in (None, ACTIVE):
                loaded.model.set_adapter(adapter)
            with torch.no_grad(), context:
                torch.manual_seed(generation.seed)
                loaded.model.generate(**kwargs)
        except BaseException as error:  # surfaced to the caller below
            errors.append(error)
            streamer.end()

    with loaded.lock:
        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        text = ""
        for piece in streamer:
            text += piece
            yield text
        worker.join()
    if errors:
        raise errors[0]


def chat(loaded: LoadedModel, messages: list[dict], generation: GenerationSettings | None = None,
         adapter: str | None = ACTIVE) -> str:
    """The whole answer at once."""
    from collections import deque

    last = deque(stream_chat(loaded, messages, generation, adapter), maxlen=1)
    return last[0] if last else ""


class SharedModel:
    """The app's base model, loaded on first use and kept; a failed load is retried next time."""

    def __init__(self, settings: ModelSettings | None = None):
        self.settings = settings or ModelSettings()
        self._loaded: LoadedModel | None = None
        self._lock = threading.Lock()

    def get(self) -> LoadedModel:
        with self._lock:
            if self._loaded is None:
                self._loaded = load_model(self.settings)
            return self._loaded
