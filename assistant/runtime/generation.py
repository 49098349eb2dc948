"""The model runtime: load a base model (the bundled default, a hub id or a local folder), and
stream chat answers.

safetensors only, ``trust_remote_code`` off unless asked for, CUDA when present (bf16 where the
GPU supports it), else CPU in fp32. Generation applies the model's own chat template, stops at
the end of the assistant's turn, and damps repetition (small greedy models loop otherwise).
torch and transformers are imported inside the functions.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from assistant.core.errors import TunewiseError
from assistant.runtime.models import BUNDLED_MODEL, ModelUnavailableError, resolve_model

DEFAULT_MODEL = BUNDLED_MODEL
__all__ = ["DEFAULT_MODEL", "ModelBusyError", "ModelUnavailableError"]


@dataclass(frozen=True)
class ModelSettings:
    model: str = DEFAULT_MODEL
    """Hub id or local folder of a causal LM with a chat template."""
    trust_remote_code: bool = False
    """Run code shipped with the model. Off unless you trust its author."""
    device: str | None = None
    """"cuda", "cpu", or None to pick CUDA when available."""
    model_cache: str | None = None
    """Where the bundled model is converted to (default: see assistant.runtime.models.model_cache_dir)."""


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 256
    temperature: float = 0.0
    """0 means greedy decoding: the same prompt gives the same answer."""
    top_p: float = 1.0
    seed: int = 0
    repetition_penalty: float = 1.1
    """Above 1 damps tokens already in the answer (CTRL's penalty). Greedy decoding on a small model
    otherwise repeats a sentence or a JSON field until the token cap; measured in bench/proof.py."""


class ModelBusyError(TunewiseError):
    """The model stayed busy with other answers for longer than the caller would wait."""

    def __init__(self, waited_s: float):
        self.waited_s = waited_s
        super().__init__(f"the model is busy with other answers (waited {waited_s:g} s)", "Try again shortly.")


@dataclass
class LoadedModel:
    model: object
    tokenizer: object
    device: str
    name: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    """One generation at a time per model: they share one device. A streamed answer's lock is held
    by the thread that generates and released when generation ends (see :func:`stream_chat`)."""

    def acquire(self, wait_s: float | None = None) -> None:
        """Take the model's lock, waiting at most ``wait_s`` seconds (None: as long as it takes);
        ModelBusyError when it stays taken."""
        if not self.lock.acquire(timeout=-1 if wait_s is None else max(wait_s, 0)):
            raise ModelBusyError(wait_s)

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
    source = resolve_model(settings.model, settings.model_cache, progress=_say)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = settings.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        dtype = torch.float32
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=settings.trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=dtype, use_safetensors=True, trust_remote_code=settings.trust_remote_code)
    except (OSError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelUnavailableError(
            f"cannot load the model {settings.model!r}: {first_line}. Without internet access, use the bundled "
            f"model ({BUNDLED_MODEL}, the default), or download the model elsewhere and give its folder with "
            "--model PATH (safetensors weights, a tokenizer with a chat template).") from error
    if not getattr(tokenizer, "chat_template", None):
        raise ModelUnavailableError(f"the model {settings.model!r} has no chat template; use an instruct model")
    model.to(device)
    model.eval()
    return LoadedModel(model, tokenizer, device, settings.model)


def _say(message: str) -> None:
    import sys

    print(message, file=sys.stderr, flush=True)


def prompt_ids(loaded: LoadedModel, messages: list[dict]):
    encoded = loaded.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                   return_tensors="pt", return_dict=True)
    return {k: v.to(loaded.device) for k, v in encoded.items()}


BASE = None
"""Pass as ``adapter`` to answer with every adapter disabled (the frozen base)."""
ACTIVE = "__active__"
"""Pass as ``adapter`` to keep whatever adapter is active (or the plain model)."""


def stop_criteria(stop: threading.Event):
    """A transformers stopping criterion that ends generation, for every row, once ``stop`` is set:
    checked after each new token, so a stopped answer costs at most one more step."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class StopOnEvent(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([StopOnEvent()])


def _generate_in_background(loaded: LoadedModel, run, on_error) -> threading.Thread:
    """Start ``run()`` in a thread that owns the model's lock (already taken by the caller) and
    releases it when generation ends, however it ends.

    Why a hand-over: the lock used to be held by the generator that streams the answer, so a
    consumer that went away (a dropped HTTP stream) left it held, or released it while the model
    still generated. Now the lock lives exactly as long as the generation, and the caller's stop
    event (a stopping criterion, :func:`stop_criteria`) ends the generation at the next token.
    """
    def guarded() -> None:
        try:
            run()
        except BaseException as error:  # surfaced to the consumer
            on_error(error)
        finally:
            loaded.lock.release()

    worker = threading.Thread(target=guarded, daemon=True)
    try:
        worker.start()
    except BaseException:
        loaded.lock.release()
        raise
    return worker


def stream_chat(loaded: LoadedModel, messages: list[dict], generation: GenerationSettings | None = None,
                adapter: str | None = ACTIVE, stop: threading.Event | None = None,
                wait_s: float | None = None) -> Iterator[str]:
    """Yield the answer's text as it grows, ending at the end of the assistant's turn.

    On a PEFT model, ``adapter`` names the adapter to answer with, or BASE (None) for the base
    with adapters disabled. The model lock is held for the whole generation, so a switch can never
    happen half-way through someone else's answer. Generation stops early when ``stop`` is set, or
    when the consumer closes this generator (or drops it); ``wait_s`` bounds the wait for the model
    (ModelBusyError after it; None waits).
    """
    import torch
    from transformers import TextIteratorStreamer

    generation = generation or GenerationSettings()
    stop = stop or threading.Event()
    inputs = prompt_ids(loaded, messages)
    streamer = TextIteratorStreamer(loaded.tokenizer, skip_prompt=True, skip_special_tokens=True)
    kwargs = dict(**inputs, streamer=streamer, stopping_criteria=stop_criteria(stop),
                  **decoding_kwargs(loaded, generation))
    errors: list[BaseException] = []

    def run() -> None:
        with torch.no_grad(), _adapter_context(loaded, adapter):
            torch.manual_seed(generation.seed)
            loaded.model.generate(**kwargs)

    def failed(error: BaseException) -> None:
        errors.append(error)
        streamer.end()

    loaded.acquire(wait_s)
    worker = _generate_in_background(loaded, run, failed)
    try:
        text = ""
        for piece in streamer:
            text += piece
            yield text
        worker.join()
    finally:
        stop.set()  # a consumer that stopped early (closed, dropped, raised) ends the generation
    if errors:
        raise errors[0]


def decoding_kwargs(loaded: LoadedModel, generation: GenerationSettings) -> dict:
    """The same decoding for streamed and batched answers, so their results compare."""
    sampling = generation.temperature > 0
    kwargs = dict(max_new_tokens=generation.max_new_tokens, do_sample=sampling, eos_token_id=loaded.stop_token_ids,
                  pad_token_id=loaded.tokenizer.pad_token_id or loaded.tokenizer.eos_token_id,
                  repetition_penalty=generation.repetition_penalty)
    if sampling:
        kwargs.update(temperature=generation.temperature, top_p=generation.top_p)
    else:  # the model's generation_config may carry sampling defaults; greedy ignores them loudly
        kwargs.update(temperature=None, top_p=None, top_k=None)
    return kwargs


def _adapter_context(loaded: LoadedModel, adapter: str | None):
    import contextlib

    if adapter is None and hasattr(loaded.model, "disable_adapter"):
        return loaded.model.disable_adapter()
    if adapter not in (None, ACTIVE):
        loaded.model.set_adapter(adapter)
    return contextlib.nullcontext()


def left_padded_prompts(loaded: LoadedModel, conversations: list[list[dict]]) -> dict:
    """The conversations' prompts (chat template, generation prompt) as one left-padded batch on the
    model's device: generation continues every row from its last real token."""
    tokenizer = loaded.tokenizer
    texts = [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in conversations]
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tokenizer.padding_side = side
    return {k: v.to(loaded.device) for k, v in encoded.items()}


def generate_batch(loaded: LoadedModel, conversations: list[list[dict]], generation: GenerationSettings | None = None,
                   adapter: str | None = ACTIVE, batch_size: int = 8) -> list[tuple[str, int, float]]:
    """Answers to many conversations at once, left-padded in batches: the same greedy answers as
    :func:`stream_chat` (up to float rounding), several times faster on a CPU, whose matrix
    products are barely slower for 8 rows than for 1. Returns (text, new tokens, seconds) each,
    the seconds being the batch's time shared evenly."""
    import time

    import torch

    generation = generation or GenerationSettings()
    tokenizer = loaded.tokenizer
    results: list[tuple[str, int, float]] = []
    stops = set(loaded.stop_token_ids)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    with loaded.lock:
        for start in range(0, len(conversations), batch_size):
            chunk = conversations[start:start + batch_size]
            encoded = left_padded_prompts(loaded, chunk)
            began = time.perf_counter()
            with torch.no_grad(), _adapter_context(loaded, adapter):
                torch.manual_seed(generation.seed)
                output = loaded.model.generate(**encoded, **decoding_kwargs(loaded, generation))
            share = (time.perf_counter() - began) / len(chunk)
            for row in output[:, encoded["input_ids"].shape[1]:].tolist():
                kept = []
                for token in row:
                    if token in stops or token == pad:
                        break
                    kept.append(token)
                results.append((tokenizer.decode(kept, skip_special_tokens=True), len(kept), share))
    return results


BASE_ROW = "__base__"
"""PEFT's name for a row of a mixed batch that runs with no adapter."""


def stream_rows(loaded: LoadedModel, conversations: list[list[dict]], adapters: list[str | None],
                generation: GenerationSettings | None = None, stop: threading.Event | None = None,
                wait_s: float | None = None) -> Iterator[list[str]]:
    """Answer several conversations in one ``generate`` call, each row with its own adapter (None:
    the base), yielding every row's text as it grows.

    Why: on one model the variants of a side-by-side chat used to answer one after another, so four
    variants took four times as long. A batch of four costs little more than one row on a CPU or a
    GPU, and PEFT runs a batch whose rows use different adapters (``adapter_names``). Greedy rows
    give the same answers as :func:`stream_chat` up to float rounding of the padded batch. ``stop``
    and ``wait_s`` as for :func:`stream_chat`.
    """
    import queue

    import torch
    from transformers.generation.streamers import BaseStreamer

    if len(adapters) != len(conversations):
        raise ValueError("one adapter (or None) per conversation")
    generation = generation or GenerationSettings()
    tokenizer = loaded.tokenizer
    encoded = left_padded_prompts(loaded, conversations)
    steps: queue.Queue = queue.Queue()

    class RowStreamer(BaseStreamer):
        """Receives each step's new token of every row (the first call is the prompt, skipped)."""

        def __init__(self):
            self.prompt_seen = False

        def put(self, value):
            if not self.prompt_seen:
                self.prompt_seen = True
                return
            steps.put(value.reshape(-1).tolist())

        def end(self):
            steps.put(None)

    stop = stop or threading.Event()
    kwargs = dict(**encoded, streamer=RowStreamer(), stopping_criteria=stop_criteria(stop),
                  **decoding_kwargs(loaded, generation))
    mixed = any(a is not None for a in adapters)
    if mixed:
        kwargs["adapter_names"] = [BASE_ROW if a is None else a for a in adapters]
    errors: list[BaseException] = []

    def run() -> None:
        plain = not mixed and hasattr(loaded.model, "disable_adapter")
        with torch.no_grad(), (loaded.model.disable_adapter() if plain else _no_context()):
            torch.manual_seed(generation.seed)
            loaded.model.generate(**kwargs)

    def failed(error: BaseException) -> None:
        errors.append(error)
        steps.put(None)

    stops = set(loaded.stop_token_ids)
    rows: list[list[int]] = [[] for _ in conversations]
    finished = [False] * len(conversations)
    loaded.acquire(wait_s)
    worker = _generate_in_background(loaded, run, failed)
    try:
        while (step := steps.get()) is not None:
            for row, token in enumerate(step):
                if finished[row]:
                    continue
                if token in stops:
                    finished[row] = True
                else:
                    rows[row].append(token)
            yield [tokenizer.decode(r, skip_special_tokens=True) for r in rows]
        worker.join()
    finally:
        stop.set()
    if errors:
        raise errors[0]


def _no_context():
    import contextlib

    return contextlib.nullcontext()


def chat(loaded: LoadedModel, messages: list[dict], generation: GenerationSettings | None = None,
         adapter: str | None = ACTIVE) -> str:
    """The whole answer at once."""
    from collections import deque

    last = deque(stream_chat(loaded, messages, generation, adapter), maxlen=1)
    return last[0] if last else ""


class SharedModel:
    """The app's base model, loaded on first use and kept; a failed load is retried next time.

    ``switch`` changes the model for everyone: the next ``get`` loads the new one (the old one is
    dropped, with the adapters attached to it). ``generation`` counts switches, so holders of a
    VariantModel can tell theirs is stale.
    """

    def __init__(self, settings: ModelSettings | None = None):
        self.settings = settings or ModelSettings()
        self._loaded: LoadedModel | None = None
        self._lock = threading.Lock()
        self.generation = 0

    @property
    def name(self) -> str:
        return self.settings.model

    def get(self) -> LoadedModel:
        with self._lock:
            if self._loaded is None:
                self._loaded = load_model(self.settings)
            return self._loaded

    def switch(self, model: str) -> bool:
        """Serve ``model`` from now on; returns False when it already is. Raises
        ModelUnavailableError (and keeps the current model) when it cannot be resolved."""
        from dataclasses import replace

        with self._lock:
            if model == self.settings.model:
                return False
            resolve_model(model, self.settings.model_cache, progress=_say)
            self.settings = replace(self.settings, model=model)
            self._loaded = None
            self.generation += 1
            return True
