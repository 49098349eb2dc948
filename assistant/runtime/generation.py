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
    from transformers import AutoTokenizer

    from trainers.loading import load_causal_lm  # the one precision rule training and export share

    device = settings.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=settings.trust_remote_code)
        model = load_causal_lm(source, device, trust_remote_code=settings.trust_remote_code)
    except (OSError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelUnavailableError(
            f"cannot load the model {settings.model!r}: {first_line}. Without internet access, use the bundled "
            f"model ({BUNDLED_MODEL}, the default), or download the model elsewhere and give its folder with "
            "--model PATH (safetensors weights, a tokenizer with a chat template).") from error
    if not getattr(tokenizer, "chat_template", None):
        raise ModelUnavailableError(f"the model {settings.model!r} has no chat template; use an instruct model")
    model.eval()
    return LoadedModel(model, tokenizer, device, settings.model)


def _say(message: str) -> None:
    import sys

    print(message, file=sys.stderr, flush=True)


BASE = None
"""Pass as ``adapter`` to answer with the frozen base: every adapter disabled (on a model with no
adapters, the plain model). There is no "whatever adapter is active": adapters are attached to the
one shared model and switched per request, so an answer that does not name its adapter would answer
with whichever one the last request used."""
BASE_ROW = "__base__"
"""PEFT's name for a row of a mixed batch that runs with no adapter."""


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


def _adapter_scope(loaded: LoadedModel, adapters: list[str | None]):
    """How a batch runs its rows' adapters: (a context to generate in, extra ``generate`` arguments).

    Every row BASE: adapters disabled. Every row the same adapter: that adapter set active, which
    works for any PEFT method. Rows with different adapters: PEFT's per-row ``adapter_names``
    (LoRA's mixed batches). Called by the generating thread, which holds the model's lock, so
    setting the active adapter cannot change an answer already under way.
    """
    import contextlib

    named = set(adapters)
    if named == {BASE}:
        plain = not hasattr(loaded.model, "disable_adapter")
        return (contextlib.nullcontext() if plain else loaded.model.disable_adapter()), {}
    if len(named) == 1:
        loaded.model.set_adapter(adapters[0])
        return contextlib.nullcontext(), {}
    return contextlib.nullcontext(), {"adapter_names": [BASE_ROW if a is BASE else a for a in adapters]}


def left_padded_prompts(loaded: LoadedModel, conversations: list[list[dict]]) -> dict:
    """The conversations' prompts (chat template, generation prompt) as one left-padded batch on the
    model's device: generation continues every row from its last real token. One conversation gives
    the very tokens ``apply_chat_template(tokenize=True)`` gives (no special tokens are added twice)."""
    tokenizer = loaded.tokenizer
    texts = [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in conversations]
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tokenizer.padding_side = side
    return {k: v.to(loaded.device) for k, v in encoded.items()}


def _token_rows(loaded: LoadedModel, conversations: list[list[dict]], adapters: list[str | None],
                generation: GenerationSettings | None, stop: threading.Event | None,
                wait_s: float | None, prepare=None) -> Iterator[list[list[int]]]:
    """The one decode loop behind :func:`stream_chat`, :func:`stream_rows` and :func:`generate_batch`.

    One ``generate`` call over the conversations as a left-padded batch, each row with its adapter
    (see :func:`_adapter_scope`), in a thread that owns the model's lock for exactly as long as it
    generates. Yields every row's answer tokens: first once the model is taken and generation has
    started (all empty: an answer's clock starts there), then after each step; a row stops growing
    at its end of turn. The yielded lists grow in place: read them, do not keep them. ``prepare()``,
    when given, runs first in that thread, under the lock (a VariantModel swapping adapter types in).
    """
    import queue

    import torch
    from transformers.generation.streamers import BaseStreamer

    if len(adapters) != len(conversations):
        raise ValueError("one adapter (or None) per conversation")
    generation = generation or GenerationSettings()
    stop = stop or threading.Event()
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

    kwargs = dict(**encoded, streamer=RowStreamer(), stopping_criteria=stop_criteria(stop),
                  **decoding_kwargs(loaded, generation))
    errors: list[BaseException] = []

    def run() -> None:
        if prepare is not None:
            prepare()
        context, extra = _adapter_scope(loaded, adapters)
        with torch.no_grad(), context:
            torch.manual_seed(generation.seed)
            loaded.model.generate(**kwargs, **extra)

    def failed(error: BaseException) -> None:
        errors.append(error)
        steps.put(None)

    stops = set(loaded.stop_token_ids)
    rows: list[list[int]] = [[] for _ in conversations]
    finished = [False] * len(conversations)
    loaded.acquire(wait_s)
    worker = _generate_in_background(loaded, run, failed)
    try:
        yield rows
        while (step := steps.get()) is not None:
            for row, token in enumerate(step):
                if finished[row]:
                    continue  # what generate adds after a row's end is padding
                if token in stops:
                    finished[row] = True
                else:
                    rows[row].append(token)
            yield rows
        worker.join()
    finally:
        stop.set()  # a consumer that stopped early (closed, dropped, raised) ends the generation
    if errors:
        raise errors[0]


def _steady_text(tokenizer, tokens: list[int], shown: str) -> str:
    """The text of a growing answer that can be shown now: its decoded tokens less a trailing
    incomplete character (a multi-byte character split across tokens decodes as U+FFFD until its
    last byte arrives), and only if it extends what was shown (else what was shown), so a streamed
    answer only ever grows."""
    text = tokenizer.decode(tokens, skip_special_tokens=True).rstrip("\ufffd")
    return text if text.startswith(shown) else shown


def stream_rows(loaded: LoadedModel, conversations: list[list[dict]], adapters: list[str | None],
                generation: GenerationSettings | None = None, stop: threading.Event | None = None,
                wait_s: float | None = None, prepare=None) -> Iterator[list[str]]:
    """Answer several conversations in one ``generate`` call, each row with its own adapter (None:
    the base), yielding every row's text whenever one grows, and last the whole answers.

    Why: on one model the variants of a side-by-side chat used to answer one after another, so four
    variants took four times as long. A batch of four costs little more than one row on a CPU or a
    GPU, and PEFT runs a batch whose rows use different adapters (``adapter_names``). Greedy rows
    give the same answers as each alone up to float rounding of the padded batch. Generation stops
    early when ``stop`` is set, or when the consumer closes this generator (or drops it); ``wait_s``
    bounds the wait for the model (ModelBusyError after it; None waits); ``prepare`` as for
    :func:`_token_rows`.
    """
    tokenizer = loaded.tokenizer
    shown = [""] * len(conversations)
    steps = _token_rows(loaded, conversations, adapters, generation, stop, wait_s, prepare)
    try:
        rows = next(steps)  # the model is ours and generating
        for rows in steps:
            grown = [_steady_text(tokenizer, tokens, text) for tokens, text in zip(rows, shown, strict=True)]
            if grown != shown:
                shown = grown
                yield shown
    finally:
        steps.close()  # a consumer that stopped early ends the generation now, not when collected
    # The whole answers, decoded at once: the final text, even where a streamed prefix had to wait.
    yield [tokenizer.decode(tokens, skip_special_tokens=True) for tokens in rows]


def stream_chat(loaded: LoadedModel, messages: list[dict], generation: GenerationSettings | None = None, *,
                adapter: str | None, stop: threading.Event | None = None,
                wait_s: float | None = None) -> Iterator[str]:
    """Yield the answer's text as it grows, ending at the end of the assistant's turn: one row of
    :func:`stream_rows`.

    ``adapter``: the adapter to answer with, or BASE (None) for the base with adapters disabled;
    always named, see :data:`BASE`. The model lock is held for the whole generation, so a switch can
    never happen half-way through someone else's answer. ``stop`` and ``wait_s`` as for
    :func:`stream_rows`.
    """
    shown = None
    for texts in stream_rows(loaded, [messages], [adapter], generation, stop, wait_s):
        if texts[0] != shown:
            shown = texts[0]
            yield shown


def chat(loaded: LoadedModel, messages: list[dict], generation: GenerationSettings | None = None, *,
         adapter: str | None) -> str:
    """The whole answer at once; ``adapter`` as for :func:`stream_chat`."""
    from collections import deque

    last = deque(stream_chat(loaded, messages, generation, adapter=adapter), maxlen=1)
    return last[0] if last else ""


def generate_batch(loaded: LoadedModel, conversations: list[list[dict]], generation: GenerationSettings | None = None,
                   *, adapter: str | None, batch_size: int = 8, prepare=None) -> list[tuple[str, int, float]]:
    """Answers to many conversations at once, all with ``adapter`` (as for :func:`stream_chat`),
    left-padded in batches of ``batch_size``: the same greedy answers as :func:`stream_chat` (up to
    float rounding of the padded batch), several times faster on a CPU, whose matrix products are
    barely slower for 8 rows than for 1. Returns (text, new tokens, seconds) each, the seconds being
    the batch's time (from the moment it has the model) shared evenly."""
    import time

    tokenizer = loaded.tokenizer
    results: list[tuple[str, int, float]] = []
    for start in range(0, len(conversations), batch_size):
        chunk = conversations[start:start + batch_size]
        steps = _token_rows(loaded, chunk, [adapter] * len(chunk), generation, None, None, prepare)
        rows = next(steps)  # the batch has the model: its clock starts
        began = time.perf_counter()
        for _ in steps:  # the rows grow in place to the end
            pass
        share = (time.perf_counter() - began) / len(chunk)
        results.extend((tokenizer.decode(tokens, skip_special_tokens=True), len(tokens), share) for tokens in rows)
    return results


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
